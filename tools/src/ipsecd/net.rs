//! Routing and netfilter set-up of `ipsecd`, done with the `ip` (iproute2)
//! and `nft` (nftables) commands so an operator can see and reproduce
//! every step (`ip rule`, `ip route show table T`, `nft list table inet
//! ipsecd_TUN`).
//!
//! What is installed (the recipe of `docs/ipsecd.md`):
//!
//! - the TUN: `addrgenmode none`, MTU 65535, up; `rp_filter` 0 on it;
//! - table `T`: `default dev TUN advmss A` (IPv4 and IPv6) and an
//!   `unreachable default` at the highest metric, so when the TUN is gone
//!   protected traffic fails instead of leaking in clear;
//! - rule `pref BASE fwmark MARK lookup main`: the daemon's own sockets
//!   (ESP, bypass re-injection) never enter the TUN;
//! - one rule per `out` policy (`discard` or `ipsec`): `to DST ipproto P
//!   sport S dport D lookup T` (no `from`: an unbound UDP socket is routed
//!   with source 0.0.0.0 and would miss it), plus the mirror of every `in`
//!   `ipsec` policy (keeps `rp_filter` 1/2 happy);
//! - table `inet ipsecd_TUN`: an `input` chain that drops cleartext matching
//!   an `in ... ipsec ... require` policy unless it came from the TUN, and a
//!   `postrouting` guard that drops unmarked traffic matching an `out ...
//!   ipsec ... require` policy leaving on any other interface.
//!
//! Fail closed at every moment, restarts included. A daemon records in its
//! state file exactly what it installed (each rule with its preference); a
//! crashed run's rules, `unreachable` route and nft guards stay in place
//! (protected traffic fails instead of leaking) until the next run has
//! installed its own: that run's rules use the other half of the
//! preference range, its nft table replaces the old one in one
//! transaction, and only then are the recorded leftovers removed. Nothing
//! that is not recorded as ours is ever deleted: rules in the range or
//! routes in the table that are not ours make the start fail with the
//! reason (`ipsecd --cleanup` removes them on the operator's word).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use sadb::Spd;
use sadb::ast::Direction;
use sadb::spd::{PolicyAction, Selector};

/// How many rule preferences the daemon owns from its base.
pub const PREF_RANGE: u32 = 1000;

/// Where the policy rules of each half of the range start (from the base);
/// consecutive runs alternate halves, so a run's rules never collide with
/// the ones a crashed run left.
const HALVES: [(u32, u32); 2] = [(10, 505), (505, PREF_RANGE)];

/// The routing/netfilter parameters of one daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetParams {
    /// TUN interface name.
    pub tun: String,
    /// Routing table for the TUN.
    pub table: u32,
    /// First rule preference (the fwmark rule); policy rules follow.
    pub pref_base: u32,
    /// `SO_MARK` of the daemon's sockets.
    pub mark: u32,
    /// `advmss` on the TUN routes (IPv4; IPv6 gets 20 less).
    pub advmss: u32,
}

impl NetParams {
    /// The nft table name (`inet`).
    pub fn nft_table(&self) -> String {
        format!("ipsecd_{}", self.tun.replace(['-', '.'], "_"))
    }

    /// The state-file text.
    pub fn to_state(&self) -> String {
        format!(
            "tun={}\ntable={}\npref_base={}\nmark={}\nadvmss={}\n",
            self.tun, self.table, self.pref_base, self.mark, self.advmss
        )
    }

    /// Reads a state file written by [`NetParams::to_state`].
    pub fn from_state(text: &str) -> Option<NetParams> {
        let mut m = BTreeMap::new();
        for l in text.lines() {
            if let Some((k, v)) = l.split_once('=') {
                m.insert(k.trim(), v.trim());
            }
        }
        Some(NetParams {
            tun: m.get("tun")?.to_string(),
            table: m.get("table")?.parse().ok()?,
            pref_base: m.get("pref_base")?.parse().ok()?,
            mark: m.get("mark")?.parse().ok()?,
            advmss: m.get("advmss")?.parse().ok()?,
        })
    }
}

