//! A UE and a P-CSCF configured by setkey scripts exchange a UDP packet
//! through ESP: SPD lookup and SA selection on one side, SAD lookup by
//! (dst, ESP, SPI) and the inbound policy check on the other, with counters.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::IpAddr;

use ipsec_esp::{Protocol, Spi};
use sadb::{Databases, Inbound, Outbound, PacketSelector, SaId, Timestamp};
use testkit::tshark::{self, EspSa};
use testkit::{Peer, packet, pcap};

const NOW: Timestamp = Timestamp(1_795_314_303);

const SAS: &str = r#"
add 192.168.0.10 192.168.0.11 esp 2222 -m transport -r 8 -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
add 192.168.0.10 192.168.0.11 esp 1111 -m transport -r 8 -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
add 192.168.0.11 192.168.0.10 esp 4444 -m transport -r 8 -u 1 -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
add 192.168.0.11 192.168.0.10 esp 3333 -m transport -r 8 -u 2 -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
"#;

const UE_POLICIES: &str = r#"
spdadd 192.168.0.11/32[5062] 192.168.0.10/32[5068] udp -P out ipsec esp/transport//unique:1;
spdadd 192.168.0.11/32[5064] 192.168.0.10/32[5066] udp -P out ipsec esp/transport//unique:2;
"#;

const PCSCF_POLICIES: &str = r#"
spdadd 192.168.0.11/32[5062] 192.168.0.10/32[5068] udp -P in ipsec esp/transport//require;
spdadd 192.168.0.11/32[5064] 192.168.0.10/32[5066] udp -P in ipsec esp/transport//require;
"#;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An IPv4/UDP packet (identification 0x1234, DF), built by etherparse.
fn udp_packet(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    packet::Ip::new(src, dst)
        .id(0x1234)
        .udp(sport, dport, payload)
}

