//! The AH ICV input (RFC 4302 §3.3.3): the whole IP packet with the
//! mutable fields zeroed, presented to the MAC as a list of slices (copies
//! of the small rewritten pieces, zero runs, and the untouched rest of the
//! packet) so that nothing is allocated and the packet is not modified.

use crate::Error;
use crate::wire::{IPV4_HEADER_LEN, IPV6_HEADER_LEN, IpVersion, proto};

/// AH fixed header: Next Header, Payload Len, Reserved, SPI, Sequence Number.
pub const AH_FIXED_LEN: usize = 12;
/// Largest ICV (+ alignment padding) we produce or accept.
pub const MAX_ICV_FIELD: usize = 32;

const ZEROS: [u8; 256] = [0; 256];
const MAX_PARTS: usize = 40;

/// A fixed-capacity list of slices.
pub struct Parts<'a> {
    items: [&'a [u8]; MAX_PARTS],
    n: usize,
}

impl<'a> Parts<'a> {
    pub fn new() -> Self {
        Parts {
            items: [&[]; MAX_PARTS],
            n: 0,
        }
    }

    pub fn push(&mut self, s: &'a [u8]) -> Result<(), Error> {
        if s.is_empty() {
            return Ok(());
        }
        let slot = self
            .items
            .get_mut(self.n)
            .ok_or(Error::TooManyHeaderParts)?;
        *slot = s;
        self.n += 1;
        Ok(())
    }

    pub fn as_slice(&self) -> &[&'a [u8]] {
        self.items.get(..self.n).unwrap_or(&[])
    }
}

/// Copies of the rewritten pieces: the IP base header (with IPv4 options)
/// and the AH header with its ICV field zeroed.
pub struct Scratch {
    ip: [u8; 60],
    ip_len: usize,
    ah: [u8; AH_FIXED_LEN + MAX_ICV_FIELD],
    ah_len: usize,
    /// An outbound IPv6 routing header rewritten to its view at the final
    /// destination (offset in the packet, length; 0 = none).
    rh: [u8; RH_MAX],
    rh_off: usize,
    rh_len: usize,
}

/// Largest routing header we rewrite: 16 addresses.
const RH_MAX: usize = 8 + 16 * 16;

/// IPv4 options that are immutable (RFC 4302 Appendix A1), by option number.
fn ipv4_option_immutable(number: u8) -> bool {
    matches!(number, 0 | 1 | 2 | 5 | 6 | 20 | 21)
}

