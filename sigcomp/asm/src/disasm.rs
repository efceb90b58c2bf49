//! Disassembler: bytes to RFC 4464 §3 assembly that reassembles to the
//! same bytes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use super::isa::{
    DecodedInstruction, DecodedOperand, Multitype, decode_instruction, encode_instruction,
};

/// How an instruction leaves the straight line (RFC 3320 §9.3, §9.4).
fn falls_through(opcode: u8) -> bool {
    // DECOMPRESSION-FAILURE, JUMP, COMPARE, RETURN, SWITCH, END-MESSAGE.
    !matches!(opcode, 0 | 22 | 23 | 25 | 26 | 35)
}

/// Whether `ins` leaves the straight line for a target known only at run
/// time: RETURN (RFC 3320 §9.3.3), or JUMP/COMPARE/SWITCH with an address
/// operand read from memory.
fn ends_indirectly(ins: &DecodedInstruction) -> bool {
    ins.info.opcode == 25
        || (!falls_through(ins.info.opcode)
            && ins
                .operands
                .iter()
                .any(|op| matches!(op, DecodedOperand::Address(Multitype::Memory(_)))))
}

/// Absolute targets of the address operands of `ins`.
fn targets(ins: &DecodedInstruction) -> impl Iterator<Item = u16> + '_ {
    ins.operands.iter().filter_map(|op| match op {
        DecodedOperand::Address(Multitype::Value(t)) => Some(*t),
        _ => None,
    })
}

/// UDVM address of offset `off` (addresses wrap at 2^16, RFC 3320 §8.5).
fn addr_of(base: usize, off: usize) -> u16 {
    ((base + off) & 0xFFFF) as u16
}

struct Disasm<'a> {
    code: &'a [u8],
    base: usize,
    /// Instructions found by following the control flow, by offset.
    found: BTreeMap<usize, DecodedInstruction>,
    /// Those of `found` not reachable from the origin by direct jumps.
    swept: BTreeSet<usize>,
}

impl<'a> Disasm<'a> {
    fn offset_of(&self, target: u16) -> Option<usize> {
        let t = usize::from(target);
        t.checked_sub(self.base).filter(|o| *o < self.code.len())
    }

    /// Follows the control flow from the origin (RFC 4464 §3.3: execution
    /// starts at the first instruction), then from the byte after each
    /// `RETURN` or jump through memory (`JUMP ($x)`), whose targets are
    /// only known at run time. Straight-line code is decoded
    /// first; branch targets that are a lone zero byte (typically `!`
    /// pointing into an operand) are tried last so that they do not claim
    /// bytes of a real instruction.
    fn trace(code: &'a [u8], base: usize) -> Self {
        let mut d = Disasm {
            code,
            base,
            found: BTreeMap::new(),
            swept: BTreeSet::new(),
        };
        let mut claimed = vec![false; code.len()];
        if !code.is_empty() {
            d.follow(0, &mut claimed, false);
        }
        // Code after an indirect transfer (RETURN, or a jump through
        // memory) is likely reached at run time; data after END-MESSAGE or
        // an ordinary jump is left as data.
        let mut tried = BTreeSet::new();
        loop {
            let seeds: Vec<usize> = d
                .found
                .iter()
                .filter(|(_, i)| ends_indirectly(i))
                .map(|(o, i)| o + i.len)
                .filter(|s| !tried.contains(s))
                .collect();
            if seeds.is_empty() {
                break;
            }
            for seed in seeds {
                tried.insert(seed);
                if claimed.get(seed) == Some(&false) && code.get(seed).is_some_and(|b| *b != 0) {
                    d.follow(seed, &mut claimed, true);
                }
            }
        }
        d
    }

    fn follow(&mut self, entry: usize, claimed: &mut [bool], swept: bool) {
        let code = self.code;
        let base = self.base;
        let mut queue = VecDeque::from([entry]);
        let mut zero_queue = VecDeque::new();
        while let Some(start) = queue.pop_front().or_else(|| zero_queue.pop_front()) {
            let mut off = start;
            loop {
                if self.found.contains_key(&off) {
                    break;
                }
                let Some(rest) = code.get(off..) else { break };
                let Some(ins) = decode_instruction(rest, addr_of(base, off)) else {
                    break;
                };
                let end = off + ins.len;
                let Some(span) = claimed.get_mut(off..end) else {
                    break;
                };
                if span.iter().any(|c| *c) {
                    break;
                }
                span.iter_mut().for_each(|c| *c = true);
                for t in targets(&ins) {
                    if let Some(o) = self.offset_of(t) {
                        if code.get(o) == Some(&0) {
                            zero_queue.push_back(o);
                        } else {
                            queue.push_back(o);
                        }
                    }
                }
                let next = falls_through(ins.info.opcode);
                self.found.insert(off, ins);
                if swept {
                    self.swept.insert(off);
                }
                if !next {
                    break;
                }
                off = end;
            }
        }
    }

