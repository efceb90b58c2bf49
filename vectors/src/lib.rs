//! Known-answer test vectors: the data files in `vectors/data/`, one loader
//! for their `key = hex` format, and a runner that checks every file against
//! `opensec`.
//!
//! Each file cites its source (RFC 1321, 3174, 2202, 4231, 4868, 3566, 4494,
//! 3602, 2410, 2617; FIPS 81 and 180-2; NIST SP 800-20, 800-38A and 800-67;
//! 3GPP TS 35.208 and TS 55.205, the former also through the AKA procedures
//! of TS 33.102) and says how its values were checked against an
//! implementation nobody here wrote. The IMS key expansion of TS 33.203
//! Annex I has no published vector: its file says whose formula its values
//! follow. The format is described in `data/README.md`; [`list_dir`] loads
//! the files without running them.
//!
//! What it does not do: it holds no algorithm code of its own (everything is
//! computed by `opensec`), and it does no IO beyond reading the vector files
//! that [`load_file`], [`run_file`] and [`run_dir`] are pointed at.
//!
//! ```
//! let text = "algorithm = md5\nsource = RFC 1321 A.5\n\n[abc]\n\
//!             data = \"abc\"\ndigest = 0x900150983cd24fb0d6963f7d28e17f72\n";
//! let file = vectors::parse(text).unwrap();
//! let report = vectors::run(&file, "inline");
//! assert!(report.ok());
//! assert_eq!(report.passed(), 1);
//! ```

mod parse;
mod run;

use std::fmt;
use std::path::PathBuf;

pub use parse::{Case, Field, MAX_VALUE_LEN, Syntax, VectorFile, load_file, parse, parse_value};
pub use run::{CaseReport, FileListing, FileReport, list_dir, run, run_dir, run_file};

/// The directory of the vector files shipped with this crate.
pub const DEFAULT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data");

/// Everything that can go wrong while loading or running vector files.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A file or directory could not be read.
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// A vector file that is not UTF-8 text.
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// A malformed line.
    Syntax {
        /// 1-based line number (of the `name =` line for a value).
        line: usize,
        /// What is wrong.
        what: Syntax,
    },
    /// A value larger than [`MAX_VALUE_LEN`] after repeats.
    ValueTooLarge {
        /// 1-based line number.
        line: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A field name given twice in one case (or twice in the header).
    DuplicateName {
        /// 1-based line of the second occurrence.
        line: usize,
        /// The field name.
        name: String,
    },
    /// The header lacks `algorithm` or `source`.
    MissingHeader {
        /// The missing header field.
        name: &'static str,
    },
    /// An `algorithm` the runner does not know.
    UnknownAlgorithm {
        /// The name as written in the file.
        name: String,
    },
    /// A vector file without any case (a file that tests nothing fails).
    NoCases,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::NotUtf8 { path } => write!(f, "{}: not UTF-8 text", path.display()),
            Error::Syntax { line, what } => write!(f, "line {line}: {}", what.describe()),
            Error::ValueTooLarge { line, limit } => {
                write!(f, "line {line}: value larger than {limit} bytes")
            }
            Error::DuplicateName { line, name } => {
                write!(f, "line {line}: field `{name}` given twice")
            }
            Error::MissingHeader { name } => {
                write!(
                    f,
                    "header field `{name} = ...` missing before the first case"
                )
            }
            Error::UnknownAlgorithm { name } => write!(f, "unknown algorithm `{name}`"),
            Error::NoCases => write!(f, "no test cases in file"),
        }
    }
}

impl std::error::Error for Error {}
