//! SigComp on Gm as tshark sees it: a UE and a P-CSCF, each a
//! `gm::comp::Compression`, exchange the corpus' REGISTER/401 uncompressed
//! (no SAs yet), then, with the association open, the protected REGISTER,
//! its 200, a MESSAGE and its 200, each received "over the SAs" so its
//! states are saved. tshark's own UDVM decompresses every SigComp frame
//! of the capture to the exact SIP bytes, and the messages after the first
//! of each direction are smaller than the first (they use the states the
//! peer acknowledged).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use gm::comp::{Compression, Inbound};
use sigcomp::{EndpointConfig, Link};
use testkit::pcap::{self, Capture};
use testkit::{Peer, TempDir, packet, require, tshark};

fn corpus(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../vectors/sip-corpus")
        .join(name);
    std::fs::read(p).unwrap()
}

#[test]
fn tshark_decompresses_the_protected_exchange() {
    if !require(
        "tshark_decompresses_the_protected_exchange",
        &[Peer::Tshark],
    ) {
        return;
    }
    let cfg = EndpointConfig::default();
    let mut ue = Compression::new(cfg.clone()).unwrap();
    let mut pcscf = Compression::new(cfg).unwrap();
    // (from the UE?, message) in order.
    let flow = [
        (true, "01-register.sip"),
        (false, "02-401-aka.sip"),
        (true, "01-register.sip"),
        (false, "03-200-register.sip"),
        (true, "08-message.sip"),
        (false, "09-200-message.sip"),
        (true, "08-message.sip"),
    ];
    let mut frames = Vec::new();
    let mut originals = Vec::new();
    let mut sizes = Vec::new();
    let mut wire = Vec::new();
    for (i, (from_ue, name)) in flow.iter().enumerate() {
        if i == 2 {
            // The 401 set up the SAs: both sides open the association.
            ue.open("pcscf");
            pcscf.open("ue");
        }
        let msg = corpus(name);
        let (tx, rx, assoc_tx, assoc_rx) = if *from_ue {
            (&mut ue, &mut pcscf, "pcscf", "ue")
        } else {
            (&mut pcscf, &mut ue, "ue", "pcscf")
        };
        let out = tx
            .send(assoc_tx, &msg, Link::Datagram, i >= 2, &mut wire)
            .unwrap();
        assert_eq!(out.compressed, i >= 2, "{name}");
        let over_sas = (i >= 2).then_some(assoc_rx);
        match rx.receive(&wire, Link::Datagram, over_sas).unwrap() {
            Inbound::Message {
                bytes,
                compressed,
                trusted,
            } => {
                assert_eq!(bytes, msg);
                assert_eq!((compressed, trusted), (i >= 2, i >= 2), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
        let (src, dst) = if *from_ue {
            ("192.0.2.1", "192.0.2.2")
        } else {
            ("192.0.2.2", "192.0.2.1")
        };
        // Only the SigComp frames go to tshark (testkit's reader of its
        // hex dump counts frames by their "Frame (" header, which tshark
        // prints only for frames with a decompressed block).
        if i >= 2 {
            frames.push(packet::udp(src, 5555, dst, 5555, &wire));
            originals.push(Some(msg.clone()));
        }
        sizes.push((msg.len(), wire.len()));
    }
    // The second MESSAGE uses what the first left in both compartments.
    assert!(sizes[6].1 < sizes[4].1, "{sizes:?}");
    let dir = TempDir::new("gm-comp-tshark");
    let path = dir.path("gm.pcap");
    Capture::new(pcap::LINKTYPE_RAW, frames).write(&path);
    let got = tshark::sigcomp_decompressed(&path, &[]);
    assert_eq!(got.len(), originals.len());
    for (i, (g, want)) in got.iter().zip(&originals).enumerate() {
        assert_eq!(g, want, "frame {}", i + 1);
    }
    eprintln!("on the wire (original -> sent): {sizes:?}");
}
