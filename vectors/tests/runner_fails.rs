//! The runner must be able to fail: deliberately corrupted in-memory vectors
//! are reported as failed, with the expected and computed values.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

fn run(text: &str) -> vectors::FileReport {
    vectors::run(&vectors::parse(text).unwrap(), "inline")
}

#[test]
fn wrong_digest_is_reported_with_expected_and_got() {
    // RFC 1321 A.5 "abc" with the last digit of the digest changed.
    let r = run(
        "algorithm = md5\nsource = corrupted\n[abc]\ndata = \"abc\"\n\
                 digest = 0x900150983cd24fb0d6963f7d28e17f73\n",
    );
    assert!(!r.ok());
    assert_eq!((r.passed(), r.failed()), (0, 1));
    let f = &r.cases[0].failures;
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].contains("expected 900150983cd24fb0d6963f7d28e17f73"),
        "{f:?}"
    );
    assert!(
        f[0].contains("got 900150983cd24fb0d6963f7d28e17f72"),
        "{f:?}"
    );
}

#[test]
fn corrupted_mac_fails_compute_and_verify() {
    // RFC 4868 AUTH256-1 with one ICV bit flipped: the full MAC, the
    // truncated value and Integrity::verify must all report it.
    let r = run("algorithm = hmac-sha256\nsource = corrupted\n[AUTH256-1]\n\
                 key = 0x0b * 32\ndata = \"Hi There\"\n\
                 digest = 0x198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7\n\
                 truncated = 0x198a607eb44bfbc69903a0f1cf2bbdc4\n");
    assert!(!r.ok());
    let f = r.cases[0].failures.join("\n");
    assert!(f.contains("truncated: expected"), "{f}");
    assert!(f.contains("Integrity::verify accepts the RFC ICV"), "{f}");
    // The uncorrupted case passes, so the failure above is the flipped bit.
    let good = run("algorithm = hmac-sha256\nsource = good\n[AUTH256-1]\n\
                 key = 0x0b * 32\ndata = \"Hi There\"\n\
                 truncated = 0x198a607eb44bfbc69903a0f1cf2bbdc5\n");
    assert!(good.ok(), "{:?}", good.cases);
}

#[test]
fn corrupted_cipher_vector_fails() {
    // RFC 3602 Case #1 with a flipped ciphertext bit.
    let r = run("algorithm = aes-cbc\nsource = corrupted\n[Case #1]\n\
                 key = 0x06a9214036b8a15b512e03d534120006\n\
                 iv = 0x3dafba429d9eb430b422da802c9fac41\n\
                 plaintext = \"Single block msg\"\n\
                 ciphertext = 0xe353779c1079aeb82708942dbe77181b\n");
    assert!(!r.ok());
    let f = r.cases[0].failures.join("\n");
    assert!(f.contains("ciphertext: expected"), "{f}");
    assert!(f.contains("plaintext (decrypt): expected"), "{f}");
}

#[test]
fn corrupted_esp_packet_structure_fails() {
    // RFC 3602 Case #6 with the outer header's total length changed.
    let r = run("algorithm = aes-cbc\nsource = corrupted\n[Case #6]\n\
                 key = 0x90d382b4 10eeba7a d938c46c ec1a82bf\n\
                 iv = 0x69d08df7 d203329d b093fc49 24e5bd80\n\
                 plaintext = 0x0800b5e8 a80a0500 a69c083d 0b660e00 77777777 77777777 77777777 01020201\n\
                 ciphertext = 0xf5199588 1ec4e0c4 488987ce 742e8109 689bb379 d2d750c0 d915dca3 46a89f75\n\
                 payload = 0x0800b5e8 a80a0500 a69c083d 0b660e00 77777777 77777777 77777777\n\
                 padding = 0x0102\npad_length = 0x02\nnext_header = 0x01\n\
                 ip_header = 0x4500004d 08fe0000 4032f9c9 c0a87b03 c0a87b64\n\
                 esp_header = 0x00004321 00000008\n");
    let f = r.cases[0].failures.join("\n");
    assert!(f.contains("outer IPv4 total length"), "{f}");
    assert!(f.contains("checksum"), "{f}");
}

