//! `imsua demo`: a `pcscf` and two UAs (alice, bob) on loopback, without
//! root, driven through their command lines and JSON events; the ladder
//! as it happens, then a summary and the `tshark` command that decrypts
//! the capture. With `--tun` (root) the three run in network namespaces
//! of their own with an ipsecd each ([`super::netns`]), `--ipsec tun`.
//!
//! The three are the real binaries, started as child processes (the
//! `pcscf` from beside this executable), so the demo runs exactly what a
//! user runs: `imsua listen` takes its commands on stdin and ends each
//! with a `done` event, which is what the demo waits on. Every wait has a
//! limit; a child that dies or a step that fails ends the demo with exit
//! 1, the reason, and the children's stderr.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// The demo's options; it needs none.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Where to write the capture (the P-CSCF's view: every packet, as on
    /// the wire).
    #[arg(long, default_value = "imsua-demo.pcap")]
    pub pcap: PathBuf,
    /// Locally available bytecode and shared compression (smaller; tshark
    /// then cannot decompress every message).
    #[arg(long)]
    pub sigcomp_full: bool,
    /// Without SigComp (the baseline of the byte figures).
    #[arg(long, conflicts_with = "sigcomp_full")]
    pub no_sigcomp: bool,
    /// The same in three network namespaces with an ipsecd in each (root):
    /// ESP transport mode on veths, sec-agree mod=trans; the capture is
    /// the P-CSCF's ipsecd's.
    #[arg(long)]
    pub tun: bool,
    /// With --tun: the UAs send their SIP over TCP (--transport tcp), over
    /// the SAs too.
    #[arg(long, requires = "tun")]
    pub tcp: bool,
    /// Print whole messages (the UAs' -v).
    #[arg(short, long)]
    pub verbose: bool,
    /// Print the summary as one JSON line too (last line of stdout).
    #[arg(long)]
    pub json: bool,
}

/// The subscribers' K and OP: TS 35.208 §4.3.3, test set 3.
const K: &str = "fec86ba6eb707ed08905757b1bb44b8f";
const OP: &str = "dbc59adcb6f9a0ef735477b7fadf8374";
const AMF: &str = "725c";
/// The network's SQN for both; alice's SIM is ahead of it.
const NET_SQN: &str = "000000000020";
const ALICE_SQN: &str = "000000001000";
const DOMAIN: &str = "ims.example.org";
const ALICE: &str = "sip:alice@ims.example.org";
const BOB: &str = "sip:bob@ims.example.org";
/// Bob's number, for the SMS.
pub const BOB_MSISDN: &str = "+15555550102";
const ALICE_MSISDN: &str = "+15555550101";
/// A wait longer than this is a failure.
const LIMIT: Duration = Duration::from_secs(15);

/// What alice says.
pub const MESSAGE_TEXT: &str = "Hello Bob! This MESSAGE went through ESP and SigComp.";
/// Alice's SMS: longer than one SMS (160 GSM 7-bit characters), with
/// characters of the GSM alphabet's extension table, so it goes as a
/// concatenated SMS.
pub const SMS_TEXT: &str = "Hi Bob, this is an SMS over IP (TS 24.341) from Alice. \
It is longer than 160 characters, so it travels as a concatenated SMS in several \
RP-DATA parts: price 5 €, 100% [done] ~ see you at the demo!";
/// Alice's presence note.
pub const NOTE: &str = "At the IMS demo";

