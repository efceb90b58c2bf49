//! What the two protected modes (`--ipsec udp`, [`super::esp_udp`], and
//! `--ipsec tun`, [`super::tun`]) share: the three UDP sockets (plain,
//! port-c, port-s, and a second port-c for SA handovers when bound) with
//! one wait over them (and, for `tun`, TCP on the
//! same three ports, [`super::stream`]), and the book of the SA sets
//! installed (as given by `gm` and as installed, with reqids of their
//! own).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use gm::reg::SaSet;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use sadb::Statement;
use sadb::ast::Direction;

/// The plain socket and the protected ones, with their ports known once.
#[derive(Debug)]
pub struct SipSockets {
    plain: UdpSocket,
    port_c: UdpSocket,
    port_s: UdpSocket,
    local: SocketAddr,
    ports: (u16, u16),
    /// The second client port ([`SipSockets::bind_alt`]) and its socket.
    alt: Option<(UdpSocket, u16)>,
    tcp: Option<super::stream::Streams>,
    /// Ends a wait when readable ([`SipSockets::set_wake`]).
    wake: Option<std::os::unix::net::UnixStream>,
}

/// What [`SipSockets::recv_any`] took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A datagram, or a message from a TCP connection, in the buffer.
    Arrival(Arrival),
    /// A TCP connection closed for what it carried.
    Closed {
        /// The peer.
        from: SocketAddr,
        /// Our port.
        port: u16,
        /// Why, one line.
        reason: String,
    },
}

/// One datagram [`SipSockets::recv`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Its length, at the start of the buffer given.
    pub len: usize,
    /// The sender.
    pub from: SocketAddr,
    /// Our port it came to.
    pub port: u16,
    /// Whether that is port-c or port-s.
    pub protected: bool,
    /// Whether it came over TCP.
    pub stream: bool,
}

fn bind_nonblocking(a: SocketAddr) -> Result<UdpSocket> {
    let s = UdpSocket::bind(a).with_context(|| format!("cannot bind {a}"))?;
    s.set_nonblocking(true)
        .with_context(|| format!("cannot make {a} non-blocking"))?;
    Ok(s)
}

impl SipSockets {
    /// Binds the plain socket on `addr` and the protected ones on its
    /// address with `port_c` and `port_s` (0: any free port).
    pub fn bind(addr: SocketAddr, port_c: u16, port_s: u16) -> Result<SipSockets> {
        let plain = bind_nonblocking(addr)?;
        let local = plain.local_addr()?;
        let port_c = bind_nonblocking(SocketAddr::new(local.ip(), port_c))?;
        let port_s = bind_nonblocking(SocketAddr::new(local.ip(), port_s))?;
        let ports = (port_c.local_addr()?.port(), port_s.local_addr()?.port());
        Ok(SipSockets {
            plain,
            port_c,
            port_s,
            local,
            ports,
            alt: None,
            tcp: None,
            wake: None,
        })
    }

    /// Binds a second protected client port (0: any free port), for the
    /// SA set that replaces the one on port-c at a re-registration
    /// (TS 33.203 §7.4); its port. Before [`SipSockets::enable_tcp`].
    pub fn bind_alt(&mut self, port: u16) -> Result<u16> {
        if let Some((_, p)) = &self.alt {
            return Ok(*p);
        }
        let sock = bind_nonblocking(SocketAddr::new(self.local.ip(), port))?;
        let port = sock.local_addr()?.port();
        self.alt = Some((sock, port));
        Ok(port)
    }

    /// The second client port, when bound.
    pub fn alt_port(&self) -> Option<u16> {
        self.alt.as_ref().map(|(_, p)| *p)
    }

    /// Every protected port: port-c, port-s, and the second client port.
    pub fn all_protected_ports(&self) -> Vec<u16> {
        let mut v = vec![self.ports.0, self.ports.1];
        v.extend(self.alt_port());
        v
    }

