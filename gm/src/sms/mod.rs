//! SMS over IP (TS 24.341): the short-message PDUs a SIP MESSAGE with
//! `Content-Type: application/vnd.3gpp.sms` carries, sans-IO.
//!
//! - [`gsm7`]: the alphabets of TS 23.038 (GSM 7-bit default alphabet with
//!   its extension table, septet packing with fill bits, UCS-2) and the
//!   choice of one for a text.
//!
//! Every decoder takes bytes and returns a typed value or an [`Error`];
//! none panics, whatever the input.

mod error;
pub mod gsm7;

pub use error::Error;
pub use gsm7::Alphabet;
