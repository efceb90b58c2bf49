//! Building requests and responses: headers in the order given,
//! Content-Type and a correct Content-Length added last, every typed
//! header checked against its grammar before the message exists.
//!
//! Each row is checked once, as it goes in ([`Builder::header`],
//! [`Builder::response_to`], [`Builder::body`]'s type); [`Builder::build`]
//! then only counts the single-valued headers instead of parsing the
//! message it just built again (a debug build still does, and asserts).

use std::borrow::Cow;
use std::fmt;

use super::error::{Error, Syntax};
use super::header::NameAddr;
use super::lex::Cursor;
use super::message::{Message, StartLine, check_value};
use super::method::Method;
use super::name::HeaderName;
use super::params::Params;
use super::uri::Uri;

/// A message being built: each row is checked as it is added, the first
/// error is kept and returned by [`Builder::build`].
#[derive(Debug)]
#[must_use]
pub struct Builder {
    msg: Message<'static>,
    body: Option<(String, Vec<u8>)>,
    error: Option<Error>,
    /// Whether the first To row has a tag, learnt when it was checked
    /// (`None`: no To yet), so [`Builder::to_tag`] parses nothing.
    to_tagged: Option<bool>,
}

impl Message<'static> {
    /// Starts a request: `method uri SIP/2.0`. The URI must be a URI, and
    /// a SIP URI without headers (RFC 3261 §19.1.1).
    pub fn request(method: Method<'_>, uri: &str) -> Builder {
        let error = match Uri::parse(uri) {
            Err(e) => Some(Error::RequestUri(e)),
            Ok(Uri::Sip(u)) if u.headers.is_some() => Some(Error::RequestUri(Syntax {
                what: "headers in a Request-URI",
                at: 0,
            })),
            Ok(_) => None,
        };
        Builder {
            msg: Message::from_parts(StartLine::Request {
                method: Cow::Owned(method.as_str().to_owned()),
                uri: Cow::Owned(uri.to_owned()),
                version: Cow::Borrowed("SIP/2.0"),
            }),
            body: None,
            error,
            to_tagged: None,
        }
    }

    /// Starts a response with `status` (100 to 699) and `reason` (the
    /// RFC's phrase when `None`, see [`reason_phrase`]).
    pub fn response(status: u16, reason: Option<&str>) -> Builder {
        let reason = reason.unwrap_or_else(|| reason_phrase(status)).to_owned();
        let error = if !(100..=699).contains(&status) {
            Some(Error::StatusLine(Syntax {
                what: "not a status code from 100 to 699",
                at: 8,
            }))
        } else if reason.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
            Some(Error::StatusLine(Syntax {
                what: "control character in the reason phrase",
                at: 12,
            }))
        } else {
            None
        };
        Builder {
            msg: Message::from_parts(StartLine::Response {
                version: Cow::Borrowed("SIP/2.0"),
                status,
                reason: Cow::Owned(reason),
            }),
            body: None,
            error,
            to_tagged: None,
        }
    }
}

