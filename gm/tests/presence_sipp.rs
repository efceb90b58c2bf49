//! The presence agent against SIPp as the watcher, over UDP on loopback
//! with our transactions: SIPp subscribes to `presence`, our agent
//! answers 200 and NOTIFYs the current state (SIPp checks the NOTIFY is in
//! its dialog, `active`, and a PIDF body for the resource); alice then
//! publishes `open` and SIPp gets a second NOTIFY with her tuple; SIPp
//! unsubscribes in the dialog (the To tag it took from our 200) and gets
//! the final NOTIFY, `terminated;reason=timeout`. SIPp fails the call on
//! any regexp that does not match.
//!
//! Needs `sipp` (scripts/test installs sip-tester).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gm::presence::{Agent, Basic, Compositor, PIDF_TYPE, Pidf, Tuple};
use gm::sip::{Message, Method};
use gm::txn::{Reliability, RequestVerdict, Timers, Transactions};
use testkit::{Peer, TempDir, require};

const WATCHER: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="presence watcher">
  <send retrans="500">
    <![CDATA[
SUBSCRIBE sip:alice@example.org SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:bob@example.org>;tag=[pid]SIPpTag00[call_number]
To: <sip:alice@example.org>
Call-ID: [call_id]
CSeq: 1 SUBSCRIBE
Contact: <sip:bob@[local_ip]:[local_port]>
Event: presence
Accept: application/pidf+xml
Expires: 600
Content-Length: 0

    ]]>
  </send>
  <recv response="200">
    <action>
      <ereg regexp="tag=([^;>]+)" search_in="hdr" header="To:" check_it="true" assign_to="to,totag"/>
    </action>
  </recv>
  <recv request="NOTIFY">
    <action>
      <ereg regexp="^ *active" search_in="hdr" header="Subscription-State:" check_it="true" assign_to="s1"/>
      <ereg regexp="entity=.sip:alice@example.org" search_in="body" check_it="true" assign_to="b1"/>
    </action>
  </recv>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <recv request="NOTIFY">
    <action>
      <ereg regexp="<basic>open</basic>" search_in="body" check_it="true" assign_to="b2"/>
    </action>
  </recv>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
SUBSCRIBE sip:alice@example.org SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:bob@example.org>;tag=[pid]SIPpTag00[call_number]
To: <sip:alice@example.org>;tag=[$totag]
Call-ID: [call_id]
CSeq: 2 SUBSCRIBE
Contact: <sip:bob@[local_ip]:[local_port]>
Event: presence
Expires: 0
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <recv request="NOTIFY">
    <action>
      <ereg regexp="^ *terminated;reason=timeout" search_in="hdr" header="Subscription-State:" check_it="true" assign_to="s3"/>
    </action>
  </recv>
  <Reference variables="to,s1,b1,b2,s3"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
</scenario>
"#;

#[test]
fn sipp_watches_alice_through_our_presence_agent() {
    if !require(
        "sipp_watches_alice_through_our_presence_agent",
        &[Peer::Program("sipp")],
    ) {
        return;
    }
    let dir = TempDir::new("presence-sipp");
    let scenario = dir.path("watcher.xml");
    std::fs::write(&scenario, WATCHER).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("sipp")
        .arg("-sf")
        .arg(&scenario)
        .arg(me.to_string())
        .args(["-m", "1", "-l", "1", "-i", "127.0.0.1", "-nostdin"])
        .args(["-timeout", "20s", "-timeout_error", "-trace_err"])
        .args(["-p", &port.to_string()])
        .current_dir(dir.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let now = || start.elapsed();
    let mut txns: Transactions<SocketAddr> = Transactions::new(Timers::default());
    let mut pa = Agent::new(
        Compositor::new(&["sip:alice@example.org"], 3600, 60, 7200),
        &format!("sip:pa@{me}"),
        60,
        3600,
        7200,
    );
    let mut buf = vec![0u8; 65536];
    let (mut branch, mut published, mut ended, mut answered) = (0, false, false, 0);
    let mut sipp_addr = None;
    while now() < Duration::from_secs(20) && !(ended && answered == 3) {
        while let Some(t) = txns.poll_transmit() {
            let _ = sock.send_to(&t.bytes, t.to);
        }
        let wait = txns
            .poll_timeout()
            .map(|at| at.saturating_sub(now()))
            .unwrap_or(Duration::from_millis(50))
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        sock.set_read_timeout(Some(wait)).unwrap();
        let mut notifies = Vec::new();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            sipp_addr = Some(from);
            let m = Message::parse(&buf[..n]).unwrap().into_owned();
            if m.is_request() {
                assert_eq!(m.method(), Some(Method::Subscribe));
                if let RequestVerdict::New(id) = txns
                    .on_request(&m, from, Reliability::Unreliable, now())
                    .unwrap()
                {
                    let s = pa.on_subscribe(&m, "pa1", now()).unwrap();
                    assert_eq!(s.response.status(), Some(200));
                    txns.respond(id, &s.response, now()).unwrap();
                    if let Some(n) = s.notify {
                        ended |= n.terminated;
                        notifies.push(n);
                    }
                }
            } else {
                // The 200s to our NOTIFYs.
                if let gm::txn::ResponseVerdict::ToTu(_) = txns.on_response(&m, now()) {
                    assert_eq!(m.status(), Some(200));
                    answered += 1;
                }
            }
        }
        // Once the first NOTIFY is answered, alice publishes.
        if !published && answered == 1 {
            published = true;
            let doc = Pidf {
                entity: "sip:alice@example.org".into(),
                tuples: vec![Tuple::new("ue", Basic::Open)],
                notes: vec![],
            };
            let publish = Message::request(Method::Publish, "sip:alice@example.org")
                .header("Via", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKpub")
                .header("From", "<sip:alice@example.org>;tag=a")
                .header("To", "<sip:alice@example.org>")
                .header("Call-ID", "pub")
                .header("CSeq", "1 PUBLISH")
                .header("Event", "presence")
                .body(PIDF_TYPE, doc.to_xml())
                .build()
                .unwrap();
            let (reply, n) = pa.on_publish(&publish, now());
            assert_eq!(reply.status, 200);
            assert_eq!(n.len(), 1);
            notifies.extend(n);
        }
        for n in notifies {
            branch += 1;
            let req = n
                .request
                .header(
                    "Via",
                    format!("SIP/2.0/UDP {me};branch=z9hG4bK-pa-{branch}"),
                )
                .header("Max-Forwards", 70)
                .build()
                .unwrap();
            txns.start_client(&req, sipp_addr.unwrap(), Reliability::Unreliable, now())
                .unwrap();
        }
        txns.handle_timeout(now());
        while txns.poll_event().is_some() {}
    }
    assert!(
        published && ended && answered == 3,
        "published {published}, ended {ended}, {answered} NOTIFYs answered"
    );
    assert!(pa.is_empty());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sipp failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
