//! SAD lookup among 100 000 SAs (issue 3 target: <= 50 ns), next to a
//! plain `HashMap<u32, u32>` lookup among 100 000 keys measured in the same
//! run as the baseline (only ratios taken in one run mean anything on a
//! shared machine).
//!
//! - `sad-hit`: `Sad::lookup(dst, Esp, spi)` for SAs in a pseudo-random
//!   order (every key present); the entry itself is not read, as in a
//!   lookup (decapsulation then reads the SA it found).
//! - `sad-miss`: keys with an unknown SPI (same destinations).
//! - `hashmap-u32-hit` / `hashmap-u32-miss`: `std::collections::HashMap<u32,
//!   u32>` (SipHash) with 100 000 entries, same access pattern.
//! - `sad-hit-1k`: 1 000 SAs (all in cache): the algorithm without memory
//!   misses.
//!
//! After the criterion groups, a side-by-side table is measured (batches
//! alternate, fastest batch of each counts) and printed with the ratio.
//!
//! Then outbound selection: `Sad::select_out` for a `unique:N` request
//! among 200 SAs between one pair of addresses (100 reqids, two SAs each:
//! every UE's SAs on one host's loopback), against scanning the pair's SAs
//! for that reqid (what `select_out` did before its reqid index).
//!
//! Then reqid allocation: `Spd::free_reqids(2)` (where an SA set's two
//! `unique:N` policies go, asked at every installation) with the policies
//! of 4 000 SA sets installed, against reading every policy's reqids,
//! sorting them and walking up from 1 (what it did before its index).
//!
//! `cargo bench -p benches --bench sad`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // benchmark code

use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use criterion::Criterion;
use ipsec_esp::{Protocol, Spi};
use sadb::{Sad, Timestamp};

const N: u32 = 100_000;
/// Keys per pass (a power of two, larger than any cache line reuse).
const KEYS: usize = 1 << 16;

/// A pseudo-random permutation-ish walk over `0..n` (multiplicative hash).
fn order(n: u32) -> Vec<u32> {
    (0..KEYS as u32)
        .map(|k| k.wrapping_mul(2_654_435_761) % n)
        .collect()
}

/// The key `Sad::synthetic` gives SA `i`.
fn sa_key(i: u32) -> (IpAddr, Spi) {
    let [_, a, b, c] = i.to_be_bytes();
    (IpAddr::from([10, a, b, c]), Spi(0x1000 + i))
}

fn sad_keys(n: u32, miss: bool) -> Vec<(IpAddr, Spi)> {
    order(n)
        .into_iter()
        .map(|i| {
            let (dst, spi) = sa_key(i);
            // A miss: same destination, an SPI no SA has.
            (dst, if miss { Spi(spi.0 | 0x8000_0000) } else { spi })
        })
        .collect()
}

fn bench(c: &mut Criterion, sad: &Sad, small: &Sad, plain: &HashMap<u32, u32>) {
    let mut g = c.benchmark_group("sad-lookup-100k");
    for (name, keys, sad) in [
        ("sad-hit", sad_keys(N, false), sad),
        ("sad-miss", sad_keys(N, true), sad),
        ("sad-hit-1k", sad_keys(1_000, false), small),
    ] {
        let mut k = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                k = (k + 1) & (KEYS - 1);
                let (dst, spi) = keys[k];
                black_box(
                    sad.lookup(black_box(dst), Protocol::Esp, black_box(spi))
                        .is_some(),
                )
            })
        });
    }
    for (name, miss) in [("hashmap-u32-hit", false), ("hashmap-u32-miss", true)] {
        let keys: Vec<u32> = order(N)
            .into_iter()
            .map(|i| if miss { i + N } else { i })
            .collect();
        let mut k = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                k = (k + 1) & (KEYS - 1);
                black_box(plain.get(&black_box(keys[k])).is_some())
            })
        });
    }
    g.finish();
}

/// ns per lookup of the fastest of `rounds` passes over all keys.
fn best_pass(rounds: usize, mut pass: impl FnMut() -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        let found = pass();
        let ns = t.elapsed().as_nanos() as f64 / KEYS as f64;
        black_box(found);
        best = best.min(ns);
    }
    best
}

