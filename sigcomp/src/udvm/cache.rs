//! The decoded-instruction cache: slots decoded once from the instruction
//! set table ([`crate::isa`]) and checked against the bytes in memory
//! each time they run, and the operands they give ([`SlotOps`]).

use super::*;

/// Slots of the decoded-instruction cache, direct-mapped by address.
pub(super) const SLOTS: usize = 1024;

/// INPUT-HUFFMAN operand tables: bounds what a message can make the cache
/// hold. A slot names its table ([`Slot::tab`], chosen by [`tab_for`]).
pub(super) const HUFF_TABS: usize = 8;

/// A decoded multitype, reference, literal or address operand: `v`, or
/// the memory word at `v` plus `add` (RFC 3320 §8.5, Figure 10).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Opnd {
    pub(super) mem: bool,
    pub(super) v: u16,
    pub(super) add: u16,
}

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SlotKind {
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
pub(super) struct Slot {
    pub(super) raw: [u64; 2],
    pub(super) mask: [u64; 2],
    pub(super) pc: u32,
    pub(super) kind: SlotKind,
    pub(super) len: u16,
    pub(super) o: [Opnd; 5],
    /// A JUMP to a constant address right after the instruction.
    pub(super) then: Option<ThenJump>,
    /// For [`SlotKind::Huff`], the index of its [`HuffTab`], valid while
    /// the table's `owner` is this slot's `pc`.
    pub(super) tab: u8,
}

/// A JUMP that follows an instruction, run with it when the instruction
/// goes on to it, its bytes (checked then: the instruction may have
/// rewritten them) are unchanged, and it can pay its cycle and land in
/// memory; otherwise it runs as any instruction and fails as such.
#[derive(Debug, Clone, Copy)]
pub(super) struct ThenJump {
    pub(super) target: u16,
    pub(super) raw: u32,
    pub(super) mask: u32,
}

impl Slot {
    /// A slot that sends the instruction at `pc` to the decode-each-time
    /// path.
    pub(super) fn slow(pc: u16, opcode: u8) -> Slot {
        Slot {
            raw: [u64::from(opcode), 0],
            mask: [0xff, 0],
            pc: u32::from(pc),
            kind: SlotKind::Slow,
            len: 1,
            o: [Opnd::default(); 5],
            then: None,
            tab: 0,
        }
    }

    pub(super) const EMPTY: Slot = Slot {
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
        tab: 0,
    };
}

/// Largest sum of bits of INPUT-HUFFMAN sets given a decode table
/// (1024 entries, 4 KB).
pub(super) const HUFF_TABLE_BITS: u32 = 10;

/// The constant operand sets of a cached INPUT-HUFFMAN, and its bytes
/// past the 16 its slot checks.
#[derive(Debug, Clone)]
pub(super) struct HuffTab {
    /// The address of the INPUT-HUFFMAN whose sets these are;
    /// [`HuffTab::FREE`] when none.
    pub(super) owner: u32,
    /// Indexed by the next `total_bits` input bits as
    /// [`Run::peek_bits`] gives them: 0 when no set matches them, else bit 31 set, the
    /// bits the matching set and those before it take in bits 16..=20
    /// and the value written in bits 0..=15 (RFC 3320 §9.4.4 steps 2-3).
    pub(super) table: Vec<u32>,
    /// The P and H bits (RFC 3320 §8.2) the table was built for.
    pub(super) table_bit_order: (bool, bool),
    pub(super) tail: Vec<u8>,
    /// A tail of at most 16 bytes as a masked little-endian word, checked
    /// without a call to memcmp.
    pub(super) tail_word: Option<(u128, u128)>,
    pub(super) sets: Vec<[u16; 4]>,
    pub(super) total_bits: u32,
}

impl HuffTab {
    /// The `owner` of a table no INPUT-HUFFMAN holds.
    pub(super) const FREE: u32 = u32::MAX;
}

impl Default for HuffTab {
    fn default() -> HuffTab {
        HuffTab {
            owner: HuffTab::FREE,
            table: Vec::new(),
            table_bit_order: (false, false),
            tail: Vec::new(),
            tail_word: None,
            sets: Vec::new(),
            total_bits: 0,
        }
    }
}

/// The table for the INPUT-HUFFMAN at `pc` being (re)decoded: the one it
/// held, else a free one, else the next in turn from `victim`. A DEFLATE
/// decoder's loop runs two INPUT-HUFFMANs (literal/length, distance) one
/// after the other: each keeps its own table whatever their addresses,
/// instead of rebuilding the 2^total_bits decode table at every symbol
/// when they would share one.
pub(super) fn tab_for(tabs: &[HuffTab; HUFF_TABS], pc: u16, victim: &mut usize) -> usize {
    let pc = u32::from(pc);
    if let Some(i) = tabs.iter().position(|t| t.owner == pc) {
        return i;
    }
    if let Some(i) = tabs.iter().position(|t| t.owner == HuffTab::FREE) {
        return i;
    }
    let i = *victim % HUFF_TABS;
    *victim = (i + 1) % HUFF_TABS;
    i
}

/// Operands from a decoded [`Slot`]: constants, or memory words read now.
pub(super) struct SlotOps<'s> {
    pub(super) slot: &'s Slot,
    pub(super) i: usize,
    /// The INPUT-HUFFMAN tables; the slot's is at [`Slot::tab`].
    pub(super) tabs: &'s mut [HuffTab; HUFF_TABS],
}

impl SlotOps<'_> {
    /// The slot's INPUT-HUFFMAN table.
    fn tab(&self) -> &HuffTab {
        &self.tabs[usize::from(self.slot.tab) % HUFF_TABS]
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
        let t = &mut self.tabs[usize::from(self.slot.tab) % HUFF_TABS];
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
pub(super) fn dec_literal(code: &[u8], at: &mut usize) -> Option<Opnd> {
    let (v, n) = isa::decode_literal(code.get(*at..)?)?;
    *at += n;
    Some(Opnd {
        mem: false,
        v,
        add: 0,
    })
}

/// Decodes a reference operand: the address it names (Figure 9).
pub(super) fn dec_reference(code: &[u8], at: &mut usize) -> Option<Opnd> {
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
pub(super) fn dec_multi(code: &[u8], at: &mut usize) -> Option<Opnd> {
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
pub(super) fn dec_address(code: &[u8], at: &mut usize, inst: u16) -> Option<Opnd> {
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
pub(super) fn cached(opcode: u8) -> bool {
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
pub(super) fn decode(pc: u16, w: &[u8], mem: &[u8], tab: &mut HuffTab) -> Slot {
    let opcode = w.first().copied().unwrap_or_default();
    if opcode == op::INPUT_HUFFMAN {
        // The tab may have been another slot's: it is this one's only
        // once filled (`owner` is set at the end).
        tab.owner = HuffTab::FREE;
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
        tab: 0,
    }
}

/// The JUMP to a constant address at `w[at..]`, if there is one and the
/// instruction before it (`opcode`) can go on to it.
pub(super) fn then_jump(opcode: u8, pc: u16, at: usize, w: &[u8]) -> Option<ThenJump> {
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
pub(super) fn tab_valid(tab: &HuffTab, mem: &[u8], p: usize) -> bool {
    if let (Some((raw, mask)), Some(w)) = (tab.tail_word, mem.get(p + 16..p + 32)) {
        let mut b = [0u8; 16];
        b.copy_from_slice(w);
        return u128::from_le_bytes(b) & mask == raw;
    }
    tab.tail.is_empty() || mem.get(p + 16..p + 16 + tab.tail.len()) == Some(&tab.tail[..])
}
