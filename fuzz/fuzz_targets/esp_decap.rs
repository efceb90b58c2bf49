//! Fuzz `ipsec_esp::Sa::decap` (and `decap_esp`) with hostile packets.
//!
//! The first byte picks one of several SAs (ESP/AH, transport/tunnel,
//! IPv4/IPv6, ESN, UDP encapsulation, replay window sizes). With the low bit
//! of the second byte set, the rest is treated as a plaintext to protect
//! with a peer SA first and then mutated at a fuzzer-chosen position, so that
//! decapsulation is exercised past the ICV check too; a round trip without
//! mutation must give back the plaintext. Any panic is a bug; every crash
//! becomes a regression test in `ipsec-esp/tests/`.
#![no_main]

use ipsec_esp::{Mode, Protocol, Sa, SaParams, Spi, UdpEncap};
use opensec::{AuthAlgorithm, EncAlgorithm};

fn params(i: u8) -> SaParams {
    let v6 = i & 1 != 0;
    let (src, dst) = if v6 {
        ("2001:db8::1", "2001:db8::2")
    } else {
        ("192.0.2.1", "192.0.2.2")
    };
    let (protocol, enc, ek, auth, ak) = match (i >> 1) % 4 {
        0 => (Protocol::Esp, EncAlgorithm::AesCbc, 16, AuthAlgorithm::HmacSha1_96, 20),
        1 => (Protocol::Esp, EncAlgorithm::Null, 0, AuthAlgorithm::HmacSha256_128, 32),
        2 => (Protocol::Esp, EncAlgorithm::TripleDesCbc, 24, AuthAlgorithm::Null, 0),
        _ => (Protocol::Ah, EncAlgorithm::Null, 0, AuthAlgorithm::AesXcbcMac96, 16),
    };
    SaParams {
        spi: Spi(0x100),
        protocol,
        mode: if i & 8 != 0 { Mode::Tunnel } else { Mode::Transport },
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        enc,
        enc_key: vec![0x11; ek],
        auth,
        auth_key: vec![0x22; ak],
        replay_window: [0, 32, 64, 4096][usize::from((i >> 4) % 4)],
        esn: i & 64 != 0,
        udp_encap: (i & 128 != 0 && protocol == Protocol::Esp)
            .then_some(UdpEncap { sport: 4500, dport: 4500 }),
        seq: 0,
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [sel, mode, rest @ ..] = data else {
        return;
    };
    let Ok(mut rx) = Sa::new(params(*sel)) else {
        return;
    };
    if mode & 1 == 0 {
        let mut buf = rest.to_vec();
        let _ = rx.decap(&mut buf);
        let mut buf = rest.to_vec();
        let _ = rx.decap_esp(&mut buf);
        return;
    }
    // Structure-aware: protect a plaintext first.
    let Ok(mut tx) = Sa::new(params(*sel)) else {
        return;
    };
    let head = tx.headroom();
    let mut buf = vec![0u8; head + rest.len() + tx.tailroom()];
    buf[head..head + rest.len()].copy_from_slice(rest);
    let mut n = 0u8;
    let mut iv = |iv: &mut [u8]| {
        n = n.wrapping_add(1);
        iv.fill(n);
    };
    let Ok(range) = tx.encap_range(&mut buf, head..head + rest.len(), &mut iv) else {
        return;
    };
    let protected = buf[range].to_vec();
    let mut work = protected.clone();
    if mode & 2 != 0 && !work.is_empty() {
        let at = usize::from(mode >> 2) % work.len();
        work[at] ^= 1 << (mode & 7);
    }
    if let Ok(d) = rx.decap(&mut work) {
        assert!(d.range.end <= work.len());
        let got = &work[d.range];
        assert!(got.len() <= rest.len());
        if mode & 2 == 0 && rx.mode() == Mode::Tunnel {
            // An unmodified round trip gives back the inner packet as sent.
            assert!(rest.starts_with(got));
        }
    }
});
