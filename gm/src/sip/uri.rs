//! URIs: SIP and SIPS URIs (RFC 3261 §19.1) with their user, host, port,
//! parameters and headers; any other scheme as an `absoluteURI` (tel,
//! urn, http, ...).

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::Syntax;
use super::lex::{self, Cursor};
use super::params::Params;

/// A URI, borrowed from the text it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uri<'s> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'s>),
    /// Any other scheme, checked against `absoluteURI` only.
    Other(OtherUri<'s>),
}

/// A SIP or SIPS URI (RFC 3261 §19.1.1). Components are as written, with
/// their `%HH` escapes; [`SipUri::user_bytes`] decodes the user part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipUri<'s> {
    raw: &'s str,
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part (or telephone-subscriber), escaped.
    pub user: Option<&'s str>,
    /// The password, escaped.
    pub password: Option<&'s str>,
    /// The host.
    pub host: Host<'s>,
    /// The port.
    pub port: Option<u16>,
    /// The `uri-parameters` (`transport`, `lr`, `comp`, `maddr`, ...).
    pub params: Params<'s>,
    /// The `headers` component without its `?`, escaped.
    pub headers: Option<&'s str>,
}

/// A URI of another scheme: `scheme ":" rest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherUri<'s> {
    raw: &'s str,
    /// The scheme, e.g. `tel` (compare case-insensitively).
    pub scheme: &'s str,
    /// Everything after the first `:`.
    pub rest: &'s str,
}

/// A host: a name, an IPv4 address or an IPv6 reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'s> {
    /// A host name (compare case-insensitively).
    Name(&'s str),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written `[...]`).
    V6(Ipv6Addr),
}

impl<'s> Uri<'s> {
    /// Parses a whole string as a URI (a Request-URI, or what is between
    /// `<` and `>`).
    pub fn parse(s: &'s str) -> Result<Uri<'s>, Syntax> {
        let colon = memchr::memchr(b':', s.as_bytes()).ok_or(Syntax {
            what: "no ':' after a URI scheme",
            at: 0,
        })?;
        let scheme = s.get(..colon).unwrap_or("");
        let valid_scheme = scheme
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphabetic)
            && scheme.bytes().all(|b| lex::is(b, lex::SCHEME));
        if !valid_scheme {
            return Err(Syntax {
                what: "bad URI scheme",
                at: 0,
            });
        }
        let secure = if scheme.eq_ignore_ascii_case("sip") {
            false
        } else if scheme.eq_ignore_ascii_case("sips") {
            true
        } else {
            let rest = s.get(colon + 1..).unwrap_or("");
            // absoluteURI = scheme ":" ( hier-part / opaque-part ): every
            // character of either is a `uric` (reserved / unreserved /
            // escaped).
            if rest.is_empty() || !lex::is_escaped_run(rest, lex::RESERVED | lex::UNRESERVED) {
                return Err(Syntax {
                    what: "bad character in URI",
                    at: colon + 1 + bad_uric_at(rest),
                });
            }
            return Ok(Uri::Other(OtherUri {
                raw: s,
                scheme,
                rest,
            }));
        };
        SipUri::parse_after_scheme(s, colon + 1, secure).map(Uri::Sip)
    }

    /// The URI as written.
    pub fn as_str(&self) -> &'s str {
        match self {
            Uri::Sip(u) => u.raw,
            Uri::Other(u) => u.raw,
        }
    }

    /// The scheme as written (`sip`, `sips`, `tel`, ...).
    pub fn scheme(&self) -> &'s str {
        match self {
            Uri::Sip(u) => u.raw.get(..if u.secure { 4 } else { 3 }).unwrap_or(""),
            Uri::Other(u) => u.scheme,
        }
    }

    /// The SIP URI, if it is one.
    pub fn sip(&self) -> Option<&SipUri<'s>> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other(_) => None,
        }
    }
}

fn bad_uric_at(s: &str) -> usize {
    s.bytes()
        .position(|b| !(b == b'%' || lex::is_any(b, lex::RESERVED | lex::UNRESERVED)))
        .unwrap_or(0)
}

