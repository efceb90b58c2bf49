//! The one loader for the `key = hex` vector format (see `data/README.md`).
//!
//! The parser never panics: every malformed input becomes an [`Error`] that
//! names the (1-based) line.

use std::path::Path;

use crate::Error;

/// Largest value (after repeats and concatenation) the parser builds, so that
/// `"a" * 99999999999` in a hostile file is an error, not an allocation.
pub const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;

/// One parsed vector file: its header and its cases, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorFile {
    /// The `algorithm = ...` header value (text), e.g. `hmac-sha1`.
    pub algorithm: String,
    /// The `source = ...` header value (text), e.g. `RFC 2202 §3`.
    pub source: String,
    /// Every header field (including `algorithm` and `source`), values as bytes.
    pub header: Vec<Field>,
    /// The `[name]` sections.
    pub cases: Vec<Case>,
}

/// One `[name]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// The text between the brackets.
    pub name: String,
    /// Line of the `[name]` header (1-based).
    pub line: usize,
    /// The fields of the case, in file order.
    pub fields: Vec<Field>,
}

/// One `name = value` line (with its continuation lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The name left of `=`.
    pub name: String,
    /// The value, evaluated to bytes.
    pub value: Vec<u8>,
    /// Line of the `name =` (1-based).
    pub line: usize,
}

impl Case {
    /// The value of field `name`, if the case has it.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_slice())
    }
}

/// What is wrong with a malformed line (the payload of [`Error::Syntax`]).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// Neither blank, comment, `[name]` nor `name = value`.
    ExpectedNameValue,
    /// `[` without a closing `]` at the end of the line, or an empty name.
    BadCaseHeader,
    /// The name left of `=` is empty or has characters other than
    /// ASCII letters, digits, `_` and `-`.
    BadName,
    /// Nothing right of `=`.
    EmptyValue,
    /// A line starting with a blank with no `name = value` above it.
    OrphanContinuation,
    /// `0x` followed by no digits, or by something that is not a hex digit.
    BadHex,
    /// A hex literal with an odd number of digits.
    OddHexDigits,
    /// A string without its closing `"`.
    UnterminatedString,
    /// A `\` escape other than `\\ \" \n \r \t \xHH`.
    BadEscape,
    /// `*` not followed by a decimal count, or a count that overflows.
    BadRepeatCount,
    /// Something other than `+` or the end of the line after a term.
    ExpectedPlusOrEnd,
    /// A term that is neither `0x..` nor `"..."`.
    ExpectedTerm,
}

impl Syntax {
    /// A short English description.
    pub fn describe(self) -> &'static str {
        match self {
            Syntax::ExpectedNameValue => {
                "expected `name = value`, `[case]`, a comment or a blank line"
            }
            Syntax::BadCaseHeader => "case header must be `[name]` with a non-empty name",
            Syntax::BadName => "field name must be ASCII letters, digits, `_` or `-`",
            Syntax::EmptyValue => "empty value",
            Syntax::OrphanContinuation => {
                "continuation line (starts with a blank) without a value above"
            }
            Syntax::BadHex => "bad hex literal (0x followed by hex digits)",
            Syntax::OddHexDigits => "hex literal with an odd number of digits",
            Syntax::UnterminatedString => "string without closing quote",
            Syntax::BadEscape => "bad escape in string (\\\\ \\\" \\n \\r \\t \\xHH)",
            Syntax::BadRepeatCount => "`*` must be followed by a decimal repeat count",
            Syntax::ExpectedPlusOrEnd => "expected `+` or the end of the value",
            Syntax::ExpectedTerm => "expected a hex literal (0x..) or a string (\"..\")",
        }
    }
}

/// Reads and parses one vector file.
pub fn load_file(path: &Path) -> Result<VectorFile, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| Error::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    parse(&text)
}

/// A `name = value` line with its continuation lines joined, not yet evaluated.
struct Pending {
    line: usize,
    name: String,
    text: String,
}

/// Parses the text of a vector file.
pub fn parse(text: &str) -> Result<VectorFile, Error> {
    let mut header: Vec<Field> = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    let mut pending: Option<Pending> = None;

    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            match pending.as_mut() {
                Some(p) => {
                    p.text.push(' ');
                    p.text.push_str(trimmed);
                    continue;
                }
                None => return Err(syntax(line, Syntax::OrphanContinuation)),
            }
        }
        if let Some(p) = pending.take() {
            store(p, &mut header, &mut cases)?;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .ok_or(syntax(line, Syntax::BadCaseHeader))?;
            cases.push(Case {
                name: name.to_string(),
                line,
                fields: Vec::new(),
            });
            continue;
        }
        let (name, value) = trimmed
            .split_once('=')
            .ok_or(syntax(line, Syntax::ExpectedNameValue))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(syntax(line, Syntax::BadName));
        }
        pending = Some(Pending {
            line,
            name: name.to_string(),
            text: value.trim().to_string(),
        });
    }
    if let Some(p) = pending.take() {
        store(p, &mut header, &mut cases)?;
    }

    let text_of = |key: &'static str| -> Result<String, Error> {
        let field = header
            .iter()
            .find(|f| f.name == key)
            .ok_or(Error::MissingHeader { name: key })?;
        Ok(String::from_utf8_lossy(&field.value).into_owned())
    };
    Ok(VectorFile {
        algorithm: text_of("algorithm")?,
        source: text_of("source")?,
        header,
        cases,
    })
}

