//! `setkey -D` and `setkey -DP` output.
//!
//! The layout is that of ipsec-tools' `pfkey_sadump`/`pfkey_spdump` and
//! `ipsec_dump_policy` (libipsec), line by line: the same fields, tabs,
//! trailing spaces, 20-character `ctime` times (here in UTC, from the `now`
//! the caller passes) and the same "No SAD entries." messages. Values the
//! kernel would supply come from the databases: `seq=` is the SA's last
//! sent sequence number (as KAME prints it), `allocated:` its packet count,
//! `current:` its byte count, `sadb_seq` numbers entries 1, 2, ... with 0 for
//! the last, as Linux does.

use core::fmt::Write as _;

use ipsec_esp::Protocol;

use crate::ast::Level;
use crate::sad::{Counters, Larval, SaEntry, Sad};
use crate::spd::{Policy, PolicyAction, Spd};
use crate::time::Timestamp;

/// Options of the dumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DumpOptions {
    /// The `pid=` value (setkey prints its own process id).
    pub pid: u32,
    /// Append a `stats:` line per SA with the counters setkey has no field
    /// for (replay drops, ICV failures), and per policy with its counters
    /// (packets and bytes that went on, drops). Off by default: the output
    /// is then exactly setkey's layout.
    pub stats: bool,
}

/// The names `getprotobynumber(3)` gives on Linux (/etc/protocols), which
/// `setkey -DP` prints.
pub(crate) fn dump_protocol_name(p: u8) -> Option<&'static str> {
    Some(match p {
        1 => "icmp",
        2 => "igmp",
        4 => "ipencap",
        6 => "tcp",
        17 => "udp",
        41 => "ipv6",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "ipv6-icmp",
        132 => "sctp",
        135 => "mobility-header",
        136 => "udplite",
        _ => return None,
    })
}

/// libipsec `ipsec_hexdump`: a space before every 4 bytes, a newline every 32.
fn hexdump(out: &mut String, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        if i != 0 && i % 32 == 0 {
            out.push('\n');
        }
        if i % 4 == 0 {
            out.push(' ');
        }
        let _ = write!(out, "{b:02x}");
    }
}

/// `sadb_seq`/`seq` of entry `i` of `n` as Linux numbers a dump.
fn dump_seq(i: usize, n: usize) -> usize {
    if i + 1 == n { 0 } else { i + 1 }
}

/// One SA as `setkey -D` prints it.
pub fn dump_sa(e: &SaEntry, now: Timestamp, sadb_seq: usize, opts: &DumpOptions) -> String {
    let sa = e.sa();
    let meta = e.meta();
    let mut s = String::new();
    let natt = meta.esp_udp || sa.udp_encap().is_some();
    match sa.udp_encap() {
        Some(u) if natt => {
            let _ = write!(s, "{}[{}] {}[{}] ", sa.src(), u.sport, sa.dst(), u.dport);
        }
        _ => {
            let _ = write!(s, "{} {} ", sa.src(), sa.dst());
        }
    }
    s.push_str("\n\t");
    s.push_str(match (sa.protocol(), natt) {
        (Protocol::Esp, true) => "esp-udp ",
        (Protocol::Esp, false) => "esp ",
        (Protocol::Ah, _) => "ah ",
    });
    let mode = match sa.mode() {
        ipsec_esp::Mode::Transport => "transport",
        ipsec_esp::Mode::Tunnel => "tunnel",
    };
    let spi = sa.spi().0;
    let reqid = meta.reqid;
    let _ = writeln!(
        s,
        "mode={mode} spi={spi}(0x{spi:08x}) reqid={reqid}(0x{reqid:08x})"
    );
    if sa.protocol() == Protocol::Esp && !sa.enc_key().is_empty() {
        let _ = write!(s, "\tE: {} ", sa.enc().setkey_name());
        hexdump(&mut s, sa.enc_key());
        s.push('\n');
    }
    if !sa.auth_key().is_empty() {
        let _ = write!(s, "\tA: {} ", sa.auth().setkey_name());
        hexdump(&mut s, sa.auth_key());
        s.push('\n');
    }
    let replay = if meta.replay_bytes != 0 {
        meta.replay_bytes
    } else {
        sa.replay_window().div_ceil(8)
    };
    // The low 32 bits, as the 32-bit sadb_x_sa2_sequence field carries them.
    let seq = sa.seq() & 0xffff_ffff;
    let _ = writeln!(
        s,
        "\tseq=0x{seq:08x} replay={replay} flags=0x00000000 state={} ",
        e.state().keyword()
    );
    let lt = meta.lifetimes;
    let created = e.created();
    let _ = writeln!(
        s,
        "\tcreated: {}\tcurrent: {}",
        created.setkey_format(),
        now.setkey_format()
    );
    let diff = if created.0 == 0 {
        0
    } else {
        now.since(created)
    };
    let _ = writeln!(
        s,
        "\tdiff: {diff}(s)\thard: {}(s)\tsoft: {}(s)",
        lt.hard.secs, lt.soft.secs
    );
    let last = e.first_used().unwrap_or_default();
    let _ = writeln!(
        s,
        "\tlast: {}\thard: 0(s)\tsoft: 0(s)",
        last.setkey_format()
    );
    let c = e.counters();
    let _ = writeln!(
        s,
        "\tcurrent: {}(bytes)\thard: {}(bytes)\tsoft: {}(bytes)",
        c.bytes, lt.hard.bytes, lt.soft.bytes
    );
    let _ = writeln!(s, "\tallocated: {}\thard: 0\tsoft: 0", c.packets);
    if opts.stats {
        let _ = writeln!(
            s,
            "\tstats: packets={} bytes={} replay-drops={} icv-failures={}",
            c.packets, c.bytes, c.replay_drops, c.icv_failures
        );
    }
    if let Some(o) = e.owner() {
        let _ = writeln!(s, "\towner={o}");
    }
    let _ = writeln!(s, "\tsadb_seq={sadb_seq} pid={} refcnt=0", opts.pid);
    s
}