    /// Renders the program. Instructions in `pinned` print their address
    /// operands relative to `.`, which makes their encoding independent
    /// of the layout; those in `demoted` are printed as bytes. Also returns
    /// the offset of the instruction on each line (for error reports).
    fn render(
        &self,
        pinned: &BTreeSet<usize>,
        demoted: &BTreeSet<usize>,
    ) -> (String, BTreeMap<u32, usize>) {
        let mut lines = BTreeMap::new();
        let code = self.code;
        // Instructions printed as instructions: found, not demoted, and
        // encoded exactly as the assembler would encode them.
        let mut shown: BTreeMap<usize, &DecodedInstruction> = BTreeMap::new();
        let mut odd: BTreeMap<usize, &DecodedInstruction> = BTreeMap::new();
        for (off, ins) in &self.found {
            let mut enc = Vec::with_capacity(ins.len);
            encode_instruction(ins, addr_of(self.base, *off), &mut enc);
            if !demoted.contains(off) && code.get(*off..*off + ins.len) == Some(&enc[..]) {
                shown.insert(*off, ins);
            } else {
                odd.insert(*off, ins);
            }
        }
        // Labels: targets that start a printed instruction or fall outside
        // every printed instruction.
        let inside = |o: usize| {
            shown
                .range(..=o)
                .next_back()
                .is_some_and(|(s, i)| o > *s && o < *s + i.len)
        };
        let mut labels = BTreeSet::new();
        for (off, ins) in &shown {
            if pinned.contains(off) {
                continue;
            }
            for t in targets(ins) {
                if let Some(o) = self.offset_of(t) {
                    if !inside(o) {
                        labels.insert(o);
                    }
                }
            }
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "; UDVM bytecode: {} bytes at address {} (RFC 4464 §3 assembly)",
            code.len(),
            self.base
        );
        if self.base > 0 && !code.is_empty() {
            let _ = writeln!(out, "at ({})", self.base);
        }
        let mut off = 0usize;
        while off < code.len() {
            if labels.contains(&off) {
                let _ = writeln!(out, ":{}", label_name(self.base + off));
            }
            if let Some(ins) = shown.get(&off) {
                let here = pinned.contains(&off).then_some(off);
                let text = self.instruction_text(ins, &labels, here);
                lines.insert(line_count(&out), off);
                let note = if self.swept.contains(&off) {
                    " (after an indirect jump)"
                } else {
                    ""
                };
                let _ = writeln!(out, "{text:<48} ; 0x{:04x}{note}", self.base + off);
                off += ins.len;
                continue;
            }
            // Data: a non-shortest or demoted instruction on a line of its
            // own, other bytes up to 16 per line, split at labels and
            // instructions.
            let truncated = self.truncated_at(off).filter(|_| {
                (off + 1..code.len()).all(|o| !labels.contains(&o) && !shown.contains_key(&o))
            });
            let end = if truncated.is_some() {
                code.len()
            } else if let Some(ins) = odd.get(&off).filter(|i| {
                (off + 1..off + i.len).all(|o| !labels.contains(&o) && !shown.contains_key(&o))
            }) {
                off + ins.len
            } else {
                let mut e = off + 1;
                while e < code.len()
                    && e - off < 16
                    && !labels.contains(&e)
                    && !shown.contains_key(&e)
                    && !odd.contains_key(&e)
                {
                    e += 1;
                }
                e
            };
            let end = end.min(code.len());
            let bytes = code.get(off..end).unwrap_or_default();
            let list: Vec<String> = bytes.iter().map(|b| format!("0x{b:02x}")).collect();
            let text = format!("byte ({})", list.join(", "));
            let note = match odd.get(&off) {
                _ if truncated.is_some() => format!(
                    ": {} (truncated: the missing bytes are zero in UDVM memory, RFC 4464 §3.3)",
                    truncated
                        .as_ref()
                        .map(|i| self.instruction_text(i, &BTreeSet::new(), None))
                        .unwrap_or_default()
                ),
                Some(ins) if ins.len == bytes.len() => {
                    let why = if demoted.contains(&off) {
                        "kept as bytes"
                    } else {
                        "not the shortest encoding"
                    };
                    format!(
                        ": {} ({why})",
                        self.instruction_text(ins, &BTreeSet::new(), None)
                    )
                }
                _ => ascii(bytes),
            };
            let _ = writeln!(out, "{text:<48} ; 0x{:04x}{note}", self.base + off);
            off = end;
        }
        (out, lines)
    }

