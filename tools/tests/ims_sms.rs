//! SMS over IP (TS 24.341) between two `imsua` through the service centre
//! folded into `pcscf`:
//!
//! - bob listens, alice sends him a text of more than 160 GSM 7-bit
//!   characters (with `é` and `€`, the second from the extension table)
//!   with `imsua sms`, everything over ESP in UDP and SigComp: alice gets
//!   an RP-ACK for each part (`sms-status` ok), bob's `sms` event has the
//!   whole text and alice's number as originator, the centre logs each
//!   part submitted and delivered.
//! - Then tshark, which nobody here wrote, decrypts the pcscf's capture
//!   with the keys it printed, decompresses the SigComp of the inner
//!   datagrams, and its SIP, GSM A RP and GSM SMS dissectors read the
//!   MESSAGE bodies: RP-DATA both ways with SMS-SUBMIT to bob's number and
//!   SMS-DELIVER from alice's, RP-ACK both ways, and the text of the parts.
//! - A text with Cyrillic goes as UCS-2 in three parts, in clear, and
//!   arrives whole.
//! - `imsua listen` runs `sms` command lines from stdin, each ended by a
//!   `done` event (a refusal too).
//! - An SMS to a number no subscriber has: the centre answers RP-ERROR
//!   cause 1, `imsua` exits 1 with one line naming the cause.
//!
//! Every child is killed when its guard drops; waits are on printed
//! lines, with a limit. The tests of this file run one at a time (two
//! shared cores), on free ports of their own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use testkit::proc::{Proc, Value, free_udp_port};
use testkit::tshark::SaEvent;
use testkit::{Peer, TempDir, require};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// TS 35.208 §4.3.3, test set 3.
const K: &str = "fec86ba6eb707ed08905757b1bb44b8f";
const OP: &str = "dbc59adcb6f9a0ef735477b7fadf8374";
const AMF: &str = "725c";

const ALICE: &str = "+15555550101";
const BOB: &str = "+15555550102";

/// 175 characters of the GSM 7-bit alphabet, 176 septets (`€` is an
/// escape and a septet of the extension table): two parts of at most 153
/// septets (TS 23.040 §9.2.3.24.1).
const TEXT: &str = "Bob, the meeting moved to room 4 at 10:30. Bring the report \
(the draft with the café photos), the budget sheet with the 5 € line fixed, \
and your laptop. Thanks! See you there.";

fn subscribers() -> String {
    let mut s = String::from("realm = \"ims.example.org\"\n");
    for (user, msisdn) in [("alice", ALICE), ("bob", BOB)] {
        s.push_str(&format!(
            "\n[[subscriber]]\nimpi = \"{user}@ims.example.org\"\n\
             impus = [\"sip:{user}@ims.example.org\"]\nk = \"{K}\"\nop = \"{OP}\"\n\
             amf = \"{AMF}\"\nsqn = \"000000000020\"\nmsisdn = \"{msisdn}\"\n"
        ));
    }
    s
}

/// A `pcscf` on a free port, up and listening; its address.
fn pcscf(dir: &TempDir, extra: &[&str]) -> (Proc, String) {
    let subs = dir.path("subscribers.toml");
    std::fs::write(&subs, subscribers()).unwrap();
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pcscf"));
    cmd.arg("--subscribers")
        .arg(&subs)
        .args(["--listen", &addr])
        .args(extra);
    let mut p = Proc::spawn("pcscf", cmd);
    let listening = p.wait_event(|e| e["event"] == "listening");
    assert_eq!(listening["sms_centre"], "sip:+15555550000@ims.example.org");
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
    ])
    .args(extra);
    cmd
}

/// The JSON event lines of `p` whose `event` is `name`, typed.
fn events<T: serde::de::DeserializeOwned>(p: &Proc, name: &str) -> Vec<T> {
    p.events()
        .into_iter()
        .filter(|e| e["event"] == name)
        .map(|e| serde_json::from_value(e).unwrap())
        .collect()
}

/// `imsua`'s `sms-status` line: the centre's answer to one part.
#[derive(Debug, serde::Deserialize)]
struct SmsStatus {
    to: String,
    part: usize,
    parts: usize,
    rp_mr: u8,
    tp_mr: Option<u8>,
    status: String,
    cause: Option<u8>,
    reason: Option<String>,
}

/// `imsua`'s `sms` line: a whole message received.
#[derive(Debug, serde::Deserialize)]
struct SmsReceived {
    from: String,
    text: String,
}

/// `pcscf`'s `sms` line: a decision of the service centre.
#[derive(Debug, serde::Deserialize)]
struct CentreSms {
    result: String,
    from: Option<String>,
    to: Option<String>,
    part: Option<u8>,
    parts: Option<u8>,
    cause: Option<u8>,
}

