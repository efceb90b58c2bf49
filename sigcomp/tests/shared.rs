//! RFC 3321 §5.2 shared compression between two endpoints of ours: the UE
//! announces its requests as shared states and keeps them; the P-CSCF
//! compresses its answers against them; a response that names a shared
//! state the UE has dropped fails cleanly and the NACK makes the P-CSCF
//! fall back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use sigcomp::compress::{Compressor, Config, Kind, SHARED_KEEP, shared_state};
use sigcomp::{CompartmentId, Decompressor, Parameters, Reason, StateHandler, Transport};

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../vectors/sigcomp/independent/corpus")
            .join(name),
    )
    .unwrap()
}

/// One endpoint: its compressor towards the other end, its decompressor
/// and the compartment of the other end's messages.
struct End {
    c: Compressor,
    d: Decompressor,
    states: StateHandler,
    cid: CompartmentId,
}

impl End {
    fn new(cid: u64, shared: bool) -> End {
        let mut states = StateHandler::with_dictionaries();
        states.open_compartment(CompartmentId(cid), 8192);
        End {
            c: Compressor::new(Config {
                shared: shared.then_some(4096),
                ..Config::default()
            })
            .unwrap(),
            d: Decompressor::new(Parameters::default()).unwrap(),
            states,
            cid: CompartmentId(cid),
        }
    }
}

/// `tx` compresses `msg`, keeps it if it announced it as shared;
/// returns the wire bytes and what the compressor reported.
fn compress(tx: &mut End, msg: &[u8]) -> (Vec<u8>, sigcomp::compress::Compressed) {
    let mut wire = Vec::new();
    let r = tx.c.compress(msg, &mut wire);
    if r.shared {
        assert!(
            tx.states
                .add_shared(tx.cid, &shared_state(msg), SHARED_KEEP)
        );
    }
    (wire, r)
}

/// `rx` receives `wire` from `tx`: decompresses, commits, returns the
/// feedback to `tx` and hands the message to its own compressor.
fn deliver(tx: &mut End, rx: &mut End, wire: &[u8], msg: &[u8]) {
    assert_eq!(wire.first().map(|b| b >> 3), Some(0x1f), "SigComp expected");
    let out =
        rx.d.decompress(wire, Transport::Message, &rx.states)
            .unwrap_or_else(|f| panic!("{f:?}"));
    assert_eq!(out.output, msg);
    rx.states.commit(rx.cid, &out).unwrap();
    if let Some(item) = out.requested_feedback.as_ref().and_then(|f| f.item.clone()) {
        tx.c.on_feedback_item(&item);
    }
    rx.c.on_received(&out.output, out.returned_parameters.as_ref());
}

#[test]
fn answers_use_the_request_as_history() {
    let register = corpus("01-ue-register-initial.sip");
    let challenge = corpus("02-pcscf-401-aka-challenge.sip");
    let mut sizes = Vec::new();
    for shared in [false, true] {
        let mut ue = End::new(1, shared);
        let mut pcscf = End::new(2, shared);
        let (wire, r) = compress(&mut ue, &register);
        assert_eq!(r.shared, shared, "a request is announced when sharing");
        deliver(&mut ue, &mut pcscf, &wire, &register);
        let (wire, r) = compress(&mut pcscf, &challenge);
        assert!(!r.shared, "a response is never announced");
        assert_eq!(r.used_shared, shared);
        deliver(&mut pcscf, &mut ue, &wire, &challenge);
        sizes.push(wire.len());
    }
    // The 401 repeats the REGISTER's Via, From, To, Call-ID and CSeq.
    assert!(
        sizes[1] + 100 < sizes[0],
        "shared {} vs not {}",
        sizes[1],
        sizes[0]
    );
}

#[test]
fn the_sender_keeps_the_newest_shared_states_beside_the_peer_memory() {
    let mut h = StateHandler::with_dictionaries();
    let cid = CompartmentId(3);
    h.open_compartment(cid, 8192);
    let states: Vec<_> = (0..4)
        .map(|i| shared_state(format!("MESSAGE sip:{i}@example.com SIP/2.0\r\n").as_bytes()))
        .collect();
    for s in &states {
        assert!(h.add_shared(cid, s, 2));
    }
    let c = h.compartment(cid).unwrap();
    let kept: Vec<_> = c.shared_state_ids().copied().collect();
    assert_eq!(kept, vec![*states[2].id(), *states[3].id()]);
    // Not charged to the memory offered to the peer.
    assert_eq!(c.used(), 0);
    assert!(h.get(states[0].id()).is_none() && h.get(states[1].id()).is_none());
    assert!(h.get(states[3].id()).is_some());
    assert!(
        !h.add_shared(CompartmentId(99), &states[0], 2),
        "no such compartment"
    );
    assert!(!h.add_shared(cid, &states[0], 0));
    h.close_compartment(cid);
    assert!(h.get(states[3].id()).is_none());
}

