//! `--ipsec tun`: SIP over the SAs of a `mod=trans` agreement, carried by
//! `ipsecd` (root): ESP transport mode on the wire, as on a real Gm
//! interface.
//!
//! The SIP sockets are plain UDP sockets on this side's address with
//! port-c and port-s. The SAs and policies go into the namespace's ipsecd
//! through its control client ([`crate::ipsecd::client`]), tagged with an
//! owner: ipsecd then routes what the policies select into its TUN,
//! protects it, and delivers what its SAs let in to the same sockets; its
//! nft guards drop clear text to and from the protected ports, so nothing
//! a policy covers is sent or accepted in clear whatever this process
//! does. The UE's inbound SPIs are held with `getspi` before they are
//! offered ([`IpsecdSas::hold_spis`]); the `add` of an SA whose SPI is
//! held becomes the `update` that completes it. The outbound policies get
//! reqids no other policy of that ipsecd uses (`free-reqids`), as the two
//! outbound SAs of a set share their addresses.
//!
//! At start everything the owner tag holds is removed (what a crashed
//! run left), and again at [`IpsecdSas::close`]: the process removes
//! exactly what it owns.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use gm::reg::{IpsecMode, SaSet};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use sadb::ast::Direction;
use sadb::{Owner, Statement};

use super::esp_udp::{Datagram, Recv, SaUsage};
use crate::ipsecd::client::{Client, ClientError, GetSpi};

/// The sockets and the ipsecd client of `--ipsec tun`.
#[derive(Debug)]
pub struct IpsecdSas {
    plain: UdpSocket,
    port_c: UdpSocket,
    port_s: UdpSocket,
    client: Client,
    owner: Owner,
    /// Peer (address, port) -> (our protected port, SPI of the outbound
    /// SA): from the outbound SAs installed.
    routes: HashMap<SocketAddr, (u16, u32)>,
    /// The SA sets installed, as given and as installed (with reqids of
    /// their own).
    sets: Vec<(SaSet, SaSet)>,
    /// SPIs held with `getspi` and not yet completed.
    held: Vec<u32>,
    /// What the start-up clean-up removed (a crashed run's entries).
    pub leftovers: sadb::Removed,
    dropped: u64,
}

impl IpsecdSas {
    /// Connects to the ipsecd at `socket`, removes what `owner` left
    /// there, then binds the plain socket on `addr` and the protected
    /// ones on its address with `port_c` and `port_s` (0: any free port).
    pub fn bind(
        addr: SocketAddr,
        port_c: u16,
        port_s: u16,
        socket: &std::path::Path,
        owner: &str,
    ) -> Result<IpsecdSas> {
        let owner = Owner::new(owner).map_err(|e| anyhow!("{e}"))?;
        let client = Client::new(socket);
        let leftovers = client.delete_owned(&owner).map_err(|e| match e {
            ClientError::Connect { socket, source } => anyhow!(
                "--ipsec tun: ipsecd is not running at {} ({source}): start it in this network namespace, or name its socket with --ipsecd-socket",
                socket.display()
            ),
            e => anyhow!("--ipsec tun: {e}"),
        })?;
        let bind = |a: SocketAddr| -> Result<UdpSocket> {
            let s = UdpSocket::bind(a).with_context(|| format!("cannot bind {a}"))?;
            s.set_nonblocking(true)
                .with_context(|| format!("cannot make {a} non-blocking"))?;
            Ok(s)
        };
        let plain = bind(addr)?;
        let ip = plain.local_addr()?.ip();
        if ip.is_loopback() || ip.is_unspecified() {
            bail!(
                "--ipsec tun needs the address of an interface ipsecd routes for, not {ip} \
                 (loopback traffic never reaches its TUN; --ipsec udp works on loopback)"
            );
        }
        Ok(IpsecdSas {
            port_c: bind(SocketAddr::new(ip, port_c))?,
            port_s: bind(SocketAddr::new(ip, port_s))?,
            plain,
            client,
            owner,
            routes: HashMap::new(),
            sets: Vec::new(),
            held: Vec::new(),
            leftovers,
            dropped: 0,
        })
    }

