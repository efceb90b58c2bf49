//! `sigcomp`: SigComp tools for researchers: run the RFC 4465 torture
//! tests, decompress messages and captures (pcap or pcapng), assemble and
//! disassemble UDVM bytecode, compress SIP messages and flows.
//!
//! Exit status (docs/cli.md): 0 success, 1 a check failed (a torture case,
//! a message that does not decompress), 2 usage or IO error or input that
//! is not what the command reads (not a SigComp message, a capture where a
//! message is expected, bytecode past the 64 KiB of UDVM memory), one line
//! naming the file. `-` is stdin or stdout for the files `torture`,
//! `decompress`, `asm` and `disasm` read and write; when stdout carries
//! data the report goes to stderr. (`compress` and `flow` print their
//! report on stdout and read their files in `tools::sigcomp_flow`: they
//! refuse `-`.) Guide: docs/sigcomp.md.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sigcomp::{
    CompartmentId, Decompressor, Nack, Parameters, StateHandler, StreamDeframer, Transport,
};
use tools::cli::{self, Report};
use tools::pcap;

/// Where report lines go: stdout, or stderr when stdout carries an output
/// file (`-`); set once in `main`.
static REPORT: OnceLock<Report> = OnceLock::new();

/// One report line; a closed stream (e.g. piped into `head`) is ignored
/// instead of a panic.
macro_rules! say {
    ($($t:tt)*) => {
        REPORT
            .get()
            .copied()
            .unwrap_or(Report::Stdout)
            .line(format_args!($($t)*))
    };
}

