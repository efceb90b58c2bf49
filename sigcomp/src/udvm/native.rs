//! Our own bytecode's decoding loop, run natively.
//!
//! Nearly every message between two endpoints of ours runs the loop of
//! `sigcomp/bytecode/deflate-dict.asm` from `next_symbol` on: per
//! literal an INPUT-HUFFMAN, a COMPARE, a COPY-LITERAL and a JUMP; per
//! match some twenty instructions. Interpreted, that is most of a
//! message's decompression. When the UDVM reaches `next_symbol` and the
//! memory holds exactly [`CODE`], [`Run::native_loop`] runs the same loop
//! as Rust, with the same effects, instruction by instruction: the same
//! bits taken and cycles charged and earned, the same words written to
//! the loop's variables, the same bytes to the circular buffer through
//! the same byte copying functions, the same failure (reason, opcode,
//! address, cycles). It hands back to the interpreter wherever the loop
//! leaves (`finish`, `flush`, `fail`) and whenever it cannot be sure of
//! that sameness:
//!
//! - fewer than 9 input bits left (INPUT-HUFFMAN may then take a shorter
//!   code bit by bit, or jump to `finish`): the interpreter runs that
//!   symbol;
//! - fewer cycles left than a whole symbol can cost ([`MAX_SYMBOL`]): the
//!   interpreter charges instruction by instruction and fails where the
//!   budget ends;
//! - registers or pointer such that a write could reach below
//!   byte_copy_left (the loop's variables and the code itself), which
//!   only a message that tampers with them can arrange.
//!
//! Nothing else differs, so a message decodes the same whether this runs
//! or not; the tests run both ways and compare (`udvm/tests.rs`), and the
//! interpreter alone remains the reference (`cache_off`).

use std::sync::OnceLock;

use super::*;
use crate::compress::bytecode::{
    BUFFER_START, CODE, COPY_MATCH, FAIL, FINISH, FLUSH, LITERAL, NEXT_SYMBOL, ORIGIN,
};

/// The loop's variables (`at (32)` in the source).
const PTR: u16 = 36;
const INDEX: u16 = 40;
const VAL: u16 = 42;
const LEN: u16 = 44;
const TMP: u16 = 46;

/// The input_bit_order the code sets: P = 1, H = 0, F = 1.
const BIT_ORDER: u16 = 5;

/// More cycles than one symbol can cost: 31 instructions at one cycle,
/// the INPUT-HUFFMANs' operand sets (4 + 1) and a match of at most
/// (7 << 6) + 63 + 3 = 514 bytes.
const MAX_SYMBOL: u64 = 600;

/// The literal/length INPUT-HUFFMAN's operand sets (RFC 1951 §3.2.6) and
/// the distance one's, as in the source.
const LITLEN_SETS: [[u16; 4]; 4] = [
    [7, 0, 23, 256],
    [1, 48, 191, 0],
    [0, 192, 199, 280],
    [1, 400, 511, 144],
];
const DIST_SETS: [[u16; 4]; 1] = [[5, 0, 31, 0]];

/// The decode tables of the two INPUT-HUFFMANs for P = 1, H = 0, built
/// by the interpreter's own [`HuffTab::build_table`].
fn tables() -> &'static (Vec<u32>, Vec<u32>) {
    static TABLES: OnceLock<(Vec<u32>, Vec<u32>)> = OnceLock::new();
    TABLES.get_or_init(|| {
        let build = |sets: &[[u16; 4]]| {
            let mut t = HuffTab {
                sets: sets.to_vec(),
                total_bits: sets.iter().map(|s| u32::from(s[0])).sum(),
                ..HuffTab::default()
            };
            t.build_table(true, false);
            t.table
        };
        (build(&LITLEN_SETS), build(&DIST_SETS))
    })
}

/// Where the loop stopped, and how.
pub(super) enum Left {
    /// Nothing done: the interpreter runs the instruction at `next_symbol`.
    Nothing,
    /// Go on at this address.
    At(u16),
    /// The instruction with this opcode at this address failed.
    Failed(Reason, u8, u16),
}

