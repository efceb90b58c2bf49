//! `sigcomp-asm`: the SigComp developer tools, kept out of the runtime
//! `sigcomp` crate: an assembler and disassembler for the UDVM assembly
//! language of RFC 4464 §3, and the driver of the RFC 4465 Appendix A
//! torture tests ([`torture`]). Both read the instruction set from the
//! runtime crate's table, [`sigcomp::isa`] (re-exported as [`isa`] with
//! the operand encoders). A SIP stack needs none of this: the bytecode
//! the compressor uploads is assembled ahead of time (see
//! `sigcomp::compress::bytecode` and this crate's `bytecode` test).
//!
//! # The language
//!
//! Tokens (RFC 4464 §3.1): opcodes in upper case (`ADD`, `INPUT-BITS`,
//! `SHA-1`), names in lower case with digits and `_`, numbers in decimal,
//! `0b` binary or `0x` hex, the delimiters `. , ! $ : ( )` and the
//! operators `+ - * / % & | ^ ~ << >>` (`~` is XNOR on 16-bit words).
//! `;` starts a comment that runs to the end of the line.
//!
//! Statements (RFC 4464 §3.2):
//!
//! * `:name` defines a label: the address of the next byte.
//! * `MNEMONIC (op, op, …)` is a UDVM instruction of RFC 3320 §9. An operand
//!   is an expression, optionally preceded by `$`: `$` is mandatory for
//!   reference operands, forbidden for literals, and for multitype and
//!   address operands means "the value is at this memory address". An
//!   address operand without `$` is an absolute address; the assembler
//!   subtracts the address of the instruction (RFC 3320 §8.5). The count
//!   operand of `MULTILOAD`, `SWITCH` and `INPUT-HUFFMAN` may be left blank
//!   and is then inferred: `MULTILOAD (64, , 1, 2, 3, 4)`.
//! * Expressions are a number, a name, `.` (the address of the current
//!   statement), `!` (the address of the closest zero byte, i.e. a
//!   DECOMPRESSION-FAILURE, written by an instruction or data directive in
//!   a `readonly (1)` area: the closest one before the statement, else the
//!   closest one after it — the reading that reproduces the RFC 4464
//!   Appendix A bytecode), or
//!   `(expr op expr)` — binary operations must be parenthesised. They are
//!   evaluated on 64-bit signed integers and range-checked where used.
//! * Directives: `pad (n)`, `align (n)`, `at (n)` (padding, which is not
//!   part of the output unless it lies between other bytes, where it is
//!   zero), `byte (…)`, `word (…)` (big-endian), `set (name, expr)`,
//!   `readonly (0|1)`. Unknown directives `name (expr, …)` are ignored, as
//!   RFC 4464 §3.2 allows.
//!
//! Each operand gets its shortest encoding (RFC 3320 Figures 8–10); labels
//! are resolved by repeating the layout until it no longer changes. A
//! layout that oscillates is settled by letting operands only grow after 16
//! passes (RFC 4464 §3.2.2 says "usually the shortest").
//!
//! The output of [`assemble`] runs from the first to the last byte written
//! by an instruction, `byte` or `word`; [`Program::origin`] is the address
//! of its first byte, and [`Program::upload_code`] drops the trailing zero
//! bytes that need not be uploaded (RFC 4464 §3.3).
//!
//! [`disassemble`] turns any bytes back into text that assembles to exactly
//! the same bytes. It follows the control flow from the origin (and from
//! the byte after each `RETURN` or jump through memory such as
//! `JUMP ($x)`, whose targets are only known at run time), names jump targets
//! `l_<address>`, and prints instructions whose encoding is the one the
//! assembler would choose. RFC 4464 §3 has no syntax to force an encoding,
//! so everything else — data, undefined opcodes, undefined operand
//! encodings, truncated or non-shortest instructions — is printed as `byte`
//! directives with the decoded instruction, if any, in a comment. The text
//! is verified by assembling it; where the assembler would settle on a
//! different (equally valid) layout, the instruction concerned writes its
//! jump offsets relative to `.` (`JUMP ((. + 65))`), which fixes them, or
//! failing that is printed as bytes. Each such correction costs one more
//! assembly, so the worst case is quadratic in the code size (a few ms for
//! the 4 KiB a SigComp message can upload; seconds for 16 KiB of random
//! bytes).
//!
//! # Example
//!
//! ```
//! use sigcomp_asm::{assemble, disassemble};
//!
//! let src = "
//!     at (64)
//!     :counter pad (2)
//!     align (64)                ; code starts at 128
//!     :start
//!     LOAD (counter, 3)
//!     :again
//!     SUBTRACT ($counter, 1)
//!     COMPARE ($counter, 0, again, done, again)
//!     :done
//!     END-MESSAGE (0, 0, 0, 0, 0, 0, 0)
//! ";
//! let code = assemble(src).unwrap();
//! assert_eq!(&code[..4], &[0x0E, 0x86, 0x03, 0x07]);
//! let text = disassemble(&code, 128);
//! assert!(text.contains("COMPARE ($64, 0, l_0083, l_008c, l_0083)"));
//! assert_eq!(assemble(&text).unwrap(), code);
//! ```

