//! One registry: every name a user may type (setkey, sec-agree, IANA) maps to
//! one algorithm with its key lengths, block size and ICV length.

use crate::Error;

/// An ESP encryption algorithm.
///
/// Names: setkey(8) `-E` names, `ealg` of the `ipsec-3gpp` sec-agree mechanism
/// (TS 33.203, RFC 3329), and IKEv2 Transform Type 1 ids (RFC 7296 §3.3.2,
/// IANA "Transform Type 1 - Encryption Algorithm Transform IDs").
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EncAlgorithm {
    /// NULL encryption (RFC 2410).
    Null,
    /// DES-CBC with explicit IV (RFC 2405).
    DesCbc,
    /// 3DES-EDE3-CBC (RFC 2451).
    TripleDesCbc,
    /// AES-CBC with 128, 192 or 256-bit keys (RFC 3602).
    AesCbc,
}

impl EncAlgorithm {
    /// Every encryption algorithm, for listings.
    pub const ALL: [EncAlgorithm; 4] = [
        EncAlgorithm::Null,
        EncAlgorithm::DesCbc,
        EncAlgorithm::TripleDesCbc,
        EncAlgorithm::AesCbc,
    ];

    /// Parses a setkey(8) name: `des-cbc`, `3des-cbc`, `des-ede3-cbc`,
    /// `rijndael-cbc`, `aes-cbc`, `null` (ASCII case-insensitive).
    pub fn from_setkey_name(name: &str) -> Result<Self, Error> {
        const NAMES: [(&str, EncAlgorithm); 6] = [
            ("des-cbc", EncAlgorithm::DesCbc),
            ("3des-cbc", EncAlgorithm::TripleDesCbc),
            ("des-ede3-cbc", EncAlgorithm::TripleDesCbc),
            ("rijndael-cbc", EncAlgorithm::AesCbc),
            ("aes-cbc", EncAlgorithm::AesCbc),
            ("null", EncAlgorithm::Null),
        ];
        lookup(&NAMES, name, "encryption")
    }

    /// Parses an `ealg` value of the `ipsec-3gpp` mechanism (TS 33.203,
    /// RFC 3329): `des-ede3-cbc`, `aes-cbc`, `null` (ASCII case-insensitive).
    pub fn from_sec_agree_name(name: &str) -> Result<Self, Error> {
        const NAMES: [(&str, EncAlgorithm); 3] = [
            ("des-ede3-cbc", EncAlgorithm::TripleDesCbc),
            ("aes-cbc", EncAlgorithm::AesCbc),
            ("null", EncAlgorithm::Null),
        ];
        lookup(&NAMES, name, "encryption")
    }

