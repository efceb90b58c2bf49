//! Dialogs (RFC 3261 §12) and the subscriber's side of a subscription
//! (RFC 6665 §4.1), sans-IO: what the reg event (RFC 3680) and presence
//! (RFC 3856) need.
//!
//! A [`Dialog`] is the state shared by the requests of one dialog: Call-ID,
//! tags, CSeq numbers, the remote target and the route set. It is created
//! by a 2xx to a dialog-creating request we sent ([`Dialog::uac`]), by a
//! request we received ([`Dialog::uas`]), or, for a subscription, by a
//! NOTIFY that overtakes the SUBSCRIBE's 2xx (RFC 6665 §4.1.2.4,
//! [`Dialog::from_notify`]). [`Dialog::request`] starts the next request in
//! it (Request-URI, Route, From, To, Call-ID and CSeq); the caller adds
//! Via and the rest.
//!
//! A [`Subscription`] follows one subscription: Timer N (64·T1) until
//! the first NOTIFY, the duration granted by the 2xx or by the NOTIFY's
//! `Subscription-State: ...;expires=`, when to refresh, and the typed
//! state each NOTIFY carries, with the response the NOTIFY must get (200,
//! 481 when it belongs to no subscription, 489 for another event package,
//! 400 when it has no Subscription-State).
//!
//! Compared as strings: Call-IDs and tags (RFC 3261 §19.3 says they are
//! compared byte for byte), event packages case-insensitively, `id`
//! exactly (RFC 6665 §8.2.1). Forking (several dialogs from one
//! SUBSCRIBE, §4.1.4) is not handled: the first NOTIFY or 2xx makes the
//! only dialog, and a NOTIFY with another tag gets 481.

use std::fmt;
use std::time::Duration;

use crate::sip::header::NameAddr;
use crate::sip::{Builder, Error as SipError, HeaderName, Message, Method};

/// Why a dialog or subscription refused a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialogError {
    /// A header the dialog needs is missing or malformed.
    Message(SipError),
    /// No tag where one is needed (a 2xx without a To tag, a request
    /// without a From tag).
    NoTag(&'static str),
    /// No Contact (a dialog-creating message must carry one, §12.1).
    NoContact,
    /// The remote CSeq went backwards (§12.2.2: answer 500).
    OldCSeq {
        /// The last one seen.
        last: u32,
        /// The one received.
        got: u32,
    },
    /// Not this dialog's Call-ID and tags.
    NotInDialog,
}

impl fmt::Display for DialogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialogError::Message(e) => write!(f, "{e}"),
            DialogError::NoTag(what) => write!(f, "no tag in {what}"),
            DialogError::NoContact => f.write_str("no Contact in a dialog-creating message"),
            DialogError::OldCSeq { last, got } => {
                write!(f, "CSeq {got} is not above the last one, {last}")
            }
            DialogError::NotInDialog => f.write_str("not in this dialog"),
        }
    }
}

impl std::error::Error for DialogError {}

impl From<SipError> for DialogError {
    fn from(e: SipError) -> Self {
        DialogError::Message(e)
    }
}

/// The state of one dialog (RFC 3261 §12.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// Our URI (From of our requests), as written.
    pub local_uri: String,
    /// The peer's URI (To of our requests), as written.
    pub remote_uri: String,
    /// The CSeq number of our last request in the dialog.
    pub local_seq: u32,
    /// The CSeq number of the peer's last request, once one came.
    pub remote_seq: Option<u32>,
    /// Where our requests go: the peer's Contact URI.
    pub remote_target: String,
    /// Route set, in the order our requests carry it.
    pub route_set: Vec<String>,
}

fn contact_uri(m: &Message<'_>) -> Result<String, DialogError> {
    let contacts = m.contacts()?.ok_or(DialogError::NoContact)?;
    match contacts {
        crate::sip::header::Contacts::List(list) => list
            .first()
            .map(|c| c.uri.to_string())
            .ok_or(DialogError::NoContact),
        crate::sip::header::Contacts::Star => Err(DialogError::NoContact),
    }
}

