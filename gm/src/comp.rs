//! SigComp on the Gm interface (RFC 3486, RFC 5049, TS 24.229 §8.1.1 as
//! 3gpp-notes.md sums it up): which messages are compressed, which
//! compartment they use, and when a received message may create states.
//!
//! [`Compression`] wraps a [`sigcomp::Endpoint`] with the rules of Gm:
//!
//! - one compartment per UE–P-CSCF association, named by the caller (for
//!   example the UE's `sigcomp-id` and the SA set), opened only once the
//!   association's SAs exist ([`Compression::open`]): the initial
//!   REGISTER and its 401 travel uncompressed;
//! - [`Compression::send`] compresses for an open association and sends
//!   plain otherwise; an association opened with
//!   [`Compression::open_sas_when_signalled`] (the P-CSCF's side: it
//!   cannot know whether a UE speaks SigComp) compresses only once the
//!   peer has shown it does (RFC 3486 §4): a SigComp message that came
//!   over its SAs, or a request over them whose top Via has
//!   `comp=sigcomp` ([`signals_sigcomp`], [`Compression::peer_signalled`]);
//! - [`Compression::receive`] decompresses whatever comes, but saves a
//!   message's states and believes its feedback (or a NACK) only when the
//!   caller says it arrived over the association's SAs: an unprotected
//!   message can be read, never trusted (RFC 3320 §4.3);
//! - the state memory offered is at least 4096 bytes;
//! - [`Compression::close`] reclaims the compartment when the
//!   registration ends (RFC 5049 §9.3).
//!
//! [`mark_via`] and [`mark_contact`] write `comp=sigcomp` and the
//! `sigcomp-id` (RFC 5049 §9.1: the `+sip.instance` URN,
//! [`sigcomp_id_from_instance`]) into a message we send.

use std::collections::HashMap;
use std::net::SocketAddr;

use sigcomp::{Accepted, CompartmentId, Endpoint, EndpointConfig, Link, Received};

use crate::reg::{SaSet, Side};
use crate::sip::header::Via;
use crate::sip::{Error as SipError, HeaderName, Message};

/// The least state memory a Gm endpoint offers (TS 24.229 §8.1.1).
pub const MIN_STATE_MEMORY: u32 = 4096;

/// Why the layer refused.
#[derive(Debug)]
pub enum CompError {
    /// The SigComp endpoint refused (a configuration it cannot run, a
    /// message too large for a stream).
    SigComp(sigcomp::Error),
    /// A state memory below [`MIN_STATE_MEMORY`].
    StateMemoryTooSmall(u32),
    /// The message has no Via or Contact to mark, or a malformed one.
    Message(SipError),
}

impl std::fmt::Display for CompError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompError::SigComp(e) => write!(f, "{e}"),
            CompError::StateMemoryTooSmall(n) => write!(
                f,
                "state memory {n} is below the {MIN_STATE_MEMORY} bytes Gm requires"
            ),
            CompError::Message(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CompError {}

impl From<sigcomp::Error> for CompError {
    fn from(e: sigcomp::Error) -> Self {
        CompError::SigComp(e)
    }
}

impl From<SipError> for CompError {
    fn from(e: SipError) -> Self {
        CompError::Message(e)
    }
}

/// What [`Compression::send`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outbound {
    /// Bytes on the wire.
    pub len: usize,
    /// Whether they are SigComp (else the plain message).
    pub compressed: bool,
}

/// What [`Compression::receive`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A SIP message: plain, or decompressed.
    Message {
        /// The SIP bytes.
        bytes: Vec<u8>,
        /// Whether it came as SigComp.
        compressed: bool,
        /// Whether its states were saved and its feedback believed (it
        /// came over the association's SAs).
        trusted: bool,
    },
    /// A SigComp message that only carried feedback.
    FeedbackOnly {
        /// Whether it was believed.
        trusted: bool,
    },
    /// A SigComp message that failed: send the NACK back, if any
    /// (RFC 4077), and drop it.
    Failed {
        /// Why (the RFC 4077 reason).
        reason: String,
        /// The NACK to send to the peer.
        nack: Option<Vec<u8>>,
    },
    /// A NACK from the peer.
    Nack {
        /// Whether it named a message we sent and was applied (only over
        /// the SAs).
        applied: bool,
    },
}

