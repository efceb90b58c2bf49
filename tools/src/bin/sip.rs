//! `sip`: the SIP codec of `gm` for researchers: RFC 4475 torture verdicts
//! and the typed view of any SIP message file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use gm::sip::Message;
use gm::sip::check::Policy;
use gm::sip::torture::{self, Verdict};

/// `println!` that ignores a closed stdout (e.g. piped into `head`).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

const AFTER_HELP: &str = "\
Examples:
  sip torture                          every RFC 4475 message: expected and actual verdicts
  sip torture vectors/sip-torture      the same, from a directory of NAME.dat + verdicts.txt
  sip parse vectors/sip-corpus/01-register.sip
                                       the REGISTER's typed view (Via, Security-Client...) as JSON
  sip parse --stream capture.txt       every message of a TCP byte stream, in order
  sip parse a.sip b.sip | jq .typed.cseq

Verdicts: accept; reject(ELEMENT) (not a SIP message: the element at fault);
answer(STATUS) (a well-formed request a UAS refuses, RFC 3261 8.2); discard (a
well-formed response a UAC drops). Exit status: 0 success, 1 a verdict
differs from the RFC's or a message does not parse (one line naming the
file), 2 usage or IO error.";

/// The SIP codec of gm: RFC 4475 torture verdicts, typed views as JSON.
#[derive(Parser)]
#[command(
    name = "sip",
    version,
    about = "SIP codec tools: RFC 4475 torture verdicts, typed views of messages as JSON",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Judge every RFC 4475 message and print the expected and actual
    /// verdicts; exit 1 on any difference.
    Torture {
        /// Directory of NAME.dat files and verdicts.txt (default: the copy
        /// shipped in vectors/sip-torture/).
        dir: Option<PathBuf>,
    },
    /// Print each message's typed view as JSON (one document per message,
    /// with the verdict a Gm UAS/UAC gives it); exit 1 if one does not
    /// parse.
    Parse {
        /// Each file is a byte stream of messages (framed by
        /// Content-Length) rather than one datagram.
        #[arg(long)]
        stream: bool,
        /// SIP message files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Torture { dir } => torture_cmd(dir.as_deref()),
        Command::Parse { stream, files } => parse_cmd(stream, &files),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sip: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn torture_cmd(dir: Option<&Path>) -> Result<bool> {
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sip-torture");
    let default = default.canonicalize().unwrap_or(default);
    let dir = dir.unwrap_or(&default);
    let list = dir.join("verdicts.txt");
    let text =
        std::fs::read_to_string(&list).with_context(|| format!("reading {}", list.display()))?;
    let expected = torture::parse_expectations(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", list.display()))?;
    if expected.is_empty() {
        bail!("{}: no verdicts", list.display());
    }
    say!(
        "{:<11} {:<9} {:<27} {:<27} {:<6} why",
        "message",
        "section",
        "expected (RFC 4475)",
        "actual",
        "result"
    );
    let mut passed = 0;
    for e in &expected {
        let path = dir.join(format!("{}.dat", e.name));
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let v = torture::judge(&bytes, &Policy::GM);
        let ok = v.matches(e);
        passed += usize::from(ok);
        let actual = match &v {
            Verdict::Reject(err) if !bytes.starts_with(b"SIP/") => {
                format!("{} {}", v.short(), err.status())
            }
            _ => v.short(),
        };
        let expected_text = match (&e.verdict, e.rfc_status) {
            (torture::Expected::Reject(_), Some(s)) => format!("{} {s}", e.verdict),
            _ => e.verdict.to_string(),
        };
        say!(
            "{:<11} {:<9} {:<27} {:<27} {:<6} {}",
            e.name,
            e.section,
            expected_text,
            actual,
            if ok { "pass" } else { "FAIL" },
            v.reason().unwrap_or_default()
        );
    }
    say!(
        "passed {passed}/{} messages (RFC 4475, {})",
        expected.len(),
        dir.display()
    );
    Ok(passed == expected.len())
}

fn parse_cmd(stream: bool, files: &[PathBuf]) -> Result<bool> {
    let mut all_ok = true;
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let mut rest = &bytes[..];
        let mut index = 0usize;
        loop {
            let parsed = if stream {
                match Message::parse_stream(rest, usize::MAX) {
                    Ok(Some((m, used))) => Ok((m, used)),
                    Ok(None) if rest.iter().all(|b| *b == b'\r' || *b == b'\n') => break,
                    Ok(None) => Err(gm::sip::Error::NoHeaderEnd),
                    Err(e) => Err(e),
                }
            } else {
                Message::parse_datagram(rest)
            };
            let view = parsed.and_then(|(m, used)| {
                m.validate()?;
                let mut j = tools::sip_view::message(&m)?;
                let mut doc = tools::json::Json::obj();
                doc.set("file", f.display().to_string());
                if stream {
                    doc.set("index", index);
                }
                doc.set("length", m.len());
                let v = torture::judge(&m.to_bytes(), &Policy::GM);
                doc.set("verdict", v.short()).set_opt("why", v.reason());
                if !stream && used < rest.len() {
                    doc.set("ignored_trailing_bytes", rest.len() - used);
                }
                if let tools::json::Json::Obj(fields) = &mut j {
                    if let tools::json::Json::Obj(d) = &mut doc {
                        d.append(fields);
                    }
                }
                Ok((doc, used))
            });
            match view {
                Ok((doc, used)) => {
                    say!("{doc}");
                    rest = rest.get(used..).unwrap_or_default();
                }
                Err(e) => {
                    eprintln!("sip: {}: {e}", f.display());
                    all_ok = false;
                    break;
                }
            }
            index += 1;
            if !stream {
                break;
            }
        }
    }
    Ok(all_ok)
}
