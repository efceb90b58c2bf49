//! Our client and server transactions over a simulated UDP channel that
//! loses and duplicates any datagram (proptest): the server's TU sees the
//! request once, the client's TU gets the final response exactly once or
//! a timeout, and a few losses never cause the timeout.
//! Also: arbitrary bytes handed to the layer never panic it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use gm::sip::{Builder, Message};
use gm::txn::{Event, Reliability, RequestVerdict, ResponseVerdict, Timers, Transactions};
use proptest::prelude::*;

const REQUEST: &[u8] = b"MESSAGE sip:bob@example.org SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKlossy\r\n\
From: <sip:a@example.org>;tag=1\r\nTo: <sip:bob@example.org>\r\n\
Call-ID: lossy\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";

#[derive(Debug, Default)]
struct Outcome {
    server_new: usize,
    client_finals: usize,
    client_timeout: bool,
    responses_through: usize,
}

/// `fate[i]` for the i-th datagram put on the channel: 0 lost, 1
/// delivered, 2 delivered twice. Delivery takes 10 ms.
fn simulate(fate: &[u8], provisional: bool) -> Outcome {
    let mut client: Transactions<u8> = Transactions::new(Timers::default());
    let mut server: Transactions<u8> = Transactions::new(Timers::default());
    let req = Message::parse(REQUEST).unwrap();
    let id = client
        .start_client(&req, 1, Reliability::Unreliable, Duration::ZERO)
        .unwrap();
    let mut out = Outcome::default();
    // (arrival time, to the server?, bytes)
    let mut wire: Vec<(Duration, bool, Vec<u8>)> = Vec::new();
    let mut sent = 0usize;
    let mut now = Duration::ZERO;
    for _ in 0..10_000 {
        for (to_server, layer) in [(true, &mut client), (false, &mut server)] {
            while let Some(t) = layer.poll_transmit() {
                let f = fate.get(sent).copied().unwrap_or(1);
                sent += 1;
                for _ in 0..f {
                    wire.push((now + Duration::from_millis(10), to_server, t.bytes.clone()));
                }
            }
        }
        while let Some(e) = client.poll_event() {
            if e == Event::Timeout(id) {
                out.client_timeout = true;
            }
        }
        while server.poll_event().is_some() {}
        // The next thing to happen: a delivery or a timer.
        let next_wire = wire.iter().map(|w| w.0).min();
        let next_timer = [client.poll_timeout(), server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = [next_wire, next_timer].into_iter().flatten().min() else {
            break;
        };
        now = at;
        if let Some(i) = wire.iter().position(|w| w.0 <= now) {
            let (_, to_server, bytes) = wire.remove(i);
            let m = Message::parse(&bytes).unwrap();
            if to_server {
                if let RequestVerdict::New(sid) = server
                    .on_request(&m, 0, Reliability::Unreliable, now)
                    .unwrap()
                {
                    out.server_new += 1;
                    if provisional {
                        let trying = Builder::response_to(&m, 100, None).build().unwrap();
                        server.respond(sid, &trying, now).unwrap();
                    }
                    let ok = Builder::response_to(&m, 200, None)
                        .to_tag("s")
                        .build()
                        .unwrap();
                    server.respond(sid, &ok, now).unwrap();
                }
            } else {
                out.responses_through += 1;
                if client.on_response(&m, now) == ResponseVerdict::ToTu(id)
                    && m.status().unwrap() >= 200
                {
                    out.client_finals += 1;
                }
            }
        } else {
            client.handle_timeout(now);
            server.handle_timeout(now);
        }
    }
    assert!(client.is_empty() && server.is_empty(), "both ended");
    out
}

proptest! {
    #[test]
    fn loss_and_duplication(fate in proptest::collection::vec(0u8..3, 0..24), provisional: bool) {
        let o = simulate(&fate, provisional);
        prop_assert!(o.server_new <= 1, "{o:?}");
        prop_assert!(o.client_finals <= 1, "{o:?}");
        prop_assert!(o.client_finals == 1 || o.client_timeout, "{o:?}");
        prop_assert!(!(o.client_finals == 1 && o.client_timeout), "{o:?}");
        // A few losses cannot stop it: Timer E sends 10 copies of
        // the request before F, and each copy that arrives gets the final
        // response again.
        if fate.iter().filter(|&&f| f == 0).count() < 5 {
            prop_assert_eq!((o.server_new, o.client_finals), (1, 1), "{:?}", o);
        }
    }

    #[test]
    fn arbitrary_messages_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut layer: Transactions<u8> = Transactions::new(Timers::default());
        if let Ok(m) = Message::parse(&bytes) {
            let _ = layer.on_request(&m, 0, Reliability::Unreliable, Duration::ZERO);
            let _ = layer.on_response(&m, Duration::ZERO);
            let _ = layer.start_client(&m, 0, Reliability::Unreliable, Duration::ZERO);
            let mut m = m;
            let _ = gm::txn::stamp_via(&mut m, "192.0.2.1:5060".parse().unwrap());
        }
    }
}

#[test]
fn a_clean_channel_needs_one_copy_each_way() {
    let o = simulate(&[], false);
    assert_eq!(
        (
            o.server_new,
            o.client_finals,
            o.client_timeout,
            o.responses_through
        ),
        (1, 1, false, 1)
    );
}

#[test]
fn everything_lost_times_out() {
    let o = simulate(&[0; 64], false);
    assert_eq!(
        (o.server_new, o.client_finals, o.client_timeout),
        (0, 0, true)
    );
}
