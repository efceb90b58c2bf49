//! The UE's registration (TS 24.229, TS 33.203 as commonly implemented, RFC 3310,
//! RFC 4169, RFC 3329, RFC 3261 §10.2), as a sans-IO state machine.
//!
//! # Division of work
//!
//! [`Ue`] builds every REGISTER (Via branch, tags, CSeq, Contact,
//! Security-*, Authorization) and reads every response the caller hands
//! it; it does not run transactions. The caller passes each
//! [`UeAction::Send`] request to a non-INVITE client transaction
//! ([`crate::txn::Transactions::start_client`]) on the flow the action
//! names, gives the final response of that transaction to
//! [`Ue::on_response`] with the flow it came on, and reports a transaction timeout with
//! [`Ue::on_timeout`]. The actions of one call are in the order they must
//! take effect: [`UeAction::InstallSas`] comes before the request that
//! has to travel over those SAs.
//!
//! # The flow of a registration
//!
//! 1. [`Ue::register`]: the initial REGISTER, unprotected, with
//!    Security-Client (one `ipsec-3gpp` offer per configured algorithm
//!    pair, all with our SPIs and ports), `Require`/`Proxy-Require:
//!    sec-agree`, `Supported: path`, and an Authorization with the IMPI,
//!    the realm and empty `nonce` and `response` (TS 24.229).
//! 2. A 401 with `algorithm=AKAv1-MD5` or `AKAv2-MD5`: AUTN is checked
//!    with K, OP/OPc and SQN_MS ([`opensec::aka::verify_autn`]).
//!    - Authentic and fresh: the password is RES (AKAv1) or derived from
//!      RES, IK and CK (AKAv2); the Security-Server offer with the highest
//!      `q` among those naming an algorithm pair we offered is chosen;
//!      the temporary SAs (lifetime [`sa::TEMPORARY_LIFETIME`]) are
//!      installed, then the REGISTER goes over them with the digest
//!      response (`qop=auth` with `nc` and `cnonce` when offered), a
//!      Security-Verify copying every Security-Server row exactly, and
//!      Security-Client again.
//!    - Authentic but stale SQN: a REGISTER with `auts` and a response
//!      computed with an empty password (RFC 3310 §3.4), sent over
//!      temporary SAs set up from this 401's Security-Server, keyed with
//!      the CK and IK of its RAND (f3 and f4 need no SQN), with
//!      Security-Verify (TS 24.229 §5.1.1.5.3 and TS 33.203 as commonly
//!      implemented: the project's 3GPP notes do not cover this case). The
//!      network's next 401 comes back over them; its SAs replace them.
//!      The network replaces its copy as that 401 leaves (the new set has
//!      our same SPIs, so the two cannot stand together), so if that 401
//!      is lost our retransmissions find no SA there: when the AUTS
//!      request's transaction times out, the temporary SAs go and the
//!      registration starts again from the initial REGISTER (SQN is in
//!      step by then), at most [`RESYNC_RESTARTS`] times.
//!    - MAC failure: a REGISTER whose Authorization carries the IMPI,
//!      realm, nonce and algorithm with an empty `response` and no
//!      `auts`, unprotected; then [`UeAction::Failed`] with
//!      [`Error::NetworkAuthenticationFailed`].
//! 3. A 401 with `algorithm=MD5` (or none): RFC 2617 digest with the
//!    configured password, unprotected, for registrars outside IMS.
//! 4. The 200: Service-Route, Path, P-Associated-URI and the granted
//!    expiry (our Contact's `expires`, else Expires) become a
//!    [`Registration`]; the SAs are updated to the registration's lifetime
//!    plus [`sa::LIFETIME_MARGIN`]. [`Ue::poll_timeout`] then gives the
//!    re-registration time ([`super::refresh_after`]).
//! 5. A 423 (RFC 3261 §10.2.8): the same request again, asking for the
//!    Min-Expires it names.
//! 6. Re-registration and de-registration (`Expires: 0`) go over the SAs
//!    with the last challenge's nonce and the next `nc`. With the SPIs and
//!    port-c of a next SA set from the caller ([`Ue::offer_next`]), the
//!    re-REGISTER's Security-Client names them; a registrar that
//!    re-authenticates it starts a **handover** (TS 33.203 §7.4 as commonly
//!    implemented): its 401 comes over the SAs in use, the new set is
//!    installed beside them, the answer goes over the new set, and the old
//!    set is removed only once the new one carried the 200 (NOTIFYs that
//!    cross the handover are taken over either set). A failure on the way
//!    removes both (fail closed). A registrar that challenges a
//!    re-registration without a next set, or a de-registration, gets
//!    [`Error::ReauthenticationUnsupported`].
//! 7. The reg event (TS 24.229 §5.1.1.3, RFC 3680; unless
//!    [`UeConfig::reg_event`] is off): after the 200 to the initial
//!    REGISTER, a SUBSCRIBE to our IMPU (`Event: reg`, `Accept:
//!    application/reginfo+xml`, the registration's expiry, the
//!    Service-Route as Route) goes on the same flow as the REGISTERs; its
//!    responses go to [`Ue::on_response`] too (told apart by Call-ID), and
//!    the caller gives the network's requests to [`Ue::on_request`], which
//!    answers the NOTIFYs ([`UeAction::Respond`]) and acts on our binding:
//!    `shortened` ([`UeAction::Shortened`]), `deactivated`, `probation`,
//!    `rejected` ([`UeAction::DeregisteredByNetwork`], SAs removed; the
//!    first two register again). The subscription is refreshed with the
//!    registration and ended (`Expires: 0`) before de-registering. A
//!    SUBSCRIBE's transaction timeout needs no report: the
//!    subscription's Timer N (64·T1) ends it ([`UeAction::RegEventEnded`]).

use std::net::IpAddr;
use std::time::Duration;

use opensec::aka::{self, Password};
use opensec::digest::{DigestAlgorithm, DigestParams};
use opensec::{AuthAlgorithm, EncAlgorithm};

mod subscription;

use super::sa::{self, Agreement, IpsecMode, IpsecOffer, SaSet, Side};
use super::{Error, Flow, OpKey, Random, hostport, refresh_after, token};
use crate::regevent::ContactEvent;
use crate::sip::header::Contacts;
use crate::sip::{HeaderName, Message, Method};

/// The UE's credentials (zeroized on drop, redacted in `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// An ISIM/USIM: K, OP or OPc, and SQN_MS, the highest SQN accepted
    /// so far (read it back with [`Ue::sqn_ms`] to keep it across runs).
    Aka {
        /// K.
        k: [u8; 16],
        /// OP or OPc.
        op: OpKey,
        /// SQN_MS.
        sqn_ms: u64,
    },
    /// A password for RFC 2617 digest (registrars outside IMS).
    Password(String),
}

