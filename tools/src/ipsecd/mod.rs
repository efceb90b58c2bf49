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

pub mod control;
pub mod dataplane;
pub mod gro;
pub mod io;
pub mod net;
pub mod offload;

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
    /// A setkey script to apply at start (all or nothing).
    pub config: Option<PathBuf>,
    /// Record plaintext and protected packets here.
    pub pcap: Option<PathBuf>,
    /// Open the RFC 3948 UDP sockets on this port (0: none).
    pub natt_port: u16,
    /// Coalesce decapsulated TCP segments into GSO packets on TUN writes
    /// (`IFF_VNET_HDR`).
    pub gro: bool,
    /// Outbound workers, one per TUN queue (`IFF_MULTI_QUEUE` when more
    /// than one).
    pub workers: usize,
}

fn open_sockets(mark: u32, natt_port: u16) -> Result<Sockets> {
    let v6 = |r: std::io::Result<Sock>, what: &str| match r {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("IPv6 {what} socket: {e}; IPv6 disabled for it");
            None
        }
    };
    Ok(Sockets {
        esp4: Sock::raw(false, 50, mark).context("raw ESP socket (IPv4)")?,
        esp6: v6(Sock::raw(true, 50, mark), "ESP"),
        ah4: Sock::raw(false, 51, mark).context("raw AH socket (IPv4)")?,
        ah6: v6(Sock::raw(true, 51, mark), "AH"),
        raw4: Sock::raw_hdrincl(false, mark).context("IPPROTO_RAW socket (IPv4)")?,
        raw6: v6(Sock::raw_hdrincl(true, mark), "IPPROTO_RAW"),
        udp4: if natt_port == 0 {
            None
        } else {
            Some(Sock::udp(false, natt_port, mark).context("UDP socket for ESP in UDP")?)
        },
        udp6: if natt_port == 0 {
            None
        } else {
            v6(Sock::udp(true, natt_port, mark), "UDP")
        },
    })
}

/// Removes what an earlier run recorded in the state file.
pub fn cleanup_leftovers(state_file: &std::path::Path, current: &NetParams) {
    if let Ok(text) = std::fs::read_to_string(state_file) {
        if let Some(old) = NetParams::from_state(&text) {
            tracing::info!(tun = %old.tun, "removing leftovers of an earlier run");
            net::teardown(&old);
        }
        let _ = std::fs::remove_file(state_file);
    }
    // Same parameters without a state file (e.g. it was deleted): clean too.
    net::teardown(current);
}

/// Runs the daemon until a signal; returns after cleaning up.
pub fn run(cfg: Config) -> Result<()> {
    anyhow::ensure!(
        sys::is_root(),
        "ipsecd needs root (CAP_NET_ADMIN and CAP_NET_RAW)"
    );
    // Signals are taken by sigwait in this thread only.
    let sigs = sys::block_signals()?;
    cleanup_leftovers(&cfg.state_file, &cfg.net);

    let initial = match &cfg.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let stmts = sadb::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            Some(stmts)
        }
        None => None,
    };

    let queues = Tun::open_queues(&cfg.net.tun, cfg.gro, cfg.workers.max(1))
        .with_context(|| format!("cannot open TUN {}", cfg.net.tun))?;
    let mut params = cfg.net.clone();
    params.tun = queues
        .first()
        .map(|t| t.name().to_string())
        .unwrap_or_default();
    if let Some(dir) = cfg.state_file.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    std::fs::write(&cfg.state_file, params.to_state())
        .with_context(|| format!("cannot write {}", cfg.state_file.display()))?;
    let mut netcfg = Net::new(params.clone());
    let result = start(cfg.clone(), queues, &mut netcfg, initial, sigs);
    net::teardown(&params);
    let _ = std::fs::remove_file(&cfg.state_file);
    let _ = std::fs::remove_file(&cfg.socket);
    tracing::info!("cleaned up; exiting");
    result
}

fn start(
    cfg: Config,
    queues: Vec<Tun>,
    netcfg: &mut Net,
    initial: Option<Vec<sadb::Located<sadb::Statement>>>,
    sigs: nix::sys::signal::SigSet,
) -> Result<()> {
    netcfg.setup()?;
    let socks = open_sockets(cfg.net.mark, cfg.natt_port)?;
    let mut db = sadb::Databases::new();
    db.dump_options.stats = true;
    db.dump_options.pid = std::process::id();
    if let Some(stmts) = initial {
        db.apply(&stmts, dataplane::now())
            .map_err(|e| anyhow::anyhow!("initial configuration: {e}"))?;
    }
    let plan = net::plan(db.spd(), &netcfg.params);
    netcfg.sync(&plan)?;
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
        stats: dataplane::Stats::default(),
        socks,
        tun: writer,
        pcap,
    });
    let net_shared = Arc::new(Mutex::new(Net::new(netcfg.params.clone())));
    // Hand the installed rule set to the shared copy.
    std::mem::swap(
        &mut *net_shared.lock().map_err(|_| anyhow::anyhow!("lock"))?,
        netcfg,
    );

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
        let n = net_shared.clone();
        spawn("control", Box::new(move || control::serve(listener, sh, n)))?;
    }
    tracing::info!(
        tun = %net_shared.lock().map(|n| n.params.tun.clone()).unwrap_or_default(),
        socket = %cfg.socket.display(),
        workers,
        "ipsecd running"
    );
    let sig = sys::wait_signal(&sigs)?;
    tracing::info!(signal = sig, "stopping");
    dataplane::STOPPING.store(true, Relaxed);
    // Teardown happens in `run` with the same parameters; hold the lock so
    // no setkey request installs anything meanwhile.
    let guard = net_shared.lock();
    std::mem::forget(guard);
    Ok(())
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
            }
        }
    }
}
