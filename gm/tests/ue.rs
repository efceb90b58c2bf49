//! The UE role (`gm::ue::Ua`) against the network role
//! (`gm::network::Pcscf`) in memory, over a channel that loses nothing
//! (unless told to lose everything) and time advanced by the test: the
//! rules the role adds to the machines it drives. Commands wait for the
//! registration; SMS parts leave one MESSAGE at a time, and a refused
//! part stops the rest; a MESSAGE without an answer ends at Timer F; a
//! re-registration names the set its new SAs replace; the
//! de-registration ends the publication and the subscriptions first, and
//! waits for a re-registration in flight; once SAs exist, what did not
//! come over them is dropped. And a property: hostile datagrams at any
//! point never make it panic, nor speak in clear while an SA set is
//! installed.
//! (The flows themselves, with SigComp and SAs over a lossy channel, are
//! in `reg_sigcomp_lossy.rs`, which runs the same two roles.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::Rng;
use gm::network::{Addresses, Links, Output as NetOutput, Pcscf};
use gm::presence::{Agent, Basic, Compositor, Published};
use gm::reg::{Credentials, Flow, Network, NetworkConfig, OpKey, SaSet, Ue, UeConfig};
use gm::sip::Message;
use gm::sms::service::{SmsCentre, SmsUe, UeEvent};
use gm::txn::{Protocol, Reliability, Timers, Transactions};
use gm::ue::{Error, Event, Output, Settings, Ua};
use proptest::prelude::*;

const K: [u8; 16] = [0x11; 16];
const OPC: [u8; 16] = [0x22; 16];
const DOMAIN: &str = "ims.example.org";
const CENTRE: &str = "sip:+15555550000@ims.example.org";

fn pcscf_addr() -> IpAddr {
    "192.0.2.1".parse().unwrap()
}

fn ue_addr(i: usize) -> IpAddr {
    format!("192.0.2.{}", 10 + i).parse().unwrap()
}

fn impu(i: usize) -> String {
    format!("sip:ue{i}@{DOMAIN}")
}

fn number(i: usize) -> String {
    format!("1555555010{i}")
}

struct Udp;

impl Links for Udp {
    fn protocol(&self, _: SocketAddr) -> Protocol {
        Protocol::Udp
    }
}

/// A datagram: to the network or not, the UE, source and destination.
struct Datagram {
    to_network: bool,
    ue: usize,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

struct World {
    net: Pcscf,
    ues: Vec<Ua>,
    rng: Rng,
    now: Duration,
    wire: Vec<Datagram>,
    /// Loses every datagram.
    blackhole: bool,
    /// Loses every PUBLISH.
    lose_publish: bool,
    /// Each UE's events, and what it sent (method or status), in order.
    events: Vec<Vec<Event>>,
    sent: Vec<Vec<String>>,
    /// Each UE's SA installs: the set and the set it replaces.
    installs: Vec<Vec<(SaSet, Option<SaSet>)>>,
    /// Each UE's SA sets as its outputs installed and removed them, and
    /// the messages it sent in clear while one was installed.
    installed: Vec<Vec<SaSet>>,
    clear_while_protected: Vec<Vec<String>>,
}

impl World {
    /// `n` UEs, UE `i`'s settings changed by `configure`.
    fn new(n: usize, configure: impl Fn(usize, &mut Settings)) -> World {
        let mut rng = Rng(5);
        let mut nc = NetworkConfig::new(DOMAIN, pcscf_addr(), 7100, 7101);
        nc.alt_port_c = Some(7102);
        let mut net = Network::new(nc);
        let mut centre = SmsCentre::new(gm::sms::Address::international("15555550000"));
        let mut impus = HashMap::new();
        let mut ues = Vec::new();
        for i in 0..n {
            let impi = format!("ue{i}@{DOMAIN}");
            net.add_subscriber(&impi, common::subscriber(K, OPC));
            impus.insert(impi.clone(), vec![impu(i)]);
            centre.subscriber(&number(i), &impu(i));
            let base = 6100 + 100 * i as u16;
            let mut config = UeConfig::new(
                &impi,
                &impu(i),
                DOMAIN,
                ue_addr(i),
                pcscf_addr(),
                (0x1000, 0x1001),
                (base, base + 1),
            );
            config.expires = 600;
            let ue = Ue::new(
                config,
                Credentials::Aka {
                    k: K,
                    op: OpKey::Opc(OPC),
                    sqn_ms: 0,
                },
                &mut rng,
            );
            let mut settings = Settings {
                impu: impu(i),
                presentity: impu(i),
                pcscf: SocketAddr::new(pcscf_addr(), 5060),
                local: SocketAddr::new(ue_addr(i), 5060),
                protocol: Protocol::Udp,
                sigcomp_id: None,
                presence_expires: 3600,
                sms_centre: CENTRE.to_owned(),
            };
            configure(i, &mut settings);
            let sms = SmsUe::new(gm::sms::Address::international("15555550000"));
            ues.push(Ua::new(
                ue,
                Transactions::new(Timers::default()),
                sms,
                settings,
            ));
        }
        let resources: Vec<String> = (0..n).map(impu).collect();
        let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
        let agent = Agent::new(
            Compositor::new(&resources, 3600, 60, 7200),
            &format!("sip:{}", SocketAddr::new(pcscf_addr(), 7101)),
            60,
            3600,
            7200,
        );
        let net = Pcscf::new(
            net,
            Transactions::new(Timers::default()),
            agent,
            (centre, CENTRE.to_owned()),
            impus,
            Addresses {
                local: SocketAddr::new(pcscf_addr(), 5060),
                sent_by: SocketAddr::new(pcscf_addr(), 7101),
            },
        );
        World {
            net,
            ues,
            rng,
            now: Duration::ZERO,
            wire: Vec::new(),
            blackhole: false,
            lose_publish: false,
            events: vec![Vec::new(); n],
            sent: vec![Vec::new(); n],
            installs: vec![Vec::new(); n],
            installed: vec![Vec::new(); n],
            clear_while_protected: vec![Vec::new(); n],
        }
    }

