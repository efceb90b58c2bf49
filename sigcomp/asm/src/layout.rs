//! From statements to bytecode: expression evaluation and the multi-pass
//! layout that picks the shortest operand encodings (RFC 4464 §3.2).

use std::collections::BTreeMap;

use super::isa::{DecodedOperand, Multitype, OperandKind, encode_operand};
use super::lexer::Op;
use super::parse::{Expr, Item, OperandSrc, operand_name};
use super::{AsmError, AsmErrorKind, Pos, Program};

/// Highest location counter accepted (16 MiB): far beyond the 64 KiB of UDVM
/// memory, low enough that a stray `pad` cannot exhaust memory.
pub(crate) const MAX_LOCATION: i64 = 1 << 24;

/// UDVM memory: addresses 0 to 0xFFFF (RFC 3320 §7). Bytes written past it
/// are an error in the final pass (earlier passes may overestimate).
const MEMORY: i64 = 1 << 16;

/// Passes in which every operand takes its shortest encoding.
const FREE_PASSES: usize = 16;

/// The result of one pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Image {
    symbols: BTreeMap<String, i64>,
    /// Memory image from address 0 to the last written byte.
    bytes: Vec<u8>,
    /// Whether each byte of `bytes` was written (not padding).
    written: Vec<bool>,
    /// Whether each byte of `bytes` lies in a `readonly (1)` area.
    readonly: Vec<bool>,
    /// Length of each operand of each instruction, in item order.
    operand_lens: Vec<Vec<usize>>,
}

impl Image {
    fn put(&mut self, at: i64, data: &[u8], readonly: bool) -> Result<(), AsmErrorKind> {
        let start = usize::try_from(at).map_err(|_| AsmErrorKind::Internal)?;
        let end = start + data.len();
        if end as i64 > MAX_LOCATION {
            return Err(AsmErrorKind::TooLarge);
        }
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
            self.written.resize(end, false);
            self.readonly.resize(end, false);
        }
        for (i, b) in data.iter().enumerate() {
            if let (Some(slot), Some(w), Some(r)) = (
                self.bytes.get_mut(start + i),
                self.written.get_mut(start + i),
                self.readonly.get_mut(start + i),
            ) {
                *slot = *b;
                *w = true;
                *r = readonly;
            }
        }
        Ok(())
    }

    /// Whether address `a` holds a zero byte written by the program in a
    /// `readonly (1)` area, i.e. a DECOMPRESSION-FAILURE that `!` may use
    /// (RFC 4464 §3.2.3).
    fn is_fail_byte(&self, a: usize) -> bool {
        self.bytes.get(a) == Some(&0)
            && self.written.get(a) == Some(&true)
            && self.readonly.get(a) == Some(&true)
    }
}

/// Evaluation context of one pass.
struct Pass<'a> {
    prev: &'a Image,
    cur: Image,
    /// The final pass reports every error; earlier passes tolerate values
    /// that are provisional because they depend on later statements.
    strict: bool,
    first: bool,
    /// Operand lengths never shrink below these (after the free passes).
    floors: Option<&'a [Vec<usize>]>,
}

/// A value that may still be unknown in the first pass.
type Val = Option<i64>;

