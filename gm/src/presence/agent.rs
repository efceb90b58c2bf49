//! The presence agent: the notifier's side of RFC 6665 (§4.2) for the
//! `presence` package (RFC 3856), on top of the [`Compositor`].
//!
//! [`Agent::on_subscribe`] answers a SUBSCRIBE (200 with the granted
//! Expires, 489 for another package, 423 below the minimum) and returns
//! the NOTIFY that must follow at once with the resource's composed state
//! (RFC 6665 §4.2.1.1); a refresh is answered and notified likewise, and
//! `Expires: 0` ends the subscription with a final NOTIFY
//! (`terminated;reason=timeout`). [`Agent::on_publish`] runs the ESC and
//! notifies every watcher of the resource whose state changed.
//! [`Agent::handle_timeout`] ends expired subscriptions with a final
//! NOTIFY. The NOTIFYs come as [`Notify`]: a [`Builder`] with the
//! dialog's Request-URI, Route, From, To, Call-ID and CSeq, Event,
//! Subscription-State, Contact and the PIDF body; the caller adds Via and
//! Max-Forwards and runs the client transaction.
//!
//! The watcher is not authorised here (every subscription is accepted as
//! `active`): authorisation policy is the caller's, before it calls
//! [`Agent::on_subscribe`].

use std::collections::HashMap;
use std::time::Duration;

use super::{Compositor, EscReply, PIDF_TYPE, Pidf, resource_key};
use crate::dialog::Dialog;
use crate::sip::{Builder, Error as SipError, Message, Method};

/// One subscription the agent serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchId(u64);

/// A NOTIFY to send.
#[derive(Debug)]
pub struct Notify {
    /// The subscription.
    pub watch: WatchId,
    /// The watcher's URI (its SUBSCRIBE's From): whose flow the NOTIFY
    /// takes ([`Agent::notify_target`]).
    pub watcher: String,
    /// The resource watched, as the initial SUBSCRIBE named it.
    pub resource: String,
    /// The NOTIFY without Via and Max-Forwards.
    pub request: Builder,
    /// Whether it ends the subscription.
    pub terminated: bool,
}

#[derive(Clone, Debug)]
struct Watch {
    dialog: Dialog,
    resource: String,
    entity: String,
    until: Duration,
    /// The last document notified, to notify only changes.
    last: Option<String>,
}

/// The presence agent of one server.
#[derive(Debug)]
pub struct Agent {
    compositor: Compositor,
    contact: String,
    min_expires: u32,
    max_expires: u32,
    default_expires: u32,
    watches: HashMap<WatchId, Watch>,
    next: u64,
}

/// The answer to a SUBSCRIBE and what follows it.
#[derive(Debug)]
pub struct Subscribed {
    /// The response (200, 423, 481, 489, 400).
    pub response: Message<'static>,
    /// The subscription, when one exists after it.
    pub watch: Option<WatchId>,
    /// The resource watched (as the initial SUBSCRIBE named it), when the
    /// SUBSCRIBE was for a subscription (new, refreshed or ended).
    pub resource: Option<String>,
    /// The NOTIFY to send after the 200.
    pub notify: Option<Notify>,
}

impl Agent {
    /// An agent over `compositor`, whose dialogs name `contact` (our
    /// Contact URI) as remote target, granting between `min_expires` and
    /// `max_expires` seconds (`default_expires` when the SUBSCRIBE has no
    /// Expires; RFC 3856 §6.4 suggests 3600).
    pub fn new(
        compositor: Compositor,
        contact: &str,
        min_expires: u32,
        default_expires: u32,
        max_expires: u32,
    ) -> Agent {
        Agent {
            compositor,
            contact: contact.to_owned(),
            min_expires,
            max_expires,
            default_expires,
            watches: HashMap::new(),
            next: 1,
        }
    }

    /// The compositor (published state).
    pub fn compositor(&mut self) -> &mut Compositor {
        &mut self.compositor
    }

