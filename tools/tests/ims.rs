//! `imsua` and `pcscf` over UDP on loopback, `--ipsec none`:
//!
//! - SIPp (Debian `sip-tester`), an AKAv1-MD5 UE nobody here wrote,
//!   registers to `pcscf` with TS 35.208 test set 3 (its K and OP avoid the
//!   bytes 0x5b/0x5d SIPp misreads), the pcscf's randomness seeded (see
//!   [`SIPP_SEED`]); with a wrong K SIPp rejects our AUTN (MAC-A) and
//!   nobody gets registered.
//! - Two `imsua` register to one `pcscf`; bob's MESSAGE reaches alice
//!   (her `message` event line), bob gets the final 200, both de-register.
//! - `imsua` with a wrong K exits 1 naming the network's 403; against a
//!   port where nothing listens, with `--t1 50ms`, it exits 2 with a
//!   timeout line after 64*T1 = 3.2 s.
//!
//!
//! And `--ipsec udp` (sec-agree `mod=UDP-enc-tun`, ESP in UDP on the
//! protected ports):
//!
//! - Two `imsua` register to one `pcscf`, alice gets bob's MESSAGE, both
//!   de-register; every SIP message after the 401s goes over an SA (the
//!   ladder names it). tshark, with the keys the `pcscf` printed, decrypts
//!   the `pcscf`'s capture and checks every ICV; the SIP inside (REGISTER,
//!   200, MESSAGE) is read from its decrypted data. A datagram in clear
//!   on the `pcscf`'s port-s is dropped and counted.
//! - With `--sigcomp` on all three: every message after the 401s is
//!   SigComp, bob's second MESSAGE is smaller than his first, fewer bytes
//!   go on the wire than the SIP they carry; bad SigComp is counted and
//!   NACKed; tshark decrypts the capture and decompresses every SigComp
//!   message of the inner datagrams to what the pcscf printed.
//! - A P-CSCF (in this test, `gm::reg::Network`) whose Security-Server
//!   names a mode we did not offer: `imsua` exits 1 with one line.
//!
//! Every child is killed when its guard drops, so a failing assertion
//! leaves no process behind. Waits are on printed lines, with a limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use testkit::tshark::SaEvent;
use testkit::{Peer, TempDir, require};

/// One test at a time (two shared cores; the timeout test counts time).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Gives up waiting for a line after this long.
const LIMIT: Duration = Duration::from_secs(20);

/// TS 35.208 §4.3.3, test set 3.
const K: &str = "fec86ba6eb707ed08905757b1bb44b8f";
const OP: &str = "dbc59adcb6f9a0ef735477b7fadf8374";
const AMF: &str = "725c";

/// SIPp takes RES as a C string: when RES has a zero byte it computes the
/// digest with the bytes before it as the password (`--seed 5` gives RAND
/// 423cc448...f203, RES 006d54d2ed21eccb, and SIPp's response equals the
/// digest of an empty password, checked by hand with MD5), so our network
/// rightly refuses it. About one RAND in 30 has a RES with a zero byte;
/// the SIPp tests fix the pcscf's random sequence to one without.
const SIPP_SEED: &[&str] = &["--seed", "1"];

fn subscribers() -> String {
    let mut s = String::from("realm = \"ims.example.org\"\n");
    for user in ["alice", "bob", "sipp"] {
        s.push_str(&format!(
            "\n[[subscriber]]\nimpi = \"{user}@ims.example.org\"\n\
             impus = [\"sip:{user}@ims.example.org\"]\nk = \"{K}\"\nop = \"{OP}\"\n\
             amf = \"{AMF}\"\nsqn = \"000000000020\"\n"
        ));
    }
    s
}

/// A free UDP port on loopback (released for the child to bind).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed on drop, with its stdout lines as they come.
struct Proc {
    name: &'static str,
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(name: &'static str, cmd: Command) -> Proc {
        Proc::spawn_with(name, cmd, Stdio::piped())
    }

