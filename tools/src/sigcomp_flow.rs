//! `sigcomp compress` / `sigcomp flow`: our compressor against our
//! decompressor over one compartment, with the feedback the reverse
//! traffic would carry, and the compression figures in one table.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use anyhow::{Result, bail};
use sigcomp::compress::{
    Compressed, Compressor, Config, Kind, Level, SHARED_KEEP, bytecode, shared_state,
};
use sigcomp::{CompartmentId, Decompressor, Parameters, Resources, StateHandler, Transport};

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
    /// locally available state and announces it, so it is never uploaded.
    pub local_bytecode: bool,
    /// With [`Duplex`]: RFC 3321 §5.2 shared compression.
    pub shared: bool,
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
        }
    }
}

/// One message of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The original size.
    pub original: usize,
    /// What was sent (SigComp message, or the original when plain).
    pub wire: Vec<u8>,
    /// What the compressor reported.
    pub info: Compressed,
}

/// A compressor of ours towards a receiver with parameters `p`.
fn compressor(p: FlowParams) -> Result<Compressor> {
    Ok(Compressor::new(Config {
        level: p.level,
        peer: Resources {
            cycles_per_bit: p.cpb,
            decompression_memory_size: p.dms,
            state_memory_size: p.sms,
        },
        shared: p.shared.then_some(p.sms / 2),
        ..Config::default()
    })?)
}

/// The receiving side of one direction: our decompressor and state handler
/// with the sender's compartment.
struct Receiver {
    decompressor: Decompressor,
    states: StateHandler,
    cid: CompartmentId,
}

impl Receiver {
    /// A fresh compartment; with [`FlowParams::local_bytecode`] it holds our
    /// bytecode as a local state and announces it to `sender`
    /// (RFC 3320 §9.4.9, as it would in its own messages).
    fn new(p: FlowParams, cid: u64, sender: &mut Compressor) -> Result<Receiver> {
        let params = Parameters {
            decompression_memory_size: p.dms,
            state_memory_size: p.sms,
            cycles_per_bit: p.cpb,
            version: 2,
        };
        let mut states = StateHandler::with_dictionaries();
        states.open_compartment(CompartmentId(cid), p.sms);
        if p.local_bytecode {
            states.add_local(bytecode::state());
            sender.on_peer_parameters(&params.announcement(&states.local_state_ids())?);
        }
        Ok(Receiver {
            decompressor: Decompressor::new(params)?,
            states,
            cid: CompartmentId(cid),
        })
    }

    /// Receives what `sender` made of `msg`: checks it gives back `msg`,
    /// commits its states and returns the requested feedback to `sender`
    /// at once (as the reverse traffic would). The decompressed message,
    /// for a SigComp one.
    fn receive(
        &mut self,
        msg: &[u8],
        wire: &[u8],
        kind: Kind,
        sender: &mut Compressor,
    ) -> Result<Option<sigcomp::Decompressed>> {
        if kind != Kind::SigComp {
            if wire != msg {
                bail!("plain message differs from the original");
            }
            return Ok(None);
        }
        let out = self
            .decompressor
            .decompress(wire, Transport::Message, &self.states)
            .map_err(|f| anyhow::anyhow!("decompression failed: {:?}", f.reason))?;
        if out.output != msg {
            bail!("decompressed message differs from the original");
        }
        self.states.commit(self.cid, &out)?;
        if let Some(item) = out
            .requested_feedback
            .as_ref()
            .and_then(|f| f.item.as_ref())
        {
            sender.on_feedback_item(item);
        }
        Ok(Some(out))
    }
}

/// Sender (our compressor) and receiver (our decompressor and state
/// handler) of one compartment.
pub struct Flow {
    compressor: Compressor,
    receiver: Receiver,
}

impl Flow {
    /// A fresh compartment.
    pub fn new(p: FlowParams) -> Result<Flow> {
        let mut compressor = compressor(FlowParams { shared: false, ..p })?;
        let receiver = Receiver::new(p, 1, &mut compressor)?;
        Ok(Flow {
            compressor,
            receiver,
        })
    }

