//! The state handler (RFC 3320 §6, RFC 4896 §5–7): state items keyed by
//! SHA-1 identifier, per-compartment state memory with retention priority
//! and age eviction, the locally available states (RFC 3485 and RFC 5112
//! dictionaries), and the feedback kept per compartment.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use sha1::{Digest, Sha1};

use crate::Decompressed;
use crate::error::{Error, Reason};
use crate::feedback::{RequestedFeedback, ReturnedParameters};

/// A 20-byte SHA-1 state identifier (RFC 3320 §3.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateId(pub [u8; 20]);

impl StateId {
    /// The identifier of a state item: SHA-1 over `state_length`,
    /// `state_address`, `state_instruction`, `minimum_access_length` (2 bytes
    /// each, MSB first) and the value (RFC 3320 §9.4.9).
    pub fn compute(
        address: u16,
        instruction: u16,
        minimum_access_length: u16,
        value: &[u8],
    ) -> StateId {
        let mut h = Sha1::new();
        h.update((value.len() as u16).to_be_bytes());
        h.update(address.to_be_bytes());
        h.update(instruction.to_be_bytes());
        h.update(minimum_access_length.to_be_bytes());
        h.update(value);
        StateId(h.finalize().into())
    }

    /// The identifier bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl core::fmt::Display for StateId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A state item (RFC 3320 §3.3.3). Its identifier always matches its
/// fields: it is computed from them the first time it is asked for, so
/// a decompression that creates states does not pay for the SHA-1 of
/// states the application may never commit.
#[derive(Clone)]
pub struct State {
    id: OnceLock<StateId>,
    address: u16,
    instruction: u16,
    minimum_access_length: u16,
    value: Vec<u8>,
}

impl State {
    /// A state item; `value` is cut to 65535 bytes (its length is a 2-byte
    /// field) and `minimum_access_length` clamped to 6..=20.
    pub fn new(
        address: u16,
        instruction: u16,
        minimum_access_length: u16,
        mut value: Vec<u8>,
    ) -> State {
        value.truncate(usize::from(u16::MAX));
        let minimum_access_length = minimum_access_length.clamp(6, 20);
        State {
            id: OnceLock::new(),
            address,
            instruction,
            minimum_access_length,
            value,
        }
    }

    /// `state_identifier`.
    pub fn id(&self) -> &StateId {
        self.id.get_or_init(|| {
            StateId::compute(
                self.address,
                self.instruction,
                self.minimum_access_length,
                &self.value,
            )
        })
    }
    /// `state_address`.
    pub fn address(&self) -> u16 {
        self.address
    }
    /// `state_instruction`.
    pub fn instruction(&self) -> u16 {
        self.instruction
    }
    /// `minimum_access_length`.
    pub fn minimum_access_length(&self) -> u16 {
        self.minimum_access_length
    }
    /// `state_value`.
    pub fn value(&self) -> &[u8] {
        &self.value
    }
    /// `state_length`.
    pub fn length(&self) -> u16 {
        self.value.len() as u16
    }
}

/// Equal fields give equal identifiers: the identifier is not compared.
impl PartialEq for State {
    fn eq(&self, other: &State) -> bool {
        self.address == other.address
            && self.instruction == other.instruction
            && self.minimum_access_length == other.minimum_access_length
            && self.value == other.value
    }
}

impl Eq for State {}

impl core::fmt::Debug for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("State")
            .field("id", self.id())
            .field("address", &self.address)
            .field("instruction", &self.instruction)
            .field("minimum_access_length", &self.minimum_access_length)
            .field("value", &self.value)
            .finish()
    }
}

/// The RFC 3485 SIP/SDP static dictionary (`state_value`, 4836 bytes).
pub static SIP_SDP_DICTIONARY: &[u8] = SIP_SDP_BYTES;
/// The same bytes as a constant, for tables computed at compile time.
pub(crate) const SIP_SDP_BYTES: &[u8; 0x12e4] =
    include_bytes!("../data/rfc3485-sip-sdp-static-dictionary.bin");
/// The RFC 5112 presence static dictionary (`state_value`, 3475 bytes).
pub static PRESENCE_DICTIONARY: &[u8] =
    include_bytes!("../data/rfc5112-presence-static-dictionary.bin");

/// The RFC 3485 dictionary as a state item (address 0, instruction 0,
/// minimum_access_length 6, RFC 3485 §3).
pub fn sip_sdp_dictionary() -> State {
    State::new(0, 0, 6, SIP_SDP_DICTIONARY.to_vec())
}

