//! What `imsua` and `pcscf` share, all of it IO or presentation: the
//! subscriber file, `imsua`'s configuration file ([`config`]), the
//! `--ipsec` modes, the transport the SIP messages
//! travel on ([`esp_udp`] for `--ipsec udp`), OS randomness, the ladder
//! lines, SIGTERM/SIGINT. The protocol decisions are `gm`'s (`gm::reg`,
//! `gm::txn`, `gm::pager`) and `sadb`'s (which packet goes over which SA).
//!
//! ```
//! let subs = tools::ims::parse_subscribers("s.toml", r#"
//! realm = "ims.example.org"
//! [[subscriber]]
//! impi = "alice@ims.example.org"
//! impus = ["sip:alice@ims.example.org"]
//! k = "fec86ba6eb707ed08905757b1bb44b8f"
//! op = "dbc59adcb6f9a0ef735477b7fadf8374"
//! amf = "725c"
//! sqn = "9d0277595ffc"
//! "#).unwrap();
//! assert_eq!(subs.realm, "ims.example.org");
//! assert_eq!(subs.subscribers[0].1.sqn, 0x9d02_7759_5ffc);
//! ```

use std::io::{BufRead, Read};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use gm::reg::{Flow, OpKey, SaSet, Subscriber};
use gm::sip::Message;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

pub mod command;
pub mod comp;
pub mod config;
pub mod demo;
pub mod esp_udp;
pub mod netns;
pub mod sockets;
pub mod stream;
pub mod tun;

pub use esp_udp::{Datagram, EspUdp, Recv, SaGone, SaUsage};

/// The receive buffer asked for on the plain socket (4 MiB).
const RECV_BUFFER: usize = 4 << 20;

/// How SIP travels between the UE and the P-CSCF (`--ipsec`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipsec {
    /// In clear over UDP, without sec-agree (the network allows
    /// unprotected registration).
    None,
    /// Sec-agree with `mod=UDP-enc-tun`: ESP in UDP on the protected
    /// ports, SAs in the process ([`esp_udp`]); no root needed.
    Udp,
    /// Sec-agree with `mod=trans`: ESP transport mode by the namespace's
    /// `ipsecd` ([`tun`]); root.
    Tun,
}

impl Ipsec {
    /// Reads a `--ipsec` value: `none`, `udp` or `tun`.
    pub fn parse(s: &str) -> Result<Ipsec, String> {
        match s {
            "none" => Ok(Ipsec::None),
            "udp" => Ok(Ipsec::Udp),
            "tun" => Ok(Ipsec::Tun),
            _ => Err(format!("unknown --ipsec mode {s:?}: use none, udp or tun")),
        }
    }

    /// Whether SIP goes over sec-agree SAs (`udp`, `tun`).
    pub fn sec_agree(self) -> bool {
        self != Ipsec::None
    }

    /// The sec-agree `mod` of the SAs (`None` without sec-agree).
    pub fn sa_mode(self) -> Option<gm::reg::IpsecMode> {
        match self {
            Ipsec::None => None,
            Ipsec::Udp => Some(gm::reg::IpsecMode::UdpEncapsulatedTunnel),
            Ipsec::Tun => Some(gm::reg::IpsecMode::Transport),
        }
    }

    /// The `--ipsec` word.
    pub fn name(self) -> &'static str {
        match self {
            Ipsec::None => "none",
            Ipsec::Udp => "udp",
            Ipsec::Tun => "tun",
        }
    }
}

/// `udp` or `tcp` (`--transport`, `transport =`).
pub fn transport(s: &str) -> Result<gm::txn::Protocol, String> {
    gm::txn::Protocol::parse(s).ok_or_else(|| format!("unknown transport {s:?}: use udp or tcp"))
}

/// What a transport does with TCP ([`stream`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tcp {
    /// UDP only.
    Off,
    /// A TCP listener on the SIP port too: requests and responses go back
    /// over the connection they came on, and to destinations
    /// [`Transport::mark_stream`]ed (the P-CSCF).
    Accept,
    /// Everything we send goes over TCP, from our SIP port, and we listen
    /// there too (a UA with `--transport tcp`).
    Send,
}

/// The sockets SIP goes over; one variant per `--ipsec` mode.
#[derive(Debug)]
pub enum Transport {
    /// Plain UDP, and TCP beside it.
    Plain(Box<PlainSip>),
    /// ESP in UDP on port-c and port-s beside a plain socket.
    Udp(Box<EspUdp>),
    /// Plain sockets on port-c and port-s whose traffic ipsecd protects.
    Tun(Box<tun::IpsecdSas>),
}

/// `--ipsec none`: one UDP socket, and with [`Tcp::Accept`] or
/// [`Tcp::Send`] the TCP listener and connections on the same port.
#[derive(Debug)]
pub struct PlainSip {
    udp: UdpSocket,
    tcp: Option<stream::Streams>,
    /// Ends a wait when readable ([`Transport::set_wake`]).
    wake: Option<std::os::unix::net::UnixStream>,
    /// UDP datagrams taken in a row without a look at TCP.
    in_a_row: u32,
    /// UDP datagrams taken together and not handed out yet.
    queue: UdpQueue,
}

