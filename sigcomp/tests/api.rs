//! The state handler and feedback API: announcements, commit rules of
//! RFC 3320 §6.2 and RFC 4896 §5–6, and feedback kept per compartment.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sigcomp::state::{presence_dictionary, sip_sdp_dictionary};
use sigcomp::{
    CompartmentId, Decompressed, Parameters, RequestedFeedback, ReturnedParameters, State,
    StateHandler, StateRequest,
};

fn create(value: &[u8], priority: u16) -> StateRequest {
    StateRequest::Create {
        state: State::new(64, 128, 6, value.to_vec()),
        priority,
    }
}

fn msg(requests: Vec<StateRequest>) -> Decompressed {
    Decompressed {
        state_requests: requests,
        ..Decompressed::default()
    }
}

#[test]
fn announcement_lists_the_dictionaries() {
    let h = StateHandler::with_dictionaries();
    let p = Parameters {
        decompression_memory_size: 8192,
        state_memory_size: 4096,
        cycles_per_bit: 32,
        version: 2,
    };
    let a = p.announcement(&h.local_state_ids()).unwrap();
    let mut bytes = Vec::new();
    a.emit(&mut bytes).unwrap();
    // RFC 3320 Figure 13: cpb=01, dms=011, sms=010; version; 6-byte ids.
    assert_eq!(bytes[0], 0b01_011_010);
    assert_eq!(bytes[1], 2);
    let back = ReturnedParameters::parse(&bytes);
    assert_eq!(back, a);
    let ids: Vec<String> = back.state_ids.iter().map(hex::encode).collect();
    assert!(ids.contains(&"fbe507dfe5e6".to_string()));
    assert!(ids.contains(&"d942297d0bb3".to_string()));
    // 3000 bytes is not an encodable size.
    assert!(
        Parameters {
            state_memory_size: 3000,
            ..p
        }
        .announcement(&[])
        .is_err()
    );
}

#[test]
fn eviction_follows_priority_then_age() {
    let mut h = StateHandler::new();
    let c = CompartmentId(1);
    h.open_compartment(c, 2048);
    // Costs: 64 + len. 500+564+564 = 1692 of 2048.
    h.commit(
        c,
        &msg(vec![
            create(&[1; 436], 5),
            create(&[2; 500], 1),
            create(&[3; 500], 1),
        ]),
    )
    .unwrap();
    assert_eq!(h.compartment(c).unwrap().used(), 500 + 564 + 564);
    // A 600-byte state (664) needs 308 more: the oldest of the lowest
    // priority (the first [2; 500]) goes, not the priority-5 one.
    let r = h.commit(c, &msg(vec![create(&[4; 600], 3)])).unwrap();
    assert_eq!(r.freed.len(), 1);
    assert_eq!(r.freed[0], *State::new(64, 128, 6, vec![2; 500]).id());
    assert_eq!(h.compartment(c).unwrap().len(), 3);
    // Re-creating an existing state counts once (RFC 4896 §5.2).
    let used = h.compartment(c).unwrap().used();
    h.commit(c, &msg(vec![create(&[4; 600], 0)])).unwrap();
    assert_eq!(h.compartment(c).unwrap().used(), used);
}

#[test]
fn shared_states_survive_until_the_last_compartment_frees_them() {
    let mut h = StateHandler::new();
    let (a, b) = (CompartmentId(1), CompartmentId(2));
    h.open_compartment(a, 2048);
    h.open_compartment(b, 2048);
    h.commit(a, &msg(vec![create(b"shared", 1)])).unwrap();
    h.commit(b, &msg(vec![create(b"shared", 2)])).unwrap();
    assert_eq!(h.len(), 1);
    let id = *State::new(64, 128, 6, b"shared".to_vec()).id();
    let free = StateRequest::Free {
        partial_id: id.0[..6].to_vec(),
    };
    h.commit(a, &msg(vec![free.clone()])).unwrap();
    assert!(h.get(&id).is_some(), "still owned by compartment b");
    h.close_compartment(b);
    assert!(h.get(&id).is_none());
}

#[test]
fn zero_state_memory_rejects_and_s_bit_clears() {
    let mut h = StateHandler::new();
    let c = CompartmentId(3);
    h.open_compartment(c, 0);
    let r = h.commit(c, &msg(vec![create(b"x", 1)])).unwrap();
    assert_eq!(r.rejected, 1);
    h.open_compartment(c, 4096);
    h.commit(c, &msg(vec![create(b"y", 1)])).unwrap();
    let mut m = msg(vec![]);
    m.requested_feedback = Some(RequestedFeedback {
        s_bit: true,
        i_bit: false,
        item: Some(vec![0x05]),
    });
    m.returned_feedback_item = Some(vec![0x42]);
    h.commit(c, &m).unwrap();
    let comp = h.compartment(c).unwrap();
    assert!(comp.is_empty());
    assert_eq!(comp.state_memory_size(), 0);
    assert_eq!(
        comp.feedback().requested.as_ref().unwrap().item,
        Some(vec![0x05])
    );
    assert_eq!(comp.feedback().returned_feedback_item, Some(vec![0x42]));
}

#[test]
fn local_states_are_never_evicted() {
    let mut h = StateHandler::with_dictionaries();
    let c = CompartmentId(4);
    h.open_compartment(c, 2048);
    h.commit(c, &msg(vec![create(&[9; 1900], 1)])).unwrap();
    assert!(h.get(sip_sdp_dictionary().id()).is_some());
    assert!(h.get(presence_dictionary().id()).is_some());
}
