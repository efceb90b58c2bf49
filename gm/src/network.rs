//! The network role: a P-CSCF with the registrar, the AKA authentication
//! centre, the MESSAGE relay, the presence agent and the SMS service
//! centre folded in, as one sans-IO machine ([`Pcscf`]) over the
//! transaction layer. A test and demo peer, not a production P-CSCF.
//!
//! # Division of work
//!
//! [`Pcscf`] owns the transactions ([`crate::txn::Transactions`], keyed by
//! the peer's socket address) and the role's machines:
//! [`crate::reg::Network`] (registration, challenges, SAs, the reg event),
//! [`crate::pager::Registry`] (where a registered UE's requests go),
//! [`crate::presence::Agent`] and [`crate::sms::service::SmsCentre`]. It
//! decides which of them a request is for (registration's REGISTER and reg
//! event SUBSCRIBE; a MESSAGE to the service centre's URI; a PUBLISH or a
//! presence SUBSCRIBE; anything else is relayed to its registered target),
//! answers, relays, matches every response and timeout to what it
//! started, and sends NOTIFYs and the centre's MESSAGEs where their
//! targets registered (their port-s over their SAs, TS 33.203).
//!
//! The caller does the IO: it parses what arrives and gives requests and
//! responses to [`Pcscf::on_request`] and [`Pcscf::on_response`], calls
//! [`Pcscf::handle_timeout`] at [`Pcscf::poll_timeout`], and then carries
//! out [`Pcscf::poll_output`] in order: [`Output::Transmit`] (send the
//! message, compressed and protected as its destination needs), the SA
//! changes (apply them to its IPsec layer, and open, hand over or close
//! the SigComp compartment with them), and [`Output::Event`] (what
//! happened, to print). The order is the rule: a response that has to
//! leave over SAs comes before their removal, and SAs to install come after
//! the response of the request that created them (the UE's next request
//! finds them; the response never needs them). What is specific to a
//! transport (whether a destination is reached over TCP) the caller tells
//! through [`Links`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crate::pager::{Registry, Relay};
use crate::presence::{Agent, Basic, Notify, WatchId};
use crate::reg::{Flow, Network, NetworkAction, Random, Side, token};
use crate::sip::{Builder, Message, Method};
use crate::sms::service::{CentreEvent, CentreSend, SmsCentre};
use crate::txn::{
    Event as TxnEvent, Protocol, Reliability, RequestVerdict, ResponseVerdict, Transactions, TxnId,
};

/// What the caller's transport knows of a destination, and the two
/// moments that can change it.
pub trait Links {
    /// Whether what goes to `to` goes over TCP or UDP.
    fn protocol(&self, to: SocketAddr) -> Protocol;

    /// Whether the transport retransmits what goes to `to`.
    fn reliability(&self, to: SocketAddr) -> Reliability {
        self.protocol(to).reliability()
    }

    /// A UE registered from `from`; requests to it go to `target` (a UE
    /// registered over TCP is reached over TCP from now on). Called before
    /// anything else of the batch is sent to it.
    fn registered(&mut self, from: SocketAddr, target: SocketAddr) {
        let _ = (from, target);
    }

    /// A registration ended: requests went to `targets`.
    fn deregistered(&mut self, targets: &[SocketAddr]) {
        let _ = targets;
    }
}

/// What the caller does next, in order ([`Pcscf::poll_output`]).
pub type Output = crate::Output<Event>;

/// What happened, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A UE registered (or refreshed): `from` is where its REGISTER came
    /// from, `target` where requests to it go (its port-s over its SAs).
    Registered {
        /// Its IMPI.
        impi: String,
        /// The IMPU registered.
        impu: String,
        /// Its Contact.
        contact: String,
        /// The granted expiry.
        expires: Duration,
        /// Where the REGISTER came from.
        from: SocketAddr,
        /// Where requests to it go.
        target: SocketAddr,
    },
    /// A registration ended; `targets` are where requests to its IMPUs
    /// went.
    Deregistered {
        /// Its IMPI.
        impi: String,
        /// Where requests to its IMPUs went.
        targets: Vec<SocketAddr>,
    },
    /// A registration attempt failed.
    AuthenticationFailed {
        /// The IMPI.
        impi: String,
        /// Why.
        reason: &'static str,
    },
    /// A request was relayed to its registered target.
    Relayed {
        /// Its method.
        method: String,
        /// Where it went.
        to: SocketAddr,
    },
    /// A PUBLISH was taken.
    Published {
        /// The presentity.
        resource: String,
        /// The entity tag of the publication.
        etag: Option<String>,
        /// The presentity's composed basic status.
        basic: Option<Basic>,
    },
    /// A watcher's subscription to a presentity began (`active`) or ended.
    Watcher {
        /// The presentity.
        resource: String,
        /// The watcher's URI.
        watcher: String,
        /// Whether the subscription is active.
        active: bool,
    },
    /// A decision of the SMS service centre.
    Sms(CentreEvent),
    /// A MESSAGE of the service centre that its target did not take.
    SmsFailed {
        /// The IMPU it went to.
        to: String,
        /// Why.
        why: SmsFailure,
    },
}

