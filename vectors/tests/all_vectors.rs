//! Runs every vector file shipped in `data/` and checks that each passes and
//! that the expected number of cases ran (so a file that silently loses its
//! cases fails here).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

/// File name -> number of cases it must hold.
const EXPECTED: &[(&str, usize)] = &[
    ("3des-cbc-fips81-sp800-20.txt", 36),
    ("3des-ecb-sp800-67-sp800-20.txt", 36),
    ("aes-cbc-rfc3602.txt", 8),
    ("aes-cbc-sp800-38a.txt", 3),
    ("aes-cmac-96-rfc4494.txt", 4),
    ("aes-ecb-sp800-38a.txt", 3),
    ("aes-xcbc-mac-rfc3566.txt", 7),
    ("aka-ts35208.txt", 20),
    ("des-cbc-fips81.txt", 1),
    ("des-ecb-fips81-sp800-20.txt", 36),
    ("gsm-milenage-ts55205.txt", 19),
    ("hmac-md5-rfc2202.txt", 7),
    ("hmac-sha1-rfc2202.txt", 7),
    ("hmac-sha256-rfc4231.txt", 7),
    ("hmac-sha256-rfc4868.txt", 10),
    ("http-digest-rfc2617.txt", 1),
    ("ims-esp-keys-ts33203.txt", 8),
    ("md5-rfc1321.txt", 7),
    ("milenage-ts35208.txt", 20),
    ("null-rfc2410.txt", 2),
    ("sha1-rfc3174.txt", 4),
    ("sha256-fips180-2.txt", 3),
];

#[test]
fn every_shipped_vector_passes() {
    let reports = vectors::run_dir(Path::new(vectors::DEFAULT_DIR)).unwrap();
    let mut failures = Vec::new();
    for r in &reports {
        if let Some(e) = &r.error {
            failures.push(format!("{}: {e}", r.name));
        }
        for c in r.cases.iter().filter(|c| !c.passed()) {
            failures.push(format!(
                "{} [{}] line {}: {:?}",
                r.name, c.name, c.line, c.failures
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "failed vectors:\n{}",
        failures.join("\n")
    );

    let got: BTreeMap<&str, usize> = reports
        .iter()
        .map(|r| (r.name.as_str(), r.cases.len()))
        .collect();
    let want: BTreeMap<&str, usize> = EXPECTED.iter().copied().collect();
    assert_eq!(got, want, "files or case counts changed");
    let total: usize = reports.iter().map(|r| r.passed()).sum();
    assert_eq!(total, 249);
}

#[test]
fn mac_cases_run_negative_checks() {
    // RFC 4868 AUTH256 cases have 32-byte keys, so Integrity (HMAC-SHA-256-128)
    // runs with its flipped-bit negatives: more checks than the positive ones.
    let r = vectors::run_file(&Path::new(vectors::DEFAULT_DIR).join("hmac-sha256-rfc4868.txt"));
    let auth = r
        .cases
        .iter()
        .find(|c| c.name.contains("AUTH256-1"))
        .unwrap();
    assert!(auth.checks >= 7, "{auth:?}");
    let r = vectors::run_file(&Path::new(vectors::DEFAULT_DIR).join("aes-cbc-rfc3602.txt"));
    let esp = r.cases.iter().find(|c| c.name.contains("#5")).unwrap();
    assert!(esp.checks >= 12, "{esp:?}");
}

#[test]
fn aka_cases_run_the_whole_exchange() {
    // OPc from OP (1 check), the network's vector (4), the UE's answer and
    // passwords (7), wrong MAC-A, wrong AMF and replay (3), and the
    // resynchronisation (5): 20 checks per test set.
    let r = vectors::run_file(&Path::new(vectors::DEFAULT_DIR).join("aka-ts35208.txt"));
    assert!(r.ok(), "{:?}", r.cases);
    for c in &r.cases {
        assert_eq!(c.checks, 20, "{c:?}");
    }
    let r = vectors::run_file(&Path::new(vectors::DEFAULT_DIR).join("ims-esp-keys-ts33203.txt"));
    assert!(r.ok(), "{:?}", r.cases);
    let refused = r.cases.iter().filter(|c| c.checks == 1).count();
    assert_eq!(refused, 2, "the two refused names: {:?}", r.cases);
}