    /// The plain socket's address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.plain.local_addr()?)
    }

    /// Our port-c and port-s.
    pub fn protected_ports(&self) -> Result<(u16, u16)> {
        Ok((
            self.port_c.local_addr()?.port(),
            self.port_s.local_addr()?.port(),
        ))
    }

    /// Datagrams a protected port received from a sender without SAs to
    /// it (dropped).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The owner tag of everything installed.
    pub fn owner(&self) -> &str {
        self.owner.as_str()
    }

    /// Holds two SPIs for SAs from `peer` to us (`getspi`): the UE's
    /// spi-c and spi-s, unique at this ipsecd.
    pub fn hold_spis(&mut self, peer: IpAddr) -> Result<(u32, u32)> {
        let me = self.local_addr()?.ip();
        let hold = || -> Result<u32> {
            let id = self
                .client
                .getspi(&GetSpi::new(peer, me), Some(&self.owner))
                .map_err(|e| anyhow!("cannot hold an SPI at ipsecd: {e}"))?;
            Ok(id.spi.0)
        };
        let (c, s) = (hold()?, hold()?);
        self.held.extend([c, s]);
        Ok((c, s))
    }

    /// Installs `set` (its `spdadd` and `add` statements, `update` for
    /// a held SPI); refused unless it is `trans` on our protected ports.
    pub fn install(&mut self, set: &SaSet) -> Result<()> {
        if set.mode() != IpsecMode::Transport {
            bail!(
                "the agreed SAs are mod={}: --ipsec tun carries only mod=trans",
                set.mode()
            );
        }
        let (c, s) = self.protected_ports()?;
        let out: Vec<_> = set
            .sas()
            .into_iter()
            .filter(|sa| sa.direction == Direction::Out)
            .collect();
        if let Some(sa) = out.iter().find(|sa| sa.src_port != c && sa.src_port != s) {
            bail!(
                "an SA leaves from port {}, not one of our protected ports {c} and {s}",
                sa.src_port
            );
        }
        let base = self
            .client
            .free_reqids(2)
            .map_err(|e| anyhow!("cannot install the SAs: {e}"))?;
        let local = set.clone().with_reqid_base(base);
        let held = &self.held;
        let statements: Vec<Statement> = local
            .statements()
            .into_iter()
            .map(|st| match st {
                Statement::Add(spec) if held.contains(&spec.spi) => Statement::Update(spec),
                other => other,
            })
            .collect();
        self.apply(&statements, "install")?;
        let inbound: Vec<u32> = set
            .sas()
            .iter()
            .filter(|sa| sa.direction == Direction::In)
            .map(|sa| sa.spi)
            .collect();
        self.held.retain(|spi| !inbound.contains(spi));
        for sa in out {
            self.routes
                .insert(SocketAddr::new(sa.dst, sa.dst_port), (sa.src_port, sa.spi));
        }
        self.sets.push((set.clone(), local));
        Ok(())
    }

    /// Gives the installed SAs of `set` its lifetime (`update`).
    pub fn update(&mut self, set: &SaSet) -> Result<()> {
        let Some(i) = self.installed(set) else {
            bail!("cannot update SAs that are not installed");
        };
        let Some((given, local)) = self.sets.get(i).cloned() else {
            return Ok(());
        };
        let updated = local.with_lifetime(set.lifetime());
        self.apply(&updated.update_statements(), "update")?;
        if let Some(slot) = self.sets.get_mut(i) {
            *slot = (given, updated);
        }
        Ok(())
    }

    /// Removes the SAs and policies of `set` (`spddelete`, `delete`);
    /// what each SA carried, as ipsecd counted it just before.
    pub fn remove(&mut self, set: &SaSet) -> Result<Vec<SaUsage>> {
        let Some(i) = self.installed(set) else {
            bail!("cannot remove SAs that are not installed");
        };
        let (given, local) = self.sets.remove(i);
        let usage = self.usage(&local);
        for sa in given
            .sas()
            .iter()
            .filter(|sa| sa.direction == Direction::Out)
        {
            self.routes.remove(&SocketAddr::new(sa.dst, sa.dst_port));
        }
        self.apply(&local.delete_statements(), "remove")?;
        Ok(usage)
    }

    /// The counters and `setkey -D` text of the SAs of `set` (`get`);
    /// an SA ipsecd no longer has (its hard lifetime ended) is left out.
    fn usage(&self, set: &SaSet) -> Vec<SaUsage> {
        set.delete_statements()
            .into_iter()
            .filter_map(|st| match st {
                Statement::Delete(r) => Some(r),
                _ => None,
            })
            .filter_map(|r| {
                let spi = r.spi;
                let text = self
                    .client
                    .apply_statements(&[Statement::Get(r)], Some(&self.owner))
                    .ok()?;
                Some(sa_usage(spi, &text))
            })
            .collect()
    }

    /// Removes every SA set still installed and whatever else the owner
    /// holds (SPIs held and never used); returns the sets with what their
    /// SAs carried.
    pub fn close(&mut self) -> Result<Vec<(SaSet, Vec<SaUsage>)>> {
        let mut removed = Vec::new();
        let mut first_error = None;
        while let Some((given, _)) = self.sets.first().cloned() {
            match self.remove(&given) {
                Ok(usage) => removed.push((given, usage)),
                Err(e) => {
                    // Still removed below, by owner.
                    self.sets.retain(|(g, _)| g.sas() != given.sas());
                    first_error.get_or_insert(e);
                }
            }
        }
        self.routes.clear();
        self.held.clear();
        self.client
            .delete_owned(&self.owner)
            .map_err(|e| anyhow!("cannot remove what {} holds at ipsecd: {e}", self.owner))?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    fn installed(&self, set: &SaSet) -> Option<usize> {
        self.sets
            .iter()
            .position(|(given, _)| given.sas() == set.sas())
    }

    fn apply(&self, statements: &[Statement], what: &str) -> Result<()> {
        self.client
            .apply_statements(statements, Some(&self.owner))
            .map(|_| ())
            .map_err(|e| anyhow!("cannot {what} the SAs at ipsecd: {e}"))
    }

    /// Sends one SIP message to `to`: from the protected port an
    /// outbound SA leaves from (ipsecd protects it), or in clear from the
    /// plain socket. The SPI of the SA that carries it, if one does.
    pub fn send(&mut self, bytes: &[u8], to: SocketAddr) -> Result<Option<u32>> {
        let (sock, spi) = match self.routes.get(&to) {
            Some(&(port, spi)) => {
                let sock = if self.port_c.local_addr()?.port() == port {
                    &self.port_c
                } else {
                    &self.port_s
                };
                (sock, Some(spi))
            }
            None => (&self.plain, None),
        };
        sock.send_to(bytes, to)
            .with_context(|| format!("cannot send to {to}"))?;
        Ok(spi)
    }

    /// Receives one datagram into `buf`, waiting at most `wait`; `None`
    /// when none came. What a protected port delivers came out of an SA
    /// (ipsecd drops clear text from a peer with SAs; from a sender with
    /// none it is dropped here and counted).
    pub fn recv(&mut self, buf: &mut [u8], wait: Duration) -> Result<Option<Recv>> {
        let ready = {
            let mut fds = [
                PollFd::new(self.plain.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.port_c.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.port_s.as_fd(), PollFlags::POLLIN),
            ];
            let ms = wait.max(Duration::from_millis(1));
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("cannot wait for datagrams"),
            }
            fds.map(|f| f.any().unwrap_or(false))
        };
        let Some(which) = ready.iter().position(|r| *r) else {
            return Ok(None);
        };
        let sock = match which {
            0 => &self.plain,
            1 => &self.port_c,
            _ => &self.port_s,
        };
        let port = sock.local_addr()?.port();
        let (n, from) = match sock.recv_from(buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e).context("cannot receive"),
        };
        if which == 0 {
            return Ok(Some(Recv::Message(Datagram {
                range: 0..n,
                from,
                protected_port: None,
                spi: None,
            })));
        }
        // The SA it came over: the inbound SA from that peer's port to
        // ours. ipsecd's guard drops clear text from a peer with SAs; from
        // any other sender a protected port takes nothing (fail closed).
        let spi = self.sets.iter().find_map(|(given, _)| {
            given.sas().into_iter().find_map(|sa| {
                (sa.direction == Direction::In
                    && sa.src == from.ip()
                    && sa.src_port == from.port()
                    && sa.dst_port == port)
                    .then_some(sa.spi)
            })
        });
        let Some(spi) = spi else {
            self.dropped += 1;
            return Ok(Some(Recv::Dropped {
                from,
                port,
                reason: "no SA from this sender to this protected port".into(),
            }));
        };
        Ok(Some(Recv::Message(Datagram {
            range: 0..n,
            from,
            protected_port: Some(port),
            spi: Some(spi),
        })))
    }
}

