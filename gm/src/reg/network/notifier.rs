//! The network side of the reg event package (RFC 3680, RFC 6665 §4.2,
//! TS 24.229 §5.4.2.1 as commonly implemented): the registrar accepts a
//! UE's subscription to its own registration, NOTIFYs the full state
//! first and a partial document on every change of the binding, and can
//! end a registration itself (network-initiated de-registration).

use std::cmp::Reverse;
use std::net::IpAddr;
use std::time::Duration;

use super::{Ending, Network, NetworkAction};
use crate::dialog::Dialog;
use crate::reg::sa::SaSet;
use crate::reg::{Flow, Random, hostport, token};
use crate::regevent::{
    ContactEvent, ContactState, REGINFO_TYPE, RegContact, RegState, Reginfo, Registration,
};
use crate::sip::{Builder, Message, Method};

/// The default subscription duration of the reg event (RFC 3680 §6:
/// 3761 s).
const DEFAULT_EXPIRES: u32 = 3761;

/// One UE's subscription to its registration.
pub(super) struct RegSub {
    impi: String,
    dialog: Dialog,
    pub(super) expires_at: Duration,
    /// The `version` of the next document (RFC 3680 §5.1: 0 first).
    version: u32,
    /// The flow our NOTIFYs take.
    flow: Flow,
    /// Our address and port in Via and Contact.
    local: (IpAddr, u16),
    /// Unique per subscription; the NOTIFY's CSeq makes the branch
    /// unique per transaction.
    branch: String,
}

/// SAs waiting for the NOTIFYs (Call-ID, CSeq) that announce their
/// binding's end.
pub(super) struct Draining {
    notifies: Vec<(String, u32)>,
    sas: SaSet,
    /// Removed then at the latest, whatever the NOTIFYs.
    pub(super) until: Option<Duration>,
    /// Kept until `until` even once its NOTIFYs ended (the SAs of a
    /// de-registration, `linger_sas`).
    held: bool,
}

/// Whether a request is a SUBSCRIBE to the reg event package.
fn is_reg_subscribe(request: &Message<'_>) -> bool {
    request.method() == Some(Method::Subscribe)
        && request
            .event()
            .ok()
            .flatten()
            .is_some_and(|e| e.package().eq_ignore_ascii_case("reg"))
}

