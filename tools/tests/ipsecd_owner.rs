//! SPI allocation and per-client ownership through ipsecd's control
//! socket, with the typed client the IMS UA uses: each side holds an SPI
//! for its inbound SA (`getspi`), completes it with `update` once the keys
//! are known, adds its policies, all under an owner tag; traffic then flows
//! as ESP under those SPIs (tshark decrypts it with the keys); another
//! owner can neither change nor remove them; `delete-owned` removes the
//! client's SAs, policies and routing rules at once and leaves the
//! operator's; a larval SA that is never completed is released.
//!
//! Needs root, ip, nft, tshark, tcpdump and python3 (see `common`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{ADDR_A, ADDR_B, AUTH_KEY, ENC_KEY, Pair, usable};
use ipsec_esp::Protocol;
use sadb::Owner;
use testkit::tshark::EspSa;
use testkit::wait_until;
use tools::ipsecd::client::{Client, ClientError, GetSpi};

const WAIT: Duration = Duration::from_secs(20);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn clients_hold_spis_own_their_entries_and_remove_them_at_once() {
    if !usable("clients_hold_spis_own_their_entries_and_remove_them_at_once") {
        return;
    }
    let mut pair = Pair::new("owner");
    let p = pair.ports;
    // A flow of its own, on ports the seed configuration leaves free.
    let (ue_port, pcscf_port) = (p.bypass + 1, p.bypass + 3);
    let ue = Client::new(pair.socket(0));
    let pcscf = Client::new(pair.socket(1));
    let (ue_tag, pcscf_tag) = (
        Owner::new("ue-1").unwrap(),
        Owner::new("pcscf-ue-1").unwrap(),
    );
    let operator_sas = ue.dump().unwrap().matches("state=mature").count();
    assert_eq!(operator_sas, 4);

    // Each side holds the SPI of the SA it will receive on.
    let in_ue = ue
        .getspi(&GetSpi::new(ip(ADDR_B), ip(ADDR_A)), Some(&ue_tag))
        .unwrap();
    let in_pcscf = pcscf
        .getspi(&GetSpi::new(ip(ADDR_A), ip(ADDR_B)), Some(&pcscf_tag))
        .unwrap();
    assert!(in_ue.spi.0 > 255 && in_pcscf.spi.0 > 255);
    assert_eq!((in_ue.dst, in_ue.protocol), (ip(ADDR_A), Protocol::Esp));
    let dump = ue.dump().unwrap();
    assert!(dump.contains("state=larval"), "{dump}");
    assert!(dump.contains("\towner=ue-1\n"), "{dump}");
    // A larval SA carries nothing: the SPI is taken, not usable.
    let spi = in_ue.spi.0;
    let e = ue
        .apply(
            &format!("getspi {ADDR_B} {ADDR_A} esp {spi};"),
            Some(&ue_tag),
        )
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Refused(why) if why.contains("already exists")),
        "{e}"
    );

    // The keys are known: complete, add the outbound SA and the policies.
    let keys = format!("-E aes-cbc 0x{ENC_KEY} -A hmac-sha1 0x{AUTH_KEY}");
    let side = |me: &str, peer: &str, my_port: u16, peer_port: u16, in_spi: u32, out_spi: u32| {
        format!(
            "update {peer} {me} esp {in_spi} -m transport -r 8 {keys};\n\
             add {me} {peer} esp {out_spi} -m transport -u 77 {keys};\n\
             spdadd {me}/32[{my_port}] {peer}/32[{peer_port}] udp -P out ipsec esp/transport//unique:77;\n\
             spdadd {peer}/32[{peer_port}] {me}/32[{my_port}] udp -P in ipsec esp/transport//require;\n"
        )
    };
    ue.apply(
        &side(
            ADDR_A,
            ADDR_B,
            ue_port,
            pcscf_port,
            in_ue.spi.0,
            in_pcscf.spi.0,
        ),
        Some(&ue_tag),
    )
    .unwrap();
    pcscf
        .apply(
            &side(
                ADDR_B,
                ADDR_A,
                pcscf_port,
                ue_port,
                in_pcscf.spi.0,
                in_ue.spi.0,
            ),
            Some(&pcscf_tag),
        )
        .unwrap();
    let spd = ue.spddump().unwrap();
    assert_eq!(spd.matches("\towner=ue-1\n").count(), 2, "{spd}");

    // Traffic on the owned flow goes as ESP under the held SPIs.
    let (cap, pcap) = pair.capture(1, "owned.pcap");
    let _echo = pair.app_bg(
        1,
        &["udpecho", ADDR_B, &pcscf_port.to_string(), "30"],
        "echo.out",
    );
    let ok = pair.app(
        0,
        &[
            "udpcli",
            ADDR_A,
            &ue_port.to_string(),
            ADDR_B,
            &pcscf_port.to_string(),
            "3",
            "64",
        ],
    );
    assert_eq!(ok.matches("OK").count(), 3, "{ok}");
    pair.stop_capture(cap, &pcap);
    let sa = |src: &str, dst: &str, spi: u32| {
        EspSa::new(
            src,
            dst,
            spi,
            ("AES-CBC [RFC3602]", ENC_KEY),
            ("HMAC-SHA-1-96 [RFC2404]", AUTH_KEY),
        )
    };
    let sas = [
        sa(ADDR_A, ADDR_B, in_pcscf.spi.0),
        sa(ADDR_B, ADDR_A, in_ue.spi.0),
    ];
    let seen = testkit::tshark::decrypt(
        &pcap,
        &sas,
        &format!("esp && udp.port == {pcscf_port}"),
        &["esp.spi"],
    );
    let spis: std::collections::BTreeSet<u32> = seen
        .lines()
        .filter_map(|l| u32::from_str_radix(l.trim().trim_start_matches("0x"), 16).ok())
        .collect();
    assert_eq!(
        spis,
        [in_ue.spi.0, in_pcscf.spi.0].into_iter().collect(),
        "ESP SPIs tshark decrypted: {seen}"
    );

    // Another owner touches neither ue-1's entries nor the operator's;
    // nothing changes on refusal. setkey says so with status 1.
    let intruder = Owner::new("intruder").unwrap();
    let before = (ue.dump().unwrap(), ue.spddump().unwrap());
    for script in [
        format!("delete {ADDR_A} {ADDR_B} esp {};", in_pcscf.spi.0),
        format!("spddelete {ADDR_A}/32[{ue_port}] {ADDR_B}/32[{pcscf_port}] udp -P out;"),
        "delete 192.0.2.2 192.0.2.1 esp 1111;".to_string(),
        "flush;".to_string(),
    ] {
        let e = ue.apply(&script, Some(&intruder)).unwrap_err();
        assert!(
            matches!(&e, ClientError::Refused(why) if why.contains("belongs to")),
            "{script}: {e}"
        );
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_setkey"))
        .args([
            "-s",
            pair.socket(0).to_str().unwrap(),
            "--owner",
            "intruder",
            "-c",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"flush;\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Spent SA counters aside, the dumps are as they were.
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("current:") && !l.contains("diff:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&ue.dump().unwrap()), strip(&before.0));
    assert_eq!(
        ue.spddump().unwrap().lines().count(),
        before.1.lines().count()
    );

    // ue-1 goes away: its SAs, policies and routing rules at once.
    let rules = common::run_ok("ip", &["-n", &pair.ns[0], "rule"]);
    assert!(rules.contains(&format!("dport {pcscf_port}")), "{rules}");
    let removed = ue.delete_owned(&ue_tag).unwrap();
    assert_eq!((removed.sas, removed.larval, removed.policies), (2, 0, 2));
    let rules = common::run_ok("ip", &["-n", &pair.ns[0], "rule"]);
    assert!(!rules.contains(&format!("dport {pcscf_port}")), "{rules}");
    assert_eq!(
        ue.dump().unwrap().matches("state=mature").count(),
        operator_sas
    );
    assert!(!ue.dump().unwrap().contains("owner="));
    // The operator's flows still work.
    let _seed_echo = pair.app_bg(
        1,
        &["udpecho", ADDR_B, &p.ps_p.to_string(), "30"],
        "seed-echo.out",
    );
    let ok = pair.app(
        0,
        &[
            "udpcli",
            ADDR_A,
            &p.pc_u.to_string(),
            ADDR_B,
            &p.ps_p.to_string(),
            "1",
            "64",
        ],
    );
    assert_eq!(ok.matches("OK").count(), 1, "{ok}");

    // A larval SA never completed is released after its lifetime.
    let mut short = GetSpi::new(ip(ADDR_B), ip(ADDR_A));
    short.lifetime_secs = Some(1);
    let held = ue.getspi(&short, Some(&ue_tag)).unwrap();
    let needle = format!("(0x{:08x})", held.spi.0);
    assert!(ue.dump().unwrap().contains(&needle));
    wait_until("the larval SA to be released", WAIT, || {
        !ue.dump().unwrap().contains(&needle)
    });
}

#[test]
fn free_reqids_are_used_by_no_policy() {
    if !usable("free_reqids_are_used_by_no_policy") {
        return;
    }
    let pair = Pair::new("reqids");
    let client = Client::new(pair.socket(0));
    // The reqids of the `unique:N` policies the daemon holds.
    let used = |text: &str| -> Vec<u32> {
        text.split("unique:")
            .skip(1)
            .filter_map(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .collect()
    };
    let before = used(&client.spddump().unwrap());
    assert!(
        !before.is_empty(),
        "the seed configuration has unique:N policies"
    );
    let base = client.free_reqids(2).unwrap();
    assert!(
        !before.contains(&base) && !before.contains(&(base + 1)),
        "{base} among {before:?}"
    );
    // Taken by a client's policies, they are not offered again.
    let owner = Owner::new("reqids-test").unwrap();
    let p = pair.ports;
    client
        .apply(
            &format!(
                "spdadd {ADDR_A}/32[{}] {ADDR_B}/32[{}] udp -P out ipsec esp/transport//unique:{base};\n\
                 spdadd {ADDR_A}/32[{}] {ADDR_B}/32[{}] udp -P out ipsec esp/transport//unique:{};\n",
                p.bypass + 5,
                p.bypass + 7,
                p.bypass + 7,
                p.bypass + 5,
                base + 1
            ),
            Some(&owner),
        )
        .unwrap();
    let next = client.free_reqids(2).unwrap();
    let now = used(&client.spddump().unwrap());
    assert!(
        !now.contains(&next) && !now.contains(&(next + 1)),
        "{next} among {now:?}"
    );
    assert!(next > base + 1 || next + 1 < base, "{next} overlaps {base}");
    // A count out of range is refused with its reason.
    match client.free_reqids(0) {
        Err(ClientError::Refused(why)) => assert!(why.contains("count from 1 to 1024"), "{why}"),
        other => panic!("{other:?}"),
    }
    client.delete_owned(&owner).unwrap();
}
