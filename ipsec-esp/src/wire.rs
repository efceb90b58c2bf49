//! Checked views of the IP headers this crate rewrites (smoltcp style:
//! lengths are checked once in `new_checked`, after which accessors cannot
//! panic), the IPv6 extension-header walk that finds where ESP/AH sits, and
//! the Internet checksum.

use crate::Error;

/// IP protocol numbers used here (IANA "Assigned Internet Protocol Numbers").
pub mod proto {
    /// IPv6 Hop-by-Hop Options.
    pub const HOPOPT: u8 = 0;
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
    /// "No Next Header": ESP dummy packets (RFC 4303 §2.6).
    pub const NO_NEXT_HEADER: u8 = 59;
    /// IPv6 Destination Options.
    pub const IPV6_OPTS: u8 = 60;
}

/// IPv4 fixed header length.
pub const IPV4_HEADER_LEN: usize = 20;
/// IPv6 fixed header length.
pub const IPV6_HEADER_LEN: usize = 40;
/// UDP header length (RFC 768).
pub const UDP_HEADER_LEN: usize = 8;

/// A checked IPv4 header view (RFC 791).
#[derive(Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod v4 {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: core::ops::Range<usize> = 2..4;
    pub const IDENT: core::ops::Range<usize> = 4..6;
    pub const FLG_OFF: core::ops::Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: core::ops::Range<usize> = 10..12;
    pub const SRC: core::ops::Range<usize> = 12..16;
    pub const DST: core::ops::Range<usize> = 16..20;
}

fn get_u16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    match b.get(r) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn set_u16(b: &mut [u8], r: core::ops::Range<usize>, v: u16) {
    if let Some(s) = b.get_mut(r) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks version, IHL and Total Length against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < IPV4_HEADER_LEN {
            return Err(Error::Truncated {
                what: "IPv4 header",
                needed: IPV4_HEADER_LEN,
                got: b.len(),
            });
        }
        let p = Ipv4Packet { buffer };
        let b = p.buffer.as_ref();
        if b.first().map(|v| v >> 4) != Some(4) {
            return Err(Error::BadIpHeader { reason: "not IPv4" });
        }
        let hl = p.header_len();
        if hl < IPV4_HEADER_LEN {
            return Err(Error::BadIpHeader {
                reason: "IHL below 5",
            });
        }
        let tl = usize::from(p.total_len());
        if tl < hl {
            return Err(Error::BadIpHeader {
                reason: "total length below header length",
            });
        }
        if tl > b.len() {
            return Err(Error::Truncated {
                what: "IPv4 packet",
                needed: tl,
                got: b.len(),
            });
        }
        Ok(p)
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(
            self.buffer
                .as_ref()
                .get(v4::VER_IHL)
                .map_or(0, |v| v & 0x0f),
        ) * 4
    }
    /// Total Length.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), v4::LENGTH)
    }
    /// Type of Service (DSCP + ECN).
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref().get(v4::TOS).copied().unwrap_or(0)
    }
    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref().get(v4::PROTOCOL).copied().unwrap_or(0)
    }
    /// More-fragments flag set or fragment offset non-zero.
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), v4::FLG_OFF) & 0x3fff != 0
    }
    /// Source address.
    pub fn src(&self) -> [u8; 4] {
        let mut a = [0; 4];
        if let Some(s) = self.buffer.as_ref().get(v4::SRC) {
            a.copy_from_slice(s);
        }
        a
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 4] {
        let mut a = [0; 4];
        if let Some(s) = self.buffer.as_ref().get(v4::DST) {
            a.copy_from_slice(s);
        }
        a
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets Total Length.
    pub fn set_total_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), v4::LENGTH, v);
    }
    /// Sets Protocol.
    pub fn set_protocol(&mut self, v: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(v4::PROTOCOL) {
            *b = v;
        }
    }
    /// Recomputes the header checksum over the IHL×4 header bytes.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        set_u16(b, v4::CHECKSUM, 0);
        let c = checksum(b.get(..hl).unwrap_or(&[]), 0);
        set_u16(b, v4::CHECKSUM, c);
    }
}

/// Writes a fresh 20-byte IPv4 header (tunnel mode outer header, RFC 4301
/// §5.1.2.1: TOS copied from the inner header; DF clear; TTL 64).
pub fn emit_ipv4_header(
    out: &mut [u8],
    tos: u8,
    total_len: u16,
    ident: u16,
    protocol: u8,
    src: [u8; 4],
    dst: [u8; 4],
) {
    let Some(h) = out.get_mut(..IPV4_HEADER_LEN) else {
        return;
    };
    h.fill(0);
    h[v4::VER_IHL] = 0x45;
    h[v4::TOS] = tos;
    set_u16(h, v4::LENGTH, total_len);
    set_u16(h, v4::IDENT, ident);
    h[v4::TTL] = 64;
    h[v4::PROTOCOL] = protocol;
    h[v4::SRC].copy_from_slice(&src);
    h[v4::DST].copy_from_slice(&dst);
    let mut p = Ipv4Packet { buffer: h };
    p.fill_checksum();
}