    /// The UDP sockets a wait covers, in [`SipSockets::recv_from`]'s order.
    fn udp_fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        let mut fds = vec![self.plain.as_fd(), self.port_c.as_fd(), self.port_s.as_fd()];
        fds.extend(self.alt.as_ref().map(|(s, _)| s.as_fd()));
        fds
    }

    /// A socket whose readability ends a wait at once (it is drained and
    /// the wait returns nothing): commands read by another thread.
    pub fn set_wake(&mut self, wake: std::os::unix::net::UnixStream) {
        self.wake = Some(wake);
    }

    /// TCP on the three ports too: listeners there, and with
    /// `everything` all we send goes over TCP ([`super::Tcp`]).
    pub fn enable_tcp(&mut self, everything: bool) -> Result<()> {
        let mut t = super::stream::Streams::new(self.local.ip());
        for port in [self.local.port(), self.ports.0, self.ports.1]
            .into_iter()
            .chain(self.alt_port())
        {
            t.listen(port)?;
        }
        if everything {
            t.everything();
        }
        self.tcp = Some(t);
        Ok(())
    }

    /// The TCP side, when enabled.
    pub fn tcp(&self) -> Option<&super::stream::Streams> {
        self.tcp.as_ref()
    }

    /// The TCP side, when enabled.
    pub fn tcp_mut(&mut self) -> Option<&mut super::stream::Streams> {
        self.tcp.as_mut()
    }

    /// Whether what goes to `to` goes over TCP.
    pub fn goes_tcp(&self, to: SocketAddr) -> bool {
        self.tcp.as_ref().is_some_and(|t| t.goes(to))
    }

    /// [`SipSockets::recv`], with the TCP side's messages and closed
    /// connections too when it is enabled.
    pub fn recv_any(&mut self, buf: &mut [u8], wait: Duration) -> Result<Option<Taken>> {
        let Some(tcp) = &mut self.tcp else {
            return Ok(self.recv(buf, wait)?.map(Taken::Arrival));
        };
        let mut fds = vec![self.plain.as_fd(), self.port_c.as_fd(), self.port_s.as_fd()];
        fds.extend(self.alt.as_ref().map(|(s, _)| s.as_fd()));
        let wake_at = fds.len();
        fds.extend(self.wake.as_ref().map(AsFd::as_fd));
        match tcp.wait(&fds, wait)? {
            super::stream::Ready::Udp(i) if i == wake_at => {
                if !self.wake.as_ref().is_some_and(super::command::drain_wake) {
                    self.wake = None;
                }
                Ok(None)
            }
            super::stream::Ready::Udp(which) => Ok(self.recv_from(which, buf)?.map(Taken::Arrival)),
            super::stream::Ready::Frame(f) => {
                let protected = f.port != self.local.port();
                let Some(room) = buf.get_mut(..f.bytes.len()) else {
                    return Ok(Some(Taken::Closed {
                        from: f.from,
                        port: f.port,
                        reason: format!("a {}-byte message over TCP", f.bytes.len()),
                    }));
                };
                room.copy_from_slice(&f.bytes);
                Ok(Some(Taken::Arrival(Arrival {
                    len: f.bytes.len(),
                    from: f.from,
                    port: f.port,
                    protected,
                    stream: true,
                })))
            }
            super::stream::Ready::Closed { from, port, reason } => {
                Ok(Some(Taken::Closed { from, port, reason }))
            }
            super::stream::Ready::Nothing => Ok(None),
        }
    }

    /// The plain socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Our address.
    pub fn ip(&self) -> IpAddr {
        self.local.ip()
    }

    /// Our port-c and port-s.
    pub fn protected_ports(&self) -> (u16, u16) {
        self.ports
    }

    /// The plain socket.
    pub fn plain(&self) -> &UdpSocket {
        &self.plain
    }

    /// The protected socket bound to `port`.
    pub fn protected(&self, port: u16) -> Option<&UdpSocket> {
        if port == self.ports.0 {
            Some(&self.port_c)
        } else if port == self.ports.1 {
            Some(&self.port_s)
        } else {
            self.alt
                .as_ref()
                .filter(|(_, p)| *p == port)
                .map(|(s, _)| s)
        }
    }

    /// Waits at most `wait` for a datagram on any of the three and takes
    /// one into `buf`; `None` when none came (or the peer's port was
    /// closed: an ICMP error is not ours to act on, the transaction's
    /// timer is).
    pub fn recv(&mut self, buf: &mut [u8], wait: Duration) -> Result<Option<Arrival>> {
        let udp = self.udp_fds();
        let wake_at = udp.len();
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = udp
                .into_iter()
                .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
                .collect();
            if let Some(w) = &self.wake {
                fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
            }
            let ms = wait.max(Duration::from_millis(1));
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("cannot wait for datagrams"),
            }
            fds.iter().map(|f| f.any().unwrap_or(false)).collect()
        };
        let Some(which) = ready.iter().position(|r| *r) else {
            return Ok(None);
        };
        if which == wake_at {
            if !self.wake.as_ref().is_some_and(super::command::drain_wake) {
                self.wake = None;
            }
            return Ok(None);
        }
        self.recv_from(which, buf)
    }

    /// Takes a datagram from socket `which` (0 plain, 1 port-c, 2
    /// port-s, 3 the second client port), if one is there.
    fn recv_from(&self, which: usize, buf: &mut [u8]) -> Result<Option<Arrival>> {
        let (sock, port) = match (which, &self.alt) {
            (0, _) => (&self.plain, self.local.port()),
            (1, _) => (&self.port_c, self.ports.0),
            (3, Some((s, p))) => (s, *p),
            _ => (&self.port_s, self.ports.1),
        };
        match sock.recv_from(buf) {
            Ok((len, from)) => Ok(Some(Arrival {
                len,
                from,
                port,
                protected: which != 0,
                stream: false,
            })),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).context("cannot receive"),
        }
    }
}

