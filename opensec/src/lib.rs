//! `opensec`: the algorithms of IPsec ESP and of IMS access security
//! (3GPP Gm), sans-IO.
//!
//! # What it does
//!
//! - **One registry** ([`EncAlgorithm`], [`AuthAlgorithm`]): every name a user
//!   may type (setkey `-E`/`-A` names, the sec-agree `ealg`/`alg` values of
//!   TS 33.203 / RFC 3329, IKEv2 IANA transform ids) maps to one algorithm
//!   with its key lengths, block size, IV and ICV length. Unknown names and
//!   wrong key lengths are errors that name the expected length; weak DES and
//!   3DES keys are caught by [`EncAlgorithm::check_weak_key`].
//! - **Ciphers** ([`Cipher`]): DES-CBC (RFC 2405), 3DES-EDE3-CBC (RFC 2451),
//!   AES-128/192/256-CBC (RFC 3602), in place with an explicit IV and no
//!   padding (ESP pads, RFC 4303 §2.4); ECB for known-answer tests; NULL
//!   (RFC 2410).
//! - **Integrity** ([`Integrity`]): HMAC-MD5-96 (RFC 2403), HMAC-SHA1-96
//!   (RFC 2404), HMAC-SHA-256-128 (RFC 4868), AES-XCBC-MAC-96 (RFC 3566),
//!   AES-CMAC-96 (RFC 4494), over several byte slices without copying (for
//!   ESN), verified in constant time.
//! - **Full-length primitives** for known-answer tests: [`md5()`], [`sha1()`],
//!   [`sha256`], [`hmac_md5`], [`hmac_sha1`], [`hmac_sha256`],
//!   [`aes_xcbc_mac`], [`aes_cmac`].
//! - **MILENAGE** ([`milenage`], TS 35.206: f1, f1*, f2..f5, f5*, OPc,
//!   GSM-MILENAGE of TS 55.205) and **AKA** ([`aka`], TS 33.102 §6.3: AUTN
//!   with the SQN freshness check, AUTS, the AKAv1-MD5 (RFC 3310) and
//!   AKAv2-MD5 (RFC 4169) passwords).
//! - **HTTP digest** ([`digest`], RFC 2617: MD5, MD5-sess, qop auth and
//!   auth-int).
//! - **IMS key expansion** ([`ims`], TS 33.203 Annex I): ESP keys from CK/IK.
//!
//! Keys live in types that zeroize on drop and print `<redacted>` in `Debug`.
//! Keyed objects do their key schedule once; per-packet calls do not allocate.
//! AES, the hashes and HMAC come from RustCrypto (`aes`, `hmac`, `md-5`,
//! `sha1`, `sha2`), which pick AES-NI/VAES and SHA-NI at run time; the CBC,
//! XCBC and CMAC chaining is written here over the expanded key so that it
//! neither copies nor stalls per block, and so are DES and 3DES (table-driven,
//! as in OpenSSL's C code). `benches/openssl_compare.sh` puts the throughput
//! beside `openssl speed`.
//!
//! # What it does not do
//!
//! No IO, no clock, no randomness: IVs, RAND and SQN state come from the
//! caller. No ESP packet handling (that is `ipsec-esp`), no SIP parsing
//! (`gm`), no AEAD or counter modes (AES-GCM, AES-CTR), no 5G key derivation
//! (RES*, KAUSF). MD5, SHA-1, DES and 3DES are here because the RFCs and
//! deployed IMS networks still use them, not as a recommendation.
//!
//! # Example
//!
//! ```
//! use opensec::{AuthAlgorithm, Cipher, EncAlgorithm, Integrity};
//!
//! // Names as typed in a setkey file or a Security-Client header.
//! let ealg = EncAlgorithm::from_setkey_name("rijndael-cbc")?;
//! let alg = AuthAlgorithm::from_sec_agree_name("hmac-sha-1-96")?;
//! assert_eq!((ealg.iana(), alg.icv_len()), (12, 12));
//!
//! // RFC 3602 §4, Case #1.
//! let key = [0x06, 0xa9, 0x21, 0x40, 0x36, 0xb8, 0xa1, 0x5b,
//!            0x51, 0x2e, 0x03, 0xd5, 0x34, 0x12, 0x00, 0x06];
//! let iv = [0x3d, 0xaf, 0xba, 0x42, 0x9d, 0x9e, 0xb4, 0x30,
//!           0xb4, 0x22, 0xda, 0x80, 0x2c, 0x9f, 0xac, 0x41];
//! let cipher = Cipher::new(ealg, &key)?;
//! let mut data = *b"Single block msg";
//! cipher.encrypt_cbc(&iv, &mut data)?;
//! assert_eq!(data[..4], [0xe3, 0x53, 0x77, 0x9c]);
//!
//! // ICV over the ESP header and ciphertext, given as separate slices.
//! let mac = Integrity::new(alg, &[0x0b; 20])?;
//! let mut icv = [0u8; 12];
//! mac.compute(&[&[0, 0, 0x10, 0x01, 0, 0, 0, 1], &iv, &data], &mut icv)?;
//! assert!(mac.verify(&[&[0, 0, 0x10, 0x01, 0, 0, 0, 1], &iv, &data], &icv));
//!
//! // A wrong key length says what is expected.
//! let err = Cipher::new(EncAlgorithm::TripleDesCbc, &[0; 16]).unwrap_err();
//! assert!(err.to_string().contains("192 bits (24 bytes)"));
//! # Ok::<(), opensec::Error>(())
//! ```

pub mod aka;
mod base64;
mod des;
pub mod digest;
mod encryption;
mod error;
pub mod ims;
mod integrity;
pub mod milenage;
mod registry;

pub use base64::{decode as base64_decode, encode as base64_encode};
pub use encryption::Cipher;
pub use error::Error;
pub use integrity::{
    Integrity, aes_cmac, aes_xcbc_mac, hmac_md5, hmac_sha1, hmac_sha256, md5, sha1, sha256,
};
pub use registry::{AuthAlgorithm, EncAlgorithm};

/// Runs each cipher and MAC once on dummy data, so that what their first
/// use costs falls here: the CPU feature detection of the AES, SHA-1 and
/// SHA-256 back ends (`cpuid`, which a hypervisor traps: tens of
/// microseconds each) and the first key schedule. A process that
/// protects its first packet on a deadline (a UE's protected REGISTER)
/// calls it at start. Idempotent and cheap after the first call.
pub fn warm_up() {
    let iv = [0u8; 16];
    for (alg, key) in [
        (EncAlgorithm::AesCbc, &[0x5a_u8; 16][..]),
        (EncAlgorithm::TripleDesCbc, &[0x5a_u8; 24][..]),
    ] {
        if let Ok(c) = Cipher::new(alg, key) {
            let mut block = [0u8; 64];
            let iv = iv.get(..c.iv_len()).unwrap_or_default();
            let _ = c.encrypt_cbc(iv, &mut block);
            let _ = c.decrypt_cbc(iv, &mut block);
        }
    }
    let key = [0x5a_u8; 20];
    let _ = (
        hmac_sha1(&key, b"warm"),
        hmac_md5(&key, b"warm"),
        hmac_sha256(&key, b"warm"),
        aes_xcbc_mac(&[0x5a; 16], b"warm"),
    );
}

/// The example of the crate's README.md, run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
