//! Decompressing our own compressor's messages with the decoding loop of
//! our bytecode run natively (`sigcomp/src/udvm/native.rs`, the default)
//! against the same messages run in the interpreter alone
//! (`Decompressor::set_native_loop(false)`), side by side with
//! [`benches::race`] (the two alternate batch by batch; fastest batch of
//! each).
//!
//! Rows:
//! - `first REGISTER`: a fresh compartment's first message, bytecode
//!   uploaded, the REGISTER of the independent IMS corpus (what a P-CSCF
//!   decompresses once per registration);
//! - `corpus flow`: the 14 corpus messages in order over one compartment
//!   with acknowledgements (later messages name earlier ones), states
//!   committed, from a fresh state handler each time.
//!
//! Target: native >= 3x the interpreter on both rows.
//! `cargo bench -p benches --bench sigcomp_native`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code

use std::cell::RefCell;
use std::hint::black_box;

use benches::{BATCH, corpus, race};
use sigcomp::compress::{Compressor, Config, Kind};
use sigcomp::{CompartmentId, Decompressor, Parameters, StateHandler, Transport};

const CID: CompartmentId = CompartmentId(1);

fn states() -> StateHandler {
    let mut s = StateHandler::with_dictionaries();
    s.open_compartment(CID, 8192);
    s
}

/// The flow as the wire carries it: each message compressed after the
/// feedback of the ones before reached the compressor.
fn flow(msgs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut c = Compressor::new(Config::default()).unwrap();
    let mut d = Decompressor::new(Parameters::default()).unwrap();
    let mut s = states();
    let mut wires = Vec::new();
    for m in msgs {
        let mut wire = Vec::new();
        if c.compress(m, &mut wire).kind != Kind::SigComp {
            continue;
        }
        let out = d.decompress(&wire, Transport::Message, &s).unwrap();
        assert_eq!(&out.output, m);
        s.commit(CID, &out).unwrap();
        if let Some(item) = out.requested_feedback.and_then(|f| f.item) {
            c.on_feedback_item(&item);
        }
        wires.push(wire);
    }
    wires
}

/// Decompresses `wires` in order, committing each message's states to a
/// fresh handler; returns the bytes output.
fn run(d: &mut Decompressor, fresh: &StateHandler, wires: &[Vec<u8>]) -> usize {
    let mut s = fresh.clone();
    let mut n = 0;
    for w in wires {
        let out = d.decompress(w, Transport::Message, &s).unwrap();
        n += out.output.len();
        s.commit(CID, &out).unwrap();
        black_box(&out);
    }
    n
}

fn main() {
    let msgs = corpus();
    let register = msgs
        .iter()
        .find(|m| m.starts_with(b"REGISTER "))
        .expect("a REGISTER in the corpus")
        .clone();
    let rows = [
        ("first REGISTER", flow(std::slice::from_ref(&register))),
        ("corpus flow", flow(&msgs)),
    ];
    let fresh = states();
    let mut native = Decompressor::new(Parameters::default()).unwrap();
    let mut interpreted = native.clone();
    interpreted.set_native_loop(false);
    println!();
    println!(
        "decompressing our own messages: native loop vs interpreter (fastest batch of {BATCH}, us per row)"
    );
    println!(
        "{:<15} | {:>8} {:>8} {:>11} {:>7} {:>7}",
        "row", "out B", "native", "interpreted", "ratio", "target"
    );
    for (name, wires) in &rows {
        let out = RefCell::new((0, 0));
        let (n_ns, i_ns) = race(
            20,
            &mut |v| {
                v.clear();
                v.resize(BATCH, Vec::new());
            },
            &mut |_| out.borrow_mut().0 = run(&mut native, &fresh, wires),
            &mut |_| out.borrow_mut().1 = run(&mut interpreted, &fresh, wires),
        );
        let (a, b) = *out.borrow();
        assert_eq!(a, b, "{name}: both ways output alike");
        let ratio = i_ns / n_ns;
        println!(
            "{name:<15} | {a:>8} {:>8.1} {:>11.1} {ratio:>6.2}x {:>6.2}x {}",
            n_ns / 1e3,
            i_ns / 1e3,
            3.0,
            if ratio >= 3.0 { "ok" } else { "UNDER" }
        );
    }
}
