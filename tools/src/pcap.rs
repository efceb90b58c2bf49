//! libpcap files: read and write records, and find the UDP or TCP payload
//! of Ethernet, raw IP and Linux cooked captures (IPv4 and IPv6).

use std::net::IpAddr;

use anyhow::{Context, Result, bail};

/// Ethernet (DLT_EN10MB).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Raw IP (DLT_RAW as stored in files).
pub const LINKTYPE_RAW: u32 = 101;
/// Linux cooked capture v1.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// Raw IPv4.
pub const LINKTYPE_IPV4: u32 = 228;
/// Raw IPv6.
pub const LINKTYPE_IPV6: u32 = 229;

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Timestamp seconds.
    pub ts_sec: u32,
    /// Timestamp fraction (micro- or nanoseconds, as in the file).
    pub ts_frac: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// A parsed capture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The link-layer type of every record.
    pub linktype: u32,
    /// Whether timestamps are in nanoseconds.
    pub nanos: bool,
    /// The records in file order.
    pub records: Vec<Record>,
}

/// Parses a libpcap file (either byte order, micro- or nanosecond).
pub fn parse(bytes: &[u8]) -> Result<Capture> {
    let hdr = bytes
        .get(..24)
        .context("pcap: file shorter than its 24-byte header")?;
    let magic = [hdr[0], hdr[1], hdr[2], hdr[3]];
    let (le, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => bail!(
            "pcap: unknown magic {:02x?} (pcapng is not supported)",
            magic
        ),
    };
    let u32_at = |b: &[u8], i: usize| -> u32 {
        let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = u32_at(hdr, 20) & 0x0fff_ffff;
    let mut records = Vec::new();
    let mut rest = &bytes[24..];
    while !rest.is_empty() {
        let rh = rest.get(..16).context("pcap: truncated record header")?;
        let incl = u32_at(rh, 8) as usize;
        let data = rest.get(16..16 + incl).context("pcap: truncated record")?;
        records.push(Record {
            ts_sec: u32_at(rh, 0),
            ts_frac: u32_at(rh, 4),
            data: data.to_vec(),
        });
        rest = &rest[16 + incl..];
    }
    Ok(Capture {
        linktype,
        nanos,
        records,
    })
}

/// Writes a little-endian libpcap file.
pub fn write(cap: &Capture) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(
        &if cap.nanos {
            0xa1b2_3c4d_u32
        } else {
            0xa1b2_c3d4
        }
        .to_le_bytes(),
    );
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&cap.linktype.to_le_bytes());
    for r in &cap.records {
        out.extend_from_slice(&r.ts_sec.to_le_bytes());
        out.extend_from_slice(&r.ts_frac.to_le_bytes());
        out.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.data);
    }
    out
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
/// else (ARP, fragments, ICMP, truncated packets).
pub fn segment(linktype: u32, data: &[u8]) -> Option<Segment<'_>> {
    let ip = match linktype {
        LINKTYPE_ETHERNET => {
            let mut off = 12;
            let mut ethertype = u16::from_be_bytes([*data.get(12)?, *data.get(13)?]);
            // 802.1Q / QinQ tags.
            while ethertype == 0x8100 || ethertype == 0x88a8 {
                off += 4;
                ethertype = u16::from_be_bytes([*data.get(off)?, *data.get(off + 1)?]);
            }
            if ethertype != 0x0800 && ethertype != 0x86dd {
                return None;
            }
            data.get(off + 2..)?
        }
        LINKTYPE_LINUX_SLL => data.get(16..)?,
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => data,
        _ => return None,
    };
    let (proto, src, dst, l4) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
            if frag & 0x3fff != 0 {
                return None; // fragment
            }
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (
                *ip.get(9)?,
                IpAddr::from(src),
                IpAddr::from(dst),
                ip.get(ihl..total.min(ip.len()))?,
            )
        }
        6 => {
            let plen = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            let mut next = *ip.get(6)?;
            let mut rest = ip.get(40..(40 + plen).min(ip.len()))?;
            // Skip hop-by-hop, routing and destination options headers.
            while matches!(next, 0 | 43 | 60) {
                let len = (usize::from(*rest.get(1)?) + 1) * 8;
                next = *rest.first()?;
                rest = rest.get(len..)?;
            }
            (next, IpAddr::from(src), IpAddr::from(dst), rest)
        }
        _ => return None,
    };
    let (proto, payload) = match proto {
        17 => (Proto::Udp, l4.get(8..)?),
        6 => {
            let off = usize::from(l4.get(12)? >> 4) * 4;
            (Proto::Tcp, l4.get(off..)?)
        }
        _ => return None,
    };
    Some(Segment {
        proto,
        src,
        dst,
        sport: u16::from_be_bytes([*l4.first()?, *l4.get(1)?]),
        dport: u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]),
        payload,
    })
}

fn checksum_add(sum: &mut u32, bytes: &[u8]) {
    for c in bytes.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        *sum += u32::from(w);
    }
}

fn checksum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builds an Ethernet frame carrying a UDP datagram from `src`:`sport` to
/// `dst`:`dport` (IPv4 or IPv6, checksums filled in).
pub fn udp_frame(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    let udp_len = (8 + payload.len()) as u16;
    let mut udp = Vec::with_capacity(8 + payload.len());
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut sum = 0u32;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            checksum_add(&mut sum, &s.octets());
            checksum_add(&mut sum, &d.octets());
            checksum_add(&mut sum, &[0, 17]);
            checksum_add(&mut sum, &udp_len.to_be_bytes());
            checksum_add(&mut sum, &udp);
            let c = checksum_fold(sum);
            udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
            f.extend_from_slice(&[0x08, 0x00]);
            let total = (20 + udp.len()) as u16;
            let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let mut hs = 0u32;
            checksum_add(&mut hs, &ip);
            let hc = checksum_fold(hs);
            ip[10..12].copy_from_slice(&hc.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        _ => {
            let to6 = |a: IpAddr| match a {
                IpAddr::V4(v) => v.to_ipv6_mapped(),
                IpAddr::V6(v) => v,
            };
            let (s, d) = (to6(src), to6(dst));
            checksum_add(&mut sum, &s.octets());
            checksum_add(&mut sum, &d.octets());
            checksum_add(&mut sum, &u32::from(udp_len).to_be_bytes());
            checksum_add(&mut sum, &[0, 0, 0, 17]);
            checksum_add(&mut sum, &udp);
            let c = checksum_fold(sum);
            udp[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&udp_len.to_be_bytes());
            f.extend_from_slice(&[17, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
    }
    f.extend_from_slice(&udp);
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
            assert_eq!(parse(&write(&cap)).unwrap(), cap);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"short").is_err());
        assert!(
            parse(&[
                0xd4, 0xc3, 0xb2, 0xa1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
                9
            ])
            .is_err()
        );
        for n in 0..60 {
            let _ = segment(LINKTYPE_ETHERNET, &vec![0x45; n]);
            let _ = segment(LINKTYPE_RAW, &vec![0x60; n]);
        }
    }
}
