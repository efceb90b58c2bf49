//! The UDVM instruction set: opcodes, mnemonics, operand kinds, cycle costs
//! (RFC 3320 §9, Figure 11) and the variable-length operand encodings
//! (RFC 3320 §8.5, Figures 8–10).
//!
//! This module is shared by the assembler and the disassembler and can be
//! reused by a UDVM: [`decode_literal`], [`decode_reference`] and
//! [`decode_multitype`] never panic on arbitrary input, and the `encode_*`
//! functions produce the shortest encoding of a value.

/// The four operand types of RFC 3320 §8.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperandKind {
    /// `#`: a constant integer 0–65535 (RFC 3320 Figure 8).
    Literal,
    /// `$`: a memory address whose 2-byte content is the value (Figure 9).
    Reference,
    /// `%`: either a value or a memory address (Figure 10).
    Multitype,
    /// `@`: a multitype whose value is added to the address of the
    /// instruction (RFC 3320 §8.5).
    Address,
}

impl OperandKind {
    /// The sigil RFC 3320 §9 writes in front of an operand of this kind.
    pub fn sigil(self) -> char {
        match self {
            OperandKind::Literal => '#',
            OperandKind::Reference => '$',
            OperandKind::Multitype => '%',
            OperandKind::Address => '@',
        }
    }
}

/// How the operands of an instruction are laid out.
///
/// The operands are `fixed`, then `n` copies of `group`, where `n` is the
/// value of the literal operand `fixed[count_at]` (MULTILOAD, SWITCH and
/// INPUT-HUFFMAN); instructions without a repeated group have
/// `count_at == None` and an empty `group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The operands that always appear.
    pub fixed: &'static [OperandKind],
    /// Index in `fixed` of the literal that counts the repeated groups.
    pub count_at: Option<usize>,
    /// The operands repeated `n` times after `fixed`.
    pub group: &'static [OperandKind],
}

/// One UDVM instruction (a row of RFC 3320 Figure 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstructionInfo {
    /// Bytecode value.
    pub opcode: u8,
    /// Mnemonic as written in RFC 3320 §9 and RFC 4464 §3.
    pub mnemonic: &'static str,
    /// Operand layout.
    pub shape: Shape,
    /// Operand names as in RFC 3320 §9 (the names of one repeated group for
    /// the variable part), used in messages.
    pub operand_names: &'static [&'static str],
    /// Cost in UDVM cycles, as written in Figure 11.
    pub cost: &'static str,
}

use OperandKind::{Address as A, Literal as L, Multitype as M, Reference as R};

const fn plain(fixed: &'static [OperandKind]) -> Shape {
    Shape {
        fixed,
        count_at: None,
        group: &[],
    }
}

