//! The Security Policy Database (RFC 4301 §4.4.1).
//!
//! An ordered list of policies. Each has a selector (source and destination
//! prefixes, upper-layer protocol, ports or ICMP type/code), a direction
//! (`in`, `out`, `fwd`), a priority and an action (`discard`, `none` =
//! bypass, or `ipsec` with a list of SA requests). A lookup returns the first
//! policy of the direction whose selector matches (RFC 4301 §4.4.1: "the SPD
//! is ordered ... the first matching entry"); order is by kernel priority
//! value (lower first, as Linux does), then by insertion.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::Error;
use crate::ast::{
    Direction, Endpoint, Family, Level, PRIORITY_DEFAULT, ReqMode, ReqProtocol, ipproto,
    is_icmp_like,
};
use crate::owner::Owner;
use crate::time::Timestamp;

/// A normalized SPD selector (RFC 4301 §4.4.1.1): what a policy matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Source address (as written; matching uses the prefix).
    pub src: IpAddr,
    /// Source prefix length.
    pub src_prefix: u8,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination prefix length.
    pub dst_prefix: u8,
    /// Upper-layer protocol; `None` = any.
    pub protocol: Option<u8>,
    /// Source port; `None` = any.
    pub sport: Option<u16>,
    /// Destination port; `None` = any.
    pub dport: Option<u16>,
    /// ICMP type (ICMP/ICMPv6/MH only); 0 = any, as in the kernel.
    pub icmp_type: u8,
    /// ICMP code; 0 = any.
    pub icmp_code: u8,
}

/// What a packet offers to the selector beyond its addresses and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpperInfo {
    /// No ports (or not available, e.g. a non-first fragment: RFC 4301
    /// §4.4.1.1 OPAQUE); specific port selectors do not match.
    None,
    /// TCP, UDP, SCTP, UDP-Lite ports.
    Ports {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
    },
    /// ICMP / ICMPv6 / MH type and code.
    Icmp {
        /// Type.
        icmp_type: u8,
        /// Code.
        code: u8,
    },
}

/// The selector fields of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacketSelector {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol (next header after extension headers).
    pub protocol: u8,
    /// Ports or ICMP type/code.
    pub upper: UpperInfo,
}

impl PacketSelector {
    /// A UDP packet.
    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        PacketSelector {
            src,
            dst,
            protocol: ipproto::UDP,
            upper: UpperInfo::Ports {
                src: sport,
                dst: dport,
            },
        }
    }

    /// A TCP packet.
    pub fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        PacketSelector {
            protocol: ipproto::TCP,
            ..Self::udp(src, sport, dst, dport)
        }
    }
}

fn prefix_match(net: IpAddr, len: u8, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let len = u32::from(len.min(32));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            (u32::from(n) ^ u32::from(a)) & mask == 0
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let len = u32::from(len.min(128));
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            (u128::from(n) ^ u128::from(a)) & mask == 0
        }
        _ => false,
    }
}

impl Selector {
    /// Whether a packet matches (RFC 4301 §4.4.1.1).
    pub fn matches(&self, p: &PacketSelector) -> bool {
        if !prefix_match(self.src, self.src_prefix, p.src)
            || !prefix_match(self.dst, self.dst_prefix, p.dst)
        {
            return false;
        }
        if let Some(proto) = self.protocol {
            if proto != p.protocol {
                return false;
            }
        }
        if self.sport.is_some() || self.dport.is_some() {
            let UpperInfo::Ports { src, dst } = p.upper else {
                return false;
            };
            if self.sport.is_some_and(|s| s != src) || self.dport.is_some_and(|d| d != dst) {
                return false;
            }
        }
        if self.icmp_type != 0 || self.icmp_code != 0 {
            let UpperInfo::Icmp { icmp_type, code } = p.upper else {
                return false;
            };
            if (self.icmp_type != 0 && self.icmp_type != icmp_type)
                || (self.icmp_code != 0 && self.icmp_code != code)
            {
                return false;
            }
        }
        true
    }

    /// The address family.
    pub fn family(&self) -> Family {
        Family::of(&self.src)
    }

    /// `src/prefix[port] dst/prefix[port] proto` as `setkey -DP` prints it.
    pub fn setkey_format(&self) -> String {
        let max = self.family().max_prefix();
        let icmp_like =
            self.protocol.is_some_and(is_icmp_like) || self.protocol == Some(ipproto::GRE);
        let part = |a: IpAddr, prefix: u8, port: Option<u16>| {
            let mut s = a.to_string();
            if prefix != max {
                s.push_str(&format!("/{prefix}"));
            }
            if !icmp_like {
                match port {
                    None => s.push_str("[any]"),
                    Some(p) => s.push_str(&format!("[{p}]")),
                }
            }
            s
        };
        let mut s = format!(
            "{} {} ",
            part(self.src, self.src_prefix, self.sport),
            part(self.dst, self.dst_prefix, self.dport)
        );
        match self.protocol {
            None => s.push_str("any"),
            Some(p) => match crate::dump::dump_protocol_name(p) {
                Some(n) => s.push_str(n),
                None => s.push_str(&p.to_string()),
            },
        }
        if self.protocol.is_some_and(is_icmp_like) && (self.icmp_type != 0 || self.icmp_code != 0) {
            s.push_str(&format!(" {},{}", self.icmp_type, self.icmp_code));
        }
        s
    }
}

