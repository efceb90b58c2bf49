//! The Universal Decompressor Virtual Machine (RFC 3320 §8–9 with the
//! RFC 4896 corrections).
//!
//! Memory is one buffer of exactly the UDVM memory size, reused between
//! messages; every access is bounds-checked (SEGFAULT); the cycle budget
//! is charged before each instruction acts (CYCLES_EXHAUSTED). Nothing
//! here allocates per instruction except the values of state creation
//! requests at END-MESSAGE.

use sha1::{Digest, Sha1};

use crate::error::{Failure, Reason};
pub use crate::feedback::{RequestedFeedback, ReturnedParameters};
use crate::state::{State, StateStore};

/// A state creation or free request made by the message, to be applied by
/// the state handler only once the application confirms the message
/// (RFC 3320 §9.4.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRequest {
    /// Create `state` with this retention priority.
    Create {
        /// The state item, value copied at END-MESSAGE (RFC 4896 §4.1).
        state: State,
        /// `state_retention_priority`.
        priority: u16,
    },
    /// Free the compartment's state whose identifier starts with these bytes.
    Free {
        /// The partial state identifier (6..=20 bytes).
        partial_id: Vec<u8>,
    },
}

/// The opcodes (RFC 3320 §9, Figure 11).
mod op {
    pub const DECOMPRESSION_FAILURE: u8 = 0;
    pub const AND: u8 = 1;
    pub const OR: u8 = 2;
    pub const NOT: u8 = 3;
    pub const LSHIFT: u8 = 4;
    pub const RSHIFT: u8 = 5;
    pub const ADD: u8 = 6;
    pub const SUBTRACT: u8 = 7;
    pub const MULTIPLY: u8 = 8;
    pub const DIVIDE: u8 = 9;
    pub const REMAINDER: u8 = 10;
    pub const SORT_ASCENDING: u8 = 11;
    pub const SORT_DESCENDING: u8 = 12;
    pub const SHA_1: u8 = 13;
    pub const LOAD: u8 = 14;
    pub const MULTILOAD: u8 = 15;
    pub const PUSH: u8 = 16;
    pub const POP: u8 = 17;
    pub const COPY: u8 = 18;
    pub const COPY_LITERAL: u8 = 19;
    pub const COPY_OFFSET: u8 = 20;
    pub const MEMSET: u8 = 21;
    pub const JUMP: u8 = 22;
    pub const COMPARE: u8 = 23;
    pub const CALL: u8 = 24;
    pub const RETURN: u8 = 25;
    pub const SWITCH: u8 = 26;
    pub const CRC: u8 = 27;
    pub const INPUT_BYTES: u8 = 28;
    pub const INPUT_BITS: u8 = 29;
    pub const INPUT_HUFFMAN: u8 = 30;
    pub const STATE_ACCESS: u8 = 31;
    pub const STATE_CREATE: u8 = 32;
    pub const STATE_FREE: u8 = 33;
    pub const OUTPUT: u8 = 34;
    pub const END_MESSAGE: u8 = 35;
}

/// UDVM registers (RFC 3320 §8.1).
const BYTE_COPY_LEFT: u16 = 64;
const BYTE_COPY_RIGHT: u16 = 66;
const INPUT_BIT_ORDER: u16 = 68;
const STACK_LOCATION: u16 = 70;

/// Most bytes OUTPUT may deliver (RFC 3320 §9.4.8).
const MAX_OUTPUT: usize = 65536;

/// A buffered STATE-CREATE or STATE-FREE (RFC 3320 §9.4.6–7).
#[derive(Debug, Clone, Copy)]
enum Pending {
    Create {
        length: u16,
        address: u16,
        instruction: u16,
        mal: u16,
        priority: u16,
    },
    Free {
        start: u16,
        length: u16,
    },
}

/// How the UDVM is started (RFC 3320 §7).
pub(crate) struct Start<'a> {
    pub memory_size: usize,
    pub cycles_per_bit: u16,
    pub version: u8,
    pub header_len: usize,
    /// Longest state value worth copying: state_memory_size - 64, since
    /// the state handler would cut a longer one to that (RFC 3320 §6.2
    /// step 2). Bounds what a message can make us allocate.
    pub max_state_len: u16,
    pub input: &'a [u8],
}

/// The result of a successful run.
pub(crate) struct Ended {
    pub cycles: u64,
    pub output_seen: bool,
    pub state_requests: Vec<StateRequest>,
    pub requested_feedback: Option<RequestedFeedback>,
    pub returned_parameters: Option<ReturnedParameters>,
}

/// Decoded INPUT-HUFFMAN operand sets whose encodings are all constants,
/// valid while the bytes at `pc` equal `raw`.
#[derive(Debug, Clone)]
struct HuffCache {
    pc: u16,
    raw: Vec<u8>,
    sets: Vec<[u16; 4]>,
    total_bits: u32,
}

/// The reusable machine: memory and scratch space.
#[derive(Debug, Default, Clone)]
pub(crate) struct Udvm {
    huff_sets: Vec<[u16; 4]>,
    huff_cache: Vec<HuffCache>,
    mem: Vec<u8>,
    sort_keys: Vec<(u16, u32)>,
    sort_tmp: Vec<u16>,
}

/// Control flow after one instruction.
enum Flow {
    Next(u16),
    End,
}

type R<T> = Result<T, Reason>;

struct Run<'a, S: ?Sized> {
    mem: &'a mut [u8],
    sort_keys: &'a mut Vec<(u16, u32)>,
    sort_tmp: &'a mut Vec<u16>,
    huff_sets: &'a mut Vec<[u16; 4]>,
    huff_cache: &'a mut Vec<HuffCache>,
    states: &'a S,
    input: &'a [u8],
    in_pos: usize,
    bit_buf: u8,
    bit_count: u8,
    last_p: Option<bool>,
    cpb: u64,
    remaining: u64,
    used: u64,
    output: &'a mut Vec<u8>,
    pending: [Option<Pending>; 8],
    n_create: usize,
    n_free: usize,
    details: Vec<u8>,
    ended: Option<Ended>,
    output_seen: bool,
    max_state_len: u16,
}

