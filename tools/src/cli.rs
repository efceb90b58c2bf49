//! What the command-line tools share about files (docs/cli.md): `-` is
//! stdin or stdout wherever a file is read or written, and every error
//! names the file it is about.
//!
//! ```
//! use std::path::Path;
//! assert_eq!(tools::cli::name(Path::new("-")), "stdin");
//! assert!(tools::cli::is_std(Path::new("-")));
//! let e = tools::cli::read(Path::new("/nonexistent/x.pcap")).unwrap_err();
//! assert!(e.to_string().starts_with("cannot read /nonexistent/x.pcap: "));
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
