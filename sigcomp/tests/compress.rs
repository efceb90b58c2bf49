//! Our compressor against our UDVM: single messages, flows with feedback,
//! loss and reordering (proptest), the never-worse-than-plain rule.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sigcomp::compress::{Compressor, Config, Kind, bytecode};
use sigcomp::{CompartmentId, Decompressor, Parameters, StateHandler, Transport};

/// Session 1 of the independent corpus, with the file names.
fn corpus() -> Vec<(String, Vec<u8>)> {
    testkit::corpus::sip_named(&testkit::corpus::independent_dir())
}

/// The receiving endpoint: decompressor + state handler, committing each
/// message and handing back the requested feedback item.
struct Peer {
    d: Decompressor,
    states: StateHandler,
    cid: CompartmentId,
}

impl Peer {
    fn new(dms: u32, sms: u32) -> Peer {
        let params = Parameters {
            decompression_memory_size: dms,
            state_memory_size: sms,
            ..Parameters::default()
        };
        let mut states = StateHandler::with_dictionaries();
        states.open_compartment(CompartmentId(7), sms);
        Peer {
            d: Decompressor::new(params).unwrap(),
            states,
            cid: CompartmentId(7),
        }
    }

    /// Returns the output and the requested feedback item.
    fn receive(&mut self, wire: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
        if !sigcomp::message::is_sigcomp(wire) {
            return (wire.to_vec(), None);
        }
        let out = self
            .d
            .decompress(wire, Transport::Message, &self.states)
            .unwrap_or_else(|f| panic!("{f:?}"));
        self.states.commit(self.cid, &out).unwrap();
        let item = out.requested_feedback.as_ref().and_then(|r| r.item.clone());
        (out.output, item)
    }
}

#[test]
fn first_messages_decompress() {
    for (name, msg) in corpus() {
        let mut c = Compressor::new(Config::default()).unwrap();
        let mut wire = Vec::new();
        let r = c.compress(&msg, &mut wire);
        let mut p = Peer::new(8192, 8192);
        let (out, _) = p.receive(&wire);
        assert_eq!(out, msg, "{name}");
        println!("{name}: {} -> {} {:?}", msg.len(), r.len, r.kind);
    }
}

#[test]
fn flow_with_feedback_uses_states() {
    let mut c = Compressor::new(Config::default()).unwrap();
    let mut p = Peer::new(8192, 8192);
    let mut wire = Vec::new();
    let (mut orig, mut comp) = (0, 0);
    for round in 0..2 {
        for (name, msg) in corpus() {
            let r = c.compress(&msg, &mut wire);
            let (out, item) = p.receive(&wire);
            assert_eq!(out, msg, "{name}");
            if let Some(i) = item {
                c.on_feedback_item(&i);
            }
            println!(
                "{round} {name}: {} -> {} bc={} states={}",
                msg.len(),
                r.len,
                r.carried_bytecode,
                r.states_used
            );
            if round == 1 {
                orig += msg.len();
                comp += r.len;
                assert!(!r.carried_bytecode);
                assert_eq!(r.kind, Kind::SigComp);
            }
        }
    }
    println!("steady {comp}/{orig}");
}

#[test]
fn local_bytecode_is_never_uploaded() {
    let mut c = Compressor::new(Config::default()).unwrap();
    let announce = Parameters::default()
        .announcement(&[bytecode::state_id()])
        .unwrap();
    c.on_peer_parameters(&announce);
    let mut p = Peer::new(8192, 8192);
    p.states.add_local(bytecode::state());
    let mut wire = Vec::new();
    for (name, msg) in corpus() {
        let r = c.compress(&msg, &mut wire);
        assert!(!r.carried_bytecode);
        let (out, item) = p.receive(&wire);
        assert_eq!(out, msg, "{name}");
        if let Some(i) = item {
            c.on_feedback_item(&i);
        }
    }
}

#[test]
fn nack_makes_the_compressor_fall_back() {
    let msgs = corpus();
    let mut c = Compressor::new(Config::default()).unwrap();
    let mut p = Peer::new(8192, 8192);
    let mut wire = Vec::new();
    for (_, m) in &msgs[..4] {
        c.compress(m, &mut wire);
        let (_, item) = p.receive(&wire);
        c.on_feedback_item(&item.unwrap());
    }
    // The receiver restarts and loses the compartment's states.
    let mut fresh = Peer::new(8192, 8192);
    let r = c.compress(&msgs[4].1, &mut wire);
    assert!(!r.carried_bytecode);
    let failure = fresh
        .d
        .decompress(&wire, Transport::Message, &fresh.states)
        .unwrap_err();
    let nack = sigcomp::Nack::from_failure(&failure, &wire);
    c.on_nack(&nack);
    let r = c.compress(&msgs[4].1, &mut wire);
    assert!(r.carried_bytecode);
    assert_eq!(r.states_used, 0);
    assert_eq!(fresh.receive(&wire).0, msgs[4].1);
}

