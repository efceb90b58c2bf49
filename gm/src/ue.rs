//! The UE role: registration, pager-mode MESSAGE, SMS over IP and
//! presence as one sans-IO machine ([`Ua`]) over the transaction layer,
//! what the bundled `imsua` drives.
//!
//! # Division of work
//!
//! [`Ua`] owns the transactions ([`crate::txn::Transactions`], keyed by
//! the P-CSCF's socket address) and the UE's machines:
//! [`crate::reg::Ue`] (registration, the SAs, the reg event),
//! [`crate::presence::ue::Publisher`] and
//! [`crate::presence::ue::Watcher`] (its PUBLISH and its presence
//! subscriptions) and [`crate::sms::service::SmsUe`]. It sends every
//! request of ours over the registration's SAs (from our port-c to the
//! P-CSCF's port-s, TS 33.203) by the registration's route set, marks it
//! for SigComp when asked (RFC 5049 §9.1), matches every response and
//! timeout to what it started, and decides which of the machines a
//! request that reaches us is for (the reg event's NOTIFYs, presence
//! NOTIFYs, an RP message, any other MESSAGE; 405 to the rest).
//!
//! The caller does the IO: it parses what arrives, stamps a request's
//! top Via with where it came from ([`crate::txn::stamp_via`]) and gives
//! requests and responses to [`Ua::on_request`] and [`Ua::on_response`],
//! calls [`Ua::handle_timeout`] at [`Ua::poll_timeout`] (first giving the
//! SPIs and port of the next SA set with [`Ua::offer_next`] when
//! [`Ua::refresh_due`]: a re-registration may be re-authenticated onto
//! fresh SAs), and then carries out [`Ua::poll_output`] in order:
//! [`Output::Transmit`] (send the message, compressed and protected as
//! its flow needs: the [`crate::txn::Transmit::from_port`] of a message
//! over SAs is our protected port it leaves from), the SA changes (apply
//! them to its IPsec layer, and open, hand over or close the SigComp
//! compartment with them), and [`Output::Event`] (what happened). The
//! order is the rule, as for the network role
//! ([`crate::network::Pcscf`]): SAs to install come before the request
//! that needs them, a message queued for SAs leaves before their removal,
//! and a lifetime update waits until the batch's messages are out.
//!
//! The commands ([`Ua::register`], [`Ua::message`], [`Ua::sms`],
//! [`Ua::publish`], [`Ua::subscribe`], [`Ua::deregister`], …) start their
//! requests and return at once; what came of them arrives as events. A
//! de-registration first removes our publication and ends our presence
//! subscriptions, while the registration stands, then sends the REGISTER
//! with `Expires: 0`. SMS parts go one MESSAGE at a time: the next leaves
//! once the previous one had its 2xx.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crate::pager::{Page, Received};
use crate::presence::ue::{Origin, Publisher, Seen, Subscribed, Watcher};
use crate::presence::{Basic, Published};
use crate::reg::{Flow, Random, Registration, SaSet, Side, Ue, UeAction, token};
use crate::regevent::ContactEvent;
use crate::sip::{Builder, Message, Method};
use crate::sms::service::{SmsUe, UeEvent};
use crate::txn::{
    Event as TxnEvent, Protocol, Reliability, RequestVerdict, ResponseVerdict, Transactions,
    TxnError, TxnId,
};

/// What the caller does next, in order ([`Ua::poll_output`]).
pub type Output = crate::Output<Event>;

/// What happened, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Registered, or re-registered.
    Registered(Registration),
    /// The registrar shortened the registration (reg event).
    Shortened(Registration),
    /// The challenge's SQN was not fresh: the UE answered with AUTS.
    Resynchronising {
        /// The SQN the network sent.
        sqn: u64,
        /// The highest SQN we had accepted.
        sqn_ms: u64,
    },
    /// The network ended the registration (reg event); with
    /// `reregister_after` the UE registers again after that long.
    DeregisteredByNetwork {
        /// Our contact's event.
        event: ContactEvent,
        /// When the UE registers again, if it does.
        reregister_after: Option<Duration>,
    },
    /// The reg event subscription ended while registered.
    RegEventEnded,
    /// De-registered: the registrar confirmed `Expires: 0`.
    Deregistered,
    /// The registration (or re-/de-registration) failed and stopped.
    /// When no registration is left, our publication and presence
    /// subscriptions end with it, without a message (they were bound to
    /// it, and nothing of ours may leave before a new registration).
    RegistrationFailed {
        /// Why.
        error: crate::reg::Error,
        /// The final status of the last REGISTER, if one came.
        status: Option<u16>,
    },
    /// The final response to our MESSAGE `txn`.
    MessageAnswered {
        /// What [`Ua::message`] returned.
        txn: TxnId,
        /// The status.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// No final response to our MESSAGE `txn` (Timer F), or it could not
    /// be sent.
    MessageUnanswered {
        /// What [`Ua::message`] returned.
        txn: TxnId,
    },
    /// A MESSAGE reached us (not an RP message).
    MessageReceived(Received),
    /// An SMS procedure's outcome; `by_timer` when TR1M ran out.
    Sms {
        /// What happened.
        event: UeEvent,
        /// Whether the timer, not the centre, decided it.
        by_timer: bool,
    },
    /// The MESSAGE carrying our RP-DATA `rp_mr` was refused (`status`) or
    /// not answered (`None`); the parts after it were not sent. No TR1M
    /// report follows for any of them.
    SmsNotSent {
        /// The RP-MR of the part.
        rp_mr: u8,
        /// The final status, if one came.
        status: Option<u16>,
        /// The RP-MRs of the parts left unsent.
        unsent: Vec<u8>,
    },
    /// Our PUBLISH's outcome (`Retry` never: it is sent again).
    Published(Published),
    /// No final response to our PUBLISH.
    PublishUnanswered,
    /// Our publication expired with its refreshes unanswered: the ESC no
    /// longer holds it, and it is no longer refreshed (publish again).
    PublicationLapsed,
    /// A response to one of our presence SUBSCRIBEs.
    Subscribed(Subscribed),
    /// No final response to our presence SUBSCRIBE for `resource`.
    SubscribeUnanswered {
        /// The resource.
        resource: String,
    },
    /// A presence NOTIFY told this.
    Presence(Seen),
    /// A message that did not come over the SAs while they are in place
    /// was dropped unread and unanswered (TS 33.203: the P-CSCF sends over
    /// them; anyone can send a datagram in clear): its method, or its
    /// status.
    NotOverSas {
        /// The request's method, or the response's status.
        what: String,
    },
    /// Every presence subscription has ended, after
    /// [`Ua::unsubscribe_all`] (at once when there was none).
    Unsubscribed,
}

