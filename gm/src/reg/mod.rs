//! Registration with AKA and security agreement on Gm (TS 24.229 §5.1.1
//! and §5.2.2, TS 33.203, RFC 3310, RFC 4169, RFC 3329), sans-IO.
//!
//! - [`sa`]: the four SAs of an `ipsec-3gpp` agreement and their
//!   policies, from either side's view, as `sadb` setkey statements.
//!
//! Like the rest of the crate, nothing here reads a clock or randomness:
//! time is a [`std::time::Duration`] the caller counts, random values come
//! from the caller.

use std::fmt;

pub mod sa;

pub use sa::{Agreement, IpsecOffer, Sa, SaSet, Side};

/// What went wrong in a registration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An `ipsec-3gpp` offer that cannot be used (missing or unknown
    /// parameter).
    BadOffer {
        /// What is wrong with it.
        what: &'static str,
    },
    /// A key expansion or AKA computation refused its input.
    Crypto(opensec::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadOffer { what } => write!(f, "unusable ipsec-3gpp offer: {what}"),
            Error::Crypto(e) => write!(f, "security computation failed: {e}"),
        }
    }
}

impl std::error::Error for Error {}
