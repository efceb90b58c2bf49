//! Decompresses the benchmark messages many times, for instruction counts
//! under callgrind (repeatable, unlike wall time on a shared machine):
//!
//! `cargo build --release -p sigcomp --example udvm_profile`
//! `valgrind --tool=callgrind target/release/examples/udvm_profile CASE N`
//!
//! CASE is one of `tiny`, `open` (stateless) or `tiny-sf`, `open-sf`
//! (stateful); N repetitions (default 100). The stateful cases commit the
//! first message before the timed loop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use sigcomp::{CompartmentId, Decompressor, Parameters, StateHandler, Transport};

fn read(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../vectors/sigcomp/independent")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map_or("tiny", String::as_str);
    let n: u32 = args.get(2).map_or(100, |s| s.parse().unwrap());
    let (dir, stateful) = match case {
        "tiny" => ("tinysigcomp-8192-8192-64", false),
        "open" => ("opensigcomp-8192-8192-64", false),
        "tiny-sf" => ("tinysigcomp-8192-8192-64", true),
        "open-sf" => ("opensigcomp-8192-8192-64", true),
        _ => panic!("case: tiny | open | tiny-sf | open-sf"),
    };
    let params = Parameters {
        decompression_memory_size: 8192,
        state_memory_size: 8192,
        cycles_per_bit: 64,
        version: 2,
    };
    let mut states = StateHandler::with_dictionaries();
    states.open_compartment(CompartmentId(0), 8192);
    let mut d = Decompressor::new(params).unwrap();
    let msg = if stateful {
        let m1 = read(&format!("{dir}/001-s1-01-ue-register-initial.sigcomp"));
        let out1 = d.decompress(&m1, Transport::Message, &states).unwrap();
        states.commit(CompartmentId(0), &out1).unwrap();
        read(&format!("{dir}/003-s1-03-ue-register-protected.sigcomp"))
    } else {
        read(&format!("{dir}/cold/001-s1-01-ue-register-initial.sigcomp"))
    };
    let mut buf = Vec::with_capacity(65536);
    let mut sum = 0u64;
    for _ in 0..n {
        buf.clear();
        let r = d
            .decompress_into(
                std::hint::black_box(&msg),
                Transport::Message,
                &states,
                &mut buf,
            )
            .unwrap();
        sum += r.cycles + buf.len() as u64;
    }
    println!("{case}: {} B -> {} B, sum {sum}", msg.len(), buf.len());
}