impl Network {
    /// Handles a request from `ue_addr` that came on `flow` when it is
    /// registration's: a REGISTER ([`Network::on_register`]) or a
    /// SUBSCRIBE to the reg event ([`Network::on_subscribe`]). `None`
    /// for any other request (the caller relays or refuses it).
    pub fn on_request(
        &mut self,
        request: &Message<'_>,
        ue_addr: IpAddr,
        flow: Flow,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Option<Vec<NetworkAction>> {
        if request.method() == Some(Method::Register) {
            return Some(self.on_register(request, ue_addr, flow, now, rng));
        }
        is_reg_subscribe(request).then(|| self.on_subscribe(request, ue_addr, flow, now, rng))
    }

    /// A SUBSCRIBE to the reg event (RFC 3680 §4, RFC 6665 §4.2.1):
    ///
    /// - initial: accepted only for a registered public identity of the
    ///   UE that sent it, from its registered address and, when it has
    ///   SAs, over them (from its port-c to our port-s); else 403. Then
    ///   200 with Expires and a NOTIFY with the full state (version 0);
    /// - in a dialog: a refresh gets 200 and a full-state NOTIFY, an
    ///   `Expires: 0` 200 and a final NOTIFY (`terminated;reason=timeout`);
    ///   481 for a dialog we do not have.
    ///
    /// Another event package gets 489, an Accept without
    /// `application/reginfo+xml` 406, a malformed Expires or Accept 400.
    pub fn on_subscribe(
        &mut self,
        request: &Message<'_>,
        ue_addr: IpAddr,
        flow: Flow,
        now: Duration,
        rng: &mut dyn Random,
    ) -> Vec<NetworkAction> {
        if request.method() != Some(Method::Subscribe) {
            return self.refuse(request, 405, None);
        }
        if !is_reg_subscribe(request) {
            return self.refuse(request, 489, Some(("Allow-Events", "reg")));
        }
        match request.accept() {
            Ok(None) => {}
            Ok(Some(types)) => {
                let takes = types.iter().any(|t| {
                    let any = t.mtype == "*" || t.mtype.eq_ignore_ascii_case("application");
                    any && (t.subtype == "*" || t.subtype.eq_ignore_ascii_case("reginfo+xml"))
                });
                if !takes {
                    return self.refuse(request, 406, Some(("Accept", REGINFO_TYPE)));
                }
            }
            Err(_) => return self.refuse(request, 400, None),
        }
        let Ok(requested) = request.expires() else {
            return self.refuse(request, 400, None);
        };
        let granted = requested
            .unwrap_or(DEFAULT_EXPIRES)
            .min(self.config.max_expires);
        let in_dialog = request.to().ok().and_then(|t| t.tag().map(str::to_owned));
        let call_id = match in_dialog {
            Some(_) => {
                let Some((id, s)) = self
                    .reg_subs
                    .iter_mut()
                    .find(|(_, s)| s.dialog.matches(request))
                else {
                    return self.refuse(request, 481, None);
                };
                if s.dialog.receive(request).is_err() {
                    return self.refuse(request, 500, None);
                }
                id.clone()
            }
            None => match self.new_subscription(request, ue_addr, flow, rng) {
                Some(id) => id,
                None => return self.refuse(request, 403, None),
            },
        };
        let Some(s) = self.reg_subs.get_mut(&call_id) else {
            return Vec::new();
        };
        s.expires_at = now.saturating_add(Duration::from_secs(u64::from(granted)));
        let response = Builder::response_to(request, 200, None)
            .to_tag(&s.dialog.local_tag)
            .header("Expires", granted)
            .header(
                "Contact",
                format!("<sip:{}>", hostport(s.local.0, s.local.1)),
            )
            .build();
        let Ok(response) = response else {
            self.reg_subs.remove(&call_id);
            return Vec::new();
        };
        let mut out = vec![NetworkAction::Respond(response)];
        if granted == 0 {
            out.extend(self.send_notify(&call_id, "terminated;reason=timeout", None));
            self.reg_subs.remove(&call_id);
        } else {
            let doc = self.full_state(&call_id, now);
            let state = format!("active;expires={granted}");
            out.extend(self.send_notify(&call_id, &state, doc));
        }
        out
    }

    /// A new subscription for `request`, if a binding allows it; its
    /// Call-ID.
    fn new_subscription(
        &mut self,
        request: &Message<'_>,
        ue_addr: IpAddr,
        flow: Flow,
        rng: &mut dyn Random,
    ) -> Option<String> {
        let aor = request.request_uri()?.to_string();
        let (impi, b) = self.bindings.iter().find(|(impi, b)| {
            let listed = self
                .subscribers
                .get(*impi)
                .is_some_and(|s| s.impus.contains(&aor));
            (b.impu == aor || listed) && b.ue_addr == ue_addr
        })?;
        let (sub_flow, local) = match &b.auth.server {
            Some((_, s)) => {
                let over = Flow::Protected {
                    ue_port: s.ue_offer().port_c,
                    pcscf_port: s.pcscf_offer().port_s,
                };
                if flow != over {
                    return None;
                }
                (
                    Flow::Protected {
                        ue_port: s.ue_offer().port_s,
                        pcscf_port: s.pcscf_offer().port_c,
                    },
                    (self.config.pcscf_addr, s.pcscf_offer().port_s),
                )
            }
            None if flow == Flow::Unprotected => (
                Flow::Unprotected,
                (self.config.pcscf_addr, self.config.port),
            ),
            None => return None,
        };
        let impi = impi.clone();
        let dialog = Dialog::uas(request, &token(rng, 6)).ok()?;
        let call_id = dialog.call_id.clone();
        if self.reg_subs.contains_key(&call_id) {
            return None;
        }
        self.reg_subs.insert(
            call_id.clone(),
            RegSub {
                impi,
                dialog,
                expires_at: Duration::ZERO,
                version: 0,
                flow: sub_flow,
                local,
                branch: token(rng, 8),
            },
        );
        Some(call_id)
    }

    /// The public identities of `impi`'s registration: the subscriber's
    /// list, else the registered one.
    fn aors(&self, impi: &str, impu: &str) -> Vec<String> {
        self.subscribers
            .get(impi)
            .map(|s| s.impus.clone())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| vec![impu.to_owned()])
    }

    /// A document with every public identity of `impi` in `state`, each
    /// with the one `contact`.
    fn document(
        &self,
        impi: &str,
        impu: &str,
        state: RegState,
        contact: RegContact,
        full: bool,
    ) -> Reginfo {
        let registrations = self
            .aors(impi, impu)
            .into_iter()
            .enumerate()
            .map(|(i, aor)| Registration {
                aor,
                id: format!("r{i}"),
                state,
                contacts: vec![contact.clone()],
            })
            .collect();
        Reginfo {
            version: 0,
            full,
            registrations,
        }
    }

