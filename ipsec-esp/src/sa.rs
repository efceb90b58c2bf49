//! The per-SA transform: parameters, sequence numbers, replay window, and
//! ESP/AH encapsulation and decapsulation in place.

use core::fmt;
use core::ops::Range;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use opensec::{AuthAlgorithm, Cipher, EncAlgorithm, Integrity};
use zeroize::Zeroize;

use crate::ah::{self, AH_FIXED_LEN, MAX_ICV_FIELD, Scratch};
use crate::replay::ReplayWindow;
use crate::wire::{
    self, Checksum, HeaderChain, IPV4_HEADER_LEN, IPV6_HEADER_LEN, IpVersion, UDP_HEADER_LEN, proto,
};
use crate::{Error, IvSource, Mode, Protocol, Spi, UdpEncap};

/// ESP header: SPI + Sequence Number (RFC 4303 §2).
pub const ESP_HEADER_LEN: usize = 8;

/// Everything needed to build an SA's transform. Keys are moved in and
/// zeroized when the parameters are dropped.
pub struct SaParams {
    /// Security Parameters Index.
    pub spi: Spi,
    /// ESP or AH.
    pub protocol: Protocol,
    /// Transport or tunnel.
    pub mode: Mode,
    /// Outer source (sender); the tunnel's source in tunnel mode.
    pub src: IpAddr,
    /// Outer destination; the tunnel's destination in tunnel mode.
    pub dst: IpAddr,
    /// Encryption algorithm (`Null` for AH).
    pub enc: EncAlgorithm,
    /// Encryption key.
    pub enc_key: Vec<u8>,
    /// Integrity algorithm (`Null` = none, ESP only).
    pub auth: AuthAlgorithm,
    /// Integrity key.
    pub auth_key: Vec<u8>,
    /// Anti-replay window in packets; 0 = no replay check.
    pub replay_window: u32,
    /// Extended (64-bit) sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// ESP in UDP (RFC 3948).
    pub udp_encap: Option<UdpEncap>,
    /// The last sequence number sent (normally 0: the first packet carries
    /// 1). For inbound processing it is also taken as the highest sequence
    /// number already received (the replay window starts there).
    pub seq: u64,
}

impl Drop for SaParams {
    fn drop(&mut self) {
        self.enc_key.zeroize();
        self.auth_key.zeroize();
    }
}

impl fmt::Debug for SaParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaParams")
            .field("spi", &self.spi)
            .field("protocol", &self.protocol)
            .field("mode", &self.mode)
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("enc", &self.enc)
            .field("auth", &self.auth)
            .field("keys", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The result of a successful decapsulation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decapped {
    /// Where the decapsulated packet lies in the caller's buffer: the
    /// original IP packet (transport mode), the inner IP packet (tunnel
    /// mode), or the ESP payload data ([`Sa::decap_esp`]).
    pub range: Range<usize>,
    /// The Next Header of the protected payload (RFC 4303 §2.6).
    pub next_header: u8,
    /// The full sequence number of the packet (ESN: inferred high bits).
    pub seq: u64,
    /// Bytes the SA protected: the IP payload (transport header and data)
    /// in transport mode, the inner IP packet in tunnel mode.
    pub payload_len: usize,
    /// What the SA has received so far, this packet included.
    pub received: Traffic,
}

/// Packets and bytes an SA processed in one direction. Bytes are what the
/// SA protects: the IP payload (transport header and data) in transport
/// mode, the inner IP packet in tunnel mode (as Linux XFRM counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The outbound state: the last sequence number sent and the traffic,
/// changed together under one lock.
#[derive(Debug)]
struct Tx {
    seq: u64,
    sent: Traffic,
    /// The highest number that may be sent (see [`Sa::reserve_up_to`]).
    reserved: u64,
}

/// The inbound state: the replay window and the traffic accepted, changed
/// together under one lock when a packet is accepted (as Linux XFRM
/// advances the window and the lifetime counters under `x->lock`).
#[derive(Debug)]
struct Rx {
    window: ReplayWindow,
    received: Traffic,
}

/// The result of a successful encapsulation ([`Sa::protect`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encapped {
    /// Where the protected packet lies in the caller's buffer.
    pub range: Range<usize>,
    /// The sequence number it carries.
    pub seq: u64,
    /// Bytes the SA protected: the IP payload (transport header and data)
    /// in transport mode, the inner IP packet in tunnel mode.
    pub payload_len: usize,
    /// Bytes of the outer IP header (with the IPv6 extension headers kept
    /// in front) at the start of `range`: what follows is ESP, AH, or the
    /// RFC 3948 UDP header.
    pub header_len: usize,
    /// What the SA has sent so far, this packet included.
    pub sent: Traffic,
}

/// One SA's transform. Not `Clone`: sequence numbers must never repeat.
///
/// Every operation takes `&self`: the outbound sequence number and the
/// inbound replay window, each with its direction's traffic counters, sit
/// behind their own small locks, taken briefly before and after the
/// cryptography (never across it), so one SA may protect and unprotect on
/// several threads at once. Both are shared with an SA that
/// [`Sa::carry_state_from`] this one (setkey `update` of the same SA), so
/// sequence numbers never repeat across the replacement.
pub struct Sa {
    spi: Spi,
    protocol: Protocol,
    mode: Mode,
    src: IpAddr,
    dst: IpAddr,
    cipher: Cipher,
    integrity: Option<Integrity>,
    enc_key: Vec<u8>,
    auth_key: Vec<u8>,
    esn: bool,
    udp_encap: Option<UdpEncap>,
    tx: Arc<Mutex<Tx>>,
    rx: Arc<Mutex<Rx>>,
}

impl Drop for Sa {
    fn drop(&mut self) {
        self.enc_key.zeroize();
        self.auth_key.zeroize();
    }
}

impl fmt::Debug for Sa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sa")
            .field("spi", &self.spi)
            .field("protocol", &self.protocol)
            .field("mode", &self.mode)
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("enc", &self.cipher.algorithm())
            .field("auth", &self.auth())
            .field("seq", &self.seq())
            .field("replay", &self.replay_state())
            .finish_non_exhaustive()
    }
}