#[test]
fn corrupted_milenage_set_fails() {
    // TS 35.208 Test Set 1 with f5* changed.
    let r = run("algorithm = milenage\nsource = corrupted\n[Test Set 1]\n\
                 k = 0x465b5ce8b199b49faa5f0a2ee238a6bc\nrand = 0x23553cbe9637a89d218ae64dae47bf35\n\
                 sqn = 0xff9bb4d0b607\namf = 0xb9b9\nopc = 0xcd63cb71954a9f4e48a5994e37a02baf\n\
                 f1 = 0x4a9ffac354dfafb3\nf5_star = 0x451e8beca43c\n");
    assert_eq!(r.failed(), 1);
    assert!(r.cases[0].failures[0].starts_with("f5_star: expected 451e8beca43c"));
}

#[test]
fn case_without_expected_value_fails() {
    let r = run("algorithm = hmac-md5\nsource = x\n[no answer]\nkey = 0x00 * 16\ndata = \"x\"\n");
    assert!(!r.ok());
    assert!(
        r.cases[0].failures[0].contains("missing field"),
        "{:?}",
        r.cases
    );
    let r = run("algorithm = sha1\nsource = x\n[wrong field]\ndata = \"x\"\nexpected = 0x00\n");
    assert!(!r.ok());
}

#[test]
fn unknown_algorithm_and_empty_file_fail() {
    let r = run("algorithm = rot13\nsource = x\n[a]\ndata = \"x\"\n");
    assert!(!r.ok());
    assert_eq!(
        r.error,
        Some(vectors::Error::UnknownAlgorithm {
            name: "rot13".into()
        })
    );
    let r = run("algorithm = md5\nsource = x\n");
    assert!(!r.ok());
    assert_eq!(r.error, Some(vectors::Error::NoCases));
}

