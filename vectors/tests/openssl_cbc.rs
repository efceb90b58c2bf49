//! Cross-check of `opensec::Cipher` CBC against `openssl enc -nopad`, for
//! every CBC cipher and key size, on fixed pseudo-random inputs of several
//! lengths. Skipped with a notice if `openssl` is missing, unless `CI` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

use opensec::{Cipher, EncAlgorithm};
use testkit::Peer;

fn openssl_enc(name: &str, key: &[u8], iv: &[u8], data: &[u8], decrypt: bool) -> Vec<u8> {
    let mut cmd = Command::new("openssl");
    cmd.arg("enc");
    if name == "des-cbc" {
        // OpenSSL 3 keeps single DES in the legacy provider.
        cmd.args(["-provider", "legacy", "-provider", "default"]);
    }
    cmd.args([
        &format!("-{name}"),
        "-nopad",
        "-K",
        &hex::encode(key),
        "-iv",
        &hex::encode(iv),
    ]);
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
