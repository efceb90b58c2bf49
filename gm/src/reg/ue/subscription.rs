//! The UE's subscription to the reg event package of its own IMPU (TS
//! 24.229 §5.1.1.3 and §5.1.1.7 as commonly implemented, RFC 3680, RFC
//! 6665 §4.1): SUBSCRIBE after the initial registration, NOTIFYs
//! answered and read, our binding acted on, unsubscribe on
//! de-registration.

use std::time::Duration;

use super::{Flow, Random, State, Ue, UeAction, hostport, refresh_after, token};
use crate::dialog::{Phase, SubState, Subscription};
use crate::regevent::{Binding, ContactEvent, REGINFO_TYPE, RegView, Reginfo};
use crate::sip::{Builder, Message, Method};

/// Timer N of the subscription is 64·T1 with RFC 3261's default T1.
const T1: Duration = Duration::from_millis(500);

/// The reg event subscription and what its NOTIFYs said.
pub(super) struct RegSub {
    sub: Subscription,
    call_id: String,
    view: RegView,
    /// A refresh (or the unsubscribe) is out and unanswered.
    refreshing: bool,
    /// The unsubscribe was sent: nothing is acted on any more.
    ending: bool,
}

impl Ue {
    /// The flow of our requests: over the SAs from our port-c to the
    /// P-CSCF's port-s, or unprotected without SAs.
    fn client_flow(&self) -> Flow {
        match &self.sas {
            Some(s) => Flow::Protected {
                ue_port: s.ue_offer().port_c,
                pcscf_port: s.pcscf_offer().port_s,
            },
            None => Flow::Unprotected,
        }
    }

    /// Whether `flow` is one the P-CSCF's requests may come on (TS 33.203:
    /// from its port-c to our port-s) over our SAs, the set a handover
    /// retires included; any flow without SAs.
    pub(super) fn server_flow_ok(&self, flow: Flow) -> bool {
        let mut sets = self.sas.iter().chain(&self.retiring).peekable();
        sets.peek().is_none()
            || sets.any(|s| {
                flow == Flow::Protected {
                    ue_port: s.ue_offer().port_s,
                    pcscf_port: s.pcscf_offer().port_c,
                }
            })
    }

    /// Whether a response to our request came on `flow`: the flow of
    /// our requests, or during a handover the retiring set's.
    pub(super) fn client_flow_ok(&self, flow: Flow) -> bool {
        self.sas.is_none()
            || flow == self.client_flow()
            || self.retiring.as_ref().is_some_and(|s| {
                flow == Flow::Protected {
                    ue_port: s.ue_offer().port_c,
                    pcscf_port: s.pcscf_offer().port_s,
                }
            })
    }