/// What a daemon installed, as its state file records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Installed {
    /// The daemon's process id.
    pub pid: u32,
    /// Its parameters (`None` in a state file that lacks them).
    pub params: Option<NetParams>,
    /// The half of the preference range its policy rules use.
    pub half: usize,
    /// Its policy rules and their preferences.
    pub rules: Vec<(RuleSpec, u32)>,
}

impl Installed {
    /// The state-file text.
    pub fn to_state(&self) -> String {
        let mut s = format!("pid={}\nhalf={}\n", self.pid, self.half);
        if let Some(p) = &self.params {
            s.push_str(&p.to_state());
        }
        for (r, pref) in &self.rules {
            s.push_str(&format!("rule={} {pref} {}\n", r.family, r.words.join(" ")));
        }
        s
    }

    /// Reads a state file written by [`Installed::to_state`] (an older
    /// file with the parameters only gives no rules).
    pub fn from_state(text: &str) -> Installed {
        let mut out = Installed {
            params: NetParams::from_state(text),
            ..Installed::default()
        };
        for l in text.lines() {
            let Some((k, v)) = l.split_once('=') else {
                continue;
            };
            match k.trim() {
                "pid" => out.pid = v.trim().parse().unwrap_or(0),
                "half" => out.half = usize::from(v.trim() == "1"),
                "rule" => {
                    let mut w = v.split_whitespace();
                    let family = match w.next() {
                        Some("-4") => "-4",
                        Some("-6") => "-6",
                        _ => continue,
                    };
                    let Some(Ok(pref)) = w.next().map(str::parse::<u32>) else {
                        continue;
                    };
                    let words = w.map(str::to_string).collect();
                    out.rules.push((RuleSpec { family, words }, pref));
                }
                _ => {}
            }
        }
        out
    }
}

/// Writes a state file atomically (a new file renamed over the old one).
fn write_state(path: &std::path::Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("state.new");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Runs a command, failing with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_stdin(cmd: &str, args: &[&str], input: &str) -> Result<()> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {cmd}"))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// One `ip rule` the SPD asks for (family flag and selector words).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleSpec {
    /// `-4` or `-6`.
    pub family: &'static str,
    /// The selector words (`to X ipproto udp sport 1 dport 2`).
    pub words: Vec<String>,
}

fn fam(a: &IpAddr) -> &'static str {
    if a.is_ipv4() { "-4" } else { "-6" }
}

fn proto_word(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "ipv6-icmp".into(),
        n => n.to_string(),
    }
}

/// `to`/`ipproto`/`sport`/`dport` words for traffic to `dst` with the given
/// ports.
fn rule_words(
    dst: IpAddr,
    prefix: u8,
    proto: Option<u8>,
    sport: Option<u16>,
    dport: Option<u16>,
) -> Vec<String> {
    let mut w = vec!["to".to_string(), format!("{dst}/{prefix}")];
    if let Some(p) = proto {
        w.push("ipproto".into());
        w.push(proto_word(p));
        if matches!(p, 6 | 17) {
            if let Some(s) = sport {
                w.push("sport".into());
                w.push(s.to_string());
            }
            if let Some(d) = dport {
                w.push("dport".into());
                w.push(d.to_string());
            }
        }
    }
    w
}

fn is_require(action: &PolicyAction) -> bool {
    matches!(action, PolicyAction::Ipsec(reqs) if reqs.iter().any(|r| !r.optional()))
}

/// The rules and nft lines the SPD asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// `ip rule`s into the TUN table.
    pub rules: Vec<RuleSpec>,
    /// nft `input` rules (cleartext drops).
    pub input: Vec<String>,
    /// nft `postrouting` rules (outbound guard).
    pub output: Vec<String>,
}

