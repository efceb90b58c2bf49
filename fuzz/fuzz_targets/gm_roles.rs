//! The Gm roles after a registration, on a script of hostile and mutated datagrams, loss, time and commands; see fuzzing::gm_roles.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::gm_roles(data));
