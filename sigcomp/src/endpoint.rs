//! [`Endpoint`]: the SigComp layer a SIP stack uses as is, sans-IO.
//!
//! One endpoint holds the two dispatchers of RFC 3320 §4, the state
//! handler (§6) and one compressor per compartment. The application names
//! compartments ([`CompartmentId`]: for SIP one per remote application,
//! RFC 5049 §9) and moves bytes; the endpoint never touches a socket, a
//! clock or a thread.
//!
//! - [`Endpoint::send`]: the compressor dispatcher (§4.1). The message is
//!   compressed for the compartment and the transport (on a stream the
//!   peer's UDVM has DMS / 2, §7, and the output is framed, §4.2.2) and
//!   carries what must travel to that peer: the returned feedback item
//!   the peer asked for and our announcement (§5, §9.4.9). A message that
//!   would go plain goes in the literal form instead when one is pending
//!   (see [`Kind::Literal`]), and always on a stream (RFC 5049 §5).
//! - [`Endpoint::receive`]: the decompressor dispatcher (§4.2). Each
//!   SigComp message is decompressed in a fresh UDVM and comes back as a
//!   [`Received`]: the message, a NACK to send back for a message that
//!   failed (RFC 4077 §2.2), or a NACK from the peer. Nothing is stored.
//! - [`Endpoint::accept`]: the application returns the compartment
//!   identifier once it has authenticated the message (§4.3; for Gm: it
//!   arrived over an IPsec SA of the registered peer, TS 24.229 §8.1.1).
//!   Only then are its states saved and its feedback believed: the
//!   acknowledgement of our states, the peer's announcement, a shared
//!   state (RFC 3321 §5.2), a NACK (matched by SHA-1 against the messages
//!   we sent to that compartment; an unmatched one is counted and
//!   ignored). If `accept` is never called, the [`Received`] is simply
//!   dropped: no state, no feedback, and the peer, never acknowledged,
//!   never refers to what the message would have created.
//!
//! A message over a stream may arrive in any number of segments, several
//! in one: [`Endpoint::receive`] keeps a deframer per [`StreamId`] and
//! returns the completed messages one at a time, so that each is accepted
//! before the next, which may use its states, is decompressed.
//! [`Endpoint::close_stream`] forgets a
//! connection's partial message when it resets; compartments live on and
//! the next connection starts cleanly. NACKs are not retransmissions: over
//! UDP the application retransmits as SIP does, compressing again
//! (RFC 5049 §8), and the compressor has already adjusted; over a stream
//! a matched NACK is reported ([`Accepted::Nack`]) for the application to
//! treat as a transport error (RFC 4077 §2.3.2).
//!
//! ```
//! use sigcomp::{CompartmentId, Endpoint, EndpointConfig, Link, Received};
//!
//! let mut ue = Endpoint::new(EndpointConfig::default()).unwrap();
//! let mut pcscf = Endpoint::new(EndpointConfig::default()).unwrap();
//! // Each side's compartment for the other (RFC 5049 §9: by sigcomp-id).
//! let (to_pcscf, to_ue) = (CompartmentId(1), CompartmentId(7));
//! let msg = b"MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
//!             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n\
//!             Call-ID: a84b4c76e66710\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n\
//!             Content-Length: 5\r\n\r\nHello";
//! let mut wire = Vec::new();
//! ue.send(to_pcscf, msg, Link::Datagram, &mut wire).unwrap();
//! let received = pcscf.receive(&wire, Link::Datagram).unwrap();
//! let Received::Message(m) = &received else { panic!("{received:?}") };
//! assert_eq!(m.message(), Some(&msg[..]));
//! // Authenticated (e.g. it came over the peer's SA): keep its states.
//! pcscf.accept(to_ue, &received);
//! // The reply carries the acknowledgement back, even if it would not
//! // compress (it then travels in the literal form, 14 bytes more).
//! let ok = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
//! let sent = pcscf.send(to_ue, ok, Link::Datagram, &mut wire).unwrap();
//! assert_eq!(sent.compressed.kind, sigcomp::compress::Kind::Literal);
//! let received = ue.receive(&wire, Link::Datagram).unwrap();
//! ue.accept(to_pcscf, &received);
//! assert_eq!(ue.counters().accepted, 1);
//! ```

