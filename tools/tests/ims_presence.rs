//! Presence between `imsua` and `pcscf` (RFC 3856, RFC 3903, RFC 6665,
//! PIDF RFC 3863):
//!
//! - Over `--ipsec udp --sigcomp`: bob subscribes to alice and gets the
//!   first NOTIFY at once, with no tuples (nothing is published: RFC 3856
//!   §6.6.2 lets the document say whatever state there is; none reads as
//!   closed); alice publishes `open` with a note, bob sees it; alice stops
//!   (her publication removed, Expires: 0) and bob sees it gone; bob,
//!   stopped by SIGTERM, unsubscribes (a final NOTIFY, terminated) and
//!   de-registers.
//! - Then, independently of our code: tshark decrypts the pcscf's capture
//!   with the keys it printed and decompresses every SigComp message; its
//!   own SIP dissector shows the PUBLISHes, SUBSCRIBEs and NOTIFYs with
//!   `Event: presence` (and which carry PIDF), in order; the bodies are
//!   taken from what tshark decompressed, and every one validates with
//!   libxml2's `xmllint` against the RFC 3863 §4.4 schema
//!   (`gm/tests/data/pidf.xsd`).
//! - A PUBLISH for someone else's IMPU is refused (403) and `imsua` exits 1
//!   with one line.
//!
//! Every child is killed when its guard drops; waits are on printed lines,
//! with a limit. Ports are the OS's free ones (this file runs in a process
//! of its own, beside `tests/ims.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use testkit::tshark::SaEvent;
use testkit::{Peer, TempDir, require};

/// Gives up waiting for a line after this long.
const LIMIT: Duration = Duration::from_secs(20);

/// TS 35.208 §4.3.3, test set 3.
const K: &str = "fec86ba6eb707ed08905757b1bb44b8f";
const OP: &str = "dbc59adcb6f9a0ef735477b7fadf8374";
const AMF: &str = "725c";

const ALICE: &str = "sip:alice@ims.example.org";

fn subscribers() -> String {
    let mut s = String::from("realm = \"ims.example.org\"\n");
    for user in ["alice", "bob"] {
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

    /// Waits until `n` stdout lines contain every one of `parts`; the
    /// `n`th.
    fn wait_nth(&mut self, parts: &[&str], n: usize) -> String {
        let matches = |l: &String| parts.iter().all(|p| l.contains(p));
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(l) = self.seen.iter().filter(|l| matches(l)).nth(n - 1) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => {
                    let err = self.stderr_now();
                    panic!(
                        "{}: no line {n} with {parts:?} in {LIMIT:?}; got:\n{}\nstderr: {err}",
                        self.name,
                        self.seen.join("\n"),
                    )
                }
            }
        }
    }

    fn wait_line(&mut self, parts: &[&str]) -> String {
        self.wait_nth(parts, 1)
    }

    /// Kills the child and returns its stderr (for a failure message).
    fn stderr_now(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }

    /// Waits for the exit (within the limit): its status, with every line
    /// printed before it collected.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(1)) {
                    self.seen.push(l);
                }
                return s;
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.wait_exit()
    }

    fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).unwrap();
        }
        err
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `pcscf` on a free port with `extra`, up and listening.
fn pcscf(dir: &TempDir, extra: &[&str]) -> (Proc, String) {
    let subs = dir.path("subscribers.toml");
    std::fs::write(&subs, subscribers()).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pcscf"));
    cmd.arg("--subscribers")
        .arg(&subs)
        .args(["--listen", &addr])
        .args(extra);
    let mut p = Proc::spawn("pcscf", cmd);
    p.wait_line(&["\"event\": \"listening\""]);
    (p, addr)
}

fn imsua(user: &str, pcscf: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imsua"));
    cmd.args([
        "--impi",
        &format!("{user}@ims.example.org"),
        "--impu",
        &format!("sip:{user}@ims.example.org"),
        "--k",
        K,
        "--op",
        OP,
        "--pcscf",
        pcscf,
    ]);
    cmd.args(extra);
    cmd
}

fn event_of(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap()
}

/// The JSON event lines of `lines` whose `event` is `name`.
fn events(lines: &[String], name: &str) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| event_of(l))
        .filter(|v| v["event"] == name)
        .collect()
}

