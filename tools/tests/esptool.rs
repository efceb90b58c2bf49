//! The `esptool` binary end to end: packets it protects are decrypted and
//! authenticated by tshark's ESP dissector and by scapy's
//! SecurityAssociation (tools/tests/interop/esp_scapy.py); packets scapy
//! and strongSwan built are decapsulated by it; bit flips, replays and
//! missing SAs are dropped and reported.
//!
//! tshark and python3+scapy are needed for the interop tests: with `CI`
//! set a missing peer fails the test, otherwise it is skipped with a notice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::packet::{self, Proto};
use testkit::pcap::{self, Capture};
use testkit::tshark::{self, EspSa};
use testkit::{Peer, TempDir};

fn esptool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_esptool"))
}

/// A fresh temporary directory for one test, removed when dropped.
fn tmp_dir(name: &str) -> TempDir {
    TempDir::new(&format!("esptool-test-{name}"))
}

fn scapy_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/esp_scapy.py")
}

fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

fn esptool_run(mode: &str, config: &Path, input: &Path, output: &Path) -> (Output, String) {
    run(esptool().args([
        mode,
        "--config",
        config.to_str().unwrap(),
        "--in",
        input.to_str().unwrap(),
        "--out",
        output.to_str().unwrap(),
    ]))
}

/// Raw IP (or Ethernet) packet of a UDP datagram 40000 -> 40001, built by
/// etherparse (not by the code under test).
fn udp_packet(src: &str, dst: &str, payload: &[u8], ethernet: bool) -> Vec<u8> {
    let ip = packet::udp(src, 40000, dst, 40001, payload);
    if ethernet { packet::ethernet(&ip) } else { ip }
}

/// One SA of the encap matrix.
struct Case {
    name: &'static str,
    /// setkey `add` (without the `add` and `;`): filled with addresses.
    proto: &'static str,
    enc: Option<(&'static str, &'static str)>,
    auth: (&'static str, &'static str),
    /// tshark names (None: tshark is not used for this SA).
    tshark: Option<(&'static str, &'static str)>,
    /// Whether tshark checks this ICV (peers.md).
    tshark_checks_icv: bool,
    /// scapy names (None: scapy lacks the algorithm).
    scapy: Option<(&'static str, &'static str)>,
    tunnel: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "null+hmac-sha1",
        proto: "esp",
        enc: Some(("null", "")),
        auth: ("hmac-sha1", "0x0102030405060708090a0b0c0d0e0f1011121314"),
        tshark: Some(("NULL", "HMAC-SHA-1-96 [RFC2404]")),
        tshark_checks_icv: true,
        scapy: Some(("NULL", "HMAC-SHA1-96")),
        tunnel: false,
    },
    Case {
        name: "des-cbc+hmac-md5",
        proto: "esp",
        enc: Some(("des-cbc", "0x3b38988a1d4c5e6f")),
        auth: ("hmac-md5", "0x112233445566778899aabbccddeeff00"),
        tshark: Some(("DES-CBC [RFC2405]", "HMAC-MD5-96 [RFC2403]")),
        tshark_checks_icv: true,
        scapy: Some(("DES", "HMAC-MD5-96")),
        tunnel: false,
    },
    Case {
        name: "3des-cbc+hmac-md5",
        proto: "esp",
        enc: Some((
            "3des-cbc",
            "0x0123456789abcdeffedcba987654321089abcdef01234567",
        )),
        auth: ("hmac-md5", "0x00112233445566778899aabbccddeeff"),
        tshark: Some(("TripleDES-CBC [RFC2451]", "HMAC-MD5-96 [RFC2403]")),
        tshark_checks_icv: true,
        scapy: Some(("3DES", "HMAC-MD5-96")),
        tunnel: false,
    },
    Case {
        name: "aes128-cbc+hmac-sha1",
        proto: "esp",
        enc: Some(("aes-cbc", "0x000102030405060708090a0b0c0d0e0f")),
        auth: ("hmac-sha1", "0xa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3"),
        tshark: Some(("AES-CBC [RFC3602]", "HMAC-SHA-1-96 [RFC2404]")),
        tshark_checks_icv: true,
        scapy: Some(("AES-CBC", "HMAC-SHA1-96")),
        tunnel: false,
    },
    Case {
        name: "aes192-cbc+hmac-sha256",
        proto: "esp",
        enc: Some((
            "aes-cbc",
            "0x101112131415161718191a1b1c1d1e1f2021222324252627",
        )),
        auth: (
            "hmac-sha256",
            "0xc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf",
        ),
        tshark: Some(("AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]")),
        tshark_checks_icv: true,
        scapy: Some(("AES-CBC", "SHA2-256-128")),
        tunnel: false,
    },
    Case {
        name: "aes256-cbc+hmac-sha1",
        proto: "esp",
        enc: Some((
            "aes-cbc",
            "0x202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
        )),
        auth: ("hmac-sha1", "0xe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3"),
        tshark: Some(("AES-CBC [RFC3602]", "HMAC-SHA-1-96 [RFC2404]")),
        tshark_checks_icv: true,
        scapy: Some(("AES-CBC", "HMAC-SHA1-96")),
        tunnel: false,
    },
    Case {
        name: "aes256-cbc+hmac-sha256",
        proto: "esp",
        enc: Some((
            "aes-cbc",
            "0x404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f",
        )),
        auth: (
            "hmac-sha256",
            "0x606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f",
        ),
        tshark: Some(("AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]")),
        tshark_checks_icv: true,
        scapy: Some(("AES-CBC", "SHA2-256-128")),
        tunnel: false,
    },
    Case {
        // Neither tshark nor scapy checks AES-XCBC-MAC-96: tshark decrypts
        // without checking; the strongSwan capture is the ICV check.
        name: "aes128-cbc+aes-xcbc-mac",
        proto: "esp",
        enc: Some(("aes-cbc", "0x808182838485868788898a8b8c8d8e8f")),
        auth: ("aes-xcbc-mac", "0x000102030405060708090a0b0c0d0e0f"),
        tshark: Some((
            "AES-CBC [RFC3602]",
            "ANY 96 bit authentication [no checking]",
        )),
        tshark_checks_icv: false,
        scapy: None,
        tunnel: false,
    },
    Case {
        // tshark has no AH ICV check: scapy verifies it.
        name: "ah+hmac-sha1",
        proto: "ah",
        enc: None,
        auth: ("hmac-sha1", "0x9192939495969798999a9b9c9d9e9fa0a1a2a3a4"),
        tshark: None,
        tshark_checks_icv: false,
        scapy: Some(("", "HMAC-SHA1-96")),
        tunnel: false,
    },
    Case {
        name: "tunnel aes128-cbc+hmac-sha256",
        proto: "esp",
        enc: Some(("aes-cbc", "0xf0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")),
        auth: (
            "hmac-sha256",
            "0x0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000",
        ),
        tshark: Some(("AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]")),
        tshark_checks_icv: true,
        scapy: Some(("AES-CBC", "SHA2-256-128")),
        tunnel: true,
    },
];