fn nft_match(sel: &Selector, reverse: bool) -> String {
    let (ip, _) = if sel.src.is_ipv4() {
        ("ip", 32)
    } else {
        ("ip6", 128)
    };
    let mut s = format!(
        "{ip} saddr {}/{} {ip} daddr {}/{}",
        sel.src, sel.src_prefix, sel.dst, sel.dst_prefix
    );
    let _ = reverse;
    if let Some(p) = sel.protocol {
        match p {
            6 | 17 => {
                let l4 = if p == 6 { "tcp" } else { "udp" };
                s.push_str(&format!(" meta l4proto {l4}"));
                if let Some(sp) = sel.sport {
                    s.push_str(&format!(" {l4} sport {sp}"));
                }
                if let Some(dp) = sel.dport {
                    s.push_str(&format!(" {l4} dport {dp}"));
                }
            }
            n => s.push_str(&format!(" meta l4proto {n}")),
        }
    }
    s
}

/// Computes what the SPD asks for.
pub fn plan(spd: &Spd, p: &NetParams) -> Plan {
    let mut out = Plan::default();
    for pol in spd.iter() {
        let sel = &pol.selector;
        match pol.direction {
            Direction::Out => {
                if matches!(pol.action, PolicyAction::Bypass) {
                    continue;
                }
                out.rules.push(RuleSpec {
                    family: fam(&sel.dst),
                    words: rule_words(sel.dst, sel.dst_prefix, sel.protocol, sel.sport, sel.dport),
                });
                if is_require(&pol.action) {
                    out.output.push(format!(
                        "oifname != \"{}\" {} counter drop",
                        p.tun,
                        nft_match(sel, false)
                    ));
                    // ICMP errors carry no ports, so the port rule misses
                    // the ones this host sends about the protected flow
                    // (e.g. port unreachable quoting the plaintext): all
                    // ICMP to the peer goes through the TUN, where the
                    // engine protects an error with its flow's SA (RFC 4301
                    // §6.2) and lets the rest out in clear; the guard drops
                    // an error that would leave elsewhere.
                    let icmp = if sel.dst.is_ipv4() { 1 } else { 58 };
                    if sel.protocol.is_some_and(|p| p != icmp) {
                        out.rules.push(RuleSpec {
                            family: fam(&sel.dst),
                            words: rule_words(sel.dst, sel.dst_prefix, Some(icmp), None, None),
                        });
                        let (ip, types) = if sel.dst.is_ipv4() {
                            (
                                "ip",
                                "icmp type { destination-unreachable, source-quench, redirect, time-exceeded, parameter-problem }",
                            )
                        } else {
                            (
                                "ip6",
                                "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem }",
                            )
                        };
                        out.output.push(format!(
                            "oifname != \"{}\" {ip} daddr {}/{} {types} counter drop",
                            p.tun, sel.dst, sel.dst_prefix
                        ));
                    }
                }
            }
            Direction::In => {
                if !matches!(pol.action, PolicyAction::Ipsec(_)) {
                    continue;
                }
                // Mirror: replies towards the policy's source use the TUN,
                // which also makes the reverse-path check pass.
                out.rules.push(RuleSpec {
                    family: fam(&sel.src),
                    words: rule_words(sel.src, sel.src_prefix, sel.protocol, sel.dport, sel.sport),
                });
                if is_require(&pol.action) {
                    out.input.push(format!(
                        "iifname != \"{}\" {} counter drop",
                        p.tun,
                        nft_match(sel, false)
                    ));
                }
            }
            Direction::Fwd => {}
        }
    }
    out.rules.sort();
    out.rules.dedup();
    out
}

/// The rules, table and nft table one daemon installed, kept in line with
/// the SPD and recorded in the state file.
#[derive(Debug)]
pub struct Net {
    /// Parameters.
    pub params: NetParams,
    half: usize,
    installed: BTreeMap<RuleSpec, u32>,
    next_pref: u32,
    state_file: PathBuf,
    /// Whether this run added the fwmark rule (a crashed run's identical
    /// one is taken over).
    own_fwmark: bool,
}

/// The fwmark rule's text in `ip rule show` (`from all fwmark 0x1 lookup main`).
fn fwmark_rule_text(mark: u32) -> String {
    format!("from all fwmark {mark:#x} lookup main")
}

