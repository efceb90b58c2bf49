//! tshark parses every SIP message our codec emits with the values our
//! typed accessors read: method or status, Call-ID, CSeq, every Via
//! branch, the From and To tags, every Contact URI, every Security-Client,
//! -Server and -Verify parameter TS 33.203 defines, the digest AKA
//! parameters, Expires, Max-Forwards, Event and Content-Length.
//!
//! The messages: the IMS corpus, parsed and emitted again; a registration,
//! subscription, publication and pager exchange built with the builder
//! (REGISTER with Security-Client and an AUTS, the 401 with an AKAv2
//! challenge and Security-Server, the protected REGISTER whose
//! Security-Verify copies it, the 200 with Service-Route, Path and
//! P-Associated-URI...); and a corpus MESSAGE edited as a proxy would.
//! Each is one UDP datagram to port 5060 in a pcap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use gm::sip::header::{Contacts, SecMechanism};
use gm::sip::{Builder, HeaderName, Message, Method};
use testkit::pcap::{self, LINKTYPE_RAW};
use testkit::{Peer, TempDir, require, tshark};

use testkit::corpus::ours as corpus;

const UE: &str = "[2001:db8:1:2::7]:5060";
const IMPU: &str = "sip:+4915112345678@ims.mnc001.mcc262.3gppnetwork.org";
const REALM: &str = "ims.mnc001.mcc262.3gppnetwork.org";

