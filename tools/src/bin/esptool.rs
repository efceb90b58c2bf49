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
//! Link types: Ethernet (the frame header is kept, its EtherType updated
//! when the IP version changes) and raw IP (101, 228, 229). Each record's
//! timestamp is the `now` of the databases (lifetimes run in capture time).
//! One line per packet (index, result, SPI, sequence number, reason), then a
//! table of SA counters (no keys are printed).
//!
//! IVs come from /dev/urandom; `--deterministic-iv` makes them a counter,
//! for reproducible research output only: predictable CBC IVs break
//! confidentiality (RFC 3602 §2.2), never use it on a live link.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use ipsec_esp::udp::UdpPayload;
use ipsec_esp::{Error as EspError, IvSource, Mode, Spi};
use sadb::{
    Databases, DiscardReason, DropReason, ExpireKind, Incoming, MAX_BUNDLE, Outgoing, Received,
    SaTrace, Timestamp,
};
use tools::pcap::{self, Capture, Record};

/// `println!` that ignores a closed stdout (e.g. piped into `head`).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
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
        Link types: Ethernet (1), raw IP (101, 228, 229). Exit status: 0 when every packet \
        was processed (drops are results), 1 with --strict if any packet failed, 2 for usage, \
        configuration or IO errors."
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
    /// setkey(8) script with the SAs (`add`) and policies (`spdadd`).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Input libpcap file.
    #[arg(long = "in", value_name = "IN.pcap")]
    input: PathBuf,
    /// Output libpcap file (same link type): the packets that were not dropped.
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

/// Where the IP packet is in a record.
struct Link {
    /// Offset of the IP header.
    ip: usize,
    /// Offset of the EtherType to update (Ethernet only).
    ethertype: Option<usize>,
}