use std::collections::HashMap;

use crate::compress::{
    Compressed, Compressor, Config, Kind, Level, MAX_MESSAGE, Nacked, SHARED_KEEP, bytecode,
    shared_state,
};
use crate::feedback::{Resources, ReturnedParameters};
use crate::message::{StreamDeframer, frame_stream, is_sigcomp};
use crate::state::{CommitReport, CompartmentId, StateHandler};
use crate::{Decompressed, Decompressor, Error, Failure, Nack, Parameters, Reason, Transport};

/// Names one connection of a stream transport (TCP); the application
/// chooses the values, as it does for compartments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

/// What a message travels over: a datagram (UDP: one SigComp message per
/// datagram) or a connection's byte stream (TCP: messages framed with
/// 0xFFFF, RFC 3320 §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// A message-based transport.
    Datagram,
    /// A stream-based transport, on this connection.
    Stream(StreamId),
}

impl Link {
    /// The transport, which sets the UDVM memory (RFC 3320 §7).
    pub fn transport(self) -> Transport {
        match self {
            Link::Datagram => Transport::Message,
            Link::Stream(_) => Transport::Stream,
        }
    }
}

/// How an [`Endpoint`] compresses and what it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// What our decompressor offers (RFC 3320 §3.3): DMS, the state memory
    /// of each compartment, cycles per bit, version 2 (NACKs).
    pub local: Parameters,
    /// What a peer's decompressor is taken to offer until it announces its
    /// own parameters. Default: the RFC 5049 §4 minimums for SIP (DMS
    /// 8192, SMS 2048, 16 cycles per bit).
    pub peer: Resources,
    /// Compression effort.
    pub level: Level,
    /// Announce `local` (and our locally available bytecode, with
    /// `local_bytecode`) in our messages until the peer acknowledges one
    /// (RFC 3320 §5, §9.4.9).
    pub announce: bool,
    /// Hold our compressor's bytecode as a locally available state
    /// (RFC 3320 §3.3.3), so a peer of ours that knows it never uploads it.
    pub local_bytecode: bool,
    /// Every peer holds our bytecode as a local state, by prior agreement
    /// (both ends ours, RFC 3320 §3.3): it is never uploaded.
    pub peer_has_bytecode: bool,
    /// RFC 3321 §5.2 shared compression with peers that run our compressor
    /// too, announcing requests up to this size as shared states.
    pub shared: Option<u32>,
    /// Peers hold the RFC 5112 presence dictionary.
    pub presence_dictionary: bool,
}

impl Default for EndpointConfig {
    /// Our decompressor: DMS and SMS 8192, 16 cycles per bit, version 2,
    /// announced; peers: the RFC 5049 minimums until they announce; level
    /// Default; no shared compression; presence dictionary on.
    fn default() -> EndpointConfig {
        EndpointConfig {
            local: Parameters::default(),
            peer: Resources {
                cycles_per_bit: 16,
                decompression_memory_size: 8192,
                state_memory_size: 2048,
            },
            level: Level::Default,
            announce: true,
            local_bytecode: false,
            peer_has_bytecode: false,
            shared: None,
            presence_dictionary: true,
        }
    }
}

/// What [`Endpoint::send`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Bytes written (with the stream framing).
    pub len: usize,
    /// What the compressor made of the message.
    pub compressed: Compressed,
}