impl Udvm {
    /// Prepares zeroed memory of `size` bytes and returns it for loading.
    pub(crate) fn reset(&mut self, size: usize) -> &mut [u8] {
        self.mem.clear();
        self.mem.resize(size, 0);
        &mut self.mem
    }

    /// Writes the Useful Values (RFC 3320 §7.2, Figure 5) and runs from `pc`.
    pub(crate) fn run<S: StateStore + ?Sized>(
        &mut self,
        start: Start<'_>,
        pc: u16,
        partial_state_id_length: u16,
        state_length: u16,
        states: &S,
        output: &mut Vec<u8>,
    ) -> Result<Ended, Failure> {
        if self.mem.len() < 128 {
            return Err(Failure::header(Reason::Segfault));
        }
        // RFC 3320 §7.2: written after any state was loaded, so they
        // overwrite it (RFC 4465 §4.5 case 5); 10..32 are reserved zeros.
        let size = start.memory_size as u32;
        let useful: [u16; 5] = [
            size as u16, // modulo 2^16
            start.cycles_per_bit,
            u16::from(start.version),
            partial_state_id_length,
            state_length,
        ];
        for (i, v) in useful.iter().enumerate() {
            self.mem[2 * i..2 * i + 2].copy_from_slice(&v.to_be_bytes());
        }
        self.mem[10..32].fill(0);
        let cpb = u64::from(start.cycles_per_bit);
        // RFC 3320 §8.6: (1000 + bits in the header) * cycles_per_bit.
        let budget = (1000 + 8 * start.header_len as u64) * cpb;
        let mut run = Run {
            mem: &mut self.mem,
            sort_keys: &mut self.sort_keys,
            sort_tmp: &mut self.sort_tmp,
            huff_sets: &mut self.huff_sets,
            huff_cache: &mut self.huff_cache,
            states,
            input: start.input,
            in_pos: 0,
            bit_buf: 0,
            bit_count: 0,
            last_p: None,
            cpb,
            remaining: budget,
            used: 0,
            output,
            pending: [None; 8],
            n_create: 0,
            n_free: 0,
            details: Vec::new(),
            ended: None,
            output_seen: false,
            max_state_len: start.max_state_len,
        };
        run.execute(pc)
    }
}

impl<'a, S: StateStore + ?Sized> Run<'a, S> {
    fn execute(&mut self, mut pc: u16) -> Result<Ended, Failure> {
        loop {
            let Some(&opcode) = self.mem.get(usize::from(pc)) else {
                // RFC 3320 §8.6: the next instruction lies outside memory.
                return Err(self.fail(Reason::Segfault, 0, pc));
            };
            match self.step(opcode, pc) {
                Ok(Flow::Next(next)) => pc = next,
                Ok(Flow::End) => {
                    return self
                        .ended
                        .take()
                        .ok_or_else(|| self.fail(Reason::InternalError, opcode, pc));
                }
                Err(reason) => return Err(self.fail(reason, opcode, pc)),
            }
        }
    }

    fn fail(&mut self, reason: Reason, opcode: u8, pc: u16) -> Failure {
        let details = match reason {
            Reason::CyclesExhausted => vec![self.cpb as u8],
            Reason::StateNotFound | Reason::IdNotUnique | Reason::StateTooShort => {
                core::mem::take(&mut self.details)
            }
            _ => Vec::new(),
        };
        Failure {
            reason,
            opcode,
            pc,
            details,
            cycles: self.used,
        }
    }

    // ----- memory -------------------------------------------------------

    #[inline(always)]
    fn byte(&self, a: u16) -> R<u8> {
        self.mem
            .get(usize::from(a))
            .copied()
            .ok_or(Reason::Segfault)
    }

    #[inline(always)]
    fn set_byte(&mut self, a: u16, v: u8) -> R<()> {
        *self.mem.get_mut(usize::from(a)).ok_or(Reason::Segfault)? = v;
        Ok(())
    }

    #[inline(always)]
    fn word(&self, a: u16) -> R<u16> {
        Ok(u16::from_be_bytes([
            self.byte(a)?,
            self.byte(a.wrapping_add(1))?,
        ]))
    }

    #[inline]
    fn set_word(&mut self, a: u16, v: u16) -> R<()> {
        let [hi, lo] = v.to_be_bytes();
        // Check both before writing either.
        self.byte(a.wrapping_add(1))?;
        self.set_byte(a, hi)?;
        self.set_byte(a.wrapping_add(1), lo)
    }

    /// byte_copy_left and byte_copy_right as they are when the
    /// instruction starts (RFC 3320 §8.4).
    #[inline]
    fn bounds(&self) -> R<(u16, u16)> {
        Ok((self.word(BYTE_COPY_LEFT)?, self.word(BYTE_COPY_RIGHT)?))
    }

    // ----- cycles -------------------------------------------------------

    #[inline(always)]
    fn charge(&mut self, cost: u64) -> R<()> {
        // RFC 3320 §8.7 item 3.
        if cost > self.remaining {
            return Err(Reason::CyclesExhausted);
        }
        self.remaining -= cost;
        self.used += cost;
        Ok(())
    }

    // ----- operands (RFC 3320 §8.5) --------------------------------------

    #[inline(always)]
    fn literal(&self, pc: &mut u16) -> R<u16> {
        let b = self.byte(*pc)?;
        if b & 0x80 == 0 {
            *pc = pc.wrapping_add(1);
            Ok(u16::from(b))
        } else if b & 0xc0 == 0x80 {
            let n = (u16::from(b & 0x3f) << 8) | u16::from(self.byte(pc.wrapping_add(1))?);
            *pc = pc.wrapping_add(2);
            Ok(n)
        } else if b == 0xc0 {
            let n = self.word(pc.wrapping_add(1))?;
            *pc = pc.wrapping_add(3);
            Ok(n)
        } else {
            Err(Reason::InvalidOperand)
        }
    }