/// Instruction set of RFC 3320 §9, indexed by opcode (0–35).
pub const INSTRUCTIONS: [InstructionInfo; 36] = [
    ins(0, "DECOMPRESSION-FAILURE", plain(&[]), &[], "1"),
    ins(1, "AND", plain(&[R, M]), &["operand_1", "operand_2"], "1"),
    ins(2, "OR", plain(&[R, M]), &["operand_1", "operand_2"], "1"),
    ins(3, "NOT", plain(&[R]), &["operand_1"], "1"),
    ins(
        4,
        "LSHIFT",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        "1",
    ),
    ins(
        5,
        "RSHIFT",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        "1",
    ),
    ins(6, "ADD", plain(&[R, M]), &["operand_1", "operand_2"], "1"),
    ins(
        7,
        "SUBTRACT",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        "1",
    ),
    ins(
        8,
        "MULTIPLY",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        "1",
    ),
    ins(
        9,
        "DIVIDE",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        "1",
    ),
    ins(
        10,
        "REMAINDER",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        "1",
    ),
    ins(
        11,
        "SORT-ASCENDING",
        plain(&[M, M, M]),
        &["start", "n", "k"],
        "1 + k * (ceiling(log2(k)) + n)",
    ),
    ins(
        12,
        "SORT-DESCENDING",
        plain(&[M, M, M]),
        &["start", "n", "k"],
        "1 + k * (ceiling(log2(k)) + n)",
    ),
    ins(
        13,
        "SHA-1",
        plain(&[M, M, M]),
        &["position", "length", "destination"],
        "1 + length",
    ),
    ins(14, "LOAD", plain(&[M, M]), &["address", "value"], "1"),
    ins(
        15,
        "MULTILOAD",
        Shape {
            fixed: &[M, L],
            count_at: Some(1),
            group: &[M],
        },
        &["address", "n", "value"],
        "1 + n",
    ),
    ins(16, "PUSH", plain(&[M]), &["value"], "1"),
    ins(17, "POP", plain(&[M]), &["address"], "1"),
    ins(
        18,
        "COPY",
        plain(&[M, M, M]),
        &["position", "length", "destination"],
        "1 + length",
    ),
    ins(
        19,
        "COPY-LITERAL",
        plain(&[M, M, R]),
        &["position", "length", "destination"],
        "1 + length",
    ),
    ins(
        20,
        "COPY-OFFSET",
        plain(&[M, M, R]),
        &["offset", "length", "destination"],
        "1 + length",
    ),
    ins(
        21,
        "MEMSET",
        plain(&[M, M, M, M]),
        &["address", "length", "start_value", "offset"],
        "1 + length",
    ),
    ins(22, "JUMP", plain(&[A]), &["address"], "1"),
    ins(
        23,
        "COMPARE",
        plain(&[M, M, A, A, A]),
        &["value_1", "value_2", "address_1", "address_2", "address_3"],
        "1",
    ),
    ins(24, "CALL", plain(&[A]), &["address"], "1"),
    ins(25, "RETURN", plain(&[]), &[], "1"),
    ins(
        26,
        "SWITCH",
        Shape {
            fixed: &[L, M],
            count_at: Some(0),
            group: &[A],
        },
        &["n", "j", "address"],
        "1 + n",
    ),
    ins(
        27,
        "CRC",
        plain(&[M, M, M, A]),
        &["value", "position", "length", "address"],
        "1 + length",
    ),
    ins(
        28,
        "INPUT-BYTES",
        plain(&[M, M, A]),
        &["length", "destination", "address"],
        "1 + length",
    ),
    ins(
        29,
        "INPUT-BITS",
        plain(&[M, M, A]),
        &["length", "destination", "address"],
        "1",
    ),
    ins(
        30,
        "INPUT-HUFFMAN",
        Shape {
            fixed: &[M, A, L],
            count_at: Some(2),
            group: &[M, M, M, M],
        },
        &[
            "destination",
            "address",
            "n",
            "bits",
            "lower_bound",
            "upper_bound",
            "uncompressed",
        ],
        "1 + n",
    ),
    ins(
        31,
        "STATE-ACCESS",
        plain(&[M, M, M, M, M, M]),
        &[
            "partial_identifier_start",
            "partial_identifier_length",
            "state_begin",
            "state_length",
            "state_address",
            "state_instruction",
        ],
        "1 + state_length",
    ),
    ins(
        32,
        "STATE-CREATE",
        plain(&[M, M, M, M, M]),
        &[
            "state_length",
            "state_address",
            "state_instruction",
            "minimum_access_length",
            "state_retention_priority",
        ],
        "1 + state_length",
    ),
    ins(
        33,
        "STATE-FREE",
        plain(&[M, M]),
        &["partial_identifier_start", "partial_identifier_length"],
        "1",
    ),
    ins(
        34,
        "OUTPUT",
        plain(&[M, M]),
        &["output_start", "output_length"],
        "1 + output_length",
    ),
    ins(
        35,
        "END-MESSAGE",
        plain(&[M, M, M, M, M, M, M]),
        &[
            "requested_feedback_location",
            "returned_parameters_location",
            "state_length",
            "state_address",
            "state_instruction",
            "minimum_access_length",
            "state_retention_priority",
        ],
        "1 + state_length",
    ),
];

const fn ins(
    opcode: u8,
    mnemonic: &'static str,
    shape: Shape,
    operand_names: &'static [&'static str],
    cost: &'static str,
) -> InstructionInfo {
    InstructionInfo {
        opcode,
        mnemonic,
        shape,
        operand_names,
        cost,
    }
}

/// The instruction with this bytecode value, or `None` for the values
/// 36–255, which RFC 3320 §8.7 item 5 makes a decompression failure.
pub fn by_opcode(opcode: u8) -> Option<&'static InstructionInfo> {
    INSTRUCTIONS.get(usize::from(opcode))
}

/// The instruction with this mnemonic (exact, upper case).
pub fn by_mnemonic(mnemonic: &str) -> Option<&'static InstructionInfo> {
    INSTRUCTIONS.iter().find(|i| i.mnemonic == mnemonic)
}

