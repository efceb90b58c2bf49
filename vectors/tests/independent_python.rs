//! Runs `tests/independent_check.py`, which recomputes every expected value
//! in `data/` with Python hashlib/hmac, the `cryptography` package and
//! `openssl enc` (code nobody in this project wrote). Skipped with a notice
//! if python3 with `cryptography` or openssl is missing, unless `CI` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use testkit::Peer;

#[test]
fn every_data_file_matches_independent_implementations() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/independent_check.py");
    if !testkit::require(
        "every_data_file_matches_independent_implementations",
        &[Peer::Python("cryptography"), Peer::Openssl],
    ) {
        return;
    }
    let out = Command::new("python3")
        .arg(script)
        .arg(vectors::DEFAULT_DIR)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "independent check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("249 cases, 0 mismatches"), "{stdout}");
}
