//! Concatenated short messages (TS 23.040 §9.2.3.24.1 and §9.2.3.24.8):
//! splitting a long text into parts that each carry a concatenation
//! element, and reassembling received parts.

use std::collections::VecDeque;

use super::Error;
use super::gsm7::{self, Alphabet};
use super::tpdu::{Body, Concat, MAX_OCTETS, MAX_SEPTETS, UserData};

/// Splits `text` into the user data of as few parts as it needs, in the
/// alphabet [`Alphabet::for_text`] chooses. A text that fits one message
/// (160 septets, 70 UCS-2 units) is one part without header; a longer one
/// gets a concatenation element with `reference` in each part: with an
/// 8-bit reference (`wide` false) a part holds 153 septets or 67 UCS-2
/// units, with a 16-bit one 152 or 66. An escape pair or a surrogate pair
/// is never split across parts. More than 255 parts is an error.
pub fn split(text: &str, reference: u16, wide: bool) -> Result<Vec<UserData>, Error> {
    let alphabet = Alphabet::for_text(text);
    let header = if wide { 7 } else { 6 };
    let (single, per_part) = match alphabet {
        Alphabet::Gsm7 => (MAX_SEPTETS, (MAX_OCTETS - header) * 8 / 7),
        _ => (MAX_OCTETS / 2, (MAX_OCTETS - header) / 2),
    };
    let total = alphabet.units(text).unwrap_or(usize::MAX);
    if total <= single {
        return Ok(vec![UserData::text(text)]);
    }
    // Cut before the character that would overflow the part.
    let mut chunks: Vec<&str> = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, c) in text.char_indices() {
        let n = match alphabet {
            Alphabet::Gsm7 => gsm7::char_septets(c).map_or(1, <[u8]>::len),
            _ => c.len_utf16(),
        };
        if used + n > per_part {
            chunks.push(text.get(start..i).unwrap_or_default());
            (start, used) = (i, 0);
        }
        used += n;
    }
    chunks.push(text.get(start..).unwrap_or_default());
    let count = u8::try_from(chunks.len()).map_err(|_| Error::TooLong {
        field: "concatenated message",
        len: chunks.len(),
        max: 255,
    })?;
    let reference = if wide { reference } else { reference & 0xFF };
    Ok(chunks
        .into_iter()
        .zip(1..=count)
        .map(|(chunk, seq)| UserData {
            header: Some(vec![
                Concat {
                    reference,
                    wide,
                    total: count,
                    seq,
                }
                .ie(),
            ]),
            body: match alphabet {
                Alphabet::Gsm7 => Body::Gsm7(chunk.to_owned()),
                _ => Body::Ucs2(chunk.encode_utf16().collect()),
            },
        })
        .collect())
}

/// Splits 8-bit `data` as [`split`] splits a text: one part without
/// header up to 140 octets, else parts of 134 octets (133 with a 16-bit
/// reference), each with a concatenation element.
pub fn split_data(data: &[u8], reference: u16, wide: bool) -> Result<Vec<UserData>, Error> {
    if data.len() <= MAX_OCTETS {
        return Ok(vec![UserData {
            header: None,
            body: Body::Data8(data.to_vec()),
        }]);
    }
    let per_part = MAX_OCTETS - if wide { 7 } else { 6 };
    let chunks: Vec<&[u8]> = data.chunks(per_part).collect();
    let count = u8::try_from(chunks.len()).map_err(|_| Error::TooLong {
        field: "concatenated message",
        len: chunks.len(),
        max: 255,
    })?;
    let reference = if wide { reference } else { reference & 0xFF };
    Ok(chunks
        .into_iter()
        .zip(1..=count)
        .map(|(chunk, seq)| UserData {
            header: Some(vec![
                Concat {
                    reference,
                    wide,
                    total: count,
                    seq,
                }
                .ie(),
            ]),
            body: Body::Data8(chunk.to_vec()),
        })
        .collect())
}

