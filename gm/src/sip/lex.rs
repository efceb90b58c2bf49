//! The lexical layer of RFC 3261 §25.1: character classes and a cursor over
//! a header value that knows linear whitespace, tokens, separators and
//! quoted strings.
//!
//! Header values handed to the cursor come from the framer, which joined
//! folded lines: a CR or LF inside a value is always part of `CRLF 1*WSP`,
//! so whitespace skipping treats SP, HTAB, CR and LF alike (RFC 3261
//! §7.3.1: a fold is a single SP).
//!
//! Every position the cursor stops at is on an ASCII byte or at the end,
//! so slicing between two of them never splits a UTF-8 sequence; slices
//! are taken with `get`, never by indexing.

use super::error::Syntax;

/// Character class bits (one byte per octet value).
pub(crate) const TOKEN: u16 = 1 << 0;
/// `word` of Call-ID (RFC 3261 §25.1).
pub(crate) const WORD: u16 = 1 << 1;
/// `unreserved` (alphanum / mark).
pub(crate) const UNRESERVED: u16 = 1 << 2;
/// `user-unreserved`.
pub(crate) const USER_UNRESERVED: u16 = 1 << 3;
/// The extra characters of `password`.
pub(crate) const PASSWORD_EXTRA: u16 = 1 << 4;
/// `param-unreserved`.
pub(crate) const PARAM_UNRESERVED: u16 = 1 << 5;
/// `hnv-unreserved`.
pub(crate) const HNV_UNRESERVED: u16 = 1 << 6;
/// `reserved`.
pub(crate) const RESERVED: u16 = 1 << 7;
/// Characters of a `hostname` (alphanum, "-", ".").
pub(crate) const HOSTNAME: u16 = 1 << 8;
/// `scheme` characters after the first (ALPHA / DIGIT / "+" / "-" / ".").
pub(crate) const SCHEME: u16 = 1 << 9;
/// `token-nodot` (RFC 6665 §8.4: token without ".").
pub(crate) const TOKEN_NODOT: u16 = 1 << 10;

// `c` runs over 0..256, the array's length.
#[allow(clippy::indexing_slicing)]
const fn classes() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mut m = 0u16;
        if alnum
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            m |= TOKEN;
            if b != b'.' {
                m |= TOKEN_NODOT;
            }
        }
        if alnum
            || matches!(
                b,
                b'-' | b'.'
                    | b'!'
                    | b'%'
                    | b'*'
                    | b'_'
                    | b'+'
                    | b'`'
                    | b'\''
                    | b'~'
                    | b'('
                    | b')'
                    | b'<'
                    | b'>'
                    | b':'
                    | b'\\'
                    | b'"'
                    | b'/'
                    | b'['
                    | b']'
                    | b'?'
                    | b'{'
                    | b'}'
            )
        {
            m |= WORD;
        }
        if alnum
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
        {
            m |= UNRESERVED;
        }
        if matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
            m |= USER_UNRESERVED;
        }
        if matches!(b, b'&' | b'=' | b'+' | b'$' | b',') {
            m |= PASSWORD_EXTRA;
        }
        if matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$') {
            m |= PARAM_UNRESERVED;
        }
        if matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$') {
            m |= HNV_UNRESERVED;
        }
        if matches!(
            b,
            b';' | b'/' | b'?' | b':' | b'@' | b'&' | b'=' | b'+' | b'$' | b','
        ) {
            m |= RESERVED;
        }
        if alnum || matches!(b, b'-' | b'.') {
            m |= HOSTNAME;
        }
        if alnum || matches!(b, b'+' | b'-' | b'.') {
            m |= SCHEME;
        }
        t[c] = m;
        c += 1;
    }
    t
}

static CLASSES: [u16; 256] = classes();

/// Whether byte `b` is in every class of `mask`.
#[inline]
pub(crate) fn is(b: u8, mask: u16) -> bool {
    CLASSES.get(usize::from(b)).copied().unwrap_or(0) & mask == mask
}

/// Whether byte `b` is in any class of `mask`.
#[inline]
pub(crate) fn is_any(b: u8, mask: u16) -> bool {
    CLASSES.get(usize::from(b)).copied().unwrap_or(0) & mask != 0
}

