//! Cross-check with an independent UDVM: tshark 4.0 (Wireshark's SigComp
//! dissector) decompresses the capture of the independent compressors'
//! messages, and so do we; the two outputs must equal each other and the
//! original SIP files, and the cycle counts must agree.
//!
//! Needs `tshark` on PATH. Without it the test prints a notice and passes,
//! unless `CI` is set, where a missing tshark is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use sigcomp::{CompartmentId, Decompressor, Parameters, Reason, StateHandler, Transport};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/independent")
}

fn tshark_available() -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "tshark is required under CI (apt-get install tshark)"
        );
        eprintln!("NOTICE: tshark not found; skipping the tshark cross-check");
    }
    ok
}

/// UDP payloads of an Ethernet/IPv6/UDP libpcap file, in order.
fn udp_payloads(pcap: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(
        &pcap[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian microsecond pcap expected"
    );
    assert_eq!(
        u32::from_le_bytes(pcap[20..24].try_into().unwrap()),
        1,
        "Ethernet linktype expected"
    );
    let mut out = Vec::new();
    let mut rest = &pcap[24..];
    while !rest.is_empty() {
        let incl = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let frame = &rest[16..16 + incl];
        assert_eq!(&frame[12..14], &[0x86, 0xdd], "IPv6 expected");
        assert_eq!(frame[14 + 6], 17, "UDP expected");
        let ulen = u16::from_be_bytes([frame[54 + 4], frame[54 + 5]]) as usize;
        out.push(frame[62..54 + ulen].to_vec());
        rest = &rest[16 + incl..];
    }
    out
}

/// Per frame: the "Decompressed SigComp message" bytes of `tshark -x`.
fn tshark_decompressed(pcap: &Path) -> Vec<Option<Vec<u8>>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-o", "sigcomp.decomp.msg:TRUE", "-x"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut frames: Vec<Option<Vec<u8>>> = Vec::new();
    let mut collecting = false;
    for line in text.lines() {
        if line.starts_with("Frame (") {
            frames.push(None);
            collecting = false;
        } else if line.starts_with("Decompressed SigComp message (") {
            if let Some(f) = frames.last_mut() {
                *f = Some(Vec::new());
            }
            collecting = true;
        } else if line.is_empty() || line.ends_with("bytes):") {
            collecting = false;
        } else if collecting {
            // "0000  xx xx ... xx   ascii"
            let hexpart = line.split("  ").nth(1).unwrap_or("");
            let buf = frames.last_mut().unwrap().as_mut().unwrap();
            for tok in hexpart.split(' ').filter(|t| !t.is_empty()) {
                buf.push(u8::from_str_radix(tok, 16).unwrap());
            }
        }
    }
    frames
}

fn tshark_cycles(pcap: &Path) -> Vec<Option<u64>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args([
            "-o",
            "sigcomp.decomp.msg:TRUE",
            "-T",
            "fields",
            "-e",
            "sigcomp.used_udvm_cycles",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
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
    if !tshark_available() {
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
            let payloads = udp_payloads(&std::fs::read(&pcap).unwrap());
            let theirs = tshark_decompressed(&pcap);
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
