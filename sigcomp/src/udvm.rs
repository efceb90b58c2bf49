//! The Universal Decompressor Virtual Machine (RFC 3320 §8–9 with the
//! RFC 4896 corrections).
//!
//! Memory is one buffer of exactly the UDVM memory size, reused between
//! messages; every access is bounds-checked (SEGFAULT); the cycle budget
//! is charged before each instruction acts (CYCLES_EXHAUSTED). Nothing
//! here allocates per instruction except the values of state creation
//! requests at END-MESSAGE (and, when an INPUT-HUFFMAN is first decoded,
//! its operand sets and decode table, whose buffers are then reused).
//!
//! Speed: instructions are decoded once into slots of a direct-mapped
//! cache that survives from one message to the next; a slot is used only
//! while the instruction's bytes in memory still equal those it was
//! decoded from, so code that rewrites itself is re-decoded and writes
//! need no bookkeeping. Rare instructions, and any instruction the cache
//! cannot hold, decode from memory each time; both paths run the same
//! instruction code (the `Ops` trait).

use sha1::{Digest, Sha1};

use crate::error::{Failure, Reason};
pub use crate::feedback::{RequestedFeedback, ReturnedParameters};
use crate::isa::{self, Multitype, OperandKind, op};
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
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Ended {
    pub cycles: u64,
    pub output_seen: bool,
    pub state_requests: Vec<StateRequest>,
    pub requested_feedback: Option<RequestedFeedback>,
    pub returned_parameters: Option<ReturnedParameters>,
}

/// The reusable machine: memory and scratch space.
#[derive(Debug, Default, Clone)]
pub(crate) struct Udvm {
    /// Tests: decode every instruction from memory, as a reference.
    cache_off: bool,
    /// Decoded instructions, kept between messages (see [`Slot`]).
    slots: Vec<Slot>,
    /// The operand sets of the INPUT-HUFFMAN instruction in the slot of
    /// the same index.
    slot_huff: Vec<HuffTab>,
    huff_sets: Vec<[u16; 4]>,
    mem: Vec<u8>,
    sort_keys: Vec<(u16, u32)>,
    sort_tmp: Vec<u16>,
}

/// Slots of the decoded-instruction cache, direct-mapped by address.
const SLOTS: usize = 1024;

/// INPUT-HUFFMAN operand tables, shared by the slots with the same index
/// modulo this: bounds what a message can make the cache hold.
const HUFF_TABS: usize = 8;

/// A decoded multitype, reference, literal or address operand: `v`, or
/// the memory word at `v` plus `add` (RFC 3320 §8.5, Figure 10).
#[derive(Debug, Clone, Copy, Default)]
struct Opnd {
    mem: bool,
    v: u16,
    add: u16,
}

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotKind {
    /// Nothing decoded yet.
    Empty,
    /// Not worth caching: decode from memory each time.
    Slow,
    /// An INPUT-HUFFMAN: operands in `o`, sets in the [`HuffTab`] it owns.
    Huff,
    /// The operands are in `o`.
    Decoded,
}

/// One instruction decoded from the bytes at `pc`, valid while the first
/// `len` (at most 16) bytes there, selected by `mask`, still equal `raw`:
/// checking that costs one 16-byte load and compare, so writes to memory
/// need no bookkeeping and code that rewrites itself is re-decoded. A
/// slot is a pure function of `pc` and those bytes (plus, for
/// INPUT-HUFFMAN, the bytes kept in its [`HuffTab`]), so it stays valid
/// from one message to the next.
#[derive(Debug, Clone, Copy)]
struct Slot {
    raw: [u64; 2],
    mask: [u64; 2],
    pc: u32,
    kind: SlotKind,
    len: u16,
    o: [Opnd; 5],
    /// A JUMP to a constant address right after the instruction.
    then: Option<ThenJump>,
}

/// A JUMP that follows an instruction, run with it when the instruction
/// goes on to it, its bytes (checked then: the instruction may have
/// rewritten them) are unchanged, and it can pay its cycle and land in
/// memory; otherwise it runs as any instruction and fails as such.
#[derive(Debug, Clone, Copy)]
struct ThenJump {
    target: u16,
    raw: u32,
    mask: u32,
}

impl Slot {
    /// A slot that sends the instruction at `pc` to the decode-each-time
    /// path.
    fn slow(pc: u16, opcode: u8) -> Slot {
        Slot {
            raw: [u64::from(opcode), 0],
            mask: [0xff, 0],
            pc: u32::from(pc),
            kind: SlotKind::Slow,
            len: 1,
            o: [Opnd::default(); 5],
            then: None,
        }
    }

    const EMPTY: Slot = Slot {
        raw: [0; 2],
        mask: [0; 2],
        pc: u32::MAX,
        kind: SlotKind::Empty,
        len: 0,
        o: [Opnd {
            mem: false,
            v: 0,
            add: 0,
        }; 5],
        then: None,
    };
}

/// Largest sum of bits of INPUT-HUFFMAN sets given a decode table
/// (1024 entries, 4 KB).
const HUFF_TABLE_BITS: u32 = 10;

/// The constant operand sets of a cached INPUT-HUFFMAN, and its bytes
/// past the 16 its slot checks.
#[derive(Debug, Clone, Default)]
struct HuffTab {
    /// The address of the INPUT-HUFFMAN whose sets these are.
    owner: u32,
    /// Indexed by the next `total_bits` input bits as
    /// [`Run::peek_bits`] gives them: 0 when no set matches them, else bit 31 set, the
    /// bits the matching set and those before it take in bits 16..=20
    /// and the value written in bits 0..=15 (RFC 3320 §9.4.4 steps 2-3).
    table: Vec<u32>,
    /// The P and H bits (RFC 3320 §8.2) the table was built for.
    table_bit_order: (bool, bool),
    tail: Vec<u8>,
    /// A tail of at most 16 bytes as a masked little-endian word, checked
    /// without a call to memcmp.
    tail_word: Option<(u128, u128)>,
    sets: Vec<[u16; 4]>,
    total_bits: u32,
}

