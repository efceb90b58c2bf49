//! Writes the committed seeds of `fuzz/seeds/<target>/` (ignored: run it
//! when a target's input format or a configuration changes):
//!
//!     cargo test -p fuzzing --test make_seeds -- --ignored
//!
//! Generated files are replaced; the `crash-*` files (minimised crashes
//! the fuzzer found, which `tests/seeds.rs` keeps replaying) are kept.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use etherparse::PacketBuilder;

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target)
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Replaces the generated seeds of `target` with `seeds` (name, bytes).
fn write(target: &str, seeds: &[(String, Vec<u8>)]) {
    let dir = seeds_dir(target);
    fs::create_dir_all(&dir).unwrap();
    for e in fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        if !e.file_name().to_string_lossy().starts_with("crash-") {
            fs::remove_file(e.path()).unwrap();
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (name, bytes) in seeds {
        assert!(names.insert(name.clone()), "{target}: seed {name} twice");
        fs::write(dir.join(name), bytes).unwrap();
    }
    println!("{target}: {} seeds", seeds.len());
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn udp(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match (ip(src), ip(dst)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64)
            .udp(sport, dport)
            .write(&mut out, payload)
            .unwrap(),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64)
            .udp(sport, dport)
            .write(&mut out, payload)
            .unwrap(),
        _ => panic!("{src} {dst}"),
    }
    out
}

const SIP: &[u8] =
    b"REGISTER sip:ims.example.net SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::1]:5062\r\n\r\n";

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";
const A6: &str = "2001:db8::1";
const B6: &str = "2001:db8::2";

// ---------------------------------------------------------------- esp_decap

#[test]
#[ignore = "writes fuzz/seeds/esp_decap; run when the target changes"]
fn esp_decap() {
    let mut seeds = Vec::new();
    // Selector bits: 0 IPv6, 1-2 algorithms, 3 tunnel, 4-5 replay window,
    // 6 ESN, 7 ESP in UDP.
    let sels: [(u8, &str); 16] = [
        (0x00, "v4-aes-sha1-transport"),
        (0x01, "v6-aes-sha1-transport"),
        (0x02, "v4-null-sha256"),
        (0x04, "v4-3des-noauth"),
        (0x06, "v4-ah-xcbc"),
        (0x07, "v6-ah-xcbc"),
        (0x08, "v4-aes-sha1-tunnel"),
        (0x0b, "v6-null-sha256-tunnel"),
        (0x0e, "v4-ah-tunnel"),
        (0x10, "v4-replay32"),
        (0x31, "v6-replay4096"),
        (0x40, "v4-esn"),
        (0x4f, "v6-ah-tunnel-esn"),
        (0x80, "v4-udp"),
        (0x88, "v4-udp-tunnel"),
        (0xe9, "v6-udp-tunnel-esn-replay64"),
    ];
    for (sel, name) in sels {
        let plain = if sel & 1 != 0 {
            udp(A6, B6, 5062, 5068, SIP)
        } else {
            udp(A, B, 5062, 5068, SIP)
        };
        // Structure-aware round trip.
        let mut s = vec![sel, 0x01];
        s.extend_from_slice(&plain);
        seeds.push((format!("{name}-roundtrip"), s));
        // Raw: a packet the peer SA protected, decapsulated directly.
        if let Some(wire) = fuzzing::seed::esp_decap_protected(sel, &plain) {
            let mut s = vec![sel, 0x00];
            s.extend_from_slice(&wire);
            seeds.push((format!("{name}-raw-protected"), s));
        }
    }
    // Mutations at chosen positions (mode bits 2-7: position, low 3 bits of
    // mode also pick the flipped bit).
    for (sel, mode, name) in [
        (0x00, 0x03 | (20 << 2), "v4-esp-mutate-spi"),
        (0x00, 0x03 | (27 << 2), "v4-esp-mutate-seq"),
        (0x08, 0x03 | (40 << 2), "v4-tunnel-mutate-payload"),
        (0x06, 0x03 | (9 << 2), "v4-ah-mutate-protocol"),
        (0x06, 0x03 | (1 << 2), "v4-ah-mutate-tos"),
        (0x01, 0x03 | (6 << 2), "v6-esp-mutate-next-header"),
        (0x80, 0x03 | (24 << 2), "v4-udp-mutate-udp-length"),
    ] {
        let plain = if sel & 1 != 0 {
            udp(A6, B6, 5062, 5068, b"MESSAGE")
        } else {
            udp(A, B, 5062, 5068, b"MESSAGE")
        };
        let mut s = vec![sel, mode];
        s.extend_from_slice(&plain);
        seeds.push((name.to_string(), s));
    }
    // Raw hostile headers.
    let mut trunc = udp(A, B, 1, 2, b"x");
    trunc[9] = 50; // ESP with an 8-byte "ESP header"
    seeds.push((
        "raw-esp-truncated".into(),
        [&[0x00, 0x00][..], &trunc].concat(),
    ));
    let mut ah = udp(A, B, 1, 2, b"0123456789abcdef");
    ah[9] = 51;
    seeds.push(("raw-ah-garbage".into(), [&[0x06, 0x00][..], &ah].concat()));
    seeds.push((
        "raw-esp-only".into(),
        [&[0x00, 0x00][..], &hex("0000010000000001")].concat(),
    ));
    write("esp_decap", &seeds);
}

// ------------------------------------------------------------- setkey_parse