    /// Carries out UE `i`'s outputs.
    fn drain_ue(&mut self, i: usize) {
        while let Some(o) = self.ues[i].poll_output() {
            match o {
                Output::Transmit(t) => {
                    let m = Message::parse(&t.bytes).unwrap();
                    let what = match m.method() {
                        Some(method) => method.as_str().to_owned(),
                        None => m.status().unwrap().to_string(),
                    };
                    if t.from_port.is_none() && !self.installed[i].is_empty() {
                        self.clear_while_protected[i].push(what.clone());
                    }
                    self.sent[i].push(what);
                    self.wire.push(Datagram {
                        to_network: true,
                        ue: i,
                        from: SocketAddr::new(ue_addr(i), t.from_port.unwrap_or(5060)),
                        to: t.to,
                        bytes: t.bytes,
                    });
                }
                Output::InstallSas { set, replaces } => {
                    self.installed[i].push(set.clone());
                    self.installs[i].push((set, replaces));
                }
                Output::RemoveSas(set) => self.installed[i].retain(|s| *s != set),
                Output::UpdateSas(_) => {}
                Output::Event(e) => self.events[i].push(e),
            }
        }
    }

    fn drain_net(&mut self) {
        while let Some(o) = self.net.poll_output() {
            if let NetOutput::Transmit(t) = o {
                let ue = (0..self.ues.len())
                    .find(|i| ue_addr(*i) == t.to.ip())
                    .unwrap();
                self.wire.push(Datagram {
                    to_network: false,
                    ue,
                    from: SocketAddr::new(pcscf_addr(), t.from_port.unwrap_or(7100)),
                    to: t.to,
                    bytes: t.bytes,
                });
            }
        }
    }

    fn deliver(&mut self, d: Datagram) {
        let mut m = Message::parse(&d.bytes).unwrap().into_owned();
        let (now, rng) = (self.now, &mut self.rng);
        if d.to_network {
            let flow = match d.from.port() {
                5060 => Flow::Unprotected,
                ue_port => Flow::Protected {
                    ue_port,
                    pcscf_port: d.to.port(),
                },
            };
            if m.is_request() {
                gm::txn::stamp_via(&mut m, d.from).unwrap();
                let arrived = (
                    flow,
                    flow.local_port(gm::reg::Side::Network),
                    Reliability::Unreliable,
                );
                self.net.on_request(&m, d.from, arrived, now, rng, &mut Udp);
            } else {
                self.net.on_response(&m, now, &mut Udp);
            }
            self.drain_net();
        } else {
            let flow = match d.to.port() {
                5060 => Flow::Unprotected,
                ue_port => Flow::Protected {
                    ue_port,
                    pcscf_port: d.from.port(),
                },
            };
            let ua = &mut self.ues[d.ue];
            if m.is_request() {
                gm::txn::stamp_via(&mut m, d.from).unwrap();
                let arrived = (
                    flow,
                    flow.local_port(gm::reg::Side::Ue),
                    Reliability::Unreliable,
                );
                ua.on_request(&m, d.from, arrived, now, rng);
            } else {
                ua.on_response(&m, flow, now, rng);
            }
            self.drain_ue(d.ue);
        }
    }

