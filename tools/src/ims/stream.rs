//! SIP over TCP for `imsua` and `pcscf` (RFC 3261 §18): listeners, the
//! connections, and the framing that cuts their byte streams into
//! messages, beside the UDP sockets of a [`super::Transport`].
//!
//! - **Framing.** The first byte a connection brings decides what it
//!   carries (RFC 5049 §5): SigComp (0xF8 and above), cut into records at
//!   its 0xFFFF delimiters (RFC 3320 §4.2.2, [`sigcomp::StreamDeframer`]),
//!   or SIP, cut by Content-Length ([`gm::sip::Message::parse_stream`]);
//!   CRLF keep-alives between SIP messages are skipped (RFC 5626 §3.5.1).
//!   A stream that cannot be cut (no Content-Length, a broken record, a
//!   message over [`MAX_MESSAGE`] bytes) is closed and reported.
//! - **Connections** are known by the peer's address and port. A response
//!   goes back on the connection its request came on (RFC 3261
//!   §18.2.2) because it goes to that address. A new connection to a peer
//!   leaves from the port it is told (our SIP port), with `SO_REUSEPORT`
//!   beside our listener there, so the peer sees our requests come from
//!   the address our Via and Contact name and its requests to our Contact
//!   find the same connection (RFC 5923's reuse without its alias
//!   parameter: what Kamailio and SIPp do with a client's port).
//! - **Which destinations go over TCP**: those with a connection open,
//!   those [`Streams::mark`]ed (a UE registered over TCP), and every one
//!   when the process sends over TCP ([`Streams::everything`]).
//! - Writes are queued per connection and flushed as the socket takes
//!   them; a connection whose queue passes [`MAX_QUEUE`] bytes, or that
//!   fails, is closed and reported. Nothing blocks: connect is
//!   non-blocking too.
//! - At most [`MAX_CONNECTIONS`] are open: one more is closed as soon as
//!   it is accepted, and reported; out of descriptors, the listeners rest
//!   100 ms rather than wake every wait. One that carries nothing either
//!   way for [`IDLE_TIMEOUT`] (120 s) is closed, in silence: either end
//!   connects again for its next message.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{Domain, Protocol, Socket, Type};

/// The longest SIP message or SigComp record a connection may bring.
pub const MAX_MESSAGE: usize = 65_535;

/// The most bytes queued for one connection before it is given up.
pub const MAX_QUEUE: usize = 4 << 20;

/// The most connections open at once (each is a descriptor): one more
/// accepted is closed at once and reported, so a peer that opens
/// connections without end cannot take every descriptor.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long the listeners rest when accepting fails (out of descriptors):
/// the waiting connection would wake every wait at once otherwise.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// A connection that carried nothing either way for this long is closed
/// (as Kamailio's default `tcp_connection_lifetime`): a peer that has
/// more to say connects again (both ends reconnect on their next
/// message), and a thousand silent connections cannot hold the table
/// ([`MAX_CONNECTIONS`]) for good.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How often the table is looked through for idle connections.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What arrived on a connection: one whole SIP message or one SigComp
/// message (its record, unframed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The peer.
    pub from: SocketAddr,
    /// Our port the connection is on.
    pub port: u16,
}

/// What [`Streams::wait`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// The UDP socket at this index of those given is readable.
    Udp(usize),
    /// A message from a connection.
    Frame(Frame),
    /// A connection closed for a reason worth saying (a framing error, a
    /// failed write): what was queued for it is lost, as a datagram would
    /// be, and the transactions' timers take over.
    Closed {
        /// The peer.
        from: SocketAddr,
        /// Our port.
        port: u16,
        /// Why, one line.
        reason: String,
    },
    /// Nothing within the wait.
    Nothing,
}

/// What a connection's incoming bytes are.
#[derive(Debug)]
enum Rx {
    /// No byte yet.
    New,
    Sip,
    SigComp(sigcomp::StreamDeframer),
}

#[derive(Debug)]
struct Conn {
    sock: TcpStream,
    port: u16,
    inbound: Vec<u8>,
    rx: Rx,
    out: Vec<u8>,
    connecting: bool,
    /// Whether what we write is SigComp (decided by the first write).
    tx: Option<bool>,
    /// When it last carried a byte either way (or opened).
    last: Instant,
}

