//! `sigcomp::Endpoint` between two endpoints of ours over UDP: feedback
//! and announcements travel in the messages themselves, states are saved
//! only for accepted messages, failed messages are NACKed and the NACK is
//! believed only for a message the compartment sent.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{CID, config, exchange, independent, ours, pair, receive_all};
use sigcomp::compress::Kind;
use sigcomp::{Accepted, EndpointConfig, Link, Reason, Received, Transport};

/// Both sessions of the independent corpus, each message from its sender:
/// all arrive byte-exact, every message that requests feedback is
/// acknowledged by the other side's next message (its T-bit and item),
/// and the second session compresses against the states of the first in
/// both directions.
#[test]
fn a_duplex_flow_acknowledges_on_the_wire() {
    let mut ends = pair(&config(8192, 8192));
    let msgs = independent();
    let mut used = [0usize; 2];
    // The item each side asked for and the other has not sent back yet.
    let mut asked: [Option<u8>; 2] = [None, None];
    let mut acknowledged = 0;
    for (i, (from, m)) in msgs.iter().enumerate() {
        let (sent, wire) = exchange(&mut ends, *from, m, Link::Datagram);
        assert_ne!(sent.compressed.kind, Kind::Plain, "message {}", i + 1);
        if i >= 14 {
            used[*from] += sent.compressed.states_used;
        }
        if let Some(item) = asked[1 - from].take() {
            assert_eq!((wire[0] & 0xfc, wire[1]), (0xfc, item), "message {}", i + 1);
            acknowledged += 1;
        }
        if sent.compressed.seq != 0 {
            asked[*from] = Some((sent.compressed.seq & 0x7f) as u8);
        }
    }
    assert!(used[0] > 0 && used[1] > 0, "states used: {used:?}");
    assert!(acknowledged >= 10, "{acknowledged}");
    for e in &ends {
        let c = e.counters();
        assert_eq!((c.failed, c.nacks_received, c.accepted), (0, 0, 14));
        assert_eq!(c.decompressed, 14);
    }
}

/// The regression: a MESSAGE repeated four times, each answered by
/// a 361-byte 200 OK that does not compress on its own. The 200 OK used
/// to go plain and drop the acknowledgement, so every MESSAGE stayed at
/// 750 bytes. Now the first 200 OK travels in the literal form (14 bytes
/// more) with the item, the second buys the bytecode upload, and from
/// the second exchange on the MESSAGE uses the bytecode state and the
/// previous MESSAGE, from the third on the 200 OK too: 743, 33, 34, 34
/// and 375, 495, 27, 27 bytes where it was 750 and 361 every time.
#[test]
fn a_repeated_message_gets_smaller_after_the_first_exchange() {
    let message = ours("08-message.sip");
    let ok = ours("09-200-message.sip");
    assert_eq!(ok.len(), 361);
    let mut ends = pair(&EndpointConfig {
        announce: false,
        ..config(8192, 8192)
    });
    let mut requests = Vec::new();
    let mut replies = Vec::new();
    for _ in 0..4 {
        let (m, _) = exchange(&mut ends, 0, &message, Link::Datagram);
        let (r, wire) = exchange(&mut ends, 1, &ok, Link::Datagram);
        // Every reply carries the acknowledgement of the MESSAGE.
        let item = (m.compressed.seq & 0x7f) as u8;
        assert_eq!((wire[0] & 0xfc, wire[1]), (0xfc, item));
        requests.push(m);
        replies.push(r);
    }
    assert_eq!(
        (requests[0].len, requests[0].compressed.states_used),
        (743, 0)
    );
    for m in &requests[1..] {
        assert!(m.len <= 40 && m.compressed.states_used == 1, "{m:?}");
        assert!(!m.compressed.carried_bytecode);
    }
    assert_eq!(
        (replies[0].len, replies[0].compressed.kind),
        (375, Kind::Literal)
    );
    assert!(replies[1].compressed.carried_bytecode, "{:?}", replies[1]);
    for r in &replies[2..] {
        assert!(r.len <= 40 && r.compressed.states_used == 1, "{r:?}");
    }
}