impl Drop for Credentials {
    fn drop(&mut self) {
        match self {
            Credentials::Aka { k, op, .. } => {
                zeroize::Zeroize::zeroize(k);
                op.zeroize();
            }
            Credentials::Password(p) => zeroize::Zeroize::zeroize(p),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Aka { sqn_ms, .. } => f
                .debug_struct("Aka")
                .field("sqn_ms", sqn_ms)
                .finish_non_exhaustive(),
            Credentials::Password(_) => f.write_str("Password(<redacted>)"),
        }
    }
}

/// What the UE registers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UeConfig {
    /// The private identity (IMPI), the digest `username`.
    pub impi: String,
    /// The public identity (IMPU) registered, a SIP URI (From and To).
    pub impu: String,
    /// The home network domain: the Request-URI is `sip:` it, and it is
    /// the `realm` of the initial Authorization.
    pub home_domain: String,
    /// The UE's address.
    pub ue_addr: IpAddr,
    /// The P-CSCF's address.
    pub pcscf_addr: IpAddr,
    /// The UE's unprotected port.
    pub port: u16,
    /// The `+sip.instance` URN (without the angle brackets), e.g.
    /// `urn:gsma:imei:35390600-123456-0`.
    pub instance: String,
    /// The expiry asked for, in seconds.
    pub expires: u32,
    /// Whether to negotiate `ipsec-3gpp` (Security-Client and
    /// `sec-agree`); off for registrars outside IMS.
    pub sec_agree: bool,
    /// The (alg, ealg) pairs offered, in our order of preference.
    pub algorithms: Vec<(AuthAlgorithm, EncAlgorithm)>,
    /// The `mod` of every offer; the P-CSCF must answer in it.
    pub mode: IpsecMode,
    /// Our `spi-c`.
    pub spi_c: u32,
    /// Our `spi-s`.
    pub spi_s: u32,
    /// Our protected client port.
    pub port_c: u16,
    /// Our protected server port.
    pub port_s: u16,
    /// Whether to subscribe to the reg event package of our IMPU after
    /// the initial registration (TS 24.229 §5.1.1.3, RFC 3680; on by
    /// default); see [`Ue::on_request`].
    pub reg_event: bool,
    /// The transport the UE sends over: its Via, and `;transport=tcp` on
    /// its Contact for TCP (UDP by default).
    pub protocol: crate::txn::Protocol,
}

impl UeConfig {
    /// A configuration with the usual values: port 5060, 600000 s,
    /// sec-agree with hmac-sha-1-96 and hmac-md5-96, each with aes-cbc,
    /// des-ede3-cbc and null; the SPIs and protected ports the caller
    /// chose (SPIs are picked by their receiver, here us: any values
    /// not in use locally, above 255).
    pub fn new(
        impi: &str,
        impu: &str,
        home_domain: &str,
        ue_addr: IpAddr,
        pcscf_addr: IpAddr,
        spis: (u32, u32),
        ports: (u16, u16),
    ) -> UeConfig {
        let mut algorithms = Vec::new();
        for a in [AuthAlgorithm::HmacSha1_96, AuthAlgorithm::HmacMd5_96] {
            for e in [
                EncAlgorithm::AesCbc,
                EncAlgorithm::TripleDesCbc,
                EncAlgorithm::Null,
            ] {
                algorithms.push((a, e));
            }
        }
        UeConfig {
            impi: impi.to_owned(),
            impu: impu.to_owned(),
            home_domain: home_domain.to_owned(),
            ue_addr,
            pcscf_addr,
            port: 5060,
            instance: "urn:gsma:imei:35390600-123456-0".to_owned(),
            expires: 600_000,
            sec_agree: true,
            algorithms,
            mode: IpsecMode::Transport,
            spi_c: spis.0,
            spi_s: spis.1,
            port_c: ports.0,
            port_s: ports.1,
            reg_event: true,
            protocol: crate::txn::Protocol::Udp,
        }
    }

    /// Our offer for one algorithm pair.
    fn offer(&self, alg: AuthAlgorithm, ealg: EncAlgorithm) -> IpsecOffer {
        IpsecOffer {
            alg,
            ealg,
            mode: self.mode,
            spi_c: self.spi_c,
            spi_s: self.spi_s,
            port_c: self.port_c,
            port_s: self.port_s,
        }
    }