/// The SA sets installed: each as `gm` gave it and as installed (with
/// reqids of its own), and which protected port sends to which peer.
/// It also remembers the peers whose SAs were removed
/// ([`SaBook::gone`]), so that nothing meant for them leaves in clear.
///
/// A P-CSCF holds a set per UE: every lookup goes through an index (by
/// the sets' SAs, by inbound flow, by peer), never a scan of the sets.
#[derive(Debug, Default)]
pub struct SaBook {
    /// The sets by the number of their addition (oldest first).
    sets: BTreeMap<u64, (SaSet, SaSet)>,
    added: u64,
    /// Each set's number by its SAs' identities (SPI, destination).
    by_sas: HashMap<Vec<(u32, SocketAddr)>, u64>,
    /// (peer, our port) -> the SPIs of the inbound SAs from there, with
    /// their set's number, oldest first.
    inbound: HashMap<(SocketAddr, u16), Vec<(u64, u32)>>,
    /// Peer -> (set number, our protected port, outbound SPI) of every
    /// set that reaches it, oldest first.
    reaching: HashMap<SocketAddr, Vec<(u64, u16, u32)>>,
    /// Peer (address, port) -> (our protected port, SPI of the outbound
    /// SA): from the outbound SAs installed, the latest set's.
    routes: HashMap<SocketAddr, (u16, u32)>,
    /// Peers reached over SAs that are gone, with when each was added
    /// (a count), oldest first in `gone_order`; at most [`MAX_GONE`].
    gone: HashMap<SocketAddr, u64>,
    gone_order: VecDeque<(SocketAddr, u64)>,
    gone_count: u64,
}

/// The identities of a set's SAs (SPI, destination address and port).
fn sa_key(set: &SaSet) -> Vec<(u32, SocketAddr)> {
    set.sas()
        .iter()
        .map(|sa| (sa.spi, SocketAddr::new(sa.dst, sa.dst_port)))
        .collect()
}

/// How many peers whose SAs went [`SaBook`] remembers; beyond, the
/// oldest is forgotten (a peer gone that long ago has no transaction
/// left, and its port is likely someone else's by then).
pub const MAX_GONE: usize = 65_536;

impl SaBook {
    /// Refuses a set whose outbound SAs leave from a port other than our
    /// `protected` ones.
    pub fn check_ports(set: &SaSet, protected: &[u16]) -> Result<()> {
        for sa in set.sas().iter().filter(|sa| sa.direction == Direction::Out) {
            if !protected.contains(&sa.src_port) {
                bail!(
                    "an SA leaves from port {}, not one of our protected ports {protected:?}",
                    sa.src_port
                );
            }
        }
        Ok(())
    }

