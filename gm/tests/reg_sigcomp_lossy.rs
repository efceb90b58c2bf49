//! Registration with its reg event subscription (RFC 3680: SUBSCRIBE,
//! NOTIFYs), two re-registrations with SA handover and the
//! de-registration, with SigComp on both sides (`gm::comp::Compression`),
//! through the transaction layer, over a UDP channel that loses 10 % of
//! the datagrams (a seeded choice, many seeds). Each side keeps its own
//! SAs as a real IPsec layer would: a message leaves over the SAs only if
//! its sender has a set for its ports, and is read only if its receiver
//! has one (else it is dropped, as ESP without an SA would be). Timer E
//! retransmissions, compressed again each time, recover every loss; the
//! compartment opens with the SAs and is carried over each handover; no
//! SigComp message fails to decompress (the compressor references only
//! states the peer acknowledged, so a loss can cost compression, never a
//! message); and the compression pays: the protected messages take far
//! fewer bytes than their SIP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Rng;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use gm::comp::{Compression, Inbound};
use gm::reg::{
    Credentials, Flow, Network, NetworkAction, NetworkConfig, OpKey, Random, SaSet, Subscriber, Ue,
    UeAction, UeConfig,
};
use gm::sip::{Message, Method};
use gm::txn::{Event, Reliability, RequestVerdict, ResponseVerdict, Timers, Transactions, TxnId};
use sigcomp::{EndpointConfig, Link};

const K: [u8; 16] = [0x11; 16];
const OPC: [u8; 16] = [0x22; 16];
const IMPI: &str = "bob@ims.example.org";
/// One-way delay of the channel.
const DELAY: Duration = Duration::from_millis(20);
/// The UE's protected ports, and the P-CSCF's (with its second client
/// port for handovers).
const UE_PORTS: (u16, u16) = (6100, 6101);
const PCSCF_PORTS: (u16, u16, u16) = (7100, 7101, 7102);
/// The UE's next SA sets: SPIs and port-c.
const NEXT: [((u32, u32), u16); 2] = [((0x2000, 0x2001), 6102), ((0x3000, 0x3001), 6100)];
/// Loss rate, in percent.
const LOSS: usize = 10;
const SEEDS: u64 = 40;

fn ue_addr() -> IpAddr {
    "2001:db8::2".parse().unwrap()
}

fn pcscf_addr() -> IpAddr {
    "2001:db8::1".parse().unwrap()
}

struct Packet {
    at: Duration,
    to_network: bool,
    flow: Flow,
    bytes: Vec<u8>,
}

/// One side: its SAs and its SigComp.
struct Side {
    sas: Vec<SaSet>,
    comp: Compression,
    /// SIP bytes sent over the SAs, and the bytes on the wire for them.
    sip_over_sas: usize,
    wire_over_sas: usize,
    /// Messages sent as SigComp, and received as SigComp (decompressed).
    compressed_sent: usize,
    compressed_received: usize,
    /// SigComp messages that failed to decompress.
    failed: usize,
    /// Messages dropped for want of an SA (sending or receiving).
    no_sa: usize,
}

impl Side {
    fn new() -> Side {
        Side {
            sas: Vec::new(),
            comp: Compression::new(EndpointConfig::default()).unwrap(),
            sip_over_sas: 0,
            wire_over_sas: 0,
            compressed_sent: 0,
            compressed_received: 0,
            failed: 0,
            no_sa: 0,
        }
    }

    /// The set carrying `flow`: the UE's port-c with the P-CSCF's port-s,
    /// or the P-CSCF's port-c with the UE's port-s.
    fn set_for(&self, flow: Flow) -> Option<&SaSet> {
        let Flow::Protected {
            ue_port,
            pcscf_port,
        } = flow
        else {
            return None;
        };
        self.sas.iter().find(|s| {
            let (u, p) = (s.ue_offer(), s.pcscf_offer());
            (u.port_c, p.port_s) == (ue_port, pcscf_port)
                || (u.port_s, p.port_c) == (ue_port, pcscf_port)
        })
    }
}

