//! MILENAGE against every published test set (TS 35.208 §4.3, TS 55.205) and
//! against an independent implementation (the `milenage` crate).
//!
//! The data files are copies of `shared/refs/data/` (see their headers for
//! where the bytes come from).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap

use std::collections::BTreeMap;

use opensec::milenage::Milenage;

const TS35208: &str = include_str!("data/milenage-ts35208-test-sets.txt");
const TS55205: &str = include_str!("data/gsm-milenage-ts55205-test-sets.txt");

/// Parses `[Test Set N]` sections of `key = hex` lines.
fn sections(text: &str) -> Vec<(String, BTreeMap<String, Vec<u8>>)> {
    let mut out: Vec<(String, BTreeMap<String, Vec<u8>>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.split(']').next().unwrap().to_string();
            out.push((name, BTreeMap::new()));
            continue;
        }
        let (k, v) = line.split_once('=').expect("key = value");
        let v = hex::decode(v.trim()).unwrap_or_else(|e| panic!("{line}: {e}"));
        out.last_mut().unwrap().1.insert(k.trim().to_string(), v);
    }
    out
}

fn a<const N: usize>(m: &BTreeMap<String, Vec<u8>>, k: &str) -> [u8; N] {
    m.get(k)
        .unwrap_or_else(|| panic!("missing {k}"))
        .as_slice()
        .try_into()
        .unwrap_or_else(|_| panic!("{k} is not {N} bytes"))
}

#[test]
fn ts35208_all_test_sets() {
    let sets = sections(TS35208);
    assert_eq!(sets.len(), 20);
    for (name, s) in &sets {
        let k = a::<16>(s, "K");
        let rand = a::<16>(s, "RAND");
        let sqn = a::<6>(s, "SQN");
        let amf = a::<2>(s, "AMF");
        let m = Milenage::with_op(&k, &a(s, "OP"));
        assert_eq!(m.opc(), a::<16>(s, "OPc"), "{name} OPc");
        let m2 = Milenage::with_opc(&k, &a(s, "OPc"));
        assert_eq!(m2.f1(&rand, &sqn, &amf), a::<8>(s, "f1"), "{name} f1");
        assert_eq!(m.f1(&rand, &sqn, &amf), a::<8>(s, "f1"), "{name} f1");
        assert_eq!(m.f1_star(&rand, &sqn, &amf), a::<8>(s, "f1*"), "{name} f1*");
        let v = m.f2345(&rand);
        assert_eq!(v.res, a::<8>(s, "f2"), "{name} f2");
        assert_eq!(v.ck, a::<16>(s, "f3"), "{name} f3");
        assert_eq!(v.ik, a::<16>(s, "f4"), "{name} f4");
        assert_eq!(v.ak, a::<6>(s, "f5"), "{name} f5");
        assert_eq!(m.f5_star(&rand), a::<6>(s, "f5*"), "{name} f5*");
    }
}

#[test]
fn ts55205_all_gsm_test_sets() {
    let sets = sections(TS55205);
    assert_eq!(sets.len(), 19);
    for (name, s) in &sets {
        let m = Milenage::with_opc(&a(s, "Ki"), &a(s, "OPc"));
        let g = m.gsm(&a(s, "RAND"));
        assert_eq!(g.sres1, a::<4>(s, "SRES#1"), "{name} SRES#1");
        assert_eq!(g.sres2, a::<4>(s, "SRES#2"), "{name} SRES#2");
        assert_eq!(g.kc, a::<8>(s, "Kc"), "{name} Kc");
    }
}

/// Cross-check with the `milenage` crate (an implementation nobody here
/// wrote) on the 20 TS 35.208 inputs.
#[test]
fn ts35208_against_milenage_crate() {
    for (name, s) in sections(TS35208) {
        let k = a::<16>(&s, "K");
        let op = a::<16>(&s, "OP");
        let rand = a::<16>(&s, "RAND");
        let sqn = a::<6>(&s, "SQN");
        let amf = a::<2>(&s, "AMF");
        let ours = Milenage::with_op(&k, &op);
        let mut theirs = milenage::Milenage::new_with_op(k, op);
        assert_eq!(&ours.opc(), theirs.opc(), "{name} OPc");
        assert_eq!(
            ours.f1(&rand, &sqn, &amf),
            theirs.f1(&rand, &sqn, &amf),
            "{name} f1"
        );
        assert_eq!(
            ours.f1_star(&rand, &sqn, &amf),
            theirs.f1star(&rand, &sqn, &amf),
            "{name} f1*"
        );
        let (res, ck, ik, ak) = theirs.f2345(&rand);
        let v = ours.f2345(&rand);
        assert_eq!((v.res, v.ck, v.ik, v.ak), (res, ck, ik, ak), "{name} f2345");
        assert_eq!(ours.f5_star(&rand), theirs.f5star(&rand), "{name} f5*");
    }
}

/// Same cross-check on inputs derived from the test sets by flipping bytes,
/// so that agreement is not limited to the published values.
#[test]
fn derived_inputs_against_milenage_crate() {
    for (i, (_, s)) in sections(TS35208).into_iter().enumerate() {
        let mut k = a::<16>(&s, "K");
        let mut opc = a::<16>(&s, "OPc");
        let mut rand = a::<16>(&s, "RAND");
        k[i % 16] ^= 0xa5;
        opc[(i + 3) % 16] ^= 0x5a;
        rand[(i + 7) % 16] ^= 0xff;
        let sqn = [i as u8; 6];
        let amf = [0x80, i as u8];
        let ours = Milenage::with_opc(&k, &opc);
        let mut theirs = milenage::Milenage::new_with_opc(k, opc);
        assert_eq!(ours.f1(&rand, &sqn, &amf), theirs.f1(&rand, &sqn, &amf));
        assert_eq!(
            ours.f1_star(&rand, &sqn, &amf),
            theirs.f1star(&rand, &sqn, &amf)
        );
        let v = ours.f2345(&rand);
        assert_eq!((v.res, v.ck, v.ik, v.ak), theirs.f2345(&rand));
        assert_eq!(ours.f5_star(&rand), theirs.f5star(&rand));
    }
}