/// A message whose parts are being collected.
#[derive(Debug)]
struct Pending {
    originator: String,
    reference: u16,
    wide: bool,
    parts: Vec<Option<Body>>,
}

/// Collects the parts of concatenated messages by originator, reference
/// and number of parts, in any order, and gives each message's body when
/// its last part arrives. A part received twice is ignored. At most
/// `capacity` messages are pending: a part of one more drops the oldest,
/// so memory stays bounded (a message holds at most 255 parts of 140
/// octets). The application drops stale messages by its own clock with
/// [`Reassembler::clear`].
#[derive(Debug)]
pub struct Reassembler {
    capacity: usize,
    pending: VecDeque<Pending>,
}

impl Reassembler {
    /// A reassembler that holds at most `capacity` (at least 1) pending
    /// messages.
    pub fn new(capacity: usize) -> Reassembler {
        Reassembler {
            capacity: capacity.max(1),
            pending: VecDeque::new(),
        }
    }

    /// How many messages are waiting for parts.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Drops every pending message.
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Adds one received user data from `originator`. Returns the whole
    /// message's body when this completes it, the body itself when it is
    /// not a part, `None` while parts are missing or for a duplicate.
    /// A part numbered 0 or beyond its total is an error. The body of
    /// parts in different alphabets is UCS-2; 8-bit data cannot be joined
    /// to text ([`Error::NotText`]).
    pub fn push(&mut self, originator: &str, user_data: &UserData) -> Result<Option<Body>, Error> {
        let Some(c) = user_data.concat() else {
            return Ok(Some(user_data.body.clone()));
        };
        if c.seq == 0 || c.seq > c.total {
            return Err(Error::InvalidField {
                field: "concatenation sequence number",
                value: usize::from(c.seq),
            });
        }
        if c.total == 1 {
            return Ok(Some(user_data.body.clone()));
        }
        let at = self.pending.iter().position(|p| {
            p.originator == originator
                && p.reference == c.reference
                && p.wide == c.wide
                && p.parts.len() == usize::from(c.total)
        });
        let at = match at {
            Some(at) => at,
            None => {
                if self.pending.len() >= self.capacity {
                    self.pending.pop_front();
                }
                self.pending.push_back(Pending {
                    originator: originator.to_owned(),
                    reference: c.reference,
                    wide: c.wide,
                    parts: vec![None; usize::from(c.total)],
                });
                self.pending.len() - 1
            }
        };
        let Some(p) = self.pending.get_mut(at) else {
            return Ok(None);
        };
        if let Some(slot @ None) = p.parts.get_mut(usize::from(c.seq) - 1) {
            *slot = Some(user_data.body.clone());
        }
        if p.parts.iter().any(Option::is_none) {
            return Ok(None);
        }
        let Some(p) = self.pending.remove(at) else {
            return Ok(None);
        };
        join(p.parts.into_iter().flatten().collect()).map(Some)
    }
}

