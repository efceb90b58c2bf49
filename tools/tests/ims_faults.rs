//! `imsua` against faults of the network, each ended with a one-line
//! reason and a non-zero exit, its SAs removed (and reported) before it
//! exits:
//!
//! - a P-CSCF that dies after the registration: `imsua listen` notices
//!   at its re-registration (the transaction times out) and says so;
//! - a 401 whose Security-Server names no algorithm we offered (no
//!   common algorithm);
//! - a malformed 401 (an AKA nonce that is not RAND||AUTN);
//! - `--ipsec tun` without an ipsecd (exit 2, naming the socket);
//! - `--ipsec tun` after a crash (root): what the killed UA held at
//!   ipsecd (its two SPIs) is removed when it starts again, and what the
//!   new run held when it exits;
//! - `pcscf --ipsec tun` (root): a REGISTER in clear to its port-s from a
//!   sender without SAs is dropped and reported, never answered.
//!
//! The P-CSCF of the last two is `gm::reg::Network` in this test, its 401
//! rewritten on the way. The unreachable P-CSCF and the wrong K are in
//! `ims.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gm::reg::{IpsecMode, Network, NetworkAction, NetworkConfig, OpKey, Random, Subscriber};
use testkit::TempDir;

/// TS 35.208 §4.3.3, test set 3.
const K: &str = "fec86ba6eb707ed08905757b1bb44b8f";
const OP: &str = "dbc59adcb6f9a0ef735477b7fadf8374";
const LIMIT: Duration = Duration::from_secs(30);
/// Bob's identity and AKA keys, as every UA here has them.
const BOB: [&str; 8] = [
    "--impi",
    "bob@ims.example.org",
    "--impu",
    "sip:bob@ims.example.org",
    "--k",
    K,
    "--op",
    OP,
];

fn imsua(pcscf: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imsua"));
    cmd.args(BOB)
        .args(["--pcscf", pcscf, "--ipsec", "udp"])
        .args(extra);
    cmd
}

/// Runs `cmd` to its end, within [`LIMIT`].
fn finish(mut cmd: Command) -> Output {
    let mut child = cmd
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

/// A P-CSCF (`gm::reg::Network`, `mod=UDP-enc-tun`) on a loopback
/// socket that rewrites each of its answers with `rewrite` before
/// sending it; stops when the returned flag is set, and returns how many
/// answers it sent.
fn tampering_pcscf(
    rewrite: impl Fn(String) -> String + Send + 'static,
) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<usize>) {
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
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    let peer = std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut rng = Rng(3);
        let mut buf = vec![0u8; 65536];
        let mut answered = 0;
        while !stop.load(Ordering::SeqCst) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let m = gm::sip::Message::parse(&buf[..n]).unwrap();
            for a in net.on_register(
                &m,
                from.ip(),
                gm::reg::Flow::Unprotected,
                Duration::ZERO,
                &mut rng,
            ) {
                if let NetworkAction::Respond(r) = a {
                    let text = rewrite(String::from_utf8(r.to_bytes()).unwrap());
                    sock.send_to(text.as_bytes(), from).unwrap();
                    answered += 1;
                }
            }
        }
        answered
    });
    (addr.to_string(), done, peer)
}

fn one_line_refusal(out: &Output, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("imsua: registration failed"), "{err}");
    assert!(err.contains(says), "{err}");
    // Nothing left: every SA added was removed.
    let sas = events(out, "sa");
    let added = sas.iter().filter(|s| s["action"] == "add").count();
    let removed = sas.iter().filter(|s| s["action"] == "remove").count();
    assert_eq!(added, removed, "{sas:?}");
    assert!(events(out, "registered").is_empty());
}