    /// Runs until `done` or an hour passed: datagrams at once, timers
    /// when nothing is on the wire.
    fn run_until(&mut self, done: impl Fn(&World) -> bool) {
        let limit = self.now + Duration::from_secs(3600);
        for i in 0..self.ues.len() {
            self.drain_ue(i);
        }
        while !done(self) && self.now < limit {
            if !self.wire.is_empty() {
                let d = self.wire.remove(0);
                let lost = self.blackhole || (self.lose_publish && d.bytes.starts_with(b"PUBLISH"));
                if !lost {
                    self.deliver(d);
                }
                continue;
            }
            let next = self
                .ues
                .iter()
                .map(Ua::poll_timeout)
                .chain([self.net.poll_timeout()])
                .flatten()
                .min();
            let Some(next) = next else { break };
            self.now = self.now.max(next);
            let now = self.now;
            for i in 0..self.ues.len() {
                if self.ues[i].refresh_due(now) {
                    // As imsua does: the client port the set in use does
                    // not have, fresh SPIs.
                    let base = 6100 + 100 * i as u16;
                    let port = self.ues[i].next_port_c([base, base + 2]).unwrap();
                    let spis = self.ues[i].fresh_next_spis(&mut self.rng).unwrap();
                    self.ues[i].offer_next(spis, port).unwrap();
                }
                if self.ues[i].poll_timeout().is_some_and(|t| t <= now) {
                    self.ues[i].handle_timeout(now, &mut self.rng);
                    self.drain_ue(i);
                }
            }
            if self.net.poll_timeout().is_some_and(|t| t <= now) {
                self.net.handle_timeout(now, &mut self.rng, &mut Udp);
                self.drain_net();
            }
        }
    }

    fn registered(&self, i: usize) -> usize {
        self.events[i]
            .iter()
            .filter(|e| matches!(e, Event::Registered(_)))
            .count()
    }

    /// UE 0 publishes (with `note`) and subscribes to its own presence;
    /// runs until both are accepted.
    fn publish_and_subscribe(&mut self, note: Option<&str>) {
        let (now, rng) = (self.now, &mut self.rng);
        self.ues[0].publish(Basic::Open, note, now, rng).unwrap();
        self.ues[0].subscribe(&impu(0), now, rng).unwrap();
        self.run_until(|w| {
            w.events[0]
                .iter()
                .any(|e| matches!(e, Event::Published(Published::Accepted { .. })))
                && w.events[0]
                    .iter()
                    .any(|e| matches!(e, Event::Subscribed(_)))
        });
    }

    /// Registers every UE.
    fn register_all(&mut self) {
        for i in 0..self.ues.len() {
            self.ues[i].register(self.now, &mut self.rng);
        }
        self.run_until(|w| (0..w.ues.len()).all(|i| w.registered(i) == 1));
        for i in 0..self.ues.len() {
            assert_eq!(self.registered(i), 1, "ue{i}: {:?}", self.events[i]);
        }
    }
}

/// Before its registration a UE sends nothing of its own: every command
/// is refused, nothing is queued.
#[test]
fn commands_wait_for_the_registration() {
    let mut w = World::new(1, |_, _| {});
    let (now, rng) = (w.now, &mut w.rng);
    let ua = &mut w.ues[0];
    assert_eq!(
        ua.message(&impu(1), "hi", now, rng),
        Err(Error::NotRegistered)
    );
    assert_eq!(
        ua.sms(&number(1), "hi", now, rng),
        Err(Error::NotRegistered)
    );
    assert_eq!(
        ua.publish(Basic::Open, None, now, rng),
        Err(Error::NotRegistered)
    );
    assert_eq!(ua.subscribe(&impu(1), now, rng), Err(Error::NotRegistered));
    assert!(ua.poll_output().is_none());
}

/// A two-part SMS: the second MESSAGE leaves only once the first had its
/// 202, and both parts are acknowledged (RP-ACK) and delivered.
#[test]
fn sms_parts_leave_one_at_a_time() {
    let mut w = World::new(2, |_, _| {});
    w.register_all();
    let text = "Привет! Это длинное сообщение, в двух частях. ".repeat(2);
    let (now, rng) = (w.now, &mut w.rng);
    let mrs = w.ues[0].sms(&number(1), &text, now, rng).unwrap();
    assert_eq!(mrs.len(), 2);
    let before = w.sent[0].len();
    w.drain_ue(0);
    assert_eq!(w.sent[0][before..], ["MESSAGE"], "one part at first");
    let acked = |w: &World| {
        w.events[0]
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Sms {
                        event: UeEvent::Submitted { .. },
                        ..
                    }
                )
            })
            .count()
    };
    let received = |w: &World| {
        w.events[1].iter().any(|e| {
            matches!(e, Event::Sms { event: UeEvent::Received { text: t, .. }, .. } if *t == text)
        })
    };
    w.run_until(|w| acked(w) == 2 && received(w));
    assert_eq!(acked(&w), 2, "{:?}", w.events[0]);
    assert!(received(&w), "{:?}", w.events[1]);
    // The sender's own MESSAGEs (RP-DATA, then its answers to the
    // centre's RP-ACKs): the second part after the first's 202.
    let own: Vec<&str> = w.sent[0][before..]
        .iter()
        .map(String::as_str)
        .filter(|s| *s == "MESSAGE")
        .collect();
    assert_eq!(own, ["MESSAGE", "MESSAGE"]);
}