impl Builder {
    /// Starts a response to `request` (RFC 3261 §8.2.6.2): its Via rows,
    /// From, To, Call-ID and CSeq copied as they are, in that order.
    pub fn response_to(request: &Message<'_>, status: u16, reason: Option<&str>) -> Builder {
        let mut b = Message::response(status, reason);
        for kind in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            for h in request.rows(kind) {
                // A row the UAS already read is not parsed again; To
                // always is (whether it has a tag decides `to_tag`).
                if h.is_checked() && kind != HeaderName::To {
                    if b.error.is_none() {
                        if let Err(e) = b.msg.push_checked(kind, h.value()) {
                            b.error = Some(e);
                        }
                    }
                } else {
                    b = b.header(kind.as_str(), h.value());
                }
            }
        }
        b
    }

    /// Appends a header row (`name: value`); a value that does not match
    /// its header's grammar makes [`Builder::build`] fail.
    pub fn header(mut self, name: &str, value: impl fmt::Display) -> Builder {
        if self.error.is_none() {
            // A known header written as the RFC spells it needs no copy
            // of its name.
            let kind = HeaderName::from_name(name);
            let name: Cow<'static, str> = if kind != HeaderName::Other && kind.as_str() == name {
                Cow::Borrowed(kind.as_str())
            } else {
                Cow::Owned(name.to_owned())
            };
            let value = value.to_string();
            let checked = if kind == HeaderName::To {
                // The one parse of To also tells whether it has a tag.
                NameAddr::parse(&value).map(|a| {
                    self.to_tagged.get_or_insert(a.tag().is_some());
                })
            } else {
                check_value(kind, &value)
            };
            let added = checked
                .map_err(|syntax| Error::Header { name: kind, syntax })
                .and_then(|()| self.msg.push_header(name, value));
            if let Err(e) = added {
                self.error = Some(e);
            }
        }
        self
    }

    /// Adds `;tag=tag` to the To header unless it has a tag (a UAS tags
    /// its responses, RFC 3261 §8.2.6.2).
    pub fn to_tag(mut self, tag: &str) -> Builder {
        if self.error.is_some() {
            return self;
        }
        match self.to_tagged {
            None => self.error = Some(Error::Missing(HeaderName::To)),
            Some(true) => {}
            Some(false) => {
                // A checked To stays valid with one more generic-param
                // (RFC 3261 §25.1 to-param), if that one is.
                let old = self.msg.header("To").unwrap_or_default();
                let mut to = String::with_capacity(old.len() + 5 + tag.len());
                to.push_str(old);
                to.push_str(";tag=");
                to.push_str(tag);
                let mut c = Cursor::new(to.get(old.len()..).unwrap_or_default());
                let ok = Params::parse_generic(&mut c, None).is_ok() && c.at_end();
                let set = if ok {
                    self.msg.set_header("To", to)
                } else {
                    Err(Error::Header {
                        name: HeaderName::To,
                        syntax: Syntax {
                            what: "a tag must be a token",
                            at: 0,
                        },
                    })
                };
                match set {
                    Ok(()) => self.to_tagged = Some(true),
                    Err(e) => self.error = Some(e),
                }
            }
        }
        self
    }

    /// Sets the body and its type.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Builder {
        self.body = Some((content_type.to_owned(), body.into()));
        self
    }

    /// The message, with Content-Type (for a body) and Content-Length
    /// last; fails if a header did not match its grammar (checked when it
    /// was added) or a single-valued one appears twice.
    pub fn build(mut self) -> Result<Message<'static>, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.msg.remove_header("Content-Length");
        match self.body {
            Some((t, b)) => {
                check_value(HeaderName::ContentType, &t).map_err(|syntax| Error::Header {
                    name: HeaderName::ContentType,
                    syntax,
                })?;
                self.msg.remove_header("Content-Type");
                self.msg.set_body(Some(&t), b)?;
            }
            None => self.msg.set_body(None, Vec::new())?,
        }
        self.msg.check_singles()?;
        // Every row was checked as it went in: the whole check agrees.
        debug_assert_eq!(self.msg.validate(), Ok(()));
        Ok(self.msg)
    }
}

