//! `sigcomp::Endpoint` over a stream transport (TCP): messages framed with
//! 0xFFFF (RFC 3320 §4.2.2) and decompressed with UDVM memory DMS / 2
//! (RFC 3320 §7, our own decompressor with `Transport::Stream`), never
//! plain inside a SigComp stream (RFC 5049 §5); segments split and merged
//! at every byte position; a connection reset mid-message closes nothing
//! but the connection; framing errors and plain streams.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{CID, config, exchange, independent, ours, pair, receive_all};
use proptest::prelude::*;
use sigcomp::compress::Kind;
use sigcomp::{Accepted, Endpoint, Link, Reason, Received, StreamId, Transport};

/// The UE's and the P-CSCF's connection, as each names it.
const TCP: [Link; 2] = [Link::Stream(StreamId(10)), Link::Stream(StreamId(20))];

/// Both sessions over TCP, both directions: every message byte-exact,
/// none plain (the short answers go literal), the second session
/// compresses against the first in both directions.
#[test]
fn a_duplex_flow_over_tcp() {
    let mut ends = pair(&config(8192, 8192));
    let mut used = [0; 2];
    for (i, (from, m)) in independent().iter().enumerate() {
        let (sent, wire) = exchange(&mut ends, *from, m, TCP[*from]);
        assert_ne!(sent.compressed.kind, Kind::Plain);
        assert_eq!(&wire[wire.len() - 2..], [0xff, 0xff]);
        assert_eq!(sent.len, wire.len());
        if i >= 14 {
            used[*from] += sent.compressed.states_used;
        }
    }
    assert!(used[0] > 0 && used[1] > 0, "{used:?}");
    let ok = ours("09-200-message.sip");
    let (sent, _) = exchange(&mut ends, 1, &ok, TCP[1]);
    assert_ne!(sent.compressed.kind, Kind::Plain);
}

/// A recorded stream, where each message ends in it, and the messages.
type Recorded = (Vec<u8>, Vec<usize>, Vec<Vec<u8>>);

/// The UE's side of a flow over TCP, recorded with the P-CSCF accepting
/// and answering (so the UE's later messages use states): the UE's byte
/// stream, where each message ends in it, and the messages.
fn recorded_stream(n: usize) -> Recorded {
    let mut ends = pair(&config(8192, 8192));
    let mut stream = Vec::new();
    let mut bounds = Vec::new();
    let mut sent = Vec::new();
    let msgs = independent();
    for (from, m) in msgs.iter().take(2 * n) {
        let (_, wire) = exchange(&mut ends, *from, m, TCP[*from]);
        if *from == 0 {
            stream.extend_from_slice(&wire);
            bounds.push(stream.len());
            sent.push(m.clone());
        }
    }
    (stream, bounds, sent)
}

/// Feeds `chunks` of the UE's stream to the P-CSCF, accepting every
/// message; returns the messages.
fn deliver(pcscf: &mut Endpoint, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    for c in chunks {
        let mut next = pcscf.receive(c, TCP[0]);
        while let Some(r) = next {
            let Received::Message(m) = &r else {
                panic!("{r:?}")
            };
            got.push(m.message().unwrap().to_vec());
            // Accepted before the next message, which uses its states, is
            // decompressed.
            pcscf.accept(CID[1], &r);
            next = pcscf.receive(&[], TCP[0]);
        }
    }
    got
}

fn fresh() -> Endpoint {
    Endpoint::new(config(8192, 8192)).unwrap()
}

/// The stream split in two segments at every byte position, the second
/// one merging the rest of the message with the next one: each message
/// comes out once, whole, in order. (A P-CSCF that accepted the messages
/// before is cloned for each position, so each split costs two messages.)
#[test]
fn segments_split_at_every_byte() {
    let (stream, bounds, sent) = recorded_stream(4);
    assert!(stream.len() > 1000);
    let mut before = fresh();
    let mut start = 0;
    for (k, &end) in bounds.iter().enumerate() {
        let merged = bounds.get(k + 1).copied().unwrap_or(end);
        for p in start..end {
            let mut pcscf = before.clone();
            let got = deliver(&mut pcscf, &[&stream[start..p], &stream[p..merged]]);
            let want = &sent[k..(k + 2).min(sent.len())];
            assert_eq!(got, want, "split at {p}");
        }
        deliver(&mut before, &[&stream[start..end]]);
        start = end;
    }
    // All in one segment, and one byte per segment.
    assert_eq!(deliver(&mut fresh(), &[&stream]), sent);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(deliver(&mut fresh(), &bytes), sent);
}

fn stream7() -> &'static Recorded {
    static S: std::sync::OnceLock<Recorded> = std::sync::OnceLock::new();
    S.get_or_init(|| recorded_stream(7))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any segmentation: cuts at arbitrary positions, several messages per
    /// segment or several segments per message.
    #[test]
    fn any_segmentation(cuts in proptest::collection::vec(0usize..100_000, 0..24)) {
        let (stream, _, sent) = stream7();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut at = 0;
        for c in cuts.into_iter().chain([stream.len()]) {
            chunks.push(&stream[at..c]);
            at = c;
        }
        prop_assert_eq!(&deliver(&mut fresh(), &chunks), sent);
    }
}