/// The TCP side of a transport. See the [module documentation](self).
#[derive(Debug)]
pub struct Streams {
    ip: IpAddr,
    listeners: Vec<(TcpListener, u16)>,
    conns: HashMap<SocketAddr, Conn>,
    marked: HashSet<SocketAddr>,
    everything: bool,
    ready: VecDeque<Ready>,
    read_buf: Vec<u8>,
    max_conns: usize,
    /// Listeners are not watched until then ([`ACCEPT_PAUSE`]).
    accept_paused: Option<Instant>,
    /// [`IDLE_TIMEOUT`], or another for tests.
    idle: Duration,
    /// When the table is next looked through for idle connections.
    idle_check: Instant,
}

fn reusable(addr: SocketAddr) -> Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .context("cannot open a TCP socket")?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

impl Streams {
    /// No listener yet, on address `ip`.
    pub fn new(ip: IpAddr) -> Streams {
        Streams {
            ip,
            listeners: Vec::new(),
            conns: HashMap::new(),
            marked: HashSet::new(),
            everything: false,
            ready: VecDeque::new(),
            read_buf: vec![0; 64 * 1024],
            max_conns: MAX_CONNECTIONS,
            accept_paused: None,
            idle: IDLE_TIMEOUT,
            idle_check: Instant::now() + IDLE_CHECK,
        }
    }

    /// Another idle time than [`IDLE_TIMEOUT`] (checked every second at
    /// most, and at least every `idle`).
    pub fn with_idle_timeout(mut self, idle: Duration) -> Streams {
        self.idle = idle;
        self.idle_check = Instant::now() + idle.min(IDLE_CHECK);
        self
    }

    /// Another cap than [`MAX_CONNECTIONS`].
    pub fn with_max_connections(mut self, n: usize) -> Streams {
        self.max_conns = n;
        self
    }

    /// Listens on `port` of our address.
    pub fn listen(&mut self, port: u16) -> Result<()> {
        let addr = SocketAddr::new(self.ip, port);
        let s = reusable(addr)?;
        s.bind(&addr.into())
            .with_context(|| format!("cannot listen on TCP {addr}"))?;
        s.listen(1024)
            .with_context(|| format!("cannot listen on TCP {addr}"))?;
        self.listeners.push((s.into(), port));
        Ok(())
    }

    /// Every destination goes over TCP from now on.
    pub fn everything(&mut self) {
        self.everything = true;
    }

    /// `to` goes over TCP from now on (a UE registered over TCP: its
    /// other ports too).
    pub fn mark(&mut self, to: SocketAddr) {
        self.marked.insert(to);
    }

    /// Forgets a [`Streams::mark`].
    pub fn unmark(&mut self, to: SocketAddr) {
        self.marked.remove(&to);
    }

    /// Whether what goes to `to` goes over TCP.
    pub fn goes(&self, to: SocketAddr) -> bool {
        self.everything || self.conns.contains_key(&to) || self.marked.contains(&to)
    }

    /// Whether a connection with `peer` is open.
    pub fn connected(&self, peer: SocketAddr) -> bool {
        self.conns.contains_key(&peer)
    }

    /// Connections open.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Whether a message waits to be taken without waiting.
    pub fn pending(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Queues `bytes` for `to` on its connection, opening one from our
    /// `port` if there is none. SIP and SigComp do not mix on one
    /// connection (RFC 5049 §5): the first write decides.
    pub fn send(&mut self, bytes: &[u8], to: SocketAddr, port: u16) -> Result<()> {
        if !self.conns.contains_key(&to) {
            let conn = self.connect(to, port)?;
            self.conns.insert(to, conn);
        }
        let Some(mut c) = self.conns.remove(&to) else {
            bail!("no connection to {to}");
        };
        let sigcomp = sigcomp::message::is_sigcomp(bytes);
        match c.tx {
            Some(was) if was != sigcomp => {
                self.conns.insert(to, c);
                bail!(
                    "cannot send {} on the TCP connection to {to}: it carries {} (RFC 5049 §5)",
                    if sigcomp { "SigComp" } else { "plain SIP" },
                    if was { "SigComp" } else { "plain SIP" }
                )
            }
            _ => c.tx = Some(sigcomp),
        }
        if c.out.len() + bytes.len() > MAX_QUEUE {
            bail!("the TCP connection to {to} takes nothing: closed with {MAX_QUEUE} bytes queued");
        }
        c.out.extend_from_slice(bytes);
        c.last = Instant::now();
        if !c.connecting {
            flush(&mut c).with_context(|| format!("cannot send to {to} over TCP"))?;
        }
        self.conns.insert(to, c);
        Ok(())
    }

    fn connect(&self, to: SocketAddr, port: u16) -> Result<Conn> {
        let local = SocketAddr::new(self.ip, port);
        let s = reusable(local)?;
        s.bind(&local.into())
            .with_context(|| format!("cannot connect to {to} from TCP {local}"))?;
        let _ = s.set_tcp_nodelay(true);
        let connecting = match s.connect(&to.into()) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => true,
            Err(e) => return Err(e).with_context(|| format!("cannot connect to {to} over TCP")),
        };
        Ok(Conn {
            sock: s.into(),
            port,
            inbound: Vec::new(),
            rx: Rx::New,
            out: Vec::new(),
            connecting,
            tx: None,
            last: Instant::now(),
        })
    }

