//! The SMS-over-IP codec on hostile bytes.

use gm::sms::{Direction, RpData, RpMessage, Tpdu};

/// Target `sms_decode`: the input is the body of a SIP MESSAGE of type
/// `application/vnd.3gpp.sms` (an RP message), and also, on its own, a
/// TPDU of every kind in both directions.
///
/// Invariants: nothing panics; a decoded RP message encodes, and its
/// encoding decodes to the same message; a decoded TPDU that encodes
/// (an alphanumeric address of more than 11 characters does not) decodes
/// back to a TPDU that encodes and decodes to itself (a GSM 7-bit escape
/// before a septet without an extension character is read as that
/// septet's character, so the first re-encoding may differ).
pub fn sms_decode(data: &[u8]) {
    if let Ok(m) = RpMessage::decode(data) {
        let out = match m.encode() {
            Ok(out) => out,
            Err(e) => panic!("a decoded RP message does not encode: {e}"),
        };
        match RpMessage::decode(&out) {
            Ok(again) => assert_eq!(again, m, "decode(encode(m)) != m"),
            Err(e) => panic!("an encoded RP message does not decode: {e}"),
        }
        match &m {
            RpMessage::Data(d) => {
                if let Ok(t) = d.tpdu() {
                    tpdu(&t.tpdu, |b| Tpdu::decode(b, d.direction));
                }
            }
            RpMessage::Ack(a) => {
                if let Some(Ok(t)) = a.tpdu() {
                    tpdu(&t, |b| Tpdu::decode_report(b, a.direction, false));
                }
            }
            RpMessage::Error(e) => {
                if let Some(Ok(t)) = e.tpdu() {
                    tpdu(&t, |b| Tpdu::decode_report(b, e.direction, true));
                }
            }
            RpMessage::Smma { .. } => {}
        }
    }
    for dir in [Direction::MsToNetwork, Direction::NetworkToMs] {
        let rp = RpData {
            direction: dir,
            message_ref: 0,
            originator: None,
            destination: None,
            user_data: data.to_vec(),
        };
        if let Ok(t) = rp.tpdu() {
            tpdu(&t.tpdu, |b| Tpdu::decode(b, dir));
        }
        for rp_error in [false, true] {
            if let Ok(t) = Tpdu::decode_report(data, dir, rp_error) {
                tpdu(&t, |b| Tpdu::decode_report(b, dir, rp_error));
            }
        }
    }
}

fn tpdu(t: &Tpdu, decode: impl Fn(&[u8]) -> Result<Tpdu, gm::sms::Error>) {
    if let Some(ud) = t.user_data() {
        let _ = ud.body.text();
        let _ = ud.concat();
    }
    let Ok(out) = t.encode() else { return };
    let again = match decode(&out) {
        Ok(a) => a,
        Err(e) => panic!("an encoded TPDU does not decode: {e}"),
    };
    let out2 = match again.encode() {
        Ok(o) => o,
        Err(e) => panic!("a re-decoded TPDU does not encode: {e}"),
    };
    match decode(&out2) {
        Ok(a) => assert_eq!(a, again, "decode(encode(t)) is not stable"),
        Err(e) => panic!("a re-encoded TPDU does not decode: {e}"),
    }
}
