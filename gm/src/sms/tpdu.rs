//! The transfer-layer PDUs of TS 23.040 §9.2: SMS-SUBMIT, SMS-DELIVER,
//! SMS-STATUS-REPORT, SMS-SUBMIT-REPORT and SMS-DELIVER-REPORT (each
//! report for RP-ACK and for RP-ERROR), with their fields (§9.2.3) and the
//! address (§9.1.2.5) and time-stamp (§9.2.3.11) codings.

use super::Error;
use super::gsm7::{self, Alphabet};

/// Which way a PDU goes: from the mobile station to the network (the
/// service centre), or from the network to the mobile station. With the
/// message type indicator it tells which PDU the bytes are (TS 23.040
/// §9.2.3.1, TS 24.011 §8.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// MS to network (mobile originated: SMS-SUBMIT, SMS-DELIVER-REPORT).
    MsToNetwork,
    /// Network to MS (mobile terminated: SMS-DELIVER, SMS-STATUS-REPORT,
    /// SMS-SUBMIT-REPORT).
    NetworkToMs,
}

/// A cursor over a PDU that reads fields by name and never panics.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, Error> {
        let (&b, rest) = self.bytes.split_first().ok_or(Error::Truncated { field })?;
        self.bytes = rest;
        Ok(b)
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Error> {
        if n > self.bytes.len() {
            return Err(Error::Truncated { field });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Ok when every byte was read.
    pub(crate) fn finish(&self) -> Result<(), Error> {
        match self.bytes.len() {
            0 => Ok(()),
            count => Err(Error::TrailingBytes { count }),
        }
    }
}

/// A TP or RP address: type of number, numbering plan and the number
/// (TS 23.040 §9.1.2.5, TS 24.011 §8.2.5.1-2).
///
/// `number` holds the digits (`0`-`9`, `*`, `#`, `a`, `b`, `c` for the
/// semi-octets 10 to 14), or the text of an alphanumeric address (type of
/// number 5, GSM 7-bit coded; TP addresses only).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// Type of number (3 bits): 0 unknown, 1 international, 2 national,
    /// 3 network specific, 4 subscriber, 5 alphanumeric, 6 abbreviated.
    pub ton: u8,
    /// Numbering plan identification (4 bits): 1 E.164, 0 unknown...
    pub npi: u8,
    /// The digits, or the alphanumeric text.
    pub number: String,
}

/// Type of number 5: the number is GSM 7-bit text.
const TON_ALPHANUMERIC: u8 = 5;
/// At most 20 digits: the 10 octets after the type of address.
const MAX_DIGITS: usize = 20;
/// At most 11 characters: 10 octets of packed septets.
const MAX_ALPHANUMERIC_SEPTETS: usize = 11;

impl Address {
    /// An international E.164 number (type 1, plan 1), digits without `+`.
    pub fn international(digits: &str) -> Address {
        Address {
            ton: 1,
            npi: 1,
            number: digits.to_owned(),
        }
    }

    /// An alphanumeric originator, e.g. a sender name (type 5, plan 0).
    pub fn alphanumeric(text: &str) -> Address {
        Address {
            ton: TON_ALPHANUMERIC,
            npi: 0,
            number: text.to_owned(),
        }
    }

    /// Whether the number is GSM 7-bit text (type of number 5).
    pub fn is_alphanumeric(&self) -> bool {
        self.ton == TON_ALPHANUMERIC
    }

    fn type_of_address(&self) -> u8 {
        0x80 | (self.ton & 7) << 4 | (self.npi & 0x0F)
    }

    fn from_type(toa: u8, number: String) -> Address {
        Address {
            ton: (toa >> 4) & 7,
            npi: toa & 0x0F,
            number,
        }
    }

    /// Reads a TP address: the number of useful semi-octets, the type of
    /// address, the value (TS 23.040 §9.1.2.5).
    pub(crate) fn decode_tp(r: &mut Reader<'_>, field: &'static str) -> Result<Address, Error> {
        let len = usize::from(r.u8(field)?);
        let toa = r.u8(field)?;
        let value = r.take(len.div_ceil(2), field)?;
        if (toa >> 4) & 7 == TON_ALPHANUMERIC {
            if len > 2 * MAX_DIGITS {
                return Err(Error::InvalidField { field, value: len });
            }
            let septets = gsm7::unpack(value, 0, len * 4 / 7)?;
            return Ok(Address::from_type(toa, gsm7::from_septets(&septets)));
        }
        if len > MAX_DIGITS {
            return Err(Error::InvalidField { field, value: len });
        }
        Ok(Address::from_type(
            toa,
            bcd_digits(value, Some(len), field)?,
        ))
    }

    /// Writes a TP address.
    pub(crate) fn encode_tp(&self, out: &mut Vec<u8>, field: &'static str) -> Result<(), Error> {
        if self.is_alphanumeric() {
            let septets = gsm7::to_septets(&self.number)?;
            if septets.len() > MAX_ALPHANUMERIC_SEPTETS {
                return Err(Error::TooLong {
                    field,
                    len: septets.len(),
                    max: MAX_ALPHANUMERIC_SEPTETS,
                });
            }
            // Useful semi-octets: those the septets' bits reach into.
            out.push((septets.len() * 7).div_ceil(4) as u8);
            out.push(self.type_of_address());
            out.extend_from_slice(&gsm7::pack(&septets, 0));
            return Ok(());
        }
        let value = bcd_encode(&self.number, field)?;
        out.push(self.number.len() as u8);
        out.push(self.type_of_address());
        out.extend_from_slice(&value);
        Ok(())
    }

