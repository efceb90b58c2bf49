//! Throughput of `opensec` ciphers and MACs, printed in a machine-readable
//! form for `benches/openssl_compare.sh` (which puts it beside
//! `openssl speed`). Build in release mode:
//!
//! ```text
//! cargo run --release -p opensec --example speed -- [--seconds S] [--sizes 64,1400] [ALG...]
//! ```
//!
//! Each output line is `ours:<alg>:<size>:<bytes per second>`. The operation
//! is the one a packet sees: one `encrypt_cbc`/`decrypt_cbc` or one
//! `Integrity::compute` per buffer, on the same buffer again and again (as
//! `openssl speed` does). As in `openssl speed` (where the EVP context carries
//! the IV from one call to the next), the IV of each call is the last
//! ciphertext block of the previous one, so consecutive calls depend on each
//! other and the CPU cannot overlap them: with a fixed IV, small buffers would
//! look several times faster than CBC encryption can be. For block ciphers the buffer is the size rounded
//! down to a whole number of blocks (ESP pads to the block size, and
//! `openssl speed` buffers the partial block), and only the bytes actually
//! processed are counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool

use std::hint::black_box;
use std::time::{Duration, Instant};

use opensec::{AuthAlgorithm, Cipher, EncAlgorithm, Integrity};

/// The algorithms measured: name, and how to build the operation.
const ALGS: [&str; 16] = [
    "aes-128-cbc-enc",
    "aes-128-cbc-dec",
    "aes-192-cbc-enc",
    "aes-192-cbc-dec",
    "aes-256-cbc-enc",
    "aes-256-cbc-dec",
    "des-cbc-enc",
    "des-cbc-dec",
    "des-ede3-cbc-enc",
    "des-ede3-cbc-dec",
    "hmac-md5-96",
    "hmac-sha1-96",
    "hmac-sha256-128",
    "aes-xcbc-mac-96",
    "aes-cmac-96",
    "null",
];

enum Op {
    Enc(Cipher, std::cell::RefCell<Vec<u8>>),
    Dec(Cipher, std::cell::RefCell<Vec<u8>>),
    Mac(Integrity),
}

fn op(name: &str) -> Op {
    let cipher = |alg, key_len: usize| Cipher::new(alg, &vec![0x42; key_len]).unwrap();
    let enc = |c: Cipher| {
        let iv = vec![0x24; c.iv_len()];
        Op::Enc(c, iv.into())
    };
    let dec = |c: Cipher| {
        let iv = vec![0x24; c.iv_len()];
        Op::Dec(c, iv.into())
    };
    let mac = |alg: AuthAlgorithm| {
        Op::Mac(Integrity::new(alg, &vec![0x42; alg.key_lengths()[0]]).unwrap())
    };
    match name {
        "aes-128-cbc-enc" => enc(cipher(EncAlgorithm::AesCbc, 16)),
        "aes-128-cbc-dec" => dec(cipher(EncAlgorithm::AesCbc, 16)),
        "aes-192-cbc-enc" => enc(cipher(EncAlgorithm::AesCbc, 24)),
        "aes-192-cbc-dec" => dec(cipher(EncAlgorithm::AesCbc, 24)),
        "aes-256-cbc-enc" => enc(cipher(EncAlgorithm::AesCbc, 32)),
        "aes-256-cbc-dec" => dec(cipher(EncAlgorithm::AesCbc, 32)),
        "des-cbc-enc" => enc(cipher(EncAlgorithm::DesCbc, 8)),
        "des-cbc-dec" => dec(cipher(EncAlgorithm::DesCbc, 8)),
        "des-ede3-cbc-enc" => enc(cipher(EncAlgorithm::TripleDesCbc, 24)),
        "des-ede3-cbc-dec" => dec(cipher(EncAlgorithm::TripleDesCbc, 24)),
        "hmac-md5-96" => mac(AuthAlgorithm::HmacMd5_96),
        "hmac-sha1-96" => mac(AuthAlgorithm::HmacSha1_96),
        "hmac-sha256-128" => mac(AuthAlgorithm::HmacSha256_128),
        "aes-xcbc-mac-96" => mac(AuthAlgorithm::AesXcbcMac96),
        "aes-cmac-96" => mac(AuthAlgorithm::AesCmac96),
        "null" => enc(cipher(EncAlgorithm::Null, 0)),
        other => panic!("unknown algorithm {other}; known: {}", ALGS.join(" ")),
    }
}