/// SigComp for the associations of one Gm endpoint (a UE, or a P-CSCF).
#[derive(Debug)]
pub struct Compression {
    endpoint: Endpoint,
    associations: HashMap<String, CompartmentId>,
    /// How many associations name each compartment: more than one while
    /// an SA handover has the old set and the new one share it
    /// ([`Compression::hand_over_sas`]).
    names: HashMap<CompartmentId, u32>,
    /// The peer's protected addresses -> the association they belong to.
    peers: HashMap<SocketAddr, String>,
    /// Open associations whose peer has not shown yet that it speaks
    /// SigComp: sent to in plain.
    waiting: std::collections::HashSet<String>,
    next: u64,
}

impl Compression {
    /// A layer with this SigComp configuration; its state memory must be
    /// at least [`MIN_STATE_MEMORY`].
    pub fn new(config: EndpointConfig) -> Result<Compression, CompError> {
        let sms = config.local.state_memory_size;
        if sms < MIN_STATE_MEMORY {
            return Err(CompError::StateMemoryTooSmall(sms));
        }
        // The peer is a Gm endpoint too: it offers at least as much (TS
        // 24.229 §8.1.1), before it announces its own parameters.
        let mut config = config;
        config.peer.state_memory_size = config.peer.state_memory_size.max(MIN_STATE_MEMORY);
        Ok(Compression {
            endpoint: Endpoint::new(config)?,
            associations: HashMap::new(),
            names: HashMap::new(),
            peers: HashMap::new(),
            waiting: std::collections::HashSet::new(),
            next: 1,
        })
    }

    /// Runs `sample` through the endpoint's compressor and decompressor
    /// once, keeping nothing ([`Endpoint::warm_up`]): at start, so that
    /// the first real message does not pay the process's first-use costs.
    pub fn warm_up(&mut self, sample: &[u8]) {
        self.endpoint.warm_up(sample);
    }

    /// The SigComp endpoint (counters, states), for reports.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Opens the compartment of `association`, once its SAs exist; from
    /// then on [`Compression::send`] compresses for it.
    pub fn open(&mut self, association: &str) -> CompartmentId {
        if let Some(cid) = self.associations.get(association) {
            return *cid;
        }
        let cid = CompartmentId(self.next);
        self.next += 1;
        self.endpoint.open(cid);
        self.associations.insert(association.to_owned(), cid);
        self.names.insert(cid, 1);
        cid
    }

    /// Opens the compartment of the association an SA set protects (seen
    /// from the set's side), once the set is installed; its name
    /// ([`association`]). Datagrams from, and messages to, the peer's
    /// port-c and port-s belong to it ([`Compression::association_of`]).
    pub fn open_sas(&mut self, set: &SaSet) -> String {
        let name = association(set);
        self.open(&name);
        self.add_peers(set, &name);
        name
    }

    /// An SA handover at re-registration (the same peer, authenticated
    /// again, over a new set beside the one in use): the compartment of
    /// `old`'s association goes on over `new`, its states and what the
    /// peer acknowledged kept, as the peer's does (RFC 5049 §5: a
    /// compartment is the peer application's, not a transport's), rather
    /// than starting over with a bytecode upload and no history. Both
    /// sets' messages use it until [`Compression::close_sas`] of the old
    /// one, which leaves it open. Without `old` open, as
    /// [`Compression::open_sas`]; whether the peer must still show it
    /// speaks SigComp carries over. Returns `new`'s association name.
    pub fn hand_over_sas(&mut self, old: &SaSet, new: &SaSet) -> String {
        let (from, name) = (association(old), association(new));
        let Some(cid) = self.associations.get(&from).copied() else {
            return self.open_sas(new);
        };
        if from != name && !self.associations.contains_key(&name) {
            self.associations.insert(name.clone(), cid);
            *self.names.entry(cid).or_insert(0) += 1;
            if self.waiting.contains(&from) {
                self.waiting.insert(name.clone());
            }
        }
        self.add_peers(new, &name);
        name
    }

    /// Maps the peer's port-c and port-s of `set` to `name`.
    fn add_peers(&mut self, set: &SaSet, name: &str) {
        for peer in peer_addrs(set) {
            self.peers.insert(peer, name.to_owned());
        }
    }