/// The RFC 5112 dictionary as a state item (address 0, instruction 0,
/// minimum_access_length 6, RFC 5112 §4).
pub fn presence_dictionary() -> State {
    State::new(0, 0, 6, PRESENCE_DICTIONARY.to_vec())
}

/// The state identifier of [`sip_sdp_dictionary`], hashed once per
/// process (every compressor names it; hashing 4836 bytes each time
/// cost more than the rest of a compressor's creation).
pub fn sip_sdp_dictionary_id() -> StateId {
    static ID: OnceLock<StateId> = OnceLock::new();
    *ID.get_or_init(|| *sip_sdp_dictionary().id())
}

/// The state identifier of [`presence_dictionary`], hashed once per
/// process.
pub fn presence_dictionary_id() -> StateId {
    static ID: OnceLock<StateId> = OnceLock::new();
    *ID.get_or_init(|| *presence_dictionary().id())
}

/// A state creation or free request made by the message, to be applied by
/// the state handler only once the application confirms the message
/// (RFC 3320 §9.4.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRequest {
    /// Create `state` with this retention priority.
    Create {
        /// The state item, value copied at END-MESSAGE (RFC 4896 §4.1).
        state: State,
        /// `state_retention_priority`.
        priority: u16,
    },
    /// Free the compartment's state whose identifier starts with these bytes.
    Free {
        /// The partial state identifier (6..=20 bytes).
        partial_id: Vec<u8>,
    },
}

/// Names a compartment; the application chooses the values (RFC 3320 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompartmentId(pub u64);

/// Why a state lookup by partial identifier failed (RFC 3320 §7.2, §9.4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    /// No state matches (or the partial id is shorter than the state's
    /// minimum_access_length): STATE_NOT_FOUND.
    NotFound,
    /// More than one state matches: ID_NOT_UNIQUE.
    NotUnique,
}

impl From<LookupError> for Reason {
    fn from(e: LookupError) -> Reason {
        match e {
            LookupError::NotFound => Reason::StateNotFound,
            LookupError::NotUnique => Reason::IdNotUnique,
        }
    }
}

/// Read access to stored states, as the UDVM needs it. Implemented by
/// [`StateHandler`]; implement it to plug in another store.
pub trait StateStore {
    /// The unique state whose identifier starts with `partial`
    /// (6..=20 bytes), checking its minimum_access_length.
    fn lookup(&self, partial: &[u8]) -> Result<&State, LookupError>;
}

/// One entry of a compartment's list of created states (RFC 3320 §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    id: StateId,
    priority: u16,
    /// Creation order within the compartment (higher is younger).
    age: u64,
    cost: u32,
}

/// The feedback a compartment has received from the remote endpoint
/// (RFC 3320 §6.3, RFC 4896 §9): what our compressor for the peer
/// compartment should use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feedback {
    /// The last requested feedback data (Q/S/I bits and item): the item is
    /// to be returned in our next message (RFC 3320 §5).
    pub requested: Option<RequestedFeedback>,
    /// The last returned SigComp parameters of the peer.
    pub returned_parameters: Option<ReturnedParameters>,
    /// The last returned feedback item received in a message header: it
    /// answers a request our compressor made.
    pub returned_feedback_item: Option<Vec<u8>>,
}

/// A compartment: the states a remote compressor created here, the memory
/// they may use and the feedback received (RFC 3320 §6.2, §6.3).
#[derive(Debug, Clone)]
pub struct Compartment {
    state_memory_size: u32,
    entries: Vec<Entry>,
    used: u32,
    next_age: u64,
    feedback: Feedback,
    /// Shared states our own compressor added (RFC 3321 §5.2), oldest
    /// first: kept beside the state_memory_size offered to the peer.
    shared: Vec<StateId>,
}

impl Compartment {
    /// The state_memory_size offered to this compartment.
    pub fn state_memory_size(&self) -> u32 {
        self.state_memory_size
    }
    /// Bytes in use, counting state_length + 64 per state (RFC 3320 §6.2).
    pub fn used(&self) -> u32 {
        self.used
    }
    /// The identifiers of the states in this compartment, oldest first.
    pub fn state_ids(&self) -> impl Iterator<Item = &StateId> {
        self.entries.iter().map(|e| &e.id)
    }
    /// The shared states our compressor keeps here (RFC 3321 §5.2).
    pub fn shared_state_ids(&self) -> impl Iterator<Item = &StateId> {
        self.shared.iter()
    }
    /// The number of states in this compartment.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether the compartment holds no state.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Feedback received for this compartment.
    pub fn feedback(&self) -> &Feedback {
        &self.feedback
    }
}