/// `ip rule show` of a family: (preference, rest of the line).
fn rules_shown(family: &str) -> Vec<(u32, String)> {
    let Ok(list) = run("ip", &[family, "rule", "show"]) else {
        return Vec::new();
    };
    list.lines()
        .filter_map(|line| {
            let (pref, rest) = line.split_once(':')?;
            Some((pref.trim().parse().ok()?, rest.trim().to_string()))
        })
        .collect()
}

/// Checks that nothing but a crashed run recorded in `previous` uses the
/// preference range and the table of `p`: rules or routes that are not
/// recorded as ipsecd's are another program's (or another ipsecd's with the
/// same `--pref-base`/`--table`), and are never touched.
pub fn check_free(p: &NetParams, previous: Option<&Installed>) -> Result<()> {
    let range = p.pref_base..p.pref_base + PREF_RANGE;
    let prev_prefs: Vec<u32> = previous
        .map(|i| i.rules.iter().map(|(_, pref)| *pref).collect())
        .unwrap_or_default();
    let prev_mark = previous.and_then(|i| i.params.as_ref()).map(|q| q.mark);
    let mut foreign = Vec::new();
    for f in ["-4", "-6"] {
        for (pref, rest) in rules_shown(f) {
            if !range.contains(&pref) {
                continue;
            }
            let fwmark = pref == p.pref_base
                && [Some(p.mark), prev_mark]
                    .iter()
                    .flatten()
                    .any(|m| rest == fwmark_rule_text(*m));
            if !fwmark && !prev_prefs.contains(&pref) {
                foreign.push(format!("{pref}: {rest}"));
            }
        }
    }
    if let Some(first) = foreign.first() {
        bail!(
            "preferences {}..{} hold {} rule(s) that are not this ipsecd's (first: {first}): another program or another ipsecd uses them; choose another --pref-base, or remove them with `ipsecd --cleanup` if they are an old run's",
            range.start,
            range.end - 1,
            foreign.len()
        );
    }
    let t = p.table.to_string();
    let prev_tun = previous
        .and_then(|i| i.params.as_ref())
        .map(|q| q.tun.clone());
    for f in ["-4", "-6"] {
        let Ok(routes) = run("ip", &[f, "route", "show", "table", &t]) else {
            continue;
        };
        for r in routes.lines() {
            let r = r.trim();
            let ours = r.starts_with("unreachable default")
                || [Some(p.tun.clone()), prev_tun.clone()]
                    .iter()
                    .flatten()
                    .any(|tun| r.starts_with(&format!("default dev {tun} ")));
            if !r.is_empty() && !ours {
                bail!(
                    "routing table {} holds a route that is not this ipsecd's ({r}); choose another --table",
                    p.table
                );
            }
        }
    }
    Ok(())
}

impl Net {
    /// Nothing installed yet; the policy rules go into the half of the
    /// preference range that `previous` (a crashed run) did not use.
    pub fn new(params: NetParams, state_file: PathBuf, previous: Option<&Installed>) -> Net {
        let half = previous.map_or(0, |i| 1 - i.half.min(1));
        let next_pref = params.pref_base + HALVES[half].0;
        Net {
            params,
            half,
            installed: BTreeMap::new(),
            next_pref,
            state_file,
            own_fwmark: false,
        }
    }

    /// Records what is installed (ours, plus `leftovers` not yet removed).
    fn record(&self, leftovers: &[(RuleSpec, u32)]) -> Result<()> {
        let st = Installed {
            pid: std::process::id(),
            params: Some(self.params.clone()),
            half: self.half,
            rules: self
                .installed
                .iter()
                .map(|(r, p)| (r.clone(), *p))
                .chain(leftovers.iter().cloned())
                .collect(),
        };
        write_state(&self.state_file, &st.to_state())
    }

