//! `ipsecd`: a userspace IPsec data plane over a TUN device, driven by
//! setkey scripts (see `docs/ipsecd.md` for the operator's view).
//!
//! Start-up: remove the leftovers of a crashed run (state file), open the
//! TUN (one queue per worker) and the marked sockets, install the routing
//! table, the fwmark rule and the nft table ([`net`]), bind the control
//! socket ([`control`]), then run one outbound worker per TUN queue (TUN ->
//! ESP/AH) and one inbound thread per receiving socket (ESP/AH -> TUN)
//! ([`dataplane`]), and a lifetime thread that applies soft and hard
//! lifetimes once a second. Every packet decision is the `sadb` engine's;
//! the threads share its current snapshot without a lock. SIGTERM, SIGINT
//! and SIGHUP remove everything that was installed and exit.
//!
//! Keys are never logged: SAs print with redacted keys and scripts are not
//! echoed.

pub mod client;
pub mod control;
pub mod dataplane;
pub mod gro;
pub mod instance;
pub mod io;
pub mod net;
pub mod offload;
pub mod seqstore;

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::sys::{self, Sock, Tun};
use dataplane::{Rx, Shared, Sockets};
use net::{Net, NetParams};

/// What the daemon is started with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Routing and netfilter parameters (TUN name, table, preferences, mark).
    pub net: NetParams,
    /// The control socket path.
    pub socket: PathBuf,
    /// The state file (for crash cleanup).
    pub state_file: PathBuf,
    /// The sequence-number store (survives crashes; see [`seqstore`]).
    pub seq_file: PathBuf,
    /// A setkey script to apply at start (all or nothing).
    pub config: Option<PathBuf>,
    /// Record plaintext and protected packets here.
    pub pcap: Option<PathBuf>,
    /// Open the RFC 3948 UDP sockets on this port (0: none).
    pub natt_port: u16,
    /// Segmentation offloads: coalesce decapsulated TCP segments into GSO
    /// packets on TUN writes (`IFF_VNET_HDR`), and UDP GSO/GRO for ESP in
    /// UDP.
    pub gro: bool,
    /// Outbound workers, one per TUN queue (`IFF_MULTI_QUEUE` when more
    /// than one).
    pub workers: usize,
    /// How long each data-path thread polls for the next packet before it
    /// sleeps (zero: it sleeps at once; see [`sys::Poller`]).
    pub poll: std::time::Duration,
}

/// The daemon's sockets; with `offload`, ESP in UDP is read with
/// `UDP_GRO` and sent with UDP GSO.
fn open_sockets(mark: u32, natt_port: u16, offload: bool) -> Result<Sockets> {
    let v6 = |r: std::io::Result<Sock>, what: &str| match r {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("IPv6 {what} socket: {e}; IPv6 disabled for it");
            None
        }
    };
    let gro = |s: Option<Sock>| {
        if let Some(s) = s.as_ref().filter(|_| offload)
            && let Err(e) = s.set_udp_gro()
        {
            tracing::warn!("UDP_GRO: {e}; ESP in UDP is read per packet");
        }
        s
    };
    let udp4 = if natt_port == 0 {
        None
    } else {
        Some(Sock::udp(false, natt_port, mark).context("UDP socket for ESP in UDP")?)
    };
    let udp6 = if natt_port == 0 {
        None
    } else {
        v6(Sock::udp(true, natt_port, mark), "UDP")
    };
    Ok(Sockets {
        esp4: Sock::raw(false, 50, mark).context("raw ESP socket (IPv4)")?,
        esp6: v6(Sock::raw(true, 50, mark), "ESP"),
        ah4: Sock::raw(false, 51, mark).context("raw AH socket (IPv4)")?,
        ah6: v6(Sock::raw(true, 51, mark), "AH"),
        raw4: Sock::raw_hdrincl(false, mark).context("IPPROTO_RAW socket (IPv4)")?,
        raw6: v6(Sock::raw_hdrincl(true, mark), "IPPROTO_RAW"),
        udp4: gro(udp4),
        udp6: gro(udp6),
        udp_gso: std::sync::atomic::AtomicBool::new(offload),
    })
}

/// `ipsecd --cleanup`: removes everything a daemon with these parameters
/// may have left, and the state file; refused while an ipsecd runs in this
/// namespace.
pub fn cleanup(params: &NetParams, state_file: Option<&std::path::Path>) -> Result<()> {
    anyhow::ensure!(
        sys::is_root(),
        "ipsecd needs root (CAP_NET_ADMIN and CAP_NET_RAW)"
    );
    let _lock = instance::claim()?;
    net::cleanup(params);
    let state = state_file.map_or_else(instance::default_state_file, |p| p.to_path_buf());
    let _ = std::fs::remove_file(state);
    Ok(())
}

