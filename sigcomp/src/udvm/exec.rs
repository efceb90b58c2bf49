//! The instructions (RFC 3320 §9): cycles, the stack, state requests,
//! and each instruction's work once its operands are taken.

use super::*;

impl<'a, S: StateStore + ?Sized> Run<'a, S> {
    // ----- cycles -------------------------------------------------------

    #[inline(always)]
    pub(super) fn charge(&mut self, cost: u64) -> R<()> {
        // RFC 3320 §8.7 item 3.
        let used = self.used + cost;
        if used > self.limit {
            return Err(Reason::CyclesExhausted);
        }
        self.used = used;
        Ok(())
    }

    // ----- stack (RFC 3320 §8.3, RFC 4896 §3.4) ---------------------------

    pub(super) fn push(&mut self, value: u16) -> R<()> {
        let sl = self.word(STACK_LOCATION)?;
        let fill = self.word(sl)?;
        self.set_word(sl.wrapping_add(2).wrapping_add(fill.wrapping_mul(2)), value)?;
        self.set_word(sl, fill.wrapping_add(1))
    }

    pub(super) fn pop(&mut self) -> R<u16> {
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

    pub(super) fn add_pending(&mut self, p: Pending) -> R<()> {
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

    pub(super) fn lookup_state(&mut self, start: u16, len: u16) -> R<&'a State> {
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
    pub(super) fn step<O: Ops>(&mut self, opcode: u8, inst: u16, o: &mut O) -> Flow {
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
            op::LOAD => {
                let address = o.multi(self)?;
                let value = o.multi(self)?;
                self.charge(1)?;
                self.set_word(address, value)?;
                Ok(o.end())
            }
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
            // Never cached: their operands come from memory, through a
            // MemOps of their own (passing `o` to a call that is not
            // inlined would keep a cached slot's operands out of
            // registers, ~10% more instructions in all).
            op::SHA_1
            | op::MULTILOAD
            | op::MEMSET
            | op::SWITCH
            | op::CRC
            | op::STATE_ACCESS
            | op::STATE_CREATE
            | op::END_MESSAGE => self.step_rare(opcode, inst, &mut MemOps::new(inst)),
            _ => Err(Reason::InvalidOpcode.into()),
        }
    }

    /// The instructions [`Run::step`] leaves to functions of their own,
    /// with their operands from `o`; other opcodes are invalid here.
    #[inline(never)]
    pub(super) fn step_rare<O: Ops>(&mut self, opcode: u8, inst: u16, o: &mut O) -> Flow {
        match opcode {
            op::SHA_1 => self.op_sha1(o),
            op::MULTILOAD => self.op_multiload(inst, o),
            op::MEMSET => self.op_memset(o),
            op::SWITCH => self.op_switch(inst, o),
            op::CRC => self.op_crc(inst, o),
            op::STATE_ACCESS => self.op_state_access(o),
            op::STATE_CREATE => self.op_state_create(o),
            op::END_MESSAGE => self.op_end_message(o),
            _ => Err(Reason::InvalidOpcode.into()),
        }
    }

    #[inline(never)]
    pub(super) fn op_sha1<O: Ops>(&mut self, o: &mut O) -> Flow {
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
    pub(super) fn op_multiload<O: Ops>(&mut self, inst: u16, o: &mut O) -> Flow {
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
    pub(super) fn op_memset<O: Ops>(&mut self, o: &mut O) -> Flow {
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
    pub(super) fn op_switch<O: Ops>(&mut self, inst: u16, o: &mut O) -> Flow {
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
    pub(super) fn op_crc<O: Ops>(&mut self, inst: u16, o: &mut O) -> Flow {
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
    pub(super) fn op_state_access<O: Ops>(&mut self, o: &mut O) -> Flow {
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
        // Write through the byte copying rules, a run at a time (a byte
        // outside memory fails the message either way).
        let b = self.bounds()?;
        self.write_slice(address, part, b)?;
        if instruction == 0 {
            Ok(o.end())
        } else {
            self.target(instruction)
        }
    }

    #[inline(never)]
    pub(super) fn op_state_create<O: Ops>(&mut self, o: &mut O) -> Flow {
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
    pub(super) fn op_end_message<O: Ops>(&mut self, o: &mut O) -> Flow {
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

    pub(super) fn sort(&mut self, start: u16, n: u16, k: u16, descending: bool) -> R<()> {
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

    pub(super) fn end_message(
        &mut self,
        feedback_location: u16,
        parameters_location: u16,
    ) -> R<()> {
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
