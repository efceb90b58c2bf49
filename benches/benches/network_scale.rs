//! The P-CSCF/registrar (`gm::reg::Network`) as its number of UEs grows,
//! with sec-agree and the reg event, as every IMS UE registers: the cost
//! of one UE's whole registration (REGISTER, 401 with SAs, REGISTER over
//! them, 200, SUBSCRIBE to the reg event, NOTIFY and its 200, then the
//! de-registration with its NOTIFY and 200, its SAs lingering for Timer
//! J) while `N` other UEs stay registered and subscribed, against the same
//! with 10 others.
//!
//! Every message is emitted as bytes and parsed again on the other side,
//! and the network's `poll_timeout` is asked after each one, as a server's
//! event loop does. The UEs are `gm::reg::Ue`s, each with its own address.
//! A registration cycle with many UEs should cost what it costs with few:
//! the ratio is the target (<= 1.2x); a per-message scan of every UE's
//! state shows as a ratio that grows with `N`.
//!
//! Both populations run in one process, alternating batch by batch, and
//! the fastest batch of each counts (a shared machine's other load stays
//! out of the ratio).
//!
//! `cargo bench -p benches --bench network_scale [-- N]` (default 5000)

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use gm::reg::{
    Credentials, Flow, Network, NetworkAction, NetworkConfig, OpKey, Random, Subscriber, Ue,
    UeAction, UeConfig,
};
use gm::sip::Message;

const K: [u8; 16] = [
    0xfe, 0xc8, 0x6b, 0xa6, 0xeb, 0x70, 0x7e, 0xd0, 0x89, 0x05, 0x75, 0x7b, 0x1b, 0xb4, 0x4b, 0x8f,
];
const OP: [u8; 16] = [
    0xdb, 0xc5, 0x9a, 0xdc, 0xb6, 0xf9, 0xa0, 0xef, 0x73, 0x54, 0x77, 0xb7, 0xfa, 0xdf, 0x83, 0x74,
];
const DOMAIN: &str = "ims.example.org";
/// Registration cycles per batch.
const BATCH: usize = 50;
const BATCHES: usize = 12;

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

fn pcscf_addr() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 255, 255, 254))
}

/// UE `i`'s address (distinct for every UE).
fn ue_addr(i: usize) -> IpAddr {
    let i = i as u32 + 1;
    IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8))
}

fn impi(i: usize) -> String {
    format!("user{i:06}@{DOMAIN}")
}

fn impu(i: usize) -> String {
    format!("sip:user{i:06}@{DOMAIN}")
}

/// UE `i`'s index from a URI or name-addr naming its IMPU.
fn index_of(s: &str) -> Option<usize> {
    let at = s.find("sip:user")? + "sip:user".len();
    s.get(at..at + 6)?.parse().ok()
}

enum Wire {
    ToNet {
        ue: usize,
        bytes: Vec<u8>,
        flow: Flow,
    },
    NetResponse {
        ue: usize,
        bytes: Vec<u8>,
        flow: Flow,
    },
    NetRequest {
        bytes: Vec<u8>,
        flow: Flow,
    },
    UeResponse {
        bytes: Vec<u8>,
    },
}

struct World {
    net: Network,
    ues: Vec<Option<Ue>>,
    rng: Rng,
    now: Duration,
    queue: VecDeque<Wire>,
    registered: usize,
}

impl World {
    /// A network with `total` subscribers.
    fn new(total: usize) -> World {
        let mut nc = NetworkConfig::new(DOMAIN, pcscf_addr(), 5066, 5068);
        nc.service_routes = vec!["<sip:orig@scscf.ims.example.org;lr>".into()];
        let mut net = Network::new(nc);
        for i in 0..total {
            net.add_subscriber(
                &impi(i),
                Subscriber {
                    k: K,
                    op: OpKey::Op(OP),
                    amf: [0x80, 0x00],
                    sqn: 0,
                    impus: vec![impu(i)],
                },
            );
        }
        World {
            net,
            ues: (0..total).map(|_| None).collect(),
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            now: Duration::from_secs(1),
            queue: VecDeque::new(),
            registered: 0,
        }
    }

    /// UE `i` registers (and subscribes to its reg event).
    fn register(&mut self, i: usize) {
        let mut config = UeConfig::new(
            &impi(i),
            &impu(i),
            DOMAIN,
            ue_addr(i),
            pcscf_addr(),
            (1111, 2222),
            (5062, 5064),
        );
        config.reg_event = true;
        let mut ue = Ue::new(
            config,
            Credentials::Aka {
                k: K,
                op: OpKey::Op(OP),
                sqn_ms: 0,
            },
            &mut self.rng,
        );
        let acts = ue.register(&mut self.rng);
        self.ues[i] = Some(ue);
        self.ue_do(i, acts);
        self.pump();
    }

    /// UE `i` de-registers.
    fn deregister(&mut self, i: usize) {
        let acts = self.ues[i].as_mut().unwrap().deregister(&mut self.rng);
        self.ue_do(i, acts);
        self.pump();
        self.ues[i] = None;
    }