/// Runs the daemon until a signal; returns after cleaning up. `ready` (a
/// detached start) hears when the daemon runs.
///
/// Nothing is touched before every check passed: root, a usable mark, the
/// namespace free of another ipsecd, the socket and state file free, the
/// preference range and table free of rules and routes that are not a
/// crashed run's, the initial configuration valid. Then the new run's
/// rules and guards go in before a crashed run's are removed
/// ([`Net::start`]); on failure what this run added is removed and the
/// leftovers stay (fail closed).
pub fn run(cfg: Config, ready: &mut Option<sys::Ready>) -> Result<()> {
    anyhow::ensure!(
        sys::is_root(),
        "ipsecd needs root (CAP_NET_ADMIN and CAP_NET_RAW)"
    );
    // `fwmark 0 lookup main` would send every unmarked packet, protected
    // flows included, around the TUN.
    anyhow::ensure!(
        cfg.net.mark != 0,
        "--mark 0 would let every unmarked packet take the bypass rule (protected traffic would leave in clear): choose a non-zero mark"
    );
    // Signals are taken by sigwait in this thread only.
    let sigs = sys::block_signals()?;
    let _lock = instance::claim()?;
    instance::check_socket(&cfg.socket)?;
    let previous = std::fs::read_to_string(&cfg.state_file)
        .ok()
        .map(|t| net::Installed::from_state(&t));
    instance::check_state_file(&cfg.state_file, previous.as_ref().map_or(0, |p| p.pid))?;
    net::check_free(&cfg.net, previous.as_ref())?;

    let mut db = sadb::Databases::new();
    db.dump_options.stats = true;
    db.dump_options.pid = std::process::id();
    if let Some(p) = &cfg.config {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        let name = p.display().to_string();
        let located = |e: sadb::Error| anyhow::anyhow!(crate::cli::located(&name, &e));
        let stmts = sadb::parse(&text).map_err(located)?;
        db.apply(&stmts, dataplane::now()).map_err(located)?;
    }
    let mut seqs = seqstore::SeqStore::open(&cfg.seq_file)?;
    seqs.adopt(&db)?;

    let queues = Tun::open_queues(&cfg.net.tun, cfg.gro, cfg.workers.max(1))
        .with_context(|| format!("cannot open TUN {}", cfg.net.tun))?;
    let mut params = cfg.net.clone();
    params.tun = queues
        .first()
        .map(|t| t.name().to_string())
        .unwrap_or_default();
    let plan = net::plan(db.spd(), &params);
    let mut netcfg = Net::new(params, cfg.state_file.clone(), previous.as_ref());
    if let Some(p) = previous.as_ref().filter(|p| p.params.is_some()) {
        tracing::info!(
            pid = p.pid,
            "taking over from an earlier run: its rules and guards stay until ours are in place"
        );
    }
    netcfg.start(&plan, previous.as_ref())?;
    let result = serve(cfg.clone(), queues, netcfg, db, seqs, sigs, ready);
    let _ = std::fs::remove_file(&cfg.socket);
    tracing::info!("cleaned up; exiting");
    result
}

/// Opens the sockets and the control socket, starts the threads, reports
/// ready, and waits for a signal; tears the network set-up down after.
fn serve(
    cfg: Config,
    queues: Vec<Tun>,
    netcfg: Net,
    db: sadb::Databases,
    seqs: seqstore::SeqStore,
    sigs: nix::sys::signal::SigSet,
    ready: &mut Option<sys::Ready>,
) -> Result<()> {
    let net_shared = Arc::new(Mutex::new(netcfg));
    let result = serve_inner(cfg, queues, &net_shared, db, seqs, sigs, ready);
    // Hold the lock while tearing down, so no setkey request installs
    // anything meanwhile.
    match net_shared.lock() {
        Ok(mut n) => {
            n.teardown();
            std::mem::forget(n);
        }
        Err(p) => p.into_inner().teardown(),
    }
    result
}

