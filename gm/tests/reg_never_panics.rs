//! The registration machines never panic on hostile messages: arbitrary
//! 401 and 200 responses (challenges with any nonce, algorithm and qop,
//! any Security-Server, Contact, Expires, Service-Route...) given to the
//! UE at each step of a registration, and arbitrary REGISTER requests
//! given to the network side, with or without a challenge pending.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::Rng;
use std::net::IpAddr;
use std::time::Duration;

use gm::reg::{
    Credentials, Flow, Network, NetworkAction, NetworkConfig, OpKey, Subscriber, Ue, UeAction,
    UeConfig,
};
use gm::sip::Message;
use proptest::prelude::*;

const K: [u8; 16] = [7; 16];
const OP: [u8; 16] = [9; 16];
const IMPI: &str = "alice@ims.example.org";

fn addr() -> IpAddr {
    "10.0.0.2".parse().unwrap()
}

fn ue(rng: &mut Rng) -> Ue {
    let c = UeConfig::new(
        IMPI,
        "sip:alice@ims.example.org",
        "ims.example.org",
        addr(),
        "10.0.0.1".parse().unwrap(),
        (1111, 2222),
        (5062, 5064),
    );
    Ue::new(
        c,
        Credentials::Aka {
            k: K,
            op: OpKey::Op(OP),
            sqn_ms: 0,
        },
        rng,
    )
}

fn network() -> Network {
    let mut n = Network::new(NetworkConfig::new(
        "ims.example.org",
        "10.0.0.1".parse().unwrap(),
        5066,
        5068,
    ));
    n.add_subscriber(
        IMPI,
        Subscriber {
            k: K,
            op: OpKey::Op(OP),
            amf: [0x80, 0],
            sqn: 0,
            impus: Vec::new(),
        },
    );
    n
}

/// Header values: fragments of the real syntax, spliced at random.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,60}",
        Just("Digest realm=\"ims.example.org\",nonce=\"\",algorithm=AKAv1-MD5".to_owned()),
        (
            "[A-Za-z0-9+/=]{0,80}",
            "(AKAv1-MD5|AKAv2-MD5|MD5|MD5-sess|x)",
            "(auth|auth-int|\"auth,auth-int\"|x)"
        )
            .prop_map(|(n, a, q)| format!(
                "Digest realm=\"r\",nonce=\"{n}\",algorithm={a},qop={q}"
            )),
        (
            "(hmac-md5-96|hmac-sha-1-96|x)",
            "(aes-cbc|des-ede3-cbc|null|x)",
            any::<u32>(),
            any::<u16>(),
            "(0|0\\.1|1|0\\.999)"
        )
            .prop_map(|(a, e, s, p, q)| format!(
                "ipsec-3gpp;q={q};alg={a};ealg={e};spi-c={s};spi-s={};port-c={p};port-s={}",
                s.wrapping_add(1),
                p.wrapping_add(1)
            )),
        any::<u32>().prop_map(|e| e.to_string()),
        "<sip:[a-z]{1,5}@10\\.0\\.0\\.2:506[0-9]>;expires=[0-9]{1,11}(;\\+sip\\.instance=\"<urn:x>\")?",
    ]
}

/// A header: mostly well-formed for its name (so that 200s register and
/// challenges reach AUTN), sometimes anything.
fn header() -> impl Strategy<Value = (&'static str, String)> {
    prop_oneof![
        any::<u32>().prop_map(|e| ("Expires", e.to_string())),
        "<sip:[a-z]{1,5}@10\\.0\\.0\\.2:506[0-9]>;expires=[0-9]{1,11}(;\\+sip\\.instance=\"<urn:gsma:imei:35390600-123456-0>\")?"
            .prop_map(|c| ("Contact", c)),
        (
            prop::collection::vec(any::<u8>(), 28..40),
            "(AKAv1-MD5|AKAv2-MD5|MD5)",
            "(auth|\"auth,auth-int\")"
        )
            .prop_map(|(n, a, q)| (
                "WWW-Authenticate",
                format!(
                    "Digest realm=\"r\",nonce=\"{}\",algorithm={a},qop={q}",
                    opensec::base64_encode(&n)
                )
            )),
        (header_name(), "<sip:[a-z]{1,5}@[a-z]{1,5}(;lr)?>").prop_map(|(n, v)| (n, v)),
        (header_name(), value()),
    ]
}

