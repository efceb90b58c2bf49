//! The codec never panics: on arbitrary bytes, and on RFC 4475 and corpus
//! messages mutated at random (bytes flipped, SIP separators inserted,
//! ranges deleted or repeated). Whatever parses is emitted back byte-exact
//! and parses again; every typed accessor and the judge run on it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use gm::sip::check::{self, Policy};
use gm::sip::{HeaderName, Message, torture};
use proptest::prelude::*;

fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../vectors");
        let mut out = Vec::new();
        for d in ["sip-torture", "sip-corpus"] {
            let mut files: Vec<_> = fs::read_dir(root.join(d))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "dat" || x == "sip"))
                .collect();
            files.sort();
            out.extend(files.iter().map(|p| fs::read(p).unwrap()));
        }
        assert_eq!(out.len(), 58);
        out
    })
}

/// Every accessor, the checks and the judge; the emission invariants.
fn exercise(data: &[u8]) {
    let _ = torture::judge(data, &Policy::GM);
    let skip = data.chunks(2).take_while(|c| *c == b"\r\n").count() * 2;
    if let Ok((m, end)) = Message::parse_datagram(data) {
        let out = m.to_bytes();
        assert_eq!(out, &data[skip..end]);
        assert_eq!(m.len(), out.len());
        let again = Message::parse(&out).expect("emitted message parses");
        assert_eq!(again.to_bytes(), out);
        touch(&m);
    }
    if let Ok(Some((m, used))) = Message::parse_stream(data, 1 << 16) {
        assert!(used <= data.len());
        assert_eq!(m.to_bytes(), &data[skip..used]);
    }
}

fn touch(m: &Message<'_>) {
    let _ = (
        m.method(),
        m.request_uri(),
        m.status(),
        m.reason(),
        m.version(),
        m.body(),
    );
    let _ = (
        m.vias(),
        m.top_via(),
        m.from(),
        m.to(),
        m.call_id(),
        m.cseq(),
    );
    let _ = (m.max_forwards(), m.expires(), m.min_expires(), m.contacts());
    let _ = (m.routes(), m.record_routes(), m.service_routes(), m.paths());
    let _ = (
        m.p_associated_uris(),
        m.p_preferred_identities(),
        m.p_asserted_identities(),
    );
    for k in [
        HeaderName::WwwAuthenticate,
        HeaderName::ProxyAuthenticate,
        HeaderName::Authorization,
        HeaderName::ProxyAuthorization,
    ] {
        if let Ok(a) = m.auth(k) {
            for a in a {
                let _ = (
                    a.realm(),
                    a.nonce(),
                    a.algorithm(),
                    a.qop(),
                    a.auts(),
                    a.response(),
                    a.to_string(),
                );
            }
        }
    }
    for k in [
        HeaderName::SecurityClient,
        HeaderName::SecurityServer,
        HeaderName::SecurityVerify,
    ] {
        if let Ok(s) = m.security(k) {
            let _ = s.iter().map(ToString::to_string).count();
        }
    }
    for k in [
        HeaderName::Require,
        HeaderName::ProxyRequire,
        HeaderName::Supported,
    ] {
        let _ = m.option_tags(k);
    }
    let _ = (
        m.event(),
        m.subscription_state(),
        m.sip_etag(),
        m.sip_if_match(),
    );
    let _ = (
        m.content_type(),
        m.content_length(),
        m.accept(),
        m.validate(),
    );
    if let Ok(Some(gm::sip::header::Contacts::List(c))) = m.contacts() {
        for a in c {
            let _ = (
                a.expires(),
                a.q(),
                a.sip_instance(),
                a.feature_tags().count(),
                a.display_name(),
                a.to_string(),
            );
            if let Some(u) = a.uri.sip() {
                let _ = (u.user_bytes(), u.header_fields().count());
            }
        }
    }
    if let Ok(v) = m.vias() {
        let _ = v.iter().map(ToString::to_string).count();
    }
    if m.is_request() {
        let _ = check::request(m, &Policy::GM);
    } else {
        let _ = check::response(m);
    }
}

/// Bytes a mutation inserts: the separators SIP parsers trip on.
const INTERESTING: &[u8] = b"\r\n \t:;,=\"<>\\%@?/[]*\x00\xff\xc3";

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Repeat(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<usize>(), proptest::sample::select(INTERESTING))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), 1usize..40).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), 1usize..40).prop_map(|(p, n)| Mutation::Repeat(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut d: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let len = d.len().max(1);
        match *m {
            Mutation::Flip(p, b) => {
                if !d.is_empty() {
                    d[p % len] ^= b | 1;
                }
            }
            Mutation::Insert(p, b) => d.insert(p % (d.len() + 1), b),
            Mutation::Delete(p, n) => {
                let s = p % len;
                let e = (s + n).min(d.len());
                d.drain(s.min(e)..e);
            }
            Mutation::Repeat(p, n) => {
                let s = p % len;
                let e = (s + n).min(d.len());
                let r: Vec<u8> = d[s.min(e)..e].to_vec();
                d.splice(e..e, r);
            }
            Mutation::Truncate(p) => d.truncate(p % len),
        }
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(&data);
    }

    #[test]
    fn sip_shaped_bytes(data in proptest::collection::vec(proptest::sample::select(
        b"SIP/2.0 INVITE sip:a@b;lr <>\r\n\r\nVia: v: SIP/2.0/UDP h;branch=z9hG4bK,From: t:\"x\\\" 200 OK l: 1 0 ;tag=1 Contact: * ipsec-3gpp;spi-c=1 Digest a=b,".to_vec()), 0..400)) {
        exercise(&data);
    }

    #[test]
    fn mutated_messages(seed in 0usize..58, muts in proptest::collection::vec(mutation(), 1..6)) {
        let data = apply(seeds()[seed].clone(), &muts);
        exercise(&data);
    }
}

#[test]
fn every_seed_as_is() {
    for s in seeds() {
        exercise(s);
    }
}