/// Addresses of case `i` and family: (inner src, inner dst, SA src, SA dst).
fn addrs(i: usize, v6: bool, tunnel: bool) -> (String, String, String, String) {
    let n = i + 1;
    let (s, d) = if v6 {
        (format!("2001:db8:{n}::1"), format!("2001:db8:{n}::2"))
    } else {
        (format!("10.{n}.0.1"), format!("10.{n}.0.2"))
    };
    if tunnel {
        let (ts, td) = if v6 {
            (format!("2001:db8:ff{n}::a"), format!("2001:db8:ff{n}::b"))
        } else {
            (format!("203.0.{n}.1"), format!("203.0.{n}.2"))
        };
        (s, d, ts, td)
    } else {
        (s.clone(), d.clone(), s, d)
    }
}

fn spi(i: usize, v6: bool) -> u32 {
    0x1000 + (i as u32) * 2 + u32::from(v6)
}

fn mode(c: &Case) -> &'static str {
    if c.tunnel { "tunnel" } else { "transport" }
}

/// setkey lines for every case, IPv4 and IPv6, with `dir` policies.
fn matrix_config(dir: &str) -> String {
    let mut s = String::new();
    for (i, c) in CASES.iter().enumerate() {
        for v6 in [false, true] {
            let (is, id, ss, sd) = addrs(i, v6, c.tunnel);
            let algs = match c.enc {
                Some(("null", _)) => format!("-E null -A {} {}", c.auth.0, c.auth.1),
                Some((e, k)) => format!("-E {e} {k} -A {} {}", c.auth.0, c.auth.1),
                None => format!("-A {} {}", c.auth.0, c.auth.1),
            };
            s += &format!(
                "add {ss} {sd} {} 0x{:x} -m {} -r 4 {algs};\n",
                c.proto,
                spi(i, v6),
                mode(c)
            );
            let req = if c.tunnel {
                format!("{}/tunnel/{ss}-{sd}/require", c.proto)
            } else {
                format!("{}/transport//require", c.proto)
            };
            s += &format!("spdadd {is} {id} udp -P {dir} ipsec {req};\n");
        }
    }
    s
}

