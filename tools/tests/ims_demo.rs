//! `imsua demo`, the README's main command, as a user runs it: no
//! argument but where to write the capture and `--json` for the summary.
//!
//! - Every step works and is reported: the P-CSCF, bob registers and
//!   subscribes to alice's presence, alice registers through AUTS, her
//!   MESSAGE, concatenated SMS and PUBLISH reach bob, both de-register.
//! - SigComp makes the signaling smaller than the SIP it carries; the
//!   P-CSCF's SAs (four per registration, four more for alice's AUTS
//!   request) are in the summary with their counters and `setkey -D` text.
//! - The `tshark` command the demo prints, run as printed, decrypts the
//!   capture (ICV checked) and decompresses the SIP inside: tshark, not
//!   us, shows the REGISTERs, the MESSAGEs with alice's text, the
//!   PUBLISH, the SUBSCRIBEs and the NOTIFYs; it finds as many ESP
//!   packets as the SAs counted.
//! - `--tun` (root): the same in three network namespaces with an
//!   ipsecd each, ESP transport mode: the same steps; the P-CSCF's SAs
//!   are ipsecd's (`setkey -D` text with their owner tag); the printed
//!   tshark command decrypts the P-CSCF ipsecd's capture (ICV checked)
//!   and shows the SIP and SigComp inside; no namespace is left.
//! - Without root, `--tun` says so in one line (exit 2).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{Peer, TempDir, require};

fn imsua() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imsua"))
}

