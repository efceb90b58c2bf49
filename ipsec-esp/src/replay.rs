//! The receiver's anti-replay window (RFC 4303 §3.4.3, RFC 4302 §3.4.3) and
//! the inference of the high-order 32 bits of an extended sequence number
//! (RFC 4303 Appendix A2).
//!
//! The window is a fixed 4096-bit ring (no allocation); `check` never
//! mutates, `update` is called only after the packet has been fully
//! verified, so a rejected packet leaves the window unchanged.

use crate::Error;

/// Largest supported window, in packets.
pub const MAX_WINDOW: u32 = 4096;

const WORDS: usize = (MAX_WINDOW as usize) / 64;

/// Anti-replay window of one inbound SA.
///
/// `size == 0` means "no replay check" (RFC 4303 §3.4.3: the receiver may
/// disable the service); the highest sequence number seen is still tracked
/// so that ESN high-order bits can be inferred.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    size: u32,
    /// T: highest authenticated sequence number received (full 64 bits).
    top: u64,
    /// Bit `s % 4096` is set when sequence number `s` (within the window) was seen.
    bitmap: [u64; WORDS],
}

impl ReplayWindow {
    /// A fresh window of `size` packets (0 = no replay check, else 1..=4096).
    pub fn new(size: u32) -> Result<Self, Error> {
        if size > MAX_WINDOW {
            return Err(Error::ReplayWindowSize { size });
        }
        Ok(ReplayWindow {
            size,
            top: 0,
            bitmap: [0; WORDS],
        })
    }

    /// A window whose highest received sequence number is already `top`
    /// (an SA installed mid-life, e.g. `setkey` with a sequence number);
    /// the sequence numbers inside the window are treated as not received.
    pub fn starting_at(size: u32, top: u64) -> Result<Self, Error> {
        let mut w = Self::new(size)?;
        w.top = top;
        Ok(w)
    }

    /// The window size in packets (0 = no replay check).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The highest sequence number accepted so far (T), 0 before the first.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Reconstructs the full 64-bit sequence number from its transmitted
    /// low 32 bits (RFC 4303 Appendix A2.2). Returns `None` when the
    /// inferred high half would be negative (a packet below sequence 0).
    ///
    /// With the replay check disabled a window of 2^31 is used for the
    /// inference: the candidate closest to T wins.
    pub fn infer_esn(&self, seql: u32) -> Option<u64> {
        let w: u32 = if self.size == 0 { 1 << 31 } else { self.size };
        let tl = self.top as u32;
        let th = (self.top >> 32) as u32;
        let bl = tl.wrapping_sub(w).wrapping_add(1);
        let seqh = if tl >= w - 1 {
            // Case A
            if seql >= bl {
                Some(th)
            } else {
                th.checked_add(1)
            }
        } else {
            // Case B
            if seql >= bl {
                th.checked_sub(1)
            } else {
                Some(th)
            }
        };
        seqh.map(|h| (u64::from(h) << 32) | u64::from(seql))
    }