fn uri_of(a: &NameAddr<'_>) -> String {
    a.uri.to_string()
}

impl Dialog {
    /// The dialog a 2xx `response` to our `request` creates (§12.1.2):
    /// the route set is the response's Record-Route reversed, the remote
    /// target its Contact.
    pub fn uac(request: &Message<'_>, response: &Message<'_>) -> Result<Dialog, DialogError> {
        let from = request.from()?;
        let to = response.to()?;
        let mut route_set: Vec<String> = response
            .record_routes()?
            .iter()
            .map(|r| r.to_string())
            .collect();
        route_set.reverse();
        Ok(Dialog {
            call_id: request.call_id()?.to_owned(),
            local_tag: from.tag().ok_or(DialogError::NoTag("our From"))?.to_owned(),
            remote_tag: to
                .tag()
                .ok_or(DialogError::NoTag("the response's To"))?
                .to_owned(),
            local_uri: uri_of(&from),
            remote_uri: uri_of(&request.to()?),
            local_seq: request.cseq()?.seq,
            remote_seq: None,
            remote_target: contact_uri(response)?,
            route_set,
        })
    }

    /// The dialog a received dialog-creating `request` makes when we answer
    /// it with `local_tag` (§12.1.1): the route set is its Record-Route in
    /// order, the remote target its Contact.
    pub fn uas(request: &Message<'_>, local_tag: &str) -> Result<Dialog, DialogError> {
        let from = request.from()?;
        Ok(Dialog {
            call_id: request.call_id()?.to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: from
                .tag()
                .ok_or(DialogError::NoTag("the request's From"))?
                .to_owned(),
            local_uri: uri_of(&request.to()?),
            remote_uri: uri_of(&from),
            local_seq: 0,
            remote_seq: Some(request.cseq()?.seq),
            remote_target: contact_uri(request)?,
            route_set: request
                .record_routes()?
                .iter()
                .map(|r| r.to_string())
                .collect(),
        })
    }

    /// The dialog a NOTIFY makes for our SUBSCRIBE when it arrives first
    /// (RFC 6665 §4.1.2.4, §4.4.1): we are the UAS of the NOTIFY, so its
    /// From tag is the remote tag and its Record-Route the route set; our
    /// CSeq is the SUBSCRIBE's.
    pub fn from_notify(
        subscribe: &Message<'_>,
        notify: &Message<'_>,
    ) -> Result<Dialog, DialogError> {
        let mut d = Dialog::uas(notify, "")?;
        let from = subscribe.from()?;
        d.local_tag = from.tag().ok_or(DialogError::NoTag("our From"))?.to_owned();
        d.local_uri = uri_of(&from);
        d.remote_uri = uri_of(&subscribe.to()?);
        d.local_seq = subscribe.cseq()?.seq;
        Ok(d)
    }

    /// Whether `m` (a request we received, or a response to a request we
    /// sent) belongs to this dialog: Call-ID and both tags.
    pub fn matches(&self, m: &Message<'_>) -> bool {
        let (Ok(call_id), Ok(from), Ok(to)) = (m.call_id(), m.from(), m.to()) else {
            return false;
        };
        let (ours, theirs) = if m.is_request() {
            (to.tag(), from.tag())
        } else {
            (from.tag(), to.tag())
        };
        call_id == self.call_id
            && ours == Some(self.local_tag.as_str())
            && theirs == Some(self.remote_tag.as_str())
    }

    /// Checks a request received in the dialog and records its CSeq
    /// (§12.2.2): a lower number than the last is refused (answer 500).
    pub fn receive(&mut self, request: &Message<'_>) -> Result<(), DialogError> {
        if !self.matches(request) {
            return Err(DialogError::NotInDialog);
        }
        let got = request.cseq()?.seq;
        if let Some(last) = self.remote_seq {
            if got < last {
                return Err(DialogError::OldCSeq { last, got });
            }
        }
        self.remote_seq = Some(got);
        Ok(())
    }

