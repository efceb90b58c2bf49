//! Registration through the transaction layer on a simulated lossy UDP
//! channel: our UE and our network each run [`gm::txn::Transactions`]
//! (keyed by the [`Flow`] a message travels on), and the channel loses
//! the first copy of every message. Timer E retransmits each REGISTER,
//! the network's server transactions absorb the copies and send their
//! last response again, and the registration completes with mirrored SAs
//! on both sides. Without any answer, Timer F ends the registration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Rng;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use gm::reg::{
    Credentials, Error, Flow, Network, NetworkAction, NetworkConfig, OpKey, SaSet, Ue, UeAction,
    UeConfig,
};
use gm::sip::Message;
use gm::txn::{Event, Reliability, RequestVerdict, ResponseVerdict, Timers, Transactions};

const K: [u8; 16] = [0x11; 16];
const OPC: [u8; 16] = [0x22; 16];
const IMPI: &str = "bob@ims.example.org";
/// One-way delay of the channel.
const DELAY: Duration = Duration::from_millis(20);

fn ue_addr() -> IpAddr {
    "2001:db8::2".parse().unwrap()
}

struct Packet {
    at: Duration,
    to_network: bool,
    flow: Flow,
    bytes: Vec<u8>,
}

struct Sim {
    ue: Ue,
    net: Network,
    ue_txn: Transactions<Flow>,
    net_txn: Transactions<Flow>,
    rng: Rng,
    now: Duration,
    wire: Vec<Packet>,
    seen: HashSet<Vec<u8>>,
    lost: usize,
    ue_sas: Vec<SaSet>,
    net_sas: Vec<SaSet>,
    outcome: Option<UeAction>,
    network_answers: bool,
}

impl Sim {
    fn new(network_answers: bool) -> Sim {
        let mut rng = Rng(77);
        let config = UeConfig::new(
            IMPI,
            "sip:bob@ims.example.org",
            "ims.example.org",
            ue_addr(),
            "2001:db8::1".parse().unwrap(),
            (0x1000, 0x1001),
            (6100, 6101),
        );
        let ue = Ue::new(
            config,
            Credentials::Aka {
                k: K,
                op: OpKey::Opc(OPC),
                sqn_ms: 0,
            },
            &mut rng,
        );
        let mut net = Network::new(NetworkConfig::new(
            "ims.example.org",
            "2001:db8::1".parse().unwrap(),
            7100,
            7101,
        ));
        net.add_subscriber(IMPI, common::subscriber(K, OPC));
        Sim {
            ue,
            net,
            ue_txn: Transactions::new(Timers::default()),
            net_txn: Transactions::new(Timers::default()),
            rng,
            now: Duration::ZERO,
            wire: Vec::new(),
            seen: HashSet::new(),
            lost: 0,
            ue_sas: Vec::new(),
            net_sas: Vec::new(),
            outcome: None,
            network_answers,
        }
    }

    fn ue_actions(&mut self, actions: Vec<UeAction>) {
        for a in actions {
            match a {
                UeAction::Send { request, flow } => {
                    self.ue_txn
                        .start_client(&request, flow, Reliability::Unreliable, self.now)
                        .unwrap();
                }
                UeAction::InstallSas(s) => self.ue_sas.push(s),
                UeAction::UpdateSas(s) => {
                    self.ue_sas.retain(|x| x.sas() != s.sas());
                    self.ue_sas.push(s);
                }
                UeAction::RemoveSas(s) => self.ue_sas.retain(|x| *x != s),
                other => self.outcome = Some(other),
            }
        }
    }

    /// Moves what both layers want to send onto the wire, losing the
    /// first copy of each message.
    fn transmit(&mut self) {
        let mut out = Vec::new();
        while let Some(t) = self.ue_txn.poll_transmit() {
            out.push((true, t.to, t.bytes));
        }
        while let Some(t) = self.net_txn.poll_transmit() {
            out.push((false, t.to, t.bytes));
        }
        for (to_network, flow, bytes) in out {
            if self.seen.insert(bytes.clone()) {
                self.lost += 1;
                continue;
            }
            self.wire.push(Packet {
                at: self.now + DELAY,
                to_network,
                flow,
                bytes,
            });
        }
    }

    fn deliver(&mut self, p: Packet) {
        let m = Message::parse(&p.bytes).unwrap();
        if p.to_network {
            if !self.network_answers {
                return;
            }
            let v = self
                .net_txn
                .on_request(&m, p.flow, Reliability::Unreliable, self.now)
                .unwrap();
            if let RequestVerdict::New(id) = v {
                for a in self
                    .net
                    .on_register(&m, ue_addr(), p.flow, self.now, &mut self.rng)
                {
                    match a {
                        NetworkAction::Respond(r) => {
                            self.net_txn.respond(id, &r, self.now).unwrap();
                        }
                        NetworkAction::InstallSas(s) => self.net_sas.push(s),
                        NetworkAction::UpdateSas(s) => {
                            self.net_sas.retain(|x| x.sas() != s.sas());
                            self.net_sas.push(s);
                        }
                        NetworkAction::RemoveSas(s) => self.net_sas.retain(|x| *x != s),
                        _ => {}
                    }
                }
            }
        } else if let ResponseVerdict::ToTu(_) = self.ue_txn.on_response(&m, self.now) {
            let acts = self.ue.on_response(&m, p.flow, self.now, &mut self.rng);
            self.ue_actions(acts);
        }
    }

    fn run(&mut self) {
        let first = self.ue.register(&mut self.rng);
        self.ue_actions(first);
        while self.outcome.is_none() && self.now < Duration::from_secs(120) {
            self.transmit();
            let next = self
                .wire
                .iter()
                .map(|p| p.at)
                .chain(self.ue_txn.poll_timeout())
                .chain(self.net_txn.poll_timeout())
                .min()
                .unwrap();
            self.now = self.now.max(next);
            let (due, rest): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|p| p.at <= self.now);
            self.wire = rest;
            for p in due {
                self.deliver(p);
            }
            self.ue_txn.handle_timeout(self.now);
            self.net_txn.handle_timeout(self.now);
            while let Some(e) = self.ue_txn.poll_event() {
                if let Event::Timeout(_) = e {
                    let acts = self.ue.on_timeout(&mut self.rng);
                    self.ue_actions(acts);
                }
            }
            while self.net_txn.poll_event().is_some() {}
        }
    }
}

#[test]
fn registration_survives_losing_every_first_copy() {
    let mut sim = Sim::new(true);
    sim.run();
    assert!(
        matches!(sim.outcome, Some(UeAction::Registered(_))),
        "{:?}",
        sim.outcome
    );
    // REGISTER, 401, protected REGISTER, 200: each lost once.
    assert_eq!(sim.lost, 4);
    assert_eq!(sim.ue_sas.len(), 1);
    assert_eq!(sim.net_sas.len(), 1);
    assert_eq!(sim.ue_sas[0].mirror(), sim.net_sas[0]);
    // Two round trips and a retransmission each (T1 = 500 ms).
    assert!(sim.now >= Duration::from_millis(1000), "{:?}", sim.now);
}

#[test]
fn timer_f_ends_an_unanswered_registration() {
    let mut sim = Sim::new(false);
    sim.run();
    assert!(
        matches!(sim.outcome, Some(UeAction::Failed(Error::Timeout))),
        "{:?}",
        sim.outcome
    );
    assert_eq!(sim.now, Duration::from_secs(32));
}