/// Whether `s` is a non-empty `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| is(b, TOKEN))
}

/// Linear whitespace as it appears inside a joined header value.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims linear whitespace (and folds) at both ends.
pub(crate) fn trim_lws(s: &str) -> &str {
    let b = s.as_bytes();
    let start = b.iter().position(|c| !is_lws(*c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is_lws(*c)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or("")
}

/// Whether `s` (a URI component) is made of bytes of `mask` and
/// well-formed `escaped` (`%` HEXDIG HEXDIG) sequences.
pub(crate) fn is_escaped_run(s: &str, mask: u16) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if is_any(c, mask) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// A reading position in a header value (or another element).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor<'s> {
    s: &'s str,
    pos: usize,
}

impl<'s> Cursor<'s> {
    /// A cursor at the start of `s`.
    pub(crate) fn new(s: &'s str) -> Cursor<'s> {
        Cursor { s, pos: 0 }
    }

    /// Moves `n` bytes on (callers move over ASCII or whole elements).
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.s.len());
    }

    /// The current byte offset.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The text from the current position to the end.
    pub(crate) fn rest(&self) -> &'s str {
        self.s.get(self.pos..).unwrap_or("")
    }

    /// The text between two offsets taken from this cursor.
    pub(crate) fn slice(&self, from: usize, to: usize) -> &'s str {
        self.s.get(from..to).unwrap_or("")
    }

    /// Whether everything has been read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// The next byte, not consumed.
    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// The byte after the next one, not consumed.
    pub(crate) fn peek2(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos + 1).copied()
    }

    /// A syntax error at the current position.
    pub(crate) fn error(&self, what: &'static str) -> Syntax {
        Syntax { what, at: self.pos }
    }

    /// Skips linear whitespace (SWS); whether any was skipped.
    #[inline]
    pub(crate) fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Consumes `b` if it is next.
    #[inline]
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `b` or fails with `what`.
    pub(crate) fn expect(&mut self, b: u8, what: &'static str) -> Result<(), Syntax> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    /// A separator with optional whitespace around it (`SWS b SWS`, the
    /// SEMI, COMMA, EQUAL, SLASH, COLON of RFC 3261 §25.1): consumed and
    /// `true` if present, otherwise nothing is consumed.
    pub(crate) fn sep(&mut self, b: u8) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.eat(b) {
            self.skip_ws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// The longest run of bytes satisfying `f` (possibly empty).
    #[inline]
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'s str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.slice(start, self.pos)
    }

    /// A non-empty `token`.
    #[inline]
    pub(crate) fn token(&mut self, what: &'static str) -> Result<&'s str, Syntax> {
        let t = self.take_while(|b| is(b, TOKEN));
        if t.is_empty() {
            Err(self.error(what))
        } else {
            Ok(t)
        }
    }

    /// A `quoted-string` starting at the current position (which must be
    /// the opening DQUOTE): the text including both quotes.
    ///
    /// `qdtext` is LWS, %x21, %x23-5B, %x5D-7E or UTF8-NONASCII; a
    /// `quoted-pair` is "\" and one of %x00-09 / %x0B-0C / %x0E-7F.
    pub(crate) fn quoted(&mut self) -> Result<&'s str, Syntax> {
        let start = self.pos;
        self.expect(b'"', "expected '\"'")?;
        loop {
            match self.peek() {
                None => {
                    return Err(Syntax {
                        what: "unterminated quoted string",
                        at: start,
                    });
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(self.slice(start, self.pos));
                }
                Some(b'\\') => match self.peek2() {
                    Some(c) if c <= 0x7f && c != b'\r' && c != b'\n' => self.pos += 2,
                    _ => {
                        return Err(Syntax {
                            what: "bad quoted-pair",
                            at: self.pos,
                        });
                    }
                },
                Some(c) if c >= 0x80 || c >= 0x20 && c != 0x7f || is_lws(c) => self.pos += 1,
                Some(_) => return Err(self.error("control character in quoted string")),
            }
        }
    }

    /// Fails unless the whole input has been read (trailing LWS allowed).
    pub(crate) fn end(&mut self, what: &'static str) -> Result<(), Syntax> {
        self.skip_ws();
        if self.at_end() {
            Ok(())
        } else {
            Err(self.error(what))
        }
    }
}