    /// The binding's contact row (its `id` from [`contact_id`]).
    fn contact_row(
        &self,
        impi: &str,
        state: ContactState,
        event: ContactEvent,
        now: Duration,
    ) -> Option<RegContact> {
        let b = self.bindings.get(impi)?;
        Some(RegContact {
            id: contact_id(&b.contact_uri),
            state,
            event,
            uri: b.contact_uri.clone(),
            expires: (state == ContactState::Active)
                .then(|| crate::secs_left(b.expires_at.saturating_sub(now))),
            retry_after: None,
            duration_registered: Some(now.saturating_sub(b.since).as_secs()),
            unknown_params: Vec::new(),
        })
    }

    /// The full state for subscription `call_id`.
    fn full_state(&self, call_id: &str, now: Duration) -> Option<Reginfo> {
        let s = self.reg_subs.get(call_id)?;
        let Some(b) = self.bindings.get(&s.impi) else {
            // The binding is gone: the identities, terminated, no contact.
            let mut d = self.document(&s.impi, "", RegState::Terminated, dummy(), true);
            for r in &mut d.registrations {
                r.contacts.clear();
            }
            d.registrations.retain(|r| !r.aor.is_empty());
            return Some(d);
        };
        let row = self.contact_row(&s.impi, ContactState::Active, ContactEvent::Registered, now)?;
        Some(self.document(&s.impi, &b.impu, RegState::Active, row, true))
    }

    /// A NOTIFY in subscription `call_id` with `state` as
    /// Subscription-State and `doc` (its version set) as body.
    fn send_notify(
        &mut self,
        call_id: &str,
        state: &str,
        doc: Option<Reginfo>,
    ) -> Option<NetworkAction> {
        let s = self.reg_subs.get_mut(call_id)?;
        let b = s.dialog.request(Method::Notify);
        let cseq = s.dialog.local_seq;
        let mut b = b
            .header(
                "Via",
                format!(
                    "SIP/2.0/UDP {};branch=z9hG4bK{}.{cseq}",
                    hostport(s.local.0, s.local.1),
                    s.branch
                ),
            )
            .header("Max-Forwards", 70)
            .header("Event", "reg")
            .header("Subscription-State", state)
            .header(
                "Contact",
                format!("<sip:{}>", hostport(s.local.0, s.local.1)),
            );
        if let Some(mut d) = doc {
            d.version = s.version;
            s.version = s.version.wrapping_add(1);
            b = b.body(REGINFO_TYPE, d.to_xml());
        }
        let request = b.build().ok()?;
        self.outstanding
            .insert((call_id.to_owned(), cseq), s.impi.clone());
        Some(NetworkAction::Notify {
            request,
            flow: s.flow,
        })
    }

    /// The Call-IDs of `impi`'s subscriptions.
    fn subscriptions_of(&self, impi: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .reg_subs
            .iter()
            .filter(|(_, s)| s.impi == impi)
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }

    /// A partial NOTIFY to every subscriber of `impi`: its binding with
    /// `event` (`registered`, `refreshed`, `shortened`: active).
    pub(super) fn notify_binding(
        &mut self,
        impi: &str,
        event: ContactEvent,
        now: Duration,
    ) -> Vec<NetworkAction> {
        // Most UEs do not subscribe: no document is built for nobody.
        let subscriptions = self.subscriptions_of(impi);
        if subscriptions.is_empty() {
            return Vec::new();
        }
        let Some(row) = self.contact_row(impi, ContactState::Active, event, now) else {
            return Vec::new();
        };
        let impu = self
            .bindings
            .get(impi)
            .map(|b| b.impu.clone())
            .unwrap_or_default();
        let doc = self.document(impi, &impu, RegState::Active, row, false);
        let mut out = Vec::new();
        for id in subscriptions {
            let left = self
                .reg_subs
                .get(&id)
                .map_or(0, |s| crate::secs_left(s.expires_at.saturating_sub(now)));
            let state = format!("active;expires={left}");
            out.extend(self.send_notify(&id, &state, Some(doc.clone())));
        }
        out
    }