/// A decoded multitype (or address) operand: either the integer itself or
/// the memory address whose 2-byte content is the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Multitype {
    /// The operand value `N`.
    Value(u16),
    /// `memory[N]`.
    Memory(u16),
}

fn byte_at(bytes: &[u8], i: usize) -> Option<u16> {
    bytes.get(i).map(|b| u16::from(*b))
}

/// Decodes a literal operand (RFC 3320 Figure 8) from the start of `bytes`.
/// Returns the value and the number of bytes used, or `None` if the bytes
/// are truncated or are not a literal encoding (`0xC1..=0xFF`).
pub fn decode_literal(bytes: &[u8]) -> Option<(u16, usize)> {
    let b0 = byte_at(bytes, 0)?;
    match b0 {
        0x00..=0x7F => Some((b0, 1)),
        0x80..=0xBF => Some((((b0 & 0x3F) << 8) | byte_at(bytes, 1)?, 2)),
        0xC0 => Some(((byte_at(bytes, 1)? << 8) | byte_at(bytes, 2)?, 3)),
        _ => None,
    }
}

/// Decodes a reference operand (RFC 3320 Figure 9): returns the memory
/// address it designates and the number of bytes used.
pub fn decode_reference(bytes: &[u8]) -> Option<(u16, usize)> {
    let b0 = byte_at(bytes, 0)?;
    match b0 {
        0x00..=0x7F => Some((b0 * 2, 1)),
        0x80..=0xBF => Some(((((b0 & 0x3F) << 8) | byte_at(bytes, 1)?) * 2, 2)),
        0xC0 => Some(((byte_at(bytes, 1)? << 8) | byte_at(bytes, 2)?, 3)),
        _ => None,
    }
}

/// Decodes a multitype operand (RFC 3320 Figure 10). The encodings
/// `0x82..=0x85` are not defined by the RFC and give `None`.
pub fn decode_multitype(bytes: &[u8]) -> Option<(Multitype, usize)> {
    use Multitype::{Memory, Value};
    let first = *bytes.first()?;
    let b0 = u16::from(first);
    let two = || byte_at(bytes, 1);
    let three = || Some((byte_at(bytes, 1)? << 8) | byte_at(bytes, 2)?);
    match first {
        0x00..=0x3F => Some((Value(b0), 1)),
        0x40..=0x7F => Some((Memory((b0 & 0x3F) * 2), 1)),
        0x80 => Some((Value(three()?), 3)),
        0x81 => Some((Memory(three()?), 3)),
        0x82..=0x85 => None,
        0x86 | 0x87 => Some((Value(1 << ((b0 & 1) + 6)), 1)),
        0x88..=0x8F => Some((Value(1 << ((b0 & 7) + 8)), 1)),
        0x90..=0x9F => Some((Value(61440 + (((b0 & 0x0F) << 8) | two()?)), 2)),
        0xA0..=0xBF => Some((Value(((b0 & 0x1F) << 8) | two()?), 2)),
        0xC0..=0xDF => Some((Memory(((b0 & 0x1F) << 8) | two()?), 2)),
        0xE0..=0xFF => Some((Value(65504 + (b0 & 0x1F)), 1)),
    }
}

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
    fn table_is_indexed_by_opcode() {
        for (i, ins) in INSTRUCTIONS.iter().enumerate() {
            assert_eq!(usize::from(ins.opcode), i);
            assert_eq!(by_mnemonic(ins.mnemonic), Some(ins));
        }
        assert!(by_opcode(36).is_none());
    }

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

    #[test]
    fn rfc3320_figure_10_examples() {
        // 1000011n: 64, 128; 10001nnn: 256..32768; 111nnnnn: 65504..
        assert_eq!(decode_multitype(&[0x86]), Some((Multitype::Value(64), 1)));
        assert_eq!(decode_multitype(&[0x87]), Some((Multitype::Value(128), 1)));
        assert_eq!(
            decode_multitype(&[0x8F]),
            Some((Multitype::Value(32768), 1))
        );
        assert_eq!(
            decode_multitype(&[0xFF]),
            Some((Multitype::Value(65535), 1))
        );
        assert_eq!(decode_multitype(&[0x84]), None);
        assert_eq!(
            decode_multitype(&[0x9F, 0xFF]),
            Some((Multitype::Value(65535), 2))
        );
        assert_eq!(decode_literal(&[0xC1]), None);
        assert_eq!(decode_reference(&[0x05]), Some((10, 1)));
    }
}
