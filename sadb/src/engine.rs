//! The IPsec engine: RFC 4301 §5 processing of whole packets, sans IO.
//!
//! [`Databases::protect`] takes a plaintext IP packet in the caller's
//! buffer and returns what to do with it: send the protected bytes it wrote
//! ([`Outgoing::Protected`]), send the packet in clear ([`Outgoing::Bypass`])
//! or drop it ([`Outgoing::Discard`], with the reason).
//! [`Databases::unprotect`] takes a received packet (a whole IP packet, or a
//! socket's header-stripped ESP/AH payload or ESP-in-UDP payload with the
//! outer addresses passed in), removes its SAs and checks the inbound
//! policy, and returns the inner IP packet to deliver ([`Incoming::Deliver`])
//! or why it was dropped ([`Incoming::Drop`]). A whole IP packet that is not
//! IPsec goes through the same inbound check, so clear text that a
//! `require` policy covers is refused.
//!
//! Both work in place on the caller's buffer, allocate nothing, take `now`
//! and an IV source, and take `&self`: per-packet state (sequence numbers,
//! replay windows, counters) is atomic or behind each SA's own lock, so
//! packets of one snapshot run on every core at once. [`Engine`] holds the
//! current snapshot and swaps in a new one, all or nothing, on each change.
//!
//! **ICMP errors** (RFC 4301 §6.2). Outbound, an ICMP error whose own
//! headers select a `discard` or `ipsec` policy follows it; otherwise it is
//! mapped by the header it quotes (addresses and ports reversed) to that
//! flow's policy: through the flow's SA when the flow is protected (dropped
//! when that SA is missing), so an error about a protected flow never
//! leaves in clear. Inbound, an ICMP error that an `ipsec` policy of its own
//! headers accepts is delivered ("explicit carriage"); otherwise the quoted
//! header, reversed, must satisfy its flow's inbound policy with the SAs
//! the error came through, and an error that came through SAs must quote a
//! flow those SAs' policy protects.
//!
//! **Counters** follow one rule in both directions, as Linux XFRM counts:
//! an SA counts the bytes it protects, the IP payload (transport header and
//! data) in transport mode and the inner IP packet in tunnel mode; byte
//! lifetimes (`-bh`, `-bs`) are measured in the same bytes. A policy counts
//! the whole plaintext IP packets that matched it and went on, and the
//! packets it made the engine drop.

use core::ops::Range;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ipsec_esp::udp::{UdpPayload, classify};
use ipsec_esp::wire::{self, Fragment, IpHeaders, proto};
use ipsec_esp::{Error as EspError, IvSource, Mode, Protocol, Spi};

use crate::apply::{InDecision, MAX_BUNDLE, NATT_PORT, OutDecision, Output};
use crate::ast::{Located, Statement};
use crate::sad::{ExpireEvent, SaEntry, SaId};
use crate::spd::{PacketSelector, Policy, PolicyAction, UpperInfo};
use crate::{Databases, Error, Timestamp};

/// Bytes a caller leaves in front of a received ESP payload
/// ([`Received::Payload`], [`Received::Udp`]) so that the inner packet of
/// transport mode can get its IP header (40 for IPv6).
pub const UNPROTECT_HEADROOM: usize = 40;

/// How a received packet's bytes came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A whole IP packet (an IPv4 raw socket, a TUN, a capture). ESP, AH,
    /// and ESP in UDP on port 4500 or an ESP-in-UDP SA's port are removed;
    /// anything else is a clear packet and only checked.
    Ip,
    /// The payload of an IP packet whose header the socket removed (an
    /// IPv6 raw socket for protocol 50 or 51), with the outer addresses.
    Payload {
        /// Outer source address.
        src: IpAddr,
        /// Outer destination address (the local one, e.g. from
        /// `IPV6_PKTINFO`).
        dst: IpAddr,
        /// ESP or AH.
        protocol: Protocol,
    },
    /// The payload of a UDP datagram that may carry ESP (RFC 3948), with
    /// the datagram's addresses and ports.
    Udp {
        /// Remote address and port.
        src: SocketAddr,
        /// Local address and port.
        dst: SocketAddr,
    },
}

/// One SA a packet went through, or was refused by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaUse {
    /// The SA's key.
    pub id: SaId,
    /// The packet's sequence number (for a refused inbound packet, the
    /// number in its header; `None` when no number was taken).
    pub seq: Option<u64>,
}

/// The SAs of one packet, in processing order (outbound: innermost first;
/// inbound: outermost first). At most [`MAX_BUNDLE`] + 1 (the SA that
/// refused a packet is listed after those that accepted it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaTrace {
    uses: [Option<SaUse>; MAX_BUNDLE + 1],
}

impl SaTrace {
    fn push(&mut self, u: SaUse) {
        if let Some(slot) = self.uses.iter_mut().find(|s| s.is_none()) {
            *slot = Some(u);
        }
    }

    /// The SAs in order.
    pub fn iter(&self) -> impl Iterator<Item = &SaUse> + '_ {
        self.uses.iter().flatten()
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether no SA was involved.
    pub fn is_empty(&self) -> bool {
        self.uses[0].is_none()
    }
}

