//! The two directions of the data path.
//!
//! Outbound (one thread): TUN read -> SPD (`Databases::outbound`) ->
//! discard | bypass (marked `IPPROTO_RAW` re-injection) | encapsulate with
//! the bundle's SAs (`Sa::encap_range`, headroom form: nothing of the
//! payload moves) -> raw ESP/AH socket or the RFC 3948 UDP socket.
//!
//! Inbound (one thread per receiving socket): raw ESP/AH (IPv4 with the IP
//! header; IPv6 and UDP without it, so the header is rebuilt in the
//! buffer's headroom from the source address and `IPV6_PKTINFO`/`IP_PKTINFO`)
//! -> SAD by (destination, protocol, SPI) -> decapsulate (ICV, replay,
//! decrypt) -> inbound policy check -> TUN write.
//!
//! One buffer per thread, allocated once; the databases sit behind one
//! mutex that each packet takes once.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ipsec_esp::{Error as EspError, Protocol};
use sadb::{Databases, Inbound, Outbound, SaId, Timestamp};

use super::io::{PcapWriter, UrandomIv};
use super::{offload, packet};
use crate::sys::{Sock, Tun, VNET_HDR_LEN};

/// Room in front of a packet for the headers of up to four SAs (and for a
/// rebuilt outer header on receive).
pub const HEADROOM: usize = 256;
/// Room after a packet for ESP trailers and ICVs of up to four SAs.
pub const TAILROOM: usize = 256;
/// The largest IP packet.
pub const MAX_PACKET: usize = 65535;

/// Set once a stop signal arrived: errors of the data path are then
/// expected (the TUN is going away) and not worth an error line.
pub static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Daemon-wide counters (besides the per-SA ones in the SAD).
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
    /// Packets that could not be parsed or sent.
    pub out_errors: AtomicU64,
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
    /// Other decapsulation failures (padding, truncation, ...).
    pub in_errors: AtomicU64,
    /// Decapsulated packets the inbound policy rejected.
    pub in_policy_drop: AtomicU64,
    /// Soft lifetime events.
    pub soft_expires: AtomicU64,
    /// Hard lifetime events (SA removed).
    pub hard_expires: AtomicU64,
    /// Coalesced TCP writes into the TUN (each carrying several segments).
    pub gro_writes: AtomicU64,
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
        ];
        f.iter()
            .map(|(n, v)| format!("{n} {}\n", v.load(Relaxed)))
            .collect()
    }
}

/// Per-policy counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyCounters {
    /// Packets that matched and went on (protected, bypassed, accepted).
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets the policy made us drop (discard, no SA, rejected).
    pub drops: u64,
}

/// The databases and the per-policy counters, under one lock.
#[derive(Debug, Default)]
pub struct State {
    /// SAD and SPD.
    pub db: Databases,
    /// Counters by `spid`.
    pub policies: std::collections::HashMap<u32, PolicyCounters>,
}

