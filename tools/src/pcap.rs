//! Capture files: read pcap and pcapng (through the `pcap-parser` crate),
//! write plain pcap (a 24-byte header and 16-byte record headers, written
//! here), and find the IP packet, UDP datagram or TCP segment inside the
//! link types the tools take: Ethernet (1, with VLAN tags), raw IP (101,
//! 228, 229) and Linux cooked captures v1 (113, `tcpdump -i any`) and v2
//! (276).
//!
//! A pcapng file may hold several sections, each with several interfaces
//! of different link types and timestamp resolutions: every [`Packet`]
//! carries its interface's link type, and timestamps are converted to
//! microseconds, or nanoseconds when any interface is finer than a
//! microsecond ([`Trace::nanos`]).
//!
//! ```
//! use tools::pcap::{self, Capture, Record};
//! let cap = Capture {
//!     linktype: pcap::LINKTYPE_RAW,
//!     nanos: false,
//!     records: vec![Record { ts_sec: 1, ts_frac: 2, data: vec![0x45; 20] }],
//! };
//! let trace = pcap::parse_trace(&pcap::write(&cap)).unwrap();
//! assert_eq!(trace.format, pcap::Format::Pcap);
//! assert_eq!(trace.linktype(), Some(pcap::LINKTYPE_RAW));
//! assert_eq!(trace.packets[0].record, cap.records[0]);
//! ```

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use anyhow::Result;
use pcap_parser::pcapng::Block;

/// Ethernet (DLT_EN10MB).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Raw IP (DLT_RAW as stored in files).
pub const LINKTYPE_RAW: u32 = 101;
/// Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// Raw IPv4.
pub const LINKTYPE_IPV4: u32 = 228;
/// Raw IPv6.
pub const LINKTYPE_IPV6: u32 = 229;
/// Linux cooked capture v2 (`tcpdump -i any` since libpcap 1.10).
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// The link types [`locate_ip`] reads, as errors list them.
pub const SUPPORTED_LINKTYPES: &str =
    "Ethernet 1, raw IP 101, 228, 229, Linux cooked 113 (SLL) and 276 (SLL2)";

/// Whether [`locate_ip`] reads this link type.
pub fn supported(linktype: u32) -> bool {
    matches!(
        linktype,
        LINKTYPE_ETHERNET
            | LINKTYPE_RAW
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_LINUX_SLL2
    )
}

/// One record of a pcap file written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Timestamp seconds.
    pub ts_sec: u32,
    /// Timestamp fraction: micro- or nanoseconds, as the capture's `nanos`
    /// says.
    pub ts_frac: u32,
    /// The captured bytes, from the link-layer header on.
    pub data: Vec<u8>,
}

/// A pcap file to write: one link type for every record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The link-layer type of every record.
    pub linktype: u32,
    /// Whether timestamps are in nanoseconds.
    pub nanos: bool,
    /// The records in file order.
    pub records: Vec<Record>,
}

/// The format of a file read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// libpcap (either byte order, micro- or nanoseconds).
    Pcap,
    /// pcapng (what Wireshark and tshark save by default).
    Pcapng,
}

/// One packet of a file read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The link type of its interface.
    pub linktype: u32,
    /// Its interface: the pcapng Interface Description Block's index in its
    /// section (0 in a pcap file).
    pub interface: u32,
    /// Timestamp (in the unit [`Trace::nanos`] says) and bytes.
    pub record: Record,
}

/// A capture file read: pcap or pcapng.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// pcap or pcapng.
    pub format: Format,
    /// Whether the records' `ts_frac` are nanoseconds (else microseconds).
    pub nanos: bool,
    /// The link type of each interface, in file order (one for pcap).
    pub interfaces: Vec<u32>,
    /// The packets in file order.
    pub packets: Vec<Packet>,
}

impl Trace {
    /// The link type every packet has, or every interface when there are
    /// no packets; `None` when they differ.
    pub fn linktype(&self) -> Option<u32> {
        let mut types: Vec<u32> = if self.packets.is_empty() {
            self.interfaces.clone()
        } else {
            self.packets.iter().map(|p| p.linktype).collect()
        };
        types.dedup();
        match types[..] {
            [t] => Some(t),
            [] => Some(LINKTYPE_ETHERNET),
            _ => None,
        }
    }

