//! The Security Association Database (RFC 4301 §4.4.2).
//!
//! Entries are keyed by (destination, protocol, SPI), the triple an inbound
//! packet carries (RFC 4301 §4.1), in a hash map: lookup is O(1). The map is
//! a small index (a 24-byte key and a `u32` slot, hashed by a fast
//! non-cryptographic hasher, [`SadHasher`]) into a slab of boxed entries, so
//! a lookup touches a few cache lines of the index and one slot pointer,
//! never the (large) SAs it passes over. A second
//! index by (source, destination, protocol) makes outbound selection O(1) in
//! the number of SAs. Each entry holds the `ipsec_esp::Sa` transform (keys,
//! sequence number, replay window; keys zeroized on drop) and what the
//! databases add: reqid, lifetimes, counters, state and times.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};

use ipsec_esp::{Mode, Protocol, Sa, SaParams, Spi};

use crate::Error;
use crate::ast::ReqMode;
use crate::owner::Owner;
use crate::spd::{FlowCache, PacketSelector, SaRequest};
use crate::time::Timestamp;

/// The key of an SA: what an inbound packet names (RFC 4301 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaId {
    /// Destination address.
    pub dst: IpAddr,
    /// ESP or AH.
    pub protocol: Protocol,
    /// SPI.
    pub spi: Spi,
}

/// The setkey keyword of a protocol.
pub fn protocol_keyword(p: Protocol) -> &'static str {
    match p {
        Protocol::Esp => "esp",
        Protocol::Ah => "ah",
    }
}

impl SaId {
    fn not_found(&self) -> Error {
        Error::SaNotFound {
            pos: None,
            dst: self.dst,
            protocol: protocol_keyword(self.protocol),
            spi: self.spi.0,
        }
    }
}

/// One lifetime limit (RFC 2367 §2.3.5); 0 means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Limit {
    /// Seconds after creation (setkey `-lh`/`-ls`).
    pub secs: u64,
    /// Bytes processed (setkey `-bh`/`-bs`).
    pub bytes: u64,
}

/// Soft and hard lifetimes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Lifetimes {
    /// Past this the SA is dying: still used, a replacement should be made.
    pub soft: Limit,
    /// Past this the SA is removed.
    pub hard: Limit,
}

/// Per-SA counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counters {
    /// Packets processed.
    pub packets: u64,
    /// Bytes processed.
    pub bytes: u64,
    /// Inbound packets dropped by the replay check.
    pub replay_drops: u64,
    /// Inbound packets whose ICV did not verify.
    pub icv_failures: u64,
}

/// SA state as setkey prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SaState {
    /// Usable.
    Mature,
    /// Past its soft lifetime: usable, but a new SA is preferred.
    Dying,
    /// Past its hard lifetime: not usable, removed at the next `expire`.
    Dead,
}

impl SaState {
    fn from_u8(v: u8) -> SaState {
        match v {
            0 => SaState::Mature,
            1 => SaState::Dying,
            _ => SaState::Dead,
        }
    }

    /// `mature`, `dying` or `dead`.
    pub fn keyword(self) -> &'static str {
        match self {
            SaState::Mature => "mature",
            SaState::Dying => "dying",
            SaState::Dead => "dead",
        }
    }
}

/// What the databases know about an SA beyond its transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SaMeta {
    /// reqid (setkey `-u`), binding it to `unique:N` policies; 0 = none.
    pub reqid: u32,
    /// Lifetimes.
    pub lifetimes: Lifetimes,
    /// The replay window as setkey `-r` gave it, in bytes (printed as `replay=`).
    pub replay_bytes: u32,
    /// Whether the SA was installed as `esp-udp` (printed that way).
    pub esp_udp: bool,
}

/// What changes while an SA lives: counters, state, first use. Atomics,
/// so that packets on several threads count without a lock, and shared by
/// every copy of the entry (the snapshots of the databases that keep the
/// SA, and the entry that replaces it on `update`).
#[derive(Debug, Default)]
struct Live {
    packets: AtomicU64,
    bytes: AtomicU64,
    replay_drops: AtomicU64,
    icv_failures: AtomicU64,
    /// An [`SaState`].
    state: AtomicU8,
    /// Seconds of the first use, plus one (0: not used yet).
    first_used: AtomicU64,
    soft_notified: AtomicBool,
}

/// An SAD entry.
///
/// Entries are shared between snapshots of the databases (`Arc`); the
/// transform and the metadata never change, everything that does (counters,
/// state, sequence number, replay window) is atomic or behind the SA's own
/// small lock, so an entry is used through `&self` on any thread.
pub struct SaEntry {
    sa: Sa,
    meta: SaMeta,
    created: Timestamp,
    live: Arc<Live>,
    seq: u64,
    /// The inbound policy lookup of the last packet through this SA.
    in_policy: FlowCache,
    owner: Option<Owner>,
}

