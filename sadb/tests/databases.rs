//! Flows through the SAD and SPD driven by setkey scripts.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::IpAddr;

use ipsec_esp::{Mode, Protocol, Spi};
use opensec::{AuthAlgorithm, EncAlgorithm};
use sadb::ast::{Direction, Level, ReqMode, ReqProtocol};
use sadb::dump::parse_sa_counters;
use sadb::sad::Counters;
use sadb::{
    Databases, Error, ExpireKind, Inbound, Outbound, PacketSelector, PolicyAction, SaId, SaState,
    Timestamp,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The seed's worked example, exactly the 8 lines of 3gpp-notes.md.
const GM_EXAMPLE: &str = r#"spdadd 192.168.0.10/32[5066] 192.168.0.11/32[5064] udp -P in ipsec esp/transport//require;
add 192.168.0.10 192.168.0.11 esp 2222 -m transport -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
spdadd 192.168.0.10/32[5068] 192.168.0.11/32[5062] udp -P in ipsec esp/transport//require;
add 192.168.0.10 192.168.0.11 esp 1111 -m transport -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
spdadd 192.168.0.11/32[5062] 192.168.0.10/32[5068] udp -P out ipsec esp/transport//unique:1;
add 192.168.0.11 192.168.0.10 esp 4444 -m transport -u 1 -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
spdadd 192.168.0.11/32[5064] 192.168.0.10/32[5066] udp -P out ipsec esp/transport//unique:2;
add 192.168.0.11 192.168.0.10 esp 3333 -m transport -u 2 -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
"#;

const NOW: Timestamp = Timestamp(1_795_314_303); // Nov 22 02:25:03 2026 UTC

fn gm() -> Databases {
    let mut db = Databases::new();
    let out = db.apply_script(GM_EXAMPLE, NOW).unwrap();
    assert!(out.is_empty());
    db
}

#[test]
fn gm_example_gives_four_sas_and_four_policies() {
    let db = gm();
    assert_eq!(GM_EXAMPLE.lines().count(), 8);
    assert_eq!(db.sad().len(), 4);
    assert_eq!(db.spd().len(), 4);
    let (ue, pcscf) = (ip("192.168.0.11"), ip("192.168.0.10"));
    // (src, dst, spi, reqid) per the table of 3gpp-notes.md (UE view).
    for (src, dst, spi, reqid) in [
        (pcscf, ue, 2222, 0),
        (pcscf, ue, 1111, 0),
        (ue, pcscf, 4444, 1),
        (ue, pcscf, 3333, 2),
    ] {
        let e = db.sad().lookup(dst, Protocol::Esp, Spi(spi)).unwrap();
        let sa = e.sa();
        assert_eq!(sa.src(), src);
        assert_eq!(sa.dst(), dst);
        assert_eq!(sa.mode(), Mode::Transport);
        assert_eq!(sa.enc(), EncAlgorithm::TripleDesCbc);
        assert_eq!(sa.enc_key(), b"123456789012123456789012");
        assert_eq!(sa.auth(), AuthAlgorithm::HmacMd5_96);
        assert_eq!(sa.auth_key(), b"1234567890123456");
        assert_eq!(sa.replay_window(), 0, "no -r: no replay check (setkey(8))");
        assert_eq!(e.reqid(), reqid);
        assert_eq!(e.state(), SaState::Mature);
    }
    let policies = db.spd().in_insertion_order();
    let expect = [
        (
            "192.168.0.10",
            5066,
            "192.168.0.11",
            5064,
            Direction::In,
            Level::Require,
            0,
        ),
        (
            "192.168.0.10",
            5068,
            "192.168.0.11",
            5062,
            Direction::In,
            Level::Require,
            0,
        ),
        (
            "192.168.0.11",
            5062,
            "192.168.0.10",
            5068,
            Direction::Out,
            Level::Unique(Some(1)),
            1,
        ),
        (
            "192.168.0.11",
            5064,
            "192.168.0.10",
            5066,
            Direction::Out,
            Level::Unique(Some(2)),
            2,
        ),
    ];
    for (p, (s, sp, d, dp, dir, level, reqid)) in policies.iter().zip(expect) {
        assert_eq!(p.selector.src, ip(s));
        assert_eq!(p.selector.src_prefix, 32);
        assert_eq!(p.selector.sport, Some(sp));
        assert_eq!(p.selector.dst, ip(d));
        assert_eq!(p.selector.dport, Some(dp));
        assert_eq!(p.selector.protocol, Some(17));
        assert_eq!(p.direction, dir);
        match &p.action {
            PolicyAction::Ipsec(r) => {
                assert_eq!(r.len(), 1);
                assert_eq!(r[0].protocol, ReqProtocol::Esp);
                assert_eq!(r[0].mode, ReqMode::Transport);
                assert_eq!(r[0].level, level);
                assert_eq!(r[0].reqid, reqid);
            }
            other => panic!("{other:?}"),
        }
    }
}

fn protect_spi(o: Outbound) -> u32 {
    match o {
        Outbound::Protect { bundle, .. } => {
            let v: Vec<SaId> = bundle.iter().collect();
            assert_eq!(v.len(), 1);
            v[0].spi.0
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn gm_example_outbound_lookup_follows_unique_ids() {
    let mut db = gm();
    let (ue, pcscf) = (ip("192.168.0.11"), ip("192.168.0.10"));
    let o = db.outbound(&PacketSelector::udp(ue, 5062, pcscf, 5068), NOW);
    assert_eq!(protect_spi(o), 4444);
    let o = db.outbound(&PacketSelector::udp(ue, 5064, pcscf, 5066), NOW);
    assert_eq!(protect_spi(o), 3333);
    // Other traffic matches no policy.
    assert_eq!(
        db.outbound(&PacketSelector::udp(ue, 5064, pcscf, 5068), NOW),
        Outbound::NoPolicy
    );
    assert_eq!(
        db.outbound(&PacketSelector::tcp(ue, 5062, pcscf, 5068), NOW),
        Outbound::NoPolicy
    );
    // Without the SA bound to unique:1 the packet must not go out (fail closed),
    // even though the unique:2 SA has the same addresses.
    db.apply_script("delete 192.168.0.11 192.168.0.10 esp 4444;", NOW)
        .unwrap();
    assert!(matches!(
        db.outbound(&PacketSelector::udp(ue, 5062, pcscf, 5068), NOW),
        Outbound::NoSa { request: 0, .. }
    ));
}

#[test]
fn gm_example_inbound_check() {
    let db = gm();
    let (ue, pcscf) = (ip("192.168.0.11"), ip("192.168.0.10"));
    let pkt = PacketSelector::udp(pcscf, 5068, ue, 5062);
    let via = |spi| SaId {
        dst: ue,
        protocol: Protocol::Esp,
        spi: Spi(spi),
    };
    assert!(matches!(
        db.inbound_check(&pkt, &[via(1111)], NOW),
        Inbound::Accept { policy: Some(_) }
    ));
    // Clear text where the policy requires ESP is rejected.
    assert!(matches!(
        db.inbound_check(&pkt, &[], NOW),
        Inbound::Reject { .. }
    ));
    // Unrelated traffic: no policy, accepted (as Linux/KAME).
    let other = PacketSelector::udp(pcscf, 9, ue, 9);
    assert_eq!(
        db.inbound_check(&other, &[], NOW),
        Inbound::Accept { policy: None }
    );
}

#[test]
fn gm_example_dumps_like_setkey() {
    let mut db = gm();
    db.dump_options.pid = 4242;
    let d = db.dump_sad(Timestamp(NOW.0 + 5));
    // The first SA, field by field as pfkey_sadump prints it.
    let first = "192.168.0.10 192.168.0.11 \n\
\tesp mode=transport spi=2222(0x000008ae) reqid=0(0x00000000)\n\
\tE: 3des-cbc  31323334 35363738 39303132 31323334 35363738 39303132\n\
\tA: hmac-md5  31323334 35363738 39303132 33343536\n\
\tseq=0x00000000 replay=0 flags=0x00000000 state=mature \n\
\tcreated: Nov 22 02:25:03 2026\tcurrent: Nov 22 02:25:08 2026\n\
\tdiff: 5(s)\thard: 0(s)\tsoft: 0(s)\n\
\tlast:                     \thard: 0(s)\tsoft: 0(s)\n\
\tcurrent: 0(bytes)\thard: 0(bytes)\tsoft: 0(bytes)\n\
\tallocated: 0\thard: 0\tsoft: 0\n\
\tsadb_seq=1 pid=4242 refcnt=0\n";
    assert!(d.starts_with(first), "{d}");
    assert_eq!(d.matches("\tsadb_seq=").count(), 4);
    assert!(d.ends_with("\tsadb_seq=0 pid=4242 refcnt=0\n"));
    assert!(d.contains("spi=4444(0x0000115c) reqid=1(0x00000001)"));

    let p = db.dump_spd();
    let third = "192.168.0.11[5062] 192.168.0.10[5068] udp\n\
\tout prio def ipsec\n\
\tesp/transport//unique:1\n\
\tcreated: Nov 22 02:25:03 2026  lastused:                     \n\
\tlifetime: 0(s) validtime: 0(s)\n";
    assert!(p.contains(third), "{p}");
    assert!(p.contains("\tin prio def ipsec\n\tesp/transport//require\n"));
    assert_eq!(p.matches("\trefcnt=1\n").count(), 4);

    assert_eq!(Databases::new().dump_sad(NOW), "No SAD entries.\n");
    assert_eq!(Databases::new().dump_spd(), "No SPD entries.\n");
}

#[test]
fn batches_are_all_or_nothing() {
    let mut db = gm();
    let before_sad = db.dump_sad(NOW);
    let before_spd = db.dump_spd();
    // Valid statements, then an add of an SA the batch itself added (line 4).
    let script = "delete 192.168.0.10 192.168.0.11 esp 2222;\nspdflush;\nadd 10.0.0.1 10.0.0.2 esp 0x1000 -E null -A hmac-sha1 0x0102030405060708090a0b0c0d0e0f1011121314;\n  add 10.0.0.1 10.0.0.2 esp 4096 -E null -A hmac-md5 \"1234567890123456\";";
    let e = db.apply_script(script, NOW).unwrap_err();
    assert!(matches!(e, Error::SaExists { .. }), "{e}");
    assert_eq!(e.pos().map(|p| (p.line, p.col)), Some((4, 3)));
    assert!(
        e.to_string()
            .starts_with("line 4, column 3: SA already exists"),
        "{e}"
    );
    assert_eq!(db.dump_sad(NOW), before_sad);
    assert_eq!(db.dump_spd(), before_spd);
    // A delete of an SA deleted earlier in the same batch fails too.
    let e = db
        .apply_script(
            "flush esp;\ndelete 192.168.0.10 192.168.0.11 esp 2222;",
            NOW,
        )
        .unwrap_err();
    assert!(matches!(e, Error::SaNotFound { .. }), "{e}");
    assert_eq!(e.pos().map(|p| p.line), Some(2));
    assert_eq!(db.dump_sad(NOW), before_sad);
    assert_eq!(db.dump_spd(), before_spd);

    // flush then re-add of the same SA in one batch is fine.
    db.apply_script(
        "flush; add 192.168.0.10 192.168.0.11 esp 2222 -E null -A hmac-md5 \"1234567890123456\";",
        NOW,
    )
    .unwrap();
    assert_eq!(db.sad().len(), 1);
}

#[test]
fn typed_errors_for_missing_and_duplicate_entries() {
    let mut db = gm();
    let e = db
        .apply_script("delete 10.0.0.1 10.0.0.2 esp 0x1000;", NOW)
        .unwrap_err();
    assert!(matches!(e, Error::SaNotFound { .. }), "{e}");
    // delete needs the right source too.
    let e = db
        .apply_script("delete 10.9.9.9 192.168.0.11 esp 2222;", NOW)
        .unwrap_err();
    assert!(matches!(e, Error::SaNotFound { .. }), "{e}");
    let e = db
        .apply_script("get 10.0.0.1 10.0.0.2 ah 0x1000;", NOW)
        .unwrap_err();
    assert!(matches!(e, Error::SaNotFound { .. }), "{e}");
    let e = db
        .apply_script(
            "update 10.0.0.1 10.0.0.2 esp 0x1000 -E null -A hmac-md5 \"1234567890123456\";",
            NOW,
        )
        .unwrap_err();
    assert!(matches!(e, Error::SaNotFound { .. }), "{e}");
    let e = db
        .apply_script(
            "spdadd 192.168.0.10/32[5066] 192.168.0.11/32[5064] udp -P in none;",
            NOW,
        )
        .unwrap_err();
    assert!(matches!(e, Error::PolicyExists { .. }), "{e}");
    let e = db
        .apply_script("spddelete 10.0.0.1 10.0.0.2 any -P out;", NOW)
        .unwrap_err();
    assert!(matches!(e, Error::PolicyNotFound { .. }), "{e}");
    // ESP without -E, AH with -E, ports on plain ESP.
    for s in [
        "add 10.0.0.1 10.0.0.2 esp 0x1000 -A hmac-md5 \"1234567890123456\";",
        "add 10.0.0.1 10.0.0.2 ah 0x1000 -E null;",
        "add 10.0.0.1[500] 10.0.0.2 esp 0x1000 -E null -A hmac-md5 \"1234567890123456\";",
    ] {
        let e = db.apply_script(s, NOW).unwrap_err();
        assert!(matches!(e, Error::Inconsistent { .. }), "{s}: {e}");
        assert_eq!(e.pos().map(|p| p.line), Some(1));
    }
    // The transform refuses ESP with neither encryption nor integrity.
    let e = db
        .apply_script("add 10.0.0.1 10.0.0.2 esp 0x1000 -E null;", NOW)
        .unwrap_err();
    assert!(matches!(e, Error::Transform { .. }), "{e}");
    // Pad options ESP does not implement are refused, not ignored.
    let e = db
        .apply_script("add 10.0.0.1 10.0.0.2 esp 0x1000 -f zero-pad -E null -A hmac-md5 \"1234567890123456\";", NOW)
        .unwrap_err();
    assert!(matches!(e, Error::NotSupported { .. }), "{e}");
    assert_eq!(db.sad().len(), 4);
    assert_eq!(db.spd().len(), 4);
    // spddelete and update of existing entries work.
    db.apply_script(
        "spddelete 192.168.0.10/32[5066] 192.168.0.11/32[5064] udp -P in;\n\
         update 192.168.0.10 192.168.0.11 esp 2222 -lh 60 -E aes-cbc 0x000102030405060708090a0b0c0d0e0f -A hmac-sha1 0x0102030405060708090a0b0c0d0e0f1011121314;",
        NOW,
    )
    .unwrap();
    assert_eq!(db.spd().len(), 3);
    let e = db
        .sad()
        .lookup(ip("192.168.0.11"), Protocol::Esp, Spi(2222))
        .unwrap();
    assert_eq!(e.sa().enc(), EncAlgorithm::AesCbc);
    assert_eq!(e.meta().lifetimes.hard.secs, 60);
}

#[test]
fn replay_window_is_given_in_bytes() {
    let mut db = Databases::new();
    db.apply_script(
        "add 10.0.0.1 10.0.0.2 esp 0x1000 -r 4 -E null -A hmac-md5 \"1234567890123456\";",
        NOW,
    )
    .unwrap();
    let e = db
        .sad()
        .lookup(ip("10.0.0.2"), Protocol::Esp, Spi(0x1000))
        .unwrap();
    assert_eq!(e.sa().replay_window(), 32);
    assert!(db.dump_sad(NOW).contains(" replay=4 "));
}

#[test]
fn lifetimes_soft_then_hard() {
    let mut db = Databases::new();
    db.apply_script(
        "add 10.0.0.1 10.0.0.2 esp 0x1000 -ls 10 -lh 20 -E null -A hmac-md5 \"1234567890123456\";\n\
         add 10.0.0.1 10.0.0.2 esp 0x1001 -bs 100 -bh 200 -u 9 -E null -A hmac-md5 \"1234567890123456\";",
        NOW,
    )
    .unwrap();
    let t = |s: u64| Timestamp(NOW.0 + s);
    assert!(db.expire(t(9)).is_empty());
    let ev = db.expire(t(10));
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].id.spi, ev[0].kind), (Spi(0x1000), ExpireKind::Soft));
    assert!(db.expire(t(11)).is_empty(), "soft is reported once");
    assert!(db.dump_sad(t(11)).contains("state=dying"));

    let id = SaId {
        dst: ip("10.0.0.2"),
        protocol: Protocol::Esp,
        spi: Spi(0x1001),
    };
    let e = db.sad().get(&id).unwrap();
    assert_eq!(e.record_packet(99, t(1)), SaState::Mature);
    assert_eq!(e.record_packet(1, t(2)), SaState::Dying);
    let ev = db.expire(t(12));
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].id, ev[0].kind, ev[0].reqid),
        (id, ExpireKind::Soft, 9)
    );
    let e = db.sad().get(&id).unwrap();
    assert_eq!(e.record_packet(100, t(3)), SaState::Dead);
    assert_eq!(e.counters().packets, 3);
    assert_eq!(e.counters().bytes, 200);
    assert_eq!(e.first_used(), Some(t(1)));
    let mut ev = db.expire(t(20));
    ev.sort_by_key(|e| e.id.spi);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| e.kind == ExpireKind::Hard));
    assert!(db.sad().is_empty());
}