    /// The first packet whose link type [`locate_ip`] does not read.
    pub fn unsupported(&self) -> Option<&Packet> {
        self.packets.iter().find(|p| !supported(p.linktype))
    }
}

/// Why a file is not a capture we can read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// The file starts with neither a pcap nor a pcapng magic number.
    NotACapture,
    /// The file ends inside the pcap file header.
    TruncatedHeader,
    /// A pcap record (`packet`, from 1) is cut short.
    TruncatedRecord {
        /// The packet's number, from 1.
        packet: usize,
    },
    /// A pcapng block at byte `offset` is cut short.
    TruncatedBlock {
        /// Byte offset of the block in the file.
        offset: usize,
    },
    /// A pcapng block at byte `offset` is malformed.
    MalformedBlock {
        /// Byte offset of the block in the file.
        offset: usize,
    },
    /// A pcapng packet names an interface its section did not describe.
    UnknownInterface {
        /// The packet's number, from 1.
        packet: usize,
        /// The interface id it names.
        interface: u32,
    },
    /// An interface's `if_tsresol` is beyond 64-bit timestamps.
    BadResolution {
        /// The interface.
        interface: u32,
        /// The option's value.
        tsresol: u8,
    },
    /// A packet's timestamp is beyond what a pcap file holds (2106).
    TimestampOutOfRange {
        /// The packet's number, from 1.
        packet: usize,
    },
    /// The packets have different link types ([`parse`] only).
    MixedLinkTypes,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotACapture => f.write_str("neither a pcap nor a pcapng capture"),
            ReadError::TruncatedHeader => f.write_str("pcap file shorter than its 24-byte header"),
            ReadError::TruncatedRecord { packet } => {
                write!(f, "pcap record {packet} is cut short")
            }
            ReadError::TruncatedBlock { offset } => {
                write!(f, "pcapng block at byte {offset} is cut short")
            }
            ReadError::MalformedBlock { offset } => {
                write!(f, "pcapng block at byte {offset} is malformed")
            }
            ReadError::UnknownInterface { packet, interface } => write!(
                f,
                "packet {packet} names interface {interface}, which its pcapng section does not describe"
            ),
            ReadError::BadResolution { interface, tsresol } => write!(
                f,
                "interface {interface} has an unusable timestamp resolution (if_tsresol {tsresol:#04x})"
            ),
            ReadError::TimestampOutOfRange { packet } => {
                write!(
                    f,
                    "packet {packet} has a timestamp beyond what pcap can hold"
                )
            }
            ReadError::MixedLinkTypes => f.write_str("the packets have different link types"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Whether `bytes` start like a pcap or pcapng file (the magic numbers).
pub fn is_capture(bytes: &[u8]) -> bool {
    matches!(
        bytes.get(..4),
        Some(
            [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x34, 0xcd, 0xb2, 0xa1]
                | [0x0a, 0x0d, 0x0d, 0x0a]
        )
    )
}

/// Parses a pcap or pcapng file.
pub fn parse_trace(bytes: &[u8]) -> Result<Trace, ReadError> {
    match bytes.get(..4) {
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => parse_pcapng(bytes),
        _ if is_capture(bytes) => parse_pcap(bytes),
        _ => Err(ReadError::NotACapture),
    }
}

/// Parses a pcap or pcapng file whose packets share one link type, as a
/// [`Capture`] ([`parse_trace`] reads any).
pub fn parse(bytes: &[u8]) -> Result<Capture, ReadError> {
    let trace = parse_trace(bytes)?;
    let linktype = trace.linktype().ok_or(ReadError::MixedLinkTypes)?;
    Ok(Capture {
        linktype,
        nanos: trace.nanos,
        records: trace.packets.into_iter().map(|p| p.record).collect(),
    })
}

/// Reads and parses `path` (`-` for stdin); the error names the file.
pub fn read(path: &Path) -> Result<Trace> {
    let bytes = crate::cli::read(path)?;
    parse_trace(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", crate::cli::name(path)))
}

/// Reads `path` as [`read`], and refuses a packet of a link type
/// [`locate_ip`] does not read, naming the link type and the file.
pub fn read_supported(path: &Path) -> Result<Trace> {
    let bytes = crate::cli::read(path)?;
    parse_supported(&bytes, &crate::cli::name(path))
}

/// Parses the capture `bytes` of the file `name` as [`parse`], and
/// refuses a packet of a link type [`locate_ip`] does not read; errors
/// name the file (and the link type).
pub fn parse_supported(bytes: &[u8], name: &str) -> Result<Trace> {
    let trace = parse_trace(bytes).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    if let Some(p) = trace.unsupported() {
        let at = match trace.format {
            Format::Pcap => String::new(),
            Format::Pcapng => format!(" (interface {})", p.interface),
        };
        anyhow::bail!(
            "{name}: link type {}{at} is not supported ({SUPPORTED_LINKTYPES})",
            p.linktype
        );
    }
    Ok(trace)
}

/// The link type of a pcap header's field: its low 26 bits (libpcap's
/// `LT_LINKTYPE`; the upper bits may carry the FCS length).
fn link_of(network: i32) -> u32 {
    (network as u32) & 0x03ff_ffff
}

fn parse_pcap(bytes: &[u8]) -> Result<Trace, ReadError> {
    use pcap_parser::pcap::{
        parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header,
    };
    let (mut rest, header) = parse_pcap_header(bytes).map_err(|e| match e {
        pcap_parser::nom::Err::Incomplete(_) => ReadError::TruncatedHeader,
        _ => ReadError::NotACapture,
    })?;
    let frame = if header.is_modified_format() {
        parse_pcap_frame_modified
    } else if header.is_bigendian() {
        parse_pcap_frame_be
    } else {
        parse_pcap_frame
    };
    let linktype = link_of(header.network.0);
    let mut packets = Vec::new();
    while !rest.is_empty() {
        let (next, f) = frame(rest).map_err(|_| ReadError::TruncatedRecord {
            packet: packets.len() + 1,
        })?;
        packets.push(Packet {
            linktype,
            interface: 0,
            record: Record {
                ts_sec: f.ts_sec,
                ts_frac: f.ts_usec,
                data: f.data.to_vec(),
            },
        });
        rest = next;
    }
    Ok(Trace {
        format: Format::Pcap,
        nanos: header.is_nanosecond_precision(),
        interfaces: vec![linktype],
        packets,
    })
}

/// An interface of the current pcapng section.
struct Interface {
    linktype: u32,
    /// Timestamp units per second.
    units: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset: i64,
}

fn parse_pcapng(bytes: &[u8]) -> Result<Trace, ReadError> {
    use pcap_parser::pcapng::{parse_block_be, parse_block_le};
    use pcap_parser::traits::PcapNGPacketBlock;
    let mut section: Vec<Interface> = Vec::new();
    let mut all = Vec::new();
    // Timestamps in nanoseconds until the resolution of the whole file is
    // known.
    let mut packets = Vec::new();
    let mut nanos = false;
    let mut big_endian = false;
    let mut rest = bytes;
    while !rest.is_empty() {
        let offset = bytes.len() - rest.len();
        let parsed = if big_endian {
            parse_block_be(rest)
        } else {
            parse_block_le(rest)
        };
        let (next, block) = parsed.map_err(|e| match e {
            pcap_parser::nom::Err::Incomplete(_) => ReadError::TruncatedBlock { offset },
            _ => ReadError::MalformedBlock { offset },
        })?;
        rest = next;
        // (interface, high and low timestamp words, bytes)
        let (interface, ts, data) = match &block {
            Block::SectionHeader(shb) => {
                big_endian = shb.big_endian();
                section.clear();
                continue;
            }
            Block::InterfaceDescription(idb) => {
                let interface = u32::try_from(section.len()).unwrap_or(u32::MAX);
                let units = idb.ts_resolution().ok_or(ReadError::BadResolution {
                    interface,
                    tsresol: idb.if_tsresol,
                })?;
                nanos |= units > 1_000_000;
                let linktype = u32::from(idb.linktype.0 as u16);
                all.push(linktype);
                section.push(Interface {
                    linktype,
                    units,
                    offset: idb.if_tsoffset,
                });
                continue;
            }
            Block::EnhancedPacket(epb) => (
                epb.if_id,
                Some((epb.ts_high, epb.ts_low)),
                epb.packet_data(),
            ),
            // RFC-to-be pcapng §4.4: the first interface, no timestamp.
            Block::SimplePacket(spb) => (0, None, spb.packet_data()),
            _ => continue,
        };
        let packet = packets.len() + 1;
        let i = section
            .get(interface as usize)
            .ok_or(ReadError::UnknownInterface { packet, interface })?;
        let (ts_sec, ts_nsec) = match ts {
            Some((high, low)) => {
                timestamp(high, low, i).ok_or(ReadError::TimestampOutOfRange { packet })?
            }
            None => (0, 0),
        };
        packets.push(Packet {
            linktype: i.linktype,
            interface,
            record: Record {
                ts_sec,
                ts_frac: ts_nsec,
                data: data.to_vec(),
            },
        });
    }
    if !nanos {
        for p in &mut packets {
            p.record.ts_frac /= 1000;
        }
    }
    Ok(Trace {
        format: Format::Pcapng,
        nanos,
        interfaces: all,
        packets,
    })
}

/// A pcapng timestamp (units since 1970 plus the interface's offset) as
/// seconds and nanoseconds; `None` beyond 32-bit seconds.
fn timestamp(high: u32, low: u32, i: &Interface) -> Option<(u32, u32)> {
    let units = (u64::from(high) << 32) | u64::from(low);
    let per_sec = i.units.max(1);
    let sec = i128::from(units / per_sec) + i128::from(i.offset);
    let nsec = u128::from(units % per_sec) * 1_000_000_000 / u128::from(per_sec);
    Some((u32::try_from(sec).ok()?, u32::try_from(nsec).ok()?))
}

/// Writes a little-endian libpcap file.
pub fn write(cap: &Capture) -> Vec<u8> {
    let mut out = file_header(cap.linktype, cap.nanos);
    for r in &cap.records {
        write_record(&mut out, r.ts_sec, r.ts_frac, &r.data);
    }
    out
}

/// The header of a little-endian libpcap file (for a writer that appends
/// records as they come with [`write_record`]).
pub fn file_header(linktype: u32, nanos: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
    // magic, version 2.4, zone, sigfigs, snaplen, link type
    for w in [magic, 0x0004_0002, 0, 0, 262_144, linktype] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

/// Appends one record (timestamp and bytes) of a file begun with
/// [`file_header`].
pub fn write_record(out: &mut Vec<u8>, ts_sec: u32, ts_frac: u32, data: &[u8]) {
    let len = data.len() as u32;
    for w in [ts_sec, ts_frac, len, len] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(data);
}

/// Where the IP packet is in a captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpAt {
    /// Offset of the IP header.
    pub offset: usize,
    /// Offset of the 2-byte EtherType naming the IP version, to update when
    /// the version changes (Ethernet and Linux cooked captures).
    pub ethertype: Option<usize>,
}

/// Finds the IP packet in a frame of `linktype`; `None` for frames that do
/// not carry IPv4 or IPv6 (ARP …) and link types not in
/// [`SUPPORTED_LINKTYPES`].
pub fn locate_ip(linktype: u32, data: &[u8]) -> Option<IpAt> {
    use etherparse::{EtherType, Ethernet2Slice, SingleVlanSlice};
    let is_ip = |t: EtherType| t == EtherType::IPV4 || t == EtherType::IPV6;
    let ether_type_at = |off: usize| {
        let b = data.get(off..off + 2)?;
        Some(EtherType(u16::from_be_bytes([b[0], b[1]])))
    };
    match linktype {
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Some(IpAt {
            offset: 0,
            ethertype: None,
        }),
        // Linux cooked v1: packet type, ARPHRD type, address length,
        // 8 address bytes, then the protocol (an EtherType for IP).
        LINKTYPE_LINUX_SLL => is_ip(ether_type_at(14)?).then_some(IpAt {
            offset: 16,
            ethertype: Some(14),
        }),
        // Linux cooked v2: the protocol first, then reserved, interface
        // index, ARPHRD type, packet type, address length and 8 bytes.
        LINKTYPE_LINUX_SLL2 => (is_ip(ether_type_at(0)?) && data.len() >= 20).then_some(IpAt {
            offset: 20,
            ethertype: Some(0),
        }),
        LINKTYPE_ETHERNET => {
            let eth = Ethernet2Slice::from_slice_without_fcs(data).ok()?;
            let (mut off, mut t, mut rest) = (12, eth.ether_type(), eth.payload_slice());
            loop {
                match t {
                    // 802.1Q / QinQ tags.
                    EtherType::VLAN_TAGGED_FRAME
                    | EtherType::PROVIDER_BRIDGING
                    | EtherType::VLAN_DOUBLE_TAGGED_FRAME => {
                        let v = SingleVlanSlice::from_slice(rest).ok()?;
                        off += 4;
                        t = v.ether_type();
                        rest = v.payload_slice();
                    }
                    t if is_ip(t) => {
                        return Some(IpAt {
                            offset: off + 2,
                            ethertype: Some(off),
                        });
                    }
                    _ => return None,
                }
            }
        }
        _ => None,
    }
}

/// The transport protocol of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// A UDP datagram or TCP segment found in a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// UDP or TCP.
    pub proto: Proto,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// The payload.
    pub payload: &'a [u8],
}

/// Finds the UDP or TCP payload of a captured packet; `None` for anything
/// else (ARP, fragments, ICMP, truncated packets). The IP packet is found
/// by [`locate_ip`], its headers read by `etherparse` (IPv6 extension
/// headers included).
pub fn segment(linktype: u32, data: &[u8]) -> Option<Segment<'_>> {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let at = locate_ip(linktype, data)?;
    let p = SlicedPacket::from_ip(data.get(at.offset..)?).ok()?;
    let (src, dst) = match &p.net {
        Some(NetSlice::Ipv4(v4)) => (
            IpAddr::V4(v4.header().source_addr()),
            IpAddr::V4(v4.header().destination_addr()),
        ),
        Some(NetSlice::Ipv6(v6)) => (
            IpAddr::V6(v6.header().source_addr()),
            IpAddr::V6(v6.header().destination_addr()),
        ),
        _ => return None,
    };
    let (proto, sport, dport, payload) = match p.transport? {
        TransportSlice::Udp(u) => (
            Proto::Udp,
            u.source_port(),
            u.destination_port(),
            u.payload(),
        ),
        TransportSlice::Tcp(t) => (
            Proto::Tcp,
            t.source_port(),
            t.destination_port(),
            t.payload(),
        ),
        _ => return None,
    };
    Some(Segment {
        proto,
        src,
        dst,
        sport,
        dport,
        payload,
    })
}