#[test]
fn no_common_algorithm_is_refused_with_one_line() {
    // The P-CSCF's Security-Server names an integrity algorithm we never
    // offered.
    let (addr, done, peer) = tampering_pcscf(|text| {
        let mut out = String::new();
        for line in text.split_inclusive("\r\n") {
            if line.to_ascii_lowercase().starts_with("security-server:") {
                out.push_str(
                    &line
                        .replace("alg=hmac-sha-1-96", "alg=hmac-sha-256-128")
                        .replace("alg=hmac-md5-96", "alg=hmac-sha-256-128"),
                );
            } else {
                out.push_str(line);
            }
        }
        assert!(out.contains("alg=hmac-sha-256-128"), "{out}");
        out
    });
    let out = finish(imsua(&addr, &["register"]));
    done.store(true, Ordering::SeqCst);
    assert!(peer.join().unwrap() >= 1);
    one_line_refusal(&out, "no algorithm in common");
}

#[test]
fn a_malformed_401_is_refused_with_one_line() {
    // The nonce of the AKA challenge is not base64 of RAND||AUTN.
    let (addr, done, peer) = tampering_pcscf(|text| {
        let start = text.find("nonce=\"").unwrap() + "nonce=\"".len();
        let end = start + text[start..].find('"').unwrap();
        format!("{}{}{}", &text[..start], "bm90IGEgbm9uY2U=", &text[end..])
    });
    let out = finish(imsua(&addr, &["register"]));
    done.store(true, Ordering::SeqCst);
    assert!(peer.join().unwrap() >= 1);
    one_line_refusal(&out, "nonce");
}

#[test]
fn a_pcscf_that_dies_is_noticed_at_re_registration() {
    let dir = TempDir::new("ims-faults-dies");
    let subs = dir.path("subs.toml");
    std::fs::write(
        &subs,
        format!(
            "realm = \"ims.example.org\"\n[[subscriber]]\nimpi = \"bob@ims.example.org\"\n\
             impus = [\"sip:bob@ims.example.org\"]\nk = \"{K}\"\nop = \"{OP}\"\n\
             amf = \"725c\"\nsqn = \"000000000020\"\n"
        ),
    )
    .unwrap();
    let mut pcscf = Command::new(env!("CARGO_BIN_EXE_pcscf"))
        .arg("--subscribers")
        .arg(&subs)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--ipsec",
            "udp",
            "--port-c",
            "0",
            "--port-s",
            "0",
            "--quiet",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(pcscf.stdout.take().unwrap()).lines();
    let listening: serde_json::Value = loop {
        let l = lines.next().expect("pcscf ended").unwrap();
        if l.contains("\"listening\"") {
            break serde_json::from_str(&l).unwrap();
        }
    };
    let addr = listening["address"].as_str().unwrap().to_owned();
    // Registered for 2 s: the UA re-registers after 1 s, and with T1 =
    // 50 ms gives up 64*T1 = 3.2 s later.
    let mut ua = imsua(&addr, &["--expires", "2", "--t1", "50ms", "listen"]);
    let mut child = ua
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ua_lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let l = ua_lines.next().expect("imsua ended").unwrap();
        seen.push(l.clone());
        if l.contains("\"event\": \"registered\"") {
            break;
        }
    }
    // The P-CSCF dies without a word.
    pcscf.kill().unwrap();
    pcscf.wait().unwrap();
    let started = Instant::now();
    for l in ua_lines {
        seen.push(l.unwrap());
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(started.elapsed() < LIMIT);
    assert_eq!(status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("did not answer the re-registration"), "{err}");
    assert!(err.contains(&addr), "{err}");
    // Its four SAs were removed (and reported) before it exited.
    let removed = seen
        .iter()
        .filter(|l| l.contains("\"event\": \"sa\"") && l.contains("\"action\": \"remove\""))
        .count();
    assert_eq!(removed, 4, "{seen:?}");
}