/// One SA request of an `ipsec` policy, resolved for the databases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaRequest {
    /// ESP or AH.
    pub protocol: ReqProtocol,
    /// Transport or tunnel.
    pub mode: ReqMode,
    /// Tunnel end points (sender, receiver); for transport mode the packet's
    /// own addresses are used when absent.
    pub endpoints: Option<(Endpoint, Endpoint)>,
    /// Level as written.
    pub level: Level,
    /// The reqid an SA must have (`unique:N` → N, `unique` → a generated
    /// value above 16383 as Linux does); 0 = any SA.
    pub reqid: u32,
}

impl SaRequest {
    /// Whether traffic may go in clear when no SA is available (`use`).
    /// `default` is treated as `require` (fail closed), as Linux does.
    pub fn optional(&self) -> bool {
        self.level == Level::Use
    }
}

/// What a policy does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PolicyAction {
    /// Drop matching packets.
    Discard,
    /// No IPsec processing (setkey `none`).
    Bypass,
    /// Protect with SAs for these requests, innermost first.
    Ipsec(Vec<SaRequest>),
}

/// Counters of one policy and its last use: atomics, shared by every
/// snapshot of the SPD that holds the policy.
///
/// A packet that passes costs one atomic add: packets and bytes share one
/// word (packets in the top 16 bits, bytes in the low 48), and the thread
/// whose add fills half of either field moves that half to its own wide
/// counter. A reader may see a move half done (off by 2^15 packets or
/// 2^47 bytes for an instant); the counts never drift.
#[derive(Debug, Default)]
pub struct PolicyStats {
    traffic: AtomicU64,
    packets_moved: AtomicU64,
    bytes_moved: AtomicU64,
    drops: AtomicU64,
    /// Seconds of the last use, plus one (0: never).
    last_used: AtomicU64,
}

/// The packet unit of [`PolicyStats::traffic`].
const PACKET: u64 = 1 << 48;
/// Bytes field of [`PolicyStats::traffic`].
const BYTES: u64 = PACKET - 1;
/// Half of the packets field, moved out when reached.
const PACKETS_HALF: u64 = 1 << 15;
/// Half of the bytes field, moved out when reached.
const BYTES_HALF: u64 = 1 << 47;

/// A policy's counters as they are now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyCounters {
    /// Packets that matched and went on (protected, bypassed, accepted).
    pub packets: u64,
    /// Their bytes (whole plaintext IP packets).
    pub bytes: u64,
    /// Packets the policy made us drop (discard, no usable SA, rejected).
    pub drops: u64,
}

impl PolicyStats {
    /// Records a lookup that matched at `now` (written only when the second
    /// changes, so that packets on several cores do not fight over it).
    pub(crate) fn touch(&self, now: Timestamp) {
        let v = now.0.saturating_add(1);
        if self.last_used.load(Relaxed) != v {
            self.last_used.store(v, Relaxed);
        }
    }

    /// Counts a packet of `bytes` (an IP packet: at most 65535) that
    /// matched and went on.
    pub fn pass(&self, bytes: usize) {
        let bytes = (bytes as u64).min(0xffff);
        let prev = self.traffic.fetch_add(PACKET + bytes, Relaxed);
        if prev >> 48 == PACKETS_HALF - 1 {
            self.packets_moved.fetch_add(PACKETS_HALF, Relaxed);
            self.traffic.fetch_sub(PACKETS_HALF * PACKET, Relaxed);
        }
        let b = prev & BYTES;
        if b < BYTES_HALF && b + bytes >= BYTES_HALF {
            self.bytes_moved.fetch_add(BYTES_HALF, Relaxed);
            self.traffic.fetch_sub(BYTES_HALF, Relaxed);
        }
    }

    /// Counts a packet the policy made us drop.
    pub fn drop_one(&self) {
        self.drops.fetch_add(1, Relaxed);
    }

    /// The counters.
    pub fn counters(&self) -> PolicyCounters {
        let t = self.traffic.load(Relaxed);
        PolicyCounters {
            packets: self.packets_moved.load(Relaxed) + (t >> 48),
            bytes: self.bytes_moved.load(Relaxed) + (t & BYTES),
            drops: self.drops.load(Relaxed),
        }
    }

    /// When a lookup last matched.
    pub fn last_used(&self) -> Option<Timestamp> {
        match self.last_used.load(Relaxed) {
            0 => None,
            t => Some(Timestamp(t - 1)),
        }
    }
}

/// An SPD entry.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Policy id (`spid`), unique in the SPD.
    pub id: u32,
    /// Selector.
    pub selector: Selector,
    /// Direction.
    pub direction: Direction,
    /// Kernel priority value (lower is earlier; default 0x80000000).
    pub priority: u32,
    /// Action.
    pub action: PolicyAction,
    /// When the policy was added.
    pub created: Timestamp,
    /// Counters and last use (shared by the snapshots holding the policy).
    pub stats: Arc<PolicyStats>,
    /// The client that installed it, if it said.
    pub owner: Option<Owner>,
    pub(crate) seq: u64,
}

impl PartialEq for Policy {
    fn eq(&self, o: &Policy) -> bool {
        (
            self.id,
            &self.selector,
            self.direction,
            self.priority,
            &self.action,
            self.created,
        ) == (
            o.id,
            &o.selector,
            o.direction,
            o.priority,
            &o.action,
            o.created,
        )
    }
}

impl Eq for Policy {}