#[test]
fn unreadable_and_malformed_files_are_reported() {
    let dir = std::env::temp_dir().join(format!("vectors-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.txt"),
        "algorithm = md5\nsource = x\n[a]\ndata = 0x123\n",
    )
    .unwrap();
    std::fs::write(dir.join("notes.md"), "not a vector file").unwrap();
    let reports = vectors::run_dir(&dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(reports.len(), 1, "only *.txt files are vector files");
    assert!(!reports[0].ok());
    assert_eq!(
        reports[0].error.as_ref().unwrap().to_string(),
        "line 4: hex literal with an odd number of digits"
    );

    let missing = std::env::temp_dir().join("vectors-no-such-dir-9f1c");
    assert!(matches!(
        vectors::run_dir(&missing),
        Err(vectors::Error::Io { .. })
    ));
}

#[test]
fn corrupted_digest_response_fails() {
    // RFC 2617 §3.5 with the cnonce changed: the printed response no longer fits.
    let r = run("algorithm = http-digest\nsource = corrupted\n[3.5]\n\
                 username = \"Mufasa\"\nrealm = \"testrealm@host.com\"\n\
                 password = \"Circle Of Life\"\nmethod = \"GET\"\nuri = \"/dir/index.html\"\n\
                 nonce = \"dcd98b7102dd2f0e8b11d0f600bfb0c093\"\nnc = \"00000001\"\n\
                 cnonce = \"0a4f113c\"\nqop = \"auth\"\n\
                 response = \"6629fae49393a05397450978507c4ef1\"\n");
    assert_eq!(r.failed(), 1);
    assert!(r.cases[0].failures[0].starts_with("response: expected"));
}

/// TS 35.208 Test Set 1 as an `aka` case; `change` edits one line.
fn aka_set1(change: (&str, &str)) -> vectors::FileReport {
    let text = "algorithm = aka\nsource = corrupted\n[Test Set 1]\n\
                k = 0x465b5ce8b199b49faa5f0a2ee238a6bc\nrand = 0x23553cbe9637a89d218ae64dae47bf35\n\
                sqn = 0xff9bb4d0b607\namf = 0xb9b9\nopc = 0xcd63cb71954a9f4e48a5994e37a02baf\n\
                f1 = 0x4a9ffac354dfafb3\nf2 = 0xa54211d5e3ba50bf\n\
                f3 = 0xb40ba9a3c58b2a05bbf0d987b21bf8cb\nf4 = 0xf769bcd751044604127672711c6d3441\n\
                f5 = 0xaa689c648370\nf5_star = 0x451e8beca43b\nsqn_ms_stale = 0xff9bb4d0b627\n\
                auts = 0xba853f3c121cb55edb820040ab41\n";
    assert!(text.contains(change.0), "{change:?}");
    run(&text.replace(change.0, change.1))
}

#[test]
fn corrupted_aka_sets_fail() {
    assert!(aka_set1(("", "")).ok(), "the uncorrupted set passes");
    // A wrong RES: both the network's XRES and the UE's RES are reported.
    let r = aka_set1(("f2 = 0xa54211d5e3ba50bf", "f2 = 0xa54211d5e3ba50be"));
    let f = r.cases[0].failures.join("\n");
    assert!(f.contains("XRES (f2): expected a54211d5e3ba50be"), "{f}");
    assert!(f.contains("RES from verify_autn (f2): expected"), "{f}");
    // A wrong MAC-A in the file: the AUTN the network builds no longer matches.
    let r = aka_set1(("f1 = 0x4a9ffac354dfafb3", "f1 = 0x4a9ffac354dfafb2"));
    let f = r.cases[0].failures.join("\n");
    assert!(
        f.contains("AUTN = (SQN xor f5) || AMF || f1: expected"),
        "{f}"
    );
    // A wrong AUTS.
    let r = aka_set1(("auts = 0xba85", "auts = 0xba84"));
    assert!(
        r.cases[0].failures[0].starts_with("auts: expected ba84"),
        "{r:?}"
    );
    // A "stale" SQN_MS that is not ahead of the network: no resynchronisation.
    let r = aka_set1((
        "sqn_ms_stale = 0xff9bb4d0b627",
        "sqn_ms_stale = 0xff9bb4d0b606",
    ));
    let f = r.cases[0].failures.join("\n");
    assert!(f.contains("accepted a stale AUTN"), "{f}");
}

#[test]
fn corrupted_ims_keys_fail() {
    let case = "algorithm = ims-esp-keys\nsource = corrupted\n[c]\n\
                ealg = \"des-ede3-cbc\"\nalg = \"hmac-sha-1-96\"\n\
                ck = 0x000102030405060708090a0b0c0d0e0f\nik = 0x101112131415161718191a1b1c1d1e1f\n";
    let good = run(&format!(
        "{case}enc_key = 0x000102030405060708090a0b0c0d0e0f0001020304050607\n\
         auth_key = 0x101112131415161718191a1b1c1d1e1f00000000\n"
    ));
    assert!(good.ok(), "{:?}", good.cases);
    // CK1 || CK2 || CK2 instead of CK1 || CK2 || CK1.
    let r = run(&format!(
        "{case}enc_key = 0x000102030405060708090a0b0c0d0e0f08090a0b0c0d0e0f\n\
         auth_key = 0x101112131415161718191a1b1c1d1e1f00000000\n"
    ));
    assert!(
        r.cases[0].failures[0].starts_with("enc_key: expected"),
        "{r:?}"
    );
    // A pair that must be refused but is not.
    let r = run(&format!("{case}error = \"unknown-algorithm\"\n"));
    assert_eq!(
        r.cases[0].failures,
        ["error: expected unknown-algorithm got none (keys derived)"]
    );
}

#[test]
fn corrupted_null_vector_fails() {
    let r = run("algorithm = null\nsource = corrupted\n[c]\ndata = \"abc\"\nnull_data = \"abd\"\n");
    assert_eq!(r.failed(), 1);
    assert!(r.cases[0].failures[0].starts_with("null_data (encrypt): expected"));
}
