//! `--ipsec udp`: SIP over the SAs of a `mod=UDP-enc-tun` agreement (TS
//! 33.203), without root: ESP in UDP (RFC 3948) on ordinary UDP sockets
//! bound to this side's port-c and port-s, the SAs and policies in an
//! in-process `sadb` database.
//!
//! Outgoing SIP becomes an inner IP/UDP packet (built by `etherparse`)
//! from this side's address and port to the peer's; `sadb`'s
//! [`Databases::protect`] decides: an `esp-udp` tunnel SA gives the ESP
//! packet, sent from the socket of the SA's UDP source port; no policy
//! sends it in clear from the plain socket, but never from a protected
//! port (fail closed). Every datagram on a protected port goes to
//! [`Databases::unprotect`] with the socket's addresses; only what came
//! out of an SA is delivered, so clear text there is dropped and counted.
//! The SA statements are `gm`'s ([`SaSet::statements`] and the update and
//! delete ones), applied with `sadb`'s own apply.

use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use gm::reg::{IpsecMode, SaSet};
use sadb::{Databases, DiscardReason, Incoming, Outgoing, Received, Statement, Timestamp, Wire};

use super::OsRandom;
use super::sockets::{SaBook, SipSockets};

/// A message that cannot leave, for good: the policy to its destination
/// asks for SAs that are gone (removed, expired or used up), and nothing
/// goes in clear instead. The transaction that sent it ends at once (RFC
/// 3261 §17.1.4, a transport error) rather than retransmitting into the
/// void until its timers end it.
#[derive(Debug)]
pub struct SaGone {
    /// The destination.
    pub to: SocketAddr,
    /// Why, for the message.
    pub why: String,
}

impl std::fmt::Display for SaGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not sent to {}: {}", self.to, self.why)
    }
}

impl std::error::Error for SaGone {}

/// Room in front of a packet for the ESP and outer headers the engine
/// writes (one SA: at most 64 bytes, `sadb` says; kept generous).
const HEAD: usize = 128;
/// Room after it for padding and ICV.
const TAIL: usize = 128;
/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// What [`EspUdp::recv`] got.
#[derive(Debug)]
pub enum Recv {
    /// A SIP message at `buf[range]`.
    Message(Datagram),
    /// A datagram that is not delivered (clear text on a protected port,
    /// an unknown SPI, a bad ICV...), already counted.
    Dropped {
        /// The sender.
        from: SocketAddr,
        /// Our port it came to.
        port: u16,
        /// Why, one line.
        reason: String,
    },
}

/// A received message and how it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Where the SIP message is in the caller's buffer.
    pub range: std::ops::Range<usize>,
    /// The sender (the inner source when it came over an SA).
    pub from: SocketAddr,
    /// Our protected port it came to over an SA, or `None` (clear, on the
    /// plain socket).
    pub protected_port: Option<u16>,
    /// The SA that carried it.
    pub spi: Option<u32>,
    /// Whether it came over TCP (a message cut from a connection).
    pub stream: bool,
}

impl Datagram {
    /// Whether its transport retransmits for us (it came over TCP).
    pub fn reliability(&self) -> gm::txn::Reliability {
        if self.stream {
            gm::txn::Reliability::Reliable
        } else {
            gm::txn::Reliability::Unreliable
        }
    }
}

/// What one SA carried, read when it is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaUsage {
    /// Its SPI.
    pub spi: u32,
    /// Packets it protected (outbound) or let in (inbound).
    pub packets: u64,
    /// Bytes it protected: the inner IP packets (tunnel mode), as Linux
    /// XFRM counts.
    pub bytes: u64,
    /// The SA as `setkey -D` prints it (keys included).
    pub setkey: String,
}

/// The sockets, the SA database and the capture of `--ipsec udp`.
#[derive(Debug)]
pub struct EspUdp {
    sockets: SipSockets,
    db: Databases,
    /// The SA sets installed, removed on [`EspUdp::close`].
    book: SaBook,
    rng: OsRandom,
    /// The send buffer, reused.
    out: Vec<u8>,
    pcap: Option<File>,
    dropped: u64,
}