fn invalid(reason: &'static str) -> Error {
    Error::InvalidSa { reason }
}

impl Sa {
    /// Builds the transform; key lengths are checked by `opensec` (the
    /// error names the expected length).
    pub fn new(mut params: SaParams) -> Result<Sa, Error> {
        match params.protocol {
            Protocol::Ah => {
                if params.enc != EncAlgorithm::Null {
                    return Err(invalid("AH has no encryption algorithm"));
                }
                if params.auth == AuthAlgorithm::Null {
                    return Err(invalid("AH needs an integrity algorithm"));
                }
                if params.udp_encap.is_some() {
                    return Err(invalid("UDP encapsulation (RFC 3948) is for ESP only"));
                }
            }
            Protocol::Esp => {
                // RFC 4303 §3.2: encryption and integrity MUST NOT both be NULL.
                if params.enc == EncAlgorithm::Null && params.auth == AuthAlgorithm::Null {
                    return Err(invalid("ESP with NULL encryption and no integrity"));
                }
            }
        }
        if params.mode == Mode::Tunnel && params.src.is_ipv4() != params.dst.is_ipv4() {
            return Err(Error::AddressFamilyMismatch);
        }
        if !params.esn && params.seq > u64::from(u32::MAX) {
            return Err(invalid("sequence number above 2^32-1 without ESN"));
        }
        // RFC 4303 §3.4.3: the anti-replay service MUST NOT be enabled
        // without integrity (a forged sequence number would move the
        // window and lock the real packets out).
        let window = if params.protocol == Protocol::Esp && params.auth == AuthAlgorithm::Null {
            0
        } else {
            params.replay_window
        };
        let replay = ReplayWindow::starting_at(window, params.seq)?;
        let enc_key = core::mem::take(&mut params.enc_key);
        let auth_key = core::mem::take(&mut params.auth_key);
        let built = (|| {
            let cipher = Cipher::new(params.enc, &enc_key)?;
            let integrity = match params.auth {
                AuthAlgorithm::Null => {
                    if !auth_key.is_empty() {
                        return Err(invalid("key given for NULL integrity"));
                    }
                    None
                }
                a => Some(Integrity::new(a, &auth_key)?),
            };
            if integrity
                .as_ref()
                .is_some_and(|i| i.icv_len() > MAX_ICV_FIELD - 4)
            {
                return Err(invalid("ICV too long"));
            }
            Ok((cipher, integrity))
        })();
        let (cipher, integrity) = match built {
            Ok(v) => v,
            Err(e) => {
                let (mut k1, mut k2) = (enc_key, auth_key);
                k1.zeroize();
                k2.zeroize();
                return Err(e);
            }
        };
        Ok(Sa {
            spi: params.spi,
            protocol: params.protocol,
            mode: params.mode,
            src: params.src,
            dst: params.dst,
            cipher,
            integrity,
            enc_key,
            auth_key,
            esn: params.esn,
            udp_encap: params.udp_encap,
            tx: Arc::new(Mutex::new(Tx {
                seq: params.seq,
                sent: Traffic::default(),
                reserved: u64::MAX,
            })),
            rx: Arc::new(Mutex::new(Rx {
                window: replay,
                received: Traffic::default(),
            })),
        })
    }

    /// Makes this SA continue `old` (setkey `update`: the same SA with new
    /// parameters): the outbound sequence counter is shared, so no number
    /// is sent twice even by a thread still using `old`, and so is the
    /// replay window when its size is unchanged (otherwise a new window
    /// starts at `old`'s highest received number).
    pub fn carry_state_from(&mut self, old: &Sa) {
        self.tx = Arc::clone(&old.tx);
        let size = self.replay_window();
        if old.replay_window() == size {
            self.rx = Arc::clone(&old.rx);
        } else {
            let old_rx = old.rx();
            if let Ok(window) = ReplayWindow::starting_at(size, old_rx.window.top()) {
                self.rx = Arc::new(Mutex::new(Rx {
                    window,
                    received: old_rx.received,
                }));
            }
        }
    }

    // A panic while holding these locks cannot leave the state half
    // updated (nothing in the critical sections panics), so a poisoned
    // lock is usable.
    fn tx(&self) -> MutexGuard<'_, Tx> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rx(&self) -> MutexGuard<'_, Rx> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the SA has sent.
    pub fn sent(&self) -> Traffic {
        self.tx().sent
    }

    /// What the SA has received (and accepted).
    pub fn received(&self) -> Traffic {
        self.rx().received
    }

    /// SPI.
    pub fn spi(&self) -> Spi {
        self.spi
    }
    /// ESP or AH.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
    /// Transport or tunnel.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Source address (tunnel source in tunnel mode).
    pub fn src(&self) -> IpAddr {
        self.src
    }
    /// Destination address (tunnel destination in tunnel mode).
    pub fn dst(&self) -> IpAddr {
        self.dst
    }
    /// Encryption algorithm.
    pub fn enc(&self) -> EncAlgorithm {
        self.cipher.algorithm()
    }
    /// Integrity algorithm.
    pub fn auth(&self) -> AuthAlgorithm {
        self.integrity
            .as_ref()
            .map_or(AuthAlgorithm::Null, |i| i.algorithm())
    }
    /// Replay window size in packets (0 = no check).
    pub fn replay_window(&self) -> u32 {
        self.rx().window.size()
    }
    /// Whether extended sequence numbers are used.
    pub fn esn(&self) -> bool {
        self.esn
    }
    /// RFC 3948 UDP encapsulation ports, if any.
    pub fn udp_encap(&self) -> Option<UdpEncap> {
        self.udp_encap
    }
    /// The last sequence number sent (0 before the first packet).
    pub fn seq(&self) -> u64 {
        self.tx().seq
    }
    /// Inbound replay state for printing: (highest sequence number
    /// received, window size in packets).
    pub fn replay_state(&self) -> (u64, u32) {
        let r = self.rx();
        (r.window.top(), r.window.size())
    }
    /// A copy of the inbound anti-replay window.
    pub fn replay(&self) -> ReplayWindow {
        self.rx().window.clone()
    }
    /// Encryption key (for the `setkey -D` printer only).
    pub fn enc_key(&self) -> &[u8] {
        &self.enc_key
    }
    /// Integrity key (for the `setkey -D` printer only).
    pub fn auth_key(&self) -> &[u8] {
        &self.auth_key
    }