/// Why a MESSAGE of the service centre was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsFailure {
    /// The target answered with this final status.
    Status(u16),
    /// The target is not registered.
    NotRegistered,
    /// No final response came (Timer F).
    NoAnswer,
    /// It could not be sent.
    NotSent(String),
}

/// Where the role's requests and relays say they come from.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// The address of the relay's Via and of the centre's MESSAGEs.
    pub local: SocketAddr,
    /// The Via sent-by of the NOTIFYs we originate (our port-s with
    /// SAs).
    pub sent_by: SocketAddr,
}

/// The network role; see the [module documentation](self).
pub struct Pcscf {
    net: Network,
    layer: Transactions<SocketAddr>,
    registry: Registry<SocketAddr>,
    /// The IMPUs bound per IMPI (to unbind them).
    bound: HashMap<String, Vec<String>>,
    /// The IMPUs of each subscriber.
    impus: HashMap<String, Vec<String>>,
    /// Client transaction of a relayed request -> its server transaction
    /// and the request.
    relays: HashMap<TxnId, (TxnId, Message<'static>)>,
    /// Client transactions of the reg event's NOTIFYs.
    notifies: HashMap<TxnId, Message<'static>>,
    agent: Agent,
    /// Client transactions of presence NOTIFYs.
    presence_notifies: HashMap<TxnId, WatchId>,
    centre: SmsCentre,
    centre_uri: String,
    /// Client transactions of the centre's MESSAGEs -> the IMPU sent to.
    sms_out: HashMap<TxnId, String>,
    addresses: Addresses,
    /// UTC seconds since the epoch at `now` zero (the centre's clock).
    utc: u64,
    out: VecDeque<Output>,
    /// SA installs and updates waiting for the end of the batch.
    deferred: Vec<Output>,
}

impl std::fmt::Debug for Pcscf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pcscf")
            .field("addresses", &self.addresses)
            .field("relays", &self.relays.len())
            .finish_non_exhaustive()
    }
}

impl Pcscf {
    /// The role over `net` (its subscribers added), with `layer`, the
    /// presence `agent`, the service `centre` reached at `centre_uri`,
    /// and the IMPUs of each IMPI.
    pub fn new(
        net: Network,
        layer: Transactions<SocketAddr>,
        agent: Agent,
        centre: (SmsCentre, String),
        impus: HashMap<String, Vec<String>>,
        addresses: Addresses,
    ) -> Pcscf {
        Pcscf {
            net,
            layer,
            registry: Registry::new(),
            bound: HashMap::new(),
            impus,
            relays: HashMap::new(),
            notifies: HashMap::new(),
            agent,
            presence_notifies: HashMap::new(),
            centre: centre.0,
            centre_uri: centre.1,
            sms_out: HashMap::new(),
            addresses,
            utc: 0,
            out: VecDeque::new(),
            deferred: Vec::new(),
        }
    }

    /// Sets the UTC time (seconds since the epoch) at `now` zero: the
    /// service centre's timestamps (TP-SCTS) count from it.
    pub fn set_utc_offset(&mut self, unix_seconds: u64) {
        self.utc = unix_seconds;
    }

    /// The registrar.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The presence agent.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The transactions (to report a message that could not be sent:
    /// [`Transactions::transport_error`]).
    pub fn transactions(&mut self) -> &mut Transactions<SocketAddr> {
        &mut self.layer
    }