fn header_name() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("WWW-Authenticate"),
        Just("Security-Server"),
        Just("Contact"),
        Just("Expires"),
        Just("Service-Route"),
        Just("Path"),
        Just("P-Associated-URI"),
        Just("Authorization"),
        Just("Security-Client"),
        Just("Security-Verify"),
    ]
}

/// A response to the UE's last request with arbitrary headers.
fn response(req: &Message<'_>, status: u16, headers: &[(&'static str, String)]) -> Option<Vec<u8>> {
    let mut b = gm::sip::Builder::response_to(req, status, None).to_tag("t");
    for (n, v) in headers {
        b = b.header(n, v);
    }
    b.build().ok().map(|m| m.to_bytes())
}

fn last_request(actions: &[UeAction]) -> Option<Vec<u8>> {
    actions
        .iter()
        .rev()
        .find_map(|a| a.request().map(|r| r.to_bytes()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_ue_never_panics(
        steps in prop::collection::vec(
            (
                prop_oneof![Just(401u16), Just(200), Just(403), Just(494), 100u16..700],
                prop::collection::vec(header(), 0..6),
            ),
            1..4,
        ),
        real_challenge in any::<bool>(),
        protected in any::<bool>(),
    ) {
        let mut rng = Rng(1);
        let mut ue = ue(&mut rng);
        let mut net = network();
        let mut req = last_request(&ue.register(&mut rng)).unwrap();
        if real_challenge {
            // Our network's genuine 401 first, so that the steps hit the
            // UE waiting for its result with SAs installed.
            let r = Message::parse(&req).unwrap();
            let out = net.on_register(&r, addr(), Flow::Unprotected, Duration::ZERO, &mut rng);
            for a in out {
                if let NetworkAction::Respond(m) = a {
                    let bytes = m.to_bytes();
                    let acts = ue.on_response(&Message::parse(&bytes).unwrap(), Flow::Unprotected, Duration::ZERO, &mut rng);
                    if let Some(next) = last_request(&acts) {
                        req = next;
                    }
                }
            }
        }
        let mut now = Duration::ZERO;
        for (status, headers) in steps {
            let r = Message::parse(&req).unwrap();
            let Some(bytes) = response(&r, status, &headers) else { continue };
            let Ok(m) = Message::parse(&bytes) else { continue };
            now += Duration::from_secs(1);
            // Over the SAs the UE set up, or in clear.
            let flow = if protected {
                Flow::Protected { ue_port: 5062, pcscf_port: 5068 }
            } else {
                Flow::Unprotected
            };
            let acts = ue.on_response(&m, flow, now, &mut rng);
            if let Some(next) = last_request(&acts) {
                req = next;
            }
            if let Some(t) = ue.poll_timeout() {
                let acts = ue.handle_timeout(t, &mut rng);
                if let Some(next) = last_request(&acts) {
                    req = next;
                }
            }
            let acts = ue.deregister(&mut rng);
            if let Some(next) = last_request(&acts) {
                req = next;
            }
        }
    }

    #[test]
    fn the_network_never_panics(
        headers in prop::collection::vec(header(), 0..8),
        after_challenge in any::<bool>(),
        protected in any::<bool>(),
    ) {
        let mut rng = Rng(2);
        let mut ue = ue(&mut rng);
        let mut net = network();
        let first = last_request(&ue.register(&mut rng)).unwrap();
        if after_challenge {
            let r = Message::parse(&first).unwrap();
            net.on_register(&r, addr(), Flow::Unprotected, Duration::ZERO, &mut rng);
        }
        let mut m = Message::parse(&first).unwrap().into_owned();
        for (n, v) in &headers {
            // Invalid values are refused by the codec: skip them.
            let _ = m.set_header((*n).to_owned(), v.clone());
        }
        let bytes = m.to_bytes();
        if let Ok(m) = Message::parse(&bytes) {
            let flow = if protected {
                Flow::Protected { ue_port: 5062, pcscf_port: 5068 }
            } else {
                Flow::Unprotected
            };
            net.on_register(&m, addr(), flow, Duration::from_secs(1), &mut rng);
            net.handle_timeout(Duration::from_secs(1_000_000));
        }
    }
}
