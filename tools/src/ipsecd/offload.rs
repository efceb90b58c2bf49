//! TUN offloads on the outbound side: `virtio_net_hdr` parsing, checksum
//! completion (`VIRTIO_NET_HDR_F_NEEDS_CSUM`) and TCP segmentation of TSO
//! super-packets, done as a NIC would (each segment a valid packet with
//! complete checksums) before ESP sees it.

use ipsec_esp::wire::{self, Checksum};

/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;

/// The fields of a `struct virtio_net_hdr` (little-endian, virtio 1.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VnetHdr {
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
    pub needs_csum: bool,
    /// GSO type without the ECN bit.
    pub gso_type: u8,
    /// Segment payload size.
    pub gso_size: u16,
    /// Where checksumming starts.
    pub csum_start: u16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Parses the 10-byte header.
    pub fn parse(h: &[u8; 10]) -> Option<VnetHdr> {
        let le = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
        Some(VnetHdr {
            needs_csum: h[0] & 1 != 0,
            gso_type: h[1] & 0x7f,
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }
}

/// Completes a partial checksum: the field holds the pseudo-header sum,
/// the data from `csum_start` is summed into it (RFC 1071). `false` if the
/// offsets do not fit the packet.
pub fn complete_checksum(pkt: &mut [u8], h: &VnetHdr) -> bool {
    let start = usize::from(h.csum_start);
    let at = start + usize::from(h.csum_offset);
    if at + 2 > pkt.len() || start >= pkt.len() {
        return false;
    }
    let c = wire::checksum(&pkt[start..]);
    // A UDP checksum of 0 means "none" (RFC 768): send all ones instead.
    let c = if c == 0 && h.csum_offset == 6 {
        0xffff
    } else {
        c
    };
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
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
    wire::fill_ipv4_checksum(&mut pkt[..ihl]);
}

/// Writes segment `k` of the TSO super-packet `pkt` into `out` (IPv4 or
/// IPv6 + TCP, headers copied and fixed, full checksums); its length, or
/// `None` when there is no segment `k` or the packet is not TCP as the
/// header says.
pub fn segment(pkt: &[u8], h: &VnetHdr, k: usize, out: &mut [u8]) -> Option<usize> {
    let mss = usize::from(h.gso_size);
    if mss == 0 {
        return None;
    }
    let (v4, ihl) = match (h.gso_type, pkt.first()? >> 4) {
        (GSO_TCPV4, 4) => (true, usize::from(pkt[0] & 0x0f) * 4),
        (GSO_TCPV6, 6) if pkt.get(6) == Some(&6) => (false, 40),
        _ => return None,
    };
    if v4 && (ihl < 20 || pkt.get(9) != Some(&6)) {
        return None;
    }
    let thl = usize::from(pkt.get(ihl + 12)? >> 4) * 4;
    let hl = ihl + thl;
    if thl < 20 || pkt.len() < hl {
        return None;
    }
    let payload = pkt.len() - hl;
    let off = k.checked_mul(mss)?;
    if off >= payload {
        return None;
    }
    let len = mss.min(payload - off);
    let last = off + len == payload;
    let total = hl + len;
    let o = out.get_mut(..total)?;
    o[..hl].copy_from_slice(&pkt[..hl]);
    o[hl..].copy_from_slice(&pkt[hl + off..hl + off + len]);
    if v4 {
        o[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        let id = u16::from_be_bytes([o[4], o[5]]).wrapping_add(k as u16);
        o[4..6].copy_from_slice(&id.to_be_bytes());
        o[10..12].fill(0);
        wire::fill_ipv4_checksum(&mut o[..ihl]);
    } else {
        o[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
    }
    let t = ihl;
    let seq = u32::from_be_bytes([o[t + 4], o[t + 5], o[t + 6], o[t + 7]]).wrapping_add(off as u32);
    o[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
    if k > 0 {
        o[t + 13] &= !0x80; // CWR only on the first segment
    }
    if !last {
        o[t + 13] &= !0x09; // FIN and PSH only on the last
    }
    // TCP checksum over the pseudo-header (RFC 793 §3.1 / RFC 8200 §8.1).
    o[t + 16..t + 18].fill(0);
    let tcp_len = (total - ihl) as u32;
    let addrs = if v4 { &o[12..20] } else { &o[8..40] };
    let c = Checksum::new()
        .add_bytes(addrs)
        .add_bytes(&tcp_len.to_be_bytes())
        .add_bytes(&[0, 6])
        .add_bytes(&o[t..total])
        .finish();
    o[t + 16..t + 18].copy_from_slice(&c.to_be_bytes());
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp4(payload: usize) -> Vec<u8> {
        let total = 40 + payload;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[4..6].copy_from_slice(&100u16.to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20..22].copy_from_slice(&1000u16.to_be_bytes());
        p[22..24].copy_from_slice(&2000u16.to_be_bytes());
        p[24..28].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
        p[32] = 0x50;
        p[33] = 0x18 | 0x80; // ACK PSH CWR
        for (i, b) in p[40..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    fn verify_tcp4(seg: &[u8]) -> bool {
        // etherparse recomputes the TCP checksum independently.
        let s = etherparse::SlicedPacket::from_ip(seg).unwrap();
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(tcp))) =
            (&s.net, &s.transport)
        else {
            return false;
        };
        let want = tcp
            .to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
            .unwrap();
        want == tcp.checksum() && wire::checksum(&seg[..20]) == 0
    }

    #[test]
    fn tso_segments_reassemble_with_valid_checksums() {
        let p = tcp4(3000);
        let h = VnetHdr {
            needs_csum: true,
            gso_type: GSO_TCPV4,
            gso_size: 1360,
            csum_start: 20,
            csum_offset: 16,
        };
        let mut out = vec![0u8; 2000];
        let mut data = Vec::new();
        let mut k = 0;
        while let Some(n) = segment(&p, &h, k, &mut out) {
            let s = &out[..n];
            assert!(verify_tcp4(s), "segment {k}");
            let seq = u32::from_be_bytes([s[24], s[25], s[26], s[27]]);
            assert_eq!(seq, 0xffff_fff0u32.wrapping_add((k * 1360) as u32));
            assert_eq!(u16::from_be_bytes([s[4], s[5]]), 100 + k as u16);
            let last = n - 40 < 1360;
            assert_eq!(s[33] & 0x08 != 0, last, "PSH on the last only");
            assert_eq!(s[33] & 0x80 != 0, k == 0, "CWR on the first only");
            data.extend_from_slice(&s[40..]);
            k += 1;
        }
        assert_eq!(k, 3);
        assert_eq!(data, p[40..]);
        assert_eq!(segment(&p[..30], &h, 0, &mut out), None);
    }

    #[test]
    fn a_zero_ipv4_id_is_replaced() {
        let mut p = tcp4(10);
        p[4..6].fill(0);
        ensure_ipv4_id(&mut p, 7);
        assert_eq!(&p[4..6], &[0, 7]);
        assert_eq!(wire::checksum(&p[..20]), 0);
        // A non-zero ID and other versions are left alone.
        ensure_ipv4_id(&mut p, 9);
        assert_eq!(&p[4..6], &[0, 7]);
        let mut v6 = [0x60u8; 40];
        ensure_ipv4_id(&mut v6, 9);
        assert_eq!(v6, [0x60; 40]);
    }

    #[test]
    fn partial_checksum_completed() {
        let mut p = tcp4(101);
        wire::fill_ipv4_checksum(&mut p[..20]);
        // The kernel leaves the pseudo-header sum in the field.
        let tcp_len = (p.len() - 20) as u32;
        let pseudo = Checksum::new()
            .add_bytes(&p[12..20])
            .add_bytes(&tcp_len.to_be_bytes())
            .add_bytes(&[0, 6])
            .folded();
        p[36..38].copy_from_slice(&pseudo.to_be_bytes());
        let h = VnetHdr::parse(&[1, 0, 0, 0, 0, 0, 20, 0, 16, 0]).unwrap();
        assert!(complete_checksum(&mut p, &h));
        assert!(verify_tcp4(&p));
        let bad = VnetHdr {
            csum_start: 500,
            ..h
        };
        assert!(!complete_checksum(&mut p, &bad));
    }
}
