//! Parameter lists: `*(SEMI generic-param)` of header values and the
//! `uri-parameters` of SIP URIs.

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv6Addr;

use super::error::Syntax;
use super::lex::{self, Cursor};

/// A parser that may take over the value of a parameter it recognises by
/// name (`None`: not this one).
pub(crate) type SpecialValue<'s> = fn(&str, &mut Cursor<'s>) -> Option<Result<&'s str, Syntax>>;

/// One parameter as written: `name` or `name=value`. A value keeps its
/// quotes (and URI escapes), so the parameter prints back as it came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'s> {
    /// The name, as written (compare case-insensitively).
    pub name: &'s str,
    /// The value as written: a token, a host, or a quoted string with its
    /// quotes.
    pub value: Option<&'s str>,
}

impl Param<'_> {
    /// The value without quotes and quoted-pairs (see RFC 3261 §25.1).
    pub fn unquoted(&self) -> Option<Cow<'_, str>> {
        self.value.map(lex::unquote)
    }

    /// Whether the value is a quoted string.
    pub fn is_quoted(&self) -> bool {
        self.value.is_some_and(|v| v.starts_with('"'))
    }
}

/// A parameter list in order of appearance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params<'s>(pub Vec<Param<'s>>);

impl<'s> Params<'s> {
    /// The first parameter called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Param<'s>> {
        self.0.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Whether a parameter called `name` is present (with or without a
    /// value).
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The raw value of parameter `name`, if it is present with a value.
    pub fn value(&self, name: &str) -> Option<&'s str> {
        self.get(name).and_then(|p| p.value)
    }

    /// The value of parameter `name` without quotes.
    pub fn unquoted(&self, name: &str) -> Option<Cow<'s, str>> {
        self.value(name).map(lex::unquote)
    }

    /// The parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = &Param<'s>> {
        self.0.iter()
    }

    /// How many parameters there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `*(SEMI generic-param)` (RFC 3261 §25.1): `generic-param =
    /// token [ EQUAL gen-value ]`, `gen-value = token / host /
    /// quoted-string`. `special` may take over the value of a named
    /// parameter (Via's `received`, which may be a bare IPv6 address).
    pub(crate) fn parse_generic(
        c: &mut Cursor<'s>,
        special: Option<SpecialValue<'s>>,
    ) -> Result<Params<'s>, Syntax> {
        let mut out = Vec::new();
        while c.sep(b';') {
            if out.is_empty() {
                out.reserve(6);
            }
            let name = c.token("expected a parameter name")?;
            let value = if c.sep(b'=') {
                match special.and_then(|f| f(name, c)) {
                    Some(v) => Some(v?),
                    None => Some(gen_value(c)?),
                }
            } else {
                None
            };
            out.push(Param { name, value });
        }
        Ok(Params(out))
    }

    /// Parses `uri-parameters` (RFC 3261 §19.1.1, §25.1): `*( ";" pname
    /// [ "=" pvalue ] )` of `paramchar`s, no whitespace.
    pub(crate) fn parse_uri(c: &mut Cursor<'s>) -> Result<Params<'s>, Syntax> {
        let mut out = Vec::new();
        while c.eat(b';') {
            if out.is_empty() {
                out.reserve(4);
            }
            let name = paramchars(c, "expected a URI parameter name")?;
            let value = if c.eat(b'=') {
                Some(paramchars(c, "expected a URI parameter value")?)
            } else {
                None
            };
            out.push(Param { name, value });
        }
        Ok(Params(out))
    }
}

/// `1*paramchar` (`param-unreserved / unreserved / escaped`).
fn paramchars<'s>(c: &mut Cursor<'s>, what: &'static str) -> Result<&'s str, Syntax> {
    let start = c.pos();
    let s = c.take_while(|b| b == b'%' || lex::is_any(b, lex::PARAM_UNRESERVED | lex::UNRESERVED));
    if s.is_empty() || !lex::is_escaped_run(s, lex::PARAM_UNRESERVED | lex::UNRESERVED) {
        return Err(Syntax { what, at: start });
    }
    Ok(s)
}

/// `gen-value = token / host / quoted-string`. A host is a hostname or
/// IPv4 address (both made of token characters) or an IPv6 reference.
pub(crate) fn gen_value<'s>(c: &mut Cursor<'s>) -> Result<&'s str, Syntax> {
    match c.peek() {
        Some(b'"') => c.quoted(),
        Some(b'[') => {
            let start = c.pos();
            c.eat(b'[');
            let inner = c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            if inner.parse::<Ipv6Addr>().is_err() || !c.eat(b']') {
                return Err(Syntax {
                    what: "bad IPv6 reference",
                    at: start,
                });
            }
            Ok(c.slice(start, c.pos()))
        }
        _ => c.token("expected a parameter value"),
    }
}

impl fmt::Display for Params<'_> {
    /// `;name=value` for each, as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            f.write_str(";")?;
            f.write_str(p.name)?;
            if let Some(v) = p.value {
                f.write_str("=")?;
                f.write_str(v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_parameters_with_whitespace_and_quotes() {
        let mut c = Cursor::new(" ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33");
        let p = Params::parse_generic(&mut c, None).unwrap();
        assert!(c.at_end());
        assert_eq!(p.value("newparam"), Some("newvalue"));
        assert!(p.has("SECONDPARAM"));
        assert_eq!(p.value("q"), Some("0.33"));
        let mut c =
            Cursor::new(";+sip.instance=\"<urn:gsma:imei:1>\";+g.3gpp.smsip;x=[2001:db8::1]");
        let p = Params::parse_generic(&mut c, None).unwrap();
        assert_eq!(p.unquoted("+sip.instance").unwrap(), "<urn:gsma:imei:1>");
        assert_eq!(p.get("+g.3gpp.smsip").unwrap().value, None);
        assert_eq!(p.value("x"), Some("[2001:db8::1]"));
        assert_eq!(
            p.to_string(),
            ";+sip.instance=\"<urn:gsma:imei:1>\";+g.3gpp.smsip;x=[2001:db8::1]"
        );
        // RFC 4475 §3.1.2.1: empty parameters.
        let mut c = Cursor::new(";;;;");
        assert!(Params::parse_generic(&mut c, None).is_err());
    }

    #[test]
    fn uri_parameters() {
        let mut c = Cursor::new(";%6C%72;n%61me=v%61lue%25%34%31>");
        let p = Params::parse_uri(&mut c).unwrap();
        assert_eq!(c.rest(), ">");
        assert_eq!(p.0[0].name, "%6C%72");
        assert_eq!(p.value("n%61me"), Some("v%61lue%25%34%31"));
        let mut c = Cursor::new(";lr;=x");
        assert!(Params::parse_uri(&mut c).is_err());
    }
}