#[test]
fn ipsecd_not_running_in_tun_mode_is_one_line_and_exit_2() {
    let dir = TempDir::new("ims-no-ipsecd");
    let socket = dir.path("ipsecd.sock");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imsua"));
    cmd.args(BOB).args([
        "--pcscf",
        "192.0.2.1:5060",
        "--local",
        "192.0.2.2:0",
        "--ipsec",
        "tun",
        "--ipsecd-socket",
        socket.to_str().unwrap(),
        "register",
    ]);
    let out = finish(cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("ipsecd is not running at {}", socket.display())),
        "{err}"
    );
    // Nothing was sent, nothing registered.
    assert!(events(&out, "registered").is_empty());
}

/// A network namespace with a dummy interface (10.99.0.2/24) and an
/// ipsecd; both go on drop.
struct IpsecdHost {
    ns: String,
    dir: TempDir,
    daemon: Option<std::process::Child>,
}

impl IpsecdHost {
    fn new(test: &str) -> IpsecdHost {
        // Unique per test in this process: the tests run in parallel.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ns = format!("imsf{}-{n}", std::process::id());
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        };
        ip(&["netns", "add", &ns]);
        // The guard first: whatever fails below, the namespace goes.
        let mut host = IpsecdHost {
            ns: ns.clone(),
            dir: TempDir::new(test),
            daemon: None,
        };
        ip(&[
            "-n", &ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
        ]);
        ip(&["-n", &ns, "addr", "add", "10.99.0.2/24", "dev", "d0"]);
        for dev in ["d0", "d1", "lo"] {
            ip(&["-n", &ns, "link", "set", dev, "up"]);
        }
        let daemon = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                env!("CARGO_BIN_EXE_ipsecd"),
                "--foreground",
            ])
            .arg("--socket")
            .arg(host.dir.path("ipsecd.sock"))
            .arg("--state-file")
            .arg(host.dir.path("ipsecd.state"))
            .args(["--natt-port", "0", "--workers", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        host.daemon = Some(daemon);
        testkit::wait_until("ipsecd to answer", LIMIT, || host.client().stats().is_ok());
        host
    }

    fn client(&self) -> tools::ipsecd::client::Client {
        tools::ipsecd::client::Client::new(self.dir.path("ipsecd.sock"))
    }

    /// How many SAs (larval ones too) and policies `owner` holds.
    fn owned(&self, owner: &str) -> usize {
        let c = self.client();
        let text = c.dump().unwrap() + &c.spddump().unwrap();
        text.matches(&format!("owner={owner}")).count()
    }

    fn imsua(&self, t1: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_imsua")])
            .args(BOB)
            .args([
                // Nobody answers there.
                "--pcscf",
                "10.99.0.1:5060",
                "--local",
                "10.99.0.2:0",
                "--ipsec",
                "tun",
                "--t1",
                t1,
                "--ipsecd-socket",
            ])
            .arg(self.dir.path("ipsecd.sock"))
            .arg("register");
        cmd
    }
}

