//! Shared helpers for the flow, property and interop tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use ipsec_esp::{Mode, Protocol, Sa, SaParams, Spi, UdpEncap};
use opensec::{AuthAlgorithm, EncAlgorithm};
use std::net::IpAddr;
use testkit::packet::Ip;

pub const V4_SRC: &str = "192.0.2.1";
pub const V4_DST: &str = "192.0.2.2";
pub const V6_SRC: &str = "2001:db8::1";
pub const V6_DST: &str = "2001:db8::2";

/// Every encryption algorithm with each key length (name, alg, key len).
pub fn encs() -> Vec<(&'static str, EncAlgorithm, usize)> {
    vec![
        ("null", EncAlgorithm::Null, 0),
        ("des-cbc", EncAlgorithm::DesCbc, 8),
        ("3des-cbc", EncAlgorithm::TripleDesCbc, 24),
        ("aes-128-cbc", EncAlgorithm::AesCbc, 16),
        ("aes-192-cbc", EncAlgorithm::AesCbc, 24),
        ("aes-256-cbc", EncAlgorithm::AesCbc, 32),
    ]
}

/// Every integrity algorithm of the issue (name, alg, key len).
pub fn auths() -> Vec<(&'static str, AuthAlgorithm, usize)> {
    vec![
        ("hmac-md5-96", AuthAlgorithm::HmacMd5_96, 16),
        ("hmac-sha1-96", AuthAlgorithm::HmacSha1_96, 20),
        ("aes-xcbc-mac-96", AuthAlgorithm::AesXcbcMac96, 16),
        ("hmac-sha256-128", AuthAlgorithm::HmacSha256_128, 32),
    ]
}

/// Deterministic key material: `len` bytes derived from `seed`.
pub fn key(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 7 + 1))
        .collect()
}

/// A deterministic IV source (tests only).
pub fn counter_iv() -> impl FnMut(&mut [u8]) {
    let mut n = 0u8;
    move |iv: &mut [u8]| {
        n = n.wrapping_add(1);
        for (i, b) in iv.iter_mut().enumerate() {
            *b = n.wrapping_add(i as u8 * 13);
        }
    }
}

#[derive(Clone, Debug)]
pub struct SaSpec {
    pub protocol: Protocol,
    pub mode: Mode,
    pub v6: bool,
    pub enc: EncAlgorithm,
    pub enc_key: Vec<u8>,
    pub auth: AuthAlgorithm,
    pub auth_key: Vec<u8>,
    pub window: u32,
    pub esn: bool,
    pub udp: bool,
    pub spi: u32,
}

impl SaSpec {
    pub fn params(&self) -> SaParams {
        let (s, d) = if self.v6 {
            (V6_SRC, V6_DST)
        } else {
            (V4_SRC, V4_DST)
        };
        SaParams {
            spi: Spi(self.spi),
            protocol: self.protocol,
            mode: self.mode,
            src: s.parse::<IpAddr>().unwrap(),
            dst: d.parse::<IpAddr>().unwrap(),
            enc: self.enc,
            enc_key: self.enc_key.clone(),
            auth: self.auth,
            auth_key: self.auth_key.clone(),
            replay_window: self.window,
            esn: self.esn,
            udp_encap: self.udp.then_some(UdpEncap {
                sport: 4500,
                dport: 4500,
            }),
            seq: 0,
        }
    }
    pub fn sa(&self) -> Sa {
        Sa::new(self.params()).unwrap()
    }
}

/// An IPv4/UDP packet 5060 -> 5060 carrying `payload` (TOS 0x10,
/// identification 0x1234, DF), built by etherparse.
pub fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
    Ip::new(V4_SRC, V4_DST)
        .tos(0x10)
        .id(0x1234)
        .udp(5060, 5060, payload)
}

/// An IPv6/UDP packet 5060 -> 5060 carrying `payload` (flow label
/// 0x12345), optionally behind a Hop-by-Hop header (with a mutable option)
/// and a Destination Options header.
pub fn ipv6_udp(payload: &[u8], ext: bool) -> Vec<u8> {
    let mut ip = Ip::new(V6_SRC, V6_DST).flow_label(0x12345);
    if ext {
        // Hop-by-Hop: option 0x3e (its "may change en route" bit set, RFC
        // 8200 §4.2) with 2 data bytes, then a PadN with none (8 bytes).
        // Destination Options: a PadN with 4 data bytes (8 bytes).
        ip = ip
            .hop_by_hop(&[0x3e, 2, 0xab, 0xcd, 1, 0])
            .destination_options(&[1, 4, 0, 0, 0, 0]);
    }
    ip.udp(5060, 5060, payload)
}

/// Payload bytes of a given length.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}
