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
//! Every child is killed when its guard drops, so a failing assertion
//! leaves no process behind. Waits are on printed lines, with a limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

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
    fn spawn(name: &'static str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
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
    let subs = dir.path("subscribers.toml");
    std::fs::write(&subs, subscribers()).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pcscf"));
    cmd.arg("--subscribers")
        .arg(&subs)
        .args(["--listen", &addr, "--ipsec", "none"])
        .args(extra);
    let mut p = Proc::spawn("pcscf", cmd);
    p.wait_line(&["\"event\": \"listening\""]);
    (p, addr)
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
        "--ipsec",
        "none",
    ])
    .args(extra);
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
fn ipsec_modes_not_built_yet_are_named() {
    let _serial = serial();
    let pcscf = Command::new(env!("CARGO_BIN_EXE_pcscf"))
        .args(["--subscribers", "x.toml", "--ipsec", "udp"])
        .output()
        .unwrap();
    let ua = Command::new(env!("CARGO_BIN_EXE_imsua"))
        .args([
            "--impi",
            "bob@ims.example.org",
            "--impu",
            "sip:bob@ims.example.org",
        ])
        .args(["--k", K, "--op", OP, "--ipsec", "tun", "register"])
        .output()
        .unwrap();
    for out in [pcscf, ua] {
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not built yet"), "{err}");
    }
}