/// Runs the demo; the exit status of `imsua demo`.
pub fn main(args: &DemoArgs) -> ExitCode {
    if args.tun {
        if let Err(e) = super::netns::require_root() {
            eprintln!("imsua: demo: {e:#}");
            return ExitCode::from(2);
        }
    }
    let mut demo = match Demo::new(args) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("imsua: demo: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = demo.run();
    if let Err(e) = &result {
        demo.steps.push(Step {
            what: "the demo".into(),
            ok: false,
            detail: format!("{e:#}"),
        });
    }
    demo.stop_all();
    let summary = demo.summary();
    print!("{}", summary.text);
    if args.json {
        println!("{}", summary.json);
    }
    if result.is_ok() && demo.steps.iter().all(|s| s.ok) {
        ExitCode::SUCCESS
    } else {
        for c in [&demo.pcscf, &demo.alice, &demo.bob].into_iter().flatten() {
            let err = c.stderr_text();
            if !err.trim().is_empty() {
                eprintln!("--- {} stderr ---\n{}", c.name, err.trim_end());
            }
        }
        ExitCode::from(1)
    }
}

/// One line of a child's stdout.
enum Line {
    Event(Value),
    Closed,
}

/// A child process, its stdin and the events of its stdout.
struct Proc {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    /// Every event seen so far, in order.
    seen: Vec<Value>,
    stderr: Arc<Mutex<Vec<u8>>>,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd`; its ladder lines are printed with `name` in front
    /// (unless `quiet`), its JSON lines become events.
    fn spawn(name: &'static str, mut cmd: Command, quiet: bool) -> Result<Proc> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout from {name}"))?;
        let mut stderr_pipe = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("no stderr from {name}"))?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with('{') {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if tx.send(Line::Event(v)).is_err() {
                            break;
                        }
                        continue;
                    }
                }
                if !quiet {
                    println!("{name:>5} | {line}");
                }
            }
            let _ = tx.send(Line::Closed);
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let (Ok(mut s), Some(b)) = (sink.lock(), buf.get(..n)) {
                    s.extend_from_slice(b);
                }
            }
        });
        Ok(Proc {
            name,
            stdin: child.stdin.take(),
            child,
            lines: rx,
            seen: Vec::new(),
            stderr,
            exited: None,
        })
    }

    fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .unwrap_or_default()
    }

    /// Sends one command line to its stdin.
    fn command(&mut self, line: &str) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("{}'s stdin is closed", self.name))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("cannot write to {}", self.name))
    }

    /// Waits for the first event after those already seen that `want`
    /// takes (an event seen earlier is not looked at again).
    fn wait(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Line::Event(v)) => {
                    self.seen.push(v.clone());
                    if want(&v) {
                        return Ok(v);
                    }
                    // A command that failed ends the wait for its result.
                    if v["event"] == "done" && v["ok"] == false {
                        bail!(
                            "{} failed: {}",
                            self.name,
                            v["error"].as_str().unwrap_or("no reason given")
                        );
                    }
                }
                Ok(Line::Closed) | Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    self.exited = status;
                    bail!(
                        "{} exited ({}) while waiting for {what}: {}",
                        self.name,
                        status.map_or("?".into(), |s| s.to_string()),
                        self.stderr_text().lines().last().unwrap_or("")
                    );
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!("{} did not report {what} within {LIMIT:?}", self.name)
                }
            }
        }
    }

    /// Waits for the process to end (after `quit` or a signal), keeping
    /// the events it printed last.
    fn finish(&mut self) -> Result<ExitStatus> {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Line::Event(v)) => self.seen.push(v),
                Ok(Line::Closed) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    bail!("{} did not exit within {LIMIT:?}", self.name)
                }
            }
        }
        let status = self
            .child
            .wait()
            .with_context(|| format!("cannot wait for {}", self.name))?;
        self.exited = Some(status);
        Ok(status)
    }

    /// SIGTERM.
    fn terminate(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }

    fn events(&self, name: &str) -> impl Iterator<Item = &Value> {
        let name = name.to_owned();
        self.seen
            .iter()
            .filter(move |v| v["event"] == name.as_str())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A step's outcome, for the summary.
#[derive(Debug, Clone)]
struct Step {
    what: String,
    ok: bool,
    detail: String,
}

struct Demo {
    args: DemoArgs,
    dir: PathBuf,
    imsua: PathBuf,
    pcscf_bin: PathBuf,
    /// With `--tun`: the namespaces and their ipsecds.
    net: Option<super::netns::DemoNet>,
    pcscf: Option<Proc>,
    alice: Option<Proc>,
    bob: Option<Proc>,
    pcscf_addr: String,
    steps: Vec<Step>,
    started: Instant,
}

/// The summary, for people and as JSON.
struct Summary {
    text: String,
    json: Value,
}

fn subscribers() -> String {
    let mut s = format!("realm = \"{DOMAIN}\"\n");
    for (user, msisdn) in [("alice", ALICE_MSISDN), ("bob", BOB_MSISDN)] {
        let _ = write!(
            s,
            "\n[[subscriber]]\nimpi = \"{user}@{DOMAIN}\"\nimpus = [\"sip:{user}@{DOMAIN}\"]\n\
             msisdn = \"{msisdn}\"\nk = \"{K}\"\nop = \"{OP}\"\namf = \"{AMF}\"\nsqn = \"{NET_SQN}\"\n"
        );
    }
    s
}

impl Demo {
    fn new(args: &DemoArgs) -> Result<Demo> {
        let imsua = std::env::current_exe().context("cannot find this executable")?;
        let pcscf_bin = imsua.with_file_name("pcscf");
        if !pcscf_bin.exists() {
            bail!(
                "{} not found: the demo starts the pcscf built beside imsua (cargo build --release -p tools)",
                pcscf_bin.display()
            );
        }
        let dir = std::env::temp_dir().join(format!("imsua-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(dir.join("subscribers.toml"), subscribers())
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        let net = if args.tun {
            let ipsecd = imsua.with_file_name("ipsecd");
            if !ipsecd.exists() {
                bail!(
                    "{} not found: demo --tun starts the ipsecd built beside imsua (cargo build --release -p tools)",
                    ipsecd.display()
                );
            }
            let net = super::netns::DemoNet::create(&dir, &ipsecd, &args.pcap);
            if net.is_err() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Some(net?)
        } else {
            None
        };
        Ok(Demo {
            net,
            args: args.clone(),
            dir,
            imsua,
            pcscf_bin,
            pcscf: None,
            alice: None,
            bob: None,
            pcscf_addr: String::new(),
            steps: Vec::new(),
            started: Instant::now(),
        })
    }

    fn sigcomp_args(&self) -> Vec<&'static str> {
        match (self.args.no_sigcomp, self.args.sigcomp_full) {
            (true, _) => vec![],
            (false, false) => vec!["--sigcomp"],
            (false, true) => vec!["--sigcomp", "--sigcomp-full"],
        }
    }

    fn ua(&self, user: &str, sqn: &str) -> Command {
        let host = if user == "alice" { 1 } else { 2 };
        let mut cmd = match &self.net {
            Some(net) => {
                let mut cmd = net.command(host, &self.imsua);
                cmd.arg("--ipsecd-socket")
                    .arg(net.socket(host))
                    .args(["--local", &format!("{}:0", super::netns::address(host))]);
                cmd
            }
            None => Command::new(&self.imsua),
        };
        cmd.args([
            "--impi",
            &format!("{user}@{DOMAIN}"),
            "--impu",
            &format!("sip:{user}@{DOMAIN}"),
            "--k",
            K,
            "--op",
            OP,
            "--sqn",
            sqn,
            "--pcscf",
            &self.pcscf_addr,
            "--ipsec",
            self.ipsec(),
        ]);
        cmd.args(self.sigcomp_args());
        if self.args.tcp {
            cmd.args(["--transport", "tcp"]);
        }
        if self.args.verbose {
            cmd.arg("-v");
        }
        cmd.arg("listen");
        cmd
    }

    /// The `--ipsec` mode of the three.
    fn ipsec(&self) -> &'static str {
        if self.net.is_some() { "tun" } else { "udp" }
    }

    fn step(&mut self, what: &str, detail: String) {
        println!("  ok  {what}: {detail}");
        self.steps.push(Step {
            what: what.into(),
            ok: true,
            detail,
        });
    }

    fn run(&mut self) -> Result<()> {
        let pcap = self.args.pcap.to_string_lossy().into_owned();
        let mut cmd = match &self.net {
            // ESP transport mode by the namespace's ipsecd, which records
            // the capture.
            Some(net) => {
                let mut cmd = net.command(0, &self.pcscf_bin);
                cmd.arg("--ipsecd-socket").arg(net.socket(0)).args([
                    "--listen",
                    &format!("{}:5060", super::netns::address(0)),
                    "--ipsec",
                    "tun",
                ]);
                cmd
            }
            None => {
                let mut cmd = Command::new(&self.pcscf_bin);
                cmd.args(["--listen", "127.0.0.1:0", "--ipsec", "udp", "--pcap", &pcap]);
                cmd
            }
        };
        cmd.arg("--subscribers")
            .arg(self.dir.join("subscribers.toml"))
            .args(["--port-c", "0", "--port-s", "0", "--show-keys", "--quiet"])
            .args(self.sigcomp_args());
        let mut pcscf = Proc::spawn("pcscf", cmd, true)?;
        let listening = pcscf.wait("listening", |v| v["event"] == "listening")?;
        self.pcscf_addr = listening["address"].as_str().unwrap_or_default().to_owned();
        self.pcscf = Some(pcscf);
        self.step(
            "P-CSCF",
            format!(
                "listening on {}, protected ports {} (port-c) and {} (port-s), {}{}",
                self.pcscf_addr,
                listening["port_c"],
                listening["port_s"],
                match &self.net {
                    Some(net) => format!(
                        "mod=trans by ipsecd (SPIs {}), namespaces {}, {} and {}",
                        if listening["spis"] == "ipsecd" {
                            "held there"
                        } else {
                            "random"
                        },
                        net.name(0),
                        net.name(1),
                        net.name(2)
                    ),
                    None => "mod=UDP-enc-tun".into(),
                },
                if listening["sigcomp"] == true {
                    ", SigComp"
                } else {
                    ""
                }
            ),
        );

        // Bob registers, and watches alice's presence.
        let mut bob = Proc::spawn("bob", self.ua("bob", "000000000000"), false)?;
        let reg = bob.wait("registered", |v| v["event"] == "registered")?;
        let sas = bob
            .events("sa")
            .filter(|v| v["action"] == "add")
            .cloned()
            .collect::<Vec<_>>();
        let alg = sas
            .first()
            .map(|s| {
                format!(
                    "{}/{}",
                    s["alg"].as_str().unwrap_or("?"),
                    s["ealg"].as_str().unwrap_or("?")
                )
            })
            .unwrap_or_default();
        self.bob = Some(bob);
        self.step(
            "bob registers",
            format!(
                "AKAv1-MD5, sec-agree ipsec-3gpp {alg}, {} SAs, expires {} s",
                sas.len(),
                reg["expires"]
            ),
        );
        let bob = self.bob.as_mut().ok_or_else(|| anyhow!("no bob"))?;
        bob.command(&format!("subscribe {ALICE}"))?;
        bob.wait("the subscription", |v| {
            v["event"] == "done" && v["command"] == "subscribe" && v["ok"] == true
        })?;
        self.step("bob subscribes", format!("to {ALICE}'s presence"));

        // Alice's SIM is ahead of the network: AUTS, then registered.
        let mut alice = Proc::spawn("alice", self.ua("alice", ALICE_SQN), false)?;
        let resync = alice.wait("the AUTS", |v| v["event"] == "resynchronising")?;
        alice.wait("registered", |v| v["event"] == "registered")?;
        self.alice = Some(alice);
        self.step(
            "alice registers",
            format!(
                "the network's SQN {} is behind her SIM's {}: AUTS re-synchronised it, then AKA and sec-agree",
                resync["sqn"].as_str().unwrap_or("?"),
                resync["sqn_ms"].as_str().unwrap_or("?")
            ),
        );

        // A MESSAGE.
        self.alice()?
            .command(&format!("message {BOB} {MESSAGE_TEXT}"))?;
        self.alice()?.wait("the MESSAGE's 200", |v| {
            v["event"] == "done" && v["command"] == "message" && v["ok"] == true
        })?;
        let got = self
            .bob()?
            .wait("the MESSAGE", |v| v["event"] == "message")?;
        if got["text"] != MESSAGE_TEXT {
            bail!("bob got the MESSAGE {got}, not alice's text");
        }
        self.step("alice -> bob MESSAGE", "delivered, 200".into());

        // A concatenated SMS.
        self.alice()?
            .command(&format!("sms {BOB_MSISDN} {SMS_TEXT}"))?;
        let status = self.alice()?.wait("the SMS's RP-ACK", |v| {
            v["event"] == "done" && v["command"] == "sms" && v["ok"] == true
        })?;
        let _ = status;
        let got = self.bob()?.wait("the SMS", |v| v["event"] == "sms")?;
        if got["text"] != SMS_TEXT {
            bail!("bob got the SMS {got}, not alice's text");
        }
        let parts = self
            .alice()?
            .events("sms-status")
            .last()
            .map(|v| v["parts"].clone())
            .unwrap_or(Value::Null);
        self.step(
            "alice -> bob SMS",
            format!(
                "{} characters{}, RP-ACK from the service centre, delivered to {BOB_MSISDN}",
                SMS_TEXT.chars().count(),
                if parts.is_null() {
                    String::new()
                } else {
                    format!(" in {parts} parts")
                }
            ),
        );

        // Presence.
        self.alice()?.command(&format!("publish open {NOTE}"))?;
        self.alice()?.wait("the PUBLISH's 200", |v| {
            v["event"] == "done" && v["command"] == "publish" && v["ok"] == true
        })?;
        let seen = self.bob()?.wait("alice's presence", |v| {
            v["event"] == "presence" && v["basic"] == "open"
        })?;
        let note_ok = match &seen["notes"] {
            Value::Array(a) => a.iter().any(|n| n == NOTE),
            Value::String(s) => s == NOTE,
            _ => seen["note"] == NOTE,
        };
        if !note_ok {
            bail!("bob's NOTIFY {seen} lacks alice's note");
        }
        self.step(
            "alice publishes",
            format!("open, \"{NOTE}\": bob's NOTIFY shows it"),
        );

        // Both de-register.
        for who in ["alice", "bob"] {
            let p = if who == "alice" {
                self.alice()?
            } else {
                self.bob()?
            };
            p.command("quit")?;
            let status = p.finish()?;
            if !status.success() {
                bail!("{who} ended with {status}");
            }
            if p.events("deregistered").next().is_none() {
                bail!("{who} did not de-register");
            }
            self.step(&format!("{who} de-registers"), "200, SAs removed".into());
        }
        Ok(())
    }

    fn alice(&mut self) -> Result<&mut Proc> {
        self.alice
            .as_mut()
            .ok_or_else(|| anyhow!("alice is not running"))
    }

    fn bob(&mut self) -> Result<&mut Proc> {
        self.bob
            .as_mut()
            .ok_or_else(|| anyhow!("bob is not running"))
    }

    /// Ends every child still running (SIGTERM: they de-register and
    /// remove their SAs) and waits for their last events.
    fn stop_all(&mut self) {
        for p in [&mut self.alice, &mut self.bob, &mut self.pcscf]
            .into_iter()
            .flatten()
        {
            if p.exited.is_none() {
                p.terminate();
                let _ = p.finish();
            }
        }
        // The daemons go (removing their routes, rules and nft tables),
        // then the namespaces.
        self.net = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn summary(&self) -> Summary {
        let mut t = String::new();
        let _ = writeln!(t, "\nSummary ({} ms)", self.started.elapsed().as_millis());
        for s in &self.steps {
            let _ = writeln!(
                t,
                "  {}  {}: {}",
                if s.ok { "ok  " } else { "FAIL" },
                s.what,
                s.detail
            );
        }
        // Bytes: every message the three sent, on the wire and as SIP.
        let (mut wire, mut sip, mut messages) = (0i64, 0i64, 0i64);
        for p in [&self.pcscf, &self.alice, &self.bob].into_iter().flatten() {
            if let Some(s) = p.events("stopped").last() {
                wire += s["sent_bytes"].as_i64().unwrap_or(0);
                sip += s["sent_sip_bytes"].as_i64().unwrap_or(0);
                messages += s["sent"].as_i64().unwrap_or(0);
            }
        }
        let percent = if sip > 0 {
            wire as f64 * 100.0 / sip as f64
        } else {
            0.0
        };
        let _ = writeln!(
            t,
            "\nBytes of SIP sent by the three ({messages} messages, {} payloads before ESP): {wire} on the wire, {sip} as SIP without SigComp: {percent:.1} %",
            if self.args.tcp { "TCP" } else { "UDP" }
        );
        // The SAs, from the pcscf's side (it holds both UEs').
        let mut sa_json = Vec::new();
        let mut dumps = String::new();
        if let Some(p) = &self.pcscf {
            let _ = writeln!(
                t,
                "\nESP packets per SA (the P-CSCF's SAs, counted by {}):",
                if self.args.tun { "its ipsecd" } else { "sadb" }
            );
            for s in p.events("sa").filter(|v| v["action"] == "remove") {
                let spi = s["spi"].as_u64().unwrap_or(0);
                // Whose: the UA that has the same SA (same SPI and ends).
                let owner = [&self.alice, &self.bob]
                    .into_iter()
                    .flatten()
                    .find(|ua| {
                        ua.events("sa").any(|u| {
                            u["spi"] == s["spi"] && u["src"] == s["src"] && u["dst"] == s["dst"]
                        })
                    })
                    .map_or("?", |ua| ua.name);
                let _ = writeln!(
                    t,
                    "  {owner:<5} {:<3} spi 0x{spi:08x}  {} -> {}  {} packets, {} bytes",
                    s["direction"].as_str().unwrap_or("?"),
                    s["src"].as_str().unwrap_or("?"),
                    s["dst"].as_str().unwrap_or("?"),
                    s["packets"],
                    s["bytes"]
                );
                if let Some(d) = s["setkey"].as_str() {
                    dumps.push_str(d);
                    dumps.push('\n');
                }
                sa_json.push(s.clone());
            }
            if !dumps.is_empty() {
                let _ = writeln!(t, "\nThe SAs as setkey -D prints them:");
                for l in dumps.lines() {
                    let _ = writeln!(t, "  {l}");
                }
            }
        }
        let tshark = self.pcscf.as_ref().map(|p| {
            let added: Vec<&Value> = p.events("sa").filter(|v| v["action"] == "add").collect();
            if self.args.tun {
                tshark_transport_command(&self.args.pcap, &added)
            } else {
                tshark_command(&self.args.pcap, &added)
            }
        });
        if let Some(cmd) = &tshark {
            let what = if self.args.tun {
                "the P-CSCF's ipsecd: ESP as on the veths, and the packets as they crossed its TUN"
            } else {
                "IP/UDP/ESP as on the wire"
            };
            let _ = writeln!(
                t,
                "\nCapture: {} ({what}). The SIP inside, decrypted with the keys above and decompressed by tshark:\n\n{cmd}\n\n(add -O sip to the last tshark for whole messages)",
                self.args.pcap.display()
            );
            let added: Vec<&Value> = self
                .pcscf
                .iter()
                .flat_map(|p| p.events("sa").filter(|v| v["action"] == "add"))
                .collect();
            let kept = latest_per_spi(&added).len();
            if kept < added.len() {
                let _ = writeln!(
                    t,
                    "({} SAs share their addresses and SPI with a later one: alice keeps her SPIs from her AUTS request's temporary SAs to her final ones, and tshark's SA table has no ports, so the command gives the later keys and the packet of the earlier SA shows as undecodable data.)",
                    added.len() - kept
                );
            }
        }
        let json = serde_json::json!({
            "event": "demo",
            "ok": self.steps.iter().all(|s| s.ok),
            "steps": self.steps.iter().map(|s| serde_json::json!({
                "step": s.what, "ok": s.ok, "detail": s.detail,
            })).collect::<Vec<_>>(),
            "messages": messages,
            "sent_bytes": wire,
            "sent_sip_bytes": sip,
            "sas": sa_json,
            "pcap": self.args.pcap.to_string_lossy(),
            "tshark": tshark,
            "ms": self.started.elapsed().as_millis() as u64,
        });
        Summary { text: t, json }
    }
}

/// tshark's name of one of our algorithms (its ESP SA table's choices).
pub fn tshark_algorithm(name: &str) -> &'static str {
    match name {
        "aes-cbc" => "AES-CBC [RFC3602]",
        "des-ede3-cbc" => "TripleDES-CBC [RFC2451]",
        "hmac-sha-1-96" => "HMAC-SHA-1-96 [RFC2404]",
        "hmac-md5-96" => "HMAC-MD5-96 [RFC2403]",
        _ => "NULL",
    }
}

/// The SAs of `sas` (in the order added) that tshark can use: its ESP SA
/// table tells SAs apart by addresses and SPI only, and a UE keeps its
/// SPIs across a new challenge (alice's temporary AUTS SAs and her final
/// ones share the SPIs the P-CSCF sends to), so for each (source,
/// destination, SPI) only the last SA added is kept: the packets of an
/// earlier one stay encrypted.
pub fn latest_per_spi<'a>(sas: &[&'a Value]) -> Vec<&'a Value> {
    let key = |v: &Value| {
        (
            v["src"]
                .as_str()
                .and_then(|a| a.rsplit_once(':'))
                .map(|a| a.0.to_owned()),
            v["dst"]
                .as_str()
                .and_then(|a| a.rsplit_once(':'))
                .map(|a| a.0.to_owned()),
            v["spi"].as_u64(),
        )
    };
    let mut kept: Vec<&'a Value> = Vec::new();
    for s in sas.iter().rev() {
        if !kept.iter().any(|k| key(k) == key(s)) {
            kept.push(s);
        }
    }
    kept.reverse();
    kept
}

/// The shell command that shows the SIP inside the ESP packets of
/// `pcap` (transport mode, `demo --tun`), given the `sa` events (with
/// keys) of the SAs it carries: one tshark decrypts ESP and decodes the
/// protected ports as SigComp, over UDP and TCP. ipsecd's capture holds
/// each packet twice (its TUN side in clear, the wire as ESP), so TCP
/// sequence analysis is off: it would take the ESP copy of an outbound
/// segment for a retransmission and not dissect the SIP in it.
pub fn tshark_transport_command(pcap: &Path, sas: &[&Value]) -> String {
    let (ports, uat) = sa_table(sas);
    let sigcomp: Vec<String> = ports
        .iter()
        .flat_map(|p| {
            [
                format!("-d udp.port=={p},sigcomp"),
                format!("-d tcp.port=={p},sigcomp"),
            ]
        })
        .collect();
    format!(
        "tshark -r {} -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \\\n  {} \\\n  {} -o sigcomp.decomp.msg:TRUE -o tcp.analyze_sequence_numbers:FALSE -Y esp",
        pcap.to_string_lossy(),
        uat.join(" \\\n  "),
        sigcomp.join(" "),
    )
}

/// tshark's ESP SA table for the `sa` events (the last SA per addresses
/// and SPI, [`latest_per_spi`]), and the ports the SAs protect.
fn sa_table(sas: &[&Value]) -> (BTreeSet<u16>, Vec<String>) {
    let mut ports = BTreeSet::new();
    let mut uat = Vec::new();
    for s in latest_per_spi(sas) {
        let Some((src, dst)) = endpoints(s) else {
            continue;
        };
        ports.insert(src.port());
        ports.insert(dst.port());
        uat.push(uat_entry(s, src, dst));
    }
    (ports, uat)
}

/// The source and destination of an `sa` event.
fn endpoints(s: &Value) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
    Some((
        s["src"].as_str()?.parse().ok()?,
        s["dst"].as_str()?.parse().ok()?,
    ))
}

/// tshark's ESP SA table entry (`-o uat:esp_sa:...`) of an `sa` event.
fn uat_entry(s: &Value, src: std::net::SocketAddr, dst: std::net::SocketAddr) -> String {
    let family = if src.is_ipv4() { "IPv4" } else { "IPv6" };
    format!(
        "-o 'uat:esp_sa:\"{family}\",\"{}\",\"{}\",\"0x{:08x}\",\"{}\",\"0x{}\",\"{}\",\"0x{}\"'",
        src.ip(),
        dst.ip(),
        s["spi"].as_u64().unwrap_or(0),
        tshark_algorithm(s["ealg"].as_str().unwrap_or("")),
        s["ekey"].as_str().unwrap_or(""),
        tshark_algorithm(s["alg"].as_str().unwrap_or("")),
        s["akey"].as_str().unwrap_or(""),
    )
}

/// The shell command that shows the SIP inside `pcap`, given the `sa`
/// events (with keys) of the SAs it carries. ESP in UDP in tunnel mode
/// has inner datagrams with the outer ports, so one tshark cannot both
/// decode the outer datagrams as ESP in UDP and the inner as SIP: the
/// first decrypts and prints each inner IP packet in hex, `text2pcap`
/// makes a capture of them, the second reads it, decompressing SigComp.
pub fn tshark_command(pcap: &Path, sas: &[&Value]) -> String {
    let (ports, uat) = sa_table(sas);
    let pcap = pcap.to_string_lossy();
    let inner = match pcap.strip_suffix(".pcap") {
        Some(stem) => format!("{stem}-inner.pcap"),
        None => format!("{pcap}-inner.pcap"),
    };
    let encap: Vec<String> = ports
        .iter()
        .map(|p| format!("-d udp.port=={p},udpencap"))
        .collect();
    let sigcomp: Vec<String> = ports
        .iter()
        .map(|p| format!("-d udp.port=={p},sigcomp"))
        .collect();
    format!(
        "tshark -r {pcap} -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \\\n  {} \\\n  {} \\\n  -Y esp.decrypted_data -T fields -e esp.decrypted_data \\\n| awk '{{printf \"000000\"; for (i = 1; i < length($0); i += 2) printf \" %s\", substr($0, i, 2); print \"\"}}' \\\n| text2pcap -q -l 101 - {inner} \\\n&& tshark -r {inner} {} -o sigcomp.decomp.msg:TRUE",
        uat.join(" \\\n  "),
        encap.join(" "),
        sigcomp.join(" "),
    )
}
