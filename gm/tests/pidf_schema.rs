//! What `gm::presence` writes is valid PIDF for an implementation nobody
//! here wrote: libxml2's `xmllint` validates our documents against the RFC
//! 3863 §4.4 schema (`gm/tests/data/pidf.xsd`, extracted from the RFC),
//! and refuses a document we broke on purpose (so the check can fail).
//! Our parser reads back every document the schema accepts.
//!
//! Needs `xmllint` (Debian libxml2-utils, installed by scripts/test).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use gm::presence::{Basic, Contact, Note, Pidf, Tuple};
use testkit::{Peer, TempDir, require};

fn documents() -> Vec<Pidf> {
    let full = Tuple {
        id: "ue-1".into(),
        basic: Some(Basic::Open),
        contact: Some(Contact {
            // Not an IPv6 reference: libxml2 checks xs:anyURI by RFC 2396,
            // which has no `[...]` host, and refuses such a contact.
            uri: "sip:alice@192.0.2.1:5062;transport=udp".into(),
            priority: Some("0.8".into()),
        }),
        notes: vec![
            Note {
                text: "at <work> & \"busy\"".into(),
                lang: Some("en".into()),
            },
            Note {
                text: "au travail, occupée".into(),
                lang: Some("fr".into()),
            },
        ],
        timestamp: Some("2026-12-05T03:40:00Z".into()),
    };
    vec![
        Pidf {
            entity: "pres:alice@ims.example.org".into(),
            tuples: vec![],
            notes: vec![],
        },
        Pidf {
            entity: "sip:alice@ims.example.org".into(),
            tuples: vec![Tuple::new("t1", Basic::Closed)],
            notes: vec![Note {
                text: "gone".into(),
                lang: None,
            }],
        },
        Pidf {
            entity: "sip:bob@ims.example.org".into(),
            tuples: vec![
                full,
                Tuple {
                    basic: None,
                    ..Tuple::new("t2", Basic::Open).with_contact("tel:+33612345678")
                },
                Tuple::new("t3", Basic::Open).with_note(""),
            ],
            notes: vec![],
        },
    ]
}

fn xmllint(schema: &Path, file: &Path) -> (bool, String) {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn our_pidf_validates_against_the_rfc_3863_schema() {
    if !require(
        "our_pidf_validates_against_the_rfc_3863_schema",
        &[Peer::Program("xmllint")],
    ) {
        return;
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pidf.xsd");
    let dir = TempDir::new("pidf-schema");
    for (i, doc) in documents().iter().enumerate() {
        let xml = doc.to_xml();
        let file = dir.path(&format!("doc{i}.xml"));
        std::fs::write(&file, &xml).unwrap();
        let (ok, err) = xmllint(&schema, &file);
        assert!(ok, "document {i} invalid: {err}\n{xml}");
        assert_eq!(&Pidf::parse(&xml).unwrap(), doc);
    }
    // The check can fail: a basic status the schema does not allow.
    let bad = documents()[1].to_xml().replace(">closed<", ">away<");
    let file = dir.path("bad.xml");
    std::fs::write(&file, &bad).unwrap();
    let (ok, err) = xmllint(&schema, &file);
    assert!(!ok, "xmllint accepted <basic>away</basic>");
    assert!(err.contains("basic"), "{err}");
    assert!(Pidf::parse(&bad).is_err());
}