/// Why a command did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The request could not be built (a value the caller gave).
    Build(String),
    /// The transaction layer refused it.
    Send(TxnError),
    /// The SMS could not be encoded.
    Sms(crate::sms::Error),
    /// The UE is not registered (over SAs, when sec-agree is on).
    NotRegistered,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Build(e) => write!(f, "cannot build the request: {e}"),
            Error::Send(e) => write!(f, "cannot send the request: {e}"),
            Error::Sms(e) => write!(f, "cannot encode the SMS: {e}"),
            Error::NotRegistered => f.write_str("not registered"),
        }
    }
}

impl std::error::Error for Error {}

/// What the role needs beyond [`crate::reg::Ue`]'s configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our IMPU (From of our requests).
    pub impu: String,
    /// The resource we publish for (our IMPU unless told otherwise).
    pub presentity: String,
    /// The P-CSCF's plain address (where requests go without SAs).
    pub pcscf: SocketAddr,
    /// Our plain address (the Via of requests without SAs).
    pub local: SocketAddr,
    /// The transport of our requests (their Via).
    pub protocol: Protocol,
    /// With SigComp: our `sigcomp-id` (RFC 5049 §9.1), with which the
    /// requests over SAs ask for it (their top Via; a REGISTER's and a
    /// SUBSCRIBE's Contact too).
    pub sigcomp_id: Option<String>,
    /// The expiry our PUBLISHes and SUBSCRIBEs ask for, in seconds.
    pub presence_expires: u32,
    /// The SMS service centre's URI (its PSI).
    pub sms_centre: String,
}

/// What one client transaction of ours is for.
#[derive(Debug, Clone)]
enum Purpose {
    Register,
    RegEvent,
    Message,
    /// An RP-DATA of ours (its RP-MR).
    Sms(u8),
    /// The RP-ACK/RP-ERROR of an RP-DATA that reached us.
    SmsReply,
    Publish,
    /// A presence SUBSCRIBE (its resource).
    Subscribe(String),
}

/// A de-registration under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaving {
    /// Not leaving.
    No,
    /// Presence is ending first.
    Presence,
    /// The REGISTER with `Expires: 0` is out.
    Register,
}

/// The UE role; see the [module documentation](self).
pub struct Ua {
    ue: Ue,
    layer: Transactions<SocketAddr>,
    s: Settings,
    sms: SmsUe,
    publisher: Option<Publisher>,
    watcher: Watcher,
    txns: HashMap<TxnId, Purpose>,
    /// Whether a PUBLISH is in flight.
    publishing: bool,
    /// Whether [`Event::Unsubscribed`] is awaited.
    unsubscribing: bool,
    /// The SMS parts waiting for the previous part's 2xx.
    sms_queue: VecDeque<(u8, Vec<u8>)>,
    /// The final status of the last REGISTER.
    reg_status: Option<u16>,
    leaving: Leaving,
    now: Duration,
    out: VecDeque<Output>,
    /// SA lifetime updates waiting for the end of the batch.
    deferred: Vec<SaSet>,
}

impl std::fmt::Debug for Ua {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ua")
            .field("ue", &self.ue)
            .field("settings", &self.s)
            .field("txns", &self.txns.len())
            .finish_non_exhaustive()
    }
}