/// A service centre URI the network does not know: the first part's
/// MESSAGE is refused, the second never leaves, and the event says so.
#[test]
fn a_refused_sms_part_stops_the_rest() {
    let mut w = World::new(1, |_, s| {
        s.sms_centre = "sip:+19990000000@ims.example.org".into()
    });
    w.register_all();
    let text = "x".repeat(200);
    let (now, rng) = (w.now, &mut w.rng);
    let mrs = w.ues[0].sms(&number(1), &text, now, rng).unwrap();
    assert_eq!(mrs.len(), 2);
    let before = w.sent[0].len();
    w.run_until(|w| {
        w.events[0]
            .iter()
            .any(|e| matches!(e, Event::SmsNotSent { .. }))
    });
    let not_sent: Vec<&Event> = w.events[0]
        .iter()
        .filter(|e| matches!(e, Event::SmsNotSent { .. }))
        .collect();
    let [
        Event::SmsNotSent {
            rp_mr,
            status: Some(status),
            unsent,
        },
    ] = not_sent[..]
    else {
        panic!("{:?}", w.events[0]);
    };
    assert_eq!((*rp_mr, unsent.as_slice()), (mrs[0], &mrs[1..]));
    assert!(*status >= 400, "{status}");
    assert_eq!(
        w.sent[0][before..]
            .iter()
            .filter(|s| *s == "MESSAGE")
            .count(),
        1
    );
    // Given up at once: TR1M reports nothing about those parts later.
    let at = w.now;
    w.run_until(|w| w.now > at + gm::sms::service::TR1M);
    assert!(
        !w.events[0].iter().any(|e| matches!(e, Event::Sms { .. })),
        "{:?}",
        w.events[0]
    );
}

/// A MESSAGE the network never answers ends with Timer F (64·T1).
#[test]
fn an_unanswered_message_ends_at_timer_f() {
    let mut w = World::new(1, |_, _| {});
    w.register_all();
    w.blackhole = true;
    let (now, rng) = (w.now, &mut w.rng);
    let sent_at = now;
    let id = w.ues[0].message(&impu(0), "anyone?", now, rng).unwrap();
    w.run_until(|w| {
        w.events[0]
            .iter()
            .any(|e| matches!(e, Event::MessageUnanswered { .. }))
    });
    assert!(
        w.events[0].contains(&Event::MessageUnanswered { txn: id }),
        "{:?}",
        w.events[0]
    );
    assert_eq!(w.now - sent_at, Timers::default().timeout());
}

/// Re-registrations onto fresh SAs: each new set names the one it
/// replaces (its SigComp compartment goes over), the first names none.
#[test]
fn a_handover_names_the_set_it_replaces() {
    let mut w = World::new(1, |_, _| {});
    w.register_all();
    w.run_until(|w| w.registered(0) == 3);
    assert_eq!(w.registered(0), 3, "{:?}", w.events[0]);
    let installs = &w.installs[0];
    // The challenge's set (made final by the 200), then one per
    // re-registration.
    assert_eq!(installs.len(), 3, "{installs:?}");
    assert_eq!(installs[0].1, None);
    for k in 1..3 {
        let replaced = installs[k].1.as_ref().expect("a handover names its set");
        assert_eq!(replaced.sas(), installs[k - 1].0.sas(), "handover {k}");
        // The next set takes the other client port, and SPIs of its own.
        let (new, old) = (installs[k].0.ue_offer(), replaced.ue_offer());
        assert_ne!(new.port_c, old.port_c, "handover {k}");
        assert!([6100, 6102].contains(&new.port_c), "handover {k}");
        assert!(![old.spi_c, old.spi_s].contains(&new.spi_c), "handover {k}");
        assert!(![old.spi_c, old.spi_s].contains(&new.spi_s), "handover {k}");
    }
    assert_eq!(w.ues[0].ue().sas().unwrap().sas(), installs[2].0.sas());
}