impl Drop for IpsecdHost {
    fn drop(&mut self) {
        if let Some(d) = &mut self.daemon {
            if let Ok(pid) = i32::try_from(d.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let _ = d.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn what_a_crashed_ua_held_at_ipsecd_is_removed_at_its_next_start() {
    if !testkit::require(
        "what_a_crashed_ua_held_at_ipsecd_is_removed_at_its_next_start",
        &[testkit::Peer::Root, testkit::Peer::Program("ip")],
    ) {
        return;
    }
    let host = IpsecdHost::new("ims-crash");
    let owner = "imsua:bob@ims.example.org";
    // A UA that holds its two SPIs, then dies before any answer.
    let mut ua = host
        .imsua("10s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    testkit::wait_until("the UA's held SPIs", LIMIT, || host.owned(owner) == 2);
    ua.kill().unwrap();
    ua.wait().unwrap();
    assert_eq!(host.owned(owner), 2, "a killed UA cleans nothing");
    // The next run removes them first, and what it held itself on exit
    // (its registration times out: nobody answers).
    let out = finish(host.imsua("50ms"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "removed what a previous run of {owner} left at ipsecd: 0 SAs, 2 held SPIs, 0 policies"
        )),
        "{err}"
    );
    // The registration timed out (exit 2, as for any unreachable P-CSCF).
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert_eq!(host.owned(owner), 0, "{}", host.client().dump().unwrap());
}

#[test]
fn clear_text_to_a_tun_pcscf_protected_port_is_dropped_and_counted() {
    if !testkit::require(
        "clear_text_to_a_tun_pcscf_protected_port_is_dropped_and_counted",
        &[
            testkit::Peer::Root,
            testkit::Peer::Program("ip"),
            testkit::Peer::Program("bash"),
        ],
    ) {
        return;
    }
    let host = IpsecdHost::new("ims-tun-clear");
    let subscribers = host.dir.path("subscribers.toml");
    std::fs::write(
        &subscribers,
        format!(
            "realm = \"ims.example.org\"\n[[subscriber]]\nimpi = \"bob@ims.example.org\"\n\
             impus = [\"sip:bob@ims.example.org\"]\nk = \"{K}\"\nop = \"{OP}\"\namf = \"725c\"\nsqn = \"000000000020\"\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &host.ns, env!("CARGO_BIN_EXE_pcscf")])
        .arg("--subscribers")
        .arg(&subscribers)
        .args([
            "--listen",
            "10.99.0.2:5060",
            "--ipsec",
            "tun",
            "--port-c",
            "5066",
            "--port-s",
            "5068",
            "-v",
            "--ipsecd-socket",
        ])
        .arg(host.dir.path("ipsecd.sock"));
    let mut pcscf = testkit::proc::Proc::spawn("pcscf", cmd);
    pcscf.wait_event(|v| v["event"] == "listening");
    // A REGISTER in clear to port-s from a sender without SAs.
    let register = "REGISTER sip:ims.example.org SIP/2.0\r\nVia: SIP/2.0/UDP 10.99.0.2:5099;branch=z9hG4bKx\r\n\
                    Max-Forwards: 70\r\nFrom: <sip:bob@ims.example.org>;tag=1\r\nTo: <sip:bob@ims.example.org>\r\n\
                    Call-ID: clear@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:10.99.0.2:5099>\r\nContent-Length: 0\r\n\r\n";
    let sent = Command::new("ip")
        .args(["netns", "exec", &host.ns, "bash", "-c"])
        .arg(format!(
            "printf '%s' '{}' > /dev/udp/10.99.0.2/5068",
            register.replace("\r\n", "\\r\\n")
        ))
        .status()
        .unwrap();
    assert!(sent.success());
    let drop = pcscf.wait_event(|v| v["event"] == "dropped");
    assert_eq!(drop["port"], 5068, "{drop}");
    assert!(drop["reason"].as_str().unwrap().contains("no SA"), "{drop}");
    // The same over TCP (port-s listens on TCP too): the connection is
    // taken, its message is not.
    let sent = Command::new("ip")
        .args(["netns", "exec", &host.ns, "bash", "-c"])
        .arg(format!(
            "exec 3<>/dev/tcp/10.99.0.2/5068 && printf '{}' >&3",
            register
                .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
                .replace("\r\n", "\\r\\n")
        ))
        .status()
        .unwrap();
    assert!(sent.success());
    let second = pcscf.wait_event(|v| {
        v["event"] == "dropped"
            && v["reason"].as_str().is_some_and(|r| r.contains("no SA"))
            && v["from"] != drop["from"]
    });
    assert_eq!(second["port"], 5068, "{second}");
    let (_, err) = pcscf.terminate();
    let stopped = pcscf
        .events()
        .into_iter()
        .find(|v| v["event"] == "stopped")
        .unwrap();
    assert_eq!(stopped["dropped"], 2, "{stopped}\n{err}");
    assert_eq!(stopped["sent"], 0, "{stopped}");
}
