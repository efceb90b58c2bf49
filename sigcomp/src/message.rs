//! The SigComp message (RFC 3320 §7): header parsing, and the UDP and
//! TCP framing of RFC 3320 §4.2.2.

use crate::error::{Error, Reason};

/// The body of a SigComp message after the returned feedback item: either
/// a partial state identifier (RFC 3320 §7.2) or uploaded bytecode
/// (RFC 3320 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code<'a> {
    /// `len` != 0: the 6, 9 or 12 most significant bytes of a state id.
    PartialStateId(&'a [u8]),
    /// `len` == 0: bytecode to load at `destination`.
    Bytecode {
        /// The memory address the bytecode is copied to, (n + 1) * 64.
        destination: u16,
        /// The uploaded UDVM bytecode (`code_len` bytes).
        code: &'a [u8],
    },
}

/// A parsed SigComp message, borrowing the datagram (RFC 3320 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// The returned feedback item (RFC 3320 §7.1) including its length byte
    /// when it is the long form; `None` when the T-bit is 0.
    pub returned_feedback_item: Option<&'a [u8]>,
    /// The state reference or the uploaded bytecode.
    pub code: Code<'a>,
    /// The "remaining SigComp message": compressed data for the INPUT
    /// instructions.
    pub remaining: &'a [u8],
    /// The length of the SigComp header in bytes (all but `remaining`).
    pub header_len: usize,
}