    /// A reference operand: the memory address it names.
    #[inline(always)]
    fn reference(&self, pc: &mut u16) -> R<u16> {
        let b = self.byte(*pc)?;
        if b & 0x80 == 0 {
            *pc = pc.wrapping_add(1);
            Ok(2 * u16::from(b))
        } else if b & 0xc0 == 0x80 {
            let n = (u16::from(b & 0x3f) << 8) | u16::from(self.byte(pc.wrapping_add(1))?);
            *pc = pc.wrapping_add(2);
            Ok(n.wrapping_mul(2))
        } else if b == 0xc0 {
            let n = self.word(pc.wrapping_add(1))?;
            *pc = pc.wrapping_add(3);
            Ok(n)
        } else {
            Err(Reason::InvalidOperand)
        }
    }

    /// A multitype operand's value (Figure 10).
    #[inline(always)]
    fn multi(&self, pc: &mut u16) -> R<u16> {
        let b = self.byte(*pc)?;
        let p1 = pc.wrapping_add(1);
        let (v, len) = match b {
            0x00..=0x3f => (u16::from(b), 1),
            0x40..=0x7f => (self.word(2 * u16::from(b & 0x3f))?, 1),
            0x86 | 0x87 => (1u16 << ((b & 1) + 6), 1),
            0x88..=0x8f => (1u16 << ((b & 7) + 8), 1),
            0xe0..=0xff => (u16::from(b & 0x1f) + 65504, 1),
            0x90..=0x9f => (
                (u16::from(b & 0x0f) << 8 | u16::from(self.byte(p1)?)) + 61440,
                2,
            ),
            0xa0..=0xbf => (u16::from(b & 0x1f) << 8 | u16::from(self.byte(p1)?), 2),
            0xc0..=0xdf => (
                self.word(u16::from(b & 0x1f) << 8 | u16::from(self.byte(p1)?))?,
                2,
            ),
            0x80 => (self.word(p1)?, 3),
            0x81 => (self.word(self.word(p1)?)?, 3),
            _ => return Err(Reason::InvalidOperand), // 0x84, 0x85
        };
        *pc = pc.wrapping_add(len);
        Ok(v)
    }

    /// Skips a multitype operand without evaluating it (for MULTILOAD).
    fn skip_multi(&self, pc: &mut u16) -> R<()> {
        let b = self.byte(*pc)?;
        let len = match b {
            0x00..=0x7f | 0x86..=0x8f | 0xe0..=0xff => 1,
            0x90..=0xdf => 2,
            0x80 | 0x81 => 3,
            _ => return Err(Reason::InvalidOperand),
        };
        // The operand bytes must be in memory.
        self.byte(pc.wrapping_add(len - 1))?;
        *pc = pc.wrapping_add(len);
        Ok(())
    }

    /// An address operand: multitype plus the instruction's address.
    #[inline(always)]
    fn address(&self, pc: &mut u16, inst: u16) -> R<u16> {
        Ok(self.multi(pc)?.wrapping_add(inst))
    }

    /// Checks a jump target (RFC 3320 §9.3.1).
    #[inline]
    fn target(&self, a: u16) -> R<Flow> {
        if usize::from(a) >= self.mem.len() {
            return Err(Reason::Segfault);
        }
        Ok(Flow::Next(a))
    }

    // ----- byte copying (RFC 3320 §8.4, RFC 4896 §4) ---------------------

    /// Reads `len` bytes starting at `from` under the byte copying rules and
    /// gives each to `f`.
    fn read_bytes(&self, from: u16, len: u16, mut f: impl FnMut(u8)) -> R<()> {
        let (bcl, bcr) = self.bounds()?;
        let mut a = from;
        for _ in 0..len {
            f(self.byte(a)?);
            a = next(a, bcl, bcr);
        }
        Ok(())
    }

    /// Copies `len` bytes from `src` to `dst` under the byte copying rules,
    /// with the result of copying one byte at a time (later bytes may be
    /// ones this copy wrote); returns the address after the last written.
    fn copy(&mut self, src: u16, len: u16, dst: u16, (bcl, bcr): (u16, u16)) -> R<u16> {
        let (mut s, mut d) = (src, dst);
        let mut rem = usize::from(len);
        while rem > 0 {
            let mut n = rem.min(run_len(s, bcr)).min(run_len(d, bcr));
            let (su, du) = (usize::from(s), usize::from(d));
            // A destination just ahead of the source repeats the bytes between
            // them: copy at most that distance at once.
            if du > su && du - su < n {
                n = du - su;
            }
            if su + n > self.mem.len() || du + n > self.mem.len() {
                return Err(Reason::Segfault);
            }
            self.mem.copy_within(su..su + n, du);
            s = next((su + n - 1) as u16, bcl, bcr);
            d = next((du + n - 1) as u16, bcl, bcr);
            rem -= n;
        }
        Ok(d)
    }

    /// Writes `src` at `dst` under the byte copying rules, a run at a time.
    fn write_slice(&mut self, dst: u16, src: &[u8], (bcl, bcr): (u16, u16)) -> R<u16> {
        let mut d = dst;
        let mut rest = src;
        while !rest.is_empty() {
            let n = rest.len().min(run_len(d, bcr));
            let du = usize::from(d);
            let (now, later) = rest.split_at(n);
            self.mem
                .get_mut(du..du + n)
                .ok_or(Reason::Segfault)?
                .copy_from_slice(now);
            d = next((du + n - 1) as u16, bcl, bcr);
            rest = later;
        }
        Ok(d)
    }

    /// Writes bytes from `src` at `dst` under the byte copying rules.
    fn write_bytes(&mut self, dst: u16, src: impl IntoIterator<Item = u8>) -> R<u16> {
        let (bcl, bcr) = self.bounds()?;
        let mut d = dst;
        for b in src {
            self.set_byte(d, b)?;
            d = next(d, bcl, bcr);
        }
        Ok(d)
    }

    // ----- input (RFC 3320 §8.2, RFC 4896 §3.1) ---------------------------

    fn bits_available(&self) -> usize {
        usize::from(self.bit_count) + 8 * (self.input.len() - self.in_pos)
    }