fn syntax(line: usize, what: Syntax) -> Error {
    Error::Syntax { line, what }
}

/// Evaluates a pending field and files it under the current case (or the
/// header, before the first case).
fn store(p: Pending, header: &mut Vec<Field>, cases: &mut [Case]) -> Result<(), Error> {
    let in_header = cases.is_empty();
    // Header values are free text (`source = RFC 2202 §3`), not byte expressions.
    let value = if in_header {
        if p.text.is_empty() {
            return Err(syntax(p.line, Syntax::EmptyValue));
        }
        p.text.into_bytes()
    } else {
        parse_value(&p.text, p.line)?
    };
    let fields = match cases.last_mut() {
        Some(case) => &mut case.fields,
        None => header,
    };
    if fields.iter().any(|f| f.name == p.name) {
        return Err(Error::DuplicateName {
            line: p.line,
            name: p.name,
        });
    }
    fields.push(Field {
        name: p.name,
        value,
        line: p.line,
    });
    Ok(())
}

/// Evaluates a value expression: terms (`0x..` or `"..."`, each optionally
/// `* N`) joined by `+`.
pub fn parse_value(text: &str, line: usize) -> Result<Vec<u8>, Error> {
    let mut cur = Cursor {
        rest: text.as_bytes(),
    };
    let mut out = Vec::new();
    cur.skip_blanks();
    if cur.rest.is_empty() {
        return Err(syntax(line, Syntax::EmptyValue));
    }
    loop {
        cur.skip_blanks();
        let atom = match cur.peek() {
            Some(b'0') if cur.rest.get(1).is_some_and(|&b| b == b'x' || b == b'X') => {
                cur.advance(2);
                cur.hex(line)?
            }
            Some(b'"') => {
                cur.advance(1);
                cur.string(line)?
            }
            _ => return Err(syntax(line, Syntax::ExpectedTerm)),
        };
        cur.skip_blanks();
        let count = if cur.peek() == Some(b'*') {
            cur.advance(1);
            cur.skip_blanks();
            cur.count(line)?
        } else {
            1
        };
        let added = atom
            .len()
            .checked_mul(count)
            .filter(|n| out.len().saturating_add(*n) <= MAX_VALUE_LEN)
            .ok_or(Error::ValueTooLarge {
                line,
                limit: MAX_VALUE_LEN,
            })?;
        out.reserve(added);
        for _ in 0..count {
            out.extend_from_slice(&atom);
        }
        cur.skip_blanks();
        match cur.peek() {
            None => return Ok(out),
            Some(b'+') => cur.advance(1),
            Some(_) => return Err(syntax(line, Syntax::ExpectedPlusOrEnd)),
        }
    }
}