impl core::fmt::Debug for SaEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SaEntry")
            .field("id", &self.id())
            .field("meta", &self.meta)
            .field("state", &self.state())
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl SaEntry {
    /// An entry for a transform created at `now`.
    pub fn new(sa: Sa, meta: SaMeta, now: Timestamp) -> SaEntry {
        SaEntry {
            sa,
            meta,
            created: now,
            live: Arc::default(),
            seq: 0,
            in_policy: FlowCache::default(),
            owner: None,
        }
    }

    /// The entry tagged with `owner` (see [`crate::Databases::delete_owned`]).
    pub fn with_owner(mut self, owner: Option<Owner>) -> SaEntry {
        self.owner = owner;
        self
    }

    /// Where the SA comes in the order of insertion (with larval SAs).
    pub(crate) fn insertion_seq(&self) -> u64 {
        self.seq
    }

    /// The client that installed the SA, if it said.
    pub fn owner(&self) -> Option<&Owner> {
        self.owner.as_ref()
    }

    /// The cache of the inbound policy lookup for packets through this SA.
    pub(crate) fn in_policy_cache(&self) -> &FlowCache {
        &self.in_policy
    }

    /// The entry that replaces this one on setkey `update`: a new transform
    /// and metadata for the same SA, which continues its sequence numbers
    /// and replay window ([`Sa::carry_state_from`]) and keeps its creation
    /// time, counters and owner; the state is mature again.
    pub fn replaced_by(&self, mut sa: Sa, meta: SaMeta) -> SaEntry {
        sa.carry_state_from(&self.sa);
        self.live.state.store(SaState::Mature as u8, Relaxed);
        self.live.soft_notified.store(false, Relaxed);
        SaEntry {
            sa,
            meta,
            created: self.created,
            live: Arc::clone(&self.live),
            seq: self.seq,
            in_policy: FlowCache::default(),
            owner: self.owner.clone(),
        }
    }

    /// The key.
    pub fn id(&self) -> SaId {
        SaId {
            dst: self.sa.dst(),
            protocol: self.sa.protocol(),
            spi: self.sa.spi(),
        }
    }

    /// The transform.
    pub fn sa(&self) -> &Sa {
        &self.sa
    }

    /// reqid, lifetimes and setkey details.
    pub fn meta(&self) -> &SaMeta {
        &self.meta
    }

    /// reqid (0 = none).
    pub fn reqid(&self) -> u32 {
        self.meta.reqid
    }

    /// State.
    pub fn state(&self) -> SaState {
        SaState::from_u8(self.live.state.load(Relaxed))
    }

    /// Counters, as they are now: the traffic the transform counted in
    /// both directions (with its sequence numbers and replay window) plus
    /// what [`SaEntry::record_packet`] added.
    pub fn counters(&self) -> Counters {
        let l = &*self.live;
        let (tx, rx) = (self.sa.sent(), self.sa.received());
        Counters {
            packets: l
                .packets
                .load(Relaxed)
                .saturating_add(tx.packets)
                .saturating_add(rx.packets),
            bytes: self.bytes(),
            replay_drops: l.replay_drops.load(Relaxed),
            icv_failures: l.icv_failures.load(Relaxed),
        }
    }

    /// Bytes counted in both directions.
    fn bytes(&self) -> u64 {
        self.live
            .bytes
            .load(Relaxed)
            .saturating_add(self.sa.sent().bytes)
            .saturating_add(self.sa.received().bytes)
    }

    /// Creation time.
    pub fn created(&self) -> Timestamp {
        self.created
    }

    /// Time of first use (RFC 2367 `usetime`).
    pub fn first_used(&self) -> Option<Timestamp> {
        match self.live.first_used.load(Relaxed) {
            0 => None,
            t => Some(Timestamp(t - 1)),
        }
    }

    /// Counts a packet of which the SA protected `bytes` (the IP payload in
    /// transport mode, the inner IP packet in tunnel mode), processed at
    /// `now`. If a byte lifetime is crossed, the state changes at once (a
    /// dead SA is no longer selected); the event is reported by the next
    /// [`Sad::expire`].
    pub fn record_packet(&self, bytes: u64, now: Timestamp) -> SaState {
        let l = &*self.live;
        l.packets.fetch_add(1, Relaxed);
        l.bytes.fetch_add(bytes, Relaxed);
        self.note_traffic(self.bytes(), now)
    }

    /// After a packet the transform counted (its totals came back with the
    /// packet: no further lock or atomic write unless something changes):
    /// records the first use and applies byte lifetimes to `total` bytes.
    pub(crate) fn note_traffic(&self, total: u64, now: Timestamp) -> SaState {
        let l = &*self.live;
        if l.first_used.load(Relaxed) == 0 {
            let _ = l
                .first_used
                .compare_exchange(0, now.0.saturating_add(1), Relaxed, Relaxed);
        }
        let lt = self.meta.lifetimes;
        if lt.hard.bytes != 0 && total >= lt.hard.bytes {
            l.state.store(SaState::Dead as u8, Relaxed);
        } else if lt.soft.bytes != 0 && total >= lt.soft.bytes {
            let _ = l.state.compare_exchange(
                SaState::Mature as u8,
                SaState::Dying as u8,
                Relaxed,
                Relaxed,
            );
        }
        self.state()
    }

    /// Marks the SA dead at once (e.g. its sequence numbers are used up,
    /// RFC 4303 §3.3.3): it is no longer selected, and the next
    /// [`Sad::expire`] removes it with a hard event.
    pub fn mark_dead(&self) {
        self.live.state.store(SaState::Dead as u8, Relaxed);
    }

    /// Counts an inbound packet dropped by the replay check.
    pub fn record_replay_drop(&self) {
        self.live.replay_drops.fetch_add(1, Relaxed);
    }

    /// Counts an inbound packet whose ICV failed.
    pub fn record_icv_failure(&self) {
        self.live.icv_failures.fetch_add(1, Relaxed);
    }

    /// Whether the hard lifetime is reached at `now` (or the SA is dead):
    /// the SA must not be used (RFC 2367 §2.3.5). A time limit crossed here
    /// marks the SA dead at once, before [`Sad::expire`] removes it.
    /// Byte limits are applied as packets are counted, so this looks at the
    /// state and the time only (no lock).
    pub fn hard_expired(&self, now: Timestamp) -> bool {
        let hard = self.meta.lifetimes.hard;
        if self.state() == SaState::Dead {
            return true;
        }
        let expired = hard.secs != 0 && now.since(self.created) >= hard.secs;
        if expired {
            self.live.state.store(SaState::Dead as u8, Relaxed);
        }
        expired
    }

    fn soft_expired(&self, now: Timestamp) -> bool {
        let soft = self.meta.lifetimes.soft;
        self.state() == SaState::Dying
            || (soft.secs != 0 && now.since(self.created) >= soft.secs)
            || (soft.bytes != 0 && self.bytes() >= soft.bytes)
    }

    /// [`SaEntry::hard_expired`] with the byte limit checked against the
    /// counters too (for [`Sad::expire`], off the data path).
    fn hard_expired_now(&self, now: Timestamp) -> bool {
        let hard = self.meta.lifetimes.hard;
        if hard.bytes != 0 && self.bytes() >= hard.bytes {
            self.mark_dead();
        }
        self.hard_expired(now)
    }
}

