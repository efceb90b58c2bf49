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
//! instruction code (the `Ops` trait). The decoding loop of our own
//! bytecode, which nearly every message between two endpoints of ours
//! runs, is run as Rust with the same effects ([`native`]).

//!
//! The parts: [`exec`] runs the instructions, taking their operands
//! through [`operands::Ops`]; [`memory`] holds the bounds-checked accesses
//! and the circular-buffer copies; [`input`] the bit reader and
//! INPUT-HUFFMAN; [`cache`] the decoded-instruction cache; [`native`] our
//! bytecode's loop.

mod cache;
mod exec;
mod input;
mod memory;
mod native;
mod operands;
#[cfg(test)]
mod tests;

use sha1::{Digest, Sha1};

use crate::error::{Failure, Reason};
use crate::feedback::{RequestedFeedback, ReturnedParameters};
use crate::isa::{self, Multitype, OperandKind, op};
use crate::state::{State, StateRequest, StateStore};
use cache::*;
use memory::*;
use operands::*;

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
    /// Tests: decode every instruction from memory, as a reference (and
    /// never run our bytecode's loop natively, [`native`]).
    cache_off: bool,
    /// [`crate::Decompressor::set_native_loop`] turned [`native`] off.
    pub(crate) native_off: bool,
    /// Symbols decoded by [`native`] so far (tests check it ran).
    pub(crate) native_symbols: u64,
    /// Decoded instructions, kept between messages (see [`Slot`]).
    slots: Vec<Slot>,
    /// The operand sets of the INPUT-HUFFMAN instructions in the slots
    /// (each names its own, [`Slot::tab`]).
    slot_huff: Vec<HuffTab>,
    /// The next table to take when none is free ([`tab_for`]).
    next_tab: usize,
    huff_sets: Vec<[u16; 4]>,
    mem: Vec<u8>,
    sort_keys: Vec<(u16, u32)>,
    sort_tmp: Vec<u16>,
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
    native_symbols: u64,
}

impl Udvm {
    /// A machine whose tables and memory (up to `max_memory` bytes) are
    /// allocated and written now: the first message decompressed pays
    /// neither the allocations nor their page faults (~90 KiB of
    /// instruction cache), which in a new process fall on its first
    /// SigComp message.
    pub(crate) fn with_memory(max_memory: usize) -> Udvm {
        let mut u = Udvm::default();
        u.reset(max_memory.min(65536));
        u
    }

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
            native_symbols: 0,
        };
        let (Ok(slots), Ok(tabs)) = (
            <&mut [Slot; SLOTS]>::try_from(&mut self.slots[..]),
            <&mut [HuffTab; HUFF_TABS]>::try_from(&mut self.slot_huff[..]),
        ) else {
            // `reset` makes them.
            return Err(Failure::header(Reason::InternalError));
        };
        let interpret_only = self.cache_off || self.native_off;
        let ended = run.execute(
            pc,
            slots,
            tabs,
            &mut self.next_tab,
            self.cache_off,
            interpret_only,
        );
        self.native_symbols += run.native_symbols;
        ended
    }
}

impl<'a, S: StateStore + ?Sized> Run<'a, S> {
    fn execute(
        &mut self,
        mut pc: u16,
        slots: &mut [Slot; SLOTS],
        tabs: &mut [HuffTab; HUFF_TABS],
        next_tab: &mut usize,
        cache_off: bool,
        interpret_only: bool,
    ) -> Result<Ended, Failure> {
        loop {
            if pc == crate::compress::bytecode::NEXT_SYMBOL && !interpret_only {
                match self.native_loop() {
                    native::Left::Nothing => {}
                    native::Left::At(next) => {
                        pc = next;
                        continue;
                    }
                    native::Left::Failed(reason, opcode, at) => {
                        return Err(self.fail(reason, opcode, at));
                    }
                }
            }
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
                        let tab = &tabs[usize::from(slot.tab) % HUFF_TABS];
                        !(tab.owner == u32::from(pc) && tab_valid(tab, self.mem, p))
                    })
                {
                    *slot = if cache_off {
                        Slot::slow(pc, opcode)
                    } else {
                        let t = if opcode == op::INPUT_HUFFMAN {
                            tab_for(tabs, pc, next_tab)
                        } else {
                            0
                        };
                        Slot {
                            tab: t as u8,
                            ..decode(pc, w, self.mem, &mut tabs[t])
                        }
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
}
