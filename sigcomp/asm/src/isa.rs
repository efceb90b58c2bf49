//! The UDVM instruction set as the assembler and disassembler use it:
//! the runtime crate's table ([`sigcomp::isa`], re-exported here) and
//! operand decoding, plus the shortest encodings of operands and whole
//! instructions. The `encode_*` functions produce the shortest encoding
//! of a value.

pub use sigcomp::isa::*;

/// Appends the shortest literal encoding of `n` (RFC 3320 Figure 8).
pub fn encode_literal(n: u16, out: &mut Vec<u8>) {
    encode_literal_min(n, 1, out);
}

/// Appends the shortest literal encoding of `n` that is at least `min_len`
/// bytes long (1–3).
pub fn encode_literal_min(n: u16, min_len: usize, out: &mut Vec<u8>) {
    let [hi, lo] = n.to_be_bytes();
    if n < 0x80 && min_len <= 1 {
        out.push(lo);
    } else if n < 0x4000 && min_len <= 2 {
        out.extend_from_slice(&[0x80 | hi, lo]);
    } else {
        out.extend_from_slice(&[0xC0, hi, lo]);
    }
}

/// Appends the shortest reference encoding of memory address `addr`
/// (RFC 3320 Figure 9).
pub fn encode_reference(addr: u16, out: &mut Vec<u8>) {
    encode_reference_min(addr, 1, out);
}

/// Appends the shortest reference encoding of `addr` that is at least
/// `min_len` bytes long.
pub fn encode_reference_min(addr: u16, min_len: usize, out: &mut Vec<u8>) {
    let half = addr / 2;
    let even = addr % 2 == 0;
    if even && half < 0x80 && min_len <= 1 {
        out.push(half.to_be_bytes()[1]);
    } else if even && half < 0x4000 && min_len <= 2 {
        let [hi, lo] = half.to_be_bytes();
        out.extend_from_slice(&[0x80 | hi, lo]);
    } else {
        let [hi, lo] = addr.to_be_bytes();
        out.extend_from_slice(&[0xC0, hi, lo]);
    }
}

/// Appends the shortest multitype encoding of `m` (RFC 3320 Figure 10).
pub fn encode_multitype(m: Multitype, out: &mut Vec<u8>) {
    encode_multitype_min(m, 1, out);
}

/// Appends the shortest multitype encoding of `m` that is at least
/// `min_len` bytes long.
pub fn encode_multitype_min(m: Multitype, min_len: usize, out: &mut Vec<u8>) {
    match m {
        Multitype::Value(n) => {
            let [hi, lo] = n.to_be_bytes();
            if min_len <= 1 {
                if n < 64 {
                    return out.push(lo);
                }
                if n.is_power_of_two() && (64..=128).contains(&n) {
                    return out.push(0x86 | (n.trailing_zeros() as u8 - 6));
                }
                if n.is_power_of_two() && n >= 256 {
                    return out.push(0x88 | (n.trailing_zeros() as u8 - 8));
                }
                if n >= 65504 {
                    return out.push(0xE0 | (lo & 0x1F));
                }
            }
            if min_len <= 2 {
                if n < 8192 {
                    return out.extend_from_slice(&[0xA0 | hi, lo]);
                }
                if n >= 61440 {
                    return out.extend_from_slice(&[0x90 | (hi & 0x0F), lo]);
                }
            }
            out.extend_from_slice(&[0x80, hi, lo]);
        }
        Multitype::Memory(n) => {
            let [hi, lo] = n.to_be_bytes();
            if min_len <= 1 && n % 2 == 0 && n < 128 {
                out.push(0x40 | (lo / 2));
            } else if min_len <= 2 && n < 8192 {
                out.extend_from_slice(&[0xC0 | hi, lo]);
            } else {
                out.extend_from_slice(&[0x81, hi, lo]);
            }
        }
    }
}

/// One operand of a decoded instruction, in the form the assembler takes
/// it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodedOperand {
    /// A literal with its value.
    Literal(u16),
    /// A reference to the given memory address.
    Reference(u16),
    /// A multitype.
    Multitype(Multitype),
    /// An address operand: `Value` holds the absolute target
    /// (instruction address + offset, modulo 2^16); `Memory` holds the
    /// memory address that holds the offset.
    Address(Multitype),
}

