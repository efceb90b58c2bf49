//! Operating-system interfaces of `ipsecd`: the TUN device, raw IP sockets
//! for ESP/AH (IP protocols 50/51), header-included (`IPPROTO_RAW`) sockets
//! for bypass re-injection, the RFC 3948 UDP socket, and sends/receives that
//! carry the local address in `IP_PKTINFO`/`IPV6_PKTINFO`.
//!
//! This is the only module of the `tools` crate with `unsafe` code (the
//! `TUNSETIFF` ioctl); each block carries a `// SAFETY:` comment. Everything
//! else goes through `nix` and `socket2`.
//!
//! Every socket created here carries `SO_MARK` (the daemon's mark), so the
//! policy routing rule `fwmark <mark> lookup main` keeps the daemon's own
//! ESP and re-injected cleartext out of the TUN (see `docs/ipsecd.md`).

use std::fs::{File, OpenOptions};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::libc;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrStorage,
    recvmsg, sendmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};

/// `IFF_TUN` (linux/if_tun.h).
const IFF_TUN: i16 = 0x0001;
/// `IFF_NO_PI`: no 4-byte packet-information prefix.
const IFF_NO_PI: i16 = 0x1000;
/// `IFF_VNET_HDR`: every packet is preceded by a `virtio_net_hdr`.
const IFF_VNET_HDR: i16 = 0x4000;
/// `IFF_MULTI_QUEUE`: one descriptor per queue, the kernel spreads packets
/// over the queues by flow.
const IFF_MULTI_QUEUE: i16 = 0x0100;
/// Size of `struct virtio_net_hdr` (the TUN default).
pub const VNET_HDR_LEN: usize = 10;
/// `IFNAMSIZ`.
pub const IFNAMSIZ: usize = 16;

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then the flags in the
/// first bytes of the 24-byte union.
#[repr(C)]
struct IfReqFlags {
    name: [u8; IFNAMSIZ],
    flags: i16,
    _pad: [u8; 22],
}

mod ioctl {
    #![allow(missing_docs)]
    // TUNSETIFF = _IOW('T', 202, int) (linux/if_tun.h): the kernel declares
    // an int but reads a `struct ifreq` through the pointer.
    nix::ioctl_write_ptr_bad!(
        tunsetiff,
        nix::request_code_write!(b'T', 202, std::mem::size_of::<nix::libc::c_int>()),
        super::IfReqFlags
    );
    // TUNSETOFFLOAD = _IOW('T', 208, unsigned int); the flags are passed by value.
    nix::ioctl_write_int_bad!(
        tunsetoffload,
        nix::request_code_write!(b'T', 208, std::mem::size_of::<nix::libc::c_uint>())
    );
}
use ioctl::{tunsetiff, tunsetoffload};

/// `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`: the kernel may hand over
/// packets with partial checksums and TCP super-packets.
const TUN_OFFLOADS: nix::libc::c_int = 0x01 | 0x02 | 0x04;

/// An open TUN device (`IFF_TUN | IFF_NO_PI`, not persistent: it disappears
/// with the last descriptor, i.e. when the daemon exits).
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
    vnet_hdr: bool,
}

impl Tun {
    /// Creates (or attaches to) the TUN device `name`. With `vnet_hdr`
    /// every packet read or written is preceded by a 10-byte
    /// `virtio_net_hdr` ([`VNET_HDR_LEN`]), which lets the daemon hand the
    /// kernel coalesced TCP segments (GSO) on write.
    pub fn open(name: &str, vnet_hdr: bool) -> io::Result<Tun> {
        Tun::open_queue(name, vnet_hdr, false)
    }

    /// Creates the TUN device `name` with `queues` queues
    /// (`IFF_MULTI_QUEUE` when more than one): one descriptor per queue,
    /// each for one worker thread; the kernel hands each flow to one queue.
    pub fn open_queues(name: &str, vnet_hdr: bool, queues: usize) -> io::Result<Vec<Tun>> {
        if queues <= 1 {
            return Ok(vec![Tun::open(name, vnet_hdr)?]);
        }
        let first = Tun::open_queue(name, vnet_hdr, true)?;
        let name = first.name.clone();
        let mut all = vec![first];
        for _ in 1..queues {
            all.push(Tun::open_queue(&name, vnet_hdr, true)?);
        }
        Ok(all)
    }

