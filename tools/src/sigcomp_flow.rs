//! `sigcomp compress` / `sigcomp flow`: our compressor against our
//! decompressor over one compartment, with the feedback the reverse
//! traffic would carry, and the figures of issue 6 in one table.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use anyhow::{Result, bail};
use sigcomp::compress::{Compressed, Compressor, Config, Kind, Level, bytecode};
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
}

impl Default for FlowParams {
    fn default() -> FlowParams {
        FlowParams {
            dms: 8192,
            sms: 8192,
            cpb: 16,
            level: Level::Default,
            local_bytecode: false,
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

/// Sender (our compressor) and receiver (our decompressor and state
/// handler) of one compartment.
pub struct Flow {
    compressor: Compressor,
    decompressor: Decompressor,
    states: StateHandler,
    cid: CompartmentId,
}

impl Flow {
    /// A fresh compartment.
    pub fn new(p: FlowParams) -> Result<Flow> {
        let peer = Resources {
            cycles_per_bit: p.cpb,
            decompression_memory_size: p.dms,
            state_memory_size: p.sms,
        };
        let mut compressor = Compressor::new(Config {
            level: p.level,
            peer,
            ..Config::default()
        })?;
        let params = Parameters {
            decompression_memory_size: p.dms,
            state_memory_size: p.sms,
            cycles_per_bit: p.cpb,
            version: 2,
        };
        let decompressor = Decompressor::new(params)?;
        let mut states = StateHandler::with_dictionaries();
        let cid = CompartmentId(1);
        states.open_compartment(cid, p.sms);
        if p.local_bytecode {
            states.add_local(bytecode::state());
            // What the receiver announces in its own messages (RFC 3320 §9.4.9).
            compressor.on_peer_parameters(&params.announcement(&states.local_state_ids())?);
        }
        Ok(Flow {
            compressor,
            decompressor,
            states,
            cid,
        })
    }

    /// Compresses `msg`, decompresses it at the receiver, checks it equals
    /// the original, commits its states and returns the feedback.
    pub fn send(&mut self, msg: &[u8]) -> Result<Sent> {
        let mut wire = Vec::new();
        let info = self.compressor.compress(msg, &mut wire);
        if info.kind == Kind::SigComp {
            let out = self
                .decompressor
                .decompress(&wire, Transport::Message, &self.states)
                .map_err(|f| anyhow::anyhow!("decompression failed: {:?}", f.reason))?;
            if out.output != msg {
                bail!("decompressed message differs from the original");
            }
            self.states.commit(self.cid, &out)?;
            // The receiver returns the requested item in its next message.
            if let Some(item) = out.requested_feedback.and_then(|f| f.item) {
                self.compressor.on_feedback_item(&item);
            }
        } else if wire != msg {
            bail!("plain message differs from the original");
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
/// Wireshark dissects as SigComp), plain ones to port 5060 (SIP).
pub fn pcap_of(sent: &[Sent]) -> Vec<u8> {
    let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let b = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let records = sent
        .iter()
        .enumerate()
        .map(|(i, s)| {
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

/// The figures of issue 6 for one parameter set.
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

/// The issue 6 table: targets and figures at SMS `p.sms` and 4096.
pub fn table(
    p: FlowParams,
    flow: &[Vec<u8>],
    steady: &[Vec<u8>],
    speed_seconds: f64,
) -> Result<String> {
    let a = figures(p, flow, steady)?;
    let b = figures(FlowParams { sms: 4096, ..p }, flow, steady)?;
    let mbs = speed(p, flow, speed_seconds)?;
    let mut t = String::new();
    t.push_str(&format!(
        "{:<44} {:>8} {:>18} {:>18} {:>8}\n",
        format!("figure (DMS {}, level {:?})", p.dms, p.level),
        "target",
        format!("SMS {}", p.sms),
        "SMS 4096",
        "4096/hi"
    ));
    let row = |name: &str, target: &str, x: (usize, usize), y: (usize, usize)| {
        let (px, py) = (pct(x.0, x.1), pct(y.0, y.1));
        format!(
            "{:<44} {:>8} {:>7} B {:>6.1} % {:>7} B {:>6.1} % {:>7.2}x\n",
            name,
            target,
            x.0,
            px,
            y.0,
            py,
            if px > 0.0 { py / px } else { 0.0 }
        )
    };
    t.push_str(&row(
        "first message of a fresh compartment (sum)",
        "<= 50 %",
        a.first,
        b.first,
    ));
    t.push_str(&row(
        "whole flow in one compartment",
        "<= 25 %",
        a.flow,
        b.flow,
    ));
    t.push_str(&row(
        "same flow repeated (steady state)",
        "<= 10 %",
        a.steady,
        b.steady,
    ));
    t.push_str(&format!(
        "{:<44} {:>8} {:>9.1} MB/s\n",
        "compression speed", ">= 50", mbs
    ));
    t.push_str(&format!(
        "originals: flow {} B, steady {} B; SMS 4096 / SMS {} ratios must be <= 1.30x\n",
        a.flow.1, a.steady.1, p.sms
    ));
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
    /// Print the issue 6 table, with this directory's `.sip` files (sorted)
    /// as the repeated flow (default: the same files again).
    pub table: bool,
    /// The steady-state flow for the table.
    pub steady: Vec<std::path::PathBuf>,
}

/// `sigcomp flow`: the files in order over one compartment.
pub fn cmd_flow(p: FlowParams, files: &[std::path::PathBuf], o: &FlowOutputs) -> Result<bool> {
    let msgs: Vec<Vec<u8>> = files
        .iter()
        .map(std::fs::read)
        .collect::<std::io::Result<_>>()?;
    let sent = run(p, &msgs)?;
    let head = [
        "#",
        "file",
        "original",
        "compressed",
        "%",
        "bytecode",
        "form",
    ];
    println!(
        "{:>4}  {:<40} {:>8} {:>10} {:>7}  {:<8} {}",
        head[0], head[1], head[2], head[3], head[4], head[5], head[6]
    );
    for (i, (s, f)) in sent.iter().zip(files).enumerate() {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "{:>4}  {:<40} {:>8} {:>10} {:>6.1}%  {:<8} {:?}",
            i + 1,
            name,
            s.original,
            s.wire.len(),
            pct(s.wire.len(), s.original),
            if s.info.carried_bytecode { "yes" } else { "no" },
            s.info.kind
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
        std::fs::write(path, pcap_of(&sent))?;
    }
    if o.table {
        let steady: Vec<Vec<u8>> = if o.steady.is_empty() {
            msgs.clone()
        } else {
            o.steady
                .iter()
                .map(std::fs::read)
                .collect::<std::io::Result<_>>()?
        };
        println!();
        print!("{}", table(p, &msgs, &steady, 1.0)?);
    }
    Ok(true)
}
