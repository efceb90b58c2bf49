//! `gm_roles`: the two Gm roles, `gm::network::Pcscf` and `gm::ue::Ua`,
//! in memory, after an honest registration of two UEs, driven by a script
//! the fuzzer writes: hostile datagrams (raw bytes, or honest messages of
//! the run mutated) on any flow to either side, the honest traffic
//! delivered, lost, reordered or duplicated, time advanced, and the UE's
//! commands.
//!
//! Invariants, besides never panicking: a UE with an SA set installed
//! sends nothing in clear, and the network sends every request to a UE
//! over the SAs it holds for it (TS 33.203 §7: once the SAs exist,
//! everything protected goes over them; answers to requests that came in
//! clear may go back in clear).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use gm::network::{Addresses, Links, Output as NetOutput, Pcscf};
use gm::presence::{Agent, Basic, Compositor};
use gm::reg::{
    Credentials, Flow, Network, NetworkConfig, OpKey, Random, SaSet, Side, Subscriber, Ue, UeConfig,
};
use gm::sip::Message;
use gm::sms::service::{SmsCentre, SmsUe};
use gm::txn::{Protocol, Reliability, Timers, Transactions};
use gm::ue::{Output, Settings, Ua};

const UES: usize = 2;
const K: [u8; 16] = [0x11; 16];
const OPC: [u8; 16] = [0x22; 16];
const DOMAIN: &str = "ims.example.org";
const CENTRE: &str = "sip:+15555550000@ims.example.org";
/// The network's port-c, port-s and second port-c.
const NET_PORTS: [u16; 3] = [7100, 7101, 7102];
/// Where both sides send and receive in clear.
const PLAIN: u16 = 5060;
/// The most script steps and datagrams delivered per run (a run stays
/// short whatever the input).
const MAX_STEPS: usize = 64;
const MAX_DELIVERIES: usize = 400;

/// The fuzz target: see the module documentation.
pub fn gm_roles(data: &[u8]) {
    let mut w = World::new();
    w.register_all();
    let mut input = Input { data, at: 0 };
    for _ in 0..MAX_STEPS {
        let Some(op) = input.byte() else { break };
        match op % 8 {
            0 => {
                let (to_network, ue, from, to) = w.endpoints(&mut input);
                let len = usize::from(input.byte().unwrap_or(0)) * 4;
                let bytes = input.take(len).to_vec();
                w.deliver(Datagram {
                    to_network,
                    ue,
                    from,
                    to,
                    bytes,
                });
            }
            1 => {
                let Some(d) = w.mutated(&mut input) else {
                    continue;
                };
                w.deliver(d);
            }
            2 => w.run(usize::from(input.byte().unwrap_or(0))),
            3 => {
                let n = usize::from(input.byte().unwrap_or(0)) % (w.wire.len() + 1);
                w.wire.drain(..n);
            }
            4 => {
                let secs = u64::from(input.byte().unwrap_or(0)).pow(2);
                w.advance(Duration::from_millis(secs * 100));
            }
            5 => w.command(&mut input),
            6 => {
                let (a, b) = (input.byte().unwrap_or(0), input.byte().unwrap_or(0));
                let n = w.wire.len();
                if n > 1 {
                    w.wire.swap(usize::from(a) % n, usize::from(b) % n);
                }
            }
            _ => {
                let a = usize::from(input.byte().unwrap_or(0));
                if let Some(d) = w.wire.get(a % w.wire.len().max(1)).cloned() {
                    w.wire.push(d);
                }
            }
        }
    }
    // What the script left: delivered, and the timers run for a while.
    w.run(MAX_DELIVERIES);
    w.advance(Duration::from_secs(40));
    w.run(MAX_DELIVERIES);
}

/// The fuzzer's bytes, read front to back; zeros once they run out.
struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = self.data.get(self.at).copied();
        self.at += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte().unwrap_or(0), self.byte().unwrap_or(0)])
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let from = self.at.min(self.data.len());
        let to = from.saturating_add(n).min(self.data.len());
        self.at = self.at.saturating_add(n);
        self.data.get(from..to).unwrap_or_default()
    }
}