impl EspUdp {
    /// Binds the plain socket on `addr` and the protected ones on its
    /// address with `port_c` and `port_s` (0: any free port).
    pub fn bind(addr: SocketAddr, port_c: u16, port_s: u16) -> Result<EspUdp> {
        let sockets = SipSockets::bind(addr, port_c, port_s)?;
        // The first SA's crypto costs its CPU feature detection, and the
        // first IV a read of /dev/urandom: paid now, not in the first
        // protected REGISTER.
        opensec::warm_up();
        let mut rng = OsRandom::new()?;
        rng.prime();
        warm_up_engine(addr.ip(), &mut rng);
        Ok(EspUdp {
            sockets,
            db: {
                let mut db = Databases::new();
                db.tunnel_needs_policy = true;
                db
            },
            book: SaBook::default(),
            rng,
            out: vec![0; HEAD + MAX_DATAGRAM + TAIL],
            pcap: None,
            dropped: 0,
        })
    }

    /// Writes every packet sent and received, as the outer IP packet on
    /// the wire (IP/UDP/ESP over the SAs, IP/UDP in clear), to a pcap file
    /// at `path` (raw IP link type).
    pub fn capture(&mut self, path: &Path) -> Result<()> {
        let mut f =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        f.write_all(&crate::pcap::file_header(crate::pcap::LINKTYPE_RAW, false))
            .with_context(|| format!("cannot write {}", path.display()))?;
        self.pcap = Some(f);
        Ok(())
    }

