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
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use ipsec_esp::udp::{UdpPayload, classify};
use ipsec_esp::wire::{self, proto};
use ipsec_esp::{Error as EspError, IvSource, Mode, Protocol, Spi};
use sadb::{
    Databases, ExpireKind, Inbound, MAX_BUNDLE, NATT_PORT, Outbound, PacketSelector, SaId, SaState,
    Timestamp, UpperInfo,
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
    match linktype {
        pcap::LINKTYPE_ETHERNET => {
            let mut off = 12;
            loop {
                let t = u16::from_be_bytes([*data.get(off)?, *data.get(off + 1)?]);
                match t {
                    // 802.1Q / QinQ tags.
                    0x8100 | 0x88a8 => off += 4,
                    0x0800 | 0x86dd => {
                        return Some(Link {
                            ip: off + 2,
                            ethertype: Some(off),
                        });
                    }
                    _ => return None,
                }
            }
        }
        _ => Some(Link {
            ip: 0,
            ethertype: None,
        }),
    }
}

/// The IP packet without link-layer padding (its length from the IP header).
fn ip_packet(data: &[u8]) -> Result<&[u8], String> {
    let len = match data.first().map(|v| v >> 4) {
        Some(4) => usize::from(u16::from_be_bytes([
            *data.get(2).ok_or("truncated IPv4 header")?,
            *data.get(3).ok_or("truncated IPv4 header")?,
        ])),
        Some(6) => {
            40 + usize::from(u16::from_be_bytes([
                *data.get(4).ok_or("truncated IPv6 header")?,
                *data.get(5).ok_or("truncated IPv6 header")?,
            ]))
        }
        Some(v) => return Err(format!("IP version {v}")),
        None => return Err("empty packet".into()),
    };
    data.get(..len)
        .ok_or_else(|| format!("IP length {len} exceeds the {} captured bytes", data.len()))
}

/// The RFC 4301 §4.4.1.1 selector fields of an IP packet.
fn selector(ip: &[u8]) -> Result<PacketSelector, String> {
    let bad = |what: &str| format!("malformed packet: {what}");
    let (src, dst, mut nh, mut off, first_fragment) = match ip.first().map(|v| v >> 4) {
        Some(4) => {
            let h = ip.get(..20).ok_or_else(|| bad("IPv4 header"))?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let frag_off = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
            let s: [u8; 4] = [h[12], h[13], h[14], h[15]];
            let d: [u8; 4] = [h[16], h[17], h[18], h[19]];
            (IpAddr::from(s), IpAddr::from(d), h[9], ihl, frag_off == 0)
        }
        Some(6) => {
            let h = ip.get(..40).ok_or_else(|| bad("IPv6 header"))?;
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&h[8..24]);
            d.copy_from_slice(&h[24..40]);
            (IpAddr::from(s), IpAddr::from(d), h[6], 40, true)
        }
        _ => return Err(bad("not IPv4 or IPv6")),
    };
    let mut first = first_fragment;
    if ip.first().map(|v| v >> 4) == Some(6) {
        // Skip Hop-by-Hop, Routing, Destination Options and Fragment headers.
        while matches!(nh, 0 | 43 | 60 | 44) {
            let next = *ip.get(off).ok_or_else(|| bad("IPv6 extension header"))?;
            if nh == 44 {
                let fo = u16::from_be_bytes([
                    *ip.get(off + 2).ok_or_else(|| bad("fragment header"))?,
                    *ip.get(off + 3).ok_or_else(|| bad("fragment header"))?,
                ]) >> 3;
                first = fo == 0;
                off += 8;
            } else {
                let l = *ip
                    .get(off + 1)
                    .ok_or_else(|| bad("IPv6 extension header"))?;
                off += (usize::from(l) + 1) * 8;
            }
            nh = next;
        }
    }
    let l4 = ip.get(off..).unwrap_or(&[]);
    let upper = if !first {
        // RFC 4301 §4.4.1.1: non-initial fragments carry no ports (OPAQUE).
        UpperInfo::None
    } else {
        match nh {
            6 | 17 | 132 | 136 if l4.len() >= 4 => UpperInfo::Ports {
                src: u16::from_be_bytes([l4[0], l4[1]]),
                dst: u16::from_be_bytes([l4[2], l4[3]]),
            },
            1 | 58 if l4.len() >= 2 => UpperInfo::Icmp {
                icmp_type: l4[0],
                code: l4[1],
            },
            _ => UpperInfo::None,
        }
    };
    Ok(PacketSelector {
        src,
        dst,
        protocol: nh,
        upper,
    })
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
    fn drop(reason: impl Into<String>, sas: Vec<(Spi, Option<u64>)>) -> Verdict {
        Verdict {
            out: None,
            result: "dropped",
            sas,
            reason: reason.into(),
            failed: true,
        }
    }
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

