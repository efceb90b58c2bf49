//! The syntax tree of the setkey(8) configuration language.
//!
//! Values here are what a script says, already checked (numeric addresses,
//! SPIs above 255, known algorithms with keys of the right length), but not
//! yet applied to the databases. Printing a statement ([`core::fmt::Display`])
//! gives setkey text that parses back to the same tree.

use core::fmt;
use std::net::IpAddr;

use opensec::{AuthAlgorithm, EncAlgorithm};
use zeroize::Zeroize;

/// A position in the input: 1-based line and column (columns count characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line number, from 1.
    pub line: u32,
    /// Column number, from 1, in characters.
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A statement and where it starts in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    /// Position of the statement's first character.
    pub pos: Pos,
    /// The statement.
    pub value: T,
}

/// One setkey statement (setkey(8) "Configuration syntax").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// `add [-46n] src dst protocol spi [extensions] algorithm... ;`
    Add(SaSpec),
    /// `update [-46n] src dst protocol spi [extensions] algorithm... ;`
    Update(SaSpec),
    /// `getspi [-46n] src dst protocol spi [extensions] ;`: a larval SA
    /// that holds the SPI until `update` completes it (or it times out).
    GetSpi(GetSpiSpec),
    /// `get [-46n] src dst protocol spi ;`
    Get(SaRef),
    /// `delete [-46n] src dst protocol spi ;`
    Delete(SaRef),
    /// `deleteall [-46n] src dst protocol ;`
    DeleteAll {
        /// Address resolution flags.
        flags: AddrFlags,
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
        /// Security protocol.
        protocol: SaProtocol,
    },
    /// `flush [protocol] ;`
    Flush(Option<SaProtocol>),
    /// `dump [protocol] ;`
    Dump(Option<SaProtocol>),
    /// `spdadd [-46n] src_range dst_range upperspec policy ;`
    SpdAdd(PolicySpec),
    /// `spdupdate [-46n] src_range dst_range upperspec policy ;`
    SpdUpdate(PolicySpec),
    /// `spddelete [-46n] src_range dst_range upperspec -P direction ;`
    SpdDelete(PolicySpec),
    /// `spdflush ;`
    SpdFlush,
    /// `spddump ;`
    SpdDump,
}

/// Address resolution flags `-4`, `-6`, `-n`. Only numeric addresses are
/// accepted (host name resolution would be IO), so `-n` is always in effect;
/// `-4`/`-6` require the addresses to be of that family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AddrFlags {
    /// `-4` or `-6` (the last one given wins, as in setkey).
    pub family: Option<Family>,
    /// `-n` was given.
    pub numeric: bool,
}

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 (`-4`).
    V4,
    /// IPv6 (`-6`).
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Full prefix length of the family (32 or 128).
    pub fn max_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// The `protocol` of an SA statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SaProtocol {
    /// `esp`: ESP (RFC 4303).
    Esp,
    /// `ah`: AH (RFC 4302).
    Ah,
    /// `esp-udp`: ESP in UDP (RFC 3948); ports come from `src[port]`,
    /// `dst[port]`, 4500 when absent.
    EspUdp,
}

impl SaProtocol {
    /// The setkey keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            SaProtocol::Esp => "esp",
            SaProtocol::Ah => "ah",
            SaProtocol::EspUdp => "esp-udp",
        }
    }
}

/// `address` or `address[port]` of an SA statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The numeric address.
    pub addr: IpAddr,
    /// The port in brackets, if any (`[any]` is `Some(0)`).
    pub port: Option<u16>,
}

/// `src dst protocol spi` of `get` and `delete`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaRef {
    /// Address resolution flags.
    pub flags: AddrFlags,
    /// Source (sender).
    pub src: Endpoint,
    /// Destination (receiver).
    pub dst: Endpoint,
    /// Security protocol.
    pub protocol: SaProtocol,
    /// SPI (RFC 4303 §2.1; 0..=255 are rejected as reserved).
    pub spi: u32,
}

