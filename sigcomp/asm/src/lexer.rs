//! Lexical level of the UDVM assembly language (RFC 4464 §3.1).

use super::{AsmError, AsmErrorKind, Pos};

/// Binary operators of RFC 4464 §3.2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    And,
    Or,
    Xor,
    Xnor,
    Shl,
    Shr,
}

impl Op {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Rem => "%",
            Op::And => "&",
            Op::Or => "|",
            Op::Xor => "^",
            Op::Xnor => "~",
            Op::Shl => "<<",
            Op::Shr => ">>",
        }
    }
}

/// A token of RFC 4464 §3.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// `name`: lower case, digits, `_`.
    Name(String),
    /// `opcode`: upper case, digits, `-`.
    Opcode(String),
    /// A number (dec, `0b` bin or `0x` hex).
    Num(i64),
    Dot,
    Comma,
    Bang,
    Dollar,
    Colon,
    LParen,
    RParen,
    Op(Op),
}

impl Tok {
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Name(n) => format!("name `{n}`"),
            Tok::Opcode(o) => format!("opcode `{o}`"),
            Tok::Num(n) => format!("number {n}"),
            Tok::Dot => "`.`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Bang => "`!`".into(),
            Tok::Dollar => "`$`".into(),
            Tok::Colon => "`:`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Op(op) => format!("operator `{}`", op.symbol()),
        }
    }
}

/// Splits `src` into tokens with their positions, skipping whitespace and
/// comments (RFC 4464 §3.1). Any other character is an error.
pub(crate) fn tokenize(src: &str) -> Result<Vec<(Tok, Pos)>, AsmError> {
    let mut out = Vec::new();
    let mut chars = src.chars().peekable();
    let mut line = 1u32;
    let mut col = 1u32;
    // Advances over one char, tracking the position.
    macro_rules! bump {
        () => {{
            let c = chars.next();
            if c == Some('\n') {
                line = line.saturating_add(1);
                col = 1;
            } else if c.is_some() {
                col = col.saturating_add(1);
            }
            c
        }};
    }
    while let Some(&c) = chars.peek() {
        let pos = Pos { line, column: col };
        match c {
            '\t' | '\n' | '\r' | ' ' => {
                bump!();
            }
            ';' => {
                while let Some(&c) = chars.peek() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                    bump!();
                }
            }
            'a'..='z' | '_' => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                        s.push(c);
                        bump!();
                    } else {
                        break;
                    }
                }
                out.push((Tok::Name(s), pos));
            }
            'A'..='Z' => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' {
                        s.push(c);
                        bump!();
                    } else {
                        break;
                    }
                }
                out.push((Tok::Opcode(s), pos));
            }
            '0'..='9' => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        s.push(c);
                        bump!();
                    } else {
                        break;
                    }
                }
                let n = parse_number(&s)
                    .ok_or_else(|| AsmError::new(pos, AsmErrorKind::BadNumber(s)))?;
                out.push((Tok::Num(n), pos));
            }
            _ => {
                bump!();
                let tok = match c {
                    '.' => Tok::Dot,
                    ',' => Tok::Comma,
                    '!' => Tok::Bang,
                    '$' => Tok::Dollar,
                    ':' => Tok::Colon,
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '+' => Tok::Op(Op::Add),
                    '-' => Tok::Op(Op::Sub),
                    '*' => Tok::Op(Op::Mul),
                    '/' => Tok::Op(Op::Div),
                    '%' => Tok::Op(Op::Rem),
                    '&' => Tok::Op(Op::And),
                    '|' => Tok::Op(Op::Or),
                    '^' => Tok::Op(Op::Xor),
                    '~' => Tok::Op(Op::Xnor),
                    '<' | '>' if chars.peek() == Some(&c) => {
                        bump!();
                        Tok::Op(if c == '<' { Op::Shl } else { Op::Shr })
                    }
                    _ => return Err(AsmError::new(pos, AsmErrorKind::UnexpectedChar(c))),
                };
                out.push((tok, pos));
            }
        }
    }
    Ok(out)
}

/// Parses `dec`, `0b…` or `0x…` (RFC 4464 §3.1). Numbers above `i64::MAX`
/// or with stray characters give `None`.
fn parse_number(s: &str) -> Option<i64> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x") {
        (h, 16)
    } else if let Some(b) = s.strip_prefix("0b") {
        (b, 2)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    i64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_comments() {
        let toks: Vec<Tok> = tokenize("LOAD (temp, 0x1F) ; c\n:x $ ! . << >> ~ 0b101")
            .unwrap()
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(
            toks,
            vec![
                Tok::Opcode("LOAD".into()),
                Tok::LParen,
                Tok::Name("temp".into()),
                Tok::Comma,
                Tok::Num(31),
                Tok::RParen,
                Tok::Colon,
                Tok::Name("x".into()),
                Tok::Dollar,
                Tok::Bang,
                Tok::Dot,
                Tok::Op(Op::Shl),
                Tok::Op(Op::Shr),
                Tok::Op(Op::Xnor),
                Tok::Num(5),
            ]
        );
    }

    #[test]
    fn errors_have_positions() {
        let e = tokenize("ADD ($3, 4)\n  #").unwrap_err();
        assert_eq!((e.line(), e.column()), (2, 3));
        let e = tokenize("byte (0x)").unwrap_err();
        assert_eq!((e.line(), e.column()), (1, 7));
        assert!(tokenize("< 3").is_err());
    }
}
