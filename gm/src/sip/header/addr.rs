//! `name-addr` / `addr-spec` with header parameters: From, To, Contact,
//! Route, Record-Route, Service-Route (RFC 3608), Path (RFC 3327),
//! P-Associated-URI (RFC 3455), P-Preferred-Identity and
//! P-Asserted-Identity (RFC 3325).

use std::borrow::Cow;
use std::fmt;

use super::{Qvalue, delta_seconds, list};
use crate::sip::error::Syntax;
use crate::sip::lex::{self, Cursor};
use crate::sip::params::Params;
use crate::sip::uri::Uri;

/// An address: `[display-name] <URI>` or a bare URI, and the header
/// parameters after it (`tag`, `expires`, `q`, feature tags, `lr`...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr<'s> {
    /// The display name as written: a quoted string with its quotes, or
    /// tokens separated by whitespace.
    pub display: Option<&'s str>,
    /// The URI.
    pub uri: Uri<'s>,
    /// Whether the URI was written between `<` and `>` (name-addr) rather
    /// than bare (addr-spec).
    pub bracketed: bool,
    /// The header parameters, in order.
    pub params: Params<'s>,
}

/// What may follow the address.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// name-addr or addr-spec, with parameters (From, To, Contact).
    Any,
    /// name-addr only, with parameters (Route and the like).
    Bracketed,
    /// name-addr or addr-spec, no parameters (P-Preferred-Identity).
    NoParams,
}

impl<'s> NameAddr<'s> {
    /// From or To: `( name-addr / addr-spec ) *( SEMI param )`, one value
    /// (RFC 3261 §20.20, §20.39).
    pub fn parse(value: &'s str) -> Result<NameAddr<'s>, Syntax> {
        let mut c = Cursor::new(value);
        let a = parse_one(&mut c, Form::Any)?;
        c.end("expected ';' or the end of the value")?;
        Ok(a)
    }

    /// Route, Record-Route, Path, Service-Route, P-Associated-URI:
    /// `name-addr *( SEMI param ) *(COMMA ...)`.
    pub fn parse_route_list(value: &'s str) -> Result<Vec<NameAddr<'s>>, Syntax> {
        list(value, |c| parse_one(c, Form::Bracketed))
    }

    /// P-Preferred-Identity, P-Asserted-Identity: `( name-addr /
    /// addr-spec ) *(COMMA ...)` without parameters (RFC 3325 §9).
    pub fn parse_identity_list(value: &'s str) -> Result<Vec<NameAddr<'s>>, Syntax> {
        list(value, |c| parse_one(c, Form::NoParams))
    }

    /// The display name without quotes (RFC 3261 §25.1 `display-name`).
    pub fn display_name(&self) -> Option<Cow<'s, str>> {
        self.display.map(lex::unquote)
    }

    /// The `tag` parameter (From, To).
    pub fn tag(&self) -> Option<&'s str> {
        self.params.value("tag")
    }

    /// A Contact's `expires` parameter (RFC 3261 §10.2.1.1): a number
    /// above 2**32-1 counts as 2**32-1, a malformed one as 3600.
    pub fn expires(&self) -> Option<u32> {
        self.params
            .get("expires")
            .map(|p| p.value.and_then(delta_seconds).unwrap_or(3600))
    }

    /// A Contact's `q` parameter (checked when the Contact was parsed).
    pub fn q(&self) -> Option<Qvalue> {
        self.params.value("q").and_then(Qvalue::parse)
    }

    /// A Contact's `+sip.instance` (RFC 5626 §4.1), without quotes: e.g.
    /// `<urn:gsma:imei:35209900-176148-0>`.
    pub fn sip_instance(&self) -> Option<Cow<'s, str>> {
        self.params.unquoted("+sip.instance")
    }

    /// A Contact's feature parameters (RFC 3840 §9: `+` tags and the
    /// base tags), as (name, unquoted value).
    pub fn feature_tags(&self) -> impl Iterator<Item = (&'s str, Option<Cow<'s, str>>)> + '_ {
        const BASE: [&str; 20] = [
            "audio",
            "automata",
            "class",
            "duplex",
            "data",
            "control",
            "mobility",
            "description",
            "events",
            "priority",
            "methods",
            "schemes",
            "application",
            "video",
            "language",
            "type",
            "isfocus",
            "actor",
            "text",
            "extensions",
        ];
        self.params
            .iter()
            .filter(|p| {
                p.name.starts_with('+') || BASE.iter().any(|b| b.eq_ignore_ascii_case(p.name))
            })
            .map(|p| (p.name, p.value.map(lex::unquote)))
    }
}