/// The arguments of `getspi` (setkey(8)): the SA to be, without
/// algorithms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetSpiSpec {
    /// Address resolution flags.
    pub flags: AddrFlags,
    /// Source (sender).
    pub src: Endpoint,
    /// Destination (receiver: the SPI is unique for it).
    pub dst: Endpoint,
    /// Security protocol.
    pub protocol: SaProtocol,
    /// The SPI to hold, or `None` (written `0`) for one picked at random
    /// among the unused ones.
    pub spi: Option<u32>,
    /// Extensions: only `-m`, `-u` and `-lh` (how long the larval SA
    /// waits for its `update`) mean something here.
    pub ext: Extensions,
}

/// The `-m` mode of an SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SaModeSpec {
    /// `transport`.
    Transport,
    /// `tunnel`.
    Tunnel,
    /// `any` (setkey's default; installed as transport, as Linux does).
    Any,
}

/// The `-f pad_option` of an SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PadOption {
    /// `zero-pad`.
    ZeroPad,
    /// `random-pad`.
    RandomPad,
    /// `seq-pad` (the RFC 4303 §2.4 default: 1, 2, 3, ...).
    SeqPad,
}

/// The extensions of `add`/`update` (setkey(8) "extensions").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Extensions {
    /// `-m mode`.
    pub mode: Option<SaModeSpec>,
    /// `-r size`: replay window in BYTES as setkey(8) says ("window size of
    /// bytes"); the SA gets a window of `8 * size` packets.
    pub replay: Option<u32>,
    /// `-u id`: the reqid binding the SA to `unique:id` policies.
    pub reqid: Option<u32>,
    /// `-f pad_option`.
    pub pad: Option<PadOption>,
    /// `-f nocyclic-seq`.
    pub nocyclic_seq: bool,
    /// `-lh time`: hard lifetime in seconds since creation.
    pub lifetime_hard: Option<u64>,
    /// `-ls time`: soft lifetime in seconds since creation.
    pub lifetime_soft: Option<u64>,
    /// `-bh bytes`: hard lifetime in bytes.
    pub bytes_hard: Option<u64>,
    /// `-bs bytes`: soft lifetime in bytes.
    pub bytes_soft: Option<u64>,
}

/// How a key was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyForm {
    /// A double-quoted character string.
    Quoted,
    /// Hexadecimal digits after `0x`.
    Hex,
}

/// Key material from a script; zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    bytes: Vec<u8>,
    form: KeyForm,
}

impl Key {
    /// A key and the way it is printed. A [`KeyForm::Quoted`] key whose
    /// bytes are not printable text without `"` is printed in hex.
    pub fn new(bytes: Vec<u8>, form: KeyForm) -> Key {
        let form = if form == KeyForm::Quoted && !quotable(&bytes) {
            KeyForm::Hex
        } else {
            form
        };
        Key { bytes, form }
    }

    /// The empty key of the `null` algorithms.
    pub fn empty() -> Key {
        Key {
            bytes: Vec::new(),
            form: KeyForm::Hex,
        }
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How the key is printed.
    pub fn form(&self) -> KeyForm {
        self.form
    }
}

/// Whether bytes can be written between double quotes and read back the same.
pub(crate) fn quotable(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"')
}

impl Drop for Key {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes, redacted)", self.bytes.len())
    }
}

/// The algorithms and keys of `add`/`update`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlgorithmSpec {
    /// `-E ealgo key [-A aalgo key]` (ESP).
    Esp {
        /// Encryption algorithm.
        enc: EncAlgorithm,
        /// Encryption key (empty for `null`).
        enc_key: Key,
        /// Authentication algorithm and key, if `-A` was given.
        auth: Option<(AuthAlgorithm, Key)>,
    },
    /// `-A aalgo key` alone (AH; for ESP it means no encryption, rejected when applied).
    Auth {
        /// Authentication algorithm.
        auth: AuthAlgorithm,
        /// Its key (empty for `null`).
        key: Key,
    },
}

