//! The IPsec engine (Databases::protect/unprotect), raw and structure-aware; see fuzzing::engine.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::engine(data));
