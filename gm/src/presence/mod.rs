//! Presence: PIDF documents (RFC 3863), the publisher's side of PUBLISH
//! (RFC 3903 §4) and the Event State Compositor that answers it (RFC 3903
//! §6), sans-IO.
//!
//! [`Pidf`] is parsed with `quick-xml` (namespace-aware; elements of other
//! namespaces are skipped as extensions unless they carry
//! `mustUnderstand="true"`, RFC 3863 §4.1.4; a DOCTYPE is refused, so no
//! entity can be defined) and written with its escaping. Its output
//! validates against the RFC 3863 §4.4 schema (`gm/tests/pidf_schema.rs`
//! runs `xmllint`).
//!
//! [`Publication`] is one publisher's event state: it says which PUBLISH to
//! send (initial with a body, refresh with `SIP-If-Match` and no body,
//! modify, remove with `Expires: 0`), reads the 2xx's `SIP-ETag` and
//! `Expires`, starts over after a 412 and retries with `Min-Expires` after
//! a 423. [`Compositor`] is the network's ESC: the steps of RFC 3903 §6 for
//! the resources and event packages it serves, a new entity-tag for every
//! successful publication, and the composed state of a resource (every
//! live publication's tuples) for the presence agent's NOTIFY.
//!
//! [`agent`] is the presence agent over the compositor (the notifier);
//! [`ue`] the UE's side: [`ue::Publisher`] builds its PUBLISHes around a
//! [`Publication`], [`ue::Watcher`] its presence subscriptions.
//!
//! ```
//! use gm::presence::{Basic, Pidf, Tuple};
//! let doc = Pidf {
//!     entity: "pres:alice@ims.example.org".into(),
//!     tuples: vec![Tuple::new("t1", Basic::Open).with_contact("sip:alice@192.0.2.1")],
//!     notes: vec![],
//! };
//! let xml = doc.to_xml();
//! assert_eq!(Pidf::parse(&xml).unwrap(), doc);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

pub mod agent;
pub mod ue;

pub use agent::{Agent, Notify, Subscribed, WatchId};

use quick_xml::NsReader;
use quick_xml::events::Event as Xml;
use quick_xml::name::ResolveResult;

use crate::sip::Message;

/// The PIDF namespace.
pub const PIDF_NS: &str = "urn:ietf:params:xml:ns:pidf";
/// The media type of a PIDF document.
pub const PIDF_TYPE: &str = "application/pidf+xml";
/// Documents larger than this are refused (a presence document is small).
pub const MAX_DOCUMENT: usize = 64 * 1024;
const MAX_DEPTH: usize = 32;

/// `<basic>`: open or closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basic {
    /// Reachable.
    Open,
    /// Not reachable.
    Closed,
}

impl Basic {
    /// `open` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Basic::Open => "open",
            Basic::Closed => "closed",
        }
    }
}

/// A `<note>` with its `xml:lang`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The text.
    pub text: String,
    /// `xml:lang`.
    pub lang: Option<String>,
}

/// A `<contact>` URI with its priority (a qvalue, 0 to 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// The URI.
    pub uri: String,
    /// `priority`, as written.
    pub priority: Option<String>,
}

/// A `<tuple>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// `id` (an XML ID).
    pub id: String,
    /// `<status><basic>`, when present.
    pub basic: Option<Basic>,
    /// `<contact>`.
    pub contact: Option<Contact>,
    /// `<note>`s.
    pub notes: Vec<Note>,
    /// `<timestamp>` (an xs:dateTime, as written).
    pub timestamp: Option<String>,
}

impl Tuple {
    /// A tuple with this id and basic status.
    pub fn new(id: &str, basic: Basic) -> Tuple {
        Tuple {
            id: id.to_owned(),
            basic: Some(basic),
            contact: None,
            notes: Vec::new(),
            timestamp: None,
        }
    }

    /// With a contact URI.
    pub fn with_contact(mut self, uri: &str) -> Tuple {
        self.contact = Some(Contact {
            uri: uri.to_owned(),
            priority: None,
        });
        self
    }

    /// With a note.
    pub fn with_note(mut self, text: &str) -> Tuple {
        self.notes.push(Note {
            text: text.to_owned(),
            lang: None,
        });
        self
    }
}

/// A PIDF document (RFC 3863 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pidf {
    /// `entity` (the presentity's URI).
    pub entity: String,
    /// The tuples.
    pub tuples: Vec<Tuple>,
    /// The presence-level notes.
    pub notes: Vec<Note>,
}

