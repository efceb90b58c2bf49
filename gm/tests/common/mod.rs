//! What the registration tests share (`mod common;` in each).

use gm::reg::Random;

/// A deterministic xorshift: the randomness the tests pass to `gm`, the
/// same run after run.
pub struct Rng(pub u64);

impl Random for Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}
