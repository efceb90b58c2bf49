//! `imsua --config FILE` against `pcscf` on loopback:
//!
//! - alice's file, with `ipsec = "udp"` and `sigcomp = true` only in the
//!   file, registers (exit 0, `registered`, messages compressed); the same
//!   file with `--pcscf` at a dead port and `--t1 50ms` on the command line
//!   times out there (exit 2): the flag won.
//! - `offers = ["hmac-md5-96/null"]` in the file: every SA the pcscf
//!   reports (`--show-keys`) is hmac-md5-96 with null; `--offer
//!   hmac-sha-1-96/aes-cbc` on the command line replaces the file's list.
//! - An unknown key, a bad K, a bad `--offer`: exit 2, one line naming the
//!   file and line (or the flag).
//! - docs/imsua.toml parses and is alice of docs/subscribers.toml.
//!
//! Every child is killed when its guard drops; waits are on printed
//! lines, with a limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use testkit::TempDir;

/// One test at a time (two shared cores; the timeout test counts time).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Gives up waiting for a line, or for an exit, after this long.
const LIMIT: Duration = Duration::from_secs(20);

/// TS 35.208 §4.3.3, test set 3 (docs/subscribers.toml).
const K: &str = "fec86ba6eb707ed08905757b1bb44b8f";
const OP: &str = "dbc59adcb6f9a0ef735477b7fadf8374";

fn subscribers() -> String {
    format!(
        "realm = \"ims.example.org\"\n\n[[subscriber]]\nimpi = \"alice@ims.example.org\"\n\
         impus = [\"sip:alice@ims.example.org\"]\nk = \"{K}\"\nop = \"{OP}\"\n\
         amf = \"725c\"\nsqn = \"000000000020\"\n"
    )
}

