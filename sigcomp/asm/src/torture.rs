//! A driver for the RFC 4465 Appendix A torture tests in the line format
//! of `vectors/sigcomp/rfc4465-torture-tests.txt` (its header explains
//! the records). It runs each section as RFC 4465 describes it: messages
//! with their compressed inputs appended, multi-message sections sharing a
//! state handler, the A.2.4 byte streams through the stream deframer, and
//! A.3.3 with three compartments; every successful message is confirmed
//! so that its states are saved.

use sha1::{Digest, Sha1};

use sigcomp::{
    CompartmentId, Decompressor, Failure, Nack, Parameters, Reason, StateHandler, StreamDeframer,
    Transport,
};

/// The expected result of one decompression.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Expected output bytes (`Some(empty)` for `output none`).
    pub output: Option<Vec<u8>>,
    /// Expected cycles.
    pub cycles: Option<u64>,
    /// Expected failure reason.
    pub failure: Option<Reason>,
}

/// One decompression of the torture suite and how it went.
#[derive(Debug, Clone)]
pub struct Case {
    /// Section, e.g. `A.1.2`.
    pub section: String,
    /// Label of the case within the section (input bytes or message index).
    pub label: String,
    /// The SigComp message decompressed (un-escaped for streams).
    pub message: Vec<u8>,
    /// What RFC 4465 expects.
    pub expected: Expected,
    /// The output we produced (on success).
    pub output: Option<Vec<u8>>,
    /// Cycles used (also on failure, up to the failing instruction).
    pub cycles: u64,
    /// Our failure, if any.
    pub failure: Option<Failure>,
    /// SHA-1 of the failed message as carried in our NACK.
    pub nack_sha1: Option<[u8; 20]>,
    /// Extra check that failed (state counts, feedback, NACK round trip).
    pub problem: Option<String>,
    /// Requested feedback of a successful message.
    pub requested_feedback: Option<sigcomp::RequestedFeedback>,
    /// Returned parameters of a successful message.
    pub returned_parameters: Option<sigcomp::ReturnedParameters>,
}

impl Case {
    /// Whether the result matches every expectation.
    pub fn passed(&self) -> bool {
        if self.problem.is_some() {
            return false;
        }
        match (&self.expected.failure, &self.failure) {
            (Some(r), Some(f)) => *r == f.reason,
            (None, None) => {
                self.expected
                    .output
                    .as_ref()
                    .is_none_or(|o| Some(o) == self.output.as_ref())
                    && self.expected.cycles.is_none_or(|c| c == self.cycles)
            }
            _ => false,
        }
    }
}

/// Parameters the suite runs with: RFC 4465 §1 (2K DMS, 16 cycles per
/// bit, 2K state memory) and SigComp_version 1: the A.2.1 bytecode stores
/// the version byte in the state it creates, and the identifier the
/// second A.2.1 message references (`3adb1d3d20aa`) is that of version 1.
pub fn parameters() -> Parameters {
    Parameters {
        decompression_memory_size: 2048,
        state_memory_size: 2048,
        cycles_per_bit: 16,
        version: 1,
    }
}

/// Error in the vector file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl core::fmt::Display for FileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for FileError {}

#[derive(Debug, Default)]
struct Run {
    message: Vec<u8>,
    input: Vec<u8>,
    input_label: String,
    expected: Vec<Expected>,
}

#[derive(Debug, Default)]
struct Section {
    name: String,
    runs: Vec<Run>,
}

fn unhex(s: &str, line: usize) -> Result<Vec<u8>, FileError> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return Err(FileError {
            line,
            reason: "odd hex length".into(),
        });
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(FileError {
                    line,
                    reason: format!("bad hex {s:?}"),
                })
        })
        .collect()
}