    /// Reads the value part of an RP address or of a service-centre
    /// address: the type of address and BCD digits, `F`-filled (TS 24.011
    /// §8.2.5.1). `value` is what the length octet covers.
    pub(crate) fn decode_rp(value: &[u8], field: &'static str) -> Result<Address, Error> {
        let (&toa, digits) = value.split_first().ok_or(Error::Truncated { field })?;
        if digits.len() > MAX_DIGITS / 2 {
            return Err(Error::InvalidField {
                field,
                value: value.len(),
            });
        }
        Ok(Address::from_type(toa, bcd_digits(digits, None, field)?))
    }

    /// Writes an RP address with its length octet: BCD digits whatever
    /// the type of number says.
    pub(crate) fn encode_rp(&self, out: &mut Vec<u8>, field: &'static str) -> Result<(), Error> {
        let value = bcd_encode(&self.number, field)?;
        out.push(value.len() as u8 + 1);
        out.push(self.type_of_address());
        out.extend_from_slice(&value);
        Ok(())
    }
}

const BCD_DIGITS: &[u8; 15] = b"0123456789*#abc";

/// The digits of BCD semi-octets, low nibble first. With `count`, that
/// many digits are read and a last odd high nibble is filler; without, a
/// high nibble `F` ends the number in the last octet.
fn bcd_digits(octets: &[u8], count: Option<usize>, field: &'static str) -> Result<String, Error> {
    let nibbles = octets.iter().flat_map(|b| [b & 0x0F, b >> 4]);
    let total = octets.len() * 2;
    let want = match count {
        Some(n) => n,
        None if octets.last().is_some_and(|b| b >> 4 == 0x0F) => total - 1,
        None => total,
    };
    let mut out = String::with_capacity(want);
    for n in nibbles.take(want) {
        let d = BCD_DIGITS.get(usize::from(n)).ok_or(Error::InvalidField {
            field,
            value: usize::from(n),
        })?;
        out.push(char::from(*d));
    }
    Ok(out)
}

/// BCD semi-octets of `digits`, low nibble first, an `F` filling an odd
/// count.
fn bcd_encode(digits: &str, field: &'static str) -> Result<Vec<u8>, Error> {
    if digits.len() > MAX_DIGITS {
        return Err(Error::TooLong {
            field,
            len: digits.len(),
            max: MAX_DIGITS,
        });
    }
    let mut nibbles = Vec::with_capacity(digits.len() + 1);
    for c in digits.bytes() {
        let n = BCD_DIGITS
            .iter()
            .position(|&d| d == c.to_ascii_lowercase())
            .ok_or(Error::InvalidField {
                field,
                value: usize::from(c),
            })?;
        nibbles.push(n as u8);
    }
    if nibbles.len() % 2 == 1 {
        nibbles.push(0x0F);
    }
    Ok(nibbles
        .chunks_exact(2)
        .map(|p| p.first().copied().unwrap_or(0) | p.get(1).copied().unwrap_or(0) << 4)
        .collect())
}

/// A TP-SCTS, TP-DT or absolute TP-VP (TS 23.040 §9.2.3.11): local time
/// as seven swapped-nibble BCD octets, and the offset from UTC in quarter
/// hours. The decoder checks the digits, not the calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Year of the century, 0 to 99.
    pub year: u8,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day of the month.
    pub day: u8,
    /// Hour, 0 to 23.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
    /// Local time minus UTC, in quarters of an hour (-79 to 79).
    pub tz_quarters: i8,
}

impl Timestamp {
    /// The UTC time `unix_secs` seconds after 1970-01-01 (a service
    /// centre's TP-SCTS; the caller reads the clock), time zone 0.
    pub fn utc(unix_secs: u64) -> Timestamp {
        let days = unix_secs / 86_400;
        let secs = unix_secs % 86_400;
        // Days to a proleptic Gregorian date (H. Hinnant's civil_from_days).
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        // Every value below is in range by construction (year % 100,
        // month <= 12, day <= 31, hour < 24, minute and second < 60).
        let narrow = |v: u64| u8::try_from(v).unwrap_or(0);
        Timestamp {
            year: narrow(year % 100),
            month: narrow(month),
            day: narrow(day),
            hour: narrow(secs / 3600),
            minute: narrow(secs / 60 % 60),
            second: narrow(secs % 60),
            tz_quarters: 0,
        }
    }

    fn decode(r: &mut Reader<'_>, field: &'static str) -> Result<Timestamp, Error> {
        let b = r.take(7, field)?;
        let mut v = [0u8; 6];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = swapped_bcd(b.get(i).copied().unwrap_or(0), field)?;
        }
        let tz = b.get(6).copied().unwrap_or(0);
        let quarters = swapped_bcd(tz & !0x08, field)? as i8;
        let [year, month, day, hour, minute, second] = v;
        Ok(Timestamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            tz_quarters: if tz & 0x08 != 0 { -quarters } else { quarters },
        })
    }

    fn encode(&self, out: &mut Vec<u8>, field: &'static str) -> Result<(), Error> {
        for v in [
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
        ] {
            out.push(to_swapped_bcd(v, field)?);
        }
        let q = self.tz_quarters.unsigned_abs();
        if q > 79 {
            return Err(Error::InvalidField {
                field,
                value: usize::from(q),
            });
        }
        let sign = if self.tz_quarters < 0 { 0x08 } else { 0 };
        out.push(to_swapped_bcd(q, field)? | sign);
        Ok(())
    }
}

/// A value 0-99 from an octet whose low nibble is the tens digit.
fn swapped_bcd(b: u8, field: &'static str) -> Result<u8, Error> {
    let (tens, units) = (b & 0x0F, b >> 4);
    if tens > 9 || units > 9 {
        return Err(Error::InvalidField {
            field,
            value: usize::from(b),
        });
    }
    Ok(tens * 10 + units)
}

fn to_swapped_bcd(v: u8, field: &'static str) -> Result<u8, Error> {
    if v > 99 {
        return Err(Error::InvalidField {
            field,
            value: usize::from(v),
        });
    }
    Ok((v / 10) | (v % 10) << 4)
}

