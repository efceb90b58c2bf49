//! Lexer and recursive-descent parser for the setkey(8) configuration language.
//!
//! The grammar follows setkey(8) and ipsec_set_policy(3) of ipsec-tools
//! (the ipsec-tools manual page): `#` comments, statements that span lines
//! and end with `;`, keys as `"string"` or `0x` hex, IPv4/IPv6 numeric
//! addresses with `/prefix` and `[port]`/`[any]`, priority specifications and
//! request bundles. Every error names the line and column and what was
//! expected; valid constructs this implementation does not support (IPComp,
//! TCP-MD5, `-ctx` labels, host names, tagged policies) are
//! reported as such, never skipped.

use std::net::IpAddr;

use opensec::{AuthAlgorithm, EncAlgorithm};
use zeroize::Zeroize;

use crate::Error;
use crate::ast::*;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Slash,
    LBracket,
    RBracket,
    Semi,
    Comma,
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    pos: Pos,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '%' | '+' | '-')
}

fn lex(input: &str) -> Result<Vec<Token>, Error> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    let (mut line, mut col) = (1u32, 1u32);
    // Advances over one character, keeping line/column.
    let step = |c: char, line: &mut u32, col: &mut u32| {
        if c == '\n' {
            *line = line.saturating_add(1);
            *col = 1;
        } else {
            *col = col.saturating_add(1);
        }
    };
    while let Some(&c) = chars.peek() {
        let pos = Pos { line, col };
        if c.is_ascii_whitespace() {
            chars.next();
            step(c, &mut line, &mut col);
            continue;
        }
        if c == '#' {
            while let Some(&c) = chars.peek() {
                if c == '\n' {
                    break;
                }
                chars.next();
                step(c, &mut line, &mut col);
            }
            continue;
        }
        let single = match c {
            '/' => Some(Tok::Slash),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ';' => Some(Tok::Semi),
            ',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(tok) = single {
            chars.next();
            step(c, &mut line, &mut col);
            out.push(Token { tok, pos });
            continue;
        }
        if c == '"' {
            chars.next();
            step(c, &mut line, &mut col);
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => {
                        return Err(Error::Syntax {
                            pos,
                            expected: "a closing '\"' for this string".into(),
                            found: "end of input".into(),
                        });
                    }
                    Some('"') => {
                        step('"', &mut line, &mut col);
                        break;
                    }
                    Some(c) => {
                        step(c, &mut line, &mut col);
                        s.push(c);
                    }
                }
            }
            out.push(Token {
                tok: Tok::Quoted(s),
                pos,
            });
            continue;
        }
        if is_word_char(c) {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if !is_word_char(c) {
                    break;
                }
                chars.next();
                step(c, &mut line, &mut col);
                w.push(c);
            }
            out.push(Token {
                tok: Tok::Word(w),
                pos,
            });
            continue;
        }
        for t in &mut out {
            if let Tok::Word(w) | Tok::Quoted(w) = &mut t.tok {
                w.zeroize();
            }
        }
        return Err(Error::Syntax {
            pos,
            expected: "a word, a quoted string, '/', '[', ']', ',' or ';'".into(),
            found: format!("character {c:?}"),
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: Pos { line, col },
    });
    Ok(out)
}

fn describe(tok: &Tok) -> String {
    match tok {
        // Hex strings may be keys: never echo them in an error.
        Tok::Word(w)
            if (w.starts_with("0x") || w.starts_with("0X"))
                && w.len() > 10
                && w.get(2..)
                    .is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit())) =>
        {
            format!("a hex string of {} digits", w.len() - 2)
        }
        Tok::Word(w) => {
            let mut s: String = w.chars().take(40).collect();
            if w.chars().count() > 40 {
                s.push_str("...");
            }
            format!("\"{s}\"")
        }
        Tok::Quoted(_) => "a quoted string".into(),
        Tok::Slash => "'/'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::Semi => "';'".into(),
        Tok::Comma => "','".into(),
        Tok::Eof => "end of input".into(),
    }
}