impl<'s> SipUri<'s> {
    fn parse_after_scheme(s: &'s str, start: usize, secure: bool) -> Result<SipUri<'s>, Syntax> {
        let mut c = Cursor::new(s);
        c.advance(start);
        let (mut user, mut password) = (None, None);
        // `@` appears in no other component, so it ends the userinfo.
        if let Some(at) = s
            .get(start..)
            .and_then(|r| memchr::memchr(b'@', r.as_bytes()))
        {
            let info = s.get(start..start + at).unwrap_or("");
            let (u, p) = match memchr::memchr(b':', info.as_bytes()) {
                Some(i) => (
                    info.get(..i).unwrap_or(""),
                    Some(info.get(i + 1..).unwrap_or("")),
                ),
                None => (info, None),
            };
            if u.is_empty() || !lex::is_escaped_run(u, lex::UNRESERVED | lex::USER_UNRESERVED) {
                return Err(Syntax {
                    what: "bad user part",
                    at: start,
                });
            }
            if let Some(p) = p {
                if !lex::is_escaped_run(p, lex::UNRESERVED | lex::PASSWORD_EXTRA) {
                    return Err(Syntax {
                        what: "bad password",
                        at: start + u.len() + 1,
                    });
                }
            }
            user = Some(u);
            password = p;
            c.advance(at + 1);
        }
        let host = Host::parse_at(&mut c)?;
        let port = if c.eat(b':') {
            let at = c.pos();
            let digits = c.take_while(|b| b.is_ascii_digit());
            Some(
                lex::digits_u64(digits)
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or(Syntax {
                        what: "bad port",
                        at,
                    })?,
            )
        } else {
            None
        };
        let params = Params::parse_uri(&mut c)?;
        let headers = if c.eat(b'?') {
            let at = c.pos();
            let h = c.rest();
            let ok = !h.is_empty()
                && h.split('&').all(|kv| match kv.split_once('=') {
                    Some((n, v)) => {
                        let set = lex::HNV_UNRESERVED | lex::UNRESERVED;
                        !n.is_empty() && lex::is_escaped_run(n, set) && lex::is_escaped_run(v, set)
                    }
                    None => false,
                });
            if !ok {
                return Err(Syntax {
                    what: "bad URI headers",
                    at,
                });
            }
            c = Cursor::new("");
            Some(h)
        } else {
            None
        };
        if !c.at_end() {
            return Err(c.error("unexpected character in SIP URI"));
        }
        Ok(SipUri {
            raw: s,
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The URI as written.
    pub fn as_str(&self) -> &'s str {
        self.raw
    }

    /// The user part with `%HH` escapes decoded (it may hold any byte,
    /// NUL included: RFC 4475 §3.1.1.4).
    pub fn user_bytes(&self) -> Option<Cow<'s, [u8]>> {
        self.user.map(lex::unescape)
    }

    /// The `transport` parameter.
    pub fn transport(&self) -> Option<&'s str> {
        self.params.value("transport")
    }

    /// Whether the `lr` parameter is present (loose routing, RFC 3261
    /// §19.1.1).
    pub fn lr(&self) -> bool {
        self.params.has("lr")
    }

    /// The `comp` parameter (`sigcomp`, RFC 3486).
    pub fn comp(&self) -> Option<&'s str> {
        self.params.value("comp")
    }

    /// The `headers` component as (name, value) pairs, still escaped.
    pub fn header_fields(&self) -> impl Iterator<Item = (&'s str, &'s str)> {
        self.headers
            .into_iter()
            .flat_map(|h| h.split('&'))
            .filter_map(|kv| kv.split_once('='))
    }
}

impl<'s> Host<'s> {
    /// Parses a whole string as a host (`maddr`, `received`).
    pub fn parse(s: &'s str) -> Result<Host<'s>, Syntax> {
        let mut c = Cursor::new(s);
        let h = Host::parse_at(&mut c)?;
        if c.at_end() {
            Ok(h)
        } else {
            Err(c.error("unexpected character after host"))
        }
    }

    /// `host = hostname / IPv4address / IPv6reference` at the cursor.
    pub(crate) fn parse_at(c: &mut Cursor<'s>) -> Result<Host<'s>, Syntax> {
        let start = c.pos();
        if c.eat(b'[') {
            let inner = c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            let ip = inner.parse::<Ipv6Addr>().ok();
            return match (ip, c.eat(b']')) {
                (Some(ip), true) => Ok(Host::V6(ip)),
                _ => Err(Syntax {
                    what: "bad IPv6 reference",
                    at: start,
                }),
            };
        }
        let name = c.take_while(|b| lex::is(b, lex::HOSTNAME));
        classify_host(name).ok_or(Syntax {
            what: "bad host",
            at: start,
        })
    }

    /// The address, for an IPv4 or IPv6 host.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
        }
    }
}