    /// The next request in the dialog (§12.2.1.1): Request-URI and Route
    /// from the remote target and route set (loose routing; a strict
    /// router first in the set gets the Request-URI, the remote target goes
    /// last), From and To with the tags, Call-ID, the next CSeq. The caller
    /// adds Via, Max-Forwards, Contact and the rest.
    pub fn request(&mut self, method: Method<'_>) -> Builder {
        self.local_seq = self.local_seq.wrapping_add(1);
        let lr = |r: &str| {
            NameAddr::parse(r).is_ok_and(|a| match a.uri {
                crate::sip::Uri::Sip(u) => u.params.has("lr"),
                _ => false,
            })
        };
        let (ruri, routes): (String, Vec<String>) = match self.route_set.first() {
            Some(first) if !lr(first) => {
                let uri = NameAddr::parse(first)
                    .map(|a| a.uri.to_string())
                    .unwrap_or_else(|_| first.clone());
                let mut rest: Vec<String> = self.route_set.iter().skip(1).cloned().collect();
                rest.push(format!("<{}>", self.remote_target));
                (uri, rest)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        };
        let mut b = Message::request(method, &ruri);
        for r in routes {
            b = b.header("Route", r);
        }
        b.header(
            "From",
            format!("<{}>;tag={}", self.local_uri, self.local_tag),
        )
        .header(
            "To",
            format!("<{}>;tag={}", self.remote_uri, self.remote_tag),
        )
        .header("Call-ID", &self.call_id)
        .header("CSeq", format!("{} {}", self.local_seq, method.as_str()))
    }
}

/// The state a NOTIFY reports (RFC 6665 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubState {
    /// Accepted; valid until the given time.
    Active {
        /// When it expires (caller's clock).
        until: Duration,
    },
    /// Received, not yet authorised; valid until the given time.
    Pending {
        /// When it expires (caller's clock).
        until: Duration,
    },
    /// Ended by the notifier.
    Terminated {
        /// The reason code (`deactivated`, `probation`, `rejected`,
        /// `timeout`, `giveup`, `noresource`, `invariant`, or another).
        reason: Option<String>,
        /// `retry-after`, in seconds.
        retry_after: Option<u32>,
    },
}

impl SubState {
    /// Whether RFC 6665 §4.1.3 lets the subscriber subscribe again (at
    /// once, or after `retry-after`): not after `rejected`, `noresource`
    /// or `invariant`.
    pub fn may_resubscribe(&self) -> bool {
        match self {
            SubState::Terminated { reason, .. } => !matches!(
                reason.as_deref(),
                Some("rejected" | "noresource" | "invariant")
            ),
            _ => true,
        }
    }
}

/// What the subscriber makes of a NOTIFY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notified {
    /// The status to answer it with: 200, or 481 / 489 / 400 / 500.
    pub status: u16,
    /// The state it reports (when accepted).
    pub state: Option<SubState>,
}

/// Where a subscription stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// SUBSCRIBE sent; Timer N runs until the first NOTIFY.
    Waiting,
    /// A NOTIFY came: [`Subscription::state`] has what it said.
    Established,
    /// Over: terminated by the notifier, refused, or Timer N fired.
    Ended,
}

/// The subscriber's side of one subscription (RFC 6665 §4.1).
#[derive(Clone, Debug)]
pub struct Subscription {
    event: String,
    id: Option<String>,
    subscribe: Message<'static>,
    dialog: Option<Dialog>,
    phase: Phase,
    state: Option<SubState>,
    timer_n: Option<Duration>,
    expires: Option<Duration>,
    granted: Duration,
    t1: Duration,
}

