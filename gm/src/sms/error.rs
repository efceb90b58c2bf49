//! The SMS codec's error type.

use core::fmt;

/// Why bytes are not an SMS PDU of the expected kind, or why a value cannot
/// be encoded.
///
/// Each variant names the field at fault with the name the specification
/// gives it (`"TP-DA"`, `"RP-Cause"`...). A network element that receives
/// an RP message it cannot decode answers with [`Error::rp_cause`].
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The PDU ends inside this field.
    Truncated {
        /// The field being read, e.g. `"TP-SCTS"`.
        field: &'static str,
    },
    /// Bytes follow the last field of a PDU whose length is known.
    TrailingBytes {
        /// How many bytes are left over.
        count: usize,
    },
    /// A field holds a value its coding does not allow (a semi-octet that
    /// is not a digit, a length beyond the field's maximum...).
    InvalidField {
        /// The field, e.g. `"TP-VPF"`.
        field: &'static str,
        /// The octet (or length) read.
        value: usize,
    },
    /// A message type this codec does not handle (TP-MTI 3, SMS-COMMAND,
    /// RP-MTI 7).
    UnsupportedMessageType {
        /// `"TP-MTI"` or `"RP-MTI"`.
        field: &'static str,
        /// The message type indicator.
        mti: u8,
    },
    /// An RP information element that the message does not allow (TS
    /// 24.011 §7.3).
    UnexpectedIe {
        /// Its IEI.
        iei: u8,
    },
    /// A character with no code in the GSM 7-bit default alphabet or its
    /// extension table (TS 23.038 §6.2.1).
    NotGsm7 {
        /// The character.
        ch: char,
    },
    /// UCS-2 user data that is not UTF-16 (an unpaired surrogate) or has
    /// an odd number of octets.
    InvalidUcs2,
    /// The user data's text was asked for, but TP-DCS says 8-bit data.
    NotText,
    /// The user data's kind does not match the TP-DCS it is encoded with.
    DcsMismatch {
        /// The TP-DCS octet.
        dcs: u8,
    },
    /// A value too long for its field (more than 160 septets or 140
    /// octets of user data, more than 20 address digits...).
    TooLong {
        /// The field, e.g. `"TP-UD"`.
        field: &'static str,
        /// Its length in the field's unit.
        len: usize,
        /// The largest length allowed.
        max: usize,
    },
}

impl Error {
    /// The RP-Cause (TS 24.011 §8.2.5.4) a receiver answers this error
    /// with in an RP-ERROR: 97 for an unknown message type, 99 for an
    /// unexpected information element, 96 (invalid mandatory information)
    /// otherwise.
    pub fn rp_cause(&self) -> u8 {
        match self {
            Error::UnsupportedMessageType { .. } => 97,
            Error::UnexpectedIe { .. } => 99,
            _ => 96,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { field } => write!(f, "PDU ends inside {field}"),
            Error::TrailingBytes { count } => write!(f, "{count} bytes after the last field"),
            Error::InvalidField { field, value } => write!(f, "invalid {field} value {value:#x}"),
            Error::UnsupportedMessageType { field, mti } => {
                write!(f, "unsupported message type {field} {mti}")
            }
            Error::UnexpectedIe { iei } => write!(f, "unexpected information element {iei:#04x}"),
            Error::NotGsm7 { ch } => {
                write!(f, "{ch:?} is not in the GSM 7-bit default alphabet")
            }
            Error::InvalidUcs2 => f.write_str("UCS-2 user data is not UTF-16"),
            Error::NotText => f.write_str("8-bit data is not text"),
            Error::DcsMismatch { dcs } => {
                write!(f, "user data does not match TP-DCS {dcs:#04x}")
            }
            Error::TooLong { field, len, max } => {
                write!(f, "{field} too long: {len}, at most {max}")
            }
        }
    }
}

impl std::error::Error for Error {}