    /// Closes the connection with `peer`, if one is open.
    pub fn close_peer(&mut self, peer: SocketAddr) {
        self.conns.remove(&peer);
        self.ready.retain(|r| match r {
            Ready::Frame(f) => f.from != peer,
            _ => true,
        });
    }

    /// Closes every connection.
    pub fn close(&mut self) {
        self.conns.clear();
        self.ready.clear();
    }

    /// Waits at most `wait` for one of `udp` to be readable or a message
    /// on a connection, accepting connections and flushing queued writes
    /// meanwhile. A message already cut from a stream returns at once.
    pub fn wait(&mut self, udp: &[BorrowedFd<'_>], wait: Duration) -> Result<Ready> {
        if let Some(r) = self.ready.pop_front() {
            return Ok(r);
        }
        let now = Instant::now();
        if self.accept_paused.is_some_and(|t| now >= t) {
            self.accept_paused = None;
        }
        if now >= self.idle_check {
            self.close_idle(now);
        }
        // While paused, the listeners are watched for nothing.
        let listen_flags = if self.accept_paused.is_some() {
            PollFlags::empty()
        } else {
            PollFlags::POLLIN
        };
        let (udp_ready, listeners_ready, conns_ready) = {
            let mut fds: Vec<PollFd<'_>> =
                Vec::with_capacity(udp.len() + self.listeners.len() + self.conns.len());
            fds.extend(udp.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
            fds.extend(
                self.listeners
                    .iter()
                    .map(|(l, _)| PollFd::new(l.as_fd(), listen_flags)),
            );
            let peers: Vec<SocketAddr> = self.conns.keys().copied().collect();
            for p in &peers {
                if let Some(c) = self.conns.get(p) {
                    let mut flags = PollFlags::POLLIN;
                    if c.connecting || !c.out.is_empty() {
                        flags |= PollFlags::POLLOUT;
                    }
                    fds.push(PollFd::new(c.sock.as_fd(), flags));
                }
            }
            let ms = wait.max(Duration::from_millis(1));
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e).context("cannot wait for messages"),
            }
            let revents: Vec<PollFlags> = fds
                .iter()
                .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                .collect();
            let (u, rest) = revents.split_at(udp.len().min(revents.len()));
            let (l, c) = rest.split_at(self.listeners.len().min(rest.len()));
            (
                u.iter().position(|f| !f.is_empty()),
                l.to_vec(),
                peers.into_iter().zip(c.to_vec()).collect::<Vec<_>>(),
            )
        };
        for (i, f) in listeners_ready.iter().enumerate() {
            if !f.is_empty() {
                self.accept(i);
            }
        }
        for (peer, f) in conns_ready {
            if !f.is_empty() {
                self.service(peer, f);
            }
        }
        if let Some(i) = udp_ready {
            return Ok(Ready::Udp(i));
        }
        Ok(self.ready.pop_front().unwrap_or(Ready::Nothing))
    }

