//! `imsua --ipsec none` against Kamailio (Debian `kamailio`), a registrar
//! and proxy nobody here wrote, started by the test on loopback with the
//! config `ims/kamailio.cfg` (registrar in memory, digest authentication
//! with `pv_auth_check`, MESSAGE relayed to the registered contact):
//!
//! - alice and bob register with digest MD5 (`qop=auth`): Kamailio
//!   accepted our response;
//! - bob's MESSAGE goes through Kamailio's `lookup` and `t_relay` to alice,
//!   whose 200 comes back to bob through Kamailio's transaction layer;
//! - the same over TCP (`--transport tcp`) with Kamailio listening on TCP
//!   only, so nothing can have gone over UDP: Kamailio cut our messages
//!   out of the stream by their Content-Length, saved our
//!   `;transport=tcp` contact, and relayed bob's MESSAGE to alice over TCP;
//! - a wrong password: Kamailio challenges again and the UA stops at once
//!   with a one-line reason and exit 1, instead of retrying the same
//!   credentials (RFC 3261 §22.2).
//!
//! Needs root only if Kamailio must be installed (`scripts/test` does it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use testkit::proc::{Proc, Value, free_udp_port};
use testkit::{Peer, TempDir, poll_until, require, wait_until};

const USERS: &[(&str, &str)] = &[("alice", "wonderland"), ("bob", "builder")];

/// Kamailio in the foreground (`-DD`: its main process and its children
/// in a process group of their own), logging to a file; the whole group
/// is stopped on drop.
struct Kamailio {
    child: Child,
    addr: String,
    log: std::path::PathBuf,
}