/// How the protected packet goes on the wire: what its outer header
/// carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// ESP, IP protocol 50.
    Esp,
    /// AH, IP protocol 51.
    Ah,
    /// ESP in UDP (RFC 3948) with these ports.
    EspInUdp {
        /// UDP source port.
        sport: u16,
        /// UDP destination port.
        dport: u16,
    },
}

/// A packet the engine protected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protected {
    /// Where the whole protected IP packet is in the caller's buffer.
    pub packet: Range<usize>,
    /// Bytes of its outer IP header (with the IPv6 extension headers that
    /// stay in front) at the start of `packet`.
    pub header_len: usize,
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// What follows the outer IP header.
    pub wire: Wire,
    /// The policy (`spid`).
    pub policy: u32,
    /// The SAs applied, innermost first, with the sequence numbers used.
    pub sas: SaTrace,
}

impl Protected {
    /// What a socket that writes the outer headers itself sends: the ESP or
    /// AH packet after the IP header (raw socket), or the ESP packet after
    /// the UDP header ([`Wire::EspInUdp`], a UDP socket).
    pub fn payload(&self) -> Range<usize> {
        let udp = match self.wire {
            Wire::EspInUdp { .. } => wire::UDP_HEADER_LEN,
            _ => 0,
        };
        let start = (self.packet.start + self.header_len + udp).min(self.packet.end);
        start..self.packet.end
    }
}

/// Why an outbound packet is not sent.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscardReason {
    /// A `discard` policy matched.
    Policy,
    /// An `ipsec` policy matched, but no SA for one of its requests (fail
    /// closed: never sent in clear).
    NoSa {
        /// The request (0-based) without an SA.
        request: usize,
    },
    /// The SA for a request is past its hard lifetime.
    SaExpired {
        /// The request (0-based).
        request: usize,
    },
    /// The SA's sequence numbers are used up (RFC 4303 §3.3.3): it is
    /// marked dead and must be replaced.
    SequenceExhausted {
        /// The SA.
        id: SaId,
    },
    /// The sequence numbers reserved for the SA are used up (a caller
    /// records them before use, see `ipsec_esp::Sa::reserve_up_to`): a
    /// moment's wait for the next reservation.
    SequenceNotReserved {
        /// The SA.
        id: SaId,
    },
    /// The packet is not a well-formed IP packet.
    Malformed(EspError),
    /// The transform refused the packet (e.g. a fragment in transport mode,
    /// too little room in the buffer, a packet too long for IP).
    Transform {
        /// The SA.
        id: SaId,
        /// Why.
        error: EspError,
    },
    /// A transport-mode SA whose addresses are not the packet's (an ICMP
    /// error mapped to a flow of other addresses): the peer could not find
    /// the SA.
    AddressMismatch {
        /// The SA.
        id: SaId,
    },
}

/// An outbound packet that is not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discard {
    /// The policy that decided (`spid`), if any.
    pub policy: Option<u32>,
    /// Why.
    pub reason: DiscardReason,
    /// The SAs involved so far.
    pub sas: SaTrace,
}

/// What to do with an outbound packet (RFC 4301 §5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// Send the protected packet.
    Protected(Protected),
    /// Send the packet in clear: a `none` policy (or an `ipsec` policy whose
    /// requests are all `use` without SAs), or no policy at all (`policy:
    /// None`; Linux and KAME send such packets in clear).
    Bypass {
        /// The policy, if one matched.
        policy: Option<u32>,
    },
    /// Drop it.
    Discard(Discard),
}

/// Why a received packet is not delivered.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Not a well-formed packet (IP headers, ESP/AH/UDP framing, or the
    /// inner packet).
    Malformed(EspError),
    /// A UDP payload that is not ESP: an IKE message behind the non-ESP
    /// marker or a NAT-keepalive (RFC 3948 §2.2, §2.3); not the engine's.
    NotEsp(UdpPayload),
    /// No SA with the packet's (destination, protocol, SPI).
    UnknownSa {
        /// The key looked up.
        id: SaId,
    },
    /// The SA is past its hard lifetime.
    SaExpired {
        /// The SA.
        id: SaId,
    },
    /// The ICV did not verify (RFC 4303 §3.4.4).
    Icv {
        /// The SA.
        id: SaId,
    },
    /// A replayed or too old sequence number (RFC 4303 §3.4.3).
    Replay {
        /// The SA.
        id: SaId,
        /// The replay error.
        error: EspError,
    },
    /// The SA refused the packet otherwise (padding, length, mode).
    Decap {
        /// The SA.
        id: SaId,
        /// Why.
        error: EspError,
    },
    /// More nested IPsec headers than a bundle holds.
    TooManyNested,
    /// The inbound policy refused the packet: a `discard` policy, or the
    /// SAs it came through do not satisfy the `ipsec` policy (RFC 4301 §5.2
    /// step 4).
    Policy {
        /// The policy.
        policy: u32,
    },
    /// Clear text that an `ipsec` policy with `require` covers.
    ClearRefused {
        /// The policy.
        policy: u32,
    },
    /// An ICMP error whose quoted header is not consistent with the SAs it
    /// came through (RFC 4301 §6.2).
    IcmpQuote {
        /// The policy of the quoted flow, if any.
        policy: Option<u32>,
    },
    /// The packet came out of a tunnel-mode SA and no inbound policy
    /// selects it ([`Databases::tunnel_needs_policy`]).
    NoPolicy,
}