/// RFC 3320 §6.2 frees the lowest priorities first whatever the new
/// state's priority: a creation that arrives late evicts a newer state
/// that arrived before it, and its acknowledgement must not make that
/// state look safe.
#[test]
fn a_late_lower_priority_creation_keeps_counting_after_its_ack() {
    let msgs = corpus();
    let file = |n: &str| {
        msgs.iter()
            .find(|(f, _)| f.starts_with(n))
            .unwrap()
            .1
            .clone()
    };
    // 1956 + 1697 bytes: with the bytecode they overflow SMS 4096.
    let (s, x) = (file("03-"), file("01-"));
    let mut config = Config::default();
    config.peer.state_memory_size = 4096;
    let mut c = Compressor::new(config).unwrap();
    let mut p = Peer::new(8192, 4096);
    let (mut w1, mut w2) = (Vec::new(), Vec::new());
    let r1 = c.compress(&s, &mut w1);
    let r2 = c.compress(&x, &mut w2);
    assert!(r1.seq != 0 && r2.seq > r1.seq, "{r1:?} {r2:?}");
    // The second message arrives first, and is acknowledged.
    let (_, item) = p.receive(&w2);
    c.on_feedback_item(&item.unwrap());
    let held = |p: &Peer| -> Vec<_> {
        let c = p.states.compartment(p.cid).unwrap();
        c.state_ids().copied().collect()
    };
    let with_x = held(&p);
    // The first one arrives late: creating its state frees x's.
    let (_, item) = p.receive(&w1);
    c.on_feedback_item(&item.unwrap());
    let now = held(&p);
    assert!(
        with_x.iter().any(|id| !now.contains(id)),
        "x was not evicted"
    );
    // x's message again: it must not name x's state.
    let mut w3 = Vec::new();
    c.compress(&x, &mut w3);
    assert_eq!(p.receive(&w3).0, x);
}

#[test]
fn never_larger_than_plain_plus_3() {
    let mut c = Compressor::new(Config::default()).unwrap();
    let mut wire = Vec::new();
    for len in [0usize, 1, 5, 50, 200, 1000] {
        let msg: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
        let r = c.compress(&msg, &mut wire);
        assert!(wire.len() <= msg.len() + 3, "{len}");
        assert_eq!(r.len, wire.len());
        if r.kind == Kind::Plain {
            assert_eq!(wire, msg);
        }
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn mutate(base: &[u8], edits: &[(u16, u8)]) -> Vec<u8> {
        let mut m = base.to_vec();
        for &(pos, b) in edits {
            if m.is_empty() {
                m.push(b);
                continue;
            }
            let i = usize::from(pos) % m.len();
            match b % 3 {
                0 => m[i] = b,
                1 => m.insert(i, b),
                _ => {
                    m.remove(i);
                }
            }
        }
        m
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Random bytes and mutated SIP messages, alone in a compartment:
        /// our UDVM gives back the same bytes.
        #[test]
        fn random_messages_round_trip(
            random in proptest::collection::vec(any::<u8>(), 0..2500),
            pick in 0usize..14,
            edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 0..40),
            dms in prop_oneof![Just(2048u32), Just(4096), Just(8192), Just(16384), Just(65536)],
        ) {
            let corpus = corpus();
            for msg in [random, mutate(&corpus[pick].1, &edits)] {
                let peer = sigcomp::Resources { cycles_per_bit: 16, decompression_memory_size: dms, state_memory_size: 4096 };
                let mut c = Compressor::new(Config { peer, ..Config::default() }).unwrap();
                let mut p = Peer::new(dms, 4096);
                let mut wire = Vec::new();
                let r = c.compress(&msg, &mut wire);
                if r.kind == Kind::Plain && sigcomp::message::is_sigcomp(&msg) {
                    // Too large for the peer's memory and unsendable plain.
                    continue;
                }
                prop_assert!(wire.len() <= msg.len() + 3 || sigcomp::message::is_sigcomp(&msg));
                let (out, _) = p.receive(&wire);
                prop_assert_eq!(out, msg, "{:?}", r);
            }
        }

        /// Flows over a lossy, reordering channel whose feedback is also
        /// lost and delayed: every message that arrives decompresses to its
        /// original (no reference to a state the peer may not have).
        #[test]
        fn flows_survive_loss_and_reordering(
            picks in proptest::collection::vec((0usize..14, proptest::collection::vec((any::<u16>(), any::<u8>()), 0..6)), 1..40),
            fates in proptest::collection::vec((0u8..10, 0usize..4, 0u8..10, 0usize..4), 40),
            sms in prop_oneof![Just(2048u32), Just(4096), Just(8192)],
        ) {
            let corpus = corpus();
            let peer = sigcomp::Resources { cycles_per_bit: 16, decompression_memory_size: 8192, state_memory_size: sms };
            let mut c = Compressor::new(Config { peer, ..Config::default() }).unwrap();
            let mut p = Peer::new(8192, sms);
            let mut in_flight: Vec<(usize, Vec<u8>, Vec<u8>)> = Vec::new();
            let mut feedback: Vec<(usize, Vec<u8>)> = Vec::new();
            let mut delivered = 0;
            let steps = picks.len() + 8;
            for t in 0..steps {
                if let Some((pick, edits)) = picks.get(t) {
                    let msg = mutate(&corpus[*pick].1, edits);
                    let mut wire = Vec::new();
                    c.compress(&msg, &mut wire);
                    let (lose, delay, _, _) = fates[t % fates.len()];
                    if lose != 0 {
                        in_flight.push((t + delay, wire, msg));
                    }
                }
                let (due, later): (Vec<_>, Vec<_>) = in_flight.drain(..).partition(|m| m.0 <= t);
                in_flight = later;
                for (_, wire, msg) in due {
                    let (out, item) = p.receive(&wire);
                    prop_assert_eq!(&out, &msg);
                    delivered += 1;
                    let (_, _, fb_lose, fb_delay) = fates[(t + delivered) % fates.len()];
                    if let (Some(item), true) = (item, fb_lose != 0) {
                        feedback.push((t + fb_delay, item));
                    }
                }
                let (due, later): (Vec<_>, Vec<_>) = feedback.drain(..).partition(|f| f.0 <= t);
                feedback = later;
                for (_, item) in due {
                    c.on_feedback_item(&item);
                }
            }
        }
    }
}

