//! The network side of registration: the P-CSCF with the registrar and
//! the AKA centre folded in (TS 24.229, TS 33.203 as commonly implemented,
//! RFC 3310, RFC 4169, RFC 3329, RFC 3261 §10.3), sans-IO.
//!
//! [`Network::on_register`] takes a REGISTER with the UE's address and
//! the [`Flow`] it came on, and returns [`NetworkAction`]s in the order
//! they take effect: the SAs of a challenge are installed before the 401
//! that announces them leaves, the SAs of a de-registration are removed
//! after its 200 left over them. Responses go back on the flow the
//! request came on. Transactions are the caller's
//! ([`crate::txn::Transactions::on_request`] and `respond`).
//!
//! What it checks, in order:
//!
//! 1. The subscriber: the Authorization `username`, or without one
//!    (a UE outside IMS) the To URI's `user@host`; unknown: 403.
//! 2. With credentials for a nonce sent to that IMPI and not answered
//!    yet (see *Challenges in flight* below):
//!    - `auts` (RFC 3310 §3.4): MAC-S is verified
//!      ([`opensec::aka::verify_auts`]), the SQN re-synchronised and a
//!      fresh challenge sent; a bad AUTS gets 403. The AUTS request may
//!      come over the challenge's temporary SAs (TS 24.229, as our UE
//!      sends it) or in clear; over them, the new 401 goes back over
//!      them before the new SAs replace them.
//!    - an empty `response` (the UE's answer to a MAC failure, TS 24.229
//!      §5.1.1.5.3 as commonly implemented): 403, the attempt ends.
//!    - a challenge with sec-agree: the request must come over the new SAs
//!      from the UE's port-c to our port-s, and its Security-Verify must
//!      be the Security-Server we sent (RFC 3329 §2.3.1: else 494 with
//!      our list, sent over those SAs, which are removed after it), and
//!      its Security-Client
//!      the one of the challenged REGISTER (TS 33.203 as commonly
//!      implemented; likewise 494);
//!    - the digest response must match the one computed with XRES (or
//!      its AKAv2 password): else 403 and the SAs are removed.
//!
//!    Then a binding, with 200 carrying Service-Route, Path,
//!    P-Associated-URI, Contact with `expires` and Expires; the SAs get
//!    the registration's lifetime plus [`sa::LIFETIME_MARGIN`].
//! 3. A registered UE re-registering (or de-registering, expiry 0) over its
//!    SAs with the nonce of its registration and a higher `nc`: the same
//!    checks, except that its Security-Client may name a new SA set. With
//!    [`NetworkConfig::alt_port_c`] and such an offer (new SPIs, a new
//!    port-c, the same port-s), a **handover** (TS 33.203 §7.4 as commonly
//!    implemented): a fresh challenge over the SAs in use, whose new set
//!    (new SPIs of ours, our other client port) is installed beside the
//!    old one; the answer must come over the new set; its 200 moves the
//!    binding and the reg event subscriptions to it, and the old set goes
//!    once the NOTIFYs out over it ended ([`DEREGISTRATION_LINGER`] at the
//!    latest). Until then the registration stands on the old set: a
//!    handover challenge that fails or is never answered leaves it as it
//!    was. Otherwise no new challenge, and the SAs stay.
//! 4. Anything else: a fresh challenge, 401 with `nonce` =
//!    base64(RAND || AUTN) (RFC 3310 §3.2), and with sec-agree (the
//!    request has a Security-Client with `ipsec-3gpp`) a Security-Server
//!    offer chosen from the UE's by our preference list (an offer without
//!    `ealg` is `null`), our SPIs drawn from [`Random`], our protected
//!    ports from the configuration.
//!
//! **Challenges in flight.** A challenge with sec-agree holds temporary
//! SAs on the UE's ports, so it is the only one of its IMPI: a new one
//! (or a re-synchronisation) replaces every earlier challenge and
//! removes their SAs. Challenges without SAs (`allow_unprotected`, no
//! sec-agree) do not replace each other: up to [`MAX_CHALLENGES`] per
//! IMPI are kept, each answered by its own nonce until it is used, fails
//! or is [`sa::TEMPORARY_LIFETIME`] old, as an S-CSCF keeps several
//! authentication vectors of one IMPI sent at once (Kamailio's `ims_auth`
//! matches the answer to the vector by its nonce). A UE's REGISTER
//! retransmitted past a newer challenge, or two devices of one IMPI
//! registering together, then still succeed.
//!
//! It is also the notifier of the reg event (RFC 3680): [`Network::on_request`]
//! takes REGISTER and SUBSCRIBE `Event: reg` (other requests are the
//! caller's); a registered UE's subscription to its own identities gets
//! the full state, then a partial NOTIFY ([`NetworkAction::Notify`]) on
//! each change of its binding (`registered`, `refreshed`, `shortened`,
//! `unregistered`, `expired`); [`Network::deregister`] ends a
//! registration from the network's side ([`Ending`]: `deactivated`,
//! `probation` with its `retry-after`, or `rejected`),
//! [`Network::shorten`] shortens it. A contact's `id` is a hash of its
//! URI: the same in every document, different for another URI. SAs of a binding the network ended
//! are removed only once the NOTIFYs to that UE still out ended
//! ([`Network::on_response`], [`Network::on_notify_timeout`]), so that
//! the UE learns why over them; those of a UE that de-registered itself
//! [`DEREGISTRATION_LINGER`] after its 200, NOTIFYs answered or not: a
//! retransmitted de-REGISTER (its 200 lost) finds them until then, and
//! the UE deletes its own on that 200, so an answer it had not sent by
//! then never comes.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use opensec::aka::{self, AkaVersion, AuthVector, Password};
use opensec::digest::{DigestAlgorithm, DigestParams};
use opensec::{AuthAlgorithm, EncAlgorithm};

mod notifier;

use super::sa::{self, Agreement, IpsecMode, IpsecOffer, SaSet, Side};
use super::{Flow, OpKey, Random, ct_eq, same_mechanisms};
use crate::regevent::ContactEvent;
use crate::sip::header::{Auth, Contacts, NameAddr, SecMechanism};
use crate::sip::{Builder, HeaderName, Message, Method};

/// One subscriber of the AKA centre (HSS); K and OP/OPc are zeroized on
/// drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// K.
    pub k: [u8; 16],
    /// OP or OPc.
    pub op: OpKey,
    /// The AMF put in AUTN.
    pub amf: [u8; 2],
    /// The last SQN used; the next challenge uses the next one.
    pub sqn: u64,
    /// The public identities reported in P-Associated-URI (none: the To URI).
    pub impus: Vec<String>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.k);
        self.op.zeroize();
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("sqn", &self.sqn)
            .field("amf", &self.amf)
            .field("impus", &self.impus)
            .finish_non_exhaustive()
    }
}

