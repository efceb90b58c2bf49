//! Cross-check with an independent UDVM: tshark 4.0 (Wireshark's SigComp
//! dissector) decompresses the capture of the independent compressors'
//! messages, and so do we; the two outputs must equal each other and the
//! original SIP files, and the cycle counts must agree.
//!
//! Needs `tshark` on PATH. Without it the test prints a notice and passes,
//! unless `CI` is set, where a missing tshark is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

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
