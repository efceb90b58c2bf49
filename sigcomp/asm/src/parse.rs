//! Syntactic level of the UDVM assembly language (RFC 4464 §3.2).

use super::isa::{self, InstructionInfo, OperandKind};
use super::lexer::{Op, Tok};
use super::{AsmError, AsmErrorKind, Pos};

/// An expression (RFC 4464 §3.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    Num(i64),
    Name(String, Pos),
    /// `.`: the location of the current instruction or directive.
    Here,
    /// `!`: the location of the closest DECOMPRESSION-FAILURE (zero byte).
    Fail(Pos),
    Bin(Box<Expr>, Op, Box<Expr>, Pos),
}

/// One instruction operand as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OperandSrc {
    pub(crate) kind: OperandKind,
    /// `$` was written.
    pub(crate) dollar: bool,
    /// `None`: left blank, to be inferred (only count literals).
    pub(crate) expr: Option<Expr>,
    pub(crate) pos: Pos,
}

/// A statement of the assembly (RFC 4464 §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Label(String, Pos),
    Set(String, Expr, Pos),
    Instr {
        info: &'static InstructionInfo,
        operands: Vec<OperandSrc>,
        /// For MULTILOAD/SWITCH/INPUT-HUFFMAN: the number of repeated
        /// operand groups actually written.
        groups: usize,
        pos: Pos,
    },
    Byte(Vec<(Expr, Pos)>),
    Word(Vec<(Expr, Pos)>),
    Pad(Expr, Pos),
    Align(Expr, Pos),
    At(Expr, Pos),
    Readonly(bool),
    /// An unknown directive, ignored as RFC 4464 §3.2 allows.
    Unknown(String, Pos),
}

struct Parser {
    toks: Vec<(Tok, Pos)>,
    i: usize,
    end: Pos,
    /// Current expression nesting, bounded so that hostile input cannot
    /// exhaust the stack.
    depth: usize,
}

/// Deepest expression nesting accepted.
const MAX_DEPTH: usize = 200;

/// Parses the token list into statements.
pub(crate) fn parse(toks: Vec<(Tok, Pos)>, end: Pos) -> Result<Vec<Item>, AsmError> {
    let mut p = Parser {
        toks,
        i: 0,
        end,
        depth: 0,
    };
    let mut items = Vec::new();
    while let Some((tok, pos)) = p.next() {
        match tok {
            Tok::Colon => {
                let name = p.name("a label name after `:`")?;
                items.push(Item::Label(name, pos));
            }
            Tok::Opcode(m) => items.push(p.instruction(&m, pos)?),
            Tok::Name(n) => items.push(p.directive(n, pos)?),
            other => {
                return Err(AsmError::new(
                    pos,
                    AsmErrorKind::Expected {
                        expected: "an instruction, a directive or a label",
                        found: other.describe(),
                    },
                ));
            }
        }
    }
    Ok(items)
}