    /// Installs everything `plan` asks for, then removes what `previous`
    /// (a crashed run) left: the TUN routes and the `unreachable` route
    /// (replaced in place), the fwmark rule, the policy rules (in the other
    /// half of the range), the nft table (replaced in one transaction).
    /// At no moment is a protected flow without a rule or a guard. On
    /// failure, what this run added is removed and the leftovers stay, as
    /// they were (fail closed).
    pub fn start(&mut self, plan: &Plan, previous: Option<&Installed>) -> Result<()> {
        let leftovers: Vec<(RuleSpec, u32)> = previous.map(|i| i.rules.clone()).unwrap_or_default();
        let started = self.start_inner(plan, &leftovers);
        if let Err(e) = started {
            self.undo_rules();
            let old = previous.cloned().unwrap_or_default();
            if old.params.is_some() {
                let _ = write_state(&self.state_file, &old.to_state());
            } else {
                let _ = std::fs::remove_file(&self.state_file);
            }
            return Err(e);
        }
        // The new run is in place: what the old one left goes.
        for (r, pref) in &leftovers {
            let _ = run("ip", &[r.family, "rule", "del", "pref", &pref.to_string()]);
        }
        if let Some(old) = previous.and_then(|i| i.params.as_ref()) {
            if old.mark != self.params.mark {
                let base = old.pref_base.to_string();
                let mark = format!("{:#x}", old.mark);
                for f in ["-4", "-6"] {
                    let _ = run(
                        "ip",
                        &[
                            f, "rule", "del", "pref", &base, "fwmark", &mark, "lookup", "main",
                        ],
                    );
                }
            }
            if old.nft_table() != self.params.nft_table() {
                let _ = run("nft", &["delete", "table", "inet", &old.nft_table()]);
            }
            if old.table != self.params.table {
                flush_table(old.table);
            }
        }
        self.record(&[])
    }

    fn start_inner(&mut self, plan: &Plan, leftovers: &[(RuleSpec, u32)]) -> Result<()> {
        self.record(leftovers)?;
        self.routes()?;
        let base = self.params.pref_base.to_string();
        let mark = format!("{:#x}", self.params.mark);
        for f in ["-4", "-6"] {
            let present = rules_shown(f).iter().any(|(p, rest)| {
                *p == self.params.pref_base && *rest == fwmark_rule_text(self.params.mark)
            });
            if !present {
                run(
                    "ip",
                    &[
                        f, "rule", "add", "pref", &base, "fwmark", &mark, "lookup", "main",
                    ],
                )?;
                self.own_fwmark = true;
            }
        }
        // Preferences are recorded before the rules exist, so that a crash
        // in between leaves nothing unrecorded.
        let planned: Vec<(RuleSpec, u32)> = plan
            .rules
            .iter()
            .map(|r| Ok((r.clone(), self.alloc_pref()?)))
            .collect::<Result<_>>()?;
        let mut recorded: Vec<(RuleSpec, u32)> = leftovers.to_vec();
        recorded.extend(planned.iter().cloned());
        self.record(&recorded)?;
        let t = self.params.table.to_string();
        for (r, pref) in planned {
            let ps = pref.to_string();
            let mut args: Vec<&str> = vec![r.family, "rule", "add", "pref", &ps];
            args.extend(r.words.iter().map(String::as_str));
            args.extend(["lookup", &t]);
            run("ip", &args)?;
            self.installed.insert(r, pref);
        }
        self.nft(plan)?;
        self.record(leftovers)
    }

    /// The TUN's routes in the table, and the `unreachable` default at the
    /// highest metric (`replace`: a crashed run's stays in place).
    fn routes(&self) -> Result<()> {
        let p = &self.params;
        let t = p.table.to_string();
        let tun = p.tun.as_str();
        // Before `up`: no link-local address, so no router solicitations.
        let _ = run("ip", &["link", "set", tun, "addrgenmode", "none"]);
        run("ip", &["link", "set", tun, "mtu", "65535", "up"])?;
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{tun}/rp_filter"), "0");
        let mss4 = p.advmss.to_string();
        let mss6 = p.advmss.saturating_sub(20).to_string();
        let unreachable = |f: &str| {
            run(
                "ip",
                &[
                    f,
                    "route",
                    "replace",
                    "unreachable",
                    "default",
                    "metric",
                    "4294967295",
                    "table",
                    &t,
                ],
            )
        };
        unreachable("-4")?;
        run(
            "ip",
            &[
                "-4", "route", "replace", "default", "dev", tun, "advmss", &mss4, "table", &t,
            ],
        )?;
        let v6 = unreachable("-6").and_then(|_| {
            run(
                "ip",
                &[
                    "-6", "route", "replace", "default", "dev", tun, "advmss", &mss6, "table", &t,
                ],
            )
        });
        if let Err(e) = v6 {
            tracing::warn!("IPv6 routes not installed: {e:#}");
        }
        Ok(())
    }

