//! `ipsecd`: userspace IPsec (ESP/AH, transport and tunnel, IPv4/IPv6, ESP
//! in UDP) over a TUN device, configured with `setkey`. See
//! `docs/ipsecd.md`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tools::ipsecd::{self, Config, net::NetParams};

const AFTER_HELP: &str = "\
How it works:
  Traffic selected by the SPD's `out` policies is routed into the TUN by one
  `ip rule ... lookup TABLE` per policy (to DST ipproto P sport S dport D);
  ipsecd reads it, applies the policy (discard: drop; none: re-inject in
  clear with SO_MARK; ipsec: encapsulate with the SA setkey's rules choose)
  and sends ESP/AH on raw sockets (IP protocols 50/51) or ESP in UDP
  (RFC 3948, esp-udp SAs, port --natt-port). Its own sockets carry
  SO_MARK --mark, and `ip rule pref BASE fwmark MARK lookup main` keeps them
  out of the TUN. Received ESP/AH is decapsulated, checked against the `in`
  policies and written into the TUN for the kernel to deliver.

Fail closed:
  - an `ipsec` policy without a usable SA (missing, hard-expired, sequence
    numbers exhausted) drops the packet and counts it (setkey --stats);
  - table TABLE ends in `unreachable default`: if ipsecd dies, protected
    traffic fails with EHOSTUNREACH instead of leaking;
  - nft table `inet ipsecd_TUN`: cleartext matching an `in ... ipsec ...
    require` policy that did not come through the TUN is dropped (input
    hook), and unmarked traffic matching an `out ... require` policy that
    would leave on another interface is dropped (postrouting hook).

One per network namespace: a second ipsecd in the same namespace is
refused; the default control socket and state file are named after the
namespace (/run/ipsecd/ns-INODE.sock, .state), and setkey finds them.

Cleanup: SIGTERM/SIGINT/SIGHUP remove the rules ipsecd recorded as its own
(preferences BASE..BASE+999), the table, the nft table and the state file;
the TUN vanishes with the process. After a crash, the crashed run's rules
and guards stay (protected traffic fails, it does not leak) until the next
start has installed its own; only then are they removed.

Exit status: 0 after a clean shutdown (a detached start: once the daemon
is ready); 2 usage, configuration (FILE:LINE:COLUMN), IO error or another
live instance in this namespace, one line on stderr.

Examples:
  ipsecd -f /etc/ipsec-tools.conf --pid-file /run/ipsecd.pid --log-file /var/log/ipsecd.log
  setkey -D                      # SAs with counters (this namespace's ipsecd)
  setkey -DP                     # policies with counters
  ip netns exec ue ipsecd --foreground -f ue.conf    # one per namespace
  kill -TERM $(cat /run/ipsecd.pid)    # removes everything it installed
  ipsecd --cleanup --pref-base 1000 --table 100     # remove an old run's leftovers

Logging: RUST_LOG=tools=debug for more (trace: per-packet drops); keys are never logged.";

/// Userspace IPsec data plane over TUN, driven by setkey.
#[derive(Parser, Debug)]
#[command(name = "ipsecd", version, about = "Userspace IPsec (ESP/AH) data plane over a TUN device, driven by setkey", after_help = AFTER_HELP)]
struct Cli {
    /// Stay in the foreground and log to stderr (otherwise detach; logs go
    /// to --log-file if given).
    #[arg(long)]
    foreground: bool,
    /// TUN device name.
    #[arg(long, default_value = "ipsec0")]
    tun: String,
    /// Control socket for setkey (created with mode 0600; root only).
    /// Default: /run/ipsecd/ns-INODE.sock, named after the network
    /// namespace (setkey's default too). Its directory must exist.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// State file recording what was installed (taken over after a crash).
    /// Default: /run/ipsecd/ns-INODE.state.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Where each SA's sequence-number mark is recorded, so that an SA
    /// installed again after a crash never sends a number twice. Default:
    /// the state file with the extension .seq; put it on persistent storage
    /// for SAs that outlive a reboot.
    #[arg(long)]
    seq_file: Option<PathBuf>,
    /// setkey script to apply at start (all or nothing).
    #[arg(short = 'f', long)]
    config: Option<PathBuf>,
    /// Routing table that holds the TUN routes.
    #[arg(long, default_value_t = 100)]
    table: u32,
    /// First `ip rule` preference used (fwmark rule); policy rules follow,
    /// up to BASE+999.
    #[arg(long, default_value_t = 1000)]
    pref_base: u32,
    /// SO_MARK of ipsecd's own sockets (decimal or 0x hex).
    #[arg(long, default_value = "0x1", value_parser = parse_u32)]
    mark: u32,
    /// TCP MSS advertised on the TUN routes (IPv4; IPv6 uses 20 less): the
    /// link MTU minus IP, TCP and ESP overhead, so segments need no
    /// fragmentation after ESP.
    #[arg(long, default_value_t = 1360)]
    advmss: u32,
    /// UDP port for ESP in UDP (RFC 3948); 0 disables it.
    #[arg(long, default_value_t = 4500)]
    natt_port: u16,
    /// Record the plaintext (TUN) and protected (ESP/AH) packets in this
    /// pcap file (raw IP), for Wireshark.
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// No segmentation offloads: do not coalesce received TCP segments
    /// into GSO packets for the kernel (IFF_VNET_HDR), one TUN write per
    /// packet instead; and send and read ESP in UDP one datagram per
    /// system call (no UDP GSO/GRO), so a capture on the link shows each
    /// packet as it will be on a wire.
    #[arg(long)]
    no_gro: bool,
    /// Outbound workers, one per TUN queue (default: one per CPU). Each
    /// flow stays on one queue; inbound has one thread per socket.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: Option<u16>,
    /// After each packet, each data-path thread keeps checking its TUN
    /// queue or socket for the next one for this many microseconds
    /// (yielding the CPU between checks) before it sleeps. Request/response
    /// traffic then finds the daemon awake instead of waiting for the
    /// kernel to wake it: lower latency for CPU time while traffic flows.
    /// 0 (the default): sleep at once. Give at least the round-trip time
    /// of the exchanges it is for (docs/ipsecd.md, Polling).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    poll_us: u32,
    /// Write the daemon's process id here (removed at exit).
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Log file (with or without --foreground).
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// Remove everything a daemon with these --tun, --table and
    /// --pref-base may have left (all rules in the preference range, the
    /// table, the nft table), recorded or not, and exit. Refused while an
    /// ipsecd runs in this namespace.
    #[arg(long)]
    cleanup: bool,
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log_file = match &cli.log_file {
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("ipsecd: cannot open log file {}: {e}", p.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let logs_to_stderr = log_file.is_none();
    match log_file {
        Some(f) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .init(),
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
    }
    let params = NetParams {
        tun: cli.tun,
        table: cli.table,
        pref_base: cli.pref_base,
        mark: cli.mark,
        advmss: cli.advmss,
    };
    if cli.cleanup {
        return match ipsecd::cleanup(&params, cli.state_file.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipsecd: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    // A detached start returns when the daemon runs, or with its reason.
    let mut ready = None;
    if !cli.foreground {
        match tools::sys::detach() {
            Ok(r) => ready = Some(r),
            Err(e) => {
                eprintln!("ipsecd: cannot detach: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(p) = &cli.pid_file {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            let msg = format!("cannot write {}: {e}", p.display());
            if let Some(r) = ready.take() {
                r.fail(2, &msg);
            }
            eprintln!("ipsecd: {msg}");
            return ExitCode::from(2);
        }
    }
    let pid_file = cli.pid_file.clone();
    let state_file = cli
        .state_file
        .unwrap_or_else(ipsecd::instance::default_state_file);
    let cfg = Config {
        net: params,
        socket: cli.socket.unwrap_or_else(ipsecd::instance::default_socket),
        seq_file: cli
            .seq_file
            .unwrap_or_else(|| state_file.with_extension("seq")),
        state_file,
        config: cli.config,
        pcap: cli.pcap,
        natt_port: cli.natt_port,
        gro: !cli.no_gro,
        workers: cli.workers.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        ),
        poll: std::time::Duration::from_micros(u64::from(cli.poll_us)),
    };
    let result = ipsecd::run(cfg, &mut ready);
    if let Some(p) = pid_file {
        let _ = std::fs::remove_file(p);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, once: on stderr (or to the starting command), and
            // in the log file when there is one.
            let msg = format!("{e:#}");
            match ready.take() {
                Some(r) => r.fail(2, &msg),
                None => eprintln!("ipsecd: {msg}"),
            }
            if !logs_to_stderr {
                tracing::error!("{msg}");
            }
            ExitCode::from(2)
        }
    }
}