fn parse(text: &str, p: &Parameters) -> Result<Vec<Section>, FileError> {
    let mut sections: Vec<Section> = Vec::new();
    let mut message: Option<Vec<u8>> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (kind, rest) = l.split_once(' ').unwrap_or((l, ""));
        let rest = rest.trim();
        let err = |reason: &str| FileError {
            line,
            reason: reason.into(),
        };
        match kind {
            "==" => {
                let name = rest.split_whitespace().next().unwrap_or("").to_string();
                sections.push(Section {
                    name,
                    runs: Vec::new(),
                });
                message = None;
            }
            "message" => {
                let m = unhex(rest, line)?;
                // RFC 3320 §7: the UDVM has 64 KiB of memory, and no
                // datagram is larger.
                if m.len() > 65536 {
                    return Err(FileError {
                        line,
                        reason: format!(
                            "message of {} bytes is over 64 KiB (the UDVM's memory, RFC 3320 §7)",
                            m.len()
                        ),
                    });
                }
                let sec = sections.last_mut().ok_or(err("message before a section"))?;
                // A message is run when an input line names its input, or
                // directly when expectations follow (the A.2.4 stream).
                sec.runs.push(Run {
                    message: m.clone(),
                    input_label: "-".into(),
                    ..Run::default()
                });
                message = Some(m);
            }
            "input" => {
                let m = message.clone().ok_or(err("input before a message"))?;
                let sec = sections.last_mut().ok_or(err("input before a section"))?;
                let input = if rest == "none" {
                    Vec::new()
                } else if let Some(t) = rest.strip_prefix("text:") {
                    // RFC 4465 §3.1: the version byte, then 0x0000, 0x0001
                    // or 0x0100.
                    let mut v = vec![p.version];
                    if let Some(h) = t.trim().strip_prefix("1 byte of SigComp version then 0x") {
                        v.extend(unhex(h, line)?);
                    }
                    v
                } else {
                    unhex(rest, line)?
                };
                let label = if rest == "none" {
                    "none".to_string()
                } else {
                    rest.trim_start_matches("text: ").to_string()
                };
                // Replace the message's placeholder run if it has no input yet.
                match sec.runs.last_mut() {
                    Some(r) if r.input_label == "-" && r.expected.is_empty() && r.message == m => {
                        r.input = input;
                        r.input_label = label;
                    }
                    _ => sec.runs.push(Run {
                        message: m,
                        input,
                        input_label: label,
                        expected: Vec::new(),
                    }),
                }
            }
            "output" | "cycles" | "failure" => {
                let run = sections
                    .last_mut()
                    .and_then(|s| s.runs.last_mut())
                    .ok_or(err("expectation before a message"))?;
                let needs_new = match run.expected.last() {
                    None => true,
                    Some(e) => match kind {
                        "output" | "failure" => e.output.is_some() || e.failure.is_some(),
                        _ => e.cycles.is_some(),
                    },
                };
                if needs_new {
                    run.expected.push(Expected::default());
                }
                let e = run.expected.last_mut().ok_or(err("internal"))?;
                match kind {
                    "output" => {
                        e.output = Some(if rest == "none" {
                            Vec::new()
                        } else if rest.starts_with("text: decompression_memory_size") {
                            (p.decompression_memory_size as u16).to_be_bytes().to_vec()
                        } else {
                            unhex(rest, line)?
                        });
                    }
                    "cycles" => {
                        e.cycles = Some(if rest == "text: cycles_per_bit * 1080" {
                            u64::from(p.cycles_per_bit) * 1080
                        } else {
                            rest.parse().map_err(|_| err("bad cycles"))?
                        });
                    }
                    _ => {
                        let name = rest.split_whitespace().next().unwrap_or("");
                        e.failure = Some(Reason::from_name(name).ok_or(err("unknown reason"))?);
                    }
                }
            }
            "note" => {}
            _ => return Err(err("unknown record")),
        }
    }
    // Drop placeholder runs that never got an input or expectation (the
    // A.1.16 set-up message keeps its `input none`).
    for s in &mut sections {
        s.runs
            .retain(|r| r.input_label != "-" || !r.expected.is_empty());
    }
    Ok(sections)
}