/// A larval SA (`getspi`) as `setkey -D` prints one: mode `any` unless
/// asked, no keys, `state=larval`, its lifetime as the hard time.
pub fn dump_larval(l: &Larval, now: Timestamp, sadb_seq: usize, opts: &DumpOptions) -> String {
    let mut s = String::new();
    let id = l.id;
    let _ = writeln!(s, "{} {} ", l.src, id.dst);
    let mode = match l.mode {
        None => "any",
        Some(ipsec_esp::Mode::Transport) => "transport",
        Some(ipsec_esp::Mode::Tunnel) => "tunnel",
    };
    let (spi, reqid) = (id.spi.0, l.reqid);
    let _ = writeln!(
        s,
        "\t{} mode={mode} spi={spi}(0x{spi:08x}) reqid={reqid}(0x{reqid:08x})",
        crate::sad::protocol_keyword(id.protocol)
    );
    s.push_str("\tseq=0x00000000 replay=0 flags=0x00000000 state=larval \n");
    let _ = writeln!(
        s,
        "\tcreated: {}\tcurrent: {}",
        l.created.setkey_format(),
        now.setkey_format()
    );
    let _ = writeln!(
        s,
        "\tdiff: {}(s)\thard: {}(s)\tsoft: 0(s)",
        now.since(l.created),
        l.lifetime_secs
    );
    let _ = writeln!(
        s,
        "\tlast: {}\thard: 0(s)\tsoft: 0(s)",
        Timestamp::default().setkey_format()
    );
    s.push_str("\tcurrent: 0(bytes)\thard: 0(bytes)\tsoft: 0(bytes)\n");
    s.push_str("\tallocated: 0\thard: 0\tsoft: 0\n");
    if let Some(o) = &l.owner {
        let _ = writeln!(s, "\towner={o}");
    }
    let _ = writeln!(s, "\tsadb_seq={sadb_seq} pid={} refcnt=0", opts.pid);
    s
}

