//! The Gm layer with SigComp on both sides (`gm::comp::Compression`),
//! through the transaction layer, over a UDP channel that loses 10 % of
//! the datagrams (a seeded choice, many seeds): registration with its reg
//! event subscription (RFC 3680: SUBSCRIBE, NOTIFYs), two re-registrations
//! with SA handover and the de-registration; each algorithm pair; an AUTS
//! resynchronisation (its second 401 lost on purpose on some seeds); the
//! network ending a registration through the reg event (`deactivated`,
//! then `rejected`); offers without `ealg`; a network with another K and
//! a man in the middle (no SA left on either side); and two UEs
//! exchanging MESSAGEs through the network's relay, presence and SMS over
//! IP, and their de-registrations (presence ended first). The network is
//! `gm::network::Pcscf`, the machine `pcscf` runs; each UE is
//! `gm::ue::Ua`, the machine `imsua` runs. Each side keeps its own SAs
//! as a real IPsec layer would: a message leaves over the newest set for
//! its ports, and is read only if its receiver holds that very set (its
//! SPIs; else it is dropped, as ESP without its SA would be). Timer E
//! retransmissions, compressed again each time, recover every loss; the
//! compartment opens with the SAs and is carried over each handover; no
//! SigComp message fails to decompress (the compressor references only
//! states the peer acknowledged, so a loss can cost compression, never a
//! message); and the compression pays: the protected messages take far
//! fewer bytes than their SIP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Rng;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use gm::comp::{Compression, Inbound};
use gm::network::{Addresses, Event as NetEvent, Links, Output, Pcscf};
use gm::presence::agent::Agent;
use gm::presence::ue::Subscribed;
use gm::presence::{Basic, Compositor, Published};
use gm::reg::{
    Credentials, Ending, Flow, Network, NetworkConfig, OpKey, Random, SaSet, Side as RegSide, Ue,
    UeConfig,
};
use gm::sip::{Message, Method};
use gm::sms::service::{CentreEvent, SmsCentre, SmsUe, UeEvent};
use gm::txn::{Protocol, Reliability, Timers, Transactions, TxnId};
use gm::ue::{Event as UaEvent, Output as UaOutput, Settings, Ua};
use sigcomp::{EndpointConfig, Link};

const K: [u8; 16] = [0x11; 16];
const OPC: [u8; 16] = [0x22; 16];
/// One-way delay of the channel.
const DELAY: Duration = Duration::from_millis(20);
/// The P-CSCF's protected ports (with its second client port for
/// handovers).
const PCSCF_PORTS: (u16, u16, u16) = (7100, 7101, 7102);
/// Loss rate, in percent.
const LOSS: usize = 10;
const SEEDS: u64 = 40;
const INSTANCE: &str = "urn:gsma:imei:35390600-123456-0";
const DOMAIN: &str = "ims.example.org";

/// UE `i`'s E.164 number.
fn number(i: usize) -> String {
    format!("1555555010{i}")
}

fn centre_address() -> gm::sms::Address {
    let digits = gm::sms::sip::e164(&gm::sms::sip::default_centre(DOMAIN)).unwrap();
    gm::sms::Address::international(&digits)
}

fn pcscf_addr() -> IpAddr {
    "2001:db8::1".parse().unwrap()
}

/// A man in the middle's rewrite of a request.
type Tamper = fn(&mut Message<'static>);

/// Where a message travels: between UE `ue` and the network, on `flow`.
type Addr = (usize, Flow);

struct Packet {
    at: Duration,
    to_network: bool,
    ue: usize,
    flow: Flow,
    /// The SPIs of the set it went over (its receiver needs that set).
    set: Option<[u32; 4]>,
    bytes: Vec<u8>,
}

/// An SA set by its SPIs: the UE's spi-c and spi-s, the P-CSCF's.
fn spis(s: &SaSet) -> [u32; 4] {
    let (u, p) = (s.ue_offer(), s.pcscf_offer());
    [u.spi_c, u.spi_s, p.spi_c, p.spi_s]
}

/// One side's IPsec and SigComp.
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

    /// The set of the UE at `ue_addr` carrying `flow` (the newest, if a
    /// replacement on the same ports is under way): the UE's port-c with
    /// the P-CSCF's port-s, or the P-CSCF's port-c with the UE's port-s.
    fn set_for(&self, ue_addr: IpAddr, flow: Flow) -> Option<&SaSet> {
        self.sets_for(ue_addr, flow).last()
    }

    fn sets_for(&self, ue_addr: IpAddr, flow: Flow) -> impl Iterator<Item = &SaSet> {
        let ports = match flow {
            Flow::Protected {
                ue_port,
                pcscf_port,
            } => Some((ue_port, pcscf_port)),
            Flow::Unprotected => None,
        };
        self.sas.iter().filter(move |s| {
            let (u, p) = (s.ue_offer(), s.pcscf_offer());
            ports.is_some_and(|pair| {
                s.ue_addr() == ue_addr
                    && ((u.port_c, p.port_s) == pair || (u.port_s, p.port_c) == pair)
            })
        })
    }
}

/// A UE: the UE role (`gm::ue::Ua`), its SAs and SigComp, and what its
/// events told.
struct UeNode {
    ua: Ua,
    side: Side,
    addr: IpAddr,
    impu: String,
    /// Its next SA sets: SPIs and port-c, given as re-registrations fall
    /// due.
    next: Vec<((u32, u32), u16)>,
    registered: usize,
    deregistered: bool,
    failed: Option<String>,
    /// MESSAGEs sent (transaction, text), their final statuses (408: none
    /// came), and the texts received.
    sent: Vec<(TxnId, String)>,
    finals: Vec<(String, u16)>,
    received: Vec<String>,
    /// Requests that came to a port other than its port-s (TS 33.203:
    /// the P-CSCF's requests go to the UE's protected server port).
    not_to_port_s: usize,
    /// Presence: its PUBLISHes taken, what its SUBSCRIBEs got, and the
    /// basic status of every document NOTIFYs brought.
    published: usize,
    subscribed: Vec<Subscribed>,
    seen: Vec<Basic>,
    /// SMS over IP: what happened.
    sms_events: Vec<UeEvent>,
    /// AUTS requests it made (SQN re-synchronisations).
    resyncs: usize,
    /// How the network ended its registrations (reg event).
    ended: Vec<gm::regevent::ContactEvent>,
    /// The ends of its presence and registration, in order.
    endings: Vec<&'static str>,
    /// Messages its role dropped for not coming over its SAs (a
    /// retransmitted 401 in clear that crossed the protected REGISTER).
    not_over_sas: usize,
    /// Rewrites each request it sends (a man in the middle).
    tamper: Option<Tamper>,
    /// The algorithm pairs it offers.
    ue_algorithms: Vec<(opensec::AuthAlgorithm, opensec::EncAlgorithm)>,
}

