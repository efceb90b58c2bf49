//! `NetworkConfig::xres_without_zero_byte`: the network draws RAND again
//! while XRES has a zero byte, for UEs that take RES as a C string (SIPp).
//! Over 300 challenges from one deterministic random source, RES (f2 of
//! the RAND in each nonce) has no zero byte with the flag, and without it
//! some do, so the check can fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Rng;
use std::net::IpAddr;
use std::time::Duration;

use gm::reg::{
    Credentials, Flow, Network, NetworkAction, NetworkConfig, OpKey, Subscriber, Ue, UeConfig,
};

const K: [u8; 16] = [0x46; 16];
const OP: [u8; 16] = [0x5a; 16];

/// How many of 300 challenges have a RES with a zero byte.
fn res_with_zero(flag: bool) -> usize {
    let ue_addr: IpAddr = "10.0.0.2".parse().unwrap();
    let pcscf: IpAddr = "10.0.0.1".parse().unwrap();
    let mut config = NetworkConfig::new("ims.example.org", pcscf, 5062, 5064);
    config.allow_unprotected = true;
    config.xres_without_zero_byte = flag;
    let mut net = Network::new(config);
    net.add_subscriber(
        "alice@ims.example.org",
        Subscriber {
            k: K,
            op: OpKey::Op(OP),
            amf: [0x80, 0],
            sqn: 0x20,
            impus: vec!["sip:alice@ims.example.org".into()],
        },
    );
    let milenage = OpKey::Op(OP).milenage(&K);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut zero = 0;
    for _ in 0..300 {
        let mut c = UeConfig::new(
            "alice@ims.example.org",
            "sip:alice@ims.example.org",
            "ims.example.org",
            ue_addr,
            pcscf,
            (0, 0),
            (0, 0),
        );
        c.sec_agree = false;
        let creds = Credentials::Password(String::new());
        let mut ue = Ue::new(c, creds, &mut rng);
        let acts = ue.register(&mut rng);
        let req = acts[0].request().unwrap();
        let out = net.on_register(req, ue_addr, Flow::Unprotected, Duration::ZERO, &mut rng);
        let challenge = out
            .iter()
            .find_map(|a| match a {
                NetworkAction::Respond(m) if m.status() == Some(401) => Some(m),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{out:?}"));
        let www = challenge.header("WWW-Authenticate").unwrap();
        let nonce = www
            .split("nonce=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        let rand = opensec::aka::parse_nonce(nonce).unwrap().rand;
        if milenage.f2345(&rand).res.contains(&0) {
            zero += 1;
        }
    }
    zero
}

#[test]
fn the_flag_keeps_zero_bytes_out_of_res() {
    assert_eq!(res_with_zero(true), 0);
    assert!(res_with_zero(false) > 0);
}