/// The SAD as `setkey -D` (or `dump [proto]`) prints it, in insertion order.
pub fn dump_sad(
    sad: &Sad,
    protocol: Option<Protocol>,
    now: Timestamp,
    opts: &DumpOptions,
) -> String {
    enum Entry<'a> {
        Sa(&'a SaEntry),
        Larval(&'a Larval),
    }
    let mut entries: Vec<(u64, Entry<'_>)> = sad
        .iter()
        .filter(|e| protocol.is_none_or(|p| e.sa().protocol() == p))
        .map(|e| (e.insertion_seq(), Entry::Sa(e)))
        .chain(
            sad.larval()
                .filter(|l| protocol.is_none_or(|p| l.id.protocol == p))
                .map(|l| (l.seq(), Entry::Larval(l))),
        )
        .collect();
    if entries.is_empty() {
        return "No SAD entries.\n".into();
    }
    entries.sort_by_key(|(seq, _)| *seq);
    let n = entries.len();
    entries
        .iter()
        .enumerate()
        .map(|(i, (_, e))| match e {
            Entry::Sa(e) => dump_sa(e, now, dump_seq(i, n), opts),
            Entry::Larval(l) => dump_larval(l, now, dump_seq(i, n), opts),
        })
        .collect()
}

/// `dir [prio ...] action` then the requests, as `ipsec_dump_policy` with
/// the delimiter "\n\t".
fn policy_text(p: &Policy) -> String {
    const PRIORITY_HIGH: i64 = 0x4000_0000;
    const PRIORITY_DEFAULT: i64 = 0x8000_0000;
    const PRIORITY_LOW: i64 = 0xC000_0000;
    let prio = i64::from(p.priority);
    let (offset, prio_str) = if prio == 0 {
        (0, "")
    } else if prio < PRIORITY_DEFAULT / 4 * 3 {
        (prio - PRIORITY_HIGH, "prio high")
    } else if prio < PRIORITY_DEFAULT / 4 * 5 {
        (prio - PRIORITY_DEFAULT, "prio def")
    } else {
        (prio - PRIORITY_LOW, "prio low")
    };
    // "fix sign to match the way it is input"
    let offset = -offset;
    let op = if offset < 0 { '-' } else { '+' };
    let action = match p.action {
        PolicyAction::Discard => "discard",
        PolicyAction::Bypass => "none",
        PolicyAction::Ipsec(_) => "ipsec",
    };
    let dir = p.direction.keyword();
    let mut s = if offset != 0 {
        format!("{dir} {prio_str} {op} {} {action}", offset.unsigned_abs())
    } else if !prio_str.is_empty() {
        format!("{dir} {prio_str} {action}")
    } else {
        format!("{dir} {action}")
    };
    if let PolicyAction::Ipsec(reqs) = &p.action {
        for r in reqs {
            let _ = write!(s, "\n\t{}/{}/", r.protocol.keyword(), r.mode.keyword());
            if let Some((a, b)) = r.endpoints {
                let _ = write!(s, "{}-{}", a.addr, b.addr);
            }
            s.push('/');
            s.push_str(match r.level {
                Level::Default => "default",
                Level::Use => "use",
                Level::Require => "require",
                Level::Unique(_) => "unique",
            });
            if r.reqid != 0 {
                // IPSEC_MANUAL_REQID_MAX: generated reqids print with '#'.
                let ch = if r.reqid > 0x3fff { '#' } else { ':' };
                let _ = write!(s, "{ch}{}", r.reqid);
            }
        }
    }
    s
}

/// One policy as `setkey -DP` prints it.
pub fn dump_policy(p: &Policy, seq: usize, opts: &DumpOptions) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}\n\t{}", p.selector.setkey_format(), policy_text(p));
    let _ = writeln!(
        s,
        "\tcreated: {}  lastused: {}",
        p.created.setkey_format(),
        p.last_used().unwrap_or_default().setkey_format()
    );
    s.push_str("\tlifetime: 0(s) validtime: 0(s)\n");
    let _ = writeln!(s, "\tspid={} seq={seq} pid={}", p.id, opts.pid);
    if let Some(o) = &p.owner {
        let _ = writeln!(s, "\towner={o}");
    }
    s.push_str("\trefcnt=1\n");
    if opts.stats {
        let c = p.counters();
        let _ = writeln!(
            s,
            "\tstats: packets={} bytes={} drops={}",
            c.packets, c.bytes, c.drops
        );
    }
    s
}

/// The SPD as `setkey -DP` (or `spddump`) prints it, in insertion order.
pub fn dump_spd(spd: &Spd, opts: &DumpOptions) -> String {
    let policies = spd.in_insertion_order();
    if policies.is_empty() {
        return "No SPD entries.\n".into();
    }
    let n = policies.len();
    policies
        .iter()
        .enumerate()
        .map(|(i, p)| dump_policy(p, dump_seq(i, n), opts))
        .collect()
}

