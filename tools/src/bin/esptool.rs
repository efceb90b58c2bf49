//! `esptool`: applies the policies and SAs of a setkey file to every packet
//! of a pcap, the researcher's pcap-in / pcap-out tool and our interop
//! harness.
//!
//! - `esptool encap --config FILE --in IN.pcap --out OUT.pcap`: each packet
//!   goes through the outbound SPD (RFC 4301 §5.1): `discard` drops it,
//!   `none` (or no policy) copies it unchanged, `ipsec` protects it with the
//!   SAs `sadb` chooses; a missing SA drops it (fail closed: it is never
//!   written in clear).
//! - `esptool decap …`: ESP, AH and ESP in UDP (RFC 3948, port 4500)
//!   packets are looked up in the SAD by (destination, protocol, SPI),
//!   decapsulated (ICV, replay window, padding), and the result is checked
//!   against the inbound policies (RFC 4301 §5.2); clear packets are checked
//!   too, so clear text a `require` policy covers is dropped.
//!
//! Input: pcap or pcapng (several interfaces of different link types
//! too). Link types: Ethernet, Linux cooked v1 and v2 (the link header is
//! kept, its EtherType or protocol updated when the IP version changes)
//! and raw IP (101, 228, 229). The output is a pcap of the input's link
//! type, or raw IP (101) when the input's packets have different ones. Each
//! record's timestamp is the `now` of the databases (lifetimes run in
//! capture time). One line per packet (index, result, SPI, sequence
//! number, reason; policies named by their config line, `FILE:LINE`), then
//! a table of SA counters (no keys are printed). `-` is stdin for `--in`
//! or `--config` and stdout for `--out` (the report then goes to stderr).
//! Exit status (docs/cli.md): 0 done, 1 a packet failed under `--strict`,
//! 2 usage, configuration or IO error.
//!
//! IVs come from /dev/urandom; `--deterministic-iv` makes them a counter,
//! for reproducible research output only: predictable CBC IVs break
//! confidentiality (RFC 3602 §2.2), never use it on a live link.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use ipsec_esp::udp::UdpPayload;
use ipsec_esp::{Error as EspError, IvSource, Mode, Spi};
use sadb::ast::Direction;
use sadb::{
    Databases, DiscardReason, DropReason, ExpireKind, Incoming, MAX_BUNDLE, Outgoing, Pos,
    Received, SaTrace, Selector, Statement, Timestamp,
};
use tools::cli::{self, Report};
use tools::pcap::{self, Capture, IpAt, Packet, Record};

/// One report line (stdout, or stderr when stdout carries the output
/// pcap); a closed stream (e.g. piped into `head`) is ignored.
macro_rules! say {
    ($r:expr, $($t:tt)*) => {
        $r.line(format_args!($($t)*))
    };
}

#[derive(Parser)]
#[command(
    name = "esptool",
    version,
    about = "Apply a setkey file's policies and SAs to every packet of a pcap (ESP/AH, RFC 4303/4302)",
    long_about = "Apply a setkey file's policies and SAs to every packet of a pcap.\n\n\
        encap: outbound SPD lookup per packet; discard drops, none copies, ipsec protects \
        with the SAs chosen as the kernel would (a missing SA drops the packet: fail closed).\n\
        decap: ESP, AH and ESP-in-UDP (port 4500) packets are decapsulated with the SA named \
        by (destination, protocol, SPI), then checked against the inbound policies; clear \
        packets covered by a require policy are dropped.\n\n\
        Input: pcap or pcapng; link types Ethernet (1), raw IP (101, 228, 229), Linux cooked \
        v1 (113) and v2 (276). The output is a pcap of the input's link type, or raw IP (101) \
        when the input mixes link types. Policies are named by their config line (FILE:LINE). \
        `-` is stdin for --in or --config and stdout for --out (the report then goes to \
        stderr).\n\n\
        Exit status: 0 when every packet was processed (drops are results), 1 with --strict if \
        any packet failed, 2 for usage, configuration or IO errors (one line naming the file).",
    after_help = "Examples:\n  \
        esptool encap --config sa.conf --in plain.pcapng --out esp.pcap\n  \
        esptool decap --strict --config sa.conf --in esp.pcap --out plain.pcap\n  \
        tcpdump -i any -w - esp | esptool decap --config sa.conf --in - --out - | tshark -r -"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Protect every packet as the outbound (`out`) policies say.
    Encap(Opts),
    /// Decapsulate ESP/AH packets and check everything against the `in` policies.
    Decap(Opts),
}

