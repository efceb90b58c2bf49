//! The IPsec engine (`sadb::Databases::protect` / `unprotect`, RFC 4301 §5)
//! on hostile and on structured input.
//!
//! A fixed set of configurations is built once, each from one setkey script
//! that gives the SAs and the policies of both directions (`out` and `in`
//! lines with the same selectors and requests), so that one instance of the
//! script protects and another receives. Per configuration there are four
//! instances: the sender, a receiver that only ever sees the sender's
//! packets unmodified as whole IP packets, one that sees them as a socket
//! without the IP header does, and one for everything hostile (raw bytes,
//! mutated packets). The receivers' replay windows therefore only move as
//! the sender's sequence numbers do, and a round trip must succeed however
//! many inputs came before. (Except on an SA without integrity, where a
//! plaintext that is itself an ESP packet for the SA moves the window: why
//! RFC 4303 §3.4.3 forbids anti-replay there.)

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::OnceLock;

use etherparse::{PacketBuilder, PacketBuilderStep};
use ipsec_esp::wire::{self, Fragment, proto};
use ipsec_esp::{Mode, Protocol};
use sadb::ast::Direction;
use sadb::{
    Databases, Incoming, Outgoing, PacketSelector, PolicyAction, Protected, Received, Timestamp,
    Wire,
};

/// The time every packet is processed at (no lifetimes are configured).
const NOW: Timestamp = Timestamp(1_795_314_303);

/// Room around a packet handed to a receiver that must deliver it
/// ([`sadb::UNPROTECT_HEADROOM`] and more).
const RX_ROOM: usize = 64;

/// Room choices for the sender's and the hostile receiver's buffers: from
/// plenty to none (the transform then moves the payload, or refuses).
const ROOMS: [usize; 4] = [256, 0, 40, 72];

/// Ports a structured packet can use (index: a nibble of the input): the Gm
/// ports of the configurations, NAT-T, IKE, and a few others.
const PORTS: [u16; 16] = [
    5060, 5062, 5064, 5066, 5068, 4500, 6000, 7000, 9000, 53, 500, 0, 1, 80, 443, 65535,
];

/// Longest payload put into a structured packet (keeps IP lengths valid).
const MAX_PAYLOAD: usize = 4000;

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";
const A6: &str = "2001:db8::1";
const B6: &str = "2001:db8::2";
const K8: &str = "0x3ffe05014819ffff";
const K16: &str = "0x00112233445566778899aabbccddeeff";
const K16B: &str = "0x0f0e0d0c0b0a09080706050403020100";
const K20: &str = "0x0102030405060708090a0b0c0d0e0f1011121314";
const K24: &str = "0x000102030405060708090a0b0c0d0e0f1011121314151617";
const K32: &str = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// One configuration as written.
struct Spec {
    /// SAs and policies of both directions.
    script: String,
    /// Pairs of hosts that packets go between, either way.
    hosts: &'static [(&'static str, &'static str)],
    /// Pairs of SA end points: the outer addresses of header-stripped
    /// input in the raw mode, either way.
    peers: &'static [(&'static str, &'static str)],
    /// UDP ports of its ESP-in-UDP SAs besides 4500: a UDP packet on one of
    /// them is taken as ESP by a receiver (RFC 3948 §2), so a plaintext on
    /// them cannot come back as it was.
    encap_ports: &'static [u16],
}

/// `spdadd SEL -P out ACTION;` and the same `in`.
fn both(sel: &str, action: &str) -> String {
    format!("spdadd {sel} -P out {action};\nspdadd {sel} -P in {action};\n")
}