#[derive(Debug, Clone)]
struct Stored {
    state: Arc<State>,
    /// Number of compartments listing this state.
    refs: u32,
    local: bool,
}

/// What [`StateHandler::commit`] did with each request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// States created (or re-created) in the compartment.
    pub created: Vec<StateId>,
    /// States freed from the compartment (by eviction or STATE-FREE).
    pub freed: Vec<StateId>,
    /// Creation requests refused (SMS 0, or an identifier clash).
    pub rejected: usize,
}

/// The state handler: all stored states, the compartments that own them
/// and the locally available states (RFC 3320 §6).
#[derive(Debug, Clone, Default)]
pub struct StateHandler {
    states: HashMap<StateId, Stored>,
    /// Index by the first 6 bytes (the shortest partial identifier).
    by_prefix: HashMap<[u8; 6], Vec<StateId>>,
    compartments: HashMap<CompartmentId, Compartment>,
}

fn prefix6(id: &StateId) -> [u8; 6] {
    let mut p = [0u8; 6];
    p.copy_from_slice(&id.0[..6]);
    p
}

impl StateHandler {
    /// An empty handler, without local states.
    pub fn new() -> StateHandler {
        StateHandler::default()
    }

    /// A handler with the RFC 3485 SIP/SDP and RFC 5112 presence
    /// dictionaries as locally available states.
    pub fn with_dictionaries() -> StateHandler {
        let mut h = StateHandler::new();
        h.add_local(sip_sdp_dictionary());
        h.add_local(presence_dictionary());
        h
    }

    /// Adds a locally available state (RFC 3320 §3.3.3): not owned by any
    /// compartment, never evicted.
    pub fn add_local(&mut self, state: State) -> StateId {
        let id = *state.id();
        match self.states.get_mut(&id) {
            Some(s) => s.local = true,
            None => {
                self.by_prefix.entry(prefix6(&id)).or_default().push(id);
                self.states.insert(
                    id,
                    Stored {
                        state: Arc::new(state),
                        refs: 0,
                        local: true,
                    },
                );
            }
        }
        id
    }

    /// The identifiers of the locally available states.
    pub fn local_state_ids(&self) -> Vec<StateId> {
        let mut v: Vec<StateId> = self
            .states
            .iter()
            .filter(|(_, s)| s.local)
            .map(|(id, _)| *id)
            .collect();
        v.sort();
        v
    }

    /// Opens (or resizes) a compartment with `state_memory_size` bytes.
    pub fn open_compartment(&mut self, id: CompartmentId, state_memory_size: u32) {
        let c = self.compartments.entry(id).or_insert_with(|| Compartment {
            state_memory_size,
            entries: Vec::new(),
            used: 0,
            next_age: 0,
            feedback: Feedback::default(),
            shared: Vec::new(),
        });
        c.state_memory_size = state_memory_size;
    }

    /// Closes a compartment and reclaims its states (RFC 3320 §6.2).
    pub fn close_compartment(&mut self, id: CompartmentId) {
        if let Some(c) = self.compartments.remove(&id) {
            for e in c.entries {
                self.release(&e.id);
            }
            for s in c.shared {
                self.release(&s);
            }
        }
    }

    /// A compartment, if open.
    pub fn compartment(&self, id: CompartmentId) -> Option<&Compartment> {
        self.compartments.get(&id)
    }

    /// The state with exactly this identifier.
    pub fn get(&self, id: &StateId) -> Option<&State> {
        self.states.get(id).map(|s| &*s.state)
    }

    /// The number of stored states (local ones included).
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether no state is stored.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    fn release(&mut self, id: &StateId) {
        let remove = match self.states.get_mut(id) {
            Some(s) => {
                s.refs = s.refs.saturating_sub(1);
                s.refs == 0 && !s.local
            }
            None => false,
        };
        if remove {
            self.states.remove(id);
            let p = prefix6(id);
            if let Some(v) = self.by_prefix.get_mut(&p) {
                v.retain(|x| x != id);
                if v.is_empty() {
                    self.by_prefix.remove(&p);
                }
            }
        }
    }