    fn open_queue(name: &str, vnet_hdr: bool, multi: bool) -> io::Result<Tun> {
        if name.is_empty() || name.len() >= IFNAMSIZ || name.contains(['/', ' ', '\0']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name {name:?} (1 to 15 characters)"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let mut req = IfReqFlags {
            name: [0; IFNAMSIZ],
            flags: IFF_TUN
                | IFF_NO_PI
                | if vnet_hdr { IFF_VNET_HDR } else { 0 }
                | if multi { IFF_MULTI_QUEUE } else { 0 },
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: `file` is an open /dev/net/tun descriptor and `req` is a
        // live, properly aligned `struct ifreq`-compatible value (name
        // NUL-terminated: name.len() < IFNAMSIZ, rest zero) that outlives the
        // call; TUNSETIFF reads it and writes the chosen name back into it.
        unsafe { tunsetiff(file.as_raw_fd(), &req) }.map_err(io::Error::from)?;
        if vnet_hdr {
            // SAFETY: `file` is the TUN descriptor just configured; the
            // request takes an integer argument by value, no memory.
            unsafe { tunsetoffload(file.as_raw_fd(), TUN_OFFLOADS) }.map_err(io::Error::from)?;
        }
        let end = req.name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
        let name = String::from_utf8_lossy(&req.name[..end]).into_owned();
        Ok(Tun {
            file,
            name,
            vnet_hdr,
        })
    }

    /// Whether packets carry a `virtio_net_hdr`.
    pub fn vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    /// The interface name the kernel gave the device.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor (for [`Poller::wait`]).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Reads one packet (blocking).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        nix::unistd::read(&self.file, buf).map_err(io::Error::from)
    }

    /// Writes one packet.
    pub fn write(&self, pkt: &[u8]) -> io::Result<usize> {
        nix::unistd::write(&self.file, pkt).map_err(io::Error::from)
    }

    /// Another descriptor for the same queue (for a second thread).
    pub fn try_clone(&self) -> io::Result<Tun> {
        Ok(Tun {
            file: self.file.try_clone()?,
            name: self.name.clone(),
            vnet_hdr: self.vnet_hdr,
        })
    }
}

/// A socket of the daemon, marked with `SO_MARK`.
#[derive(Debug)]
pub struct Sock {
    sock: Socket,
}

fn marked(sock: Socket, mark: u32) -> io::Result<Sock> {
    sock.set_mark(mark)?;
    // Bursts of ESP must not be dropped at the socket.
    let _ = sock.set_recv_buffer_size(4 << 20);
    let _ = sock.set_send_buffer_size(4 << 20);
    Ok(Sock { sock })
}

impl Sock {
    /// `socket(AF_INET[6], SOCK_RAW, proto)`: for 50/51 it receives every
    /// inbound ESP/AH packet of that family (IPv4: with the IP header;
    /// IPv6: without it, addresses from `IPV6_PKTINFO`) and sends with the
    /// header built by the kernel.
    pub fn raw(v6: bool, proto: u8, mark: u32) -> io::Result<Sock> {
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let s = Socket::new(domain, Type::RAW, Some(Protocol::from(i32::from(proto))))?;
        if v6 {
            setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
        }
        marked(s, mark)
    }

    /// `socket(AF_INET[6], SOCK_RAW, IPPROTO_RAW)`: send-only, the caller
    /// writes the whole IP header (raw(7)); for bypass and IPv4 AH.
    pub fn raw_hdrincl(v6: bool, mark: u32) -> io::Result<Sock> {
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let s = Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
        marked(s, mark)
    }

