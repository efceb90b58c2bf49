//! Keyed integrity transforms (truncated MACs) and the full-length primitives.

use core::fmt;

use aes::Aes128;
use cipher::array::Array;
use cipher::consts::U16;
use cipher::{
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit,
};
use hmac::Hmac;
use hmac::digest::{Digest, FixedOutput, Update};
use md5::Md5;
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{AuthAlgorithm, Error};

/// Longest MAC output of any algorithm here (SHA-256).
const MAX_MAC_LEN: usize = 32;

// The HMAC states are a few hundred bytes; boxing them would add an
// indirection per packet for no benefit, an `Integrity` lives as long as its SA.
#[allow(clippy::large_enum_variant)]
enum Keyed {
    Null,
    HmacMd5(Hmac<Md5>),
    HmacSha1(Hmac<Sha1>),
    HmacSha256(Hmac<Sha256>),
    /// AES-XCBC-MAC or AES-CMAC: the same chain, different derived keys.
    AesCbcMac(AesCbcMac),
}

/// A keyed integrity transform for ESP/AH.
///
/// For HMAC the inner and outer padded-key states are computed once in
/// [`Integrity::new`]; each call clones that state on the stack and hashes
/// the message, without allocating. Keyed state is zeroized on drop and
/// `Debug` does not show it.
pub struct Integrity {
    algorithm: AuthAlgorithm,
    keyed: Keyed,
}

impl ZeroizeOnDrop for Integrity {}

impl fmt::Debug for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Integrity")
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Integrity {
    /// Keys `alg`; the key length must be one of `alg.key_lengths()`.
    pub fn new(alg: AuthAlgorithm, key: &[u8]) -> Result<Self, Error> {
        alg.check_key_len(key.len())?;
        let bad_key = || Error::KeyLength {
            algorithm: alg.setkey_name(),
            expected: alg.key_lengths(),
            got: key.len(),
        };
        let keyed = match alg {
            AuthAlgorithm::Null => Keyed::Null,
            AuthAlgorithm::HmacMd5_96 => {
                Keyed::HmacMd5(hmac::KeyInit::new_from_slice(key).map_err(|_| bad_key())?)
            }
            AuthAlgorithm::HmacSha1_96 => {
                Keyed::HmacSha1(hmac::KeyInit::new_from_slice(key).map_err(|_| bad_key())?)
            }
            AuthAlgorithm::HmacSha256_128 => {
                Keyed::HmacSha256(hmac::KeyInit::new_from_slice(key).map_err(|_| bad_key())?)
            }
            AuthAlgorithm::AesXcbcMac96 => {
                let key: &[u8; 16] = key.try_into().map_err(|_| bad_key())?;
                Keyed::AesCbcMac(AesCbcMac::xcbc(key))
            }
            AuthAlgorithm::AesCmac96 => {
                let key: &[u8; 16] = key.try_into().map_err(|_| bad_key())?;
                Keyed::AesCbcMac(AesCbcMac::cmac(key))
            }
        };
        Ok(Integrity {
            algorithm: alg,
            keyed,
        })
    }

    /// The algorithm this transform was keyed for.
    pub fn algorithm(&self) -> AuthAlgorithm {
        self.algorithm
    }

    /// ICV length in bytes.
    pub fn icv_len(&self) -> usize {
        self.algorithm.icv_len()
    }

    /// Computes the MAC over the concatenation of `parts` (so that ESN can
    /// append its high 32 bits without a copy, RFC 4303 §3.3.2.1), truncated
    /// to [`icv_len`](Self::icv_len) (RFC 2404 §2, RFC 4868 §2.3), and writes
    /// it to `icv_out[..icv_len()]`.
    pub fn compute(&self, parts: &[&[u8]], icv_out: &mut [u8]) -> Result<(), Error> {
        let n = self.icv_len();
        let got = icv_out.len();
        let out = icv_out
            .get_mut(..n)
            .ok_or(Error::IcvBufferTooSmall { needed: n, got })?;
        let mut full = [0u8; MAX_MAC_LEN];
        self.full_mac(parts, &mut full);
        out.copy_from_slice(&full[..n]);
        // Not zeroized: the ICV goes on the wire, and the rest of the MAC
        // reveals nothing about the key. The keyed states are zeroized when
        // the per-call copy is dropped.
        Ok(())
    }

    /// Recomputes the ICV and compares it with `icv` in constant time. A
    /// wrong-length `icv` is never valid.
    pub fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> bool {
        let n = self.icv_len();
        if icv.len() != n {
            return false;
        }
        let mut full = [0u8; MAX_MAC_LEN];
        self.full_mac(parts, &mut full);
        let ok: bool = full[..n].ct_eq(icv).into();
        full.zeroize();
        ok
    }

    /// Writes the untruncated MAC to the front of `out`.
    fn full_mac(&self, parts: &[&[u8]], out: &mut [u8; MAX_MAC_LEN]) {
        match &self.keyed {
            Keyed::Null => {}
            Keyed::HmacMd5(m) => mac_parts(m, parts, out),
            Keyed::HmacSha1(m) => mac_parts(m, parts, out),
            Keyed::HmacSha256(m) => mac_parts(m, parts, out),
            Keyed::AesCbcMac(m) => out[..16].copy_from_slice(&m.mac(parts)),
        }
    }
}