/// The configurations; the first input byte picks one.
fn specs() -> Vec<Spec> {
    let esp = format!("-E aes-cbc {K16} -A hmac-sha1 {K20}");
    let esp3 = format!("-E 3des-cbc {K24} -A hmac-md5 {K16}");
    vec![
        // 0: the Gm pair of ports of TS 33.203 in ESP transport mode, IPv4,
        // with every kind of policy beside it.
        Spec {
            script: [
                format!("add {A} {B} esp 0x4444 -m transport -r 8 -u 1 {esp};\n"),
                format!("add {B} {A} esp 0x1111 -m transport -r 8 -u 2 {esp};\n"),
                format!("add {A} {B} esp 0x3333 -m transport -r 8 -u 3 {esp3};\n"),
                format!("add {B} {A} esp 0x2222 -m transport -r 8 -u 4 {esp3};\n"),
                both(&format!("{A}[5062] {B}[5068] udp"), "ipsec esp/transport//unique:1"),
                both(&format!("{B}[5068] {A}[5062] udp"), "ipsec esp/transport//unique:2"),
                both(&format!("{A}[5064] {B}[5066] tcp"), "ipsec esp/transport//unique:3"),
                both(&format!("{B}[5066] {A}[5064] tcp"), "ipsec esp/transport//unique:4"),
                both(&format!("{A}[5060] {B}[5060] udp"), "none"),
                both(&format!("{A}[7000] {B}[any] udp"), "discard"),
                both(&format!("{A} {B} icmp"), "ipsec esp/transport//require"),
                both(&format!("{B} {A} icmp"), "ipsec esp/transport//require"),
                both(&format!("{A}[6000] {B}[6000] udp"), "ipsec ah/transport//use"),
            ]
            .concat(),
            hosts: &[(A, B), ("192.0.2.3", B)],
            peers: &[(A, B)],
            encap_ports: &[],
        },
        // 1: ESP tunnel between IPv6 gateways for two prefixes.
        Spec {
            script: [
                format!(
                    "add {A6} {B6} esp 0x5001 -m tunnel -r 32 -E aes-cbc {K32} -A hmac-sha256 {K32};\n"
                ),
                format!(
                    "add {B6} {A6} esp 0x5002 -m tunnel -r 32 -E aes-cbc {K24} -A aes-xcbc-mac {K16};\n"
                ),
                both(
                    "2001:db8:1::/48 2001:db8:2::/48 any",
                    &format!("ipsec esp/tunnel/{A6}-{B6}/require"),
                ),
                both(
                    "2001:db8:2::/48 2001:db8:1::/48 any",
                    &format!("ipsec esp/tunnel/{B6}-{A6}/require"),
                ),
            ]
            .concat(),
            hosts: &[
                ("2001:db8:1::10", "2001:db8:2::20"),
                (A6, B6),
                ("2001:db8:1::1", "2001:db8:3::1"),
            ],
            peers: &[(A6, B6)],
            encap_ports: &[],
        },
        // 2: AH, transport over IPv4 and tunnel over IPv6.
        Spec {
            script: [
                format!("add {A} {B} ah 0x6001 -m transport -r 8 -A hmac-md5 {K16};\n"),
                format!("add {B} {A} ah 0x6002 -m transport -r 8 -A hmac-sha256 {K32};\n"),
                format!("add {A6} {B6} ah 0x6003 -m tunnel -A aes-xcbc-mac {K16};\n"),
                format!("add {B6} {A6} ah 0x6004 -m tunnel -A aes-cmac {K16B};\n"),
                both(&format!("{A} {B} any"), "ipsec ah/transport//require"),
                both(&format!("{B} {A} any"), "ipsec ah/transport//require"),
                both(&format!("{A6} {B6} any"), &format!("ipsec ah/tunnel/{A6}-{B6}/require")),
                both(&format!("{B6} {A6} any"), &format!("ipsec ah/tunnel/{B6}-{A6}/require")),
            ]
            .concat(),
            hosts: &[(A, B), (A6, B6)],
            peers: &[(A, B), (A6, B6)],
            encap_ports: &[],
        },
        // 3: ESP in UDP (RFC 3948): a tunnel on 4500 for IPv4 prefixes, and
        // transport mode on the Gm ports over IPv6.
        Spec {
            script: [
                format!(
                    "add {A}[4500] {B}[4500] esp-udp 0x7001 -m tunnel -E aes-cbc {K16} -A aes-cmac {K16B};\n"
                ),
                format!(
                    "add {B}[4500] {A}[4500] esp-udp 0x7002 -m tunnel -E aes-cbc {K16} -A hmac-sha1 {K20};\n"
                ),
                both("10.1.0.0/16 10.2.0.0/16 any", &format!("ipsec esp/tunnel/{A}-{B}/require")),
                both("10.2.0.0/16 10.1.0.0/16 any", &format!("ipsec esp/tunnel/{B}-{A}/require")),
                format!(
                    "add {A6}[5062] {B6}[5068] esp-udp 0x7003 -m transport -E null -A hmac-sha256 {K32};\n"
                ),
                format!(
                    "add {B6}[5068] {A6}[5062] esp-udp 0x7004 -m transport -E des-cbc {K8} -A hmac-md5 {K16};\n"
                ),
                both(&format!("{A6} {B6} udp"), "ipsec esp/transport//require"),
                both(&format!("{B6} {A6} udp"), "ipsec esp/transport//require"),
                both(&format!("{A6} {B6} tcp"), "ipsec esp/transport//use"),
            ]
            .concat(),
            hosts: &[("10.1.0.5", "10.2.0.9"), (A, B), (A6, B6)],
            peers: &[(A, B), (A6, B6)],
            encap_ports: &[5062, 5068],
        },
        // 4: a bundle (ESP transport inside AH tunnel) over IPv4; over IPv6
        // ESP without integrity (encryption only) and ESP-NULL.
        Spec {
            script: [
                format!("add {A} {B} esp 0x1020 -m transport {esp};\n"),
                format!("add {A} {B} ah 0x1021 -m tunnel -A hmac-sha1 {K20};\n"),
                format!("add {B} {A} esp 0x1022 -m transport -E null -A hmac-sha256 {K32};\n"),
                format!("add {B} {A} ah 0x1023 -m tunnel -A hmac-md5 {K16};\n"),
                both(
                    &format!("{A} {B} udp"),
                    &format!("ipsec esp/transport//require ah/tunnel/{A}-{B}/require"),
                ),
                both(
                    &format!("{B} {A} udp"),
                    &format!("ipsec esp/transport//require ah/tunnel/{B}-{A}/require"),
                ),
                format!("add {A6} {B6} esp 0x1024 -m transport -r 4 -E des-cbc {K8};\n"),
                format!("add {B6} {A6} esp 0x1025 -m transport -r 4 -E 3des-cbc {K24};\n"),
                both(&format!("{A6} {B6} any"), "ipsec esp/transport//require"),
                both(&format!("{B6} {A6} any"), "ipsec esp/transport//require"),
            ]
            .concat(),
            hosts: &[(A, B), (A6, B6)],
            peers: &[(A, B), (A6, B6)],
            encap_ports: &[],
        },
        // 5: priorities, ICMP type selectors, `use` and `require` with and
        // without SAs (fail closed), over IPv4 and IPv6.
        Spec {
            script: [
                format!(
                    "add {A} {B} esp 0x8001 -m transport -u 7 -E aes-cbc {K16} -A hmac-sha256 {K32};\n"
                ),
                format!(
                    "add {B} {A} esp 0x8002 -m transport -E aes-cbc {K16B} -A hmac-sha256 {K32};\n"
                ),
                both(&format!("{A}[5060] {B}[any] udp"), "prio high none"),
                both(&format!("{A} {B} tcp"), "prio def + 1 ipsec esp/transport//unique:7"),
                both(&format!("{A} {B} icmp 8,0"), "discard"),
                both(&format!("{A} {B} icmp 3"), "ipsec esp/transport//use"),
                both(&format!("{A} {B} any"), "prio low ipsec esp/transport//require"),
                both(&format!("{B}[any] {A}[9000] udp"), "ipsec ah/transport//require"),
                both(&format!("{B} {A} any"), "ipsec esp/transport//require"),
                both(&format!("{A6} {B6} icmp6 135"), "none"),
                both(&format!("{A6} {B6} any"), "ipsec esp/transport//require"),
                both(&format!("{B6} {A6} any"), "ipsec esp/transport//use"),
            ]
            .concat(),
            hosts: &[(A, B), (A6, B6)],
            peers: &[(A, B), (A6, B6)],
            encap_ports: &[],
        },
        // 6: SAs but no policy: everything leaves in clear, and what comes
        // in through an SA is delivered.
        Spec {
            script: [
                format!("add {A} {B} esp 0x9101 -m transport {esp};\n"),
                format!("add {B} {A} ah 0x9102 -m tunnel -A hmac-sha1 {K20};\n"),
                format!("add {A6}[4500] {B6}[4500] esp-udp 0x9103 -m tunnel {esp};\n"),
            ]
            .concat(),
            hosts: &[(A, B), (A6, B6)],
            peers: &[(A, B), (A6, B6)],
            encap_ports: &[],
        },
        // 7: nothing at all.
        Spec {
            script: String::new(),
            hosts: &[(A, B), (A6, B6)],
            peers: &[(A, B), (A6, B6)],
            encap_ports: &[],
        },
        // 8: an IPv4 tunnel between prefixes without replay protection,
        // `use` one way and `require` the other, with a bypass for DNS.
        Spec {
            script: [
                format!(
                    "add {A} {B} esp 0x9001 -m tunnel -r 0 -E aes-cbc {K32} -A hmac-sha1 {K20};\n"
                ),
                format!(
                    "add {B} {A} esp 0x9002 -m tunnel -r 0 -E aes-cbc {K32} -A hmac-sha1 {K20};\n"
                ),
                both("10.1.0.0/16[any] 10.2.0.0/16[53] udp", "prio high none"),
                both("10.1.0.0/16 10.2.0.0/16 any", &format!("ipsec esp/tunnel/{A}-{B}/use")),
                both("10.2.0.0/16 10.1.0.0/16 any", &format!("ipsec esp/tunnel/{B}-{A}/require")),
            ]
            .concat(),
            hosts: &[("10.1.2.3", "10.2.3.4"), ("10.1.0.1", "10.3.0.1")],
            peers: &[(A, B)],
            encap_ports: &[],
        },
        // 9: the Gm pair over IPv6, with ICMPv6 errors under `use`.
        Spec {
            script: [
                format!("add {A6} {B6} esp 0x4444 -m transport -r 8 -u 1 {esp};\n"),
                format!("add {B6} {A6} esp 0x1111 -m transport -r 8 -u 2 {esp};\n"),
                both(&format!("{A6}[5062] {B6}[5068] udp"), "ipsec esp/transport//unique:1"),
                both(&format!("{B6}[5068] {A6}[5062] udp"), "ipsec esp/transport//unique:2"),
                both(&format!("{A6} {B6} icmp6 1"), "ipsec esp/transport//use"),
                both(&format!("{B6} {A6} icmp6 1"), "ipsec esp/transport//use"),
            ]
            .concat(),
            hosts: &[(A6, B6)],
            peers: &[(A6, B6)],
            encap_ports: &[],
        },
    ]
}

