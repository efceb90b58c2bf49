//! IP headers, read once: the workspace's one walk over an IPv4 or IPv6
//! packet ([`parse`]), built on `etherparse`'s header slicers, which read
//! IPv4 (with options), IPv6 and its extension headers in place without
//! allocating. What every part of the workspace needs from a packet comes
//! out of that one walk: the addresses, where an inbound ESP/AH header sits,
//! where an outbound one goes in transport mode, the upper-layer protocol
//! with its offset, and the fragment state.
//!
//! Hand-written here is only what `etherparse` does not do in place: the
//! walk's stopping rules (etherparse's own IPv6 walk treats AH as one more
//! extension header and steps over it, and its IPv4 slice steps over AH
//! too, while IPsec must stop there), rewriting length and Next Header
//! fields of a packet being transformed, and fresh tunnel headers. The
//! Internet checksum ([`Checksum`]) is `etherparse`'s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice,
};

use crate::Error;

/// IP protocol numbers used here (IANA "Assigned Internet Protocol Numbers").
pub mod proto {
    /// IPv6 Hop-by-Hop Options.
    pub const HOPOPT: u8 = 0;
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IPv4 in IP (tunnel mode inner IPv4).
    pub const IPV4: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP (RFC 3948 encapsulation).
    pub const UDP: u8 = 17;
    /// IPv6 in IP (tunnel mode inner IPv6).
    pub const IPV6: u8 = 41;
    /// IPv6 Routing Header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 Fragment Header.
    pub const IPV6_FRAG: u8 = 44;
    /// ESP.
    pub const ESP: u8 = 50;
    /// AH.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// "No Next Header": ESP dummy packets (RFC 4303 §2.6).
    pub const NO_NEXT_HEADER: u8 = 59;
    /// IPv6 Destination Options.
    pub const IPV6_OPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// Mobility Header.
    pub const MH: u8 = 135;
    /// UDP-Lite.
    pub const UDPLITE: u8 = 136;
}

/// IPv4 fixed header length.
pub const IPV4_HEADER_LEN: usize = 20;
/// IPv6 fixed header length.
pub const IPV6_HEADER_LEN: usize = 40;
/// UDP header length (RFC 768).
pub const UDP_HEADER_LEN: usize = 8;

/// Offset of the IPv4 Protocol field.
const V4_PROTOCOL: usize = 9;
/// Offset of the IPv6 base header's Next Header field.
const V6_NEXT_HEADER: usize = 6;

/// IP version of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// Where an IPsec header goes (outbound) or is (inbound) in an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderChain {
    /// IP version.
    pub version: IpVersion,
    /// Bytes of IP header + extension headers before the IPsec header.
    pub header_len: usize,
    /// Offset of the byte holding the Next Header / Protocol value that
    /// names what follows `header_len` (IPv4 Protocol, IPv6 Next Header of
    /// the base header or of the last extension header kept in front).
    pub nh_offset: usize,
    /// The value at `nh_offset`.
    pub next_header: u8,
    /// Total packet length from the IP header.
    pub total_len: usize,
}

/// Whether a packet is a fragment (RFC 791, RFC 8200 §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fragment {
    /// A whole datagram.
    No,
    /// The first fragment: the upper-layer header (ports) is readable.
    First,
    /// A later fragment: no upper-layer header (RFC 4301 §4.4.1.1 OPAQUE).
    Later,
}

/// Everything one walk over a packet's IP headers finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpHeaders {
    /// IP version.
    pub version: IpVersion,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Type of Service / Traffic Class.
    pub tos: u8,
    /// Total length from the IP header (for [`parse_quoted`]: at most the
    /// bytes present).
    pub total_len: usize,
    /// Inbound: the first header that is not IPv4 options or an IPv6
    /// Hop-by-Hop, Routing or Destination Options header (normally ESP, AH,
    /// or UDP for RFC 3948).
    pub inbound: HeaderChain,
    /// Outbound transport mode: where ESP/AH is inserted. IPv4: after the
    /// header and its options (RFC 4303 §3.1.1). IPv6: after Hop-by-Hop,
    /// Routing and Destination Options headers, except that Destination
    /// Options after a Routing header stay behind ESP/AH as end-to-end
    /// headers (RFC 4303 §3.1.1 leaves the choice for Destination Options;
    /// this is the placement of Linux `ip6_find_1stfragopt` and scapy).
    pub outbound: HeaderChain,
    /// The upper-layer protocol: what follows every IPv6 extension header
    /// this walk knows, the Fragment header included (stops at ESP and AH).
    pub upper_protocol: u8,
    /// Offset of the upper-layer header.
    pub upper_offset: usize,
    /// Fragment state.
    pub fragment: Fragment,
}