fn payload(i: usize, v6: bool, k: usize) -> Vec<u8> {
    format!("case {i} v6={v6} packet {k}: {}", "x".repeat(i * 3 + k)).into_bytes()
}

/// The input of the encap matrix: two packets per case and family,
/// in `linktype` framing. Returns the packets' payloads in order.
fn matrix_input(path: &Path, linktype: u32) -> Vec<Vec<u8>> {
    let mut pkts = Vec::new();
    let mut payloads = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        for v6 in [false, true] {
            let (is, id, _, _) = addrs(i, v6, c.tunnel);
            for k in 0..2 {
                let p = payload(i, v6, k);
                pkts.push(udp_packet(
                    &is,
                    &id,
                    &p,
                    linktype == pcap::LINKTYPE_ETHERNET,
                ));
                payloads.push(p);
            }
        }
    }
    pcap::write(path, linktype, &pkts);
    payloads
}

/// (case index, IPv6) of each packet of the matrix, in order.
fn matrix_order() -> Vec<(usize, bool)> {
    let mut v = Vec::new();
    for i in 0..CASES.len() {
        for v6 in [false, true] {
            v.push((i, v6));
            v.push((i, v6));
        }
    }
    v
}

fn hex_key(k: &str) -> &str {
    k.trim_start_matches("0x")
}

/// The SAs for tshark's `esp_sa` table.
fn tshark_sas() -> Vec<EspSa> {
    let mut v = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        let Some((te, ta)) = c.tshark else { continue };
        for v6 in [false, true] {
            let (_, _, ss, sd) = addrs(i, v6, c.tunnel);
            let ek = c.enc.map_or("", |(_, k)| hex_key(k));
            v.push(EspSa::new(
                &ss,
                &sd,
                spi(i, v6),
                (te, ek),
                (ta, hex_key(c.auth.1)),
            ));
        }
    }
    v
}

fn scapy_json(with_payloads: bool, filter: impl Fn(usize) -> bool) -> String {
    let mut items = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        let Some((se, sa)) = c.scapy else { continue };
        if !filter(i) {
            continue;
        }
        for v6 in [false, true] {
            let (is, id, ss, sd) = addrs(i, v6, c.tunnel);
            let ek = c.enc.map(|(_, k)| hex_key(k)).unwrap_or("");
            let payloads = if with_payloads {
                (0..3)
                    .map(|k| format!("\"{}\"", hex::encode(payload(i, v6, k))))
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                String::new()
            };
            items.push(format!(
                "{{\"proto\":\"{}\",\"spi\":{},\"enc\":\"{se}\",\"enc_key\":\"{ek}\",\"auth\":\"{sa}\",\"auth_key\":\"{}\",\"mode\":\"{}\",\"src\":\"{ss}\",\"dst\":\"{sd}\",\"inner_src\":\"{is}\",\"inner_dst\":\"{id}\",\"payloads\":[{payloads}]}}",
                c.proto,
                spi(i, v6),
                hex_key(c.auth.1),
                mode(c)
            ));
        }
    }
    format!("[{}]", items.join(",\n"))
}

/// Encapsulates the matrix; returns the payloads and the output path.
fn encap_matrix(dir: &TempDir, linktype: u32) -> (Vec<Vec<u8>>, PathBuf) {
    let conf = dir.path("out.conf");
    std::fs::write(&conf, matrix_config("out")).unwrap();
    let input = dir.path("in.pcap");
    let payloads = matrix_input(&input, linktype);
    let output = dir.path("esp.pcap");
    let (out, text) = esptool_run("encap", &conf, &input, &output);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(" protected spi="))
            .count(),
        payloads.len(),
        "{text}"
    );
    let cap = Capture::read(&output);
    assert_eq!(cap.linktype, linktype);
    assert_eq!(cap.records.len(), payloads.len());
    // No cleartext payload left in any protected packet except AH's and
    // ESP-NULL's (integrity only).
    for ((i, _), (rec, p)) in matrix_order().iter().zip(cap.records.iter().zip(&payloads)) {
        let c = &CASES[*i];
        let integrity_only = c.proto == "ah" || c.enc.is_some_and(|(e, _)| e == "null");
        let clear = rec.data.windows(p.len()).any(|w| w == &p[..]);
        assert_eq!(clear, integrity_only, "{}: cleartext check", c.name);
    }
    (payloads, output)
}

