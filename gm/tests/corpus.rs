//! Our IMS corpus (`vectors/sip-corpus/`): every message parses, passes
//! the UAS/UAC checks, is emitted back byte for byte, and its typed values
//! are the ones written in it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;

use gm::sip::check::{self, Policy};
use gm::sip::header::{Algorithm, Contacts, Qvalue, Rport};
use gm::sip::{HeaderName, Host, Message, Method};

fn read(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../vectors/sip-corpus")
        .join(name);
    fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const FILES: [&str; 9] = [
    "01-register.sip",
    "02-401-aka.sip",
    "03-200-register.sip",
    "04-invite-sdp.sip",
    "05-200-invite-sdp.sip",
    "06-publish-pidf.sip",
    "07-notify-pidf.sip",
    "08-message.sip",
    "09-200-message.sip",
];

#[test]
fn every_corpus_message_parses_checks_and_round_trips() {
    for f in FILES {
        let b = read(f);
        let m = Message::parse(&b).unwrap_or_else(|e| panic!("{f}: {e}"));
        m.validate().unwrap_or_else(|e| panic!("{f}: {e}"));
        if m.is_request() {
            check::request(&m, &Policy::GM).unwrap_or_else(|r| panic!("{f}: {r}"));
        } else {
            check::response(&m).unwrap_or_else(|r| panic!("{f}: {r}"));
        }
        assert_eq!(m.to_bytes(), b, "{f}");
        assert_eq!(m.content_length(), Some(m.body().len()), "{f}");
        let owned = m.clone().into_owned();
        assert_eq!(owned.to_bytes(), b, "{f}");
    }
}

#[test]
fn register() {
    let b = read("01-register.sip");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.method(), Some(Method::Register));
    let via = m.top_via().unwrap();
    assert_eq!(via.host, Host::V6("2001:db8:1:2::7".parse().unwrap()));
    assert_eq!(via.port, Some(5060));
    assert_eq!(via.comp(), Some("sigcomp"));
    assert_eq!(via.branch, Some("z9hG4bKa1b2c3d4e5"));
    assert_eq!(via.rport, Rport::Requested);
    assert_eq!(m.from().unwrap().tag(), Some("3fb9a1c2"));
    assert_eq!(m.to().unwrap().tag(), None);
    assert_eq!(m.call_id().unwrap(), "6f1c2e9a-44b1-4c7e-9d3a-0a1b2c3d4e5f");
    assert_eq!(m.cseq().unwrap().seq, 1);
    assert_eq!(m.max_forwards().unwrap(), Some(70));
    assert_eq!(m.expires().unwrap(), Some(600_000));
    let Some(Contacts::List(c)) = m.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(
        c[0].sip_instance().unwrap(),
        "<urn:gsma:imei:35209900-176148-0>"
    );
    assert!(c[0].params.has("+g.3gpp.smsip"));
    assert_eq!(
        c[0].params.unquoted("+g.3gpp.icsi-ref").unwrap(),
        "urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"
    );
    assert_eq!(c[0].expires(), Some(600_000));
    assert_eq!(c[0].uri.sip().unwrap().comp(), Some("sigcomp"));
    let auth = &m.authorization().unwrap()[0];
    assert_eq!(
        auth.username().unwrap(),
        "262011234567890@ims.mnc001.mcc262.3gppnetwork.org"
    );
    assert_eq!(auth.nonce().unwrap(), "");
    assert_eq!(auth.response().unwrap(), "");
    assert_eq!(auth.algorithm(), Some(Algorithm::AkaV1Md5));
    assert_eq!(auth.uri().unwrap(), "sip:ims.mnc001.mcc262.3gppnetwork.org");
    assert_eq!(m.option_tags(HeaderName::Require).unwrap(), ["sec-agree"]);
    assert_eq!(
        m.option_tags(HeaderName::ProxyRequire).unwrap(),
        ["sec-agree"]
    );
    assert_eq!(
        m.option_tags(HeaderName::Supported).unwrap(),
        ["path", "gruu", "sec-agree"]
    );
    let sc = m.security(HeaderName::SecurityClient).unwrap();
    let offers: Vec<_> = sc
        .iter()
        .map(|s| {
            let x = s.ipsec.unwrap();
            (
                x.alg.unwrap(),
                x.ealg.unwrap(),
                x.spi_c.unwrap(),
                x.spi_s.unwrap(),
                x.port_c.unwrap(),
                x.port_s.unwrap(),
            )
        })
        .collect();
    assert_eq!(
        offers,
        [
            (
                "hmac-sha-1-96",
                "aes-cbc",
                2_138_243_585,
                2_138_243_586,
                49152,
                5062
            ),
            (
                "hmac-sha-1-96",
                "null",
                2_138_243_585,
                2_138_243_586,
                49152,
                5062
            ),
            (
                "hmac-md5-96",
                "des-ede3-cbc",
                2_138_243_585,
                2_138_243_586,
                49152,
                5062
            ),
        ]
    );
    assert_eq!(m.content_length(), Some(0));
}