/// How the network registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The digest `realm`.
    pub realm: String,
    /// The P-CSCF's address (for the SAs).
    pub pcscf_addr: IpAddr,
    /// Our protected client port.
    pub port_c: u16,
    /// Our protected server port.
    pub port_s: u16,
    /// A second protected client port, for SA handover at re-registration
    /// (none by default): a registered UE whose re-REGISTER offers a new
    /// SA set (new SPIs and a new port-c, its port-s kept, TS 33.203 as
    /// commonly implemented) is re-authenticated, and the new set takes the
    /// one of [`NetworkConfig::port_c`] and this port that the old set does
    /// not use, so the two sets differ in every selector and SPI while they
    /// live side by side. Without it, re-registrations go on over the SAs
    /// of the registration and a new Security-Client is not acted on.
    pub alt_port_c: Option<u16>,
    /// The (alg, ealg) pairs we accept, most preferred first.
    pub preference: Vec<(AuthAlgorithm, EncAlgorithm)>,
    /// The `mod`s we accept; we answer in the UE's (TS 33.203).
    pub modes: Vec<IpsecMode>,
    /// Whether a REGISTER without a Security-Client may register
    /// unprotected (a UE outside IMS, or a test peer that cannot do ESP).
    pub allow_unprotected: bool,
    /// The AKA version of our challenges.
    pub aka: AkaVersion,
    /// Whether to offer `qop="auth"`.
    pub qop: bool,
    /// The Service-Route values returned in the 200.
    pub service_routes: Vec<String>,
    /// Our Path value, added after the request's Path values in the 200
    /// (RFC 3327 §5.3: the registrar returns the Path it stored).
    pub path: Option<String>,
    /// The longest expiry granted, in seconds.
    pub max_expires: u32,
    /// The shortest expiry accepted, in seconds (shorter: 423 with
    /// Min-Expires, RFC 3261 §10.3); 0 for no minimum.
    pub min_expires: u32,
    /// Draw RAND again (up to 32 times) while XRES has a zero byte: a
    /// concession to UEs that take RES as a C string (SIPp does: a zero
    /// byte ends its password, so about one challenge in 30 fails). For
    /// test peers under load only; off by default.
    pub xres_without_zero_byte: bool,
    /// Our unprotected port (the Contact and Via of the reg event's
    /// messages to a UE registered without SAs).
    pub port: u16,
}

impl NetworkConfig {
    /// The usual values: sec-agree required, preference hmac-sha-1-96 then
    /// hmac-md5-96, each with aes-cbc, des-ede3-cbc, null; AKAv1-MD5 with
    /// `qop="auth"`; at most 600000 s.
    pub fn new(realm: &str, pcscf_addr: IpAddr, port_c: u16, port_s: u16) -> NetworkConfig {
        let mut preference = Vec::new();
        for a in [AuthAlgorithm::HmacSha1_96, AuthAlgorithm::HmacMd5_96] {
            for e in [
                EncAlgorithm::AesCbc,
                EncAlgorithm::TripleDesCbc,
                EncAlgorithm::Null,
            ] {
                preference.push((a, e));
            }
        }
        NetworkConfig {
            realm: realm.to_owned(),
            pcscf_addr,
            port_c,
            port_s,
            alt_port_c: None,
            preference,
            modes: vec![IpsecMode::Transport, IpsecMode::UdpEncapsulatedTunnel],
            allow_unprotected: false,
            aka: AkaVersion::V1,
            qop: true,
            service_routes: Vec::new(),
            path: None,
            max_expires: 600_000,
            min_expires: 0,
            xres_without_zero_byte: false,
            port: 5060,
        }
    }
}

/// What the caller does for the network side.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetworkAction {
    /// Send this response on the flow the request came on (through the
    /// request's server transaction).
    Respond(Message<'static>),
    /// Install these SAs and policies (before the next `Respond`).
    InstallSas(SaSet),
    /// Replace the lifetime of these installed SAs.
    UpdateSas(SaSet),
    /// Remove these SAs and policies.
    RemoveSas(SaSet),
    /// `impi` is registered (or re-registered).
    Registered {
        /// The private identity.
        impi: String,
        /// The registered public identity (To).
        impu: String,
        /// The Contact bound.
        contact: String,
        /// The expiry granted.
        expires: Duration,
    },
    /// `impi` de-registered.
    Deregistered {
        /// The private identity.
        impi: String,
    },
    /// An authentication failed (the response says how).
    AuthenticationFailed {
        /// The private identity.
        impi: String,
        /// Why.
        reason: &'static str,
    },
    /// Send this request (a NOTIFY of the reg event) through a client
    /// transaction on `flow`, to the dialog's remote target (the UE's
    /// Contact); give its final response to [`Network::on_response`], or
    /// its timeout to [`Network::on_notify_timeout`].
    Notify {
        /// The NOTIFY.
        request: Message<'static>,
        /// Over the SAs (from our port-c to the UE's port-s) or not.
        flow: Flow,
    },
}

/// How long the SAs of a UE that de-registered itself outlive its 200:
/// for the UE's retransmissions of the de-REGISTER if the 200 is lost
/// (Timer E: after 0.5, 1.5, 3.5 and 7.5 s), and the answers to NOTIFYs that
/// crossed it (see the [module documentation](self)).
pub const DEREGISTRATION_LINGER: Duration = Duration::from_secs(8);

/// The most challenges without SAs kept per IMPI (see the [module
/// documentation](self)); a new one beyond it replaces the oldest.
pub const MAX_CHALLENGES: usize = 4;

/// A challenge sent and not answered yet, or the one a binding lives on.
struct Pending {
    nonce: String,
    vector: AuthVector,
    password: Password,
    /// The Security-Server row we sent, and the SAs set up for it.
    server: Option<(String, SaSet)>,
    /// The highest `nc` accepted with this nonce.
    nc: u32,
    /// When the challenge was sent.
    sent_at: Duration,
    /// The Security-Client rows of the challenged REGISTER.
    client: Vec<String>,
    /// A re-authentication of a registered UE with a new SA set: its
    /// binding (and the old set) stays until the answer passes.
    handover: bool,
}

/// Why a challenge is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// A REGISTER without valid credentials (the initial one).
    Fresh,
    /// A registered UE's re-REGISTER offered a new SA set.
    Handover,
    /// An AUTS re-synchronised the SQN; `handover` carries over from the
    /// challenge it answered.
    Resync { handover: bool },
}

impl Why {
    fn resync(self) -> bool {
        matches!(self, Why::Resync { .. })
    }

    fn handover(self) -> bool {
        matches!(self, Why::Handover | Why::Resync { handover: true })
    }
}

struct Binding {
    auth: Pending,
    contact: String,
    expires_at: Duration,
    /// The registered public identity (the REGISTER's To).
    impu: String,
    /// The Contact's URI alone.
    contact_uri: String,
    /// Where the UE registered from.
    ue_addr: IpAddr,
    /// When the binding was first made (for `duration-registered`).
    since: Duration,
}

/// How [`Network::deregister`] ends a binding: the contact event of the
/// reg event (RFC 3680 §5.1), which tells the UE whether and when to
/// register again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `deactivated`: the UE should register again at once.
    Deactivated,
    /// `probation`: the UE should register again after `retry_after`
    /// (whole seconds in the document).
    Probation {
        /// How long the UE waits before registering again.
        retry_after: Duration,
    },
    /// `rejected`: the UE should not register again.
    Rejected,
}

