//! Captures as users have them: `esptool` and `sigcomp` read pcapng (what
//! Wireshark and tshark save), nanosecond files, big-endian files, raw IP,
//! Linux cooked captures v1 and v2 (`tcpdump -i any`) and pcapng files
//! whose interfaces have different link types and timestamp resolutions,
//! and give the same result as from the plain Ethernet pcap.
//!
//! Every form is made from a capture of ours by independent tools:
//! Wireshark's `editcap` (pcapng, nanoseconds) and `mergecap` (several
//! interfaces in one pcapng), and scapy (tools/tests/interop/captures.py:
//! raw IP, cooked v1/v2, big-endian). The tools' output is read by
//! testkit's pcap reader, not by the code that wrote it.
//!
//! Needs Wireshark's command-line tools and python3 with scapy: with `CI`
//! set a missing one fails the test, otherwise it is skipped with a notice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::pcap::{self, Capture};
use testkit::{Peer, TempDir};

const LINKTYPE_LINUX_SLL2: u32 = 276;

fn peers() -> [Peer; 4] {
    [
        Peer::Program("editcap"),
        Peer::Program("mergecap"),
        Peer::Tshark,
        Peer::Scapy,
    ]
}

fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One form of a capture: its file, the link type the tools should keep
/// (`None`: the input mixes link types, the output is raw IP), and
/// whether its timestamps are nanoseconds.
struct Form {
    name: &'static str,
    path: PathBuf,
    linktype: Option<u32>,
    nanos: bool,
}

/// `scapy` rewrite (tools/tests/interop/captures.py).
fn scapy(form: &str, input: &Path, output: &Path) {
    run_ok(
        Command::new("python3")
            .arg(manifest("tests/interop/captures.py"))
            .arg(form)
            .arg(input)
            .arg(output),
    );
}

fn editcap(args: &[&str], input: &Path, output: &Path) {
    run_ok(Command::new("editcap").args(args).arg(input).arg(output));
}

/// The forms of `original`, an Ethernet pcap in microseconds, made in
/// `dir`; the first is the original.
fn forms(dir: &TempDir, original: &Path) -> Vec<Form> {
    let p = |n: &str| dir.path(n);
    editcap(&["-F", "pcapng"], original, &p("eth.pcapng"));
    editcap(&["-F", "nsecpcap"], original, &p("eth-ns.pcap"));
    editcap(&["-F", "pcapng"], &p("eth-ns.pcap"), &p("eth-ns.pcapng"));
    for f in ["raw", "ipv4", "sll", "sll2", "be"] {
        scapy(f, original, &p(&format!("{f}.pcap")));
    }
    editcap(&["-F", "pcapng"], &p("sll2.pcap"), &p("sll2.pcapng"));
    // Every third packet on one of three interfaces: Ethernet in
    // microseconds, cooked v1 in microseconds, cooked v2 in nanoseconds;
    // mergecap interleaves them again by timestamp.
    let n = Capture::read(original).records.len();
    let third = |k: usize| -> Vec<String> {
        (1..=n)
            .filter(|i| i % 3 == k)
            .map(|i| i.to_string())
            .collect()
    };
    let keep = |k: usize, out: &Path| {
        let mut args = vec!["-r".to_owned(), original.display().to_string()];
        args.push(out.display().to_string());
        args.extend(third(k));
        run_ok(Command::new("editcap").args(&args));
    };
    keep(1, &p("part-eth.pcap"));
    keep(2, &p("part-a.pcap"));
    keep(0, &p("part-b.pcap"));
    scapy("sll", &p("part-a.pcap"), &p("part-sll.pcap"));
    scapy("sll2", &p("part-b.pcap"), &p("part-sll2.pcap"));
    editcap(
        &["-F", "nsecpcap"],
        &p("part-sll2.pcap"),
        &p("part-sll2-ns.pcap"),
    );
    run_ok(
        Command::new("mergecap")
            .args(["-F", "pcapng", "-w"])
            .arg(p("mixed.pcapng"))
            .arg(p("part-eth.pcap"))
            .arg(p("part-sll.pcap"))
            .arg(p("part-sll2-ns.pcap")),
    );
    let form = |name, file: &str, linktype, nanos| Form {
        name,
        path: p(file),
        linktype,
        nanos,
    };
    let eth = Some(pcap::LINKTYPE_ETHERNET);
    vec![
        Form {
            name: "pcap",
            path: original.to_owned(),
            linktype: eth,
            nanos: false,
        },
        form("pcapng", "eth.pcapng", eth, false),
        form("nanosecond pcap", "eth-ns.pcap", eth, true),
        form("nanosecond pcapng", "eth-ns.pcapng", eth, true),
        form("big-endian pcap", "be.pcap", eth, false),
        form("raw IP", "raw.pcap", Some(pcap::LINKTYPE_RAW), false),
        form("raw IPv4", "ipv4.pcap", Some(pcap::LINKTYPE_IPV4), false),
        form(
            "cooked v1",
            "sll.pcap",
            Some(pcap::LINKTYPE_LINUX_SLL),
            false,
        ),
        form("cooked v2", "sll2.pcap", Some(LINKTYPE_LINUX_SLL2), false),
        form(
            "cooked v2 pcapng",
            "sll2.pcapng",
            Some(LINKTYPE_LINUX_SLL2),
            false,
        ),
        form("pcapng of three link types", "mixed.pcapng", None, true),
    ]
}

