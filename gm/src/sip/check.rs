//! What a UAS checks before it processes a request (RFC 3261 §8.2), and a
//! UAC before it processes a response (§8.1.3.3): the decisions that turn
//! a well-formed message into a refusal with a status code, or a dropped
//! response.
//!
//! The checks run in the order of RFC 3261 §8.2 (method, then headers,
//! then content), after two that the RFC leaves unordered and RFC 4475
//! tests: the SIP-Version (505, RFC 4475 §3.1.2.16) and the headers every
//! request needs once (400, §3.3.1 and §3.3.8). A message that does not
//! even parse is refused earlier, by [`Message::validate`] and the framer
//! (400 or 513).

use std::fmt;

use super::error::Error;
use super::header::{MAGIC_COOKIE, MediaType};
use super::message::Message;
use super::method::Method;
use super::name::HeaderName;
use super::uri::Uri;

/// What the UAS supports.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'p> {
    /// Methods it accepts; a known method missing here gets 405, an
    /// unknown one 501 (RFC 3261 §8.2.1).
    pub methods: &'p [Method<'p>],
    /// Request-URI schemes it accepts; others get 416 (§8.2.2.1).
    pub schemes: &'p [&'p str],
    /// Option-tags it supports; a Require listing another gets 420
    /// (§8.2.2.3).
    pub extensions: &'p [&'p str],
    /// Body types it understands; a body of another type gets 415
    /// (§8.2.3).
    pub content_types: &'p [(&'p str, &'p str)],
    /// (method, type): the body type its successful answer to `method`
    /// carries; an Accept that excludes it gets 406 (§21.4.7).
    pub produces: &'p [(Method<'p>, &'p str, &'p str)],
}

impl Policy<'static> {
    /// The Gm layer's UAS (both roles of `gm`): every method of
    /// [`Method`], sip/sips/tel Request-URIs, sec-agree (RFC 3329) and
    /// path (RFC 3327), the body types the layer carries, and SDP in
    /// answers to INVITE.
    pub const GM: Policy<'static> = Policy {
        methods: &[
            Method::Invite,
            Method::Ack,
            Method::Options,
            Method::Bye,
            Method::Cancel,
            Method::Register,
            Method::Prack,
            Method::Subscribe,
            Method::Notify,
            Method::Publish,
            Method::Message,
            Method::Refer,
            Method::Info,
            Method::Update,
        ],
        schemes: &["sip", "sips", "tel"],
        extensions: &["sec-agree", "path"],
        content_types: &[
            ("application", "sdp"),
            ("text", "plain"),
            ("application", "vnd.3gpp.sms"),
            ("application", "pidf+xml"),
            ("application", "reginfo+xml"),
            ("application", "3gpp-ims+xml"),
            ("message", "cpim"),
            ("multipart", "mixed"),
            ("multipart", "related"),
        ],
        produces: &[(Method::Invite, "application", "sdp")],
    };
}

/// A request the UAS refuses: the status to answer with, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The status code (400, 405, 406, 415, 416, 420, 501, 505...).
    pub status: u16,
    /// Why, for logs and the Warning a caller may add.
    pub why: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.status, self.why)
    }
}

fn refuse(status: u16, why: impl Into<String>) -> Result<(), Refusal> {
    Err(Refusal {
        status,
        why: why.into(),
    })
}

/// The headers every request and response carries exactly once (RFC 3261
/// §8.1.1: To, From, CSeq, Call-ID; Via at least once).
const ONCE: [HeaderName; 4] = [
    HeaderName::To,
    HeaderName::From,
    HeaderName::CSeq,
    HeaderName::CallId,
];

