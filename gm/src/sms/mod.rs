//! SMS over IP (TS 24.341): the short-message PDUs a SIP MESSAGE with
//! `Content-Type: application/vnd.3gpp.sms` carries, sans-IO.
//!
//! - [`gsm7`]: the alphabets of TS 23.038 (GSM 7-bit default alphabet with
//!   its extension table, septet packing with fill bits, UCS-2) and the
//!   choice of one for a text.
//! - [`tpdu`]: the TPDUs of TS 23.040 (SMS-SUBMIT, SMS-DELIVER,
//!   SMS-STATUS-REPORT, SMS-SUBMIT-REPORT, SMS-DELIVER-REPORT) with their
//!   addresses, time stamps, validity periods and user data headers.
//! - [`concat`](mod@concat): long texts split into concatenated parts, and the
//!   reassembly of received parts.
//! - [`rp`]: the RP messages of TS 24.011 §7.3 (RP-DATA, RP-ACK,
//!   RP-ERROR, RP-SMMA), the body of a SIP MESSAGE of type
//!   `application/vnd.3gpp.sms`.
//! - [`service`]: the MO and MT procedures of TS 24.341 for the UE
//!   ([`service::SmsUe`]) and for the network as service centre
//!   ([`service::SmsCentre`]): what each MESSAGE carries and means.
//! - [`sip`]: the MESSAGE around the RP message (which one is an SMS,
//!   which one goes to the service centre) and E.164 numbers in URIs.
//!
//! Every decoder takes bytes and returns a typed value or an [`Error`];
//! none panics, whatever the input. Encoders emit the standard forms;
//! decoders also accept one common deviation and say so: RP-User-Data that
//! starts with a service-centre address, as a modem's AT-command PDU mode
//! writes it ([`Warning::ServiceCentrePrefix`]).
//!
//! A mobile-originated message, as the UE puts it in a SIP MESSAGE, and
//! as the network reads it; then a long text in parts and reassembled:
//!
//! ```
//! use gm::sms::{
//!     Address, Reassembler, RpData, RpMessage, Submit, Tpdu, UserData, ValidityPeriod, split,
//! };
//!
//! let text = "Hello {world}, 5 €";
//! let user_data = UserData::text(text); // GSM 7-bit: every char has a code
//! let mut submit = Submit::new(1, Address::international("3361234567"), user_data);
//! submit.status_report_request = true;
//! submit.validity = Some(ValidityPeriod::Relative(167)); // 24 hours
//! let submit = Tpdu::Submit(submit);
//! let sc = Address::international("331000000");
//! let body = RpMessage::Data(RpData::mo(1, sc, &submit)?).encode()?;
//!
//! let RpMessage::Data(data) = RpMessage::decode(&body)? else {
//!     panic!("not RP-DATA");
//! };
//! let decoded = data.tpdu()?;
//! assert_eq!(decoded.warning, None);
//! assert_eq!(decoded.tpdu.user_data().unwrap().body.text()?, text);
//!
//! let parts = split(&"Ж".repeat(100), 7, false)?; // UCS-2: 67 units a part
//! assert_eq!(parts.len(), 2);
//! let mut reassembler = Reassembler::new(16);
//! assert_eq!(reassembler.push("+3361234567", &parts[1])?, None);
//! let whole = reassembler.push("+3361234567", &parts[0])?.unwrap();
//! assert_eq!(whole.text()?, "Ж".repeat(100));
//! # Ok::<(), gm::sms::Error>(())
//! ```
//!
//! Specifications: TS 23.038 §4, §6.1.2, §6.2.1 (alphabets), TS 23.040
//! §9.1.2.5, §9.2 (TPDUs), TS 24.011 §7.3, §8.2 (RP messages). pycrate
//! decodes what this module encodes, field by field
//! (`gm/tests/sms_pycrate.rs`). Not handled: SMS-COMMAND, the national
//! language shift tables, compressed user data, the CP layer of TS 24.011
//! (not used over IP).

pub mod concat;
mod error;
pub mod gsm7;
pub mod rp;
pub mod service;
pub mod sip;
pub mod tpdu;

pub use concat::{Reassembler, split, split_data};
pub use error::Error;
pub use gsm7::Alphabet;
pub use rp::{DecodedTpdu, RpAck, RpCause, RpData, RpError, RpMessage, Warning, cause_name};
pub use tpdu::{
    Address, Body, Concat, Dcs, Deliver, DeliverReport, Direction, Ie, StatusReport, Submit,
    SubmitReport, Timestamp, Tpdu, UserData, ValidityPeriod,
};