/// The de-registration removes the publication and ends the presence
/// subscription first, while the registration stands, then sends the
/// REGISTER with `Expires: 0`.
#[test]
fn deregistration_ends_presence_first() {
    let mut w = World::new(1, |_, _| {});
    w.register_all();
    w.publish_and_subscribe(Some("here"));
    let before = w.sent[0].len();
    let (now, rng) = (w.now, &mut w.rng);
    w.ues[0].deregister(now, rng);
    w.run_until(|w| w.events[0].contains(&Event::Deregistered));
    let ends: Vec<&Event> = w.events[0]
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Published(Published::Removed) | Event::Unsubscribed | Event::Deregistered
            )
        })
        .collect();
    assert_eq!(
        ends,
        [
            &Event::Published(Published::Removed),
            &Event::Unsubscribed,
            &Event::Deregistered
        ],
        "{:?}",
        w.events[0]
    );
    // Our requests: the PUBLISH and the SUBSCRIBE before any REGISTER
    // (the reg event's SUBSCRIBE and the REGISTER come last).
    let own: Vec<&str> = w.sent[0][before..]
        .iter()
        .map(String::as_str)
        .filter(|s| s.chars().all(|c| c.is_ascii_uppercase()))
        .collect();
    let register = own.iter().position(|s| *s == "REGISTER").unwrap();
    let publish = own.iter().position(|s| *s == "PUBLISH").unwrap();
    assert!(publish < register, "{own:?}");
    assert!(!w.ues[0].leaving());
    assert!(w.net.agent().is_empty());
}

/// A registration lost (its re-registration unanswered: the SAs go) takes
/// the presence publication and subscriptions with it: the UE sends no
/// refresh of them afterwards, neither over SAs it no longer has nor in
/// clear, and its timers do not keep it due.
#[test]
fn a_lost_registration_ends_presence_without_a_word() {
    let mut w = World::new(1, |_, _| {});
    w.register_all();
    w.publish_and_subscribe(None);
    w.blackhole = true;
    let lost = |w: &World| {
        w.events[0]
            .iter()
            .any(|e| matches!(e, Event::RegistrationFailed { .. }))
    };
    w.run_until(lost);
    assert!(lost(&w), "{:?}", w.events[0]);
    assert!(w.ues[0].ue().registration().is_none());
    let before = w.sent[0].len();
    // Past the presence refreshes (a publication and a subscription of
    // 3600 s).
    let until = w.now + Duration::from_secs(7200);
    w.run_until(|w| w.now >= until);
    let after: Vec<&String> = w.sent[0][before..]
        .iter()
        .filter(|s| *s == "PUBLISH" || *s == "SUBSCRIBE")
        .collect();
    assert!(
        after.is_empty(),
        "sent after the registration was lost: {after:?}"
    );
    assert!(w.clear_while_protected[0].is_empty());
    assert!(w.ues[0].poll_timeout().is_none_or(|t| t > w.now));
}

/// A publication whose refreshes go unanswered, the registration
/// standing, is refreshed until it expires and then no more
/// (`Event::PublicationLapsed`): its entity-tag died with it at the ESC.
#[test]
fn an_unanswered_publication_lapses_at_its_expiry() {
    let mut w = World::new(1, |_, _| {});
    w.register_all();
    let (now, rng) = (w.now, &mut w.rng);
    w.ues[0].publish(Basic::Open, None, now, rng).unwrap();
    let accepted = |w: &World| {
        w.events[0].iter().find_map(|e| match e {
            Event::Published(Published::Accepted { until }) => Some(*until),
            _ => None,
        })
    };
    w.run_until(|w| accepted(w).is_some());
    let until = accepted(&w).unwrap();
    w.lose_publish = true;
    let lapsed = |w: &World| w.events[0].contains(&Event::PublicationLapsed);
    while !lapsed(&w) && w.now < until + Duration::from_secs(60) {
        w.run_until(lapsed);
    }
    assert!(lapsed(&w), "{:?}", w.events[0]);
    assert!(w.now >= until && w.now < until + Duration::from_secs(60));
    let sent = |w: &World| w.sent[0].iter().filter(|s| *s == "PUBLISH").count();
    let publishes = sent(&w);
    // An hour more: re-registrations, and no PUBLISH.
    let later = w.now + Duration::from_secs(3600);
    w.run_until(|w| w.now >= later);
    assert_eq!(sent(&w), publishes);
    assert!(
        w.registered(0) > 1,
        "the registration went on: {:?}",
        w.events[0]
    );
    assert!(w.ues[0].ue().registration().is_some());
}