impl IpHeaders {
    /// The upper-layer bytes of `pkt` (the packet this was parsed from):
    /// empty for a later fragment.
    pub fn upper<'a>(&self, pkt: &'a [u8]) -> &'a [u8] {
        if self.fragment == Fragment::Later {
            return &[];
        }
        pkt.get(self.upper_offset..self.total_len).unwrap_or(&[])
    }
}

fn truncated(what: &'static str, needed: usize, got: usize) -> Error {
    Error::Truncated { what, needed, got }
}

/// Walks the IP headers of the packet at the start of `pkt` (IPv4 or IPv6,
/// chosen by the version nibble). The IP length fields must fit `pkt`
/// (bytes after the IP length, e.g. link-layer padding, are ignored).
/// Never panics; malformed headers are an [`Error::Truncated`] or
/// [`Error::BadIpHeader`].
#[inline(always)]
pub fn parse(pkt: &[u8]) -> Result<IpHeaders, Error> {
    walk(pkt, false)
}

/// [`parse`] for the header an ICMP error quotes (RFC 792, RFC 4443 §2.4:
/// the start of the offending packet): its length fields may exceed the
/// bytes present, which then bound the walk.
pub fn parse_quoted(pkt: &[u8]) -> Result<IpHeaders, Error> {
    walk(pkt, true)
}

// Inlined, IPv4 included, so that the walked headers stay in registers
// instead of going through memory (a measurable stall on the data path).
#[inline(always)]
fn walk(pkt: &[u8], lax: bool) -> Result<IpHeaders, Error> {
    match pkt.first().map(|v| v >> 4) {
        Some(4) => walk_v4(pkt, lax),
        Some(6) => walk_v6(pkt, lax),
        Some(_) => Err(Error::BadIpHeader {
            reason: "IP version is neither 4 nor 6",
        }),
        None => Err(truncated("IP header", 1, 0)),
    }
}

#[inline(always)]
fn walk_v4(pkt: &[u8], lax: bool) -> Result<IpHeaders, Error> {
    use etherparse::err::ipv4::{HeaderError, HeaderSliceError};
    let h = Ipv4HeaderSlice::from_slice(pkt).map_err(|e| match e {
        HeaderSliceError::Len(l) => truncated("IPv4 header", l.required_len, pkt.len()),
        HeaderSliceError::Content(HeaderError::UnexpectedVersion { .. }) => {
            Error::BadIpHeader { reason: "not IPv4" }
        }
        HeaderSliceError::Content(_) => Error::BadIpHeader {
            reason: "IHL below 5",
        },
    })?;
    let hl = h.slice().len();
    let mut total = usize::from(h.total_len());
    if total < hl {
        if !lax {
            return Err(Error::BadIpHeader {
                reason: "total length below header length",
            });
        }
        total = hl;
    }
    if total > pkt.len() {
        if !lax {
            return Err(truncated("IPv4 packet", total, pkt.len()));
        }
        total = pkt.len();
    }
    let offset = h.fragments_offset().value();
    let fragment = match (offset, h.more_fragments()) {
        (0, false) => Fragment::No,
        (0, true) => Fragment::First,
        _ => Fragment::Later,
    };
    let protocol = h.protocol().0;
    let chain = HeaderChain {
        version: IpVersion::V4,
        header_len: hl,
        nh_offset: V4_PROTOCOL,
        next_header: protocol,
        total_len: total,
    };
    Ok(IpHeaders {
        version: IpVersion::V4,
        src: IpAddr::V4(h.source_addr()),
        dst: IpAddr::V4(h.destination_addr()),
        tos: h.slice().get(1).copied().unwrap_or(0),
        total_len: total,
        inbound: chain,
        outbound: chain,
        upper_protocol: protocol,
        upper_offset: hl,
        fragment,
    })
}