/// Nothing is saved for a message the application does not accept: its
/// states do not exist, its sender is not acknowledged and keeps uploading
/// the bytecode; once accepted, both change.
#[test]
fn states_and_feedback_wait_for_accept() {
    let mut ends = pair(&config(8192, 8192));
    let register = &independent()[0].1;
    let challenge = &independent()[1].1;
    let mut wire = Vec::new();
    ends[0]
        .send(CID[0], register, Link::Datagram, &mut wire)
        .unwrap();
    let got = receive_all(&mut ends[1], &wire, Link::Datagram);
    let Received::Message(m) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(m.message(), Some(&register[..]));
    assert!(!m.decompressed().state_requests.is_empty());
    // Not accepted (say it did not come over the peer's SA): dropped.
    let states = ends[1].states().len();
    assert!(!ends[1].feedback_pending(CID[1]));
    let (reply, wire) = exchange(&mut ends, 1, challenge, Link::Datagram);
    assert_eq!(wire[0] & 0x04, 0, "no acknowledgement: {reply:?}");
    assert_eq!(ends[1].states().len(), states, "the REGISTER saved nothing");
    let (again, _) = exchange(&mut ends, 0, register, Link::Datagram);
    assert!(again.compressed.carried_bytecode && again.compressed.states_used == 0);
    // Accepted this time: the P-CSCF acknowledges, the UE uses the states.
    exchange(&mut ends, 1, challenge, Link::Datagram);
    let (third, _) = exchange(&mut ends, 0, register, Link::Datagram);
    assert!(!third.compressed.carried_bytecode && third.compressed.states_used > 0);
}

/// A message that fails (the P-CSCF lost the compartment, say it
/// restarted) gets a NACK; the UE accepts it as the P-CSCF's, matches it
/// to the message it sent, and its retransmission (compressed again, RFC
/// 5049 §8) decompresses.
#[test]
fn a_nack_for_our_message_recovers_the_compartment() {
    let mut ends = pair(&config(8192, 8192));
    let msgs = independent();
    for (from, m) in &msgs[..6] {
        exchange(&mut ends, *from, m, Link::Datagram);
    }
    ends[1].close(CID[1]);
    let next = &msgs[6].1;
    let mut wire = Vec::new();
    ends[0]
        .send(CID[0], next, Link::Datagram, &mut wire)
        .unwrap();
    let got = receive_all(&mut ends[1], &wire, Link::Datagram);
    let Received::Failed(f) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(f.reason, Reason::StateNotFound);
    assert!(!f.close_stream());
    let nack = receive_all(&mut ends[0], f.nack().unwrap(), Link::Datagram);
    let Received::Nack(n) = &nack[0] else {
        panic!("{nack:?}")
    };
    assert_eq!(n.reason(), Some(Reason::StateNotFound));
    let Accepted::Nack(nacked) = ends[0].accept(CID[0], &nack[0]) else {
        panic!()
    };
    assert_eq!(nacked.transport, Transport::Message);
    let (retry, _) = exchange(&mut ends, 0, next, Link::Datagram);
    assert!(retry.compressed.carried_bytecode);
    let c = ends[0].counters();
    assert_eq!((c.nacks_received, c.nacks_matched), (1, 1));
    assert_eq!(ends[1].counters().failed, 1);
}

/// A message sent twice with the same bytes (a retransmission compressed
/// against the same states) and a NACK for it delivered twice (the
/// channel duplicated it): the NACK is matched once, the copy is
/// unmatched and changes nothing more.
#[test]
fn a_duplicated_nack_for_a_message_sent_twice_matches_once() {
    let mut ends = pair(&config(8192, 8192));
    let msgs = independent();
    // The first UE message, after the first session, that creates no new
    // state: sent twice, it is the same bytes.
    let mut last = None;
    for (i, (from, m)) in msgs.iter().enumerate() {
        if i >= 14 && *from == 0 {
            let mut probe = ends[0].clone();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            probe.send(CID[0], m, Link::Datagram, &mut a).unwrap();
            probe.send(CID[0], m, Link::Datagram, &mut b).unwrap();
            if a == b {
                last = Some(m);
                break;
            }
        }
        exchange(&mut ends, *from, m, Link::Datagram);
    }
    let last = last.expect("a message that creates no state");
    ends[1].close(CID[1]);
    let (mut first, mut again) = (Vec::new(), Vec::new());
    ends[0]
        .send(CID[0], last, Link::Datagram, &mut first)
        .unwrap();
    ends[0]
        .send(CID[0], last, Link::Datagram, &mut again)
        .unwrap();
    assert_eq!(first, again, "the retransmission is the same bytes");
    let got = receive_all(&mut ends[1], &first, Link::Datagram);
    let Received::Failed(f) = &got[0] else {
        panic!("{got:?}")
    };
    let nack = f.nack().unwrap().to_vec();
    let mut twin = None;
    for copy in 0..2 {
        let got = receive_all(&mut ends[0], &nack, Link::Datagram);
        let accepted = ends[0].accept(CID[0], &got[0]);
        if copy == 0 {
            assert!(matches!(accepted, Accepted::Nack(_)), "{accepted:?}");
            twin = Some(ends[0].clone());
        } else {
            assert_eq!(accepted, Accepted::UnmatchedNack);
        }
    }
    let c = ends[0].counters();
    assert_eq!(
        (c.nacks_received, c.nacks_matched, c.nacks_unmatched),
        (2, 1, 1)
    );
    // The copy changed nothing: the next message is the twin's.
    let mut twin = twin.unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    ends[0].send(CID[0], last, Link::Datagram, &mut a).unwrap();
    twin.send(CID[0], last, Link::Datagram, &mut b).unwrap();
    assert_eq!(a, b);
}