impl Parser {
    fn next(&mut self) -> Option<(Tok, Pos)> {
        let t = self.toks.get(self.i).cloned();
        if t.is_some() {
            self.i += 1;
        }
        t
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.0)
    }

    fn pos(&self) -> Pos {
        self.toks.get(self.i).map_or(self.end, |t| t.1)
    }

    fn fail<T>(&self, expected: &'static str) -> Result<T, AsmError> {
        let found = self
            .peek()
            .map_or_else(|| "end of input".to_string(), Tok::describe);
        Err(AsmError::new(
            self.pos(),
            AsmErrorKind::Expected { expected, found },
        ))
    }

    fn expect(&mut self, tok: &Tok, expected: &'static str) -> Result<Pos, AsmError> {
        if self.peek() == Some(tok) {
            let pos = self.pos();
            self.i += 1;
            Ok(pos)
        } else {
            self.fail(expected)
        }
    }

    fn name(&mut self, expected: &'static str) -> Result<String, AsmError> {
        if let Some(Tok::Name(n)) = self.peek() {
            let n = n.clone();
            self.i += 1;
            Ok(n)
        } else {
            self.fail(expected)
        }
    }

    fn expr(&mut self) -> Result<Expr, AsmError> {
        if self.depth >= MAX_DEPTH {
            return Err(AsmError::new(self.pos(), AsmErrorKind::TooDeep));
        }
        self.depth += 1;
        let e = self.expr_inner();
        self.depth -= 1;
        e
    }

    fn expr_inner(&mut self) -> Result<Expr, AsmError> {
        let pos = self.pos();
        match self.next() {
            Some((Tok::Num(n), _)) => Ok(Expr::Num(n)),
            Some((Tok::Name(n), p)) => Ok(Expr::Name(n, p)),
            Some((Tok::Dot, _)) => Ok(Expr::Here),
            Some((Tok::Bang, p)) => Ok(Expr::Fail(p)),
            Some((Tok::LParen, _)) => {
                let lhs = self.expr()?;
                // A lone parenthesised value is accepted as well.
                if self.peek() == Some(&Tok::RParen) {
                    self.i += 1;
                    return Ok(lhs);
                }
                let op = match self.next() {
                    Some((Tok::Op(op), _)) => op,
                    _ => {
                        self.i = self.i.saturating_sub(1);
                        return self.fail("an operator or `)`");
                    }
                };
                let rhs = self.expr()?;
                self.expect(&Tok::RParen, "`)` closing the expression")?;
                Ok(Expr::Bin(Box::new(lhs), op, Box::new(rhs), pos))
            }
            _ => {
                self.i = self.i.saturating_sub(1);
                self.fail("an expression (number, name, `.`, `!` or `(`)")
            }
        }
    }

    /// `"(" expression *("," expression) ")"`
    fn expr_list(&mut self) -> Result<Vec<(Expr, Pos)>, AsmError> {
        self.expect(&Tok::LParen, "`(`")?;
        let mut v = Vec::new();
        loop {
            let pos = self.pos();
            v.push((self.expr()?, pos));
            match self.next() {
                Some((Tok::Comma, _)) => {}
                Some((Tok::RParen, _)) => return Ok(v),
                _ => {
                    self.i = self.i.saturating_sub(1);
                    return self.fail("`,` or `)`");
                }
            }
        }
    }

    fn one_arg(&mut self, pos: Pos, name: &str) -> Result<(Expr, Pos), AsmError> {
        let mut v = self.expr_list()?;
        if v.len() != 1 {
            return Err(AsmError::new(
                pos,
                AsmErrorKind::DirectiveArgs {
                    directive: name.to_string(),
                    expected: 1,
                    found: v.len(),
                },
            ));
        }
        v.pop()
            .ok_or_else(|| AsmError::new(pos, AsmErrorKind::Internal))
    }

    fn directive(&mut self, name: String, pos: Pos) -> Result<Item, AsmError> {
        match name.as_str() {
            "pad" | "align" | "at" => {
                let (e, epos) = self.one_arg(pos, &name)?;
                Ok(match name.as_str() {
                    "pad" => Item::Pad(e, epos),
                    "align" => Item::Align(e, epos),
                    _ => Item::At(e, epos),
                })
            }
            "byte" => Ok(Item::Byte(self.expr_list()?)),
            "word" => Ok(Item::Word(self.expr_list()?)),
            "readonly" => {
                self.expect(&Tok::LParen, "`(`")?;
                let p = self.pos();
                let flag = match self.next() {
                    Some((Tok::Num(0), _)) => false,
                    Some((Tok::Num(1), _)) => true,
                    _ => {
                        return Err(AsmError::new(
                            p,
                            AsmErrorKind::Expected {
                                expected: "0 or 1",
                                found: self
                                    .toks
                                    .get(self.i.saturating_sub(1))
                                    .map_or_else(|| "end of input".into(), |t| t.0.describe()),
                            },
                        ));
                    }
                };
                self.expect(&Tok::RParen, "`)`")?;
                Ok(Item::Readonly(flag))
            }
            "set" => {
                self.expect(&Tok::LParen, "`(`")?;
                let npos = self.pos();
                let n = self.name("a name to set")?;
                self.expect(&Tok::Comma, "`,`")?;
                let e = self.expr()?;
                self.expect(&Tok::RParen, "`)`")?;
                Ok(Item::Set(n, e, npos))
            }
            _ => {
                // RFC 4464 §3.2: unknown-directive = name ["(" expression
                // *("," expression) ")"]; the parser can ignore it.
                if self.peek() == Some(&Tok::LParen) {
                    self.expr_list()?;
                }
                Ok(Item::Unknown(name, pos))
            }
        }
    }

    fn instruction(&mut self, mnemonic: &str, pos: Pos) -> Result<Item, AsmError> {
        let info = isa::by_mnemonic(mnemonic)
            .ok_or_else(|| AsmError::new(pos, AsmErrorKind::UnknownMnemonic(mnemonic.into())))?;
        // Raw operands: (dollar, expr, pos).
        let mut raw: Vec<(bool, Option<Expr>, Pos)> = Vec::new();
        if self.peek() == Some(&Tok::LParen) {
            self.i += 1;
            loop {
                let opos = self.pos();
                let dollar = self.peek() == Some(&Tok::Dollar);
                if dollar {
                    self.i += 1;
                }
                let expr = if !dollar && matches!(self.peek(), Some(Tok::Comma | Tok::RParen)) {
                    None
                } else {
                    Some(self.expr()?)
                };
                raw.push((dollar, expr, opos));
                match self.next() {
                    Some((Tok::Comma, _)) => {}
                    Some((Tok::RParen, _)) => break,
                    _ => {
                        self.i = self.i.saturating_sub(1);
                        return self.fail("`,` or `)` in the operand list");
                    }
                }
            }
            // `RETURN ()`: one blank operand means none.
            if info.shape.fixed.is_empty()
                && raw.len() == 1
                && raw.first().is_some_and(|r| r.1.is_none() && !r.0)
            {
                raw.clear();
            }
        }
        let shape = info.shape;
        let fixed = shape.fixed.len();
        let group = shape.group.len();
        let count_ok = if group == 0 {
            raw.len() == fixed
        } else {
            raw.len() >= fixed && (raw.len() - fixed) % group == 0
        };
        if !count_ok {
            return Err(AsmError::new(
                pos,
                AsmErrorKind::OperandCount {
                    mnemonic: info.mnemonic,
                    expected: expected_count(info),
                    found: raw.len(),
                },
            ));
        }
        let groups = raw
            .len()
            .saturating_sub(fixed)
            .checked_div(group)
            .unwrap_or(0);
        let mut operands = Vec::with_capacity(raw.len());
        for (i, (dollar, expr, opos)) in raw.into_iter().enumerate() {
            let kind = match shape.fixed.get(i) {
                Some(k) => *k,
                None => *shape
                    .group
                    .get((i - fixed) % group.max(1))
                    .ok_or_else(|| AsmError::new(opos, AsmErrorKind::Internal))?,
            };
            let name = operand_name(info, i);
            let is_count = shape.count_at == Some(i);
            match kind {
                OperandKind::Literal if dollar => {
                    return Err(AsmError::new(
                        opos,
                        AsmErrorKind::DollarNotAllowed {
                            mnemonic: info.mnemonic,
                            operand: name,
                        },
                    ));
                }
                OperandKind::Reference if !dollar => {
                    return Err(AsmError::new(
                        opos,
                        AsmErrorKind::DollarRequired {
                            mnemonic: info.mnemonic,
                            operand: name,
                        },
                    ));
                }
                _ => {}
            }
            if expr.is_none() && !is_count {
                return Err(AsmError::new(
                    opos,
                    AsmErrorKind::BlankOperand {
                        mnemonic: info.mnemonic,
                        operand: name,
                    },
                ));
            }
            operands.push(OperandSrc {
                kind,
                dollar,
                expr,
                pos: opos,
            });
        }
        Ok(Item::Instr {
            info,
            operands,
            groups,
            pos,
        })
    }
}

/// "2" or "3 + 4n" for messages.
fn expected_count(info: &InstructionInfo) -> String {
    let f = info.shape.fixed.len();
    match info.shape.group.len() {
        0 => f.to_string(),
        1 => format!("{f} + n"),
        g => format!("{f} + {g}n"),
    }
}

/// The RFC 3320 §9 name of operand `i`.
pub(crate) fn operand_name(info: &InstructionInfo, i: usize) -> &'static str {
    let fixed = info.shape.fixed.len();
    let names = info.operand_names;
    if i < fixed {
        names.get(i).copied().unwrap_or("operand")
    } else {
        let g = info.shape.group.len().max(1);
        names
            .get(fixed + (i - fixed) % g)
            .copied()
            .unwrap_or("operand")
    }
}