/// Runs the demo with a time limit; its exit status, stdout and stderr.
fn demo(dir: &TempDir, extra: &[&str]) -> (std::process::ExitStatus, String, String) {
    let pcap = dir.path("demo.pcap");
    let mut child = imsua()
        .args(["demo", "--json", "--pcap", pcap.to_str().unwrap()])
        .args(extra)
        .current_dir(dir.dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the demo ran over 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn summary(stdout: &str) -> serde_json::Value {
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Every step of the demo, in order, each ok; alice's through AUTS;
/// fewer bytes on the wire than as SIP.
fn assert_steps(s: &serde_json::Value) {
    assert_eq!(s["event"], "demo");
    assert_eq!(s["ok"], true, "{s}");
    let steps: Vec<&str> = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            assert_eq!(v["ok"], true, "{v}");
            v["step"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        steps,
        [
            "P-CSCF",
            "bob registers",
            "bob subscribes",
            "alice registers",
            "alice -> bob MESSAGE",
            "alice -> bob SMS",
            "alice publishes",
            "alice de-registers",
            "bob de-registers",
        ]
    );
    // Alice's registration went through AUTS.
    let alice = &s["steps"][3]["detail"];
    assert!(alice.as_str().unwrap().contains("AUTS"), "{alice}");
    // SigComp: fewer bytes on the wire than the SIP they carry.
    let (wire, sip) = (
        s["sent_bytes"].as_i64().unwrap(),
        s["sent_sip_bytes"].as_i64().unwrap(),
    );
    assert!(wire > 0 && wire < sip, "{wire} vs {sip}");
}

/// Runs a printed shell command in `dir`; its stdout.
fn run_printed(dir: &TempDir, cmd: &str) -> String {
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", cmd])
        .current_dir(dir.dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The numbered frames of a tshark listing.
fn frames(listing: &str) -> Vec<&str> {
    listing
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|n| n.parse::<u64>().is_ok())
        })
        .collect()
}

#[test]
fn the_demo_runs_every_step_and_tshark_reads_its_capture() {
    let dir = TempDir::new("ims-demo");
    let (status, stdout, stderr) = demo(&dir, &[]);
    assert!(status.success(), "{stdout}\n{stderr}");
    let s = summary(&stdout);
    assert_steps(&s);
    // The P-CSCF's SAs: four per UE, and the four temporary ones of
    // alice's AUTS request; each with its setkey -D text, and those of
    // the two registrations all used.
    let sas = s["sas"].as_array().unwrap();
    assert_eq!(sas.len(), 12, "{sas:?}");
    let mut esp_packets = 0;
    let mut used = 0;
    for sa in sas {
        let n = sa["packets"].as_u64().unwrap();
        esp_packets += n;
        used += usize::from(n > 0);
        let dump = sa["setkey"].as_str().unwrap();
        let spi = sa["spi"].as_u64().unwrap();
        assert!(
            dump.contains(&format!("esp-udp mode=tunnel spi={spi}(0x{spi:08x})")),
            "{dump}"
        );
        assert!(dump.contains(&format!("allocated: {n}")), "{dump}");
    }
    assert!(used >= 8, "{sas:?}");
    // The human summary names the capture and the command.
    assert!(
        stdout.contains("The SAs as setkey -D prints them:"),
        "{stdout}"
    );
    let tshark = s["tshark"].as_str().unwrap();
    assert!(stdout.contains(tshark));

    if !require(
        "the_demo_runs_every_step_and_tshark_reads_its_capture (tshark)",
        &[Peer::Tshark, Peer::Program("text2pcap")],
    ) {
        return;
    }
    // The printed command, as printed; and again with the whole messages.
    let run = |cmd: &str| run_printed(&dir, cmd);
    let listing = run(tshark);
    let frames = frames(&listing);
    // tshark decrypted as many ESP packets as the SAs counted; every one
    // held SIP it could read (SigComp decompressed), except those of an
    // SA whose SPI a later SA of the same addresses took again (alice's
    // temporary AUTS SAs): tshark's SA table has no ports, so the
    // command keeps the later SA and those few decrypt to noise.
    assert_eq!(frames.len() as u64, esp_packets, "{listing}");
    let all: Vec<&serde_json::Value> = sas.iter().collect();
    let kept = tools::ims::demo::latest_per_spi(&all);
    let shadowed: u64 = sas
        .iter()
        .filter(|sa| !kept.iter().any(|k| std::ptr::eq(*k, *sa)))
        .map(|sa| sa["packets"].as_u64().unwrap())
        .sum();
    assert!(shadowed <= 2, "{sas:?}");
    let readable = frames.iter().filter(|l| l.contains("SIGCOMP/")).count() as u64;
    assert_eq!(readable, esp_packets - shadowed, "{listing}");
    let count = |what: &str| frames.iter().filter(|l| l.contains(what)).count();
    assert!(count("Request: REGISTER") >= 4, "{listing}");
    // Alice's MESSAGE and the SMS parts, to the P-CSCF and on to bob, and
    // the RP-ACKs.
    assert!(count("Request: MESSAGE") >= 2 + 2 * 2, "{listing}");
    assert!(count("Request: PUBLISH") >= 1, "{listing}");
    assert!(count("Request: SUBSCRIBE") >= 3, "{listing}");
    assert!(count("Request: NOTIFY") >= 3, "{listing}");
    // tshark's own decode of alice's text, in the decompressed MESSAGE.
    let whole = run(&format!(
        "{tshark} -O sip -o sigcomp.display.decomp.msg.as.txt:TRUE"
    ));
    assert!(
        whole.contains("Hello Bob! This MESSAGE went through ESP and SigComp."),
        "{whole}"
    );
    assert!(whole.contains("At the IMS demo"), "{whole}");
}

#[test]
fn the_demo_over_ipsecd_in_namespaces_runs_every_step_and_tshark_reads_it() {
    tun_demo(
        "the_demo_over_ipsecd_in_namespaces_runs_every_step_and_tshark_reads_it",
        false,
    );
}

/// The same with the UAs on TCP (`--tcp`): TCP connections through the
/// SAs (port-c to port-s both ways), SigComp records on them, and tshark
/// reassembles and decompresses the SIP in the decrypted TCP.
#[test]
fn the_demo_over_ipsecd_runs_over_tcp_and_tshark_reads_it() {
    tun_demo(
        "the_demo_over_ipsecd_runs_over_tcp_and_tshark_reads_it",
        true,
    );
}

/// One namespace demo at a time: each is three namespaces and three
/// ipsecds on two cores, and each checks that no demo namespace is left.
static TUN_DEMO: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tun_demo(name: &str, tcp: bool) {
    let _one = TUN_DEMO.lock().unwrap_or_else(|e| e.into_inner());
    if !require(
        name,
        &[Peer::Root, Peer::Program("ip"), Peer::Program("nft")],
    ) {
        return;
    }
    let dir = TempDir::new("ims-demo-tun");
    let demo_namespaces = || {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("imsdemo"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let before = demo_namespaces();
    let args: &[&str] = if tcp { &["--tun", "--tcp"] } else { &["--tun"] };
    let (status, stdout, stderr) = demo(&dir, args);
    // Whatever happened, the demo's namespaces are gone.
    assert_eq!(demo_namespaces(), before, "{stdout}\n{stderr}");
    assert!(status.success(), "{stdout}\n{stderr}");
    let s = summary(&stdout);
    assert_steps(&s);
    assert!(
        s["steps"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("mod=trans by ipsecd (SPIs held there)"),
        "{s}"
    );
    // The P-CSCF's SAs, as its ipsecd holds them: transport mode, owned
    // by the P-CSCF's tag, counted.
    let sas = s["sas"].as_array().unwrap();
    assert_eq!(sas.len(), 12, "{sas:?}");
    let mut esp_packets = 0;
    for sa in sas {
        let n = sa["packets"].as_u64().unwrap();
        esp_packets += n;
        let dump = sa["setkey"].as_str().unwrap();
        let spi = sa["spi"].as_u64().unwrap();
        assert!(
            dump.contains(&format!("esp mode=transport spi={spi}(0x{spi:08x})")),
            "{dump}"
        );
        assert!(dump.contains("owner=pcscf-5060"), "{dump}");
        assert!(dump.contains(&format!("allocated: {n}")), "{dump}");
    }
    let tshark = s["tshark"].as_str().unwrap();
    assert!(tshark.contains("-Y esp"), "{tshark}");
    if tcp {
        // Every message the UAs sent went over TCP (the ladder says so).
        let ladder: Vec<&str> = stdout
            .lines()
            .filter(|l| l.contains(" | ") && (l.contains(" -> ") || l.contains(" <- ")))
            .collect();
        assert!(ladder.len() > 40, "{stdout}");
        assert!(ladder.iter().all(|l| l.ends_with(" TCP")), "{stdout}");
    }
    if !require(&format!("{name} (tshark)"), &[Peer::Tshark]) {
        return;
    }
    let listing = run_printed(&dir, tshark);
    let frames = frames(&listing);
    // Every ESP packet the P-CSCF's SAs counted is in the capture, and
    // tshark (ICV checked) reads SigComp-compressed SIP in all but those
    // of alice's temporary SAs (their SPIs were taken again, see above).
    // A packet already on its way through ipsecd when the P-CSCF read its
    // counters (a NOTIFY retransmission to a UE that left, the last ACKs
    // of a connection) is in the capture but not in the count.
    assert!(frames.len() as u64 >= esp_packets, "{listing}");
    if !tcp {
        assert!(frames.len() as u64 <= esp_packets + 2, "{listing}");
    }
    let readable = frames.iter().filter(|l| l.contains("SIGCOMP/")).count() as u64;
    if tcp {
        // Segments without SIP (SYN, ACK, FIN) are TCP; none is UDP.
        let decrypted = frames
            .iter()
            .filter(|l| l.contains(" TCP ") || l.contains("SIGCOMP/"))
            .count() as u64;
        assert!(decrypted + 6 >= esp_packets, "{listing}");
        assert!(!frames.iter().any(|l| l.contains(" UDP ")), "{listing}");
        assert!(readable >= 40, "{listing}");
    } else {
        assert!(readable + 2 >= esp_packets, "{listing}");
    }
    let count = |what: &str| frames.iter().filter(|l| l.contains(what)).count();
    assert!(count("Request: REGISTER") >= 3, "{listing}");
    assert!(count("Request: MESSAGE") >= 2 + 2 * 2, "{listing}");
    assert!(count("Request: PUBLISH") >= 1, "{listing}");
    assert!(count("Request: NOTIFY") >= 3, "{listing}");
    let whole = run_printed(
        &dir,
        &format!("{tshark} -O sip -o sigcomp.display.decomp.msg.as.txt:TRUE"),
    );
    assert!(
        whole.contains("Hello Bob! This MESSAGE went through ESP and SigComp."),
        "{whole}"
    );
}

#[test]
fn demo_tun_without_root_says_so() {
    let mut cmd = if nix_is_root() {
        // As root, run it as nobody.
        let Some(nobody) = unprivileged() else {
            eprintln!("SKIP demo_tun_without_root_says_so: no user nobody");
            return;
        };
        let mut c = Command::new("setpriv");
        c.args(["--reuid", &nobody, "--regid", &nobody, "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_imsua"));
        c
    } else {
        imsua()
    };
    let out = cmd
        .args(["demo", "--tun", "--pcap", "/dev/null"])
        .current_dir("/")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs root"), "{err}");
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The uid of `nobody`, if the system has it.
fn unprivileged() -> Option<String> {
    let out = Command::new("id").args(["-u", "nobody"]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