/// TP-VP, in the format TP-VPF names (TS 23.040 §9.2.3.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValidityPeriod {
    /// Relative (TP-VPF 2): 0-143 are 5 minutes each plus 5 minutes,
    /// 144-167 half hours after 12 hours, 168-196 days, 197-255 weeks.
    Relative(u8),
    /// Absolute (TP-VPF 3): the time it ends.
    Absolute(Timestamp),
    /// Enhanced (TP-VPF 1): its seven octets, undecoded (§9.2.3.12.3).
    Enhanced([u8; 7]),
}

impl ValidityPeriod {
    /// TP-VPF, bits 3-4 of the first octet.
    fn vpf(&self) -> u8 {
        match self {
            ValidityPeriod::Relative(_) => 2,
            ValidityPeriod::Absolute(_) => 3,
            ValidityPeriod::Enhanced(_) => 1,
        }
    }

    /// A relative period's length in minutes (TS 23.040 §9.2.3.12.1).
    pub fn relative_minutes(v: u8) -> u32 {
        let v = u32::from(v);
        match v {
            0..=143 => (v + 1) * 5,
            144..=167 => 12 * 60 + (v - 143) * 30,
            168..=196 => (v - 166) * 24 * 60,
            _ => (v - 192) * 7 * 24 * 60,
        }
    }
}

/// TP-DCS, the data coding scheme (TS 23.038 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dcs(pub u8);

impl Dcs {
    /// GSM 7-bit default alphabet, no message class.
    pub const GSM7: Dcs = Dcs(0x00);
    /// 8-bit data, no message class.
    pub const DATA8: Dcs = Dcs(0x04);
    /// UCS-2, no message class.
    pub const UCS2: Dcs = Dcs(0x08);

    /// The coding of the user data. Compressed data (bit 5 in the general
    /// coding groups) is 8-bit data here: this codec does not decompress.
    /// Reserved alphabets and coding groups count as GSM 7-bit, as TS
    /// 23.038 §4 asks of a receiver.
    pub fn alphabet(self) -> Alphabet {
        let b = self.0;
        match b >> 4 {
            0x0..=0x7 if b & 0x20 != 0 => Alphabet::Data8,
            0x0..=0x7 => match (b >> 2) & 3 {
                1 => Alphabet::Data8,
                2 => Alphabet::Ucs2,
                _ => Alphabet::Gsm7,
            },
            0xE => Alphabet::Ucs2,
            0xF if b & 0x04 != 0 => Alphabet::Data8,
            _ => Alphabet::Gsm7,
        }
    }

    /// The DCS without message class for an alphabet.
    pub fn for_alphabet(alphabet: Alphabet) -> Dcs {
        match alphabet {
            Alphabet::Gsm7 => Dcs::GSM7,
            Alphabet::Data8 => Dcs::DATA8,
            Alphabet::Ucs2 => Dcs::UCS2,
        }
    }
}

/// One information element of a user data header (TS 23.040
/// §9.2.3.24).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ie {
    /// Its identifier (IEI): 0x00 and 0x08 concatenation...
    pub iei: u8,
    /// Its data, without IEI and length.
    pub data: Vec<u8>,
}

/// A concatenated message's part (TS 23.040 §9.2.3.24.1, §9.2.3.24.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Concat {
    /// The reference shared by the parts.
    pub reference: u16,
    /// Whether the reference is 16-bit (IEI 0x08) rather than 8-bit
    /// (IEI 0x00).
    pub wide: bool,
    /// How many parts the message has (1-255).
    pub total: u8,
    /// This part's number, from 1.
    pub seq: u8,
}

impl Concat {
    /// Its information element.
    pub fn ie(&self) -> Ie {
        let [hi, lo] = self.reference.to_be_bytes();
        if self.wide {
            Ie {
                iei: 0x08,
                data: vec![hi, lo, self.total, self.seq],
            }
        } else {
            Ie {
                iei: 0x00,
                data: vec![lo, self.total, self.seq],
            }
        }
    }

    /// The concatenation described by an information element, if it is
    /// one (IEI 0x00 or 0x08 with its length).
    pub fn from_ie(ie: &Ie) -> Option<Concat> {
        match (ie.iei, ie.data.as_slice()) {
            (0x00, &[r, total, seq]) => Some(Concat {
                reference: u16::from(r),
                wide: false,
                total,
                seq,
            }),
            (0x08, &[hi, lo, total, seq]) => Some(Concat {
                reference: u16::from_be_bytes([hi, lo]),
                wide: true,
                total,
                seq,
            }),
            _ => None,
        }
    }
}

/// The coded content of TP-UD, after any header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// GSM 7-bit text.
    Gsm7(String),
    /// UCS-2 units (UTF-16 in practice; a part of a concatenated message
    /// may end inside a surrogate pair).
    Ucs2(Vec<u16>),
    /// 8-bit data.
    Data8(Vec<u8>),
}

impl Body {
    fn alphabet(&self) -> Alphabet {
        match self {
            Body::Gsm7(_) => Alphabet::Gsm7,
            Body::Ucs2(_) => Alphabet::Ucs2,
            Body::Data8(_) => Alphabet::Data8,
        }
    }

    /// The text, for GSM 7-bit and UCS-2.
    pub fn text(&self) -> Result<String, Error> {
        match self {
            Body::Gsm7(s) => Ok(s.clone()),
            Body::Ucs2(u) => gsm7::from_ucs2_units(u),
            Body::Data8(_) => Err(Error::NotText),
        }
    }
}

/// TP-UD: an optional user data header and the body (TS 23.040
/// §9.2.3.24). TP-UDHI is set when `header` is `Some`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserData {
    /// The header's information elements.
    pub header: Option<Vec<Ie>>,
    /// The body.
    pub body: Body,
}

