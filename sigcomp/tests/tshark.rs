//! Cross-check with an independent UDVM: tshark 4.0 (Wireshark's SigComp
//! dissector) decompresses the capture of the independent compressors'
//! messages, and so do we; the two outputs must equal each other and the
//! original SIP files, and the cycle counts must agree.
//!
//! Needs `tshark` on PATH. Without it the test prints a notice and passes,
//! unless `CI` is set, where a missing tshark is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sigcomp::{CompartmentId, Decompressor, Parameters, Reason, StateHandler, Transport};
use testkit::pcap::{self, Capture};
use testkit::{Peer, packet, tshark};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/independent")
}

/// UDP payloads of an Ethernet/IPv6/UDP capture, in order.
fn udp_payloads(path: &Path) -> Vec<Vec<u8>> {
    let cap = Capture::read(path);
    assert_eq!(
        cap.linktype,
        pcap::LINKTYPE_ETHERNET,
        "Ethernet linktype expected"
    );
    cap.records
        .iter()
        .map(|r| {
            assert_eq!(&r.data[12..14], &[0x86, 0xdd], "IPv6 expected");
            assert_eq!(r.data[14 + 6], 17, "UDP expected");
            let udp = packet::transport(cap.linktype, &r.data).expect("a UDP datagram");
            udp.payload.to_vec()
        })
        .collect()
}

fn tshark_cycles(pcap: &Path) -> Vec<Option<u64>> {
    tshark::fields(pcap)
        .arg("-o")
        .arg("sigcomp.decomp.msg:TRUE")
        .run(&["sigcomp.used_udvm_cycles"])
        .lines()
        .map(|l| l.trim().parse().ok())
        .collect()
}

/// The originals of a pcap's messages, in order, from the manifest.
fn originals(set: &str, pcap_name: &str) -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(root().join(set).join("manifest.tsv")).unwrap();
    let mut rows: Vec<(u32, String, String)> = text
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| match pcap_name {
            "cold" => f[1] == "cold",
            c => f[1] == "flow" && f[4] == c,
        })
        .map(|f| (f[0].parse().unwrap(), f[2].to_string(), f[5].to_string()))
        .collect();
    rows.sort();
    rows.into_iter()
        .map(|(_, file, orig)| (file, std::fs::read(root().join(orig)).unwrap()))
        .collect()
}

#[test]
fn tshark_and_we_agree_on_independent_captures() {
    if !testkit::require(
        "tshark_and_we_agree_on_independent_captures",
        &[Peer::Tshark],
    ) {
        return;
    }
    let sets = [
        ("tinysigcomp-8192-8192-64", 8192, 64),
        ("tinysigcomp-4096-4096-16", 4096, 16),
        ("opensigcomp-8192-8192-64", 8192, 64),
        ("opensigcomp-4096-4096-16", 4096, 16),
    ];
    let mut compared = 0;
    for (set, dms, cpb) in sets {
        for name in ["ue-to-pcscf", "pcscf-to-ue", "cold"] {
            let pcap = root().join(set).join("pcap").join(format!("{name}.pcap"));
            let payloads = udp_payloads(&pcap);
            let theirs = tshark::sigcomp_decompressed(&pcap, &[]);
            let their_cycles = tshark_cycles(&pcap);
            let origs = originals(set, name);
            assert_eq!(payloads.len(), origs.len(), "{set}/{name}");
            assert_eq!(
                theirs.len(),
                payloads.len(),
                "{set}/{name}: tshark frame count"
            );
            let params = Parameters {
                decompression_memory_size: dms,
                state_memory_size: dms,
                cycles_per_bit: cpb,
                version: 2,
            };
            let mut d = Decompressor::new(params).unwrap();
            let mut states = StateHandler::with_dictionaries();
            states.open_compartment(CompartmentId(0), dms);
            for (i, msg) in payloads.iter().enumerate() {
                let (file, orig) = &origs[i];
                let t = theirs[i]
                    .as_ref()
                    .unwrap_or_else(|| panic!("{file}: tshark did not decompress"));
                assert_eq!(t, orig, "{file}: tshark output differs from the original");
                let cold_state = if name == "cold" {
                    Some(StateHandler::with_dictionaries())
                } else {
                    None
                };
                let store = cold_state.as_ref().unwrap_or(&states);
                match d.decompress(msg, Transport::Message, store) {
                    Ok(ours) => {
                        assert_eq!(&ours.output, t, "{file}: we and tshark differ");
                        assert_eq!(
                            Some(ours.cycles),
                            their_cycles[i],
                            "{file}: cycles differ from tshark"
                        );
                        if cold_state.is_none() {
                            states.commit(CompartmentId(0), &ours).unwrap();
                        }
                    }
                    Err(f) => {
                        // tshark does not limit UDVM memory by the DMS; the
                        // README's two negative cases must fail for us.
                        assert!(
                            set == "tinysigcomp-4096-4096-16"
                                && (file.contains("/006-") || file.contains("/007-")),
                            "{file}: {f}"
                        );
                        assert_eq!(f.reason, Reason::Segfault);
                    }
                }
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 168);
}

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
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/rfc4465-torture-tests.txt"),
    )
    .unwrap();
    let cases = sigcomp::torture::run(&text).unwrap();
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