#[derive(Args)]
struct Opts {
    /// setkey(8) script with the SAs (`add`) and policies (`spdadd`); `-`
    /// for stdin.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Input capture, pcap or pcapng; `-` for stdin.
    #[arg(long = "in", value_name = "IN.pcap")]
    input: PathBuf,
    /// Output pcap (the input's link type, raw IP if it mixes them): the
    /// packets that were not dropped; `-` for stdout.
    #[arg(long = "out", value_name = "OUT.pcap")]
    output: PathBuf,
    /// Exit with status 1 if any packet failed (dropped for any reason but a
    /// `discard` policy, or malformed).
    #[arg(long)]
    strict: bool,
    /// IVs from a counter instead of /dev/urandom, for reproducible
    /// research output. NEVER use this on a live link: predictable CBC IVs
    /// break confidentiality (RFC 3602 §2.2).
    #[arg(long)]
    deterministic_iv: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (encap, opts) = match cli.command {
        Command::Encap(o) => (true, o),
        Command::Decap(o) => (false, o),
    };
    match run(encap, &opts) {
        Ok(failed) if failed > 0 && opts.strict => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("esptool: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// IVs from /dev/urandom (buffered), or from a counter.
enum Ivs {
    Urandom {
        file: File,
        buf: Box<[u8; 4096]>,
        pos: usize,
        failed: bool,
    },
    Counter(u64),
}

impl Ivs {
    fn new(deterministic: bool) -> Result<Ivs> {
        if deterministic {
            return Ok(Ivs::Counter(0));
        }
        let file = File::open("/dev/urandom").context("cannot open /dev/urandom for IVs")?;
        Ok(Ivs::Urandom {
            file,
            buf: Box::new([0; 4096]),
            pos: 4096,
            failed: false,
        })
    }

    fn failed(&self) -> bool {
        matches!(self, Ivs::Urandom { failed: true, .. })
    }
}

impl IvSource for Ivs {
    fn fill_iv(&mut self, iv: &mut [u8]) {
        match self {
            Ivs::Counter(n) => {
                *n += 1;
                let b = n.to_be_bytes();
                for (i, x) in iv.iter_mut().enumerate() {
                    *x = b.get(i % 8).copied().unwrap_or(0) ^ (i as u8);
                }
            }
            Ivs::Urandom {
                file,
                buf,
                pos,
                failed,
            } => {
                for x in iv.iter_mut() {
                    if *pos >= buf.len() {
                        if file.read_exact(&mut buf[..]).is_err() {
                            // The packet is dropped by the caller (see `failed`).
                            *failed = true;
                        }
                        *pos = 0;
                    }
                    *x = buf.get(*pos).copied().unwrap_or(0);
                    *pos += 1;
                }
            }
        }
    }
}

/// What happened to one packet.
struct Verdict {
    /// Bytes to write (the whole record), or `None` when dropped.
    out: Option<Vec<u8>>,
    /// `protected`, `bypass`, `dropped`, …
    result: &'static str,
    /// (SPI, sequence number) of the SAs involved.
    sas: Vec<(Spi, Option<u64>)>,
    /// Why (for drops and passes).
    reason: String,
    /// Counts toward `--strict`.
    failed: bool,
}

impl Verdict {
    fn drop(reason: impl Into<String>, sas: &SaTrace) -> Verdict {
        Verdict {
            out: None,
            result: "dropped",
            sas: spis(sas),
            reason: reason.into(),
            failed: true,
        }
    }

    /// The packet goes out unchanged (`bytes`: the record, or its IP packet
    /// for a raw IP output).
    fn pass(bytes: &[u8], result: &'static str, reason: impl Into<String>) -> Verdict {
        Verdict {
            out: Some(bytes.to_vec()),
            result,
            sas: Vec::new(),
            reason: reason.into(),
            failed: false,
        }
    }

    /// A frame that carries no IP packet: copied, or left out of a raw IP
    /// output (which cannot hold it).
    fn not_ip(data: &[u8], raw: bool) -> Verdict {
        if raw {
            return Verdict {
                out: None,
                result: "passed",
                sas: Vec::new(),
                reason: "not IP (left out of the raw IP output)".into(),
                failed: false,
            };
        }
        Verdict::pass(data, "passed", "not IP")
    }
}

/// What the report says and writes around the packets: policies named by
/// their config line, the output's framing.
struct Ctx {
    /// `FILE:LINE` of each policy id.
    policies: HashMap<u32, String>,
    /// The output is raw IP (the input mixes link types).
    raw: bool,
}

impl Ctx {
    /// A policy as the report names it: `policy FILE:LINE`.
    fn policy(&self, id: u32) -> String {
        match self.policies.get(&id) {
            Some(at) => format!("policy {at}"),
            None => format!("policy id {id}"),
        }
    }

    /// The bytes an unchanged packet is written as.
    fn unchanged<'a>(&self, data: &'a [u8], l: &IpAt) -> &'a [u8] {
        if self.raw {
            data.get(l.offset..).unwrap_or(&[])
        } else {
            data
        }
    }
}

fn spis(t: &SaTrace) -> Vec<(Spi, Option<u64>)> {
    t.iter().map(|u| (u.id.spi, u.seq)).collect()
}

/// Rebuilds the record: the link-layer header (EtherType updated to the
/// new IP version) followed by the new IP packet; the IP packet alone when
/// the output is raw IP.
fn rebuild(data: &[u8], l: &IpAt, ip: &[u8], raw: bool) -> Vec<u8> {
    if raw {
        return ip.to_vec();
    }
    let mut out = Vec::with_capacity(l.offset + ip.len());
    out.extend_from_slice(data.get(..l.offset).unwrap_or(&[]));
    if let Some(off) = l.ethertype {
        let t: u16 = if ip.first().map(|v| v >> 4) == Some(6) {
            0x86dd
        } else {
            0x0800
        };
        if let Some(b) = out.get_mut(off..off + 2) {
            b.copy_from_slice(&t.to_be_bytes());
        }
    }
    out.extend_from_slice(ip);
    out
}

fn esp_error_reason(e: &EspError) -> String {
    match e {
        EspError::IcvMismatch { .. } => format!("ICV failure: {e}"),
        EspError::ReplayedSequence { .. } | EspError::SequenceTooOld { .. } => {
            format!("replay: {e}")
        }
        _ => e.to_string(),
    }
}

/// Room for the headers and trailers of a whole bundle around a packet.
const ROOM: usize = 64 * (MAX_BUNDLE + 1);

/// The record's IP packet in a buffer with room around it.
fn framed(ip: &[u8]) -> (Vec<u8>, std::ops::Range<usize>) {
    let mut buf = vec![0u8; ROOM + ip.len() + ROOM];
    if let Some(b) = buf.get_mut(ROOM..ROOM + ip.len()) {
        b.copy_from_slice(ip);
    }
    (buf, ROOM..ROOM + ip.len())
}

fn encap_packet(db: &Databases, ivs: &mut Ivs, pkt: &Packet, ctx: &Ctx) -> Verdict {
    let rec = &pkt.record;
    let now = Timestamp(u64::from(rec.ts_sec));
    let Some(l) = pcap::locate_ip(pkt.linktype, &rec.data) else {
        return Verdict::not_ip(&rec.data, ctx.raw);
    };
    let (mut buf, range) = framed(rec.data.get(l.offset..).unwrap_or(&[]));
    let none = SaTrace::default();
    match db.protect(&mut buf, range, now, ivs) {
        Outgoing::Protected(p) => {
            if ivs.failed() {
                return Verdict::drop("cannot read /dev/urandom for the IV", &p.sas);
            }
            Verdict {
                out: Some(rebuild(
                    &rec.data,
                    &l,
                    buf.get(p.packet).unwrap_or(&[]),
                    ctx.raw,
                )),
                result: "protected",
                sas: spis(&p.sas),
                reason: String::new(),
                failed: false,
            }
        }
        Outgoing::Bypass { policy: None } => {
            Verdict::pass(ctx.unchanged(&rec.data, &l), "clear", "no policy")
        }
        Outgoing::Bypass {
            policy: Some(policy),
        } => Verdict::pass(
            ctx.unchanged(&rec.data, &l),
            "bypass",
            format!("{} (none)", ctx.policy(policy)),
        ),
        Outgoing::Discard(d) => {
            let policy = d.policy.map_or_else(|| "policy".into(), |p| ctx.policy(p));
            let reason = match d.reason {
                DiscardReason::Policy => {
                    return Verdict {
                        failed: false,
                        ..Verdict::drop(format!("{policy} discard"), &none)
                    };
                }
                DiscardReason::NoSa { request } => format!(
                    "no SA for request {} of {policy} (fail closed, not sent in clear)",
                    request + 1
                ),
                DiscardReason::SaExpired { request } => format!(
                    "SA for request {} of {policy} is past its hard lifetime (fail closed, not sent in clear)",
                    request + 1
                ),
                DiscardReason::SequenceExhausted { id } => format!(
                    "SA spi 0x{:08x} has used up its sequence numbers: replace it",
                    id.spi.0
                ),
                DiscardReason::Malformed(e) => format!("malformed packet: {e}"),
                DiscardReason::Transform { error, .. } => esp_error_reason(&error),
                DiscardReason::AddressMismatch { id } => format!(
                    "transport-mode SA spi 0x{:08x} does not have the packet's addresses",
                    id.spi.0
                ),
                other => format!("{other:?}"),
            };
            Verdict::drop(reason, &d.sas)
        }
    }
}

fn decap_packet(db: &Databases, pkt: &Packet, ctx: &Ctx) -> Verdict {
    let rec = &pkt.record;
    let now = Timestamp(u64::from(rec.ts_sec));
    let Some(l) = pcap::locate_ip(pkt.linktype, &rec.data) else {
        return Verdict::not_ip(&rec.data, ctx.raw);
    };
    let (mut buf, range) = framed(rec.data.get(l.offset..).unwrap_or(&[]));
    match db.unprotect(&mut buf, range, Received::Ip, now) {
        Incoming::Deliver(d) => {
            let note = match d.non_esp {
                Some(UdpPayload::Ike) => "IKE (RFC 3948 non-ESP marker), ",
                Some(UdpPayload::Keepalive) => "NAT-keepalive, ",
                _ => "",
            };
            let reason = match d.policy {
                Some(p) => format!("{note}{}", ctx.policy(p)),
                None => format!("{note}no policy"),
            };
            if d.sas.is_empty() {
                return Verdict::pass(ctx.unchanged(&rec.data, &l), "clear", reason);
            }
            Verdict {
                out: Some(rebuild(
                    &rec.data,
                    &l,
                    buf.get(d.packet).unwrap_or(&[]),
                    ctx.raw,
                )),
                result: "decapsulated",
                sas: spis(&d.sas),
                reason,
                failed: false,
            }
        }
        Incoming::Drop(d) => {
            let reason = match &d.reason {
                DropReason::Malformed(e) => format!("malformed packet: {e}"),
                DropReason::UnknownSa { id } => format!(
                    "no SA for {} dst {} spi 0x{:08x}",
                    id.protocol.name(),
                    id.dst,
                    id.spi.0
                ),
                DropReason::SaExpired { .. } => "SA is dead (hard lifetime)".into(),
                DropReason::Icv { .. } => "ICV failure: ICV mismatch".into(),
                DropReason::Replay { error, .. } | DropReason::Decap { error, .. } => {
                    esp_error_reason(error)
                }
                DropReason::TooManyNested => "more nested IPsec headers than a bundle holds".into(),
                DropReason::Policy { policy } => {
                    format!("SAs applied do not satisfy {}", ctx.policy(*policy))
                }
                DropReason::ClearRefused { policy } => {
                    format!("clear text refused by {}", ctx.policy(*policy))
                }
                DropReason::IcmpQuote { policy } => format!(
                    "ICMP error quoting a flow the SAs it came through do not protect ({})",
                    policy.map_or_else(|| "no policy".to_string(), |p| ctx.policy(p))
                ),
                other => format!("{other:?}"),
            };
            Verdict::drop(reason, &d.sas)
        }
    }
}

/// The databases of a setkey script, and the `FILE:LINE` of the statement
/// that defined each policy still in the SPD (sadb keeps no position in a
/// `Policy`: the statements' positions are mapped to the policies' ids by
/// selector and direction).
fn read_config(path: &Path, first_ts: Timestamp) -> Result<(Databases, HashMap<u32, String>)> {
    let name = cli::name(path);
    let text = cli::read_to_string(path)?;
    let located = |e: sadb::Error| anyhow::anyhow!(cli::located(&name, &e));
    let stmts = sadb::parse(&text).map_err(located)?;
    let mut db = Databases::new();
    db.apply(&stmts, first_ts).map_err(located)?;
    let mut lines: HashMap<(Selector, Direction), Pos> = HashMap::new();
    for st in &stmts {
        match &st.value {
            Statement::SpdAdd(spec) | Statement::SpdUpdate(spec) => {
                lines.insert((sadb::selector_of(spec), spec.policy.direction), st.pos);
            }
            Statement::SpdDelete(spec) => {
                lines.remove(&(sadb::selector_of(spec), spec.policy.direction));
            }
            Statement::SpdFlush => lines.clear(),
            _ => {}
        }
    }
    let names = lines
        .iter()
        .filter_map(|((sel, dir), pos)| {
            let p = db.spd().get(sel, *dir)?;
            Some((p.id, format!("{name}:{}", pos.line)))
        })
        .collect();
    Ok((db, names))
}

fn run(encap: bool, o: &Opts) -> Result<usize> {
    if cli::is_std(&o.input) && cli::is_std(&o.config) {
        bail!("--in and --config cannot both be stdin (-)");
    }
    let report = Report::for_outputs([o.output.as_path()]);
    let trace = pcap::read_supported(&o.input)?;
    let first_ts = Timestamp(
        trace
            .packets
            .first()
            .map_or(0, |p| u64::from(p.record.ts_sec)),
    );
    let (mut db, policies) = read_config(&o.config, first_ts)?;
    let mut ivs = Ivs::new(o.deterministic_iv)?;
    // Several link types cannot share a pcap: raw IP then (docs/cli.md).
    let linktype = trace.linktype();
    let ctx = Ctx {
        policies,
        raw: linktype.is_none(),
    };
    let mut out = Capture {
        linktype: linktype.unwrap_or(pcap::LINKTYPE_RAW),
        nanos: trace.nanos,
        records: Vec::with_capacity(trace.packets.len()),
    };
    let mut failed = 0;
    let mut written = 0;
    for (i, pkt) in trace.packets.iter().enumerate() {
        let rec = &pkt.record;
        // Lifetimes run in capture time (RFC 2367 §2.3.5).
        for ev in db.expire(Timestamp(u64::from(rec.ts_sec))) {
            say!(
                report,
                "- expire {} {} dst {} spi=0x{:08x} reqid={}",
                match ev.kind {
                    ExpireKind::Soft => "soft (dying)",
                    ExpireKind::Hard => "hard (removed)",
                    ExpireKind::Larval => "larval (getspi not completed: removed)",
                },
                ev.id.protocol.name(),
                ev.id.dst,
                ev.id.spi.0,
                ev.reqid
            );
        }
        let v = if encap {
            encap_packet(&db, &mut ivs, pkt, &ctx)
        } else {
            decap_packet(&db, pkt, &ctx)
        };
        let mut line = format!("{} {}", i + 1, v.result);
        for (spi, seq) in &v.sas {
            line.push_str(&format!(" spi=0x{:08x}", spi.0));
            match seq {
                Some(s) => line.push_str(&format!(" seq={s}")),
                None => line.push_str(" seq=-"),
            }
        }
        if !v.reason.is_empty() {
            line.push_str(&format!(" reason: {}", v.reason));
        }
        say!(report, "{line}");
        if v.failed {
            failed += 1;
        }
        if let Some(data) = v.out {
            written += 1;
            out.records.push(Record {
                ts_sec: rec.ts_sec,
                ts_frac: rec.ts_frac,
                data,
            });
        }
    }
    cli::write(&o.output, &pcap::write(&out))?;
    let total = trace.packets.len();
    say!(
        report,
        "packets: {} in, {} written, {} dropped, {} failed",
        total,
        written,
        total - written,
        failed
    );
    say!(report, "SA counters:");
    say!(
        report,
        "{:<6} {:<40} {:<12} {:<9} {:<7} {:>8} {:>10} {:>7} {:>7}",
        "proto",
        "src -> dst",
        "spi",
        "mode",
        "state",
        "packets",
        "bytes",
        "replay",
        "icvfail"
    );
    for e in db.sad().in_insertion_order() {
        let sa = e.sa();
        let c = e.counters();
        say!(
            report,
            "{:<6} {:<40} 0x{:08x} {:<9} {:<7} {:>8} {:>10} {:>7} {:>7}",
            if e.meta().esp_udp {
                "esp-udp"
            } else {
                sa.protocol().name()
            },
            format!("{} -> {}", sa.src(), sa.dst()),
            sa.spi().0,
            match sa.mode() {
                Mode::Transport => "transport",
                Mode::Tunnel => "tunnel",
            },
            e.state().keyword(),
            c.packets,
            c.bytes,
            c.replay_drops,
            c.icv_failures
        );
    }
    Ok(failed)
}
