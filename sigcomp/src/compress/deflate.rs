//! LZ77 with hash chains and the RFC 1951 §3.2.6 fixed Huffman codes, as
//! the bytecode in `sigcomp/bytecode/deflate-dict.asm` decodes them.
//!
//! Written here rather than taken from zlib(-rs): the stream must match the
//! bytecode exactly (no block header, no end-of-block, lengths capped at
//! 257, padding with 1 bits), the history is a preload of states the
//! compressor chooses per message, and an encoder of ~200 lines keeps the
//! crate free of a dependency.

use super::Level;
use crate::state::SIP_SDP_BYTES;

/// The longest match the bytecode decodes (code 285 is never sent).
pub(crate) const MAX_MATCH: usize = 257;
const MIN_MATCH: usize = 3;
/// The farthest distance DEFLATE codes (RFC 1951 §3.2.5).
pub(crate) const MAX_DISTANCE: usize = 32768;
const HASH_BITS: u32 = 14;
const HASH_SIZE: usize = 1 << HASH_BITS;

/// Bits written least significant first into bytes (RFC 1951 §3.1.1).
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, out: &mut Vec<u8>, value: u32, bits: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += bits;
        while self.n >= 8 {
            out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// Pads the last byte with 1 bits: a prefix of a 9-bit literal code,
    /// so the bytecode finds no complete symbol there and ends.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.n > 0 {
            let pad = 8 - self.n;
            self.put(out, (1 << pad) - 1, pad);
        }
        self.acc = 0;
        self.n = 0;
    }
}

const fn reverse(code: u32, bits: u32) -> u32 {
    let mut r = 0;
    let mut i = 0;
    while i < bits {
        r |= ((code >> i) & 1) << (bits - 1 - i);
        i += 1;
    }
    r
}

/// Fixed literal/length codes, bit-reversed for LSB-first output, and
/// their lengths (RFC 1951 §3.2.6).
const LITLEN: [(u16, u8); 288] = {
    let mut t = [(0u16, 0u8); 288];
    let mut s = 0;
    while s < 288 {
        let (code, bits) = if s < 144 {
            (0x30 + s as u32, 8)
        } else if s < 256 {
            (0x190 + s as u32 - 144, 9)
        } else if s < 280 {
            (s as u32 - 256, 7)
        } else {
            (0xc0 + s as u32 - 280, 8)
        };
        t[s] = (reverse(code, bits) as u16, bits as u8);
        s += 1;
    }
    t
};

const DIST: [u8; 30] = {
    let mut t = [0u8; 30];
    let mut d = 0;
    while d < 30 {
        t[d] = reverse(d as u32, 5) as u8;
        d += 1;
    }
    t
};

/// Length 3..=257 as (symbol, extra bits, extra value) (RFC 1951 §3.2.5).
fn length_code(len: usize) -> (usize, u32, u32) {
    let x = (len - 3) as u32;
    if x < 8 {
        return (257 + x as usize, 0, 0);
    }
    let e = 31 - x.leading_zeros() - 2;
    let sym = 257 + 4 * (e as usize + 1) + ((x >> e) & 3) as usize;
    (sym, e, x & ((1 << e) - 1))
}

/// Distance 1..=32768 as (code, extra bits, extra value).
fn distance_code(dist: usize) -> (usize, u32, u32) {
    let x = (dist - 1) as u32;
    if x < 4 {
        return (x as usize, 0, 0);
    }
    let e = 31 - x.leading_zeros() - 1;
    let code = 2 * e as usize + 2 + ((x >> e) & 1) as usize;
    (code, e, x & ((1 << e) - 1))
}

fn literal_bits(b: u8) -> u32 {
    if b < 144 { 8 } else { 9 }
}

fn match_bits(len: usize, dist: usize) -> u32 {
    let (sym, le, _) = length_code(len);
    let (_, de, _) = distance_code(dist);
    u32::from(LITLEN.get(sym).map_or(8, |c| c.1)) + le + 5 + de
}

