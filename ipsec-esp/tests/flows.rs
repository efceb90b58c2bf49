//! Two SA endpoints driven in memory: every algorithm pair, ESP and AH,
//! transport and tunnel, IPv4 and IPv6, ESN and ESP in UDP.

mod common;

use common::*;
use ipsec_esp::{Error, Mode, Protocol, Sa, Spi};
use opensec::{AuthAlgorithm, EncAlgorithm};
use testkit::packet::checksum;

fn all_specs() -> Vec<SaSpec> {
    let mut v = Vec::new();
    let mut spi = 0x100;
    for v6 in [false, true] {
        for mode in [Mode::Transport, Mode::Tunnel] {
            for (_, enc, ek) in encs() {
                let mut auth_list: Vec<(AuthAlgorithm, usize)> =
                    auths().into_iter().map(|(_, a, k)| (a, k)).collect();
                if enc != EncAlgorithm::Null {
                    auth_list.push((AuthAlgorithm::Null, 0));
                }
                for (auth, ak) in auth_list {
                    for (esn, udp) in [(false, false), (true, false), (false, true)] {
                        spi += 1;
                        v.push(SaSpec {
                            protocol: Protocol::Esp,
                            mode,
                            v6,
                            enc,
                            enc_key: key(spi as u8, ek),
                            auth,
                            auth_key: key(spi as u8 ^ 0x55, ak),
                            window: 64,
                            esn,
                            udp,
                            spi,
                        });
                    }
                }
            }
            for (_, auth, ak) in auths() {
                for esn in [false, true] {
                    spi += 1;
                    v.push(SaSpec {
                        protocol: Protocol::Ah,
                        mode,
                        v6,
                        enc: EncAlgorithm::Null,
                        enc_key: vec![],
                        auth,
                        auth_key: key(spi as u8, ak),
                        window: 32,
                        esn,
                        udp: false,
                        spi,
                    });
                }
            }
        }
    }
    v
}

fn plain(spec: &SaSpec, len: usize, ext: bool) -> Vec<u8> {
    if spec.v6 {
        ipv6_udp(&payload(len), ext)
    } else {
        ipv4_udp(&payload(len))
    }
}

#[test]
fn round_trip_matrix() {
    let mut iv = counter_iv();
    for spec in all_specs() {
        let tx = spec.sa();
        let rx = spec.sa();
        for (i, len) in [0usize, 1, 13, 14, 15, 16, 200, 1400]
            .into_iter()
            .enumerate()
        {
            let pkt = plain(&spec, len, spec.v6 && i % 2 == 0);
            let mut buf = vec![0u8; pkt.len() + tx.max_overhead()];
            buf[..pkt.len()].copy_from_slice(&pkt);
            let n = tx.encap(&mut buf, pkt.len(), &mut iv).unwrap();
            assert!(n <= pkt.len() + tx.max_overhead());
            assert_eq!(tx.seq(), i as u64 + 1);
            let wire = buf[..n].to_vec();
            // The protected packet's IP length fields describe it.
            if spec.v6 {
                assert_eq!(usize::from(u16::from_be_bytes([wire[4], wire[5]])) + 40, n);
            } else {
                assert_eq!(usize::from(u16::from_be_bytes([wire[2], wire[3]])), n);
                assert_eq!(
                    checksum(&wire[..usize::from(wire[0] & 15) * 4]),
                    0,
                    "IPv4 checksum"
                );
            }
            let d = rx
                .decap(&mut buf[..n])
                .unwrap_or_else(|e| panic!("{spec:?} len {len}: {e}"));
            assert_eq!(d.seq, i as u64 + 1);
            assert_eq!(&buf[d.range.clone()], &pkt[..], "{spec:?} len {len}");
            match spec.mode {
                Mode::Tunnel => assert_eq!(d.next_header, if spec.v6 { 41 } else { 4 }),
                Mode::Transport => {}
            }
            // Replaying the same wire packet is refused, state unchanged
            // (RFC 4303 §3.4.3: only with integrity; an encryption-only SA
            // has no anti-replay service, which a forgery could poison).
            let mut again = wire.clone();
            if spec.auth == AuthAlgorithm::Null {
                assert_eq!(rx.replay_window(), 0, "{spec:?}");
                assert!(rx.decap(&mut again).is_ok());
            } else {
                assert_eq!(
                    rx.decap(&mut again),
                    Err(Error::ReplayedSequence { seq: i as u64 + 1 })
                );
            }
        }
    }
}

