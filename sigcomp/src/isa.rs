//! The UDVM instruction set (RFC 3320 §9, Figure 11): one table of
//! opcodes, mnemonics, operand kinds and cycle costs, and the
//! variable-length operand encodings (RFC 3320 §8.5, Figures 8–10).
//!
//! This table is the one source of truth for the shape of an instruction:
//! the UDVM decodes the instructions it caches from it (and a unit test
//! checks that the instructions it decodes as they run take the operands
//! it lists), and the assembler and disassembler of the `sigcomp-asm`
//! crate read and write bytecode with it. [`decode_literal`],
//! [`decode_reference`] and [`decode_multitype`] never panic on arbitrary
//! input.

use core::fmt;

/// The opcodes (RFC 3320 §9, Figure 11), for the code that runs them.
pub(crate) mod op {
    pub const DECOMPRESSION_FAILURE: u8 = 0;
    pub const AND: u8 = 1;
    pub const OR: u8 = 2;
    pub const NOT: u8 = 3;
    pub const LSHIFT: u8 = 4;
    pub const RSHIFT: u8 = 5;
    pub const ADD: u8 = 6;
    pub const SUBTRACT: u8 = 7;
    pub const MULTIPLY: u8 = 8;
    pub const DIVIDE: u8 = 9;
    pub const REMAINDER: u8 = 10;
    pub const SORT_ASCENDING: u8 = 11;
    pub const SORT_DESCENDING: u8 = 12;
    pub const SHA_1: u8 = 13;
    pub const LOAD: u8 = 14;
    pub const MULTILOAD: u8 = 15;
    pub const PUSH: u8 = 16;
    pub const POP: u8 = 17;
    pub const COPY: u8 = 18;
    pub const COPY_LITERAL: u8 = 19;
    pub const COPY_OFFSET: u8 = 20;
    pub const MEMSET: u8 = 21;
    pub const JUMP: u8 = 22;
    pub const COMPARE: u8 = 23;
    pub const CALL: u8 = 24;
    pub const RETURN: u8 = 25;
    pub const SWITCH: u8 = 26;
    pub const CRC: u8 = 27;
    pub const INPUT_BYTES: u8 = 28;
    pub const INPUT_BITS: u8 = 29;
    pub const INPUT_HUFFMAN: u8 = 30;
    pub const STATE_ACCESS: u8 = 31;
    pub const STATE_CREATE: u8 = 32;
    pub const STATE_FREE: u8 = 33;
    pub const OUTPUT: u8 = 34;
    pub const END_MESSAGE: u8 = 35;
}

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