/// Hash chains over one history buffer, reused between messages without
/// clearing: entries are stamped with a running base, older ones are stale.
/// Every encode inserts its whole history again (an RFC 3485 dictionary
/// at its start from chains computed at compile time, [`DICTIONARY_HEAD`]
/// and [`DICTIONARY_PREV`]), so nothing in the chains outlives it: one
/// matcher per thread serves every compressor ([`with_matcher`]), and a
/// compartment's compressor holds no tables of its own (a new compartment
/// costs no 64 KiB copy, and thousands of them no 100 KiB each).
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    head: Box<[u32; HASH_SIZE]>,
    prev: Vec<u32>,
    base: u32,
    /// Tests: insert the dictionary one position at a time instead of
    /// writing its chains from the tables.
    #[cfg(test)]
    dictionary_inserted: bool,
    /// The farthest distance of this encode (the peer's buffer size - 1,
    /// at most [`MAX_DISTANCE`]).
    max_dist: usize,
    /// Message bytes the decoder may hold before it must output them
    /// (symbol [`FLUSH`]); `usize::MAX` when the message fits its buffer.
    flush_limit: usize,
    /// Message bytes encoded since the last flush.
    pending: usize,
    /// The farthest distance any search of the last encode returned
    /// ([`Matcher::farthest_found`]).
    farthest: usize,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Matcher> = std::cell::RefCell::new(Matcher::default());
}

/// Runs `f` with this thread's matcher (a fresh one in the impossible
/// case that it is in use: `f` never calls back into the compressor).
pub(crate) fn with_matcher<R>(f: impl FnOnce(&mut Matcher) -> R) -> R {
    SCRATCH.with(|m| match m.try_borrow_mut() {
        Ok(mut m) => f(&mut m),
        Err(_) => f(&mut Matcher::default()),
    })
}

/// The symbol our bytecode reads as "output the next 16-bit count of bytes
/// decoded so far" (RFC 1951 never sends 286).
const FLUSH: usize = 286;

/// Positions `prev` holds from the start: a history of the dictionary and
/// a message within the default DMS (8192) needs no reallocation, so a
/// thread's first encodes (a process warms up with a short one) do not
/// grow it, copying it to new pages, while a message waits.
const PREV_INITIAL: usize = 16384;

impl Default for Matcher {
    fn default() -> Matcher {
        Matcher {
            head: Box::new([0; HASH_SIZE]),
            prev: vec![0; PREV_INITIAL],
            base: 0,
            #[cfg(test)]
            dictionary_inserted: false,
            max_dist: MAX_DISTANCE,
            flush_limit: usize::MAX,
            pending: 0,
            farthest: 0,
        }
    }
}

#[inline]
fn hash3(b: &[u8], i: usize) -> usize {
    match b.get(i..i + 3) {
        Some(&[a, c, d]) => hash_bytes(a, c, d),
        _ => 0,
    }
}