/// At most 160 septets or 140 octets of user data (TS 23.040 §9.2.3.16).
pub const MAX_SEPTETS: usize = 160;
/// At most 140 octets of user data.
pub const MAX_OCTETS: usize = 140;

impl UserData {
    /// `text` without header, in the alphabet [`Alphabet::for_text`]
    /// chooses.
    pub fn text(text: &str) -> UserData {
        let body = match Alphabet::for_text(text) {
            Alphabet::Gsm7 => Body::Gsm7(text.to_owned()),
            _ => Body::Ucs2(text.encode_utf16().collect()),
        };
        UserData { header: None, body }
    }

    /// The DCS without message class for the body's alphabet.
    pub fn dcs(&self) -> Dcs {
        Dcs::for_alphabet(self.body.alphabet())
    }

    /// The concatenation element of the header, if any.
    pub fn concat(&self) -> Option<Concat> {
        self.header.as_ref()?.iter().find_map(Concat::from_ie)
    }

    fn header_bytes(&self) -> Result<Vec<u8>, Error> {
        let Some(ies) = &self.header else {
            return Ok(Vec::new());
        };
        let mut h = vec![0u8];
        for ie in ies {
            h.push(ie.iei);
            h.push(u8::try_from(ie.data.len()).map_err(|_| Error::TooLong {
                field: "TP-UDH",
                len: ie.data.len(),
                max: MAX_OCTETS,
            })?);
            h.extend_from_slice(&ie.data);
        }
        if h.len() > MAX_OCTETS {
            return Err(Error::TooLong {
                field: "TP-UDH",
                len: h.len(),
                max: MAX_OCTETS,
            });
        }
        let udhl = (h.len() - 1) as u8;
        if let Some(l) = h.first_mut() {
            *l = udhl;
        }
        Ok(h)
    }

    /// Writes TP-UDL and TP-UD as `dcs` codes them.
    pub(crate) fn encode(&self, dcs: Dcs, out: &mut Vec<u8>) -> Result<(), Error> {
        if dcs.alphabet() != self.body.alphabet() {
            return Err(Error::DcsMismatch { dcs: dcs.0 });
        }
        let udh = self.header_bytes()?;
        match &self.body {
            Body::Gsm7(text) => {
                let septets = gsm7::to_septets(text)?;
                let header_septets = (udh.len() * 8).div_ceil(7);
                let fill = (header_septets * 7 - udh.len() * 8) as u8;
                let udl = header_septets + septets.len();
                if udl > MAX_SEPTETS {
                    return Err(Error::TooLong {
                        field: "TP-UD",
                        len: udl,
                        max: MAX_SEPTETS,
                    });
                }
                out.push(udl as u8);
                out.extend_from_slice(&udh);
                out.extend_from_slice(&gsm7::pack(&septets, fill));
            }
            Body::Ucs2(units) => {
                let udl = udh.len() + 2 * units.len();
                if udl > MAX_OCTETS {
                    return Err(Error::TooLong {
                        field: "TP-UD",
                        len: udl,
                        max: MAX_OCTETS,
                    });
                }
                out.push(udl as u8);
                out.extend_from_slice(&udh);
                out.extend(units.iter().flat_map(|u| u.to_be_bytes()));
            }
            Body::Data8(data) => {
                let udl = udh.len() + data.len();
                if udl > MAX_OCTETS {
                    return Err(Error::TooLong {
                        field: "TP-UD",
                        len: udl,
                        max: MAX_OCTETS,
                    });
                }
                out.push(udl as u8);
                out.extend_from_slice(&udh);
                out.extend_from_slice(data);
            }
        }
        Ok(())
    }

    /// Reads TP-UDL and TP-UD.
    pub(crate) fn decode(r: &mut Reader<'_>, dcs: Dcs, udhi: bool) -> Result<UserData, Error> {
        let udl = usize::from(r.u8("TP-UDL")?);
        let alphabet = dcs.alphabet();
        let (max, octets) = match alphabet {
            Alphabet::Gsm7 => (MAX_SEPTETS, (udl * 7).div_ceil(8)),
            _ => (MAX_OCTETS, udl),
        };
        if udl > max {
            return Err(Error::InvalidField {
                field: "TP-UDL",
                value: udl,
            });
        }
        let ud = r.take(octets, "TP-UD")?;
        let (header, header_len) = if udhi {
            let (&udhl, rest) = ud
                .split_first()
                .ok_or(Error::Truncated { field: "TP-UDH" })?;
            let ies = rest
                .get(..usize::from(udhl))
                .ok_or(Error::Truncated { field: "TP-UDH" })?;
            (Some(decode_ies(ies)?), usize::from(udhl) + 1)
        } else {
            (None, 0)
        };
        let after = ud.get(header_len..).unwrap_or_default();
        let body = match alphabet {
            Alphabet::Gsm7 => {
                let header_septets = (header_len * 8).div_ceil(7);
                let count = udl.checked_sub(header_septets).ok_or(Error::InvalidField {
                    field: "TP-UDL",
                    value: udl,
                })?;
                let fill = (header_septets * 7 - header_len * 8) as u8;
                Body::Gsm7(gsm7::from_septets(&gsm7::unpack(after, fill, count)?))
            }
            Alphabet::Ucs2 => Body::Ucs2(gsm7::ucs2_units(after)?),
            Alphabet::Data8 => Body::Data8(after.to_vec()),
        };
        Ok(UserData { header, body })
    }
}

fn decode_ies(mut b: &[u8]) -> Result<Vec<Ie>, Error> {
    let mut out = Vec::new();
    while let [iei, len, rest @ ..] = b {
        let data = rest
            .get(..usize::from(*len))
            .ok_or(Error::Truncated { field: "TP-UDH" })?;
        out.push(Ie {
            iei: *iei,
            data: data.to_vec(),
        });
        b = rest.get(usize::from(*len)..).unwrap_or_default();
    }
    if !b.is_empty() {
        return Err(Error::Truncated { field: "TP-UDH" });
    }
    Ok(out)
}

