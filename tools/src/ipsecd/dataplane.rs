//! The data path: IO around the `sadb` engine.
//!
//! Outbound (one worker per TUN queue): TUN read -> offloads (checksum
//! completion, TSO segmentation, [`offload`]) -> [`Databases::protect`] ->
//! discard | bypass (re-injected on a marked `IPPROTO_RAW` socket) |
//! protected bytes -> raw ESP/AH socket or the RFC 3948 UDP socket. The
//! segments of one TSO super-packet leave in one `sendmmsg`, or, in UDP,
//! in one UDP GSO `sendmsg` (`UDP_SEGMENT`), so the kernel's stack runs
//! once for all of them.
//!
//! Inbound (one thread per receiving socket): raw ESP/AH over IPv4 (with
//! the IP header, `recvmmsg` batches), over IPv6 (the payload, with the
//! addresses from `IPV6_PKTINFO`), ESP in UDP (the payload, with
//! `IP_PKTINFO`; with `UDP_GRO` a run of datagrams per read) ->
//! [`Databases::unprotect`] with the outer addresses -> TUN write,
//! consecutive TCP segments coalesced ([`gro`](super::gro)).
//!
//! No lock is held while a packet is processed: every thread reads the
//! engine's current snapshot (one atomic load per packet,
//! [`sadb::Reader`]); sequence numbers, replay windows and counters are the
//! engine's own atomics and per-SA locks. One buffer set per thread,
//! allocated once.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sadb::{
    Databases, DiscardReason, DropReason, Engine, Incoming, Outgoing, Protected, Received,
    Timestamp, Wire,
};

use super::gro::Gro;
use super::io::{PcapWriter, UrandomIv};
use super::offload;
use crate::sys::{BATCH, Poller, SendBatch, Sock, Tun, VNET_HDR_LEN};

/// Room in front of a packet for the headers of up to four SAs (and for
/// the IP header the engine writes in front of a received payload).
pub const HEADROOM: usize = 256;
/// Room after a packet for ESP trailers and ICVs of up to four SAs.
pub const TAILROOM: usize = 256;
/// The largest IP packet.
pub const MAX_PACKET: usize = 65535;

