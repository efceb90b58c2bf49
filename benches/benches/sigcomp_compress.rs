//! Compression speed of our SigComp compressor (issue 6 target: >= 50 MB/s)
//! on the independent IMS corpus: first messages (fresh compartment, with
//! the dictionary preload) and a stateful flow (acknowledgements fed back
//! directly, as the peer's returned feedback items would); and
//! `registration`, the SigComp work on the measured path of a
//! registration (`benches/imsua_demo.sh`), back to back and with each
//! step started after the CPU idled (as in the binaries, which sleep in
//! poll() between messages).

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

use benches::corpus;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sigcomp::compress::{Compressor, Config, Level};
use sigcomp::{CompartmentId, Endpoint, EndpointConfig, Link, Received};

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

/// What imsua and pcscf do with SigComp between the 401 and the 200 of a
/// registration: the UE compresses its protected REGISTER in a fresh
/// compartment (bytecode upload, dictionary preload), the P-CSCF
/// decompresses and accepts it and compresses its 200 in its own fresh
/// compartment, the UE decompresses and accepts that; both compartments
/// then close, as at de-registration. The endpoints live across
/// iterations, as in the binaries (criterion's warm-up stands for theirs).
fn registration(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/independent/corpus");
    let register = std::fs::read(root.join("03-ue-register-protected.sip")).unwrap();
    let ok = std::fs::read(root.join("04-pcscf-200-register.sip")).unwrap();
    let mut ue = Endpoint::new(EndpointConfig::default()).unwrap();
    let mut pcscf = Endpoint::new(EndpointConfig::default()).unwrap();
    let (mut up, mut down) = (Vec::new(), Vec::new());
    let mut n = 0;
    let mut g = c.benchmark_group("sigcomp_registration");
    g.throughput(Throughput::Bytes((register.len() + ok.len()) as u64));
    g.bench_function("register+200", |b| {
        b.iter(|| {
            n += 1;
            let cid = CompartmentId(n);
            ue.send(cid, &register, Link::Datagram, &mut up).unwrap();
            let r = pcscf.receive(&up, Link::Datagram).unwrap();
            assert!(matches!(r, Received::Message(_)));
            pcscf.accept(cid, &r);
            pcscf.send(cid, &ok, Link::Datagram, &mut down).unwrap();
            let r = ue.receive(&down, Link::Datagram).unwrap();
            assert!(matches!(r, Received::Message(_)));
            ue.accept(cid, &r);
            ue.close(cid);
            pcscf.close(cid);
            up.len() + down.len()
        })
    });
    // The same four steps, each after the CPU has been idle for as long
    // as a registration's round trip leaves it in `imsua_demo.sh` and
    // more (the processes sleep in poll() between messages): only the
    // steps are timed. What the machine's idle states cost the same work
    // (caches, clock), against the warm figure above.
    g.sample_size(20);
    g.bench_function("register+200, each step after 2 ms idle", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut timed = |f: &mut dyn FnMut()| {
                std::thread::sleep(std::time::Duration::from_millis(2));
                let t = std::time::Instant::now();
                f();
                total += t.elapsed();
            };
            for _ in 0..iters {
                n += 1;
                let cid = CompartmentId(n);
                let mut got = None;
                timed(&mut || {
                    ue.send(cid, &register, Link::Datagram, &mut up).unwrap();
                });
                timed(&mut || {
                    let r = pcscf.receive(&up, Link::Datagram).unwrap();
                    assert!(matches!(r, Received::Message(_)));
                    pcscf.accept(cid, &r);
                });
                timed(&mut || {
                    pcscf.send(cid, &ok, Link::Datagram, &mut down).unwrap();
                });
                timed(&mut || {
                    let r = ue.receive(&down, Link::Datagram).unwrap();
                    assert!(matches!(r, Received::Message(_)));
                    ue.accept(cid, &r);
                    got = Some(up.len() + down.len());
                });
                ue.close(cid);
                pcscf.close(cid);
                std::hint::black_box(got);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench, registration);
criterion_main!(benches);