#[test]
fn esp_padding_and_lengths_rfc4303_2_4() {
    // AES: plaintext (payload + 2) padded to 16; NULL: to 4.
    for (enc, ek, iv_len, block) in [
        (EncAlgorithm::AesCbc, 16, 16, 16),
        (EncAlgorithm::TripleDesCbc, 24, 8, 8),
        (EncAlgorithm::Null, 0, 0, 4),
    ] {
        let spec = SaSpec {
            protocol: Protocol::Esp,
            mode: Mode::Transport,
            v6: false,
            enc,
            enc_key: key(1, ek),
            auth: AuthAlgorithm::HmacSha1_96,
            auth_key: key(2, 20),
            window: 64,
            esn: false,
            udp: false,
            spi: 7,
        };
        let sa = spec.sa();
        for len in 0..40 {
            let pkt = ipv4_udp(&payload(len));
            let mut buf = vec![0u8; pkt.len() + sa.max_overhead()];
            buf[..pkt.len()].copy_from_slice(&pkt);
            let n = sa.encap(&mut buf, pkt.len(), &mut counter_iv()).unwrap();
            let inner = 8 + len; // UDP header + data
            let padded = (inner + 2).div_ceil(block) * block;
            assert_eq!(n, 20 + 8 + iv_len + padded + 12);
            assert_eq!(buf[9], 50);
            if enc == EncAlgorithm::Null {
                // The trailer is visible: pad 1, 2, 3, ..., pad length, next header.
                let pad = padded - inner - 2;
                let t = &buf[28 + inner..28 + padded];
                let want: Vec<u8> = (1..=pad as u8).chain([pad as u8, 17]).collect();
                assert_eq!(t, &want[..]);
            }
        }
    }
}

fn esp_spec(window: u32, esn: bool) -> SaSpec {
    SaSpec {
        protocol: Protocol::Esp,
        mode: Mode::Transport,
        v6: false,
        enc: EncAlgorithm::AesCbc,
        enc_key: key(3, 16),
        auth: AuthAlgorithm::HmacSha1_96,
        auth_key: key(4, 20),
        window,
        esn,
        udp: false,
        spi: 0x1234,
    }
}

fn encap(sa: &mut Sa, pkt: &[u8]) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; pkt.len() + sa.max_overhead()];
    buf[..pkt.len()].copy_from_slice(pkt);
    let n = sa.encap(&mut buf, pkt.len(), &mut counter_iv())?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn sequence_number_never_cycles_rfc4303_3_3_3() {
    let spec = esp_spec(64, false);
    let mut p = spec.params();
    p.seq = u64::from(u32::MAX) - 1;
    let mut sa = Sa::new(p).unwrap();
    let pkt = ipv4_udp(b"x");
    encap(&mut sa, &pkt).unwrap();
    assert_eq!(sa.seq(), u64::from(u32::MAX));
    let e = encap(&mut sa, &pkt).unwrap_err();
    assert_eq!(
        e,
        Error::SequenceNumberOverflow {
            seq: u64::from(u32::MAX)
        }
    );
    assert_eq!(sa.seq(), u64::from(u32::MAX));
    // ESN: crosses 2^32; the receiver infers the high half (Appendix A2.2).
    let spec = esp_spec(64, true);
    let mut p = spec.params();
    p.seq = u64::from(u32::MAX) - 2;
    let mut tx = Sa::new(p).unwrap();
    let mut p = spec.params();
    p.seq = u64::from(u32::MAX) - 2;
    let rx = Sa::new(p).unwrap();
    let mut wires = vec![];
    for _ in 0..5 {
        wires.push(encap(&mut tx, &pkt).unwrap());
    }
    assert_eq!(tx.seq(), (1 << 32) + 2);
    // Deliver out of order across the boundary.
    for i in [1usize, 0, 4, 2, 3] {
        let d = rx.decap(&mut wires[i].clone()).unwrap();
        assert_eq!(d.seq, u64::from(u32::MAX) - 1 + i as u64);
    }
    // ESN at the very end.
    let mut p = spec.params();
    p.seq = u64::MAX;
    let mut sa = Sa::new(p).unwrap();
    assert_eq!(
        encap(&mut sa, &pkt),
        Err(Error::SequenceNumberOverflow { seq: u64::MAX })
    );
}

#[test]
fn esn_high_bits_are_in_the_icv() {
    // A receiver without ESN cannot verify an ESN sender above 2^32.
    let mut p = esp_spec(64, true).params();
    p.seq = 1 << 32;
    let mut tx = Sa::new(p).unwrap();
    let mut p = esp_spec(64, false).params();
    p.seq = 0;
    let rx = Sa::new(p).unwrap();
    let mut w = encap(&mut tx, &ipv4_udp(b"esn")).unwrap();
    assert!(matches!(rx.decap(&mut w), Err(Error::IcvMismatch { .. })));
}