    /// The Security-Client value: every offer, in order.
    fn security_client(&self) -> String {
        self.algorithms
            .iter()
            .map(|(a, e)| self.offer(*a, *e).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the caller does for the UE.
#[derive(Debug)]
#[non_exhaustive]
pub enum UeAction {
    /// Send this request (through a client transaction) on `flow`.
    Send {
        /// The REGISTER.
        request: Message<'static>,
        /// The flow: over the SAs or not.
        flow: Flow,
    },
    /// Install these SAs and policies (before the next `Send`).
    InstallSas(SaSet),
    /// Replace the lifetime of these installed SAs (setkey `update`).
    UpdateSas(SaSet),
    /// Remove these SAs and policies.
    RemoveSas(SaSet),
    /// Registered (or re-registered).
    Registered(Registration),
    /// De-registered: the registrar confirmed `Expires: 0`.
    Deregistered,
    /// The registration failed and the machine stopped.
    Failed(Error),
    /// Answer a request we received (a NOTIFY of the reg event) with this
    /// response, through its server transaction, on `flow`.
    Respond {
        /// The response.
        response: Message<'static>,
        /// The flow the request came on.
        flow: Flow,
    },
    /// The registrar shortened the registration (reg event `shortened`,
    /// RFC 3680 §5.1): the UE re-registers at the new `refresh_at`.
    Shortened(Registration),
    /// The network ended the registration (reg event, RFC 3680 §5.1:
    /// our contact `terminated`); the SAs were removed before this. With
    /// `reregister_after` the UE registers again after that long
    /// (`deactivated`: at once, `probation`: after `retry-after`);
    /// without it (`rejected`, `expired`, `unregistered`) it stopped.
    DeregisteredByNetwork {
        /// The contact's event.
        event: ContactEvent,
        /// When the UE registers again, if it does.
        reregister_after: Option<Duration>,
    },
    /// The reg event subscription ended while registered (refused,
    /// terminated by the notifier, or no NOTIFY in time); the
    /// registration goes on without it.
    RegEventEnded,
    /// The challenge's SQN was not fresh (TS 33.102 §6.3.3): the UE
    /// answers with AUTS so the network re-synchronises, and registration
    /// goes on with the next challenge.
    Resynchronising {
        /// The SQN the network sent.
        sqn: u64,
        /// The highest SQN we had accepted, which AUTS carries.
        sqn_ms: u64,
    },
}

/// What a successful registration granted (RFC 3261 §10.3, RFC 3608,
/// RFC 3327, RFC 3455).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Service-Route values, in order: the route set of requests we
    /// originate.
    pub service_routes: Vec<String>,
    /// Path values, in order.
    pub paths: Vec<String>,
    /// P-Associated-URI values: our implicitly registered identities.
    pub associated_uris: Vec<String>,
    /// The granted expiry.
    pub expires: Duration,
    /// When the registration ends (`now` of the 200 plus `expires`).
    pub expires_at: Duration,
    /// When we re-register.
    pub refresh_at: Duration,
}

/// The last challenge, kept to answer the next requests of the
/// registration (RFC 2617 §3.2.2: same nonce, next `nc`).
struct Challenge {
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: String,
    digest: DigestAlgorithm,
    qop: bool,
    nc: u32,
    password: Password,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// The initial (or AUTS) REGISTER is out.
    AwaitChallenge,
    /// The authenticated REGISTER is out; `deadline` is the temporary SAs'.
    AwaitResult {
        deadline: Option<Duration>,
    },
    Registered,
    /// Deregistered by the network on probation: registers again at
    /// `until`.
    Waiting {
        until: Duration,
    },
    /// A re-registration is out.
    AwaitRefresh,
    AwaitDeregistration,
    Done,
}

/// The UE's registration state machine; see the [module
/// documentation](self).
pub struct Ue {
    config: Config,
    state: State,
    call_id: String,
    from_tag: String,
    cseq: u32,
    challenge: Option<Challenge>,
    /// The Security-Server rows of the challenge, copied into
    /// Security-Verify.
    server_rows: Vec<String>,
    sas: Option<SaSet>,
    /// The registration's SA set during a handover: kept until the new
    /// set carries a final response.
    retiring: Option<SaSet>,
    /// The SPIs and port-c of our next SA set ([`Ue::offer_next`]).
    next: Option<(u32, u32, u16)>,
    registration: Option<Registration>,
    /// The expiry asked for: the configured one, raised by a 423.
    expires: u32,
    /// The reg event subscription, once asked for.
    reg_sub: Option<subscription::RegSub>,
    /// The last `now` the caller gave (for the timers of requests sent
    /// from calls without one).
    now: Duration,
    /// Whether the REGISTER out is an AUTS request.
    auts_out: bool,
    /// Restarts after an AUTS request timed out, this registration.
    restarts: u8,
}

/// How many times a registration starts again when its AUTS request's
/// transaction timed out (see the [module documentation](self)).
pub const RESYNC_RESTARTS: u8 = 2;

struct Config {
    c: UeConfig,
    credentials: Credentials,
}

impl std::fmt::Debug for Ue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ue")
            .field("state", &self.state)
            .field("cseq", &self.cseq)
            .field("registration", &self.registration)
            .finish_non_exhaustive()
    }
}

impl Ue {
    /// A UE with `config` and `credentials`; the Call-ID and From tag
    /// (kept for the registration's life, RFC 3261 §10.2) are drawn from
    /// `rng`.
    pub fn new(config: UeConfig, credentials: Credentials, rng: &mut dyn Random) -> Ue {
        Ue {
            expires: config.expires,
            config: Config {
                c: config,
                credentials,
            },
            state: State::Idle,
            call_id: token(rng, 12),
            from_tag: token(rng, 6),
            cseq: 0,
            challenge: None,
            server_rows: Vec::new(),
            sas: None,
            retiring: None,
            next: None,
            registration: None,
            reg_sub: None,
            now: Duration::ZERO,
            auts_out: false,
            restarts: 0,
        }
    }

    /// SQN_MS after what the UE accepted (for AKA credentials).
    pub fn sqn_ms(&self) -> Option<u64> {
        match self.config.credentials {
            Credentials::Aka { sqn_ms, .. } => Some(sqn_ms),
            Credentials::Password(_) => None,
        }
    }

    /// The current registration, if registered.
    pub fn registration(&self) -> Option<&Registration> {
        self.registration.as_ref()
    }

    /// The SAs in use, if any.
    pub fn sas(&self) -> Option<&SaSet> {
        self.sas.as_ref()
    }

    /// The registration's SA set while a handover to [`Ue::sas`] is under
    /// way (see [`Ue::offer_next`]).
    pub fn retiring_sas(&self) -> Option<&SaSet> {
        self.retiring.as_ref()
    }

    /// Gives the SPIs (spi-c, spi-s) and the protected client port of our
    /// next SA set: the next re-registration offers them in its
    /// Security-Client (our port-s stays: it is the Contact's), and a
    /// registrar that re-authenticates it (TS 33.203 §7.4 as commonly
    /// implemented) sets up the new set beside the one in use; the old set
    /// is removed when the new one carried the 200. A later call replaces
    /// an offer not used yet. Without one, a challenged re-registration
    /// ends with [`Error::ReauthenticationUnsupported`]. The SPIs must be
    /// above 255, distinct, and not those of the set in use; the port not
    /// one of its ports.
    pub fn offer_next(&mut self, spis: (u32, u32), port_c: u16) -> Result<(), Error> {
        let c = &self.config.c;
        let bad = |what| Error::BadOffer { what };
        let (spi_c, spi_s) = spis;
        if spi_c <= 255 || spi_s <= 255 || spi_c == spi_s {
            return Err(bad("next SPIs must be distinct and above 255"));
        }
        let (used_spis, used_ports) = match &self.sas {
            Some(s) => {
                let o = s.ue_offer();
                ([o.spi_c, o.spi_s], [o.port_c, o.port_s])
            }
            None => ([c.spi_c, c.spi_s], [c.port_c, c.port_s]),
        };
        if used_spis.contains(&spi_c) || used_spis.contains(&spi_s) {
            return Err(bad("next SPIs are in use"));
        }
        if used_ports.contains(&port_c) || port_c == c.port_s {
            return Err(bad("next port-c is in use"));
        }
        self.next = Some((spi_c, spi_s, port_c));
        Ok(())
    }

    /// Whether a request that came on `flow` may be read: any without
    /// SAs; while SAs are in place, only one over them from the P-CSCF's
    /// port-c to our port-s (TS 33.203), of the set in use or of the one
    /// a handover retires. Anyone can send a datagram in clear.
    pub fn accepts_request(&self, flow: Flow) -> bool {
        self.server_flow_ok(flow)
    }

