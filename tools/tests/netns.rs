//! ipsecd between real hosts: two network namespaces joined by a veth
//! pair, one ipsecd in each, mirrored setkey files (the seed's four SAs,
//! AES-128-CBC + HMAC-SHA1-96). What crosses the veth is checked by tshark
//! (nobody here wrote it) decrypting with the configured keys.
//!
//! Needs root, ip, nft, tshark, tcpdump and python3: skipped with a notice
//! otherwise, failing instead when CI is set.
//!
//! No test sleeps to let something happen: each waits for the event itself
//! (a counter, a number of datagrams, a line of output), with a generous
//! timeout; where something must NOT happen, the wait is for the traffic
//! that would have shown it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    ADDR_A, ADDR_B, ADDR6_A, ADDR6_B, AUTH_KEY, ENC_KEY, MARK, Pair, Ports, WAIT, lines_in,
    setkey_conf, tshark_decrypt, tshark_plain, usable,
};
use testkit::tshark::{self, EspSa};
use testkit::{poll_until, wait_until};

fn lines_with<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

fn protected_filter(p: &common::Ports) -> String {
    let ports = [p.pc_u, p.ps_u, p.pc_p, p.ps_p]
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    format!("udp.port in {{{ports}}} or tcp.port in {{{ports}}}")
}

#[test]
fn udp_and_tcp_arrive_intact_as_esp_that_tshark_decrypts() {
    if !usable("udp_and_tcp_arrive_intact_as_esp_that_tshark_decrypts") {
        return;
    }
    let mut pair = Pair::new("flows");
    let p = pair.ports;
    let (cap, pcap) = pair.capture(1, "veth.pcap");
    // UDP: UE port-c -> P-CSCF port-s and back (SAs 4444 / 1111).
    let echo = pair.app_bg(
        1,
        &["udpecho", ADDR_B, &p.ps_p.to_string(), "60"],
        "udpecho.out",
    );
    let tcp_echo = pair.app_bg(
        1,
        &["tcpecho", ADDR_B, &p.pc_p.to_string(), "60"],
        "tcpecho.out",
    );
    let bypass_echo = pair.app_bg(
        1,
        &["udpecho", ADDR_B, &p.bypass.to_string(), "60"],
        "bypass.out",
    );
    let udp = pair.app(
        0,
        &[
            "udpcli",
            ADDR_A,
            &p.pc_u.to_string(),
            ADDR_B,
            &p.ps_p.to_string(),
            "5",
            "300",
        ],
    );
    let big = pair.app(
        0,
        &[
            "udpcli",
            ADDR_A,
            &p.pc_u.to_string(),
            ADDR_B,
            &p.ps_p.to_string(),
            "2",
            "3000",
        ],
    );
    // TCP: UE port-s -> P-CSCF port-c (SAs 3333 / 2222).
    let tcp = pair.app(
        0,
        &[
            "tcpcli",
            ADDR_A,
            &p.ps_u.to_string(),
            ADDR_B,
            &p.pc_p.to_string(),
            "5",
            "2000",
        ],
    );
    let bypass = pair.app(
        0,
        &[
            "udpcli",
            ADDR_A,
            &p.bypass.to_string(),
            ADDR_B,
            &p.bypass.to_string(),
            "2",
            "100",
        ],
    );
    pair.stop_capture(cap, &pcap);

    assert_eq!(
        lines_with(&udp, "OK").len(),
        5,
        "UDP: {udp}\nA: {}\nB: {}",
        pair.log(0),
        pair.log(1)
    );
    assert_eq!(lines_with(&big, "OK").len(), 2, "3000-byte UDP: {big}");
    assert_eq!(lines_with(&tcp, "OK").len(), 5, "TCP: {tcp}");
    assert_eq!(lines_with(&bypass, "OK").len(), 2, "bypass: {bypass}");
    let received = std::fs::read_to_string(&echo).unwrap();
    assert_eq!(lines_with(&received, "RX").len(), 7, "{received}");
    let _ = (tcp_echo, bypass_echo);

    // An observer of the veth sees no cleartext for the protected ports...
    let clear = tshark_plain(&pcap, &protected_filter(&p), &["frame.number"]);
    assert!(clear.trim().is_empty(), "cleartext on the veth: {clear}");
    // ...but sees the bypass port in clear,
    let bp = tshark_plain(
        &pcap,
        &format!("udp.port == {}", p.bypass),
        &["udp.payload"],
    );
    assert_eq!(bp.lines().count(), 4, "bypass in clear: {bp}");
    // ...and ESP for the rest, which tshark decrypts with the keys to the
    // payloads the applications sent, every ICV good.
    let esp = tshark_decrypt(
        &pcap,
        "esp",
        &[
            "esp.spi",
            "esp.icv_good",
            "udp.srcport",
            "udp.dstport",
            "udp.payload",
            "tcp.srcport",
            "tcp.payload",
        ],
    );
    let mut udp_payloads = Vec::new();
    // The TCP byte stream of each direction, by source port.
    let mut tcp_streams: std::collections::BTreeMap<String, String> = Default::default();
    for l in esp.lines() {
        let f: Vec<&str> = l.split('|').collect();
        assert_eq!(f.get(1), Some(&"1"), "ICV not good: {l}");
        if let Some(x) = f.get(4).filter(|x| !x.is_empty()) {
            udp_payloads.push(x.replace(':', ""));
        }
        if let (Some(port), Some(x)) = (f.get(5), f.get(6).filter(|x| !x.is_empty())) {
            tcp_streams
                .entry(port.to_string())
                .or_default()
                .push_str(&x.replace(':', ""));
        }
    }
    for line in lines_with(&udp, "OK")
        .iter()
        .chain(lines_with(&big, "OK").iter())
    {
        let hex = line.split(' ').nth(1).unwrap();
        // Each datagram crossed twice (request and echo).
        assert_eq!(
            udp_payloads.iter().filter(|x| *x == hex).count(),
            2,
            "payload {hex} not decrypted twice by tshark"
        );
    }
    assert_eq!(tcp_streams.len(), 2, "both TCP directions decrypted");
    for line in lines_with(&tcp, "OK") {
        let hex = line.split(' ').nth(1).unwrap();
        for (port, stream) in &tcp_streams {
            assert!(
                stream.contains(hex),
                "TCP payload {}... not in the decrypted stream from port {port}",
                &hex[..16]
            );
        }
    }
    // Counters: the SAs counted the packets (setkey -D prints them).
    let d = String::from_utf8_lossy(&pair.setkey(0, &["-D"]).stdout).into_owned();
    assert!(d.contains("spi=4444(0x0000115c)"), "{d}");
    assert!(!d.contains("allocated: 0 "), "every SA was used: {d}");
    let dp = String::from_utf8_lossy(&pair.setkey(0, &["-DP"]).stdout).into_owned();
    assert!(dp.contains("stats: packets="), "{dp}");
}

