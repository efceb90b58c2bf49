//! Compressed input: the bit reader (RFC 3320 §8.2, RFC 4896 §3.1) and
//! INPUT-HUFFMAN (RFC 3320 §9.4.4) with its decode table.

use super::*;

impl HuffTab {
    /// Fills `table` by running the sets over every possible input.
    pub(super) fn build_table(&mut self, p: bool, h_lsb: bool) {
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

impl<'a, S: StateStore + ?Sized> Run<'a, S> {
    // ----- input (RFC 3320 §8.2, RFC 4896 §3.1) ---------------------------

    pub(super) fn bits_available(&self) -> usize {
        usize::from(self.bit_count) + 8 * (self.input.len() - self.in_pos)
    }

    /// Applies the P-bit rule: a changed P-bit discards a held fraction.
    pub(super) fn note_p(&mut self, p: bool) {
        if self.last_p.is_some_and(|old| old != p) {
            self.bit_count = 0;
        }
        self.last_p = Some(p);
    }

    /// The next `n` (<= 16) input bits, without taking them (RFC 3320
    /// §8.2), in the order P packs them: the first to arrive as MSB when
    /// P = 0, as LSB when P = 1. The caller checked availability.
    #[inline(always)]
    pub(super) fn peek_bits(&self, n: u16, p: bool) -> u16 {
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
    pub(super) fn skip_bits(&mut self, n: u16) {
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
    pub(super) fn take_bits(&mut self, n: u16, p: bool, lsb_first: bool) -> u16 {
        let v = self.peek_bits(n, p);
        self.skip_bits(n);
        if lsb_first != p && n > 0 {
            v.reverse_bits() >> (16 - n)
        } else {
            v
        }
    }

    pub(super) fn bit_order(&self) -> R<u16> {
        let ibo = self.word(INPUT_BIT_ORDER)?;
        // RFC 3320 §8.2: must lie between 0 and 7.
        if ibo > 7 {
            return Err(Reason::BadInputBitorder);
        }
        Ok(ibo)
    }

    pub(super) fn credit(&mut self, bits: usize) {
        // RFC 3320 §8.6: n bits successfully input earn n * cycles_per_bit.
        self.limit += bits as u64 * self.cpb;
    }

    pub(super) fn input_huffman<O: Ops>(&mut self, inst: u16, o: &mut O) -> Flow {
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
}
