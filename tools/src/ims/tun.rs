//! `--ipsec tun`: SIP over the SAs of a `mod=trans` agreement, carried by
//! `ipsecd` (root): ESP transport mode on the wire, as on a real Gm
//! interface.
//!
//! The SIP sockets are plain UDP sockets on this side's address with
//! port-c and port-s, and TCP on the same ports when asked
//! ([`IpsecdSas::enable_tcp`]); the policies select both UDP and TCP
//! ([`SaSet::with_tcp`]), so TCP between the ports is protected (and
//! clear TCP dropped) whichever the peer uses. The SAs and policies go into the namespace's ipsecd
//! through its control client ([`crate::ipsecd::client`]), tagged with an
//! owner: ipsecd then routes what the policies select into its TUN,
//! protects it, and delivers what its SAs let in to the same sockets; its
//! nft guards drop clear text to and from the protected ports, so nothing
//! a policy covers is sent or accepted in clear whatever this process
//! does. Inbound SPIs are held with `getspi` before they are offered:
//! the UE's at start ([`IpsecdSas::hold_spis`]), the network side's at
//! each challenge ([`IpsecdSas::spi_source`], given to `gm`); the `add`
//! of an SA whose SPI is held becomes the `update` that completes it.
//! The outbound policies get reqids no other policy of that ipsecd uses
//! (`free-reqids`), as the two outbound SAs of a set share their
//! addresses.
//!
//! A second client port ([`IpsecdSas::bind_alt`]) takes the SAs of a
//! re-registration that hands over to a fresh set (TS 33.203 §7.4): its
//! policies make ipsecd route it like the first; the UE holds the new
//! set's SPIs as the re-REGISTER leaves.
//!
//! At start everything the owner tag holds is removed (what a crashed
//! run left), and again at [`IpsecdSas::close`]: the process removes
//! exactly what it owns.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use gm::reg::{IpsecMode, SaSet};
use sadb::ast::Direction;
use sadb::{Owner, Statement};

use super::esp_udp::{Datagram, Recv, SaUsage};
use super::sockets::{SaBook, SipSockets, Taken};
use crate::ipsecd::client::{Client, ClientError, GetSpi};