/// SMS-SUBMIT (TS 23.040 §9.2.2.2), MS to network.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Submit {
    /// TP-RD: the service centre rejects a duplicate of a pending message.
    pub reject_duplicates: bool,
    /// TP-SRR: a status report is requested.
    pub status_report_request: bool,
    /// TP-RP: a reply path is set.
    pub reply_path: bool,
    /// TP-MR.
    pub message_ref: u8,
    /// TP-DA.
    pub destination: Address,
    /// TP-PID.
    pub pid: u8,
    /// TP-DCS.
    pub dcs: Dcs,
    /// TP-VP, its format giving TP-VPF.
    pub validity: Option<ValidityPeriod>,
    /// TP-UD.
    pub user_data: UserData,
}

impl Submit {
    /// An SMS-SUBMIT of `user_data` to `destination`: its DCS without
    /// message class, no validity period, no flags, TP-PID 0.
    pub fn new(message_ref: u8, destination: Address, user_data: UserData) -> Submit {
        Submit {
            reject_duplicates: false,
            status_report_request: false,
            reply_path: false,
            message_ref,
            destination,
            pid: 0,
            dcs: user_data.dcs(),
            validity: None,
            user_data,
        }
    }
}

/// SMS-DELIVER (TS 23.040 §9.2.2.1), network to MS.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Deliver {
    /// More messages are waiting at the service centre (TP-MMS bit 0).
    pub more_messages_to_send: bool,
    /// TP-LP, loop prevention.
    pub loop_prevention: bool,
    /// TP-SRI: a status report will be returned to the sender.
    pub status_report_indication: bool,
    /// TP-RP.
    pub reply_path: bool,
    /// TP-OA.
    pub originator: Address,
    /// TP-PID.
    pub pid: u8,
    /// TP-DCS.
    pub dcs: Dcs,
    /// TP-SCTS.
    pub scts: Timestamp,
    /// TP-UD.
    pub user_data: UserData,
}

impl Deliver {
    /// An SMS-DELIVER of `user_data` from `originator`, time-stamped
    /// `scts`: its DCS without message class, no more messages waiting, no
    /// flags, TP-PID 0.
    pub fn new(originator: Address, scts: Timestamp, user_data: UserData) -> Deliver {
        Deliver {
            more_messages_to_send: false,
            loop_prevention: false,
            status_report_indication: false,
            reply_path: false,
            originator,
            pid: 0,
            dcs: user_data.dcs(),
            scts,
            user_data,
        }
    }
}

/// SMS-STATUS-REPORT (TS 23.040 §9.2.2.3), network to MS.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatusReport {
    /// More messages are waiting (TP-MMS bit 0).
    pub more_messages_to_send: bool,
    /// TP-LP.
    pub loop_prevention: bool,
    /// TP-SRQ: the report is for an SMS-COMMAND rather than an SMS-SUBMIT.
    pub status_report_qualifier: bool,
    /// TP-MR of the message reported on.
    pub message_ref: u8,
    /// TP-RA.
    pub recipient: Address,
    /// TP-SCTS.
    pub scts: Timestamp,
    /// TP-DT, discharge time.
    pub discharge_time: Timestamp,
    /// TP-ST (0 delivered; §9.2.3.15).
    pub status: u8,
    /// TP-PID, when TP-PI says it is present.
    pub pid: Option<u8>,
    /// TP-DCS, when present.
    pub dcs: Option<Dcs>,
    /// TP-UD, when present (coded by `dcs`, or GSM 7-bit without it).
    pub user_data: Option<UserData>,
}

/// SMS-SUBMIT-REPORT (TS 23.040 §9.2.2.2a), network to MS, in an RP-ACK
/// or (with a failure cause) an RP-ERROR.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SubmitReport {
    /// TP-FCS, present for RP-ERROR only.
    pub failure_cause: Option<u8>,
    /// TP-SCTS.
    pub scts: Timestamp,
    /// TP-PID, when present.
    pub pid: Option<u8>,
    /// TP-DCS, when present.
    pub dcs: Option<Dcs>,
    /// TP-UD, when present.
    pub user_data: Option<UserData>,
}

/// SMS-DELIVER-REPORT (TS 23.040 §9.2.2.1a), MS to network, in an RP-ACK
/// or (with a failure cause) an RP-ERROR.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeliverReport {
    /// TP-FCS, present for RP-ERROR only.
    pub failure_cause: Option<u8>,
    /// TP-PID, when present.
    pub pid: Option<u8>,
    /// TP-DCS, when present.
    pub dcs: Option<Dcs>,
    /// TP-UD, when present.
    pub user_data: Option<UserData>,
}

/// A TPDU.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tpdu {
    /// SMS-SUBMIT.
    Submit(Submit),
    /// SMS-DELIVER.
    Deliver(Deliver),
    /// SMS-STATUS-REPORT.
    StatusReport(StatusReport),
    /// SMS-SUBMIT-REPORT.
    SubmitReport(SubmitReport),
    /// SMS-DELIVER-REPORT.
    DeliverReport(DeliverReport),
}

// TS 23.040 §9.2.3: bits of the first octet.
const RD_MMS: u8 = 0x04;
const LP: u8 = 0x08;
const SRR_SRI_SRQ: u8 = 0x20;
const UDHI: u8 = 0x40;
const RP: u8 = 0x80;

fn bit(b: bool, mask: u8) -> u8 {
    if b { mask } else { 0 }
}