/// Clones the keyed state (a stack copy) and runs it over `parts`.
fn mac_parts<M: Clone + Update + FixedOutput>(m: &M, parts: &[&[u8]], out: &mut [u8]) {
    let mut m = m.clone();
    for p in parts {
        m.update(p);
    }
    let tag = m.finalize_fixed();
    out[..tag.len()].copy_from_slice(&tag);
}

/// The CBC-MAC of AES-XCBC-MAC (RFC 3566) and AES-CMAC (RFC 4493) over a
/// pre-expanded AES-128 key. Both chain all blocks but the last through
/// AES, XOR the last block with one key if it is complete or another if it
/// was padded with 10*, and encrypt it once more: they differ only in how the
/// three keys are derived. The `cmac` crate's per-block buffering ran at
/// 0.6x `openssl speed`; this chains whole blocks in one pass over the key.
struct AesCbcMac {
    /// The block cipher key: XCBC's K1 = E_K(0x01^16) (RFC 3566 §4 step 1),
    /// CMAC's K (RFC 4493 §2.4).
    key: Aes128,
    /// XORed into a complete last block: XCBC's K2, CMAC's K1.
    complete: [u8; 16],
    /// XORed into a padded last block: XCBC's K3, CMAC's K2.
    padded: [u8; 16],
}

impl Drop for AesCbcMac {
    fn drop(&mut self) {
        self.complete.zeroize();
        self.padded.zeroize();
    }
}

impl AesCbcMac {
    /// AES-XCBC-MAC: RFC 3566 §4 (1), derive K1, K2, K3 from K.
    fn xcbc(key: &[u8; 16]) -> Self {
        let k = Aes128::new(&Array::from(*key));
        let derive = |byte: u8| {
            let mut b = Array::from([byte; 16]);
            k.encrypt_block(&mut b);
            let out: [u8; 16] = b.into();
            b.zeroize();
            out
        };
        let mut k1 = derive(0x01);
        let xcbc = AesCbcMac {
            key: Aes128::new(&Array::from(k1)),
            complete: derive(0x02),
            padded: derive(0x03),
        };
        k1.zeroize();
        xcbc
    }

    /// AES-CMAC: RFC 4493 §2.3, L = AES-128(K, 0^128), K1 = dbl(L),
    /// K2 = dbl(K1).
    fn cmac(key: &[u8; 16]) -> Self {
        let key = Aes128::new(&Array::from(*key));
        let mut l = Array::from([0u8; 16]);
        key.encrypt_block(&mut l);
        let mut l_int = u128::from_be_bytes(l.into());
        let mut k1 = dbl(l_int);
        let mut k2 = dbl(k1);
        let cmac = AesCbcMac {
            key,
            complete: k1.to_be_bytes(),
            padded: k2.to_be_bytes(),
        };
        l.zeroize();
        l_int.zeroize();
        k1.zeroize();
        k2.zeroize();
        cmac
    }

