//! Arbitrary UDVM bytecode in a valid SigComp header; see fuzzing::sigcomp_bytecode.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::sigcomp_bytecode(data));