#[test]
fn bob_watches_alice_publish_over_esp_and_sigcomp_and_tshark_reads_it() {
    let dir = TempDir::new("ims-presence");
    let pcap = dir.path("pcscf.pcap");
    let (port_c, port_s) = (free_port().to_string(), free_port().to_string());
    let (mut pcscf, addr) = pcscf(
        &dir,
        &[
            "--ipsec",
            "udp",
            "--sigcomp",
            "--port-c",
            &port_c,
            "--port-s",
            &port_s,
            "--pcap",
            pcap.to_str().unwrap(),
            "--show-keys",
        ],
    );
    let udp = ["--ipsec", "udp", "--sigcomp"];

    // Bob watches alice, who published nothing: the first NOTIFY comes at
    // once (RFC 6665 §4.2.1.1) with a document of no tuples.
    let mut bob = Proc::spawn(
        "bob",
        imsua("bob", &addr, &[&udp[..], &["subscribe", ALICE]].concat()),
    );
    let first = event_of(&bob.wait_line(&["\"event\": \"presence\""]));
    assert_eq!(first["resource"], ALICE);
    assert_eq!(first["state"], "active");
    assert_eq!(first["tuples"], 0, "{first}");
    assert_eq!(first["basic"], "closed", "{first}");
    assert_eq!(first["notes"], serde_json::json!([]));
    let w = event_of(&pcscf.wait_line(&["\"event\": \"watcher\""]));
    assert_eq!(
        (&w["resource"], &w["watcher"], &w["state"]),
        (
            &ALICE.into(),
            &"sip:bob@ims.example.org".into(),
            &"active".into()
        )
    );

    // Alice publishes.
    let mut alice = Proc::spawn(
        "alice",
        imsua(
            "alice",
            &addr,
            &[&udp[..], &["publish", "open", "--note", "at the demo"]].concat(),
        ),
    );
    let published = event_of(&alice.wait_line(&["\"event\": \"published\""]));
    let etag = published["etag"].as_str().unwrap().to_owned();
    assert!(!etag.is_empty());
    assert_eq!(published["basic"], "open");
    let at_pcscf = event_of(&pcscf.wait_line(&["\"event\": \"published\""]));
    assert_eq!(at_pcscf["etag"], etag.as_str());
    assert_eq!(at_pcscf["resource"], ALICE);
    assert_eq!(at_pcscf["basic"], "open");
    let open = event_of(&bob.wait_line(&["\"event\": \"presence\"", "\"basic\": \"open\""]));
    assert_eq!(open["notes"], serde_json::json!(["at the demo"]));
    assert_eq!(open["tuples"], 1);
    assert_eq!(open["state"], "active");

    // Alice stops: her publication is removed before she de-registers,
    // and bob sees nothing published again.
    assert!(alice.terminate().success(), "{}", alice.stderr());
    let lines = alice.seen.join("\n");
    let unpublished = lines.find("\"event\": \"unpublished\"").unwrap();
    let deregistered = lines.find("\"event\": \"deregistered\"").unwrap();
    assert!(unpublished < deregistered, "{lines}");
    let gone = event_of(&bob.wait_nth(&["\"event\": \"presence\"", "\"tuples\": 0"], 2));
    assert_eq!(gone["basic"], "closed");
    assert_eq!(gone["state"], "active");

    // Bob stops: unsubscribes (the final NOTIFY says terminated), then
    // de-registers.
    assert!(bob.terminate().success(), "{}", bob.stderr());
    let presence = events(&bob.seen, "presence");
    assert_eq!(presence.len(), 4, "{presence:?}");
    assert_eq!(presence[3]["state"], "terminated");
    assert_eq!(presence[3]["reason"], "timeout");
    assert_eq!(events(&bob.seen, "deregistered").len(), 1);
    pcscf.wait_line(&["\"event\": \"watcher\"", "\"state\": \"terminated\""]);
    pcscf.wait_line(&[
        "\"event\": \"deregistered\"",
        "\"impi\": \"bob@ims.example.org\"",
    ]);
    assert!(pcscf.terminate().success());

    if !require(
        "bob_watches_alice_publish_over_esp_and_sigcomp_and_tshark_reads_it (capture check)",
        &[Peer::Tshark, Peer::Program("xmllint")],
    ) {
        return;
    }
    let (sip, decode_as) = tshark_sip(&dir, &pcap, &events(&pcscf.seen, "sa"));
    // tshark's own SIP dissector, on what it decompressed: method, Event
    // and Content-Type of every request with Event: presence.
    let out = Command::new("tshark")
        .arg("-r")
        .arg(dir.path("inner.pcap"))
        .args(["-o", "sigcomp.decomp.msg:TRUE"])
        .args(&decode_as)
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "sip.Method",
            "-e",
            "sip.Event",
            "-e",
            "sip.Content-Type",
        ])
        .args(["-e", "sip.Call-ID", "-e", "sip.CSeq"])
        .output()
        .unwrap();
    assert!(out.status.success());
    // A retransmission (same Call-ID and CSeq) counted once.
    let mut once = std::collections::HashSet::new();
    let dissected: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.contains("|presence|"))
        .filter(|l| once.insert(l.to_string()))
        .map(|l| l.split('|').take(3).collect::<Vec<_>>().join("|"))
        .collect();
    assert_eq!(
        dissected,
        [
            "SUBSCRIBE|presence|",
            "NOTIFY|presence|application/pidf+xml",
            "PUBLISH|presence|application/pidf+xml",
            "NOTIFY|presence|application/pidf+xml",
            "PUBLISH|presence|",
            "NOTIFY|presence|application/pidf+xml",
            "SUBSCRIBE|presence|",
            "NOTIFY|presence|application/pidf+xml",
        ],
        "as tshark dissects them, in capture order"
    );
    let mut once = std::collections::HashSet::new();
    let presence: Vec<gm::sip::Message<'_>> = sip
        .iter()
        .map(|m| gm::sip::Message::parse(m).unwrap())
        .filter(|m| m.is_request())
        .filter(|m| m.header("Event") == Some("presence"))
        .filter(|m| {
            let key = (m.header("Call-ID"), m.header("CSeq"));
            once.insert((key.0.map(str::to_owned), key.1.map(str::to_owned)))
        })
        .collect();
    let count = |method: gm::sip::Method<'_>| {
        presence
            .iter()
            .filter(|m| m.method() == Some(method))
            .count()
    };
    use gm::sip::Method;
    // The publication and its removal; the subscription and its end; the
    // NOTIFYs: nothing, open, nothing, terminated.
    assert_eq!(count(Method::Publish), 2, "{presence:?}");
    assert_eq!(count(Method::Subscribe), 2, "{presence:?}");
    assert_eq!(count(Method::Notify), 4, "{presence:?}");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gm/tests/data/pidf.xsd");
    let mut bodies = 0;
    let mut notes = 0;
    for (i, m) in presence.iter().enumerate() {
        if m.body().is_empty() {
            continue;
        }
        assert_eq!(m.header("Content-Type"), Some("application/pidf+xml"));
        let file = dir.path(&format!("pidf{i}.xml"));
        std::fs::write(&file, m.body()).unwrap();
        let out = Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg(&file)
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(m.body());
        assert!(
            out.status.success(),
            "{}\n{body}",
            String::from_utf8_lossy(&out.stderr)
        );
        bodies += 1;
        notes += usize::from(body.contains("<note>at the demo</note>"));
    }
    // The PUBLISH with the state and the four NOTIFYs.
    assert_eq!(bodies, 5);
    // In the PUBLISH and bob's second NOTIFY.
    assert_eq!(notes, 2);
}

