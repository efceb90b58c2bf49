//! Packets for test input, built by `etherparse`'s `PacketBuilder` (lengths,
//! protocol numbers and checksums filled in by it), never by the code a
//! test checks; and [`transport`], the UDP/TCP payload of a captured
//! packet, parsed by `etherparse` too.
//!
//! Raw IP packets start with the IPv4 or IPv6 header; [`ethernet`] puts one
//! in an Ethernet II frame. The family follows the addresses. [`Ip`] sets
//! the header fields the builder does not derive (TTL, TOS/traffic class,
//! identification, DF, flow label), IPv4 options and the IPv6 Hop-by-Hop,
//! Destination Options and Routing headers (their bytes after Next Header
//! and Hdr Ext Len, as RFC 8200 §4 lays them out; any Routing Type,
//! including the deprecated Type 0 the AH tests use).
//!
//! ```
//! use testkit::packet::{self, Ip};
//! let v4 = packet::udp("192.0.2.1", 5060, "192.0.2.2", 5060, b"INVITE");
//! assert_eq!(packet::checksum(&v4[..20]), 0);
//! // IPv6 with a Hop-by-Hop header holding one PadN option.
//! let v6 = Ip::new("2001:db8::1", "2001:db8::2")
//!     .hop_by_hop(&[1, 4, 0, 0, 0, 0])
//!     .udp(5060, 5060, b"INVITE");
//! assert_eq!((v6[6], v6[40]), (0, 17));
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    EtherType, Ethernet2Header, IpDscp, IpEcn, IpHeaders, IpNumber, Ipv4Header, Ipv4Options,
    Ipv6Extensions, Ipv6FlowLabel, Ipv6Header, Ipv6RawExtHeader, Ipv6RoutingExtensions,
    PacketBuilder, SlicedPacket, TransportSlice,
};

use crate::pcap;

/// Source MAC address of [`ethernet`] frames.
pub const MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Destination MAC address of [`ethernet`] frames.
pub const MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// An address given as text, `IpAddr`, `Ipv4Addr`, `Ipv6Addr` or octets.
pub trait IntoIp {
    /// The address.
    fn into_ip(self) -> IpAddr;
}

impl IntoIp for IpAddr {
    fn into_ip(self) -> IpAddr {
        self
    }
}

impl IntoIp for Ipv4Addr {
    fn into_ip(self) -> IpAddr {
        IpAddr::V4(self)
    }
}

impl IntoIp for Ipv6Addr {
    fn into_ip(self) -> IpAddr {
        IpAddr::V6(self)
    }
}

impl IntoIp for [u8; 4] {
    fn into_ip(self) -> IpAddr {
        IpAddr::from(self)
    }
}

impl IntoIp for [u8; 16] {
    fn into_ip(self) -> IpAddr {
        IpAddr::from(self)
    }
}

impl IntoIp for &str {
    fn into_ip(self) -> IpAddr {
        self.parse()
            .unwrap_or_else(|e| panic!("address {self:?}: {e}"))
    }
}

impl IntoIp for &String {
    fn into_ip(self) -> IpAddr {
        self.as_str().into_ip()
    }
}

/// The IP layer of a packet to build: addresses, the header fields
/// `etherparse` does not derive, IPv4 options, IPv6 extension headers.
#[derive(Clone, Debug)]
pub struct Ip {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    tos: u8,
    id: u16,
    dont_fragment: bool,
    flow_label: u32,
    ipv4_options: Vec<u8>,
    hop_by_hop: Option<Vec<u8>>,
    destination_options: Option<Vec<u8>>,
    routing: Option<Vec<u8>>,
}

impl Ip {
    /// From `src` to `dst` (both IPv4 or both IPv6): TTL 64, TOS 0,
    /// identification 0, DF set, flow label 0, no options.
    pub fn new(src: impl IntoIp, dst: impl IntoIp) -> Ip {
        let (src, dst) = (src.into_ip(), dst.into_ip());
        assert_eq!(
            src.is_ipv4(),
            dst.is_ipv4(),
            "{src} and {dst}: one address family"
        );
        Ip {
            src,
            dst,
            ttl: 64,
            tos: 0,
            id: 0,
            dont_fragment: true,
            flow_label: 0,
            ipv4_options: Vec::new(),
            hop_by_hop: None,
            destination_options: None,
            routing: None,
        }
    }

