//! Reading selectors out of plaintext packets and small header helpers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipsec_esp::wire::{self, proto};
use sadb::{PacketSelector, UpperInfo};

fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn upper(protocol: u8, l4: &[u8]) -> UpperInfo {
    match protocol {
        // TCP, UDP, SCTP, UDP-Lite: ports first.
        6 | 17 | 132 | 136 => match (be16(l4, 0), be16(l4, 2)) {
            (Some(src), Some(dst)) => UpperInfo::Ports { src, dst },
            _ => UpperInfo::None,
        },
        1 | 58 => match (l4.first(), l4.get(1)) {
            (Some(&t), Some(&c)) => UpperInfo::Icmp {
                icmp_type: t,
                code: c,
            },
            _ => UpperInfo::None,
        },
        _ => UpperInfo::None,
    }
}

/// The selector fields of an IPv4 or IPv6 packet (RFC 4301 §4.4.1.1); `None`
/// if the header is not well formed. Non-first fragments have no ports.
pub fn selector(pkt: &[u8]) -> Option<PacketSelector> {
    match pkt.first()? >> 4 {
        4 => {
            let ihl = usize::from(pkt.first()? & 0x0f) * 4;
            if ihl < 20 || pkt.len() < ihl {
                return None;
            }
            let src = IpAddr::V4(Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]));
            let protocol = pkt[9];
            let frag_off = be16(pkt, 6)? & 0x1fff;
            let upper = if frag_off != 0 {
                UpperInfo::None
            } else {
                upper(protocol, pkt.get(ihl..)?)
            };
            Some(PacketSelector {
                src,
                dst,
                protocol,
                upper,
            })
        }
        6 => {
            let (nh, off) = v6_upper(pkt)?;
            let src = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(pkt.get(8..24)?).ok()?));
            let dst = IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(pkt.get(24..40)?).ok()?));
            let upper = match off {
                Some(o) => upper(nh, pkt.get(o..)?),
                None => UpperInfo::None,
            };
            Some(PacketSelector {
                src,
                dst,
                protocol: nh,
                upper,
            })
        }
        _ => None,
    }
}

/// Walks the IPv6 extension headers: (upper-layer protocol, its offset if
/// ports are readable). A fragment header hides the ports of later fragments.
fn v6_upper(pkt: &[u8]) -> Option<(u8, Option<usize>)> {
    if pkt.len() < 40 {
        return None;
    }
    let mut nh = pkt[6];
    let mut off = 40;
    for _ in 0..8 {
        match nh {
            proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS => {
                let len = (usize::from(*pkt.get(off + 1)?) + 1) * 8;
                nh = *pkt.get(off)?;
                off += len;
            }
            proto::IPV6_FRAG => {
                let frag_off = be16(pkt, off + 2)? >> 3;
                nh = *pkt.get(off)?;
                off += 8;
                if frag_off != 0 {
                    return Some((nh, None));
                }
            }
            _ => return Some((nh, Some(off))),
        }
    }
    None
}

/// Length of the IP header (IPv4 with options; IPv6 with the extension
/// headers in front of ESP/AH/UDP) of a protected packet, and the protocol
/// that follows it.
pub fn outer_header(pkt: &[u8]) -> Option<(usize, u8)> {
    match pkt.first()? >> 4 {
        4 => {
            let ihl = usize::from(pkt.first()? & 0x0f) * 4;
            (ihl >= 20 && pkt.len() >= ihl).then(|| (ihl, pkt[9]))
        }
        6 => {
            let (nh, off) = v6_upper(pkt)?;
            off.map(|o| (o, nh))
        }
        _ => None,
    }
}

/// Writes a 20-byte IPv4 header (no options, TTL 64, checksum filled).
pub fn write_ipv4_header(h: &mut [u8], total_len: u16, protocol: u8, src: Ipv4Addr, dst: Ipv4Addr) {
    if h.len() < 20 {
        return;
    }
    h[..20].fill(0);
    h[0] = 0x45;
    h[2..4].copy_from_slice(&total_len.to_be_bytes());
    h[8] = 64;
    h[9] = protocol;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = wire::checksum(&h[..20], 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Writes a 40-byte IPv6 header (traffic class and flow label 0, hop limit 64).
pub fn write_ipv6_header(h: &mut [u8], payload_len: u16, next: u8, src: Ipv6Addr, dst: Ipv6Addr) {
    if h.len() < 40 {
        return;
    }
    h[..40].fill(0);
    h[0] = 0x60;
    h[4..6].copy_from_slice(&payload_len.to_be_bytes());
    h[6] = next;
    h[7] = 64;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
}

/// Gives an IPv4 packet whose Identification is 0 a non-zero one and fixes
/// the header checksum. A header-included send would otherwise let the
/// kernel choose the ID after AH computed its ICV over it (RFC 4302
/// §3.3.3.1.1.1: Identification is immutable).
pub fn ensure_ipv4_id(pkt: &mut [u8], id: u16) {
    if pkt.first().map(|b| b >> 4) != Some(4) || pkt.len() < 20 || pkt[4..6] != [0, 0] {
        return;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    if ihl < 20 || pkt.len() < ihl {
        return;
    }
    pkt[4..6].copy_from_slice(&id.max(1).to_be_bytes());
    pkt[10..12].fill(0);
    let c = wire::checksum(&pkt[..ihl], 0);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_v4_selector() {
        let mut p = [0u8; 28];
        p[0] = 0x45;
        p[9] = 17;
        p[12..16].copy_from_slice(&[192, 0, 2, 1]);
        p[16..20].copy_from_slice(&[192, 0, 2, 2]);
        p[20..22].copy_from_slice(&5062u16.to_be_bytes());
        p[22..24].copy_from_slice(&5068u16.to_be_bytes());
        let s = selector(&p).unwrap();
        assert_eq!(
            s,
            PacketSelector::udp(
                "192.0.2.1".parse().unwrap(),
                5062,
                "192.0.2.2".parse().unwrap(),
                5068
            )
        );
        // A non-first fragment has no ports.
        p[7] = 1;
        assert_eq!(selector(&p).unwrap().upper, UpperInfo::None);
    }

    #[test]
    fn v6_ext_headers_and_garbage() {
        let mut p = vec![0u8; 40 + 8 + 8];
        p[0] = 0x60;
        p[6] = 60; // destination options
        p[40] = 6; // then TCP
        p[48..50].copy_from_slice(&1u16.to_be_bytes());
        p[50..52].copy_from_slice(&2u16.to_be_bytes());
        let s = selector(&p).unwrap();
        assert_eq!(s.protocol, 6);
        assert_eq!(s.upper, UpperInfo::Ports { src: 1, dst: 2 });
        for n in 0..p.len() {
            let _ = selector(&p[..n]);
            let _ = outer_header(&p[..n]);
        }
        assert_eq!(selector(&[0x45; 10]), None);
    }

    #[test]
    fn header_writers_checksum() {
        let mut h = [0u8; 20];
        write_ipv4_header(
            &mut h,
            40,
            50,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
        );
        assert_eq!(wire::checksum(&h, 0), 0);
        let mut p = h;
        p[4..6].fill(0);
        ensure_ipv4_id(&mut p, 7);
        assert_eq!(&p[4..6], &[0, 7]);
        assert_eq!(wire::checksum(&p, 0), 0);
    }
}