/// A forged NACK (any SHA-1 but one of a message the compartment sent,
/// e.g. one naming a message the other side sent) is counted and changes
/// nothing: the endpoint goes on exactly as a copy that never saw it.
#[test]
fn a_forged_nack_changes_nothing() {
    let mut ends = pair(&config(8192, 8192));
    let msgs = independent();
    let mut theirs = Vec::new();
    for (from, m) in &msgs[..8] {
        let (_, wire) = exchange(&mut ends, *from, m, Link::Datagram);
        if *from == 1 {
            theirs = wire;
        }
    }
    let failure = sigcomp::Failure {
        reason: Reason::StateNotFound,
        opcode: 0,
        pc: 0,
        details: vec![0; 6],
        cycles: 0,
    };
    let mut twin = ends[0].clone();
    for named in [&theirs[..], b"\xf9 never sent"] {
        let mut wire = Vec::new();
        sigcomp::Nack::from_failure(&failure, named).emit(&mut wire);
        let got = receive_all(&mut ends[0], &wire, Link::Datagram);
        assert_eq!(ends[0].accept(CID[0], &got[0]), Accepted::UnmatchedNack);
    }
    let c = ends[0].counters();
    assert_eq!(
        (c.nacks_received, c.nacks_unmatched, c.nacks_matched),
        (2, 2, 0)
    );
    for (_, m) in msgs[8..].iter().filter(|(f, _)| *f == 0) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let sa = ends[0].send(CID[0], m, Link::Datagram, &mut a).unwrap();
        let sb = twin.send(CID[0], m, Link::Datagram, &mut b).unwrap();
        assert_eq!((sa, a), (sb, b));
    }
}

/// A datagram that is not SigComp is handed over as is (RFC 3320 §4.1),
/// and a NACK of an unknown version is never answered.
#[test]
fn plain_datagrams_and_unknown_nacks() {
    let mut ends = pair(&config(8192, 8192));
    let ok = ours("09-200-message.sip");
    let got = receive_all(&mut ends[0], &ok, Link::Datagram);
    assert_eq!(got, vec![Received::Plain(ok.clone())]);
    assert_eq!(ends[0].accept(CID[0], &got[0]), Accepted::Nothing);
    let mut v2 = vec![0xf8, 0x00, 0x02, 1, 0, 0, 0];
    v2.extend_from_slice(&[0; 20]);
    let got = receive_all(&mut ends[0], &v2, Link::Datagram);
    let Received::Failed(f) = &got[0] else {
        panic!("{got:?}")
    };
    assert!(f.nack().is_none());
    // Plain when nothing must travel: the first reply of a fresh pair
    // that does not announce.
    let mut ends = pair(&EndpointConfig {
        announce: false,
        ..config(8192, 8192)
    });
    let (sent, wire) = exchange(&mut ends, 1, &ok, Link::Datagram);
    assert_eq!((sent.compressed.kind, wire), (Kind::Plain, ok));
}

/// One direction with no traffic of its own: the acknowledgement is sent
/// alone (14 bytes, no message for the application), and the sender's
/// next message uses the state.
#[test]
fn an_acknowledgement_travels_alone() {
    let mut ends = pair(&EndpointConfig {
        announce: false,
        ..config(8192, 8192)
    });
    let msg = ours("08-message.sip");
    exchange(&mut ends, 0, &msg, Link::Datagram);
    assert!(ends[1].feedback_pending(CID[1]));
    let mut wire = Vec::new();
    let ack = ends[1]
        .acknowledge(CID[1], Link::Datagram, &mut wire)
        .unwrap();
    assert_eq!((ack.len, ack.compressed.kind), (14, Kind::Literal));
    let mut again = Vec::new();
    assert!(
        ends[1]
            .acknowledge(CID[1], Link::Datagram, &mut again)
            .is_none()
    );
    let got = receive_all(&mut ends[0], &wire, Link::Datagram);
    let Received::Message(m) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(m.message(), None);
    ends[0].accept(CID[0], &got[0]);
    let (again, _) = exchange(&mut ends, 0, &msg, Link::Datagram);
    assert!(again.compressed.states_used == 1 && again.len < 50);
}
