//! Two endpoints over a UDP channel that loses, delays, reorders and
//! duplicates datagrams (proptest), in both directions, with SIP's
//! retransmissions: a request is sent again (compressed again, RFC 5049
//! §8) when its response does not come in time, and a response again when
//! its request arrives again. Every message that arrives is byte-exact;
//! one that fails is NACKed and the NACK, accepted as the peer's, adjusts
//! the sender; every transaction completes; once the channel is clean,
//! compression uses states again in both directions. Forged NACKs,
//! accepted as the peer's at every step, change nothing: the run sends
//! exactly the same bytes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{CID, independent, ours, pair};
use proptest::prelude::*;
use sigcomp::compress::{Kind, REORDER_DEPTH, SETTLE_DEPTH};
use sigcomp::{Accepted, Endpoint, EndpointConfig, Link, Reason, Received};

/// A transaction: who sends the request, the request, the response.
type Transaction = (usize, Vec<u8>, Vec<u8>);

fn transactions() -> Vec<Transaction> {
    let m = independent();
    let ok = ours("09-200-message.sip");
    let pair = |req: usize, resp: usize| (m[req].0, m[req].1.clone(), m[resp].1.clone());
    vec![
        pair(0, 1),                          // REGISTER / 401
        pair(2, 3),                          // REGISTER / 200
        pair(6, 7),                          // PUBLISH / 200
        pair(8, 9),                          // MESSAGE / 202
        pair(12, 13),                        // re-REGISTER / 200
        pair(16, 17),                        // session 2: REGISTER / 200
        (1, m[5].1.clone(), ok.clone()),     // NOTIFY from the P-CSCF / 200
        (1, m[11].1.clone(), ok.clone()),    // OPTIONS from the P-CSCF / 200
        (0, m[4].1.clone(), m[9].1.clone()), // SUBSCRIBE / 202
    ]
}

/// What a transmission meets: (0..10: 0 and 1 lose it, 2 duplicates it),
/// and a delay in steps.
type Fate = (u8, usize);

#[derive(Debug)]
struct Datagram {
    due: usize,
    to: usize,
    wire: Vec<u8>,
    /// The message inside, for the byte-exact check; `None` for a NACK.
    original: Option<Vec<u8>>,
}

/// A request is sent again after this many steps without its response.
const TIMEOUT: usize = 6;
/// From this attempt on the channel delivers the transaction's datagrams
/// (a transaction cannot be lost forever, and the test must end).
const CLEAN_FROM: usize = 3;

struct Net {
    ends: [Endpoint; 2],
    fates: Vec<Fate>,
    next_fate: usize,
    in_flight: Vec<Datagram>,
    /// Every datagram written, in order.
    transcript: Vec<Vec<u8>>,
    failures: Vec<Reason>,
    /// NACKs that reached the end whose message they name.
    nacks_delivered: u64,
    /// (sender, it used states) of every message sent.
    sent: Vec<(usize, usize, Kind)>,
    forge: bool,
    forged: u64,
    /// The last SigComp message each end sent, named by the forged NACKs
    /// the other end is given.
    last_wire: [Vec<u8>; 2],
}

impl Net {
    fn transmit(
        &mut self,
        t: usize,
        to: usize,
        wire: Vec<u8>,
        original: Option<Vec<u8>>,
        clean: bool,
    ) {
        self.transcript.push(wire.clone());
        let (kind, delay) = if clean {
            (9, 0)
        } else {
            let f = self.fates[self.next_fate % self.fates.len()];
            self.next_fate += 1;
            f
        };
        let copies = match kind {
            0 | 1 => 0,
            2 => 2,
            _ => 1,
        };
        for c in 0..copies {
            self.in_flight.push(Datagram {
                due: t + delay + c * 2,
                to,
                wire: wire.clone(),
                original: original.clone(),
            });
        }
    }

    fn send(&mut self, t: usize, from: usize, msg: &[u8], clean: bool) {
        let mut wire = Vec::new();
        let s = self.ends[from]
            .send(CID[from], msg, Link::Datagram, &mut wire)
            .unwrap();
        self.sent
            .push((from, s.compressed.states_used, s.compressed.kind));
        if s.compressed.kind != Kind::Plain {
            self.last_wire[from] = wire.clone();
        }
        self.transmit(t, 1 - from, wire, Some(msg.to_vec()), clean);
    }

    /// Forged NACKs, accepted as if from the peer: one naming a message
    /// the peer sent, one naming nothing.
    fn forge(&mut self) {
        if !self.forge {
            return;
        }
        for (e, cid) in CID.iter().enumerate() {
            let failure = sigcomp::Failure {
                reason: Reason::StateNotFound,
                opcode: 0,
                pc: 0,
                details: vec![0; 6],
                cycles: 0,
            };
            for named in [self.last_wire[1 - e].clone(), b"\xf9forged".to_vec()] {
                let mut wire = Vec::new();
                sigcomp::Nack::from_failure(&failure, &named).emit(&mut wire);
                let got = self.ends[e].receive(&wire, Link::Datagram).unwrap();
                assert_eq!(self.ends[e].accept(*cid, &got), Accepted::UnmatchedNack);
                self.forged += 1;
            }
        }
    }