/// The P-CSCF/registrar; see the [module documentation](self).
pub struct Network {
    config: NetworkConfig,
    subscribers: HashMap<String, Subscriber>,
    /// Challenges not answered yet, oldest first: one with SAs alone, or
    /// up to [`MAX_CHALLENGES`] without.
    pending: HashMap<String, Vec<Pending>>,
    /// Changed through [`Network::put_binding`] and
    /// [`Network::take_binding`] only (they keep `bound_impus`).
    bindings: HashMap<String, Binding>,
    /// The IMPIs bound under each public identity (a binding's `impu`).
    bound_impus: HashMap<String, BTreeSet<String>>,
    /// The IMPIs whose subscriber lists each public identity.
    listed_impus: HashMap<String, BTreeSet<String>>,
    /// The SPIs of our inbound SAs with the IMPI whose challenge took
    /// them, possibly of sets gone since: an SPI is in use when its IMPI
    /// still has a set with it ([`Network::spi_in_use`]). Entries are
    /// checked a few at a time, oldest first, at each challenge
    /// (`spi_sweep`), so those of sets gone are dropped as fast as new
    /// ones come.
    spis: HashMap<u32, String>,
    spi_sweep: VecDeque<u32>,
    /// When a pending challenge or a binding may end, per IMPI: one entry
    /// per challenge sent and per binding granted; stale ones (answered,
    /// refreshed, removed) are dropped when they come up. Timers cost
    /// O(log n), not a scan of every subscriber per event.
    deadlines: BinaryHeap<Reverse<(Duration, String)>>,
    /// Reg event subscriptions, by Call-ID.
    reg_subs: notifier::Subscriptions,
    /// SAs of bindings the network ended, removed once the NOTIFYs that
    /// announce it are answered, or lingering after a de-registration.
    draining: notifier::DrainingSets,
    /// NOTIFYs sent and not ended.
    outstanding: notifier::Outstanding,
    /// The caller's SPIs, when set ([`Network::set_spi_source`]).
    spi_source: Option<Box<dyn super::SpiSource + Send>>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("config", &self.config)
            .field("subscribers", &self.subscribers.len())
            .field("bindings", &self.bindings.len())
            .field("spi_source", &self.spi_source.is_some())
            .finish_non_exhaustive()
    }
}

/// A check that ends a request with a status.
struct Refuse {
    status: u16,
    reason: &'static str,
}

impl Network {
    /// A network with no subscribers.
    pub fn new(config: NetworkConfig) -> Network {
        Network {
            config,
            subscribers: HashMap::new(),
            pending: HashMap::new(),
            bindings: HashMap::new(),
            bound_impus: HashMap::new(),
            listed_impus: HashMap::new(),
            spis: HashMap::new(),
            spi_sweep: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            reg_subs: notifier::Subscriptions::default(),
            draining: notifier::DrainingSets::default(),
            outstanding: notifier::Outstanding::default(),
            spi_source: None,
        }
    }

    /// Takes the inbound SPIs of every challenge from `source` (the
    /// caller's SA database) instead of drawing them; a challenge for
    /// which it has none is answered 500.
    pub fn set_spi_source(&mut self, source: Box<dyn super::SpiSource + Send>) {
        self.spi_source = Some(source);
    }

    /// Adds (or replaces) a subscriber.
    pub fn add_subscriber(&mut self, impi: &str, s: Subscriber) {
        for u in &s.impus {
            self.listed_impus
                .entry(u.clone())
                .or_default()
                .insert(impi.to_owned());
        }
        if let Some(old) = self.subscribers.insert(impi.to_owned(), s) {
            for u in &old.impus {
                let listed = self
                    .subscribers
                    .get(impi)
                    .is_some_and(|s| s.impus.contains(u));
                if let (false, Some(impis)) = (listed, self.listed_impus.get_mut(u)) {
                    impis.remove(impi);
                    if impis.is_empty() {
                        self.listed_impus.remove(u);
                    }
                }
            }
        }
    }

    /// Binds `impi` (replacing its binding, if any).
    fn put_binding(&mut self, impi: &str, b: Binding) {
        self.bound_impus
            .entry(b.impu.clone())
            .or_default()
            .insert(impi.to_owned());
        if let Some(old) = self.bindings.insert(impi.to_owned(), b) {
            self.unindex_binding(impi, &old.impu);
        }
    }

    /// Removes `impi`'s binding.
    fn take_binding(&mut self, impi: &str) -> Option<Binding> {
        let b = self.bindings.remove(impi)?;
        self.unindex_binding(impi, &b.impu);
        Some(b)
    }

    fn unindex_binding(&mut self, impi: &str, impu: &str) {
        if self.bindings.get(impi).is_some_and(|b| b.impu == impu) {
            return;
        }
        if let Some(impis) = self.bound_impus.get_mut(impu) {
            impis.remove(impi);
            if impis.is_empty() {
                self.bound_impus.remove(impu);
            }
        }
    }

    /// The IMPIs bound under public identity `aor` or whose subscriber
    /// lists it, in order.
    fn bound_under(&self, aor: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .bound_impus
            .get(aor)
            .into_iter()
            .chain(self.listed_impus.get(aor))
            .flatten()
            .filter(|impi| self.bindings.contains_key(*impi))
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// A subscriber (to read its SQN).
    pub fn subscriber(&self, impi: &str) -> Option<&Subscriber> {
        self.subscribers.get(impi)
    }

    /// The contact bound for `impi` and when the binding ends, if registered.
    pub fn binding(&self, impi: &str) -> Option<(&str, Duration)> {
        self.bindings
            .get(impi)
            .map(|b| (b.contact.as_str(), b.expires_at))
    }

    /// The SAs of `impi`'s binding or pending challenge.
    pub fn sas(&self, impi: &str) -> Option<&SaSet> {
        self.bindings
            .get(impi)
            .map(|b| &b.auth)
            .or_else(|| self.pending.get(impi).and_then(|v| v.last()))
            .and_then(|p| p.server.as_ref().map(|(_, s)| s))
    }

    /// The set `new` replaces, when `new` was set up for a handover
    /// challenge (a registered UE re-authenticated over fresh SAs): the
    /// registration's set, kept until the answer passes. `None` for any
    /// other set. What belongs to the association rather than to a set
    /// (its SigComp compartment, [`crate::comp::Compression::hand_over_sas`])
    /// carries over.
    pub fn handover_from(&self, new: &SaSet) -> Option<&SaSet> {
        // Every set of ours comes from a challenge, which noted its SPIs.
        let impi = self.spis.get(&new.pcscf_offer().spi_c)?;
        let ours = self.pending.get(impi).is_some_and(|v| {
            v.iter()
                .any(|p| p.handover && p.server.as_ref().is_some_and(|(_, s)| s == new))
        });
        ours.then(|| self.bindings.get(impi))
            .flatten()
            .and_then(|b| b.auth.server.as_ref().map(|(_, s)| s))
    }

    /// Drops the bindings whose time is up (RFC 3261 §10.3 step 7) and
    /// the challenges unanswered for [`sa::TEMPORARY_LIFETIME`]; returns
    /// their SAs to remove and the de-registrations.
    pub fn handle_timeout(&mut self, now: Duration) -> Vec<NetworkAction> {
        let mut due = Vec::new();
        while self
            .deadlines
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= now)
        {
            if let Some(Reverse((_, impi))) = self.deadlines.pop() {
                due.push(impi);
            }
        }
        due.sort();
        due.dedup();
        let due_lingering = due.clone();
        let mut out = Vec::new();
        for impi in &due {
            let Some(v) = self.pending.get_mut(impi) else {
                continue;
            };
            let (stale, live): (Vec<Pending>, Vec<Pending>) = std::mem::take(v)
                .into_iter()
                .partition(|p| p.sent_at.saturating_add(sa::TEMPORARY_LIFETIME) <= now);
            *v = live;
            if v.is_empty() {
                self.pending.remove(impi);
            }
            out.extend(
                stale
                    .into_iter()
                    .filter_map(|p| p.server)
                    .map(|(_, s)| NetworkAction::RemoveSas(s)),
            );
        }
        let expired: Vec<String> = due
            .into_iter()
            .filter(|i| self.bindings.get(i).is_some_and(|b| b.expires_at <= now))
            .collect();
        for impi in expired {
            out.extend(self.end_binding(&impi, ContactEvent::Expired, None, "noresource", now));
        }
        out.extend(self.expire_subscriptions(now));
        out.extend(self.end_lingering(&due_lingering, now));
        out
    }

