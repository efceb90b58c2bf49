//! What the command-line tools share about files (docs/cli.md): `-` is
//! stdin or stdout wherever a file is read or written, and every error
//! names the file it is about.
//!
//! ```
//! use std::path::Path;
//! assert_eq!(tools::cli::name(Path::new("-")), "stdin");
//! assert!(tools::cli::is_std(Path::new("-")));
//! let e = tools::cli::read(Path::new("/nonexistent/x.pcap")).unwrap_err();
//! assert!(format!("{e:#}").starts_with("cannot read /nonexistent/x.pcap: "));
//! ```

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// Whether `path` is `-`, stdin for a file read or stdout for a file
/// written.
pub fn is_std(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// How errors name `path`: `stdin` for `-`, else the path as given.
pub fn name(path: &Path) -> String {
    if is_std(path) {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    }
}

/// How errors name an output `path`: `stdout` for `-`.
pub fn out_name(path: &Path) -> String {
    if is_std(path) {
        "stdout".to_owned()
    } else {
        path.display().to_string()
    }
}

/// The bytes of `path`, or of stdin for `-`; the error names the file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    if is_std(path) {
        let mut v = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut v)
            .context("cannot read stdin")?;
        return Ok(v);
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The text of `path` (UTF-8), or of stdin for `-`; the error names the
/// file.
pub fn read_to_string(path: &Path) -> Result<String> {
    let bytes = read(path)?;
    String::from_utf8(bytes).with_context(|| format!("cannot read {}: not UTF-8", name(path)))
}

/// Writes `bytes` to `path`, or to stdout for `-`; the error names the file.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if is_std(path) {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(bytes)
            .and_then(|()| out.flush())
            .context("cannot write stdout");
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Where a tool's report lines go: stdout, unless stdout carries the
/// output (`-`), then stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Report lines on stdout.
    Stdout,
    /// Report lines on stderr (stdout carries data).
    Stderr,
}

impl Report {
    /// Stderr when any of `outputs` is `-`.
    pub fn for_outputs<'a>(outputs: impl IntoIterator<Item = &'a Path>) -> Report {
        if outputs.into_iter().any(is_std) {
            Report::Stderr
        } else {
            Report::Stdout
        }
    }

    /// Writes one line; a closed stream (e.g. piped into `head`) is ignored
    /// rather than a panic.
    pub fn line(self, args: std::fmt::Arguments<'_>) {
        let _ = match self {
            Report::Stdout => writeln!(std::io::stdout().lock(), "{args}"),
            Report::Stderr => writeln!(std::io::stderr().lock(), "{args}"),
        };
    }
}

/// A setkey-language error (`sadb::Error`) about the file errors call
/// `name`, in the form compilers use: `FILE:LINE:COLUMN: message` when the
/// error has a position, else `FILE: message`.
///
/// ```
/// let e = sadb::parse("flush;\nadd 192.0.2.1 192.0.2.2 esp 0x10;\n").unwrap_err();
/// let line = tools::cli::located("sa.conf", &e);
/// assert!(line.starts_with("sa.conf:2:"), "{line}");
/// ```
pub fn located(name: &str, e: &sadb::Error) -> String {
    let msg = e.to_string();
    match e.pos() {
        Some(p) => {
            // sadb's message starts "line L, column C: ".
            let prefix = format!("line {}, column {}: ", p.line, p.col);
            let msg = msg.strip_prefix(&prefix).unwrap_or(&msg);
            format!("{name}:{}:{}: {msg}", p.line, p.col)
        }
        None => format!("{name}: {msg}"),
    }
}