#[derive(Parser)]
#[command(
    name = "sigcomp",
    version,
    about = "SigComp (RFC 3320) tools: torture tests, decompress messages and captures, \
        UDVM assembler, compressor",
    long_about = "SigComp (RFC 3320) tools: run the RFC 4465 torture tests, decompress \
        SigComp messages, TCP streams and captures (pcap or pcapng; Ethernet, raw IP, Linux \
        cooked v1/v2), assemble and disassemble UDVM bytecode (RFC 4464), compress SIP \
        messages and flows with our compressor.\n\n\
        `-` is stdin or stdout for the files torture, decompress, asm and disasm read and \
        write; the report then goes to stderr. Guide and Wireshark settings: docs/sigcomp.md.\n\n\
        Exit status: 0 success, 1 a check failed (a torture case, a message that does not \
        decompress), 2 usage or IO error, or input that is not what the command reads (a \
        file that is not a SigComp message, a capture where a message is expected, \
        bytecode past the 64 KiB of UDVM memory): one line naming the file.",
    after_help = "Examples:\n  \
        sigcomp torture\n  \
        sigcomp compress --local-bytecode msg.sip msg.sigcomp && sigcomp decompress --local-bytecode msg.sigcomp -\n  \
        sigcomp decompress --dms 4096 --sms 4096 capture.pcapng plain.pcap\n  \
        sigcomp asm --message program.asm - | sigcomp disasm -"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the RFC 4465 Appendix A torture tests and print a table.
    Torture {
        /// Torture file in the line format (default: the copy shipped in
        /// vectors/sigcomp/); `-` for stdin.
        file: Option<PathBuf>,
    },
    /// Decompress a SigComp message file, or every SigComp message of a
    /// pcap (UDP datagrams and TCP streams); a pcap gives a pcap of the
    /// decompressed messages as UDP datagrams between the same endpoints.
    Decompress {
        /// decompression_memory_size in bytes.
        #[arg(long, default_value_t = 8192)]
        dms: u32,
        /// cycles_per_bit (16, 32, 64, 128).
        #[arg(long, default_value_t = 16)]
        cpb: u16,
        /// state_memory_size per compartment in bytes.
        #[arg(long, default_value_t = 8192)]
        sms: u32,
        /// The message file is a TCP byte stream (0xFFFF-delimited records).
        #[arg(long)]
        stream: bool,
        /// Hold our compressor's bytecode as a local state (RFC 3320
        /// §3.3.3), as the receiver of `compress`/`flow --local-bytecode`
        /// does: their messages reference it instead of uploading it.
        #[arg(long)]
        local_bytecode: bool,
        /// Input: a SigComp message or a capture (pcap or pcapng); `-` for
        /// stdin.
        input: PathBuf,
        /// Output: the decompressed message, or a pcap for a capture
        /// input; `-` for stdout.
        output: PathBuf,
    },
    /// Assemble UDVM assembly (RFC 4464 §3) into bytecode.
    Asm {
        /// Wrap the bytecode in a SigComp message header (RFC 3320 §7.3)
        /// that loads it at --destination.
        #[arg(long)]
        message: bool,
        /// Load address for --message: 128, 192, …, 1024 (default: the
        /// program's origin, its first assembled byte).
        #[arg(long)]
        destination: Option<u16>,
        /// Assembly source; `-` for stdin.
        input: PathBuf,
        /// Output file for the bytecode (or message); `-` for stdout.
        output: PathBuf,
    },
    /// Disassemble UDVM bytecode, or the bytecode a SigComp message uploads.
    Disasm {
        /// Treat the input as raw bytecode even if it looks like a message.
        #[arg(long)]
        raw: bool,
        /// Address of the first byte of raw bytecode.
        #[arg(long, default_value_t = 128)]
        origin: u16,
        /// Bytecode or SigComp message file; `-` for stdin.
        input: PathBuf,
    },
    /// Compress one SIP message with our compressor (a fresh compartment).
    Compress {
        #[command(flatten)]
        params: FlowArgs,
        /// The message to compress.
        input: PathBuf,
        /// The SigComp message (or the original, if that costs less).
        output: PathBuf,
    },
    /// Send FILEs in order as one flow over one compartment, our compressor
    /// to our decompressor, checking every message; print sizes.
    Flow {
        #[command(flatten)]
        params: FlowArgs,
        /// Write the sent messages as UDP datagrams (SigComp to port 5555;
        /// with --tcp as TCP segments between ports 5555),
        /// which `sigcomp decompress` reads back (with --local-bytecode if
        /// given here).
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Write message i as DIR/NNN.sigcomp.
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Also print a table of figures: bytes sent and % of the
        /// original for each first message, the flow and the flow
        /// repeated (steady state), at --sms and at SMS 4096; the
        /// compression speed; the duplex flow without and with shared
        /// compression.
        #[arg(long)]
        table: bool,
        /// For --table: the flow sent again afterwards (default: FILEs).
        #[arg(long, num_args = 1..)]
        steady: Vec<PathBuf>,
        /// Two endpoints of ours, a compartment per direction: a file whose
        /// name contains `pcscf` goes from the P-CSCF to the UE, the others
        /// from the UE to the P-CSCF.
        #[arg(long)]
        duplex: bool,
        /// With --duplex: RFC 3321 shared compression (each end's requests
        /// become history for the other end's answers). With --pcap, a
        /// line lists the frames only an endpoint holding the shared state
        /// reads (`sigcomp decompress` does, tshark does not).
        #[arg(long, requires = "duplex")]
        shared: bool,
        /// The SIP messages, in send order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Receiver parameters of `compress` and `flow`.
#[derive(clap::Args)]
struct FlowArgs {
    /// The receiver's decompression_memory_size.
    #[arg(long, default_value_t = 8192)]
    dms: u32,
    /// The receiver's state_memory_size.
    #[arg(long, default_value_t = 8192)]
    sms: u32,
    /// The receiver's cycles_per_bit.
    #[arg(long, default_value_t = 16)]
    cpb: u16,
    /// Compression level: fast, default, best.
    #[arg(long, default_value = "default")]
    level: String,
    /// The receiver is ours: it holds our bytecode as a local state.
    #[arg(long)]
    local_bytecode: bool,
    /// Over one TCP connection: messages framed (0xFFFF, RFC 3320
    /// §4.2.2), the receiver's UDVM gets DMS / 2 (§7), never plain (RFC
    /// 5049 §5); --pcap writes TCP segments between ports 5555.
    #[arg(long)]
    tcp: bool,
}

impl FlowArgs {
    fn params(&self) -> Result<tools::sigcomp_flow::FlowParams> {
        use sigcomp::compress::Level;
        let level = match self.level.as_str() {
            "fast" => Level::Fast,
            "default" => Level::Default,
            "best" => Level::Best,
            l => bail!("unknown level {l} (fast, default, best)"),
        };
        Ok(tools::sigcomp_flow::FlowParams {
            dms: self.dms,
            sms: self.sms,
            cpb: self.cpb,
            level,
            local_bytecode: self.local_bytecode,
            shared: false,
            tcp: self.tcp,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outputs: Vec<&Path> = match &cli.command {
        Command::Decompress { output, .. } | Command::Asm { output, .. } => vec![output],
        _ => Vec::new(),
    };
    let _ = REPORT.set(Report::for_outputs(outputs));
    let r = match cli.command {
        Command::Torture { file } => torture(file.as_deref()),
        Command::Decompress {
            dms,
            cpb,
            sms,
            stream,
            local_bytecode,
            input,
            output,
        } => {
            let params = Parameters {
                decompression_memory_size: dms,
                state_memory_size: sms,
                cycles_per_bit: cpb,
                version: 2,
            };
            decompress(params, stream, local_bytecode, &input, &output)
        }
        Command::Asm {
            message,
            destination,
            input,
            output,
        } => asm(message, destination, &input, &output),
        Command::Disasm { raw, origin, input } => disasm(raw, origin, &input),
        Command::Compress {
            params,
            input,
            output,
        } => readable(std::slice::from_ref(&input))
            .and_then(|()| not_stdout(&output))
            .and_then(|()| params.params())
            .and_then(|p| tools::sigcomp_flow::cmd_compress(p, &input, &output)),
        Command::Flow {
            params,
            pcap,
            out_dir,
            table,
            steady,
            duplex,
            shared,
            files,
        } => readable(&files)
            .and_then(|()| readable(&steady))
            .and_then(|()| pcap.as_deref().map_or(Ok(()), not_stdout))
            .and_then(|()| params.params())
            .and_then(|p| {
                let p = tools::sigcomp_flow::FlowParams { shared, ..p };
                let o = tools::sigcomp_flow::FlowOutputs {
                    pcap,
                    out_dir,
                    table,
                    steady,
                    duplex,
                };
                tools::sigcomp_flow::cmd_flow(p, &files, &o)
            }),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sigcomp: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Checks that each file opens, so that a missing one is reported by name
/// (`compress` and `flow` read their files in `tools::sigcomp_flow`).
fn readable(files: &[PathBuf]) -> Result<()> {
    for f in files {
        if cli::is_std(f) {
            bail!("compress and flow read files, not stdin (-)");
        }
        let mut magic = Vec::with_capacity(4);
        std::fs::File::open(f)
            .and_then(|h| h.take(4).read_to_end(&mut magic))
            .with_context(|| format!("cannot read {}", f.display()))?;
        if let Some(kind) = capture_kind(&magic) {
            bail!(
                "{} is a {kind} capture: compress and flow read SIP messages, one per file",
                f.display()
            );
        }
    }
    Ok(())
}

/// `compress` and `flow` print their report on stdout: it cannot carry
/// their output too.
fn not_stdout(output: &Path) -> Result<()> {
    if cli::is_std(output) {
        bail!("compress and flow print their report on stdout: give a file, not -");
    }
    Ok(())
}

fn short_hex(b: &[u8], max: usize) -> String {
    let h = hex::encode(b);
    if h.len() > max {
        format!("{}…({} B)", &h[..max], b.len())
    } else {
        h
    }
}

fn torture(file: Option<&Path>) -> Result<bool> {
    let default =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/rfc4465-torture-tests.txt");
    let path = file.unwrap_or(&default);
    let text = read_text(path, "torture reads the RFC 4465 line format")?;
    let cases = sigcomp_asm::torture::run(&text)
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", cli::name(path), e.line, e.reason))?;
    say!(
        "{:<7} {:<36} {:<28} {:>13} {:<24} {:<16} {}",
        "test",
        "case",
        "output",
        "cycles got/exp",
        "NACK reason got/exp",
        "NACK SHA-1",
        "result"
    );
    let mut passed = 0;
    for c in &cases {
        let ok = c.passed();
        passed += usize::from(ok);
        let output = match (&c.output, &c.failure) {
            (Some(o), _) if o.is_empty() => "none".to_string(),
            (Some(o), _) => short_hex(o, 24),
            (None, _) => "-".to_string(),
        };
        let cycles = format!(
            "{}/{}",
            c.cycles,
            c.expected.cycles.map_or("-".to_string(), |x| x.to_string())
        );
        let reason = format!(
            "{}/{}",
            c.failure
                .as_ref()
                .map_or("-".to_string(), |f| f.reason.to_string()),
            c.expected
                .failure
                .map_or("-".to_string(), |r| r.to_string())
        );
        let sha = c
            .nack_sha1
            .map_or("-".to_string(), |s| hex::encode(&s[..8]));
        let verdict = match (&c.problem, ok) {
            (Some(p), _) => format!("FAIL ({p})"),
            (None, true) => "pass".to_string(),
            (None, false) => "FAIL".to_string(),
        };
        say!(
            "{:<7} {:<36} {:<28} {:>14} {:<24} {:<16} {}",
            c.section,
            c.label,
            output,
            cycles,
            reason,
            sha,
            verdict
        );
    }
    say!(
        "passed {passed}/{} cases (RFC 4465 Appendix A, {})",
        cases.len(),
        cli::name(path)
    );
    Ok(passed == cases.len())
}

fn decompress(
    params: Parameters,
    stream: bool,
    local_bytecode: bool,
    input: &Path,
    output: &Path,
) -> Result<bool> {
    let bytes = cli::read(input)?;
    let name = cli::name(input);
    let mut d = Decompressor::new(params)?;
    let mut states = StateHandler::with_dictionaries();
    if local_bytecode {
        states.add_local(sigcomp::compress::bytecode::state());
    }
    // A SigComp message starts with 0xf8..0xff (RFC 3320 §7), never with a
    // capture's magic number.
    if pcap::is_capture(&bytes) {
        let trace = pcap::parse_supported(&bytes, &name)?;
        return decompress_pcap(&mut d, &mut states, &trace, &name, output, local_bytecode);
    }
    // A stream's first byte is its first message's (0xFF is escaped as
    // 0xFF nn, RFC 3320 §4.2.2).
    not_sigcomp(&name, &bytes)?;
    states.open_compartment(CompartmentId(0), params.state_memory_size);
    let messages: Vec<Vec<u8>> = if stream {
        let mut de = StreamDeframer::new(params.decompression_memory_size as usize);
        let mut rest: &[u8] = &bytes;
        let mut v = Vec::new();
        while !rest.is_empty() {
            let (used, rec) = de.push(rest).with_context(|| name.clone())?;
            if let Some(r) = rec {
                v.push(r.to_vec());
            }
            rest = &rest[used..];
        }
        v
    } else {
        vec![bytes]
    };
    if messages.is_empty() {
        bail!("{name}: no complete SigComp message");
    }
    let transport = if stream {
        Transport::Stream
    } else {
        Transport::Message
    };
    let mut out = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if let Ok(n) = Nack::parse(m) {
            say!(
                "message {}: NACK {} (opcode {}, pc {}, sha1 {})",
                i + 1,
                reason_name(n.reason_code),
                n.opcode,
                n.pc,
                hex::encode(n.sha1)
            );
            continue;
        }
        match d.decompress(m, transport, &states) {
            Ok(dm) => {
                say!(
                    "message {}: {} bytes out, {} cycles",
                    i + 1,
                    dm.output.len(),
                    dm.cycles
                );
                out.extend_from_slice(&dm.output);
                states
                    .commit(CompartmentId(0), &dm)
                    .with_context(|| format!("{name}: message {}", i + 1))?;
            }
            Err(f) => {
                let nack = Nack::from_failure(&f, m);
                say!(
                    "message {}: failed: {f}; NACK sha1 {}{}",
                    i + 1,
                    hex::encode(nack.sha1),
                    state_hint(&f, m, local_bytecode)
                );
                return Ok(false);
            }
        }
    }
    cli::write(output, &out)?;
    Ok(true)
}

fn asm(message: bool, destination: Option<u16>, input: &Path, output: &Path) -> Result<bool> {
    let src = read_text(input, "asm reads RFC 4464 assembly")?;
    // AsmError displays as "LINE:COLUMN: what".
    let program = sigcomp_asm::assemble_program(&src)
        .map_err(|e| anyhow::anyhow!("{}:{e}", cli::name(input)))?;
    let bytes = if message {
        let destination = destination.unwrap_or(program.origin);
        // RFC 4464 §3.3: trailing zeros need not be uploaded.
        let code = program.upload_code().to_vec();
        // RFC 3320 §7.3: destination = (n + 1) * 64 for n in 1..=15.
        if destination % 64 != 0 || !(128..=1024).contains(&destination) {
            bail!("--destination must be a multiple of 64 from 128 to 1024, not {destination}");
        }
        if code.len() > 4095 {
            bail!(
                "bytecode is {} bytes; a message can upload at most 4095",
                code.len()
            );
        }
        let n = (destination / 64 - 1) as u8;
        let len = code.len();
        let mut m = vec![0xf8, (len >> 4) as u8, ((len as u8 & 0x0f) << 4) | n];
        m.extend_from_slice(&code);
        m
    } else {
        program.code
    };
    cli::write(output, &bytes)?;
    say!("{} bytes written to {}", bytes.len(), cli::out_name(output));
    Ok(true)
}

fn disasm(raw: bool, origin: u16, input: &Path) -> Result<bool> {
    let bytes = cli::read(input)?;
    let name = cli::name(input);
    if !raw {
        if let Some(kind) = capture_kind(&bytes) {
            bail!(
                "{name} is a {kind} capture: disasm reads UDVM bytecode or one SigComp \
                 message (sigcomp decompress reads captures)"
            );
        }
        if sigcomp::message::is_sigcomp(&bytes) {
            if let Err(e) = sigcomp::Message::parse(&bytes) {
                bail!(
                    "{name}: starts like a SigComp message but is not one ({e}); \
                     --raw disassembles it as bytecode"
                );
            }
        }
    }
    let (code, origin) = match sigcomp::Message::parse(&bytes) {
        Ok(sigcomp::Message {
            code: sigcomp::Code::Bytecode { destination, code },
            ..
        }) if !raw => (code, destination),
        Ok(sigcomp::Message {
            code: sigcomp::Code::PartialStateId(id),
            ..
        }) if !raw => {
            bail!(
                "{name}: the message references state {} and uploads no bytecode",
                hex::encode(id)
            )
        }
        _ => (&bytes[..], origin),
    };
    // RFC 3320 §7: UDVM memory is 64 KiB, addresses 0 to 0xFFFF.
    let room = 65536 - usize::from(origin);
    if code.len() > room {
        bail!(
            "{name}: {} bytes of bytecode at origin {origin} pass the end of UDVM memory \
             (0xffff, 64 KiB): at most {room} bytes fit",
            code.len()
        );
    }
    say!("{}", sigcomp_asm::disassemble(code, origin));
    Ok(true)
}

/// The text of `path`; a capture is named as such (`what` says what the
/// command reads instead) rather than reported as not UTF-8.
fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = cli::read(path)?;
    if let Some(kind) = capture_kind(&bytes) {
        bail!("{} is a {kind} capture: {what}", cli::name(path));
    }
    String::from_utf8(bytes).with_context(|| format!("cannot read {}: not UTF-8", cli::name(path)))
}

/// `pcap` or `pcapng` for a capture's magic number.
fn capture_kind(bytes: &[u8]) -> Option<&'static str> {
    if !pcap::is_capture(bytes) {
        None
    } else if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        Some("pcapng")
    } else {
        Some("pcap")
    }
}

/// An error unless `bytes` starts like a SigComp message (RFC 3320 §7:
/// the first five bits are 11111), so that a SIP file or random bytes are
/// named as such rather than reported as a decompression failure.
fn not_sigcomp(name: &str, bytes: &[u8]) -> Result<()> {
    match bytes.first() {
        None => bail!("{name}: empty, not a SigComp message"),
        Some(&b) if b & 0xf8 != 0xf8 => {
            let sip = if bytes.starts_with(b"SIP/2.0 ")
                || bytes
                    .iter()
                    .position(|&c| c == b'\r' || c == b'\n')
                    .is_some_and(|e| bytes[..e].ends_with(b" SIP/2.0"))
            {
                "; it is SIP: sigcomp compress compresses it"
            } else {
                ""
            };
            bail!(
                "{name}: not a SigComp message (first byte 0x{b:02x}, RFC 3320 §7 needs \
                 11111xxx){sip}"
            )
        }
        Some(_) => Ok(()),
    }
}

/// Why a message whose header references a state may not find it: our
/// bytecode is a local state only with `--local-bytecode`.
fn state_hint(f: &sigcomp::Failure, m: &[u8], local_bytecode: bool) -> String {
    if f.reason != sigcomp::Reason::StateNotFound {
        return String::new();
    }
    match sigcomp::Message::parse(m) {
        Ok(sigcomp::Message {
            code: sigcomp::Code::PartialStateId(id),
            ..
        }) => {
            let ours = sigcomp::compress::bytecode::state();
            if ours.id().0.starts_with(id) && !local_bytecode {
                format!(
                    " (the message references state {}, our compressor's bytecode: \
                     decompress with --local-bytecode)",
                    hex::encode(id)
                )
            } else {
                format!(
                    " (the message references state {}, which is neither a dictionary \
                     (RFC 3485, RFC 5112) nor a state of this input)",
                    hex::encode(id)
                )
            }
        }
        _ => String::new(),
    }
}

fn reason_name(code: u8) -> String {
    sigcomp::Reason::from_code(code).map_or(format!("reason {code}"), |r| r.to_string())
}

type Flow = (IpAddr, u16, IpAddr, u16);

fn decompress_pcap(
    d: &mut Decompressor,
    states: &mut StateHandler,
    cap: &pcap::Trace,
    name: &str,
    output: &Path,
    local_bytecode: bool,
) -> Result<bool> {
    let sms = d.parameters().state_memory_size;
    let dms = d.parameters().decompression_memory_size as usize;
    // One compartment per direction (source to destination endpoint).
    let mut compartments: HashMap<Flow, CompartmentId> = HashMap::new();
    let mut deframers: HashMap<Flow, StreamDeframer> = HashMap::new();
    let mut out = pcap::Capture {
        linktype: pcap::LINKTYPE_ETHERNET,
        nanos: cap.nanos,
        records: Vec::new(),
    };
    let (mut ok, mut failed, mut shared) = (0usize, 0usize, 0usize);
    for (i, pkt) in cap.packets.iter().enumerate() {
        let rec = &pkt.record;
        let Some(seg) = pcap::segment(pkt.linktype, &rec.data) else {
            continue;
        };
        let flow = (seg.src, seg.sport, seg.dst, seg.dport);
        let cid = compartment(&mut compartments, states, flow, sms);
        let mut messages = Vec::new();
        match seg.proto {
            pcap::Proto::Udp => {
                if sigcomp::message::is_sigcomp(seg.payload) {
                    messages.push((seg.payload.to_vec(), Transport::Message));
                }
            }
            pcap::Proto::Tcp => {
                let de = deframers
                    .entry(flow)
                    .or_insert_with(|| StreamDeframer::new(dms));
                let mut rest = seg.payload;
                while !rest.is_empty() {
                    match de.push(rest) {
                        Ok((used, rec)) => {
                            if let Some(r) = rec {
                                if sigcomp::message::is_sigcomp(r) {
                                    messages.push((r.to_vec(), Transport::Stream));
                                }
                            }
                            rest = &rest[used..];
                        }
                        Err(e) => {
                            say!("frame {}: {e}", i + 1);
                            break;
                        }
                    }
                }
            }
        }
        for (m, transport) in messages {
            let who = format!(
                "frame {} {}:{} -> {}:{}",
                i + 1,
                seg.src,
                seg.sport,
                seg.dst,
                seg.dport
            );
            if let Ok(n) = Nack::parse(&m) {
                say!(
                    "{who}: NACK {} for message {}",
                    reason_name(n.reason_code),
                    hex::encode(n.sha1)
                );
                continue;
            }
            match d.decompress(&m, transport, states) {
                Ok(dm) => {
                    ok += 1;
                    // RFC 3321 §5.2: a message that announces itself as a
                    // shared state is kept by its sender, for the answers
                    // of the other end: we hold it as that sender would,
                    // in the compartment of the reverse direction.
                    let announced = announces_shared(&dm);
                    say!(
                        "{who}: {} -> {} bytes, {} cycles{}",
                        m.len(),
                        dm.output.len(),
                        dm.cycles,
                        if announced {
                            "; announced as a shared state (RFC 3321 §5.2), \
                             kept for the answers"
                        } else {
                            ""
                        }
                    );
                    states
                        .commit(cid, &dm)
                        .with_context(|| format!("{name}: frame {}", i + 1))?;
                    if announced {
                        let back = (seg.dst, seg.dport, seg.src, seg.sport);
                        let rcid = compartment(&mut compartments, states, back, sms);
                        let state = sigcomp::compress::shared_state(&dm.output);
                        if states.add_shared(rcid, &state, sigcomp::compress::SHARED_KEEP) {
                            shared += 1;
                        }
                    }
                    out.records.push(pcap::Record {
                        ts_sec: rec.ts_sec,
                        ts_frac: rec.ts_frac,
                        data: pcap::udp_frame(seg.src, seg.sport, seg.dst, seg.dport, &dm.output),
                    });
                }
                Err(f) => {
                    failed += 1;
                    let nack = Nack::from_failure(&f, &m);
                    say!(
                        "{who}: {f}; NACK sha1 {}{}",
                        hex::encode(nack.sha1),
                        state_hint(&f, &m, local_bytecode)
                    );
                }
            }
        }
    }
    cli::write(output, &pcap::write(&out))?;
    if shared > 0 {
        say!("{ok} decompressed, {failed} failed; {shared} shared states held (RFC 3321 §5.2)");
    } else {
        say!("{ok} decompressed, {failed} failed");
    }
    Ok(failed == 0)
}

/// The compartment of `flow`'s messages, opened at first use.
fn compartment(
    compartments: &mut HashMap<Flow, CompartmentId>,
    states: &mut StateHandler,
    flow: Flow,
    sms: u32,
) -> CompartmentId {
    let next = CompartmentId(compartments.len() as u64);
    *compartments.entry(flow).or_insert_with(|| {
        states.open_compartment(next, sms);
        next
    })
}

/// Whether a decompressed message announced itself as a shared state: its
/// returned parameters list a partial identifier of it (RFC 3321 §5.2).
fn announces_shared(dm: &sigcomp::Decompressed) -> bool {
    let Some(params) = &dm.returned_parameters else {
        return false;
    };
    let id = sigcomp::compress::shared_state(&dm.output).id().0;
    params
        .state_ids
        .iter()
        .any(|p| p.len() >= 6 && id.starts_with(p))
}
