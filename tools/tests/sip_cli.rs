//! The `sip` binary: exit codes, the torture table, the JSON view, and
//! one-line errors naming the file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use testkit::TempDir;

fn sip(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sip"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn vectors(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../vectors")
        .join(rel)
}

#[test]
fn torture_passes_on_the_shipped_messages() {
    let out = sip(&["torture"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        stdout.lines().filter(|l| l.contains(" pass ")).count(),
        49,
        "{stdout}"
    );
    assert!(stdout.contains("passed 49/49 messages"), "{stdout}");
    let row = stdout.lines().find(|l| l.starts_with("bext01 ")).unwrap();
    assert!(
        row.contains("answer(420)") && row.contains("nothingSupportsThis"),
        "{row}"
    );
}

#[test]
fn torture_fails_on_a_wrong_expectation() {
    let dir = TempDir::new("sip-cli-torture");
    std::fs::copy(vectors("sip-torture/wsinv.dat"), dir.path("wsinv.dat")).unwrap();
    std::fs::copy(vectors("sip-torture/bext01.dat"), dir.path("bext01.dat")).unwrap();
    std::fs::write(
        dir.path("verdicts.txt"),
        "wsinv 3.1.1.1 reject(Via) 400 \"wrong on purpose\"\nbext01 3.3.5 answer(420) 420 \"right\"\n",
    )
    .unwrap();
    let out = sip(&["torture", dir.dir().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("wsinv ") && l.contains("FAIL")),
        "{stdout}"
    );
    assert!(stdout.contains("passed 1/2"), "{stdout}");
}

#[test]
fn torture_io_error_is_one_line_naming_the_file() {
    let out = sip(&["torture", "/nonexistent/dir"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/dir/verdicts.txt"), "{err}");
}

#[test]
fn parse_prints_the_typed_view() {
    let f = vectors("sip-corpus/02-401-aka.sip");
    let out = sip(&["parse", f.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for want in [
        "\"status\": 401",
        "\"call_id\": \"6f1c2e9a-44b1-4c7e-9d3a-0a1b2c3d4e5f\"",
        "\"algorithm\": \"AKAv1-MD5\"",
        "\"spi_s\": 97312002",
        "\"q\": \"0.05\"",
        "\"received\": \"2001:db8:1:2::7\"",
        "\"verdict\": \"accept\"",
    ] {
        assert!(stdout.contains(want), "{want} not in {stdout}");
    }
}

#[test]
fn parse_fails_with_one_line_naming_the_file() {
    let good = vectors("sip-corpus/08-message.sip");
    let bad = vectors("sip-torture/quotbal.dat");
    let out = sip(&["parse", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("\"method\": \"MESSAGE\""));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "sip: {}: To: unterminated quoted string",
            bad.display()
        )),
        "{err}"
    );
    let out = sip(&["parse", "/nonexistent.sip"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent.sip"));
}

#[test]
fn parse_stream_reads_every_message() {
    let dir = TempDir::new("sip-cli-stream");
    let mut s = b"\r\n\r\n".to_vec();
    s.extend(std::fs::read(vectors("sip-corpus/08-message.sip")).unwrap());
    s.extend(std::fs::read(vectors("sip-corpus/09-200-message.sip")).unwrap());
    std::fs::write(dir.path("stream"), &s).unwrap();
    let out = sip(&["parse", "--stream", dir.path("stream").to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("\"index\": 0") && stdout.contains("\"index\": 1"),
        "{stdout}"
    );
    assert!(stdout.contains("\"status\": 200"), "{stdout}");
}

#[test]
fn help_has_examples_and_usage_errors_exit_2() {
    let out = sip(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let h = text(&out.stdout);
    assert!(
        h.contains("Examples:") && h.contains("sip torture") && h.contains("sip parse"),
        "{h}"
    );
    assert_eq!(sip(&["parse"]).status.code(), Some(2));
    assert_eq!(sip(&["frobnicate"]).status.code(), Some(2));
}