/// The header of a side-by-side table: nanoseconds per `unit`, and the
/// ratio to `anchor`.
fn table_header(unit: &str, anchor: &str) {
    println!(
        "{:<28} {:>10} {:>22}",
        "",
        format!("ns/{unit}"),
        format!("ratio to {anchor}")
    );
}

/// A row of a side-by-side table: `ns`, and its ratio to `anchor_ns`
/// (`None` for the anchor's own row, 1.00). `digits` of the ratio.
fn table_row(name: &str, ns: f64, anchor_ns: Option<f64>, digits: usize) {
    match anchor_ns {
        Some(a) => println!("{name:<28} {ns:>10.1} {:>22.digits$}", ns / a),
        None => println!("{name:<28} {ns:>10.1} {:>22}", "1.00"),
    }
}

fn table(sad: &Sad, plain: &HashMap<u32, u32>) {
    let hit = sad_keys(N, false);
    let miss = sad_keys(N, true);
    let phit: Vec<u32> = order(N);
    let pmiss: Vec<u32> = order(N).into_iter().map(|i| i + N).collect();
    let mut rows = [f64::MAX; 4];
    // Alternate the four measurements so that load on the machine hits all.
    for _ in 0..20 {
        rows[0] = rows[0].min(best_pass(1, || {
            hit.iter()
                .filter(|(d, s)| sad.lookup(black_box(*d), Protocol::Esp, *s).is_some())
                .count()
        }));
        rows[1] = rows[1].min(best_pass(1, || {
            miss.iter()
                .filter(|(d, s)| sad.lookup(black_box(*d), Protocol::Esp, *s).is_some())
                .count()
        }));
        rows[2] = rows[2].min(best_pass(1, || {
            phit.iter()
                .filter(|k| plain.get(black_box(*k)).is_some())
                .count()
        }));
        rows[3] = rows[3].min(best_pass(1, || {
            pmiss
                .iter()
                .filter(|k| plain.get(black_box(*k)).is_some())
                .count()
        }));
    }
    println!("\nSAD lookup among {N} SAs, side by side (fastest pass of {KEYS} lookups):");
    table_header("lookup", "HashMap<u32,u32>");
    table_row("Sad::lookup hit", rows[0], Some(rows[2]), 2);
    table_row("Sad::lookup miss", rows[1], Some(rows[3]), 2);
    table_row("HashMap<u32,u32> hit", rows[2], None, 2);
    table_row("HashMap<u32,u32> miss", rows[3], None, 2);
    println!("target: Sad::lookup <= 50 ns");
}

/// `Sad::select_out` by reqid vs a scan of every SA of the pair.
fn select_table(now: Timestamp) {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let mut sad = Sad::new();
    for i in 0..200u32 {
        let params = Sad::synthetic_params(Spi(0x1000 + i), lo, lo);
        let meta = sadb::SaMeta {
            reqid: 1 + i / 2,
            ..sadb::SaMeta::default()
        };
        sad.add(params, meta, now).unwrap();
    }
    let pkt = sadb::PacketSelector::udp(lo, 5062, lo, 5068);
    let reqs: Vec<sadb::SaRequest> = (0..KEYS)
        .map(|k| sadb::SaRequest {
            protocol: sadb::ast::ReqProtocol::Esp,
            mode: sadb::ast::ReqMode::Transport,
            endpoints: None,
            level: sadb::ast::Level::Require,
            reqid: 1 + (k as u32 * 37) % 100,
        })
        .collect();
    let scan = |r: &sadb::SaRequest| {
        sad.between(lo, lo, Protocol::Esp)
            .filter(|e| {
                e.sa().mode() == ipsec_esp::Mode::Transport
                    && e.reqid() == r.reqid
                    && !e.hard_expired(now)
            })
            // Added in order, so the last is the newest, as select_out
            // prefers among mature SAs.
            .max_by_key(|e| e.state() == sadb::SaState::Mature)
    };
    assert!(
        reqs.iter()
            .all(|r| { sad.select_out(r, &pkt, now).map(|e| e.id()) == scan(r).map(|e| e.id()) })
    );
    let mut rows = [f64::MAX; 2];
    for _ in 0..20 {
        rows[0] = rows[0].min(best_pass(1, || {
            reqs.iter()
                .filter(|r| sad.select_out(black_box(r), &pkt, now).is_some())
                .count()
        }));
        rows[1] = rows[1].min(best_pass(1, || {
            reqs.iter().filter(|r| scan(black_box(r)).is_some()).count()
        }));
    }
    println!("\nOutbound SA selection, 200 SAs on one address pair, 100 reqids:");
    table_header("select", "the scan");
    table_row("Sad::select_out (indexed)", rows[0], Some(rows[1]), 3);
    table_row("scan of the pair", rows[1], None, 3);
}