/// A configuration built: the same script four times.
struct Setup {
    /// Protects everything.
    tx: Databases,
    /// Receives the sender's packets, whole and unmodified.
    rx: Databases,
    /// Receives the sender's packets header-stripped, unmodified.
    rx_stripped: Databases,
    /// Receives raw and mutated bytes.
    hostile: Databases,
    hosts: Vec<(IpAddr, IpAddr)>,
    peers: Vec<(IpAddr, IpAddr)>,
    encap_ports: &'static [u16],
}

fn setups() -> &'static [Setup] {
    static SETUPS: OnceLock<Vec<Setup>> = OnceLock::new();
    SETUPS.get_or_init(|| {
        specs()
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let db = || {
                    let mut d = Databases::new();
                    if let Err(e) = d.apply_script(&s.script, NOW) {
                        panic!("engine configuration {i} does not apply: {e}\n{}", s.script);
                    }
                    d
                };
                let addr = |a: &str| -> IpAddr { a.parse().expect("a literal address") };
                Setup {
                    tx: db(),
                    rx: db(),
                    rx_stripped: db(),
                    hostile: db(),
                    hosts: s.hosts.iter().map(|(a, b)| (addr(a), addr(b))).collect(),
                    peers: s.peers.iter().map(|(a, b)| (addr(a), addr(b))).collect(),
                    encap_ports: s.encap_ports,
                }
            })
            .collect()
    })
}

