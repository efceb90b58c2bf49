//! Receive-side coalescing of TCP segments, what GRO does in a NIC driver:
//! consecutive IPv4/TCP segments of one flow, in sequence, with identical
//! headers apart from sequence number, length, IP ID and checksums, are
//! joined into one packet with a `virtio_net_hdr` asking for TCP
//! segmentation offload, so that the kernel's TCP receive path (and its
//! ACKs) runs once per batch instead of once per segment.
//!
//! The merge rules are those of Linux `tcp_gro_receive`: same addresses,
//! ports, ACK number, window, options (bytes), TOS, DF and TTL; only ACK
//! set (PSH allowed on the last); every segment but the last as long as the
//! first; a short segment or PSH ends the run. No allocation after
//! [`Gro::new`].

use ipsec_esp::wire::Checksum;

use crate::sys::VNET_HDR_LEN;

/// The largest IP packet.
const MAX_PACKET: usize = 65535;
/// Room for the `virtio_net_hdr` in front of the coalesced packet.
const OFF: usize = 16;

/// A run of coalesced segments being built.
#[derive(Debug)]
pub struct Gro {
    buf: Vec<u8>,
    len: usize,
    segs: usize,
    gso_size: usize,
    hl: usize,
    next_seq: u32,
    ended: bool,
}

/// A finished run, ready to write into the TUN.
#[derive(Debug, PartialEq, Eq)]
pub struct Coalesced<'a> {
    /// What to write: the `virtio_net_hdr` and the packet (one segment: no
    /// GSO, a zeroed header; several: GSO TCPv4 with a partial checksum).
    pub frame: &'a [u8],
    /// How many segments it carries.
    pub segments: usize,
}

impl Default for Gro {
    fn default() -> Self {
        Gro::new()
    }
}

impl Gro {
    /// An empty coalescer (one 64 KiB buffer).
    pub fn new() -> Gro {
        Gro {
            buf: vec![0u8; OFF + MAX_PACKET],
            len: 0,
            segs: 0,
            gso_size: 0,
            hl: 0,
            next_seq: 0,
            ended: false,
        }
    }

    /// Whether a run is pending.
    pub fn is_empty(&self) -> bool {
        self.segs == 0
    }