impl State {
    fn count(&mut self, policy: u32, bytes: usize, drop: bool) {
        let c = self.policies.entry(policy).or_default();
        if drop {
            c.drops += 1;
        } else {
            c.packets += 1;
            c.bytes += bytes as u64;
        }
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
}

/// Everything the threads share.
#[derive(Debug)]
pub struct Shared {
    /// Databases and policy counters.
    pub state: Mutex<State>,
    /// Counters.
    pub stats: Stats,
    /// Sockets.
    pub socks: Sockets,
    /// The TUN (for writing decapsulated packets).
    pub tun: Tun,
    /// `--pcap`.
    pub pcap: Option<PcapWriter>,
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

/// What to send once the lock is released.
enum Send {
    Esp {
        src: IpAddr,
        dst: IpAddr,
        hl: usize,
    },
    EspUdp {
        src: IpAddr,
        dst: IpAddr,
        dport: u16,
        hl: usize,
    },
    Ah {
        src: IpAddr,
        dst: IpAddr,
        hl: usize,
    },
}

/// The outbound loop: never returns unless the TUN fails.
pub fn outbound(sh: Arc<Shared>, tun: Tun) -> std::io::Result<()> {
    let mut buf = vec![0u8; HEADROOM + MAX_PACKET + TAILROOM];
    let mut seg = vec![0u8; HEADROOM + MAX_PACKET + TAILROOM];
    let mut cx = OutCtx {
        iv: UrandomIv::new()?,
        warn: RateLimit(None),
        ip_id: 1,
    };
    loop {
        if !tun.vnet_hdr() {
            let n = tun.read(&mut buf[HEADROOM..HEADROOM + MAX_PACKET])?;
            out_one(&sh, &mut buf, n, &mut cx);
            continue;
        }
        let v = VNET_HDR_LEN;
        let n = tun.read(&mut buf[HEADROOM - v..HEADROOM + MAX_PACKET])?;
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
                out_one(&sh, &mut buf, n, &mut cx);
            }
            Some(h) => {
                // A TSO super-packet: cut it into segments of gso_size as the
                // NIC would, then protect each one.
                let pkt = &buf[HEADROOM..HEADROOM + n];
                let mut k = 0;
                while let Some(len) =
                    offload::segment(pkt, &h, k, &mut seg[HEADROOM..HEADROOM + MAX_PACKET])
                {
                    out_one(&sh, &mut seg, len, &mut cx);
                    k += 1;
                }
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

/// Per-thread state of the outbound path.
struct OutCtx {
    iv: UrandomIv,
    warn: RateLimit,
    ip_id: u16,
}

/// Applies the SPD to the plaintext packet at `buf[HEADROOM..HEADROOM + n]`
/// and sends the result (or drops it).
fn out_one(sh: &Shared, buf: &mut [u8], n: usize, cx: &mut OutCtx) {
    let OutCtx { iv, warn, ip_id } = cx;
    sh.stats.tun_rx.fetch_add(1, Relaxed);
    let mut range = HEADROOM..HEADROOM + n;
    if let Some(p) = &sh.pcap {
        p.record(&buf[range.clone()]);
    }
    let Some(sel) = packet::selector(&buf[range.clone()]) else {
        sh.stats.out_errors.fetch_add(1, Relaxed);
        return;
    };
    *ip_id = ip_id.wrapping_add(1);
    packet::ensure_ipv4_id(&mut buf[range.clone()], *ip_id);
    let t = now();
    let send = {
        let Ok(mut st) = sh.state.lock() else {
            return;
        };
        match st.db.outbound(&sel, t) {
            Outbound::NoPolicy => None,
            Outbound::Bypass { policy } => {
                st.count(policy, n, false);
                None
            }
            Outbound::Discard { policy } => {
                st.count(policy, n, true);
                sh.stats.out_discard.fetch_add(1, Relaxed);
                return;
            }
            Outbound::NoSa { policy, .. } => {
                st.count(policy, n, true);
                sh.stats.out_no_sa.fetch_add(1, Relaxed);
                if warn.ok() {
                    tracing::warn!(
                        policy,
                        "no SA for {} -> {} (protocol {}): dropped (fail closed)",
                        sel.src,
                        sel.dst,
                        sel.protocol
                    );
                }
                return;
            }
            Outbound::Protect { policy, bundle } => {
                let mut last = None;
                let mut failed = false;
                for id in bundle.iter() {
                    let Some(e) = st.db.sad.get_mut(&id) else {
                        failed = true;
                        break;
                    };
                    if e.state() == sadb::SaState::Dead {
                        failed = true;
                        break;
                    }
                    let sa = e.sa_mut();
                    match sa.encap_range(buf, range.clone(), iv) {
                        Ok(r) => {
                            let len = r.len();
                            last = Some((sa.protocol(), sa.udp_encap(), sa.src(), sa.dst()));
                            range = r;
                            e.record_packet(len as u64, t);
                        }
                        Err(err) => {
                            if warn.ok() {
                                tracing::warn!(
                                    spi = id.spi.0,
                                    "cannot protect a packet: {err}; dropped (fail closed)"
                                );
                            }
                            failed = true;
                            break;
                        }
                    }
                }
                if failed || last.is_none() {
                    st.count(policy, n, true);
                    sh.stats.out_no_sa.fetch_add(1, Relaxed);
                    return;
                }
                st.count(policy, n, false);
                let Some((proto, udp, src, dst)) = last else {
                    return;
                };
                let Some((hl, _)) = packet::outer_header(&buf[range.clone()]) else {
                    sh.stats.out_errors.fetch_add(1, Relaxed);
                    return;
                };
                Some(match (proto, udp) {
                    (Protocol::Esp, None) => Send::Esp { src, dst, hl },
                    (Protocol::Esp, Some(u)) => Send::EspUdp {
                        src,
                        dst,
                        dport: u.dport,
                        hl: hl + 8,
                    },
                    (Protocol::Ah, _) => Send::Ah { src, dst, hl },
                })
            }
        }
    };
    let pkt = &buf[range.clone()];
    let res = match send {
        None => {
            // RFC 4301 §5.1 BYPASS: out in clear, marked so the
            // routing rules do not send it back into the TUN.
            sh.stats.out_bypass.fetch_add(1, Relaxed);
            match sel.dst {
                IpAddr::V4(_) => sh.socks.raw4.send_packet(pkt, sel.dst),
                IpAddr::V6(_) => match &sh.socks.raw6 {
                    Some(s) => s.send_packet(pkt, sel.dst),
                    None => Ok(0),
                },
            }
        }
        Some(s) => {
            if let Some(p) = &sh.pcap {
                p.record(pkt);
            }
            sh.stats.out_protected.fetch_add(1, Relaxed);
            match s {
                Send::Esp { src, dst, hl } => {
                    let sock = if dst.is_ipv4() {
                        Some(&sh.socks.esp4)
                    } else {
                        sh.socks.esp6.as_ref()
                    };
                    match sock {
                        Some(sock) => sock.send_from(&pkt[hl..], src, SocketAddr::new(dst, 0)),
                        None => Ok(0),
                    }
                }
                Send::EspUdp {
                    src,
                    dst,
                    dport,
                    hl,
                } => {
                    let sock = if dst.is_ipv4() {
                        sh.socks.udp4.as_ref()
                    } else {
                        sh.socks.udp6.as_ref()
                    };
                    match sock {
                        Some(sock) => sock.send_from(&pkt[hl..], src, SocketAddr::new(dst, dport)),
                        None => Ok(0),
                    }
                }
                Send::Ah { src, dst, hl } => {
                    if dst.is_ipv4() {
                        // AH covers the Identification: send the header we built.
                        sh.socks.raw4.send_packet(pkt, dst)
                    } else {
                        match &sh.socks.ah6 {
                            Some(sock) => sock.send_from(&pkt[hl..], src, SocketAddr::new(dst, 0)),
                            None => Ok(0),
                        }
                    }
                }
            }
        }
    };
    if let Err(e) = res {
        sh.stats.out_errors.fetch_add(1, Relaxed);
        if warn.ok() {
            tracing::warn!("send to {}: {e}", sel.dst);
        }
    }
}

/// Which receiving socket an inbound thread serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rx {
    /// Raw ESP or AH over IPv4 (the header is included).
    Raw4,
    /// Raw ESP or AH over IPv6 (the header is rebuilt), with its protocol.
    Raw6(u8),
    /// ESP in UDP (RFC 3948), IPv4 or IPv6.
    Udp,
}

/// The IPv4 raw-socket loop with `recvmmsg`: up to 32 packets per system
/// call when they queue up (the packets come with their IP header). With a
/// `virtio_net_hdr` TUN, consecutive in-order TCP segments of one flow are
/// written as one GSO packet (see [`Gro`]).
fn inbound_raw4_batched(sh: &Shared, sock: &Sock) -> std::io::Result<()> {
    let mut batch = crate::sys::RecvBatch::new(HEADROOM, MAX_PACKET, TAILROOM);
    let mut warn = RateLimit(None);
    let mut gro = Gro::new();
    loop {
        let n = batch.recv(sock)?;
        for i in 0..n {
            let Some((buf, len)) = batch.buf_mut(i) else {
                continue;
            };
            if let Some(r) = open(sh, buf, HEADROOM..HEADROOM + len) {
                if sh.tun.vnet_hdr() {
                    if !gro.push(&buf[r.clone()]) {
                        gro.flush(sh, &mut warn);
                        if !gro.push(&buf[r.clone()]) {
                            write_tun(sh, buf, r, &mut warn);
                        }
                    }
                } else {
                    write_tun(sh, buf, r, &mut warn);
                }
            }
        }
        gro.flush(sh, &mut warn);
    }
}

/// Decapsulates the packet at `buf[range]`; the plaintext's range.
fn open(sh: &Shared, buf: &mut [u8], range: Range<usize>) -> Option<Range<usize>> {
    sh.stats.in_rx.fetch_add(1, Relaxed);
    if let Some(p) = &sh.pcap {
        p.record(&buf[range.clone()]);
    }
    match process_inbound(sh, buf, range) {
        Ok(r) => {
            if let Some(p) = &sh.pcap {
                p.record(&buf[r.clone()]);
            }
            Some(r)
        }
        Err(why) => {
            if let Some(why) = why {
                tracing::trace!("inbound packet dropped: {why}");
            }
            None
        }
    }
}

/// Writes one plaintext packet (at `buf[r]`, with room before it for the
/// `virtio_net_hdr`) into the TUN.
fn write_tun(sh: &Shared, buf: &mut [u8], r: Range<usize>, warn: &mut RateLimit) {
    let res = if sh.tun.vnet_hdr() {
        let start = r.start.saturating_sub(VNET_HDR_LEN);
        // No GSO, no checksum offload: the kernel checks the checksums.
        buf[start..r.start].fill(0);
        sh.tun.write(&buf[start..r.end])
    } else {
        sh.tun.write(&buf[r])
    };
    match res {
        Ok(_) => {
            sh.stats.in_delivered.fetch_add(1, Relaxed);
        }
        Err(e) => {
            sh.stats.in_errors.fetch_add(1, Relaxed);
            if warn.ok() {
                tracing::warn!("TUN write: {e}");
            }
        }
    }
}

/// Decapsulates and writes one packet.
fn deliver(sh: &Shared, buf: &mut [u8], range: Range<usize>, warn: &mut RateLimit) {
    if let Some(r) = open(sh, buf, range) {
        write_tun(sh, buf, r, warn);
    }
}

/// Receive-side coalescing of TCP segments (what GRO does in a NIC driver):
/// consecutive IPv4/TCP segments of one flow, in sequence, with identical
/// headers apart from sequence number, length, IP ID and checksums, are
/// joined and written as one packet with a `virtio_net_hdr` asking for TCP
/// segmentation offload, so the kernel's TCP receive path (and its ACKs)
/// runs once per batch instead of once per segment. The merge rules are
/// those of Linux `tcp_gro_receive`: same addresses, ports, ACK number,
/// window, options (bytes), TOS and TTL; only ACK (PSH on the last) set;
/// every segment but the last as long as the first.
struct Gro {
    buf: Vec<u8>,
    len: usize,
    segs: usize,
    gso_size: usize,
    hl: usize,
    next_seq: u32,
    ended: bool,
}

/// Room for the `virtio_net_hdr` in front of the coalesced packet.
const GRO_OFF: usize = 16;

impl Gro {
    fn new() -> Gro {
        Gro {
            buf: vec![0u8; GRO_OFF + MAX_PACKET],
            len: 0,
            segs: 0,
            gso_size: 0,
            hl: 0,
            next_seq: 0,
            ended: false,
        }
    }

    /// TCP/IPv4 header length, payload length, sequence number and flags,
    /// if `p` is a segment that may be coalesced at all.
    fn tcp4(p: &[u8]) -> Option<(usize, usize, u32, u8)> {
        if p.len() < 40 || p[0] != 0x45 || p[9] != 6 || p[6] & 0x3f != 0 || p[7] != 0 {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
        let thl = usize::from(p[32] >> 4) * 4;
        if total != p.len() || thl < 20 || 20 + thl > total {
            return None;
        }
        let flags = p[33];
        // Only ACK, optionally PSH.
        if flags & !0x18 != 0 || flags & 0x10 == 0 {
            return None;
        }
        let seq = u32::from_be_bytes([p[24], p[25], p[26], p[27]]);
        Some((20 + thl, total - 20 - thl, seq, flags))
    }

    /// Adds a packet to the current run; `false` if it does not fit (the
    /// caller flushes and retries, then writes it alone).
    fn push(&mut self, p: &[u8]) -> bool {
        let Some((hl, plen, seq, flags)) = Gro::tcp4(p) else {
            return false;
        };
        if plen == 0 {
            return false;
        }
        if self.segs == 0 {
            self.buf[GRO_OFF..GRO_OFF + p.len()].copy_from_slice(p);
            self.len = p.len();
            self.segs = 1;
            self.gso_size = plen;
            self.hl = hl;
            self.next_seq = seq.wrapping_add(plen as u32);
            self.ended = flags & 0x08 != 0;
            return true;
        }
        let h = &self.buf[GRO_OFF..GRO_OFF + self.hl];
        let same = !self.ended
            && hl == self.hl
            && plen <= self.gso_size
            && self.len + plen <= MAX_PACKET
            && seq == self.next_seq
            // TOS, DF, TTL, protocol, addresses.
            && h[1] == p[1]
            && h[6] == p[6]
            && h[8..10] == p[8..10]
            && h[12..20] == p[12..20]
            // Ports, ACK number, data offset, window; options.
            && h[20..24] == p[20..24]
            && h[28..33] == p[28..33]
            && h[34..36] == p[34..36]
            && h[40..hl] == p[40..hl];
        if !same {
            return false;
        }
        self.buf[GRO_OFF + self.len..GRO_OFF + self.len + plen].copy_from_slice(&p[hl..]);
        self.len += plen;
        self.segs += 1;
        self.next_seq = seq.wrapping_add(plen as u32);
        // A short segment or PSH ends the run (as tcp_gro_receive flushes).
        if plen < self.gso_size || flags & 0x08 != 0 {
            self.ended = true;
            self.buf[GRO_OFF + 33] |= flags & 0x08;
        }
        true
    }

    /// Writes the current run (if any) into the TUN.
    fn flush(&mut self, sh: &Shared, warn: &mut RateLimit) {
        if self.segs == 0 {
            return;
        }
        let segs = self.segs;
        self.segs = 0;
        let end = GRO_OFF + self.len;
        let start = GRO_OFF - VNET_HDR_LEN;
        if segs == 1 {
            write_tun(sh, &mut self.buf, GRO_OFF..end, warn);
            return;
        }
        let len = self.len;
        let hl = self.hl;
        let pkt = &mut self.buf[GRO_OFF..end];
        pkt[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        pkt[10..12].fill(0);
        let c = ipsec_esp::wire::checksum(&pkt[..20], 0);
        pkt[10..12].copy_from_slice(&c.to_be_bytes());
        // CHECKSUM_PARTIAL: the TCP checksum field holds the pseudo-header
        // sum (RFC 793 §3.1), not complemented; the kernel treats the data
        // as verified, which it was: every segment passed the ESP ICV.
        let tcp_len = (len - 20) as u32;
        let mut sum: u32 = 6 + tcp_len;
        for i in (12..20).step_by(2) {
            sum += u32::from(u16::from_be_bytes([pkt[i], pkt[i + 1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        pkt[36..38].copy_from_slice(&(sum as u16).to_be_bytes());
        // struct virtio_net_hdr: flags NEEDS_CSUM, gso_type TCPV4, hdr_len,
        // gso_size, csum_start, csum_offset (little-endian, virtio 1.0).
        let h = &mut self.buf[start..GRO_OFF];
        h[0] = 1;
        h[1] = 1;
        h[2..4].copy_from_slice(&(hl as u16).to_le_bytes());
        h[4..6].copy_from_slice(&(self.gso_size as u16).to_le_bytes());
        h[6..8].copy_from_slice(&20u16.to_le_bytes());
        h[8..10].copy_from_slice(&16u16.to_le_bytes());
        match sh.tun.write(&self.buf[start..end]) {
            Ok(_) => {
                sh.stats.in_delivered.fetch_add(segs as u64, Relaxed);
                sh.stats.gro_writes.fetch_add(1, Relaxed);
            }
            Err(e) => {
                sh.stats.in_errors.fetch_add(segs as u64, Relaxed);
                if warn.ok() {
                    tracing::warn!("TUN write (GSO, {segs} segments): {e}");
                }
            }
        }
    }
}

/// An inbound loop on one socket: never returns unless the socket fails.
pub fn inbound(sh: Arc<Shared>, sock: &Sock, rx: Rx) -> std::io::Result<()> {
    if rx == Rx::Raw4 {
        return inbound_raw4_batched(&sh, sock);
    }
    let mut buf = vec![0u8; HEADROOM + MAX_PACKET + TAILROOM];
    let mut cmsg = crate::sys::pktinfo_cmsg_space();
    let mut warn = RateLimit(None);
    loop {
        let body = HEADROOM..HEADROOM + MAX_PACKET;
        let range = match rx {
            Rx::Raw4 => {
                let n = sock.recv(&mut buf[body])?;
                HEADROOM..HEADROOM + n
            }
            Rx::Raw6(proto) => {
                let (n, src, dst) = sock.recv_with_dst(&mut buf[body], &mut cmsg)?;
                let (IpAddr::V6(s), IpAddr::V6(d)) = (src.ip(), dst) else {
                    continue;
                };
                let Ok(len) = u16::try_from(n) else { continue };
                packet::write_ipv6_header(&mut buf[HEADROOM - 40..HEADROOM], len, proto, s, d);
                HEADROOM - 40..HEADROOM + n
            }
            Rx::Udp => {
                let (n, src, dst) = sock.recv_with_dst(&mut buf[body], &mut cmsg)?;
                // RFC 3948 §2.2: keepalives and IKE (non-ESP marker) are not ours.
                if !matches!(
                    ipsec_esp::udp::classify(&buf[HEADROOM..HEADROOM + n]),
                    Ok(ipsec_esp::udp::UdpPayload::Esp)
                ) {
                    continue;
                }
                let Ok(ulen) = u16::try_from(n + 8) else {
                    continue;
                };
                let u = &mut buf[HEADROOM - 8..HEADROOM];
                u[0..2].copy_from_slice(&src.port().to_be_bytes());
                u[2..4].copy_from_slice(&ipsec_esp::udp::NAT_T_PORT.to_be_bytes());
                u[4..6].copy_from_slice(&ulen.to_be_bytes());
                u[6..8].fill(0);
                match (src.ip(), dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        let Ok(tl) = u16::try_from(n + 28) else {
                            continue;
                        };
                        packet::write_ipv4_header(
                            &mut buf[HEADROOM - 28..HEADROOM - 8],
                            tl,
                            17,
                            s,
                            d,
                        );
                        HEADROOM - 28..HEADROOM + n
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        packet::write_ipv6_header(
                            &mut buf[HEADROOM - 48..HEADROOM - 8],
                            ulen,
                            17,
                            s,
                            d,
                        );
                        HEADROOM - 48..HEADROOM + n
                    }
                    _ => continue,
                }
            }
        };
        deliver(&sh, &mut buf, range, &mut warn);
    }
}

/// Where the SPI of a protected packet is, and the SAD key.
fn sa_key(pkt: &[u8]) -> Option<(SaId, u8)> {
    let (hl, proto) = packet::outer_header(pkt)?;
    let dst: IpAddr = match pkt.first()? >> 4 {
        4 => IpAddr::from(<[u8; 4]>::try_from(pkt.get(16..20)?).ok()?),
        _ => IpAddr::from(<[u8; 16]>::try_from(pkt.get(24..40)?).ok()?),
    };
    let (protocol, spi_at) = match proto {
        50 => (Protocol::Esp, hl),
        51 => (Protocol::Ah, hl + 4),
        17 => (Protocol::Esp, hl + 8),
        _ => return None,
    };
    let spi = u32::from_be_bytes(pkt.get(spi_at..spi_at + 4)?.try_into().ok()?);
    Some((
        SaId {
            dst,
            protocol,
            spi: ipsec_esp::Spi(spi),
        },
        proto,
    ))
}

/// Decapsulates (up to four nested SAs), checks the inbound policy and
/// returns where the plaintext packet is. `Err(Some(reason))` for drops
/// worth a debug line.
fn process_inbound(
    sh: &Shared,
    buf: &mut [u8],
    mut range: Range<usize>,
) -> Result<Range<usize>, Option<&'static str>> {
    let t = now();
    let Ok(mut st) = sh.state.lock() else {
        return Err(None);
    };
    let mut applied = [SaId {
        dst: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        protocol: Protocol::Esp,
        spi: ipsec_esp::Spi(0),
    }; 4];
    let mut n_applied = 0;
    loop {
        let Some((id, _)) = sa_key(&buf[range.clone()]) else {
            if n_applied == 0 {
                sh.stats.in_errors.fetch_add(1, Relaxed);
                return Err(Some("not ESP/AH"));
            }
            break;
        };
        if n_applied == applied.len() {
            sh.stats.in_errors.fetch_add(1, Relaxed);
            return Err(Some("more than four nested SAs"));
        }
        let Some(e) = st.db.sad.get_mut(&id) else {
            if n_applied == 0 {
                // P6: every raw socket sees every ESP packet; unknown SPIs
                // are normal when several daemons share a host.
                sh.stats.in_unknown_spi.fetch_add(1, Relaxed);
                return Err(Some("unknown SPI"));
            }
            break;
        };
        if e.state() == sadb::SaState::Dead {
            sh.stats.in_errors.fetch_add(1, Relaxed);
            return Err(Some("dead SA"));
        }
        let pkt = &mut buf[range.clone()];
        match e.sa_mut().decap(pkt) {
            Ok(d) => {
                e.record_packet(d.range.len() as u64, t);
                range = range.start + d.range.start..range.start + d.range.end;
                applied[n_applied] = id;
                n_applied += 1;
            }
            Err(EspError::ReplayedSequence { .. } | EspError::SequenceTooOld { .. }) => {
                e.record_replay_drop();
                sh.stats.in_replay.fetch_add(1, Relaxed);
                return Err(Some("replayed"));
            }
            Err(EspError::IcvMismatch { .. }) => {
                e.record_icv_failure();
                sh.stats.in_icv.fetch_add(1, Relaxed);
                return Err(Some("ICV mismatch"));
            }
            Err(_) => {
                sh.stats.in_errors.fetch_add(1, Relaxed);
                return Err(Some("malformed"));
            }
        }
        // Nested SAs (e.g. ESP inside AH): the result is again ESP/AH for us.
        match packet::outer_header(&buf[range.clone()]) {
            Some((_, 50 | 51)) => continue,
            _ => break,
        }
    }
    let Some(sel) = packet::selector(&buf[range.clone()]) else {
        sh.stats.in_errors.fetch_add(1, Relaxed);
        return Err(Some("bad inner packet"));
    };
    // RFC 4301 §5.2 step 4: the SAs used must be those the policy asks for.
    match st.db.inbound_check(&sel, &applied[..n_applied], t) {
        Inbound::Accept { policy } => {
            if let Some(p) = policy {
                st.count(p, range.len(), false);
            }
            Ok(range)
        }
        Inbound::Reject { policy } => {
            st.count(policy, range.len(), true);
            sh.stats.in_policy_drop.fetch_add(1, Relaxed);
            Err(Some("inbound policy"))
        }
    }
}