/// `add`/`update` arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaSpec {
    /// Address resolution flags.
    pub flags: AddrFlags,
    /// Source (sender) and optional port.
    pub src: Endpoint,
    /// Destination (receiver) and optional port.
    pub dst: Endpoint,
    /// Security protocol.
    pub protocol: SaProtocol,
    /// SPI.
    pub spi: u32,
    /// Extensions.
    pub ext: Extensions,
    /// Algorithms and keys.
    pub alg: AlgorithmSpec,
}

/// A port selector `[port]` of an SPD range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortSpec {
    /// No brackets.
    Omitted,
    /// `[any]` (or `[0]`).
    Any,
    /// `[n]`, n in 1..=65535.
    Port(u16),
}

impl PortSpec {
    /// The port, `None` for any.
    pub fn port(self) -> Option<u16> {
        match self {
            PortSpec::Port(p) => Some(p),
            _ => None,
        }
    }
}

/// `address[/prefixlen][[port]]` of `spdadd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RangeSpec {
    /// The address.
    pub addr: IpAddr,
    /// `/prefixlen`, if written.
    pub prefix: Option<u8>,
    /// `[port]`.
    pub port: PortSpec,
}

impl RangeSpec {
    /// The prefix length in effect (full length when not written).
    pub fn prefix_len(&self) -> u8 {
        self.prefix
            .unwrap_or_else(|| Family::of(&self.addr).max_prefix())
    }
}

/// An ICMP/ICMPv6/MH `type[,code]` after the upper-layer protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IcmpSpec {
    /// The type (0 is a wildcard, as in the kernel).
    pub icmp_type: u8,
    /// The code, if given (0 is a wildcard).
    pub code: Option<u8>,
}

/// The `upperspec` of `spdadd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UpperSpec {
    /// The protocol number; `None` for `any`.
    pub protocol: Option<u8>,
    /// ICMP type and code (only for icmp, icmp6 and mh).
    pub icmp: Option<IcmpSpec>,
}

/// Policy direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `in`.
    In,
    /// `out`.
    Out,
    /// `fwd`.
    Fwd,
}

impl Direction {
    /// The setkey keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Fwd => "fwd",
        }
    }
}

/// Base of a priority (`low`, `def`, `high`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PriorityBase {
    /// `low`: -1073741824 (kernel value 0xC0000000).
    Low,
    /// `def`: 0 (kernel value 0x80000000).
    Def,
    /// `high`: 1073741824 (kernel value 0x40000000).
    High,
}

impl PriorityBase {
    /// The kernel value (lower values are placed first).
    pub fn kernel_value(self) -> u32 {
        match self {
            PriorityBase::Low => 0xC000_0000,
            PriorityBase::Def => 0x8000_0000,
            PriorityBase::High => 0x4000_0000,
        }
    }

    /// The setkey keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            PriorityBase::Low => "low",
            PriorityBase::Def => "def",
            PriorityBase::High => "high",
        }
    }
}

/// The default kernel priority of a policy without `prio`.
pub const PRIORITY_DEFAULT: u32 = 0x8000_0000;

/// A priority specification (ipsec_set_policy(3)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrioritySpec {
    /// `prio N` / `priority N`: N above the default (higher is earlier).
    Offset(i64),
    /// `prio base`, `prio base + N`, `prio base - N`.
    Base {
        /// `low`, `def` or `high`.
        base: PriorityBase,
        /// The signed offset (+ is earlier in the list).
        offset: i64,
    },
}

impl PrioritySpec {
    /// The kernel value: `p(kernel) = 0x80000000 - p(func)` (ipsec_set_policy(3));
    /// lower values are placed closer to the beginning of the SPD.
    pub fn kernel_value(self) -> u32 {
        let v = match self {
            PrioritySpec::Offset(n) => i64::from(PRIORITY_DEFAULT) - n,
            PrioritySpec::Base { base, offset } => i64::from(base.kernel_value()) - offset,
        };
        // The parser bounds offsets so that this never saturates.
        u32::try_from(v.clamp(0, i64::from(u32::MAX))).unwrap_or(u32::MAX)
    }
}