impl Policy {
    /// When a lookup last matched it.
    pub fn last_used(&self) -> Option<Timestamp> {
        self.stats.last_used()
    }

    /// Its counters.
    pub fn counters(&self) -> PolicyCounters {
        self.stats.counters()
    }

    /// Lookup order: priority, then insertion.
    fn rank(&self) -> Rank {
        (u128::from(self.priority) << 64) | u128::from(self.seq)
    }
}

/// Lookup order of a policy: kernel priority in the high half, insertion
/// sequence in the low half (smaller is earlier).
type Rank = u128;

/// Which selector fields a policy pins (tuple space search: policies with
/// the same shape are found with one hash lookup of the packet's fields
/// masked to that shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Shape {
    src_v6: bool,
    dst_v6: bool,
    src_prefix: u8,
    dst_prefix: u8,
    protocol: bool,
    sport: bool,
    dport: bool,
    icmp_type: bool,
    icmp_code: bool,
}

/// A packet's or a policy's selector fields masked to a [`Shape`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ShapeKey {
    src: u128,
    dst: u128,
    ports: u32,
    protocol: u8,
    icmp: u16,
}

impl Hash for ShapeKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let fold = |v: u128| (v >> 64) as u64 ^ (v as u64).rotate_left(29);
        state.write_u64(
            fold(self.src)
                ^ fold(self.dst).rotate_left(17)
                ^ (u64::from(self.ports) << 24
                    | u64::from(self.icmp) << 8
                    | u64::from(self.protocol)),
        );
    }
}

fn addr_bits(a: IpAddr) -> (u128, bool) {
    match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)), false),
        IpAddr::V6(v) => (u128::from(v), true),
    }
}

fn masked(a: u128, v6: bool, prefix: u8) -> u128 {
    let width = if v6 { 128 } else { 32 };
    let len = u32::from(prefix).min(width);
    let mask = u128::MAX.checked_shl(width - len).unwrap_or(0)
        & if v6 { u128::MAX } else { u128::from(u32::MAX) };
    a & mask
}

impl Shape {
    fn of(sel: &Selector) -> Shape {
        let icmp = sel.icmp_type != 0 || sel.icmp_code != 0;
        Shape {
            src_v6: sel.src.is_ipv6(),
            dst_v6: sel.dst.is_ipv6(),
            src_prefix: sel.src_prefix,
            dst_prefix: sel.dst_prefix,
            protocol: sel.protocol.is_some(),
            sport: sel.sport.is_some(),
            dport: sel.dport.is_some(),
            icmp_type: icmp && sel.icmp_type != 0,
            icmp_code: icmp && sel.icmp_code != 0,
        }
    }

    /// Whether the shape asks for ports or ICMP fields at all (then a
    /// packet without them cannot match: RFC 4301 §4.4.1.1).
    fn wants_ports(&self) -> bool {
        self.sport || self.dport
    }

    fn wants_icmp(&self) -> bool {
        self.icmp_type || self.icmp_code
    }

    fn key_of_selector(&self, sel: &Selector) -> ShapeKey {
        let (s, _) = addr_bits(sel.src);
        let (d, _) = addr_bits(sel.dst);
        ShapeKey {
            src: masked(s, self.src_v6, self.src_prefix),
            dst: masked(d, self.dst_v6, self.dst_prefix),
            protocol: sel.protocol.unwrap_or(0),
            ports: u32::from(sel.sport.unwrap_or(0)) << 16 | u32::from(sel.dport.unwrap_or(0)),
            icmp: u16::from(sel.icmp_type) << 8 | u16::from(sel.icmp_code),
        }
    }

    /// The packet's key under this shape, or `None` when the packet cannot
    /// match any policy of the shape (other family, no ports, no ICMP).
    fn key_of_packet(&self, p: &PacketSelector) -> Option<ShapeKey> {
        let (s, s6) = addr_bits(p.src);
        let (d, d6) = addr_bits(p.dst);
        if s6 != self.src_v6 || d6 != self.dst_v6 {
            return None;
        }
        let ports = if self.wants_ports() {
            let UpperInfo::Ports { src, dst } = p.upper else {
                return None;
            };
            u32::from(if self.sport { src } else { 0 }) << 16
                | u32::from(if self.dport { dst } else { 0 })
        } else {
            0
        };
        let icmp = if self.wants_icmp() {
            let UpperInfo::Icmp { icmp_type, code } = p.upper else {
                return None;
            };
            u16::from(if self.icmp_type { icmp_type } else { 0 }) << 8
                | u16::from(if self.icmp_code { code } else { 0 })
        } else {
            0
        };
        Some(ShapeKey {
            src: masked(s, s6, self.src_prefix),
            dst: masked(d, d6, self.dst_prefix),
            protocol: if self.protocol { p.protocol } else { 0 },
            ports,
            icmp,
        })
    }
}

/// The policies of one shape: key -> (rank, slot), in rank order (normally
/// one per key: several only when selectors differ in bits the prefix
/// masks, e.g. 10.0.0.1/24 and 10.0.0.2/24).
#[derive(Clone, Debug)]
struct ShapeTable {
    shape: Shape,
    /// No policy of the table ranks before this (a lower bound: removals
    /// leave it, which only costs a probe).
    first: Rank,
    table: HashMap<ShapeKey, Vec<(Rank, u32)>, BuildHasherDefault<crate::sad::SadHasher>>,
}