impl Pass<'_> {
    fn err<T>(&self, pos: Pos, kind: AsmErrorKind) -> Result<T, AsmError> {
        Err(AsmError::new(pos, kind))
    }

    /// In the final pass, an error if `len` bytes at `loc` pass the end of
    /// UDVM memory.
    fn fits(&self, loc: i64, len: usize, pos: Pos) -> Result<(), AsmError> {
        let end = loc + len as i64;
        if self.strict && len > 0 && end > MEMORY {
            return self.err(
                pos,
                AsmErrorKind::BeyondMemory {
                    start: loc as u64,
                    end: (end - 1) as u64,
                },
            );
        }
        Ok(())
    }

    fn eval(&self, e: &Expr, here: i64) -> Result<Val, AsmError> {
        Ok(match e {
            Expr::Num(n) => Some(*n),
            Expr::Here => Some(here),
            Expr::Name(n, pos) => {
                match self.cur.symbols.get(n).or_else(|| self.prev.symbols.get(n)) {
                    Some(v) => Some(*v),
                    None if self.first => None,
                    None => return self.err(*pos, AsmErrorKind::UndefinedName(n.clone())),
                }
            }
            Expr::Fail(pos) => match self.closest_fail(here) {
                Some(a) => Some(a),
                None if !self.strict => None,
                None => return self.err(*pos, AsmErrorKind::NoZeroByte),
            },
            Expr::Bin(l, op, r, pos) => {
                let (Some(a), Some(b)) = (self.eval(l, here)?, self.eval(r, here)?) else {
                    return Ok(None);
                };
                match apply(*op, a, b) {
                    Ok(v) => Some(v),
                    Err(_) if !self.strict => None,
                    Err(k) => return self.err(*pos, k),
                }
            }
        })
    }

    /// RFC 4464 §3.2.1: "!" is the location of the closest zero byte. The
    /// RFC does not say closest in which direction; the bytecode printed in
    /// its Appendix A (LZSS, DEFLATE, LZJH, modified DEFLATE: LZSS's
    /// `INPUT-BITS (4, length_value, !)` picks a zero 24 bytes back over one
    /// 21 bytes ahead) is reproduced by taking the closest
    /// zero byte at or before the instruction and, only if there is none,
    /// the closest one after it.
    fn closest_fail(&self, here: i64) -> Option<i64> {
        let here = usize::try_from(here).ok()?;
        // Zero bytes before `here` are final in this pass; later ones come
        // from the previous pass.
        let back = (0..here.min(self.cur.bytes.len()))
            .rev()
            .find(|a| self.cur.is_fail_byte(*a));
        if let Some(a) = back {
            return i64::try_from(a).ok();
        }
        (here..self.prev.bytes.len())
            .find(|a| self.prev.is_fail_byte(*a))
            .and_then(|a| i64::try_from(a).ok())
    }

    /// Checks that `v` lies in `lo..=hi`, tolerating provisional values in
    /// non-final passes (they are clamped).
    fn range(
        &self,
        v: i64,
        lo: i64,
        hi: i64,
        what: &'static str,
        pos: Pos,
    ) -> Result<i64, AsmError> {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else if self.strict {
            self.err(
                pos,
                AsmErrorKind::OutOfRange {
                    what,
                    value: v,
                    min: lo,
                    max: hi,
                },
            )
        } else {
            Ok(v.clamp(lo, hi))
        }
    }

    fn define(&mut self, name: &str, v: i64, pos: Pos) -> Result<(), AsmError> {
        if self.cur.symbols.insert(name.to_string(), v).is_some() {
            return self.err(pos, AsmErrorKind::DuplicateName(name.to_string()));
        }
        Ok(())
    }

    #[allow(clippy::too_many_lines)]
    fn run(&mut self, items: &[Item]) -> Result<(), AsmError> {
        let mut loc: i64 = 0;
        let mut readonly = true; // RFC 4464 §3.2.3: readonly (1) at Address 0 by default.
        let mut ins_index = 0usize;
        for item in items {
            match item {
                Item::Label(name, pos) => self.define(name, loc, *pos)?,
                Item::Set(name, e, pos) => {
                    let v = self.eval(e, loc)?.unwrap_or(0);
                    self.define(name, v, *pos)?;
                }
                Item::Readonly(flag) => readonly = *flag,
                Item::Unknown(..) => {}
                Item::Pad(e, pos) => {
                    let n = self.eval(e, loc)?.unwrap_or(0);
                    let n = self.range(n, 0, MAX_LOCATION, "pad length", *pos)?;
                    loc += n;
                }
                Item::Align(e, pos) => {
                    let n = self.eval(e, loc)?.unwrap_or(1);
                    let n = self.range(n, 1, MAX_LOCATION, "alignment", *pos)?;
                    loc = (loc + n - 1) / n * n;
                }
                Item::At(e, pos) => {
                    let n = self.eval(e, loc)?.unwrap_or(loc);
                    if n < loc {
                        if self.strict {
                            return self.err(
                                *pos,
                                AsmErrorKind::AtBehind {
                                    at: n,
                                    location: loc,
                                },
                            );
                        }
                    } else {
                        loc = self.range(n, 0, MAX_LOCATION, "at address", *pos)?;
                    }
                }
                Item::Byte(es) | Item::Word(es) => {
                    let word = matches!(item, Item::Word(_));
                    let mut data = Vec::with_capacity(es.len() * 2);
                    for (e, pos) in es {
                        let v = self.eval(e, loc)?.unwrap_or(0);
                        if word {
                            let v = self.range(v, 0, 65535, "word value", *pos)?;
                            data.extend_from_slice(&(v as u16).to_be_bytes());
                        } else {
                            let v = self.range(v, 0, 255, "byte value", *pos)?;
                            data.push(v as u8);
                        }
                    }
                    self.fits(loc, data.len(), item_pos(es))?;
                    self.cur
                        .put(loc, &data, readonly)
                        .map_err(|k| AsmError::new(item_pos(es), k))?;
                    loc += data.len() as i64;
                }
                Item::Instr {
                    info,
                    operands,
                    groups,
                    pos,
                } => {
                    let floors = self.floors.and_then(|f| f.get(ins_index));
                    let mut out = vec![info.opcode];
                    let mut lens = Vec::with_capacity(operands.len());
                    for (i, op) in operands.iter().enumerate() {
                        let before = out.len();
                        let min_len = floors.and_then(|f| f.get(i)).copied().unwrap_or(1);
                        let v = match &op.expr {
                            // RFC 4464 §3.2.2: a blank count is inferred.
                            None => Some(*groups as i64),
                            Some(e) => {
                                let v = self.eval(e, loc)?;
                                if info.shape.count_at == Some(i)
                                    && self.strict
                                    && v != Some(*groups as i64)
                                {
                                    return self.err(
                                        op.pos,
                                        AsmErrorKind::CountMismatch {
                                            mnemonic: info.mnemonic,
                                            given: v.unwrap_or(0),
                                            found: *groups,
                                        },
                                    );
                                }
                                v
                            }
                        };
                        match v {
                            Some(v) => {
                                let what = operand_name(info, i);
                                let v = self.range(v, 0, 65535, what, op.pos)? as u16;
                                let here = (loc & 0xFFFF) as u16;
                                encode_operand(decoded(op, v), here, min_len, &mut out);
                            }
                            // Unknown in the first pass: assume one byte
                            // (not zero, which `!` could pick).
                            None => out.resize(out.len() + min_len, 0xFF),
                        }
                        lens.push(out.len() - before);
                    }
                    self.fits(loc, out.len(), *pos)?;
                    self.cur
                        .put(loc, &out, readonly)
                        .map_err(|k| AsmError::new(*pos, k))?;
                    self.cur.operand_lens.push(lens);
                    ins_index += 1;
                    loc += out.len() as i64;
                }
            }
            if loc > MAX_LOCATION {
                return self.err(item_start(item), AsmErrorKind::TooLarge);
            }
        }
        Ok(())
    }
}