/// How long a larval SA waits for the `update` that completes it when
/// `getspi` gives no `-lh` (Linux's XFRM_ACQ_EXPIRES).
pub const LARVAL_LIFETIME_SECS: u64 = 30;

/// The SPIs `getspi 0` picks from: all but the 0-255 RFC 4303 §2.1 reserves.
pub const SPI_RANGE: core::ops::RangeInclusive<u32> = 256..=u32::MAX;

/// A larval SA (setkey `getspi`, RFC 2367 SADB_GETSPI): an SPI held for an
/// SA whose keys are not known yet. It carries no traffic (a packet with
/// its SPI is an unknown SPI) and is completed by `update` or removed when
/// its lifetime ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Larval {
    /// The SA it will be.
    pub id: SaId,
    /// Source (an `update` must name the same).
    pub src: IpAddr,
    /// The mode `getspi -m` asked for (`None`: any).
    pub mode: Option<Mode>,
    /// `getspi -u`.
    pub reqid: u32,
    /// When it was made.
    pub created: Timestamp,
    /// Seconds it waits for its `update`.
    pub lifetime_secs: u64,
    /// The client that asked for it.
    pub owner: Option<Owner>,
    seq: u64,
}

impl Larval {
    /// A larval SA made at `now`.
    pub fn new(id: SaId, src: IpAddr, now: Timestamp) -> Larval {
        Larval {
            id,
            src,
            mode: None,
            reqid: 0,
            created: now,
            lifetime_secs: LARVAL_LIFETIME_SECS,
            owner: None,
            seq: 0,
        }
    }

    /// Whether its lifetime has ended at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        now.since(self.created) >= self.lifetime_secs
    }

    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }
}

/// Soft or hard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpireKind {
    /// Soft lifetime reached: the SA is now dying.
    Soft,
    /// Hard lifetime reached: the SA was removed.
    Hard,
    /// A larval SA (`getspi`) was not completed in time and was removed.
    Larval,
}

/// A lifetime event (RFC 2367 SADB_EXPIRE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExpireEvent {
    /// Which SA.
    pub id: SaId,
    /// Its reqid.
    pub reqid: u32,
    /// Soft or hard.
    pub kind: ExpireKind,
}

/// The inbound lookup key in the compact form the index stores: the
/// destination as two words (IPv4 in the low word of the second), the SPI,
/// and the protocol and address family in one byte. 24 bytes, compared with
/// a few integer compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IndexKey {
    addr: [u64; 2],
    spi: u32,
    tag: u8,
}

impl IndexKey {
    fn new(dst: IpAddr, protocol: Protocol, spi: Spi) -> IndexKey {
        let (addr, family) = match dst {
            IpAddr::V4(a) => ([0, u64::from(u32::from(a))], 0),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                ([(v >> 64) as u64, v as u64], 2)
            }
        };
        let proto = match protocol {
            Protocol::Esp => 0,
            Protocol::Ah => 1,
        };
        IndexKey {
            addr,
            spi: spi.0,
            tag: family | proto,
        }
    }

    fn of(id: &SaId) -> IndexKey {
        IndexKey::new(id.dst, id.protocol, id.spi)
    }
}

impl Hash for IndexKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // One word per key: the hasher then does a single finishing mix.
        let [hi, lo] = self.addr;
        let x = fold_mul(hi ^ 0x243f_6a88_85a3_08d3, lo ^ 0x1319_8a2e_0370_7344);
        state.write_u64(x ^ (u64::from(self.spi) << 8 | u64::from(self.tag)));
    }
}

/// The outbound selection key: (source, destination, protocol), in the
/// compact form of [`IndexKey`] (hashed the same fast way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PairKey {
    src: IndexKey,
    dst: IndexKey,
}

impl PairKey {
    fn new(src: IpAddr, dst: IpAddr, protocol: Protocol) -> PairKey {
        PairKey {
            src: IndexKey::new(src, protocol, Spi(0)),
            dst: IndexKey::new(dst, protocol, Spi(0)),
        }
    }
}

impl Hash for PairKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.src.hash(state);
        self.dst.hash(state);
    }
}

/// Folded multiply (the 128-bit product's halves XORed): every input bit
/// reaches both the high bits (hashbrown's control byte) and the low bits
/// (its bucket index).
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

/// The SAD index's hasher: a folded multiply, not SipHash.
///
/// It is not collision resistant, and need not be: the keys in the index
/// are SAs, and an SA's SPI is chosen by the receiver (RFC 4301 §4.1, RFC
/// 4303 §2.1) — this SAD, through whoever installs SAs — never by the
/// sender of packets. An attacker can only make lookups, which cost one
/// probe sequence whatever the key; it cannot insert keys chosen to collide
/// (hash flooding needs insertions).
#[derive(Clone, Copy, Debug, Default)]
pub struct SadHasher(u64);

