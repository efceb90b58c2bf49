//! CSeq, Content-Type and Accept, Event and Subscription-State.

use std::fmt;

use super::{delta_seconds, list};
use crate::sip::error::Syntax;
use crate::sip::lex::{self, Cursor};
use crate::sip::method::Method;
use crate::sip::params::Params;

/// CSeq (RFC 3261 §20.16): `1*DIGIT LWS Method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'s> {
    /// The sequence number: a 32-bit unsigned integer (RFC 3261 §8.1.1.5;
    /// RFC 4475 §3.1.2.4 rejects larger ones).
    pub seq: u32,
    /// The method.
    pub method: Method<'s>,
}

impl<'s> CSeq<'s> {
    /// Parses a CSeq value.
    pub fn parse(value: &'s str) -> Result<CSeq<'s>, Syntax> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let at = c.pos();
        let digits = c.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return Err(Syntax {
                what: "expected a sequence number",
                at,
            });
        }
        let seq = lex::digits_u64(digits)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(Syntax {
                what: "sequence number above 2**32-1",
                at,
            })?;
        if !c.skip_ws() {
            return Err(c.error("expected whitespace before the method"));
        }
        let method = Method::from_token(c.token("expected a method")?);
        c.end("expected the end of the value")?;
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// A media type (Content-Type, RFC 3261 §20.15: `m-type SLASH m-subtype
/// *(SEMI m-parameter)`) or an Accept media range (§20.1, where the type
/// and subtype may be `*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaType<'s> {
    /// `m-type` (compare case-insensitively).
    pub mtype: &'s str,
    /// `m-subtype`.
    pub subtype: &'s str,
    /// The parameters (`charset`, `boundary`, `q` in Accept...).
    pub params: Params<'s>,
}

impl<'s> MediaType<'s> {
    /// Parses a Content-Type value.
    pub fn parse(value: &'s str) -> Result<MediaType<'s>, Syntax> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let m = parse_media(&mut c, false)?;
        c.end("expected ';' or the end of the value")?;
        Ok(m)
    }

    /// Parses an Accept row: `[ accept-range *(COMMA accept-range) ]`
    /// (empty means nothing is acceptable).
    pub fn parse_accept(value: &'s str) -> Result<Vec<MediaType<'s>>, Syntax> {
        if lex::trim_lws(value).is_empty() {
            return Ok(Vec::new());
        }
        list(value, |c| parse_media(c, true))
    }

    /// Whether this is `mtype/subtype` (case-insensitive).
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    /// Whether this range (from Accept) covers `mtype/subtype`.
    pub fn covers(&self, mtype: &str, subtype: &str) -> bool {
        (self.mtype == "*" || self.mtype.eq_ignore_ascii_case(mtype))
            && (self.subtype == "*" || self.subtype.eq_ignore_ascii_case(subtype))
    }
}

fn parse_media<'s>(c: &mut Cursor<'s>, range: bool) -> Result<MediaType<'s>, Syntax> {
    let mtype = if range && c.eat(b'*') {
        "*"
    } else {
        c.token("expected a media type")?
    };
    if !c.sep(b'/') {
        return Err(c.error("expected '/'"));
    }
    let subtype = if range && c.eat(b'*') {
        "*"
    } else {
        c.token("expected a media subtype")?
    };
    if mtype == "*" && subtype != "*" {
        return Err(c.error("'*/subtype' is not a media range"));
    }
    let params = Params::parse_generic(c, None)?;
    Ok(MediaType {
        mtype,
        subtype,
        params,
    })
}

impl fmt::Display for MediaType<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.mtype, self.subtype, self.params)
    }
}

/// Event (RFC 6665 §8.2.1): `event-type *( SEMI event-param )`,
/// `event-type = event-package *( "." event-template )`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'s> {
    /// The whole event type, e.g. `presence` or `presence.winfo`.
    pub event_type: &'s str,
    /// The parameters (`id`, ...).
    pub params: Params<'s>,
}

