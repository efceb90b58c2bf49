//! `sigcomp compress` / `sigcomp flow`: two endpoints of ours
//! ([`sigcomp::Endpoint`]) exchanging files over a compartment per
//! direction, every message checked byte-exact, and the compression
//! figures in one table. The protocol is all in `Endpoint` (feedback on
//! the wire, TCP framing); this module moves the bytes between the two in
//! memory and prints.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use anyhow::{Result, bail};
use sigcomp::compress::{Compressed, Compressor, Config, Kind, Level};
use sigcomp::{
    CompartmentId, Endpoint, EndpointConfig, Link, Parameters, Received, Resources, StreamId,
};

use crate::pcap;

/// Endpoint parameters of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowParams {
    /// The receiver's decompression_memory_size.
    pub dms: u32,
    /// The receiver's state_memory_size for the compartment.
    pub sms: u32,
    /// The receiver's cycles_per_bit.
    pub cpb: u16,
    /// Compression level.
    pub level: Level,
    /// Both endpoints are ours: the receiver holds our bytecode as a
    /// locally available state and the sender knows it, so it is never
    /// uploaded.
    pub local_bytecode: bool,
    /// With [`Duplex`]: RFC 3321 §5.2 shared compression.
    pub shared: bool,
    /// Over one TCP connection (messages framed, RFC 3320 §4.2.2; the
    /// receiver's UDVM has DMS / 2, §7) instead of UDP.
    pub tcp: bool,
}

impl Default for FlowParams {
    fn default() -> FlowParams {
        FlowParams {
            dms: 8192,
            sms: 8192,
            cpb: 16,
            level: Level::Default,
            local_bytecode: false,
            shared: false,
            tcp: false,
        }
    }
}

impl FlowParams {
    /// The configuration of both endpoints: they offer `dms`, `sms` and
    /// `cpb` and know it of each other by prior agreement (they do not
    /// announce, so the figures are those of the compression alone); with
    /// [`FlowParams::local_bytecode`] each holds our bytecode as a local
    /// state and knows the other does.
    pub fn endpoint_config(&self) -> EndpointConfig {
        EndpointConfig {
            local: Parameters {
                decompression_memory_size: self.dms,
                state_memory_size: self.sms,
                cycles_per_bit: self.cpb,
                version: 2,
            },
            peer: Resources {
                cycles_per_bit: self.cpb,
                decompression_memory_size: self.dms,
                state_memory_size: self.sms,
            },
            level: self.level,
            announce: false,
            local_bytecode: self.local_bytecode,
            peer_has_bytecode: self.local_bytecode,
            shared: self.shared.then_some(self.sms / 2),
            presence_dictionary: true,
        }
    }

    /// The link both ends send on: one TCP connection with
    /// [`FlowParams::tcp`], else datagrams.
    pub fn link(&self) -> Link {
        if self.tcp {
            Link::Stream(StreamId(0))
        } else {
            Link::Datagram
        }
    }
}

/// One message of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The original size.
    pub original: usize,
    /// What was written on the link: the SigComp message, or the original
    /// when plain; over TCP the framed record (RFC 3320 §4.2.2).
    pub wire: Vec<u8>,
    /// What the compressor reported.
    pub info: Compressed,
}

/// Each end's compartment for the other (one peer each).
const PEER: CompartmentId = CompartmentId(1);

/// Two endpoints of ours, 0 (the UE) and 1 (the P-CSCF), each with its
/// compartment for the other, on one link.
struct Pair {
    ends: [Endpoint; 2],
    link: Link,
}

impl Pair {
    fn new(p: FlowParams) -> Result<Pair> {
        let c = p.endpoint_config();
        Ok(Pair {
            ends: [Endpoint::new(c.clone())?, Endpoint::new(c)?],
            link: p.link(),
        })
    }

    /// End `from` sends `msg`; the other end receives it, checks it gives
    /// back `msg` and accepts it. With `ack`, the receiver then sends its
    /// acknowledgement back at once, alone: the reverse traffic of a
    /// one-way flow, not counted in it.
    fn send(&mut self, msg: &[u8], from: usize, ack: bool) -> Result<Sent> {
        let (to, link) = (1 - from, self.link);
        let mut wire = Vec::new();
        let sent = self.end_mut(from)?.send(PEER, msg, link, &mut wire)?;
        self.deliver(to, &wire, Some(msg))?;
        if ack {
            let mut back = Vec::new();
            if self
                .end_mut(to)?
                .acknowledge(PEER, link, &mut back)
                .is_some()
            {
                self.deliver(from, &back, None)?;
            }
        }
        Ok(Sent {
            original: msg.len(),
            wire,
            info: sent.compressed,
        })
    }

