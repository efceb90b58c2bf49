//! The crate's error type and the RFC 4077 decompression-failure reasons.

use core::fmt;

/// Why decompression failed: the reason codes of RFC 4077 §3.2.
///
/// Every DECOMPRESSION-FAILURE of the UDVM, the dispatcher or the state
/// handler maps to exactly one of these; the numeric value is the code
/// carried in a NACK message.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    /// 1: a referenced state cannot be found (or the partial identifier is
    /// shorter than its `minimum_access_length`).
    StateNotFound = 1,
    /// 2: the message used more UDVM cycles than it was allotted.
    CyclesExhausted = 2,
    /// 3: the DECOMPRESSION-FAILURE instruction was executed.
    UserRequested = 3,
    /// 4: a read or write outside the UDVM memory.
    Segfault = 4,
    /// 5: more than four state creation or four state free requests.
    TooManyStateRequests = 5,
    /// 6: a state identifier length outside 6..=20.
    InvalidStateIdLength = 6,
    /// 7: a state retention priority of 65535 was requested.
    InvalidStatePriority = 7,
    /// 8: more than 65536 bytes of output.
    OutputOverflow = 8,
    /// 9: pop from an empty UDVM stack.
    StackUnderflow = 9,
    /// 10: `input_bit_order` has one of its upper 13 bits set.
    BadInputBitorder = 10,
    /// 11: DIVIDE or REMAINDER by zero.
    DivByZero = 11,
    /// 12: SWITCH index not below `n`.
    SwitchValueTooHigh = 12,
    /// 13: INPUT-BITS or INPUT-HUFFMAN asked for more than 16 bits.
    TooManyBitsRequested = 13,
    /// 14: an operand encoding that does not decode to an integer.
    InvalidOperand = 14,
    /// 15: INPUT-HUFFMAN found no matching code.
    HuffmanNoMatch = 15,
    /// 16: the message is too short for its header.
    MessageTooShort = 16,
    /// 17: the destination field of the header is 0.
    InvalidCodeLocation = 17,
    /// 18: the uploaded bytecode does not fit in the UDVM memory.
    BytecodesTooLarge = 18,
    /// 19: an undefined opcode.
    InvalidOpcode = 19,
    /// 20: STATE-ACCESS with `state_length` 0 but `state_begin` non-zero.
    InvalidStateProbe = 20,
    /// 21: a partial state identifier matched more than one state.
    IdNotUnique = 21,
    /// 22: MULTILOAD would overwrite itself.
    MultiloadOverwritten = 22,
    /// 23: STATE-ACCESS asked for bytes beyond the end of the state value.
    StateTooShort = 23,
    /// 24: an unexpected condition (e.g. the message is not SigComp at all).
    InternalError = 24,
    /// 25: unquoted 0xFF80..0xFFFE in a stream (RFC 3320 §4.2.2).
    FramingError = 25,
}

impl Reason {
    /// The RFC 4077 reason code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The reason for an RFC 4077 code, if it is one defined there.
    pub fn from_code(code: u8) -> Option<Reason> {
        use Reason::*;
        Some(match code {
            1 => StateNotFound,
            2 => CyclesExhausted,
            3 => UserRequested,
            4 => Segfault,
            5 => TooManyStateRequests,
            6 => InvalidStateIdLength,
            7 => InvalidStatePriority,
            8 => OutputOverflow,
            9 => StackUnderflow,
            10 => BadInputBitorder,
            11 => DivByZero,
            12 => SwitchValueTooHigh,
            13 => TooManyBitsRequested,
            14 => InvalidOperand,
            15 => HuffmanNoMatch,
            16 => MessageTooShort,
            17 => InvalidCodeLocation,
            18 => BytecodesTooLarge,
            19 => InvalidOpcode,
            20 => InvalidStateProbe,
            21 => IdNotUnique,
            22 => MultiloadOverwritten,
            23 => StateTooShort,
            24 => InternalError,
            25 => FramingError,
            _ => return None,
        })
    }