pub mod isa;
pub mod torture;

mod disasm;
mod layout;
mod lexer;
mod parse;

use std::collections::BTreeMap;
use std::fmt;

/// A position in the assembly source: 1-based line and column (in
/// characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1, counted in characters.
    pub column: u32,
}

/// What went wrong while assembling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AsmErrorKind {
    /// A character that starts no token (RFC 4464 §3.1).
    UnexpectedChar(char),
    /// A malformed or too large number.
    BadNumber(String),
    /// The grammar wanted something else here.
    Expected {
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// An opcode that RFC 3320 §9 does not define.
    UnknownMnemonic(String),
    /// Wrong number of operands.
    OperandCount {
        /// The instruction.
        mnemonic: &'static str,
        /// How many it takes ("2", "3 + 4n").
        expected: String,
        /// How many were written.
        found: usize,
    },
    /// The explicit count of MULTILOAD/SWITCH/INPUT-HUFFMAN does not match
    /// the operands that follow.
    CountMismatch {
        /// The instruction.
        mnemonic: &'static str,
        /// The count written.
        given: i64,
        /// The number of operands (groups) written.
        found: usize,
    },
    /// `$` in front of a literal operand.
    DollarNotAllowed {
        /// The instruction.
        mnemonic: &'static str,
        /// The operand (RFC 3320 §9 name).
        operand: &'static str,
    },
    /// A reference operand without `$`.
    DollarRequired {
        /// The instruction.
        mnemonic: &'static str,
        /// The operand.
        operand: &'static str,
    },
    /// A blank operand that cannot be inferred.
    BlankOperand {
        /// The instruction.
        mnemonic: &'static str,
        /// The operand.
        operand: &'static str,
    },
    /// Wrong number of directive arguments.
    DirectiveArgs {
        /// The directive.
        directive: String,
        /// Arguments it takes.
        expected: usize,
        /// Arguments written.
        found: usize,
    },
    /// A name that is never defined.
    UndefinedName(String),
    /// A name defined twice (label or `set`).
    DuplicateName(String),
    /// A value outside the range allowed where it is used.
    OutOfRange {
        /// What the value is for.
        what: &'static str,
        /// The value.
        value: i64,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// `/` or `%` by zero.
    DivisionByZero,
    /// Expressions nested more than 200 deep.
    TooDeep,
    /// An operation overflowed 64-bit arithmetic.
    Overflow {
        /// The operator.
        op: &'static str,
    },
    /// `at (n)` with `n` below the current location.
    AtBehind {
        /// The requested address.
        at: i64,
        /// The current location.
        location: i64,
    },
    /// `!` used but there is no zero byte in a `readonly (1)` area.
    NoZeroByte,
    /// The program grew beyond the location limit (16 MiB).
    TooLarge,
    /// The first byte of the program lies beyond UDVM memory (64 KiB).
    OriginBeyondMemory {
        /// Its address.
        origin: usize,
    },
    /// Bytes written past the end of UDVM memory (64 KiB, RFC 3320 §7).
    BeyondMemory {
        /// The address of the first byte written.
        start: u64,
        /// The address of the last byte written (above 0xFFFF).
        end: u64,
    },
    /// The layout did not settle.
    NotConverging {
        /// Passes made.
        passes: usize,
    },
    /// A bug in the assembler (please report).
    Internal,
}

impl fmt::Display for AsmErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AsmErrorKind::UnexpectedChar(c) => write!(f, "unexpected character {c:?}"),
            AsmErrorKind::BadNumber(s) => write!(f, "malformed or too large number `{s}`"),
            AsmErrorKind::Expected { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            AsmErrorKind::UnknownMnemonic(m) => write!(f, "unknown instruction `{m}`"),
            AsmErrorKind::OperandCount {
                mnemonic,
                expected,
                found,
            } => write!(f, "{mnemonic} takes {expected} operands, found {found}"),
            AsmErrorKind::CountMismatch {
                mnemonic,
                given,
                found,
            } => write!(
                f,
                "{mnemonic}: count operand is {given} but {found} operand groups follow"
            ),
            AsmErrorKind::DollarNotAllowed { mnemonic, operand } => {
                write!(f, "{mnemonic}: literal operand {operand} cannot take `$`")
            }
            AsmErrorKind::DollarRequired { mnemonic, operand } => {
                write!(f, "{mnemonic}: reference operand {operand} needs `$`")
            }
            AsmErrorKind::BlankOperand { mnemonic, operand } => {
                write!(f, "{mnemonic}: operand {operand} cannot be left blank")
            }
            AsmErrorKind::DirectiveArgs {
                directive,
                expected,
                found,
            } => write!(f, "{directive} takes {expected} argument(s), found {found}"),
            AsmErrorKind::UndefinedName(n) => write!(f, "undefined name `{n}`"),
            AsmErrorKind::DuplicateName(n) => write!(f, "name `{n}` defined twice"),
            AsmErrorKind::OutOfRange {
                what,
                value,
                min,
                max,
            } => write!(f, "{what} {value} out of range {min}..={max}"),
            AsmErrorKind::DivisionByZero => write!(f, "division by zero"),
            AsmErrorKind::TooDeep => write!(f, "expression nested too deeply"),
            AsmErrorKind::Overflow { op } => write!(f, "arithmetic overflow in `{op}`"),
            AsmErrorKind::AtBehind { at, location } => {
                write!(f, "at ({at}) is behind the current location {location}")
            }
            AsmErrorKind::NoZeroByte => {
                write!(
                    f,
                    "`!` needs a zero byte (DECOMPRESSION-FAILURE) in a readonly area"
                )
            }
            AsmErrorKind::TooLarge => write!(f, "program exceeds {} bytes", layout::MAX_LOCATION),
            AsmErrorKind::OriginBeyondMemory { origin } => {
                write!(f, "program starts at {origin}, beyond UDVM memory")
            }
            AsmErrorKind::BeyondMemory { start, end } => write!(
                f,
                "bytes {start:#x}..={end:#x} pass the end of UDVM memory (0xffff, 64 KiB)"
            ),
            AsmErrorKind::NotConverging { passes } => {
                write!(f, "layout did not converge after {passes} passes")
            }
            AsmErrorKind::Internal => write!(f, "internal assembler error"),
        }
    }
}

