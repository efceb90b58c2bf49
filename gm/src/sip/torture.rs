//! RFC 4475 torture verdicts: how this codec and the UAS checks judge a
//! datagram, and the expected verdicts of `vectors/sip-torture/verdicts.txt`
//! to compare with.

use std::fmt;

use super::check::{self, Policy};
use super::error::Error;
use super::message::Message;

/// What becomes of a datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Well formed, and processed.
    Accept,
    /// Not a SIP message (framing, start line, or a header that does not
    /// match its grammar): a request is answered with
    /// [`Error::status`] if it can be, a response is dropped.
    Reject(Error),
    /// A well-formed request answered with this status instead of being
    /// processed ([`check::request`]).
    Answer(check::Refusal),
    /// A well-formed response the UAC drops ([`check::response`]).
    Discard(String),
}

/// Judges one datagram as a UAS with `policy` (requests) or a UAC
/// (responses) would: parse, [`Message::validate`], then
/// [`check::request`] or [`check::response`].
pub fn judge(datagram: &[u8], policy: &Policy<'_>) -> Verdict {
    let msg = match Message::parse(datagram) {
        Ok(m) => m,
        Err(e) => return Verdict::Reject(e),
    };
    if let Err(e) = msg.validate() {
        return Verdict::Reject(e);
    }
    if msg.is_request() {
        match check::request(&msg, policy) {
            Ok(()) => Verdict::Accept,
            Err(r) => Verdict::Answer(r),
        }
    } else {
        match check::response(&msg) {
            Ok(()) => Verdict::Accept,
            Err(why) => Verdict::Discard(why),
        }
    }
}

/// An expected verdict, as `verdicts.txt` writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// `accept`.
    Accept,
    /// `reject(ELEMENT)`: refused by the codec, naming this element
    /// ([`Error::element`]).
    Reject(String),
    /// `answer(STATUS)`.
    Answer(u16),
    /// `discard`.
    Discard,
}

/// One line of `verdicts.txt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// The message's name (`NAME.dat`).
    pub name: String,
    /// The RFC 4475 section.
    pub section: String,
    /// The verdict.
    pub verdict: Expected,
    /// The status the RFC names, if any.
    pub rfc_status: Option<u16>,
    /// The RFC's words.
    pub words: String,
}

/// Parses `verdicts.txt`: `name section verdict rfc-status words...`,
/// `#` comments and blank lines ignored. The error names the line.
pub fn parse_expectations(text: &str) -> Result<Vec<Expectation>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| format!("line {}: {what}", i + 1);
        let (name, rest) = field(line);
        let (section, rest) = field(rest);
        let (verdict, rest) = field(rest);
        let (status, words) = field(rest);
        if status.is_empty() {
            return Err(bad("expected: name section verdict status words"));
        }
        let verdict = match verdict {
            "accept" => Expected::Accept,
            "discard" => Expected::Discard,
            v => {
                let inner = |p: &str| v.strip_prefix(p).and_then(|x| x.strip_suffix(')'));
                if let Some(e) = inner("reject(") {
                    Expected::Reject(e.to_owned())
                } else if let Some(s) = inner("answer(") {
                    Expected::Answer(s.parse().map_err(|_| bad("bad answer status"))?)
                } else {
                    return Err(bad(
                        "verdict: accept, reject(ELEMENT), answer(STATUS) or discard",
                    ));
                }
            }
        };
        let rfc_status = match status {
            "-" => None,
            s => Some(s.parse().map_err(|_| bad("bad RFC status"))?),
        };
        out.push(Expectation {
            name: name.to_owned(),
            section: section.to_owned(),
            verdict,
            rfc_status,
            words: words.trim().to_owned(),
        });
    }
    Ok(out)
}

/// The first whitespace-separated field of `s`, and the rest.
fn field(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    (s.get(..end).unwrap_or(""), s.get(end..).unwrap_or(""))
}

impl Verdict {
    /// Whether this verdict is the expected one: the same kind, the same
    /// element for a reject (and, for a rejected request, the status the
    /// RFC names), the same status for an answer.
    pub fn matches(&self, e: &Expectation) -> bool {
        match (self, &e.verdict) {
            (Verdict::Accept, Expected::Accept) | (Verdict::Discard(_), Expected::Discard) => true,
            (Verdict::Reject(err), Expected::Reject(elem)) => {
                err.element().eq_ignore_ascii_case(elem)
                    && e.rfc_status.is_none_or(|s| s == err.status())
            }
            (Verdict::Answer(r), Expected::Answer(s)) => r.status == *s,
            _ => false,
        }
    }

    /// The short form used in `verdicts.txt` (`reject(Via)`...).
    pub fn short(&self) -> String {
        match self {
            Verdict::Accept => "accept".into(),
            Verdict::Reject(e) => format!("reject({})", e.element()),
            Verdict::Answer(r) => format!("answer({})", r.status),
            Verdict::Discard(_) => "discard".into(),
        }
    }

    /// Why, for a verdict other than accept.
    pub fn reason(&self) -> Option<String> {
        match self {
            Verdict::Accept => None,
            Verdict::Reject(e) => Some(e.to_string()),
            Verdict::Answer(r) => Some(r.why.clone()),
            Verdict::Discard(w) => Some(w.clone()),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Accept => f.write_str("accept"),
            Expected::Reject(e) => write!(f, "reject({e})"),
            Expected::Answer(s) => write!(f, "answer({s})"),
            Expected::Discard => f.write_str("discard"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_file_format() {
        let e = parse_expectations(
            "# c\n\nwsinv 3.1.1.1 accept - \"All elements\"\nbadinv01  3.1.2.1  reject(Via)  400  \"x\"\nbadvers 3.1.2.16 answer(505) 505 w\n",
        )
        .unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].verdict, Expected::Reject("Via".into()));
        assert_eq!(e[1].rfc_status, Some(400));
        assert_eq!(e[2].verdict, Expected::Answer(505));
        assert!(
            parse_expectations("x 1 maybe - w")
                .unwrap_err()
                .starts_with("line 1")
        );
    }
}