    /// TCP/IPv4 header length, payload length, sequence number and flags,
    /// if `p` is a segment that may be coalesced at all (IPv4 without
    /// options, not a fragment, TCP with only ACK and maybe PSH).
    fn tcp4(p: &[u8]) -> Option<(usize, usize, u32, u8)> {
        if p.len() < 40 || p[0] != 0x45 || p[9] != 6 || p[6] & 0x3f != 0 || p[7] != 0 {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
        let thl = usize::from(p[32] >> 4) * 4;
        if total != p.len() || thl < 20 || 20 + thl > total {
            return None;
        }
        let flags = p[33];
        if flags & !0x18 != 0 || flags & 0x10 == 0 {
            return None;
        }
        let seq = u32::from_be_bytes([p[24], p[25], p[26], p[27]]);
        Some((20 + thl, total - 20 - thl, seq, flags))
    }

    /// Adds a segment to the current run; `false` if it does not fit (the
    /// caller takes the run, retries, and writes it alone if it is refused
    /// again).
    pub fn push(&mut self, p: &[u8]) -> bool {
        let Some((hl, plen, seq, flags)) = Gro::tcp4(p) else {
            return false;
        };
        if plen == 0 {
            return false;
        }
        if self.segs == 0 {
            let Some(dst) = self.buf.get_mut(OFF..OFF + p.len()) else {
                return false;
            };
            dst.copy_from_slice(p);
            self.len = p.len();
            self.segs = 1;
            self.gso_size = plen;
            self.hl = hl;
            self.next_seq = seq.wrapping_add(plen as u32);
            self.ended = flags & 0x08 != 0;
            return true;
        }
        let Some(h) = self.buf.get(OFF..OFF + self.hl) else {
            return false;
        };
        let same = !self.ended
            && hl == self.hl
            && plen <= self.gso_size
            && self.len + plen <= MAX_PACKET
            && seq == self.next_seq
            // TOS, DF, TTL, protocol, addresses.
            && h[1] == p[1]
            && h[6] == p[6]
            && h[8..10] == p[8..10]
            && h[12..20] == p[12..20]
            // Ports, ACK number, data offset, window; options.
            && h[20..24] == p[20..24]
            && h[28..33] == p[28..33]
            && h[34..36] == p[34..36]
            && h[40..hl] == p[40..hl];
        if !same {
            return false;
        }
        let at = OFF + self.len;
        let Some(dst) = self.buf.get_mut(at..at + plen) else {
            return false;
        };
        dst.copy_from_slice(&p[hl..]);
        self.len += plen;
        self.segs += 1;
        self.next_seq = seq.wrapping_add(plen as u32);
        if plen < self.gso_size || flags & 0x08 != 0 {
            self.ended = true;
            if let Some(f) = self.buf.get_mut(OFF + 33) {
                *f |= flags & 0x08;
            }
        }
        true
    }

    /// Ends the current run and returns it to write, or `None` if empty.
    pub fn take(&mut self) -> Option<Coalesced<'_>> {
        if self.segs == 0 {
            return None;
        }
        let segments = std::mem::take(&mut self.segs);
        let (len, hl, gso_size) = (self.len, self.hl, self.gso_size);
        let start = OFF - VNET_HDR_LEN;
        let (head, pkt) = self.buf.split_at_mut(OFF);
        let pkt = pkt.get_mut(..len)?;
        let vnet = head.get_mut(start..)?;
        vnet.fill(0);
        if segments > 1 {
            pkt[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            pkt[10..12].fill(0);
            let c = Checksum::new().add_bytes(&pkt[..20]).finish();
            pkt[10..12].copy_from_slice(&c.to_be_bytes());
            // CHECKSUM_PARTIAL: the TCP checksum field holds the
            // pseudo-header sum (RFC 793 §3.1), not complemented; the
            // kernel treats the data as verified, which it was: every
            // segment passed the ESP ICV.
            let pseudo = Checksum::new()
                .add_bytes(&pkt[12..20])
                .add_bytes(&[0, 6])
                .add_u16((len - 20) as u16)
                .folded();
            pkt[36..38].copy_from_slice(&pseudo.to_be_bytes());
            // struct virtio_net_hdr: flags NEEDS_CSUM, gso_type TCPV4,
            // hdr_len, gso_size, csum_start, csum_offset (little-endian).
            vnet[0] = 1;
            vnet[1] = 1;
            vnet[2..4].copy_from_slice(&(hl as u16).to_le_bytes());
            vnet[4..6].copy_from_slice(&(gso_size as u16).to_le_bytes());
            vnet[6..8].copy_from_slice(&20u16.to_le_bytes());
            vnet[8..10].copy_from_slice(&16u16.to_le_bytes());
        }
        Some(Coalesced {
            frame: self.buf.get(start..OFF + len)?,
            segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipsecd::offload::{GSO_TCPV4, VnetHdr, segment};

    /// An IPv4/TCP segment built by etherparse (an independent builder).
    fn seg(seq: u32, payload: &[u8], psh: bool) -> Vec<u8> {
        let mut b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 2000, seq, 512)
            .ack(77);
        if psh {
            b = b.psh();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn vnet(frame: &[u8]) -> VnetHdr {
        let mut h = [0u8; 10];
        h.copy_from_slice(&frame[..10]);
        VnetHdr::parse(&h).unwrap()
    }

    #[test]
    fn a_run_is_one_gso_packet_that_segments_back_into_the_originals() {
        let mut g = Gro::new();
        let segs: Vec<Vec<u8>> = (0..4u32)
            .map(|k| seg(1000 + k * 100, &[k as u8; 100], k == 3))
            .collect();
        for s in &segs {
            assert!(g.push(s));
        }
        // PSH ended the run.
        assert!(!g.push(&seg(1400, &[9; 100], false)));
        let c = g.take().unwrap();
        assert_eq!(c.segments, 4);
        let h = vnet(c.frame);
        assert_eq!((h.gso_type, h.gso_size, h.csum_start), (GSO_TCPV4, 100, 20));
        let pkt = &c.frame[VNET_HDR_LEN..];
        assert_eq!(pkt.len(), 40 + 400);
        // The merged IPv4 header is valid.
        assert_eq!(Checksum::new().add_bytes(&pkt[..20]).finish(), 0);
        // Cut back as the kernel would, each segment equals the original
        // apart from the IP ID.
        let mut p = pkt.to_vec();
        assert!(crate::ipsecd::offload::complete_checksum(&mut p, &h));
        let mut out = vec![0u8; 2000];
        for (k, orig) in segs.iter().enumerate() {
            let n = segment(&p, &h, k, &mut out).unwrap();
            let s = etherparse::SlicedPacket::from_ip(&out[..n]).unwrap();
            let o = etherparse::SlicedPacket::from_ip(orig).unwrap();
            assert_eq!(s.transport, o.transport, "segment {k}");
        }
        assert!(g.take().is_none());
    }

    #[test]
    fn gaps_other_flows_and_flags_end_a_run() {
        let mut g = Gro::new();
        assert!(g.push(&seg(0, &[1; 100], false)));
        // Out of sequence.
        assert!(!g.push(&seg(300, &[1; 100], false)));
        // Longer than the first.
        assert!(!g.push(&seg(100, &[1; 200], false)));
        // Another flow.
        let mut other = seg(100, &[1; 100], false);
        other[23] ^= 1;
        assert!(!g.push(&other));
        assert!(g.push(&seg(100, &[1; 50], false)));
        // A short segment ended the run.
        assert!(!g.push(&seg(150, &[1; 50], false)));
        assert_eq!(g.take().unwrap().segments, 2);
        // SYN, FIN, pure ACKs and IPv6 are never coalesced.
        let mut syn = seg(0, &[1; 10], false);
        syn[33] |= 0x02;
        assert!(!g.push(&syn));
        assert!(!g.push(&seg(0, &[], false)));
        assert!(!g.push(&[0x60; 60]));
        assert!(g.is_empty());
    }

    #[test]
    fn a_single_segment_goes_out_without_gso() {
        let mut g = Gro::new();
        let s = seg(5, b"hello", true);
        assert!(g.push(&s));
        let c = g.take().unwrap();
        assert_eq!(c.segments, 1);
        assert_eq!(&c.frame[..VNET_HDR_LEN], &[0; VNET_HDR_LEN]);
        assert_eq!(&c.frame[VNET_HDR_LEN..], &s[..]);
    }
}