/// The chain hash of three bytes (usable in constants, see
/// [`DICTIONARY_HEAD`]).
#[inline]
const fn hash_bytes(a: u8, c: u8, d: u8) -> usize {
    let v = a as u32 | (c as u32) << 8 | (d as u32) << 16;
    (v.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize
}

/// Positions of the RFC 3485 dictionary with three bytes left in it.
const DICTIONARY_POSITIONS: usize = SIP_SDP_BYTES.len() - (MIN_MATCH - 1);

/// The hash chains of the RFC 3485 dictionary's positions, relative to
/// base 0 (position `p` stamped `p + 1`, 0 for none): the whole head table
/// and each position's `prev`, as inserting them one by one into empty
/// chains gives. Computed at compile time: the first message of every
/// compartment preloads the whole dictionary, and hashing its 4834
/// positions was the encoder's largest cost on such a message, paid cold
/// by every short-lived process. Each encode writes them into its tables
/// ([`Matcher::insert_dictionary`]) rather than having its searches fall
/// through to them: measured in `imsua` and `pcscf`, the sequential
/// write-back costs less than the cache misses of a search's random reads
/// in tables that are cold when a message comes.
const DICTIONARY_TABLES: ([u16; HASH_SIZE], [u16; DICTIONARY_POSITIONS]) = {
    let d = SIP_SDP_BYTES;
    let mut head = [0u16; HASH_SIZE];
    let mut prev = [0u16; DICTIONARY_POSITIONS];
    let mut p = 0;
    while p < DICTIONARY_POSITIONS {
        let h = hash_bytes(d[p], d[p + 1], d[p + 2]) & (HASH_SIZE - 1);
        prev[p] = head[h];
        // p + 1 <= 4834: fits 16 bits.
        head[h] = (p + 1) as u16;
        p += 1;
    }
    (head, prev)
};

/// How many head entries the dictionary sets.
const DICTIONARY_HEADS: usize = {
    let mut n = 0;
    let mut h = 0;
    while h < HASH_SIZE {
        if DICTIONARY_TABLES.0[h] != 0 {
            n += 1;
        }
        h += 1;
    }
    n
};

/// The head entries the dictionary sets, as (hash, relative stamp), in
/// hash order: what an encode writes back (a fraction of the table).
static DICTIONARY_HEAD: [(u16, u16); DICTIONARY_HEADS] = {
    let mut out = [(0u16, 0u16); DICTIONARY_HEADS];
    let mut n = 0;
    let mut h = 0;
    while h < HASH_SIZE {
        let s = DICTIONARY_TABLES.0[h];
        if s != 0 {
            // h < HASH_SIZE = 2^14.
            out[n] = (h as u16, s);
            n += 1;
        }
        h += 1;
    }
    out
};

/// Each dictionary position's relative `prev` stamp.
static DICTIONARY_PREV: [u16; DICTIONARY_POSITIONS] = DICTIONARY_TABLES.1;

impl Matcher {
    /// Inserts the positions of `hist[..start]` that lie in a whole RFC
    /// 3485 dictionary at its start; returns the first position left to
    /// insert. From [`DICTIONARY_HEAD`] and [`DICTIONARY_PREV`] rebased on
    /// `base`: exactly what inserting them one by one gives, since every
    /// stamp already in the chains is stale (at most `base`) and a stale
    /// entry ends a chain whatever its value.
    fn insert_dictionary(&mut self, hist: &[u8], start: usize) -> usize {
        let dict: &[u8] = SIP_SDP_BYTES;
        if start < dict.len() || hist.get(..dict.len()) != Some(dict) {
            return 0;
        }
        #[cfg(test)]
        if self.dictionary_inserted {
            return 0;
        }
        let base = self.base;
        for &(h, s) in &DICTIONARY_HEAD {
            if let Some(e) = self.head.get_mut(usize::from(h)) {
                *e = base + u32::from(s);
            }
        }
        for (p, &s) in self.prev.iter_mut().zip(&DICTIONARY_PREV) {
            *p = if s == 0 { 0 } else { base + u32::from(s) };
        }
        DICTIONARY_POSITIONS
    }

    fn start(&mut self, len: usize) {
        // Stamps are base + pos + 1; restart the numbering well before it wraps.
        if self.base > u32::MAX / 2 {
            self.head.iter_mut().for_each(|h| *h = 0);
            self.base = 0;
        }
        if self.prev.len() < len {
            self.prev.resize(len, 0);
        }
    }

    #[inline]
    fn insert(&mut self, hist: &[u8], i: usize) {
        self.insert_range(hist, i, i + 1);
    }

    /// Inserts positions `from..to` (those with 3 bytes left) into the
    /// chains: one pass over the bytes, no per-position bounds checks.
    #[inline]
    fn insert_range(&mut self, hist: &[u8], from: usize, to: usize) {
        let end = to.min(hist.len().saturating_sub(MIN_MATCH - 1));
        if from >= end {
            return;
        }
        let (Some(bytes), Some(prev)) = (
            hist.get(from..end + MIN_MATCH - 1),
            self.prev.get_mut(from..end),
        ) else {
            return;
        };
        let first = self.base + from as u32 + 1;
        for ((w, p), stamp) in bytes.windows(MIN_MATCH).zip(prev).zip(first..) {
            let h = hash3(w, 0) & (HASH_SIZE - 1);
            *p = self.head[h];
            self.head[h] = stamp;
        }
    }

    /// The longest match for `hist[i..]` among earlier positions.
    #[inline]
    fn find(&mut self, hist: &[u8], i: usize, chain: u32, good_enough: usize) -> (usize, usize) {
        let max = (hist.len() - i).min(MAX_MATCH);
        if max < MIN_MATCH {
            return (0, 0);
        }
        let Some(cur) = hist.get(i..i + max) else {
            return (0, 0);
        };
        let mut best = (0usize, 0usize);
        let mut stamp = self.head[hash3(hist, i) & (HASH_SIZE - 1)];
        let mut left = chain;
        while stamp > self.base && left > 0 {
            let j = (stamp - self.base - 1) as usize;
            // RFC 1951 §3.2.5: distances reach back at most 32768 bytes,
            // and less than the peer's circular buffer (older bytes are
            // overwritten); older candidates are further down the chain.
            if j >= i || i - j > self.max_dist {
                break;
            }
            left -= 1;
            if let Some(cand) = hist.get(j..j + max) {
                // Quick reject on the byte that would make it longer.
                if cand.get(best.0) == cur.get(best.0) {
                    let l = cand.iter().zip(cur).take_while(|(a, b)| a == b).count();
                    if l > best.0 && (l > MIN_MATCH || i - j <= 4096) {
                        best = (l, i - j);
                        if l >= good_enough || l == max {
                            break;
                        }
                    }
                }
            }
            stamp = self.prev.get(j).copied().unwrap_or(0);
        }
        if best.0 < MIN_MATCH {
            (0, 0)
        } else {
            self.farthest = self.farthest.max(best.1);
            best
        }
    }

    /// The farthest distance any search of the last encode returned,
    /// whether or not its match was used. An encode of the same input
    /// with a smaller `max_dist` that is still at least this far makes
    /// exactly the same choices: each search walks its chain nearest
    /// first, so it meets the same candidates up to the first beyond the
    /// limit, and the best of all it met before (the first longest) was
    /// among them.
    pub(crate) fn farthest_found(&self) -> usize {
        self.farthest
    }

    /// Encodes `hist[start..]` with `hist[..start]` as history, appending
    /// the bit stream (padded to a byte) to `out`; no match reaches back
    /// more than `max_dist` bytes, and with `flush` the decoder is told to
    /// output what it decoded before that many bytes are pending. With
    /// `flush_at_end` the stream ends with a flush of everything pending,
    /// so the decoder has nothing left when the input ends.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn encode(
        &mut self,
        hist: &[u8],
        start: usize,
        max_dist: usize,
        flush: Option<usize>,
        flush_at_end: bool,
        level: Level,
        out: &mut Vec<u8>,
    ) {
        self.max_dist = max_dist.min(MAX_DISTANCE);
        self.flush_limit = flush.map_or(usize::MAX, |f| f.max(MAX_MATCH + 1));
        self.pending = 0;
        self.farthest = 0;
        let (chain, lazy, good) = match level {
            Level::Fast => (8, false, 32),
            Level::Default => (64, true, 128),
            Level::Best => (1024, true, MAX_MATCH),
        };
        self.start(hist.len());
        let from = self.insert_dictionary(hist, start);
        self.insert_range(hist, from, start);
        let mut w = BitWriter::default();
        let mut i = start;
        while i < hist.len() {
            let (mut len, mut dist) = self.find(hist, i, chain, good);
            if len >= MIN_MATCH && lazy && len < good {
                self.insert(hist, i);
                let (l2, d2) = self.find(hist, i + 1, chain, good);
                let b = hist.get(i).copied().unwrap_or(0);
                if l2 > len
                    && match_bits(l2, d2) + literal_bits(b) + 1
                        < match_bits(len, dist) + 8 * (l2 + 1 - len) as u32
                {
                    self.literal(&mut w, out, b);
                    i += 1;
                    len = l2;
                    dist = d2;
                } else {
                    // Position i is already inserted.
                    self.emit_match(&mut w, out, len, dist);
                    self.insert_range(hist, i + 1, i + len);
                    i += len;
                    continue;
                }
            }
            if len >= MIN_MATCH {
                let lit: u32 = hist
                    .get(i..i + len)
                    .map_or(u32::MAX, |s| s.iter().map(|&b| literal_bits(b)).sum());
                if match_bits(len, dist) < lit {
                    self.emit_match(&mut w, out, len, dist);
                    self.insert_range(hist, i, i + len);
                    i += len;
                    continue;
                }
            }
            let b = hist.get(i).copied().unwrap_or(0);
            self.literal(&mut w, out, b);
            self.insert(hist, i);
            i += 1;
        }
        if flush_at_end && self.pending > 0 {
            self.flush(&mut w, out);
        }
        w.finish(out);
        self.base = self.base.saturating_add(hist.len() as u32 + 1);
    }

    /// Before `len` more message bytes: a flush if they would pass the limit.
    fn make_room(&mut self, w: &mut BitWriter, out: &mut Vec<u8>, len: usize) {
        if self.pending + len > self.flush_limit {
            self.flush(w, out);
        }
        self.pending += len;
    }

    /// Symbol [`FLUSH`] and the count of bytes decoded since the last one.
    fn flush(&mut self, w: &mut BitWriter, out: &mut Vec<u8>) {
        let (code, bits) = LITLEN[FLUSH];
        w.put(out, u32::from(code), u32::from(bits));
        w.put(out, self.pending as u32, 16);
        self.pending = 0;
    }

    fn literal(&mut self, w: &mut BitWriter, out: &mut Vec<u8>, b: u8) {
        self.make_room(w, out, 1);
        let (code, bits) = LITLEN[usize::from(b)];
        w.put(out, u32::from(code), u32::from(bits));
    }

    fn emit_match(&mut self, w: &mut BitWriter, out: &mut Vec<u8>, len: usize, dist: usize) {
        self.make_room(w, out, len);
        let (sym, le, lx) = length_code(len);
        let (code, bits) = LITLEN.get(sym).copied().unwrap_or((0, 0));
        w.put(out, u32::from(code), u32::from(bits));
        if le > 0 {
            w.put(out, lx, le);
        }
        let (dc, de, dx) = distance_code(dist);
        w.put(out, u32::from(DIST.get(dc).copied().unwrap_or(0)), 5);
        if de > 0 {
            w.put(out, dx, de);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SIP_SDP_DICTIONARY;

    #[test]
    fn codes_follow_rfc1951_tables() {
        assert_eq!(length_code(3), (257, 0, 0));
        assert_eq!(length_code(10), (264, 0, 0));
        assert_eq!(length_code(11), (265, 1, 0));
        assert_eq!(length_code(12), (265, 1, 1));
        assert_eq!(length_code(227), (284, 5, 0));
        assert_eq!(length_code(257), (284, 5, 30));
        assert_eq!(distance_code(1), (0, 0, 0));
        assert_eq!(distance_code(4), (3, 0, 0));
        assert_eq!(distance_code(5), (4, 1, 0));
        assert_eq!(distance_code(8), (5, 1, 1));
        assert_eq!(distance_code(24577), (29, 13, 0));
        assert_eq!(distance_code(32768), (29, 13, 8191));
        // 'A' (65): 8-bit code 0x30 + 65 = 0x71 = 0b01110001.
        assert_eq!(LITLEN[65], (reverse(0x71, 8) as u16, 8));
    }

    /// The dictionary's compile-time chains find what inserting its
    /// positions one by one finds: the same bits for every corpus message,
    /// at every level, after the dictionary alone or with a state between
    /// it and the message, with the whole reach or a limit inside the
    /// dictionary, on matchers holding stale entries of earlier encodes.
    #[test]
    fn the_dictionary_chains_encode_as_its_positions_inserted_one_by_one() {
        let msgs: Vec<Vec<u8>> = testkit::corpus::sip_named(&testkit::corpus::independent_dir())
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        let (mut tables, mut inserted) = (Matcher::default(), Matcher::default());
        inserted.dictionary_inserted = true;
        let mut compared = 0;
        for (k, msg) in msgs.iter().enumerate() {
            for state in [None, msgs.get((k + 1) % msgs.len())] {
                let mut hist = SIP_SDP_DICTIONARY.to_vec();
                hist.extend_from_slice(state.map_or(&[][..], |s| &s[..]));
                let start = hist.len();
                hist.extend_from_slice(msg);
                for level in [Level::Fast, Level::Default, Level::Best] {
                    for reach in [hist.len(), msg.len() + 2000] {
                        let (mut a, mut b) = (Vec::new(), Vec::new());
                        tables.encode(&hist, start, reach, None, false, level, &mut a);
                        inserted.encode(&hist, start, reach, None, false, level, &mut b);
                        assert_eq!(a, b, "message {k} {level:?} reach {reach}");
                        assert_eq!(tables.farthest_found(), inserted.farthest_found());
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared >= 12 * msgs.len(), "{compared}");
        // And the dictionary does pay: the same message without it is longer.
        let msg = &msgs[2];
        let mut with = SIP_SDP_DICTIONARY.to_vec();
        with.extend_from_slice(msg);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let start = SIP_SDP_DICTIONARY.len();
        tables.encode(
            &with,
            start,
            with.len(),
            None,
            false,
            Level::Default,
            &mut a,
        );
        tables.encode(msg, 0, msg.len(), None, false, Level::Default, &mut b);
        assert!(a.len() * 10 < b.len() * 8, "{} vs {}", a.len(), b.len());
    }

    /// What `compress_inner` relies on to skip a retry: with any limit
    /// between the farthest match the searches found and the one they
    /// had, an encode makes the same bits; below it, it finds less far.
    #[test]
    fn a_limit_beyond_every_match_found_encodes_alike() {
        let mut m = Matcher::default();
        for (path, msg) in testkit::corpus::sip_named(&testkit::corpus::independent_dir()) {
            let mut hist = SIP_SDP_DICTIONARY.to_vec();
            hist.extend_from_slice(&msg);
            let start = SIP_SDP_DICTIONARY.len();
            for level in [Level::Fast, Level::Default, Level::Best] {
                let mut first = Vec::new();
                m.encode(&hist, start, hist.len(), None, false, level, &mut first);
                let found = m.farthest_found();
                assert!(found > 0 && found < hist.len(), "{path:?}");
                for limit in [found, (found + hist.len()) / 2] {
                    let mut again = Vec::new();
                    m.encode(&hist, start, limit, None, false, level, &mut again);
                    assert_eq!(again, first, "{path:?} {level:?} {limit}");
                    assert_eq!(m.farthest_found(), found);
                }
                let mut nearer = Vec::new();
                m.encode(&hist, start, found - 1, None, false, level, &mut nearer);
                assert!(m.farthest_found() < found, "{path:?} {level:?}");
            }
        }
    }
}