    /// A UDP socket bound to `port` on every address of the family, with
    /// packet info on receive (RFC 3948 ESP in UDP).
    pub fn udp(v6: bool, port: u16, mark: u32) -> io::Result<Sock> {
        let (domain, addr) = if v6 {
            (
                Domain::IPV6,
                SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0)),
            )
        } else {
            (
                Domain::IPV4,
                SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
            )
        };
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        if v6 {
            s.set_only_v6(true)?;
            setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
        } else {
            setsockopt(&s, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
        }
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        marked(s, mark)
    }

    /// The descriptor (for [`Poller::wait`]).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Receives one datagram (IPv4 raw sockets: with the IP header).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        nix::sys::socket::recv(self.sock.as_raw_fd(), buf, MsgFlags::empty())
            .map_err(io::Error::from)
    }

    /// Asks the kernel to hand over runs of equal-sized datagrams of one
    /// flow as one buffer (`UDP_GRO`, udp(7)); [`Sock::recv_with_dst`]
    /// then says the segment size.
    pub fn set_udp_gro(&self) -> io::Result<()> {
        setsockopt(&self.sock, sockopt::UdpGroSegment, &true).map_err(io::Error::from)
    }

    /// Receives one datagram (or, with [`Sock::set_udp_gro`], a run of
    /// them back to back) with its source and the local destination
    /// address (from `IP_PKTINFO`/`IPV6_PKTINFO`; unspecified if absent).
    /// `cmsg` comes from [`pktinfo_cmsg_space`].
    pub fn recv_with_dst(&self, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Datagrams> {
        let mut iov = [io::IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(cmsg),
            MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        let mut dst = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let mut segment = 0;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            match c {
                ControlMessageOwned::Ipv4PacketInfo(pi) => {
                    dst = IpAddr::V4(Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr)));
                }
                ControlMessageOwned::Ipv6PacketInfo(pi) => {
                    dst = IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr));
                }
                ControlMessageOwned::UdpGroSegments(n) => {
                    segment = usize::try_from(n).unwrap_or(0);
                }
                _ => {}
            }
        }
        let src = msg
            .address
            .as_ref()
            .and_then(socket_addr)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no source address"))?;
        let len = msg.bytes;
        Ok(Datagrams {
            len,
            src,
            dst,
            segment: if segment == 0 { len } else { segment },
        })
    }

    /// Sends `payload` to `dst` (port 0 for raw sockets) from the local
    /// address `src` (`IP_PKTINFO`/`IPV6_PKTINFO`; unspecified lets the
    /// kernel choose). On a raw 50/51 socket the kernel builds the IP header
    /// and fragments if needed.
    pub fn send_from(&self, payload: &[u8], src: IpAddr, dst: SocketAddr) -> io::Result<usize> {
        self.send_iov(&[io::IoSlice::new(payload)], src, dst, None)
    }

    /// Sends `payloads` as that many UDP datagrams to `dst` from `src` in
    /// one `sendmsg(2)` with `UDP_SEGMENT` (UDP GSO, udp(7)): the kernel
    /// crosses its stack once for all of them and cuts them apart as late
    /// as the device allows. Every payload but the last must be exactly as
    /// long as the first and the last not longer; at most
    /// [`GSO_MAX_SEGMENTS`] payloads and [`GSO_MAX_BYTES`] in all
    /// ([`gso_prefix`] picks such a run). All are sent or none.
    pub fn send_gso(&self, payloads: &[&[u8]], src: IpAddr, dst: SocketAddr) -> io::Result<usize> {
        let n = payloads.len();
        let seg = payloads.first().map_or(0, |p| p.len());
        if n == 0 || n > GSO_MAX_SEGMENTS || gso_prefix(payloads.iter().map(|p| p.len())) != n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "payloads not fit for one UDP GSO send",
            ));
        }
        let iov: [io::IoSlice<'_>; GSO_MAX_SEGMENTS] =
            std::array::from_fn(|i| io::IoSlice::new(payloads.get(i).copied().unwrap_or(&[])));
        let seg = u16::try_from(seg)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too long"))?;
        self.send_iov(iov.get(..n).unwrap_or(&[]), src, dst, Some(seg))
    }

    /// `sendmsg(2)` of the gathered `iov` with the source address and,
    /// if given, a UDP GSO segment size.
    fn send_iov(
        &self,
        iov: &[io::IoSlice<'_>],
        src: IpAddr,
        dst: SocketAddr,
        gso: Option<u16>,
    ) -> io::Result<usize> {
        let fd = self.sock.as_raw_fd();
        let seg = gso.unwrap_or(0);
        match (src, dst) {
            (IpAddr::V4(s), SocketAddr::V4(d)) => {
                let pi = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(s).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let cm = [
                    ControlMessage::UdpGsoSegments(&seg),
                    ControlMessage::Ipv4PacketInfo(&pi),
                ];
                let to = SockaddrIn::from(d);
                let cms = cmsgs(&cm, gso.is_some(), !s.is_unspecified());
                sendmsg(fd, iov, cms, MsgFlags::empty(), Some(&to))
            }
            (IpAddr::V6(s), SocketAddr::V6(d)) => {
                let pi = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: s.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                let cm = [
                    ControlMessage::UdpGsoSegments(&seg),
                    ControlMessage::Ipv6PacketInfo(&pi),
                ];
                let to = SockaddrIn6::from(d);
                let cms = cmsgs(&cm, gso.is_some(), !s.is_unspecified());
                sendmsg(fd, iov, cms, MsgFlags::empty(), Some(&to))
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "address family mismatch",
                ));
            }
        }
        .map_err(io::Error::from)
    }

    /// Sends `payloads` (at most [`BATCH`]) to `dst` from `src` (as
    /// [`Sock::send_from`]) with as few `sendmmsg(2)` calls as the kernel
    /// takes; returns how many were sent.
    pub fn send_many(
        &self,
        batch: &mut SendBatch,
        payloads: &[&[u8]],
        src: IpAddr,
        dst: SocketAddr,
    ) -> io::Result<usize> {
        let mut done = 0;
        while done < payloads.len() {
            let rest = payloads.get(done..).unwrap_or(&[]);
            let n = batch.send(self.sock.as_raw_fd(), rest, src, dst)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    /// Sends a whole IP packet on a header-included socket to `dst`.
    pub fn send_packet(&self, pkt: &[u8], dst: IpAddr) -> io::Result<usize> {
        self.sock.send_to(pkt, &SocketAddr::new(dst, 0).into())
    }
}

/// Space for one `in6_pktinfo` or `in_pktinfo` control message and a
/// `UDP_GRO` segment size.
pub fn pktinfo_cmsg_space() -> Vec<u8> {
    nix::cmsg_space!(libc::in6_pktinfo, libc::in_pktinfo, libc::c_int)
}

/// What [`Sock::recv_with_dst`] received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagrams {
    /// Bytes in the buffer.
    pub len: usize,
    /// The sender.
    pub src: SocketAddr,
    /// The local address it was sent to.
    pub dst: IpAddr,
    /// The length of each datagram in the buffer (the last may be
    /// shorter): `len` unless the kernel coalesced several (`UDP_GRO`).
    pub segment: usize,
}