    /// As [`Compression::open_sas`], but what is sent to the peer stays
    /// plain until it shows it speaks SigComp (RFC 3486 §4): a SigComp
    /// message over the SAs, or [`Compression::peer_signalled`]. For the
    /// P-CSCF, which opens a compartment for every UE it installs SAs for.
    pub fn open_sas_when_signalled(&mut self, set: &SaSet) -> String {
        let fresh = !self.associations.contains_key(&association(set));
        let name = self.open_sas(set);
        if fresh {
            self.waiting.insert(name.clone());
        }
        name
    }

    /// The peer of `association` showed it speaks SigComp (a request over
    /// its SAs whose top Via has `comp=sigcomp`): compress for it from now
    /// on.
    pub fn peer_signalled(&mut self, association: &str) {
        self.waiting.remove(association);
    }

    /// Whether what goes to the peer of `association` is compressed: its
    /// compartment is open and the peer has not to show support first.
    pub fn compresses(&self, association: &str) -> bool {
        self.associations.contains_key(association) && !self.waiting.contains(association)
    }

    /// Closes the compartment of an SA set's association (the SAs are
    /// removed: the registration ended), unless a handover passed it on
    /// to another set ([`Compression::hand_over_sas`]): then only this
    /// set's name and peer addresses go.
    pub fn close_sas(&mut self, set: &SaSet) {
        let name = association(set);
        // The name says the set's peer addresses (its peer's address,
        // port-c and port-s): the only ones mapped to it.
        for peer in peer_addrs(set) {
            if self.peers.get(&peer) == Some(&name) {
                self.peers.remove(&peer);
            }
        }
        self.close(&name);
    }

    /// The open association a peer's protected address (its port-c or
    /// port-s) belongs to: the one to compress for when sending there,
    /// and, for a datagram that came from there over the SAs, the one
    /// whose states it may create.
    pub fn association_of(&self, peer: SocketAddr) -> Option<&str> {
        self.peers
            .get(&peer)
            .map(String::as_str)
            .filter(|a| self.associations.contains_key(*a))
    }

    /// Whether `association` compresses.
    pub fn is_open(&self, association: &str) -> bool {
        self.associations.contains_key(association)
    }

    /// Closes the compartment of `association` (deregistration): its
    /// states go, unless another association still names it.
    pub fn close(&mut self, association: &str) {
        self.waiting.remove(association);
        if let Some(cid) = self.associations.remove(association) {
            let left = self.names.get(&cid).map_or(0, |n| n.saturating_sub(1));
            if left == 0 {
                self.names.remove(&cid);
                self.endpoint.close(cid);
            } else {
                self.names.insert(cid, left);
            }
        }
    }

    /// Writes into `out` what to send for `message` to the peer of
    /// `association`: SigComp if it compresses ([`Compression::compresses`])
    /// and the message goes through the association's SAs (`over_sas`),
    /// the message as it is otherwise. A compartment lives over the SAs
    /// (TS 24.229 §8.1.1): what leaves unprotected, such as a response to
    /// a request that came in clear to the plain port, is never
    /// compressed, even to a peer with an association.
    pub fn send(
        &mut self,
        association: &str,
        message: &[u8],
        link: Link,
        over_sas: bool,
        out: &mut Vec<u8>,
    ) -> Result<Outbound, CompError> {
        let cid = self
            .associations
            .get(association)
            .filter(|_| over_sas && !self.waiting.contains(association));
        match cid {
            Some(cid) => {
                let sent = self.endpoint.send(*cid, message, link, out)?;
                Ok(Outbound {
                    len: sent.len,
                    compressed: sent.compressed.kind != sigcomp::compress::Kind::Plain,
                })
            }
            None => {
                out.clear();
                out.extend_from_slice(message);
                Ok(Outbound {
                    len: out.len(),
                    compressed: false,
                })
            }
        }
    }

