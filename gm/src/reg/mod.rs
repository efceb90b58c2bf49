//! Registration with AKA and security agreement on Gm (TS 24.229 and
//! TS 33.203 as summarised in the project's 3GPP notes, whose texts could
//! not be checked; RFC 3310, RFC 4169, RFC 3329, RFC 3261 §10), sans-IO.
//!
//! - [`sa`]: the four SAs of an `ipsec-3gpp` agreement and their
//!   policies, from either side's view, as `sadb` setkey statements.
//! - [`ue`]: the UE's registration state machine ([`ue::Ue`]): it builds
//!   the REGISTER requests and answers their responses with typed
//!   [`ue::UeAction`]s (send this request on this flow, install these SAs,
//!   registered...).
//! - [`network`]: the P-CSCF/registrar side ([`network::Network`]): a
//!   subscriber table, AKA challenges, security agreement, bindings, and
//!   the reg event notifier (RFC 3680) with network-initiated
//!   de-registration.
//!
//! After registering, the UE subscribes to the reg event of its IMPU and
//! acts on what the network NOTIFYs of its binding (TS 24.229 §5.1.1.3,
//! §5.1.1.7 as commonly implemented): see [`ue`] step 7.
//!
//! Both machines build and read messages only: the caller carries them
//! (through [`crate::txn`] or otherwise), installs the SAs it is handed
//! before it sends what follows them in the action list, and feeds the
//! responses and the time back. Nothing here reads a clock or
//! randomness: time is a [`Duration`] the caller counts (from any
//! origin), random values come from the caller's [`Random`].
//!
//! A UE registering with the network side, messages passed by hand (a
//! real caller sends them through [`crate::txn`] and applies the SAs with
//! `sadb`):
//!
//! ```
//! use std::time::Duration;
//! use gm::reg::*;
//!
//! struct Rng(u8);
//! impl Random for Rng {
//!     fn fill(&mut self, buf: &mut [u8]) {
//!         for b in buf { self.0 = self.0.wrapping_mul(37).wrapping_add(11); *b = self.0; }
//!     }
//! }
//! let (k, op) = ([0x11; 16], OpKey::Op([0x22; 16]));
//! let (ue_ip, pcscf_ip) = ("10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap());
//! let mut rng = Rng(1);
//! let config = UeConfig::new("alice@ims.example.org", "sip:alice@ims.example.org",
//!     "ims.example.org", ue_ip, pcscf_ip, (1111, 2222), (5062, 5064));
//! let mut ue = Ue::new(config, Credentials::Aka { k, op, sqn_ms: 0 }, &mut rng);
//! let mut net = Network::new(NetworkConfig::new("ims.example.org", pcscf_ip, 5066, 5068));
//! net.add_subscriber("alice@ims.example.org",
//!     Subscriber { k, op, amf: [0x80, 0], sqn: 0, impus: vec![] });
//!
//! let (now, mut to_net) = (Duration::ZERO, ue.register(&mut rng));
//! let mut registered = None;
//! while !to_net.is_empty() {
//!     let mut to_ue = Vec::new();
//!     for action in to_net.drain(..) {
//!         match action {
//!             UeAction::Send { request, flow } => {
//!                 for a in net.on_register(&request, ue_ip, flow, now, &mut rng) {
//!                     // Responses go back on the request's flow.
//!                     if let NetworkAction::Respond(r) = a { to_ue.push((r, flow)) }
//!                 }
//!             }
//!             UeAction::InstallSas(sas) => assert!(sas.script().contains("spdadd")),
//!             UeAction::Registered(r) => registered = Some(r),
//!             _ => {}
//!         }
//!     }
//!     for (r, flow) in to_ue {
//!         to_net.extend(ue.on_response(&r, flow, now, &mut rng));
//!     }
//! }
//! assert_eq!(registered.unwrap().expires, Duration::from_secs(600_000));
//! assert_eq!(ue.sas().unwrap().mirror(), *net.sas("alice@ims.example.org").unwrap());
//! ```

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use opensec::milenage::Milenage;