/// One message [`Endpoint::receive`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// Not SigComp: a plain message on a datagram (RFC 3320 §4.1), or the
    /// bytes of a stream whose first byte was not SigComp (RFC 5049 §5),
    /// which the application frames itself. Nothing to accept.
    Plain(Vec<u8>),
    /// A decompressed SigComp message, its states and feedback held until
    /// [`Endpoint::accept`].
    Message(Inbound),
    /// A SigComp message that failed to decompress.
    Failed(Failed),
    /// A NACK from the peer (RFC 4077): [`Endpoint::accept`] applies it if
    /// it names a message we sent to that compartment.
    Nack(Nack),
}

/// A decompressed SigComp message not yet accepted: everything
/// [`Endpoint::accept`] needs to commit it, without decompressing again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    decompressed: Decompressed,
    link: Link,
    len: usize,
}

impl Inbound {
    /// The decompressed message; `None` when the UDVM output nothing (a
    /// message that only carries feedback, RFC 3320 §9.4.8).
    pub fn message(&self) -> Option<&[u8]> {
        self.decompressed
            .has_output
            .then_some(&self.decompressed.output[..])
    }

    /// The message, taken out (nothing left to accept).
    pub fn into_message(self) -> Option<Vec<u8>> {
        self.decompressed
            .has_output
            .then_some(self.decompressed.output)
    }

    /// What it came over.
    pub fn link(&self) -> Link {
        self.link
    }

    /// The SigComp message's size (without stream framing).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the SigComp message was empty (never: a SigComp message
    /// has at least a header).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What the UDVM produced: the state requests and feedback that
    /// [`Endpoint::accept`] applies.
    pub fn decompressed(&self) -> &Decompressed {
        &self.decompressed
    }
}

/// A SigComp message that failed (RFC 3320 §8.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Why (RFC 4077 §3.2).
    pub reason: Reason,
    nack: Option<Vec<u8>>,
    close: bool,
}

impl Failed {
    /// The NACK to send back over the same link (framed on a stream,
    /// RFC 4077 §2.2); `None` for a malformed NACK (never answered, so two
    /// endpoints cannot NACK each other forever) or a record too long to
    /// keep.
    pub fn nack(&self) -> Option<&[u8]> {
        self.nack.as_deref()
    }

    /// The stream's framing is broken (RFC 3320 §4.2.2): close the
    /// connection. The endpoint has forgotten it already.
    pub fn close_stream(&self) -> bool {
        self.close
    }
}

/// What [`Endpoint::accept`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Accepted {
    /// Nothing to accept (a plain message or a failure).
    Nothing,
    /// The message's states were saved and its feedback given to the
    /// compartment's compressor.
    Message(CommitReport),
    /// The NACK names a message we sent to this compartment: the
    /// compressor adjusted. If it was sent over a stream the application
    /// treats it as a transport error (RFC 4077 §2.3.2).
    Nack(Nacked),
    /// The NACK names no message we sent to this compartment (among the
    /// last [`NACK_MEMORY`](crate::compress::NACK_MEMORY)): ignored.
    UnmatchedNack,
}

/// Counts of what an [`Endpoint`] did, for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Messages sent DEFLATE-compressed.
    pub sent_compressed: u64,
    /// Messages sent in the literal form.
    pub sent_literal: u64,
    /// Messages sent plain.
    pub sent_plain: u64,
    /// Acknowledgements sent without a message ([`Endpoint::acknowledge`]).
    pub sent_acknowledgements: u64,
    /// Application bytes given to [`Endpoint::send`].
    pub bytes_original: u64,
    /// Bytes written by [`Endpoint::send`] and [`Endpoint::acknowledge`].
    pub bytes_sent: u64,
    /// Plain messages (or plain stream chunks) received.
    pub received_plain: u64,
    /// SigComp messages decompressed.
    pub decompressed: u64,
    /// SigComp messages that failed (a NACK built for each, except
    /// malformed NACKs and overlong stream records).
    pub failed: u64,
    /// NACKs received.
    pub nacks_received: u64,
    /// Accepted NACKs that named a message we sent to the compartment.
    pub nacks_matched: u64,
    /// Accepted NACKs that named none.
    pub nacks_unmatched: u64,
    /// Messages accepted.
    pub accepted: u64,
    /// Streams dropped for a framing error.
    pub framing_errors: u64,
}