/// The datagrams one `recvmmsg` took from a busy UDP socket (one system
/// call for up to [`crate::sys::BATCH`] of them, where `recv_from` makes
/// one each), handed out one by one. A socket is read with `recv_from`
/// until it proves busy ([`UdpQueue::BUSY`] datagrams in a row without
/// running dry): the batch's buffers (2 MiB, written on first use) would
/// cost a UA's first answer more than half a millisecond.
#[derive(Debug, Default)]
struct UdpQueue {
    batch: Option<Box<crate::sys::RecvBatch>>,
    next: usize,
    count: usize,
    /// Datagrams taken since the socket last ran dry, before `batch`.
    streak: u32,
}

impl UdpQueue {
    /// Datagrams in a row that make a socket busy.
    const BUSY: u32 = 8;

    /// Whether datagrams taken are waiting to be handed out.
    fn holds_some(&self) -> bool {
        self.next < self.count
    }

    /// The next datagram from `udp` into `buf`, as `recv_from` gives it
    /// (cut to `buf`): the next one taken, or else those waiting now;
    /// `WouldBlock` when there are none.
    fn recv(&mut self, udp: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        let Some(b) = &mut self.batch else {
            let r = udp.recv_from(buf);
            match &r {
                Ok(_) => self.streak += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.streak = 0,
                Err(_) => {}
            }
            if self.streak >= Self::BUSY {
                self.batch = Some(Box::new(crate::sys::RecvBatch::new(0, 65535, 0)));
            }
            return r;
        };
        if self.next >= self.count {
            self.count = b.recv_waiting(udp.as_fd())?;
            self.next = 0;
        }
        let i = self.next;
        self.next += 1;
        // A UDP datagram always has its sender; without one it is not
        // a datagram this socket can answer.
        let Some((d, Some(from))) = self.batch.as_ref().and_then(|b| b.datagram(i)) else {
            return Err(std::io::Error::other("a datagram without a sender"));
        };
        let n = d.len().min(buf.len());
        buf.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(d.get(..n).unwrap_or_default());
        Ok((n, from))
    }
}

/// How many datagrams a busy UDP socket may give in a row before the TCP
/// side gets a look: UDP is read first (one system call per datagram when
/// it is busy), TCP is not starved.
const UDP_IN_A_ROW: u32 = 32;

impl Transport {
    /// Binds `addr` for `mode`; with `udp` and `tun`, the protected ports
    /// `(port_c, port_s)` too (0: any free port). With `tun`, `ipsecd`
    /// names the control socket and the owner tag of what is installed
    /// there ([`tun::IpsecdSas::bind`]). `tcp` with `udp` is refused.
    pub fn bind(
        mode: Ipsec,
        addr: SocketAddr,
        protected: (u16, u16),
        ipsecd: (&Path, &str),
        tcp: Tcp,
    ) -> Result<Transport> {
        if tcp != Tcp::Off && mode == Ipsec::Udp {
            bail!("SIP over TCP needs --ipsec none or tun: ESP in UDP carries UDP datagrams here");
        }
        match mode {
            Ipsec::Tun => {
                let mut t =
                    tun::IpsecdSas::bind(addr, protected.0, protected.1, ipsecd.0, ipsecd.1)?;
                if tcp != Tcp::Off {
                    t.enable_tcp(tcp == Tcp::Send)?;
                }
                Ok(Transport::Tun(Box::new(t)))
            }
            Ipsec::None => {
                let s = UdpSocket::bind(addr).with_context(|| format!("cannot bind {addr}"))?;
                // Non-blocking: `recv` tries the socket first and waits
                // (poll) only when it is empty, so a busy peer costs one
                // system call per datagram, not a timeout set each time.
                s.set_nonblocking(true)
                    .with_context(|| format!("cannot set {addr} non-blocking"))?;
                // Room for bursts (a load generator, a pause of this
                // process): the default (about 200 KiB) holds a few hundred
                // datagrams; the kernel caps it at net.core.rmem_max.
                let _ = socket2::SockRef::from(&s).set_recv_buffer_size(RECV_BUFFER);
                let local = s.local_addr()?;
                let tcp = match tcp {
                    Tcp::Off => None,
                    Tcp::Accept | Tcp::Send => {
                        let mut streams = stream::Streams::new(local.ip());
                        streams.listen(local.port())?;
                        if tcp == Tcp::Send {
                            streams.everything();
                        }
                        Some(streams)
                    }
                };
                Ok(Transport::Plain(Box::new(PlainSip {
                    udp: s,
                    tcp,
                    wake: None,
                    in_a_row: 0,
                    queue: UdpQueue::default(),
                })))
            }
            Ipsec::Udp => Ok(Transport::Udp(Box::new(EspUdp::bind(
                addr,
                protected.0,
                protected.1,
            )?))),
        }
    }

    /// The TCP side, if any.
    fn streams(&self) -> Option<&stream::Streams> {
        match self {
            Transport::Plain(p) => p.tcp.as_ref(),
            Transport::Tun(t) => t.sockets().tcp(),
            Transport::Udp(_) => None,
        }
    }

    fn streams_mut(&mut self) -> Option<&mut stream::Streams> {
        match self {
            Transport::Plain(p) => p.tcp.as_mut(),
            Transport::Tun(t) => t.sockets_mut().tcp_mut(),
            Transport::Udp(_) => None,
        }
    }

    /// A socket whose readability ends [`Transport::recv`]'s wait at once
    /// (it returns nothing): lines read from stdin by another thread
    /// ([`command::stdin_lines`]) are taken without waiting for a timeout.
    pub fn set_wake(&mut self, wake: std::os::unix::net::UnixStream) {
        match self {
            Transport::Plain(p) => p.wake = Some(wake),
            Transport::Udp(e) => e.set_wake(wake),
            Transport::Tun(t) => t.sockets_mut().set_wake(wake),
        }
    }

