//! RFC 4475: every torture message of `vectors/sip-torture/` gets the
//! verdict `verdicts.txt` says the RFC gives it, and every message that
//! parses is emitted back byte for byte (less the junk after a datagram's
//! body, RFC 3261 §18.3).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::PathBuf;

use gm::sip::check::Policy;
use gm::sip::torture::{self, Verdict};
use gm::sip::{HeaderName, Message};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vectors/sip-torture")
}

fn expectations() -> Vec<torture::Expectation> {
    let text = fs::read_to_string(dir().join("verdicts.txt")).unwrap();
    torture::parse_expectations(&text).unwrap()
}

#[test]
fn every_message_gets_the_rfc_verdict() {
    let exp = expectations();
    assert_eq!(exp.len(), 49, "RFC 4475 section 3 has 49 messages");
    let mut wrong = Vec::new();
    for e in &exp {
        let bytes = fs::read(dir().join(format!("{}.dat", e.name))).unwrap();
        let v = torture::judge(&bytes, &Policy::GM);
        if !v.matches(e) {
            wrong.push(format!(
                "{} ({}): expected {}, got {} ({})",
                e.name,
                e.section,
                e.verdict,
                v.short(),
                v.reason().unwrap_or_default()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_message_file_has_a_verdict() {
    let exp = expectations();
    for f in fs::read_dir(dir()).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|x| x == "dat") {
            let name = p.file_stem().unwrap().to_string_lossy();
            assert!(
                exp.iter().any(|e| e.name == name),
                "{name}.dat has no verdict"
            );
        }
    }
}

#[test]
fn parsed_messages_are_emitted_byte_exact() {
    let mut n = 0;
    for e in expectations() {
        let bytes = fs::read(dir().join(format!("{}.dat", e.name))).unwrap();
        if let Ok((m, end)) = Message::parse_datagram(&bytes) {
            assert_eq!(m.to_bytes(), &bytes[..end], "{}", e.name);
            assert_eq!(m.len(), end, "{}", e.name);
            n += 1;
        }
    }
    assert_eq!(n, 40, "messages that frame");
}

#[test]
fn typed_values_of_the_tortuous_ones() {
    let read = |n: &str| fs::read(dir().join(format!("{n}.dat"))).unwrap();
    // 3.1.1.1
    let b = read("wsinv");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.cseq().unwrap().seq, 9);
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[2].branch, Some("z9hG4bK30239"));
    assert_eq!(
        m.from().unwrap().display_name().unwrap(),
        "J Rosenberg \\\""
    );
    assert_eq!(m.to().unwrap().tag(), Some("1918181833n"));
    assert_eq!(m.header("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
    assert_eq!(m.header("Subject"), Some(""));
    assert_eq!(m.body().len(), 150);
    // 3.1.1.2
    let b = read("intmeth");
    let m = Message::parse(&b).unwrap();
    assert_eq!(
        m.method().unwrap().as_str(),
        "!interesting-Method0123456789_*+`.%indeed'~"
    );
    assert_eq!(
        m.to().unwrap().display_name().unwrap(),
        "BEL:\u{7} NUL:\0 DEL:\u{7f}"
    );
    assert_eq!(m.from().unwrap().tag(), Some("_token~1'+`*%!-."));
    // 3.1.1.4: the NUL stays in the user part.
    let b = read("escnull");
    let m = Message::parse(&b).unwrap();
    let to = m.to().unwrap();
    assert_eq!(
        &*to.uri.sip().unwrap().user_bytes().unwrap(),
        b"null-\0-null"
    );
    // 3.1.1.5: two Contacts, not three.
    let b = read("esc02");
    let m = Message::parse(&b).unwrap();
    let Some(gm::sip::header::Contacts::List(c)) = m.contacts().unwrap() else {
        panic!()
    };
    assert_eq!(c.len(), 2);
    // 3.1.1.7: 34 Via values, long parameters.
    let b = read("longreq");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.vias().unwrap().len(), 34);
    assert_eq!(m.from().unwrap().tag().unwrap().len(), 2 + 150 + 3);
    // 3.1.1.8: the INVITE after the REGISTER is junk.
    let b = read("dblreq");
    let (m, end) = Message::parse_datagram(&b).unwrap();
    assert_eq!(m.method().unwrap().as_str(), "REGISTER");
    assert!(b[end..].starts_with(b"\r\nINVITE"));
    // 3.1.1.11: a binary body with NULs.
    let b = read("mpart01");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.body().len(), 553);
    assert!(m.content_type().unwrap().unwrap().is("multipart", "mixed"));
    // 3.4.1: no Content-Length: the body is the rest of the datagram.
    let b = read("inv2543");
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.body().len(), 105);
    assert_eq!(m.rows(HeaderName::ContentLength).count(), 0);
}

#[test]
fn verdicts_carry_reasons() {
    let b = fs::read(dir().join("badinv01.dat")).unwrap();
    let Verdict::Reject(e) = torture::judge(&b, &Policy::GM) else {
        panic!()
    };
    assert_eq!(e.element(), "Via");
    assert_eq!(e.status(), 400);
    let b = fs::read(dir().join("bext01.dat")).unwrap();
    let Verdict::Answer(r) = torture::judge(&b, &Policy::GM) else {
        panic!()
    };
    assert!(r.why.contains("nothingSupportsThis"), "{}", r.why);
}