    fn icv_len(&self) -> usize {
        self.integrity.as_ref().map_or(0, |i| i.icv_len())
    }

    /// RFC 4303 §2.4: the plaintext (payload, padding, Pad Length, Next
    /// Header) is a multiple of the block size and ends on a 4-byte boundary.
    fn pad_align(&self) -> usize {
        self.cipher.block_size().max(4)
    }

    /// Offset of the ESP Payload Data from the start of the ESP header
    /// (header + IV), for [`Sa::encap_esp`].
    pub fn esp_payload_offset(&self) -> usize {
        ESP_HEADER_LEN + self.cipher.iv_len()
    }

    fn outer_header_len(&self) -> usize {
        if self.src.is_ipv4() {
            IPV4_HEADER_LEN
        } else {
            IPV6_HEADER_LEN
        }
    }

    /// The most bytes [`Sa::encap`] adds to a packet: the tailroom the
    /// caller's buffer must have after the plaintext packet.
    pub fn max_overhead(&self) -> usize {
        self.headroom() + self.tailroom()
    }

    fn seq_limit(&self) -> u64 {
        if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    /// Takes the sequence number the next packet carries and counts the
    /// packet; the SA stops before the counter would cycle (RFC 4303
    /// §3.3.3, RFC 4302 §3.3.2).
    fn take_seq(&self, bytes: usize) -> Result<(u64, Traffic), Error> {
        let limit = self.seq_limit();
        let mut t = self.tx();
        if t.seq >= limit {
            return Err(Error::SequenceNumberOverflow { seq: t.seq });
        }
        if t.seq >= t.reserved {
            return Err(Error::SequenceNotReserved { seq: t.seq });
        }
        t.seq += 1;
        t.sent.packets = t.sent.packets.saturating_add(1);
        t.sent.bytes = t.sent.bytes.saturating_add(bytes as u64);
        Ok((t.seq, t.sent))
    }

    /// Gives back a sequence number taken for a packet that then failed,
    /// unless another packet took the next one meanwhile (a gap in the
    /// numbers is harmless; a repeat would not be), and uncounts it.
    fn return_seq(&self, seq: u64, bytes: usize) {
        let mut t = self.tx();
        if t.seq == seq {
            t.seq -= 1;
        }
        t.sent.packets = t.sent.packets.saturating_sub(1);
        t.sent.bytes = t.sent.bytes.saturating_sub(bytes as u64);
    }

    /// Whether sending one more packet would make the counter cycle.
    pub fn exhausted(&self) -> bool {
        self.seq() >= self.seq_limit()
    }

    /// Lets the SA send sequence numbers up to `seq` and no further (a
    /// caller that records, before they are used, the numbers an SA may
    /// send, so that a restart never sends one twice; `u64::MAX`: no
    /// limit, the default). Past it, protecting fails with
    /// [`Error::SequenceNotReserved`] until more is reserved.
    pub fn reserve_up_to(&self, seq: u64) {
        self.tx().reserved = seq;
    }

    /// The highest sequence number the SA may send ([`Sa::reserve_up_to`]).
    pub fn reserved(&self) -> u64 {
        self.tx().reserved
    }

    /// Continues an SA that lived before (the same SA installed again
    /// after a restart): the next number sent is above `sent`, and
    /// received numbers up to `received` count as seen (the replay window
    /// starts there). Never moves either backwards.
    pub fn resume(&self, sent: u64, received: u64) {
        {
            let mut t = self.tx();
            t.seq = t.seq.max(sent.min(self.seq_limit()));
        }
        let mut r = self.rx();
        if received > r.window.top() {
            if let Ok(w) = ReplayWindow::starting_at(r.window.size(), received) {
                r.window = w;
            }
        }
    }

    /// A fingerprint of the SA's identity and keys: HMAC-SHA-256 under
    /// `salt` of the SPI, protocol, mode, addresses, algorithms and keys,
    /// truncated to 16 bytes. It tells whether an SA installed again is the
    /// same SA (same keys) without storing the keys.
    pub fn fingerprint(&self, salt: &[u8]) -> [u8; 16] {
        let mut m = Vec::with_capacity(128);
        m.extend_from_slice(&self.spi.0.to_be_bytes());
        m.push(self.protocol.number());
        m.push(match self.mode {
            Mode::Transport => 0,
            Mode::Tunnel => 1,
        });
        for a in [self.src, self.dst] {
            match a {
                IpAddr::V4(v) => m.extend_from_slice(&v.octets()),
                IpAddr::V6(v) => m.extend_from_slice(&v.octets()),
            }
        }
        m.extend_from_slice(self.enc().setkey_name().as_bytes());
        m.extend_from_slice(&(self.enc_key.len() as u32).to_be_bytes());
        m.extend_from_slice(&self.enc_key);
        m.extend_from_slice(self.auth().setkey_name().as_bytes());
        m.extend_from_slice(&(self.auth_key.len() as u32).to_be_bytes());
        m.extend_from_slice(&self.auth_key);
        let mac = opensec::hmac_sha256(salt, &m);
        m.zeroize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&mac[..16]);
        out
    }

    fn seq_hi(&self, seq: u64) -> Option<[u8; 4]> {
        // RFC 4303 §2.2.1 / RFC 4302 §2.5.1: only the low 32 bits are sent;
        // the high 32 bits enter the ICV computation.
        self.esn.then(|| ((seq >> 32) as u32).to_be_bytes())
    }