impl UeNode {
    /// UE `i`, whose SQN_MS is `sqn_ms` (the network starts at 32), its
    /// configuration changed by `configure`.
    fn new(i: usize, sqn_ms: u64, configure: fn(&mut UeConfig), rng: &mut Rng) -> UeNode {
        let addr: IpAddr = format!("2001:db8::{}", i + 2).parse().unwrap();
        // Ports of their own too (the UEs differ by address already).
        let base = 6100 + 100 * i as u16;
        let impi = format!("ue{i}@ims.example.org");
        let impu = format!("sip:ue{i}@ims.example.org");
        let mut config = UeConfig::new(
            &impi,
            &impu,
            "ims.example.org",
            addr,
            pcscf_addr(),
            (0x1000, 0x1001),
            (base, base + 1),
        );
        config.expires = 600;
        config.instance = INSTANCE.to_owned();
        configure(&mut config);
        let ue_algorithms = config.algorithms.clone();
        let ue = Ue::new(
            config,
            Credentials::Aka {
                k: K,
                op: OpKey::Opc(OPC),
                sqn_ms,
            },
            rng,
        );
        let settings = Settings {
            impu: impu.clone(),
            presentity: impu.clone(),
            pcscf: SocketAddr::new(pcscf_addr(), 5060),
            local: SocketAddr::new(addr, 5060),
            protocol: Protocol::Udp,
            sigcomp_id: gm::comp::sigcomp_id_from_instance(INSTANCE),
            presence_expires: 3600,
            sms_centre: gm::sms::sip::default_centre(DOMAIN),
        };
        UeNode {
            ua: Ua::new(
                ue,
                Transactions::new(Timers::default()),
                SmsUe::new(centre_address()),
                settings,
            ),
            side: Side::new(),
            addr,
            impu,
            next: vec![((0x3000, 0x3001), base + 2), ((0x2000, 0x2001), base)],
            registered: 0,
            deregistered: false,
            failed: None,
            sent: Vec::new(),
            finals: Vec::new(),
            received: Vec::new(),
            not_to_port_s: 0,
            published: 0,
            subscribed: Vec::new(),
            seen: Vec::new(),
            sms_events: Vec::new(),
            resyncs: 0,
            ended: Vec::new(),
            endings: Vec::new(),
            not_over_sas: 0,
            tamper: None,
            ue_algorithms,
        }
    }

    /// Notes what an event of its role told.
    fn on_event(&mut self, e: UaEvent) {
        match e {
            UaEvent::Registered(_) => self.registered += 1,
            UaEvent::Resynchronising { .. } => self.resyncs += 1,
            UaEvent::DeregisteredByNetwork { event, .. } => self.ended.push(event),
            UaEvent::Deregistered => {
                self.deregistered = true;
                self.endings.push("deregistered");
            }
            UaEvent::RegistrationFailed { error, .. } => {
                self.failed = Some(format!("Failed({error:?})"));
            }
            UaEvent::MessageAnswered { txn, status, .. } => self.message_final(txn, status),
            UaEvent::MessageUnanswered { txn } => self.message_final(txn, 408),
            UaEvent::MessageReceived(page) => {
                self.received.push(String::from_utf8(page.body).unwrap());
            }
            UaEvent::Sms { event, .. } => self.sms_events.push(event),
            UaEvent::Published(Published::Accepted { .. }) => self.published += 1,
            UaEvent::Published(Published::Removed) => self.endings.push("unpublished"),
            UaEvent::Unsubscribed => self.endings.push("unsubscribed"),
            UaEvent::NotOverSas { .. } => self.not_over_sas += 1,
            UaEvent::Subscribed(got) => self.subscribed.push(got),
            UaEvent::Presence(seen) => self.seen.extend(seen.document.map(|d| d.basic())),
            other => self.failed = Some(format!("{other:?}")),
        }
    }

    fn message_final(&mut self, txn: TxnId, status: u16) {
        if let Some(k) = self.sent.iter().position(|(t, _)| *t == txn) {
            let (_, text) = self.sent.swap_remove(k);
            self.finals.push((text, status));
        }
    }

    fn impi(&self) -> String {
        self.impu.trim_start_matches("sip:").to_owned()
    }
}

/// The network: `gm::network::Pcscf` (registrar, relay, presence agent,
/// service centre) with its SAs and SigComp.
struct NetNode {
    pcscf: Pcscf,
    side: Side,
    /// Reg event NOTIFYs sent (first copies).
    notified: usize,
    centre_events: Vec<CentreEvent>,
}

/// Every destination over UDP.
struct Udp;

impl Links for Udp {
    fn protocol(&self, _: SocketAddr) -> Protocol {
        Protocol::Udp
    }
}

struct Sim {
    ues: Vec<UeNode>,
    net: NetNode,
    rng: Rng,
    /// Decides the losses, apart from the randomness `gm` gets.
    loss: Rng,
    now: Duration,
    wire: Vec<Packet>,
    sent: usize,
    lost: usize,
    /// Protected 401s still to lose on purpose, past the random losses.
    lose_protected_401s: usize,
}

impl Sim {
    /// `ues` UEs and the network.
    fn new(seed: u64, ues: usize) -> Sim {
        Sim::with_sqn(seed, ues, 0)
    }

    /// `ues` UEs whose SQN_MS is `sqn_ms`, and the network.
    fn with_sqn(seed: u64, ues: usize, sqn_ms: u64) -> Sim {
        Sim::build(seed, ues, sqn_ms, K)
    }

    /// `ues` UEs whose SQN_MS is `sqn_ms`, and the network, which holds
    /// `net_k` as their K.
    fn build(seed: u64, ues: usize, sqn_ms: u64, net_k: [u8; 16]) -> Sim {
        Sim::configured(seed, ues, sqn_ms, net_k, |_| {}, &|_| {})
    }