/// A read position in a value; all accessors are bounds-checked.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn advance(&mut self, n: usize) {
        self.rest = self.rest.get(n..).unwrap_or_default();
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.advance(1);
        }
    }

    /// Hex digits (blanks between them ignored) up to `+`, `*` or the end.
    fn hex(&mut self, line: usize) -> Result<Vec<u8>, Error> {
        let mut digits = Vec::new();
        while let Some(b) = self.peek() {
            match b {
                b'+' | b'*' => break,
                b' ' | b'\t' => {}
                _ => digits.push(hex_digit(b).ok_or(syntax(line, Syntax::BadHex))?),
            }
            self.advance(1);
        }
        if digits.is_empty() {
            return Err(syntax(line, Syntax::BadHex));
        }
        if digits.len() % 2 != 0 {
            return Err(syntax(line, Syntax::OddHexDigits));
        }
        Ok(digits
            .chunks_exact(2)
            .map(|p| match p {
                [hi, lo] => (hi << 4) | lo,
                _ => 0, // unreachable: chunks_exact(2)
            })
            .collect())
    }

    /// The body of a string after its opening quote, through the closing quote.
    fn string(&mut self, line: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        loop {
            let b = self
                .peek()
                .ok_or(syntax(line, Syntax::UnterminatedString))?;
            self.advance(1);
            match b {
                b'"' => return Ok(out),
                b'\\' => {
                    let e = self.peek().ok_or(syntax(line, Syntax::BadEscape))?;
                    self.advance(1);
                    out.push(match e {
                        b'\\' => b'\\',
                        b'"' => b'"',
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'x' => {
                            let hi = self.peek().and_then(hex_digit);
                            self.advance(1);
                            let lo = self.peek().and_then(hex_digit);
                            self.advance(1);
                            match (hi, lo) {
                                (Some(hi), Some(lo)) => (hi << 4) | lo,
                                _ => return Err(syntax(line, Syntax::BadEscape)),
                            }
                        }
                        _ => return Err(syntax(line, Syntax::BadEscape)),
                    });
                }
                _ => out.push(b),
            }
        }
    }

    fn count(&mut self, line: usize) -> Result<usize, Error> {
        let mut n: usize = 0;
        let mut any = false;
        while let Some(b) = self.peek().filter(u8::is_ascii_digit) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(b - b'0')))
                .ok_or(syntax(line, Syntax::BadRepeatCount))?;
            any = true;
            self.advance(1);
        }
        if any {
            Ok(n)
        } else {
            Err(syntax(line, Syntax::BadRepeatCount))
        }
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "algorithm = md5\nsource = test\n";

    fn one(value: &str) -> Result<Vec<u8>, Error> {
        let f = parse(&format!("{HEAD}[c]\nv = {value}\n"))?;
        Ok(f.cases[0].get("v").unwrap().to_vec())
    }

    #[test]
    fn values() {
        assert_eq!(one("0x0102 ff").unwrap(), vec![1, 2, 0xff]);
        assert_eq!(one("\"ab\" * 3").unwrap(), b"ababab");
        assert_eq!(one("0xaa * 2 + \"b\"").unwrap(), vec![0xaa, 0xaa, b'b']);
        assert_eq!(one("\"\"").unwrap(), b"");
        assert_eq!(one("\"a\\\"\\\\\\n\\x41\"").unwrap(), b"a\"\\\nA");
        assert_eq!(one("0xAB * 0").unwrap(), b"");
        assert_eq!(one("\"a\" * 1000000").unwrap().len(), 1_000_000);
    }

    #[test]
    fn continuation_lines_join() {
        let f = parse(&format!(
            "{HEAD}[c]\nv = 0x0102\n    0304\n# c\n  + \"x\"\n"
        ))
        .unwrap();
        assert_eq!(f.cases[0].get("v").unwrap(), &[1, 2, 3, 4, b'x']);
        assert_eq!(f.cases[0].fields[0].line, 4);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, Error)] = &[
            ("[c]\nv = 0x123\n", syntax(4, Syntax::OddHexDigits)),
            ("[c]\nv = 0xzz\n", syntax(4, Syntax::BadHex)),
            ("[c]\nv = 0x\n", syntax(4, Syntax::BadHex)),
            ("[c]\nv = \"abc\n", syntax(4, Syntax::UnterminatedString)),
            ("[c]\nv = \"\\q\"\n", syntax(4, Syntax::BadEscape)),
            ("[c]\nv = \"a\" * x\n", syntax(4, Syntax::BadRepeatCount)),
            (
                "[c]\nv = \"a\" \"b\"\n",
                syntax(4, Syntax::ExpectedPlusOrEnd),
            ),
            ("[c]\nv = abc\n", syntax(4, Syntax::ExpectedTerm)),
            ("[c]\nv =\n", syntax(4, Syntax::EmptyValue)),
            ("[c\n", syntax(3, Syntax::BadCaseHeader)),
            ("[ ]\n", syntax(3, Syntax::BadCaseHeader)),
            ("[c]\nno equals\n", syntax(4, Syntax::ExpectedNameValue)),
            ("[c]\nb@d = 0x00\n", syntax(4, Syntax::BadName)),
            (
                "[c]\nv = \"a\" * 99999999999999\n",
                Error::ValueTooLarge {
                    line: 4,
                    limit: MAX_VALUE_LEN,
                },
            ),
            (
                "[c]\nv = 0x00\nv = 0x01\n",
                Error::DuplicateName {
                    line: 5,
                    name: "v".into(),
                },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse(&format!("{HEAD}{body}")).unwrap_err(),
                *want,
                "{body:?}"
            );
        }
        assert_eq!(
            parse(" x = 0x00\n").unwrap_err(),
            syntax(1, Syntax::OrphanContinuation)
        );
        assert_eq!(
            parse("source = x\n").unwrap_err(),
            Error::MissingHeader { name: "algorithm" }
        );
        assert_eq!(
            parse("algorithm = x\n").unwrap_err(),
            Error::MissingHeader { name: "source" }
        );
    }

    #[test]
    fn header_is_text() {
        let f = parse("algorithm = sha1\nsource = RFC 3174 §7.3\n").unwrap();
        assert_eq!(f.source, "RFC 3174 §7.3");
        assert!(f.cases.is_empty());
    }
}
