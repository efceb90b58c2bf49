//! Packets from an independent implementation: strongSwan 5.9.8's userspace
//! ESP (kernel-libipsec), tunnel mode, ESP in UDP 4500, captured with the
//! SAs it negotiated (`tests/data/strongswan-*/`, see the README there).
//! This is the only independent check of full ESP packets with
//! AES-XCBC-MAC-96 (scapy has no XCBC, tshark does not check it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::path::Path;

use ipsec_esp::udp::{UdpPayload, classify};
use ipsec_esp::{Error, Mode, Protocol, Sa, SaParams, Spi, UdpEncap};
use opensec::{AuthAlgorithm, EncAlgorithm};
use testkit::pcap::Capture;

struct SadLine {
    src: IpAddr,
    dst: IpAddr,
    spi: u32,
    enc: EncAlgorithm,
    enc_key: Vec<u8>,
    auth: AuthAlgorithm,
    auth_key: Vec<u8>,
}

fn parse_sad(text: &str) -> Vec<SadLine> {
    text.lines()
        .filter(|l| l.starts_with("add "))
        .map(|l| {
            let t: Vec<&str> = l.trim_end_matches(';').split_whitespace().collect();
            let after = |flag: &str| t.iter().position(|x| *x == flag).unwrap() + 1;
            let key = |i: usize| {
                t.get(i + 1)
                    .and_then(|k| k.strip_prefix("0x"))
                    .map(|k| hex::decode(k).unwrap())
                    .unwrap_or_default()
            };
            let e = after("-E");
            let a = after("-A");
            SadLine {
                src: t[1].parse().unwrap(),
                dst: t[2].parse().unwrap(),
                spi: u32::from_str_radix(t[4].trim_start_matches("0x"), 16).unwrap(),
                enc: EncAlgorithm::from_setkey_name(t[e]).unwrap(),
                enc_key: key(e),
                auth: AuthAlgorithm::from_setkey_name(t[a]).unwrap(),
                auth_key: key(a),
            }
        })
        .collect()
}

/// IP packets of a pcap with Ethernet (1, IPv4 frames) or raw IP (101)
/// link type.
fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let cap = Capture::read(path);
    cap.records
        .iter()
        .filter_map(|r| match cap.linktype {
            1 if r.data[12..14] == [0x08, 0x00] => Some(r.data[14..].to_vec()),
            101 => Some(r.data.clone()),
            _ => None,
        })
        .collect()
}

fn check_dir(name: &str) -> (usize, usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let sad = parse_sad(&std::fs::read_to_string(dir.join("sad.conf")).unwrap());
    let packets = read_pcap(&dir.join("esp.pcap"));
    let mut sas: Vec<(u32, Sa)> = sad
        .iter()
        .map(|l| {
            let sa = Sa::new(SaParams {
                spi: Spi(l.spi),
                protocol: Protocol::Esp,
                mode: Mode::Tunnel,
                src: l.src,
                dst: l.dst,
                enc: l.enc,
                enc_key: l.enc_key.clone(),
                auth: l.auth,
                auth_key: l.auth_key.clone(),
                replay_window: 32,
                esn: false,
                udp_encap: Some(UdpEncap {
                    sport: 4500,
                    dport: 4500,
                }),
                seq: 0,
            })
            .unwrap();
            (l.spi, sa)
        })
        .collect();
    let (mut esp, mut ike) = (0, 0);
    for p in packets {
        let hl = usize::from(p[0] & 15) * 4;
        let udp_payload = &p[hl + 8..];
        match classify(udp_payload).unwrap() {
            UdpPayload::Ike => {
                ike += 1;
                // Our decapsulator must refuse IKE behind the non-ESP marker.
                let (_, sa) = &mut sas[0];
                assert!(matches!(
                    sa.decap(&mut p.clone()),
                    Err(Error::UdpEncap { .. })
                ));
                continue;
            }
            UdpPayload::Keepalive => continue,
            UdpPayload::Esp => {}
        }
        let spi = u32::from_be_bytes(udp_payload[..4].try_into().unwrap());
        let (_, sa) = sas.iter_mut().find(|(s, _)| *s == spi).unwrap();
        // Negative control first: one flipped bit is rejected and changes nothing.
        let mut bad = p.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x80;
        assert!(
            matches!(sa.decap(&mut bad), Err(Error::IcvMismatch { .. })),
            "{name}: corrupted packet not rejected"
        );
        let mut buf = p.clone();
        let d = sa
            .decap(&mut buf)
            .unwrap_or_else(|e| panic!("{name}: SPI {spi:08x}: {e}"));
        let inner = &buf[d.range.clone()];
        // The inner packet is IPv4 between the tunnelled loopback addresses
        // (10.97.1.1 <-> 10.97.2.1) and its length is what its header says.
        assert_eq!(d.next_header, 4);
        assert_eq!(inner[0] >> 4, 4);
        assert_eq!(
            usize::from(u16::from_be_bytes([inner[2], inner[3]])),
            inner.len()
        );
        assert_eq!(&inner[12..14], &[10, 97]);
        assert_eq!(&inner[16..18], &[10, 97]);
        esp += 1;
    }
    (esp, ike)
}

#[test]
fn strongswan_packets_decapsulate() {
    for name in [
        "strongswan-aes128-aesxcbc",
        "strongswan-aes128-sha1",
        "strongswan-3des-md5",
        "strongswan-null-sha1",
        "strongswan-aes256-sha256",
    ] {
        let (esp, ike) = check_dir(name);
        println!("{name}: {esp} ESP packets decapsulated, {ike} IKE packets refused");
        assert!(esp >= 10, "{name}: only {esp} ESP packets");
    }
}