    /// The watcher of a subscription: its URI (the SUBSCRIBE's From),
    /// where the caller finds the flow its NOTIFYs take (a P-CSCF: the
    /// watcher's registration).
    pub fn watcher(&self, id: WatchId) -> Option<&str> {
        self.watches.get(&id).map(|w| w.dialog.remote_uri.as_str())
    }

    /// The resource a subscription watches, as the SUBSCRIBE named it.
    pub fn resource(&self, id: WatchId) -> Option<&str> {
        self.watches.get(&id).map(|w| w.entity.as_str())
    }

    /// A NOTIFY of subscription `id` got a final `status` (or none: 408
    /// for a timeout). A 481 or a timeout ends the subscription, quietly
    /// (RFC 6665 §4.2.2: the subscriber is gone); whether it ended is
    /// returned.
    pub fn on_notify_response(&mut self, id: WatchId, status: u16) -> bool {
        let over = matches!(status, 408 | 481);
        if over {
            self.watches.remove(&id);
        }
        over
    }

    /// Whether `request` (a SUBSCRIBE or PUBLISH for `presence`) may be
    /// served for the UE at `from`: its sender (From) must be registered
    /// from `from` (TS 24.229 §5.2.6.3: the P-CSCF knows a UE by its
    /// flow), else 403; a PUBLISH must be for one of the sender's own
    /// identities, else 403 (nobody publishes for someone else); the
    /// resource must be one the compositor serves, else 404. A request in
    /// a dialog (a refresh) is not checked for the resource.
    pub fn admit<A: Clone + PartialEq>(
        &self,
        registry: &crate::pager::Registry<A>,
        request: &Message<'_>,
        from: &A,
    ) -> Result<(), u16> {
        let (Ok(sender), Some(target)) = (request.from(), request.request_uri()) else {
            return Err(400);
        };
        if registry.lookup(sender.uri.as_str()) != Some(from) {
            return Err(403);
        }
        let target = target.to_string();
        if request.method() == Some(Method::Publish) && registry.lookup(&target) != Some(from) {
            return Err(403);
        }
        let in_dialog = request.to().ok().is_some_and(|t| t.tag().is_some());
        if !in_dialog && !self.compositor.serves(&target) {
            return Err(404);
        }
        Ok(())
    }