/// How many UDVM cycles an instruction costs (RFC 3320 Figure 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// One cycle.
    One,
    /// One cycle plus the value of the operand at this index (`length`,
    /// `n`, `state_length`...). For STATE-ACCESS, a `state_length` of 0
    /// counts as the length of the state accessed (RFC 3320 §9.4.5).
    OnePlus(usize),
    /// `1 + k * (ceiling(log2(k)) + n)`: SORT-ASCENDING and
    /// SORT-DESCENDING, whose operands are `start`, `n` and `k`.
    Sort,
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
    /// Cost in UDVM cycles (Figure 11).
    pub cost: Cost,
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
    ins(
        op::DECOMPRESSION_FAILURE,
        "DECOMPRESSION-FAILURE",
        plain(&[]),
        &[],
        Cost::One,
    ),
    ins(
        op::AND,
        "AND",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        Cost::One,
    ),
    ins(
        op::OR,
        "OR",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        Cost::One,
    ),
    ins(op::NOT, "NOT", plain(&[R]), &["operand_1"], Cost::One),
    ins(
        op::LSHIFT,
        "LSHIFT",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        Cost::One,
    ),
    ins(
        op::RSHIFT,
        "RSHIFT",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        Cost::One,
    ),
    ins(
        op::ADD,
        "ADD",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        Cost::One,
    ),
    ins(
        op::SUBTRACT,
        "SUBTRACT",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        Cost::One,
    ),
    ins(
        op::MULTIPLY,
        "MULTIPLY",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        Cost::One,
    ),
    ins(
        op::DIVIDE,
        "DIVIDE",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        Cost::One,
    ),
    ins(
        op::REMAINDER,
        "REMAINDER",
        plain(&[R, M]),
        &["operand_1", "operand_2"],
        Cost::One,
    ),
    ins(
        op::SORT_ASCENDING,
        "SORT-ASCENDING",
        plain(&[M, M, M]),
        &["start", "n", "k"],
        Cost::Sort,
    ),
    ins(
        op::SORT_DESCENDING,
        "SORT-DESCENDING",
        plain(&[M, M, M]),
        &["start", "n", "k"],
        Cost::Sort,
    ),
    ins(
        op::SHA_1,
        "SHA-1",
        plain(&[M, M, M]),
        &["position", "length", "destination"],
        Cost::OnePlus(1),
    ),
    ins(
        op::LOAD,
        "LOAD",
        plain(&[M, M]),
        &["address", "value"],
        Cost::One,
    ),
    ins(
        op::MULTILOAD,
        "MULTILOAD",
        Shape {
            fixed: &[M, L],
            count_at: Some(1),
            group: &[M],
        },
        &["address", "n", "value"],
        Cost::OnePlus(1),
    ),
    ins(op::PUSH, "PUSH", plain(&[M]), &["value"], Cost::One),
    ins(op::POP, "POP", plain(&[M]), &["address"], Cost::One),
    ins(
        op::COPY,
        "COPY",
        plain(&[M, M, M]),
        &["position", "length", "destination"],
        Cost::OnePlus(1),
    ),
    ins(
        op::COPY_LITERAL,
        "COPY-LITERAL",
        plain(&[M, M, R]),
        &["position", "length", "destination"],
        Cost::OnePlus(1),
    ),
    ins(
        op::COPY_OFFSET,
        "COPY-OFFSET",
        plain(&[M, M, R]),
        &["offset", "length", "destination"],
        Cost::OnePlus(1),
    ),
    ins(
        op::MEMSET,
        "MEMSET",
        plain(&[M, M, M, M]),
        &["address", "length", "start_value", "offset"],
        Cost::OnePlus(1),
    ),
    ins(op::JUMP, "JUMP", plain(&[A]), &["address"], Cost::One),
    ins(
        op::COMPARE,
        "COMPARE",
        plain(&[M, M, A, A, A]),
        &["value_1", "value_2", "address_1", "address_2", "address_3"],
        Cost::One,
    ),
    ins(op::CALL, "CALL", plain(&[A]), &["address"], Cost::One),
    ins(op::RETURN, "RETURN", plain(&[]), &[], Cost::One),
    ins(
        op::SWITCH,
        "SWITCH",
        Shape {
            fixed: &[L, M],
            count_at: Some(0),
            group: &[A],
        },
        &["n", "j", "address"],
        Cost::OnePlus(0),
    ),
    ins(
        op::CRC,
        "CRC",
        plain(&[M, M, M, A]),
        &["value", "position", "length", "address"],
        Cost::OnePlus(2),
    ),
    ins(
        op::INPUT_BYTES,
        "INPUT-BYTES",
        plain(&[M, M, A]),
        &["length", "destination", "address"],
        Cost::OnePlus(0),
    ),
    ins(
        op::INPUT_BITS,
        "INPUT-BITS",
        plain(&[M, M, A]),
        &["length", "destination", "address"],
        Cost::One,
    ),
    ins(
        op::INPUT_HUFFMAN,
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
        Cost::OnePlus(2),
    ),
    ins(
        op::STATE_ACCESS,
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
        Cost::OnePlus(3),
    ),
    ins(
        op::STATE_CREATE,
        "STATE-CREATE",
        plain(&[M, M, M, M, M]),
        &[
            "state_length",
            "state_address",
            "state_instruction",
            "minimum_access_length",
            "state_retention_priority",
        ],
        Cost::OnePlus(0),
    ),
    ins(
        op::STATE_FREE,
        "STATE-FREE",
        plain(&[M, M]),
        &["partial_identifier_start", "partial_identifier_length"],
        Cost::One,
    ),
    ins(
        op::OUTPUT,
        "OUTPUT",
        plain(&[M, M]),
        &["output_start", "output_length"],
        Cost::OnePlus(1),
    ),
    ins(
        op::END_MESSAGE,
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
        Cost::OnePlus(2),
    ),
];