/// Why a PIDF document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PidfError {
    /// Not well-formed XML (quick-xml's reason), or not UTF-8.
    Xml(String),
    /// Larger than [`MAX_DOCUMENT`] or nested deeper than 32 elements.
    TooLarge,
    /// A DOCTYPE (refused: no entities, no external references).
    Doctype,
    /// Well-formed but not PIDF: what is wrong.
    Invalid(&'static str),
    /// An extension element marked `mustUnderstand` that we do not
    /// understand (RFC 3863 §4.1.4): the document must be refused.
    MustUnderstand(String),
}

impl fmt::Display for PidfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidfError::Xml(e) => write!(f, "not well-formed XML: {e}"),
            PidfError::TooLarge => f.write_str("document too large or too deep"),
            PidfError::Doctype => f.write_str("a DOCTYPE is not accepted"),
            PidfError::Invalid(what) => write!(f, "not a PIDF document: {what}"),
            PidfError::MustUnderstand(name) => {
                write!(f, "extension <{name}> must be understood and is not")
            }
        }
    }
}

impl std::error::Error for PidfError {}

/// Where the parser is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    Root,
    Presence,
    Tuple,
    Status,
    Basic,
    Contact,
    Note {
        in_tuple: bool,
    },
    Timestamp,
    /// Inside an extension element (skipped).
    Other,
}

fn is_true(v: &str) -> bool {
    matches!(v.trim(), "true" | "1")
}

fn valid_qvalue(q: &str) -> bool {
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    frac.len() <= 3
        && frac.bytes().all(|b| b.is_ascii_digit())
        && match int {
            "0" => true,
            "1" => frac.bytes().all(|b| b == b'0'),
            _ => false,
        }
}