#[test]
fn challenge() {
    let b = read("02-401-aka.sip");
    let m = Message::parse(&b).unwrap();
    assert_eq!((m.status(), m.reason()), (Some(401), Some("Unauthorized")));
    let via = m.top_via().unwrap();
    assert_eq!(
        via.received,
        Some("2001:db8:1:2::7".parse::<IpAddr>().unwrap())
    );
    assert_eq!(m.to().unwrap().tag(), Some("pcscf-81c2a9"));
    let ch = &m.www_authenticate().unwrap()[0];
    assert!(ch.is_digest());
    assert_eq!(ch.realm().unwrap(), "ims.mnc001.mcc262.3gppnetwork.org");
    assert_eq!(
        ch.nonce().unwrap(),
        "q8Zr3m1kT0yJp2cV9wXh4nB7dE6fA5gH0iJ2kL4mN6o="
    );
    assert_eq!(ch.algorithm(), Some(Algorithm::AkaV1Md5));
    assert_eq!(ch.qop(), ["auth", "auth-int"]);
    let ss = m.security(HeaderName::SecurityServer).unwrap();
    assert_eq!(ss.len(), 2);
    assert_eq!(ss[0].q, Some(Qvalue(100)));
    assert_eq!(ss[1].q, Some(Qvalue(50)));
    let x = ss[0].ipsec.unwrap();
    assert_eq!(
        (x.spi_c, x.spi_s, x.port_c, x.port_s),
        (Some(97_312_001), Some(97_312_002), Some(5064), Some(5066))
    );
}

#[test]
fn registered() {
    let b = read("03-200-register.sip");
    let m = Message::parse(&b).unwrap();
    let path = m.paths().unwrap();
    assert_eq!(path.len(), 1);
    let p = path[0].uri.sip().unwrap();
    assert_eq!(p.user, Some("term"));
    assert!(p.lr());
    assert_eq!(p.comp(), Some("sigcomp"));
    let sr = m.service_routes().unwrap();
    assert_eq!(sr[0].uri.sip().unwrap().port, Some(6060));
    let pau: Vec<String> = m
        .p_associated_uris()
        .unwrap()
        .iter()
        .map(|a| a.uri.to_string())
        .collect();
    assert_eq!(
        pau,
        [
            "sip:+4915112345678@ims.mnc001.mcc262.3gppnetwork.org",
            "sip:262011234567890@ims.mnc001.mcc262.3gppnetwork.org",
            "tel:+4915112345678"
        ]
    );
    let Some(Contacts::List(c)) = m.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(
        c[0].params.unquoted("pub-gruu").unwrap(),
        "sip:+4915112345678@ims.mnc001.mcc262.3gppnetwork.org;gr=urn:gsma:imei:35209900-176148-0"
    );
    assert_eq!(m.expires().unwrap(), Some(600_000));
}

#[test]
fn invite_publish_notify_message() {
    let b = read("04-invite-sdp.sip");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.request_uri().unwrap().as_str(), "tel:+4915198765432");
    assert_eq!(m.routes().unwrap().len(), 2);
    assert_eq!(m.p_preferred_identities().unwrap()[0].uri.scheme(), "sip");
    let sv = m.security(HeaderName::SecurityVerify).unwrap();
    assert_eq!(sv[0].ipsec.unwrap().spi_s, Some(97_312_002));
    assert_eq!(m.body().len(), 781);
    assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));

    let b = read("05-200-invite-sdp.sip");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.record_routes().unwrap().len(), 2);
    assert_eq!(m.p_asserted_identities().unwrap().len(), 1);

    let b = read("06-publish-pidf.sip");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.event().unwrap().unwrap().package(), "presence");
    assert_eq!(m.expires().unwrap(), Some(3600));
    assert_eq!(m.sip_if_match().unwrap(), None);

    let b = read("07-notify-pidf.sip");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.vias().unwrap().len(), 2);
    let ss = m.subscription_state().unwrap().unwrap();
    assert_eq!((ss.state, ss.expires), ("active", Some(3421)));
    assert_eq!(m.cseq().unwrap().method, Method::Notify);

    let b = read("08-message.sip");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.body(), b"See you at the station at 18:30, platform 4.");
    let ct = m.content_type().unwrap().unwrap();
    assert_eq!(ct.params.value("charset"), Some("UTF-8"));
}