/// A received packet that is not delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// Why.
    pub reason: DropReason,
    /// The SAs involved (the last one refused the packet, if an SA did).
    pub sas: SaTrace,
}

/// A received packet to deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deliver {
    /// Where the whole inner IP packet is in the caller's buffer.
    pub packet: Range<usize>,
    /// The inbound policy that accepted it (`None`: no policy matched).
    pub policy: Option<u32>,
    /// The SAs removed, outermost first (empty: it came in clear).
    pub sas: SaTrace,
    /// A clear UDP datagram on an ESP-in-UDP port that is not ESP: an IKE
    /// message or a NAT-keepalive (RFC 3948 §2.2, §2.3).
    pub non_esp: Option<UdpPayload>,
}

/// What to do with a received packet (RFC 4301 §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Deliver the inner packet.
    Deliver(Deliver),
    /// Drop it.
    Drop(Dropped),
}

/// ICMP/ICMPv6 error messages, whose body quotes the offending packet
/// (RFC 792, RFC 4443 §2.1: Destination Unreachable, Source Quench,
/// Redirect, Time Exceeded, Parameter Problem; Packet Too Big).
fn is_icmp_error(protocol: u8, icmp_type: u8) -> bool {
    match protocol {
        proto::ICMP => matches!(icmp_type, 3 | 4 | 5 | 11 | 12),
        proto::ICMPV6 => matches!(icmp_type, 1..=4),
        _ => false,
    }
}

/// The selector fields of a walked packet (RFC 4301 §4.4.1.1): ports for
/// TCP, UDP, SCTP and UDP-Lite, type and code for ICMP and ICMPv6, the MH
/// type for the Mobility Header; nothing for a later fragment (OPAQUE).
fn selector_fields(h: &IpHeaders, pkt: &[u8]) -> PacketSelector {
    let l4 = h.upper(pkt);
    let upper = match (h.upper_protocol, l4) {
        (proto::TCP | proto::UDP | proto::SCTP | proto::UDPLITE, [a, b, c, d, ..]) => {
            UpperInfo::Ports {
                src: u16::from_be_bytes([*a, *b]),
                dst: u16::from_be_bytes([*c, *d]),
            }
        }
        (proto::ICMP | proto::ICMPV6, [t, c, ..]) => UpperInfo::Icmp {
            icmp_type: *t,
            code: *c,
        },
        (proto::MH, [_, _, t, ..]) => UpperInfo::Icmp {
            icmp_type: *t,
            code: 0,
        },
        _ => UpperInfo::None,
    };
    PacketSelector {
        src: h.src,
        dst: h.dst,
        protocol: h.upper_protocol,
        upper,
    }
}

impl PacketSelector {
    /// The selector fields of the IP packet at the start of `pkt` (RFC 4301
    /// §4.4.1.1; after the IPv6 extension headers; no ports for a later
    /// fragment).
    pub fn of_packet(pkt: &[u8]) -> Result<PacketSelector, EspError> {
        let h = wire::parse(pkt)?;
        Ok(selector_fields(&h, pkt))
    }

    /// The same flow seen from the other end: addresses and ports swapped.
    pub fn reversed(&self) -> PacketSelector {
        PacketSelector {
            src: self.dst,
            dst: self.src,
            protocol: self.protocol,
            upper: match self.upper {
                UpperInfo::Ports { src, dst } => UpperInfo::Ports { src: dst, dst: src },
                other => other,
            },
        }
    }
}

/// For an ICMP error, the selector of the packet it quotes, reversed (RFC
/// 4301 §6.2): the flow the error belongs to, in the error's direction.
fn icmp_quote(h: &IpHeaders, sel: &PacketSelector, pkt: &[u8]) -> Option<PacketSelector> {
    let UpperInfo::Icmp { icmp_type, .. } = sel.upper else {
        return None;
    };
    if !is_icmp_error(h.upper_protocol, icmp_type) {
        return None;
    }
    let quoted = h.upper(pkt).get(8..)?;
    let q = wire::parse_quoted(quoted).ok()?;
    Some(selector_fields(&q, quoted).reversed())
}

fn is_ipsec(p: &Policy) -> bool {
    matches!(p.action, PolicyAction::Ipsec(_))
}

fn discard(policy: Option<&Policy>, reason: DiscardReason, sas: SaTrace) -> Outgoing {
    if let Some(p) = policy {
        p.stats.drop_one();
    }
    Outgoing::Discard(Discard {
        policy: policy.map(|p| p.id),
        reason,
        sas,
    })
}

fn dropped(reason: DropReason, sas: SaTrace) -> Incoming {
    Incoming::Drop(Dropped { reason, sas })
}