impl Pidf {
    /// Parses a PIDF document.
    pub fn parse(text: &str) -> Result<Pidf, PidfError> {
        if text.len() > MAX_DOCUMENT {
            return Err(PidfError::TooLarge);
        }
        let mut r = NsReader::from_str(text);
        r.config_mut().expand_empty_elements = true;
        r.config_mut().check_end_names = true;
        let xml = |e: quick_xml::Error| PidfError::Xml(e.to_string());
        let mut stack: Vec<At> = Vec::new();
        let mut doc: Option<Pidf> = None;
        let mut tuple: Option<Tuple> = None;
        let mut text_buf = String::new();
        let mut lang: Option<String> = None;
        let mut priority: Option<String> = None;
        loop {
            let (ns, ev) = r.read_resolved_event().map_err(xml)?;
            let in_pidf =
                matches!(&ns, ResolveResult::Bound(n) if n.as_ref() == PIDF_NS.as_bytes());
            match ev {
                Xml::Eof => break,
                Xml::DocType(_) => return Err(PidfError::Doctype),
                Xml::Start(e) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(PidfError::TooLarge);
                    }
                    let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    let mut attrs: Vec<(Option<Vec<u8>>, String, String)> = Vec::new();
                    for a in e.attributes() {
                        let a = a.map_err(|e| PidfError::Xml(e.to_string()))?;
                        let (ans, aname) = r.resolver().resolve_attribute(a.key);
                        let ans = match ans {
                            ResolveResult::Bound(n) => Some(n.as_ref().to_vec()),
                            _ => None,
                        };
                        let v = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map_err(|e| PidfError::Xml(e.to_string()))?
                            .into_owned();
                        attrs.push((ans, String::from_utf8_lossy(aname.as_ref()).into_owned(), v));
                    }
                    let attr = |name: &str| {
                        attrs
                            .iter()
                            .find(|(ns, n, _)| ns.is_none() && n == name)
                            .map(|(_, _, v)| v.clone())
                    };
                    let parent = stack.last().copied().unwrap_or(At::Root);
                    let at = if !in_pidf {
                        if parent == At::Root {
                            return Err(PidfError::Invalid("the root is not <presence>"));
                        }
                        let must = attrs.iter().any(|(ns, n, v)| {
                            n == "mustUnderstand"
                                && ns.as_deref().is_some_and(|ns| ns == PIDF_NS.as_bytes())
                                && is_true(v)
                        });
                        if must {
                            return Err(PidfError::MustUnderstand(local));
                        }
                        At::Other
                    } else {
                        match (parent, local.as_str()) {
                            (At::Root, "presence") => {
                                let entity = attr("entity")
                                    .ok_or(PidfError::Invalid("<presence> has no entity"))?;
                                doc = Some(Pidf {
                                    entity,
                                    tuples: Vec::new(),
                                    notes: Vec::new(),
                                });
                                At::Presence
                            }
                            (At::Presence, "tuple") => {
                                let id =
                                    attr("id").ok_or(PidfError::Invalid("<tuple> has no id"))?;
                                tuple = Some(Tuple {
                                    id,
                                    basic: None,
                                    contact: None,
                                    notes: Vec::new(),
                                    timestamp: None,
                                });
                                At::Tuple
                            }
                            (At::Presence, "note") | (At::Tuple, "note") => {
                                lang = attrs
                                    .iter()
                                    .find(|(ns, n, _)| {
                                        n == "lang"
                                            && ns.as_deref()
                                                == Some(b"http://www.w3.org/XML/1998/namespace")
                                    })
                                    .map(|(_, _, v)| v.clone());
                                At::Note {
                                    in_tuple: parent == At::Tuple,
                                }
                            }
                            (At::Tuple, "status") => At::Status,
                            (At::Status, "basic") => At::Basic,
                            (At::Tuple, "contact") => {
                                priority = attr("priority");
                                if priority.as_deref().is_some_and(|q| !valid_qvalue(q)) {
                                    return Err(PidfError::Invalid(
                                        "a contact priority is not a qvalue",
                                    ));
                                }
                                At::Contact
                            }
                            (At::Tuple, "timestamp") => At::Timestamp,
                            (At::Other, _) => At::Other,
                            _ => return Err(PidfError::Invalid("a PIDF element out of place")),
                        }
                    };
                    text_buf.clear();
                    stack.push(at);
                }
                Xml::End(_) => {
                    let at = stack.pop().ok_or(PidfError::Invalid("unbalanced"))?;
                    let text = std::mem::take(&mut text_buf);
                    match at {
                        At::Basic => {
                            let b = match text.trim() {
                                "open" => Basic::Open,
                                "closed" => Basic::Closed,
                                _ => {
                                    return Err(PidfError::Invalid(
                                        "<basic> is neither open nor closed",
                                    ));
                                }
                            };
                            if let Some(t) = tuple.as_mut() {
                                t.basic = Some(b);
                            }
                        }
                        At::Contact => {
                            if let Some(t) = tuple.as_mut() {
                                t.contact = Some(Contact {
                                    uri: text.trim().to_owned(),
                                    priority: priority.take(),
                                });
                            }
                        }
                        At::Timestamp => {
                            if let Some(t) = tuple.as_mut() {
                                t.timestamp = Some(text.trim().to_owned());
                            }
                        }
                        At::Note { in_tuple } => {
                            let note = Note {
                                text,
                                lang: lang.take(),
                            };
                            match (in_tuple, tuple.as_mut(), doc.as_mut()) {
                                (true, Some(t), _) => t.notes.push(note),
                                (false, _, Some(d)) => d.notes.push(note),
                                _ => {}
                            }
                        }
                        At::Tuple => {
                            let t = tuple.take().ok_or(PidfError::Invalid("unbalanced"))?;
                            if let Some(d) = doc.as_mut() {
                                if d.tuples.iter().any(|x| x.id == t.id) {
                                    return Err(PidfError::Invalid("two tuples have the same id"));
                                }
                                d.tuples.push(t);
                            }
                        }
                        _ => {}
                    }
                }
                Xml::Text(t) => {
                    let s = t.decode().map_err(|e| PidfError::Xml(e.to_string()))?;
                    let inside = stack.last().copied().unwrap_or(At::Root);
                    if matches!(
                        inside,
                        At::Basic | At::Contact | At::Timestamp | At::Note { .. }
                    ) {
                        text_buf.push_str(&s);
                    }
                }
                Xml::CData(c) => {
                    let s = c.decode().map_err(|e| PidfError::Xml(e.to_string()))?;
                    text_buf.push_str(&s);
                }
                Xml::GeneralRef(g) => {
                    let c = match g.resolve_char_ref().map_err(xml)? {
                        Some(c) => c,
                        None => match g.as_ref() {
                            b"amp" => '&',
                            b"lt" => '<',
                            b"gt" => '>',
                            b"quot" => '"',
                            b"apos" => '\'',
                            _ => return Err(PidfError::Invalid("an undefined entity")),
                        },
                    };
                    text_buf.push(c);
                }
                _ => {}
            }
        }
        if !stack.is_empty() {
            return Err(PidfError::Xml("unclosed elements".into()));
        }
        doc.ok_or(PidfError::Invalid("no <presence> element"))
    }

    /// The document as XML (UTF-8, the PIDF namespace as default).
    pub fn to_xml(&self) -> String {
        use quick_xml::escape::escape;
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        s.push_str(&format!(
            "<presence xmlns=\"{PIDF_NS}\" entity=\"{}\">\n",
            escape(self.entity.as_str())
        ));
        let note = |s: &mut String, n: &Note, indent: &str| {
            match &n.lang {
                Some(l) => s.push_str(&format!(
                    "{indent}<note xml:lang=\"{}\">",
                    escape(l.as_str())
                )),
                None => s.push_str(&format!("{indent}<note>")),
            }
            s.push_str(&escape(n.text.as_str()));
            s.push_str("</note>\n");
        };
        for t in &self.tuples {
            s.push_str(&format!(
                "  <tuple id=\"{}\">\n    <status>",
                escape(t.id.as_str())
            ));
            if let Some(b) = t.basic {
                s.push_str(&format!("<basic>{}</basic>", b.as_str()));
            }
            s.push_str("</status>\n");
            if let Some(c) = &t.contact {
                match &c.priority {
                    Some(p) => s.push_str(&format!(
                        "    <contact priority=\"{}\">",
                        escape(p.as_str())
                    )),
                    None => s.push_str("    <contact>"),
                }
                s.push_str(&escape(c.uri.as_str()));
                s.push_str("</contact>\n");
            }
            for n in &t.notes {
                note(&mut s, n, "    ");
            }
            if let Some(ts) = &t.timestamp {
                s.push_str(&format!(
                    "    <timestamp>{}</timestamp>\n",
                    escape(ts.as_str())
                ));
            }
            s.push_str("  </tuple>\n");
        }
        for n in &self.notes {
            note(&mut s, n, "  ");
        }
        s.push_str("</presence>\n");
        s
    }
}

