//! `--sigcomp` for `imsua` and `pcscf`: a [`gm::comp::Compression`] (which
//! decides: the compartment per association, what is compressed, what is
//! trusted), the buffer it writes into, and the counts the binaries report.
//! This file only moves bytes between it and the sockets.

use std::net::SocketAddr;

use anyhow::{Result, anyhow};
use gm::comp::{Compression, Inbound};
use gm::reg::SaSet;
use sigcomp::{EndpointConfig, Link};

use crate::json::Json;

/// How SigComp runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// SIP as it is.
    Off,
    /// SigComp that any decompressor reads alone (tshark): the bytecode
    /// goes in each compartment's first message, no shared compression.
    Plain,
    /// `--sigcomp-full`: our bytecode held as a locally available state and
    /// RFC 3321 shared compression too (smaller, but a decompressor that
    /// does not hold our bytecode cannot read it).
    Full,
}

/// What was sent and received, for the summary event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages sent.
    pub sent: u64,
    /// Of which SigComp.
    pub sent_compressed: u64,
    /// Bytes sent on the wire (SIP or SigComp; UDP or TCP payloads, before ESP).
    pub sent_bytes: u64,
    /// The same messages as SIP, before SigComp.
    pub sent_sip_bytes: u64,
    /// SigComp messages received and decompressed.
    pub received_compressed: u64,
    /// SigComp messages that failed to decompress.
    pub failed: u64,
    /// NACKs sent back for them (RFC 4077).
    pub nacks_sent: u64,
    /// Datagrams that were neither SIP nor SigComp.
    pub unreadable: u64,
}

/// What a received datagram was.
#[derive(Debug)]
pub enum Incoming {
    /// A SIP message, plain or decompressed.
    Sip {
        /// The SIP bytes.
        bytes: Vec<u8>,
        /// Whether it came as SigComp.
        compressed: bool,
    },
    /// SigComp with nothing for SIP (feedback only, a NACK).
    Nothing(&'static str),
    /// SigComp that failed: drop it, send the NACK back if any.
    Failed {
        /// Why.
        reason: String,
        /// The NACK for the sender.
        nack: Option<Vec<u8>>,
    },
}

/// SigComp (or not) between the transaction layer and the transport.
#[derive(Debug)]
pub struct SipComp {
    comp: Option<Compression>,
    /// The network's side: compress for a peer only once it showed it
    /// speaks SigComp ([`SipComp::wait_for_peers`]).
    wait: bool,
    wire: Vec<u8>,
    /// The counts so far.
    pub counts: Counts,
}

impl SipComp {
    /// A layer in `mode`.
    pub fn new(mode: Mode) -> Result<SipComp> {
        let config = |full: bool| EndpointConfig {
            local_bytecode: full,
            shared: full.then_some(4096),
            ..EndpointConfig::default()
        };
        let mut comp = match mode {
            Mode::Off => None,
            Mode::Plain => Some(config(false)),
            Mode::Full => Some(config(true)),
        }
        .map(Compression::new)
        .transpose()
        .map_err(|e| anyhow!("cannot start SigComp: {e}"))?;
        // The work a process does once, on its first SigComp message, done
        // at start rather than in the registration that follows, and in
        // this endpoint's own decompressor (its decoded instructions stay).
        if let Some(c) = &mut comp {
            c.warm_up(SAMPLE);
        }
        Ok(SipComp {
            comp,
            wait: false,
            wire: Vec::new(),
            counts: Counts::default(),
        })
    }

    /// Whether SigComp is on.
    pub fn enabled(&self) -> bool {
        self.comp.is_some()
    }

    /// The P-CSCF's rule (RFC 3486 §4): an association compresses only
    /// once its peer showed it speaks SigComp (SigComp over its SAs, or
    /// `comp=sigcomp` in a request's Via, [`SipComp::peer_signalled`]); a
    /// UE without SigComp then gets plain SIP.
    pub fn wait_for_peers(mut self) -> SipComp {
        self.wait = true;
        self
    }

    /// An SA set was installed: its association compresses from now on
    /// (after its peer signalled, with [`SipComp::wait_for_peers`]).
    pub fn open(&mut self, set: &SaSet) {
        if let Some(c) = &mut self.comp {
            if self.wait {
                c.open_sas_when_signalled(set);
            } else {
                c.open_sas(set);
            }
        }
    }

    /// A set was installed for an SA handover, beside `old` that it
    /// replaces: the compartment goes on over it, states kept
    /// ([`gm::comp::Compression::hand_over_sas`]).
    pub fn hand_over(&mut self, old: &SaSet, new: &SaSet) {
        if let Some(c) = &mut self.comp {
            c.hand_over_sas(old, new);
        }
    }

    /// A request from `from` came over the SAs: if its top Via asks for
    /// SigComp, its association compresses from now on.
    pub fn peer_signalled(&mut self, request: &gm::sip::Message<'_>, from: SocketAddr) {
        if let Some(c) = &mut self.comp {
            if gm::comp::signals_sigcomp(request) {
                if let Some(a) = c.association_of(from).map(str::to_owned) {
                    c.peer_signalled(&a);
                }
            }
        }
    }

    /// An SA set was removed: its compartment goes.
    pub fn close(&mut self, set: &SaSet) {
        if let Some(c) = &mut self.comp {
            c.close_sas(set);
        }
    }