    /// Runs one transaction to its end; `clean` makes the channel
    /// perfect.
    fn transaction(&mut self, t: &mut usize, (from, req, resp): &Transaction, clean: bool) {
        let to = 1 - from;
        let mut attempts = 0;
        let mut last_send = *t;
        self.forge();
        self.send(*t, *from, req, clean);
        let mut done = false;
        while !done {
            *t += 1;
            assert!(attempts < 20, "transaction never completed");
            let now = *t;
            let (due, later): (Vec<_>, Vec<_>) =
                self.in_flight.drain(..).partition(|d| d.due <= now);
            self.in_flight = later;
            for d in due {
                let got = self.ends[d.to].receive(&d.wire, Link::Datagram);
                if let Some(r) = &got {
                    let message = match r {
                        Received::Message(m) => m.message().map(<[u8]>::to_vec),
                        Received::Plain(p) => Some(p.clone()),
                        Received::Failed(f) => {
                            self.failures.push(f.reason);
                            if let Some(n) = f.nack() {
                                let clean = clean || attempts >= CLEAN_FROM;
                                self.transmit(now, 1 - d.to, n.to_vec(), None, clean);
                            }
                            continue;
                        }
                        Received::Nack(_) => {
                            assert!(d.original.is_none());
                            self.nacks_delivered += 1;
                            // From the authenticated peer: believed.
                            self.ends[d.to].accept(CID[d.to], r);
                            continue;
                        }
                        other => panic!("{other:?}"),
                    };
                    // Byte-exact, whichever copy or retransmission it is.
                    assert_eq!(message.as_ref(), d.original.as_ref());
                    self.ends[d.to].accept(CID[d.to], r);
                    let clean = clean || attempts >= CLEAN_FROM;
                    if d.to == to && message.as_deref() == Some(&req[..]) {
                        // The server answers every copy of the request.
                        self.send(now, to, resp, clean);
                    } else if d.to == *from && message.as_deref() == Some(&resp[..]) {
                        done = true;
                    }
                }
            }
            if !done && *t - last_send >= TIMEOUT {
                // SIP timer A: the client sends the request again.
                attempts += 1;
                last_send = *t;
                self.forge();
                self.send(*t, *from, req, clean || attempts >= CLEAN_FROM);
            }
        }
    }
}

/// Runs `script`; with `restart`, the P-CSCF loses the UE's compartment
/// (it restarted, RFC 4077 §1.1.2) before that transaction.
fn run(
    config: &EndpointConfig,
    script: &[usize],
    fates: &[Fate],
    restart: Option<usize>,
    forge: bool,
) -> Net {
    let all = transactions();
    let mut net = Net {
        ends: pair(config),
        fates: fates.to_vec(),
        next_fate: 0,
        in_flight: Vec::new(),
        transcript: Vec::new(),
        failures: Vec::new(),
        nacks_delivered: 0,
        sent: Vec::new(),
        forge,
        forged: 0,
        last_wire: [Vec::new(), Vec::new()],
    };
    let mut t = 0;
    for (k, &i) in script.iter().enumerate() {
        if restart == Some(k) {
            net.ends[1].close(CID[1]);
        }
        net.transaction(&mut t, &all[i % all.len()], false);
    }
    // Whatever is still in flight arrives, late, among the first clean
    // transactions; then the channel stays clean. MESSAGE / 202: two of
    // each fit beside the bytecode even in SMS 4096, so their states are
    // used once acknowledged (two 2 KB REGISTERs would not). A lost
    // message counts as possibly in flight (it could still arrive and
    // evict a state, or name one) until REORDER_DEPTH later ones were
    // acknowledged or SETTLE_DEPTH were sent (the compressor's
    // assumptions about UDP): that is how long compression may take to
    // resume, the one side waiting for SETTLE_DEPTH sends before its
    // messages ask for feedback again, the other then for REORDER_DEPTH
    // acknowledgements.
    let tail_start = net.sent.len();
    for _ in 0..SETTLE_DEPTH as usize + REORDER_DEPTH + 48 {
        net.transaction(&mut t, &all[3], true);
    }
    // Compression resumed: the last clean exchange uses states both ways.
    let tail = &net.sent[tail_start..];
    for side in 0..2 {
        let last = tail.iter().rev().find(|s| s.0 == side).unwrap();
        assert!(
            last.1 > 0,
            "side {side} uses no state after the losses: {tail:?}"
        );
    }
    net
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn lossy_udp_delivers_every_message(
        script in proptest::collection::vec(0usize..9, 2..14),
        fates in proptest::collection::vec((0u8..10, 0usize..5), 8..64),
        sms in prop_oneof![Just(4096u32), Just(8192)],
        restart in proptest::option::of(0usize..14),
    ) {
        let mut config = EndpointConfig::default();
        config.local.state_memory_size = sms;
        let a = run(&config, &script, &fates, restart, false);
        // Only a state reference can fail: a message that names a state
        // its receiver lost (restarted) or, reordered, does not have.
        for r in &a.failures {
            prop_assert_eq!(*r, Reason::StateNotFound);
        }
        // A NACK that comes back is believed (a duplicated one once), and
        // only for a failure. A failure whose NACKs are all lost may need
        // none: a late copy of the message that creates the missing state
        // can arrive first, and the retransmission then decompresses.
        // Every transaction completing, and states used again at the end,
        // is what shows recovery.
        let matched: u64 = a.ends.iter().map(|e| e.counters().nacks_matched).sum();
        prop_assert!(matched <= a.failures.len() as u64);
        prop_assert!(a.nacks_delivered == 0 || matched >= 1);
        // The same run with forged NACKs accepted by both ends at every
        // send sends the same bytes.
        let b = run(&config, &script, &fates, restart, true);
        prop_assert!(b.forged > 0);
        // Counted, beside the real NACKs left unmatched (a second NACK for
        // a duplicated message: its SHA-1 was believed once).
        let unmatched = |n: &Net| -> u64 { n.ends.iter().map(|e| e.counters().nacks_unmatched).sum() };
        prop_assert_eq!(unmatched(&b), unmatched(&a) + b.forged);
        prop_assert_eq!(&a.transcript, &b.transcript);
    }
}