    /// The UE de-registered (expiry 0): its subscribers learn the
    /// contact is `terminated` by `unregistered`, and their subscriptions
    /// end (`noresource`).
    pub(super) fn notify_unregistered(
        &mut self,
        impi: &str,
        impu: &str,
        contact_uri: &str,
        now: Duration,
    ) -> Vec<NetworkAction> {
        let row = RegContact {
            id: contact_id(contact_uri),
            state: ContactState::Terminated,
            event: ContactEvent::Unregistered,
            uri: contact_uri.to_owned(),
            expires: None,
            retry_after: None,
            duration_registered: None,
            unknown_params: Vec::new(),
        };
        let _ = now;
        let doc = self.document(impi, impu, RegState::Terminated, row, false);
        let mut out = Vec::new();
        for id in self.subscriptions_of(impi) {
            out.extend(self.send_notify(&id, "terminated;reason=noresource", Some(doc.clone())));
            self.reg_subs.remove(&id);
        }
        out
    }

    /// Ends `impi`'s binding from the network's side: a partial NOTIFY
    /// with the contact `terminated` by `event` (with `retry_after`
    /// seconds for `probation`) and the subscription ended with
    /// `reason`; the SAs are removed once those NOTIFYs' transactions end
    /// (at once without subscribers).
    pub(super) fn end_binding(
        &mut self,
        impi: &str,
        event: ContactEvent,
        retry_after: Option<u64>,
        reason: &str,
        now: Duration,
    ) -> Vec<NetworkAction> {
        let Some(mut row) = self.contact_row(impi, ContactState::Terminated, event, now) else {
            return Vec::new();
        };
        row.retry_after = retry_after;
        let Some(b) = self.bindings.get(impi) else {
            return Vec::new();
        };
        let doc = self.document(impi, &b.impu.clone(), RegState::Terminated, row, false);
        let mut out = Vec::new();
        let state = format!("terminated;reason={reason}");
        for id in self.subscriptions_of(impi) {
            out.extend(self.send_notify(&id, &state, Some(doc.clone())));
            self.reg_subs.remove(&id);
        }
        if let Some(b) = self.bindings.remove(impi) {
            if let Some((_, sas)) = b.auth.server {
                out.extend(self.release_sas(impi, sas));
            }
        }
        out.push(NetworkAction::Deregistered {
            impi: impi.to_owned(),
        });
        out
    }

    /// Network-initiated de-registration (TS 24.229 §5.4.1.5 as commonly
    /// implemented, RFC 3680 §5.1): `impi`'s binding ends at once; its
    /// reg event subscribers get a NOTIFY with the contact `terminated`
    /// by the [`Ending`]'s event (`deactivated`, `probation` with its
    /// `retry-after`, `rejected`), the subscription ended with the
    /// RFC 6665 reason that says the same (`deactivated`, `probation`
    /// with `retry-after`, `rejected`); its SAs are removed after those
    /// NOTIFYs' transactions end ([`Network::on_response`],
    /// [`Network::on_notify_timeout`]), so that the NOTIFY and its answer
    /// still travel over them. Nothing when `impi` is not registered.
    pub fn deregister(&mut self, impi: &str, how: Ending, now: Duration) -> Vec<NetworkAction> {
        let (event, reason) = match how {
            Ending::Deactivated => (ContactEvent::Deactivated, "deactivated".to_owned()),
            Ending::Probation { retry_after } => (
                ContactEvent::Probation,
                format!("probation;retry-after={}", retry_after.as_secs()),
            ),
            Ending::Rejected => (ContactEvent::Rejected, "rejected".to_owned()),
        };
        let retry_after = match how {
            Ending::Probation { retry_after } => Some(retry_after.as_secs()),
            _ => None,
        };
        self.end_binding(impi, event, retry_after, &reason, now)
    }

    /// Shortens `impi`'s registration to end `expires` from now (RFC 3680
    /// `shortened`): its subscribers get a partial NOTIFY saying so, and
    /// the UE is expected to re-register before. Nothing when `impi` is
    /// not registered or its binding already ends sooner.
    pub fn shorten(&mut self, impi: &str, expires: Duration, now: Duration) -> Vec<NetworkAction> {
        let until = now.saturating_add(expires);
        match self.bindings.get_mut(impi) {
            Some(b) if until < b.expires_at => b.expires_at = until,
            _ => return Vec::new(),
        }
        self.deadlines.push(Reverse((until, impi.to_owned())));
        self.notify_binding(impi, ContactEvent::Shortened, now)
    }