/// What one SA carried, from its `setkey -D` text (`current: N(bytes)`
/// and `allocated: N`, the packets).
fn sa_usage(spi: u32, text: &str) -> SaUsage {
    let number_after = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                let rest = l.trim_start().strip_prefix(key)?;
                rest.trim_start()
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    SaUsage {
        spi,
        packets: number_after("allocated:"),
        bytes: text
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("current:"))
            .find(|r| r.contains("(bytes)"))
            .and_then(|r| r.trim_start().split('(').next()?.parse().ok())
            .unwrap_or(0),
        setkey: text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sa_usage_reads_the_byte_and_packet_counters_of_setkey_d() {
        let text = "10.0.0.1 10.0.0.2\n\tesp mode=transport spi=4097(0x00001001) reqid=0(0x00000000)\n\
                    \tE: aes-cbc  00112233\n\tseq=0x00000003 replay=32 flags=0x00000000 state=mature\n\
                    \tcreated: Dec  5 12:00:00 2026\tcurrent: Dec  5 12:00:01 2026\n\
                    \tdiff: 1(s)\thard: 0(s)\tsoft: 0(s)\n\
                    \tlast: Dec  5 12:00:01 2026\thard: 0(s)\tsoft: 0(s)\n\
                    \tcurrent: 2310(bytes)\thard: 0(bytes)\tsoft: 0(bytes)\n\
                    \tallocated: 3\thard: 0\tsoft: 0\n";
        let u = sa_usage(4097, text);
        assert_eq!((u.spi, u.packets, u.bytes), (4097, 3, 2310));
        assert_eq!(u.setkey, text);
    }
}