fn walk_v6(pkt: &[u8], lax: bool) -> Result<IpHeaders, Error> {
    use etherparse::err::ipv6::HeaderSliceError;
    let h = Ipv6HeaderSlice::from_slice(pkt).map_err(|e| match e {
        HeaderSliceError::Len(l) => truncated("IPv6 header", l.required_len, pkt.len()),
        HeaderSliceError::Content(_) => Error::BadIpHeader { reason: "not IPv6" },
    })?;
    // Payload Length 0 would be a jumbogram (RFC 2675): not carried here,
    // so the packet ends after the fixed header.
    let mut total = IPV6_HEADER_LEN + usize::from(h.payload_length());
    if total > pkt.len() {
        if !lax {
            return Err(truncated("IPv6 packet", total, pkt.len()));
        }
        total = pkt.len();
    }
    let bytes = pkt.get(..total).unwrap_or(pkt);
    let mut off = IPV6_HEADER_LEN;
    let mut nh_offset = V6_NEXT_HEADER;
    let mut nh = h.next_header().0;
    let mut inbound = None;
    let mut outbound = None;
    let mut seen_routing = false;
    let mut fragment = Fragment::No;
    let chain = |header_len, nh_offset, next_header| HeaderChain {
        version: IpVersion::V6,
        header_len,
        nh_offset,
        next_header,
        total_len: total,
    };
    loop {
        let rest = bytes.get(off..).unwrap_or(&[]);
        match nh {
            proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS => {
                if nh == proto::IPV6_OPTS && seen_routing && outbound.is_none() {
                    outbound = Some(chain(off, nh_offset, nh));
                }
                seen_routing |= nh == proto::IPV6_ROUTE;
                let x = Ipv6RawExtHeaderSlice::from_slice(rest)
                    .map_err(|e| truncated("IPv6 extension header", off + e.required_len, total))?;
                nh_offset = off;
                nh = x.next_header().0;
                off += x.slice().len();
            }
            proto::IPV6_FRAG => {
                inbound.get_or_insert(chain(off, nh_offset, nh));
                outbound.get_or_insert(chain(off, nh_offset, nh));
                let x = Ipv6FragmentHeaderSlice::from_slice(rest)
                    .map_err(|e| truncated("IPv6 fragment header", off + e.required_len, total))?;
                fragment = if x.fragment_offset().value() == 0 {
                    Fragment::First
                } else {
                    Fragment::Later
                };
                nh_offset = off;
                nh = x.next_header().0;
                off += x.slice().len();
                if fragment == Fragment::Later {
                    // The rest of the chain is in the first fragment.
                    break;
                }
            }
            _ => break,
        }
    }
    let here = chain(off, nh_offset, nh);
    Ok(IpHeaders {
        version: IpVersion::V6,
        src: IpAddr::V6(h.source_addr()),
        dst: IpAddr::V6(h.destination_addr()),
        tos: h.traffic_class(),
        total_len: total,
        inbound: inbound.unwrap_or(here),
        outbound: outbound.unwrap_or(here),
        upper_protocol: nh,
        upper_offset: off,
        fragment,
    })
}

/// Outbound transport mode: where ESP/AH is inserted ([`IpHeaders::outbound`]).
/// Fragments are refused (RFC 4303 §3.1.1: transport mode applies to whole
/// datagrams).
pub fn locate_outbound(pkt: &[u8]) -> Result<HeaderChain, Error> {
    let h = parse(pkt)?;
    if h.fragment != Fragment::No {
        return Err(Error::Fragment);
    }
    Ok(h.outbound)
}

/// Inbound: where the IPsec header is ([`IpHeaders::inbound`]). Fragments
/// are refused (reassembly comes first, RFC 4303 §3.4.1).
pub fn locate_inbound(pkt: &[u8]) -> Result<HeaderChain, Error> {
    let h = parse(pkt)?;
    if h.fragment != Fragment::No {
        return Err(Error::Fragment);
    }
    Ok(h.inbound)
}

