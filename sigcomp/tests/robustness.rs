//! Hostile input: the decompressor never panics, never uses more cycles
//! than RFC 3320 §8.6 allows, and stream framing round-trips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use sigcomp::message::frame_stream;
use sigcomp::{CompartmentId, Decompressor, Parameters, StateHandler, StreamDeframer, Transport};

fn params(cpb: u16) -> Parameters {
    Parameters {
        decompression_memory_size: 4096,
        state_memory_size: 4096,
        cycles_per_bit: cpb,
        version: 2,
    }
}

/// A bytecode message: header with code_len/destination, code, input.
fn bytecode_message(dest: u8, code: &[u8], input: &[u8]) -> Vec<u8> {
    let len = code.len();
    let mut m = vec![
        0xf8,
        (len >> 4) as u8,
        ((len as u8 & 0x0f) << 4) | (dest & 0x0f).max(1),
    ];
    m.extend_from_slice(code);
    m.extend_from_slice(input);
    m
}

fn check(d: &mut Decompressor, states: &StateHandler, msg: &[u8], transport: Transport) {
    let cpb = u64::from(d.parameters().cycles_per_bit);
    let budget = (8 * msg.len() as u64 + 1000) * cpb;
    match d.decompress(msg, transport, states) {
        Ok(out) => {
            assert!(out.cycles <= budget, "{} cycles > {budget}", out.cycles);
            assert!(out.output.len() <= 65536);
            assert!(out.state_requests.len() <= 8);
        }
        Err(f) => assert!(f.cycles <= budget, "{} cycles > {budget}", f.cycles),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_messages_never_panic(msg in proptest::collection::vec(any::<u8>(), 0..600)) {
        let states = StateHandler::with_dictionaries();
        let mut d = Decompressor::new(params(16)).unwrap();
        check(&mut d, &states, &msg, Transport::Message);
        check(&mut d, &states, &msg, Transport::Stream);
    }

    #[test]
    fn arbitrary_bytecode_never_panics(
        dest in 1u8..16,
        code in proptest::collection::vec(any::<u8>(), 0..300),
        input in proptest::collection::vec(any::<u8>(), 0..64),
        cpb in prop_oneof![Just(16u16), Just(128u16)],
    ) {
        let mut states = StateHandler::with_dictionaries();
        states.open_compartment(CompartmentId(1), 4096);
        let mut d = Decompressor::new(params(cpb)).unwrap();
        let msg = bytecode_message(dest, &code, &input);
        check(&mut d, &states, &msg, Transport::Message);
        if let Ok(out) = d.decompress(&msg, Transport::Message, &states) {
            states.commit(CompartmentId(1), &out).unwrap();
            prop_assert!(states.compartment(CompartmentId(1)).unwrap().used() <= 4096);
        }
    }

    /// Bytecode built only from valid opcodes with small operands reaches
    /// deeper than random bytes.
    #[test]
    fn opcode_soup_never_panics(
        ops in proptest::collection::vec((0u8..36, proptest::collection::vec(0u8..0x40, 0..8)), 1..40),
        input in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut code = Vec::new();
        for (op, operands) in ops {
            code.push(op);
            code.extend(operands);
        }
        let states = StateHandler::with_dictionaries();
        let mut d = Decompressor::new(params(16)).unwrap();
        check(&mut d, &states, &bytecode_message(1, &code, &input), Transport::Message);
    }

    #[test]
    fn stream_framing_round_trips(msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 1..5)) {
        let mut stream = vec![0xff, 0xff];
        for m in &msgs {
            frame_stream(m, &mut stream);
        }
        let mut de = StreamDeframer::new(4096);
        let mut rest: &[u8] = &stream;
        let mut got = Vec::new();
        while !rest.is_empty() {
            let (used, rec) = de.push(rest).unwrap();
            if let Some(r) = rec {
                got.push(r.to_vec());
            }
            rest = &rest[used..];
        }
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn deframer_never_panics(stream in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut de = StreamDeframer::new(256);
        let mut rest: &[u8] = &stream;
        while !rest.is_empty() {
            match de.push(rest) {
                Ok((used, _)) => rest = &rest[used..],
                Err(_) => break,
            }
        }
    }
}

#[test]
fn infinite_loop_is_stopped_by_the_cycle_budget() {
    // JUMP to itself: 0x16 0x00 (offset 0).
    let msg = bytecode_message(1, &[0x16, 0x00], &[]);
    let states = StateHandler::new();
    let mut d = Decompressor::new(params(16)).unwrap();
    let f = d.decompress(&msg, Transport::Message, &states).unwrap_err();
    assert_eq!(f.reason, sigcomp::Reason::CyclesExhausted);
    assert_eq!(f.cycles, (1000 + 8 * 5) * 16);
    assert_eq!(f.details, vec![16]);
}

#[test]
fn states_are_saved_only_on_commit() {
    // END-MESSAGE (0, 0, 10, 128, 0, 6, 0): asks for a state of 10 bytes.
    let msg = bytecode_message(1, &[0x23, 0x00, 0x00, 0x0a, 0x86, 0x00, 0x06, 0x00], &[]);
    let mut states = StateHandler::new();
    states.open_compartment(CompartmentId(7), 2048);
    let mut d = Decompressor::new(params(16)).unwrap();
    let out = d.decompress(&msg, Transport::Message, &states).unwrap();
    assert_eq!(out.state_requests.len(), 1);
    assert!(
        states.is_empty(),
        "nothing stored before the application confirms"
    );
    let report = states.commit(CompartmentId(7), &out).unwrap();
    assert_eq!(report.created.len(), 1);
    assert_eq!(states.len(), 1);
    // An unknown compartment is refused.
    assert!(states.commit(CompartmentId(8), &out).is_err());
}
