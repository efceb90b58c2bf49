//! Feedback data (RFC 3320 §3.2, §9.4.9): requested feedback, returned
//! SigComp parameters, and the encodings of the parameters (§3.3.1).

use crate::error::Error;

/// Requested feedback data (RFC 3320 §9.4.9, Figure 12).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestedFeedback {
    /// S-bit: the compressor no longer wants state saved here.
    pub s_bit: bool,
    /// I-bit: the compressor will not access our locally available states.
    pub i_bit: bool,
    /// The requested feedback item (Q-bit set), in the format of a returned
    /// feedback item (RFC 3320 §7.1): to send back unmodified.
    pub item: Option<Vec<u8>>,
}

/// Returned SigComp parameters (RFC 3320 §9.4.9, Figure 13).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnedParameters {
    /// cycles_per_bit, decompression_memory_size, state_memory_size, or
    /// `None` when the first byte is 0 (not included).
    pub resources: Option<Resources>,
    /// SigComp_version, `None` when 0 (not included).
    pub version: Option<u8>,
    /// Partial identifiers (6..=20 bytes) of locally available states.
    pub state_ids: Vec<Vec<u8>>,
}

/// The three announced resources (RFC 3320 §3.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    /// cycles_per_bit: 16, 32, 64 or 128.
    pub cycles_per_bit: u16,
    /// decompression_memory_size in bytes (2048..=131072).
    pub decompression_memory_size: u32,
    /// state_memory_size in bytes (0 or 2048..=131072).
    pub state_memory_size: u32,
}

/// The 2-bit encoding of cycles_per_bit (RFC 3320 §3.3.1).
pub fn encode_cycles_per_bit(cpb: u16) -> Result<u8, Error> {
    match cpb {
        16 => Ok(0),
        32 => Ok(1),
        64 => Ok(2),
        128 => Ok(3),
        v => Err(Error::InvalidParameter {
            name: "cycles_per_bit",
            value: u32::from(v),
        }),
    }
}

/// The 3-bit encoding of a memory size (RFC 3320 §3.3.1): 0 is 0 bytes,
/// n is 1024 << n.
pub fn encode_memory_size(name: &'static str, size: u32) -> Result<u8, Error> {
    if size == 0 {
        return Ok(0);
    }
    (1..=7u8)
        .find(|n| 1024u32 << n == size)
        .ok_or(Error::InvalidParameter { name, value: size })
}

fn decode_memory_size(code: u8) -> u32 {
    if code == 0 { 0 } else { 1024u32 << code }
}

impl Resources {
    /// Decodes the first byte of returned parameters; `None` for 0.
    pub fn from_byte(b: u8) -> Option<Resources> {
        if b == 0 {
            return None;
        }
        Some(Resources {
            cycles_per_bit: 16 << (b >> 6),
            decompression_memory_size: decode_memory_size((b >> 3) & 7),
            state_memory_size: decode_memory_size(b & 7),
        })
    }

    /// Encodes as the `cpb | dms | sms` byte.
    pub fn to_byte(&self) -> Result<u8, Error> {
        let cpb = encode_cycles_per_bit(self.cycles_per_bit)?;
        let dms = encode_memory_size("decompression_memory_size", self.decompression_memory_size)?;
        if dms == 0 {
            return Err(Error::InvalidParameter {
                name: "decompression_memory_size",
                value: 0,
            });
        }
        let sms = encode_memory_size("state_memory_size", self.state_memory_size)?;
        Ok((cpb << 6) | (dms << 3) | sms)
    }
}

impl ReturnedParameters {
    /// Parses returned parameters from `bytes` (RFC 3320 Figure 13); the
    /// list ends at a length byte outside 6..=20 or at the end of `bytes`.
    pub fn parse(bytes: &[u8]) -> ReturnedParameters {
        let mut it = bytes.iter().copied();
        let resources = it.next().and_then(Resources::from_byte);
        let version = it.next().filter(|&v| v != 0);
        let mut state_ids = Vec::new();
        let mut rest = bytes.get(2..).unwrap_or(&[]);
        while let Some((&len, r)) = rest.split_first() {
            let len = usize::from(len);
            if !(6..=20).contains(&len) || r.len() < len {
                break;
            }
            state_ids.push(r[..len].to_vec());
            rest = &r[len..];
        }
        ReturnedParameters {
            resources,
            version,
            state_ids,
        }
    }

    /// Encodes as returned parameters, ending the list with a 0 byte.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(match &self.resources {
            Some(r) => r.to_byte()?,
            None => 0,
        });
        out.push(self.version.unwrap_or(0));
        for id in &self.state_ids {
            if !(6..=20).contains(&id.len()) {
                return Err(Error::InvalidParameter {
                    name: "partial_state_id_length",
                    value: id.len() as u32,
                });
            }
            out.push(id.len() as u8);
            out.extend_from_slice(id);
        }
        out.push(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_round_trip() {
        let r = Resources {
            cycles_per_bit: 64,
            decompression_memory_size: 8192,
            state_memory_size: 4096,
        };
        let b = r.to_byte().unwrap();
        assert_eq!(b, 0b10_011_010);
        assert_eq!(Resources::from_byte(b), Some(r));
        assert!(
            Resources {
                cycles_per_bit: 20,
                ..r
            }
            .to_byte()
            .is_err()
        );
    }

    #[test]
    fn returned_parameters_round_trip() {
        let p = ReturnedParameters {
            resources: Some(Resources {
                cycles_per_bit: 16,
                decompression_memory_size: 2048,
                state_memory_size: 2048,
            }),
            version: Some(2),
            state_ids: vec![vec![0xfb, 0xe5, 0x07, 0xdf, 0xe5, 0xe6]],
        };
        let mut v = Vec::new();
        p.emit(&mut v).unwrap();
        assert_eq!(ReturnedParameters::parse(&v), p);
    }
}
