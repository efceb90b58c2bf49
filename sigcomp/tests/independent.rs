//! Decompressing messages made by two independent compressors (Doubango
//! tinySigComp and Open SigComp), replayed per compartment in order, as
//! `vectors/sigcomp/independent/README.md` describes: outputs must equal
//! the original SIP files and the cycle counts must equal tshark's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sigcomp::{CompartmentId, Decompressor, Parameters, Reason, StateHandler, Transport};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/independent")
}

const SETS: [(&str, u32, u32, u16); 4] = [
    ("tinysigcomp-8192-8192-64", 8192, 8192, 64),
    ("tinysigcomp-4096-4096-16", 4096, 4096, 16),
    ("opensigcomp-8192-8192-64", 8192, 8192, 64),
    ("opensigcomp-4096-4096-16", 4096, 4096, 16),
];

struct Row {
    stream: String,
    file: String,
    compartment: String,
    original: String,
    cycles: u64,
}

fn manifest(set: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(root().join(set).join("manifest.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (cs, cf, cc, co, cy) = (
        col("stream"),
        col("file"),
        col("compartment"),
        col("original"),
        col("udvm_cycles"),
    );
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row {
                stream: f[cs].to_string(),
                file: f[cf].to_string(),
                compartment: f[cc].to_string(),
                original: f[co].to_string(),
                cycles: f[cy].parse().unwrap(),
            }
        })
        .collect()
}

#[test]
fn independent_compressors_decompress_exactly() {
    let mut checked = 0;
    for (set, dms, sms, cpb) in SETS {
        let params = Parameters {
            decompression_memory_size: dms,
            state_memory_size: sms,
            cycles_per_bit: cpb,
            version: 2,
        };
        let mut d = Decompressor::new(params).unwrap();
        let rows = manifest(set);
        // One state handler per compartment replay; cold messages each fresh.
        let mut handlers: BTreeMap<String, StateHandler> = BTreeMap::new();
        for row in &rows {
            let msg = std::fs::read(root().join(&row.file)).unwrap();
            let original = std::fs::read(root().join(&row.original)).unwrap();
            let states = handlers.entry(row.compartment.clone()).or_insert_with(|| {
                let mut h = StateHandler::with_dictionaries();
                h.open_compartment(CompartmentId(0), sms);
                h
            });
            let expect_segfault = set == "tinysigcomp-4096-4096-16"
                && row.stream == "cold"
                && (row.file.contains("/006-") || row.file.contains("/007-"));
            match d.decompress(&msg, Transport::Message, states) {
                Ok(out) => {
                    assert!(
                        !expect_segfault,
                        "{}: README says SEGFAULT at DMS 4096",
                        row.file
                    );
                    assert_eq!(
                        out.output, original,
                        "{}: output differs from {}",
                        row.file, row.original
                    );
                    assert_eq!(
                        out.cycles, row.cycles,
                        "{}: cycles differ from tshark's",
                        row.file
                    );
                    states.commit(CompartmentId(0), &out).unwrap();
                }
                Err(f) => {
                    assert!(expect_segfault, "{}: {f}", row.file);
                    assert_eq!(f.reason, Reason::Segfault, "{}", row.file);
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 168);
}

#[test]
fn failing_cold_messages_decompress_with_more_memory() {
    // README: with DMS 8192 the two 4096 failures decompress exactly.
    let set = "tinysigcomp-4096-4096-16";
    let params = Parameters {
        decompression_memory_size: 8192,
        state_memory_size: 4096,
        cycles_per_bit: 16,
        version: 2,
    };
    let mut d = Decompressor::new(params).unwrap();
    for row in manifest(set).iter().filter(|r| r.stream == "cold") {
        let msg = std::fs::read(root().join(&row.file)).unwrap();
        let original = std::fs::read(root().join(&row.original)).unwrap();
        let states = StateHandler::with_dictionaries();
        let out = d.decompress(&msg, Transport::Message, &states).unwrap();
        assert_eq!(out.output, original, "{}", row.file);
    }
}