/// Number of engine configurations (the first input byte is taken modulo
/// this).
pub(crate) fn configurations() -> usize {
    setups().len()
}

/// The `nth` (from 1) packet that a fresh sender of configuration `config`
/// sends for `plain` (a fresh one, so the fuzzer's sender keeps its
/// sequence numbers).
pub(crate) fn protected(config: u8, plain: &[u8], nth: u32) -> Option<Vec<u8>> {
    let spec = specs().into_iter().nth(usize::from(config))?;
    let mut tx = Databases::new();
    tx.apply_script(&spec.script, NOW).ok()?;
    let mut last = None;
    for _ in 0..nth {
        let (mut buf, range) = framed(plain, 256, 256);
        let mut iv = |iv: &mut [u8]| iv.fill(0x5a);
        last = match tx.protect(&mut buf, range, NOW, &mut iv) {
            Outgoing::Protected(p) => buf.get(p.packet).map(<[u8]>::to_vec),
            _ => None,
        };
    }
    last
}

/// The fuzzer's bytes, read front to back; zeros once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
}

/// Target `engine`: the IPsec engine, `sadb::Databases::protect` and
/// `unprotect`.
///
/// Byte 0 picks the configuration. Byte 1: bit 0 clear is the raw mode, set
/// the structure-aware one; bit 1 mutates the protected packet; bits 2-3
/// and 4-5 pick the room before and after the packet in the sender's and
/// the hostile receiver's buffers.
///
/// - Raw: the rest is a packet for the sender to protect (a protected
///   result goes to the receiver, as below), and is given to the hostile
///   receiver as a whole IP packet, as an ESP and an AH payload each way
///   between the configuration's SA end points, and as the payload of UDP
///   datagrams between them on port 4500 and on the ESP-in-UDP ports.
/// - Structure-aware: byte 2 picks the kind of packet (bits 0-2), its
///   direction (bit 3) and the pair of hosts (bits 4-7); byte 3 the source
///   and destination ports (a nibble each, from a table); bytes 4-5 the
///   position and byte 6 the bits of the mutation; the rest is the
///   payload. The kinds: UDP, TCP, ICMP echo, an ICMP error quoting a
///   datagram of the reverse flow, ICMP of any type (the payload starts
///   with type, code and ICMP header bytes 5-8), another IP protocol (the
///   payload starts with its number), and (6, 7) the payload as the
///   packet itself. `etherparse` builds the packet; the sender protects it; the
///   receivers get it whole and header-stripped, and the hostile receiver
///   the mutated copy.
///
/// Invariants: nothing panics; every range returned lies inside its
/// buffer; a protected packet that is not itself IPsec comes back out of
/// the receiver exactly as it went in (header-stripped: tunnel mode exact,
/// transport mode with the same selector and IP payload); a packet whose
/// first matching `out` policy has a `require` request is never sent in
/// clear; a clear packet whose first matching `in` policy has one is never
/// delivered.
pub fn engine(data: &[u8]) {
    let mut input = Input(data);
    let all = setups();
    let Some(setup) = all.get(usize::from(input.byte()) % all.len()) else {
        return;
    };
    let mode = input.byte();
    let head = ROOMS[usize::from(mode >> 2) % 4];
    let tail = ROOMS[usize::from(mode >> 4) % 4];
    if mode & 1 == 0 {
        raw(setup, input.0, head, tail);
    } else {
        structured(setup, input, mode & 2 != 0, head, tail);
    }
}