    /// Outbound processing (RFC 4303 §3.3, RFC 4302 §3.3) of the IP packet
    /// at `buf[..pkt_len]`, in place (tailroom form: the payload moves
    /// forward). `buf` needs [`Sa::max_overhead`] bytes of tailroom after
    /// `pkt_len`. Returns the length of the protected packet at
    /// `buf[..len]`. On error the SA is unchanged (no sequence number used).
    pub fn encap(
        &self,
        buf: &mut [u8],
        pkt_len: usize,
        iv: &mut impl IvSource,
    ) -> Result<usize, Error> {
        self.protect(buf, 0..pkt_len, iv).map(|e| e.range.end)
    }

    /// Outbound processing of the IP packet at `buf[pkt]` (headroom form).
    /// With `pkt.start >= headroom()` and `buf.len() - pkt.end >= tailroom()`
    /// only the IP header (transport mode) moves back and nothing of the
    /// payload moves; with less headroom the payload is moved forward
    /// instead, which then needs the extra room after `pkt.end`. Returns
    /// where the protected packet is. On error the SA is unchanged.
    pub fn encap_range(
        &self,
        buf: &mut [u8],
        pkt: Range<usize>,
        iv: &mut impl IvSource,
    ) -> Result<Range<usize>, Error> {
        self.protect(buf, pkt, iv).map(|e| e.range)
    }

    /// [`Sa::encap_range`], also returning the sequence number used and the
    /// bytes the SA protected (see [`Encapped`]).
    pub fn protect(
        &self,
        buf: &mut [u8],
        pkt: Range<usize>,
        iv: &mut impl IvSource,
    ) -> Result<Encapped, Error> {
        let plain = buf.get(pkt.clone()).ok_or(Error::BufferTooSmall {
            needed: pkt.end,
            got: buf.len(),
        })?;
        let headers = wire::parse(plain)?;
        self.protect_parsed(buf, pkt, &headers, iv)
    }

    /// [`Sa::protect`] of a packet whose headers the caller already walked
    /// (`headers` is `wire::parse(&buf[pkt])`), so they are not walked
    /// twice.
    pub fn protect_parsed(
        &self,
        buf: &mut [u8],
        pkt: Range<usize>,
        headers: &wire::IpHeaders,
        iv: &mut impl IvSource,
    ) -> Result<Encapped, Error> {
        if buf.len() < pkt.end {
            return Err(Error::BufferTooSmall {
                needed: pkt.end,
                got: buf.len(),
            });
        }
        let plan = self.plan(headers)?;
        let new_total = plan.keep + plan.insert + plan.payload_len + plan.append;
        let ip_len = match plan.chain.version {
            IpVersion::V4 => new_total,
            IpVersion::V6 => new_total.saturating_sub(IPV6_HEADER_LEN),
        };
        if ip_len > usize::from(u16::MAX) {
            return Err(Error::PacketTooLong { len: new_total });
        }
        let out_start = pkt.start - pkt.start.min(plan.insert);
        let out_end = out_start + new_total;
        if out_end > buf.len() {
            return Err(Error::BufferTooSmall {
                needed: out_end,
                got: buf.len(),
            });
        }
        // Layout: what stays in front (transport: the IP header and the
        // extension headers kept before ESP/AH) goes to `out_start`, the
        // payload (transport: the upper layer; tunnel: the whole packet) to
        // just after the inserted headers. The two moves go in opposite
        // directions, so neither overwrites the other's source.
        let (seq, sent) = self.take_seq(plan.payload_len)?;
        let payload_from = pkt.start + plan.keep;
        let payload_to = out_start + plan.keep + plan.insert;
        buf.copy_within(payload_from..payload_from + plan.payload_len, payload_to);
        buf.copy_within(pkt.start..pkt.start + plan.keep, out_start);
        let out = buf.get_mut(out_start..out_end).unwrap_or(&mut []);
        let filled = match self.protocol {
            Protocol::Esp => self.esp_fill(out, &plan, seq, iv),
            Protocol::Ah => self.ah_fill(out, &plan, seq),
        };
        if let Err(e) = filled {
            self.return_seq(seq, plan.payload_len);
            return Err(e);
        }
        Ok(Encapped {
            range: out_start..out_end,
            seq,
            payload_len: plan.payload_len,
            header_len: match self.mode {
                Mode::Transport => plan.keep,
                Mode::Tunnel => plan.chain.header_len,
            },
            sent,
        })
    }

    /// Bytes [`Sa::encap_range`] inserts in front of the payload at most
    /// (outer header, UDP header, ESP header + IV or AH).
    pub fn headroom(&self) -> usize {
        let outer = match self.mode {
            Mode::Tunnel => self.outer_header_len(),
            Mode::Transport => 0,
        };
        outer
            + self.udp_len()
            + match self.protocol {
                Protocol::Esp => self.esp_payload_offset(),
                Protocol::Ah => AH_FIXED_LEN + ah::icv_field_len(self.icv_len(), IpVersion::V6),
            }
    }

    /// Bytes [`Sa::encap_range`] appends after the payload at most (ESP
    /// padding, Pad Length, Next Header, ICV; nothing for AH).
    pub fn tailroom(&self) -> usize {
        match self.protocol {
            Protocol::Esp => self.pad_align() + 1 + self.icv_len(),
            Protocol::Ah => 0,
        }
    }