    /// The earliest end of a binding or of a pending challenge.
    pub fn poll_timeout(&self) -> Option<Duration> {
        // Possibly a stale entry, earlier than any live deadline: the
        // caller then calls `handle_timeout` once for nothing.
        let subs = self.reg_subs.next_expiry();
        let next = self.deadlines.peek().map(|Reverse((at, _))| *at);
        next.into_iter().chain(subs).min()
    }

    /// Handles a REGISTER from `ue_addr` that came on `flow`.
    pub fn on_register(
        &mut self,
        request: &Message<'_>,
        ue_addr: IpAddr,
        flow: Flow,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Vec<NetworkAction> {
        if request.method() != Some(Method::Register) {
            return self.refuse(request, 405, None);
        }
        let creds = request
            .authorization()
            .ok()
            .and_then(|v| v.into_iter().find(Auth::is_digest));
        let impi = match creds.as_ref().and_then(|c| c.username()) {
            Some(u) => u.into_owned(),
            None => match to_user_host(request) {
                Some(u) => u,
                None => return self.refuse(request, 400, None),
            },
        };
        if !self.subscribers.contains_key(&impi) {
            return self.refuse(request, 403, None);
        }
        let nonce = creds
            .as_ref()
            .and_then(|c| c.nonce())
            .map(|n| n.into_owned())
            .unwrap_or_default();
        // 3. A registered UE, with the nonce of its registration.
        if let (Some(c), Some(b)) = (creds.as_ref(), self.bindings.get(&impi)) {
            if !nonce.is_empty() && b.auth.nonce == nonce {
                return self.reregister(request, c, &impi, ue_addr, flow, now, rng);
            }
        }
        // 2. The answer to our challenge.
        if let Some(c) = creds.as_ref() {
            if !nonce.is_empty() && self.pending_index(&impi, &nonce).is_some() {
                return self.answer(request, c, &impi, &nonce, ue_addr, flow, now, rng);
            }
        }
        // 4. A fresh challenge.
        self.challenge(request, &impi, ue_addr, flow, Why::Fresh, now, rng)
    }

    fn refuse(
        &self,
        request: &Message<'_>,
        status: u16,
        extra: Option<(&str, &str)>,
    ) -> Vec<NetworkAction> {
        let mut b = Builder::response_to(request, status, None).to_tag("reg");
        if let Some((n, v)) = extra {
            b = b.header(n, v);
        }
        match b.build() {
            Ok(m) => vec![NetworkAction::Respond(m)],
            // A request too broken to answer (no Via, From...): dropped.
            Err(_) => Vec::new(),
        }
    }

    /// A fresh challenge; the SAs of the previous one go. After an AUTS
    /// request that came over them, the 401 leaves over them first, then
    /// they are replaced (the new set has the UE's same SPIs, so the two
    /// cannot be installed together).
    #[allow(clippy::too_many_arguments)]
    fn challenge(
        &mut self,
        request: &Message<'_>,
        impi: &str,
        ue_addr: IpAddr,
        flow: Flow,
        why: Why,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Vec<NetworkAction> {
        let resync = why.resync();
        let earlier = self.pending.remove(impi).unwrap_or_default();
        let mut out = self.fresh_challenge(request, impi, ue_addr, flow, why, now, rng);
        // Challenges without SAs stay beside a new one without SAs; any
        // other new challenge (or a failed one) replaces them.
        let keep = !resync
            && earlier.iter().all(|p| p.server.is_none())
            && self
                .pending
                .get(impi)
                .is_some_and(|v| v.iter().all(|p| p.server.is_none()));
        let old = if keep {
            if let Some(v) = self.pending.get_mut(impi) {
                let mut all = earlier;
                all.append(v);
                let excess = all.len().saturating_sub(MAX_CHALLENGES);
                all.drain(..excess);
                *v = all;
            }
            None
        } else {
            // At most one of them has SAs (the only challenge of its IMPI).
            earlier.into_iter().find_map(|p| p.server).map(|(_, s)| s)
        };
        // A set still kept for NOTIFYs to a UE gone from these ports goes
        // before the new one is installed.
        let installs: Vec<SaSet> = out
            .iter()
            .filter_map(|a| match a {
                NetworkAction::InstallSas(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        for s in &installs {
            let evicted = self.evict_draining(s);
            if !evicted.is_empty() {
                out.splice(0..0, evicted);
            }
        }
        match old {
            None => out,
            Some(s) if !resync || flow == Flow::Unprotected => {
                let mut v = vec![NetworkAction::RemoveSas(s)];
                v.extend(out);
                v
            }
            Some(s) => {
                let (installs, mut v): (Vec<NetworkAction>, Vec<NetworkAction>) = out
                    .into_iter()
                    .partition(|a| matches!(a, NetworkAction::InstallSas(_)));
                v.push(NetworkAction::RemoveSas(s));
                v.extend(installs);
                v
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fresh_challenge(
        &mut self,
        request: &Message<'_>,
        impi: &str,
        ue_addr: IpAddr,
        flow: Flow,
        why: Why,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Vec<NetworkAction> {
        let mut out = Vec::new();
        if flow != Flow::Unprotected && why == Why::Fresh {
            // TS 33.203: an initial registration comes unprotected.
            out.extend(self.refuse(request, 403, None));
            return out;
        }
        let offers = request
            .security(HeaderName::SecurityClient)
            .unwrap_or_default();
        let sec_agree = offers.iter().any(SecMechanism::is_ipsec_3gpp);
        if !sec_agree && !self.config.allow_unprotected {
            // RFC 3329 §2.3.1: 421 Extension Required would ask for it;
            // TS 24.229 has the P-CSCF refuse.
            out.extend(self.refuse(request, 421, Some(("Require", "sec-agree"))));
            return out;
        }
        let Some(sub) = self.subscribers.get_mut(impi) else {
            return out;
        };
        let sqn = sub.sqn.wrapping_add(1) & aka::SQN_MAX;
        let m = sub.op.milenage(&sub.k);
        let mut rand = [0u8; 16];
        let mut tries = if self.config.xres_without_zero_byte {
            32
        } else {
            1
        };
        let vector = loop {
            rng.fill(&mut rand);
            tries -= 1;
            match aka::auth_vector(&m, &rand, sqn, &sub.amf) {
                Ok(v) if tries == 0 || !v.xres.contains(&0) => break v,
                Ok(_) => {}
                Err(_) => {
                    out.extend(self.refuse(request, 500, None));
                    return out;
                }
            }
        };
        sub.sqn = sqn;
        let nonce = aka::build_nonce(&vector.rand, &vector.autn, &[]);
        let password = aka::password(self.config.aka, &vector.xres, &vector.ik, &vector.ck);
        let algorithm = match self.config.aka {
            AkaVersion::V1 => "AKAv1-MD5",
            AkaVersion::V2 => "AKAv2-MD5",
        };
        let mut www = format!(
            "Digest realm=\"{}\",nonce=\"{nonce}\",algorithm={algorithm}",
            self.config.realm
        );
        if self.config.qop {
            www.push_str(",qop=\"auth\"");
        }
        let mut b = Builder::response_to(request, 401, None)
            .to_tag("reg")
            .header("WWW-Authenticate", www);
        let mut server = None;
        if sec_agree {
            let Some(ue) = self.choose(&offers) else {
                out.extend(self.refuse(request, 494, None));
                return out;
            };
            let spis = match &mut self.spi_source {
                Some(source) => source
                    .inbound_spis(ue_addr)
                    .filter(|&(c, s)| c > 255 && s > 255 && c != s),
                None => self
                    .fresh_spi(rng, None)
                    .and_then(|c| Some((c, self.fresh_spi(rng, Some(c))?))),
            };
            let Some((spi_c, spi_s)) = spis else {
                out.extend(self.refuse(request, 500, None));
                return out;
            };
            let ours = IpsecOffer {
                alg: ue.alg,
                ealg: ue.ealg,
                mode: ue.mode,
                spi_c,
                spi_s,
                port_c: self.handover_port_c(impi, why),
                port_s: self.config.port_s,
            };
            let agreement = Agreement {
                ue_addr,
                pcscf_addr: self.config.pcscf_addr,
                ue,
                pcscf: ours,
            };
            let Ok(set) = SaSet::new(
                Side::Network,
                &agreement,
                &vector.ck,
                &vector.ik,
                sa::TEMPORARY_LIFETIME,
            ) else {
                out.extend(self.refuse(request, 494, None));
                return out;
            };
            let row = format!("{ours};q=0.1");
            b = b.header("Security-Server", &row);
            out.push(NetworkAction::InstallSas(set.clone()));
            server = Some((row, set));
        }
        match b.build() {
            Ok(m) => out.push(NetworkAction::Respond(m)),
            Err(_) => return out,
        }
        self.deadlines.push(Reverse((
            now.saturating_add(sa::TEMPORARY_LIFETIME),
            impi.to_owned(),
        )));
        self.pending
            .entry(impi.to_owned())
            .or_default()
            .push(Pending {
                nonce,
                vector,
                password,
                server,
                nc: 0,
                sent_at: now,
                client: request
                    .rows(HeaderName::SecurityClient)
                    .map(|h| h.value().to_owned())
                    .collect(),
                handover: why.handover(),
            });
        if let Some(o) = self
            .pending
            .get(impi)
            .and_then(|v| v.last())
            .and_then(|p| p.server.as_ref())
            .map(|(_, s)| *s.pcscf_offer())
        {
            self.note_spis(impi, [o.spi_c, o.spi_s]);
        }
        out
    }

    /// Our port-c for a new SA set of `impi`: in a handover, the one of
    /// our two client ports its registration's set does not use.
    fn handover_port_c(&self, impi: &str, why: Why) -> u16 {
        let (Some(alt), true) = (self.config.alt_port_c, why.handover()) else {
            return self.config.port_c;
        };
        let bound = self
            .bindings
            .get(impi)
            .and_then(|b| b.auth.server.as_ref())
            .map(|(_, s)| s.pcscf_offer().port_c);
        if bound == Some(self.config.port_c) {
            alt
        } else {
            self.config.port_c
        }
    }

    /// An SPI for an inbound SA of ours: random, above the reserved
    /// 0..=255 (RFC 4303 §2.1), and not used by another of our SA sets.
    /// `None` if 64 draws found none (a broken [`Random`]).
    fn fresh_spi(&self, rng: &mut dyn Random, also_not: Option<u32>) -> Option<u32> {
        (0..64).find_map(|_| {
            let mut b = [0u8; 4];
            rng.fill(&mut b);
            let spi = u32::from_be_bytes(b);
            (spi > 255 && also_not != Some(spi) && !self.spi_in_use(spi)).then_some(spi)
        })
    }

    /// Whether one of our SA sets (of a challenge, a binding, or kept
    /// for NOTIFYs or lingering) has an inbound SA with `spi`.
    fn spi_in_use(&self, spi: u32) -> bool {
        self.spis
            .get(&spi)
            .is_some_and(|impi| self.holds_spi(impi, spi))
    }

    /// Whether one of `impi`'s SA sets has an inbound SA with `spi`.
    fn holds_spi(&self, impi: &str, spi: u32) -> bool {
        self.pending
            .get(impi)
            .into_iter()
            .flatten()
            .chain(self.bindings.get(impi).map(|b| &b.auth))
            .filter_map(|p| p.server.as_ref().map(|(_, s)| s))
            .chain(self.draining.of(impi))
            .any(|s| {
                let o = s.pcscf_offer();
                o.spi_c == spi || o.spi_s == spi
            })
    }

    /// Notes the SPIs of `impi`'s new set, and drops a few notes of sets
    /// gone: four checked, oldest first, per two added, so that the notes
    /// of sets gone never outnumber those of the sets alive for long.
    fn note_spis(&mut self, impi: &str, spis: [u32; 2]) {
        for _ in 0..4 {
            let Some(spi) = self.spi_sweep.pop_front() else {
                break;
            };
            if self.spi_in_use(spi) {
                self.spi_sweep.push_back(spi);
            } else {
                self.spis.remove(&spi);
            }
        }
        for spi in spis {
            self.spis.insert(spi, impi.to_owned());
            self.spi_sweep.push_back(spi);
        }
    }

    /// The UE offer we take: the first of our preference list that one
    /// of its offers names (an offer without `ealg` is `null`), in a mode
    /// we accept. Offers in more than one mode are refused: the UE cannot
    /// run both.
    fn choose(&self, offers: &[SecMechanism<'_>]) -> Option<IpsecOffer> {
        let parsed: Vec<IpsecOffer> = offers
            .iter()
            .filter_map(|m| IpsecOffer::from_mechanism(m).ok())
            .collect();
        let mode = parsed.first()?.mode;
        if parsed.iter().any(|o| o.mode != mode) || !self.config.modes.contains(&mode) {
            return None;
        }
        self.config
            .preference
            .iter()
            .find_map(|p| parsed.iter().find(|o| (o.alg, o.ealg) == *p).copied())
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        request: &Message<'_>,
        creds: &Auth<'_>,
        impi: &str,
        nonce: &str,
        ue_addr: IpAddr,
        flow: Flow,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Vec<NetworkAction> {
        let Some(i) = self.pending_index(impi, nonce) else {
            return Vec::new();
        };
        // RFC 3310 §3.4: re-synchronisation.
        if let Some(auts) = creds.auts() {
            let Some(p) = self.pending.get(impi).and_then(|v| v.get(i)) else {
                return Vec::new();
            };
            let rand = p.vector.rand;
            let handover = p.handover;
            let sub = self.subscribers.get_mut(impi);
            let resynced = sub.and_then(|s| {
                let b = opensec::base64_decode(&auts).ok()?;
                let auts: [u8; 14] = b.as_slice().try_into().ok()?;
                let sqn_ms = aka::verify_auts(&s.op.milenage(&s.k), &rand, &auts).ok()?;
                // The next challenge uses SQN_MS + 1, fresh for the UE.
                s.sqn = sqn_ms;
                Some(())
            });
            if resynced.is_none() {
                return self.fail(request, impi, 403, "bad AUTS");
            }
            // TS 24.229 has the UE send AUTS over the temporary SAs (ours
            // does); one sent in clear is taken too, as before.
            let why = Why::Resync { handover };
            return self.challenge(request, impi, ue_addr, flow, why, now, rng);
        }
        if creds.response().is_none_or(|r| r.is_empty()) {
            return self.fail(
                request,
                impi,
                403,
                "the UE could not authenticate the network",
            );
        }
        let Some(p) = self.pending.get(impi).and_then(|v| v.get(i)) else {
            return Vec::new();
        };
        if let Err(r) = check(&self.config, p, request, creds, ue_addr, flow, true) {
            if r.status == 494 {
                let row = p
                    .server
                    .as_ref()
                    .map(|(r, _)| r.clone())
                    .unwrap_or_default();
                // The refusal goes over the challenge's SAs, which the UE
                // reads responses on; then they go.
                let mut out = self.refuse(request, 494, Some(("Security-Server", &row)));
                out.extend(self.drop_pending(impi));
                out.push(NetworkAction::AuthenticationFailed {
                    impi: impi.to_owned(),
                    reason: r.reason,
                });
                return out;
            }
            return self.fail(request, impi, r.status, r.reason);
        }
        let asked = Asked::of(request);
        if let Some(r) = self.too_brief(request, asked.expires) {
            // The challenge stays: the UE asks again with the next nc.
            return r;
        }
        let Some(mut p) = self.take_pending(impi, i) else {
            return Vec::new();
        };
        p.nc = creds
            .nc()
            .and_then(|n| u32::from_str_radix(&n, 16).ok())
            .unwrap_or(0);
        let mut out = Vec::new();
        let handover = p.handover;
        let old = self.take_binding(impi);
        if handover {
            // The new set carries this 200; the old one goes once the
            // NOTIFYs still out over it ended, DEREGISTRATION_LINGER after
            // it at the latest (the UE deletes its copy on this 200).
            let since = old.as_ref().map(|b| b.since);
            out.extend(self.bind(
                request,
                asked,
                impi,
                p,
                ue_addr,
                ContactEvent::Refreshed,
                now,
            ));
            if let (Some(b), Some(since)) = (self.bindings.get_mut(impi), since) {
                b.since = since;
            }
            if let Some((_, s)) = old.and_then(|b| b.auth.server) {
                let new = self.sas(impi).cloned();
                if let Some(new) = new {
                    self.move_subscriptions(impi, &s, &new);
                }
                let until = now.saturating_add(DEREGISTRATION_LINGER);
                out.extend(self.release_sas_until(impi, s, Some(until)));
            }
            out.extend(self.notify_binding(impi, ContactEvent::Refreshed, now));
            return out;
        }
        // A registration replaces the previous one and its SAs.
        if let Some((_, s)) = old.and_then(|b| b.auth.server) {
            out.push(NetworkAction::RemoveSas(s));
        }
        out.extend(self.bind(
            request,
            asked,
            impi,
            p,
            ue_addr,
            ContactEvent::Registered,
            now,
        ));
        out
    }

    /// Whether a re-REGISTER of binding `b` asks for a new SA set we can
    /// hold beside the old one (see [`NetworkConfig::alt_port_c`]): its
    /// Security-Client is not the registration's, and the offer we would
    /// take has other SPIs and another port-c than the set in use, and the
    /// same port-s (the Contact's).
    fn offers_handover(&self, request: &Message<'_>, b: &Binding) -> bool {
        let (Some(_), Some((_, set))) = (self.config.alt_port_c, b.auth.server.as_ref()) else {
            return false;
        };
        // The registration's Security-Client repeated as written: no
        // handover, and nothing to parse.
        let rows = request.rows(HeaderName::SecurityClient).map(|h| h.value());
        if rows.eq(b.auth.client.iter().map(String::as_str)) {
            return false;
        }
        let Ok(offers) = request.security(HeaderName::SecurityClient) else {
            return false;
        };
        let first: Vec<SecMechanism<'_>> = b
            .auth
            .client
            .iter()
            .flat_map(|r| SecMechanism::parse_list(r).unwrap_or_default())
            .collect();
        if same_mechanisms(&offers, &first) {
            return false;
        }
        let Some(new) = self.choose(&offers) else {
            return false;
        };
        let old = set.ue_offer();
        let old_spis = [old.spi_c, old.spi_s];
        !old_spis.contains(&new.spi_c)
            && !old_spis.contains(&new.spi_s)
            && new.port_c != old.port_c
            && new.port_s == old.port_s
    }

    #[allow(clippy::too_many_arguments)]
    fn reregister(
        &mut self,
        request: &Message<'_>,
        creds: &Auth<'_>,
        impi: &str,
        ue_addr: IpAddr,
        flow: Flow,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Vec<NetworkAction> {
        let Some(b) = self.bindings.get(impi) else {
            return Vec::new();
        };
        let nc = creds
            .nc()
            .and_then(|n| u32::from_str_radix(&n, 16).ok())
            .unwrap_or(0);
        // RFC 2617 §3.2.2: a reused nc is a replay. Without SAs the nonce
        // is kept for re-registration only where unprotected registration
        // is allowed (the digest with a fresh `nc` still proves RES).
        let unprotected_ok = b.auth.server.is_some() || self.config.allow_unprotected;
        if !unprotected_ok || nc <= b.auth.nc {
            return self.refuse(request, 403, None);
        }
        if let Err(r) = check(&self.config, &b.auth, request, creds, ue_addr, flow, false) {
            return self.refuse(request, r.status, None);
        }
        let asked = Asked::of(request);
        if let Some(r) = self.too_brief(request, asked.expires) {
            return r;
        }
        if asked.expires != 0 && self.offers_handover(request, b) {
            if let Some(b) = self.bindings.get_mut(impi) {
                b.auth.nc = nc;
            }
            return self.challenge(request, impi, ue_addr, flow, Why::Handover, now, rng);
        }
        let Some(mut b) = self.take_binding(impi) else {
            return Vec::new();
        };
        b.auth.nc = nc;
        let since = b.since;
        let mut out = self.bind(
            request,
            asked,
            impi,
            b.auth,
            ue_addr,
            ContactEvent::Refreshed,
            now,
        );
        if let Some(b) = self.bindings.get_mut(impi) {
            b.since = since;
        }
        out.extend(self.notify_binding(impi, ContactEvent::Refreshed, now));
        out
    }

    /// The 200 and the binding (RFC 3261 §10.3 steps 7-8); the reg event
    /// subscribers of `impi` learn of it (`event`, or `unregistered` for
    /// expiry 0).
    #[allow(clippy::too_many_arguments)]
    fn bind(
        &mut self,
        request: &Message<'_>,
        asked: Asked<'_>,
        impi: &str,
        auth: Pending,
        ue_addr: IpAddr,
        event: ContactEvent,
        now: Duration,
    ) -> Vec<NetworkAction> {
        let contact = asked.contact;
        let expires = asked.expires.min(self.config.max_expires);
        let impu = request
            .to()
            .map(|t| t.uri.as_str().to_owned())
            .unwrap_or_default();
        let contact_str = contact.as_ref().map(|c| c.to_string()).unwrap_or_default();
        let mut out = Vec::new();
        let mut b = Builder::response_to(request, 200, None).to_tag("reg");
        if expires == 0 {
            b = b.header("Expires", 0);
            let Ok(m) = b.build() else {
                return out;
            };
            out.push(NetworkAction::Respond(m));
            let uri = contact.as_ref().map(|c| c.uri.as_str()).unwrap_or_default();
            out.extend(self.notify_unregistered(impi, &impu, uri, now));
            if let Some((_, s)) = auth.server {
                // DEREGISTRATION_LINGER after this 200: a retransmitted
                // de-REGISTER (the 200 lost) gets the 200 again over
                // them, and NOTIFYs still out can be answered; the UE
                // deletes its SAs on the 200, so nothing comes later.
                // Waiting for Timer F would keep them, and the UE's SigComp
                // compartment, 32 s.
                let until = now.saturating_add(DEREGISTRATION_LINGER);
                self.linger_sas(impi, s, until);
            }
            out.push(NetworkAction::Deregistered {
                impi: impi.to_owned(),
            });
            return out;
        }
        if let Some(c) = &contact {
            let uri = c.uri.as_str();
            let params: String = c
                .params
                .iter()
                .filter(|p| !p.name.eq_ignore_ascii_case("expires"))
                .map(|p| match p.value {
                    Some(v) => format!(";{}={v}", p.name),
                    None => format!(";{}", p.name),
                })
                .collect();
            b = b.header("Contact", format!("<{uri}>{params};expires={expires}"));
        }
        for r in &self.config.service_routes {
            b = b.header("Service-Route", r);
        }
        for h in request.rows(HeaderName::Path) {
            b = b.header("Path", h.value());
        }
        if let Some(p) = &self.config.path {
            b = b.header("Path", p);
        }
        let impus = self
            .subscribers
            .get(impi)
            .map(|s| s.impus.as_slice())
            .filter(|v| !v.is_empty())
            .unwrap_or(std::slice::from_ref(&impu));
        for u in impus {
            b = b.header("P-Associated-URI", format_args!("<{u}>"));
        }
        b = b.header("Expires", expires);
        let Ok(m) = b.build() else {
            return out;
        };
        let expires_d = Duration::from_secs(u64::from(expires));
        let mut auth = auth;
        if let Some((row, s)) = auth.server.take() {
            let s = s.with_lifetime(expires_d.saturating_add(sa::LIFETIME_MARGIN));
            out.push(NetworkAction::UpdateSas(s.clone()));
            auth.server = Some((row, s));
        }
        out.push(NetworkAction::Respond(m));
        out.push(NetworkAction::Registered {
            impi: impi.to_owned(),
            impu: impu.clone(),
            contact: contact_str.clone(),
            expires: expires_d,
        });
        self.deadlines
            .push(Reverse((now.saturating_add(expires_d), impi.to_owned())));
        self.put_binding(
            impi,
            Binding {
                auth,
                contact: contact_str,
                expires_at: now.saturating_add(expires_d),
                impu,
                contact_uri: contact
                    .as_ref()
                    .map(|c| c.uri.as_str().to_string())
                    .unwrap_or_default(),
                ue_addr,
                since: now,
            },
        );
        if event == ContactEvent::Registered {
            out.extend(self.notify_binding(impi, event, now));
        }
        out
    }

    /// RFC 3261 §10.3 step 7: 423 with Min-Expires for a binding shorter
    /// than [`NetworkConfig::min_expires`] (expiry 0 removes, and is fine).
    fn too_brief(&self, request: &Message<'_>, e: u32) -> Option<Vec<NetworkAction>> {
        let min = self.config.min_expires;
        (e != 0 && e < min)
            .then(|| self.refuse(request, 423, Some(("Min-Expires", &min.to_string()))))
    }

    /// Where the challenge of `impi` with `nonce` is among its pending ones.
    fn pending_index(&self, impi: &str, nonce: &str) -> Option<usize> {
        self.pending
            .get(impi)?
            .iter()
            .position(|p| p.nonce == nonce)
    }

    /// Takes the pending challenge `i` of `impi` out (the others stay).
    fn take_pending(&mut self, impi: &str, i: usize) -> Option<Pending> {
        let v = self.pending.get_mut(impi)?;
        let p = (i < v.len()).then(|| v.remove(i));
        if v.is_empty() {
            self.pending.remove(impi);
        }
        p
    }

    /// Ends every challenge of `impi` (an attempt that failed ends them
    /// all), with their SAs.
    fn drop_pending(&mut self, impi: &str) -> Vec<NetworkAction> {
        self.pending
            .remove(impi)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.server)
            .map(|(_, s)| NetworkAction::RemoveSas(s))
            .collect()
    }

    fn fail(
        &mut self,
        request: &Message<'_>,
        impi: &str,
        status: u16,
        reason: &'static str,
    ) -> Vec<NetworkAction> {
        let mut out = self.refuse(request, status, None);
        out.extend(self.drop_pending(impi));
        out.push(NetworkAction::AuthenticationFailed {
            impi: impi.to_owned(),
            reason,
        });
        out
    }
}

/// The checks of an authenticated REGISTER against the challenge `p`.
fn check(
    config: &NetworkConfig,
    p: &Pending,
    request: &Message<'_>,
    creds: &Auth<'_>,
    ue_addr: IpAddr,
    flow: Flow,
    same_client: bool,
) -> Result<(), Refuse> {
    let refuse = |status, reason| Refuse { status, reason };
    if let Some((row, set)) = &p.server {
        let want = Flow::Protected {
            ue_port: set.ue_offer().port_c,
            pcscf_port: set.pcscf_offer().port_s,
        };
        if flow != want || ue_addr != set.ue_addr() {
            return Err(refuse(403, "not over the SAs of the challenge"));
        }
        // A UE echoes our Security-Server and repeats its Security-Client
        // as it wrote it: rows equal to those, byte for byte, stand (they
        // parsed when we wrote or first received them); others are parsed
        // and compared mechanism by mechanism.
        let rows = |kind| request.rows(kind).map(|h| h.value());
        if !rows(HeaderName::SecurityVerify).eq([row.as_str()]) {
            let verify = request
                .security(HeaderName::SecurityVerify)
                .map_err(|_| refuse(494, "malformed Security-Verify"))?;
            let sent = SecMechanism::parse_list(row).unwrap_or_default();
            if !same_mechanisms(&verify, &sent) {
                return Err(refuse(494, "Security-Verify differs from Security-Server"));
            }
        }
        // TS 33.203 (as commonly implemented): the protected REGISTER
        // repeats the Security-Client of the unprotected one; a change could
        // be a downgrade.
        // Over the SAs of a registration (`same_client` false) it may name
        // the UE's next SA set instead.
        if !rows(HeaderName::SecurityClient).eq(p.client.iter().map(String::as_str)) {
            let client = request
                .security(HeaderName::SecurityClient)
                .map_err(|_| refuse(494, "malformed Security-Client"))?;
            let first: Vec<SecMechanism<'_>> = p
                .client
                .iter()
                .flat_map(|r| SecMechanism::parse_list(r).unwrap_or_default())
                .collect();
            if same_client && !same_mechanisms(&client, &first) {
                return Err(refuse(
                    494,
                    "Security-Client differs from the first REGISTER's",
                ));
            }
        }
    } else if flow != Flow::Unprotected {
        return Err(refuse(403, "protected flow without an agreement"));
    }
    let alg = creds
        .algorithm()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_else(|| "MD5".to_owned());
    let (aka_version, digest) =
        DigestAlgorithm::parse(&alg).map_err(|_| refuse(403, "unknown algorithm"))?;
    if aka_version.is_none() || digest != DigestAlgorithm::Md5 {
        return Err(refuse(403, "not the challenged algorithm"));
    }
    let realm = creds.realm().unwrap_or_default();
    if realm != config.realm {
        return Err(refuse(403, "not our realm"));
    }
    let uri = creds.uri().unwrap_or_default();
    let username = creds.username().unwrap_or_default();
    let qop = creds.param("qop");
    // RFC 2617 §3.2.2: a client answers a challenge that offered qop with
    // one of its values; the RFC 2069 form would drop nc and cnonce.
    if config.qop && qop.as_deref() != Some("auth") {
        return Err(refuse(403, "qop=auth was asked for"));
    }
    let nc = creds.nc();
    let cnonce = creds.cnonce();
    let expected = opensec::digest::try_response(&DigestParams {
        username: &username,
        realm: &realm,
        password: p.password.as_bytes(),
        method: "REGISTER",
        uri: &uri,
        nonce: &p.nonce,
        nc: nc.as_deref(),
        cnonce: cnonce.as_deref(),
        qop: qop.as_deref(),
        algorithm: DigestAlgorithm::Md5,
        body: b"",
    })
    .map_err(|_| refuse(403, "incomplete credentials"))?;
    let got = creds.response().unwrap_or_default();
    if !ct_eq(expected.as_bytes(), got.to_ascii_lowercase().as_bytes()) {
        return Err(refuse(403, "wrong digest response (RES)"));
    }
    Ok(())
}

/// What a REGISTER asks to bind, Contact parsed once for the checks and
/// the binding.
struct Asked<'m> {
    /// Its first Contact (none for `*` or without Contact).
    contact: Option<NameAddr<'m>>,
    /// The expiry it asks for (RFC 3261 §10.2.1.1): the first Contact's
    /// `expires`, else Expires, else 3600.
    expires: u32,
}

impl<'m> Asked<'m> {
    fn of(request: &'m Message<'_>) -> Asked<'m> {
        let contact = match request.contacts() {
            Ok(Some(Contacts::List(l))) => l.into_iter().next(),
            _ => None,
        };
        let expires = contact
            .as_ref()
            .and_then(|c| c.expires())
            .or(request.expires().ok().flatten())
            .unwrap_or(3600);
        Asked { contact, expires }
    }
}

/// `user@host` of the To URI: the IMPI of a UE that sent no credentials.
fn to_user_host(request: &Message<'_>) -> Option<String> {
    let to = request.to().ok()?;
    let sip = to.uri.sip()?;
    Some(format!("{}@{}", sip.user?, sip.host))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::reg::{Credentials, Ue, UeAction, UeConfig};

    struct Rng(u64);

    impl Random for Rng {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                *b = self.0 as u8;
            }
        }
    }

    const K: [u8; 16] = [7; 16];
    const OP: [u8; 16] = [9; 16];

    fn ue_addr(i: usize) -> IpAddr {
        IpAddr::from([10, 1, (i >> 8) as u8, i as u8])
    }

    /// UE `i` registers with sec-agree, subscribes to its reg event and
    /// de-registers; every message goes through bytes; whether it
    /// registered.
    fn cycle(net: &mut Network, i: usize, now: Duration, rng: &mut Rng) -> bool {
        let impi = format!("u{i}@ims.example.org");
        let impu = format!("sip:u{i}@ims.example.org");
        let mut config = UeConfig::new(
            &impi,
            &impu,
            "ims.example.org",
            ue_addr(i),
            "10.0.0.1".parse().unwrap(),
            (1111, 2222),
            (5062, 5064),
        );
        config.reg_event = true;
        let creds = Credentials::Aka {
            k: K,
            op: OpKey::Op(OP),
            sqn_ms: 0,
        };
        let mut ue = Ue::new(config, creds, rng);
        let mut registered = false;
        let mut to_net: VecDeque<(Vec<u8>, Flow, bool)> = VecDeque::new();
        let mut to_ue: VecDeque<(Vec<u8>, Flow, bool)> = VecDeque::new();
        let ue_do = |acts: Vec<UeAction>, q: &mut VecDeque<_>, reg: &mut bool| {
            for a in acts {
                match a {
                    UeAction::Send { request, flow } => {
                        q.push_back((request.to_bytes(), flow, true))
                    }
                    UeAction::Respond { response, flow } => {
                        q.push_back((response.to_bytes(), flow, false))
                    }
                    UeAction::Registered(_) => *reg = true,
                    _ => {}
                }
            }
        };
        for step in 0..2 {
            let acts = if step == 0 {
                ue.register(rng)
            } else {
                ue.deregister(rng)
            };
            ue_do(acts, &mut to_net, &mut registered);
            while !to_net.is_empty() || !to_ue.is_empty() {
                if let Some((bytes, flow, request)) = to_net.pop_front() {
                    let m = Message::parse(&bytes).unwrap();
                    let acts = if request {
                        net.on_request(&m, ue_addr(i), flow, now, rng).unwrap()
                    } else {
                        net.on_response(&m, now)
                    };
                    for a in acts {
                        match a {
                            NetworkAction::Respond(r) => {
                                to_ue.push_back((r.to_bytes(), flow, false))
                            }
                            NetworkAction::Notify { request, flow } => {
                                to_ue.push_back((request.to_bytes(), flow, true))
                            }
                            _ => {}
                        }
                    }
                }
                if let Some((bytes, flow, request)) = to_ue.pop_front() {
                    let m = Message::parse(&bytes).unwrap();
                    let acts = if request {
                        ue.on_request(&m, flow, now, rng).unwrap_or_default()
                    } else {
                        ue.on_response(&m, flow, now, rng)
                    };
                    ue_do(acts, &mut to_net, &mut registered);
                }
            }
        }
        registered
    }

    /// UEs that register, subscribe and leave, one after the other, each
    /// set lingering after its de-registration: the notes of our SPIs
    /// follow the sets alive (they do not grow with every challenge ever
    /// made), and once the last set is gone every per-UE table is empty.
    #[test]
    fn spi_notes_and_per_ue_tables_follow_the_ues_alive() {
        let mut net = Network::new(NetworkConfig::new(
            "ims.example.org",
            "10.0.0.1".parse().unwrap(),
            5066,
            5068,
        ));
        for i in 0..300 {
            net.add_subscriber(
                &format!("u{i}@ims.example.org"),
                Subscriber {
                    k: K,
                    op: OpKey::Op(OP),
                    amf: [0x80, 0],
                    sqn: 0,
                    impus: Vec::new(),
                },
            );
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut now = Duration::from_secs(1);
        let mut most = 0;
        for i in 0..300 {
            assert!(cycle(&mut net, i, now, &mut rng), "UE {i} registered");
            now += Duration::from_millis(100);
            let _ = net.handle_timeout(now);
            // Sets alive: those lingering (DEREGISTRATION_LINGER of 100 ms
            // cycles), two SPIs each.
            let alive = DEREGISTRATION_LINGER.as_millis() as usize / 100 + 1;
            assert!(
                net.spis.len() <= 4 * alive + 8,
                "{} notes for {alive} sets after UE {i}",
                net.spis.len()
            );
            most = most.max(net.spis.len());
        }
        assert!(most >= 2 * 10, "the sets lingered ({most} notes at most)");
        now += DEREGISTRATION_LINGER + Duration::from_secs(40);
        let _ = net.handle_timeout(now);
        assert!(net.bindings.is_empty() && net.bound_impus.is_empty());
        assert!(net.pending.is_empty());
        for i in 0..300 {
            let impi = format!("u{i}@ims.example.org");
            assert!(net.draining.of(&impi).next().is_none());
            assert!(net.reg_subs.of(&impi).is_empty());
            assert!(net.outstanding.of(&impi).is_empty());
        }
    }
}
