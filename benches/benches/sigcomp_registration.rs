//! The SigComp work of one registration, with warm caches and with cold
//! ones: what `imsua` and `pcscf` do between the 401 and the 200 of a
//! registration through `--ipsec udp --sigcomp`, on the independent IMS
//! corpus' protected REGISTER and its 200, each time in fresh
//! compartments (a new registration):
//!
//! 1. `UE compress`: the UE's first message of the compartment (the
//!    bytecode uploaded, the RFC 3485 dictionary preloaded);
//! 2. `P-CSCF decompress`: receive and accept (states committed);
//! 3. `P-CSCF compress`: the 200, its compartment's first message;
//! 4. `UE decompress`: receive and accept.
//!
//! Two ways, in blocks of 20 iterations in turn: `warm`, each step right
//! after the one before (the previous iteration ran the same code on the
//! same data; a block's first iteration is not counted), and `cold`, each
//! step after writing a buffer larger than
//! the last-level cache, so that its code, tables and states come from
//! memory. The `cold` column is what a registration meets: the pcscf and
//! the UA touch this code once per registration, with the UA's start-up,
//! the AKA, the ESP work and the other processes in between (timed inside
//! `imsua` and `pcscf` on a registration of `benches/imsua_demo.sh`, the
//! four steps took 86 us against 33 us warm here, on a machine with a
//! 32 MiB L3).
//!
//! Medians over the iterations, us per step; no target (it explains the
//! registration ratio of `benches/imsua_demo.sh`).
//! `cargo bench -p benches --bench sigcomp_registration [-- ITERATIONS [EVICT_MIB]]`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code

use std::hint::black_box;
use std::time::Instant;

use benches::corpus;
use sigcomp::{CompartmentId, Endpoint, EndpointConfig, Link, Received};

const STEPS: [&str; 4] = [
    "UE compress",
    "P-CSCF decompress",
    "P-CSCF compress",
    "UE decompress",
];

/// Writes one byte per cache line of `buf`: every line of every cache
/// level is then this buffer's.
fn evict(buf: &mut [u8], round: u8) {
    for line in buf.chunks_mut(64) {
        line[0] = line[0].wrapping_add(round | 1);
    }
    black_box(&buf[..]);
}

fn main() {
    // `cargo bench` passes `--bench`; numbers are ours.
    let nums: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let iterations = nums.first().copied().unwrap_or(300).max(1);
    let evict_mib = nums.get(1).copied().unwrap_or(64).max(1);
    let msgs = corpus();
    let has = |m: &[u8], s: &[u8]| m.windows(s.len()).any(|w| w == s);
    let register = msgs
        .iter()
        .find(|m| m.starts_with(b"REGISTER") && has(m, b"Security-Verify"))
        .expect("the corpus has a protected REGISTER")
        .clone();
    let ok = msgs
        .iter()
        .find(|m| m.starts_with(b"SIP/2.0 200") && has(m, b"REGISTER\r\n"))
        .expect("the corpus has the 200 of a REGISTER")
        .clone();

    let mut ue = Endpoint::new(EndpointConfig::default()).unwrap();
    let mut pcscf = Endpoint::new(EndpointConfig::default()).unwrap();
    // As the tools do at start: the process's first-use costs paid before.
    ue.warm_up(&register);
    pcscf.warm_up(&register);
    let mut junk = vec![0u8; evict_mib << 20];
    let (mut up, mut down) = (Vec::new(), Vec::new());
    // [way][step] -> us of each iteration.
    let mut times: [[Vec<f64>; 4]; 2] = Default::default();
    // Blocks of BLOCK iterations, warm and cold in turn; a warm block's
    // first iteration follows cold ones and is not counted.
    const BLOCK: usize = 20;
    let blocks = iterations.div_ceil(BLOCK - 1);
    for i in 0..2 * blocks * BLOCK {
        let cold = (i / BLOCK) % 2 == 1;
        let counted = cold || i % BLOCK != 0;
        let cid = CompartmentId(i as u64 + 1);
        let mut step = |k: usize, f: &mut dyn FnMut()| {
            if cold {
                evict(&mut junk, i as u8);
            }
            let t = Instant::now();
            f();
            let us = t.elapsed().as_nanos() as f64 / 1e3;
            if counted {
                times[usize::from(cold)][k].push(us);
            }
        };
        step(0, &mut || {
            ue.send(cid, &register, Link::Datagram, &mut up).unwrap();
        });
        step(1, &mut || {
            let r = pcscf.receive(&up, Link::Datagram).unwrap();
            assert!(
                matches!(r, Received::Message(_)),
                "the REGISTER decompresses"
            );
            pcscf.accept(cid, &r);
        });
        step(2, &mut || {
            pcscf.send(cid, &ok, Link::Datagram, &mut down).unwrap();
        });
        step(3, &mut || {
            let r = ue.receive(&down, Link::Datagram).unwrap();
            match &r {
                Received::Message(m) => {
                    assert_eq!(m.decompressed().output, ok, "the 200 comes back")
                }
                _ => panic!("the 200 decompresses"),
            }
            ue.accept(cid, &r);
        });
        ue.close(cid);
        pcscf.close(cid);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!();
    println!(
        "a registration's SigComp work, fresh compartments: REGISTER {} B -> {} B, 200 {} B -> {} B",
        register.len(),
        up.len(),
        ok.len(),
        down.len()
    );
    println!(
        "median us of about {iterations} iterations each; cold: after writing {evict_mib} MiB (caches evicted)"
    );
    println!(
        "{:<18} | {:>7} {:>7} {:>7}",
        "step", "warm", "cold", "ratio"
    );
    let (mut warm_sum, mut cold_sum) = (0.0, 0.0);
    for (k, name) in STEPS.iter().enumerate() {
        let w = median(&mut times[0][k]);
        let c = median(&mut times[1][k]);
        warm_sum += w;
        cold_sum += c;
        println!("{name:<18} | {w:>7.1} {c:>7.1} {:>6.2}x", c / w);
    }
    println!(
        "{:<18} | {warm_sum:>7.1} {cold_sum:>7.1} {:>6.2}x",
        "four steps",
        cold_sum / warm_sum
    );
}
