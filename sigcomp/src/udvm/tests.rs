//! Unit tests of the UDVM: each fast path against its reference (the
//! byte-at-a-time copy, the bit-at-a-time reader, decoding each time, the
//! set-by-set Huffman decode) and the instruction code against
//! [`crate::isa`].

use super::*;

fn offset_back_slow(dest: u16, offset: u16, bcl: u16, bcr: u16) -> u16 {
    let mut a = dest;
    for _ in 0..offset {
        a = if a == bcl {
            bcr.wrapping_sub(1)
        } else {
            a.wrapping_sub(1)
        };
    }
    a
}

struct NoStates;
impl StateStore for NoStates {
    fn lookup(&self, _: &[u8]) -> Result<&State, crate::state::LookupError> {
        Err(crate::state::LookupError::NotFound)
    }
}

/// The byte-at-a-time copy of RFC 3320 §8.4 as a reference model.
fn naive_copy(mem: &mut [u8], src: u16, len: u16, dst: u16, bcl: u16, bcr: u16) -> Option<u16> {
    let (mut s, mut d) = (src, dst);
    for _ in 0..len {
        let b = *mem.get(usize::from(s))?;
        *mem.get_mut(usize::from(d))? = b;
        s = next(s, bcl, bcr);
        d = next(d, bcl, bcr);
    }
    Some(d)
}

#[test]
fn chunked_copy_equals_byte_at_a_time_copy() {
    let mut seed: u32 = 12345;
    let mut rnd = |m: u32| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (seed >> 8) % m
    };
    for _ in 0..20000 {
        let size = 256usize;
        let bcl = rnd(300) as u16;
        let bcr = rnd(300) as u16;
        let src = rnd(300) as u16;
        let dst = rnd(300) as u16;
        let len = rnd(600) as u16;
        let init: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut want = init.clone();
        let want_end = naive_copy(&mut want, src, len, dst, bcl, bcr);
        let mut mem = init.clone();
        let (mut sk, mut st, mut hs, mut out) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut run = Run {
            mem: &mut mem,
            sort_keys: &mut sk,
            sort_tmp: &mut st,
            huff_sets: &mut hs,
            states: &NoStates,
            input: &[],
            in_pos: 0,
            bit_buf: 0,
            bit_count: 0,
            last_p: None,
            cpb: 16,
            limit: 0,
            used: 0,
            output: &mut out,
            pending: [None; 8],
            n_create: 0,
            n_free: 0,
            details: Vec::new(),
            ended: None,
            output_seen: false,
            max_state_len: 0,
            native_symbols: 0,
        };
        let got_end = run.copy(src, len, dst, (bcl, bcr)).ok();
        assert_eq!(
            got_end, want_end,
            "src {src} dst {dst} len {len} bcl {bcl} bcr {bcr}"
        );
        if want_end.is_some() {
            assert_eq!(
                mem, want,
                "src {src} dst {dst} len {len} bcl {bcl} bcr {bcr}"
            );
        }
        let mut a = Vec::new();
        let mut b = Vec::new();
        let ra = read_into(&init, src, len, (bcl, bcr), &mut a).ok();
        let mut s = src;
        let mut rb = Some(());
        for _ in 0..len {
            match init.get(usize::from(s)) {
                Some(&x) => b.push(x),
                None => {
                    rb = None;
                    break;
                }
            }
            s = next(s, bcl, bcr);
        }
        assert_eq!(ra, rb);
        if rb.is_some() {
            assert_eq!(a, b);
        }
    }
}