/// The UAS checks of RFC 3261 §8.2 on a request whose headers parse
/// ([`Message::validate`] passed): `Ok` if it may be processed.
pub fn request(msg: &Message<'_>, policy: &Policy<'_>) -> Result<(), Refusal> {
    let Some(method) = msg.method() else {
        return refuse(400, "not a request");
    };
    if !msg.version().eq_ignore_ascii_case("SIP/2.0") {
        return refuse(505, format!("version {}", msg.version()));
    }
    let missing: Vec<&str> = ONCE
        .iter()
        .chain(&[HeaderName::Via])
        .filter(|h| msg.rows(**h).next().is_none())
        .map(|h| h.as_str())
        .collect();
    if !missing.is_empty() {
        return refuse(400, format!("no {}", missing.join(", ")));
    }
    for h in ONCE {
        let n = msg.rows(h).count();
        if n > 1 {
            return refuse(400, format!("{h} appears {n} times"));
        }
    }
    // Max-Forwards may be absent (RFC 2543 requests, RFC 4475 §3.4.1).
    if msg.rows(HeaderName::MaxForwards).count() > 1 {
        return refuse(400, "Max-Forwards appears more than once");
    }
    // §8.2.1 Method inspection.
    if !policy.methods.contains(&method) {
        return if method.is_known() {
            refuse(405, format!("{method} not allowed"))
        } else {
            refuse(501, format!("unknown method {method}"))
        };
    }
    let cseq = msg.cseq().map_err(bad_request)?;
    // §8.1.1.5: "The method MUST match that of the request."
    if cseq.method != method {
        return refuse(400, format!("CSeq method {} in a {method}", cseq.method));
    }
    // §8.1.1.7: a branch is unique; the magic cookie alone identifies no
    // transaction (RFC 4475 §3.2.1).
    if msg.top_via().map_err(bad_request)?.branch == Some(MAGIC_COOKIE) {
        return refuse(400, "Via branch is the magic cookie alone");
    }
    // §8.2.2.1 To and Request-URI.
    let uri = msg.request_uri().ok_or(Refusal {
        status: 400,
        why: "no Request-URI".into(),
    })?;
    if !policy
        .schemes
        .iter()
        .any(|s| s.eq_ignore_ascii_case(uri.scheme()))
    {
        return refuse(416, format!("Request-URI scheme {}", uri.scheme()));
    }
    // §10.3: the address-of-record in the To of a REGISTER is a SIP or
    // SIPS URI (RFC 4475 §3.3.4: 400).
    if method == Method::Register && !matches!(msg.to().map_err(bad_request)?.uri, Uri::Sip(_)) {
        return refuse(400, "the To of a REGISTER is not a SIP or SIPS URI");
    }
    // §8.2.2.3 Require (not applied to ACK and CANCEL).
    if !matches!(method, Method::Ack | Method::Cancel) {
        let unknown: Vec<&str> = msg
            .option_tags(HeaderName::Require)
            .map_err(bad_request)?
            .into_iter()
            .filter(|t| !policy.extensions.iter().any(|e| e.eq_ignore_ascii_case(t)))
            .collect();
        if !unknown.is_empty() {
            return refuse(420, format!("unsupported: {}", unknown.join(", ")));
        }
    }
    // §8.2.3 Content processing.
    if !msg.body().is_empty() {
        if let Some(t) = msg.content_type().map_err(bad_request)? {
            let known = policy.content_types.iter().any(|(a, b)| t.is(a, b));
            if !known {
                return refuse(415, format!("body type {}/{}", t.mtype, t.subtype));
            }
        }
        if let Some(e) = msg.header("Content-Encoding") {
            if !e.trim().eq_ignore_ascii_case("identity") {
                return refuse(415, format!("content encoding {e}"));
            }
        }
    }
    // §21.4.7 406: the answer's body type is not acceptable.
    if let Some(accept) = msg.accept().map_err(bad_request)? {
        for (m, a, b) in policy.produces {
            if *m == method && !accept.iter().any(|r: &MediaType<'_>| r.covers(a, b)) {
                return refuse(406, format!("Accept excludes {a}/{b}"));
            }
        }
    }
    Ok(())
}

/// The UAC checks of RFC 3261 §8.1.3.3 on a response whose headers parse:
/// `Err` with the reason if it must be dropped.
pub fn response(msg: &Message<'_>) -> Result<(), String> {
    if msg.is_request() {
        return Err("not a response".into());
    }
    if !msg.version().eq_ignore_ascii_case("SIP/2.0") {
        return Err(format!("version {}", msg.version()));
    }
    for h in ONCE {
        match msg.rows(h).count() {
            1 => {}
            n => return Err(format!("{h} appears {n} times")),
        }
    }
    let vias = msg.vias().map_err(|e| e.to_string())?;
    // §8.1.3.3: "If more than one Via header field value is present in a
    // response, the UAC SHOULD discard the message."
    if vias.len() != 1 {
        return Err(format!("{} Via values in a response", vias.len()));
    }
    Ok(())
}

fn bad_request(e: Error) -> Refusal {
    Refusal {
        status: e.status(),
        why: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(extra: &str) -> Vec<u8> {
        format!(
            "OPTIONS sip:a@example.org SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             To: <sip:a@example.org>\r\nFrom: <sip:b@example.org>;tag=1\r\n\
             Call-ID: c\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn status(b: &[u8]) -> Option<u16> {
        let m = Message::parse(b).unwrap();
        m.validate().unwrap();
        request(&m, &Policy::GM).err().map(|r| r.status)
    }

    #[test]
    fn uas_checks() {
        assert_eq!(status(&req("")), None);
        assert_eq!(status(&req("Require: sec-agree\r\n")), None);
        assert_eq!(status(&req("Require: 100rel\r\n")), Some(420));
        assert_eq!(status(&req("Call-ID: d\r\n")), Some(400));
        assert_eq!(
            status(&req("Max-Forwards: 1\r\nMax-Forwards: 2\r\n")),
            Some(400)
        );
        let mut r = req("");
        r.splice(0..7, b"FOO".iter().copied());
        assert_eq!(status(&r), Some(501));
        let policy = Policy {
            methods: &[Method::Register],
            ..Policy::GM
        };
        let r = req("");
        let m = Message::parse(&r).unwrap();
        assert_eq!(request(&m, &policy).unwrap_err().status, 405);
    }
}