    fn end_mut(&mut self, i: usize) -> Result<&mut Endpoint> {
        self.ends
            .get_mut(i)
            .ok_or_else(|| anyhow::anyhow!("no end {i}"))
    }

    /// End `to` receives `wire`: exactly one message, equal to `msg`
    /// (`None`: an acknowledgement without one), which it accepts.
    fn deliver(&mut self, to: usize, wire: &[u8], msg: Option<&[u8]>) -> Result<()> {
        let link = self.link;
        let ep = self.end_mut(to)?;
        let mut n = 0;
        let mut next = ep.receive(wire, link);
        while let Some(r) = next {
            n += 1;
            let got = match &r {
                Received::Message(m) => m.message(),
                Received::Plain(p) => Some(&p[..]),
                Received::Failed(f) => bail!("decompression failed: {:?}", f.reason),
                other => bail!("unexpected {other:?}"),
            };
            // An acknowledgement outputs no message, or an empty one.
            if got.filter(|g| !g.is_empty()) != msg {
                bail!("decompressed message differs from the original");
            }
            ep.accept(PEER, &r);
            // A datagram is one message; a stream may hold more.
            next = match link {
                Link::Datagram => None,
                Link::Stream(_) => ep.receive(&[], link),
            };
        }
        if n != 1 {
            bail!("{n} messages received for one sent");
        }
        Ok(())
    }
}

/// Our endpoint sending to our endpoint over one compartment, in one
/// direction; the receiver acknowledges each message at once (a 14-byte
/// message of its own, not counted).
pub struct Flow(Pair);

impl Flow {
    /// A fresh compartment.
    pub fn new(p: FlowParams) -> Result<Flow> {
        Ok(Flow(Pair::new(FlowParams { shared: false, ..p })?))
    }

    /// Sends `msg`, checks it arrives byte-exact, and returns the
    /// acknowledgement.
    pub fn send(&mut self, msg: &[u8]) -> Result<Sent> {
        self.0.send(msg, 0, true)
    }

    /// The sending endpoint (its counters, its states).
    pub fn sender(&self) -> &Endpoint {
        &self.0.ends[0]
    }
}

/// Two endpoints of ours (the UE and the P-CSCF), a compartment per
/// direction, as a real Gm link runs: feedback travels in the other end's
/// next message, and with [`FlowParams::shared`] each end's requests
/// become shared states the other end compresses its answers against
/// (RFC 3321 §5.2).
pub struct Duplex(Pair);

/// Which end sends a file of a duplex flow: the P-CSCF (1) if its name
/// contains `pcscf`, else the UE (0).
pub fn sender_of(path: &std::path::Path) -> usize {
    usize::from(
        path.file_name()
            .is_some_and(|n| n.to_string_lossy().contains("pcscf")),
    )
}

impl Duplex {
    /// Two fresh endpoints.
    pub fn new(p: FlowParams) -> Result<Duplex> {
        Ok(Duplex(Pair::new(p)?))
    }

    /// End `from` (0 or 1) sends `msg` to the other end, which checks it
    /// decompresses to the original.
    pub fn send(&mut self, msg: &[u8], from: usize) -> Result<Sent> {
        self.0.send(msg, from, false)
    }

    /// End `i` (its counters, its states).
    pub fn end(&self, i: usize) -> Option<&Endpoint> {
        self.0.ends.get(i)
    }
}

/// Sends `msgs` in order over one fresh compartment.
pub fn run(p: FlowParams, msgs: &[Vec<u8>]) -> Result<Vec<Sent>> {
    let mut f = Flow::new(p)?;
    msgs.iter().map(|m| f.send(m)).collect()
}

/// A pcap of the sent messages: over UDP, SigComp ones to port 5555 (which
/// Wireshark dissects as SigComp) and plain ones to port 5060 (SIP); with
/// `tcp`, one TCP connection between ports 5555, a segment per message.
/// With `senders` (a duplex flow), the P-CSCF's messages go the other way.
pub fn pcap_of(sent: &[Sent], senders: Option<&[usize]>, tcp: bool) -> Vec<u8> {
    let ue = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let pcscf = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    // Next sequence number of each direction (the UE's, the P-CSCF's).
    let mut seq = [1u32; 2];
    let records = sent
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let from = usize::from(senders.and_then(|f| f.get(i)) == Some(&1));
            let (a, b) = if from == 1 { (pcscf, ue) } else { (ue, pcscf) };
            let data = if tcp {
                let (own, other) = if from == 1 {
                    (seq[1], seq[0])
                } else {
                    (seq[0], seq[1])
                };
                let f = pcap::tcp_frame(a, 5555, b, 5555, (own, other), &s.wire);
                let next = own.wrapping_add(s.wire.len() as u32);
                if from == 1 {
                    seq[1] = next;
                } else {
                    seq[0] = next;
                }
                f
            } else {
                let port = if s.info.kind == Kind::Plain {
                    5060
                } else {
                    5555
                };
                pcap::udp_frame(a, port, b, port, &s.wire)
            };
            pcap::Record {
                ts_sec: i as u32,
                ts_frac: 0,
                data,
            }
        })
        .collect();
    pcap::write(&pcap::Capture {
        linktype: pcap::LINKTYPE_ETHERNET,
        nanos: false,
        records,
    })
}

