//! The network of `imsua demo --tun` (root): three network namespaces,
//! the P-CSCF's joined to each UE's by a veth pair, and an `ipsecd` in
//! each, so the SIP between them goes as ESP transport mode on the veths.
//!
//! ```text
//!   alice 10.20.1.2/24 ── to-pcscf ═ to-alice ── 10.20.1.1/24  P-CSCF
//!   bob   10.20.2.2/24 ── to-pcscf ═ to-bob   ── 10.20.2.1/24  (listens on 10.20.1.1)
//! ```
//!
//! Each UE's default route goes to the P-CSCF's namespace, so bob reaches
//! the P-CSCF's one listening address too; nothing is forwarded. The
//! namespaces are named after this process, so demos never collide. On
//! drop the daemons get SIGTERM (each removes its routes, rules and nft
//! table) and the namespaces are deleted, veths and TUNs with them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// How long a daemon or a link may take to come up.
const LIMIT: Duration = Duration::from_secs(10);

/// The three hosts, in order.
pub const HOSTS: [&str; 3] = ["pcscf", "alice", "bob"];

/// The namespaces, their daemons and where their files are.
#[derive(Debug)]
pub struct DemoNet {
    names: Vec<String>,
    dir: PathBuf,
    daemons: Vec<Child>,
}

/// Refuses, in one line, to run without root.
pub fn require_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "demo --tun needs root (network namespaces, TUN devices, routing rules); `imsua demo` runs the same without root over ESP in UDP"
        );
    }
    Ok(())
}

/// The address of host `i` (0: the P-CSCF's listening address).
pub fn address(i: usize) -> IpAddr {
    match i {
        0 => IpAddr::V4(Ipv4Addr::new(10, 20, 1, 1)),
        1 => IpAddr::V4(Ipv4Addr::new(10, 20, 1, 2)),
        _ => IpAddr::V4(Ipv4Addr::new(10, 20, 2, 2)),
    }
}

fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl DemoNet {
    /// Creates the namespaces and links, and starts `ipsecd` (the binary
    /// at `ipsecd`) in each, its files in `dir`; the P-CSCF's daemon
    /// records its packets in `pcap`. Anything that fails undoes what was
    /// made.
    pub fn create(dir: &Path, ipsecd: &Path, pcap: &Path) -> Result<DemoNet> {
        require_root()?;
        let id = std::process::id();
        let mut net = DemoNet {
            names: Vec::new(),
            dir: dir.to_path_buf(),
            daemons: Vec::new(),
        };
        for host in HOSTS {
            let name = format!("imsdemo{id}-{host}");
            ip(&["netns", "add", &name])?;
            net.names.push(name);
        }
        let [p, a, b] = [0, 1, 2].map(|i| net.names.get(i).cloned().unwrap_or_default());
        for (ue, there, here, net_addr, ue_addr) in [
            (&a, "to-alice", "to-pcscf", "10.20.1.1/24", "10.20.1.2/24"),
            (&b, "to-bob", "to-pcscf", "10.20.2.1/24", "10.20.2.2/24"),
        ] {
            ip(&[
                "link", "add", there, "netns", &p, "type", "veth", "peer", "name", here, "netns",
                ue,
            ])?;
            ip(&["-n", &p, "addr", "add", net_addr, "dev", there])?;
            ip(&["-n", ue, "addr", "add", ue_addr, "dev", here])?;
            ip(&["-n", &p, "link", "set", there, "up"])?;
            ip(&["-n", ue, "link", "set", here, "up"])?;
            ip(&["-n", ue, "link", "set", "lo", "up"])?;
            let gateway = net_addr.split('/').next().unwrap_or_default();
            ip(&["-n", ue, "route", "add", "default", "via", gateway])?;
        }
        ip(&["-n", &p, "link", "set", "lo", "up"])?;
        // Until the kernel has carried the link state over, packets on a
        // veth are dropped.
        for (ns, dev) in [
            (&p, "to-alice"),
            (&p, "to-bob"),
            (&a, "to-pcscf"),
            (&b, "to-pcscf"),
        ] {
            wait(&format!("{dev} in {ns} to be up"), || {
                Ok(ip(&["-n", ns, "-o", "link", "show", "dev", dev])?.contains("state UP"))
            })?;
        }
        for i in 0..HOSTS.len() {
            net.start_ipsecd(i, ipsecd, (i == 0).then_some(pcap))?;
        }
        Ok(net)
    }

    fn start_ipsecd(&mut self, i: usize, ipsecd: &Path, pcap: Option<&Path>) -> Result<()> {
        let ns = self.names.get(i).cloned().unwrap_or_default();
        let host = HOSTS.get(i).copied().unwrap_or("?");
        let log = self.dir.join(format!("ipsecd-{host}.log"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .arg(ipsecd)
            .arg("--foreground")
            .arg("--socket")
            .arg(self.socket(i))
            .arg("--state-file")
            .arg(self.dir.join(format!("ipsecd-{host}.state")))
            .arg("--log-file")
            .arg(&log)
            .args(["--natt-port", "0", "--workers", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = pcap {
            cmd.arg("--pcap").arg(p);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", ipsecd.display()))?;
        self.daemons.push(child);
        let client = crate::ipsecd::client::Client::new(self.socket(i));
        let started = Instant::now();
        loop {
            if client.stats().is_ok() {
                return Ok(());
            }
            let exited = self
                .daemons
                .last_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || started.elapsed() > LIMIT {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                bail!(
                    "ipsecd in {ns} {}: {}",
                    match exited {
                        Some(st) => format!("exited ({st})"),
                        None => format!("did not answer within {LIMIT:?}"),
                    },
                    text.lines().last().unwrap_or("no log")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The control socket of host `i`'s ipsecd.
    pub fn socket(&self, i: usize) -> PathBuf {
        let host = HOSTS.get(i).copied().unwrap_or("?");
        self.dir.join(format!("ipsecd-{host}.sock"))
    }

    /// The namespace of host `i`.
    pub fn name(&self, i: usize) -> &str {
        self.names.get(i).map_or("", String::as_str)
    }

    /// `program` run in host `i`'s namespace (`ip netns exec` execs it,
    /// so the child is the program itself).
    pub fn command(&self, i: usize, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.name(i)]).arg(program);
        cmd
    }

    /// The log of host `i`'s ipsecd.
    pub fn log(&self, i: usize) -> String {
        let host = HOSTS.get(i).copied().unwrap_or("?");
        std::fs::read_to_string(self.dir.join(format!("ipsecd-{host}.log"))).unwrap_or_default()
    }
}

/// Polls `cond` until it holds, for at most [`LIMIT`].
fn wait(what: &str, mut cond: impl FnMut() -> Result<bool>) -> Result<()> {
    let started = Instant::now();
    while !cond()? {
        if started.elapsed() > LIMIT {
            return Err(anyhow!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

impl Drop for DemoNet {
    fn drop(&mut self) {
        for c in &mut self.daemons {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        let started = Instant::now();
        for c in &mut self.daemons {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if started.elapsed() > LIMIT => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        for name in &self.names {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("imsua: demo: {e}");
            }
        }
    }
}
