//! The one error type of the crate.

use core::fmt;

/// Everything that can go wrong in `opensec`.
///
/// Each variant carries the data a caller needs to report the problem or to
/// map it to a protocol outcome (for AKA: a MAC failure answer, or an AUTS
/// for resynchronisation, RFC 3310 §3.4).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A name (setkey, sec-agree or IANA transform id) that maps to no algorithm.
    UnknownAlgorithm {
        /// The name as given (for IANA ids: `"IANA transform id N"`).
        name: String,
        /// `"encryption"`, `"authentication"` or (HTTP digest `algorithm`) `"digest"`.
        kind: &'static str,
    },
    /// A key whose length the algorithm does not accept.
    KeyLength {
        /// The algorithm's setkey name.
        algorithm: &'static str,
        /// Accepted lengths in bytes.
        expected: &'static [usize],
        /// Length given, in bytes.
        got: usize,
    },
    /// An IV whose length is not the cipher's IV length.
    IvLength {
        /// Required length in bytes.
        expected: usize,
        /// Length given, in bytes.
        got: usize,
    },
    /// Data to encrypt or decrypt whose length is not a multiple of the block size.
    NotBlockAligned {
        /// The cipher's block size in bytes.
        block_size: usize,
        /// Length given, in bytes.
        len: usize,
    },
    /// The buffer for the ICV is shorter than the ICV.
    IcvBufferTooSmall {
        /// ICV length in bytes.
        needed: usize,
        /// Buffer length in bytes.
        got: usize,
    },
    /// AKA: MAC-A in AUTN (or MAC-S in AUTS) is not the one computed
    /// (TS 33.102 §6.3.3; answered without a password-based response, RFC 3310 §3.4).
    MacFailure,
    /// AKA: AUTN is authentic but its SQN is not fresh (TS 33.102 §6.3.3,
    /// Annex C). The UE answers with `auts` (RFC 3310 §3.4).
    SyncFailure {
        /// The sequence number recovered from AUTN.
        sqn: u64,
        /// The highest sequence number the UE had accepted.
        sqn_ms: u64,
        /// AUTS = (SQN_MS xor AK*) || MAC-S, ready to be base64-encoded.
        auts: [u8; 14],
    },
    /// A field of bad length or content in an AKA or digest input.
    InvalidInput {
        /// What was wrong.
        what: &'static str,
    },
    /// A DES or 3DES key on the weak-key list (RFC 2405 §5, RFC 2451 §2.3).
    WeakKey {
        /// The algorithm's setkey name.
        algorithm: &'static str,
    },
    /// No IMS key expansion (TS 33.203 Annex I) is defined for this algorithm.
    NoKeyExpansion {
        /// The algorithm's setkey name.
        algorithm: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownAlgorithm { name, kind } => {
                write!(f, "unknown {kind} algorithm {name:?}")
            }
            Error::KeyLength {
                algorithm,
                expected,
                got,
            } => {
                write!(f, "{algorithm} key must be ")?;
                write_lengths(f, expected, 8, " bits")?;
                f.write_str(" (")?;
                write_lengths(f, expected, 1, " bytes")?;
                write!(f, "), got {got} bytes ({} bits)", got * 8)
            }
            Error::IvLength { expected, got } => {
                write!(f, "IV must be {expected} bytes, got {got} bytes")
            }
            Error::NotBlockAligned { block_size, len } => write!(
                f,
                "data length {len} is not a multiple of the block size {block_size}"
            ),
            Error::IcvBufferTooSmall { needed, got } => write!(
                f,
                "ICV buffer of {got} bytes is too small, {needed} bytes needed"
            ),
            Error::MacFailure => f.write_str("AKA MAC failure: network authentication failed"),
            Error::SyncFailure { sqn, sqn_ms, .. } => write!(
                f,
                "AKA synchronisation failure: SQN {sqn:#014x} is not fresh (SQN_MS {sqn_ms:#014x})"
            ),
            Error::InvalidInput { what } => write!(f, "invalid input: {what}"),
            Error::WeakKey { algorithm } => write!(
                f,
                "weak {algorithm} key (RFC 2405 §5, RFC 2451 §2.3): choose another key"
            ),
            Error::NoKeyExpansion { algorithm } => write!(
                f,
                "no IMS key expansion (TS 33.203 Annex I) is defined for {algorithm}"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Writes `a, b or c` with each length multiplied by `scale`.
fn write_lengths(
    f: &mut fmt::Formatter<'_>,
    lengths: &[usize],
    scale: usize,
    unit: &str,
) -> fmt::Result {
    let n = lengths.len();
    for (i, len) in lengths.iter().enumerate() {
        if i > 0 {
            f.write_str(if i + 1 == n { " or " } else { ", " })?;
        }
        write!(f, "{}", len * scale)?;
    }
    f.write_str(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_length_names_bits_and_bytes() {
        let e = Error::KeyLength {
            algorithm: "aes-cbc",
            expected: &[16, 24, 32],
            got: 10,
        };
        assert_eq!(
            e.to_string(),
            "aes-cbc key must be 128, 192 or 256 bits (16, 24 or 32 bytes), got 10 bytes (80 bits)"
        );
        let e = Error::KeyLength {
            algorithm: "hmac-sha1",
            expected: &[20],
            got: 16,
        };
        assert_eq!(
            e.to_string(),
            "hmac-sha1 key must be 160 bits (20 bytes), got 16 bytes (128 bits)"
        );
    }
}