/// Random programs of mostly hot instructions in a small memory, so
/// that they often overwrite their own code, give the same result
/// (output, cycles, state requests, or failure with its pc, opcode and
/// cycles) with the decoded-instruction cache, warm from the previous
/// message or cold, as when every instruction is decoded from memory.
#[test]
fn decoded_instruction_cache_equals_decoding_each_time() {
    let mut seed: u32 = 99;
    let mut rnd = |m: u32| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (seed >> 8) % m
    };
    let ops = [
        op::ADD,
        op::SUBTRACT,
        op::AND,
        op::NOT,
        op::LSHIFT,
        op::DIVIDE,
        op::LOAD,
        op::LOAD,
        op::COPY,
        op::COPY_LITERAL,
        op::COPY_OFFSET,
        op::JUMP,
        op::COMPARE,
        op::COMPARE,
        op::INPUT_BITS,
        op::INPUT_BYTES,
        op::INPUT_HUFFMAN,
        op::INPUT_HUFFMAN,
        op::OUTPUT,
        op::OUTPUT,
        op::PUSH,
        op::POP,
        op::CALL,
        op::RETURN,
        op::MULTILOAD,
        op::MEMSET,
        op::END_MESSAGE,
    ];
    let (mut warm, mut cold_total) = (Udvm::default(), 0);
    for case in 0..8000 {
        let mut code = Vec::new();
        for _ in 0..(4 + rnd(20)) {
            let opcode = ops[rnd(ops.len() as u32) as usize];
            code.push(opcode);
            let n_operands = match opcode {
                op::NOT | op::JUMP | op::CALL | op::PUSH | op::POP => 1,
                op::RETURN => 0,
                op::COMPARE => 5,
                op::END_MESSAGE => 7,
                op::INPUT_HUFFMAN => 3 + 4 * (rnd(7) as usize),
                op::MEMSET => 4,
                op::MULTILOAD => 4,
                op::COPY_LITERAL
                | op::COPY_OFFSET
                | op::COPY
                | op::INPUT_BITS
                | op::INPUT_BYTES => 3,
                _ => 2,
            };
            for k in 0..n_operands {
                // Literal counts kept small (INPUT-HUFFMAN n, MULTILOAD n).
                if (opcode == op::INPUT_HUFFMAN && k == 2) || (opcode == op::MULTILOAD && k == 1) {
                    code.push(if opcode == op::INPUT_HUFFMAN {
                        (n_operands as u8 - 3) / 4
                    } else {
                        2
                    });
                    continue;
                }
                match rnd(10) {
                    0..=3 => code.push(rnd(0x40) as u8),
                    4 | 5 => code.push(0x40 + rnd(0x40) as u8),
                    6 => code.extend([0xa0 | rnd(3) as u8, rnd(256) as u8]),
                    7 => code.extend([0xc0 | rnd(2) as u8, rnd(256) as u8]),
                    8 => code.extend([0x80 + rnd(2) as u8, rnd(2) as u8, rnd(256) as u8]),
                    _ => code.push([0x86, 0x88, 0xe5, 0x84][rnd(4) as usize]),
                }
            }
        }
        let input: Vec<u8> = (0..rnd(60)).map(|_| rnd(256) as u8).collect();
        let size = 384 + rnd(256) as usize;
        let bit_order = rnd(8) as u8;
        let run = |u: &mut Udvm| {
            let mem = u.reset(size);
            let n = code.len().min(size - 128);
            mem[128..128 + n].copy_from_slice(&code[..n]);
            for (i, b) in mem[..128].iter_mut().enumerate().skip(32) {
                *b = (i as u8).wrapping_mul(37);
            }
            // A valid input_bit_order (RFC 3320 §8.2), varied.
            mem[68] = 0;
            mem[69] = bit_order;
            let start = Start {
                memory_size: size,
                cycles_per_bit: 16,
                version: 2,
                header_len: 0,
                max_state_len: 1000,
                input: &input,
            };
            let mut out = Vec::new();
            let r = u.run(start, 128, 0, 0, &NoStates, &mut out);
            (r, out)
        };
        let mut cold = Udvm {
            cache_off: true,
            ..Udvm::default()
        };
        let want = run(&mut cold);
        assert_eq!(run(&mut warm), want, "case {case}: code {code:02x?}");
        assert_eq!(run(&mut Udvm::default()), want, "case {case}");
        cold_total += want.0.as_ref().map_or(0, |e| e.cycles);
    }
    // The programs do run for a while.
    assert!(cold_total > 4000, "{cold_total}");
}

/// An INPUT-HUFFMAN longer than the 16 bytes a slot checks, whose last
/// operand set is rewritten between two runs of it: the second run
/// must see the new uncompressed value (0x21 then 0x3f).
#[test]
fn rewritten_tail_of_a_long_input_huffman_is_seen() {
    let code = [
        0x1e, 0x20, 0x1e, 0x04, // INPUT-HUFFMAN (32, +30, 4,
        0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, //
        0x01, 0x0f, 0x0f, 0x21, // 1, 15, 15, 0x21)  at 144..148
        0x22, 0x21, 0x01, // OUTPUT (33, 1)
        0x0e, 0xa0, 0x92, 0xaf, 0x3f, // LOAD (146, 0x0f3f)
        0x16, 0xe4, // JUMP (-28)
        0x23, 0, 0, 0, 0, 0, 0, 0, // END-MESSAGE
    ];
    let run = |u: &mut Udvm| {
        let mem = u.reset(512);
        mem[128..128 + code.len()].copy_from_slice(&code);
        let start = Start {
            memory_size: 512,
            cycles_per_bit: 16,
            version: 2,
            header_len: 0,
            max_state_len: 1000,
            input: &[0xff],
        };
        let mut out = Vec::new();
        let r = u
            .run(start, 128, 0, 0, &NoStates, &mut out)
            .map(|e| e.cycles);
        (r, out)
    };
    let want = run(&mut Udvm {
        cache_off: true,
        ..Udvm::default()
    });
    assert_eq!(want.1, b"!?");
    let mut warm = Udvm::default();
    assert_eq!(run(&mut warm), want);
    assert_eq!(run(&mut warm), want);
}