/// A checked IPv6 header view (RFC 8200).
#[derive(Debug)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod v6 {
    pub const LENGTH: core::ops::Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const SRC: core::ops::Range<usize> = 8..24;
    pub const DST: core::ops::Range<usize> = 24..40;
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Checks version and Payload Length against the buffer (jumbograms,
    /// Payload Length 0, are refused).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < IPV6_HEADER_LEN {
            return Err(Error::Truncated {
                what: "IPv6 header",
                needed: IPV6_HEADER_LEN,
                got: b.len(),
            });
        }
        if b.first().map(|v| v >> 4) != Some(6) {
            return Err(Error::BadIpHeader { reason: "not IPv6" });
        }
        let p = Ipv6Packet { buffer };
        let tl = p.total_len();
        let got = p.buffer.as_ref().len();
        if tl > got {
            return Err(Error::Truncated {
                what: "IPv6 packet",
                needed: tl,
                got,
            });
        }
        Ok(p)
    }
    /// Payload Length.
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), v6::LENGTH)
    }
    /// 40 + Payload Length.
    pub fn total_len(&self) -> usize {
        IPV6_HEADER_LEN + usize::from(self.payload_len())
    }
    /// Traffic Class.
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        match (b.first(), b.get(1)) {
            (Some(x), Some(y)) => (x << 4) | (y >> 4),
            _ => 0,
        }
    }
    /// Next Header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref().get(v6::NXT_HDR).copied().unwrap_or(0)
    }
    /// Source address.
    pub fn src(&self) -> [u8; 16] {
        let mut a = [0; 16];
        if let Some(s) = self.buffer.as_ref().get(v6::SRC) {
            a.copy_from_slice(s);
        }
        a
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 16] {
        let mut a = [0; 16];
        if let Some(s) = self.buffer.as_ref().get(v6::DST) {
            a.copy_from_slice(s);
        }
        a
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets Payload Length.
    pub fn set_payload_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), v6::LENGTH, v);
    }
}

/// Writes a fresh 40-byte IPv6 header (tunnel mode outer header: traffic
/// class copied from the inner header, flow label 0, hop limit 64).
pub fn emit_ipv6_header(
    out: &mut [u8],
    traffic_class: u8,
    payload_len: u16,
    next_header: u8,
    src: [u8; 16],
    dst: [u8; 16],
) {
    let Some(h) = out.get_mut(..IPV6_HEADER_LEN) else {
        return;
    };
    h.fill(0);
    h[0] = 0x60 | (traffic_class >> 4);
    h[1] = traffic_class << 4;
    set_u16(h, v6::LENGTH, payload_len);
    h[v6::NXT_HDR] = next_header;
    h[7] = 64;
    h[v6::SRC].copy_from_slice(&src);
    h[v6::DST].copy_from_slice(&dst);
}

/// IP version of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// Length of an IPv6 extension header whose first byte is at `off` (RFC
/// 8200 §4.3-4.6: (Hdr Ext Len + 1) × 8).
fn ext_len(buf: &[u8], off: usize, end: usize) -> Result<usize, Error> {
    let l = buf.get(off + 1).ok_or(Error::Truncated {
        what: "IPv6 extension header",
        needed: off + 2,
        got: end,
    })?;
    let len = (usize::from(*l) + 1) * 8;
    if off + len > end {
        return Err(Error::Truncated {
            what: "IPv6 extension header",
            needed: off + len,
            got: end,
        });
    }
    Ok(len)
}

