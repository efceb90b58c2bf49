//! ipsecd fails closed at every moment of its life, and one daemon owns a
//! network namespace: a restart after a crash neither sends nor accepts
//! cleartext, ICMP errors about a protected flow leave as ESP, a second
//! daemon in a namespace is refused without disturbing the first, daemons
//! in several namespaces run with the defaults, and a bad start says why.
//!
//! Needs root, ip, nft, tshark, tcpdump and python3 (see `common`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{ADDR_A, ADDR_B, MARK, Pair, tshark_decrypt, tshark_plain, usable};
use testkit::wait_until;

const WAIT: Duration = Duration::from_secs(20);

fn protected_filter(p: &common::Ports) -> String {
    let ports = [p.pc_u, p.ps_u, p.pc_p, p.ps_p]
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    format!("udp.port in {{{ports}}}")
}

/// ipsecd in namespace `ns` with `args`, run to its exit (for starts that
/// must fail at once).
fn ipsecd_in(ns: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .args([
            "20",
            "ip",
            "netns",
            "exec",
            ns,
            env!("CARGO_BIN_EXE_ipsecd"),
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// Kills daemon `i` with SIGKILL (a crash) and waits for it to be gone.
fn crash(pair: &mut Pair, i: usize) {
    let mut d = pair.daemons[i].take().unwrap();
    common::signal(d.id(), "KILL");
    let _ = d.wait();
}

#[test]
fn a_restart_after_a_crash_sends_nothing_in_clear_and_no_number_twice() {
    if !usable("a_restart_after_a_crash_sends_nothing_in_clear_and_no_number_twice") {
        return;
    }
    let mut pair = Pair::new("crash-out");
    let p = pair.ports;
    let (cap, pcap) = pair.capture(1, "veth.pcap");
    let sink = pair.app_bg(
        1,
        &["udpecho", ADDR_B, &p.ps_p.to_string(), "60"],
        "sink.out",
    );
    let stream = pair.app_bg(
        0,
        &[
            "udpstream",
            ADDR_A,
            &p.pc_u.to_string(),
            ADDR_B,
            &p.ps_p.to_string(),
            "60",
            "0.002",
        ],
        "stream.out",
    );
    wait_until("the flow to run", WAIT, || {
        common::lines_in(&sink, "RX") >= 20
    });
    crash(&mut pair, 0);
    // While A is down, and while it comes back, the sender keeps sending.
    let sent_at_crash = common::lines_in(&stream, "SENT");
    wait_until(
        "the sender to send on into the crashed daemon",
        WAIT,
        || {
            common::lines_in(&stream, "SENT") + common::lines_in(&stream, "ERR")
                >= sent_at_crash + 100
        },
    );
    let conf = pair.dir.join("a.conf");
    pair.start_daemon(0, Some(&conf));
    let received = common::lines_in(&sink, "RX");
    wait_until("the flow to resume through the new daemon", WAIT, || {
        common::lines_in(&sink, "RX") >= received + 50
    });
    pair.stop_capture(cap, &pcap);
    let clear = tshark_plain(&pcap, &protected_filter(&p), &["frame.number"]);
    assert!(
        clear.trim().is_empty(),
        "protected datagrams in clear on the veth: frames {clear}"
    );
    let esp = tshark_decrypt(&pcap, "esp", &["esp.spi"]);
    assert!(esp.lines().count() > 100, "the flow went as ESP: {esp}");
    // The SAs, installed again, are the same SAs: they resumed above the
    // numbers they had sent (recorded before use), so B took nothing for a
    // replay (RFC 4303 §3.3.3).
    assert_eq!(
        pair.stat(1, "in_replay"),
        0,
        "replays at B after A's restart"
    );
    // The restarted daemon took the crashed one's place: no rule twice.
    let rules = common::run_ok("ip", &["-n", &pair.ns[0], "rule"]);
    let n = rules.matches("lookup 100").count();
    assert!(n > 0 && n <= 12, "rules after the restart: {rules}");
    assert!(pair.log(0).contains("taking over"), "{}", pair.log(0));
}

#[test]
fn a_restart_after_a_crash_accepts_no_cleartext() {
    if !usable("a_restart_after_a_crash_accepts_no_cleartext") {
        return;
    }
    let mut pair = Pair::new("crash-in");
    let p = pair.ports;
    let sink = pair.app_bg(
        1,
        &["udpecho", ADDR_B, &p.ps_p.to_string(), "60"],
        "sink.out",
    );
    // From A's protected port to B's, in clear, marked so it skips A's TUN:
    // what an attacker on the link sends, all through B's crash and restart.
    let inject = pair.app_bg(
        0,
        &[
            "spoofstream",
            &MARK.to_string(),
            ADDR_A,
            &p.pc_u.to_string(),
            ADDR_B,
            &p.ps_p.to_string(),
            "60",
            "0.002",
        ],
        "inject.out",
    );
    wait_until("the injector to run", WAIT, || {
        common::lines_in(&inject, "SENT") >= 50
    });
    crash(&mut pair, 1);
    let at_crash = common::lines_in(&inject, "SENT");
    wait_until("injections into the crashed daemon's host", WAIT, || {
        common::lines_in(&inject, "SENT") >= at_crash + 100
    });
    let conf = pair.dir.join("b.conf");
    pair.start_daemon(1, Some(&conf));
    let at_start = common::lines_in(&inject, "SENT");
    wait_until("injections after the restart", WAIT, || {
        common::lines_in(&inject, "SENT") >= at_start + 100
    });
    // Control: the protected path works after the restart.
    let ok = pair.app(
        0,
        &[
            "udpcli",
            ADDR_A,
            &p.pc_u.to_string(),
            ADDR_B,
            &p.ps_p.to_string(),
            "1",
            "64",
        ],
    );
    assert!(ok.contains("OK"), "protected path after the restart: {ok}");
    let got = std::fs::read_to_string(&sink).unwrap();
    let injected = "INJECT"
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert!(
        !got.contains(&injected),
        "cleartext reached the application: {}",
        got.lines().filter(|l| l.contains(&injected)).count()
    );
}

#[test]
fn an_icmp_error_about_a_protected_flow_leaves_as_esp() {
    if !usable("an_icmp_error_about_a_protected_flow_leaves_as_esp") {
        return;
    }
    let mut pair = Pair::new("icmp");
    let p = pair.ports;
    let (cap, pcap) = pair.capture(0, "veth.pcap");
    // Nothing listens on B's protected port: B's kernel answers with a port
    // unreachable that quotes the decrypted datagram.
    for _ in 0..3 {
        let o = pair.app(
            0,
            &[
                "udpsend",
                ADDR_A,
                &p.pc_u.to_string(),
                ADDR_B,
                &p.ps_p.to_string(),
                "secret-plaintext",
            ],
        );
        assert!(o.contains("SENT"), "{o}");
    }
    // The error is delivered to A through the SA of the flow it quotes.
    wait_until("the ICMP errors to be protected by B", WAIT, || {
        pair.stat(1, "out_protected") >= 3
    });
    pair.stop_capture(cap, &pcap);
    // tshark reads the quoted datagram's ports: no error quoting a
    // protected flow crosses in clear (the end-of-capture marker, on a
    // port no policy covers, gets an unprotected one).
    let clear_icmp = tshark_plain(
        &pcap,
        &format!("icmp && ({})", protected_filter(&p)),
        &["frame.number"],
    );
    assert!(
        clear_icmp.trim().is_empty(),
        "ICMP quoting a protected flow in clear on the veth: frames {clear_icmp}"
    );
    let inner = tshark_decrypt(&pcap, "esp && icmp.type == 3", &["esp.spi", "icmp.code"]);
    assert!(
        inner.lines().count() >= 3,
        "the port unreachables went inside ESP: {inner}"
    );
}

#[test]
fn mark_zero_is_refused() {
    if !usable("mark_zero_is_refused") {
        return;
    }
    let pair = Pair::new("mark0");
    let sock = pair.dir.join("m0.sock");
    let st = pair.dir.join("m0.state");
    let o = ipsecd_in(
        &pair.ns[0],
        &[
            "--foreground",
            "--tun",
            "m0tun",
            "--mark",
            "0",
            "--socket",
            sock.to_str().unwrap(),
            "--state-file",
            st.to_str().unwrap(),
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("--mark 0"), "{t}");
}

#[test]
fn a_second_ipsecd_in_a_namespace_is_refused_and_the_first_keeps_working() {
    if !usable("a_second_ipsecd_in_a_namespace_is_refused_and_the_first_keeps_working") {
        return;
    }
    let mut pair = Pair::new("second");
    let p = pair.ports;
    let rules = common::run_ok("ip", &["-n", &pair.ns[0], "rule"]);
    let sock = pair.dir.join("second.sock");
    let st = pair.dir.join("second.state");
    let o = ipsecd_in(
        &pair.ns[0],
        &[
            "--foreground",
            "--tun",
            "second0",
            "--socket",
            sock.to_str().unwrap(),
            "--state-file",
            st.to_str().unwrap(),
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("another ipsecd (pid"), "{t}");
    assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
    assert_eq!(common::run_ok("ip", &["-n", &pair.ns[0], "rule"]), rules);
    // The first daemon's socket and traffic are untouched.
    assert!(pair.setkey(0, &["-D"]).status.success());
    let _echo = pair.app_bg(
        1,
        &["udpecho", ADDR_B, &p.ps_p.to_string(), "20"],
        "echo.out",
    );
    let ok = pair.app(
        0,
        &[
            "udpcli",
            ADDR_A,
            &p.pc_u.to_string(),
            ADDR_B,
            &p.ps_p.to_string(),
            "2",
            "64",
        ],
    );
    assert_eq!(ok.matches("OK").count(), 2, "{ok}");
    // Another process's socket path is refused too (the first daemon's).
    let other = Command::new("ip")
        .args(["netns", "add", &format!("{}-x", pair.ns[0])])
        .status()
        .unwrap();
    assert!(other.success());
    let ns_x = format!("{}-x", pair.ns[0]);
    let o = ipsecd_in(
        &ns_x,
        &[
            "--foreground",
            "--tun",
            "x0",
            "--socket",
            pair.socket(0).to_str().unwrap(),
        ],
    );
    let _ = Command::new("ip").args(["netns", "del", &ns_x]).status();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("belongs to a running process"), "{t}");
}

/// Starts ipsecd with the defaults (socket, state file) in `ns`.
fn start_default(ns: &str, conf: &Path, log: &Path) -> std::process::Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            env!("CARGO_BIN_EXE_ipsecd"),
            "--foreground",
            "-f",
        ])
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn setkey_in(ns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_setkey")])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn daemons_in_two_namespaces_run_with_the_defaults() {
    if !usable("daemons_in_two_namespaces_run_with_the_defaults") {
        return;
    }
    let pair = Pair::new("defaults");
    let mut daemons = Vec::new();
    for (i, spi) in [(0, 0x5001u32), (1, 0x5002)] {
        let ns = format!("{}-d{i}", pair.ns[0]);
        assert!(
            Command::new("ip")
                .args(["netns", "add", &ns])
                .status()
                .unwrap()
                .success()
        );
        let conf = pair.dir.join(format!("d{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "add 10.9.0.1 10.9.0.2 esp {spi} -m transport -E aes-cbc 0x00112233445566778899aabbccddeeff -A hmac-sha1 0x0102030405060708090a0b0c0d0e0f1011121314;\n"
            ),
        )
        .unwrap();
        let log = pair.dir.join(format!("d{i}.log"));
        daemons.push((
            ns,
            start_default(&format!("{}-d{i}", pair.ns[0]), &conf, &log),
            spi,
            log,
        ));
    }
    for (ns, child, spi, log) in &mut daemons {
        wait_until(
            format!("the daemon in {ns} to answer setkey -D"),
            WAIT,
            || {
                let o = setkey_in(ns, &["-D"]);
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "daemon in {ns} exited: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                o.status.success()
            },
        );
        let d = String::from_utf8_lossy(&setkey_in(ns, &["-D"]).stdout).into_owned();
        assert!(
            d.contains(&format!("spi={}(", spi)),
            "{ns} has its own SAs: {d}"
        );
    }
    for (ns, mut child, _, _) in daemons {
        common::signal(child.id(), "TERM");
        let st = child.wait().unwrap();
        assert!(st.success(), "{ns}: {st}");
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    }
}

#[test]
fn a_bad_start_fails_with_one_line_and_a_status() {
    if !usable("a_bad_start_fails_with_one_line_and_a_status") {
        return;
    }
    let pair = Pair::new("badstart");
    // In a namespace of its own (the pair's have their daemons).
    let ns_x = format!("{}-x", pair.ns[0]);
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns_x])
            .status()
            .unwrap()
            .success()
    );
    // A socket in a directory that does not exist is not created there.
    let o = ipsecd_in(
        &ns_x,
        &[
            "--foreground",
            "--tun",
            "bad0",
            "--socket",
            "/nonexistent-dir/x.sock",
        ],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("does not exist"), "{t}");
    assert!(!Path::new("/nonexistent-dir").exists());
    // A detached start with a bad file returns its reason and status.
    let bad = pair.dir.join("bad.conf");
    std::fs::write(&bad, "spdadd 10.0.0.1 10.0.0.2 any -P out ipsec bogus;\n").unwrap();
    let o = ipsecd_in(&ns_x, &["-f", bad.to_str().unwrap()]);
    let _ = Command::new("ip").args(["netns", "del", &ns_x]).status();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("bad.conf:1:"), "{t}");
    assert_eq!(t.trim().lines().count(), 1, "one line: {t}");
    assert!(!t.contains('\u{1b}'), "no colours off a terminal: {t:?}");
}