/// The IP version, length from the IP header and TOS/traffic class of the
/// IP packet at the start of `pkt`, checked to fit `pkt` (the inner packet
/// of tunnel mode).
pub fn ip_packet(pkt: &[u8]) -> Result<(IpVersion, usize, u8), Error> {
    let h = parse(pkt)?;
    Ok((h.version, h.total_len, h.tos))
}

fn set_u16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Recomputes the IPv4 header checksum over the IHL×4 header bytes.
pub fn fill_ipv4_checksum(header: &mut [u8]) {
    let hl = usize::from(header.first().map_or(0, |v| v & 0x0f)) * 4;
    set_u16(header, 10, 0);
    let c = Checksum::new()
        .add_bytes(header.get(..hl).unwrap_or(&[]))
        .finish();
    set_u16(header, 10, c);
}

/// Writes a fresh 20-byte IPv4 header (tunnel mode outer header, RFC 4301
/// §5.1.2.1: TOS copied from the inner header; DF clear; TTL 64; checksum
/// filled).
pub fn emit_ipv4_header(
    out: &mut [u8],
    tos: u8,
    total_len: u16,
    ident: u16,
    protocol: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) {
    let Some(h) = out.get_mut(..IPV4_HEADER_LEN) else {
        return;
    };
    h.fill(0);
    h[0] = 0x45;
    h[1] = tos;
    set_u16(h, 2, total_len);
    set_u16(h, 4, ident);
    h[8] = 64;
    h[V4_PROTOCOL] = protocol;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    fill_ipv4_checksum(h);
}

/// Writes a fresh 40-byte IPv6 header (tunnel mode outer header: traffic
/// class copied from the inner header, flow label 0, hop limit 64).
pub fn emit_ipv6_header(
    out: &mut [u8],
    traffic_class: u8,
    payload_len: u16,
    next_header: u8,
    src: Ipv6Addr,
    dst: Ipv6Addr,
) {
    let Some(h) = out.get_mut(..IPV6_HEADER_LEN) else {
        return;
    };
    h.fill(0);
    h[0] = 0x60 | (traffic_class >> 4);
    h[1] = traffic_class << 4;
    set_u16(h, 4, payload_len);
    h[V6_NEXT_HEADER] = next_header;
    h[7] = 64;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
}

/// Writes a fresh IP header of `src`'s family for a packet of `total_len`
/// bytes whose payload is `protocol`, into the start of `out`; returns its
/// length (20 or 40), or `None` for mixed families or a length that does
/// not fit the header.
pub fn emit_ip_header(
    out: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    total_len: usize,
) -> Option<usize> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let tl = u16::try_from(total_len).ok()?;
            (out.len() >= IPV4_HEADER_LEN).then_some(())?;
            emit_ipv4_header(out, 0, tl, 0, protocol, s, d);
            Some(IPV4_HEADER_LEN)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let pl = u16::try_from(total_len.checked_sub(IPV6_HEADER_LEN)?).ok()?;
            (out.len() >= IPV6_HEADER_LEN).then_some(())?;
            emit_ipv6_header(out, 0, pl, protocol, s, d);
            Some(IPV6_HEADER_LEN)
        }
        _ => None,
    }
}

/// Fixes the IP length fields and (IPv4) the header checksum after the
/// packet changed length to `total_len`.
pub fn fix_ip_length(pkt: &mut [u8], version: IpVersion, total_len: usize) -> Result<(), Error> {
    let Ok(tl) = u16::try_from(match version {
        IpVersion::V4 => total_len,
        IpVersion::V6 => total_len.saturating_sub(IPV6_HEADER_LEN),
    }) else {
        return Err(Error::PacketTooLong { len: total_len });
    };
    match version {
        IpVersion::V4 => {
            let hl = usize::from(pkt.first().map_or(0, |v| v & 0x0f)) * 4;
            let Some(h) = pkt.get_mut(..hl.max(IPV4_HEADER_LEN)) else {
                return Err(truncated("IPv4 header", hl, 0));
            };
            set_u16(h, 2, tl);
            fill_ipv4_checksum(h);
        }
        IpVersion::V6 => set_u16(pkt, 4, tl),
    }
    Ok(())
}

