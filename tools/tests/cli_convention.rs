//! The command-line convention of docs/cli.md, for `opensec`, `esptool`
//! and `sigcomp` (and the parts of it `setkey` and `ipsecd` show without a
//! daemon; tools/tests/netns.rs, ipsecd_owner.rs and ipsecd_safety.rs
//! check them with one): exit status 1 for a check that failed and 2 for usage,
//! configuration and IO errors, each a single line naming the file (and
//! line:column); `-` for stdin and stdout; `--help` with examples;
//! `esptool` naming policies by their config line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use testkit::TempDir;
use testkit::packet;
use testkit::pcap::{self, Capture};

fn opensec() -> Command {
    Command::new(env!("CARGO_BIN_EXE_opensec"))
}

fn esptool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_esptool"))
}

fn sigcomp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sigcomp"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

/// Runs `cmd` with `input` on its stdin.
fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written from another thread: the child may fill its stdout pipe
    // before it has read all of its stdin.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit status 2 and a single stderr line containing `needle`.
fn fails_with(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

/// One ESP SA each way with `require` policies (line 3 out, line 4 in).
const SIMPLE: &str = "# esptool test config
add 192.0.2.1 192.0.2.2 esp 0x2001 -m transport -E aes-cbc 0x00112233445566778899aabbccddeeff -A hmac-sha1 0x0102030405060708090a0b0c0d0e0f1011121314;
spdadd 192.0.2.1 192.0.2.2 udp -P out ipsec esp/transport//require;
spdadd 192.0.2.1 192.0.2.2 udp -P in ipsec esp/transport//require;
";

fn udp(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    packet::udp(src, 40000, dst, 40001, payload)
}

/// A raw IP capture of two datagrams the SIMPLE SA protects.
fn plain_capture(path: &Path) {
    pcap::write(
        path,
        pcap::LINKTYPE_RAW,
        &[
            udp("192.0.2.1", "192.0.2.2", b"one"),
            udp("192.0.2.1", "192.0.2.2", b"two"),
        ],
    );
}

fn esptool_args(mode: &str, config: &Path, input: &Path, output: &Path) -> Command {
    let mut c = esptool();
    c.args([mode, "--deterministic-iv", "--config"])
        .arg(config)
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(output);
    c
}

#[test]
fn a_failed_check_exits_1() {
    let dir = TempDir::new("cli-check-1");
    // opensec: a vector whose digest is wrong.
    std::fs::write(
        dir.path("bad.txt"),
        "algorithm = md5\nsource = RFC 1321 (corrupted)\n\n[a]\ndata = \"\"\n\
         digest = 0xd41d8cd98f00b204e9800998ecf8427f\n",
    )
    .unwrap();
    assert_eq!(
        run(opensec().arg("vectors").arg(dir.dir())).status.code(),
        Some(1)
    );
    // esptool --strict: a packet with no SA under a require policy.
    let conf = dir.path("sa.conf");
    std::fs::write(
        &conf,
        "spdadd 192.0.2.1 192.0.2.9 udp -P out ipsec esp/transport//require;\n",
    )
    .unwrap();
    let input = dir.path("in.pcap");
    pcap::write(
        &input,
        pcap::LINKTYPE_RAW,
        &[udp("192.0.2.1", "192.0.2.9", b"x")],
    );
    let out = dir.path("out.pcap");
    let mut strict = esptool_args("encap", &conf, &input, &out);
    strict.arg("--strict");
    assert_eq!(run(&mut strict).status.code(), Some(1));
    assert_eq!(
        run(&mut esptool_args("encap", &conf, &input, &out))
            .status
            .code(),
        Some(0)
    );
    // sigcomp: a message that does not decompress.
    let msg = dir.path("short.sigcomp");
    std::fs::write(&msg, [0xf8, 0x00]).unwrap();
    assert_eq!(
        run(sigcomp().arg("decompress").arg(&msg).arg(&out))
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn usage_and_io_errors_exit_2_with_one_line_naming_the_file() {
    let dir = TempDir::new("cli-errors-2");
    let missing = dir.path("missing.pcap");
    let m = missing.display().to_string();
    let out = dir.path("out.pcap");
    let conf = dir.path("sa.conf");
    std::fs::write(&conf, SIMPLE).unwrap();
    let input = dir.path("in.pcap");
    plain_capture(&input);

    // Bad flags: clap's usage errors.
    for mut c in [opensec(), esptool(), sigcomp()] {
        assert_eq!(run(c.arg("--no-such-flag")).status.code(), Some(2));
    }
    assert_eq!(
        run(esptool().args(["encap", "--in", "x", "--out", "y"]))
            .status
            .code(),
        Some(2),
        "missing --config"
    );

    // Missing files.
    fails_with(&run(opensec().arg("vectors").arg(&missing)), &m);
    fails_with(&run(&mut esptool_args("decap", &conf, &missing, &out)), &m);
    fails_with(&run(&mut esptool_args("decap", &missing, &input, &out)), &m);
    for sub in [
        &["decompress"][..],
        &["disasm"],
        &["asm"],
        &["torture"],
        &["compress"],
        &["flow"],
    ] {
        let mut c = sigcomp();
        c.args(sub).arg(&missing);
        if matches!(sub[0], "decompress" | "asm" | "compress") {
            c.arg(&out);
        }
        fails_with(&run(&mut c), &m);
    }
    // An output that cannot be written.
    let nowhere = dir.path("no-dir/out.pcap");
    fails_with(
        &run(&mut esptool_args("encap", &conf, &input, &nowhere)),
        &nowhere.display().to_string(),
    );

    // Errors inside a file: FILE:LINE:COLUMN.
    let bad = dir.path("bad.conf");
    std::fs::write(
        &bad,
        "spdflush;\nadd 192.0.2.1 192.0.2.2 esp 0x10 -E aes-cbc 0x0011 -A hmac-sha1 0x00;\n",
    )
    .unwrap();
    fails_with(
        &run(&mut esptool_args("encap", &bad, &input, &out)),
        &format!("{}:2:", bad.display()),
    );
    let asm = dir.path("bad.asm");
    std::fs::write(&asm, "\nFROB (1)\n").unwrap();
    fails_with(
        &run(sigcomp().arg("asm").arg(&asm).arg(&out)),
        &format!("{}:2:1: ", asm.display()),
    );
    let torture = dir.path("bad-torture.txt");
    std::fs::write(&torture, "frobnicate\n").unwrap();
    fails_with(
        &run(sigcomp().arg("torture").arg(&torture)),
        &format!("{}:1: ", torture.display()),
    );
}

#[test]
fn dash_is_stdin_and_stdout() {
    let dir = TempDir::new("cli-dash");
    let conf = dir.path("sa.conf");
    std::fs::write(&conf, SIMPLE).unwrap();
    let input = dir.path("in.pcap");
    plain_capture(&input);
    let esp = dir.path("esp.pcap");
    let by_file = run(&mut esptool_args("encap", &conf, &input, &esp));
    assert!(by_file.status.success(), "{}", stderr(&by_file));

    // --in - --out -: the pcap on stdout, the report on stderr.
    let piped = run_with_stdin(
        &mut esptool_args("encap", &conf, Path::new("-"), Path::new("-")),
        &std::fs::read(&input).unwrap(),
    );
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert_eq!(piped.stdout, std::fs::read(&esp).unwrap());
    assert_eq!(piped.stderr, by_file.stdout);
    assert_eq!(Capture::parse(&piped.stdout).records.len(), 2);

    // --config -, and the report back on stdout.
    let out = dir.path("esp2.pcap");
    let from_stdin = run_with_stdin(
        &mut esptool_args("encap", Path::new("-"), &input, &out),
        SIMPLE.as_bytes(),
    );
    assert!(from_stdin.status.success(), "{}", stderr(&from_stdin));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&esp).unwrap());
    let stdout = String::from_utf8_lossy(&from_stdin.stdout);
    assert!(
        stdout.contains("1 protected spi=0x00002001 seq=1"),
        "{stdout}"
    );
    // One stdin for two files: refused.
    fails_with(
        &run_with_stdin(
            &mut esptool_args("decap", Path::new("-"), Path::new("-"), &out),
            b"",
        ),
        "stdin",
    );

    // sigcomp decompress - -: a capture in, a capture out.
    let capture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vectors/sigcomp/independent/opensigcomp-4096-4096-16/pcap/ue-to-pcscf.pcap");
    let params = ["decompress", "--dms", "4096", "--sms", "4096"];
    let plain = dir.path("plain.pcap");
    let by_file = run(sigcomp().args(params).arg(&capture).arg(&plain));
    assert!(by_file.status.success(), "{}", stderr(&by_file));
    let piped = run_with_stdin(
        sigcomp().args(params).args(["-", "-"]),
        &std::fs::read(&capture).unwrap(),
    );
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert_eq!(piped.stdout, std::fs::read(&plain).unwrap());
    assert_eq!(piped.stderr, by_file.stdout);
    assert_eq!(Capture::parse(&piped.stdout).records.len(), 14);

    // sigcomp asm - - | sigcomp disasm -: RFC 4896 §11's bytecode.
    let src = "at (64)\n:byte_copy_left pad (2)\nat (128)\n:start\nINPUT-BYTES (1, byte_copy_left, end)\nOUTPUT (byte_copy_left, 1)\nJUMP (start)\n:end\nEND-MESSAGE (0,0,0,0,0,0,0)\n";
    let asm = run_with_stdin(
        sigcomp().args(["asm", "--message", "-", "-"]),
        src.as_bytes(),
    );
    assert!(asm.status.success(), "{}", stderr(&asm));
    assert_eq!(
        asm.stdout,
        [
            0xf8, 0x00, 0xa1, 0x1c, 0x01, 0x86, 0x09, 0x22, 0x86, 0x01, 0x16, 0xf9, 0x23
        ]
    );
    let disasm = run_with_stdin(sigcomp().args(["disasm", "-"]), &asm.stdout);
    assert!(disasm.status.success(), "{}", stderr(&disasm));
    // The disassembly assembles back to the same message.
    let again = run_with_stdin(
        sigcomp().args(["asm", "--message", "-", "-"]),
        &disasm.stdout,
    );
    assert_eq!(again.stdout, asm.stdout);

    // sigcomp torture -: the shipped file on stdin.
    let torture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/rfc4465-torture-tests.txt");
    let t = run_with_stdin(
        sigcomp().args(["torture", "-"]),
        &std::fs::read(&torture).unwrap(),
    );
    assert_eq!(t.status.code(), Some(0), "{}", stderr(&t));
}

#[test]
fn esptool_names_policies_by_their_config_line() {
    let dir = TempDir::new("cli-policy-lines");
    let conf = dir.path("p.conf");
    std::fs::write(
        &conf,
        "# line 1\n\
         spdadd 192.0.2.1 192.0.2.8 udp -P out discard;\n\
         spdflush;\n\
         spdadd 192.0.2.1 192.0.2.8 udp -P out none;\n\
         spdadd 192.0.2.1 192.0.2.7 udp -P out discard;\n\
         spdadd 192.0.2.1 192.0.2.9 udp -P out ipsec esp/transport//require;\n\
         spdadd 192.0.2.1 192.0.2.6 udp -P out none;\n\
         spddelete 192.0.2.1 192.0.2.6 udp -P out;\n\
         spdupdate 192.0.2.1 192.0.2.6 udp -P out discard;\n",
    )
    .unwrap();
    let input = dir.path("in.pcap");
    pcap::write(
        &input,
        pcap::LINKTYPE_RAW,
        &[
            udp("192.0.2.1", "192.0.2.8", b"a"),
            udp("192.0.2.1", "192.0.2.7", b"b"),
            udp("192.0.2.1", "192.0.2.9", b"c"),
            udp("192.0.2.1", "192.0.2.6", b"d"),
        ],
    );
    let out = run(&mut esptool_args(
        "encap",
        &conf,
        &input,
        &dir.path("o.pcap"),
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let c = conf.display();
    for want in [
        format!("1 bypass reason: policy {c}:4 (none)"),
        format!("2 dropped reason: policy {c}:5 discard"),
        format!("3 dropped reason: no SA for request 1 of policy {c}:6 "),
        format!("4 dropped reason: policy {c}:9 discard"),
    ] {
        assert!(stdout.contains(&want), "{want:?} not in {stdout}");
    }
}

#[test]
fn help_says_what_the_tool_does_with_examples() {
    for (name, mut cmd) in [
        ("opensec", opensec()),
        ("esptool", esptool()),
        ("sigcomp", sigcomp()),
    ] {
        let out = run(cmd.arg("--help"));
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Exit status: 0"), "{name}: {text}");
        let examples = text
            .split("Examples:")
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: no examples: {text}"));
        let lines = examples
            .lines()
            .filter(|l| l.trim_start().starts_with(name))
            .count();
        assert!((2..=4).contains(&lines), "{name}: {examples}");
    }
}

fn setkey() -> Command {
    Command::new(env!("CARGO_BIN_EXE_setkey"))
}

fn ipsecd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipsecd"))
}

#[test]
fn setkey_and_ipsecd_follow_the_convention_without_a_daemon() {
    let dir = TempDir::new("cli-setkey");
    // Help: what the tool does, its exit statuses, examples.
    for (name, mut cmd) in [("setkey", setkey()), ("ipsecd", ipsecd())] {
        let out = run(cmd.arg("--help"));
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Exit status: 0"), "{name}: {text}");
        let examples = text.split("Examples").nth(1).unwrap_or_default();
        let lines = examples
            .lines()
            .filter(|l| l.trim_start().starts_with(name))
            .count();
        assert!(lines >= 2, "{name}: {text}");
    }
    for mut cmd in [setkey(), ipsecd()] {
        assert_eq!(run(cmd.arg("--no-such-flag")).status.code(), Some(2));
    }
    // A missing file, a syntax error (FILE:LINE:COLUMN), stdin named
    // stdin: checked with -n, which needs no daemon.
    let missing = dir.path("missing.conf");
    fails_with(
        &run(setkey().arg("-n").arg("-f").arg(&missing)),
        &missing.display().to_string(),
    );
    let bad = dir.path("bad.conf");
    std::fs::write(&bad, "flush;\nadd 192.0.2.1 192.0.2.2 esp 0x10;\n").unwrap();
    fails_with(
        &run(setkey().arg("-n").arg("-f").arg(&bad)),
        &format!("{}:2:", bad.display()),
    );
    fails_with(
        &run_with_stdin(setkey().args(["-n", "-f", "-"]), b"flush"),
        "stdin:1:",
    );
    fails_with(
        &run_with_stdin(setkey().args(["-n", "-c"]), b"flush"),
        "expected ';'",
    );
    assert_eq!(
        run_with_stdin(setkey().args(["-n", "-c"]), b"flush;\n")
            .status
            .code(),
        Some(0)
    );
    // No daemon at the socket: 2, one line.
    fails_with(
        &run(setkey().args(["-s"]).arg(dir.path("none.sock")).arg("-D")),
        "none.sock",
    );
}