    /// Whether what goes to `to` goes over TCP.
    pub fn is_stream(&self, to: SocketAddr) -> bool {
        self.streams().is_some_and(|t| t.goes(to))
    }

    /// What goes to `to` goes over.
    pub fn protocol(&self, to: SocketAddr) -> gm::txn::Protocol {
        if self.is_stream(to) {
            gm::txn::Protocol::Tcp
        } else {
            gm::txn::Protocol::Udp
        }
    }

    /// Whether the transport retransmits what goes to `to` for us.
    pub fn reliability(&self, to: SocketAddr) -> gm::txn::Reliability {
        self.protocol(to).reliability()
    }

    /// What goes to `to` goes over TCP from now on (a UE registered over
    /// TCP); nothing without a TCP side.
    pub fn mark_stream(&mut self, to: SocketAddr) {
        if let Some(t) = self.streams_mut() {
            t.mark(to);
        }
    }

    /// Forgets a [`Transport::mark_stream`].
    pub fn unmark_stream(&mut self, to: SocketAddr) {
        if let Some(t) = self.streams_mut() {
            t.unmark(to);
        }
    }

    /// Whether a TCP connection with `peer` is open.
    pub fn connected(&self, peer: SocketAddr) -> bool {
        self.streams().is_some_and(|t| t.connected(peer))
    }

    /// The plain socket's address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        match self {
            Transport::Plain(p) => Ok(p.udp.local_addr()?),
            Transport::Udp(e) => Ok(e.local_addr()),
            Transport::Tun(t) => Ok(t.local_addr()),
        }
    }

    /// The local port a message that came on `flow` arrived on, for its
    /// responses to leave from ([`gm::txn::Transactions::on_request_at`]):
    /// our protected port on a protected flow, else the plain one; `None`
    /// with `--ipsec none` (one port).
    pub fn arrival_port(&self, flow: Flow, side: gm::reg::Side) -> Option<u16> {
        let plain = match self {
            Transport::Plain(_) => return None,
            Transport::Udp(e) => e.local_addr().port(),
            Transport::Tun(t) => t.local_addr().port(),
        };
        Some(flow.local_port(side).unwrap_or(plain))
    }

    /// Whether `port` is our plain SIP port (not port-c or port-s).
    pub fn is_plain_port(&self, port: u16) -> bool {
        match self {
            Transport::Plain(_) => true,
            Transport::Udp(e) => e.local_addr().port() == port,
            Transport::Tun(t) => t.local_addr().port() == port,
        }
    }

    /// Our port-c and port-s, with `--ipsec udp`.
    pub fn protected_ports(&self) -> Result<Option<(u16, u16)>> {
        match self {
            Transport::Plain(_) => Ok(None),
            Transport::Udp(e) => Ok(Some(e.protected_ports())),
            Transport::Tun(t) => Ok(Some(t.protected_ports())),
        }
    }

    /// With `--ipsec udp` or `tun`, binds a second protected client port
    /// (0: any free port) for SA handovers at re-registration and gives
    /// it (with `tun`, ipsecd routes it once a set's policies name it);
    /// `None` with `--ipsec none`.
    pub fn bind_alt_port(&mut self, port: u16) -> Result<Option<u16>> {
        match self {
            Transport::Udp(e) => Ok(Some(e.bind_alt(port)?)),
            Transport::Tun(t) => Ok(Some(t.bind_alt(port)?)),
            Transport::Plain(_) => Ok(None),
        }
    }

    /// The second protected client port, when bound.
    pub fn alt_port(&self) -> Option<u16> {
        match self {
            Transport::Udp(e) => e.alt_port(),
            Transport::Tun(t) => t.alt_port(),
            Transport::Plain(_) => None,
        }
    }

    /// Writes the packets to a pcap file (`--ipsec udp` only).
    pub fn capture(&mut self, path: &Path) -> Result<()> {
        match self {
            Transport::Plain(_) => bail!("--pcap needs --ipsec udp"),
            Transport::Udp(e) => e.capture(path),
            Transport::Tun(_) => bail!(
                "--pcap needs --ipsec udp: with tun, capture the interface or use ipsecd --pcap"
            ),
        }
    }

    /// Installs an SA set ([`EspUdp::install`]).
    pub fn install(&mut self, set: &SaSet) -> Result<()> {
        match self {
            Transport::Plain(_) => bail!("SAs to install with --ipsec none"),
            Transport::Udp(e) => e.install(set),
            Transport::Tun(t) => t.install(set),
        }
    }

    /// Updates an SA set's lifetime ([`EspUdp::update`]).
    pub fn update(&mut self, set: &SaSet) -> Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Udp(e) => e.update(set),
            Transport::Tun(t) => t.update(set),
        }
    }

    /// Removes an SA set ([`EspUdp::remove`]); what its SAs carried.
    pub fn remove(&mut self, set: &SaSet) -> Result<Vec<SaUsage>> {
        match self {
            Transport::Plain(_) => Ok(Vec::new()),
            Transport::Udp(e) => e.remove(set),
            Transport::Tun(t) => t.remove(set),
        }
    }

    /// Removes every SA set still installed, with what their SAs carried.
    pub fn close(&mut self) -> Result<Vec<(gm::reg::SaSet, Vec<SaUsage>)>> {
        match self {
            Transport::Plain(_) => Ok(Vec::new()),
            Transport::Udp(e) => e.close(),
            Transport::Tun(t) => t.close(),
        }
    }

    /// Datagrams dropped on protected ports.
    pub fn dropped(&self) -> u64 {
        match self {
            Transport::Plain(_) => 0,
            Transport::Udp(e) => e.dropped(),
            Transport::Tun(t) => t.dropped(),
        }
    }

    /// Sends one SIP message (SigComp: framed for a stream when
    /// [`Transport::is_stream`]), from local port `from_port` when given
    /// (a response: the port its request arrived on,
    /// [`gm::txn::Transmit::from_port`]), else from the port `to`'s route
    /// names; the SPI of the SA that carried it, if any.
    pub fn send(
        &mut self,
        bytes: &[u8],
        to: SocketAddr,
        from_port: Option<u16>,
    ) -> Result<Option<u32>> {
        match self {
            Transport::Plain(p) => {
                match &mut p.tcp {
                    Some(t) if t.goes(to) => {
                        let port = p.udp.local_addr()?.port();
                        t.send(bytes, to, port)?;
                    }
                    _ => {
                        p.udp
                            .send_to(bytes, to)
                            .with_context(|| format!("cannot send to {to}"))?;
                    }
                }
                Ok(None)
            }
            Transport::Udp(e) => e.send(bytes, to, from_port),
            Transport::Tun(t) => t.send(bytes, to, from_port),
        }
    }

    /// Sends a NACK (RFC 4077) for a SigComp message that came from `to`:
    /// framed as a record when it goes over TCP.
    pub fn send_nack(&mut self, nack: &[u8], to: SocketAddr) -> Result<()> {
        if self.is_stream(to) {
            let mut framed = Vec::with_capacity(nack.len() + 4);
            sigcomp::message::frame_stream(nack, &mut framed);
            self.send(&framed, to, None)?;
        } else {
            self.send(nack, to, None)?;
        }
        Ok(())
    }

    /// Receives one datagram, or one message from a TCP connection, into
    /// `buf` (from [`esp_udp::recv_buffer`]), waiting at most `wait`;
    /// `None` when none came (or the peer's port was closed: ICMP errors
    /// are not ours to act on, the transaction's timer is).
    pub fn recv(&mut self, buf: &mut [u8], wait: Duration) -> Result<Option<Recv>> {
        match self {
            Transport::Plain(p) => p.recv(buf, wait),
            Transport::Udp(e) => e.recv(buf, wait),
            Transport::Tun(t) => t.recv(buf, wait),
        }
    }
}

