//! Cross-check against OpenSSL (an implementation nobody here wrote): every
//! cipher in both directions and every MAC OpenSSL has, on many lengths and
//! pseudo-random keys, IVs and data.
//!
//! Needs the `openssl` command (OpenSSL 3). If it is missing the tests fail
//! when `CI` is set and are skipped with a notice otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap

use std::io::Write;
use std::process::{Command, Stdio};

use opensec::{AuthAlgorithm, Cipher, EncAlgorithm, Integrity};
use testkit::Peer;

/// Runs `openssl ARGS` with `input` on stdin and returns stdout.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn ciphers_match_openssl_enc() {
    if !testkit::require("ciphers_match_openssl_enc", &[Peer::Openssl]) {
        return;
    }
    let cases: [(EncAlgorithm, usize, &[&str]); 5] = [
        (
            EncAlgorithm::DesCbc,
            8,
            &["-provider", "legacy", "-provider", "default", "-des-cbc"],
        ),
        (EncAlgorithm::TripleDesCbc, 24, &["-des-ede3-cbc"]),
        (EncAlgorithm::AesCbc, 16, &["-aes-128-cbc"]),
        (EncAlgorithm::AesCbc, 24, &["-aes-192-cbc"]),
        (EncAlgorithm::AesCbc, 32, &["-aes-256-cbc"]),
    ];
    for (i, (alg, key_len, name)) in cases.into_iter().enumerate() {
        let key = bytes(i as u64, key_len);
        let cipher = Cipher::new(alg, &key).unwrap();
        let bs = cipher.block_size();
        for blocks in [1usize, 2, 7, 64, 87, 150] {
            let seed = (i * 1000 + blocks) as u64;
            let iv = bytes(seed + 1, cipher.iv_len());
            let plain = bytes(seed + 2, blocks * bs);
            let (k, v) = (hex::encode(&key), hex::encode(&iv));
            let mut args = vec!["enc"];
            args.extend_from_slice(name);
            args.extend_from_slice(&["-K", &k, "-iv", &v, "-nopad"]);
            let theirs = openssl(&args, &plain);
            let mut ours = plain.clone();
            cipher.encrypt_cbc(&iv, &mut ours).unwrap();
            assert_eq!(ours, theirs, "{name:?} encrypt, {blocks} blocks");
            args.push("-d");
            assert_eq!(openssl(&args, &ours), plain, "{name:?} openssl -d");
            cipher.decrypt_cbc(&iv, &mut ours).unwrap();
            assert_eq!(ours, plain, "{name:?} decrypt, {blocks} blocks");
        }
    }
}

/// DES-CBC and 3DES-EDE3-CBC (our table-driven code) against `openssl enc`
/// with a fresh pseudo-random key and IV for every length, both directions
/// on independent data: ours encrypts what openssl encrypts, and ours
/// decrypts what openssl decrypts (random bytes taken as ciphertext). Block
/// counts are odd and even, so the two-block decryption path and its
/// one-block remainder both run. Every other 3DES key has K3 = K1 (keying
/// option 2, as the TS 33.203 key expansion CK1 || CK2 || CK1 gives).
#[test]
fn des_and_3des_match_openssl_with_random_keys() {
    if !testkit::require(
        "des_and_3des_match_openssl_with_random_keys",
        &[Peer::Openssl],
    ) {
        return;
    }
    let cases: [(EncAlgorithm, usize, &[&str]); 2] = [
        (
            EncAlgorithm::DesCbc,
            8,
            &["-provider", "legacy", "-provider", "default", "-des-cbc"],
        ),
        (EncAlgorithm::TripleDesCbc, 24, &["-des-ede3-cbc"]),
    ];
    for (i, (alg, key_len, name)) in cases.into_iter().enumerate() {
        for (j, blocks) in [1usize, 2, 3, 8, 25, 175, 1024].into_iter().enumerate() {
            let seed = 50_000 + (i * 100 + j) as u64 * 8;
            let mut key = bytes(seed, key_len);
            if key_len == 24 && j % 2 == 1 {
                let k1 = key[..8].to_vec();
                key[16..].copy_from_slice(&k1);
            }
            let iv = bytes(seed + 1, 8);
            let plain = bytes(seed + 2, blocks * 8);
            let cipher_text = bytes(seed + 3, blocks * 8);
            let cipher = Cipher::new(alg, &key).unwrap();
            let (k, v) = (hex::encode(&key), hex::encode(&iv));
            let mut args = vec!["enc"];
            args.extend_from_slice(name);
            args.extend_from_slice(&["-K", &k, "-iv", &v, "-nopad"]);

            let mut ours = plain.clone();
            cipher.encrypt_cbc(&iv, &mut ours).unwrap();
            assert_eq!(
                ours,
                openssl(&args, &plain),
                "{name:?} encrypt, {blocks} blocks, key {k}"
            );

            args.push("-d");
            let mut ours = cipher_text.clone();
            cipher.decrypt_cbc(&iv, &mut ours).unwrap();
            assert_eq!(
                ours,
                openssl(&args, &cipher_text),
                "{name:?} decrypt, {blocks} blocks, key {k}"
            );
        }
    }
}