    /// IPv4 TTL or IPv6 hop limit.
    pub fn ttl(mut self, ttl: u8) -> Ip {
        self.ttl = ttl;
        self
    }

    /// IPv4 TOS byte (DSCP and ECN) or IPv6 traffic class.
    pub fn tos(mut self, tos: u8) -> Ip {
        self.tos = tos;
        self
    }

    /// IPv4 identification.
    pub fn id(mut self, id: u16) -> Ip {
        self.id = id;
        self
    }

    /// IPv4 Don't Fragment flag.
    pub fn dont_fragment(mut self, df: bool) -> Ip {
        self.dont_fragment = df;
        self
    }

    /// IPv6 flow label (20 bits).
    pub fn flow_label(mut self, label: u32) -> Ip {
        self.flow_label = label;
        self
    }

    /// IPv4 options, as they appear after the 20-byte header (a multiple
    /// of 4 bytes, at most 40).
    pub fn ipv4_options(mut self, options: &[u8]) -> Ip {
        self.ipv4_options = options.to_vec();
        self
    }

    /// An IPv6 Hop-by-Hop Options header holding `options` (6, 14, 22...
    /// bytes: the header is a multiple of 8 bytes).
    pub fn hop_by_hop(mut self, options: &[u8]) -> Ip {
        self.hop_by_hop = Some(options.to_vec());
        self
    }

    /// An IPv6 Destination Options header (before any Routing header)
    /// holding `options`, sized as for [`Ip::hop_by_hop`].
    pub fn destination_options(mut self, options: &[u8]) -> Ip {
        self.destination_options = Some(options.to_vec());
        self
    }

    /// An IPv6 Routing header: `data` is Routing Type, Segments Left and
    /// the type-specific data (for Type 0: 4 reserved bytes and the
    /// addresses), sized as for [`Ip::hop_by_hop`].
    pub fn routing(mut self, data: &[u8]) -> Ip {
        self.routing = Some(data.to_vec());
        self
    }

    fn headers(&self) -> IpHeaders {
        let ext = |what: &str, data: &Option<Vec<u8>>| {
            data.as_ref().map(|d| {
                // The builder links the Next Header fields.
                Ipv6RawExtHeader::new_raw(IpNumber(255), d)
                    .unwrap_or_else(|e| panic!("IPv6 {what} of {} bytes: {e}", d.len()))
            })
        };
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                assert!(
                    self.hop_by_hop.is_none()
                        && self.destination_options.is_none()
                        && self.routing.is_none(),
                    "IPv6 extension headers on an IPv4 packet"
                );
                let mut h = Ipv4Header::new(0, self.ttl, IpNumber::UDP, s.octets(), d.octets())
                    .expect("an empty payload fits");
                h.dscp = IpDscp::try_new(self.tos >> 2).expect("6 bits");
                h.ecn = IpEcn::try_new(self.tos & 3).expect("2 bits");
                h.identification = self.id;
                h.dont_fragment = self.dont_fragment;
                h.options = Ipv4Options::try_from(&self.ipv4_options[..])
                    .unwrap_or_else(|e| panic!("IPv4 options: {e}"));
                IpHeaders::Ipv4(h, Default::default())
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                assert!(
                    self.ipv4_options.is_empty(),
                    "IPv4 options on an IPv6 packet"
                );
                let h = Ipv6Header {
                    traffic_class: self.tos,
                    flow_label: Ipv6FlowLabel::try_new(self.flow_label)
                        .unwrap_or_else(|e| panic!("flow label: {e}")),
                    payload_length: 0,
                    next_header: IpNumber::UDP,
                    hop_limit: self.ttl,
                    source: s.octets(),
                    destination: d.octets(),
                };
                let exts = Ipv6Extensions {
                    hop_by_hop_options: ext("Hop-by-Hop header", &self.hop_by_hop),
                    destination_options: ext(
                        "Destination Options header",
                        &self.destination_options,
                    ),
                    routing: ext("Routing header", &self.routing).map(|routing| {
                        Ipv6RoutingExtensions {
                            routing,
                            final_destination_options: None,
                        }
                    }),
                    fragment: None,
                    auth: None,
                };
                IpHeaders::Ipv6(h, exts)
            }
            _ => unreachable!("checked in Ip::new"),
        }
    }

    /// A UDP datagram (checksum filled in; for IPv6 the pseudo-header
    /// uses the IPv6 header's destination, also behind a Routing header).
    pub fn udp(&self, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ip(self.headers()).udp(sport, dport);
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload)
            .unwrap_or_else(|e| panic!("UDP packet: {e}"));
        out
    }

    /// A TCP segment with PSH and ACK (acknowledging 1), window 65535.
    pub fn tcp(&self, sport: u16, dport: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ip(self.headers())
            .tcp(sport, dport, seq, 65535)
            .psh()
            .ack(1);
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload)
            .unwrap_or_else(|e| panic!("TCP packet: {e}"));
        out
    }

    /// An ICMP (IPv4) or ICMPv6 (IPv6) echo request.
    pub fn icmp_echo_request(&self, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
        let ip = PacketBuilder::ip(self.headers());
        let mut out = Vec::new();
        if self.src.is_ipv4() {
            ip.icmpv4_echo_request(id, seq).write(&mut out, payload)
        } else {
            ip.icmpv6_echo_request(id, seq).write(&mut out, payload)
        }
        .unwrap_or_else(|e| panic!("ICMP packet: {e}"));
        out
    }
}

