//! Runs `tests/independent_check.py`, which recomputes every expected value
//! in `data/` with Python hashlib/hmac, the `cryptography` package and
//! `openssl enc` (code nobody in this project wrote). Skipped with a notice
//! if python3 with `cryptography` or openssl is missing, unless `CI` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn every_data_file_matches_independent_implementations() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/independent_check.py");
    let ready = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with `cryptography`, or openssl, missing but CI is set"
        );
        eprintln!("NOTICE: python3+cryptography or openssl missing; skipping independent check");
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
    assert!(stdout.contains("210 cases, 0 mismatches"), "{stdout}");
}
