//! Input for our own bytecode, its decoding loop native and interpreted; see fuzzing::sigcomp_native.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::sigcomp_native(data));