/// Set once a stop signal arrived: errors of the data path are then
/// expected (the TUN is going away) and not worth an error line.
pub static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Daemon-wide counters (besides the per-SA and per-policy ones in the
/// engine).
#[derive(Debug, Default)]
pub struct Stats {
    /// Packets read from the TUN.
    pub tun_rx: AtomicU64,
    /// Packets protected and sent.
    pub out_protected: AtomicU64,
    /// Packets re-injected in clear (`none` policy or no policy).
    pub out_bypass: AtomicU64,
    /// Packets dropped by a `discard` policy.
    pub out_discard: AtomicU64,
    /// Packets dropped because an `ipsec` policy had no usable SA
    /// (missing, expired, sequence numbers exhausted): fail closed.
    pub out_no_sa: AtomicU64,
    /// Packets that could not be parsed, protected or sent.
    pub out_errors: AtomicU64,
    /// Packets dropped while their SA waited for sequence numbers to be
    /// recorded (the store is slow or cannot be written).
    pub out_seq_wait: AtomicU64,
    /// ESP/AH packets received.
    pub in_rx: AtomicU64,
    /// Decapsulated packets written to the TUN.
    pub in_delivered: AtomicU64,
    /// Packets for an SPI not in the SAD.
    pub in_unknown_spi: AtomicU64,
    /// Replayed or too old sequence numbers (RFC 4303 §3.4.3).
    pub in_replay: AtomicU64,
    /// ICV failures (RFC 4303 §3.4.4).
    pub in_icv: AtomicU64,
    /// Other decapsulation failures (padding, truncation, dead SA, ...).
    pub in_errors: AtomicU64,
    /// Decapsulated packets the inbound policy rejected.
    pub in_policy_drop: AtomicU64,
    /// Soft lifetime events.
    pub soft_expires: AtomicU64,
    /// Hard lifetime events (SA removed).
    pub hard_expires: AtomicU64,
    /// Coalesced TCP writes into the TUN (each carrying several segments).
    pub gro_writes: AtomicU64,
    /// `sendmmsg` calls that sent more than one packet.
    pub send_batches: AtomicU64,
    /// UDP GSO sends (each several ESP-in-UDP packets).
    pub udp_gso_sends: AtomicU64,
    /// UDP reads that returned several coalesced datagrams (`UDP_GRO`).
    pub udp_gro_reads: AtomicU64,
    /// Packets a thread found while polling (`--poll-us`): wake-ups saved.
    pub poll_hits: AtomicU64,
}

impl Stats {
    /// `name value` lines.
    pub fn report(&self) -> String {
        let f = [
            ("tun_rx", &self.tun_rx),
            ("out_protected", &self.out_protected),
            ("out_bypass", &self.out_bypass),
            ("out_discard", &self.out_discard),
            ("out_no_sa", &self.out_no_sa),
            ("out_errors", &self.out_errors),
            ("out_seq_wait", &self.out_seq_wait),
            ("in_rx", &self.in_rx),
            ("in_delivered", &self.in_delivered),
            ("in_unknown_spi", &self.in_unknown_spi),
            ("in_replay", &self.in_replay),
            ("in_icv", &self.in_icv),
            ("in_errors", &self.in_errors),
            ("in_policy_drop", &self.in_policy_drop),
            ("soft_expires", &self.soft_expires),
            ("hard_expires", &self.hard_expires),
            ("gro_writes", &self.gro_writes),
            ("send_batches", &self.send_batches),
            ("udp_gso_sends", &self.udp_gso_sends),
            ("udp_gro_reads", &self.udp_gro_reads),
            ("poll_hits", &self.poll_hits),
        ];
        f.iter()
            .map(|(n, v)| format!("{n} {}\n", v.load(Relaxed)))
            .collect()
    }
}

/// The sockets of the daemon (all with `SO_MARK`).
#[derive(Debug)]
pub struct Sockets {
    /// Raw ESP, IPv4 (send and receive).
    pub esp4: Sock,
    /// Raw ESP, IPv6.
    pub esp6: Option<Sock>,
    /// Raw AH, IPv4 (receive).
    pub ah4: Sock,
    /// Raw AH, IPv6 (send and receive).
    pub ah6: Option<Sock>,
    /// Header-included, IPv4 (bypass, AH send).
    pub raw4: Sock,
    /// Header-included, IPv6 (bypass).
    pub raw6: Option<Sock>,
    /// UDP 4500, IPv4 (RFC 3948).
    pub udp4: Option<Sock>,
    /// UDP 4500, IPv6.
    pub udp6: Option<Sock>,
    /// Whether runs of ESP-in-UDP packets leave in one UDP GSO send
    /// (cleared for good when the kernel refuses one for a reason other
    /// than the size of a packet).
    pub udp_gso: std::sync::atomic::AtomicBool,
}

/// Everything the threads share.
#[derive(Debug)]
pub struct Shared {
    /// The SAD and SPD: the current snapshot and the changes.
    pub engine: Engine,
    /// The sequence numbers recorded for restarts.
    pub seqs: std::sync::Mutex<super::seqstore::SeqStore>,
    /// Counters.
    pub stats: Stats,
    /// Sockets.
    pub socks: Sockets,
    /// The TUN (a queue to write decapsulated packets into).
    pub tun: Tun,
    /// `--pcap`.
    pub pcap: Option<PcapWriter>,
    /// `--poll-us`: how long a thread polls its queue or socket after a
    /// packet before it sleeps ([`Poller`]).
    pub poll: Duration,
}

/// Now, as the databases count time.
pub fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// Logs at most one warning per second per call site.
struct RateLimit(Option<Instant>);

impl RateLimit {
    fn ok(&mut self) -> bool {
        let now = Instant::now();
        match self.0 {
            Some(t) if now.duration_since(t).as_secs() < 1 => false,
            _ => {
                self.0 = Some(now);
                true
            }
        }
    }
}

/// Which socket a protected or bypassed packet leaves on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// A socket that writes the IP header: the payload, to `dst`, from `src`.
    From {
        sock: SockKind,
        src: IpAddr,
        dst: SocketAddr,
    },
    /// A header-included socket: the whole packet, to `dst`.
    Whole { v6: bool, dst: IpAddr },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SockKind {
    Esp4,
    Esp6,
    Ah6,
    Udp4,
    Udp6,
}

impl Sockets {
    fn get(&self, k: SockKind) -> Option<&Sock> {
        match k {
            SockKind::Esp4 => Some(&self.esp4),
            SockKind::Esp6 => self.esp6.as_ref(),
            SockKind::Ah6 => self.ah6.as_ref(),
            SockKind::Udp4 => self.udp4.as_ref(),
            SockKind::Udp6 => self.udp6.as_ref(),
        }
    }

    fn whole(&self, v6: bool) -> Option<&Sock> {
        if v6 {
            self.raw6.as_ref()
        } else {
            Some(&self.raw4)
        }
    }
}

/// How a protected packet leaves: the socket and the bytes of it.
fn route(p: &Protected) -> (Via, Range<usize>) {
    let v6 = p.dst.is_ipv6();
    match (p.wire, v6) {
        (Wire::Esp, false) => (
            Via::From {
                sock: SockKind::Esp4,
                src: p.src,
                dst: SocketAddr::new(p.dst, 0),
            },
            p.payload(),
        ),
        (Wire::Esp, true) => (
            Via::From {
                sock: SockKind::Esp6,
                src: p.src,
                dst: SocketAddr::new(p.dst, 0),
            },
            p.payload(),
        ),
        (Wire::EspInUdp { dport, .. }, _) => (
            Via::From {
                sock: if v6 { SockKind::Udp6 } else { SockKind::Udp4 },
                src: p.src,
                dst: SocketAddr::new(p.dst, dport),
            },
            p.payload(),
        ),
        // AH covers the IPv4 Identification: send the header we built.
        (Wire::Ah, false) => (Via::Whole { v6, dst: p.dst }, p.packet.clone()),
        (Wire::Ah, true) => (
            Via::From {
                sock: SockKind::Ah6,
                src: p.src,
                dst: SocketAddr::new(p.dst, 0),
            },
            p.payload(),
        ),
    }
}

/// The outbound side of one thread: its view of the engine, IVs, and the
/// packets waiting for one `sendmmsg`.
struct Out<'a> {
    sh: &'a Shared,
    reader: sadb::Reader<'a>,
    iv: UrandomIv,
    warn: RateLimit,
    ip_id: u16,
    batch: SendBatch,
    /// (segment buffer index, how, bytes) of the packets to send.
    pending: Vec<(usize, Via, Range<usize>)>,
}

