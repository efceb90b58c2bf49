//! Keyed block ciphers for ESP: CBC with explicit IV and ECB, in place.

use core::fmt;

use aes::{Aes128, Aes192, Aes256};
use cipher::array::{Array, ArraySize};
use cipher::typenum::Unsigned;
use cipher::{
    BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt, BlockCipherEncBackend,
    BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit, ParBlocks,
};
use zeroize::ZeroizeOnDrop;

use crate::des::{Des, TdesEde3};
use crate::{EncAlgorithm, Error};

/// The expanded key of one cipher. The RustCrypto AES types (crate feature
/// `zeroize`) and our DES types zeroize their round keys on drop.
// The AES variants are large; boxing them would add an indirection per
// packet for no benefit, since a `Cipher` lives as long as its SA.
#[allow(clippy::large_enum_variant)]
enum Keyed {
    Null,
    Des(Des),
    Tdes(TdesEde3),
    Aes128(Aes128),
    Aes192(Aes192),
    Aes256(Aes256),
}

/// A keyed block cipher for ESP.
///
/// The key schedule runs once in [`Cipher::new`]; each call then works in
/// place on the caller's buffer without allocating. Round keys are zeroized
/// on drop and `Debug` does not show them.
pub struct Cipher {
    algorithm: EncAlgorithm,
    keyed: Keyed,
}

impl ZeroizeOnDrop for Cipher {}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher")
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Cipher {
    /// Expands `key` for `alg`; the key length must be one of `alg.key_lengths()`.
    ///
    /// Weak DES/3DES keys are accepted here (the FIPS known-answer tests use
    /// them); call [`EncAlgorithm::check_weak_key`] before installing an SA.
    pub fn new(alg: EncAlgorithm, key: &[u8]) -> Result<Self, Error> {
        alg.check_key_len(key.len())?;
        let bad_key = || Error::KeyLength {
            algorithm: alg.setkey_name(),
            expected: alg.key_lengths(),
            got: key.len(),
        };
        let keyed = match alg {
            EncAlgorithm::Null => Keyed::Null,
            EncAlgorithm::DesCbc => Keyed::Des(Des::new(key.try_into().map_err(|_| bad_key())?)),
            EncAlgorithm::TripleDesCbc => {
                Keyed::Tdes(TdesEde3::new(key.try_into().map_err(|_| bad_key())?))
            }
            EncAlgorithm::AesCbc => match key.len() {
                16 => Keyed::Aes128(Aes128::new_from_slice(key).map_err(|_| bad_key())?),
                24 => Keyed::Aes192(Aes192::new_from_slice(key).map_err(|_| bad_key())?),
                _ => Keyed::Aes256(Aes256::new_from_slice(key).map_err(|_| bad_key())?),
            },
        };
        Ok(Cipher {
            algorithm: alg,
            keyed,
        })
    }

    /// The algorithm this cipher was keyed for.
    pub fn algorithm(&self) -> EncAlgorithm {
        self.algorithm
    }

    /// Block size in bytes (1 for NULL).
    pub fn block_size(&self) -> usize {
        self.algorithm.block_size()
    }

    /// IV length in bytes (0 for NULL).
    pub fn iv_len(&self) -> usize {
        self.algorithm.iv_len()
    }

    /// CBC encryption in place with the explicit `iv` (RFC 2405 §2, RFC 2451
    /// §2.3, RFC 3602 §2.1). `data.len()` must be a multiple of the block size:
    /// no padding is added (ESP pads, RFC 4303 §2.4). NULL: no-op.
    pub fn encrypt_cbc(&self, iv: &[u8], data: &mut [u8]) -> Result<(), Error> {
        self.check(Some(iv), data)?;
        match &self.keyed {
            Keyed::Null => Ok(()),
            Keyed::Des(c) => {
                c.encrypt_cbc(des_iv(iv)?, data);
                Ok(())
            }
            Keyed::Tdes(c) => {
                c.encrypt_cbc(des_iv(iv)?, data);
                Ok(())
            }
            Keyed::Aes128(c) => cbc_encrypt(c, iv, data),
            Keyed::Aes192(c) => cbc_encrypt(c, iv, data),
            Keyed::Aes256(c) => cbc_encrypt(c, iv, data),
        }
    }

    /// CBC decryption in place with the explicit `iv`; see [`encrypt_cbc`](Self::encrypt_cbc).
    pub fn decrypt_cbc(&self, iv: &[u8], data: &mut [u8]) -> Result<(), Error> {
        self.check(Some(iv), data)?;
        match &self.keyed {
            Keyed::Null => Ok(()),
            Keyed::Des(c) => {
                c.decrypt_cbc(des_iv(iv)?, data);
                Ok(())
            }
            Keyed::Tdes(c) => {
                c.decrypt_cbc(des_iv(iv)?, data);
                Ok(())
            }
            Keyed::Aes128(c) => cbc_decrypt(c, iv, data),
            Keyed::Aes192(c) => cbc_decrypt(c, iv, data),
            Keyed::Aes256(c) => cbc_decrypt(c, iv, data),
        }
    }

    /// ECB encryption in place (for known-answer tests); `data.len()` a multiple
    /// of the block size. NULL: no-op.
    pub fn encrypt_ecb(&self, data: &mut [u8]) -> Result<(), Error> {
        self.check(None, data)?;
        match &self.keyed {
            Keyed::Null => {}
            Keyed::Des(c) => c.encrypt_ecb(data),
            Keyed::Tdes(c) => c.encrypt_ecb(data),
            Keyed::Aes128(c) => c.encrypt_blocks(blocks_mut(data)),
            Keyed::Aes192(c) => c.encrypt_blocks(blocks_mut(data)),
            Keyed::Aes256(c) => c.encrypt_blocks(blocks_mut(data)),
        }
        Ok(())
    }

    /// ECB decryption in place; see [`encrypt_ecb`](Self::encrypt_ecb).
    pub fn decrypt_ecb(&self, data: &mut [u8]) -> Result<(), Error> {
        self.check(None, data)?;
        match &self.keyed {
            Keyed::Null => {}
            Keyed::Des(c) => c.decrypt_ecb(data),
            Keyed::Tdes(c) => c.decrypt_ecb(data),
            Keyed::Aes128(c) => c.decrypt_blocks(blocks_mut(data)),
            Keyed::Aes192(c) => c.decrypt_blocks(blocks_mut(data)),
            Keyed::Aes256(c) => c.decrypt_blocks(blocks_mut(data)),
        }
        Ok(())
    }

    fn check(&self, iv: Option<&[u8]>, data: &[u8]) -> Result<(), Error> {
        if let Some(iv) = iv {
            if iv.len() != self.iv_len() {
                return Err(Error::IvLength {
                    expected: self.iv_len(),
                    got: iv.len(),
                });
            }
        }
        let block_size = self.block_size();
        // Block sizes are powers of two: a mask, not a division, per packet.
        if data.len() & (block_size - 1) != 0 {
            return Err(Error::NotBlockAligned {
                block_size,
                len: data.len(),
            });
        }
        Ok(())
    }
}