    /// Reads what arrived on `link`. `over_sas` names the association
    /// whose SAs it came through, `None` if it came unprotected: only then
    /// are its states saved and its feedback believed. On a stream, call
    /// again with no bytes until `None` for the next message.
    pub fn receive(&mut self, bytes: &[u8], link: Link, over_sas: Option<&str>) -> Option<Inbound> {
        let received = self.endpoint.receive(bytes, link)?;
        let cid = over_sas.and_then(|a| self.associations.get(a).copied());
        let accepted = cid.map(|cid| self.endpoint.accept(cid, &received));
        // SigComp that came over the SAs: the peer speaks it.
        if let (Some(a), Received::Message(_)) = (over_sas.filter(|_| cid.is_some()), &received) {
            self.waiting.remove(a);
        }
        Some(match received {
            Received::Plain(bytes) => Inbound::Message {
                bytes,
                compressed: false,
                trusted: false,
            },
            Received::Message(m) => {
                let trusted = accepted.is_some();
                match m.into_message() {
                    Some(bytes) => Inbound::Message {
                        bytes,
                        compressed: true,
                        trusted,
                    },
                    None => Inbound::FeedbackOnly { trusted },
                }
            }
            Received::Failed(f) => Inbound::Failed {
                reason: format!("{:?}", f.reason),
                nack: f.nack().map(<[u8]>::to_vec),
            },
            Received::Nack(_) => Inbound::Nack {
                applied: matches!(accepted, Some(Accepted::Nack(_))),
            },
            _ => Inbound::Failed {
                reason: "not a SigComp message this endpoint reads".to_owned(),
                nack: None,
            },
        })
    }
}

/// The peer's protected addresses of `set` (its port-c and port-s), as
/// seen from the set's side.
fn peer_addrs(set: &SaSet) -> [SocketAddr; 2] {
    let (addr, offer) = match set.side() {
        Side::Ue => (set.pcscf_addr(), set.pcscf_offer()),
        Side::Network => (set.ue_addr(), set.ue_offer()),
    };
    [
        SocketAddr::new(addr, offer.port_c),
        SocketAddr::new(addr, offer.port_s),
    ]
}

/// The name of the UE–P-CSCF association an SA set protects: the UE's
/// and the P-CSCF's addresses with their port-c/port-s (the same on both
/// sides, and across SA sets that renew it on the same ports).
pub fn association(set: &SaSet) -> String {
    let (ue, pcscf) = (set.ue_offer(), set.pcscf_offer());
    format!(
        "ue {} {}/{} pcscf {} {}/{}",
        set.ue_addr(),
        ue.port_c,
        ue.port_s,
        set.pcscf_addr(),
        pcscf.port_c,
        pcscf.port_s
    )
}

/// The SigComp identifier of an instance (RFC 5049 §9.1): the URN of a
/// `+sip.instance` value, without its quotes and angle brackets.
///
/// ```
/// assert_eq!(
///     gm::comp::sigcomp_id_from_instance("\"<urn:gsma:imei:35209900-176148-0>\"").as_deref(),
///     Some("urn:gsma:imei:35209900-176148-0")
/// );
/// ```
pub fn sigcomp_id_from_instance(instance: &str) -> Option<String> {
    let s = instance.trim().trim_matches('"').trim();
    let s = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    (s.len() > 4 && s[..4].eq_ignore_ascii_case("urn:") && !s.contains(['"', '\\', '<', '>']))
        .then(|| s.to_owned())
}

/// Whether a request's top Via has `comp=sigcomp` (RFC 3486 §4): its
/// sender asks for compressed responses, so speaks SigComp.
pub fn signals_sigcomp(request: &Message<'_>) -> bool {
    request.top_via().is_ok_and(|v| {
        v.params.0.iter().any(|p| {
            p.name.eq_ignore_ascii_case("comp")
                && p.value.is_some_and(|x| x.eq_ignore_ascii_case("sigcomp"))
        })
    })
}

/// Adds `comp=sigcomp` and `sigcomp-id="URN"` to the top Via of a request
/// we send (RFC 3486 §4, RFC 5049 §9.1), replacing any earlier values.
pub fn mark_via(request: &mut Message<'_>, sigcomp_id: &str) -> Result<(), CompError> {
    let index = request
        .headers()
        .iter()
        .position(|h| h.kind() == HeaderName::Via)
        .ok_or(SipError::Missing(HeaderName::Via))?;
    let row = request
        .headers()
        .get(index)
        .map(|h| h.value().to_owned())
        .unwrap_or_default();
    let vias = Via::parse_list(&row).map_err(|syntax| SipError::Header {
        name: HeaderName::Via,
        syntax,
    })?;
    let Some(top) = vias.first() else {
        return Err(SipError::Missing(HeaderName::Via).into());
    };
    let quoted = format!("\"{sigcomp_id}\"");
    let mut first = top.clone();
    first.params.0.retain(|p| {
        !p.name.eq_ignore_ascii_case("comp") && !p.name.eq_ignore_ascii_case("sigcomp-id")
    });
    first.params.0.push(crate::sip::Param {
        name: "comp",
        value: Some("sigcomp"),
    });
    first.params.0.push(crate::sip::Param {
        name: "sigcomp-id",
        value: Some(&quoted),
    });
    let mut value = first.to_string();
    for v in vias.iter().skip(1) {
        value.push_str(", ");
        value.push_str(&v.to_string());
    }
    request.replace_header(index, value)?;
    Ok(())
}