    /// The RFC 4077 name, e.g. `STATE_NOT_FOUND`.
    pub fn name(self) -> &'static str {
        use Reason::*;
        match self {
            StateNotFound => "STATE_NOT_FOUND",
            CyclesExhausted => "CYCLES_EXHAUSTED",
            UserRequested => "USER_REQUESTED",
            Segfault => "SEGFAULT",
            TooManyStateRequests => "TOO_MANY_STATE_REQUESTS",
            InvalidStateIdLength => "INVALID_STATE_ID_LENGTH",
            InvalidStatePriority => "INVALID_STATE_PRIORITY",
            OutputOverflow => "OUTPUT_OVERFLOW",
            StackUnderflow => "STACK_UNDERFLOW",
            BadInputBitorder => "BAD_INPUT_BITORDER",
            DivByZero => "DIV_BY_ZERO",
            SwitchValueTooHigh => "SWITCH_VALUE_TOO_HIGH",
            TooManyBitsRequested => "TOO_MANY_BITS_REQUESTED",
            InvalidOperand => "INVALID_OPERAND",
            HuffmanNoMatch => "HUFFMAN_NO_MATCH",
            MessageTooShort => "MESSAGE_TOO_SHORT",
            InvalidCodeLocation => "INVALID_CODE_LOCATION",
            BytecodesTooLarge => "BYTECODES_TOO_LARGE",
            InvalidOpcode => "INVALID_OPCODE",
            InvalidStateProbe => "INVALID_STATE_PROBE",
            IdNotUnique => "ID_NOT_UNIQUE",
            MultiloadOverwritten => "MULTILOAD_OVERWRITTEN",
            StateTooShort => "STATE_TOO_SHORT",
            InternalError => "INTERNAL_ERROR",
            FramingError => "FRAMING_ERROR",
        }
    }

    /// The reason whose RFC 4077 name is `name` (e.g. `SEGFAULT`).
    pub fn from_name(name: &str) -> Option<Reason> {
        (1..=25)
            .filter_map(Reason::from_code)
            .find(|r| r.name() == name)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A DECOMPRESSION-FAILURE (RFC 3320 §8.7) with what RFC 4077 §3.1 needs
/// to build a NACK: the reason, the opcode and PC of the failed
/// instruction (0 and 0 if the UDVM never started) and the reason's
/// details (a state identifier, the cycles per bit, or the memory size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The RFC 4077 reason.
    pub reason: Reason,
    /// The opcode at `pc` when the failure occurred, 0 before execution.
    pub opcode: u8,
    /// The memory address of the failed instruction, 0 before execution.
    pub pc: u16,
    /// Reason-specific details (RFC 4077 §3.2); empty for most reasons.
    pub details: Vec<u8>,
    /// UDVM cycles spent before the failure.
    pub cycles: u64,
}

impl Failure {
    /// A failure before the UDVM executed any instruction.
    pub(crate) fn header(reason: Reason) -> Failure {
        Failure {
            reason,
            opcode: 0,
            pc: 0,
            details: Vec::new(),
            cycles: 0,
        }
    }

    /// A header failure with details.
    pub(crate) fn header_with(reason: Reason, details: Vec<u8>) -> Failure {
        Failure {
            reason,
            opcode: 0,
            pc: 0,
            details,
            cycles: 0,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "decompression failure {} (opcode {}, pc {})",
            self.reason, self.opcode, self.pc
        )
    }
}

impl std::error::Error for Failure {}

/// Errors of the message layer, framing, NACK parsing and the state
/// handler API (a failed decompression is a [`Failure`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The first byte is not `11111xxx` (RFC 3320 §7).
    NotSigComp {
        /// The first byte seen.
        first: u8,
    },
    /// The message ends before its header does (RFC 3320 §7).
    MessageTooShort,
    /// The destination field is 0 (RFC 3320 §7.3).
    InvalidCodeLocation,
    /// The message is not a NACK (RFC 4077 §3.1).
    NotNack,
    /// An unknown NACK version (RFC 4077 §3.1 defines version 1).
    UnsupportedNackVersion {
        /// The version field.
        version: u8,
    },
    /// An unquoted 0xFF80..0xFFFE in a stream (RFC 3320 §4.2.2).
    Framing {
        /// The byte after 0xFF.
        byte: u8,
    },
    /// A stream record grew beyond the configured maximum.
    RecordTooLong {
        /// The maximum record size.
        max: usize,
    },
    /// The compartment is not known to the state handler.
    UnknownCompartment,
    /// A message too long for SigComp on a stream, where it cannot go
    /// plain (RFC 5049 §7: the UDVM outputs at most 65536 bytes).
    MessageTooLarge {
        /// The message's length.
        len: usize,
        /// The longest message SigComp carries.
        max: usize,
    },
    /// A parameter value that RFC 3320 §3.3.1 does not allow.
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// The value given.
        value: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotSigComp { first } => {
                write!(f, "not a SigComp message (first byte {first:#04x})")
            }
            Error::MessageTooShort => f.write_str("SigComp message too short for its header"),
            Error::InvalidCodeLocation => f.write_str("SigComp destination field is 0"),
            Error::NotNack => f.write_str("not a SigComp NACK message"),
            Error::UnsupportedNackVersion { version } => {
                write!(f, "unsupported NACK version {version}")
            }
            Error::Framing { byte } => write!(f, "unquoted 0xff {byte:#04x} in SigComp stream"),
            Error::RecordTooLong { max } => write!(f, "SigComp stream record longer than {max}"),
            Error::UnknownCompartment => f.write_str("unknown compartment"),
            Error::MessageTooLarge { len, max } => {
                write!(
                    f,
                    "a {len}-byte message is longer than SigComp carries ({max})"
                )
            }
            Error::InvalidParameter { name, value } => {
                write!(f, "invalid SigComp parameter {name} = {value}")
            }
        }
    }
}

impl std::error::Error for Error {}