impl Datagrams {
    /// Where each datagram is in the buffer (an empty datagram is one
    /// empty range: it is still a datagram to account for).
    pub fn each(&self) -> impl Iterator<Item = std::ops::Range<usize>> + use<> {
        let (len, seg) = (self.len, self.segment.max(1));
        (0..len.div_ceil(seg).max(1)).map(move |k| (k * seg).min(len)..((k + 1) * seg).min(len))
    }
}

/// The most datagrams in one UDP GSO send (the kernel's
/// `UDP_MAX_SEGMENTS` has been 64 or more).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// The most payload bytes in one UDP GSO send (an IPv4 UDP datagram's
/// limit, 65 507, rounded down).
pub const GSO_MAX_BYTES: usize = 65_000;

/// How many of the leading datagrams, of lengths `lens`, can leave in one
/// UDP GSO send: all but the last exactly as long as the first, the last
/// not longer, within [`GSO_MAX_SEGMENTS`] and [`GSO_MAX_BYTES`]. 0 for no
/// datagrams, otherwise at least 1.
pub fn gso_prefix(lens: impl IntoIterator<Item = usize>) -> usize {
    let mut lens = lens.into_iter();
    let Some(seg) = lens.next() else {
        return 0;
    };
    let (mut n, mut total) = (1, seg);
    if seg == 0 {
        return 1;
    }
    for l in lens {
        if n == GSO_MAX_SEGMENTS || total + l > GSO_MAX_BYTES || l > seg {
            break;
        }
        n += 1;
        total += l;
        if l < seg {
            break;
        }
    }
    n
}