    /// Where everything goes for one outbound packet.
    fn plan(&self, h: &wire::IpHeaders) -> Result<Plan, Error> {
        let (chain, keep, payload_len, next_header, tos) = match self.mode {
            Mode::Transport => {
                // RFC 4303 §3.1.1: transport mode applies to whole datagrams.
                if h.fragment != wire::Fragment::No {
                    return Err(Error::Fragment);
                }
                let c = h.outbound;
                // RFC 4303 §2.6: Next Header 59 marks a dummy packet, which
                // the receiver discards; such a datagram cannot be carried.
                if self.protocol == Protocol::Esp && c.next_header == proto::NO_NEXT_HEADER {
                    return Err(Error::NoNextHeader);
                }
                (
                    c,
                    c.header_len,
                    c.total_len - c.header_len,
                    c.next_header,
                    0,
                )
            }
            Mode::Tunnel => {
                // RFC 4303 §3.1.2 / RFC 4302 §3.1.2: the whole inner packet is
                // the payload; the outer header is built from the SA.
                let (version, inner_len, tos) = (h.version, h.total_len, h.tos);
                let nh = match version {
                    IpVersion::V4 => proto::IPV4,
                    IpVersion::V6 => proto::IPV6,
                };
                let (version, nh_offset, hl) = match self.src {
                    IpAddr::V4(_) => (IpVersion::V4, 9, IPV4_HEADER_LEN),
                    IpAddr::V6(_) => (IpVersion::V6, 6, IPV6_HEADER_LEN),
                };
                let c = HeaderChain {
                    version,
                    header_len: hl,
                    nh_offset,
                    next_header: nh,
                    total_len: 0,
                };
                (c, 0, inner_len, nh, tos)
            }
        };
        let outer = match self.mode {
            Mode::Tunnel => chain.header_len,
            Mode::Transport => 0,
        };
        let (insert, append, pad) = match self.protocol {
            Protocol::Esp => {
                let (pad, esp_len) = self.esp_lengths(payload_len);
                let insert = self.esp_payload_offset();
                (
                    outer + self.udp_len() + insert,
                    esp_len - insert - payload_len,
                    pad,
                )
            }
            Protocol::Ah => (
                outer + AH_FIXED_LEN + ah::icv_field_len(self.icv_len(), chain.version),
                0,
                0,
            ),
        };
        Ok(Plan {
            chain,
            keep,
            insert,
            payload_len,
            append,
            pad,
            next_header,
            tos,
        })
    }

    /// ESP (RFC 4303 §3.3) on a laid-out packet: `out` starts with the
    /// kept IP header (transport) or room for the outer one (tunnel).
    fn esp_fill(
        &self,
        out: &mut [u8],
        plan: &Plan,
        seq: u64,
        iv: &mut impl IvSource,
    ) -> Result<(), Error> {
        let hl = match self.mode {
            Mode::Transport => plan.keep,
            Mode::Tunnel => plan.chain.header_len,
        };
        let esp_off = hl + self.udp_len();
        self.esp_seal(
            out,
            esp_off,
            plan.payload_len,
            plan.pad,
            plan.next_header,
            seq,
            iv,
        )?;
        let chain = match self.mode {
            Mode::Transport => plan.chain,
            Mode::Tunnel => self.emit_outer(out, plan.tos, seq)?,
        };
        let total = out.len();
        self.finish_outer(out, &chain, hl, total)
    }

    /// AH (RFC 4302 §3.3) on a laid-out packet.
    fn ah_fill(&self, out: &mut [u8], plan: &Plan, seq: u64) -> Result<(), Error> {
        let icv_len = self.icv_len();
        let (chain, hl) = match self.mode {
            Mode::Transport => (plan.chain, plan.keep),
            Mode::Tunnel => (self.emit_outer(out, plan.tos, seq)?, plan.chain.header_len),
        };
        let ah_len = AH_FIXED_LEN + ah::icv_field_len(icv_len, chain.version);
        let new_total = out.len();
        // RFC 4302 §2: Next Header, Payload Len (in 32-bit words, minus 2),
        // Reserved, SPI, Sequence Number, ICV (zero while computing).
        let hdr = out.get_mut(hl..hl + ah_len).ok_or(Error::BufferTooSmall {
            needed: hl + ah_len,
            got: new_total,
        })?;
        hdr.fill(0);
        hdr[0] = plan.next_header;
        hdr[1] = (ah_len / 4 - 2) as u8;
        hdr[4..8].copy_from_slice(&self.spi.0.to_be_bytes());
        hdr[8..12].copy_from_slice(&(seq as u32).to_be_bytes());
        if let Some(b) = out.get_mut(chain.nh_offset) {
            *b = proto::AH;
        }
        wire::fix_ip_length(out, chain.version, new_total)?;
        let mut icv = [0u8; MAX_ICV_FIELD];
        {
            let pkt: &[u8] = out;
            let scratch = Scratch::new(pkt, chain.version, hl, ah_len, icv_len, true)?;
            let hi = self.seq_hi(seq);
            let parts = scratch.parts(pkt, chain.version, hl, new_total, hi.as_ref())?;
            if let Some(i) = &self.integrity {
                i.compute(parts.as_slice(), &mut icv)?;
            }
        }
        if let (Some(dst), Some(src)) = (
            out.get_mut(hl + AH_FIXED_LEN..hl + AH_FIXED_LEN + icv_len),
            icv.get(..icv_len),
        ) {
            dst.copy_from_slice(src);
        }
        Ok(())
    }

    /// ESP alone (for callers that frame it themselves, e.g. on an RFC 3948
    /// UDP socket): the Payload Data is at
    /// `buf[esp_payload_offset()..][..payload_len]`; the ESP packet (header,
    /// IV, ciphertext, ICV) is written to `buf[..len]`, `len` returned.
    pub fn encap_esp(
        &self,
        buf: &mut [u8],
        payload_len: usize,
        next_header: u8,
        iv: &mut impl IvSource,
    ) -> Result<usize, Error> {
        if self.protocol != Protocol::Esp {
            return Err(invalid("encap_esp on an AH SA"));
        }
        let (pad, esp_len) = self.esp_lengths(payload_len);
        if esp_len > buf.len() {
            return Err(Error::BufferTooSmall {
                needed: esp_len,
                got: buf.len(),
            });
        }
        let (seq, _) = self.take_seq(payload_len)?;
        if let Err(e) = self.esp_seal(buf, 0, payload_len, pad, next_header, seq, iv) {
            self.return_seq(seq, payload_len);
            return Err(e);
        }
        Ok(esp_len)
    }

