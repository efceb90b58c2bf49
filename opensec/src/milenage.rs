//! MILENAGE (3GPP TS 35.206): the AKA functions f1, f1*, f2, f3, f4, f5, f5*
//! on AES-128, and the GSM-MILENAGE conversions (TS 55.205).
//!
//! Checked against the 20 test sets of TS 35.208 §4.3 and the 19 GSM test
//! sets of TS 55.205 (see `tests/milenage.rs`), and against the independent
//! `milenage` crate.

use core::fmt;

use aes::Aes128;
use cipher::array::Array;
use cipher::{BlockCipherEncrypt, KeyInit};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Rotation amounts r1..r5 in bits (TS 35.206 §4.1).
const R: [u32; 5] = [64, 0, 32, 64, 96];

/// The outputs of f2, f3, f4 and f5 for one RAND.
#[derive(Clone, PartialEq, Eq)]
pub struct F2345 {
    /// RES (f2), 64 bits.
    pub res: [u8; 8],
    /// CK (f3).
    pub ck: [u8; 16],
    /// IK (f4).
    pub ik: [u8; 16],
    /// AK (f5), 48 bits.
    pub ak: [u8; 6],
}

impl Drop for F2345 {
    fn drop(&mut self) {
        self.res.zeroize();
        self.ck.zeroize();
        self.ik.zeroize();
        self.ak.zeroize();
    }
}

impl ZeroizeOnDrop for F2345 {}

impl fmt::Debug for F2345 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("F2345 { <redacted> }")
    }
}

/// The GSM triplet values derived from MILENAGE (TS 55.205).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GsmTriplet {
    /// SRES#1 = RES[0..4] xor RES[4..8] (the c2 conversion of TS 33.102 §6.8.2.3).
    pub sres1: [u8; 4],
    /// SRES#2 = RES[0..4] (the GSM-MILENAGE variant of TS 55.205).
    pub sres2: [u8; 4],
    /// Kc = CK1 xor CK2 xor IK1 xor IK2 (c3 conversion).
    pub kc: [u8; 8],
}

/// A subscriber's MILENAGE instance: K expanded once, and OPc.
///
/// Keys are zeroized on drop and `Debug` does not show them.
pub struct Milenage {
    k: Aes128,
    opc: [u8; 16],
}

impl Drop for Milenage {
    fn drop(&mut self) {
        self.opc.zeroize();
    }
}

impl ZeroizeOnDrop for Milenage {}

impl fmt::Debug for Milenage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Milenage { <redacted> }")
    }
}

impl Milenage {
    /// From K and the operator variant OPc.
    pub fn with_opc(k: &[u8; 16], opc: &[u8; 16]) -> Self {
        Milenage {
            k: Aes128::new(&Array::from(*k)),
            opc: *opc,
        }
    }

    /// From K and OP; computes OPc = OP xor E_K(OP) (TS 35.206 §4.1).
    pub fn with_op(k: &[u8; 16], op: &[u8; 16]) -> Self {
        let mut m = Milenage {
            k: Aes128::new(&Array::from(*k)),
            opc: [0; 16],
        };
        let mut opc = m.e(op);
        xor(&mut opc, op);
        m.opc = opc;
        opc.zeroize();
        m
    }

    /// OPc.
    pub fn opc(&self) -> [u8; 16] {
        self.opc
    }

    /// f1: the network authentication code MAC-A.
    pub fn f1(&self, rand: &[u8; 16], sqn: &[u8; 6], amf: &[u8; 2]) -> [u8; 8] {
        let out1 = self.out1(rand, sqn, amf);
        first8(&out1)
    }

    /// f1*: the resynchronisation authentication code MAC-S.
    pub fn f1_star(&self, rand: &[u8; 16], sqn: &[u8; 6], amf: &[u8; 2]) -> [u8; 8] {
        let out1 = self.out1(rand, sqn, amf);
        let mut mac_s = [0u8; 8];
        mac_s.copy_from_slice(&out1[8..]);
        mac_s
    }

    /// f2 (RES), f3 (CK), f4 (IK) and f5 (AK).
    pub fn f2345(&self, rand: &[u8; 16]) -> F2345 {
        let temp = self.temp(rand);
        let out2 = self.out_i(&temp, 2);
        let mut res = [0u8; 8];
        res.copy_from_slice(&out2[8..]);
        let mut ak = [0u8; 6];
        ak.copy_from_slice(&out2[..6]);
        F2345 {
            res,
            ck: self.out_i(&temp, 3),
            ik: self.out_i(&temp, 4),
            ak,
        }
    }

    /// f5*: the anonymity key for resynchronisation (AK in AUTS).
    pub fn f5_star(&self, rand: &[u8; 16]) -> [u8; 6] {
        let temp = self.temp(rand);
        let out5 = self.out_i(&temp, 5);
        let mut ak = [0u8; 6];
        ak.copy_from_slice(&out5[..6]);
        ak
    }