fn encap_packet(db: &mut Databases, ivs: &mut Ivs, rec: &Record, linktype: u32) -> Verdict {
    let now = Timestamp(u64::from(rec.ts_sec));
    let Some(l) = link(linktype, &rec.data) else {
        return Verdict {
            out: Some(rec.data.clone()),
            result: "passed",
            sas: Vec::new(),
            reason: "not IP".into(),
            failed: false,
        };
    };
    let ip = match ip_packet(rec.data.get(l.ip..).unwrap_or(&[])) {
        Ok(ip) => ip,
        Err(e) => return Verdict::drop(format!("malformed packet: {e}"), Vec::new()),
    };
    let sel = match selector(ip) {
        Ok(s) => s,
        Err(e) => return Verdict::drop(e, Vec::new()),
    };
    let bundle = match db.outbound(&sel, now) {
        Outbound::NoPolicy => {
            return Verdict {
                out: Some(rec.data.clone()),
                result: "clear",
                sas: Vec::new(),
                reason: "no policy".into(),
                failed: false,
            };
        }
        Outbound::Bypass { policy } => {
            return Verdict {
                out: Some(rec.data.clone()),
                result: "bypass",
                sas: Vec::new(),
                reason: format!("policy {policy} (none)"),
                failed: false,
            };
        }
        Outbound::Discard { policy } => {
            return Verdict {
                failed: false,
                ..Verdict::drop(format!("policy {policy} discard"), Vec::new())
            };
        }
        Outbound::NoSa { policy, request } => {
            return Verdict::drop(
                format!(
                    "no SA for request {} of policy {policy} (fail closed, not sent in clear)",
                    request + 1
                ),
                Vec::new(),
            );
        }
        Outbound::Protect { bundle, .. } => bundle,
    };
    let (mut head, mut tail) = (0, 0);
    for id in bundle.iter() {
        if let Some(e) = db.sad.get(&id) {
            head += e.sa().headroom();
            tail += e.sa().tailroom();
        }
    }
    let mut buf = vec![0u8; head + ip.len() + tail];
    let Some(dst) = buf.get_mut(head..head + ip.len()) else {
        return Verdict::drop("internal: buffer", Vec::new());
    };
    dst.copy_from_slice(ip);
    let mut range = head..head + ip.len();
    let mut sas = Vec::new();
    for id in bundle.iter() {
        let Some(entry) = db.sad.get_mut(&id) else {
            return Verdict::drop(format!("SA spi 0x{:08x} vanished", id.spi.0), sas);
        };
        let bytes = range.len() as u64;
        match entry.sa_mut().encap_range(&mut buf, range.clone(), ivs) {
            Ok(r) => {
                range = r;
                sas.push((id.spi, Some(entry.sa().seq())));
                entry.record_packet(bytes, now);
            }
            Err(e) => {
                sas.push((id.spi, None));
                return Verdict::drop(esp_error_reason(&e), sas);
            }
        }
    }
    if ivs.failed() {
        return Verdict::drop("cannot read /dev/urandom for the IV", sas);
    }
    Verdict {
        out: Some(rebuild(&rec.data, &l, buf.get(range).unwrap_or(&[]))),
        result: "protected",
        sas,
        reason: String::new(),
        failed: false,
    }
}

/// The SPI and sequence number in an ESP or AH header.
fn spi_seq(hdr: &[u8], protocol: Protocol) -> Option<(Spi, u32)> {
    let at =
        |i: usize| -> Option<u32> { Some(u32::from_be_bytes(hdr.get(i..i + 4)?.try_into().ok()?)) };
    match protocol {
        // RFC 4303 §2: SPI, Sequence Number.
        Protocol::Esp => Some((Spi(at(0)?), at(4)?)),
        // RFC 4302 §2: Next Header, Payload Len, Reserved, SPI, Sequence Number.
        Protocol::Ah => Some((Spi(at(4)?), at(8)?)),
    }
}