#[test]
fn tshark_decrypts_and_verifies_every_encapsulated_packet() {
    if !testkit::require(
        "tshark_decrypts_and_verifies_every_encapsulated_packet",
        &[Peer::Tshark],
    ) {
        return;
    }
    for linktype in [pcap::LINKTYPE_ETHERNET, pcap::LINKTYPE_RAW] {
        let dir = tmp_dir(&format!("tshark-{linktype}"));
        let (payloads, output) = encap_matrix(&dir, linktype);
        let stdout = tshark::fields(&output).esp_sas(&tshark_sas()).run(&[
            "frame.number",
            "esp.spi",
            "esp.sequence",
            "esp.icv_good",
            "esp.icv_bad",
            "udp.payload",
            "_ws.malformed",
        ]);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), payloads.len(), "{stdout}");
        let mut checked = 0;
        let mut seqs = std::collections::HashMap::new();
        for (((i, v6), line), p) in matrix_order().iter().zip(&lines).zip(&payloads) {
            let c = &CASES[*i];
            if c.tshark.is_none() {
                continue;
            }
            let f: Vec<&str> = line.split('|').collect();
            let want_spi = spi(*i, *v6);
            assert_eq!(
                u32::from_str_radix(f[1].trim_start_matches("0x"), 16).unwrap(),
                want_spi,
                "{}: {line}",
                c.name
            );
            let seq = seqs.entry(want_spi).or_insert(0u32);
            *seq += 1;
            assert_eq!(f[2], seq.to_string(), "{}: {line}", c.name);
            if c.tshark_checks_icv {
                assert_eq!(f[3], "1", "{}: ICV not good: {line}", c.name);
                assert!(f[4].is_empty() || f[4] == "0", "{}: {line}", c.name);
                checked += 1;
            }
            assert!(f[6].is_empty(), "{}: malformed: {line}", c.name);
            // Tunnel mode and transport: the inner UDP payload is the last
            // UDP layer.
            let got = f[5].rsplit(',').next().unwrap();
            assert_eq!(got, hex::encode(p), "{}: inner payload: {line}", c.name);
        }
        assert_eq!(checked, 2 * 2 * 8, "ICVs tshark verified");
    }
}

#[test]
fn scapy_decrypts_and_verifies_every_encapsulated_packet() {
    if !testkit::require(
        "scapy_decrypts_and_verifies_every_encapsulated_packet",
        &[Peer::Scapy, Peer::Python("cryptography")],
    ) {
        return;
    }
    for linktype in [pcap::LINKTYPE_ETHERNET, pcap::LINKTYPE_RAW] {
        let dir = tmp_dir(&format!("scapy-dec-{linktype}"));
        let (payloads, output) = encap_matrix(&dir, linktype);
        let json = dir.path("sas.json");
        std::fs::write(&json, scapy_json(false, |_| true)).unwrap();
        let (out, text) = run(Command::new("python3").args([
            scapy_script().to_str().unwrap(),
            "decrypt",
            output.to_str().unwrap(),
            json.to_str().unwrap(),
        ]));
        assert!(out.status.success(), "{text}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), payloads.len(), "{text}");
        let mut verified = 0;
        for (((i, v6), line), p) in matrix_order().iter().zip(&lines).zip(&payloads) {
            let c = &CASES[*i];
            if c.scapy.is_none() {
                assert!(line.contains("fail unknown spi"), "{line}");
                continue;
            }
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f[1], "ok", "{}: {line}", c.name);
            assert_eq!(f[2], format!("{:#x}", spi(*i, *v6)), "{}: {line}", c.name);
            assert_eq!(f[4], hex::encode(p), "{}: {line}", c.name);
            verified += 1;
        }
        assert_eq!(verified, 2 * 2 * 9);
    }
}

#[test]
fn esptool_decapsulates_what_scapy_built() {
    if !testkit::require(
        "esptool_decapsulates_what_scapy_built",
        &[Peer::Scapy, Peer::Python("cryptography")],
    ) {
        return;
    }
    let dir = tmp_dir("scapy-build");
    let json = dir.path("sas.json");
    std::fs::write(&json, scapy_json(true, |_| true)).unwrap();
    let built = dir.path("scapy.pcap");
    let (out, text) = run(Command::new("python3").args([
        scapy_script().to_str().unwrap(),
        "build",
        built.to_str().unwrap(),
        json.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{text}");
    let expected: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[1].to_owned(), f[2].to_owned())
        })
        .collect();
    assert_eq!(expected.len(), 9 * 2 * 3);
    let conf = dir.path("in.conf");
    std::fs::write(&conf, matrix_config("in")).unwrap();
    let plain = dir.path("plain.pcap");
    let (out, text) = esptool_run("decap", &conf, &built, &plain);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().take(expected.len()).collect();
    let cap = Capture::read(&plain);
    assert_eq!(cap.records.len(), expected.len(), "{text}");
    for ((line, rec), (spi, p)) in lines.iter().zip(&cap.records).zip(&expected) {
        assert!(
            line.contains(&format!(
                "decapsulated spi=0x{:08x}",
                u32::from_str_radix(&spi[2..], 16).unwrap()
            )),
            "{line}"
        );
        let seg = packet::transport(cap.linktype, &rec.data).expect("decapsulated UDP");
        assert_eq!(hex::encode(seg.payload), *p, "{line}");
        assert_eq!((seg.sport, seg.dport), (40000, 40001));
    }
    assert!(text.contains("0 dropped, 0 failed"), "{text}");
}