impl<'a, S: StateStore + ?Sized> Run<'a, S> {
    /// Runs the decoding loop from `next_symbol` (see the module doc).
    pub(super) fn native_loop(&mut self) -> Left {
        if self.mem.get(usize::from(ORIGIN)..usize::from(BUFFER_START)) != Some(&CODE[..]) {
            return Left::Nothing;
        }
        let (Ok((bcl, bcr)), Ok(ibo)) = (self.bounds(), self.word(INPUT_BIT_ORDER)) else {
            return Left::Nothing;
        };
        let word = |r: &Self, a: u16| r.word(a).unwrap_or_default();
        let mut ptr = word(self, PTR);
        // Every write lands in byte_copy_left..byte_copy_right (or to the
        // end of memory when byte_copy_right is 0): above the variables
        // and the code, which the loop therefore may keep to itself.
        let inside = |a: u16| a >= bcl && (bcr == 0 || a < bcr);
        if ibo != BIT_ORDER || bcl < BUFFER_START || !(bcr == 0 || bcl < bcr) || !inside(ptr) {
            return Left::Nothing;
        }
        let (litlen, dist) = tables();
        let mut index = word(self, INDEX);
        let mut val = word(self, VAL);
        let mut len = word(self, LEN);
        let mut tmp = word(self, TMP);
        let mut symbols = 0u64;
        let left = loop {
            self.note_p(true);
            if self.used + MAX_SYMBOL > self.limit || self.bits_available() < 9 {
                break Left::At(NEXT_SYMBOL);
            }
            symbols += 1;
            // INPUT-HUFFMAN (index, finish, 4, ...): the table is complete.
            let e = litlen
                .get(usize::from(self.peek_bits(9, true)))
                .copied()
                .unwrap_or(0);
            let taken = ((e >> 16) & 0x1f) as u16;
            self.skip_bits(taken);
            self.credit(usize::from(taken));
            index = e as u16;
            // ... and COMPARE ($index, 256, literal, finish, match).
            self.used += 5 + 1;
            if index < 256 {
                // COPY-LITERAL ((index + 1), 1, $ptr): the low byte of index.
                self.used += 2;
                if let Err(r) = self.set_byte(ptr, index as u8) {
                    break Left::Failed(r, op::COPY_LITERAL, LITERAL);
                }
                ptr = next(ptr, bcl, bcr);
                // JUMP (next_symbol)
                self.used += 1;
                continue;
            }
            if index == 256 {
                break Left::At(FINISH);
            }
            // COMPARE ($index, 286, length, flush, flush)
            self.used += 1;
            if index >= 286 {
                break Left::At(FLUSH);
            }
            // SUBTRACT ($index, 257), LOAD (val, $index), COMPARE ($index, 8, ...)
            index -= 257;
            val = index;
            self.used += 3;
            if index >= 8 && !self.extra(4, &mut val, &mut index, &mut tmp) {
                break Left::At(FAIL);
            }
            // ADD ($val, 3), LOAD (len, $val)
            val = val.wrapping_add(3);
            len = val;
            self.used += 2;
            // INPUT-HUFFMAN (index, fail, 1, 5, 0, 31, 0)
            self.used += 2;
            if self.bits_available() < 5 {
                break Left::At(FAIL);
            }
            let e = dist
                .get(usize::from(self.peek_bits(5, true)))
                .copied()
                .unwrap_or(0);
            self.skip_bits(5);
            self.credit(5);
            index = e as u16;
            // LOAD (val, $index), COMPARE ($index, 4, ...)
            val = index;
            self.used += 2;
            if index >= 4 && !self.extra(2, &mut val, &mut index, &mut tmp) {
                break Left::At(FAIL);
            }
            // ADD ($val, 1), COPY-OFFSET ($val, $len, $ptr), JUMP (next_symbol)
            val = val.wrapping_add(1);
            self.used += 1 + 1 + u64::from(len);
            let from = offset_back(ptr, val, bcl, bcr);
            match self.copy(from, len, ptr, (bcl, bcr)) {
                Ok(after) => ptr = after,
                Err(r) => break Left::Failed(r, op::COPY_OFFSET, COPY_MATCH),
            }
            self.used += 1;
        };
        for (a, v) in [
            (PTR, ptr),
            (INDEX, index),
            (VAL, val),
            (LEN, len),
            (TMP, tmp),
        ] {
            // Below byte_copy_left: inside memory, never part of the buffer.
            let _ = self.set_word(a, v);
        }
        self.native_symbols += symbols;
        match left {
            Left::At(NEXT_SYMBOL) if symbols == 0 => Left::Nothing,
            l => l,
        }
    }