    /// The instruction that starts at `off` and runs past the end of the
    /// code, decoded as if the code were followed by zero bytes (an upload
    /// may drop trailing zeros, RFC 4464 §3.3).
    fn truncated_at(&self, off: usize) -> Option<DecodedInstruction> {
        let rest = self.code.get(off..)?;
        if rest.is_empty() || rest.len() > 32 || decode_instruction(rest, 0).is_some() {
            return None;
        }
        let mut padded = rest.to_vec();
        padded.resize(rest.len() + 3 * 8, 0);
        decode_instruction(&padded, addr_of(self.base, off)).filter(|i| i.len > rest.len())
    }

    /// The instruction as assembly. Address targets are labels where one
    /// is printed, else absolute numbers; with `relative_at = Some(off)`
    /// they are written relative to `.` instead (RFC 4464 §3.2.1), which
    /// fixes the encoded offset whatever the layout.
    fn instruction_text(
        &self,
        ins: &DecodedInstruction,
        labels: &BTreeSet<usize>,
        relative_at: Option<usize>,
    ) -> String {
        let mut s = ins.info.mnemonic.to_string();
        if ins.operands.is_empty() {
            return s;
        }
        let ops: Vec<String> = ins
            .operands
            .iter()
            .map(|op| match op {
                DecodedOperand::Literal(v) | DecodedOperand::Multitype(Multitype::Value(v)) => {
                    v.to_string()
                }
                DecodedOperand::Reference(a)
                | DecodedOperand::Multitype(Multitype::Memory(a))
                | DecodedOperand::Address(Multitype::Memory(a)) => format!("${a}"),
                DecodedOperand::Address(Multitype::Value(t)) => {
                    if let Some(off) = relative_at {
                        let here = addr_of(self.base, off);
                        let d = t.wrapping_sub(here);
                        if usize::from(*t) >= usize::from(here) {
                            format!("(. + {d})")
                        } else {
                            format!("(. - {})", here - t)
                        }
                    } else {
                        match self.offset_of(*t) {
                            Some(o) if labels.contains(&o) => label_name(self.base + o),
                            _ => t.to_string(),
                        }
                    }
                }
            })
            .collect();
        s.push_str(" (");
        s.push_str(&ops.join(", "));
        s.push(')');
        s
    }
}

fn label_name(addr: usize) -> String {
    format!("l_{addr:04x}")
}

fn ascii(bytes: &[u8]) -> String {
    if bytes
        .iter()
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .count()
        * 2
        < bytes.len()
    {
        return String::new();
    }
    let s: String = bytes
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b)
            } else {
                '.'
            }
        })
        .collect();
    format!(" {s:?}")
}

fn line_count(s: &str) -> u32 {
    u32::try_from(s.lines().count())
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}

pub(crate) fn disassemble(code: &[u8], origin: u16) -> String {
    let d = Disasm::trace(code, usize::from(origin));
    let mut pinned = BTreeSet::new();
    let mut demoted = BTreeSet::new();
    // The text is checked by assembling it. The layout the assembler finds
    // can differ from the original where several layouts are consistent
    // (RFC 4464 §3.2.2: "usually the shortest"); the instruction where the
    // output first differs gets its jumps written relative to `.`, and if
    // that is not enough it is printed as bytes, until the text reproduces
    // `code` (all bytes always do).
    for _ in 0..=2 * d.found.len() {
        let (text, lines) = d.render(&pinned, &demoted);
        let first_bad = match super::assemble(&text) {
            Ok(bytes) if bytes == code => return text,
            Ok(bytes) => bytes
                .iter()
                .zip(code)
                .position(|(a, b)| a != b)
                .unwrap_or(bytes.len().min(code.len())),
            Err(e) => lines
                .range(..=e.line())
                .next_back()
                .map_or(0, |(_, off)| *off),
        };
        let culprit = d
            .found
            .range(..=first_bad)
            .map(|(o, _)| *o)
            .rfind(|o| !demoted.contains(o))
            .or_else(|| d.found.keys().copied().find(|o| !demoted.contains(o)));
        match culprit {
            Some(o) if pinned.insert(o) => {}
            Some(o) => {
                demoted.insert(o);
            }
            None => break,
        }
    }
    let all: BTreeSet<usize> = d.found.keys().copied().collect();
    d.render(&all, &all).0
}
