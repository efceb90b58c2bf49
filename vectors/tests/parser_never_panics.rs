//! Arbitrary text never panics the parser (it returns a value or a typed
//! error), and a parsed file never panics the runner.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

const ALPHABET: &str = "[]=\"\\x0*+ \t\n#abcdef0123456789_-algorithmsource";

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = vectors::parse(&text);
    }

    #[test]
    fn format_like_text_never_panics(
        chars in proptest::collection::vec(proptest::sample::select(ALPHABET.chars().collect::<Vec<_>>()), 0..400)
    ) {
        let body: String = chars.into_iter().collect();
        for text in [body.clone(), format!("algorithm = md5\nsource = p\n[c]\n{body}")] {
            if let Ok(file) = vectors::parse(&text) {
                let _ = vectors::run(&file, "prop");
            }
        }
    }

    #[test]
    fn every_algorithm_survives_arbitrary_fields(
        alg in proptest::sample::select(vec!["md5", "sha1", "hmac-md5", "hmac-sha256", "aes-xcbc-mac",
            "aes-cmac", "des-cbc", "3des-cbc", "aes-cbc", "des-ecb", "3des-ecb", "aes-ecb", "null",
            "milenage", "gsm-milenage", "aka", "ims-esp-keys", "http-digest"]),
        fields in proptest::collection::vec(
            (proptest::sample::select(vec!["key", "data", "digest", "truncated", "mac", "iv",
                "plaintext", "ciphertext", "payload", "padding", "pad_length", "next_header",
                "ip_header", "esp_header", "k", "ki", "op", "opc", "rand", "sqn", "amf", "f1",
                "sres1", "username", "realm", "password", "method", "uri", "nonce", "qop",
                "response", "null_data", "f2", "f3", "f4", "f5", "f5_star", "sqn_ms_stale", "auts",
                "akav2_password", "ealg", "alg", "ck", "ik", "enc_key", "auth_key", "error"]),
             proptest::collection::vec(any::<u8>(), 0..40)),
            0..12),
    ) {
        let mut text = format!("algorithm = {alg}\nsource = p\n[c]\n");
        let mut seen = std::collections::HashSet::new();
        for (name, value) in fields {
            if seen.insert(name) {
                text.push_str(&format!("{name} = \"\" + 0x{}00\n", hex::encode(value)));
            }
        }
        let file = vectors::parse(&text).unwrap();
        let report = vectors::run(&file, "prop");
        prop_assert_eq!(report.cases.len(), 1);
    }
}