/// The index of one direction: its shape tables, by `first` rank.
#[derive(Clone, Debug, Default)]
struct DirIndex {
    shapes: Vec<ShapeTable>,
}

impl DirIndex {
    fn insert(&mut self, sel: &Selector, rank: Rank, slot: u32) {
        let shape = Shape::of(sel);
        let key = shape.key_of_selector(sel);
        let i = match self.shapes.iter().position(|t| t.shape == shape) {
            Some(i) => i,
            None => {
                self.shapes.push(ShapeTable {
                    shape,
                    first: rank,
                    table: HashMap::default(),
                });
                self.shapes.len() - 1
            }
        };
        if let Some(t) = self.shapes.get_mut(i) {
            let v = t.table.entry(key).or_default();
            let at = v.partition_point(|&(r, _)| r < rank);
            v.insert(at, (rank, slot));
            t.first = t.first.min(rank);
        }
        self.shapes.sort_by_key(|t| t.first);
    }

    fn remove(&mut self, sel: &Selector, rank: Rank) {
        let shape = Shape::of(sel);
        let key = shape.key_of_selector(sel);
        let Some(i) = self.shapes.iter().position(|t| t.shape == shape) else {
            return;
        };
        let mut empty = false;
        if let Some(t) = self.shapes.get_mut(i) {
            if let Some(v) = t.table.get_mut(&key) {
                v.retain(|&(r, _)| r != rank);
                if v.is_empty() {
                    t.table.remove(&key);
                }
            }
            empty = t.table.is_empty();
        }
        if empty {
            self.shapes.remove(i);
        }
    }

    /// The slot of the first policy (by rank) that matches.
    fn lookup(&self, p: &PacketSelector) -> Option<u32> {
        let mut best: Option<(Rank, u32)> = None;
        for t in &self.shapes {
            if best.is_some_and(|(r, _)| r < t.first) {
                // Shapes are ordered by their first rank: none can do better.
                break;
            }
            let Some(key) = t.shape.key_of_packet(p) else {
                continue;
            };
            if let Some(&(r, slot)) = t.table.get(&key).and_then(|v| v.first()) {
                if best.is_none_or(|(b, _)| r < b) {
                    best = Some((r, slot));
                }
            }
        }
        best.map(|(_, slot)| slot)
    }
}

/// A packet selector and a direction packed in five words (the key of a
/// [`FlowCache`] entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FlowKey([u64; 5]);

impl FlowKey {
    fn of(direction: Direction, p: &PacketSelector) -> FlowKey {
        let (s, s6) = addr_bits(p.src);
        let (d, d6) = addr_bits(p.dst);
        let (kind, a, b) = match p.upper {
            UpperInfo::None => (0u64, 0u64, 0u64),
            UpperInfo::Ports { src, dst } => (1, u64::from(src), u64::from(dst)),
            UpperInfo::Icmp { icmp_type, code } => (2, u64::from(icmp_type), u64::from(code)),
        };
        let meta = u64::from(s6)
            | u64::from(d6) << 1
            | (dir_index(direction) as u64) << 2
            | kind << 4
            | u64::from(p.protocol) << 8
            | a << 16
            | b << 32;
        FlowKey([(s >> 64) as u64, s as u64, (d >> 64) as u64, d as u64, meta])
    }
}

/// A one-entry, lock-free cache of an SPD lookup (a sequence lock over
/// atomics: readers only load; a writer that finds it busy skips the
/// update). Shared by the threads that use one SA.
#[derive(Debug, Default)]
pub struct FlowCache {
    /// Even: stable; odd: being written.
    version: AtomicU64,
    key: [AtomicU64; 5],
    generation: AtomicU64,
    /// The policy slot plus one (0: no policy matched).
    slot: AtomicU64,
}

impl FlowCache {
    /// The cached slot (`Some(None)`: no policy matched) for `key` in
    /// SPD generation `generation`.
    fn get(&self, key: &FlowKey, generation: u64) -> Option<Option<u32>> {
        use std::sync::atomic::{Ordering::Acquire, fence};
        let v1 = self.version.load(Acquire);
        if v1 & 1 == 1 {
            return None;
        }
        let mut k = [0u64; 5];
        for (w, a) in k.iter_mut().zip(&self.key) {
            *w = a.load(Relaxed);
        }
        let g = self.generation.load(Relaxed);
        let slot = self.slot.load(Relaxed);
        fence(Acquire);
        if self.version.load(Relaxed) != v1 || g != generation || k != key.0 {
            return None;
        }
        Some(slot.checked_sub(1).and_then(|s| u32::try_from(s).ok()))
    }

    fn put(&self, key: &FlowKey, generation: u64, slot: Option<u32>) {
        use std::sync::atomic::{Ordering::Acquire, Ordering::Release, fence};
        let v = self.version.load(Relaxed);
        if v & 1 == 1
            || self
                .version
                .compare_exchange(v, v.wrapping_add(1), Acquire, Relaxed)
                .is_err()
        {
            return;
        }
        fence(Release);
        for (a, w) in self.key.iter().zip(key.0) {
            a.store(w, Relaxed);
        }
        self.generation.store(generation, Relaxed);
        self.slot
            .store(slot.map_or(0, |s| u64::from(s) + 1), Relaxed);
        self.version.store(v.wrapping_add(2), Release);
    }
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::In => 0,
        Direction::Out => 1,
        Direction::Fwd => 2,
    }
}

