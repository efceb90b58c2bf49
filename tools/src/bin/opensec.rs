//! `opensec`: tools around the `opensec` algorithms for researchers.
//!
//! `opensec vectors [DIR]` runs every known-answer vector file (`*.txt`, the
//! format of `vectors/data/README.md`) of DIR, by default the files shipped
//! in `vectors/data/`, and prints a pass/fail table, then the details of
//! every failure. Exit status: 0 if every case passed, 1 if any failed, 2 on
//! a usage or IO error (with a one-line reason).
//!
//! `opensec vectors --list [DIR]` lists the same files with their algorithm,
//! source and number of cases without running them (exit 1 if a file would
//! fail before its first case: malformed, unknown algorithm, no case).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use vectors::{FileListing, FileReport};

/// Tools around the opensec algorithms (IPsec ciphers and MACs, MILENAGE,
/// HTTP digest).
#[derive(Parser, Debug)]
#[command(
    name = "opensec",
    version,
    about = "Tools around the opensec algorithms: known-answer vector runner",
    long_about = "Tools around the opensec algorithms (IPsec ciphers and MACs, MILENAGE, \
        HTTP digest): `vectors` runs every known-answer vector file (*.txt, the format of \
        vectors/data/README.md) of a directory and prints a pass/fail table, then the \
        details of every failure.\n\n\
        Exit status: 0 every case passed, 1 a case or a vector file failed, 2 usage or IO \
        error (one line naming the directory).",
    after_help = "Examples:\n  \
        opensec vectors\n  \
        opensec vectors vectors/data\n  \
        opensec vectors my-vectors/ | grep FAIL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every known-answer vector file of DIR and print a pass/fail table.
    ///
    /// Exit status 0 if all cases pass, 1 if any fails, 2 if DIR cannot be read.
    #[command(after_help = "Examples:\n  \
        opensec vectors                  run the shipped vectors (vectors/data)\n  \
        opensec vectors --list           list them: file, algorithm, source, cases\n  \
        opensec vectors my-vectors/      run the *.txt files of another directory")]
    Vectors {
        /// List the files with their source and number of cases, without
        /// running them.
        #[arg(long)]
        list: bool,
        /// Directory of vector files (*.txt); default: the shipped vectors.
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Vectors { list, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(vectors::DEFAULT_DIR));
            let outcome = if list {
                list_command(&dir)
            } else {
                vectors_command(&dir)
            };
            match outcome {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("opensec: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Runs the vectors of `dir` and prints the report; `Ok(true)` if all pass.
fn vectors_command(dir: &Path) -> anyhow::Result<bool> {
    let reports = vectors::run_dir(dir).context("cannot read vector directory")?;
    if reports.is_empty() {
        bail!("no vector files (*.txt) in {}", dir.display());
    }
    print!("{}", render(&reports));
    Ok(reports.iter().all(FileReport::ok))
}

/// Lists the vector files of `dir` without running them; `Ok(true)` if every
/// file loads.
fn list_command(dir: &Path) -> anyhow::Result<bool> {
    let files = vectors::list_dir(dir).context("cannot read vector directory")?;
    if files.is_empty() {
        bail!("no vector files (*.txt) in {}", dir.display());
    }
    print!("{}", render_list(&files));
    Ok(files.iter().all(|f| f.file.is_ok()))
}

/// The `--list` table: file, algorithm, source, cases; then a line per file
/// that does not load, and a summary.
fn render_list(files: &[FileListing]) -> String {
    let header = ["file", "algorithm", "source", "cases"];
    let rows: Vec<[String; 4]> = files
        .iter()
        .map(|f| match &f.file {
            Ok(v) => [
                f.name.clone(),
                v.algorithm.clone(),
                v.source.clone(),
                v.cases.len().to_string(),
            ],
            Err(_) => [f.name.clone(), "-".into(), "-".into(), "-".into()],
        })
        .collect();
    let mut out = table(&header, &rows, &[3]);
    let mut bad = 0;
    for f in files {
        if let Err(e) = &f.file {
            bad += 1;
            let _ = writeln!(out, "FAIL {}: {e}", f.name);
        }
    }
    let cases: usize = files
        .iter()
        .filter_map(|f| f.file.as_ref().ok())
        .map(|v| v.cases.len())
        .sum();
    let _ = writeln!(
        out,
        "\n{} files, {cases} cases (not run){}",
        files.len(),
        if bad == 0 {
            String::new()
        } else {
            format!("; {bad} file(s) do not load")
        }
    );
    out
}

/// A text table: one line per row, columns padded to their widest cell;
/// the columns in `right` are right-aligned, the others left-aligned.
fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]], right: &[usize]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
            if right.contains(&i) {
                let _ = write!(l, "{pad}{cell}  ");
            } else {
                let _ = write!(l, "{cell}{pad}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

/// The table, the failure details and a summary line.
fn render(reports: &[FileReport]) -> String {
    let header = [
        "file",
        "algorithm",
        "source",
        "cases",
        "passed",
        "failed",
        "result",
    ];
    let rows: Vec<[String; 7]> = reports
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                if r.algorithm.is_empty() {
                    "-".into()
                } else {
                    r.algorithm.clone()
                },
                if r.source.is_empty() {
                    "-".into()
                } else {
                    r.source.clone()
                },
                r.cases.len().to_string(),
                r.passed().to_string(),
                r.failed().to_string(),
                if r.ok() { "PASS".into() } else { "FAIL".into() },
            ]
        })
        .collect();
    // Counts are right-aligned, text left-aligned.
    let mut out = table(&header, &rows, &[3, 4, 5]);

    let mut details = String::new();
    for r in reports {
        if let Some(e) = &r.error {
            let _ = writeln!(details, "FAIL {}: {e}", r.name);
        }
        for c in r.cases.iter().filter(|c| !c.passed()) {
            let _ = writeln!(details, "FAIL {} [{}] (line {}):", r.name, c.name, c.line);
            for f in &c.failures {
                let _ = writeln!(details, "    {f}");
            }
        }
    }
    if !details.is_empty() {
        out.push('\n');
        out.push_str(&details);
    }
    let cases: usize = reports.iter().map(|r| r.cases.len()).sum();
    let passed: usize = reports.iter().map(FileReport::passed).sum();
    let bad_files = reports.iter().filter(|r| !r.ok()).count();
    let _ = writeln!(
        out,
        "\n{} files, {cases} cases: {passed} passed, {} failed; {}",
        reports.len(),
        cases - passed,
        if bad_files == 0 {
            "all files pass".to_string()
        } else {
            format!("{bad_files} file(s) FAIL")
        }
    );
    out
}