fn dump_err(line: usize, expected: &str, found: &str) -> crate::Error {
    crate::Error::Syntax {
        pos: crate::Pos {
            line: u32::try_from(line + 1).unwrap_or(u32::MAX),
            col: 1,
        },
        expected: expected.into(),
        found: format!("{found:?}"),
    }
}

/// Reads a `setkey -D` dump back as `add` statements (keys, algorithms,
/// mode, reqid, replay, lifetimes; counters and times are not statements).
/// With [`dump_sad`] this gives a way to save and restore the SAD, and a
/// round-trip check of the printer.
pub fn parse_sad_dump(text: &str) -> Result<Vec<crate::Statement>, crate::Error> {
    if text == "No SAD entries.\n" {
        return Ok(Vec::new());
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let header = lines.get(i).copied().unwrap_or_default();
        let mut addrs = header.split_whitespace();
        let (Some(src), Some(dst)) = (addrs.next(), addrs.next()) else {
            return Err(dump_err(i, "\"src dst\"", header));
        };
        i += 1;
        let l = lines.get(i).copied().unwrap_or_default();
        let mut f = l.trim_start_matches('\t').split_whitespace();
        let proto = f.next().unwrap_or_default();
        let field = |f: Option<&str>, key: &str| -> Option<String> {
            let v = f?.strip_prefix(key)?;
            Some(v.split('(').next().unwrap_or(v).to_string())
        };
        let (Some(mode), Some(spi), Some(reqid)) = (
            field(f.next(), "mode="),
            field(f.next(), "spi="),
            field(f.next(), "reqid="),
        ) else {
            return Err(dump_err(i, "\"proto mode=M spi=N(0x..) reqid=N(0x..)\"", l));
        };
        i += 1;
        let mut enc = String::new();
        let mut auth = String::new();
        while let Some(l) = lines.get(i) {
            let target = if l.starts_with("\tE: ") {
                &mut enc
            } else if l.starts_with("\tA: ") {
                &mut auth
            } else {
                break;
            };
            let body = l.get(4..).unwrap_or_default();
            let mut parts = body.split_whitespace();
            let name = parts.next().unwrap_or_default();
            let mut hex: String = parts.collect();
            i += 1;
            // ipsec_hexdump continues long keys on lines starting with a space.
            while let Some(c) = lines.get(i).filter(|c| c.starts_with(' ')) {
                hex.extend(c.split_whitespace());
                i += 1;
            }
            *target = format!("{name} 0x{hex}");
        }
        let l = lines.get(i).copied().unwrap_or_default();
        if l.contains("state=larval") {
            while lines.get(i).is_some_and(|l| !l.starts_with("\tsadb_seq=")) {
                i += 1;
            }
            i += 1;
            let mode = if mode == "any" {
                String::new()
            } else {
                format!(" -m {mode}")
            };
            let stmt = format!("getspi {src} {dst} {proto} {spi}{mode} -u {reqid};");
            let mut parsed = crate::parse(&stmt)
                .map_err(|e| dump_err(start, "a larval SA record", &e.to_string()))?;
            if let Some(s) = parsed.pop() {
                out.push(s.value);
            }
            continue;
        }
        let Some(replay) = l
            .split_whitespace()
            .find_map(|w| w.strip_prefix("replay="))
            .map(str::to_string)
        else {
            return Err(dump_err(i, "\"seq=0x.. replay=N flags=.. state=..\"", l));
        };
        let mut lifetimes = String::new();
        while let Some(l) = lines.get(i) {
            i += 1;
            let nums: Vec<&str> = l
                .split('\t')
                .filter_map(|p| p.split_once(": ").map(|(_, v)| v))
                .filter_map(|v| v.split('(').next())
                .collect();
            if l.starts_with("\tdiff: ") {
                if let [_, hard, soft] = nums.as_slice() {
                    lifetimes.push_str(&format!(" -lh {hard} -ls {soft}"));
                }
            } else if l.starts_with("\tcurrent: ") && l.contains("(bytes)") {
                if let [_, hard, soft] = nums.as_slice() {
                    lifetimes.push_str(&format!(" -bh {hard} -bs {soft}"));
                }
            } else if l.starts_with("\tsadb_seq=") {
                break;
            }
        }
        let mut stmt =
            format!("add {src} {dst} {proto} {spi} -m {mode} -r {replay} -u {reqid}{lifetimes}");
        if proto == "ah" {
            if auth.is_empty() {
                auth = "null".into();
            }
            stmt.push_str(&format!(" -A {auth}"));
        } else {
            if enc.is_empty() {
                enc = "null".into();
            }
            stmt.push_str(&format!(" -E {enc}"));
            if !auth.is_empty() {
                stmt.push_str(&format!(" -A {auth}"));
            }
        }
        stmt.push(';');
        let mut parsed = crate::parse(&stmt).map_err(|e| {
            dump_err(
                start,
                "an SA record that reads as an add statement",
                &e.to_string(),
            )
        })?;
        if let Some(s) = parsed.pop() {
            out.push(s.value);
        }
    }
    Ok(out)
}