/// `Spd::free_reqids` (indexed) vs `Spd::free_reqids_linear` (reading,
/// sorting and walking every policy's reqids).
fn reqid_table(now: Timestamp) {
    const SETS: u32 = 4000;
    const MAX: u32 = 0x3fff;
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let mut spd = sadb::Spd::new();
    let req = |reqid: u32| {
        sadb::PolicyAction::Ipsec(vec![sadb::SaRequest {
            protocol: sadb::ast::ReqProtocol::Esp,
            mode: sadb::ast::ReqMode::Transport,
            endpoints: None,
            level: sadb::ast::Level::Require,
            reqid,
        }])
    };
    // A set's four policies, as a P-CSCF installs them: two out with the
    // set's reqids, two in.
    for i in 0..SETS {
        let (pc, ps) = (5000 + 2 * i as u16, 5001 + 2 * i as u16);
        for (sport, dport, dir, reqid) in [
            (pc, 6000, sadb::ast::Direction::Out, 2 * i + 1),
            (ps, 6001, sadb::ast::Direction::Out, 2 * i + 2),
            (6000, ps, sadb::ast::Direction::In, 0),
            (6001, pc, sadb::ast::Direction::In, 0),
        ] {
            let sel = sadb::Selector {
                src: lo,
                src_prefix: 32,
                dst: lo,
                dst_prefix: 32,
                protocol: Some(17),
                sport: Some(sport),
                dport: Some(dport),
                icmp_type: 0,
                icmp_code: 0,
            };
            spd.add(sel, dir, 0, req(reqid), now).unwrap();
        }
    }
    // What free_reqids did before its index.
    let scan = |n: u32| spd.free_reqids_linear(n, MAX);
    assert_eq!(spd.free_reqids(2, MAX), scan(2));
    assert_eq!(spd.free_reqids(2, MAX), Some(2 * SETS + 1));
    let per = |rounds: usize, f: &dyn Fn() -> Option<u32>| {
        let mut best = f64::MAX;
        for _ in 0..rounds {
            let t = Instant::now();
            black_box(f());
            best = best.min(t.elapsed().as_nanos() as f64);
        }
        best
    };
    let mut rows = [f64::MAX; 2];
    for _ in 0..10 {
        rows[0] = rows[0].min(per(200, &|| spd.free_reqids(black_box(2), MAX)));
        rows[1] = rows[1].min(per(5, &|| scan(black_box(2))));
    }
    println!("\nreqid allocation, the policies of {SETS} SA sets installed:");
    table_header("call", "the scan");
    table_row("Spd::free_reqids (indexed)", rows[0], Some(rows[1]), 5);
    table_row("scan of every policy", rows[1], None, 5);
}

fn main() {
    let now = Timestamp(1_795_314_303);
    let sad = Sad::synthetic(N, now).unwrap();
    let small = Sad::synthetic(1_000, now).unwrap();
    let plain: HashMap<u32, u32> = (0..N).map(|i| (i, i)).collect();
    // Every hit key is present, every miss key absent.
    assert!(
        sad_keys(N, false)
            .iter()
            .all(|(d, s)| sad.lookup(*d, Protocol::Esp, *s).is_some())
    );
    assert!(
        sad_keys(N, true)
            .iter()
            .all(|(d, s)| sad.lookup(*d, Protocol::Esp, *s).is_none())
    );
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &sad, &small, &plain);
    c.final_summary();
    table(&sad, &plain);
    select_table(now);
    reqid_table(now);
}
