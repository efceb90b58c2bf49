//! Our UE's reg event (RFC 3680) against SIPp (Debian `sip-tester`) as
//! the registrar and notifier, over UDP on loopback, with our
//! transactions ([`gm::txn`]); no sec-agree (SIPp cannot do ESP), a
//! registrar outside IMS that registers without a challenge:
//!
//! - SIPp answers our REGISTER 200; our UE subscribes: SIPp checks the
//!   SUBSCRIBE names `Event: reg` and `Accept: application/reginfo+xml`,
//!   accepts it, NOTIFYs the full state (our contact active), then a
//!   partial document with our contact `terminated` by `deactivated`;
//! - SIPp checks our 200 to each NOTIFY, and that our UE registers again
//!   (a REGISTER in the registration's Call-ID, CSeq above the first).
//!
//! SIPp runs one scenario per Call-ID: the REGISTERs and the SUBSCRIBE
//! are two calls of one scenario that branches on its first message.
//! Needs `sipp`; skipped without it unless `CI` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Rng;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gm::reg::{Credentials, Flow, Ue, UeAction, UeConfig};
use gm::regevent::ContactEvent;
use gm::sip::{Message, Method};
use gm::txn::{Event, Reliability, RequestVerdict, ResponseVerdict, Timers, Transactions};
use testkit::{Peer, TempDir, require};

const SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="registrar and reg event notifier">
  <recv request="REGISTER" optional="true" next="register"/>
  <recv request="SUBSCRIBE">
    <action>
      <ereg regexp="^ *reg *$" search_in="hdr" header="Event:" check_it="true" assign_to="event"/>
      <ereg regexp="application/reginfo\+xml" search_in="hdr" header="Accept:" check_it="true" assign_to="accept"/>
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" check_it="true" assign_to="contact"/>
      <ereg regexp="tag=([^;]*)" search_in="hdr" header="From:" check_it="true" assign_to="ftag,ourtag"/>
    </action>
  </recv>
  <Reference variables="event,accept,ftag"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:registrar@[local_ip]:[local_port]>
Expires: 3600
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
NOTIFY [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:alice@example.org>;tag=[pid]SIPpTag01[call_number]
To: <sip:alice@example.org>;tag=[$ourtag]
[last_Call-ID:]
CSeq: 1 NOTIFY
Event: reg
Subscription-State: active;expires=3600
Contact: <sip:registrar@[local_ip]:[local_port]>
Content-Type: application/reginfo+xml
Content-Length: [len]

<?xml version="1.0"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">
  <registration aor="sip:alice@example.org" id="a1" state="active">
    <contact id="c1" state="active" event="registered" expires="3600">
      <uri>[$contact]</uri>
    </contact>
  </registration>
</reginfo>
    ]]>
  </send>
  <recv response="200"/>
  <send retrans="500">
    <![CDATA[
NOTIFY [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:alice@example.org>;tag=[pid]SIPpTag01[call_number]
To: <sip:alice@example.org>;tag=[$ourtag]
[last_Call-ID:]
CSeq: 2 NOTIFY
Event: reg
Subscription-State: terminated;reason=deactivated
Content-Type: application/reginfo+xml
Content-Length: [len]

<?xml version="1.0"?>
<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="1" state="partial">
  <registration aor="sip:alice@example.org" id="a1" state="terminated">
    <contact id="c1" state="terminated" event="deactivated">
      <uri>[$contact]</uri>
    </contact>
  </registration>
</reginfo>
    ]]>
  </send>
  <recv response="200"/>
  <nop next="end"/>
  <label id="register"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag02[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:alice@[local_ip]:[local_port]>;expires=3600
Expires: 3600
Content-Length: 0

    ]]>
  </send>
  <recv request="REGISTER">
    <action>
      <ereg regexp="^ *[2-9] REGISTER" search_in="hdr" header="CSeq:" check_it="true" assign_to="cseq"/>
    </action>
  </recv>
  <Reference variables="cseq"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag02[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:alice@[local_ip]:[local_port]>;expires=3600
Expires: 3600
Content-Length: 0

    ]]>
  </send>
  <label id="end"/>