    /// Maps an IKEv2 Transform Type 1 id: DES = 2, 3DES = 3, NULL = 11, AES_CBC = 12.
    pub fn from_iana(id: u16) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|a| a.iana() == id)
            .ok_or_else(|| Error::UnknownAlgorithm {
                name: format!("IANA transform id {id}"),
                kind: "encryption",
            })
    }

    /// The IKEv2 Transform Type 1 id.
    pub fn iana(self) -> u16 {
        match self {
            EncAlgorithm::DesCbc => 2,
            EncAlgorithm::TripleDesCbc => 3,
            EncAlgorithm::Null => 11,
            EncAlgorithm::AesCbc => 12,
        }
    }

    /// The canonical name `setkey -D` prints.
    pub fn setkey_name(self) -> &'static str {
        match self {
            EncAlgorithm::Null => "null",
            EncAlgorithm::DesCbc => "des-cbc",
            EncAlgorithm::TripleDesCbc => "3des-cbc",
            EncAlgorithm::AesCbc => "aes-cbc",
        }
    }

    /// The `ealg` name of the sec-agree mechanism, if the algorithm has one.
    pub fn sec_agree_name(self) -> Option<&'static str> {
        match self {
            EncAlgorithm::Null => Some("null"),
            EncAlgorithm::TripleDesCbc => Some("des-ede3-cbc"),
            EncAlgorithm::AesCbc => Some("aes-cbc"),
            EncAlgorithm::DesCbc => None,
        }
    }

    /// Accepted key lengths in bytes.
    pub fn key_lengths(self) -> &'static [usize] {
        match self {
            EncAlgorithm::Null => &[0],
            // RFC 2405 §5: 64-bit key (56 bits + parity).
            EncAlgorithm::DesCbc => &[8],
            // RFC 2451 §2.2: 3DES uses a 192-bit key.
            EncAlgorithm::TripleDesCbc => &[24],
            // RFC 3602 §2.3.
            EncAlgorithm::AesCbc => &[16, 24, 32],
        }
    }

    /// Block size in bytes (NULL: 1, RFC 2410 §2).
    pub fn block_size(self) -> usize {
        match self {
            EncAlgorithm::Null => 1,
            EncAlgorithm::DesCbc | EncAlgorithm::TripleDesCbc => 8,
            EncAlgorithm::AesCbc => 16,
        }
    }

    /// Explicit IV length in bytes carried in each ESP packet.
    pub fn iv_len(self) -> usize {
        match self {
            EncAlgorithm::Null => 0,
            EncAlgorithm::DesCbc | EncAlgorithm::TripleDesCbc => 8,
            EncAlgorithm::AesCbc => 16,
        }
    }

    /// Checks `len` against [`key_lengths`](Self::key_lengths).
    pub fn check_key_len(self, len: usize) -> Result<(), Error> {
        check_len(self.setkey_name(), self.key_lengths(), len)
    }

    /// Rejects weak keys, as RFC 2405 §5 (DES) and RFC 2451 §2.3 (3DES)
    /// recommend before installing an SA.
    ///
    /// [`Cipher::new`](crate::Cipher::new) does not call this, so that the
    /// FIPS 81 / SP 800-20 known-answer tests (which use weak keys) still run.
    /// DES: the weak, semi-weak and possibly-weak keys, parity bits ignored
    /// (RFC 2405 §5 implementation note). 3DES: any weak subkey, or K1 = K2 or
    /// K2 = K3 (which collapse to single DES). K1 = K3 (two-key 3DES) is
    /// accepted: the TS 33.203 key expansion CK1 || CK2 || CK1 produces it.
    /// Other algorithms have no weak keys. Wrong lengths are [`Error::KeyLength`].
    pub fn check_weak_key(self, key: &[u8]) -> Result<(), Error> {
        self.check_key_len(key.len())?;
        let weak = || Error::WeakKey {
            algorithm: self.setkey_name(),
        };
        match self {
            EncAlgorithm::DesCbc | EncAlgorithm::TripleDesCbc => {
                let mut subkeys = [[0u8; 8]; 3];
                let mut n = 0;
                for (sub, chunk) in subkeys.iter_mut().zip(key.chunks_exact(8)) {
                    for (s, &b) in sub.iter_mut().zip(chunk) {
                        // Odd parity in the low bit, as in the FIPS 74 list.
                        *s = (b & 0xfe) | u8::from((b & 0xfe).count_ones() % 2 == 0);
                    }
                    if crate::des::is_weak_key(sub) {
                        return Err(weak());
                    }
                    n += 1;
                }
                if n == 3 && (subkeys[0] == subkeys[1] || subkeys[1] == subkeys[2]) {
                    return Err(weak());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// An ESP/AH integrity algorithm.
///
/// Names: setkey(8) `-A` names, `alg` of the `ipsec-3gpp` sec-agree mechanism,
/// and IKEv2 Transform Type 3 ids (RFC 7296 §3.3.2).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthAlgorithm {
    /// No integrity.
    Null,
    /// HMAC-MD5-96 (RFC 2403).
    HmacMd5_96,
    /// HMAC-SHA-1-96 (RFC 2404).
    HmacSha1_96,
    /// HMAC-SHA-256-128 (RFC 4868).
    HmacSha256_128,
    /// AES-XCBC-MAC-96 (RFC 3566).
    AesXcbcMac96,
    /// AES-CMAC-96 (RFC 4494).
    AesCmac96,
}

impl AuthAlgorithm {
    /// Every integrity algorithm, for listings.
    pub const ALL: [AuthAlgorithm; 6] = [
        AuthAlgorithm::Null,
        AuthAlgorithm::HmacMd5_96,
        AuthAlgorithm::HmacSha1_96,
        AuthAlgorithm::HmacSha256_128,
        AuthAlgorithm::AesXcbcMac96,
        AuthAlgorithm::AesCmac96,
    ];

    /// Parses a setkey(8) name: `null`, `hmac-md5`, `hmac-sha1`,
    /// `hmac-sha256`, `aes-xcbc-mac`, `aes-cmac` (ASCII case-insensitive).
    pub fn from_setkey_name(name: &str) -> Result<Self, Error> {
        const NAMES: [(&str, AuthAlgorithm); 6] = [
            ("null", AuthAlgorithm::Null),
            ("hmac-md5", AuthAlgorithm::HmacMd5_96),
            ("hmac-sha1", AuthAlgorithm::HmacSha1_96),
            ("hmac-sha256", AuthAlgorithm::HmacSha256_128),
            ("aes-xcbc-mac", AuthAlgorithm::AesXcbcMac96),
            ("aes-cmac", AuthAlgorithm::AesCmac96),
        ];
        lookup(&NAMES, name, "authentication")
    }

    /// Parses an `alg` value of the `ipsec-3gpp` mechanism (TS 33.203,
    /// RFC 3329): `hmac-md5-96`, `hmac-sha-1-96` (ASCII case-insensitive).
    pub fn from_sec_agree_name(name: &str) -> Result<Self, Error> {
        const NAMES: [(&str, AuthAlgorithm); 2] = [
            ("hmac-md5-96", AuthAlgorithm::HmacMd5_96),
            ("hmac-sha-1-96", AuthAlgorithm::HmacSha1_96),
        ];
        lookup(&NAMES, name, "authentication")
    }

    /// Maps an IKEv2 Transform Type 3 id: NONE = 0, HMAC_MD5_96 = 1,
    /// HMAC_SHA1_96 = 2, AES_XCBC_96 = 5, AES_CMAC_96 = 8, HMAC_SHA2_256_128 = 12.
    pub fn from_iana(id: u16) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|a| a.iana() == id)
            .ok_or_else(|| Error::UnknownAlgorithm {
                name: format!("IANA transform id {id}"),
                kind: "authentication",
            })
    }

    /// The IKEv2 Transform Type 3 id.
    pub fn iana(self) -> u16 {
        match self {
            AuthAlgorithm::Null => 0,
            AuthAlgorithm::HmacMd5_96 => 1,
            AuthAlgorithm::HmacSha1_96 => 2,
            AuthAlgorithm::AesXcbcMac96 => 5,
            AuthAlgorithm::AesCmac96 => 8,
            AuthAlgorithm::HmacSha256_128 => 12,
        }
    }

    /// The canonical name `setkey -D` prints.
    pub fn setkey_name(self) -> &'static str {
        match self {
            AuthAlgorithm::Null => "null",
            AuthAlgorithm::HmacMd5_96 => "hmac-md5",
            AuthAlgorithm::HmacSha1_96 => "hmac-sha1",
            AuthAlgorithm::HmacSha256_128 => "hmac-sha256",
            AuthAlgorithm::AesXcbcMac96 => "aes-xcbc-mac",
            AuthAlgorithm::AesCmac96 => "aes-cmac",
        }
    }

    /// The `alg` name of the sec-agree mechanism, if the algorithm has one.
    pub fn sec_agree_name(self) -> Option<&'static str> {
        match self {
            AuthAlgorithm::HmacMd5_96 => Some("hmac-md5-96"),
            AuthAlgorithm::HmacSha1_96 => Some("hmac-sha-1-96"),
            _ => None,
        }
    }

    /// Accepted key lengths in bytes.
    pub fn key_lengths(self) -> &'static [usize] {
        match self {
            AuthAlgorithm::Null => &[0],
            // RFC 2403 §3: 128-bit key.
            AuthAlgorithm::HmacMd5_96 => &[16],
            // RFC 2404 §3: 160-bit key.
            AuthAlgorithm::HmacSha1_96 => &[20],
            // RFC 4868 §2.1.1: key length = output length of the hash.
            AuthAlgorithm::HmacSha256_128 => &[32],
            // RFC 3566 §2.1 and RFC 4494 §2: 128-bit key.
            AuthAlgorithm::AesXcbcMac96 | AuthAlgorithm::AesCmac96 => &[16],
        }
    }

    /// ICV length in bytes (the truncated MAC).
    pub fn icv_len(self) -> usize {
        match self {
            AuthAlgorithm::Null => 0,
            AuthAlgorithm::HmacSha256_128 => 16,
            _ => 12,
        }
    }

    /// Checks `len` against [`key_lengths`](Self::key_lengths).
    pub fn check_key_len(self, len: usize) -> Result<(), Error> {
        check_len(self.setkey_name(), self.key_lengths(), len)
    }
}