#[test]
#[ignore = "writes fuzz/seeds/setkey_parse; run when the parser changes"]
fn setkey_parse() {
    let k16 = "0x00112233445566778899aabbccddeeff";
    let k20 = "0x0102030405060708090a0b0c0d0e0f1011121314";
    let scripts: Vec<(&str, String)> = vec![
        ("flush", "flush;\nspdflush;\n".into()),
        ("dump", "dump;\ndump esp;\nspddump;\n".into()),
        (
            "add-esp-transport",
            format!("add {A} {B} esp 0x1000 -m transport -E aes-cbc {k16} -A hmac-sha1 {k20};\n"),
        ),
        (
            "add-esp-quoted-keys",
            "add 192.168.0.11 192.168.0.10 esp 4444 -m transport -u 1\n\t-E des-ede3-cbc \"123456789012123456789012\" -A hmac-md5 \"1234567890123456\";\n".into(),
        ),
        ("add-ah", format!("add {A6} {B6} ah 0x300 -m tunnel -A aes-xcbc-mac {k16};\n")),
        (
            "add-esp-udp",
            format!("add {A}[4500] {B}[4500] esp-udp 0x7001 -m tunnel -E aes-cbc {k16} -A aes-cmac {k16};\n"),
        ),
        (
            "add-extensions",
            format!("add -4n {A} {B} esp 0x1001 -m any -r 32 -u 7 -f random-pad -f nocyclic-seq -lh 3600 -ls 3000 -bh 100000 -bs 90000 -E null -A hmac-sha256 0x{};\n", "ab".repeat(32)),
        ),
        ("add-null-only", format!("add {A} {B} esp 300 -E null;\n")),
        ("update-get-delete", format!("update {A} {B} esp 0x1000 -m transport -E aes-cbc {k16};\nget {A} {B} esp 0x1000;\ndelete {A} {B} esp 0x1000;\ndeleteall {A} {B} esp;\n")),
        ("spdadd-ports", format!("spdadd {A}/32[5062] {B}/32[5068] udp -P out ipsec esp/transport//unique:1;\n")),
        ("spdadd-any-port", format!("spdadd {A}[any] {B}[5060] tcp -P in ipsec esp/transport//require;\n")),
        ("spdadd-tunnel", format!("spdadd 10.1.0.0/16 10.2.0.0/16 any -P out ipsec esp/tunnel/{A}-{B}/require;\n")),
        ("spdadd-bundle", "spdadd 10.0.0.1 10.0.0.2 any -P out ipsec esp/transport//require ah/transport//unique:7 esp/transport esp/transport/ ah/transport//use;\n".into()),
        ("spdadd-icmp-type", format!("spdadd {A} {B} icmp 8,0 -P out discard;\nspdadd {A} {B} icmp 3 -P in none;\n")),
        ("spdadd-icmp6", format!("spdadd {A6} {B6} icmp6 135,0 -P out none;\n")),
        ("spdadd-proto-number", format!("spdadd {A} {B} 132 -P fwd none;\n")),
        ("spdadd-priorities", "spdadd 10.0.0.1 10.0.0.2 any -P out prio high + 5 none;\nspdadd 10.0.0.1 10.0.0.3 any -P out priority -5 discard;\nspdadd 10.0.0.1 10.0.0.4 any -P out prio def - 1 none;\nspdadd 10.0.0.1 10.0.0.5 any -P out prio low none;\nspdadd 10.0.0.1 10.0.0.6 any -P out prio 5 none;\n".into()),
        ("spdupdate-spddelete", "spdupdate 10.0.0.1 10.0.0.2 udp -P out none;\nspddelete 10.0.0.1/32[5062] 10.0.0.2/32[any] udp -P out;\n".into()),
        ("ipv6-prefix", "spdadd -6 2001:db8:1::/48[any] 2001:db8:2::/48[443] tcp -P out ipsec esp/tunnel/2001:db8::1-2001:db8::2/require;\n".into()),
        ("comments", format!("# setkey -f\n\nflush; # all SAs\n# policies\nspdflush;\nadd {A} {B} esp 0x10 -E null; # null\n")),
        // Errors the parser must report, not panic on.
        ("err-missing-key", "flush;\nadd 10.0.0.1 10.0.0.2 esp 0x1000\n  -E 3des-cbc ;".into()),
        ("err-unknown-alg", "add 10.0.0.1 10.0.0.2 esp 300 -E foo-cbc 0x00 ;".into()),
        ("err-reserved-spi", "add 10.0.0.1 10.0.0.2 esp 255 -E null ;".into()),
        ("err-unterminated", "add 10.0.0.1 10.0.0.2 esp 300 -E null \"unterminated ;".into()),
        ("err-no-semicolon", "add 10.0.0.1 10.0.0.2 esp 300 -E null".into()),
        ("err-prefix", "spdadd 10.0.0.0/33 10.0.0.2 any -P out none;".into()),
        ("err-family", "add 10.0.0.1 ::2 esp 300 -E null;".into()),
        ("unsupported", "add 10.0.0.1 10.0.0.2 ipcomp 0x1000 -C deflate ;\ngetspi 10.0.0.1 10.0.0.2 esp 0x1000 ;\nspdadd tagged \"foo\" -P out none ;\nadd myhost.example.com 10.0.0.2 esp 0x1000 -E null ;\n".into()),
        ("err-icmp-port", format!("spdadd {A}[1] {B} icmp -P out none;")),
    ];
    let mut seeds: Vec<(String, Vec<u8>)> = scripts
        .into_iter()
        .map(|(n, s)| (n.to_string(), s.into_bytes()))
        .collect();
    // The repository's own setkey files.
    for f in [
        "ipsec-esp/tests/data/strongswan-aes128-sha1/sad.conf",
        "ipsec-esp/tests/data/strongswan-3des-md5/sad.conf",
        "ipsec-esp/tests/data/strongswan-null-sha1/sad.conf",
        "ipsec-esp/tests/data/strongswan-aes256-sha256/sad.conf",
        "tools/tests/fixtures/strongswan/aes128-aesxcbc/sad.conf",
    ] {
        let name = f.replace('/', "_");
        seeds.push((format!("repo-{name}"), fs::read(repo(f)).unwrap()));
    }
    // The setkey scripts of docs/ipsecd.md (its indented or fenced blocks
    // of add/spdadd lines).
    let doc = fs::read_to_string(repo("docs/ipsecd.md")).unwrap();
    let lines: Vec<&str> = doc
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("add ") || l.starts_with("spdadd ") || l.starts_with("flush"))
        .collect();
    assert!(!lines.is_empty(), "docs/ipsecd.md has no setkey lines");
    seeds.push(("docs-ipsecd".into(), (lines.join("\n") + "\n").into_bytes()));
    write("setkey_parse", &seeds);
}

// ------------------------------------------------------------------ sigcomp

