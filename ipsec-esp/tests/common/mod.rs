//! Shared helpers for the flow, property and interop tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use ipsec_esp::{Mode, Protocol, Sa, SaParams, Spi, UdpEncap};
use opensec::{AuthAlgorithm, EncAlgorithm};
use std::net::IpAddr;

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

/// Internet checksum (RFC 1071), written here independently of the crate.
pub fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An IPv4/UDP packet carrying `payload`.
pub fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![
        0x45, 0x10, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ];
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    let c = csum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend([0x13, 0xc4, 0x13, 0xc4]);
    p.extend(((8 + payload.len()) as u16).to_be_bytes());
    p.extend([0, 0]);
    p.extend(payload);
    p
}

/// An IPv6/UDP packet carrying `payload`, optionally behind a Hop-by-Hop
/// header (with a mutable option) and a Destination Options header.
pub fn ipv6_udp(payload: &[u8], ext: bool) -> Vec<u8> {
    let mut p = vec![0x60, 0x01, 0x23, 0x45, 0, 0, 17, 64];
    p.extend(
        "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    p.extend(
        "2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    if ext {
        p[6] = 0; // Hop-by-Hop
        // HBH: next = Dest Opts, len 0; option 0x3e (mutable) len 2; PadN 2 bytes? (total 8)
        p.extend([60, 0, 0x3e, 2, 0xab, 0xcd, 1, 0]);
        // Dest opts: next = UDP, len 0, PadN of 4 data bytes
        p.extend([17, 0, 1, 4, 0, 0, 0, 0]);
    }
    p.extend([0x13, 0xc4, 0x13, 0xc4]);
    p.extend(((8 + payload.len()) as u16).to_be_bytes());
    p.extend([0, 0]);
    p.extend(payload);
    let pl = (p.len() - 40) as u16;
    p[4..6].copy_from_slice(&pl.to_be_bytes());
    p
}

/// Payload bytes of a given length.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}