/// Contact (RFC 3261 §20.10): `*` or a list of addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contacts<'s> {
    /// `Contact: *` (remove all bindings, RFC 3261 §10.2.2).
    Star,
    /// The addresses with their parameters.
    List(Vec<NameAddr<'s>>),
}

impl<'s> Contacts<'s> {
    /// Parses one Contact row. `expires` and `q` are checked here.
    pub fn parse(value: &'s str) -> Result<Contacts<'s>, Syntax> {
        if lex::trim_lws(value) == "*" {
            return Ok(Contacts::Star);
        }
        list(value, |c| {
            let at = c.pos();
            let a = parse_one(c, Form::Any)?;
            if let Some(q) = a.params.get("q") {
                if q.value.and_then(Qvalue::parse).is_none() {
                    return Err(Syntax {
                        what: "bad q value",
                        at,
                    });
                }
            }
            Ok(a)
        })
        .map(Contacts::List)
    }
}

/// One address at the cursor.
fn parse_one<'s>(c: &mut Cursor<'s>, form: Form) -> Result<NameAddr<'s>, Syntax> {
    c.skip_ws();
    let start = c.pos();
    let mut display = None;
    match c.peek() {
        Some(b'"') => {
            display = Some(c.quoted()?);
            c.skip_ws();
        }
        Some(b'<') => {}
        _ => {
            // Tokens of a display name, or the scheme of an addr-spec.
            let mut look = *c;
            let first = look.take_while(|b| lex::is(b, lex::TOKEN));
            if !first.is_empty() && look.peek() == Some(b':') {
                if form == Form::Bracketed {
                    return Err(c.error("expected '<'"));
                }
                return addr_spec(c, form);
            }
            let end = loop {
                c.token("expected a display name or '<'")?;
                let end = c.pos();
                c.skip_ws();
                match c.peek() {
                    // RFC 4475 §3.1.1.6: no LWS before '<' is accepted.
                    Some(b'<') => break end,
                    Some(b) if lex::is(b, lex::TOKEN) => {}
                    _ => return Err(c.error("expected '<' after the display name")),
                }
            };
            display = Some(c.slice(start, end));
        }
    }
    c.expect(b'<', "expected '<'")?;
    let uri_at = c.pos();
    let raw = c.take_while(|b| b != b'>' && !lex::is_lws(b));
    let uri = Uri::parse(raw).map_err(|e| Syntax {
        what: e.what,
        at: uri_at + e.at,
    })?;
    c.expect(b'>', "expected '>' (no whitespace inside <>)")?;
    let params = if form == Form::NoParams {
        Params::default()
    } else {
        Params::parse_generic(c, None)?
    };
    Ok(NameAddr {
        display,
        uri,
        bracketed: true,
        params,
    })
}

/// A bare URI: it ends at `;`, `,` or whitespace, so it cannot contain
/// them, nor `?` (RFC 3261 §20: such a URI "MUST be enclosed in angle
/// brackets").
fn addr_spec<'s>(c: &mut Cursor<'s>, form: Form) -> Result<NameAddr<'s>, Syntax> {
    let at = c.pos();
    let raw = c.take_while(|b| !matches!(b, b';' | b',') && !lex::is_lws(b));
    if let Some(q) = raw.find('?') {
        return Err(Syntax {
            what: "a URI with '?' must be enclosed in <>",
            at: at + q,
        });
    }
    let uri = Uri::parse(raw).map_err(|e| Syntax {
        what: e.what,
        at: at + e.at,
    })?;
    let params = if form == Form::NoParams {
        Params::default()
    } else {
        Params::parse_generic(c, None)?
    };
    Ok(NameAddr {
        display: None,
        uri,
        bracketed: false,
        params,
    })
}