impl PlainSip {
    fn recv(&mut self, buf: &mut [u8], wait: Duration) -> Result<Option<Recv>> {
        let Some(tcp) = &mut self.tcp else {
            let mut received = self.queue.recv(&self.udp, buf);
            if received
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock)
            {
                let mut fds = vec![PollFd::new(self.udp.as_fd(), PollFlags::POLLIN)];
                if let Some(w) = &self.wake {
                    fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
                }
                let ms = wait.max(Duration::from_millis(1));
                let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
                match poll(&mut fds, timeout) {
                    Ok(0) | Err(nix::errno::Errno::EINTR) => return Ok(None),
                    Ok(_) => {}
                    Err(e) => return Err(e).context("cannot wait for datagrams"),
                }
                let woken = fds.get(1).is_some_and(|f| f.any().unwrap_or(false));
                if woken && !self.wake.as_ref().is_some_and(command::drain_wake) {
                    self.wake = None;
                }
                received = self.queue.recv(&self.udp, buf);
            }
            return udp_arrival(received);
        };
        // UDP first while it is busy, TCP's turn at least every
        // UDP_IN_A_ROW datagrams, once the datagrams already taken are
        // handed out (the wait below sees only the socket: it could block
        // with them queued).
        if (self.in_a_row < UDP_IN_A_ROW && !tcp.pending()) || self.queue.holds_some() {
            let received = self.queue.recv(&self.udp, buf);
            if !received
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock)
            {
                self.in_a_row += 1;
                return udp_arrival(received);
            }
        }
        self.in_a_row = 0;
        let mut fds = vec![self.udp.as_fd()];
        fds.extend(self.wake.as_ref().map(AsFd::as_fd));
        match tcp.wait(&fds, wait)? {
            stream::Ready::Udp(1) => {
                if !self.wake.as_ref().is_some_and(command::drain_wake) {
                    self.wake = None;
                }
                Ok(None)
            }
            stream::Ready::Udp(_) => udp_arrival(self.queue.recv(&self.udp, buf)),
            stream::Ready::Frame(f) => {
                let Some(room) = buf.get_mut(..f.bytes.len()) else {
                    return Ok(Some(Recv::Dropped {
                        from: f.from,
                        port: f.port,
                        reason: format!("a {}-byte message over TCP", f.bytes.len()),
                    }));
                };
                room.copy_from_slice(&f.bytes);
                Ok(Some(Recv::Message(Datagram {
                    range: 0..f.bytes.len(),
                    from: f.from,
                    protected_port: None,
                    spi: None,
                    stream: true,
                })))
            }
            stream::Ready::Closed { from, port, reason } => {
                Ok(Some(Recv::Dropped { from, port, reason }))
            }
            stream::Ready::Nothing => Ok(None),
        }
    }
}

