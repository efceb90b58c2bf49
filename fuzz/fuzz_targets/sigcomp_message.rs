#![no_main]
// Placeholder: the owner of this area writes the real target.
libfuzzer_sys::fuzz_target!(|_data: &[u8]| {});
