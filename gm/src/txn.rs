//! SIP transactions (RFC 3261 §17), sans-IO: the non-INVITE client and
//! server transactions, and the INVITE server transaction this layer needs
//! to refuse an INVITE (it carries no media: the TU answers 488 and the
//! transaction absorbs the ACK). No INVITE client transaction.
//!
//! [`Transactions`] holds every transaction of one SIP endpoint. The
//! caller feeds it what arrives ([`Transactions::on_request`],
//! [`Transactions::on_response`]), what the TU sends
//! ([`Transactions::start_client`], [`Transactions::respond`]) and the time
//! ([`Transactions::handle_timeout`] at [`Transactions::poll_timeout`]);
//! it takes the datagrams to write from [`Transactions::poll_transmit`]
//! and the timeouts and terminations from [`Transactions::poll_event`].
//! Time is whatever monotonic [`Duration`] the caller counts from; the
//! layer reads no clock.
//!
//! Timers, with `T1`, `T2`, `T4` from [`Timers`]:
//!
//! | timer | transaction | unreliable transport | reliable |
//! |---|---|---|---|
//! | E | client, retransmit the request | T1, doubling to T2; T2 once a provisional came | not set |
//! | F | client, give up | 64·T1 | 64·T1 |
//! | K | client, absorb response retransmissions | T4 | 0 |
//! | J | server, absorb request retransmissions | 64·T1 | 0 |
//! | G | INVITE server, retransmit the 3xx-6xx | T1, doubling to T2 | not set |
//! | H | INVITE server, wait for the ACK | 64·T1 | 64·T1 |
//! | I | INVITE server, absorb ACK retransmissions | T4 | 0 |
//!
//! Requests are matched to server transactions by RFC 3261 §17.2.3: by
//! branch, sent-by and method when the branch carries the magic cookie,
//! else (RFC 2543 peers) by Request-URI, tags, Call-ID, CSeq and top Via,
//! compared as strings (the per-header comparison rules of §19.1.4 and
//! §20 are not applied). Responses are matched to client transactions by
//! branch and CSeq method (§17.1.3).
//!
//! ```
//! use std::time::Duration;
//! use gm::sip::Message;
//! use gm::txn::{Event, Reliability, ResponseVerdict, Transactions};
//!
//! let mut uac: Transactions<&str> = Transactions::new(Default::default());
//! let req = Message::parse(b"MESSAGE sip:bob@example.org SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@example.org>;tag=1\r\n\
//!     To: <sip:bob@example.org>\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n").unwrap();
//! let t = Duration::ZERO;
//! let id = uac.start_client(&req, "pcscf", Reliability::Unreliable, t).unwrap();
//! assert!(uac.poll_transmit().is_some()); // the request
//! // No answer: retransmitted at T1 = 500 ms.
//! assert_eq!(uac.poll_timeout(), Some(Duration::from_millis(500)));
//! uac.handle_timeout(Duration::from_millis(500));
//! assert!(uac.poll_transmit().is_some());
//! let ok = Message::parse(b"SIP/2.0 200 OK\r\n\
//!     Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\nFrom: <sip:a@example.org>;tag=1\r\n\
//!     To: <sip:bob@example.org>;tag=2\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n").unwrap();
//! assert_eq!(uac.on_response(&ok, Duration::from_millis(600)), ResponseVerdict::ToTu(id));
//! // Completed: a retransmitted 200 is absorbed until Timer K (T4).
//! assert_eq!(uac.on_response(&ok, Duration::from_millis(700)), ResponseVerdict::Absorbed(id));
//! uac.handle_timeout(Duration::from_millis(5600));
//! assert_eq!(uac.poll_event(), Some(Event::Terminated(id)));
//! ```

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::time::Duration;

use crate::sip::header::MAGIC_COOKIE;
use crate::sip::{Builder, Error as SipError, HeaderName, Message, Method};

/// The timer base values of RFC 3261 §17.1.1.1 and Table 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmission interval for non-INVITE requests and INVITE
    /// responses (default 4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (default 5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64·T1: timers B, F, H and J (32 s by default).
    pub fn timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// Whether the transport retransmits for us (TCP, TLS, SCTP) or not (UDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reliability {
    /// UDP: the transaction layer retransmits.
    Unreliable,
    /// A stream: no retransmission, the absorbing states last 0 s.
    Reliable,
}

/// The transport protocol a SIP message goes over (RFC 3261 §18), as its
/// Via names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// UDP: one message per datagram; the transaction layer retransmits.
    #[default]
    Udp,
    /// TCP: a byte stream, messages delimited by Content-Length; no
    /// retransmission.
    Tcp,
}

impl Protocol {
    /// The Via `sent-protocol` transport token: `UDP`, `TCP`.
    ///
    /// ```
    /// use gm::txn::Protocol;
    /// assert_eq!(Protocol::Tcp.via_name(), "TCP");
    /// ```
    pub fn via_name(self) -> &'static str {
        match self {
            Protocol::Udp => "UDP",
            Protocol::Tcp => "TCP",
        }
    }

    /// The URI `transport` parameter that asks for this protocol (RFC 3261
    /// §19.1.1): none for UDP, the default, `;transport=tcp` for TCP.
    pub fn uri_param(self) -> &'static str {
        match self {
            Protocol::Udp => "",
            Protocol::Tcp => ";transport=tcp",
        }
    }

    /// Whether the transport retransmits for us.
    pub fn reliability(self) -> Reliability {
        match self {
            Protocol::Udp => Reliability::Unreliable,
            Protocol::Tcp => Reliability::Reliable,
        }
    }

    /// `udp` or `tcp` (any case).
    pub fn parse(s: &str) -> Option<Protocol> {
        if s.eq_ignore_ascii_case("udp") {
            Some(Protocol::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Protocol::Tcp)
        } else {
            None
        }
    }
}

/// The RFC 3261 §18.1.1 size rule: whether a request of `wire_len` bytes
/// must go over a congestion-controlled transport (TCP) rather than UDP,
/// because it is within 200 bytes of `path_mtu` or, with the path MTU
/// unknown, larger than 1300 bytes.
///
/// `wire_len` is what will be on the wire: the caller counts it after
/// SigComp and ESP (the datagram that must not be fragmented), and
/// `path_mtu` is the MTU of the path it takes.
///
/// ```
/// use gm::txn::needs_congestion_control;
/// assert!(!needs_congestion_control(1299, Some(1500)));
/// assert!(needs_congestion_control(1300, Some(1500)));
/// assert!(!needs_congestion_control(1300, None));
/// assert!(needs_congestion_control(1301, None));
/// ```
pub fn needs_congestion_control(wire_len: usize, path_mtu: Option<usize>) -> bool {
    match path_mtu {
        Some(mtu) => wire_len.saturating_add(200) >= mtu,
        None => wire_len > 1300,
    }
}

/// One transaction of a [`Transactions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnId(u64);

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "txn{}", self.0)
    }
}

/// The kinds of transaction this layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Non-INVITE client transaction (§17.1.2).
    Client,
    /// Non-INVITE server transaction (§17.2.2).
    Server,
    /// INVITE server transaction (§17.2.1).
    InviteServer,
}

