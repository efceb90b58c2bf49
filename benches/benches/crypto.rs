//! Throughput of the `opensec` ciphers (CBC encrypt and decrypt, in place)
//! and MACs (one `Integrity::compute` per buffer) at 64, 200, 1400 and 8192
//! bytes: the sizes of a small SIP message, a typical one, an MTU-sized
//! packet and a jumbo buffer.
//!
//! `cargo bench -p benches --bench crypto [-- FILTER]`. For a side-by-side
//! with `openssl speed`, see `benches/openssl_compare.sh`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // benchmark code

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opensec::{AuthAlgorithm, Cipher, EncAlgorithm, Integrity};

const SIZES: [usize; 4] = [64, 200, 1400, 8192];

fn ciphers(c: &mut Criterion) {
    let cases = [
        ("aes-128-cbc", EncAlgorithm::AesCbc, 16),
        ("aes-192-cbc", EncAlgorithm::AesCbc, 24),
        ("aes-256-cbc", EncAlgorithm::AesCbc, 32),
        ("des-cbc", EncAlgorithm::DesCbc, 8),
        ("3des-cbc", EncAlgorithm::TripleDesCbc, 24),
        ("null", EncAlgorithm::Null, 0),
    ];
    for (name, alg, key_len) in cases {
        let cipher = Cipher::new(alg, &vec![0x42; key_len]).unwrap();
        let mut iv = vec![0x24; cipher.iv_len()];
        let n = iv.len();
        let mut group = c.benchmark_group(name);
        for size in SIZES {
            // ESP pads to the block size (RFC 4303 §2.4); measure whole blocks.
            let len = size - size % cipher.block_size();
            let mut buf = vec![0x5a; len];
            group.throughput(Throughput::Bytes(len as u64));
            // Each call's IV is the previous call's last ciphertext block (as
            // an EVP context does in `openssl speed`): with a fixed IV the CPU
            // would overlap consecutive calls on small buffers, a speed no
            // single CBC chain has.
            group.bench_function(BenchmarkId::new("encrypt", size), |b| {
                b.iter(|| {
                    cipher.encrypt_cbc(&iv, black_box(&mut buf)).unwrap();
                    iv.copy_from_slice(&buf[len - n..]);
                })
            });
            let mut next = vec![0u8; n];
            group.bench_function(BenchmarkId::new("decrypt", size), |b| {
                b.iter(|| {
                    next.copy_from_slice(&buf[len - n..]);
                    cipher.decrypt_cbc(&iv, black_box(&mut buf)).unwrap();
                    iv.copy_from_slice(&next);
                })
            });
        }
        group.finish();
    }
}

fn macs(c: &mut Criterion) {
    for alg in AuthAlgorithm::ALL {
        if alg == AuthAlgorithm::Null {
            continue;
        }
        let mac = Integrity::new(alg, &vec![0x42; alg.key_lengths()[0]]).unwrap();
        let mut icv = [0u8; 16];
        let mut group = c.benchmark_group(alg.setkey_name());
        for size in SIZES {
            let buf = vec![0x5a; size];
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new("compute", size), |b| {
                b.iter(|| mac.compute(&[black_box(&buf)], &mut icv).unwrap())
            });
            mac.compute(&[&buf], &mut icv).unwrap();
            let n = mac.icv_len();
            group.bench_function(BenchmarkId::new("verify", size), |b| {
                b.iter(|| assert!(mac.verify(&[black_box(&buf)], &icv[..n])))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, ciphers, macs);
criterion_main!(benches);