/// The Internet checksum (RFC 1071), on `etherparse`'s summing.
///
/// ```
/// use ipsec_esp::wire::Checksum;
/// // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, checksum 220d.
/// let c = Checksum::new().add_bytes(&[0x00, 0x01, 0xf2, 0x03]).add_bytes(&[0xf4, 0xf5, 0xf6, 0xf7]);
/// assert_eq!(c.finish(), 0x220d);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    // One's-complement sum of native-endian 16-bit words, as etherparse
    // keeps it (byte order is a final swap, RFC 1071 §2.B).
    sum: u64,
}

impl Checksum {
    /// An empty sum.
    pub fn new() -> Checksum {
        Checksum::default()
    }

    /// Adds bytes (an odd length is padded with a zero byte, so only the
    /// last piece may be odd).
    #[must_use]
    pub fn add_bytes(self, bytes: &[u8]) -> Checksum {
        Checksum {
            sum: etherparse::checksum::u64_16bit_word::add_slice(self.sum, bytes),
        }
    }

    /// Adds one 16-bit word given as a number (e.g. a pseudo-header length).
    #[must_use]
    pub fn add_u16(self, v: u16) -> Checksum {
        self.add_bytes(&v.to_be_bytes())
    }

    /// Adds an IPv4/IPv6 pseudo-header (RFC 768, RFC 8200 §8.1): the
    /// addresses, the upper-layer length and the protocol.
    #[must_use]
    pub fn add_pseudo_header(self, src: IpAddr, dst: IpAddr, protocol: u8, len: u32) -> Checksum {
        let c = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.add_bytes(&s.octets()).add_bytes(&d.octets()),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.add_bytes(&s.octets()).add_bytes(&d.octets()),
            _ => self,
        };
        c.add_bytes(&len.to_be_bytes()).add_bytes(&[0, protocol])
    }

    /// The folded sum, not complemented, as a number (what a
    /// `CHECKSUM_PARTIAL` field holds).
    pub fn folded(self) -> u16 {
        !self.finish()
    }

    /// The checksum as a number (write it big-endian).
    pub fn finish(self) -> u16 {
        u16::from_be(etherparse::checksum::u64_16bit_word::ones_complement(
            self.sum,
        ))
    }
}

