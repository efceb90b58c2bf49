//! The UE's side of presence, sans-IO: the PUBLISH of its own state
//! ([`Publisher`], RFC 3903 §4 through [`Publication`]) and its
//! subscriptions to other presentities ([`Watcher`], RFC 3856 and RFC 6665
//! §4.1 through [`Subscription`]).
//!
//! Both build whole requests: Via (the caller's `sent_by`, a fresh branch
//! from the caller's [`Random`]), Max-Forwards, the registration's
//! Service-Route as Route, From with our IMPU. The caller runs the client
//! transactions and hands the final responses back; the NOTIFYs it
//! receives go to [`Watcher::on_notify`], which says what to answer and
//! what the NOTIFY told.
//!
//! ```
//! use gm::presence::ue::{Origin, Watcher};
//! struct Counter(u8);
//! impl gm::reg::Random for Counter {
//!     fn fill(&mut self, b: &mut [u8]) { for x in b { self.0 += 1; *x = self.0; } }
//! }
//! let routes = vec!["<sip:orig@127.0.0.1:5060;lr>".to_owned()];
//! let me = Origin {
//!     impu: "sip:bob@ims.example.org",
//!     sent_by: "127.0.0.1:5070",
//!     contact: "sip:127.0.0.1:5072",
//!     routes: &routes,
//!     protocol: gm::txn::Protocol::Udp,
//! };
//! let mut w = Watcher::new(std::time::Duration::from_millis(500));
//! let s = w
//!     .subscribe(&me, "sip:alice@ims.example.org", 600, std::time::Duration::ZERO, &mut Counter(0))
//!     .unwrap();
//! assert_eq!(s.header("Event"), Some("presence"));
//! assert_eq!(s.header("Route"), Some("<sip:orig@127.0.0.1:5060;lr>"));
//! ```

use std::time::Duration;

use super::{Basic, PIDF_TYPE, Pidf, Publication, PublishRequest, Published, Tuple};
use crate::dialog::{DialogError, Phase, SubState, Subscription};
use crate::reg::{Random, token};
use crate::sip::{Builder, Error, Message, Method};

/// Where our requests come from.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// Our IMPU (From; the resource of our own publication).
    pub impu: &'a str,
    /// Via sent-by, `host:port` (our port-c over SAs).
    pub sent_by: &'a str,
    /// Our Contact URI (where NOTIFYs reach us: our port-s over SAs).
    pub contact: &'a str,
    /// The route set: the registration's Service-Route values, in order.
    pub routes: &'a [String],
    /// The transport, for the Via.
    pub protocol: crate::txn::Protocol,
}

impl Origin<'_> {
    /// Via, Max-Forwards and Route on `b`.
    fn finish(&self, mut b: Builder, rng: &mut dyn Random) -> Builder {
        b = b
            .header(
                "Via",
                format!(
                    "SIP/2.0/{} {};branch=z9hG4bK{};rport",
                    self.protocol.via_name(),
                    self.sent_by,
                    token(rng, 8)
                ),
            )
            .header("Max-Forwards", 70);
        for r in self.routes {
            b = b.header("Route", r);
        }
        b
    }
}

/// The PIDF a UE publishes about itself: one tuple, `basic`, our IMPU as
/// its contact, the note if any (RFC 3863 §4.1).
pub fn document(impu: &str, basic: Basic, note: Option<&str>) -> Pidf {
    let mut t = Tuple::new("ue", basic).with_contact(impu);
    if let Some(n) = note {
        t = t.with_note(n);
    }
    Pidf {
        entity: impu.to_owned(),
        tuples: vec![t],
        notes: Vec::new(),
    }
}

/// Our publication of our own presence (RFC 3903 §4): one Call-ID, the
/// CSeq counting up across its PUBLISHes.
#[derive(Clone, Debug)]
pub struct Publisher {
    resource: String,
    publication: Option<Publication>,
    call_id: String,
    from_tag: String,
    cseq: u32,
    expires: u32,
}