</scenario>
"#;

#[test]
fn sipp_deactivates_our_registration_and_we_register_again() {
    if !require(
        "sipp_deactivates_our_registration_and_we_register_again",
        &[Peer::Program("sipp")],
    ) {
        return;
    }
    let dir = TempDir::new("reg-event-sipp");
    let scenario = dir.path("registrar.xml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("sipp")
        .arg("-sf")
        .arg(&scenario)
        .args(["-m", "2", "-i", "127.0.0.1", "-nostdin"])
        .args(["-timeout", "20s", "-timeout_error", "-trace_err"])
        .args(["-p", &port.to_string()])
        .current_dir(dir.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sipp: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap();
    let mut config = UeConfig::new(
        "alice",
        "sip:alice@example.org",
        "example.org",
        me.ip(),
        sipp.ip(),
        (0, 0),
        (0, 0),
    );
    config.port = me.port();
    config.sec_agree = false;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut ue = Ue::new(config, Credentials::Password("secret".into()), &mut rng);
    let start = Instant::now();
    let now = || start.elapsed();
    let mut txns: Transactions<SocketAddr> = Transactions::new(Timers::default());
    let mut events = Vec::new();
    let mut sent = Vec::new();
    let mut pending: Vec<UeAction> = ue.register(&mut rng);
    let mut buf = vec![0u8; 65536];
    let mut server = None;
    while now() < Duration::from_secs(20)
        && events
            .iter()
            .filter(|e| matches!(e, UeAction::Registered(_)))
            .count()
            < 2
    {
        for a in pending.drain(..) {
            match a {
                UeAction::Send { request, .. } => {
                    sent.push(request.method().unwrap().as_str().to_owned());
                    txns.start_client(&request, sipp, Reliability::Unreliable, now())
                        .unwrap();
                }
                UeAction::Respond { response, .. } => {
                    txns.respond(server.take().unwrap(), &response, now())
                        .unwrap();
                }
                e => events.push(e),
            }
        }
        while let Some(t) = txns.poll_transmit() {
            let _ = sock.send_to(&t.bytes, t.to);
        }
        let wait = txns
            .poll_timeout()
            .map(|at| at.saturating_sub(now()))
            .unwrap_or(Duration::from_millis(100))
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        sock.set_read_timeout(Some(wait)).unwrap();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let m = Message::parse(&buf[..n]).unwrap().into_owned();
            if m.is_request() {
                assert_eq!(m.method(), Some(Method::Notify));
                if let RequestVerdict::New(id) = txns
                    .on_request(&m, from, Reliability::Unreliable, now())
                    .unwrap()
                {
                    server = Some(id);
                    pending = ue
                        .on_request(&m, Flow::Unprotected, now(), &mut rng)
                        .expect("a reg NOTIFY is the UE's");
                }
            } else if let ResponseVerdict::ToTu(_) = txns.on_response(&m, now()) {
                if m.status().is_some_and(|s| s >= 200) {
                    pending = ue.on_response(&m, Flow::Unprotected, now(), &mut rng);
                }
            }
        }
        txns.handle_timeout(now());
        while let Some(e) = txns.poll_event() {
            assert!(!matches!(e, Event::Timeout(_)), "a transaction timed out");
        }
    }
    // Send the last answers before SIPp's verdict.
    for _ in 0..5 {
        while let Some(t) = txns.poll_transmit() {
            let _ = sock.send_to(&t.bytes, t.to);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sipp failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            UeAction::Registered(_) => "registered".to_owned(),
            UeAction::DeregisteredByNetwork {
                event: ContactEvent::Deactivated,
                reregister_after: Some(d),
            } if d.is_zero() => "deactivated".to_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["registered", "deactivated", "registered"]);
    assert_eq!(sent[..3], ["REGISTER", "SUBSCRIBE", "REGISTER"]);
}