/// The SPD: policies in lookup order, with an index per direction.
///
/// A lookup is not linear in the number of policies: policies are grouped
/// by the fields their selectors pin ("tuple space search", as Open
/// vSwitch's classifier does), and each group is one hash table keyed by
/// the pinned fields, masked to the group's prefix lengths. A lookup
/// probes one table per group present (a handful in real SPDs) and returns
/// the first matching policy in priority-then-insertion order, exactly what
/// a walk down the ordered list returns (RFC 4301 §4.4.1: the first
/// matching entry of an ordered SPD; a decorrelated SPD gives the same
/// answer in any order). [`Spd::lookup_linear`] is that walk, kept as the
/// reference the index is tested against.
#[derive(Clone, Debug)]
pub struct Spd {
    slots: Vec<Option<Policy>>,
    free: Vec<u32>,
    /// Slots in lookup order.
    order: Vec<u32>,
    by_selector: HashMap<(Selector, Direction), u32>,
    by_id: HashMap<u32, u32>,
    index: [DirIndex; 3],
    next_seq: u64,
    next_index: u32,
    /// Changes with every mutation (unique across all SPDs): a
    /// [`FlowCache`] entry is valid only for the generation it was made in.
    generation: u64,
    /// The reqids the policies' requests name (0 left out), each with the
    /// number of requests naming it.
    reqids: BTreeMap<u32, u32>,
    /// The lowest reqid from 1 that no request names.
    lowest_free_reqid: u32,
}

impl Default for Spd {
    fn default() -> Spd {
        Spd {
            slots: Vec::new(),
            free: Vec::new(),
            order: Vec::new(),
            by_selector: HashMap::default(),
            by_id: HashMap::default(),
            index: Default::default(),
            next_seq: 0,
            next_index: 0,
            generation: 0,
            reqids: BTreeMap::new(),
            lowest_free_reqid: 1,
        }
    }
}

/// The nonzero reqids of a policy's requests.
fn reqids_of(action: &PolicyAction) -> impl Iterator<Item = u32> + '_ {
    let reqs: &[SaRequest] = match action {
        PolicyAction::Ipsec(reqs) => reqs,
        _ => &[],
    };
    reqs.iter().map(|r| r.reqid).filter(|&r| r != 0)
}

/// Generations of SPDs, unique in the process.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, Relaxed)
}

impl Spd {
    /// An empty SPD.
    pub fn new() -> Self {
        Spd::default()
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether there are no policies.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn at(&self, slot: u32) -> Option<&Policy> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// Whether a policy's request names `reqid`.
    pub fn reqid_in_use(&self, reqid: u32) -> bool {
        self.reqids.contains_key(&reqid)
    }

    /// The lowest `base` in `1..=max + 1 - n` such that no policy's
    /// request names a reqid in `base..base + n`; `None` when there is
    /// none. From an index kept on every change, not a scan of the
    /// policies: it starts at the lowest free reqid and skips only the
    /// gaps narrower than `n` above it.
    pub fn free_reqids(&self, n: u32, max: u32) -> Option<u32> {
        let mut base = self.lowest_free_reqid;
        for (&r, _) in self.reqids.range(base..) {
            if r >= base.checked_add(n)? {
                break;
            }
            base = r + 1;
        }
        (base.checked_add(n)? <= max.checked_add(1)?).then_some(base)
    }

    /// [`Spd::free_reqids`] by reading every policy's reqids, sorting
    /// them and walking up from 1: the reference the index is checked
    /// against (tests, benchmarks).
    pub fn free_reqids_linear(&self, n: u32, max: u32) -> Option<u32> {
        let mut used: Vec<u32> = self
            .iter()
            .flat_map(|p| reqids_of(&p.action))
            .filter(|r| (1..=max).contains(r))
            .collect();
        used.sort_unstable();
        used.dedup();
        let mut base = 1u32;
        for r in used {
            if r >= base.checked_add(n)? {
                break;
            }
            if r >= base {
                base = r + 1;
            }
        }
        (base.checked_add(n)? <= max.checked_add(1)?).then_some(base)
    }

    fn count_reqids(&mut self, action: &PolicyAction, added: bool) {
        for r in reqids_of(action) {
            if added {
                *self.reqids.entry(r).or_insert(0) += 1;
            } else if let Some(c) = self.reqids.get_mut(&r) {
                *c -= 1;
                if *c == 0 {
                    self.reqids.remove(&r);
                    self.lowest_free_reqid = self.lowest_free_reqid.min(r);
                }
            }
        }
        while self.reqids.contains_key(&self.lowest_free_reqid) {
            self.lowest_free_reqid += 1;
        }
    }

    /// Policies in lookup order.
    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.order.iter().filter_map(|&s| self.at(s))
    }

    /// Policies in the order they were added (the order `setkey -DP` prints).
    pub fn in_insertion_order(&self) -> Vec<&Policy> {
        let mut v: Vec<&Policy> = self.iter().collect();
        v.sort_by_key(|p| p.seq);
        v
    }

    /// The policy with this selector and direction.
    pub fn get(&self, selector: &Selector, direction: Direction) -> Option<&Policy> {
        let &slot = self.by_selector.get(&(*selector, direction))?;
        self.at(slot)
    }

    /// The policy with this id (`spid`).
    pub fn by_id(&self, id: u32) -> Option<&Policy> {
        let &slot = self.by_id.get(&id)?;
        self.at(slot)
    }