/// Outbound transport mode: where ESP/AH is inserted.
///
/// IPv4: after the header and its options (RFC 4303 §3.1.1). IPv6: after
/// Hop-by-Hop, Routing and Destination Options headers, except that
/// Destination Options after a Routing header stay behind ESP/AH as
/// end-to-end headers (RFC 4303 §3.1.1 leaves the choice for Destination
/// Options; this is the placement of Linux `ip6_find_1stfragopt` and scapy). Fragments are
/// refused (RFC 4303 §3.1.1: transport mode applies to whole datagrams).
pub fn locate_outbound(pkt: &[u8]) -> Result<HeaderChain, Error> {
    match pkt.first().map(|v| v >> 4) {
        Some(4) => {
            let p = Ipv4Packet::new_checked(pkt)?;
            if p.is_fragment() {
                return Err(Error::Fragment);
            }
            Ok(HeaderChain {
                version: IpVersion::V4,
                header_len: p.header_len(),
                nh_offset: v4::PROTOCOL,
                next_header: p.protocol(),
                total_len: usize::from(p.total_len()),
            })
        }
        Some(6) => {
            let p = Ipv6Packet::new_checked(pkt)?;
            let end = p.total_len();
            let mut off = IPV6_HEADER_LEN;
            let mut nh_offset = v6::NXT_HDR;
            let mut nh = p.next_header();
            let mut seen_routing = false;
            loop {
                match nh {
                    proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS => {
                        if nh == proto::IPV6_OPTS && seen_routing {
                            break;
                        }
                        seen_routing |= nh == proto::IPV6_ROUTE;
                        let len = ext_len(pkt, off, end)?;
                        nh_offset = off;
                        nh = pkt.get(off).copied().unwrap_or(0);
                        off += len;
                    }
                    proto::IPV6_FRAG => return Err(Error::Fragment),
                    _ => break,
                }
            }
            Ok(HeaderChain {
                version: IpVersion::V6,
                header_len: off,
                nh_offset,
                next_header: nh,
                total_len: end,
            })
        }
        Some(_) => Err(Error::BadIpHeader {
            reason: "IP version is neither 4 nor 6",
        }),
        None => Err(Error::Truncated {
            what: "IP header",
            needed: 1,
            got: 0,
        }),
    }
}

/// Inbound: find the first header that is not IPv4 options / IPv6
/// Hop-by-Hop, Routing or Destination Options (normally ESP, AH, or UDP for
/// RFC 3948). Fragments are refused (reassembly comes first, RFC 4303
/// §3.4.1).
pub fn locate_inbound(pkt: &[u8]) -> Result<HeaderChain, Error> {
    match pkt.first().map(|v| v >> 4) {
        Some(4) => {
            let p = Ipv4Packet::new_checked(pkt)?;
            if p.is_fragment() {
                return Err(Error::Fragment);
            }
            Ok(HeaderChain {
                version: IpVersion::V4,
                header_len: p.header_len(),
                nh_offset: v4::PROTOCOL,
                next_header: p.protocol(),
                total_len: usize::from(p.total_len()),
            })
        }
        Some(6) => {
            let p = Ipv6Packet::new_checked(pkt)?;
            let end = p.total_len();
            let mut off = IPV6_HEADER_LEN;
            let mut nh_offset = v6::NXT_HDR;
            let mut nh = p.next_header();
            while matches!(nh, proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS) {
                let len = ext_len(pkt, off, end)?;
                nh_offset = off;
                nh = pkt.get(off).copied().unwrap_or(0);
                off += len;
            }
            if nh == proto::IPV6_FRAG {
                return Err(Error::Fragment);
            }
            Ok(HeaderChain {
                version: IpVersion::V6,
                header_len: off,
                nh_offset,
                next_header: nh,
                total_len: end,
            })
        }
        Some(_) => Err(Error::BadIpHeader {
            reason: "IP version is neither 4 nor 6",
        }),
        None => Err(Error::Truncated {
            what: "IP header",
            needed: 1,
            got: 0,
        }),
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
                return Err(Error::Truncated {
                    what: "IPv4 header",
                    needed: hl,
                    got: 0,
                });
            };
            let mut p = Ipv4Packet { buffer: h };
            p.set_total_len(tl);
            p.fill_checksum();
        }
        IpVersion::V6 => {
            let mut p = Ipv6Packet { buffer: pkt };
            p.set_payload_len(tl);
        }
    }
    Ok(())
}

/// The Internet checksum (RFC 1071) of `data`, starting from the partial
/// sum `initial`.
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        if let &[a, b] = c {
            sum += u64::from(u16::from_be_bytes([a, b]));
        }
    }
    if let &[a] = chunks.remainder() {
        sum += u64::from(a) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_rfc1071_example() {
        // RFC 1071 §3 example bytes: 00 01 f2 03 f4 f5 f6 f7 -> sum ddf2, checksum 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0),
            0x220d
        );
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
    }

    #[test]
    fn ipv4_checks() {
        let mut p = vec![
            0x45, 0, 0, 24, 0, 0, 0x20, 0, 64, 17, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9,
        ];
        assert_eq!(locate_outbound(&p), Err(Error::Fragment));
        p[6] = 0x40; // DF only
        assert_eq!(locate_outbound(&p).unwrap().header_len, 20);
        p[3] = 200;
        assert!(matches!(locate_outbound(&p), Err(Error::Truncated { .. })));
        p[3] = 24;
        p[0] = 0x44;
        assert!(matches!(
            locate_outbound(&p),
            Err(Error::BadIpHeader { .. })
        ));
    }
}
