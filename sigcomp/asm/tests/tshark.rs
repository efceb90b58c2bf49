//! Our NACKs for the failing RFC 4465 torture cases, read back by an
//! independent parser: tshark 4.0 (Wireshark's SigComp dissector) must
//! find the reason, opcode, PC and SHA-1 we put in, and the SHA-1 must be
//! that of the failed message as sha1sum computes it.
//!
//! Needs `tshark` on PATH. Without it the test prints a notice and passes,
//! unless `CI` is set, where a missing tshark is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use testkit::pcap;
use testkit::{Peer, packet, tshark};

/// An Ethernet/IPv4/UDP frame 192.0.2.1:5555 -> 192.0.2.2:5555.
fn udp4_frame(payload: &[u8]) -> Vec<u8> {
    packet::ethernet(&packet::udp("192.0.2.1", 5555, "192.0.2.2", 5555, payload))
}

#[test]
fn tshark_parses_our_nacks() {
    if !testkit::require("tshark_parses_our_nacks", &[Peer::Tshark]) {
        return;
    }
    // NACKs for every failing RFC 4465 case: tshark must read back the
    // reason, opcode, PC and SHA-1 we put in, and the SHA-1 must be that of
    // the failed message as computed by sha1sum.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../vectors/sigcomp/rfc4465-torture-tests.txt"),
    )
    .unwrap();
    let cases = sigcomp_asm::torture::run(&text).unwrap();
    let failures: Vec<_> = cases.iter().filter(|c| c.failure.is_some()).collect();
    assert!(failures.len() >= 20);
    let dir = std::env::temp_dir().join(format!("sigcomp-nack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut frames = Vec::new();
    let mut nacks = Vec::new();
    for c in &failures {
        let f = c.failure.as_ref().unwrap();
        let nack = sigcomp::Nack {
            returned_feedback_item: None,
            reason_code: f.reason.code(),
            opcode: f.opcode,
            pc: f.pc,
            sha1: c.nack_sha1.unwrap(),
            details: f.details.clone(),
        };
        let mut wire = Vec::new();
        nack.emit(&mut wire);
        frames.push(udp4_frame(&wire));
        nacks.push(nack);
    }
    // The SHA-1 of each failed message, by sha1sum (coreutils).
    let mut files = Vec::new();
    for (i, c) in failures.iter().enumerate() {
        let p = dir.join(format!("m{i}"));
        std::fs::write(&p, &c.message).unwrap();
        files.push(p);
    }
    let sums = Command::new("sha1sum").args(&files).output().unwrap();
    let sums = String::from_utf8(sums.stdout).unwrap();
    let sums: Vec<&str> = sums.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(sums.len(), nacks.len());
    for (s, n) in sums.iter().zip(&nacks) {
        assert_eq!(
            *s,
            hex::encode(n.sha1),
            "NACK SHA-1 is not sha1sum of the failed message"
        );
    }
    let pcap = dir.join("nacks.pcap");
    pcap::write(&pcap, pcap::LINKTYPE_ETHERNET, &frames);
    let text = tshark::fields(&pcap).separator(",").run(&[
        "sigcomp.nack.ver",
        "sigcomp.nack.reason",
        "sigcomp.nack.failed_op_code",
        "sigcomp.nack.pc",
        "sigcomp.nack.sha1",
    ]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), nacks.len());
    for (line, n) in lines.iter().zip(&nacks) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[0], "1", "{line}");
        assert_eq!(f[1], n.reason_code.to_string(), "{line}");
        assert_eq!(f[2], n.opcode.to_string(), "{line}");
        assert_eq!(f[3], n.pc.to_string(), "{line}");
        assert_eq!(f[4].replace(':', ""), hex::encode(n.sha1), "{line}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