#[test]
fn forged_packet_leaves_window_unchanged() {
    let spec = esp_spec(32, false);
    let mut tx = spec.sa();
    let rx = spec.sa();
    let pkt = ipv4_udp(b"hello");
    let good = encap(&mut tx, &pkt).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(rx.decap(&mut bad), Err(Error::IcvMismatch { seq: 1 }));
    assert_eq!(rx.replay_state(), (0, 32));
    rx.decap(&mut good.clone()).unwrap();
    assert_eq!(rx.replay_state(), (1, 32));
    // Too old after the window moved on.
    let mut later = vec![];
    for _ in 0..40 {
        later.push(encap(&mut tx, &pkt).unwrap());
    }
    rx.decap(&mut later[39].clone()).unwrap();
    assert!(matches!(
        rx.decap(&mut later[0].clone()),
        Err(Error::SequenceTooOld { seq: 2, .. })
    ));
    rx.decap(&mut later[38].clone()).unwrap();
}

#[test]
fn window_none_accepts_replays() {
    let spec = esp_spec(0, false);
    let mut tx = spec.sa();
    let rx = spec.sa();
    let w = encap(&mut tx, &ipv4_udp(b"a")).unwrap();
    rx.decap(&mut w.clone()).unwrap();
    rx.decap(&mut w.clone()).unwrap();
}

#[test]
fn typed_errors() {
    let spec = esp_spec(64, false);
    let mut sa = spec.sa();
    let pkt = ipv4_udp(b"abc");
    // Tailroom too small: error, no sequence number used.
    let mut buf = pkt.clone();
    assert!(matches!(
        sa.encap(&mut buf, pkt.len(), &mut counter_iv()),
        Err(Error::BufferTooSmall { .. })
    ));
    assert_eq!(sa.seq(), 0);
    // Fragments are refused in transport mode.
    let mut frag = pkt.clone();
    frag[6] = 0x20;
    assert_eq!(encap(&mut sa, &frag), Err(Error::Fragment));
    // Wrong SPI.
    let other = SaSpec {
        spi: 99,
        ..spec.clone()
    }
    .sa();
    let mut w = encap(&mut sa, &pkt).unwrap();
    assert_eq!(
        other.decap(&mut w),
        Err(Error::SpiMismatch {
            expected: Spi(99),
            found: Spi(0x1234)
        })
    );
    // Not ESP at all.
    assert_eq!(
        other.decap(&mut pkt.clone()),
        Err(Error::NotIpsec {
            expected: Protocol::Esp,
            found: 17
        })
    );
    // Garbage.
    assert!(other.decap(&mut [0x45, 0, 0]).is_err());
    assert!(other.decap(&mut []).is_err());
    // Invalid SAs.
    let mut p = spec.params();
    p.enc_key = vec![1; 5];
    let e = Sa::new(p).unwrap_err();
    assert!(matches!(e, Error::Crypto(_)), "{e}");
    assert!(e.to_string().contains("128"), "{e}");
    let mut p = spec.params();
    p.protocol = Protocol::Ah;
    assert!(matches!(Sa::new(p), Err(Error::InvalidSa { .. })));
    let mut p = spec.params();
    p.enc = EncAlgorithm::Null;
    p.enc_key = vec![];
    p.auth = AuthAlgorithm::Null;
    p.auth_key = vec![];
    assert!(matches!(Sa::new(p), Err(Error::InvalidSa { .. })));
    let mut p = spec.params();
    p.replay_window = 5000;
    assert_eq!(
        Sa::new(p).unwrap_err(),
        Error::ReplayWindowSize { size: 5000 }
    );
    // Tunnel mode: decapsulated next header must be an IP packet.
    let t = SaSpec {
        mode: Mode::Tunnel,
        ..spec.clone()
    };
    let mut tx = SaSpec {
        mode: Mode::Transport,
        ..t.clone()
    }
    .sa();
    let rx = t.sa();
    let mut w = encap(&mut tx, &pkt).unwrap();
    assert_eq!(
        rx.decap(&mut w),
        Err(Error::UnexpectedNextHeader { next_header: 17 })
    );
    assert_eq!(rx.replay_state().0, 0);
}

#[test]
fn esp_in_udp_rfc3948() {
    let spec = SaSpec {
        udp: true,
        ..esp_spec(64, false)
    };
    let mut tx = spec.sa();
    let rx = spec.sa();
    let pkt = ipv4_udp(b"natt");
    let w = encap(&mut tx, &pkt).unwrap();
    assert_eq!(w[9], 17);
    assert_eq!(&w[20..24], &[0x11, 0x94, 0x11, 0x94]);
    assert_eq!(
        usize::from(u16::from_be_bytes([w[24], w[25]])),
        w.len() - 20
    );
    assert_eq!(
        &w[26..28],
        &[0, 0],
        "IPv4: UDP checksum zero (RFC 3948 §2.1)"
    );
    assert_eq!(&w[28..32], &0x1234u32.to_be_bytes());
    // IKE behind a non-ESP marker is not ESP.
    let mut ike = w.clone();
    ike[28..32].copy_from_slice(&[0; 4]);
    assert!(matches!(rx.decap(&mut ike), Err(Error::UdpEncap { .. })));
    let mut buf = w.clone();
    let d = rx.decap(&mut buf).unwrap();
    assert_eq!(&buf[d.range], &pkt[..]);
    // IPv6: a valid UDP checksum.
    let spec6 = SaSpec { v6: true, ..spec };
    let mut tx = spec6.sa();
    let w = encap(&mut tx, &ipv6_udp(b"natt6", false)).unwrap();
    let mut pseudo = w[8..40].to_vec();
    pseudo.extend(((w.len() - 40) as u32).to_be_bytes());
    pseudo.extend([0, 0, 0, 17]);
    pseudo.extend(&w[40..]);
    assert_eq!(checksum(&pseudo), 0);
}