fn item_pos(es: &[(Expr, Pos)]) -> Pos {
    es.first().map_or(Pos { line: 0, column: 0 }, |e| e.1)
}

fn item_start(item: &Item) -> Pos {
    match item {
        Item::Label(_, p)
        | Item::Set(_, _, p)
        | Item::Instr { pos: p, .. }
        | Item::Pad(_, p)
        | Item::Align(_, p)
        | Item::At(_, p)
        | Item::Unknown(_, p) => *p,
        Item::Byte(es) | Item::Word(es) => item_pos(es),
        Item::Readonly(_) => Pos { line: 0, column: 0 },
    }
}

/// The operand as the encoder takes it (RFC 4464 §3.2.2).
fn decoded(op: &OperandSrc, v: u16) -> DecodedOperand {
    match (op.kind, op.dollar) {
        (OperandKind::Literal, _) => DecodedOperand::Literal(v),
        (OperandKind::Reference, _) => DecodedOperand::Reference(v),
        (OperandKind::Multitype, false) => DecodedOperand::Multitype(Multitype::Value(v)),
        (OperandKind::Multitype, true) => DecodedOperand::Multitype(Multitype::Memory(v)),
        (OperandKind::Address, false) => DecodedOperand::Address(Multitype::Value(v)),
        (OperandKind::Address, true) => DecodedOperand::Address(Multitype::Memory(v)),
    }
}