/// Where the IPsec header of the current (whole) packet is.
struct IpsecHeader {
    protocol: Protocol,
    /// Offset of the ESP/AH header in the packet.
    at: usize,
    /// ESP in UDP: the UDP header is in front of it.
    udp: bool,
    /// ... on port 4500 (RFC 3948), not only an SA's port.
    natt: bool,
    version: wire::IpVersion,
    dst: IpAddr,
    header_len: usize,
    nh_offset: usize,
    total_len: usize,
}

impl Databases {
    /// Outbound processing (RFC 4301 §5.1) of the plaintext IP packet at
    /// `buf[pkt]` (bytes after its IP length are ignored).
    ///
    /// With at least 64 bytes per SA of the bundle before `pkt.start` and
    /// after `pkt.end` (see `ipsec_esp::Sa::headroom`/`tailroom`) nothing
    /// of the payload moves; with less the transform moves the payload
    /// forward, which then needs room after `pkt.end`. Sequence numbers are
    /// taken, counters and the policy's use time recorded, at `now`.
    pub fn protect(
        &self,
        buf: &mut [u8],
        pkt: Range<usize>,
        now: Timestamp,
        iv: &mut impl IvSource,
    ) -> Outgoing {
        let none = SaTrace::default();
        let Some(bytes) = buf.get(pkt.clone()) else {
            return discard(
                None,
                DiscardReason::Malformed(EspError::BufferTooSmall {
                    needed: pkt.end,
                    got: buf.len(),
                }),
                none,
            );
        };
        let h = match wire::parse(bytes) {
            Ok(h) => h,
            Err(e) => return discard(None, DiscardReason::Malformed(e), none),
        };
        let sel = selector_fields(&h, bytes);
        let quote = icmp_quote(&h, &sel, bytes);
        let decision = self.decide_out_with_icmp(&sel, quote.as_ref(), now);
        let total = h.total_len;
        let (policy, sas) = match decision {
            OutDecision::NoPolicy => return Outgoing::Bypass { policy: None },
            OutDecision::Bypass(p) => {
                p.stats.pass(total);
                return Outgoing::Bypass { policy: Some(p.id) };
            }
            OutDecision::Discard(p) => return discard(Some(p), DiscardReason::Policy, none),
            OutDecision::NoSa(p, request) => {
                let reason = if self.expired_candidate(p, request, quote.as_ref().unwrap_or(&sel)) {
                    DiscardReason::SaExpired { request }
                } else {
                    DiscardReason::NoSa { request }
                };
                return discard(Some(p), reason, none);
            }
            OutDecision::Protect(p, sas) => (p, sas),
        };
        let mut range = pkt.start..pkt.start + total;
        let mut trace = SaTrace::default();
        let mut outer = None;
        let mut header_len = 0;
        for e in sas.iter().flatten() {
            let sa = e.sa();
            let id = e.id();
            if sa.mode() == Mode::Transport
                && trace.is_empty()
                && (sa.src(), sa.dst()) != (h.src, h.dst)
            {
                trace.push(SaUse { id, seq: None });
                return discard(Some(policy), DiscardReason::AddressMismatch { id }, trace);
            }
            // The innermost SA takes the headers walked above; an outer one
            // walks what the inner one made.
            let done = if trace.is_empty() {
                sa.protect_parsed(buf, range.clone(), &h, iv)
            } else {
                sa.protect(buf, range.clone(), iv)
            };
            match done {
                Ok(done) => {
                    e.note_traffic(done.sent.bytes, now);
                    trace.push(SaUse {
                        id,
                        seq: Some(done.seq),
                    });
                    range = done.range;
                    header_len = done.header_len;
                    outer = Some(e);
                }
                Err(EspError::SequenceNumberOverflow { .. }) => {
                    e.mark_dead();
                    trace.push(SaUse { id, seq: None });
                    return discard(Some(policy), DiscardReason::SequenceExhausted { id }, trace);
                }
                Err(EspError::SequenceNotReserved { .. }) => {
                    trace.push(SaUse { id, seq: None });
                    return discard(
                        Some(policy),
                        DiscardReason::SequenceNotReserved { id },
                        trace,
                    );
                }
                Err(error) => {
                    trace.push(SaUse { id, seq: None });
                    return discard(Some(policy), DiscardReason::Transform { id, error }, trace);
                }
            }
        }
        let Some(outer) = outer else {
            return Outgoing::Bypass {
                policy: Some(policy.id),
            };
        };
        let sa = outer.sa();
        policy.stats.pass(total);
        Outgoing::Protected(Protected {
            packet: range,
            header_len,
            src: sa.src(),
            dst: sa.dst(),
            wire: match (sa.protocol(), sa.udp_encap()) {
                (Protocol::Esp, Some(u)) => Wire::EspInUdp {
                    sport: u.sport,
                    dport: u.dport,
                },
                (Protocol::Esp, None) => Wire::Esp,
                (Protocol::Ah, _) => Wire::Ah,
            },
            policy: policy.id,
            sas: trace,
        })
    }

