//! SigComp messages and UDVM bytecode on hostile input.

use sigcomp::{
    CompartmentId, Decompressor, Nack, Parameters, StateHandler, StreamDeframer, Transport,
};

/// The RFC 3320 §8.6 cycle budget of a message of `len` bytes:
/// (8 × message size + 1000) × cycles_per_bit.
fn cycle_budget(len: usize, cycles_per_bit: u16) -> u64 {
    (8 * len as u64 + 1000) * u64::from(cycles_per_bit)
}

/// Target `sigcomp_message`: arbitrary bytes as a SigComp message.
///
/// The bytes are decompressed as a message (UDP) and as a stream record
/// (TCP) against a state handler holding the dictionaries and the states
/// the first decompression created; they also go through the NACK parser
/// and the stream deframer, whose records are decompressed in turn.
///
/// Invariants: no panic; every decompression, successful or not, stays
/// within the cycle budget of RFC 3320 §8.6; the deframer consumes at
/// least one byte per call (it would otherwise loop forever).
pub fn sigcomp_message(data: &[u8]) {
    let mut states = StateHandler::with_dictionaries();
    states.open_compartment(CompartmentId(0), 4096);
    let params = Parameters {
        decompression_memory_size: 8192,
        state_memory_size: 4096,
        cycles_per_bit: 16,
        version: 2,
    };
    let Ok(mut d) = Decompressor::new(params) else {
        return;
    };
    let budget = cycle_budget(data.len(), 16);
    for transport in [Transport::Message, Transport::Stream] {
        match d.decompress(data, transport, &states) {
            Ok(out) => {
                assert!(
                    out.cycles <= budget,
                    "{} cycles > budget {budget}",
                    out.cycles
                );
                let _ = states.commit(CompartmentId(0), &out);
            }
            Err(f) => {
                assert!(f.cycles <= budget, "{} cycles > budget {budget}", f.cycles);
                let _ = Nack::from_failure(&f, data);
            }
        }
    }
    let _ = Nack::parse(data);
    let mut de = StreamDeframer::new(8192);
    let mut rest = data;
    while !rest.is_empty() {
        match de.push(rest) {
            Ok((used, rec)) => {
                if let Some(r) = rec {
                    let r = r.to_vec();
                    let _ = d.decompress(&r, Transport::Stream, &states);
                }
                // Each push consumes at least one byte, so this ends.
                assert!(
                    (1..=rest.len()).contains(&used),
                    "deframer consumed {used} of {} bytes",
                    rest.len()
                );
                rest = rest.get(used..).unwrap_or_default();
            }
            Err(_) => break,
        }
    }
}

/// Target `sigcomp_bytecode`: arbitrary UDVM bytecode.
///
/// The first byte sets the bytecode length (× 8, at most 4095), the
/// destination (low nibble, at least 1) and cycles_per_bit (top two bits:
/// 16, 32, 64, 128); the next bytes are the bytecode and the rest the
/// compressed data, wrapped in a valid SigComp header, so every run reaches
/// the UDVM.
///
/// Invariants: no panic; the cycle budget of RFC 3320 §8.6 holds; output
/// stays within 65536 bytes; committed state stays within the compartment's
/// state_memory_size.
pub fn sigcomp_bytecode(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let code_len = (usize::from(ctl) * 8).min(rest.len()).min(4095);
    let (code, input) = rest.split_at(code_len);
    let dest = (ctl & 0x0f).max(1);
    // RFC 3320 §7.3: 0xf8, code_len (12 bits), destination (4 bits).
    let mut msg = vec![
        0xf8,
        (code_len >> 4) as u8,
        (((code_len & 0x0f) as u8) << 4) | dest,
    ];
    msg.extend_from_slice(code);
    msg.extend_from_slice(input);
    let cpb = [16u16, 32, 64, 128][usize::from(ctl >> 6)];
    let params = Parameters {
        decompression_memory_size: 8192,
        state_memory_size: 2048,
        cycles_per_bit: cpb,
        version: 2,
    };
    let Ok(mut d) = Decompressor::new(params) else {
        return;
    };
    let mut states = StateHandler::with_dictionaries();
    states.open_compartment(CompartmentId(1), 2048);
    let budget = cycle_budget(msg.len(), cpb);
    match d.decompress(&msg, Transport::Message, &states) {
        Ok(out) => {
            assert!(
                out.cycles <= budget,
                "{} cycles > budget {budget}",
                out.cycles
            );
            assert!(
                out.output.len() <= 65536,
                "{} bytes of output",
                out.output.len()
            );
            if states.commit(CompartmentId(1), &out).is_ok() {
                let used = states.compartment(CompartmentId(1)).map(|c| c.used());
                assert!(
                    used.is_some_and(|u| u <= 2048),
                    "compartment holds {used:?} bytes > 2048"
                );
            }
        }
        Err(f) => assert!(f.cycles <= budget, "{} cycles > budget {budget}", f.cycles),
    }
}

/// Target `sigcomp_native`: input for our own bytecode, run with its
/// decoding loop native and interpreted.
///
/// The first byte picks the decompression memory size (2048 to 65536)
/// and cycles per bit; the rest is the input of a message that uploads
/// our bytecode (`sigcomp::compress::bytecode`): sequence number,
/// preload entries (partial ids of the dictionaries' states reach past
/// the preload), DEFLATE symbols. The seeds are our compressor's own
/// messages.
///
/// Invariant: the two runs give the same result, whole (output, cycles,
/// state requests, feedback; or the failure's reason, opcode, address
/// and cycles), and the cycle budget holds.
pub fn sigcomp_native(data: &[u8]) {
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let code = sigcomp::compress::bytecode::upload();
    let mut msg = vec![
        0xf8,
        (code.len() >> 4) as u8,
        (((code.len() & 0x0f) as u8) << 4) | 1,
    ];
    msg.extend_from_slice(code);
    msg.extend_from_slice(input);
    let dms = 2048u32 << (ctl & 7).min(5);
    let cpb = [16u16, 32, 64, 128][usize::from((ctl >> 3) & 3)];
    let params = Parameters {
        decompression_memory_size: dms,
        state_memory_size: dms.min(16384),
        cycles_per_bit: cpb,
        version: 2,
    };
    let Ok(mut native) = Decompressor::new(params) else {
        return;
    };
    let mut interpreted = native.clone();
    interpreted.set_native_loop(false);
    let states = StateHandler::with_dictionaries();
    let a = native.decompress(&msg, Transport::Message, &states);
    let b = interpreted.decompress(&msg, Transport::Message, &states);
    assert_eq!(a, b, "native and interpreted differ");
    let cycles = match &a {
        Ok(out) => out.cycles,
        Err(f) => f.cycles,
    };
    let budget = cycle_budget(msg.len(), cpb);
    assert!(cycles <= budget, "{cycles} cycles > budget {budget}");
}