/// Finds the IP packet in a record; `None` for non-IP frames (ARP …).
fn link(linktype: u32, data: &[u8]) -> Option<Link> {
    use etherparse::{EtherType, Ethernet2Slice, SingleVlanSlice};
    if linktype != pcap::LINKTYPE_ETHERNET {
        return Some(Link {
            ip: 0,
            ethertype: None,
        });
    }
    let eth = Ethernet2Slice::from_slice_without_fcs(data).ok()?;
    let (mut off, mut t, mut rest) = (12, eth.ether_type(), eth.payload_slice());
    loop {
        match t {
            // 802.1Q / QinQ tags.
            EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME => {
                let v = SingleVlanSlice::from_slice(rest).ok()?;
                off += 4;
                t = v.ether_type();
                rest = v.payload_slice();
            }
            EtherType::IPV4 | EtherType::IPV6 => {
                return Some(Link {
                    ip: off + 2,
                    ethertype: Some(off),
                });
            }
            _ => return None,
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

    fn pass(data: &[u8], result: &'static str, reason: impl Into<String>) -> Verdict {
        Verdict {
            out: Some(data.to_vec()),
            result,
            sas: Vec::new(),
            reason: reason.into(),
            failed: false,
        }
    }
}

fn spis(t: &SaTrace) -> Vec<(Spi, Option<u64>)> {
    t.iter().map(|u| (u.id.spi, u.seq)).collect()
}

/// Rebuilds the record: the link-layer header (EtherType updated to the
/// new IP version) followed by the new IP packet.
fn rebuild(data: &[u8], l: &Link, ip: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(l.ip + ip.len());
    out.extend_from_slice(data.get(..l.ip).unwrap_or(&[]));
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

fn encap_packet(db: &Databases, ivs: &mut Ivs, rec: &Record, linktype: u32) -> Verdict {
    let now = Timestamp(u64::from(rec.ts_sec));
    let Some(l) = link(linktype, &rec.data) else {
        return Verdict::pass(&rec.data, "passed", "not IP");
    };
    let (mut buf, range) = framed(rec.data.get(l.ip..).unwrap_or(&[]));
    let none = SaTrace::default();
    match db.protect(&mut buf, range, now, ivs) {
        Outgoing::Protected(p) => {
            if ivs.failed() {
                return Verdict::drop("cannot read /dev/urandom for the IV", &p.sas);
            }
            Verdict {
                out: Some(rebuild(&rec.data, &l, buf.get(p.packet).unwrap_or(&[]))),
                result: "protected",
                sas: spis(&p.sas),
                reason: String::new(),
                failed: false,
            }
        }
        Outgoing::Bypass { policy: None } => Verdict::pass(&rec.data, "clear", "no policy"),
        Outgoing::Bypass {
            policy: Some(policy),
        } => Verdict::pass(&rec.data, "bypass", format!("policy {policy} (none)")),
        Outgoing::Discard(d) => {
            let policy = d.policy.map_or_else(String::new, |p| p.to_string());
            let reason = match d.reason {
                DiscardReason::Policy => {
                    return Verdict {
                        failed: false,
                        ..Verdict::drop(format!("policy {policy} discard"), &none)
                    };
                }
                DiscardReason::NoSa { request } => format!(
                    "no SA for request {} of policy {policy} (fail closed, not sent in clear)",
                    request + 1
                ),
                DiscardReason::SaExpired { request } => format!(
                    "SA for request {} of policy {policy} is past its hard lifetime (fail closed, not sent in clear)",
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

fn decap_packet(db: &Databases, rec: &Record, linktype: u32) -> Verdict {
    let now = Timestamp(u64::from(rec.ts_sec));
    let Some(l) = link(linktype, &rec.data) else {
        return Verdict::pass(&rec.data, "passed", "not IP");
    };
    let (mut buf, range) = framed(rec.data.get(l.ip..).unwrap_or(&[]));
    match db.unprotect(&mut buf, range, Received::Ip, now) {
        Incoming::Deliver(d) => {
            let note = match d.non_esp {
                Some(UdpPayload::Ike) => "IKE (RFC 3948 non-ESP marker), ",
                Some(UdpPayload::Keepalive) => "NAT-keepalive, ",
                _ => "",
            };
            let reason = match d.policy {
                Some(p) => format!("{note}policy {p}"),
                None => format!("{note}no policy"),
            };
            if d.sas.is_empty() {
                return Verdict::pass(&rec.data, "clear", reason);
            }
            Verdict {
                out: Some(rebuild(&rec.data, &l, buf.get(d.packet).unwrap_or(&[]))),
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
                    format!("SAs applied do not satisfy policy {policy}")
                }
                DropReason::ClearRefused { policy } => {
                    format!("clear text refused by policy {policy}")
                }
                DropReason::IcmpQuote { policy } => format!(
                    "ICMP error quoting a flow the SAs it came through do not protect (policy {})",
                    policy.map_or_else(|| "none".to_string(), |p| p.to_string())
                ),
                other => format!("{other:?}"),
            };
            Verdict::drop(reason, &d.sas)
        }
    }
}

fn read_config(path: &Path, first_ts: Timestamp) -> Result<Databases> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let mut db = Databases::new();
    if let Err(e) = db.apply_script(&text, first_ts) {
        bail!("{}: {e}", path.display());
    }
    Ok(db)
}

fn run(encap: bool, o: &Opts) -> Result<usize> {
    let bytes =
        std::fs::read(&o.input).with_context(|| format!("cannot read {}", o.input.display()))?;
    let cap = pcap::parse(&bytes).with_context(|| format!("{}", o.input.display()))?;
    match cap.linktype {
        pcap::LINKTYPE_ETHERNET
        | pcap::LINKTYPE_RAW
        | pcap::LINKTYPE_IPV4
        | pcap::LINKTYPE_IPV6 => {}
        t => bail!(
            "{}: link type {t} is not supported (Ethernet 1, raw IP 101, 228, 229)",
            o.input.display()
        ),
    }
    let first_ts = Timestamp(cap.records.first().map_or(0, |r| u64::from(r.ts_sec)));
    let mut db = read_config(&o.config, first_ts)?;
    let mut ivs = Ivs::new(o.deterministic_iv)?;
    let mut out = Capture {
        linktype: cap.linktype,
        nanos: cap.nanos,
        records: Vec::with_capacity(cap.records.len()),
    };
    let mut failed = 0;
    let mut written = 0;
    for (i, rec) in cap.records.iter().enumerate() {
        // Lifetimes run in capture time (RFC 2367 §2.3.5).
        for ev in db.expire(Timestamp(u64::from(rec.ts_sec))) {
            say!(
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
            encap_packet(&db, &mut ivs, rec, cap.linktype)
        } else {
            decap_packet(&db, rec, cap.linktype)
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
        say!("{line}");
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
    std::fs::write(&o.output, pcap::write(&out))
        .with_context(|| format!("cannot write {}", o.output.display()))?;
    say!(
        "packets: {} in, {} written, {} dropped, {} failed",
        cap.records.len(),
        written,
        cap.records.len() - written,
        failed
    );
    say!("SA counters:");
    say!(
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
