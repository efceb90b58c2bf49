//! Operands (RFC 3320 §8.5): read from memory as an instruction runs,
//! and the [`Ops`] trait through which every instruction takes them.

use super::*;

impl<'a, S: StateStore + ?Sized> Run<'a, S> {
    // ----- operands (RFC 3320 §8.5) --------------------------------------

    #[inline(always)]
    pub(super) fn literal(&self, pc: &mut u16) -> R<u16> {
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
    pub(super) fn reference(&self, pc: &mut u16) -> R<u16> {
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
    pub(super) fn multi(&self, pc: &mut u16) -> R<u16> {
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
    pub(super) fn skip_multi(&self, pc: &mut u16) -> R<()> {
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
    pub(super) fn address(&self, pc: &mut u16, inst: u16) -> R<u16> {
        Ok(self.multi(pc)?.wrapping_add(inst))
    }

    /// Checks a jump target (RFC 3320 §9.3.1).
    #[inline]
    pub(super) fn target(&self, a: u16) -> Flow {
        if usize::from(a) >= self.mem.len() {
            return Err(Reason::Segfault.into());
        }
        Ok(a)
    }
}

/// Where an instruction's operands come from: decoded from memory as the
/// instruction runs ([`MemOps`]), or from a [`Slot`] decoded earlier
/// ([`SlotOps`]). Both give the same values: the instructions are written
/// once, against this trait, and take every operand through it, in order
/// (a unit test checks the kinds they take against [`crate::isa`]).
pub(super) trait Ops {
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
pub(super) struct MemOps {
    pc: u16,
}

impl MemOps {
    pub(super) fn new(inst: u16) -> MemOps {
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