const fn ins(
    opcode: u8,
    mnemonic: &'static str,
    shape: Shape,
    operand_names: &'static [&'static str],
    cost: Cost,
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

impl Shape {
    /// The operand kinds of an instruction whose count operand (if any)
    /// is `n`, in order: `fixed`, then `n` times `group`.
    pub fn operands(&self, n: u16) -> impl Iterator<Item = OperandKind> + '_ {
        let groups = if self.count_at.is_some() { n } else { 0 };
        self.fixed
            .iter()
            .copied()
            .chain((0..groups).flat_map(move |_| self.group.iter().copied()))
    }
}

impl InstructionInfo {
    /// The cycles the instruction costs with these operand values (in
    /// the order of [`Shape::operands`]; only those the rule names are
    /// read, missing ones count as 0). For STATE-ACCESS, pass the
    /// resolved state_length.
    pub fn cycles(&self, operands: &[u16]) -> u64 {
        let at = |i: usize| u64::from(operands.get(i).copied().unwrap_or(0));
        match self.cost {
            Cost::One => 1,
            Cost::OnePlus(i) => 1 + at(i),
            Cost::Sort => {
                let (n, k) = (at(1), at(2));
                // ceiling(log2(k)): the smallest i with k <= 2^i.
                let log = if k <= 1 {
                    0
                } else {
                    64 - u64::from((k - 1).leading_zeros())
                };
                1 + k * (log + n)
            }
        }
    }
}

/// The instruction as RFC 3320 §9 and Figure 11 give it: mnemonic,
/// operand names and cost (`1`, `1 + length`...).
impl fmt::Display for InstructionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.mnemonic)?;
        let names = self.operand_names.join(", ");
        write!(f, "({names}): ")?;
        match self.cost {
            Cost::One => f.write_str("1"),
            Cost::OnePlus(i) => {
                write!(
                    f,
                    "1 + {}",
                    self.operand_names.get(i).copied().unwrap_or("?")
                )
            }
            Cost::Sort => f.write_str("1 + k * (ceiling(log2(k)) + n)"),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_opcode() {
        for (i, ins) in INSTRUCTIONS.iter().enumerate() {
            assert_eq!(usize::from(ins.opcode), i);
            assert_eq!(by_mnemonic(ins.mnemonic), Some(ins));
            // A count operand is a literal, and the rule names an operand.
            if let Some(c) = ins.shape.count_at {
                assert_eq!(ins.shape.fixed[c], OperandKind::Literal);
            }
            if let Cost::OnePlus(j) = ins.cost {
                assert!(j < ins.shape.fixed.len(), "{}", ins.mnemonic);
            }
        }
        assert!(by_opcode(36).is_none());
    }

    #[test]
    fn costs_read_as_figure_11() {
        let text = |m: &str| by_mnemonic(m).unwrap().to_string();
        assert_eq!(text("ADD"), "ADD (operand_1, operand_2): 1");
        assert_eq!(
            text("COPY"),
            "COPY (position, length, destination): 1 + length"
        );
        assert!(text("SORT-ASCENDING").ends_with(": 1 + k * (ceiling(log2(k)) + n)"));
        assert!(text("STATE-ACCESS").ends_with(": 1 + state_length"));
        assert!(text("END-MESSAGE").ends_with(": 1 + state_length"));
        assert!(text("SWITCH").ends_with(": 1 + n"));
        let sort = by_mnemonic("SORT-DESCENDING").unwrap();
        // k = 5: ceiling(log2(5)) = 3; 1 + 5 * (3 + 2).
        assert_eq!(sort.cycles(&[0, 2, 5]), 26);
        assert_eq!(sort.cycles(&[0, 2, 1]), 3);
        assert_eq!(by_mnemonic("OUTPUT").unwrap().cycles(&[7, 300]), 301);
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
