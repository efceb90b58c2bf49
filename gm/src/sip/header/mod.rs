//! Typed header values, each parsed from (and borrowing) the text of one
//! header row: `Via::parse_list(value)` and the like. A list header may be
//! written as several rows, each a comma-separated list (RFC 3261 §7.3.1);
//! [`crate::sip::Message`] gathers the rows.
//!
//! Every value type checks its grammar when parsed, so its accessors cannot
//! fail ("parse, don't validate"), and prints back (`Display`) in the
//! canonical form: the text a sender of ours writes.

mod addr;
mod auth;
mod misc;
mod security;
mod via;

use std::fmt;

pub use addr::{Contacts, NameAddr};
pub use auth::{Algorithm, Auth, auth_value};
pub use misc::{CSeq, Event, MediaType, SubscriptionState};
pub use security::{Ipsec3gpp, SecMechanism};
pub use via::{MAGIC_COOKIE, Rport, Via};

use super::error::Syntax;
use super::lex::{self, Cursor};

/// A `qvalue` (RFC 3261 §25.1: `"0" ["." 0*3DIGIT] / "1" ["." 0*3("0")]`)
/// in thousandths: `q=0.33` is `Qvalue(330)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Qvalue(pub u16);

impl Qvalue {
    /// Parses a qvalue.
    pub fn parse(s: &str) -> Option<Qvalue> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut thousandths = 0u16;
        for (i, b) in frac.bytes().enumerate() {
            let scale = [100u16, 10, 1].get(i).copied().unwrap_or(0);
            thousandths += u16::from(b - b'0') * scale;
        }
        match int {
            "0" => Some(Qvalue(thousandths)),
            "1" if thousandths == 0 => Some(Qvalue(1000)),
            _ => None,
        }
    }
}

impl fmt::Display for Qvalue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1000 {
            return f.write_str("1");
        }
        let s = format!("0.{:03}", self.0);
        f.write_str(s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// `delta-seconds = 1*DIGIT`, saturating at 2**32-1 (RFC 3261 §10.2.1.1:
/// "Implementations MAY treat values larger than 2**32-1 ... as equivalent
/// to 2**32-1"); `None` if not digits.
pub(crate) fn delta_seconds(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(lex::digits_u64(s).map_or(u32::MAX, |v| u32::try_from(v).unwrap_or(u32::MAX)))
}

/// Parses a comma-separated list (`x *(COMMA x)`) of one or more elements,
/// the whole of `value`.
pub(crate) fn list<'s, T>(
    value: &'s str,
    mut one: impl FnMut(&mut Cursor<'s>) -> Result<T, Syntax>,
) -> Result<Vec<T>, Syntax> {
    let mut c = Cursor::new(value);
    let mut out = Vec::new();
    loop {
        c.skip_ws();
        out.push(one(&mut c)?);
        if !c.sep(b',') {
            break;
        }
    }
    c.end("expected ',' or the end of the value")?;
    Ok(out)
}

/// A list of option-tags (Require, Proxy-Require, Supported,
/// Unsupported: `option-tag *(COMMA option-tag)`, RFC 3261 §20.32);
/// `empty_ok` for Supported, whose list may be empty.
pub fn option_tags(value: &str, empty_ok: bool) -> Result<Vec<&str>, Syntax> {
    if empty_ok && lex::trim_lws(value).is_empty() {
        return Ok(Vec::new());
    }
    list(value, |c| c.token("expected an option-tag"))
}

/// A single token value (SIP-ETag, SIP-If-Match: `entity-tag = token`,
/// RFC 3903 §11.3).
pub fn single_token(value: &str) -> Result<&str, Syntax> {
    let mut c = Cursor::new(value);
    c.skip_ws();
    let t = c.token("expected a token")?;
    c.end("expected the end of the value")?;
    Ok(t)
}

/// `1*DIGIT` no larger than `max` (Max-Forwards: 255, RFC 3261 §20.22).
pub fn number(value: &str, max: u64) -> Result<u64, Syntax> {
    let v = lex::trim_lws(value);
    match lex::digits_u64(v) {
        Some(n) if n <= max => Ok(n),
        Some(_) => Err(Syntax {
            what: "value out of range",
            at: 0,
        }),
        None => Err(Syntax {
            what: "expected digits",
            at: 0,
        }),
    }
}

/// An Expires value (`delta-seconds`, RFC 3261 §20.19); a number above
/// 2**32-1 counts as 2**32-1 (as RFC 3261 §10.2.1.1 allows for a
/// Contact's `expires`, and RFC 4475 §3.1.2.4 for this header).
pub fn expires(value: &str) -> Result<u32, Syntax> {
    delta_seconds(lex::trim_lws(value)).ok_or(Syntax {
        what: "expected delta-seconds",
        at: 0,
    })
}

/// A Call-ID (`callid = word [ "@" word ]`, RFC 3261 §20.8).
pub fn call_id(value: &str) -> Result<&str, Syntax> {
    let v = lex::trim_lws(value);
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| lex::is(b, lex::WORD));
    let ok = match v.split_once('@') {
        Some((a, b)) => word(a) && word(b),
        None => word(v),
    };
    if ok {
        Ok(v)
    } else {
        Err(Syntax {
            what: "not word [\"@\" word]",
            at: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qvalues() {
        assert_eq!(Qvalue::parse("0.33"), Some(Qvalue(330)));
        assert_eq!(Qvalue::parse("0"), Some(Qvalue(0)));
        assert_eq!(Qvalue::parse("0."), Some(Qvalue(0)));
        assert_eq!(Qvalue::parse("1.000"), Some(Qvalue(1000)));
        assert_eq!(Qvalue::parse("0.05"), Some(Qvalue(50)));
        for bad in ["1.5", "2", "0.1234", "", ".5", "0.a"] {
            assert_eq!(Qvalue::parse(bad), None, "{bad}");
        }
        assert_eq!(Qvalue(330).to_string(), "0.33");
        assert_eq!(Qvalue(50).to_string(), "0.05");
        assert_eq!(Qvalue(0).to_string(), "0");
        assert_eq!(Qvalue(1000).to_string(), "1");
    }

    #[test]
    fn scalars() {
        assert_eq!(number(" 0068", 255), Ok(68));
        assert!(number("300", 255).is_err());
        assert_eq!(expires(&format!("1{}", "0".repeat(100))), Ok(u32::MAX));
        assert!(expires("soon").is_err());
        assert_eq!(
            call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"),
            Ok("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
        );
        assert!(call_id("a@b@c").is_err());
        assert!(call_id("").is_err());
        assert_eq!(
            option_tags("nothingSupportsThis, nothingSupportsThisEither", false)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(option_tags(" ", true).unwrap().len(), 0);
        assert!(option_tags(" ", false).is_err());
        assert_eq!(single_token(" abc "), Ok("abc"));
    }
}