/// AES-CMAC (our CBC-MAC shared with XCBC) against `openssl mac ... CMAC`
/// with a fresh pseudo-random key for every length: every length from 0 to
/// 48 (empty, partial, exactly one, two and three blocks) and some long
/// ones, the data given to us in three parts.
#[test]
fn cmac_matches_openssl_with_random_keys() {
    if !testkit::require("cmac_matches_openssl_with_random_keys", &[Peer::Openssl]) {
        return;
    }
    let lens = (0usize..=48).chain([63, 64, 65, 200, 1399, 1400, 8192]);
    for len in lens {
        let seed = 70_000 + len as u64 * 4;
        let key: [u8; 16] = bytes(seed, 16).try_into().unwrap();
        let data = bytes(seed + 1, len);
        let hexkey = format!("hexkey:{}", hex::encode(key));
        let out = openssl(
            &["mac", "-cipher", "AES-128-CBC", "-macopt", &hexkey, "CMAC"],
            &data,
        );
        let theirs = hex::decode(String::from_utf8(out).unwrap().trim()).unwrap();
        assert_eq!(
            opensec::aes_cmac(&key, &data).to_vec(),
            theirs,
            "len {len}, {hexkey}"
        );
        let mac = Integrity::new(AuthAlgorithm::AesCmac96, &key).unwrap();
        let (a, rest) = data.split_at(len / 5);
        let (b, c) = rest.split_at(rest.len() * 2 / 3);
        let mut icv = [0u8; 12];
        mac.compute(&[a, b, c], &mut icv).unwrap();
        assert_eq!(icv[..], theirs[..12], "icv, len {len}, {hexkey}");
    }
}

#[test]
fn macs_match_openssl_mac() {
    if !testkit::require("macs_match_openssl_mac", &[Peer::Openssl]) {
        return;
    }
    let cases: [(AuthAlgorithm, &[&str]); 4] = [
        (AuthAlgorithm::HmacMd5_96, &["-digest", "MD5"]),
        (AuthAlgorithm::HmacSha1_96, &["-digest", "SHA1"]),
        (AuthAlgorithm::HmacSha256_128, &["-digest", "SHA256"]),
        (AuthAlgorithm::AesCmac96, &["-cipher", "AES-128-CBC"]),
    ];
    for (i, (alg, how)) in cases.into_iter().enumerate() {
        let key = bytes(100 + i as u64, alg.key_lengths()[0]);
        let mac = Integrity::new(alg, &key).unwrap();
        let kind = if alg == AuthAlgorithm::AesCmac96 {
            "CMAC"
        } else {
            "HMAC"
        };
        for len in [0usize, 1, 15, 16, 17, 55, 56, 63, 64, 65, 200, 1400] {
            let data = bytes((i * 10_000 + len) as u64, len);
            let hexkey = format!("hexkey:{}", hex::encode(&key));
            let mut args = vec!["mac"];
            args.extend_from_slice(how);
            args.extend_from_slice(&["-macopt", &hexkey, kind]);
            let out = openssl(&args, &data);
            let theirs = hex::decode(String::from_utf8(out).unwrap().trim()).unwrap();
            let full = match alg {
                AuthAlgorithm::HmacMd5_96 => opensec::hmac_md5(&key, &data).to_vec(),
                AuthAlgorithm::HmacSha1_96 => opensec::hmac_sha1(&key, &data).to_vec(),
                AuthAlgorithm::HmacSha256_128 => opensec::hmac_sha256(&key, &data).to_vec(),
                _ => opensec::aes_cmac(&key.clone().try_into().unwrap(), &data).to_vec(),
            };
            assert_eq!(full, theirs, "{alg:?} full, len {len}");
            // Truncated ICV, with the data split in three parts.
            let (a, rest) = data.split_at(len / 3);
            let (b, c) = rest.split_at(rest.len() / 2);
            let mut icv = vec![0u8; mac.icv_len()];
            mac.compute(&[a, b, c], &mut icv).unwrap();
            assert_eq!(icv, theirs[..mac.icv_len()], "{alg:?} icv, len {len}");
            assert!(mac.verify(&[&data], &icv));
        }
    }
}

#[test]
fn hashes_match_openssl_dgst() {
    if !testkit::require("hashes_match_openssl_dgst", &[Peer::Openssl]) {
        return;
    }
    for len in [0usize, 3, 55, 56, 64, 1000] {
        let data = bytes(len as u64 + 7, len);
        for (name, ours) in [
            ("-md5", opensec::md5(&data).to_vec()),
            ("-sha1", opensec::sha1(&data).to_vec()),
            ("-sha256", opensec::sha256(&data).to_vec()),
        ] {
            let out = openssl(&["dgst", name, "-r"], &data);
            let text = String::from_utf8(out).unwrap();
            let theirs = hex::decode(text.split_whitespace().next().unwrap()).unwrap();
            assert_eq!(ours, theirs, "{name} len {len}");
        }
    }
}