/// Runs every section of the torture file `text`.
pub fn run(text: &str) -> Result<Vec<Case>, FileError> {
    let params = parameters();
    let sections = parse(text, &params)?;
    let mut cases = Vec::new();
    for sec in sections {
        if sec.runs.is_empty() {
            continue;
        }
        let mut states = StateHandler::with_dictionaries();
        for c in 0..3 {
            states.open_compartment(CompartmentId(c), params.state_memory_size);
        }
        let mut d = Decompressor::new(params).map_err(|e| FileError {
            line: 0,
            reason: e.to_string(),
        })?;
        let stream = sec.name == "A.2.4";
        for (n, run) in sec.runs.iter().enumerate() {
            let mut expected = run.expected.clone();
            if expected.is_empty() {
                // Set-up messages (A.1.16): must succeed.
                expected.push(Expected::default());
            }
            if stream {
                let mut deframer = StreamDeframer::new(params.decompression_memory_size as usize);
                let mut rest: &[u8] = &run.message;
                let mut k = 0;
                for exp in &expected {
                    let mut exp = exp.clone();
                    if let Some(o) = exp.output.as_mut() {
                        // RFC 4465 §3.4: the DMS, then five 0xff bytes.
                        o.extend_from_slice(&[0xff; 5]);
                    }
                    let mut record = None;
                    while record.is_none() && !rest.is_empty() {
                        match deframer.push(rest) {
                            Ok((used, r)) => {
                                rest = &rest[used..];
                                record = r.map(<[u8]>::to_vec);
                            }
                            Err(_) => break,
                        }
                    }
                    k += 1;
                    let label = format!("stream {} record {k}", n + 1);
                    let case = match record {
                        Some(rec) => one(
                            &mut d,
                            &mut states,
                            &sec.name,
                            label,
                            &rec,
                            Transport::Stream,
                            exp,
                            0,
                        ),
                        None => Case {
                            section: sec.name.clone(),
                            label,
                            message: Vec::new(),
                            expected: exp,
                            output: None,
                            cycles: 0,
                            failure: None,
                            nack_sha1: None,
                            problem: Some("no complete record in the stream".into()),
                            requested_feedback: None,
                            returned_parameters: None,
                        },
                    };
                    cases.push(case);
                }
                continue;
            }
            let mut msg = run.message.clone();
            msg.extend_from_slice(&run.input);
            // RFC 4465 §4.3: message N is saved in compartment N mod 3.
            let compartment = if sec.name == "A.3.3" {
                u64::from(run.input.first().copied().unwrap_or(0) % 3)
            } else {
                0
            };
            let label = if run.input_label == "-" {
                format!("message {}", n + 1)
            } else {
                format!("input {}", run.input_label)
            };
            for exp in expected {
                let mut case = one(
                    &mut d,
                    &mut states,
                    &sec.name,
                    label.clone(),
                    &msg,
                    Transport::Message,
                    exp,
                    compartment,
                );
                if sec.name == "A.1.15" && case.problem.is_none() && case.failure.is_none() {
                    // RFC 4465 §2.15: the number of states after each message.
                    let want = match run.input.as_slice() {
                        [0x01] => 1,
                        [0x02] => 0,
                        [0x03] => 1,
                        [0x04, 0x06] => 0,
                        [0x09] => 1,
                        [0x1e, 0x06] => 2,
                        [0x1e, 0x07] | [0x1e, 0x14] => 0,
                        _ => usize::MAX,
                    };
                    let got = states.compartment(CompartmentId(0)).map_or(0, |c| c.len());
                    if want != usize::MAX && got != want {
                        case.problem = Some(format!(
                            "{got} states in the compartment, RFC 4465 says {want}"
                        ));
                    }
                }
                if sec.name == "A.3.1" && case.problem.is_none() && case.failure.is_none() {
                    case.problem = check_feedback(&case, &run.input);
                }
                cases.push(case);
            }
        }
    }
    Ok(cases)
}

/// RFC 4465 §4.1: input 0x00 requests the 1-byte feedback item 0x7f,
/// 0x01 the long item 0xff 0x01..=0x7f; both announce the minimum
/// parameters (cpb 16, dms 2048, sms 0, version 1) and three partial
/// state identifiers 0x00 0x01 … of 6, 12 and 20 bytes.
fn check_feedback(case: &Case, input: &[u8]) -> Option<String> {
    let want_item: Vec<u8> = match input {
        [0x00] => vec![0x7f],
        [0x01] => core::iter::once(0xff).chain(1..=0x7f).collect(),
        _ => return None,
    };
    let rf = case.requested_feedback.as_ref();
    if rf.and_then(|r| r.item.as_ref()) != Some(&want_item) {
        return Some(format!(
            "requested feedback item {:?}",
            rf.and_then(|r| r.item.as_ref())
        ));
    }
    let rp = case.returned_parameters.as_ref()?;
    let want_ids: Vec<Vec<u8>> = [6u8, 12, 20].iter().map(|&n| (0..n).collect()).collect();
    let r = rp.resources?;
    if (
        r.cycles_per_bit,
        r.decompression_memory_size,
        r.state_memory_size,
    ) != (16, 2048, 0)
        || rp.version != Some(1)
        || rp.state_ids != want_ids
    {
        return Some(format!("returned parameters {rp:?}"));
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn one(
    d: &mut Decompressor,
    states: &mut StateHandler,
    section: &str,
    label: String,
    msg: &[u8],
    transport: Transport,
    expected: Expected,
    compartment: u64,
) -> Case {
    let mut case = Case {
        section: section.to_string(),
        label,
        message: msg.to_vec(),
        expected,
        output: None,
        cycles: 0,
        failure: None,
        nack_sha1: None,
        problem: None,
        requested_feedback: None,
        returned_parameters: None,
    };
    match d.decompress(msg, transport, states) {
        Ok(out) => {
            case.cycles = out.cycles;
            case.output = Some(out.output.clone());
            case.requested_feedback = out.requested_feedback.clone();
            case.returned_parameters = out.returned_parameters.clone();
            if let Err(e) = states.commit(CompartmentId(compartment), &out) {
                case.problem = Some(e.to_string());
            }
        }
        Err(f) => {
            case.cycles = f.cycles;
            let nack = Nack::from_failure(&f, msg);
            let mut wire = Vec::new();
            nack.emit(&mut wire);
            match Nack::parse(&wire) {
                Ok(back) if back == nack => {}
                _ => case.problem = Some("NACK does not round-trip".into()),
            }
            let want: [u8; 20] = Sha1::digest(msg).into();
            if nack.sha1 != want {
                case.problem = Some("NACK SHA-1 is not the SHA-1 of the message".into());
            }
            case.nack_sha1 = Some(nack.sha1);
            case.failure = Some(f);
        }
    }
    case
}