/// A registration, a subscription to the reg event, a publication and a
/// pager message, built with the builder.
fn built() -> Vec<Message<'static>> {
    let mut out = Vec::new();
    let register = |cseq: u32, branch: &str| {
        Message::request(Method::Register, &format!("sip:{REALM}"))
            .header("Via", format!("SIP/2.0/UDP {UE};comp=sigcomp;branch={branch};rport"))
            .header("Max-Forwards", 70)
            .header("From", format!("<{IMPU}>;tag=reg1"))
            .header("To", format!("<{IMPU}>"))
            .header("Call-ID", "reg-call-1@2001:db8:1:2::7")
            .header("CSeq", format!("{cseq} REGISTER"))
            .header(
                "Contact",
                format!("<sip:+4915112345678@{UE};comp=sigcomp>;+sip.instance=\"<urn:gsma:imei:35209900-176148-0>\";+g.3gpp.smsip;expires=600000;q=0.9"),
            )
            .header("Require", "sec-agree")
            .header("Proxy-Require", "sec-agree")
            .header("Supported", "path, gruu, sec-agree")
            .header(
                "Security-Client",
                "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;prot=esp;mod=trans;spi-c=11111;spi-s=22222;port-c=49152;port-s=49153, ipsec-3gpp;alg=hmac-md5-96;ealg=null;spi-c=11111;spi-s=22222;port-c=49152;port-s=49153",
            )
            .header("Expires", 600_000)
    };
    // An SQN resynchronisation (RFC 3310 §3.4).
    let r1 = register(1, "z9hG4bKreg1")
        .header(
            "Authorization",
            format!("Digest username=\"262011234567890@{REALM}\",realm=\"{REALM}\",nonce=\"CjPk9mRqNuT25eRkajM09uTl9nM09uTl9nMz5OX25PZz==\",uri=\"sip:{REALM}\",response=\"4429ffe49393c02397450934607c4ef1\",algorithm=AKAv1-MD5,cnonce=\"0a4f113b\",qop=auth,nc=00000001,auts=\"5PYxMuX2NOT2NeQ=\",integrity-protected=\"no\""),
        )
        .build()
        .unwrap();
    let c401 = Builder::response_to(&r1, 401, None)
        .to_tag("pcscf-1")
        .header(
            "WWW-Authenticate",
            format!("Digest realm=\"{REALM}\",nonce=\"9uQzNPbk9jM05Pbl5Pbl5DIz9uTl9uTl9jM0NTHk9uXk==\",algorithm=AKAv2-MD5,qop=\"auth,auth-int\",opaque=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\""),
        )
        .header(
            "Security-Server",
            "ipsec-3gpp;q=0.1;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c=33333;spi-s=44444;port-c=5064;port-s=5066, ipsec-3gpp;q=0.05;alg=hmac-md5-96;ealg=des-ede3-cbc;spi-c=33333;spi-s=44444;port-c=5064;port-s=5066",
        )
        .build()
        .unwrap();
    // The protected REGISTER: Security-Verify copies Security-Server.
    let server = c401.header("Security-Server").unwrap().to_owned();
    let r2 = register(2, "z9hG4bKreg2")
        .header("Security-Verify", server)
        .header(
            "Authorization",
            format!("Digest username=\"262011234567890@{REALM}\",realm=\"{REALM}\",nonce=\"9uQzNPbk9jM05Pbl5Pbl5DIz9uTl9uTl9jM0NTHk9uXk==\",uri=\"sip:{REALM}\",response=\"6629fae49393a05397450978507c4ef1\",algorithm=AKAv2-MD5,qop=auth,nc=00000001,cnonce=\"1b5e\",integrity-protected=\"yes\""),
        )
        .build()
        .unwrap();
    let ok = Builder::response_to(&r2, 200, None)
        .to_tag("scscf-1")
        .header(
            "Path",
            "<sip:term@pcscf1.ims.mnc001.mcc262.3gppnetwork.org;lr;comp=sigcomp>",
        )
        .header(
            "Service-Route",
            "<sip:orig@scscf1.ims.mnc001.mcc262.3gppnetwork.org:6060;lr>",
        )
        .header(
            "P-Associated-URI",
            format!("<{IMPU}>, <tel:+4915112345678>"),
        )
        .header(
            "Contact",
            format!("<sip:+4915112345678@{UE};comp=sigcomp>;expires=600000"),
        )
        .header("Expires", 600_000)
        .build()
        .unwrap();
    out.extend([r1, c401, r2, ok]);
    let subscribe = Message::request(Method::Subscribe, IMPU)
        .header("Via", format!("SIP/2.0/UDP {UE};comp=sigcomp;branch=z9hG4bKsub1;rport"))
        .header("Max-Forwards", 70)
        .header("Route", "<sip:[2001:db8:ff::10]:5066;lr;comp=sigcomp>, <sip:orig@scscf1.ims.mnc001.mcc262.3gppnetwork.org:6060;lr>")
        .header("From", format!("<{IMPU}>;tag=sub1"))
        .header("To", format!("<{IMPU}>"))
        .header("Call-ID", "sub-call-1")
        .header("CSeq", "1 SUBSCRIBE")
        .header("Event", "reg")
        .header("Expires", 600_000)
        .header("Contact", format!("<sip:+4915112345678@{UE};comp=sigcomp>"))
        .header("P-Preferred-Identity", format!("<{IMPU}>"))
        .header("Accept", "application/reginfo+xml")
        .build()
        .unwrap();
    let notify = Message::request(Method::Notify, &format!("sip:+4915112345678@{UE};comp=sigcomp"))
        .header("Via", "SIP/2.0/UDP [2001:db8:ff::10]:5066;comp=sigcomp;branch=z9hG4bKnot1")
        .header("Via", "SIP/2.0/UDP scscf1.ims.mnc001.mcc262.3gppnetwork.org:6060;branch=z9hG4bKnot0;received=2001:db8:ff::1")
        .header("Max-Forwards", 69)
        .header("From", format!("<{IMPU}>;tag=scscf-n1"))
        .header("To", format!("<{IMPU}>;tag=sub1"))
        .header("Call-ID", "sub-call-1")
        .header("CSeq", "1 NOTIFY")
        .header("Event", "reg")
        .header("Subscription-State", "terminated;reason=deactivated;retry-after=30")
        .header("Contact", "<sip:scscf1.ims.mnc001.mcc262.3gppnetwork.org:6060>")
        .body("application/reginfo+xml", "<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"1\" state=\"partial\"/>\r\n")
        .build()
        .unwrap();
    let publish = Message::request(Method::Publish, IMPU)
        .header("Via", format!("SIP/2.0/UDP {UE};branch=z9hG4bKpub2;rport"))
        .header("Max-Forwards", 70)
        .header("From", format!("<{IMPU}>;tag=pub2"))
        .header("To", format!("<{IMPU}>"))
        .header("Call-ID", "pub-call-2")
        .header("CSeq", "2 PUBLISH")
        .header("Event", "presence")
        .header("SIP-If-Match", "dx200xyz")
        .header("Expires", 3600)
        .build()
        .unwrap();
    let etag = Builder::response_to(&publish, 200, None)
        .to_tag("ps-1")
        .header("SIP-ETag", "kwj449x")
        .header("Expires", 1800)
        .build()
        .unwrap();
    let message = Message::request(
        Method::Message,
        "sip:+4915198765432@ims.mnc001.mcc262.3gppnetwork.org",
    )
    .header(
        "Via",
        format!("SIP/2.0/UDP {UE};comp=sigcomp;branch=z9hG4bKmsg1;rport"),
    )
    .header("Max-Forwards", 70)
    .header("From", format!("<{IMPU}>;tag=m1"))
    .header(
        "To",
        "<sip:+4915198765432@ims.mnc001.mcc262.3gppnetwork.org>",
    )
    .header("Call-ID", "msg-call-1")
    .header("CSeq", "7 MESSAGE")
    .body("text/plain;charset=UTF-8", "Grüße aus dem Zug")
    .build()
    .unwrap();
    let accepted = Builder::response_to(&message, 202, None)
        .to_tag("as-1")
        .build()
        .unwrap();
    out.extend([subscribe, notify, publish, etag, message, accepted]);
    out
}