    /// Removes the policy rules this run added (and its fwmark rule).
    fn undo_rules(&mut self) {
        for (r, pref) in std::mem::take(&mut self.installed) {
            let _ = run("ip", &[r.family, "rule", "del", "pref", &pref.to_string()]);
        }
        if self.own_fwmark {
            let base = self.params.pref_base.to_string();
            let mark = format!("{:#x}", self.params.mark);
            for f in ["-4", "-6"] {
                let _ = run(
                    "ip",
                    &[
                        f, "rule", "del", "pref", &base, "fwmark", &mark, "lookup", "main",
                    ],
                );
            }
        }
    }

    fn nft(&self, plan: &Plan) -> Result<()> {
        let p = &self.params;
        let name = p.nft_table();
        // One transaction: the table is created if absent, emptied and
        // filled again, so the old guards hold until the new ones do.
        let mut s =
            format!("table inet {name} {{}}\nflush table inet {name}\ntable inet {name} {{\n");
        s.push_str("  chain input {\n    type filter hook input priority filter; policy accept;\n");
        s.push_str("    iifname \"lo\" accept\n    meta l4proto { 50, 51 } accept\n    udp dport 4500 accept\n");
        for r in &plan.input {
            s.push_str(&format!("    {r}\n"));
        }
        s.push_str("  }\n  chain postrouting {\n    type filter hook postrouting priority filter; policy accept;\n");
        s.push_str(&format!("    meta mark {:#x} accept\n", p.mark));
        for r in &plan.output {
            s.push_str(&format!("    {r}\n"));
        }
        s.push_str("  }\n}\n");
        run_stdin("nft", &["-f", "-"], &s)
    }

    /// Makes the rules and nft table match `plan`: new rules first, then the
    /// stale ones go, so no protected flow is ever without a rule. The state
    /// file follows.
    pub fn sync(&mut self, plan: &Plan) -> Result<()> {
        let t = self.params.table.to_string();
        for r in &plan.rules {
            if self.installed.contains_key(r) {
                continue;
            }
            let pref = self.alloc_pref()?;
            let ps = pref.to_string();
            self.installed.insert(r.clone(), pref);
            self.record(&[])?;
            let mut args: Vec<&str> = vec![r.family, "rule", "add", "pref", &ps];
            args.extend(r.words.iter().map(String::as_str));
            args.extend(["lookup", &t]);
            if let Err(e) = run("ip", &args) {
                self.installed.remove(r);
                self.record(&[])?;
                return Err(e);
            }
        }
        self.nft(plan)?;
        let stale: Vec<RuleSpec> = self
            .installed
            .keys()
            .filter(|k| !plan.rules.contains(k))
            .cloned()
            .collect();
        for r in stale {
            if let Some(pref) = self.installed.remove(&r) {
                let _ = run("ip", &[r.family, "rule", "del", "pref", &pref.to_string()]);
            }
        }
        self.record(&[])
    }

    fn alloc_pref(&mut self) -> Result<u32> {
        let (lo, hi) = HALVES[self.half];
        let (lo, hi) = (self.params.pref_base + lo, self.params.pref_base + hi);
        for _ in lo..hi {
            let p = self.next_pref;
            self.next_pref = if p + 1 >= hi { lo } else { p + 1 };
            if !self.installed.values().any(|&v| v == p) {
                return Ok(p);
            }
        }
        bail!("more than {} routing rules", hi - lo)
    }

    /// Removes what this daemon installed (a deliberate stop: the policies
    /// go with it), and its state file.
    pub fn teardown(&mut self) {
        self.own_fwmark = true;
        self.undo_rules();
        flush_table(self.params.table);
        let _ = run(
            "nft",
            &["delete", "table", "inet", &self.params.nft_table()],
        );
        let _ = std::fs::remove_file(&self.state_file);
    }
}