/// What a UDP `recv_from` gave, as [`Transport::recv`] says it.
fn udp_arrival(received: std::io::Result<(usize, SocketAddr)>) -> Result<Option<Recv>> {
    match received {
        Ok((n, from)) => Ok(Some(Recv::Message(Datagram {
            range: 0..n,
            from,
            protected_port: None,
            spi: None,
            stream: false,
        }))),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).context("cannot receive"),
    }
}

/// One JSON event line per SA of `set` (`"event": "sa"`): `action` (add,
/// remove), direction, source and destination with their ports, SPI,
/// mode, algorithms; with `keys` the keys in hex too (for Wireshark's ESP
/// SA table; test and demo runs only). For a removed SA, `usage` gives
/// its `packets` and `bytes` and, with `keys`, its `setkey -D` text.
pub fn sa_events(
    set: &SaSet,
    action: &str,
    keys: bool,
    usage: &[SaUsage],
) -> Vec<crate::json::Json> {
    use crate::json::Json;
    let k = set.keys();
    set.sas()
        .iter()
        .map(|sa| {
            let mut j = Json::obj();
            j.set("event", "sa")
                .set("action", action)
                .set("direction", sa.direction.keyword())
                .set("src", SocketAddr::new(sa.src, sa.src_port).to_string())
                .set("dst", SocketAddr::new(sa.dst, sa.dst_port).to_string())
                .set("spi", Json::Int(i64::from(sa.spi)))
                .set("mode", set.mode().sec_agree_name())
                .set("ealg", k.ealg.sec_agree_name().unwrap_or("null"))
                .set("alg", k.alg.sec_agree_name().unwrap_or("null"));
            if keys {
                j.set("ekey", hex::encode(k.enc_key.as_bytes()))
                    .set("akey", hex::encode(k.auth_key.as_bytes()));
            }
            if let Some(u) = usage.iter().find(|u| u.spi == sa.spi) {
                j.set(
                    "packets",
                    Json::Int(i64::try_from(u.packets).unwrap_or(i64::MAX)),
                )
                .set(
                    "bytes",
                    Json::Int(i64::try_from(u.bytes).unwrap_or(i64::MAX)),
                );
                if keys {
                    j.set("setkey", u.setkey.trim_end());
                }
            }
            j
        })
        .collect()
}

/// Sends one message the transactions queued, compressed where an
/// association says so, and prints it on the ladder. A datagram that
/// cannot leave is reported (`name: error`) and left to the transaction's
/// timers, as a loss; one that never can ([`SaGone`]) ends its transaction
/// ([`gm::txn::Transactions::transport_error`]: the caller sees it
/// terminated without a final response).
pub fn send_transmit(
    name: &str,
    t: gm::txn::Transmit<SocketAddr>,
    layer: &mut gm::txn::Transactions<SocketAddr>,
    comp: &mut comp::SipComp,
    transport: &mut Transport,
    ladder: &Ladder,
) {
    let stream = transport.is_stream(t.to);
    // From the plain port (a response to a request that came in clear)
    // it does not go through the SAs, and gm::comp sends it as it is.
    let over_sas = !t.from_port.is_some_and(|p| transport.is_plain_port(p));
    let encoded = comp.encode(&t.bytes, t.to, stream, over_sas);
    let (wire, compressed) = match encoded {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            return;
        }
    };
    let len = wire.len();
    match transport.send(wire, t.to, t.from_port) {
        Ok(spi) => {
            comp.sent(t.bytes.len(), len, compressed);
            ladder.message_on_wire(
                Dir::Out,
                t.to,
                &t.bytes,
                Hop {
                    sigcomp: compressed.then_some(len),
                    retransmission: t.retransmission,
                    spi,
                    tcp: stream,
                },
            );
        }
        Err(e) => {
            eprintln!("{name}: {e:#}");
            if e.downcast_ref::<SaGone>().is_some() {
                layer.transport_error(t.txn);
            }
        }
    }
}

/// What the transport knows of destinations, for [`gm::network::Pcscf`]:
/// whether one is reached over TCP, and the UEs registered over TCP.
pub struct Links<'a>(pub &'a mut Transport);

impl gm::network::Links for Links<'_> {
    fn protocol(&self, to: SocketAddr) -> gm::txn::Protocol {
        self.0.protocol(to)
    }

    fn registered(&mut self, from: SocketAddr, target: SocketAddr) {
        // Registered over TCP: its requests go over TCP (over SAs: a
        // connection from our port-c to its port-s), a new connection if
        // one closes.
        if self.0.connected(from) {
            self.0.mark_stream(target);
        }
    }

    fn deregistered(&mut self, targets: &[SocketAddr]) {
        for t in targets {
            self.0.unmark_stream(*t);
        }
    }
}