    /// Applies a decompressed message's state requests and feedback to
    /// `compartment`, once the application has confirmed the message
    /// (RFC 3320 §4.3, §6.2, §9.4.9). Nothing is stored before this call,
    /// so a forged message cannot create state.
    pub fn commit(
        &mut self,
        compartment: CompartmentId,
        msg: &Decompressed,
    ) -> Result<CommitReport, Error> {
        if !self.compartments.contains_key(&compartment) {
            return Err(Error::UnknownCompartment);
        }
        let mut report = CommitReport::default();
        for req in &msg.state_requests {
            match req {
                StateRequest::Create { state, priority } => {
                    self.create(compartment, state, *priority, &mut report);
                }
                StateRequest::Free { partial_id } => {
                    self.free(compartment, partial_id, &mut report)
                }
            }
        }
        if let Some(c) = self.compartments.get_mut(&compartment) {
            // RFC 4896 §9.2: location 0 leaves the old feedback untouched.
            if let Some(rf) = &msg.requested_feedback {
                if rf.s_bit {
                    // RFC 3320 §9.4.9: the compressor no longer wants state.
                    c.state_memory_size = 0;
                }
                c.feedback.requested = Some(rf.clone());
            }
            if let Some(rp) = &msg.returned_parameters {
                c.feedback.returned_parameters = Some(rp.clone());
            }
            if let Some(item) = &msg.returned_feedback_item {
                c.feedback.returned_feedback_item = Some(item.clone());
            }
        }
        if msg.requested_feedback.as_ref().is_some_and(|r| r.s_bit) {
            let ids: Vec<StateId> = self
                .compartments
                .get_mut(&compartment)
                .map(|c| {
                    c.used = 0;
                    c.entries.drain(..).map(|e| e.id).collect()
                })
                .unwrap_or_default();
            for id in ids {
                self.release(&id);
                report.freed.push(id);
            }
        }
        Ok(report)
    }

    fn create(
        &mut self,
        cid: CompartmentId,
        state: &State,
        priority: u16,
        report: &mut CommitReport,
    ) {
        let Some(sms) = self.compartments.get(&cid).map(|c| c.state_memory_size) else {
            return;
        };
        // RFC 3320 §6.2 step 1.
        if sms == 0 {
            report.rejected += 1;
            return;
        }
        // Step 2: a state larger than the whole compartment is cut to
        // (state_memory_size - 64) bytes and its identifier recomputed.
        let truncated;
        let state = if u32::from(state.length()) + 64 > sms {
            let keep = sms.saturating_sub(64) as usize;
            truncated = State::new(
                state.address,
                state.instruction,
                state.minimum_access_length,
                state.value.get(..keep).unwrap_or(&state.value).to_vec(),
            );
            &truncated
        } else {
            state
        };
        let id = *state.id();
        // Step 3: an existing identifier must hold the identical state.
        if let Some(existing) = self.states.get(&id) {
            if *existing.state != *state {
                report.rejected += 1;
                return;
            }
        }
        let cost = u32::from(state.length()) + 64;
        let mut evicted = Vec::new();
        {
            let Some(c) = self.compartments.get_mut(&cid) else {
                return;
            };
            let age = c.next_age;
            c.next_age += 1;
            // RFC 4896 §5.2, §6: re-creating a state updates its priority and
            // creation time, and it counts once against the SMS.
            if let Some(e) = c.entries.iter_mut().find(|e| e.id == id) {
                e.priority = priority;
                e.age = age;
                report.created.push(id);
                return;
            }
            // Steps 4–5: free by priority (65535 first, then lowest), oldest
            // first on a tie, until the new state fits.
            while c.used + cost > sms && !c.entries.is_empty() {
                let rank = |e: &Entry| (e.priority.wrapping_add(1), e.age);
                let Some((i, _)) = c.entries.iter().enumerate().min_by_key(|(_, e)| rank(e)) else {
                    break;
                };
                let e = c.entries.remove(i);
                c.used -= e.cost;
                evicted.push(e.id);
            }
            c.entries.push(Entry {
                id,
                priority,
                age,
                cost,
            });
            c.used += cost;
        }
        for e in evicted {
            self.release(&e);
            report.freed.push(e);
        }
        self.retain(id, state);
        report.created.push(id);
    }

    /// One more compartment lists `state` (identifier `id`): stored on
    /// first use, counted otherwise.
    fn retain(&mut self, id: StateId, state: &State) {
        match self.states.get_mut(&id) {
            Some(s) => s.refs += 1,
            None => {
                self.by_prefix.entry(prefix6(&id)).or_default().push(id);
                self.states.insert(
                    id,
                    Stored {
                        state: Arc::new(state.clone()),
                        refs: 1,
                        local: false,
                    },
                );
            }
        }
    }