#[test]
fn ah_mutable_fields_may_change_in_transit() {
    for v6 in [false, true] {
        let spec = SaSpec {
            protocol: Protocol::Ah,
            mode: Mode::Transport,
            v6,
            enc: EncAlgorithm::Null,
            enc_key: vec![],
            auth: AuthAlgorithm::HmacSha256_128,
            auth_key: key(9, 32),
            window: 64,
            esn: false,
            udp: false,
            spi: 0x51,
        };
        let mut tx = spec.sa();
        let rx = spec.sa();
        let pkt = if v6 {
            ipv6_udp(b"ah", true)
        } else {
            ipv4_udp(b"ah")
        };
        let w = encap(&mut tx, &pkt).unwrap();
        let mut m = w.clone();
        if v6 {
            m[1] ^= 0xff; // traffic class / flow label
            m[3] ^= 0x55; // flow label
            m[7] = 3; // hop limit
            m[44] ^= 0xff; // data of the mutable HBH option 0x3e
            assert_eq!(w[48], 51, "AH follows HBH and Dest Opts");
        } else {
            m[1] = 0xb8; // DSCP
            m[8] = 7; // TTL
            m[6] = 0; // flags
        }
        let d = rx.decap(&mut m).unwrap();
        assert_eq!(d.next_header, 17);
        // An immutable field is covered.
        let mut m = w.clone();
        if v6 {
            m[53] ^= 1; // Dest Opts PadN data (immutable option)
            let mut m2 = w.clone();
            m2[20] ^= 1; // source address
            assert!(matches!(rx.decap(&mut m2), Err(Error::IcvMismatch { .. })));
        } else {
            m[15] ^= 1; // source address
        }
        assert!(matches!(rx.decap(&mut m), Err(Error::IcvMismatch { .. })));
    }
}

#[test]
fn ipv6_esp_after_extension_headers() {
    let spec = SaSpec {
        v6: true,
        ..esp_spec(64, false)
    };
    let mut tx = spec.sa();
    let pkt = ipv6_udp(b"ext", true);
    let w = encap(&mut tx, &pkt).unwrap();
    // HBH (8) then Dest Opts (8) stay in front; Dest Opts' next header is 50.
    assert_eq!(w[6], 0);
    assert_eq!(w[40], 60);
    assert_eq!(w[48], 50);
    assert_eq!(&w[56..60], &0x1234u32.to_be_bytes());
}

#[test]
fn headroom_form_matches_tailroom_form() {
    let mut iv1 = counter_iv();
    let mut iv2 = counter_iv();
    for spec in all_specs().into_iter().step_by(7) {
        let a = spec.sa();
        let b = spec.sa();
        let rx = spec.sa();
        let pkt = plain(&spec, 77, spec.v6);
        // Tailroom form.
        let mut t = vec![0u8; pkt.len() + a.max_overhead()];
        t[..pkt.len()].copy_from_slice(&pkt);
        let n = a.encap(&mut t, pkt.len(), &mut iv1).unwrap();
        // Headroom form: only the header moves; same bytes out.
        let head = b.headroom() + 3;
        let mut h = vec![0u8; head + pkt.len() + b.tailroom()];
        h[head..head + pkt.len()].copy_from_slice(&pkt);
        let r = b
            .encap_range(&mut h, head..head + pkt.len(), &mut iv2)
            .unwrap();
        assert_eq!(&h[r.clone()], &t[..n], "{spec:?}");
        assert!(r.end <= h.len());
        let d = rx.decap(&mut h[r.clone()]).unwrap();
        assert_eq!(&h[r.start..][d.range], &pkt[..]);
        // Not enough room either way: a typed error, sequence unused.
        let seq = b.seq();
        let mut tight = pkt.clone();
        let e = b
            .encap_range(&mut tight, 0..pkt.len(), &mut iv2)
            .unwrap_err();
        assert!(matches!(e, Error::BufferTooSmall { .. }), "{e}");
        assert_eq!(b.seq(), seq);
    }
}