fn raw(setup: &Setup, bytes: &[u8], head: usize, tail: usize) {
    if let Some((wire, _)) = protect(setup, bytes, head, tail) {
        deliver_exactly(setup, bytes, &wire);
    }
    let mut froms = vec![Received::Ip];
    let pairs = setup.peers.iter().flat_map(|&(a, b)| [(a, b), (b, a)]);
    for (src, dst) in pairs {
        for protocol in [Protocol::Esp, Protocol::Ah] {
            froms.push(Received::Payload { src, dst, protocol });
        }
        for port in setup.encap_ports.iter().chain(&[4500]) {
            froms.push(Received::Udp {
                src: SocketAddr::new(src, *port),
                dst: SocketAddr::new(dst, *port),
            });
        }
    }
    for from in froms {
        unprotect_hostile(setup, bytes, from, head, tail);
    }
}

fn structured(setup: &Setup, mut input: Input<'_>, mutate: bool, head: usize, tail: usize) {
    let kind = input.byte();
    let ports = input.byte();
    let at = input.u16();
    let flip = input.byte().max(1);
    let Some(&(a, b)) = setup
        .hosts
        .get(usize::from(kind >> 4) % setup.hosts.len().max(1))
    else {
        return;
    };
    let (src, dst) = if kind & 8 != 0 { (b, a) } else { (a, b) };
    let sport = PORTS[usize::from(ports >> 4)];
    let dport = PORTS[usize::from(ports & 15)];
    let payload = input.0.get(..MAX_PAYLOAD).unwrap_or(input.0);
    let Some(plain) = build(kind & 7, src, dst, sport, dport, payload) else {
        return;
    };
    let Some((wire, p)) = protect(setup, &plain, head, tail) else {
        return;
    };
    deliver_exactly(setup, &plain, &wire);
    if kind & 7 < 6 {
        deliver_stripped(setup, &plain, &wire, &p);
    }
    if mutate && !wire.is_empty() {
        let mut bad = wire.clone();
        let i = usize::from(at) % bad.len();
        bad[i] ^= flip;
        unprotect_hostile(setup, &bad, Received::Ip, head, tail);
    }
}