    /// Whether a response that came on `flow` may be read: any without
    /// SAs; while SAs are in place, only one over the flow our requests
    /// take (our port-c to the P-CSCF's port-s), or the retiring set's.
    pub fn accepts_response(&self, flow: Flow) -> bool {
        self.client_flow_ok(flow)
    }

    /// The Call-ID of the registration.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Whether the machine stopped (failed or de-registered).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Starts the registration: the initial REGISTER.
    pub fn register(&mut self, rng: &mut dyn Random) -> Vec<UeAction> {
        if self.state != State::Idle {
            return Vec::new();
        }
        self.state = State::AwaitChallenge;
        self.restarts = 0;
        let auth = self.initial_authorization();
        self.send(rng, Flow::Unprotected, self.expires, Some(auth))
    }

    /// When [`Ue::handle_timeout`] wants to be called: the
    /// re-registration time, or the end of the temporary SAs.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let reg = match self.state {
            State::Registered => self.registration.as_ref().map(|r| r.refresh_at),
            State::AwaitResult { deadline } => deadline,
            State::Waiting { until } => Some(until),
            _ => None,
        };
        [reg, self.subscription_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether [`Ue::handle_timeout`] at `now` re-registers: the moment
    /// to give the next SA set ([`Ue::offer_next`]) from SPIs held just
    /// now (an SPI held with `getspi` lives 30 s at the SAD, a
    /// registration far longer).
    pub fn refresh_due(&self, now: Duration) -> bool {
        self.state == State::Registered
            && self
                .registration
                .as_ref()
                .is_some_and(|r| now >= r.refresh_at)
    }

    /// Acts on the time: re-registers when due; gives up when the
    /// temporary SAs expired unanswered.
    pub fn handle_timeout(&mut self, now: Duration, rng: &mut dyn Random) -> Vec<UeAction> {
        self.now = now;
        let mut out = self.subscription_handle_timeout(now, rng);
        match self.state {
            State::Registered => {
                let due = self
                    .registration
                    .as_ref()
                    .is_some_and(|r| now >= r.refresh_at);
                if due {
                    self.state = State::AwaitRefresh;
                    if let (Some((spi_c, spi_s, port_c)), true) = (self.next, self.sas.is_some()) {
                        // Our Security-Client names the next set from now on.
                        let c = &mut self.config.c;
                        (c.spi_c, c.spi_s, c.port_c) = (spi_c, spi_s, port_c);
                        self.next = None;
                    }
                    out.extend(self.send_authenticated(rng, self.expires));
                }
            }
            State::AwaitResult { deadline: Some(d) } if now >= d => {
                out.extend(self.fail(Error::Timeout))
            }
            State::Waiting { until } if now >= until => {
                self.state = State::Idle;
                out.extend(self.register(rng));
            }
            _ => {}
        }
        out
    }

    /// The transaction of the last REGISTER timed out (RFC 3261
    /// §17.1.2.2 Timer F): the registration fails; but after an AUTS
    /// request, the temporary SAs go and the registration starts again
    /// with the initial REGISTER (at most [`RESYNC_RESTARTS`] times; not
    /// during a handover, which fails as any other: the UE is registered
    /// over the set it would leave).
    pub fn on_timeout(&mut self, rng: &mut dyn Random) -> Vec<UeAction> {
        match self.state {
            State::Idle | State::Registered | State::Done => Vec::new(),
            State::AwaitChallenge
                if self.auts_out && self.retiring.is_none() && self.restarts < RESYNC_RESTARTS =>
            {
                self.restarts += 1;
                self.auts_out = false;
                self.server_rows.clear();
                let mut out: Vec<UeAction> = self
                    .sas
                    .take()
                    .map(UeAction::RemoveSas)
                    .into_iter()
                    .collect();
                let auth = self.initial_authorization();
                out.extend(self.send(rng, Flow::Unprotected, self.expires, Some(auth)));
                out
            }
            _ => self.fail(Error::Timeout),
        }
    }

    /// De-registers (`Expires: 0`, RFC 3261 §10.2.2) over the SAs; the
    /// reg event subscription is ended first (SUBSCRIBE with `Expires:
    /// 0` in its dialog, RFC 6665 §4.1.2.3).
    pub fn deregister(&mut self, rng: &mut dyn Random) -> Vec<UeAction> {
        if self.state != State::Registered {
            return Vec::new();
        }
        let mut out = self.unsubscribe(rng);
        self.state = State::AwaitDeregistration;
        out.extend(self.send_authenticated(rng, 0));
        out
    }

    /// Reads the final response of the last REGISTER's transaction, which
    /// came on `flow`. Responses to other requests (another Call-ID or
    /// CSeq), provisional ones, and, while SAs are in place, responses
    /// that did not come over them (anyone can send a datagram in clear)
    /// are ignored.
    pub fn on_response(
        &mut self,
        response: &Message<'_>,
        flow: Flow,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Vec<UeAction> {
        self.now = now;
        if let Some(out) = self.on_subscribe_response(response, flow, now, rng) {
            return out;
        }
        let Some(status) = response.status() else {
            return Vec::new();
        };
        let ours = response.call_id().is_ok_and(|c| c == self.call_id)
            && response
                .cseq()
                .is_ok_and(|c| c.seq == self.cseq && c.method == Method::Register);
        if !ours
            || status < 200
            || matches!(self.state, State::Idle | State::Registered | State::Done)
        {
            return Vec::new();
        }
        if let Some(s) = &self.sas {
            let protected = Flow::Protected {
                ue_port: s.ue_offer().port_c,
                pcscf_port: s.pcscf_offer().port_s,
            };
            if flow != protected {
                return Vec::new();
            }
        }
        match (self.state, status) {
            (State::AwaitChallenge, 401) => self.on_challenge(response, now, rng),
            // A 401 to the REGISTER that carried our response refuses the
            // credentials (RFC 3261 §22.2: do not retry them), unless the
            // registrar says only its nonce was stale (RFC 2617 §3.2.1).
            (State::AwaitResult { .. }, 401) if stale(response) => {
                self.on_challenge(response, now, rng)
            }
            (State::AwaitResult { .. }, 401) => self.fail(Error::CredentialsRefused),
            (State::AwaitRefresh, 401) if self.can_hand_over() => {
                self.on_challenge(response, now, rng)
            }
            (State::AwaitRefresh | State::AwaitDeregistration, 401 | 407) => {
                self.fail(Error::ReauthenticationUnsupported)
            }
            (State::AwaitDeregistration, 200..=299) => {
                let mut out = Vec::new();
                if let Some(s) = self.sas.take() {
                    out.push(UeAction::RemoveSas(s));
                }
                self.registration = None;
                self.state = State::Done;
                out.push(UeAction::Deregistered);
                out
            }
            (_, 200..=299) => self.on_ok(response, now, rng),
            (_, 423) => self.on_interval_too_brief(response, rng),
            (_, s) => self.fail(Error::Rejected { status: s }),
        }
    }

    /// RFC 3261 §10.2.8: the same request again, asking for at least
    /// Min-Expires (once it is above what we asked; else we stop).
    fn on_interval_too_brief(
        &mut self,
        response: &Message<'_>,
        rng: &mut dyn Random,
    ) -> Vec<UeAction> {
        let min = response.min_expires().ok().flatten();
        let Some(min) = min.filter(|m| *m > self.expires) else {
            return self.fail(Error::Rejected { status: 423 });
        };
        self.expires = min;
        match self.state {
            State::AwaitChallenge => {
                let auth = self.initial_authorization();
                self.send(rng, Flow::Unprotected, self.expires, Some(auth))
            }
            State::AwaitResult { .. } | State::AwaitRefresh => {
                self.send_authenticated(rng, self.expires)
            }
            _ => self.fail(Error::Rejected { status: 423 }),
        }
    }

    fn on_challenge(
        &mut self,
        response: &Message<'_>,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Vec<UeAction> {
        match self.challenge_actions(response, now, rng) {
            Ok(a) => a,
            Err(e) => self.fail(e),
        }
    }

    fn challenge_actions(
        &mut self,
        response: &Message<'_>,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Result<Vec<UeAction>, Error> {
        self.auts_out = false;
        let bad = |what| Error::BadChallenge { what };
        let challenges = response
            .www_authenticate()
            .map_err(|_| bad("malformed WWW-Authenticate"))?;
        let ch = challenges
            .iter()
            .find(|c| c.is_digest())
            .ok_or(bad("no Digest challenge"))?;
        let realm = ch.realm().ok_or(bad("no realm"))?.into_owned();
        let nonce = ch.nonce().ok_or(bad("no nonce"))?.into_owned();
        let algorithm = ch
            .algorithm()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_else(|| "MD5".to_owned());
        let (aka_version, digest) =
            DigestAlgorithm::parse(&algorithm).map_err(|_| bad("unknown algorithm"))?;
        let qop_list = ch.qop();
        if !qop_list.is_empty() && !qop_list.iter().any(|q| q.eq_ignore_ascii_case("auth")) {
            return Err(bad("qop without auth"));
        }
        let qop = !qop_list.is_empty();
        if digest == DigestAlgorithm::Md5Sess {
            return Err(bad("MD5-sess is not supported"));
        }
        let opaque = ch.opaque().map(|o| o.into_owned());
        let mut out = Vec::new();
        if self.state == State::AwaitRefresh {
            // A handover: the registration's set stays until the new one
            // carried a final response.
            self.retiring = self.sas.take();
        } else if let Some(old) = self.sas.take() {
            // A new challenge voids SAs set up for the previous one.
            out.push(UeAction::RemoveSas(old));
        }
        let mut ck_ik = None;
        let password = match (aka_version, &mut self.config.credentials) {
            (Some(version), Credentials::Aka { k, op, sqn_ms }) => {
                let n = aka::parse_nonce(&nonce).map_err(|_| bad("AKA nonce is not RAND||AUTN"))?;
                let m = op.milenage(k);
                match aka::verify_autn(&m, &n.rand, &n.autn, *sqn_ms) {
                    Ok(r) => {
                        *sqn_ms = r.sqn;
                        ck_ik = Some((r.ck, r.ik));
                        aka::password(version, &r.res, &r.ik, &r.ck)
                    }
                    Err(opensec::Error::SyncFailure { auts, sqn, sqn_ms }) => {
                        out.push(UeAction::Resynchronising { sqn, sqn_ms });
                        // TS 24.229 §5.1.1.5.3 / TS 33.203 §7.1 as
                        // commonly implemented: the AUTS request goes
                        // over temporary SAs set up from this 401, keyed
                        // with its CK and IK (f3, f4 of RAND: they do not
                        // depend on SQN, so a stale AUTN still gives them).
                        let v = m.f2345(&n.rand);
                        let flow = self.auts_sas(response, &v.ck, &v.ik, &mut out)?;
                        // RFC 3310 §3.4: AUTS, and the credentials of an
                        // empty password.
                        self.challenge = Some(Challenge {
                            realm,
                            nonce,
                            opaque,
                            algorithm,
                            digest,
                            qop,
                            nc: 0,
                            password: aka::akav1_password(&[]),
                        });
                        self.state = State::AwaitChallenge;
                        let auth = self.authorization(rng, Some(&opensec::base64_encode(&auts)))?;
                        out.extend(self.send(rng, flow, self.expires, Some(auth)));
                        self.challenge = None;
                        self.auts_out = true;
                        return Ok(out);
                    }
                    Err(opensec::Error::MacFailure) => {
                        // TS 24.229 §5.1.1.5.3 (as commonly implemented):
                        // an empty response, no auts, no SAs; then stop.
                        let auth = format!(
                            "Digest username=\"{}\",realm=\"{}\",nonce=\"{}\",uri=\"{}\",response=\"\",algorithm={}",
                            self.config.c.impi,
                            realm,
                            nonce,
                            self.request_uri(),
                            algorithm
                        );
                        self.state = State::AwaitChallenge;
                        out.extend(self.send(rng, Flow::Unprotected, self.expires, Some(auth)));
                        out.extend(self.fail(Error::NetworkAuthenticationFailed));
                        return Ok(out);
                    }
                    Err(e) => return Err(Error::Crypto(e)),
                }
            }
            (None, Credentials::Password(p)) => aka::akav1_password(p.as_bytes()),
            (Some(_), Credentials::Password(_)) => {
                return Err(bad("AKA challenge without AKA credentials"));
            }
            (None, Credentials::Aka { .. }) => {
                return Err(bad("digest challenge without a password"));
            }
        };
        self.challenge = Some(Challenge {
            realm,
            nonce,
            opaque,
            algorithm,
            digest,
            qop,
            nc: 0,
            password,
        });
        // Security agreement: needs our offers, the server's and CK/IK.
        let mut flow = Flow::Unprotected;
        let handover = self.retiring.is_some();
        self.server_rows.clear();
        if self.config.c.sec_agree {
            let server = self.choose_server_offer(response)?;
            if let (Some((pcscf, ue)), Some((ck, ik))) = (server, ck_ik) {
                let agreement = Agreement {
                    ue_addr: self.config.c.ue_addr,
                    pcscf_addr: self.config.c.pcscf_addr,
                    ue,
                    pcscf,
                };
                let set = SaSet::new(Side::Ue, &agreement, &ck, &ik, sa::TEMPORARY_LIFETIME)?;
                self.server_rows = response
                    .rows(HeaderName::SecurityServer)
                    .map(|h| h.value().to_owned())
                    .collect();
                flow = Flow::Protected {
                    ue_port: ue.port_c,
                    pcscf_port: pcscf.port_s,
                };
                out.push(UeAction::InstallSas(set.clone()));
                self.sas = Some(set);
            }
        }
        if handover && self.sas.is_none() {
            // Fail closed: a handover that would leave the SAs.
            return Err(bad("a re-authentication without new SAs"));
        }
        let auth = self.authorization(rng, None)?;
        // TS 24.229 reg-await-auth: the temporary SAs bound the wait.
        let deadline = self
            .sas
            .as_ref()
            .map(|_| now.saturating_add(sa::TEMPORARY_LIFETIME));
        self.state = State::AwaitResult { deadline };
        out.extend(self.send(rng, flow, self.expires, Some(auth)));
        Ok(out)
    }

    /// The temporary SAs of an AUTS request, from the challenge's
    /// Security-Server and the CK/IK of its RAND; the flow over them
    /// (unprotected without sec-agree or without a usable offer... the
    /// latter is an error, as for any challenge).
    fn auts_sas(
        &mut self,
        response: &Message<'_>,
        ck: &[u8; 16],
        ik: &[u8; 16],
        out: &mut Vec<UeAction>,
    ) -> Result<Flow, Error> {
        self.server_rows.clear();
        if !self.config.c.sec_agree {
            return Ok(Flow::Unprotected);
        }
        let Some((pcscf, ue)) = self.choose_server_offer(response)? else {
            return Ok(Flow::Unprotected);
        };
        let agreement = Agreement {
            ue_addr: self.config.c.ue_addr,
            pcscf_addr: self.config.c.pcscf_addr,
            ue,
            pcscf,
        };
        let set = SaSet::new(Side::Ue, &agreement, ck, ik, sa::TEMPORARY_LIFETIME)?;
        self.server_rows = response
            .rows(HeaderName::SecurityServer)
            .map(|h| h.value().to_owned())
            .collect();
        out.push(UeAction::InstallSas(set.clone()));
        self.sas = Some(set);
        Ok(Flow::Protected {
            ue_port: ue.port_c,
            pcscf_port: pcscf.port_s,
        })
    }

    /// The Security-Server offer to use (RFC 3329 §2.3.1, TS 33.203):
    /// the highest `q` among the `ipsec-3gpp` offers whose algorithms and
    /// mode we offered (an absent `q` ranks below any given one; ties go to
    /// the first); with our matching offer. `None` without Security-Server.
    /// When none matches, the error names why the last one did not.
    fn choose_server_offer(
        &self,
        response: &Message<'_>,
    ) -> Result<Option<(IpsecOffer, IpsecOffer)>, Error> {
        let bad = |what| Error::BadResponse { what };
        let list = response
            .security(HeaderName::SecurityServer)
            .map_err(|_| bad("malformed Security-Server"))?;
        if list.is_empty() {
            return Ok(None);
        }
        let mut best: Option<(i32, IpsecOffer)> = None;
        let mut why = bad("no Security-Server offer matches ours");
        let no_common =
            "no algorithm in common: the Security-Server names no alg/ealg pair we offered";
        for m in list.iter().filter(|m| m.is_ipsec_3gpp()) {
            let o = match IpsecOffer::from_mechanism(m) {
                Ok(o) => o,
                Err(Error::BadOffer {
                    what: "unknown alg" | "unknown ealg",
                }) => {
                    why = bad(no_common);
                    continue;
                }
                Err(e) => {
                    why = e;
                    continue;
                }
            };
            if o.mode != self.config.c.mode {
                why = bad("Security-Server offer in another mod than ours");
                continue;
            }
            if !self.config.c.algorithms.contains(&(o.alg, o.ealg)) {
                why = bad(no_common);
                continue;
            }
            let q = m.q.map_or(-1, |q| i32::from(q.0));
            if best.as_ref().is_none_or(|(bq, _)| q > *bq) {
                best = Some((q, o));
            }
        }
        let (_, pcscf) = best.ok_or(why)?;
        Ok(Some((pcscf, self.config.c.offer(pcscf.alg, pcscf.ealg))))
    }

    fn on_ok(
        &mut self,
        response: &Message<'_>,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Vec<UeAction> {
        // TS 24.229 §5.1.1.3: after the initial registration, subscribe
        // to the reg event of our IMPU.
        let initial = matches!(
            self.state,
            State::AwaitChallenge | State::AwaitResult { .. }
        ) && self.retiring.is_none();
        match self.registration_of(response, now) {
            Ok(r) => {
                let mut out = Vec::new();
                if let Some(s) = self.sas.take() {
                    let s = s.with_lifetime(r.expires.saturating_add(sa::LIFETIME_MARGIN));
                    out.push(UeAction::UpdateSas(s.clone()));
                    self.sas = Some(s);
                }
                // The end of a handover: the new set carried the 200.
                if let Some(old) = self.retiring.take() {
                    out.push(UeAction::RemoveSas(old));
                }
                self.registration = Some(r.clone());
                self.state = State::Registered;
                out.push(UeAction::Registered(r));
                if initial {
                    out.extend(self.subscribe(now, rng));
                }
                out
            }
            Err(e) => self.fail(e),
        }
    }

    fn registration_of(
        &self,
        response: &Message<'_>,
        now: Duration,
    ) -> Result<Registration, Error> {
        let bad = |what| Error::BadResponse { what };
        let names = |r: Result<Vec<crate::sip::header::NameAddr<'_>>, crate::sip::Error>, what| {
            r.map(|v| v.iter().map(|a| a.to_string()).collect::<Vec<_>>())
                .map_err(|_| bad(what))
        };
        let service_routes = names(response.service_routes(), "malformed Service-Route")?;
        let paths = names(response.paths(), "malformed Path")?;
        let associated_uris = names(response.p_associated_uris(), "malformed P-Associated-URI")?;
        // RFC 3261 §10.2.4: our binding's expires parameter, else Expires.
        let contact_expires = match response.contacts().map_err(|_| bad("malformed Contact"))? {
            Some(Contacts::List(list)) => list
                .iter()
                .find(|a| {
                    a.sip_instance()
                        .is_some_and(|i| i.trim_matches(['<', '>']) == self.config.c.instance)
                        || a.uri.as_str() == self.contact_uri()
                })
                .and_then(|a| a.expires()),
            _ => None,
        };
        let expires = match contact_expires {
            Some(e) => e,
            None => response
                .expires()
                .map_err(|_| bad("malformed Expires"))?
                .ok_or(bad("200 without Contact expires or Expires"))?,
        };
        if expires == 0 {
            return Err(bad("200 granting no time"));
        }
        let expires = Duration::from_secs(u64::from(expires));
        Ok(Registration {
            service_routes,
            paths,
            associated_uris,
            expires,
            expires_at: now.saturating_add(expires),
            refresh_at: now.saturating_add(refresh_after(expires)),
        })
    }

    fn fail(&mut self, e: Error) -> Vec<UeAction> {
        let mut out = Vec::new();
        out.extend(self.sas.take().map(UeAction::RemoveSas));
        out.extend(self.retiring.take().map(UeAction::RemoveSas));
        self.registration = None;
        self.challenge = None;
        self.reg_sub = None;
        self.state = State::Done;
        out.push(UeAction::Failed(e));
        out
    }

    fn request_uri(&self) -> String {
        format!("sip:{}", self.config.c.home_domain)
    }

    fn contact_port(&self) -> u16 {
        if self.config.c.sec_agree {
            self.config.c.port_s
        } else {
            self.config.c.port
        }
    }

    /// Our Contact URI, where the network's requests reach us: our
    /// port-s under sec-agree (TS 33.203), else our port.
    pub fn contact(&self) -> String {
        self.contact_uri()
    }

    fn contact_uri(&self) -> String {
        format!(
            "sip:{}{}",
            hostport(self.config.c.ue_addr, self.contact_port()),
            self.config.c.protocol.uri_param()
        )
    }

    /// TS 24.229: username, realm, uri, empty nonce and response.
    fn initial_authorization(&self) -> String {
        let c = &self.config.c;
        format!(
            "Digest username=\"{}\",realm=\"{}\",uri=\"{}\",nonce=\"\",response=\"\"",
            c.impi,
            c.home_domain,
            self.request_uri()
        )
    }

    /// The credentials for the current challenge (next `nc`).
    fn authorization(&mut self, rng: &mut dyn Random, auts: Option<&str>) -> Result<String, Error> {
        let uri = self.request_uri();
        let impi = self.config.c.impi.clone();
        let ch = self.challenge.as_mut().ok_or(Error::BadChallenge {
            what: "no challenge",
        })?;
        ch.nc = ch.nc.wrapping_add(1);
        let nc = format!("{:08x}", ch.nc);
        let cnonce = token(rng, 8);
        let response = opensec::digest::try_response(&DigestParams {
            username: &impi,
            realm: &ch.realm,
            password: ch.password.as_bytes(),
            method: "REGISTER",
            uri: &uri,
            nonce: &ch.nonce,
            nc: ch.qop.then_some(nc.as_str()),
            cnonce: ch.qop.then_some(cnonce.as_str()),
            qop: ch.qop.then_some("auth"),
            algorithm: ch.digest,
            body: b"",
        })
        .map_err(Error::Crypto)?;
        let mut a = format!(
            "Digest username=\"{impi}\",realm=\"{}\",nonce=\"{}\",uri=\"{uri}\",response=\"{response}\",algorithm={}",
            ch.realm, ch.nonce, ch.algorithm
        );
        if ch.qop {
            a.push_str(&format!(",cnonce=\"{cnonce}\",qop=auth,nc={nc}"));
        }
        if let Some(o) = &ch.opaque {
            a.push_str(&format!(",opaque=\"{o}\""));
        }
        if let Some(auts) = auts {
            a.push_str(&format!(",auts=\"{auts}\""));
        }
        Ok(a)
    }

    /// Whether a challenge to our re-REGISTER can set up a new SA set
    /// beside the one in use: our Security-Client named other SPIs and
    /// another port-c ([`Ue::offer_next`]).
    fn can_hand_over(&self) -> bool {
        let Some(s) = &self.sas else {
            return false;
        };
        let (o, c) = (s.ue_offer(), &self.config.c);
        c.sec_agree && (o.spi_c, o.spi_s, o.port_c) != (c.spi_c, c.spi_s, c.port_c)
    }

    /// A re- or de-registration over the SAs in use.
    fn send_authenticated(&mut self, rng: &mut dyn Random, expires: u32) -> Vec<UeAction> {
        let flow = match &self.sas {
            Some(s) => Flow::Protected {
                ue_port: s.ue_offer().port_c,
                pcscf_port: s.pcscf_offer().port_s,
            },
            None => Flow::Unprotected,
        };
        match self.authorization(rng, None) {
            Ok(auth) => self.send(rng, flow, expires, Some(auth)),
            Err(e) => self.fail(e),
        }
    }

    /// Builds the next REGISTER and the action that sends it.
    fn send(
        &mut self,
        rng: &mut dyn Random,
        flow: Flow,
        expires: u32,
        authorization: Option<String>,
    ) -> Vec<UeAction> {
        match self.build(rng, flow, expires, authorization) {
            Ok(request) => vec![UeAction::Send { request, flow }],
            Err(e) => self.fail(e),
        }
    }

    fn build(
        &mut self,
        rng: &mut dyn Random,
        flow: Flow,
        expires: u32,
        authorization: Option<String>,
    ) -> Result<Message<'static>, Error> {
        self.cseq = self.cseq.wrapping_add(1);
        let c = &self.config.c;
        let via_port = match flow {
            Flow::Protected { ue_port, .. } => ue_port,
            Flow::Unprotected => c.port,
        };
        let mut b = Message::request(Method::Register, &self.request_uri())
            .header(
                "Via",
                format!(
                    "SIP/2.0/{} {};branch=z9hG4bK{};rport",
                    c.protocol.via_name(),
                    hostport(c.ue_addr, via_port),
                    token(rng, 8)
                ),
            )
            .header("Max-Forwards", 70)
            .header("From", format!("<{}>;tag={}", c.impu, self.from_tag))
            .header("To", format!("<{}>", c.impu))
            .header("Call-ID", &self.call_id)
            .header("CSeq", format!("{} REGISTER", self.cseq))
            .header(
                "Contact",
                format!(
                    "<{}>;expires={expires};+sip.instance=\"<{}>\";+g.3gpp.smsip",
                    self.contact_uri(),
                    c.instance
                ),
            )
            .header("Expires", expires)
            .header("Supported", "path");
        if c.sec_agree {
            b = b
                .header("Require", "sec-agree")
                .header("Proxy-Require", "sec-agree")
                .header("Security-Client", c.security_client());
            if matches!(flow, Flow::Protected { .. }) {
                for row in &self.server_rows {
                    b = b.header("Security-Verify", row);
                }
            }
        }
        if let Some(a) = authorization {
            b = b.header("Authorization", a);
        }
        b.build().map_err(Error::Build)
    }
}

