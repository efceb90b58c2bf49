//! What the registration tests share (`mod common;` in each).

use gm::reg::{OpKey, Random, Subscriber};

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

/// A subscriber of the in-memory networks: AKA with `k` and OPc `opc`,
/// AMF 8000, the network's SQN at 32, no IMPUs beyond its IMPI's.
#[allow(dead_code)] // not every test file that shares this module needs it
pub fn subscriber(k: [u8; 16], opc: [u8; 16]) -> Subscriber {
    Subscriber {
        k,
        op: OpKey::Opc(opc),
        amf: [0x80, 0],
        sqn: 32,
        impus: Vec::new(),
    }
}