impl Publisher {
    /// No publication yet of `resource` (the presentity: our IMPU; a
    /// network lets nobody publish for another); PUBLISHes will ask for
    /// `expires` seconds.
    pub fn new(resource: &str, expires: u32, rng: &mut dyn Random) -> Publisher {
        Publisher {
            resource: resource.to_owned(),
            publication: None,
            call_id: token(rng, 12),
            from_tag: token(rng, 6),
            cseq: 0,
            expires,
        }
    }

    /// The entity-tag of our state at the ESC, after a 2xx.
    pub fn etag(&self) -> Option<&str> {
        self.publication.as_ref().and_then(Publication::etag)
    }

    /// The PUBLISH that sets our state to `doc`: the initial one, or a
    /// modification (`SIP-If-Match`) once the ESC holds our state.
    pub fn publish(
        &mut self,
        o: &Origin<'_>,
        doc: &Pidf,
        rng: &mut dyn Random,
    ) -> Result<Message<'static>, Error> {
        let body = doc.to_xml().into_bytes();
        let r = match self.publication.as_mut() {
            Some(p) => p.modify(PIDF_TYPE, body),
            None => {
                let mut p = Publication::new(PIDF_TYPE, body, self.expires);
                let r = p.initial();
                self.publication = Some(p);
                r
            }
        };
        self.request(o, &r, rng)
    }

    /// The PUBLISH that removes our state (`Expires: 0`); `None` when the
    /// ESC holds none of ours.
    pub fn remove(
        &mut self,
        o: &Origin<'_>,
        rng: &mut dyn Random,
    ) -> Option<Result<Message<'static>, Error>> {
        let r = self.publication.as_mut()?.remove()?;
        Some(self.request(o, &r, rng))
    }

    /// When our state must be refreshed.
    pub fn refresh_at(&self) -> Option<Duration> {
        self.publication.as_ref()?.refresh_at()
    }

    /// Forgets our publication if it expired at `now` (its refreshes
    /// went unanswered): the ESC holds none of ours any more. Whether it
    /// did.
    pub fn lapse(&mut self, now: Duration) -> bool {
        let lapsed = self.publication.as_ref().is_some_and(|p| p.expired(now));
        if lapsed {
            self.publication = None;
        }
        lapsed
    }

    /// The refreshing PUBLISH (no body, `SIP-If-Match`).
    pub fn refresh(
        &mut self,
        o: &Origin<'_>,
        rng: &mut dyn Random,
    ) -> Option<Result<Message<'static>, Error>> {
        let r = self.publication.as_mut()?.refresh()?;
        Some(self.request(o, &r, rng))
    }

    /// The final response to our last PUBLISH; a [`Published::Retry`]
    /// is sent again with [`Publisher::request`].
    pub fn on_response(&mut self, response: &Message<'_>, now: Duration) -> Published {
        match self.publication.as_mut() {
            Some(p) => {
                let out = p.on_response(response, now);
                if matches!(out, Published::Removed | Published::Failed(_)) && p.etag().is_none() {
                    self.publication = None;
                }
                out
            }
            None => Published::Failed(response.status().unwrap_or(0)),
        }
    }

    /// The resource published.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The PUBLISH `r` asks for: to the resource, from our IMPU, Event
    /// `presence`.
    pub fn request(
        &mut self,
        o: &Origin<'_>,
        r: &PublishRequest,
        rng: &mut dyn Random,
    ) -> Result<Message<'static>, Error> {
        self.cseq = self.cseq.wrapping_add(1);
        let mut b = o
            .finish(Message::request(Method::Publish, &self.resource), rng)
            .header("From", format!("<{}>;tag={}", o.impu, self.from_tag))
            .header("To", format!("<{}>", self.resource))
            .header("Call-ID", &self.call_id)
            .header("CSeq", format!("{} PUBLISH", self.cseq))
            .header("Event", "presence")
            .header("Expires", r.expires);
        if let Some(tag) = &r.if_match {
            b = b.header("SIP-If-Match", tag);
        }
        match &r.body {
            Some((ct, body)) => b.body(ct, body.clone()),
            None => b,
        }
        .build()
    }
}

