//! Challenges in flight at the network side ([`gm::reg::Network`]):
//! several challenges without SAs of one IMPI are each answered by their
//! own nonce (up to [`gm::reg::MAX_CHALLENGES`], each for
//! `TEMPORARY_LIFETIME`), while a challenge with sec-agree replaces every
//! earlier one and removes its SAs. Each UE here is our own
//! [`gm::reg::Ue`] with its own SQN, so the RES, the AUTN check and the
//! digest are the real ones; SIPp's overlapping registrations in
//! `tools/tests` and `benches/pcscf_load.sh` meet the same rule.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Rng;
use std::net::IpAddr;
use std::time::Duration;

use gm::reg::{
    Credentials, Flow, MAX_CHALLENGES, Network, NetworkAction, NetworkConfig, OpKey, Subscriber,
    Ue, UeAction, UeConfig,
};
use gm::sip::Message;

const K: [u8; 16] = [0x46; 16];
const OP: [u8; 16] = [0x5a; 16];
const IMPI: &str = "alice@ims.example.org";
const IMPU: &str = "sip:alice@ims.example.org";

fn ue_addr() -> IpAddr {
    "10.0.0.2".parse().unwrap()
}

fn network() -> Network {
    let mut config = NetworkConfig::new("ims.example.org", "10.0.0.1".parse().unwrap(), 5066, 5068);
    config.allow_unprotected = true;
    let mut net = Network::new(config);
    net.add_subscriber(
        IMPI,
        Subscriber {
            k: K,
            op: OpKey::Op(OP),
            amf: [0x80, 0],
            sqn: 0x20,
            impus: vec![IMPU.into()],
        },
    );
    net
}