/// A small config with one ESP SA each way and require policies.
const SIMPLE: &str = "
add 192.0.2.1 192.0.2.2 esp 0x2001 -m transport -r 8 -E aes-cbc 0x00112233445566778899aabbccddeeff -A hmac-sha1 0x0102030405060708090a0b0c0d0e0f1011121314;
spdadd 192.0.2.1 192.0.2.2 udp -P out ipsec esp/transport//require;
spdadd 192.0.2.1 192.0.2.2 udp -P in ipsec esp/transport//require;
";

fn simple_encap(dir: &TempDir, n: usize) -> (PathBuf, PathBuf) {
    let conf = dir.path("simple.conf");
    std::fs::write(&conf, SIMPLE).unwrap();
    let input = dir.path("plain.pcap");
    let pkts: Vec<Vec<u8>> = (0..n)
        .map(|k| {
            udp_packet(
                "192.0.2.1",
                "192.0.2.2",
                format!("secret {k}").as_bytes(),
                true,
            )
        })
        .collect();
    pcap::write(&input, pcap::LINKTYPE_ETHERNET, &pkts);
    let esp = dir.path("esp.pcap");
    let (out, text) = esptool_run("encap", &conf, &input, &esp);
    assert!(out.status.success(), "{text}");
    (conf, esp)
}