impl Scratch {
    /// Prepares the zeroed copies. `pkt` is the packet (at least up to the
    /// end of AH), `ah_off` where AH starts, `ah_len` its full length,
    /// `icv_len` the algorithm's ICV length (without alignment padding).
    pub fn new(
        pkt: &[u8],
        version: IpVersion,
        ah_off: usize,
        ah_len: usize,
        icv_len: usize,
        sending: bool,
    ) -> Result<Self, Error> {
        let mut s = Scratch {
            ip: [0; 60],
            ip_len: 0,
            ah: [0; AH_FIXED_LEN + MAX_ICV_FIELD],
            ah_len,
            rh: [0; RH_MAX],
            rh_off: 0,
            rh_len: 0,
        };
        let trunc = |needed| Error::Truncated {
            what: "AH",
            needed,
            got: pkt.len(),
        };
        // The AH header with the ICV zeroed (RFC 4302 §3.3.3.1); the ICV
        // alignment padding is included as sent (§3.3.3.2.1).
        let ah = pkt
            .get(ah_off..ah_off + ah_len)
            .ok_or(trunc(ah_off + ah_len))?;
        if ah_len > s.ah.len() || ah_len < AH_FIXED_LEN + icv_len {
            return Err(Error::BadIpHeader {
                reason: "AH length does not fit the ICV",
            });
        }
        if let Some(dst) = s.ah.get_mut(..ah_len) {
            dst.copy_from_slice(ah);
        }
        if let Some(icv) = s.ah.get_mut(AH_FIXED_LEN..AH_FIXED_LEN + icv_len) {
            icv.fill(0);
        }
        match version {
            IpVersion::V4 => {
                let hl = usize::from(pkt.first().map_or(0, |v| v & 0x0f)) * 4;
                if hl < IPV4_HEADER_LEN {
                    return Err(Error::BadIpHeader {
                        reason: "IHL below 5",
                    });
                }
                let hdr = pkt.get(..hl).ok_or(trunc(hl))?;
                let ip = s.ip.get_mut(..hl).ok_or(trunc(hl))?;
                ip.copy_from_slice(hdr);
                // RFC 4302 §3.3.3.1.1.1: DSCP/ECN, flags, fragment offset, TTL,
                // header checksum are mutable: zeroed.
                ip[1] = 0;
                ip[6] = 0;
                ip[7] = 0;
                ip[8] = 0;
                ip[10] = 0;
                ip[11] = 0;
                // RFC 4302 §3.3.3.1.1.2 and Appendix A1: a mutable option is
                // zeroed entirely (type and length included).
                let mut off = IPV4_HEADER_LEN;
                while off < hl {
                    let ty = ip.get(off).copied().unwrap_or(0);
                    let len = match ty {
                        0 => hl - off, // End of Options List: the rest is padding.
                        1 => 1,
                        _ => {
                            let l = usize::from(ip.get(off + 1).copied().unwrap_or(0));
                            if l < 2 || off + l > hl {
                                return Err(Error::BadIpHeader {
                                    reason: "IPv4 option length",
                                });
                            }
                            l
                        }
                    };
                    if !ipv4_option_immutable(ty & 0x1f) {
                        if let Some(o) = ip.get_mut(off..off + len) {
                            o.fill(0);
                        }
                    }
                    off += len;
                }
                s.ip_len = hl;
            }
            IpVersion::V6 => {
                let hdr = pkt.get(..IPV6_HEADER_LEN).ok_or(trunc(IPV6_HEADER_LEN))?;
                let ip = &mut s.ip[..IPV6_HEADER_LEN];
                ip.copy_from_slice(hdr);
                // RFC 4302 §3.3.3.1.2.1: traffic class (DSCP/ECN), flow label,
                // hop limit zeroed.
                ip[0] &= 0xf0;
                ip[1] = 0;
                ip[2] = 0;
                ip[3] = 0;
                ip[7] = 0;
                s.ip_len = IPV6_HEADER_LEN;
                if sending {
                    s.predict_routing_header(pkt, ah_off)?;
                }
            }
        }
        Ok(s)
    }

    /// RFC 4302 Appendix A2: a Routing header is "mutable but predictable";
    /// the sender computes the ICV over the header and destination address
    /// as they will appear at the final destination (RFC 8200 §4.4 processing
    /// of Type 0, RFC 6275 §6.4 Type 2: each remaining hop swaps the
    /// destination with the next address). Receivers use what they got.
    fn predict_routing_header(&mut self, pkt: &[u8], ah_off: usize) -> Result<(), Error> {
        let bad = |reason| Error::BadIpHeader { reason };
        let mut nh = pkt.get(6).copied().unwrap_or(0);
        let mut off = IPV6_HEADER_LEN;
        while off < ah_off {
            let len = (usize::from(pkt.get(off + 1).copied().unwrap_or(0)) + 1) * 8;
            let hdr = pkt
                .get(off..off + len)
                .ok_or(bad("IPv6 extension header length"))?;
            if nh == proto::IPV6_ROUTE {
                let (routing_type, segments_left) = (hdr[2], usize::from(hdr[3]));
                if segments_left != 0 {
                    if routing_type != 0 && routing_type != 2 {
                        return Err(Error::UnsupportedRoutingHeader { routing_type });
                    }
                    let n = (len - 8) / 16;
                    if segments_left > n || len > RH_MAX {
                        return Err(bad("routing header Segments Left exceeds its addresses"));
                    }
                    let rh = self
                        .rh
                        .get_mut(..len)
                        .ok_or(bad("routing header too long"))?;
                    rh.copy_from_slice(hdr);
                    rh[3] = 0;
                    // Visited entries stay; the unvisited ones shift by one, the
                    // current destination takes the first unvisited slot and the
                    // last address becomes the destination.
                    let first = 8 + 16 * (n - segments_left);
                    let last = 8 + 16 * (n - 1);
                    let mut final_dst = [0u8; 16];
                    final_dst.copy_from_slice(&hdr[last..last + 16]);
                    rh.copy_within(first..last, first + 16);
                    rh[first..first + 16].copy_from_slice(&self.ip[24..40]);
                    self.ip[24..40].copy_from_slice(&final_dst);
                    self.rh_off = off;
                    self.rh_len = len;
                }
            }
            nh = hdr[0];
            off += len;
        }
        Ok(())
    }