#[test]
fn counters_show_in_the_dump() {
    let mut db = gm();
    db.dump_options.stats = true;
    let id = SaId {
        dst: ip("192.168.0.10"),
        protocol: Protocol::Esp,
        spi: Spi(4444),
    };
    let e = db.sad().get(&id).unwrap();
    e.record_packet(120, Timestamp(NOW.0 + 1));
    e.record_packet(80, Timestamp(NOW.0 + 2));
    e.record_replay_drop();
    e.record_icv_failure();
    e.record_icv_failure();
    let d = db.dump_sad(NOW);
    assert!(
        d.contains("\tlast: Nov 22 02:25:04 2026\thard: 0(s)\tsoft: 0(s)\n"),
        "{d}"
    );
    assert!(d.contains("\tcurrent: 200(bytes)\thard: 0(bytes)\tsoft: 0(bytes)\n\tallocated: 2\t"));
    assert!(d.contains("\tstats: packets=2 bytes=200 replay-drops=1 icv-failures=2\n"));
    // Read back from the text, as a control-socket client does: every SA,
    // with the counters the SAD holds.
    let mut want: Vec<(u32, Counters)> = db
        .sad()
        .iter()
        .map(|e| (e.sa().spi().0, e.counters()))
        .collect();
    let mut got = parse_sa_counters(&d).unwrap();
    got.sort_by_key(|(spi, _)| *spi);
    want.sort_by_key(|(spi, _)| *spi);
    assert_eq!(got, want);
    assert_eq!(got.len(), 4);
    // setkey's own layout (no stats line): packets and bytes only.
    db.dump_options.stats = false;
    let plain = parse_sa_counters(&db.dump_sad(NOW)).unwrap();
    let c = plain.iter().find(|(spi, _)| *spi == 4444).unwrap().1;
    assert_eq!(
        (c.packets, c.bytes, c.replay_drops, c.icv_failures),
        (2, 200, 0, 0)
    );
    assert_eq!(parse_sa_counters("No SAD entries.\n").unwrap(), vec![]);
    // A dump cut short is an error, not zeros.
    let cut = d.find("\tcurrent: 200").unwrap();
    assert!(parse_sa_counters(&d[..cut]).is_err());
    assert!(parse_sa_counters("\tesp mode=transport\n").is_err());
}