    /// RFC 3566 §4 (2)-(5), RFC 4493 §2.4 steps 2-7, over the
    /// concatenation of `parts`.
    fn mac(&self, parts: &[&[u8]]) -> [u8; 16] {
        // `e` holds E[i-1] xor the bytes of the current block received so far;
        // a full block is only encrypted once more data follows, because the
        // last block is treated differently (RFC 3566 §4 step 3, RFC 4493
        // §2.4 step 4).
        let mut e = Array::from([0u8; 16]);
        let mut pos = 0usize;
        for part in parts {
            let mut data: &[u8] = part;
            while !data.is_empty() {
                if pos == 16 {
                    self.key.encrypt_block(&mut e);
                    pos = 0;
                }
                if pos == 0 && data.len() > 16 {
                    // Whole blocks with data after them: §4 (2), E[i] =
                    // E_K1(M[i] xor E[i-1]), in one pass over the expanded key.
                    let (blocks, rest) = data.split_at((data.len() - 1) / 16 * 16);
                    self.key.encrypt_with_backend(CbcMac {
                        init: e,
                        out: &mut e,
                        blocks: Array::slice_as_chunks(blocks).0,
                    });
                    data = rest;
                    continue;
                }
                let take = (16 - pos).min(data.len());
                let (now, rest) = data.split_at(take);
                for (x, y) in e.iter_mut().skip(pos).zip(now) {
                    *x ^= y;
                }
                pos += take;
                data = rest;
            }
        }
        if pos == 16 {
            // RFC 3566 §4 (3)(a), RFC 4493 §2.4 step 4: a complete last block.
            xor_into(&mut e, &self.complete);
        } else {
            // RFC 3566 §4 (3)(b), RFC 4493 §2.4 step 4: pad with a single 1
            // bit then 0s. The empty message is one padded block (RFC 3566
            // §4 (2) n = 1, RFC 4493 §2.4 step 3).
            if let Some(x) = e.get_mut(pos) {
                *x ^= 0x80;
            }
            xor_into(&mut e, &self.padded);
        }
        self.key.encrypt_block(&mut e);
        e.into()
    }
}

/// Doubling in GF(2^128) (RFC 4493 §2.3: shift left by one, XOR
/// 0x87 if the top bit was set), without a branch on the secret bit.
fn dbl(x: u128) -> u128 {
    (x << 1) ^ (0x87 & 0u128.wrapping_sub(x >> 127))
}

/// The CBC-MAC chain of RFC 3566 §4 (2) and RFC 4493 §2.4 step 6 over whole
/// blocks, keeping the chaining value in a register.
struct CbcMac<'a> {
    /// The chaining value before the first block. Passed by value (not
    /// read through `out`) so that it stays in a register in the loop.
    init: Array<u8, U16>,
    out: &'a mut Array<u8, U16>,
    blocks: &'a [Array<u8, U16>],
}

impl BlockSizeUser for CbcMac<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for CbcMac<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let mut chain = self.init;
        for block in self.blocks {
            for (c, m) in chain.iter_mut().zip(block.iter()) {
                *c ^= m;
            }
            backend.encrypt_block((&mut chain).into());
        }
        *self.out = chain;
    }
}

fn xor_into(a: &mut [u8], b: &[u8; 16]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

/// MD5 (RFC 1321).
pub fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// SHA-1 (FIPS 180-4, RFC 3174).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

/// SHA-256 (FIPS 180-4).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// HMAC-MD5, full 128 bits (RFC 2104), any key length.
pub fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    hmac_full::<Md5, 16>(key, data)
}

/// HMAC-SHA-1, full 160 bits (RFC 2104), any key length.
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    hmac_full::<Sha1, 20>(key, data)
}

/// HMAC-SHA-256, full 256 bits (RFC 2104, RFC 4868), any key length.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    hmac_full::<Sha256, 32>(key, data)
}