    /// The ICV input: zeroed IP header, extension headers (IPv6 mutable
    /// option data zeroed), AH with zero ICV, the rest of the packet up to
    /// `end`, and the ESN high-order bits (RFC 4302 §3.3.3.2.2).
    pub fn parts<'a>(
        &'a self,
        pkt: &'a [u8],
        version: IpVersion,
        ah_off: usize,
        end: usize,
        seq_hi: Option<&'a [u8; 4]>,
    ) -> Result<Parts<'a>, Error> {
        let mut parts = Parts::new();
        parts.push(self.ip.get(..self.ip_len).unwrap_or(&[]))?;
        if version == IpVersion::V6 {
            let rh = (self.rh_len != 0)
                .then(|| (self.rh_off, self.rh.get(..self.rh_len).unwrap_or(&[])));
            ipv6_ext_parts(pkt, ah_off, rh, &mut parts)?;
        }
        parts.push(self.ah.get(..self.ah_len).unwrap_or(&[]))?;
        let rest = pkt.get(ah_off + self.ah_len..end).ok_or(Error::Truncated {
            what: "AH payload",
            needed: end,
            got: pkt.len(),
        })?;
        parts.push(rest)?;
        if let Some(h) = seq_hi {
            parts.push(h)?;
        }
        Ok(parts)
    }
}

/// IPv6 extension headers between the base header and AH.
fn ipv6_ext_parts<'a>(
    pkt: &'a [u8],
    ah_off: usize,
    rewritten_rh: Option<(usize, &'a [u8])>,
    parts: &mut Parts<'a>,
) -> Result<(), Error> {
    let bad = |reason| Error::BadIpHeader { reason };
    let mut nh = pkt.get(6).copied().unwrap_or(0);
    let mut off = IPV6_HEADER_LEN;
    let mut run = off; // start of bytes not yet pushed
    while off < ah_off {
        let len = (usize::from(pkt.get(off + 1).copied().unwrap_or(0)) + 1) * 8;
        let end = off + len;
        if end > ah_off {
            return Err(bad("IPv6 extension header overlaps AH"));
        }
        match nh {
            proto::HOPOPT | proto::IPV6_OPTS => {
                // RFC 4302 §3.3.3.1.2.2: option data of options whose type has
                // the 0x20 bit (may change en route) counts as zeros.
                let mut o = off + 2;
                while o < end {
                    let ty = pkt.get(o).copied().unwrap_or(0);
                    if ty == 0 {
                        o += 1; // Pad1
                        continue;
                    }
                    let dl = usize::from(pkt.get(o + 1).copied().unwrap_or(0));
                    let data = o + 2;
                    if data + dl > end {
                        return Err(bad("IPv6 option length"));
                    }
                    if ty & 0x20 != 0 && dl > 0 {
                        parts.push(pkt.get(run..data).unwrap_or(&[]))?;
                        parts.push(ZEROS.get(..dl).unwrap_or(&[]))?;
                        run = data + dl;
                    }
                    o = data + dl;
                }
            }
            proto::IPV6_ROUTE => {
                // RFC 4302 Appendix A2: included as it appears at the final
                // destination: the sender's prediction (Scratch), or as
                // received.
                if let Some((rh_off, rh)) = rewritten_rh.filter(|(o, _)| *o == off) {
                    parts.push(pkt.get(run..rh_off).unwrap_or(&[]))?;
                    parts.push(rh)?;
                    run = end;
                }
            }
            _ => return Err(bad("unexpected IPv6 extension header before AH")),
        }
        nh = pkt.get(off).copied().unwrap_or(0);
        off = end;
    }
    parts.push(pkt.get(run..ah_off).unwrap_or(&[]))?;
    Ok(())
}

