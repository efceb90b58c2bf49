//! The SMS-over-IP codec on hostile RP messages and TPDUs; see fuzzing::sms_decode.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::sms_decode(data));
