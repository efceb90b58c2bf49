//! The IPsec engine (`Databases::protect` / `unprotect`: selector, SPD
//! lookup, SA selection, transform, counters, inbound policy check) against
//! the bare `Sa` transform on the same bytes, AES-128-CBC + HMAC-SHA1-96,
//! IPv4/UDP packets of 200 and 1400 bytes, transport mode.
//!
//! The databases are the worst reasonable case: an SPD of 1000
//! distinct port-pair policies per direction, the matching one inserted
//! last, and a SAD of 100 000 SAs besides the one used.
//!
//! A side-by-side table is measured in one run: engine and bare transform
//! alternate batch by batch (256 packets each, prepared untimed) and the
//! fastest batch of each counts, which keeps other load on a shared
//! machine out of the ratio. Targets: <= 1.10x at 1400 B, <= 1.25x at 200 B.
//!
//! `cargo bench -p benches --bench engine`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code

use std::hint::black_box;
use std::net::IpAddr;

use benches::{BATCH, race};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use ipsec_esp::{Mode, Protocol, Sa, SaParams, Spi};
use opensec::{AuthAlgorithm, EncAlgorithm};
use sadb::{Databases, Incoming, Outgoing, Received, Sad, Timestamp};

const NOW: Timestamp = Timestamp(1_795_314_303);
const SIZES: [usize; 2] = [200, 1400];
const POLICIES: u16 = 1000;
const SAS: u32 = 100_000;
const ROOM: usize = 128;
const ENC_KEY: [u8; 16] = [0x11; 16];
const AUTH_KEY: [u8; 20] = [0x22; 20];
/// The port pair of the matching policy: the last one inserted.
const SPORT: u16 = 10_000 + POLICIES - 1;
const DPORT: u16 = 20_000 + POLICIES - 1;

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn params() -> SaParams {
    SaParams {
        spi: Spi(0x0200_0000),
        protocol: Protocol::Esp,
        mode: Mode::Transport,
        src: addr("192.0.2.1"),
        dst: addr("192.0.2.2"),
        enc: EncAlgorithm::AesCbc,
        enc_key: ENC_KEY.to_vec(),
        auth: AuthAlgorithm::HmacSha1_96,
        auth_key: AUTH_KEY.to_vec(),
        replay_window: 0,
        esn: false,
        udp_encap: None,
        seq: 0,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// 100 000 other SAs, our SA, and 1000 port-pair policies in `dir` with
/// the matching one last.
fn databases(dir: &str) -> Databases {
    let mut db = Databases::new().with_sad(Sad::synthetic(SAS, NOW).unwrap());
    let mut script = format!(
        "add 192.0.2.1 192.0.2.2 esp 0x02000000 -m transport -E aes-cbc 0x{} -A hmac-sha1 0x{};\n",
        hex(&ENC_KEY),
        hex(&AUTH_KEY)
    );
    for i in 0..POLICIES {
        script.push_str(&format!(
            "spdadd 192.0.2.1[{}] 192.0.2.2[{}] udp -P {dir} ipsec esp/transport//require;\n",
            10_000 + i,
            20_000 + i
        ));
    }
    db.apply_script(&script, NOW).unwrap();
    assert_eq!(db.spd().len(), usize::from(POLICIES));
    db
}

/// An IPv4/UDP packet of `size` bytes on the matching port pair.
fn packet(size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .udp(SPORT, DPORT)
        .write(&mut out, &vec![0x5a; size - 28])
        .unwrap();
    out
}

fn iv_source() -> impl FnMut(&mut [u8]) {
    let mut n = 0u8;
    move |iv: &mut [u8]| {
        n = n.wrapping_add(1);
        iv.fill(n);
    }
}

fn framed(pkt: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; ROOM + pkt.len() + ROOM];
    b[ROOM..ROOM + pkt.len()].copy_from_slice(pkt);
    b
}

/// `n` protected copies of `pkt` (the bare transform's output, which the
/// engine would produce too), each framed.
fn protected(pkt: &[u8], n: usize) -> Vec<Vec<u8>> {
    let sa = Sa::new(params()).unwrap();
    let mut iv = iv_source();
    (0..n)
        .map(|_| {
            let mut b = framed(pkt);
            let r = sa
                .encap_range(&mut b, ROOM..ROOM + pkt.len(), &mut iv)
                .unwrap();
            framed(&b[r])
        })
        .collect()
}

struct Setup {
    tx: Databases,
    rx: Databases,
    sa: Sa,
}

fn protect_engine(tx: &Databases, b: &mut [u8], len: usize, iv: &mut impl FnMut(&mut [u8])) {
    match tx.protect(b, ROOM..ROOM + len, NOW, iv) {
        Outgoing::Protected(p) => {
            black_box(p.packet.len());
        }
        other => panic!("{other:?}"),
    }
}

fn unprotect_engine(rx: &Databases, b: &mut [u8], len: usize) {
    match rx.unprotect(b, ROOM..ROOM + len, Received::Ip, NOW) {
        Incoming::Deliver(d) => {
            black_box(d.packet.len());
        }
        other => panic!("{other:?}"),
    }
}

fn criterion_benches(c: &mut Criterion, s: &Setup) {
    let mut g = c.benchmark_group("engine/aes-128-cbc+hmac-sha1-96");
    for size in SIZES {
        let pkt = packet(size);
        let template = framed(&pkt);
        g.throughput(Throughput::Bytes(size as u64));
        let mut iv = iv_source();
        g.bench_function(BenchmarkId::new("protect", size), |b| {
            b.iter_batched_ref(
                || template.clone(),
                |buf| protect_engine(&s.tx, buf, size, &mut iv),
                BatchSize::SmallInput,
            )
        });
        let wire = protected(&pkt, 1).pop().unwrap();
        let wlen = wire.len() - 2 * ROOM;
        g.bench_function(BenchmarkId::new("unprotect", size), |b| {
            b.iter_batched_ref(
                || wire.clone(),
                |buf| unprotect_engine(&s.rx, buf, wlen),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn side_by_side(s: &Setup) {
    println!();
    println!(
        "engine (SPD {POLICIES} policies, match last; SAD {} SAs) vs bare Sa, AES-128-CBC+HMAC-SHA1-96 (fastest batch of {BATCH}, ns/packet)",
        SAS + 1
    );
    println!(
        "{:>5} {:>10} | {:>9} {:>9} {:>7} {:>7}",
        "size", "dir", "engine", "bare Sa", "ratio", "target"
    );
    for size in SIZES {
        let pkt = packet(size);
        let template = framed(&pkt);
        let batches = 400;
        let mut iv = iv_source();
        let mut iv2 = iv_source();
        let (engine, bare) = race(
            batches,
            &mut |v| {
                v.clear();
                v.extend((0..BATCH).map(|_| template.clone()));
            },
            &mut |b| protect_engine(&s.tx, b, size, &mut iv),
            &mut |b| {
                black_box(s.sa.encap_range(b, ROOM..ROOM + size, &mut iv2).unwrap());
            },
        );
        let target = if size >= 1400 { 1.10 } else { 1.25 };
        report(size, "protect", engine, bare, target);

        let wires = protected(&pkt, BATCH);
        let wlen = wires[0].len() - 2 * ROOM;
        let (engine, bare) = race(
            batches,
            &mut |v| v.clone_from(&wires),
            &mut |b| unprotect_engine(&s.rx, b, wlen),
            &mut |b| {
                black_box(s.sa.decap(&mut b[ROOM..ROOM + wlen]).unwrap());
            },
        );
        report(size, "unprotect", engine, bare, target);
    }
}

fn report(size: usize, dir: &str, engine: f64, bare: f64, target: f64) {
    let ratio = engine / bare;
    println!(
        "{size:>5} {dir:>10} | {engine:>9.1} {bare:>9.1} {ratio:>6.2}x {:>6.2}x {}",
        target,
        if ratio <= target { "ok" } else { "OVER" }
    );
}

fn main() {
    let s = Setup {
        tx: databases("out"),
        rx: databases("in"),
        sa: Sa::new(params()).unwrap(),
    };
    let mut c = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_millis(1500))
        .configure_from_args();
    criterion_benches(&mut c, &s);
    c.final_summary();
    side_by_side(&s);
}
