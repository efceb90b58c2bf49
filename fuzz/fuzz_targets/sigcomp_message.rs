//! Arbitrary bytes as SigComp messages, stream records and NACKs; see fuzzing::sigcomp_message.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::sigcomp_message(data));