/// What one NOTIFY told about a presentity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The resource subscribed to (the SUBSCRIBE's Request-URI).
    pub resource: String,
    /// The subscription's state.
    pub state: SubState,
    /// The PIDF document; `None` without a body or when it is not PIDF.
    pub document: Option<Pidf>,
}

/// The answer to a NOTIFY, and what it told when it was accepted.
#[derive(Debug)]
pub struct Answered {
    /// The response to send (200, or 481 / 489 / 400 / 500).
    pub response: Message<'static>,
    /// What it told (with a 200).
    pub seen: Option<Seen>,
}

/// What a response to one of our SUBSCRIBEs did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subscribed {
    /// A 2xx: the subscription to `resource` holds (or, for an
    /// unsubscribe, is ending).
    Accepted {
        /// The resource.
        resource: String,
    },
    /// Refused with `status`: the subscription to `resource` is over.
    Refused {
        /// The resource.
        resource: String,
        /// The status.
        status: u16,
    },
}

#[derive(Clone, Debug)]
struct Watched {
    resource: String,
    call_id: String,
    /// The duration asked for, again in each refresh.
    expires: u32,
    sub: Subscription,
    /// A refresh (or the unsubscribe) is out and unanswered.
    refreshing: bool,
    /// The unsubscribe is wanted (sent once a dialog exists).
    ending: bool,
    /// The unsubscribe went: the subscription is kept for the final
    /// NOTIFY until then (64·T1), whatever the 2xx's Expires says.
    ending_until: Option<Duration>,
}

/// Our subscriptions to presentities' `presence` (RFC 3856 §5: the
/// subscriber's side).
#[derive(Clone, Debug)]
pub struct Watcher {
    subs: Vec<Watched>,
    t1: Duration,
}

impl Watcher {
    /// No subscriptions; `t1` is the transaction layer's T1 (Timer N is
    /// 64·T1).
    pub fn new(t1: Duration) -> Watcher {
        Watcher {
            subs: Vec::new(),
            t1,
        }
    }

    /// Whether no subscription is left.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// The SUBSCRIBE to `uri`'s presence for `expires` seconds, sent at
    /// `now` (RFC 3856 §5: Event `presence`, Accept PIDF).
    pub fn subscribe(
        &mut self,
        o: &Origin<'_>,
        uri: &str,
        expires: u32,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Result<Message<'static>, DialogError> {
        let call_id = token(rng, 12);
        let b = o
            .finish(Message::request(Method::Subscribe, uri), rng)
            .header("From", format!("<{}>;tag={}", o.impu, token(rng, 6)))
            .header("To", format!("<{uri}>"))
            .header("Call-ID", &call_id)
            .header("CSeq", "1 SUBSCRIBE")
            .header("Event", "presence")
            .header("Expires", expires)
            .header("Accept", PIDF_TYPE)
            .header("Contact", format!("<{}>", o.contact));
        let request = b.build()?;
        let sub = Subscription::new(&request, now, self.t1)?;
        self.subs.push(Watched {
            resource: uri.to_owned(),
            call_id,
            expires,
            sub,
            refreshing: false,
            ending: false,
            ending_until: None,
        });
        Ok(request)
    }

    /// A final response to one of our SUBSCRIBEs; `None` when it is not
    /// one of ours.
    pub fn on_response(&mut self, response: &Message<'_>, now: Duration) -> Option<Subscribed> {
        let call_id = response.call_id().ok()?;
        let i = self.subs.iter().position(|w| w.call_id == call_id)?;
        let w = self.subs.get_mut(i)?;
        let status = response.status().unwrap_or(0);
        w.refreshing = false;
        let _ = w.sub.on_response(response, now);
        let resource = w.resource.clone();
        if *w.sub.phase() == Phase::Ended {
            self.subs.swap_remove(i);
        }
        Some(if (200..300).contains(&status) {
            Subscribed::Accepted { resource }
        } else {
            Subscribed::Refused { resource, status }
        })
    }

