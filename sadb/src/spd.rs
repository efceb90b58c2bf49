//! The Security Policy Database (RFC 4301 §4.4.1).
//!
//! An ordered list of policies. Each has a selector (source and destination
//! prefixes, upper-layer protocol, ports or ICMP type/code), a direction
//! (`in`, `out`, `fwd`), a priority and an action (`discard`, `none` =
//! bypass, or `ipsec` with a list of SA requests). A lookup returns the first
//! policy of the direction whose selector matches (RFC 4301 §4.4.1: "the SPD
//! is ordered ... the first matching entry"); order is by kernel priority
//! value (lower first, as Linux does), then by insertion.

use std::net::IpAddr;

use crate::Error;
use crate::ast::{
    Direction, Endpoint, Family, Level, PRIORITY_DEFAULT, ReqMode, ReqProtocol, ipproto,
    is_icmp_like,
};
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

/// An SPD entry.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// When a lookup last matched it.
    pub last_used: Option<Timestamp>,
    pub(crate) seq: u64,
}

/// The SPD: policies in lookup order.
#[derive(Clone, Debug, Default)]
pub struct Spd {
    policies: Vec<Policy>,
    next_seq: u64,
    next_index: u32,
}

impl Spd {
    /// An empty SPD.
    pub fn new() -> Self {
        Spd::default()
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether there are no policies.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Policies in lookup order.
    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.policies.iter()
    }

    /// Policies in the order they were added (the order `setkey -DP` prints).
    pub fn in_insertion_order(&self) -> Vec<&Policy> {
        let mut v: Vec<&Policy> = self.policies.iter().collect();
        v.sort_by_key(|p| p.seq);
        v
    }

    /// The policy with this selector and direction.
    pub fn get(&self, selector: &Selector, direction: Direction) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| p.selector == *selector && p.direction == direction)
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
            if !self.policies.iter().any(|p| p.id == id) {
                return id;
            }
        }
    }

    fn insert_sorted(&mut self, mut policy: Policy) -> u32 {
        policy.seq = self.next_seq;
        self.next_seq += 1;
        let id = policy.id;
        // Equal priorities go after the existing ones (setkey(8)).
        let at = self
            .policies
            .iter()
            .position(|p| p.priority > policy.priority)
            .unwrap_or(self.policies.len());
        self.policies.insert(at, policy);
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
            last_used: None,
            seq: 0,
        }))
    }

    /// Adds or replaces a policy (setkey `spdupdate`). A replaced policy
    /// keeps its id, as Linux keeps the index.
    pub fn update(
        &mut self,
        selector: Selector,
        direction: Direction,
        priority: u32,
        action: PolicyAction,
        now: Timestamp,
    ) -> u32 {
        let id = match self.remove(&selector, direction) {
            Ok(old) => old.id,
            Err(_) => self.gen_id(direction),
        };
        self.insert_sorted(Policy {
            id,
            selector,
            direction,
            priority,
            action,
            created: now,
            last_used: None,
            seq: 0,
        })
    }

    /// Removes a policy (setkey `spddelete`).
    pub fn remove(&mut self, selector: &Selector, direction: Direction) -> Result<Policy, Error> {
        match self
            .policies
            .iter()
            .position(|p| p.selector == *selector && p.direction == direction)
        {
            Some(i) => Ok(self.policies.remove(i)),
            None => Err(Error::PolicyNotFound {
                pos: None,
                selector: format!("{} {}", selector.setkey_format(), direction.keyword()),
            }),
        }
    }

    /// Removes every policy (setkey `spdflush`).
    pub fn flush(&mut self) {
        self.policies.clear();
    }

    /// The first matching policy of a direction (RFC 4301 §4.4.1), without
    /// touching its use time.
    pub fn lookup(&self, direction: Direction, packet: &PacketSelector) -> Option<&Policy> {
        self.policies
            .iter()
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

    /// Like [`Spd::lookup`], and records `now` as the policy's last use.
    pub fn lookup_mut(
        &mut self,
        direction: Direction,
        packet: &PacketSelector,
        now: Timestamp,
    ) -> Option<&Policy> {
        let p = self
            .policies
            .iter_mut()
            .find(|p| p.direction == direction && p.selector.matches(packet))?;
        p.last_used = Some(now);
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