    /// Compresses `msg`, decompresses it at the receiver, checks it equals
    /// the original, commits its states and returns the feedback.
    pub fn send(&mut self, msg: &[u8]) -> Result<Sent> {
        let mut wire = Vec::new();
        let info = self.compressor.compress(msg, &mut wire);
        self.receiver
            .receive(msg, &wire, info.kind, &mut self.compressor)?;
        Ok(Sent {
            original: msg.len(),
            wire,
            info,
        })
    }
}

/// One endpoint of a [`Duplex`]: its compressor towards the other end, and
/// its decompressor with the compartment of the other end's messages.
struct End {
    compressor: Compressor,
    receiver: Receiver,
}

/// Two endpoints of ours (the UE and the P-CSCF), a compartment per
/// direction, as a real Gm link runs: each end's compressor sends to the
/// other end's decompressor, the feedback is returned at once, and with
/// [`FlowParams::shared`] each end's requests become shared states the
/// other end compresses its answers against (RFC 3321 §5.2).
pub struct Duplex {
    ends: [End; 2],
}

/// Which end sends a file of a duplex flow: the P-CSCF (1) if its name
/// contains `pcscf`, else the UE (0).
pub fn sender_of(path: &std::path::Path) -> usize {
    usize::from(
        path.file_name()
            .is_some_and(|n| n.to_string_lossy().contains("pcscf")),
    )
}

impl Duplex {
    /// Two fresh endpoints; each one's receiver announces to the other's
    /// compressor.
    pub fn new(p: FlowParams) -> Result<Duplex> {
        let mut ue = compressor(p)?;
        let mut pcscf = compressor(p)?;
        let ue_receiver = Receiver::new(p, 1, &mut pcscf)?;
        let pcscf_receiver = Receiver::new(p, 2, &mut ue)?;
        Ok(Duplex {
            ends: [
                End {
                    compressor: ue,
                    receiver: ue_receiver,
                },
                End {
                    compressor: pcscf,
                    receiver: pcscf_receiver,
                },
            ],
        })
    }

    /// End `from` (0 or 1) sends `msg` to the other end, which checks it
    /// decompresses to the original.
    pub fn send(&mut self, msg: &[u8], from: usize) -> Result<Sent> {
        let [a, b] = &mut self.ends;
        let (tx, rx) = if from == 0 { (a, b) } else { (b, a) };
        let mut wire = Vec::new();
        let info = tx.compressor.compress(msg, &mut wire);
        // RFC 3321 §5.2 step 1: the sender keeps what it announced.
        if info.shared
            && !tx
                .receiver
                .states
                .add_shared(tx.receiver.cid, &shared_state(msg), SHARED_KEEP)
        {
            bail!("no room for an announced shared state");
        }
        if let Some(out) = rx
            .receiver
            .receive(msg, &wire, info.kind, &mut tx.compressor)?
        {
            rx.compressor
                .on_received(&out.output, out.returned_parameters.as_ref());
        }
        Ok(Sent {
            original: msg.len(),
            wire,
            info,
        })
    }
}

/// Sends `msgs` in order over one fresh compartment.
pub fn run(p: FlowParams, msgs: &[Vec<u8>]) -> Result<Vec<Sent>> {
    let mut f = Flow::new(p)?;
    msgs.iter().map(|m| f.send(m)).collect()
}

/// A pcap of the sent messages: SigComp ones as UDP to port 5555 (which
/// Wireshark dissects as SigComp), plain ones to port 5060 (SIP). With
/// `senders` (a duplex flow), the P-CSCF's messages go the other way.
pub fn pcap_of(sent: &[Sent], senders: Option<&[usize]>) -> Vec<u8> {
    let ue = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let pcscf = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let records = sent
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (a, b) = match senders.and_then(|f| f.get(i)) {
                Some(1) => (pcscf, ue),
                _ => (ue, pcscf),
            };
            let port = if s.info.kind == Kind::SigComp {
                5555
            } else {
                5060
            };
            pcap::Record {
                ts_sec: i as u32,
                ts_frac: 0,
                data: pcap::udp_frame(a, port, b, port, &s.wire),
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
        format!("DMS {}, level {}", p.dms, level_name(p.level)),
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
        crate::cli::write(path, &pcap_of(&sent, o.duplex.then_some(&senders[..])))?;
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