/// The subscriber table of `pcscf`.
#[derive(Debug)]
pub struct Subscribers {
    /// The home domain (the digest realm).
    pub realm: String,
    /// IMPI and subscriber, in file order.
    pub subscribers: Vec<(String, Subscriber)>,
    /// The E.164 numbers (`msisdn`, digits without `+`) and the public
    /// identity each stands for ([`gm::sms::sip::number_owner`]).
    pub numbers: Vec<(String, String)>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTable {
    realm: String,
    #[serde(default)]
    subscriber: Vec<FileSubscriber>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSubscriber {
    impi: String,
    impus: Vec<String>,
    k: String,
    op: Option<String>,
    opc: Option<String>,
    amf: String,
    sqn: String,
    /// An E.164 number, `+digits`: the subscriber's SMS address, listed
    /// as a `tel:` URI in its P-Associated-URI.
    msisdn: Option<String>,
}

/// Reads the subscriber table from `path`; errors name the file.
pub fn load_subscribers(path: &Path) -> Result<Subscribers> {
    let text = crate::cli::read_to_string(path)?;
    parse_subscribers(&crate::cli::name(path), &text)
}

/// Parses a subscriber table (TOML) that errors call `name`.
pub fn parse_subscribers(name: &str, text: &str) -> Result<Subscribers> {
    let t: FileTable = toml::from_str(text).map_err(|e| toml_error(name, text, &e))?;
    let mut subscribers = Vec::new();
    let mut numbers = Vec::new();
    for s in t.subscriber {
        let at = |what: &str, e: String| anyhow!("{name}: subscriber {}: {what}: {e}", s.impi);
        let k = hex16(&s.k).map_err(|e| at("k", e))?;
        let op = match (&s.op, &s.opc) {
            (Some(op), None) => OpKey::Op(hex16(op).map_err(|e| at("op", e))?),
            (None, Some(opc)) => OpKey::Opc(hex16(opc).map_err(|e| at("opc", e))?),
            _ => bail!("{name}: subscriber {}: give one of op and opc", s.impi),
        };
        let amf = hex_n::<2>(&s.amf).map_err(|e| at("amf", e))?;
        let sqn = sqn(&s.sqn).map_err(|e| at("sqn", e))?;
        let mut impus = s.impus.clone();
        if let Some(m) = &s.msisdn {
            let digits = gm::sms::sip::e164(m)
                .filter(|_| m.starts_with('+'))
                .ok_or_else(|| at("msisdn", format!("{m:?} is not an E.164 number (+digits)")))?;
            let owner = gm::sms::sip::number_owner(&impus)
                .ok_or_else(|| at("msisdn", "no SIP URI in impus to stand for".to_owned()))?;
            impus.push(gm::sms::sip::tel_uri(&digits));
            numbers.push((digits, owner));
        }
        subscribers.push((
            s.impi.clone(),
            Subscriber {
                k,
                op,
                amf,
                sqn,
                impus,
            },
        ));
    }
    Ok(Subscribers {
        realm: t.realm,
        subscribers,
        numbers,
    })
}

/// A TOML error as one line, `name:line:col: message` (docs/cli.md).
fn toml_error(name: &str, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let msg = e.message();
    match e.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            anyhow!("{name}:{line}:{col}: {msg}")
        }
        None => anyhow!("{name}: {msg}"),
    }
}

fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// 16 bytes from 32 hex digits.
pub fn hex16(s: &str) -> Result<[u8; 16], String> {
    hex_n::<16>(s)
}

/// `N` bytes from `2N` hex digits (an optional `0x` ignored).
pub fn hex_n<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let v = hex::decode(s).map_err(|e| format!("not hex: {e}"))?;
    v.try_into()
        .map_err(|v: Vec<u8>| format!("{} bytes, expected {N}", v.len()))
}

/// A 48-bit SQN from 12 hex digits.
pub fn sqn(s: &str) -> Result<u64, String> {
    let b = hex_n::<6>(s)?;
    Ok(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
}

/// Random bytes for RAND, SPIs, tags and branches: from the OS
/// (`/dev/urandom`), or for reproducible test runs from a seed
/// (xorshift64, not for real use).
#[derive(Debug)]
pub enum OsRandom {
    /// `/dev/urandom`, read 512 bytes at a time (not a system call per
    /// RAND, tag or branch).
    Os(std::io::BufReader<std::fs::File>),
    /// A xorshift64 state.
    Seeded(u64),
}

impl OsRandom {
    /// Opens `/dev/urandom`.
    pub fn new() -> Result<OsRandom> {
        Ok(OsRandom::Os(std::io::BufReader::with_capacity(
            512,
            std::fs::File::open("/dev/urandom").context("cannot read /dev/urandom")?,
        )))
    }

    /// Reads the first 512 bytes now: the first bytes asked for (an ESP
    /// IV, in the first protected message) then cost no system call.
    pub fn prime(&mut self) {
        if let OsRandom::Os(f) = self {
            // As `fill`: /dev/urandom does not fail once open.
            let _ = f.fill_buf();
        }
    }

    /// A reproducible sequence from `seed` (0 is taken as 1).
    pub fn seeded(seed: u64) -> OsRandom {
        OsRandom::Seeded(seed.max(1))
    }
}

impl gm::reg::Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        match self {
            OsRandom::Os(f) => {
                // /dev/urandom does not fail once open.
                if f.read_exact(buf).is_err() {
                    eprintln!("warning: cannot read /dev/urandom");
                }
            }
            OsRandom::Seeded(x) => {
                for b in buf {
                    *x ^= *x << 13;
                    *x ^= *x >> 7;
                    *x ^= *x << 17;
                    *b = (*x >> 24) as u8;
                }
            }
        }
    }
}

/// `n` random bytes as hex (tags, branches, Call-IDs).
pub fn token(rng: &mut OsRandom, n: usize) -> String {
    let mut b = vec![0u8; n];
    gm::reg::Random::fill(rng, &mut b);
    hex::encode(b)
}

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Received.
    In,
    /// Sent.
    Out,
}

