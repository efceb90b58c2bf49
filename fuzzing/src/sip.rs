//! The SIP codec on hostile bytes.

use gm::sip::check::{self, Policy};
use gm::sip::header::Contacts;
use gm::sip::{HeaderName, Message, torture};

/// Target `sip_parse`: the input is one datagram (and the start of a
/// stream).
///
/// Invariants: nothing panics (framing, every typed accessor, the UAS/UAC
/// checks, the RFC 4475 judge); a parsed message is emitted back exactly
/// as it came (less the CRLFs before it and the junk after its body), and
/// the emitted bytes parse to a message that emits the same bytes; after
/// edits (a Via inserted on top, Max-Forwards set, a new body) the message
/// still parses and reads back the edited values. The same holds for the
/// first message of the input read as a stream.
pub fn sip_parse(data: &[u8]) {
    let _ = torture::judge(data, &Policy::GM);
    let skip = data.chunks(2).take_while(|c| *c == b"\r\n").count() * 2;
    if let Ok((m, end)) = Message::parse_datagram(data) {
        let out = m.to_bytes();
        assert!(
            data.get(skip..end) == Some(&out[..]),
            "an unmodified message is not emitted byte-exact"
        );
        assert_eq!(m.len(), out.len(), "len() is not the emitted length");
        let again = match Message::parse(&out) {
            Ok(a) => a,
            Err(e) => panic!("the emitted message does not parse: {e}"),
        };
        assert_eq!(again.to_bytes(), out, "emit(parse(emit)) differs");
        touch(&m);
        edit(m);
    }
    if let Ok(Some((m, used))) = Message::parse_stream(data, 1 << 16) {
        assert!(
            data.get(skip..used) == Some(&m.to_bytes()[..]),
            "a stream message is not emitted byte-exact"
        );
    }
}

fn edit(mut m: Message<'_>) {
    let branch = "z9hG4bKfuzz";
    m.insert_header(
        0,
        "Via",
        format!("SIP/2.0/UDP fuzz.example.org;branch={branch}"),
    )
    .expect("a valid Via row");
    m.set_header("Max-Forwards", "69").expect("a valid row");
    m.set_body(Some("text/plain"), b"x".to_vec())
        .expect("a valid body");
    let out = m.to_bytes();
    let p = match Message::parse(&out) {
        Ok(p) => p,
        Err(e) => panic!("an edited message does not parse: {e}"),
    };
    assert_eq!(p.top_via().map(|v| v.branch), Ok(Some(branch)));
    assert_eq!(p.max_forwards(), Ok(Some(69)));
    assert_eq!(p.body(), b"x");
    assert_eq!(p.content_length(), Some(1));
}

/// Calls every accessor (results are not checked: errors are fine).
fn touch(m: &Message<'_>) {
    let _ = (
        m.method(),
        m.request_uri(),
        m.status(),
        m.reason(),
        m.body(),
    );
    let _ = (
        m.vias(),
        m.top_via(),
        m.from(),
        m.to(),
        m.call_id(),
        m.cseq(),
    );
    let _ = (m.max_forwards(), m.expires(), m.min_expires(), m.accept());
    let _ = (m.routes(), m.record_routes(), m.service_routes(), m.paths());
    let _ = (
        m.p_associated_uris(),
        m.p_preferred_identities(),
        m.p_asserted_identities(),
    );
    let _ = (
        m.event(),
        m.subscription_state(),
        m.sip_etag(),
        m.sip_if_match(),
    );
    let _ = (m.content_type(), m.content_length(), m.validate());
    for k in [
        HeaderName::WwwAuthenticate,
        HeaderName::ProxyAuthenticate,
        HeaderName::Authorization,
        HeaderName::ProxyAuthorization,
    ] {
        for a in m.auth(k).unwrap_or_default() {
            let _ = (
                a.realm(),
                a.nonce(),
                a.algorithm(),
                a.qop(),
                a.auts(),
                a.stale(),
            );
            let _ = a.to_string();
        }
    }
    for k in [
        HeaderName::SecurityClient,
        HeaderName::SecurityServer,
        HeaderName::SecurityVerify,
    ] {
        for s in m.security(k).unwrap_or_default() {
            let _ = s.to_string();
        }
    }
    for k in [
        HeaderName::Require,
        HeaderName::ProxyRequire,
        HeaderName::Supported,
    ] {
        let _ = m.option_tags(k);
    }
    if let Ok(Some(Contacts::List(c))) = m.contacts() {
        for a in c {
            let _ = (a.expires(), a.q(), a.sip_instance(), a.display_name());
            let _ = (a.feature_tags().count(), a.to_string());
            if let Some(u) = a.uri.sip() {
                let _ = (u.user_bytes(), u.header_fields().count());
            }
        }
    }
    for v in m.vias().unwrap_or_default() {
        let _ = v.to_string();
    }
    if m.is_request() {
        let _ = check::request(m, &Policy::GM);
    } else {
        let _ = check::response(m);
    }
}