/// The reason phrase RFC 3261 §21 (and the extensions used on Gm) give a
/// status code; `""` for others.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message can be shared between threads (the rows' memos do not
    /// take that away).
    #[test]
    fn messages_stay_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<Message<'static>>();
    }

    /// The rows a UAS read are copied into its response without being
    /// parsed again, the others are checked as before: a malformed From
    /// fails the build whether or not it was read (a failed read notes
    /// nothing), and a read one arrives noted in the response.
    #[test]
    fn a_response_parses_again_only_the_rows_not_read() {
        let text = |from: &str| {
            format!(
                "MESSAGE sip:b@example.org SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2\r\n\
                 From: {from}\r\nTo: <sip:b@example.org>\r\nCall-ID: c1\r\n\
                 CSeq: 3 MESSAGE\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let good = text("<sip:a@example.org>;tag=1");
        let req = Message::parse(good.as_bytes()).unwrap();
        assert!(
            req.headers().iter().all(|h| !h.is_checked()),
            "nothing read yet"
        );
        req.from().unwrap();
        req.cseq().unwrap();
        req.vias().unwrap();
        let read = |m: &Message<'_>, kind| m.rows(kind).all(crate::sip::Header::is_checked);
        assert!(read(&req, HeaderName::From) && read(&req, HeaderName::Via));
        assert!(!read(&req, HeaderName::CallId));
        let resp = Builder::response_to(&req, 200, None)
            .to_tag("t")
            .build()
            .unwrap();
        for kind in [HeaderName::From, HeaderName::CSeq, HeaderName::Via] {
            assert!(read(&resp, kind), "{kind} copied as read");
        }
        assert_eq!(resp.vias().unwrap().len(), 2);
        assert_eq!(resp.from().unwrap().tag(), Some("1"));
        // Equal to the same response built from a request nobody read.
        let fresh = Message::parse(good.as_bytes()).unwrap();
        let again = Builder::response_to(&fresh, 200, None)
            .to_tag("t")
            .build()
            .unwrap();
        assert_eq!(resp, again);
        // A malformed From: refused, read (and failed) or not.
        let bad = text("<sip:a@example.org;tag=1");
        let req = Message::parse(bad.as_bytes()).unwrap();
        let built = Builder::response_to(&req, 200, None).to_tag("t").build();
        assert!(matches!(
            built,
            Err(Error::Header {
                name: HeaderName::From,
                ..
            })
        ));
        assert!(req.from().is_err());
        assert!(!read(&req, HeaderName::From));
        let built = Builder::response_to(&req, 200, None).to_tag("t").build();
        assert!(matches!(
            built,
            Err(Error::Header {
                name: HeaderName::From,
                ..
            })
        ));
    }

    #[test]
    fn request_with_body() {
        let m = Message::request(Method::Message, "sip:bob@example.org")
            .header(
                "Via",
                "SIP/2.0/UDP [2001:db8::7]:5060;branch=z9hG4bKm1;rport",
            )
            .header("Max-Forwards", 70)
            .header("From", "<sip:alice@example.org>;tag=a1")
            .header("To", "<sip:bob@example.org>")
            .header("Call-ID", "m1@h")
            .header("CSeq", "1 MESSAGE")
            .body("text/plain;charset=UTF-8", "hello")
            .build()
            .unwrap();
        let b = m.to_bytes();
        assert!(b.ends_with(
            b"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 5\r\n\r\nhello"
        ));
        let again = Message::parse(&b).unwrap();
        assert_eq!(again.body(), b"hello");
        assert_eq!(again.to_bytes(), b);
    }

    #[test]
    fn response_to_a_request() {
        let req = Message::parse(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nv: SIP/2.0/UDP g;branch=z9hG4bK2\r\nFrom: <sip:c@d>;tag=9\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 4 OPTIONS\r\nContent-Length: 0\r\n\r\n").unwrap();
        let r = Builder::response_to(&req, 200, None)
            .to_tag("t1")
            .build()
            .unwrap();
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert_eq!(
            text,
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP g;branch=z9hG4bK2\r\nFrom: <sip:c@d>;tag=9\r\nTo: <sip:a@b>;tag=t1\r\nCall-ID: x\r\nCSeq: 4 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        assert_eq!(r.to().unwrap().tag(), Some("t1"));
    }

    #[test]
    fn refusals() {
        assert!(
            Message::request(Method::Invite, "<sip:a@b>")
                .build()
                .is_err()
        );
        assert!(
            Message::request(Method::Invite, "sip:a@b?Route=x")
                .build()
                .is_err()
        );
        assert!(Message::response(99, None).build().is_err());
        assert!(
            Message::request(Method::Options, "sip:a@b")
                .header("CSeq", "x OPTIONS")
                .build()
                .is_err()
        );
        assert!(
            Message::request(Method::Options, "sip:a@b")
                .header("Via", "x\r\ny")
                .build()
                .is_err()
        );
    }

    /// What [`Builder::build`] no longer parses again: a built message
    /// validates, parses back as the same message and emits the same
    /// bytes.
    fn round_trip(m: &Message<'static>) {
        assert_eq!(m.validate(), Ok(()));
        let b = m.to_bytes();
        let again = Message::parse(&b).unwrap();
        assert_eq!(again.validate(), Ok(()));
        assert_eq!(again.to_bytes(), b);
        assert_eq!(again.headers().len(), m.headers().len());
        for (x, y) in again.headers().iter().zip(m.headers()) {
            assert_eq!(
                (x.name(), x.kind(), x.value()),
                (y.name(), y.kind(), y.value())
            );
        }
        assert_eq!(again.start_line(), m.start_line());
        assert_eq!(again.body(), m.body());
    }

    const REGISTER: &[u8] = b"REGISTER sip:ims.example.org SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1-0;rport=5070;received=127.0.0.1\r\n\
        From: <sip:user00001@ims.example.org>;tag=1SIPpTag001\r\n\
        To: <sip:user00001@ims.example.org>\r\nCall-ID: 1-1@127.0.0.1\r\n\
        CSeq: 2 REGISTER\r\nContact: <sip:user00001@127.0.0.1:5070>;+sip.instance=\"<urn:x>\"\r\n\
        Expires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn built_messages_parse_back_identically() {
        let req = Message::parse(REGISTER).unwrap();
        let challenge = Builder::response_to(&req, 401, None)
            .to_tag("reg")
            .header(
                "WWW-Authenticate",
                "Digest realm=\"ims.example.org\",nonce=\"abc=\",algorithm=AKAv1-MD5,qop=\"auth\"",
            )
            .build()
            .unwrap();
        round_trip(&challenge);
        assert_eq!(challenge.to().unwrap().tag(), Some("reg"));
        let ok = Builder::response_to(&req, 200, None)
            .to_tag("reg")
            .header("Contact", "<sip:user00001@127.0.0.1:5070>;expires=3600")
            .header("Service-Route", "<sip:orig@127.0.0.1:5060;lr>")
            .header("P-Associated-URI", "<sip:user00001@ims.example.org>")
            .header("Expires", 3600)
            .build()
            .unwrap();
        round_trip(&ok);
        let m = Message::request(Method::Message, "sip:bob@example.org")
            .header("v", "SIP/2.0/UDP h;branch=z9hG4bK2")
            .header("f", "<sip:a@example.org>;tag=a")
            .header("t", "<sip:bob@example.org>")
            .header("i", "c")
            .header("CSeq", "1 MESSAGE")
            .header("X-Other", "anything at all")
            .body("text/plain", "hi")
            .build()
            .unwrap();
        round_trip(&m);
        // The To named compactly gets its tag too.
        let r = Builder::response_to(&m, 200, None)
            .to_tag("b")
            .build()
            .unwrap();
        round_trip(&r);
        assert_eq!(r.to().unwrap().tag(), Some("b"));
    }

    #[test]
    fn rows_are_checked_as_they_go_in() {
        // The first bad row is the error, whatever follows.
        let e = Message::request(Method::Options, "sip:a@b")
            .header("Contact", "<sip:a@b")
            .header("CSeq", "x OPTIONS")
            .build()
            .unwrap_err();
        assert!(matches!(
            e,
            Error::Header {
                name: HeaderName::Contact,
                ..
            }
        ));
        // Rows copied from a request are checked as well.
        let bad = String::from_utf8(REGISTER.to_vec()).unwrap().replace(
            "From: <sip:user00001@ims.example.org>",
            "From: <sip:user00001@ims.example.org",
        );
        let req = Message::parse(bad.as_bytes()).unwrap();
        let e = Builder::response_to(&req, 401, None)
            .to_tag("t")
            .build()
            .unwrap_err();
        assert!(matches!(
            e,
            Error::Header {
                name: HeaderName::From,
                ..
            }
        ));
        // A second single-valued header.
        assert!(
            Message::response(200, None)
                .header("Expires", 1)
                .header("Expires", 2)
                .build()
                .is_err()
        );
        // A body type that is no media type.
        assert!(
            Message::response(200, None)
                .body("text", "x")
                .build()
                .is_err()
        );
    }

    #[test]
    fn to_tag_cases() {
        let req = Message::parse(REGISTER).unwrap();
        // A tag already there stays; a second call changes nothing.
        let r = Builder::response_to(&req, 200, None)
            .to_tag("a")
            .to_tag("b")
            .build()
            .unwrap();
        assert_eq!(
            r.header("To"),
            Some("<sip:user00001@ims.example.org>;tag=a")
        );
        // A tag that is no token.
        let e = Builder::response_to(&req, 200, None).to_tag("a b").build();
        assert!(matches!(
            e,
            Err(Error::Header {
                name: HeaderName::To,
                ..
            })
        ));
        // No To.
        let e = Message::response(200, None).to_tag("a").build();
        assert_eq!(e, Err(Error::Missing(HeaderName::To)));
    }
}
