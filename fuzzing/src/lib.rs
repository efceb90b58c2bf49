//! `fuzzing`: the checks behind each cargo-fuzz target in `fuzz/`, as plain
//! library functions, so that they build and run on stable Rust.
//!
//! One public function per target, each taking the fuzzer's `&[u8]`:
//!
//! | function | target | what it drives |
//! |---|---|---|
//! | [`esp_decap`] | `esp_decap` | `ipsec_esp::Sa::decap`/`decap_esp` on hostile packets and on mutated real ones |
//! | [`setkey_parse`] | `setkey_parse` | the setkey parser, and print → parse round trips |
//! | [`sigcomp_message`] | `sigcomp_message` | SigComp messages, the stream deframer and NACKs |
//! | [`sigcomp_bytecode`] | `sigcomp_bytecode` | arbitrary UDVM bytecode in a valid SigComp header |
//! | [`sigcomp_native`] | `sigcomp_native` | input for our own bytecode, its decoding loop native and interpreted |
//! | [`engine`] | `engine` | the IPsec engine (`sadb::Databases::protect`/`unprotect`) |
//! | [`sip_parse`] | `sip_parse` | the SIP codec (`gm::sip`): framing, typed headers, checks, emission and edits |
//! | [`sms_decode`] | `sms_decode` | the SMS-over-IP codec (`gm::sms`): RP messages and TPDUs, decode → encode → decode |
//! | [`gm_roles`] | `gm_roles` | the Gm roles (`gm::network::Pcscf`, `gm::ue::Ua`) after a registration: hostile and mutated datagrams on every flow, loss, reordering, time, commands |
//!
//! Each function returns normally on any input, and panics only when an
//! invariant of the code under test is broken: a panic is what the fuzzer
//! reports as a crash. `fuzz/fuzz_targets/*.rs` are one-line wrappers
//! (`cargo +nightly fuzz run engine`), and `tests/seeds.rs` calls every
//! function on the committed inputs in `fuzz/seeds/<target>/` on stable, so
//! a target cannot stop compiling, and a crash once found cannot come back,
//! without `cargo test` failing. `tests/make_seeds.rs` (ignored) writes the
//! generated seeds.
//!
//! ```
//! // Any bytes are a valid input; only a broken invariant panics.
//! fuzzing::esp_decap(&[0, 1, 0x45, 0, 0, 20]);
//! fuzzing::setkey_parse(b"flush;");
//! fuzzing::sigcomp_message(&[0xf8, 0x00]);
//! fuzzing::sigcomp_bytecode(&[1, 0x23]);
//! fuzzing::sigcomp_native(&[2, 0, 0, 0, 0xff]);
//! fuzzing::engine(&[0, 1, 2, 3]);
//! fuzzing::sip_parse(b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n");
//! fuzzing::sms_decode(&[6, 1]);
//! fuzzing::gm_roles(&[4, 200]);
//! ```
//!
//! Not here: the fuzzing engine itself (libFuzzer, in `fuzz/`, nightly
//! only) and the corpora it grows (`fuzz/corpus/`, not committed).

// Asserting is the whole point of these functions: a panic is how a broken
// invariant reaches the fuzzer (and the seed test), and `expect` is used
// only on the fixed configurations built once, never on fuzzer input.
#![allow(clippy::panic, clippy::expect_used)]

mod engine;
mod esp_decap;
mod gm_roles;
mod setkey_parse;
mod sigcomp;
mod sip;
mod sms;

pub use engine::engine;
pub use esp_decap::esp_decap;
pub use gm_roles::gm_roles;
pub use setkey_parse::setkey_parse;
pub use sigcomp::{sigcomp_bytecode, sigcomp_message, sigcomp_native};
pub use sip::sip_parse;
pub use sms::sms_decode;

/// Helpers for `tests/make_seeds.rs`, which writes the committed seeds:
/// packets protected with the targets' own SAs, so that seeds for the raw
/// modes reach past the ICV check.
pub mod seed {
    /// The `esp_decap` SA that selector byte `sel` picks, applied to the IP
    /// packet `plain` (`None` if the SA refuses it).
    pub fn esp_decap_protected(sel: u8, plain: &[u8]) -> Option<Vec<u8>> {
        crate::esp_decap::protected(sel, plain)
    }

    /// The `nth` (from 1) packet that a fresh sender of `engine`
    /// configuration `config` sends for the IP packet `plain` (`None` unless
    /// it is protected): seeds with different sequence numbers for one SA
    /// pass its replay window in any order.
    pub fn engine_protected(config: u8, plain: &[u8], nth: u32) -> Option<Vec<u8>> {
        crate::engine::protected(config, plain, nth)
    }

    /// How many configurations `engine` has (its first byte is taken modulo
    /// this number).
    pub fn engine_configurations() -> usize {
        crate::engine::configurations()
    }
}