    /// Where a NOTIFY goes: the request target of its watcher's
    /// registration ([`crate::pager::Registry::target`]: the UE's port-s
    /// over SAs), never to a Contact that no registration vouches for. `None` when the watcher
    /// is not registered (any more): the NOTIFY is not sent and the
    /// caller ends the subscription ([`Agent::on_notify_response`], 408).
    pub fn notify_target<'r, A: Clone + PartialEq>(
        registry: &'r crate::pager::Registry<A>,
        notify: &Notify,
    ) -> Option<&'r A> {
        registry.target(&notify.watcher)
    }

    /// How many subscriptions are alive.
    pub fn len(&self) -> usize {
        self.watches.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    fn response(request: &Message<'_>, status: u16, local_tag: &str) -> Builder {
        Builder::response_to(request, status, None).to_tag(local_tag)
    }

    fn document(&mut self, resource: &str, entity: &str, now: Duration) -> String {
        self.compositor
            .composed(resource, now)
            .unwrap_or_else(|| Pidf {
                // RFC 3856 §6.6.2's neutral state: no tuples.
                entity: entity.to_owned(),
                tuples: Vec::new(),
                notes: Vec::new(),
            })
            .to_xml()
    }

    fn notify(&mut self, id: WatchId, now: Duration, end: Option<&str>) -> Option<Notify> {
        let (resource, entity, until) = {
            let w = self.watches.get(&id)?;
            (w.resource.clone(), w.entity.clone(), w.until)
        };
        let body = self.document(&resource, &entity, now);
        let contact = format!("<{}>", self.contact);
        let w = self.watches.get_mut(&id)?;
        let state = match end {
            Some(reason) => format!("terminated;reason={reason}"),
            None => format!(
                "active;expires={}",
                crate::secs_left(until.saturating_sub(now))
            ),
        };
        w.last = Some(body.clone());
        let request = w
            .dialog
            .request(Method::Notify)
            .header("Event", "presence")
            .header("Subscription-State", state)
            .header("Contact", contact)
            .body(PIDF_TYPE, body);
        Some(Notify {
            watch: id,
            watcher: w.dialog.remote_uri.clone(),
            resource: entity,
            request,
            terminated: end.is_some(),
        })
    }

    /// A SUBSCRIBE arrived (authorised by the caller); `local_tag` is the
    /// To tag to give a new dialog.
    /// Fails only when the response cannot be built from the request's
    /// rows (a request that did not pass the codec's checks).
    pub fn on_subscribe(
        &mut self,
        request: &Message<'_>,
        local_tag: &str,
        now: Duration,
    ) -> Result<Subscribed, SipError> {
        let refuse = |status: u16, extra: Option<(&str, String)>| {
            let mut b = Self::response(request, status, local_tag);
            if let Some((n, v)) = extra {
                b = b.header(n, v);
            }
            b.build().map(|response| Subscribed {
                response,
                watch: None,
                resource: None,
                notify: None,
            })
        };
        match request.event() {
            Ok(Some(e)) if e.package().eq_ignore_ascii_case("presence") => {}
            Ok(_) => return refuse(489, Some(("Allow-Events", "presence".to_owned()))),
            Err(_) => return refuse(400, None),
        }
        let requested = match request.expires() {
            Ok(e) => e.unwrap_or(self.default_expires),
            Err(_) => return refuse(400, None),
        };
        if requested > 0 && requested < self.min_expires {
            return refuse(423, Some(("Min-Expires", self.min_expires.to_string())));
        }
        let granted = requested.min(self.max_expires);
        let in_dialog = request.to().ok().and_then(|t| t.tag().map(str::to_owned));
        let id = match in_dialog {
            Some(_) => {
                let found = self
                    .watches
                    .iter_mut()
                    .find(|(_, w)| w.dialog.matches(request))
                    .map(|(id, w)| (*id, w.dialog.receive(request).is_ok()));
                match found {
                    Some((id, true)) => id,
                    Some((_, false)) => return refuse(500, None),
                    None => return refuse(481, None),
                }
            }
            None => {
                let Ok(dialog) = Dialog::uas(request, local_tag) else {
                    return refuse(400, None);
                };
                let Some(uri) = request.request_uri() else {
                    return refuse(400, None);
                };
                let entity = uri.to_string();
                let id = WatchId(self.next);
                self.next += 1;
                self.watches.insert(
                    id,
                    Watch {
                        dialog,
                        resource: resource_key(&entity),
                        entity,
                        until: now,
                        last: None,
                    },
                );
                id
            }
        };
        let (tag, resource) = self
            .watches
            .get(&id)
            .map(|w| (w.dialog.local_tag.clone(), w.entity.clone()))
            .unwrap_or_default();
        let response = Self::response(request, 200, &tag)
            .header("Expires", granted)
            .header("Contact", format!("<{}>", self.contact))
            .build();
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                self.watches.remove(&id);
                return Err(e);
            }
        };
        let notify = if granted == 0 {
            let n = self.notify(id, now, Some("timeout"));
            self.watches.remove(&id);
            n
        } else {
            if let Some(w) = self.watches.get_mut(&id) {
                w.until = now + Duration::from_secs(u64::from(granted));
            }
            self.notify(id, now, None)
        };
        Ok(Subscribed {
            response,
            watch: (granted > 0).then_some(id),
            resource: Some(resource),
            notify,
        })
    }

    /// A PUBLISH arrived: the ESC's reply, and a NOTIFY for every watcher
    /// of the resource whose document changed.
    pub fn on_publish(&mut self, request: &Message<'_>, now: Duration) -> (EscReply, Vec<Notify>) {
        let reply = self.compositor.publish(request, now);
        let mut out = Vec::new();
        if reply.status == 200 {
            let resource = request
                .request_uri()
                .map(|u| resource_key(&u.to_string()))
                .unwrap_or_default();
            out = self.changed(Some(&resource), now);
        }
        (reply, out)
    }

    fn changed(&mut self, resource: Option<&str>, now: Duration) -> Vec<Notify> {
        let mut ids: Vec<WatchId> = self
            .watches
            .iter()
            .filter(|(_, w)| resource.is_none_or(|r| w.resource == r))
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            let Some((res, entity, last)) = self
                .watches
                .get(&id)
                .map(|w| (w.resource.clone(), w.entity.clone(), w.last.clone()))
            else {
                continue;
            };
            if Some(self.document(&res, &entity, now)) != last {
                out.extend(self.notify(id, now, None));
            }
        }
        out
    }

    /// When [`Agent::handle_timeout`] must run: the next subscription to
    /// expire.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.watches.values().map(|w| w.until).min()
    }

    /// Ends the subscriptions expired at `now` (final NOTIFY,
    /// `reason=timeout`), and notifies watchers whose resource's state
    /// changed because a publication expired.
    pub fn handle_timeout(&mut self, now: Duration) -> Vec<Notify> {
        let mut expired: Vec<WatchId> = self
            .watches
            .iter()
            .filter(|(_, w)| w.until <= now)
            .map(|(id, _)| *id)
            .collect();
        expired.sort();
        let mut out = Vec::new();
        for id in expired {
            out.extend(self.notify(id, now, Some("timeout")));
            self.watches.remove(&id);
        }
        out.extend(self.changed(None, now));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::{Phase, SubState, Subscription};
    use crate::presence::{Basic, Tuple};

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn subscribe(expires: u32) -> Message<'static> {
        Message::parse(
            format!(
                "SUBSCRIBE sip:alice@ims.example.org SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.3:5062;branch=z9hG4bKw1\r\n\
Max-Forwards: 70\r\n\
From: <sip:bob@ims.example.org>;tag=bob1\r\n\
To: <sip:alice@ims.example.org>\r\n\
Call-ID: watch1\r\nCSeq: 1 SUBSCRIBE\r\n\
Event: presence\r\nExpires: {expires}\r\nAccept: application/pidf+xml\r\n\
Contact: <sip:bob@192.0.2.3:5062>\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
        .into_owned()
    }

    fn publish(basic: Basic) -> Message<'static> {
        let doc = Pidf {
            entity: "sip:alice@ims.example.org".into(),
            tuples: vec![Tuple::new("ue", basic)],
            notes: vec![],
        };
        Message::request(Method::Publish, "sip:alice@ims.example.org")
            .header("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKp")
            .header("From", "<sip:alice@ims.example.org>;tag=a")
            .header("To", "<sip:alice@ims.example.org>")
            .header("Call-ID", "p")
            .header("CSeq", "1 PUBLISH")
            .header("Event", "presence")
            .header("Expires", 3600)
            .body(PIDF_TYPE, doc.to_xml())
            .build()
            .unwrap()
    }

    fn agent() -> Agent {
        Agent::new(
            Compositor::new(&["sip:alice@ims.example.org"], 3600, 60, 7200),
            "sip:pa@192.0.2.2:5060",
            60,
            3600,
            7200,
        )
    }

    fn wire(n: Notify, branch: &str) -> Message<'static> {
        let bytes = n
            .request
            .header("Via", format!("SIP/2.0/UDP 192.0.2.2;branch={branch}"))
            .header("Max-Forwards", 70)
            .build()
            .unwrap()
            .to_bytes();
        Message::parse(&bytes).unwrap().into_owned()
    }

    #[test]
    fn a_watcher_sees_publications_until_it_unsubscribes() {
        let mut pa = agent();
        let sub = subscribe(600);
        let mut watcher = Subscription::new(&sub, S(0), Duration::from_millis(500)).unwrap();
        let s = pa.on_subscribe(&sub, "pa1", S(0)).unwrap();
        assert_eq!(s.response.status(), Some(200));
        assert_eq!(s.response.expires().unwrap(), Some(600));
        watcher.on_response(&s.response, S(0)).unwrap();
        // The first NOTIFY: the neutral state (no publication yet).
        let n = wire(s.notify.unwrap(), "z9hG4bKn1");
        let got = watcher.on_notify(&n, S(0));
        assert_eq!(got.status, 200);
        assert_eq!(got.state, Some(SubState::Active { until: S(600) }));
        assert_eq!(
            Pidf::parse(std::str::from_utf8(n.body()).unwrap())
                .unwrap()
                .tuples,
            []
        );
        // Alice publishes: bob is notified with her tuple.
        let (reply, notifies) = pa.on_publish(&publish(Basic::Open), S(10));
        assert_eq!(reply.status, 200);
        assert_eq!(notifies.len(), 1);
        let n = wire(notifies.into_iter().next().unwrap(), "z9hG4bKn2");
        assert_eq!(watcher.on_notify(&n, S(10)).status, 200);
        let doc = Pidf::parse(std::str::from_utf8(n.body()).unwrap()).unwrap();
        assert_eq!(doc.tuples[0].basic, Some(Basic::Open));
        // The same state again: no NOTIFY.
        let (_, notifies) = pa.on_publish(&publish(Basic::Open), S(11));
        assert!(notifies.is_empty());
        // Bob unsubscribes in the dialog: 200 and a final NOTIFY.
        let unsub = watcher
            .refresh(0, S(20))
            .unwrap()
            .header("Via", "SIP/2.0/UDP 192.0.2.3:5062;branch=z9hG4bKw2")
            .header("Max-Forwards", 70)
            .build()
            .unwrap();
        let s = pa.on_subscribe(&unsub, "ignored", S(20)).unwrap();
        assert_eq!(s.response.status(), Some(200));
        let n = wire(s.notify.unwrap(), "z9hG4bKn3");
        let got = watcher.on_notify(&n, S(20));
        assert_eq!(
            got.state,
            Some(SubState::Terminated {
                reason: Some("timeout".into()),
                retry_after: None
            })
        );
        assert_eq!(watcher.phase(), &Phase::Ended);
        assert!(pa.is_empty());
    }

    #[test]
    fn refusals_and_expiry() {
        let mut pa = agent();
        let mut other = subscribe(600);
        other.set_header("Event", "dialog").unwrap();
        assert_eq!(
            pa.on_subscribe(&other, "t", S(0))
                .unwrap()
                .response
                .status(),
            Some(489)
        );
        let brief = pa.on_subscribe(&subscribe(10), "t", S(0)).unwrap();
        assert_eq!(brief.response.status(), Some(423));
        assert_eq!(brief.response.min_expires().unwrap(), Some(60));
        let mut stray = subscribe(600);
        stray
            .set_header("To", "<sip:alice@ims.example.org>;tag=nope")
            .unwrap();
        assert_eq!(
            pa.on_subscribe(&stray, "t", S(0))
                .unwrap()
                .response
                .status(),
            Some(481)
        );
        // Expiry ends the subscription with a final NOTIFY.
        let s = pa.on_subscribe(&subscribe(60), "t", S(0)).unwrap();
        assert!(s.watch.is_some());
        assert_eq!(pa.poll_timeout(), Some(S(60)));
        assert!(pa.handle_timeout(S(59)).is_empty());
        let out = pa.handle_timeout(S(60));
        assert_eq!(out.len(), 1);
        assert!(out[0].terminated);
        assert!(pa.is_empty());
    }
}