    /// As [`Proc::spawn`], with its stderr going to `stderr`.
    fn spawn_with(name: &'static str, mut cmd: Command, stderr: Stdio) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            name,
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout line containing every one of `parts`.
    fn wait_line(&mut self, parts: &[&str]) -> String {
        let matches = |l: &String| parts.iter().all(|p| l.contains(p));
        if let Some(l) = self.seen.iter().find(|l| matches(l)) {
            return l.clone();
        }
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if matches(&l) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "{}: no line with {parts:?} in {LIMIT:?}; got:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits until `n` lines with all of `parts` were printed.
    fn wait_count(&mut self, parts: &[&str], n: usize) {
        let matches = |l: &String| parts.iter().all(|p| l.contains(p));
        let deadline = Instant::now() + LIMIT;
        while self.seen.iter().filter(|l| matches(l)).count() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!(
                    "{}: not {n} lines with {parts:?} in {LIMIT:?}; got:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// SIGTERM, then the exit status (within the limit).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Collect what was printed before the exit.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(1)) {
                    self.seen.push(l);
                }
                return s;
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `pcscf` on a free port, up and listening.
fn pcscf(dir: &TempDir) -> (Proc, String) {
    pcscf_with(dir, &[])
}

fn pcscf_with(dir: &TempDir, extra: &[&str]) -> (Proc, String) {
    let (cmd, addr) = pcscf_command(dir, extra);
    let mut p = Proc::spawn("pcscf", cmd);
    p.wait_line(&["\"event\": \"listening\""]);
    (p, addr)
}

/// The `pcscf` command of [`pcscf_with`], and its address.
fn pcscf_command(dir: &TempDir, extra: &[&str]) -> (Command, String) {
    let subs = dir.path("subscribers.toml");
    std::fs::write(&subs, subscribers()).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pcscf"));
    cmd.arg("--subscribers")
        .arg(&subs)
        .args(["--listen", &addr])
        .args(extra);
    if !extra.contains(&"--ipsec") {
        cmd.args(["--ipsec", "none"]);
    }
    (cmd, addr)
}

fn imsua(user: &str, k: &str, pcscf: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imsua"));
    cmd.args([
        "--impi",
        &format!("{user}@ims.example.org"),
        "--impu",
        &format!("sip:{user}@ims.example.org"),
        "--k",
        k,
        "--op",
        OP,
        "--pcscf",
        pcscf,
    ]);
    if !extra.contains(&"--ipsec") {
        cmd.args(["--ipsec", "none"]);
    }
    cmd.args(extra);
    cmd
}

/// Runs a command to its end, killed if it outlives the limit.
fn finish(name: &'static str, cmd: Command) -> (Output, Duration) {
    let start = Instant::now();
    let mut p = Proc::spawn(name, cmd);
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < LIMIT, "{name} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    while let Ok(l) = p.lines.recv_timeout(Duration::from_secs(1)) {
        p.seen.push(l);
    }
    let mut stderr = Vec::new();
    if let Some(mut e) = p.child.stderr.take() {
        use std::io::Read;
        e.read_to_end(&mut stderr).unwrap();
    }
    let mut stdout = p.seen.join("\n").into_bytes();
    stdout.push(b'\n');
    (
        Output {
            status,
            stdout,
            stderr,
        },
        took,
    )
}

fn sipp(dir: &TempDir, k: &str, pcscf: &str) -> (Output, Duration) {
    sipp_with(dir, k, pcscf, &[])
}

fn sipp_with(dir: &TempDir, k: &str, pcscf: &str, extra: &[&str]) -> (Output, Duration) {
    let template = include_str!("ims/reg_aka.xml");
    let scenario = template
        .replace("@IMPI@", "sipp@ims.example.org")
        .replace("@K@", k)
        .replace("@OP@", OP)
        .replace("@AMF@", AMF);
    let path = dir.path("reg_aka.xml");
    std::fs::write(&path, scenario).unwrap();
    let mut cmd = Command::new("sipp");
    cmd.arg(pcscf)
        .arg("-sf")
        .arg(&path)
        .args(["-m", "1", "-l", "1", "-i", "127.0.0.1", "-nostdin"])
        .args(["-timeout", "15s", "-timeout_error", "-trace_err"])
        .args(["-p", &free_port().to_string()])
        .args(extra)
        .current_dir(dir.dir());
    finish("sipp", cmd)
}

#[test]
fn sipp_registers_to_pcscf_with_akav1_md5() {
    let _serial = serial();
    if !require(
        "sipp_registers_to_pcscf_with_akav1_md5",
        &[Peer::Program("sipp")],
    ) {
        return;
    }
    let dir = TempDir::new("ims-sipp-ok");
    let (mut pcscf, addr) = pcscf_with(&dir, SIPP_SEED);
    let (out, _) = sipp(&dir, K, &addr);
    while let Ok(l) = pcscf.lines.recv_timeout(Duration::from_millis(200)) {
        pcscf.seen.push(l);
    }
    assert!(
        out.status.success(),
        "SIPp failed: {}\npcscf: {:?}",
        String::from_utf8_lossy(&out.stderr),
        pcscf.seen
    );
    pcscf.wait_line(&[
        "\"event\": \"registered\"",
        "\"impi\": \"sipp@ims.example.org\"",
        "\"expires\": 3600",
    ]);
    assert!(pcscf.terminate().success());
}

/// SIPp over TCP (`-t t1`: one connection, nothing over UDP): the pcscf's
/// TCP listener takes it, cuts SIPp's messages by Content-Length, answers
/// on the same connection, and says the registration came over TCP.
#[test]
fn sipp_registers_to_pcscf_over_tcp() {
    let _serial = serial();
    if !require("sipp_registers_to_pcscf_over_tcp", &[Peer::Program("sipp")]) {
        return;
    }
    let dir = TempDir::new("ims-sipp-tcp");
    let (mut pcscf, addr) = pcscf_with(&dir, SIPP_SEED);
    let (out, _) = sipp_with(&dir, K, &addr, &["-t", "t1"]);
    while let Ok(l) = pcscf.lines.recv_timeout(Duration::from_millis(200)) {
        pcscf.seen.push(l);
    }
    assert!(
        out.status.success(),
        "SIPp failed: {}\npcscf: {:?}",
        String::from_utf8_lossy(&out.stderr),
        pcscf.seen
    );
    let registered = event_of(&pcscf.wait_line(&[
        "\"event\": \"registered\"",
        "\"impi\": \"sipp@ims.example.org\"",
    ]));
    assert_eq!(registered["transport"], "tcp");
    assert_eq!(registered["expires"], 3600);
    assert!(pcscf.terminate().success());
}

#[test]
fn sipp_with_a_wrong_k_rejects_our_autn() {
    let _serial = serial();
    if !require(
        "sipp_with_a_wrong_k_rejects_our_autn",
        &[Peer::Program("sipp")],
    ) {
        return;
    }
    let dir = TempDir::new("ims-sipp-wrong-k");
    let (mut pcscf, addr) = pcscf_with(&dir, SIPP_SEED);
    // K with its first byte changed (no 0x5b/0x5d either).
    let wrong = format!("ff{}", &K[2..]);
    let (out, _) = sipp(&dir, &wrong, &addr);
    assert!(!out.status.success(), "SIPp should have failed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MAC != eXpectedMAC"), "{err}");
    assert!(pcscf.terminate().success());
    assert!(
        !pcscf
            .seen
            .iter()
            .any(|l| l.contains("\"event\": \"registered\"")),
        "{:?}",
        pcscf.seen
    );
}

#[test]
fn a_message_from_bob_reaches_alice() {
    let _serial = serial();
    let dir = TempDir::new("ims-message");
    let (mut pcscf, addr) = pcscf(&dir);
    let mut alice = Proc::spawn("alice", imsua("alice", K, &addr, &["listen"]));
    alice.wait_line(&[
        "\"event\": \"registered\"",
        "\"impu\": \"sip:alice@ims.example.org\"",
        &format!("\"service_route\": [ \"<sip:orig@{addr};lr>\" ]"),
        "\"p_associated_uri\": [ \"<sip:alice@ims.example.org>\" ]",
    ]);
    let (bob, _) = finish(
        "bob",
        imsua(
            "bob",
            K,
            &addr,
            &["message", "sip:alice@ims.example.org", "hello alice"],
        ),
    );
    let bob_out = String::from_utf8_lossy(&bob.stdout);
    assert!(
        bob.status.success(),
        "{bob_out}{}",
        String::from_utf8_lossy(&bob.stderr)
    );
    assert!(
        bob_out.contains(
            "\"event\": \"message-status\", \"to\": \"sip:alice@ims.example.org\", \"status\": 200"
        ),
        "{bob_out}"
    );
    assert!(bob_out.contains("\"event\": \"deregistered\""), "{bob_out}");
    alice.wait_line(&[
        "\"event\": \"message\"",
        "\"from\": \"sip:bob@ims.example.org\"",
        "\"text\": \"hello alice\"",
    ]);
    pcscf.wait_line(&["\"event\": \"relayed\""]);
    // SIGTERM: alice de-registers and exits 0.
    assert!(alice.terminate().success());
    alice.wait_line(&["\"event\": \"deregistered\""]);
    pcscf.wait_line(&[
        "\"event\": \"deregistered\"",
        "\"impi\": \"alice@ims.example.org\"",
    ]);
    assert!(pcscf.terminate().success());
}

/// alice over TCP, bob over UDP, through one pcscf: it serves both at
/// once, says which each registered over, and relays bob's MESSAGE from
/// UDP to alice's TCP connection.
#[test]
fn a_message_from_bob_over_udp_reaches_alice_over_tcp() {
    let _serial = serial();
    let dir = TempDir::new("ims-message-tcp");
    let (mut pcscf, addr) = pcscf(&dir);
    let mut alice = Proc::spawn(
        "alice",
        imsua("alice", K, &addr, &["--transport", "tcp", "listen"]),
    );
    alice.wait_line(&["\"event\": \"registered\""]);
    let alice_reg = event_of(&pcscf.wait_line(&[
        "\"event\": \"registered\"",
        "\"impi\": \"alice@ims.example.org\"",
    ]));
    assert_eq!(alice_reg["transport"], "tcp");
    assert!(
        alice_reg["contact"]
            .as_str()
            .unwrap()
            .contains(";transport=tcp>"),
        "{alice_reg}"
    );
    let (bob, _) = finish(
        "bob",
        imsua(
            "bob",
            K,
            &addr,
            &["message", "sip:alice@ims.example.org", "hello over tcp"],
        ),
    );
    assert!(
        bob.status.success(),
        "{}{}",
        String::from_utf8_lossy(&bob.stdout),
        String::from_utf8_lossy(&bob.stderr)
    );
    let bob_reg = event_of(&pcscf.wait_line(&[
        "\"event\": \"registered\"",
        "\"impi\": \"bob@ims.example.org\"",
    ]));
    assert_eq!(bob_reg["transport"], "udp");
    alice.wait_line(&["\"event\": \"message\"", "\"text\": \"hello over tcp\""]);
    assert!(alice.terminate().success());
    alice.wait_line(&["\"event\": \"deregistered\""]);
    assert!(pcscf.terminate().success());
}

/// A TCP stream that cannot be cut into messages (a request without
/// Content-Length, RFC 3261 §18.3) is closed and reported; the pcscf goes
/// on serving.
#[test]
fn sip_over_tcp_without_content_length_is_dropped_and_said() {
    use std::io::{Read, Write};
    let _serial = serial();
    let dir = TempDir::new("ims-tcp-bad");
    let (mut pcscf, addr) = pcscf(&dir);
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    let me = c.local_addr().unwrap();
    write!(
        c,
        "OPTIONS sip:ims.example.org SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKx\r\n\
         Max-Forwards: 70\r\nFrom: <sip:x@ims.example.org>;tag=1\r\nTo: <sip:ims.example.org>\r\n\
         Call-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
    .unwrap();
    let dropped = event_of(&pcscf.wait_line(&["\"event\": \"dropped\""]));
    assert_eq!(dropped["from"], me.to_string());
    assert!(
        dropped["reason"]
            .as_str()
            .unwrap()
            .contains("Content-Length"),
        "{dropped}"
    );
    // The connection is closed: the read sees its end, not an answer.
    c.set_read_timeout(Some(LIMIT)).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(c.read(&mut buf).unwrap(), 0);
    // And the pcscf still registers a UE over TCP.
    let (out, _) = finish(
        "bob",
        imsua("bob", K, &addr, &["--transport", "tcp", "register"]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pcscf.terminate().success());
}

#[test]
fn a_wrong_k_is_refused_with_the_networks_403() {
    let _serial = serial();
    let dir = TempDir::new("ims-wrong-k");
    let (_pcscf, addr) = pcscf(&dir);
    let wrong = format!("ff{}", &K[2..]);
    let (out, _) = finish("imsua", imsua("bob", &wrong, &addr, &["register"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("imsua: "), "{err}");
    assert!(err.contains("MAC failure"), "{err}");
    assert!(err.contains("403 Forbidden"), "{err}");
}

#[test]
fn no_pcscf_is_a_transaction_timeout() {
    let _serial = serial();
    let addr = format!("127.0.0.1:{}", free_port());
    let (out, took) = finish(
        "imsua",
        imsua("bob", K, &addr, &["--t1", "50ms", "register"]),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(err.contains(&addr), "{err}");
    // 64*T1 = 3.2 s, and not the default 32 s.
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[test]
fn an_unknown_ipsec_mode_names_the_three() {
    let pcscf = Command::new(env!("CARGO_BIN_EXE_pcscf"))
        .args(["--subscribers", "x.toml", "--ipsec", "esp"])
        .output()
        .unwrap();
    let ua = Command::new(env!("CARGO_BIN_EXE_imsua"))
        .args([
            "--impi",
            "bob@ims.example.org",
            "--impu",
            "sip:bob@ims.example.org",
        ])
        .args(["--k", K, "--op", OP, "--ipsec", "esp", "register"])
        .output()
        .unwrap();
    for out in [pcscf, ua] {
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("use none, udp or tun"), "{err}");
    }
}

/// The JSON event lines of `lines` whose `event` is `name`, typed.
fn events<T: serde::de::DeserializeOwned>(lines: &[String], name: &str) -> Vec<T> {
    lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["event"] == name).then(|| serde_json::from_value(v).unwrap())
        })
        .collect()
}

fn event_of(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap()
}

/// A `pcscf --ipsec udp` on a free port with free protected ports,
/// capturing to `dir/pcscf.pcap`; its port-s.
fn pcscf_udp(dir: &TempDir) -> (Proc, String, u16) {
    let (port_c, port_s) = (free_port(), free_port());
    let pcap = dir.path("pcscf.pcap");
    let (p, addr) = pcscf_with(
        dir,
        &[
            "--ipsec",
            "udp",
            "--port-c",
            &port_c.to_string(),
            "--port-s",
            &port_s.to_string(),
            "--pcap",
            pcap.to_str().unwrap(),
            "--show-keys",
            "-v",
        ],
    );
    (p, addr, port_s)
}

fn imsua_udp(user: &str, k: &str, pcscf: &str, extra: &[&str]) -> Command {
    let mut cmd = imsua(user, k, pcscf, &["--ipsec", "udp"]);
    cmd.args(extra);
    cmd
}

#[test]
fn two_uas_talk_over_esp_in_udp_and_tshark_decrypts_it() {
    let _serial = serial();
    let dir = TempDir::new("ims-udp");
    let (mut pcscf, addr, port_s) = pcscf_udp(&dir);
    let listening = event_of(&pcscf.wait_line(&["\"event\": \"listening\""]));
    assert_eq!(listening["ipsec"], "udp");
    assert_eq!(listening["port_s"], i64::from(port_s));
    let mut alice = Proc::spawn("alice", imsua_udp("alice", K, &addr, &["listen"]));
    alice.wait_line(&[
        "\"event\": \"registered\"",
        "\"impu\": \"sip:alice@ims.example.org\"",
    ]);
    let (bob, _) = finish(
        "bob",
        imsua_udp(
            "bob",
            K,
            &addr,
            &["message", "sip:alice@ims.example.org", "hello alice"],
        ),
    );
    let bob_lines: Vec<String> = String::from_utf8_lossy(&bob.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        bob.status.success(),
        "{bob_lines:?}{}",
        String::from_utf8_lossy(&bob.stderr)
    );
    let status: Vec<serde_json::Value> = events(&bob_lines, "message-status");
    assert_eq!(status.len(), 1, "{bob_lines:?}");
    assert_eq!(status[0]["status"], 200);
    assert_eq!(
        events::<serde_json::Value>(&bob_lines, "registered").len(),
        1
    );
    assert_eq!(
        events::<serde_json::Value>(&bob_lines, "deregistered").len(),
        1
    );
    // Bob's own SAs: four in mod=UDP-enc-tun, added then removed, no keys.
    let bob_sas = SaEvent::from_lines(&bob_lines);
    assert_eq!(bob_sas.len(), 8, "{bob_sas:?}");
    assert!(
        bob_sas
            .iter()
            .all(|s| s.mode == "UDP-enc-tun" && s.ekey.is_none())
    );
    assert_eq!(bob_sas.iter().filter(|s| s.action == "remove").count(), 4);
    // After the 401 every message went over an SA: the ladder names it.
    let ladder: Vec<&String> = bob_lines
        .iter()
        .filter(|l| l.contains(" -> ") || l.contains(" <- "))
        .collect();
    // REGISTER, 401, REGISTER, 200, the reg event SUBSCRIBE and its 200
    // and NOTIFY (answered), MESSAGE, 200, the unsubscribe, de-REGISTER,
    // 200s: at least the eight of registration and the MESSAGE (a NOTIFY
    // that crosses the de-registration finds no SA any more).
    assert!(ladder.len() >= 8, "{ladder:?}");
    for l in &ladder[2..] {
        assert!(l.contains("[ESP spi 0x"), "{l}");
    }
    let message = alice.wait_line(&["\"event\": \"message\""]);
    let message = event_of(&message);
    assert_eq!(message["from"], "sip:bob@ims.example.org");
    assert_eq!(message["text"], "hello alice");
    pcscf.wait_line(&["\"event\": \"relayed\""]);
    // Clear text on the pcscf's port-s is dropped and counted.
    let clear = UdpSocket::bind("127.0.0.1:0").unwrap();
    let clear_port = clear.local_addr().unwrap().port();
    clear
        .send_to(
            b"OPTIONS sip:ims.example.org SIP/2.0\r\n\r\n",
            ("127.0.0.1", port_s),
        )
        .unwrap();
    assert!(alice.terminate().success());
    alice.wait_line(&["\"event\": \"deregistered\""]);
    pcscf.wait_line(&[
        "\"event\": \"deregistered\"",
        "\"impi\": \"alice@ims.example.org\"",
    ]);
    let dropped = event_of(&pcscf.wait_line(&["\"event\": \"dropped\""]));
    assert_eq!(
        dropped["from"],
        format!("127.0.0.1:{clear_port}"),
        "{dropped}"
    );
    assert_eq!(dropped["port"], port_s, "{dropped}");
    assert!(pcscf.terminate().success());
    let stopped = event_of(&pcscf.wait_line(&["\"event\": \"stopped\""]));
    assert_eq!(stopped["dropped"], 1, "{stopped}");

    // The pcscf's SAs: four per UE, keys printed, SPIs as RFC 4303 wants.
    let sas = SaEvent::from_lines(&pcscf.seen);
    let added: Vec<&SaEvent> = sas.iter().filter(|s| s.action == "add").collect();
    assert_eq!(added.len(), 8, "{sas:?}");
    let mut spis: Vec<u32> = added.iter().map(|s| s.spi).collect();
    spis.sort_unstable();
    spis.dedup();
    assert_eq!(spis.len(), 8);
    assert!(spis.iter().all(|s| *s >= 256));
    assert_eq!(sas.iter().filter(|s| s.action == "remove").count(), 8);
    for s in &added {
        assert_eq!(s.mode, "UDP-enc-tun");
        assert!(s.direction == "in" || s.direction == "out");
    }

    if !require(
        "two_uas_talk_over_esp_in_udp_and_tshark_decrypts_it (capture check)",
        &[Peer::Tshark],
    ) {
        return;
    }
    let (run, ports) =
        testkit::tshark::esp_in_udp(&dir.path("pcscf.pcap"), added.iter().map(|s| s.udp_sa()));
    assert_eq!(ports.len(), 6, "two UEs' and the pcscf's port-c and port-s");
    let out = run.run(&[
        "udp.srcport",
        "udp.dstport",
        "esp.spi",
        "esp.icv_good",
        "esp.decrypted_data",
    ]);
    let (mut clear, mut protected) = (Vec::new(), Vec::new());
    for line in out.lines() {
        let f: Vec<&str> = line.split('|').collect();
        let [sport, dport, spi, good, data] = f[..] else {
            panic!("{line}")
        };
        let on_protected = [sport, dport]
            .iter()
            .all(|p| ports.contains(&p.parse().unwrap()));
        let known = u32::from_str_radix(spi.trim_start_matches("0x"), 16)
            .is_ok_and(|spi| spis.contains(&spi));
        if !known {
            // In clear: the first REGISTER/401 of each UE, and our OPTIONS
            // on port-s (which tshark, told that port is ESP in UDP, reads
            // as an SPI of "OPTI").
            clear.push(line.to_owned());
            continue;
        }
        assert!(on_protected, "{line}");
        assert_eq!(good, "1", "ICV not good: {line}");
        // Tunnel mode: the decrypted data is the inner IP packet (then
        // the ESP trailer), read by etherparse.
        let inner = hex::decode(data).unwrap();
        let udp = testkit::packet::transport(testkit::pcap::LINKTYPE_RAW, &inner).unwrap();
        assert_eq!(
            (udp.sport.to_string(), udp.dport.to_string()),
            (sport.to_owned(), dport.to_owned()),
            "the inner datagram uses the SA's ports"
        );
        let text = String::from_utf8_lossy(udp.payload);
        protected.push(text.lines().next().unwrap_or("").to_owned());
    }
    assert_eq!(clear.len(), 5, "{clear:?}");
    let count = |p: &str| protected.iter().filter(|l| l.starts_with(p)).count();
    // Each UE: REGISTER, 200, de-REGISTER, 200; bob's MESSAGE, relayed
    // to alice, and the two 200s.
    assert_eq!(
        count("REGISTER sip:ims.example.org SIP/2.0"),
        4,
        "{protected:?}"
    );
    assert_eq!(
        count("MESSAGE sip:alice@ims.example.org SIP/2.0"),
        2,
        "{protected:?}"
    );
    // Each UE subscribes to its reg event after registering and
    // unsubscribes before de-registering; the pcscf notifies.
    assert_eq!(count("SUBSCRIBE sip:"), 4, "{protected:?}");
    assert!(count("NOTIFY sip:") >= 2, "{protected:?}");
    assert!(count("SIP/2.0 200 OK") >= 6 + 4, "{protected:?}");
    let known = [
        "REGISTER ",
        "MESSAGE ",
        "SUBSCRIBE ",
        "NOTIFY ",
        "SIP/2.0 200 OK",
    ];
    assert!(
        protected
            .iter()
            .all(|l| known.iter().any(|k| l.starts_with(k))),
        "{protected:?}"
    );
}

/// Re-registration with SA handover (TS 33.203 §7.4 as commonly
/// implemented), `imsua` against `pcscf` over ESP in UDP, read back by
/// tshark: with a 2 s registration the UA re-registers every second,
/// offering new SPIs and its other client port; the pcscf re-authenticates
/// each time on its other client port. In the capture, decrypted with the
/// keys the pcscf printed, every ESP packet has a good ICV, and each
/// handover is the re-REGISTER and its 401 over the old set, then the
/// answer and its 200 over the new one; the old set is removed only after
/// the new one was added; nothing is dropped.
/// A handover run's course: the pcscf registers alice three times (the
/// registration and two handovers); then alice leaves (SIGTERM: she
/// de-registers), both say so, the pcscf stops, and alice never reported
/// a failure.
fn registered_three_times_then_left(pcscf: &mut Proc, alice: &mut Proc) {
    pcscf.wait_count(&["\"event\": \"registered\""], 3);
    assert!(alice.terminate().success());
    alice.wait_line(&["\"event\": \"deregistered\""]);
    pcscf.wait_line(&["\"event\": \"deregistered\""]);
    assert!(pcscf.terminate().success());
    assert!(
        !alice
            .seen
            .iter()
            .any(|l| l.contains("\"event\": \"failed\"")),
        "{:?}",
        alice.seen
    );
}

/// The pcscf's SA sets of a run with handovers, four `add`s each in the
/// order it added them, after checking them: at least three sets, every
/// SPI new, each set removed after the next one was added; the pcscf's
/// client port alternating between `port_c` and `alt` (its port-s kept),
/// the UE's port-c alternating and its port-s kept.
fn handover_sets(sas: &[SaEvent], port_c: u16, alt: u16, port_s: u16) -> Vec<&SaEvent> {
    let added: Vec<&SaEvent> = sas.iter().filter(|s| s.action == "add").collect();
    let sets = added.len() / 4;
    assert!(sets >= 3 && added.len() % 4 == 0, "{sas:?}");
    let mut spis: Vec<u32> = added.iter().map(|s| s.spi).collect();
    spis.sort_unstable();
    spis.dedup();
    assert_eq!(spis.len(), added.len(), "every SPI new");
    let set_of = |spi: u32| added.iter().position(|s| s.spi == spi).map(|i| i / 4);
    let position = |action: &str, set: usize| {
        sas.iter()
            .position(|s| s.action == action && set_of(s.spi) == Some(set))
            .unwrap()
    };
    for k in 0..sets - 1 {
        assert!(position("remove", k) > position("add", k + 1), "set {k}");
    }
    // Ours to the UE's port-s, from our client port; the UE's to our
    // port-s, from its client port.
    let ours_out: Vec<&SaEvent> = added
        .iter()
        .copied()
        .filter(|s| s.direction == "out" && s.src.port() != port_s)
        .collect();
    let ue_in: Vec<&SaEvent> = added
        .iter()
        .copied()
        .filter(|s| s.direction == "in" && s.dst.port() == port_s)
        .collect();
    assert_eq!((ours_out.len(), ue_in.len()), (sets, sets), "{sas:?}");
    for k in 0..sets {
        let want = if k % 2 == 0 { port_c } else { alt };
        assert_eq!(ours_out[k].src.port(), want, "set {k}");
        assert_eq!(
            ours_out[k].dst.port(),
            ours_out[0].dst.port(),
            "UE port-s kept"
        );
        if k > 0 {
            assert_ne!(ue_in[k].src.port(), ue_in[k - 1].src.port(), "UE port-c");
        }
    }
    added
}

#[test]
fn reregistration_hands_over_to_fresh_sas_as_tshark_reads_it() {
    let _serial = serial();
    let dir = TempDir::new("ims-handover");
    let (mut pcscf, addr, port_s) = pcscf_udp(&dir);
    let listening = event_of(&pcscf.wait_line(&["\"event\": \"listening\""]));
    let alt = u16::try_from(listening["alt_port_c"].as_i64().unwrap()).unwrap();
    let port_c = u16::try_from(listening["port_c"].as_i64().unwrap()).unwrap();
    let mut alice = Proc::spawn(
        "alice",
        imsua_udp("alice", K, &addr, &["--expires", "2", "listen"]),
    );
    registered_three_times_then_left(&mut pcscf, &mut alice);
    let stopped = event_of(&pcscf.wait_line(&["\"event\": \"stopped\""]));
    assert_eq!(stopped["dropped"], 0, "{stopped}");

    let sas = SaEvent::from_lines(&pcscf.seen);
    let added = handover_sets(&sas, port_c, alt, port_s);
    let sets = added.len() / 4;
    let set_of = |spi: u32| added.iter().position(|s| s.spi == spi).map(|i| i / 4);

    if !require(
        "reregistration_hands_over_to_fresh_sas_as_tshark_reads_it (capture check)",
        &[Peer::Tshark],
    ) {
        return;
    }
    let (run, _) =
        testkit::tshark::esp_in_udp(&dir.path("pcscf.pcap"), added.iter().map(|s| s.udp_sa()));
    let out = run.run(&["esp.spi", "esp.icv_good", "esp.decrypted_data"]);
    // (set, first line) of every REGISTER and response to one.
    let mut registers = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('|').collect();
        let [spi, good, data] = f[..] else {
            panic!("{line}")
        };
        let Some(set) = u32::from_str_radix(spi.trim_start_matches("0x"), 16)
            .ok()
            .and_then(set_of)
        else {
            continue;
        };
        assert_eq!(good, "1", "ICV not good: {line}");
        let inner = hex::decode(data).unwrap();
        let udp = testkit::packet::transport(testkit::pcap::LINKTYPE_RAW, &inner).unwrap();
        let text = String::from_utf8_lossy(udp.payload);
        let first = text.lines().next().unwrap_or("").to_owned();
        if text.contains(" REGISTER\r\n") {
            registers.push((set, first));
        }
    }
    let short: Vec<(usize, &str)> = registers
        .iter()
        .map(|(k, l)| {
            let what = if l.starts_with("REGISTER") {
                "REGISTER"
            } else {
                l.strip_prefix("SIP/2.0 ").unwrap_or(l)
            };
            (*k, what)
        })
        .collect();
    let mut want = vec![(0, "REGISTER"), (0, "200 OK")];
    for k in 1..sets {
        want.extend([
            (k - 1, "REGISTER"),
            (k - 1, "401 Unauthorized"),
            (k, "REGISTER"),
            (k, "200 OK"),
        ]);
    }
    want.extend([(sets - 1, "REGISTER"), (sets - 1, "200 OK")]);
    assert_eq!(short, want, "{registers:?}");
}

/// Re-registration with SA handover over `--ipsec tun` (root): a pcscf
/// and a UA in their own network namespaces, each with its ipsecd (ESP
/// transport mode on the veth between them). The UA holds the next set's
/// SPIs at its ipsecd as its re-REGISTER leaves (a held SPI lives 30 s),
/// on its second client port, which ipsecd routes once the new set's
/// policies name it; the pcscf answers on its other client port. Three
/// registrations: every SPI new, each set removed after the next was
/// added, the client ports alternating, nothing failed.
#[test]
fn reregistration_hands_over_over_ipsecd_in_namespaces() {
    let _serial = serial();
    if !require(
        "reregistration_hands_over_over_ipsecd_in_namespaces",
        &[Peer::Root, Peer::Program("ip"), Peer::Program("nft")],
    ) {
        return;
    }
    let dir = TempDir::new("ims-tun-handover");
    let subs = dir.path("subscribers.toml");
    std::fs::write(&subs, subscribers()).unwrap();
    std::fs::create_dir_all(dir.path("net")).unwrap();
    let net = tools::ims::netns::DemoNet::create(
        &dir.path("net"),
        std::path::Path::new(env!("CARGO_BIN_EXE_ipsecd")),
        &dir.path("pcscf.pcap"),
    )
    .unwrap();
    let pcscf_addr = format!("{}:5060", tools::ims::netns::address(0));
    let mut cmd = net.command(0, std::path::Path::new(env!("CARGO_BIN_EXE_pcscf")));
    cmd.arg("--ipsecd-socket")
        .arg(net.socket(0))
        .arg("--subscribers")
        .arg(&subs)
        .args([
            "--listen",
            &pcscf_addr,
            "--ipsec",
            "tun",
            "--port-c",
            "0",
            "--port-s",
            "0",
        ]);
    let mut pcscf = Proc::spawn("pcscf", cmd);
    let listening = event_of(&pcscf.wait_line(&["\"event\": \"listening\""]));
    let port = |k: &str| u16::try_from(listening[k].as_i64().unwrap()).unwrap();
    let (port_c, alt, port_s) = (port("port_c"), port("alt_port_c"), port("port_s"));
    let mut cmd = net.command(1, std::path::Path::new(env!("CARGO_BIN_EXE_imsua")));
    cmd.arg("--ipsecd-socket")
        .arg(net.socket(1))
        .args(["--local", &format!("{}:0", tools::ims::netns::address(1))])
        .args([
            "--impi",
            "alice@ims.example.org",
            "--impu",
            "sip:alice@ims.example.org",
            "--k",
            K,
            "--op",
            OP,
            "--pcscf",
            &pcscf_addr,
            "--ipsec",
            "tun",
            "--expires",
            "2",
            "listen",
        ]);
    let mut alice = Proc::spawn("alice", cmd);
    registered_three_times_then_left(&mut pcscf, &mut alice);
    drop(net);
    let sas = SaEvent::from_lines(&pcscf.seen);
    let added = handover_sets(&sas, port_c, alt, port_s);
    assert!(added.iter().all(|s| s.mode == "trans"), "{sas:?}");
}

/// SigComp across SA handovers: the compartment belongs to the UE–P-CSCF
/// association, not to one SA set, so the REGISTER that answers a
/// handover challenge over the new SAs is compressed with the states the
/// old ones left (no second bytecode upload, no empty history), and
/// nothing fails to decompress on either side.
#[test]
fn a_handover_keeps_the_sigcomp_compartment() {
    let _serial = serial();
    let dir = TempDir::new("ims-handover-sigcomp");
    let (mut pcscf, addr) = pcscf_with(
        &dir,
        &[
            "--ipsec",
            "udp",
            "--port-c",
            "0",
            "--port-s",
            "0",
            "--sigcomp",
        ],
    );
    let mut alice = Proc::spawn(
        "alice",
        imsua_udp(
            "alice",
            K,
            &addr,
            &["--sigcomp", "--expires", "2", "listen"],
        ),
    );
    registered_three_times_then_left(&mut pcscf, &mut alice);
    // Alice's compressed REGISTERs: the first one (bytecode upload, the
    // dictionary only) and every later one, handover answers included.
    let registers: Vec<(usize, usize)> = alice
        .seen
        .iter()
        .filter(|l| is_ladder(l) && l.contains(" -> ") && l.contains(" REGISTER "))
        .filter_map(|l| match ladder_sizes(l) {
            (wire, Some(sip)) => Some((wire, sip)),
            _ => None,
        })
        .collect();
    // First, per handover a re-REGISTER and its answer, the de-REGISTER.
    assert!(registers.len() >= 6, "{:?}", alice.seen);
    let first = registers[0].0;
    for (k, (wire, sip)) in registers.iter().enumerate().skip(1) {
        assert!(
            wire * 3 < first,
            "REGISTER {k}: {wire} B for {sip} B of SIP, the first took {first} B"
        );
    }
    for (who, seen) in [("alice", &alice.seen), ("pcscf", &pcscf.seen)] {
        let stopped: Vec<Stopped> = events(seen, "stopped");
        let s = &stopped[0];
        assert_eq!((s.sigcomp_failed, s.nacks_sent), (0, 0), "{who}: {s:?}");
    }
}

/// A UE that de-registers: the pcscf removes its SAs 8 s after the 200
/// (`gm::reg::DEREGISTRATION_LINGER`; the UE deletes its own on that
/// 200), not when the NOTIFY announcing it times out. That NOTIFY's next
/// retransmission then has no SA: it is not sent at all, never in clear
/// (fail closed), and its transaction ends (said on stderr). The capture
/// holds nothing in clear to the UE's protected ports.
#[test]
fn after_a_de_registration_nothing_for_the_ue_leaves_in_clear() {
    let _serial = serial();
    let dir = TempDir::new("ims-dereg");
    let pcap = dir.path("pcscf.pcap");
    let err = dir.path("pcscf.err");
    let (cmd, addr) = pcscf_command(
        &dir,
        &[
            "--ipsec",
            "udp",
            "--port-c",
            "0",
            "--port-s",
            "0",
            "--pcap",
            pcap.to_str().unwrap(),
        ],
    );
    let mut pcscf = Proc::spawn_with(
        "pcscf",
        cmd,
        Stdio::from(std::fs::File::create(&err).unwrap()),
    );
    pcscf.wait_line(&["\"event\": \"listening\""]);
    let (bob, _) = finish("bob", imsua_udp("bob", K, &addr, &["register"]));
    assert!(
        bob.status.success(),
        "{}",
        String::from_utf8_lossy(&bob.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&bob.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    // The UE's protected ports: where its inbound SAs arrive.
    let ue_ports: Vec<u16> = SaEvent::from_lines(&lines)
        .iter()
        .filter(|e| e.action == "add" && e.direction == "in")
        .map(|e| e.dst.port())
        .collect();
    assert_eq!(ue_ports.len(), 2, "{lines:?}");
    pcscf.wait_line(&["\"event\": \"deregistered\""]);
    testkit::wait::wait_until("the pcscf refusing to send without SAs", LIMIT, || {
        testkit::wait::complete_lines(&err)
            .iter()
            .any(|l| l.contains("its SAs are gone"))
    });
    assert!(pcscf.terminate().success());
    let removed = pcscf
        .seen
        .iter()
        .filter(|l| l.contains("\"event\": \"sa\"") && l.contains("\"remove\""))
        .count();
    assert_eq!(removed, 4, "{:?}", pcscf.seen);
    let capture = testkit::pcap::Capture::read(&pcap);
    let mut to_ue = 0;
    for r in &capture.records {
        let t = testkit::packet::transport(capture.linktype, &r.data).unwrap();
        if !ue_ports.contains(&t.dport) {
            continue;
        }
        to_ue += 1;
        // ESP in UDP: an SPI (not zero, not a non-ESP marker), never SIP.
        let text = String::from_utf8_lossy(t.payload);
        assert!(
            !text.starts_with("SIP/2.0") && !text.starts_with("NOTIFY"),
            "in clear to the UE's port {}: {text}",
            t.dport
        );
        assert!(t.payload.len() > 8 && t.payload[..4] != [0; 4]);
    }
    assert!(to_ue >= 2, "the 200s and NOTIFYs went over the SAs");
}

/// RFC 3581 §4: a response leaves from the port its request arrived on.
/// Alice's plain port is the port-s of bob, who has just de-registered:
/// the pcscf still keeps bob's SAs (for the NOTIFY that ends his
/// subscription and a retransmitted de-REGISTER, 8 s). Alice's REGISTER came
/// in clear to the pcscf's plain port, so its 401 leaves in clear from
/// there; it used to go over bob's SAs to alice's plain port, which could
/// not read it, and alice registered only once bob's SAs were gone (her
/// REGISTER retransmitted meanwhile).
#[test]
fn a_response_leaves_on_the_flow_its_request_came_on() {
    flow_collision(false);
}

/// As above with SigComp: the 401 on the unprotected flow is not
/// compressed for bob's association, which alice could not decompress
/// either (it was, once the 401 left from the plain port).
#[test]
fn a_response_on_the_unprotected_flow_is_never_compressed() {
    flow_collision(true);
}

fn flow_collision(sigcomp: bool) {
    let _serial = serial();
    let dir = TempDir::new("ims-flow");
    let mut args = vec!["--ipsec", "udp", "--port-c", "0", "--port-s", "0", "-v"];
    let mut ua = vec![];
    if sigcomp {
        args.push("--sigcomp");
        ua.push("--sigcomp");
    }
    let (mut pcscf, addr) = pcscf_with(&dir, &args);
    let port = free_port();
    let (bob, _) = finish(
        "bob",
        imsua_udp(
            "bob",
            K,
            &addr,
            &[&ua[..], &["--port-s", &port.to_string(), "register"]].concat(),
        ),
    );
    assert!(
        bob.status.success(),
        "{}",
        String::from_utf8_lossy(&bob.stderr)
    );
    let local = format!("127.0.0.1:{port}");
    let (alice, _) = finish(
        "alice",
        imsua_udp(
            "alice",
            K,
            &addr,
            &[&ua[..], &["--local", &local, "register"]].concat(),
        ),
    );
    assert!(
        alice.status.success(),
        "{}",
        String::from_utf8_lossy(&alice.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&alice.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let registered: Vec<serde_json::Value> = events(&lines, "registered");
    let us = registered[0]["us"].as_u64().unwrap();
    // No retransmission: the first comes after T1 (500 ms).
    assert!(us < 400_000, "alice registered after {us} us: {lines:?}");
    // Bob's SAs were still there when alice registered: the pcscf removed
    // them after alice's registration.
    pcscf.wait_line(&[
        "\"event\": \"sa\"",
        "\"remove\"",
        &format!("\"dst\": \"{local}\""),
    ]);
    let at = |what: &dyn Fn(&String) -> bool| pcscf.seen.iter().position(what).unwrap();
    let alice_registered = at(&|l| l.contains("\"event\": \"registered\"") && l.contains("alice@"));
    let bob_removed = at(&|l| {
        l.contains("\"event\": \"sa\"")
            && l.contains("\"remove\"")
            && l.contains(&format!("\"dst\": \"{local}\""))
    });
    assert!(alice_registered < bob_removed, "{:?}", pcscf.seen);
    assert!(pcscf.terminate().success());
}

/// A P-CSCF whose Security-Server has another `mod` than the UE offered:
/// our network side (`gm::reg::Network`) answers in this test process, its
/// 401 rewritten on the way.
#[test]
fn a_security_server_in_another_mode_ends_imsua_with_one_line() {
    use gm::reg::{IpsecMode, Network, NetworkAction, NetworkConfig, OpKey, Random, Subscriber};
    struct Rng(u64);
    impl Random for Rng {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                *b = self.0 as u8;
            }
        }
    }
    let _serial = serial();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let mut config = NetworkConfig::new("ims.example.org", addr.ip(), 1, 2);
    config.modes = vec![IpsecMode::UdpEncapsulatedTunnel];
    let mut net = Network::new(config);
    net.add_subscriber(
        "bob@ims.example.org",
        Subscriber {
            k: tools::ims::hex16(K).unwrap(),
            op: OpKey::Op(tools::ims::hex16(OP).unwrap()),
            amf: [0x72, 0x5c],
            sqn: 0x20,
            impus: vec![],
        },
    );
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let peer = std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut rng = Rng(3);
        let mut buf = vec![0u8; 65536];
        let mut answered = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let m = gm::sip::Message::parse(&buf[..n]).unwrap();
            let now = Duration::ZERO;
            for a in net.on_register(&m, from.ip(), gm::reg::Flow::Unprotected, now, &mut rng) {
                if let NetworkAction::Respond(r) = a {
                    let text = String::from_utf8(r.to_bytes()).unwrap();
                    assert!(text.contains(";mod=UDP-enc-tun;"), "{text}");
                    let text = text.replace(";mod=UDP-enc-tun;", ";mod=trans;");
                    sock.send_to(text.as_bytes(), from).unwrap();
                    answered += 1;
                }
            }
        }
        answered
    });
    let (out, _) = finish(
        "imsua",
        imsua_udp("bob", K, &addr.to_string(), &["register"]),
    );
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(peer.join().unwrap() >= 1);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("imsua: registration failed"), "{err}");
    assert!(err.contains("another mod than ours"), "{err}");
}

/// `--ipsec udp` against a `pcscf --ipsec none`, and the other way round:
/// each refusal is one line naming the network's status.
#[test]
fn mismatched_ipsec_modes_are_refused_with_one_line() {
    let _serial = serial();
    let dir = TempDir::new("ims-mismatch");
    for (pcscf_mode, ua_mode, status) in [
        ("none", "udp", "494 Security Agreement Required"),
        ("udp", "none", "421 Extension Required"),
    ] {
        let (mut pcscf, addr) = if pcscf_mode == "udp" {
            let (p, a, _) = pcscf_udp(&dir);
            (p, a)
        } else {
            pcscf(&dir)
        };
        let (out, _) = finish(
            "imsua",
            imsua("bob", K, &addr, &["--ipsec", ua_mode, "register"]),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(status), "{pcscf_mode}/{ua_mode}: {err}");
        assert!(pcscf.terminate().success());
    }
}

/// The `"event": "stopped"` line of `imsua`/`pcscf`: what was sent.
#[derive(Debug, Clone, serde::Deserialize)]
struct Stopped {
    sigcomp: bool,
    sent: u64,
    sent_compressed: u64,
    sent_bytes: u64,
    sent_sip_bytes: u64,
    received_compressed: u64,
    sigcomp_failed: u64,
    nacks_sent: u64,
    unreadable: u64,
}

/// The sizes of a ladder line: on the wire, and as SIP when it went as
/// SigComp (`412 B (SigComp, 980 B SIP)`).
fn ladder_sizes(line: &str) -> (usize, Option<usize>) {
    let (head, tail) = line.split_once(" B").unwrap();
    let wire = head.rsplit(' ').next().unwrap().parse().unwrap();
    let sip = tail
        .strip_prefix(" (SigComp, ")
        .map(|t| t.split(' ').next().unwrap().parse().unwrap());
    (wire, sip)
}

fn is_ladder(l: &str) -> bool {
    l.contains(" -> ") || l.contains(" <- ")
}

/// `--sigcomp` over `--ipsec udp`: alice listens, bob sends her two
/// MESSAGEs in one registration, both de-register. After each 401 every
/// message is SigComp (ladder and stopped event), bob's second MESSAGE is
/// smaller than his first (it uses the states the first left), and fewer
/// bytes go on the wire than the SIP they carry. A SigComp message that
/// cannot be decompressed and a datagram that is neither SIP nor SigComp
/// are counted, with a line. Then tshark decrypts the pcscf's capture with
/// the keys it printed, the inner datagrams go to a plain IP/UDP capture,
/// and tshark's own UDVM decompresses every SigComp message in it to the
/// bytes the pcscf printed (-v) for that message.
#[test]
fn sigcomp_over_esp_in_udp_is_smaller_and_tshark_decompresses_it() {
    let _serial = serial();
    let dir = TempDir::new("ims-sigcomp");
    let (port_c, port_s) = (free_port(), free_port());
    let pcap = dir.path("pcscf.pcap");
    let (mut pcscf, addr) = pcscf_with(
        &dir,
        &[
            "--ipsec",
            "udp",
            "--sigcomp",
            "--port-c",
            &port_c.to_string(),
            "--port-s",
            &port_s.to_string(),
            "--pcap",
            pcap.to_str().unwrap(),
            "--show-keys",
            "-v",
        ],
    );
    let mut alice = Proc::spawn(
        "alice",
        imsua_udp("alice", K, &addr, &["--sigcomp", "listen"]),
    );
    alice.wait_line(&["\"event\": \"registered\""]);
    let (bob, _) = finish(
        "bob",
        imsua_udp(
            "bob",
            K,
            &addr,
            &[
                "--sigcomp",
                "message",
                "sip:alice@ims.example.org",
                "hello alice",
                "hello again alice",
            ],
        ),
    );
    let bob_lines: Vec<String> = String::from_utf8_lossy(&bob.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        bob.status.success(),
        "{bob_lines:?}{}",
        String::from_utf8_lossy(&bob.stderr)
    );
    let status: Vec<serde_json::Value> = events(&bob_lines, "message-status");
    assert_eq!(status.len(), 2, "{bob_lines:?}");
    assert!(status.iter().all(|s| s["status"] == 200));
    // The REGISTER and its 401 in clear, uncompressed; every message after
    // them SigComp over an SA.
    let ladder: Vec<&String> = bob_lines.iter().filter(|l| is_ladder(l)).collect();
    // REGISTER, 401, REGISTER, 200, two MESSAGEs and their 200s, the
    // de-REGISTER and its 200 at least; the reg event's SUBSCRIBEs and
    // NOTIFYs besides.
    assert!(ladder.len() >= 10, "{ladder:?}");
    for l in &ladder[..2] {
        assert_eq!(ladder_sizes(l).1, None, "{l}");
    }
    for l in &ladder[2..] {
        assert!(l.contains("[ESP spi 0x"), "{l}");
        let (wire, sip) = ladder_sizes(l);
        assert!(sip.is_some(), "{l}");
        assert!(wire > 0);
    }
    // The second MESSAGE uses the states of the first.
    let messages: Vec<(usize, Option<usize>)> = ladder
        .iter()
        .filter(|l| l.contains(" -> ") && l.contains(" MESSAGE "))
        .map(|l| ladder_sizes(l))
        .collect();
    assert_eq!(messages.len(), 2, "{ladder:?}");
    // (The second text is longer.)
    assert!(messages[1].1 >= messages[0].1, "{messages:?}");
    assert!(messages[1].0 < messages[0].0, "{messages:?}");
    let bob_stopped: Vec<Stopped> = events(&bob_lines, "stopped");
    let s = &bob_stopped[0];
    assert!(s.sigcomp);
    // Everything but the first REGISTER went compressed.
    assert_eq!(s.sent_compressed, s.sent - 1, "{s:?}");
    assert!(s.sent >= 5, "{s:?}");
    assert!(s.received_compressed >= 4, "{s:?}");
    assert!(s.sent_bytes < s.sent_sip_bytes, "{s:?}");
    let message = alice.wait_line(&["\"event\": \"message\"", "hello again alice"]);
    assert_eq!(event_of(&message)["from"], "sip:bob@ims.example.org");

    // Bad input on the pcscf's plain port: SigComp that does not
    // decompress (an unknown state id), and bytes that are neither.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    junk.set_read_timeout(Some(LIMIT)).unwrap();
    let bad_sigcomp = [0xf9, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];
    junk.send_to(&bad_sigcomp, &addr).unwrap();
    junk.send_to(b"\x01\x02 not SIP", &addr).unwrap();
    assert!(alice.terminate().success());
    let alice_stopped: Vec<Stopped> = events(&alice.seen, "stopped");
    assert!(
        alice_stopped[0].sent_bytes < alice_stopped[0].sent_sip_bytes,
        "{alice_stopped:?}"
    );
    pcscf.wait_line(&[
        "\"event\": \"deregistered\"",
        "\"impi\": \"alice@ims.example.org\"",
    ]);
    assert!(pcscf.terminate().success());
    let stopped: Vec<Stopped> = events(&pcscf.seen, "stopped");
    let s = &stopped[0];
    assert!(s.sigcomp && s.sent_bytes < s.sent_sip_bytes, "{s:?}");
    assert_eq!(
        (s.sigcomp_failed, s.nacks_sent, s.unreadable),
        (1, 1, 1),
        "{s:?}"
    );
    let nack = junk.recv(&mut [0; 256]).unwrap();
    assert!(nack > 0, "the NACK (RFC 4077) came back");
    let mut err = String::new();
    use std::io::Read;
    pcscf
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("failed to decompress"), "{err}");
    assert!(err.contains("not SIP"), "{err}");