impl Ua {
    /// The role over `ue`, with `layer` and the SMS procedures `sms`.
    pub fn new(ue: Ue, layer: Transactions<SocketAddr>, sms: SmsUe, settings: Settings) -> Ua {
        let t1 = layer.timers().t1;
        Ua {
            ue,
            layer,
            s: settings,
            sms,
            publisher: None,
            watcher: Watcher::new(t1),
            txns: HashMap::new(),
            publishing: false,
            unsubscribing: false,
            sms_queue: VecDeque::new(),
            reg_status: None,
            leaving: Leaving::No,
            now: Duration::ZERO,
            out: VecDeque::new(),
            deferred: Vec::new(),
        }
    }

    /// The registration machine.
    pub fn ue(&self) -> &Ue {
        &self.ue
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.s
    }

    /// The transactions (to report a message that could not be sent:
    /// [`Transactions::transport_error`]).
    pub fn transactions(&mut self) -> &mut Transactions<SocketAddr> {
        &mut self.layer
    }

    /// Whether no presence subscription of ours is left.
    pub fn watching_nothing(&self) -> bool {
        self.watcher.is_empty()
    }

    /// The entity-tag of our publication, once the network took it.
    pub fn etag(&self) -> Option<&str> {
        self.publisher.as_ref().and_then(Publisher::etag)
    }

    /// Whether a REGISTER of ours is waiting for its final response.
    pub fn registering(&self) -> bool {
        self.txns.values().any(|p| matches!(p, Purpose::Register))
    }

    /// The final status of the last REGISTER, if one came (after a
    /// failure: the network's answer to the REGISTER that told it so).
    pub fn register_status(&self) -> Option<u16> {
        self.reg_status
    }

    /// Whether a de-registration is under way.
    pub fn leaving(&self) -> bool {
        self.leaving != Leaving::No
    }

    /// Where our requests go and the address they leave from: the
    /// P-CSCF's port-s from our port-c once SAs are up, else the plain
    /// addresses.
    pub fn route(&self) -> (SocketAddr, SocketAddr) {
        match self.ue.sas() {
            Some(s) => (
                SocketAddr::new(s.pcscf_addr(), s.pcscf_offer().port_s),
                SocketAddr::new(s.ue_addr(), s.ue_offer().port_c),
            ),
            None => (self.s.pcscf, self.s.local),
        }
    }

    /// Whether the re-registration is due at `now`: the moment to give
    /// the next SA set ([`Ua::offer_next`]) before [`Ua::handle_timeout`].
    pub fn refresh_due(&self, now: Duration) -> bool {
        self.ue.refresh_due(now)
    }

    /// The client port of our next SA set, of the caller's two protected
    /// client ports `ours`: the one the set in use does not have (the two
    /// sets stand side by side during the handover). `None` without SAs.
    pub fn next_port_c(&self, ours: [u16; 2]) -> Option<u16> {
        let in_use = self.ue.sas()?.ue_offer().port_c;
        Some(if in_use == ours[1] { ours[0] } else { ours[1] })
    }

    /// Random SPIs for our next SA set, distinct from the set in use's,
    /// for a caller that chooses its SPIs itself (one with an allocator,
    /// such as `ipsecd`'s `getspi`, asks it instead). `None` if the
    /// randomness is broken.
    pub fn fresh_next_spis(&self, rng: &mut dyn Random) -> Option<(u32, u32)> {
        let in_use: Vec<u32> = self
            .ue
            .sas()
            .map(|s| vec![s.ue_offer().spi_c, s.ue_offer().spi_s])
            .unwrap_or_default();
        crate::reg::fresh_spis(rng, &in_use)
    }

    /// The SPIs and client port of our next SA set
    /// ([`crate::reg::Ue::offer_next`]).
    pub fn offer_next(&mut self, spis: (u32, u32), port_c: u16) -> Result<(), crate::reg::Error> {
        self.ue.offer_next(spis, port_c)
    }

