//! The reg event (RFC 3680) wired into registration, end to end in
//! memory: our UE ([`gm::reg::Ue`]) subscribes to its registration at our
//! P-CSCF/registrar ([`gm::reg::Network`]) after registering, every
//! message emitted as bytes and parsed again on the other side, each
//! protected one checked to travel over SAs both sides have installed.
//!
//! Covered: the SUBSCRIBE and the full-state NOTIFY; the partial NOTIFY of
//! a re-registration; network-initiated de-registration (`rejected`: the
//! UE stops; `deactivated`: it registers again and subscribes again) with
//! the network's SAs removed only once the NOTIFY's transaction ended;
//! `shortened` bringing the re-registration forward; unsubscribe before
//! de-registration; bad NOTIFYs and SUBSCRIBEs answered with the right
//! status. Every reginfo body the network sent is valid for `xmllint`
//! against RFC 3680's schema.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Rng;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gm::reg::{
    Credentials, Ending, Flow, Network, NetworkAction, NetworkConfig, OpKey, SaSet, Subscriber, Ue,
    UeAction, UeConfig,
};
use gm::regevent::{ContactEvent, ContactState, Reginfo};
use gm::sip::{Builder, Message, Method};
use sadb::ast::Direction;
use testkit::{Peer, TempDir, require};

const K: [u8; 16] = [
    0xfe, 0xc8, 0x6b, 0xa6, 0xeb, 0x70, 0x7e, 0xd0, 0x89, 0x05, 0x75, 0x7b, 0x1b, 0xb4, 0x4b, 0x8f,
];
const OP: [u8; 16] = [
    0xdb, 0xc5, 0x9a, 0xdc, 0xb6, 0xf9, 0xa0, 0xef, 0x73, 0x54, 0x77, 0xb7, 0xfa, 0xdf, 0x83, 0x74,
];
const IMPI: &str = "alice@ims.example.org";
const IMPU: &str = "sip:alice@ims.example.org";

fn ue_addr() -> IpAddr {
    "10.0.0.2".parse().unwrap()
}

fn pcscf_addr() -> IpAddr {
    "10.0.0.1".parse().unwrap()
}

/// Rewrites a message's bytes on its way.
type Tamper = Box<dyn FnMut(Vec<u8>) -> Vec<u8>>;

/// A message on its way.
enum Wire {
    /// UE → network request.
    UeRequest(Vec<u8>, Flow),
    /// Network → UE response.
    NetResponse(Vec<u8>, Flow),
    /// Network → UE request (NOTIFY).
    NetRequest(Vec<u8>, Flow),
    /// UE → network response.
    UeResponse(Vec<u8>, Flow),
}

/// One SA statement, as the caller would apply it.
#[derive(Debug, Clone, PartialEq)]
enum Statement {
    Install(SaSet),
    Update(SaSet),
    Remove(SaSet),
}

struct World {
    ue: Ue,
    net: Network,
    rng: Rng,
    now: Duration,
    ue_sas: Vec<SaSet>,
    net_sas: Vec<SaSet>,
    ue_statements: Vec<Statement>,
    net_statements: Vec<Statement>,
    ue_events: Vec<UeAction>,
    net_events: Vec<NetworkAction>,
    /// Every message, as (sender, bytes, flow).
    log: Vec<(&'static str, Vec<u8>, Flow)>,
    /// Rewrites a NOTIFY on its way to the UE.
    tamper_notify: Option<Tamper>,
    /// Messages their receiver dropped for want of an SA.
    dropped: Vec<Vec<u8>>,
    queue: VecDeque<Wire>,
}

fn world() -> World {
    world_sqn(0, 0)
}

/// With the UE's SQN_MS and the network's SQN.
fn world_sqn(ue_sqn: u64, net_sqn: u64) -> World {
    world_with(ue_sqn, net_sqn, |_| {})
}

/// With the UE's SQN_MS, the network's SQN and its configuration changed.
fn world_with(ue_sqn: u64, net_sqn: u64, configure: impl FnOnce(&mut NetworkConfig)) -> World {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let config = UeConfig::new(
        IMPI,
        IMPU,
        "ims.example.org",
        ue_addr(),
        pcscf_addr(),
        (1111, 2222),
        (5062, 5064),
    );
    let ue = Ue::new(
        config,
        Credentials::Aka {
            k: K,
            op: OpKey::Op(OP),
            sqn_ms: ue_sqn,
        },
        &mut rng,
    );
    let mut nc = NetworkConfig::new("ims.example.org", pcscf_addr(), 5066, 5068);
    nc.service_routes = vec!["<sip:orig@scscf.ims.example.org;lr>".into()];
    configure(&mut nc);
    let mut net = Network::new(nc);
    net.add_subscriber(
        IMPI,
        Subscriber {
            k: K,
            op: OpKey::Op(OP),
            amf: [0x80, 0x00],
            sqn: net_sqn,
            impus: vec![IMPU.into(), "tel:+15550100".into()],
        },
    );
    World {
        ue,
        net,
        rng,
        now: Duration::ZERO,
        ue_sas: Vec::new(),
        net_sas: Vec::new(),
        ue_statements: Vec::new(),
        net_statements: Vec::new(),
        ue_events: Vec::new(),
        net_events: Vec::new(),
        log: Vec::new(),
        tamper_notify: None,
        dropped: Vec::new(),
        queue: VecDeque::new(),
    }
}

/// Whether `sets` hold an SA in `direction` from `src` port to `dst` port.
fn covered(sets: &[SaSet], direction: Direction, src: u16, dst: u16) -> bool {
    sets.iter().any(|s| {
        s.sas()
            .iter()
            .any(|sa| sa.direction == direction && sa.src_port == src && sa.dst_port == dst)
    })
}

fn apply(sets: &mut Vec<SaSet>, log: &mut Vec<Statement>, st: Statement) {
    match &st {
        Statement::Install(s) => sets.push(s.clone()),
        Statement::Remove(s) => sets.retain(|x| x != s),
        Statement::Update(s) => {
            sets.retain(|x| x.sas() != s.sas());
            sets.push(s.clone());
        }
    }
    log.push(st);
}

impl World {
    fn ue_do(&mut self, actions: Vec<UeAction>) {
        for a in actions {
            match a {
                UeAction::Send { request, flow } => {
                    self.check_sender(true, flow);
                    self.queue
                        .push_back(Wire::UeRequest(request.to_bytes(), flow))
                }
                UeAction::Respond { response, flow } => {
                    self.check_sender(true, flow);
                    self.queue
                        .push_back(Wire::UeResponse(response.to_bytes(), flow))
                }
                UeAction::InstallSas(s) => apply(
                    &mut self.ue_sas,
                    &mut self.ue_statements,
                    Statement::Install(s),
                ),
                UeAction::UpdateSas(s) => apply(
                    &mut self.ue_sas,
                    &mut self.ue_statements,
                    Statement::Update(s),
                ),
                UeAction::RemoveSas(s) => apply(
                    &mut self.ue_sas,
                    &mut self.ue_statements,
                    Statement::Remove(s),
                ),
                e => self.ue_events.push(e),
            }
        }
    }