/// What a reader of the `--pcap` capture needs beyond the capture: our
/// bytecode as a local state, the shared states of RFC 3321 §5.2, which a
/// message's sender holds and the capture does not carry. One line each.
pub fn pcap_notes(p: FlowParams, sent: &[Sent], name: &str) -> Vec<String> {
    let frames = |f: &dyn Fn(&Sent) -> bool| -> Vec<String> {
        sent.iter()
            .enumerate()
            .filter(|(_, s)| s.info.kind == Kind::SigComp && f(s))
            .map(|(i, _)| (i + 1).to_string())
            .collect()
    };
    let mut notes = Vec::new();
    let local = frames(&|s| !s.info.carried_bytecode);
    if p.local_bytecode && !local.is_empty() {
        notes.push(format!(
            "{name}: {} frames ({}) reference our bytecode as a local state: \
             `sigcomp decompress --local-bytecode` reads them, tshark cannot",
            local.len(),
            local.join(", ")
        ));
    }
    let shared = frames(&|s| s.info.used_shared);
    if !shared.is_empty() {
        notes.push(format!(
            "{name}: {} frames ({}) use a shared state (RFC 3321 §5.2): only an endpoint \
             holding it decompresses them; `sigcomp decompress` holds the shared states the \
             capture's messages announce, tshark cannot",
            shared.len(),
            shared.join(", ")
        ));
    }
    notes
}

/// Sums of original and sent bytes.
pub fn totals(sent: &[Sent]) -> (usize, usize) {
    (
        sent.iter().map(|s| s.original).sum(),
        sent.iter().map(|s| s.wire.len()).sum(),
    )
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

/// The compression figures for one parameter set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// First message of a fresh compartment, summed: (sent, original).
    pub first: (usize, usize),
    /// The whole flow in one compartment.
    pub flow: (usize, usize),
    /// The steady flow sent after the flow, same compartment.
    pub steady: (usize, usize),
}

/// Measures [`Figures`]: `flow` each message alone, `flow` in one
/// compartment, then `steady` after it in the same compartment.
pub fn figures(p: FlowParams, flow: &[Vec<u8>], steady: &[Vec<u8>]) -> Result<Figures> {
    let mut first = (0, 0);
    for m in flow {
        let s = run(p, std::slice::from_ref(m))?;
        let (o, c) = totals(&s);
        first = (first.0 + c, first.1 + o);
    }
    let mut f = Flow::new(p)?;
    let a: Vec<Sent> = flow.iter().map(|m| f.send(m)).collect::<Result<_>>()?;
    let b: Vec<Sent> = steady.iter().map(|m| f.send(m)).collect::<Result<_>>()?;
    let (fo, fc) = totals(&a);
    let (so, sc) = totals(&b);
    Ok(Figures {
        first,
        flow: (fc, fo),
        steady: (sc, so),
    })
}

/// On-CPU time of this thread in seconds (`/proc/thread-self/schedstat`),
/// so a loaded machine does not lower the figure; wall time elsewhere.
fn cpu_seconds(wall: Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or_else(|| wall.elapsed().as_secs_f64(), |ns| ns as f64 / 1e9)
}

/// Compression speed in MB/s of the original bytes (on-CPU time): the
/// flow compressed repeatedly in fresh compartments, acknowledgements fed
/// back directly.
pub fn speed(p: FlowParams, flow: &[Vec<u8>], seconds: f64) -> Result<f64> {
    let peer = Resources {
        cycles_per_bit: p.cpb,
        decompression_memory_size: p.dms,
        state_memory_size: p.sms,
    };
    let wall = Instant::now();
    let start = cpu_seconds(wall);
    let mut bytes = 0usize;
    let mut wire = Vec::new();
    while cpu_seconds(wall) - start < seconds {
        let mut c = Compressor::new(Config {
            level: p.level,
            peer,
            ..Config::default()
        })?;
        for _ in 0..4 {
            for m in flow {
                let r = c.compress(m, &mut wire);
                if r.seq != 0 {
                    c.on_feedback_item(&[(r.seq & 0x7f) as u8]);
                }
                bytes += m.len();
            }
        }
    }
    Ok(bytes as f64 / (cpu_seconds(wall) - start) / 1e6)
}