impl Subscription {
    /// Follows the subscription `subscribe` (a SUBSCRIBE we send, with an
    /// Event header) asks for, sent at `now`; `t1` is the transaction
    /// layer's T1 (Timer N is 64·T1).
    pub fn new(subscribe: &Message<'_>, now: Duration, t1: Duration) -> Result<Self, DialogError> {
        let event = subscribe
            .event()?
            .ok_or(DialogError::Message(SipError::Missing(HeaderName::Event)))?;
        subscribe
            .from()?
            .tag()
            .ok_or(DialogError::NoTag("our From"))?;
        let requested = subscribe.expires()?.unwrap_or(3600);
        Ok(Subscription {
            event: event.package().to_ascii_lowercase(),
            id: event.id().map(str::to_owned),
            subscribe: subscribe.clone().into_owned(),
            dialog: None,
            phase: Phase::Waiting,
            state: None,
            timer_n: Some(now + t1.saturating_mul(64)),
            expires: None,
            granted: Duration::from_secs(u64::from(requested)),
            t1,
        })
    }

    /// Where it stands.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// What the last NOTIFY said.
    pub fn state(&self) -> Option<&SubState> {
        self.state.as_ref()
    }

    /// Its dialog, once a 2xx or a NOTIFY made one.
    pub fn dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    /// The response to a SUBSCRIBE of this subscription (initial or
    /// refresh). A 2xx makes the dialog (unless a NOTIFY did) and sets the
    /// duration from its Expires; an error ends an initial subscription,
    /// and a refresh only for the codes of §4.1.2.2.
    pub fn on_response(
        &mut self,
        response: &Message<'_>,
        now: Duration,
    ) -> Result<(), DialogError> {
        let status = response.status().unwrap_or(0);
        let initial = self.dialog.is_none() && self.phase == Phase::Waiting;
        match status {
            200..=299 => {
                if self.dialog.is_none() {
                    self.dialog = Some(Dialog::uac(&self.subscribe, response)?);
                }
                if let Some(e) = response.expires()? {
                    self.granted = Duration::from_secs(u64::from(e));
                    self.expires = Some(now + self.granted);
                }
                Ok(())
            }
            300..=699 => {
                let fatal = initial
                    || matches!(status, 404 | 405 | 410 | 416 | 480..=485 | 489 | 501 | 604);
                if fatal {
                    self.end(now);
                } else {
                    // §4.1.2.2: the subscription stays valid until the
                    // last known expiry; Timer N of this refresh stops.
                    self.timer_n = None;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn end(&mut self, _now: Duration) {
        self.phase = Phase::Ended;
        self.timer_n = None;
        self.expires = None;
    }

    /// A NOTIFY arrived: matched to this subscription (Call-ID, our From
    /// tag as its To tag, the dialog's remote tag if there is a dialog, the
    /// Event package and id), it updates the state; the returned status is
    /// the response to send (RFC 6665 §4.1.3).
    pub fn on_notify(&mut self, notify: &Message<'_>, now: Duration) -> Notified {
        let refuse = |status| Notified {
            status,
            state: None,
        };
        let (Ok(call_id), Ok(to), Ok(from)) = (notify.call_id(), notify.to(), notify.from()) else {
            return refuse(400);
        };
        let ours = self
            .subscribe
            .from()
            .ok()
            .and_then(|f| f.tag().map(str::to_owned));
        let same_call = self.subscribe.call_id().ok() == Some(call_id);
        if !same_call || to.tag().map(str::to_owned) != ours || self.phase == Phase::Ended {
            return refuse(481);
        }
        if let Some(d) = &self.dialog {
            if from.tag() != Some(d.remote_tag.as_str()) {
                return refuse(481);
            }
        }
        match notify.event() {
            Ok(Some(e)) if e.package().eq_ignore_ascii_case(&self.event) => {
                if e.id() != self.id.as_deref() {
                    return refuse(481);
                }
            }
            Ok(Some(_)) => return refuse(489),
            _ => return refuse(400),
        }
        let Ok(Some(ss)) = notify.subscription_state() else {
            return refuse(400);
        };
        match &mut self.dialog {
            Some(d) => {
                if d.receive(notify).is_err() {
                    return refuse(500);
                }
            }
            None => match Dialog::from_notify(&self.subscribe, notify) {
                Ok(d) => self.dialog = Some(d),
                Err(_) => return refuse(400),
            },
        }
        let until = |secs: Option<u32>, granted: Duration| {
            now + secs.map_or(granted, |s| Duration::from_secs(u64::from(s)))
        };
        let state = match ss.state.to_ascii_lowercase().as_str() {
            "active" => SubState::Active {
                until: until(ss.expires, self.granted),
            },
            "pending" => SubState::Pending {
                until: until(ss.expires, self.granted),
            },
            _ => SubState::Terminated {
                reason: ss.reason.map(str::to_ascii_lowercase),
                retry_after: ss.retry_after,
            },
        };
        self.timer_n = None;
        match &state {
            SubState::Active { until } | SubState::Pending { until } => {
                self.phase = Phase::Established;
                self.expires = Some(*until);
                if let Some(s) = ss.expires {
                    self.granted = Duration::from_secs(u64::from(s));
                }
            }
            SubState::Terminated { .. } => self.end(now),
        }
        self.state = Some(state.clone());
        Notified {
            status: 200,
            state: Some(state),
        }
    }

    /// When to send a refreshing SUBSCRIBE: at half of the granted
    /// duration before expiry, at most 600 s before (the rule the
    /// registration uses for REGISTER).
    pub fn refresh_at(&self) -> Option<Duration> {
        let expires = self.expires?;
        let before = (self.granted / 2).min(Duration::from_secs(600));
        Some(expires.saturating_sub(before))
    }

    /// The refreshing (or, with `expires` 0, ending) SUBSCRIBE in the
    /// dialog, sent at `now`: Timer N restarts. The caller adds Via,
    /// Max-Forwards and Contact. `None` before the dialog exists.
    pub fn refresh(&mut self, expires: u32, now: Duration) -> Option<Builder> {
        let event = match &self.id {
            Some(id) => format!("{};id={id}", self.event),
            None => self.event.clone(),
        };
        let b = self
            .dialog
            .as_mut()?
            .request(Method::Subscribe)
            .header("Event", event)
            .header("Expires", expires);
        self.timer_n = Some(now + self.t1.saturating_mul(64));
        Some(b)
    }

    /// When [`Subscription::handle_timeout`] must run: Timer N or the
    /// expiry.
    pub fn poll_timeout(&self) -> Option<Duration> {
        [self.timer_n, self.expires].into_iter().flatten().min()
    }

    /// Timer N without a NOTIFY, or the expiry without a refresh, ends the
    /// subscription.
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.timer_n.is_some_and(|n| n <= now) || self.expires.is_some_and(|e| e <= now) {
            self.end(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn subscribe() -> Message<'static> {
        Message::parse(
            b"SUBSCRIBE sip:alice@ims.example.org SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKs1\r\n\
Max-Forwards: 70\r\n\
Route: <sip:pcscf.example.org:5064;lr>\r\n\
From: <sip:alice@ims.example.org>;tag=ue1\r\n\
To: <sip:alice@ims.example.org>\r\n\
Call-ID: sub1\r\nCSeq: 5 SUBSCRIBE\r\n\
Event: reg\r\nExpires: 600000\r\n\
Contact: <sip:192.0.2.1:5062>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
        .into_owned()
    }

    fn ok(sub: &Message<'_>, expires: u32) -> Message<'static> {
        Builder::response_to(sub, 200, None)
            .to_tag("scscf9")
            .header("Record-Route", "<sip:scscf.example.org;lr>")
            .header("Record-Route", "<sip:pcscf.example.org:5064;lr>")
            .header("Contact", "<sip:scscf.example.org>")
            .header("Expires", expires)
            .build()
            .unwrap()
    }

    fn notify(state: &str, cseq: u32) -> Message<'static> {
        let text = format!(
            "NOTIFY sip:192.0.2.1:5062 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5064;branch=z9hG4bKn{cseq}\r\n\
Max-Forwards: 69\r\n\
Record-Route: <sip:pcscf.example.org:5064;lr>\r\n\
From: <sip:alice@ims.example.org>;tag=scscf9\r\n\
To: <sip:alice@ims.example.org>;tag=ue1\r\n\
Call-ID: sub1\r\nCSeq: {cseq} NOTIFY\r\n\
Event: reg\r\nSubscription-State: {state}\r\n\
Contact: <sip:scscf.example.org>\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).unwrap().into_owned()
    }

    #[test]
    fn a_2xx_makes_the_dialog_and_requests_follow_its_route_set() {
        let sub = subscribe();
        let mut s = Subscription::new(&sub, S(0), Duration::from_millis(500)).unwrap();
        assert_eq!(s.poll_timeout(), Some(S(32)));
        s.on_response(&ok(&sub, 600000), S(1)).unwrap();
        let d = s.dialog().unwrap().clone();
        assert_eq!(
            (d.local_tag.as_str(), d.remote_tag.as_str()),
            ("ue1", "scscf9")
        );
        assert_eq!(d.remote_target, "sip:scscf.example.org");
        assert_eq!(
            d.route_set,
            [
                "<sip:pcscf.example.org:5064;lr>",
                "<sip:scscf.example.org;lr>"
            ]
        );
        // Timer N still runs until the NOTIFY.
        assert_eq!(s.phase(), &Phase::Waiting);
        let n = s.on_notify(&notify("active;expires=600000", 1), S(2));
        assert_eq!(n.status, 200);
        assert_eq!(n.state, Some(SubState::Active { until: S(600_002) }));
        assert_eq!(s.phase(), &Phase::Established);
        // Refresh at expiry - 600 s, in the dialog, CSeq 6.
        assert_eq!(s.refresh_at(), Some(S(599_402)));
        let r = s
            .refresh(600000, S(599_402))
            .unwrap()
            .header("Via", "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKs2")
            .header("Max-Forwards", 70)
            .build()
            .unwrap();
        assert_eq!(
            r.request_uri().unwrap().to_string(),
            "sip:scscf.example.org"
        );
        assert_eq!(r.routes().unwrap().len(), 2);
        assert_eq!(r.cseq().unwrap().seq, 6);
        assert_eq!(r.to().unwrap().tag(), Some("scscf9"));
        assert_eq!(r.event().unwrap().unwrap().package(), "reg");
    }

    #[test]
    fn a_notify_before_the_2xx_makes_the_dialog() {
        let sub = subscribe();
        let mut s = Subscription::new(&sub, S(0), Duration::from_millis(500)).unwrap();
        let n = s.on_notify(&notify("pending", 1), S(1));
        assert_eq!(n.status, 200);
        let d = s.dialog().unwrap();
        assert_eq!(d.remote_tag, "scscf9");
        assert_eq!(d.route_set, ["<sip:pcscf.example.org:5064;lr>"]);
        assert_eq!(d.local_seq, 5);
        // The late 2xx does not replace it.
        s.on_response(&ok(&sub, 3600), S(2)).unwrap();
        assert_eq!(s.dialog().unwrap().route_set.len(), 1);
        assert_eq!(s.refresh_at(), Some(S(2 + 3600 - 600)));
    }

    #[test]
    fn notifies_that_do_not_belong_are_refused() {
        let sub = subscribe();
        let mut s = Subscription::new(&sub, S(0), Duration::from_millis(500)).unwrap();
        s.on_response(&ok(&sub, 3600), S(1)).unwrap();
        let other_tag = String::from_utf8(notify("active", 1).to_bytes())
            .unwrap()
            .replace("tag=scscf9", "tag=other");
        assert_eq!(
            s.on_notify(&Message::parse(other_tag.as_bytes()).unwrap(), S(1))
                .status,
            481
        );
        let presence = String::from_utf8(notify("active", 1).to_bytes())
            .unwrap()
            .replace("Event: reg", "Event: presence");
        assert_eq!(
            s.on_notify(&Message::parse(presence.as_bytes()).unwrap(), S(1))
                .status,
            489
        );
        let no_state = String::from_utf8(notify("active", 1).to_bytes())
            .unwrap()
            .replace("Subscription-State: active\r\n", "");
        assert_eq!(
            s.on_notify(&Message::parse(no_state.as_bytes()).unwrap(), S(1))
                .status,
            400
        );
        assert_eq!(s.on_notify(&notify("active", 4), S(2)).status, 200);
        // CSeq going backwards in the dialog.
        assert_eq!(s.on_notify(&notify("active", 3), S(3)).status, 500);
    }

    #[test]
    fn terminated_ends_it_and_says_whether_to_resubscribe() {
        let sub = subscribe();
        let mut s = Subscription::new(&sub, S(0), Duration::from_millis(500)).unwrap();
        let n = s.on_notify(&notify("terminated;reason=rejected", 1), S(1));
        assert_eq!(n.status, 200);
        let state = n.state.unwrap();
        assert!(!state.may_resubscribe());
        assert_eq!(s.phase(), &Phase::Ended);
        assert_eq!(s.on_notify(&notify("active", 2), S(2)).status, 481);
        assert!(
            SubState::Terminated {
                reason: Some("deactivated".into()),
                retry_after: None
            }
            .may_resubscribe()
        );
    }

    #[test]
    fn timer_n_and_errors_end_it() {
        let sub = subscribe();
        let mut s = Subscription::new(&sub, S(0), Duration::from_millis(500)).unwrap();
        s.handle_timeout(S(31));
        assert_eq!(s.phase(), &Phase::Waiting);
        s.handle_timeout(S(32));
        assert_eq!(s.phase(), &Phase::Ended);
        // An error to the initial SUBSCRIBE ends it.
        let mut s = Subscription::new(&sub, S(0), Duration::from_millis(500)).unwrap();
        let busy = Builder::response_to(&sub, 503, None)
            .to_tag("x")
            .build()
            .unwrap();
        s.on_response(&busy, S(1)).unwrap();
        assert_eq!(s.phase(), &Phase::Ended);
        // To a refresh, 503 keeps it, 481 ends it.
        let mut s = Subscription::new(&sub, S(0), Duration::from_millis(500)).unwrap();
        s.on_response(&ok(&sub, 3600), S(1)).unwrap();
        s.on_notify(&notify("active", 1), S(1));
        let refresh = s.refresh(3600, S(10)).unwrap();
        let refresh = refresh
            .header("Via", "SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bKr")
            .build()
            .unwrap();
        let e = Builder::response_to(&refresh, 503, None).build().unwrap();
        s.on_response(&e, S(11)).unwrap();
        assert_eq!(s.phase(), &Phase::Established);
        let gone = Builder::response_to(&refresh, 481, None).build().unwrap();
        s.on_response(&gone, S(12)).unwrap();
        assert_eq!(s.phase(), &Phase::Ended);
    }

    #[test]
    fn a_strict_router_gets_the_request_uri() {
        let mut d = Dialog {
            call_id: "c".into(),
            local_tag: "a".into(),
            remote_tag: "b".into(),
            local_uri: "sip:a@example.org".into(),
            remote_uri: "sip:b@example.org".into(),
            local_seq: 1,
            remote_seq: None,
            remote_target: "sip:b@192.0.2.2".into(),
            route_set: vec![
                "<sip:strict.example.org>".into(),
                "<sip:p2.example.org;lr>".into(),
            ],
        };
        let r = d
            .request(Method::Message)
            .header("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx")
            .build()
            .unwrap();
        assert_eq!(
            r.request_uri().unwrap().to_string(),
            "sip:strict.example.org"
        );
        let routes: Vec<String> = r.routes().unwrap().iter().map(|r| r.to_string()).collect();
        assert_eq!(routes, ["<sip:p2.example.org;lr>", "<sip:b@192.0.2.2>"]);
    }
}