/// Builds an Ethernet frame carrying a UDP datagram from `src`:`sport` to
/// `dst`:`dport` (IPv4, or IPv6 when either address is; checksums filled
/// in by `etherparse`).
pub fn udp_frame(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let eth = etherparse::PacketBuilder::ethernet2([0x02, 0, 0, 0, 0, 2], [0x02, 0, 0, 0, 0, 1]);
    let b = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64).udp(sport, dport),
        _ => {
            let to6 = |a: IpAddr| match a {
                IpAddr::V4(v) => v.to_ipv6_mapped(),
                IpAddr::V6(v) => v,
            };
            eth.ipv6(to6(src).octets(), to6(dst).octets(), 64)
                .udp(sport, dport)
        }
    };
    let mut f = Vec::with_capacity(b.size(payload.len()));
    // Writing into a Vec fails only for a payload too long for IP.
    if b.write(&mut f, payload).is_err() {
        f.clear();
    }
    f
}

/// Builds an Ethernet frame carrying a TCP segment (PSH, ACK) from
/// `src`:`sport` to `dst`:`dport`, with `(seq, ack)` the sequence number
/// of its first byte and the acknowledgement of the other direction, as
/// [`udp_frame`] does for UDP. A connection is a run of such segments,
/// each `seq` advanced by the previous payload's length (no handshake:
/// Wireshark dissects the payload anyway).
pub fn tcp_frame(
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    (seq, ack): (u32, u32),
    payload: &[u8],
) -> Vec<u8> {
    let eth = etherparse::PacketBuilder::ethernet2([0x02, 0, 0, 0, 0, 2], [0x02, 0, 0, 0, 0, 1]);
    let ip = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        _ => {
            let to6 = |a: IpAddr| match a {
                IpAddr::V4(v) => v.to_ipv6_mapped(),
                IpAddr::V6(v) => v,
            };
            eth.ipv6(to6(src).octets(), to6(dst).octets(), 64)
        }
    };
    let b = ip.tcp(sport, dport, seq, 65535).psh().ack(ack);
    let mut f = Vec::with_capacity(b.size(payload.len()));
    // Writing into a Vec fails only for a payload too long for IP.
    if b.write(&mut f, payload).is_err() {
        f.clear();
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_through_segment() {
        for (s, d) in [
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()),
            (
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            ),
        ] {
            let f = udp_frame(s, 5060, d, 5061, b"hello");
            let seg = segment(LINKTYPE_ETHERNET, &f).unwrap();
            assert_eq!(
                (seg.src, seg.dst, seg.sport, seg.dport, seg.payload),
                (s, d, 5060, 5061, &b"hello"[..])
            );
            let cap = Capture {
                linktype: 1,
                nanos: false,
                records: vec![Record {
                    ts_sec: 1,
                    ts_frac: 2,
                    data: f,
                }],
            };
            let t = parse_trace(&write(&cap)).unwrap();
            assert_eq!(
                (t.format, t.nanos, t.linktype()),
                (Format::Pcap, false, Some(1))
            );
            assert_eq!(t.packets[0].record, cap.records[0]);
        }
    }

    /// A little-endian pcapng: a section header, interfaces of `links`
    /// (link type, `if_tsresol`), then `packets` (interface, timestamp
    /// units, bytes) as Enhanced Packet Blocks.
    fn pcapng(links: &[(u16, u8)], packets: &[(u32, u64, &[u8])]) -> Vec<u8> {
        fn block(kind: u32, body: &[u8]) -> Vec<u8> {
            let mut body = body.to_vec();
            body.resize(body.len().div_ceil(4) * 4, 0);
            let len = (body.len() + 12) as u32;
            let mut b = kind.to_le_bytes().to_vec();
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&body);
            b.extend_from_slice(&len.to_le_bytes());
            b
        }
        let mut shb = 0x1a2b_3c4d_u32.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut out = block(0x0a0d_0d0a, &shb);
        for &(link, tsresol) in links {
            let mut idb = u32::from(link).to_le_bytes().to_vec();
            idb.extend_from_slice(&65535u32.to_le_bytes());
            // if_tsresol (9), length 1, padded; then opt_endofopt.
            idb.extend_from_slice(&[9, 0, 1, 0, tsresol, 0, 0, 0, 0, 0, 0, 0]);
            out.extend(block(1, &idb));
        }
        for &(ifid, ts, data) in packets {
            let mut epb = ifid.to_le_bytes().to_vec();
            epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(ts as u32).to_le_bytes());
            epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
            epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
            epb.extend_from_slice(data);
            out.extend(block(6, &epb));
        }
        out
    }

    #[test]
    fn pcapng_interfaces_keep_their_link_types_and_resolutions() {
        let ng = pcapng(
            &[(1, 6), (276, 9)],
            &[
                (0, 1_500_000_000_123_456, b"eth"),
                (1, 1_500_000_001_987_654_321, b"sll2!"),
            ],
        );
        let t = parse_trace(&ng).unwrap();
        assert_eq!((t.format, t.nanos), (Format::Pcapng, true));
        assert_eq!(t.interfaces, [1, 276]);
        assert_eq!(t.linktype(), None);
        let got: Vec<_> = t
            .packets
            .iter()
            .map(|p| (p.linktype, p.interface, p.record.ts_sec, p.record.ts_frac))
            .collect();
        assert_eq!(
            got,
            [
                (1, 0, 1_500_000_000, 123_456_000),
                (276, 1, 1_500_000_001, 987_654_321)
            ]
        );
        assert_eq!(t.packets[1].record.data, b"sll2!");
        assert_eq!(parse(&ng), Err(ReadError::MixedLinkTypes));
        // Microseconds only: fractions stay microseconds.
        let t = parse_trace(&pcapng(&[(101, 6)], &[(0, 2_000_001, b"x")])).unwrap();
        assert_eq!((t.nanos, t.packets[0].record.ts_frac), (false, 1));
        assert_eq!(t.linktype(), Some(101));
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(parse_trace(b"garbage!"), Err(ReadError::NotACapture));
        assert_eq!(parse_trace(b""), Err(ReadError::NotACapture));
        assert_eq!(
            parse_trace(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]),
            Err(ReadError::TruncatedHeader)
        );
        let mut one = write(&Capture {
            linktype: 101,
            nanos: false,
            records: vec![Record {
                ts_sec: 1,
                ts_frac: 2,
                data: vec![0x45; 20],
            }],
        });
        one.pop();
        assert_eq!(
            parse_trace(&one),
            Err(ReadError::TruncatedRecord { packet: 1 })
        );
        let ng = pcapng(&[(1, 6)], &[(0, 0, b"a"), (3, 0, b"b")]);
        assert_eq!(
            parse_trace(&ng),
            Err(ReadError::UnknownInterface {
                packet: 2,
                interface: 3
            })
        );
        let ng = pcapng(&[(1, 6)], &[(0, 0, b"a")]);
        assert!(matches!(
            parse_trace(&ng[..ng.len() - 2]),
            Err(ReadError::TruncatedBlock { .. })
        ));
        let ng = pcapng(&[(1, 0x7f)], &[]);
        assert!(matches!(
            parse_trace(&ng),
            Err(ReadError::BadResolution { .. })
        ));
    }

    #[test]
    fn ip_is_found_behind_every_link_type() {
        let ip = [0x45u8; 20];
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        let mut sll2 = vec![0x86, 0xdd, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6];
        sll2.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]);
        sll2.extend_from_slice(&ip);
        let mut vlan = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0, 0, 7, 0x08, 0];
        vlan.extend_from_slice(&ip);
        let at = |offset, e| {
            Some(IpAt {
                offset,
                ethertype: e,
            })
        };
        assert_eq!(locate_ip(LINKTYPE_LINUX_SLL, &sll), at(16, Some(14)));
        assert_eq!(locate_ip(LINKTYPE_LINUX_SLL2, &sll2), at(20, Some(0)));
        assert_eq!(locate_ip(LINKTYPE_ETHERNET, &vlan), at(18, Some(16)));
        assert_eq!(locate_ip(LINKTYPE_IPV4, &ip), at(0, None));
        // ARP behind SLL; an unsupported link type.
        sll[14..16].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(locate_ip(LINKTYPE_LINUX_SLL, &sll), None);
        assert_eq!(locate_ip(127, &ip), None);
        assert!(!supported(127) && supported(LINKTYPE_LINUX_SLL2));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // Every truncation and every byte flipped of a pcap and a pcapng.
        let ng = pcapng(
            &[(1, 6), (276, 9), (113, 0x94)],
            &[(0, 7, &[1; 30]), (1, 9, &[2; 23]), (2, u64::MAX, &[3; 5])],
        );
        let pcap = write(&Capture {
            linktype: 1,
            nanos: true,
            records: vec![Record {
                ts_sec: 1,
                ts_frac: 2,
                data: vec![7; 33],
            }],
        });
        for file in [ng, pcap] {
            for n in 0..file.len() {
                let _ = parse_trace(&file[..n]);
                for bit in [0x01, 0x80, 0xff] {
                    let mut f = file.clone();
                    f[n] ^= bit;
                    if let Ok(t) = parse_trace(&f) {
                        for p in &t.packets {
                            let _ = segment(p.linktype, &p.record.data);
                        }
                    }
                }
            }
        }
        assert!(parse(b"short").is_err());
        assert!(
            parse(&[
                0xd4, 0xc3, 0xb2, 0xa1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
                9
            ])
            .is_err()
        );
        for n in 0..60 {
            for t in [1, 101, 113, 276] {
                let _ = segment(t, &vec![0x45; n]);
                let _ = segment(t, &vec![0x86; n]);
            }
        }
    }
}
