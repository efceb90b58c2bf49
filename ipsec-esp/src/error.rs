//! The crate's one error type.

use crate::{Protocol, Spi};
use core::fmt;

/// Why an SA could not be built or a packet could not be transformed.
///
/// Every inbound rejection (`decap`) leaves the SA's replay window and
/// sequence state unchanged.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A key or algorithm was refused by `opensec` (e.g. wrong key length;
    /// its message names the expected length).
    Crypto(opensec::Error),
    /// The SA parameters are inconsistent (e.g. AH with a cipher).
    InvalidSa {
        /// What is wrong.
        reason: &'static str,
    },
    /// Replay window larger than 4096 packets.
    ReplayWindowSize {
        /// The requested size.
        size: u32,
    },
    /// The packet (or a header in it) is shorter than its fields say.
    Truncated {
        /// Which structure was cut short.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// The IP header is not well formed.
    BadIpHeader {
        /// What is wrong.
        reason: &'static str,
    },
    /// The caller's buffer has too little tailroom for the result.
    BufferTooSmall {
        /// Bytes needed in total.
        needed: usize,
        /// Buffer length.
        got: usize,
    },
    /// The result would exceed the 65535-byte IP length limit.
    PacketTooLong {
        /// The length it would have.
        len: usize,
    },
    /// Transport mode applies to whole datagrams only (RFC 4303 §3.1.1,
    /// RFC 4302 §3.4.1): the packet is a fragment.
    Fragment,
    /// The outer header's address family does not match the SA's addresses
    /// (transport mode) or the tunnel endpoints are of mixed families.
    AddressFamilyMismatch,
    /// The packet does not carry this SA's protocol where expected.
    NotIpsec {
        /// The protocol the SA expects.
        expected: Protocol,
        /// The next-header value found instead.
        found: u8,
    },
    /// The SA uses ESP in UDP (RFC 3948) but the packet is not UDP.
    NotUdpEncapsulated {
        /// The next-header value found instead of UDP (17).
        found: u8,
    },
    /// The SPI in the packet is not this SA's.
    SpiMismatch {
        /// The SA's SPI.
        expected: Spi,
        /// The SPI in the packet.
        found: Spi,
    },
    /// The ICV did not verify (RFC 4303 §3.4.4, RFC 4302 §3.4.4).
    IcvMismatch {
        /// The (inferred) sequence number of the rejected packet.
        seq: u64,
    },
    /// The sequence number was already received (RFC 4303 §3.4.3).
    ReplayedSequence {
        /// The duplicate sequence number.
        seq: u64,
    },
    /// The sequence number is to the left of the replay window (RFC 4303 §3.4.3).
    SequenceTooOld {
        /// The rejected sequence number.
        seq: u64,
        /// The highest sequence number received so far.
        top: u64,
        /// The window size.
        window: u32,
    },
    /// Sending one more packet would make the sequence number cycle
    /// (RFC 4303 §3.3.3): the SA must be replaced.
    SequenceNumberOverflow {
        /// The last sequence number sent.
        seq: u64,
    },
    /// The sequence numbers reserved for the SA are used up (see
    /// `Sa::reserve_up_to`): the packet waits for more to be reserved.
    SequenceNotReserved {
        /// The last sequence number sent.
        seq: u64,
    },
    /// The ciphertext is not a multiple of the cipher block size.
    NotBlockAligned {
        /// Cipher block size.
        block_size: usize,
        /// Ciphertext length.
        len: usize,
    },
    /// Decrypted padding is inconsistent (RFC 4303 §2.4, §2.5).
    BadPadding {
        /// What is wrong.
        reason: &'static str,
    },
    /// A dummy packet (Next Header 59, RFC 4303 §2.6): discard silently.
    DummyPacket,
    /// An outbound datagram of protocol 59 (No Next Header) in ESP
    /// transport mode: its receiver would take it for a dummy packet (RFC
    /// 4303 §2.6), so it is not sent.
    NoNextHeader,
    /// The decapsulated Next Header does not fit the mode (tunnel mode
    /// carries 4 or 41).
    UnexpectedNextHeader {
        /// The next-header value.
        next_header: u8,
    },
    /// An outbound IPv6 routing header with segments left whose final view AH
    /// cannot predict (only Types 0 and 2 are known; RFC 4302 Appendix A2).
    UnsupportedRoutingHeader {
        /// Its Routing Type.
        routing_type: u8,
    },
    /// More header pieces than the AH ICV computation can hold without allocating.
    TooManyHeaderParts,
    /// Bad RFC 3948 UDP encapsulation.
    UdpEncap {
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Crypto(e) => write!(f, "{e}"),
            Error::InvalidSa { reason } => write!(f, "invalid SA: {reason}"),
            Error::ReplayWindowSize { size } => {
                write!(
                    f,
                    "replay window of {size} packets is larger than the maximum 4096"
                )
            }
            Error::Truncated { what, needed, got } => {
                write!(f, "truncated {what}: needs {needed} bytes, has {got}")
            }
            Error::BadIpHeader { reason } => write!(f, "bad IP header: {reason}"),
            Error::BufferTooSmall { needed, got } => {
                write!(f, "buffer too small: needs {needed} bytes, has {got}")
            }
            Error::PacketTooLong { len } => {
                write!(f, "packet of {len} bytes exceeds the IP maximum of 65535")
            }
            Error::Fragment => write!(f, "IP fragment: transport mode needs a whole datagram"),
            Error::AddressFamilyMismatch => {
                write!(f, "address family of the packet does not match the SA")
            }
            Error::NotIpsec { expected, found } => write!(
                f,
                "expected {} (protocol {}), found next header {found}",
                expected.name(),
                expected.number()
            ),
            Error::NotUdpEncapsulated { found } => write!(
                f,
                "SA expects ESP in UDP (RFC 3948), found next header {found}"
            ),
            Error::SpiMismatch { expected, found } => write!(
                f,
                "SPI 0x{:08x} does not belong to this SA (0x{:08x})",
                found.0, expected.0
            ),
            Error::IcvMismatch { seq } => write!(f, "ICV mismatch (seq {seq})"),
            Error::ReplayedSequence { seq } => write!(f, "replayed sequence number {seq}"),
            Error::SequenceTooOld { seq, top, window } => write!(
                f,
                "sequence number {seq} is left of the replay window (top {top}, size {window})"
            ),
            Error::SequenceNumberOverflow { seq } => write!(
                f,
                "sequence number would cycle after {seq}: SA exhausted, rekey needed"
            ),
            Error::SequenceNotReserved { seq } => write!(
                f,
                "sequence numbers after {seq} are not reserved yet (recorded before use, for restarts)"
            ),
            Error::NotBlockAligned { block_size, len } => write!(
                f,
                "ciphertext of {len} bytes is not a multiple of the {block_size}-byte block"
            ),
            Error::BadPadding { reason } => write!(f, "bad ESP padding: {reason}"),
            Error::DummyPacket => write!(f, "dummy packet (next header 59)"),
            Error::NoNextHeader => write!(
                f,
                "protocol 59 (no next header) cannot be carried in ESP transport mode: the receiver would discard it as a dummy packet"
            ),
            Error::UnexpectedNextHeader { next_header } => {
                write!(f, "unexpected next header {next_header} for this mode")
            }
            Error::UnsupportedRoutingHeader { routing_type } => {
                write!(
                    f,
                    "routing header type {routing_type} with segments left is not supported by AH"
                )
            }
            Error::TooManyHeaderParts => {
                write!(
                    f,
                    "too many IPv4 options / IPv6 options for the AH ICV computation"
                )
            }
            Error::UdpEncap { reason } => write!(f, "ESP-in-UDP: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Crypto(e) => Some(e),
            _ => None,
        }
    }
}

impl From<opensec::Error> for Error {
    fn from(e: opensec::Error) -> Self {
        Error::Crypto(e)
    }
}