/// What a [`Publication`] asks the caller to put in the next PUBLISH
/// (besides Event, which is the publication's package).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishRequest {
    /// `SIP-If-Match`, for a refresh, modification or removal.
    pub if_match: Option<String>,
    /// `Expires`.
    pub expires: u32,
    /// The body (Content-Type, bytes): absent in a refresh or removal.
    pub body: Option<(String, Vec<u8>)>,
}

/// What a response to a PUBLISH did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    /// Accepted: the state lives until `until` (caller's clock).
    Accepted {
        /// Expiry.
        until: Duration,
    },
    /// Removed (`Expires: 0` accepted).
    Removed,
    /// Send again: the ESC lost our entity-tag (412: an initial PUBLISH
    /// with the whole state) or wants a longer interval (423).
    Retry(PublishRequest),
    /// Refused for good, with its status.
    Failed(u16),
}

/// The publisher's side of one publication (RFC 3903 §4).
#[derive(Clone, Debug)]
pub struct Publication {
    etag: Option<String>,
    body: Option<(String, Vec<u8>)>,
    expires: u32,
    until: Option<Duration>,
    last: Option<PublishRequest>,
}

impl Publication {
    /// A publication of `body` (its content type and bytes), asking for
    /// `expires` seconds.
    pub fn new(content_type: &str, body: Vec<u8>, expires: u32) -> Publication {
        Publication {
            etag: None,
            body: Some((content_type.to_owned(), body)),
            expires,
            until: None,
            last: None,
        }
    }

    /// The current entity-tag (after a 2xx).
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// The first PUBLISH: the whole state, no precondition.
    pub fn initial(&mut self) -> PublishRequest {
        self.remember(PublishRequest {
            if_match: None,
            expires: self.expires,
            body: self.body.clone(),
        })
    }

    /// A refresh: SIP-If-Match, no body. `None` before the first 2xx.
    pub fn refresh(&mut self) -> Option<PublishRequest> {
        let etag = self.etag.clone()?;
        Some(self.remember(PublishRequest {
            if_match: Some(etag),
            expires: self.expires,
            body: None,
        }))
    }

    /// A modification: the new state with SIP-If-Match (an initial PUBLISH
    /// before the first 2xx).
    pub fn modify(&mut self, content_type: &str, body: Vec<u8>) -> PublishRequest {
        self.body = Some((content_type.to_owned(), body));
        match self.etag.clone() {
            Some(etag) => self.remember(PublishRequest {
                if_match: Some(etag),
                expires: self.expires,
                body: self.body.clone(),
            }),
            None => self.initial(),
        }
    }

    /// A removal: SIP-If-Match and Expires 0. `None` before the first 2xx.
    pub fn remove(&mut self) -> Option<PublishRequest> {
        let etag = self.etag.clone()?;
        Some(self.remember(PublishRequest {
            if_match: Some(etag),
            expires: 0,
            body: None,
        }))
    }

    fn remember(&mut self, r: PublishRequest) -> PublishRequest {
        self.last = Some(r.clone());
        r
    }

    /// When to refresh: at most 600 s, and at least half of the granted
    /// interval, before expiry.
    pub fn refresh_at(&self) -> Option<Duration> {
        let until = self.until?;
        let granted = Duration::from_secs(u64::from(self.expires));
        Some(until.saturating_sub((granted / 2).min(Duration::from_secs(600))))
    }

