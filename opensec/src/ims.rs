//! IMS key expansion: ESP keys for the Gm SAs from the AKA keys CK and IK
//! (TS 33.203 Annex I, as commonly implemented; the 3GPP text itself was not
//! available here, see `shared/refs/3gpp-notes.md`).
//!
//! - `hmac-md5-96`: IK (128 bits)
//! - `hmac-sha-1-96`: IK || 32 zero bits (160 bits)
//! - `des-ede3-cbc`: CK1 || CK2 || CK1, where CK = CK1 || CK2 (192 bits)
//! - `aes-cbc`: CK (128 bits)
//! - `null`: no key

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{AuthAlgorithm, EncAlgorithm, Error};

/// Key bytes (at most 32), zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey {
    bytes: [u8; 32],
    len: usize,
}

impl SecretKey {
    /// Copies `key` (at most 32 bytes).
    pub fn new(key: &[u8]) -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        bytes
            .get_mut(..key.len())
            .ok_or(Error::InvalidInput {
                what: "key longer than 32 bytes",
            })?
            .copy_from_slice(key);
        Ok(SecretKey {
            bytes,
            len: key.len(),
        })
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the key is empty (NULL algorithms).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl ZeroizeOnDrop for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<{} bytes redacted>)", self.len)
    }
}

/// The keys of one ESP SA pair derived from CK and IK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspKeys {
    /// Encryption algorithm (`ealg`).
    pub ealg: EncAlgorithm,
    /// Encryption key, of a length `ealg` accepts.
    pub enc_key: SecretKey,
    /// Integrity algorithm (`alg`).
    pub alg: AuthAlgorithm,
    /// Integrity key, of a length `alg` accepts.
    pub auth_key: SecretKey,
}

/// The integrity key for `alg` from IK (TS 33.203 Annex I).
pub fn integrity_key(alg: AuthAlgorithm, ik: &[u8; 16]) -> Result<SecretKey, Error> {
    match alg {
        AuthAlgorithm::HmacMd5_96 => SecretKey::new(ik),
        AuthAlgorithm::HmacSha1_96 => {
            let mut k = [0u8; 20];
            k[..16].copy_from_slice(ik);
            let key = SecretKey::new(&k);
            k.zeroize();
            key
        }
        AuthAlgorithm::Null => SecretKey::new(&[]),
        other => Err(Error::NoKeyExpansion {
            algorithm: other.setkey_name(),
        }),
    }
}

/// The encryption key for `ealg` from CK (TS 33.203 Annex I).
pub fn encryption_key(ealg: EncAlgorithm, ck: &[u8; 16]) -> Result<SecretKey, Error> {
    match ealg {
        EncAlgorithm::TripleDesCbc => {
            let mut k = [0u8; 24];
            k[..16].copy_from_slice(ck);
            k[16..].copy_from_slice(&ck[..8]);
            let key = SecretKey::new(&k);
            k.zeroize();
            key
        }
        EncAlgorithm::AesCbc => SecretKey::new(ck),
        EncAlgorithm::Null => SecretKey::new(&[]),
        other => Err(Error::NoKeyExpansion {
            algorithm: other.setkey_name(),
        }),
    }
}

/// Both ESP keys for the negotiated `ealg` and `alg`.
pub fn esp_keys(
    ealg: EncAlgorithm,
    alg: AuthAlgorithm,
    ck: &[u8; 16],
    ik: &[u8; 16],
) -> Result<EspKeys, Error> {
    Ok(EspKeys {
        ealg,
        enc_key: encryption_key(ealg, ck)?,
        alg,
        auth_key: integrity_key(alg, ik)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cipher, Integrity};

    const CK: [u8; 16] = *b"0123456789abcdef";
    const IK: [u8; 16] = *b"ABCDEFGHIJKLMNOP";

    #[test]
    fn layouts() {
        let k = esp_keys(
            EncAlgorithm::TripleDesCbc,
            AuthAlgorithm::HmacSha1_96,
            &CK,
            &IK,
        )
        .unwrap();
        assert_eq!(k.enc_key.as_bytes(), b"0123456789abcdef01234567");
        assert_eq!(k.auth_key.as_bytes(), b"ABCDEFGHIJKLMNOP\0\0\0\0");
        assert!(!format!("{k:?}").contains("ABC"));
        let k = esp_keys(EncAlgorithm::AesCbc, AuthAlgorithm::HmacMd5_96, &CK, &IK).unwrap();
        assert_eq!(k.enc_key.as_bytes(), &CK);
        assert_eq!(k.auth_key.as_bytes(), &IK);
        let k = esp_keys(EncAlgorithm::Null, AuthAlgorithm::HmacMd5_96, &CK, &IK).unwrap();
        assert!(k.enc_key.is_empty());
    }

    #[test]
    fn keys_fit_the_registry() {
        for ealg in EncAlgorithm::ALL {
            for alg in AuthAlgorithm::ALL {
                match esp_keys(ealg, alg, &CK, &IK) {
                    Ok(k) => {
                        Cipher::new(ealg, k.enc_key.as_bytes()).unwrap();
                        Integrity::new(alg, k.auth_key.as_bytes()).unwrap();
                    }
                    Err(e) => assert!(
                        matches!(e, Error::NoKeyExpansion { .. }),
                        "{ealg:?} {alg:?}: {e}"
                    ),
                }
            }
        }
        assert!(esp_keys(EncAlgorithm::DesCbc, AuthAlgorithm::HmacMd5_96, &CK, &IK).is_err());
    }
}