/// A corpus MESSAGE as a P-CSCF forwards it: its Via on top, Max-Forwards
/// decremented, its own Route entry removed.
fn proxied(original: &[u8]) -> Message<'static> {
    let mut m = Message::parse(original).unwrap();
    let routes: Vec<String> = m
        .routes()
        .unwrap()
        .iter()
        .skip(1)
        .map(ToString::to_string)
        .collect();
    let mf = m.max_forwards().unwrap().unwrap() - 1;
    m.insert_header(
        0,
        "Via",
        "SIP/2.0/UDP [2001:db8:ff::10]:5066;comp=sigcomp;branch=z9hG4bKpcscf1",
    )
    .unwrap();
    m.set_header("Max-Forwards", mf.to_string()).unwrap();
    m.set_header("Route", routes.join(", ")).unwrap();
    m.into_owned()
}

/// What tshark should print for `m`, field by field (occurrences joined
/// with '^', tshark's aggregator below).
fn expected(m: &Message<'_>) -> Vec<String> {
    let join = |v: Vec<String>| v.join("^");
    let sec: Vec<SecMechanism<'_>> = m
        .headers()
        .iter()
        .filter(|h| {
            matches!(
                h.kind(),
                HeaderName::SecurityClient
                    | HeaderName::SecurityServer
                    | HeaderName::SecurityVerify
            )
        })
        .flat_map(|h| SecMechanism::parse_list(h.value()).unwrap())
        .collect();
    let ipsec = |f: &dyn Fn(&gm::sip::header::Ipsec3gpp<'_>) -> Option<String>| {
        join(
            sec.iter()
                .filter_map(|s| s.ipsec.as_ref().and_then(f))
                .collect(),
        )
    };
    let auth: Vec<_> = [HeaderName::WwwAuthenticate, HeaderName::Authorization]
        .into_iter()
        .flat_map(|k| m.auth(k).unwrap())
        .collect();
    let raw = |p: &str| {
        join(
            auth.iter()
                .filter_map(|a| a.params.value(p).map(str::to_owned))
                .collect(),
        )
    };
    let contacts = match m.contacts().unwrap() {
        Some(Contacts::List(l)) => join(l.iter().map(|a| a.uri.to_string()).collect()),
        _ => String::new(),
    };
    let cseq = m.cseq().unwrap();
    vec![
        m.method().map(|x| x.to_string()).unwrap_or_default(),
        m.status().map(|s| s.to_string()).unwrap_or_default(),
        m.call_id().unwrap().to_owned(),
        cseq.seq.to_string(),
        cseq.method.to_string(),
        join(
            m.vias()
                .unwrap()
                .iter()
                .filter_map(|v| v.branch.map(str::to_owned))
                .collect(),
        ),
        m.from().unwrap().tag().unwrap_or_default().to_owned(),
        m.to().unwrap().tag().unwrap_or_default().to_owned(),
        contacts,
        ipsec(&|x| x.alg.map(str::to_owned)),
        ipsec(&|x| x.ealg.map(str::to_owned)),
        ipsec(&|x| x.spi_c.map(|v| v.to_string())),
        ipsec(&|x| x.spi_s.map(|v| v.to_string())),
        ipsec(&|x| x.port_c.map(|v| v.to_string())),
        ipsec(&|x| x.port_s.map(|v| v.to_string())),
        ipsec(&|x| x.prot.map(str::to_owned)),
        raw("username"),
        raw("realm"),
        raw("nonce"),
        join(
            auth.iter()
                .filter_map(|a| a.algorithm().map(|x| x.as_str().to_owned()))
                .collect(),
        ),
        raw("auts"),
        m.expires()
            .unwrap()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        m.max_forwards()
            .unwrap()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        m.event()
            .unwrap()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        m.content_length()
            .map(|e| e.to_string())
            .unwrap_or_default(),
    ]
}