    /// [`Sim::build`], each UE's configuration changed by `configure`, the
    /// network's by `network`.
    fn configured(
        seed: u64,
        ues: usize,
        sqn_ms: u64,
        net_k: [u8; 16],
        configure: fn(&mut UeConfig),
        network: &dyn Fn(&mut NetworkConfig),
    ) -> Sim {
        let mut rng = Rng(77 + seed);
        let nodes: Vec<UeNode> = (0..ues)
            .map(|i| UeNode::new(i, sqn_ms, configure, &mut rng))
            .collect();
        let mut nc = NetworkConfig::new(
            "ims.example.org",
            pcscf_addr(),
            PCSCF_PORTS.0,
            PCSCF_PORTS.1,
        );
        nc.alt_port_c = Some(PCSCF_PORTS.2);
        network(&mut nc);
        let mut net = Network::new(nc);
        let resources: Vec<String> = nodes.iter().map(|n| n.impu.clone()).collect();
        let mut centre = SmsCentre::new(centre_address());
        let mut impus = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            centre.subscriber(&number(i), &n.impu);
            impus.insert(n.impi(), vec![n.impu.clone()]);
        }
        for n in &nodes {
            net.add_subscriber(&n.impi(), common::subscriber(net_k, OPC));
        }
        let local = SocketAddr::new(pcscf_addr(), PCSCF_PORTS.0);
        let sent_by = SocketAddr::new(pcscf_addr(), PCSCF_PORTS.1);
        let agent = Agent::new(
            Compositor::new(
                &resources.iter().map(String::as_str).collect::<Vec<_>>(),
                3600,
                60,
                7200,
            ),
            &format!("sip:{sent_by}"),
            60,
            3600,
            7200,
        );
        let mut pcscf = Pcscf::new(
            net,
            Transactions::new(Timers::default()),
            agent,
            (centre, gm::sms::sip::default_centre(DOMAIN)),
            impus,
            Addresses { local, sent_by },
        );
        pcscf.set_utc_offset(1_765_000_000);
        Sim {
            ues: nodes,
            net: NetNode {
                pcscf,
                side: Side::new(),
                notified: 0,
                centre_events: Vec::new(),
            },
            rng,
            loss: Rng(0x9e37_79b9_7f4a_7c15 ^ (seed + 1)),
            now: Duration::ZERO,
            wire: Vec::new(),
            sent: 0,
            lost: 0,
            lose_protected_401s: 0,
        }
    }

    /// Carries out UE `i`'s outputs in order: its messages (a man in the
    /// middle rewrites the requests), its SA changes (with their
    /// compartments), its events.
    fn drain_ue(&mut self, i: usize) {
        while let Some(o) = self.ues[i].ua.poll_output() {
            let u = &mut self.ues[i];
            match o {
                UaOutput::Transmit(t) => {
                    let flow = match t.from_port {
                        Some(ue_port) if t.to.port() != 5060 => Flow::Protected {
                            ue_port,
                            pcscf_port: t.to.port(),
                        },
                        _ => Flow::Unprotected,
                    };
                    let mut bytes = t.bytes;
                    if let Some(tamper) = u.tamper {
                        let mut m = Message::parse(&bytes).unwrap().into_owned();
                        if m.is_request() {
                            tamper(&mut m);
                            bytes = m.to_bytes();
                        }
                    }
                    self.put(true, i, flow, bytes);
                }
                UaOutput::InstallSas { set, replaces } => {
                    match &replaces {
                        Some(old) => u.side.comp.hand_over_sas(old, &set),
                        None => u.side.comp.open_sas(&set),
                    };
                    u.side.sas.push(set);
                }
                UaOutput::UpdateSas(s) => {
                    u.side.sas.retain(|x| x.sas() != s.sas());
                    u.side.sas.push(s);
                }
                UaOutput::RemoveSas(s) => {
                    u.side.comp.close_sas(&s);
                    u.side.sas.retain(|x| *x != s);
                }
                UaOutput::Event(e) => u.on_event(e),
            }
        }
    }

    /// Whether the next datagram is lost.
    fn lose(&mut self) -> bool {
        let mut b = [0u8; 8];
        self.loss.fill(&mut b);
        u64::from_le_bytes(b) % 100 < LOSS as u64
    }

    /// Compresses what every layer wants to send and puts it on the wire,
    /// losing some.
    fn transmit(&mut self) {
        for i in 0..self.ues.len() {
            self.drain_ue(i);
        }
        self.drain_network();
    }

    /// Carries out the network's outputs in order: its messages, its SA
    /// changes (with their compartments).
    fn drain_network(&mut self) {
        while let Some(o) = self.net.pcscf.poll_output() {
            match o {
                Output::Transmit(t) => {
                    let Some(i) = self.ues.iter().position(|u| u.addr == t.to.ip()) else {
                        continue;
                    };
                    let flow = self.network_flow(t.to, t.from_port);
                    let m = Message::parse(&t.bytes).unwrap();
                    if !t.retransmission
                        && m.method() == Some(Method::Notify)
                        && m.header("Event").is_some_and(|e| e.starts_with("reg"))
                    {
                        self.net.notified += 1;
                    }
                    self.put(false, i, flow, t.bytes);
                }
                Output::InstallSas { set, replaces } => {
                    let n = &mut self.net;
                    match &replaces {
                        Some(old) => n.side.comp.hand_over_sas(old, &set),
                        None => n.side.comp.open_sas_when_signalled(&set),
                    };
                    n.side.sas.push(set);
                }
                Output::UpdateSas(set) => {
                    self.net.side.sas.retain(|x| x.sas() != set.sas());
                    self.net.side.sas.push(set);
                }
                Output::RemoveSas(set) => {
                    self.net.side.comp.close_sas(&set);
                    self.net.side.sas.retain(|x| *x != set);
                }
                Output::Event(NetEvent::Sms(e)) => self.net.centre_events.push(e),
                Output::Event(_) => {}
            }
        }
    }

    /// The flow a message of the network to `to` leaves on: in clear to
    /// port 5060; from the port the role names; else (a request it
    /// starts) from the port-c of the newest set reaching `to`'s port.
    fn network_flow(&self, to: SocketAddr, from_port: Option<u16>) -> Flow {
        if to.port() == 5060 {
            return Flow::Unprotected;
        }
        let pcscf_port = from_port.unwrap_or_else(|| {
            self.net
                .side
                .sas
                .iter()
                .rev()
                .find(|s| s.ue_addr() == to.ip() && s.ue_offer().port_s == to.port())
                .map_or(PCSCF_PORTS.0, |s| s.pcscf_offer().port_c)
        });
        Flow::Protected {
            ue_port: to.port(),
            pcscf_port,
        }
    }

    /// Puts one message on the wire: compressed by its sender's SigComp,
    /// over the newest SA set for its ports (or dropped without one),
    /// lost by the channel or not.
    fn put(&mut self, to_network: bool, i: usize, flow: Flow, sip: Vec<u8>) {
        {
            let ue_addr = self.ues[i].addr;
            let (side, peer) = if to_network {
                let p = match flow {
                    Flow::Protected { pcscf_port, .. } => pcscf_port,
                    Flow::Unprotected => 5060,
                };
                (&mut self.ues[i].side, SocketAddr::new(pcscf_addr(), p))
            } else {
                let p = match flow {
                    Flow::Protected { ue_port, .. } => ue_port,
                    Flow::Unprotected => 5060,
                };
                (&mut self.net.side, SocketAddr::new(ue_addr, p))
            };
            let protected = matches!(flow, Flow::Protected { .. });
            let set = side.set_for(ue_addr, flow).map(spis);
            if protected && set.is_none() {
                side.no_sa += 1;
                return;
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
            if !to_network
                && protected
                && self.lose_protected_401s > 0
                && sip.starts_with(b"SIP/2.0 401")
            {
                self.lose_protected_401s -= 1;
                return;
            }
            self.sent += 1;
            if self.lose() {
                self.lost += 1;
                return;
            }
            self.wire.push(Packet {
                at: self.now + DELAY,
                to_network,
                ue: i,
                flow,
                set,
                bytes,
            });
        }
    }

    fn deliver(&mut self, p: Packet) {
        let ue_addr = self.ues[p.ue].addr;
        let (side, from) = if p.to_network {
            let port = match p.flow {
                Flow::Protected { ue_port, .. } => ue_port,
                Flow::Unprotected => 5060,
            };
            (&mut self.net.side, SocketAddr::new(ue_addr, port))
        } else {
            let port = match p.flow {
                Flow::Protected { pcscf_port, .. } => pcscf_port,
                Flow::Unprotected => 5060,
            };
            (
                &mut self.ues[p.ue].side,
                SocketAddr::new(pcscf_addr(), port),
            )
        };
        let over_sas = match p.flow {
            Flow::Protected { .. } => {
                // ESP: only the SA the sender used (its SPI) reads it.
                if !side
                    .sets_for(ue_addr, p.flow)
                    .any(|s| Some(spis(s)) == p.set)
                {
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
        if p.to_network {
            self.at_network(&m, (p.ue, p.flow), over_sas.as_deref());
        } else {
            self.at_ue(p.ue, &m, p.flow);
        }
    }

    fn at_network(&mut self, m: &Message<'_>, from: Addr, over_sas: Option<&str>) {
        let now = self.now;
        let ue_ip = self.ues[from.0].addr;
        let (sock, arrival) = match from.1 {
            Flow::Unprotected => (
                SocketAddr::new(ue_ip, 5060),
                (from.1, None, Reliability::Unreliable),
            ),
            Flow::Protected {
                ue_port,
                pcscf_port,
            } => (
                SocketAddr::new(ue_ip, ue_port),
                (from.1, Some(pcscf_port), Reliability::Unreliable),
            ),
        };
        if m.is_request() {
            if let (Some(a), true) = (over_sas, gm::comp::signals_sigcomp(m)) {
                self.net.side.comp.peer_signalled(a);
            }
            // As pcscf does: the top Via says where it came from (RFC 3581).
            let mut m = m.clone().into_owned();
            gm::txn::stamp_via(&mut m, sock).unwrap();
            self.net
                .pcscf
                .on_request(&m, sock, arrival, now, &mut self.rng, &mut Udp);
        } else {
            self.net.pcscf.on_response(m, now, &mut Udp);
        }
        self.drain_network();
    }

    /// The network ends UE `impi`'s registration.
    fn net_deregister(&mut self, impi: &str, ending: Ending) {
        let now = self.now;
        self.net.pcscf.deregister(impi, ending, now, &mut Udp);
        self.drain_network();
    }

    fn at_ue(&mut self, i: usize, m: &Message<'_>, flow: Flow) {
        let now = self.now;
        let u = &mut self.ues[i];
        if !m.is_request() {
            u.ua.on_response(m, flow, now, &mut self.rng);
            self.drain_ue(i);
            return;
        }
        if let Flow::Protected { ue_port, .. } = flow {
            if !u.side.sas.iter().any(|s| s.ue_offer().port_s == ue_port) {
                u.not_to_port_s += 1;
            }
        }
        // As imsua does: the top Via says where it came from (RFC 3581).
        let from = SocketAddr::new(
            pcscf_addr(),
            match flow {
                Flow::Protected { pcscf_port, .. } => pcscf_port,
                Flow::Unprotected => 5060,
            },
        );
        let mut m = m.clone().into_owned();
        gm::txn::stamp_via(&mut m, from).unwrap();
        let arrival = (flow, flow.local_port(RegSide::Ue), Reliability::Unreliable);
        u.ua.on_request(&m, from, arrival, now, &mut self.rng);
        self.drain_ue(i);
    }

    /// UE `i` sends `text` to UE `to` (pager mode, over its SAs, by the
    /// registration's route set).
    fn message(&mut self, i: usize, to: usize, text: &str) {
        let target = self.ues[to].impu.clone();
        let u = &mut self.ues[i];
        let t =
            u.ua.message(&target, text, self.now, &mut self.rng)
                .unwrap();
        u.sent.push((t, text.to_owned()));
        self.drain_ue(i);
    }

    /// UE `i` sends `text` to UE `to` as SMS over IP (an RP-DATA per
    /// part, to the service centre); returns how many parts.
    fn sms(&mut self, i: usize, to: usize, text: &str) -> usize {
        let parts = self.ues[i]
            .ua
            .sms(&number(to), text, self.now, &mut self.rng)
            .unwrap();
        self.drain_ue(i);
        parts.len()
    }

    /// UE `i` publishes `basic` about itself.
    fn publish(&mut self, i: usize, basic: Basic) {
        self.ues[i]
            .ua
            .publish(basic, Some("lossy"), self.now, &mut self.rng)
            .unwrap();
        self.drain_ue(i);
    }

    /// UE `i` subscribes to UE `to`'s presence.
    fn watch(&mut self, i: usize, to: usize) {
        let uri = self.ues[to].impu.clone();
        self.ues[i]
            .ua
            .subscribe(&uri, self.now, &mut self.rng)
            .unwrap();
        self.drain_ue(i);
    }

    fn register(&mut self, i: usize) {
        self.ues[i].ua.register(self.now, &mut self.rng);
        self.drain_ue(i);
    }

    /// UE `i` de-registers (its presence first).
    fn deregister(&mut self, i: usize) {
        self.ues[i].ua.deregister(self.now, &mut self.rng);
        self.drain_ue(i);
    }

    fn failed(&self) -> Option<String> {
        self.ues.iter().find_map(|u| u.failed.clone())
    }

    /// Runs until `done` or nothing is left to happen.
    fn run_until(&mut self, done: impl Fn(&Sim) -> bool) {
        let limit = self.now + Duration::from_secs(3600);
        while !done(self) && self.failed().is_none() && self.now < limit {
            self.transmit();
            let next = self
                .wire
                .iter()
                .map(|p| Some(p.at))
                .chain(self.ues.iter().map(|u| u.ua.poll_timeout()))
                .chain([self.net.pcscf.poll_timeout()])
                .flatten()
                .min();
            let Some(next) = next else { break };
            self.now = self.now.max(next);
            let now = self.now;
            let (due, rest): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|p| p.at <= now);
            self.wire = rest;
            for p in due {
                self.deliver(p);
            }
            for i in 0..self.ues.len() {
                let u = &mut self.ues[i];
                if u.ua.refresh_due(now) {
                    // The next SA set, given as the re-registration is
                    // due (as imsua does).
                    if let Some((spis, port_c)) = u.next.first().copied() {
                        u.ua.offer_next(spis, port_c).unwrap();
                        u.next.rotate_left(1);
                    }
                }
                if u.ua.poll_timeout().is_some_and(|t| t <= now) {
                    u.ua.handle_timeout(now, &mut self.rng);
                    self.drain_ue(i);
                }
            }
            if self.net.pcscf.poll_timeout().is_some_and(|t| t <= now) {
                self.net.pcscf.handle_timeout(now, &mut self.rng, &mut Udp);
                self.drain_network();
            }
        }
    }

    /// Both sides hold UE 0's set of registration, mirrored, and only it;
    /// the set.
    fn one_mirrored_set(&self, run: &str) -> SaSet {
        let u = &self.ues[0];
        let set = u.ua.ue().sas().expect("the UE holds no set").clone();
        assert_eq!(u.side.sas, vec![set.clone()], "{run}");
        assert_eq!(self.net.side.sas.len(), 1, "{run}");
        assert_eq!(self.net.side.sas[0].mirror(), set, "{run}");
        set
    }

    /// After UE 0's registration failed: the network removes every SA it
    /// holds for it, at the latest when its temporary set's lifetime ends,
    /// and binds nothing.
    fn network_forgets(&mut self, run: &str) {
        let at = self.now;
        self.run_until(|s| s.net.side.sas.is_empty() && s.wire.is_empty());
        assert!(self.net.side.sas.is_empty(), "{run}: at {:?}", self.now);
        assert!(
            self.now <= at + gm::reg::sa::TEMPORARY_LIFETIME + Duration::from_secs(1),
            "{run}: removed at {:?}",
            self.now
        );
        let impi = self.ues[0].impi();
        assert!(self.net.pcscf.network().binding(&impi).is_none(), "{run}");
    }

    /// Checks what every run must show: no SigComp failure, SigComp used
    /// both ways, the bytes over the SAs under 90 % of the SIP's; adds
    /// the (wire, SIP) bytes of the UEs and of the network to `totals`.
    fn check_sigcomp(&self, seed: u64, totals: &mut [(usize, usize); 2]) {
        let sides = self
            .ues
            .iter()
            .map(|u| ("ue", &u.side))
            .chain([("network", &self.net.side)]);
        for (name, side) in sides {
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
            let t = &mut totals[usize::from(name == "network")];
            t.0 += side.wire_over_sas;
            t.1 += side.sip_over_sas;
        }
    }
}

/// Runs `course` over [`SEEDS`] channels with `ues` UEs, checking each
/// run's SigComp ([`Sim::check_sigcomp`]) and that the channels lost
/// about a tenth; returns the (wire, SIP) bytes over the SAs of the UEs
/// and of the network, over all runs.
fn runs(ues: usize, course: impl Fn(u64, &mut Sim)) -> [(usize, usize); 2] {
    runs_of(|seed| Sim::new(seed, ues), course)
}

/// [`runs`], with the simulations `make` builds.
fn runs_of(make: impl Fn(u64) -> Sim, course: impl Fn(u64, &mut Sim)) -> [(usize, usize); 2] {
    let (mut lost, mut sent) = (0, 0);
    let mut totals = [(0, 0); 2];
    for seed in 0..SEEDS {
        let mut sim = make(seed);
        course(seed, &mut sim);
        sim.check_sigcomp(seed, &mut totals);
        lost += sim.lost;
        sent += sim.sent;
    }
    assert!(
        lost * 100 >= sent * (LOSS - 5) && lost * 100 <= sent * (LOSS + 5),
        "{lost} of {sent} lost"
    );
    totals
}

#[test]
fn registration_reg_event_handovers_and_deregistration_with_sigcomp_over_a_lossy_channel() {
    let totals = runs(1, |seed, sim| {
        sim.register(0);
        // Registered, then re-registered twice, each time onto a new set.
        sim.run_until(|s| s.ues[0].registered == 3);
        assert_eq!(
            sim.failed(),
            None,
            "seed {seed}: registered {} times, dropped for want of an SA: UE {} network {}",
            sim.ues[0].registered,
            sim.ues[0].side.no_sa,
            sim.net.side.no_sa
        );
        let u = &sim.ues[0];
        assert_eq!(u.registered, 3, "seed {seed}: at {:?}", sim.now);
        let ue_set = sim.one_mirrored_set(&format!("seed {seed}"));
        let (o, p) = (ue_set.ue_offer(), ue_set.pcscf_offer());
        assert_eq!(
            (o.spi_c, o.spi_s, o.port_c),
            (0x2000, 0x2001, 6100),
            "seed {seed}: the second handover's set"
        );
        assert_eq!(p.port_s, PCSCF_PORTS.1, "seed {seed}");
        // While registered, through both handovers, nothing was sent or
        // read without its SAs (a NOTIFY crossing the de-registration
        // later may be: the UE deletes its SAs on the 200).
        assert_eq!(
            (u.side.no_sa, sim.net.side.no_sa, u.not_to_port_s),
            (0, 0, 0),
            "seed {seed}: dropped for want of an SA, or a NOTIFY not to port-s"
        );
        // The reg event: a NOTIFY for the subscription and each
        // registration after it, answered.
        assert!(
            sim.net.notified >= 3,
            "seed {seed}: {} NOTIFYs",
            sim.net.notified
        );
        // The compartment followed the SAs on both sides.
        for side in [&u.side, &sim.net.side] {
            let a = gm::comp::association(&side.sas[0]);
            assert!(side.comp.is_open(&a), "seed {seed}");
        }
        let impi = u.impi();
        sim.deregister(0);
        sim.run_until(|s| s.ues[0].deregistered && s.net.pcscf.network().binding(&impi).is_none());
        assert!(
            sim.ues[0].deregistered,
            "seed {seed}: at {:?}, {:?}, the network dropped {} for want of an SA",
            sim.now,
            sim.failed(),
            sim.net.side.no_sa
        );
        assert!(sim.ues[0].side.sas.is_empty(), "seed {seed}");
        // The network keeps its set a while for retransmitted de-REGISTERs
        // (its 200 may be lost), then removes it.
        let done = sim.now;
        sim.run_until(|s| s.net.side.sas.is_empty());
        assert!(sim.net.side.sas.is_empty(), "seed {seed}");
        assert!(
            sim.now <= done + gm::reg::DEREGISTRATION_LINGER,
            "seed {seed}: removed at {:?}, de-registered at {done:?}",
            sim.now
        );
    });
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

/// A UE whose SQN is ahead of the network's (a SIM that authenticated
/// elsewhere): the first challenge is stale, the UE answers with AUTS
/// over temporary SAs, the network re-synchronises and challenges again
/// over them, and the UE registers, then de-registers. On every fourth
/// seed the network's 401 to the AUTS request is lost on purpose (the
/// network replaced its SAs as it left, so the UE's retransmissions find
/// none): the AUTS request times out and the UE starts again from the
/// initial REGISTER, with SQN in step by then.
#[test]
fn resynchronisation_with_sigcomp_over_a_lossy_channel() {
    const AHEAD: u64 = 1000;
    let forced = |seed: u64| seed % 4 == 0;
    let make = |seed| {
        let mut sim = Sim::with_sqn(seed, 1, AHEAD);
        sim.lose_protected_401s = usize::from(forced(seed));
        sim
    };
    runs_of(make, |seed, sim| {
        sim.register(0);
        sim.run_until(|s| s.ues[0].registered == 1);
        let u = &sim.ues[0];
        assert_eq!(
            (sim.failed(), u.registered),
            (None, 1),
            "seed {seed}: at {:?}, dropped for want of an SA: UE {} network {}",
            sim.now,
            u.side.no_sa,
            sim.net.side.no_sa
        );
        assert!(u.resyncs >= 1, "seed {seed}: no AUTS");
        // SQN_MS moved past the network's new SQN (one more per restart).
        let sqn = u.ua.ue().sqn_ms().unwrap();
        assert!(sqn > AHEAD && sqn <= AHEAD + 3, "seed {seed}: SQN_MS {sqn}");
        if forced(seed) {
            assert_eq!(sim.lose_protected_401s, 0, "seed {seed}");
            assert!(
                sim.now >= Duration::from_secs(32),
                "seed {seed}: registered at {:?}, before Timer F",
                sim.now
            );
        }
        sim.one_mirrored_set(&format!("seed {seed}"));
        let impi = u.impi();
        sim.deregister(0);
        sim.run_until(|s| s.ues[0].deregistered && s.net.pcscf.network().binding(&impi).is_none());
        assert!(sim.ues[0].deregistered, "seed {seed}: {:?}", sim.failed());
    });
}

/// The network ends a registration (RFC 3680 through the reg event):
/// `deactivated`, and the UE registers again at once (a new challenge,
/// new SAs, a new subscription); then `rejected`, and it stops. Each
/// NOTIFY may be lost and is retransmitted; the SAs end on both sides.
#[test]
fn network_initiated_deregistration_with_sigcomp_over_a_lossy_channel() {
    runs(1, |seed, sim| {
        sim.register(0);
        sim.run_until(|s| s.ues[0].registered == 1 && s.net.notified >= 1);
        assert_eq!(sim.failed(), None, "seed {seed}");
        let impi = sim.ues[0].impi();
        sim.net_deregister(&impi, Ending::Deactivated);
        sim.run_until(|s| s.ues[0].registered == 2);
        let u = &sim.ues[0];
        assert_eq!(
            (sim.failed(), u.registered, &u.ended[..]),
            (None, 2, &[gm::regevent::ContactEvent::Deactivated][..]),
            "seed {seed}: at {:?}",
            sim.now
        );
        sim.one_mirrored_set(&format!("seed {seed}"));
        // Its new reg event subscription is in place before the next end.
        let notified = sim.net.notified;
        sim.run_until(|s| s.net.notified > notified);
        sim.net_deregister(&impi, Ending::Rejected);
        sim.run_until(|s| s.ues[0].ua.ue().is_done() && s.net.side.sas.is_empty());
        let u = &sim.ues[0];
        assert_eq!(u.ended.len(), 2, "seed {seed}: {:?}", sim.failed());
        assert!(u.ua.ue().is_done() && u.side.sas.is_empty(), "seed {seed}");
        assert!(sim.net.side.sas.is_empty(), "seed {seed}: at {:?}", sim.now);
        assert!(
            sim.net.pcscf.network().binding(&impi).is_none(),
            "seed {seed}"
        );
    });
}

/// The network holds another K than the UE: the UE finds the challenge
/// not authentic, answers with an empty response and no SAs (TS 24.229
/// as commonly implemented) and stops. Whatever of that was lost, no SA
/// is left on either side: the network's temporary set ends at the
/// latest with its lifetime.
#[test]
fn a_network_with_another_k_leaves_no_sa_over_a_lossy_channel() {
    let mut lost = 0;
    for seed in 0..SEEDS {
        let mut sim = Sim::build(seed, 1, 0, [0x33; 16]);
        sim.register(0);
        sim.run_until(|s| s.ues[0].failed.is_some());
        assert_eq!(
            sim.ues[0].failed.as_deref(),
            Some("Failed(NetworkAuthenticationFailed)"),
            "seed {seed}"
        );
        assert!(sim.ues[0].side.sas.is_empty(), "seed {seed}");
        // The challenge's temporary set, which the network installed.
        assert_eq!(sim.net.side.sas.len(), 1, "seed {seed}");
        sim.ues[0].failed = None;
        sim.network_forgets(&format!("seed {seed}"));
        lost += sim.lost;
    }
    assert!(lost > 0, "the channel lost nothing");
}

/// A man in the middle between the UE and the network, with the channel
/// losing datagrams: it downgrades the Security-Verify of the protected
/// REGISTER (`hmac-sha-1-96` to `hmac-md5-96`), or flips a digit of its
/// digest response. The network refuses over the challenge's SAs (494,
/// RFC 3329 §2.3.1: Security-Verify must copy its Security-Server; 403
/// for a wrong RES), then drops them, and the UE's registration fails
/// with that refusal (or Timer F / the temporary SAs' end if the channel
/// lost it): no SA is left on either side and nothing is registered.
#[test]
fn a_tampered_protected_register_leaves_no_sa_over_a_lossy_channel() {
    fn downgrade(m: &mut Message<'static>) {
        if let Some(v) = m.header("Security-Verify").map(str::to_owned) {
            let v = v.replace("hmac-sha-1-96", "hmac-md5-96");
            m.set_header("Security-Verify".to_owned(), v).unwrap();
        }
    }
    fn wrong_res(m: &mut Message<'static>) {
        if m.header("Security-Verify").is_none() {
            return;
        }
        let Some(a) = m.header("Authorization").map(str::to_owned) else {
            return;
        };
        let i = a.find("response=\"").unwrap() + 10;
        let mut a = a.into_bytes();
        a[i] = if a[i] == b'0' { b'1' } else { b'0' };
        m.set_header("Authorization".to_owned(), String::from_utf8(a).unwrap())
            .unwrap();
    }
    let tampers: [(Tamper, &str); 2] = [
        (downgrade, "Failed(Rejected { status: 494 })"),
        (wrong_res, "Failed(Rejected { status: 403 })"),
    ];
    for (k, (tamper, refusal)) in tampers.into_iter().enumerate() {
        let mut refused = 0;
        for seed in 0..SEEDS {
            let mut sim = Sim::new(seed, 1);
            sim.ues[0].tamper = Some(tamper);
            sim.register(0);
            sim.run_until(|s| s.ues[0].failed.is_some());
            let failed = sim.ues[0].failed.take();
            assert!(
                failed.as_deref().is_some_and(|f| f.starts_with("Failed(")),
                "tamper {k} seed {seed}: {failed:?}"
            );
            refused += usize::from(failed.as_deref() == Some(refusal));
            assert_eq!(sim.ues[0].registered, 0, "tamper {k} seed {seed}");
            assert!(sim.ues[0].side.sas.is_empty(), "tamper {k} seed {seed}");
            sim.network_forgets(&format!("tamper {k} seed {seed}"));
        }
        // The refusal reaches the UE over the challenge's SAs, unless the
        // channel lost it (then Timer F or the SAs' end).
        assert!(
            refused * 10 >= SEEDS as usize * 7,
            "tamper {k}: {refused} of {SEEDS} runs saw {refusal}"
        );
    }
}

/// Each algorithm pair the UE offers, as the only one the network
/// accepts: the UE registers over SAs with that pair and re-registers
/// onto a next set, with SigComp and its reg event, over the lossy
/// channel (the UE offers all six; the network's preference picks).
#[test]
fn each_algorithm_pair_registers_over_a_lossy_channel() {
    let offered = Sim::new(0, 1).ues[0].ue_algorithms.clone();
    assert_eq!(offered.len(), 6, "{offered:?}");
    for pair in offered {
        runs_of(
            |seed| Sim::configured(seed, 1, 0, K, |_| {}, &|n| n.preference = vec![pair]),
            |seed, sim| {
                sim.register(0);
                sim.run_until(|s| s.ues[0].registered == 2 && s.net.notified >= 2);
                let u = &sim.ues[0];
                assert_eq!(
                    (sim.failed(), u.registered),
                    (None, 2),
                    "{pair:?} seed {seed}"
                );
                let set = sim.one_mirrored_set(&format!("{pair:?} seed {seed}"));
                let o = set.ue_offer();
                assert_eq!((o.alg, o.ealg), pair, "seed {seed}");
            },
        );
    }
}

/// A UE whose offers carry no `ealg` (early releases, still deployed:
/// absent means `null`, and P-CSCFs that ignore such offers lock those
/// UEs out): the network takes them as `null` and registers the UE over
/// integrity-only SAs, then re-registers it onto a next set, with SigComp
/// and its reg event, over the lossy channel.
#[test]
fn offers_without_ealg_register_over_a_lossy_channel() {
    fn null_only(c: &mut UeConfig) {
        c.algorithms = vec![(
            opensec::AuthAlgorithm::HmacSha1_96,
            opensec::EncAlgorithm::Null,
        )];
    }
    fn strip_ealg(m: &mut Message<'static>) {
        if let Some(v) = m.header("Security-Client").map(str::to_owned) {
            assert!(v.contains(";ealg=null"), "{v}");
            let v = v.replace(";ealg=null", "");
            m.set_header("Security-Client".to_owned(), v).unwrap();
        }
    }
    runs_of(
        |seed| {
            let mut sim = Sim::configured(seed, 1, 0, K, null_only, &|_| {});
            sim.ues[0].tamper = Some(strip_ealg);
            sim
        },
        |seed, sim| {
            sim.register(0);
            sim.run_until(|s| s.ues[0].registered == 1);
            let u = &sim.ues[0];
            assert_eq!((sim.failed(), u.registered), (None, 1), "seed {seed}");
            let set = sim.one_mirrored_set(&format!("seed {seed}"));
            assert_eq!(
                set.ue_offer().ealg,
                opensec::EncAlgorithm::Null,
                "seed {seed}"
            );
            // A re-registration hands over to a next set, also `null`;
            // the reg event runs over them too, compressed.
            sim.run_until(|s| s.ues[0].registered == 2 && s.net.notified >= 2);
            assert_eq!(sim.failed(), None, "seed {seed}");
            let u = &sim.ues[0];
            assert_eq!(u.registered, 2, "seed {seed}");
            let set = sim.one_mirrored_set(&format!("seed {seed}"));
            assert_eq!(set.ue_offer().ealg, opensec::EncAlgorithm::Null);
        },
    );
}

/// Two UEs registered (with their reg events) send each other three
/// MESSAGEs each, all at once, through the network's relay: each arrives
/// once, in the right UE, and each sender gets its 200. Then presence:
/// one watches the other, which publishes `open` and then `closed`; the
/// watcher's NOTIFYs end on `closed`. Then SMS over IP: a concatenated
/// UCS-2 text, MO to the service centre and MT to the other UE. Then
/// both de-register.
#[test]
fn messages_presence_and_sms_through_the_network_with_sigcomp_over_a_lossy_channel() {
    runs(2, |seed, sim| {
        sim.register(0);
        sim.register(1);
        sim.run_until(|s| s.ues.iter().all(|u| u.registered == 1));
        assert_eq!(sim.failed(), None, "seed {seed}");
        let mut texts: [Vec<String>; 2] = Default::default();
        for k in 0..3 {
            for (i, to) in [(0, 1), (1, 0)] {
                let text = format!("message {k} from ue{i}");
                sim.message(i, to, &text);
                texts[to].push(text);
            }
        }
        sim.run_until(|s| s.ues.iter().all(|u| u.finals.len() == 3));
        assert_eq!(sim.failed(), None, "seed {seed}");
        for (i, u) in sim.ues.iter().enumerate() {
            let mut finals = u.finals.clone();
            finals.sort();
            let mut want: Vec<(String, u16)> = (0..3)
                .map(|k| (format!("message {k} from ue{i}"), 200))
                .collect();
            want.sort();
            assert_eq!(finals, want, "seed {seed}: ue{i}'s finals");
            let mut got = u.received.clone();
            got.sort();
            assert_eq!(got, texts[i], "seed {seed}: ue{i} received");
            assert_eq!((u.side.no_sa, u.not_to_port_s), (0, 0), "seed {seed}");
        }
        assert_eq!(sim.net.side.no_sa, 0, "seed {seed}");
        // Presence: ue1 watches ue0, which publishes open, then closed.
        sim.watch(1, 0);
        sim.run_until(|s| !s.ues[1].subscribed.is_empty());
        assert!(
            matches!(
                sim.ues[1].subscribed.as_slice(),
                [Subscribed::Accepted { .. }]
            ),
            "seed {seed}: {:?}",
            sim.ues[1].subscribed
        );
        sim.publish(0, Basic::Open);
        sim.run_until(|s| s.ues[0].published == 1 && s.ues[1].seen.contains(&Basic::Open));
        sim.publish(0, Basic::Closed);
        sim.run_until(|s| s.ues[0].published == 2 && s.ues[1].seen.last() == Some(&Basic::Closed));
        assert_eq!(sim.ues[0].published, 2, "seed {seed}");
        assert_eq!(
            sim.ues[1].seen.last(),
            Some(&Basic::Closed),
            "seed {seed}: {:?}",
            sim.ues[1].seen
        );
        // SMS over IP: a concatenated UCS-2 text from ue0 to ue1 through
        // the service centre (MO, then MT), every part acknowledged.
        let text = "Привет, это длинное сообщение через IMS: SigComp, ESP и потери. ".repeat(2);
        let parts = sim.sms(0, 1, &text);
        assert!(parts >= 2, "{parts} parts");
        let received = |s: &Sim| {
            s.ues[1]
                .sms_events
                .iter()
                .any(|e| matches!(e, UeEvent::Received { .. }))
        };
        let submitted = |s: &Sim| {
            s.ues[0]
                .sms_events
                .iter()
                .filter(|e| matches!(e, UeEvent::Submitted { .. }))
                .count()
        };
        let delivered = |s: &Sim| {
            s.net
                .centre_events
                .iter()
                .filter(|e| matches!(e, CentreEvent::Delivered { .. }))
                .count()
        };
        sim.run_until(|s| received(s) && submitted(s) >= parts && delivered(s) >= parts);
        // The recipient's RP-ACK for every part reached the centre.
        assert_eq!(
            delivered(sim),
            parts,
            "seed {seed}: {:?}",
            sim.net.centre_events
        );
        assert_eq!(
            submitted(sim),
            parts,
            "seed {seed}: {:?}",
            sim.ues[0].sms_events
        );
        let got: Vec<&UeEvent> = sim.ues[1].sms_events.iter().collect();
        assert!(
            matches!(got.as_slice(), [UeEvent::Received { text: t, .. }] if *t == text),
            "seed {seed}: {got:?}"
        );
        for u in &sim.ues {
            assert_eq!((u.not_to_port_s, u.side.no_sa), (0, 0), "seed {seed}");
        }
        // De-registration ends presence first, while the registration
        // stands (gm::ue::Ua): ue0's publication, ue1's subscription.
        sim.deregister(0);
        sim.deregister(1);
        sim.run_until(|s| s.ues.iter().all(|u| u.deregistered));
        assert!(
            sim.ues.iter().all(|u| u.deregistered),
            "seed {seed}: {:?}",
            sim.failed()
        );
        assert_eq!(
            sim.ues[0].endings,
            ["unsubscribed", "unpublished", "deregistered"],
            "seed {seed}"
        );
        assert_eq!(
            sim.ues[1].endings,
            ["unsubscribed", "deregistered"],
            "seed {seed}"
        );
        assert!(
            sim.net.pcscf.agent().is_empty(),
            "seed {seed}: a watcher left"
        );
    });
}
