//! What `gm::regevent` writes is valid reginfo (RFC 3680) for libxml2's
//! `xmllint`, checked against the RFC's §5.4 schema
//! (`gm/tests/data/reginfo.xsd`, extracted from the RFC), which also
//! refuses a document we broke on purpose. Our parser reads back every
//! document the schema accepts.
//!
//! Needs `xmllint` (Debian libxml2-utils, installed by scripts/test).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use gm::regevent::{ContactEvent, ContactState, RegContact, RegState, Reginfo, Registration};
use testkit::{Peer, TempDir, require};

fn contact(id: &str, state: ContactState, event: ContactEvent) -> RegContact {
    RegContact {
        id: id.into(),
        state,
        event,
        uri: format!("sip:alice@192.0.2.{id}:5062"),
        expires: matches!(event, ContactEvent::Shortened | ContactEvent::Registered).then_some(600),
        retry_after: (event == ContactEvent::Probation).then_some(120),
        duration_registered: Some(30),
        unknown_params: vec![
            (
                "+sip.instance".into(),
                "\"<urn:gsma:imei:35209900-176148-0>\"".into(),
            ),
            ("+g.3gpp.smsip".into(), String::new()),
        ],
    }
}

fn documents() -> Vec<Reginfo> {
    use ContactEvent::*;
    use ContactState::*;
    vec![
        Reginfo {
            version: 0,
            full: true,
            registrations: vec![],
        },
        Reginfo {
            version: 1,
            full: true,
            registrations: vec![Registration {
                aor: "sip:alice@ims.example.org".into(),
                id: "a7".into(),
                state: RegState::Active,
                contacts: vec![
                    contact("1", Active, Registered),
                    contact("2", Active, Shortened),
                ],
            }],
        },
        Reginfo {
            version: 2,
            full: false,
            registrations: vec![
                Registration {
                    aor: "sip:alice@ims.example.org".into(),
                    id: "a7".into(),
                    state: RegState::Terminated,
                    contacts: vec![
                        contact("3", Terminated, Deactivated),
                        contact("4", Terminated, Probation),
                        contact("5", Terminated, Rejected),
                        contact("6", Terminated, Unregistered),
                        contact("7", Terminated, Expired),
                    ],
                },
                Registration {
                    aor: "tel:+33612345678".into(),
                    id: "a8".into(),
                    state: RegState::Init,
                    contacts: vec![
                        contact("8", Active, Created),
                        contact("9", Active, Refreshed),
                    ],
                },
            ],
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
fn our_reginfo_validates_against_the_rfc_3680_schema() {
    if !require(
        "our_reginfo_validates_against_the_rfc_3680_schema",
        &[Peer::Program("xmllint")],
    ) {
        return;
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reginfo.xsd");
    let dir = TempDir::new("reginfo-schema");
    for (i, doc) in documents().iter().enumerate() {
        let xml = doc.to_xml();
        let file = dir.path(&format!("doc{i}.xml"));
        std::fs::write(&file, &xml).unwrap();
        let (ok, err) = xmllint(&schema, &file);
        assert!(ok, "document {i} invalid: {err}\n{xml}");
        assert_eq!(&Reginfo::parse(&xml).unwrap(), doc);
    }
    let bad = documents()[1]
        .to_xml()
        .replace("event=\"registered\"", "event=\"gone\"");
    let file = dir.path("bad.xml");
    std::fs::write(&file, &bad).unwrap();
    let (ok, err) = xmllint(&schema, &file);
    assert!(!ok, "xmllint accepted event=\"gone\"");
    assert!(err.contains("event"), "{err}");
    assert!(Reginfo::parse(&bad).is_err());
}