#[test]
fn a_long_sms_reaches_bob_over_esp_and_sigcomp_and_tshark_reads_it() {
    let _serial = serial();
    let dir = TempDir::new("ims-sms");
    let pcap = dir.path("pcscf.pcap");
    let (port_c, port_s) = (free_udp_port(), free_udp_port());
    let (mut pcscf, addr) = pcscf(
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
        ],
    );
    let ua = ["--ipsec", "udp", "--sigcomp"];
    let mut bob = Proc::spawn("bob", imsua("bob", &addr, &[&ua[..], &["listen"]].concat()));
    let registered = bob.wait_event(|e| e["event"] == "registered");
    // The msisdn is one of bob's public identities.
    assert!(
        registered["p_associated_uri"]
            .as_array()
            .unwrap()
            .contains(&Value::from(format!("<tel:{BOB}>"))),
        "{registered}"
    );
    let mut alice = Proc::spawn(
        "alice",
        imsua("alice", &addr, &[&ua[..], &["sms", BOB, TEXT]].concat()),
    );
    let (status, err) = alice.wait_exit();
    assert!(status.success(), "{}\n{err}", alice.seen.join("\n"));
    let acks: Vec<SmsStatus> = events(&alice, "sms-status");
    assert_eq!(acks.len(), 2, "{acks:?}");
    for (i, a) in acks.iter().enumerate() {
        assert_eq!(a.status, "ok", "{a:?}");
        assert_eq!((a.to.as_str(), a.part, a.parts), (BOB, i + 1, 2));
        assert_eq!((a.rp_mr, a.tp_mr, a.cause), (i as u8, Some(i as u8), None));
        assert!(a.reason.is_none());
    }
    assert_eq!(events::<Value>(&alice, "deregistered").len(), 1);

    let got = bob.wait_event(|e| e["event"] == "sms");
    let got: SmsReceived = serde_json::from_value(got).unwrap();
    assert_eq!(got.from, ALICE);
    assert_eq!(got.text, TEXT);
    let (status, _) = bob.terminate();
    assert!(status.success());
    assert_eq!(events::<SmsReceived>(&bob, "sms").len(), 1);

    pcscf.wait_line(&["\"event\": \"deregistered\"", "bob@ims.example.org"]);
    let (status, _) = pcscf.terminate();
    assert!(status.success());
    let centre: Vec<CentreSms> = events(&pcscf, "sms");
    let submitted: Vec<&CentreSms> = centre.iter().filter(|c| c.result == "submitted").collect();
    assert_eq!(submitted.len(), 2, "{centre:?}");
    for (i, s) in submitted.iter().enumerate() {
        assert_eq!(s.from.as_deref(), Some(ALICE));
        assert_eq!(s.to.as_deref(), Some(BOB));
        assert_eq!((s.part, s.parts), (Some(i as u8 + 1), Some(2)));
    }
    let delivered: Vec<&CentreSms> = centre.iter().filter(|c| c.result == "delivered").collect();
    assert_eq!(delivered.len(), 2, "{centre:?}");
    assert!(
        delivered
            .iter()
            .all(|d| d.to.as_deref() == Some("sip:bob@ims.example.org"))
    );
    assert!(!centre.iter().any(|c| c.result == "failed"), "{centre:?}");

    if !require(
        "a_long_sms_reaches_bob_over_esp_and_sigcomp_and_tshark_reads_it (capture check)",
        &[Peer::Tshark],
    ) {
        return;
    }
    // Decrypt with the keys of the pcscf's sa lines.
    let sas = SaEvent::from_lines(&pcscf.seen);
    let added: Vec<&SaEvent> = sas.iter().filter(|s| s.action == "add").collect();
    assert_eq!(added.len(), 8, "{sas:?}");
    let (run, ports) = testkit::tshark::esp_in_udp(&pcap, added.iter().map(|s| s.udp_sa()));
    let out = run.run(&["esp.icv_good", "esp.decrypted_data"]);
    let mut frames = Vec::new();
    for line in out.lines() {
        let [good, data] = line.split('|').collect::<Vec<_>>()[..] else {
            panic!("{line}")
        };
        if data.is_empty() {
            continue; // in clear: the REGISTERs and 401s
        }
        assert_eq!(good, "1", "ICV not good: {line}");
        let inner = hex::decode(data).unwrap();
        let udp = testkit::packet::transport(testkit::pcap::LINKTYPE_RAW, &inner).unwrap();
        assert!(
            udp.payload.first().is_some_and(|b| *b >= 0xf8),
            "everything over the SAs is SigComp"
        );
        frames.push(testkit::packet::udp(
            udp.src,
            udp.sport,
            udp.dst,
            udp.dport,
            udp.payload,
        ));
    }
    // tshark's UDVM decompresses each message; the SIP goes to a plain
    // capture that its SIP dissector reads, with the SMS body inside.
    let inner = dir.path("inner.pcap");
    testkit::pcap::Capture::new(testkit::pcap::LINKTYPE_RAW, frames.clone()).write(&inner);
    let mut extra = Vec::new();
    for p in &ports {
        extra.push("-d".to_owned());
        extra.push(format!("udp.port=={p},sigcomp"));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let decompressed = testkit::tshark::sigcomp_decompressed(&inner, &extra);
    assert_eq!(decompressed.len(), frames.len());
    let sip: Vec<Vec<u8>> = decompressed
        .into_iter()
        .enumerate()
        .map(|(i, d)| d.unwrap_or_else(|| panic!("tshark did not decompress frame {}", i + 1)))
        .map(|d| testkit::packet::udp([127, 0, 0, 1], 5070, [127, 0, 0, 1], 5060, &d))
        .collect();
    let plain = dir.path("sip.pcap");
    testkit::pcap::Capture::new(testkit::pcap::LINKTYPE_RAW, sip).write(&plain);
    // Each part's own text: tshark's reassembly off.
    let out = testkit::tshark::fields(&plain)
        .filter("gsm_a.rp.msg_type")
        .arg("-o")
        .arg("gsm_sms.reassemble:FALSE")
        .separator("\t")
        .arg("-E")
        .arg("occurrence=f")
        .run(&[
            "sip.Request-Line",
            "gsm_a.rp.msg_type",
            "gsm_sms.tp-mti",
            "gsm_sms.tp-da",
            "gsm_sms.tp-oa",
            "gsm_sms.sms_text",
        ]);
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    // RP-MTI (TS 24.011 §8.2.2): 0 RP-DATA ms->n, 1 RP-DATA n->ms, 2
    // RP-ACK ms->n, 3 RP-ACK n->ms.
    let of = |mti: &str| -> Vec<&Vec<&str>> { rows.iter().filter(|r| r[1] == mti).collect() };
    let (mo, mt, ack_mo, ack_mt) = (of("0x00"), of("0x01"), of("0x02"), of("0x03"));
    assert_eq!(
        (mo.len(), mt.len(), ack_mo.len(), ack_mt.len()),
        (2, 2, 2, 2),
        "{out}"
    );
    for r in &mo {
        assert!(
            r[0].starts_with("MESSAGE sip:+15555550000@ims.example.org"),
            "{r:?}"
        );
        assert_eq!((r[2], r[3]), ("1", &BOB[1..]), "SMS-SUBMIT to bob: {r:?}");
    }
    for r in &mt {
        assert!(r[0].starts_with("MESSAGE sip:bob@ims.example.org"), "{r:?}");
        assert_eq!(
            (r[2], r[4]),
            ("0", &ALICE[1..]),
            "SMS-DELIVER from alice: {r:?}"
        );
    }
    for r in &ack_mo {
        assert!(
            r[0].starts_with("MESSAGE sip:+15555550000@ims.example.org"),
            "{r:?}"
        );
    }
    for r in &ack_mt {
        assert!(
            r[0].starts_with("MESSAGE sip:alice@ims.example.org"),
            "{r:?}"
        );
    }
    // The parts' texts, as tshark decodes their septets, make the text.
    let parts: String = mo.iter().map(|r| r[5]).collect();
    assert_eq!(parts, TEXT);
    let parts: String = mt.iter().map(|r| r[5]).collect();
    assert_eq!(parts, TEXT);
}