/// RFC 4464 §3.2.1 operators, on 64-bit signed integers.
fn apply(op: Op, a: i64, b: i64) -> Result<i64, AsmErrorKind> {
    let r = match op {
        Op::Add => a.checked_add(b),
        Op::Sub => a.checked_sub(b),
        Op::Mul => a.checked_mul(b),
        Op::Div => {
            if b == 0 {
                return Err(AsmErrorKind::DivisionByZero);
            }
            a.checked_div(b)
        }
        Op::Rem => {
            if b == 0 {
                return Err(AsmErrorKind::DivisionByZero);
            }
            a.checked_rem_euclid(b)
        }
        Op::And => Some(a & b),
        Op::Or => Some(a | b),
        Op::Xor => Some(a ^ b),
        // XNOR on 16-bit UDVM words.
        Op::Xnor => Some(!(a ^ b) & 0xFFFF),
        Op::Shl => u32::try_from(b)
            .ok()
            .and_then(|s| a.checked_shl(s))
            .filter(|r| b < 64 && r >> b == a),
        Op::Shr => u32::try_from(b).ok().map(|s| {
            if s >= 64 {
                if a < 0 { -1 } else { 0 }
            } else {
                a >> s
            }
        }),
    };
    r.ok_or(AsmErrorKind::Overflow { op: op.symbol() })
}

/// Assembles parsed statements.
pub(crate) fn assemble_items(items: &[Item]) -> Result<Program, AsmError> {
    let mut prev = Image::default();
    let mut floors: Option<Vec<Vec<usize>>> = None;
    let total_operands: usize = items
        .iter()
        .map(|i| match i {
            Item::Instr { operands, .. } => operands.len(),
            _ => 0,
        })
        .sum();
    let max_passes = FREE_PASSES + 2 * total_operands + 16;
    let mut stalled = 0usize;
    for pass in 0..max_passes {
        let mut p = Pass {
            prev: &prev,
            cur: Image::default(),
            strict: false,
            first: pass == 0,
            floors: floors.as_deref(),
        };
        p.run(items)?;
        let cur = p.cur;
        if pass > 0 && cur == prev {
            // Converged: a last pass reports any error.
            let mut p = Pass {
                prev: &prev,
                cur: Image::default(),
                strict: true,
                first: false,
                floors: floors.as_deref(),
            };
            p.run(items)?;
            return finish(p.cur);
        }
        if pass + 1 >= FREE_PASSES {
            // RFC 4464 §3.2.2 only says "usually the shortest": from now on
            // operands may only grow, which guarantees progress unless the
            // oscillation comes from directives.
            let mut grew = floors.is_none();
            let mut f = floors.take().unwrap_or_else(|| cur.operand_lens.clone());
            for (fi, ci) in f.iter_mut().zip(&cur.operand_lens) {
                for (a, b) in fi.iter_mut().zip(ci) {
                    if *b > *a {
                        *a = *b;
                        grew = true;
                    }
                }
            }
            floors = Some(f);
            stalled = if grew { 0 } else { stalled + 1 };
            if stalled > FREE_PASSES {
                return not_converging(pass + 1);
            }
        }
        prev = cur;
    }
    not_converging(max_passes)
}

fn not_converging(passes: usize) -> Result<Program, AsmError> {
    Err(AsmError::new(
        Pos { line: 1, column: 1 },
        AsmErrorKind::NotConverging { passes },
    ))
}

fn finish(img: Image) -> Result<Program, AsmError> {
    let first = img.written.iter().position(|w| *w);
    let last = img.written.iter().rposition(|w| *w);
    let (origin, code) = match (first, last) {
        (Some(f), Some(l)) => {
            let origin = u16::try_from(f).map_err(|_| {
                AsmError::new(
                    Pos { line: 1, column: 1 },
                    AsmErrorKind::OriginBeyondMemory { origin: f },
                )
            })?;
            (origin, img.bytes.get(f..=l).unwrap_or_default().to_vec())
        }
        _ => (0, Vec::new()),
    };
    Ok(Program {
        origin,
        code,
        symbols: img.symbols,
        unknown_directives: Vec::new(),
    })
}