/// The length of the link-layer header of the frames of our forms (the
/// Ethernet frames of our captures carry no VLAN tag).
fn link_len(linktype: u32) -> usize {
    match linktype {
        pcap::LINKTYPE_ETHERNET => 14,
        pcap::LINKTYPE_LINUX_SLL => 16,
        LINKTYPE_LINUX_SLL2 => 20,
        _ => 0,
    }
}

/// The IP packet of a record.
fn ip(linktype: u32, data: &[u8]) -> &[u8] {
    &data[link_len(linktype)..]
}

/// A timestamp's fraction in nanoseconds.
fn nanos(cap: &Capture, frac: u32) -> u32 {
    if cap.nanos { frac } else { frac * 1000 }
}

fn esptool_decap(config: &Path, input: &Path, output: &Path) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_esptool"))
        .args(["decap", "--config"])
        .arg(config)
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(output))
}

#[test]
fn esptool_reads_every_capture_form_alike() {
    if !testkit::require("esptool_reads_every_capture_form_alike", &peers()) {
        return;
    }
    let dir = TempDir::new("captures-esptool");
    let fixture = manifest("tests/fixtures/strongswan/aes128-sha1");
    let config = fixture.join("sad.conf");
    let forms = forms(&dir, &fixture.join("esp.pcap"));
    let base_out = dir.path("base-out.pcap");
    let base = esptool_decap(&config, &forms[0].path, &base_out);
    assert!(base.status.success());
    let base_cap = Capture::read(&base_out);
    // 2 IKE packets in clear and 18 ESP packets decapsulated.
    assert_eq!(base_cap.records.len(), 20);
    for f in &forms[1..] {
        let out_path = dir.path(&format!("out-{}.pcap", f.name.replace(' ', "-")));
        let out = esptool_decap(&config, &f.path, &out_path);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            f.name,
            String::from_utf8_lossy(&out.stderr)
        );
        // The same verdict for every packet.
        assert_eq!(out.stdout, base.stdout, "{}", f.name);
        let cap = Capture::read(&out_path);
        assert_eq!(
            cap.linktype,
            f.linktype.unwrap_or(pcap::LINKTYPE_RAW),
            "{}",
            f.name
        );
        assert_eq!(cap.nanos, f.nanos, "{}", f.name);
        assert_eq!(cap.records.len(), base_cap.records.len(), "{}", f.name);
        for (k, (r, b)) in cap.records.iter().zip(&base_cap.records).enumerate() {
            assert_eq!(
                ip(cap.linktype, &r.data),
                ip(base_cap.linktype, &b.data),
                "{} packet {}",
                f.name,
                k + 1
            );
            assert_eq!(
                (r.ts_sec, nanos(&cap, r.ts_frac)),
                (b.ts_sec, nanos(&base_cap, b.ts_frac)),
                "{} packet {}",
                f.name,
                k + 1
            );
        }
        // A cooked header goes out as it came in (a pcap input: testkit
        // reads it).
        if f.path.extension().is_some_and(|e| e == "pcap") {
            let input = Capture::read(&f.path);
            let n = link_len(input.linktype);
            for (r, i) in cap.records.iter().zip(&input.records) {
                assert_eq!(r.data[..n], i.data[..n], "{}", f.name);
            }
        }
    }
}

