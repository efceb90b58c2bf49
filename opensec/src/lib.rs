//! `opensec`: the algorithms of IPsec and IMS access security, sans-IO.
//!
//! Hashes (MD5, SHA-1), MACs (HMAC-MD5-96, HMAC-SHA1-96, HMAC-SHA-256-128,
//! AES-XCBC-MAC-96, AES-CMAC-96), block ciphers in CBC/ECB (DES, 3DES, AES),
//! NULL, MILENAGE and AKA, HTTP digest (RFC 2617, RFC 3310, RFC 4169), IMS key
//! expansion, and one registry that maps every setkey, sec-agree and IANA
//! name to an algorithm.

mod encryption;
mod error;
mod integrity;
pub mod milenage;
mod registry;

pub use encryption::Cipher;
pub use error::Error;
pub use integrity::{
    Integrity, aes_cmac, aes_xcbc_mac, hmac_md5, hmac_sha1, hmac_sha256, md5, sha1, sha256,
};
pub use registry::{AuthAlgorithm, EncAlgorithm};