/// The name `--level` takes.
fn level_name(l: Level) -> &'static str {
    match l {
        Level::Fast => "fast",
        Level::Default => "default",
        Level::Best => "best",
    }
}

/// The figures table: bytes sent and their share of the original bytes
/// at SMS `p.sms` and at SMS 4096, their ratio, and the compression speed.
pub fn table(
    p: FlowParams,
    flow: &[Vec<u8>],
    steady: &[Vec<u8>],
    speed_seconds: f64,
) -> Result<String> {
    let a = figures(p, flow, steady)?;
    let b = figures(FlowParams { sms: 4096, ..p }, flow, steady)?;
    let mbs = speed(p, flow, speed_seconds)?;
    let hi = format!("SMS {}", p.sms);
    let mut t = format!(
        "{:<44} {:>18} {:>18} {:>10}\n{:<44} {:>9} {:>8} {:>9} {:>8} {:>10}\n",
        format!(
            "DMS {}{}, level {}",
            p.dms,
            if p.tcp { " over TCP" } else { "" },
            level_name(p.level)
        ),
        hi,
        "SMS 4096",
        "% ratio",
        "figure",
        "bytes",
        "% orig",
        "bytes",
        "% orig",
        format!("4096/{}", p.sms),
    );
    let row = |name: &str, x: (usize, usize), y: (usize, usize)| {
        let (px, py) = (pct(x.0, x.1), pct(y.0, y.1));
        format!(
            "{:<44} {:>9} {:>8.1} {:>9} {:>8.1} {:>10.2}\n",
            name,
            x.0,
            px,
            y.0,
            py,
            if px > 0.0 { py / px } else { 0.0 }
        )
    };
    t.push_str(&row(
        "first message of a fresh compartment (sum)",
        a.first,
        b.first,
    ));
    t.push_str(&row("whole flow in one compartment", a.flow, b.flow));
    t.push_str(&row(
        "steady state (--steady after the flow)",
        a.steady,
        b.steady,
    ));
    t.push_str(&format!(
        "original bytes: first messages and flow {}, steady state {}\n",
        a.flow.1, a.steady.1
    ));
    t.push_str(&format!(
        "compression speed ({hi}, on-CPU): {mbs:.1} MB/s of original bytes\n"
    ));
    Ok(t)
}

/// Bytes of `flow` then `steady` over one [`Duplex`]: ((sent, original)
/// of the flow, of the steady flow).
pub fn duplex_figures(
    p: FlowParams,
    flow: (&[Vec<u8>], &[usize]),
    steady: (&[Vec<u8>], &[usize]),
) -> Result<((usize, usize), (usize, usize))> {
    let mut d = Duplex::new(p)?;
    let mut go = |(msgs, from): (&[Vec<u8>], &[usize])| -> Result<(usize, usize)> {
        let sent = msgs
            .iter()
            .zip(from)
            .map(|(m, &f)| d.send(m, f))
            .collect::<Result<Vec<_>>>()?;
        let (o, c) = totals(&sent);
        Ok((c, o))
    };
    let a = go(flow)?;
    let b = go(steady)?;
    Ok((a, b))
}

/// The duplex rows: a compartment per direction (how the open
/// implementations were measured), without and with shared compression.
pub fn duplex_table(
    p: FlowParams,
    flow: (&[Vec<u8>], &[usize]),
    steady: (&[Vec<u8>], &[usize]),
) -> Result<String> {
    let mut t = format!(
        "\n{:<44} {:>18} {:>18}\n{:<44} {:>9} {:>8} {:>9} {:>8}\n",
        format!("duplex, a compartment per direction, SMS {}", p.sms),
        "flow",
        "steady state",
        "",
        "bytes",
        "% orig",
        "bytes",
        "% orig",
    );
    for shared in [false, true] {
        let (a, b) = duplex_figures(FlowParams { shared, ..p }, flow, steady)?;
        t.push_str(&format!(
            "{:<44} {:>9} {:>8.1} {:>9} {:>8.1}\n",
            if shared {
                "  with RFC 3321 shared compression"
            } else {
                "  without shared compression"
            },
            a.0,
            pct(a.0, a.1),
            b.0,
            pct(b.0, b.1)
        ));
    }
    Ok(t)
}