/// Alice's settings with the pcscf at `pcscf`, and `extra` lines.
fn alice(pcscf: &str, extra: &str) -> String {
    format!(
        "impi = \"alice@ims.example.org\"\nimpu = \"sip:alice@ims.example.org\"\n\
         k = \"{K}\"\nop = \"{OP}\"\namf = \"725c\"\npcscf = \"{pcscf}\"\n{extra}"
    )
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

    /// The JSON event lines named `name` seen so far.
    fn events(&self, name: &str) -> Vec<serde_json::Value> {
        self.seen
            .iter()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["event"] == name)
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `pcscf --ipsec udp --show-keys` (with `--sigcomp` if `sigcomp`) on
/// a free port, up and listening.
fn pcscf(dir: &TempDir, sigcomp: bool) -> (Proc, String) {
    let subs = dir.path("subscribers.toml");
    std::fs::write(&subs, subscribers()).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pcscf"));
    cmd.arg("--subscribers")
        .arg(&subs)
        .args(["--listen", &addr, "--port-c", "0", "--port-s", "0"])
        .args(["--ipsec", "udp", "--show-keys"]);
    if sigcomp {
        cmd.arg("--sigcomp");
    }
    let mut p = Proc::spawn("pcscf", cmd);
    p.wait_line(&["\"event\": \"listening\""]);
    (p, addr)
}

/// Writes `text` as `name` in `dir`.
fn file(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `imsua --config FILE ARGS...`, run to its end within [`LIMIT`].
fn imsua(config: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_imsua"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("imsua ran over {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn events(out: &Output, name: &str) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == name)
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_config_file_registers_and_a_flag_wins_over_it() {
    let _s = serial();
    let dir = TempDir::new("ims-config-register");
    let (_pcscf, addr) = pcscf(&dir, true);
    // The protection and SigComp come from the file only.
    let config = file(
        &dir,
        "alice.toml",
        &alice(&addr, "ipsec = \"udp\"\nsigcomp = true\n"),
    );
    let out = imsua(&config, &["register"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let registered = events(&out, "registered");
    assert_eq!(
        registered.len(),
        1,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(registered[0]["impu"], "sip:alice@ims.example.org");
    assert!(
        !events(&out, "sa").is_empty(),
        "no SAs: ipsec udp not taken"
    );
    let stopped = &events(&out, "stopped")[0];
    assert_eq!(stopped["sigcomp"], true, "{stopped}");
    assert!(
        stopped["sent_compressed"].as_i64().unwrap() > 0,
        "{stopped}"
    );

    // The same file, the P-CSCF and T1 given as flags: the flags win.
    let dead = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let out = imsua(&config, &["--pcscf", &dead, "--t1", "50ms", "register"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("no answer from the P-CSCF at {dead}")) && err.contains("3200 ms"),
        "{err}"
    );
    // 64*T1 with T1 = 50 ms, not the default 500 ms (32 s).
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// The `alg` and `ealg` of every SA the pcscf added for one `imsua
/// register` with `config` and `args`.
fn negotiated(config_extra: &str, args: &[&str]) -> Vec<(String, String)> {
    let dir = TempDir::new("ims-config-offers");
    // The pcscf runs SigComp, alice does not: it must answer her plain
    // (RFC 3486 §4: she never showed she speaks SigComp).
    let (mut pcscf, addr) = pcscf(&dir, true);
    let config = file(
        &dir,
        "alice.toml",
        &alice(&addr, &format!("ipsec = \"udp\"\n{config_extra}")),
    );
    let mut argv = args.to_vec();
    argv.push("register");
    let out = imsua(&config, &argv);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stopped: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "stopped")
        .collect();
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0]["received_compressed"], 0, "{stopped:?}");
    assert_eq!(stopped[0]["unreadable"], 0, "{stopped:?}");
    // The pcscf adds the SAs before it accepts the protected REGISTER.
    pcscf.wait_line(&["\"event\": \"registered\""]);
    let added: Vec<_> = pcscf
        .events("sa")
        .into_iter()
        .filter(|e| e["action"] == "add")
        .map(|e| {
            (
                e["alg"].as_str().unwrap().to_owned(),
                e["ealg"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(added.len(), 4, "{added:?}");
    added
}

#[test]
fn the_offers_of_the_file_are_what_is_negotiated() {
    let _s = serial();
    let md5_null = ("hmac-md5-96".to_owned(), "null".to_owned());
    let sas = negotiated("offers = [\"hmac-md5-96/null\"]\n", &[]);
    assert!(sas.iter().all(|a| *a == md5_null), "{sas:?}");

    // --offer replaces the file's list.
    let sas = negotiated(
        "offers = [\"hmac-md5-96/null\"]\n",
        &["--offer", "hmac-sha-1-96/aes-cbc"],
    );
    let sha1_aes = ("hmac-sha-1-96".to_owned(), "aes-cbc".to_owned());
    assert!(sas.iter().all(|a| *a == sha1_aes), "{sas:?}");
}

#[test]
fn a_bad_config_is_one_line_naming_the_file_and_line() {
    let _s = serial();
    let dir = TempDir::new("ims-config-bad");
    let run = |name: &str, text: &str, args: &[&str]| {
        let path = file(&dir, name, text);
        let mut argv = args.to_vec();
        argv.push("register");
        let out = imsua(&path, &argv);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        (path.display().to_string(), err)
    };

    let (path, err) = run(
        "unknown.toml",
        &alice("127.0.0.1:5060", "sec_agree = \"udp\"\n"),
        &[],
    );
    assert!(
        err.starts_with(&format!("imsua: {path}:7:1: unknown field `sec_agree`")),
        "{err}"
    );

    let text = alice("127.0.0.1:5060", "").replace(K, "fec86ba6eb707ed0890575");
    let (path, err) = run("badk.toml", &text, &[]);
    assert!(
        err.starts_with(&format!("imsua: {path}:3:5: k: 11 bytes, expected 16")),
        "{err}"
    );

    let (_, err) = run(
        "offer.toml",
        &alice("127.0.0.1:5060", "offers = [\"hmac-md5-96/rot13\"]\n"),
        &[],
    );
    assert!(
        err.contains(":7:10: offers: \"hmac-md5-96/rot13\": unknown ealg"),
        "{err}"
    );

    // A bad --offer flag, with a good file.
    let (_, err) = run(
        "good.toml",
        &alice("127.0.0.1:5060", ""),
        &["--offer", "hmac-sha-256/null"],
    );
    assert_eq!(
        err.trim_end(),
        "imsua: --offer \"hmac-sha-256/null\": unknown alg \"hmac-sha-256\": use hmac-sha-1-96 or hmac-md5-96"
    );

    // A file that is not there.
    let out = imsua(&dir.path("missing.toml"), &["register"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("imsua: cannot read "), "{err}");
}

#[test]
fn docs_imsua_toml_is_alice_of_docs_subscribers_toml() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let c = tools::ims::config::load(&docs.join("imsua.toml")).unwrap();
    let subs = tools::ims::load_subscribers(&docs.join("subscribers.toml")).unwrap();
    let (impi, alice) = &subs.subscribers[0];
    assert_eq!(c.impi.as_ref(), Some(impi));
    assert_eq!(c.impu.as_deref(), Some("sip:alice@ims.example.org"));
    assert_eq!(c.k, Some(alice.k));
    assert!(c.op == Some(alice.op));
    assert_eq!(c.amf, Some(alice.amf));
    assert_eq!(c.pcscf, Some("127.0.0.1:5060".parse().unwrap()));

    // And imsua --help shows it, line for line (comments aside).
    let help = Command::new(env!("CARGO_BIN_EXE_imsua"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let text = std::fs::read_to_string(docs.join("imsua.toml")).unwrap();
    for line in text.lines() {
        let setting = line.split('#').next().unwrap().trim_end();
        if !setting.is_empty() {
            assert!(
                help.contains(&format!("  {setting}")),
                "not in --help: {setting}"
            );
        }
    }
}