/// A de-registration asked while a re-registration is out waits for it
/// (the REGISTER with `Expires: 0` must go over the SAs the registration
/// ends on), then ends the registration at the network too.
#[test]
fn a_deregistration_during_a_reregistration_waits_for_it() {
    let mut w = World::new(1, |_, _| {});
    w.register_all();
    let before = w.sent[0].len();
    // The re-registration leaves; nothing is delivered yet.
    w.run_until(|w| w.sent[0][before..].iter().any(|s| s == "REGISTER"));
    assert!(w.ues[0].registering());
    let (now, rng) = (w.now, &mut w.rng);
    w.ues[0].deregister(now, rng);
    assert!(
        !w.events[0].contains(&Event::Deregistered),
        "{:?}",
        w.events[0]
    );
    w.run_until(|w| w.events[0].contains(&Event::Deregistered));
    let tail: Vec<&Event> = w.events[0]
        .iter()
        .filter(|e| matches!(e, Event::Registered(_) | Event::Deregistered))
        .collect();
    assert!(
        matches!(tail[..], [.., Event::Registered(_), Event::Deregistered]),
        "{:?}",
        w.events[0]
    );
    assert_eq!(w.registered(0), 2);
    assert!(w.net.network().binding("ue0@ims.example.org").is_none());
    assert!(!w.ues[0].leaving());
}

/// Once the SAs are in place, a request that did not come over them (from
/// the P-CSCF's port-c to our port-s) is dropped unanswered, and so is a
/// response that did not come over the flow of our requests: a datagram
/// in clear can come from anyone. The same messages over the SAs are
/// read.
#[test]
fn messages_not_over_the_sas_are_dropped_once_they_exist() {
    let mut w = World::new(1, |_, _| {});
    w.register_all();
    // The reg event's SUBSCRIBE and NOTIFY settle first.
    w.run_until(|w| w.wire.is_empty());
    let set = w.ues[0].ue().sas().unwrap().clone();
    let (o, p) = (set.ue_offer(), set.pcscf_offer());
    let page = |branch: &str| {
        Message::request(gm::sip::Method::Message, &impu(0))
            .header(
                "Via",
                format!(
                    "SIP/2.0/UDP {}:{};branch=z9hG4bK{branch}",
                    pcscf_addr(),
                    p.port_c
                ),
            )
            .header("From", "<sip:mallory@ims.example.org>;tag=m")
            .header("To", format!("<{}>", impu(0)))
            .header("Call-ID", format!("c-{branch}"))
            .header("CSeq", "1 MESSAGE")
            .header("Max-Forwards", 70)
            .body("text/plain", b"trust me".to_vec())
            .build()
            .unwrap()
    };
    let received = |w: &World| {
        w.events[0]
            .iter()
            .filter(|e| matches!(e, Event::MessageReceived(_)))
            .count()
    };
    let dropped = |w: &World| {
        w.events[0]
            .iter()
            .filter(|e| matches!(e, Event::NotOverSas { .. }))
            .count()
    };
    // In clear, from the P-CSCF's address to our plain port.
    let sent = w.sent[0].len();
    w.wire.push(Datagram {
        to_network: false,
        ue: 0,
        from: SocketAddr::new(pcscf_addr(), 5060),
        to: SocketAddr::new(ue_addr(0), 5060),
        bytes: page("clear").to_bytes(),
    });
    w.run_until(|w| w.wire.is_empty());
    assert_eq!((received(&w), dropped(&w)), (0, 1), "{:?}", w.events[0]);
    assert_eq!(w.sent[0].len(), sent, "answered: {:?}", &w.sent[0][sent..]);
    // Over the SAs: read and answered.
    w.wire.push(Datagram {
        to_network: false,
        ue: 0,
        from: SocketAddr::new(pcscf_addr(), p.port_c),
        to: SocketAddr::new(ue_addr(0), o.port_s),
        bytes: page("sas").to_bytes(),
    });
    w.run_until(|w| w.wire.is_empty());
    assert_eq!((received(&w), dropped(&w)), (1, 1));
    assert_eq!(w.sent[0][sent..], ["200"]);
    // A response to our MESSAGE: in clear it is dropped (the transaction
    // still waits), over the SAs it is the answer.
    w.blackhole = true;
    let (now, rng) = (w.now, &mut w.rng);
    let id = w.ues[0].message(&impu(0), "hello?", now, rng).unwrap();
    w.drain_ue(0);
    let request = Message::parse(&w.wire.last().unwrap().bytes)
        .unwrap()
        .into_owned();
    w.wire.clear();
    w.blackhole = false;
    let ok = gm::sip::Builder::response_to(&request, 200, None)
        .to_tag("x")
        .build()
        .unwrap()
        .to_bytes();
    for (from_port, to_port) in [(5060, 5060), (p.port_s, o.port_c)] {
        w.wire.push(Datagram {
            to_network: false,
            ue: 0,
            from: SocketAddr::new(pcscf_addr(), from_port),
            to: SocketAddr::new(ue_addr(0), to_port),
            bytes: ok.clone(),
        });
        w.run_until(|w| w.wire.is_empty());
    }
    let answers: Vec<&Event> = w.events[0]
        .iter()
        .filter(|e| matches!(e, Event::MessageAnswered { .. }))
        .collect();
    assert!(
        matches!(answers[..], [Event::MessageAnswered { txn, status: 200, .. }] if *txn == id),
        "{:?}",
        w.events[0]
    );
    assert_eq!(dropped(&w), 2);
}