/// Request protocol of an `ipsec` policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReqProtocol {
    /// `esp`.
    Esp,
    /// `ah`.
    Ah,
}

impl ReqProtocol {
    /// The keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            ReqProtocol::Esp => "esp",
            ReqProtocol::Ah => "ah",
        }
    }
}

/// Request mode of an `ipsec` policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReqMode {
    /// `transport`.
    Transport,
    /// `tunnel`.
    Tunnel,
}

impl ReqMode {
    /// The keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            ReqMode::Transport => "transport",
            ReqMode::Tunnel => "tunnel",
        }
    }
}

/// Request level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// `default` (or omitted): the system default, here the same as `require`.
    Default,
    /// `use`: an SA if one is available, else the packet goes in clear.
    Use,
    /// `require`: an SA is required.
    Require,
    /// `unique` / `unique:N`: required, and only the SA with `-u N`.
    Unique(Option<u16>),
}

/// One `protocol/mode/src-dst/level` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// `esp` or `ah`.
    pub protocol: ReqProtocol,
    /// `transport` or `tunnel`.
    pub mode: ReqMode,
    /// Tunnel end points `src-dst` (sender, receiver), each with an optional port.
    pub endpoints: Option<(Endpoint, Endpoint)>,
    /// Level.
    pub level: Level,
}

/// The action of a policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `discard`.
    Discard,
    /// `none`: no IPsec (bypass).
    None,
    /// `ipsec` and its requests, innermost first (`esp/transport//require
    /// ah/transport//require` is IP, AH, ESP, payload).
    Ipsec(Vec<Request>),
}

/// `-P direction [priority] action`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PolicyClause {
    /// Direction.
    pub direction: Direction,
    /// Priority, if written.
    pub priority: Option<PrioritySpec>,
    /// Action; `None` only in `spddelete ... -P dir ;`.
    pub action: Option<Action>,
}

/// Arguments of `spdadd`, `spdupdate` and `spddelete`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySpec {
    /// Address resolution flags.
    pub flags: AddrFlags,
    /// Source range.
    pub src: RangeSpec,
    /// Destination range.
    pub dst: RangeSpec,
    /// Upper-layer protocol.
    pub upper: UpperSpec,
    /// The policy.
    pub policy: PolicyClause,
}

/// Names of upper-layer protocols (a subset of /etc/protocols, plus the
/// `icmp6` and `ip4` words of setkey(8)). The first name of a number is the
/// one statements print.
pub const PROTOCOL_NAMES: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ip4", 4),
    ("ipencap", 4),
    ("tcp", 6),
    ("egp", 8),
    ("udp", 17),
    ("ipv6", 41),
    ("ipv6-route", 43),
    ("ipv6-frag", 44),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmp6", 58),
    ("ipv6-icmp", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ospf", 89),
    ("pim", 103),
    ("ipcomp", 108),
    ("vrrp", 112),
    ("l2tp", 115),
    ("sctp", 132),
    ("mh", 135),
    ("ipv6-mh", 135),
    ("mobility-header", 135),
    ("udplite", 136),
];

/// IP protocol numbers used by selectors.
pub mod ipproto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// GRE.
    pub const GRE: u8 = 47;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// Mobility header.
    pub const MH: u8 = 135;
    /// UDP-Lite.
    pub const UDPLITE: u8 = 136;
    /// IPSEC_ULPROTO_ANY.
    pub const ANY: u8 = 255;
}

/// The number of a protocol name.
pub fn protocol_by_name(name: &str) -> Option<u8> {
    PROTOCOL_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, p)| p)
}

/// The first name of a protocol number, for statements.
pub fn protocol_name(proto: u8) -> Option<&'static str> {
    PROTOCOL_NAMES
        .iter()
        .find(|(_, p)| *p == proto)
        .map(|&(n, _)| n)
}

/// Whether a protocol carries ICMP-style type/code instead of ports.
pub fn is_icmp_like(proto: u8) -> bool {
    matches!(proto, ipproto::ICMP | ipproto::ICMPV6 | ipproto::MH)
}