struct Sim {
    ue: Ue,
    net: Network,
    ue_txn: Transactions<Flow>,
    net_txn: Transactions<Flow>,
    ue_side: Side,
    net_side: Side,
    rng: Rng,
    /// Decides the losses, apart from the randomness `gm` gets.
    loss: Rng,
    now: Duration,
    wire: Vec<Packet>,
    sent: usize,
    lost: usize,
    registered: usize,
    deregistered: bool,
    failed: Option<String>,
    next: usize,
    /// The UE's REGISTER transaction, whose timeout fails the
    /// registration (a SUBSCRIBE's is the subscription's business).
    reg_txn: Option<TxnId>,
    /// The network's NOTIFY transactions, for their timeouts.
    notifies: Vec<(TxnId, Message<'static>)>,
    notified: usize,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(77 + seed);
        let mut config = UeConfig::new(
            IMPI,
            "sip:bob@ims.example.org",
            "ims.example.org",
            ue_addr(),
            pcscf_addr(),
            (0x1000, 0x1001),
            UE_PORTS,
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
        let mut nc = NetworkConfig::new(
            "ims.example.org",
            pcscf_addr(),
            PCSCF_PORTS.0,
            PCSCF_PORTS.1,
        );
        nc.alt_port_c = Some(PCSCF_PORTS.2);
        let mut net = Network::new(nc);
        net.add_subscriber(
            IMPI,
            Subscriber {
                k: K,
                op: OpKey::Opc(OPC),
                amf: [0x80, 0],
                sqn: 32,
                impus: Vec::new(),
            },
        );
        Sim {
            ue,
            net,
            ue_txn: Transactions::new(Timers::default()),
            net_txn: Transactions::new(Timers::default()),
            ue_side: Side::new(),
            net_side: Side::new(),
            rng,
            loss: Rng(0x9e37_79b9_7f4a_7c15 ^ (seed + 1)),
            now: Duration::ZERO,
            wire: Vec::new(),
            sent: 0,
            lost: 0,
            registered: 0,
            deregistered: false,
            failed: None,
            next: 0,
            reg_txn: None,
            notifies: Vec::new(),
            notified: 0,
        }
    }

    fn ue_actions(&mut self, id: Option<TxnId>, actions: Vec<UeAction>) {
        for a in actions {
            match a {
                UeAction::Send { mut request, flow } => {
                    if matches!(flow, Flow::Protected { .. }) {
                        // As imsua does: the top Via and the Contact ask
                        // for SigComp (RFC 5049 §9.1).
                        gm::comp::mark_via(&mut request, "urn:gsma:imei:35390600-123456-0")
                            .unwrap();
                        gm::comp::mark_contact(&mut request, "urn:gsma:imei:35390600-123456-0")
                            .unwrap();
                    }
                    let register = request.method() == Some(Method::Register);
                    let t = self
                        .ue_txn
                        .start_client(&request, flow, Reliability::Unreliable, self.now)
                        .unwrap();
                    if register {
                        self.reg_txn = Some(t);
                    }
                }
                UeAction::Respond { response, .. } => {
                    if let Some(id) = id {
                        self.ue_txn.respond(id, &response, self.now).unwrap();
                    }
                }
                UeAction::InstallSas(s) => {
                    match self.ue.retiring_sas() {
                        Some(old) => self.ue_side.comp.hand_over_sas(old, &s),
                        None => self.ue_side.comp.open_sas(&s),
                    };
                    self.ue_side.sas.push(s);
                }
                UeAction::UpdateSas(s) => {
                    self.ue_side.sas.retain(|x| x.sas() != s.sas());
                    self.ue_side.sas.push(s);
                }
                UeAction::RemoveSas(s) => {
                    // What is queued for the SAs leaves before they go.
                    self.transmit();
                    self.ue_side.comp.close_sas(&s);
                    self.ue_side.sas.retain(|x| *x != s);
                }
                UeAction::Registered(_) => self.registered += 1,
                UeAction::Deregistered => self.deregistered = true,
                other => self.failed = Some(format!("{other:?}")),
            }
        }
    }

    fn net_actions(&mut self, id: Option<TxnId>, actions: Vec<NetworkAction>) {
        for a in actions {
            match a {
                NetworkAction::Respond(r) => {
                    if let Some(id) = id {
                        self.net_txn.respond(id, &r, self.now).unwrap();
                    }
                }
                NetworkAction::Notify { request, flow } => {
                    let t = self
                        .net_txn
                        .start_client(&request, flow, Reliability::Unreliable, self.now)
                        .unwrap();
                    self.notifies.push((t, request));
                    self.notified += 1;
                }
                NetworkAction::InstallSas(s) => {
                    match self.net.handover_from(&s) {
                        Some(old) => self.net_side.comp.hand_over_sas(old, &s),
                        None => self.net_side.comp.open_sas_when_signalled(&s),
                    };
                    self.net_side.sas.push(s);
                }
                NetworkAction::UpdateSas(s) => {
                    self.net_side.sas.retain(|x| x.sas() != s.sas());
                    self.net_side.sas.push(s);
                }
                NetworkAction::RemoveSas(s) => {
                    self.transmit();
                    self.net_side.comp.close_sas(&s);
                    self.net_side.sas.retain(|x| *x != s);
                }
                _ => {}
            }
        }
    }

    /// Whether the next datagram is lost.
    fn lose(&mut self) -> bool {
        let mut b = [0u8; 8];
        self.loss.fill(&mut b);
        u64::from_le_bytes(b) % 100 < LOSS as u64
    }

    /// Compresses what both layers want to send and puts it on the wire,
    /// losing some.
    fn transmit(&mut self) {
        let mut out = Vec::new();
        while let Some(t) = self.ue_txn.poll_transmit() {
            out.push((true, t.to, t.bytes));
        }
        while let Some(t) = self.net_txn.poll_transmit() {
            out.push((false, t.to, t.bytes));
        }
        for (to_network, flow, sip) in out {
            let (side, peer) = if to_network {
                let p = match flow {
                    Flow::Protected { pcscf_port, .. } => pcscf_port,
                    Flow::Unprotected => 5060,
                };
                (&mut self.ue_side, SocketAddr::new(pcscf_addr(), p))
            } else {
                let p = match flow {
                    Flow::Protected { ue_port, .. } => ue_port,
                    Flow::Unprotected => 5060,
                };
                (&mut self.net_side, SocketAddr::new(ue_addr(), p))
            };
            let protected = matches!(flow, Flow::Protected { .. });
            if protected && side.set_for(flow).is_none() {
                side.no_sa += 1;
                continue;
            }
            let mut bytes = Vec::new();
            match side.comp.association_of(peer).map(str::to_owned) {
                Some(a) => {
                    let o = side
                        .comp
                        .send(&a, &sip, Link::Datagram, protected, &mut bytes)
                        .unwrap();
                    side.compressed_sent += usize::from(o.compressed);
                }
                None => bytes = sip.clone(),
            }
            if protected {
                side.sip_over_sas += sip.len();
                side.wire_over_sas += bytes.len();
            }
            self.sent += 1;
            if self.lose() {
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
        let (side, from) = if p.to_network {
            let port = match p.flow {
                Flow::Protected { ue_port, .. } => ue_port,
                Flow::Unprotected => 5060,
            };
            (&mut self.net_side, SocketAddr::new(ue_addr(), port))
        } else {
            let port = match p.flow {
                Flow::Protected { pcscf_port, .. } => pcscf_port,
                Flow::Unprotected => 5060,
            };
            (&mut self.ue_side, SocketAddr::new(pcscf_addr(), port))
        };
        let over_sas = match p.flow {
            Flow::Protected { .. } => {
                if side.set_for(p.flow).is_none() {
                    side.no_sa += 1;
                    return;
                }
                side.comp.association_of(from).map(str::to_owned)
            }
            Flow::Unprotected => None,
        };
        let sip = match side
            .comp
            .receive(&p.bytes, Link::Datagram, over_sas.as_deref())
        {
            Some(Inbound::Message {
                bytes, compressed, ..
            }) => {
                side.compressed_received += usize::from(compressed);
                bytes
            }
            Some(Inbound::Failed { .. }) => {
                side.failed += 1;
                return;
            }
            _ => return,
        };
        let m = Message::parse(&sip).unwrap();
        match (p.to_network, m.is_request()) {
            (true, true) => {
                if let (Some(a), true) = (&over_sas, gm::comp::signals_sigcomp(&m)) {
                    self.net_side.comp.peer_signalled(a);
                }
                let v = self
                    .net_txn
                    .on_request(&m, p.flow, Reliability::Unreliable, self.now)
                    .unwrap();
                if let RequestVerdict::New(id) = v {
                    let acts = self
                        .net
                        .on_request(&m, ue_addr(), p.flow, self.now, &mut self.rng)
                        .expect("REGISTER or a reg event SUBSCRIBE");
                    self.net_actions(Some(id), acts);
                }
            }
            (true, false) => {
                if let ResponseVerdict::ToTu(_) = self.net_txn.on_response(&m, self.now) {
                    let acts = self.net.on_response(&m, self.now);
                    self.net_actions(None, acts);
                }
            }
            (false, true) => {
                let v = self
                    .ue_txn
                    .on_request(&m, p.flow, Reliability::Unreliable, self.now)
                    .unwrap();
                if let RequestVerdict::New(id) = v {
                    let acts = self
                        .ue
                        .on_request(&m, p.flow, self.now, &mut self.rng)
                        .expect("a reg event NOTIFY");
                    self.ue_actions(Some(id), acts);
                }
            }
            (false, false) => {
                if let ResponseVerdict::ToTu(_) = self.ue_txn.on_response(&m, self.now) {
                    let acts = self.ue.on_response(&m, p.flow, self.now, &mut self.rng);
                    self.ue_actions(None, acts);
                }
            }
        }
    }

    /// Runs until `done` or nothing is left to happen.
    fn run_until(&mut self, done: impl Fn(&Sim) -> bool) {
        let limit = self.now + Duration::from_secs(3600);
        while !done(self) && self.failed.is_none() && self.now < limit {
            self.transmit();
            let next = self
                .wire
                .iter()
                .map(|p| p.at)
                .chain(self.ue_txn.poll_timeout())
                .chain(self.net_txn.poll_timeout())
                .chain(self.ue.poll_timeout())
                .chain(self.net.poll_timeout())
                .min();
            let Some(next) = next else { break };
            self.now = self.now.max(next);
            let (due, rest): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|p| p.at <= self.now);
            self.wire = rest;
            for p in due {
                self.deliver(p);
            }
            self.ue_txn.handle_timeout(self.now);
            self.net_txn.handle_timeout(self.now);
            while let Some(e) = self.ue_txn.poll_event() {
                if let Event::Timeout(id) = e {
                    if Some(id) == self.reg_txn {
                        let acts = self.ue.on_timeout();
                        self.ue_actions(None, acts);
                    }
                }
            }
            while let Some(e) = self.net_txn.poll_event() {
                if let Event::Timeout(id) = e {
                    if let Some(i) = self.notifies.iter().position(|(t, _)| *t == id) {
                        let (_, notify) = self.notifies.swap_remove(i);
                        let acts = self.net.on_notify_timeout(&notify);
                        self.net_actions(None, acts);
                    }
                }
            }
            if self.ue.refresh_due(self.now) {
                // The next SA set, given as the re-registration is due
                // (as imsua does).
                if let Some(&(spis, port_c)) = NEXT.get(self.next) {
                    self.ue.offer_next(spis, port_c).unwrap();
                    self.next += 1;
                }
            }
            if self.ue.poll_timeout().is_some_and(|t| t <= self.now) {
                let acts = self.ue.handle_timeout(self.now, &mut self.rng);
                self.ue_actions(None, acts);
            }
            if self.net.poll_timeout().is_some_and(|t| t <= self.now) {
                let acts = self.net.handle_timeout(self.now);
                self.net_actions(None, acts);
            }
        }
    }
}

#[test]
fn registration_reg_event_handovers_and_deregistration_with_sigcomp_over_a_lossy_channel() {
    let (mut lost, mut sent, mut compressed) = (0, 0, 0);
    // (wire, SIP) bytes over the SAs: the UE's, the network's.
    let mut totals = [(0, 0); 2];
    for seed in 0..SEEDS {
        let mut sim = Sim::new(seed);
        let first = sim.ue.register(&mut sim.rng);
        sim.ue_actions(None, first);
        // Registered, then re-registered twice, each time onto a new set.
        sim.run_until(|s| s.registered == 3);
        assert_eq!(sim.failed, None, "seed {seed}");
        assert_eq!(sim.registered, 3, "seed {seed}: at {:?}", sim.now);
        assert_eq!(sim.next, NEXT.len(), "seed {seed}");
        let ue_set = sim.ue.sas().unwrap().clone();
        let (u, p) = (ue_set.ue_offer(), ue_set.pcscf_offer());
        assert_eq!(
            (u.spi_c, u.spi_s, u.port_c),
            (0x3000, 0x3001, 6100),
            "seed {seed}"
        );
        // Both sides hold the same set, mirrored, and only it.
        assert_eq!(sim.ue_side.sas, vec![ue_set.clone()], "seed {seed}");
        assert_eq!(sim.net_side.sas.len(), 1, "seed {seed}");
        assert_eq!(sim.net_side.sas[0].mirror(), ue_set, "seed {seed}");
        assert_eq!(p.port_s, PCSCF_PORTS.1, "seed {seed}");
        // While registered, through both handovers, nothing was sent or
        // read without its SAs (a NOTIFY crossing the de-registration
        // later may be: the UE deletes its SAs on the 200).
        assert_eq!(
            (sim.ue_side.no_sa, sim.net_side.no_sa),
            (0, 0),
            "seed {seed}: dropped for want of an SA"
        );
        // The reg event: a NOTIFY for the subscription and each
        // registration after it, answered.
        assert!(sim.notified >= 3, "seed {seed}: {} NOTIFYs", sim.notified);
        // The compartment followed the SAs on both sides.
        for side in [&sim.ue_side, &sim.net_side] {
            let a = gm::comp::association(&side.sas[0]);
            assert!(side.comp.is_open(&a), "seed {seed}");
        }
        sim.ue_actions_deregister();
        sim.run_until(|s| s.deregistered && s.net.binding(IMPI).is_none());
        assert!(
            sim.deregistered,
            "seed {seed}: at {:?}, {:?}, the network dropped {} for want of an SA",
            sim.now, sim.failed, sim.net_side.no_sa
        );
        assert!(sim.ue_side.sas.is_empty(), "seed {seed}");
        // The network keeps its set a while for retransmitted de-REGISTERs
        // (its 200 may be lost), then removes it.
        let done = sim.now;
        sim.run_until(|s| s.net_side.sas.is_empty());
        assert!(sim.net_side.sas.is_empty(), "seed {seed}");
        assert!(
            sim.now <= done + gm::reg::DEREGISTRATION_LINGER,
            "seed {seed}: removed at {:?}, de-registered at {done:?}",
            sim.now
        );
        for (name, side) in [("ue", &sim.ue_side), ("network", &sim.net_side)] {
            assert_eq!(
                side.failed, 0,
                "seed {seed}: {name}'s decompression failures"
            );
            assert!(
                side.compressed_sent > 0 && side.compressed_received > 0,
                "seed {seed}: {name} sent {} and read {} SigComp messages",
                side.compressed_sent,
                side.compressed_received
            );
            // Over the SAs the bytes stay well under the SIP's, the
            // bytecode uploads and the literal forms after losses included.
            assert!(
                side.wire_over_sas * 10 < side.sip_over_sas * 9,
                "seed {seed}: {name} sent {} B for {} B of SIP over the SAs",
                side.wire_over_sas,
                side.sip_over_sas
            );
            totals[usize::from(name == "network")].0 += side.wire_over_sas;
            totals[usize::from(name == "network")].1 += side.sip_over_sas;
            compressed += side.compressed_sent;
        }
        lost += sim.lost;
        sent += sim.sent;
    }
    // The channel did lose about a tenth.
    assert!(
        lost * 100 >= sent * (LOSS - 5) && lost * 100 <= sent * (LOSS + 5),
        "{lost} of {sent} lost"
    );
    assert!(compressed > 0);
    // Over all runs: the UE's REGISTERs take under a quarter of their
    // SIP, the network's answers (shorter, and the first one uploads the
    // bytecode) under a half.
    let [(ue_wire, ue_sip), (net_wire, net_sip)] = totals;
    assert!(ue_wire * 4 < ue_sip, "UE: {ue_wire} B for {ue_sip} B");
    assert!(
        net_wire * 2 < net_sip,
        "network: {net_wire} B for {net_sip} B"
    );
}

impl Sim {
    fn ue_actions_deregister(&mut self) {
        let acts = self.ue.deregister(&mut self.rng);
        self.ue_actions(None, acts);
    }
}