    fn net_do(&mut self, actions: Vec<NetworkAction>, flow: Flow) {
        for a in actions {
            match a {
                NetworkAction::Respond(m) => {
                    self.check_sender(false, flow);
                    self.queue.push_back(Wire::NetResponse(m.to_bytes(), flow))
                }
                NetworkAction::Notify { request, flow } => {
                    self.check_sender(false, flow);
                    self.queue
                        .push_back(Wire::NetRequest(request.to_bytes(), flow))
                }
                NetworkAction::InstallSas(s) => apply(
                    &mut self.net_sas,
                    &mut self.net_statements,
                    Statement::Install(s),
                ),
                NetworkAction::UpdateSas(s) => apply(
                    &mut self.net_sas,
                    &mut self.net_statements,
                    Statement::Update(s),
                ),
                NetworkAction::RemoveSas(s) => apply(
                    &mut self.net_sas,
                    &mut self.net_statements,
                    Statement::Remove(s),
                ),
                e => self.net_events.push(e),
            }
        }
    }

    /// A protected message leaves over an SA of its sender, installed
    /// when the action that sends it is carried out (actions take effect
    /// in order).
    fn check_sender(&self, from_ue: bool, flow: Flow) {
        self.check(from_ue, flow, true);
    }

    /// Whether a protected message arrives: its receiver drops it
    /// without an SA for it (SAs removed while it travelled).
    fn arrives(&self, from_ue: bool, flow: Flow) -> bool {
        self.covers(from_ue, flow, false)
    }

    fn check(&self, from_ue: bool, flow: Flow, sender: bool) {
        assert!(
            self.covers(from_ue, flow, sender),
            "no SA of the sender for {flow:?}"
        );
    }

    fn covers(&self, from_ue: bool, flow: Flow, sender: bool) -> bool {
        let Flow::Protected {
            ue_port,
            pcscf_port,
        } = flow
        else {
            return true;
        };
        let (src, dst) = if from_ue {
            (ue_port, pcscf_port)
        } else {
            (pcscf_port, ue_port)
        };
        let (ue_dir, net_dir) = if from_ue {
            (Direction::Out, Direction::In)
        } else {
            (Direction::In, Direction::Out)
        };
        if sender == from_ue {
            covered(&self.ue_sas, ue_dir, src, dst)
        } else {
            covered(&self.net_sas, net_dir, src, dst)
        }
    }

    /// Carries messages until both sides are quiet.
    fn pump(&mut self) {
        while self.step() {}
    }

    /// Carries one message; false when none is on its way.
    fn step(&mut self) -> bool {
        {
            let Some(w) = self.queue.pop_front() else {
                return false;
            };
            match w {
                Wire::UeRequest(bytes, flow) => {
                    if !self.arrives(true, flow) {
                        self.dropped.push(bytes);
                        return true;
                    }
                    self.log.push(("ue", bytes.clone(), flow));
                    let req = Message::parse(&bytes).unwrap();
                    let acts = self
                        .net
                        .on_request(&req, ue_addr(), flow, self.now, &mut self.rng)
                        .expect("the network takes REGISTER and SUBSCRIBE");
                    self.net_do(acts, flow);
                }
                Wire::NetResponse(bytes, flow) => {
                    if !self.arrives(false, flow) {
                        self.dropped.push(bytes);
                        return true;
                    }
                    self.log.push(("net", bytes.clone(), flow));
                    let resp = Message::parse(&bytes).unwrap();
                    let acts = self.ue.on_response(&resp, flow, self.now, &mut self.rng);
                    self.ue_do(acts);
                }
                Wire::NetRequest(bytes, flow) => {
                    let bytes = match self.tamper_notify.as_mut() {
                        Some(t) => t(bytes),
                        None => bytes,
                    };
                    if !self.arrives(false, flow) {
                        self.dropped.push(bytes);
                        return true;
                    }
                    self.log.push(("net", bytes.clone(), flow));
                    let req = Message::parse(&bytes).unwrap();
                    let acts = self
                        .ue
                        .on_request(&req, flow, self.now, &mut self.rng)
                        .expect("a reg NOTIFY is the UE's");
                    self.ue_do(acts);
                }
                Wire::UeResponse(bytes, flow) => {
                    if !self.arrives(true, flow) {
                        self.dropped.push(bytes);
                        return true;
                    }
                    self.log.push(("ue", bytes.clone(), flow));
                    let resp = Message::parse(&bytes).unwrap();
                    let acts = self.net.on_response(&resp, self.now);
                    self.net_do(acts, flow);
                }
            }
        }
        true
    }