/// The control messages of one send: the GSO size if `gso`, the packet
/// info if `pktinfo`.
fn cmsgs<'a, 'b>(
    cm: &'b [ControlMessage<'a>; 2],
    gso: bool,
    pktinfo: bool,
) -> &'b [ControlMessage<'a>] {
    match (gso, pktinfo) {
        (true, true) => cm,
        (true, false) => cm.get(..1).unwrap_or(&[]),
        (false, true) => cm.get(1..).unwrap_or(&[]),
        (false, false) => &[],
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and the threads
/// it spawns afterwards) and returns the set, for [`wait_signal`].
pub fn block_signals() -> io::Result<nix::sys::signal::SigSet> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    set.thread_block().map_err(io::Error::from)?;
    Ok(set)
}

/// Waits for one of the signals of `set` and returns its name.
pub fn wait_signal(set: &nix::sys::signal::SigSet) -> io::Result<&'static str> {
    set.wait().map(|s| s.as_str()).map_err(io::Error::from)
}

/// The effective user id is root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The uid of the process at the other end of a Unix stream socket.
pub fn peer_uid(sock: &std::os::unix::net::UnixStream) -> io::Result<u32> {
    let cred =
        nix::sys::socket::getsockopt(sock, sockopt::PeerCredentials).map_err(io::Error::from)?;
    Ok(cred.uid())
}

/// The inode number of this process's network namespace: a name for the
/// namespace that differs between namespaces (`ip netns identify` reads
/// the same `/proc/self/ns/net`).
pub fn netns_id() -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net").map(|m| m.ino())
}

/// An exclusive `flock(2)` on a file, held while the value lives; the
/// kernel releases it when the process dies, however it dies.
#[derive(Debug)]
pub struct FileLock(nix::fcntl::Flock<File>);

impl FileLock {
    /// Takes the lock on `path` (created if absent) without waiting;
    /// `Ok(None)` when another process holds it.
    pub fn try_lock(path: &std::path::Path) -> io::Result<Option<FileLock>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(Some(FileLock(l))),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(io::Error::from(e)),
        }
    }

    /// The locked file (e.g. to write the holder's pid into it).
    pub fn file(&mut self) -> &mut File {
        &mut self.0
    }
}

/// The detached daemon's line back to the command that started it.
#[derive(Debug)]
pub struct Ready(File);

impl Ready {
    /// The daemon is running: the starting command exits with status 0.
    pub fn ok(mut self) {
        use std::io::Write;
        let _ = self.0.write_all(b"ok\n");
    }

    /// The daemon failed to start: the starting command prints `reason` on
    /// its standard error and exits with `status`.
    pub fn fail(mut self, status: u8, reason: &str) {
        use std::io::Write;
        let line = reason.replace('\n', " ");
        let _ = self
            .0
            .write_all(format!("err {status} {line}\n").as_bytes());
    }
}