impl<'s> Event<'s> {
    /// Parses an Event value.
    pub fn parse(value: &'s str) -> Result<Event<'s>, Syntax> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let at = c.pos();
        let event_type = c.take_while(|b| lex::is(b, lex::TOKEN));
        let parts_ok = event_type
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| lex::is(b, lex::TOKEN_NODOT)));
        if !parts_ok {
            return Err(Syntax {
                what: "expected event-package *(\".\" event-template)",
                at,
            });
        }
        let params = Params::parse_generic(&mut c, None)?;
        c.end("expected ';' or the end of the value")?;
        Ok(Event { event_type, params })
    }

    /// The event package (`presence`, `reg`, ...).
    pub fn package(&self) -> &'s str {
        self.event_type.split('.').next().unwrap_or(self.event_type)
    }

    /// The `id` parameter.
    pub fn id(&self) -> Option<&'s str> {
        self.params.value("id")
    }
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.event_type, self.params)
    }
}

/// Subscription-State (RFC 6665 §8.2.3): `substate-value *( SEMI
/// subexp-params )`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionState<'s> {
    /// `active`, `pending`, `terminated` or an extension token.
    pub state: &'s str,
    /// `reason`.
    pub reason: Option<&'s str>,
    /// `expires` (delta-seconds).
    pub expires: Option<u32>,
    /// `retry-after` (delta-seconds).
    pub retry_after: Option<u32>,
    /// Every parameter, as written.
    pub params: Params<'s>,
}

impl<'s> SubscriptionState<'s> {
    /// Parses a Subscription-State value.
    pub fn parse(value: &'s str) -> Result<SubscriptionState<'s>, Syntax> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let state = c.token("expected a subscription state")?;
        let at = c.pos();
        let params = Params::parse_generic(&mut c, None)?;
        c.end("expected ';' or the end of the value")?;
        let secs = |name: &str| -> Result<Option<u32>, Syntax> {
            match params.get(name) {
                None => Ok(None),
                Some(p) => p.value.and_then(delta_seconds).map(Some).ok_or(Syntax {
                    what: "expected delta-seconds",
                    at,
                }),
            }
        };
        Ok(SubscriptionState {
            state,
            reason: params.value("reason"),
            expires: secs("expires")?,
            retry_after: secs("retry-after")?,
            params,
        })
    }
}

impl fmt::Display for SubscriptionState<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.state, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        assert_eq!(
            CSeq::parse("0009\r\n  INVITE").unwrap(),
            CSeq {
                seq: 9,
                method: Method::Invite
            }
        );
        let c = CSeq::parse("139122385 !interesting-Method0123456789_*+`.%indeed'~").unwrap();
        assert_eq!(
            c.method,
            Method::Extension("!interesting-Method0123456789_*+`.%indeed'~")
        );
        assert_eq!(CSeq::parse("4294967295 ACK").unwrap().seq, u32::MAX);
        for bad in [
            "36893488147419103232 REGISTER",
            "4294967296 ACK",
            "1",
            "INVITE",
            "1INVITE",
            "1 INVITE x",
        ] {
            assert!(CSeq::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(CSeq::parse("12 NOTIFY").unwrap().to_string(), "12 NOTIFY");
    }

    #[test]
    fn media_types() {
        let m = MediaType::parse("multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(m.params.value("boundary"), Some("7a9cbec02ceef655"));
        assert!(MediaType::parse("text/plain;charset=UTF-8").is_ok());
        assert!(MediaType::parse("text").is_err());
        let a = MediaType::parse_accept("application/sdp, application/pkcs7-mime,\r\n        multipart/mixed, */*;q=0.1, text/*").unwrap();
        assert_eq!(a.len(), 5);
        assert!(a[3].covers("image", "png"));
        assert!(a[4].covers("text", "plain") && !a[4].covers("image", "plain"));
        assert!(MediaType::parse_accept("").unwrap().is_empty());
    }

    #[test]
    fn events() {
        let e = Event::parse("presence.winfo;id=1").unwrap();
        assert_eq!((e.package(), e.id()), ("presence", Some("1")));
        assert!(Event::parse("presence..x").is_err());
        let s = SubscriptionState::parse("active;expires=3421").unwrap();
        assert_eq!((s.state, s.expires), ("active", Some(3421)));
        let s = SubscriptionState::parse("terminated;reason=deactivated;retry-after=30").unwrap();
        assert_eq!((s.reason, s.retry_after), (Some("deactivated"), Some(30)));
        assert!(SubscriptionState::parse("active;expires=soon").is_err());
    }
}