    /// Whether the state granted by the last 2xx has expired at `now`:
    /// the ESC no longer holds it, so its entity-tag is void (RFC 3903
    /// §4.1) and a refresh would only be refused.
    pub fn expired(&self, now: Duration) -> bool {
        self.until.is_some_and(|u| u <= now)
    }

    /// The final response to the last PUBLISH, received at `now`.
    pub fn on_response(&mut self, response: &Message<'_>, now: Duration) -> Published {
        let status = response.status().unwrap_or(0);
        let removal = self.last.as_ref().is_some_and(|l| l.expires == 0);
        match status {
            200..=299 => {
                if removal {
                    self.etag = None;
                    self.until = None;
                    return Published::Removed;
                }
                match response.sip_etag() {
                    Ok(Some(tag)) => self.etag = Some(tag.to_owned()),
                    _ => return Published::Failed(status),
                }
                let granted = response.expires().ok().flatten().unwrap_or(self.expires);
                self.expires = granted;
                let until = now + Duration::from_secs(u64::from(granted));
                self.until = Some(until);
                Published::Accepted { until }
            }
            412 if !removal => {
                self.etag = None;
                Published::Retry(self.initial())
            }
            423 => match response.min_expires().ok().flatten() {
                Some(min) if min > self.expires => {
                    self.expires = min;
                    let mut again = self.last.clone().unwrap_or_else(|| self.initial());
                    again.expires = min;
                    Published::Retry(self.remember(again))
                }
                _ => Published::Failed(status),
            },
            _ => Published::Failed(status),
        }
    }
}

/// The Compositor's answer to a PUBLISH (RFC 3903 §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscReply {
    /// 200, or 400 / 404 / 412 / 415 / 423 / 489.
    pub status: u16,
    /// `SIP-ETag` of a 200 (absent for a removal).
    pub etag: Option<String>,
    /// `Expires` of a 200.
    pub expires: Option<u32>,
    /// `Min-Expires` of a 423.
    pub min_expires: Option<u32>,
}

impl EscReply {
    /// The response to `request` this reply says (RFC 3903 §6: SIP-ETag
    /// and Expires with a 200, Min-Expires with a 423), with `to_tag`.
    pub fn response(
        &self,
        request: &Message<'_>,
        to_tag: &str,
    ) -> Result<Message<'static>, crate::sip::Error> {
        let mut b = crate::sip::Builder::response_to(request, self.status, None).to_tag(to_tag);
        if let Some(t) = &self.etag {
            b = b.header("SIP-ETag", t);
        }
        if let Some(e) = self.expires {
            b = b.header("Expires", e);
        }
        if let Some(m) = self.min_expires {
            b = b.header("Min-Expires", m);
        }
        if self.status == 489 {
            b = b.header("Allow-Events", "presence");
        }
        b.build()
    }

    fn error(status: u16) -> EscReply {
        EscReply {
            status,
            etag: None,
            expires: None,
            min_expires: None,
        }
    }
}

#[derive(Clone, Debug)]
struct Stored {
    resource: String,
    doc: Pidf,
    until: Duration,
}

/// The Event State Compositor for the `presence` package (RFC 3903 §6):
/// the resources it serves, each live publication by entity-tag.
#[derive(Clone, Debug)]
pub struct Compositor {
    resources: Vec<String>,
    default_expires: u32,
    min_expires: u32,
    max_expires: u32,
    state: HashMap<String, Stored>,
    next_tag: u64,
}

impl Compositor {
    /// An ESC for these resource URIs (compared as written, after the
    /// scheme: `sip:alice@example.org` and `pres:alice@example.org` are the
    /// same resource), with default, minimum and maximum intervals.
    pub fn new(
        resources: &[&str],
        default_expires: u32,
        min_expires: u32,
        max_expires: u32,
    ) -> Self {
        Compositor {
            resources: resources.iter().map(|r| resource_key(r)).collect(),
            default_expires,
            min_expires,
            max_expires,
            state: HashMap::new(),
            next_tag: 1,
        }
    }