    /// Applies the P-bit rule: a changed P-bit discards a held fraction.
    fn note_p(&mut self, p: bool) {
        if self.last_p.is_some_and(|old| old != p) {
            self.bit_count = 0;
        }
        self.last_p = Some(p);
    }

    /// Takes `n` (<= 16) bits; `lsb_first` is the F or H bit. The caller
    /// checked availability. Bits are taken a byte-chunk at a time.
    #[inline]
    fn take_bits(&mut self, n: u16, p: bool, lsb_first: bool) -> u16 {
        // `v` holds the bits in arrival order: first-arrived as MSB (P=0) or
        // as LSB (P=1); reversed at the end when the F/H bit asks for the
        // other order (RFC 3320 §8.2).
        let mut v: u32 = 0;
        let mut got: u32 = 0;
        let n = u32::from(n);
        while got < n {
            if self.bit_count == 0 {
                self.bit_buf = self.input.get(self.in_pos).copied().unwrap_or(0);
                self.in_pos += 1;
                self.bit_count = 8;
            }
            let bc = u32::from(self.bit_count);
            let t = (n - got).min(bc);
            let mask = (1u32 << t) - 1;
            if p {
                // Remaining bits are the high `bc` bits; next is bit 8 - bc.
                let chunk = (u32::from(self.bit_buf) >> (8 - bc)) & mask;
                v |= chunk << got;
            } else {
                // Remaining bits are the low `bc` bits; next is bit bc - 1.
                let chunk = (u32::from(self.bit_buf) >> (bc - t)) & mask;
                v = (v << t) | chunk;
            }
            self.bit_count -= t as u8;
            got += t;
        }
        if n == 0 {
            return 0;
        }
        // P=1 gives first-arrived at LSB, which is the LSB-first reading.
        let want_lsb_order = lsb_first;
        let have_lsb_order = p;
        if want_lsb_order != have_lsb_order {
            (v.reverse_bits() >> (32 - n)) as u16
        } else {
            v as u16
        }
    }

    fn bit_order(&self) -> R<u16> {
        let ibo = self.word(INPUT_BIT_ORDER)?;
        // RFC 3320 §8.2: must lie between 0 and 7.
        if ibo > 7 {
            return Err(Reason::BadInputBitorder);
        }
        Ok(ibo)
    }

    fn credit(&mut self, bits: usize) {
        // RFC 3320 §8.6: n bits successfully input earn n * cycles_per_bit.
        self.remaining += bits as u64 * self.cpb;
    }

    // ----- stack (RFC 3320 §8.3, RFC 4896 §3.4) ---------------------------

    fn push(&mut self, value: u16) -> R<()> {
        let sl = self.word(STACK_LOCATION)?;
        let fill = self.word(sl)?;
        self.set_word(sl.wrapping_add(2).wrapping_add(fill.wrapping_mul(2)), value)?;
        self.set_word(sl, fill.wrapping_add(1))
    }

    fn pop(&mut self) -> R<u16> {
        let sl = self.word(STACK_LOCATION)?;
        let fill = self.word(sl)?;
        if fill == 0 {
            return Err(Reason::StackUnderflow);
        }
        let fill = fill - 1;
        self.set_word(sl, fill)?;
        self.word(sl.wrapping_add(2).wrapping_add(fill.wrapping_mul(2)))
    }

    // ----- state requests ---------------------------------------------------

    fn add_pending(&mut self, p: Pending) -> R<()> {
        let is_create = matches!(p, Pending::Create { .. });
        let n = if is_create {
            &mut self.n_create
        } else {
            &mut self.n_free
        };
        // RFC 3320 §9.4.6–7: at most four of each.
        if *n >= 4 {
            return Err(Reason::TooManyStateRequests);
        }
        *n += 1;
        let slot = self
            .pending
            .iter_mut()
            .find(|s| s.is_none())
            .ok_or(Reason::TooManyStateRequests)?;
        *slot = Some(p);
        Ok(())
    }