/// The RFC 4465 torture messages: (section, message, inputs).
fn torture() -> Vec<(String, Vec<u8>, Vec<Vec<u8>>)> {
    let text = fs::read_to_string(repo("vectors/sigcomp/rfc4465-torture-tests.txt")).unwrap();
    let mut out: Vec<(String, Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("== ") {
            section = s.split_whitespace().next().unwrap_or("").to_string();
        } else if let Some(m) = line.strip_prefix("message ") {
            out.push((section.clone(), hex(m.trim()), Vec::new()));
        } else if let Some(i) = line.strip_prefix("input ") {
            let i = i.trim();
            let bytes = if i == "none" {
                Vec::new()
            } else if let Some(t) = i.strip_prefix("text: ") {
                t.as_bytes().to_vec()
            } else {
                hex(i)
            };
            if let Some(last) = out.last_mut() {
                last.2.push(bytes);
            }
        }
    }
    out
}

/// RFC 3320 §4.2.2 record marking: 0xFF quoted as FF 00, the record ended
/// by FF FF.
fn framed(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in msg {
        out.push(b);
        if b == 0xff {
            out.push(0x00);
        }
    }
    out.extend_from_slice(&[0xff, 0xff]);
    out
}

#[test]
#[ignore = "writes fuzz/seeds/sigcomp_message; run when the target changes"]
fn sigcomp_message() {
    let mut seeds = Vec::new();
    for (n, (section, msg, inputs)) in torture().into_iter().enumerate() {
        let input = inputs.first().cloned().unwrap_or_default();
        let whole = [msg.clone(), input].concat();
        seeds.push((format!("rfc4465-{section}-{n:02}"), whole));
    }
    let dir = repo("vectors/sigcomp/independent");
    for imp in [
        "tinysigcomp-4096-4096-16",
        "tinysigcomp-8192-8192-64",
        "opensigcomp-4096-4096-16",
        "opensigcomp-8192-8192-64",
    ] {
        for f in [
            "010-s1-10-pcscf-202-accepted.sigcomp",
            "cold/002-s1-02-pcscf-401-aka-challenge.sigcomp",
        ] {
            let bytes = fs::read(dir.join(imp).join(f)).unwrap();
            let short = f
                .trim_start_matches("cold/")
                .split('-')
                .next()
                .unwrap_or("x");
            let cold = if f.starts_with("cold/") { "cold-" } else { "" };
            seeds.push((format!("{imp}-{cold}{short}"), bytes));
        }
    }
    // Record-marked (TCP) forms: two messages in one stream.
    let t = torture();
    let two = [framed(&t[0].1), framed(&t[1].1)].concat();
    seeds.push((
        "stream-two-records".into(),
        [&[0xff, 0xff][..], &two].concat(),
    ));
    let rfc4896 = hex("f800a11c01860922860116f923");
    seeds.push((
        "stream-rfc4896-11".into(),
        framed(&[&rfc4896[..], b"SIP/2.0 200 OK\r\n"].concat()),
    ));
    seeds.push((
        "rfc4896-11-output-rest".into(),
        [&rfc4896[..], b"SIP/2.0 200 OK\r\n"].concat(),
    ));
    // A NACK (RFC 4077) for a message too short.
    let states = sigcomp::StateHandler::with_dictionaries();
    let mut d = sigcomp::Decompressor::new(sigcomp::Parameters::default()).unwrap();
    let f = d
        .decompress(&[0xf8, 0x00], sigcomp::Transport::Message, &states)
        .unwrap_err();
    let mut nack = Vec::new();
    sigcomp::Nack::from_failure(&f, &[0xf8, 0x00]).emit(&mut nack);
    seeds.push(("nack-message-too-short".into(), nack));
    write("sigcomp_message", &seeds);
}

/// A `sigcomp_bytecode` input for bytecode to be loaded at
/// `(dest + 1) × 64`, followed by `input`: the control byte's low nibble is
/// the destination and it times 8 the bytecode length, so the code is
/// padded with zeros to a multiple of 8 (memory there is zero anyway).
fn bytecode_input(code: &[u8], dest: u8, input: &[u8]) -> Option<Vec<u8>> {
    let need = code.len().div_ceil(8);
    let ctl = (need..256).find(|c| c & 0x0f == usize::from(dest))?;
    let ctl = u8::try_from(ctl).ok()?;
    let mut out = vec![ctl];
    out.extend_from_slice(code);
    out.resize(1 + usize::from(ctl) * 8, 0);
    out.extend_from_slice(input);
    Some(out)
}

#[test]
#[ignore = "writes fuzz/seeds/sigcomp_bytecode; run when the target changes"]
fn sigcomp_bytecode() {
    let mut seeds = Vec::new();
    for (n, (section, msg, inputs)) in torture().into_iter().enumerate() {
        // Bytecode-carrying messages only (RFC 3320 §7: 11111 T=0 len=000).
        let [0xf8, hi, lo, rest @ ..] = &msg[..] else {
            continue;
        };
        let code_len = (usize::from(*hi) << 4) | usize::from(lo >> 4);
        let dest = lo & 0x0f;
        if dest == 0 || code_len > rest.len() {
            continue;
        }
        let (code, appended) = rest.split_at(code_len);
        let input = [appended, &inputs.first().cloned().unwrap_or_default()[..]].concat();
        if let Some(s) = bytecode_input(code, dest, &input) {
            seeds.push((format!("rfc4465-{section}-{n:02}"), s));
        }
    }
    // RFC 4464 Appendix A: the algorithms of §4 (code at 128; DEFLATE 320).
    let text = fs::read_to_string(repo("vectors/sigcomp/asm/rfc4464-appendix-a.txt")).unwrap();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((file, code)) = line.split_once(" = ") else {
            continue;
        };
        let dest = if file.contains("4.1.4-deflate") { 4 } else { 1 };
        let name = file.trim_end_matches(".asm");
        let s = bytecode_input(&hex(code.trim()), dest, b"\x00\x01\x02\x03SIP/2.0").unwrap();
        seeds.push((name.to_string(), s));
    }
    write("sigcomp_bytecode", &seeds);
}