/// A decoded instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedInstruction {
    /// Its row of the instruction table.
    pub info: &'static InstructionInfo,
    /// Its operands, in order.
    pub operands: Vec<DecodedOperand>,
    /// Its length in bytes, opcode included.
    pub len: usize,
}

/// Decodes the instruction at the start of `bytes`, which sits at UDVM
/// address `addr` (needed to resolve address operands). Returns `None` for
/// an unknown opcode, an undefined operand encoding or a truncated
/// instruction. Never panics.
pub fn decode_instruction(bytes: &[u8], addr: u16) -> Option<DecodedInstruction> {
    let info = by_opcode(*bytes.first()?)?;
    let mut pos = 1usize;
    let mut operands = Vec::with_capacity(info.shape.fixed.len());
    let decode_one = |kind: OperandKind, pos: &mut usize| -> Option<DecodedOperand> {
        let rest = bytes.get(*pos..)?;
        let (op, n) = match kind {
            OperandKind::Literal => {
                decode_literal(rest).map(|(v, n)| (DecodedOperand::Literal(v), n))?
            }
            OperandKind::Reference => {
                decode_reference(rest).map(|(v, n)| (DecodedOperand::Reference(v), n))?
            }
            OperandKind::Multitype => {
                decode_multitype(rest).map(|(v, n)| (DecodedOperand::Multitype(v), n))?
            }
            OperandKind::Address => {
                let (m, n) = decode_multitype(rest)?;
                let m = match m {
                    Multitype::Value(d) => Multitype::Value(addr.wrapping_add(d)),
                    mem => mem,
                };
                (DecodedOperand::Address(m), n)
            }
        };
        *pos += n;
        Some(op)
    };
    let mut count = 0u16;
    for (i, kind) in info.shape.fixed.iter().enumerate() {
        let op = decode_one(*kind, &mut pos)?;
        if info.shape.count_at == Some(i) {
            if let DecodedOperand::Literal(n) = op {
                count = n;
            }
        }
        operands.push(op);
    }
    for _ in 0..count {
        for kind in info.shape.group {
            let op = decode_one(*kind, &mut pos)?;
            operands.push(op);
        }
    }
    Some(DecodedInstruction {
        info,
        operands,
        len: pos,
    })
}

/// Appends the shortest encoding of one operand of an instruction at
/// address `addr`, at least `min_len` bytes long.
pub fn encode_operand(op: DecodedOperand, addr: u16, min_len: usize, out: &mut Vec<u8>) {
    match op {
        DecodedOperand::Literal(v) => encode_literal_min(v, min_len, out),
        DecodedOperand::Reference(a) => encode_reference_min(a, min_len, out),
        DecodedOperand::Multitype(m) => encode_multitype_min(m, min_len, out),
        DecodedOperand::Address(Multitype::Value(target)) => {
            encode_multitype_min(Multitype::Value(target.wrapping_sub(addr)), min_len, out);
        }
        DecodedOperand::Address(mem) => encode_multitype_min(mem, min_len, out),
    }
}

/// Appends the shortest encoding of a decoded instruction placed at `addr`.
pub fn encode_instruction(ins: &DecodedInstruction, addr: u16, out: &mut Vec<u8>) {
    out.push(ins.info.opcode);
    for op in &ins.operands {
        encode_operand(*op, addr, 1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_multitype_value_round_trips_shortest() {
        for n in 0..=u16::MAX {
            for m in [Multitype::Value(n), Multitype::Memory(n)] {
                let mut out = Vec::new();
                encode_multitype(m, &mut out);
                assert_eq!(decode_multitype(&out), Some((m, out.len())), "{m:?}");
                for min in 1..=3 {
                    let mut o = Vec::new();
                    encode_multitype_min(m, min, &mut o);
                    assert!(o.len() >= min.min(3));
                    assert_eq!(decode_multitype(&o), Some((m, o.len())));
                }
            }
            let mut out = Vec::new();
            encode_literal(n, &mut out);
            assert_eq!(decode_literal(&out), Some((n, out.len())));
            let mut out = Vec::new();
            encode_reference(n, &mut out);
            assert_eq!(decode_reference(&out), Some((n, out.len())));
        }
    }
}