impl Op {
    /// Runs the operation once over `buf`.
    #[inline(always)]
    fn run(&self, buf: &mut [u8], icv: &mut [u8; 16]) {
        match self {
            Op::Enc(c, iv) => {
                let mut iv = iv.borrow_mut();
                c.encrypt_cbc(&iv, buf).unwrap();
                let n = iv.len();
                if buf.len() >= n {
                    iv.copy_from_slice(&buf[buf.len() - n..]);
                }
            }
            Op::Dec(c, iv) => {
                let mut iv = iv.borrow_mut();
                let n = iv.len();
                let mut next = [0u8; 16];
                if buf.len() >= n {
                    next[..n].copy_from_slice(&buf[buf.len() - n..]);
                }
                c.decrypt_cbc(&iv, buf).unwrap();
                if buf.len() >= n {
                    iv.copy_from_slice(&next[..n]);
                }
            }
            Op::Mac(m) => m.compute(&[buf], icv).unwrap(),
        }
    }

    fn block_size(&self) -> usize {
        match self {
            Op::Enc(c, _) | Op::Dec(c, _) => c.block_size(),
            Op::Mac(_) => 1,
        }
    }
}

/// A clock of the time this thread spent on a CPU, like the user-time clock
/// `openssl speed` divides by by default: on a shared machine wall time also
/// counts the time other processes ran. Falls back to wall time where
/// `/proc/thread-self/schedstat` is missing.
struct CpuClock {
    wall: Instant,
    cpu_ns: Option<u64>,
}

fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl CpuClock {
    fn start() -> Self {
        CpuClock {
            wall: Instant::now(),
            cpu_ns: thread_cpu_ns(),
        }
    }

    fn elapsed(&self) -> Duration {
        match (self.cpu_ns, thread_cpu_ns()) {
            (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
            _ => self.wall.elapsed(),
        }
    }
}

/// Bytes per second of `op` on `size`-byte buffers over about `seconds` of CPU time.
fn measure(op: &Op, size: usize, seconds: f64) -> f64 {
    let len = size - size % op.block_size();
    let mut buf = vec![0x5au8; len];
    let mut icv = [0u8; 16];
    // Warm up and calibrate a batch that takes about 10 ms.
    let mut batch = 1u64;
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            op.run(black_box(&mut buf), &mut icv);
        }
        if t.elapsed() > Duration::from_millis(10) {
            break;
        }
        batch *= 2;
    }
    let deadline = Duration::from_secs_f64(seconds);
    let start = CpuClock::start();
    let mut calls = 0u64;
    while start.elapsed() < deadline {
        for _ in 0..batch {
            op.run(black_box(&mut buf), &mut icv);
        }
        calls += batch;
    }
    black_box(&icv);
    (calls * len as u64) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let mut seconds = 1.0f64;
    let mut sizes = vec![64usize, 200, 1400, 8192];
    let mut algs: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().unwrap().parse().unwrap(),
            "--sizes" => {
                sizes = args
                    .next()
                    .unwrap()
                    .split(',')
                    .map(|s| s.parse().unwrap())
                    .collect()
            }
            "--list" => {
                println!("{}", ALGS.join("\n"));
                return;
            }
            "-h" | "--help" => {
                println!(
                    "usage: speed [--seconds S] [--sizes N,N,..] [--list] [ALG...]\n\
                     prints ours:<alg>:<size>:<bytes per second>"
                );
                return;
            }
            _ => algs.push(a),
        }
    }
    if algs.is_empty() {
        algs = ALGS.iter().map(|s| s.to_string()).collect();
    }
    eprintln!(
        "# AES-NI available: {}; clock: {}",
        std::arch::is_x86_feature_detected!("aes"),
        if thread_cpu_ns().is_some() {
            "thread CPU time (/proc/thread-self/schedstat)"
        } else {
            "wall time"
        }
    );
    for name in &algs {
        let o = op(name);
        for &size in &sizes {
            let bps = measure(&o, size, seconds);
            println!("ours:{name}:{size}:{bps:.0}");
        }
    }
}