    /// The plain socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.sockets.local_addr()
    }

    /// Our port-c and port-s.
    pub fn protected_ports(&self) -> (u16, u16) {
        self.sockets.protected_ports()
    }

    /// Binds a second protected client port (0: any free port), for SA
    /// handovers at re-registration ([`SipSockets::bind_alt`]); its port.
    pub fn bind_alt(&mut self, port: u16) -> Result<u16> {
        self.sockets.bind_alt(port)
    }

    /// The second client port, when bound.
    pub fn alt_port(&self) -> Option<u16> {
        self.sockets.alt_port()
    }

    /// Datagrams dropped on the protected ports so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Installs `set` (its `spdadd` and `add` statements); refused unless
    /// it is `UDP-enc-tun` on our protected ports.
    pub fn install(&mut self, set: &SaSet) -> Result<()> {
        if set.mode() != IpsecMode::UdpEncapsulatedTunnel {
            bail!(
                "the agreed SAs are mod={}: --ipsec udp carries only mod=UDP-enc-tun",
                set.mode()
            );
        }
        SaBook::check_ports(set, &self.sockets.all_protected_ports())?;
        // Each set's two outbound policies get reqids no other set here
        // has, or a `unique:N` policy would take another UE's SA (every
        // set comes with reqids 1 and 2).
        let base = self
            .db
            .free_reqids(2)
            .ok_or_else(|| anyhow!("cannot install the SAs: no reqids left"))?;
        let local = set.clone().with_reqid_base(base);
        self.apply(&local.statements(), "install")?;
        self.book.add(set, local);
        Ok(())
    }

    /// Gives the installed SAs of `set` its lifetime (`update`).
    pub fn update(&mut self, set: &SaSet) -> Result<()> {
        let db = &mut self.db;
        self.book
            .update(set, |statements| apply(db, statements, "update"))
    }

    /// Removes the SAs and policies of `set` (`spddelete`, `delete`);
    /// what each SA carried, as it was just before.
    pub fn remove(&mut self, set: &SaSet) -> Result<Vec<SaUsage>> {
        let local = self.book.take(set)?;
        let usage = self.usage(set);
        self.apply(&local.delete_statements(), "remove")?;
        Ok(usage)
    }

    /// The counters and `setkey -D` text of the SAs of `set` installed
    /// here.
    pub fn usage(&self, set: &SaSet) -> Vec<SaUsage> {
        let now = now();
        let opts = sadb::DumpOptions {
            pid: std::process::id(),
            stats: false,
        };
        set.sas()
            .iter()
            .filter_map(|sa| {
                let e = self.db.sad().lookup(
                    sa.dst,
                    ipsec_esp::Protocol::Esp,
                    ipsec_esp::Spi(sa.spi),
                )?;
                let c = e.counters();
                Some(SaUsage {
                    spi: sa.spi,
                    packets: c.packets,
                    bytes: c.bytes,
                    setkey: sadb::dump::dump_sa(e, now, 0, &opts),
                })
            })
            .collect()
    }

    /// Removes every SA set still installed (at exit); returns them with
    /// what their SAs carried, for the caller to report.
    pub fn close(&mut self) -> Result<Vec<(SaSet, Vec<SaUsage>)>> {
        let mut removed = Vec::new();
        while let Some(given) = self.book.first() {
            let usage = self.remove(&given)?;
            removed.push((given, usage));
        }
        Ok(removed)
    }

    fn apply(&mut self, statements: &[Statement], what: &str) -> Result<()> {
        apply(&mut self.db, statements, what)
    }

    /// Sends one SIP message to `to` from our port `from_port` (a
    /// response: the port its request arrived on), or else from the port
    /// `to`'s SAs leave from, or the plain one: over the SA the policy
    /// for those ports names, or in clear from the plain socket where no
    /// policy covers them. The SPI of the SA used, if one was.
    pub fn send(
        &mut self,
        bytes: &[u8],
        to: SocketAddr,
        from_port: Option<u16>,
    ) -> Result<Option<u32>> {
        let plain_port = self.sockets.local_addr().port();
        let route = self.book.route(to);
        if route.is_none() && self.book.gone(to) {
            return Err(SaGone {
                to,
                why: "its SAs are gone".into(),
            }
            .into());
        }
        let src_port = from_port.unwrap_or_else(|| route.map_or(plain_port, |(port, _)| port));
        let inner = ip_udp(SocketAddr::new(self.sockets.ip(), src_port), to, bytes)
            .ok_or_else(|| anyhow!("cannot send {} bytes to {to}: too long", bytes.len()))?;
        let end = HEAD + inner.len();
        let Some(slot) = self.out.get_mut(HEAD..end) else {
            bail!("cannot send {} bytes to {to}: too long", bytes.len());
        };
        slot.copy_from_slice(&inner);
        let rng = &mut self.rng;
        let mut iv = |iv: &mut [u8]| gm::reg::Random::fill(rng, iv);
        match self.db.protect(&mut self.out, HEAD..end, now(), &mut iv) {
            Outgoing::Protected(p) => {
                let Wire::EspInUdp { sport, dport } = p.wire else {
                    bail!("not sent to {to}: its SA is not ESP in UDP");
                };
                let sock = self.sockets.protected(sport).ok_or_else(|| {
                    anyhow!("not sent to {to}: its SA leaves from port {sport}, not ours")
                })?;
                let payload = self.out.get(p.payload()).unwrap_or_default();
                sock.send_to(payload, SocketAddr::new(p.dst, dport))
                    .with_context(|| format!("cannot send to {to}"))?;
                let packet = self.out.get(p.packet.clone()).unwrap_or_default();
                record(&mut self.pcap, packet);
                Ok(p.sas.iter().next().map(|u| u.id.spi.0))
            }
            Outgoing::Bypass { .. } if src_port == plain_port => {
                self.sockets
                    .plain()
                    .send_to(bytes, to)
                    .with_context(|| format!("cannot send to {to}"))?;
                record(&mut self.pcap, &inner);
                Ok(None)
            }
            // Fail closed: a peer reached over SAs gets nothing in clear,
            // even when its SAs are gone.
            Outgoing::Bypass { .. } => Err(SaGone {
                to,
                why: format!("no SA from our protected port {src_port} any more"),
            }
            .into()),
            Outgoing::Discard(d)
                if matches!(d.reason, DiscardReason::SequenceNotReserved { .. }) =>
            {
                bail!("not sent to {to}: {:?}", d.reason)
            }
            Outgoing::Discard(d) => Err(SaGone {
                to,
                why: format!("{:?}", d.reason),
            }
            .into()),
        }
    }

    /// A socket whose readability ends a wait ([`SipSockets::set_wake`]).
    pub fn set_wake(&mut self, wake: std::os::unix::net::UnixStream) {
        self.sockets.set_wake(wake);
    }

    /// Receives one datagram into `buf` (at least 64 KiB + 256 bytes),
    /// waiting at most `wait`; `None` when none came.
    pub fn recv(&mut self, buf: &mut [u8], wait: Duration) -> Result<Option<Recv>> {
        let Some(room) = buf.get_mut(HEAD..) else {
            bail!("receive buffer too small");
        };
        let Some(a) = self.sockets.recv(room, wait)? else {
            return Ok(None);
        };
        let (from, port) = (a.from, a.port);
        let local = SocketAddr::new(self.sockets.ip(), port);
        let range = HEAD..HEAD + a.len;
        let datagram = buf.get(range.clone()).unwrap_or_default();
        if let Some(outer) = ip_udp(from, local, datagram) {
            record(&mut self.pcap, &outer);
        }
        if !a.protected {
            self.book.heard_in_clear(from);
            return Ok(Some(Recv::Message(Datagram {
                stream: false,
                range,
                from,
                protected_port: None,
                spi: None,
            })));
        }
        let verdict = self.db.unprotect(
            buf,
            range,
            Received::Udp {
                src: from,
                dst: local,
            },
            now(),
        );
        let mut refuse = |reason: String| {
            self.dropped += 1;
            Ok(Some(Recv::Dropped { from, port, reason }))
        };
        // A UDP payload is ESP of an SA or dropped (clear text reads as an
        // unknown SPI), and with `tunnel_needs_policy` what comes out of
        // an SA is what an inbound policy selects (RFC 4301 §5.2): both
        // are the engine's rules.
        let d = match verdict {
            Incoming::Deliver(d) => d,
            Incoming::Drop(d) => return refuse(drop_reason(&d.reason)),
        };
        let spi = d.sas.iter().next().map(|u| u.id.spi.0);
        let packet = buf.get(d.packet.clone()).unwrap_or_default();
        let Some((inner_from, payload)) = udp_payload(packet) else {
            return refuse("the inner packet is not UDP".into());
        };
        let start = d.packet.start + payload.start;
        Ok(Some(Recv::Message(Datagram {
            stream: false,
            range: start..d.packet.start + payload.end,
            from: inner_from,
            protected_port: Some(port),
            spi,
        })))
    }
}