    /// GSM-MILENAGE: SRES#1, SRES#2 and Kc from RAND (TS 55.205).
    pub fn gsm(&self, rand: &[u8; 16]) -> GsmTriplet {
        let v = self.f2345(rand);
        let mut sres1 = [0u8; 4];
        let mut sres2 = [0u8; 4];
        let mut kc = [0u8; 8];
        for i in 0..4 {
            sres1[i] = v.res[i] ^ v.res[i + 4];
            sres2[i] = v.res[i];
        }
        for (i, b) in kc.iter_mut().enumerate() {
            *b = v.ck[i] ^ v.ck[i + 8] ^ v.ik[i] ^ v.ik[i + 8];
        }
        GsmTriplet { sres1, sres2, kc }
    }

    fn e(&self, x: &[u8; 16]) -> [u8; 16] {
        let mut b = Array::from(*x);
        self.k.encrypt_block(&mut b);
        b.into()
    }

    /// TEMP = E_K(RAND xor OPc).
    fn temp(&self, rand: &[u8; 16]) -> [u8; 16] {
        let mut x = *rand;
        xor(&mut x, &self.opc);
        self.e(&x)
    }

    /// OUT1 = E_K(TEMP xor rot(IN1 xor OPc, r1) xor c1) xor OPc, c1 = 0.
    fn out1(&self, rand: &[u8; 16], sqn: &[u8; 6], amf: &[u8; 2]) -> [u8; 16] {
        let temp = self.temp(rand);
        let mut in1 = [0u8; 16];
        in1[..6].copy_from_slice(sqn);
        in1[6..8].copy_from_slice(amf);
        in1[8..14].copy_from_slice(sqn);
        in1[14..].copy_from_slice(amf);
        xor(&mut in1, &self.opc);
        let mut x = rot(&in1, R[0]);
        xor(&mut x, &temp);
        let mut out = self.e(&x);
        xor(&mut out, &self.opc);
        out
    }

    /// OUTi = E_K(rot(TEMP xor OPc, ri) xor ci) xor OPc for i = 2..=5, where
    /// c2..c5 have only bit 127, 126, 125, 124 set (values 1, 2, 4, 8).
    fn out_i(&self, temp: &[u8; 16], i: usize) -> [u8; 16] {
        let mut x = *temp;
        xor(&mut x, &self.opc);
        let r = R.get(i - 1).copied().unwrap_or(0);
        let mut x = rot(&x, r);
        x[15] ^= 1 << (i - 2);
        let mut out = self.e(&x);
        xor(&mut out, &self.opc);
        out
    }
}

fn xor(a: &mut [u8; 16], b: &[u8; 16]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

/// Cyclic left rotation of a 128-bit value by `r` bits (multiples of 8 here).
fn rot(x: &[u8; 16], r: u32) -> [u8; 16] {
    u128::from_be_bytes(*x).rotate_left(r).to_be_bytes()
}

fn first8(x: &[u8; 16]) -> [u8; 8] {
    let mut o = [0u8; 8];
    o.copy_from_slice(&x[..8]);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    // TS 35.208 §4.3.1, Test Set 1 (values from shared/refs/data).
    #[test]
    fn test_set_1() {
        let m = Milenage::with_op(
            &h("465b5ce8b199b49faa5f0a2ee238a6bc"),
            &h("cdc202d5123e20f62b6d676ac72cb318"),
        );
        assert_eq!(m.opc(), h::<16>("cd63cb71954a9f4e48a5994e37a02baf"));
        let rand = h("23553cbe9637a89d218ae64dae47bf35");
        let sqn = h("ff9bb4d0b607");
        let amf = h("b9b9");
        assert_eq!(m.f1(&rand, &sqn, &amf), h::<8>("4a9ffac354dfafb3"));
        assert_eq!(m.f1_star(&rand, &sqn, &amf), h::<8>("01cfaf9ec4e871e9"));
        let v = m.f2345(&rand);
        assert_eq!(v.res, h::<8>("a54211d5e3ba50bf"));
        assert_eq!(v.ck, h::<16>("b40ba9a3c58b2a05bbf0d987b21bf8cb"));
        assert_eq!(v.ik, h::<16>("f769bcd751044604127672711c6d3441"));
        assert_eq!(v.ak, h::<6>("aa689c648370"));
        assert_eq!(m.f5_star(&rand), h::<6>("451e8beca43b"));
        // TS 55.205 Test Set 1.
        let g = m.gsm(&rand);
        assert_eq!(g.sres1, h::<4>("46f8416a"));
        assert_eq!(g.sres2, h::<4>("a54211d5"));
        assert_eq!(g.kc, h::<8>("eae4be823af9a08b"));
    }

    // TS 35.208 §4.3.3, Test Set 3.
    #[test]
    fn test_set_3() {
        let m = Milenage::with_opc(
            &h("fec86ba6eb707ed08905757b1bb44b8f"),
            &h("1006020f0a478bf6b699f15c062e42b3"),
        );
        let rand = h("9f7c8d021accf4db213ccff0c7f71a6a");
        assert_eq!(
            m.f1(&rand, &h("9d0277595ffc"), &h("725c")),
            h::<8>("9cabc3e99baf7281")
        );
        let v = m.f2345(&rand);
        assert_eq!(v.res, h::<8>("8011c48c0c214ed2"));
        assert_eq!(v.ak, h::<6>("33484dc2136b"));
        assert!(!format!("{v:?} {m:?}").contains("80"));
    }
}