    /// A fresh policy id as Linux makes them: a counter in steps of 8 with
    /// the direction in the low bits (in 0, out 1, fwd 2).
    fn gen_id(&mut self, direction: Direction) -> u32 {
        let dir = match direction {
            Direction::In => 0,
            Direction::Out => 1,
            Direction::Fwd => 2,
        };
        loop {
            self.next_index = self.next_index.wrapping_add(8);
            let id = self.next_index | dir;
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    fn insert_sorted(&mut self, mut policy: Policy) -> u32 {
        self.generation = next_generation();
        policy.seq = self.next_seq;
        self.next_seq += 1;
        let id = policy.id;
        let rank = policy.rank();
        let key = (policy.selector, policy.direction);
        let dir = dir_index(policy.direction);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        if let Some(ix) = self.index.get_mut(dir) {
            ix.insert(&policy.selector, rank, slot);
        }
        self.count_reqids(&policy.action, true);
        if let Some(s) = self.slots.get_mut(slot as usize) {
            *s = Some(policy);
        }
        // Equal priorities go after the existing ones (setkey(8)): the
        // insertion sequence is the rank's low half.
        let at = self.order.partition_point(|&s| {
            self.slots
                .get(s as usize)
                .and_then(Option::as_ref)
                .is_some_and(|p| p.rank() < rank)
        });
        self.order.insert(at, slot);
        self.by_selector.insert(key, slot);
        self.by_id.insert(id, slot);
        id
    }

    /// Adds a policy (setkey `spdadd`); its `id` is assigned here.
    /// Fails if one with the same selector and direction exists.
    pub fn add(
        &mut self,
        selector: Selector,
        direction: Direction,
        priority: u32,
        action: PolicyAction,
        now: Timestamp,
    ) -> Result<u32, Error> {
        self.add_owned(selector, direction, priority, action, now, None)
    }

    /// [`Spd::add`] of a policy tagged with its owner.
    pub fn add_owned(
        &mut self,
        selector: Selector,
        direction: Direction,
        priority: u32,
        action: PolicyAction,
        now: Timestamp,
        owner: Option<Owner>,
    ) -> Result<u32, Error> {
        if self.get(&selector, direction).is_some() {
            return Err(Error::PolicyExists {
                pos: None,
                selector: format!("{} {}", selector.setkey_format(), direction.keyword()),
            });
        }
        let id = self.gen_id(direction);
        Ok(self.insert_sorted(Policy {
            id,
            selector,
            direction,
            priority,
            action,
            created: now,
            stats: Arc::default(),
            owner,
            seq: 0,
        }))
    }

    /// Adds or replaces a policy (setkey `spdupdate`). A replaced policy
    /// keeps its id and counters, as Linux keeps the index.
    pub fn update(
        &mut self,
        selector: Selector,
        direction: Direction,
        priority: u32,
        action: PolicyAction,
        now: Timestamp,
    ) -> u32 {
        self.update_owned(selector, direction, priority, action, now, None)
    }

    /// [`Spd::update`] tagging the policy with `owner` (`None`: a replaced
    /// policy keeps its owner).
    pub fn update_owned(
        &mut self,
        selector: Selector,
        direction: Direction,
        priority: u32,
        action: PolicyAction,
        now: Timestamp,
        owner: Option<Owner>,
    ) -> u32 {
        let (id, stats, owner) = match self.remove(&selector, direction) {
            Ok(old) => (old.id, old.stats, owner.or(old.owner)),
            Err(_) => (self.gen_id(direction), Arc::default(), owner),
        };
        self.insert_sorted(Policy {
            id,
            selector,
            direction,
            priority,
            action,
            created: now,
            stats,
            owner,
            seq: 0,
        })
    }

    /// Removes a policy (setkey `spddelete`).
    pub fn remove(&mut self, selector: &Selector, direction: Direction) -> Result<Policy, Error> {
        self.generation = next_generation();
        let not_found = || Error::PolicyNotFound {
            pos: None,
            selector: format!("{} {}", selector.setkey_format(), direction.keyword()),
        };
        let slot = self
            .by_selector
            .remove(&(*selector, direction))
            .ok_or_else(not_found)?;
        let policy = self
            .slots
            .get_mut(slot as usize)
            .and_then(Option::take)
            .ok_or_else(not_found)?;
        self.free.push(slot);
        self.count_reqids(&policy.action, false);
        self.by_id.remove(&policy.id);
        self.order.retain(|&s| s != slot);
        if let Some(ix) = self.index.get_mut(dir_index(direction)) {
            ix.remove(selector, policy.rank());
        }
        Ok(policy)
    }

    /// Removes every policy (setkey `spdflush`).
    pub fn flush(&mut self) {
        let (seq, index) = (self.next_seq, self.next_index);
        *self = Spd::default();
        self.next_seq = seq;
        self.next_index = index;
        self.generation = next_generation();
    }

    /// The first matching policy of a direction (RFC 4301 §4.4.1), through
    /// the index, without touching its use time.
    pub fn lookup(&self, direction: Direction, packet: &PacketSelector) -> Option<&Policy> {
        let slot = self.index.get(dir_index(direction))?.lookup(packet)?;
        self.at(slot)
    }

    /// [`Spd::lookup`] by walking the policies in order: the reference the
    /// index is checked against (tests, benchmarks).
    pub fn lookup_linear(&self, direction: Direction, packet: &PacketSelector) -> Option<&Policy> {
        self.iter()
            .find(|p| p.direction == direction && p.selector.matches(packet))
    }

    /// The first matching `out` policy.
    pub fn lookup_out(&self, packet: &PacketSelector) -> Option<&Policy> {
        self.lookup(Direction::Out, packet)
    }

    /// The first matching `in` policy.
    pub fn lookup_in(&self, packet: &PacketSelector) -> Option<&Policy> {
        self.lookup(Direction::In, packet)
    }

    /// [`Spd::lookup_used`] through a one-entry cache of the last packet
    /// selector looked up with it (e.g. the packets through one SA, which
    /// are one or a few flows): a hit costs a few loads instead of the
    /// index probe, and gives the same policy, since the entry holds the
    /// whole selector and the SPD generation it was made in.
    pub fn lookup_cached(
        &self,
        direction: Direction,
        packet: &PacketSelector,
        cache: &FlowCache,
        now: Timestamp,
    ) -> Option<&Policy> {
        let key = FlowKey::of(direction, packet);
        let slot = match cache.get(&key, self.generation) {
            Some(slot) => slot,
            None => {
                let slot = self
                    .index
                    .get(dir_index(direction))
                    .and_then(|ix| ix.lookup(packet));
                cache.put(&key, self.generation, slot);
                slot
            }
        }?;
        let p = self.at(slot)?;
        p.stats.touch(now);
        Some(p)
    }

    /// Like [`Spd::lookup`], and records `now` as the policy's last use.
    pub fn lookup_used(
        &self,
        direction: Direction,
        packet: &PacketSelector,
        now: Timestamp,
    ) -> Option<&Policy> {
        let p = self.lookup(direction, packet)?;
        p.stats.touch(now);
        Some(p)
    }
}

/// The priority a policy gets without a `prio` specification.
pub const DEFAULT_PRIORITY: u32 = PRIORITY_DEFAULT;

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(src: &str, sp: u8, dst: &str, dp: u8) -> Selector {
        Selector {
            src: src.parse().unwrap(),
            src_prefix: sp,
            dst: dst.parse().unwrap(),
            dst_prefix: dp,
            protocol: None,
            sport: None,
            dport: None,
            icmp_type: 0,
            icmp_code: 0,
        }
    }

    #[test]
    fn prefixes() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(prefix_match(a("10.0.0.0"), 8, a("10.255.1.2")));
        assert!(!prefix_match(a("10.0.0.0"), 8, a("11.0.0.0")));
        assert!(prefix_match(a("0.0.0.0"), 0, a("1.2.3.4")));
        assert!(prefix_match(a("::"), 0, a("2001:db8::1")));
        assert!(prefix_match(a("2001:db8::"), 32, a("2001:db8:ffff::1")));
        assert!(!prefix_match(a("2001:db8::"), 33, a("2001:db8:ffff::1")));
        assert!(!prefix_match(a("0.0.0.0"), 0, a("::1")));
        assert!(prefix_match(a("1.2.3.4"), 32, a("1.2.3.4")));
    }