impl Hasher for SadHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w.get_mut(..chunk.len())
                .unwrap_or(&mut [])
                .copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = fold_mul(self.0 ^ n ^ 0xa409_3822_299f_31d0, 0x082e_fa98_ec4e_6c89);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The SAD.
///
/// Cloning it is cheap in the entries (they are shared, `Arc`): a clone is
/// a snapshot of the set of SAs whose per-packet state stays shared.
#[derive(Debug, Default, Clone)]
pub struct Sad {
    // Compact index into `slots`: the probe touches small entries only; the
    // slab holds pointers, so finding an entry reads one pointer, not the SA.
    map: HashMap<IndexKey, u32, BuildHasherDefault<SadHasher>>,
    slots: Vec<Option<Arc<SaEntry>>>,
    free: Vec<u32>,
    // (src, dst, protocol) -> slots, for outbound selection.
    by_pair: HashMap<PairKey, Vec<u32>, BuildHasherDefault<SadHasher>>,
    // The same for SAs with a reqid, per reqid: a `unique:N` request
    // (each UE's policies have their own) reads only its SAs, not every
    // SA between two addresses (all of them, on one host's loopback).
    by_reqid: HashMap<(PairKey, u32), Vec<u32>, BuildHasherDefault<SadHasher>>,
    // UDP ports of ESP-in-UDP SAs (RFC 3948), with how many SAs use each.
    udp_ports: HashMap<u16, u32>,
    // SPIs held by `getspi` (not in `map`: they carry no traffic).
    larval: HashMap<SaId, Larval>,
    next_seq: u64,
}

fn to_mode(m: ReqMode) -> Mode {
    match m {
        ReqMode::Transport => Mode::Transport,
        ReqMode::Tunnel => Mode::Tunnel,
    }
}

impl Sad {
    /// An empty SAD.
    pub fn new() -> Self {
        Sad::default()
    }