    /// Records `given`, installed as `local`.
    pub fn add(&mut self, given: &SaSet, local: SaSet) {
        self.added += 1;
        let n = self.added;
        for sa in given.sas().iter() {
            match sa.direction {
                Direction::Out => {
                    let peer = SocketAddr::new(sa.dst, sa.dst_port);
                    self.routes.insert(peer, (sa.src_port, sa.spi));
                    self.gone.remove(&peer);
                    let r = self.reaching.entry(peer).or_default();
                    // A set reaches a peer over its first SA there.
                    if !r.iter().any(|(m, ..)| *m == n) {
                        r.push((n, sa.src_port, sa.spi));
                    }
                }
                _ => {
                    let from = SocketAddr::new(sa.src, sa.src_port);
                    let v = self.inbound.entry((from, sa.dst_port)).or_default();
                    if !v.iter().any(|(m, _)| *m == n) {
                        v.push((n, sa.spi));
                    }
                }
            }
        }
        self.by_sas.insert(sa_key(given), n);
        self.sets.insert(n, (given.clone(), local));
    }

    /// The number of the set installed with `set`'s SAs.
    fn position(&self, set: &SaSet) -> Option<u64> {
        let n = *self.by_sas.get(&sa_key(set))?;
        self.sets
            .get(&n)
            .is_some_and(|(given, _)| given.sas() == set.sas())
            .then_some(n)
    }

    /// Gives the installed SAs of `set` its lifetime: `apply` gets the
    /// `update` statements.
    pub fn update(
        &mut self,
        set: &SaSet,
        apply: impl FnOnce(&[Statement]) -> Result<()>,
    ) -> Result<()> {
        let Some(i) = self.position(set) else {
            bail!("cannot update SAs that are not installed");
        };
        let Some((_, local)) = self.sets.get_mut(&i) else {
            bail!("cannot update SAs that are not installed");
        };
        let updated = local.clone().with_lifetime(set.lifetime());
        apply(&updated.update_statements())?;
        *local = updated;
        Ok(())
    }

    /// Forgets `set`; the set as installed, to delete.
    pub fn take(&mut self, set: &SaSet) -> Result<SaSet> {
        let Some(n) = self.position(set) else {
            bail!("cannot remove SAs that are not installed");
        };
        let Some((given, local)) = self.sets.remove(&n) else {
            bail!("cannot remove SAs that are not installed");
        };
        self.by_sas.remove(&sa_key(&given));
        for sa in given.sas().iter() {
            if sa.direction == Direction::Out {
                continue;
            }
            let key = (SocketAddr::new(sa.src, sa.src_port), sa.dst_port);
            if let Some(v) = self.inbound.get_mut(&key) {
                v.retain(|(m, _)| *m != n);
                if v.is_empty() {
                    self.inbound.remove(&key);
                }
            }
        }
        for sa in given
            .sas()
            .iter()
            .filter(|sa| sa.direction == Direction::Out)
        {
            let peer = SocketAddr::new(sa.dst, sa.dst_port);
            let others = match self.reaching.get_mut(&peer) {
                Some(r) => {
                    r.retain(|(m, ..)| *m != n);
                    r.first().map(|&(_, port, spi)| (port, spi))
                }
                None => None,
            };
            if others.is_none() {
                self.reaching.remove(&peer);
            }
            // During a handover the peer's port-s is reached over the new
            // set too: its route, then, is the new set's, and stays.
            if self.routes.get(&peer) != Some(&(sa.src_port, sa.spi)) {
                continue;
            }
            self.routes.remove(&peer);
            // Another set installed may still reach it another way.
            if let Some(r) = others {
                self.routes.insert(peer, r);
                continue;
            }
            self.gone_count += 1;
            self.gone.insert(peer, self.gone_count);
            self.gone_order.push_back((peer, self.gone_count));
        }
        while self.gone.len() > MAX_GONE {
            let Some((peer, n)) = self.gone_order.pop_front() else {
                break;
            };
            if self.gone.get(&peer) == Some(&n) {
                self.gone.remove(&peer);
            }
        }
        // Entries re-added or cleared since leave stale order entries:
        // compacted when they outnumber the live ones.
        if self.gone_order.len() > 2 * self.gone.len() + 64 {
            let gone = &self.gone;
            self.gone_order.retain(|(p, n)| gone.get(p) == Some(n));
        }
        Ok(local)
    }

    /// Whether `to` was reached over SAs that are gone, and no datagram
    /// has come from it in clear since ([`SaBook::heard_in_clear`]):
    /// a message for it must not leave in clear (a retransmission, a
    /// NOTIFY to a watcher that de-registered), fail closed.
    pub fn gone(&self, to: SocketAddr) -> bool {
        self.gone.contains_key(&to)
    }

