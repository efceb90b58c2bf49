//! ESP transform cost against the raw crypto it has to do.
//!
//! For NULL+HMAC-SHA1-96, AES-128-CBC+HMAC-SHA1-96 and 3DES-CBC+HMAC-MD5-96
//! and IPv4/UDP packets of 64, 200 and 1400 bytes (transport mode):
//! - `encap`: `Sa::encap_range` in place, packet placed after
//!   `Sa::headroom()` bytes (IP header moved back, padding, IV, CBC, ICV,
//!   sequence number, IP length and checksum);
//! - `decap`: `Sa::decap` in place (ICV check, replay window, CBC, padding
//!   check, header move);
//! - `raw-encap` / `raw-decap`: only `Cipher::encrypt_cbc` + `Integrity::compute`
//!   (resp. `verify` + `decrypt_cbc`) over exactly the bytes the transform
//!   encrypts and authenticates for that packet.
//!
//! After the criterion groups, a side-by-side table is measured in the same
//! run and printed with the overhead ratio and packets/s: transform and raw
//! crypto alternate batch by batch (256 packets each, prepared untimed) and
//! the fastest batch of each counts, which keeps other load on a shared
//! machine out of the ratio.
//!
//! `cargo bench -p benches --bench esp [-- FILTER]`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // benchmark code

use std::hint::black_box;

use benches::{BATCH, race};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use ipsec_esp::{Mode, Protocol, Sa, SaParams, Spi};
use opensec::{AuthAlgorithm, Cipher, EncAlgorithm, Integrity};

const SIZES: [usize; 3] = [64, 200, 1400];

struct Case {
    name: &'static str,
    enc: EncAlgorithm,
    enc_key_len: usize,
    auth: AuthAlgorithm,
    auth_key_len: usize,
}

const CASES: [Case; 3] = [
    Case {
        name: "null+hmac-sha1-96",
        enc: EncAlgorithm::Null,
        enc_key_len: 0,
        auth: AuthAlgorithm::HmacSha1_96,
        auth_key_len: 20,
    },
    Case {
        name: "aes-128-cbc+hmac-sha1-96",
        enc: EncAlgorithm::AesCbc,
        enc_key_len: 16,
        auth: AuthAlgorithm::HmacSha1_96,
        auth_key_len: 20,
    },
    Case {
        name: "3des-cbc+hmac-md5-96",
        enc: EncAlgorithm::TripleDesCbc,
        enc_key_len: 24,
        auth: AuthAlgorithm::HmacMd5_96,
        auth_key_len: 16,
    },
];

impl Case {
    fn sa(&self) -> Sa {
        Sa::new(SaParams {
            spi: Spi(0x1000),
            protocol: Protocol::Esp,
            mode: Mode::Transport,
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
            enc: self.enc,
            enc_key: vec![0x42; self.enc_key_len],
            auth: self.auth,
            auth_key: vec![0x24; self.auth_key_len],
            replay_window: 64,
            esn: false,
            udp_encap: None,
            seq: 0,
        })
        .unwrap()
    }

    fn raw(&self) -> Raw {
        Raw {
            cipher: Cipher::new(self.enc, &vec![0x42; self.enc_key_len]).unwrap(),
            integrity: Integrity::new(self.auth, &vec![0x24; self.auth_key_len]).unwrap(),
        }
    }
}

/// The crypto alone, on the byte ranges `Sa` works on for an IPv4 packet
/// with a 20-byte header: ESP header at 20, IV, ciphertext, ICV.
struct Raw {
    cipher: Cipher,
    integrity: Integrity,
}

impl Raw {
    /// (ciphertext start, ciphertext end, ICV end) for a plaintext packet.
    fn layout(&self, pkt_len: usize) -> (usize, usize, usize) {
        let align = self.cipher.block_size().max(4);
        let padded = (pkt_len - 20 + 2).div_ceil(align) * align;
        let ct = 20 + 8 + self.cipher.iv_len();
        (ct, ct + padded, ct + padded + self.integrity.icv_len())
    }

    fn encap(&self, buf: &mut [u8], pkt_len: usize) {
        let (ct, end, icv_end) = self.layout(pkt_len);
        let (head, rest) = buf.split_at_mut(ct);
        let iv = &mut head[28..];
        iv.fill(0x5a);
        self.cipher.encrypt_cbc(iv, &mut rest[..end - ct]).unwrap();
        let (authed, icv) = buf[20..icv_end].split_at_mut(end - 20);
        self.integrity.compute(&[authed], icv).unwrap();
    }

    fn decap(&self, buf: &mut [u8]) -> bool {
        let icv_len = self.integrity.icv_len();
        let end = buf.len() - icv_len;
        let ok = {
            let (authed, icv) = buf[20..].split_at(end - 20);
            self.integrity.verify(&[authed], icv)
        };
        let ct = 28 + self.cipher.iv_len();
        let (head, rest) = buf.split_at_mut(ct);
        self.cipher
            .decrypt_cbc(&head[28..], &mut rest[..end - ct])
            .unwrap();
        ok
    }
}

