//! Compression speed of our SigComp compressor (issue 6 target: >= 50 MB/s)
//! on the independent IMS corpus: first messages (fresh compartment, with
//! the dictionary preload) and a stateful flow (acknowledgements fed back
//! directly, as the peer's returned feedback items would).

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sigcomp::compress::{Compressor, Config, Level};

fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/independent/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn bench(c: &mut Criterion) {
    let msgs = corpus();
    let total: usize = msgs.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("sigcomp_compress");
    g.throughput(Throughput::Bytes(total as u64));
    for level in [Level::Fast, Level::Default, Level::Best] {
        g.bench_function(format!("flow/{level:?}"), |b| {
            let mut wire = Vec::new();
            b.iter(|| {
                let mut comp = Compressor::new(Config {
                    level,
                    ..Config::default()
                })
                .unwrap();
                let mut n = 0;
                for m in &msgs {
                    let r = comp.compress(m, &mut wire);
                    if r.seq != 0 {
                        comp.on_feedback_item(&[(r.seq & 0x7f) as u8]);
                    }
                    n += r.len;
                }
                n
            })
        });
        g.bench_function(format!("first/{level:?}"), |b| {
            let mut wire = Vec::new();
            b.iter(|| {
                let mut n = 0;
                for m in &msgs {
                    let mut comp = Compressor::new(Config {
                        level,
                        ..Config::default()
                    })
                    .unwrap();
                    n += comp.compress(m, &mut wire).len;
                }
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