/// Sessions 1 and 2 in one compartment at memory sizes from the minimum
/// to beyond the DEFLATE window (distances are capped at 32768).
#[test]
fn flows_at_every_memory_size() {
    let mut msgs = testkit::corpus::independent();
    msgs.extend(testkit::corpus::independent_session2());
    for (dms, sms) in [
        (2048, 2048),
        (4096, 2048),
        (16384, 16384),
        (65536, 65536),
        (131072, 65536),
    ] {
        let peer = sigcomp::Resources {
            cycles_per_bit: 16,
            decompression_memory_size: dms,
            state_memory_size: sms,
        };
        let mut c = Compressor::new(Config {
            peer,
            ..Config::default()
        })
        .unwrap();
        let mut p = Peer::new(dms, sms);
        let mut wire = Vec::new();
        for m in &msgs {
            c.compress(m, &mut wire);
            let (out, item) = p.receive(&wire);
            assert_eq!(&out, m, "{dms}/{sms}");
            if let Some(i) = item {
                c.on_feedback_item(&i);
            }
        }
    }
}

/// Two endpoints of ours: A announces its decompressor's parameters and
/// our bytecode as a local state in its messages (RFC 3320 §9.4.9); B's
/// compressor, told by its state handler, never uploads the bytecode.
#[test]
fn announced_local_bytecode_reaches_the_peer_compressor() {
    let announce = Parameters::default()
        .announcement(&[bytecode::state_id()])
        .unwrap();
    let mut a = Compressor::new(Config {
        announce: Some(announce.clone()),
        ..Config::default()
    })
    .unwrap();
    let mut b_side = Peer::new(8192, 8192);
    let mut wire = Vec::new();
    let msg = &corpus()[0].1;
    a.compress(msg, &mut wire);
    let out = b_side
        .d
        .decompress(&wire, Transport::Message, &b_side.states)
        .unwrap();
    assert_eq!(&out.output, msg);
    assert_eq!(out.returned_parameters.as_ref(), Some(&announce));
    b_side.states.commit(b_side.cid, &out).unwrap();
    // B's compressor for the reverse direction learns it from B's state handler.
    let learned = b_side
        .states
        .compartment(b_side.cid)
        .unwrap()
        .feedback()
        .returned_parameters
        .clone()
        .unwrap();
    let mut b = Compressor::new(Config::default()).unwrap();
    b.on_peer_parameters(&learned);
    let mut a_side = Peer::new(8192, 8192);
    a_side.states.add_local(bytecode::state());
    for (_, m) in corpus() {
        let r = b.compress(&m, &mut wire);
        assert!(!r.carried_bytecode);
        let (out, item) = a_side.receive(&wire);
        assert_eq!(out, m);
        if let Some(i) = item {
            b.on_feedback_item(&i);
        }
    }
}

