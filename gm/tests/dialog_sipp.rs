//! A subscription (RFC 6665) against SIPp as the notifier, over UDP on
//! loopback, with our transactions: SIPp accepts the SUBSCRIBE with a
//! Record-Route and a Contact, notifies `active`, then checks that our
//! refreshing SUBSCRIBE is in the dialog (its To tag, CSeq 2, the Route
//! taken from the Record-Route, the Request-URI from its Contact; SIPp
//! fails the call when a `check_it` regexp does not match), and ends the
//! subscription with `terminated;reason=timeout`.
//!
//! Needs `sipp` (scripts/test installs sip-tester); skipped without it
//! unless `CI` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gm::dialog::{Phase, SubState, Subscription};
use gm::sip::{Builder, Message, Method};
use gm::txn::{Reliability, RequestVerdict, ResponseVerdict, Timers, Transactions};
use testkit::{Peer, TempDir, require};

const NOTIFIER: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="reg-event notifier">
  <recv request="SUBSCRIBE">
    <action>
      <ereg regexp="sip:[^>]*" search_in="hdr" header="Contact:" check_it="true" assign_to="contact"/>
    </action>
  </recv>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Record-Route: <sip:[local_ip]:[local_port];lr;rr=notifier>
Contact: <sip:notifier@[local_ip]:[local_port]>
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
To: <sip:alice@example.org>;tag=ue1
[last_Call-ID:]
CSeq: 1 NOTIFY
Event: reg
Subscription-State: active;expires=3600
Contact: <sip:notifier@[local_ip]:[local_port]>
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <recv request="SUBSCRIBE">
    <action>
      <ereg regexp="tag=[0-9]+SIPpTag01" search_in="hdr" header="To:" check_it="true" assign_to="totag"/>
      <ereg regexp="^ *2 SUBSCRIBE" search_in="hdr" header="CSeq:" check_it="true" assign_to="cseq"/>
      <ereg regexp="rr=notifier" search_in="hdr" header="Route:" check_it="true" assign_to="route"/>
      <ereg regexp="SUBSCRIBE sip:notifier@" search_in="msg" check_it="true" assign_to="line"/>
    </action>
  </recv>
  <Reference variables="totag,cseq,route,line"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:notifier@[local_ip]:[local_port]>
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
To: <sip:alice@example.org>;tag=ue1
[last_Call-ID:]
CSeq: 2 NOTIFY
Event: reg
Subscription-State: terminated;reason=timeout
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#;

#[test]
fn a_subscription_with_sipp_as_the_notifier() {
    if !require(
        "a_subscription_with_sipp_as_the_notifier",
        &[Peer::Program("sipp")],
    ) {
        return;
    }
    let dir = TempDir::new("dialog-sipp");
    let scenario = dir.path("notifier.xml");
    std::fs::write(&scenario, NOTIFIER).unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("sipp")
        .arg("-sf")
        .arg(&scenario)
        .args(["-m", "1", "-l", "1", "-i", "127.0.0.1", "-nostdin"])
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
    let start = Instant::now();
    let now = || start.elapsed();
    let timers = Timers::default();
    let mut txns: Transactions<SocketAddr> = Transactions::new(timers);
    let subscribe = Message::parse(
        format!(
            "SUBSCRIBE sip:alice@example.org SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK-sub-1\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:alice@example.org>;tag=ue1\r\n\
             To: <sip:alice@example.org>\r\n\
             Call-ID: dialog-sipp-1\r\n\
             CSeq: 1 SUBSCRIBE\r\n\
             Event: reg\r\n\
             Expires: 3600\r\n\
             Contact: <sip:ue@{me}>\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap()
    .into_owned();
    let mut sub = Subscription::new(&subscribe, now(), timers.t1).unwrap();
    txns.start_client(&subscribe, sipp, Reliability::Unreliable, now())
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let (mut states, mut refreshed) = (Vec::new(), false);
    while now() < Duration::from_secs(20) && sub.phase() != &Phase::Ended {
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
                match txns
                    .on_request(&m, from, Reliability::Unreliable, now())
                    .unwrap()
                {
                    RequestVerdict::New(id) => {
                        let verdict = sub.on_notify(&m, now());
                        assert_eq!(
                            verdict.status,
                            200,
                            "{:?}",
                            String::from_utf8_lossy(&buf[..n])
                        );
                        states.push(verdict.state.unwrap());
                        let ok = Builder::response_to(&m, verdict.status, None)
                            .build()
                            .unwrap();
                        txns.respond(id, &ok, now()).unwrap();
                        if !refreshed && sub.phase() == &Phase::Established {
                            refreshed = true;
                            let r = sub
                                .refresh(3600, now())
                                .unwrap()
                                .header("Via", format!("SIP/2.0/UDP {me};branch=z9hG4bK-sub-2"))
                                .header("Max-Forwards", 70)
                                .header("Contact", format!("<sip:ue@{me}>"))
                                .build()
                                .unwrap();
                            // The Request-URI is SIPp's Contact, on its port.
                            txns.start_client(&r, sipp, Reliability::Unreliable, now())
                                .unwrap();
                        }
                    }
                    RequestVerdict::Absorbed(_) => {}
                    v => panic!("{v:?}"),
                }
            } else if let ResponseVerdict::ToTu(_) = txns.on_response(&m, now()) {
                sub.on_response(&m, now()).unwrap();
            }
        }
        txns.handle_timeout(now());
    }
    assert!(refreshed);
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(matches!(states[0], SubState::Active { .. }));
    assert_eq!(
        states[1],
        SubState::Terminated {
            reason: Some("timeout".into()),
            retry_after: None
        }
    );
    let d = sub.dialog().unwrap();
    assert_eq!(d.route_set.len(), 1);
    assert!(d.remote_target.starts_with("sip:notifier@127.0.0.1:"));
    // Send the last 200 before SIPp's verdict.
    while let Some(t) = txns.poll_transmit() {
        let _ = sock.send_to(&t.bytes, t.to);
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sipp failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
