//! The SMS codec never panics on arbitrary bytes, what it decodes it
//! encodes back to the same value, and what it encodes it decodes back;
//! split texts reassemble from their parts in any order.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use gm::sms::{
    Address, Body, Dcs, Deliver, DeliverReport, Direction, Reassembler, RpAck, RpCause, RpData,
    RpError, RpMessage, StatusReport, Submit, SubmitReport, Timestamp, Tpdu, ValidityPeriod, split,
};
use proptest::prelude::*;

const DIRS: [Direction; 2] = [Direction::MsToNetwork, Direction::NetworkToMs];

/// Every decoder on `data`; whatever decodes re-encodes to bytes that
/// decode to the same value.
fn exercise(data: &[u8]) {
    if let Ok(m) = RpMessage::decode(data) {
        let again = m.encode().expect("a decoded RP message encodes");
        assert_eq!(RpMessage::decode(&again).unwrap(), m);
        match &m {
            RpMessage::Data(d) => {
                let _ = d.tpdu();
            }
            RpMessage::Ack(a) => {
                let _ = a.tpdu();
            }
            RpMessage::Error(e) => {
                let _ = e.tpdu();
            }
            RpMessage::Smma { .. } => {}
        }
    }
    for dir in DIRS {
        let rp = RpData {
            direction: dir,
            message_ref: 0,
            originator: None,
            destination: None,
            user_data: data.to_vec(),
        };
        let _ = rp.tpdu();
        check_tpdu(Tpdu::decode(data, dir), |b| Tpdu::decode(b, dir));
        for rp_error in [false, true] {
            check_tpdu(Tpdu::decode_report(data, dir, rp_error), |b| {
                Tpdu::decode_report(b, dir, rp_error)
            });
        }
    }
}

fn check_tpdu(
    decoded: Result<Tpdu, gm::sms::Error>,
    decode: impl Fn(&[u8]) -> Result<Tpdu, gm::sms::Error>,
) {
    let Ok(t) = decoded else { return };
    if let Some(ud) = t.user_data() {
        let _ = ud.body.text();
        let _ = ud.concat();
    }
    // Some decoded values have no encoding (an alphanumeric address of
    // more than 11 characters); those that have must come back.
    if let Ok(b) = t.encode() {
        let again = decode(&b).unwrap_or_else(|e| panic!("{t:?} encodes to {b:02x?}: {e}"));
        // A GSM 7-bit text may re-encode differently (an escape before a
        // septet without an extension character), so compare once more.
        let b2 = again.encode().unwrap();
        assert_eq!(decode(&b2).unwrap(), again);
    }
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            'a', 'Z', ' ', '@', '€', '{', '\\', 'é', 'Δ', '\n', 'я', '😀', '日', '0',
        ]),
        0..400,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (
        0u8..100,
        0u8..100,
        0u8..100,
        0u8..100,
        0u8..100,
        0u8..100,
        -79i8..=79,
    )
        .prop_map(
            |(year, month, day, hour, minute, second, tz_quarters)| Timestamp {
                year,
                month,
                day,
                hour,
                minute,
                second,
                tz_quarters,
            },
        )
}

fn address() -> impl Strategy<Value = Address> {
    prop_oneof![
        (0u8..8, 0u8..16, "[0-9*#abc]{0,20}")
            .prop_filter_map("alphanumeric", |(ton, npi, number)| {
                (ton != 5).then_some(Address { ton, npi, number })
            }),
        "[A-Za-z0-9 @£{€]{0,5}".prop_map(|s| Address::alphanumeric(&s)),
    ]
}