use crate::sip::header::SecMechanism;

pub mod network;
pub mod sa;
pub mod ue;

pub use network::{
    DEREGISTRATION_LINGER, Ending, MAX_CHALLENGES, Network, NetworkAction, NetworkConfig,
    Subscriber,
};

pub use sa::{Agreement, IpsecMode, IpsecOffer, Sa, SaSet, Side, fresh_spis};
pub use ue::{Credentials, Registration, Ue, UeAction, UeConfig};

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
    /// AUTN's MAC-A did not verify (TS 33.102 §6.3.3): the network does not
    /// know our K, so it is not our home network. The UE told it so
    /// (an empty `response`) and stopped.
    NetworkAuthenticationFailed,
    /// The registrar's challenge is unusable: no Digest challenge, a
    /// malformed AKA nonce, an algorithm we have no credentials for.
    BadChallenge {
        /// What is wrong with it.
        what: &'static str,
    },
    /// A response that breaks the registration (a 200 without a usable
    /// expiry, a Security-Server without an offer we made...).
    BadResponse {
        /// What is wrong with it.
        what: &'static str,
    },
    /// The registrar challenged again the REGISTER that carried our
    /// response (not `stale`): it refused our password or RES.
    CredentialsRefused,
    /// The registrar refused with a final status.
    Rejected {
        /// The status code.
        status: u16,
    },
    /// The registrar challenged a re-registration for which the caller
    /// gave no next SA set ([`crate::reg::Ue::offer_next`]), or a
    /// de-registration: a new set cannot be set up beside the one in use.
    ReauthenticationUnsupported,
    /// The transaction timed out, or the SAs set up for the challenge
    /// expired before the answer came.
    Timeout,
    /// The message could not be built (a configured value is not valid SIP).
    Build(crate::sip::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadOffer { what } => write!(f, "unusable ipsec-3gpp offer: {what}"),
            Error::Crypto(e) => write!(f, "security computation failed: {e}"),
            Error::NetworkAuthenticationFailed => {
                f.write_str("network authentication failed: AUTN's MAC does not verify with our K")
            }
            Error::BadChallenge { what } => write!(f, "unusable challenge: {what}"),
            Error::BadResponse { what } => write!(f, "unusable response: {what}"),
            Error::CredentialsRefused => {
                f.write_str("the registrar refused our credentials (401 to our response)")
            }
            Error::Rejected { status } => write!(f, "registration refused with {status}"),
            Error::ReauthenticationUnsupported => {
                f.write_str("re-authentication of a registered UE without a next SA set (or of a de-registration)")
            }
            Error::Timeout => f.write_str("no answer in time"),
            Error::Build(e) => write!(f, "cannot build the request: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// The operator key of MILENAGE: OP, or OPc derived from it (TS 35.206).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OpKey {
    /// OP.
    Op([u8; 16]),
    /// OPc.
    Opc([u8; 16]),
}

impl OpKey {
    /// MILENAGE for subscriber key `k`.
    pub fn milenage(&self, k: &[u8; 16]) -> Milenage {
        match self {
            OpKey::Op(op) => Milenage::with_op(k, op),
            OpKey::Opc(opc) => Milenage::with_opc(k, opc),
        }
    }
}

impl OpKey {
    /// Overwrites the key with zeros (the owners' `Drop`).
    fn zeroize(&mut self) {
        match self {
            OpKey::Op(k) | OpKey::Opc(k) => zeroize::Zeroize::zeroize(k),
        }
    }
}

impl fmt::Debug for OpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpKey::Op(_) => f.write_str("Op(<redacted>)"),
            OpKey::Opc(_) => f.write_str("Opc(<redacted>)"),
        }
    }
}