impl HuffTab {
    /// Fills `table` by running the sets over every possible input.
    fn build_table(&mut self, p: bool, h_lsb: bool) {
        let t = self.total_bits;
        self.table.clear();
        self.table_bit_order = (p, h_lsb);
        for idx in 0..(1u32 << t) {
            let mut h: u32 = 0;
            let mut cum: u32 = 0;
            let mut entry = 0;
            for &[bits, lower, upper, uncompressed] in &self.sets {
                let b = u32::from(bits);
                cum += b;
                // The set's bits as they arrive, the first as MSB.
                let mut k = if p {
                    let lsb_first = (idx >> (cum - b)) & ((1u32 << b) - 1);
                    lsb_first.reverse_bits().checked_shr(32 - b).unwrap_or(0)
                } else {
                    (idx >> (t - cum)) & ((1u32 << b) - 1)
                };
                if h_lsb && b > 0 {
                    // H = 1: the first bit to arrive is the LSB of k.
                    k = k.reverse_bits() >> (32 - b);
                }
                h = (h << b) | k;
                if h >= u32::from(lower) && h <= u32::from(upper) {
                    let v = (h as u16).wrapping_add(uncompressed).wrapping_sub(lower);
                    entry = (1 << 31) | (cum << 16) | u32::from(v);
                    break;
                }
            }
            self.table.push(entry);
        }
    }
}

/// Why the UDVM stops: END-MESSAGE, or a failure.
enum Stop {
    End,
    Fail(Reason),
}

impl From<Reason> for Stop {
    #[inline(always)]
    fn from(r: Reason) -> Stop {
        Stop::Fail(r)
    }
}

/// The result of one instruction: the address of the next, or why the
/// UDVM stops.
type Flow = Result<u16, Stop>;

type R<T> = Result<T, Reason>;

struct Run<'a, S: ?Sized> {
    mem: &'a mut [u8],
    sort_keys: &'a mut Vec<(u16, u32)>,
    sort_tmp: &'a mut Vec<u16>,
    huff_sets: &'a mut Vec<[u16; 4]>,
    states: &'a S,
    input: &'a [u8],
    in_pos: usize,
    bit_buf: u8,
    bit_count: u8,
    last_p: Option<bool>,
    cpb: u64,
    /// Cycles available in all: the budget plus those earned by input.
    limit: u64,
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
        if self.slots.len() != SLOTS {
            self.slots = vec![Slot::EMPTY; SLOTS];
            self.slot_huff = vec![HuffTab::default(); HUFF_TABS];
        }
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
            states,
            input: start.input,
            in_pos: 0,
            bit_buf: 0,
            bit_count: 0,
            last_p: None,
            cpb,
            limit: budget,
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
        let (Ok(slots), Ok(tabs)) = (
            <&mut [Slot; SLOTS]>::try_from(&mut self.slots[..]),
            <&mut [HuffTab; HUFF_TABS]>::try_from(&mut self.slot_huff[..]),
        ) else {
            // `reset` makes them.
            return Err(Failure::header(Reason::InternalError));
        };
        run.execute(pc, slots, tabs, self.cache_off)
    }
}