impl Tpdu {
    /// Decodes the TPDU of an RP-DATA going `dir`: SMS-SUBMIT (MS to
    /// network), SMS-DELIVER or SMS-STATUS-REPORT (network to MS). Every
    /// byte must belong to it.
    pub fn decode(bytes: &[u8], dir: Direction) -> Result<Tpdu, Error> {
        let mut r = Reader::new(bytes);
        let first = r.u8("TP-MTI")?;
        let t = match (dir, first & 3) {
            (Direction::MsToNetwork, 1) => Tpdu::Submit(decode_submit(first, &mut r)?),
            (Direction::NetworkToMs, 0) => Tpdu::Deliver(decode_deliver(first, &mut r)?),
            (Direction::NetworkToMs, 2) => Tpdu::StatusReport(decode_status_report(first, &mut r)?),
            (_, mti) => {
                return Err(Error::UnsupportedMessageType {
                    field: "TP-MTI",
                    mti,
                });
            }
        };
        r.finish()?;
        Ok(t)
    }

    /// Decodes the TPDU of an RP-ACK (`rp_error` false) or an RP-ERROR
    /// going `dir`: SMS-DELIVER-REPORT (MS to network) or
    /// SMS-SUBMIT-REPORT (network to MS).
    pub fn decode_report(bytes: &[u8], dir: Direction, rp_error: bool) -> Result<Tpdu, Error> {
        let mut r = Reader::new(bytes);
        let first = r.u8("TP-MTI")?;
        let failure_cause = if rp_error {
            Some(r.u8("TP-FCS")?)
        } else {
            None
        };
        let t = match (dir, first & 3) {
            (Direction::MsToNetwork, 0) => {
                let pi = decode_pi(&mut r)?;
                let (pid, dcs, user_data) = decode_optional(first, pi, &mut r)?;
                Tpdu::DeliverReport(DeliverReport {
                    failure_cause,
                    pid,
                    dcs,
                    user_data,
                })
            }
            (Direction::NetworkToMs, 1) => {
                let pi = decode_pi(&mut r)?;
                let scts = Timestamp::decode(&mut r, "TP-SCTS")?;
                let (pid, dcs, user_data) = decode_optional(first, pi, &mut r)?;
                Tpdu::SubmitReport(SubmitReport {
                    failure_cause,
                    scts,
                    pid,
                    dcs,
                    user_data,
                })
            }
            (_, mti) => {
                return Err(Error::UnsupportedMessageType {
                    field: "TP-MTI",
                    mti,
                });
            }
        };
        r.finish()?;
        Ok(t)
    }

    /// The direction this TPDU goes.
    pub fn direction(&self) -> Direction {
        match self {
            Tpdu::Submit(_) | Tpdu::DeliverReport(_) => Direction::MsToNetwork,
            _ => Direction::NetworkToMs,
        }
    }

    /// The user data, if the TPDU has any.
    pub fn user_data(&self) -> Option<&UserData> {
        match self {
            Tpdu::Submit(s) => Some(&s.user_data),
            Tpdu::Deliver(d) => Some(&d.user_data),
            Tpdu::StatusReport(s) => s.user_data.as_ref(),
            Tpdu::SubmitReport(s) => s.user_data.as_ref(),
            Tpdu::DeliverReport(d) => d.user_data.as_ref(),
        }
    }

    /// Encodes the TPDU.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(176);
        match self {
            Tpdu::Submit(s) => {
                let vpf = s.validity.as_ref().map_or(0, ValidityPeriod::vpf);
                out.push(
                    1 | bit(s.reject_duplicates, RD_MMS)
                        | vpf << 3
                        | bit(s.status_report_request, SRR_SRI_SRQ)
                        | bit(s.user_data.header.is_some(), UDHI)
                        | bit(s.reply_path, RP),
                );
                out.push(s.message_ref);
                s.destination.encode_tp(&mut out, "TP-DA")?;
                out.push(s.pid);
                out.push(s.dcs.0);
                match &s.validity {
                    None => {}
                    Some(ValidityPeriod::Relative(v)) => out.push(*v),
                    Some(ValidityPeriod::Absolute(t)) => t.encode(&mut out, "TP-VP")?,
                    Some(ValidityPeriod::Enhanced(b)) => out.extend_from_slice(b),
                }
                s.user_data.encode(s.dcs, &mut out)?;
            }
            Tpdu::Deliver(d) => {
                out.push(
                    bit(!d.more_messages_to_send, RD_MMS)
                        | bit(d.loop_prevention, LP)
                        | bit(d.status_report_indication, SRR_SRI_SRQ)
                        | bit(d.user_data.header.is_some(), UDHI)
                        | bit(d.reply_path, RP),
                );
                d.originator.encode_tp(&mut out, "TP-OA")?;
                out.push(d.pid);
                out.push(d.dcs.0);
                d.scts.encode(&mut out, "TP-SCTS")?;
                d.user_data.encode(d.dcs, &mut out)?;
            }
            Tpdu::StatusReport(s) => {
                out.push(
                    2 | bit(!s.more_messages_to_send, RD_MMS)
                        | bit(s.loop_prevention, LP)
                        | bit(s.status_report_qualifier, SRR_SRI_SRQ)
                        | bit(
                            s.user_data.as_ref().is_some_and(|u| u.header.is_some()),
                            UDHI,
                        ),
                );
                out.push(s.message_ref);
                s.recipient.encode_tp(&mut out, "TP-RA")?;
                s.scts.encode(&mut out, "TP-SCTS")?;
                s.discharge_time.encode(&mut out, "TP-DT")?;
                out.push(s.status);
                // TP-PI is optional here when nothing follows it.
                if s.pid.is_some() || s.dcs.is_some() || s.user_data.is_some() {
                    encode_optional(s.pid, s.dcs, s.user_data.as_ref(), &mut out)?;
                }
            }
            Tpdu::SubmitReport(s) => {
                out.push(
                    1 | bit(
                        s.user_data.as_ref().is_some_and(|u| u.header.is_some()),
                        UDHI,
                    ),
                );
                out.extend(s.failure_cause);
                let mut rest = Vec::new();
                encode_optional(s.pid, s.dcs, s.user_data.as_ref(), &mut rest)?;
                let (pi, tail) = rest
                    .split_first()
                    .ok_or(Error::Truncated { field: "TP-PI" })?;
                out.push(*pi);
                s.scts.encode(&mut out, "TP-SCTS")?;
                out.extend_from_slice(tail);
            }
            Tpdu::DeliverReport(d) => {
                out.push(bit(
                    d.user_data.as_ref().is_some_and(|u| u.header.is_some()),
                    UDHI,
                ));
                out.extend(d.failure_cause);
                encode_optional(d.pid, d.dcs, d.user_data.as_ref(), &mut out)?;
            }
        }
        Ok(out)
    }
}