/// Parses a whole setkey script (the contents of `setkey -f FILE` or `-c`).
///
/// ```
/// let stmts = sadb::parse("add 10.0.0.1 10.0.0.2 esp 0x1001 -E aes-cbc 0x00112233445566778899aabbccddeeff;").unwrap();
/// assert_eq!(stmts.len(), 1);
/// assert_eq!((stmts[0].pos.line, stmts[0].pos.col), (1, 1));
/// ```
pub fn parse(input: &str) -> Result<Vec<Located<Statement>>, Error> {
    let tokens = lex(input)?;
    let mut p = Parser { tokens, idx: 0 };
    let mut out = Vec::new();
    while p.peek().tok != Tok::Eof {
        let pos = p.peek().pos;
        let value = p.statement()?;
        out.push(Located { pos, value });
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    idx: usize,
}

impl Drop for Parser {
    /// Keys pass through the tokens as text: wipe them.
    fn drop(&mut self) {
        for t in &mut self.tokens {
            if let Tok::Word(w) | Tok::Quoted(w) = &mut t.tok {
                w.zeroize();
            }
        }
    }
}

const EOF_TOKEN: Token = Token {
    tok: Tok::Eof,
    pos: Pos { line: 0, col: 0 },
};

const COMMANDS: &str = "a command (add, update, getspi, get, delete, deleteall, flush, dump, spdadd, spdupdate, spddelete, spdflush, spddump)";

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens
            .get(self.idx)
            .or_else(|| self.tokens.last())
            .unwrap_or(&EOF_TOKEN)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.idx < self.tokens.len() {
            self.idx += 1;
        }
        t
    }

    fn err<T>(&self, expected: impl Into<String>) -> Result<T, Error> {
        let t = self.peek();
        Err(Error::Syntax {
            pos: t.pos,
            expected: expected.into(),
            found: describe(&t.tok),
        })
    }

    fn peek_word(&self) -> Option<&str> {
        match &self.peek().tok {
            Tok::Word(w) => Some(w),
            _ => None,
        }
    }

    fn word(&mut self, expected: &str) -> Result<(String, Pos), Error> {
        match &self.peek().tok {
            Tok::Word(_) => {}
            _ => return self.err(expected),
        }
        let t = self.bump();
        match t.tok {
            Tok::Word(w) => Ok((w, t.pos)),
            _ => self.err(expected),
        }
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> Result<Pos, Error> {
        if self.peek().tok == tok {
            Ok(self.bump().pos)
        } else {
            self.err(expected)
        }
    }

    fn semi(&mut self) -> Result<(), Error> {
        self.expect(Tok::Semi, "';'").map(|_| ())
    }

    fn statement(&mut self) -> Result<Statement, Error> {
        let (cmd, pos) = self.word(COMMANDS)?;
        match cmd.as_str() {
            "add" => Ok(Statement::Add(self.sa_spec()?)),
            "update" => Ok(Statement::Update(self.sa_spec()?)),
            "get" => Ok(Statement::Get(self.sa_ref()?)),
            "delete" => Ok(Statement::Delete(self.sa_ref()?)),
            "deleteall" => {
                let flags = self.addr_flags()?;
                let (src, spos) = self.address(&flags)?;
                let (dst, dpos) = self.address(&flags)?;
                same_family(&src, &dst, spos.max(dpos))?;
                let protocol = self.sa_protocol()?;
                self.semi()?;
                Ok(Statement::DeleteAll {
                    flags,
                    src,
                    dst,
                    protocol,
                })
            }
            "flush" | "dump" => {
                let proto = match self.peek().tok {
                    Tok::Semi => None,
                    // `flush` typed without its `;` (echo flush | setkey -c).
                    Tok::Eof => return self.err("';'"),
                    _ => Some(self.sa_protocol()?),
                };
                self.semi()?;
                Ok(if cmd == "flush" {
                    Statement::Flush(proto)
                } else {
                    Statement::Dump(proto)
                })
            }
            "spdadd" => Ok(Statement::SpdAdd(self.policy_spec(false)?)),
            "spdupdate" => Ok(Statement::SpdUpdate(self.policy_spec(false)?)),
            "spddelete" => Ok(Statement::SpdDelete(self.policy_spec(true)?)),
            "spdflush" => {
                self.semi()?;
                Ok(Statement::SpdFlush)
            }
            "spddump" => {
                self.semi()?;
                Ok(Statement::SpdDump)
            }
            "getspi" => Ok(Statement::GetSpi(self.getspi_spec()?)),
            _ => Err(Error::Syntax {
                pos,
                expected: COMMANDS.into(),
                found: describe(&Tok::Word(cmd)),
            }),
        }
    }

    fn addr_flags(&mut self) -> Result<AddrFlags, Error> {
        let mut flags = AddrFlags::default();
        while let Some(w) = self.peek_word() {
            let Some(rest) = w.strip_prefix('-') else {
                break;
            };
            if rest.is_empty() || !rest.chars().all(|c| matches!(c, '4' | '6' | 'n')) {
                break;
            }
            for c in rest.chars() {
                match c {
                    '4' => flags.family = Some(Family::V4),
                    '6' => flags.family = Some(Family::V6),
                    _ => flags.numeric = true,
                }
            }
            self.bump();
        }
        Ok(flags)
    }

    /// A numeric address (no brackets).
    fn address(&mut self, flags: &AddrFlags) -> Result<(IpAddr, Pos), Error> {
        let (w, pos) = self.word("an IPv4 or IPv6 address")?;
        let addr = parse_ip(&w, pos)?;
        if let Some(fam) = flags.family {
            if Family::of(&addr) != fam {
                return Err(Error::InvalidValue {
                    pos,
                    what: "address",
                    value: w,
                    rule: "-4/-6 restrict addresses to that family",
                });
            }
        }
        Ok((addr, pos))
    }

    fn number_port(&mut self) -> Result<u16, Error> {
        let (w, pos) = self.word("a port number or 'any'")?;
        if w == "any" {
            return Ok(0);
        }
        if !w.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::NotSupported {
                pos,
                what: format!("service name {w:?} as a port (use the port number)"),
            });
        }
        w.parse::<u16>().map_err(|_| Error::InvalidValue {
            pos,
            what: "port",
            value: w.clone(),
            rule: "ports are 0..=65535",
        })
    }

    fn endpoint(&mut self, flags: &AddrFlags) -> Result<(Endpoint, Pos), Error> {
        let (addr, pos) = self.address(flags)?;
        let port = if self.peek().tok == Tok::LBracket {
            self.bump();
            let p = self.number_port()?;
            self.expect(Tok::RBracket, "']'")?;
            Some(p)
        } else {
            None
        };
        Ok((Endpoint { addr, port }, pos))
    }

    fn sa_protocol(&mut self) -> Result<SaProtocol, Error> {
        let (w, pos) = self.word("a security protocol (esp, ah, esp-udp)")?;
        match w.as_str() {
            "esp" => Ok(SaProtocol::Esp),
            "ah" => Ok(SaProtocol::Ah),
            "esp-udp" => {
                if let Some(next) = self.peek_word() {
                    if next.parse::<IpAddr>().is_ok() {
                        let pos = self.peek().pos;
                        return Err(Error::NotSupported {
                            pos,
                            what: "esp-udp with a NAT-OA address".into(),
                        });
                    }
                }
                Ok(SaProtocol::EspUdp)
            }
            "esp-old" | "ah-old" => Err(Error::NotSupported {
                pos,
                what: format!("{w} (RFC 1827/1826 transforms)"),
            }),
            "ipcomp" => Err(Error::NotSupported {
                pos,
                what: "IPComp (protocol ipcomp)".into(),
            }),
            "tcp" => Err(Error::NotSupported {
                pos,
                what: "TCP-MD5 (protocol tcp, RFC 2385)".into(),
            }),
            _ => Err(Error::Syntax {
                pos,
                expected: "a security protocol (esp, ah, esp-udp)".into(),
                found: describe(&Tok::Word(w)),
            }),
        }
    }

    fn spi(&mut self) -> Result<u32, Error> {
        let (w, pos) = self.word("an SPI (decimal or 0x-hex)")?;
        let parsed = if let Some(hex) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
            if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                None
            } else {
                Some(u32::from_str_radix(hex, 16).ok())
            }
        } else if !w.is_empty() && w.chars().all(|c| c.is_ascii_digit()) {
            Some(w.parse::<u32>().ok())
        } else {
            None
        };
        match parsed {
            None => Err(Error::Syntax {
                pos,
                expected: "an SPI (decimal or 0x-hex)".into(),
                found: describe(&Tok::Word(w)),
            }),
            Some(None) => Err(Error::InvalidValue {
                pos,
                what: "SPI",
                value: w,
                rule: "an SPI is 32 bits",
            }),
            // RFC 4303 §2.1: 1..=255 are reserved by IANA, 0 for local use.
            Some(Some(v)) if v <= 255 => Err(Error::InvalidValue {
                pos,
                what: "SPI",
                value: w,
                rule: "SPI values 0-255 are reserved (RFC 4303 §2.1)",
            }),
            Some(Some(v)) => Ok(v),
        }
    }

    fn getspi_spec(&mut self) -> Result<GetSpiSpec, Error> {
        let flags = self.addr_flags()?;
        let (src, spos) = self.endpoint(&flags)?;
        let (dst, dpos) = self.endpoint(&flags)?;
        same_family(&src.addr, &dst.addr, spos.max(dpos))?;
        let protocol = self.sa_protocol()?;
        // 0 asks for a random unused SPI (setkey(8)); others as for `add`.
        let spi = if self.peek_word().is_some_and(is_zero) {
            self.bump();
            None
        } else {
            Some(self.spi()?)
        };
        let ext_pos = self.peek().pos;
        let ext = self.extensions()?;
        if ext.replay.is_some()
            || ext.pad.is_some()
            || ext.nocyclic_seq
            || ext.lifetime_soft.is_some()
            || ext.bytes_hard.is_some()
            || ext.bytes_soft.is_some()
        {
            return Err(Error::NotSupported {
                pos: ext_pos,
                what: "getspi takes only -m, -u and -lh (the rest belongs to the update that completes it)"
                    .into(),
            });
        }
        self.semi()?;
        Ok(GetSpiSpec {
            flags,
            src,
            dst,
            protocol,
            spi,
            ext,
        })
    }

    fn sa_ref(&mut self) -> Result<SaRef, Error> {
        let flags = self.addr_flags()?;
        let (src, spos) = self.endpoint(&flags)?;
        let (dst, dpos) = self.endpoint(&flags)?;
        same_family(&src.addr, &dst.addr, spos.max(dpos))?;
        let protocol = self.sa_protocol()?;
        let spi = self.spi()?;
        self.semi()?;
        Ok(SaRef {
            flags,
            src,
            dst,
            protocol,
            spi,
        })
    }

    fn dec<T: core::str::FromStr>(
        &mut self,
        what: &'static str,
        rule: &'static str,
    ) -> Result<T, Error> {
        let (w, pos) = self.word("a decimal number")?;
        if w.is_empty() || !w.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::Syntax {
                pos,
                expected: "a decimal number".into(),
                found: describe(&Tok::Word(w)),
            });
        }
        w.parse::<T>().map_err(|_| Error::InvalidValue {
            pos,
            what,
            value: w,
            rule,
        })
    }

    fn sa_spec(&mut self) -> Result<SaSpec, Error> {
        let flags = self.addr_flags()?;
        let (src, spos) = self.endpoint(&flags)?;
        let (dst, dpos) = self.endpoint(&flags)?;
        same_family(&src.addr, &dst.addr, spos.max(dpos))?;
        let protocol = self.sa_protocol()?;
        let spi = self.spi()?;
        let ext = self.extensions()?;
        let alg = self.algorithms()?;
        self.semi()?;
        Ok(SaSpec {
            flags,
            src,
            dst,
            protocol,
            spi,
            ext,
            alg,
        })
    }

    fn extensions(&mut self) -> Result<Extensions, Error> {
        let mut ext = Extensions::default();
        while let Some(flag) = self.peek_word() {
            let flag = flag.to_string();
            let pos = self.peek().pos;
            match flag.as_str() {
                "-m" => {
                    self.bump();
                    let (w, wpos) = self.word("a mode (transport, tunnel or any)")?;
                    ext.mode = Some(match w.as_str() {
                        "transport" => SaModeSpec::Transport,
                        "tunnel" => SaModeSpec::Tunnel,
                        "any" => SaModeSpec::Any,
                        _ => {
                            return Err(Error::Syntax {
                                pos: wpos,
                                expected: "a mode (transport, tunnel or any)".into(),
                                found: describe(&Tok::Word(w)),
                            });
                        }
                    });
                }
                "-r" => {
                    self.bump();
                    ext.replay =
                        Some(self.dec("replay window", "a 32-bit decimal number of bytes")?);
                }
                "-u" => {
                    self.bump();
                    ext.reqid = Some(self.dec("reqid", "a 32-bit decimal number")?);
                }
                "-f" => {
                    self.bump();
                    let (w, wpos) =
                        self.word("a pad option (zero-pad, random-pad, seq-pad) or nocyclic-seq")?;
                    match w.as_str() {
                        "zero-pad" => ext.pad = Some(PadOption::ZeroPad),
                        "random-pad" => ext.pad = Some(PadOption::RandomPad),
                        "seq-pad" => ext.pad = Some(PadOption::SeqPad),
                        "nocyclic-seq" => ext.nocyclic_seq = true,
                        _ => {
                            return Err(Error::Syntax {
                                pos: wpos,
                                expected:
                                    "a pad option (zero-pad, random-pad, seq-pad) or nocyclic-seq"
                                        .into(),
                                found: describe(&Tok::Word(w)),
                            });
                        }
                    }
                }
                "-lh" | "-ls" | "-bh" | "-bs" => {
                    self.bump();
                    let v: u64 = self.dec("lifetime", "a 64-bit decimal number")?;
                    match flag.as_str() {
                        "-lh" => ext.lifetime_hard = Some(v),
                        "-ls" => ext.lifetime_soft = Some(v),
                        "-bh" => ext.bytes_hard = Some(v),
                        _ => ext.bytes_soft = Some(v),
                    }
                }
                "-ctx" => {
                    return Err(Error::NotSupported {
                        pos,
                        what: "-ctx security context labels".into(),
                    });
                }
                _ => break,
            }
        }
        Ok(ext)
    }

    fn algorithms(&mut self) -> Result<AlgorithmSpec, Error> {
        const EXPECTED: &str =
            "an extension (-m, -r, -u, -f, -lh, -ls, -bh, -bs) or an algorithm (-E, -A)";
        let (w, pos) = self.word(EXPECTED)?;
        match w.as_str() {
            "-E" => {
                let (enc, enc_key) = self.enc_alg()?;
                let auth = if self.peek_word() == Some("-A") {
                    self.bump();
                    Some(self.auth_alg()?)
                } else {
                    None
                };
                Ok(AlgorithmSpec::Esp { enc, enc_key, auth })
            }
            "-A" => {
                let (auth, key) = self.auth_alg()?;
                Ok(AlgorithmSpec::Auth { auth, key })
            }
            "-C" => Err(Error::NotSupported {
                pos,
                what: "IPComp (-C compression algorithms)".into(),
            }),
            "-ctx" => Err(Error::NotSupported {
                pos,
                what: "-ctx security context labels".into(),
            }),
            _ => Err(Error::Syntax {
                pos,
                expected: EXPECTED.into(),
                found: describe(&Tok::Word(w)),
            }),
        }
    }

    fn key(&mut self) -> Result<(Key, Pos), Error> {
        const EXPECTED: &str = "a key (\"string\" or 0x-hex)";
        let t = self.peek().clone();
        match t.tok {
            Tok::Quoted(s) => {
                self.bump();
                Ok((Key::new(s.into_bytes(), KeyForm::Quoted), t.pos))
            }
            Tok::Word(w) => {
                let Some(hex) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) else {
                    return self.err(EXPECTED);
                };
                let Some(bytes) = decode_hex(hex) else {
                    return self.err(EXPECTED);
                };
                self.bump();
                Ok((Key::new(bytes, KeyForm::Hex), t.pos))
            }
            _ => self.err(EXPECTED),
        }
    }

    fn enc_alg(&mut self) -> Result<(EncAlgorithm, Key), Error> {
        let (name, pos) = self.word("an encryption algorithm")?;
        let alg = match EncAlgorithm::from_setkey_name(&name) {
            Ok(a) => a,
            Err(_) => {
                const KAME_ONLY: &[&str] = &[
                    "blowfish-cbc",
                    "cast128-cbc",
                    "des-deriv",
                    "3des-deriv",
                    "des-32iv",
                    "simple",
                    "twofish-cbc",
                    "aes-ctr",
                    "camellia-cbc",
                    "rc5-cbc",
                    "aes-gcm-16",
                    "aes-gmac",
                ];
                if KAME_ONLY.contains(&name.as_str()) {
                    return Err(Error::NotSupported {
                        pos,
                        what: format!("encryption algorithm {name} (supported: {})", enc_names()),
                    });
                }
                return Err(Error::UnknownAlgorithm {
                    pos,
                    kind: "encryption",
                    name,
                    valid: enc_names(),
                });
            }
        };
        if alg == EncAlgorithm::Null {
            return Ok((alg, Key::empty()));
        }
        let (key, kpos) = self.key()?;
        alg.check_key_len(key.bytes().len())
            .map_err(|source| Error::Algorithm {
                pos: Some(kpos),
                source,
            })?;
        Ok((alg, key))
    }

    fn auth_alg(&mut self) -> Result<(AuthAlgorithm, Key), Error> {
        let (name, pos) = self.word("an authentication algorithm")?;
        let lookup = if name == "hmac-sha2-256" {
            "hmac-sha256"
        } else {
            name.as_str()
        };
        let alg = match AuthAlgorithm::from_setkey_name(lookup) {
            Ok(a) => a,
            Err(_) => {
                const KAME_ONLY: &[&str] = &[
                    "keyed-md5",
                    "keyed-sha1",
                    "hmac-sha384",
                    "hmac-sha2-384",
                    "hmac-sha512",
                    "hmac-sha2-512",
                    "hmac-ripemd160",
                    "tcp-md5",
                ];
                if KAME_ONLY.contains(&name.as_str()) {
                    return Err(Error::NotSupported {
                        pos,
                        what: format!(
                            "authentication algorithm {name} (supported: {})",
                            auth_names()
                        ),
                    });
                }
                return Err(Error::UnknownAlgorithm {
                    pos,
                    kind: "authentication",
                    name,
                    valid: auth_names(),
                });
            }
        };
        if alg == AuthAlgorithm::Null {
            return Ok((alg, Key::empty()));
        }
        let (key, kpos) = self.key()?;
        alg.check_key_len(key.bytes().len())
            .map_err(|source| Error::Algorithm {
                pos: Some(kpos),
                source,
            })?;
        Ok((alg, key))
    }

    fn range(&mut self, flags: &AddrFlags) -> Result<(RangeSpec, Pos), Error> {
        let (addr, pos) = self.address(flags)?;
        let prefix = if self.peek().tok == Tok::Slash {
            self.bump();
            let (w, ppos) = self.word("a prefix length")?;
            let max = Family::of(&addr).max_prefix();
            match w.parse::<u8>() {
                Ok(v) if v <= max && w.chars().all(|c| c.is_ascii_digit()) => Some(v),
                Ok(_) | Err(_) if w.chars().all(|c| c.is_ascii_digit()) && !w.is_empty() => {
                    return Err(Error::InvalidValue {
                        pos: ppos,
                        what: "prefix length",
                        value: w,
                        rule: "at most 32 for IPv4, 128 for IPv6",
                    });
                }
                _ => {
                    return Err(Error::Syntax {
                        pos: ppos,
                        expected: "a prefix length".into(),
                        found: describe(&Tok::Word(w)),
                    });
                }
            }
        } else {
            None
        };
        let port = if self.peek().tok == Tok::LBracket {
            self.bump();
            let p = self.number_port()?;
            self.expect(Tok::RBracket, "']'")?;
            if p == 0 {
                PortSpec::Any
            } else {
                PortSpec::Port(p)
            }
        } else {
            PortSpec::Omitted
        };
        Ok((RangeSpec { addr, prefix, port }, pos))
    }

    fn upper(&mut self) -> Result<(UpperSpec, Pos), Error> {
        const EXPECTED: &str =
            "an upper-layer protocol (any, a number, or a name such as tcp, udp, icmp, icmp6, gre)";
        let (w, pos) = self.word(EXPECTED)?;
        let protocol = if w == "any" {
            None
        } else if !w.is_empty() && w.chars().all(|c| c.is_ascii_digit()) {
            Some(w.parse::<u8>().map_err(|_| Error::InvalidValue {
                pos,
                what: "protocol number",
                value: w.clone(),
                rule: "protocol numbers are 0..=255",
            })?)
        } else if let Some(p) = protocol_by_name(&w) {
            Some(p)
        } else {
            return Err(Error::Syntax {
                pos,
                expected: EXPECTED.into(),
                found: describe(&Tok::Word(w)),
            });
        };
        let mut icmp = None;
        if let Some(next) = self.peek_word() {
            if next.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                let mpos = self.peek().pos;
                match protocol {
                    Some(p) if is_icmp_like(p) => {
                        let icmp_type: u8 = self.dec("ICMP type", "types are 0..=255")?;
                        let code = if self.peek().tok == Tok::Comma {
                            self.bump();
                            Some(self.dec("ICMP code", "codes are 0..=255")?)
                        } else {
                            None
                        };
                        icmp = Some(IcmpSpec { icmp_type, code });
                    }
                    Some(ipproto::GRE) => {
                        return Err(Error::NotSupported {
                            pos: mpos,
                            what: "GRE key selectors".into(),
                        });
                    }
                    _ => return self.err("'-P' (type,code follows only icmp, icmp6 or mh)"),
                }
            }
        }
        Ok((UpperSpec { protocol, icmp }, pos))
    }

    fn policy_spec(&mut self, delete: bool) -> Result<PolicySpec, Error> {
        if self.peek_word() == Some("tagged") {
            let pos = self.peek().pos;
            return Err(Error::NotSupported {
                pos,
                what: "tagged (PF tag) policies".into(),
            });
        }
        let flags = self.addr_flags()?;
        let (src, spos) = self.range(&flags)?;
        let (dst, dpos) = self.range(&flags)?;
        same_family(&src.addr, &dst.addr, spos.max(dpos))?;
        let (upper, upos) = self.upper()?;
        if let Some(p) = upper.protocol {
            if (is_icmp_like(p) || p == ipproto::GRE)
                && (matches!(src.port, PortSpec::Port(_)) || matches!(dst.port, PortSpec::Port(_)))
            {
                return Err(Error::InvalidValue {
                    pos: upos,
                    what: "port",
                    value: format!("{:?}/{:?}", src.port.port(), dst.port.port()),
                    rule: "icmp, icmp6, mh and gre have no ports; write 'icmp TYPE,CODE'",
                });
            }
        }
        if self.peek_word() == Some("-ctx") {
            let pos = self.peek().pos;
            return Err(Error::NotSupported {
                pos,
                what: "-ctx security context labels".into(),
            });
        }
        let policy = self.policy(delete)?;
        self.semi()?;
        Ok(PolicySpec {
            flags,
            src,
            dst,
            upper,
            policy,
        })
    }

    fn policy(&mut self, delete: bool) -> Result<PolicyClause, Error> {
        let (w, pos) = self.word("'-P'")?;
        if w != "-P" {
            return Err(Error::Syntax {
                pos,
                expected: "'-P'".into(),
                found: describe(&Tok::Word(w)),
            });
        }
        let (d, dpos) = self.word("a direction (in, out or fwd)")?;
        let direction = match d.as_str() {
            "in" => Direction::In,
            "out" => Direction::Out,
            "fwd" => Direction::Fwd,
            _ => {
                return Err(Error::Syntax {
                    pos: dpos,
                    expected: "a direction (in, out or fwd)".into(),
                    found: describe(&Tok::Word(d)),
                });
            }
        };
        let priority = match self.peek_word() {
            Some("prio") | Some("priority") => {
                self.bump();
                Some(self.priority()?)
            }
            _ => None,
        };
        if delete && self.peek().tok == Tok::Semi {
            return Ok(PolicyClause {
                direction,
                priority,
                action: None,
            });
        }
        const ACTIONS: &str = "an action (discard, none or ipsec)";
        let (a, apos) = self.word(ACTIONS)?;
        let action = match a.as_str() {
            "discard" => Action::Discard,
            "none" => Action::None,
            "ipsec" => {
                let mut reqs = Vec::new();
                while self.peek().tok != Tok::Semi {
                    reqs.push(self.request(direction)?);
                }
                if reqs.is_empty() {
                    return self.err("a request (protocol/mode/src-dst/level)");
                }
                Action::Ipsec(reqs)
            }
            "entrust" | "bypass" => {
                return Err(Error::NotSupported {
                    pos: apos,
                    what: format!(
                        "{a} (a per-socket action of ipsec_set_policy(3), not of setkey)"
                    ),
                });
            }
            _ => {
                return Err(Error::Syntax {
                    pos: apos,
                    expected: ACTIONS.into(),
                    found: describe(&Tok::Word(a)),
                });
            }
        };
        Ok(PolicyClause {
            direction,
            priority,
            action: Some(action),
        })
    }

    fn priority(&mut self) -> Result<PrioritySpec, Error> {
        const EXPECTED: &str =
            "a priority (a signed number, or low, def or high with an optional + or - offset)";
        let (w, pos) = self.word(EXPECTED)?;
        let base = match w.as_str() {
            "low" => Some(PriorityBase::Low),
            "def" => Some(PriorityBase::Def),
            "high" => Some(PriorityBase::High),
            _ => None,
        };
        if let Some(base) = base {
            // `base`, `base + N`, `base - N`, `base +N`, `base -N`
            let Some(next) = self.peek_word() else {
                return Ok(PrioritySpec::Base { base, offset: 0 });
            };
            let (sign, digits) = if next == "+" || next == "-" {
                let sign = next.starts_with('+');
                self.bump();
                let (d, _) = self.word("a priority offset")?;
                (sign, d)
            } else if let Some(d) = next.strip_prefix('+').filter(|d| is_digits(d)) {
                let d = d.to_string();
                self.bump();
                (true, d)
            } else if let Some(d) = next.strip_prefix('-').filter(|d| is_digits(d)) {
                let d = d.to_string();
                self.bump();
                (false, d)
            } else {
                return Ok(PrioritySpec::Base { base, offset: 0 });
            };
            // ipsec_set_policy(3): up to 1073741824 for positive offsets,
            // 1073741823 for negative ones.
            let max: u64 = if sign { 0x4000_0000 } else { 0x3fff_ffff };
            let v = digits
                .parse::<u64>()
                .ok()
                .filter(|v| is_digits(&digits) && *v <= max)
                .ok_or_else(|| Error::InvalidValue {
                    pos,
                    what: "priority offset",
                    value: digits.clone(),
                    rule: "at most 1073741824 after '+', 1073741823 after '-'",
                })?;
            let v = i64::try_from(v).unwrap_or(0);
            return Ok(PrioritySpec::Base {
                base,
                offset: if sign { v } else { -v },
            });
        }
        let (neg, digits) = if w == "-" {
            let (d, _) = self.word("a priority offset")?;
            (true, d)
        } else if let Some(d) = w.strip_prefix('-') {
            (true, d.to_string())
        } else if let Some(d) = w.strip_prefix('+') {
            (false, d.to_string())
        } else {
            (false, w.clone())
        };
        if !is_digits(&digits) {
            return Err(Error::Syntax {
                pos,
                expected: EXPECTED.into(),
                found: describe(&Tok::Word(w)),
            });
        }
        // The kernel value 0x80000000 - N must stay within 32 bits.
        let limit: u64 = if neg { 0x7fff_ffff } else { 0x8000_0000 };
        let v = digits
            .parse::<u64>()
            .ok()
            .filter(|v| *v <= limit)
            .ok_or_else(|| Error::InvalidValue {
                pos,
                what: "priority",
                value: w.clone(),
                rule: "in -2147483647..=2147483648",
            })?;
        let v = i64::try_from(v).unwrap_or(0);
        Ok(PrioritySpec::Offset(if neg { -v } else { v }))
    }

    fn request(&mut self, direction: Direction) -> Result<Request, Error> {
        let _ = direction;
        const EXPECTED: &str = "a request protocol (esp or ah) or ';'";
        let (w, pos) = self.word(EXPECTED)?;
        let protocol = match w.as_str() {
            "esp" => ReqProtocol::Esp,
            "ah" => ReqProtocol::Ah,
            "ipcomp" => {
                return Err(Error::NotSupported {
                    pos,
                    what: "IPComp requests".into(),
                });
            }
            _ => {
                return Err(Error::Syntax {
                    pos,
                    expected: EXPECTED.into(),
                    found: describe(&Tok::Word(w)),
                });
            }
        };
        self.expect(Tok::Slash, "'/' and a mode (protocol/mode/src-dst/level)")?;
        let (m, mpos) = self.word("a mode (transport or tunnel)")?;
        let mode = match m.as_str() {
            "transport" => ReqMode::Transport,
            "tunnel" => ReqMode::Tunnel,
            _ => {
                return Err(Error::Syntax {
                    pos: mpos,
                    expected: "a mode (transport or tunnel)".into(),
                    found: describe(&Tok::Word(m)),
                });
            }
        };
        let mut endpoints = None;
        let mut level = Level::Default;
        if self.peek().tok == Tok::Slash {
            self.bump();
            if self.peek().tok == Tok::Slash {
                // protocol/mode//level
                self.bump();
                let (lw, lpos) =
                    self.word("a level (default, use, require, unique or unique:N)")?;
                level = parse_level(&lw, lpos)?;
            } else if self.peek_word().is_some_and(looks_like_endpoints) {
                endpoints = Some(self.tunnel_endpoints()?);
                if self.peek().tok == Tok::Slash {
                    self.bump();
                    if let Some(lw) = self.peek_word() {
                        if is_level_word(lw) {
                            let (lw, lpos) = self.word("a level")?;
                            level = parse_level(&lw, lpos)?;
                        }
                    }
                }
            }
        }
        if mode == ReqMode::Tunnel && endpoints.is_none() {
            return Err(Error::Syntax {
                pos: mpos,
                expected: "tunnel end points (tunnel/src-dst/level)".into(),
                found: describe(&self.peek().tok),
            });
        }
        Ok(Request {
            protocol,
            mode,
            endpoints,
            level,
        })
    }

    fn tunnel_endpoints(&mut self) -> Result<(Endpoint, Endpoint), Error> {
        let (w, pos) = self.word("tunnel end points src-dst")?;
        let bad = |pos: Pos, w: &str| Error::Syntax {
            pos,
            expected: "tunnel end points src-dst".into(),
            found: describe(&Tok::Word(w.to_string())),
        };
        let (src, dst) = if let Some((a, b)) = w.split_once('-').filter(|(_, b)| !b.is_empty()) {
            let src = Endpoint {
                addr: parse_ip(a, pos)?,
                port: None,
            };
            let dst = Endpoint {
                addr: parse_ip(b, pos)?,
                port: None,
            };
            (src, dst)
        } else {
            // a[port]-b[port]
            let a = w.strip_suffix('-').unwrap_or(&w);
            let src_addr = parse_ip(a, pos)?;
            self.expect(Tok::LBracket, "'[' or '-'")?;
            let sport = self.number_port()?;
            self.expect(Tok::RBracket, "']'")?;
            let (w2, pos2) = self.word("'-' and the destination end point")?;
            let b = w2.strip_prefix('-').ok_or_else(|| bad(pos2, &w2))?;
            let dst_addr = parse_ip(b, pos2)?;
            let dport = if self.peek().tok == Tok::LBracket {
                self.bump();
                let p = self.number_port()?;
                self.expect(Tok::RBracket, "']'")?;
                Some(p)
            } else {
                None
            };
            (
                Endpoint {
                    addr: src_addr,
                    port: Some(sport),
                },
                Endpoint {
                    addr: dst_addr,
                    port: dport,
                },
            )
        };
        same_family(&src.addr, &dst.addr, pos)?;
        Ok((src, dst))
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

fn is_level_word(w: &str) -> bool {
    matches!(w, "default" | "use" | "require" | "unique") || w.starts_with("unique:")
}

fn looks_like_endpoints(w: &str) -> bool {
    if w == "me-any" || w == "any-me" {
        return true;
    }
    let a = w.split('-').next().unwrap_or(w);
    a.parse::<IpAddr>().is_ok()
}

fn parse_level(w: &str, pos: Pos) -> Result<Level, Error> {
    match w {
        "default" => Ok(Level::Default),
        "use" => Ok(Level::Use),
        "require" => Ok(Level::Require),
        "unique" => Ok(Level::Unique(None)),
        _ => {
            if let Some(n) = w.strip_prefix("unique:") {
                return match n.parse::<u16>() {
                    Ok(v) if (1..=32767).contains(&v) && is_digits(n) => Ok(Level::Unique(Some(v))),
                    _ => Err(Error::InvalidValue {
                        pos,
                        what: "unique policy identifier",
                        value: n.to_string(),
                        rule: "must be between 1 and 32767",
                    }),
                };
            }
            Err(Error::Syntax {
                pos,
                expected: "a level (default, use, require, unique or unique:N)".into(),
                found: describe(&Tok::Word(w.to_string())),
            })
        }
    }
}

fn parse_ip(w: &str, pos: Pos) -> Result<IpAddr, Error> {
    if let Ok(a) = w.parse::<IpAddr>() {
        return Ok(a);
    }
    if w == "me-any" || w == "any-me" || w == "me" || w == "any" {
        return Err(Error::NotSupported {
            pos,
            what: format!("{w} end points (write the addresses)"),
        });
    }
    if w.contains('%') {
        return Err(Error::NotSupported {
            pos,
            what: format!("scoped IPv6 address {w:?} (zone ids need an interface lookup)"),
        });
    }
    let hostname = w.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if hostname {
        return Err(Error::NotSupported {
            pos,
            what: format!("host name {w:?} (name resolution is IO; write a numeric address)"),
        });
    }
    Err(Error::Syntax {
        pos,
        expected: "an IPv4 or IPv6 address".into(),
        found: describe(&Tok::Word(w.to_string())),
    })
}

/// `0`, `00`, `0x0`...: getspi's "pick one".
fn is_zero(w: &str) -> bool {
    let digits = w
        .strip_prefix("0x")
        .or_else(|| w.strip_prefix("0X"))
        .unwrap_or(w);
    !digits.is_empty() && digits.bytes().all(|b| b == b'0')
}

fn same_family(a: &IpAddr, b: &IpAddr, pos: Pos) -> Result<(), Error> {
    if Family::of(a) == Family::of(b) {
        Ok(())
    } else {
        Err(Error::InvalidValue {
            pos,
            what: "address",
            value: format!("{a} / {b}"),
            rule: "source and destination must be of the same family",
        })
    }
}

/// Hex digits to bytes; an odd count gets a leading zero nibble, as setkey does.
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let digits: Vec<u8> = hex
        .chars()
        .filter_map(|c| c.to_digit(16))
        .filter_map(|d| u8::try_from(d).ok())
        .collect();
    let mut out = Vec::with_capacity(digits.len().div_ceil(2));
    let mut rest = digits.as_slice();
    if rest.len() % 2 == 1 {
        let (first, tail) = rest.split_first()?;
        out.push(*first);
        rest = tail;
    }
    for pair in rest.chunks_exact(2) {
        if let [hi, lo] = pair {
            out.push((hi << 4) | lo);
        }
    }
    let mut digits = digits;
    digits.zeroize();
    Some(out)
}