/// A text with a character GSM 7-bit lacks goes as UCS-2, 67 units a
/// part; in clear (`--ipsec none`), to bob's `tel:` URI.
#[test]
fn a_ucs2_sms_in_three_parts_arrives_whole() {
    let _serial = serial();
    let dir = TempDir::new("ims-sms-ucs2");
    let (mut pcscf, addr) = pcscf(&dir, &["--ipsec", "none"]);
    let mut bob = Proc::spawn("bob", imsua("bob", &addr, &["--ipsec", "none", "listen"]));
    bob.wait_event(|e| e["event"] == "registered");
    let text = "Привет, Боб! Встреча перенесена. ".repeat(5);
    assert!(text.chars().count() > 2 * 67);
    let mut alice = Proc::spawn(
        "alice",
        imsua(
            "alice",
            &addr,
            &["--ipsec", "none", "sms", &format!("tel:{BOB}"), &text],
        ),
    );
    let (status, err) = alice.wait_exit();
    assert!(status.success(), "{}\n{err}", alice.seen.join("\n"));
    let acks: Vec<SmsStatus> = events(&alice, "sms-status");
    assert_eq!(acks.len(), 3, "{acks:?}");
    assert!(acks.iter().all(|a| a.status == "ok"));
    let got: SmsReceived = serde_json::from_value(bob.wait_event(|e| e["event"] == "sms")).unwrap();
    assert_eq!(
        (got.from.as_str(), got.text.as_str()),
        (ALICE, text.as_str())
    );
    assert!(bob.terminate().0.success());
    pcscf.wait_line(&["\"event\": \"deregistered\"", "bob@ims.example.org"]);
    assert!(pcscf.terminate().0.success());
    let parts: Vec<CentreSms> = events(&pcscf, "sms");
    assert!(
        parts
            .iter()
            .filter(|c| c.result == "submitted")
            .all(|c| c.parts == Some(3)),
        "{parts:?}"
    );
}

