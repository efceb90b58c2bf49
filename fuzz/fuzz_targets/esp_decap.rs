//! ipsec_esp::Sa::decap and decap_esp on hostile and mutated packets; see fuzzing::esp_decap.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::esp_decap(data));
