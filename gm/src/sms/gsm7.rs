//! Alphabets of TS 23.038: the GSM 7-bit default alphabet with its
//! extension table (§6.2.1, §6.2.1.1), septet packing (§6.1.2.1), UCS-2
//! (§6.2.3) and the choice between them for a text.

use super::Error;

/// The escape to the extension table (TS 23.038 §6.2.1.1).
pub const ESCAPE: u8 = 0x1B;

/// The GSM 7-bit default alphabet, indexed by septet (TS 23.038 §6.2.1).
/// 0x1B is the escape, a placeholder here: it is never a character.
const DEFAULT: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table (TS 23.038 §6.2.1.1): the septet after an escape,
/// and its character.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// The septets of one character: one from the default alphabet, or the
/// escape and one from the extension table; `None` when it has neither.
// The indexing is in constant evaluation: out of bounds would not compile.
#[allow(clippy::indexing_slicing)]
pub fn char_septets(c: char) -> Option<&'static [u8]> {
    // Every septet value as a one-septet slice, so a char maps to static
    // data without a table of slices.
    const ALL: [u8; 128] = {
        let mut t = [0u8; 128];
        let mut i = 0;
        while i < 128 {
            t[i] = i as u8;
            i += 1;
        }
        t
    };
    const ESCAPED: [[u8; 2]; 10] = {
        let mut t = [[0u8; 2]; 10];
        let mut i = 0;
        while i < 10 {
            t[i] = [ESCAPE, EXTENSION[i].0];
            i += 1;
        }
        t
    };
    if let Some(i) = DEFAULT
        .iter()
        .position(|&d| d == c)
        .filter(|&i| i != usize::from(ESCAPE))
    {
        return ALL.get(i..i + 1);
    }
    EXTENSION
        .iter()
        .position(|&(_, e)| e == c)
        .and_then(|i| ESCAPED.get(i))
        .map(|s| &s[..])
}

/// Whether every character of `text` is in the default alphabet or its
/// extension table.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| char_septets(c).is_some())
}

/// The septets of `text`, an escape before each extension character.
pub fn to_septets(text: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        out.extend_from_slice(char_septets(c).ok_or(Error::NotGsm7 { ch: c })?);
    }
    Ok(out)
}

/// How many septets `text` takes (an extension character takes two), or
/// `None` when a character has no GSM 7-bit code.
pub fn septet_count(text: &str) -> Option<usize> {
    text.chars()
        .try_fold(0usize, |n, c| char_septets(c).map(|s| n + s.len()))
}

/// The text of septets (bit 8 of each byte is ignored). An escape followed
/// by a septet without an extension character gives that septet's default
/// character, and an escape at the end a space (TS 23.038 §6.2.1.1).
pub fn from_septets(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut it = septets.iter().map(|s| s & 0x7F);
    while let Some(s) = it.next() {
        if s == ESCAPE {
            match it.next() {
                Some(e) => out.push(
                    EXTENSION
                        .iter()
                        .find(|&&(x, _)| x == e)
                        .map_or_else(|| default_char(e), |&(_, c)| c),
                ),
                None => out.push(' '),
            }
        } else {
            out.push(default_char(s));
        }
    }
    out
}

fn default_char(septet: u8) -> char {
    if septet & 0x7F == ESCAPE {
        return ' ';
    }
    DEFAULT
        .get(usize::from(septet & 0x7F))
        .copied()
        .unwrap_or(' ')
}

/// Packs septets into octets, least significant bit first (TS 23.038
/// §6.1.2.1.1), after `fill_bits` zero bits (0 to 6: the fill bits that
/// align the text on a septet boundary after a user data header, TS 23.040
/// §9.2.3.24). Unused bits of the last octet are zero.
pub fn pack(septets: &[u8], fill_bits: u8) -> Vec<u8> {
    let fill = usize::from(fill_bits % 7);
    let bits = fill + 7 * septets.len();
    let mut out = vec![0u8; bits.div_ceil(8)];
    let mut bit = fill;
    for &s in septets {
        let v = u16::from(s & 0x7F) << (bit % 8);
        let [lo, hi] = v.to_le_bytes();
        if let Some(b) = out.get_mut(bit / 8) {
            *b |= lo;
        }
        if hi != 0 {
            if let Some(b) = out.get_mut(bit / 8 + 1) {
                *b |= hi;
            }
        }
        bit += 7;
    }
    out
}

/// Unpacks `count` septets that start after `fill_bits` bits of `octets`
/// (the inverse of [`pack`]).
pub fn unpack(octets: &[u8], fill_bits: u8, count: usize) -> Result<Vec<u8>, Error> {
    let fill = usize::from(fill_bits % 7);
    let need = (fill + 7 * count).div_ceil(8);
    if need > octets.len() {
        return Err(Error::Truncated { field: "TP-UD" });
    }
    let mut out = Vec::with_capacity(count);
    let mut bit = fill;
    for _ in 0..count {
        let lo = octets.get(bit / 8).copied().unwrap_or(0);
        let hi = octets.get(bit / 8 + 1).copied().unwrap_or(0);
        let v = u16::from_le_bytes([lo, hi]) >> (bit % 8);
        out.push((v & 0x7F) as u8);
        bit += 7;
    }
    Ok(out)
}