    if !require(
        "sigcomp_over_esp_in_udp_is_smaller_and_tshark_decompresses_it (capture check)",
        &[Peer::Tshark],
    ) {
        return;
    }
    // What the pcscf printed for each SigComp message, in order: the size
    // on the wire, and the SIP (-v) with its line ends as printed.
    // A message runs to the next ladder or JSON line.
    let mut printed: Vec<(usize, String)> = Vec::new();
    let seen = &pcscf.seen;
    for (i, l) in seen.iter().enumerate() {
        let (wire, Some(_)) = (if is_ladder(l) {
            ladder_sizes(l)
        } else {
            (0, None)
        }) else {
            continue;
        };
        let text: Vec<&str> = seen[i + 1..]
            .iter()
            .take_while(|t| !is_ladder(t) && !t.starts_with('{'))
            .map(String::as_str)
            .collect();
        printed.push((wire, text.join("\n").trim_end().to_owned()));
    }
    // Decrypt with the keys of the pcscf's sa lines, as the test above.
    let sas = SaEvent::from_lines(&pcscf.seen);
    let added: Vec<&SaEvent> = sas.iter().filter(|s| s.action == "add").collect();
    let (run, ports) = testkit::tshark::esp_in_udp(&pcap, added.iter().map(|s| s.udp_sa()));
    let out = run.run(&["esp.icv_good", "esp.decrypted_data"]);
    let mut frames = Vec::new();
    for line in out.lines() {
        let [good, data] = line.split('|').collect::<Vec<_>>()[..] else {
            panic!("{line}")
        };
        if data.is_empty() {
            continue; // in clear
        }
        assert_eq!(good, "1", "ICV not good: {line}");
        let inner = hex::decode(data).unwrap();
        let udp = testkit::packet::transport(testkit::pcap::LINKTYPE_RAW, &inner).unwrap();
        // Only the SigComp frames (testkit's reader counts frames with a
        // decompressed block).
        if udp.payload.first().is_some_and(|b| *b >= 0xf8) {
            frames.push(testkit::packet::udp(
                udp.src,
                udp.sport,
                udp.dst,
                udp.dport,
                udp.payload,
            ));
        }
    }
    assert_eq!(frames.len(), printed.len(), "{printed:?}");
    let inner = dir.path("inner.pcap");
    testkit::pcap::Capture::new(testkit::pcap::LINKTYPE_RAW, frames.clone()).write(&inner);
    let mut extra = Vec::new();
    for p in &ports {
        extra.push("-d".to_owned());
        extra.push(format!("udp.port=={p},sigcomp"));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let got = testkit::tshark::sigcomp_decompressed(&inner, &extra);
    assert_eq!(got.len(), printed.len());
    for (i, (g, (wire, text))) in got.iter().zip(&printed).enumerate() {
        let g = g
            .as_ref()
            .unwrap_or_else(|| panic!("tshark did not decompress frame {}", i + 1));
        let udp = testkit::packet::transport(testkit::pcap::LINKTYPE_RAW, &frames[i]).unwrap();
        assert_eq!(udp.payload.len(), *wire, "frame {}", i + 1);
        let sip = String::from_utf8(g.clone()).unwrap();
        assert_eq!(
            sip.replace("\r\n", "\n").trim_end(),
            text.as_str(),
            "frame {}",
            i + 1
        );
    }
}

/// `--sigcomp` needs SAs: with `--ipsec none` both binaries refuse it as a
/// usage error (exit 2) naming `--ipsec udp`.
#[test]
fn sigcomp_without_sas_is_a_usage_error() {
    let pcscf = Command::new(env!("CARGO_BIN_EXE_pcscf"))
        .args(["--subscribers", "x.toml", "--ipsec", "none", "--sigcomp"])
        .output()
        .unwrap();
    let ua = Command::new(env!("CARGO_BIN_EXE_imsua"))
        .args([
            "--impi",
            "bob@ims.example.org",
            "--impu",
            "sip:bob@ims.example.org",
        ])
        .args(["--k", K, "--op", OP, "--sigcomp", "register"])
        .output()
        .unwrap();
    for out in [pcscf, ua] {
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--sigcomp needs --ipsec udp"), "{err}");
    }
}

/// `pcscf --quiet` (load runs): events only, no ladder line.
#[test]
fn a_quiet_pcscf_prints_events_and_no_ladder() {
    let _serial = serial();
    let dir = TempDir::new("ims-quiet");
    let (mut pcscf, addr) = pcscf_with(&dir, &["--quiet"]);
    let (out, _) = finish("imsua", imsua("bob", K, &addr, &["register"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pcscf.wait_line(&["\"event\": \"deregistered\""]);
    assert!(pcscf.terminate().success());
    assert!(
        pcscf
            .seen
            .iter()
            .any(|l| l.contains("\"event\": \"registered\"")),
        "{:?}",
        pcscf.seen
    );
    assert!(
        !pcscf
            .seen
            .iter()
            .any(|l| l.contains(" <- ") || l.contains(" -> ")),
        "{:?}",
        pcscf.seen
    );
}

#[test]
fn tcp_over_esp_in_udp_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_imsua"))
        .args([
            "--impi",
            "bob@ims.example.org",
            "--impu",
            "sip:bob@ims.example.org",
        ])
        .args(["--k", K, "--op", OP, "--ipsec", "udp"])
        .args(["--transport", "tcp", "register"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--transport tcp needs --ipsec none or tun"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_imsua"))
        .args(["--transport", "sctp", "register"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown transport \"sctp\""), "{err}");
}