fn decap_packet(db: &mut Databases, rec: &Record, linktype: u32) -> Verdict {
    let now = Timestamp(u64::from(rec.ts_sec));
    let Some(l) = link(linktype, &rec.data) else {
        return Verdict {
            out: Some(rec.data.clone()),
            result: "passed",
            sas: Vec::new(),
            reason: "not IP".into(),
            failed: false,
        };
    };
    let ip = match ip_packet(rec.data.get(l.ip..).unwrap_or(&[])) {
        Ok(ip) => ip,
        Err(e) => return Verdict::drop(format!("malformed packet: {e}"), Vec::new()),
    };
    let mut buf = ip.to_vec();
    let mut range = 0..buf.len();
    let mut applied: Vec<SaId> = Vec::new();
    let mut sas = Vec::new();
    let mut note = "";
    loop {
        let pkt = buf.get(range.clone()).unwrap_or(&[]);
        let chain = match wire::locate_inbound(pkt) {
            Ok(c) => c,
            // A fragment, or something else ipsec-esp cannot locate: judged
            // by the policy check below like any clear packet.
            Err(EspError::Fragment) if applied.is_empty() => break,
            Err(e) => return Verdict::drop(format!("malformed packet: {e}"), sas),
        };
        let hl = chain.header_len;
        let l4 = pkt.get(hl..chain.total_len).unwrap_or(&[]);
        // (protocol, offset of the ESP/AH header, UDP-encapsulated)
        let (protocol, hdr, udp) = match chain.next_header {
            proto::ESP => (Protocol::Esp, hl, false),
            proto::AH => (Protocol::Ah, hl, false),
            proto::UDP if l4.len() >= 8 => {
                let sport = u16::from_be_bytes([l4[0], l4[1]]);
                let dport = u16::from_be_bytes([l4[2], l4[3]]);
                // RFC 3948 §2: ESP in UDP on the NAT-T port.
                if sport != NATT_PORT && dport != NATT_PORT {
                    break;
                }
                match classify(&l4[8..]) {
                    Ok(UdpPayload::Esp) => (Protocol::Esp, hl + 8, true),
                    Ok(UdpPayload::Ike) => {
                        note = "IKE (RFC 3948 non-ESP marker), ";
                        break;
                    }
                    Ok(UdpPayload::Keepalive) => {
                        note = "NAT-keepalive, ";
                        break;
                    }
                    Err(_) => break,
                }
            }
            _ => break,
        };
        if applied.len() >= MAX_BUNDLE {
            return Verdict::drop("more nested IPsec headers than a bundle holds", sas);
        }
        let Some((spi, seql)) = spi_seq(pkt.get(hdr..).unwrap_or(&[]), protocol) else {
            return Verdict::drop(
                format!("malformed packet: truncated {}", protocol.name()),
                sas,
            );
        };
        let dst = match selector(pkt) {
            Ok(s) => s.dst,
            Err(e) => return Verdict::drop(e, sas),
        };
        let id = SaId { dst, protocol, spi };
        let Some(entry) = db.sad.get_mut(&id) else {
            sas.push((spi, Some(u64::from(seql))));
            return Verdict::drop(
                format!(
                    "no SA for {} dst {dst} spi 0x{:08x}",
                    protocol.name(),
                    spi.0
                ),
                sas,
            );
        };
        if entry.state() == SaState::Dead {
            sas.push((spi, Some(u64::from(seql))));
            return Verdict::drop("SA is dead (hard lifetime)", sas);
        }
        if udp && entry.sa().udp_encap().is_none() {
            // ESP in UDP for an SA installed as plain `esp` (as strongSwan's
            // libipsec uses them): remove the UDP header so the packet is
            // plain ESP. The ICV covers the ESP packet only (RFC 4303 §2),
            // so this changes nothing that is authenticated.
            let start = range.start;
            buf.copy_within(start..start + hl, start + 8);
            range.start += 8;
            let p = buf.get_mut(range.clone()).unwrap_or(&mut []);
            if let Some(b) = p.get_mut(chain.nh_offset) {
                *b = proto::ESP;
            }
            let total = chain.total_len - 8;
            if let Err(e) = wire::fix_ip_length(p, chain.version, total) {
                return Verdict::drop(format!("malformed packet: {e}"), sas);
            }
            range.end = range.start + total;
        } else {
            range.end = range.start + chain.total_len;
        }
        let bytes = range.len() as u64;
        let p = buf.get_mut(range.clone()).unwrap_or(&mut []);
        match entry.sa_mut().decap(p) {
            Ok(d) => {
                sas.push((spi, Some(d.seq)));
                entry.record_packet(bytes, now);
                applied.push(id);
                range = range.start + d.range.start..range.start + d.range.end;
            }
            Err(e) => {
                match e {
                    EspError::IcvMismatch { .. } => entry.record_icv_failure(),
                    EspError::ReplayedSequence { .. } | EspError::SequenceTooOld { .. } => {
                        entry.record_replay_drop()
                    }
                    _ => {}
                }
                sas.push((spi, Some(u64::from(seql))));
                return Verdict::drop(esp_error_reason(&e), sas);
            }
        }
    }
    let inner = buf.get(range).unwrap_or(&[]);
    let sel = match selector(inner) {
        Ok(s) => s,
        Err(e) => return Verdict::drop(e, sas),
    };
    match db.inbound_check(&sel, &applied, now) {
        Inbound::Accept { policy } => Verdict {
            out: Some(if applied.is_empty() {
                rec.data.clone()
            } else {
                rebuild(&rec.data, &l, inner)
            }),
            result: if applied.is_empty() {
                "clear"
            } else {
                "decapsulated"
            },
            sas,
            reason: match policy {
                Some(p) => format!("{note}policy {p}"),
                None => format!("{note}no policy"),
            },
            failed: false,
        },
        Inbound::Reject { policy } => Verdict::drop(
            if applied.is_empty() {
                format!("clear text refused by policy {policy}")
            } else {
                format!("SAs applied do not satisfy policy {policy}")
            },
            sas,
        ),
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
                },
                ev.id.protocol.name(),
                ev.id.dst,
                ev.id.spi.0,
                ev.reqid
            );
        }
        let v = if encap {
            encap_packet(&mut db, &mut ivs, rec, cap.linktype)
        } else {
            decap_packet(&mut db, rec, cap.linktype)
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
    for e in db.sad.in_insertion_order() {
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