    /// A NOTIFY: `None` when it is not for the `presence` package (another
    /// part of the UE answers it); otherwise the response (481 when it
    /// belongs to none of our subscriptions, RFC 6665 §4.1.3) and what it
    /// told. A `terminated` NOTIFY ends the subscription.
    pub fn on_notify(&mut self, notify: &Message<'_>, now: Duration) -> Option<Answered> {
        if notify.method() != Some(Method::Notify) {
            return None;
        }
        match notify.event() {
            Ok(Some(e)) if e.package().eq_ignore_ascii_case("presence") => {}
            _ => return None,
        }
        let found = notify
            .call_id()
            .ok()
            .and_then(|c| self.subs.iter().position(|w| w.call_id == c));
        let (status, seen) = match found.and_then(|i| self.subs.get_mut(i).map(|w| (i, w))) {
            None => (481, None),
            Some((i, w)) => {
                let got = w.sub.on_notify(notify, now);
                let seen = got.state.map(|state| Seen {
                    resource: w.resource.clone(),
                    state,
                    document: std::str::from_utf8(notify.body())
                        .ok()
                        .filter(|b| !b.trim().is_empty())
                        .and_then(|b| Pidf::parse(b).ok()),
                });
                if *w.sub.phase() == Phase::Ended {
                    self.subs.swap_remove(i);
                }
                (got.status, seen)
            }
        };
        let response = Builder::response_to(notify, status, None).build().ok()?;
        Some(Answered { response, seen })
    }

    /// The SUBSCRIBEs with `Expires: 0` that end every subscription with a
    /// dialog (RFC 6665 §4.1.2.3); one still unanswered is ended when its
    /// 2xx comes ([`Watcher::handle_timeout`] sends it).
    pub fn unsubscribe_all(
        &mut self,
        o: &Origin<'_>,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Vec<Message<'static>> {
        for w in &mut self.subs {
            w.ending = true;
        }
        self.due(o, now, rng)
    }

    /// The unsubscribes wanted and not yet sent whose dialog exists.
    fn due(
        &mut self,
        o: &Origin<'_>,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Vec<Message<'static>> {
        let t1 = self.t1;
        let mut out = Vec::new();
        for w in &mut self.subs {
            if !w.ending || w.ending_until.is_some() || w.sub.dialog().is_none() {
                continue;
            }
            let Some(b) = w.sub.refresh(0, now) else {
                continue;
            };
            w.refreshing = true;
            w.ending_until = Some(now + t1.saturating_mul(64));
            if let Ok(m) = o
                .finish(b, rng)
                .header("Contact", format!("<{}>", o.contact))
                .build()
            {
                out.push(m);
            }
        }
        out
    }

    /// When [`Watcher::handle_timeout`] must run: a refresh, an
    /// unsubscribe that waited for a dialog, Timer N or an expiry.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.subs
            .iter()
            .flat_map(|w| match (w.ending, w.ending_until) {
                (true, Some(until)) => [Some(until), None],
                (true, None) => [w.sub.dialog().map(|_| Duration::ZERO), w.sub.poll_timeout()],
                (false, _) => [
                    w.sub.refresh_at().filter(|_| !w.refreshing),
                    w.sub.poll_timeout(),
                ],
            })
            .flatten()
            .min()
    }

    /// At `now`: ends the subscriptions whose Timer N or expiry passed
    /// (their resources are returned), and gives the refreshing or ending
    /// SUBSCRIBEs due.
    pub fn handle_timeout(
        &mut self,
        o: &Origin<'_>,
        now: Duration,
        rng: &mut dyn Random,
    ) -> (Vec<Message<'static>>, Vec<String>) {
        let mut ended = Vec::new();
        self.subs.retain_mut(|w| {
            let over = match w.ending_until {
                Some(until) => until <= now,
                None => {
                    w.sub.handle_timeout(now);
                    *w.sub.phase() == Phase::Ended
                }
            };
            if over {
                ended.push(w.resource.clone());
            }
            !over
        });
        let mut out = self.due(o, now, rng);
        for w in &mut self.subs {
            if w.ending || w.refreshing || w.sub.refresh_at().is_none_or(|t| t > now) {
                continue;
            }
            if let Some(b) = w.sub.refresh(w.expires, now) {
                w.refreshing = true;
                if let Ok(m) = o
                    .finish(b, rng)
                    .header("Contact", format!("<{}>", o.contact))
                    .build()
                {
                    out.push(m);
                }
            }
        }
        (out, ended)
    }
}

impl Pidf {
    /// The presentity's basic status as one word (RFC 3863 §4.1.4): open
    /// when any tuple is open; closed otherwise, and so for a document
    /// with no tuples, the state a PA gives when nothing is published (RFC
    /// 3856 §6.6.2: it is the current state; no contact is reachable).
    pub fn basic(&self) -> Basic {
        if self.tuples.iter().any(|t| t.basic == Some(Basic::Open)) {
            Basic::Open
        } else {
            Basic::Closed
        }
    }