const FIELDS: [&str; 25] = [
    "sip.Method",
    "sip.Status-Code",
    "sip.Call-ID",
    "sip.CSeq.seq",
    "sip.CSeq.method",
    "sip.Via.branch",
    "sip.from.tag",
    "sip.to.tag",
    "sip.contact.uri",
    "sip.sec_mechanism.alg",
    "sip.sec_mechanism.ealg",
    "sip.sec_mechanism.spi_c",
    "sip.sec_mechanism.spi_s",
    "sip.sec_mechanism.port_c",
    "sip.sec_mechanism.port_s",
    "sip.sec_mechanism.prot",
    "sip.auth.username",
    "sip.auth.realm",
    "sip.auth.nonce",
    "sip.auth.algorithm",
    "sip.auth.auts",
    "sip.Expires",
    "sip.Max-Forwards",
    "sip.Event",
    "sip.Content-Length",
];

#[test]
fn tshark_reads_what_we_emit() {
    if !require("tshark_reads_what_we_emit", &[Peer::Tshark]) {
        return;
    }
    let corpus = corpus();
    let mut messages: Vec<Message<'static>> = corpus
        .iter()
        .map(|b| Message::parse(b).unwrap().into_owned())
        .collect();
    messages.extend(built());
    messages.push(proxied(&corpus[7]));
    for m in &messages {
        m.validate().unwrap();
    }
    let wire: Vec<Vec<u8>> = messages.iter().map(Message::to_bytes).collect();
    // The corpus went through unmodified: byte-exact.
    for (w, c) in wire.iter().zip(&corpus) {
        assert_eq!(w, c);
    }
    let packets: Vec<Vec<u8>> = wire
        .iter()
        .map(|w| testkit::packet::udp("192.0.2.1", 5060, "192.0.2.2", 5060, w))
        .collect();
    let dir = TempDir::new("gm-tshark-sip");
    let path = dir.path("sip.pcap");
    pcap::write(&path, LINKTYPE_RAW, &packets);
    let out = tshark::fields(&path)
        .separator("|")
        .arg("-E")
        .arg("aggregator=^")
        .arg("-Y")
        .arg("sip")
        .run(&FIELDS);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        messages.len(),
        "tshark saw {} SIP frames:\n{out}",
        lines.len()
    );
    let mut compared = 0;
    for (i, (line, m)) in lines.iter().zip(&messages).enumerate() {
        let got: Vec<&str> = line.split('|').collect();
        let want = expected(m);
        for ((field, g), w) in FIELDS.iter().zip(&got).zip(&want) {
            assert_eq!(
                g,
                w,
                "frame {}: {field}: tshark {g:?}, ours {w:?}\n{}",
                i + 1,
                String::from_utf8_lossy(&m.to_bytes())
            );
            compared += usize::from(!w.is_empty());
        }
    }
    // Not a comparison of empty columns.
    eprintln!(
        "tshark: {} messages, {compared} non-empty fields equal",
        messages.len()
    );
    assert!(compared > 200, "{compared} non-empty fields compared");
    // tshark flagged nothing as malformed, nor warned (6291456: PI_WARN).
    let bad = tshark::fields(&path)
        .filter("_ws.malformed || _ws.expert.severity >= 6291456")
        .run(&["frame.number"]);
    assert!(
        bad.trim().is_empty(),
        "malformed according to tshark: {bad}"
    );
}