fn decode_submit(first: u8, r: &mut Reader<'_>) -> Result<Submit, Error> {
    let message_ref = r.u8("TP-MR")?;
    let destination = Address::decode_tp(r, "TP-DA")?;
    let pid = r.u8("TP-PID")?;
    let dcs = Dcs(r.u8("TP-DCS")?);
    let validity = match (first >> 3) & 3 {
        0 => None,
        2 => Some(ValidityPeriod::Relative(r.u8("TP-VP")?)),
        3 => Some(ValidityPeriod::Absolute(Timestamp::decode(r, "TP-VP")?)),
        _ => {
            let b = r.take(7, "TP-VP")?;
            let mut e = [0u8; 7];
            e.copy_from_slice(b);
            Some(ValidityPeriod::Enhanced(e))
        }
    };
    let user_data = UserData::decode(r, dcs, first & UDHI != 0)?;
    Ok(Submit {
        reject_duplicates: first & RD_MMS != 0,
        status_report_request: first & SRR_SRI_SRQ != 0,
        reply_path: first & RP != 0,
        message_ref,
        destination,
        pid,
        dcs,
        validity,
        user_data,
    })
}

fn decode_deliver(first: u8, r: &mut Reader<'_>) -> Result<Deliver, Error> {
    let originator = Address::decode_tp(r, "TP-OA")?;
    let pid = r.u8("TP-PID")?;
    let dcs = Dcs(r.u8("TP-DCS")?);
    let scts = Timestamp::decode(r, "TP-SCTS")?;
    let user_data = UserData::decode(r, dcs, first & UDHI != 0)?;
    Ok(Deliver {
        more_messages_to_send: first & RD_MMS == 0,
        loop_prevention: first & LP != 0,
        status_report_indication: first & SRR_SRI_SRQ != 0,
        reply_path: first & RP != 0,
        originator,
        pid,
        dcs,
        scts,
        user_data,
    })
}

fn decode_status_report(first: u8, r: &mut Reader<'_>) -> Result<StatusReport, Error> {
    let message_ref = r.u8("TP-MR")?;
    let recipient = Address::decode_tp(r, "TP-RA")?;
    let scts = Timestamp::decode(r, "TP-SCTS")?;
    let discharge_time = Timestamp::decode(r, "TP-DT")?;
    let status = r.u8("TP-ST")?;
    let (pid, dcs, user_data) = if r.is_empty() {
        (None, None, None)
    } else {
        let pi = decode_pi(r)?;
        decode_optional(first, pi, r)?
    };
    Ok(StatusReport {
        more_messages_to_send: first & RD_MMS == 0,
        loop_prevention: first & LP != 0,
        status_report_qualifier: first & SRR_SRI_SRQ != 0,
        message_ref,
        recipient,
        scts,
        discharge_time,
        status,
        pid,
        dcs,
        user_data,
    })
}

// TS 23.040 §9.2.3.27: TP-PI bits.
const PI_PID: u8 = 0x01;
const PI_DCS: u8 = 0x02;
const PI_UDL: u8 = 0x04;
const PI_EXT: u8 = 0x80;

/// Reads TP-PI; further TP-PI octets (bit 8 set) are read and ignored.
fn decode_pi(r: &mut Reader<'_>) -> Result<u8, Error> {
    let pi = r.u8("TP-PI")?;
    let mut more = pi;
    while more & PI_EXT != 0 {
        more = r.u8("TP-PI")?;
    }
    Ok(pi)
}

type Optional = (Option<u8>, Option<Dcs>, Option<UserData>);

fn decode_optional(first: u8, pi: u8, r: &mut Reader<'_>) -> Result<Optional, Error> {
    let pid = if pi & PI_PID != 0 {
        Some(r.u8("TP-PID")?)
    } else {
        None
    };
    let dcs = if pi & PI_DCS != 0 {
        Some(Dcs(r.u8("TP-DCS")?))
    } else {
        None
    };
    let user_data = if pi & PI_UDL != 0 {
        Some(UserData::decode(
            r,
            dcs.unwrap_or(Dcs::GSM7),
            first & UDHI != 0,
        )?)
    } else {
        None
    };
    Ok((pid, dcs, user_data))
}

