//! `setkey`: the ipsec-tools command line against `ipsecd` (setkey(8)
//! options and syntax; the SAD/SPD live in the daemon, reached through its
//! control socket).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sadb::Owner;
use tools::ipsecd::client::{Client, ClientError};

const AFTER_HELP: &str = "\
Examples (ipsec-tools syntax, see setkey(8)):
  setkey -f /etc/ipsec-tools.conf      apply a file, all or nothing
  echo 'flush; spdflush;' | setkey -c  apply from stdin (- as FILE too)
  setkey -n -f FILE                    check only: parse, change nothing
  setkey -D / -DP                      dump SAs / policies (with counters)
  setkey -F / -FP                      flush SAs / policies
  echo 'getspi 192.0.2.1 192.0.2.2 esp 0;' | setkey -c --owner ue1
                                       hold a random SPI until an update
  setkey --delete-owned ue1            remove everything ue1 installed
  setkey --stats                       ipsecd's data-path counters

A file with one bad statement changes nothing; the error names its line and
column. Exit status: 0 success; 1 ipsecd refused the request (an SA that
exists, an entry of another owner...); 2 usage, syntax, file or connection
error. The daemon is found at --socket, $IPSECD_SOCKET, or the default
socket of this network namespace's ipsecd (/run/ipsecd/ns-INODE.sock).";

/// Manually manipulate the IPsec SA/SP database of ipsecd.
#[derive(Parser, Debug)]
#[command(name = "setkey", version, about = "Manage the SAD and SPD of ipsecd with ipsec-tools setkey commands", after_help = AFTER_HELP)]
struct Cli {
    /// Read operations from FILE (- for standard input).
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
    /// Apply on behalf of OWNER: what the script adds is tagged with it
    /// (shown as owner=OWNER in -D/-DP), and it may change or delete only
    /// OWNER's entries; flushes are refused.
    #[arg(long, value_name = "OWNER")]
    owner: Option<String>,
    /// Remove, at once, every SA, larval SA and policy tagged OWNER.
    #[arg(long, value_name = "OWNER", conflicts_with_all = ["file", "stdin", "dump", "flush", "stats", "owner"])]
    delete_owned: Option<String>,
    /// ipsecd's control socket [default: $IPSECD_SOCKET or this network
    /// namespace's /run/ipsecd/ns-INODE.sock].
    #[arg(short = 's', long)]
    socket: Option<PathBuf>,
    /// Files to apply (as -f).
    files: Vec<PathBuf>,
}

/// Why setkey failed, and its exit status.
enum Failure {
    /// ipsecd refused (1).
    Refused(String),
    /// Usage, syntax, file or connection (2).
    Error(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused(why) => Failure::Refused(why),
            other => Failure::Error(other.to_string()),
        }
    }
}

fn read_script(cli: &Cli) -> Result<Option<(String, String)>, Failure> {
    let path = match (cli.stdin, cli.file.as_ref().or(cli.files.first())) {
        (true, _) => PathBuf::from("-"),
        (false, Some(p)) => p.clone(),
        (false, None) => return Ok(None),
    };
    let text = tools::cli::read_to_string(&path).map_err(|e| Failure::Error(format!("{e:#}")))?;
    Ok(Some((tools::cli::name(&path), text)))
}

fn socket(cli: &Cli) -> PathBuf {
    cli.socket.clone().unwrap_or_else(|| {
        std::env::var_os("IPSECD_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(tools::ipsecd::instance::default_socket)
    })
}

fn owner(tag: &str) -> Result<Owner, Failure> {
    Owner::new(tag).map_err(|e| Failure::Error(format!("--owner: {e}")))
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let client = Client::new(socket(cli));
    if let Some(tag) = &cli.delete_owned {
        let o = owner(tag)?;
        if cli.check {
            return Ok(());
        }
        let r = client.delete_owned(&o)?;
        if cli.verbose {
            println!(
                "{o}: removed {} SAs, {} larval SAs, {} policies",
                r.sas, r.larval, r.policies
            );
        }
        return Ok(());
    }
    let tag = cli.owner.as_deref().map(owner).transpose()?;
    if let Some((name, script)) = read_script(cli)? {
        // Parse here first: a syntax error needs no daemon.
        let stmts =
            sadb::parse(&script).map_err(|e| Failure::Error(tools::cli::located(&name, &e)))?;
        if cli.check {
            if cli.verbose {
                println!("{name}: {} statements, syntax OK", stmts.len());
            }
            return Ok(());
        }
        let out = client
            .apply(&script, tag.as_ref())
            .map_err(|e| match Failure::from(e) {
                Failure::Refused(why) => Failure::Refused(format!("{name}: {why}")),
                Failure::Error(why) => Failure::Error(format!("{name}: {why}")),
            })?;
        print!("{out}");
        if cli.verbose {
            println!("{name}: {} statements applied", stmts.len());
        }
        return Ok(());
    }
    if cli.owner.is_some() {
        return Err(Failure::Error(
            "--owner applies a script: give -f FILE or -c".into(),
        ));
    }
    let (cmd, body) = match (cli.dump, cli.flush, cli.policy, cli.stats) {
        (_, _, _, true) => ("stats", ""),
        (true, false, false, _) => ("dump", ""),
        (true, false, true, _) => ("spddump", ""),
        (false, true, false, _) => ("apply", "flush;\n"),
        (false, true, true, _) => ("apply", "spdflush;\n"),
        _ => {
            return Err(Failure::Error(
                "nothing to do: give -f FILE, -c, -D, -DP, -F, -FP or --delete-owned (see --help)"
                    .into(),
            ));
        }
    };
    if cli.check {
        return Ok(());
    }
    let out = client.request(cmd, body)?;
    print!("{out}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = cli.all;
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(why)) => {
            eprintln!("setkey: {why}");
            ExitCode::from(1)
        }
        Err(Failure::Error(why)) => {
            eprintln!("setkey: {why}");
            ExitCode::from(2)
        }
    }
}