/// A UDP datagram from `src`:`sport` to `dst`:`dport` with [`Ip::new`]'s
/// defaults (raw IP).
pub fn udp(src: impl IntoIp, sport: u16, dst: impl IntoIp, dport: u16, payload: &[u8]) -> Vec<u8> {
    Ip::new(src, dst).udp(sport, dport, payload)
}

/// A TCP segment (see [`Ip::tcp`]) with [`Ip::new`]'s defaults (raw IP).
pub fn tcp(
    src: impl IntoIp,
    sport: u16,
    dst: impl IntoIp,
    dport: u16,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    Ip::new(src, dst).tcp(sport, dport, seq, payload)
}

/// An ICMP or ICMPv6 echo request with [`Ip::new`]'s defaults (raw IP).
pub fn icmp_echo_request(
    src: impl IntoIp,
    dst: impl IntoIp,
    id: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    Ip::new(src, dst).icmp_echo_request(id, seq, payload)
}

/// The raw IP packet `ip` in an Ethernet II frame from [`MAC_SRC`] to
/// [`MAC_DST`], EtherType by the IP version.
pub fn ethernet(ip: &[u8]) -> Vec<u8> {
    let ether_type = match ip.first().map(|b| b >> 4) {
        Some(4) => EtherType::IPV4,
        Some(6) => EtherType::IPV6,
        v => panic!("not an IP packet (version {v:?})"),
    };
    let mut out = Ethernet2Header {
        source: MAC_SRC,
        destination: MAC_DST,
        ether_type,
    }
    .to_bytes()
    .to_vec();
    out.extend_from_slice(ip);
    out
}

/// The Internet checksum (RFC 1071) of `data`: 0 over a header (or
/// pseudo-header and segment) whose checksum field is right.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// UDP or TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// The transport layer of a captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport<'a> {
    /// UDP or TCP.
    pub proto: Proto,
    /// Source address (of the outermost IP header).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// The UDP or TCP payload.
    pub payload: &'a [u8],
}