    /// (padding length, ESP packet length) for a payload.
    fn esp_lengths(&self, payload_len: usize) -> (usize, usize) {
        // RFC 4303 §2.4: padding to the block size and a 4-byte boundary.
        let align = self.pad_align();
        let padded = (payload_len + 2).div_ceil(align) * align;
        let pad = padded - payload_len - 2;
        (pad, self.esp_payload_offset() + padded + self.icv_len())
    }

    fn udp_len(&self) -> usize {
        if self.udp_encap.is_some() {
            UDP_HEADER_LEN
        } else {
            0
        }
    }

    /// Sets the protocol byte, the UDP header (RFC 3948) and IP lengths.
    fn finish_outer(
        &self,
        buf: &mut [u8],
        chain: &HeaderChain,
        hl: usize,
        new_total: usize,
    ) -> Result<(), Error> {
        let outer_proto = if self.udp_encap.is_some() {
            proto::UDP
        } else {
            self.protocol.number()
        };
        if let Some(b) = buf.get_mut(chain.nh_offset) {
            *b = outer_proto;
        }
        wire::fix_ip_length(buf, chain.version, new_total)?;
        if let Some(u) = self.udp_encap {
            write_udp(buf, chain.version, hl, new_total, u);
        }
        Ok(())
    }

    /// Writes the tunnel's outer IP header (RFC 4301 §5.1.2: TOS/traffic
    /// class copied from the inner header; lengths fixed afterwards).
    fn emit_outer(&self, buf: &mut [u8], tos: u8, seq: u64) -> Result<HeaderChain, Error> {
        let p = self.protocol.number();
        Ok(match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                // Identification: the low 16 bits of the sequence number are
                // unique enough within the reassembly lifetime (no clock here).
                wire::emit_ipv4_header(buf, tos, 0, seq as u16, p, s, d);
                HeaderChain {
                    version: IpVersion::V4,
                    header_len: IPV4_HEADER_LEN,
                    nh_offset: 9,
                    next_header: p,
                    total_len: 0,
                }
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                wire::emit_ipv6_header(buf, tos, 0, p, s, d);
                HeaderChain {
                    version: IpVersion::V6,
                    header_len: IPV6_HEADER_LEN,
                    nh_offset: 6,
                    next_header: p,
                    total_len: 0,
                }
            }
            _ => return Err(Error::AddressFamilyMismatch),
        })
    }

    /// Builds the ESP packet at `buf[esp_off..]` around the Payload Data
    /// already at `esp_off + esp_payload_offset()` (RFC 4303 §3.3.2.1):
    /// padding 1, 2, 3, … (§2.4), Pad Length, Next Header, encryption with
    /// a fresh IV, then the ICV over header, IV and ciphertext (+ ESN high
    /// bits, §2.2.1).
    #[allow(clippy::too_many_arguments)]
    fn esp_seal(
        &self,
        buf: &mut [u8],
        esp_off: usize,
        payload_len: usize,
        pad: usize,
        next_header: u8,
        seq: u64,
        iv: &mut impl IvSource,
    ) -> Result<(), Error> {
        let iv_len = self.cipher.iv_len();
        let pt_start = esp_off + ESP_HEADER_LEN + iv_len;
        let pt_end = pt_start + payload_len + pad + 2;
        let icv_end = pt_end + self.icv_len();
        let esp = buf.get_mut(esp_off..icv_end).ok_or(Error::BufferTooSmall {
            needed: icv_end,
            got: 0,
        })?;
        let (hdr, rest) = esp.split_at_mut(ESP_HEADER_LEN + iv_len);
        let (pt, _icv) = rest.split_at_mut(payload_len + pad + 2);
        let (_, trailer) = pt.split_at_mut(payload_len);
        for (i, b) in trailer.iter_mut().take(pad).enumerate() {
            *b = (i + 1) as u8;
        }
        if let [.., pl, nh] = trailer {
            *pl = pad as u8;
            *nh = next_header;
        }
        let (esp_hdr, iv_bytes) = hdr.split_at_mut(ESP_HEADER_LEN);
        esp_hdr[..4].copy_from_slice(&self.spi.0.to_be_bytes());
        esp_hdr[4..].copy_from_slice(&(seq as u32).to_be_bytes());
        iv.fill_iv(iv_bytes);
        self.cipher.encrypt_cbc(iv_bytes, pt)?;
        if let Some(integrity) = &self.integrity {
            let (authed, icv) = esp.split_at_mut(pt_end - esp_off);
            match self.seq_hi(seq) {
                Some(hi) => integrity.compute(&[authed, &hi], icv)?,
                None => integrity.compute(&[authed], icv)?,
            }
        }
        Ok(())
    }

    /// Inbound processing (RFC 4303 §3.4, RFC 4302 §3.4) of the protected IP
    /// packet at the start of `buf` (its IP length says where it ends), in
    /// place. The ICV is verified first (constant time), then the replay
    /// window, then (ESP) decryption and padding; the window is updated only
    /// when everything passed. Any error leaves the SA unchanged.
    pub fn decap(&self, buf: &mut [u8]) -> Result<Decapped, Error> {
        let chain = wire::locate_inbound(buf)?;
        self.decap_located(buf, &chain)
    }

    /// [`Sa::decap`] of a packet whose IPsec header the caller already
    /// located (`chain` is `wire::locate_inbound(buf)`), so the headers are
    /// not walked twice.
    pub fn decap_located(&self, buf: &mut [u8], chain: &HeaderChain) -> Result<Decapped, Error> {
        if chain.total_len > buf.len()
            || chain.header_len > chain.total_len
            || chain.nh_offset >= chain.header_len.max(1)
        {
            return Err(Error::Truncated {
                what: "IP packet",
                needed: chain.total_len,
                got: buf.len(),
            });
        }
        match self.protocol {
            Protocol::Esp => self.esp_decap(buf, chain),
            Protocol::Ah => self.ah_decap(buf, chain),
        }
    }

    fn esp_decap(&self, buf: &mut [u8], chain: &HeaderChain) -> Result<Decapped, Error> {
        let hl = chain.header_len;
        let total = chain.total_len;
        let udp = if self.udp_encap.is_some() {
            if chain.next_header != proto::UDP {
                return Err(Error::NotUdpEncapsulated {
                    found: chain.next_header,
                });
            }
            crate::udp::check_esp_in_udp(buf.get(hl..total).unwrap_or(&[]))?;
            UDP_HEADER_LEN
        } else {
            if chain.next_header != proto::ESP {
                return Err(Error::NotIpsec {
                    expected: Protocol::Esp,
                    found: chain.next_header,
                });
            }
            0
        };
        let esp_off = hl + udp;
        let esp = buf.get_mut(esp_off..total).ok_or(Error::Truncated {
            what: "ESP",
            needed: total,
            got: 0,
        })?;
        let d = self.esp_open(esp)?;
        let start = esp_off + d.range.start;
        let end = esp_off + d.range.end;
        Ok(match self.mode {
            Mode::Tunnel => Decapped {
                range: start..end,
                ..d
            },
            Mode::Transport => {
                // Move the IP header (and extension headers) forward over the
                // removed UDP/ESP header and IV, restore the Next Header.
                let shift = start - hl;
                buf.copy_within(..hl, shift);
                let pkt = buf.get_mut(shift..end).unwrap_or(&mut []);
                if let Some(b) = pkt.get_mut(chain.nh_offset) {
                    *b = d.next_header;
                }
                wire::fix_ip_length(pkt, chain.version, end - shift)?;
                Decapped {
                    range: shift..end,
                    ..d
                }
            }
        })
    }

    /// ESP alone: `esp` holds one ESP packet (SPI … ICV) exactly. On success
    /// the Payload Data is `esp[range]` (the inner packet in tunnel mode).
    pub fn decap_esp(&self, esp: &mut [u8]) -> Result<Decapped, Error> {
        if self.protocol != Protocol::Esp {
            return Err(invalid("decap_esp on an AH SA"));
        }
        self.esp_open(esp)
    }

    /// Records `seq` as received once the packet passed every check
    /// (RFC 4303 §3.4.3: "the receive window is updated only if the
    /// integrity verification succeeds"). The window is checked again
    /// under the same lock: another thread may have accepted the same
    /// number since the first check.
    fn accept_seq(&self, seq: u64, bytes: usize) -> Result<Traffic, Error> {
        let mut r = self.rx();
        r.window.check(seq)?;
        r.window.update(seq);
        r.received.packets = r.received.packets.saturating_add(1);
        r.received.bytes = r.received.bytes.saturating_add(bytes as u64);
        Ok(r.received)
    }

    fn header_seq(&self, seql: u32) -> Result<u64, Error> {
        if !self.esn {
            return Ok(u64::from(seql));
        }
        // RFC 4303 Appendix A2.2.
        let r = self.rx();
        r.window.infer_esn(seql).ok_or(Error::SequenceTooOld {
            seq: u64::from(seql),
            top: r.window.top(),
            window: r.window.size(),
        })
    }

    fn esp_open(&self, esp: &mut [u8]) -> Result<Decapped, Error> {
        let iv_len = self.cipher.iv_len();
        let icv_len = self.icv_len();
        let block = self.cipher.block_size();
        let min = ESP_HEADER_LEN + iv_len + block.max(2) + icv_len;
        if esp.len() < min {
            return Err(Error::Truncated {
                what: "ESP packet",
                needed: min,
                got: esp.len(),
            });
        }
        let hdr = esp.get(..ESP_HEADER_LEN).unwrap_or(&[0; ESP_HEADER_LEN]);
        let spi = Spi(u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]));
        if spi != self.spi {
            return Err(Error::SpiMismatch {
                expected: self.spi,
                found: spi,
            });
        }
        let seq = self.header_seq(u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]))?;
        let ct_end = esp.len() - icv_len;
        // RFC 4303 §3.4.4.1: the ICV first, in constant time.
        if let Some(integrity) = &self.integrity {
            let (authed, icv) = esp.split_at(ct_end);
            let ok = match self.seq_hi(seq) {
                Some(hi) => integrity.verify(&[authed, &hi], icv),
                None => integrity.verify(&[authed], icv),
            };
            if !ok {
                return Err(Error::IcvMismatch { seq });
            }
        }
        // RFC 4303 §3.4.3: then the replay window (not updated yet).
        self.rx().window.check(seq)?;
        let (head, tail) = esp.split_at_mut(ESP_HEADER_LEN + iv_len);
        let iv = head.get(ESP_HEADER_LEN..).unwrap_or(&[]);
        let ct = tail
            .get_mut(..ct_end - ESP_HEADER_LEN - iv_len)
            .unwrap_or(&mut []);
        if ct.len() % block != 0 {
            return Err(Error::NotBlockAligned {
                block_size: block,
                len: ct.len(),
            });
        }
        self.cipher.decrypt_cbc(iv, ct)?;
        // RFC 4303 §2.4, §2.5: Pad Length, then the padding is 1, 2, 3, …
        let (pad_len, next_header) = match ct {
            [.., pl, nh] => (usize::from(*pl), *nh),
            _ => {
                return Err(Error::BadPadding {
                    reason: "no room for the ESP trailer",
                });
            }
        };
        let payload_len = ct.len().checked_sub(pad_len + 2).ok_or(Error::BadPadding {
            reason: "Pad Length exceeds the payload",
        })?;
        let pad = ct.get(payload_len..payload_len + pad_len).unwrap_or(&[]);
        if pad
            .iter()
            .enumerate()
            .any(|(i, &b)| usize::from(b) != i + 1)
        {
            return Err(Error::BadPadding {
                reason: "padding bytes are not 1, 2, 3, ...",
            });
        }
        // RFC 4303 §2.6: dummy packets are discarded.
        if next_header == proto::NO_NEXT_HEADER {
            return Err(Error::DummyPacket);
        }
        // RFC 4303 §3.1.2: tunnel mode carries an IP packet.
        if self.mode == Mode::Tunnel {
            check_inner(ct.get(..payload_len).unwrap_or(&[]), next_header)?;
        }
        let received = self.accept_seq(seq, payload_len)?;
        let start = ESP_HEADER_LEN + iv_len;
        Ok(Decapped {
            range: start..start + payload_len,
            next_header,
            seq,
            payload_len,
            received,
        })
    }

    fn ah_decap(&self, buf: &mut [u8], chain: &HeaderChain) -> Result<Decapped, Error> {
        if chain.next_header != proto::AH {
            return Err(Error::NotIpsec {
                expected: Protocol::Ah,
                found: chain.next_header,
            });
        }
        let hl = chain.header_len;
        let total = chain.total_len;
        let icv_len = self.icv_len();
        let fixed = buf.get(hl..hl + AH_FIXED_LEN).ok_or(Error::Truncated {
            what: "AH",
            needed: hl + AH_FIXED_LEN,
            got: total,
        })?;
        let next_header = fixed[0];
        // RFC 4302 §2.2: Payload Len is the AH length in 32-bit words minus 2.
        let ah_len = (usize::from(fixed[1]) + 2) * 4;
        let spi = Spi(u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]));
        let seql = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
        if ah_len < AH_FIXED_LEN + icv_len
            || ah_len > AH_FIXED_LEN + MAX_ICV_FIELD
            || hl + ah_len > total
        {
            return Err(Error::BadIpHeader {
                reason: "AH Payload Len does not fit the ICV or the packet",
            });
        }
        if spi != self.spi {
            return Err(Error::SpiMismatch {
                expected: self.spi,
                found: spi,
            });
        }
        let seq = self.header_seq(seql)?;
        {
            let pkt = buf.get(..total).unwrap_or(&[]);
            let scratch = Scratch::new(pkt, chain.version, hl, ah_len, icv_len, false)?;
            let hi = self.seq_hi(seq);
            let parts = scratch.parts(pkt, chain.version, hl, total, hi.as_ref())?;
            let icv = pkt
                .get(hl + AH_FIXED_LEN..hl + AH_FIXED_LEN + icv_len)
                .unwrap_or(&[]);
            // RFC 4302 §3.4.4: ICV verified in constant time.
            let ok = self
                .integrity
                .as_ref()
                .is_some_and(|i| i.verify(parts.as_slice(), icv));
            if !ok {
                return Err(Error::IcvMismatch { seq });
            }
        }
        self.rx().window.check(seq)?;
        if self.mode == Mode::Tunnel {
            check_inner(buf.get(hl + ah_len..total).unwrap_or(&[]), next_header)?;
        }
        let payload_len = total - hl - ah_len;
        let received = self.accept_seq(seq, payload_len)?;
        Ok(match self.mode {
            Mode::Tunnel => Decapped {
                range: hl + ah_len..total,
                next_header,
                seq,
                payload_len,
                received,
            },
            Mode::Transport => {
                buf.copy_within(..hl, ah_len);
                let pkt = buf.get_mut(ah_len..total).unwrap_or(&mut []);
                if let Some(b) = pkt.get_mut(chain.nh_offset) {
                    *b = next_header;
                }
                wire::fix_ip_length(pkt, chain.version, total - ah_len)?;
                Decapped {
                    range: ah_len..total,
                    next_header,
                    seq,
                    payload_len,
                    received,
                }
            }
        })
    }
}