impl UeAction {
    /// The request of a [`UeAction::Send`].
    pub fn request(&self) -> Option<&Message<'static>> {
        match self {
            UeAction::Send { request, .. } => Some(request),
            _ => None,
        }
    }
}

/// Whether the Digest challenge of a 401 has `stale=true`.
fn stale(response: &Message<'_>) -> bool {
    response
        .www_authenticate()
        .is_ok_and(|cs| cs.iter().any(|c| c.is_digest() && c.stale() == Some(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);

    impl Random for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    /// A registrar outside IMS: RFC 2617 digest with a password, no
    /// sec-agree, no SAs.
    #[test]
    fn plain_digest_md5() {
        let mut rng = Counter(0);
        let mut c = UeConfig::new(
            "bob",
            "sip:bob@example.org",
            "example.org",
            "192.0.2.2".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            (0, 0),
            (0, 0),
        );
        c.sec_agree = false;
        let mut ue = Ue::new(c, Credentials::Password("zanzibar".into()), &mut rng);
        let acts = ue.register(&mut rng);
        let req = acts[0].request().unwrap();
        assert!(req.header("Security-Client").is_none());
        assert!(req.header("Require").is_none());
        let challenge = crate::sip::Builder::response_to(req, 401, None)
            .to_tag("r")
            .header(
                "WWW-Authenticate",
                "Digest realm=\"example.org\",nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",qop=\"auth\",opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
            )
            .build()
            .unwrap();
        let acts = ue.on_response(&challenge, Flow::Unprotected, Duration::ZERO, &mut rng);
        let [UeAction::Send { request, flow }] = acts.as_slice() else {
            panic!("{acts:?}")
        };
        assert_eq!(*flow, Flow::Unprotected);
        let a = &request.authorization().unwrap()[0];
        assert_eq!(a.opaque().unwrap(), "5ccc069c403ebaf9f0171e9517f40e41");
        let cnonce = a.cnonce().unwrap();
        let want = opensec::digest::response(&DigestParams {
            username: "bob",
            realm: "example.org",
            password: b"zanzibar",
            method: "REGISTER",
            uri: "sip:example.org",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            nc: Some("00000001"),
            cnonce: Some(&cnonce),
            qop: Some("auth"),
            algorithm: DigestAlgorithm::Md5,
            body: b"",
        });
        assert_eq!(a.response().unwrap(), want);
        let ok = crate::sip::Builder::response_to(request, 200, None)
            .to_tag("r")
            .header("Contact", "<sip:192.0.2.2:5060>;expires=60")
            .build()
            .unwrap();
        let acts = ue.on_response(&ok, Flow::Unprotected, Duration::from_secs(10), &mut rng);
        // Registered, then the reg event subscription, in clear.
        let [UeAction::Registered(r), UeAction::Send { request, flow }] = acts.as_slice() else {
            panic!("{acts:?}")
        };
        assert_eq!(request.method(), Some(Method::Subscribe));
        assert_eq!(*flow, Flow::Unprotected);
        assert_eq!(r.expires, Duration::from_secs(60));
        assert_eq!(r.refresh_at, Duration::from_secs(40));
        assert!(ue.sas().is_none());
    }

    /// RFC 3261 §22.2: a 401 to the REGISTER that carried our response
    /// ends the attempt (a registrar that refuses the password challenges
    /// again, forever if we let it); `stale=true` is a new nonce only.
    #[test]
    fn a_second_401_refuses_the_password_unless_stale() {
        for stale in [false, true] {
            let mut rng = Counter(0);
            let mut c = UeConfig::new(
                "bob",
                "sip:bob@example.org",
                "example.org",
                "192.0.2.2".parse().unwrap(),
                "192.0.2.1".parse().unwrap(),
                (0, 0),
                (0, 0),
            );
            c.sec_agree = false;
            let mut ue = Ue::new(c, Credentials::Password("wrong".into()), &mut rng);
            let acts = ue.register(&mut rng);
            let mut req = acts[0].request().unwrap().clone();
            let second = if stale { ",stale=TRUE" } else { "" };
            for (round, extra) in ["", second].into_iter().enumerate() {
                let challenge = crate::sip::Builder::response_to(&req, 401, None)
                    .to_tag("r")
                    .header(
                        "WWW-Authenticate",
                        format!(
                            "Digest realm=\"example.org\",nonce=\"n{round}\",qop=\"auth\"{extra}"
                        ),
                    )
                    .build()
                    .unwrap();
                let acts = ue.on_response(&challenge, Flow::Unprotected, Duration::ZERO, &mut rng);
                match (round, stale, acts.as_slice()) {
                    (0, _, [UeAction::Send { request, .. }]) => req = request.clone(),
                    (1, true, [UeAction::Send { request, .. }]) => {
                        let a = &request.authorization().unwrap()[0];
                        assert_eq!(a.nonce().unwrap(), "n1");
                    }
                    (1, false, [UeAction::Failed(Error::CredentialsRefused)]) => {
                        assert!(ue.is_done());
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    /// Security-Server offers: the highest q among those we offered.
    #[test]
    fn server_offer_by_q_among_ours() {
        let mut rng = Counter(0);
        let mut c = UeConfig::new(
            "a",
            "sip:a@x",
            "x",
            "192.0.2.2".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            (1000, 1001),
            (5062, 5064),
        );
        c.algorithms = vec![
            (AuthAlgorithm::HmacMd5_96, EncAlgorithm::Null),
            (AuthAlgorithm::HmacSha1_96, EncAlgorithm::AesCbc),
        ];
        let ue = Ue::new(
            c,
            Credentials::Aka {
                k: [0; 16],
                op: OpKey::Opc([0; 16]),
                sqn_ms: 0,
            },
            &mut rng,
        );
        let m = Message::response(401, None)
            .header("Security-Server", "ipsec-3gpp;q=0.9;alg=hmac-sha-1-96;ealg=des-ede3-cbc;spi-c=1;spi-s=2;port-c=3;port-s=4")
            .header("Security-Server", "ipsec-3gpp;q=0.5;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c=5;spi-s=6;port-c=7;port-s=8")
            .header("Security-Server", "ipsec-3gpp;q=0.7;alg=hmac-md5-96;spi-c=9;spi-s=10;port-c=11;port-s=12")
            .build()
            .unwrap();
        let (pcscf, ours) = ue.choose_server_offer(&m).unwrap().unwrap();
        // des-ede3-cbc was not offered; md5 without ealg is md5 with null.
        assert_eq!(pcscf.spi_c, 9);
        assert_eq!(pcscf.ealg, EncAlgorithm::Null);
        assert_eq!((ours.spi_c, ours.port_s), (1000, 5064));
    }
}
