//! The `mod` of sec-agree (TS 33.203) end to end in memory: our UE
//! ([`gm::reg::Ue`]) offering `mod=UDP-enc-tun` to our P-CSCF
//! ([`gm::reg::Network`]), which answers in the UE's mode; a network that
//! does not take the mode, a UE offering two modes at once and a
//! Security-Server in a mode the UE did not offer are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Rng;
use std::net::IpAddr;
use std::time::Duration;

use gm::reg::{
    Credentials, Error, Flow, IpsecMode, Network, NetworkAction, NetworkConfig, OpKey, SaSet,
    Subscriber, Ue, UeAction, UeConfig,
};
use gm::sip::Message;

const K: [u8; 16] = [0x11; 16];
const OP: [u8; 16] = [0x22; 16];
const IMPI: &str = "alice@ims.example.org";

fn addrs() -> (IpAddr, IpAddr) {
    ("10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap())
}

fn ue(mode: IpsecMode, rng: &mut Rng) -> Ue {
    let (u, p) = addrs();
    let mut c = UeConfig::new(
        IMPI,
        "sip:alice@ims.example.org",
        "ims.example.org",
        u,
        p,
        (1111, 2222),
        (5062, 5064),
    );
    c.mode = mode;
    // The reg event subscription is covered in reg_event.rs.
    c.reg_event = false;
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

fn network(modes: &[IpsecMode]) -> Network {
    let mut c = NetworkConfig::new("ims.example.org", addrs().1, 5066, 5068);
    c.modes = modes.to_vec();
    let mut n = Network::new(c);
    n.add_subscriber(
        IMPI,
        Subscriber {
            k: K,
            op: OpKey::Op(OP),
            amf: [0x80, 0],
            sqn: 0,
            impus: vec![],
        },
    );
    n
}

/// Carries messages both ways until quiet, every message as bytes;
/// `tamper` may rewrite each response. The UE's actions other than sends
/// and the network's SA sets are returned.
fn run(
    ue: &mut Ue,
    net: &mut Network,
    rng: &mut Rng,
    first: Vec<UeAction>,
    tamper: impl Fn(String) -> String,
) -> (Vec<UeAction>, Vec<SaSet>, Vec<Message<'static>>) {
    let (ue_addr, _) = addrs();
    let (mut events, mut net_sas, mut responses) = (Vec::new(), Vec::new(), Vec::new());
    let mut queue = first;
    while !queue.is_empty() {
        let mut next = Vec::new();
        for a in queue {
            match a {
                UeAction::Send { request, flow } => {
                    let req = Message::parse(&request.to_bytes()).unwrap().into_owned();
                    for n in net.on_register(&req, ue_addr, flow, Duration::ZERO, rng) {
                        match n {
                            NetworkAction::Respond(m) => {
                                let text = tamper(String::from_utf8(m.to_bytes()).unwrap());
                                let r = Message::parse(text.as_bytes()).unwrap().into_owned();
                                next.extend(ue.on_response(&r, flow, Duration::ZERO, rng));
                                responses.push(r);
                            }
                            NetworkAction::InstallSas(s) | NetworkAction::UpdateSas(s) => {
                                net_sas.push(s)
                            }
                            _ => {}
                        }
                    }
                }
                e => events.push(e),
            }
        }
        queue = next;
    }
    (events, net_sas, responses)
}

#[test]
fn the_network_answers_in_the_ues_mode() {
    let mut rng = Rng(7);
    let mut ue = ue(IpsecMode::UdpEncapsulatedTunnel, &mut rng);
    let mut net = network(&[IpsecMode::Transport, IpsecMode::UdpEncapsulatedTunnel]);
    let first = ue.register(&mut rng);
    let client = first[0]
        .request()
        .unwrap()
        .header("Security-Client")
        .unwrap();
    assert_eq!(client.matches("mod=UDP-enc-tun").count(), 6, "{client}");
    let (events, net_sas, responses) = run(&mut ue, &mut net, &mut rng, first, |s| s);
    assert!(
        matches!(events.last(), Some(UeAction::Registered(_))),
        "{events:?}"
    );
    let server = responses[0].header("Security-Server").unwrap();
    assert!(server.contains(";mod=UDP-enc-tun;"), "{server}");
    let sas = ue.sas().unwrap();
    assert_eq!(sas.mode(), IpsecMode::UdpEncapsulatedTunnel);
    assert_eq!(sas.mirror(), *net_sas.last().unwrap());
    let script = sas.script();
    assert_eq!(script.matches("esp-udp").count(), 4, "{script}");
    assert_eq!(script.matches("-m tunnel").count(), 4, "{script}");
    // The protected REGISTER came on port-c to the P-CSCF's port-s.
    assert_eq!(
        Flow::protected(gm::reg::Side::Ue, 5062, 5068),
        Flow::Protected {
            ue_port: 5062,
            pcscf_port: 5068
        }
    );
    assert_eq!(
        Flow::protected(gm::reg::Side::Network, 5068, 5062),
        Flow::protected(gm::reg::Side::Ue, 5062, 5068)
    );
}

#[test]
fn a_mode_the_network_does_not_take_is_refused_with_494() {
    let mut rng = Rng(7);
    let mut ue = ue(IpsecMode::UdpEncapsulatedTunnel, &mut rng);
    let mut net = network(&[IpsecMode::Transport]);
    let first = ue.register(&mut rng);
    let (events, net_sas, responses) = run(&mut ue, &mut net, &mut rng, first, |s| s);
    assert_eq!(responses[0].status(), Some(494));
    assert!(net_sas.is_empty());
    assert!(
        matches!(
            events.last(),
            Some(UeAction::Failed(Error::Rejected { status: 494 }))
        ),
        "{events:?}"
    );
}

#[test]
fn offers_in_two_modes_are_refused_with_494() {
    let mut rng = Rng(7);
    let mut net = network(&[IpsecMode::Transport, IpsecMode::UdpEncapsulatedTunnel]);
    let req = "REGISTER sip:ims.example.org SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1\r\n\
        From: <sip:alice@ims.example.org>;tag=1\r\n\
        To: <sip:alice@ims.example.org>\r\n\
        Call-ID: c1\r\nCSeq: 1 REGISTER\r\n\
        Contact: <sip:10.0.0.2:5064>\r\n\
        Require: sec-agree\r\nProxy-Require: sec-agree\r\n\
        Security-Client: ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c=1111;spi-s=2222;port-c=5062;port-s=5064\r\n\
        Security-Client: ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;mod=UDP-enc-tun;spi-c=1111;spi-s=2222;port-c=5062;port-s=5064\r\n\
        Authorization: Digest username=\"alice@ims.example.org\",realm=\"ims.example.org\",uri=\"sip:ims.example.org\",nonce=\"\",response=\"\"\r\n\
        Content-Length: 0\r\n\r\n";
    let m = Message::parse(req.as_bytes()).unwrap();
    let out = net.on_register(&m, addrs().0, Flow::Unprotected, Duration::ZERO, &mut rng);
    let statuses: Vec<u16> = out
        .iter()
        .filter_map(|a| match a {
            NetworkAction::Respond(r) => r.status(),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, [494]);
    assert!(
        !out.iter()
            .any(|a| matches!(a, NetworkAction::InstallSas(_)))
    );
}

#[test]
fn a_security_server_in_another_mode_fails_the_ue() {
    let mut rng = Rng(7);
    let mut ue = ue(IpsecMode::UdpEncapsulatedTunnel, &mut rng);
    let mut net = network(&[IpsecMode::UdpEncapsulatedTunnel]);
    let first = ue.register(&mut rng);
    let (events, _, _) = run(&mut ue, &mut net, &mut rng, first, |s| {
        s.replace(";mod=UDP-enc-tun", ";mod=trans")
    });
    let Some(UeAction::Failed(e)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(
        *e,
        Error::BadResponse {
            what: "Security-Server offer in another mod than ours"
        }
    );
    assert!(ue.sas().is_none());
    // An unknown mod is named as such.
    let mut ue2 = self::ue(IpsecMode::UdpEncapsulatedTunnel, &mut rng);
    let first = ue2.register(&mut rng);
    let (events, _, _) = run(&mut ue2, &mut net, &mut rng, first, |s| {
        s.replace(";mod=UDP-enc-tun", ";mod=tun")
    });
    assert!(
        matches!(
            events.last(),
            Some(UeAction::Failed(Error::BadOffer {
                what: "mod other than trans and UDP-enc-tun"
            }))
        ),
        "{events:?}"
    );
}
