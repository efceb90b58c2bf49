//! The transaction layer against SIPp (Debian `sip-tester`), an
//! independent SIP implementation, over UDP on loopback:
//!
//! - SIPp as the client sends a MESSAGE and retransmits it (T1 = 500 ms)
//!   until a 200 arrives; our server transaction answers, the harness loses
//!   that first 200, and the retransmitted MESSAGE must get the 200 again
//!   from the transaction (RFC 3261 §17.2.2), or SIPp fails the call.
//! - SIPp as the server takes 1.8 s to answer our MESSAGE: our client
//!   transaction retransmits (Timer E) meanwhile, SIPp sees the copies as
//!   retransmissions of one request (it fails a call on an unexpected
//!   message), and its 200 completes our transaction.
//! - SIPp sends an INVITE: our INVITE server transaction answers 100 at
//!   once, the TU refuses with 488, the first 488 is lost, Timer G sends it
//!   again, and SIPp's ACK confirms the transaction.
//!
//! Needs `sipp` (scripts/test installs sip-tester); skipped without it
//! unless `CI` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gm::sip::{Builder, Message, Method};
use gm::txn::{
    Event, Reliability, RequestVerdict, ResponseVerdict, Timers, Transactions, stamp_via,
};
use testkit::{Peer, TempDir, require};

/// Gives up on a test after this long (the flows take about 2 s).
const LIMIT: Duration = Duration::from_secs(20);