/// The bit reader against RFC 3320 §8.2 taken one bit at a time.
#[test]
fn take_bits_equals_one_bit_at_a_time() {
    let mut seed: u32 = 7;
    let mut rnd = |m: u32| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (seed >> 8) % m
    };
    let input: Vec<u8> = (0..64).map(|_| rnd(256) as u8).collect();
    for p in [false, true] {
        for _ in 0..200 {
            let (mut sk, mut st, mut hs, mut out, mut mem) = (
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                vec![0u8; 128],
            );
            let mut run = Run {
                mem: &mut mem,
                sort_keys: &mut sk,
                sort_tmp: &mut st,
                huff_sets: &mut hs,
                states: &NoStates,
                input: &input,
                in_pos: 0,
                bit_buf: 0,
                bit_count: 0,
                last_p: None,
                cpb: 16,
                limit: 0,
                used: 0,
                output: &mut out,
                pending: [None; 8],
                n_create: 0,
                n_free: 0,
                details: Vec::new(),
                ended: None,
                output_seen: false,
                max_state_len: 0,
                native_symbols: 0,
            };
            let mut pos = 0usize; // bits of `input` taken
            while pos + 16 < 8 * input.len() {
                let n = rnd(17) as u16;
                let lsb = rnd(2) == 1;
                // Bit `pos` in arrival order: P = 0 takes bytes MSB first.
                let bit = |i: usize| {
                    let b = input[i / 8];
                    let k = i % 8;
                    u16::from(if p { b >> k } else { b >> (7 - k) } & 1)
                };
                let mut want = 0u16;
                for j in 0..usize::from(n) {
                    if lsb {
                        want |= bit(pos + j) << j;
                    } else {
                        want = (want << 1) | bit(pos + j);
                    }
                }
                assert_eq!(
                    run.take_bits(n, p, lsb),
                    want,
                    "p {p} n {n} lsb {lsb} at {pos}"
                );
                pos += usize::from(n);
            }
        }
    }
}

/// Two INPUT-HUFFMAN instructions whose addresses are equal modulo
/// `HUFF_TABS` (as the literal/length and distance ones of our DEFLATE
/// bytecode are), run in turn: each uses its own sets, and keeps its own
/// table instead of rebuilding one they would share at every symbol.
#[test]
fn input_huffman_sharing_a_table_use_their_own_sets() {
    let code = [
        0x1e, 0x20, 0x18, 0x01, 0x01, 0x00, 0x01,
        0x10, // 128: INPUT-HUFFMAN (32, +24, 1, 1, 0, 1, 0x10)
        0x1e, 0x22, 0x10, 0x01, 0x01, 0x00, 0x01,
        0x20, // 136: INPUT-HUFFMAN (34, +16, 1, 1, 0, 1, 0x20)
        0x22, 0x21, 0x01, // OUTPUT (33, 1)
        0x22, 0x23, 0x01, // OUTPUT (35, 1)
        0x16, 0xea, // JUMP (-22)
        0x23, 0, 0, 0, 0, 0, 0, 0, // 152: END-MESSAGE
    ];
    let run = |u: &mut Udvm| {
        let mem = u.reset(512);
        mem[128..128 + code.len()].copy_from_slice(&code);
        let start = Start {
            memory_size: 512,
            cycles_per_bit: 16,
            version: 2,
            header_len: 0,
            max_state_len: 1000,
            input: &[0x0f],
        };
        let mut out = Vec::new();
        let r = u
            .run(start, 128, 0, 0, &NoStates, &mut out)
            .map(|e| e.cycles);
        (r, out)
    };
    let want = run(&mut Udvm {
        cache_off: true,
        ..Udvm::default()
    });
    assert_eq!(want.1, [0x10, 0x20, 0x10, 0x20, 0x11, 0x21, 0x11, 0x21]);
    let mut warm = Udvm::default();
    assert_eq!(run(&mut warm), want);
    assert_eq!(run(&mut warm), want);
    let mut owners: Vec<u32> = warm.slot_huff.iter().map(|t| t.owner).collect();
    owners.sort_unstable();
    assert_eq!(owners[..2], [128, 136]);
}

