//! The registration event package (RFC 3680): the `reginfo` document a
//! registrar NOTIFYs, built and read, and the subscriber's view of it
//! (§5.2) with what it means for a UE's own binding.
//!
//! A UE subscribes to its own registration (TS 24.229, as 3gpp-notes.md
//! and common implementations have it) to learn of network-initiated
//! deregistration: [`RegView::apply`] merges full and partial documents in
//! version order and [`RegView::binding`] says whether the UE's contact is
//! still registered, was shortened (re-register before the new expiry),
//! put on probation (retry after), or ended (`deactivated`: register again
//! now; `rejected`, `unregistered`, `expired`: it is gone).
//!
//! Documents are written with the `reginfo` namespace as default and
//! validate against RFC 3680 §5.4's schema (`gm/tests/reginfo_schema.rs`
//! runs `xmllint`).

use std::collections::BTreeMap;

use crate::xml::{self, Element, XmlError};

/// The reginfo namespace.
pub const REGINFO_NS: &str = "urn:ietf:params:xml:ns:reginfo";
/// Its media type.
pub const REGINFO_TYPE: &str = "application/reginfo+xml";

/// A registration's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegState {
    /// No active contact yet.
    Init,
    /// At least one active contact.
    Active,
    /// No contact left.
    Terminated,
}

/// A contact's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactState {
    /// Bound.
    Active,
    /// Not bound any more.
    Terminated,
}

/// What put a contact in its state (RFC 3680 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactEvent {
    /// Registered by a REGISTER.
    Registered,
    /// Created administratively.
    Created,
    /// Refreshed by a REGISTER.
    Refreshed,
    /// Its expiry was shortened (`expires` says to when).
    Shortened,
    /// Expired.
    Expired,
    /// Removed; the UE should register again at once.
    Deactivated,
    /// Removed; the UE should register again after `retry-after`.
    Probation,
    /// Removed by a REGISTER with expires 0.
    Unregistered,
    /// Removed; the UE should not register again.
    Rejected,
}

impl ContactEvent {
    const ALL: [(ContactEvent, &'static str); 9] = [
        (ContactEvent::Registered, "registered"),
        (ContactEvent::Created, "created"),
        (ContactEvent::Refreshed, "refreshed"),
        (ContactEvent::Shortened, "shortened"),
        (ContactEvent::Expired, "expired"),
        (ContactEvent::Deactivated, "deactivated"),
        (ContactEvent::Probation, "probation"),
        (ContactEvent::Unregistered, "unregistered"),
        (ContactEvent::Rejected, "rejected"),
    ];

    fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(e, _)| *e == self)
            .map_or("registered", |(_, s)| s)
    }

    fn parse(s: &str) -> Option<ContactEvent> {
        Self::ALL.iter().find(|(_, n)| *n == s).map(|(e, _)| *e)
    }
}

/// One contact of a registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegContact {
    /// `id`.
    pub id: String,
    /// `state`.
    pub state: ContactState,
    /// `event`.
    pub event: ContactEvent,
    /// `<uri>`.
    pub uri: String,
    /// `expires` (required with `shortened`).
    pub expires: Option<u64>,
    /// `retry-after` (required with `probation`).
    pub retry_after: Option<u64>,
    /// `duration-registered`.
    pub duration_registered: Option<u64>,
    /// `<unknown-param name=..>value</unknown-param>`: Contact parameters
    /// RFC 3261 does not define (feature tags such as `+sip.instance`).
    pub unknown_params: Vec<(String, String)>,
}

/// One registration (an address-of-record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// `aor`.
    pub aor: String,
    /// `id`.
    pub id: String,
    /// `state`.
    pub state: RegState,
    /// Its contacts.
    pub contacts: Vec<RegContact>,
}

/// A reginfo document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reginfo {
    /// `version`: 0 in the first document of a subscription, then one
    /// more in each.
    pub version: u32,
    /// `state="full"` (else partial).
    pub full: bool,
    /// The registrations.
    pub registrations: Vec<Registration>,
}

/// Why a reginfo document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReginfoError {
    /// Not well-formed, too large, or with a DOCTYPE.
    Xml(XmlError),
    /// Not a reginfo document: what is wrong.
    Invalid(&'static str),
}

impl std::fmt::Display for ReginfoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReginfoError::Xml(e) => write!(f, "{e}"),
            ReginfoError::Invalid(w) => write!(f, "not a reginfo document: {w}"),
        }
    }
}