fn validity() -> impl Strategy<Value = Option<ValidityPeriod>> {
    prop_oneof![
        Just(None),
        any::<u8>().prop_map(|v| Some(ValidityPeriod::Relative(v))),
        timestamp().prop_map(|t| Some(ValidityPeriod::Absolute(t))),
        any::<[u8; 7]>().prop_map(|e| Some(ValidityPeriod::Enhanced(e))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..260)) {
        exercise(&data);
    }

    #[test]
    fn rp_shaped_bytes_never_panic(
        mti in 0u8..8,
        mr: u8,
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut data = vec![mti, mr];
        data.extend_from_slice(&body);
        exercise(&data);
        // The TPDU alone, behind a plausible RP-DATA header.
        let mut rp = vec![mti & 1, mr, 0, 0, body.len().min(255) as u8];
        rp.extend_from_slice(&body);
        exercise(&rp);
    }

    #[test]
    fn submit_and_deliver_round_trip(
        t in text(),
        da in address(),
        vp in validity(),
        scts in timestamp(),
        flags: u8,
        mr: u8,
        pid: u8,
        reference: u16,
    ) {
        for part in split(&t, reference, flags & 0x10 != 0).unwrap() {
            let submit = Tpdu::Submit(Submit {
                reject_duplicates: flags & 1 != 0,
                status_report_request: flags & 2 != 0,
                reply_path: flags & 4 != 0,
                message_ref: mr,
                destination: da.clone(),
                pid,
                dcs: part.dcs(),
                validity: vp,
                user_data: part.clone(),
            });
            let b = submit.encode().unwrap();
            prop_assert!(b.len() <= 175);
            prop_assert_eq!(&Tpdu::decode(&b, Direction::MsToNetwork).unwrap(), &submit);
            let rp = RpMessage::Data(RpData::mo(mr, Address::international("331000000"), &submit).unwrap());
            let rb = rp.encode().unwrap();
            let RpMessage::Data(d) = RpMessage::decode(&rb).unwrap() else { panic!() };
            prop_assert_eq!(d.tpdu().unwrap().tpdu, submit);

            let deliver = Tpdu::Deliver(Deliver {
                more_messages_to_send: flags & 8 != 0,
                loop_prevention: flags & 0x20 != 0,
                status_report_indication: flags & 0x40 != 0,
                reply_path: flags & 0x80 != 0,
                originator: da.clone(),
                pid,
                dcs: part.dcs(),
                scts,
                user_data: part,
            });
            let b = deliver.encode().unwrap();
            prop_assert_eq!(Tpdu::decode(&b, Direction::NetworkToMs).unwrap(), deliver);
        }
    }

    #[test]
    fn reports_round_trip_in_rp_ack_and_rp_error(
        t in text(),
        ra in address(),
        scts in timestamp(),
        dt in timestamp(),
        fields in 0u8..8,
        fcs: Option<u8>,
        st: u8,
        mr: u8,
        diagnostic in prop::collection::vec(any::<u8>(), 0..3),
        cause in 0u8..128,
    ) {
        // The first part of the text, as the optional TP-UD of a report.
        let part = split(&t, 1, false).unwrap().remove(0);
        let (pid, dcs, ud) = (
            (fields & 1 != 0).then_some(0x41),
            (fields & 2 != 0).then_some(part.dcs()),
            (fields & 4 != 0).then_some(part),
        );
        // Without TP-DCS the user data is GSM 7-bit.
        let ud = ud.filter(|u| dcs.is_some() || u.dcs() == Dcs::GSM7);
        let status = Tpdu::StatusReport(StatusReport {
            more_messages_to_send: fields & 1 != 0,
            loop_prevention: fields & 2 != 0,
            status_report_qualifier: fields & 4 != 0,
            message_ref: mr,
            recipient: ra,
            scts,
            discharge_time: dt,
            status: st,
            pid,
            dcs,
            user_data: ud.clone(),
        });
        let b = status.encode().unwrap();
        prop_assert_eq!(Tpdu::decode(&b, Direction::NetworkToMs).unwrap(), status);

        let reports = [
            Tpdu::SubmitReport(SubmitReport { failure_cause: fcs, scts, pid, dcs, user_data: ud.clone() }),
            Tpdu::DeliverReport(DeliverReport { failure_cause: fcs, pid, dcs, user_data: ud }),
        ];
        for report in reports {
            let dir = report.direction();
            let b = report.encode().unwrap();
            prop_assert_eq!(&Tpdu::decode_report(&b, dir, fcs.is_some()).unwrap(), &report);
            let m = match fcs {
                None => RpMessage::Ack(RpAck { direction: dir, message_ref: mr, user_data: Some(b) }),
                Some(_) => RpMessage::Error(RpError {
                    direction: dir,
                    message_ref: mr,
                    cause: RpCause { value: cause, diagnostic: diagnostic.clone() },
                    user_data: Some(b),
                }),
            };
            let back = RpMessage::decode(&m.encode().unwrap()).unwrap();
            prop_assert_eq!(&back, &m);
            let t = match &back {
                RpMessage::Ack(a) => a.tpdu(),
                RpMessage::Error(e) => e.tpdu(),
                _ => None,
            };
            prop_assert_eq!(t.unwrap().unwrap(), report);
        }
    }

    #[test]
    fn split_parts_reassemble_in_any_order(
        t in text(),
        reference: u16,
        wide: bool,
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut parts = split(&t, reference, wide).unwrap();
        for (i, ix) in order.iter().enumerate() {
            let j = ix.index(parts.len());
            let n = parts.len();
            parts.swap(i % n, j);
        }
        let mut r = Reassembler::new(2);
        let mut whole = None;
        for p in &parts {
            match r.push("+33", p).unwrap() {
                Some(b) => whole = Some(b),
                // A duplicate of a part changes nothing.
                None => prop_assert_eq!(r.push("+33", p).unwrap(), None),
            }
        }
        let whole = whole.expect("complete");
        prop_assert_eq!(whole.text().unwrap(), t);
        prop_assert!(!matches!(whole, Body::Data8(_)));
    }
}
