//! The seed's two captured SMS-over-IP payloads (`data/sms-seed.txt`)
//! decode to "salut", with the warning that their RP-User-Data starts with
//! a service-centre address; our encoders emit the standard form.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use gm::sms::{Address, Direction, RpMessage, Tpdu, ValidityPeriod, Warning};

fn seed(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sms-seed.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let hex = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix('='))
        .unwrap_or_else(|| panic!("no {name}"))
        .trim();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

const SC: &str = "331000000";

#[test]
fn the_seed_mo_rp_data_is_salut_to_3361234567_with_a_warning() {
    let bytes = seed("mo_rp_data");
    let RpMessage::Data(d) = RpMessage::decode(&bytes).unwrap() else {
        panic!("not RP-DATA");
    };
    assert_eq!(d.direction, Direction::MsToNetwork);
    assert_eq!(d.originator, None);
    assert_eq!(d.destination, Some(Address::international(SC)));
    assert_eq!(d.user_data.len(), 25);
    let decoded = d.tpdu().unwrap();
    assert_eq!(
        decoded.warning,
        Some(Warning::ServiceCentrePrefix(Address::international(SC)))
    );
    let Tpdu::Submit(s) = &decoded.tpdu else {
        panic!("not SMS-SUBMIT")
    };
    assert_eq!(s.destination, Address::international("3361234567"));
    assert_eq!(s.validity, Some(ValidityPeriod::Relative(0xAA)));
    assert_eq!(s.user_data.body.text().unwrap(), "salut");

    // Encoded again, the standard form: the TPDU alone, 7 octets shorter.
    let again =
        RpMessage::Data(gm::sms::RpData::mo(0, Address::international(SC), &decoded.tpdu).unwrap())
            .encode()
            .unwrap();
    assert_eq!(again.len(), bytes.len() - 7);
    let RpMessage::Data(d2) = RpMessage::decode(&again).unwrap() else {
        panic!()
    };
    assert_eq!(d2.tpdu().unwrap().warning, None);
    assert_eq!(d2.tpdu().unwrap().tpdu, decoded.tpdu);
}

#[test]
fn the_seed_mt_rp_data_is_salut_from_3361234567_with_a_warning() {
    let bytes = seed("mt_rp_data");
    let RpMessage::Data(d) = RpMessage::decode(&bytes).unwrap() else {
        panic!("not RP-DATA");
    };
    assert_eq!(d.direction, Direction::NetworkToMs);
    assert_eq!(d.originator, Some(Address::international(SC)));
    assert_eq!(d.destination, None);
    let decoded = d.tpdu().unwrap();
    assert!(matches!(
        decoded.warning,
        Some(Warning::ServiceCentrePrefix(ref a)) if a.number == SC
    ));
    let Tpdu::Deliver(m) = &decoded.tpdu else {
        panic!("not SMS-DELIVER")
    };
    assert_eq!(m.originator, Address::international("3361234567"));
    assert_eq!(m.user_data.body.text().unwrap(), "salut");
    assert_eq!(m.scts.month, 0, "the capture's time stamp is all zeros");
}

#[test]
fn a_tpdu_that_is_neither_standard_nor_prefixed_is_an_error() {
    let mut bytes = seed("mo_rp_data");
    // Cut the last octet of the text: the RP length no longer matches.
    bytes.pop();
    assert!(RpMessage::decode(&bytes).is_err());
    let mut bytes = seed("mo_rp_data");
    let n = bytes.len();
    bytes[n - 6] = 4; // TP-UDL 5 -> 4: one octet left over
    let RpMessage::Data(d) = RpMessage::decode(&bytes).unwrap() else {
        panic!()
    };
    assert!(d.tpdu().is_err());
}