impl std::error::Error for ReginfoError {}

fn required<'a>(e: &'a Element, name: &str, what: &'static str) -> Result<&'a str, ReginfoError> {
    e.attr(name).ok_or(ReginfoError::Invalid(what))
}

fn number(e: &Element, name: &str) -> Result<Option<u64>, ReginfoError> {
    e.attr(name)
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| ReginfoError::Invalid("a number attribute is not a number"))
        })
        .transpose()
}

impl Reginfo {
    /// Parses a reginfo document; elements of other namespaces are
    /// ignored, as RFC 3680 §5.1 says.
    pub fn parse(text: &str) -> Result<Reginfo, ReginfoError> {
        let root = xml::parse(text).map_err(ReginfoError::Xml)?;
        if !root.is(REGINFO_NS, "reginfo") {
            return Err(ReginfoError::Invalid("the root is not <reginfo>"));
        }
        let version = required(&root, "version", "<reginfo> has no version")?
            .trim()
            .parse::<u32>()
            .map_err(|_| ReginfoError::Invalid("version is not a 32-bit number"))?;
        let full = match required(&root, "state", "<reginfo> has no state")? {
            "full" => true,
            "partial" => false,
            _ => return Err(ReginfoError::Invalid("state is neither full nor partial")),
        };
        let mut registrations = Vec::new();
        for r in root.children_named(REGINFO_NS, "registration") {
            let state = match required(r, "state", "<registration> has no state")? {
                "init" => RegState::Init,
                "active" => RegState::Active,
                "terminated" => RegState::Terminated,
                _ => return Err(ReginfoError::Invalid("a registration state is unknown")),
            };
            let mut contacts = Vec::new();
            for c in r.children_named(REGINFO_NS, "contact") {
                let state = match required(c, "state", "<contact> has no state")? {
                    "active" => ContactState::Active,
                    "terminated" => ContactState::Terminated,
                    _ => return Err(ReginfoError::Invalid("a contact state is unknown")),
                };
                let event = ContactEvent::parse(required(c, "event", "<contact> has no event")?)
                    .ok_or(ReginfoError::Invalid("a contact event is unknown"))?;
                let uri = c
                    .children_named(REGINFO_NS, "uri")
                    .next()
                    .ok_or(ReginfoError::Invalid("<contact> has no <uri>"))?
                    .text
                    .trim()
                    .to_owned();
                let expires = number(c, "expires")?;
                if event == ContactEvent::Shortened && expires.is_none() {
                    return Err(ReginfoError::Invalid("shortened without expires"));
                }
                let retry_after = number(c, "retry-after")?;
                if event == ContactEvent::Probation && retry_after.is_none() {
                    return Err(ReginfoError::Invalid("probation without retry-after"));
                }
                let mut unknown_params = Vec::new();
                for p in c.children_named(REGINFO_NS, "unknown-param") {
                    let name = required(p, "name", "<unknown-param> has no name")?;
                    unknown_params.push((name.to_owned(), p.text.clone()));
                }
                contacts.push(RegContact {
                    id: required(c, "id", "<contact> has no id")?.to_owned(),
                    state,
                    event,
                    uri,
                    expires,
                    retry_after,
                    duration_registered: number(c, "duration-registered")?,
                    unknown_params,
                });
            }
            registrations.push(Registration {
                aor: required(r, "aor", "<registration> has no aor")?.to_owned(),
                id: required(r, "id", "<registration> has no id")?.to_owned(),
                state,
                contacts,
            });
        }
        Ok(Reginfo {
            version,
            full,
            registrations,
        })
    }