/// The 8-byte DES IV (its length already checked).
fn des_iv(iv: &[u8]) -> Result<&[u8; 8], Error> {
    iv.try_into().map_err(|_| Error::IvLength {
        expected: 8,
        got: iv.len(),
    })
}

/// Views `data` (already checked to be block aligned) as blocks.
fn blocks_mut<N: ArraySize>(data: &mut [u8]) -> &mut [Array<u8, N>] {
    Array::slice_as_chunks_mut(data).0
}

/// Views the IV in place. The closures below load it with one 16-byte read:
/// copying it into the closure first (a few narrow stores) and reading it
/// back wide defeats store-to-load forwarding and cost ~15 cycles per call.
fn to_iv<N: ArraySize>(iv: &[u8]) -> Result<&Array<u8, N>, Error> {
    <&Array<u8, N>>::try_from(iv).map_err(|_| Error::IvLength {
        expected: N::USIZE,
        got: iv.len(),
    })
}

// Both directions run over the already-expanded cipher, so no key schedule
// or copy of the round keys happens per call.
fn cbc_encrypt<C: BlockCipherEncrypt>(c: &C, iv: &[u8], data: &mut [u8]) -> Result<(), Error> {
    let iv = to_iv(iv)?;
    c.encrypt_with_backend(CbcEncrypt {
        iv,
        blocks: blocks_mut(data),
    });
    Ok(())
}

/// CBC encryption (RFC 3602 §2.1: C_i = E_K(P_i xor C_{i-1}), C_0 = IV),
/// written here rather than with `cbc::Encryptor` so that the chaining value
/// stays in a register: encryption is serial, and a store/reload of the IV
/// per block sits on the critical path.
struct CbcEncrypt<'a, N: ArraySize> {
    iv: &'a Array<u8, N>,
    blocks: &'a mut [Array<u8, N>],
}

