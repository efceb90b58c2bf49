//! Benchmarks live in `benches/benches/`; the comparison scripts beside
//! them run ours and other implementations in one go. This library holds
//! what several benchmarks share.

use std::time::Instant;

/// Packets per batch of [`race`].
pub const BATCH: usize = 256;

/// Two ways of processing the same packets, timed side by side: `a` and
/// `b` alternate batch by batch (`batches` batches each), each batch
/// prepared untimed by `refill`; returns the ns per packet of the fastest
/// batch of each. Alternating keeps other load on a shared machine out of
/// the ratio, and the fastest batch is the one noise slowed least.
pub fn race(
    batches: usize,
    refill: &mut dyn FnMut(&mut Vec<Vec<u8>>),
    a: &mut dyn FnMut(&mut Vec<u8>),
    b: &mut dyn FnMut(&mut Vec<u8>),
) -> (f64, f64) {
    let mut best = [u128::MAX; 2];
    let mut bufs = Vec::new();
    for _ in 0..batches {
        for (k, slot) in best.iter_mut().enumerate() {
            refill(&mut bufs);
            let t = Instant::now();
            for buf in bufs.iter_mut() {
                if k == 0 { a(buf) } else { b(buf) }
            }
            *slot = (*slot).min(t.elapsed().as_nanos());
        }
    }
    (best[0] as f64 / BATCH as f64, best[1] as f64 / BATCH as f64)
}

/// The independent IMS corpus (`vectors/sigcomp/independent/corpus/*.sip`,
/// 14 SIP messages), in file-name order: what the SigComp benchmarks send.
/// Panics when the files cannot be read: a benchmark without its input
/// has nothing to measure.
pub fn corpus() -> Vec<Vec<u8>> {
    testkit::corpus::independent()
}