    /// The document as XML.
    pub fn to_xml(&self) -> String {
        use quick_xml::escape::escape;
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        s.push_str(&format!(
            "<reginfo xmlns=\"{REGINFO_NS}\" version=\"{}\" state=\"{}\">\n",
            self.version,
            if self.full { "full" } else { "partial" }
        ));
        for r in &self.registrations {
            let state = match r.state {
                RegState::Init => "init",
                RegState::Active => "active",
                RegState::Terminated => "terminated",
            };
            s.push_str(&format!(
                "  <registration aor=\"{}\" id=\"{}\" state=\"{state}\">\n",
                escape(r.aor.as_str()),
                escape(r.id.as_str())
            ));
            for c in &r.contacts {
                let state = match c.state {
                    ContactState::Active => "active",
                    ContactState::Terminated => "terminated",
                };
                s.push_str(&format!(
                    "    <contact id=\"{}\" state=\"{state}\" event=\"{}\"",
                    escape(c.id.as_str()),
                    c.event.as_str()
                ));
                for (name, v) in [
                    ("expires", c.expires),
                    ("retry-after", c.retry_after),
                    ("duration-registered", c.duration_registered),
                ] {
                    if let Some(v) = v {
                        s.push_str(&format!(" {name}=\"{v}\""));
                    }
                }
                s.push_str(&format!(">\n      <uri>{}</uri>\n", escape(c.uri.as_str())));
                for (n, v) in &c.unknown_params {
                    s.push_str(&format!(
                        "      <unknown-param name=\"{}\">{}</unknown-param>\n",
                        escape(n.as_str()),
                        escape(v.as_str())
                    ));
                }
                s.push_str("    </contact>\n");
            }
            s.push_str("  </registration>\n");
        }
        s.push_str("</reginfo>\n");
        s
    }
}

/// What the registrar says of one binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// Not in the view (no document named it yet).
    Unknown,
    /// Registered.
    Active,
    /// Registered, expiring sooner: re-register within `expires` seconds.
    Shortened {
        /// Seconds left.
        expires: u64,
    },
    /// Removed: register again after `retry_after` seconds.
    Probation {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// Removed: register again now (`deactivated`).
    ReRegister,
    /// Removed for good (`rejected`, `unregistered`, `expired`).
    Gone(ContactEvent),
}

/// Whether a document was taken (§5.2's version rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// In order.
    Applied,
    /// Taken, but versions were skipped: refresh the subscription to get
    /// the full state.
    AppliedWithGap,
    /// Older than what we have: discarded.
    Stale,
}

/// The subscriber's tables (RFC 3680 §5.2): registrations by id, their
/// contacts by id.
#[derive(Clone, Debug, Default)]
pub struct RegView {
    version: Option<u32>,
    tables: BTreeMap<String, (Registration, BTreeMap<String, RegContact>)>,
}

impl RegView {
    /// An empty view.
    pub fn new() -> RegView {
        RegView::default()
    }

    /// Merges `doc` (§5.2): full documents replace every table, partial
    /// ones update rows.
    pub fn apply(&mut self, doc: &Reginfo) -> Applied {
        let outcome = match self.version {
            None => Applied::Applied,
            Some(v) if doc.version <= v => return Applied::Stale,
            Some(v) if doc.version == v.saturating_add(1) => Applied::Applied,
            Some(_) => Applied::AppliedWithGap,
        };
        self.version = Some(doc.version);
        if doc.full {
            self.tables.clear();
        }
        for r in &doc.registrations {
            let entry = self
                .tables
                .entry(r.id.clone())
                .or_insert_with(|| (r.clone(), BTreeMap::new()));
            entry.0.state = r.state;
            entry.0.aor = r.aor.clone();
            for c in &r.contacts {
                entry.1.insert(c.id.clone(), c.clone());
            }
        }
        outcome
    }