/// `sigcomp compress`: one message in a fresh compartment.
pub fn cmd_compress(
    p: FlowParams,
    input: &std::path::Path,
    output: &std::path::Path,
) -> Result<bool> {
    let msg = std::fs::read(input)?;
    let sent = run(p, std::slice::from_ref(&msg))?;
    let Some(s) = sent.first() else {
        bail!("nothing sent")
    };
    std::fs::write(output, &s.wire)?;
    println!(
        "{}: {} -> {} bytes ({:.1} %), {:?}, bytecode {}",
        input.display(),
        s.original,
        s.wire.len(),
        pct(s.wire.len(), s.original),
        s.info.kind,
        if s.info.carried_bytecode {
            "uploaded"
        } else {
            "referenced"
        }
    );
    Ok(true)
}

/// Options of `sigcomp flow` beyond [`FlowParams`].
#[derive(Debug, Clone, Default)]
pub struct FlowOutputs {
    /// Write the sent messages as a pcap.
    pub pcap: Option<std::path::PathBuf>,
    /// Write message i as `DIR/NNN.sigcomp`.
    pub out_dir: Option<std::path::PathBuf>,
    /// Print the figures table ([`table`], [`duplex_table`]).
    pub table: bool,
    /// The steady-state flow for the table.
    pub steady: Vec<std::path::PathBuf>,
    /// Send over a [`Duplex`] (a file's sender by [`sender_of`]).
    pub duplex: bool,
}

/// `sigcomp flow`: the files in order over one compartment.
pub fn cmd_flow(p: FlowParams, files: &[std::path::PathBuf], o: &FlowOutputs) -> Result<bool> {
    let msgs: Vec<Vec<u8>> = files
        .iter()
        .map(std::fs::read)
        .collect::<std::io::Result<_>>()?;
    let senders: Vec<usize> = files.iter().map(|f| sender_of(f)).collect();
    let sent = if o.duplex {
        let mut d = Duplex::new(p)?;
        msgs.iter()
            .zip(&senders)
            .map(|(m, &from)| d.send(m, from))
            .collect::<Result<Vec<_>>>()?
    } else {
        run(p, &msgs)?
    };
    let head = [
        "#",
        "file",
        "original",
        "compressed",
        "%",
        "bytecode",
        "form",
        "shared",
    ];
    println!(
        "{:>4}  {:<40} {:>8} {:>10} {:>7}  {:<8} {:<7} {}",
        head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]
    );
    for (i, (s, f)) in sent.iter().zip(files).enumerate() {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // RFC 3321 §5.2: announced as a shared state, used the peer's.
        let shared = match (s.info.shared, s.info.used_shared) {
            (true, true) => "announced, used",
            (true, false) => "announced",
            (false, true) => "used",
            (false, false) => "-",
        };
        println!(
            "{:>4}  {:<40} {:>8} {:>10} {:>6.1}%  {:<8} {:<7} {}",
            i + 1,
            name,
            s.original,
            s.wire.len(),
            pct(s.wire.len(), s.original),
            if s.info.carried_bytecode { "yes" } else { "no" },
            format!("{:?}", s.info.kind),
            shared
        );
    }
    let (o_sum, c_sum) = totals(&sent);
    println!(
        "total: {} -> {} bytes ({:.1} %), all {} messages decompressed byte-exact",
        o_sum,
        c_sum,
        pct(c_sum, o_sum),
        sent.len()
    );
    if let Some(dir) = &o.out_dir {
        std::fs::create_dir_all(dir)?;
        for (i, s) in sent.iter().enumerate() {
            std::fs::write(dir.join(format!("{:03}.sigcomp", i + 1)), &s.wire)?;
        }
    }
    if let Some(path) = &o.pcap {
        crate::cli::write(
            path,
            &pcap_of(&sent, o.duplex.then_some(&senders[..]), p.tcp),
        )?;
        for line in pcap_notes(p, &sent, &path.display().to_string()) {
            println!("{line}");
        }
    }
    if o.table {
        let (steady, steady_senders): (Vec<Vec<u8>>, Vec<usize>) = if o.steady.is_empty() {
            (msgs.clone(), senders.clone())
        } else {
            (
                o.steady
                    .iter()
                    .map(std::fs::read)
                    .collect::<std::io::Result<_>>()?,
                o.steady.iter().map(|f| sender_of(f)).collect(),
            )
        };
        println!();
        print!("{}", table(p, &msgs, &steady, 1.0)?);
        print!(
            "{}",
            duplex_table(p, (&msgs, &senders), (&steady, &steady_senders))?
        );
    }
    Ok(true)
}