/// Detaches from the terminal, and reports back: the calling process
/// forks; the parent waits until the child reports through [`Ready`]
/// (or exits) and exits with the child's verdict, printing its reason on
/// standard error; the child returns, in a new session, with `/` as its
/// directory and its standard streams on `/dev/null`. Call before any
/// thread starts.
pub fn detach() -> io::Result<Ready> {
    use std::io::Read;
    let (r, w) = nix::unistd::pipe().map_err(io::Error::from)?;
    // SAFETY: called from `main` before any thread is spawned (the tracing
    // subscriber writes synchronously and starts no thread), so the child
    // is a copy of a single-threaded process and may continue normally.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(w);
            let mut answer = String::new();
            let _ = File::from(r).read_to_string(&mut answer);
            let answer = answer.trim_end();
            if answer == "ok" {
                std::process::exit(0);
            }
            let (status, reason) = match answer.strip_prefix("err ") {
                Some(rest) => {
                    let (code, why) = rest.split_once(' ').unwrap_or((rest, ""));
                    (code.parse::<i32>().unwrap_or(1), why.to_string())
                }
                None => (1, "the daemon exited before it was ready".to_string()),
            };
            eprintln!("ipsecd: {reason}");
            std::process::exit(status);
        }
        nix::unistd::ForkResult::Child => {
            drop(r);
            nix::unistd::setsid().map_err(io::Error::from)?;
            std::env::set_current_dir("/")?;
            let null = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            nix::unistd::dup2_stdin(null.as_fd()).map_err(io::Error::from)?;
            nix::unistd::dup2_stdout(null.as_fd()).map_err(io::Error::from)?;
            nix::unistd::dup2_stderr(null.as_fd()).map_err(io::Error::from)?;
            Ok(Ready(File::from(w)))
        }
    }
}

/// Whether a process with this id exists and runs a program of this name
/// (`/proc/PID/comm`; a reused pid of another program does not count).
pub fn process_named(pid: u32, name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
}

/// The message headers of `sendmmsg(2)`, allocated once per thread: one
/// set per address family, each message with exactly one packet-info
/// control message (the source address; unspecified lets the kernel
/// choose).
pub struct SendBatch {
    v4: nix::sys::socket::MultiHeaders<SockaddrIn>,
    v6: nix::sys::socket::MultiHeaders<SockaddrIn6>,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch").finish_non_exhaustive()
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch::new()
    }
}

impl SendBatch {
    /// Headers for [`BATCH`] messages.
    pub fn new() -> SendBatch {
        SendBatch {
            v4: nix::sys::socket::MultiHeaders::preallocate(
                BATCH,
                Some(nix::cmsg_space!(libc::in_pktinfo)),
            ),
            v6: nix::sys::socket::MultiHeaders::preallocate(
                BATCH,
                Some(nix::cmsg_space!(libc::in6_pktinfo)),
            ),
        }
    }

    fn send(
        &mut self,
        fd: std::os::fd::RawFd,
        payloads: &[&[u8]],
        src: IpAddr,
        dst: SocketAddr,
    ) -> io::Result<usize> {
        let n = payloads.len().min(BATCH);
        let slices: [[io::IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|i| [io::IoSlice::new(payloads.get(i).copied().unwrap_or(&[]))]);
        let slices = slices.get(..n).unwrap_or(&[]);
        let sent = match (src, dst) {
            (IpAddr::V4(s), SocketAddr::V4(d)) => {
                let pi = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(s).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let addrs = [Some(SockaddrIn::from(d)); BATCH];
                let cm = [ControlMessage::Ipv4PacketInfo(&pi)];
                nix::sys::socket::sendmmsg(
                    fd,
                    &mut self.v4,
                    slices,
                    &addrs[..n],
                    cm,
                    MsgFlags::empty(),
                )
                .map(|r| r.count())
            }
            (IpAddr::V6(s), SocketAddr::V6(d)) => {
                let pi = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: s.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                let addrs = [Some(SockaddrIn6::from(d)); BATCH];
                let cm = [ControlMessage::Ipv6PacketInfo(&pi)];
                nix::sys::socket::sendmmsg(
                    fd,
                    &mut self.v6,
                    slices,
                    &addrs[..n],
                    cm,
                    MsgFlags::empty(),
                )
                .map(|r| r.count())
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "address family mismatch",
                ));
            }
        };
        sent.map_err(io::Error::from)
    }
}

/// An IPv4 or IPv6 socket address as std has it.
fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    a.as_sockaddr_in()
        .map(|s| SocketAddr::V4(SocketAddrV4::new(s.ip(), s.port())))
        .or_else(|| {
            a.as_sockaddr_in6()
                .map(|s| SocketAddr::V6(SocketAddrV6::new(s.ip(), s.port(), 0, 0)))
        })
}