    /// Processes a PUBLISH at `now` (steps 1 to 6 of RFC 3903 §6); the
    /// reply says what to answer. Atomic: a refused PUBLISH changes
    /// nothing.
    pub fn publish(&mut self, request: &Message<'_>, now: Duration) -> EscReply {
        self.expire(now);
        let Some(ruri) = request.request_uri() else {
            return EscReply::error(400);
        };
        let resource = resource_key(&ruri.to_string());
        if !self.resources.contains(&resource) {
            return EscReply::error(404);
        }
        match request.event() {
            Ok(Some(e)) if e.package().eq_ignore_ascii_case("presence") => {}
            _ => return EscReply::error(489),
        }
        let if_match: Vec<&str> = request
            .rows(crate::sip::HeaderName::SipIfMatch)
            .map(|h| h.value().trim())
            .collect();
        let existing = match if_match.as_slice() {
            [] => None,
            [tag] => match self.state.get(*tag) {
                Some(s) if s.resource == resource => Some((*tag).to_owned()),
                _ => return EscReply::error(412),
            },
            _ => return EscReply::error(400),
        };
        let requested = match request.expires() {
            Ok(e) => e.unwrap_or(self.default_expires),
            Err(_) => return EscReply::error(400),
        };
        if requested > 0 && requested < self.min_expires {
            return EscReply {
                min_expires: Some(self.min_expires),
                ..EscReply::error(423)
            };
        }
        let expires = requested.min(self.max_expires);
        let body = request.body();
        let doc = if body.is_empty() {
            None
        } else {
            match request.content_type() {
                Ok(Some(t)) if t.to_string().to_ascii_lowercase().starts_with(PIDF_TYPE) => {}
                _ => return EscReply::error(415),
            }
            let Ok(text) = std::str::from_utf8(body) else {
                return EscReply::error(400);
            };
            match Pidf::parse(text) {
                Ok(d) => Some(d),
                Err(_) => return EscReply::error(400),
            }
        };
        if existing.is_none() && doc.is_none() {
            return EscReply::error(400);
        }
        if expires == 0 {
            if let Some(tag) = existing {
                self.state.remove(&tag);
            }
            return EscReply {
                status: 200,
                expires: Some(0),
                ..EscReply::error(200)
            };
        }
        let doc = match (doc, existing.as_ref().and_then(|t| self.state.get(t))) {
            (Some(d), _) => d,
            (None, Some(s)) => s.doc.clone(),
            (None, None) => return EscReply::error(412),
        };
        if let Some(tag) = existing {
            self.state.remove(&tag);
        }
        let tag = format!("e{:x}", self.next_tag);
        self.next_tag += 1;
        self.state.insert(
            tag.clone(),
            Stored {
                resource,
                doc,
                until: now + Duration::from_secs(u64::from(expires)),
            },
        );
        EscReply {
            status: 200,
            etag: Some(tag),
            expires: Some(expires),
            min_expires: None,
        }
    }

    /// Whether `resource` is one of ours.
    pub fn serves(&self, resource: &str) -> bool {
        self.resources.contains(&resource_key(resource))
    }

    /// Drops publications past their expiry.
    pub fn expire(&mut self, now: Duration) {
        self.state.retain(|_, s| s.until > now);
    }

    /// The composed state of `resource` at `now`: every live publication's
    /// tuples (and notes) in one document, for a NOTIFY; `None` when
    /// nothing is published.
    pub fn composed(&mut self, resource: &str, now: Duration) -> Option<Pidf> {
        self.expire(now);
        let key = resource_key(resource);
        let mut tags: Vec<&String> = self
            .state
            .iter()
            .filter(|(_, s)| s.resource == key)
            .map(|(t, _)| t)
            .collect();
        tags.sort();
        let mut out: Option<Pidf> = None;
        for t in tags {
            let Some(s) = self.state.get(t) else { continue };
            let d = out.get_or_insert_with(|| Pidf {
                entity: s.doc.entity.clone(),
                tuples: Vec::new(),
                notes: Vec::new(),
            });
            for tuple in &s.doc.tuples {
                if !d.tuples.iter().any(|x| x.id == tuple.id) {
                    d.tuples.push(tuple.clone());
                }
            }
            d.notes.extend(s.doc.notes.iter().cloned());
        }
        out
    }
}