    fn register(&mut self) {
        let a = self.ue.register(&mut self.rng);
        self.ue_do(a);
        self.pump();
    }

    fn at(&mut self, t: Duration) {
        self.now = t;
        let a = self.ue.handle_timeout(t, &mut self.rng);
        self.ue_do(a);
        let n = self.net.handle_timeout(t);
        self.net_do(n, Flow::Unprotected);
        self.pump();
    }

    /// The messages of `method` (requests) or answering it (responses),
    /// parsed, in order.
    fn messages(&self, method: Method<'_>) -> Vec<Message<'static>> {
        self.log
            .iter()
            .map(|(_, b, _)| Message::parse(b).unwrap().into_owned())
            .filter(|m| m.method() == Some(method) || m.cseq().is_ok_and(|c| c.method == method))
            .collect()
    }

    fn requests(&self, method: Method<'_>) -> Vec<Message<'static>> {
        self.messages(method)
            .into_iter()
            .filter(|m| m.is_request())
            .collect()
    }

    fn statuses(&self, method: Method<'_>) -> Vec<u16> {
        self.messages(method)
            .iter()
            .filter_map(|m| m.status())
            .collect()
    }

    fn notifies(&self) -> Vec<Reginfo> {
        self.requests(Method::Notify)
            .iter()
            .filter(|m| !m.body().is_empty())
            .map(|m| Reginfo::parse(std::str::from_utf8(m.body()).unwrap()).unwrap())
            .collect()
    }

    fn registered_count(&self) -> usize {
        self.ue_events
            .iter()
            .filter(|e| matches!(e, UeAction::Registered(_)))
            .count()
    }
}

fn contact_of(doc: &Reginfo) -> (ContactState, ContactEvent) {
    let c = &doc.registrations[0].contacts[0];
    (c.state, c.event)
}

/// Registers and subscribes; returns the world with the full state
/// received.
fn subscribed() -> World {
    let mut w = world();
    w.register();
    assert_eq!(w.registered_count(), 1, "{:?}", w.ue_events);
    assert_eq!(w.statuses(Method::Subscribe), [200]);
    assert_eq!(w.statuses(Method::Notify), [200]);
    w
}

#[test]
fn the_ue_subscribes_to_its_registration_over_the_sas() {
    let w = subscribed();
    let sub = &w.requests(Method::Subscribe)[0];
    assert_eq!(sub.request_uri().unwrap().to_string(), IMPU);
    assert_eq!(sub.event().unwrap().unwrap().package(), "reg");
    assert_eq!(sub.header("Accept"), Some("application/reginfo+xml"));
    assert_eq!(sub.expires().unwrap(), Some(600_000));
    assert_eq!(
        sub.routes().unwrap()[0].to_string(),
        "<sip:orig@scscf.ims.example.org;lr>"
    );
    // Over the SAs: from our port-c to the P-CSCF's port-s; the NOTIFY
    // from its port-c to our port-s.
    let flows: Vec<Flow> = w
        .log
        .iter()
        .filter(|(_, b, _)| {
            let m = Message::parse(b).unwrap();
            m.cseq().is_ok_and(|c| c.method != Method::Register)
        })
        .map(|(_, _, f)| *f)
        .collect();
    let c_s = Flow::Protected {
        ue_port: 5062,
        pcscf_port: 5068,
    };
    let s_c = Flow::Protected {
        ue_port: 5064,
        pcscf_port: 5066,
    };
    assert_eq!(flows, [c_s, c_s, s_c, s_c]);
    // The full state, version 0: both identities, our contact active.
    let docs = w.notifies();
    assert_eq!(docs.len(), 1);
    assert!(docs[0].full);
    assert_eq!(docs[0].version, 0);
    let aors: Vec<&str> = docs[0]
        .registrations
        .iter()
        .map(|r| r.aor.as_str())
        .collect();
    assert_eq!(aors, [IMPU, "tel:+15550100"]);
    assert_eq!(
        docs[0].registrations[0].contacts[0].uri,
        "sip:10.0.0.2:5064"
    );
    assert_eq!(
        contact_of(&docs[0]),
        (ContactState::Active, ContactEvent::Registered)
    );
    // Nothing but the registration happened on either side.
    assert!(
        w.ue_events
            .iter()
            .all(|e| matches!(e, UeAction::Registered(_))),
        "{:?}",
        w.ue_events
    );
}

#[test]
fn a_reregistration_is_notified_as_refreshed() {
    let mut w = subscribed();
    let refresh = w.ue.poll_timeout().unwrap();
    assert_eq!(refresh, Duration::from_secs(599_400));
    w.at(refresh);
    assert_eq!(w.registered_count(), 2);
    // The subscription was refreshed too (it lasts as the registration,
    // and is due at the same time): full state again, then the partial
    // document of the re-registration.
    assert_eq!(w.statuses(Method::Subscribe), [200, 200]);
    let docs = w.notifies();
    assert_eq!(docs.len(), 3);
    assert!(docs[1].full && docs[1].version == 1);
    assert!(!docs[2].full);
    assert_eq!(docs[2].version, 2);
    assert_eq!(
        contact_of(&docs[2]),
        (ContactState::Active, ContactEvent::Refreshed)
    );
}

/// Re-registration with SA handover while subscribed to the reg event:
/// the subscription's refresh and the re-REGISTER leave together over the
/// old set, the NOTIFYs that cross the handover are answered over the set
/// they came on, the partial `refreshed` NOTIFY comes over the new set,
/// nothing is dropped for want of an SA, the subscription keeps its
/// dialog, and only the new set is left on both sides.
#[test]
fn a_handover_keeps_the_subscription_and_notifies_over_the_new_sas() {
    let mut w = world_with(0, 0, |c| c.alt_port_c = Some(5070));
    w.register();
    assert_eq!(w.statuses(Method::Notify), [200]);
    w.ue.offer_next((3333, 4444), 5072).unwrap();
    let refresh = w.ue.poll_timeout().unwrap();
    w.at(refresh);
    assert_eq!(w.registered_count(), 2, "{:?}", w.ue_events);
    assert!(w.dropped.is_empty(), "{} dropped", w.dropped.len());
    assert_eq!(w.statuses(Method::Register), [401, 200, 401, 200]);
    assert_eq!(w.statuses(Method::Subscribe), [200, 200]);
    let subs = w.requests(Method::Subscribe);
    assert_eq!(subs[0].call_id().unwrap(), subs[1].call_id().unwrap());
    let docs = w.notifies();
    let last = docs.last().unwrap();
    assert!(!last.full);
    assert_eq!(
        contact_of(last),
        (ContactState::Active, ContactEvent::Refreshed)
    );
    let (_, _, flow) = w
        .log
        .iter()
        .rev()
        .find(|(_, b, _)| Message::parse(b).unwrap().method() == Some(Method::Notify))
        .unwrap();
    assert_eq!(
        *flow,
        Flow::Protected {
            ue_port: 5064,
            pcscf_port: 5070
        }
    );
    assert_eq!(w.ue_sas.len(), 1, "{:?}", w.ue_sas);
    assert_eq!(w.net_sas.len(), 1, "{:?}", w.net_sas);
    assert_eq!(w.ue_sas[0].mirror(), w.net_sas[0]);
    assert_eq!(w.ue_sas[0].ue_offer().spi_c, 3333);
}

#[test]
fn network_deregistration_rejected_stops_the_ue_and_removes_the_sas_after_the_notify() {
    let mut w = subscribed();
    let before = w.net_sas.clone();
    assert_eq!(before.len(), 1);
    let acts = w.net.deregister(IMPI, Ending::Rejected, w.now);
    // The SAs stay until the NOTIFY's transaction ends.
    assert!(
        !acts
            .iter()
            .any(|a| matches!(a, NetworkAction::RemoveSas(_))),
        "{acts:?}"
    );
    assert!(matches!(acts[0], NetworkAction::Notify { .. }));
    w.net_do(acts, Flow::Unprotected);
    w.pump();
    let docs = w.notifies();
    let last = docs.last().unwrap();
    assert_eq!(
        contact_of(last),
        (ContactState::Terminated, ContactEvent::Rejected)
    );
    let notify = w.requests(Method::Notify).pop().unwrap();
    let ss = notify.subscription_state().unwrap().unwrap();
    assert_eq!((ss.state, ss.reason), ("terminated", Some("rejected")));
    assert_eq!(w.statuses(Method::Notify), [200, 200]);
    assert!(matches!(
        w.ue_events.last(),
        Some(UeAction::DeregisteredByNetwork {
            event: ContactEvent::Rejected,
            reregister_after: None
        })
    ));
    assert!(w.ue.is_done());
    assert!(w.ue.registration().is_none());
    assert!(w.ue_sas.is_empty() && w.net_sas.is_empty());
    assert_eq!(
        w.net_statements.last(),
        Some(&Statement::Remove(before[0].clone()))
    );
    assert!(w.net.binding(IMPI).is_none());
    assert!(
        w.net_events
            .iter()
            .any(|e| matches!(e, NetworkAction::Deregistered { impi } if impi == IMPI))
    );
}

#[test]
fn network_deregistration_deactivated_registers_again_and_subscribes_again() {
    let mut w = subscribed();
    w.now = Duration::from_secs(100);
    let acts = w.net.deregister(IMPI, Ending::Deactivated, w.now);
    w.net_do(acts, Flow::Unprotected);
    w.pump();
    let i = w
        .ue_events
        .iter()
        .position(|e| {
            matches!(
                e,
                UeAction::DeregisteredByNetwork {
                    event: ContactEvent::Deactivated,
                    reregister_after: Some(d)
                } if d.is_zero()
            )
        })
        .expect("deregistered by the network");
    assert!(matches!(w.ue_events[i + 1], UeAction::Registered(_)));
    assert_eq!(w.registered_count(), 2);
    // A new initial registration: unprotected REGISTER, a new challenge,
    // new SAs on both sides (the old ones removed first).
    let registers = w.requests(Method::Register);
    assert_eq!(registers.len(), 4);
    assert!(registers[2].header("Security-Verify").is_none());
    assert_eq!(w.ue_sas.len(), 1);
    assert_eq!(w.net_sas.len(), 1);
    assert_eq!(w.ue_sas[0].mirror(), w.net_sas[0]);
    // A second subscription, answered with the full state.
    let subs = w.requests(Method::Subscribe);
    assert_eq!(subs.len(), 2);
    assert_ne!(subs[0].call_id().unwrap(), subs[1].call_id().unwrap());
    let docs = w.notifies();
    assert_eq!(
        contact_of(&docs[1]),
        (ContactState::Terminated, ContactEvent::Deactivated)
    );
    assert!(docs[2].full && docs[2].version == 0);
    assert!(w.ue.registration().is_some());
}

/// `probation`: the NOTIFY says when to come back (the contact's
/// `retry-after`, the subscription's `reason=probation;retry-after`); the
/// UE drops its SAs, waits that long and registers again, with a new
/// challenge and new SAs, and subscribes again.
#[test]
fn network_deregistration_on_probation_registers_again_after_retry_after() {
    let mut w = subscribed();
    w.now = Duration::from_secs(100);
    let probation = Ending::Probation {
        retry_after: Duration::from_secs(120),
    };
    let acts = w.net.deregister(IMPI, probation, w.now);
    w.net_do(acts, Flow::Unprotected);
    w.pump();
    let docs = w.notifies();
    let c = &docs.last().unwrap().registrations[0].contacts[0];
    assert_eq!(
        (c.state, c.event, c.retry_after),
        (ContactState::Terminated, ContactEvent::Probation, Some(120))
    );
    let notify = w.requests(Method::Notify).pop().unwrap();
    let ss = notify.subscription_state().unwrap().unwrap();
    assert_eq!((ss.state, ss.reason), ("terminated", Some("probation")));
    assert!(
        notify
            .header("Subscription-State")
            .unwrap()
            .contains("retry-after=120"),
        "{notify:?}"
    );
    assert!(matches!(
        w.ue_events.last(),
        Some(UeAction::DeregisteredByNetwork {
            event: ContactEvent::Probation,
            reregister_after: Some(d)
        }) if *d == Duration::from_secs(120)
    ));
    assert!(w.ue_sas.is_empty() && w.net_sas.is_empty());
    assert!(w.net.binding(IMPI).is_none());
    // Not before retry-after.
    assert_eq!(w.ue.poll_timeout(), Some(Duration::from_secs(220)));
    w.at(Duration::from_secs(219));
    assert_eq!(w.registered_count(), 1);
    assert_eq!(w.requests(Method::Register).len(), 2);
    w.at(Duration::from_secs(220));
    assert_eq!(w.registered_count(), 2);
    let registers = w.requests(Method::Register);
    assert_eq!(registers.len(), 4);
    assert!(registers[2].header("Security-Verify").is_none());
    assert_eq!(w.ue_sas.len(), 1);
    assert_eq!(w.ue_sas[0].mirror(), w.net_sas[0]);
    assert_eq!(w.requests(Method::Subscribe).len(), 2);
    assert!(w.net.binding(IMPI).is_some());
    // The contact (the same URI throughout) keeps one id in every
    // document (RFC 3680 §5.1).
    let ids: std::collections::BTreeSet<String> = w
        .notifies()
        .iter()
        .flat_map(|d| &d.registrations)
        .flat_map(|r| &r.contacts)
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[test]
fn shortened_brings_the_reregistration_forward() {
    let mut w = subscribed();
    w.now = Duration::from_secs(1000);
    let acts = w.net.shorten(IMPI, Duration::from_secs(100), w.now);
    w.net_do(acts, Flow::Unprotected);
    w.pump();
    let Some(UeAction::Shortened(r)) = w.ue_events.last() else {
        panic!("{:?}", w.ue_events)
    };
    assert_eq!(r.expires_at, Duration::from_secs(1100));
    assert_eq!(r.refresh_at, Duration::from_secs(1050));
    assert_eq!(w.ue.poll_timeout(), Some(Duration::from_secs(1050)));
    assert_eq!(w.net.binding(IMPI).unwrap().1, Duration::from_secs(1100));
    w.at(Duration::from_secs(1050));
    assert_eq!(w.registered_count(), 2);
    assert_eq!(
        w.net.binding(IMPI).unwrap().1,
        Duration::from_secs(1050 + 600_000)
    );
    let docs = w.notifies();
    assert_eq!(
        contact_of(&docs[1]),
        (ContactState::Active, ContactEvent::Shortened)
    );
    assert_eq!(docs[1].registrations[0].contacts[0].expires, Some(100));
}

#[test]
fn deregistration_unsubscribes_first() {
    let mut w = subscribed();
    let acts = w.ue.deregister(&mut w.rng);
    let sent: Vec<(String, Option<u32>)> = acts
        .iter()
        .filter_map(|a| a.request())
        .map(|r| {
            (
                r.method().unwrap().as_str().to_owned(),
                r.expires().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            ("SUBSCRIBE".to_owned(), Some(0)),
            ("REGISTER".to_owned(), Some(0))
        ]
    );
    w.ue_do(acts);
    w.pump();
    assert!(matches!(w.ue_events.last(), Some(UeAction::Deregistered)));
    let notify = w.requests(Method::Notify).pop().unwrap();
    let ss = notify.subscription_state().unwrap().unwrap();
    assert_eq!(ss.state, "terminated");
    assert_eq!(w.statuses(Method::Notify), [200, 200]);
    // The UE deleted its SAs on the 200; the network keeps its own,
    // NOTIFYs answered, for a de-REGISTER retransmitted if that 200 was
    // lost, until DEREGISTRATION_LINGER after it.
    assert!(w.ue_sas.is_empty());
    assert_eq!(w.net_sas.len(), 1);
    let linger = w.now + gm::reg::DEREGISTRATION_LINGER;
    let acts = w.net.handle_timeout(linger - Duration::from_millis(1));
    w.net_do(acts, Flow::Unprotected);
    assert_eq!(w.net_sas.len(), 1, "not before");
    let acts = w.net.handle_timeout(linger);
    w.net_do(acts, Flow::Unprotected);
    assert!(w.net_sas.is_empty());
    assert!(!w.ue_events.iter().any(|e| matches!(
        e,
        UeAction::RegEventEnded | UeAction::DeregisteredByNetwork { .. }
    )));
}

/// De-registering before the SUBSCRIBE is answered: the unsubscribe
/// waits for the dialog; nobody is left subscribed, and every protected
/// message finds its SAs (the harness).
#[test]
fn deregistering_before_the_subscription_is_answered() {
    let mut w = world();
    let a = w.ue.register(&mut w.rng);
    w.ue_do(a);
    while w.registered_count() == 0 {
        assert!(w.step());
    }
    let acts = w.ue.deregister(&mut w.rng);
    let sent: Vec<Method<'_>> = acts.iter().filter_map(|a| a.request()?.method()).collect();
    assert_eq!(sent, [Method::Register]);
    w.ue_do(acts);
    w.pump();
    assert!(matches!(w.ue_events.last(), Some(UeAction::Deregistered)));
    assert!(w.ue_sas.is_empty());
    // The NOTIFYs that crossed the de-registration found no SA at the UE
    // (a real IPsec layer drops them). The network keeps its SAs for
    // their answers, but not until their Timer F: the UE deleted its own
    // on the 200, so they go DEREGISTRATION_LINGER after it.
    assert!(!w.dropped.is_empty());
    assert_eq!(w.net_sas.len(), 1);
    let dropped: Vec<Message<'static>> = std::mem::take(&mut w.dropped)
        .iter()
        .map(|b| Message::parse(b).unwrap().into_owned())
        .collect();
    assert!(dropped.iter().any(|m| m.method() == Some(Method::Notify)));
    let linger = w.now + gm::reg::DEREGISTRATION_LINGER;
    assert!(w.net.poll_timeout().is_some_and(|t| t <= linger));
    let before = linger - Duration::from_millis(1);
    let acts = w.net.handle_timeout(before);
    w.net_do(acts, Flow::Unprotected);
    assert_eq!(w.net_sas.len(), 1, "not before");
    let acts = w.net.handle_timeout(linger);
    w.net_do(acts, Flow::Unprotected);
    assert!(w.net_sas.is_empty());
    // Their Timer F comes later and changes nothing.
    for m in dropped
        .iter()
        .filter(|m| m.method() == Some(Method::Notify))
    {
        assert!(w.net.on_notify_timeout(m).is_empty());
    }
    assert!(w.net.binding(IMPI).is_none());
    // The network ended the subscription with the binding: nothing to
    // notify any more.
    assert!(
        w.net
            .shorten(IMPI, Duration::from_secs(10), w.now)
            .is_empty()
    );
    // Its timers may still hold stale entries (dropped lazily): running
    // them does nothing, and then none is left.
    let later = w.now + Duration::from_secs(10_000_000);
    assert!(w.net.handle_timeout(later).is_empty());
    assert!(w.net.poll_timeout().is_none());
}

#[test]
fn bad_notifies_get_typed_responses_and_change_nothing() {
    let mut w = subscribed();
    let s_c = Flow::Protected {
        ue_port: 5064,
        pcscf_port: 5066,
    };
    let notify = w.requests(Method::Notify).pop().unwrap();
    let text = String::from_utf8(notify.to_bytes()).unwrap();
    // A NOTIFY of another dialog: 481.
    let other = text.replacen("Call-ID: ", "Call-ID: x", 1);
    let other = Message::parse(other.as_bytes()).unwrap();
    let acts = w.ue.on_request(&other, s_c, w.now, &mut w.rng).unwrap();
    assert!(
        matches!(acts.as_slice(), [UeAction::Respond { response, flow }]
            if response.status() == Some(481) && *flow == s_c),
        "{acts:?}"
    );
    // One in clear while SAs are up is dropped unanswered; one of
    // another package is not the registration's.
    let acts =
        w.ue.on_request(&notify, Flow::Unprotected, w.now, &mut w.rng)
            .unwrap();
    assert!(acts.is_empty(), "{acts:?}");
    let presence = text.replace("Event: reg", "Event: presence");
    let presence = Message::parse(presence.as_bytes()).unwrap();
    assert!(w.ue.on_request(&presence, s_c, w.now, &mut w.rng).is_none());
    // A malformed reginfo body: 400, and the registration is untouched.
    w.tamper_notify = Some(Box::new(|b| {
        let s = String::from_utf8(b).unwrap();
        let body_at = s.find("\r\n\r\n").unwrap() + 4;
        let body = &s[body_at..];
        let broken = body.replace("<reginfo", "<reginf");
        let head = s[..body_at].replace(
            &format!("Content-Length: {}", body.len()),
            &format!("Content-Length: {}", broken.len()),
        );
        format!("{head}{broken}").into_bytes()
    }));
    let acts = w.net.shorten(IMPI, Duration::from_secs(100), w.now);
    w.net_do(acts, Flow::Unprotected);
    w.pump();
    assert_eq!(w.statuses(Method::Notify), [200, 400]);
    assert_eq!(
        w.ue.registration().unwrap().expires,
        Duration::from_secs(600_000)
    );
    assert!(
        w.ue_events
            .iter()
            .all(|e| matches!(e, UeAction::Registered(_))),
        "{:?}",
        w.ue_events
    );
    // The error ended the subscription at the network (RFC 6665 §4.2.2).
    let acts = w.net.shorten(IMPI, Duration::from_secs(80), w.now);
    assert!(acts.is_empty(), "{acts:?}");
}

#[test]
fn subscribes_the_network_does_not_take() {
    let mut w = subscribed();
    let sub = w.requests(Method::Subscribe)[0].clone();
    let over = Flow::Protected {
        ue_port: 5062,
        pcscf_port: 5068,
    };
    let status = |acts: Vec<NetworkAction>| match acts.as_slice() {
        [NetworkAction::Respond(m), ..] => m.status().unwrap(),
        other => panic!("{other:?}"),
    };
    let fresh = |text: String| Message::parse(text.as_bytes()).unwrap().into_owned();
    let text = String::from_utf8(sub.to_bytes()).unwrap();
    // In clear though the UE has SAs: 403.
    let other = fresh(text.replacen("Call-ID: ", "Call-ID: a", 1));
    let acts = w
        .net
        .on_subscribe(&other, ue_addr(), Flow::Unprotected, w.now, &mut w.rng);
    assert_eq!(status(acts), 403);
    // Another user's registration: 403.
    let bob = fresh(
        text.replacen("Call-ID: ", "Call-ID: b", 1)
            .replace("SUBSCRIBE sip:alice@", "SUBSCRIBE sip:bob@"),
    );
    assert_eq!(
        status(w.net.on_subscribe(&bob, ue_addr(), over, w.now, &mut w.rng)),
        403
    );
    // Not reginfo: 406; another package: 489.
    let xml = fresh(
        text.replacen("Call-ID: ", "Call-ID: c", 1)
            .replace("application/reginfo+xml", "application/pidf+xml"),
    );
    assert_eq!(
        status(w.net.on_subscribe(&xml, ue_addr(), over, w.now, &mut w.rng)),
        406
    );
    let presence = fresh(
        text.replacen("Call-ID: ", "Call-ID: d", 1)
            .replace("Event: reg", "Event: presence"),
    );
    assert!(
        w.net
            .on_request(&presence, ue_addr(), over, w.now, &mut w.rng)
            .is_none()
    );
    assert_eq!(
        status(
            w.net
                .on_subscribe(&presence, ue_addr(), over, w.now, &mut w.rng)
        ),
        489
    );
    // In a dialog we do not have: 481.
    let stray = Message::request(Method::Subscribe, IMPU)
        .header("Via", "SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKstray")
        .header("From", format!("<{IMPU}>;tag=a"))
        .header("To", format!("<{IMPU}>;tag=b"))
        .header("Call-ID", "stray")
        .header("CSeq", "2 SUBSCRIBE")
        .header("Event", "reg")
        .build()
        .unwrap();
    assert_eq!(
        status(
            w.net
                .on_subscribe(&stray, ue_addr(), over, w.now, &mut w.rng)
        ),
        481
    );
    // A response to a NOTIFY nobody sent changes nothing.
    let resp = Builder::response_to(&stray, 200, None).build().unwrap();
    assert!(w.net.on_response(&resp, w.now).is_empty());
}

#[test]
fn the_networks_reginfo_validates_against_the_rfc_3680_schema() {
    if !require(
        "the_networks_reginfo_validates_against_the_rfc_3680_schema",
        &[Peer::Program("xmllint")],
    ) {
        return;
    }
    // Every kind of document: full, refreshed, shortened, unregistered,
    // deactivated, probation, rejected.
    let mut w = subscribed();
    let acts = w.net.shorten(IMPI, Duration::from_secs(100), w.now);
    w.net_do(acts, Flow::Unprotected);
    w.pump();
    w.at(Duration::from_secs(50));
    let acts = w.net.deregister(IMPI, Ending::Deactivated, w.now);
    w.net_do(acts, Flow::Unprotected);
    w.pump();
    let probation = Ending::Probation {
        retry_after: Duration::from_secs(30),
    };
    let acts = w.net.deregister(IMPI, probation, w.now);
    w.net_do(acts, Flow::Unprotected);
    w.pump();
    w.at(Duration::from_secs(80));
    let acts = w.net.deregister(IMPI, Ending::Rejected, w.now);
    w.net_do(acts, Flow::Unprotected);
    w.pump();
    let mut bodies: Vec<Vec<u8>> = w
        .requests(Method::Notify)
        .iter()
        .map(|m| m.body().to_vec())
        .collect();
    let mut v = subscribed();
    let a = v.ue.deregister(&mut v.rng);
    v.ue_do(a);
    v.pump();
    bodies.extend(v.requests(Method::Notify).iter().map(|m| m.body().to_vec()));
    bodies.retain(|b| !b.is_empty());
    let events: Vec<ContactEvent> = bodies
        .iter()
        .map(|b| contact_of(&Reginfo::parse(std::str::from_utf8(b).unwrap()).unwrap()).1)
        .collect();
    for e in [
        ContactEvent::Registered,
        ContactEvent::Shortened,
        ContactEvent::Refreshed,
        ContactEvent::Deactivated,
        ContactEvent::Probation,
        ContactEvent::Rejected,
    ] {
        assert!(events.contains(&e), "{e:?} not in {events:?}");
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reginfo.xsd");
    let dir = TempDir::new("reg-event-schema");
    for (i, b) in bodies.iter().enumerate() {
        let file = dir.path(&format!("notify{i}.xml"));
        std::fs::write(&file, b).unwrap();
        let out = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "NOTIFY body {i} invalid: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(b)
        );
    }
}

/// The AUTS request travels over temporary SAs set up from the first
/// 401 (keys from its RAND's CK and IK), both sides having them; the
/// second 401 comes back over them, then each side replaces them with the
/// SAs of the new challenge. Every protected message is checked against
/// the SAs installed at that moment on both sides (the harness).
#[test]
fn the_auts_request_goes_over_temporary_sas() {
    let mut w = world_sqn(5000, 10);
    w.register();
    assert_eq!(w.registered_count(), 1, "{:?}", w.ue_events);
    let registers = w.requests(Method::Register);
    assert_eq!(registers.len(), 3);
    assert!(registers[1].authorization().unwrap()[0].auts().is_some());
    let flows: Vec<Flow> = w
        .log
        .iter()
        .filter(|(_, b, _)| {
            Message::parse(b)
                .unwrap()
                .cseq()
                .is_ok_and(|c| c.method == Method::Register)
        })
        .map(|(_, _, f)| *f)
        .collect();
    let over = Flow::Protected {
        ue_port: 5062,
        pcscf_port: 5068,
    };
    assert_eq!(
        flows,
        [Flow::Unprotected, Flow::Unprotected, over, over, over, over]
    );
    let kinds = |v: &[Statement]| -> Vec<&'static str> {
        v.iter()
            .map(|s| match s {
                Statement::Install(_) => "install",
                Statement::Update(_) => "update",
                Statement::Remove(_) => "remove",
            })
            .collect()
    };
    assert_eq!(
        kinds(&w.ue_statements),
        ["install", "remove", "install", "update"]
    );
    assert_eq!(
        kinds(&w.net_statements),
        ["install", "remove", "install", "update"]
    );
    // The temporary sets mirror each other, and differ from the final
    // ones (another RAND, other network SPIs).
    let (Statement::Install(ue_t), Statement::Install(net_t)) =
        (&w.ue_statements[0], &w.net_statements[0])
    else {
        unreachable!()
    };
    assert_eq!(ue_t.mirror(), *net_t);
    assert_eq!(w.ue_statements[1], Statement::Remove(ue_t.clone()));
    assert_ne!(w.ue_sas[0].sas(), ue_t.sas());
    assert_eq!(w.ue_sas[0].mirror(), w.net_sas[0]);
    assert_eq!(w.ue.sqn_ms(), Some(5001));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any body in a NOTIFY of our subscription gets 200 or 400 (or is
    /// refused as a message before), never a panic.
    #[test]
    fn any_notify_body_gets_a_response(body in "\\PC{0,400}", version in 1u32..5) {
        let mut w = subscribed();
        let notify = w.requests(Method::Notify).pop().unwrap();
        let text = String::from_utf8(notify.to_bytes()).unwrap();
        let at = text.find("\r\n\r\n").unwrap() + 4;
        let old = &text[at..];
        let body = if version % 2 == 0 {
            old.replace("version=\"0\"", &format!("version=\"{version}\"")).replace("registered", &body)
        } else {
            body
        };
        let head = text[..at]
            .replace(&format!("Content-Length: {}", old.len()), &format!("Content-Length: {}", body.len()))
            .replace("CSeq: 1 NOTIFY", "CSeq: 2 NOTIFY");
        let whole = format!("{head}{body}");
        let Ok(m) = Message::parse(whole.as_bytes()) else {
            return Ok(());
        };
        let s_c = Flow::Protected { ue_port: 5064, pcscf_port: 5066 };
        let acts = w.ue.on_request(&m, s_c, w.now, &mut w.rng).unwrap();
        let status = acts.iter().find_map(|a| match a {
            UeAction::Respond { response, .. } => response.status(),
            _ => None,
        });
        proptest::prop_assert!(matches!(status, Some(200 | 400)), "{acts:?}");
    }
}

/// A UE that ends without answering the last NOTIFY leaves its SA set
/// kept for that NOTIFY; a new UE process registering from the same
/// ports gets its own set, and the kept one goes first (their policies
/// would clash).
#[test]
fn a_new_ue_on_the_ports_of_a_kept_set_replaces_it() {
    let mut w = subscribed();
    let before = w.net_sas.clone();
    assert_eq!(before.len(), 1);
    let acts = w.net.deregister(IMPI, Ending::Rejected, w.now);
    w.net_do(acts, Flow::Unprotected);
    // The UE process is gone: the NOTIFY is never answered, the set kept.
    w.queue.clear();
    w.ue_sas.clear();
    assert_eq!(w.net_sas, before);
    let mut fresh = world();
    std::mem::swap(&mut w.ue, &mut fresh.ue);
    w.ue_events.clear();
    w.register();
    assert_eq!(w.registered_count(), 1, "{:?}", w.ue_events);
    let removed = w
        .net_statements
        .iter()
        .position(|s| *s == Statement::Remove(before[0].clone()))
        .expect("the kept set is removed");
    let installed = w
        .net_statements
        .iter()
        .rposition(|s| matches!(s, Statement::Install(_)))
        .unwrap();
    assert!(removed < installed, "{:?}", w.net_statements);
    assert_eq!(w.net_sas.len(), 1);
    assert_ne!(w.net_sas, before);
}