/// `recvmmsg(2)` into preallocated buffers: up to `n` datagrams per system
/// call (`MSG_WAITFORONE`: waits for the first only). Each datagram lands
/// at `offset` in its own buffer, so the caller has that much headroom.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    froms: Vec<Option<SocketAddr>>,
    headers: nix::sys::socket::MultiHeaders<SockaddrStorage>,
    offset: usize,
    max: usize,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("n", &self.bufs.len())
            .finish_non_exhaustive()
    }
}

/// Checks a descriptor for a while before a thread sleeps on it
/// (`ipsecd --poll-us`). A thread that sleeps in `read` is woken by the
/// kernel when a packet comes, and on a machine with an idle CPU that
/// wake-up costs more than the work the packet needs (on a virtual machine
/// the idle vCPU is halted and the host must wake it). For up to `window`
/// after its last packet, [`Poller::wait`] instead asks whether the next
/// one is there (`poll` with no timeout), yielding the CPU between asks so
/// that any runnable thread goes first. Traffic in quick exchanges
/// (request/response) then finds its thread awake; a thread idle for
/// longer than `window` sleeps as before. The cost is CPU time while
/// traffic flows. A zero window never polls.
#[derive(Debug)]
pub struct Poller {
    window: std::time::Duration,
    last: Option<std::time::Instant>,
}

impl Poller {
    /// Polls for `window` after each packet ([`Poller::got`]).
    pub fn new(window: std::time::Duration) -> Poller {
        Poller { window, last: None }
    }