#[test]
fn a_dropped_shared_state_fails_cleanly_and_the_nack_recovers() {
    let register = corpus("01-ue-register-initial.sip");
    let newer: Vec<Vec<u8>> = [
        "05-ue-subscribe-presence.sip",
        "09-ue-message-sms.sip",
        "11-ue-message-text.sip",
        "13-ue-reregister.sip",
    ]
    .iter()
    .map(|n| corpus(n))
    .collect();
    assert_eq!(newer.len(), SHARED_KEEP);
    let challenge = corpus("02-pcscf-401-aka-challenge.sip");
    let mut ue = End::new(1, true);
    let mut pcscf = End::new(2, true);
    let (wire, _) = compress(&mut ue, &register);
    deliver(&mut ue, &mut pcscf, &wire, &register);
    // The P-CSCF answers against the REGISTER while the UE has already
    // sent SHARED_KEEP newer requests (lost or still in flight): the UE
    // no longer holds the REGISTER.
    let (answer, r) = compress(&mut pcscf, &challenge);
    assert!(r.used_shared);
    for m in &newer {
        let (_, r) = compress(&mut ue, m);
        assert!(r.shared);
    }
    let failure =
        ue.d.decompress(&answer, Transport::Message, &ue.states)
            .unwrap_err();
    assert_eq!(failure.reason, Reason::StateNotFound);
    let nack = sigcomp::Nack::from_failure(&failure, &answer);
    pcscf.c.on_nack(&nack);
    let (wire, r) = compress(&mut pcscf, &challenge);
    assert!(!r.used_shared && r.kind == Kind::SigComp);
    deliver(&mut pcscf, &mut ue, &wire, &challenge);
}

mod lossy {
    use super::*;
    use proptest::prelude::*;

    fn files(pcscf: bool) -> Vec<Vec<u8>> {
        let root =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/independent/corpus");
        let mut names: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sip"))
            .filter(|p| p.to_string_lossy().contains("pcscf") == pcscf)
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// In flight: (due step, receiver, wire, original, used a shared state).
    type Packet = (usize, usize, Vec<u8>, Vec<u8>, bool);

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// Both directions over a channel that loses, delays and reorders
        /// messages and their feedback, with shared compression: a message
        /// that arrives gives back its original bytes, or fails with
        /// STATE_NOT_FOUND because it named a shared state its receiver
        /// had dropped (more than SHARED_KEEP newer requests crossed it);
        /// nothing else ever fails, and after the NACK the sender's next
        /// message that arrives decompresses again.
        #[test]
        fn duplex_shared_survives_loss_and_reordering(
            steps in proptest::collection::vec((0usize..2, 0usize..7, 0u8..10, 0usize..4, 0u8..10, 0usize..4), 1..40),
        ) {
            let corpus = [files(false), files(true)];
            let mut ends = [End::new(1, true), End::new(2, true)];
            let mut in_flight: Vec<Packet> = Vec::new();
            // (due step, receiver of the item = original sender, item)
            let mut feedback: Vec<(usize, usize, Vec<u8>)> = Vec::new();
            for t in 0..steps.len() + 8 {
                if let Some(&(from, pick, lose, delay, _, _)) = steps.get(t) {
                    let msg = &corpus[from][pick % corpus[from].len()];
                    let (wire, r) = compress(&mut ends[from], msg);
                    if lose != 0 {
                        in_flight.push((t + delay, 1 - from, wire, msg.clone(), r.used_shared));
                    }
                }
                let (due, later): (Vec<_>, Vec<_>) = in_flight.drain(..).partition(|m| m.0 <= t);
                in_flight = later;
                for (_, to, wire, msg, used_shared) in due {
                    let from = 1 - to;
                    let [a, b] = &mut ends;
                    let (tx, rx) = if from == 0 { (a, b) } else { (b, a) };
                    if !sigcomp::message::is_sigcomp(&wire) {
                        // Sent plain (compressing would have cost more).
                        prop_assert_eq!(&wire, &msg);
                        continue;
                    }
                    match rx.d.decompress(&wire, Transport::Message, &rx.states) {
                        Ok(out) => {
                            prop_assert_eq!(&out.output, &msg);
                            rx.states.commit(rx.cid, &out).unwrap();
                            rx.c.on_received(&out.output, out.returned_parameters.as_ref());
                            let fate = steps[(t + msg.len()) % steps.len()];
                            if let (Some(item), true) = (
                                out.requested_feedback.as_ref().and_then(|f| f.item.clone()),
                                fate.4 != 0,
                            ) {
                                feedback.push((t + fate.5, from, item));
                            }
                        }
                        Err(f) => {
                            prop_assert!(used_shared, "only a shared reference may fail: {:?}", f.reason);
                            prop_assert_eq!(f.reason, Reason::StateNotFound);
                            // The NACK goes back at once.
                            tx.c.on_nack(&sigcomp::Nack::from_failure(&f, &wire));
                        }
                    }
                }
                let (due, later): (Vec<_>, Vec<_>) = feedback.drain(..).partition(|f| f.0 <= t);
                feedback = later;
                for (_, to, item) in due {
                    ends[to].c.on_feedback_item(&item);
                }
            }
        }
    }
}
