//! NACK messages (RFC 4077 §3): built from a [`Failure`] and parsed when
//! received.

use sha1::{Digest, Sha1};

use crate::error::{Error, Failure, Reason};

/// The NACK version defined by RFC 4077 §3.1.
pub const NACK_VERSION: u8 = 1;

/// A SigComp NACK message (RFC 4077 §3.1, Figure 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// The returned feedback item to carry (T-bit), if any.
    pub returned_feedback_item: Option<Vec<u8>>,
    /// The reason code; see [`Nack::reason`].
    pub reason_code: u8,
    /// Opcode of the failed instruction (0 before execution).
    pub opcode: u8,
    /// PC of the failed instruction (0 before execution).
    pub pc: u16,
    /// SHA-1 of the failed message (all zeros for FRAMING_ERROR).
    pub sha1: [u8; 20],
    /// Reason-specific details (RFC 4077 §3.2).
    pub details: Vec<u8>,
}

impl Nack {
    /// The NACK for `failure` of the SigComp message `failed_message`
    /// (un-escaped, without delimiters: RFC 4077 §3.1).
    pub fn from_failure(failure: &Failure, failed_message: &[u8]) -> Nack {
        let sha1 = if failure.reason == Reason::FramingError {
            [0u8; 20]
        } else {
            Sha1::digest(failed_message).into()
        };
        Nack {
            returned_feedback_item: None,
            reason_code: failure.reason.code(),
            opcode: failure.opcode,
            pc: failure.pc,
            sha1,
            details: failure.details.clone(),
        }
    }

    /// The reason, if the code is one RFC 4077 defines.
    pub fn reason(&self) -> Option<Reason> {
        Reason::from_code(self.reason_code)
    }

    /// Appends the NACK message to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        match &self.returned_feedback_item {
            Some(item) => {
                out.push(0xfc);
                out.extend_from_slice(item);
            }
            None => out.push(0xf8),
        }
        // code_len = 0, version = 1.
        out.push(0x00);
        out.push(NACK_VERSION);
        out.push(self.reason_code);
        out.push(self.opcode);
        out.extend_from_slice(&self.pc.to_be_bytes());
        out.extend_from_slice(&self.sha1);
        out.extend_from_slice(&self.details);
    }

    /// Whether `msg` is a NACK: a SigComp message with `len` 0 and
    /// `code_len` 0 (RFC 4077 §3.1).
    pub fn is_nack(msg: &[u8]) -> bool {
        Nack::parse(msg).is_ok()
    }

    /// Parses a NACK message.
    pub fn parse(msg: &[u8]) -> Result<Nack, Error> {
        let (&first, mut rest) = msg.split_first().ok_or(Error::MessageTooShort)?;
        if first & 0xf8 != 0xf8 {
            return Err(Error::NotSigComp { first });
        }
        if first & 0x03 != 0 {
            return Err(Error::NotNack);
        }
        let mut returned_feedback_item = None;
        if first & 0x04 != 0 {
            let &b = rest.first().ok_or(Error::MessageTooShort)?;
            let n = if b & 0x80 == 0 {
                1
            } else {
                1 + usize::from(b & 0x7f)
            };
            if rest.len() < n {
                return Err(Error::MessageTooShort);
            }
            returned_feedback_item = Some(rest[..n].to_vec());
            rest = &rest[n..];
        }
        let [c0, c1, rest @ ..] = rest else {
            return Err(Error::MessageTooShort);
        };
        if *c0 != 0 || c1 >> 4 != 0 {
            return Err(Error::NotNack);
        }
        if c1 & 0x0f != NACK_VERSION {
            return Err(Error::UnsupportedNackVersion { version: c1 & 0x0f });
        }
        let [reason_code, opcode, pc0, pc1, rest @ ..] = rest else {
            return Err(Error::MessageTooShort);
        };
        let (sha, details) = rest.split_at_checked(20).ok_or(Error::MessageTooShort)?;
        let mut sha1 = [0u8; 20];
        sha1.copy_from_slice(sha);
        Ok(Nack {
            returned_feedback_item,
            reason_code: *reason_code,
            opcode: *opcode,
            pc: u16::from_be_bytes([*pc0, *pc1]),
            sha1,
            details: details.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let f = Failure {
            reason: Reason::StateNotFound,
            opcode: 31,
            pc: 0x1234,
            details: vec![1, 2, 3, 4, 5, 6],
            cycles: 9,
        };
        let mut n = Nack::from_failure(&f, b"\xf9abcdef");
        n.returned_feedback_item = Some(vec![0x05]);
        let mut v = Vec::new();
        n.emit(&mut v);
        assert_eq!(&v[..4], &[0xfc, 0x05, 0x00, 0x01]);
        assert_eq!(Nack::parse(&v).unwrap(), n);
        assert_eq!(n.reason(), Some(Reason::StateNotFound));
    }

    #[test]
    fn rejects_non_nack() {
        assert_eq!(Nack::parse(&[0xf8, 0x00, 0x11]), Err(Error::NotNack));
        assert_eq!(
            Nack::parse(&[0xf8, 0x00, 0x02]),
            Err(Error::UnsupportedNackVersion { version: 2 })
        );
        assert_eq!(Nack::parse(&[0xf9, 0, 0, 0, 0, 0, 0]), Err(Error::NotNack));
    }
}
