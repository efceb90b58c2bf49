//! The network role (`gm::network::Pcscf`) with the UE's registration
//! machine (`gm::reg::Ue`) in memory, over the role's outputs: what it
//! sends and when its SA changes take effect. The rule under test is the
//! order: a response that must leave over SAs comes before their removal,
//! SAs come after the response of the request that created them; and a
//! registered UE's MESSAGE is relayed, an unregistered one's refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::Rng;
use gm::network::{Addresses, Event, Links, Output, Pcscf};
use gm::presence::{Agent, Compositor};
use gm::reg::{Credentials, Flow, Network, NetworkConfig, OpKey, SaSet, Ue, UeAction, UeConfig};
use gm::sip::{Message, Method};
use gm::sms::service::SmsCentre;
use gm::txn::{Protocol, Reliability, Timers, Transactions};

const K: [u8; 16] = [0x11; 16];
const OPC: [u8; 16] = [0x22; 16];
const PORTS: (u16, u16) = (7100, 7101);

fn pcscf_addr() -> IpAddr {
    "192.0.2.1".parse().unwrap()
}

fn ue_addr(i: u8) -> IpAddr {
    format!("192.0.2.{}", 10 + i).parse().unwrap()
}

/// Every destination over UDP.
struct Udp;

impl Links for Udp {
    fn protocol(&self, _: SocketAddr) -> Protocol {
        Protocol::Udp
    }
}

fn impi(i: u8) -> String {
    format!("ue{i}@ims.example.org")
}

fn role() -> Pcscf {
    let mut net = Network::new(NetworkConfig::new(
        "ims.example.org",
        pcscf_addr(),
        PORTS.0,
        PORTS.1,
    ));
    let mut impus = HashMap::new();
    for i in 0..2 {
        net.add_subscriber(&impi(i), common::subscriber(K, OPC));
        impus.insert(impi(i), vec![format!("sip:{}", impi(i))]);
    }
    let local = SocketAddr::new(pcscf_addr(), 5060);
    let sent_by = SocketAddr::new(pcscf_addr(), PORTS.1);
    let agent = Agent::new(
        Compositor::new(&[], 3600, 60, 7200),
        &format!("sip:{sent_by}"),
        60,
        3600,
        7200,
    );
    Pcscf::new(
        net,
        Transactions::new(Timers::default()),
        agent,
        (
            SmsCentre::new(gm::sms::Address::international("15555550000")),
            "sip:+15555550000@ims.example.org".to_owned(),
        ),
        impus,
        Addresses { local, sent_by },
    )
}

fn ue(i: u8, rng: &mut Rng) -> Ue {
    let base = 6100 + 100 * u16::from(i);
    let config = UeConfig::new(
        &impi(i),
        &format!("sip:{}", impi(i)),
        "ims.example.org",
        ue_addr(i),
        pcscf_addr(),
        (0x1000, 0x1001),
        (base, base + 1),
    );
    Ue::new(
        config,
        Credentials::Aka {
            k: K,
            op: OpKey::Opc(OPC),
            sqn_ms: 0,
        },
        rng,
    )
}

/// What the role did, in order.
#[derive(Debug)]
enum Did {
    Sent(SocketAddr, Vec<u8>),
    Install(SaSet),
    Remove(SaSet),
    Update(SaSet),
    Event(Event),
}

fn drain(p: &mut Pcscf) -> Vec<Did> {
    let mut v = Vec::new();
    while let Some(o) = p.poll_output() {
        v.push(match o {
            Output::Transmit(t) => Did::Sent(t.to, t.bytes),
            Output::InstallSas { set, .. } => Did::Install(set),
            Output::RemoveSas(set) => Did::Remove(set),
            Output::UpdateSas(set) => Did::Update(set),
            Output::Event(e) => Did::Event(e),
        });
    }
    v
}

/// Where UE `i` sends `flow` from, and the role's arrival facts.
fn arrival(i: u8, flow: Flow) -> (SocketAddr, (Flow, Option<u16>, Reliability)) {
    match flow {
        Flow::Unprotected => (
            SocketAddr::new(ue_addr(i), 5060),
            (flow, None, Reliability::Unreliable),
        ),
        Flow::Protected {
            ue_port,
            pcscf_port,
        } => (
            SocketAddr::new(ue_addr(i), ue_port),
            (flow, Some(pcscf_port), Reliability::Unreliable),
        ),
    }
}

