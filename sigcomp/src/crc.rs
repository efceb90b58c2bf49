//! The 16-bit FCS of PPP (RFC 1662 §C.2), used by the CRC instruction
//! (RFC 3320 §9.3.5).

/// FCS-16 with the generator x^16 + x^12 + x^5 + 1, bit-reflected, as in
/// RFC 1662 Appendix C.2.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fcs16(u16);

/// RFC 1662 C.2 `fcstab`, built at compile time.
const TABLE: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut b = 0;
    while b < 256 {
        let mut v = b as u16;
        let mut i = 0;
        while i < 8 {
            v = if v & 1 != 0 {
                (v >> 1) ^ 0x8408
            } else {
                v >> 1
            };
            i += 1;
        }
        t[b] = v;
        b += 1;
    }
    t
};

impl Fcs16 {
    /// PPPINITFCS16.
    pub(crate) fn new() -> Fcs16 {
        Fcs16(0xffff)
    }

    /// Adds one byte.
    #[inline]
    pub(crate) fn update(&mut self, b: u8) {
        self.0 = (self.0 >> 8) ^ TABLE[usize::from((self.0 ^ u16::from(b)) as u8)];
    }

    /// The value the CRC instruction compares: the FCS register after the
    /// bytes, before the ones complement that RFC 1662 C.2 applies for
    /// transmission. RFC 4465 A.1.9 fixes this reading: its expected value
    /// 0x62cb is the uncomplemented register.
    pub(crate) fn value(&self) -> u16 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_fcs_residue() {
        // RFC 1662 C.2: running the FCS over data plus its complemented FCS
        // (LSB first) leaves PPPGOODFCS16 = 0xf0b8.
        let data = b"123456789";
        let mut f = Fcs16::new();
        data.iter().for_each(|&b| f.update(b));
        let fcs = !f.value();
        f.update(fcs as u8);
        f.update((fcs >> 8) as u8);
        assert_eq!(f.0, 0xf0b8);
        assert_eq!(fcs, 0x906e); // CRC-16/X-25 check value of "123456789"
    }
}