fn sipp(dir: &TempDir, name: &str, scenario: &str, args: &[String]) -> Child {
    let path = dir.path(name);
    std::fs::write(&path, scenario).unwrap();
    Command::new("sipp")
        .arg("-sf")
        .arg(&path)
        .args(["-m", "1", "-l", "1", "-i", "127.0.0.1", "-nostdin"])
        .args(["-timeout", "20s", "-timeout_error", "-trace_err"])
        .args(args)
        .current_dir(dir.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A UDP port nobody holds now (bound and released).
fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for a datagram until the layer's next timer (or `cap`), firing
/// due timers; returns the datagram if one came.
fn step(
    sock: &UdpSocket,
    layer: &mut Transactions<SocketAddr>,
    start: Instant,
    buf: &mut [u8],
) -> Option<(usize, SocketAddr)> {
    let now = start.elapsed();
    let wait = layer
        .poll_timeout()
        .map(|at| at.saturating_sub(now))
        .unwrap_or(Duration::from_millis(200))
        .clamp(Duration::from_millis(1), Duration::from_millis(200));
    sock.set_read_timeout(Some(wait)).unwrap();
    let got = sock.recv_from(buf).ok();
    layer.handle_timeout(start.elapsed());
    got
}

fn finish(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: sipp failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

const UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="MESSAGE to the server transaction">
  <send retrans="500">
    <![CDATA[
MESSAGE sip:ue@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:ue@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 MESSAGE
Max-Forwards: 70
Content-Type: text/plain
Content-Length: [len]

hello from SIPp
    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#;

#[test]
fn sipp_client_gets_the_200_again_after_it_was_lost() {
    if !require(
        "sipp_client_gets_the_200_again_after_it_was_lost",
        &[Peer::Program("sipp")],
    ) {
        return;
    }
    let dir = TempDir::new("txn-sipp-uac");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ours = sock.local_addr().unwrap();
    let child = sipp(
        &dir,
        "uac.xml",
        UAC,
        &[format!("{ours}"), "-p".into(), free_port().to_string()],
    );
    let mut layer: Transactions<SocketAddr> = Transactions::new(Timers::default());
    let start = Instant::now();
    let mut buf = vec![0u8; 65536];
    let (mut created, mut absorbed, mut sent_200, mut lost) = (None, 0, 0, false);
    while start.elapsed() < LIMIT && !(sent_200 >= 2 && absorbed >= 1) {
        if let Some((n, from)) = step(&sock, &mut layer, start, &mut buf) {
            let mut req = Message::parse(&buf[..n]).unwrap();
            assert_eq!(req.method(), Some(Method::Message));
            // SIPp asked for rport: responses go to where it sent from.
            stamp_via(&mut req, from).unwrap();
            match layer
                .on_request(&req, from, Reliability::Unreliable, start.elapsed())
                .unwrap()
            {
                RequestVerdict::New(id) => {
                    assert!(created.is_none(), "one transaction for every copy");
                    created = Some(id);
                    let ok = Builder::response_to(&req, 200, None)
                        .to_tag("ue1")
                        .build()
                        .unwrap();
                    layer.respond(id, &ok, start.elapsed()).unwrap();
                }
                RequestVerdict::Absorbed(id) => {
                    assert_eq!(Some(id), created);
                    absorbed += 1;
                }
                v => panic!("{v:?}"),
            }
        }
        while let Some(t) = layer.poll_transmit() {
            let m = Message::parse(&t.bytes).unwrap();
            assert_eq!(m.status(), Some(200));
            assert_eq!(m.top_via().unwrap().received, Some(t.to.ip()));
            sent_200 += 1;
            if !lost {
                lost = true; // the network loses the first 200
                continue;
            }
            sock.send_to(&t.bytes, t.to).unwrap();
        }
    }
    assert!(created.is_some() && absorbed >= 1 && sent_200 >= 2);
    finish(child, "SIPp client");
    // The transaction absorbs further copies until Timer J.
    assert_eq!(layer.len(), 1);
}

const UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="slow answer to the client transaction">
  <recv request="MESSAGE"/>
  <pause milliseconds="1800"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
</scenario>
"#;

#[test]
fn sipp_server_sees_our_retransmissions_as_one_request() {
    if !require(
        "sipp_server_sees_our_retransmissions_as_one_request",
        &[Peer::Program("sipp")],
    ) {
        return;
    }
    let dir = TempDir::new("txn-sipp-uas");
    let port = free_port();
    let child = sipp(&dir, "uas.xml", UAS, &["-p".into(), port.to_string()]);
    let sipp_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ours = sock.local_addr().unwrap();
    let text = format!(
        "MESSAGE sip:sipp@{sipp_addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {ours};branch=z9hG4bK-txn-1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:ue@{ours}>;tag=ue1\r\n\
         To: <sip:sipp@{sipp_addr}>\r\n\
         Call-ID: txn-sipp-1@{ours}\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: 5\r\n\r\nhello"
    );
    let req = Message::parse(text.as_bytes()).unwrap();
    let mut layer: Transactions<SocketAddr> = Transactions::new(Timers::default());
    let mut buf = vec![0u8; 65536];
    // SIPp takes a moment to bind: the first copy may find no listener,
    // which Timer E covers like a loss.
    let start = Instant::now();
    let id = layer
        .start_client(&req, sipp_addr, Reliability::Unreliable, start.elapsed())
        .unwrap();
    let (mut copies, mut answered) = (0, None);
    while start.elapsed() < LIMIT && answered.is_none() {
        while let Some(t) = layer.poll_transmit() {
            copies += 1;
            let _ = sock.send_to(&t.bytes, t.to);
        }
        if let Some((n, _)) = step(&sock, &mut layer, start, &mut buf) {
            let resp = Message::parse(&buf[..n]).unwrap();
            if layer.on_response(&resp, start.elapsed()) == ResponseVerdict::ToTu(id) {
                answered = Some((resp.status(), start.elapsed()));
            }
        }
        assert_eq!(layer.poll_event(), None, "no timeout");
    }
    let (status, at) = answered.expect("SIPp answered");
    assert_eq!(status, Some(200));
    // Sent at 0, 0.5 and 1.5 s at least before the 1.8 s answer.
    assert!(copies >= 3, "{copies} copies");
    assert!(at >= Duration::from_millis(1800), "{at:?}");
    finish(child, "SIPp server");
    // Completed: the transaction ends at Timer K (T4) without sending more.
    let t4 = layer.timers().t4;
    layer.handle_timeout(at + t4);
    assert_eq!(layer.poll_transmit(), None);
    assert_eq!(layer.poll_event(), Some(Event::Terminated(id)));
}

/// The ACK of a non-2xx final response has the INVITE's branch (RFC 3261
/// §17.1.1.3): SIPp's `[branch-3]`, three messages back.
const INVITE_UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="INVITE refused with 488">
  <send retrans="500">
    <![CDATA[
INVITE sip:ue@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:ue@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="488"/>
  <send>
    <![CDATA[
ACK sip:ue@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-3];rport
From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
</scenario>
"#;

#[test]
fn sipp_invite_gets_100_then_488_retransmitted_until_its_ack() {
    if !require(
        "sipp_invite_gets_100_then_488_retransmitted_until_its_ack",
        &[Peer::Program("sipp")],
    ) {
        return;
    }
    let dir = TempDir::new("txn-sipp-invite");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ours = sock.local_addr().unwrap();
    let child = sipp(
        &dir,
        "invite.xml",
        INVITE_UAC,
        &[format!("{ours}"), "-p".into(), free_port().to_string()],
    );
    let mut layer: Transactions<SocketAddr> = Transactions::new(Timers::default());
    let start = Instant::now();
    let mut buf = vec![0u8; 65536];
    let (mut id, mut statuses, mut acked, mut lost) = (None, Vec::new(), false, false);
    while start.elapsed() < LIMIT && !acked {
        if let Some((n, from)) = step(&sock, &mut layer, start, &mut buf) {
            let mut req = Message::parse(&buf[..n]).unwrap();
            stamp_via(&mut req, from).unwrap();
            match layer
                .on_request(&req, from, Reliability::Unreliable, start.elapsed())
                .unwrap()
            {
                RequestVerdict::New(t) => {
                    assert_eq!(req.method(), Some(Method::Invite));
                    id = Some(t);
                    let refuse = Builder::response_to(&req, 488, None)
                        .to_tag("ue1")
                        .build()
                        .unwrap();
                    layer.respond(t, &refuse, start.elapsed()).unwrap();
                }
                RequestVerdict::Absorbed(t) => {
                    assert_eq!(Some(t), id);
                    if req.method() == Some(Method::Ack) {
                        acked = true;
                    }
                }
                v => panic!("{v:?}"),
            }
        }
        while let Some(t) = layer.poll_transmit() {
            let status = Message::parse(&t.bytes).unwrap().status().unwrap();
            statuses.push(status);
            if status == 488 && !lost {
                lost = true; // the first 488 is lost: Timer G sends it again
                continue;
            }
            sock.send_to(&t.bytes, t.to).unwrap();
        }
    }
    assert!(acked, "the ACK came: {statuses:?}");
    assert_eq!(statuses.first(), Some(&100));
    assert!(
        statuses.iter().filter(|&&s| s == 488).count() >= 2,
        "{statuses:?}"
    );
    assert_eq!(
        layer.state(id.unwrap()),
        Some((gm::txn::Kind::InviteServer, gm::txn::State::Confirmed))
    );
    finish(child, "SIPp INVITE client");
}