/// `imsua listen` runs `sms` command lines from stdin with the same
/// `Ua::sms`: each ends in a `done` event, a refusal too, and the UA goes
/// on until `quit`.
#[test]
fn listen_runs_sms_commands_from_stdin() {
    let _serial = serial();
    let dir = TempDir::new("ims-sms-stdin");
    let (mut pcscf, addr) = pcscf(&dir, &["--ipsec", "none"]);
    let mut bob = Proc::spawn("bob", imsua("bob", &addr, &["--ipsec", "none", "listen"]));
    bob.wait_event(|e| e["event"] == "registered");
    // Alice's stdin is a FIFO the test writes command lines to.
    let fifo = dir.path("alice.in");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let ua = imsua("alice", &addr, &["--ipsec", "none", "listen"]);
    let mut sh = Command::new("sh");
    sh.args(["-c", "exec \"$0\" \"$@\" < \"$FIFO\""])
        .arg(ua.get_program())
        .args(ua.get_args())
        .env("FIFO", &fifo);
    let mut alice = Proc::spawn("alice", sh);
    let mut input = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    alice.wait_event(|e| e["event"] == "registered");
    use std::io::Write;
    writeln!(input, "sms {BOB} hello from the command line").unwrap();
    let done = alice.wait_event(|e| e["event"] == "done");
    assert_eq!(
        (&done["command"], &done["ok"]),
        (&"sms".into(), &true.into()),
        "{done}"
    );
    let got: SmsReceived = serde_json::from_value(bob.wait_event(|e| e["event"] == "sms")).unwrap();
    assert_eq!(
        (got.from.as_str(), got.text.as_str()),
        (ALICE, "hello from the command line")
    );
    writeln!(input, "sms tel:+15555550199 anyone?").unwrap();
    let done = alice.wait_event(|e| e["event"] == "done" && e["ok"] == false);
    assert_eq!(
        done["error"],
        "SMS to +15555550199 refused: RP-ERROR cause 1 (unassigned (unallocated) number)"
    );
    writeln!(input, "quit").unwrap();
    let (status, err) = alice.wait_exit();
    assert!(status.success(), "{err}");
    assert_eq!(events::<Value>(&alice, "deregistered").len(), 1);
    assert!(bob.terminate().0.success());
    assert!(pcscf.terminate().0.success());
}

#[test]
fn an_sms_to_an_unknown_number_is_refused_with_rp_cause_1() {
    let _serial = serial();
    let dir = TempDir::new("ims-sms-unknown");
    let (mut pcscf, addr) = pcscf(&dir, &["--ipsec", "none"]);
    let mut alice = Proc::spawn(
        "alice",
        imsua(
            "alice",
            &addr,
            &[
                "--ipsec",
                "none",
                "sms",
                "tel:+15555550199",
                "anyone there?",
            ],
        ),
    );
    let (status, err) = alice.wait_exit();
    assert_eq!(status.code(), Some(1), "{}\n{err}", alice.seen.join("\n"));
    assert_eq!(
        err.trim_end(),
        "imsua: SMS to +15555550199 refused: RP-ERROR cause 1 (unassigned (unallocated) number)"
    );
    assert_eq!(err.lines().count(), 1);
    let st: Vec<SmsStatus> = events(&alice, "sms-status");
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!((st[0].status.as_str(), st[0].cause), ("error", Some(1)));
    // De-registered all the same.
    assert_eq!(events::<Value>(&alice, "deregistered").len(), 1);
    pcscf.wait_line(&["\"event\": \"deregistered\"", "alice@ims.example.org"]);
    let (status, _) = pcscf.terminate();
    assert!(status.success());
    let centre: Vec<CentreSms> = events(&pcscf, "sms");
    assert_eq!(centre.len(), 1, "{centre:?}");
    assert_eq!(centre[0].result, "failed");
    assert_eq!(centre[0].cause, Some(1));
    assert_eq!(centre[0].to.as_deref(), Some("+15555550199"));
}
