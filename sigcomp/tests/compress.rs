//! Our compressor against our UDVM: single messages, flows with feedback,
//! loss and reordering (proptest), the never-worse-than-plain rule.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use sigcomp::compress::{Compressor, Config, Kind, bytecode};
use sigcomp::{CompartmentId, Decompressor, Parameters, StateHandler, Transport};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/independent/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// The receiving endpoint: decompressor + state handler, committing each
/// message and handing back the requested feedback item.
struct Peer {
    d: Decompressor,
    states: StateHandler,
    cid: CompartmentId,
}

impl Peer {
    fn new(dms: u32, sms: u32) -> Peer {
        let params = Parameters {
            decompression_memory_size: dms,
            state_memory_size: sms,
            ..Parameters::default()
        };
        let mut states = StateHandler::with_dictionaries();
        states.open_compartment(CompartmentId(7), sms);
        Peer {
            d: Decompressor::new(params).unwrap(),
            states,
            cid: CompartmentId(7),
        }
    }

    /// Returns the output and the requested feedback item.
    fn receive(&mut self, wire: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
        if !sigcomp::message::is_sigcomp(wire) {
            return (wire.to_vec(), None);
        }
        let out = self
            .d
            .decompress(wire, Transport::Message, &self.states)
            .unwrap_or_else(|f| panic!("{f:?}"));
        self.states.commit(self.cid, &out).unwrap();
        let item = out.requested_feedback.as_ref().and_then(|r| r.item.clone());
        (out.output, item)
    }
}

#[test]
fn first_messages_decompress() {
    for (name, msg) in corpus() {
        let mut c = Compressor::new(Config::default()).unwrap();
        let mut wire = Vec::new();
        let r = c.compress(&msg, &mut wire);
        let mut p = Peer::new(8192, 8192);
        let (out, _) = p.receive(&wire);
        assert_eq!(out, msg, "{name}");
        println!("{name}: {} -> {} {:?}", msg.len(), r.len, r.kind);
    }
}

#[test]
fn flow_with_feedback_uses_states() {
    let mut c = Compressor::new(Config::default()).unwrap();
    let mut p = Peer::new(8192, 8192);
    let mut wire = Vec::new();
    let (mut orig, mut comp) = (0, 0);
    for round in 0..2 {
        for (name, msg) in corpus() {
            let r = c.compress(&msg, &mut wire);
            let (out, item) = p.receive(&wire);
            assert_eq!(out, msg, "{name}");
            if let Some(i) = item {
                c.on_feedback_item(&i);
            }
            println!(
                "{round} {name}: {} -> {} bc={} states={}",
                msg.len(),
                r.len,
                r.carried_bytecode,
                r.states_used
            );
            if round == 1 {
                orig += msg.len();
                comp += r.len;
                assert!(!r.carried_bytecode);
                assert_eq!(r.kind, Kind::SigComp);
            }
        }
    }
    println!("steady {comp}/{orig}");
}

#[test]
fn local_bytecode_is_never_uploaded() {
    let mut c = Compressor::new(Config::default()).unwrap();
    let announce = Parameters::default()
        .announcement(&[bytecode::state_id()])
        .unwrap();
    c.on_peer_parameters(&announce);
    let mut p = Peer::new(8192, 8192);
    p.states.add_local(bytecode::state());
    let mut wire = Vec::new();
    for (name, msg) in corpus() {
        let r = c.compress(&msg, &mut wire);
        assert!(!r.carried_bytecode);
        let (out, item) = p.receive(&wire);
        assert_eq!(out, msg, "{name}");
        if let Some(i) = item {
            c.on_feedback_item(&i);
        }
    }
}