fn lookup<T: Copy>(table: &[(&str, T)], name: &str, kind: &'static str) -> Result<T, Error> {
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, a)| a)
        .ok_or_else(|| Error::UnknownAlgorithm {
            name: name.to_owned(),
            kind,
        })
}

fn check_len(algorithm: &'static str, expected: &'static [usize], got: usize) -> Result<(), Error> {
    if expected.contains(&got) {
        Ok(())
    } else {
        Err(Error::KeyLength {
            algorithm,
            expected,
            got,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setkey_names() {
        use EncAlgorithm::*;
        for (n, a) in [
            ("des-cbc", DesCbc),
            ("3des-cbc", TripleDesCbc),
            ("des-ede3-cbc", TripleDesCbc),
            ("rijndael-cbc", AesCbc),
            ("aes-cbc", AesCbc),
            ("null", Null),
        ] {
            assert_eq!(EncAlgorithm::from_setkey_name(n), Ok(a), "{n}");
        }
        for a in EncAlgorithm::ALL {
            assert_eq!(EncAlgorithm::from_setkey_name(a.setkey_name()), Ok(a));
            assert_eq!(EncAlgorithm::from_iana(a.iana()), Ok(a));
        }
        for a in AuthAlgorithm::ALL {
            assert_eq!(AuthAlgorithm::from_setkey_name(a.setkey_name()), Ok(a));
            assert_eq!(AuthAlgorithm::from_iana(a.iana()), Ok(a));
            if let Some(n) = a.sec_agree_name() {
                assert_eq!(AuthAlgorithm::from_sec_agree_name(n), Ok(a));
            }
        }
        assert_eq!(
            AuthAlgorithm::from_sec_agree_name("HMAC-SHA-1-96"),
            Ok(AuthAlgorithm::HmacSha1_96)
        );
        assert_eq!(
            EncAlgorithm::from_sec_agree_name("des-ede3-cbc"),
            Ok(TripleDesCbc)
        );
    }

    #[test]
    fn iana_ids() {
        assert_eq!(EncAlgorithm::from_iana(2), Ok(EncAlgorithm::DesCbc));
        assert_eq!(EncAlgorithm::from_iana(3), Ok(EncAlgorithm::TripleDesCbc));
        assert_eq!(EncAlgorithm::from_iana(11), Ok(EncAlgorithm::Null));
        assert_eq!(EncAlgorithm::from_iana(12), Ok(EncAlgorithm::AesCbc));
        assert_eq!(AuthAlgorithm::from_iana(1), Ok(AuthAlgorithm::HmacMd5_96));
        assert_eq!(AuthAlgorithm::from_iana(2), Ok(AuthAlgorithm::HmacSha1_96));
        assert_eq!(AuthAlgorithm::from_iana(5), Ok(AuthAlgorithm::AesXcbcMac96));
        assert_eq!(AuthAlgorithm::from_iana(8), Ok(AuthAlgorithm::AesCmac96));
        assert_eq!(
            AuthAlgorithm::from_iana(12),
            Ok(AuthAlgorithm::HmacSha256_128)
        );
        assert!(EncAlgorithm::from_iana(20).is_err());
        assert!(AuthAlgorithm::from_iana(3).is_err());
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = EncAlgorithm::from_setkey_name("blowfish-cbc").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown encryption algorithm \"blowfish-cbc\""
        );
        assert!(AuthAlgorithm::from_sec_agree_name("hmac-sha1").is_err());
        assert!(EncAlgorithm::from_sec_agree_name("des-cbc").is_err());
    }

    #[test]
    fn weak_keys() {
        let des = EncAlgorithm::DesCbc;
        assert!(des.check_weak_key(&[0x01; 8]).is_err());
        // Same weak key with the parity bits cleared (RFC 2405 §5 note).
        assert!(des.check_weak_key(&[0x00; 8]).is_err());
        assert!(
            des.check_weak_key(&[0x01, 0x1f, 0x01, 0x1f, 0x01, 0x0e, 0x01, 0x0e])
                .is_err()
        );
        assert!(
            des.check_weak_key(b"\x01\x23\x45\x67\x89\xab\xcd\xef")
                .is_ok()
        );
        let tdes = EncAlgorithm::TripleDesCbc;
        assert!(tdes.check_weak_key(b"123456789012123456789012").is_ok());
        // K1 = K3 (TS 33.203 CK1 || CK2 || CK1) is fine; K1 = K2 is not.
        assert!(tdes.check_weak_key(b"0123456789abcdef01234567").is_ok());
        assert!(tdes.check_weak_key(b"0123456701234567abcdefgh").is_err());
        assert!(tdes.check_weak_key(b"abcdefgh0123456701234567").is_err());
        let e = tdes.check_weak_key(&[7; 16]).unwrap_err();
        assert!(matches!(e, Error::KeyLength { .. }));
        assert!(EncAlgorithm::AesCbc.check_weak_key(&[0; 16]).is_ok());
    }

    #[test]
    fn key_length_check() {
        assert!(EncAlgorithm::AesCbc.check_key_len(24).is_ok());
        let e = EncAlgorithm::TripleDesCbc.check_key_len(16).unwrap_err();
        assert!(e.to_string().contains("192 bits (24 bytes)"), "{e}");
    }
}