    /// `length_extra` (m = 4) or `distance_extra` (m = 2) on the loop's
    /// variables: REMAINDER ($val, m), ADD ($val, m), DIVIDE ($index, m),
    /// SUBTRACT ($index, 1), LSHIFT ($val, $index), INPUT-BITS ($index,
    /// tmp, fail) with the F bit set and P = 1, ADD ($val, $tmp), cycles
    /// charged; `false` when the input holds too few bits (the INPUT-BITS
    /// jumps to `fail`, and the last ADD does not run).
    fn extra(&mut self, m: u16, val: &mut u16, index: &mut u16, tmp: &mut u16) -> bool {
        *val = ((*val % m) + m)
            .checked_shl(u32::from(*index / m - 1))
            .unwrap_or(0);
        *index = *index / m - 1;
        self.used += 5 + 1;
        self.note_p(true);
        let n = *index;
        if usize::from(n) > self.bits_available() {
            return false;
        }
        *tmp = self.take_bits(n, true, true);
        self.credit(usize::from(n));
        *val = val.wrapping_add(*tmp);
        self.used += 1;
        true
    }
}

#[cfg(test)]
mod tests {

    use crate::compress::{Compressor, Config};
    use crate::feedback::Resources;
    use crate::state::{CompartmentId, StateHandler};
    use crate::{Decompressor, Parameters, Transport};

    use testkit::corpus::independent as corpus;