#[test]
fn flipped_bit_is_an_icv_failure() {
    let dir = tmp_dir("flip");
    let (conf, esp) = simple_encap(&dir, 3);
    let mut cap = Capture::read(&esp);
    let last = cap.records[1].data.len() - 20;
    cap.records[1].data[last] ^= 0x04;
    cap.write(&esp);
    let dec = dir.path("dec.pcap");
    let (out, text) = esptool_run("decap", &conf, &esp, &dec);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 decapsulated spi=0x00002001 seq=1"),
        "{text}"
    );
    assert!(
        text.contains("2 dropped spi=0x00002001 seq=2 reason: ICV failure"),
        "{text}"
    );
    assert!(
        text.contains("3 decapsulated spi=0x00002001 seq=3"),
        "{text}"
    );
    // Counters: 2 packets, 1 ICV failure.
    let row = text
        .lines()
        .find(|l| l.contains("0x00002001 transport"))
        .unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cols[cols.len() - 4..],
        ["2", cols[cols.len() - 3], "0", "1"]
    );
    assert_eq!(Capture::read(&dec).records.len(), 2);
    // --strict turns the failure into exit status 1.
    let (out, _) = run(esptool().args([
        "decap",
        "--strict",
        "--config",
        conf.to_str().unwrap(),
        "--in",
        esp.to_str().unwrap(),
        "--out",
        dec.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn replayed_packet_is_dropped() {
    let dir = tmp_dir("replay");
    let (conf, esp) = simple_encap(&dir, 2);
    let mut cap = Capture::read(&esp);
    let first = cap.records[0].clone();
    cap.records.push(first);
    cap.write(&esp);
    let dec = dir.path("dec.pcap");
    let (out, text) = esptool_run("decap", &conf, &esp, &dec);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("3 dropped spi=0x00002001 seq=1 reason: replay"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.contains("0x00002001 transport"))
        .unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[cols.len() - 2], "1", "replay counter: {row}");
    assert_eq!(Capture::read(&dec).records.len(), 2);
}

#[test]
fn no_sa_under_require_is_dropped_never_sent_in_clear() {
    let dir = tmp_dir("nosa");
    let conf = dir.path("nosa.conf");
    std::fs::write(
        &conf,
        "spdadd 192.0.2.1 192.0.2.9 udp -P out ipsec esp/transport//require;\n\
         spdadd 192.0.2.1 192.0.2.8 udp -P out none;\n\
         spdadd 192.0.2.1 192.0.2.7 udp -P out discard;\n\
         spdadd 192.0.2.9 192.0.2.1 udp -P in ipsec esp/transport//require;\n",
    )
    .unwrap();
    let input = dir.path("in.pcap");
    pcap::write(
        &input,
        pcap::LINKTYPE_RAW,
        &[
            udp_packet("192.0.2.1", "192.0.2.9", b"TOP SECRET PAYLOAD", false),
            udp_packet("192.0.2.1", "192.0.2.8", b"bypass me", false),
            udp_packet("192.0.2.1", "192.0.2.7", b"discard me", false),
            udp_packet("192.0.2.1", "192.0.2.6", b"no policy", false),
        ],
    );
    let output = dir.path("out.pcap");
    let (out, text) = esptool_run("encap", &conf, &input, &output);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 dropped reason: no SA"), "{text}");
    assert!(text.contains("2 bypass"), "{text}");
    assert!(text.contains("3 dropped reason: policy"), "{text}");
    assert!(text.contains("4 clear reason: no policy"), "{text}");
    let bytes = std::fs::read(&output).unwrap();
    assert!(!bytes.windows(10).any(|w| w == b"TOP SECRET"));
    assert_eq!(Capture::read(&output).records.len(), 2);
    // Under --strict the missing SA is a failure, the discard is not.
    let (out, _) = run(esptool().args([
        "encap",
        "--strict",
        "--config",
        conf.to_str().unwrap(),
        "--in",
        input.to_str().unwrap(),
        "--out",
        output.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    // Inbound: clear text a require policy covers is dropped.
    pcap::write(
        &input,
        pcap::LINKTYPE_RAW,
        &[
            udp_packet("192.0.2.9", "192.0.2.1", b"CLEAR INBOUND", false),
            udp_packet("192.0.2.5", "192.0.2.1", b"unprotected ok", false),
        ],
    );
    let (out, text) = esptool_run("decap", &conf, &input, &output);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 dropped reason: clear text refused by policy"),
        "{text}"
    );
    assert!(text.contains("2 clear reason: no policy"), "{text}");
    let bytes = std::fs::read(&output).unwrap();
    assert!(!bytes.windows(13).any(|w| w == b"CLEAR INBOUND"));
}

#[test]
fn ipv6_tunnel_over_ethernet_round_trips_and_deterministic_iv_repeats() {
    let dir = tmp_dir("v6tun");
    let conf = dir.path("t.conf");
    std::fs::write(
        &conf,
        "add 2001:db8::a 2001:db8::b esp 0x3001 -m tunnel -E 3des-cbc 0x0123456789abcdeffedcba987654321089abcdef01234567 -A hmac-sha256 0x606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f;\n\
         spdadd 10.0.0.1 10.0.0.2 any -P out ipsec esp/tunnel/2001:db8::a-2001:db8::b/require;\n\
         spdadd 10.0.0.1 10.0.0.2 any -P in ipsec esp/tunnel/2001:db8::a-2001:db8::b/require;\n",
    )
    .unwrap();
    let input = dir.path("in.pcap");
    let pkt = udp_packet("10.0.0.1", "10.0.0.2", b"v4 in v6", true);
    pcap::write(&input, pcap::LINKTYPE_ETHERNET, std::slice::from_ref(&pkt));
    let enc = |name: &str| {
        let out = dir.path(name);
        let (o, text) = run(esptool().args([
            "encap",
            "--deterministic-iv",
            "--config",
            conf.to_str().unwrap(),
            "--in",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]));
        assert!(o.status.success(), "{text}");
        out
    };
    let a = enc("a.pcap");
    let b = enc("b.pcap");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let cap = Capture::read(&a);
    // EtherType switched to IPv6 for the outer header.
    assert_eq!(&cap.records[0].data[12..14], &[0x86, 0xdd]);
    let dec = dir.path("dec.pcap");
    let (o, text) = esptool_run("decap", &conf, &a, &dec);
    assert!(o.status.success(), "{text}");
    let back = Capture::read(&dec);
    assert_eq!(back.records[0].data, pkt, "{text}");
    // Without --deterministic-iv two runs differ (IVs from /dev/urandom).
    let (o1, _) = esptool_run("encap", &conf, &input, &dir.path("r1.pcap"));
    let (o2, _) = esptool_run("encap", &conf, &input, &dir.path("r2.pcap"));
    assert!(o1.status.success() && o2.status.success());
    assert_ne!(
        std::fs::read(dir.path("r1.pcap")).unwrap(),
        std::fs::read(dir.path("r2.pcap")).unwrap()
    );
}

#[test]
fn usage_config_and_io_errors_exit_2_with_one_line() {
    let dir = tmp_dir("errors");
    let conf = dir.path("bad.conf");
    std::fs::write(
        &conf,
        "spdflush;\nadd 192.0.2.1 192.0.2.2 esp 0x10 -E aes-cbc 0x0011 -A hmac-sha1 0x00;\n",
    )
    .unwrap();
    let input = dir.path("in.pcap");
    pcap::write(
        &input,
        pcap::LINKTYPE_RAW,
        &[udp_packet("192.0.2.1", "192.0.2.2", b"x", false)],
    );
    let (out, text) = esptool_run("encap", &conf, &input, &dir.path("o.pcap"));
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains(&format!("{}:2:", conf.display())), "{text}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().count(),
        1,
        "{text}"
    );
    // Missing input.
    let (out, text) = esptool_run("decap", &conf, &dir.path("nope.pcap"), &dir.path("o.pcap"));
    assert_eq!(out.status.code(), Some(2), "{text}");
    // Unsupported link type (USER0; tools/tests/captures.rs reads the
    // supported ones).
    let good = dir.path("good.conf");
    std::fs::write(&good, SIMPLE).unwrap();
    pcap::write(&input, 147, &[vec![0; 40]]);
    let (out, text) = esptool_run("decap", &good, &input, &dir.path("o.pcap"));
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "{}: link type 147 is not supported",
            input.display()
        )),
        "{text}"
    );
    // Not a pcap.
    std::fs::write(&input, b"garbage").unwrap();
    let (out, _) = esptool_run("decap", &good, &input, &dir.path("o.pcap"));
    assert_eq!(out.status.code(), Some(2));
    // Usage.
    let (out, _) = run(esptool().args(["encap", "--config"]));
    assert_eq!(out.status.code(), Some(2));
    for sub in [&["--help"][..], &["encap", "--help"], &["decap", "--help"]] {
        let (out, text) = run(esptool().args(sub));
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("--config") || text.contains("encap"),
            "{text}"
        );
    }
    let (_, text) = run(esptool().args(["encap", "--help"]));
    assert!(text.contains("NEVER use this on a live link"), "{text}");
}

