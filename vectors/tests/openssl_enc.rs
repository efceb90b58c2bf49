//! Cross-check of `opensec::Cipher` CBC and ECB against `openssl enc -nopad`,
//! for every cipher and key size, on fixed pseudo-random inputs of several
//! lengths, and of the SP 800-38A vector files (AES-128/192/256 in ECB and
//! CBC) against the same command. Skipped with a notice if `openssl` is
//! missing, unless `CI` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use opensec::{Cipher, EncAlgorithm};
use testkit::Peer;

/// `openssl enc -NAME -nopad -K key [-iv iv] [-d]` over `data`; `iv` is
/// empty for ECB.
fn openssl_enc(name: &str, key: &[u8], iv: &[u8], data: &[u8], decrypt: bool) -> Vec<u8> {
    let mut cmd = Command::new("openssl");
    cmd.arg("enc");
    if name == "des-cbc" || name == "des-ecb" {
        // OpenSSL 3 keeps single DES in the legacy provider.
        cmd.args(["-provider", "legacy", "-provider", "default"]);
    }
    cmd.args([&format!("-{name}"), "-nopad", "-K", &hex::encode(key)]);
    if !iv.is_empty() {
        cmd.args(["-iv", &hex::encode(iv)]);
    }
    if decrypt {
        cmd.arg("-d");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl enc -{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Deterministic filler (xorshift), so a failure is reproducible.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
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
fn cbc_matches_openssl_enc() {
    if !testkit::require("cbc_matches_openssl_enc", &[Peer::Openssl]) {
        return;
    }
    let suites: &[(EncAlgorithm, usize, &str)] = &[
        (EncAlgorithm::DesCbc, 8, "des-cbc"),
        (EncAlgorithm::TripleDesCbc, 24, "des-ede3-cbc"),
        (EncAlgorithm::AesCbc, 16, "aes-128-cbc"),
        (EncAlgorithm::AesCbc, 24, "aes-192-cbc"),
        (EncAlgorithm::AesCbc, 32, "aes-256-cbc"),
    ];
    let mut compared = 0;
    for (i, &(alg, key_len, name)) in suites.iter().enumerate() {
        let key = bytes(0x5eed_0000 + i as u64, key_len);
        let cipher = Cipher::new(alg, &key).unwrap();
        for blocks in [1usize, 2, 5, 64] {
            let iv = bytes(0x1f00 + (i * 100 + blocks) as u64, cipher.iv_len());
            let plaintext = bytes(
                0xda7a + (i * 100 + blocks) as u64,
                blocks * cipher.block_size(),
            );
            let mut ours = plaintext.clone();
            cipher.encrypt_cbc(&iv, &mut ours).unwrap();
            let theirs = openssl_enc(name, &key, &iv, &plaintext, false);
            assert_eq!(
                hex::encode(&ours),
                hex::encode(&theirs),
                "{name} encrypt, {blocks} blocks"
            );
            // And the other direction: openssl's ciphertext, our decryption.
            let mut back = theirs.clone();
            cipher.decrypt_cbc(&iv, &mut back).unwrap();
            assert_eq!(back, plaintext, "{name} decrypt, {blocks} blocks");
            assert_eq!(openssl_enc(name, &key, &iv, &ours, true), plaintext);
            compared += 1;
        }
    }
    assert_eq!(compared, 20);
}

#[test]
fn ecb_matches_openssl_enc() {
    if !testkit::require("ecb_matches_openssl_enc", &[Peer::Openssl]) {
        return;
    }
    let suites: &[(EncAlgorithm, usize, &str)] = &[
        (EncAlgorithm::DesCbc, 8, "des-ecb"),
        (EncAlgorithm::TripleDesCbc, 24, "des-ede3"),
        (EncAlgorithm::AesCbc, 16, "aes-128-ecb"),
        (EncAlgorithm::AesCbc, 24, "aes-192-ecb"),
        (EncAlgorithm::AesCbc, 32, "aes-256-ecb"),
    ];
    let mut compared = 0;
    for (i, &(alg, key_len, name)) in suites.iter().enumerate() {
        let key = bytes(0xecb0_0000 + i as u64, key_len);
        let cipher = Cipher::new(alg, &key).unwrap();
        for blocks in [1usize, 2, 5, 64] {
            let seed = (i * 100 + blocks) as u64;
            let plaintext = bytes(0xecb1_0000 + seed, blocks * cipher.block_size());
            let mut ours = plaintext.clone();
            cipher.encrypt_ecb(&mut ours).unwrap();
            let theirs = openssl_enc(name, &key, &[], &plaintext, false);
            assert_eq!(
                hex::encode(&ours),
                hex::encode(&theirs),
                "{name} encrypt, {blocks} blocks"
            );
            let mut back = theirs.clone();
            cipher.decrypt_ecb(&mut back).unwrap();
            assert_eq!(back, plaintext, "{name} decrypt, {blocks} blocks");
            assert_eq!(openssl_enc(name, &key, &[], &ours, true), plaintext);
            compared += 1;
        }
    }
    assert_eq!(compared, 20);
}

/// Every case of the SP 800-38A files (AES-128/192/256, ECB and CBC): the
/// file's ciphertext is what `openssl enc` computes from the file's key, IV
/// and plaintext, and `openssl enc -d` gives the plaintext back.
#[test]
fn sp800_38a_files_match_openssl_enc() {
    if !testkit::require("sp800_38a_files_match_openssl_enc", &[Peer::Openssl]) {
        return;
    }
    let dir = Path::new(vectors::DEFAULT_DIR);
    let mut compared = 0;
    for (file, mode) in [
        ("aes-ecb-sp800-38a.txt", "ecb"),
        ("aes-cbc-sp800-38a.txt", "cbc"),
    ] {
        let vectors = vectors::load_file(&dir.join(file)).unwrap();
        for case in &vectors.cases {
            let key = case.get("key").unwrap();
            let iv = case.get("iv").unwrap_or_default();
            let (pt, ct) = (
                case.get("plaintext").unwrap(),
                case.get("ciphertext").unwrap(),
            );
            let name = format!("aes-{}-{mode}", key.len() * 8);
            assert_eq!(
                hex::encode(openssl_enc(&name, key, iv, pt, false)),
                hex::encode(ct),
                "{file} [{}]",
                case.name
            );
            assert_eq!(
                openssl_enc(&name, key, iv, ct, true),
                pt,
                "{file} [{}] -d",
                case.name
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 6);
}
