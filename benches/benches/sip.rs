//! The SIP codec on the IMS corpus' REGISTER, 401, MESSAGE and NOTIFY,
//! against a plain byte scan of the same messages: every CRLF found with
//! `memchr::memmem` (what any framer must at least do) and a copy of the
//! bytes (what any emitter must at least do).
//!
//! Measured per message:
//! - `scan`: `memmem::find_iter(msg, "\r\n").count()`;
//! - `parse`: `Message::parse` (framing, start line, every row split and
//!   classified, Content-Length);
//! - `parse+emit`: and `emit` into a reused buffer (byte-exact);
//! - `parse+read+emit`: and the typed values a UA reads from such a
//!   message (top Via, Call-ID, CSeq, tags; Security-*, Authorization,
//!   WWW-Authenticate, Contact, Event, Subscription-State where present);
//! - `parse+validate+emit`: every typed row of the message parsed.
//!
//! A side-by-side table is measured in one run after criterion: codec and
//! scan alternate batch by batch and the fastest batch of each counts,
//! which keeps other load on a shared machine out of the ratio.
//!
//! `cargo bench -p benches --bench sip`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};
use gm::sip::{HeaderName, Message};
use memchr::memmem;

const MESSAGES: [(&str, &str); 4] = [
    ("REGISTER", "01-register.sip"),
    ("401", "02-401-aka.sip"),
    ("MESSAGE", "08-message.sip"),
    ("NOTIFY", "07-notify-pidf.sip"),
];

fn read(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../vectors/sip-corpus")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn scan(msg: &[u8]) -> usize {
    memmem::find_iter(msg, b"\r\n").count()
}

fn copy(msg: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    out.extend_from_slice(msg);
    out.len()
}

fn parse(msg: &[u8]) -> usize {
    Message::parse(msg).unwrap().headers().len()
}

fn parse_emit(msg: &[u8], out: &mut Vec<u8>) -> usize {
    let m = Message::parse(msg).unwrap();
    out.clear();
    m.emit(out);
    out.len()
}

/// What a UA reads: the transaction and dialog keys, and the headers of
/// its procedures present in this message.
fn read_typed(m: &Message<'_>) -> usize {
    let via = m.top_via().unwrap();
    let mut n = via.branch.map_or(0, str::len);
    n += m.call_id().unwrap().len();
    n += m.cseq().unwrap().seq as usize;
    n += m.from().unwrap().tag().map_or(0, str::len);
    n += m.to().unwrap().tag().map_or(0, str::len);
    for k in [
        HeaderName::SecurityClient,
        HeaderName::SecurityServer,
        HeaderName::SecurityVerify,
    ] {
        n += m.security(k).unwrap().len();
    }
    n += m.authorization().unwrap().len() + m.www_authenticate().unwrap().len();
    if let Some(c) = m.contacts().unwrap() {
        n += matches!(c, gm::sip::header::Contacts::List(_)) as usize;
    }
    n += m.event().unwrap().is_some() as usize;
    n += m.subscription_state().unwrap().is_some() as usize;
    n
}

fn parse_read_emit(msg: &[u8], out: &mut Vec<u8>) -> usize {
    let m = Message::parse(msg).unwrap();
    let n = read_typed(&m);
    out.clear();
    m.emit(out);
    out.len() + n
}

fn parse_validate_emit(msg: &[u8], out: &mut Vec<u8>) -> usize {
    let m = Message::parse(msg).unwrap();
    m.validate().unwrap();
    out.clear();
    m.emit(out);
    out.len()
}

type Op = fn(&[u8], &mut Vec<u8>) -> usize;

const OPS: [(&str, Op); 6] = [
    ("scan", |m, _| scan(m)),
    ("copy", copy),
    ("parse", |m, _| parse(m)),
    ("parse+emit", parse_emit),
    ("parse+read+emit", parse_read_emit),
    ("parse+validate+emit", parse_validate_emit),
];

fn criterion_benches(c: &mut Criterion, msgs: &[(&str, Vec<u8>)]) {
    let mut g = c.benchmark_group("sip");
    for (name, msg) in msgs {
        g.throughput(Throughput::Bytes(msg.len() as u64));
        let mut out = Vec::with_capacity(8192);
        for (op, f) in OPS {
            g.bench_with_input(BenchmarkId::new(op, name), msg, |b, m| {
                b.iter(|| black_box(f(black_box(m), &mut out)))
            });
        }
    }
    g.finish();
}

const BATCH: usize = 256;

/// ns per message of each op, the fastest of `batches` batches, the ops
/// alternating batch by batch.
fn race(msg: &[u8], batches: usize) -> Vec<f64> {
    let mut best = vec![u128::MAX; OPS.len()];
    let mut out = Vec::with_capacity(8192);
    for _ in 0..batches {
        for (k, (_, f)) in OPS.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..BATCH {
                black_box(f(black_box(msg), &mut out));
            }
            best[k] = best[k].min(t.elapsed().as_nanos());
        }
    }
    best.iter().map(|b| *b as f64 / BATCH as f64).collect()
}

fn side_by_side(msgs: &[(&str, Vec<u8>)]) {
    println!();
    println!(
        "SIP codec vs a CRLF scan of the same bytes (fastest batch of {BATCH}, ns/message; x = ratio to scan; M/s = million messages per second)"
    );
    print!("{:<9} {:>6} |", "message", "bytes");
    for (op, _) in OPS {
        print!(" {op:>22}");
    }
    println!();
    for (name, msg) in msgs {
        let t = race(msg, 2000);
        print!("{name:<9} {:>6} |", msg.len());
        for v in &t {
            print!(" {:>7.0} {:>5.1}x {:>5.2}M/s", v, v / t[0], 1e3 / v);
        }
        println!();
    }
}

fn main() {
    let msgs: Vec<(&str, Vec<u8>)> = MESSAGES.iter().map(|(n, f)| (*n, read(f))).collect();
    for (name, m) in &msgs {
        let parsed = Message::parse(m).unwrap();
        let mut out = Vec::new();
        parsed.emit(&mut out);
        assert_eq!(&out, m, "{name}: not byte-exact");
        parsed.validate().unwrap();
        println!(
            "{name}: {} bytes, {} header rows, {} CRLFs",
            m.len(),
            parsed.headers().len(),
            scan(m)
        );
    }
    let mut c = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_millis(1000))
        .configure_from_args();
    criterion_benches(&mut c, &msgs);
    c.final_summary();
    side_by_side(&msgs);
}