    /// The loop run natively gives exactly what the interpreter alone
    /// gives (`cache_off`): the corpus compressed twice over as one flow
    /// (so later messages name earlier ones), at several memory sizes and
    /// cycles per bit, each message decompressed as sent and damaged
    /// (a byte changed, cut short, lengthened) by both decompressors and
    /// the results compared whole: output, cycles, state requests and
    /// feedback, or the failure with its reason, opcode, address and
    /// cycles.
    #[test]
    fn native_loop_equals_the_interpreter() {
        let corpus = corpus();
        let mut seed: u32 = 20261206;
        let mut rnd = move |m: usize| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 8) as usize % m.max(1)
        };
        let cid = CompartmentId(3);
        let (mut compared, mut failed, mut native) = (0, 0, 0);
        for (dms, cpb) in [(2048, 16), (8192, 16), (16384, 32), (65536, 16)] {
            let params = Parameters {
                decompression_memory_size: dms,
                state_memory_size: dms.min(16384),
                cycles_per_bit: cpb,
                version: 2,
            };
            let mut c = Compressor::new(Config {
                peer: Resources {
                    cycles_per_bit: cpb,
                    decompression_memory_size: dms,
                    state_memory_size: params.state_memory_size,
                },
                ..Config::default()
            })
            .unwrap();
            let mut fast = Decompressor::new(params).unwrap();
            let mut slow = Decompressor::new(params).unwrap();
            slow.udvm.cache_off = true;
            let mut states = StateHandler::with_dictionaries();
            states.open_compartment(cid, params.state_memory_size);
            let mut wire = Vec::new();
            for msg in corpus.iter().chain(&corpus) {
                c.compress(msg, &mut wire);
                if !crate::message::is_sigcomp(&wire) {
                    continue;
                }
                for k in 0..24 {
                    let mut w = wire.clone();
                    match k {
                        0 => {}
                        1..=15 => {
                            let i = rnd(w.len());
                            w[i] = rnd(256) as u8;
                        }
                        16..=19 => w.truncate(rnd(w.len())),
                        _ => w.extend((0..1 + rnd(40)).map(|_| rnd(256) as u8)),
                    }
                    let before = fast.udvm.native_symbols;
                    let a = fast.decompress(&w, Transport::Message, &states);
                    let b = slow.decompress(&w, Transport::Message, &states);
                    assert_eq!(a, b, "DMS {dms}, {cpb} cycles/bit, case {k}: {w:02x?}");
                    native += u64::from(fast.udvm.native_symbols > before);
                    compared += 1;
                    failed += u64::from(a.is_err());
                }
                let out = fast.decompress(&wire, Transport::Message, &states).unwrap();
                assert_eq!(&out.output, msg);
                states.commit(cid, &out).unwrap();
                if let Some(item) = out.requested_feedback.as_ref().and_then(|r| r.item.clone()) {
                    c.on_feedback_item(&item);
                }
            }
            assert_eq!(slow.udvm.native_symbols, 0);
        }
        // Both ways were taken, and every way out.
        assert!(native * 2 > compared, "{native} of {compared}");
        assert!(failed * 4 > compared, "{failed} of {compared}");
    }

    /// Bits as our bytecode reads them: P = 1 (each byte from its LSB),
    /// Huffman codes with their first bit the MSB (H = 0), extra bits
    /// LSB first (F = 1).
    #[derive(Default)]
    struct Bits {
        out: Vec<u8>,
        n: usize,
    }

    impl Bits {
        fn bit(&mut self, b: bool) {
            if self.n % 8 == 0 {
                self.out.push(0);
            }
            if b {
                *self.out.last_mut().unwrap() |= 1 << (self.n % 8);
            }
            self.n += 1;
        }
        fn code(&mut self, v: u32, len: u32) {
            (0..len).rev().for_each(|i| self.bit(v >> i & 1 == 1));
        }
        fn extra(&mut self, v: u32, len: u32) {
            (0..len).for_each(|i| self.bit(v >> i & 1 == 1));
        }
    }

    /// A message uploading our bytecode, making no state, whose symbols
    /// are 10 literals and then `matches` times the longest match (symbol
    /// 285 with 6 extra bits set: (4 << 6) + 63 + 3 = 322 bytes) at
    /// distance 1: each costs more cycles than its 19 bits earn.
    fn long_matches(matches: usize) -> Vec<u8> {
        let code = crate::compress::bytecode::upload();
        let mut msg = vec![
            0xf8,
            (code.len() >> 4) as u8,
            ((code.len() & 15) << 4) as u8 | 1,
        ];
        msg.extend_from_slice(code);
        msg.extend_from_slice(&[0, 0, 0]); // seq 0, no preload
        let mut b = Bits::default();
        for _ in 0..10 {
            b.code(0x30 + u32::from(b'a'), 8); // literals 0-143: 8 bits from 0x30
        }
        for _ in 0..matches {
            b.code(0xc0 + 5, 8); // 285: 8 bits from 0xc0 (280)
            b.extra(63, 6);
            b.code(0, 5); // distance code 0: 1
        }
        msg.extend_from_slice(&b.out);
        msg
    }

    /// Cycles that run out inside the loop (a long run of matches, which
    /// wraps the circular buffer many times before it does) fail at the
    /// same instruction, with the same count, as in the interpreter; a
    /// short run of the same matches decodes alike.
    #[test]
    fn cycles_run_out_alike() {
        let params = Parameters {
            decompression_memory_size: 65536,
            ..Parameters::default()
        };
        let states = StateHandler::with_dictionaries();
        let mut fast = Decompressor::new(params).unwrap();
        let mut slow = Decompressor::new(params).unwrap();
        slow.udvm.cache_off = true;
        for (matches, exhausted) in [(3000, true), (20, false)] {
            let msg = long_matches(matches);
            let before = fast.udvm.native_symbols;
            let a = fast.decompress(&msg, Transport::Message, &states);
            let b = slow.decompress(&msg, Transport::Message, &states);
            assert_eq!(a, b, "{matches} matches");
            assert!(fast.udvm.native_symbols - before > 10);
            match a {
                Err(f) => {
                    assert!(exhausted, "{f:?}");
                    assert_eq!(f.reason, crate::error::Reason::CyclesExhausted);
                    // Inside the loop, which the interpreter finished.
                    let r =
                        crate::compress::bytecode::NEXT_SYMBOL..crate::compress::bytecode::FINISH;
                    assert!(r.contains(&f.pc), "{f:?}");
                }
                Ok(d) => {
                    assert!(!exhausted);
                    assert_eq!(d.output.len(), 10 + 20 * 322);
                    assert!(d.output.starts_with(b"aaaaaaaaaa"));
                }
            }
        }
    }
}