/// The connection resets in the middle of a message: the P-CSCF forgets
/// the connection and its partial message, nothing else. The UE sends the
/// message again on a new connection (compressed again, RFC 5049 §8) and
/// the compartments carry on with their states.
#[test]
fn a_reset_mid_message_closes_only_the_connection() {
    let mut ends = pair(&config(8192, 8192));
    let msgs = independent();
    for (from, m) in &msgs[..8] {
        exchange(&mut ends, *from, m, TCP[*from]);
    }
    let next = &msgs[8].1;
    let mut wire = Vec::new();
    ends[0].send(CID[0], next, TCP[0], &mut wire).unwrap();
    assert!(receive_all(&mut ends[1], &wire[..wire.len() / 2], TCP[0]).is_empty());
    ends[1].close_stream(StreamId(10));
    // A new connection on both sides.
    let new = [Link::Stream(StreamId(11)), Link::Stream(StreamId(21))];
    let states = ends[1].states().len();
    for (from, m) in &msgs[8..14] {
        let (sent, _) = exchange(&mut ends, *from, m, new[*from]);
        assert!(sent.compressed.states_used > 0, "{sent:?}");
    }
    assert!(ends[1].states().len() >= states);
    // The old connection's half message is gone: its id starts afresh.
    let (_, w) = exchange(&mut ends, 0, &msgs[14].1, TCP[0]);
    assert!(!w.is_empty());
    for e in &ends {
        assert_eq!(e.counters().failed, 0);
    }
}

/// RFC 3320 §4.2.2: an unquoted 0xFF80..0xFFFE breaks the stream: a
/// FRAMING_ERROR NACK (zero SHA-1, RFC 4077 §3.1) is returned, framed,
/// and the connection is to be closed; the endpoint has forgotten it.
#[test]
fn a_framing_error_closes_the_stream() {
    let mut ends = pair(&config(8192, 8192));
    let (_, good) = exchange(&mut ends, 0, &independent()[0].1, TCP[0]);
    let got = receive_all(&mut ends[1], &[0xf8, 0x00, 0xff, 0x80, 0x01], TCP[0]);
    let Received::Failed(f) = &got[0] else {
        panic!("{got:?}")
    };
    assert!(f.close_stream());
    assert_eq!(f.reason, Reason::FramingError);
    let nack = f.nack().unwrap();
    assert_eq!(&nack[nack.len() - 2..], [0xff, 0xff]);
    let back = receive_all(&mut ends[0], nack, TCP[1]);
    let Received::Nack(n) = &back[0] else {
        panic!("{back:?}")
    };
    assert_eq!((n.reason(), n.sha1), (Some(Reason::FramingError), [0; 20]));
    assert_eq!(ends[0].accept(CID[0], &back[0]), Accepted::UnmatchedNack);
    assert_eq!(ends[1].counters().framing_errors, 1);
    // The same connection id starts a new stream.
    assert!(matches!(
        receive_all(&mut ends[1], &good, TCP[0])[0],
        Received::Message(_)
    ));
}

/// RFC 5049 §5: a stream whose first byte is not SigComp carries plain
/// SIP, handed over as is (the application frames it).
#[test]
fn a_plain_stream_is_passed_through() {
    let mut ep = Endpoint::new(config(8192, 8192)).unwrap();
    let ok = ours("09-200-message.sip");
    let (a, b) = ok.split_at(100);
    assert_eq!(
        receive_all(&mut ep, a, TCP[0]),
        vec![Received::Plain(a.to_vec())]
    );
    assert_eq!(
        receive_all(&mut ep, b, TCP[0]),
        vec![Received::Plain(b.to_vec())]
    );
    assert!(receive_all(&mut ep, &[], TCP[0]).is_empty());
}

/// RFC 4077 §2.3.2: a NACK for a message sent over a stream is matched
/// and reported with its transport, for the application to treat as a
/// transport error.
#[test]
fn a_nack_over_tcp_is_reported_with_its_transport() {
    let mut ends = pair(&config(8192, 8192));
    let msgs = independent();
    for (from, m) in &msgs[..6] {
        exchange(&mut ends, *from, m, TCP[*from]);
    }
    ends[1].close(CID[1]);
    let mut wire = Vec::new();
    ends[0].send(CID[0], &msgs[6].1, TCP[0], &mut wire).unwrap();
    let got = receive_all(&mut ends[1], &wire, TCP[0]);
    let Received::Failed(f) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(f.reason, Reason::StateNotFound);
    assert!(!f.close_stream());
    let back = receive_all(&mut ends[0], f.nack().unwrap(), TCP[1]);
    let Accepted::Nack(n) = ends[0].accept(CID[0], &back[0]) else {
        panic!("{back:?}")
    };
    assert_eq!(n.transport, Transport::Stream);
}

/// Longer than SigComp carries (RFC 5049 §7): not sendable on a stream.
#[test]
fn a_message_too_long_for_sigcomp_is_refused_on_a_stream() {
    let mut ep = Endpoint::new(config(8192, 8192)).unwrap();
    let mut wire = Vec::new();
    let e = ep
        .send(CID[0], &vec![b'x'; 70_000], TCP[0], &mut wire)
        .unwrap_err();
    assert_eq!(
        e,
        sigcomp::Error::MessageTooLarge {
            len: 70_000,
            max: 65536
        }
    );
    // Over UDP it goes plain (the application decides what to do).
    let s = ep
        .send(CID[0], &vec![b'x'; 70_000], Link::Datagram, &mut wire)
        .unwrap();
    assert_eq!(s.compressed.kind, Kind::Plain);
}