/// `sigcomp_native` inputs: each corpus message as our compressor sends
/// it first (uploading the bytecode, preloading slices of the
/// dictionaries), its input after the header and bytecode, at two memory
/// sizes.
#[test]
#[ignore = "writes fuzz/seeds/sigcomp_native; run when the target changes"]
fn sigcomp_native() {
    use sigcomp::compress::{Compressor, Config, Kind};
    use sigcomp::feedback::Resources;
    let dir = repo("vectors/sigcomp/independent/corpus");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .collect();
    files.sort();
    let code = sigcomp::compress::bytecode::upload();
    let mut seeds = Vec::new();
    // ctl: memory 2048 << (ctl & 7), 16 cycles per bit.
    for (ctl, dms) in [(2u8, 8192u32), (5, 65536)] {
        for f in &files {
            let mut c = Compressor::new(Config {
                peer: Resources {
                    cycles_per_bit: 16,
                    decompression_memory_size: dms,
                    state_memory_size: dms.min(16384),
                },
                ..Config::default()
            })
            .unwrap();
            let mut wire = Vec::new();
            if c.compress(&fs::read(f).unwrap(), &mut wire).kind != Kind::SigComp {
                continue;
            }
            // 0xf8, code_len and destination, the code, then the input.
            assert_eq!(&wire[3..3 + code.len()], code);
            let mut seed = vec![ctl];
            seed.extend_from_slice(&wire[3 + code.len()..]);
            let name = f.file_stem().unwrap().to_string_lossy();
            seeds.push((format!("{dms}-{name}"), seed));
        }
    }
    assert!(seeds.len() >= 20, "{} seeds", seeds.len());
    write("sigcomp_native", &seeds);
}

// ------------------------------------------------------------------- engine

/// Port indexes of the engine's port table.
mod port {
    pub const P5060: u8 = 0;
    pub const P5062: u8 = 1;
    pub const P5064: u8 = 2;
    pub const P5066: u8 = 3;
    pub const P5068: u8 = 4;
    pub const P4500: u8 = 5;
    pub const P6000: u8 = 6;
    pub const P7000: u8 = 7;
    pub const P9000: u8 = 8;
    pub const P53: u8 = 9;
    pub const P1: u8 = 12;
    pub const P80: u8 = 13;
    pub const P443: u8 = 14;
}

/// Packet kinds of the structure-aware mode.
mod kind {
    pub const UDP: u8 = 0;
    pub const TCP: u8 = 1;
    pub const ECHO: u8 = 2;
    pub const ICMP_ERROR: u8 = 3;
    pub const ICMP_ANY: u8 = 4;
    pub const PROTOCOL: u8 = 5;
    pub const PACKET: u8 = 6;
}

/// One structure-aware `engine` input.
struct Pkt {
    config: u8,
    /// Byte 1: bit 1 mutate, bits 2-5 room (bit 0 is set here).
    mode: u8,
    kind: u8,
    reverse: bool,
    host: u8,
    sport: u8,
    dport: u8,
    at: u16,
    flip: u8,
}

impl Pkt {
    fn new(config: u8, kind: u8, sport: u8, dport: u8) -> Pkt {
        Pkt {
            config,
            mode: 0,
            kind,
            reverse: false,
            host: 0,
            sport,
            dport,
            at: 0,
            flip: 0,
        }
    }
    fn rev(mut self) -> Pkt {
        self.reverse = true;
        self
    }
    fn host(mut self, h: u8) -> Pkt {
        self.host = h;
        self
    }
    fn mutate(mut self, at: u16, flip: u8) -> Pkt {
        self.mode |= 2;
        self.at = at;
        self.flip = flip;
        self
    }
    fn rooms(mut self, head: u8, tail: u8) -> Pkt {
        self.mode |= (head << 2) | (tail << 4);
        self
    }
    fn bytes(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![
            self.config,
            self.mode | 1,
            self.kind | (u8::from(self.reverse) << 3) | (self.host << 4),
            (self.sport << 4) | self.dport,
        ];
        out.extend_from_slice(&self.at.to_be_bytes());
        out.push(self.flip);
        out.extend_from_slice(payload);
        out
    }
}

/// Raw-mode input.
fn raw(config: u8, bytes: &[u8]) -> Vec<u8> {
    [&[config, 0x00][..], bytes].concat()
}

/// An IPv6 packet with a Hop-by-Hop header in front of UDP, built by hand
/// (the builder writes none).
fn v6_hop_by_hop_udp(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let plain = udp(src, dst, 5062, 5068, payload);
    let (hdr, l4) = plain.split_at(40);
    let mut out = hdr.to_vec();
    out[6] = 0; // Next Header: Hop-by-Hop
    let len = u16::from_be_bytes([out[4], out[5]]) + 8;
    out[4..6].copy_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // UDP next, PadN
    out.extend_from_slice(l4);
    out
}

/// An IPv4 packet with 4 bytes of options (NOP ×3, EOL) before UDP.
fn v4_options_udp(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let plain = udp(src, dst, 5062, 5068, payload);
    let (hdr, l4) = plain.split_at(20);
    let mut out = hdr.to_vec();
    out[0] = 0x46;
    let len = u16::from_be_bytes([out[2], out[3]]) + 4;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[1, 1, 1, 0]);
    out.extend_from_slice(l4);
    // The engine target recomputes the checksum.
    out
}