/// Builds a plaintext packet from `src` to `dst` of the given kind.
fn build(
    kind: u8,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let ip = || ip_builder(src, dst);
    let v6 = src.is_ipv6();
    let written = match kind {
        0 => ip()?.udp(sport, dport).write(&mut out, payload).is_ok(),
        1 => ip()?
            .tcp(sport, dport, 7, 1024)
            .write(&mut out, payload)
            .is_ok(),
        2 if v6 => ip()?
            .icmpv6_echo_request(1, 2)
            .write(&mut out, payload)
            .is_ok(),
        2 => ip()?
            .icmpv4_echo_request(1, 2)
            .write(&mut out, payload)
            .is_ok(),
        3 => {
            // The error this host sends about a datagram it received from
            // `dst` (RFC 4301 §6.2: mapped to that flow's policy).
            let quoted = {
                let mut q = Vec::new();
                let body = payload.get(..16).unwrap_or(payload);
                ip_builder(dst, src)?
                    .udp(dport, sport)
                    .write(&mut q, body)
                    .ok()?;
                q
            };
            if v6 {
                use etherparse::{Icmpv6Type, icmpv6::DestUnreachableCode};
                let t = Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port);
                ip()?.icmpv6(t).write(&mut out, &quoted).is_ok()
            } else {
                use etherparse::{Icmpv4Type, icmpv4::DestUnreachableHeader};
                let t = Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port);
                ip()?.icmpv4(t).write(&mut out, &quoted).is_ok()
            }
        }
        4 => {
            // ICMP of any type and code: the payload gives them, the rest
            // of the ICMP header and the body (for errors, the quote).
            let (head, body) = match payload.split_first_chunk::<6>() {
                Some((h, body)) => (*h, body),
                None => ([0; 6], payload),
            };
            let [type_u8, code_u8, b5, b6, b7, b8] = head;
            let bytes5to8 = [b5, b6, b7, b8];
            if v6 {
                let t = etherparse::Icmpv6Type::Unknown {
                    type_u8,
                    code_u8,
                    bytes5to8,
                };
                ip()?.icmpv6(t).write(&mut out, body).is_ok()
            } else {
                let t = etherparse::Icmpv4Type::Unknown {
                    type_u8,
                    code_u8,
                    bytes5to8,
                };
                ip()?.icmpv4(t).write(&mut out, body).is_ok()
            }
        }
        5 => {
            // Written by hand: etherparse's builder panics when the number
            // names an IPv6 extension header it was not given.
            let (protocol, body) = payload.split_first().map_or((0, payload), |(p, b)| (*p, b));
            out = ip_packet(src, dst, protocol, body)?;
            true
        }
        // The bytes are the packet (IP options, IPv6 extension headers,
        // fragments, …), with a valid IPv4 header checksum.
        _ => {
            out = payload.to_vec();
            if let Some(h) = ipv4_header(&mut out) {
                wire::fill_ipv4_checksum(h);
            }
            true
        }
    };
    written.then_some(out)
}

fn ip_builder(src: IpAddr, dst: IpAddr) -> Option<PacketBuilderStep<etherparse::IpHeaders>> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(PacketBuilder::ipv4(s.octets(), d.octets(), 64)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(PacketBuilder::ipv6(s.octets(), d.octets(), 64)),
        _ => None,
    }
}

/// An IP packet from `src` to `dst` whose header names `protocol` and
/// which carries `body` (RFC 791 with a valid checksum; RFC 8200).
fn ip_packet(src: IpAddr, dst: IpAddr, protocol: u8, body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(wire::IPV6_HEADER_LEN + body.len());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(wire::IPV4_HEADER_LEN + body.len()).ok()?;
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 64, protocol, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            if let Some(h) = out.get_mut(..wire::IPV4_HEADER_LEN) {
                wire::fill_ipv4_checksum(h);
            }
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u16::try_from(body.len()).ok()?;
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&[protocol, 64]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        _ => return None,
    }
    out.extend_from_slice(body);
    Some(out)
}

/// The IPv4 header (IHL × 4 bytes) at the start of `pkt`, if it is one.
fn ipv4_header(pkt: &mut [u8]) -> Option<&mut [u8]> {
    let first = *pkt.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < wire::IPV4_HEADER_LEN {
        return None;
    }
    pkt.get_mut(..ihl)
}

