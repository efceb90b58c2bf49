//! `gm`: the SIP layer of the IMS Gm interface.
//!
//! Today it holds:
//!
//! - [`sip`], the SIP message codec: parsing (zero-copy, typed headers on
//!   demand), RFC 4475 verdicts, the UAS checks of RFC 3261 §8.2, a
//!   builder, and byte-exact re-emission;
//! - [`txn`], the transaction layer (RFC 3261 §17): non-INVITE client and
//!   server, the INVITE server that refuses an INVITE, timers
//!   E/F/K/J/G/H/I, RFC 3581 `rport`, the §18.1.1 size rule;
//! - [`dialog`], dialogs (RFC 3261 §12) and the subscriber's side of a
//!   subscription (RFC 6665 §4.1);
//! - [`presence`], PIDF (RFC 3863), PUBLISH and the Event State
//!   Compositor (RFC 3903), the presence agent that notifies watchers
//!   (RFC 3856, RFC 6665 §4.2), and the UE's side: its PUBLISH and its
//!   presence subscriptions ([`presence::ue`]);
//! - [`sms`], the SMS-over-IP codec (the body of a MESSAGE of type
//!   `application/vnd.3gpp.sms`): RP messages (TS 24.011), TPDUs (TS
//!   23.040), the GSM 7-bit and UCS-2 alphabets (TS 23.038), concatenated
//!   messages split and reassembled; and the MO/MT procedures of TS 24.341
//!   for the UE and the service centre ([`sms::service`]);
//! - [`reg`], registration: the UE's state machine ([`reg::Ue`]:
//!   AKAv1/AKAv2-MD5 or plain digest, AUTS resynchronisation, RFC 3329
//!   security agreement with `ipsec-3gpp`, re- and de-registration), the
//!   P-CSCF/registrar side ([`reg::Network`]: subscribers, AKA challenges,
//!   Security-Server, bindings, the reg event notifier with
//!   network-initiated de-registration) and the four SAs both derive
//!   ([`reg::SaSet`], rendered as `sadb` setkey statements); the UE
//!   subscribes to its own reg event and acts on it.
//! - [`regevent`], the registration event package (RFC 3680): reginfo
//!   documents and the subscriber's view of them, which tells a UE of a
//!   network-initiated deregistration;
//! - [`comp`], SigComp on Gm (RFC 3486, RFC 5049): a compartment per
//!   association opened once its SAs exist, states saved only for
//!   messages that came over them, `comp=sigcomp` and `sigcomp-id`;
//! - [`pager`], pager-mode MESSAGE (RFC 3428): the UE's request and a
//!   test P-CSCF's relay decisions;
//! - [`network`], the network role as one machine ([`network::Pcscf`]):
//!   the registrar, the relay, the presence agent and the SMS service
//!   centre over the transaction layer, with its outputs (messages, SA
//!   changes, events) in the order they must take effect; `pcscf` is IO
//!   around it;
//! - [`ue`], the UE role as one machine ([`ue::Ua`]): registration,
//!   MESSAGE, SMS over IP and presence over the transaction layer, its
//!   requests over the registration's SAs, its outputs in order; `imsua`
//!   is IO around it.
//!
//! Like every library of the workspace it does no IO, reads no clock and
//! no randomness: it takes bytes and returns typed values.
//!
//! RFCs implemented: 3310 and 4169 (digest AKA), 3329 (security
//! agreement), 3261 §10 (registration); by the codec: 3261 (§7, §8.1.3.3, §8.2, §18.3, §19.1,
//! §20, §25), 3310 (`auts`, AKA algorithms), 3325, 3327, 3329, 3455, 3581,
//! 3608, 3840 (feature tags), 3903, 6665; RFC 4475 is its test suite.

// Parsers index only through `get` (no panic on attacker data).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod comp;
pub mod dialog;
pub mod network;
pub mod pager;
pub mod presence;
pub mod reg;
pub mod regevent;
pub mod sip;
pub mod sms;
pub mod txn;
pub mod ue;
mod xml;

/// What the caller of a role ([`network::Pcscf`], [`ue::Ua`]) does
/// next, in order; `E` is the role's event.
#[derive(Debug)]
pub enum Output<E> {
    /// A message the transactions queued: send it.
    Transmit(txn::Transmit<std::net::SocketAddr>),
    /// Install an SA set; `replaces` is the set it takes over from in a
    /// handover (its SigComp compartment goes over to the new set).
    InstallSas {
        /// The set.
        set: reg::SaSet,
        /// The set it replaces, during a handover.
        replaces: Option<reg::SaSet>,
    },
    /// Update an installed set (its lifetime).
    UpdateSas(reg::SaSet),
    /// Remove a set.
    RemoveSas(reg::SaSet),
    /// Something happened.
    Event(E),
}

/// The example of the crate's README.md, run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The whole seconds of `d`, rounded up: what a header or document says
/// of the time left (an `expires` of 0 ends a subscription or binding, so
/// 0.9 s left is 1).
pub(crate) fn secs_left(d: std::time::Duration) -> u64 {
    d.as_millis().div_ceil(1000).try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_left_rounds_up_to_whole_seconds() {
        use std::time::Duration;
        assert_eq!(super::secs_left(Duration::ZERO), 0);
        assert_eq!(super::secs_left(Duration::from_millis(1)), 1);
        assert_eq!(super::secs_left(Duration::from_millis(997)), 1);
        assert_eq!(super::secs_left(Duration::from_secs(2)), 2);
        assert_eq!(super::secs_left(Duration::from_millis(2001)), 3);
    }
}