impl<'a> Out<'a> {
    fn new(sh: &'a Shared) -> std::io::Result<Out<'a>> {
        Ok(Out {
            sh,
            reader: sh.engine.reader(),
            iv: UrandomIv::new()?,
            warn: RateLimit(None),
            ip_id: 1,
            batch: SendBatch::new(),
            pending: Vec::with_capacity(BATCH),
        })
    }

    /// Runs the engine on the plaintext packet at `buf[HEADROOM..HEADROOM
    /// + n]`; what to send, if anything.
    fn protect(&mut self, buf: &mut [u8], n: usize) -> Option<(Via, Range<usize>)> {
        let sh = self.sh;
        sh.stats.tun_rx.fetch_add(1, Relaxed);
        let range = HEADROOM..HEADROOM + n;
        if let Some(p) = &sh.pcap {
            p.record(&buf[range.clone()]);
        }
        self.ip_id = self.ip_id.wrapping_add(1);
        offload::ensure_ipv4_id(&mut buf[range.clone()], self.ip_id);
        let db: &Databases = self.reader.current();
        match db.protect(buf, range.clone(), now(), &mut self.iv) {
            Outgoing::Protected(p) => {
                sh.stats.out_protected.fetch_add(1, Relaxed);
                if let Some(pc) = &sh.pcap {
                    pc.record(&buf[p.packet.clone()]);
                }
                Some(route(&p))
            }
            Outgoing::Bypass { .. } => {
                // RFC 4301 §5.1 BYPASS: out in clear, marked so the routing
                // rules do not send it back into the TUN.
                let h = ipsec_esp::wire::parse(&buf[range.clone()]).ok()?;
                sh.stats.out_bypass.fetch_add(1, Relaxed);
                let pkt = range.start..range.start + h.total_len;
                Some((
                    Via::Whole {
                        v6: h.dst.is_ipv6(),
                        dst: h.dst,
                    },
                    pkt,
                ))
            }
            Outgoing::Discard(d) => {
                let counter = match d.reason {
                    DiscardReason::Policy => &sh.stats.out_discard,
                    DiscardReason::NoSa { .. }
                    | DiscardReason::SaExpired { .. }
                    | DiscardReason::SequenceExhausted { .. } => &sh.stats.out_no_sa,
                    DiscardReason::SequenceNotReserved { .. } => &sh.stats.out_seq_wait,
                    _ => &sh.stats.out_errors,
                };
                counter.fetch_add(1, Relaxed);
                if d.reason != DiscardReason::Policy && self.warn.ok() {
                    tracing::warn!(
                        policy = d.policy,
                        "outbound packet dropped (fail closed): {:?}",
                        d.reason
                    );
                }
                None
            }
        }
    }

    /// Sends one packet now.
    fn send_one(&mut self, buf: &[u8], via: Via, bytes: Range<usize>) {
        let socks = &self.sh.socks;
        let pkt = &buf[bytes];
        // The family's socket could not be opened at start (logged then).
        let none = || Err(std::io::Error::other("no socket for this address family"));
        let res = match via {
            Via::From { sock, src, dst } => match socks.get(sock) {
                Some(s) => s.send_from(pkt, src, dst),
                None => none(),
            },
            Via::Whole { v6, dst } => match socks.whole(v6) {
                Some(s) => s.send_packet(pkt, dst),
                None => none(),
            },
        };
        if let Err(e) = res {
            self.send_failed(&e, 1);
        }
    }

    fn send_failed(&mut self, e: &std::io::Error, n: usize) {
        self.sh.stats.out_errors.fetch_add(n as u64, Relaxed);
        if self.warn.ok() {
            tracing::warn!("send: {e}");
        }
    }

    /// Sends the pending segments: runs of the same socket, source and
    /// destination go out in one `sendmmsg`, or one UDP GSO send.
    fn flush(&mut self, segs: &[Vec<u8>]) {
        let mut i = 0;
        let pending = std::mem::take(&mut self.pending);
        while let Some(&(_, via, _)) = pending.get(i) {
            let run = pending
                .get(i..)
                .unwrap_or(&[])
                .iter()
                .take_while(|(_, v, _)| *v == via)
                .count();
            let mut payloads: [&[u8]; BATCH] = [&[]; BATCH];
            for (slot, (k, _, r)) in payloads.iter_mut().zip(&pending[i..i + run]) {
                *slot = segs.get(*k).and_then(|b| b.get(r.clone())).unwrap_or(&[]);
            }
            self.send_run(via, &payloads[..run.min(BATCH)]);
            i += run;
        }
        self.pending = pending;
        self.pending.clear();
    }

    /// Sends packets that all leave the same way.
    fn send_run(&mut self, via: Via, payloads: &[&[u8]]) {
        let Via::From { sock, src, dst } = via else {
            for p in payloads {
                let r = 0..p.len();
                self.send_one(p, via, r);
            }
            return;
        };
        let Some(s) = self.sh.socks.get(sock) else {
            // The family's socket could not be opened at start (logged then).
            let e = std::io::Error::other("no socket for this address family");
            self.send_failed(&e, payloads.len());
            return;
        };
        let udp = matches!(sock, SockKind::Udp4 | SockKind::Udp6);
        let mut rest = payloads;
        while !rest.is_empty() {
            let gso = self.sh.socks.udp_gso.load(Relaxed);
            let n = if udp && gso {
                crate::sys::gso_prefix(rest.iter().map(|p| p.len()))
            } else {
                rest.len()
            };
            let (now, later) = rest.split_at(n.clamp(1, rest.len()));
            rest = later;
            if now.len() > 1 && udp && gso {
                match s.send_gso(now, src, dst) {
                    Ok(_) => {
                        self.sh.stats.udp_gso_sends.fetch_add(1, Relaxed);
                        continue;
                    }
                    // Longer than the path allows: sent one by one below,
                    // where the kernel fragments as it would anyway.
                    Err(e) if e.raw_os_error() == Some(EMSGSIZE) => {}
                    Err(e) => {
                        self.sh.socks.udp_gso.store(false, Relaxed);
                        tracing::warn!("UDP GSO refused ({e}); ESP in UDP goes out per packet");
                    }
                }
            }
            self.send_many(s, now, src, dst);
        }
    }

    /// Sends packets to one destination with `sendmmsg`.
    fn send_many(&mut self, s: &Sock, payloads: &[&[u8]], src: IpAddr, dst: SocketAddr) {
        if let [one] = payloads {
            if let Err(e) = s.send_from(one, src, dst) {
                self.send_failed(&e, 1);
            }
            return;
        }
        let run = payloads.len();
        match s.send_many(&mut self.batch, payloads, src, dst) {
            Ok(sent) => {
                self.sh.stats.send_batches.fetch_add(1, Relaxed);
                if sent < run {
                    self.send_failed(&std::io::Error::other("sendmmsg sent fewer"), run - sent);
                }
            }
            Err(e) => self.send_failed(&e, run),
        }
    }
}

/// `EMSGSIZE`: a packet longer than the path allows.
const EMSGSIZE: i32 = nix::errno::Errno::EMSGSIZE as i32;

/// An outbound worker on one TUN queue: never returns unless the TUN fails.
pub fn outbound(sh: Arc<Shared>, tun: Tun) -> std::io::Result<()> {
    let mut out = Out::new(&sh)?;
    let mut buf = vec![0u8; HEADROOM + MAX_PACKET + TAILROOM];
    let mut segs: Vec<Vec<u8>> = Vec::new();
    let mut poller = Poller::new(sh.poll);
    loop {
        if poller.wait(tun.fd()) {
            sh.stats.poll_hits.fetch_add(1, Relaxed);
        }
        if !tun.vnet_hdr() {
            let n = tun.read(&mut buf[HEADROOM..HEADROOM + MAX_PACKET])?;
            poller.got();
            if let Some((via, r)) = out.protect(&mut buf, n) {
                out.send_one(&buf, via, r);
            }
            continue;
        }
        let v = VNET_HDR_LEN;
        let n = tun.read(&mut buf[HEADROOM - v..HEADROOM + MAX_PACKET])?;
        poller.got();
        let Some(n) = n.checked_sub(v) else {
            sh.stats.out_errors.fetch_add(1, Relaxed);
            continue;
        };
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr.copy_from_slice(&buf[HEADROOM - v..HEADROOM]);
        match offload::VnetHdr::parse(&hdr) {
            Some(h) if h.gso_type == offload::GSO_NONE => {
                if h.needs_csum && !offload::complete_checksum(&mut buf[HEADROOM..HEADROOM + n], &h)
                {
                    sh.stats.out_errors.fetch_add(1, Relaxed);
                    continue;
                }
                if let Some((via, r)) = out.protect(&mut buf, n) {
                    out.send_one(&buf, via, r);
                }
            }
            Some(h) => {
                // A TSO super-packet: cut it into segments of gso_size as the
                // NIC would, protect each one, send them together.
                if segs.is_empty() {
                    segs = (0..BATCH)
                        .map(|_| vec![0u8; HEADROOM + MAX_PACKET + TAILROOM])
                        .collect();
                }
                let pkt = &buf[HEADROOM..HEADROOM + n];
                let mut k = 0;
                loop {
                    let slot = k % BATCH;
                    let Some(len) = offload::segment(
                        pkt,
                        &h,
                        k,
                        &mut segs[slot][HEADROOM..HEADROOM + MAX_PACKET],
                    ) else {
                        break;
                    };
                    if let Some((via, r)) = out.protect(&mut segs[slot], len) {
                        out.pending.push((slot, via, r));
                    }
                    k += 1;
                    if k % BATCH == 0 {
                        out.flush(&segs);
                    }
                }
                out.flush(&segs);
                if k == 0 {
                    sh.stats.out_errors.fetch_add(1, Relaxed);
                }
            }
            None => {
                sh.stats.out_errors.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Which receiving socket an inbound thread serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx {
    /// Raw ESP or AH over IPv4 (the header is included).
    Raw4,
    /// Raw ESP or AH over IPv6 (the payload only), with its protocol.
    Raw6(ipsec_esp::Protocol),
    /// ESP in UDP (RFC 3948), IPv4 or IPv6, on this local port.
    Udp(u16),
}

/// The inbound side of one thread.
struct In<'a> {
    sh: &'a Shared,
    reader: sadb::Reader<'a>,
    warn: RateLimit,
    gro: Gro,
}

impl<'a> In<'a> {
    fn new(sh: &'a Shared) -> In<'a> {
        In {
            sh,
            reader: sh.engine.reader(),
            warn: RateLimit(None),
            gro: Gro::new(),
        }
    }

    /// Runs the engine on the received bytes at `buf[range]`; where the
    /// plaintext packet is, if it is to be delivered.
    fn unprotect(
        &mut self,
        buf: &mut [u8],
        range: Range<usize>,
        from: Received,
    ) -> Option<Range<usize>> {
        let st = &self.sh.stats;
        if let Some(p) = &self.sh.pcap {
            p.record(&buf[range.clone()]);
        }
        let db: &Databases = self.reader.current();
        match db.unprotect(buf, range, from, now()) {
            Incoming::Deliver(d) => {
                st.in_rx.fetch_add(1, Relaxed);
                if let Some(p) = &self.sh.pcap {
                    p.record(&buf[d.packet.clone()]);
                }
                Some(d.packet)
            }
            Incoming::Drop(d) => {
                let counter = match d.reason {
                    // RFC 3948 §2.2: keepalives and IKE are not ours.
                    DropReason::NotEsp(_) => return None,
                    // P6: every raw socket sees every ESP packet; unknown
                    // SPIs are normal when several daemons share a host.
                    DropReason::UnknownSa { .. } => &st.in_unknown_spi,
                    DropReason::Replay { .. } => &st.in_replay,
                    DropReason::Icv { .. } => &st.in_icv,
                    DropReason::Policy { .. }
                    | DropReason::ClearRefused { .. }
                    | DropReason::IcmpQuote { .. } => &st.in_policy_drop,
                    _ => &st.in_errors,
                };
                st.in_rx.fetch_add(1, Relaxed);
                counter.fetch_add(1, Relaxed);
                tracing::trace!("inbound packet dropped: {:?}", d.reason);
                None
            }
        }
    }

    /// Writes one plaintext packet (at `buf[r]`, with room before it for
    /// the `virtio_net_hdr`) into the TUN.
    fn write_tun(&mut self, buf: &mut [u8], r: Range<usize>) {
        let tun = &self.sh.tun;
        let res = if tun.vnet_hdr() {
            let start = r.start.saturating_sub(VNET_HDR_LEN);
            // No GSO, no checksum offload: the kernel checks the checksums.
            buf[start..r.start].fill(0);
            tun.write(&buf[start..r.end])
        } else {
            tun.write(&buf[r])
        };
        self.written(res, 1);
    }

    fn written(&mut self, res: std::io::Result<usize>, segments: usize) {
        let st = &self.sh.stats;
        match res {
            Ok(_) => {
                st.in_delivered.fetch_add(segments as u64, Relaxed);
                if segments > 1 {
                    st.gro_writes.fetch_add(1, Relaxed);
                }
            }
            Err(e) => {
                st.in_errors.fetch_add(segments as u64, Relaxed);
                if self.warn.ok() {
                    tracing::warn!("TUN write ({segments} segments): {e}");
                }
            }
        }
    }

    /// Delivers a packet, coalescing TCP segments when the TUN takes GSO.
    fn deliver(&mut self, buf: &mut [u8], r: Range<usize>) {
        if !self.sh.tun.vnet_hdr() {
            self.write_tun(buf, r);
            return;
        }
        if self.gro.push(&buf[r.clone()]) {
            return;
        }
        self.flush_gro();
        if !self.gro.push(&buf[r.clone()]) {
            self.write_tun(buf, r);
        }
    }

    fn flush_gro(&mut self) {
        if let Some(c) = self.gro.take() {
            let res = self.sh.tun.write(c.frame);
            let segments = c.segments;
            self.written(res, segments);
        }
    }
}

/// An inbound loop on one socket: never returns unless the socket fails.
pub fn inbound(sh: Arc<Shared>, sock: &Sock, rx: Rx) -> std::io::Result<()> {
    let mut inb = In::new(&sh);
    let mut poller = Poller::new(sh.poll);
    if rx == Rx::Raw4 {
        // `recvmmsg`: up to BATCH packets per system call when they queue
        // up (with their IP header); coalesced runs go out per batch.
        let mut batch = crate::sys::RecvBatch::new(HEADROOM, MAX_PACKET, TAILROOM);
        loop {
            if poller.wait(sock.fd()) {
                sh.stats.poll_hits.fetch_add(1, Relaxed);
            }
            let n = batch.recv(sock)?;
            poller.got();
            for i in 0..n {
                let Some((buf, len)) = batch.buf_mut(i) else {
                    continue;
                };
                if let Some(r) = inb.unprotect(buf, HEADROOM..HEADROOM + len, Received::Ip) {
                    inb.deliver(buf, r);
                }
            }
            inb.flush_gro();
        }
    }
    let mut buf = vec![0u8; HEADROOM + MAX_PACKET + TAILROOM];
    let mut cmsg = crate::sys::pktinfo_cmsg_space();
    loop {
        let body = HEADROOM..HEADROOM + MAX_PACKET;
        if poller.wait(sock.fd()) {
            sh.stats.poll_hits.fetch_add(1, Relaxed);
        }
        let got = sock.recv_with_dst(&mut buf[body], &mut cmsg)?;
        poller.got();
        let (src, dst) = (got.src, got.dst);
        let from = match rx {
            Rx::Raw6(protocol) => Received::Payload {
                src: src.ip(),
                dst,
                protocol,
            },
            Rx::Udp(port) => Received::Udp {
                src,
                dst: SocketAddr::new(dst, port),
            },
            Rx::Raw4 => Received::Ip,
        };
        if got.segment < got.len {
            sh.stats.udp_gro_reads.fetch_add(1, Relaxed);
        }
        // Coalesced datagrams lie back to back: each is decapsulated in
        // place and handed on (copied into the coalescer or written)
        // before the next, whose headroom is the end of the one before.
        for r in got.each() {
            let r = HEADROOM + r.start..HEADROOM + r.end;
            if let Some(r) = inb.unprotect(&mut buf, r, from) {
                inb.deliver(&mut buf, r);
            }
        }
        inb.flush_gro();
    }
}