/// The first `dir` policy that matches `pkt`, if it has a `require` (not
/// `use`) request: its id.
fn first_require(db: &Databases, dir: Direction, pkt: &[u8]) -> Option<u32> {
    let sel = PacketSelector::of_packet(pkt).ok()?;
    let p = db.spd().lookup_linear(dir, &sel)?;
    match &p.action {
        PolicyAction::Ipsec(reqs) if reqs.iter().any(|r| !r.optional()) => Some(p.id),
        _ => None,
    }
}

fn check_range(what: &str, r: &Range<usize>, len: usize) {
    assert!(
        r.start <= r.end && r.end <= len,
        "{what}: range {r:?} outside the {len}-byte buffer"
    );
}

/// `bytes` with `head` and `tail` bytes of room, and where they are.
fn framed(bytes: &[u8], head: usize, tail: usize) -> (Vec<u8>, Range<usize>) {
    let mut buf = vec![0u8; head + bytes.len() + tail];
    buf[head..head + bytes.len()].copy_from_slice(bytes);
    (buf, head..head + bytes.len())
}

/// The sender protects `plain`; the protected packet's bytes and
/// description, if it was protected.
fn protect(setup: &Setup, plain: &[u8], head: usize, tail: usize) -> Option<(Vec<u8>, Protected)> {
    let (mut buf, range) = framed(plain, head, tail);
    let mut n = 0u8;
    let mut iv = |iv: &mut [u8]| {
        n = n.wrapping_add(1);
        iv.fill(n);
    };
    let out = setup.tx.protect(&mut buf, range, NOW, &mut iv);
    if let Some(policy) = first_require(&setup.tx, Direction::Out, plain) {
        assert!(
            !matches!(out, Outgoing::Bypass { .. }),
            "out policy {policy} requires IPsec, but the packet is sent in clear: {out:?}"
        );
    }
    match out {
        Outgoing::Protected(p) => {
            check_range("protect", &p.packet, buf.len());
            let payload = p.payload();
            assert!(
                p.packet.start <= payload.start && payload.end == p.packet.end,
                "protect: payload {payload:?} outside packet {:?}",
                p.packet
            );
            assert!(
                p.header_len <= p.packet.len(),
                "protect: header of {} bytes in a packet of {}",
                p.header_len,
                p.packet.len()
            );
            let wire = buf[p.packet.clone()].to_vec();
            Some((wire, p))
        }
        Outgoing::Bypass { .. } | Outgoing::Discard(_) => None,
    }
}

/// Checks a hostile receiver's verdict on `bytes`.
fn unprotect_hostile(setup: &Setup, bytes: &[u8], from: Received, head: usize, tail: usize) {
    let (mut buf, range) = framed(bytes, head, tail);
    let inc = setup.hostile.unprotect(&mut buf, range, from, NOW);
    if let Incoming::Deliver(d) = &inc {
        check_range("unprotect", &d.packet, buf.len());
        if from == Received::Ip {
            no_clear_under_require(&setup.hostile, &buf[d.packet.clone()], &inc);
        }
    }
}

/// A packet delivered without SAs must not be covered by an `in` policy
/// with a `require` request.
fn no_clear_under_require(db: &Databases, pkt: &[u8], inc: &Incoming) {
    let Incoming::Deliver(d) = inc else {
        return;
    };
    if !d.sas.is_empty() {
        return;
    }
    if let Some(policy) = first_require(db, Direction::In, pkt) {
        panic!("in policy {policy} requires IPsec, but clear text is delivered: {inc:?}");
    }
}

/// Whether a receiver must give `plain` back exactly: it is a whole IP
/// packet that is not itself IPsec (ESP, AH, or UDP on an ESP-in-UDP port),
/// which a receiver would go on to decapsulate.
fn comes_back(setup: &Setup, plain: &[u8]) -> bool {
    let Ok(h) = wire::parse(plain) else {
        return false;
    };
    if matches!(h.inbound.next_header, proto::ESP | proto::AH)
        || matches!(h.upper_protocol, proto::ESP | proto::AH)
    {
        return false;
    }
    if h.upper_protocol == proto::UDP && h.fragment != Fragment::Later {
        let udp = h.upper(plain);
        let port = |i: usize| udp.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let encap = |p: Option<u16>| p.is_some_and(|p| p == 4500 || setup.encap_ports.contains(&p));
        if encap(port(0)) || encap(port(2)) {
            return false;
        }
    }
    true
}

