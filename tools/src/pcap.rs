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
/// else (ARP, fragments, ICMP, truncated packets). The headers are read by
/// `etherparse` (Ethernet with VLAN tags, Linux cooked v1, raw IP; IPv6
/// extension headers).
pub fn segment(linktype: u32, data: &[u8]) -> Option<Segment<'_>> {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let p = match linktype {
        LINKTYPE_ETHERNET => SlicedPacket::from_ethernet(data).ok()?,
        LINKTYPE_LINUX_SLL => SlicedPacket::from_linux_sll(data).ok()?,
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => SlicedPacket::from_ip(data).ok()?,
        _ => return None,
    };
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
