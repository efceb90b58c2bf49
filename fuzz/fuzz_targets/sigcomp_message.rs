//! Arbitrary bytes as a SigComp message (UDP and TCP transport), against a
//! state handler holding the dictionaries and a state created by an
//! earlier message; also through the stream deframer and the NACK parser.
//! Checks the RFC 3320 §8.6 cycle bound and that nothing panics.
#![no_main]

use sigcomp::{CompartmentId, Decompressor, Nack, Parameters, StateHandler, StreamDeframer, Transport};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut states = StateHandler::with_dictionaries();
    states.open_compartment(CompartmentId(0), 4096);
    let params = Parameters { decompression_memory_size: 8192, state_memory_size: 4096, cycles_per_bit: 16, version: 2 };
    let Ok(mut d) = Decompressor::new(params) else { return };
    let budget = (8 * data.len() as u64 + 1000) * 16;
    for transport in [Transport::Message, Transport::Stream] {
        match d.decompress(data, transport, &states) {
            Ok(out) => {
                assert!(out.cycles <= budget);
                let _ = states.commit(CompartmentId(0), &out);
            }
            Err(f) => {
                assert!(f.cycles <= budget);
                let _ = Nack::from_failure(&f, data);
            }
        }
    }
    let _ = Nack::parse(data);
    let mut de = StreamDeframer::new(8192);
    let mut rest = data;
    while !rest.is_empty() {
        match de.push(rest) {
            Ok((used, rec)) => {
                if let Some(r) = rec {
                    let r = r.to_vec();
                    let _ = d.decompress(&r, Transport::Stream, &states);
                }
                rest = &rest[used..];
            }
            Err(_) => break,
        }
    }
});
