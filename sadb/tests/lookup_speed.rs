//! Rough timing of SAD lookups with 100 000 SAs (not a criterion bench:
//! run with `cargo test --release -p sadb --test lookup_speed -- --ignored --nocapture`).
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::Instant;

use ipsec_esp::{Protocol, Spi};
use sadb::{Databases, Outbound, PacketSelector, Sad, Timestamp};

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn lookup_timing_100k() {
    let now = Timestamp(1_795_314_303);
    let t = Instant::now();
    let sad = Sad::synthetic(100_000, now).unwrap();
    println!("built 100000 SAs in {:?}", t.elapsed());
    println!(
        "size_of SaEntry = {}, Sa = {}, SaId = {}",
        std::mem::size_of::<sadb::SaEntry>(),
        std::mem::size_of::<ipsec_esp::Sa>(),
        std::mem::size_of::<sadb::SaId>()
    );
    let n = 1_000_000u32;
    // Calibration on this (shared) machine: the same loop over a plain map.
    let plain: std::collections::HashMap<u32, u32> = (0..100_000u32).map(|i| (i, i)).collect();
    let t = Instant::now();
    let mut s = 0u64;
    for k in 0..n {
        let i = k.wrapping_mul(2_654_435_761) % 100_000;
        s += u64::from(*plain.get(&i).unwrap());
    }
    let el = t.elapsed();
    assert!(s > 0);
    println!(
        "{n} HashMap<u32, u32> lookups (baseline): {:?} ({:.1} ns/lookup)",
        el,
        el.as_nanos() as f64 / f64::from(n)
    );
    let t = Instant::now();
    let mut found = 0u32;
    for k in 0..n {
        let i = k.wrapping_mul(2_654_435_761) % 100_000;
        let [_, a, b, c] = i.to_be_bytes();
        if sad
            .lookup(IpAddr::from([10, a, b, c]), Protocol::Esp, Spi(0x1000 + i))
            .is_some()
        {
            found += 1;
        }
    }
    let el = t.elapsed();
    assert_eq!(found, n);
    println!(
        "{n} SAD lookups: {:?} ({:.1} ns/lookup)",
        el,
        el.as_nanos() as f64 / f64::from(n)
    );

    // The same with 1 000 SAs (fits in cache): the difference is memory, not the algorithm.
    let small = Sad::synthetic(1_000, now).unwrap();
    let t = Instant::now();
    let mut found = 0u32;
    for k in 0..n {
        let i = k.wrapping_mul(2_654_435_761) % 1_000;
        let [_, a, b, c] = i.to_be_bytes();
        if small
            .lookup(IpAddr::from([10, a, b, c]), Protocol::Esp, Spi(0x1000 + i))
            .is_some()
        {
            found += 1;
        }
    }
    let el = t.elapsed();
    assert_eq!(found, n);
    println!(
        "{n} SAD lookups with 1000 SAs: {:?} ({:.1} ns/lookup)",
        el,
        el.as_nanos() as f64 / f64::from(n)
    );

    let mut db = Databases::new();
    db = db.with_sad(sad);
    db.apply_script(
        "spdadd 192.0.2.1 10.0.0.0/8 any -P out ipsec esp/transport//require;",
        now,
    )
    .unwrap();
    let t = Instant::now();
    for k in 0..n {
        let i = k.wrapping_mul(2_654_435_761) % 100_000;
        let [_, a, b, c] = i.to_be_bytes();
        let pkt = PacketSelector::udp(
            IpAddr::from([192, 0, 2, 1]),
            1,
            IpAddr::from([10, a, b, c]),
            2,
        );
        assert!(matches!(db.outbound(&pkt, now), Outbound::Protect { .. }));
    }
    let el = t.elapsed();
    println!(
        "{n} outbound decisions: {:?} ({:.1} ns/packet)",
        el,
        el.as_nanos() as f64 / f64::from(n)
    );
}