/// A deterministic xorshift.
struct Rng(u64);

impl Random for Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

struct Udp;

impl Links for Udp {
    fn protocol(&self, _: SocketAddr) -> Protocol {
        Protocol::Udp
    }
}

fn pcscf_addr() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))
}

fn ue_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + i as u8))
}

fn impi(i: usize) -> String {
    format!("ue{i}@{DOMAIN}")
}

fn impu(i: usize) -> String {
    format!("sip:ue{i}@{DOMAIN}")
}

fn number(i: usize) -> String {
    format!("1555555010{i}")
}

/// UE `i`'s two client ports and its server port.
fn ue_ports(i: usize) -> [u16; 3] {
    let base = 6100 + 100 * i as u16;
    [base, base + 2, base + 1]
}

/// Whether `a` and `b` are the same SA set (the same SPIs both ways).
fn same_sas(a: &SaSet, b: &SaSet) -> bool {
    let key = |s: &SaSet| {
        let (u, p) = (s.ue_offer(), s.pcscf_offer());
        (u.spi_c, u.spi_s, p.spi_c, p.spi_s)
    };
    key(a) == key(b)
}

/// A datagram on the wire: to the network or to UE `ue`.
#[derive(Clone)]
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
    /// Every honest datagram so far: what mutations start from.
    seen: Vec<Datagram>,
    /// Each UE's SA sets, as its outputs installed and removed them.
    installed: Vec<Vec<SaSet>>,
    registered: Vec<bool>,
}

