//! A small JSON value and its pretty printer (RFC 8259), for the tools'
//! `--json`-style output. Written here rather than taken from serde_json:
//! the tools only ever write JSON, never read it, and the shape of each
//! document is chosen for its reader rather than derived from a library's
//! types (which would need serde derives on them); this is 100 lines.

use std::fmt::{self, Write as _};

/// A JSON value. Objects keep their keys in insertion order.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An empty object.
    pub fn obj() -> Json {
        Json::Obj(Vec::new())
    }

    /// Adds `key: value` to an object (no-op on other values).
    pub fn set(&mut self, key: &str, value: impl Into<Json>) -> &mut Json {
        if let Json::Obj(v) = self {
            v.push((key.to_owned(), value.into()));
        }
        self
    }

    /// [`Json::set`] for a value that may be absent (absent: no key).
    pub fn set_opt<T: Into<Json>>(&mut self, key: &str, value: Option<T>) -> &mut Json {
        if let Some(v) = value {
            self.set(key, v);
        }
        self
    }

    fn write(&self, out: &mut String, indent: usize) {
        let pad = |out: &mut String, n: usize| out.extend(std::iter::repeat_n(' ', n));
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::Str(s) => write_str(out, s),
            Json::Arr(v) if v.is_empty() => out.push_str("[]"),
            Json::Obj(v) if v.is_empty() => out.push_str("{}"),
            Json::Arr(v) => {
                out.push_str("[\n");
                for (i, x) in v.iter().enumerate() {
                    pad(out, indent + 2);
                    x.write(out, indent + 2);
                    out.push_str(if i + 1 < v.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push(']');
            }
            Json::Obj(v) => {
                out.push_str("{\n");
                for (i, (k, x)) in v.iter().enumerate() {
                    pad(out, indent + 2);
                    write_str(out, k);
                    out.push_str(": ");
                    x.write(out, indent + 2);
                    out.push_str(if i + 1 < v.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push('}');
            }
        }
    }
}

impl Json {
    /// Appends the value on one line: the pretty form with each line
    /// trimmed and the lines joined by a space (`{ "a": 1, "l": [ true ] }`),
    /// written directly (an event line per registration under load).
    pub fn write_line(&self, out: &mut String) {
        match self {
            Json::Arr(v) if !v.is_empty() => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    out.push(' ');
                    x.write_line(out);
                    if i + 1 < v.len() {
                        out.push(',');
                    }
                }
                out.push_str(" ]");
            }
            Json::Obj(v) if !v.is_empty() => {
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    out.push(' ');
                    write_str(out, k);
                    out.push_str(": ");
                    x.write_line(out);
                    if i + 1 < v.len() {
                        out.push(',');
                    }
                }
                out.push_str(" }");
            }
            other => other.write(out, 0),
        }
    }
}

/// A JSON string literal: `"`, `\` and control characters escaped. The
/// runs between escapes are copied whole (an event line is mostly such
/// runs, and the pcscf writes one per registration).
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 | 0x7f => "",
            // UTF-8 lead and continuation bytes are >= 0x80: copied.
            _ => continue,
        };
        // `i` is at an ASCII byte, so both cuts are on char boundaries.
        out.push_str(s.get(run..i).unwrap_or_default());
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(esc);
        }
        run = i + 1;
    }
    out.push_str(s.get(run..).unwrap_or_default());
    out.push('"');
}

impl fmt::Display for Json {
    /// Pretty-printed, two spaces per level.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write(&mut s, 0);
        f.write_str(&s)
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_owned())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Json {
            fn from(i: $t) -> Json {
                i64::try_from(i).map_or(Json::Null, Json::Int)
            }
        }
    )*};
}
from_int!(u8, u16, u32, u64, usize, i64);

impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(v: Vec<T>) -> Json {
        Json::Arr(v.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_valid_json() {
        let mut o = Json::obj();
        o.set("a", 1u32)
            .set("s", "q\"\\\u{0}\r\n")
            .set("l", vec![true, false])
            .set("e", Json::obj())
            .set_opt::<u8>("none", None);
        assert_eq!(
            o.to_string(),
            "{\n  \"a\": 1,\n  \"s\": \"q\\\"\\\\\\u0000\\r\\n\",\n  \"l\": [\n    true,\n    false\n  ],\n  \"e\": {}\n}"
        );
    }

    #[test]
    fn every_control_character_is_escaped() {
        for c in (0u8..0x20).chain([0x7f, b'"', b'\\']) {
            let s = format!("a{}\u{e9}b", char::from(c));
            let mut out = String::new();
            write_str(&mut out, &s);
            assert!(!out.bytes().any(|b| b < 0x20), "{c:#x}: {out:?}");
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    proptest::proptest! {
        /// serde_json (nobody here wrote it) reads every string back as it
        /// was: escapes, control characters, and multi-byte UTF-8 between
        /// them.
        #[test]
        fn serde_json_reads_every_string_back(s in "(\\PC|[\\x00-\\x1f\\x7f\"\\\\]){0,40}") {
            let mut out = String::new();
            write_str(&mut out, &s);
            let back: String = serde_json::from_str(&out).unwrap();
            proptest::prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn one_line_is_the_pretty_form_trimmed_and_joined() {
        let mut inner = Json::obj();
        inner.set("k", "v  ").set("n", Json::Null);
        let mut o = Json::obj();
        o.set("a", 1u32)
            .set("s", "q\"\\\u{0}\r\n \u{85}")
            .set("l", vec![true, false])
            .set("e", Json::obj())
            .set("x", Json::Arr(Vec::new()))
            .set("o", inner)
            .set("m", Json::Arr(vec![Json::obj(), Json::Int(-3)]));
        for j in [o, Json::Int(7), Json::obj(), Json::from("s")] {
            let pretty = j.to_string();
            let joined = pretty.lines().map(str::trim).collect::<Vec<_>>().join(" ");
            let mut line = String::new();
            j.write_line(&mut line);
            assert_eq!(line, joined);
        }
    }
}