    /// What to send for `sip` to `to`: SigComp when `to` is a protected
    /// address of an open association and the message goes through its
    /// SAs (`over_sas`; [`gm::comp::Compression::send`] decides), `sip`
    /// otherwise; and whether it is SigComp. Over TCP (`stream`), SigComp
    /// is framed as a record (RFC 3320 §4.2.2). Count it with
    /// [`SipComp::sent`] once it left.
    pub fn encode<'a>(
        &'a mut self,
        sip: &'a [u8],
        to: SocketAddr,
        stream: bool,
        over_sas: bool,
    ) -> Result<(&'a [u8], bool)> {
        let Some(c) = &mut self.comp else {
            return Ok((sip, false));
        };
        let Some(association) = c.association_of(to).map(str::to_owned) else {
            return Ok((sip, false));
        };
        let out = c
            .send(&association, sip, link(stream), over_sas, &mut self.wire)
            .map_err(|e| anyhow!("cannot compress {} bytes for {to}: {e}", sip.len()))?;
        Ok((self.wire.get(..out.len).unwrap_or_default(), out.compressed))
    }

    /// Counts a message sent: `sip` bytes of SIP as `wire` bytes.
    pub fn sent(&mut self, sip: usize, wire: usize, compressed: bool) {
        let c = &mut self.counts;
        c.sent += 1;
        c.sent_compressed += u64::from(compressed);
        c.sent_bytes += wire as u64;
        c.sent_sip_bytes += sip as u64;
    }

    /// Counts a NACK sent.
    pub fn nack_sent(&mut self, len: usize) {
        self.counts.nacks_sent += 1;
        self.counts.sent_bytes += len as u64;
    }

    /// Counts a datagram that was neither SIP nor SigComp.
    pub fn unreadable(&mut self) {
        self.counts.unreadable += 1;
    }

    /// Reads a datagram from `from`; `over_sas` when it came through the
    /// SAs (only then may it create states, gm::comp decides for which
    /// association).
    pub fn decode(&mut self, bytes: &[u8], from: SocketAddr, over_sas: bool) -> Incoming {
        let Some(c) = &mut self.comp else {
            return Incoming::Sip {
                bytes: bytes.to_vec(),
                compressed: false,
            };
        };
        let association = over_sas
            .then(|| c.association_of(from).map(str::to_owned))
            .flatten();
        match c.receive(bytes, Link::Datagram, association.as_deref()) {
            Some(Inbound::Message {
                bytes, compressed, ..
            }) => {
                self.counts.received_compressed += u64::from(compressed);
                Incoming::Sip { bytes, compressed }
            }
            Some(Inbound::FeedbackOnly { .. }) => Incoming::Nothing("SigComp feedback only"),
            Some(Inbound::Nack { .. }) => Incoming::Nothing("a SigComp NACK"),
            Some(Inbound::Failed { reason, nack }) => {
                self.counts.failed += 1;
                Incoming::Failed { reason, nack }
            }
            None => {
                self.counts.failed += 1;
                Incoming::Failed {
                    reason: "an empty datagram".to_owned(),
                    nack: None,
                }
            }
        }
    }

    /// Writes the counts into a JSON event: bytes sent on the wire and as
    /// SIP, messages sent and compressed, failures, NACKs.
    pub fn report(&self, j: &mut Json) {
        let c = self.counts;
        let n = |v: u64| Json::Int(i64::try_from(v).unwrap_or(i64::MAX));
        j.set("sigcomp", self.enabled())
            .set("sent", n(c.sent))
            .set("sent_compressed", n(c.sent_compressed))
            .set("sent_bytes", n(c.sent_bytes))
            .set("sent_sip_bytes", n(c.sent_sip_bytes))
            .set("received_compressed", n(c.received_compressed))
            .set("sigcomp_failed", n(c.failed))
            .set("nacks_sent", n(c.nacks_sent))
            .set("unreadable", n(c.unreadable));
    }
}

/// The SigComp link for a datagram or a stream: a stream's id only
/// matters to a receiver, which cuts records per connection itself
/// ([`super::stream`]).
fn link(stream: bool) -> Link {
    if stream {
        Link::Stream(sigcomp::StreamId(0))
    } else {
        Link::Datagram
    }
}

/// A SIP message like those of a registration, for the warm-up in
/// [`SipComp::new`].
const SAMPLE: &[u8] = b"REGISTER sip:ims.example.org SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;comp=sigcomp;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\nFrom: <sip:ue@ims.example.org>;tag=1\r\nTo: <sip:ue@ims.example.org>\r\n\
Call-ID: 1@127.0.0.1\r\nCSeq: 2 REGISTER\r\nContact: <sip:127.0.0.1:5062;comp=sigcomp>;expires=600000\r\n\
Authorization: Digest username=\"ue@ims.example.org\", realm=\"ims.example.org\", uri=\"sip:ims.example.org\", \
nonce=\"AAAA\", response=\"00\", algorithm=AKAv1-MD5\r\n\
Security-Verify: ipsec-3gpp; alg=hmac-sha-1-96; ealg=aes-cbc; spi-c=1; spi-s=2; port-c=1; port-s=2\r\n\
Supported: path, sec-agree\r\nContent-Length: 0\r\n\r\n";

/// The mode of the flags `--sigcomp` and `--sigcomp-full`.
pub fn mode(sigcomp: bool, full: bool) -> Mode {
    match (sigcomp, full) {
        (false, _) => Mode::Off,
        (true, false) => Mode::Plain,
        (true, true) => Mode::Full,
    }
}