/// One hostile datagram to the UE: a request built from fragments of the
/// real syntax (methods, event packages, states, bodies of every type the
/// UE reads, some mangled), or a response with any status to one of its
/// requests; from the P-CSCF in clear, over the SAs the right way, or on
/// the wrong pair of ports; then some time passes.
#[derive(Clone, Debug)]
enum Hostile {
    Request {
        method: &'static str,
        event: Option<String>,
        state: Option<String>,
        content_type: Option<String>,
        body: Vec<u8>,
        /// The reg event's Call-ID (a NOTIFY in its dialog) or another.
        in_dialog: bool,
        flow: u8,
        wait_ms: u32,
    },
    Response {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        flow: u8,
        wait_ms: u32,
    },
}

fn hostile() -> impl Strategy<Value = Hostile> {
    let method = prop_oneof![
        Just("NOTIFY"),
        Just("MESSAGE"),
        Just("SUBSCRIBE"),
        Just("INVITE"),
        Just("OPTIONS"),
        Just("PUBLISH"),
        Just("BYE"),
    ];
    let event = prop::option::of(prop_oneof![
        Just("reg".to_owned()),
        Just("presence".to_owned()),
        "[ -~]{0,20}",
    ]);
    let state = prop::option::of(prop_oneof![
        "active;expires=[0-9]{1,6}",
        "terminated(;reason=(deactivated|rejected|probation|timeout|noresource|x))?(;retry-after=[0-9]{1,4})?",
        "pending",
        "[ -~]{0,20}",
    ]);
    let content_type = prop::option::of(prop_oneof![
        Just("application/pidf+xml".to_owned()),
        Just("application/reginfo+xml".to_owned()),
        Just("application/vnd.3gpp.sms".to_owned()),
        Just("text/plain".to_owned()),
        "[ -~]{0,20}",
    ]);
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        "<\\?xml version=\"1.0\"\\?><(presence|reginfo) xmlns=\"urn:ietf:params:xml:ns:(pidf|reginfo)\" (entity|version)=\"[ -~]{0,12}\"( state=\"(full|partial)\")?><(tuple|registration) id=\"a\"( aor=\"sip:ue0@ims.example.org\" state=\"(active|terminated)\")?><(status|contact)( id=\"c\" state=\"(active|terminated)\" event=\"(deactivated|rejected|shortened|expired)\")?><basic>(open|closed)</basic></(status|contact)></(tuple|registration)></(presence|reginfo)>"
            .prop_map(String::into_bytes),
        // RP messages: RP-DATA, RP-ACK, RP-ERROR, RP-SMMA headers, then
        // anything.
        (0u8..8, any::<u8>(), prop::collection::vec(any::<u8>(), 0..60))
            .prop_map(|(t, mr, rest)| [vec![t, mr], rest].concat()),
    ];
    let header = prop_oneof![
        "[0-9]{1,10}".prop_map(|v| ("Expires", v)),
        "[0-9]{1,10}".prop_map(|v| ("Min-Expires", v)),
        "[ -~]{1,20}".prop_map(|v| ("SIP-ETag", v)),
        "<sip:[a-z]{1,5}@192\\.0\\.2\\.1:7101>".prop_map(|v| ("Contact", v)),
        "[ -~]{0,30}".prop_map(|v| ("Subscription-State", v)),
    ];
    prop_oneof![
        (
            method,
            event,
            state,
            content_type.clone(),
            body.clone(),
            any::<bool>(),
            0u8..3,
            0u32..40_000
        )
            .prop_map(
                |(method, event, state, content_type, body, in_dialog, flow, wait_ms)| {
                    Hostile::Request {
                        method,
                        event,
                        state,
                        content_type,
                        body,
                        in_dialog,
                        flow,
                        wait_ms,
                    }
                }
            ),
        (
            100u16..700,
            prop::collection::vec(header, 0..3),
            body,
            0u8..3,
            0u32..40_000
        )
            .prop_map(|(status, headers, body, flow, wait_ms)| Hostile::Response {
                status,
                headers,
                body,
                flow,
                wait_ms,
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The UE role never panics on hostile datagrams at any point of its
    /// life (registered, with a MESSAGE, an SMS, a PUBLISH and a SUBSCRIBE
    /// of its own in flight), and never sends a message in clear while an
    /// SA set is installed: everything it says while protected leaves over
    /// the SAs.
    #[test]
    fn the_ue_role_never_panics_and_never_speaks_in_clear_while_protected(
        hostiles in prop::collection::vec(hostile(), 1..12)
    ) {
        let mut w = World::new(1, |_, _| {});
        w.register_all();
        w.run_until(|w| w.wire.is_empty());
        let call_id = w.ues[0].ue().call_id().to_owned();
        // Requests of its own, unanswered: the hostile responses answer
        // them.
        w.blackhole = true;
        let (now, rng) = (w.now, &mut w.rng);
        let ua = &mut w.ues[0];
        ua.message(&impu(0), "hi", now, rng).unwrap();
        ua.sms(&number(0), "hi", now, rng).unwrap();
        ua.publish(Basic::Open, None, now, rng).unwrap();
        ua.subscribe(&impu(0), now, rng).unwrap();
        w.drain_ue(0);
        let ours: Vec<Message<'static>> = w
            .wire
            .drain(..)
            .map(|d| Message::parse(&d.bytes).unwrap().into_owned())
            .collect();
        w.blackhole = false;
        for (k, h) in hostiles.into_iter().enumerate() {
            let Some(set) = w.ues[0].ue().sas().cloned() else { break };
            let (o, p) = (set.ue_offer(), set.pcscf_offer());
            let ports = |flow: u8, request: bool| match (flow, request) {
                (0, _) => (5060, 5060),
                (1, true) => (p.port_c, o.port_s),
                (1, false) => (p.port_s, o.port_c),
                (_, true) => (p.port_s, o.port_c),
                (_, false) => (p.port_c, o.port_s),
            };
            let (bytes, (from_port, to_port), wait_ms) = match h {
                Hostile::Request { method, event, state, content_type, body, in_dialog, flow, wait_ms } => {
                    let mut b = Message::request(
                        gm::sip::Method::from_token(method),
                        &impu(0),
                    )
                    .header(
                        "Via",
                        format!("SIP/2.0/UDP {}:{};branch=z9hG4bKh{k}", pcscf_addr(), p.port_c),
                    )
                    .header("From", "<sip:ue0@ims.example.org>;tag=n")
                    .header("To", format!("<{}>;tag=t", impu(0)))
                    .header("Call-ID", if in_dialog { call_id.clone() } else { format!("h{k}") })
                    .header("CSeq", format!("{} {method}", 100 + k))
                    .header("Max-Forwards", 70);
                    if let Some(e) = event {
                        b = b.header("Event", e);
                    }
                    if let Some(s) = state {
                        b = b.header("Subscription-State", s);
                    }
                    let b = match content_type {
                        Some(t) => b.body(&t, body),
                        None => b,
                    };
                    let Ok(m) = b.build() else { continue };
                    (m.to_bytes(), ports(flow, true), wait_ms)
                }
                Hostile::Response { status, headers, body, flow, wait_ms } => {
                    let Some(request) = ours.get(k % ours.len()) else { continue };
                    let mut b = gm::sip::Builder::response_to(request, status, None).to_tag("r");
                    for (n, v) in headers {
                        b = b.header(n, v);
                    }
                    let b = if body.is_empty() { b } else { b.body("application/pidf+xml", body) };
                    let Ok(m) = b.build() else { continue };
                    (m.to_bytes(), ports(flow, false), wait_ms)
                }
            };
            w.wire.push(Datagram {
                to_network: false,
                ue: 0,
                from: SocketAddr::new(pcscf_addr(), from_port),
                to: SocketAddr::new(ue_addr(0), to_port),
                bytes,
            });
            // Delivered, then time passes (the UE's timers fire; what it
            // sends reaches the network, whose answers come back).
            w.run_until(|w| w.wire.is_empty());
            let until = w.now + Duration::from_millis(u64::from(wait_ms));
            w.run_until(|w| w.now >= until);
        }
        prop_assert!(
            w.clear_while_protected[0].is_empty(),
            "sent in clear while protected: {:?}",
            w.clear_while_protected[0]
        );
    }
}

/// A MESSAGE the transport cannot send (its SAs are gone): the caller
/// reports it to the transactions, the role is due at once and says the
/// MESSAGE got no answer, without waiting for any timer.
#[test]
fn a_message_that_cannot_be_sent_ends_at_once() {
    let mut w = World::new(1, |_, _| {});
    w.register_all();
    w.run_until(|w| w.wire.is_empty());
    let (now, rng) = (w.now, &mut w.rng);
    let id = w.ues[0].message(&impu(0), "lost", now, rng).unwrap();
    w.ues[0].transactions().transport_error(id);
    assert_eq!(w.ues[0].poll_timeout(), Some(Duration::ZERO));
    let now = w.now;
    w.ues[0].handle_timeout(now, &mut w.rng);
    w.drain_ue(0);
    assert!(
        w.events[0].contains(&Event::MessageUnanswered { txn: id }),
        "{:?}",
        w.events[0]
    );
}
