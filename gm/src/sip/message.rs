//! The message: framing (RFC 3261 §7, §18.3), the start line, header rows
//! kept as written, the body; typed accessors; emission.

use std::borrow::Cow;
use std::fmt;

use memchr::{memchr2, memmem};

use super::error::{Error, Syntax};
use super::header::{
    self, Auth, CSeq, Contacts, Event, MediaType, NameAddr, SecMechanism, SubscriptionState, Via,
};
use super::lex;
use super::method::Method;
use super::name::HeaderName;
use super::uri::Uri;

/// A SIP request or response.
///
/// A parsed message borrows the bytes it came from (`Message<'a>`): the
/// start line, each header row and the body are slices of the input, and
/// typed values are parsed from those slices when asked for. A built or
/// edited header owns its text; [`Message::into_owned`] makes a
/// `Message<'static>`.
///
/// [`Message::emit`] writes an unmodified parsed message back byte for
/// byte, except for what RFC 3261 says to drop: CRLFs before the start line
/// (§7.5) and octets after the body of a datagram (§18.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    start: StartLine<'a>,
    headers: Vec<Header<'a>>,
    body: Cow<'a, [u8]>,
}

/// The first line: a Request-Line or a Status-Line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `Method SP Request-URI SP SIP-Version`.
    Request {
        /// The method token.
        method: Cow<'a, str>,
        /// The Request-URI (checked to be a URI without SIP headers).
        uri: Cow<'a, str>,
        /// The SIP-Version as written (`SIP/2.0`).
        version: Cow<'a, str>,
    },
    /// `SIP-Version SP Status-Code SP Reason-Phrase`.
    Response {
        /// The SIP-Version as written.
        version: Cow<'a, str>,
        /// The status code, 100 to 699.
        status: u16,
        /// The reason phrase (may be empty).
        reason: Cow<'a, str>,
    },
}

/// One header row: a name and a value, which folded lines may spread over
/// several lines of the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    name: Cow<'a, str>,
    kind: HeaderName,
    value: Cow<'a, str>,
    /// The row as received (name to final CRLF), while unmodified.
    raw: Option<Cow<'a, str>>,
    /// Whether the value is known to match its header's grammar (as
    /// [`check_value`] parses it): a typed read of the row succeeded, or
    /// the row was checked when built. A response copies its request's
    /// Via, From, To, Call-ID and CSeq rows; those the UAS already read
    /// are not parsed again ([`crate::sip::Builder::response_to`]).
    checked: Checked,
}

/// A memo beside a value, not part of it: rows compare equal whatever
/// their memos. Atomic, so that a message stays `Sync` (a `Cell` would
/// not); the memo records a fact about an unchanging value, so relaxed
/// ordering suffices.
#[derive(Debug, Default)]
struct Checked(std::sync::atomic::AtomicBool);

impl Clone for Checked {
    fn clone(&self) -> Checked {
        Checked(std::sync::atomic::AtomicBool::new(self.get()))
    }
}

impl Checked {
    fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl PartialEq for Checked {
    fn eq(&self, _: &Checked) -> bool {
        true
    }
}

impl Eq for Checked {}

impl<'a> Header<'a> {
    /// The name as written (`v`, `VIA`, `Via`...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The header this name denotes.
    pub fn kind(&self) -> HeaderName {
        self.kind
    }

    /// The value without the whitespace around it; folds inside it are
    /// kept (`CRLF 1*WSP`), and count as one SP for every typed parser.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The row exactly as received (with its final CRLF), if it was parsed
    /// and not modified.
    pub fn raw(&self) -> Option<&str> {
        self.raw.as_deref()
    }

    fn into_owned(self) -> Header<'static> {
        Header {
            name: Cow::Owned(self.name.into_owned()),
            kind: self.kind,
            value: Cow::Owned(self.value.into_owned()),
            raw: self.raw.map(|r| Cow::Owned(r.into_owned())),
            checked: self.checked,
        }
    }

    /// Whether the value is known to match its header's grammar.
    pub(crate) fn is_checked(&self) -> bool {
        self.checked.get()
    }

    /// Notes that the value matches its header's grammar, as
    /// [`check_value`] parses it.
    pub(crate) fn mark_checked(&self) {
        self.checked
            .0
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How messages are delimited on a transport (RFC 3261 §18.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// One message per datagram (UDP): without Content-Length the body is
    /// the rest of the datagram; octets after the body are ignored.
    Datagram,
    /// A byte stream (TCP, TLS): Content-Length is mandatory.
    Stream,
}

impl<'a> Message<'a> {
    /// Parses one datagram (see [`Message::parse_datagram`]).
    pub fn parse(datagram: &'a [u8]) -> Result<Message<'a>, Error> {
        Message::parse_datagram(datagram).map(|(m, _)| m)
    }

    /// Parses one datagram: the message and the offset where it ends (the
    /// rest, if any, is the junk RFC 3261 §18.3 says to discard).
    pub fn parse_datagram(datagram: &'a [u8]) -> Result<(Message<'a>, usize), Error> {
        match frame(datagram, Framing::Datagram, usize::MAX)? {
            Some(x) => Ok(x),
            None => Err(Error::NoHeaderEnd),
        }
    }

    /// Parses the first message of a stream buffer: `Ok(None)` while more
    /// bytes are needed, otherwise the message and how many bytes it used
    /// (CRLFs before it included). A message that is or would be longer
    /// than `limit` bytes fails with [`Error::TooLarge`].
    pub fn parse_stream(
        buf: &'a [u8],
        limit: usize,
    ) -> Result<Option<(Message<'a>, usize)>, Error> {
        frame(buf, Framing::Stream, limit)
    }

    // ----------------------------------------------------------- start line

    /// The start line.
    pub fn start_line(&self) -> &StartLine<'a> {
        &self.start
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// A request's method.
    pub fn method(&self) -> Option<Method<'_>> {
        match &self.start {
            StartLine::Request { method, .. } => Some(Method::from_token(method)),
            StartLine::Response { .. } => None,
        }
    }

    /// A request's Request-URI.
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        match &self.start {
            // Checked when the message was parsed or built.
            StartLine::Request { uri, .. } => Uri::parse(uri).ok(),
            StartLine::Response { .. } => None,
        }
    }

    /// A response's status code.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    /// A response's reason phrase.
    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }

    /// The SIP-Version as written.
    pub fn version(&self) -> &str {
        match &self.start {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => version,
        }
    }

    // -------------------------------------------------------------- headers

    /// Every header row in order.
    pub fn headers(&self) -> &[Header<'a>] {
        &self.headers
    }

    /// The rows of one header.
    pub fn rows(&self, kind: HeaderName) -> impl Iterator<Item = &Header<'a>> {
        self.headers.iter().filter(move |h| h.kind == kind)
    }

    /// The value of the first row called `name` (any case; a known header
    /// by its long or compact name).
    pub fn header(&self, name: &str) -> Option<&str> {
        let kind = HeaderName::from_name(name);
        self.headers
            .iter()
            .find(|h| same_name(h, kind, name))
            .map(Header::value)
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The value of the one row of `kind`, if any (a second row is an
    /// error: RFC 3261 §7.3.1 allows several only for list headers).
    pub fn single(&self, kind: HeaderName) -> Result<Option<&str>, Error> {
        Ok(self.single_row(kind)?.map(Header::value))
    }

    /// As [`Message::single`], the row.
    fn single_row(&self, kind: HeaderName) -> Result<Option<&Header<'a>>, Error> {
        let mut rows = self.rows(kind);
        let first = rows.next();
        let more = rows.count();
        if more > 0 {
            return Err(Error::Duplicate {
                name: kind,
                count: more + 1,
            });
        }
        Ok(first)
    }

    fn typed<'m, T>(
        &'m self,
        kind: HeaderName,
        f: impl FnOnce(&'m str) -> Result<T, Syntax>,
    ) -> Result<Option<T>, Error> {
        match self.single(kind)? {
            None => Ok(None),
            Some(v) => f(v)
                .map(Some)
                .map_err(|syntax| Error::Header { name: kind, syntax }),
        }
    }

    fn list<'m, T>(
        &'m self,
        kind: HeaderName,
        f: impl Fn(&'m str) -> Result<Vec<T>, Syntax>,
    ) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        for h in self.rows(kind) {
            out.extend(f(&h.value).map_err(|syntax| Error::Header { name: kind, syntax })?);
        }
        Ok(out)
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> Result<Vec<Via<'_>>, Error> {
        let mut out = Vec::new();
        for h in self.rows(HeaderName::Via) {
            out.extend(Via::parse_list(&h.value).map_err(|syntax| Error::Header {
                name: HeaderName::Via,
                syntax,
            })?);
            // check_value's grammar for Via.
            h.mark_checked();
        }
        Ok(out)
    }

    /// The topmost Via value (the first of the first row), without parsing
    /// the others.
    pub fn top_via(&self) -> Result<Via<'_>, Error> {
        let h = self
            .rows(HeaderName::Via)
            .next()
            .ok_or(Error::Missing(HeaderName::Via))?;
        Via::parse_first(&h.value).map_err(|syntax| Error::Header {
            name: HeaderName::Via,
            syntax,
        })
    }

    /// From.
    pub fn from(&self) -> Result<NameAddr<'_>, Error> {
        self.required_checked(HeaderName::From, NameAddr::parse)
    }

    /// To.
    pub fn to(&self) -> Result<NameAddr<'_>, Error> {
        self.required_checked(HeaderName::To, NameAddr::parse)
    }

    /// Call-ID.
    pub fn call_id(&self) -> Result<&str, Error> {
        self.required_checked(HeaderName::CallId, header::call_id)
    }

    /// CSeq.
    pub fn cseq(&self) -> Result<CSeq<'_>, Error> {
        self.required_checked(HeaderName::CSeq, CSeq::parse)
    }

    /// As [`Message::required`] with `f` the grammar [`check_value`]
    /// parses `kind` with: the row is noted checked when it parses.
    fn required_checked<'m, T>(
        &'m self,
        kind: HeaderName,
        f: impl FnOnce(&'m str) -> Result<T, Syntax>,
    ) -> Result<T, Error> {
        let h = self.single_row(kind)?.ok_or(Error::Missing(kind))?;
        let v = f(&h.value).map_err(|syntax| Error::Header { name: kind, syntax })?;
        h.mark_checked();
        Ok(v)
    }

    /// Max-Forwards (0 to 255).
    pub fn max_forwards(&self) -> Result<Option<u8>, Error> {
        self.typed(HeaderName::MaxForwards, |v| {
            header::number(v, 255).map(|n| u8::try_from(n).unwrap_or(u8::MAX))
        })
    }

    /// Expires, in seconds.
    pub fn expires(&self) -> Result<Option<u32>, Error> {
        self.typed(HeaderName::Expires, header::expires)
    }

    /// Min-Expires, in seconds.
    pub fn min_expires(&self) -> Result<Option<u32>, Error> {
        self.typed(HeaderName::MinExpires, header::expires)
    }

    /// Contact: `None` without a Contact row.
    pub fn contacts(&self) -> Result<Option<Contacts<'_>>, Error> {
        let mut out: Option<Contacts<'_>> = None;
        for h in self.rows(HeaderName::Contact) {
            let c = Contacts::parse(&h.value).map_err(|syntax| Error::Header {
                name: HeaderName::Contact,
                syntax,
            })?;
            out = Some(match (out, c) {
                (None, c) => c,
                (Some(Contacts::List(mut a)), Contacts::List(b)) => {
                    a.extend(b);
                    Contacts::List(a)
                }
                // RFC 3261 §10.2.2: "*" stands alone.
                _ => {
                    return Err(Error::Header {
                        name: HeaderName::Contact,
                        syntax: Syntax {
                            what: "'*' with other Contact values",
                            at: 0,
                        },
                    });
                }
            });
        }
        Ok(out)
    }

    /// Route values, in order.
    pub fn routes(&self) -> Result<Vec<NameAddr<'_>>, Error> {
        self.list(HeaderName::Route, NameAddr::parse_route_list)
    }

    /// Record-Route values, in order.
    pub fn record_routes(&self) -> Result<Vec<NameAddr<'_>>, Error> {
        self.list(HeaderName::RecordRoute, NameAddr::parse_route_list)
    }

    /// Service-Route values (RFC 3608), in order.
    pub fn service_routes(&self) -> Result<Vec<NameAddr<'_>>, Error> {
        self.list(HeaderName::ServiceRoute, NameAddr::parse_route_list)
    }

    /// Path values (RFC 3327), in order.
    pub fn paths(&self) -> Result<Vec<NameAddr<'_>>, Error> {
        self.list(HeaderName::Path, NameAddr::parse_route_list)
    }

    /// P-Associated-URI values (RFC 3455 §4.1).
    pub fn p_associated_uris(&self) -> Result<Vec<NameAddr<'_>>, Error> {
        self.list(HeaderName::PAssociatedUri, NameAddr::parse_route_list)
    }

    /// P-Preferred-Identity values (RFC 3325 §9.2).
    pub fn p_preferred_identities(&self) -> Result<Vec<NameAddr<'_>>, Error> {
        self.list(
            HeaderName::PPreferredIdentity,
            NameAddr::parse_identity_list,
        )
    }

    /// P-Asserted-Identity values (RFC 3325 §9.1).
    pub fn p_asserted_identities(&self) -> Result<Vec<NameAddr<'_>>, Error> {
        self.list(HeaderName::PAssertedIdentity, NameAddr::parse_identity_list)
    }

    /// Challenges or credentials of `kind` (WWW-Authenticate,
    /// Proxy-Authenticate, Authorization, Proxy-Authorization), one per
    /// row.
    pub fn auth(&self, kind: HeaderName) -> Result<Vec<Auth<'_>>, Error> {
        self.list(kind, |v| Auth::parse(v).map(|a| vec![a]))
    }

    /// WWW-Authenticate challenges.
    pub fn www_authenticate(&self) -> Result<Vec<Auth<'_>>, Error> {
        self.auth(HeaderName::WwwAuthenticate)
    }

    /// Authorization credentials.
    pub fn authorization(&self) -> Result<Vec<Auth<'_>>, Error> {
        self.auth(HeaderName::Authorization)
    }

    /// Security mechanisms of `kind` (Security-Client, Security-Server or
    /// Security-Verify), in order.
    pub fn security(&self, kind: HeaderName) -> Result<Vec<SecMechanism<'_>>, Error> {
        self.list(kind, SecMechanism::parse_list)
    }

    /// Event (RFC 6665).
    pub fn event(&self) -> Result<Option<Event<'_>>, Error> {
        self.typed(HeaderName::Event, Event::parse)
    }

    /// Subscription-State (RFC 6665).
    pub fn subscription_state(&self) -> Result<Option<SubscriptionState<'_>>, Error> {
        self.typed(HeaderName::SubscriptionState, SubscriptionState::parse)
    }

    /// SIP-ETag (RFC 3903).
    pub fn sip_etag(&self) -> Result<Option<&str>, Error> {
        self.typed(HeaderName::SipEtag, header::single_token)
    }

    /// SIP-If-Match (RFC 3903).
    pub fn sip_if_match(&self) -> Result<Option<&str>, Error> {
        self.typed(HeaderName::SipIfMatch, header::single_token)
    }

    /// Content-Type.
    pub fn content_type(&self) -> Result<Option<MediaType<'_>>, Error> {
        self.typed(HeaderName::ContentType, MediaType::parse)
    }

    /// The Content-Type as text (type, subtype and parameters), empty
    /// without one or when it does not parse: what a body's handler (the
    /// SMS procedures) is given.
    pub fn content_type_text(&self) -> String {
        self.content_type()
            .ok()
            .flatten()
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    /// Content-Length, if present (checked when the message was parsed).
    pub fn content_length(&self) -> Option<usize> {
        self.rows(HeaderName::ContentLength)
            .next()
            .and_then(|h| lex::digits_u64(lex::trim_lws(&h.value)))
            .and_then(|n| usize::try_from(n).ok())
    }

    /// Accept media ranges: `None` without an Accept row.
    pub fn accept(&self) -> Result<Option<Vec<MediaType<'_>>>, Error> {
        if self.rows(HeaderName::Accept).next().is_none() {
            return Ok(None);
        }
        self.list(HeaderName::Accept, MediaType::parse_accept)
            .map(Some)
    }

    /// Option-tags of Require, Proxy-Require, Supported or Unsupported.
    pub fn option_tags(&self, kind: HeaderName) -> Result<Vec<&str>, Error> {
        let empty_ok = kind == HeaderName::Supported;
        self.list(kind, |v| header::option_tags(v, empty_ok))
    }

    /// Parses every row of every header this codec types, in order, and
    /// fails on the first that does not match its grammar (or a header
    /// allowed once that appears more often, for the single-valued typed
    /// headers whose duplicates make a value ambiguous: Content-Type,
    /// Event, Subscription-State, SIP-ETag, SIP-If-Match, Expires).
    /// From, To, Call-ID, CSeq and Max-Forwards duplicates are left to
    /// [`crate::sip::check`], which answers them (RFC 4475 §3.3.8).
    pub fn validate(&self) -> Result<(), Error> {
        for h in &self.headers {
            check_value(h.kind, &h.value).map_err(|syntax| Error::Header {
                name: h.kind,
                syntax,
            })?;
            h.mark_checked();
        }
        self.check_singles()
    }

    /// The single-valued typed headers whose duplicates make a value
    /// ambiguous appear at most once (the second half of
    /// [`Message::validate`]; no value is parsed).
    pub(crate) fn check_singles(&self) -> Result<(), Error> {
        use HeaderName as H;
        for kind in [
            H::ContentType,
            H::Event,
            H::SubscriptionState,
            H::SipEtag,
            H::SipIfMatch,
            H::Expires,
        ] {
            self.single(kind)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------- editing

    /// Appends a header row. The name must be a token and the value must
    /// not hold a line break (folds are never written, RFC 3261 §7.3.1).
    pub fn push_header(
        &mut self,
        name: impl Into<Cow<'a, str>>,
        value: impl Into<Cow<'a, str>>,
    ) -> Result<(), Error> {
        let h = new_header(name.into(), value.into())?;
        self.headers.push(h);
        Ok(())
    }

    /// Inserts a header row before row `index` (at the end if beyond).
    pub fn insert_header(
        &mut self,
        index: usize,
        name: impl Into<Cow<'a, str>>,
        value: impl Into<Cow<'a, str>>,
    ) -> Result<(), Error> {
        let h = new_header(name.into(), value.into())?;
        let i = index.min(self.headers.len());
        self.headers.insert(i, h);
        Ok(())
    }

    /// Sets header `name` to one row holding `value`: the first row of
    /// that name is replaced in place, the others removed; appended if
    /// there was none.
    pub fn set_header(
        &mut self,
        name: impl Into<Cow<'a, str>>,
        value: impl Into<Cow<'a, str>>,
    ) -> Result<(), Error> {
        let h = new_header(name.into(), value.into())?;
        let pos = self
            .headers
            .iter()
            .position(|x| same_name(x, h.kind, &h.name));
        match pos {
            Some(i) => {
                // Row `i` is the first of that name: removing the later
                // ones leaves it where it is.
                let mut j = 0;
                self.headers.retain(|x| {
                    j += 1;
                    j - 1 == i || !same_name(x, h.kind, &h.name)
                });
                if let Some(slot) = self.headers.get_mut(i) {
                    *slot = h;
                }
            }
            None => self.headers.push(h),
        }
        Ok(())
    }

    /// Replaces the value of row `index` (as [`Message::headers`] counts
    /// rows), keeping its name; the row is written `Name: value` from now
    /// on. Refused if there is no such row or the value holds a line
    /// break.
    pub fn replace_header(
        &mut self,
        index: usize,
        value: impl Into<Cow<'a, str>>,
    ) -> Result<(), Error> {
        let Some(old) = self.headers.get(index) else {
            return Err(Error::Missing(HeaderName::Other));
        };
        let h = new_header(old.name.clone(), value.into())?;
        if let Some(slot) = self.headers.get_mut(index) {
            *slot = h;
        }
        Ok(())
    }

    /// Appends a row whose value is known to match `kind`'s grammar
    /// (copied from a row that [`Header::is_checked`]), without parsing
    /// it again.
    pub(crate) fn push_checked(&mut self, kind: HeaderName, value: &str) -> Result<(), Error> {
        let h = new_header(Cow::Borrowed(kind.as_str()), Cow::Owned(value.to_owned()))?;
        debug_assert_eq!(check_value(kind, &h.value), Ok(()));
        h.mark_checked();
        self.headers.push(h);
        Ok(())
    }

    /// Removes every row called `name`; how many there were.
    pub fn remove_header(&mut self, name: &str) -> usize {
        let kind = HeaderName::from_name(name);
        let before = self.headers.len();
        self.headers.retain(|h| !same_name(h, kind, name));
        before - self.headers.len()
    }

    /// Replaces the body and sets Content-Length to its length (and
    /// Content-Type, when given; with an empty body Content-Type is
    /// removed unless given).
    pub fn set_body(
        &mut self,
        content_type: Option<&str>,
        body: impl Into<Cow<'a, [u8]>>,
    ) -> Result<(), Error> {
        self.body = body.into();
        match content_type {
            Some(t) => self.set_header("Content-Type", t.to_owned())?,
            None if self.body.is_empty() => {
                self.remove_header("Content-Type");
            }
            None => {}
        }
        let len = self.body.len().to_string();
        self.set_header("Content-Length", len)
    }

    /// The same message owning all its text.
    pub fn into_owned(self) -> Message<'static> {
        let start = match self.start {
            StartLine::Request {
                method,
                uri,
                version,
            } => StartLine::Request {
                method: Cow::Owned(method.into_owned()),
                uri: Cow::Owned(uri.into_owned()),
                version: Cow::Owned(version.into_owned()),
            },
            StartLine::Response {
                version,
                status,
                reason,
            } => StartLine::Response {
                version: Cow::Owned(version.into_owned()),
                status,
                reason: Cow::Owned(reason.into_owned()),
            },
        };
        Message {
            start,
            headers: self.headers.into_iter().map(Header::into_owned).collect(),
            body: Cow::Owned(self.body.into_owned()),
        }
    }

    pub(crate) fn from_parts(start: StartLine<'a>) -> Message<'a> {
        Message {
            start,
            // A built message has about ten rows: one allocation, small
            // enough for the allocator's per-thread cache.
            headers: Vec::with_capacity(12),
            body: Cow::Borrowed(&[]),
        }
    }

    // ------------------------------------------------------------ emission

    /// The length of [`Message::emit`]'s output.
    pub fn len(&self) -> usize {
        let start = match &self.start {
            StartLine::Request {
                method,
                uri,
                version,
            } => method.len() + uri.len() + version.len() + 4,
            StartLine::Response {
                version, reason, ..
            } => version.len() + reason.len() + 7,
        };
        let headers: usize = self
            .headers
            .iter()
            .map(|h| match &h.raw {
                Some(r) => r.len(),
                None => h.name.len() + h.value.len() + 4,
            })
            .sum();
        start + headers + 2 + self.body.len()
    }

    /// Whether the message is empty (never: a start line is always there).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the message to `out`: the start line, every row (as
    /// received while unmodified, `Name: value` otherwise), the empty line
    /// and the body.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.reserve(self.len());
        match &self.start {
            StartLine::Request {
                method,
                uri,
                version,
            } => {
                for (i, s) in [method, uri, version].into_iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(s.as_bytes());
                }
            }
            StartLine::Response {
                version,
                status,
                reason,
            } => {
                out.extend_from_slice(version.as_bytes());
                out.push(b' ');
                // 100..=699: three digits (written without formatting).
                let digits = [status / 100 % 10, status / 10 % 10, status % 10];
                out.extend(digits.map(|d| b'0' + d as u8));
                out.push(b' ');
                out.extend_from_slice(reason.as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
        for h in &self.headers {
            match &h.raw {
                Some(r) => out.extend_from_slice(r.as_bytes()),
                None => {
                    out.extend_from_slice(h.name.as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(h.value.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }

    /// [`Message::emit`] into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.emit(&mut v);
        v
    }
}

/// Whether `v` matches the grammar of header `kind` (every header this
/// codec types; any value for the others): the check of one row of
/// [`Message::validate`], which the builder runs as each row goes in.
pub(crate) fn check_value(kind: HeaderName, v: &str) -> Result<(), Syntax> {
    use HeaderName as H;
    match kind {
        H::Via => Via::parse_list(v).map(drop),
        H::From | H::To => NameAddr::parse(v).map(drop),
        H::CallId => header::call_id(v).map(drop),
        H::CSeq => CSeq::parse(v).map(drop),
        H::Contact => Contacts::parse(v).map(drop),
        H::MaxForwards => header::number(v, 255).map(drop),
        H::Expires | H::MinExpires => header::expires(v).map(drop),
        H::Route | H::RecordRoute | H::ServiceRoute | H::Path | H::PAssociatedUri => {
            NameAddr::parse_route_list(v).map(drop)
        }
        H::PPreferredIdentity | H::PAssertedIdentity => NameAddr::parse_identity_list(v).map(drop),
        H::WwwAuthenticate | H::ProxyAuthenticate | H::Authorization | H::ProxyAuthorization => {
            Auth::parse(v).map(drop)
        }
        H::SecurityClient | H::SecurityServer | H::SecurityVerify => {
            SecMechanism::parse_list(v).map(drop)
        }
        H::Event => Event::parse(v).map(drop),
        H::SubscriptionState => SubscriptionState::parse(v).map(drop),
        H::SipEtag | H::SipIfMatch => header::single_token(v).map(drop),
        H::ContentType => MediaType::parse(v).map(drop),
        H::Accept => MediaType::parse_accept(v).map(drop),
        H::Require | H::ProxyRequire | H::Unsupported => header::option_tags(v, false).map(drop),
        H::Supported => header::option_tags(v, true).map(drop),
        _ => Ok(()),
    }
}

fn same_name(h: &Header<'_>, kind: HeaderName, name: &str) -> bool {
    if kind == HeaderName::Other {
        h.kind == HeaderName::Other && h.name.eq_ignore_ascii_case(name)
    } else {
        h.kind == kind
    }
}

fn new_header<'a>(name: Cow<'a, str>, value: Cow<'a, str>) -> Result<Header<'a>, Error> {
    let kind = HeaderName::from_name(&name);
    if !lex::is_token(&name) {
        return Err(Error::Header {
            name: kind,
            syntax: Syntax {
                what: "a header name must be a token",
                at: 0,
            },
        });
    }
    if let Some(at) = memchr2(b'\r', b'\n', value.as_bytes()) {
        return Err(Error::Header {
            name: kind,
            syntax: Syntax {
                what: "line break in a header value",
                at,
            },
        });
    }
    let value = match lex::trim_lws(&value) {
        t if t.len() == value.len() => value,
        t => Cow::Owned(t.to_owned()),
    };
    Ok(Header {
        name,
        kind,
        value,
        raw: None,
        checked: Checked::default(),
    })
}

impl fmt::Display for Message<'_> {
    /// The emitted message, lossily as UTF-8 (bodies may be binary).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

// ------------------------------------------------------------------ framing

/// Splits the message at the start of `buf`.
fn frame(
    buf: &[u8],
    framing: Framing,
    limit: usize,
) -> Result<Option<(Message<'_>, usize)>, Error> {
    let stream = framing == Framing::Stream;
    // RFC 3261 §7.5: CRLFs before the start line are ignored.
    let mut begin = 0;
    while buf.get(begin..begin + 2) == Some(b"\r\n") {
        begin += 2;
    }
    let rest = buf.get(begin..).unwrap_or_default();
    if rest.is_empty() {
        return if stream { Ok(None) } else { Err(Error::Empty) };
    }
    // The header section ends at the first empty line.
    let Some(end) = memmem::find(rest, b"\r\n\r\n") else {
        if stream {
            if rest.len() > limit {
                return Err(Error::TooLarge { limit });
            }
            // A bare CR or LF may already prove the bytes are no message.
            check_line_ends(rest, begin)?;
            return Ok(None);
        }
        check_line_ends(rest, begin)?;
        return Err(Error::NoHeaderEnd);
    };
    let head_bytes = rest.get(..end + 2).unwrap_or_default();
    let head = std::str::from_utf8(head_bytes).map_err(|e| Error::NotUtf8 {
        line: 1 + head_bytes
            .get(..e.valid_up_to())
            .map_or(0, |b| memchr::memchr_iter(b'\n', b).count()),
    })?;
    let body_start = end + 4;

    let mut start_line: Option<&str> = None;
    // At most a row per line after the start line (fewer with folds):
    // one allocation of the size needed, which for a usual message is
    // small enough for the allocator's per-thread cache.
    let lines = memchr::memchr_iter(b'\n', head_bytes).count();
    let mut headers: Vec<Header<'_>> = Vec::with_capacity(lines.saturating_sub(1));
    // The row being read: (row start, name, value start, row end).
    let mut row: Option<(usize, &str, usize, usize)> = None;
    let mut content_length: Option<usize> = None;
    let mut pos = 0;
    let mut line_no = 0;
    let hb = head.as_bytes();
    while pos < hb.len() {
        line_no += 1;
        let line_end = match memchr2(b'\r', b'\n', hb.get(pos..).unwrap_or_default()) {
            Some(i) if hb.get(pos + i) == Some(&b'\r') && hb.get(pos + i + 1) == Some(&b'\n') => {
                pos + i
            }
            Some(i) => {
                return Err(Error::BareLineBreak {
                    offset: begin + pos + i,
                });
            }
            None => return Err(Error::NoHeaderEnd),
        };
        let line = head.get(pos..line_end).unwrap_or_default();
        if start_line.is_none() {
            start_line = Some(line);
        } else if line.starts_with([' ', '\t']) {
            match row.as_mut() {
                Some(r) => r.3 = line_end,
                None => return Err(Error::HeaderLine { line: line_no }),
            }
        } else {
            if let Some(r) = row.take() {
                finish_row(head, r, &mut headers, &mut content_length, limit)?;
            }
            let lb = line.as_bytes();
            let name_len = lb.iter().take_while(|b| lex::is(**b, lex::TOKEN)).count();
            let mut i = name_len;
            while matches!(lb.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            if name_len == 0 || lb.get(i) != Some(&b':') {
                return Err(Error::HeaderLine { line: line_no });
            }
            let name = line.get(..name_len).unwrap_or_default();
            row = Some((pos, name, pos + i + 1, line_end));
        }
        pos = line_end + 2;
    }
    if let Some(r) = row.take() {
        finish_row(head, r, &mut headers, &mut content_length, limit)?;
    }
    let start = parse_start_line(start_line.unwrap_or_default())?;

    let available = rest.len() - body_start.min(rest.len());
    let body_len = match (content_length, stream) {
        (Some(n), _) if n <= available => n,
        (Some(n), false) => {
            return Err(Error::Truncated {
                declared: n,
                available,
            });
        }
        (Some(n), true) => {
            return if body_start.saturating_add(n) > limit {
                Err(Error::TooLarge { limit })
            } else {
                Ok(None)
            };
        }
        (None, false) => available,
        (None, true) => return Err(Error::MissingContentLength),
    };
    if stream && body_start + body_len > limit {
        return Err(Error::TooLarge { limit });
    }
    let body = rest
        .get(body_start..body_start + body_len)
        .unwrap_or_default();
    let msg = Message {
        start,
        headers,
        body: Cow::Borrowed(body),
    };
    Ok(Some((msg, begin + body_start + body_len)))
}

/// Fails on a CR or LF outside a CRLF in `b` (which starts at offset
/// `base` of the input).
fn check_line_ends(b: &[u8], base: usize) -> Result<(), Error> {
    for i in memchr::memchr2_iter(b'\r', b'\n', b) {
        let ok = match b.get(i) {
            Some(b'\r') => b.get(i + 1).is_none_or(|n| *n == b'\n'),
            _ => i > 0 && b.get(i - 1) == Some(&b'\r'),
        };
        if !ok {
            return Err(Error::BareLineBreak { offset: base + i });
        }
    }
    Ok(())
}

fn finish_row<'a>(
    head: &'a str,
    (start, name, value_start, end): (usize, &'a str, usize, usize),
    headers: &mut Vec<Header<'a>>,
    content_length: &mut Option<usize>,
    limit: usize,
) -> Result<(), Error> {
    let kind = HeaderName::from_name(name);
    let value = lex::trim_lws(head.get(value_start..end).unwrap_or_default());
    if kind == HeaderName::ContentLength {
        if content_length.is_some() {
            return Err(Error::DuplicateContentLength);
        }
        let n = lex::digits_u64(value)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(Error::ContentLength(Syntax {
                what: "expected 1*DIGIT",
                at: 0,
            }))?;
        if limit != usize::MAX && n > limit {
            return Err(Error::TooLarge { limit });
        }
        *content_length = Some(n);
    }
    headers.push(Header {
        name: Cow::Borrowed(name),
        kind,
        value: Cow::Borrowed(value),
        raw: Some(Cow::Borrowed(head.get(start..end + 2).unwrap_or_default())),
        checked: Checked::default(),
    });
    Ok(())
}

/// `"SIP" "/" 1*DIGIT "." 1*DIGIT` ("SIP" in any case, RFC 3261 §7.1).
fn is_sip_version(v: &str) -> bool {
    let Some((sip, num)) = v.split_once('/') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    sip.eq_ignore_ascii_case("SIP")
        && num
            .split_once('.')
            .is_some_and(|(a, b)| digits(a) && digits(b))
}

fn parse_start_line(line: &str) -> Result<StartLine<'_>, Error> {
    let is_response = line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"));
    if is_response {
        parse_status_line(line)
    } else {
        parse_request_line(line)
    }
}

fn parse_request_line(line: &str) -> Result<StartLine<'_>, Error> {
    let bad = |what, at| Error::RequestLine(Syntax { what, at });
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(
            "not Method SP Request-URI SP SIP-Version (one SP between, none after)",
            0,
        ));
    };
    if !lex::is_token(method) {
        return Err(bad("the method is not a token", 0));
    }
    let uri_at = method.len() + 1;
    if uri.is_empty() {
        return Err(bad("empty Request-URI", uri_at));
    }
    if !is_sip_version(version) {
        return Err(bad("not a SIP-Version", uri_at + uri.len() + 1));
    }
    match Uri::parse(uri) {
        Err(e) => {
            return Err(Error::RequestUri(Syntax {
                what: e.what,
                at: uri_at + e.at,
            }));
        }
        // RFC 3261 §19.1.1: headers are not allowed in a Request-URI.
        Ok(Uri::Sip(u)) if u.headers.is_some() => {
            return Err(Error::RequestUri(Syntax {
                what: "headers in a Request-URI",
                at: uri_at + uri.find('?').unwrap_or(0),
            }));
        }
        Ok(_) => {}
    }
    Ok(StartLine::Request {
        method: Cow::Borrowed(method),
        uri: Cow::Borrowed(uri),
        version: Cow::Borrowed(version),
    })
}

fn parse_status_line(line: &str) -> Result<StartLine<'_>, Error> {
    let bad = |what, at| Error::StatusLine(Syntax { what, at });
    let (version, rest) = line
        .split_once(' ')
        .ok_or(bad("no SP after the version", 0))?;
    if !is_sip_version(version) {
        return Err(bad("not a SIP-Version", 0));
    }
    let code_at = version.len() + 1;
    let code = rest.get(..3).unwrap_or_default();
    let status = match code.as_bytes() {
        [a @ b'1'..=b'6', b, c] if b.is_ascii_digit() && c.is_ascii_digit() => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(bad("not a status code from 100 to 699", code_at)),
    };
    let reason = rest
        .get(3..)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(bad("expected SP after the status code", code_at + 3))?;
    // Liberal: any text without control characters (HTAB allowed).
    if let Some(i) = reason
        .bytes()
        .position(|b| b < 0x20 && b != b'\t' || b == 0x7f)
    {
        return Err(bad(
            "control character in the reason phrase",
            code_at + 4 + i,
        ));
    }
    Ok(StartLine::Response {
        version: Cow::Borrowed(version),
        status,
        reason: Cow::Borrowed(reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &[u8] = b"REGISTER sip:ims.example.org SIP/2.0\r\n\
Via: SIP/2.0/UDP [2001:db8::7]:5060;branch=z9hG4bKa1;rport\r\n\
v: SIP/2.0/UDP proxy.example.org\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@ims.example.org>;tag=1\r\n\
To: <sip:alice@ims.example.org>\r\n\
Call-ID: abc@h\r\n\
CSeq: 1 REGISTER\r\n\
Subject: folded\r\n  over lines\r\n\
Content-Length: 4\r\n\r\nbodyJUNK";

    #[test]
    fn datagram_framing() {
        let (m, end) = Message::parse_datagram(REGISTER).unwrap();
        assert_eq!(end, REGISTER.len() - 4);
        assert_eq!(m.method(), Some(Method::Register));
        assert_eq!(m.body(), b"body");
        assert_eq!(m.vias().unwrap().len(), 2);
        assert_eq!(m.header("subject"), Some("folded\r\n  over lines"));
        assert_eq!(m.header("s"), Some("folded\r\n  over lines"));
        assert_eq!(m.to_bytes(), REGISTER[..end].to_vec());
        assert_eq!(m.len(), end);
        assert_eq!(m.cseq().unwrap().seq, 1);
        assert_eq!(m.max_forwards().unwrap(), Some(70));
    }

    #[test]
    fn stream_framing() {
        let mut buf = b"\r\n\r\n".to_vec();
        buf.extend_from_slice(&REGISTER[..REGISTER.len() - 4]);
        buf.extend_from_slice(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        let first = REGISTER.len(); // 4 CRLF bytes + the message without JUNK
        for cut in 0..first {
            let r = Message::parse_stream(&buf[..cut], 4096).unwrap();
            assert!(r.is_none(), "{cut}");
        }
        let (m, used) = Message::parse_stream(&buf, 4096).unwrap().unwrap();
        assert_eq!(used, 4 + REGISTER.len() - 4);
        assert_eq!(m.body(), b"body");
        let (m, used2) = Message::parse_stream(&buf[used..], 4096).unwrap().unwrap();
        assert_eq!((m.status(), used + used2), (Some(200), buf.len()));
        assert_eq!(
            Message::parse_stream(b"OPTIONS sip:a SIP/2.0\r\n\r\n", 4096),
            Err(Error::MissingContentLength)
        );
        assert_eq!(
            Message::parse_stream(&buf, 100),
            Err(Error::TooLarge { limit: 100 })
        );
    }

    #[test]
    fn framing_errors() {
        let e = |b: &[u8]| Message::parse(b).unwrap_err();
        assert_eq!(e(b""), Error::Empty);
        assert_eq!(e(b"\r\n\r\n"), Error::Empty);
        assert_eq!(e(b"OPTIONS sip:a SIP/2.0\r\nTo: x\r\n"), Error::NoHeaderEnd);
        assert_eq!(
            e(b"OPTIONS sip:a SIP/2.0\nTo: x\r\n\r\n"),
            Error::BareLineBreak { offset: 21 }
        );
        assert_eq!(
            e(b"OPTIONS sip:a SIP/2.0\r\nTo: x\ry\r\n\r\n"),
            Error::BareLineBreak { offset: 28 }
        );
        assert_eq!(
            e(b"OPTIONS sip:a SIP/2.0\r\n To: x\r\n\r\n"),
            Error::HeaderLine { line: 2 }
        );
        assert_eq!(
            e(b"OPTIONS sip:a SIP/2.0\r\nTo x\r\n\r\n"),
            Error::HeaderLine { line: 2 }
        );
        assert_eq!(
            e(b"OPTIONS sip:a SIP/2.0\r\nTo: \xff\r\n\r\n"),
            Error::NotUtf8 { line: 2 }
        );
        assert_eq!(
            e(b"OPTIONS sip:a SIP/2.0\r\nl: 5\r\n\r\nab"),
            Error::Truncated {
                declared: 5,
                available: 2
            }
        );
        assert_eq!(
            e(b"OPTIONS sip:a SIP/2.0\r\nl: 1\r\nl: 1\r\n\r\na"),
            Error::DuplicateContentLength
        );
        assert!(matches!(
            e(b"OPTIONS sip:a SIP/2.0\r\nl: -1\r\n\r\n"),
            Error::ContentLength(_)
        ));
        assert!(matches!(
            e(b"OPTIONS  sip:a SIP/2.0\r\n\r\n"),
            Error::RequestLine(_)
        ));
        assert!(matches!(
            e(b"OPTIONS sip:a SIP/2.0 \r\n\r\n"),
            Error::RequestLine(_)
        ));
        assert!(matches!(
            e(b"OPTIONS sip:a HTTP/1.1\r\n\r\n"),
            Error::RequestLine(_)
        ));
        assert!(matches!(
            e(b"OPTIONS <sip:a> SIP/2.0\r\n\r\n"),
            Error::RequestUri(_)
        ));
        assert!(matches!(
            e(b"OPTIONS sip:a?x=y SIP/2.0\r\n\r\n"),
            Error::RequestUri(_)
        ));
        assert!(matches!(
            e(b"SIP/2.0 4294967301 x\r\n\r\n"),
            Error::StatusLine(_)
        ));
        assert!(matches!(e(b"SIP/2.0 700 x\r\n\r\n"), Error::StatusLine(_)));
        assert!(matches!(e(b"SIP/2.0 200\r\n\r\n"), Error::StatusLine(_)));
        assert!(matches!(
            e(b"SIP/2.0 200 \x01\r\n\r\n"),
            Error::StatusLine(_)
        ));
    }

    #[test]
    fn responses() {
        let m = Message::parse(b"SIP/2.0 100 \r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!((m.status(), m.reason()), (Some(100), Some("")));
        assert_eq!(m.to_bytes(), b"SIP/2.0 100 \r\nContent-Length: 0\r\n\r\n");
        let m = Message::parse(b"sip/2.0 404 Not Found\r\n\r\n").unwrap();
        assert_eq!(m.version(), "sip/2.0");
        assert_eq!(m.to_bytes(), b"sip/2.0 404 Not Found\r\n\r\n");
    }

    #[test]
    fn editing() {
        let mut m = Message::parse(REGISTER).unwrap();
        m.set_header("Max-Forwards", "69").unwrap();
        m.insert_header(0, "Via", "SIP/2.0/UDP p.example.org;branch=z9hG4bKx")
            .unwrap();
        m.set_body(Some("text/plain"), b"hello".to_vec()).unwrap();
        assert_eq!(m.remove_header("SUBJECT"), 1);
        let bytes = m.to_bytes();
        assert_eq!(bytes.len(), m.len());
        let again = Message::parse(&bytes).unwrap();
        assert_eq!(again.max_forwards().unwrap(), Some(69));
        assert_eq!(again.top_via().unwrap().host.to_string(), "p.example.org");
        assert_eq!(again.vias().unwrap().len(), 3);
        assert_eq!(again.body(), b"hello");
        assert_eq!(again.content_length(), Some(5));
        assert!(again.content_type().unwrap().unwrap().is("text", "plain"));
        assert!(m.push_header("X-Bad", "a\r\nVia: injected").is_err());
        assert!(m.push_header("Bad Name", "x").is_err());
        let owned = again.into_owned();
        assert_eq!(owned.to_bytes(), bytes);
    }

    #[test]
    fn set_header_replaces_the_first_row_and_drops_the_others() {
        let mut m = Message::parse(
            b"OPTIONS sip:a@b SIP/2.0\r\nX-A: 1\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
              x-a: 2\r\nv: SIP/2.0/UDP g;branch=z9hG4bK2\r\nX-A: 3\r\nCSeq: 1 OPTIONS\r\n\r\n",
        )
        .unwrap();
        m.set_header("Via", "SIP/2.0/UDP k;branch=z9hG4bK3")
            .unwrap();
        m.set_header("X-a", "9").unwrap();
        let rows: Vec<(&str, &str)> = m.headers().iter().map(|h| (h.name(), h.value())).collect();
        assert_eq!(
            rows,
            [
                ("X-a", "9"),
                ("Via", "SIP/2.0/UDP k;branch=z9hG4bK3"),
                ("CSeq", "1 OPTIONS")
            ]
        );
        m.set_header("Max-Forwards", "70").unwrap();
        assert_eq!(m.headers().last().map(|h| h.value()), Some("70"));
    }
}