    /// The final response to a NOTIFY we sent. An error ends the
    /// subscription (RFC 6665 §4.2.2); the end of the last NOTIFY of a
    /// binding the network ended removes its SAs.
    pub fn on_response(&mut self, response: &Message<'_>, _now: Duration) -> Vec<NetworkAction> {
        let (Ok(call_id), Ok(cseq), Some(status)) =
            (response.call_id(), response.cseq(), response.status())
        else {
            return Vec::new();
        };
        if cseq.method != Method::Notify || status < 200 {
            return Vec::new();
        }
        if status >= 300 {
            self.reg_subs.remove(call_id);
        }
        self.notify_ended(call_id, cseq.seq)
    }

    /// A NOTIFY we sent got no final response (Timer F): the
    /// subscription ends (RFC 6665 §4.2.2), and the SAs that waited on it
    /// are removed.
    pub fn on_notify_timeout(&mut self, notify: &Message<'_>) -> Vec<NetworkAction> {
        let (Ok(call_id), Ok(cseq)) = (notify.call_id(), notify.cseq()) else {
            return Vec::new();
        };
        self.reg_subs.remove(call_id);
        self.notify_ended(call_id, cseq.seq)
    }

    /// Removes `impi`'s ended SAs: at once when no NOTIFY of ours to that
    /// UE is unanswered, else once the last of them ended (its answer
    /// comes back over them).
    pub(super) fn release_sas(&mut self, impi: &str, sas: SaSet) -> Option<NetworkAction> {
        self.release_sas_until(impi, sas, None)
    }

    /// After a handover, `impi`'s subscriptions whose NOTIFYs went over
    /// `from` go over `to` (from its port-c to the UE's port-s).
    pub(super) fn move_subscriptions(&mut self, impi: &str, from: &SaSet, to: &SaSet) {
        let server_flow = |s: &SaSet| Flow::Protected {
            ue_port: s.ue_offer().port_s,
            pcscf_port: s.pcscf_offer().port_c,
        };
        let (old, new) = (server_flow(from), server_flow(to));
        for s in self.reg_subs.values_mut() {
            if s.impi == impi && s.flow == old {
                s.flow = new;
            }
        }
    }

    /// The SA sets kept for NOTIFYs still out (their SPIs are in use).
    pub(super) fn draining_sets(&self) -> impl Iterator<Item = &SaSet> {
        self.draining.iter().map(|d| &d.sas)
    }