    /// Via, Max-Forwards, Contact and Accept of our SUBSCRIBEs.
    fn finish_subscribe(
        &self,
        b: Builder,
        flow: Flow,
        rng: &mut dyn Random,
    ) -> Result<Message<'static>, crate::sip::Error> {
        let c = &self.config.c;
        let via_port = match flow {
            Flow::Protected { ue_port, .. } => ue_port,
            Flow::Unprotected => c.port,
        };
        b.header(
            "Via",
            format!(
                "SIP/2.0/{} {};branch=z9hG4bK{};rport",
                c.protocol.via_name(),
                hostport(c.ue_addr, via_port),
                token(rng, 8)
            ),
        )
        .header("Max-Forwards", 70)
        .header("Contact", format!("<{}>", self.contact_uri()))
        .header("Accept", REGINFO_TYPE)
        .build()
    }

    /// The initial SUBSCRIBE (TS 24.229 §5.1.1.3): to our IMPU, from it,
    /// over the SAs, routed by the Service-Route, for as long as the
    /// registration.
    pub(super) fn subscribe(&mut self, now: Duration, rng: &mut dyn Random) -> Vec<UeAction> {
        if !self.config.c.reg_event || self.reg_sub.is_some() {
            return Vec::new();
        }
        let Some(r) = &self.registration else {
            return Vec::new();
        };
        let c = &self.config.c;
        let call_id = token(rng, 12);
        let mut b = Message::request(Method::Subscribe, &c.impu);
        for route in &r.service_routes {
            b = b.header("Route", route);
        }
        let b = b
            .header("From", format!("<{}>;tag={}", c.impu, token(rng, 6)))
            .header("To", format!("<{}>", c.impu))
            .header("Call-ID", &call_id)
            .header("CSeq", "1 SUBSCRIBE")
            .header("Event", "reg")
            .header("Expires", r.expires.as_secs());
        let flow = self.client_flow();
        let Ok(request) = self.finish_subscribe(b, flow, rng) else {
            return vec![UeAction::RegEventEnded];
        };
        let Ok(sub) = Subscription::new(&request, now, T1) else {
            return vec![UeAction::RegEventEnded];
        };
        self.reg_sub = Some(RegSub {
            sub,
            call_id,
            view: RegView::new(),
            refreshing: false,
            ending: false,
        });
        vec![UeAction::Send { request, flow }]
    }

    /// The SUBSCRIBE with `Expires: 0` in the subscription's dialog, if it
    /// has one (RFC 6665 §4.1.2.3).
    pub(super) fn unsubscribe(&mut self, rng: &mut dyn Random) -> Vec<UeAction> {
        let now = self.now;
        let flow = self.client_flow();
        let Some(rs) = self.reg_sub.as_mut() else {
            return Vec::new();
        };
        rs.ending = true;
        let Some(b) = rs.sub.refresh(0, now) else {
            // No dialog yet (the SUBSCRIBE is unanswered): the unsubscribe
            // goes once its 2xx makes one.
            return Vec::new();
        };
        rs.refreshing = true;
        match self.finish_subscribe(b, flow, rng) {
            Ok(request) => vec![UeAction::Send { request, flow }],
            Err(_) => Vec::new(),
        }
    }

    /// When the subscription's timers want [`Ue::handle_timeout`].
    pub(super) fn subscription_timeout(&self) -> Option<Duration> {
        let rs = self.reg_sub.as_ref().filter(|rs| !rs.ending)?;
        let refresh = (!rs.refreshing && self.state == State::Registered)
            .then(|| rs.sub.refresh_at())
            .flatten();
        [refresh, rs.sub.poll_timeout()].into_iter().flatten().min()
    }

    /// Timer N or the expiry end the subscription; at the refresh time,
    /// the refreshing SUBSCRIBE.
    pub(super) fn subscription_handle_timeout(
        &mut self,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Vec<UeAction> {
        let registered = self.state == State::Registered;
        let expires = self
            .registration
            .as_ref()
            .map_or(0, |r| r.expires.as_secs());
        let flow = self.client_flow();
        let Some(rs) = self.reg_sub.as_mut().filter(|rs| !rs.ending) else {
            return Vec::new();
        };
        rs.sub.handle_timeout(now);
        if *rs.sub.phase() == Phase::Ended {
            self.reg_sub = None;
            return vec![UeAction::RegEventEnded];
        }
        let due = rs.sub.refresh_at().is_some_and(|t| now >= t);
        if !(registered && due && !rs.refreshing) {
            return Vec::new();
        }
        let expires = u32::try_from(expires).unwrap_or(u32::MAX);
        let Some(b) = rs.sub.refresh(expires, now) else {
            return Vec::new();
        };
        rs.refreshing = true;
        match self.finish_subscribe(b, flow, rng) {
            Ok(request) => vec![UeAction::Send { request, flow }],
            Err(_) => Vec::new(),
        }
    }

    /// A response to one of our SUBSCRIBEs: `None` when it is not one.
    pub(super) fn on_subscribe_response(
        &mut self,
        response: &Message<'_>,
        flow: Flow,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Option<Vec<UeAction>> {
        let rs = self.reg_sub.as_ref()?;
        let ours = response.call_id().is_ok_and(|c| c == rs.call_id)
            && response.cseq().is_ok_and(|c| c.method == Method::Subscribe);
        if !ours {
            return None;
        }
        // While SAs are in place, only what came over them.
        if !self.client_flow_ok(flow) {
            return Some(Vec::new());
        }
        if response.status().is_none_or(|s| s < 200) {
            return Some(Vec::new());
        }
        let rs = self.reg_sub.as_mut()?;
        let unsubscribe_due = rs.ending && !rs.refreshing && rs.sub.dialog().is_none();
        rs.refreshing = false;
        let _ = rs.sub.on_response(response, now);
        if *rs.sub.phase() == Phase::Ended {
            let ending = rs.ending;
            self.reg_sub = None;
            if !ending {
                return Some(vec![UeAction::RegEventEnded]);
            }
            return Some(Vec::new());
        }
        // De-registration came before the dialog: unsubscribe now.
        if unsubscribe_due && rs.sub.dialog().is_some() && self.state != State::Done {
            return Some(self.unsubscribe(rng));
        }
        Some(Vec::new())
    }

    /// A request from the network (RFC 6665 §4.1.3): a NOTIFY of the reg
    /// event is answered ([`UeAction::Respond`]: 200, or 481 when it
    /// belongs to no subscription of ours, 489 for another package, 400
    /// for a body that is not a reginfo document) and, when it says
    /// something of our own binding (RFC 3680 §5.2, the contact of our
    /// Contact URI under our IMPU), acted on:
    ///
    /// - `shortened`: the registration now ends `expires` seconds from
    ///   now; we re-register at [`super::super::refresh_after`] of it
    ///   ([`UeAction::Shortened`]);
    /// - `terminated` with `deactivated`: the SAs are removed,
    ///   [`UeAction::DeregisteredByNetwork`], and a new initial
    ///   registration starts at once; with `probation`, after its
    ///   `retry-after`;
    /// - `terminated` with `rejected` (or `expired`, `unregistered`): the
    ///   SAs are removed, [`UeAction::DeregisteredByNetwork`], and the
    ///   machine stops.
    ///
    /// While SAs are in place a NOTIFY must come over them (from the
    /// P-CSCF's port-c to our port-s); one that did not is dropped
    /// unanswered. Returns `None` for requests that are not the reg
    /// event's (another method or event package): the caller answers
    /// those.
    pub fn on_request(
        &mut self,
        request: &Message<'_>,
        flow: Flow,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Option<Vec<UeAction>> {
        if request.method() != Some(Method::Notify) {
            return None;
        }
        match request.event() {
            Ok(Some(e)) if e.package().eq_ignore_ascii_case("reg") => {}
            Ok(Some(_)) => return None,
            // No or a malformed Event: Subscription::on_notify says 400 or
            // 489, if it is for our dialog.
            _ => {}
        }
        self.now = now;
        if !self.server_flow_ok(flow) {
            return Some(Vec::new());
        }
        let respond = |status: u16| -> Vec<UeAction> {
            match Builder::response_to(request, status, None).build() {
                Ok(response) => vec![UeAction::Respond { response, flow }],
                // Too broken to answer (no Via...): dropped.
                Err(_) => Vec::new(),
            }
        };
        let (impu, contact) = (self.config.c.impu.clone(), self.contact_uri());
        let Some(rs) = self.reg_sub.as_mut() else {
            return Some(respond(481));
        };
        if request.call_id().ok() != Some(rs.call_id.as_str()) {
            return Some(respond(481));
        }
        // The body before the state: a document we cannot read is refused
        // whole (RFC 6665 §4.1.3 leaves the response to a bad body open;
        // 400 says the request was malformed).
        let doc = if request.body().is_empty() {
            None
        } else {
            let typed = request.content_type().ok().flatten().is_some_and(|t| {
                format!("{}/{}", t.mtype, t.subtype).eq_ignore_ascii_case(REGINFO_TYPE)
            });
            let parsed = std::str::from_utf8(request.body())
                .ok()
                .filter(|_| typed)
                .and_then(|t| Reginfo::parse(t).ok());
            match parsed {
                Some(d) => Some(d),
                None => return Some(respond(400)),
            }
        };
        let notified = rs.sub.on_notify(request, now);
        let mut out = respond(notified.status);
        if notified.status != 200 {
            return Some(out);
        }
        let ending = rs.ending;
        let ended = matches!(notified.state, Some(SubState::Terminated { .. }));
        // What this document says of our binding (a stale one says
        // nothing).
        let mine = doc.and_then(|d| {
            if rs.view.apply(&d) == crate::regevent::Applied::Stale {
                return None;
            }
            let mut one = RegView::new();
            one.apply(&d);
            Some(one.binding(&impu, &contact))
        });
        if ended {
            self.reg_sub = None;
        }
        if ending {
            return Some(out);
        }
        let registered = matches!(self.state, State::Registered | State::AwaitRefresh);
        let acted = match mine {
            Some(b) if registered => self.on_binding(b, now, rng),
            _ => None,
        };
        match acted {
            Some(a) => out.extend(a),
            None if ended && registered => out.push(UeAction::RegEventEnded),
            None => {}
        }
        Some(out)
    }

    /// Acts on what the registrar says of our binding; `None` when that
    /// changes nothing.
    fn on_binding(
        &mut self,
        binding: Binding,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Option<Vec<UeAction>> {
        let (event, after) = match binding {
            Binding::Unknown | Binding::Active => return None,
            Binding::Shortened { expires } => {
                let r = self.registration.as_mut()?;
                let e = Duration::from_secs(expires);
                let until = now.saturating_add(e);
                if until >= r.expires_at {
                    return None;
                }
                r.expires = e;
                r.expires_at = until;
                r.refresh_at = now.saturating_add(refresh_after(e));
                return Some(vec![UeAction::Shortened(r.clone())]);
            }
            Binding::ReRegister => (ContactEvent::Deactivated, Some(Duration::ZERO)),
            Binding::Probation { retry_after } => (
                ContactEvent::Probation,
                Some(Duration::from_secs(retry_after)),
            ),
            Binding::Gone(e) => (e, None),
        };
        let mut out = Vec::new();
        out.extend(self.sas.take().map(UeAction::RemoveSas));
        out.extend(self.retiring.take().map(UeAction::RemoveSas));
        self.registration = None;
        self.challenge = None;
        self.server_rows.clear();
        self.reg_sub = None;
        self.expires = self.config.c.expires;
        out.push(UeAction::DeregisteredByNetwork {
            event,
            reregister_after: after,
        });
        match after {
            Some(d) if d.is_zero() => {
                self.state = State::Idle;
                out.extend(self.register(rng));
            }
            Some(d) => {
                self.state = State::Waiting {
                    until: now.saturating_add(d),
                }
            }
            None => self.state = State::Done,
        }
        Some(out)
    }
}