    fn ue_do(&mut self, ue: usize, acts: Vec<UeAction>) {
        for a in acts {
            match a {
                UeAction::Send { request, flow } => self.queue.push_back(Wire::ToNet {
                    ue,
                    bytes: request.to_bytes(),
                    flow,
                }),
                UeAction::Respond { response, .. } => self.queue.push_back(Wire::UeResponse {
                    bytes: response.to_bytes(),
                }),
                UeAction::Registered(_) => self.registered += 1,
                _ => {}
            }
        }
    }

    fn net_do(&mut self, ue: usize, acts: Vec<NetworkAction>, flow: Flow) {
        for a in acts {
            match a {
                NetworkAction::Respond(m) => self.queue.push_back(Wire::NetResponse {
                    ue,
                    bytes: m.to_bytes(),
                    flow,
                }),
                NetworkAction::Notify { request, flow } => self.queue.push_back(Wire::NetRequest {
                    bytes: request.to_bytes(),
                    flow,
                }),
                _ => {}
            }
        }
    }

    /// Carries messages until both sides are quiet.
    fn pump(&mut self) {
        while let Some(w) = self.queue.pop_front() {
            match w {
                Wire::ToNet { ue, bytes, flow } => {
                    let req = Message::parse(&bytes).unwrap();
                    let acts = self
                        .net
                        .on_request(&req, ue_addr(ue), flow, self.now, &mut self.rng)
                        .expect("REGISTER and SUBSCRIBE are the network's");
                    self.net_do(ue, acts, flow);
                }
                Wire::NetResponse { ue, bytes, flow } => {
                    let resp = Message::parse(&bytes).unwrap();
                    if let Some(u) = self.ues[ue].as_mut() {
                        let acts = u.on_response(&resp, flow, self.now, &mut self.rng);
                        self.ue_do(ue, acts);
                    }
                }
                Wire::NetRequest { bytes, flow } => {
                    let req = Message::parse(&bytes).unwrap();
                    let ue = req
                        .header("To")
                        .and_then(index_of)
                        .expect("a NOTIFY to one of the UEs");
                    if let Some(u) = self.ues[ue].as_mut() {
                        if let Some(acts) = u.on_request(&req, flow, self.now, &mut self.rng) {
                            self.ue_do(ue, acts);
                        }
                    }
                }
                Wire::UeResponse { bytes, .. } => {
                    let resp = Message::parse(&bytes).unwrap();
                    let acts = self.net.on_response(&resp, self.now);
                    self.net_do(usize::MAX, acts, Flow::Unprotected);
                }
            }
            // A server's event loop asks for its next timer after every
            // message.
            std::hint::black_box(self.net.poll_timeout());
        }
    }

    /// Time passes by `d`: the network's timers run.
    fn advance(&mut self, d: Duration) {
        self.now += d;
        if self.net.poll_timeout().is_some_and(|t| t <= self.now) {
            let acts = self.net.handle_timeout(self.now);
            self.net_do(usize::MAX, acts, Flow::Unprotected);
            self.pump();
        }
    }
}

/// A world with `resident` UEs registered and subscribed, and room for
/// the cycling ones after them.
fn populated(resident: usize, cycling: usize) -> World {
    let mut w = World::new(resident + cycling);
    for i in 0..resident {
        w.register(i);
    }
    assert_eq!(w.registered, resident, "every resident UE registered");
    w
}

/// One batch of registration cycles; the time per cycle, in us.
fn batch(w: &mut World, resident: usize, next: &mut usize, cycling: usize) -> f64 {
    let before = w.registered;
    let t = Instant::now();
    for _ in 0..BATCH {
        let i = resident + *next % cycling;
        *next += 1;
        w.register(i);
        w.deregister(i);
        w.advance(Duration::from_millis(1));
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / BATCH as f64;
    assert_eq!(w.registered - before, BATCH, "every cycle registered");
    us
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5000);
    let cycling = BATCH * BATCHES;
    eprintln!("registering {n} resident UEs (and 10 for the small network)...");
    let mut small = populated(10, cycling);
    let mut large = populated(n, cycling);
    let (mut next_s, mut next_l) = (0, 0);
    let (mut best_s, mut best_l) = (f64::MAX, f64::MAX);
    for _ in 0..BATCHES {
        best_s = best_s.min(batch(&mut small, 10, &mut next_s, cycling));
        best_l = best_l.min(batch(&mut large, n, &mut next_l, cycling));
    }
    println!(
        "network_scale: one UE's registration cycle (register, subscribe, notify, de-register)"
    );
    println!("  with 10 other UEs registered:   {best_s:8.1} us");
    println!("  with {n} other UEs registered: {best_l:8.1} us");
    println!(
        "  ratio: {:.2}x (target <= 1.2x; fastest of {BATCHES} batches of {BATCH})",
        best_l / best_s
    );
}