    /// Keeps `state`, a message our compressor sent and announced as a
    /// shared state (RFC 3321 §5.2), with `compartment` (the peer's), so
    /// the peer's compressor can use it as history; the oldest shared
    /// states beyond `keep` are freed. Shared states are kept beside the
    /// state_memory_size offered to the peer, not in it: RFC 3321 leaves
    /// the division of memory to the implementation, and this way a shared
    /// state never pushes out a state the peer created, nor do the peer's
    /// creations push out a shared state it may be using. The cost is up
    /// to `keep` messages of memory per compartment. `false` (nothing
    /// changed) if the compartment is not open, `keep` is 0 or the
    /// identifier clashes with a different state.
    pub fn add_shared(&mut self, compartment: CompartmentId, state: &State, keep: usize) -> bool {
        let id = *state.id();
        if keep == 0 {
            return false;
        }
        if let Some(existing) = self.states.get(&id) {
            if *existing.state != *state {
                return false;
            }
        }
        let Some(c) = self.compartments.get_mut(&compartment) else {
            return false;
        };
        if let Some(i) = c.shared.iter().position(|s| *s == id) {
            // Already kept: it becomes the newest.
            let s = c.shared.remove(i);
            c.shared.push(s);
            return true;
        }
        c.shared.push(id);
        let drop = c.shared.len().saturating_sub(keep);
        let old: Vec<StateId> = c.shared.drain(..drop).collect();
        self.retain(id, state);
        for o in old {
            self.release(&o);
        }
        true
    }

    fn free(&mut self, cid: CompartmentId, partial: &[u8], report: &mut CommitReport) {
        // RFC 4896 §3.3: only states of this compartment; no
        // minimum_access_length check. RFC 3320 §9.4.9: ignored unless
        // exactly one matches.
        let Some(c) = self.compartments.get_mut(&cid) else {
            return;
        };
        let mut matches = c
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.id.0.starts_with(partial));
        let (Some((i, _)), None) = (matches.next(), matches.next()) else {
            return;
        };
        let e = c.entries.remove(i);
        c.used -= e.cost;
        self.release(&e.id);
        report.freed.push(e.id);
    }
}

impl StateStore for StateHandler {
    fn lookup(&self, partial: &[u8]) -> Result<&State, LookupError> {
        let Some(p) = partial.get(..6) else {
            return Err(LookupError::NotFound);
        };
        let mut key = [0u8; 6];
        key.copy_from_slice(p);
        let ids = self.by_prefix.get(&key).ok_or(LookupError::NotFound)?;
        let mut found: Option<&State> = None;
        for id in ids {
            if id.0.starts_with(partial) {
                if found.is_some() {
                    return Err(LookupError::NotUnique);
                }
                found = self.states.get(id).map(|s| &*s.state);
            }
        }
        let s = found.ok_or(LookupError::NotFound)?;
        // RFC 3320 §7.2; RFC 4077 §3.2: STATE_NOT_FOUND when too short.
        if partial.len() < usize::from(s.minimum_access_length) {
            return Err(LookupError::NotFound);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_state_ids_match_rfcs() {
        // RFC 3485 §3 and RFC 5112 §4 print these identifiers.
        assert_eq!(
            sip_sdp_dictionary().id().to_string(),
            "fbe507dfe5e6aa5af2abb914ceaa05f99ce61ba5"
        );
        assert_eq!(
            presence_dictionary().id().to_string(),
            "d942297d0bb38fc01d6741d6b3b48157ac8e1be0"
        );
        // The identifiers hashed once per process are the same.
        assert_eq!(
            sip_sdp_dictionary_id().to_string(),
            "fbe507dfe5e6aa5af2abb914ceaa05f99ce61ba5"
        );
        assert_eq!(
            presence_dictionary_id().to_string(),
            "d942297d0bb38fc01d6741d6b3b48157ac8e1be0"
        );
        assert_eq!(SIP_SDP_DICTIONARY.len(), 0x12e4);
        assert_eq!(PRESENCE_DICTIONARY.len(), 0x0d93);
    }

    #[test]
    fn lookup_by_partial_id() {
        let h = StateHandler::with_dictionaries();
        let s = h.lookup(&[0xfb, 0xe5, 0x07, 0xdf, 0xe5, 0xe6]).unwrap();
        assert_eq!(s.length(), 4836);
        assert_eq!(
            h.lookup(&[0xfb, 0xe5, 0x07, 0xdf, 0xe5, 0xe7]),
            Err(LookupError::NotFound)
        );
        assert_eq!(h.lookup(&[0xfb, 0xe5, 0x07]), Err(LookupError::NotFound));
    }
}