fn strongswan_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/strongswan")
        .join(name)
}

/// Decapsulates a strongSwan capture: every ESP packet must give the
/// iperf3 TCP connection between 10.97.1.1 and 10.97.2.1.
fn check_strongswan_capture(dir: &Path, tmp: &TempDir) -> usize {
    let out_pcap = tmp.path("ss-dec.pcap");
    let (out, text) = esptool_run(
        "decap",
        &dir.join("sad.conf"),
        &dir.join("esp.pcap"),
        &out_pcap,
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" 0 dropped, 0 failed"), "{text}");
    let cap = Capture::read(&out_pcap);
    let mut decapped = 0;
    for (line, rec) in text.lines().zip(&cap.records) {
        if line.contains(" decapsulated ") {
            decapped += 1;
            let seg = packet::transport(cap.linktype, &rec.data).expect("inner TCP");
            assert_eq!(seg.proto, Proto::Tcp, "{line}");
            let ends = [seg.src.to_string(), seg.dst.to_string()];
            assert!(
                ends.contains(&"10.97.1.1".to_owned()) && ends.contains(&"10.97.2.1".to_owned()),
                "{line}"
            );
            assert!(seg.sport == 5201 || seg.dport == 5201, "{line}");
        } else {
            assert!(line.contains("clear reason: IKE"), "{line}");
        }
    }
    decapped
}

#[test]
fn decapsulates_strongswan_captures() {
    let tmp = tmp_dir("strongswan");
    // aes128-sha1 and aes128-aesxcbc (our only independent XCBC sender).
    for name in ["aes128-sha1", "aes128-aesxcbc"] {
        let n = check_strongswan_capture(&strongswan_fixture(name), &tmp);
        assert_eq!(n, 18, "{name}: ESP packets decapsulated");
    }
}