impl<'a, S: StateStore + ?Sized> Run<'a, S> {
    fn execute(
        &mut self,
        mut pc: u16,
        slots: &mut [Slot; SLOTS],
        tabs: &mut [HuffTab; HUFF_TABS],
        cache_off: bool,
    ) -> Result<Ended, Failure> {
        loop {
            let p = usize::from(pc);
            let (opcode, r) = if let Some(w) = self.mem.get(p..p + 16) {
                // Fixed-size tables: no bounds check.
                let slot = &mut slots[p % SLOTS];
                let (a, b) = w.split_at(8);
                let lo = u64::from_le_bytes(a.try_into().unwrap_or_default());
                let hi = u64::from_le_bytes(b.try_into().unwrap_or_default());
                let opcode = lo as u8;
                if slot.pc != u32::from(pc)
                    || (lo & slot.mask[0]) ^ slot.raw[0] | (hi & slot.mask[1]) ^ slot.raw[1] != 0
                    || (slot.kind == SlotKind::Huff && {
                        let tab = &tabs[p % HUFF_TABS];
                        !(tab.owner == u32::from(pc) && tab_valid(tab, self.mem, p))
                    })
                {
                    *slot = if cache_off {
                        Slot::slow(pc, opcode)
                    } else {
                        decode(pc, w, self.mem, &mut tabs[p % HUFF_TABS])
                    };
                }
                if slot.kind == SlotKind::Slow {
                    (opcode, self.step(opcode, pc, &mut MemOps::new(pc)))
                } else {
                    let mut ops = SlotOps {
                        slot,
                        i: 0,
                        tabs: &mut *tabs,
                    };
                    let mut r = self.step(opcode, pc, &mut ops);
                    let jpc = pc.wrapping_add(ops.slot.len);
                    if let (Some(j), Ok(n)) = (ops.slot.then, &r) {
                        // RFC 3320 §9.3.1: JUMP, charged one cycle.
                        let q = usize::from(jpc);
                        if *n == jpc
                            && self.used < self.limit
                            && usize::from(j.target) < self.mem.len()
                            && self.mem.get(q..q + 4).is_some_and(|b| {
                                u32::from_le_bytes(b.try_into().unwrap_or_default()) & j.mask
                                    == j.raw
                            })
                        {
                            self.used += 1;
                            r = Ok(j.target);
                        }
                    }
                    (opcode, r)
                }
            } else {
                let Some(&opcode) = self.mem.get(p) else {
                    // RFC 3320 §8.6: the next instruction lies outside memory.
                    return Err(self.fail(Reason::Segfault, 0, pc));
                };
                (opcode, self.step(opcode, pc, &mut MemOps::new(pc)))
            };
            match r {
                Ok(next) => pc = next,
                Err(Stop::End) => {
                    return self
                        .ended
                        .take()
                        .ok_or_else(|| self.fail(Reason::InternalError, opcode, pc));
                }
                Err(Stop::Fail(reason)) => return Err(self.fail(reason, opcode, pc)),
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
        let i = usize::from(a);
        if let Some(&[hi, lo]) = self.mem.get(i..i + 2) {
            return Ok(u16::from_be_bytes([hi, lo]));
        }
        // The last byte of a 64K memory: the word wraps to address 0.
        Ok(u16::from_be_bytes([
            self.byte(a)?,
            self.byte(a.wrapping_add(1))?,
        ]))
    }

    #[inline(always)]
    fn set_word(&mut self, a: u16, v: u16) -> R<()> {
        let [hi, lo] = v.to_be_bytes();
        let i = usize::from(a);
        if let Some([h, l]) = self.mem.get_mut(i..i + 2) {
            (*h, *l) = (hi, lo);
            return Ok(());
        }
        // Check both before writing either.
        self.byte(a.wrapping_add(1))?;
        self.set_byte(a, hi)?;
        self.set_byte(a.wrapping_add(1), lo)
    }

    /// byte_copy_left and byte_copy_right as they are when the
    /// instruction starts (RFC 3320 §8.4).
    #[inline(always)]
    fn bounds(&self) -> R<(u16, u16)> {
        match self
            .mem
            .get(usize::from(BYTE_COPY_LEFT)..usize::from(BYTE_COPY_RIGHT) + 2)
        {
            Some(&[a, b, c, d]) => Ok((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))),
            _ => Err(Reason::Segfault),
        }
    }

    // ----- cycles -------------------------------------------------------

    #[inline(always)]
    fn charge(&mut self, cost: u64) -> R<()> {
        // RFC 3320 §8.7 item 3.
        let used = self.used + cost;
        if used > self.limit {
            return Err(Reason::CyclesExhausted);
        }
        self.used = used;
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
    fn target(&self, a: u16) -> Flow {
        if usize::from(a) >= self.mem.len() {
            return Err(Reason::Segfault.into());
        }
        Ok(a)
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
    #[inline(always)]
    fn copy(&mut self, src: u16, len: u16, dst: u16, (bcl, bcr): (u16, u16)) -> R<u16> {
        let (mut s, mut d) = (src, dst);
        let mut rem = usize::from(len);
        // A short copy that wraps at neither byte_copy_right nor the end of
        // memory: one byte at a time is the rule itself, and cheaper than
        // a call to memmove.
        if rem <= 16 && rem > 0 && rem <= run_len(s, bcr) && rem <= run_len(d, bcr) {
            let (su, du) = (usize::from(s), usize::from(d));
            if su + rem <= self.mem.len() && du + rem <= self.mem.len() {
                for i in 0..rem {
                    if let Some(&b) = self.mem.get(su + i) {
                        if let Some(x) = self.mem.get_mut(du + i) {
                            *x = b;
                        }
                    }
                }
                return Ok(next((du + rem - 1) as u16, bcl, bcr));
            }
        }
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

    /// The next `n` (<= 16) input bits, without taking them (RFC 3320
    /// §8.2), in the order P packs them: the first to arrive as MSB when
    /// P = 0, as LSB when P = 1. The caller checked availability.
    #[inline(always)]
    fn peek_bits(&self, n: u16, p: bool) -> u16 {
        let bc = u32::from(self.bit_count);
        let n = u32::from(n);
        let next = match self.input.get(self.in_pos..self.in_pos + 4) {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => {
                let at = |i: usize| self.input.get(self.in_pos + i).copied().unwrap_or(0);
                [at(0), at(1), at(2), at(3)]
            }
        };
        let mask = (1u64 << n) - 1;
        if p {
            // The held fraction is the high `bc` bits of the byte.
            let held = u64::from(self.bit_buf) >> (8 - bc);
            let acc = held | (u64::from(u32::from_le_bytes(next)) << bc);
            (acc & mask) as u16
        } else {
            // The held fraction is the low `bc` bits of the byte.
            let held = u64::from(self.bit_buf) & ((1u64 << bc) - 1);
            let acc = (held << 32) | u64::from(u32::from_be_bytes(next));
            ((acc >> (bc + 32 - n)) & mask) as u16
        }
    }

    /// Takes `n` bits, as [`Run::peek_bits`] gave them.
    #[inline(always)]
    fn skip_bits(&mut self, n: u16) {
        let n = u32::from(n);
        let bc = u32::from(self.bit_count);
        if n <= bc {
            self.bit_count = (bc - n) as u8;
        } else {
            let bytes = (n - bc).div_ceil(8) as usize;
            self.in_pos += bytes;
            self.bit_buf = self.input.get(self.in_pos - 1).copied().unwrap_or(0);
            self.bit_count = (8 * bytes as u32 - (n - bc)) as u8;
        }
    }

    /// Takes `n` (<= 16) bits; `lsb_first` is the F or H bit: the first
    /// bit to arrive becomes the LSB instead of the MSB. The caller
    /// checked availability.
    #[inline(always)]
    fn take_bits(&mut self, n: u16, p: bool, lsb_first: bool) -> u16 {
        let v = self.peek_bits(n, p);
        self.skip_bits(n);
        if lsb_first != p && n > 0 {
            v.reverse_bits() >> (16 - n)
        } else {
            v
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
        self.limit += bits as u64 * self.cpb;
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
    fn step<O: Ops>(&mut self, opcode: u8, inst: u16, o: &mut O) -> Flow {
        match opcode {
            op::DECOMPRESSION_FAILURE => {
                self.charge(1)?;
                Err(Reason::UserRequested.into())
            }
            op::AND..=op::REMAINDER => {
                let a = o.reference(self)?;
                let n = if opcode == op::NOT { 0 } else { o.multi(self)? };
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
                Ok(o.end())
            }
            op::SORT_ASCENDING | op::SORT_DESCENDING => {
                let start = o.multi(self)?;
                let n = o.multi(self)?;
                let k = o.multi(self)?;
                // ceiling(log2(k)): the smallest i with k <= 2^i.
                let log = if k <= 1 {
                    0
                } else {
                    16 - (k - 1).leading_zeros() as u64
                };
                self.charge(1 + u64::from(k) * (log + u64::from(n)))?;
                self.sort(start, n, k, opcode == op::SORT_DESCENDING)?;
                Ok(o.end())
            }
            op::SHA_1 => self.op_sha1(o),
            op::LOAD => {
                let address = o.multi(self)?;
                let value = o.multi(self)?;
                self.charge(1)?;
                self.set_word(address, value)?;
                Ok(o.end())
            }
            op::MULTILOAD => self.op_multiload(inst, o),
            op::PUSH => {
                let value = o.multi(self)?;
                self.charge(1)?;
                self.push(value)?;
                Ok(o.end())
            }
            op::POP => {
                let address = o.multi(self)?;
                self.charge(1)?;
                let v = self.pop()?;
                self.set_word(address, v)?;
                Ok(o.end())
            }
            op::COPY => {
                let position = o.multi(self)?;
                let length = o.multi(self)?;
                let destination = o.multi(self)?;
                self.charge(1 + u64::from(length))?;
                let b = self.bounds()?;
                self.copy(position, length, destination, b)?;
                Ok(o.end())
            }
            op::COPY_LITERAL | op::COPY_OFFSET => {
                let first = o.multi(self)?;
                let length = o.multi(self)?;
                let dref = o.reference(self)?;
                self.charge(1 + u64::from(length))?;
                let destination = self.word(dref)?;
                let (bcl, bcr) = self.bounds()?;
                let position = if opcode == op::COPY_LITERAL {
                    first
                } else {
                    offset_back(destination, first, bcl, bcr)
                };
                let after = if length == 1 {
                    // One byte: read, write, step by the byte copying rules.
                    let v = self.byte(position)?;
                    self.set_byte(destination, v)?;
                    next(destination, bcl, bcr)
                } else {
                    self.copy(position, length, destination, (bcl, bcr))?
                };
                // RFC 3320 §9.2.5: unchanged when nothing was copied.
                if length != 0 {
                    self.set_word(dref, after)?;
                }
                Ok(o.end())
            }
            op::MEMSET => self.op_memset(o),
            op::JUMP => {
                let a = o.address(self, inst)?;
                self.charge(1)?;
                self.target(a)
            }
            op::COMPARE => {
                let v1 = o.multi(self)?;
                let v2 = o.multi(self)?;
                let a1 = o.address(self, inst)?;
                let a2 = o.address(self, inst)?;
                let a3 = o.address(self, inst)?;
                self.charge(1)?;
                self.target(match v1.cmp(&v2) {
                    core::cmp::Ordering::Less => a1,
                    core::cmp::Ordering::Equal => a2,
                    core::cmp::Ordering::Greater => a3,
                })
            }
            op::CALL => {
                let a = o.address(self, inst)?;
                self.charge(1)?;
                self.push(o.end())?;
                self.target(a)
            }
            op::RETURN => {
                self.charge(1)?;
                let a = self.pop()?;
                self.target(a)
            }
            op::SWITCH => self.op_switch(inst, o),
            op::CRC => self.op_crc(inst, o),
            op::INPUT_BYTES => {
                let length = o.multi(self)?;
                let destination = o.multi(self)?;
                let address = o.address(self, inst)?;
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
                Ok(o.end())
            }
            op::INPUT_BITS => {
                let length = o.multi(self)?;
                let destination = o.multi(self)?;
                let address = o.address(self, inst)?;
                self.charge(1)?;
                let ibo = self.bit_order()?;
                if length > 16 {
                    return Err(Reason::TooManyBitsRequested.into());
                }
                self.note_p(ibo & 1 != 0);
                if usize::from(length) > self.bits_available() {
                    return self.target(address);
                }
                let v = self.take_bits(length, ibo & 1 != 0, ibo & 4 != 0);
                self.set_word(destination, v)?;
                self.credit(usize::from(length));
                Ok(o.end())
            }
            op::INPUT_HUFFMAN => self.input_huffman(inst, o),
            op::STATE_ACCESS => self.op_state_access(o),
            op::STATE_CREATE => self.op_state_create(o),
            op::STATE_FREE => {
                let start = o.multi(self)?;
                let length = o.multi(self)?;
                self.charge(1)?;
                // RFC 3320 §9.4.7.
                if !(6..=20).contains(&length) {
                    return Err(Reason::InvalidStateIdLength.into());
                }
                self.add_pending(Pending::Free { start, length })?;
                Ok(o.end())
            }
            op::OUTPUT => {
                let start = o.multi(self)?;
                let length = o.multi(self)?;
                self.charge(1 + u64::from(length))?;
                // RFC 3320 §9.4.8.
                if self.output.len() + usize::from(length) > MAX_OUTPUT {
                    return Err(Reason::OutputOverflow.into());
                }
                self.output_seen = true;
                if length == 1 {
                    // One byte: the byte copying rules do not apply.
                    let v = self.byte(start)?;
                    self.output.push(v);
                } else {
                    let b = self.bounds()?;
                    read_into(self.mem, start, length, b, self.output)?;
                }
                Ok(o.end())
            }
            op::END_MESSAGE => self.op_end_message(o),
            _ => Err(Reason::InvalidOpcode.into()),
        }
    }

    #[inline(never)]
    fn op_sha1<O: Ops>(&mut self, o: &mut O) -> Flow {
        let position = o.multi(self)?;
        let length = o.multi(self)?;
        let destination = o.multi(self)?;
        self.charge(1 + u64::from(length))?;
        let mut h = Sha1::new();
        let b = self.bounds()?;
        for_runs(self.mem, position, length, b, |run| h.update(run))?;
        let digest: [u8; 20] = h.finalize().into();
        self.write_bytes(destination, digest)?;
        Ok(o.end())
    }

    #[inline(never)]
    fn op_multiload<O: Ops>(&mut self, inst: u16, o: &mut O) -> Flow {
        let address = o.multi(self)?;
        let n = o.literal(self)?;
        // Find the end of the instruction without evaluating.
        let values_at = o.end();
        for _ in 0..n {
            o.skip_multi(self)?;
        }
        let end = o.end();
        self.charge(1 + u64::from(n))?;
        // RFC 3320 §9.2.2: the words written must not overlap the
        // instruction itself.
        let inst_len = u32::from(end.wrapping_sub(inst));
        let span = 2 * u32::from(n);
        for off in 0..span.min(0x10000) {
            let a = address.wrapping_add(off as u16);
            if u32::from(a.wrapping_sub(inst)) < inst_len {
                return Err(Reason::MultiloadOverwritten.into());
            }
        }
        // RFC 4896 §3.2: step by step, indirection at execution time.
        let mut p = values_at;
        for i in 0..n {
            let v = self.multi(&mut p)?;
            self.set_word(address.wrapping_add(i.wrapping_mul(2)), v)?;
        }
        Ok(end)
    }

    #[inline(never)]
    fn op_memset<O: Ops>(&mut self, o: &mut O) -> Flow {
        let address = o.multi(self)?;
        let length = o.multi(self)?;
        let start_value = o.multi(self)?;
        let offset = o.multi(self)?;
        self.charge(1 + u64::from(length))?;
        let seq = (0..length).map(|n| (start_value.wrapping_add(n.wrapping_mul(offset))) as u8);
        self.write_bytes(address, seq)?;
        Ok(o.end())
    }

    #[inline(never)]
    fn op_switch<O: Ops>(&mut self, inst: u16, o: &mut O) -> Flow {
        let n = o.literal(self)?;
        let j = o.multi(self)?;
        self.charge(1 + u64::from(n))?;
        let mut chosen = None;
        for i in 0..n {
            let a = o.address(self, inst)?;
            if i == j {
                chosen = Some(a);
            }
        }
        let a = chosen.ok_or(Reason::SwitchValueTooHigh)?;
        self.target(a)
    }

    #[inline(never)]
    fn op_crc<O: Ops>(&mut self, inst: u16, o: &mut O) -> Flow {
        let value = o.multi(self)?;
        let position = o.multi(self)?;
        let length = o.multi(self)?;
        let address = o.address(self, inst)?;
        self.charge(1 + u64::from(length))?;
        let mut fcs = crate::crc::Fcs16::new();
        let b = self.bounds()?;
        for_runs(self.mem, position, length, b, |run| {
            run.iter().for_each(|&x| fcs.update(x))
        })?;
        if fcs.value() == value {
            Ok(o.end())
        } else {
            self.target(address)
        }
    }

    #[inline(never)]
    fn op_state_access<O: Ops>(&mut self, o: &mut O) -> Flow {
        let id_start = o.multi(self)?;
        let id_len = o.multi(self)?;
        let state_begin = o.multi(self)?;
        let state_length = o.multi(self)?;
        let state_address = o.multi(self)?;
        let state_instruction = o.multi(self)?;
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
            return Err(Reason::InvalidStateProbe.into());
        }
        let value = s.value();
        let Some(part) = value.get(usize::from(begin)..usize::from(begin) + usize::from(length))
        else {
            let mut id = vec![0u8; usize::from(id_len)];
            for (i, b) in id.iter_mut().enumerate() {
                *b = self.byte(id_start.wrapping_add(i as u16))?;
            }
            self.details = id;
            return Err(Reason::StateTooShort.into());
        };
        // Write through the byte copying rules.
        let (bcl, bcr) = self.bounds()?;
        let mut d = address;
        for &b in part {
            *self.mem.get_mut(usize::from(d)).ok_or(Reason::Segfault)? = b;
            d = next(d, bcl, bcr);
        }
        if instruction == 0 {
            Ok(o.end())
        } else {
            self.target(instruction)
        }
    }

    #[inline(never)]
    fn op_state_create<O: Ops>(&mut self, o: &mut O) -> Flow {
        let length = o.multi(self)?;
        let address = o.multi(self)?;
        let instruction = o.multi(self)?;
        let mal = o.multi(self)?;
        let priority = o.multi(self)?;
        self.charge(1 + u64::from(length))?;
        // RFC 3320 §9.4.6.
        if !(6..=20).contains(&mal) {
            return Err(Reason::InvalidStateIdLength.into());
        }
        if priority == 65535 {
            return Err(Reason::InvalidStatePriority.into());
        }
        self.add_pending(Pending::Create {
            length,
            address,
            instruction,
            mal,
            priority,
        })?;
        Ok(o.end())
    }

    #[inline(never)]
    fn op_end_message<O: Ops>(&mut self, o: &mut O) -> Flow {
        let feedback_location = o.multi(self)?;
        let parameters_location = o.multi(self)?;
        let length = o.multi(self)?;
        let address = o.multi(self)?;
        let instruction = o.multi(self)?;
        let mal = o.multi(self)?;
        let priority = o.multi(self)?;
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
        Err(Stop::End)
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

    fn input_huffman<O: Ops>(&mut self, inst: u16, o: &mut O) -> Flow {
        let destination = o.multi(self)?;
        let address = o.address(self, inst)?;
        let n = o.literal(self)?;
        self.charge(1 + u64::from(n))?;
        if n == 0 {
            // RFC 3320 §9.4.4: ignored.
            return Ok(o.end());
        }
        let ibo = self.bit_order()?;
        let p = ibo & 1 != 0;
        let h_lsb = ibo & 2 != 0;
        self.note_p(p);
        // Decode the operand sets first (conceptual model, RFC 3320 §8.5),
        // checking the total bit count.
        let total_bits = o.huffman_sets(self, n)?;
        if total_bits > 16 {
            return Err(Reason::TooManyBitsRequested.into());
        }
        let saved = (self.in_pos, self.bit_buf, self.bit_count);
        // With a table and all the bits the sets could take available, one
        // look at the next bits decides: the result of steps 2-3.
        if let Some((t, table)) = o.huffman_table(p, h_lsb) {
            if usize::from(t) <= self.bits_available() {
                let peek = self.peek_bits(t, p);
                let e = table.get(usize::from(peek)).copied().unwrap_or(0);
                if e == 0 {
                    return Err(Reason::HuffmanNoMatch.into());
                }
                let taken = ((e >> 16) & 0x1f) as u16;
                self.skip_bits(taken);
                self.set_word(destination, e as u16)?;
                self.credit(usize::from(taken));
                return Ok(o.end());
            }
        }
        let mut h: u32 = 0;
        let mut taken = 0usize;
        for j in 0..usize::from(n) {
            let Some([bits, lower, upper, uncompressed]) = o.huffman_set(self, j) else {
                return Err(Reason::InternalError.into());
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
                return Ok(o.end());
            }
        }
        Err(Reason::HuffmanNoMatch.into())
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

/// Where an instruction's operands come from: decoded from memory as the
/// instruction runs ([`MemOps`]), or from a [`Slot`] decoded earlier
/// ([`SlotOps`]). Both give the same values: the instructions are written
/// once, against this trait, and take every operand through it, in order
/// (a unit test checks the kinds they take against [`crate::isa`]).
trait Ops {
    /// A literal operand (#).
    fn literal<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16>;
    /// A reference operand ($): the address it names.
    fn reference<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16>;
    /// A multitype operand (%): its value, read from memory now.
    fn multi<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16>;
    /// A multitype operand skipped without evaluating it (MULTILOAD
    /// evaluates its values only once it knows its length).
    fn skip_multi<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<()>;
    /// An address operand (@): multitype plus the instruction's address.
    fn address<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>, inst: u16) -> R<u16>;
    /// The address after the operands taken so far (after all of them,
    /// the next instruction).
    fn end(&self) -> u16;
    /// Takes the `n` operand sets of INPUT-HUFFMAN; returns the sum of
    /// their bits.
    fn huffman_sets<S: StateStore + ?Sized>(&mut self, run: &mut Run<'_, S>, n: u16) -> R<u32> {
        run.huff_sets.clear();
        let mut total_bits: u32 = 0;
        for _ in 0..n {
            let mut set = [0u16; 4];
            for v in set.iter_mut() {
                *v = self.multi(run)?;
            }
            total_bits += u32::from(set[0]);
            run.huff_sets.push(set);
        }
        Ok(total_bits)
    }
    /// Operand set `j` of INPUT-HUFFMAN, after [`Ops::huffman_sets`].
    fn huffman_set<S: StateStore + ?Sized>(&self, run: &Run<'_, S>, j: usize) -> Option<[u16; 4]> {
        run.huff_sets.get(j).copied()
    }
    /// A decode table for the sets with P bit `p` and H bit `h_lsb` (see
    /// [`HuffTab::table`]) and the number of bits it looks at, if there
    /// is one.
    fn huffman_table(&mut self, _p: bool, _h_lsb: bool) -> Option<(u16, &[u32])> {
        None
    }
}

/// Operands decoded from memory (RFC 3320 §8.5).
struct MemOps {
    pc: u16,
}

impl MemOps {
    fn new(inst: u16) -> MemOps {
        MemOps {
            pc: inst.wrapping_add(1),
        }
    }
}

impl Ops for MemOps {
    #[inline(always)]
    fn literal<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16> {
        run.literal(&mut self.pc)
    }
    #[inline(always)]
    fn reference<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16> {
        run.reference(&mut self.pc)
    }
    #[inline(always)]
    fn multi<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16> {
        run.multi(&mut self.pc)
    }
    #[inline(always)]
    fn address<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>, inst: u16) -> R<u16> {
        run.address(&mut self.pc, inst)
    }
    #[inline(always)]
    fn end(&self) -> u16 {
        self.pc
    }
    fn skip_multi<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<()> {
        run.skip_multi(&mut self.pc)
    }
}

/// Operands from a decoded [`Slot`]: constants, or memory words read now.
struct SlotOps<'s> {
    slot: &'s Slot,
    i: usize,
    /// The INPUT-HUFFMAN tables; the slot's is at its address modulo
    /// `HUFF_TABS`.
    tabs: &'s mut [HuffTab; HUFF_TABS],
}

impl SlotOps<'_> {
    /// The slot's INPUT-HUFFMAN table.
    fn tab(&self) -> &HuffTab {
        &self.tabs[self.slot.pc as usize % HUFF_TABS]
    }

    #[inline(always)]
    fn next<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16> {
        let o = self.slot.o.get(self.i).copied().unwrap_or_default();
        self.i += 1;
        if o.mem {
            Ok(run.word(o.v)?.wrapping_add(o.add))
        } else {
            Ok(o.v)
        }
    }
}

impl Ops for SlotOps<'_> {
    #[inline(always)]
    fn literal<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16> {
        self.next(run)
    }
    #[inline(always)]
    fn reference<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16> {
        self.next(run)
    }
    #[inline(always)]
    fn multi<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>) -> R<u16> {
        self.next(run)
    }
    #[inline(always)]
    fn address<S: StateStore + ?Sized>(&mut self, run: &Run<'_, S>, _inst: u16) -> R<u16> {
        // The instruction's address was added when decoding.
        self.next(run)
    }
    #[inline(always)]
    fn end(&self) -> u16 {
        (self.slot.pc as u16).wrapping_add(self.slot.len)
    }
    fn skip_multi<S: StateStore + ?Sized>(&mut self, _run: &Run<'_, S>) -> R<()> {
        // MULTILOAD is not cached (see `cached`).
        Err(Reason::InternalError)
    }
    #[inline(always)]
    fn huffman_sets<S: StateStore + ?Sized>(&mut self, _run: &mut Run<'_, S>, _n: u16) -> R<u32> {
        Ok(self.tab().total_bits)
    }
    #[inline(always)]
    fn huffman_set<S: StateStore + ?Sized>(&self, _run: &Run<'_, S>, j: usize) -> Option<[u16; 4]> {
        self.tab().sets.get(j).copied()
    }
    #[inline(always)]
    fn huffman_table(&mut self, p: bool, h_lsb: bool) -> Option<(u16, &[u32])> {
        let t = &mut self.tabs[self.slot.pc as usize % HUFF_TABS];
        if t.total_bits > HUFF_TABLE_BITS {
            return None;
        }
        if t.table.is_empty() || t.table_bit_order != (p, h_lsb) {
            t.build_table(p, h_lsb);
        }
        Some((t.total_bits as u16, &t.table))
    }
}

/// Decodes a literal operand from `code` at `*at` (RFC 3320 Figure 8).
fn dec_literal(code: &[u8], at: &mut usize) -> Option<Opnd> {
    let (v, n) = isa::decode_literal(code.get(*at..)?)?;
    *at += n;
    Some(Opnd {
        mem: false,
        v,
        add: 0,
    })
}

/// Decodes a reference operand: the address it names (Figure 9).
fn dec_reference(code: &[u8], at: &mut usize) -> Option<Opnd> {
    let (v, n) = isa::decode_reference(code.get(*at..)?)?;
    *at += n;
    Some(Opnd {
        mem: false,
        v,
        add: 0,
    })
}

/// Decodes a multitype operand (Figure 10): a constant, or the address of
/// the memory word that holds its value.
fn dec_multi(code: &[u8], at: &mut usize) -> Option<Opnd> {
    let (m, n) = isa::decode_multitype(code.get(*at..)?)?;
    *at += n;
    Some(match m {
        Multitype::Value(v) => Opnd {
            mem: false,
            v,
            add: 0,
        },
        Multitype::Memory(v) => Opnd {
            mem: true,
            v,
            add: 0,
        },
    })
}

/// Decodes an address operand: a multitype plus the instruction's address.
fn dec_address(code: &[u8], at: &mut usize, inst: u16) -> Option<Opnd> {
    let mut o = dec_multi(code, at)?;
    if o.mem {
        o.add = inst;
    } else {
        o.v = o.v.wrapping_add(inst);
    }
    Some(o)
}

/// Whether the instruction with this opcode is worth caching: the
/// frequent ones, whose operands are all in [`isa::Shape::fixed`] (and the
/// constant sets of INPUT-HUFFMAN). The others run from memory.
fn cached(opcode: u8) -> bool {
    matches!(
        opcode,
        op::AND
            ..=op::REMAINDER
                | op::LOAD
                | op::PUSH
                | op::POP
                | op::COPY
                | op::COPY_LITERAL
                | op::COPY_OFFSET
                | op::JUMP
                | op::CALL
                | op::RETURN
                | op::COMPARE
                | op::INPUT_BYTES
                | op::INPUT_BITS
                | op::INPUT_HUFFMAN
                | op::OUTPUT
    )
}

/// Decodes the instruction at `pc` for its slot: `w` are the 16 bytes at
/// `pc`; `mem` is the memory, read only for an INPUT-HUFFMAN longer than
/// 16 bytes, whose sets go in `tab`. Instructions that are rare, or whose
/// operands are invalid, give a [`SlotKind::Slow`] slot: the instruction
/// then decodes from memory and reports its own error.
fn decode(pc: u16, w: &[u8], mem: &[u8], tab: &mut HuffTab) -> Slot {
    let opcode = w.first().copied().unwrap_or_default();
    if opcode == op::INPUT_HUFFMAN {
        // The tab is shared by several slots: it is this one's only once
        // filled (`owner` is set at the end).
        tab.owner = u32::MAX;
        tab.tail.clear();
        tab.tail_word = None;
        tab.table.clear();
        tab.sets.clear();
        tab.total_bits = 0;
    }
    let slow = Slot::slow(pc, opcode);
    let Some(info) = isa::by_opcode(opcode).filter(|_| cached(opcode)) else {
        return slow;
    };
    let mut o = [Opnd::default(); 5];
    let mut at = 1usize;
    if info.shape.fixed.len() > o.len() {
        return slow;
    }
    for (k, d) in info.shape.fixed.iter().zip(o.iter_mut()) {
        let v = match k {
            OperandKind::Literal => dec_literal(w, &mut at),
            OperandKind::Reference => dec_reference(w, &mut at),
            OperandKind::Multitype => dec_multi(w, &mut at),
            OperandKind::Address => dec_address(w, &mut at, pc),
        };
        let Some(v) = v else { return slow };
        *d = v;
    }
    if opcode == op::INPUT_HUFFMAN {
        // The sets (`shape.group`: four multitypes each), all constants,
        // may run past the 16-byte window.
        let n = usize::from(o[2].v);
        let p = usize::from(pc);
        let Some(code) = mem.get(p..) else {
            return slow;
        };
        if n == 0 || n > 64 {
            return slow;
        }
        for _ in 0..n {
            let mut set = [0u16; 4];
            for v in set.iter_mut() {
                match dec_multi(code, &mut at) {
                    Some(Opnd {
                        mem: false, v: c, ..
                    }) => *v = c,
                    _ => return slow,
                }
            }
            tab.total_bits += u32::from(set[0]);
            tab.sets.push(set);
        }
        if at > 16 {
            tab.tail
                .extend_from_slice(code.get(16..at).unwrap_or_default());
            if let Some(w) = code.get(16..32) {
                let mut b = [0u8; 16];
                b.copy_from_slice(w);
                if at <= 32 {
                    let mask = if at == 32 {
                        u128::MAX
                    } else {
                        (1u128 << (8 * (at - 16))) - 1
                    };
                    tab.tail_word = Some((u128::from_le_bytes(b) & mask, mask));
                }
            }
        }
    } else if at > 16 {
        return slow;
    }
    let len = at.min(16);
    let mut window = [0u8; 16];
    window.copy_from_slice(w.get(..16).unwrap_or(&[0; 16]));
    let mask = if len == 16 {
        u128::MAX
    } else {
        (1u128 << (8 * len)) - 1
    };
    let raw = u128::from_le_bytes(window) & mask;
    if opcode == op::INPUT_HUFFMAN {
        tab.owner = u32::from(pc);
    }
    Slot {
        raw: [raw as u64, (raw >> 64) as u64],
        mask: [mask as u64, (mask >> 64) as u64],
        pc: u32::from(pc),
        kind: if opcode == op::INPUT_HUFFMAN {
            SlotKind::Huff
        } else {
            SlotKind::Decoded
        },
        len: at as u16,
        o,
        then: then_jump(opcode, pc, at, w),
    }
}

/// The JUMP to a constant address at `w[at..]`, if there is one and the
/// instruction before it (`opcode`) can go on to it.
fn then_jump(opcode: u8, pc: u16, at: usize, w: &[u8]) -> Option<ThenJump> {
    if matches!(
        opcode,
        op::JUMP | op::COMPARE | op::CALL | op::RETURN | op::INPUT_HUFFMAN
    ) || *w.get(at)? != op::JUMP
    {
        return None;
    }
    let jpc = pc.wrapping_add(at as u16);
    let mut q = at + 1;
    let a = dec_address(w, &mut q, jpc)?;
    let bytes = w.get(at..at + 4)?;
    if a.mem || q - at > 4 {
        return None;
    }
    let mask = u32::MAX >> (8 * (4 - (q - at)));
    let raw = u32::from_le_bytes(bytes.try_into().ok()?) & mask;
    Some(ThenJump {
        target: a.v,
        raw,
        mask,
    })
}

/// Whether the bytes an INPUT-HUFFMAN slot keeps past its first 16 are
/// still those at `p + 16` in memory.
#[inline(always)]
fn tab_valid(tab: &HuffTab, mem: &[u8], p: usize) -> bool {
    if let (Some((raw, mask)), Some(w)) = (tab.tail_word, mem.get(p + 16..p + 32)) {
        let mut b = [0u8; 16];
        b.copy_from_slice(w);
        return u128::from_le_bytes(b) & mask == raw;
    }
    tab.tail.is_empty() || mem.get(p + 16..p + 16 + tab.tail.len()) == Some(&tab.tail[..])
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
            let (mut sk, mut st, mut hs, mut out) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
                    if (opcode == op::INPUT_HUFFMAN && k == 2)
                        || (opcode == op::MULTILOAD && k == 1)
                    {
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

    /// Two INPUT-HUFFMAN instructions that share an operand table (their
    /// addresses are equal modulo `HUFF_TABS`), run in turn: each must use
    /// its own sets.
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
            let kinds: Vec<OperandKind> =
                info.map_or(Vec::new(), |i| i.shape.operands(n).collect());
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
            let (mut sk, mut st, mut hs, mut out) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
            };
            let mut rec = Recorder {
                inner: MemOps::new(INST),
                kinds: Vec::new(),
            };
            let r = run.step(opcode, INST, &mut rec);
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
}