    fn lookup_state(&mut self, start: u16, len: u16) -> R<&'a State> {
        // RFC 3320 §9.4.5.
        if !(6..=20).contains(&len) {
            return Err(Reason::InvalidStateIdLength);
        }
        let mut id = [0u8; 20];
        for (i, b) in id.iter_mut().take(usize::from(len)).enumerate() {
            *b = self.byte(start.wrapping_add(i as u16))?;
        }
        let partial = &id[..usize::from(len)];
        match self.states.lookup(partial) {
            Ok(s) => Ok(s),
            Err(e) => {
                self.details = partial.to_vec();
                Err(e.into())
            }
        }
    }

    // ----- the instructions (RFC 3320 §9) ----------------------------------

    #[inline(always)]
    fn step(&mut self, opcode: u8, inst: u16) -> R<Flow> {
        let mut pc = inst.wrapping_add(1);
        match opcode {
            op::DECOMPRESSION_FAILURE => {
                self.charge(1)?;
                Err(Reason::UserRequested)
            }
            op::AND..=op::REMAINDER => {
                let a = self.reference(&mut pc)?;
                let n = if opcode == op::NOT {
                    0
                } else {
                    self.multi(&mut pc)?
                };
                self.charge(1)?;
                let m = self.word(a)?;
                let r = match opcode {
                    op::AND => m & n,
                    op::OR => m | n,
                    op::NOT => !m,
                    op::LSHIFT => m.checked_shl(u32::from(n)).unwrap_or(0),
                    op::RSHIFT => m.checked_shr(u32::from(n)).unwrap_or(0),
                    op::ADD => m.wrapping_add(n),
                    op::SUBTRACT => m.wrapping_sub(n),
                    op::MULTIPLY => m.wrapping_mul(n),
                    op::DIVIDE => m.checked_div(n).ok_or(Reason::DivByZero)?,
                    _ => m.checked_rem(n).ok_or(Reason::DivByZero)?,
                };
                self.set_word(a, r)?;
                Ok(Flow::Next(pc))
            }
            op::SORT_ASCENDING | op::SORT_DESCENDING => {
                let start = self.multi(&mut pc)?;
                let n = self.multi(&mut pc)?;
                let k = self.multi(&mut pc)?;
                // ceiling(log2(k)): the smallest i with k <= 2^i.
                let log = if k <= 1 {
                    0
                } else {
                    16 - (k - 1).leading_zeros() as u64
                };
                self.charge(1 + u64::from(k) * (log + u64::from(n)))?;
                self.sort(start, n, k, opcode == op::SORT_DESCENDING)?;
                Ok(Flow::Next(pc))
            }
            op::SHA_1 => self.op_sha1(inst),
            op::LOAD => {
                let address = self.multi(&mut pc)?;
                let value = self.multi(&mut pc)?;
                self.charge(1)?;
                self.set_word(address, value)?;
                Ok(Flow::Next(pc))
            }
            op::MULTILOAD => self.op_multiload(inst),
            op::PUSH => {
                let value = self.multi(&mut pc)?;
                self.charge(1)?;
                self.push(value)?;
                Ok(Flow::Next(pc))
            }
            op::POP => {
                let address = self.multi(&mut pc)?;
                self.charge(1)?;
                let v = self.pop()?;
                self.set_word(address, v)?;
                Ok(Flow::Next(pc))
            }
            op::COPY => {
                let position = self.multi(&mut pc)?;
                let length = self.multi(&mut pc)?;
                let destination = self.multi(&mut pc)?;
                self.charge(1 + u64::from(length))?;
                let b = self.bounds()?;
                self.copy(position, length, destination, b)?;
                Ok(Flow::Next(pc))
            }
            op::COPY_LITERAL | op::COPY_OFFSET => {
                let first = self.multi(&mut pc)?;
                let length = self.multi(&mut pc)?;
                let dref = self.reference(&mut pc)?;
                self.charge(1 + u64::from(length))?;
                let destination = self.word(dref)?;
                let (bcl, bcr) = self.bounds()?;
                let position = if opcode == op::COPY_LITERAL {
                    first
                } else {
                    offset_back(destination, first, bcl, bcr)
                };
                let after = self.copy(position, length, destination, (bcl, bcr))?;
                // RFC 3320 §9.2.5: unchanged when nothing was copied.
                if length != 0 {
                    self.set_word(dref, after)?;
                }
                Ok(Flow::Next(pc))
            }
            op::MEMSET => self.op_memset(inst),
            op::JUMP => {
                let a = self.address(&mut pc, inst)?;
                self.charge(1)?;
                self.target(a)
            }
            op::COMPARE => {
                let v1 = self.multi(&mut pc)?;
                let v2 = self.multi(&mut pc)?;
                let a1 = self.address(&mut pc, inst)?;
                let a2 = self.address(&mut pc, inst)?;
                let a3 = self.address(&mut pc, inst)?;
                self.charge(1)?;
                self.target(match v1.cmp(&v2) {
                    core::cmp::Ordering::Less => a1,
                    core::cmp::Ordering::Equal => a2,
                    core::cmp::Ordering::Greater => a3,
                })
            }
            op::CALL => {
                let a = self.address(&mut pc, inst)?;
                self.charge(1)?;
                self.push(pc)?;
                self.target(a)
            }
            op::RETURN => {
                self.charge(1)?;
                let a = self.pop()?;
                self.target(a)
            }
            op::SWITCH => self.op_switch(inst),
            op::CRC => self.op_crc(inst),
            op::INPUT_BYTES => {
                let length = self.multi(&mut pc)?;
                let destination = self.multi(&mut pc)?;
                let address = self.address(&mut pc, inst)?;
                self.charge(1 + u64::from(length))?;
                let ibo = self.word(INPUT_BIT_ORDER)?;
                self.note_p(ibo & 1 != 0);
                // RFC 3320 §9.4.2: a held fraction of a byte is discarded,
                // even if the request then fails (RFC 4896 §3.1).
                self.bit_count = 0;
                let l = usize::from(length);
                let input = self.input;
                let Some(bytes) = input.get(self.in_pos..self.in_pos + l) else {
                    return self.target(address);
                };
                self.in_pos += l;
                let b = self.bounds()?;
                self.write_slice(destination, bytes, b)?;
                self.credit(8 * l);
                Ok(Flow::Next(pc))
            }
            op::INPUT_BITS => {
                let length = self.multi(&mut pc)?;
                let destination = self.multi(&mut pc)?;
                let address = self.address(&mut pc, inst)?;
                self.charge(1)?;
                let ibo = self.bit_order()?;
                if length > 16 {
                    return Err(Reason::TooManyBitsRequested);
                }
                self.note_p(ibo & 1 != 0);
                if usize::from(length) > self.bits_available() {
                    return self.target(address);
                }
                let v = self.take_bits(length, ibo & 1 != 0, ibo & 4 != 0);
                self.set_word(destination, v)?;
                self.credit(usize::from(length));
                Ok(Flow::Next(pc))
            }
            op::INPUT_HUFFMAN => self.input_huffman(inst, pc),
            op::STATE_ACCESS => self.op_state_access(inst),
            op::STATE_CREATE => self.op_state_create(inst),
            op::STATE_FREE => {
                let start = self.multi(&mut pc)?;
                let length = self.multi(&mut pc)?;
                self.charge(1)?;
                // RFC 3320 §9.4.7.
                if !(6..=20).contains(&length) {
                    return Err(Reason::InvalidStateIdLength);
                }
                self.add_pending(Pending::Free { start, length })?;
                Ok(Flow::Next(pc))
            }
            op::OUTPUT => {
                let start = self.multi(&mut pc)?;
                let length = self.multi(&mut pc)?;
                self.charge(1 + u64::from(length))?;
                // RFC 3320 §9.4.8.
                if self.output.len() + usize::from(length) > MAX_OUTPUT {
                    return Err(Reason::OutputOverflow);
                }
                self.output_seen = true;
                let b = self.bounds()?;
                read_into(self.mem, start, length, b, self.output)?;
                Ok(Flow::Next(pc))
            }
            op::END_MESSAGE => self.op_end_message(inst),
            _ => Err(Reason::InvalidOpcode),
        }
    }

    #[inline(never)]
    fn op_sha1(&mut self, inst: u16) -> R<Flow> {
        let mut pc = inst.wrapping_add(1);
        let position = self.multi(&mut pc)?;
        let length = self.multi(&mut pc)?;
        let destination = self.multi(&mut pc)?;
        self.charge(1 + u64::from(length))?;
        let mut h = Sha1::new();
        let b = self.bounds()?;
        for_runs(self.mem, position, length, b, |run| h.update(run))?;
        let digest: [u8; 20] = h.finalize().into();
        self.write_bytes(destination, digest)?;
        Ok(Flow::Next(pc))
    }

    #[inline(never)]
    fn op_multiload(&mut self, inst: u16) -> R<Flow> {
        let mut pc = inst.wrapping_add(1);
        let address = self.multi(&mut pc)?;
        let n = self.literal(&mut pc)?;
        // Find the end of the instruction without evaluating.
        let values_at = pc;
        let mut end = pc;
        for _ in 0..n {
            self.skip_multi(&mut end)?;
        }
        self.charge(1 + u64::from(n))?;
        // RFC 3320 §9.2.2: the words written must not overlap the
        // instruction itself.
        let inst_len = u32::from(end.wrapping_sub(inst));
        let span = 2 * u32::from(n);
        for off in 0..span.min(0x10000) {
            let a = address.wrapping_add(off as u16);
            if u32::from(a.wrapping_sub(inst)) < inst_len {
                return Err(Reason::MultiloadOverwritten);
            }
        }
        // RFC 4896 §3.2: step by step, indirection at execution time.
        let mut p = values_at;
        for i in 0..n {
            let v = self.multi(&mut p)?;
            self.set_word(address.wrapping_add(i.wrapping_mul(2)), v)?;
        }
        Ok(Flow::Next(end))
    }

    #[inline(never)]
    fn op_memset(&mut self, inst: u16) -> R<Flow> {
        let mut pc = inst.wrapping_add(1);
        let address = self.multi(&mut pc)?;
        let length = self.multi(&mut pc)?;
        let start_value = self.multi(&mut pc)?;
        let offset = self.multi(&mut pc)?;
        self.charge(1 + u64::from(length))?;
        let seq = (0..length).map(|n| (start_value.wrapping_add(n.wrapping_mul(offset))) as u8);
        self.write_bytes(address, seq)?;
        Ok(Flow::Next(pc))
    }

    #[inline(never)]
    fn op_switch(&mut self, inst: u16) -> R<Flow> {
        let mut pc = inst.wrapping_add(1);
        let n = self.literal(&mut pc)?;
        let j = self.multi(&mut pc)?;
        self.charge(1 + u64::from(n))?;
        let mut chosen = None;
        for i in 0..n {
            let a = self.address(&mut pc, inst)?;
            if i == j {
                chosen = Some(a);
            }
        }
        let a = chosen.ok_or(Reason::SwitchValueTooHigh)?;
        self.target(a)
    }

    #[inline(never)]
    fn op_crc(&mut self, inst: u16) -> R<Flow> {
        let mut pc = inst.wrapping_add(1);
        let value = self.multi(&mut pc)?;
        let position = self.multi(&mut pc)?;
        let length = self.multi(&mut pc)?;
        let address = self.address(&mut pc, inst)?;
        self.charge(1 + u64::from(length))?;
        let mut fcs = crate::crc::Fcs16::new();
        let b = self.bounds()?;
        for_runs(self.mem, position, length, b, |run| {
            run.iter().for_each(|&x| fcs.update(x))
        })?;
        if fcs.value() == value {
            Ok(Flow::Next(pc))
        } else {
            self.target(address)
        }
    }

    #[inline(never)]
    fn op_state_access(&mut self, inst: u16) -> R<Flow> {
        let mut pc = inst.wrapping_add(1);
        let id_start = self.multi(&mut pc)?;
        let id_len = self.multi(&mut pc)?;
        let state_begin = self.multi(&mut pc)?;
        let state_length = self.multi(&mut pc)?;
        let state_address = self.multi(&mut pc)?;
        let state_instruction = self.multi(&mut pc)?;
        let s = self.lookup_state(id_start, id_len)?;
        let length = if state_length == 0 {
            s.length()
        } else {
            state_length
        };
        let address = if state_address == 0 {
            s.address()
        } else {
            state_address
        };
        let instruction = if state_instruction == 0 {
            s.instruction()
        } else {
            state_instruction
        };
        let begin = state_begin;
        // RFC 3320 §9.4.5: cost uses the resolved state_length.
        self.charge(1 + u64::from(length))?;
        if state_length == 0 && begin != 0 {
            return Err(Reason::InvalidStateProbe);
        }
        let value = s.value();
        let Some(part) = value.get(usize::from(begin)..usize::from(begin) + usize::from(length))
        else {
            let mut id = vec![0u8; usize::from(id_len)];
            for (i, b) in id.iter_mut().enumerate() {
                *b = self.byte(id_start.wrapping_add(i as u16))?;
            }
            self.details = id;
            return Err(Reason::StateTooShort);
        };
        // Write through the byte copying rules.
        let (bcl, bcr) = self.bounds()?;
        let mut d = address;
        for &b in part {
            *self.mem.get_mut(usize::from(d)).ok_or(Reason::Segfault)? = b;
            d = next(d, bcl, bcr);
        }
        if instruction == 0 {
            Ok(Flow::Next(pc))
        } else {
            self.target(instruction)
        }
    }

    #[inline(never)]
    fn op_state_create(&mut self, inst: u16) -> R<Flow> {
        let mut pc = inst.wrapping_add(1);
        let length = self.multi(&mut pc)?;
        let address = self.multi(&mut pc)?;
        let instruction = self.multi(&mut pc)?;
        let mal = self.multi(&mut pc)?;
        let priority = self.multi(&mut pc)?;
        self.charge(1 + u64::from(length))?;
        // RFC 3320 §9.4.6.
        if !(6..=20).contains(&mal) {
            return Err(Reason::InvalidStateIdLength);
        }
        if priority == 65535 {
            return Err(Reason::InvalidStatePriority);
        }
        self.add_pending(Pending::Create {
            length,
            address,
            instruction,
            mal,
            priority,
        })?;
        Ok(Flow::Next(pc))
    }

    #[inline(never)]
    fn op_end_message(&mut self, inst: u16) -> R<Flow> {
        let mut pc = inst.wrapping_add(1);
        let feedback_location = self.multi(&mut pc)?;
        let parameters_location = self.multi(&mut pc)?;
        let length = self.multi(&mut pc)?;
        let address = self.multi(&mut pc)?;
        let instruction = self.multi(&mut pc)?;
        let mal = self.multi(&mut pc)?;
        let priority = self.multi(&mut pc)?;
        self.charge(1 + u64::from(length))?;
        // RFC 3320 §9.4.9: an invalid request of its own is dropped
        // without failure; a fifth creation request fails.
        if (6..=20).contains(&mal) && priority != 65535 {
            self.add_pending(Pending::Create {
                length,
                address,
                instruction,
                mal,
                priority,
            })?;
        }
        self.end_message(feedback_location, parameters_location)?;
        Ok(Flow::End)
    }

    fn sort(&mut self, start: u16, n: u16, k: u16, descending: bool) -> R<()> {
        if k == 0 || n == 0 {
            return Ok(());
        }
        let (n, k) = (usize::from(n), usize::from(k));
        let words = n * k;
        let base = usize::from(start);
        if base + 2 * words > self.mem.len() {
            return Err(Reason::Segfault);
        }
        self.sort_keys.clear();
        for i in 0..k {
            let a = base + 2 * i;
            self.sort_keys
                .push((u16::from_be_bytes([self.mem[a], self.mem[a + 1]]), i as u32));
        }
        // Stable: equal words keep their order (RFC 3320 §9.1.3).
        if descending {
            self.sort_keys
                .sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        } else {
            self.sort_keys.sort();
        }
        for list in 0..n {
            let lb = base + 2 * k * list;
            self.sort_tmp.clear();
            for &(_, i) in self.sort_keys.iter() {
                let a = lb + 2 * i as usize;
                self.sort_tmp
                    .push(u16::from_be_bytes([self.mem[a], self.mem[a + 1]]));
            }
            for (j, v) in self.sort_tmp.iter().enumerate() {
                self.mem[lb + 2 * j..lb + 2 * j + 2].copy_from_slice(&v.to_be_bytes());
            }
        }
        Ok(())
    }

    fn input_huffman(&mut self, inst: u16, mut pc: u16) -> R<Flow> {
        let destination = self.multi(&mut pc)?;
        let address = self.address(&mut pc, inst)?;
        let n = self.literal(&mut pc)?;
        self.charge(1 + u64::from(n))?;
        if n == 0 {
            // RFC 3320 §9.4.4: ignored.
            return Ok(Flow::Next(pc));
        }
        let ibo = self.bit_order()?;
        let p = ibo & 1 != 0;
        let h_lsb = ibo & 2 != 0;
        self.note_p(p);
        // Decode the operand sets first (conceptual model, RFC 3320 §8.5),
        // checking the total bit count. Sets made only of constant operands
        // are cached by address and raw bytes: decoding them is most of the
        // work of a Huffman-coded message.
        let sets_at = pc;
        let (end, total_bits, cached) = self.huffman_sets(sets_at, n)?;
        pc = end;
        if total_bits > 16 {
            return Err(Reason::TooManyBitsRequested);
        }
        let saved = (self.in_pos, self.bit_buf, self.bit_count);
        let mut h: u32 = 0;
        let mut taken = 0usize;
        for j in 0..usize::from(n) {
            let set = match cached {
                Some(i) => self.huff_cache.get(i).and_then(|e| e.sets.get(j)),
                None => self.huff_sets.get(j),
            };
            let Some(&[bits, lower, upper, uncompressed]) = set else {
                return Err(Reason::InternalError);
            };
            if usize::from(bits) > self.bits_available() {
                // Step 4: no data is returned; restore what was taken.
                (self.in_pos, self.bit_buf, self.bit_count) = saved;
                return self.target(address);
            }
            let k = self.take_bits(bits, p, h_lsb);
            taken += usize::from(bits);
            h = (h << bits) | u32::from(k);
            if h >= u32::from(lower) && h <= u32::from(upper) {
                let v = (h as u16).wrapping_add(uncompressed).wrapping_sub(lower);
                self.set_word(destination, v)?;
                self.credit(taken);
                return Ok(Flow::Next(pc));
            }
        }
        Err(Reason::HuffmanNoMatch)
    }

    /// Decodes the `n` operand sets of INPUT-HUFFMAN at `at`; returns the
    /// address after them, the sum of bits, and the cache entry holding
    /// them (`None`: they are in `huff_sets`).
    fn huffman_sets(&mut self, at: u16, n: u16) -> R<(u16, u32, Option<usize>)> {
        let start = usize::from(at);
        for (i, e) in self.huff_cache.iter().enumerate() {
            if e.pc == at
                && e.sets.len() == usize::from(n)
                && self.mem.get(start..start + e.raw.len()) == Some(&e.raw[..])
            {
                return Ok((at.wrapping_add(e.raw.len() as u16), e.total_bits, Some(i)));
            }
        }
        self.huff_sets.clear();
        let mut q = at;
        let mut total_bits: u32 = 0;
        let mut constant = true;
        for _ in 0..n {
            let mut set = [0u16; 4];
            for v in set.iter_mut() {
                // Multitype encodings that read memory (Figure 10).
                constant &= !matches!(self.byte(q)?, 0x40..=0x7f | 0xc0..=0xdf | 0x81);
                *v = self.multi(&mut q)?;
            }
            total_bits += u32::from(set[0]);
            self.huff_sets.push(set);
        }
        let len = usize::from(q.wrapping_sub(at));
        if constant && n <= 64 && start + len <= self.mem.len() {
            if self.huff_cache.len() >= 16 {
                self.huff_cache.remove(0);
            }
            self.huff_cache.push(HuffCache {
                pc: at,
                raw: self.mem[start..start + len].to_vec(),
                sets: self.huff_sets.clone(),
                total_bits,
            });
        }
        Ok((q, total_bits, None))
    }

    fn end_message(&mut self, feedback_location: u16, parameters_location: u16) -> R<()> {
        let mut requests = Vec::with_capacity(self.n_create + self.n_free);
        for p in self.pending.iter().flatten() {
            match *p {
                Pending::Create {
                    length,
                    address,
                    instruction,
                    mal,
                    priority,
                } => {
                    // RFC 4896 §4.1: the value is read now, by byte copying.
                    // RFC 3320 §6.2 step 2, applied early: a longer value
                    // would be cut to state_memory_size - 64 and its
                    // identifier computed over the cut value, as here.
                    let take = length.min(self.max_state_len);
                    let mut value = Vec::with_capacity(usize::from(take));
                    let b = self.bounds()?;
                    read_into(self.mem, address, take, b, &mut value)?;
                    requests.push(StateRequest::Create {
                        state: State::new(address, instruction, mal, value),
                        priority,
                    });
                }
                Pending::Free { start, length } => {
                    let mut partial_id = Vec::with_capacity(usize::from(length));
                    self.read_bytes(start, length, |b| partial_id.push(b))?;
                    requests.push(StateRequest::Free { partial_id });
                }
            }
        }
        // RFC 4896 §4.1: feedback is read without the byte copying rules.
        let requested_feedback = if feedback_location == 0 {
            None
        } else {
            let b = self.byte(feedback_location)?;
            let item = if b & 0x04 != 0 {
                let at = feedback_location.wrapping_add(1);
                let first = self.byte(at)?;
                let len = if first & 0x80 == 0 {
                    1
                } else {
                    1 + u16::from(first & 0x7f)
                };
                let mut v = Vec::with_capacity(usize::from(len));
                for i in 0..len {
                    v.push(self.byte(at.wrapping_add(i))?);
                }
                Some(v)
            } else {
                None
            };
            Some(RequestedFeedback {
                s_bit: b & 0x02 != 0,
                i_bit: b & 0x01 != 0,
                item,
            })
        };
        let returned_parameters = if parameters_location == 0 {
            None
        } else {
            let mut bytes = Vec::new();
            let mut a = parameters_location;
            bytes.push(self.byte(a)?);
            bytes.push(self.byte(a.wrapping_add(1))?);
            a = a.wrapping_add(2);
            // Each item is at least 7 bytes; stop before wrapping around.
            let mut budget = self.mem.len();
            loop {
                let len = self.byte(a)?;
                bytes.push(len);
                if !(6..=20).contains(&len) || budget < 21 {
                    break;
                }
                budget -= 1 + usize::from(len);
                for i in 1..=u16::from(len) {
                    bytes.push(self.byte(a.wrapping_add(i))?);
                }
                a = a.wrapping_add(1 + u16::from(len));
            }
            Some(ReturnedParameters::parse(&bytes))
        };
        self.ended = Some(Ended {
            cycles: self.used,
            output_seen: self.output_seen,
            state_requests: requests,
            requested_feedback,
            returned_parameters,
        });
        Ok(())
    }
}