#[test]
#[ignore = "writes fuzz/seeds/engine; run when the target or its configurations change"]
fn engine() {
    use kind::*;
    use port::*;
    assert_eq!(fuzzing::seed::engine_configurations(), 10);
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, bytes: Vec<u8>| seeds.push((name.to_string(), bytes));
    let sip = SIP;
    // 0: Gm over IPv4, ESP transport, every kind of policy.
    add(
        "c0-udp-5062-5068",
        Pkt::new(0, UDP, P5062, P5068).bytes(sip),
    );
    add(
        "c0-udp-5068-5062-back",
        Pkt::new(0, UDP, P5068, P5062).rev().bytes(sip),
    );
    add(
        "c0-tcp-5064-5066",
        Pkt::new(0, TCP, P5064, P5066).bytes(sip),
    );
    add(
        "c0-tcp-5066-5064-back",
        Pkt::new(0, TCP, P5066, P5064).rev().bytes(sip),
    );
    add(
        "c0-udp-5060-none",
        Pkt::new(0, UDP, P5060, P5060).bytes(sip),
    );
    add(
        "c0-udp-7000-discard",
        Pkt::new(0, UDP, P7000, P53).bytes(b"q"),
    );
    add("c0-echo-require", Pkt::new(0, ECHO, 0, 0).bytes(b"ping"));
    add(
        "c0-icmp-error-about-gm-flow",
        Pkt::new(0, ICMP_ERROR, P5068, P5062)
            .rev()
            .bytes(b"REGISTER"),
    );
    add(
        "c0-udp-6000-use-no-sa",
        Pkt::new(0, UDP, P6000, P6000).bytes(b"x"),
    );
    add(
        "c0-other-host-no-policy",
        Pkt::new(0, UDP, P5062, P5068).host(1).bytes(b"x"),
    );
    add(
        "c0-mutate-spi",
        Pkt::new(0, UDP, P5062, P5068).mutate(20, 0x01).bytes(sip),
    );
    add(
        "c0-mutate-seq",
        Pkt::new(0, UDP, P5062, P5068).mutate(27, 0x80).bytes(sip),
    );
    add(
        "c0-mutate-protocol",
        Pkt::new(0, UDP, P5062, P5068).mutate(9, 0x0f).bytes(sip),
    );
    add(
        "c0-mutate-icv",
        Pkt::new(0, UDP, P5062, P5068)
            .mutate(0xffff, 0x01)
            .bytes(sip),
    );
    add(
        "c0-room-none",
        Pkt::new(0, UDP, P5062, P5068).rooms(1, 1).bytes(sip),
    );
    add(
        "c0-room-40-72",
        Pkt::new(0, UDP, P5062, P5068).rooms(2, 3).bytes(sip),
    );
    add(
        "c0-clear-under-require",
        raw(0, &udp(B, A, 5068, 5062, b"x")),
    );
    // 1: IPv6 ESP tunnel between prefixes.
    add("c1-udp", Pkt::new(1, UDP, P5062, P5068).bytes(sip));
    add(
        "c1-tcp-back",
        Pkt::new(1, TCP, P80, P443).rev().bytes(b"GET"),
    );
    add("c1-echo6", Pkt::new(1, ECHO, 0, 0).bytes(b"ping"));
    add(
        "c1-icmp6-error",
        Pkt::new(1, ICMP_ERROR, P53, P1).rev().bytes(b"query"),
    );
    add(
        "c1-gateways-no-policy",
        Pkt::new(1, UDP, P53, P53).host(1).bytes(b"x"),
    );
    add(
        "c1-outside-prefix",
        Pkt::new(1, UDP, P53, P53).host(2).bytes(b"x"),
    );
    add(
        "c1-hop-by-hop",
        Pkt::new(1, PACKET, 0, 0).bytes(&v6_hop_by_hop_udp(
            "2001:db8:1::10",
            "2001:db8:2::20",
            b"hbh",
        )),
    );
    add(
        "c1-mutate-inner",
        Pkt::new(1, UDP, P5062, P5068).mutate(100, 0x04).bytes(sip),
    );
    // 2: AH.
    add(
        "c2-ah-transport-udp",
        Pkt::new(2, UDP, P5062, P5068).bytes(sip),
    );
    add(
        "c2-ah-transport-back",
        Pkt::new(2, TCP, P5068, P5062).rev().bytes(sip),
    );
    add(
        "c2-ah-tunnel-v6",
        Pkt::new(2, UDP, P5062, P5068).host(1).bytes(sip),
    );
    add(
        "c2-ah-tunnel-v6-echo-back",
        Pkt::new(2, ECHO, 0, 0).host(1).rev().bytes(b"ping"),
    );
    add(
        "c2-ah-ipv4-options",
        Pkt::new(2, PACKET, 0, 0).bytes(&v4_options_udp(A, B, b"opts")),
    );
    add(
        "c2-mutate-ttl",
        Pkt::new(2, UDP, P5062, P5068).mutate(8, 0x10).bytes(sip),
    );
    add(
        "c2-mutate-payload",
        Pkt::new(2, UDP, P5062, P5068).mutate(60, 0x10).bytes(sip),
    );
    // 3: ESP in UDP.
    add(
        "c3-udp-tunnel-4500",
        Pkt::new(3, UDP, P5060, P5060).bytes(sip),
    );
    add(
        "c3-tcp-tunnel-back",
        Pkt::new(3, TCP, P80, P443).rev().bytes(b"x"),
    );
    add(
        "c3-v6-transport-gm-ports",
        Pkt::new(3, UDP, P5062, P5068).host(2).bytes(sip),
    );
    add(
        "c3-v6-transport-5060",
        Pkt::new(3, UDP, P5060, P5060).host(2).bytes(sip),
    );
    add(
        "c3-v6-tcp-use",
        Pkt::new(3, TCP, P5060, P5060).host(2).bytes(b"x"),
    );
    add(
        "c3-gateways-4500-clear",
        Pkt::new(3, UDP, P4500, P4500).host(1).bytes(&[0xff]),
    );
    add(
        "c3-mutate-udp-header",
        Pkt::new(3, UDP, P5060, P5060).mutate(24, 0x01).bytes(sip),
    );
    // 4: bundle, ESP-NULL, ESP without integrity.
    add("c4-bundle", Pkt::new(4, UDP, P5062, P5068).bytes(sip));
    add(
        "c4-bundle-back-esp-null",
        Pkt::new(4, UDP, P5068, P5062).rev().bytes(sip),
    );
    add(
        "c4-v6-des-noauth",
        Pkt::new(4, UDP, P5062, P5068).host(1).bytes(sip),
    );
    add(
        "c4-v6-3des-noauth-back",
        Pkt::new(4, ECHO, 0, 0).host(1).rev().bytes(b"ping"),
    );
    add(
        "c4-mutate-noauth",
        Pkt::new(4, UDP, P5062, P5068)
            .host(1)
            .mutate(70, 0x02)
            .bytes(sip),
    );
    // 5: priorities, ICMP selectors, use/require without SAs.
    add(
        "c5-udp-5060-prio-high-none",
        Pkt::new(5, UDP, P5060, P53).bytes(b"x"),
    );
    add("c5-tcp-unique", Pkt::new(5, TCP, P80, P443).bytes(b"x"));
    add("c5-echo-discard", Pkt::new(5, ECHO, 0, 0).bytes(b"ping"));
    add(
        "c5-icmp-error-use",
        Pkt::new(5, ICMP_ERROR, P1, P1).bytes(b"x"),
    );
    add("c5-udp-require-low", Pkt::new(5, UDP, P1, P1).bytes(b"x"));
    add(
        "c5-ah-require-no-sa",
        Pkt::new(5, UDP, P1, P9000).rev().bytes(b"x"),
    );
    add(
        "c5-back-require",
        Pkt::new(5, UDP, P1, P1).rev().bytes(b"x"),
    );
    add(
        "c5-icmp6-ns-none",
        Pkt::new(5, ICMP_ANY, 0, 0)
            .host(1)
            .bytes(&[135, 0, 0, 0, 0, 0, 0x20, 0x01]),
    );
    add(
        "c5-v6-require-no-sa",
        Pkt::new(5, UDP, P1, P1).host(1).bytes(b"x"),
    );
    add(
        "c5-v6-use-no-sa-back",
        Pkt::new(5, UDP, P1, P1).host(1).rev().bytes(b"x"),
    );
    add("c5-clear-ah-9000", raw(5, &udp(B, A, 1, 9000, b"x")));
    // 6: SAs, no policy; 7: nothing.
    add(
        "c6-udp-no-policy",
        Pkt::new(6, UDP, P5062, P5068).bytes(b"x"),
    );
    add("c7-udp-empty", Pkt::new(7, UDP, P5062, P5068).bytes(b"x"));
    add(
        "c7-proto-gre",
        Pkt::new(7, PROTOCOL, 0, 0).bytes(&[47, 0, 0, 8, 0]),
    );
    // 8: IPv4 tunnel, use one way, require the other.
    add("c8-use-with-sa", Pkt::new(8, UDP, P5060, P5060).bytes(sip));
    add(
        "c8-require-back",
        Pkt::new(8, UDP, P5060, P5060).rev().bytes(sip),
    );
    add("c8-dns-bypass", Pkt::new(8, UDP, P1, P53).bytes(b"q"));
    add("c8-outside", Pkt::new(8, UDP, P1, P53).host(1).bytes(b"q"));
    add(
        "c8-icmp-error-back",
        Pkt::new(8, ICMP_ERROR, P5060, P5060).rev().bytes(b"x"),
    );
    add(
        "c8-proto-esp-inside",
        Pkt::new(8, PROTOCOL, 0, 0).bytes(&[50, 0, 0, 1, 0, 0, 0, 0, 1]),
    );
    // 9: Gm over IPv6, ICMPv6 errors.
    add("c9-udp", Pkt::new(9, UDP, P5062, P5068).bytes(sip));
    add(
        "c9-udp-back",
        Pkt::new(9, UDP, P5068, P5062).rev().bytes(sip),
    );
    add(
        "c9-icmp6-error-about-gm-flow",
        Pkt::new(9, ICMP_ERROR, P5068, P5062)
            .rev()
            .bytes(b"REGISTER"),
    );
    add(
        "c9-icmp6-error-other-flow",
        Pkt::new(9, ICMP_ERROR, P1, P1).bytes(b"x"),
    );
    add("c9-echo6-no-policy", Pkt::new(9, ECHO, 0, 0).bytes(b"ping"));
    // Raw mode: packets each configuration's sender protects, as the
    // hostile receiver gets them (whole; and header-stripped, which the raw
    // mode also tries).
    for (config, src, dst, sport, dport, name) in [
        (0, A, B, 5062, 5068, "c0-esp-transport"),
        (
            1,
            "2001:db8:1::10",
            "2001:db8:2::20",
            1,
            2,
            "c1-esp-tunnel-v6",
        ),
        (2, A, B, 1, 2, "c2-ah-transport"),
        (2, A6, B6, 1, 2, "c2-ah-tunnel-v6"),
        (3, "10.1.0.5", "10.2.0.9", 1, 2, "c3-esp-in-udp"),
        (3, A6, B6, 5062, 5068, "c3-esp-in-udp-v6-gm-ports"),
        (4, A, B, 1, 2, "c4-bundle"),
        (4, A6, B6, 1, 2, "c4-esp-noauth"),
        (8, "10.1.2.3", "10.2.3.4", 1, 2, "c8-esp-tunnel"),
        (9, A6, B6, 5062, 5068, "c9-esp-transport-v6"),
    ] {
        let plain = udp(src, dst, sport, dport, sip);
        let protected = |nth| {
            fuzzing::seed::engine_protected(config, &plain, nth)
                .unwrap_or_else(|| panic!("{name}: not protected"))
        };
        add(&format!("raw-{name}"), raw(config, &protected(1)));
        // Without the IP header (a raw socket; for ESP in UDP also
        // without the UDP header), with the next sequence number.
        let wire = protected(2);
        let v4 = wire[0] >> 4 == 4;
        let mut strip = if v4 { 20 } else { 40 };
        if config == 3 {
            strip += 8;
        }
        add(&format!("raw-{name}-stripped"), raw(config, &wire[strip..]));
    }
    // Configuration 6 has no policy to protect with: its SA with one.
    let mut c6 = sadb::Databases::new();
    let k = "-E aes-cbc 0x00112233445566778899aabbccddeeff -A hmac-sha1 0x0102030405060708090a0b0c0d0e0f1011121314";
    c6.apply_script(
        &format!("add {A} {B} esp 0x9101 -m transport {k};\nspdadd {A} {B} any -P out ipsec esp/transport//require;\n"),
        sadb::Timestamp(1_795_314_303),
    )
    .unwrap();
    let plain = udp(A, B, 5062, 5068, sip);
    let (mut buf, r) = (vec![0u8; 128 + plain.len() + 128], 128..128 + plain.len());
    buf[r.clone()].copy_from_slice(&plain);
    let mut iv = |iv: &mut [u8]| iv.fill(7);
    let sadb::Outgoing::Protected(p) =
        c6.protect(&mut buf, r, sadb::Timestamp(1_795_314_303), &mut iv)
    else {
        panic!("configuration 6's SA does not protect");
    };
    add("raw-c6-esp-no-policy", raw(6, &buf[p.packet.clone()]));
    add(
        "raw-c6-esp-no-policy-stripped",
        raw(6, &buf[p.packet.start + 20..p.packet.end]),
    );
    add("raw-c7-empty", raw(7, &[]));
    add(
        "raw-c0-v4-header-only",
        raw(0, &hex("450000140000000040010000c0000201c0000202")),
    );
    write("engine", &seeds);
}