/// The character set of user data, from TP-DCS (TS 23.038 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alphabet {
    /// The GSM 7-bit default alphabet, packed.
    Gsm7,
    /// 8-bit data, not text.
    Data8,
    /// UCS-2, big-endian 16-bit units (UTF-16 in practice).
    Ucs2,
}

impl Alphabet {
    /// GSM 7-bit when every character of `text` has a code there,
    /// otherwise UCS-2.
    pub fn for_text(text: &str) -> Alphabet {
        if is_gsm7(text) {
            Alphabet::Gsm7
        } else {
            Alphabet::Ucs2
        }
    }

    /// The length of `text` in this alphabet's unit: septets for GSM
    /// 7-bit, UTF-16 units for UCS-2, UTF-8 octets for 8-bit data; `None`
    /// when GSM 7-bit cannot code it.
    pub fn units(self, text: &str) -> Option<usize> {
        match self {
            Alphabet::Gsm7 => septet_count(text),
            Alphabet::Ucs2 => Some(text.encode_utf16().count()),
            Alphabet::Data8 => Some(text.len()),
        }
    }
}

/// The UCS-2 octets of `text`: big-endian UTF-16 units (a character
/// outside the Basic Multilingual Plane takes a surrogate pair).
pub fn to_ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// The units of big-endian UCS-2 octets.
pub fn ucs2_units(octets: &[u8]) -> Result<Vec<u16>, Error> {
    if octets.len() % 2 != 0 {
        return Err(Error::InvalidUcs2);
    }
    Ok(octets
        .chunks_exact(2)
        .map(|p| {
            u16::from_be_bytes([
                p.first().copied().unwrap_or(0),
                p.get(1).copied().unwrap_or(0),
            ])
        })
        .collect())
}

/// The text of UTF-16 units; an unpaired surrogate is an error.
pub fn from_ucs2_units(units: &[u16]) -> Result<String, Error> {
    String::from_utf16(units).map_err(|_| Error::InvalidUcs2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_septet_round_trips_except_the_escape() {
        for s in 0u8..128 {
            if s == ESCAPE {
                continue;
            }
            let text = from_septets(&[s]);
            assert_eq!(to_septets(&text).unwrap(), vec![s], "septet {s:#x}");
        }
    }

    #[test]
    fn extension_characters_take_two_septets() {
        assert_eq!(to_septets("€[").unwrap(), vec![0x1B, 0x65, 0x1B, 0x3C]);
        assert_eq!(septet_count("a{}b"), Some(6));
        assert_eq!(from_septets(&[0x1B, 0x65, 0x41]), "€A");
        // An escape before a septet without an extension: its default char.
        assert_eq!(from_septets(&[0x1B, 0x41]), "A");
        assert_eq!(from_septets(&[0x41, 0x1B]), "A ");
        assert_eq!(to_septets("Ж"), Err(Error::NotGsm7 { ch: 'Ж' }));
    }

    #[test]
    fn packing_is_the_well_known_hello_and_salut() {
        // "hellohello" (TS 23.038 §6.1.2.1.1's scheme; the classic example).
        let s = to_septets("hellohello").unwrap();
        assert_eq!(hex(&pack(&s, 0)), "e8329bfd4697d9ec37");
        // The seed's "salut".
        assert_eq!(hex(&pack(&to_septets("salut").unwrap(), 0)), "f330bb4e07");
        for fill in 0..7 {
            let p = pack(&s, fill);
            assert_eq!(p[0] & ((1 << fill) - 1), 0);
            assert_eq!(unpack(&p, fill, s.len()).unwrap(), s);
        }
        assert!(unpack(&[0xe8], 0, 2).is_err());
    }

    #[test]
    fn the_alphabet_is_chosen_by_the_text() {
        assert_eq!(Alphabet::for_text("Hi {you} €5"), Alphabet::Gsm7);
        assert_eq!(Alphabet::units(Alphabet::Gsm7, "Hi {you} €5"), Some(14));
        assert_eq!(Alphabet::for_text("Привет"), Alphabet::Ucs2);
        assert_eq!(Alphabet::Ucs2.units("a😀"), Some(3));
        assert_eq!(to_ucs2("a😀"), vec![0, 0x61, 0xD8, 0x3D, 0xDE, 0x00]);
        let u = ucs2_units(&to_ucs2("a😀")).unwrap();
        assert_eq!(from_ucs2_units(&u).unwrap(), "a😀");
        assert_eq!(from_ucs2_units(&u[..2]), Err(Error::InvalidUcs2));
        assert_eq!(ucs2_units(&[0]), Err(Error::InvalidUcs2));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