    /// A datagram came in clear from `from`: it is a plain endpoint now
    /// (a new process on a port an old one had, a UE registering again),
    /// and may be answered in clear.
    pub fn heard_in_clear(&mut self, from: SocketAddr) {
        if !self.gone.is_empty() {
            self.gone.remove(&from);
        }
    }

    /// The first set still installed, as given.
    pub fn first(&self) -> Option<SaSet> {
        self.sets.values().next().map(|(given, _)| given.clone())
    }

    /// Our protected port that sends to `to`, and the SPI of that SA.
    pub fn route(&self, to: SocketAddr) -> Option<(u16, u32)> {
        self.routes.get(&to).copied()
    }

    /// The SPI of the inbound SA from `from` to our `port`.
    pub fn inbound_spi(&self, from: SocketAddr, port: u16) -> Option<u32> {
        self.inbound
            .get(&(from, port))
            .and_then(|v| v.first())
            .map(|&(_, spi)| spi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gm::reg::{Agreement, IpsecMode, IpsecOffer, Side};
    use opensec::{AuthAlgorithm, EncAlgorithm};
    use std::time::Duration;

    /// The network's view of one agreement with a UE at `ue` whose ports
    /// are `ue_ports`.
    fn set(ue: IpAddr, ue_ports: (u16, u16), spis: (u32, u32)) -> SaSet {
        let offer = |spi_c, spi_s, (port_c, port_s)| IpsecOffer {
            alg: AuthAlgorithm::HmacSha1_96,
            ealg: EncAlgorithm::AesCbc,
            mode: IpsecMode::Transport,
            spi_c,
            spi_s,
            port_c,
            port_s,
        };
        let a = Agreement {
            ue_addr: ue,
            pcscf_addr: "10.0.0.1".parse().unwrap(),
            ue: offer(spis.0, spis.1, ue_ports),
            pcscf: offer(spis.0 + 10, spis.1 + 10, (5066, 5068)),
        };
        SaSet::new(
            Side::Network,
            &a,
            &[1; 16],
            &[2; 16],
            Duration::from_secs(60),
        )
        .unwrap()
    }

    #[test]
    fn peers_whose_sas_went_are_not_reached_in_clear_until_heard_in_clear() {
        let ue: IpAddr = "10.0.0.2".parse().unwrap();
        let mut book = SaBook::default();
        let port_s: SocketAddr = "10.0.0.2:6002".parse().unwrap();
        let port_c: SocketAddr = "10.0.0.2:6001".parse().unwrap();
        let other: SocketAddr = "10.0.0.3:6002".parse().unwrap();
        let s = set(ue, (6001, 6002), (1000, 1001));
        book.add(&s, s.clone());
        assert_eq!(book.route(port_s).map(|(p, _)| p), Some(5066));
        assert!(!book.gone(port_s));
        book.take(&s).unwrap();
        assert!(book.route(port_s).is_none());
        assert!(book.gone(port_s) && book.gone(port_c) && !book.gone(other));
        // Clear text from one of them: a plain endpoint now.
        book.heard_in_clear(port_c);
        assert!(!book.gone(port_c) && book.gone(port_s));
        // New SAs to it: reached over them, not gone.
        let again = set(ue, (6001, 6002), (2000, 2001));
        book.add(&again, again.clone());
        assert!(!book.gone(port_s) && book.route(port_s).is_some());
    }

    /// An SA handover: two sets reach the UE's port-s. The route is the
    /// newest set's; removing either set leaves the other's, and the
    /// peer is gone only when both went.
    #[test]
    fn two_sets_to_one_peer_keep_a_route_until_both_went() {
        let ue: IpAddr = "10.0.0.2".parse().unwrap();
        let port_s: SocketAddr = "10.0.0.2:6002".parse().unwrap();
        let old = set(ue, (6001, 6002), (1000, 1001));
        let new = set(ue, (6003, 6002), (2000, 2001));
        let out_spi = |s: &SaSet| route_to(s, port_s).unwrap().1;
        for first_gone in [&old, &new] {
            let mut book = SaBook::default();
            book.add(&old, old.clone());
            book.add(&new, new.clone());
            assert_eq!(book.route(port_s).map(|r| r.1), Some(out_spi(&new)));
            book.take(first_gone).unwrap();
            let left = if std::ptr::eq(first_gone, &old) {
                &new
            } else {
                &old
            };
            assert_eq!(book.route(port_s).map(|r| r.1), Some(out_spi(left)));
            assert!(!book.gone(port_s));
            // The gone set's own port-c is gone; the other's is not.
            let c = |s: &SaSet| SocketAddr::new(ue, s.ue_offer().port_c);
            assert!(book.gone(c(first_gone)) && !book.gone(c(left)));
            book.take(left).unwrap();
            assert!(book.route(port_s).is_none() && book.gone(port_s));
        }
    }

    /// Our port and the outbound SPI with which `set` reaches `peer`.
    fn route_to(set: &SaSet, peer: SocketAddr) -> Option<(u16, u32)> {
        set.sas()
            .iter()
            .find(|sa| {
                sa.direction == Direction::Out && SocketAddr::new(sa.dst, sa.dst_port) == peer
            })
            .map(|sa| (sa.src_port, sa.spi))
    }

    /// A P-CSCF's book of thousands of sets answers from its indexes
    /// what the sets say (routes, inbound SPIs, the set of given SAs),
    /// the oldest set first where two match, and is empty again once
    /// every set went.
    #[test]
    fn lookups_among_many_sets_answer_as_the_sets_do() {
        let ue = |i: usize| IpAddr::from([10, 2, (i >> 8) as u8, i as u8]);
        let sets: Vec<SaSet> = (0..2000)
            .map(|i| {
                set(
                    ue(i),
                    (6001, 6002),
                    (1000 + 4 * i as u32, 1001 + 4 * i as u32),
                )
            })
            .collect();
        let mut book = SaBook::default();
        for s in &sets {
            book.add(s, s.clone());
        }
        for s in &sets {
            for sa in s.sas().iter().filter(|sa| sa.direction == Direction::In) {
                let from = SocketAddr::new(sa.src, sa.src_port);
                assert_eq!(
                    book.inbound_spi(from, sa.dst_port),
                    s.inbound_spi(from, sa.dst_port)
                );
                assert_eq!(book.inbound_spi(from, sa.dst_port), Some(sa.spi));
            }
            let port_s = SocketAddr::new(s.ue_addr(), 6002);
            assert_eq!(book.route(port_s), route_to(s, port_s));
        }
        assert!(
            book.inbound_spi("10.9.9.9:6001".parse().unwrap(), 5066)
                .is_none()
        );
        // The same peer and ports, new SPIs (a handover): the oldest set's
        // inbound SPI until it goes.
        let again = set(ue(7), (6001, 6002), (900_000, 900_001));
        book.add(&again, again.clone());
        let from = SocketAddr::new(ue(7), 6001);
        assert_eq!(
            book.inbound_spi(from, 5068),
            sets[7].inbound_spi(from, 5068)
        );
        book.take(&sets[7]).unwrap();
        assert_eq!(book.inbound_spi(from, 5068), again.inbound_spi(from, 5068));
        assert!(book.take(&sets[7]).is_err(), "taken once");
        book.take(&again).unwrap();
        for s in sets
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 7)
            .map(|(_, s)| s)
        {
            book.take(s).unwrap();
        }
        assert!(book.sets.is_empty() && book.by_sas.is_empty());
        assert!(book.inbound.is_empty() && book.reaching.is_empty() && book.routes.is_empty());
        assert!(book.first().is_none());
    }

    #[test]
    fn the_memory_of_peers_gone_is_bounded_oldest_first() {
        let mut book = SaBook::default();
        // Two peers per set: more sets than the bound holds.
        let n = MAX_GONE / 2 + 100;
        let ue = |i: usize| IpAddr::from([10, 1, (i >> 8) as u8, i as u8]);
        for i in 0..n {
            let s = set(ue(i), (6001, 6002), (1000, 1001));
            book.add(&s, s.clone());
            book.take(&s).unwrap();
        }
        assert_eq!(book.gone.len(), MAX_GONE);
        assert!(book.gone_order.len() <= 2 * MAX_GONE + 64);
        assert!(!book.gone(SocketAddr::new(ue(0), 6002)), "the oldest went");
        assert!(book.gone(SocketAddr::new(ue(n - 1), 6002)));
    }
}