impl<'a> Message<'a> {
    /// Parses a SigComp message as received over a message-based
    /// transport (one per datagram).
    pub fn parse(msg: &'a [u8]) -> Result<Message<'a>, Error> {
        Self::parse_reason(msg).map_err(|r| match r {
            Reason::InvalidCodeLocation => Error::InvalidCodeLocation,
            Reason::InternalError => Error::NotSigComp {
                first: msg.first().copied().unwrap_or(0),
            },
            _ => Error::MessageTooShort,
        })
    }

    /// Parses, reporting failures as RFC 4077 reasons.
    pub(crate) fn parse_reason(msg: &'a [u8]) -> Result<Message<'a>, Reason> {
        let (&first, mut rest) = msg.split_first().ok_or(Reason::MessageTooShort)?;
        // RFC 3320 §7: the first five bits are 11111.
        if first & 0xf8 != 0xf8 {
            return Err(Reason::InternalError);
        }
        let t_bit = first & 0x04 != 0;
        let len = first & 0x03;
        let mut returned_feedback_item = None;
        if t_bit {
            // RFC 3320 §7.1: 0xxxxxxx is a 1-byte item, 1nnnnnnn is followed
            // by n bytes.
            let &b = rest.first().ok_or(Reason::MessageTooShort)?;
            let item_len = if b & 0x80 == 0 {
                1
            } else {
                1 + usize::from(b & 0x7f)
            };
            if rest.len() < item_len {
                return Err(Reason::MessageTooShort);
            }
            let (item, r) = rest.split_at(item_len);
            returned_feedback_item = Some(item);
            rest = r;
        }
        let code = if len != 0 {
            // RFC 3320 §7.2: 01, 10, 11 encode 6, 9, 12 bytes.
            let id_len = 3 * usize::from(len) + 3;
            if rest.len() < id_len {
                return Err(Reason::MessageTooShort);
            }
            let (id, r) = rest.split_at(id_len);
            rest = r;
            Code::PartialStateId(id)
        } else {
            // RFC 3320 §7.3: 12-bit code_len, 4-bit destination.
            if rest.len() < 2 {
                return Err(Reason::MessageTooShort);
            }
            let (cl, r) = rest.split_at(2);
            let (b0, b1) = (cl[0], cl[1]);
            let code_len = (usize::from(b0) << 4) | usize::from(b1 >> 4);
            let dest = b1 & 0x0f;
            if dest == 0 {
                return Err(Reason::InvalidCodeLocation);
            }
            if r.len() < code_len {
                return Err(Reason::MessageTooShort);
            }
            let (code, r) = r.split_at(code_len);
            rest = r;
            Code::Bytecode {
                destination: (u16::from(dest) + 1) * 64,
                code,
            }
        };
        Ok(Message {
            returned_feedback_item,
            code,
            remaining: rest,
            header_len: msg.len() - rest.len(),
        })
    }
}

/// Whether `msg` starts like a SigComp message (`11111xxx`, RFC 3320 §7).
pub fn is_sigcomp(msg: &[u8]) -> bool {
    msg.first().is_some_and(|b| b & 0xf8 == 0xf8)
}

/// Escapes one SigComp message for a stream transport and appends it,
/// followed by the 0xFFFF delimiter, to `out` (RFC 3320 §4.2.2).
///
/// Each 0xFF of the message is sent as 0xFF 0x00 followed by nothing, or,
/// when a run of 0xFF bytes follows, as 0xFF nn quoting the next nn bytes
/// literally.
pub fn frame_stream(msg: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&b) = msg.get(i) {
        if b == 0xff {
            // Quote as many following bytes as possible (up to 127) so a run
            // of 0xFF costs one escape.
            let rest = msg.get(i + 1..).unwrap_or(&[]);
            let n = rest.len().min(127);
            out.push(0xff);
            out.push(n as u8);
            out.extend_from_slice(&rest[..n]);
            i += 1 + n;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out.extend_from_slice(&[0xff, 0xff]);
}

/// Splits a SigComp byte stream (TCP) into messages: un-escapes 0xFFnn
/// quoting and cuts at 0xFFFF (RFC 3320 §4.2.2). Feed bytes as they
/// arrive; empty records (repeated delimiters) are skipped.
#[derive(Debug, Clone)]
pub struct StreamDeframer {
    record: Vec<u8>,
    /// Bytes still to copy literally after a 0xFF nn escape.
    quoted: usize,
    /// The previous byte was an unquoted 0xFF.
    saw_ff: bool,
    /// The last returned record must be dropped before new bytes go in.
    pending_clear: bool,
    max_record: usize,
}

impl StreamDeframer {
    /// A deframer whose records may grow to `max_record` bytes (use the
    /// decompression_memory_size: a longer message cannot be decompressed).
    pub fn new(max_record: usize) -> StreamDeframer {
        StreamDeframer {
            record: Vec::new(),
            quoted: 0,
            saw_ff: false,
            pending_clear: false,
            max_record,
        }
    }

    /// Consumes bytes from `input` until one complete record is found; returns
    /// the number of bytes consumed and the record, if complete. Call again
    /// with the rest of the input. On a framing error the stream should be
    /// closed (RFC 3320 §4.2.2).
    pub fn push<'s>(&'s mut self, input: &[u8]) -> Result<(usize, Option<&'s [u8]>), Error> {
        if self.pending_clear {
            self.record.clear();
            self.pending_clear = false;
        }
        let mut used = 0;
        let mut complete = false;
        for &b in input {
            used += 1;
            if self.quoted > 0 {
                self.quoted -= 1;
                self.append(b)?;
            } else if self.saw_ff {
                self.saw_ff = false;
                match b {
                    0xff => {
                        if self.record.is_empty() {
                            continue; // extra delimiter
                        }
                        complete = true;
                        break;
                    }
                    0x00..=0x7f => {
                        self.append(0xff)?;
                        self.quoted = usize::from(b);
                    }
                    _ => {
                        self.record.clear();
                        return Err(Error::Framing { byte: b });
                    }
                }
            } else if b == 0xff {
                self.saw_ff = true;
            } else {
                self.append(b)?;
            }
        }
        if complete {
            // The record stays valid until the next call.
            self.pending_clear = true;
            return Ok((used, Some(&self.record)));
        }
        Ok((used, None))
    }

    fn append(&mut self, b: u8) -> Result<(), Error> {
        if self.record.len() >= self.max_record {
            self.record.clear();
            return Err(Error::RecordTooLong {
                max: self.max_record,
            });
        }
        self.record.push(b);
        Ok(())
    }
}