fn resource_key(uri: &str) -> String {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    rest.split([';', '?'])
        .next()
        .unwrap_or(rest)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Builder;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn rfc3863_example_parses() {
        // RFC 3863 §4.2's example, with an extension element.
        let text = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:im="urn:ietf:params:xml:ns:pidf:im"
    xmlns:myex="http://id.example.com/presence/"
    entity="pres:someone@example.com">
  <tuple id="bs35r9">
    <status>
      <basic>open</basic>
      <im:im>busy</im:im>
      <myex:location>home</myex:location>
    </status>
    <contact priority="0.8">im:someone@mobilecarrier.net</contact>
    <note xml:lang="en">Don't Disturb Please!</note>
    <note xml:lang="fr">Ne derangez pas, s'il vous plait</note>
    <timestamp>2001-10-27T16:49:29Z</timestamp>
  </tuple>
  <tuple id="eg92n8">
    <status>
      <basic>open</basic>
    </status>
    <contact priority="1.0">mailto:someone@example.com</contact>
  </tuple>
  <note>I'll be in Tokyo next week</note>
</presence>"#;
        let d = Pidf::parse(text).unwrap();
        assert_eq!(d.entity, "pres:someone@example.com");
        assert_eq!(d.tuples.len(), 2);
        let t = &d.tuples[0];
        assert_eq!(t.basic, Some(Basic::Open));
        assert_eq!(t.contact.as_ref().unwrap().priority.as_deref(), Some("0.8"));
        assert_eq!(t.notes[1].lang.as_deref(), Some("fr"));
        assert_eq!(t.timestamp.as_deref(), Some("2001-10-27T16:49:29Z"));
        assert_eq!(d.notes[0].text, "I'll be in Tokyo next week");
        assert_eq!(Pidf::parse(&d.to_xml()).unwrap(), d);
    }

    #[test]
    fn hostile_documents_are_refused() {
        let doctype = "<!DOCTYPE x [<!ENTITY a \"b\">]><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\"/>";
        assert_eq!(Pidf::parse(doctype), Err(PidfError::Doctype));
        let deep = format!(
            "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\">{}",
            "<a xmlns=\"urn:x\">".repeat(100)
        );
        assert_eq!(Pidf::parse(&deep), Err(PidfError::TooLarge));
        let must = "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:p=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\"><tuple id=\"a\"><status/><e:x xmlns:e=\"urn:e\" p:mustUnderstand=\"true\"/></tuple></presence>";
        assert_eq!(
            Pidf::parse(must),
            Err(PidfError::MustUnderstand("x".into()))
        );
        assert!(matches!(Pidf::parse("<presence"), Err(PidfError::Xml(_))));
        assert!(matches!(
            Pidf::parse("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"/>"),
            Err(PidfError::Invalid(_))
        ));
        assert!(matches!(
            Pidf::parse(
                "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"x\"><tuple id=\"a\"><status><basic>maybe</basic></status></tuple></presence>"
            ),
            Err(PidfError::Invalid(_))
        ));
    }

    #[test]
    fn text_is_escaped_and_read_back() {
        let d = Pidf {
            entity: "pres:a&b@example.org".into(),
            tuples: vec![Tuple::new("t\"1", Basic::Closed).with_note("<gone> & \"back\" 'soon' é")],
            notes: vec![],
        };
        assert_eq!(Pidf::parse(&d.to_xml()).unwrap(), d);
    }

    fn publish(if_match: Option<&str>, expires: u32, body: Option<&Pidf>) -> Message<'static> {
        let mut b = Message::request(crate::sip::Method::Publish, "sip:alice@ims.example.org")
            .header("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKp")
            .header("From", "<sip:alice@ims.example.org>;tag=1")
            .header("To", "<sip:alice@ims.example.org>")
            .header("Call-ID", "p1")
            .header("CSeq", "1 PUBLISH")
            .header("Event", "presence")
            .header("Expires", expires);
        if let Some(t) = if_match {
            b = b.header("SIP-If-Match", t);
        }
        if let Some(d) = body {
            b = b.body(PIDF_TYPE, d.to_xml());
        }
        b.build().unwrap()
    }

    fn reply(req: &Message<'_>, r: &EscReply) -> Message<'static> {
        r.response(req, "esc").unwrap()
    }

    #[test]
    fn publish_refresh_modify_remove_against_the_compositor() {
        let mut esc = Compositor::new(&["sip:alice@ims.example.org"], 3600, 60, 7200);
        let doc = Pidf {
            entity: "sip:alice@ims.example.org".into(),
            tuples: vec![Tuple::new("ue", Basic::Open)],
            notes: vec![],
        };
        let mut p = Publication::new(PIDF_TYPE, doc.to_xml().into_bytes(), 3600);
        let send = |esc: &mut Compositor, r: &PublishRequest, now| {
            let body = r
                .body
                .as_ref()
                .map(|(_, b)| Pidf::parse(std::str::from_utf8(b).unwrap()).unwrap());
            let req = publish(r.if_match.as_deref(), r.expires, body.as_ref());
            let answer = esc.publish(&req, now);
            reply(&req, &answer)
        };
        let r = p.initial();
        let resp = send(&mut esc, &r, S(0));
        assert_eq!(
            p.on_response(&resp, S(0)),
            Published::Accepted { until: S(3600) }
        );
        let first = p.etag().unwrap().to_owned();
        assert_eq!(
            esc.composed("pres:alice@ims.example.org", S(1)).unwrap(),
            doc
        );
        assert_eq!(p.refresh_at(), Some(S(3000)));
        // Refresh: no body, new entity-tag, state kept.
        let r = p.refresh().unwrap();
        assert!(r.body.is_none());
        let resp = send(&mut esc, &r, S(3000));
        assert!(matches!(
            p.on_response(&resp, S(3000)),
            Published::Accepted { .. }
        ));
        assert_ne!(p.etag().unwrap(), first);
        assert_eq!(
            esc.composed("sip:alice@ims.example.org", S(3001)).unwrap(),
            doc
        );
        // The old entity-tag is gone: 412.
        let stale = publish(Some(&first), 3600, None);
        assert_eq!(esc.publish(&stale, S(3002)).status, 412);
        // Modify.
        let closed = Pidf {
            tuples: vec![Tuple::new("ue", Basic::Closed)],
            ..doc.clone()
        };
        let r = p.modify(PIDF_TYPE, closed.to_xml().into_bytes());
        let resp = send(&mut esc, &r, S(3100));
        assert!(matches!(
            p.on_response(&resp, S(3100)),
            Published::Accepted { .. }
        ));
        assert_eq!(
            esc.composed("sip:alice@ims.example.org", S(3101)).unwrap(),
            closed
        );
        // Remove.
        let r = p.remove().unwrap();
        let resp = send(&mut esc, &r, S(3200));
        assert_eq!(p.on_response(&resp, S(3200)), Published::Removed);
        assert_eq!(esc.composed("sip:alice@ims.example.org", S(3201)), None);
    }

    #[test]
    fn the_compositor_refuses_what_rfc3903_says() {
        let mut esc = Compositor::new(&["sip:alice@ims.example.org"], 3600, 60, 7200);
        let doc = Pidf {
            entity: "sip:alice@ims.example.org".into(),
            tuples: vec![],
            notes: vec![],
        };
        let mut other = publish(None, 3600, Some(&doc));
        other.set_header("Event", "dialog").unwrap();
        assert_eq!(esc.publish(&other, S(0)).status, 489);
        assert_eq!(esc.publish(&publish(None, 3600, None), S(0)).status, 400);
        let brief = esc.publish(&publish(None, 10, Some(&doc)), S(0));
        assert_eq!((brief.status, brief.min_expires), (423, Some(60)));
        let long = esc.publish(&publish(None, 100_000, Some(&doc)), S(0));
        assert_eq!((long.status, long.expires), (200, Some(7200)));
        let mut two = publish(Some("a"), 3600, None);
        two.push_header("SIP-If-Match", "b").unwrap();
        assert_eq!(esc.publish(&two, S(0)).status, 400);
        let mut bad = publish(None, 3600, Some(&doc));
        bad.set_body(Some(PIDF_TYPE), b"<presence".to_vec())
            .unwrap();
        assert_eq!(esc.publish(&bad, S(0)).status, 400);
        let mut nobody = publish(None, 3600, Some(&doc));
        nobody.set_header("Content-Type", "text/plain").unwrap();
        assert_eq!(esc.publish(&nobody, S(0)).status, 415);
        // Expiry drops it.
        assert!(esc.composed("sip:alice@ims.example.org", S(7199)).is_some());
        assert!(esc.composed("sip:alice@ims.example.org", S(7200)).is_none());
    }

    #[test]
    fn a_412_starts_over_and_a_423_asks_again() {
        let mut p = Publication::new(PIDF_TYPE, b"x".to_vec(), 30);
        let r = p.initial();
        let req = publish(None, r.expires, None);
        let too_brief = Builder::response_to(&req, 423, None)
            .header("Min-Expires", 60)
            .build()
            .unwrap();
        match p.on_response(&too_brief, S(0)) {
            Published::Retry(again) => {
                assert_eq!(again.expires, 60);
                assert!(again.body.is_some());
            }
            other => panic!("{other:?}"),
        }
        let ok = Builder::response_to(&req, 200, None)
            .header("SIP-ETag", "x1")
            .header("Expires", 60)
            .build()
            .unwrap();
        p.on_response(&ok, S(1));
        p.refresh().unwrap();
        let lost = Builder::response_to(&req, 412, None).build().unwrap();
        match p.on_response(&lost, S(2)) {
            Published::Retry(again) => {
                assert_eq!(again.if_match, None);
                assert_eq!(again.body.as_ref().unwrap().1, b"x");
            }
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = Pidf::parse(&s);
        }

        #[test]
        fn mutated_documents_never_panic(cut in 0usize..400, insert in "[<>&;\"'a-z:=/ ]{0,8}") {
            let xml = Pidf {
                entity: "pres:a@example.org".into(),
                tuples: vec![Tuple::new("t", Basic::Open).with_contact("sip:a@example.org").with_note("n")],
                notes: vec![],
            }
            .to_xml();
            let at = cut.min(xml.len());
            if xml.is_char_boundary(at) {
                let mutated = format!("{}{insert}{}", &xml[..at], &xml[at..]);
                let _ = Pidf::parse(&mutated);
            }
        }
    }
}