// ---------------------------------------------------------------- sip_parse

#[test]
#[ignore = "writes fuzz/seeds/sip_parse; run when the target changes"]
fn sip_parse() {
    let mut seeds = Vec::new();
    for (dir, prefix, ext) in [
        ("vectors/sip-torture", "rfc4475-", "dat"),
        ("vectors/sip-corpus", "corpus-", "sip"),
    ] {
        let mut files: Vec<PathBuf> = fs::read_dir(repo(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .collect();
        files.sort();
        for f in files {
            let name = f.file_stem().unwrap().to_string_lossy().into_owned();
            seeds.push((format!("{prefix}{name}"), fs::read(&f).unwrap()));
        }
    }
    let reg = fs::read(repo("vectors/sip-corpus/01-register.sip")).unwrap();
    let ok = fs::read(repo("vectors/sip-corpus/09-200-message.sip")).unwrap();
    // A stream: CRLF keep-alives, then two messages back to back.
    seeds.push((
        "stream-crlf-two-messages".into(),
        [&b"\r\n\r\n"[..], &reg, &ok].concat(),
    ));
    // Framing edge cases.
    for (name, bytes) in [
        ("no-headers", &b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"[..]),
        ("bare-lf", b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h\n\n"),
        ("fold-after-colon", b"OPTIONS sip:a@b SIP/2.0\r\nTo:\r\n <sip:a@b>\r\nl:\r\n 0\r\n\r\n"),
        ("no-content-length-body", b"MESSAGE sip:a@b SIP/2.0\r\nc: text/plain\r\n\r\nhello"),
        ("huge-content-length", b"MESSAGE sip:a@b SIP/2.0\r\nl: 99999999999999999999999\r\n\r\n"),
        ("contact-star", b"REGISTER sip:a SIP/2.0\r\nContact: *\r\nm: <sip:x@y>\r\n\r\n"),
        ("auth-unknown-scheme", b"REGISTER sip:a SIP/2.0\r\nAuthorization: X a=b, c=\"d\\\"e\"\r\n\r\n"),
        ("security-verify", b"REGISTER sip:a SIP/2.0\r\nSecurity-Verify: ipsec-3gpp;q=0.1;alg=hmac-md5-96;spi-c=1;spi-s=2;port-c=3;port-s=4;mod=trans;prot=esp\r\n\r\n"),
        ("response-utf8-reason", "SIP/2.0 200 \u{43e}\u{43a}\r\nVia: SIP/2.0/UDP h;received=2001:db8::1;rport=1\r\n\r\n".as_bytes()),
    ] {
        seeds.push((name.into(), bytes.to_vec()));
    }
    write("sip_parse", &seeds);
}

// ---------------------------------------------------------------- sms_decode

#[test]
#[ignore = "writes fuzz/seeds/sms_decode; run when the target changes"]
fn sms_decode() {
    use gm::sms::{
        Address, Body, Concat, Dcs, Deliver, DeliverReport, Direction, RpAck, RpCause, RpData,
        RpError, RpMessage, StatusReport, Submit, SubmitReport, Timestamp, Tpdu, UserData,
        ValidityPeriod, split,
    };
    let mut seeds = Vec::new();
    // The seed's two captured payloads, with their service-centre prefix.
    let text = fs::read_to_string(repo("gm/tests/data/sms-seed.txt")).unwrap();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some((name, h)) = line.split_once(" = ") {
            seeds.push((format!("seed-{name}"), hex(h.trim())));
        }
    }
    let ts = Timestamp {
        year: 26,
        month: 12,
        day: 5,
        hour: 3,
        minute: 4,
        second: 5,
        tz_quarters: -22,
    };
    let sc = Address::international("331000000");
    let submit = |vp, ud: UserData| {
        Tpdu::Submit(Submit {
            reject_duplicates: true,
            status_report_request: true,
            reply_path: false,
            message_ref: 9,
            destination: Address::international("3361234567"),
            pid: 0,
            dcs: ud.dcs(),
            validity: vp,
            user_data: ud,
        })
    };
    let deliver = |oa: Address, ud: UserData| {
        Tpdu::Deliver(Deliver {
            more_messages_to_send: false,
            loop_prevention: false,
            status_report_indication: true,
            reply_path: false,
            originator: oa,
            pid: 0,
            dcs: ud.dcs(),
            scts: ts,
            user_data: ud,
        })
    };
    let long = "Hello {world} € ".repeat(20);
    let mut tpdus = vec![
        (
            "submit-gsm7-relative",
            submit(
                Some(ValidityPeriod::Relative(167)),
                UserData::text("salut [x] ~"),
            ),
        ),
        (
            "submit-ucs2-absolute",
            submit(
                Some(ValidityPeriod::Absolute(ts)),
                UserData::text("Привет 😀"),
            ),
        ),
        (
            "submit-8bit-enhanced",
            submit(
                Some(ValidityPeriod::Enhanced([1, 0xA7, 0, 0, 0, 0, 0])),
                UserData {
                    header: None,
                    body: Body::Data8(vec![0, 1, 2, 0xFF]),
                },
            ),
        ),
        (
            "deliver-alphanumeric",
            deliver(Address::alphanumeric("Orange"), UserData::text("promo")),
        ),
        (
            "deliver-concat16-ucs2",
            deliver(
                Address::international("3361234567"),
                UserData {
                    header: Some(vec![
                        Concat {
                            reference: 0x1234,
                            wide: true,
                            total: 2,
                            seq: 2,
                        }
                        .ie(),
                    ]),
                    body: Body::Ucs2("мир".encode_utf16().collect()),
                },
            ),
        ),
        (
            "status-report",
            Tpdu::StatusReport(StatusReport {
                more_messages_to_send: false,
                loop_prevention: false,
                status_report_qualifier: false,
                message_ref: 9,
                recipient: Address::international("3361234567"),
                scts: ts,
                discharge_time: ts,
                status: 0,
                pid: Some(0),
                dcs: Some(Dcs::GSM7),
                user_data: Some(UserData::text("ok")),
            }),
        ),
        (
            "submit-report-ack",
            Tpdu::SubmitReport(SubmitReport {
                failure_cause: None,
                scts: ts,
                pid: None,
                dcs: None,
                user_data: None,
            }),
        ),
        (
            "submit-report-error",
            Tpdu::SubmitReport(SubmitReport {
                failure_cause: Some(0xC3),
                scts: ts,
                pid: Some(0),
                dcs: Some(Dcs::UCS2),
                user_data: Some(UserData::text("échec 失败")),
            }),
        ),
        (
            "deliver-report-ack",
            Tpdu::DeliverReport(DeliverReport {
                failure_cause: None,
                pid: None,
                dcs: None,
                user_data: None,
            }),
        ),
        (
            "deliver-report-error",
            Tpdu::DeliverReport(DeliverReport {
                failure_cause: Some(0xD3),
                pid: Some(0),
                dcs: None,
                user_data: None,
            }),
        ),
    ];
    for (i, part) in split(&long, 0x42, false).unwrap().into_iter().enumerate() {
        tpdus.push((
            [
                "submit-concat8-part1",
                "submit-concat8-part2",
                "submit-concat8-part3",
            ][i.min(2)],
            submit(None, part),
        ));
    }
    for (i, (name, t)) in tpdus.iter().enumerate() {
        let bytes = t.encode().unwrap();
        seeds.push((format!("tpdu-{name}"), bytes.clone()));
        let mr = i as u8;
        let rp = match t {
            Tpdu::Submit(_) => RpMessage::Data(RpData::mo(mr, sc.clone(), t).unwrap()),
            Tpdu::Deliver(_) | Tpdu::StatusReport(_) => {
                RpMessage::Data(RpData::mt(mr, sc.clone(), t).unwrap())
            }
            Tpdu::SubmitReport(SubmitReport {
                failure_cause: Some(_),
                ..
            })
            | Tpdu::DeliverReport(DeliverReport {
                failure_cause: Some(_),
                ..
            }) => RpMessage::Error(RpError {
                direction: t.direction(),
                message_ref: mr,
                cause: RpCause {
                    value: 41,
                    diagnostic: vec![0x11],
                },
                user_data: Some(bytes),
            }),
            _ => RpMessage::Ack(RpAck {
                direction: t.direction(),
                message_ref: mr,
                user_data: Some(bytes),
            }),
        };
        seeds.push((format!("rp-{name}"), rp.encode().unwrap()));
    }
    for (name, m) in [
        (
            "rp-ack-empty",
            RpMessage::Ack(RpAck {
                direction: Direction::NetworkToMs,
                message_ref: 1,
                user_data: None,
            }),
        ),
        (
            "rp-error-no-tpdu",
            RpMessage::Error(RpError {
                direction: Direction::NetworkToMs,
                message_ref: 2,
                cause: RpCause {
                    value: 111,
                    diagnostic: vec![],
                },
                user_data: None,
            }),
        ),
        ("rp-smma", RpMessage::Smma { message_ref: 3 }),
    ] {
        seeds.push((name.into(), m.encode().unwrap()));
    }
    write("sms_decode", &seeds);
}

// ---------------------------------------------------------------- gm_roles

#[test]
#[ignore = "writes fuzz/seeds/gm_roles; run when the target changes"]
fn gm_roles() {
    // Scripts of `fuzzing::gm_roles`: one byte picks the step (its value
    // modulo 8), the next bytes are its arguments.
    let raw = |dir: u8, ue_port: u8, net_port: u8, bytes: &[u8]| {
        let mut s = vec![0, dir, ue_port, net_port, bytes.len().div_ceil(4) as u8];
        s.extend_from_slice(bytes);
        s.resize(s.len() + (4 - bytes.len() % 4) % 4, b' ');
        s
    };
    let mutate = |which: u16, edits: &[(u8, u16, u8)], route: u8| {
        let mut s = vec![1];
        s.extend_from_slice(&which.to_be_bytes());
        s.push(edits.len() as u8);
        for (kind, at, v) in edits {
            s.push(*kind);
            s.extend_from_slice(&at.to_be_bytes());
            s.push(*v);
        }
        s.push(route);
        s
    };
    let options = b"OPTIONS sip:ue0@ims.example.org SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:ue0@ims.example.org>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n";
    let register = b"REGISTER sip:ims.example.org SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:6100;branch=z9hG4bKr\r\nFrom: <sip:ue0@ims.example.org>;tag=1\r\nTo: <sip:ue0@ims.example.org>\r\nCall-ID: r\r\nCSeq: 9 REGISTER\r\nContact: <sip:192.0.2.10:6101>\r\nExpires: 0\r\nl: 0\r\n\r\n";
    let mut seeds: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("time-hour".into(), [4, 255, 4, 255, 4, 255].to_vec()),
        ("options-to-network-clear".into(), raw(0, 3, 3, options)),
        ("options-to-network-protected".into(), raw(0, 0, 1, options)),
        ("options-to-ue-protected".into(), raw(1, 2, 0, options)),
        ("options-to-ue-clear".into(), raw(1, 3, 3, options)),
        ("register-expires-0-clear".into(), raw(0, 3, 3, register)),
        (
            "register-expires-0-protected".into(),
            raw(0, 0, 1, register),
        ),
        ("register-from-stranger".into(), raw(0x40, 0, 1, register)),
        ("garbage".into(), raw(0, 0, 1, &[0xff; 40])),
    ];
    for (i, cmd) in (0..8u8).enumerate() {
        seeds.push((format!("command-{i}"), vec![5, cmd, 40, 2, 255, 4, 200]));
        seeds.push((
            format!("command-{i}-lost"),
            vec![5, cmd, 40, 3, 255, 4, 250, 4, 250],
        ));
        seeds.push((
            format!("command-{i}-duplicated"),
            vec![5, cmd | 0x10, 60, 7, 0, 7, 0, 6, 0, 2, 2, 255],
        ));
    }
    for which in 0..12u16 {
        seeds.push((format!("mutated-{which}-as-is"), mutate(which, &[], 0)));
        seeds.push((
            format!("mutated-{which}-edited"),
            mutate(which, &[(0, 0, b'X'), (4, 60, 0), (2, 100, 7)], 0),
        ));
        seeds.push((format!("mutated-{which}-clear"), mutate(which, &[], 3)));
        seeds.push((
            format!("mutated-{which}-other-flow"),
            mutate(which, &[], 0x15),
        ));
        seeds.push((
            format!("mutated-{which}-cut"),
            mutate(which, &[(3, 200, 0)], 0x80),
        ));
    }
    write("gm_roles", &seeds);
}