/// The Internet checksum of `data` ([`Checksum`]).
pub fn checksum(data: &[u8]) -> u16 {
    Checksum::new().add_bytes(data).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_rfc1071_example() {
        // RFC 1071 §3 example bytes: 00 01 f2 03 f4 f5 f6 f7 -> sum ddf2, checksum 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        assert_eq!(
            Checksum::new()
                .add_bytes(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])
                .folded(),
            0xddf2
        );
        // Odd length: the last byte is padded.
        assert_eq!(checksum(&[0x01]), !0x0100);
    }

    fn v6_with(exts: &[(u8, usize)], last: u8) -> Vec<u8> {
        // exts: (type, len in bytes) in order.
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[6] = exts.first().map_or(last, |e| e.0);
        for (i, (_, len)) in exts.iter().enumerate() {
            let mut h = vec![0u8; *len];
            h[0] = exts.get(i + 1).map_or(last, |e| e.0);
            h[1] = (*len / 8 - 1) as u8;
            p.extend(h);
        }
        p.extend([1, 2, 3, 4]);
        let pl = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&pl.to_be_bytes());
        p
    }

    #[test]
    fn ipv6_outbound_placement() {
        // HBH, Routing, DestOpt, UDP: ESP after Routing; DestOpt behind it.
        let p = v6_with(&[(0, 8), (43, 24), (60, 8)], 17);
        let c = locate_outbound(&p).unwrap();
        assert_eq!((c.header_len, c.nh_offset, c.next_header), (72, 48, 60));
        let h = parse(&p).unwrap();
        assert_eq!((h.upper_protocol, h.upper_offset), (17, 80));
        // DestOpt, Routing, UDP: DestOpt before routing stays in front.
        let p = v6_with(&[(60, 16), (43, 24)], 17);
        let c = locate_outbound(&p).unwrap();
        assert_eq!((c.header_len, c.nh_offset, c.next_header), (80, 56, 17));
        // DestOpt without routing header: in front, as Linux and scapy do.
        let p = v6_with(&[(60, 8)], 17);
        let c = locate_outbound(&p).unwrap();
        assert_eq!((c.header_len, c.nh_offset, c.next_header), (48, 40, 17));
        // Fragment header refused.
        let p = v6_with(&[(44, 8)], 17);
        assert_eq!(locate_outbound(&p), Err(Error::Fragment));
        assert_eq!(parse(&p).unwrap().fragment, Fragment::First);
        // Truncated extension header.
        let mut p = v6_with(&[(0, 8)], 17);
        p[41] = 9;
        assert!(matches!(locate_outbound(&p), Err(Error::Truncated { .. })));
    }

    #[test]
    fn ipv6_inbound_walk() {
        let p = v6_with(&[(0, 8), (60, 8)], 50);
        let c = locate_inbound(&p).unwrap();
        assert_eq!((c.header_len, c.nh_offset, c.next_header), (56, 48, 50));
        // AH is where the walk stops (etherparse's own walk would step over it).
        let p = v6_with(&[(0, 8), (51, 16)], 17);
        let h = parse(&p).unwrap();
        assert_eq!((h.inbound.header_len, h.inbound.next_header), (48, 51));
        assert_eq!(h.upper_protocol, 51);
    }

    #[test]
    fn later_fragments_have_no_upper_header() {
        let mut p = v6_with(&[(44, 8)], 17);
        p[42..44].copy_from_slice(&(8u16 << 3).to_be_bytes());
        let h = parse(&p).unwrap();
        assert_eq!(h.fragment, Fragment::Later);
        assert_eq!(h.upper(&p), &[] as &[u8]);
    }

    #[test]
    fn ipv4_checks() {
        let mut p = vec![
            0x45, 0, 0, 24, 0, 0, 0x20, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9,
        ];
        assert_eq!(locate_outbound(&p), Err(Error::Fragment));
        assert_eq!(parse(&p).unwrap().fragment, Fragment::First);
        p[6] = 0x40; // DF only
        assert_eq!(locate_outbound(&p).unwrap().header_len, 20);
        p[3] = 200;
        assert!(matches!(locate_outbound(&p), Err(Error::Truncated { .. })));
        // An ICMP quote may be cut short: the walk is bounded by the bytes.
        let q = parse_quoted(&p).unwrap();
        assert_eq!((q.total_len, q.upper_protocol), (24, 17));
        p[3] = 24;
        p[0] = 0x44;
        assert!(matches!(
            locate_outbound(&p),
            Err(Error::BadIpHeader { .. })
        ));
    }

    #[test]
    fn emitted_headers_parse_back() {
        let mut b = [0u8; 60];
        let n = emit_ip_header(
            &mut b,
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            17,
            28,
        )
        .unwrap();
        assert_eq!(n, 20);
        assert_eq!(checksum(&b[..20]), 0);
        let h = parse(&b[..28]).unwrap();
        assert_eq!(h.dst, "192.0.2.2".parse::<IpAddr>().unwrap());
        let n = emit_ip_header(
            &mut b,
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            50,
            60,
        )
        .unwrap();
        assert_eq!(n, 40);
        let h = parse(&b).unwrap();
        assert_eq!((h.total_len, h.upper_protocol), (60, 50));
        assert!(
            emit_ip_header(
                &mut b,
                "192.0.2.1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
                50,
                60
            )
            .is_none()
        );
    }

    #[test]
    fn never_panics_on_prefixes() {
        let p = v6_with(&[(0, 8), (43, 24), (60, 8), (44, 8)], 17);
        for n in 0..p.len() {
            let _ = parse(&p[..n]);
            let _ = parse_quoted(&p[..n]);
        }
    }
}