    fn accept(&mut self, i: usize) {
        let Some((listener, port)) = self.listeners.get(i) else {
            return;
        };
        let port = *port;
        loop {
            match listener.accept() {
                Ok((sock, peer)) => {
                    if self.conns.len() >= self.max_conns && !self.conns.contains_key(&peer) {
                        drop(sock);
                        self.ready.push_back(Ready::Closed {
                            from: peer,
                            port,
                            reason: format!(
                                "{} TCP connections open already: this one closed at once",
                                self.conns.len()
                            ),
                        });
                        continue;
                    }
                    if sock.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    // A peer that reconnects from the same port replaces
                    // its old connection.
                    self.conns.insert(
                        peer,
                        Conn {
                            sock,
                            port,
                            inbound: Vec::new(),
                            rx: Rx::New,
                            out: Vec::new(),
                            connecting: false,
                            tx: None,
                            last: Instant::now(),
                        },
                    );
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A connection reset before it was taken: the next one.
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => {}
                // Out of descriptors (or memory): the listeners rest a
                // moment, and the connection waits in the backlog.
                Err(_) => {
                    self.accept_paused = Some(Instant::now() + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// Reads and writes what `peer`'s connection is ready for.
    fn service(&mut self, peer: SocketAddr, flags: PollFlags) {
        let Some(mut c) = self.conns.remove(&peer) else {
            return;
        };
        let port = c.port;
        if c.connecting && flags.intersects(PollFlags::POLLOUT | PollFlags::POLLERR) {
            match c.sock.take_error() {
                Ok(None) => c.connecting = false,
                Ok(Some(e)) | Err(e) => {
                    return self.closed(peer, port, format!("cannot connect over TCP: {e}"));
                }
            }
        }
        if !c.connecting && !c.out.is_empty() {
            let queued = c.out.len();
            if let Err(e) = flush(&mut c) {
                return self.closed(peer, port, format!("{e:#}"));
            }
            if c.out.len() < queued {
                c.last = Instant::now();
            }
        }
        let readable = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        if c.connecting || !flags.intersects(readable) {
            self.conns.insert(peer, c);
            return;
        }
        let mut eof = false;
        loop {
            match c.sock.read(&mut self.read_buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    c.last = Instant::now();
                    c.inbound
                        .extend_from_slice(self.read_buf.get(..n).unwrap_or_default());
                    if c.inbound.len() > MAX_QUEUE {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    // A reset: whatever came before it still counts.
                    eof = true;
                    break;
                }
            }
        }
        let ready = &mut self.ready;
        let cut = cut(&mut c.rx, &mut c.inbound, |bytes| {
            ready.push_back(Ready::Frame(Frame {
                bytes,
                from: peer,
                port,
            }));
        });
        if let Err(reason) = cut {
            self.closed(peer, port, reason);
        } else if eof {
            // The peer closed: a partial message with it is lost, said
            // only when there was one.
            if !c.inbound.is_empty() {
                self.closed(
                    peer,
                    port,
                    "the TCP connection closed inside a message".to_owned(),
                );
            }
        } else {
            self.conns.insert(peer, c);
        }
    }

    /// Closes the connections idle for [`Streams::with_idle_timeout`]: in
    /// silence, unless a message was cut short or writes were queued
    /// (then said, as lost).
    fn close_idle(&mut self, now: Instant) {
        self.idle_check = now + self.idle.min(IDLE_CHECK);
        let idle = self.idle;
        let gone: Vec<SocketAddr> = self
            .conns
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last) >= idle)
            .map(|(p, _)| *p)
            .collect();
        for peer in gone {
            let Some(c) = self.conns.remove(&peer) else {
                continue;
            };
            if !c.inbound.is_empty() || !c.out.is_empty() {
                self.closed(
                    peer,
                    c.port,
                    format!(
                        "the TCP connection closed after {} s idle, with {} bytes of a message in and {} queued out",
                        idle.as_secs(),
                        c.inbound.len(),
                        c.out.len()
                    ),
                );
            }
        }
    }

    /// Reports a connection gone (it is out of the table already).
    fn closed(&mut self, peer: SocketAddr, port: u16, reason: String) {
        self.ready.push_back(Ready::Closed {
            from: peer,
            port,
            reason,
        });
    }
}
/// Writes what the socket takes of `c.out`.
fn flush(c: &mut Conn) -> Result<()> {
    while !c.out.is_empty() {
        match c.sock.write(&c.out) {
            Ok(0) => bail!("the TCP connection takes no more"),
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("the TCP connection failed"),
        }
    }
    Ok(())
}

/// Cuts the whole messages at the start of `inbound` and gives each to
/// `each`, leaving the rest; the reason when the stream cannot be cut.
fn cut(rx: &mut Rx, inbound: &mut Vec<u8>, mut each: impl FnMut(Vec<u8>)) -> Result<(), String> {
    let mut used = 0;
    loop {
        let rest = inbound.get(used..).unwrap_or_default();
        if let Rx::New = rx {
            // CRLF keep-alives may come before the first message.
            let skip = rest
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            used += skip;
            let Some(&first) = inbound.get(used) else {
                break;
            };
            *rx = if sigcomp::message::is_sigcomp(&[first]) {
                Rx::SigComp(sigcomp::StreamDeframer::new(MAX_MESSAGE))
            } else {
                Rx::Sip
            };
            continue;
        }
        if rest.is_empty() {
            break;
        }
        match rx {
            Rx::New => break,
            Rx::Sip => {
                let skip = rest
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count();
                let body = rest.get(skip..).unwrap_or_default();
                if body.is_empty() {
                    used += skip;
                    break;
                }
                match gm::sip::Message::parse_stream(body, MAX_MESSAGE) {
                    Ok(Some((_, n))) => {
                        each(body.get(..n).unwrap_or_default().to_vec());
                        used += skip + n;
                    }
                    Ok(None) => {
                        used += skip;
                        break;
                    }
                    Err(e) => return Err(format!("SIP over TCP that cannot be cut: {e}")),
                }
            }
            Rx::SigComp(de) => match de.push(rest) {
                Ok((n, record)) => {
                    if let Some(r) = record {
                        each(r.to_vec());
                    }
                    used += n;
                    if n == 0 {
                        break;
                    }
                }
                Err(e) => return Err(format!("SigComp over TCP that cannot be cut: {e}")),
            },
        }
    }
    inbound.drain(..used.min(inbound.len()));
    if inbound.len() > MAX_MESSAGE + 4096 {
        return Err(format!("a message over {MAX_MESSAGE} bytes on TCP"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@example.org SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n\
Max-Forwards: 70\r\nFrom: <sip:b@example.org>;tag=1\r\nTo: <sip:a@example.org>\r\nCall-ID: c\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody";

    fn cut_all(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Result<(), String>) {
        let mut rx = Rx::New;
        let mut inbound = Vec::new();
        let mut got = Vec::new();
        for c in chunks {
            inbound.extend_from_slice(c);
            let r = cut(&mut rx, &mut inbound, |m| got.push(m));
            if r.is_err() {
                return (got, r);
            }
        }
        (got, Ok(()))
    }

    #[test]
    fn sip_is_cut_by_content_length_whatever_the_segments() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(MSG);
        for at in 0..stream.len() {
            let (a, b) = stream.split_at(at);
            let (got, r) = cut_all(&[a, b]);
            assert_eq!(r, Ok(()));
            assert_eq!(got, vec![MSG.to_vec(), MSG.to_vec()], "split at {at}");
        }
    }

    #[test]
    fn sip_without_content_length_closes_the_stream() {
        let text = String::from_utf8(MSG.to_vec()).unwrap();
        let without = text.replace("Content-Length: 4\r\n", "");
        let (got, r) = cut_all(&[without.as_bytes()]);
        assert!(got.is_empty());
        assert!(r.unwrap_err().contains("cannot be cut"));
    }

    #[test]
    fn sigcomp_records_are_cut_at_their_delimiters() {
        // Two SigComp messages framed as RFC 3320 §4.2.2 says.
        let a = [0xf8u8, 0x00, 0x01, 0xff, 0x02];
        let b = [0xf9u8, 0x03];
        let mut stream = Vec::new();
        sigcomp::message::frame_stream(&a, &mut stream);
        sigcomp::message::frame_stream(&b, &mut stream);
        for at in 0..stream.len() {
            let (x, y) = stream.split_at(at);
            let (got, r) = cut_all(&[x, y]);
            assert_eq!(r, Ok(()));
            assert_eq!(got, vec![a.to_vec(), b.to_vec()], "split at {at}");
        }
    }

    #[test]
    fn a_message_too_long_closes_the_stream() {
        let head = b"MESSAGE sip:a@example.org SIP/2.0\r\nContent-Length: 999999\r\n\r\n";
        let mut stream = head.to_vec();
        stream.resize(MAX_MESSAGE + 10_000, b'x');
        let (_, r) = cut_all(&[&stream]);
        assert!(r.is_err());
    }

    #[test]
    fn connections_past_the_cap_are_closed_and_said() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let probe = TcpListener::bind((ip, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let mut server = Streams::new(ip).with_max_connections(2);
        server.listen(port).unwrap();
        let clients: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect((ip, port)).unwrap())
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let closed = loop {
            assert!(std::time::Instant::now() < deadline, "nothing said");
            if let Ready::Closed { from, reason, .. } =
                server.wait(&[], Duration::from_millis(10)).unwrap()
            {
                break (from, reason);
            }
        };
        assert_eq!(server.len(), 2);
        assert!(closed.1.contains("closed at once"), "{}", closed.1);
        let third = clients
            .iter()
            .find(|c| c.local_addr().unwrap() == closed.0)
            .expect("one of ours");
        third
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 8];
        // Closed by the server: end of stream (or a reset).
        assert!(matches!((&*third).read(&mut buf), Ok(0) | Err(_)));
    }

    #[test]
    fn idle_connections_close_in_silence_and_the_peer_connects_again() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let free = || {
            let probe = TcpListener::bind((ip, 0)).unwrap();
            probe.local_addr().unwrap().port()
        };
        let (port, client_port) = (free(), free());
        let mut server = Streams::new(ip).with_idle_timeout(Duration::from_millis(200));
        server.listen(port).unwrap();
        let mut client = Streams::new(ip);
        client.everything();
        client.listen(client_port).unwrap();
        let server_addr = SocketAddr::new(ip, port);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let exchange = |client: &mut Streams, server: &mut Streams| {
            client.send(MSG, server_addr, client_port).unwrap();
            loop {
                assert!(std::time::Instant::now() < deadline, "nothing came");
                let _ = client.wait(&[], Duration::from_millis(10)).unwrap();
                if let Ready::Frame(f) = server.wait(&[], Duration::from_millis(10)).unwrap() {
                    break f;
                }
            }
        };
        assert_eq!(exchange(&mut client, &mut server).bytes, MSG);
        assert_eq!((server.len(), client.len()), (1, 1));
        // Nothing more either way: the server closes it, saying nothing,
        // and the client sees the end of the stream.
        while server.len() + client.len() > 0 {
            assert!(std::time::Instant::now() < deadline, "still open");
            for s in [&mut server, &mut client] {
                let r = s.wait(&[], Duration::from_millis(10)).unwrap();
                assert!(!matches!(r, Ready::Closed { .. }), "{r:?}");
            }
        }
        // The next message opens a new connection.
        assert_eq!(exchange(&mut client, &mut server).bytes, MSG);
        assert_eq!(server.len(), 1);
    }

    #[test]
    fn a_message_goes_both_ways_on_one_connection() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut server = Streams::new(ip);
        let probe = TcpListener::bind((ip, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        server.listen(port).unwrap();
        let mut client = Streams::new(ip);
        client.everything();
        let server_addr = SocketAddr::new(ip, port);
        let probe = TcpListener::bind((ip, 0)).unwrap();
        let client_port = probe.local_addr().unwrap().port();
        drop(probe);
        client.listen(client_port).unwrap();
        client.send(MSG, server_addr, client_port).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let frame = loop {
            assert!(std::time::Instant::now() < deadline, "nothing came");
            let _ = client.wait(&[], Duration::from_millis(10)).unwrap();
            if let Ready::Frame(f) = server.wait(&[], Duration::from_millis(10)).unwrap() {
                break f;
            }
        };
        assert_eq!(frame.bytes, MSG);
        // It came from our SIP port, so the answer to that address takes
        // the same connection.
        assert_eq!(frame.from, SocketAddr::new(ip, client_port));
        assert!(server.goes(frame.from));
        server.send(MSG, frame.from, port).unwrap();
        let back = loop {
            assert!(std::time::Instant::now() < deadline, "no answer");
            if let Ready::Frame(f) = client.wait(&[], Duration::from_millis(10)).unwrap() {
                break f;
            }
        };
        assert_eq!(back.from, server_addr);
        assert_eq!(server.len(), 1);
        assert_eq!(client.len(), 1);
        // Plain SIP and SigComp do not mix on it.
        let sigcomp = [0xf8u8, 0, 1];
        assert!(server.send(&sigcomp, frame.from, port).is_err());
    }
}