fn enc_names() -> String {
    let mut names: Vec<&str> = EncAlgorithm::ALL.iter().map(|a| a.setkey_name()).collect();
    for alias in ["des-ede3-cbc", "rijndael-cbc"] {
        if !names.contains(&alias) {
            names.push(alias);
        }
    }
    names.join(", ")
}

fn auth_names() -> String {
    let mut names: Vec<&str> = AuthAlgorithm::ALL.iter().map(|a| a.setkey_name()).collect();
    names.push("hmac-sha2-256");
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Statement {
        let mut v = parse(s).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0).value
    }

    fn err(s: &str) -> Error {
        parse(s).unwrap_err()
    }

    #[test]
    fn man_page_examples_parse() {
        let text = r#"
add 3ffe:501:4819::1 3ffe:501:481d::1 esp 123457
	-E des-cbc 0x3ffe05014819ffff ;

add 10.0.11.41 10.0.11.33 esp 0x10001
	-E des-cbc 0x3ffe05014819ffff
	-A hmac-md5 "authentication!!" ;

get 3ffe:501:4819::1 3ffe:501:481d::1 ah 123456 ;

flush ;

dump esp ;

spdadd 10.0.11.41/32[21] 10.0.11.33/32[any] any
	-P out ipsec esp/tunnel/192.168.0.1-192.168.1.2/require ;
spdadd ::/0 ::/0 icmp6 135,0 -P in none ;
spdadd 10.0.11.0/24[any] 10.0.11.33/32[any] any -P out ipsec
    esp/tunnel/192.168.0.1[4500]-192.168.1.2[30000]/require ;
"#;
        let v = parse(text).unwrap();
        assert_eq!(v.len(), 8);
        assert_eq!(v[0].pos, Pos { line: 2, col: 1 });
        match &v[1].value {
            Statement::Add(sa) => {
                assert_eq!(sa.spi, 0x10001);
                match &sa.alg {
                    AlgorithmSpec::Esp { enc, enc_key, auth } => {
                        assert_eq!(*enc, EncAlgorithm::DesCbc);
                        assert_eq!(
                            enc_key.bytes(),
                            [0x3f, 0xfe, 0x05, 0x01, 0x48, 0x19, 0xff, 0xff]
                        );
                        let (a, k) = auth.as_ref().unwrap();
                        assert_eq!(*a, AuthAlgorithm::HmacMd5_96);
                        assert_eq!(k.bytes(), b"authentication!!");
                    }
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        match &v[6].value {
            Statement::SpdAdd(p) => {
                assert_eq!(p.upper.protocol, Some(58));
                assert_eq!(
                    p.upper.icmp,
                    Some(IcmpSpec {
                        icmp_type: 135,
                        code: Some(0)
                    })
                );
                assert_eq!(p.policy.action, Some(Action::None));
            }
            other => panic!("{other:?}"),
        }
        match &v[7].value {
            Statement::SpdAdd(p) => match &p.policy.action {
                Some(Action::Ipsec(r)) => {
                    let (s, d) = r[0].endpoints.unwrap();
                    assert_eq!(s.port, Some(4500));
                    assert_eq!(d.port, Some(30000));
                    assert_eq!(r[0].level, Level::Require);
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsupported_constructs_are_named() {
        for (text, what) in [
            (
                "add 10.1.10.34 10.1.10.36 tcp 0x1000 -A tcp-md5 \"TCP-MD5 BGP secret\" ;",
                "TCP-MD5",
            ),
            (
                "add 10.0.11.41 10.0.11.33 esp 0x10001 -ctx 1 1 \"system_u\" -E des-cbc 0x3ffe05014819ffff;",
                "-ctx",
            ),
            (
                "spdadd 10.0.11.41 10.0.11.33 any -ctx 1 1 \"x\" -P out ipsec esp/transport//require ;",
                "-ctx",
            ),
            ("add 10.0.0.1 10.0.0.2 ipcomp 0x1000 -C deflate ;", "IPComp"),
            ("add 10.0.0.1 10.0.0.2 esp 0x1000 -C deflate ;", "IPComp"),
            (
                "spdadd 10.0.0.1 10.0.0.2 any -P out ipsec ipcomp/transport//use ;",
                "IPComp",
            ),
            (
                "add myhost.example.com 10.0.0.2 esp 0x1000 -E null ;",
                "host name",
            ),
            (
                "add 10.0.0.1 10.0.0.2 esp 0x1000 -E blowfish-cbc \"x\" ;",
                "blowfish",
            ),
            ("spdadd tagged \"foo\" -P out none ;", "tagged"),
        ] {
            let e = err(text);
            assert!(matches!(e, Error::NotSupported { .. }), "{text}: {e}");
            assert!(e.to_string().contains(what), "{text}: {e}");
            assert!(e.to_string().contains("not supported"), "{e}");
        }
    }

    #[test]
    fn getspi_holds_an_spi_or_asks_for_one() {
        let st = parse("getspi 10.0.0.1 10.0.0.2 esp 0 -m transport -u 7 -lh 60;").unwrap();
        let Statement::GetSpi(g) = &st[0].value else {
            panic!("{st:?}")
        };
        assert_eq!(g.spi, None);
        assert_eq!(g.ext.reqid, Some(7));
        assert_eq!(g.ext.lifetime_hard, Some(60));
        let st = parse("getspi 10.0.0.1 10.0.0.2 ah 0x1000;").unwrap();
        assert!(matches!(&st[0].value, Statement::GetSpi(g) if g.spi == Some(0x1000)));
        let st = parse("getspi 10.0.0.1 10.0.0.2 esp 0x00;").unwrap();
        assert!(matches!(&st[0].value, Statement::GetSpi(g) if g.spi.is_none()));
        // Reserved SPIs are refused as for add; keys belong to update.
        assert!(
            err("getspi 10.0.0.1 10.0.0.2 esp 12;")
                .to_string()
                .contains("reserved")
        );
        let e = err("getspi 10.0.0.1 10.0.0.2 esp 0 -r 8;");
        assert!(e.to_string().contains("only -m, -u and -lh"), "{e}");
        let e = err("getspi 10.0.0.1 10.0.0.2 esp 0 -E null;");
        assert!(e.to_string().contains("expected ';'"), "{e}");
    }

    #[test]
    fn a_statement_without_its_final_semicolon_says_so() {
        for text in [
            "flush",
            "dump",
            "spdflush",
            "add 10.0.0.1 10.0.0.2 esp 300 -E null",
        ] {
            let e = err(text);
            assert!(
                e.to_string().contains("expected ';', found end of input"),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn errors_have_line_column_and_expectation() {
        let e = err("flush;\nadd 10.0.0.1 10.0.0.2 esp 0x1000\n  -E 3des-cbc ;");
        assert_eq!(e.pos(), Some(Pos { line: 3, col: 15 }));
        assert_eq!(
            e.to_string(),
            "line 3, column 15: expected a key (\"string\" or 0x-hex), found ';'"
        );
        let e = err("add 10.0.0.1 10.0.0.2 esp 300 -E aes-cbc 0x00 ;");
        assert!(e.to_string().contains("line 1, column 42"), "{e}");
        assert!(e.to_string().contains("16"), "{e}");
        let e = err("add 10.0.0.1 10.0.0.2 esp 300 -E foo-cbc 0x00 ;");
        assert!(e.to_string().contains("3des-cbc"), "{e}");
        assert!(e.to_string().contains("aes-cbc"), "{e}");
        let e = err("add 10.0.0.1 10.0.0.2 esp 255 -E null ;");
        assert!(e.to_string().contains("reserved"), "{e}");
        let e = err("spdadd 10.0.0.1 10.0.0.2 udp -P sideways none;");
        assert_eq!(e.pos(), Some(Pos { line: 1, col: 33 }));
        let e = err("add 10.0.0.1 10.0.0.2 esp 300 -E null");
        assert!(
            e.to_string().contains("expected ';', found end of input"),
            "{e}"
        );
        let e = err("add 10.0.0.1 10.0.0.2 esp 300 -E null \"unterminated ;");
        assert!(e.to_string().contains("closing"), "{e}");
        let e = err("foo;");
        assert!(e.to_string().contains("expected a command"), "{e}");
    }

    #[test]
    fn misplaced_keys_are_not_echoed() {
        let e = err("add 10.0.0.1 10.0.0.2 esp 300 -E null 0x00112233445566778899aabbccddeeff;");
        assert!(
            e.to_string().contains("found a hex string of 32 digits"),
            "{e}"
        );
        assert!(!e.to_string().contains("0011223344"), "{e}");
    }

    #[test]
    fn comments_and_multiline() {
        let v = parse("# comment\nspdflush; # trailing\n\n  spddump\n ;").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].pos, Pos { line: 4, col: 3 });
    }

    #[test]
    fn priorities() {
        let prio = |s: &str| match one(&format!("spdadd 10.0.0.1 10.0.0.2 any -P out {s} none;")) {
            Statement::SpdAdd(p) => p.policy.priority,
            other => panic!("{other:?}"),
        };
        assert_eq!(prio("prio 5"), Some(PrioritySpec::Offset(5)));
        assert_eq!(prio("priority -5"), Some(PrioritySpec::Offset(-5)));
        assert_eq!(prio("prio - 5"), Some(PrioritySpec::Offset(-5)));
        assert_eq!(
            prio("prio high + 3"),
            Some(PrioritySpec::Base {
                base: PriorityBase::High,
                offset: 3
            })
        );
        assert_eq!(
            prio("prio low -7"),
            Some(PrioritySpec::Base {
                base: PriorityBase::Low,
                offset: -7
            })
        );
        assert_eq!(
            prio("prio def"),
            Some(PrioritySpec::Base {
                base: PriorityBase::Def,
                offset: 0
            })
        );
        assert_eq!(PrioritySpec::Offset(5).kernel_value(), 0x8000_0000 - 5);
        assert_eq!(
            PrioritySpec::Base {
                base: PriorityBase::High,
                offset: 3
            }
            .kernel_value(),
            0x4000_0000 - 3
        );
        assert!(parse("spdadd 10.0.0.1 10.0.0.2 any -P out prio high + 1073741825 none;").is_err());
    }

    #[test]
    fn bundles_and_levels() {
        match one(
            "spdadd 10.0.0.1 10.0.0.2 any -P out ipsec esp/transport//require ah/transport//unique:7 esp/transport esp/transport/ ah/transport//use;",
        ) {
            Statement::SpdAdd(p) => match p.policy.action {
                Some(Action::Ipsec(r)) => {
                    assert_eq!(r.len(), 5);
                    assert_eq!(r[1].level, Level::Unique(Some(7)));
                    assert_eq!(r[1].protocol, ReqProtocol::Ah);
                    assert_eq!(r[2].level, Level::Default);
                    assert_eq!(r[3].level, Level::Default);
                    assert_eq!(r[4].level, Level::Use);
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        assert!(parse("spdadd 10.0.0.1 10.0.0.2 any -P out ipsec esp/tunnel//require;").is_err());
        assert!(parse("spdadd 10.0.0.1 10.0.0.2 any -P out ipsec;").is_err());
        assert!(
            parse("spdadd 10.0.0.1 10.0.0.2 any -P out ipsec esp/transport//unique:0;").is_err()
        );
    }

    #[test]
    fn spddelete_takes_direction_only() {
        match one("spddelete 10.0.0.1/32[5062] 10.0.0.2/32[any] udp -P out;") {
            Statement::SpdDelete(p) => {
                assert_eq!(p.policy.action, None);
                assert_eq!(p.src.port, PortSpec::Port(5062));
                assert_eq!(p.dst.port, PortSpec::Any);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse("spdadd 10.0.0.1 10.0.0.2 any -P out;").is_err());
    }

    #[test]
    fn hex_keys_odd_length() {
        assert_eq!(decode_hex("123"), Some(vec![0x01, 0x23]));
        assert_eq!(decode_hex("abCD"), Some(vec![0xab, 0xcd]));
        assert_eq!(decode_hex(""), None);
        assert_eq!(decode_hex("xz"), None);
    }

    #[test]
    fn address_flags_and_families() {
        assert!(parse("add -4 ::1 ::2 esp 300 -E null;").is_err());
        assert!(parse("add -6n ::1 ::2 esp 300 -E null;").is_ok());
        assert!(parse("add 10.0.0.1 ::2 esp 300 -E null;").is_err());
        assert!(parse("spdadd 10.0.0.0/33 10.0.0.2 any -P out none;").is_err());
    }
}
