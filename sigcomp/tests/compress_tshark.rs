//! tshark 4.0's SigComp dissector (an independent UDVM) decompresses every
//! message our compressor sends: the first messages of fresh compartments
//! (bytecode upload) and a whole stateful flow (6-byte partial state ids,
//! STATE-ACCESS of dictionary slices and earlier messages), byte-exact.
//!
//! Needs `tshark` on PATH. Without it the test prints a notice and passes,
//! unless `CI` is set, where a missing tshark is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sigcomp::compress::{Compressor, Config, Kind};
use sigcomp::{CompartmentId, Decompressor, Parameters, Resources, StateHandler, Transport};
use testkit::{Peer, packet, pcap, tshark};

/// Session 1 then session 2 of the independent corpus, and our own corpus.
fn flow() -> Vec<Vec<u8>> {
    let mut v = testkit::corpus::independent();
    v.extend(testkit::corpus::independent_session2());
    v.extend(testkit::corpus::ours());
    v
}

/// Ethernet/IPv4/UDP frames 192.0.2.1:5555 -> 192.0.2.2:5555.
fn frames(payloads: &[Vec<u8>]) -> Vec<Vec<u8>> {
    payloads
        .iter()
        .map(|p| packet::ethernet(&packet::udp("192.0.2.1", 5555, "192.0.2.2", 5555, p)))
        .collect()
}

/// Compresses `msgs` as one flow (feedback returned after each message, as
/// the reverse traffic would) and checks our UDVM on the way.
fn compress_flow(msgs: &[Vec<u8>], dms: u32, sms: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    let peer = Resources {
        cycles_per_bit: 16,
        decompression_memory_size: dms,
        state_memory_size: sms,
    };
    let mut c = Compressor::new(Config {
        peer,
        ..Config::default()
    })
    .unwrap();
    let params = Parameters {
        decompression_memory_size: dms,
        state_memory_size: sms,
        ..Parameters::default()
    };
    let mut d = Decompressor::new(params).unwrap();
    let mut states = StateHandler::with_dictionaries();
    states.open_compartment(CompartmentId(1), sms);
    let mut out = Vec::new();
    for m in msgs {
        let mut wire = Vec::new();
        let r = c.compress(m, &mut wire);
        if r.kind == Kind::Plain {
            continue;
        }
        let got = d.decompress(&wire, Transport::Message, &states).unwrap();
        assert_eq!(&got.output, m);
        states.commit(CompartmentId(1), &got).unwrap();
        if let Some(item) = got.requested_feedback.and_then(|f| f.item) {
            c.on_feedback_item(&item);
        }
        out.push((wire, m.clone()));
    }
    out
}

fn check_with_tshark(name: &str, sent: &[(Vec<u8>, Vec<u8>)]) {
    let payloads: Vec<Vec<u8>> = sent.iter().map(|(w, _)| w.clone()).collect();
    let path = std::env::temp_dir().join(format!("h9-compress-{name}-{}.pcap", std::process::id()));
    pcap::write(&path, pcap::LINKTYPE_ETHERNET, &frames(&payloads));
    let got = tshark::sigcomp_decompressed(&path, &[]);
    std::fs::remove_file(&path).ok();
    assert_eq!(got.len(), sent.len(), "{name}: frame count");
    for (i, ((wire, orig), g)) in sent.iter().zip(&got).enumerate() {
        let g = g.as_ref().unwrap_or_else(|| {
            panic!(
                "{name}: frame {} ({} bytes) not decompressed by tshark",
                i + 1,
                wire.len()
            )
        });
        assert_eq!(g, orig, "{name}: frame {} differs", i + 1);
    }
}

#[test]
fn tshark_decompresses_first_messages() {
    if !testkit::require("tshark_decompresses_first_messages", &[Peer::Tshark]) {
        return;
    }
    let msgs = flow();
    let mut sent = Vec::new();
    for m in &msgs {
        sent.extend(compress_flow(std::slice::from_ref(m), 8192, 8192));
    }
    // Messages under ~530 bytes go plain: with the 271-byte upload they
    // would cost more than 3 bytes over the original.
    assert!(
        sent.len() * 5 >= msgs.len() * 4,
        "most first messages are compressed: {} of {}",
        sent.len(),
        msgs.len()
    );
    check_with_tshark("cold", &sent);
}

#[test]
fn tshark_decompresses_a_stateful_flow() {
    if !testkit::require("tshark_decompresses_a_stateful_flow", &[Peer::Tshark]) {
        return;
    }
    for (dms, sms) in [(8192, 8192), (8192, 4096), (4096, 4096)] {
        let sent = compress_flow(&flow(), dms, sms);
        assert!(
            sent.len() + 8 >= flow().len(),
            "{dms}/{sms}: {} compressed",
            sent.len()
        );
        check_with_tshark(&format!("flow-{dms}-{sms}"), &sent);
    }
}