/// `plain` with the IPv4 header checksum zeroed (transport mode rewrites
/// the header and recomputes it), cut to its IP length.
fn normalized(plain: &[u8]) -> Vec<u8> {
    let total = wire::parse(plain).map_or(plain.len(), |h| h.total_len);
    let mut p = plain.get(..total).unwrap_or(plain).to_vec();
    if p.first().is_some_and(|v| v >> 4 == 4) {
        if let Some(c) = p.get_mut(10..12) {
            c.fill(0);
        }
    }
    p
}

/// The receiver gets the sender's protected `wire` as a whole IP packet:
/// it must deliver `plain` as it was.
fn deliver_exactly(setup: &Setup, plain: &[u8], wire: &[u8]) {
    let (mut buf, range) = framed(wire, RX_ROOM, RX_ROOM);
    let inc = setup.rx.unprotect(&mut buf, range, Received::Ip, NOW);
    if let Incoming::Deliver(d) = &inc {
        check_range("unprotect", &d.packet, buf.len());
        no_clear_under_require(&setup.rx, &buf[d.packet.clone()], &inc);
    }
    if !comes_back(setup, plain) {
        return;
    }
    match &inc {
        Incoming::Deliver(d) => assert!(
            normalized(&buf[d.packet.clone()]) == normalized(plain),
            "round trip changed the packet:\nsent      {plain:02x?}\ndelivered {:02x?}",
            &buf[d.packet.clone()]
        ),
        other => panic!(
            "the receiver refused the sender's packet: {other:?}\nplain {plain:02x?}\nwire  {wire:02x?}"
        ),
    }
}

/// The second receiver gets the protected packet as a socket that removes
/// the IP header (and for ESP in UDP the UDP header) does. IPv4 AH cannot
/// be checked so (its ICV covers the Identification, which the socket
/// drops).
fn deliver_stripped(setup: &Setup, plain: &[u8], wire: &[u8], p: &Protected) {
    let from = match p.wire {
        Wire::EspInUdp { sport, dport } => Received::Udp {
            src: SocketAddr::new(p.src, sport),
            dst: SocketAddr::new(p.dst, dport),
        },
        Wire::Esp => Received::Payload {
            src: p.src,
            dst: p.dst,
            protocol: Protocol::Esp,
        },
        Wire::Ah if p.src.is_ipv6() => Received::Payload {
            src: p.src,
            dst: p.dst,
            protocol: Protocol::Ah,
        },
        Wire::Ah => return,
    };
    let start = p.payload().start.saturating_sub(p.packet.start);
    let Some(stripped) = wire.get(start..) else {
        return;
    };
    let (mut buf, range) = framed(stripped, RX_ROOM, RX_ROOM);
    let inc = setup.rx_stripped.unprotect(&mut buf, range, from, NOW);
    if let Incoming::Deliver(d) = &inc {
        check_range("unprotect (stripped)", &d.packet, buf.len());
    }
    if !comes_back(setup, plain) {
        return;
    }
    let Incoming::Deliver(d) = &inc else {
        panic!("the receiver refused the sender's packet without its IP header: {inc:?}");
    };
    let got = &buf[d.packet.clone()];
    let outer = p.sas.iter().last().and_then(|u| setup.tx.sad().get(&u.id));
    if outer.is_some_and(|e| e.sa().mode() == Mode::Tunnel) {
        // Tunnel mode: the inner packet as it was sent.
        assert!(
            normalized(got) == normalized(plain),
            "stripped round trip changed the packet:\nsent      {plain:02x?}\ndelivered {got:02x?}"
        );
        return;
    }
    // Transport mode: the engine writes a fresh IP header from the passed
    // addresses; the selector and the IP payload are the packet's.
    let (Ok(g), Ok(o)) = (wire::parse(got), wire::parse(plain)) else {
        panic!("stripped round trip gave a packet that does not parse: {got:02x?}");
    };
    assert_eq!(
        PacketSelector::of_packet(got).ok(),
        PacketSelector::of_packet(plain).ok(),
        "stripped round trip changed the selector"
    );
    assert!(
        got.get(g.upper_offset..g.total_len) == plain.get(o.upper_offset..o.total_len),
        "stripped round trip changed the IP payload:\nsent      {plain:02x?}\ndelivered {got:02x?}"
    );
}