fn apply(db: &mut Databases, statements: &[Statement], what: &str) -> Result<()> {
    db.apply_statements(statements, now())
        .map(|_| ())
        .map_err(|e| anyhow!("cannot {what} the SAs: {e}"))
}

/// Installs a set of SAs on scratch databases of each side, sends one
/// datagram through them both ways (protect, unprotect) and removes them:
/// what the engine's first use costs in a process (the pages of its code,
/// cold caches, the allocator's first blocks) is paid at start, not by the
/// first protected REGISTER and its 200. Nothing is kept and nothing is
/// sent; failures are ignored (the real SAs report their own). Whether
/// the datagram came through and everything was removed.
fn warm_up_engine(ip: IpAddr, rng: &mut OsRandom) -> bool {
    let offer = |spi_c, spi_s, port_c, port_s| gm::reg::IpsecOffer {
        alg: opensec::AuthAlgorithm::HmacSha1_96,
        ealg: opensec::EncAlgorithm::AesCbc,
        mode: IpsecMode::UdpEncapsulatedTunnel,
        spi_c,
        spi_s,
        port_c,
        port_s,
    };
    let agreement = gm::reg::Agreement {
        ue_addr: ip,
        pcscf_addr: ip,
        ue: offer(1001, 1002, 1, 2),
        pcscf: offer(1003, 1004, 3, 4),
    };
    let Ok(ue) = SaSet::new(
        gm::reg::Side::Ue,
        &agreement,
        &[1; 16],
        &[2; 16],
        Duration::from_secs(60),
    ) else {
        return false;
    };
    let network = ue.mirror();
    let mut dbs = [&ue, &network].map(|set| {
        let mut db = Databases::new();
        db.tunnel_needs_policy = true;
        let set = set.clone().with_reqid_base(db.free_reqids(2).unwrap_or(1));
        let _ = apply(&mut db, &set.statements(), "install");
        (db, set)
    });
    let from = SocketAddr::new(ip, 1);
    let to = SocketAddr::new(ip, 4);
    let mut through = false;
    if let Some(inner) = ip_udp(from, to, &[b'x'; 512]) {
        let mut buf = vec![0; HEAD + inner.len() + TAIL];
        if let Some(slot) = buf.get_mut(HEAD..HEAD + inner.len()) {
            slot.copy_from_slice(&inner);
        }
        let mut iv = |iv: &mut [u8]| gm::reg::Random::fill(rng, iv);
        let [(ue_db, _), (net_db, _)] = &mut dbs;
        if let Outgoing::Protected(p) =
            ue_db.protect(&mut buf, HEAD..HEAD + inner.len(), now(), &mut iv)
        {
            let (src, dst) = match p.wire {
                Wire::EspInUdp { sport, dport } => (sport, dport),
                _ => (0, 0),
            };
            through = matches!(
                net_db.unprotect(
                    &mut buf,
                    p.payload(),
                    Received::Udp {
                        src: SocketAddr::new(ip, src),
                        dst: SocketAddr::new(ip, dst),
                    },
                    now(),
                ),
                Incoming::Deliver(_)
            );
        }
    }
    dbs.iter_mut()
        .all(|(db, set)| apply(db, &set.delete_statements(), "remove").is_ok())
        && through
}

