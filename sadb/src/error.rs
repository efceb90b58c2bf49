//! The one error type of the crate.

use core::fmt;
use std::net::IpAddr;

use crate::ast::Pos;

/// Everything that can go wrong in `sadb`: a script that does not parse, a
/// construct that is valid setkey but not supported here, or an operation
/// the databases refuse (an `add` of an existing SA, a `delete` of a missing
/// one, a key the transform rejects). Errors from a script carry the line
/// and column of the offending token or statement.
#[non_exhaustive]
#[derive(Debug)]
pub enum Error {
    /// The input does not follow the setkey grammar.
    Syntax {
        /// Where.
        pos: Pos,
        /// What the grammar allows here.
        expected: String,
        /// What the input has instead.
        found: String,
    },
    /// Valid setkey(8), but not supported by this implementation (IPComp,
    /// TCP-MD5, `-ctx` labels, host names, ...).
    NotSupported {
        /// Where.
        pos: Pos,
        /// What is not supported, and why when useful.
        what: String,
    },
    /// A number or address out of its allowed range.
    InvalidValue {
        /// Where.
        pos: Pos,
        /// What the value is (e.g. `"SPI"`).
        what: &'static str,
        /// The value as written.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// An algorithm name not in the registry.
    UnknownAlgorithm {
        /// Where.
        pos: Pos,
        /// `"encryption"` or `"authentication"`.
        kind: &'static str,
        /// The name as written.
        name: String,
        /// The names that are accepted.
        valid: String,
    },
    /// The registry or the transform refused the algorithm parameters (key length).
    Algorithm {
        /// Where (the key, or the statement when applied directly).
        pos: Option<Pos>,
        /// The reason from `opensec`.
        source: opensec::Error,
    },
    /// The SA transform could not be built from the statement.
    Transform {
        /// The statement, if from a script.
        pos: Option<Pos>,
        /// The reason from `ipsec-esp`.
        source: ipsec_esp::Error,
    },
    /// The statement is well-formed but its parts do not fit together
    /// (ESP without `-E`, AH with `-E`, ports on a non-UDP SA, ...).
    Inconsistent {
        /// The statement, if from a script.
        pos: Option<Pos>,
        /// What is wrong.
        reason: String,
    },
    /// `add` of an SA whose (destination, protocol, SPI) is already in the SAD.
    SaExists {
        /// The statement, if from a script.
        pos: Option<Pos>,
        /// Destination.
        dst: IpAddr,
        /// `"esp"` or `"ah"`.
        protocol: &'static str,
        /// SPI.
        spi: u32,
    },
    /// `get`, `delete` or `update` of an SA that is not in the SAD.
    SaNotFound {
        /// The statement, if from a script.
        pos: Option<Pos>,
        /// Destination.
        dst: IpAddr,
        /// `"esp"` or `"ah"`.
        protocol: &'static str,
        /// SPI.
        spi: u32,
    },
    /// `spdadd` of a policy whose selector and direction are already in the SPD.
    PolicyExists {
        /// The statement, if from a script.
        pos: Option<Pos>,
        /// The selector as setkey prints it.
        selector: String,
    },
    /// `spddelete` of a policy that is not in the SPD.
    PolicyNotFound {
        /// The statement, if from a script.
        pos: Option<Pos>,
        /// The selector as setkey prints it.
        selector: String,
    },
    /// A client applying under an owner tag changed or removed an SA or
    /// policy it does not own, or flushed (which would remove others').
    NotOwner {
        /// The statement, if from a script.
        pos: Option<Pos>,
        /// The SA, policy or operation.
        what: String,
        /// Its owner (`None`: installed without one, by the operator).
        owner: Option<String>,
    },
}

impl Error {
    /// Where in the input the error is, if it comes from a script.
    pub fn pos(&self) -> Option<Pos> {
        match self {
            Error::Syntax { pos, .. }
            | Error::NotSupported { pos, .. }
            | Error::InvalidValue { pos, .. }
            | Error::UnknownAlgorithm { pos, .. } => Some(*pos),
            Error::Algorithm { pos, .. }
            | Error::Transform { pos, .. }
            | Error::Inconsistent { pos, .. }
            | Error::SaExists { pos, .. }
            | Error::SaNotFound { pos, .. }
            | Error::PolicyExists { pos, .. }
            | Error::PolicyNotFound { pos, .. }
            | Error::NotOwner { pos, .. } => *pos,
        }
    }

    /// The same error located at `pos` (used when applying a script).
    #[allow(dead_code)]
    pub(crate) fn at(mut self, at: Pos) -> Error {
        if let Error::Algorithm { pos, .. }
        | Error::Transform { pos, .. }
        | Error::Inconsistent { pos, .. }
        | Error::SaExists { pos, .. }
        | Error::SaNotFound { pos, .. }
        | Error::PolicyExists { pos, .. }
        | Error::PolicyNotFound { pos, .. }
        | Error::NotOwner { pos, .. } = &mut self
        {
            pos.get_or_insert(at);
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(pos) = self.pos() {
            write!(f, "line {}, column {}: ", pos.line, pos.col)?;
        }
        match self {
            Error::Syntax {
                expected, found, ..
            } => write!(f, "expected {expected}, found {found}"),
            Error::NotSupported { what, .. } => write!(f, "not supported: {what}"),
            Error::InvalidValue {
                what, value, rule, ..
            } => write!(f, "invalid {what} {value:?}: {rule}"),
            Error::UnknownAlgorithm {
                kind, name, valid, ..
            } => write!(
                f,
                "unknown {kind} algorithm {name:?}; expected one of: {valid}"
            ),
            Error::Algorithm { source, .. } => write!(f, "{source}"),
            Error::Transform { source, .. } => write!(f, "cannot build the SA: {source}"),
            Error::Inconsistent { reason, .. } => f.write_str(reason),
            Error::SaExists {
                dst, protocol, spi, ..
            } => write!(
                f,
                "SA already exists: {protocol} dst {dst} spi {spi}(0x{spi:08x})"
            ),
            Error::SaNotFound {
                dst, protocol, spi, ..
            } => write!(f, "no such SA: {protocol} dst {dst} spi {spi}(0x{spi:08x})"),
            Error::PolicyExists { selector, .. } => {
                write!(f, "policy already exists: {selector}")
            }
            Error::PolicyNotFound { selector, .. } => write!(f, "no such policy: {selector}"),
            Error::NotOwner { what, owner, .. } => match owner {
                Some(o) => write!(f, "{what} belongs to owner {o}"),
                None => write!(
                    f,
                    "{what} belongs to the operator (installed without an owner)"
                ),
            },
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Algorithm { source, .. } => Some(source),
            Error::Transform { source, .. } => Some(source),
            _ => None,
        }
    }
}
