//! The SIP codec on hostile datagrams and streams, with emission and edits; see fuzzing::sip_parse.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::sip_parse(data));