impl World {
    fn new() -> World {
        let mut rng = Rng(7);
        let mut nc = NetworkConfig::new(DOMAIN, pcscf_addr(), NET_PORTS[0], NET_PORTS[1]);
        nc.alt_port_c = Some(NET_PORTS[2]);
        let mut net = Network::new(nc);
        let mut centre = SmsCentre::new(gm::sms::Address::international("15555550000"));
        let mut impus = HashMap::new();
        let mut ues = Vec::new();
        for i in 0..UES {
            net.add_subscriber(
                &impi(i),
                Subscriber {
                    k: K,
                    op: OpKey::Opc(OPC),
                    amf: [0x80, 0],
                    sqn: 32,
                    impus: Vec::new(),
                },
            );
            impus.insert(impi(i), vec![impu(i)]);
            centre.subscriber(&number(i), &impu(i));
            let [port_c, _, port_s] = ue_ports(i);
            let mut config = UeConfig::new(
                &impi(i),
                &impu(i),
                DOMAIN,
                ue_addr(i),
                pcscf_addr(),
                (0x1000 + i as u32, 0x2000 + i as u32),
                (port_c, port_s),
            );
            config.expires = 600;
            let creds = Credentials::Aka {
                k: K,
                op: OpKey::Opc(OPC),
                sqn_ms: 0,
            };
            let ue = Ue::new(config, creds, &mut rng);
            let settings = Settings {
                impu: impu(i),
                presentity: impu(i),
                pcscf: SocketAddr::new(pcscf_addr(), PLAIN),
                local: SocketAddr::new(ue_addr(i), PLAIN),
                protocol: Protocol::Udp,
                sigcomp_id: None,
                presence_expires: 3600,
                sms_centre: CENTRE.to_owned(),
            };
            let sms = SmsUe::new(gm::sms::Address::international("15555550000"));
            ues.push(Ua::new(
                ue,
                Transactions::new(Timers::default()),
                sms,
                settings,
            ));
        }
        let resources: Vec<String> = (0..UES).map(impu).collect();
        let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
        let agent = Agent::new(
            Compositor::new(&resources, 3600, 60, 7200),
            &format!("sip:{}", SocketAddr::new(pcscf_addr(), NET_PORTS[1])),
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
                local: SocketAddr::new(pcscf_addr(), PLAIN),
                sent_by: SocketAddr::new(pcscf_addr(), NET_PORTS[1]),
            },
        );
        World {
            net,
            ues,
            rng,
            now: Duration::ZERO,
            wire: Vec::new(),
            seen: Vec::new(),
            installed: vec![Vec::new(); UES],
            registered: vec![false; UES],
        }
    }

    /// Both UEs register (honestly, nothing lost), and UE 0 publishes and
    /// watches UE 1, so that the script starts from a network with
    /// registrations, SAs, a publication and a subscription.
    fn register_all(&mut self) {
        for i in 0..UES {
            self.ues[i].register(self.now, &mut self.rng);
            self.drain_ue(i);
        }
        self.run(MAX_DELIVERIES);
        let (now, rng) = (self.now, &mut self.rng);
        if self.registered.iter().all(|r| *r) {
            let _ = self.ues[0].publish(Basic::Open, None, now, rng);
            let _ = self.ues[0].subscribe(&impu(1), now, rng);
            self.drain_ue(0);
            self.run(MAX_DELIVERIES);
        }
        assert!(
            self.registered.iter().all(|r| *r),
            "the honest registration failed: {:?}",
            self.registered
        );
    }

    /// Carries out UE `i`'s outputs.
    fn drain_ue(&mut self, i: usize) {
        while let Some(o) = self.ues[i].poll_output() {
            match o {
                Output::Transmit(t) => {
                    assert!(
                        t.from_port.is_some() || self.installed[i].is_empty(),
                        "ue{i} sent in clear with SAs installed ({:?}, {} sets): {}",
                        self.now,
                        self.installed[i].len(),
                        String::from_utf8_lossy(&t.bytes)
                    );
                    let d = Datagram {
                        to_network: true,
                        ue: i,
                        from: SocketAddr::new(ue_addr(i), t.from_port.unwrap_or(PLAIN)),
                        to: t.to,
                        bytes: t.bytes,
                    };
                    self.seen.push(d.clone());
                    self.wire.push(d);
                }
                Output::InstallSas { set, .. } => self.installed[i].push(set),
                // A set is known by its SPIs: an update changes its
                // lifetimes, not them.
                Output::RemoveSas(set) => self.installed[i].retain(|s| !same_sas(s, &set)),
                Output::UpdateSas(set) => {
                    for s in &mut self.installed[i] {
                        if same_sas(s, &set) {
                            *s = set.clone();
                        }
                    }
                }
                Output::Event(e) => match e {
                    gm::ue::Event::Registered(_) => self.registered[i] = true,
                    gm::ue::Event::Deregistered | gm::ue::Event::RegistrationFailed { .. } => {
                        self.registered[i] = false;
                    }
                    _ => {}
                },
            }
        }
    }

    fn drain_net(&mut self) {
        while let Some(o) = self.net.poll_output() {
            let NetOutput::Transmit(t) = o else { continue };
            let ue = (0..UES).find(|i| ue_addr(*i) == t.to.ip());
            let Some(ue) = ue else { continue };
            // A request leaves from no port of its own (`from_port` is
            // `None`): its destination decides. While the network holds
            // the UE's SAs, that must be the UE's protected port-s, which
            // the SAs carry from our port-c.
            let sas = self.net.network().sas(&impi(ue)).cloned();
            let request = Message::parse(&t.bytes).is_ok_and(|m| m.is_request());
            let from_port = match (&sas, t.from_port) {
                (_, Some(p)) => p,
                (Some(set), None) if t.to.port() == set.ue_offer().port_s => {
                    set.pcscf_offer().port_c
                }
                _ => PLAIN,
            };
            if let (Some(set), true) = (&sas, request) {
                assert!(
                    t.to.port() == set.ue_offer().port_s && from_port != PLAIN,
                    "a request to ue{ue} outside its SAs ({} -> {}) while the network holds them: {}",
                    from_port,
                    t.to,
                    String::from_utf8_lossy(&t.bytes)
                );
            }
            let d = Datagram {
                to_network: false,
                ue,
                from: SocketAddr::new(pcscf_addr(), from_port),
                to: t.to,
                bytes: t.bytes,
            };
            self.seen.push(d.clone());
            self.wire.push(d);
        }
    }

    /// Delivers `d` as the binaries do: bytes that are not SIP, or a
    /// request whose Via cannot be stamped, are dropped.
    fn deliver(&mut self, d: Datagram) {
        let Ok(mut m) = Message::parse(&d.bytes) else {
            return;
        };
        let (now, rng) = (self.now, &mut self.rng);
        if d.to_network {
            let flow = match d.from.port() {
                PLAIN => Flow::Unprotected,
                ue_port => Flow::Protected {
                    ue_port,
                    pcscf_port: d.to.port(),
                },
            };
            if m.is_request() {
                if gm::txn::stamp_via(&mut m, d.from).is_err() {
                    return;
                }
                let arrived = (
                    flow,
                    flow.local_port(Side::Network),
                    Reliability::Unreliable,
                );
                self.net.on_request(&m, d.from, arrived, now, rng, &mut Udp);
            } else {
                self.net.on_response(&m, now, &mut Udp);
            }
            self.drain_net();
        } else {
            let Some(ua) = self.ues.get_mut(d.ue) else {
                return;
            };
            let flow = match d.to.port() {
                PLAIN => Flow::Unprotected,
                ue_port => Flow::Protected {
                    ue_port,
                    pcscf_port: d.from.port(),
                },
            };
            if m.is_request() {
                if gm::txn::stamp_via(&mut m, d.from).is_err() {
                    return;
                }
                let arrived = (flow, flow.local_port(Side::Ue), Reliability::Unreliable);
                ua.on_request(&m, d.from, arrived, now, rng);
            } else {
                ua.on_response(&m, flow, now, rng);
            }
            self.drain_ue(d.ue);
        }
    }

    /// Delivers up to `n` datagrams of the wire, oldest first.
    fn run(&mut self, n: usize) {
        for _ in 0..n {
            if self.wire.is_empty() {
                break;
            }
            let d = self.wire.remove(0);
            self.deliver(d);
        }
    }

    /// Moves the clock by `by`, running every timer due on the way (and
    /// the UE's re-registrations, with its next SAs as imsua gives them).
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        for _ in 0..MAX_DELIVERIES {
            let next = self
                .ues
                .iter()
                .map(Ua::poll_timeout)
                .chain([self.net.poll_timeout()])
                .flatten()
                .min()
                .filter(|t| *t <= end);
            let Some(next) = next else { break };
            self.now = self.now.max(next);
            let now = self.now;
            for i in 0..UES {
                if self.ues[i].refresh_due(now) {
                    let [a, b, _] = ue_ports(i);
                    if let (Some(port), Some(spis)) = (
                        self.ues[i].next_port_c([a, b]),
                        self.ues[i].fresh_next_spis(&mut self.rng),
                    ) {
                        let _ = self.ues[i].offer_next(spis, port);
                    }
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
        self.now = self.now.max(end);
    }

    /// A hostile datagram's direction and addresses, from the script: to
    /// the network from a UE's address or a stranger's, or to a UE, on
    /// the plain ports or any of the sec-agree ports.
    fn endpoints(&self, input: &mut Input<'_>) -> (bool, usize, SocketAddr, SocketAddr) {
        let b = input.byte().unwrap_or(0);
        let ue = usize::from(b >> 1) % UES;
        let pick = |ports: &[u16], x: u8| {
            ports
                .get(usize::from(x) % (ports.len() + 1))
                .copied()
                .unwrap_or(PLAIN)
        };
        let ue_port = pick(&ue_ports(ue), input.byte().unwrap_or(0));
        let net_port = pick(&NET_PORTS, input.byte().unwrap_or(0));
        let stranger = b & 0x40 != 0;
        let ue_ip = if stranger {
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))
        } else {
            ue_addr(ue)
        };
        let ue_end = SocketAddr::new(ue_ip, ue_port);
        let net_end = SocketAddr::new(pcscf_addr(), net_port);
        if b & 1 == 0 {
            (true, ue, ue_end, net_end)
        } else {
            (false, ue, net_end, SocketAddr::new(ue_addr(ue), ue_port))
        }
    }

    /// An honest datagram of the run, changed: its bytes edited (bytes
    /// overwritten, inserted or removed, a line doubled or dropped, the
    /// message cut), and perhaps sent on another flow or to the other UE.
    fn mutated(&self, input: &mut Input<'_>) -> Option<Datagram> {
        let n = self.seen.len();
        if n == 0 {
            return None;
        }
        let mut d = self.seen.get(usize::from(input.u16()) % n)?.clone();
        let edits = input.byte().unwrap_or(0) % 5;
        for _ in 0..edits {
            let kind = input.byte().unwrap_or(0);
            let len = d.bytes.len();
            let at = usize::from(input.u16()) % (len + 1);
            let v = input.byte().unwrap_or(0);
            match kind % 6 {
                0 => {
                    if let Some(b) = d.bytes.get_mut(at) {
                        *b = v;
                    }
                }
                1 => d.bytes.insert(at, v),
                2 => {
                    let end = (at + usize::from(v % 16)).min(len);
                    d.bytes.drain(at..end);
                }
                3 => d.bytes.truncate(at),
                4 => {
                    // The line at `at`, doubled.
                    let start = d.bytes[..at]
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map_or(0, |p| p + 1);
                    let end = d.bytes[at..]
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(len, |p| at + p + 1);
                    let line = d.bytes[start..end].to_vec();
                    d.bytes.splice(end..end, line);
                }
                _ => {
                    let digits = format!("{}", u32::from(v) * 997);
                    d.bytes.splice(at..at, digits.bytes());
                }
            }
        }
        let route = input.byte().unwrap_or(0);
        if route & 1 != 0 {
            // Another flow: the plain ports, or the other sec-agree ports.
            let (ue_end, net_end) = if d.to_network {
                (&mut d.from, &mut d.to)
            } else {
                (&mut d.to, &mut d.from)
            };
            let ports = ue_ports(d.ue);
            ue_end.set_port(if route & 2 != 0 {
                PLAIN
            } else {
                ports[usize::from(route >> 2) % 3]
            });
            net_end.set_port(if route & 2 != 0 {
                PLAIN
            } else {
                NET_PORTS[usize::from(route >> 4) % 3]
            });
        }
        if route & 0x80 != 0 && !d.to_network {
            d.ue = (d.ue + 1) % UES;
            d.to.set_ip(ue_addr(d.ue));
        }
        Some(d)
    }

    /// One of the UE's commands, as `imsua` gives them.
    fn command(&mut self, input: &mut Input<'_>) {
        let b = input.byte().unwrap_or(0);
        let i = usize::from(b >> 4) % UES;
        let other = (i + 1) % UES;
        let (now, rng) = (self.now, &mut self.rng);
        let ua = &mut self.ues[i];
        let text = "x".repeat(usize::from(input.byte().unwrap_or(0)));
        let _ = match b % 8 {
            0 => ua.message(&impu(other), &text, now, rng).map(drop),
            1 => ua.sms(&number(other), &text, now, rng).map(drop),
            2 => ua.publish(Basic::Closed, Some(&text), now, rng).map(drop),
            3 => ua.unpublish(now, rng).map(drop),
            4 => ua.subscribe(&impu(other), now, rng).map(drop),
            5 => ua.unsubscribe_all(now, rng).map(drop),
            6 => {
                ua.deregister(now, rng);
                Ok(())
            }
            _ => {
                ua.register(now, rng);
                Ok(())
            }
        };
        self.drain_ue(i);
    }
}