    /// The state of the binding of `contact_uri` (compared without its
    /// parameters and case-insensitively in the host part's sense: as
    /// written, up to the first `;`) to `aor`.
    pub fn binding(&self, aor: &str, contact_uri: &str) -> Binding {
        let base = |u: &str| u.split(';').next().unwrap_or(u).trim().to_ascii_lowercase();
        let want = base(contact_uri);
        let Some((_, rows)) = self
            .tables
            .values()
            .find(|(r, _)| base(&r.aor) == base(aor))
        else {
            return Binding::Unknown;
        };
        let Some(c) = rows.values().find(|c| base(&c.uri) == want) else {
            return Binding::Unknown;
        };
        match (c.state, c.event) {
            (ContactState::Active, ContactEvent::Shortened) => Binding::Shortened {
                expires: c.expires.unwrap_or(0),
            },
            (ContactState::Active, _) => Binding::Active,
            (ContactState::Terminated, ContactEvent::Deactivated) => Binding::ReRegister,
            (ContactState::Terminated, ContactEvent::Probation) => Binding::Probation {
                retry_after: c.retry_after.unwrap_or(0),
            },
            (ContactState::Terminated, e) => Binding::Gone(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"<?xml version="1.0"?>
    <reginfo xmlns="urn:ietf:params:xml:ns:reginfo"
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
                 version="0" state="full">
      <registration aor="sip:user@example.com" id="as9"
                    state="active">
        <contact id="76" state="active" event="registered"
                 duration-registered="7322"
                 q="0.8">
                 <uri>sip:user@pc887.example.com</uri>
        </contact>
        <contact id="77" state="terminated" event="expired"
                 duration-registered="3600"
                 q="0.5">
                 <uri>sip:user@university.edu</uri>
        </contact>
      </registration>
    </reginfo>"#;

    #[test]
    fn rfc3680_example() {
        let d = Reginfo::parse(EXAMPLE).unwrap();
        assert_eq!((d.version, d.full), (0, true));
        let r = &d.registrations[0];
        assert_eq!(
            (r.aor.as_str(), r.state),
            ("sip:user@example.com", RegState::Active)
        );
        assert_eq!(r.contacts[1].event, ContactEvent::Expired);
        assert_eq!(r.contacts[0].duration_registered, Some(7322));
        assert_eq!(Reginfo::parse(&d.to_xml()).unwrap(), d);
        let mut v = RegView::new();
        assert_eq!(v.apply(&d), Applied::Applied);
        assert_eq!(
            v.binding("sip:user@example.com", "sip:user@pc887.example.com"),
            Binding::Active
        );
        assert_eq!(
            v.binding("sip:user@example.com", "sip:user@university.edu"),
            Binding::Gone(ContactEvent::Expired)
        );
    }

    fn partial(version: u32, event: ContactEvent, state: ContactState) -> Reginfo {
        Reginfo {
            version,
            full: false,
            registrations: vec![Registration {
                aor: "sip:user@example.com".into(),
                id: "as9".into(),
                state: RegState::Active,
                contacts: vec![RegContact {
                    id: "76".into(),
                    state,
                    event,
                    uri: "sip:user@pc887.example.com".into(),
                    expires: (event == ContactEvent::Shortened).then_some(60),
                    retry_after: (event == ContactEvent::Probation).then_some(300),
                    duration_registered: None,
                    unknown_params: vec![("+sip.instance".into(), "\"<urn:uuid:1>\"".into())],
                }],
            }],
        }
    }

    #[test]
    fn network_initiated_changes_in_version_order() {
        let mut v = RegView::new();
        v.apply(&Reginfo::parse(EXAMPLE).unwrap());
        let aor = "sip:user@example.com";
        let me = "sip:user@pc887.example.com;comp=sigcomp";
        assert_eq!(
            v.apply(&partial(1, ContactEvent::Shortened, ContactState::Active)),
            Applied::Applied
        );
        assert_eq!(v.binding(aor, me), Binding::Shortened { expires: 60 });
        // An old document is discarded.
        assert_eq!(
            v.apply(&partial(
                1,
                ContactEvent::Rejected,
                ContactState::Terminated
            )),
            Applied::Stale
        );
        assert_eq!(v.binding(aor, me), Binding::Shortened { expires: 60 });
        assert_eq!(
            v.apply(&partial(
                3,
                ContactEvent::Deactivated,
                ContactState::Terminated
            )),
            Applied::AppliedWithGap
        );
        assert_eq!(v.binding(aor, me), Binding::ReRegister);
        v.apply(&partial(
            4,
            ContactEvent::Probation,
            ContactState::Terminated,
        ));
        assert_eq!(v.binding(aor, me), Binding::Probation { retry_after: 300 });
        v.apply(&partial(
            5,
            ContactEvent::Rejected,
            ContactState::Terminated,
        ));
        assert_eq!(v.binding(aor, me), Binding::Gone(ContactEvent::Rejected));
        let round = partial(6, ContactEvent::Probation, ContactState::Terminated);
        assert_eq!(Reginfo::parse(&round.to_xml()).unwrap(), round);
    }

    #[test]
    fn invalid_documents_are_refused() {
        for bad in [
            "<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" state=\"full\"/>",
            "<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"0\" state=\"some\"/>",
            "<reginfo xmlns=\"urn:x\" version=\"0\" state=\"full\"/>",
            "<reginfo xmlns=\"urn:ietf:params:xml:ns:reginfo\" version=\"0\" state=\"full\"><registration aor=\"a\" id=\"1\" state=\"active\"><contact id=\"1\" state=\"active\" event=\"shortened\"><uri>sip:a</uri></contact></registration></reginfo>",
            "<!DOCTYPE r><reginfo/>",
            "<reginfo",
        ] {
            assert!(Reginfo::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = Reginfo::parse(&s);
        }
    }
}