/// Gives the role UE `i`'s request, stamped as the transport would.
fn to_role(p: &mut Pcscf, i: u8, request: &Message<'_>, flow: Flow, rng: &mut Rng) -> Vec<Did> {
    let (from, arrived) = arrival(i, flow);
    let mut m = Message::parse(&request.to_bytes()).unwrap().into_owned();
    gm::txn::stamp_via(&mut m, from).unwrap();
    p.on_request(&m, from, arrived, Duration::ZERO, rng, &mut Udp);
    drain(p)
}

fn sends(actions: &[UeAction]) -> Vec<(Message<'static>, Flow)> {
    actions
        .iter()
        .filter_map(|a| match a {
            UeAction::Send { request, flow } => Some((request.clone(), *flow)),
            _ => None,
        })
        .collect()
}

fn status(bytes: &[u8]) -> u16 {
    Message::parse(bytes).unwrap().status().unwrap()
}

/// A MESSAGE from UE `from` to UE `to`.
fn message(from: u8, to: u8) -> Message<'static> {
    Message::request(Method::Message, &format!("sip:{}", impi(to)))
        .header(
            "Via",
            format!(
                "SIP/2.0/UDP {}:6100;branch=z9hG4bKm{from}{to}",
                ue_addr(from)
            ),
        )
        .header("From", format!("<sip:{}>;tag=f{from}", impi(from)))
        .header("To", format!("<sip:{}>", impi(to)))
        .header("Call-ID", format!("m{from}{to}"))
        .header("CSeq", "1 MESSAGE")
        .header("Max-Forwards", 70)
        .body("text/plain", b"hi".to_vec())
        .build()
        .unwrap()
}

/// The flow UE `u`'s requests take over its SAs.
fn over(u: &Ue) -> Flow {
    let s = u.sas().unwrap();
    Flow::Protected {
        ue_port: s.ue_offer().port_c,
        pcscf_port: s.pcscf_offer().port_s,
    }
}

/// UE `i` registers: the 401 leaves before the challenge's SAs are
/// installed, the 200 before anything else. Returns the UE.
fn register(p: &mut Pcscf, i: u8, rng: &mut Rng) -> Ue {
    let mut u = ue(i, rng);
    let (req, flow) = sends(&u.register(rng)).remove(0);
    let did = to_role(p, i, &req, flow, rng);
    let [Did::Sent(to, r), Did::Install(set)] = &did[..] else {
        panic!("{did:?}");
    };
    assert_eq!((*to, status(r)), (arrival(i, flow).0, 401));
    assert_eq!(set.ue_offer().spi_c, 0x1000);
    let acts = u.on_response(&Message::parse(r).unwrap(), flow, Duration::ZERO, rng);
    let (req, flow) = sends(&acts).remove(0);
    let did = to_role(p, i, &req, flow, rng);
    // The 200, over the SAs as they are; then their new lifetime.
    let [
        Did::Event(Event::Registered { target, .. }),
        Did::Sent(_, r),
        Did::Update(set),
    ] = &did[..]
    else {
        panic!("{did:?}");
    };
    assert_eq!(status(r), 200);
    assert_eq!(target.port(), set.ue_offer().port_s);
    let acts = u.on_response(&Message::parse(r).unwrap(), flow, Duration::ZERO, rng);
    assert!(
        acts.iter().any(|a| matches!(a, UeAction::Registered(_))),
        "{acts:?}"
    );
    u
}

#[test]
fn registration_orders_responses_and_sas() {
    let mut rng = Rng(7);
    let mut p = role();
    register(&mut p, 0, &mut rng);
    assert!(p.network().binding(&impi(0)).is_some());
}

