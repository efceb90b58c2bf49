//! `setkey`: the ipsec-tools command line against `ipsecd` (setkey(8)
//! options and syntax; the SAD/SPD live in the daemon, reached through its
//! control socket).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tools::ipsecd::control;

const AFTER_HELP: &str = "\
Examples (ipsec-tools syntax, see setkey(8)):
  setkey -f /etc/ipsec-tools.conf      apply a file, all or nothing
  echo 'flush; spdflush;' | setkey -c  apply from stdin
  setkey -n -f FILE                    check only: parse, change nothing
  setkey -D / -DP                      dump SAs / policies (with counters)
  setkey -F / -FP                      flush SAs / policies
  setkey --stats                       ipsecd's data-path counters

A file with one bad statement changes nothing; the error names its line and
column. Exit status: 0 on success, 1 on any error (as ipsec-tools).
The daemon is found at --socket, $IPSECD_SOCKET, or the default socket of
this network namespace's ipsecd (/run/ipsecd/ns-INODE.sock).";

/// Manually manipulate the IPsec SA/SP database of ipsecd.
#[derive(Parser, Debug)]
#[command(name = "setkey", version, about = "Manage the SAD and SPD of ipsecd with ipsec-tools setkey commands", after_help = AFTER_HELP)]
struct Cli {
    /// Read operations from FILE.
    #[arg(short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
    /// Read operations from standard input.
    #[arg(short = 'c')]
    stdin: bool,
    /// Dump the SAD (with -P: the SPD).
    #[arg(short = 'D')]
    dump: bool,
    /// Flush the SAD (with -P: the SPD).
    #[arg(short = 'F')]
    flush: bool,
    /// With -D/-F: the SPD instead of the SAD.
    #[arg(short = 'P')]
    policy: bool,
    /// No action: check the syntax only.
    #[arg(short = 'n')]
    check: bool,
    /// Verbose: say what was done.
    #[arg(short = 'v')]
    verbose: bool,
    /// Accepted for compatibility (dead SAs are not kept).
    #[arg(short = 'a')]
    all: bool,
    /// ipsecd's data-path counters.
    #[arg(long)]
    stats: bool,
    /// ipsecd's control socket [default: $IPSECD_SOCKET or this network
    /// namespace's /run/ipsecd/ns-INODE.sock].
    #[arg(short = 's', long)]
    socket: Option<PathBuf>,
    /// Files to apply (as -f).
    files: Vec<PathBuf>,
}

fn read_script(cli: &Cli) -> anyhow::Result<Option<(String, String)>> {
    if cli.stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(Some(("(stdin)".into(), s)));
    }
    let path = cli.file.as_ref().or(cli.files.first());
    match path {
        Some(p) => {
            let s =
                std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            Ok(Some((p.display().to_string(), s)))
        }
        None => Ok(None),
    }
}

fn socket(cli: &Cli) -> PathBuf {
    cli.socket.clone().unwrap_or_else(|| {
        std::env::var_os("IPSECD_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(tools::ipsecd::instance::default_socket)
    })
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    if let Some((name, script)) = read_script(cli)? {
        if cli.check {
            let stmts = sadb::parse(&script).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            if cli.verbose {
                println!("{name}: {} statements, syntax OK", stmts.len());
            }
            return Ok(());
        }
        // Parse here first: a syntax error needs no daemon.
        let stmts = sadb::parse(&script).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let out = control::request(&socket(cli), "apply", &script)
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        print!("{out}");
        if cli.verbose {
            println!("{name}: {} statements applied", stmts.len());
        }
        return Ok(());
    }
    let (cmd, body) = match (cli.dump, cli.flush, cli.policy, cli.stats) {
        (_, _, _, true) => ("stats", ""),
        (true, false, false, _) => ("dump", ""),
        (true, false, true, _) => ("spddump", ""),
        (false, true, false, _) => ("apply", "flush;\n"),
        (false, true, true, _) => ("apply", "spdflush;\n"),
        _ => anyhow::bail!("nothing to do: give -f FILE, -c, -D, -DP, -F or -FP (see --help)"),
    };
    if cli.check {
        return Ok(());
    }
    let out = control::request(&socket(cli), cmd, body)?;
    print!("{out}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = cli.all;
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("setkey: {e:#}");
            ExitCode::from(1)
        }
    }
}