/// A UE of `IMPI` (its own ports and SPIs when `sec_agree`).
fn ue(n: u16, sec_agree: bool, rng: &mut Rng) -> Ue {
    let mut c = UeConfig::new(
        IMPI,
        IMPU,
        "ims.example.org",
        ue_addr(),
        "10.0.0.1".parse().unwrap(),
        (1000 + u32::from(n) * 2, 1001 + u32::from(n) * 2),
        (6000 + n * 2, 6001 + n * 2),
    );
    c.sec_agree = sec_agree;
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

fn bytes_of(m: &Message<'_>) -> Vec<u8> {
    m.to_bytes()
}

/// The network's answer to the request of `acts` (a `Send`), sent at `now`:
/// its response and everything it did.
fn send(
    net: &mut Network,
    acts: &[UeAction],
    now: Duration,
    rng: &mut Rng,
) -> (Message<'static>, Flow, Vec<NetworkAction>) {
    let (request, flow) = acts
        .iter()
        .find_map(|a| match a {
            UeAction::Send { request, flow } => Some((request, *flow)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no request in {acts:?}"));
    let bytes = bytes_of(request);
    let req = Message::parse(&bytes).unwrap();
    let out = net.on_register(&req, ue_addr(), flow, now, rng);
    let resp = out
        .iter()
        .find_map(|a| match a {
            NetworkAction::Respond(m) => Some(Message::parse(&m.to_bytes()).unwrap().into_owned()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no response in {out:?}"));
    (resp, flow, out)
}

/// A UE's first REGISTER and the 401 to it, and the UE's answer to that
/// 401 (not sent yet).
fn challenged(
    net: &mut Network,
    ue: &mut Ue,
    now: Duration,
    rng: &mut Rng,
) -> (Vec<UeAction>, Vec<NetworkAction>) {
    let first = ue.register(rng);
    let (resp, flow, out) = send(net, &first, now, rng);
    assert_eq!(resp.status(), Some(401), "{out:?}");
    (ue.on_response(&resp, flow, now, rng), out)
}

fn registered(out: &[NetworkAction]) -> bool {
    out.iter()
        .any(|a| matches!(a, NetworkAction::Registered { .. }))
}

#[test]
fn challenges_without_sas_are_each_answered_by_their_nonce() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut net = network();
    let now = Duration::ZERO;
    let mut a = ue(0, false, &mut rng);
    let mut b = ue(1, false, &mut rng);
    let (answer_a, _) = challenged(&mut net, &mut a, now, &mut rng);
    let (answer_b, _) = challenged(&mut net, &mut b, now, &mut rng);
    // The older challenge is answered after the newer was sent: both hold.
    let (resp, _, out) = send(&mut net, &answer_a, now, &mut rng);
    assert_eq!(resp.status(), Some(200), "{out:?}");
    assert!(registered(&out));
    let (resp, _, out) = send(&mut net, &answer_b, now, &mut rng);
    assert_eq!(resp.status(), Some(200), "{out:?}");
    assert!(registered(&out));
    // Each nonce served once: A's answer again is a fresh challenge.
    let (resp, _, out) = send(&mut net, &answer_a, now, &mut rng);
    assert_eq!(resp.status(), Some(401), "{out:?}");
}

#[test]
fn beyond_the_limit_the_oldest_challenge_goes() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut net = network();
    let now = Duration::ZERO;
    let mut answers = Vec::new();
    for n in 0..=MAX_CHALLENGES as u16 {
        let mut u = ue(n, false, &mut rng);
        answers.push(challenged(&mut net, &mut u, now, &mut rng).0);
    }
    let (resp, _, out) = send(&mut net, &answers[0], now, &mut rng);
    assert_eq!(resp.status(), Some(401), "the oldest is gone: {out:?}");
    assert!(!registered(&out));
    // That 401 was one more challenge, which pushed out the next oldest.
    for answer in &answers[2..] {
        let (resp, _, out) = send(&mut net, answer, now, &mut rng);
        assert_eq!(resp.status(), Some(200), "{out:?}");
    }
    let (resp, _, _) = send(&mut net, &answers[1], now, &mut rng);
    assert_eq!(resp.status(), Some(401));
}

#[test]
fn each_challenge_without_sas_ends_at_its_own_time() {
    let mut rng = Rng(0x0bad_cafe_f00d_1234);
    let mut net = network();
    let mut a = ue(0, false, &mut rng);
    let mut b = ue(1, false, &mut rng);
    let (answer_a, _) = challenged(&mut net, &mut a, Duration::ZERO, &mut rng);
    let later = Duration::from_secs(100);
    let (answer_b, _) = challenged(&mut net, &mut b, later, &mut rng);
    let lifetime = Duration::from_secs(240);
    assert_eq!(net.poll_timeout(), Some(lifetime));
    assert!(net.handle_timeout(lifetime).is_empty());
    assert_eq!(net.poll_timeout(), Some(later + lifetime));
    let t = lifetime + Duration::from_secs(1);
    let (resp, _, _) = send(&mut net, &answer_a, t, &mut rng);
    assert_eq!(resp.status(), Some(401), "A's challenge has ended");
    let (resp, _, out) = send(&mut net, &answer_b, t, &mut rng);
    assert_eq!(resp.status(), Some(200), "B's has not: {out:?}");
}

#[test]
fn a_challenge_with_sas_replaces_the_earlier_ones_and_their_sas() {
    let mut rng = Rng(0x5555_aaaa_1234_4321);
    let mut net = network();
    let now = Duration::ZERO;
    let mut plain = ue(0, false, &mut rng);
    let (answer_plain, _) = challenged(&mut net, &mut plain, now, &mut rng);
    let mut a = ue(1, true, &mut rng);
    let (answer_a, out) = challenged(&mut net, &mut a, now, &mut rng);
    let first_set = out
        .iter()
        .find_map(|x| match x {
            NetworkAction::InstallSas(s) => Some(s.clone()),
            _ => None,
        })
        .expect("SAs for the sec-agree challenge");
    // The challenge without SAs is gone.
    let (resp, _, _) = send(&mut net, &answer_plain, now, &mut rng);
    assert_eq!(resp.status(), Some(401));
    assert!(net.sas(IMPI).is_none(), "that 401 replaced A's SAs too");
    // Again with sec-agree: the SAs of A2's challenge are removed before
    // B's are installed.
    let mut a2 = ue(3, true, &mut rng);
    let (answer_a2, _) = challenged(&mut net, &mut a2, now, &mut rng);
    let mut b = ue(2, true, &mut rng);
    let (_, out) = challenged(&mut net, &mut b, now, &mut rng);
    let removed = out
        .iter()
        .position(|x| matches!(x, NetworkAction::RemoveSas(_)))
        .expect("A's SAs removed");
    let installed = out
        .iter()
        .position(|x| matches!(x, NetworkAction::InstallSas(_)))
        .expect("B's SAs installed");
    assert!(removed < installed, "{out:?}");
    // A's and A2's answers over their removed SAs register nothing.
    for answer in [&answer_a, &answer_a2] {
        let (resp, _, out) = send(&mut net, answer, now, &mut rng);
        assert_ne!(resp.status(), Some(200), "{out:?}");
        assert!(!registered(&out));
    }
    assert_ne!(net.sas(IMPI), Some(&first_set));
}
