//! `ipsec-esp`: sans-IO ESP (RFC 4303) and AH (RFC 4302) packet transforms.
//!
//! One [`Sa`] holds an SA's algorithms and keys, its outbound sequence
//! number and its inbound anti-replay window, and transforms IPv4/IPv6
//! packets **in place on the caller's buffer**:
//!
//! - [`Sa::encap_range`] (headroom form, the fast path): the plaintext IP
//!   packet is at `buf[pkt]` with at least [`Sa::headroom`] bytes before it
//!   and [`Sa::tailroom`] bytes after it. Only the IP header (transport
//!   mode; with the IPv6 extension headers kept in front) moves back to make
//!   room for the ESP/AH (and RFC 3948 UDP) header; in tunnel mode the
//!   outer header is written in front. Padding, trailer and ICV are
//!   appended. Returns the range of the protected packet.
//! - [`Sa::encap`] (tailroom form): the packet is at `buf[..pkt_len]` and
//!   the buffer has [`Sa::max_overhead`] bytes after it; the payload moves
//!   forward instead and the protected packet is `buf[..returned_len]`.
//! - [`Sa::decap`]: the protected packet is at the start of `buf`; the
//!   result is `buf[decapped.range]` (transport mode moves the IP header
//!   forward over the removed ESP/AH header instead of moving the payload).
//!
//! Modes: transport and tunnel, IPv4 and IPv6 (ESP/AH after the IPv6
//! extension headers that precede it), ESP in UDP (RFC 3948). Sequence
//! numbers are 32-bit or extended (ESN, RFC 4303 §2.2.1), never cycling.
//! Inbound processing verifies the ICV in constant time, then the
//! anti-replay window ([`ReplayWindow`], RFC 4303 §3.4.3), then decrypts and
//! checks the padding; any failure is a typed [`Error`] and leaves the SA
//! unchanged. No allocation per packet; IVs come from an injected
//! [`IvSource`]; no IO, clock or OS randomness.
//!
//! Not implemented: combined-mode (AEAD) algorithms, TFC padding, IP
//! fragmentation/reassembly (fragments are refused with [`Error::Fragment`]),
//! RFC 3948 §3.1.2 transport-mode checksum fix-ups for NAT (NAT-OA), AH over
//! IPv6 routing headers other than Type 0/2 that still have segments left.
//!
//! ```
//! use ipsec_esp::{Mode, Protocol, Sa, SaParams, Spi};
//! use opensec::{AuthAlgorithm, EncAlgorithm};
//!
//! let params = || SaParams {
//!     spi: Spi(0x1000), protocol: Protocol::Esp, mode: Mode::Transport,
//!     src: "192.0.2.1".parse().unwrap(), dst: "192.0.2.2".parse().unwrap(),
//!     enc: EncAlgorithm::AesCbc, enc_key: vec![7; 16],
//!     auth: AuthAlgorithm::HmacSha1_96, auth_key: vec![9; 20],
//!     replay_window: 64, esn: false, udp_encap: None, seq: 0,
//! };
//! let mut out_sa = Sa::new(params()).unwrap();
//! let mut in_sa = Sa::new(params()).unwrap();
//! // IPv4/UDP packet, 28 bytes, with tailroom for ESP.
//! let pkt = [0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
//!            0x13, 0xc4, 0x13, 0xc4, 0, 8, 0, 0];
//! let mut buf = vec![0u8; pkt.len() + out_sa.max_overhead()];
//! buf[..pkt.len()].copy_from_slice(&pkt);
//! let mut counter = 0u8;
//! let mut iv = |iv: &mut [u8]| { counter += 1; iv.fill(counter) }; // tests only: use a CSPRNG
//! let len = out_sa.encap(&mut buf, pkt.len(), &mut iv).unwrap();
//! let d = in_sa.decap(&mut buf[..len]).unwrap();
//! assert_eq!(d.seq, 1);
//! assert_eq!(&buf[d.range.clone()][20..], &pkt[20..]);
//! ```

mod ah;
mod error;
pub mod replay;
mod sa;
pub mod udp;
pub mod wire;

pub use error::Error;
pub use replay::ReplayWindow;
pub use sa::{Decapped, Encapped, Sa, SaParams, Traffic};

/// Security Parameters Index (RFC 4303 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spi(pub u32);

/// The IPsec protocol of an SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Encapsulating Security Payload, IP protocol 50 (RFC 4303).
    Esp,
    /// Authentication Header, IP protocol 51 (RFC 4302).
    Ah,
}

impl Protocol {
    /// The IP protocol number (50 or 51).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Esp => wire::proto::ESP,
            Protocol::Ah => wire::proto::AH,
        }
    }

    /// "esp" or "ah" (setkey spelling).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Esp => "esp",
            Protocol::Ah => "ah",
        }
    }
}

/// IPsec mode (RFC 4301 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The IPsec header is inserted after the packet's IP header.
    Transport,
    /// The whole packet is carried inside a new IP header whose endpoints
    /// are the SA's `src` and `dst`.
    Tunnel,
}

/// ESP in UDP (RFC 3948): the UDP ports of the encapsulating header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpEncap {
    /// UDP source port (normally 4500).
    pub sport: u16,
    /// UDP destination port (normally 4500).
    pub dport: u16,
}

/// Where ESP's IVs come from. CBC IVs must be unpredictable (RFC 3602
/// §2.2): tools pass a CSPRNG-backed source; tests may pass a
/// deterministic one. Any `FnMut(&mut [u8])` is a source.
pub trait IvSource {
    /// Fills `iv` (the cipher's IV length) with fresh IV bytes.
    fn fill_iv(&mut self, iv: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> IvSource for F {
    fn fill_iv(&mut self, iv: &mut [u8]) {
        self(iv)
    }
}

/// The example of the crate's README.md, run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