/// The counters of every SA in a `setkey -D` dump, with its SPI: packets
/// from `allocated:`, bytes from `current: N(bytes)` and, when the dump
/// has the `stats:` line ([`DumpOptions::stats`]), the replay drops and ICV
/// failures (0 otherwise). What a caller that only sees the text (a client
/// of ipsecd's control socket) reads an SA's usage with. A larval SA
/// (no counters) is left out.
pub fn parse_sa_counters(text: &str) -> Result<Vec<(u32, Counters)>, crate::Error> {
    if text == "No SAD entries.\n" {
        return Ok(Vec::new());
    }
    let lines: Vec<&str> = text.lines().collect();
    let number = |s: &str| -> Option<u64> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s.get(..end)?.parse().ok()
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let header = lines.get(i).copied().unwrap_or_default();
        if header.starts_with('\t') || header.split_whitespace().count() < 2 {
            return Err(dump_err(i, "\"src dst\"", header));
        }
        let l = lines.get(i + 1).copied().unwrap_or_default();
        let spi = l
            .split_whitespace()
            .find_map(|f| f.strip_prefix("spi="))
            .and_then(number)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| dump_err(i + 1, "spi=", l))?;
        let body_end = (i + 1..lines.len())
            .find(|&j| !lines.get(j).is_some_and(|l| l.starts_with('\t')))
            .unwrap_or(lines.len());
        let body = lines.get(i + 1..body_end).unwrap_or_default();
        let field = |prefix: &str, suffix: &str| -> Option<u64> {
            body.iter().find_map(|l| {
                let v = l.trim_start_matches('\t').strip_prefix(prefix)?;
                let v = v.trim_start();
                let n = number(v)?;
                v.trim_start_matches(|c: char| c.is_ascii_digit())
                    .starts_with(suffix)
                    .then_some(n)
            })
        };
        let stat = |key: &str| -> Option<u64> {
            body.iter().find_map(|l| {
                let v = l.trim_start_matches('\t').strip_prefix("stats:")?;
                v.split_whitespace()
                    .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                    .and_then(number)
            })
        };
        // setkey writes the state on the mode line, the header's next.
        let larval = body.iter().any(|l| l.contains("state=larval"));
        match (field("current:", "(bytes)"), field("allocated:", "")) {
            (Some(bytes), Some(packets)) => out.push((
                spi,
                Counters {
                    packets,
                    bytes,
                    replay_drops: stat("replay-drops").unwrap_or(0),
                    icv_failures: stat("icv-failures").unwrap_or(0),
                },
            )),
            _ if larval => {}
            _ => {
                return Err(dump_err(
                    body_end.saturating_sub(1),
                    "current: N(bytes) and allocated: N",
                    header,
                ));
            }
        }
        i = body_end;
    }
    Ok(out)
}