/// A man in the middle downgrades the Security-Verify: the 494 goes out
/// while the challenge's SAs are still in place (the UE reads responses
/// only over them), then they are removed.
#[test]
fn a_refusal_leaves_over_the_sas_before_they_go() {
    let mut rng = Rng(9);
    let mut p = role();
    let mut u = ue(0, &mut rng);
    let (req, flow) = sends(&u.register(&mut rng)).remove(0);
    let did = to_role(&mut p, 0, &req, flow, &mut rng);
    let Did::Sent(_, r) = &did[0] else {
        panic!("{did:?}")
    };
    let acts = u.on_response(&Message::parse(r).unwrap(), flow, Duration::ZERO, &mut rng);
    let (mut req, flow) = sends(&acts).remove(0);
    let v = req.header("Security-Verify").unwrap().to_owned();
    req.set_header(
        "Security-Verify".to_owned(),
        v.replace("hmac-sha-1-96", "hmac-md5-96"),
    )
    .unwrap();
    let did = to_role(&mut p, 0, &req, flow, &mut rng);
    let [Did::Sent(to, r), Did::Remove(set), ..] = &did[..] else {
        panic!("{did:?}");
    };
    assert_eq!(set.ue_offer().spi_c, 0x1000);
    assert_eq!((*to, status(r)), (arrival(0, flow).0, 494));
    assert!(p.network().sas(&impi(0)).is_none());
}

/// A registered UE's MESSAGE to another registered UE is relayed to its
/// port-s (TS 33.203) and the answer comes back; one from a UE that is not
/// registered is refused.
#[test]
fn messages_are_relayed_between_registered_ues_only() {
    let mut rng = Rng(11);
    let mut p = role();
    let a = register(&mut p, 0, &mut rng);
    let b = register(&mut p, 1, &mut rng);
    let did = to_role(&mut p, 0, &message(0, 1), over(&a), &mut rng);
    let [
        Did::Event(Event::Relayed { method, .. }),
        Did::Sent(to, fwd),
    ] = &did[..]
    else {
        panic!("{did:?}");
    };
    assert_eq!(method, "MESSAGE");
    let b_set = b.sas().unwrap();
    assert_eq!(
        *to,
        SocketAddr::new(ue_addr(1), b_set.ue_offer().port_s),
        "to its port-s"
    );
    let fwd = Message::parse(fwd).unwrap();
    assert_eq!(fwd.method(), Some(Method::Message));
    // Its 200 goes back to the sender.
    let ok = gm::sip::Builder::response_to(&fwd, 200, None)
        .to_tag("b")
        .build()
        .unwrap();
    p.on_response(&ok, Duration::ZERO, &mut Udp);
    let did = drain(&mut p);
    let [Did::Sent(to, r)] = &did[..] else {
        panic!("{did:?}");
    };
    assert_eq!((to.ip(), status(r)), (ue_addr(0), 200));
    // A UE without a registration, in clear.
    let did = to_role(&mut p, 2, &message(2, 1), Flow::Unprotected, &mut rng);
    let [Did::Sent(_, r)] = &did[..] else {
        panic!("{did:?}");
    };
    assert!(status(r) >= 400, "{}", status(r));
}

/// A relayed MESSAGE the transport cannot send (its target's SAs are
/// gone): reported to the transactions, the role is due at once and
/// answers the sender 500 (RFC 3261 §16.7), without waiting for a timer.
#[test]
fn a_relay_that_cannot_be_sent_is_answered_at_once() {
    let mut rng = Rng(13);
    let mut p = role();
    let a = register(&mut p, 0, &mut rng);
    register(&mut p, 1, &mut rng);
    let flow = over(&a);
    let (from, arrived) = arrival(0, flow);
    let mut m = message(0, 1);
    gm::txn::stamp_via(&mut m, from).unwrap();
    p.on_request(&m, from, arrived, Duration::ZERO, &mut rng, &mut Udp);
    let mut forwarded = None;
    while let Some(o) = p.poll_output() {
        if let Output::Transmit(t) = o {
            forwarded = Some(t.txn);
        }
    }
    p.transactions()
        .transport_error(forwarded.expect("relayed"));
    assert_eq!(p.poll_timeout(), Some(Duration::ZERO));
    p.handle_timeout(Duration::ZERO, &mut rng, &mut Udp);
    let did = drain(&mut p);
    let [Did::Sent(to, r)] = &did[..] else {
        panic!("{did:?}");
    };
    assert_eq!((*to, status(r)), (from, 500));
}
