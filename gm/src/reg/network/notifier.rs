//! The network side of the reg event package (RFC 3680, RFC 6665 §4.2,
//! TS 24.229 §5.4.2.1 as commonly implemented): the registrar accepts a
//! UE's subscription to its own registration, NOTIFYs the full state
//! first and a partial document on every change of the binding, and can
//! end a registration itself (network-initiated de-registration).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
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
    /// Set through [`Subscriptions::set_expiry`] only (it keeps the
    /// expiry heap).
    expires_at: Duration,
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
    until: Option<Duration>,
    /// Kept until `until` even once its NOTIFYs ended (the SAs of a
    /// de-registration, `linger_sas`).
    held: bool,
}

// The three tables below hold per-UE state of the notifier. Each is
// indexed by what the messages and timers look it up by, so that no
// message and no timer scans every UE's entries: with thousands of UEs
// registered, a scan per message made one UE's registration cost
// twenty times what it costs with ten (`benches/benches/network_scale.rs`).

/// The reg event subscriptions, by Call-ID, with each IMPI's Call-IDs and
/// a heap of their expiries.
#[derive(Default)]
pub(super) struct Subscriptions {
    by_id: HashMap<String, RegSub>,
    /// Each IMPI's Call-IDs, in order (NOTIFYs go out in that order).
    by_impi: HashMap<String, BTreeSet<String>>,
    /// (expiry, Call-ID), one pushed per expiry set: stale ones (the
    /// subscription refreshed or gone) are dropped when they come up.
    expiry: BinaryHeap<Reverse<(Duration, String)>>,
}

impl Subscriptions {
    fn get(&self, id: &str) -> Option<&RegSub> {
        self.by_id.get(id)
    }

    /// The subscription, to change anything but its IMPI and expiry.
    fn get_mut(&mut self, id: &str) -> Option<&mut RegSub> {
        self.by_id.get_mut(id)
    }

    fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Adds a subscription; it expires once [`Subscriptions::set_expiry`]
    /// says when.
    fn insert(&mut self, id: String, sub: RegSub) {
        self.by_impi
            .entry(sub.impi.clone())
            .or_default()
            .insert(id.clone());
        if let Some(old) = self.by_id.insert(id.clone(), sub) {
            self.forget(&id, &old.impi);
        }
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<RegSub> {
        let sub = self.by_id.remove(id)?;
        self.forget(id, &sub.impi);
        Some(sub)
    }

    /// Drops `id` from `impi`'s Call-IDs unless a subscription `id` of
    /// `impi` is still there.
    fn forget(&mut self, id: &str, impi: &str) {
        if self.by_id.get(id).is_some_and(|s| s.impi == impi) {
            return;
        }
        if let Some(ids) = self.by_impi.get_mut(impi) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_impi.remove(impi);
            }
        }
    }

    fn set_expiry(&mut self, id: &str, at: Duration) {
        if let Some(s) = self.by_id.get_mut(id) {
            s.expires_at = at;
            self.expiry.push(Reverse((at, id.to_owned())));
        }
    }

    /// `impi`'s Call-IDs, in order.
    pub(super) fn of(&self, impi: &str) -> Vec<String> {
        self.by_impi
            .get(impi)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The earliest expiry, possibly of a subscription refreshed or gone
    /// since (the caller then looks once for nothing).
    pub(super) fn next_expiry(&self) -> Option<Duration> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    /// The Call-IDs of the subscriptions expired at `now`, in order.
    fn expired(&mut self, now: Duration) -> Vec<String> {
        let mut out = Vec::new();
        while self
            .expiry
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= now)
        {
            if let Some(Reverse((_, id))) = self.expiry.pop() {
                if self.by_id.get(&id).is_some_and(|s| s.expires_at <= now) {
                    out.push(id);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// The NOTIFYs sent and not ended: (Call-ID, CSeq) to IMPI, and each
/// IMPI's. A final NOTIFY to a UE that is gone stays until its
/// transaction times out, so thousands may be out under load.
#[derive(Default)]
pub(super) struct Outstanding {
    by_key: HashMap<(String, u32), String>,
    by_impi: HashMap<String, BTreeSet<(String, u32)>>,
}

impl Outstanding {
    fn insert(&mut self, key: (String, u32), impi: String) {
        self.by_impi
            .entry(impi.clone())
            .or_default()
            .insert(key.clone());
        if let Some(old) = self.by_key.insert(key.clone(), impi) {
            self.forget(&key, &old);
        }
    }

    /// Ends a NOTIFY; the IMPI it went to.
    fn remove(&mut self, key: &(String, u32)) -> Option<String> {
        let impi = self.by_key.remove(key)?;
        self.forget(key, &impi);
        Some(impi)
    }

    fn forget(&mut self, key: &(String, u32), impi: &str) {
        if self.by_key.get(key).is_some_and(|i| i == impi) {
            return;
        }
        if let Some(keys) = self.by_impi.get_mut(impi) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_impi.remove(impi);
            }
        }
    }

    /// The NOTIFYs to `impi` still waiting for their answer.
    pub(super) fn of(&self, impi: &str) -> Vec<(String, u32)> {
        self.by_impi
            .get(impi)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The SA sets kept for NOTIFYs or lingering after a de-registration,
/// by IMPI, with the IMPIs that have one from each UE address.
#[derive(Default)]
pub(super) struct DrainingSets {
    by_impi: HashMap<String, Vec<Draining>>,
    at: HashMap<IpAddr, BTreeSet<String>>,
}

impl DrainingSets {
    fn push(&mut self, impi: &str, d: Draining) {
        self.at
            .entry(d.sas.ue_addr())
            .or_default()
            .insert(impi.to_owned());
        self.by_impi.entry(impi.to_owned()).or_default().push(d);
    }

    /// Takes `impi`'s sets that `gone` picks, in the order they came.
    fn take(&mut self, impi: &str, mut gone: impl FnMut(&Draining) -> bool) -> Vec<Draining> {
        let Some(v) = self.by_impi.get_mut(impi) else {
            return Vec::new();
        };
        let (out, keep): (Vec<Draining>, Vec<Draining>) =
            std::mem::take(v).into_iter().partition(|d| gone(d));
        *v = keep;
        for d in &out {
            let addr = d.sas.ue_addr();
            let still = self
                .by_impi
                .get(impi)
                .is_some_and(|v| v.iter().any(|k| k.sas.ue_addr() == addr));
            if !still {
                if let Some(impis) = self.at.get_mut(&addr) {
                    impis.remove(impi);
                    if impis.is_empty() {
                        self.at.remove(&addr);
                    }
                }
            }
        }
        if self.by_impi.get(impi).is_some_and(Vec::is_empty) {
            self.by_impi.remove(impi);
        }
        out
    }

    /// `impi`'s sets.
    pub(super) fn of(&self, impi: &str) -> impl Iterator<Item = &SaSet> {
        self.by_impi.get(impi).into_iter().flatten().map(|d| &d.sas)
    }

    /// The IMPIs with a set from UE address `addr`, in order.
    fn at(&self, addr: IpAddr) -> Vec<String> {
        self.at
            .get(&addr)
            .map(|impis| impis.iter().cloned().collect())
            .unwrap_or_default()
    }
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
                // A subscription is known by its dialog's Call-ID.
                let id = request.call_id().unwrap_or_default().to_owned();
                let Some(s) = self
                    .reg_subs
                    .get_mut(&id)
                    .filter(|s| s.dialog.matches(request))
                else {
                    return self.refuse(request, 481, None);
                };
                if s.dialog.receive(request).is_err() {
                    return self.refuse(request, 500, None);
                }
                id
            }
            None => match self.new_subscription(request, ue_addr, flow, rng) {
                Some(id) => id,
                None => return self.refuse(request, 403, None),
            },
        };
        self.reg_subs.set_expiry(
            &call_id,
            now.saturating_add(Duration::from_secs(u64::from(granted))),
        );
        let Some(s) = self.reg_subs.get(&call_id) else {
            return Vec::new();
        };
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
        let (impi, b) = self.bound_under(&aor).into_iter().find_map(|impi| {
            let b = self.bindings.get(&impi)?;
            let listed = self
                .subscribers
                .get(&impi)
                .is_some_and(|s| s.impus.contains(&aor));
            ((b.impu == aor || listed) && b.ue_addr == ue_addr).then_some((impi, b))
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
        if self.reg_subs.contains(&call_id) {
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

    /// The Call-IDs of `impi`'s subscriptions, in order.
    fn subscriptions_of(&self, impi: &str) -> Vec<String> {
        self.reg_subs.of(impi)
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
        if let Some(b) = self.take_binding(impi) {
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
        for id in self.reg_subs.of(impi) {
            if let Some(s) = self.reg_subs.get_mut(&id).filter(|s| s.flow == old) {
                s.flow = new;
            }
        }
    }

    /// The NOTIFYs to `impi` still waiting for their answer.
    fn outstanding_for(&self, impi: &str) -> Vec<(String, u32)> {
        self.outstanding.of(impi)
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
        self.draining.push(
            impi,
            Draining {
                notifies,
                sas,
                until,
                held: false,
            },
        );
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
        let notifies = self.outstanding_for(impi);
        self.draining.push(
            impi,
            Draining {
                notifies,
                sas,
                until: Some(until),
                held: true,
            },
        );
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
        let mut out = Vec::new();
        for impi in self.draining.at(new.ue_addr()) {
            let gone = self.draining.take(&impi, |d| clash(&d.sas));
            out.extend(gone.into_iter().map(|d| NetworkAction::RemoveSas(d.sas)));
        }
        out
    }

    /// The SA sets of the IMPIs `due` whose lingering time is up go,
    /// their NOTIFYs answered or not (each set's end is among the IMPI's
    /// deadlines).
    pub(super) fn end_lingering(&mut self, due: &[String], now: Duration) -> Vec<NetworkAction> {
        let mut out = Vec::new();
        for impi in due {
            let done = self
                .draining
                .take(impi, |d| d.until.is_some_and(|t| t <= now));
            out.extend(done.into_iter().map(|d| NetworkAction::RemoveSas(d.sas)));
        }
        out
    }

    fn notify_ended(&mut self, call_id: &str, seq: u32) -> Vec<NetworkAction> {
        let mut out = Vec::new();
        let Some(impi) = self.outstanding.remove(&(call_id.to_owned(), seq)) else {
            return out;
        };
        // Only the IMPI's own sets wait for a NOTIFY to it.
        if let Some(v) = self.draining.by_impi.get_mut(&impi) {
            for d in v {
                d.notifies.retain(|(c, s)| !(c == call_id && *s == seq));
            }
        }
        let done = self
            .draining
            .take(&impi, |d| d.notifies.is_empty() && !d.held);
        for d in done {
            out.push(NetworkAction::RemoveSas(d.sas));
        }
        out
    }

    /// Subscriptions whose time is up end (RFC 6665 §4.2.2) with a
    /// final NOTIFY (`terminated;reason=timeout`).
    pub(super) fn expire_subscriptions(&mut self, now: Duration) -> Vec<NetworkAction> {
        let gone = self.reg_subs.expired(now);
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
    use super::*;
    use crate::reg::sa::{Agreement, IpsecMode, IpsecOffer, Side};
    use opensec::{AuthAlgorithm, EncAlgorithm};

    /// A subscription of `impi` in dialog `call_id`.
    fn sub(impi: &str, call_id: &str) -> RegSub {
        let request = format!(
            "SUBSCRIBE sip:a@x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             From: <sip:a@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 SUBSCRIBE\r\nContact: <sip:a@192.0.2.1>\r\nEvent: reg\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let m = Message::parse(request.as_bytes()).unwrap();
        RegSub {
            impi: impi.to_owned(),
            dialog: Dialog::uas(&m, "t").unwrap(),
            expires_at: Duration::ZERO,
            version: 0,
            flow: Flow::Unprotected,
            local: ("192.0.2.9".parse().unwrap(), 5060),
            branch: "b".into(),
        }
    }

    /// A set of ours for a UE at `ue` whose port-c is `port`.
    fn set(ue: &str, port: u16, spi: u32) -> SaSet {
        let offer = |spi_c, spi_s, port_c, port_s| IpsecOffer {
            alg: AuthAlgorithm::HmacSha1_96,
            ealg: EncAlgorithm::AesCbc,
            mode: IpsecMode::Transport,
            spi_c,
            spi_s,
            port_c,
            port_s,
        };
        let a = Agreement {
            ue_addr: ue.parse().unwrap(),
            pcscf_addr: "192.0.2.9".parse().unwrap(),
            ue: offer(spi, spi + 1, port, port + 1),
            pcscf: offer(spi + 2, spi + 3, 5066, 5068),
        };
        SaSet::new(
            Side::Network,
            &a,
            &[1; 16],
            &[2; 16],
            Duration::from_secs(60),
        )
        .unwrap()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Each IMPI's subscriptions in order; the expiry heap gives the
    /// earliest and only what is really expired (a refreshed one is not,
    /// nor one gone); a Call-ID taken by another IMPI moves.
    #[test]
    fn subscriptions_are_found_by_impi_and_expiry() {
        let mut subs = Subscriptions::default();
        subs.insert("c2".into(), sub("a", "c2"));
        subs.insert("c1".into(), sub("a", "c1"));
        subs.insert("c3".into(), sub("b", "c3"));
        assert_eq!(subs.next_expiry(), None, "no expiry before one is set");
        subs.set_expiry("c1", secs(10));
        subs.set_expiry("c2", secs(20));
        subs.set_expiry("c3", secs(15));
        assert_eq!(subs.of("a"), ["c1", "c2"]);
        assert_eq!(subs.of("b"), ["c3"]);
        assert_eq!(subs.next_expiry(), Some(secs(10)));
        assert_eq!(subs.expired(secs(12)), ["c1"]);
        subs.set_expiry("c3", secs(30));
        assert_eq!(subs.next_expiry(), Some(secs(15)), "stale, looked at once");
        assert!(subs.expired(secs(16)).is_empty());
        assert_eq!(subs.next_expiry(), Some(secs(20)));
        assert!(subs.remove("c2").is_some());
        assert!(subs.expired(secs(25)).is_empty(), "c2 is gone");
        assert_eq!(subs.of("a"), ["c1"]);
        subs.insert("c3".into(), sub("a", "c3"));
        assert_eq!(subs.of("a"), ["c1", "c3"]);
        assert!(subs.of("b").is_empty());
        assert!(!subs.by_impi.contains_key("b"));
        assert!(subs.remove("c1").is_some() && subs.remove("c3").is_some());
        assert!(subs.by_impi.is_empty() && subs.by_id.is_empty());
    }

    #[test]
    fn outstanding_notifies_are_found_by_impi() {
        let mut out = Outstanding::default();
        out.insert(("c1".into(), 2), "a".into());
        out.insert(("c1".into(), 1), "a".into());
        out.insert(("c2".into(), 1), "b".into());
        assert_eq!(out.of("a"), [("c1".to_owned(), 1), ("c1".to_owned(), 2)]);
        assert_eq!(out.remove(&("c1".into(), 1)), Some("a".into()));
        assert_eq!(out.remove(&("c1".into(), 1)), None);
        assert_eq!(out.of("a"), [("c1".to_owned(), 2)]);
        out.insert(("c2".into(), 1), "a".into());
        assert!(out.of("b").is_empty());
        assert_eq!(out.of("a").len(), 2);
        assert_eq!(out.remove(&("c2".into(), 1)), Some("a".into()));
        assert_eq!(out.remove(&("c1".into(), 2)), Some("a".into()));
        assert!(out.by_impi.is_empty() && out.by_key.is_empty());
    }

    /// Sets are taken per IMPI, in the order they came, and the address
    /// index follows: an IMPI is listed at an address while it has a set
    /// from there.
    #[test]
    fn draining_sets_are_found_by_impi_and_address() {
        let held = |sas| Draining {
            notifies: Vec::new(),
            sas,
            until: Some(secs(5)),
            held: true,
        };
        let mut d = DrainingSets::default();
        d.push("a", held(set("10.0.0.1", 5000, 1000)));
        d.push("a", held(set("10.0.0.2", 5000, 2000)));
        d.push("b", held(set("10.0.0.1", 6000, 3000)));
        let x: IpAddr = "10.0.0.1".parse().unwrap();
        let y: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(d.at(x), ["a", "b"]);
        assert_eq!(d.at(y), ["a"]);
        assert!(d.take("b", |_| false).is_empty());
        let gone = d.take("a", |s| s.sas.ue_addr() == x);
        assert_eq!(gone.len(), 1);
        assert_eq!(d.at(x), ["b"]);
        assert_eq!(d.at(y), ["a"]);
        assert_eq!(d.of("a").count(), 1);
        assert_eq!(d.take("a", |_| true).len(), 1);
        assert_eq!(d.take("b", |_| true).len(), 1);
        assert!(d.at.is_empty() && d.by_impi.is_empty());
    }

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