/// Adds `comp=sigcomp` and `sigcomp-id=URN` to the URI of the first
/// Contact (RFC 3486 §5, RFC 5049 §9.1), so the peer compresses what it
/// sends there.
pub fn mark_contact(message: &mut Message<'_>, sigcomp_id: &str) -> Result<(), CompError> {
    let index = message
        .headers()
        .iter()
        .position(|h| h.kind() == HeaderName::Contact)
        .ok_or(SipError::Missing(HeaderName::Contact))?;
    let row = message
        .headers()
        .get(index)
        .map(|h| h.value().to_owned())
        .unwrap_or_default();
    // The first contact's URI is between its first '<' and '>' (the
    // grammar puts URI parameters there); a bare URI gets brackets.
    let (Some(open), Some(close)) = (row.find('<'), row.find('>')) else {
        return Err(SipError::Missing(HeaderName::Contact).into());
    };
    if close < open {
        return Err(SipError::Missing(HeaderName::Contact).into());
    }
    let uri = row.get(open + 1..close).unwrap_or_default();
    let kept: Vec<&str> = uri
        .split(';')
        .filter(|p| {
            let name = p.split('=').next().unwrap_or_default().trim();
            !name.eq_ignore_ascii_case("comp") && !name.eq_ignore_ascii_case("sigcomp-id")
        })
        .collect();
    let new_uri = format!("{};comp=sigcomp;sigcomp-id={sigcomp_id}", kept.join(";"));
    let value = format!(
        "{}<{new_uri}>{}",
        row.get(..open).unwrap_or_default(),
        row.get(close + 1..).unwrap_or_default()
    );
    message.replace_header(index, value)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &[u8] = b"REGISTER sip:ims.example.org SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKr1;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@ims.example.org>;tag=1\r\n\
To: <sip:alice@ims.example.org>\r\n\
Call-ID: reg1\r\nCSeq: 2 REGISTER\r\n\
Contact: <sip:alice@192.0.2.1:5062>;+sip.instance=\"<urn:uuid:2e5fdc76-00be-4314-8202-1116fa82a473>\";expires=600000\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn marks_via_and_contact() {
        let mut m = Message::parse(REGISTER).unwrap();
        let instance = m.contacts().unwrap().unwrap();
        let crate::sip::header::Contacts::List(l) = instance else {
            panic!()
        };
        let id = sigcomp_id_from_instance(&l[0].sip_instance().unwrap()).unwrap();
        assert_eq!(id, "urn:uuid:2e5fdc76-00be-4314-8202-1116fa82a473");
        mark_via(&mut m, &id).unwrap();
        mark_contact(&mut m, &id).unwrap();
        let bytes = m.to_bytes();
        let m = Message::parse(&bytes).unwrap();
        let via = m.top_via().unwrap();
        assert_eq!(via.comp(), Some("sigcomp"));
        assert_eq!(
            via.params.unquoted("sigcomp-id").as_deref(),
            Some(id.as_str())
        );
        assert_eq!(via.rport, crate::sip::header::Rport::Requested);
        let crate::sip::header::Contacts::List(l) = m.contacts().unwrap().unwrap() else {
            panic!()
        };
        let crate::sip::Uri::Sip(u) = &l[0].uri else {
            panic!()
        };
        assert_eq!(u.params.value("comp"), Some("sigcomp"));
        assert_eq!(u.params.value("sigcomp-id"), Some(id.as_str()));
        assert!(l[0].sip_instance().is_some());
        // Marking twice changes nothing more.
        let mut again = m.clone();
        mark_via(&mut again, &id).unwrap();
        mark_contact(&mut again, &id).unwrap();
        assert_eq!(Message::parse(&again.to_bytes()).unwrap().to_bytes(), bytes);
    }

    /// One SA set as each side sees it.
    fn sa_sets() -> (SaSet, SaSet) {
        sa_sets_with(
            "ipsec-3gpp; alg=hmac-md5-96; spi-c=1111; spi-s=2222; port-c=5062; port-s=5064",
            "ipsec-3gpp; alg=hmac-md5-96; spi-c=3333; spi-s=4444; port-c=5066; port-s=5068",
        )
    }

    /// The SA set of these offers (UE's, P-CSCF's) as each side sees it.
    fn sa_sets_with(ue: &str, pcscf: &str) -> (SaSet, SaSet) {
        let offer = |m: &str| {
            let list = crate::sip::header::SecMechanism::parse_list(m).unwrap();
            crate::reg::IpsecOffer::from_mechanism(&list[0]).unwrap()
        };
        let a = crate::reg::Agreement {
            ue_addr: "192.0.2.1".parse().unwrap(),
            pcscf_addr: "192.0.2.2".parse().unwrap(),
            ue: offer(ue),
            pcscf: offer(pcscf),
        };
        let life = std::time::Duration::from_secs(600);
        (
            SaSet::new(Side::Ue, &a, &[1; 16], &[2; 16], life).unwrap(),
            SaSet::new(Side::Network, &a, &[1; 16], &[2; 16], life).unwrap(),
        )
    }

    #[test]
    fn an_sa_set_names_its_association_and_its_peers_addresses() {
        let (ue_set, net_set) = sa_sets();
        let cfg = EndpointConfig::default();
        let (mut ue, mut pcscf) = (
            Compression::new(cfg.clone()).unwrap(),
            Compression::new(cfg).unwrap(),
        );
        let name = ue.open_sas(&ue_set);
        assert_eq!(name, pcscf.open_sas(&net_set), "one name on both sides");
        // The UE compresses for the P-CSCF's port-c and port-s, the
        // P-CSCF for the UE's; nothing else (a plain port) belongs to it.
        for port in [5066, 5068] {
            let peer = SocketAddr::new("192.0.2.2".parse().unwrap(), port);
            assert_eq!(ue.association_of(peer), Some(name.as_str()));
        }
        for port in [5062, 5064] {
            let peer = SocketAddr::new("192.0.2.1".parse().unwrap(), port);
            assert_eq!(pcscf.association_of(peer), Some(name.as_str()));
        }
        assert_eq!(ue.association_of("192.0.2.2:5060".parse().unwrap()), None);
        assert_eq!(ue.association_of("192.0.2.1:5062".parse().unwrap()), None);
        // Removing the SAs closes the compartment: plain from then on.
        ue.close_sas(&ue_set);
        assert!(!ue.is_open(&name));
        assert_eq!(ue.association_of("192.0.2.2:5068".parse().unwrap()), None);
    }

    /// A handover passes the compartment on: after it, a message over
    /// the new SAs uses the states of the old ones (no bytecode upload,
    /// the earlier message as history) and is trusted under the new
    /// association's name; removing the old set leaves the compartment,
    /// removing the new one closes it.
    #[test]
    fn a_handover_keeps_the_compartment_and_its_states() {
        let (ue_old, net_old) = sa_sets();
        let (ue_new, net_new) = sa_sets_with(
            "ipsec-3gpp; alg=hmac-md5-96; spi-c=5555; spi-s=6666; port-c=5070; port-s=5064",
            "ipsec-3gpp; alg=hmac-md5-96; spi-c=7777; spi-s=8888; port-c=5072; port-s=5068",
        );
        let cfg = EndpointConfig::default();
        let mut wire = Vec::new();
        let long = |n: usize| {
            let head = std::str::from_utf8(REGISTER)
                .unwrap()
                .trim_end_matches("Content-Length: 0\r\n\r\n");
            format!(
                "{head}{}Content-Length: 0\r\n\r\n",
                format!("Subject: SigComp on Gm {n}\r\n").repeat(30)
            )
            .into_bytes()
        };
        let (mut ue, mut pcscf) = (
            Compression::new(cfg.clone()).unwrap(),
            Compression::new(cfg.clone()).unwrap(),
        );
        let (a, b) = (ue.open_sas(&ue_old), pcscf.open_sas(&net_old));
        // One exchange each way, trusted: the states are acknowledged.
        let first = ue
            .send(&a, &long(1), Link::Datagram, true, &mut wire)
            .unwrap();
        assert!(first.compressed);
        pcscf.receive(&wire, Link::Datagram, Some(&b)).unwrap();
        pcscf
            .send(&b, &long(2), Link::Datagram, true, &mut wire)
            .unwrap();
        ue.receive(&wire, Link::Datagram, Some(&a)).unwrap();

        let a2 = ue.hand_over_sas(&ue_old, &ue_new);
        let b2 = pcscf.hand_over_sas(&net_old, &net_new);
        assert_ne!(a2, a);
        assert_eq!(a2, b2, "one name on both sides");
        ue.close_sas(&ue_old);
        pcscf.close_sas(&net_old);
        assert!(ue.is_open(&a2) && !ue.is_open(&a));
        // The old port-c is no longer the association's; port-s still is.
        assert_eq!(
            pcscf.association_of("192.0.2.1:5062".parse().unwrap()),
            None
        );
        assert_eq!(
            pcscf.association_of("192.0.2.1:5064".parse().unwrap()),
            Some(b2.as_str())
        );
        assert_eq!(
            pcscf.association_of("192.0.2.1:5070".parse().unwrap()),
            Some(b2.as_str())
        );
        let after = ue
            .send(&a2, &long(3), Link::Datagram, true, &mut wire)
            .unwrap();
        assert!(
            after.compressed && after.len * 3 < first.len,
            "{after:?} after {first:?}"
        );
        let got = pcscf.receive(&wire, Link::Datagram, Some(&b2)).unwrap();
        assert_eq!(
            got,
            Inbound::Message {
                bytes: long(3),
                compressed: true,
                trusted: true
            }
        );
        // A fresh compartment would have started over.
        let mut fresh = Compression::new(cfg).unwrap();
        let c = fresh.open_sas(&ue_new);
        let o = fresh
            .send(&c, &long(3), Link::Datagram, true, &mut wire)
            .unwrap();
        assert!(o.len > 2 * after.len, "{o:?} vs {after:?}");
        // Removing the new set ends it.
        ue.close_sas(&ue_new);
        assert!(!ue.is_open(&a2));
        assert_eq!(ue.association_of("192.0.2.2:5068".parse().unwrap()), None);
    }

    /// The P-CSCF waits for a UE to show it speaks SigComp once, not again
    /// at each handover; and a set opened twice stays one association.
    #[test]
    fn a_handover_carries_the_wait_for_sigcomp_over() {
        let (_, net_old) = sa_sets();
        let (_, net_new) = sa_sets_with(
            "ipsec-3gpp; alg=hmac-md5-96; spi-c=5555; spi-s=6666; port-c=5070; port-s=5064",
            "ipsec-3gpp; alg=hmac-md5-96; spi-c=7777; spi-s=8888; port-c=5072; port-s=5068",
        );
        for signalled in [false, true] {
            let mut pcscf = Compression::new(EndpointConfig::default()).unwrap();
            let old = pcscf.open_sas_when_signalled(&net_old);
            if signalled {
                pcscf.peer_signalled(&old);
            }
            let new = pcscf.hand_over_sas(&net_old, &net_new);
            assert_eq!(pcscf.compresses(&new), signalled);
            pcscf.close_sas(&net_old);
            assert_eq!(pcscf.compresses(&new), signalled);
            // Opening it again (as a caller might) changes nothing.
            assert_eq!(pcscf.open_sas_when_signalled(&net_new), new);
            assert_eq!(pcscf.compresses(&new), signalled);
        }
    }

    #[test]
    fn compressed_only_once_open_and_trusted_only_over_the_sas() {
        let cfg = EndpointConfig::default();
        let (mut ue, mut pcscf) = (
            Compression::new(cfg.clone()).unwrap(),
            Compression::new(cfg).unwrap(),
        );
        let mut wire = Vec::new();
        // Before the SAs: plain.
        let o = ue
            .send("pcscf", REGISTER, Link::Datagram, true, &mut wire)
            .unwrap();
        assert!(!o.compressed);
        assert_eq!(wire, REGISTER);
        // Both sides open once the SAs exist. A message long enough to
        // pay for the bytecode upload goes compressed.
        ue.open("pcscf");
        pcscf.open("ue");
        let head = std::str::from_utf8(REGISTER)
            .unwrap()
            .trim_end_matches("Content-Length: 0\r\n\r\n");
        let long = format!(
            "{head}{}Content-Length: 0\r\n\r\n",
            "Subject: SigComp on Gm\r\n".repeat(60)
        )
        .into_bytes();
        Message::parse(&long).unwrap();
        let o = ue
            .send("pcscf", &long, Link::Datagram, true, &mut wire)
            .unwrap();
        assert!(
            o.compressed && o.len < long.len() / 2,
            "{o:?} of {}",
            long.len()
        );
        // Not over the SAs (a response to a request that came in clear):
        // plain, even with the association open.
        let o = ue
            .send("pcscf", &long, Link::Datagram, false, &mut wire)
            .unwrap();
        assert!(!o.compressed);
        assert_eq!(wire, long);
        let o = ue
            .send("pcscf", &long, Link::Datagram, true, &mut wire)
            .unwrap();
        assert!(o.compressed);
        // Arrived unprotected: readable, not trusted.
        let got = pcscf.receive(&wire, Link::Datagram, None).unwrap();
        assert_eq!(
            got,
            Inbound::Message {
                bytes: long.clone(),
                compressed: true,
                trusted: false
            }
        );
        assert_eq!(pcscf.endpoint().counters().accepted, 0);
        // Over the SAs: trusted, its states saved.
        let got = pcscf.receive(&wire, Link::Datagram, Some("ue")).unwrap();
        assert!(matches!(got, Inbound::Message { trusted: true, .. }));
        assert_eq!(pcscf.endpoint().counters().accepted, 1);
        // Closing at deregistration: plain again.
        ue.close("pcscf");
        assert!(
            !ue.send("pcscf", REGISTER, Link::Datagram, true, &mut wire)
                .unwrap()
                .compressed
        );
        assert!(matches!(
            Compression::new(EndpointConfig {
                local: sigcomp::Parameters {
                    state_memory_size: 2048,
                    ..Default::default()
                },
                ..Default::default()
            }),
            Err(CompError::StateMemoryTooSmall(2048))
        ));
    }

    /// The P-CSCF's side compresses for a UE only once the UE showed it
    /// speaks SigComp (RFC 3486 §4): SigComp over the SAs, or a request
    /// over them with `comp=sigcomp` in its top Via.
    #[test]
    fn the_network_waits_for_the_peer_to_speak_sigcomp() {
        let (ue_set, net_set) = sa_sets();
        let cfg = EndpointConfig::default();
        let mut wire = Vec::new();
        let long = {
            let head = std::str::from_utf8(REGISTER)
                .unwrap()
                .trim_end_matches("Content-Length: 0\r\n\r\n");
            format!(
                "{head}{}Content-Length: 0\r\n\r\n",
                "Subject: SigComp on Gm\r\n".repeat(60)
            )
            .into_bytes()
        };
        // A UE that speaks it: its first message over the SAs is SigComp.
        let (mut ue, mut pcscf) = (
            Compression::new(cfg.clone()).unwrap(),
            Compression::new(cfg.clone()).unwrap(),
        );
        ue.open_sas(&ue_set);
        let name = pcscf.open_sas_when_signalled(&net_set);
        assert!(pcscf.is_open(&name) && !pcscf.compresses(&name));
        let o = pcscf
            .send(&name, &long, Link::Datagram, true, &mut wire)
            .unwrap();
        assert!(!o.compressed, "plain until the UE shows it speaks SigComp");
        // Unprotected SigComp proves nothing.
        let o = ue
            .send(&name, &long, Link::Datagram, true, &mut wire)
            .unwrap();
        assert!(o.compressed);
        pcscf.receive(&wire, Link::Datagram, None).unwrap();
        assert!(!pcscf.compresses(&name));
        pcscf.receive(&wire, Link::Datagram, Some(&name)).unwrap();
        assert!(pcscf.compresses(&name));
        assert!(
            pcscf
                .send(&name, &long, Link::Datagram, true, &mut wire)
                .unwrap()
                .compressed
        );
        // A UE that asks in its Via.
        let mut pcscf = Compression::new(cfg).unwrap();
        let name = pcscf.open_sas_when_signalled(&net_set);
        let plain = Message::parse(REGISTER).unwrap();
        assert!(!signals_sigcomp(&plain));
        let mut marked = plain.clone();
        mark_via(&mut marked, "urn:gsma:imei:35390600-123456-0").unwrap();
        assert!(signals_sigcomp(&marked));
        pcscf.peer_signalled(&name);
        assert!(pcscf.compresses(&name));
    }
}