    /// The next thing to do, in order: what the transactions queued comes
    /// after the outputs before it.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out
            .pop_front()
            .or_else(|| self.layer.poll_transmit().map(Output::Transmit))
    }

    /// When [`Pcscf::handle_timeout`] wants to be called: at once (zero)
    /// while the transactions hold an event (a transport error the caller
    /// reported).
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.layer.has_events() {
            return Some(Duration::ZERO);
        }
        [
            self.layer.poll_timeout(),
            self.net.poll_timeout(),
            self.agent.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A request from `from` (its top Via already stamped with it, RFC
    /// 3581), which came on `flow` to our port `arrived_on`, over a
    /// transport of `reliability`.
    pub fn on_request(
        &mut self,
        m: &Message<'_>,
        from: SocketAddr,
        (flow, arrived_on, reliability): (Flow, Option<u16>, Reliability),
        now: Duration,
        rng: &mut dyn Random,
        links: &mut dyn Links,
    ) {
        let Ok(RequestVerdict::New(id)) =
            self.layer
                .on_request_at(m, from, arrived_on, reliability, now)
        else {
            return;
        };
        // gm::reg::Network decides which requests are registration's
        // (REGISTER, SUBSCRIBE to the reg event).
        match self.net.on_request(m, from.ip(), flow, now, rng) {
            Some(actions) => self.on_actions(actions, Some((id, from)), now, links),
            None if crate::sms::sip::for_centre(m, &self.centre_uri) => {
                self.service_centre(m, id, from, now, rng, links);
            }
            None if matches!(m.method(), Some(Method::Publish | Method::Subscribe)) => {
                self.presence(m, id, from, now, rng, links);
            }
            None => self.relay(m, id, from, now, rng, links),
        }
        self.end_batch();
    }

    /// A response.
    pub fn on_response(&mut self, m: &Message<'_>, now: Duration, links: &mut dyn Links) {
        let ResponseVerdict::ToTu(client) = self.layer.on_response(m, now) else {
            return;
        };
        let Some(status) = m.status().filter(|s| *s >= 200) else {
            return;
        };
        if let Some(watch) = self.presence_notifies.remove(&client) {
            self.notify_answered(watch, status);
        } else if self.notifies.remove(&client).is_some() {
            let actions = self.net.on_response(m, now);
            self.on_actions(actions, None, now, links);
        } else {
            if let Some(to) = self.sms_out.remove(&client) {
                // The RP-ACK comes in the recipient's own MESSAGE; a
                // refusal is the end of this delivery.
                if !(200..300).contains(&status) {
                    self.event(Event::SmsFailed {
                        to,
                        why: SmsFailure::Status(status),
                    });
                }
            }
            if let Some((server, _)) = self.relays.remove(&client) {
                if let Some(back) = crate::pager::response(m) {
                    let _ = self.layer.respond(server, &back, now);
                }
            }
        }
        self.end_batch();
    }

    /// Ends `impi`'s registration from the network's side (RFC 3680
    /// through its reg event: [`crate::reg::Ending`]); its SAs go once
    /// the NOTIFYs ended.
    pub fn deregister(
        &mut self,
        impi: &str,
        ending: crate::reg::Ending,
        now: Duration,
        links: &mut dyn Links,
    ) {
        let actions = self.net.deregister(impi, ending, now);
        self.on_actions(actions, None, now, links);
        self.end_batch();
    }

    /// Acts on the time: the transactions' timers, the registrar's
    /// (challenges, bindings, SAs kept a while), the presence agent's.
    pub fn handle_timeout(&mut self, now: Duration, rng: &mut dyn Random, links: &mut dyn Links) {
        self.layer.handle_timeout(now);
        let actions = self.net.handle_timeout(now);
        self.on_actions(actions, None, now, links);
        while let Some(e) = self.layer.poll_event() {
            match e {
                // No final response from the target (gm::pager: 408).
                TxnEvent::Timeout(client) => self.client_failed(client, true, now, rng, links),
                // It could not be sent (its SAs are gone): 500.
                TxnEvent::TransportError(client) => {
                    self.client_failed(client, false, now, rng, links)
                }
                TxnEvent::Terminated(client) => {
                    self.relays.remove(&client);
                    self.sms_out.remove(&client);
                    self.notifies.remove(&client);
                    self.presence_notifies.remove(&client);
                }
            }
        }
        // Expired subscriptions end; a publication that expired changes
        // what watchers see (nothing to do without watchers).
        let due = self.agent.poll_timeout().is_some_and(|t| t <= now);
        let notifies = if due || !self.agent.is_empty() {
            self.agent.handle_timeout(now)
        } else {
            Vec::new()
        };
        for n in notifies {
            if n.terminated {
                self.event(Event::Watcher {
                    resource: n.resource.clone(),
                    watcher: n.watcher.clone(),
                    active: false,
                });
            }
            self.send_notify(n, now, rng, links);
        }
        self.end_batch();
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    /// SA installs and updates wait until the batch's response has been
    /// queued: it never travels over them (the 401 goes to the UE's plain
    /// port; the 200 over SAs already installed, whose lifetime alone the
    /// update changes), and no message is read before they are in place.
    fn end_batch(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        self.queue_transmits();
        let deferred = std::mem::take(&mut self.deferred);
        self.out.extend(deferred);
    }

    /// What the transactions queued goes out before what follows.
    fn queue_transmits(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            self.out.push_back(Output::Transmit(t));
        }
    }

    fn relay(
        &mut self,
        m: &Message<'_>,
        id: TxnId,
        from: SocketAddr,
        now: Duration,
        rng: &mut dyn Random,
        links: &mut dyn Links,
    ) {
        let branch = token(rng, 8);
        let local = self.addresses.local;
        let via = |protocol: Protocol| {
            format!(
                "SIP/2.0/{} {local};branch=z9hG4bK{branch}",
                protocol.via_name()
            )
        };
        let mut routed = self.registry.route(m, &from, &via(Protocol::Udp));
        // Our Via names the transport of the hop: TCP to a UE on TCP.
        if let Relay::Forward { to, .. } = &routed {
            if links.protocol(*to) == Protocol::Tcp {
                routed = self.registry.route(m, &from, &via(Protocol::Tcp));
            }
        }
        match routed {
            Relay::Forward { to, request } => {
                match self
                    .layer
                    .start_client(&request, to, links.reliability(to), now)
                {
                    Ok(client) => {
                        self.relays.insert(client, (id, m.clone().into_owned()));
                        self.event(Event::Relayed {
                            method: m.method().map_or("", |x| x.as_str()).to_owned(),
                            to,
                        });
                    }
                    Err(_) => self.refuse(m, id, crate::pager::relay_failure(false), now, rng),
                }
            }
            Relay::Refuse(status) => self.refuse(m, id, status, now, rng),
        }
    }

    /// A PUBLISH or a SUBSCRIBE to presence: admitted by the agent's rule
    /// (a registered UE; a PUBLISH for itself), then answered by it.
    fn presence(
        &mut self,
        m: &Message<'_>,
        id: TxnId,
        from: SocketAddr,
        now: Duration,
        rng: &mut dyn Random,
        links: &mut dyn Links,
    ) {
        if let Err(status) = self.agent.admit(&self.registry, m, &from) {
            self.refuse(m, id, status, now, rng);
            return;
        }
        let tag = token(rng, 4);
        if m.method() == Some(Method::Publish) {
            let (reply, notifies) = self.agent.on_publish(m, now);
            match reply.response(m, &tag) {
                Ok(r) => {
                    let _ = self.layer.respond(id, &r, now);
                }
                Err(_) => self.refuse(m, id, 400, now, rng),
            }
            if reply.status == 200 {
                let resource = m.request_uri().map(|u| u.to_string()).unwrap_or_default();
                let basic = self
                    .agent
                    .compositor()
                    .composed(&resource, now)
                    .map(|d| d.basic());
                self.event(Event::Published {
                    resource,
                    etag: reply.etag.clone(),
                    basic,
                });
            }
            for n in notifies {
                self.send_notify(n, now, rng, links);
            }
            return;
        }
        match self.agent.on_subscribe(m, &tag, now) {
            Ok(s) => {
                let _ = self.layer.respond(id, &s.response, now);
                if let (Some(resource), Ok(watcher)) = (&s.resource, m.from()) {
                    self.event(Event::Watcher {
                        resource: resource.clone(),
                        watcher: watcher.uri.to_string(),
                        active: s.watch.is_some(),
                    });
                }
                if let Some(n) = s.notify {
                    self.send_notify(n, now, rng, links);
                }
            }
            Err(_) => self.refuse(m, id, 400, now, rng),
        }
    }

    /// Sends a presence NOTIFY to its watcher's registered flow (the UE's
    /// port-s over SAs), through a client transaction.
    fn send_notify(
        &mut self,
        n: Notify,
        now: Duration,
        rng: &mut dyn Random,
        links: &mut dyn Links,
    ) {
        let Some(to) = Agent::notify_target(&self.registry, &n).copied() else {
            // No registration vouches for the watcher any more.
            self.notify_answered(n.watch, 408);
            return;
        };
        let request = n
            .request
            .header(
                "Via",
                format!(
                    "SIP/2.0/{} {};branch=z9hG4bK{}",
                    links.protocol(to).via_name(),
                    self.addresses.sent_by,
                    token(rng, 8)
                ),
            )
            .header("Max-Forwards", 70)
            .build();
        let Ok(request) = request else {
            // Built from the agent's own values: cannot fail but by a bug;
            // the subscription ends, and says so.
            self.notify_answered(n.watch, 500);
            return;
        };
        match self
            .layer
            .start_client(&request, to, links.reliability(to), now)
        {
            Ok(client) => {
                if !n.terminated {
                    self.presence_notifies.insert(client, n.watch);
                }
            }
            Err(_) => self.notify_answered(n.watch, 408),
        }
    }

    /// A presence NOTIFY's final status (408: none came): a watcher gone
    /// ends its subscription.
    fn notify_answered(&mut self, watch: WatchId, status: u16) {
        let who = self
            .agent
            .watcher(watch)
            .map(str::to_owned)
            .zip(self.agent.resource(watch).map(str::to_owned));
        if self.agent.on_notify_response(watch, status) {
            if let Some((watcher, resource)) = who {
                self.event(Event::Watcher {
                    resource,
                    watcher,
                    active: false,
                });
            }
        }
    }

    /// A MESSAGE to the service centre: answered as the centre says, its
    /// MESSAGEs sent, its decisions reported. The centre's clock is the
    /// caller's `now` from the UTC time of [`Pcscf::set_utc_offset`].
    fn service_centre(
        &mut self,
        m: &Message<'_>,
        id: TxnId,
        from: SocketAddr,
        now: Duration,
        rng: &mut dyn Random,
        links: &mut dyn Links,
    ) {
        let sender = match self.registry.sender(m, &from) {
            Ok(s) => s,
            Err(status) => return self.refuse(m, id, status, now, rng),
        };
        let content_type = m.content_type_text();
        let scts = crate::sms::Timestamp::utc(self.utc.saturating_add(now.as_secs()));
        let reply = self
            .centre
            .on_message(&sender, &content_type, m.body(), scts);
        self.refuse(m, id, reply.status, now, rng);
        for e in reply.events {
            self.event(Event::Sms(e));
        }
        for s in reply.send {
            self.centre_send(s, now, rng, links);
        }
    }

    /// Sends a MESSAGE of the centre to where its target registered (its
    /// port-s over SAs, as the relay does).
    fn centre_send(
        &mut self,
        s: CentreSend,
        now: Duration,
        rng: &mut dyn Random,
        links: &mut dyn Links,
    ) {
        let Some(to) = self.registry.target(&s.to).copied() else {
            self.event(Event::SmsFailed {
                to: s.to,
                why: SmsFailure::NotRegistered,
            });
            return;
        };
        let call_id = token(rng, 12);
        let from_tag = token(rng, 6);
        let branch = format!("z9hG4bK{}", token(rng, 8));
        let local = self.addresses.local.to_string();
        let page = crate::pager::Page {
            from: &self.centre_uri,
            to: &s.to,
            local: &local,
            call_id: &call_id,
            from_tag: &from_tag,
            branch: &branch,
            cseq: 1,
            routes: &[],
            text: "",
            protocol: links.protocol(to),
        };
        let sent = crate::sms::sip::request(&page, &s.body)
            .map_err(|e| e.to_string())
            .and_then(|r| {
                self.layer
                    .start_client(&r, to, links.reliability(to), now)
                    .map_err(|e| e.to_string())
            });
        match sent {
            Ok(client) => {
                self.sms_out.insert(client, s.to);
            }
            Err(e) => self.event(Event::SmsFailed {
                to: s.to,
                why: SmsFailure::NotSent(e),
            }),
        }
    }

    /// Answers a request with `status` (a refusal, or the service
    /// centre's answer).
    fn refuse(
        &mut self,
        m: &Message<'_>,
        id: TxnId,
        status: u16,
        now: Duration,
        rng: &mut dyn Random,
    ) {
        if let Ok(r) = Builder::response_to(m, status, None)
            .to_tag(&token(rng, 4))
            .build()
        {
            let _ = self.layer.respond(id, &r, now);
        }
    }

    fn on_actions(
        &mut self,
        actions: Vec<NetworkAction>,
        txn: Option<(TxnId, SocketAddr)>,
        now: Duration,
        links: &mut dyn Links,
    ) {
        for a in actions {
            match a {
                NetworkAction::Respond(r) => {
                    if let Some((id, _)) = txn {
                        let _ = self.layer.respond(id, &r, now);
                    }
                }
                NetworkAction::Registered {
                    impi,
                    impu,
                    contact,
                    expires,
                } => {
                    // The IMPUs bound: the table's and the registered one
                    // (usually one of them), kept from the last time.
                    if !self.bound.get(&impi).is_some_and(|s| s.contains(&impu)) {
                        let mut set = self.impus.get(&impi).cloned().unwrap_or_default();
                        if !set.contains(&impu) {
                            set.push(impu.clone());
                        }
                        self.bound.insert(impi.clone(), set);
                    }
                    let Some((_, from)) = txn else { continue };
                    // Over SAs the UE sends from its port-c (`from`) and
                    // takes requests on its port-s (TS 33.203).
                    let target = self
                        .net
                        .sas(&impi)
                        .map_or(from, |s| SocketAddr::new(s.ue_addr(), s.ue_offer().port_s));
                    if let Some(set) = self.bound.get(&impi) {
                        self.registry.bind_flow(set, from, target);
                    }
                    links.registered(from, target);
                    self.event(Event::Registered {
                        impi,
                        impu,
                        contact,
                        expires,
                        from,
                        target,
                    });
                }
                NetworkAction::Deregistered { impi } => {
                    let mut targets = Vec::new();
                    if let Some(set) = self.bound.remove(&impi) {
                        targets = set
                            .iter()
                            .filter_map(|impu| self.registry.target(impu).copied())
                            .collect();
                        self.registry.unbind(&set);
                    }
                    links.deregistered(&targets);
                    self.event(Event::Deregistered { impi, targets });
                }
                NetworkAction::Notify { request, flow } => {
                    // To the UE's Contact (its protected server port, where
                    // TS 33.203 has the P-CSCF's requests arrive), else to
                    // where the request came from.
                    let to = request_target(&request).or_else(|| txn.map(|(_, from)| from));
                    if let Some(to) = to {
                        // From the port gm chose: during an SA handover two
                        // sets reach the UE's port-s.
                        let from_port = flow.local_port(Side::Network);
                        if let Ok(client) = self.layer.start_client_at(
                            &request,
                            to,
                            from_port,
                            links.reliability(to),
                            now,
                        ) {
                            self.notifies.insert(client, request);
                        }
                    }
                }
                NetworkAction::AuthenticationFailed { impi, reason } => {
                    self.event(Event::AuthenticationFailed { impi, reason })
                }
                NetworkAction::InstallSas(set) => {
                    let replaces = self.net.handover_from(&set).cloned();
                    self.deferred.push(Output::InstallSas { set, replaces });
                }
                NetworkAction::UpdateSas(set) => self.deferred.push(Output::UpdateSas(set)),
                NetworkAction::RemoveSas(set) => {
                    // SA changes keep their order; a response queued for
                    // these SAs (the 200 of a de-registration) leaves
                    // before they go.
                    self.end_batch();
                    self.queue_transmits();
                    self.out.push_back(Output::RemoveSas(set));
                }
            }
        }
    }

    /// Client transaction `client` ended without a final response:
    /// `timed_out` (Timer F) or its message could not be sent.
    fn client_failed(
        &mut self,
        client: TxnId,
        timed_out: bool,
        now: Duration,
        rng: &mut dyn Random,
        links: &mut dyn Links,
    ) {
        if let Some((server, request)) = self.relays.remove(&client) {
            self.refuse(
                &request,
                server,
                crate::pager::relay_failure(timed_out),
                now,
                rng,
            );
        }
        if let Some(to) = self.sms_out.remove(&client) {
            let why = if timed_out {
                SmsFailure::NoAnswer
            } else {
                SmsFailure::NotSent("could not be sent".to_owned())
            };
            self.event(Event::SmsFailed { to, why });
        }
        if let Some(notify) = self.notifies.remove(&client) {
            let actions = self.net.on_notify_timeout(&notify);
            self.on_actions(actions, None, now, links);
        }
        if let Some(watch) = self.presence_notifies.remove(&client) {
            self.notify_answered(watch, 408);
        }
    }
}

/// The address of a request's Request-URI (`sip:IP:port`, as a UE's
/// Contact is written).
fn request_target(request: &Message<'_>) -> Option<SocketAddr> {
    let uri = request.request_uri()?;
    let sip = uri.sip()?;
    let ip: std::net::IpAddr = match sip.host {
        crate::sip::Host::V4(a) => a.into(),
        crate::sip::Host::V6(a) => a.into(),
        crate::sip::Host::Name(_) => return None,
    };
    Some(SocketAddr::new(ip, sip.port.unwrap_or(5060)))
}