/// Runs the strongSwan anchor live (root, Debian strongswan-charon,
/// strongswan-swanctl, libcharon-extra-plugins, libstrongswan-standard-plugins
/// (its openssl plugin gives the IKE MODP_2048 group), iperf3, tcpdump, and the
/// anchor script), then decapsulates its fresh capture.
#[test]
fn decapsulates_a_live_strongswan_capture() {
    // The anchor scripts sit beside the checkout (`../shared/anchors`), or
    // wherever IMSEC_ANCHORS points.
    let anchors = std::env::var_os("IMSEC_ANCHORS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/anchors"));
    let script = anchors.join("libipsec_bench.sh");
    if !script.exists() {
        eprintln!(
            "SKIPPED decapsulates_a_live_strongswan_capture: no anchor script {} \
             (the committed fixtures are tested by decapsulates_strongswan_captures)",
            script.display()
        );
        return;
    }
    if !testkit::require(
        "decapsulates_a_live_strongswan_capture",
        &[
            Peer::Root,
            Peer::Strongswan,
            Peer::Program("iperf3"),
            Peer::Program("tcpdump"),
        ],
    ) {
        return;
    }
    let tmp = tmp_dir("strongswan-live");
    for prop in ["aes128-sha1", "aes128-aesxcbc"] {
        let out = tmp.path(prop);
        let (o, text) = run(Command::new("timeout").args([
            "120",
            script.to_str().unwrap(),
            prop,
            "1",
            out.to_str().unwrap(),
        ]));
        assert!(o.status.success(), "anchor {prop}: {text}");
        let n = check_strongswan_capture(&out, &tmp);
        assert!(n >= 10, "{prop}: only {n} ESP packets decapsulated");
    }
}

#[test]
fn esp_in_udp_tunnel_is_verified_by_tshark_and_hard_lifetime_fails_closed() {
    let dir = tmp_dir("espudp");
    let conf = dir.path("udp.conf");
    let key_e = "000102030405060708090a0b0c0d0e0f";
    let key_a = "0102030405060708090a0b0c0d0e0f1011121314";
    std::fs::write(
        &conf,
        format!(
            "add 192.0.2.1[4500] 192.0.2.2[4500] esp-udp 0x4001 -m tunnel -lh 3 -E aes-cbc 0x{key_e} -A hmac-sha1 0x{key_a};\n\
             spdadd 10.0.0.1 10.0.0.2 any -P out ipsec esp/tunnel/192.0.2.1-192.0.2.2/require;\n\
             spdadd 10.0.0.1 10.0.0.2 any -P in ipsec esp/tunnel/192.0.2.1-192.0.2.2/require;\n"
        ),
    )
    .unwrap();
    let input = dir.path("in.pcap");
    let pkts: Vec<Vec<u8>> = (0..5)
        .map(|k| {
            udp_packet(
                "10.0.0.1",
                "10.0.0.2",
                format!("natt {k}").as_bytes(),
                false,
            )
        })
        .collect();
    // One packet a second: the SA's 3 s hard lifetime ends before packet 4.
    pcap::write(&input, pcap::LINKTYPE_IPV4, &pkts);
    let esp = dir.path("esp.pcap");
    let (out, text) = esptool_run("encap", &conf, &input, &esp);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("3 protected spi=0x00004001 seq=3"), "{text}");
    assert!(
        text.contains("- expire hard (removed) esp dst 192.0.2.2 spi=0x00004001"),
        "{text}"
    );
    assert!(text.contains("4 dropped reason: no SA"), "{text}");
    assert!(text.contains("5 dropped reason: no SA"), "{text}");
    let cap = Capture::read(&esp);
    assert_eq!(cap.records.len(), 3);
    for r in &cap.records {
        let seg = packet::transport(cap.linktype, &r.data).unwrap();
        assert_eq!((seg.sport, seg.dport), (4500, 4500));
    }
    if testkit::require(
        "esp_in_udp_tunnel_is_verified_by_tshark_and_hard_lifetime_fails_closed (tshark check)",
        &[Peer::Tshark],
    ) {
        let sa = EspSa::new(
            "192.0.2.1",
            "192.0.2.2",
            0x4001,
            ("AES-CBC [RFC3602]", key_e),
            ("HMAC-SHA-1-96 [RFC2404]", key_a),
        );
        let stdout = tshark::decrypt(
            &esp,
            &[sa],
            "",
            &["esp.sequence", "esp.icv_good", "udp.payload"],
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{stdout}");
        for (k, l) in lines.iter().enumerate() {
            let f: Vec<&str> = l.split('|').collect();
            assert_eq!(f[0], (k + 1).to_string(), "{l}");
            assert_eq!(f[1], "1", "ICV: {l}");
            assert_eq!(
                f[2].rsplit(',').next().unwrap(),
                hex::encode(format!("natt {k}")),
                "{l}"
            );
        }
    }
    // And back: the same SA (fresh config) decapsulates its packets.
    let dec = dir.path("dec.pcap");
    let (out, text) = esptool_run("decap", &conf, &esp, &dec);
    assert!(out.status.success(), "{text}");
    let back = Capture::read(&dec);
    assert_eq!(back.records.len(), 3, "{text}");
    for (k, r) in back.records.iter().enumerate() {
        assert_eq!(r.data, pkts[k]);
    }
}