/// An IPv4/UDP packet of `len` bytes in total.
fn packet(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[..20].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ]);
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[20..24].copy_from_slice(&[0x13, 0xc4, 0x13, 0xc4]);
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

fn iv_source() -> impl FnMut(&mut [u8]) {
    let mut n = 0u8;
    move |iv: &mut [u8]| {
        n = n.wrapping_add(1);
        iv.fill(n);
    }
}

/// Fresh protected packets from `tx`.
fn protected(tx: &mut Sa, pkt: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut iv = iv_source();
    (0..n)
        .map(|_| {
            let mut b = vec![0u8; pkt.len() + tx.max_overhead()];
            b[..pkt.len()].copy_from_slice(pkt);
            let len = tx.encap(&mut b, pkt.len(), &mut iv).unwrap();
            b.truncate(len);
            b
        })
        .collect()
}

fn criterion_benches(c: &mut Criterion) {
    for case in &CASES {
        let mut group = c.benchmark_group(format!("esp/{}", case.name));
        for size in SIZES {
            let pkt = packet(size);
            group.throughput(Throughput::Bytes(size as u64));
            let tx = case.sa();
            let head = tx.headroom();
            let mut template = vec![0u8; head + size + tx.tailroom()];
            template[head..head + size].copy_from_slice(&pkt);
            let mut iv = iv_source();
            group.bench_function(BenchmarkId::new("encap", size), |b| {
                b.iter_batched_ref(
                    || template.clone(),
                    |buf| black_box(tx.encap_range(buf, head..head + size, &mut iv).unwrap()),
                    BatchSize::SmallInput,
                )
            });
            let mut raw_template = vec![0u8; size + tx.max_overhead()];
            raw_template[..size].copy_from_slice(&pkt);
            let raw = case.raw();
            group.bench_function(BenchmarkId::new("raw-encap", size), |b| {
                b.iter_batched_ref(
                    || raw_template.clone(),
                    |buf| raw.encap(black_box(buf), size),
                    BatchSize::SmallInput,
                )
            });
            let mut src = case.sa();
            let rx = case.sa();
            group.bench_function(BenchmarkId::new("decap", size), |b| {
                b.iter_batched_ref(
                    || protected(&mut src, &pkt, 1).pop().unwrap(),
                    |buf| black_box(rx.decap(buf).unwrap().range.len()),
                    BatchSize::SmallInput,
                )
            });
            let one = protected(&mut case.sa(), &pkt, 1).pop().unwrap();
            group.bench_function(BenchmarkId::new("raw-decap", size), |b| {
                b.iter_batched_ref(
                    || one.clone(),
                    |buf| black_box(raw.decap(buf)),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
}

fn side_by_side() {
    println!();
    println!("ESP transform vs raw crypto on the same bytes (fastest batch of 256, ns/packet)");
    println!(
        "{:<26} {:>5} {:>6} | {:>9} {:>9} {:>8} | {:>9}",
        "algorithms", "size", "dir", "esp", "raw", "overhead", "esp Mpps"
    );
    for case in &CASES {
        for size in SIZES {
            let pkt = packet(size);
            let batches = if case.enc == EncAlgorithm::TripleDesCbc {
                40
            } else {
                300
            };
            let raw = case.raw();
            let tx = case.sa();
            let head = tx.headroom();
            // Both buffers: the packet after `head` bytes, room behind it.
            let mut template = vec![0u8; head + size + tx.max_overhead()];
            template[head..head + size].copy_from_slice(&pkt);
            let mut raw_template = vec![0u8; size + tx.max_overhead()];
            raw_template[..size].copy_from_slice(&pkt);
            let mut iv = iv_source();
            let mut toggle = false;
            let mut refill = |v: &mut Vec<Vec<u8>>| {
                toggle = !toggle;
                let t = if toggle { &template } else { &raw_template };
                v.clear();
                v.extend((0..BATCH).map(|_| t.clone()));
            };
            let (ours, theirs) = race(
                batches,
                &mut refill,
                &mut |b| {
                    black_box(tx.encap_range(b, head..head + size, &mut iv).unwrap());
                },
                &mut |b| raw.encap(black_box(b), size),
            );
            report(case.name, size, "encap", ours, theirs);

            let mut src = case.sa();
            let rx = case.sa();
            let mut refill = |v: &mut Vec<Vec<u8>>| {
                *v = protected(&mut src, &pkt, BATCH);
            };
            let (ours, theirs) = race(
                batches,
                &mut refill,
                &mut |b| {
                    black_box(rx.decap(b).unwrap().range.len());
                },
                &mut |b| {
                    black_box(raw.decap(b));
                },
            );
            report(case.name, size, "decap", ours, theirs);
        }
    }
}

fn report(name: &str, size: usize, dir: &str, ours: f64, raw: f64) {
    println!(
        "{:<26} {:>5} {:>6} | {:>9.1} {:>9.1} {:>+7.1}% | {:>9.2}",
        name,
        size,
        dir,
        ours,
        raw,
        (ours / raw - 1.0) * 100.0,
        1e3 / ours
    );
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_millis(1500))
        .configure_from_args();
    criterion_benches(&mut c);
    c.final_summary();
    side_by_side();
}