    /// Before a blocking read of `fd`: within `window` of the last packet,
    /// returns as soon as `fd` is readable (true: the read will not
    /// sleep) or when the window has passed (false); at once otherwise.
    pub fn wait(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let Some(last) = self.last.filter(|_| !self.window.is_zero()) else {
            return false;
        };
        let deadline = last + self.window;
        loop {
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::ZERO) {
                Ok(n) if n > 0 => return true,
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                // The read that follows reports what is wrong.
                Err(_) => return false,
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// A packet came: poll for `window` from now.
    pub fn got(&mut self) {
        if !self.window.is_zero() {
            self.last = Some(std::time::Instant::now());
        }
    }
}

/// Datagrams per [`RecvBatch::recv`].
pub const BATCH: usize = 32;

impl RecvBatch {
    /// [`BATCH`] buffers of `offset + max + tail` bytes.
    pub fn new(offset: usize, max: usize, tail: usize) -> RecvBatch {
        RecvBatch {
            bufs: (0..BATCH).map(|_| vec![0u8; offset + max + tail]).collect(),
            lens: vec![0; BATCH],
            froms: vec![None; BATCH],
            headers: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
            offset,
            max,
        }
    }

    /// Receives at least one datagram (blocking); returns how many.
    pub fn recv(&mut self, sock: &Sock) -> io::Result<usize> {
        self.recv_fd(sock.sock.as_fd(), MsgFlags::MSG_WAITFORONE)
    }

    /// The datagrams waiting on `fd` (a UDP socket), at most [`BATCH`],
    /// without blocking: `WouldBlock` when there are none.
    pub fn recv_waiting(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> io::Result<usize> {
        self.recv_fd(fd, MsgFlags::MSG_DONTWAIT)
    }

    fn recv_fd(&mut self, fd: std::os::fd::BorrowedFd<'_>, flags: MsgFlags) -> io::Result<usize> {
        let (offset, max) = (self.offset, self.max);
        let mut slices: [[io::IoSliceMut<'_>; 1]; BATCH] = {
            let mut it = self.bufs.iter_mut();
            std::array::from_fn(|_| {
                let b = it
                    .next()
                    .map(|b| &mut b[offset..offset + max])
                    .unwrap_or(&mut []);
                [io::IoSliceMut::new(b)]
            })
        };
        let res = nix::sys::socket::recvmmsg(
            fd.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            flags,
            None,
        )
        .map_err(io::Error::from)?;
        let mut n = 0;
        for (i, r) in res.enumerate() {
            if let (Some(l), Some(f)) = (self.lens.get_mut(i), self.froms.get_mut(i)) {
                *l = r.bytes;
                *f = r.address.as_ref().and_then(socket_addr);
                n = i + 1;
            }
        }
        Ok(n)
    }

    /// Datagram `i` of the last receive and its sender.
    pub fn datagram(&self, i: usize) -> Option<(&[u8], Option<SocketAddr>)> {
        let len = *self.lens.get(i)?;
        let b = self.bufs.get(i)?.get(self.offset..self.offset + len)?;
        Some((b, self.froms.get(i).copied().flatten()))
    }

    /// Buffer `i` (the datagram is at `offset..offset + len(i)`).
    pub fn buf_mut(&mut self, i: usize) -> Option<(&mut [u8], usize)> {
        let len = *self.lens.get(i)?;
        self.bufs.get_mut(i).map(|b| (b.as_mut_slice(), len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The poller spins only within its window after a packet, returns
    /// true as soon as a datagram is waiting, and gives up when the window
    /// has passed.
    #[test]
    fn the_poller_waits_only_within_its_window_after_a_packet() {
        use std::net::UdpSocket;
        use std::time::{Duration, Instant};
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let window = Duration::from_millis(30);

        // Off: never polls, even with a packet seen and one waiting.
        let mut off = Poller::new(Duration::ZERO);
        off.got();
        // Before any packet: returns at once, nothing waiting.
        let mut p = Poller::new(window);
        let t = Instant::now();
        assert!(!p.wait(rx.as_fd()));
        assert!(t.elapsed() < window);

        // Within the window, nothing comes: it gives up after the window.
        p.got();
        let t = Instant::now();
        assert!(!p.wait(rx.as_fd()));
        assert!(t.elapsed() >= window);

        // A datagram waiting: found at once, within the window.
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        p.got();
        assert!(p.wait(rx.as_fd()));
        assert!(!off.wait(rx.as_fd()));

        // One sent while it polls is found before the window ends.
        let mut buf = [0u8; 4];
        rx.recv(&mut buf).unwrap();
        let mut long = Poller::new(Duration::from_secs(60));
        long.got();
        let to = rx.local_addr().unwrap();
        let sender = std::thread::spawn(move || tx.send_to(b"y", to).unwrap());
        let t = Instant::now();
        assert!(long.wait(rx.as_fd()));
        assert!(t.elapsed() < Duration::from_secs(60));
        sender.join().unwrap();
    }

    #[test]
    fn gso_runs_are_equal_sized_with_a_shorter_tail() {
        assert_eq!(gso_prefix([]), 0);
        assert_eq!(gso_prefix([1444]), 1);
        assert_eq!(gso_prefix([1444, 1444, 1444, 900]), 4);
        // A shorter datagram ends the run; a longer one cannot join it.
        assert_eq!(gso_prefix([1444, 900, 1444]), 2);
        assert_eq!(gso_prefix([900, 1444, 1444]), 1);
        assert_eq!(gso_prefix([1444, 1444, 1500]), 2);
        // The kernel's limits: segments and bytes.
        assert_eq!(gso_prefix([100; 100]), GSO_MAX_SEGMENTS);
        assert_eq!(gso_prefix([9000; 10]), GSO_MAX_BYTES / 9000);
    }

    #[test]
    fn coalesced_datagrams_are_cut_at_the_segment_size() {
        let d = |len, segment| Datagrams {
            len,
            src: SocketAddr::from(([192, 0, 2, 1], 4500)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            segment,
        };
        assert_eq!(d(1444, 1444).each().next(), Some(0..1444));
        assert_eq!(d(1444, 1444).each().count(), 1);
        assert_eq!(
            d(3000, 1444).each().collect::<Vec<_>>(),
            [0..1444, 1444..2888, 2888..3000]
        );
        assert_eq!(d(2888, 1444).each().count(), 2);
        assert_eq!(d(0, 0).each().next(), Some(0..0));
        assert_eq!(d(0, 0).each().count(), 1);
    }
}