impl<N: ArraySize> BlockSizeUser for CbcEncrypt<'_, N> {
    type BlockSize = N;
}

impl<N: ArraySize> BlockCipherEncClosure for CbcEncrypt<'_, N> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = N>>(self, backend: &B) {
        let mut chain = self.iv.clone();
        for block in self.blocks {
            for (c, p) in chain.iter_mut().zip(block.iter()) {
                *c ^= p;
            }
            backend.encrypt_block((&mut chain).into());
            block.copy_from_slice(&chain);
        }
    }
}

fn cbc_decrypt<C: BlockCipherDecrypt>(c: &C, iv: &[u8], data: &mut [u8]) -> Result<(), Error> {
    let iv = to_iv(iv)?;
    c.decrypt_with_backend(CbcDecrypt {
        iv,
        blocks: blocks_mut(data),
    });
    Ok(())
}

/// CBC decryption (RFC 3602 §2.1: P_i = D_K(C_i) xor C_{i-1}), in place.
///
/// Whole batches of the backend's parallel width (8 blocks with AES-NI, 64
/// with VAES-512) are decrypted straight from the buffer into a stack
/// temporary and XORed back from the last block to the first, so that each
/// C_{i-1} is still in the buffer when it is needed: no copy of the
/// ciphertext is made (`cbc::Decryptor` copies every batch twice).
struct CbcDecrypt<'a, N: ArraySize> {
    iv: &'a Array<u8, N>,
    blocks: &'a mut [Array<u8, N>],
}

impl<N: ArraySize> BlockSizeUser for CbcDecrypt<'_, N> {
    type BlockSize = N;
}

impl<N: ArraySize> BlockCipherDecClosure for CbcDecrypt<'_, N> {
    #[inline(always)]
    fn call<B: BlockCipherDecBackend<BlockSize = N>>(self, backend: &B) {
        let mut chain = self.iv.clone();
        let serial: &mut [Array<u8, N>] = if B::ParBlocksSize::USIZE > 1 {
            let (batches, tail) = ParBlocks::<B>::slice_as_chunks_mut(self.blocks);
            for batch in batches {
                let mut plain = ParBlocks::<B>::default();
                backend.decrypt_par_blocks((&*batch, &mut plain).into());
                let next_chain = batch.last().cloned().unwrap_or_default();
                for j in (1..batch.len()).rev() {
                    let (before, from_j) = batch.split_at_mut(j);
                    if let (Some(prev), Some(out), Some(p)) =
                        (before.last(), from_j.first_mut(), plain.get(j))
                    {
                        xor_into(out, p, prev);
                    }
                }
                if let (Some(out), Some(p)) = (batch.first_mut(), plain.first()) {
                    xor_into(out, p, &chain);
                }
                chain = next_chain;
            }
            tail
        } else {
            // No parallel path (the software AES backend): every block goes
            // through the loop below.
            self.blocks
        };
        for block in serial {
            let cipher_block = block.clone();
            let mut p = block.clone();
            backend.decrypt_block((&mut p).into());
            xor_into(block, &p, &chain);
            chain = cipher_block;
        }
    }
}

