//! What the endpoint tests share: the corpora, and two endpoints of ours
//! (a UE and a P-CSCF, each with its compartment for the other) that
//! deliver and accept what they send each other.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use sigcomp::{CompartmentId, Endpoint, EndpointConfig, Link, Received, Resources, Sent};

/// Sessions 1 and 2 of the independent corpus, with their senders (1 for
/// the P-CSCF's files, 0 for the UE's).
pub fn independent() -> Vec<(usize, Vec<u8>)> {
    use testkit::corpus::{independent_dir, sip_named};
    let mut v = sip_named(&independent_dir());
    v.extend(sip_named(&independent_dir().join("session2")));
    v.into_iter()
        .map(|(n, m)| (usize::from(n.contains("pcscf")), m))
        .collect()
}

/// A file of our SIP corpus.
pub fn ours(name: &str) -> Vec<u8> {
    std::fs::read(testkit::corpus::vectors().join("sip-corpus").join(name)).unwrap()
}

/// Each side's compartment for the other.
pub const CID: [CompartmentId; 2] = [CompartmentId(1), CompartmentId(2)];

/// Endpoint configuration of the tests: peers announce; what a peer offers
/// is taken from `peer` until then.
pub fn config(dms: u32, sms: u32) -> EndpointConfig {
    let mut c = EndpointConfig::default();
    c.local.decompression_memory_size = dms;
    c.local.state_memory_size = sms;
    c.peer = Resources {
        cycles_per_bit: 16,
        decompression_memory_size: dms,
        state_memory_size: sms,
    };
    c
}

/// The UE (0) and the P-CSCF (1).
pub fn pair(config: &EndpointConfig) -> [Endpoint; 2] {
    [
        Endpoint::new(config.clone()).unwrap(),
        Endpoint::new(config.clone()).unwrap(),
    ]
}

/// Every message `bytes` complete on `link`, none accepted.
pub fn receive_all(ep: &mut Endpoint, bytes: &[u8], link: Link) -> Vec<Received> {
    let mut got = Vec::new();
    let mut next = ep.receive(bytes, link);
    while let Some(r) = next {
        got.push(r);
        if link == Link::Datagram {
            break;
        }
        next = ep.receive(&[], link);
    }
    got
}

/// End `from` sends `msg` over `link`; the other end receives it, checks
/// it byte-exact and accepts it. Returns what was sent and its wire bytes.
pub fn exchange(ends: &mut [Endpoint; 2], from: usize, msg: &[u8], link: Link) -> (Sent, Vec<u8>) {
    let mut wire = Vec::new();
    let sent = ends[from].send(CID[from], msg, link, &mut wire).unwrap();
    let to = 1 - from;
    let got = receive_all(&mut ends[to], &wire, link);
    assert_eq!(got.len(), 1, "{got:?}");
    match &got[0] {
        Received::Message(m) => assert_eq!(m.message(), Some(msg)),
        Received::Plain(p) => assert_eq!(&p[..], msg),
        other => panic!("{other:?}"),
    }
    ends[to].accept(CID[to], &got[0]);
    (sent, wire)
}
