//! The SIP message codec (RFC 3261 §7, §18.3, §20, §25) with the header
//! extensions of the Gm interface.
//!
//! # Design: a borrowed view, typed on demand, edited per row
//!
//! [`Message::parse`] makes one pass over the bytes: it finds the end of
//! the header section (`memchr::memmem`), checks that the start line and
//! headers are UTF-8, splits the header rows at their CRLFs (`memchr2`,
//! which also catches a bare CR or LF), joins folded lines into the row
//! they continue, classifies each name (long or compact form, any case)
//! and reads Content-Length to find the body. Nothing is copied: the
//! [`Message`] holds slices of the input, and one `Vec` of rows.
//!
//! Typed values are parsed from a row's slice when asked for
//! ([`Message::vias`], [`Message::cseq`], [`Message::security`]...), and
//! borrow from it. So a proxy that reads the top Via and forwards the rest
//! untouched pays for nothing else, and [`Message::validate`] parses every
//! typed row once when a whole-message verdict is needed (the torture
//! judge, a UAS before it answers).
//!
//! The alternative, parse-to-owned with an emitter, would allocate a
//! string per value and re-print every header on the way out, losing the
//! byte-exact form a proxy or a signature needs. Here a row stays as
//! received until it is modified: [`Message::emit`] writes unmodified rows
//! verbatim and only modified or added ones as `Name: value`. The price is
//! that typed values must be re-parsed from the row on each accessor call;
//! callers that read one value many times keep it.
//!
//! # What emission normalises
//!
//! An unmodified parsed message is emitted byte for byte, except for what
//! RFC 3261 itself says to drop:
//!
//! - CRLFs before the start line (§7.5: "MUST ignore");
//! - octets after the body of a datagram (§18.3: "MUST be discarded",
//!   RFC 4475 §3.1.1.8).
//!
//! The start line is re-emitted from its three parts, which the parser
//! requires to be separated by exactly one SP (§7.1, §7.2), so it too comes
//! out as it went in. A modified or added row is written `Name: value`
//! on one line (folds are never produced); rows around it are untouched.
//!
//! # Leniency
//!
//! Strict where RFC 4475 calls a message invalid (extra SPs in the start
//! line, unterminated quotes, unquoted non-token display names, spaces in
//! `<>`, bare URIs with `?`, Content-Length problems, status codes outside
//! 100-699). Liberal where it asks for it: no LWS between a display name and
//! `<` (§3.1.1.6), any text in a reason phrase (RFC 3261's grammar forbids a
//! few printable characters there; only control characters are refused),
//! and Contact `expires` values beyond 2**32-1 (§10.2.1.1). The header
//! section must be UTF-8 (the grammar allows nothing else).
//!
//! # What it does not do
//!
//! No transactions, dialogs or transport (later layers); no body parsing
//! (multipart, SDP); no URI comparison rules (§19.1.4). Date, Warning,
//! Retry-After and other headers the Gm layer does not use stay untyped
//! and verbatim.
//!
//! ```
//! use gm::sip::{HeaderName, Message, Method};
//!
//! let bytes = b"REGISTER sip:ims.example.org SIP/2.0\r\n\
//! v: SIP/2.0/UDP [2001:db8::7]:5060;comp=sigcomp;branch=z9hG4bKa1;rport\r\n\
//! From: <sip:alice@ims.example.org>;tag=1\r\n\
//! To: <sip:alice@ims.example.org>\r\n\
//! Call-ID: c1\r\n\
//! CSeq: 1 REGISTER\r\n\
//! Security-Client: ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c=1;spi-s=2;port-c=5062;port-s=5064\r\n\
//! l: 0\r\n\r\n";
//! let msg = Message::parse(bytes).unwrap();
//! assert_eq!(msg.method(), Some(Method::Register));
//! let via = msg.top_via().unwrap();
//! assert_eq!((via.branch, via.comp()), (Some("z9hG4bKa1"), Some("sigcomp")));
//! let offer = &msg.security(HeaderName::SecurityClient).unwrap()[0];
//! assert_eq!(offer.ipsec.unwrap().port_s, Some(5064));
//! assert_eq!(msg.to_bytes(), bytes); // unmodified: byte-exact
//!
//! // A response to it, with a correct Content-Length.
//! let ok = gm::sip::Builder::response_to(&msg, 200, None)
//!     .to_tag("x1")
//!     .header("Expires", 600000)
//!     .build()
//!     .unwrap();
//! assert_eq!(ok.cseq().unwrap().seq, 1);
//! assert_eq!(ok.content_length(), Some(0));
//! ```

mod build;
pub mod check;
mod error;
pub mod header;
mod lex;
mod message;
mod method;
mod name;
mod params;
pub mod torture;
mod uri;

pub use build::{Builder, reason_phrase};
pub use error::{Error, Syntax};
pub use message::{Header, Message, StartLine};
pub use method::Method;
pub use name::HeaderName;
pub use params::{Param, Params};
pub(crate) use uri::V4Text;
pub use uri::{Host, OtherUri, SipUri, Uri};