/// The content of a quoted string (given with its quotes) with
/// quoted-pairs resolved and folds turned into one SP; text without
/// quotes is returned as it is.
pub(crate) fn unquote(s: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let Some(inner) = s.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return Cow::Borrowed(s);
    };
    if !inner.contains(['\\', '\r']) {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '\r' => {
                // CRLF 1*WSP: one SP (RFC 3261 §7.3.1).
                let rest = chars.as_str();
                let skip = rest
                    .bytes()
                    .take_while(|b| matches!(b, b'\n' | b' ' | b'\t'))
                    .count();
                chars = rest.get(skip..).unwrap_or("").chars();
                out.push(' ');
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` as a quoted string (with quotes), escaping `"` and `\`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Decodes `%HH` escapes (RFC 3261 §19.1.2, RFC 3986 §2.1); other bytes
/// are kept. Decoding is done once, never recursively (RFC 4475 §3.1.1.3).
pub(crate) fn unescape(s: &str) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|h| (*h as char).to_digit(16));
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                // Two hex digits make at most 0xff.
                out.push(u8::try_from(h * 16 + l).unwrap_or(0));
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// Parses `1*DIGIT` into a `u64`, failing on anything else or on
/// overflow (RFC 4475 §3.1.2.3: never let such a value wrap).
pub(crate) fn digits_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 40 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_grammar() {
        for b in b"abcXYZ019-.!%*_+`'~" {
            assert!(is(*b, TOKEN), "{}", *b as char);
        }
        for b in b"()<>@,;:\\\"/[]?={} \t" {
            assert!(!is(*b, TOKEN), "{}", *b as char);
        }
        assert!(is(b'"', WORD) && is(b'<', WORD) && !is(b'@', WORD) && !is(b';', WORD));
        assert!(is(b'$', USER_UNRESERVED) && !is(b':', USER_UNRESERVED));
        assert!(!is(b'.', TOKEN_NODOT) && is(b'-', TOKEN_NODOT));
    }

    #[test]
    fn quoted_strings() {
        let mut c = Cursor::new(r#""J Rosenberg \\\"" <sip"#);
        assert_eq!(c.quoted().unwrap(), r#""J Rosenberg \\\"""#);
        assert_eq!(unquote(r#""J Rosenberg \\\"""#), r#"J Rosenberg \""#);
        let mut c = Cursor::new("\"Mr. J. User <sip:j.user@example.com>");
        assert_eq!(c.quoted().unwrap_err().what, "unterminated quoted string");
        let mut c = Cursor::new("\"a\\\u{7}b\"");
        assert!(c.quoted().is_ok());
        let mut c = Cursor::new("\"a\u{7}b\"");
        assert!(c.quoted().is_err());
        assert_eq!(unquote("\"a\r\n  b\""), "a b");
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn separators_take_whitespace_and_folds() {
        let mut c = Cursor::new("a \r\n ; b");
        c.token("t").unwrap();
        assert!(c.sep(b';'));
        assert_eq!(c.rest(), "b");
        let mut c = Cursor::new("a b");
        c.token("t").unwrap();
        assert!(!c.sep(b';'));
        assert_eq!(c.rest(), " b");
    }

    #[test]
    fn escapes_and_digits() {
        assert_eq!(&*unescape("%75se%72"), b"user");
        assert_eq!(&*unescape("v%61lue%25%34%31"), b"value%41");
        assert_eq!(&*unescape("%Z%45"), b"%ZE");
        assert!(is_escaped_run("cal%6Cer", UNRESERVED));
        assert!(!is_escaped_run("a%zz", UNRESERVED));
        assert_eq!(digits_u64("0009"), Some(9));
        assert_eq!(digits_u64("36893488147419103232"), None);
        assert_eq!(digits_u64("-999"), None);
        assert_eq!(digits_u64(""), None);
    }
}