/// The states of Figures 6, 7 and 8 (a terminated transaction is removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Client: request sent, no response yet. Server: request passed to
    /// the TU, nothing sent yet.
    Trying,
    /// A provisional response was received (client) or sent (server).
    Proceeding,
    /// A final response was received (client) or sent (server); absorbing
    /// retransmissions.
    Completed,
    /// INVITE server: the ACK arrived; absorbing ACK retransmissions.
    Confirmed,
}

/// A datagram (or stream write) the caller must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit<A> {
    /// The transaction it belongs to.
    pub txn: TxnId,
    /// Where: the destination given to [`Transactions::start_client`], or
    /// the source the request came from (RFC 3581: its address and port).
    pub to: A,
    /// The local port it must leave from: for a response, the port its
    /// request arrived on when the caller gave it to
    /// [`Transactions::on_request_at`] (RFC 3581 §4: "sent from the same
    /// address and port that the corresponding request was received
    /// on"); `None` for a request (the caller's route decides).
    pub from_port: Option<u16>,
    /// The SIP message.
    pub bytes: Vec<u8>,
    /// Whether it is a retransmission.
    pub retransmission: bool,
}

/// What the layer tells the TU on its own (from timers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Timer F (client: no final response) or H (INVITE server: no ACK)
    /// fired; the transaction is gone.
    Timeout(TxnId),
    /// The transaction ended normally (Timer K, J or I, a 2xx sent by an
    /// INVITE server transaction); its per-transaction data may go.
    Terminated(TxnId),
    /// The transport could not send for it ([`Transactions::transport_error`],
    /// RFC 3261 §17.1.4, §17.2.4): it ended at once, a client transaction
    /// without a final response (for its TU, a failure like [`Event::Timeout`]).
    TransportError(TxnId),
}

/// What to do with a received response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseVerdict {
    /// Pass it to the TU: the first final response or a provisional one.
    ToTu(TxnId),
    /// A retransmission the transaction absorbed.
    Absorbed(TxnId),
    /// No client transaction matches: discard it (§18.1.2).
    NoMatch,
}

/// What to do with a received request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestVerdict {
    /// A new server transaction: pass the request to the TU, which answers
    /// with [`Transactions::respond`].
    New(TxnId),
    /// A retransmission: absorbed (the last response, if any, is sent
    /// again).
    Absorbed(TxnId),
    /// An ACK that matches no INVITE server transaction (an ACK for a 2xx,
    /// which is the TU's business): pass it to the TU.
    AckToTu,
}

/// Why the layer refused a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnError {
    /// The message lacks what a transaction needs (top Via with a branch,
    /// CSeq), or is not a request / response where one is needed.
    Message(SipError),
    /// The request's top Via has no branch with the RFC 3261 magic cookie:
    /// a client transaction of this layer always sends one (§8.1.1.7).
    NoBranch,
    /// INVITE or ACK given to [`Transactions::start_client`]: this layer
    /// has no INVITE client transaction.
    Unsupported(String),
    /// A client transaction with this branch and method exists.
    Duplicate,
    /// No such transaction (terminated, or never existed).
    Unknown(TxnId),
    /// The response does not fit the transaction: a request, a response to
    /// another request, or a final response after the final one.
    Refused(&'static str),
}

impl fmt::Display for TxnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnError::Message(e) => write!(f, "{e}"),
            TxnError::NoBranch => {
                f.write_str("the top Via has no branch starting with z9hG4bK (RFC 3261 §8.1.1.7)")
            }
            TxnError::Unsupported(m) => write!(f, "no client transaction for {m} here"),
            TxnError::Duplicate => f.write_str("a client transaction with this branch exists"),
            TxnError::Unknown(id) => write!(f, "no transaction {id}"),
            TxnError::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for TxnError {}

impl From<SipError> for TxnError {
    fn from(e: SipError) -> Self {
        TxnError::Message(e)
    }
}

/// The key of a server transaction (§17.2.3). A method of RFC 3261 and
/// its extensions is a `'static` name, not a copy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ServerKey {
    /// Branch with the magic cookie, sent-by, method (ACK counted as
    /// INVITE).
    Rfc3261 {
        branch: String,
        sent_by: String,
        method: Cow<'static, str>,
    },
    /// RFC 2543 (rare: boxed, so every key is not as large as this one).
    Rfc2543(Box<Rfc2543Key>),
}

/// RFC 2543: Request-URI, From tag, Call-ID, CSeq number, top Via, and
/// the method (ACK counted as INVITE). The To tag is compared apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Rfc2543Key {
    uri: String,
    from_tag: String,
    call_id: String,
    cseq: u32,
    via: String,
    method: Cow<'static, str>,
}

/// A key with its hash, computed once (with the layer's [`RandomState`]):
/// the tables hash it as that one number, so growing a table with
/// hundreds of thousands of transactions (Timer J keeps each for 64*T1)
/// does not hash every key's strings again.
#[derive(Clone, Debug)]
struct Hashed<K> {
    hash: u64,
    key: K,
}

impl<K: PartialEq> PartialEq for Hashed<K> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl<K: Eq> Eq for Hashed<K> {}