/// INPUT-HUFFMAN loops over random constant sets, for every input
/// bit order: the decode table gives what the sets taken one by one
/// give (the reference mode decodes set by set).
#[test]
fn huffman_table_equals_set_by_set() {
    let mut seed: u32 = 4465;
    let mut rnd = |m: u32| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (seed >> 8) % m
    };
    let mut matched = 0;
    for case in 0..3000 {
        let n = 1 + rnd(4) as u8;
        let mut code = vec![0x1e, 0x20, 11 + 4 * n, n];
        for _ in 0..n {
            let lower = rnd(40) as u8;
            code.extend([rnd(4) as u8, lower, lower + rnd(24) as u8, rnd(64) as u8]);
        }
        let back = (65536 - (code.len() + 3)) as u16;
        code.extend([0x22, 0x20, 0x02, 0x16, 0x80]);
        code.extend(back.to_be_bytes());
        code.extend([0x23, 0, 0, 0, 0, 0, 0, 0]);
        let bit_order = rnd(8) as u8;
        let input: Vec<u8> = (0..rnd(24)).map(|_| rnd(256) as u8).collect();
        let run = |u: &mut Udvm| {
            let mem = u.reset(512);
            mem[128..128 + code.len()].copy_from_slice(&code);
            mem[69] = bit_order;
            let start = Start {
                memory_size: 512,
                cycles_per_bit: 16,
                version: 2,
                header_len: 0,
                max_state_len: 1000,
                input: &input,
            };
            let mut out = Vec::new();
            let r = u
                .run(start, 128, 0, 0, &NoStates, &mut out)
                .map(|e| e.cycles);
            (r, out)
        };
        let want = run(&mut Udvm {
            cache_off: true,
            ..Udvm::default()
        });
        assert_eq!(run(&mut Udvm::default()), want, "case {case}: {code:02x?}");
        matched += want.1.len() / 2;
    }
    assert!(matched > 5000, "{matched}");
}

/// A JUMP run with the instruction before it must still fail, at its
/// own address, when it cannot pay its cycle.
#[test]
fn jump_after_an_instruction_runs_out_of_cycles_itself() {
    // OUTPUT (32, 1) costs 2, JUMP 1: the budget (1000 + 8 * 2) * 16 =
    // 16256 is spent by the 5419th OUTPUT, so that JUMP fails.
    let code = [0x22, 0x20, 0x01, 0x16, 0xfd];
    let run = |u: &mut Udvm| {
        let mem = u.reset(512);
        mem[128..128 + code.len()].copy_from_slice(&code);
        let start = Start {
            memory_size: 512,
            cycles_per_bit: 16,
            version: 2,
            header_len: 2,
            max_state_len: 1000,
            input: &[],
        };
        let mut out = Vec::new();
        let r = u
            .run(start, 128, 0, 0, &NoStates, &mut out)
            .map(|e| e.cycles);
        (r, out.len())
    };
    let want = run(&mut Udvm {
        cache_off: true,
        ..Udvm::default()
    });
    let f = want.0.clone().unwrap_err();
    assert_eq!(
        (f.reason, f.pc, f.opcode, f.cycles),
        (Reason::CyclesExhausted, 131, op::JUMP, 16256)
    );
    assert_eq!(run(&mut Udvm::default()), want);
}

/// The operands an instruction takes through [`Ops`], recorded.
struct Recorder {
    inner: MemOps,
    kinds: Vec<OperandKind>,
}

impl Ops for Recorder {
    fn literal<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16> {
        self.kinds.push(OperandKind::Literal);
        self.inner.literal(run)
    }
    fn reference<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16> {
        self.kinds.push(OperandKind::Reference);
        self.inner.reference(run)
    }
    fn multi<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16> {
        self.kinds.push(OperandKind::Multitype);
        self.inner.multi(run)
    }
    fn skip_multi<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<()> {
        self.kinds.push(OperandKind::Multitype);
        self.inner.skip_multi(run)
    }
    fn address<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>, inst: u16) -> R<u16> {
        self.kinds.push(OperandKind::Address);
        self.inner.address(run, inst)
    }
    fn end(&self) -> u16 {
        self.inner.end()
    }
}