#[test]
fn selection_prefers_mature_then_newest_and_skips_dead() {
    let mut db = Databases::new();
    db.apply_script(
        "spdadd 10.0.0.1 10.0.0.2 any -P out ipsec esp/transport//require ah/transport//use;\n\
         add 10.0.0.1 10.0.0.2 esp 0x1000 -bs 10 -E null -A hmac-md5 \"1234567890123456\";\n\
         add 10.0.0.1 10.0.0.2 esp 0x1001 -bh 10 -E null -A hmac-md5 \"1234567890123456\";",
        NOW,
    )
    .unwrap();
    let pkt = PacketSelector::tcp(ip("10.0.0.1"), 1, ip("10.0.0.2"), 2);
    // Newest first; the AH request is `use` and has no SA: skipped.
    assert_eq!(protect_spi(db.outbound(&pkt, NOW)), 0x1001);
    let dead = SaId {
        dst: ip("10.0.0.2"),
        protocol: Protocol::Esp,
        spi: Spi(0x1001),
    };
    db.sad().get(&dead).unwrap().record_packet(10, NOW);
    assert_eq!(protect_spi(db.outbound(&pkt, NOW)), 0x1000);
    // With an AH SA the bundle has both, ESP (inner) first.
    db.apply_script(
        "add 10.0.0.1 10.0.0.2 ah 0x2000 -A hmac-sha1 0x0102030405060708090a0b0c0d0e0f1011121314;",
        NOW,
    )
    .unwrap();
    match db.outbound(&pkt, NOW) {
        Outbound::Protect { bundle, .. } => {
            let v: Vec<u32> = bundle.iter().map(|s| s.spi.0).collect();
            assert_eq!(v, vec![0x1000, 0x2000]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn discard_bypass_and_priority() {
    let mut db = Databases::new();
    db.apply_script(
        "spdadd 0.0.0.0/0 0.0.0.0/0 any -P out discard;\n\
         spdadd 10.0.0.0/8[any] 10.0.0.0/8[53] udp -P out prio high none;",
        NOW,
    )
    .unwrap();
    let dns = PacketSelector::udp(ip("10.1.1.1"), 4000, ip("10.2.2.2"), 53);
    assert!(matches!(db.outbound(&dns, NOW), Outbound::Bypass { .. }));
    let web = PacketSelector::tcp(ip("10.1.1.1"), 4000, ip("10.2.2.2"), 80);
    assert!(matches!(db.outbound(&web, NOW), Outbound::Discard { .. }));
    let p = db.dump_spd();
    assert!(
        p.contains("10.0.0.0/8[any] 10.0.0.0/8[53] udp\n\tout prio high none\n"),
        "{p}"
    );
    assert!(
        p.contains("0.0.0.0/0[any] 0.0.0.0/0[any] any\n\tout prio def discard\n"),
        "{p}"
    );
}

#[test]
fn unique_without_number_gets_a_generated_reqid() {
    let mut db = Databases::new();
    db.apply_script(
        "spdadd 10.0.0.1 10.0.0.2 any -P out ipsec esp/transport//unique;",
        NOW,
    )
    .unwrap();
    let p = db.dump_spd();
    assert!(p.contains("\tesp/transport//unique#16384\n"), "{p}");
}

#[test]
fn a_hundred_thousand_sas() {
    let mut db = Databases::new();
    db = db.with_sad(sadb::Sad::synthetic(100_000, NOW).unwrap());
    assert_eq!(db.sad().len(), 100_000);
    // 99_999 = 0x01869f: 10.1.134.159.
    let e = db
        .sad()
        .lookup(
            IpAddr::from([10, 1, 134, 159]),
            Protocol::Esp,
            Spi(0x1000 + 99_999),
        )
        .unwrap();
    assert_eq!(e.sa().spi(), Spi(0x1000 + 99_999));
    assert!(
        db.sad()
            .lookup(
                IpAddr::from([10, 1, 134, 159]),
                Protocol::Ah,
                Spi(0x1000 + 99_999)
            )
            .is_none()
    );
    // Outbound selection uses the (src, dst, proto) index, not a scan.
    db.apply_script(
        "spdadd 192.0.2.1 10.0.0.0/8 any -P out ipsec esp/transport//require;",
        NOW,
    )
    .unwrap();
    let pkt = PacketSelector::udp(ip("192.0.2.1"), 1, ip("10.1.134.159"), 2);
    assert_eq!(protect_spi(db.outbound(&pkt, NOW)), 0x1000 + 99_999);
}

#[test]
fn get_dump_deleteall_spdupdate() {
    let mut db = gm();
    let out = db
        .apply_script(
            "get 192.168.0.10 192.168.0.11 esp 2222;\ndump ah;\n  dump esp;\nspddump;",
            NOW,
        )
        .unwrap();
    assert_eq!(out.len(), 4);
    assert!(
        out[0]
            .text
            .starts_with("192.168.0.10 192.168.0.11 \n\tesp mode=transport spi=2222(")
    );
    assert_eq!(out[1].text, "No SAD entries.\n");
    assert_eq!((out[2].pos.line, out[2].pos.col), (3, 3));
    assert_eq!(out[2].text.matches("\tsadb_seq=").count(), 4);
    assert_eq!(out[3].text.matches("\trefcnt=1").count(), 4);
    // deleteall removes the two SAs from the P-CSCF to the UE only.
    db.apply_script("deleteall 192.168.0.10 192.168.0.11 esp;", NOW)
        .unwrap();
    assert_eq!(db.sad().len(), 2);
    assert!(
        db.sad()
            .lookup(ip("192.168.0.11"), Protocol::Esp, Spi(2222))
            .is_none()
    );
    // spdupdate replaces the action of an existing policy.
    db.apply_script(
        "spdupdate 192.168.0.11/32[5062] 192.168.0.10/32[5068] udp -P out discard;",
        NOW,
    )
    .unwrap();
    assert_eq!(db.spd().len(), 4);
    let pkt = PacketSelector::udp(ip("192.168.0.11"), 5062, ip("192.168.0.10"), 5068);
    assert!(matches!(db.outbound(&pkt, NOW), Outbound::Discard { .. }));
    db.apply_script("spdflush; flush;", NOW).unwrap();
    assert!(db.spd().is_empty() && db.sad().is_empty());
}

#[test]
fn rfc_mode_adds_fwd_policies() {
    let mut db = Databases::new();
    db.rfc_mode = true;
    db.apply_script(GM_EXAMPLE, NOW).unwrap();
    assert_eq!(db.sad().len(), 4);
    assert_eq!(db.spd().len(), 6, "two in, two fwd, two out");
    let fwd: Vec<_> = db
        .spd()
        .iter()
        .filter(|p| p.direction == Direction::Fwd)
        .collect();
    assert_eq!(fwd.len(), 2);
    db.apply_script(
        "spddelete 192.168.0.10/32[5066] 192.168.0.11/32[5064] udp -P in;",
        NOW,
    )
    .unwrap();
    assert_eq!(db.spd().len(), 4);
    // unique on an in policy becomes require on its fwd copy.
    db.apply_script(
        "spdadd 10.0.0.1 10.0.0.2 any -P in ipsec esp/transport//unique:5;",
        NOW,
    )
    .unwrap();
    assert!(
        db.dump_spd()
            .contains("\tfwd prio def ipsec\n\tesp/transport//require\n")
    );
}

const KEYS: &str = "-E aes-cbc 0x00112233445566778899aabbccddeeff -A hmac-sha1 0x0102030405060708090a0b0c0d0e0f1011121314";

#[test]
fn getspi_holds_an_spi_that_update_completes() {
    let mut db = Databases::new();
    let out = db
        .apply_script("getspi 192.0.2.1 192.0.2.2 esp 0 -m transport -u 7;", NOW)
        .unwrap();
    let id = out[0].larval.unwrap();
    assert_eq!((id.dst, id.protocol), (ip("192.0.2.2"), Protocol::Esp));
    assert!(id.spi.0 > 255, "{id:?}");
    assert!(out[0].text.contains("state=larval"), "{}", out[0].text);
    assert!(out[0].text.contains("reqid=7("), "{}", out[0].text);
    // Held: no traffic, not selectable, but taken for add and getspi.
    assert_eq!(db.sad().len(), 0);
    assert!(db.sad().lookup(id.dst, Protocol::Esp, id.spi).is_none());
    let spi = id.spi.0;
    let e = db
        .apply_script(&format!("add 192.0.2.1 192.0.2.2 esp {spi} {KEYS};"), NOW)
        .unwrap_err();
    assert!(matches!(e, Error::SaExists { .. }), "{e}");
    let e = db
        .apply_script(&format!("getspi 192.0.2.1 192.0.2.2 esp {spi};"), NOW)
        .unwrap_err();
    assert!(matches!(e, Error::SaExists { .. }), "{e}");
    // Another getspi 0 gets another SPI.
    let other = db
        .apply_script("getspi 192.0.2.1 192.0.2.2 esp 0;", NOW)
        .unwrap()[0]
        .larval
        .unwrap();
    assert_ne!(other.spi, id.spi);
    // update from another source is refused; from the same, it completes.
    let e = db
        .apply_script(
            &format!("update 192.0.2.9 192.0.2.2 esp {spi} {KEYS};"),
            NOW,
        )
        .unwrap_err();
    assert!(e.to_string().contains("source"), "{e}");
    db.apply_script(
        &format!("update 192.0.2.1 192.0.2.2 esp {spi} -m transport -u 7 {KEYS};"),
        NOW,
    )
    .unwrap();
    let sa = db.sad().lookup(id.dst, Protocol::Esp, id.spi).unwrap();
    assert_eq!((sa.reqid(), sa.sa().seq()), (7, 0));
    assert!(db.sad().get_larval(&id).is_none());
    // The other one times out.
    let ev = db.expire(Timestamp(NOW.0 + sadb::LARVAL_LIFETIME_SECS));
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].id, ev[0].kind), (other, ExpireKind::Larval));
    assert_eq!(db.sad().larval().count(), 0);
}

#[test]
fn getspi_and_update_in_one_batch_and_in_the_dump() {
    let mut db = Databases::new();
    db.apply_script(
        &format!(
            "getspi 192.0.2.1 192.0.2.2 esp 0x4000 -lh 90;\n\
             getspi 192.0.2.1 192.0.2.2 ah 0x4001;\n\
             update 192.0.2.1 192.0.2.2 esp 0x4000 {KEYS};"
        ),
        NOW,
    )
    .unwrap();
    assert_eq!(db.sad().len(), 1);
    let dump = db.dump_sad(NOW);
    assert!(
        dump.contains("\tah mode=any spi=16385(0x00004001)"),
        "{dump}"
    );
    assert!(dump.contains("state=larval"), "{dump}");
    // A dump read back gives the larval SA as getspi.
    let back = sadb::dump::parse_sad_dump(&dump).unwrap();
    assert!(
        back.iter()
            .any(|s| matches!(s, sadb::Statement::GetSpi(g) if g.spi == Some(0x4001))),
        "{back:?}"
    );
    // -lh sets how long a larval SA waits; delete and flush remove them.
    db.apply_script("getspi 192.0.2.1 192.0.2.2 esp 0x4002 -lh 90;", NOW)
        .unwrap();
    db.apply_script("delete 192.0.2.1 192.0.2.2 ah 0x4001;", NOW)
        .unwrap();
    assert!(db.expire(Timestamp(NOW.0 + 89)).is_empty());
    assert_eq!(db.sad().larval().count(), 1);
    db.apply_script("flush esp;", NOW).unwrap();
    assert_eq!(db.sad().larval().count(), 0);
    assert_eq!(db.dump_sad(NOW), "No SAD entries.\n");
}

#[test]
fn owners_change_only_their_own_and_go_away_at_once() {
    use sadb::Owner;
    let ua = Owner::new("imsua-1").unwrap();
    let other = Owner::new("imsua-2").unwrap();
    let mut db = gm();
    let script = format!(
        "getspi 192.0.2.2 192.0.2.1 esp 0;\n\
         add 192.0.2.1 192.0.2.2 esp 0x5000 {KEYS};\n\
         spdadd 192.0.2.1[5060] 192.0.2.2[5062] udp -P out ipsec esp/transport//require;"
    );
    let stmts = sadb::parse(&script).unwrap();
    let out = db.apply_as(&stmts, NOW, Some(&ua)).unwrap();
    let larval = out[0].larval.unwrap();
    assert_eq!(
        db.sad().get_larval(&larval).unwrap().owner.as_ref(),
        Some(&ua)
    );
    let sa = db
        .sad()
        .lookup(ip("192.0.2.2"), Protocol::Esp, Spi(0x5000))
        .unwrap();
    assert_eq!(sa.owner(), Some(&ua));
    assert!(db.dump_sad(NOW).contains("\towner=imsua-1\n"));
    assert!(db.dump_spd().contains("\towner=imsua-1\n"));
    // The dump with owners still reads back.
    assert_eq!(
        sadb::dump::parse_spd_dump(&db.dump_spd()).unwrap().len(),
        db.spd().len()
    );
    // Another owner can neither change nor remove them, nor the
    // operator's; nor flush. Nothing changes on refusal.
    let before = db.dump_sad(NOW);
    for text in [
        "delete 192.0.2.1 192.0.2.2 esp 0x5000;".to_string(),
        format!("update 192.0.2.1 192.0.2.2 esp 0x5000 {KEYS};"),
        "spddelete 192.0.2.1[5060] 192.0.2.2[5062] udp -P out;".into(),
        "delete 192.168.0.10 192.168.0.11 esp 2222;".into(),
        "flush;".into(),
        "spdflush;".into(),
    ] {
        let stmts = sadb::parse(&text).unwrap();
        let e = db.apply_as(&stmts, NOW, Some(&other)).unwrap_err();
        assert!(matches!(e, Error::NotOwner { .. }), "{text}: {e}");
    }
    assert_eq!(db.dump_sad(NOW), before);
    // The owner completes its larval SA (it stays the owner's); the
    // operator's update keeps the owner.
    let spi = larval.spi.0;
    let stmts = sadb::parse(&format!("update 192.0.2.2 192.0.2.1 esp {spi} {KEYS};")).unwrap();
    db.apply_as(&stmts, NOW, Some(&ua)).unwrap();
    db.apply_script(
        &format!("update 192.0.2.1 192.0.2.2 esp 0x5000 {KEYS};"),
        NOW,
    )
    .unwrap();
    assert_eq!(
        db.sad()
            .lookup(ip("192.0.2.2"), Protocol::Esp, Spi(0x5000))
            .unwrap()
            .owner(),
        Some(&ua)
    );
    // Gone at once, the operator's entries untouched.
    let removed = db.delete_owned(&ua);
    assert_eq!((removed.sas, removed.larval, removed.policies), (2, 0, 1));
    assert_eq!(db.sad().len(), 4);
    assert_eq!(db.spd().len(), 4);
    assert_eq!(db.delete_owned(&ua), sadb::Removed::default());
}