/// `hostname = *( domainlabel "." ) toplabel [ "." ]` or `IPv4address`
/// (four `1*3DIGIT` of at most 255).
fn classify_host(name: &str) -> Option<Host<'_>> {
    if name.is_empty() {
        return None;
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    // One pass over the labels, no allocation: a host is read for every
    // URI and Via parsed.
    let mut numeric = true; // every label 1*DIGIT
    let mut labels_ok = true; // every label starts and ends alphanumeric
    let mut count = 0usize;
    let mut octets = [0u8; 4];
    let mut octets_ok = true; // the first four labels 1*3DIGIT, at most 255
    let mut top_first = None;
    for label in trimmed.as_bytes().split(|b| *b == b'.') {
        let digits = !label.is_empty() && label.iter().all(u8::is_ascii_digit);
        numeric &= digits;
        labels_ok &= label.first().is_some_and(u8::is_ascii_alphanumeric)
            && label.last().is_some_and(u8::is_ascii_alphanumeric);
        if digits {
            match octets.get_mut(count) {
                Some(o) if label.len() <= 3 => {
                    let v = label.iter().fold(0u16, |v, d| v * 10 + u16::from(d - b'0'));
                    match u8::try_from(v) {
                        Ok(v) => *o = v,
                        Err(_) => octets_ok = false,
                    }
                }
                _ => octets_ok = false,
            }
        }
        top_first = label.first().copied();
        count += 1;
    }
    if numeric {
        let v4 = trimmed.len() == name.len() && count == 4 && octets_ok;
        return v4.then(|| Host::V4(Ipv4Addr::from(octets)));
    }
    let top_ok = top_first.is_some_and(|b| b.is_ascii_alphabetic());
    (top_ok && labels_ok).then_some(Host::Name(name))
}

/// An IPv4 address in dotted decimal, written without the formatting
/// machinery (a Via's sent-by and `received` are written for every request
/// stamped and every transaction key): the text `Ipv4Addr`'s `Display`
/// gives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct V4Text {
    buf: [u8; 15],
    len: usize,
}

impl V4Text {
    /// The text of `a`.
    pub fn new(a: Ipv4Addr) -> V4Text {
        let mut t = V4Text {
            buf: [0; 15],
            len: 0,
        };
        for (i, o) in a.octets().into_iter().enumerate() {
            if i > 0 {
                t.push(b'.');
            }
            if o >= 100 {
                t.push(b'0' + o / 100);
            }
            if o >= 10 {
                t.push(b'0' + o / 10 % 10);
            }
            t.push(b'0' + o % 10);
        }
        t
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => f.write_str(V4Text::new(*a).as_str()),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            Uri::Other(o) => panic!("{o:?}"),
        }
    }

    #[test]
    fn sip_uris() {
        let u = sip("sip:+4915112345678@[2001:db8:1:2::7]:5060;comp=sigcomp");
        assert_eq!(u.user, Some("+4915112345678"));
        assert_eq!(u.host, Host::V6("2001:db8:1:2::7".parse().unwrap()));
        assert_eq!(u.port, Some(5060));
        assert_eq!(u.comp(), Some("sigcomp"));
        let u = sip("sips:ims.mnc001.mcc262.3gppnetwork.org");
        assert!(u.secure && u.user.is_none());
        assert_eq!(u.host, Host::Name("ims.mnc001.mcc262.3gppnetwork.org"));
        // RFC 4475 §3.1.1.9: the user part holds a parameter and an @.
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(&*u.user_bytes().unwrap(), b"user;par=u@example.net");
        // §3.1.1.2: user and password with every allowed character.
        let u = sip(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        );
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        // §3.1.1.4: escaped NULs.
        assert_eq!(
            &*sip("sip:null-%00-null@example.com").user_bytes().unwrap(),
            b"null-\0-null"
        );
        // §3.3.14: headers.
        let u = sip("sip:user@example.com?Route=%3Csip:sip.example.com%3E");
        assert_eq!(
            u.header_fields().collect::<Vec<_>>(),
            [("Route", "%3Csip:sip.example.com%3E")]
        );
        assert_eq!(
            sip("sip:127.0.0.1:5080").host,
            Host::V4(Ipv4Addr::new(127, 0, 0, 1))
        );
    }

    #[test]
    fn other_schemes() {
        for s in [
            "tel:+4915198765432",
            "nobodyKnowsThisScheme:totallyopaquecontent",
            "soap.beep://192.0.2.103:3002",
            "isbn:2983792873",
            "http://www.example.com",
            "urn:urn-7:3gpp-service.ims.icsi.mmtel",
        ] {
            let u = Uri::parse(s).unwrap();
            assert!(matches!(u, Uri::Other(_)), "{s}");
            assert_eq!(u.as_str(), s);
        }
        assert_eq!(Uri::parse("tel:+49").unwrap().scheme(), "tel");
    }

    #[test]
    fn bad_uris() {
        for s in [
            "<sip:user@example.com>",
            "sip:user@example.com; lr",
            "sip:",
            "sip:@example.com",
            "sip:user@exa mple.com",
            "sip:user@[2001:db8::1",
            "sip:user@example.com:99999",
            "sip:user@256.1.1.1",
            "sip:user@1host",
            "sip:a@b?x",
            "tel:",
            "1sip:x",
        ] {
            assert!(Uri::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn v4_text_is_display() {
        for a in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [255, 255, 255, 255],
            [10, 99, 100, 9],
            [192, 168, 1, 254],
        ] {
            let a = Ipv4Addr::from(a);
            assert_eq!(V4Text::new(a).as_str(), a.to_string());
        }
    }
}