    /// The NOTIFYs to `impi` still waiting for their answer.
    fn outstanding_for(&self, impi: &str) -> Vec<(String, u32)> {
        self.outstanding
            .iter()
            .filter(|(_, i)| *i == impi)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// As [`Network::release_sas`], and at the latest at `until`.
    pub(super) fn release_sas_until(
        &mut self,
        impi: &str,
        sas: SaSet,
        until: Option<Duration>,
    ) -> Option<NetworkAction> {
        let notifies = self.outstanding_for(impi);
        if notifies.is_empty() {
            return Some(NetworkAction::RemoveSas(sas));
        }
        self.draining.push(Draining {
            notifies,
            sas,
            until,
            held: false,
        });
        if let Some(at) = until {
            self.deadlines.push(Reverse((at, impi.to_owned())));
        }
        None
    }

    /// Keeps the SAs of a UE that de-registered itself until `until`,
    /// whatever the NOTIFYs out over them: the 200 that ended the
    /// registration may be lost, and the UE's retransmitted de-REGISTER
    /// (RFC 3261 §17.1.2, Timer E) must still find them, so its server
    /// transaction can send the 200 again over them.
    pub(super) fn linger_sas(&mut self, impi: &str, sas: SaSet, until: Duration) {
        self.draining.push(Draining {
            notifies: self.outstanding_for(impi),
            sas,
            until: Some(until),
            held: true,
        });
        self.deadlines.push(Reverse((until, impi.to_owned())));
    }

    /// SA sets kept for unanswered NOTIFYs whose UE end (address, port-c
    /// or port-s) a new set takes again: a new UE process registering
    /// from the same ports. They go now (their NOTIFYs can no longer be
    /// answered over them), or the new set's policies would clash.
    pub(super) fn evict_draining(&mut self, new: &SaSet) -> Vec<NetworkAction> {
        let ours = new.ue_offer();
        let clash = |s: &SaSet| {
            let o = s.ue_offer();
            s.ue_addr() == new.ue_addr()
                && [o.port_c, o.port_s]
                    .iter()
                    .any(|p| *p == ours.port_c || *p == ours.port_s)
        };
        let (gone, keep): (Vec<Draining>, Vec<Draining>) = std::mem::take(&mut self.draining)
            .into_iter()
            .partition(|d| clash(&d.sas));
        self.draining = keep;
        gone.into_iter()
            .map(|d| NetworkAction::RemoveSas(d.sas))
            .collect()
    }

    /// SA sets whose lingering time is up go, their NOTIFYs answered or
    /// not.
    pub(super) fn end_lingering(&mut self, now: Duration) -> Vec<NetworkAction> {
        if !self
            .draining
            .iter()
            .any(|d| d.until.is_some_and(|t| t <= now))
        {
            return Vec::new();
        }
        let (done, keep): (Vec<Draining>, Vec<Draining>) = std::mem::take(&mut self.draining)
            .into_iter()
            .partition(|d| d.until.is_some_and(|t| t <= now));
        self.draining = keep;
        done.into_iter()
            .map(|d| NetworkAction::RemoveSas(d.sas))
            .collect()
    }

    fn notify_ended(&mut self, call_id: &str, seq: u32) -> Vec<NetworkAction> {
        let mut out = Vec::new();
        if self
            .outstanding
            .remove(&(call_id.to_owned(), seq))
            .is_none()
        {
            return out;
        }
        for d in &mut self.draining {
            d.notifies.retain(|(c, s)| !(c == call_id && *s == seq));
        }
        let (done, keep): (Vec<Draining>, Vec<Draining>) = std::mem::take(&mut self.draining)
            .into_iter()
            .partition(|d| d.notifies.is_empty() && !d.held);
        self.draining = keep;
        for d in done {
            out.push(NetworkAction::RemoveSas(d.sas));
        }
        out
    }

    /// Subscriptions whose time is up end (RFC 6665 §4.2.2) with a
    /// final NOTIFY (`terminated;reason=timeout`).
    pub(super) fn expire_subscriptions(&mut self, now: Duration) -> Vec<NetworkAction> {
        let mut gone: Vec<String> = self
            .reg_subs
            .iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        gone.sort();
        let mut out = Vec::new();
        for id in gone {
            out.extend(self.send_notify(&id, "terminated;reason=timeout", None));
            self.reg_subs.remove(&id);
        }
        out
    }
}

/// A placeholder contact row for documents that list none.
fn dummy() -> RegContact {
    RegContact {
        id: String::new(),
        state: ContactState::Terminated,
        event: ContactEvent::Expired,
        uri: String::new(),
        expires: None,
        retry_after: None,
        duration_registered: None,
        unknown_params: Vec::new(),
    }
}

/// The `id` of a contact in the reg event (RFC 3680 §5.1): a hash of the
/// contact URI as registered, unknown parameters included, which is what
/// the RFC suggests since no function of the URI meets its rules
/// exactly: contacts with different URIs get different ids (they MUST,
/// here up to a 64-bit collision), the same URI the same id in every
/// notification (SHOULD), without keeping state. FNV-1a: stable across
/// runs and builds, unlike `std`'s hasher.
pub(crate) fn contact_id(uri: &str) -> String {
    let h = uri.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("c{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::contact_id;

    /// FNV-1a's published test values (64-bit: "" and "a"), then the
    /// rules: one id per URI, different URIs (a port, a parameter, the
    /// case of a user part) different ids.
    #[test]
    fn contact_ids_follow_the_uri() {
        assert_eq!(contact_id(""), "ccbf29ce484222325");
        assert_eq!(contact_id("a"), "caf63dc4c8601ec8c");
        let base = "sip:ue@[2001:db8::7]:5062;+sip.instance=\"<urn:gsma:imei:1>\"";
        assert_eq!(contact_id(base), contact_id(base));
        let mut seen = std::collections::HashSet::new();
        for port in 1024..3024 {
            assert!(seen.insert(contact_id(&format!("sip:ue@192.0.2.1:{port}"))));
        }
        for other in [
            "sip:ue@[2001:db8::7]:5063;+sip.instance=\"<urn:gsma:imei:1>\"",
            "sip:ue@[2001:db8::7]:5062;+sip.instance=\"<urn:gsma:imei:2>\"",
            "sip:UE@[2001:db8::7]:5062;+sip.instance=\"<urn:gsma:imei:1>\"",
        ] {
            assert_ne!(contact_id(other), contact_id(base));
        }
    }
}