/// `out = a xor b`.
#[inline(always)]
fn xor_into<N: ArraySize>(out: &mut Array<u8, N>, a: &Array<u8, N>, b: &Array<u8, N>) {
    for ((o, x), y) in out.iter_mut().zip(a.iter()).zip(b.iter()) {
        *o = x ^ y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    // RFC 3602 §4, Case #1 and Case #2.
    #[test]
    fn rfc3602_cases() {
        let c = Cipher::new(EncAlgorithm::AesCbc, &h("06a9214036b8a15b512e03d534120006")).unwrap();
        let iv = h("3dafba429d9eb430b422da802c9fac41");
        let mut d = b"Single block msg".to_vec();
        c.encrypt_cbc(&iv, &mut d).unwrap();
        assert_eq!(d, h("e353779c1079aeb82708942dbe77181a"));
        c.decrypt_cbc(&iv, &mut d).unwrap();
        assert_eq!(d, b"Single block msg");

        let c = Cipher::new(EncAlgorithm::AesCbc, &h("c286696d887c9aa0611bbb3e2025a45a")).unwrap();
        let iv = h("562e17996d093d28ddb3ba695a2e6f58");
        let pt = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        let mut d = pt.clone();
        c.encrypt_cbc(&iv, &mut d).unwrap();
        assert_eq!(
            d,
            h("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1")
        );
        c.decrypt_cbc(&iv, &mut d).unwrap();
        assert_eq!(d, pt);
    }

    // FIPS 81 Appendix C (DES CBC example), also used by RFC 2405 implementations.
    #[test]
    fn des_cbc_fips81() {
        let c = Cipher::new(EncAlgorithm::DesCbc, &h("0123456789abcdef")).unwrap();
        let iv = h("1234567890abcdef");
        let mut d = b"Now is the time for all ".to_vec();
        c.encrypt_cbc(&iv, &mut d).unwrap();
        assert_eq!(d, h("e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6"));
        c.decrypt_cbc(&iv, &mut d).unwrap();
        assert_eq!(d, b"Now is the time for all ");
    }

    /// CBC from single-block ECB calls (RFC 3602 §2.1), for every length
    /// around the parallel batch sizes (8, 30, 64 blocks) of the backends.
    #[test]
    fn cbc_matches_blockwise_reference() {
        for (alg, key_len) in [
            (EncAlgorithm::AesCbc, 16),
            (EncAlgorithm::DesCbc, 8),
            (EncAlgorithm::TripleDesCbc, 24),
        ] {
            let key: Vec<u8> = (0..key_len as u8).map(|i| i.wrapping_mul(37)).collect();
            let c = Cipher::new(alg, &key).unwrap();
            let bs = c.block_size();
            let iv: Vec<u8> = (0..bs as u8).map(|i| i ^ 0xa5).collect();
            for blocks in 0..140usize {
                let plain: Vec<u8> = (0..blocks * bs).map(|i| (i * 7 + blocks) as u8).collect();
                let mut reference = plain.clone();
                let mut chain = iv.clone();
                for block in reference.chunks_mut(bs) {
                    for (b, x) in block.iter_mut().zip(&chain) {
                        *b ^= x;
                    }
                    c.encrypt_ecb(block).unwrap();
                    chain = block.to_vec();
                }
                let mut ours = plain.clone();
                c.encrypt_cbc(&iv, &mut ours).unwrap();
                assert_eq!(ours, reference, "{alg:?} encrypt {blocks} blocks");
                c.decrypt_cbc(&iv, &mut ours).unwrap();
                assert_eq!(ours, plain, "{alg:?} decrypt {blocks} blocks");
            }
        }
    }

    #[test]
    fn errors() {
        let e = Cipher::new(EncAlgorithm::TripleDesCbc, &[0; 16]).unwrap_err();
        assert!(e.to_string().contains("192 bits (24 bytes)"), "{e}");
        let c = Cipher::new(EncAlgorithm::AesCbc, &[0; 32]).unwrap();
        assert_eq!(
            c.encrypt_cbc(&[0; 8], &mut [0; 16]),
            Err(Error::IvLength {
                expected: 16,
                got: 8
            })
        );
        assert_eq!(
            c.decrypt_cbc(&[0; 16], &mut [0; 17]),
            Err(Error::NotBlockAligned {
                block_size: 16,
                len: 17
            })
        );
        assert!(c.encrypt_ecb(&mut [0; 15]).is_err());
        assert!(!format!("{c:?}").contains('0'));
    }

    #[test]
    fn null_is_identity() {
        let c = Cipher::new(EncAlgorithm::Null, &[]).unwrap();
        let mut d = *b"abc";
        c.encrypt_cbc(&[], &mut d).unwrap();
        assert_eq!(&d, b"abc");
        assert!(Cipher::new(EncAlgorithm::Null, &[1]).is_err());
    }

    #[test]
    fn ecb_matches_single_block_cbc_with_zero_iv() {
        for (alg, key) in [
            (EncAlgorithm::DesCbc, 8),
            (EncAlgorithm::TripleDesCbc, 24),
            (EncAlgorithm::AesCbc, 24),
        ] {
            let k: Vec<u8> = (0..key as u8).collect();
            let c = Cipher::new(alg, &k).unwrap();
            let mut a = vec![0x5a; c.block_size()];
            let mut b = a.clone();
            c.encrypt_ecb(&mut a).unwrap();
            c.encrypt_cbc(&vec![0; c.iv_len()], &mut b).unwrap();
            assert_eq!(a, b);
            c.decrypt_ecb(&mut a).unwrap();
            assert_eq!(a, vec![0x5a; c.block_size()]);
        }
    }
}