/// Writes TP-PI and the fields it announces.
fn encode_optional(
    pid: Option<u8>,
    dcs: Option<Dcs>,
    user_data: Option<&UserData>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    out.push(
        bit(pid.is_some(), PI_PID) | bit(dcs.is_some(), PI_DCS) | bit(user_data.is_some(), PI_UDL),
    );
    out.extend(pid);
    out.extend(dcs.map(|d| d.0));
    if let Some(ud) = user_data {
        ud.encode(dcs.unwrap_or(Dcs::GSM7), out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn utc_timestamps_from_unix_time() {
        let t = |year, month, day, hour, minute, second| Timestamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            tz_quarters: 0,
        };
        // Python's calendar.timegm gives the seconds.
        assert_eq!(Timestamp::utc(0), t(70, 1, 1, 0, 0, 0));
        assert_eq!(Timestamp::utc(1_796_443_200), t(26, 12, 5, 4, 0, 0));
        assert_eq!(Timestamp::utc(951_868_798), t(0, 2, 29, 23, 59, 58));
        assert_eq!(Timestamp::utc(u64::MAX).tz_quarters, 0);
    }

    #[test]
    fn the_seed_submit_without_its_prefix() {
        let b = unhex("11000A9133163254760000AA05F330BB4E07");
        let Tpdu::Submit(s) = Tpdu::decode(&b, Direction::MsToNetwork).unwrap() else {
            panic!("not a submit");
        };
        assert_eq!(s.destination, Address::international("3361234567"));
        assert_eq!(s.validity, Some(ValidityPeriod::Relative(0xAA)));
        assert_eq!(ValidityPeriod::relative_minutes(0xAA), 4 * 24 * 60);
        assert_eq!(s.user_data.body.text().unwrap(), "salut");
        assert_eq!(Tpdu::Submit(s).encode().unwrap(), b);
    }

    #[test]
    fn the_seed_deliver_without_its_prefix() {
        let b = unhex("040A91331632547600000000000000000005F330BB4E07");
        let t = Tpdu::decode(&b, Direction::NetworkToMs).unwrap();
        let Tpdu::Deliver(d) = &t else {
            panic!("not a deliver")
        };
        assert!(!d.more_messages_to_send);
        assert_eq!(d.originator.number, "3361234567");
        assert_eq!(d.user_data.body.text().unwrap(), "salut");
        assert_eq!(t.encode().unwrap(), b);
        // Not a TPDU the network sends to the network.
        assert!(Tpdu::decode(&b, Direction::MsToNetwork).is_err());
        assert!(matches!(
            Tpdu::decode(&[&b[..], &[0]].concat(), Direction::NetworkToMs),
            Err(Error::TrailingBytes { count: 1 })
        ));
    }

    #[test]
    fn timestamps_are_swapped_bcd_with_a_signed_zone() {
        let t = Timestamp {
            year: 26,
            month: 12,
            day: 5,
            hour: 3,
            minute: 10,
            second: 59,
            tz_quarters: -22,
        };
        let mut out = Vec::new();
        t.encode(&mut out, "TP-SCTS").unwrap();
        assert_eq!(out, [0x62, 0x21, 0x50, 0x30, 0x01, 0x95, 0x2A]);
        assert_eq!(
            Timestamp::decode(&mut Reader::new(&out), "TP-SCTS").unwrap(),
            t
        );
        assert!(Timestamp::decode(&mut Reader::new(&[0x0A; 7]), "TP-SCTS").is_err());
    }

    #[test]
    fn alphanumeric_addresses_are_packed_septets() {
        let a = Address::alphanumeric("Info");
        let mut out = Vec::new();
        a.encode_tp(&mut out, "TP-OA").unwrap();
        // 4 septets, 28 bits: 7 useful semi-octets.
        assert_eq!(out, unhex("07D049B7F90D"));
        assert_eq!(
            Address::decode_tp(&mut Reader::new(&out), "TP-OA").unwrap(),
            a
        );
    }

    #[test]
    fn a_header_shifts_gsm7_text_to_a_septet_boundary() {
        let ud = UserData {
            header: Some(vec![
                Concat {
                    reference: 0x42,
                    wide: false,
                    total: 2,
                    seq: 1,
                }
                .ie(),
            ]),
            body: Body::Gsm7("hello".into()),
        };
        let mut out = Vec::new();
        ud.encode(Dcs::GSM7, &mut out).unwrap();
        // UDL = 7 header septets + 5; one fill bit.
        assert_eq!(out[0], 12);
        assert_eq!(&out[1..7], &[5, 0, 3, 0x42, 2, 1]);
        let back = UserData::decode(&mut Reader::new(&out), Dcs::GSM7, true).unwrap();
        assert_eq!(back, ud);
        assert_eq!(back.concat().unwrap().total, 2);
        assert_eq!(
            ud.encode(Dcs::UCS2, &mut out),
            Err(Error::DcsMismatch { dcs: 8 })
        );
    }

    #[test]
    fn dcs_groups_give_the_alphabet() {
        assert_eq!(Dcs(0x00).alphabet(), Alphabet::Gsm7);
        assert_eq!(Dcs(0x04).alphabet(), Alphabet::Data8);
        assert_eq!(Dcs(0x08).alphabet(), Alphabet::Ucs2);
        assert_eq!(Dcs(0x18).alphabet(), Alphabet::Ucs2);
        assert_eq!(Dcs(0x24).alphabet(), Alphabet::Data8);
        assert_eq!(Dcs(0xF4).alphabet(), Alphabet::Data8);
        assert_eq!(Dcs(0xF1).alphabet(), Alphabet::Gsm7);
        assert_eq!(Dcs(0xE0).alphabet(), Alphabet::Ucs2);
        assert_eq!(Dcs(0xC0).alphabet(), Alphabet::Gsm7);
    }

    #[test]
    fn reports_round_trip_with_and_without_failure_cause() {
        let scts = Timestamp {
            year: 26,
            month: 1,
            day: 2,
            hour: 3,
            minute: 4,
            second: 5,
            tz_quarters: 4,
        };
        for fcs in [None, Some(0xD0)] {
            let sr = Tpdu::SubmitReport(SubmitReport {
                failure_cause: fcs,
                scts,
                pid: Some(0),
                dcs: Some(Dcs::GSM7),
                user_data: Some(UserData::text("ok")),
            });
            let b = sr.encode().unwrap();
            assert_eq!(
                Tpdu::decode_report(&b, Direction::NetworkToMs, fcs.is_some()).unwrap(),
                sr
            );
            let dr = Tpdu::DeliverReport(DeliverReport {
                failure_cause: fcs,
                pid: None,
                dcs: None,
                user_data: None,
            });
            let b = dr.encode().unwrap();
            assert_eq!(
                Tpdu::decode_report(&b, Direction::MsToNetwork, fcs.is_some()).unwrap(),
                dr
            );
        }
    }
}