/// The SIP messages in `pcap` as tshark reads them: ESP decrypted with the
/// keys of the `sa` events (every ICV good), the inner datagrams written to
/// a plain UDP capture, and each SigComp message there decompressed by
/// tshark. The REGISTER and its 401 in clear are left out. With the
/// options that decode the inner capture (`dir/inner.pcap`) as SigComp.
fn tshark_sip(dir: &TempDir, pcap: &Path, sa: &[serde_json::Value]) -> (Vec<Vec<u8>>, Vec<String>) {
    let sas: Vec<SaEvent> = sa.iter().map(|v| SaEvent::from_json(v).unwrap()).collect();
    let added: Vec<&SaEvent> = sas.iter().filter(|s| s.action == "add").collect();
    assert!(!added.is_empty());
    let (run, ports) = testkit::tshark::esp_in_udp(pcap, added.iter().map(|s| s.udp_sa()));
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
        frames.push(testkit::packet::udp(
            udp.src,
            udp.sport,
            udp.dst,
            udp.dport,
            udp.payload,
        ));
    }
    assert!(!frames.is_empty());
    let inner = dir.path("inner.pcap");
    testkit::pcap::Capture::new(testkit::pcap::LINKTYPE_RAW, frames.clone()).write(&inner);
    let mut extra = Vec::new();
    for p in &ports {
        extra.push("-d".to_owned());
        extra.push(format!("udp.port=={p},sigcomp"));
    }
    let args: Vec<&str> = extra.iter().map(String::as_str).collect();
    let got = testkit::tshark::sigcomp_decompressed(&inner, &args);
    assert_eq!(got.len(), frames.len());
    let sip = got
        .into_iter()
        .enumerate()
        .map(|(i, g)| g.unwrap_or_else(|| panic!("tshark did not decompress frame {}", i + 1)))
        .collect();
    (sip, extra)
}

#[test]
fn a_publish_for_someone_else_is_refused_with_one_line() {
    let dir = TempDir::new("ims-presence-403");
    let (mut pcscf, addr) = pcscf(&dir, &["--ipsec", "none"]);
    let mut alice = Proc::spawn(
        "alice",
        imsua(
            "alice",
            &addr,
            &[
                "--ipsec",
                "none",
                "publish",
                "open",
                "--resource",
                "sip:bob@ims.example.org",
            ],
        ),
    );
    let status = alice.wait_exit();
    let err = alice.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("403 Forbidden"), "{err}");
    assert!(err.contains("sip:bob@ims.example.org"), "{err}");
    // Nothing was published, and alice did not stay registered.
    assert!(events(&alice.seen, "published").is_empty());
    assert_eq!(events(&alice.seen, "deregistered").len(), 1);
    pcscf.wait_line(&["\"event\": \"deregistered\""]);
    assert!(pcscf.terminate().success());
    assert!(events(&pcscf.seen, "published").is_empty());
}