/// Appends `len` bytes of `mem` starting at `from`, under the byte copying
/// rules, to `out`, a run at a time.
fn read_into(mem: &[u8], from: u16, len: u16, bounds: (u16, u16), out: &mut Vec<u8>) -> R<()> {
    for_runs(mem, from, len, bounds, |run| out.extend_from_slice(run))
}

/// Gives the `len` bytes of `mem` from `from`, under the byte copying
/// rules, to `f` as contiguous runs.
fn for_runs(
    mem: &[u8],
    from: u16,
    len: u16,
    (bcl, bcr): (u16, u16),
    mut f: impl FnMut(&[u8]),
) -> R<()> {
    let mut a = from;
    let mut rem = usize::from(len);
    while rem > 0 {
        let n = rem.min(run_len(a, bcr));
        let start = usize::from(a);
        f(mem.get(start..start + n).ok_or(Reason::Segfault)?);
        a = next((start + n - 1) as u16, bcl, bcr);
        rem -= n;
    }
    Ok(())
}

/// How many bytes from `a` on are contiguous under the byte copying rules:
/// up to byte_copy_right, or to the end of the 64K address space.
#[inline]
fn run_len(a: u16, bcr: u16) -> usize {
    if a < bcr {
        usize::from(bcr - a)
    } else {
        65536 - usize::from(a)
    }
}

