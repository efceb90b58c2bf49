//! `sigcomp::Endpoint` (send + receive + accept) against the bare
//! compressor and decompressor (compress + decompress + state commit) on
//! the same messages: the independent IMS corpus (14 SIP messages) sent
//! in order over one compartment, from two fresh endpoints (or a fresh
//! compressor, decompressor and state handler) each time.
//!
//! Two rows, measured side by side in one run with [`benches::race`]
//! (the two paths alternate batch by batch, fastest batch of each):
//!
//! - `no feedback`: nothing travels back, so both paths compress alike;
//!   the ratio is the endpoint's own cost (dispatch, compartment lookup,
//!   NACK hashes, counters, the copy out of `Inbound`).
//! - `acknowledged`: the bare path hands the requested feedback item to
//!   the compressor directly (as `sigcomp flow` did before the endpoint);
//!   the endpoint path sends it back on the wire, a 14-byte message the
//!   sender receives and accepts (`acknowledge`), as `sigcomp flow` now
//!   does. This one includes that extra message.
//!
//! Target: <= 1.10x. `cargo bench -p benches --bench endpoint`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code

use std::cell::RefCell;
use std::hint::black_box;

use benches::{BATCH, corpus, race};
use sigcomp::compress::{Compressor, Config, Kind, Level};
use sigcomp::{
    CompartmentId, Decompressor, Endpoint, EndpointConfig, Link, Parameters, Resources,
    StateHandler, Transport,
};

const CID: CompartmentId = CompartmentId(1);

fn params() -> Parameters {
    Parameters {
        decompression_memory_size: 8192,
        state_memory_size: 8192,
        cycles_per_bit: 16,
        version: 2,
    }
}

fn peer() -> Resources {
    Resources {
        cycles_per_bit: 16,
        decompression_memory_size: 8192,
        state_memory_size: 8192,
    }
}

/// Both ends as `sigcomp flow` configures them (no announcement).
fn endpoint() -> Endpoint {
    Endpoint::new(EndpointConfig {
        local: params(),
        peer: peer(),
        level: Level::Default,
        announce: false,
        ..EndpointConfig::default()
    })
    .unwrap()
}

struct Bare {
    compressor: Compressor,
    decompressor: Decompressor,
    states: StateHandler,
}

fn bare() -> Bare {
    let mut states = StateHandler::with_dictionaries();
    states.open_compartment(CID, 8192);
    Bare {
        compressor: Compressor::new(Config {
            level: Level::Default,
            peer: peer(),
            ..Config::default()
        })
        .unwrap(),
        decompressor: Decompressor::new(params()).unwrap(),
        states,
    }
}

fn flow_bare(b: &mut Bare, msgs: &[Vec<u8>], ack: bool, wire: &mut Vec<u8>) -> usize {
    let mut n = 0;
    for m in msgs {
        let r = b.compressor.compress(m, wire);
        n += r.len;
        if r.kind != Kind::SigComp {
            continue;
        }
        let out = b
            .decompressor
            .decompress(wire, Transport::Message, &b.states)
            .unwrap();
        b.states.commit(CID, &out).unwrap();
        if ack
            && let Some(item) = out
                .requested_feedback
                .as_ref()
                .and_then(|f| f.item.as_ref())
        {
            b.compressor.on_feedback_item(item);
        }
        black_box(&out.output);
    }
    n
}

fn flow_endpoint(
    (tx, rx): &mut (Endpoint, Endpoint),
    msgs: &[Vec<u8>],
    ack: bool,
    wire: &mut Vec<u8>,
) -> usize {
    let mut n = 0;
    let mut back = Vec::new();
    for m in msgs {
        n += tx.send(CID, m, Link::Datagram, wire).unwrap().len;
        let r = rx.receive(wire, Link::Datagram).unwrap();
        rx.accept(CID, &r);
        black_box(&r);
        if ack && rx.acknowledge(CID, Link::Datagram, &mut back).is_some() {
            let r = tx.receive(&back, Link::Datagram).unwrap();
            tx.accept(CID, &r);
        }
    }
    n
}

fn main() {
    let msgs = corpus();
    let total: usize = msgs.iter().map(Vec::len).sum();
    let (bare0, pair0) = (bare(), (endpoint(), endpoint()));
    println!();
    println!(
        "sigcomp::Endpoint vs bare compressor + decompressor: {} messages, {total} bytes, one compartment (fastest batch of {BATCH} flows, us/flow)",
        msgs.len()
    );
    println!(
        "{:<14} | {:>9} {:>9} {:>7} {:>7}  bytes (endpoint, bare)",
        "row", "endpoint", "bare", "ratio", "target"
    );
    for ack in [false, true] {
        // Fresh ends for each flow, cloned untimed by the refill.
        let bares = RefCell::new(Vec::new());
        let pairs = RefCell::new(Vec::new());
        let sizes = RefCell::new((0, 0));
        let (mut w1, mut w2) = (Vec::new(), Vec::new());
        let (endpoint_ns, bare_ns) = race(
            12,
            &mut |v| {
                v.clear();
                v.resize(BATCH, Vec::new());
                *bares.borrow_mut() = (0..BATCH).map(|_| clone_bare(&bare0)).collect();
                *pairs.borrow_mut() = (0..BATCH).map(|_| pair0.clone()).collect();
            },
            &mut |_| {
                let mut p = pairs.borrow_mut().pop().unwrap();
                sizes.borrow_mut().0 = flow_endpoint(&mut p, &msgs, ack, &mut w1);
            },
            &mut |_| {
                let mut b = bares.borrow_mut().pop().unwrap();
                sizes.borrow_mut().1 = flow_bare(&mut b, &msgs, ack, &mut w2);
            },
        );
        let ratio = endpoint_ns / bare_ns;
        let (se, sb) = *sizes.borrow();
        println!(
            "{:<14} | {:>9.1} {:>9.1} {:>6.2}x {:>6.2}x  {se}, {sb} {}",
            if ack { "acknowledged" } else { "no feedback" },
            endpoint_ns / 1e3,
            bare_ns / 1e3,
            ratio,
            1.10,
            if ratio <= 1.10 { "ok" } else { "OVER" }
        );
    }
}

fn clone_bare(b: &Bare) -> Bare {
    Bare {
        compressor: b.compressor.clone(),
        decompressor: b.decompressor.clone(),
        states: b.states.clone(),
    }
}