/// The ladder: one line per message on stdout (time of day UTC, direction,
/// peer, method or status, size), and with `verbose` the whole message.
#[derive(Default)]
pub struct Ladder {
    /// Print whole messages too.
    pub verbose: bool,
    /// Print no ladder line at all (load runs: each line costs a parse
    /// and a write); events are still printed. `verbose` wins.
    pub quiet: bool,
    /// Event lines held by [`Ladder::hold`], made when printed.
    held: std::cell::RefCell<Vec<HeldLines>>,
}

/// Event lines (each ending in a newline) made when they are printed.
type HeldLines = Box<dyn FnOnce() -> String>;

impl std::fmt::Debug for Ladder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ladder")
            .field("verbose", &self.verbose)
            .field("quiet", &self.quiet)
            .field("held", &self.held.borrow().len())
            .finish()
    }
}

/// How a message on the ladder went (or came).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hop {
    /// As SigComp of this many bytes.
    pub sigcomp: Option<usize>,
    /// A retransmission.
    pub retransmission: bool,
    /// The SA that carried it.
    pub spi: Option<u32>,
    /// Over TCP.
    pub tcp: bool,
}

impl Ladder {
    /// A ladder printing whole messages with `verbose`, no line with
    /// `quiet` (unless `verbose`).
    pub fn new(verbose: bool, quiet: bool) -> Ladder {
        Ladder {
            verbose,
            quiet,
            held: std::cell::RefCell::default(),
        }
    }

    /// Holds event lines (`lines` makes them, each ending in a newline)
    /// about what the next message to leave needs, such as the SAs it goes
    /// over: [`send_transmit`] makes and prints them once that message has
    /// left, before its ladder line, so the reader sees them in order and
    /// the message waits for neither the formatting nor the write
    /// (together ~25 µs for four `sa` lines in a UE between its 401 and
    /// the protected REGISTER). The caller's [`Ladder::release`] prints
    /// them at the latest, whether or not anything left.
    pub fn hold(&self, lines: impl FnOnce() -> String + 'static) {
        self.held.borrow_mut().push(Box::new(lines));
    }

    /// Makes and prints the held lines, if any, in one write.
    pub fn release(&self) {
        let lines = self.take_held();
        if !lines.is_empty() {
            print!("{lines}");
        }
    }

    /// Makes the held lines, in the order they were held, and forgets them.
    fn take_held(&self) -> String {
        let held = std::mem::take(&mut *self.held.borrow_mut());
        held.into_iter().map(|f| f()).collect()
    }

    /// Prints a message sent or received, as it went: with SigComp the
    /// line shows both sizes, `412 B (SigComp, 980 B SIP)`; then the SA
    /// (`[ESP spi 0x...]`), `TCP`, `(retransmission)`. Held event lines
    /// ([`Ladder::hold`]) come first.
    pub fn message_on_wire(&self, dir: Dir, peer: SocketAddr, bytes: &[u8], hop: Hop) {
        self.line(dir, peer, bytes, hop, || {
            Message::parse(bytes).ok().map(|m| summary(&m))
        });
    }

    /// [`Ladder::message_on_wire`] for a received message the caller has
    /// parsed already (`None`: it is not SIP) for the role that reads it
    /// next: one parse of each message received, not two.
    pub fn received(&self, peer: SocketAddr, bytes: &[u8], parsed: Option<&Message<'_>>, hop: Hop) {
        self.line(Dir::In, peer, bytes, hop, || parsed.map(summary));
    }

    /// The line of a message; `what` gives its summary when it is printed
    /// (`None`: not SIP).
    fn line(
        &self,
        dir: Dir,
        peer: SocketAddr,
        bytes: &[u8],
        hop: Hop,
        what: impl FnOnce() -> Option<String>,
    ) {
        self.release();
        let Hop {
            sigcomp,
            retransmission,
            spi,
            tcp,
        } = hop;
        if self.quiet && !self.verbose {
            return;
        }
        let what = what().unwrap_or_else(|| "(not SIP)".to_owned());
        let arrow = match dir {
            Dir::In => "<-",
            Dir::Out => "->",
        };
        let re = if retransmission {
            " (retransmission)"
        } else {
            ""
        };
        let sa = spi.map_or(String::new(), |s| format!(" [ESP spi 0x{s:08x}]"));
        let size = match sigcomp {
            Some(n) => format!("{n} B (SigComp, {} B SIP)", bytes.len()),
            None => format!("{} B", bytes.len()),
        };
        let tcp = if tcp { " TCP" } else { "" };
        println!("{} {arrow} {peer} {what} {size}{sa}{tcp}{re}", clock());
        if self.verbose {
            println!("{}", String::from_utf8_lossy(bytes).trim_end());
            println!();
        }
    }
}

/// `METHOD` or `STATUS Reason (CSeq method)`.
pub fn summary(m: &Message<'_>) -> String {
    match (m.method(), m.status()) {
        (Some(method), _) => method.as_str().to_owned(),
        (None, Some(s)) => {
            let cseq = m
                .cseq()
                .map(|c| format!(" ({})", c.method.as_str()))
                .unwrap_or_default();
            format!("{s} {}{cseq}", m.reason().unwrap_or(""))
        }
        _ => "?".to_owned(),
    }
}

/// The time of day, UTC, to the millisecond.
pub fn clock() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ms = now.as_millis() % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// One JSON object on one line (event lines scripts and tests read).
pub fn json_line(j: &crate::json::Json) -> String {
    let mut s = String::with_capacity(160);
    j.write_line(&mut s);
    s
}