/// Length of the ICV field including the alignment padding (RFC 4302
/// §3.3.3.2.1: AH is a multiple of 32 bits for IPv4, 64 bits for IPv6).
pub fn icv_field_len(icv_len: usize, version: IpVersion) -> usize {
    let align = match version {
        IpVersion::V4 => 4,
        IpVersion::V6 => 8,
    };
    let total = AH_FIXED_LEN + icv_len;
    total.div_ceil(align) * align - AH_FIXED_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icv_padding() {
        assert_eq!(icv_field_len(12, IpVersion::V4), 12);
        assert_eq!(icv_field_len(12, IpVersion::V6), 12);
        assert_eq!(icv_field_len(16, IpVersion::V4), 16);
        assert_eq!(icv_field_len(16, IpVersion::V6), 20);
    }

    #[test]
    fn ipv4_mutable_fields_and_options_zeroed() {
        // IHL 7: Record Route (7, mutable, len 7) + NOP; then AH at 28.
        let mut p = vec![
            0x47, 0xb8, 0, 60, 0x12, 0x34, 0x40, 0, 64, 51, 0xaa, 0xbb, 1, 2, 3, 4, 5, 6, 7, 8, 7,
            7, 4, 9, 9, 9, 9, 1,
        ];
        p.extend([17, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5]);
        p.extend([0xee; 12]);
        p.extend([0x55; 8]);
        let s = Scratch::new(&p, IpVersion::V4, 28, 24, 12, false).unwrap();
        let parts = s.parts(&p, IpVersion::V4, 28, p.len(), None).unwrap();
        let flat: Vec<u8> = parts.as_slice().concat();
        let mut expect = vec![
            0x47, 0, 0, 60, 0x12, 0x34, 0, 0, 0, 51, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        expect.extend([0, 0, 0, 0, 0, 0, 0, 1]);
        expect.extend([17, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5]);
        expect.extend([0; 12]);
        expect.extend([0x55; 8]);
        assert_eq!(flat, expect);
    }

    #[test]
    fn ipv6_mutable_option_data_zeroed() {
        let mut p = vec![0u8; 40];
        p[0] = 0x6f;
        p[1] = 0xff;
        p[7] = 64;
        p[6] = 0; // HBH
        // HBH: nh=51, len 0 (8 bytes): option 0x3e (mutable bit set) len 2 data aa bb, PadN(1,0)
        p.extend([51, 0, 0x3e, 2, 0xaa, 0xbb, 1, 0]);
        p.extend([17, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5]);
        p.extend([0xee; 12]);
        p.extend([0x55; 4]);
        let s = Scratch::new(&p, IpVersion::V6, 48, 24, 12, false).unwrap();
        let parts = s
            .parts(&p, IpVersion::V6, 48, p.len(), Some(&[9, 9, 9, 9]))
            .unwrap();
        let flat: Vec<u8> = parts.as_slice().concat();
        let mut expect = vec![0u8; 40];
        expect[0] = 0x60;
        expect.extend([51, 0, 0x3e, 2, 0, 0, 1, 0]);
        expect.extend([17, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5]);
        expect.extend([0; 12]);
        expect.extend([0x55; 4]);
        expect.extend([9; 4]);
        assert_eq!(flat, expect);
    }
}