/// The layout of one outbound packet.
struct Plan {
    /// Transport: the IP header chain of the plaintext; tunnel: the outer
    /// header to build (`header_len` is the outer header length).
    chain: HeaderChain,
    /// Bytes at the front of the plaintext that stay in front (transport:
    /// IP header + kept extension headers; tunnel: 0).
    keep: usize,
    /// Bytes inserted before the payload (outer header, UDP, ESP + IV, AH).
    insert: usize,
    /// The payload that gets protected.
    payload_len: usize,
    /// Bytes appended (ESP trailer + ICV).
    append: usize,
    /// ESP padding length.
    pad: usize,
    /// Next Header of the payload.
    next_header: u8,
    /// TOS / traffic class of the inner packet (tunnel mode).
    tos: u8,
}

/// Tunnel mode inbound: the Next Header names an IP packet of that
/// version that parses.
fn check_inner(inner: &[u8], next_header: u8) -> Result<(), Error> {
    let expected = match next_header {
        proto::IPV4 => IpVersion::V4,
        proto::IPV6 => IpVersion::V6,
        nh => return Err(Error::UnexpectedNextHeader { next_header: nh }),
    };
    match wire::ip_packet(inner)? {
        (v, ..) if v == expected => Ok(()),
        _ => Err(Error::BadIpHeader {
            reason: "inner IP version does not match the Next Header",
        }),
    }
}

/// RFC 3948 §2.1: UDP header in front of ESP. IPv4: checksum 0; IPv6 needs
/// a real checksum (RFC 8200 §8.1).
fn write_udp(buf: &mut [u8], version: IpVersion, off: usize, total: usize, u: UdpEncap) {
    let udp_len = total - off;
    if let Some(h) = buf.get_mut(off..off + UDP_HEADER_LEN) {
        h[0..2].copy_from_slice(&u.sport.to_be_bytes());
        h[2..4].copy_from_slice(&u.dport.to_be_bytes());
        h[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        h[6..8].copy_from_slice(&[0, 0]);
    }
    if version == IpVersion::V6 {
        let mut c = Checksum::new()
            .add_bytes(buf.get(8..40).unwrap_or(&[]))
            .add_bytes(&(udp_len as u32).to_be_bytes())
            .add_bytes(&[0, proto::UDP])
            .add_bytes(buf.get(off..total).unwrap_or(&[]))
            .finish();
        if c == 0 {
            c = 0xffff;
        }
        if let Some(h) = buf.get_mut(off + 6..off + 8) {
            h.copy_from_slice(&c.to_be_bytes());
        }
    }
}
