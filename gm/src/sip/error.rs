//! The codec's error type.

use core::fmt;

use super::name::HeaderName;

/// Where a value stops matching its grammar, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syntax {
    /// What is wrong, e.g. `"expected '>'"`.
    pub what: &'static str,
    /// The byte offset inside the element (header value, start line).
    pub at: usize,
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// Why bytes are not a SIP message, or a header value does not match its
/// grammar.
///
/// Each variant names the element at fault ([`Error::element`]); a request
/// refused for any of them is answered with [`Error::status`] if it can be
/// answered at all (RFC 3261 §8.2, §21.4.1, §21.5.12), and a response is
/// dropped.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No bytes, or only the CRLFs that may precede a start line (RFC 3261
    /// §7.5).
    Empty,
    /// No empty line ends the header section.
    NoHeaderEnd,
    /// A CR or LF that is not part of a CRLF line end (RFC 3261 §7.1,
    /// §7.3.1), at this offset of the message.
    BareLineBreak {
        /// Byte offset in the message.
        offset: usize,
    },
    /// The start line or a header line is not UTF-8 (every element of the
    /// header section is ASCII or UTF-8, RFC 3261 §25.1).
    NotUtf8 {
        /// 1-based line number (the start line is line 1).
        line: usize,
    },
    /// The Request-Line does not match `Method SP Request-URI SP
    /// SIP-Version` (RFC 3261 §7.1).
    RequestLine(Syntax),
    /// The Request-URI is not a URI, or a SIP URI with headers (RFC 3261
    /// §19.1.1 allows none there).
    RequestUri(Syntax),
    /// The Status-Line does not match `SIP-Version SP Status-Code SP
    /// Reason-Phrase` with a status code from 100 to 699 (RFC 3261 §7.2).
    StatusLine(Syntax),
    /// A header line that is not `token *WSP ":" value`, or a continuation
    /// line right after the start line.
    HeaderLine {
        /// 1-based line number.
        line: usize,
    },
    /// Content-Length is not `1*DIGIT` or is too large (RFC 3261 §20.14,
    /// RFC 4475 §3.1.2.3).
    ContentLength(Syntax),
    /// Content-Length appears more than once (RFC 4475 §3.3.9: the framing
    /// is then unknown).
    DuplicateContentLength,
    /// Content-Length counts more bytes than the datagram holds after the
    /// header section (RFC 3261 §18.3, RFC 4475 §3.1.2.2).
    Truncated {
        /// The Content-Length value.
        declared: usize,
        /// The bytes there are.
        available: usize,
    },
    /// A message on a stream without Content-Length (RFC 3261 §18.3).
    MissingContentLength,
    /// Larger than the limit the caller set (513 Message Too Large, RFC
    /// 3261 §21.5.12).
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A header value does not match the grammar of its header.
    Header {
        /// The header.
        name: HeaderName,
        /// What is wrong, in its value.
        syntax: Syntax,
    },
    /// A header that must be present is not.
    Missing(HeaderName),
    /// A header that may appear once appears more often (RFC 3261 §7.3.1).
    Duplicate {
        /// The header.
        name: HeaderName,
        /// How many times it appears.
        count: usize,
    },
}

impl Error {
    /// The element at fault: `"Request-Line"`, `"Request-URI"`,
    /// `"Status-Line"`, `"Content-Length"`, a header name, or `"message"`
    /// for the framing.
    pub fn element(&self) -> &'static str {
        match self {
            Error::RequestLine(_) => "Request-Line",
            Error::RequestUri(_) => "Request-URI",
            Error::StatusLine(_) => "Status-Line",
            Error::ContentLength(_)
            | Error::DuplicateContentLength
            | Error::Truncated { .. }
            | Error::MissingContentLength => "Content-Length",
            Error::Header { name, .. } | Error::Missing(name) | Error::Duplicate { name, .. } => {
                name.as_str()
            }
            Error::Empty
            | Error::NoHeaderEnd
            | Error::BareLineBreak { .. }
            | Error::NotUtf8 { .. }
            | Error::HeaderLine { .. }
            | Error::TooLarge { .. } => "message",
        }
    }

    /// The status a request refused for this reason is answered with: 513
    /// for [`Error::TooLarge`], 400 Bad Request otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Error::TooLarge { .. } => 513,
            _ => 400,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Empty => f.write_str("no message (empty, or only CRLFs)"),
            Error::NoHeaderEnd => f.write_str("no empty line ends the header section"),
            Error::BareLineBreak { offset } => {
                write!(f, "CR or LF outside a CRLF line end at byte {offset}")
            }
            Error::NotUtf8 { line } => write!(f, "line {line} is not UTF-8"),
            Error::RequestLine(s) => write!(f, "Request-Line: {s}"),
            Error::RequestUri(s) => write!(f, "Request-URI: {s}"),
            Error::StatusLine(s) => write!(f, "Status-Line: {s}"),
            Error::HeaderLine { line } => {
                write!(f, "line {line} is not a header (token \":\" value)")
            }
            Error::ContentLength(s) => write!(f, "Content-Length: {s}"),
            Error::DuplicateContentLength => f.write_str("Content-Length appears more than once"),
            Error::Truncated {
                declared,
                available,
            } => write!(
                f,
                "Content-Length {declared} but {available} bytes follow the header section"
            ),
            Error::MissingContentLength => {
                f.write_str("no Content-Length in a message on a stream")
            }
            Error::TooLarge { limit } => write!(f, "message larger than {limit} bytes"),
            Error::Header { name, syntax } => write!(f, "{name}: {syntax}"),
            Error::Missing(name) => write!(f, "no {name} header"),
            Error::Duplicate { name, count } => {
                write!(f, "{name} appears {count} times (at most once)")
            }
        }
    }
}

impl std::error::Error for Error {}