    #[test]
    fn first_match_by_priority_then_insertion() {
        let mut spd = Spd::new();
        let now = Timestamp(1);
        let wide = sel("0.0.0.0", 0, "0.0.0.0", 0);
        let mut narrow = sel("10.0.0.1", 32, "10.0.0.2", 32);
        narrow.protocol = Some(ipproto::UDP);
        narrow.dport = Some(5060);
        spd.add(
            wide,
            Direction::Out,
            DEFAULT_PRIORITY,
            PolicyAction::Discard,
            now,
        )
        .unwrap();
        spd.add(
            narrow,
            Direction::Out,
            DEFAULT_PRIORITY,
            PolicyAction::Bypass,
            now,
        )
        .unwrap();
        let pkt = PacketSelector::udp(
            "10.0.0.1".parse().unwrap(),
            1000,
            "10.0.0.2".parse().unwrap(),
            5060,
        );
        // Same priority: insertion order; the wide discard comes first.
        assert_eq!(
            spd.lookup(Direction::Out, &pkt).unwrap().action,
            PolicyAction::Discard
        );
        assert!(spd.lookup(Direction::In, &pkt).is_none());
        // Higher priority (lower kernel value) goes first; the id stays.
        let id = spd.get(&narrow, Direction::Out).unwrap().id;
        spd.update(
            narrow,
            Direction::Out,
            DEFAULT_PRIORITY - 1,
            PolicyAction::Bypass,
            now,
        );
        assert_eq!(
            spd.lookup(Direction::Out, &pkt).unwrap().action,
            PolicyAction::Bypass
        );
        assert_eq!(spd.get(&narrow, Direction::Out).unwrap().id, id);
        let tcp = PacketSelector::tcp(
            "10.0.0.1".parse().unwrap(),
            1000,
            "10.0.0.2".parse().unwrap(),
            5060,
        );
        assert_eq!(
            spd.lookup(Direction::Out, &tcp).unwrap().action,
            PolicyAction::Discard
        );
        assert!(
            spd.add(wide, Direction::Out, 5, PolicyAction::Bypass, now)
                .is_err()
        );
        assert!(spd.remove(&wide, Direction::In).is_err());
        spd.remove(&wide, Direction::Out).unwrap();
        assert_eq!(spd.len(), 1);
    }