#[test]
fn sigcomp_reads_every_capture_form_alike() {
    if !testkit::require("sigcomp_reads_every_capture_form_alike", &peers()) {
        return;
    }
    let dir = TempDir::new("captures-sigcomp");
    let original =
        manifest("../vectors/sigcomp/independent/opensigcomp-4096-4096-16/pcap/ue-to-pcscf.pcap");
    let forms = forms(&dir, &original);
    let decompress = |input: &Path, output: &Path| {
        run(Command::new(env!("CARGO_BIN_EXE_sigcomp"))
            .args(["decompress", "--dms", "4096", "--sms", "4096"])
            .arg(input)
            .arg(output))
    };
    let base_out = dir.path("base-out.pcap");
    assert!(decompress(&forms[0].path, &base_out).status.success());
    let base = Capture::read(&base_out);
    assert_eq!(base.records.len(), 14);
    for f in &forms[1..] {
        let out_path = dir.path(&format!("out-{}.pcap", f.name.replace(' ', "-")));
        let out = decompress(&f.path, &out_path);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}{}",
            f.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cap = Capture::read(&out_path);
        // sigcomp writes Ethernet frames it builds, in the input's unit.
        assert_eq!(
            (cap.linktype, cap.nanos),
            (pcap::LINKTYPE_ETHERNET, f.nanos),
            "{}",
            f.name
        );
        assert_eq!(cap.records.len(), base.records.len(), "{}", f.name);
        for (r, b) in cap.records.iter().zip(&base.records) {
            assert_eq!(r.data, b.data, "{}", f.name);
            assert_eq!(
                (r.ts_sec, nanos(&cap, r.ts_frac)),
                (b.ts_sec, nanos(&base, b.ts_frac)),
                "{}",
                f.name
            );
        }
    }
}

/// stderr of a failed run: one line, exit status 2.
fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn captures_the_tools_cannot_read_are_one_line_errors_naming_the_file() {
    if !testkit::require(
        "captures_the_tools_cannot_read_are_one_line_errors_naming_the_file",
        &[Peer::Program("editcap")],
    ) {
        return;
    }
    let dir = TempDir::new("captures-errors");
    let fixture = manifest("tests/fixtures/strongswan/aes128-sha1");
    let config = fixture.join("sad.conf");
    let out = dir.path("out.pcap");
    let sigcomp = |input: &Path| {
        run(Command::new(env!("CARGO_BIN_EXE_sigcomp"))
            .arg("decompress")
            .arg(input)
            .arg(&out))
    };
    // Neither pcap nor pcapng (esptool; sigcomp takes it for a SigComp
    // message).
    let text = dir.path("notes.txt");
    std::fs::write(&text, "not a capture\n").unwrap();
    let err = one_line_error(&esptool_decap(&config, &text, &out));
    assert!(
        err.contains(&format!(
            "{}: neither a pcap nor a pcapng capture",
            text.display()
        )),
        "{err}"
    );
    // An 802.11 radiotap pcapng (link type 127), relabelled by editcap.
    let radio = dir.path("radio.pcapng");
    editcap(
        &["-F", "pcapng", "-T", "ieee-802-11-radiotap"],
        &fixture.join("esp.pcap"),
        &radio,
    );
    for out in [esptool_decap(&config, &radio, &out), sigcomp(&radio)] {
        let err = one_line_error(&out);
        assert!(
            err.contains(&format!(
                "{}: link type 127 (interface 0) is not supported",
                radio.display()
            )),
            "{err}"
        );
    }
    // A pcapng cut short inside a block.
    let bytes = std::fs::read(dir.path("radio.pcapng")).unwrap();
    let cut = dir.path("cut.pcapng");
    std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
    for out in [esptool_decap(&config, &cut, &out), sigcomp(&cut)] {
        let err = one_line_error(&out);
        assert!(err.contains(&format!("{}: pcapng block at byte ", cut.display())));
        assert!(err.contains("is cut short"), "{err}");
    }
}
