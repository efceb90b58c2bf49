//! SMS over IP (TS 24.341): the short-message PDUs a SIP MESSAGE with
//! `Content-Type: application/vnd.3gpp.sms` carries, sans-IO.
//!
//! - [`gsm7`]: the alphabets of TS 23.038 (GSM 7-bit default alphabet with
//!   its extension table, septet packing with fill bits, UCS-2) and the
//!   choice of one for a text.
//! - [`tpdu`]: the TPDUs of TS 23.040 (SMS-SUBMIT, SMS-DELIVER,
//!   SMS-STATUS-REPORT, SMS-SUBMIT-REPORT, SMS-DELIVER-REPORT) with their
//!   addresses, time stamps, validity periods and user data headers.
//! - [`concat`]: long texts split into concatenated parts, and the
//!   reassembly of received parts.
//! - [`rp`]: the RP messages of TS 24.011 §7.3 (RP-DATA, RP-ACK,
//!   RP-ERROR, RP-SMMA), the body of a SIP MESSAGE of type
//!   `application/vnd.3gpp.sms`.
//!
//! Every decoder takes bytes and returns a typed value or an [`Error`];
//! none panics, whatever the input.

pub mod concat;
mod error;
pub mod gsm7;
pub mod rp;
pub mod tpdu;

pub use concat::{Reassembler, split};
pub use error::Error;
pub use gsm7::Alphabet;
pub use rp::{DecodedTpdu, RpAck, RpCause, RpData, RpError, RpMessage, Warning};
pub use tpdu::{
    Address, Body, Concat, Dcs, Deliver, DeliverReport, Direction, Ie, StatusReport, Submit,
    SubmitReport, Timestamp, Tpdu, UserData, ValidityPeriod,
};