/// A peer that restarted lost our announcement with our states: after
/// its NACK our messages announce again, until one is acknowledged.
#[test]
fn a_matched_nack_announces_again() {
    let announce = Parameters {
        state_memory_size: 8192,
        ..Parameters::default()
    }
    .announcement(&[])
    .unwrap();
    let mut c = Compressor::new(Config {
        announce: Some(announce.clone()),
        ..Config::default()
    })
    .unwrap();
    let msgs = corpus();
    let mut p = Peer::new(8192, 8192);
    let mut wire = Vec::new();
    // What the message announces, decompressed by `p`.
    let send = |c: &mut Compressor, p: &mut Peer, msg: &[u8], wire: &mut Vec<u8>| {
        c.compress(msg, wire);
        let out = p.d.decompress(wire, Transport::Message, &p.states);
        let out = out.unwrap();
        p.states.commit(p.cid, &out).unwrap();
        if let Some(i) = out.requested_feedback.as_ref().and_then(|r| r.item.clone()) {
            c.on_feedback_item(&i);
        }
        out.returned_parameters
    };
    assert_eq!(
        send(&mut c, &mut p, &msgs[0].1, &mut wire),
        Some(announce.clone())
    );
    assert_eq!(send(&mut c, &mut p, &msgs[2].1, &mut wire), None);
    // The peer restarts; our next message names a state it lost.
    let mut fresh = Peer::new(8192, 8192);
    c.compress(&msgs[4].1, &mut wire);
    let failure = fresh
        .d
        .decompress(&wire, Transport::Message, &fresh.states)
        .unwrap_err();
    assert!(
        c.on_nack(&sigcomp::Nack::from_failure(&failure, &wire))
            .is_some()
    );
    assert_eq!(
        send(&mut c, &mut fresh, &msgs[4].1, &mut wire),
        Some(announce.clone())
    );
    assert_eq!(send(&mut c, &mut fresh, &msgs[6].1, &mut wire), None);
}

/// A compressor and its peer with the largest memories (DMS and SMS 65536).
fn largest_memory() -> (Compressor, Peer) {
    let peer = sigcomp::Resources {
        cycles_per_bit: 16,
        decompression_memory_size: 65536,
        state_memory_size: 65536,
    };
    let c = Compressor::new(Config {
        peer,
        ..Config::default()
    })
    .unwrap();
    (c, Peer::new(65536, 65536))
}

/// A long flow into a large state memory, with acknowledgements lost:
/// what the compressor keeps about settled messages stays bounded and
/// never makes it start again (no second bytecode upload), and messages
/// keep using states.
#[test]
fn a_long_flow_never_starts_again() {
    let (mut c, mut p) = largest_memory();
    let mut wire = Vec::new();
    let corpus = corpus();
    let mut stateful = 0;
    for i in 0..3000usize {
        // Each message unique (a state of its own), most of it seen before.
        let mut msg = corpus[i % corpus.len()].1.clone();
        let at = msg.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        msg.splice(at..at, format!("X-Seq: {i}\r\n").into_bytes());
        let r = c.compress(&msg, &mut wire);
        assert!(i == 0 || !r.carried_bytecode, "message {i} uploads again");
        stateful += usize::from(r.states_used > 0);
        let (out, item) = p.receive(&wire);
        assert_eq!(out, msg);
        // Every third acknowledgement is lost.
        if let Some(item) = item.filter(|_| i % 3 != 1) {
            c.on_feedback_item(&item);
        }
    }
    assert!(stateful > 2900, "{stateful}");
}

/// Hundreds of small states fit a large SMS: the one-byte entry count
/// must not wrap.
#[test]
fn many_small_states() {
    let (mut c, mut p) = largest_memory();
    let mut wire = Vec::new();
    let mut most = 0;
    for i in 0..400u32 {
        // Each message shares little with the others but compresses
        // against the dictionary, so it is sent compressed and kept.
        let tag: String = (0..40)
            .map(|k| char::from(b'a' + ((i * 7 + k * 13 + i * k) % 26) as u8))
            .collect();
        let msg = format!(
            "SIP/2.0 200 OK\r\nCall-ID: {tag}\r\nContent-Length: 0\r\nCSeq: {i} MESSAGE\r\n\r\n"
        )
        .into_bytes();
        let r = c.compress(&msg, &mut wire);
        most = most.max(r.states_used);
        let (out, item) = p.receive(&wire);
        assert_eq!(out, msg);
        if let Some(it) = item {
            c.on_feedback_item(&it);
        }
    }
    assert!(most <= 253, "{most}");
}