/// Set when SIGTERM, SIGINT or SIGHUP arrived; the main loop checks it at
/// least every [`Stop::POLL`].
#[derive(Clone, Debug)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// How long the main loop may wait before looking at the flag.
    pub const POLL: Duration = Duration::from_millis(100);

    /// Blocks the signals in this thread and watches them from another.
    pub fn install() -> Result<Stop> {
        let set = crate::sys::block_signals().context("cannot block signals")?;
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        std::thread::spawn(move || {
            if crate::sys::wait_signal(&set).is_ok() {
                f.store(true, Ordering::SeqCst);
            }
        });
        Ok(Stop(flag))
    }

    /// A flag no signal sets (to finish work after a signal came).
    pub fn never() -> Stop {
        Stop(Arc::new(AtomicBool::new(false)))
    }

    /// Whether a signal came.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Reads a duration written `50ms`, `2s` or a number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.strip_suffix("ms") {
        Some(n) => (n, 1),
        None => match s.strip_suffix('s') {
            Some(n) => (n, 1000),
            None => (s, 1),
        },
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 50ms, 2s)"))?;
    if n == 0 {
        return Err("a timer must be longer than 0".to_owned());
    }
    Ok(Duration::from_millis(n * unit))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Held lines are made only when taken, in the order held, once.
    #[test]
    fn ladder_makes_held_lines_when_released_in_order() {
        let ladder = Ladder::new(false, true);
        let made = std::rc::Rc::new(std::cell::Cell::new(0));
        for line in ["first\n", "second\n"] {
            let made = made.clone();
            ladder.hold(move || {
                made.set(made.get() + 1);
                line.to_owned()
            });
        }
        assert_eq!(made.get(), 0);
        assert_eq!(ladder.take_held(), "first\nsecond\n");
        assert_eq!(made.get(), 2);
        assert_eq!(ladder.take_held(), "");
    }

    /// More datagrams than one `recvmmsg` takes, from two senders: each
    /// comes out once, whole, in order, with its sender, first one by one,
    /// then in batches once the socket is busy; then WouldBlock. A
    /// datagram now and then never makes the batch.
    #[test]
    fn udp_queue_hands_out_every_datagram_with_its_sender() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        let to = udp.local_addr().unwrap();
        let senders = [
            UdpSocket::bind("127.0.0.1:0").unwrap(),
            UdpSocket::bind("127.0.0.1:0").unwrap(),
        ];
        let n = crate::sys::BATCH + 9;
        let mut q = UdpQueue::default();
        let mut buf = vec![0u8; 70000];
        // A datagram now and then: no batch.
        for _ in 0..3 {
            senders[0].send_to(b"now and then", to).unwrap();
            assert_eq!(q.recv(&udp, &mut buf).unwrap().0, 12);
            let e = q.recv(&udp, &mut buf).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        }
        assert!(q.batch.is_none());
        for i in 0..n {
            let msg = format!("datagram {i} {}", "x".repeat(i * 30));
            senders[i % 2].send_to(msg.as_bytes(), to).unwrap();
        }
        for i in 0..n {
            let (len, from) = q.recv(&udp, &mut buf).unwrap();
            let want = format!("datagram {i} {}", "x".repeat(i * 30));
            assert_eq!(&buf[..len], want.as_bytes());
            assert_eq!(from, senders[i % 2].local_addr().unwrap());
        }
        // Busy after BUSY in a row: the rest came in batches.
        assert!(q.batch.is_some());
        let e = q.recv(&udp, &mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    }

    #[test]
    fn modes() {
        assert_eq!(Ipsec::parse("none"), Ok(Ipsec::None));
        assert_eq!(Ipsec::parse("udp"), Ok(Ipsec::Udp));
        assert_eq!(Ipsec::parse("tun"), Ok(Ipsec::Tun));
        assert!(Ipsec::parse("esp").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0ms").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn bad_tables_name_the_file_and_line() {
        let e = parse_subscribers("s.toml", "realm = \"x\"\n[[subscriber]]\nimpi = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:3:"), "{e}");
        let e = parse_subscribers(
            "s.toml",
            "realm = \"x\"\n[[subscriber]]\nimpi = \"a\"\nimpus = []\nk = \"00\"\nop = \"00\"\namf = \"0000\"\nsqn = \"000000000000\"\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "s.toml: subscriber a: k: 1 bytes, expected 16");
    }

    #[test]
    fn an_msisdn_is_a_tel_uri_and_a_number() {
        let table = |msisdn: &str| {
            format!(
                "realm = \"x\"\n[[subscriber]]\nimpi = \"b@x\"\nimpus = [\"sip:b@x\"]\n\
                 k = \"{k}\"\nop = \"{k}\"\namf = \"0000\"\nsqn = \"000000000000\"\n\
                 msisdn = \"{msisdn}\"\n",
                k = "00".repeat(16)
            )
        };
        let t = parse_subscribers("s.toml", &table("+15555550102")).unwrap();
        assert_eq!(t.subscribers[0].1.impus, ["sip:b@x", "tel:+15555550102"]);
        assert_eq!(
            t.numbers,
            [("15555550102".to_owned(), "sip:b@x".to_owned())]
        );
        let e = parse_subscribers("s.toml", &table("5550102"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "s.toml: subscriber b@x: msisdn: \"5550102\" is not an E.164 number (+digits)"
        );
    }

    #[test]
    fn one_line_json() {
        let mut j = crate::json::Json::obj();
        j.set("event", "message").set("text", "a\nb");
        assert_eq!(json_line(&j), r#"{ "event": "message", "text": "a\nb" }"#);
    }
}