/// A connection's receiving side: what it carries, and the bytes received
/// but not yet deframed (a segment's messages after the one returned).
#[derive(Debug, Clone)]
struct Connection {
    stream: Stream,
    buffered: Vec<u8>,
}

/// What a connection carries.
#[derive(Debug, Clone)]
enum Stream {
    /// No byte yet: the first one decides (RFC 5049 §5).
    New,
    SigComp(StreamDeframer),
    /// Plain SIP: passed through.
    Plain,
}

/// The longest record a stream may carry: a 4095-byte upload, a 128-byte
/// feedback item and the literal form of the longest message.
const MAX_RECORD: usize = MAX_MESSAGE + 4096 + 256;

/// The SigComp layer of one application: compressor and decompressor
/// dispatchers, the state handler, a compressor per compartment. See the
/// [module documentation](self).
#[derive(Debug, Clone)]
pub struct Endpoint {
    config: EndpointConfig,
    decompressor: Decompressor,
    states: StateHandler,
    /// A fresh compartment's compressor.
    template: Compressor,
    compressors: HashMap<CompartmentId, Compressor>,
    streams: HashMap<StreamId, Connection>,
    counters: Counters,
    scratch: Vec<u8>,
}

impl Endpoint {
    /// An endpoint with `config`; fails if a parameter is not one RFC 3320
    /// §3.3.1 allows (or cannot be announced).
    pub fn new(config: EndpointConfig) -> Result<Endpoint, Error> {
        let decompressor = Decompressor::new(config.local)?;
        let mut states = StateHandler::with_dictionaries();
        let mut local = Vec::new();
        if config.local_bytecode {
            local.push(states.add_local(bytecode::state()));
        }
        let announce = if config.announce {
            Some(config.local.announcement(&local)?)
        } else {
            None
        };
        let mut template = Compressor::new(Config {
            level: config.level,
            peer: config.peer,
            presence_dictionary: config.presence_dictionary,
            announce,
            shared: config.shared,
        })?;
        if config.peer_has_bytecode {
            template.on_peer_parameters(&ReturnedParameters {
                resources: None,
                version: None,
                state_ids: vec![bytecode::state_id().0[..6].to_vec()],
            });
        }
        Ok(Endpoint {
            config,
            decompressor,
            states,
            template,
            compressors: HashMap::new(),
            streams: HashMap::new(),
            counters: Counters::default(),
            scratch: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// What the endpoint did so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The state handler (read only): the compartments' states and the
    /// locally available ones.
    pub fn states(&self) -> &StateHandler {
        &self.states
    }

    /// Whether `cid` is open.
    pub fn is_open(&self, cid: CompartmentId) -> bool {
        self.compressors.contains_key(&cid)
    }

    /// Whether a returned feedback item waits to travel to the peer of
    /// `cid` (it goes with the next message, or [`Endpoint::acknowledge`]).
    pub fn feedback_pending(&self, cid: CompartmentId) -> bool {
        self.compressors
            .get(&cid)
            .is_some_and(Compressor::feedback_pending)
    }

    /// Opens `cid` if it is not: its compressor and its state memory
    /// (RFC 3320 §4.1: a new compartment identifier invokes a new
    /// compressor). [`Endpoint::send`] and [`Endpoint::accept`] do it.
    pub fn open(&mut self, cid: CompartmentId) {
        if !self.compressors.contains_key(&cid) {
            self.states
                .open_compartment(cid, self.config.local.state_memory_size);
            self.compressors.insert(cid, self.template.clone());
        }
    }

    /// Compresses `sample` as a fresh compartment's first message and
    /// decompresses it here, storing nothing and counting nothing: what
    /// the first message of a process costs once (the UDVM's decoded
    /// instructions and INPUT-HUFFMAN tables, this thread's hash tables,
    /// CPU feature detection, the allocator's first pages)
    /// is paid before it. Failures are ignored: real messages report
    /// their own.
    pub fn warm_up(&mut self, sample: &[u8]) {
        let mut c = self.template.clone();
        let mut wire = Vec::new();
        if c.compress_on(sample, Transport::Message, &mut wire).kind != Kind::Plain {
            let _ = self
                .decompressor
                .decompress(&wire, Transport::Message, &self.states);
        }
    }

    /// Closes `cid`: its compressor and its states are reclaimed (RFC 3320
    /// §4.1, §6.2; for SIP when the registration ends, RFC 5049 §9.3).
    pub fn close(&mut self, cid: CompartmentId) {
        self.compressors.remove(&cid);
        self.states.close_compartment(cid);
    }

    /// Compresses `message` for the peer of `cid` into `out` (cleared
    /// first), ready to write on `link`: one datagram, or a framed record
    /// to append to the stream. Fails only when the message cannot be
    /// sent as SigComp on a stream (longer than 65536 bytes, RFC 5049 §7:
    /// use another connection), a compression failure the application
    /// must handle (RFC 3320 §5.2).
    pub fn send(
        &mut self,
        cid: CompartmentId,
        message: &[u8],
        link: Link,
        out: &mut Vec<u8>,
    ) -> Result<Sent, Error> {
        self.open(cid);
        let Some(c) = self.compressors.get_mut(&cid) else {
            return Err(Error::UnknownCompartment);
        };
        let transport = link.transport();
        out.clear();
        let compressed = match link {
            Link::Datagram => c.compress_on(message, transport, out),
            Link::Stream(_) => {
                let r = c.compress_on(message, transport, &mut self.scratch);
                if r.kind == Kind::Plain {
                    return Err(Error::MessageTooLarge {
                        len: message.len(),
                        max: MAX_MESSAGE,
                    });
                }
                frame_stream(&self.scratch, out);
                r
            }
        };
        // RFC 3321 §5.2 step 1: the sender keeps what it announced.
        if compressed.shared {
            self.states
                .add_shared(cid, &shared_state(message), SHARED_KEEP);
        }
        let n = &mut self.counters;
        match compressed.kind {
            Kind::SigComp => n.sent_compressed += 1,
            Kind::Literal => n.sent_literal += 1,
            Kind::Plain => n.sent_plain += 1,
        }
        n.bytes_original += message.len() as u64;
        n.bytes_sent += out.len() as u64;
        Ok(Sent {
            len: out.len(),
            compressed,
        })
    }

    /// When a returned feedback item waits for the peer of `cid` and no
    /// message is due: writes to `out` a SigComp message that carries only
    /// it (14 bytes; the peer's application gets no message, RFC 3320
    /// §9.4.8). `None` when nothing waits. For a direction with no traffic
    /// of its own; SIP answers every request, so a SIP stack rarely needs
    /// it.
    pub fn acknowledge(
        &mut self,
        cid: CompartmentId,
        link: Link,
        out: &mut Vec<u8>,
    ) -> Option<Sent> {
        let c = self.compressors.get_mut(&cid)?;
        if !c.feedback_pending() {
            return None;
        }
        out.clear();
        let compressed = match link {
            Link::Datagram => c.acknowledge(link.transport(), out)?,
            Link::Stream(_) => {
                let r = c.acknowledge(link.transport(), &mut self.scratch)?;
                frame_stream(&self.scratch, out);
                r
            }
        };
        self.counters.sent_acknowledgements += 1;
        self.counters.bytes_sent += out.len() as u64;
        Some(Sent {
            len: out.len(),
            compressed,
        })
    }

    /// Takes bytes from `link` and returns the next message. A datagram is
    /// one message: always `Some`. On a stream the bytes (any segment:
    /// part of a message, or several) are buffered, and the first message
    /// they complete is returned; call again with no bytes for the next
    /// one until `None`. One message at a time, so that the application
    /// accepts a message before the next is decompressed (it may use the
    /// states the first one creates). Nothing is stored until
    /// [`Endpoint::accept`].
    ///
    /// ```
    /// # use sigcomp::{Endpoint, EndpointConfig, Link, StreamId};
    /// # let mut ep = Endpoint::new(EndpointConfig::default()).unwrap();
    /// # let segment: &[u8] = &[];
    /// let link = Link::Stream(StreamId(7));
    /// let mut next = ep.receive(segment, link);
    /// while let Some(received) = next {
    ///     // ... authenticate, then ep.accept(compartment, &received) ...
    ///     next = ep.receive(&[], link);
    /// }
    /// ```
    pub fn receive(&mut self, bytes: &[u8], link: Link) -> Option<Received> {
        match link {
            Link::Datagram => Some(self.receive_message(bytes, link)),
            Link::Stream(id) => self.receive_stream(id, bytes),
        }
    }

    /// Forgets connection `id` and any partial message on it (the
    /// connection was closed or reset). Compartments are untouched: a new
    /// connection starts cleanly with the same states.
    pub fn close_stream(&mut self, id: StreamId) {
        self.streams.remove(&id);
    }

    fn receive_stream(&mut self, id: StreamId, bytes: &[u8]) -> Option<Received> {
        let mut conn = self.streams.remove(&id).unwrap_or(Connection {
            stream: Stream::New,
            buffered: Vec::new(),
        });
        if let (Stream::New, Some(&first)) = (&conn.stream, bytes.first()) {
            // RFC 5049 §5: the first byte of the stream decides.
            conn.stream = if is_sigcomp(&[first]) {
                Stream::SigComp(StreamDeframer::new(MAX_RECORD))
            } else {
                Stream::Plain
            };
        }
        let link = Link::Stream(id);
        let mut got = None;
        match &mut conn.stream {
            Stream::New => {}
            Stream::Plain => {
                if !bytes.is_empty() {
                    self.counters.received_plain += 1;
                    got = Some(Received::Plain(bytes.to_vec()));
                }
            }
            Stream::SigComp(de) => {
                conn.buffered.extend_from_slice(bytes);
                let mut used = 0;
                while got.is_none() && used < conn.buffered.len() {
                    let rest = conn.buffered.get(used..).unwrap_or(&[]);
                    match de.push(rest) {
                        Ok((n, record)) => {
                            used += n;
                            if let Some(r) = record {
                                got = Some(self.receive_message(r, link));
                            }
                        }
                        // The stream is dropped: closed at once.
                        Err(e) => return Some(self.broken_stream(e)),
                    }
                }
                conn.buffered.drain(..used);
            }
        }
        self.streams.insert(id, conn);
        got
    }

    /// RFC 3320 §4.2.2: an unquoted 0xFF80..0xFFFE breaks the stream; RFC
    /// 4077 §3.1: its NACK carries a zero SHA-1.
    fn broken_stream(&mut self, e: Error) -> Received {
        self.counters.failed += 1;
        self.counters.framing_errors += 1;
        let (reason, nack) = match e {
            Error::Framing { .. } => {
                let f = Failure {
                    reason: Reason::FramingError,
                    opcode: 0,
                    pc: 0,
                    details: Vec::new(),
                    cycles: 0,
                };
                let mut wire = Vec::new();
                Nack::from_failure(&f, &[]).emit(self.scratch_clear());
                frame_stream(&self.scratch, &mut wire);
                (Reason::FramingError, Some(wire))
            }
            _ => (Reason::InternalError, None),
        };
        Received::Failed(Failed {
            reason,
            nack,
            close: true,
        })
    }

    fn scratch_clear(&mut self) -> &mut Vec<u8> {
        self.scratch.clear();
        &mut self.scratch
    }

    /// One complete SigComp message (or plain datagram).
    fn receive_message(&mut self, msg: &[u8], link: Link) -> Received {
        let n = &mut self.counters;
        if link == Link::Datagram && !is_sigcomp(msg) {
            // RFC 3320 §4.1: not SigComp, for the application as is.
            n.received_plain += 1;
            return Received::Plain(msg.to_vec());
        }
        match Nack::parse(msg) {
            Ok(nack) => {
                n.nacks_received += 1;
                return Received::Nack(nack);
            }
            Err(Error::UnsupportedNackVersion { .. }) => {
                // RFC 4077 §3.1: a NACK of another version; never answered.
                n.failed += 1;
                return Received::Failed(Failed {
                    reason: Reason::InternalError,
                    nack: None,
                    close: false,
                });
            }
            Err(_) => {}
        }
        match self
            .decompressor
            .decompress(msg, link.transport(), &self.states)
        {
            Ok(decompressed) => {
                self.counters.decompressed += 1;
                Received::Message(Inbound {
                    decompressed,
                    link,
                    len: msg.len(),
                })
            }
            Err(f) => {
                self.counters.failed += 1;
                // RFC 4077 §2.2: the NACK goes back over the same link.
                let mut wire = Vec::new();
                let nack = Nack::from_failure(&f, msg);
                match link {
                    Link::Datagram => nack.emit(&mut wire),
                    Link::Stream(_) => {
                        nack.emit(self.scratch_clear());
                        frame_stream(&self.scratch, &mut wire);
                    }
                }
                Received::Failed(Failed {
                    reason: f.reason,
                    nack: Some(wire),
                    close: false,
                })
            }
        }
    }

    /// The application authenticated `received` as coming from the peer
    /// of `cid` (RFC 3320 §4.3): its states are saved in `cid` and its
    /// feedback is believed (the peer's acknowledgement of our states, its
    /// request for feedback, its announcement, its shared state), or the
    /// NACK is matched against the messages we sent to `cid`. Opens `cid`
    /// if needed. Accepting a message twice is harmless (a state created
    /// again only becomes younger, RFC 4896 §5.2).
    pub fn accept(&mut self, cid: CompartmentId, received: &Received) -> Accepted {
        match received {
            Received::Plain(_) | Received::Failed(_) => Accepted::Nothing,
            Received::Message(m) => {
                self.open(cid);
                let d = &m.decompressed;
                let report = self.states.commit(cid, d).unwrap_or_default();
                if let Some(c) = self.compressors.get_mut(&cid) {
                    // RFC 3320 §7.1: the peer acknowledges one of ours.
                    if let Some(item) = &d.returned_feedback_item {
                        c.on_feedback_item(item);
                    }
                    // RFC 3320 §5: the item the peer asks back goes with
                    // our next message (a newer request replaces it).
                    if let Some(rf) = &d.requested_feedback {
                        c.set_returned_feedback_item(rf.item.clone());
                    }
                    if let Some(rp) = &d.returned_parameters {
                        c.on_peer_parameters(rp);
                    }
                    if d.has_output {
                        c.on_received(&d.output, d.returned_parameters.as_ref());
                    }
                }
                self.counters.accepted += 1;
                Accepted::Message(report)
            }
            Received::Nack(nack) => {
                self.open(cid);
                let Some(c) = self.compressors.get_mut(&cid) else {
                    return Accepted::Nothing;
                };
                if let Some(item) = &nack.returned_feedback_item {
                    c.on_feedback_item(item);
                }
                match c.on_nack(nack) {
                    Some(n) => {
                        self.counters.nacks_matched += 1;
                        Accepted::Nack(n)
                    }
                    None => {
                        self.counters.nacks_unmatched += 1;
                        Accepted::UnmatchedNack
                    }
                }
            }
        }
    }
}
