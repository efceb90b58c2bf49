//! The `sigcomp` binary: torture table, decompressing files and captures,
//! and clean errors on bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sigcomp"))
}

fn independent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/independent")
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sigcomp-cli-{}-{name}", std::process::id()))
}

#[test]
fn torture_prints_a_passing_table() {
    let out = bin().arg("torture").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("passed 78/78"), "{text}");
    assert!(text.contains("A.3.5"));
    assert!(text.contains("MULTILOAD_OVERWRITTEN/MULTILOAD_OVERWRITTEN"));
}

#[test]
fn torture_fails_on_a_wrong_expectation() {
    let vectors =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/rfc4465-torture-tests.txt");
    let text = std::fs::read_to_string(vectors)
        .unwrap()
        .replacen("cycles 22", "cycles 23", 1);
    let f = tmp("bad-torture.txt");
    std::fs::write(&f, text).unwrap();
    let out = bin().arg("torture").arg(&f).output().unwrap();
    std::fs::remove_file(&f).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("passed 77/78")
    );
}

#[test]
fn decompresses_a_message_file() {
    let dir = independent();
    let input = dir.join("tinysigcomp-8192-8192-64/cold/001-s1-01-ue-register-initial.sigcomp");
    let out_file = tmp("001.sip");
    let out = bin()
        .args([
            "decompress",
            "--dms",
            "8192",
            "--cpb",
            "64",
            "--sms",
            "8192",
        ])
        .arg(&input)
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(&out_file).unwrap();
    std::fs::remove_file(&out_file).unwrap();
    assert_eq!(
        got,
        std::fs::read(dir.join("corpus/01-ue-register-initial.sip")).unwrap()
    );
}

#[test]
fn decompresses_a_capture_into_a_capture() {
    let dir = independent();
    let input = dir.join("opensigcomp-4096-4096-16/pcap/ue-to-pcscf.pcap");
    let out_file = tmp("out.pcap");
    let out = bin()
        .args([
            "decompress",
            "--dms",
            "4096",
            "--cpb",
            "16",
            "--sms",
            "4096",
        ])
        .arg(&input)
        .arg(&out_file)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("14 decompressed, 0 failed"), "{text}");
    let pcap = std::fs::read(&out_file).unwrap();
    std::fs::remove_file(&out_file).unwrap();
    let cap = tools::pcap::parse(&pcap).unwrap();
    assert_eq!(cap.records.len(), 14);
    let first = tools::pcap::segment(cap.linktype, &cap.records[0].data).unwrap();
    assert_eq!(
        first.payload,
        std::fs::read(dir.join("corpus/01-ue-register-initial.sip")).unwrap()
    );
}

#[test]
fn failure_prints_the_reason_and_exits_non_zero() {
    let f = tmp("short.sigcomp");
    std::fs::write(&f, [0xf8, 0x00]).unwrap();
    let out_file = tmp("short.out");
    let out = bin()
        .arg("decompress")
        .arg(&f)
        .arg(&out_file)
        .output()
        .unwrap();
    std::fs::remove_file(&f).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("MESSAGE_TOO_SHORT")
    );
}

#[test]
fn bad_arguments_give_one_line_errors() {
    let out = bin()
        .args(["decompress", "/nonexistent/in", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = bin()
        .args(["decompress", "--cpb", "17", "/dev/null", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(bin().arg("--help").output().unwrap().status.success());
}

#[test]
fn asm_message_decompresses_and_disasm_round_trips() {
    // RFC 4896 §11: the "uncompressed" bytecode; RFC 4896 gives its bytes.
    let src = "at (64)\n:byte_copy_left pad (2)\nat (128)\n:start\nINPUT-BYTES (1, byte_copy_left, end)\nOUTPUT (byte_copy_left, 1)\nJUMP (start)\n:end\nEND-MESSAGE (0,0,0,0,0,0,0)\n";
    let asm_file = tmp("u.asm");
    let msg_file = tmp("u.sigcomp");
    std::fs::write(&asm_file, src).unwrap();
    let out = bin()
        .args(["asm", "--message"])
        .arg(&asm_file)
        .arg(&msg_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut msg = std::fs::read(&msg_file).unwrap();
    assert_eq!(
        msg,
        [
            0xf8, 0x00, 0xa1, 0x1c, 0x01, 0x86, 0x09, 0x22, 0x86, 0x01, 0x16, 0xf9, 0x23
        ]
    );
    msg.extend_from_slice(b"hello");
    std::fs::write(&msg_file, &msg).unwrap();
    let plain = tmp("u.out");
    let out = bin()
        .arg("decompress")
        .arg(&msg_file)
        .arg(&plain)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read(&plain).unwrap(), b"hello");
    let out = bin().arg("disasm").arg(&msg_file).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("INPUT-BYTES"), "{text}");
    // The disassembly assembles back to the same message.
    std::fs::write(&asm_file, &text).unwrap();
    let out = bin()
        .args(["asm", "--message"])
        .arg(&asm_file)
        .arg(&plain)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&plain).unwrap(), msg[..13]);
    for f in [asm_file, msg_file, plain] {
        std::fs::remove_file(f).unwrap();
    }
    // Bad assembly: exit 2, one line naming the position.
    let bad = tmp("bad.asm");
    std::fs::write(&bad, "FROB (1)\n").unwrap();
    let out = bin()
        .arg("asm")
        .arg(&bad)
        .arg("/dev/null")
        .output()
        .unwrap();
    std::fs::remove_file(&bad).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
}
