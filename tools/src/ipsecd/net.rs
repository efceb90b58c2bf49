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
//! Teardown removes every rule whose preference lies in `BASE..BASE+RANGE`,
//! flushes table `T` and deletes the nft table; it works from the parameters
//! alone, so it also cleans up after a crashed run (the parameters are kept
//! in the state file).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use sadb::Spd;
use sadb::ast::Direction;
use sadb::spd::{PolicyAction, Selector};

/// How many rule preferences the daemon owns from its base.
pub const PREF_RANGE: u32 = 1000;

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

/// Installed state: which rule has which preference.
#[derive(Debug)]
pub struct Net {
    /// Parameters.
    pub params: NetParams,
    installed: BTreeMap<RuleSpec, u32>,
    next_pref: u32,
}

impl Net {
    /// Nothing installed yet.
    pub fn new(params: NetParams) -> Net {
        let next_pref = params.pref_base + 10;
        Net {
            params,
            installed: BTreeMap::new(),
            next_pref,
        }
    }

    /// Brings the TUN up and installs the table, the fwmark rules and an
    /// empty nft table.
    pub fn setup(&mut self) -> Result<()> {
        let p = &self.params;
        let t = p.table.to_string();
        let tun = p.tun.as_str();
        // Before `up`: no link-local address, so no router solicitations.
        let _ = run("ip", &["link", "set", tun, "addrgenmode", "none"]);
        run("ip", &["link", "set", tun, "mtu", "65535", "up"])?;
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{tun}/rp_filter"), "0");
        let mss4 = p.advmss.to_string();
        let mss6 = p.advmss.saturating_sub(20).to_string();
        run(
            "ip",
            &[
                "-4", "route", "replace", "default", "dev", tun, "advmss", &mss4, "table", &t,
            ],
        )?;
        run(
            "ip",
            &[
                "-4",
                "route",
                "replace",
                "unreachable",
                "default",
                "metric",
                "4294967295",
                "table",
                &t,
            ],
        )?;
        let v6 = run(
            "ip",
            &[
                "-6", "route", "replace", "default", "dev", tun, "advmss", &mss6, "table", &t,
            ],
        )
        .and_then(|_| {
            run(
                "ip",
                &[
                    "-6",
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
        });
        if let Err(e) = v6 {
            tracing::warn!("IPv6 routes not installed: {e:#}");
        }
        let base = p.pref_base.to_string();
        let mark = format!("{:#x}", p.mark);
        for f in ["-4", "-6"] {
            run(
                "ip",
                &[
                    f, "rule", "add", "pref", &base, "fwmark", &mark, "lookup", "main",
                ],
            )?;
        }
        self.nft(&Plan::default())?;
        Ok(())
    }

    fn nft(&self, plan: &Plan) -> Result<()> {
        let p = &self.params;
        let name = p.nft_table();
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
    /// stale ones go, so no protected flow is ever without a rule.
    pub fn sync(&mut self, plan: &Plan) -> Result<()> {
        let t = self.params.table.to_string();
        for r in &plan.rules {
            if self.installed.contains_key(r) {
                continue;
            }
            let pref = self.alloc_pref()?;
            let ps = pref.to_string();
            let mut args: Vec<&str> = vec![r.family, "rule", "add", "pref", &ps];
            args.extend(r.words.iter().map(String::as_str));
            args.extend(["lookup", &t]);
            run("ip", &args)?;
            self.installed.insert(r.clone(), pref);
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
        Ok(())
    }

    fn alloc_pref(&mut self) -> Result<u32> {
        let lo = self.params.pref_base + 10;
        let hi = self.params.pref_base + PREF_RANGE;
        for _ in 0..PREF_RANGE {
            let p = self.next_pref;
            self.next_pref = if p + 1 >= hi { lo } else { p + 1 };
            if !self.installed.values().any(|&v| v == p) {
                return Ok(p);
            }
        }
        bail!("more than {PREF_RANGE} routing rules")
    }
}

/// Removes everything a daemon with these parameters may have installed
/// (also after a crash): rules in its preference range, its table, its nft
/// table and a leftover TUN. Errors are ignored: absent is the goal.
pub fn teardown(p: &NetParams) {
    for f in ["-4", "-6"] {
        if let Ok(list) = run("ip", &[f, "rule", "show"]) {
            for line in list.lines() {
                let Some((pref, _)) = line.split_once(':') else {
                    continue;
                };
                let Ok(pref) = pref.trim().parse::<u32>() else {
                    continue;
                };
                if (p.pref_base..p.pref_base + PREF_RANGE).contains(&pref) {
                    let _ = run("ip", &[f, "rule", "del", "pref", &pref.to_string()]);
                }
            }
        }
        let t = p.table.to_string();
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
        assert_eq!(NetParams::from_state(&p.to_state()), Some(p));
        assert_eq!(NetParams::from_state("tun=x\n"), None);
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
        assert_eq!(plan.output.len(), 1);
    }
}
