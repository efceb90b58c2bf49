//! `sigcomp flow`: every message of a flow is checked by our decompressor
//! inside the command, and tshark 4.0 (an independent UDVM) decompresses
//! every message of the `--pcap` capture byte-exact: first messages
//! (bytecode upload) and stateful ones (6-byte partial state ids,
//! STATE-ACCESS of dictionary slices and earlier messages).
//!
//! Needs `tshark` on PATH; without it the tshark part prints a notice and
//! is skipped, unless `CI` is set, where a missing tshark is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{Peer, tshark};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

use testkit::corpus::sip_paths as sip_files;

fn flow_and_check(name: &str, extra: &[&str], files: &[PathBuf]) {
    let dir = std::env::temp_dir().join(format!("h9-flow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("flow.pcap");
    let out_dir = dir.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_sigcomp"))
        .arg("flow")
        .args(extra)
        .arg("--pcap")
        .arg(&pcap)
        .arg("--out-dir")
        .arg(&out_dir)
        .args(files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "all {} messages decompressed byte-exact",
            files.len()
        )),
        "{stdout}"
    );
    // --out-dir: one file per message, in input order.
    let sent: Vec<Vec<u8>> = (1..=files.len())
        .map(|i| std::fs::read(out_dir.join(format!("{i:03}.sigcomp"))).unwrap())
        .collect();
    assert!(
        !out_dir
            .join(format!("{:03}.sigcomp", files.len() + 1))
            .exists()
    );
    let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let total_sent: usize = sent.iter().map(Vec::len).sum();
    let total_orig: usize = originals.iter().map(Vec::len).sum();
    assert!(
        total_sent <= total_orig + 3 * files.len(),
        "{name}: {total_sent} of {total_orig}"
    );
    if testkit::require(
        &format!("tshark cross-check of flow {name}"),
        &[Peer::Tshark],
    ) {
        // Plain messages went to port 5060; every SigComp one must come
        // out of tshark (a frame it cannot decompress has no
        // "Frame (" block and shifts the count).
        let expected: Vec<&Vec<u8>> = sent
            .iter()
            .zip(&originals)
            .filter(|(s, o)| s != o)
            .map(|(_, o)| o)
            .collect();
        let got = tshark::sigcomp_decompressed(&pcap, &["-Y", "udp.port == 5555"]);
        assert_eq!(
            got.len(),
            expected.len(),
            "{name}: SigComp frames decompressed by tshark"
        );
        for (i, (g, o)) in got.iter().zip(&expected).enumerate() {
            let g = g.as_ref().unwrap_or_else(|| {
                panic!("{name}: tshark did not decompress SigComp frame {}", i + 1)
            });
            assert_eq!(&g, o, "{name}: SigComp frame {} differs in tshark", i + 1);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flow_is_decompressed_by_tshark() {
    let c = root().join("vectors/sigcomp/independent/corpus");
    let mut files = sip_files(&c);
    files.extend(sip_files(&c.join("session2")));
    files.extend(sip_files(&root().join("vectors/sip-corpus")));
    flow_and_check("8192", &[], &files);
    flow_and_check("4096", &["--dms", "4096", "--sms", "4096"], &files);
    flow_and_check(
        "best-sms4096",
        &["--level", "best", "--sms", "4096"],
        &files,
    );
}

#[test]
fn first_messages_are_decompressed_by_tshark() {
    // Each file alone: a fresh compartment that uploads the bytecode.
    for f in sip_files(&root().join("vectors/sip-corpus")) {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        flow_and_check(&name, &[], &[f]);
    }
}

#[test]
fn table_prints_every_figure() {
    let c = root().join("vectors/sigcomp/independent/corpus");
    let mut args: Vec<PathBuf> = vec!["flow".into(), "--table".into(), "--steady".into()];
    args.extend(sip_files(&c.join("session2")));
    args.push("--".into());
    args.extend(sip_files(&c));
    let out = Command::new(env!("CARGO_BIN_EXE_sigcomp"))
        .args(&args)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    // Figures only: no targets or verdicts.
    for word in ["target", "must", "issue", "<=", ">="] {
        assert!(!s.contains(word), "{word}: {s}");
    }
    assert!(
        s.lines()
            .any(|l| l.starts_with("DMS 8192, level default") && l.contains("SMS 4096")),
        "{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.starts_with("figure") && l.contains("bytes") && l.contains("% orig")),
        "{s}"
    );
    // Each figure row: bytes and % at SMS 8192, at SMS 4096, their ratio.
    let row = |name: &str| -> (usize, f64, usize, f64, f64) {
        let l = s
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {s}"));
        let v: Vec<&str> = l[name.len()..].split_whitespace().collect();
        assert_eq!(v.len(), 5, "{l}");
        (
            v[0].parse().unwrap(),
            v[1].parse().unwrap(),
            v[2].parse().unwrap(),
            v[3].parse().unwrap(),
            v[4].parse().unwrap(),
        )
    };
    let first = row("first message of a fresh compartment (sum)");
    let flow = row("whole flow in one compartment");
    let steady = row("steady state (--steady after the flow)");
    // The flow row is the flow the command just sent.
    let total = s.lines().find(|l| l.starts_with("total:")).unwrap();
    let sent: usize = total.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(flow.0, sent, "{s}");
    for r in [first, flow, steady] {
        assert!(r.0 > 0 && r.1 > 0.0 && r.1 < 100.0 && r.2 > 0, "{r:?}");
        assert!((r.4 - r.3 / r.1).abs() < 0.03, "{r:?}");
    }
    // A stateful flow costs less than its first messages alone.
    assert!(flow.0 < first.0 && steady.0 < first.0, "{s}");
    let speed = s
        .lines()
        .find_map(|l| l.strip_prefix("compression speed (SMS 8192, on-CPU): "))
        .and_then(|l| l.strip_suffix(" MB/s of original bytes"))
        .unwrap_or_else(|| panic!("{s}"));
    assert!(speed.parse::<f64>().unwrap() > 0.0);
    for name in [
        "  without shared compression",
        "  with RFC 3321 shared compression",
    ] {
        let l = s.lines().find(|l| l.starts_with(name)).unwrap();
        assert_eq!(l[name.len()..].split_whitespace().count(), 4, "{l}");
    }
}

/// The figures as values from the library, not parsed from the table:
/// the flow runs on two `sigcomp::Endpoint`s, whose counters agree with
/// what the flow reports sending.
#[test]
fn figures_come_from_two_endpoints() {
    use tools::sigcomp_flow::{Duplex, Flow, FlowParams, figures, totals};
    let c = root().join("vectors/sigcomp/independent/corpus");
    let read = |fs: Vec<PathBuf>| -> Vec<Vec<u8>> {
        fs.iter().map(|f| std::fs::read(f).unwrap()).collect()
    };
    let flow = read(sip_files(&c));
    let steady = read(sip_files(&c.join("session2")));
    for tcp in [false, true] {
        let dms = if tcp { 16384 } else { 8192 };
        let p = FlowParams {
            dms,
            tcp,
            ..FlowParams::default()
        };
        let f = figures(p, &flow, &steady).unwrap();
        let orig: usize = flow.iter().map(Vec::len).sum();
        assert_eq!((f.first.1, f.flow.1), (orig, orig));
        assert!(f.flow.0 < f.first.0 && f.steady.0 < f.first.0, "{f:?}");
        let mut one = Flow::new(p).unwrap();
        let sent: Vec<_> = flow.iter().map(|m| one.send(m).unwrap()).collect();
        let (o, w) = totals(&sent);
        assert_eq!((w, o), f.flow, "tcp {tcp}");
        let n = one.sender().counters();
        assert_eq!(n.bytes_sent as usize, w);
        assert_eq!(n.bytes_original as usize, o);
        assert_eq!(n.sent_plain, 0);
        // The acknowledgements came back as messages the sender accepted
        // (one for each message that asked for one).
        assert!(n.accepted > 0 && n.accepted <= flow.len() as u64, "{n:?}");
        let mut d = Duplex::new(p).unwrap();
        for (m, f) in flow.iter().zip(sip_files(&c)) {
            d.send(m, tools::sigcomp_flow::sender_of(&f)).unwrap();
        }
        let received: u64 = (0..2)
            .map(|i| d.end(i).unwrap().counters().decompressed)
            .sum();
        assert_eq!(received, flow.len() as u64);
    }
}

/// `sigcomp compress` writes a message that `sigcomp decompress` (the
/// decompressor's own command) turns back into the original.
#[test]
fn compress_then_decompress() {
    let dir = std::env::temp_dir().join(format!("h9-compress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = root().join("vectors/sip-corpus/04-invite-sdp.sip");
    let comp = dir.join("m.sigcomp");
    let back = dir.join("m.sip");
    let bin = env!("CARGO_BIN_EXE_sigcomp");
    let out = Command::new(bin)
        .arg("compress")
        .arg(&input)
        .arg(&comp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let original = std::fs::read(&input).unwrap();
    let sent = std::fs::read(&comp).unwrap();
    assert!(
        sent.len() < original.len() * 3 / 4,
        "{} of {}",
        sent.len(),
        original.len()
    );
    let out = Command::new(bin)
        .arg("decompress")
        .arg(&comp)
        .arg(&back)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&back).unwrap(), original);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn duplex_flow_is_decompressed_by_tshark() {
    // A compartment per direction (the P-CSCF's files by name): tshark
    // keeps the states of both directions and decompresses every frame.
    let c = root().join("vectors/sigcomp/independent/corpus");
    let mut files = sip_files(&c);
    files.extend(sip_files(&c.join("session2")));
    flow_and_check("duplex", &["--duplex"], &files);
}

/// `--duplex --shared`: answers use the request the other end announced
/// as a shared state (RFC 3321 §5.2); every message still comes back
/// byte-exact from our decompressor, and the flow costs less than without.
/// tshark cannot check these: a shared state is created by its sender
/// locally, never by a message tshark sees.
#[test]
fn shared_compression_pays_in_a_duplex_flow() {
    let c = root().join("vectors/sigcomp/independent/corpus");
    let mut files = sip_files(&c);
    files.extend(sip_files(&c.join("session2")));
    let total = |extra: &[&str]| -> (usize, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_sigcomp"))
            .arg("flow")
            .args(extra)
            .args(&files)
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{s}");
        assert!(s.contains("all 28 messages decompressed byte-exact"), "{s}");
        let line = s.lines().find(|l| l.starts_with("total:")).unwrap();
        let sent: usize = line.split_whitespace().nth(3).unwrap().parse().unwrap();
        (sent, s)
    };
    let (plain, _) = total(&["--duplex"]);
    let (shared, s) = total(&["--duplex", "--shared"]);
    assert!(shared < plain, "shared {shared} vs {plain}");
    let used = s.lines().filter(|l| l.ends_with("used")).count();
    let announced = s.lines().filter(|l| l.contains("announced")).count();
    assert!(used >= 4 && announced >= 8, "{s}");
    // Only requests are announced.
    for l in s.lines().filter(|l| l.contains("announced")) {
        assert!(
            !l.contains("-200-") && !l.contains("-202-") && !l.contains("-401-"),
            "{l}"
        );
    }
}

/// A message longer than the peer's whole UDVM buffer (a NOTIFY with a
/// 9 KB PIDF body, at DMS 4096 and 8192): the bytecode outputs it in parts
/// (the flush symbol), and tshark still decompresses it byte-exact.
#[test]
fn messages_longer_than_the_buffer_are_compressed() {
    let c = root().join("vectors/sigcomp/independent/corpus");
    let notify = std::fs::read(c.join("06-pcscf-notify-pidf.sip")).unwrap();
    let text = String::from_utf8(notify).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let open = body.find("<tuple").unwrap();
    let close = body.rfind("</tuple>").unwrap() + "</tuple>".len();
    let mut big_body = body[..open].to_string();
    for i in 0..12 {
        big_body.push_str(&body[open..close].replace("id=\"", &format!("id=\"t{i}-")));
    }
    big_body.push_str(&body[close..]);
    let head: Vec<String> = head
        .split("\r\n")
        .map(|l| {
            if l.starts_with("Content-Length:") {
                format!("Content-Length: {}", big_body.len())
            } else {
                l.to_string()
            }
        })
        .collect();
    let big = format!("{}\r\n\r\n{big_body}", head.join("\r\n"));
    assert!(big.len() > 8192, "{}", big.len());
    let dir = std::env::temp_dir().join(format!("h9-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("big-notify.sip");
    std::fs::write(&file, &big).unwrap();
    let files = vec![c.join("01-ue-register-initial.sip"), file.clone(), file];
    for (name, dms) in [("big-4096", "4096"), ("big-8192", "8192")] {
        let out = Command::new(env!("CARGO_BIN_EXE_sigcomp"))
            .args(["flow", "--dms", dms, "--sms", dms])
            .args(&files)
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{s}");
        // Compressed, not sent plain.
        let rows: Vec<&str> = s.lines().filter(|l| l.contains("big-notify")).collect();
        assert_eq!(rows.len(), 2, "{s}");
        assert!(rows.iter().all(|r| r.contains("SigComp")), "{s}");
        flow_and_check(name, &["--dms", dms, "--sms", dms], &files);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `compress --local-bytecode` references our bytecode instead of
/// uploading it: `decompress --local-bytecode` reads it back byte-exact,
/// and without the option the failure says which option is missing.
#[test]
fn local_bytecode_compress_then_decompress() {
    let dir = std::env::temp_dir().join(format!("h9-local-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = root().join("vectors/sip-corpus/04-invite-sdp.sip");
    let comp = dir.join("m.sigcomp");
    let back = dir.join("m.sip");
    let bin = env!("CARGO_BIN_EXE_sigcomp");
    let out = Command::new(bin)
        .args(["compress", "--local-bytecode"])
        .arg(&input)
        .arg(&comp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("bytecode referenced"));
    let out = Command::new(bin)
        .arg("decompress")
        .arg(&comp)
        .arg(&back)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("STATE_NOT_FOUND") && s.contains("--local-bytecode"),
        "{s}"
    );
    let out = Command::new(bin)
        .args(["decompress", "--local-bytecode"])
        .arg(&comp)
        .arg(&back)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(&input).unwrap()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `flow --duplex --shared --pcap` says which frames need a shared state
/// (RFC 3321 §5.2), and `sigcomp decompress` reads the whole capture back
/// byte-exact, holding each announced request as its sender does.
#[test]
fn shared_duplex_capture_decompresses() {
    let c = root().join("vectors/sigcomp/independent/corpus");
    let files = sip_files(&c);
    let dir = std::env::temp_dir().join(format!("h9-shared-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("flow.pcap");
    let plain = dir.join("plain.pcap");
    let out_dir = dir.join("out");
    let bin = env!("CARGO_BIN_EXE_sigcomp");
    for local in [false, true] {
        let local_arg: &[&str] = if local { &["--local-bytecode"] } else { &[] };
        let out = Command::new(bin)
            .args(["flow", "--duplex", "--shared"])
            .args(local_arg)
            .arg("--pcap")
            .arg(&pcap)
            .arg("--out-dir")
            .arg(&out_dir)
            .args(&files)
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{s}");
        let used = s.lines().filter(|l| l.ends_with("used")).count();
        let note = s
            .lines()
            .find(|l| l.contains("use a shared state (RFC 3321 §5.2)"))
            .unwrap_or_else(|| panic!("{s}"));
        assert!(note.contains(&format!(": {used} frames (")), "{note}");
        assert_eq!(
            s.lines().any(|l| l.contains("reference our bytecode")),
            local,
            "{s}"
        );
        let out = Command::new(bin)
            .arg("decompress")
            .args(local_arg)
            .arg(&pcap)
            .arg(&plain)
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{s}");
        let expected: Vec<Vec<u8>> = files
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let w = std::fs::read(out_dir.join(format!("{:03}.sigcomp", i + 1))).unwrap();
                w[0] & 0xf8 == 0xf8
            })
            .map(|(_, f)| std::fs::read(f).unwrap())
            .collect();
        assert!(
            s.contains(&format!("{} decompressed, 0 failed", expected.len())),
            "{s}"
        );
        let cap = testkit::pcap::Capture::read(&plain);
        assert_eq!(cap.records.len(), expected.len());
        for (r, e) in cap.records.iter().zip(&expected) {
            let t = testkit::packet::transport(cap.linktype, &r.data).unwrap();
            assert_eq!(&t.payload, e);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `sigcomp flow --tcp`: the capture is one TCP connection between ports
/// 5555, a segment per message. tshark's SigComp dissector on TCP finds
/// each message's boundaries (0xFFFF framing, RFC 3320 §4.2.2) and
/// decompresses it byte-exact, and so does our endpoint reading each
/// direction's byte stream cut into arbitrary pieces (`Link::Stream`).
#[test]
fn tcp_flow_is_framed_and_decompressed() {
    use sigcomp::{CompartmentId, Endpoint, EndpointConfig, Link, Parameters, Received, StreamId};
    use tools::pcap;
    let c = root().join("vectors/sigcomp/independent/corpus");
    let files = sip_files(&c);
    let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    for (name, extra) in [
        ("tcp", &["--dms", "16384"][..]),
        ("tcp-duplex", &["--dms", "16384", "--duplex"][..]),
        ("tcp-8192", &["--dms", "8192"][..]),
    ] {
        let dir = std::env::temp_dir().join(format!("h9-flow-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cap = dir.join("tcp.pcap");
        let out = Command::new(env!("CARGO_BIN_EXE_sigcomp"))
            .args(["flow", "--tcp", "--pcap"])
            .arg(&cap)
            .args(extra)
            .args(&files)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {stdout}");
        assert!(
            stdout.contains(&format!(
                "all {} messages decompressed byte-exact",
                files.len()
            )),
            "{stdout}"
        );
        // One TCP segment per message, on port 5555 both ways; each
        // direction's payloads are its byte stream.
        let trace = pcap::read(&cap).unwrap();
        assert_eq!(trace.packets.len(), files.len(), "{name}");
        let mut streams: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut order = Vec::new();
        for p in &trace.packets {
            let s = pcap::segment(p.linktype, &p.record.data).unwrap();
            assert_eq!(
                (s.proto, s.sport, s.dport),
                (pcap::Proto::Tcp, 5555, 5555),
                "{name}"
            );
            let from = usize::from(s.src.to_string() == "192.0.2.2");
            // Each segment is whole records: 0xFFFF ends it.
            assert!(s.payload.ends_with(&[0xff, 0xff]), "{name}");
            streams[from].extend_from_slice(s.payload);
            order.push(from);
        }
        if name == "tcp-duplex" {
            assert!(order.contains(&1), "{name}: the P-CSCF sends too");
        }
        // Our endpoint, one per direction, with the flow's parameters;
        // the stream in 7-byte pieces, messages accepted as they complete.
        let dms = if name == "tcp-8192" { 8192 } else { 16384 };
        let mut got: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        for (dir_i, bytes) in streams.iter().enumerate() {
            let mut ep = Endpoint::new(EndpointConfig {
                local: Parameters {
                    decompression_memory_size: dms,
                    ..Parameters::default()
                },
                ..EndpointConfig::default()
            })
            .unwrap();
            let link = Link::Stream(StreamId(1));
            for piece in bytes.chunks(7) {
                let mut next = ep.receive(piece, link);
                while let Some(r) = next {
                    match &r {
                        Received::Message(m) => got[dir_i].push(m.message().unwrap().to_vec()),
                        other => panic!("{name}: {other:?}"),
                    }
                    ep.accept(CompartmentId(1), &r);
                    next = ep.receive(&[], link);
                }
            }
        }
        let mut expected: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        for (o, &from) in originals.iter().zip(&order) {
            expected[from].push(o.clone());
        }
        assert_eq!(got, expected, "{name}: our stream decompressor");
        if testkit::require(
            &format!("tshark cross-check of TCP flow {name}"),
            &[Peer::Tshark],
        ) {
            let t = tshark::sigcomp_decompressed(&cap, &["-Y", "tcp.port == 5555"]);
            assert_eq!(t.len(), originals.len(), "{name}: frames");
            for (i, (g, o)) in t.iter().zip(&originals).enumerate() {
                let g = g.as_ref().unwrap_or_else(|| {
                    panic!("{name}: tshark did not decompress TCP frame {}", i + 1)
                });
                assert_eq!(g, o, "{name}: TCP frame {} differs in tshark", i + 1);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
