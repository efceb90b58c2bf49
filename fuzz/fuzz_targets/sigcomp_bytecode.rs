//! Arbitrary UDVM bytecode: the input is split into bytecode and
//! compressed data and wrapped in a valid SigComp header, so every run
//! reaches the UDVM. Checks that nothing panics, the cycle budget of
//! RFC 3320 §8.6 holds, output stays within 65536 bytes, and committed
//! state stays within the compartment's state_memory_size.
#![no_main]

use sigcomp::{CompartmentId, Decompressor, Parameters, StateHandler, Transport};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let code_len = (usize::from(ctl) * 8).min(rest.len()).min(4095);
    let (code, input) = rest.split_at(code_len);
    let dest = (ctl & 0x0f).max(1);
    let mut msg = vec![0xf8, (code_len >> 4) as u8, ((code_len as u8 & 0x0f) << 4) | dest];
    msg.extend_from_slice(code);
    msg.extend_from_slice(input);
    let cpb = [16u16, 32, 64, 128][usize::from(ctl >> 6)];
    let params = Parameters { decompression_memory_size: 8192, state_memory_size: 2048, cycles_per_bit: cpb, version: 2 };
    let Ok(mut d) = Decompressor::new(params) else { return };
    let mut states = StateHandler::with_dictionaries();
    states.open_compartment(CompartmentId(1), 2048);
    let budget = (8 * msg.len() as u64 + 1000) * u64::from(cpb);
    match d.decompress(&msg, Transport::Message, &states) {
        Ok(out) => {
            assert!(out.cycles <= budget);
            assert!(out.output.len() <= 65536);
            if states.commit(CompartmentId(1), &out).is_ok() {
                assert!(states.compartment(CompartmentId(1)).is_some_and(|c| c.used() <= 2048));
            }
        }
        Err(f) => assert!(f.cycles <= budget),
    }
});