    /// An empty SAD with room for `n` SAs (e.g. 100 000 for benchmarks).
    pub fn with_capacity(n: usize) -> Self {
        Sad {
            map: HashMap::with_capacity_and_hasher(n, BuildHasherDefault::default()),
            slots: Vec::with_capacity(n),
            free: Vec::new(),
            by_pair: HashMap::with_capacity_and_hasher(n, BuildHasherDefault::default()),
            by_reqid: HashMap::default(),
            udp_ports: HashMap::new(),
            larval: HashMap::new(),
            next_seq: 0,
        }
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no SAs.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether an SA or a larval SA holds this (destination, protocol, SPI).
    pub fn is_taken(&self, id: &SaId) -> bool {
        self.map.contains_key(&IndexKey::of(id)) || self.larval.contains_key(id)
    }

    /// An SPI no SA or larval SA to `dst` with `protocol` holds, picked at
    /// random in `range` (which should leave out 0-255, RFC 4303 §2.1): the
    /// SPI `getspi 0` gives. `random` supplies the randomness (e.g.
    /// `getrandom::u32`). Fails if every SPI of the range is taken.
    pub fn unused_spi(
        &self,
        dst: IpAddr,
        protocol: Protocol,
        range: core::ops::RangeInclusive<u32>,
        random: impl FnMut() -> u32,
    ) -> Result<Spi, Error> {
        pick_spi(range.clone(), random, |spi| {
            self.is_taken(&SaId { dst, protocol, spi })
        })
        .ok_or_else(|| no_free_spi(dst, protocol, &range))
    }

    /// Holds an SPI for an SA to come (setkey `getspi`). Fails if an SA
    /// or larval SA holds it.
    pub fn insert_larval(&mut self, mut larval: Larval) -> Result<SaId, Error> {
        let id = larval.id;
        if self.is_taken(&id) {
            return Err(Error::SaExists {
                pos: None,
                dst: id.dst,
                protocol: protocol_keyword(id.protocol),
                spi: id.spi.0,
            });
        }
        larval.seq = self.next_seq;
        self.next_seq += 1;
        self.larval.insert(id, larval);
        Ok(id)
    }

    /// The larval SA holding this key.
    pub fn get_larval(&self, id: &SaId) -> Option<&Larval> {
        self.larval.get(id)
    }

    /// Removes a larval SA.
    pub fn remove_larval(&mut self, id: &SaId) -> Option<Larval> {
        self.larval.remove(id)
    }

    /// The larval SAs, in no particular order.
    pub fn larval(&self) -> impl Iterator<Item = &Larval> {
        self.larval.values()
    }

    /// Adds an entry. Fails if its (destination, protocol, SPI) is taken
    /// (by an SA or a larval one).
    pub fn insert(&mut self, mut entry: SaEntry) -> Result<SaId, Error> {
        let id = entry.id();
        let key = IndexKey::of(&id);
        if self.map.contains_key(&key) || self.larval.contains_key(&id) {
            return Err(Error::SaExists {
                pos: None,
                dst: id.dst,
                protocol: protocol_keyword(id.protocol),
                spi: id.spi.0,
            });
        }
        let pair = PairKey::new(entry.sa.src(), id.dst, id.protocol);
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                let Ok(i) = u32::try_from(self.slots.len()) else {
                    return Err(Error::Inconsistent {
                        pos: None,
                        reason: "the SAD is full (2^32 SAs)".into(),
                    });
                };
                self.slots.push(None);
                i
            }
        };
        entry.seq = self.next_seq;
        self.next_seq += 1;
        let reqid = entry.meta.reqid;
        if let Some(s) = self.slots.get_mut(slot as usize) {
            *s = Some(Arc::new(entry));
        }
        self.map.insert(key, slot);
        self.by_pair.entry(pair).or_default().push(slot);
        self.index_reqid(pair, reqid, slot, true);
        self.count_udp_ports(&self.slots.get(slot as usize).cloned().flatten(), 1);
        Ok(id)
    }

    /// Builds the transform and adds it (`add` without a script).
    pub fn add(&mut self, params: SaParams, meta: SaMeta, now: Timestamp) -> Result<SaId, Error> {
        let id = SaId {
            dst: params.dst,
            protocol: params.protocol,
            spi: params.spi,
        };
        if self.is_taken(&id) {
            return Err(Error::SaExists {
                pos: None,
                dst: id.dst,
                protocol: protocol_keyword(id.protocol),
                spi: id.spi.0,
            });
        }
        let sa = Sa::new(params).map_err(|source| Error::Transform { pos: None, source })?;
        self.insert(SaEntry::new(sa, meta, now))
    }

    /// The SA for an inbound packet (RFC 4301 §4.1): O(1).
    pub fn lookup(&self, dst: IpAddr, protocol: Protocol, spi: Spi) -> Option<&SaEntry> {
        let &i = self.map.get(&IndexKey::new(dst, protocol, spi))?;
        self.slots.get(i as usize)?.as_deref()
    }

    /// The entry with this key.
    pub fn get(&self, id: &SaId) -> Option<&SaEntry> {
        self.lookup(id.dst, id.protocol, id.spi)
    }

    /// Replaces the entry with this key by `entry` (same key: setkey
    /// `update`, see [`SaEntry::replaced_by`]); false if there is none.
    pub fn replace(&mut self, id: &SaId, entry: SaEntry) -> bool {
        if entry.id() != *id {
            return false;
        }
        let Some(&i) = self.map.get(&IndexKey::of(id)) else {
            return false;
        };
        let new = Some(Arc::new(entry));
        let old = match self.slots.get_mut(i as usize) {
            Some(slot @ Some(_)) => std::mem::replace(slot, new.clone()),
            _ => return false,
        };
        self.count_udp_ports(&old, -1);
        self.count_udp_ports(&new, 1);
        // An update may give the SA another reqid (`-u`).
        let key = |e: &Option<Arc<SaEntry>>| {
            e.as_ref()
                .map(|e| (PairKey::new(e.sa.src(), id.dst, id.protocol), e.meta.reqid))
        };
        if let (Some(was), Some(now)) = (key(&old), key(&new)) {
            if was != now {
                self.index_reqid(was.0, was.1, i, false);
                self.index_reqid(now.0, now.1, i, true);
            }
        }
        true
    }

    /// Adds `slot` to (or removes it from) the SAs of `pair` with `reqid`
    /// (none kept for reqid 0).
    fn index_reqid(&mut self, pair: PairKey, reqid: u32, slot: u32, add: bool) {
        if reqid == 0 {
            return;
        }
        if add {
            self.by_reqid.entry((pair, reqid)).or_default().push(slot);
        } else if let Some(v) = self.by_reqid.get_mut(&(pair, reqid)) {
            v.retain(|&x| x != slot);
            if v.is_empty() {
                self.by_reqid.remove(&(pair, reqid));
            }
        }
    }

    fn count_udp_ports(&mut self, entry: &Option<Arc<SaEntry>>, delta: i32) {
        let Some(u) = entry.as_ref().and_then(|e| e.sa.udp_encap()) else {
            return;
        };
        let ports = if u.sport == u.dport {
            &[u.sport][..]
        } else {
            &[u.sport, u.dport][..]
        };
        for &p in ports {
            let n = self.udp_ports.entry(p).or_default();
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                self.udp_ports.remove(&p);
            }
        }
    }

    /// Whether an ESP-in-UDP SA (RFC 3948) uses this UDP port: datagrams
    /// to or from it may carry ESP.
    pub fn is_udp_encap_port(&self, port: u16) -> bool {
        self.udp_ports.contains_key(&port)
    }

    /// Removes and returns an entry (it lives on in snapshots that hold it).
    pub fn remove(&mut self, id: &SaId) -> Option<Arc<SaEntry>> {
        let i = self.map.remove(&IndexKey::of(id))?;
        let entry = self.slots.get_mut(i as usize)?.take()?;
        self.count_udp_ports(&Some(Arc::clone(&entry)), -1);
        self.free.push(i);
        let pair = PairKey::new(entry.sa.src(), id.dst, id.protocol);
        if let Some(v) = self.by_pair.get_mut(&pair) {
            v.retain(|&x| x != i);
            if v.is_empty() {
                self.by_pair.remove(&pair);
            }
        }
        self.index_reqid(pair, entry.meta.reqid, i, false);
        Some(entry)
    }

    /// setkey `delete src dst proto spi`: the source must match too.
    pub fn delete(&mut self, src: IpAddr, id: &SaId) -> Result<Arc<SaEntry>, Error> {
        match self.get(id) {
            Some(e) if e.sa.src() == src => self.remove(id).ok_or_else(|| id.not_found()),
            _ => Err(id.not_found()),
        }
    }

    /// The SAs from `src` to `dst` with this protocol.
    pub fn between(
        &self,
        src: IpAddr,
        dst: IpAddr,
        protocol: Protocol,
    ) -> impl Iterator<Item = &SaEntry> + '_ {
        self.by_pair
            .get(&PairKey::new(src, dst, protocol))
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|&i| self.slots.get(i as usize)?.as_deref())
    }

    /// setkey `deleteall src dst proto` (larval SAs too): returns how many
    /// were removed.
    pub fn delete_all(&mut self, src: IpAddr, dst: IpAddr, protocol: Protocol) -> usize {
        let ids: Vec<SaId> = self.between(src, dst, protocol).map(SaEntry::id).collect();
        let n = self.larval.len();
        self.larval
            .retain(|id, l| !(l.src == src && id.dst == dst && id.protocol == protocol));
        let larval = n - self.larval.len();
        larval + ids.iter().filter(|id| self.remove(id).is_some()).count()
    }

    /// setkey `flush [proto]` (larval SAs too).
    pub fn flush(&mut self, protocol: Option<Protocol>) {
        self.larval
            .retain(|id, _| protocol.is_some_and(|p| id.protocol != p));
        match protocol {
            None => {
                self.map.clear();
                self.slots.clear();
                self.free.clear();
                self.by_pair.clear();
                self.by_reqid.clear();
                self.udp_ports.clear();
            }
            Some(p) => {
                let ids: Vec<SaId> = self
                    .iter()
                    .map(SaEntry::id)
                    .filter(|k| k.protocol == p)
                    .collect();
                for id in ids {
                    self.remove(&id);
                }
            }
        }
    }

    /// All entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &SaEntry> {
        self.slots.iter().flatten().map(|b| &**b)
    }

    /// All entries in the order they were added (the order `setkey -D` prints).
    pub fn in_insertion_order(&self) -> Vec<&SaEntry> {
        let mut v: Vec<&SaEntry> = self.iter().collect();
        v.sort_by_key(|e| e.seq);
        v
    }

    /// The SA an outbound packet should use for one request of its policy,
    /// as Linux and KAME choose it: same protocol and mode, from the
    /// request's tunnel end points (or the packet's addresses in transport
    /// mode), reqid equal to the request's when it has one (`unique:N` binds
    /// to `-u N`; a request without reqid takes any SA); a mature SA is
    /// preferred to a dying one, then the newest. Dead SAs, and SAs past
    /// their hard lifetime at `now`, are never chosen.
    pub fn select_out(
        &self,
        req: &SaRequest,
        pkt: &PacketSelector,
        now: Timestamp,
    ) -> Option<&SaEntry> {
        let (src, dst) = match req.endpoints {
            Some((s, d)) => (s.addr, d.addr),
            None => (pkt.src, pkt.dst),
        };
        let protocol = match req.protocol {
            crate::ast::ReqProtocol::Esp => Protocol::Esp,
            crate::ast::ReqProtocol::Ah => Protocol::Ah,
        };
        let mode = to_mode(req.mode);
        let slots = if req.reqid == 0 {
            self.by_pair.get(&PairKey::new(src, dst, protocol))
        } else {
            self.by_reqid
                .get(&(PairKey::new(src, dst, protocol), req.reqid))
        };
        slots
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|&i| self.slots.get(i as usize)?.as_deref())
            .filter(|e| {
                e.sa.mode() == mode
                    && (req.reqid == 0 || e.meta.reqid == req.reqid)
                    && !e.hard_expired(now)
            })
            .max_by_key(|e| (e.state() == SaState::Mature, e.seq))
    }

    /// For tests and benchmarks: `n` ESP transport-mode SAs from 192.0.2.1
    /// to 10.a.b.c (counting up from 10.0.0.0), SPI `0x1000 + i`, NULL
    /// encryption with HMAC-SHA1-96 under a fixed key, no replay check.
    pub fn synthetic(n: u32, now: Timestamp) -> Result<Sad, Error> {
        let mut sad = Sad::with_capacity(usize::try_from(n).unwrap_or(0));
        for i in 0..n {
            let [_, a, b, c] = i.to_be_bytes();
            let params = Sad::synthetic_params(
                Spi(0x1000u32.wrapping_add(i)),
                IpAddr::from([192, 0, 2, 1]),
                IpAddr::from([10, a, b, c]),
            );
            sad.add(params, SaMeta::default(), now)?;
        }
        Ok(sad)
    }

    /// For tests and benchmarks: the parameters of one SA of
    /// [`Sad::synthetic`] (ESP transport mode, NULL encryption with
    /// HMAC-SHA1-96 under a fixed key, no replay check) with `spi`, `src`
    /// and `dst`.
    pub fn synthetic_params(spi: Spi, src: IpAddr, dst: IpAddr) -> SaParams {
        SaParams {
            spi,
            protocol: Protocol::Esp,
            mode: Mode::Transport,
            src,
            dst,
            enc: opensec::EncAlgorithm::Null,
            enc_key: Vec::new(),
            auth: opensec::AuthAlgorithm::HmacSha1_96,
            auth_key: vec![0x5a; 20],
            replay_window: 0,
            esn: false,
            udp_encap: None,
            seq: 0,
        }
    }

    /// Applies lifetimes at `now` (RFC 2367 §2.3.5): SAs past their soft
    /// limit become dying (reported once), SAs past their hard limit are
    /// removed, and so are larval SAs past theirs. Returns the events in no
    /// particular order.
    pub fn expire(&mut self, now: Timestamp) -> Vec<ExpireEvent> {
        let (mut events, dead) = self.lifetimes(now);
        for id in dead {
            self.remove(&id);
        }
        self.larval.retain(|id, l| {
            let gone = l.expired(now);
            if gone {
                events.push(ExpireEvent {
                    id: *id,
                    reqid: l.reqid,
                    kind: ExpireKind::Larval,
                });
            }
            !gone
        });
        events
    }

    /// Whether some SA (or larval SA) is past its hard lifetime at `now`
    /// (then [`Sad::expire`] has something to remove).
    pub fn any_hard_expired(&self, now: Timestamp) -> bool {
        self.iter().any(|e| e.hard_expired_now(now)) || self.larval().any(|l| l.expired(now))
    }

    /// [`Sad::expire`] for a SAD in which no SA is past its hard lifetime
    /// (see [`Sad::any_hard_expired`]): only soft events, recorded in the
    /// shared entries, so it needs no `&mut`.
    pub fn expire_soft(&self, now: Timestamp) -> Vec<ExpireEvent> {
        self.lifetimes(now).0
    }

    /// Lifetime events at `now`, and the SAs to remove.
    fn lifetimes(&self, now: Timestamp) -> (Vec<ExpireEvent>, Vec<SaId>) {
        let mut events = Vec::new();
        let mut dead = Vec::new();
        for e in self.slots.iter().flatten() {
            let id = &e.id();
            if e.hard_expired_now(now) {
                dead.push(*id);
                events.push(ExpireEvent {
                    id: *id,
                    reqid: e.meta.reqid,
                    kind: ExpireKind::Hard,
                });
            } else if e.soft_expired(now) && !e.live.soft_notified.swap(true, Relaxed) {
                let _ = e.live.state.compare_exchange(
                    SaState::Mature as u8,
                    SaState::Dying as u8,
                    Relaxed,
                    Relaxed,
                );
                events.push(ExpireEvent {
                    id: *id,
                    reqid: e.meta.reqid,
                    kind: ExpireKind::Soft,
                });
            }
        }
        (events, dead)
    }
}

