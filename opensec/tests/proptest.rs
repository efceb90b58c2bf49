//! Round trips and "never panics on arbitrary input" for the public API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap

use opensec::aka;
use opensec::digest::{DigestAlgorithm, DigestParams, try_response};
use opensec::milenage::Milenage;
use opensec::{AuthAlgorithm, Cipher, EncAlgorithm, Integrity};
use proptest::prelude::*;

fn enc_alg() -> impl Strategy<Value = (EncAlgorithm, usize)> {
    prop_oneof![
        Just((EncAlgorithm::Null, 0)),
        Just((EncAlgorithm::DesCbc, 8)),
        Just((EncAlgorithm::TripleDesCbc, 24)),
        Just((EncAlgorithm::AesCbc, 16)),
        Just((EncAlgorithm::AesCbc, 24)),
        Just((EncAlgorithm::AesCbc, 32)),
    ]
}

proptest! {
    #[test]
    fn cbc_round_trip(
        (alg, key_len) in enc_alg(),
        key in proptest::collection::vec(any::<u8>(), 32),
        iv in proptest::collection::vec(any::<u8>(), 16),
        blocks in 0usize..40,
        seed in any::<u8>(),
    ) {
        let c = Cipher::new(alg, &key[..key_len]).unwrap();
        let iv = &iv[..c.iv_len()];
        let plain: Vec<u8> = (0..blocks * c.block_size()).map(|i| (i as u8) ^ seed).collect();
        let mut d = plain.clone();
        c.encrypt_cbc(iv, &mut d).unwrap();
        if alg != EncAlgorithm::Null && !plain.is_empty() {
            prop_assert_ne!(&d, &plain);
        }
        c.decrypt_cbc(iv, &mut d).unwrap();
        prop_assert_eq!(&d, &plain);
        c.encrypt_ecb(&mut d).unwrap();
        c.decrypt_ecb(&mut d).unwrap();
        prop_assert_eq!(&d, &plain);
    }

    #[test]
    fn cipher_bad_lengths_are_errors(
        (alg, _) in enc_alg(),
        key in proptest::collection::vec(any::<u8>(), 0..40),
        iv in proptest::collection::vec(any::<u8>(), 0..20),
        mut data in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        match Cipher::new(alg, &key) {
            Ok(c) => {
                let ok_len = iv.len() == c.iv_len() && data.len() % c.block_size() == 0;
                prop_assert_eq!(c.encrypt_cbc(&iv, &mut data).is_ok(), ok_len);
                prop_assert_eq!(c.decrypt_cbc(&iv, &mut data).is_ok(), ok_len);
                let _ = c.encrypt_ecb(&mut data);
            }
            Err(e) => prop_assert!(!alg.key_lengths().contains(&key.len()), "{}", e),
        }
    }

    #[test]
    fn mac_parts_equal_whole(
        alg_i in 0usize..6,
        data in proptest::collection::vec(any::<u8>(), 0..300),
        cut1 in any::<usize>(),
        cut2 in any::<usize>(),
        bad_icv in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let alg = AuthAlgorithm::ALL[alg_i];
        let key: Vec<u8> = (0..alg.key_lengths()[0] as u8).collect();
        let m = Integrity::new(alg, &key).unwrap();
        let a = cut1 % (data.len() + 1);
        let b = a + cut2 % (data.len() - a + 1);
        let mut whole = vec![0u8; m.icv_len()];
        let mut split = vec![0u8; m.icv_len() + 3];
        m.compute(&[&data], &mut whole).unwrap();
        m.compute(&[&data[..a], &data[a..b], &data[b..]], &mut split).unwrap();
        prop_assert_eq!(&whole[..], &split[..m.icv_len()]);
        prop_assert!(m.verify(&[&data[..a], &data[a..]], &whole));
        if bad_icv != whole {
            prop_assert!(!m.verify(&[&data], &bad_icv));
        }
    }

    #[test]
    fn names_never_panic(name in ".{0,20}", id in any::<u16>()) {
        let _ = EncAlgorithm::from_setkey_name(&name);
        let _ = EncAlgorithm::from_sec_agree_name(&name);
        let _ = AuthAlgorithm::from_setkey_name(&name);
        let _ = AuthAlgorithm::from_sec_agree_name(&name);
        let _ = DigestAlgorithm::parse(&name);
        if let Ok(a) = EncAlgorithm::from_iana(id) { prop_assert_eq!(a.iana(), id); }
        if let Ok(a) = AuthAlgorithm::from_iana(id) { prop_assert_eq!(a.iana(), id); }
    }

    #[test]
    fn base64_round_trip(data in proptest::collection::vec(any::<u8>(), 0..100), junk in ".{0,60}") {
        prop_assert_eq!(opensec::base64_decode(&opensec::base64_encode(&data)).unwrap(), data);
        let _ = opensec::base64_decode(&junk);
        let _ = aka::parse_nonce(&junk);
    }

    #[test]
    fn aka_never_panics_and_only_accepts_genuine_autn(
        k in any::<[u8; 16]>(),
        opc in any::<[u8; 16]>(),
        rand in any::<[u8; 16]>(),
        autn in any::<[u8; 16]>(),
        auts in any::<[u8; 14]>(),
        sqn in 1u64..=aka::SQN_MAX,
        sqn_ms in any::<u64>(),
    ) {
        let m = Milenage::with_opc(&k, &opc);
        // A random AUTN is (with overwhelming probability) a MAC failure.
        prop_assert_eq!(aka::verify_autn(&m, &rand, &autn, sqn_ms).unwrap_err(), opensec::Error::MacFailure);
        let _ = aka::verify_auts(&m, &rand, &auts);
        let good = aka::build_autn(&m, &rand, sqn, &[0x80, 0]).unwrap();
        match aka::verify_autn(&m, &rand, &good, sqn - 1) {
            Ok(r) => prop_assert_eq!(r.sqn, sqn),
            Err(e) => prop_assert!(false, "{}", e),
        }
        match aka::verify_autn(&m, &rand, &good, sqn) {
            Err(opensec::Error::SyncFailure { auts, .. }) => {
                prop_assert_eq!(aka::verify_auts(&m, &rand, &auts), Ok(sqn));
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn digest_never_panics(
        s in proptest::collection::vec(".{0,12}", 7),
        qop in prop_oneof![Just(None), Just(Some("auth")), Just(Some("auth-int")), Just(Some("x"))],
        nc in any::<bool>(),
        sess in any::<bool>(),
        body in proptest::collection::vec(any::<u8>(), 0..50),
    ) {
        let p = DigestParams {
            username: &s[0],
            realm: &s[1],
            password: s[2].as_bytes(),
            method: &s[3],
            uri: &s[4],
            nonce: &s[5],
            nc: nc.then_some("00000001"),
            cnonce: nc.then_some(s[6].as_str()),
            qop,
            algorithm: if sess { DigestAlgorithm::Md5Sess } else { DigestAlgorithm::Md5 },
            body: &body,
        };
        let lenient = opensec::digest::response(&p);
        prop_assert_eq!(lenient.len(), 32);
        if let Ok(strict) = try_response(&p) {
            prop_assert_eq!(strict, lenient);
        }
    }
}