/// The source of random values (branch, tags, Call-ID, cnonce, RAND,
/// SPIs): the caller's, so that tests are deterministic and the library
/// reads no OS randomness.
pub trait Random {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// Where the network side's inbound SPIs come from when the SAs live in
/// a database other programs share (ipsecd): the caller holds two SPIs
/// for SAs from the UE at `ue` to us there (setkey `getspi`) and returns
/// them, `None` if it cannot. Without one ([`Network::set_spi_source`]),
/// the network draws random SPIs that none of its own SA sets uses.
pub trait SpiSource {
    /// Two distinct SPIs above 255 (spi-c, spi-s) for SAs from `ue`.
    fn inbound_spis(&mut self, ue: std::net::IpAddr) -> Option<(u32, u32)>;
}

/// The flow a message travels on, between the UE and the P-CSCF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    /// Without IPsec, between the UE's and the P-CSCF's ordinary ports.
    Unprotected,
    /// Over the SAs: UDP from/to the UE's `ue_port` and the P-CSCF's
    /// `pcscf_port` (a UE's request goes from its port-c to the P-CSCF's
    /// port-s, TS 33.203).
    Protected {
        /// The UE's protected port.
        ue_port: u16,
        /// The P-CSCF's protected port.
        pcscf_port: u16,
    },
}

impl Flow {
    /// `side`'s own protected port on this flow, `None` unprotected: where
    /// a message on the flow leaves from, and arrives at.
    ///
    /// ```
    /// use gm::reg::{Flow, Side};
    /// let f = Flow::Protected { ue_port: 5062, pcscf_port: 5068 };
    /// assert_eq!(f.local_port(Side::Ue), Some(5062));
    /// assert_eq!(f.local_port(Side::Network), Some(5068));
    /// assert_eq!(Flow::Unprotected.local_port(Side::Ue), None);
    /// ```
    pub fn local_port(self, side: sa::Side) -> Option<u16> {
        match (self, side) {
            (Flow::Unprotected, _) => None,
            (Flow::Protected { ue_port, .. }, sa::Side::Ue) => Some(ue_port),
            (Flow::Protected { pcscf_port, .. }, sa::Side::Network) => Some(pcscf_port),
        }
    }

    /// The flow of a datagram that came over SAs to our protected port
    /// `local_port` from the peer's `peer_port`, in `side`'s view.
    pub fn protected(side: sa::Side, local_port: u16, peer_port: u16) -> Flow {
        let (ue_port, pcscf_port) = match side {
            sa::Side::Ue => (local_port, peer_port),
            sa::Side::Network => (peer_port, local_port),
        };
        Flow::Protected {
            ue_port,
            pcscf_port,
        }
    }
}

/// `n` random bytes as lowercase hex.
pub(crate) fn token(rng: &mut dyn Random, n: usize) -> String {
    let mut b = vec![0u8; n];
    rng.fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `host:port` with an IPv6 address in brackets (RFC 3261 §25.1).
fn hostport(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Whether two Security-* lists are the same (RFC 3329 §2.3.1: same
/// mechanisms in the same order, each with the same parameter values;
/// names compared case-insensitively).
fn same_mechanisms(a: &[SecMechanism<'_>], b: &[SecMechanism<'_>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.mechanism.eq_ignore_ascii_case(y.mechanism)
                && x.params.len() == y.params.len()
                && x.params
                    .iter()
                    .zip(y.params.iter())
                    .all(|(p, q)| p.name.eq_ignore_ascii_case(q.name) && p.value == q.value)
        })
}

/// Constant-time equality of two byte strings of public length.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// When to refresh a registration of `expires` (TS 24.229 §5.1.1.4.1, as
/// commonly implemented): 600 s before it ends when it lasts more than
/// 1200 s, otherwise when half of it has passed.
pub fn refresh_after(expires: Duration) -> Duration {
    if expires > Duration::from_secs(1200) {
        expires - Duration::from_secs(600)
    } else {
        expires / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_times() {
        let s = Duration::from_secs;
        assert_eq!(refresh_after(s(600_000)), s(599_400));
        assert_eq!(refresh_after(s(1201)), s(601));
        assert_eq!(refresh_after(s(1200)), s(600));
        assert_eq!(refresh_after(s(60)), s(30));
    }
}