impl fmt::Display for NameAddr<'_> {
    /// `display <uri>;params`, or `uri;params` for an addr-spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = self.display {
            write!(f, "{d} ")?;
        }
        if self.bracketed || self.display.is_some() {
            write!(f, "<{}>", self.uri)?;
        } else {
            write!(f, "{}", self.uri)?;
        }
        write!(f, "{}", self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_and_to_forms() {
        let a =
            NameAddr::parse("<sip:+4915112345678@ims.mnc001.mcc262.3gppnetwork.org>;tag=3fb9a1c2")
                .unwrap();
        assert_eq!(a.tag(), Some("3fb9a1c2"));
        assert!(a.bracketed && a.display.is_none());
        // RFC 4475 §3.1.1.1.
        let a = NameAddr::parse(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(a.display_name().unwrap(), "J Rosenberg \\\"");
        assert_eq!(a.tag(), Some("98asjd8"));
        let a =
            NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert!(!a.bracketed);
        assert_eq!(a.tag(), Some("1918181833n"));
        // §3.1.1.2: several tokens as a display name.
        let a = NameAddr::parse(
            "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=_token~1'+`*%!-.",
        )
        .unwrap();
        assert_eq!(a.display, Some("token1~` token2'+_ token3*%!.-"));
        // §3.1.1.6: no LWS before '<'.
        let a = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(a.display, Some("caller"));
        // §3.3.4: other schemes.
        assert_eq!(
            NameAddr::parse("isbn:2983792873").unwrap().uri.scheme(),
            "isbn"
        );
        assert_eq!(a.to_string(), "caller <sip:caller@example.com>;tag=323");
    }

    #[test]
    fn invalid_addresses() {
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>", // §3.1.2.6
            "\"Watson, Thomas\" < sip:t.watson@example.org >", // §3.1.2.14
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43", // §3.1.2.15
            "<sip:a@b>;;",
            "<sip:a@b",
            "sip:a@b, sip:c@d",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn contacts() {
        let c = Contacts::parse("<sip:+4915112345678@[2001:db8:1:2::7]:5060;comp=sigcomp>;+sip.instance=\"<urn:gsma:imei:35209900-176148-0>\";+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\";+g.3gpp.smsip;expires=600000").unwrap();
        let Contacts::List(l) = c else { panic!() };
        assert_eq!(l[0].expires(), Some(600_000));
        assert_eq!(
            l[0].sip_instance().unwrap(),
            "<urn:gsma:imei:35209900-176148-0>"
        );
        let tags: Vec<_> = l[0].feature_tags().map(|(n, _)| n).collect();
        assert_eq!(tags, ["+sip.instance", "+g.3gpp.icsi-ref", "+g.3gpp.smsip"]);
        assert_eq!(Contacts::parse(" * ").unwrap(), Contacts::Star);
        let Contacts::List(l) = Contacts::parse("\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33").unwrap() else { panic!() };
        assert_eq!(l[0].q(), Some(Qvalue(330)));
        // §3.3.12: the parameter belongs to the Contact, not to the URI.
        let Contacts::List(l) =
            Contacts::parse("sip:+19725552222@gw1.example.net;unknownparam").unwrap()
        else {
            panic!()
        };
        assert!(l[0].params.has("unknownparam"));
        assert!(l[0].uri.sip().unwrap().params.is_empty());
        // §3.3.13: and here to the URI.
        let Contacts::List(l) =
            Contacts::parse("<sip:+19725552222@gw1.example.net;unknownparam>").unwrap()
        else {
            panic!()
        };
        assert!(l[0].uri.sip().unwrap().params.has("unknownparam"));
        // §3.1.2.13: a URI with headers outside <>.
        assert!(Contacts::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(Contacts::parse("<sip:a@b>;q=2").is_err());
        let Contacts::List(l) = Contacts::parse("<sip:a@b>;expires=280297596632815").unwrap()
        else {
            panic!()
        };
        assert_eq!(l[0].expires(), Some(u32::MAX));
    }

    #[test]
    fn route_sets() {
        let r = NameAddr::parse_route_list("<sip:[2001:db8:ff::10]:5066;lr;comp=sigcomp>, <sip:orig@scscf1.ims.mnc001.mcc262.3gppnetwork.org:6060;lr>").unwrap();
        assert_eq!(r.len(), 2);
        assert!(r[0].uri.sip().unwrap().lr());
        assert!(NameAddr::parse_route_list("sip:a@b;lr").is_err());
        let p = NameAddr::parse_identity_list(
            "<sip:+4915112345678@ims.example.org>, <tel:+4915112345678>",
        )
        .unwrap();
        assert_eq!(p[1].uri.scheme(), "tel");
    }
}