    /// The outbound decision, ICMP errors mapped by their quote (RFC 4301
    /// §6.2; see the module documentation).
    fn decide_out_with_icmp(
        &self,
        sel: &PacketSelector,
        quote: Option<&PacketSelector>,
        now: Timestamp,
    ) -> OutDecision<'_> {
        let own = self.decide_out(sel, now);
        let Some(q) = quote else {
            return own;
        };
        match own {
            OutDecision::Protect(..) | OutDecision::Discard(_) => own,
            OutDecision::NoSa(..) => match self.decide_out(q, now) {
                flow @ OutDecision::Protect(..) => flow,
                _ => own,
            },
            OutDecision::Bypass(_) | OutDecision::NoPolicy => match self.decide_out(q, now) {
                flow @ (OutDecision::Protect(..)
                | OutDecision::Discard(_)
                | OutDecision::NoSa(..)) => flow,
                _ => own,
            },
        }
    }

    /// Whether a request without a usable SA has one that is past its hard
    /// lifetime (to tell "expired" from "missing").
    fn expired_candidate(&self, policy: &Policy, request: usize, sel: &PacketSelector) -> bool {
        let PolicyAction::Ipsec(reqs) = &policy.action else {
            return false;
        };
        let Some(r) = reqs.get(request) else {
            return false;
        };
        let (src, dst) = match r.endpoints {
            Some((s, d)) => (s.addr, d.addr),
            None => (sel.src, sel.dst),
        };
        let protocol = match r.protocol {
            crate::ast::ReqProtocol::Esp => Protocol::Esp,
            crate::ast::ReqProtocol::Ah => Protocol::Ah,
        };
        self.sad()
            .between(src, dst, protocol)
            .any(|e| (r.reqid == 0 || e.reqid() == r.reqid) && e.state() == crate::SaState::Dead)
    }

    /// Inbound processing (RFC 4301 §5.2) of the packet at `buf[range]`,
    /// which came in as `from` says.
    ///
    /// IPsec headers are removed one after the other (up to
    /// [`MAX_BUNDLE`] nested SAs), each SA found by (destination, protocol,
    /// SPI), its ICV verified, its replay window checked; then the inner
    /// packet must satisfy the first `in` policy that matches it. The
    /// result is the whole inner IP packet: for a header-stripped input in
    /// transport mode the engine writes its IP header, from the passed
    /// addresses, in front of the payload, which needs
    /// [`UNPROTECT_HEADROOM`] bytes before `range.start`.
    pub fn unprotect(
        &self,
        buf: &mut [u8],
        range: Range<usize>,
        from: Received,
        now: Timestamp,
    ) -> Incoming {
        let mut applied: [Option<&SaEntry>; MAX_BUNDLE] = [None; MAX_BUNDLE];
        let mut n = 0;
        let mut trace = SaTrace::default();
        let mut cur = range;
        let mut from = from;
        let mut non_esp = None;
        loop {
            // Where the next IPsec header is, if any.
            let step = match from {
                Received::Ip => {
                    let pkt = buf.get(cur.clone()).unwrap_or(&[]);
                    match self.locate(pkt, n == 0) {
                        Ok(Found::Ipsec(l)) => Step::Whole(l),
                        Ok(Found::Clear(udp)) => {
                            non_esp = udp;
                            break;
                        }
                        Err(e) => return dropped(DropReason::Malformed(e), trace),
                    }
                }
                Received::Payload { src, dst, protocol } => Step::Stripped { src, dst, protocol },
                Received::Udp { src, dst } => {
                    match classify(buf.get(cur.clone()).unwrap_or(&[])) {
                        Ok(UdpPayload::Esp) => {}
                        Ok(other) => return dropped(DropReason::NotEsp(other), trace),
                        Err(e) => return dropped(DropReason::Malformed(e), trace),
                    }
                    Step::Stripped {
                        src: src.ip(),
                        dst: dst.ip(),
                        protocol: Protocol::Esp,
                    }
                }
            };
            if n == MAX_BUNDLE {
                return dropped(DropReason::TooManyNested, trace);
            }
            let (protocol, dst, hdr) = match &step {
                Step::Whole(l) => (l.protocol, l.dst, cur.start + l.at),
                Step::Stripped { dst, protocol, .. } => (*protocol, *dst, cur.start),
            };
            let Some((spi, seql)) = spi_seq(buf.get(hdr..cur.end).unwrap_or(&[]), protocol) else {
                return dropped(
                    DropReason::Malformed(EspError::Truncated {
                        what: protocol.name(),
                        needed: 12,
                        got: cur.end.saturating_sub(hdr),
                    }),
                    trace,
                );
            };
            let header_seq = Some(u64::from(seql));
            let Some(e) = self.sad().lookup(dst, protocol, spi) else {
                let id = SaId { dst, protocol, spi };
                if let Step::Whole(IpsecHeader {
                    udp: true,
                    natt: false,
                    ..
                }) = step
                {
                    // A datagram on an ESP-in-UDP SA's port whose first
                    // word names no SA is that port's own traffic (RFC
                    // 3948 demultiplexes by port 4500 only): judged below.
                    break;
                }
                trace.push(SaUse {
                    id,
                    seq: header_seq,
                });
                return dropped(DropReason::UnknownSa { id }, trace);
            };
            let id = e.id();
            if e.hard_expired(now) {
                trace.push(SaUse {
                    id,
                    seq: header_seq,
                });
                return dropped(DropReason::SaExpired { id }, trace);
            }
            let result = match step {
                Step::Whole(l) => self.open_whole(e, buf, cur.clone(), &l),
                Step::Stripped { src, dst, protocol } => {
                    open_stripped(e, buf, cur.clone(), src, dst, protocol)
                }
            };
            match result {
                Ok((inner, seq, received)) => {
                    e.note_traffic(received, now);
                    trace.push(SaUse { id, seq: Some(seq) });
                    if let Some(slot) = applied.get_mut(n) {
                        *slot = Some(e);
                    }
                    n += 1;
                    cur = inner;
                    from = Received::Ip;
                }
                Err(error) => {
                    trace.push(SaUse {
                        id,
                        seq: header_seq,
                    });
                    let reason = match error {
                        EspError::IcvMismatch { .. } => {
                            e.record_icv_failure();
                            DropReason::Icv { id }
                        }
                        EspError::ReplayedSequence { .. } | EspError::SequenceTooOld { .. } => {
                            e.record_replay_drop();
                            DropReason::Replay { id, error }
                        }
                        error => DropReason::Decap { id, error },
                    };
                    return dropped(reason, trace);
                }
            }
        }
        // RFC 4301 §5.2 step 4: the inner packet against the inbound policy.
        let inner = buf.get(cur.clone()).unwrap_or(&[]);
        let h = match wire::parse(inner) {
            Ok(h) => h,
            Err(e) => return dropped(DropReason::Malformed(e), trace),
        };
        let packet = cur.start..cur.start + h.total_len;
        let sel = selector_fields(&h, inner);
        let sas = applied.get(..n).unwrap_or(&[]);
        let own = self.check_in(&sel, sas, now);
        let decision = match icmp_quote(&h, &sel, inner) {
            None => Ok(own),
            Some(q) => self.icmp_in(own, &q, sas, now),
        };
        match decision {
            Ok(InDecision::Accept(None))
                if self.tunnel_needs_policy
                    && sas.iter().flatten().any(|e| e.sa().mode() == Mode::Tunnel) =>
            {
                dropped(DropReason::NoPolicy, trace)
            }
            Ok(InDecision::Accept(policy)) => {
                if let Some(p) = policy {
                    p.stats.pass(h.total_len);
                }
                Incoming::Deliver(Deliver {
                    packet,
                    policy: policy.map(|p| p.id),
                    sas: trace,
                    non_esp,
                })
            }
            Ok(InDecision::Reject(p)) => {
                p.stats.drop_one();
                let reason = if n == 0 && is_ipsec(p) {
                    DropReason::ClearRefused { policy: p.id }
                } else {
                    DropReason::Policy { policy: p.id }
                };
                dropped(reason, trace)
            }
            Err(policy) => {
                if let Some(p) = policy {
                    p.stats.drop_one();
                }
                dropped(
                    DropReason::IcmpQuote {
                        policy: policy.map(|p| p.id),
                    },
                    trace,
                )
            }
        }
    }

    /// The inbound decision for an ICMP error (RFC 4301 §6.2; see the
    /// module documentation). `Err` names the quoted flow's policy when the
    /// quote is not consistent with the SAs the error came through.
    fn icmp_in<'a>(
        &'a self,
        own: InDecision<'a>,
        quote: &PacketSelector,
        sas: &[Option<&SaEntry>],
        now: Timestamp,
    ) -> Result<InDecision<'a>, Option<&'a Policy>> {
        match own {
            InDecision::Accept(Some(p)) if is_ipsec(p) => return Ok(own),
            InDecision::Reject(p) if matches!(p.action, PolicyAction::Discard) => return Ok(own),
            _ => {}
        }
        match self.check_in(quote, sas, now) {
            InDecision::Reject(q) => Err(Some(q)),
            flow @ InDecision::Accept(Some(q)) if is_ipsec(q) => Ok(flow),
            InDecision::Accept(q) => {
                if sas.is_empty() {
                    Ok(own)
                } else {
                    // Came through SAs, but quotes a flow no SA protects.
                    Err(q)
                }
            }
        }
    }

    /// The IPsec header of a whole IP packet: ESP, AH, or ESP in UDP on
    /// port 4500 or a port of an ESP-in-UDP SA (RFC 3948 §2); anything
    /// else is clear (an IKE message or a NAT-keepalive on such a port is
    /// named).
    ///
    /// ESP in UDP is looked for in the received packet only (`outer`):
    /// after an SA is removed, a UDP datagram on the same ports is the
    /// traffic it carried (e.g. SIP on the sec-agree ports).
    fn locate(&self, pkt: &[u8], outer: bool) -> Result<Found, EspError> {
        let h = wire::parse(pkt)?;
        let c = h.inbound;
        if h.fragment != Fragment::No {
            // Not IPsec to remove: an outer fragment is reassembled before
            // IPsec (RFC 4301 §5.2), an inner one of tunnel mode is a packet
            // like any other. The policy check judges it.
            return Ok(Found::Clear(None));
        }
        let mut natt = false;
        let (protocol, at, udp) = match c.next_header {
            proto::ESP => (Protocol::Esp, c.header_len, false),
            proto::AH => (Protocol::Ah, c.header_len, false),
            proto::UDP if outer => {
                let l4 = pkt.get(c.header_len..c.total_len).unwrap_or(&[]);
                let [a, b, x, y, _, _, _, _, payload @ ..] = l4 else {
                    return Ok(Found::Clear(None));
                };
                let sport = u16::from_be_bytes([*a, *b]);
                let dport = u16::from_be_bytes([*x, *y]);
                natt = sport == NATT_PORT || dport == NATT_PORT;
                let sa_port = |p: u16| self.sad().is_udp_encap_port(p);
                if !(natt || sa_port(sport) || sa_port(dport)) {
                    return Ok(Found::Clear(None));
                }
                match classify(payload) {
                    Ok(UdpPayload::Esp) => {}
                    Ok(other) => return Ok(Found::Clear(Some(other))),
                    Err(_) => return Ok(Found::Clear(None)),
                }
                (Protocol::Esp, c.header_len + wire::UDP_HEADER_LEN, true)
            }
            _ => return Ok(Found::Clear(None)),
        };
        Ok(Found::Ipsec(IpsecHeader {
            protocol,
            at,
            udp,
            natt,
            version: c.version,
            dst: h.dst,
            header_len: c.header_len,
            nh_offset: c.nh_offset,
            total_len: c.total_len,
        }))
    }

    /// Decapsulates a whole IP packet at `buf[cur]` with `e`: (where the
    /// result is, its sequence number, the bytes the SA received so far).
    fn open_whole(
        &self,
        e: &SaEntry,
        buf: &mut [u8],
        mut cur: Range<usize>,
        l: &IpsecHeader,
    ) -> Result<(Range<usize>, u64, u64), EspError> {
        if l.udp && e.sa().udp_encap().is_none() {
            // ESP in UDP for an SA installed as plain `esp` (as strongSwan's
            // libipsec uses them): remove the UDP header so the packet is
            // plain ESP. The ICV covers the ESP packet only (RFC 4303 §2),
            // so this changes nothing that is authenticated.
            let start = cur.start;
            buf.copy_within(start..start + l.header_len, start + wire::UDP_HEADER_LEN);
            cur.start += wire::UDP_HEADER_LEN;
            let total = l.total_len - wire::UDP_HEADER_LEN;
            let p = buf.get_mut(cur.start..cur.start + total).unwrap_or(&mut []);
            if let Some(b) = p.get_mut(l.nh_offset) {
                *b = proto::ESP;
            }
            wire::fix_ip_length(p, l.version, total)?;
            cur.end = cur.start + total;
        } else {
            cur.end = cur.start + l.total_len;
        }
        let udp = l.udp && e.sa().udp_encap().is_some();
        let chain = wire::HeaderChain {
            version: l.version,
            header_len: l.header_len,
            nh_offset: l.nh_offset,
            next_header: match (l.protocol, udp) {
                (_, true) => proto::UDP,
                (Protocol::Esp, false) => proto::ESP,
                (Protocol::Ah, false) => proto::AH,
            },
            total_len: cur.len(),
        };
        let p = buf.get_mut(cur.clone()).unwrap_or(&mut []);
        let d = e.sa().decap_located(p, &chain)?;
        Ok((
            cur.start + d.range.start..cur.start + d.range.end,
            d.seq,
            d.received.bytes,
        ))
    }
}