/// An SPI of `range` for which `taken` is false: random tries first, then
/// (for a crowded range) a walk from a random point, so it ends.
pub(crate) fn pick_spi(
    range: core::ops::RangeInclusive<u32>,
    mut random: impl FnMut() -> u32,
    taken: impl Fn(Spi) -> bool,
) -> Option<Spi> {
    let (lo, hi) = (*range.start(), *range.end());
    if lo > hi {
        return None;
    }
    let span = u64::from(hi - lo) + 1;
    let at = |r: u32| lo.wrapping_add((u64::from(r) % span) as u32);
    for _ in 0..64 {
        let spi = Spi(at(random()));
        if !taken(spi) {
            return Some(spi);
        }
    }
    let start = at(random());
    (0..span)
        .map(|i| Spi(lo.wrapping_add(((u64::from(start - lo) + i) % span) as u32)))
        .find(|&spi| !taken(spi))
}

pub(crate) fn no_free_spi(
    dst: IpAddr,
    protocol: Protocol,
    range: &core::ops::RangeInclusive<u32>,
) -> Error {
    Error::Inconsistent {
        pos: None,
        reason: format!(
            "no unused SPI for {} dst {dst} in {:#x}-{:#x}",
            protocol_keyword(protocol),
            range.start(),
            range.end()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(dst: &str, protocol: Protocol, spi: u32) -> SaParams {
        SaParams {
            spi: Spi(spi),
            protocol,
            mode: Mode::Transport,
            src: if dst.contains(':') {
                "2001:db8::1".parse().unwrap()
            } else {
                "192.0.2.1".parse().unwrap()
            },
            dst: dst.parse().unwrap(),
            enc: opensec::EncAlgorithm::Null,
            enc_key: Vec::new(),
            auth: opensec::AuthAlgorithm::HmacSha1_96,
            auth_key: vec![1; 20],
            replay_window: 0,
            esn: false,
            udp_encap: None,
            seq: 0,
        }
    }

    /// The reqid index gives what scanning every SA of the pair gives,
    /// through adds, removes and updates that change an SA's reqid.
    #[test]
    fn select_out_by_reqid_equals_a_scan_of_the_pair() {
        let now = Timestamp(0);
        let mut sad = Sad::new();
        let scan = |sad: &Sad, req: &SaRequest, pkt: &PacketSelector| {
            sad.between(pkt.src, pkt.dst, Protocol::Esp)
                .filter(|e| {
                    e.sa.mode() == Mode::Transport
                        && (req.reqid == 0 || e.meta.reqid == req.reqid)
                        && !e.hard_expired(now)
                })
                .max_by_key(|e| (e.state() == SaState::Mature, e.seq))
                .map(SaEntry::id)
        };
        let pkt = PacketSelector::udp(
            "192.0.2.1".parse().unwrap(),
            5062,
            "192.0.2.9".parse().unwrap(),
            5068,
        );
        let check = |sad: &Sad| {
            let mut found = 0;
            for reqid in 0..6 {
                let req = SaRequest {
                    protocol: crate::ast::ReqProtocol::Esp,
                    mode: ReqMode::Transport,
                    endpoints: None,
                    level: crate::ast::Level::Require,
                    reqid,
                };
                let got = sad.select_out(&req, &pkt, now).map(SaEntry::id);
                assert_eq!(got, scan(sad, &req, &pkt), "reqid {reqid}");
                found += usize::from(got.is_some());
            }
            found
        };
        let meta = |reqid| SaMeta {
            reqid,
            ..SaMeta::default()
        };
        let mut ids = Vec::new();
        for spi in 0..12u32 {
            ids.push(
                sad.add(
                    params("192.0.2.9", Protocol::Esp, 0x100 + spi),
                    meta(spi % 4),
                    now,
                )
                .unwrap(),
            );
        }
        assert_eq!(check(&sad), 4); // any, 1, 2, 3 (nothing has 4 or 5)
        // The newest SA of reqid 1 goes; an older one takes its place.
        sad.remove(&ids[9]).unwrap();
        assert_eq!(check(&sad), 4);
        // Updates move SAs to reqid 5 and out of reqid 2.
        for i in [2u32, 6, 10] {
            let sa = Sa::new(params("192.0.2.9", Protocol::Esp, 0x100 + i)).unwrap();
            let new = sad.get(&ids[i as usize]).unwrap().replaced_by(sa, meta(5));
            assert!(sad.replace(&ids[i as usize], new));
        }
        assert_eq!(check(&sad), 4); // any, 1, 3, 5
        for id in &ids {
            sad.remove(id);
        }
        assert_eq!(check(&sad), 0);
        assert!(sad.by_reqid.is_empty() && sad.by_pair.is_empty());
    }

    #[test]
    fn keys_differ_by_family_protocol_address_and_spi() {
        let now = Timestamp(0);
        let mut sad = Sad::new();
        // ::c000:202 is 192.0.2.2 as an IPv4-compatible IPv6 address: the
        // family keeps them apart.
        for (dst, p, spi) in [
            ("192.0.2.2", Protocol::Esp, 7),
            ("192.0.2.2", Protocol::Ah, 7),
            ("::c000:202", Protocol::Esp, 7),
            ("192.0.2.3", Protocol::Esp, 7),
            ("192.0.2.2", Protocol::Esp, 8),
        ] {
            sad.add(params(dst, p, spi), SaMeta::default(), now)
                .unwrap();
        }
        assert_eq!(sad.len(), 5);
        for (dst, p, spi) in [
            ("192.0.2.2", Protocol::Esp, 7),
            ("192.0.2.2", Protocol::Ah, 7),
            ("::c000:202", Protocol::Esp, 7),
            ("192.0.2.3", Protocol::Esp, 7),
            ("192.0.2.2", Protocol::Esp, 8),
        ] {
            let e = sad.lookup(dst.parse().unwrap(), p, Spi(spi)).unwrap();
            assert_eq!(
                (e.sa().dst(), e.sa().protocol(), e.sa().spi()),
                (dst.parse().unwrap(), p, Spi(spi))
            );
        }
        assert!(
            sad.lookup("192.0.2.2".parse().unwrap(), Protocol::Ah, Spi(8))
                .is_none()
        );
        assert!(
            sad.add(
                params("::c000:202", Protocol::Esp, 7),
                SaMeta::default(),
                now
            )
            .is_err()
        );
    }

    #[test]
    fn slots_are_reused_and_lookups_follow() {
        let now = Timestamp(0);
        let mut sad = Sad::synthetic(100, now).unwrap();
        let id = |i: u32| {
            let [_, a, b, c] = i.to_be_bytes();
            SaId {
                dst: IpAddr::from([10, a, b, c]),
                protocol: Protocol::Esp,
                spi: Spi(0x1000 + i),
            }
        };
        for i in (0..100).step_by(3) {
            assert!(sad.remove(&id(i)).is_some());
        }
        for i in 0..100 {
            assert_eq!(sad.get(&id(i)).is_some(), i % 3 != 0, "{i}");
        }
        sad.add(
            params("10.0.0.0", Protocol::Esp, 0x1000),
            SaMeta::default(),
            now,
        )
        .unwrap();
        assert_eq!(sad.slots.len(), 100, "a free slot was reused");
        assert_eq!(sad.get(&id(0)).unwrap().id(), id(0));
        assert_eq!(sad.get(&id(1)).unwrap().id(), id(1));
    }

    #[test]
    fn unused_spis_avoid_sas_and_larval_ones_and_run_out_clearly() {
        let now = Timestamp(0);
        let mut sad = Sad::new();
        let dst: IpAddr = "192.0.2.2".parse().unwrap();
        sad.add(
            params("192.0.2.2", Protocol::Esp, 300),
            SaMeta::default(),
            now,
        )
        .unwrap();
        let id = |spi| SaId {
            dst,
            protocol: Protocol::Esp,
            spi: Spi(spi),
        };
        sad.insert_larval(Larval::new(id(301), "192.0.2.1".parse().unwrap(), now))
            .unwrap();
        // A range of three with two taken: always the third, whatever the
        // random numbers say.
        let mut n = 0u32;
        let mut counter = || {
            n = n.wrapping_add(7);
            n
        };
        for _ in 0..10 {
            assert_eq!(
                sad.unused_spi(dst, Protocol::Esp, 300..=302, &mut counter)
                    .unwrap(),
                Spi(302)
            );
        }
        // Other protocols and destinations are separate.
        assert_eq!(
            sad.unused_spi(dst, Protocol::Ah, 300..=300, || 0).unwrap(),
            Spi(300)
        );
        let e = sad
            .unused_spi(dst, Protocol::Esp, 300..=301, || 5)
            .unwrap_err();
        assert!(e.to_string().contains("no unused SPI"), "{e}");
        // Larval SAs block add, and go with flush and at their lifetime.
        assert!(
            sad.add(
                params("192.0.2.2", Protocol::Esp, 301),
                SaMeta::default(),
                now
            )
            .is_err()
        );
        assert!(
            sad.lookup(dst, Protocol::Esp, Spi(301)).is_none(),
            "no traffic"
        );
        assert!(!sad.any_hard_expired(Timestamp(LARVAL_LIFETIME_SECS - 1)));
        let ev = sad.expire(Timestamp(LARVAL_LIFETIME_SECS));
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].id, ev[0].kind), (id(301), ExpireKind::Larval));
        assert!(sad.get_larval(&id(301)).is_none());
    }

    #[test]
    fn hasher_spreads_sequential_keys() {
        // Sequential SPIs to one destination (the common allocation
        // pattern) land in distinct buckets of a 2^12 table often enough.
        let mut buckets = std::collections::HashSet::new();
        for spi in 0..4096u32 {
            let mut h = SadHasher::default();
            IndexKey::new("192.0.2.2".parse().unwrap(), Protocol::Esp, Spi(spi)).hash(&mut h);
            buckets.insert(h.finish() & 4095);
        }
        assert!(buckets.len() > 2400, "{}", buckets.len());
    }
}