    /// RFC 4303 §3.4.3: may a packet with full sequence number `seq` be
    /// accepted? Does not change the window.
    pub fn check(&self, seq: u64) -> Result<(), Error> {
        if self.size == 0 {
            return Ok(());
        }
        if seq == 0 {
            // The first packet of an SA carries 1 (RFC 4303 §3.3.3): 0 is
            // "to the left" of every window.
            return Err(Error::SequenceTooOld {
                seq,
                top: self.top,
                window: self.size,
            });
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= u64::from(self.size) {
            return Err(Error::SequenceTooOld {
                seq,
                top: self.top,
                window: self.size,
            });
        }
        if self.bit(seq) {
            return Err(Error::ReplayedSequence { seq });
        }
        Ok(())
    }

    /// Records `seq` as received. Call only after `check(seq)` passed and the
    /// packet's ICV verified (RFC 4303 §3.4.3: "the receive window is updated
    /// only if the integrity verification succeeds").
    pub fn update(&mut self, seq: u64) {
        if seq > self.top {
            let advance = seq - self.top;
            if advance >= u64::from(MAX_WINDOW) {
                self.bitmap = [0; WORDS];
            } else {
                // Clear the bits of the sequence numbers skipped over.
                for s in self.top + 1..=seq {
                    self.clear_bit(s);
                }
            }
            self.top = seq;
        }
        if self.size != 0 {
            self.set_bit(seq);
        }
    }

    /// Whether `seq` (assumed within the window) is marked as received.
    fn bit(&self, seq: u64) -> bool {
        let idx = (seq % u64::from(MAX_WINDOW)) as usize;
        self.bitmap
            .get(idx / 64)
            .is_some_and(|w| w & (1u64 << (idx % 64)) != 0)
    }

    fn set_bit(&mut self, seq: u64) {
        let idx = (seq % u64::from(MAX_WINDOW)) as usize;
        if let Some(w) = self.bitmap.get_mut(idx / 64) {
            *w |= 1u64 << (idx % 64);
        }
    }

    fn clear_bit(&mut self, seq: u64) {
        let idx = (seq % u64::from(MAX_WINDOW)) as usize;
        if let Some(w) = self.bitmap.get_mut(idx / 64) {
            *w &= !(1u64 << (idx % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The reference model: a set of every sequence number ever accepted.
    struct Model {
        size: u64,
        seen: BTreeSet<u64>,
    }

    impl Model {
        fn top(&self) -> u64 {
            self.seen.iter().next_back().copied().unwrap_or(0)
        }
        fn accept(&mut self, seq: u64) -> bool {
            if self.size == 0 {
                self.seen.insert(seq);
                return true;
            }
            if seq == 0 || self.seen.contains(&seq) || seq + self.size <= self.top() {
                return false;
            }
            self.seen.insert(seq);
            true
        }
    }

    #[test]
    fn in_order_duplicates_and_old() {
        let mut w = ReplayWindow::new(32).unwrap();
        assert!(w.check(0).is_err());
        for s in 1..=100 {
            w.check(s).unwrap();
            w.update(s);
        }
        assert_eq!(w.check(100), Err(Error::ReplayedSequence { seq: 100 }));
        assert!(matches!(w.check(68), Err(Error::SequenceTooOld { .. })));
        assert_eq!(w.check(69), Err(Error::ReplayedSequence { seq: 69 }));
        w.check(101).unwrap();
    }

    #[test]
    fn none_accepts_everything() {
        let mut w = ReplayWindow::new(0).unwrap();
        w.update(5);
        w.check(5).unwrap();
        w.check(1).unwrap();
        assert_eq!(w.top(), 5);
    }

    #[test]
    fn size_limit() {
        assert!(ReplayWindow::new(4096).is_ok());
        assert_eq!(
            ReplayWindow::new(4097),
            Err(Error::ReplayWindowSize { size: 4097 })
        );
    }

    #[test]
    fn esn_inference_appendix_a2() {
        let mut w = ReplayWindow::new(64).unwrap();
        // Case A, T = 2^32 + 100
        w.update((1 << 32) + 100);
        assert_eq!(w.infer_esn(100), Some((1 << 32) + 100));
        assert_eq!(w.infer_esn(37), Some((1 << 32) + 37)); // Bl = 37
        assert_eq!(w.infer_esn(36), Some((2 << 32) + 36)); // wrapped ahead
        // Case B: T = 2^32 + 10, W = 64: Bl = 10 - 63 mod 2^32
        let mut w = ReplayWindow::new(64).unwrap();
        w.update((1 << 32) + 10);
        assert_eq!(w.infer_esn(0xFFFF_FFF0), Some(0xFFFF_FFF0)); // previous epoch
        assert_eq!(w.infer_esn(5), Some((1 << 32) + 5));
        assert_eq!(w.infer_esn(20), Some((1 << 32) + 20));
        // Case B with Th = 0: a number "before 0" has no valid high half.
        let w = ReplayWindow::new(64).unwrap();
        assert_eq!(w.infer_esn(0xFFFF_FFF0), None);
        assert_eq!(w.infer_esn(1), Some(1));
    }

    proptest! {
        #[test]
        fn matches_reference_model(
            size in prop_oneof![Just(0u32), Just(32u32), Just(64u32), 1u32..=300, Just(4096u32)],
            steps in proptest::collection::vec((0u64..6000, any::<bool>()), 1..300),
        ) {
            let mut w = ReplayWindow::new(size).unwrap();
            let mut m = Model { size: u64::from(size), seen: BTreeSet::new() };
            for (seq, authentic) in steps {
                let ours = w.check(seq).is_ok();
                if !authentic {
                    // A forged packet never reaches update(); the state must stay.
                    continue;
                }
                let theirs = m.accept(seq);
                prop_assert_eq!(ours, theirs, "seq {} size {}", seq, size);
                if ours {
                    w.update(seq);
                }
                prop_assert_eq!(w.top(), m.top());
            }
        }

        #[test]
        fn esn_inference_recovers_nearby(top in 1u64..(u64::MAX >> 2), delta in -63i64..1000, size in 64u32..=4096) {
            let mut w = ReplayWindow::new(size).unwrap();
            w.update(top);
            let seq = top as i128 + i128::from(delta);
            prop_assume!(seq > 0 && (delta >= 0 || -delta < i64::from(size)));
            let seq = seq as u64;
            prop_assert_eq!(w.infer_esn(seq as u32), Some(seq));
        }
    }
}