    #[test]
    fn ports_and_icmp() {
        let mut s = sel("::", 0, "::", 0);
        s.protocol = Some(ipproto::ICMPV6);
        s.icmp_type = 135;
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let pkt = |t, c| PacketSelector {
            src: a,
            dst: a,
            protocol: ipproto::ICMPV6,
            upper: UpperInfo::Icmp {
                icmp_type: t,
                code: c,
            },
        };
        assert!(s.matches(&pkt(135, 0)));
        assert!(s.matches(&pkt(135, 7)));
        assert!(!s.matches(&pkt(136, 0)));
        let mut p = sel("0.0.0.0", 0, "0.0.0.0", 0);
        p.sport = Some(21);
        let b: IpAddr = "1.1.1.1".parse().unwrap();
        assert!(p.matches(&PacketSelector::tcp(b, 21, b, 80)));
        assert!(!p.matches(&PacketSelector::tcp(b, 22, b, 80)));
        // RFC 4301 §4.4.1.1: no ports available, a specific port does not match.
        assert!(!p.matches(&PacketSelector {
            src: b,
            dst: b,
            protocol: 1,
            upper: UpperInfo::None
        }));
    }

    #[test]
    fn linux_style_policy_ids() {
        let mut spd = Spd::new();
        let now = Timestamp(1);
        let a = spd
            .add(
                sel("1.0.0.0", 8, "2.0.0.0", 8),
                Direction::In,
                0,
                PolicyAction::Bypass,
                now,
            )
            .unwrap();
        let b = spd
            .add(
                sel("1.0.0.0", 8, "2.0.0.0", 8),
                Direction::Out,
                0,
                PolicyAction::Bypass,
                now,
            )
            .unwrap();
        assert_eq!((a % 8, b % 8), (0, 1));
        assert_ne!(a, 0);
    }
}

#[cfg(test)]
mod reqid_tests {
    use super::*;
    use crate::ast::{Level, ReqMode, ReqProtocol};
    use proptest::prelude::*;

    fn action(reqids: &[u32]) -> PolicyAction {
        PolicyAction::Ipsec(
            reqids
                .iter()
                .map(|&reqid| SaRequest {
                    protocol: ReqProtocol::Esp,
                    mode: ReqMode::Transport,
                    endpoints: None,
                    level: Level::Require,
                    reqid,
                })
                .collect(),
        )
    }

    fn selector(port: u16) -> Selector {
        Selector {
            src: IpAddr::from([192, 0, 2, 1]),
            src_prefix: 32,
            dst: IpAddr::from([192, 0, 2, 2]),
            dst_prefix: 32,
            protocol: Some(17),
            sport: Some(port),
            dport: None,
            icmp_type: 0,
            icmp_code: 0,
        }
    }

    proptest! {
        /// After any sequence of adds, updates, removals and flushes of
        /// policies naming reqids (several per policy, shared between
        /// policies, 0, beyond the range), the indexed search gives what
        /// a scan of the policies gives, for every width.
        #[test]
        fn free_reqids_equals_a_scan(
            ops in proptest::collection::vec(
                (0u8..10, 0u16..24, proptest::collection::vec(0u32..20, 0..3)),
                1..120,
            ),
        ) {
            let max = 16;
            let mut spd = Spd::new();
            for (op, port, reqids) in ops {
                let sel = selector(port);
                match op {
                    0..=4 => {
                        let _ = spd.add(sel, Direction::Out, 0, action(&reqids), Timestamp(0));
                    }
                    5 | 6 => {
                        spd.update(sel, Direction::Out, 0, action(&reqids), Timestamp(0));
                    }
                    7 | 8 => {
                        let _ = spd.remove(&sel, Direction::Out);
                    }
                    _ => {
                        if port == 0 {
                            spd.flush();
                        }
                    }
                }
                for n in 1..=4 {
                    prop_assert_eq!(
                        spd.free_reqids(n, max),
                        spd.free_reqids_linear(n, max),
                        "n={}",
                        n
                    );
                }
            }
            let left: Vec<(Selector, Direction)> =
                spd.iter().map(|p| (p.selector, p.direction)).collect();
            for (sel, dir) in left {
                spd.remove(&sel, dir).unwrap();
            }
            prop_assert!(spd.reqids.is_empty());
            prop_assert_eq!(spd.free_reqids(2, max), Some(1));
        }
    }
}

#[cfg(test)]
mod counter_tests {
    use super::*;

    #[test]
    fn policy_counters_stay_exact_across_the_field_halves() {
        let s = PolicyStats::default();
        // Past the packets half twice, and the bytes half once.
        for _ in 0..(3 * PACKETS_HALF) {
            s.pass(1500);
        }
        let c = s.counters();
        assert_eq!(c.packets, 3 * PACKETS_HALF);
        assert_eq!(c.bytes, 3 * PACKETS_HALF * 1500);
        let s = PolicyStats::default();
        s.traffic.store(BYTES_HALF - 10, Relaxed);
        let before = s.counters().bytes;
        s.pass(100);
        assert_eq!(s.counters().bytes, before + 100);
        assert!(s.traffic.load(Relaxed) & BYTES < BYTES_HALF);
        // Threads adding at once lose nothing.
        let s = PolicyStats::default();
        std::thread::scope(|sc| {
            for _ in 0..4 {
                sc.spawn(|| {
                    for _ in 0..40_000 {
                        s.pass(64);
                    }
                });
            }
        });
        assert_eq!(s.counters().packets, 160_000);
        assert_eq!(s.counters().bytes, 160_000 * 64);
    }
}