fn hmac_full<D: hmac::EagerHash, const N: usize>(key: &[u8], data: &[u8]) -> [u8; N]
where
    Hmac<D>: Clone + Update + FixedOutput + KeyInit,
{
    let mut out = [0u8; N];
    // HMAC accepts keys of any length (RFC 2104 §2), so this never fails.
    if let Ok(m) = <Hmac<D> as KeyInit>::new_from_slice(key) {
        mac_parts(&m, &[data], &mut out);
    }
    out
}

/// AES-XCBC-MAC, full 128 bits (RFC 3566; AES-XCBC-MAC-96 is its first 96 bits).
pub fn aes_xcbc_mac(key: &[u8; 16], data: &[u8]) -> [u8; 16] {
    AesCbcMac::xcbc(key).mac(&[data])
}

/// AES-CMAC, full 128 bits (RFC 4493; AES-CMAC-96 of RFC 4494 is its first 96 bits).
pub fn aes_cmac(key: &[u8; 16], data: &[u8]) -> [u8; 16] {
    AesCbcMac::cmac(key).mac(&[data])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn hashes() {
        // RFC 1321 A.5, RFC 3174 §7.3 (test 1), FIPS 180-2 B.1.
        assert_eq!(md5(b"abc").to_vec(), h("900150983cd24fb0d6963f7d28e17f72"));
        assert_eq!(
            sha1(b"abc").to_vec(),
            h("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            sha256(b"abc").to_vec(),
            h("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }

    #[test]
    fn rfc2202_case2() {
        // RFC 2202 §2 and §3, test case 2.
        let d = b"what do ya want for nothing?";
        assert_eq!(
            hmac_md5(b"Jefe", d).to_vec(),
            h("750c783e6ab0b503eaa86e310a5db738")
        );
        assert_eq!(
            hmac_sha1(b"Jefe", d).to_vec(),
            h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
        // RFC 4231 §4.3 (HMAC-SHA-256 test case 2).
        assert_eq!(
            hmac_sha256(b"Jefe", d).to_vec(),
            h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn rfc3566_xcbc() {
        // RFC 3566 §4.6, test cases 1-4 and 6.
        let k: [u8; 16] = h("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let m: Vec<u8> = (0u8..34).collect();
        assert_eq!(
            aes_xcbc_mac(&k, &[]).to_vec(),
            h("75f0251d528ac01c4573dfd584d79f29")
        );
        assert_eq!(
            aes_xcbc_mac(&k, &m[..3]).to_vec(),
            h("5b376580ae2f19afe7219ceef172756f")
        );
        assert_eq!(
            aes_xcbc_mac(&k, &m[..16]).to_vec(),
            h("d2a246fa349b68a79998a4394ff7a263")
        );
        assert_eq!(
            aes_xcbc_mac(&k, &m[..20]).to_vec(),
            h("47f51b4564966215b8985c63055ed308")
        );
        assert_eq!(
            aes_xcbc_mac(&k, &m[..32]).to_vec(),
            h("f54f0ec8d2b9f3d36807734bd5283fd4")
        );
        assert_eq!(
            aes_xcbc_mac(&k, &m[..34]).to_vec(),
            h("becbb3bccdb518a30677d5481fb6b4d8")
        );
        // Test case 7: 1000 zero bytes, whole and split at every offset mod 17.
        let zeros = [0u8; 1000];
        let want = h("f0dafee895db30253761103b5d84528f");
        assert_eq!(aes_xcbc_mac(&k, &zeros).to_vec(), want);
        let i7 = Integrity::new(AuthAlgorithm::AesXcbcMac96, &k).unwrap();
        for cut in 0..=40 {
            let mut icv = [0u8; 12];
            let (a, b) = zeros.split_at(cut * 17 % 1000);
            i7.compute(&[a, b], &mut icv).unwrap();
            assert_eq!(icv[..], want[..12], "cut {cut}");
        }
        // Split across parts gives the same MAC.
        let i = Integrity::new(AuthAlgorithm::AesXcbcMac96, &k).unwrap();
        let mut icv = [0u8; 12];
        i.compute(&[&m[..5], &[], &m[5..16], &m[16..34]], &mut icv)
            .unwrap();
        assert_eq!(icv.to_vec(), h("becbb3bccdb518a30677d548"));
    }

    #[test]
    fn rfc4493_cmac() {
        // RFC 4493 §4, examples 1 and 2.
        let k: [u8; 16] = h("2b7e151628aed2a6abf7158809cf4f3c").try_into().unwrap();
        assert_eq!(
            aes_cmac(&k, &[]).to_vec(),
            h("bb1d6929e95937287fa37d129b756746")
        );
        assert_eq!(
            aes_cmac(&k, &h("6bc1bee22e409f96e93d7e117393172a")).to_vec(),
            h("070a16b46b4d4144f79bdd9dd04a287c")
        );
        // Examples 3 and 4 (40 and 64 bytes), the latter also split.
        let m = h(concat!(
            "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51",
            "30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
        ));
        assert_eq!(
            aes_cmac(&k, &m[..40]).to_vec(),
            h("dfa66747de9ae63030ca32611497c827")
        );
        let want = h("51f0bebf7e3b9d92fc49741779363cfe");
        assert_eq!(aes_cmac(&k, &m).to_vec(), want);
        let i = Integrity::new(AuthAlgorithm::AesCmac96, &k).unwrap();
        let mut icv = [0u8; 12];
        i.compute(&[&m[..7], &m[7..16], &[], &m[16..33], &m[33..]], &mut icv)
            .unwrap();
        assert_eq!(icv[..], want[..12]);
    }

    #[test]
    fn rfc4493_subkeys() {
        // RFC 4493 §4, "Subkey Generation".
        let k: [u8; 16] = h("2b7e151628aed2a6abf7158809cf4f3c").try_into().unwrap();
        let m = AesCbcMac::cmac(&k);
        assert_eq!(m.complete.to_vec(), h("fbeed618357133667c85e08f7236a8de"));
        assert_eq!(m.padded.to_vec(), h("f7ddac306ae266ccf90bc11ee46d513b"));
        // dbl without the carry and with it.
        assert_eq!(dbl(1), 2);
        assert_eq!(dbl(1 << 127), 0x87);
    }

    #[test]
    fn truncation_parts_and_verify() {
        // RFC 2202 test case 2 key is 4 bytes; ESP needs 20: use test case 1.
        let key = [0x0b; 20];
        let i = Integrity::new(AuthAlgorithm::HmacSha1_96, &key).unwrap();
        let mut icv = [0u8; 12];
        i.compute(&[b"Hi ", b"There"], &mut icv).unwrap();
        // RFC 2202 §3 test case 1: b617318655057264e28bc0b6fb378c8ef146be00.
        assert_eq!(icv.to_vec(), h("b617318655057264e28bc0b6"));
        assert!(i.verify(&[b"Hi There"], &icv));
        let mut bad = icv;
        bad[11] ^= 1;
        assert!(!i.verify(&[b"Hi There"], &bad));
        assert!(!i.verify(&[b"Hi There"], &icv[..11]));
        assert_eq!(
            i.compute(&[b"x"], &mut [0u8; 11]),
            Err(Error::IcvBufferTooSmall {
                needed: 12,
                got: 11
            })
        );
        assert!(!format!("{i:?}").contains("11"));
    }

    #[test]
    fn key_lengths_enforced() {
        let e = Integrity::new(AuthAlgorithm::HmacSha1_96, &[0; 16]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hmac-sha1 key must be 160 bits (20 bytes), got 16 bytes (128 bits)"
        );
        for a in AuthAlgorithm::ALL {
            for &l in a.key_lengths() {
                let i = Integrity::new(a, &vec![7; l]).unwrap();
                assert_eq!(i.icv_len(), a.icv_len());
                let mut icv = vec![0; i.icv_len()];
                i.compute(&[b"abc"], &mut icv).unwrap();
                assert!(i.verify(&[b"a", b"bc"], &icv));
            }
        }
    }
}
