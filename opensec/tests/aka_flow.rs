//! A whole HTTP digest AKA exchange (RFC 3310 §4, RFC 4169 §3) between a
//! network side and a UE, in memory: challenge, response, resynchronisation,
//! and the ESP keys both sides derive (TS 33.203 Annex I).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap

use opensec::aka::{self, AkaVersion};
use opensec::digest::{DigestAlgorithm, DigestParams, try_response};
use opensec::milenage::Milenage;
use opensec::{AuthAlgorithm, Cipher, EncAlgorithm, Error, Integrity, ims};

fn subscriber() -> Milenage {
    // TS 35.208 Test Set 3 K and OP.
    let k: [u8; 16] = hex::decode("fec86ba6eb707ed08905757b1bb44b8f")
        .unwrap()
        .try_into()
        .unwrap();
    let op: [u8; 16] = hex::decode("dbc59adcb6f9a0ef735477b7fadf8374")
        .unwrap()
        .try_into()
        .unwrap();
    Milenage::with_op(&k, &op)
}

fn params<'a>(password: &'a [u8], nonce: &'a str, algorithm: &str) -> DigestParams<'a> {
    let (_, alg) = DigestAlgorithm::parse(algorithm).unwrap();
    DigestParams {
        username: "user1_private@home1.net",
        realm: "home1.net",
        password,
        method: "REGISTER",
        uri: "sip:home1.net",
        nonce,
        nc: Some("00000001"),
        cnonce: Some("0a4f113b"),
        qop: Some("auth"),
        algorithm: alg,
        body: b"",
    }
}

#[test]
fn challenge_response_for_both_aka_versions() {
    let hss = subscriber();
    let usim = subscriber();
    let rand = [0x42u8; 16];
    for (algorithm, version) in [("AKAv1-MD5", AkaVersion::V1), ("AKAv2-MD5", AkaVersion::V2)] {
        // Network: vector and nonce (RFC 3310 §3.2).
        let av = aka::auth_vector(&hss, &rand, 0x20, &[0x80, 0x00]).unwrap();
        let nonce = aka::build_nonce(&av.rand, &av.autn, b"");
        let xpw = aka::password(version, &av.xres, &av.ik, &av.ck);
        let expected = try_response(&params(xpw.as_bytes(), &nonce, algorithm)).unwrap();

        // UE: parse, verify AUTN (last accepted SQN 0x1f), answer.
        let (parsed_version, _) = DigestAlgorithm::parse(algorithm).unwrap();
        assert_eq!(parsed_version, Some(version));
        let n = aka::parse_nonce(&nonce).unwrap();
        let ok = aka::verify_autn(&usim, &n.rand, &n.autn, 0x1f).unwrap();
        assert_eq!(ok.sqn, 0x20);
        let pw = aka::password(version, &ok.res, &ok.ik, &ok.ck);
        let response = try_response(&params(pw.as_bytes(), &nonce, algorithm)).unwrap();
        assert_eq!(response, expected, "{algorithm}");

        // A wrong RES gives another response.
        let mut bad_res = ok.res;
        bad_res[0] ^= 1;
        let bad = aka::password(version, &bad_res, &ok.ik, &ok.ck);
        assert_ne!(
            try_response(&params(bad.as_bytes(), &nonce, algorithm)).unwrap(),
            expected
        );

        // Both ends derive the same ESP keys, usable as such.
        let ue = ims::esp_keys(
            EncAlgorithm::TripleDesCbc,
            AuthAlgorithm::HmacSha1_96,
            &ok.ck,
            &ok.ik,
        )
        .unwrap();
        let pcscf = ims::esp_keys(
            EncAlgorithm::TripleDesCbc,
            AuthAlgorithm::HmacSha1_96,
            &av.ck,
            &av.ik,
        )
        .unwrap();
        assert_eq!(ue, pcscf);
        Cipher::new(ue.ealg, ue.enc_key.as_bytes()).unwrap();
        Integrity::new(ue.alg, ue.auth_key.as_bytes()).unwrap();
        EncAlgorithm::TripleDesCbc
            .check_weak_key(ue.enc_key.as_bytes())
            .unwrap();
    }
}

#[test]
fn resynchronisation_flow() {
    let hss = subscriber();
    let usim = subscriber();
    let rand = [0x17u8; 16];
    // The network is behind: it sends SQN 5 while the USIM has accepted 900.
    let av = aka::auth_vector(&hss, &rand, 5, &[0x80, 0x00]).unwrap();
    let auts = match aka::verify_autn(&usim, &rand, &av.autn, 900) {
        Err(Error::SyncFailure { sqn, sqn_ms, auts }) => {
            assert_eq!((sqn, sqn_ms), (5, 900));
            auts
        }
        other => panic!("expected a synchronisation failure, got {other:?}"),
    };
    // RFC 3310 §3.4: auts is base64, and the response uses an empty password.
    let auts_b64 = opensec::base64_encode(&auts);
    let nonce = aka::build_nonce(&av.rand, &av.autn, b"");
    let _ = try_response(&params(b"", &nonce, "AKAv1-MD5")).unwrap();

    // Network: recover SQN_MS and issue a fresh vector above it.
    let auts: [u8; 14] = opensec::base64_decode(&auts_b64)
        .unwrap()
        .try_into()
        .unwrap();
    let sqn_ms = aka::verify_auts(&hss, &rand, &auts).unwrap();
    assert_eq!(sqn_ms, 900);
    let rand2 = [0x18u8; 16];
    let av2 = aka::auth_vector(&hss, &rand2, sqn_ms + 1, &[0x80, 0x00]).unwrap();
    let ok = aka::verify_autn(&usim, &rand2, &av2.autn, 900).unwrap();
    assert_eq!(ok.sqn, 901);
    assert_eq!(ok.res, av2.xres);

    // A forged challenge (other subscriber's key) is a MAC failure, not a
    // synchronisation failure: the UE must not send AUTS for it.
    let other = Milenage::with_opc(&[1; 16], &[2; 16]);
    let forged = aka::auth_vector(&other, &rand2, 901, &[0x80, 0x00]).unwrap();
    assert_eq!(
        aka::verify_autn(&usim, &rand2, &forged.autn, 900).unwrap_err(),
        Error::MacFailure
    );
}
