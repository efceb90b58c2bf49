//! The setkey parser on hostile text, and print -> parse round trips; see fuzzing::setkey_parse.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::setkey_parse(data));