/// The instruction code and the instruction set table agree, opcode
/// by opcode: the instructions take the operand kinds of
/// `isa::INSTRUCTIONS` in its order and no more bytes than they
/// encode (the decode-each-time path); they charge the cycles of its
/// cost rule; and the decoded-instruction cache decodes exactly the
/// instructions it means to, to the same length (it reads the shapes
/// from the table itself).
#[test]
fn instructions_agree_with_the_isa_table() {
    const INST: u16 = 128;
    let mut charged = 0;
    for opcode in 0..=255u8 {
        let info = isa::by_opcode(opcode);
        // Operands: a count of 2, other values 5, 6, 7... in encodings
        // of 1, 2 and 3 bytes in turn.
        let n = 2u16;
        let kinds: Vec<OperandKind> = info.map_or(Vec::new(), |i| i.shape.operands(n).collect());
        let mut code = vec![opcode];
        let mut values = Vec::new();
        for (i, k) in kinds.iter().enumerate() {
            let v = 5 + i as u8;
            let counts = info.and_then(|x| x.shape.count_at) == Some(i);
            match k {
                OperandKind::Literal if counts => code.push(n as u8),
                OperandKind::Literal => code.extend([0x80, v]),
                // The word at 192.
                OperandKind::Reference => code.extend([0x80, 0x60]),
                _ => match i % 3 {
                    0 => code.push(v),
                    1 => code.extend([0xa0, v]),
                    _ => code.extend([0x80, 0x00, v]),
                },
            }
            values.push(if counts { n } else { u16::from(v) });
        }
        let mut mem = vec![0u8; 1024];
        mem[usize::from(INST)..usize::from(INST) + code.len()].copy_from_slice(&code);
        let (mut sk, mut st, mut hs, mut out) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut run = Run {
            mem: &mut mem,
            sort_keys: &mut sk,
            sort_tmp: &mut st,
            huff_sets: &mut hs,
            states: &NoStates,
            input: &[],
            in_pos: 0,
            bit_buf: 0,
            bit_count: 0,
            last_p: None,
            cpb: 16,
            limit: 1_000_000,
            used: 0,
            output: &mut out,
            pending: [None; 8],
            n_create: 0,
            n_free: 0,
            details: Vec::new(),
            ended: None,
            output_seen: false,
            max_state_len: 1000,
            native_symbols: 0,
        };
        let mut rec = Recorder {
            inner: MemOps::new(INST),
            kinds: Vec::new(),
        };
        // The instructions `step` hands to `step_rare` with a MemOps of
        // their own: run them there with the recorder.
        let mut r = run.step_rare(opcode, INST, &mut rec);
        if matches!(r, Err(Stop::Fail(Reason::InvalidOpcode))) {
            assert!(rec.kinds.is_empty());
            r = run.step(opcode, INST, &mut rec);
        }
        let name = info.map_or("undefined", |i| i.mnemonic);
        assert_eq!(rec.kinds, kinds, "{name}: operand kinds");
        assert_eq!(
            usize::from(rec.end() - INST),
            code.len(),
            "{name}: instruction length"
        );
        match info {
            None => assert!(matches!(r, Err(Stop::Fail(Reason::InvalidOpcode)))),
            // STATE-ACCESS looks its state up before it knows its cost.
            Some(i) if opcode != op::STATE_ACCESS => {
                assert_eq!(run.used, i.cycles(&values), "{name}: cycles");
                charged += 1;
            }
            Some(_) => {}
        }
        // The cache: the instructions it means to, the same length.
        let mut w = code.clone();
        w.resize(16.max(code.len()), 0);
        let slot = decode(INST, &w[..16], &run.mem[..], &mut HuffTab::default());
        if cached(opcode) {
            assert_ne!(slot.kind, SlotKind::Slow, "{name}");
            assert_eq!(usize::from(slot.len), code.len(), "{name}");
        } else {
            assert_eq!(slot.kind, SlotKind::Slow, "{name}");
        }
    }
    assert_eq!(charged, 35);
}

#[test]
fn offset_back_matches_the_step_rule() {
    for &(bcl, bcr) in &[
        (100u16, 200u16),
        (200, 100),
        (0, 0),
        (5, 6),
        (10, 10),
        (65530, 4),
    ] {
        for dest in [0u16, 3, 99, 100, 101, 150, 199, 200, 250, 65535] {
            for offset in [0u16, 1, 2, 50, 99, 100, 101, 150, 199, 200, 1000, 65535] {
                assert_eq!(
                    offset_back(dest, offset, bcl, bcr),
                    offset_back_slow(dest, offset, bcl, bcr),
                    "dest {dest} off {offset} bcl {bcl} bcr {bcr}"
                );
            }
        }
    }
}