/// One body of the parts' bodies, in order.
fn join(parts: Vec<Body>) -> Result<Body, Error> {
    if parts.iter().all(|b| matches!(b, Body::Data8(_))) {
        return Ok(Body::Data8(
            parts
                .into_iter()
                .flat_map(|b| match b {
                    Body::Data8(d) => d,
                    _ => Vec::new(),
                })
                .collect(),
        ));
    }
    if parts.iter().all(|b| matches!(b, Body::Gsm7(_))) {
        return Ok(Body::Gsm7(
            parts
                .into_iter()
                .map(|b| match b {
                    Body::Gsm7(s) => s,
                    _ => String::new(),
                })
                .collect(),
        ));
    }
    let mut units = Vec::new();
    for b in parts {
        match b {
            Body::Gsm7(s) => units.extend(s.encode_utf16()),
            Body::Ucs2(u) => units.extend(u),
            Body::Data8(_) => return Err(Error::NotText),
        }
    }
    Ok(Body::Ucs2(units))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::tpdu::Dcs;

    fn texts(parts: &[UserData]) -> Vec<String> {
        parts.iter().map(|p| p.body.text().unwrap()).collect()
    }

    #[test]
    fn short_texts_are_one_part_without_header() {
        let p = split(&"a".repeat(160), 1, false).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].header, None);
        let p = split(&"я".repeat(70), 1, false).unwrap();
        assert_eq!((p.len(), p[0].dcs()), (1, Dcs::UCS2));
    }

    #[test]
    fn parts_hold_153_septets_or_67_units() {
        let p = split(&"a".repeat(161), 7, false).unwrap();
        assert_eq!(
            p.iter()
                .map(|u| gsm7::septet_count(&u.body.text().unwrap()).unwrap())
                .collect::<Vec<_>>(),
            [153, 8]
        );
        assert_eq!(
            p[1].concat(),
            Some(Concat {
                reference: 7,
                wide: false,
                total: 2,
                seq: 2
            })
        );
        let p = split(&"a".repeat(305), 7, true).unwrap();
        assert_eq!(
            texts(&p).iter().map(String::len).collect::<Vec<_>>(),
            [152, 152, 1]
        );
        let p = split(&"я".repeat(71), 7, false).unwrap();
        assert_eq!(
            texts(&p)
                .iter()
                .map(|t| t.chars().count())
                .collect::<Vec<_>>(),
            [67, 4]
        );
        // Every part encodes within the limits.
        for u in p {
            let mut out = Vec::new();
            u.encode(u.dcs(), &mut out).unwrap();
            assert!(out.len() <= 141);
        }
    }

    #[test]
    fn escape_and_surrogate_pairs_stay_whole() {
        let t = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let p = split(&t, 1, false).unwrap();
        assert_eq!(texts(&p)[0], "a".repeat(152));
        assert!(texts(&p)[1].starts_with('€'));
        let t = format!("{}😀{}", "я".repeat(66), "b".repeat(10));
        let p = split(&t, 1, false).unwrap();
        assert_eq!(texts(&p)[0], "я".repeat(66));
        assert_eq!(texts(&p).concat(), t);
    }

    #[test]
    fn data_splits_into_134_octet_parts_and_joins() {
        let data: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let parts = split_data(&data, 9, false).unwrap();
        assert_eq!(parts.len(), 3);
        let mut r = Reassembler::new(1);
        assert_eq!(r.push("x", &parts[2]).unwrap(), None);
        assert_eq!(r.push("x", &parts[0]).unwrap(), None);
        assert_eq!(r.push("x", &parts[1]).unwrap(), Some(Body::Data8(data)));
        for p in parts {
            let mut out = Vec::new();
            p.encode(Dcs::DATA8, &mut out).unwrap();
            assert!(out.len() <= 141);
        }
        assert_eq!(split_data(&[1; 140], 9, true).unwrap()[0].header, None);
        assert_eq!(split_data(&[1; 141], 9, true).unwrap().len(), 2);
    }

    #[test]
    fn parts_reassemble_in_any_order_once() {
        let t: String = (0..500)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let parts = split(&t, 300, true).unwrap();
        assert_eq!(parts.len(), 4);
        let mut r = Reassembler::new(4);
        // An unrelated message with the same reference from someone else.
        assert_eq!(r.push("other", &parts[0]).unwrap(), None);
        for i in [3, 1, 1, 0] {
            assert_eq!(r.push("+336", &parts[i]).unwrap(), None);
        }
        let whole = r.push("+336", &parts[2]).unwrap().unwrap();
        assert_eq!(whole.text().unwrap(), t);
        assert_eq!(r.pending(), 1);
        // Bounded: a fifth message drops the oldest.
        for o in 0..5 {
            r.push(&o.to_string(), &parts[0]).unwrap();
        }
        assert_eq!(r.pending(), 4);
        let bad = UserData {
            header: Some(vec![
                Concat {
                    reference: 1,
                    wide: false,
                    total: 2,
                    seq: 3,
                }
                .ie(),
            ]),
            body: Body::Gsm7(String::new()),
        };
        assert!(r.push("x", &bad).is_err());
    }
}