fn serve_inner(
    cfg: Config,
    queues: Vec<Tun>,
    net_shared: &Arc<Mutex<Net>>,
    db: sadb::Databases,
    seqs: seqstore::SeqStore,
    sigs: nix::sys::signal::SigSet,
    ready: &mut Option<sys::Ready>,
) -> Result<()> {
    let socks = open_sockets(cfg.net.mark, cfg.natt_port, cfg.gro)?;
    let pcap = match &cfg.pcap {
        Some(p) => {
            Some(io::PcapWriter::create(p).with_context(|| format!("pcap {}", p.display()))?)
        }
        None => None,
    };
    let listener = control::bind(&cfg.socket)?;
    let Some(writer) = queues.first().map(Tun::try_clone).transpose()? else {
        anyhow::bail!("no TUN queue");
    };
    let sh = Arc::new(Shared {
        engine: sadb::Engine::new(db),
        seqs: Mutex::new(seqs),
        stats: dataplane::Stats::default(),
        socks,
        tun: writer,
        pcap,
        poll: cfg.poll,
    });

    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new().name(name.into()).spawn(f)
    };
    let workers = queues.len();
    for (i, tun) in queues.into_iter().enumerate() {
        let sh = sh.clone();
        spawn(
            &format!("out-{i}"),
            Box::new(move || {
                if let Err(e) = dataplane::outbound(sh, tun) {
                    if !dataplane::STOPPING.load(Relaxed) {
                        tracing::error!("outbound path stopped: {e}");
                    }
                }
            }),
        )?;
    }
    let rx: [(&str, Rx); 6] = [
        ("in-esp4", Rx::Raw4),
        ("in-ah4", Rx::Raw4),
        ("in-esp6", Rx::Raw6(ipsec_esp::Protocol::Esp)),
        ("in-ah6", Rx::Raw6(ipsec_esp::Protocol::Ah)),
        ("in-udp4", Rx::Udp(cfg.natt_port)),
        ("in-udp6", Rx::Udp(cfg.natt_port)),
    ];
    for (i, (name, kind)) in rx.into_iter().enumerate() {
        let sh2 = sh.clone();
        let present = match i {
            0 | 1 => true,
            2 => sh.socks.esp6.is_some(),
            3 => sh.socks.ah6.is_some(),
            4 => sh.socks.udp4.is_some(),
            _ => sh.socks.udp6.is_some(),
        };
        if !present {
            continue;
        }
        spawn(
            name,
            Box::new(move || {
                let s = &sh2.socks;
                let sock = match i {
                    0 => Some(&s.esp4),
                    1 => Some(&s.ah4),
                    2 => s.esp6.as_ref(),
                    3 => s.ah6.as_ref(),
                    4 => s.udp4.as_ref(),
                    _ => s.udp6.as_ref(),
                };
                if let Some(sock) = sock {
                    if let Err(e) = dataplane::inbound(sh2.clone(), sock, kind) {
                        if !dataplane::STOPPING.load(Relaxed) {
                            tracing::error!("inbound path stopped: {e}");
                        }
                    }
                }
            }),
        )?;
    }
    {
        let sh = sh.clone();
        spawn("lifetimes", Box::new(move || lifetimes(&sh)))?;
    }
    {
        let sh = sh.clone();
        spawn("sequences", Box::new(move || sequences(&sh)))?;
    }
    {
        let sh = sh.clone();
        let n = Arc::clone(net_shared);
        spawn("control", Box::new(move || control::serve(listener, sh, n)))?;
    }
    tracing::info!(
        tun = %net_shared.lock().map(|n| n.params.tun.clone()).unwrap_or_default(),
        socket = %cfg.socket.display(),
        workers,
        "ipsecd running"
    );
    if let Some(r) = ready.take() {
        r.ok();
    }
    let sig = sys::wait_signal(&sigs)?;
    tracing::info!(signal = sig, "stopping");
    dataplane::STOPPING.store(true, Relaxed);
    Ok(())
}

/// Keeps the recorded sequence-number marks ahead of the traffic.
fn sequences(sh: &Shared) {
    let mut warned = false;
    loop {
        std::thread::sleep(seqstore::TICK);
        let db = sh.engine.snapshot();
        let Ok(mut seqs) = sh.seqs.lock() else {
            return;
        };
        match seqs.tick(&db) {
            Ok(()) => warned = false,
            Err(e) => {
                // SAs that reach their mark wait (fail closed) until the
                // store can be written again.
                if !warned {
                    tracing::error!("sequence store: {e:#}; SAs stop at their recorded marks");
                    warned = true;
                }
            }
        }
    }
}

/// Applies lifetimes once a second (RFC 2367 SADB_EXPIRE semantics): soft
/// gives an event and a log line, hard removes the SA.
fn lifetimes(sh: &Shared) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let events = sh.engine.expire(dataplane::now());
        for ev in events {
            match ev.kind {
                sadb::ExpireKind::Soft => {
                    sh.stats.soft_expires.fetch_add(1, Relaxed);
                    tracing::warn!(
                        dst = %ev.id.dst, spi = ev.id.spi.0, reqid = ev.reqid,
                        "soft lifetime reached: SA is dying, replace it"
                    );
                }
                sadb::ExpireKind::Hard => {
                    sh.stats.hard_expires.fetch_add(1, Relaxed);
                    tracing::warn!(
                        dst = %ev.id.dst, spi = ev.id.spi.0, reqid = ev.reqid,
                        "hard lifetime reached: SA removed"
                    );
                }
                sadb::ExpireKind::Larval => {
                    tracing::info!(
                        dst = %ev.id.dst, spi = ev.id.spi.0, reqid = ev.reqid,
                        "larval SA (getspi) not completed in time: SPI released"
                    );
                }
            }
        }
    }
}