/// Flushes a routing table, `unreachable` routes included.
fn flush_table(table: u32) {
    let t = table.to_string();
    for f in ["-4", "-6"] {
        let _ = run("ip", &[f, "route", "flush", "table", &t]);
        // `flush` leaves IPv6 `unreachable` routes in place: delete them.
        for _ in 0..4 {
            if run(
                "ip",
                &[f, "route", "del", "unreachable", "default", "table", &t],
            )
            .is_err()
            {
                break;
            }
        }
    }
}

/// `ipsecd --cleanup`: removes everything a daemon with these parameters
/// may have installed, recorded or not (rules in its preference range, its
/// table, its nft table, a leftover TUN). For the operator who knows no
/// ipsecd uses them.
pub fn cleanup(p: &NetParams) {
    for f in ["-4", "-6"] {
        for (pref, _) in rules_shown(f) {
            if (p.pref_base..p.pref_base + PREF_RANGE).contains(&pref) {
                let _ = run("ip", &[f, "rule", "del", "pref", &pref.to_string()]);
            }
        }
    }
    flush_table(p.table);
    let _ = run("nft", &["delete", "table", "inet", &p.nft_table()]);
    // A non-persistent TUN vanishes with its last descriptor; a TUN of the
    // same name that is still there is a leftover (e.g. made persistent).
    let _ = run("ip", &["link", "del", &p.tun]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sadb::{Databases, Timestamp};

    fn params() -> NetParams {
        NetParams {
            tun: "ipsec0".into(),
            table: 100,
            pref_base: 1000,
            mark: 0x1,
            advmss: 1360,
        }
    }

    #[test]
    fn state_round_trip() {
        let p = params();
        assert_eq!(NetParams::from_state(&p.to_state()), Some(p.clone()));
        assert_eq!(NetParams::from_state("tun=x\n"), None);
        let st = Installed {
            pid: 42,
            params: Some(p),
            half: 1,
            rules: vec![(
                RuleSpec {
                    family: "-6",
                    words: vec!["to".into(), "2001:db8::2/128".into()],
                },
                1507,
            )],
        };
        assert_eq!(Installed::from_state(&st.to_state()), st);
        // Garbage lines are skipped, not fatal.
        let junk = Installed::from_state("pid=x\nrule=-5 1 to\nrule=-4 y\nhalf=7\n");
        assert_eq!((junk.pid, junk.half, junk.rules.len()), (0, 0, 0));
    }

    #[test]
    fn plan_from_the_seed_example() {
        let mut db = Databases::new();
        db.apply_script(
            r#"
spdadd 192.168.0.10/32[5066] 192.168.0.11/32[5064] udp -P in ipsec esp/transport//require;
spdadd 192.168.0.11/32[5062] 192.168.0.10/32[5068] udp -P out ipsec esp/transport//unique:1;
spdadd 192.168.0.11/32[5060] 192.168.0.10/32[5060] udp -P out none;
spdadd 2001:db8::1/128 2001:db8::2/128 any -P out discard;
"#,
            Timestamp(0),
        )
        .unwrap();
        let plan = plan(db.spd(), &params());
        let words: Vec<String> = plan
            .rules
            .iter()
            .map(|r| format!("{} {}", r.family, r.words.join(" ")))
            .collect();
        assert_eq!(
            words,
            [
                // ICMP errors to the peer of the protected flow (RFC 4301 §6.2).
                "-4 to 192.168.0.10/32 ipproto icmp",
                "-4 to 192.168.0.10/32 ipproto udp sport 5062 dport 5068",
                "-4 to 192.168.0.10/32 ipproto udp sport 5064 dport 5066",
                "-6 to 2001:db8::2/128",
            ]
        );
        assert_eq!(
            plan.input,
            [
                "iifname != \"ipsec0\" ip saddr 192.168.0.10/32 ip daddr 192.168.0.11/32 meta l4proto udp udp sport 5066 udp dport 5064 counter drop"
            ]
        );
        // The port guard and the ICMP-error guard of the protected flow.
        assert_eq!(plan.output.len(), 2);
    }
}