#[test]
fn sip_request_goes_through_esp_from_ue_to_pcscf() {
    let mut ue = Databases::new();
    ue.apply_script(&format!("{SAS}{UE_POLICIES}"), NOW)
        .unwrap();
    let mut pcscf = Databases::new();
    pcscf
        .apply_script(&format!("{SAS}{PCSCF_POLICIES}"), NOW)
        .unwrap();

    let payload = b"REGISTER sip:ims.example.net SIP/2.0\r\n\r\n";
    let plain = udp_packet([192, 168, 0, 11], 5062, [192, 168, 0, 10], 5068, payload);
    let sel = PacketSelector::udp(ip("192.168.0.11"), 5062, ip("192.168.0.10"), 5068);

    // UE: policy unique:1 -> the SA with -u 1 (SPI 4444).
    let Outbound::Protect { bundle, .. } = ue.outbound(&sel, NOW) else {
        panic!("no protection")
    };
    let ids: Vec<SaId> = bundle.iter().collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].spi, Spi(4444));
    let entry = ue.sad().get(&ids[0]).unwrap();
    let mut buf = plain.clone();
    buf.resize(plain.len() + entry.sa().max_overhead(), 0);
    let mut iv_byte = 0u8;
    let mut iv = |iv: &mut [u8]| {
        for b in iv.iter_mut() {
            iv_byte = iv_byte.wrapping_add(0x3d);
            *b = iv_byte;
        }
    };
    // The transform counts the packet (with its sequence number).
    let len = entry.sa().encap(&mut buf, plain.len(), &mut iv).unwrap();
    buf.truncate(len);
    assert_eq!(buf[9], 50, "ESP follows the IPv4 header");
    let wire = buf.clone();

    // P-CSCF: SAD lookup by (dst, ESP, SPI) taken from the packet.
    let dst = IpAddr::from([buf[16], buf[17], buf[18], buf[19]]);
    let spi = Spi(u32::from_be_bytes([buf[20], buf[21], buf[22], buf[23]]));
    assert_eq!(spi, Spi(4444));
    let entry = pcscf.sad().lookup(dst, Protocol::Esp, spi).unwrap();
    let d = entry.sa().decap(&mut buf).unwrap();
    assert_eq!(d.next_header, 17);
    assert_eq!(&buf[d.range.clone()][28..], payload);
    let applied = [SaId {
        dst,
        protocol: Protocol::Esp,
        spi,
    }];
    assert!(matches!(
        pcscf.inbound_check(&sel, &applied, NOW),
        Inbound::Accept { policy: Some(_) }
    ));
    // The same packet in clear would be refused by the `require` policy.
    assert!(matches!(
        pcscf.inbound_check(&sel, &[], NOW),
        Inbound::Reject { .. }
    ));

    // A replayed copy and a tampered copy are refused and counted.
    let entry = pcscf.sad().lookup(dst, Protocol::Esp, spi).unwrap();
    let mut again = wire.clone();
    assert!(entry.sa().decap(&mut again).is_err());
    entry.record_replay_drop();
    let mut bad = wire.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(entry.sa().decap(&mut bad).is_err());
    entry.record_icv_failure();
    let c = entry.counters();
    assert_eq!((c.packets, c.replay_drops, c.icv_failures), (1, 1, 1));

    // Both dumps show the traffic: UE sent seq 1 on 4444.
    let d = ue.dump_sad(NOW);
    assert!(
        d.contains("spi=4444(0x0000115c) reqid=1(0x00000001)\n"),
        "{d}"
    );
    assert!(
        d.contains("\tseq=0x00000001 replay=8 flags=0x00000000 state=mature \n"),
        "{d}"
    );
    // Transport mode counts the IP payload (UDP header and data), as Linux.
    assert!(pcscf.dump_sad(NOW).contains(&format!(
        "\tcurrent: {}(bytes)\thard: 0(bytes)\tsoft: 0(bytes)\n\tallocated: 1\t",
        plain.len() - 20
    )));
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Independent check of what the parser handed to the transform: tshark,
/// given the keys exactly as 3gpp-notes.md writes them (ASCII strings,
/// 3DES-CBC and HMAC-MD5-96), must verify and decrypt the packets the UE
/// sends through the SAs its setkey script installed.
#[test]
fn tshark_decrypts_what_the_setkey_sas_send() {
    if !testkit::require("tshark_decrypts_what_the_setkey_sas_send", &[Peer::Tshark]) {
        return;
    }
    let mut ue = Databases::new();
    ue.apply_script(&format!("{SAS}{UE_POLICIES}"), NOW)
        .unwrap();
    let mut packets = Vec::new();
    let mut payloads = Vec::new();
    for (sport, dport) in [(5062u16, 5068u16), (5064, 5066)] {
        let payload = format!("MESSAGE from {sport} to {dport}").into_bytes();
        let plain = udp_packet([192, 168, 0, 11], sport, [192, 168, 0, 10], dport, &payload);
        let sel = PacketSelector::udp(ip("192.168.0.11"), sport, ip("192.168.0.10"), dport);
        let Outbound::Protect { bundle, .. } = ue.outbound(&sel, NOW) else {
            panic!("no protection")
        };
        let id = bundle.iter().next().unwrap();
        let e = ue.sad().get(&id).unwrap();
        let mut buf = plain.clone();
        buf.resize(plain.len() + e.sa().max_overhead(), 0);
        let mut n = 7u8;
        let mut iv = |iv: &mut [u8]| {
            for b in iv.iter_mut() {
                n = n.wrapping_mul(31).wrapping_add(1);
                *b = n;
            }
        };
        let len = e.sa().encap(&mut buf, plain.len(), &mut iv).unwrap();
        buf.truncate(len);
        packets.push(buf);
        payloads.push(payload);
    }
    // Negative control: one flipped ciphertext bit must fail the ICV.
    let mut control = packets[0].clone();
    control[40] ^= 1;
    packets.push(control);

    let dir = std::env::temp_dir().join(format!("sadb-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("ue.pcap");
    pcap::write(&pcap, pcap::LINKTYPE_RAW, &packets);
    // The keys as the seed writes them, hex-encoded for tshark.
    let enc_key = to_hex(b"123456789012123456789012");
    let auth_key = to_hex(b"1234567890123456");
    let sas = [4444u32, 3333].map(|spi| {
        EspSa::new(
            "192.168.0.11",
            "192.168.0.10",
            spi,
            ("TripleDES-CBC [RFC2451]", &enc_key),
            ("HMAC-MD5-96 [RFC2403]", &auth_key),
        )
    });
    let text = tshark::decrypt(
        &pcap,
        &sas,
        "",
        &[
            "esp.spi",
            "esp.icv_good",
            "esp.icv_bad",
            "udp.srcport",
            "udp.dstport",
            "udp.payload",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (i, (line, (sp, dp))) in lines.iter().zip([(5062, 5068), (5064, 5066)]).enumerate() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f[1], "1", "ICV good for packet {i}: {text}");
        assert_eq!(f[3], sp.to_string(), "{text}");
        assert_eq!(f[4], dp.to_string(), "{text}");
        assert_eq!(f[5].replace(':', ""), to_hex(&payloads[i]), "{text}");
    }
    let control: Vec<&str> = lines[2].split('|').collect();
    assert_eq!(
        control[2], "1",
        "tshark must flag the corrupted control packet: {text}"
    );
}