/// One line for a datagram the engine refused.
fn drop_reason(r: &sadb::DropReason) -> String {
    match r {
        sadb::DropReason::UnknownSa { id } => format!(
            "no SA with SPI 0x{:08x} (clear text on a protected port, or an SA already removed)",
            id.spi.0
        ),
        sadb::DropReason::NoPolicy => "no inbound policy selects the inner packet".into(),
        other => format!("{other:?}"),
    }
}

/// The receive buffer [`EspUdp::recv`] wants.
pub fn recv_buffer() -> Vec<u8> {
    vec![0; HEAD + MAX_DATAGRAM + TAIL]
}

/// An IPv4 or IPv6 packet carrying UDP from `src` to `dst` (`etherparse`
/// fills in lengths and checksums); `None` when too long or the families
/// differ.
fn ip_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    let b = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            etherparse::PacketBuilder::ipv4(s.octets(), d.octets(), 64).udp(src.port(), dst.port())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            etherparse::PacketBuilder::ipv6(s.octets(), d.octets(), 64).udp(src.port(), dst.port())
        }
        _ => return None,
    };
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).ok()?;
    Some(out)
}

/// The sender and where the payload is in an IP/UDP packet (`etherparse`).
fn udp_payload(packet: &[u8]) -> Option<(SocketAddr, std::ops::Range<usize>)> {
    let p = etherparse::SlicedPacket::from_ip(packet).ok()?;
    let src = match p.net? {
        etherparse::NetSlice::Ipv4(h) => IpAddr::V4(h.header().source_addr()),
        etherparse::NetSlice::Ipv6(h) => IpAddr::V6(h.header().source_addr()),
        _ => return None,
    };
    let etherparse::TransportSlice::Udp(u) = p.transport? else {
        return None;
    };
    let payload = u.payload();
    let start = payload
        .as_ptr()
        .addr()
        .checked_sub(packet.as_ptr().addr())?;
    Some((
        SocketAddr::new(src, u.source_port()),
        start..start + payload.len(),
    ))
}

/// Appends a packet to the capture; a capture that cannot be written is
/// reported once and closed.
fn record(pcap: &mut Option<File>, packet: &[u8]) {
    let Some(f) = pcap else { return };
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut rec = Vec::with_capacity(16 + packet.len());
    let secs = u32::try_from(t.as_secs()).unwrap_or(u32::MAX);
    crate::pcap::write_record(&mut rec, secs, t.subsec_micros(), packet);
    if let Err(e) = f.write_all(&rec) {
        eprintln!("warning: cannot write the capture: {e}");
        *pcap = None;
    }
}

fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn udp_payload_finds_the_sender_and_the_payload() {
        let src: SocketAddr = "127.0.0.1:5062".parse().unwrap();
        let dst: SocketAddr = "127.0.0.1:5068".parse().unwrap();
        let p = ip_udp(src, dst, b"OPTIONS").unwrap();
        let (from, r) = udp_payload(&p).unwrap();
        assert_eq!(from, src);
        assert_eq!(&p[r], b"OPTIONS");
        let v6: SocketAddr = "[::1]:5062".parse().unwrap();
        assert!(ip_udp(v6, dst, b"x").is_none());
        assert!(udp_payload(b"\x45garbage").is_none());
    }

    /// The warm-up really runs the engine: its datagram comes through
    /// both ways and its SAs and policies are removed again.
    #[test]
    fn warm_up_sends_a_datagram_through_scratch_sas() {
        let mut rng = OsRandom::new().unwrap();
        assert!(warm_up_engine("127.0.0.1".parse().unwrap(), &mut rng));
    }
}