/// Reads a `setkey -DP` dump back as `spdadd` statements and the `spid`s.
/// Generated reqids (`unique#N`) read back as plain `unique`.
pub fn parse_spd_dump(text: &str) -> Result<Vec<(crate::Statement, u32)>, crate::Error> {
    if text == "No SPD entries.\n" {
        return Ok(Vec::new());
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let header = lines.get(i).copied().unwrap_or_default();
        if header.starts_with('\t') {
            return Err(dump_err(i, "a selector line", header));
        }
        i += 1;
        let mut policy = Vec::new();
        while let Some(l) = lines.get(i).filter(|l| !l.starts_with("\tcreated: ")) {
            let l = l.trim();
            let l = match l.split_once("unique#") {
                Some((a, _)) => format!("{a}unique"),
                None => l.to_string(),
            };
            policy.push(l);
            i += 1;
        }
        let mut spid = None;
        while let Some(l) = lines.get(i) {
            i += 1;
            if let Some(rest) = l.strip_prefix("\tspid=") {
                spid = rest
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u32>().ok());
            }
            if l.starts_with("\trefcnt=") {
                break;
            }
        }
        let Some(spid) = spid else {
            return Err(dump_err(start, "a policy record with spid=", header));
        };
        let stmt = format!("spdadd {header} -P {};", policy.join(" "));
        let mut parsed = crate::parse(&stmt).map_err(|e| {
            dump_err(
                start,
                "a policy record that reads as an spdadd statement",
                &e.to_string(),
            )
        })?;
        if let Some(s) = parsed.pop() {
            out.push((s.value, spid));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Direction;
    use crate::spd::Selector;

    #[test]
    fn hexdump_groups_and_wraps_like_libipsec() {
        let mut s = String::new();
        hexdump(&mut s, &(0u8..40).collect::<Vec<u8>>());
        assert_eq!(
            s,
            " 00010203 04050607 08090a0b 0c0d0e0f 10111213 14151617 18191a1b 1c1d1e1f\n 20212223 24252627"
        );
    }

    fn policy(priority: u32) -> Policy {
        Policy {
            id: 1,
            selector: Selector {
                src: "10.0.0.1".parse().unwrap(),
                src_prefix: 32,
                dst: "10.0.0.2".parse().unwrap(),
                dst_prefix: 24,
                protocol: Some(58),
                sport: None,
                dport: None,
                icmp_type: 135,
                icmp_code: 0,
            },
            direction: Direction::Fwd,
            priority,
            action: PolicyAction::Discard,
            created: Timestamp(0),
            stats: Default::default(),
            owner: None,
            seq: 0,
        }
    }

    #[test]
    fn priorities_print_relative_to_the_nearest_base() {
        // ipsec_dump_policy: offset = -(p - base), base chosen by thirds.
        assert_eq!(policy_text(&policy(0x8000_0000)), "fwd prio def discard");
        assert_eq!(
            policy_text(&policy(0x8000_0000 - 5)),
            "fwd prio def + 5 discard"
        );
        assert_eq!(
            policy_text(&policy(0x4000_0000 + 7)),
            "fwd prio high - 7 discard"
        );
        assert_eq!(
            policy_text(&policy(0xC000_0003)),
            "fwd prio low - 3 discard"
        );
        assert_eq!(policy_text(&policy(0)), "fwd discard");
        let d = dump_policy(&policy(0x8000_0000), 0, &DumpOptions::default());
        assert!(
            d.starts_with("10.0.0.1 10.0.0.2/24 ipv6-icmp 135,0\n\tfwd prio def discard\n"),
            "{d}"
        );
    }

    /// The names setkey -DP prints come from getprotobynumber(3): check ours
    /// against this machine's /etc/protocols where it has the number.
    #[test]
    fn protocol_names_agree_with_etc_protocols() {
        let Ok(text) = std::fs::read_to_string("/etc/protocols") else {
            eprintln!("notice: /etc/protocols not present, skipping");
            return;
        };
        let mut checked = 0;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut f = line.split_whitespace();
            let (Some(name), Some(num)) = (f.next(), f.next()) else {
                continue;
            };
            let Ok(num) = num.parse::<u8>() else { continue };
            if let Some(ours) = dump_protocol_name(num) {
                assert_eq!(ours, name, "protocol {num}");
                checked += 1;
            }
            // Every /etc/protocols name we print must also parse back.
            if dump_protocol_name(num) == Some(name) {
                assert_eq!(crate::ast::protocol_by_name(name), Some(num));
            }
        }
        assert!(checked >= 5, "only {checked} protocols checked");
    }
}
