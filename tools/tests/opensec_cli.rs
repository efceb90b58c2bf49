//! The `opensec` binary: exit codes and the table, on the shipped vectors
//! and on a temporary directory holding one bad vector.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

use testkit::TempDir;

fn opensec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opensec"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn default_dir_all_pass() {
    let out = opensec(&["vectors"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("file "), "{stdout}");
    for col in ["algorithm", "source", "cases", "passed", "failed"] {
        assert!(stdout.lines().next().unwrap().contains(col), "{stdout}");
    }
    let row = stdout
        .lines()
        .find(|l| l.starts_with("hmac-sha1-rfc2202.txt"))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "hmac-sha1");
    assert_eq!(cells[cells.len() - 4..], ["7", "7", "0", "PASS"], "{row}");
    assert!(row.contains("RFC 2202 §3"), "{row}");
    assert!(
        stdout.contains("22 files, 249 cases: 249 passed, 0 failed"),
        "{stdout}"
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn one_bad_vector_fails_with_details() {
    let dir = TempDir::new("opensec-cli-bad");
    // RFC 2202 §2 test_case 1 with the last digest digit changed, beside a good case.
    std::fs::write(
        dir.path("corrupted.txt"),
        "algorithm = hmac-md5\nsource = RFC 2202 §2 (corrupted)\n\n\
         [good]\nkey = 0x0b * 16\ndata = \"Hi There\"\ndigest = 0x9294727a3638bb1c13f48ef8158bfc9d\n\n\
         [bad]\nkey = 0x0b * 16\ndata = \"Hi There\"\ndigest = 0x9294727a3638bb1c13f48ef8158bfc9e\n",
    )
    .unwrap();
    let out = opensec(&["vectors", dir.dir().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("corrupted.txt"))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 4..], ["2", "1", "1", "FAIL"], "{row}");
    assert!(
        stdout.contains("FAIL corrupted.txt [bad] (line 9):"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "digest: expected 9294727a3638bb1c13f48ef8158bfc9e got 9294727a3638bb1c13f48ef8158bfc9d"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("1 file(s) FAIL"), "{stdout}");
}

#[test]
fn malformed_file_fails_with_line() {
    let dir = TempDir::new("opensec-cli-malformed");
    std::fs::write(
        dir.path("m.txt"),
        "algorithm = md5\nsource = x\n[a]\ndata = 0xabc\n",
    )
    .unwrap();
    let out = opensec(&["vectors", dir.dir().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("FAIL m.txt: line 4: hex literal with an odd number of digits"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn io_and_usage_errors_exit_2_with_one_line() {
    let out = opensec(&["vectors", "/nonexistent/opensec-vectors"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("opensec: cannot read vector directory"),
        "{stderr}"
    );

    let empty = TempDir::new("opensec-cli-empty");
    let out = opensec(&["vectors", empty.dir().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no vector files"));

    assert_eq!(opensec(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(opensec(&["vectors", "a", "b"]).status.code(), Some(2));
}

#[test]
fn help_exits_0() {
    let out = opensec(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("vectors"));
    let out = opensec(&["vectors", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("[DIR]"));
}

#[test]
fn list_shows_files_sources_and_counts_without_running() {
    let out = opensec(&["vectors", "--list"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_eq!(
        stdout
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["file", "algorithm", "source", "cases"]
    );
    for (file, algorithm, source, cases) in [
        ("aka-ts35208.txt", "aka", "3GPP TS 35.208 §4.3", "20"),
        ("sha256-fips180-2.txt", "sha256", "FIPS 180-2", "3"),
        (
            "ims-esp-keys-ts33203.txt",
            "ims-esp-keys",
            "no published vector",
            "8",
        ),
    ] {
        let row = stdout.lines().find(|l| l.starts_with(file)).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            (cells[1], cells[cells.len() - 1]),
            (algorithm, cases),
            "{row}"
        );
        assert!(row.contains(source), "{row}");
    }
    assert!(stdout.contains("22 files, 249 cases (not run)"), "{stdout}");
    assert!(!stdout.contains("PASS"), "nothing ran: {stdout}");
}

#[test]
fn list_does_not_run_but_reports_files_that_do_not_load() {
    let dir = TempDir::new("opensec-cli-list");
    // A wrong digest is not seen by --list (nothing runs) ...
    std::fs::write(
        dir.path("wrong.txt"),
        "algorithm = md5\nsource = RFC 1321 (corrupted)\n[abc]\ndata = \"abc\"\n\
         digest = 0x900150983cd24fb0d6963f7d28e17f73\n",
    )
    .unwrap();
    let out = opensec(&["vectors", "--list", dir.dir().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("1 files, 1 cases (not run)"));
    // ... a file that cannot run at all is.
    std::fs::write(
        dir.path("rot13.txt"),
        "algorithm = rot13\nsource = x\n[a]\ndata = \"x\"\n",
    )
    .unwrap();
    let out = opensec(&["vectors", "--list", dir.dir().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL rot13.txt: unknown algorithm `rot13`"),
        "{stdout}"
    );
    assert!(stdout.contains("1 file(s) do not load"), "{stdout}");
}