    /// Every note's text: the presence-level ones, then each tuple's.
    pub fn note_texts(&self) -> Vec<&str> {
        self.notes
            .iter()
            .chain(self.tuples.iter().flat_map(|t| t.notes.iter()))
            .map(|n| n.text.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pager::Registry;
    use crate::presence::{Agent, Compositor, Notify};

    const S: fn(u64) -> Duration = Duration::from_secs;
    const ALICE: &str = "sip:alice@ims.example.org";
    const BOB: &str = "sip:bob@ims.example.org";

    struct Counter(u64);
    impl Random for Counter {
        fn fill(&mut self, b: &mut [u8]) {
            for x in b {
                self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
                *x = (self.0 >> 33) as u8;
            }
        }
    }

    fn origin<'a>(impu: &'a str, routes: &'a [String]) -> Origin<'a> {
        Origin {
            impu,
            sent_by: "192.0.2.1:5070",
            contact: "sip:192.0.2.1:5072",
            routes,
            protocol: crate::txn::Protocol::Udp,
        }
    }

    fn agent() -> Agent {
        Agent::new(
            Compositor::new(&[ALICE, BOB], 3600, 60, 7200),
            "sip:192.0.2.2:5068",
            60,
            3600,
            7200,
        )
    }

    fn wire(n: Notify) -> Message<'static> {
        let bytes = n
            .request
            .header("Via", "SIP/2.0/UDP 192.0.2.2:5068;branch=z9hG4bKn")
            .header("Max-Forwards", 70)
            .build()
            .unwrap()
            .to_bytes();
        Message::parse(&bytes).unwrap().into_owned()
    }

    #[test]
    fn bob_watches_alice_publish_and_remove() {
        let mut rng = Counter(1);
        let routes = vec!["<sip:orig@192.0.2.2:5060;lr>".to_owned()];
        let (a, b) = (origin(ALICE, &routes), origin(BOB, &routes));
        let mut pa = agent();
        let mut bob = Watcher::new(Duration::from_millis(500));
        let sub = bob.subscribe(&b, ALICE, 600, S(0), &mut rng).unwrap();
        assert_eq!(sub.header("Accept"), Some(PIDF_TYPE));
        let s = pa.on_subscribe(&sub, "pa1", S(0)).unwrap();
        assert_eq!(
            bob.on_response(&s.response, S(0)),
            Some(Subscribed::Accepted {
                resource: ALICE.into()
            })
        );
        assert_eq!(pa.watcher(s.watch.unwrap()), Some(BOB));
        assert_eq!(s.resource.as_deref(), Some(ALICE));
        let mut reg: Registry<&str> = Registry::new();
        let n = s.notify.as_ref().unwrap();
        assert_eq!(Agent::notify_target(&reg, n), None);
        reg.bind(&[BOB.into()], "bob-addr");
        assert_eq!(Agent::notify_target(&reg, n), Some(&"bob-addr"));
        // Nothing published: no tuples, which reads as closed.
        let got = bob.on_notify(&wire(s.notify.unwrap()), S(0)).unwrap();
        assert_eq!(got.response.status(), Some(200));
        let seen = got.seen.unwrap();
        assert_eq!(seen.resource, ALICE);
        assert_eq!(seen.state, SubState::Active { until: S(600) });
        let doc = seen.document.unwrap();
        assert!(doc.tuples.is_empty());
        assert_eq!(doc.basic(), Basic::Closed);

        let mut alice = Publisher::new(ALICE, 3600, &mut rng);
        let p = alice
            .publish(
                &a,
                &document(ALICE, Basic::Open, Some("at the demo")),
                &mut rng,
            )
            .unwrap();
        assert_eq!(p.header("Route"), Some(routes[0].as_str()));
        let (reply, notifies) = pa.on_publish(&p, S(1));
        let ok = reply.response(&p, "esc").unwrap();
        assert!(matches!(
            alice.on_response(&ok, S(1)),
            Published::Accepted { .. }
        ));
        assert_eq!(alice.etag(), reply.etag.as_deref());
        let n = wire(notifies.into_iter().next().unwrap());
        let doc = bob
            .on_notify(&n, S(1))
            .unwrap()
            .seen
            .unwrap()
            .document
            .unwrap();
        assert_eq!(doc.basic(), Basic::Open);
        assert_eq!(doc.note_texts(), ["at the demo"]);

        // A second publish modifies (SIP-If-Match).
        let p = alice
            .publish(&a, &document(ALICE, Basic::Closed, None), &mut rng)
            .unwrap();
        assert_eq!(p.sip_if_match().unwrap(), reply.etag.as_deref());
        let (reply, _) = pa.on_publish(&p, S(2));
        alice.on_response(&reply.response(&p, "esc").unwrap(), S(2));

        let r = alice.remove(&a, &mut rng).unwrap().unwrap();
        assert_eq!(r.expires().unwrap(), Some(0));
        let (reply, notifies) = pa.on_publish(&r, S(3));
        assert_eq!(
            alice.on_response(&reply.response(&r, "esc").unwrap(), S(3)),
            Published::Removed
        );
        assert!(alice.remove(&a, &mut rng).is_none());
        let n = wire(notifies.into_iter().next().unwrap());
        let doc = bob
            .on_notify(&n, S(3))
            .unwrap()
            .seen
            .unwrap()
            .document
            .unwrap();
        assert!(doc.tuples.is_empty());

        // Unsubscribe: 200, then the final NOTIFY ends it.
        let un = bob.unsubscribe_all(&b, S(4), &mut rng);
        assert_eq!(un.len(), 1);
        assert_eq!(un[0].expires().unwrap(), Some(0));
        assert!(bob.unsubscribe_all(&b, S(4), &mut rng).is_empty());
        let s = pa.on_subscribe(&un[0], "x", S(4)).unwrap();
        assert_eq!(s.resource.as_deref(), Some(ALICE));
        assert_eq!(s.notify.as_ref().unwrap().watcher, BOB);
        bob.on_response(&s.response, S(4));
        assert!(!bob.is_empty());
        let got = bob.on_notify(&wire(s.notify.unwrap()), S(4)).unwrap();
        assert!(matches!(
            got.seen.unwrap().state,
            SubState::Terminated { .. }
        ));
        assert!(bob.is_empty());
        assert!(pa.is_empty());
    }

    #[test]
    fn a_subscription_is_refreshed_before_it_expires() {
        let mut rng = Counter(4);
        let b = origin(BOB, &[]);
        let mut pa = agent();
        let mut bob = Watcher::new(Duration::from_millis(500));
        let sub = bob.subscribe(&b, ALICE, 600, S(0), &mut rng).unwrap();
        let s = pa.on_subscribe(&sub, "pa1", S(0)).unwrap();
        bob.on_response(&s.response, S(0));
        bob.on_notify(&wire(s.notify.unwrap()), S(0)).unwrap();
        // Half the granted 600 s before expiry.
        assert_eq!(bob.poll_timeout(), Some(S(300)));
        let (out, ended) = bob.handle_timeout(&b, S(300), &mut rng);
        assert!(ended.is_empty());
        let [refresh] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(refresh.expires().unwrap(), Some(600));
        assert_eq!(refresh.cseq().unwrap().seq, 2);
        // In the dialog: the agent refreshes and notifies.
        let s = pa.on_subscribe(refresh, "x", S(300)).unwrap();
        assert_eq!(s.response.status(), Some(200));
        bob.on_response(&s.response, S(300));
        let got = bob.on_notify(&wire(s.notify.unwrap()), S(300)).unwrap();
        assert_eq!(got.seen.unwrap().state, SubState::Active { until: S(900) });
        assert_eq!(bob.poll_timeout(), Some(S(600)));
        assert_eq!(pa.len(), 1);
    }

    #[test]
    fn stray_and_foreign_notifies() {
        let mut rng = Counter(2);
        let b = origin(BOB, &[]);
        let mut bob = Watcher::new(Duration::from_millis(500));
        let _ = bob.subscribe(&b, ALICE, 600, S(0), &mut rng).unwrap();
        let notify = |event: &str| {
            Message::request(Method::Notify, "sip:192.0.2.1:5072")
                .header("Via", "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKx")
                .header("From", "<sip:alice@ims.example.org>;tag=a")
                .header("To", "<sip:bob@ims.example.org>;tag=b")
                .header("Call-ID", "elsewhere")
                .header("CSeq", "1 NOTIFY")
                .header("Event", event)
                .header("Subscription-State", "active")
                .build()
                .unwrap()
        };
        // Another package is not ours to answer (the reg event's is).
        assert!(bob.on_notify(&notify("reg"), S(0)).is_none());
        let got = bob.on_notify(&notify("presence"), S(0)).unwrap();
        assert_eq!(got.response.status(), Some(481));
        assert!(got.seen.is_none());
        // Timer N without a NOTIFY ends the subscription.
        assert_eq!(bob.poll_timeout(), Some(S(32)));
        let (out, ended) = bob.handle_timeout(&b, S(32), &mut rng);
        assert!(out.is_empty());
        assert_eq!(ended, [ALICE]);
        assert!(bob.is_empty());
    }

    #[test]
    fn only_a_registered_ue_and_only_for_itself() {
        let pa = agent();
        let mut reg: Registry<&str> = Registry::new();
        reg.bind(&[ALICE.into()], "alice-addr");
        reg.bind(&[BOB.into()], "bob-addr");
        let mut rng = Counter(3);
        let a = origin(ALICE, &[]);
        let mut mine = Publisher::new(ALICE, 3600, &mut rng);
        let p = mine
            .publish(&a, &document(ALICE, Basic::Open, None), &mut rng)
            .unwrap();
        assert_eq!(pa.admit(&reg, &p, &"alice-addr"), Ok(()));
        // From where alice did not register.
        assert_eq!(pa.admit(&reg, &p, &"bob-addr"), Err(403));
        // For bob's IMPU.
        let mut theirs = Publisher::new(BOB, 3600, &mut rng);
        let p = theirs
            .publish(&a, &document(BOB, Basic::Open, None), &mut rng)
            .unwrap();
        assert_eq!(p.request_uri().unwrap().to_string(), BOB);
        assert_eq!(pa.admit(&reg, &p, &"alice-addr"), Err(403));
        // Subscribing to anyone served is fine; to no one served, 404.
        let mut w = Watcher::new(Duration::from_millis(500));
        let s = w.subscribe(&a, BOB, 600, S(0), &mut rng).unwrap();
        assert_eq!(pa.admit(&reg, &s, &"alice-addr"), Ok(()));
        let s = w
            .subscribe(&a, "sip:carol@ims.example.org", 600, S(0), &mut rng)
            .unwrap();
        assert_eq!(pa.admit(&reg, &s, &"alice-addr"), Err(404));
    }

    #[test]
    fn a_document_of_our_own() {
        let d = document(ALICE, Basic::Open, Some("a < b & c"));
        assert_eq!(Pidf::parse(&d.to_xml()).unwrap(), d);
        assert_eq!(d.tuples[0].contact.as_ref().unwrap().uri, ALICE);
        assert_eq!(d.basic(), Basic::Open);
        let d = document(ALICE, Basic::Closed, None);
        assert_eq!(d.basic(), Basic::Closed);
        assert!(d.note_texts().is_empty());
    }
}