    /// The next thing to do, in order: what the transactions queued comes
    /// after the outputs before it.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out
            .pop_front()
            .or_else(|| self.layer.poll_transmit().map(Output::Transmit))
    }

    /// When [`Ua::handle_timeout`] wants to be called: at once (zero)
    /// while the transactions hold an event (a transport error the caller
    /// reported).
    pub fn poll_timeout(&self) -> Option<Duration> {
        let publish = match &self.publisher {
            Some(p) if !self.publishing => p.refresh_at(),
            _ => None,
        };
        if self.layer.has_events() {
            return Some(Duration::ZERO);
        }
        [
            self.layer.poll_timeout(),
            self.ue.poll_timeout(),
            self.sms.poll_timeout(),
            self.watcher.poll_timeout(),
            publish,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts the registration: the initial REGISTER.
    pub fn register(&mut self, now: Duration, rng: &mut dyn Random) {
        self.now = now;
        self.reg_status = None;
        let actions = self.ue.register(rng);
        self.on_actions(actions, None, rng);
        self.end_batch();
    }

    /// De-registers: removes our publication and ends our presence
    /// subscriptions first (while the registration stands; their failure
    /// does not keep us registered), lets a REGISTER in flight (a
    /// re-registration) end, then sends the REGISTER with `Expires: 0`,
    /// whose 200 still comes over the SAs. Ends with
    /// [`Event::Deregistered`] (also when no registration is left to
    /// end) or [`Event::RegistrationFailed`].
    pub fn deregister(&mut self, now: Duration, rng: &mut dyn Random) {
        self.now = now;
        if self.leaving != Leaving::No {
            return;
        }
        self.leaving = Leaving::Presence;
        // Nothing to remove is not an error here.
        let _ = self.unpublish(now, rng);
        let _ = self.unsubscribe_all(now, rng);
        self.leave_when_ready(rng);
        self.end_batch();
    }

    /// Sends `text` (text/plain) to `to` in a MESSAGE; its outcome comes
    /// as [`Event::MessageAnswered`] or [`Event::MessageUnanswered`] with
    /// the returned id.
    pub fn message(
        &mut self,
        to: &str,
        text: &str,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Result<TxnId, Error> {
        self.now = now;
        let m = self.page(to, text, None, rng)?;
        let id = self.send_own(m, false, Purpose::Message)?;
        self.end_batch();
        Ok(id)
    }

    /// Sends `text` to the E.164 number `to_digits` as SMS over IP: an
    /// RP-DATA per part, to the service centre, one MESSAGE at a time.
    /// Returns the parts' RP-MRs; each ends with an [`Event::Sms`]
    /// (RP-ACK, RP-ERROR or TR1M), or [`Event::SmsNotSent`].
    pub fn sms(
        &mut self,
        to_digits: &str,
        text: &str,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Result<Vec<u8>, Error> {
        self.registered_at(now)?;
        let parts = self
            .sms
            .submit(
                crate::sms::Address::international(to_digits),
                text,
                false,
                now,
            )
            .map_err(Error::Sms)?;
        let mrs = parts.iter().map(|p| p.rp_mr).collect();
        let idle =
            self.sms_queue.is_empty() && !self.txns.values().any(|p| matches!(p, Purpose::Sms(_)));
        self.sms_queue
            .extend(parts.into_iter().map(|p| (p.rp_mr, p.body)));
        if idle {
            self.next_sms_part(rng)?;
        }
        self.end_batch();
        Ok(mrs)
    }

    /// PUBLISHes our presence: `basic` and `note` in one tuple (RFC 3903
    /// §4); the first call makes the publication, a later one modifies
    /// it. The outcome comes as [`Event::Published`] or
    /// [`Event::PublishUnanswered`].
    pub fn publish(
        &mut self,
        basic: Basic,
        note: Option<&str>,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Result<(), Error> {
        self.registered_at(now)?;
        let doc = crate::presence::ue::document(&self.s.presentity, basic, note);
        let (own, routes) = self.own();
        let publisher = self.publisher.get_or_insert_with(|| {
            Publisher::new(&self.s.presentity, self.s.presence_expires, rng)
        });
        let m = publisher
            .publish(&own.origin(&routes), &doc, rng)
            .map_err(|e| Error::Build(e.to_string()))?;
        self.send_publish(m)?;
        self.end_batch();
        Ok(())
    }

    /// Removes our publication (`Expires: 0`); `false` when there is none
    /// (nothing is sent). The outcome comes as [`Event::Published`]
    /// ([`Published::Removed`]).
    pub fn unpublish(&mut self, now: Duration, rng: &mut dyn Random) -> Result<bool, Error> {
        self.now = now;
        let (own, routes) = self.own();
        let Some(p) = self.publisher.as_mut() else {
            return Ok(false);
        };
        let Some(m) = p.remove(&own.origin(&routes), rng) else {
            return Ok(false);
        };
        let m = m.map_err(|e| Error::Build(e.to_string()))?;
        self.send_publish(m)?;
        self.end_batch();
        Ok(true)
    }

    /// SUBSCRIBEs to `uri`'s presence (RFC 3856 §5); the answer comes as
    /// [`Event::Subscribed`] or [`Event::SubscribeUnanswered`], its
    /// NOTIFYs as [`Event::Presence`].
    pub fn subscribe(
        &mut self,
        uri: &str,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Result<(), Error> {
        self.registered_at(now)?;
        let (own, routes) = self.own();
        let m = self
            .watcher
            .subscribe(&own.origin(&routes), uri, self.s.presence_expires, now, rng)
            .map_err(|e| Error::Build(e.to_string()))?;
        self.send_own(m, true, Purpose::Subscribe(uri.to_owned()))?;
        self.end_batch();
        Ok(())
    }

    /// Ends every presence subscription (`Expires: 0`, RFC 6665
    /// §4.1.2.3); [`Event::Unsubscribed`] comes when the last has ended
    /// (its final NOTIFY, or at most 64·T1). Returns how many SUBSCRIBEs
    /// it sent.
    pub fn unsubscribe_all(&mut self, now: Duration, rng: &mut dyn Random) -> Result<usize, Error> {
        self.now = now;
        let (own, routes) = self.own();
        let ms = self.watcher.unsubscribe_all(&own.origin(&routes), now, rng);
        let n = ms.len();
        self.unsubscribing = true;
        for m in ms {
            self.send_subscribe(m)?;
        }
        self.unsubscribed_check(rng);
        self.end_batch();
        Ok(n)
    }

    /// A request from `from` (its top Via already stamped with it, RFC
    /// 3581), which came on `flow` to our port `arrived_on`, over a
    /// transport of `reliability`. While SAs are in place, one that did
    /// not come over them is dropped ([`Event::NotOverSas`]).
    pub fn on_request(
        &mut self,
        m: &Message<'_>,
        from: SocketAddr,
        (flow, arrived_on, reliability): (Flow, Option<u16>, Reliability),
        now: Duration,
        rng: &mut dyn Random,
    ) {
        self.now = now;
        if !self.ue.accepts_request(flow) {
            let what = m.method().map_or("request", |x| x.as_str()).to_owned();
            self.event(Event::NotOverSas { what });
            return;
        }
        let Ok(RequestVerdict::New(id)) =
            self.layer
                .on_request_at(m, from, arrived_on, reliability, now)
        else {
            return;
        };
        // gm::reg::Ue answers the NOTIFYs of its reg event.
        if let Some(actions) = self.ue.on_request(m, flow, now, rng) {
            self.on_actions(actions, Some(id), rng);
        } else if let Some(a) = self.watcher.on_notify(m, now) {
            // gm::presence::ue answers the NOTIFYs of presence.
            let _ = self.layer.respond(id, &a.response, now);
            if let Some(seen) = a.seen {
                self.event(Event::Presence(seen));
            }
            self.unsubscribed_check(rng);
        } else if crate::sms::sip::is_sms(m) {
            self.on_sms(m, id, rng);
        } else if let Ok(answer) = crate::pager::answer(m, &token(rng, 4)) {
            // gm::pager: 200 to a MESSAGE, 405 to anything else.
            let _ = self.layer.respond(id, &answer.response, now);
            if let Some(page) = answer.page {
                self.event(Event::MessageReceived(page));
            }
        }
        self.end_batch();
    }

    /// A response, which came on `flow`. While SAs are in place, one that
    /// did not come over the flow of our requests is dropped
    /// ([`Event::NotOverSas`]) before the transaction sees it.
    pub fn on_response(
        &mut self,
        m: &Message<'_>,
        flow: Flow,
        now: Duration,
        rng: &mut dyn Random,
    ) {
        self.now = now;
        if !self.ue.accepts_response(flow) {
            let what = m.status().map_or_else(String::new, |s| s.to_string());
            self.event(Event::NotOverSas { what });
            return;
        }
        let ResponseVerdict::ToTu(id) = self.layer.on_response(m, now) else {
            return;
        };
        let Some(status) = m.status().filter(|s| *s >= 200) else {
            return;
        };
        let Some(purpose) = self.txns.remove(&id) else {
            return;
        };
        match purpose {
            Purpose::Register | Purpose::RegEvent => {
                if matches!(purpose, Purpose::Register) {
                    self.reg_status = Some(status);
                }
                let actions = self.ue.on_response(m, flow, now, rng);
                self.on_actions(actions, None, rng);
                self.leave_when_ready(rng);
            }
            Purpose::Message => self.event(Event::MessageAnswered {
                txn: id,
                status,
                reason: m.reason().unwrap_or("").to_owned(),
            }),
            Purpose::Sms(rp_mr) => self.sms_answered(rp_mr, Some(status), rng),
            Purpose::SmsReply => {}
            Purpose::Publish => self.on_publish_response(m, now, rng),
            Purpose::Subscribe(_) => {
                if let Some(got) = self.watcher.on_response(m, now) {
                    self.event(Event::Subscribed(got));
                }
                self.unsubscribed_check(rng);
            }
        }
        self.end_batch();
    }

    /// Acts on the time: the transactions' timers, presence refreshes and
    /// Timer N, the registration's (re-registration, temporary SAs, the
    /// reg event), TR1M.
    pub fn handle_timeout(&mut self, now: Duration, rng: &mut dyn Random) {
        self.now = now;
        self.layer.handle_timeout(now);
        while let Some(e) = self.layer.poll_event() {
            match e {
                // Timer F, or the transport could not send it (its SAs
                // are gone): no final response, a failure either way.
                TxnEvent::Timeout(id) | TxnEvent::TransportError(id) => self.unanswered(id, rng),
                TxnEvent::Terminated(id) => {
                    self.txns.remove(&id);
                }
            }
        }
        self.presence_timers(now, rng);
        if self.ue.poll_timeout().is_some_and(|t| t <= now) {
            let actions = self.ue.handle_timeout(now, rng);
            self.on_actions(actions, None, rng);
        }
        if self.sms.poll_timeout().is_some_and(|t| t <= now) {
            for event in self.sms.handle_timeout(now) {
                self.event(Event::Sms {
                    event,
                    by_timer: true,
                });
            }
        }
        self.end_batch();
    }

    /// Our transaction `id` got no final response.
    fn unanswered(&mut self, id: TxnId, rng: &mut dyn Random) {
        let Some(purpose) = self.txns.remove(&id) else {
            return;
        };
        match purpose {
            Purpose::Register => {
                let actions = self.ue.on_timeout(rng);
                self.on_actions(actions, None, rng);
                self.leave_when_ready(rng);
            }
            // The subscription's own timers cover these; the centre
            // sends its RP-DATA again.
            Purpose::RegEvent | Purpose::SmsReply => {}
            Purpose::Message => self.event(Event::MessageUnanswered { txn: id }),
            Purpose::Sms(rp_mr) => self.sms_answered(rp_mr, None, rng),
            Purpose::Publish => {
                self.publishing = false;
                self.event(Event::PublishUnanswered);
                self.leave_when_ready(rng);
            }
            Purpose::Subscribe(resource) => {
                self.event(Event::SubscribeUnanswered { resource });
                self.unsubscribed_check(rng);
            }
        }
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    /// Whether requests of ours may go: registered, over SAs when
    /// sec-agree is on.
    fn registered(&self) -> bool {
        self.ue.registration().is_some()
    }

    /// The start of a command of ours: the time, and the registration it
    /// needs.
    fn registered_at(&mut self, now: Duration) -> Result<(), Error> {
        self.now = now;
        if self.registered() {
            Ok(())
        } else {
            Err(Error::NotRegistered)
        }
    }

    /// Lifetime updates wait until the batch's messages are queued: they
    /// change no key and no message needs them.
    fn end_batch(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        self.queue_transmits();
        for s in std::mem::take(&mut self.deferred) {
            self.out.push_back(Output::UpdateSas(s));
        }
    }

    /// What the transactions queued goes out before what follows.
    fn queue_transmits(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            self.out.push_back(Output::Transmit(t));
        }
    }

    /// Updates deferred so far go before an SA change (they keep their
    /// order).
    fn flush_updates(&mut self) {
        for s in std::mem::take(&mut self.deferred) {
            self.out.push_back(Output::UpdateSas(s));
        }
    }

    fn on_actions(&mut self, actions: Vec<UeAction>, server: Option<TxnId>, rng: &mut dyn Random) {
        let now = self.now;
        let mut unsent = false;
        for a in actions {
            match a {
                UeAction::Send { request, flow } => {
                    let protected = matches!(flow, Flow::Protected { .. });
                    let request = if protected {
                        self.mark(request, true)
                    } else {
                        request
                    };
                    let to = match flow {
                        Flow::Protected { pcscf_port, .. } => {
                            SocketAddr::new(self.s.pcscf.ip(), pcscf_port)
                        }
                        Flow::Unprotected => self.s.pcscf,
                    };
                    let purpose = if request.method() == Some(Method::Subscribe) {
                        Purpose::RegEvent
                    } else {
                        Purpose::Register
                    };
                    // From the port gm chose: during an SA handover two
                    // sets reach the P-CSCF's port-s, and the flow names
                    // which.
                    let from_port = flow.local_port(Side::Ue);
                    match self.layer.start_client_at(
                        &request,
                        to,
                        from_port,
                        self.s.protocol.reliability(),
                        now,
                    ) {
                        Ok(id) => {
                            self.txns.insert(id, purpose);
                        }
                        // Not sent: as if it had timed out (the
                        // registration machine decides what follows).
                        Err(_) if matches!(purpose, Purpose::Register) => unsent = true,
                        Err(_) => {}
                    }
                }
                UeAction::Respond { response, .. } => {
                    if let Some(id) = server {
                        let _ = self.layer.respond(id, &response, now);
                    }
                }
                UeAction::InstallSas(set) => {
                    self.flush_updates();
                    let replaces = self.ue.retiring_sas().cloned();
                    self.out.push_back(Output::InstallSas { set, replaces });
                }
                UeAction::UpdateSas(s) => self.deferred.push(s),
                UeAction::RemoveSas(s) => {
                    self.flush_updates();
                    // What is queued for the SAs leaves before they go.
                    self.queue_transmits();
                    self.out.push_back(Output::RemoveSas(s));
                }
                UeAction::Registered(r) => self.event(Event::Registered(r)),
                UeAction::Shortened(r) => self.event(Event::Shortened(r)),
                UeAction::Resynchronising { sqn, sqn_ms } => {
                    self.event(Event::Resynchronising { sqn, sqn_ms });
                }
                UeAction::DeregisteredByNetwork {
                    event,
                    reregister_after,
                } => {
                    self.event(Event::DeregisteredByNetwork {
                        event,
                        reregister_after,
                    });
                }
                UeAction::RegEventEnded => self.event(Event::RegEventEnded),
                UeAction::Deregistered => {
                    self.leaving = Leaving::No;
                    self.event(Event::Deregistered);
                }
                UeAction::Failed(error) => {
                    if self.leaving == Leaving::Register {
                        self.leaving = Leaving::No;
                    }
                    // The registration is gone, and its SAs with it: what
                    // was bound to it ends here, without a word (nothing
                    // of ours may leave but a new REGISTER), as it ends
                    // at the network with the binding.
                    if self.ue.registration().is_none() {
                        self.publisher = None;
                        self.watcher = Watcher::new(self.layer.timers().t1);
                    }
                    self.event(Event::RegistrationFailed {
                        error,
                        status: self.reg_status,
                    });
                }
            }
        }
        if unsent {
            let actions = self.ue.on_timeout(rng);
            self.on_actions(actions, None, rng);
        }
    }

    /// Our IMPU, Via sent-by and Contact, with the route set beside them.
    fn own(&self) -> (Own, Vec<String>) {
        let routes = self
            .ue
            .registration()
            .map(|r| r.service_routes.clone())
            .unwrap_or_default();
        (
            Own {
                impu: self.s.impu.clone(),
                sent_by: self.route().1.to_string(),
                contact: self.ue.contact(),
                protocol: self.s.protocol,
            },
            routes,
        )
    }

    /// A MESSAGE of ours to `to` (a new Call-ID, the registration's route
    /// set): `text` (text/plain), or with `sms` that RP message.
    fn page(
        &self,
        to: &str,
        text: &str,
        sms: Option<&[u8]>,
        rng: &mut dyn Random,
    ) -> Result<Message<'static>, Error> {
        if !self.registered() {
            return Err(Error::NotRegistered);
        }
        let (own, routes) = self.own();
        let call_id = token(rng, 12);
        let from_tag = token(rng, 6);
        let branch = format!("z9hG4bK{}", token(rng, 8));
        let page = Page {
            protocol: self.s.protocol,
            from: &own.impu,
            to,
            local: &own.sent_by,
            call_id: &call_id,
            from_tag: &from_tag,
            branch: &branch,
            cseq: 1,
            routes: &routes,
            text,
        };
        match sms {
            Some(body) => crate::sms::sip::request(&page, body),
            None => crate::pager::request(&page),
        }
        .map_err(|e| Error::Build(e.to_string()))
    }

    /// Sends a request of ours to the P-CSCF (its port-s over the SAs,
    /// from our port-c) through a client transaction; with SigComp,
    /// marked (`contact`: its Contact too).
    fn send_own(
        &mut self,
        m: Message<'static>,
        contact: bool,
        purpose: Purpose,
    ) -> Result<TxnId, Error> {
        let m = self.mark(m, contact);
        let (to, from) = self.route();
        let from_port = self.ue.sas().map(|_| from.port());
        let id = self
            .layer
            .start_client_at(&m, to, from_port, self.s.protocol.reliability(), self.now)
            .map_err(Error::Send)?;
        self.txns.insert(id, purpose);
        Ok(id)
    }

    /// A SUBSCRIBE of our presence subscriptions (its resource is its
    /// Request-URI).
    fn send_subscribe(&mut self, m: Message<'static>) -> Result<TxnId, Error> {
        let resource = m.request_uri().map(|u| u.to_string()).unwrap_or_default();
        self.send_own(m, true, Purpose::Subscribe(resource))
    }

    fn send_publish(&mut self, m: Message<'static>) -> Result<(), Error> {
        self.send_own(m, false, Purpose::Publish)?;
        self.publishing = true;
        Ok(())
    }

    /// With SigComp on, marks a request that goes over the SAs: its top
    /// Via, and with `contact` its Contact (RFC 5049 §9.1), so the P-CSCF
    /// compresses what it sends back and to us. Left as it is if it
    /// cannot be marked.
    fn mark<'a>(&self, mut request: Message<'a>, contact: bool) -> Message<'a> {
        let Some(id) = self.s.sigcomp_id.as_deref() else {
            return request;
        };
        let _ = crate::comp::mark_via(&mut request, id).and_then(|()| {
            if contact {
                crate::comp::mark_contact(&mut request, id)
            } else {
                Ok(())
            }
        });
        request
    }

    /// Sends the next SMS part waiting.
    fn next_sms_part(&mut self, rng: &mut dyn Random) -> Result<(), Error> {
        let Some((rp_mr, body)) = self.sms_queue.pop_front() else {
            return Ok(());
        };
        let centre = self.s.sms_centre.clone();
        let sent = self
            .page(&centre, "", Some(&body), rng)
            .and_then(|m| self.send_own(m, false, Purpose::Sms(rp_mr)));
        if let Err(e) = &sent {
            self.sms_not_sent(rp_mr, None);
            return Err(e.clone());
        }
        Ok(())
    }

    /// The part `rp_mr` did not reach the centre (its MESSAGE refused
    /// with `status`, unanswered, or not sent): it and the parts after it
    /// are given up, without waiting for TR1M.
    fn sms_not_sent(&mut self, rp_mr: u8, status: Option<u16>) {
        let unsent: Vec<u8> = self.sms_queue.drain(..).map(|(mr, _)| mr).collect();
        for mr in std::iter::once(rp_mr).chain(unsent.iter().copied()) {
            self.sms.abandon(mr);
        }
        self.event(Event::SmsNotSent {
            rp_mr,
            status,
            unsent,
        });
    }

    /// The MESSAGE of our RP-DATA `rp_mr` ended with `status` (`None`:
    /// no answer): a 2xx sends the next part; anything else ends the SMS.
    fn sms_answered(&mut self, rp_mr: u8, status: Option<u16>, rng: &mut dyn Random) {
        if status.is_some_and(|s| (200..300).contains(&s)) {
            let _ = self.next_sms_part(rng);
            return;
        }
        self.sms_not_sent(rp_mr, status);
    }

    /// A MESSAGE with an RP message that reached us: answered as
    /// `gm::sms` says, its RP-ACK/RP-ERROR sent to the centre it came
    /// from.
    fn on_sms(&mut self, m: &Message<'_>, id: TxnId, rng: &mut dyn Random) {
        let content_type = m.content_type_text();
        let r = self.sms.on_message(&content_type, m.body());
        if let Ok(response) = Builder::response_to(m, r.status, None)
            .to_tag(&token(rng, 4))
            .build()
        {
            let _ = self.layer.respond(id, &response, self.now);
        }
        if let Some(event) = r.event {
            self.event(Event::Sms {
                event,
                by_timer: false,
            });
        }
        if let Some(reply) = r.reply {
            let centre = m
                .from()
                .map(|f| f.uri.to_string())
                .unwrap_or_else(|_| self.s.sms_centre.clone());
            // Its final response needs no report: the centre retries.
            if let Ok(request) = self.page(&centre, "", Some(&reply.body), rng) {
                let _ = self.send_own(request, false, Purpose::SmsReply);
            }
        }
    }

    /// The final response to our PUBLISH: a 412 or 423 is sent again,
    /// anything else is the outcome.
    fn on_publish_response(&mut self, m: &Message<'_>, now: Duration, rng: &mut dyn Random) {
        self.publishing = false;
        let (own, routes) = self.own();
        let Some(p) = self.publisher.as_mut() else {
            return;
        };
        match p.on_response(m, now) {
            Published::Retry(r) => match p.request(&own.origin(&routes), &r, rng) {
                Ok(again) => {
                    if self.send_publish(again).is_err() {
                        self.event(Event::PublishUnanswered);
                    }
                }
                Err(_) => self.event(Event::PublishUnanswered),
            },
            out => self.event(Event::Published(out)),
        }
        self.leave_when_ready(rng);
    }

    /// The presence subscriptions' refreshes and timers, and our
    /// publication's refresh.
    fn presence_timers(&mut self, now: Duration, rng: &mut dyn Random) {
        // A publication whose refreshes all went unanswered is not
        // refreshed past its expiry: the ESC dropped it.
        if !self.publishing && self.publisher.as_mut().is_some_and(|p| p.lapse(now)) {
            self.event(Event::PublicationLapsed);
        }
        let sub_due = self.watcher.poll_timeout().is_some_and(|t| t <= now);
        let pub_due = !self.publishing
            && self
                .publisher
                .as_ref()
                .and_then(Publisher::refresh_at)
                .is_some_and(|t| t <= now);
        if !sub_due && !pub_due {
            return;
        }
        let (own, routes) = self.own();
        if sub_due {
            let (subscribes, _ended) = self.watcher.handle_timeout(&own.origin(&routes), now, rng);
            for m in subscribes {
                let _ = self.send_subscribe(m);
            }
            self.unsubscribed_check(rng);
        }
        if pub_due {
            let refresh = self
                .publisher
                .as_mut()
                .and_then(|p| p.refresh(&own.origin(&routes), rng));
            if let Some(Ok(m)) = refresh {
                if self.send_publish(m).is_err() {
                    self.event(Event::PublishUnanswered);
                }
            }
        }
    }

    /// Says when the last presence subscription ended after
    /// [`Ua::unsubscribe_all`], and goes on with a de-registration.
    fn unsubscribed_check(&mut self, rng: &mut dyn Random) {
        let subscribing = self
            .txns
            .values()
            .any(|p| matches!(p, Purpose::Subscribe(_)));
        if !self.unsubscribing || !self.watcher.is_empty() || subscribing {
            return;
        }
        self.unsubscribing = false;
        self.event(Event::Unsubscribed);
        self.leave_when_ready(rng);
    }

    /// During a de-registration: once presence has ended, the REGISTER
    /// with `Expires: 0`.
    /// (A REGISTER in flight, a re-registration, ends first: its SAs may
    /// be the ones the de-registration must go over.)
    fn leave_when_ready(&mut self, rng: &mut dyn Random) {
        if self.leaving != Leaving::Presence
            || self.publishing
            || self.unsubscribing
            || self.registering()
        {
            return;
        }
        self.leaving = Leaving::Register;
        let actions = self.ue.deregister(rng);
        if actions.is_empty() {
            // Not registered: nothing to end.
            self.leaving = Leaving::No;
            self.event(Event::Deregistered);
            return;
        }
        self.on_actions(actions, None, rng);
    }
}

/// Where our requests come from, owned (for [`Origin`]).
struct Own {
    impu: String,
    sent_by: String,
    contact: String,
    protocol: Protocol,
}

impl Own {
    fn origin<'a>(&'a self, routes: &'a [String]) -> Origin<'a> {
        Origin {
            impu: &self.impu,
            sent_by: &self.sent_by,
            contact: &self.contact,
            routes,
            protocol: self.protocol,
        }
    }
}