/// The UDP datagram or TCP segment in a record of a `linktype` capture
/// (Ethernet, with VLAN tags or not; raw IP; Linux cooked), parsed by
/// `etherparse`; `None` for anything else (ARP, ICMP, a fragment, a
/// truncated packet).
pub fn transport(linktype: u32, data: &[u8]) -> Option<Transport<'_>> {
    let p = match linktype {
        pcap::LINKTYPE_ETHERNET => SlicedPacket::from_ethernet(data),
        pcap::LINKTYPE_LINUX_SLL => SlicedPacket::from_linux_sll(data),
        pcap::LINKTYPE_RAW | pcap::LINKTYPE_IPV4 | pcap::LINKTYPE_IPV6 => {
            SlicedPacket::from_ip(data)
        }
        _ => return None,
    }
    .ok()?;
    let (src, dst) = match p.net? {
        etherparse::NetSlice::Ipv4(ip) => (
            IpAddr::V4(ip.header().source_addr()),
            IpAddr::V4(ip.header().destination_addr()),
        ),
        etherparse::NetSlice::Ipv6(ip) => (
            IpAddr::V6(ip.header().source_addr()),
            IpAddr::V6(ip.header().destination_addr()),
        ),
        etherparse::NetSlice::Arp(_) => return None,
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
    Some(Transport {
        proto,
        src,
        dst,
        sport,
        dport,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_v4_and_v6_parse_back_with_good_checksums() {
        for (s, d) in [("192.0.2.1", "192.0.2.2"), ("2001:db8::1", "2001:db8::2")] {
            let p = udp(s, 5060, d, 5061, b"hello");
            let t = transport(pcap::LINKTYPE_RAW, &p).unwrap();
            assert_eq!(
                (t.src, t.dst, t.sport, t.dport, t.payload),
                (s.into_ip(), d.into_ip(), 5060, 5061, &b"hello"[..])
            );
            let f = ethernet(&p);
            assert_eq!(&f[..12], &[MAC_DST, MAC_SRC].concat()[..]);
            assert_eq!(transport(pcap::LINKTYPE_ETHERNET, &f), Some(t.clone()));
            // UDP checksum over the pseudo-header: 0 when right.
            let (mut pseudo, l4) = if p[0] >> 4 == 4 {
                assert_eq!(checksum(&p[..20]), 0, "IPv4 header checksum");
                (p[12..20].to_vec(), &p[20..])
            } else {
                (p[8..40].to_vec(), &p[40..])
            };
            pseudo.extend([0, 17]);
            pseudo.extend(u16::try_from(l4.len()).unwrap().to_be_bytes());
            pseudo.extend(l4);
            assert_eq!(checksum(&pseudo), 0, "UDP checksum");
        }
    }

    #[test]
    fn header_fields_and_extension_headers_land_where_rfc_8200_puts_them() {
        let p = Ip::new("192.0.2.1", "192.0.2.2")
            .tos(0x10)
            .id(0x1234)
            .ipv4_options(&[7, 7, 4, 0, 0, 0, 0, 0x94, 4, 0, 0, 0])
            .udp(1, 2, b"x");
        assert_eq!(&p[..8], &[0x48, 0x10, 0, 41, 0x12, 0x34, 0x40, 0]);
        assert_eq!(checksum(&p[..32]), 0);
        let p = Ip::new("2001:db8::1", "2001:db8::2")
            .flow_label(0x12345)
            .hop_by_hop(&[0x3e, 2, 0xab, 0xcd, 1, 0])
            .destination_options(&[1, 4, 0, 0, 0, 0])
            .udp(0x13c4, 0x13c4, b"ext");
        assert_eq!(&p[..8], &[0x60, 0x01, 0x23, 0x45, 0, 27, 0, 64]);
        assert_eq!(&p[40..48], &[60, 0, 0x3e, 2, 0xab, 0xcd, 1, 0]);
        assert_eq!(&p[48..56], &[17, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(&p[56..60], &[0x13, 0xc4, 0x13, 0xc4]);
        let rh = Ip::new("2001:db8::1", "2001:db8::a")
            .routing(&[[0u8, 2, 0, 0, 0, 0].as_slice(), &[0xbb; 32]].concat())
            .udp(1, 2, b"r");
        assert_eq!((rh[6], rh[40], rh[41], rh[42], rh[43]), (43, 17, 4, 0, 2));
        assert_eq!(transport(pcap::LINKTYPE_RAW, &rh).unwrap().payload, b"r");
    }

    #[test]
    fn tcp_and_icmp() {
        let t = tcp("2001:db8::1", 1000, "2001:db8::2", 80, 7, b"GET");
        let seg = transport(pcap::LINKTYPE_RAW, &t).unwrap();
        assert_eq!((seg.proto, seg.payload), (Proto::Tcp, &b"GET"[..]));
        let i = icmp_echo_request("192.0.2.1", "192.0.2.2", 1, 2, b"ping");
        assert_eq!((i[9], i[20]), (1, 8));
        assert_eq!(checksum(&i[20..]), 0);
        let i6 = icmp_echo_request("2001:db8::1", "2001:db8::2", 1, 2, b"ping");
        assert_eq!((i6[6], i6[40]), (58, 128));
        assert!(transport(pcap::LINKTYPE_RAW, &i).is_none());
    }
}