#[test]
fn deleting_an_sa_mid_stream_stops_the_flow_without_cleartext() {
    if !usable("deleting_an_sa_mid_stream_stops_the_flow_without_cleartext") {
        return;
    }
    let mut pair = Pair::new("delete");
    let p = pair.ports;
    let (cap, pcap) = pair.capture(1, "veth.pcap");
    let sink = pair.app_bg(
        1,
        &["udpecho", ADDR_B, &p.ps_p.to_string(), "60"],
        "sink.out",
    );
    // A datagram every 20 ms until the test ends.
    let stream = pair.app_bg(
        0,
        &[
            "udpstream",
            ADDR_A,
            &p.pc_u.to_string(),
            ADDR_B,
            &p.ps_p.to_string(),
            "60",
            "0.02",
        ],
        "stream.out",
    );
    wait_until("20 datagrams of the flow at the sink", WAIT, || {
        lines_in(&sink, "RX") >= 20
    });
    let before = lines_in(&sink, "RX");
    let o = pair.setkey_stdin(0, &format!("delete {ADDR_A} {ADDR_B} esp 4444;\n"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The delete has reached A's data path (a datagram found no SA) and
    // what A protected before it has all reached the sink.
    let mut at_delete = 0;
    wait_until(
        "the datagrams protected before the delete to drain",
        WAIT,
        || {
            at_delete = lines_in(&sink, "RX");
            let a = pair.stats(0);
            let protected = a.get("out_protected");
            a.get("out_no_sa") >= 1
                && at_delete as u64 == protected
                && pair.stat(1, "in_delivered") == protected
        },
    );
    // Time passes with the flow running: 50 more datagrams, all dropped.
    let sent = |n: usize| lines_in(&stream, "SENT") > n;
    wait_until(
        "50 more datagrams sent and dropped for want of an SA",
        WAIT,
        || sent(at_delete + 50) && pair.stat(0, "out_no_sa") >= 50,
    );
    let after = lines_in(&sink, "RX");
    pair.stop_capture(cap, &pcap);
    let sent = std::fs::read_to_string(&stream).unwrap();
    assert!(before >= 20, "the flow ran before the delete: {before}");
    assert_eq!(after, at_delete, "packets arrived after the SA was deleted");
    assert!(
        lines_with(&sent, "SENT").len() > at_delete + 50,
        "the app kept sending: {sent}"
    );
    assert!(pair.stat(0, "out_no_sa") >= 50, "drops counted");
    let clear = tshark_plain(&pcap, &protected_filter(&p), &["frame.number"]);
    assert!(clear.trim().is_empty(), "cleartext on the veth: {clear}");
    // The policy counted its drops.
    let dp = String::from_utf8_lossy(&pair.setkey(0, &["-DP"]).stdout).into_owned();
    assert!(
        dp.lines()
            .any(|l| l.starts_with("\tstats:") && !l.ends_with("drops=0")),
        "{dp}"
    );
}

#[test]
fn a_replayed_esp_packet_is_dropped_and_counted() {
    if !usable("a_replayed_esp_packet_is_dropped_and_counted") {
        return;
    }
    let mut pair = Pair::new("replay");
    let p = pair.ports;
    let (cap, pcap) = pair.capture(0, "veth.pcap");
    let echo = pair.app_bg(
        1,
        &["udpecho", ADDR_B, &p.ps_p.to_string(), "60"],
        "echo.out",
    );
    let out = pair.app(
        0,
        &[
            "udpcli",
            ADDR_A,
            &p.pc_u.to_string(),
            ADDR_B,
            &p.ps_p.to_string(),
            "3",
            "200",
        ],
    );
    assert_eq!(lines_with(&out, "OK").len(), 3, "{out}");
    pair.stop_capture(cap, &pcap);
    // The first ESP packet A sent (SPI 4444), as captured: the ESP part.
    let esp = tshark_plain(
        &pcap,
        &format!("ip.src == {ADDR_A} && esp.spi == 0x115c"),
        &["ip.hdr_len", "frame.protocols", "ip.len"],
    );
    assert!(!esp.trim().is_empty(), "no ESP captured");
    let parsed = testkit::pcap::Capture::read(&pcap);
    let first = parsed
        .records
        .iter()
        .find_map(|r| {
            // Ethernet + IPv4 (20 bytes) + ESP with SPI 4444.
            let ip = r.data.get(14..)?;
            (ip.first() == Some(&0x45)
                && ip.get(9) == Some(&50)
                && ip.get(20..24) == Some(&4444u32.to_be_bytes()[..]))
            .then(|| ip[20..usize::from(u16::from_be_bytes([ip[2], ip[3]]))].to_vec())
        })
        .expect("an ESP packet with SPI 4444");
    let replay_before = pair.stat(1, "in_replay");
    let rx_before = lines_in(&echo, "RX");
    let hex: String = first.iter().map(|b| format!("{b:02x}")).collect();
    let sent = pair.app(0, &["rawesp", ADDR_B, &hex]);
    assert!(sent.contains("SENT"));
    // B has judged the copy: once dropped, it never reaches the app.
    pair.wait_stat(1, "in_replay", |n| n > replay_before);
    assert_eq!(
        pair.stat(1, "in_replay"),
        replay_before + 1,
        "replay counted"
    );
    assert_eq!(
        lines_in(&echo, "RX"),
        rx_before,
        "the app did not get it twice"
    );
    let d = String::from_utf8_lossy(&pair.setkey(1, &["-D"]).stdout).into_owned();
    assert!(d.contains("replay-drops=1"), "per-SA counter: {d}");
}

/// `--poll-us`: with a window longer than the gap between exchanges, the
/// threads find most packets while polling, and the traffic is ESP as
/// before. Without the option `poll_hits` stays 0, so the test fails.
#[test]
fn polling_daemons_find_the_packets_of_an_exchange_awake() {
    if !usable("polling_daemons_find_the_packets_of_an_exchange_awake") {
        return;
    }
    let mut pair = Pair::with_options("poll", setkey_conf, &["--poll-us", "50000"]);
    let p = pair.ports;
    pair.app_bg(
        1,
        &["udpecho", ADDR_B, &p.ps_p.to_string(), "60"],
        "echo.out",
    );
    let n = 40;
    let out = pair.app(
        0,
        &[
            "udpcli",
            ADDR_A,
            &p.pc_u.to_string(),
            ADDR_B,
            &p.ps_p.to_string(),
            &n.to_string(),
            "300",
        ],
    );
    assert_eq!(lines_with(&out, "OK").len(), n, "{out}");
    for i in 0..2 {
        let s = pair.stats(i);
        assert!(s.get("out_protected") >= n as u64, "daemon {i}: {}", s.0);
        assert_eq!(s.get("out_bypass"), 0, "daemon {i}: {}", s.0);
        // Each daemon reads 2n packets (n from its TUN, n from the veth),
        // the first of each flow after sleeping; the rest come within the
        // window, most of them while the thread polls.
        assert!(
            s.get("poll_hits") >= n as u64 / 2,
            "daemon {i} found too few packets while polling: {}",
            s.0
        );
    }
}

#[test]
fn cleartext_to_a_protected_port_never_reaches_the_application() {
    if !usable("cleartext_to_a_protected_port_never_reaches_the_application") {
        return;
    }
    let mut pair = Pair::new("spoof");
    let p = pair.ports;
    let echo = pair.app_bg(
        0,
        &["udpecho", ADDR_A, &p.pc_u.to_string(), "60"],
        "echo.out",
    );
    // From B's protected port to A's protected port, in clear, marked so it
    // skips B's TUN: exactly what an attacker on the link can send.
    for _ in 0..3 {
        let o = pair.app(
            1,
            &[
                "spoofudp",
                &MARK.to_string(),
                ADDR_B,
                &p.ps_p.to_string(),
                ADDR_A,
                &p.pc_u.to_string(),
                "spoofed",
            ],
        );
        assert!(o.contains("SENT"), "{o}");
    }
    // Control: the same through ipsecd arrives.
    let ok = pair.app(
        1,
        &[
            "udpcli",
            ADDR_B,
            &p.ps_p.to_string(),
            ADDR_A,
            &p.pc_u.to_string(),
            "1",
            "64",
        ],
    );
    // The spoofed datagrams went first on the same link: once nft has
    // counted them, they can no longer reach the application (if it never
    // counts them, the last assertion says so).
    let nft_ruleset = || {
        common::run_ok(
            "ip",
            &["netns", "exec", &pair.ns[0], "nft", "list", "ruleset"],
        )
    };
    let _ = poll_until(WAIT, || nft_ruleset().contains("counter packets 3 "));
    assert_eq!(lines_with(&ok, "OK").len(), 1, "protected path works: {ok}");
    let got = std::fs::read_to_string(&echo).unwrap();
    assert_eq!(
        lines_with(&got, "RX").len(),
        1,
        "only the protected datagram: {got}"
    );
    assert!(
        !got.contains(
            &"spoofed"
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    );
    let nft = nft_ruleset();
    assert!(
        nft.contains("counter packets 3 "),
        "nft dropped the three: {nft}"
    );
}

#[test]
fn sigterm_leaves_no_tun_route_rule_or_nft_table() {
    if !usable("sigterm_leaves_no_tun_route_rule_or_nft_table") {
        return;
    }
    let mut pair = Pair::new("cleanup");
    let ns = pair.ns[0].clone();
    let tun = pair.tun[0].clone();
    let rules = common::run_ok("ip", &["-n", &ns, "rule"]);
    assert!(rules.contains("fwmark 0x1 lookup main"), "{rules}");
    assert!(common::run_ok("ip", &["-n", &ns, "link"]).contains(&tun));
    // A crash leaves everything behind; a restart removes it first.
    common::signal(pair.daemons[0].as_ref().unwrap().id(), "KILL");
    let _ = pair.daemons[0].take().unwrap().wait();
    let left = common::run_ok("ip", &["-n", &ns, "rule"]);
    assert!(left.contains("lookup 100"), "rules survive a crash: {left}");
    let conf = pair.dir.join("a.conf");
    pair.start_daemon(0, Some(&conf));
    let rules2 = common::run_ok("ip", &["-n", &ns, "rule"]);
    assert_eq!(
        rules2.matches("lookup 100").count(),
        rules.matches("lookup 100").count(),
        "{rules2}"
    );
    let st = pair.stop_daemon(0).expect("daemon ran");
    assert!(st.success(), "exit status {st}: {}", pair.log(0));
    let rules = common::run_ok("ip", &["-n", &ns, "rule"]);
    assert!(
        !rules.contains("lookup 100") && !rules.contains("fwmark"),
        "rules left: {rules}"
    );
    let v4 = common::run_ok("ip", &["-n", &ns, "-4", "route", "show", "table", "100"]);
    let v6 = common::run_ok("ip", &["-n", &ns, "-6", "route", "show", "table", "100"]);
    assert!(
        v4.trim().is_empty() && v6.trim().is_empty(),
        "routes left: {v4}{v6}"
    );
    let links = common::run_ok("ip", &["-n", &ns, "link"]);
    assert!(!links.contains(&tun), "TUN left: {links}");
    let nft = common::run_ok("ip", &["netns", "exec", &ns, "nft", "list", "ruleset"]);
    assert!(nft.trim().is_empty(), "nft left: {nft}");
    assert!(!pair.state_file(0).exists(), "state file left");
    assert!(!pair.socket(0).exists(), "socket left");
}

/// IPv6 ESP, IPv4 AH and IPv4 ESP in UDP (RFC 3948), one port pair each.
fn mixed_conf(side: char, p: Ports) -> String {
    let k = format!("-E aes-cbc 0x{ENC_KEY} -A hmac-sha1 0x{AUTH_KEY}");
    let a = format!("-A hmac-sha1 0x{AUTH_KEY}");
    let flows = [
        (ADDR6_A, ADDR6_B, p.pc_u, p.ps_p, "esp", 0x2001, &k),
        (ADDR6_B, ADDR6_A, p.ps_p, p.pc_u, "esp", 0x2002, &k),
        (ADDR_A, ADDR_B, p.ps_u, p.pc_p, "ah", 0x3001, &a),
        (ADDR_B, ADDR_A, p.pc_p, p.ps_u, "ah", 0x3002, &a),
        (ADDR_A, ADDR_B, p.bypass, p.bypass, "esp-udp", 0x4001, &k),
        (ADDR_B, ADDR_A, p.bypass, p.bypass, "esp-udp", 0x4002, &k),
    ];
    let me = if side == 'a' {
        [ADDR_A, ADDR6_A]
    } else {
        [ADDR_B, ADDR6_B]
    };
    let mut s = String::new();
    for (src, dst, sp, dp, proto, spi, keys) in flows {
        let dir = if me.contains(&src) { "out" } else { "in" };
        let req = if proto == "ah" { "ah" } else { "esp" };
        s.push_str(&format!(
            "spdadd {src}[{sp}] {dst}[{dp}] udp -P {dir} ipsec {req}/transport//require;\n"
        ));
        let (sa_src, sa_dst) = if proto == "esp-udp" {
            (format!("{src}[4500]"), format!("{dst}[4500]"))
        } else {
            (src.to_string(), dst.to_string())
        };
        s.push_str(&format!(
            "add {sa_src} {sa_dst} {proto} {spi:#x} -m transport -r 8 {keys};\n"
        ));
    }
    s
}

#[test]
fn ipv6_esp_ipv4_ah_and_esp_in_udp_flows() {
    if !usable("ipv6_esp_ipv4_ah_and_esp_in_udp_flows") {
        return;
    }
    let mut pair = Pair::with_conf("mixed", mixed_conf);
    let p = pair.ports;
    let (cap, pcap) = pair.capture(1, "veth.pcap");
    pair.app_bg(
        1,
        &["udpecho", ADDR6_B, &p.ps_p.to_string(), "60"],
        "v6.out",
    );
    pair.app_bg(1, &["udpecho", ADDR_B, &p.pc_p.to_string(), "60"], "ah.out");
    pair.app_bg(
        1,
        &["udpecho", ADDR_B, &p.bypass.to_string(), "60"],
        "natt.out",
    );
    let v6 = pair.app(
        0,
        &[
            "udpcli",
            ADDR6_A,
            &p.pc_u.to_string(),
            ADDR6_B,
            &p.ps_p.to_string(),
            "3",
            "500",
        ],
    );
    let ah = pair.app(
        0,
        &[
            "udpcli",
            ADDR_A,
            &p.ps_u.to_string(),
            ADDR_B,
            &p.pc_p.to_string(),
            "3",
            "500",
        ],
    );
    let natt = pair.app(
        0,
        &[
            "udpcli",
            ADDR_A,
            &p.bypass.to_string(),
            ADDR_B,
            &p.bypass.to_string(),
            "3",
            "500",
        ],
    );
    pair.stop_capture(cap, &pcap);
    let logs = format!("A: {}\nB: {}", pair.log(0), pair.log(1));
    assert_eq!(lines_with(&v6, "OK").len(), 3, "IPv6 ESP: {v6}\n{logs}");
    assert_eq!(lines_with(&ah, "OK").len(), 3, "IPv4 AH: {ah}\n{logs}");
    assert_eq!(
        lines_with(&natt, "OK").len(),
        3,
        "ESP in UDP: {natt}\n{logs}"
    );
    // On the wire: IPv6 ESP, AH, and UDP 4500, never the inner ports in clear.
    let plain = |f: &str| tshark_plain(&pcap, f, &["frame.number"]).lines().count();
    assert_eq!(plain("ipv6 && esp"), 6, "IPv6 ESP packets");
    assert_eq!(plain("ah && udp"), 6, "AH packets (AH leaves UDP readable)");
    assert_eq!(plain("udp.port == 4500 && esp"), 6, "ESP-in-UDP packets");
    // scapy (an independent AH implementation) verifies every AH ICV, in
    // both directions; a corrupted key must fail.
    for spi in ["0x3001", "0x3002"] {
        let v = pair.app(0, &["scapy_ah", pcap.to_str().unwrap(), spi, AUTH_KEY]);
        assert_eq!(v.trim(), "GOOD 3 BAD 0", "scapy AH check, SPI {spi}: {v}");
    }
    let wrong = AUTH_KEY.replace('0', "f");
    let v = pair.app(0, &["scapy_ah", pcap.to_str().unwrap(), "0x3001", &wrong]);
    assert_eq!(v.trim(), "GOOD 0 BAD 3", "control with a wrong key: {v}");
    let inner = format!("udp.port == {} && !esp && !ah", p.bypass);
    assert_eq!(plain(&inner), 0, "ESP-in-UDP inner port in clear");
    // tshark decrypts the IPv6 ESP and the ESP in UDP with the keys.
    let sas: Vec<EspSa> = [
        (ADDR6_A, ADDR6_B, 0x2001u32),
        (ADDR6_B, ADDR6_A, 0x2002),
        (ADDR_A, ADDR_B, 0x4001),
        (ADDR_B, ADDR_A, 0x4002),
    ]
    .into_iter()
    .map(|(s, d, spi)| {
        EspSa::new(
            s,
            d,
            spi,
            ("AES-CBC [RFC3602]", ENC_KEY),
            ("HMAC-SHA-1-96 [RFC2404]", AUTH_KEY),
        )
    })
    .collect();
    let out = tshark::decrypt(&pcap, &sas, "esp", &["esp.icv_good", "udp.payload"]);
    let good = out.lines().filter(|l| l.starts_with("1|")).count();
    assert_eq!(good, 12, "ICV good on every ESP packet: {out}");
    for line in lines_with(&v6, "OK")
        .iter()
        .chain(lines_with(&natt, "OK").iter())
    {
        let hex = line.split(' ').nth(1).unwrap();
        let seen = out
            .lines()
            .filter(|l| l.replace(':', "").contains(hex))
            .count();
        assert!(seen >= 2, "payload {hex} decrypted: {out}");
    }
}

/// TCP between A's port-s and B's port-c, over IPv4 and over IPv6,
/// carried in UDP 4500 (esp-udp).
fn tcp_in_udp_conf(side: char, p: Ports) -> String {
    let k = format!("-E aes-cbc 0x{ENC_KEY} -A hmac-sha1 0x{AUTH_KEY}");
    let flows = [
        (ADDR_A, ADDR_B, p.ps_u, p.pc_p, 0x6001),
        (ADDR_B, ADDR_A, p.pc_p, p.ps_u, 0x6002),
        (ADDR6_A, ADDR6_B, p.ps_u, p.pc_p, 0x6003),
        (ADDR6_B, ADDR6_A, p.pc_p, p.ps_u, 0x6004),
    ];
    let me = if side == 'a' {
        [ADDR_A, ADDR6_A]
    } else {
        [ADDR_B, ADDR6_B]
    };
    let mut s = String::new();
    for (src, dst, sp, dp, spi) in flows {
        let dir = if me.contains(&src) { "out" } else { "in" };
        s.push_str(&format!(
            "spdadd {src}[{sp}] {dst}[{dp}] tcp -P {dir} ipsec esp/transport//require;\n\
             add {src}[4500] {dst}[4500] esp-udp {spi:#x} -m transport -r 32 {k};\n"
        ));
    }
    s
}

/// A TCP stream in ESP in UDP, over IPv4 and then IPv6, leaves in UDP GSO
/// sends and arrives in UDP_GRO reads (runs of ESP packets crossing the
/// kernel at once), and every byte arrives: the receiver's SHA-256 of the
/// stream matches the sender's.
#[test]
fn a_tcp_stream_in_esp_in_udp_crosses_in_gso_runs_intact() {
    if !usable("a_tcp_stream_in_esp_in_udp_crosses_in_gso_runs_intact") {
        return;
    }
    let mut pair = Pair::with_conf("gso", tcp_in_udp_conf);
    let p = pair.ports;
    const MIB: u64 = 32;
    let (mut sends, mut reads) = (0, 0);
    for (family, a, b) in [("v4", ADDR_A, ADDR_B), ("v6", ADDR6_A, ADDR6_B)] {
        let sink = pair.app_bg(
            1,
            &["tcpsink", b, &p.pc_p.to_string(), "60"],
            &format!("sink-{family}.out"),
        );
        let out = pair.app(
            0,
            &[
                "tcpbulk",
                a,
                &p.ps_u.to_string(),
                b,
                &p.pc_p.to_string(),
                &MIB.to_string(),
            ],
        );
        let logs = format!("A: {}\nB: {}", pair.log(0), pair.log(1));
        assert_eq!(
            out.trim(),
            format!("OK {}", MIB << 20),
            "{family}: {out}\n{logs}"
        );
        assert!(
            poll_until(WAIT, || std::fs::read_to_string(&sink)
                .is_ok_and(|t| t.contains(&format!("GOT {} ", MIB << 20)))),
            "{family}: the sink did not report the whole stream"
        );
        let (sa, sb) = (pair.stats(0), pair.stats(1));
        let (s, r) = (sa.get("udp_gso_sends"), sb.get("udp_gro_reads"));
        assert!(s > sends, "{family}: A sent no GSO run:\n{}", sa.0);
        assert!(r > reads, "{family}: B read no coalesced run:\n{}", sb.0);
        (sends, reads) = (s, r);
        for k in [
            "in_icv",
            "in_replay",
            "in_errors",
            "out_errors",
            "out_no_sa",
        ] {
            assert_eq!(
                (sa.get(k), sb.get(k)),
                (0, 0),
                "{family} {k}:\n{}\n{}",
                sa.0,
                sb.0
            );
        }
    }
    // The streams went through the SAs: at least one ESP packet per MSS.
    let a = pair.stats(0);
    assert!(a.get("out_protected") >= 2 * (MIB << 20) / 1400, "{}", a.0);
}

#[test]
fn a_file_with_one_bad_statement_changes_nothing_and_names_its_line() {
    if !usable("a_file_with_one_bad_statement_changes_nothing_and_names_its_line") {
        return;
    }
    let pair = Pair::new("atomic");
    let ns = pair.ns[0].clone();
    let k = format!("-E aes-cbc 0x{ENC_KEY} -A hmac-sha1 0x{AUTH_KEY}");
    let good = format!(
        "add {ADDR_A} {ADDR_B} esp 7777 -m transport {k};\nspdadd {ADDR_A}/32[7000] {ADDR_B}/32[7001] udp -P out ipsec esp/transport//require;\n"
    );
    // Line 3: a 2-byte AES key: the file does not parse, so setkey sends
    // nothing and exits 2 (docs/cli.md).
    let bad = format!(
        "{good}add {ADDR_A} {ADDR_B} esp 7778 -m transport -E aes-cbc 0x0011 -A hmac-sha1 0x{AUTH_KEY};\n"
    );
    let file = pair.dir.join("bad.conf");
    std::fs::write(&file, &bad).unwrap();
    let rules_before = common::run_ok("ip", &["-n", &ns, "rule"]);
    let o = pair.setkey(0, &["-f", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.conf:3:58: "),
        "the error names the file, line and column: {err}"
    );
    assert!(
        !err.contains(AUTH_KEY) && !err.contains("0011"),
        "no key bytes in errors: {err}"
    );
    let d = String::from_utf8_lossy(&pair.setkey(0, &["-D"]).stdout).into_owned();
    let dp = String::from_utf8_lossy(&pair.setkey(0, &["-DP"]).stdout).into_owned();
    assert!(!d.contains("spi=7777("), "line 1 was not applied: {d}");
    assert!(!dp.contains("[7000]"), "line 2 was not applied: {dp}");
    assert_eq!(common::run_ok("ip", &["-n", &ns, "rule"]), rules_before);
    // -n checks the syntax only: a syntax error is found without the daemon,
    // a valid file changes nothing.
    std::fs::write(&file, "add 192.0.2.1 192.0.2.2 esp;\n").unwrap();
    let o = pair.setkey(0, &["-n", "-f", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.conf:1:"));
    std::fs::write(&file, &good).unwrap();
    assert!(
        pair.setkey(0, &["-n", "-f", file.to_str().unwrap()])
            .status
            .success()
    );
    let d = String::from_utf8_lossy(&pair.setkey(0, &["-D"]).stdout).into_owned();
    assert!(!d.contains("spi=7777("), "-n applied nothing: {d}");
    // The valid file applies, with its routing rule.
    assert!(
        pair.setkey(0, &["-f", file.to_str().unwrap()])
            .status
            .success()
    );
    let d = String::from_utf8_lossy(&pair.setkey(0, &["-D"]).stdout).into_owned();
    assert!(d.contains("spi=7777("), "{d}");
    let rules = common::run_ok("ip", &["-n", &ns, "rule"]);
    assert!(rules.contains("dport 7001"), "{rules}");
    // -F / -FP flush, and the policy rules go with the policies.
    assert!(pair.setkey(0, &["-F"]).status.success());
    assert_eq!(
        String::from_utf8_lossy(&pair.setkey(0, &["-D"]).stdout),
        "No SAD entries.\n"
    );
    assert!(pair.setkey(0, &["-FP"]).status.success());
    assert_eq!(
        String::from_utf8_lossy(&pair.setkey(0, &["-DP"]).stdout),
        "No SPD entries.\n"
    );
    let rules = common::run_ok("ip", &["-n", &ns, "rule"]);
    assert!(
        !rules.contains("lookup 100") && rules.contains("fwmark 0x1"),
        "{rules}"
    );
    // Without a daemon: exit 2 (it could not do its job) and a one-line
    // reason.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_setkey"))
        .args(["-s", "/nonexistent/ipsecd.sock", "-D"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("setkey: cannot connect"));
}

#[test]
fn lifetimes_soft_logs_hard_removes_the_sa_and_the_flow_fails_closed() {
    if !usable("lifetimes_soft_logs_hard_removes_the_sa_and_the_flow_fails_closed") {
        return;
    }
    let mut pair = Pair::with_conf("lifetime", |side, p| {
        let c = common::setkey_conf(side, p);
        // A's outbound SA: soft after 1 s, hard after 3 s.
        c.replace("esp 4444 -m transport", "esp 4444 -m transport -ls 1 -lh 3")
    });
    let p = pair.ports;
    let (cap, pcap) = pair.capture(1, "veth.pcap");
    pair.app_bg(
        1,
        &["udpecho", ADDR_B, &p.ps_p.to_string(), "60"],
        "echo.out",
    );
    let first = pair.app(
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
    assert_eq!(lines_with(&first, "OK").len(), 1, "{first}");
    // The lifetime thread removes the SA at its 3 s hard lifetime.
    wait_until("A's SA 4444 to reach its hard lifetime", WAIT, || {
        pair.stat(0, "hard_expires") >= 1
            && pair.log(0).contains("hard lifetime reached: SA removed")
    });
    let later = pair.app(
        0,
        &[
            "udpcli",
            ADDR_A,
            &p.pc_u.to_string(),
            ADDR_B,
            &p.ps_p.to_string(),
            "2",
            "64",
        ],
    );
    pair.stop_capture(cap, &pcap);
    assert_eq!(
        lines_with(&later, "LOST").len(),
        2,
        "no SA, no traffic: {later}"
    );
    assert!(pair.stat(0, "soft_expires") >= 1);
    assert!(pair.stat(0, "hard_expires") >= 1);
    assert!(pair.stat(0, "out_no_sa") >= 2);
    let log = pair.log(0);
    assert!(log.contains("soft lifetime reached"), "{log}");
    assert!(log.contains("hard lifetime reached: SA removed"), "{log}");
    let d = String::from_utf8_lossy(&pair.setkey(0, &["-D"]).stdout).into_owned();
    assert!(!d.contains("spi=4444("), "{d}");
    let clear = tshark_plain(&pcap, &protected_filter(&p), &["frame.number"]);
    assert!(clear.trim().is_empty(), "cleartext on the veth: {clear}");
}

/// Tunnel mode: inner hosts 10.1.0.1 (in A) and 10.2.0.1 (in B) on the
/// loopbacks, outer ESP between the veth addresses.
fn tunnel_conf(side: char, _p: Ports) -> String {
    let k = format!("-E aes-cbc 0x{ENC_KEY} -A hmac-sha1 0x{AUTH_KEY}");
    let (out, inn) = if side == 'a' {
        ("out", "in")
    } else {
        ("in", "out")
    };
    format!(
        "spdadd 10.1.0.1/32 10.2.0.1/32 any -P {out} ipsec esp/tunnel/{ADDR_A}-{ADDR_B}/require;\n\
         spdadd 10.2.0.1/32 10.1.0.1/32 any -P {inn} ipsec esp/tunnel/{ADDR_B}-{ADDR_A}/require;\n\
         add {ADDR_A} {ADDR_B} esp 0x5001 -m tunnel -r 8 {k};\n\
         add {ADDR_B} {ADDR_A} esp 0x5002 -m tunnel -r 8 {k};\n"
    )
}

#[test]
fn tunnel_mode_carries_inner_hosts() {
    if !usable("tunnel_mode_carries_inner_hosts") {
        return;
    }
    let mut pair = Pair::with_conf("tunnel", tunnel_conf);
    let p = pair.ports;
    common::run_ok(
        "ip",
        &["-n", &pair.ns[0], "addr", "add", "10.1.0.1/32", "dev", "lo"],
    );
    common::run_ok(
        "ip",
        &["-n", &pair.ns[1], "addr", "add", "10.2.0.1/32", "dev", "lo"],
    );
    let (cap, pcap) = pair.capture(1, "veth.pcap");
    pair.app_bg(
        1,
        &["udpecho", "10.2.0.1", &p.ps_p.to_string(), "60"],
        "echo.out",
    );
    let out = pair.app(
        0,
        &[
            "udpcli",
            "10.1.0.1",
            &p.pc_u.to_string(),
            "10.2.0.1",
            &p.ps_p.to_string(),
            "3",
            "400",
        ],
    );
    pair.stop_capture(cap, &pcap);
    assert_eq!(
        lines_with(&out, "OK").len(),
        3,
        "{out}\nA: {}\nB: {}",
        pair.log(0),
        pair.log(1)
    );
    let sas = [(ADDR_A, ADDR_B, 0x5001u32), (ADDR_B, ADDR_A, 0x5002)].map(|(s, d, spi)| {
        EspSa::new(
            s,
            d,
            spi,
            ("AES-CBC [RFC3602]", ENC_KEY),
            ("HMAC-SHA-1-96 [RFC2404]", AUTH_KEY),
        )
    });
    let text = tshark::decrypt(
        &pcap,
        &sas,
        "esp",
        &["esp.icv_good", "ip.src", "udp.payload"],
    );
    assert_eq!(text.lines().count(), 6, "{text}");
    for l in text.lines() {
        assert!(l.starts_with("1|"), "ICV good: {l}");
        // Outer and inner source addresses both appear.
        assert!(
            l.contains("10.1.0.1") || l.contains("10.2.0.1"),
            "inner header: {l}"
        );
    }
    for line in lines_with(&out, "OK") {
        let hex = line.split(' ').nth(1).unwrap();
        assert_eq!(
            text.lines()
                .filter(|l| l.replace(':', "").contains(hex))
                .count(),
            2,
            "{text}"
        );
    }
}