/// The sockets and the ipsecd client of `--ipsec tun`.
#[derive(Debug)]
pub struct IpsecdSas {
    sockets: SipSockets,
    client: Client,
    owner: Owner,
    /// The SA sets installed.
    book: SaBook,
    /// SPIs held with `getspi` and not yet completed (shared with the
    /// [`HeldSpis`] given to `gm`).
    held: Arc<Mutex<Vec<u32>>>,
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
        let sockets = SipSockets::bind(addr, port_c, port_s)?;
        let ip = sockets.ip();
        if ip.is_loopback() || ip.is_unspecified() {
            bail!(
                "--ipsec tun needs the address of an interface ipsecd routes for, not {ip} \
                 (loopback traffic never reaches its TUN; --ipsec udp works on loopback)"
            );
        }
        Ok(IpsecdSas {
            sockets,
            client,
            owner,
            book: SaBook::default(),
            held: Arc::default(),
            leftovers,
            dropped: 0,
        })
    }

    /// The plain socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.sockets.local_addr()
    }

    /// TCP on our three ports too ([`SipSockets::enable_tcp`]).
    pub fn enable_tcp(&mut self, everything: bool) -> Result<()> {
        self.sockets.enable_tcp(everything)
    }

    /// The SIP sockets (their TCP side: [`SipSockets::tcp`]).
    pub fn sockets(&self) -> &SipSockets {
        &self.sockets
    }

    /// The SIP sockets.
    pub fn sockets_mut(&mut self) -> &mut SipSockets {
        &mut self.sockets
    }

    /// Our port-c and port-s.
    pub fn protected_ports(&self) -> (u16, u16) {
        self.sockets.protected_ports()
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
        self.spi_source().hold(peer)
    }

    /// Binds a second protected client port (0: any free port), for SA
    /// handovers at re-registration ([`SipSockets::bind_alt`]); ipsecd
    /// routes it once a set's policies name it. Its port.
    pub fn bind_alt(&mut self, port: u16) -> Result<u16> {
        self.sockets.bind_alt(port)
    }

    /// The second client port, when bound.
    pub fn alt_port(&self) -> Option<u16> {
        self.sockets.alt_port()
    }

    /// The network side's SPIs, held at ipsecd for each challenge
    /// ([`gm::reg::Network::set_spi_source`]).
    pub fn spi_source(&self) -> HeldSpis {
        HeldSpis {
            client: self.client.clone(),
            owner: self.owner.clone(),
            me: self.sockets.ip(),
            held: Arc::clone(&self.held),
        }
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
        SaBook::check_ports(set, &self.sockets.all_protected_ports())?;
        let base = self
            .client
            .free_reqids(2)
            .map_err(|e| anyhow!("cannot install the SAs: {e}"))?;
        let local = set.clone().with_reqid_base(base).with_tcp();
        let held = self.held.lock().map(|h| h.clone()).unwrap_or_default();
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
        if let Ok(mut h) = self.held.lock() {
            h.retain(|spi| !inbound.contains(spi));
        }
        self.book.add(set, local);
        Ok(())
    }

    /// Gives the installed SAs of `set` its lifetime (`update`).
    pub fn update(&mut self, set: &SaSet) -> Result<()> {
        let (client, owner) = (&self.client, &self.owner);
        self.book
            .update(set, |statements| apply(client, owner, statements, "update"))
    }

    /// Removes the SAs and policies of `set` (`spddelete`, `delete`);
    /// what each SA carried, as ipsecd counted it just before.
    pub fn remove(&mut self, set: &SaSet) -> Result<Vec<SaUsage>> {
        let local = self.book.take(set)?;
        // TCP connections over these SAs end first, while the SAs can
        // still carry their FINs.
        if let Some(t) = self.sockets.tcp_mut() {
            for sa in set.sas() {
                t.close_peer(match sa.direction {
                    Direction::Out => SocketAddr::new(sa.dst, sa.dst_port),
                    _ => SocketAddr::new(sa.src, sa.src_port),
                });
            }
        }
        let usage = self.usage(&local);
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
                sa_usage(spi, &text)
                    .inspect_err(|e| tracing::warn!("ipsecd's answer for SA {spi}: {e}"))
                    .ok()
            })
            .collect()
    }

    /// Removes every SA set still installed and whatever else the owner
    /// holds (SPIs held and never used); returns the sets with what their
    /// SAs carried.
    pub fn close(&mut self) -> Result<Vec<(SaSet, Vec<SaUsage>)>> {
        let mut removed = Vec::new();
        let mut first_error = None;
        // A set that fails to go is forgotten all the same (`take` comes
        // first) and removed below, by owner.
        while let Some(given) = self.book.first() {
            match self.remove(&given) {
                Ok(usage) => removed.push((given, usage)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Ok(mut h) = self.held.lock() {
            h.clear();
        }
        self.client
            .delete_owned(&self.owner)
            .map_err(|e| anyhow!("cannot remove what {} holds at ipsecd: {e}", self.owner))?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    fn apply(&self, statements: &[Statement], what: &str) -> Result<()> {
        apply(&self.client, &self.owner, statements, what)
    }

    /// Sends one SIP message to `to`: from our port `from_port` when given
    /// (a response: where its request arrived), else from the protected
    /// port an outbound SA to `to` leaves from (ipsecd protects it), or in
    /// clear from the plain socket. The SPI of the SA that carries it, if
    /// one does.
    pub fn send(
        &mut self,
        bytes: &[u8],
        to: SocketAddr,
        from_port: Option<u16>,
    ) -> Result<Option<u32>> {
        let plain_port = self.sockets.local_addr().port();
        // From the port given (a response: where its request arrived):
        // ipsecd's policies select on both ports.
        let route = match from_port {
            Some(p) if p == plain_port => None,
            Some(p) => match self.book.route(to).filter(|r| r.0 == p) {
                Some(r) => Some(r),
                // Fail closed: nothing leaves a protected port in clear.
                None => {
                    return Err(super::SaGone {
                        to,
                        why: format!("no SA from our protected port {p} any more"),
                    }
                    .into());
                }
            },
            None => self.book.route(to),
        };
        if route.is_none() && self.book.gone(to) {
            return Err(super::SaGone {
                to,
                why: "its SAs are gone".into(),
            }
            .into());
        }
        if self.sockets.goes_tcp(to) {
            let port = route.map_or(plain_port, |(port, _)| port);
            if let Some(t) = self.sockets.tcp_mut() {
                t.send(bytes, to, port)?;
            }
            return Ok(route.map(|(_, spi)| spi));
        }
        let (sock, spi) = match route {
            Some((port, spi)) => match self.sockets.protected(port) {
                Some(sock) => (sock, Some(spi)),
                None => bail!("not sent to {to}: its SA leaves from port {port}, not ours"),
            },
            None => (self.sockets.plain(), None),
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
        let a = match self.sockets.recv_any(buf, wait)? {
            None => return Ok(None),
            Some(Taken::Arrival(a)) => a,
            Some(Taken::Closed { from, port, reason }) => {
                return Ok(Some(Recv::Dropped { from, port, reason }));
            }
        };
        let (from, port) = (a.from, a.port);
        if !a.protected {
            self.book.heard_in_clear(from);
            return Ok(Some(Recv::Message(Datagram {
                stream: a.stream,
                range: 0..a.len,
                from,
                protected_port: None,
                spi: None,
            })));
        }
        // The SA it came over: the inbound SA from that peer's port to
        // ours. ipsecd's guard drops clear text from a peer with SAs; from
        // any other sender a protected port takes nothing (fail closed).
        let Some(spi) = self.book.inbound_spi(from, port) else {
            self.dropped += 1;
            return Ok(Some(Recv::Dropped {
                from,
                port,
                reason: "no SA from this sender to this protected port".into(),
            }));
        };
        Ok(Some(Recv::Message(Datagram {
            stream: a.stream,
            range: 0..a.len,
            from,
            protected_port: Some(port),
            spi: Some(spi),
        })))
    }
}

/// SPIs held at ipsecd under an owner tag, for SAs from a peer to `me`;
/// the network side's [`gm::reg::SpiSource`] in `--ipsec tun`.
#[derive(Debug, Clone)]
pub struct HeldSpis {
    client: Client,
    owner: Owner,
    me: IpAddr,
    held: Arc<Mutex<Vec<u32>>>,
}

impl HeldSpis {
    /// Two SPIs for SAs from `peer`, held with `getspi`.
    pub fn hold(&self, peer: IpAddr) -> Result<(u32, u32)> {
        let hold = || -> Result<u32> {
            let id = self
                .client
                .getspi(&GetSpi::new(peer, self.me), Some(&self.owner))
                .map_err(|e| anyhow!("cannot hold an SPI at ipsecd: {e}"))?;
            Ok(id.spi.0)
        };
        let (c, s) = (hold()?, hold()?);
        if let Ok(mut h) = self.held.lock() {
            h.extend([c, s]);
        }
        Ok((c, s))
    }
}

impl gm::reg::SpiSource for HeldSpis {
    fn inbound_spis(&mut self, ue: IpAddr) -> Option<(u32, u32)> {
        self.hold(ue).ok()
    }
}

fn apply(client: &Client, owner: &Owner, statements: &[Statement], what: &str) -> Result<()> {
    client
        .apply_statements(statements, Some(owner))
        .map(|_| ())
        .map_err(|e| anyhow!("cannot {what} the SAs at ipsecd: {e}"))
}

/// What one SA carried, from ipsecd's `get` answer (`setkey -D` text:
/// `current: N(bytes)` and `allocated: N`, the packets).
fn sa_usage(spi: u32, text: &str) -> Result<SaUsage> {
    let (_, c) = sadb::dump::parse_sa_counters(text)?
        .into_iter()
        .find(|(s, _)| *s == spi)
        .ok_or_else(|| anyhow!("no SA with SPI {spi} in the answer"))?;
    Ok(SaUsage {
        spi,
        packets: c.packets,
        bytes: c.bytes,
        setkey: text.to_string(),
    })
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
        let u = sa_usage(4097, text).unwrap();
        assert_eq!((u.spi, u.packets, u.bytes), (4097, 3, 2310));
        assert_eq!(u.setkey, text);
        // Another SPI, or a cut answer: an error, not zeros.
        assert!(sa_usage(4098, text).is_err());
        assert!(sa_usage(4097, &text[..text.find("\tcurrent: 2310").unwrap()]).is_err());
    }
}