impl<K> Hash for Hashed<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The hasher of the tables: a number (a [`Hashed`] key's hash, a
/// [`TxnId`], which counts) times an odd constant (Fibonacci hashing),
/// which spreads a counter over the high bits the table looks at.
#[derive(Clone, Copy, Debug, Default)]
struct NumberHasher(u64);

impl Hasher for NumberHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only numbers are hashed here; any other input still hashes.
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Numbers = BuildHasherDefault<NumberHasher>;

#[derive(Debug)]
struct Txn<A> {
    kind: Kind,
    state: State,
    reliability: Reliability,
    to: A,
    /// Server: the local port its request arrived on, when the caller
    /// said ([`Transactions::on_request_at`]).
    local: Option<u16>,
    /// Client: the request. Server: the last response sent.
    last: Option<Vec<u8>>,
    /// Server with an RFC 2543 key only: the To tag of the request
    /// (matching a retransmission) and of the last response (matching the
    /// ACK). A branch identifies the others.
    request_to_tag: Option<String>,
    response_to_tag: Option<String>,
    /// E or G: when, and the interval that led to it.
    retransmit: Option<(Duration, Duration)>,
    /// F, H (timeouts), K, J, I (ends).
    deadline: Option<(Duration, Deadline)>,
    client_key: Option<Hashed<(String, String)>>,
    /// Server: its key, kept here only (see [`Transactions::servers`]).
    server_key: Option<Hashed<ServerKey>>,
}

impl<A> Txn<A> {
    /// When the first of its timers fires.
    fn earliest(&self) -> Option<Duration> {
        match (self.retransmit, self.deadline) {
            (Some((r, _)), Some((d, _))) => Some(r.min(d)),
            (Some((r, _)), None) => Some(r),
            (None, Some((d, _))) => Some(d),
            (None, None) => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// F or H: tell the TU.
    Timeout,
    /// K, J or I: end quietly.
    End,
}

/// Every transaction of one endpoint. `A` is how the caller names a
/// destination (a socket address, a connection id...).
#[derive(Debug)]
pub struct Transactions<A> {
    timers: Timers,
    next: u64,
    /// Boxed: a table that grows moves pointers, not transactions.
    txns: HashMap<TxnId, Box<Txn<A>>, Numbers>,
    /// When each transaction's earliest timer fires: one entry pushed per
    /// change of a transaction's timers, so older ones may be stale (the
    /// transaction ended or its timer moved); [`Transactions::handle_timeout`]
    /// pops them and checks. Keeps timer handling O(log n) per transaction
    /// instead of a scan of every transaction per event.
    wheel: BinaryHeap<Reverse<(Duration, TxnId)>>,
    clients: HashMap<Hashed<(String, String)>, TxnId, Numbers>,
    /// Server transactions by the 64-bit hash of their key, the key itself
    /// being in the transaction: Timer J keeps every server transaction
    /// for 64*T1 (hundreds of thousands under load), so each holds its
    /// key once, not twice. A lookup compares the key in the transaction.
    servers: HashMap<u64, TxnId, Numbers>,
    /// The server transactions whose key's hash was already taken by
    /// another key when they started (practically never: the hash is
    /// keyed SipHash), by their whole key.
    collided: HashMap<Hashed<ServerKey>, TxnId, Numbers>,
    /// Hashes the keys of `clients` and `servers` (randomly seeded: the
    /// keys come from the network).
    keys: RandomState,
    transmits: VecDeque<Transmit<A>>,
    events: VecDeque<Event>,
}

fn method_key(m: Method<'_>) -> Cow<'static, str> {
    match m {
        Method::Ack => Cow::Borrowed("INVITE"),
        m => m
            .known_name()
            .map_or_else(|| Cow::Owned(m.as_str().to_owned()), Cow::Borrowed),
    }
}

impl<A: Clone> Transactions<A> {
    /// An empty layer with these timer values.
    pub fn new(timers: Timers) -> Self {
        Transactions {
            timers,
            next: 1,
            txns: HashMap::default(),
            wheel: BinaryHeap::new(),
            clients: HashMap::default(),
            servers: HashMap::default(),
            collided: HashMap::default(),
            keys: RandomState::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The timer values.
    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// How many transactions are alive.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    /// Whether no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// A transaction's kind and state, while it lives.
    pub fn state(&self, id: TxnId) -> Option<(Kind, State)> {
        self.txns.get(&id).map(|t| (t.kind, t.state))
    }

    fn hashed<K: Hash>(&self, key: K) -> Hashed<K> {
        Hashed {
            hash: self.keys.hash_one(&key),
            key,
        }
    }

    fn alloc(&mut self) -> TxnId {
        let id = TxnId(self.next);
        self.next += 1;
        id
    }

    fn send(&mut self, id: TxnId, bytes: Vec<u8>, retransmission: bool) {
        if let Some(t) = self.txns.get(&id) {
            self.transmits.push_back(Transmit {
                txn: id,
                to: t.to.clone(),
                from_port: t.local,
                bytes,
                retransmission,
            });
        }
    }

    /// Records transaction `id`'s earliest timer after a change.
    fn rearm(&mut self, id: TxnId) {
        if let Some(at) = self.txns.get(&id).and_then(|t| t.earliest()) {
            self.wheel.push(Reverse((at, id)));
        }
    }

    fn remove(&mut self, id: TxnId) -> Option<Box<Txn<A>>> {
        let t = self.txns.remove(&id)?;
        if let Some(k) = &t.client_key {
            self.clients.remove(k);
        }
        if let Some(k) = &t.server_key {
            // One lookup in the large table; another key's transaction
            // filed under this hash goes back.
            match self.servers.remove(&k.hash) {
                Some(other) if other != id => {
                    self.servers.insert(k.hash, other);
                    self.collided.remove(k);
                }
                Some(_) => {}
                None => {
                    self.collided.remove(k);
                }
            }
        }
        Some(t)
    }

    /// The server transaction with this key.
    fn find_server(&self, key: &Hashed<ServerKey>) -> Option<TxnId> {
        let first = self.servers.get(&key.hash).copied().filter(|id| {
            self.txns
                .get(id)
                .is_some_and(|t| t.server_key.as_ref() == Some(key))
        });
        first.or_else(|| self.collided.get(key).copied())
    }

    /// Files server transaction `id` (holding `key`) under its key's
    /// hash, or by its whole key if another key has that hash.
    fn file_server(&mut self, key: &Hashed<ServerKey>, id: TxnId) {
        match self.servers.entry(key.hash) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(key.clone(), id);
            }
        }
    }

    /// Starts a non-INVITE client transaction for `request`, to be sent to
    /// `to`: the request is queued for sending, Timer F is set, and Timer E
    /// too over an unreliable transport.
    pub fn start_client(
        &mut self,
        request: &Message<'_>,
        to: A,
        reliability: Reliability,
        now: Duration,
    ) -> Result<TxnId, TxnError> {
        self.start_client_at(request, to, None, reliability, now)
    }

    /// [`Transactions::start_client`] for a caller sending from several
    /// ports: the request (and its retransmissions) carry `local`
    /// ([`Transmit::from_port`]) so they leave from it. On Gm that keeps
    /// a request on the flow `gm` chose, over the SA set it names, when
    /// two sets to one peer port live side by side (an SA handover).
    pub fn start_client_at(
        &mut self,
        request: &Message<'_>,
        to: A,
        local: Option<u16>,
        reliability: Reliability,
        now: Duration,
    ) -> Result<TxnId, TxnError> {
        let method = request.method().ok_or(TxnError::Refused(
            "a response cannot start a client transaction",
        ))?;
        if matches!(method, Method::Invite | Method::Ack) {
            return Err(TxnError::Unsupported(method.as_str().to_owned()));
        }
        let cseq = request.cseq()?;
        if cseq.method != method {
            return Err(TxnError::Refused("the CSeq method is not the request's"));
        }
        let via = request.top_via()?;
        let branch = match via.branch {
            Some(b) if b.starts_with(MAGIC_COOKIE) => b.to_owned(),
            _ => return Err(TxnError::NoBranch),
        };
        let key = self.hashed((branch, method.as_str().to_owned()));
        if self.clients.contains_key(&key) {
            return Err(TxnError::Duplicate);
        }
        let id = self.alloc();
        let t1 = self.timers.t1;
        let bytes = request.to_bytes();
        self.txns.insert(
            id,
            Box::new(Txn {
                kind: Kind::Client,
                state: State::Trying,
                reliability,
                to,
                local,
                last: Some(bytes.clone()),
                request_to_tag: None,
                response_to_tag: None,
                retransmit: (reliability == Reliability::Unreliable).then_some((now + t1, t1)),
                deadline: Some((now + self.timers.timeout(), Deadline::Timeout)),
                client_key: Some(key.clone()),
                server_key: None,
            }),
        );
        self.clients.insert(key, id);
        self.rearm(id);
        self.send(id, bytes, false);
        Ok(id)
    }

    /// A response arrived: matched by top Via branch and CSeq method.
    pub fn on_response(&mut self, response: &Message<'_>, now: Duration) -> ResponseVerdict {
        let Some(status) = response.status() else {
            return ResponseVerdict::NoMatch;
        };
        let (Ok(via), Ok(cseq)) = (response.top_via(), response.cseq()) else {
            return ResponseVerdict::NoMatch;
        };
        let Some(branch) = via.branch else {
            return ResponseVerdict::NoMatch;
        };
        let key = self.hashed((branch.to_owned(), cseq.method.as_str().to_owned()));
        let Some(&id) = self.clients.get(&key) else {
            return ResponseVerdict::NoMatch;
        };
        let t4 = self.timers.t4;
        let Some(t) = self.txns.get_mut(&id) else {
            return ResponseVerdict::NoMatch;
        };
        match (t.state, status) {
            (State::Trying | State::Proceeding, 100..=199) => {
                t.state = State::Proceeding;
                ResponseVerdict::ToTu(id)
            }
            (State::Trying | State::Proceeding, _) => {
                t.state = State::Completed;
                t.retransmit = None;
                let k = match t.reliability {
                    Reliability::Unreliable => t4,
                    Reliability::Reliable => Duration::ZERO,
                };
                t.deadline = Some((now + k, Deadline::End));
                self.rearm(id);
                ResponseVerdict::ToTu(id)
            }
            _ => ResponseVerdict::Absorbed(id),
        }
    }

    /// The key of a request's server transaction, and its To tag when
    /// the key is an RFC 2543 one (the only matching that needs it).
    fn server_key(request: &Message<'_>) -> Result<(ServerKey, Option<String>), TxnError> {
        let method = request.method().ok_or(TxnError::Refused("not a request"))?;
        let via = request.top_via()?;
        // Parsed for every request: one without a valid To starts nothing.
        let to = request.to()?;
        if let Some(branch) = via.branch.filter(|b| b.starts_with(MAGIC_COOKIE)) {
            let mut sent_by = via.host.to_string();
            if let Some(p) = via.port {
                // Writing to a String does not fail.
                let _ = fmt::Write::write_fmt(&mut sent_by, format_args!(":{p}"));
            }
            sent_by.make_ascii_lowercase();
            return Ok((
                ServerKey::Rfc3261 {
                    branch: branch.to_owned(),
                    sent_by,
                    method: method_key(method),
                },
                None,
            ));
        }
        let uri = match request.start_line() {
            crate::sip::StartLine::Request { uri, .. } => uri.to_string(),
            _ => return Err(TxnError::Refused("not a request")),
        };
        let cseq = request.cseq()?;
        let from = request.from()?;
        Ok((
            ServerKey::Rfc2543(Box::new(Rfc2543Key {
                uri,
                from_tag: from.tag().unwrap_or_default().to_owned(),
                call_id: request.call_id()?.to_owned(),
                cseq: cseq.seq,
                via: via.to_string(),
                method: method_key(method),
            })),
            to.tag().map(str::to_owned),
        ))
    }

    /// A request arrived from `from` (the address and port it came from,
    /// where responses go, RFC 3581). A new one starts a server transaction
    /// (an INVITE's answers `100 Trying` at once); a retransmission gets
    /// the last response again; an ACK ends an INVITE server transaction's
    /// wait.
    pub fn on_request(
        &mut self,
        request: &Message<'_>,
        from: A,
        reliability: Reliability,
        now: Duration,
    ) -> Result<RequestVerdict, TxnError> {
        self.on_request_at(request, from, None, reliability, now)
    }

    /// [`Transactions::on_request`] for a caller listening on several
    /// ports: `local` is the port the request arrived on, and the
    /// transaction's responses carry it ([`Transmit::from_port`]) so they
    /// leave from it (RFC 3581 §4). On Gm that keeps a response on the
    /// request's flow: one to a request that came in clear to the plain
    /// port leaves in clear from it, even when another flow to the same
    /// address has SAs.
    pub fn on_request_at(
        &mut self,
        request: &Message<'_>,
        from: A,
        local: Option<u16>,
        reliability: Reliability,
        now: Duration,
    ) -> Result<RequestVerdict, TxnError> {
        let method = request.method().ok_or(TxnError::Refused("not a request"))?;
        request.cseq()?;
        let (key, to_tag) = Self::server_key(request)?;
        let key = self.hashed(key);
        let found = self.find_server(&key).filter(|id| {
            // RFC 2543 matching also compares To tags: the request's for a
            // retransmission, the response's for an ACK.
            let Some(t) = self.txns.get(id) else {
                return false;
            };
            match (&key.key, method) {
                (ServerKey::Rfc2543(_), Method::Ack) => t.response_to_tag == to_tag,
                (ServerKey::Rfc2543(_), _) => t.request_to_tag == to_tag,
                _ => true,
            }
        });
        if method == Method::Ack {
            let Some(id) = found else {
                return Ok(RequestVerdict::AckToTu);
            };
            let t4 = self.timers.t4;
            if let Some(t) = self.txns.get_mut(&id) {
                if t.state == State::Completed {
                    t.state = State::Confirmed;
                    t.retransmit = None;
                    let i = match t.reliability {
                        Reliability::Unreliable => t4,
                        Reliability::Reliable => Duration::ZERO,
                    };
                    t.deadline = Some((now + i, Deadline::End));
                }
            }
            self.rearm(id);
            return Ok(RequestVerdict::Absorbed(id));
        }
        if let Some(id) = found {
            let again = self.txns.get(&id).and_then(|t| t.last.clone());
            if let Some(bytes) = again {
                self.send(id, bytes, true);
            }
            return Ok(RequestVerdict::Absorbed(id));
        }
        let id = self.alloc();
        let invite = method == Method::Invite;
        self.txns.insert(
            id,
            Box::new(Txn {
                kind: if invite {
                    Kind::InviteServer
                } else {
                    Kind::Server
                },
                state: if invite {
                    State::Proceeding
                } else {
                    State::Trying
                },
                reliability,
                to: from,
                local,
                last: None,
                request_to_tag: to_tag,
                response_to_tag: None,
                retransmit: None,
                deadline: None,
                client_key: None,
                server_key: None,
            }),
        );
        self.file_server(&key, id);
        if let Some(t) = self.txns.get_mut(&id) {
            t.server_key = Some(key);
        }
        if invite {
            // §17.2.1: 100 Trying at once (the TU may take longer than
            // 200 ms), without a To tag.
            let trying = Builder::response_to(request, 100, None).build()?;
            let bytes = trying.to_bytes();
            if let Some(t) = self.txns.get_mut(&id) {
                t.last = Some(bytes.clone());
            }
            self.send(id, bytes, false);
        }
        Ok(RequestVerdict::New(id))
    }

    /// The TU answers server transaction `id` with `response`: it is sent,
    /// and the transaction moves on (a final response starts Timer J, or
    /// G and H for an INVITE). A final response after the final one is
    /// refused (§17.2.2: discarded).
    pub fn respond(
        &mut self,
        id: TxnId,
        response: &Message<'_>,
        now: Duration,
    ) -> Result<(), TxnError> {
        let status = response
            .status()
            .ok_or(TxnError::Refused("a request is not a response"))?;
        let timers = self.timers;
        let t = self.txns.get_mut(&id).ok_or(TxnError::Unknown(id))?;
        // Only an INVITE server transaction with an RFC 2543 key matches
        // the ACK by the response's To tag; the others need no parse.
        let rfc2543 = matches!(&t.server_key, Some(k) if matches!(k.key, ServerKey::Rfc2543(_)));
        let to_tag = if t.kind == Kind::InviteServer && rfc2543 {
            response.to()?.tag().map(str::to_owned)
        } else if response.rows(HeaderName::To).next().is_none() {
            return Err(SipError::Missing(HeaderName::To).into());
        } else {
            None
        };
        let provisional = status < 200;
        match (t.kind, t.state) {
            (Kind::Client, _) => {
                return Err(TxnError::Refused("a client transaction sends no response"));
            }
            (_, State::Completed | State::Confirmed) => {
                return Err(TxnError::Refused(
                    "the transaction has sent its final response",
                ));
            }
            _ => {}
        }
        let bytes = response.to_bytes();
        t.last = Some(bytes.clone());
        t.response_to_tag = to_tag;
        let mut terminate = false;
        if provisional {
            t.state = State::Proceeding;
        } else if t.kind == Kind::InviteServer && status < 300 {
            // §17.2.1: a 2xx ends the INVITE server transaction; the TU
            // retransmits it.
            terminate = true;
        } else {
            t.state = State::Completed;
            let unreliable = t.reliability == Reliability::Unreliable;
            if t.kind == Kind::InviteServer {
                t.retransmit = unreliable.then_some((now + timers.t1, timers.t1));
                t.deadline = Some((now + timers.timeout(), Deadline::Timeout));
            } else {
                let j = if unreliable {
                    timers.timeout()
                } else {
                    Duration::ZERO
                };
                t.deadline = Some((now + j, Deadline::End));
            }
        }
        self.rearm(id);
        self.send(id, bytes, false);
        if terminate {
            self.remove(id);
            self.events.push_back(Event::Terminated(id));
        }
        Ok(())
    }

    /// The transport could not send for transaction `id` (§17.1.4,
    /// §17.2.4): it ends at once (reported as [`Event::TransportError`]).
    pub fn transport_error(&mut self, id: TxnId) {
        if self.remove(id).is_some() {
            self.events.push_back(Event::TransportError(id));
        }
    }

    /// Whether an event waits for [`Transactions::poll_event`] (one that
    /// [`Transactions::transport_error`] reported between two calls).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// When [`Transactions::handle_timeout`] must next be called, if any
    /// timer is running. (A scan of the live transactions: a UE has a few.)
    pub fn poll_timeout(&self) -> Option<Duration> {
        // Possibly a stale entry, earlier than any live timer: the caller
        // then calls `handle_timeout` once for nothing, which drops it.
        self.wheel.peek().map(|Reverse((at, _))| *at)
    }

    /// Fires every timer due at `now`: retransmissions are queued for
    /// [`Transactions::poll_transmit`], timeouts and ends for
    /// [`Transactions::poll_event`].
    pub fn handle_timeout(&mut self, now: Duration) {
        let mut due: Vec<TxnId> = Vec::new();
        while let Some(Reverse((at, id))) = self.wheel.peek().copied() {
            if at > now {
                break;
            }
            self.wheel.pop();
            if self.txns.get(&id).and_then(|t| t.earliest()) == Some(at) {
                due.push(id);
            }
        }
        due.sort();
        due.dedup();
        let timers = self.timers;
        for id in due {
            let Some(t) = self.txns.get_mut(&id) else {
                continue;
            };
            if let Some((at, kind)) = t.deadline {
                if at <= now {
                    self.remove(id);
                    self.events.push_back(match kind {
                        Deadline::Timeout => Event::Timeout(id),
                        Deadline::End => Event::Terminated(id),
                    });
                    continue;
                }
            }
            let mut again = None;
            if let Some((at, interval)) = t.retransmit {
                if at <= now {
                    // E in Proceeding: T2. E in Trying and G: double, up
                    // to T2.
                    let next = if t.kind == Kind::Client && t.state == State::Proceeding {
                        timers.t2
                    } else {
                        interval.saturating_mul(2).min(timers.t2)
                    };
                    t.retransmit = Some((now + next, next));
                    again = t.last.clone();
                }
            }
            self.rearm(id);
            if let Some(bytes) = again {
                self.send(id, bytes, true);
            }
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<A>> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// RFC 3581 §4 and RFC 3261 §18.2.1: a server stamps the top Via of a
/// received request with `received` (the source address, when it differs
/// from sent-by or when `rport` is asked for) and fills in `rport` with the
/// source port when the client asked for it. Returns whether the Via was
/// changed. Responses then go to `received`:`rport` (§18.2.2 and RFC 3581
/// §4), which is the `from` given to [`Transactions::on_request`].
///
/// ```
/// use gm::sip::Message;
/// let mut m = Message::parse(b"MESSAGE sip:b@example.org SIP/2.0\r\n\
///     Via: SIP/2.0/UDP ue.example.org:5060;branch=z9hG4bK1;rport\r\n\
///     From: <sip:a@example.org>;tag=1\r\nTo: <sip:b@example.org>\r\n\
///     Call-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n").unwrap();
/// assert!(gm::txn::stamp_via(&mut m, "192.0.2.7:40000".parse().unwrap()).unwrap());
/// let via = m.top_via().unwrap();
/// assert_eq!(via.received, Some("192.0.2.7".parse().unwrap()));
/// assert_eq!(via.rport, gm::sip::header::Rport::Port(40000));
/// ```
pub fn stamp_via(
    request: &mut Message<'_>,
    source: std::net::SocketAddr,
) -> Result<bool, TxnError> {
    use crate::sip::Host;
    use crate::sip::header::{Rport, Via};
    let Some(index) = request
        .headers()
        .iter()
        .position(|h| h.kind() == HeaderName::Via)
    else {
        return Err(TxnError::Message(
            request
                .top_via()
                .err()
                .unwrap_or(SipError::Missing(HeaderName::Via)),
        ));
    };
    let value = {
        let row = request
            .headers()
            .get(index)
            .map(|h| h.value())
            .unwrap_or_default();
        let (vias, first_end) =
            Via::parse_list_with_first_end(row).map_err(|syntax| SipError::Header {
                name: HeaderName::Via,
                syntax,
            })?;
        let Some(top) = vias.first() else {
            return Ok(false);
        };
        let ip = source.ip();
        let same_host = match top.host {
            Host::V4(a) => std::net::IpAddr::V4(a) == ip,
            Host::V6(a) => std::net::IpAddr::V6(a) == ip,
            Host::Name(_) => false,
        };
        let asked = top.rport != Rport::Absent;
        if same_host && !asked {
            // Left as it is: the row parsed as check_value parses it.
            if let Some(h) = request.headers().get(index) {
                h.mark_checked();
            }
            return Ok(false);
        }
        // The top via as written up to its parameters (a host has no
        // ';'), its parameters but received (and rport when asked for),
        // the two stamped, and the rest of the row as written.
        let first = row.get(..first_end).unwrap_or(row);
        let sent = first
            .find(';')
            .and_then(|i| first.get(..i))
            .unwrap_or(first);
        let mut value = String::with_capacity(row.len() + 48);
        value.push_str(sent.trim_end_matches([' ', '\t', '\r', '\n']));
        for p in top.params.iter().filter(|p| {
            !(p.name.eq_ignore_ascii_case("received")
                || asked && p.name.eq_ignore_ascii_case("rport"))
        }) {
            value.push(';');
            value.push_str(p.name);
            if let Some(v) = p.value {
                value.push('=');
                value.push_str(v);
            }
        }
        value.push_str(";received=");
        match ip {
            std::net::IpAddr::V4(a) => value.push_str(crate::sip::V4Text::new(a).as_str()),
            // Writing to a String does not fail.
            std::net::IpAddr::V6(a) => {
                let _ = fmt::Write::write_fmt(&mut value, format_args!("{a}"));
            }
        }
        if asked {
            let _ = fmt::Write::write_fmt(&mut value, format_args!(";rport={}", source.port()));
        }
        value.push_str(row.get(first_end..).unwrap_or_default());
        value
    };
    request.replace_header(index, value)?;
    // Written from the row's parsed vias and two well-formed parameters.
    if let Some(h) = request.headers().get(index) {
        debug_assert!(Via::parse_list(h.value()).is_ok());
        h.mark_checked();
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn req(method: &str, branch: &str) -> Message<'static> {
        let text = format!(
            "{method} sip:bob@example.org SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
             From: <sip:a@example.org>;tag=f1\r\nTo: <sip:bob@example.org>\r\nCall-ID: c1\r\n\
             CSeq: 7 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).unwrap().into_owned()
    }

    fn resp(request: &Message<'_>, status: u16) -> Message<'static> {
        let b = Builder::response_to(request, status, None);
        let b = if status > 100 { b.to_tag("t9") } else { b };
        b.build().unwrap()
    }

    fn drain<A: Clone>(t: &mut Transactions<A>) -> Vec<Transmit<A>> {
        std::iter::from_fn(|| t.poll_transmit()).collect()
    }

    /// Files a request that must open a new server transaction.
    fn new_server<A: Clone>(
        t: &mut Transactions<A>,
        r: &Message<'_>,
        from: A,
        local: Option<u16>,
        reliability: Reliability,
        now: Duration,
    ) -> TxnId {
        match t.on_request_at(r, from, local, reliability, now) {
            Ok(RequestVerdict::New(id)) => id,
            v => panic!("{v:?}"),
        }
    }

    /// Runs the timers up to `until`, returning the times a message was
    /// sent again.
    fn run<A: Clone>(t: &mut Transactions<A>, until: Duration) -> Vec<Duration> {
        let mut sent = Vec::new();
        while let Some(at) = t.poll_timeout().filter(|&at| at <= until) {
            t.handle_timeout(at);
            sent.extend(drain(t).iter().filter(|x| x.retransmission).map(|_| at));
        }
        sent
    }

    #[test]
    fn a_transport_error_ends_the_transaction_at_once_and_says_so() {
        let mut t: Transactions<u8> = Transactions::new(Timers::default());
        let r = req("MESSAGE", "z9hG4bKte");
        let id = t
            .start_client(&r, 1, Reliability::Unreliable, Duration::ZERO)
            .unwrap();
        assert_eq!(drain(&mut t).len(), 1);
        t.transport_error(id);
        assert_eq!(t.poll_event(), Some(Event::TransportError(id)));
        assert!(t.is_empty());
        assert!(
            run(&mut t, Duration::from_secs(40)).is_empty(),
            "no retransmission"
        );
        assert_eq!(t.poll_event(), None);
        // Reported once: a second report of the same id is nothing.
        t.transport_error(id);
        assert_eq!(t.poll_event(), None);
    }

    #[test]
    fn client_retransmits_at_t1_doubling_to_t2_and_times_out_at_64_t1() {
        let mut t: Transactions<u8> = Transactions::new(Timers::default());
        let r = req("MESSAGE", "z9hG4bKa");
        let id = t
            .start_client(&r, 1, Reliability::Unreliable, Duration::ZERO)
            .unwrap();
        assert_eq!(drain(&mut t).len(), 1);
        let sent = run(&mut t, Duration::from_secs(40));
        // 0.5, 1.5, 3.5, 7.5, then every 4 s until F at 32 s.
        let want: Vec<Duration> = [
            500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ]
        .into_iter()
        .map(MS)
        .collect();
        assert_eq!(sent, want);
        assert_eq!(t.poll_event(), Some(Event::Timeout(id)));
        assert!(t.is_empty());
    }

    #[test]
    fn a_provisional_response_sets_the_interval_to_t2() {
        let mut t: Transactions<u8> = Transactions::new(Timers::default());
        let r = req("REGISTER", "z9hG4bKb");
        let id = t
            .start_client(&r, 1, Reliability::Unreliable, Duration::ZERO)
            .unwrap();
        drain(&mut t);
        assert_eq!(run(&mut t, MS(600)), vec![MS(500)]);
        assert_eq!(
            t.on_response(&resp(&r, 100), MS(700)),
            ResponseVerdict::ToTu(id)
        );
        assert_eq!(t.state(id), Some((Kind::Client, State::Proceeding)));
        // The pending E (due at 1.5 s) fires, then every T2.
        assert_eq!(run(&mut t, MS(10_000)), vec![MS(1500), MS(5500), MS(9500)]);
        assert_eq!(
            t.on_response(&resp(&r, 180), MS(9600)),
            ResponseVerdict::ToTu(id)
        );
        assert_eq!(
            t.on_response(&resp(&r, 200), MS(9700)),
            ResponseVerdict::ToTu(id)
        );
        assert_eq!(
            t.on_response(&resp(&r, 200), MS(9800)),
            ResponseVerdict::Absorbed(id)
        );
        assert_eq!(
            t.on_response(&resp(&r, 180), MS(9800)),
            ResponseVerdict::Absorbed(id)
        );
        // K = T4 after the final response; nothing sent meanwhile.
        assert!(run(&mut t, MS(14_600)).is_empty());
        assert_eq!(t.poll_event(), None);
        assert!(run(&mut t, MS(14_700)).is_empty());
        assert_eq!(t.poll_event(), Some(Event::Terminated(id)));
    }

    #[test]
    fn reliable_client_never_retransmits_and_ends_at_once() {
        let mut t: Transactions<u8> = Transactions::new(Timers::default());
        let r = req("MESSAGE", "z9hG4bKc");
        let id = t
            .start_client(&r, 1, Reliability::Reliable, Duration::ZERO)
            .unwrap();
        drain(&mut t);
        assert!(run(&mut t, MS(31_000)).is_empty());
        assert_eq!(
            t.on_response(&resp(&r, 202), MS(31_000)),
            ResponseVerdict::ToTu(id)
        );
        t.handle_timeout(MS(31_000));
        assert_eq!(t.poll_event(), Some(Event::Terminated(id)));
    }

    #[test]
    fn responses_match_by_branch_and_cseq_method() {
        let mut t: Transactions<u8> = Transactions::new(Timers::default());
        let r = req("MESSAGE", "z9hG4bKd");
        t.start_client(&r, 1, Reliability::Unreliable, Duration::ZERO)
            .unwrap();
        let other = req("MESSAGE", "z9hG4bKe");
        assert_eq!(
            t.on_response(&resp(&other, 200), MS(1)),
            ResponseVerdict::NoMatch
        );
        let cancel = req("CANCEL", "z9hG4bKd");
        assert_eq!(
            t.on_response(&resp(&cancel, 200), MS(1)),
            ResponseVerdict::NoMatch
        );
        assert_eq!(
            t.start_client(&r, 1, Reliability::Unreliable, MS(2)),
            Err(TxnError::Duplicate)
        );
        assert_eq!(
            t.start_client(&req("MESSAGE", "abc"), 1, Reliability::Unreliable, MS(2)),
            Err(TxnError::NoBranch)
        );
        assert!(matches!(
            t.start_client(
                &req("INVITE", "z9hG4bKf"),
                1,
                Reliability::Unreliable,
                MS(2)
            ),
            Err(TxnError::Unsupported(_))
        ));
    }

    #[test]
    fn server_absorbs_retransmissions_and_resends_the_last_response() {
        let mut t: Transactions<&str> = Transactions::new(Timers::default());
        let r = req("MESSAGE", "z9hG4bKs");
        let id = new_server(&mut t, &r, "ue", None, Reliability::Unreliable, MS(0));
        // Trying: a retransmission is discarded, nothing sent.
        assert_eq!(
            t.on_request(&r, "ue", Reliability::Unreliable, MS(500))
                .unwrap(),
            RequestVerdict::Absorbed(id)
        );
        assert!(drain(&mut t).is_empty());
        t.respond(id, &resp(&r, 100), MS(600)).unwrap();
        assert_eq!(drain(&mut t).len(), 1);
        t.on_request(&r, "ue", Reliability::Unreliable, MS(1500))
            .unwrap();
        let again = drain(&mut t);
        assert_eq!(again.len(), 1);
        assert!(again[0].retransmission);
        assert_eq!(Message::parse(&again[0].bytes).unwrap().status(), Some(100));
        let ok = resp(&r, 200);
        t.respond(id, &ok, MS(2000)).unwrap();
        assert_eq!(drain(&mut t)[0].to, "ue");
        // A second final is refused; a retransmission gets the 200.
        assert!(t.respond(id, &resp(&r, 500), MS(2100)).is_err());
        t.on_request(&r, "ue", Reliability::Unreliable, MS(3500))
            .unwrap();
        assert_eq!(drain(&mut t)[0].bytes, ok.to_bytes());
        // J = 64*T1 after the final response.
        t.handle_timeout(MS(33_999));
        assert_eq!(t.poll_event(), None);
        t.handle_timeout(MS(34_000));
        assert_eq!(t.poll_event(), Some(Event::Terminated(id)));
        // The same request now starts a new transaction.
        assert!(matches!(
            t.on_request(&r, "ue", Reliability::Unreliable, MS(34_001))
                .unwrap(),
            RequestVerdict::New(_)
        ));
    }

    /// RFC 3581 §4: a server transaction's responses, first copies and
    /// retransmissions, leave from the port its request arrived on; a
    /// client transaction's request and one with no port given carry none.
    #[test]
    fn responses_carry_the_port_their_request_arrived_on() {
        let mut t: Transactions<&str> = Transactions::new(Timers::default());
        let r = req("REGISTER", "z9hG4bKp");
        let id = new_server(&mut t, &r, "ue", Some(5062), Reliability::Unreliable, MS(0));
        t.respond(id, &resp(&r, 200), MS(1)).unwrap();
        let first = drain(&mut t);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].from_port, first[0].retransmission),
            (Some(5062), false)
        );
        // The retransmission of the request gets the 200 again, from the
        // same port.
        t.on_request_at(&r, "ue", Some(5062), Reliability::Unreliable, MS(500))
            .unwrap();
        let again = drain(&mut t);
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].from_port, again[0].retransmission),
            (Some(5062), true)
        );
        // Another request on another port keeps its own.
        let other = req("MESSAGE", "z9hG4bKq");
        let id2 = new_server(
            &mut t,
            &other,
            "ue",
            Some(5060),
            Reliability::Unreliable,
            MS(600),
        );
        t.respond(id2, &resp(&other, 202), MS(601)).unwrap();
        assert_eq!(drain(&mut t)[0].from_port, Some(5060));
        // No port given: none carried.
        let plain = req("OPTIONS", "z9hG4bKr");
        let id3 = new_server(&mut t, &plain, "ue", None, Reliability::Unreliable, MS(700));
        t.respond(id3, &resp(&plain, 200), MS(701)).unwrap();
        assert_eq!(drain(&mut t)[0].from_port, None);
        // A client transaction's request and its retransmissions: none.
        let out = req("MESSAGE", "z9hG4bKu");
        t.start_client(&out, "pcscf", Reliability::Unreliable, MS(800))
            .unwrap();
        assert_eq!(drain(&mut t)[0].from_port, None);
        t.handle_timeout(MS(1300));
        let resent = drain(&mut t);
        assert_eq!(resent.len(), 1);
        assert_eq!(
            (resent[0].from_port, resent[0].retransmission),
            (None, true)
        );
        // Started at a port: the request and its retransmissions carry it.
        let mut t: Transactions<&str> = Transactions::new(Timers::default());
        let at = req("REGISTER", "z9hG4bKv");
        t.start_client_at(&at, "pcscf", Some(5072), Reliability::Unreliable, MS(0))
            .unwrap();
        assert_eq!(drain(&mut t)[0].from_port, Some(5072));
        t.handle_timeout(MS(500));
        let resent = drain(&mut t);
        assert_eq!(resent.len(), 1);
        assert_eq!(
            (resent[0].from_port, resent[0].retransmission),
            (Some(5072), true)
        );
    }

    #[test]
    fn server_matching_needs_branch_sent_by_and_method() {
        let mut t: Transactions<u8> = Transactions::new(Timers::default());
        let r = req("MESSAGE", "z9hG4bKm");
        t.on_request(&r, 1, Reliability::Unreliable, MS(0)).unwrap();
        // Same branch from another sent-by: another transaction.
        let text = String::from_utf8(r.to_bytes())
            .unwrap()
            .replace("192.0.2.1:5060", "192.0.2.66:5060");
        let spoof = Message::parse(text.as_bytes()).unwrap();
        assert!(matches!(
            t.on_request(&spoof, 2, Reliability::Unreliable, MS(1))
                .unwrap(),
            RequestVerdict::New(_)
        ));
        // Same branch, other method.
        assert!(matches!(
            t.on_request(
                &req("OPTIONS", "z9hG4bKm"),
                1,
                Reliability::Unreliable,
                MS(1)
            )
            .unwrap(),
            RequestVerdict::New(_)
        ));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn server_keys_whose_hashes_collide_are_told_apart() {
        let mut layer: Transactions<&str> = Transactions::new(Timers::default());
        let (a, b) = (req("MESSAGE", "z9hG4bKa"), req("MESSAGE", "z9hG4bKb"));
        let ids =
            [&a, &b].map(
                |m| match layer.on_request(m, "ue", Reliability::Unreliable, MS(0)) {
                    Ok(RequestVerdict::New(id)) => id,
                    other => panic!("{other:?}"),
                },
            );
        // Give b's key a's hash, as a collision would, and file it again.
        let key_a = layer.txns[&ids[0]].server_key.clone().unwrap();
        let mut key_b = layer.txns[&ids[1]].server_key.clone().unwrap();
        layer.servers.remove(&key_b.hash);
        key_b.hash = key_a.hash;
        layer.file_server(&key_b, ids[1]);
        if let Some(t) = layer.txns.get_mut(&ids[1]) {
            t.server_key = Some(key_b.clone());
        }
        assert_eq!(layer.collided.len(), 1);
        assert_eq!(layer.find_server(&key_a), Some(ids[0]));
        assert_eq!(layer.find_server(&key_b), Some(ids[1]));
        // Each ends on its own; the other is still found.
        layer.remove(ids[0]);
        assert_eq!(layer.find_server(&key_a), None);
        assert_eq!(layer.find_server(&key_b), Some(ids[1]));
        layer.remove(ids[1]);
        assert_eq!(layer.find_server(&key_b), None);
        assert!(layer.servers.is_empty() && layer.collided.is_empty());
    }

    #[test]
    fn a_response_to_a_non_invite_needs_a_to_but_no_parse_of_it() {
        let mut layer: Transactions<&str> = Transactions::new(Timers::default());
        let r = req("MESSAGE", "z9hG4bK1");
        let id = new_server(&mut layer, &r, "ue", None, Reliability::Unreliable, MS(0));
        let mut no_to = resp(&r, 200);
        no_to.remove_header("To");
        assert!(layer.respond(id, &no_to, MS(1)).is_err());
        layer.respond(id, &resp(&r, 200), MS(1)).unwrap();
        // The retransmission gets it again; the key holds no To tag.
        assert_eq!(
            layer.on_request(&r, "ue", Reliability::Unreliable, MS(2)),
            Ok(RequestVerdict::Absorbed(id))
        );
        assert_eq!(layer.txns[&id].response_to_tag, None);
    }

    #[test]
    fn rfc2543_requests_match_by_their_headers() {
        let mut t: Transactions<u8> = Transactions::new(Timers::default());
        let r = req("MESSAGE", "old1");
        let id = new_server(&mut t, &r, 1, None, Reliability::Unreliable, MS(0));
        assert_eq!(
            t.on_request(&r, 1, Reliability::Unreliable, MS(1)).unwrap(),
            RequestVerdict::Absorbed(id)
        );
        let text = String::from_utf8(r.to_bytes())
            .unwrap()
            .replace("CSeq: 7", "CSeq: 8");
        assert!(matches!(
            t.on_request(
                &Message::parse(text.as_bytes()).unwrap(),
                1,
                Reliability::Unreliable,
                MS(2)
            )
            .unwrap(),
            RequestVerdict::New(_)
        ));
    }

    #[test]
    fn invite_server_sends_100_retransmits_488_until_the_ack() {
        let mut t: Transactions<u8> = Transactions::new(Timers::default());
        let inv = req("INVITE", "z9hG4bKi");
        let id = new_server(&mut t, &inv, 1, None, Reliability::Unreliable, MS(0));
        let trying = drain(&mut t);
        assert_eq!(
            Message::parse(&trying[0].bytes).unwrap().status(),
            Some(100)
        );
        // A retransmitted INVITE gets the 100 again.
        t.on_request(&inv, 1, Reliability::Unreliable, MS(400))
            .unwrap();
        assert_eq!(drain(&mut t).len(), 1);
        t.respond(id, &resp(&inv, 488), MS(1000)).unwrap();
        drain(&mut t);
        // G: T1, 2 T1, 4 T1, then T2.
        assert_eq!(
            run(&mut t, MS(12_000)),
            vec![MS(1500), MS(2500), MS(4500), MS(8500)]
        );
        let text = String::from_utf8(inv.to_bytes())
            .unwrap()
            .replace("INVITE sip", "ACK sip")
            .replace("7 INVITE", "7 ACK");
        let ack = Message::parse(text.as_bytes()).unwrap();
        assert_eq!(
            t.on_request(&ack, 1, Reliability::Unreliable, MS(12_000))
                .unwrap(),
            RequestVerdict::Absorbed(id)
        );
        assert_eq!(t.state(id), Some((Kind::InviteServer, State::Confirmed)));
        // No more 488s; I = T4 later it ends; further ACKs absorbed.
        assert!(run(&mut t, MS(16_999)).is_empty());
        t.on_request(&ack, 1, Reliability::Unreliable, MS(16_000))
            .unwrap();
        assert!(drain(&mut t).is_empty());
        run(&mut t, MS(17_000));
        assert_eq!(t.poll_event(), Some(Event::Terminated(id)));
        // An ACK now matches nothing: the TU's.
        assert_eq!(
            t.on_request(&ack, 1, Reliability::Unreliable, MS(17_001))
                .unwrap(),
            RequestVerdict::AckToTu
        );
    }

    #[test]
    fn invite_server_without_ack_times_out_at_h() {
        let mut t: Transactions<u8> = Transactions::new(Timers::default());
        let inv = req("INVITE", "z9hG4bKh");
        let id = new_server(&mut t, &inv, 1, None, Reliability::Reliable, MS(0));
        t.respond(id, &resp(&inv, 488), MS(0)).unwrap();
        drain(&mut t);
        // Reliable: no G; H at 64*T1.
        assert!(run(&mut t, MS(31_999)).is_empty());
        run(&mut t, MS(32_000));
        assert_eq!(t.poll_event(), Some(Event::Timeout(id)));
    }

    #[test]
    fn stamp_via_fills_received_and_rport() {
        let text = "MESSAGE sip:b@example.org SIP/2.0\r\n\
            Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK0\r\n\
            Via: SIP/2.0/UDP 192.0.2.8;branch=z9hG4bKx\r\n\
            From: <sip:a@example.org>;tag=1\r\nTo: <sip:b@example.org>\r\n\
            Call-ID: c\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
        let mut m = Message::parse(text.as_bytes()).unwrap();
        assert!(stamp_via(&mut m, "192.0.2.1:1024".parse().unwrap()).unwrap());
        // The top via stamped, the rest of its row as written.
        assert_eq!(
            m.header("Via"),
            Some(
                "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;received=192.0.2.1;rport=1024, \
                 SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK0"
            )
        );
        let vias = m.vias().unwrap();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[0].received, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(vias[0].rport, crate::sip::header::Rport::Port(1024));
        assert_eq!(vias[0].branch, Some("z9hG4bK1"));
        assert_eq!(vias[1].branch, Some("z9hG4bK0"));
        // Whitespace around the parameters, a received to replace and an
        // rport with a value already: the stamped row parses to the same
        // vias but for those two.
        let odd = text.replace(
            "192.0.2.1:5060;branch=z9hG4bK1;rport",
            "192.0.2.1:5060 ; received=10.0.0.1 ;branch=z9hG4bK1; rport=7;x=y",
        );
        let mut m = Message::parse(odd.as_bytes()).unwrap();
        assert!(stamp_via(&mut m, "192.0.2.1:1024".parse().unwrap()).unwrap());
        let v = &m.vias().unwrap()[0];
        assert_eq!(v.received, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(v.rport, crate::sip::header::Rport::Port(1024));
        assert_eq!(
            (v.branch, v.params.value("x")),
            (Some("z9hG4bK1"), Some("y"))
        );
        assert_eq!(m.vias().unwrap().len(), 3);
        // Without rport and from its sent-by address: unchanged.
        let plain = text.replace(";rport", "");
        let mut m = Message::parse(plain.as_bytes()).unwrap();
        assert!(!stamp_via(&mut m, "192.0.2.1:1024".parse().unwrap()).unwrap());
        assert_eq!(m.to_bytes(), plain.as_bytes());
        // From elsewhere: received only.
        assert!(stamp_via(&mut m, "[2001:db8::1]:5060".parse().unwrap()).unwrap());
        let v = m.top_via().unwrap();
        assert_eq!(v.received, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(v.rport, crate::sip::header::Rport::Absent);
    }
}