impl Kamailio {
    /// Kamailio listening on UDP, or on TCP only.
    fn start(dir: &TempDir, tcp: bool) -> Kamailio {
        let addr = format!("127.0.0.1:{}", free_udp_port());
        let proto = if tcp { "tcp" } else { "udp" };
        let passwords: String = USERS
            .iter()
            .map(|(u, p)| format!("\t\tif ($aU == \"{u}@ims.example.org\") $var(pw) = \"{p}\";\n"))
            .collect();
        let cfg = include_str!("ims/kamailio.cfg")
            .replace("@LISTEN@", &format!("{proto}:{addr}"))
            .replace("@PASSWORDS@\n", &passwords);
        let path = dir.path("kamailio.cfg");
        std::fs::write(&path, cfg).unwrap();
        let log = dir.path("kamailio.log");
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(&path)
            .args(["-DD", "-E", "-m", "32", "-M", "8"])
            .arg("-Y")
            .arg(dir.dir())
            .arg("-w")
            .arg(dir.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        let k = Kamailio { child, addr, log };
        if tcp {
            k.wait_ready_tcp();
        } else {
            k.wait_ready();
        }
        k
    }

    /// The same over TCP: a connection that takes an OPTIONS and gives
    /// back the 405.
    fn wait_ready_tcp(&self) {
        let mut buf = [0u8; 2048];
        wait_until(
            format!("Kamailio answering on TCP {}", self.addr),
            Duration::from_secs(20),
            || {
                let Ok(mut c) = TcpStream::connect(&self.addr) else {
                    return false;
                };
                let me = c.local_addr().unwrap();
                let options = format!(
                    "OPTIONS sip:ims.example.org SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKprobe\r\n\
                     Max-Forwards: 70\r\nFrom: <sip:probe@ims.example.org>;tag=p\r\n\
                     To: <sip:ims.example.org>\r\nCall-ID: probe\r\nCSeq: 1 OPTIONS\r\n\
                     Content-Length: 0\r\n\r\n"
                );
                c.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                c.write_all(options.as_bytes()).is_ok()
                    && matches!(c.read(&mut buf), Ok(n) if buf[..n].starts_with(b"SIP/2.0 405"))
            },
        );
    }

    /// Up when it answers a request: an OPTIONS (the config answers 405).
    fn wait_ready(&self) {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let me = probe.local_addr().unwrap();
        let options = format!(
            "OPTIONS sip:ims.example.org SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@ims.example.org>;tag=p\r\n\
             To: <sip:ims.example.org>\r\nCall-ID: probe\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let mut buf = [0u8; 2048];
        wait_until(
            format!("Kamailio answering on {}", self.addr),
            Duration::from_secs(20),
            || {
                probe.send_to(options.as_bytes(), &self.addr).unwrap();
                matches!(probe.recv(&mut buf), Ok(n) if buf[..n].starts_with(b"SIP/2.0 405"))
            },
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        if !poll_until(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = self.child.wait();
        }
    }
}

fn imsua(user: &str, password: &str, registrar: &str, command: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imsua"));
    cmd.args(["--impi", &format!("{user}@ims.example.org")])
        .args(["--impu", &format!("sip:{user}@ims.example.org")])
        .args([
            "--password",
            password,
            "--pcscf",
            registrar,
            "--ipsec",
            "none",
        ])
        .args(command);
    cmd
}

fn is(e: &Value, event: &str) -> bool {
    e["event"] == event
}

#[test]
fn two_uas_register_and_exchange_a_message_through_kamailio() {
    if !require(
        "two_uas_register_and_exchange_a_message_through_kamailio",
        &[Peer::Program("kamailio")],
    ) {
        return;
    }
    exchange(false);
}

#[test]
fn two_uas_register_and_exchange_a_message_through_kamailio_over_tcp() {
    if !require(
        "two_uas_register_and_exchange_a_message_through_kamailio_over_tcp",
        &[Peer::Program("kamailio")],
    ) {
        return;
    }
    exchange(true);
}

/// alice listens, bob sends her a MESSAGE, both through Kamailio.
fn exchange(tcp: bool) {
    let dir = TempDir::new("ims-kamailio");
    let k = Kamailio::start(&dir, tcp);
    let transport: &[&str] = if tcp { &["--transport", "tcp"] } else { &[] };
    let mut alice = Proc::spawn(
        "alice",
        imsua(
            "alice",
            USERS[0].1,
            &k.addr,
            &[transport, &["listen"]].concat(),
        ),
    );
    let reg = alice.wait_event(|e| is(e, "registered"));
    assert_eq!(reg["impu"], "sip:alice@ims.example.org", "{}", k.log());
    // Kamailio's registrar caps the expiry at its max_expires.
    assert_eq!(reg["expires"], 3600);

    let mut bob = Proc::spawn(
        "bob",
        imsua(
            "bob",
            USERS[1].1,
            &k.addr,
            &[
                transport,
                &[
                    "message",
                    "sip:alice@ims.example.org",
                    "hello through kamailio",
                ],
            ]
            .concat(),
        ),
    );
    let (status, err) = bob.wait_exit();
    assert!(status.success(), "{err}\n{:?}\n{}", bob.seen, k.log());
    let events = bob.events();
    let st = events
        .iter()
        .find(|e| is(e, "message-status"))
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(st["to"], "sip:alice@ims.example.org");
    assert_eq!(st["status"], 200);
    assert!(events.iter().any(|e| is(e, "deregistered")), "{events:?}");

    let got = alice.wait_event(|e| is(e, "message"));
    assert_eq!(got["from"], "sip:bob@ims.example.org");
    assert_eq!(got["text"], "hello through kamailio");
    let (status, err) = alice.terminate();
    assert!(status.success(), "{err}");
    assert!(alice.events().iter().any(|e| is(e, "deregistered")));
}

#[test]
fn a_wrong_password_stops_at_kamailios_second_challenge() {
    if !require(
        "a_wrong_password_stops_at_kamailios_second_challenge",
        &[Peer::Program("kamailio")],
    ) {
        return;
    }
    let dir = TempDir::new("ims-kamailio-wrong");
    let k = Kamailio::start(&dir, false);
    let mut ua = Proc::spawn("bob", imsua("bob", "not-his", &k.addr, &["register"]));
    let (status, err) = ua.wait_exit();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("refused our credentials"), "{err}");
    // One REGISTER without credentials, one with: no retry of the same
    // password.
    let registers = ua
        .seen
        .iter()
        .filter(|l| l.contains(" -> ") && l.contains(" REGISTER "))
        .count();
    assert_eq!(registers, 2, "{:?}", ua.seen);
}
