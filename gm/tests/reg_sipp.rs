//! Our network side of registration against SIPp (Debian `sip-tester`)
//! as an independent AKAv1-MD5 UE, over UDP on loopback, without ESP
//! (SIPp cannot do it, so the network allows unprotected registration):
//!
//! - SIPp sends REGISTER; we answer 401 with `nonce` = base64(RAND ||
//!   AUTN) built from TS 35.208 test set 3 (K, OP, AMF; its bytes avoid
//!   the 0x5b/0x5d SIPp misreads). SIPp checks MAC-A with its own
//!   MILENAGE, answers with the digest of RES (`qop=auth`, its cnonce),
//!   we verify that digest against XRES and answer 200.
//! - The same with a wrong K in SIPp: SIPp finds MAC-A wrong and fails
//!   the call (or, if it answered anyway, we would refuse with 403); nobody
//!   gets registered.
//!
//! Our server transaction ([`gm::txn`]) carries the responses. Needs
//! `sipp` (scripts/test installs sip-tester); skipped without it unless
//! `CI` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Rng;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gm::reg::{Flow, Network, NetworkAction, NetworkConfig, OpKey, Subscriber};
use gm::sip::{Message, Method};
use gm::txn::{Reliability, RequestVerdict, Timers, Transactions, stamp_via};
use testkit::{Peer, TempDir, require};

/// Gives up on a test after this long (a registration takes well under 1 s).
const LIMIT: Duration = Duration::from_secs(20);

/// TS 35.208 §4.3.3, test set 3.
const K: &str = "fec86ba6eb707ed08905757b1bb44b8f";
const OP: &str = "dbc59adcb6f9a0ef735477b7fadf8374";
const AMF: &str = "725c";
const IMPI: &str = "alice@ims.example.org";

fn hex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn scenario(k: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="AKAv1-MD5 registration">
  <send retrans="500">
    <![CDATA[
REGISTER sip:ims.example.org SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{IMPI}>;tag=[pid]SIPpTag00[call_number]
To: <sip:{IMPI}>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
Expires: 3600
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
REGISTER sip:ims.example.org SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:{IMPI}>;tag=[pid]SIPpTag00[call_number]
To: <sip:{IMPI}>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
Expires: 3600
Max-Forwards: 70
[authentication username={IMPI} aka_K=0x{k} aka_OP=0x{OP} aka_AMF=0x{AMF}]
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#
    )
}

fn sipp(dir: &TempDir, scenario: &str, ours: SocketAddr) -> Child {
    let path = dir.path("reg.xml");
    std::fs::write(&path, scenario).unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Command::new("sipp")
        .arg(ours.to_string())
        .arg("-sf")
        .arg(&path)
        .args(["-m", "1", "-l", "1", "-i", "127.0.0.1", "-nostdin"])
        .args(["-timeout", "15s", "-timeout_error", "-trace_err"])
        .args(["-p", &port.to_string()])
        .current_dir(dir.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs our network side until SIPp exits; returns its exit success,
/// stderr and the network's events.
fn run(k_in_sipp: &str, name: &str) -> (bool, String, Vec<NetworkAction>, Vec<u16>) {
    let dir = TempDir::new(name);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ours = sock.local_addr().unwrap();
    let mut config = NetworkConfig::new("ims.example.org", ours.ip(), 5066, 5068);
    config.allow_unprotected = true;
    let mut net = Network::new(config);
    net.add_subscriber(
        IMPI,
        Subscriber {
            k: hex(K),
            op: OpKey::Op(hex(OP)),
            amf: hex(AMF),
            sqn: 0x9d02_7759_5ffc,
            impus: Vec::new(),
        },
    );
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut child = sipp(&dir, &scenario(k_in_sipp), ours);
    let mut layer: Transactions<SocketAddr> = Transactions::new(Timers::default());
    let start = Instant::now();
    let mut buf = vec![0u8; 65536];
    let mut events = Vec::new();
    let mut statuses = Vec::new();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < LIMIT, "SIPp did not finish");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let mut req = Message::parse(&buf[..n]).unwrap();
            assert_eq!(req.method(), Some(Method::Register));
            stamp_via(&mut req, from).unwrap();
            let now = start.elapsed();
            if let RequestVerdict::New(id) = layer
                .on_request(&req, from, Reliability::Unreliable, now)
                .unwrap()
            {
                for a in net.on_register(&req, from.ip(), Flow::Unprotected, now, &mut rng) {
                    match a {
                        NetworkAction::Respond(m) => {
                            statuses.push(m.status().unwrap());
                            layer.respond(id, &m, now).unwrap();
                        }
                        e => events.push(e),
                    }
                }
            }
        }
        layer.handle_timeout(start.elapsed());
        while let Some(t) = layer.poll_transmit() {
            sock.send_to(&t.bytes, t.to).unwrap();
        }
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        e.read_to_string(&mut stderr).unwrap();
    }
    (status.success(), stderr, events, statuses)
}

#[test]
fn sipp_registers_with_akav1_md5() {
    if !require("sipp_registers_with_akav1_md5", &[Peer::Program("sipp")]) {
        return;
    }
    let (ok, stderr, events, statuses) = run(K, "reg-sipp-ok");
    assert!(ok, "SIPp failed: {stderr}");
    assert_eq!(statuses, [401, 200]);
    assert!(
        matches!(events.as_slice(), [NetworkAction::Registered { impi, expires, .. }]
            if impi == IMPI && *expires == Duration::from_secs(3600)),
        "{events:?}"
    );
}

#[test]
fn sipp_with_a_wrong_k_does_not_register() {
    if !require(
        "sipp_with_a_wrong_k_does_not_register",
        &[Peer::Program("sipp")],
    ) {
        return;
    }
    // K with its first byte changed (no 0x5b/0x5d either).
    let wrong = format!("ff{}", &K[2..]);
    let (ok, stderr, events, statuses) = run(&wrong, "reg-sipp-wrong-k");
    assert!(!ok, "SIPp should have failed");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, NetworkAction::Registered { .. })),
        "{events:?}"
    );
    // SIPp refuses the MAC (and sends nothing more), or we refuse its RES.
    assert!(
        stderr.contains("MAC != eXpectedMAC") || statuses.contains(&403),
        "{statuses:?} {stderr}"
    );
    assert!(!statuses.contains(&200));
}