/// The address after `a` under the byte copying rules (RFC 3320 §8.4).
#[inline]
fn next(a: u16, bcl: u16, bcr: u16) -> u16 {
    let k = a.wrapping_add(1);
    if k == bcr { bcl } else { k }
}

/// COPY-OFFSET: counts `offset` addresses back from `dest`, jumping from
/// byte_copy_left to byte_copy_right - 1 (RFC 3320 §9.2.6, RFC 4896 §4),
/// in constant time.
fn offset_back(dest: u16, offset: u16, bcl: u16, bcr: u16) -> u16 {
    // Steps until byte_copy_left is reached going left.
    let to_left = dest.wrapping_sub(bcl);
    if offset <= to_left {
        return dest.wrapping_sub(offset);
    }
    // At bcl with r steps left; the cycle is bcl ..= bcr - 1.
    let r = u32::from(offset - to_left);
    let len = u32::from(bcr.wrapping_sub(1).wrapping_sub(bcl)) + 1;
    let j = (len - r % len) % len;
    bcl.wrapping_add(j as u16)
}

#[cfg(test)]
mod tests {
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
            let (mut sk, mut st, mut hs, mut hc, mut out) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let mut run = Run {
                mem: &mut mem,
                sort_keys: &mut sk,
                sort_tmp: &mut st,
                huff_sets: &mut hs,
                huff_cache: &mut hc,
                states: &NoStates,
                input: &[],
                in_pos: 0,
                bit_buf: 0,
                bit_count: 0,
                last_p: None,
                cpb: 16,
                remaining: 0,
                used: 0,
                output: &mut out,
                pending: [None; 8],
                n_create: 0,
                n_free: 0,
                details: Vec::new(),
                ended: None,
                output_seen: false,
                max_state_len: 0,
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
}