/// What [`Databases::locate`] found in a whole packet.
enum Found {
    Ipsec(IpsecHeader),
    /// Not IPsec (and what a UDP datagram on an ESP-in-UDP port held
    /// instead of ESP).
    Clear(Option<UdpPayload>),
}

/// Where the next IPsec header of a received packet is.
enum Step {
    /// In a whole IP packet.
    Whole(IpsecHeader),
    /// At the start of a header-stripped payload.
    Stripped {
        src: IpAddr,
        dst: IpAddr,
        protocol: Protocol,
    },
}

/// The SPI and (low 32 bits of the) sequence number of an ESP or AH header.
fn spi_seq(hdr: &[u8], protocol: Protocol) -> Option<(Spi, u32)> {
    let at = |i: usize| -> Option<u32> {
        let b = hdr.get(i..i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    match protocol {
        // RFC 4303 §2: SPI, Sequence Number.
        Protocol::Esp => Some((Spi(at(0)?), at(4)?)),
        // RFC 4302 §2: Next Header, Payload Len, Reserved, SPI, Sequence Number.
        Protocol::Ah => Some((Spi(at(4)?), at(8)?)),
    }
}

/// Decapsulates a header-stripped ESP or AH payload at `buf[cur]` that came
/// from `src` to `dst`: (where the whole inner IP packet is, its sequence
/// number, the bytes the SA received so far).
fn open_stripped(
    e: &SaEntry,
    buf: &mut [u8],
    cur: Range<usize>,
    src: IpAddr,
    dst: IpAddr,
    protocol: Protocol,
) -> Result<(Range<usize>, u64, u64), EspError> {
    let no_room = || EspError::BufferTooSmall {
        needed: UNPROTECT_HEADROOM,
        got: cur.start,
    };
    let hl = if src.is_ipv4() {
        wire::IPV4_HEADER_LEN
    } else {
        wire::IPV6_HEADER_LEN
    };
    if protocol == Protocol::Ah {
        // AH's ICV covers the IP header (RFC 4302 §3.3.3.1): rebuild it in
        // front, then decapsulate the whole packet.
        let start = cur.start.checked_sub(hl).ok_or_else(no_room)?;
        let total = cur.end - start;
        let head = buf.get_mut(start..cur.start).ok_or_else(no_room)?;
        wire::emit_ip_header(head, src, dst, proto::AH, total)
            .ok_or(EspError::PacketTooLong { len: total })?;
        let p = buf.get_mut(start..cur.end).unwrap_or(&mut []);
        let d = e.sa().decap(p)?;
        return Ok((
            start + d.range.start..start + d.range.end,
            d.seq,
            d.received.bytes,
        ));
    }
    let esp = buf.get_mut(cur.clone()).unwrap_or(&mut []);
    let d = e.sa().decap_esp(esp)?;
    let payload = cur.start + d.range.start..cur.start + d.range.end;
    match e.sa().mode() {
        // The Payload Data is the inner IP packet (checked by the SA).
        Mode::Tunnel => Ok((payload, d.seq, d.received.bytes)),
        Mode::Transport => {
            let start = payload.start.checked_sub(hl).ok_or_else(no_room)?;
            let total = payload.end - start;
            let head = buf.get_mut(start..payload.start).ok_or_else(no_room)?;
            wire::emit_ip_header(head, src, dst, d.next_header, total)
                .ok_or(EspError::PacketTooLong { len: total })?;
            Ok((start..payload.end, d.seq, d.received.bytes))
        }
    }
}

/// The databases behind the data path: the current snapshot, shared by
/// the threads that process packets, and the changes, which build a new
/// snapshot and swap it in.
///
/// Readers ([`Engine::reader`]) check one atomic generation number per
/// packet and take the lock only when it changed; no lock is held while a
/// packet is processed. A change ([`Engine::apply`]) clones the current
/// databases (the SAs and policies themselves are shared, `Arc`), applies
/// the statements to the clone all or nothing, and publishes it: SAs and
/// policies that the new snapshot keeps carry their sequence counters,
/// replay windows and counters over unchanged, since they are the same
/// objects. Changes are serialized among themselves.
#[derive(Debug)]
pub struct Engine {
    current: RwLock<Arc<Databases>>,
    generation: AtomicU64,
    writer: Mutex<()>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(Databases::new())
    }
}

impl Engine {
    /// An engine serving `db`.
    pub fn new(db: Databases) -> Engine {
        Engine {
            current: RwLock::new(Arc::new(db)),
            generation: AtomicU64::new(0),
            writer: Mutex::new(()),
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Databases> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    fn publish(&self, db: Databases) {
        let mut g = self.current.write().unwrap_or_else(|p| p.into_inner());
        *g = Arc::new(db);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Changes the databases with `f` on a copy of the current snapshot and
    /// publishes the copy if `f` succeeds; on error nothing changes.
    pub fn update<R, E>(&self, f: impl FnOnce(&mut Databases) -> Result<R, E>) -> Result<R, E> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = (*self.snapshot()).clone();
        let r = f(&mut next)?;
        self.publish(next);
        Ok(r)
    }

    /// [`Databases::apply`] on the engine's databases, all or nothing.
    pub fn apply(
        &self,
        stmts: &[Located<Statement>],
        now: Timestamp,
    ) -> Result<Vec<Output>, Error> {
        self.update(|db| db.apply(stmts, now))
    }

    /// Lifetimes at `now` ([`Databases::expire`]): soft events are recorded
    /// in place; a new snapshot is published only when an SA is removed.
    pub fn expire(&self, now: Timestamp) -> Vec<ExpireEvent> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.snapshot();
        if !cur.sad().any_hard_expired(now) {
            return cur.sad().expire_soft(now);
        }
        let mut next = (*cur).clone();
        let events = next.expire(now);
        self.publish(next);
        events
    }

    /// A per-thread view that follows the current snapshot.
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            engine: self,
            generation: self.generation.load(Ordering::Acquire),
            db: self.snapshot(),
        }
    }
}

/// One thread's view of an [`Engine`]: the snapshot it processes packets
/// with, refreshed when the engine published a new one.
#[derive(Debug)]
pub struct Reader<'a> {
    engine: &'a Engine,
    generation: u64,
    db: Arc<Databases>,
}

impl Reader<'_> {
    /// The current snapshot (one atomic load when nothing changed).
    pub fn current(&mut self) -> &Databases {
        let g = self.engine.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.db = self.engine.snapshot();
            self.generation = g;
        }
        &self.db
    }
}
