//! `ipsec_esp::Sa::decap` (and `decap_esp`) on hostile packets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipsec_esp::{Mode, Protocol, Sa, SaParams, Spi, UdpEncap};
use opensec::{AuthAlgorithm, EncAlgorithm};

/// The SA that selector byte `i` picks: bit 0 IPv6, bits 1-2 the
/// algorithms (ESP AES-CBC/HMAC-SHA1-96, ESP NULL/HMAC-SHA-256-128, ESP
/// 3DES without integrity, AH AES-XCBC-MAC-96), bit 3 tunnel mode, bits 4-5
/// the replay window, bit 6 ESN, bit 7 ESP in UDP.
fn params(i: u8) -> SaParams {
    let v6 = i & 1 != 0;
    let (src, dst) = if v6 {
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        )
    } else {
        (
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        )
    };
    let (protocol, enc, ek, auth, ak) = match (i >> 1) % 4 {
        0 => (
            Protocol::Esp,
            EncAlgorithm::AesCbc,
            16,
            AuthAlgorithm::HmacSha1_96,
            20,
        ),
        1 => (
            Protocol::Esp,
            EncAlgorithm::Null,
            0,
            AuthAlgorithm::HmacSha256_128,
            32,
        ),
        2 => (
            Protocol::Esp,
            EncAlgorithm::TripleDesCbc,
            24,
            AuthAlgorithm::Null,
            0,
        ),
        _ => (
            Protocol::Ah,
            EncAlgorithm::Null,
            0,
            AuthAlgorithm::AesXcbcMac96,
            16,
        ),
    };
    SaParams {
        spi: Spi(0x100),
        protocol,
        mode: if i & 8 != 0 {
            Mode::Tunnel
        } else {
            Mode::Transport
        },
        src,
        dst,
        enc,
        enc_key: vec![0x11; ek],
        auth,
        auth_key: vec![0x22; ak],
        replay_window: [0, 32, 64, 4096][usize::from((i >> 4) % 4)],
        esn: i & 64 != 0,
        udp_encap: (i & 128 != 0 && protocol == Protocol::Esp).then_some(UdpEncap {
            sport: 4500,
            dport: 4500,
        }),
        seq: 0,
    }
}

/// Target `esp_decap`: `ipsec_esp::Sa::decap` and `decap_esp` with hostile
/// packets.
///
/// The first byte picks one of several SAs (ESP/AH, transport/tunnel,
/// IPv4/IPv6, ESN, UDP encapsulation, replay window sizes). With the low bit
/// of the second byte clear, the rest goes to `decap` and `decap_esp` as
/// is. With it set, the rest is a plaintext that a peer SA protects first;
/// with bit 1 set the protected packet is then mutated at a fuzzer-chosen
/// position, so that decapsulation is exercised past the ICV check too.
///
/// Invariants: no panic; a decapsulated range lies inside the buffer and is
/// no longer than the plaintext; a tunnel-mode round trip without mutation
/// gives back the start of the plaintext (the inner packet as sent).
pub fn esp_decap(data: &[u8]) {
    let [sel, mode, rest @ ..] = data else {
        return;
    };
    let Ok(rx) = Sa::new(params(*sel)) else {
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
    let Ok(tx) = Sa::new(params(*sel)) else {
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
    let mut work = buf[range].to_vec();
    if mode & 2 != 0 && !work.is_empty() {
        let at = usize::from(mode >> 2) % work.len();
        work[at] ^= 1 << (mode & 7);
    }
    if let Ok(d) = rx.decap(&mut work) {
        assert!(
            d.range.start <= d.range.end && d.range.end <= work.len(),
            "decap range {:?} outside the {}-byte buffer",
            d.range,
            work.len()
        );
        let got = &work[d.range];
        assert!(
            got.len() <= rest.len(),
            "decap gave {} bytes from a {}-byte plaintext",
            got.len(),
            rest.len()
        );
        if mode & 2 == 0 && rx.mode() == Mode::Tunnel {
            // An unmodified round trip gives back the inner packet as sent.
            assert!(
                rest.starts_with(got),
                "tunnel round trip changed the inner packet"
            );
        }
    }
}

/// What the peer SA of selector byte `sel` makes of the IP packet `plain`
/// (the structure-aware mode's protected packet, before any mutation).
pub(crate) fn protected(sel: u8, plain: &[u8]) -> Option<Vec<u8>> {
    let tx = Sa::new(params(sel)).ok()?;
    let head = tx.headroom();
    let mut buf = vec![0u8; head + plain.len() + tx.tailroom()];
    buf[head..head + plain.len()].copy_from_slice(plain);
    let mut iv = |iv: &mut [u8]| iv.fill(1);
    let range = tx
        .encap_range(&mut buf, head..head + plain.len(), &mut iv)
        .ok()?;
    buf.get(range).map(<[u8]>::to_vec)
}
