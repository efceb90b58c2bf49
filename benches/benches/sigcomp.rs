//! SigComp decompression: a 1.6 KB SIP message whose SigComp message
//! carries its bytecode (stateless), and a message that references the
//! state an earlier message created (stateful). Messages come from the
//! independent compressors in `vectors/sigcomp/independent/`.
//!
//! `cargo bench -p benches --bench sigcomp`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sigcomp::{CompartmentId, Decompressor, Parameters, StateHandler, Transport};

fn read(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../vectors/sigcomp/independent")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// On-CPU time of this thread in ns (`/proc/thread-self/schedstat`), so
/// the figures printed beside criterion's wall-clock ones do not count
/// time the shared machine gave to other processes.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs `f` `n` times and prints on-CPU µs per run and output MB/s.
fn on_cpu(name: &str, out_len: usize, mut f: impl FnMut()) {
    let n = 3000;
    let (Some(t0), w0) = (cpu_ns(), std::time::Instant::now()) else {
        return;
    };
    for _ in 0..n {
        f();
    }
    let Some(t1) = cpu_ns() else { return };
    let per = (t1 - t0) as f64 / f64::from(n) / 1000.0;
    let wall = w0.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!(
        "{name}: on-CPU {per:.1} µs per message ({:.0} MB/s of output); wall {wall:.1} µs",
        out_len as f64 / per
    );
}

fn params() -> Parameters {
    Parameters {
        decompression_memory_size: 8192,
        state_memory_size: 8192,
        cycles_per_bit: 64,
        version: 2,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sigcomp_decompress");

    for (name, file) in [
        (
            "stateless_tinysigcomp_1697B",
            "tinysigcomp-8192-8192-64/cold/001-s1-01-ue-register-initial.sigcomp",
        ),
        (
            "stateless_opensigcomp_1697B",
            "opensigcomp-8192-8192-64/cold/001-s1-01-ue-register-initial.sigcomp",
        ),
    ] {
        let msg = read(file);
        let states = StateHandler::with_dictionaries();
        let mut d = Decompressor::new(params()).unwrap();
        let out = d.decompress(&msg, Transport::Message, &states).unwrap();
        println!(
            "{name}: {} B message -> {} B, {} UDVM cycles",
            msg.len(),
            out.output.len(),
            out.cycles
        );
        g.throughput(Throughput::Bytes(out.output.len() as u64));
        let mut buf = Vec::with_capacity(65536);
        on_cpu(name, out.output.len(), || {
            buf.clear();
            let r = d
                .decompress_into(black_box(&msg), Transport::Message, &states, &mut buf)
                .unwrap();
            black_box(buf.len() as u64 + r.cycles);
        });
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                let r = d
                    .decompress_into(black_box(&msg), Transport::Message, &states, &mut buf)
                    .unwrap();
                black_box(buf.len() as u64 + r.cycles)
            })
        });
    }

    for (name, first, second) in [
        (
            "stateful_tinysigcomp_1956B",
            "tinysigcomp-8192-8192-64/001-s1-01-ue-register-initial.sigcomp",
            "tinysigcomp-8192-8192-64/003-s1-03-ue-register-protected.sigcomp",
        ),
        (
            "stateful_opensigcomp_1956B",
            "opensigcomp-8192-8192-64/001-s1-01-ue-register-initial.sigcomp",
            "opensigcomp-8192-8192-64/003-s1-03-ue-register-protected.sigcomp",
        ),
    ] {
        let mut states = StateHandler::with_dictionaries();
        states.open_compartment(CompartmentId(0), 8192);
        let mut d = Decompressor::new(params()).unwrap();
        let m1 = read(first);
        let out1 = d.decompress(&m1, Transport::Message, &states).unwrap();
        states.commit(CompartmentId(0), &out1).unwrap();
        let msg = read(second);
        let out = d.decompress(&msg, Transport::Message, &states).unwrap();
        println!(
            "{name}: {} B message -> {} B, {} UDVM cycles",
            msg.len(),
            out.output.len(),
            out.cycles
        );
        g.throughput(Throughput::Bytes(out.output.len() as u64));
        let mut buf = Vec::with_capacity(65536);
        on_cpu(name, out.output.len(), || {
            buf.clear();
            let r = d
                .decompress_into(black_box(&msg), Transport::Message, &states, &mut buf)
                .unwrap();
            black_box(buf.len() as u64 + r.cycles);
        });
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                let r = d
                    .decompress_into(black_box(&msg), Transport::Message, &states, &mut buf)
                    .unwrap();
                black_box(buf.len() as u64 + r.cycles)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