/// An assembly error: where and what. Displays as `line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsmError {
    pos: Pos,
    kind: AsmErrorKind,
}

impl AsmError {
    pub(crate) fn new(pos: Pos, kind: AsmErrorKind) -> Self {
        AsmError { pos, kind }
    }

    /// Line (from 1).
    pub fn line(&self) -> u32 {
        self.pos.line
    }

    /// Column (from 1).
    pub fn column(&self) -> u32 {
        self.pos.column
    }

    /// Line and column.
    pub fn pos(&self) -> Pos {
        self.pos
    }

    /// What went wrong.
    pub fn kind(&self) -> &AsmErrorKind {
        &self.kind
    }
}

impl fmt::Display for AsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.pos.line, self.pos.column, self.kind)
    }
}

impl std::error::Error for AsmError {}

/// An assembled program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// UDVM address of the first byte of `code`.
    pub origin: u16,
    /// The bytecode, from the first to the last written byte; padding in
    /// between is zero.
    pub code: Vec<u8>,
    /// Every label and `set` name with its value.
    pub symbols: BTreeMap<String, i64>,
    /// Directives the assembler did not know and ignored, as RFC 4464 §3.2
    /// allows (a typo such as `bytes (1)` lands here; worth a warning).
    pub unknown_directives: Vec<(Pos, String)>,
}

impl Program {
    /// The bytes to upload in a SigComp message (RFC 4464 §3.3): `code`
    /// without its trailing zero bytes, which the UDVM memory holds anyway.
    pub fn upload_code(&self) -> &[u8] {
        let end = self.code.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        self.code.get(..end).unwrap_or_default()
    }
}

/// Assembles RFC 4464 §3 assembly into UDVM bytecode, starting at the
/// program's origin (its first non-padding byte; see [`assemble_program`]
/// for the origin and the symbols).
pub fn assemble(src: &str) -> Result<Vec<u8>, AsmError> {
    assemble_program(src).map(|p| p.code)
}

/// Assembles RFC 4464 §3 assembly into a [`Program`].
pub fn assemble_program(src: &str) -> Result<Program, AsmError> {
    let toks = lexer::tokenize(src)?;
    let end = end_pos(src);
    let items = parse::parse(toks, end)?;
    let mut program = layout::assemble_items(&items)?;
    program.unknown_directives = items
        .iter()
        .filter_map(|i| match i {
            parse::Item::Unknown(name, pos) => Some((*pos, name.clone())),
            _ => None,
        })
        .collect();
    Ok(program)
}

fn end_pos(src: &str) -> Pos {
    let mut line = 1u32;
    let mut column = 1u32;
    for c in src.chars() {
        if c == '\n' {
            line = line.saturating_add(1);
            column = 1;
        } else {
            column = column.saturating_add(1);
        }
    }
    Pos { line, column }
}

/// Disassembles `code` loaded at UDVM address `origin` (execution starts
/// there) into assembly that [`assemble`] turns back into the same bytes.
pub fn disassemble(code: &[u8], origin: u16) -> String {
    disasm::disassemble(code, origin)
}
