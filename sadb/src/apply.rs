//! Applying setkey statements to the SAD and SPD, all or nothing, and the
//! per-packet decisions that use both databases.

use std::collections::HashMap;
use std::net::IpAddr;

use ipsec_esp::{Mode, Protocol, Sa, SaParams, Spi, UdpEncap};
use opensec::{AuthAlgorithm, EncAlgorithm};

use crate::Error;
use crate::ast::*;
use crate::dump::{DumpOptions, dump_larval, dump_sa, dump_sad, dump_spd};
use crate::owner::Owner;
use crate::sad::{
    ExpireEvent, Larval, Lifetimes, Limit, SPI_RANGE, SaEntry, SaId, SaMeta, Sad, no_free_spi,
    pick_spi, protocol_keyword,
};
use crate::spd::{PacketSelector, Policy, PolicyAction, SaRequest, Selector, Spd};
use crate::time::Timestamp;

/// The most requests one `ipsec` policy may bundle.
pub const MAX_BUNDLE: usize = 4;

/// The default UDP port of ESP in UDP (RFC 3948 §2... IKE NAT-T port 4500).
pub const NATT_PORT: u16 = 4500;

/// IPSEC_MANUAL_REQID_MAX: reqids above it are generated for `unique` without a number.
const MANUAL_REQID_MAX: u32 = 0x3fff;

/// The highest reqid a `unique:N` request names (setkey(8): "between 1 and
/// 32767"). Those above the manual range (0x3fff) share their range with
/// generated reqids, which skip every reqid in use, as Linux's
/// `gen_reqid` does.
pub const MAX_UNIQUE_REQID: u32 = 0x7fff;

/// Text a statement produced (`get`, `dump`, `spddump`, `getspi`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The statement.
    pub pos: Pos,
    /// What setkey would print.
    pub text: String,
    /// For `getspi`: the SA whose SPI is now held.
    pub larval: Option<SaId>,
}

/// What [`Databases::delete_owned`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// SAs.
    pub sas: usize,
    /// Larval SAs (`getspi`).
    pub larval: usize,
    /// Policies.
    pub policies: usize,
}

/// The SAs an outbound packet goes through, innermost first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Bundle {
    sas: [Option<SaId>; MAX_BUNDLE],
}

impl Bundle {
    fn push(&mut self, id: SaId) {
        if let Some(slot) = self.sas.iter_mut().find(|s| s.is_none()) {
            *slot = Some(id);
        }
    }

    /// The SAs, innermost (applied first) first.
    pub fn iter(&self) -> impl Iterator<Item = SaId> + '_ {
        self.sas.iter().flatten().copied()
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.sas.iter().flatten().count()
    }

    /// Whether the bundle is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What to do with an outbound packet (RFC 4301 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// No policy matches. Linux and KAME send such packets in clear.
    NoPolicy,
    /// A `discard` policy matches: drop.
    Discard {
        /// The policy's `spid`.
        policy: u32,
    },
    /// A `none` policy matches (or only `use` requests without SAs): send in clear.
    Bypass {
        /// The policy's `spid`.
        policy: u32,
    },
    /// Protect with these SAs.
    Protect {
        /// The policy's `spid`.
        policy: u32,
        /// The SAs, innermost first.
        bundle: Bundle,
    },
    /// An `ipsec` policy matches but a required SA is missing: drop (fail closed).
    NoSa {
        /// The policy's `spid`.
        policy: u32,
        /// Index of the request without SA.
        request: usize,
    },
}

/// [`Outbound`] with the policy and SA entries themselves (for the engine).
#[derive(Clone, Copy, Debug)]
pub(crate) enum OutDecision<'a> {
    NoPolicy,
    Discard(&'a Policy),
    Bypass(&'a Policy),
    NoSa(&'a Policy, usize),
    /// The SAs, innermost first.
    Protect(&'a Policy, [Option<&'a SaEntry>; MAX_BUNDLE]),
}

/// [`Inbound`] with the policy itself (for the engine).
#[derive(Clone, Copy, Debug)]
pub(crate) enum InDecision<'a> {
    Accept(Option<&'a Policy>),
    Reject(&'a Policy),
}

/// Whether a decapsulated (or clear) inbound packet may be delivered (RFC 4301 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Deliver.
    Accept {
        /// The matching `in` policy, if any.
        policy: Option<u32>,
    },
    /// Drop: a `discard` policy, or the SAs applied do not satisfy the
    /// `ipsec` policy (e.g. clear text where `require` is set).
    Reject {
        /// The matching `in` policy.
        policy: u32,
    },
}

/// The SAD and the SPD, and what a setkey script does to them.
///
/// They change only through [`Databases::apply`] (all or nothing) and
/// lifetimes ([`Databases::expire`]); packets go through the engine
/// ([`Databases::protect`], [`Databases::unprotect`]), which takes `&self`:
/// the per-packet state of SAs and policies is atomic or behind each SA's
/// own small lock, so one `Databases` serves packets on several threads at
/// once. A clone shares its SAs and policies (and so their counters,
/// sequence numbers and replay windows): it is a snapshot that can be
/// changed and swapped in ([`crate::Engine`]).
#[derive(Debug, Clone)]
pub struct Databases {
    sad: Sad,
    spd: Spd,
    /// Options of `dump`/`spddump`/`get` output.
    pub dump_options: DumpOptions,
    /// setkey's "RFC mode" (`setkey -r`, setkey(8) "RFC vs Linux kernel
    /// semantics"): every `in` policy added, updated or deleted also adds,
    /// updates or deletes a `fwd` policy with the same selector, its first
    /// `unique` request turned into `require`. Off by default (kernel mode),
    /// so the SPD holds exactly what the script says.
    pub rfc_mode: bool,
    /// Linux's rule for what comes out of a tunnel-mode SA (the kernel's
    /// `secpath_has_nontransport` check): [`Databases::unprotect`]
    /// delivers it only when an inbound policy selects the inner packet,
    /// and drops it otherwise ([`crate::DropReason::NoPolicy`]), so a
    /// peer cannot put any packet it likes inside its SA (RFC 4301 §5.2).
    /// Off by default: `esptool decap` with an SA-only configuration
    /// decrypts a capture without policies.
    pub tunnel_needs_policy: bool,
    last_reqid: u32,
}

impl Default for Databases {
    fn default() -> Self {
        Databases::new()
    }
}

fn sa_protocol(p: SaProtocol) -> Protocol {
    match p {
        SaProtocol::Esp | SaProtocol::EspUdp => Protocol::Esp,
        SaProtocol::Ah => Protocol::Ah,
    }
}

/// The SPD selector of `spdadd`/`spdupdate`/`spddelete` arguments.
pub fn selector_of(spec: &PolicySpec) -> Selector {
    let icmp = spec.upper.icmp.unwrap_or(IcmpSpec {
        icmp_type: 0,
        code: None,
    });
    Selector {
        src: spec.src.addr,
        src_prefix: spec.src.prefix_len(),
        dst: spec.dst.addr,
        dst_prefix: spec.dst.prefix_len(),
        // IPSEC_ULPROTO_ANY (255) is `any`.
        protocol: spec.upper.protocol.filter(|&p| p != ipproto::ANY),
        sport: spec.src.port.port(),
        dport: spec.dst.port.port(),
        icmp_type: icmp.icmp_type,
        icmp_code: icmp.code.unwrap_or(0),
    }
}

/// `-r` bytes to a window in packets (setkey(8): "window size of bytes"; the
/// KAME bitmap holds 8 packets per byte).
pub fn replay_window_packets(bytes: u32) -> Option<u32> {
    bytes.checked_mul(8)
}

/// An SA as a batch leaves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// Deleted.
    Gone,
    /// An SA from this source.
    Sa(IpAddr),
    /// A larval SA (`getspi`) from this source.
    Larval(IpAddr),
}

/// Overlay of pending changes over the real databases, to validate a batch.
struct Shadow<'a> {
    sad: &'a Sad,
    spd: &'a Spd,
    sas: HashMap<SaId, Pending>,
    flushed: [bool; 2],
    policies: HashMap<(Selector, Direction), bool>,
    spd_flushed: bool,
    /// The owner the batch is applied under.
    owner: Option<&'a Owner>,
    /// Reqids the batch's policies name or were given.
    reqids: std::collections::HashSet<u32>,
}

fn proto_index(p: Protocol) -> usize {
    match p {
        Protocol::Esp => 0,
        Protocol::Ah => 1,
    }
}

impl<'a> Shadow<'a> {
    fn sa_state(&self, id: &SaId) -> Pending {
        match self.sas.get(id) {
            Some(v) => *v,
            None if self.flushed[proto_index(id.protocol)] => Pending::Gone,
            None => match (self.sad.get(id), self.sad.get_larval(id)) {
                (Some(e), _) => Pending::Sa(e.sa().src()),
                (None, Some(l)) => Pending::Larval(l.src),
                (None, None) => Pending::Gone,
            },
        }
    }

    fn sa_src(&self, id: &SaId) -> Option<IpAddr> {
        match self.sa_state(id) {
            Pending::Gone => None,
            Pending::Sa(src) | Pending::Larval(src) => Some(src),
        }
    }

    /// Under an owner, an SA installed before this batch may be changed
    /// or removed only by its owner (those of this batch are the owner's).
    fn check_sa_owner(&self, id: &SaId) -> Result<(), Error> {
        let Some(me) = self.owner else {
            return Ok(());
        };
        if self.sas.contains_key(id) {
            return Ok(());
        }
        let theirs = match (self.sad.get(id), self.sad.get_larval(id)) {
            (Some(e), _) => e.owner(),
            (None, Some(l)) => l.owner.as_ref(),
            (None, None) => return Ok(()),
        };
        if theirs == Some(me) {
            return Ok(());
        }
        Err(Error::NotOwner {
            pos: None,
            what: format!(
                "SA {} dst {} spi {}(0x{:08x})",
                protocol_keyword(id.protocol),
                id.dst,
                id.spi.0,
                id.spi.0
            ),
            owner: theirs.map(|o| o.to_string()),
        })
    }

    /// [`Shadow::check_sa_owner`] for a policy.
    fn check_policy_owner(&self, sel: &Selector, dir: Direction) -> Result<(), Error> {
        let Some(me) = self.owner else {
            return Ok(());
        };
        if self.policies.contains_key(&(*sel, dir)) || self.spd_flushed {
            return Ok(());
        }
        let Some(p) = self.spd.get(sel, dir) else {
            return Ok(());
        };
        if p.owner.as_ref() == Some(me) {
            return Ok(());
        }
        Err(Error::NotOwner {
            pos: None,
            what: format!("policy {} {}", sel.setkey_format(), dir.keyword()),
            owner: p.owner.as_ref().map(|o| o.to_string()),
        })
    }

    /// Flushes and `deleteall` would remove what others own.
    fn check_bulk(&self, what: &str) -> Result<(), Error> {
        match self.owner {
            None => Ok(()),
            Some(me) => Err(Error::NotOwner {
                pos: None,
                what: format!(
                    "{what} under owner {me} would remove entries of others (delete them one by one, or all of {me}'s at once)"
                ),
                owner: None,
            }),
        }
    }

    fn policy_exists(&self, sel: &Selector, dir: Direction) -> bool {
        match self.policies.get(&(*sel, dir)) {
            Some(v) => *v,
            None => !self.spd_flushed && self.spd.get(sel, dir).is_some(),
        }
    }
}

enum Op {
    AddSa(Box<SaEntry>),
    AddLarval(Larval, Pos),
    CompleteLarval(SaId, Box<SaEntry>),
    UpdateSa(SaId, Box<Sa>, SaMeta),
    DeleteSa(SaId),
    DeleteAll(IpAddr, IpAddr, Protocol),
    Flush(Option<Protocol>),
    Get(SaId, Pos),
    Dump(Option<Protocol>, Pos),
    SpdAdd(Selector, Direction, u32, PolicyAction),
    SpdUpdate(Selector, Direction, u32, PolicyAction),
    SpdDelete(Selector, Direction),
    SpdFlush,
    SpdDump(Pos),
    Both(Box<Op>, Box<Op>),
}

fn not_supported(pos: Pos, what: &str) -> Error {
    Error::NotSupported {
        pos,
        what: what.into(),
    }
}

fn inconsistent(reason: impl Into<String>) -> Error {
    Error::Inconsistent {
        pos: None,
        reason: reason.into(),
    }
}

/// Builds the transform and metadata of an `add`/`update` statement.
/// `seq` is the sequence number to continue from (0 for a new SA).
pub fn build_sa(spec: &SaSpec, seq: u64, pos: Pos) -> Result<(Sa, SaMeta), Error> {
    let protocol = sa_protocol(spec.protocol);
    let (enc, enc_key, auth, auth_key) = match (&spec.alg, protocol) {
        (AlgorithmSpec::Esp { enc, enc_key, auth }, Protocol::Esp) => {
            let (a, k) = match auth {
                Some((a, k)) => (*a, k.bytes().to_vec()),
                None => (AuthAlgorithm::Null, Vec::new()),
            };
            (*enc, enc_key.bytes().to_vec(), a, k)
        }
        (AlgorithmSpec::Auth { auth, key }, Protocol::Ah) => {
            (EncAlgorithm::Null, Vec::new(), *auth, key.bytes().to_vec())
        }
        (AlgorithmSpec::Esp { .. }, Protocol::Ah) => {
            return Err(inconsistent("AH takes only -A (no -E)"));
        }
        (AlgorithmSpec::Auth { .. }, Protocol::Esp) => {
            return Err(inconsistent(
                "ESP needs -E (write -E null -A ... for integrity only)",
            ));
        }
    };
    let udp_encap = if spec.protocol == SaProtocol::EspUdp {
        let port = |p: Option<u16>| p.filter(|&p| p != 0).unwrap_or(NATT_PORT);
        Some(UdpEncap {
            sport: port(spec.src.port),
            dport: port(spec.dst.port),
        })
    } else {
        if spec.src.port.is_some() || spec.dst.port.is_some() {
            return Err(inconsistent("SA ports are meaningful only with esp-udp"));
        }
        None
    };
    match spec.ext.pad {
        Some(PadOption::ZeroPad) => {
            return Err(not_supported(
                pos,
                "-f zero-pad (ESP pads 1, 2, 3, ... as RFC 4303 §2.4 says)",
            ));
        }
        Some(PadOption::RandomPad) => {
            return Err(not_supported(
                pos,
                "-f random-pad (ESP pads 1, 2, 3, ... as RFC 4303 §2.4 says)",
            ));
        }
        Some(PadOption::SeqPad) | None => {}
    }
    let mode = match spec.ext.mode {
        Some(SaModeSpec::Tunnel) => Mode::Tunnel,
        // setkey's default `any` is installed as transport, as Linux does.
        Some(SaModeSpec::Transport) | Some(SaModeSpec::Any) | None => Mode::Transport,
    };
    let replay_bytes = spec.ext.replay.unwrap_or(0);
    let replay_window = replay_window_packets(replay_bytes)
        .ok_or_else(|| inconsistent(format!("-r {replay_bytes}: window too large")))?;
    let params = SaParams {
        spi: Spi(spec.spi),
        protocol,
        mode,
        src: spec.src.addr,
        dst: spec.dst.addr,
        enc,
        enc_key,
        auth,
        auth_key,
        replay_window,
        esn: false,
        udp_encap,
        seq,
    };
    let sa = Sa::new(params).map_err(|source| Error::Transform { pos: None, source })?;
    let ext = &spec.ext;
    let meta = SaMeta {
        reqid: ext.reqid.unwrap_or(0),
        lifetimes: Lifetimes {
            soft: Limit {
                secs: ext.lifetime_soft.unwrap_or(0),
                bytes: ext.bytes_soft.unwrap_or(0),
            },
            hard: Limit {
                secs: ext.lifetime_hard.unwrap_or(0),
                bytes: ext.bytes_hard.unwrap_or(0),
            },
        },
        replay_bytes,
        esp_udp: spec.protocol == SaProtocol::EspUdp,
    };
    Ok((sa, meta))
}

impl Databases {
    /// The SAD (read-only: it changes through [`Databases::apply`]).
    pub fn sad(&self) -> &Sad {
        &self.sad
    }

    /// The SPD (read-only: it changes through [`Databases::apply`]).
    pub fn spd(&self) -> &Spd {
        &self.spd
    }

    /// These databases with their SAD replaced by `sad` (for benchmarks
    /// and tests that build a large SAD directly, e.g. [`Sad::synthetic`]).
    pub fn with_sad(mut self, sad: Sad) -> Self {
        self.sad = sad;
        self
    }

    /// Empty databases.
    pub fn new() -> Self {
        Databases {
            sad: Sad::new(),
            spd: Spd::new(),
            dump_options: DumpOptions::default(),
            rfc_mode: false,
            tunnel_needs_policy: false,
            last_reqid: MANUAL_REQID_MAX,
        }
    }

    /// The lowest `base` (from 1, at most [`MAX_UNIQUE_REQID`] + 1 - `n`:
    /// what `unique:N` can name) such that no policy of the SPD asks for a
    /// reqid in `base..base + n`: where a set of `n` policies with
    /// `unique:N` requests can go without taking another set's SAs (a
    /// client installing several SA sets, each written with reqids 1, 2,
    /// ...; 16383 sets of two). `None` when the range is full.
    pub fn free_reqids(&self, n: u32) -> Option<u32> {
        self.spd.free_reqids(n, MAX_UNIQUE_REQID)
    }

    /// Parses and applies a script (see [`Databases::apply`]).
    pub fn apply_script(&mut self, text: &str, now: Timestamp) -> Result<Vec<Output>, Error> {
        let stmts = crate::parse(text)?;
        self.apply(&stmts, now)
    }

    /// [`Databases::apply`] for statements built in code (errors then name
    /// the statement's index, from 1, as the line).
    pub fn apply_statements(
        &mut self,
        stmts: &[Statement],
        now: Timestamp,
    ) -> Result<Vec<Output>, Error> {
        let located: Vec<Located<Statement>> = stmts
            .iter()
            .enumerate()
            .map(|(i, s)| Located {
                pos: Pos {
                    line: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    col: 1,
                },
                value: s.clone(),
            })
            .collect();
        self.apply(&located, now)
    }

    /// Applies statements in order, all or nothing: every statement is
    /// checked first against the databases as the earlier statements would
    /// leave them (keys via `opensec`, transforms via `ipsec_esp::Sa::new`,
    /// existence for `add`/`update`/`delete`/`get`/`spdadd`/`spddelete`);
    /// on the first error nothing is changed and the error carries the
    /// statement's line and column. Returns the text `get`, `dump` and
    /// `spddump` print.
    pub fn apply(
        &mut self,
        stmts: &[Located<Statement>],
        now: Timestamp,
    ) -> Result<Vec<Output>, Error> {
        self.apply_as(stmts, now, None)
    }

    /// [`Databases::apply`] on behalf of a client: the SAs (larval ones
    /// too) and policies the statements add are tagged with `owner`
    /// (shown by `dump`/`spddump`, removed together by
    /// [`Databases::delete_owned`]), and the statements may change or
    /// remove only entries that `owner` installed; flushes and `deleteall`
    /// are refused under an owner. `owner` `None` is the operator, who may
    /// change anything (an `update` keeps an entry's owner).
    pub fn apply_as(
        &mut self,
        stmts: &[Located<Statement>],
        now: Timestamp,
        owner: Option<&Owner>,
    ) -> Result<Vec<Output>, Error> {
        let mut ops = Vec::with_capacity(stmts.len());
        let mut last_reqid = self.last_reqid;
        {
            let mut sh = Shadow {
                sad: &self.sad,
                spd: &self.spd,
                sas: HashMap::new(),
                flushed: [false; 2],
                policies: HashMap::new(),
                spd_flushed: false,
                owner,
                reqids: std::collections::HashSet::new(),
            };
            for st in stmts {
                let mut op = plan(&mut sh, &st.value, st.pos, now, &mut last_reqid)
                    .map_err(|e| e.at(st.pos))?;
                if self.rfc_mode {
                    if let Some(fwd) = rfc_fwd(&mut sh, &op) {
                        op = Op::Both(Box::new(op), Box::new(fwd));
                    }
                }
                ops.push(op);
            }
        }
        self.last_reqid = last_reqid;
        let mut out = Vec::new();
        for op in ops {
            self.commit(op, now, owner, &mut out);
        }
        Ok(out)
    }

    /// Removes, at once, every SA, larval SA and policy tagged with `owner`
    /// (a client going away: see [`Databases::apply_as`]).
    pub fn delete_owned(&mut self, owner: &Owner) -> Removed {
        let mut removed = Removed::default();
        let sas: Vec<SaId> = self
            .sad
            .iter()
            .filter(|e| e.owner() == Some(owner))
            .map(SaEntry::id)
            .collect();
        for id in sas {
            removed.sas += usize::from(self.sad.remove(&id).is_some());
        }
        let larval: Vec<SaId> = self
            .sad
            .larval()
            .filter(|l| l.owner.as_ref() == Some(owner))
            .map(|l| l.id)
            .collect();
        for id in larval {
            removed.larval += usize::from(self.sad.remove_larval(&id).is_some());
        }
        let policies: Vec<(Selector, Direction)> = self
            .spd
            .iter()
            .filter(|p| p.owner.as_ref() == Some(owner))
            .map(|p| (p.selector, p.direction))
            .collect();
        for (sel, dir) in policies {
            removed.policies += usize::from(self.spd.remove(&sel, dir).is_ok());
        }
        removed
    }

    fn commit(&mut self, op: Op, now: Timestamp, owner: Option<&Owner>, out: &mut Vec<Output>) {
        match op {
            Op::Both(a, b) => {
                self.commit(*a, now, owner, out);
                self.commit(*b, now, owner, out);
            }
            Op::AddSa(entry) => {
                // Cannot fail: absence was checked when planning.
                let _ = self.sad.insert(entry.with_owner(owner.cloned()));
            }
            Op::AddLarval(mut larval, pos) => {
                larval.owner = owner.cloned();
                let id = larval.id;
                if self.sad.insert_larval(larval).is_ok() {
                    if let Some(l) = self.sad.get_larval(&id) {
                        out.push(Output {
                            pos,
                            text: dump_larval(l, now, 0, &self.dump_options),
                            larval: Some(id),
                        });
                    }
                }
            }
            Op::CompleteLarval(id, entry) => {
                let larval = self.sad.remove_larval(&id);
                let tag = owner.cloned().or(larval.and_then(|l| l.owner));
                let _ = self.sad.insert(entry.with_owner(tag));
            }
            Op::UpdateSa(id, sa, meta) => {
                if let Some(e) = self.sad.get(&id) {
                    let mut next = e.replaced_by(*sa, meta);
                    if owner.is_some() {
                        next = next.with_owner(owner.cloned());
                    }
                    self.sad.replace(&id, next);
                }
            }
            Op::DeleteSa(id) => {
                self.sad.remove(&id);
                self.sad.remove_larval(&id);
            }
            Op::DeleteAll(src, dst, p) => {
                self.sad.delete_all(src, dst, p);
            }
            Op::Flush(p) => self.sad.flush(p),
            Op::Get(id, pos) => {
                let text = match (self.sad.get(&id), self.sad.get_larval(&id)) {
                    (Some(e), _) => Some(dump_sa(e, now, 0, &self.dump_options)),
                    (None, Some(l)) => Some(dump_larval(l, now, 0, &self.dump_options)),
                    (None, None) => None,
                };
                if let Some(text) = text {
                    out.push(Output {
                        pos,
                        text,
                        larval: None,
                    });
                }
            }
            Op::Dump(p, pos) => out.push(Output {
                pos,
                text: dump_sad(&self.sad, p, now, &self.dump_options),
                larval: None,
            }),
            Op::SpdAdd(sel, dir, prio, action) => {
                let _ = self
                    .spd
                    .add_owned(sel, dir, prio, action, now, owner.cloned());
            }
            Op::SpdUpdate(sel, dir, prio, action) => {
                self.spd
                    .update_owned(sel, dir, prio, action, now, owner.cloned());
            }
            Op::SpdDelete(sel, dir) => {
                let _ = self.spd.remove(&sel, dir);
            }
            Op::SpdFlush => self.spd.flush(),
            Op::SpdDump(pos) => out.push(Output {
                pos,
                text: dump_spd(&self.spd, &self.dump_options),
                larval: None,
            }),
        }
    }

    /// `setkey -D`.
    pub fn dump_sad(&self, now: Timestamp) -> String {
        dump_sad(&self.sad, None, now, &self.dump_options)
    }

    /// `setkey -DP`.
    pub fn dump_spd(&self) -> String {
        dump_spd(&self.spd, &self.dump_options)
    }

    /// Lifetimes at `now` (see [`Sad::expire`]).
    pub fn expire(&mut self, now: Timestamp) -> Vec<ExpireEvent> {
        self.sad.expire(now)
    }

    /// The outbound decision for a packet (RFC 4301 §5.1): the first `out`
    /// policy that matches, and for `ipsec` one SA per request chosen by
    /// [`Sad::select_out`]. Records the policy's use time.
    pub fn outbound(&self, pkt: &PacketSelector, now: Timestamp) -> Outbound {
        match self.decide_out(pkt, now) {
            OutDecision::NoPolicy => Outbound::NoPolicy,
            OutDecision::Discard(p) => Outbound::Discard { policy: p.id },
            OutDecision::Bypass(p) => Outbound::Bypass { policy: p.id },
            OutDecision::NoSa(p, request) => Outbound::NoSa {
                policy: p.id,
                request,
            },
            OutDecision::Protect(p, sas) => {
                let mut bundle = Bundle::default();
                for e in sas.iter().flatten() {
                    bundle.push(e.id());
                }
                Outbound::Protect {
                    policy: p.id,
                    bundle,
                }
            }
        }
    }

    /// [`Databases::outbound`] with the policy and the SA entries themselves.
    pub(crate) fn decide_out(&self, pkt: &PacketSelector, now: Timestamp) -> OutDecision<'_> {
        let Some(policy) = self.spd.lookup_used(Direction::Out, pkt, now) else {
            return OutDecision::NoPolicy;
        };
        match &policy.action {
            PolicyAction::Discard => OutDecision::Discard(policy),
            PolicyAction::Bypass => OutDecision::Bypass(policy),
            PolicyAction::Ipsec(reqs) => {
                let mut sas: [Option<&SaEntry>; MAX_BUNDLE] = [None; MAX_BUNDLE];
                let mut n = 0;
                for (i, r) in reqs.iter().enumerate() {
                    match self.sad.select_out(r, pkt, now) {
                        Some(e) => {
                            if let Some(slot) = sas.get_mut(n) {
                                *slot = Some(e);
                                n += 1;
                            }
                        }
                        None if r.optional() => {}
                        None => return OutDecision::NoSa(policy, i),
                    }
                }
                if n == 0 {
                    OutDecision::Bypass(policy)
                } else {
                    OutDecision::Protect(policy, sas)
                }
            }
        }
    }

    /// The inbound policy check (RFC 4301 §5.2 step 4 / §4.4.1): the first
    /// `in` policy matching the inner packet decides. `applied` lists the
    /// SAs that were removed from the packet, outermost first (empty for a
    /// packet that arrived in clear). An `ipsec` policy needs, for each of
    /// its requests (innermost first, so matched from the end), an applied
    /// SA of that protocol and mode, with the request's reqid if it has one
    /// and from its tunnel end points if given; `use` requests may be
    /// missing. No matching policy accepts (as Linux and KAME do).
    pub fn inbound_check(&self, pkt: &PacketSelector, applied: &[SaId], now: Timestamp) -> Inbound {
        let mut entries: [Option<&SaEntry>; MAX_BUNDLE] = [None; MAX_BUNDLE];
        for (slot, id) in entries.iter_mut().zip(applied) {
            *slot = self.sad.get(id);
        }
        let n = applied.len().min(MAX_BUNDLE);
        match self.check_in(pkt, entries.get(..n).unwrap_or(&[]), now) {
            InDecision::Accept(p) => Inbound::Accept {
                policy: p.map(|p| p.id),
            },
            InDecision::Reject(p) => Inbound::Reject { policy: p.id },
        }
    }

    /// [`Databases::inbound_check`] with the SA entries themselves (an SA
    /// that is gone is `None` and satisfies no request).
    pub(crate) fn check_in(
        &self,
        pkt: &PacketSelector,
        applied: &[Option<&SaEntry>],
        now: Timestamp,
    ) -> InDecision<'_> {
        // The innermost SA's cache holds the lookup of the flow it carries.
        let found = match applied.last().copied().flatten() {
            Some(e) => self
                .spd
                .lookup_cached(Direction::In, pkt, e.in_policy_cache(), now),
            None => self.spd.lookup_used(Direction::In, pkt, now),
        };
        let Some(policy) = found else {
            return InDecision::Accept(None);
        };
        let reqs = match &policy.action {
            PolicyAction::Discard => return InDecision::Reject(policy),
            PolicyAction::Bypass => return InDecision::Accept(Some(policy)),
            PolicyAction::Ipsec(reqs) => reqs,
        };
        let mut k = 0;
        for r in reqs.iter().rev() {
            let matched = applied.get(k).copied().flatten().is_some_and(|e| {
                let sa = e.sa();
                let proto_ok = matches!(
                    (r.protocol, sa.protocol()),
                    (ReqProtocol::Esp, Protocol::Esp) | (ReqProtocol::Ah, Protocol::Ah)
                );
                let mode_ok = matches!(
                    (r.mode, sa.mode()),
                    (ReqMode::Transport, Mode::Transport) | (ReqMode::Tunnel, Mode::Tunnel)
                );
                let ends_ok = r
                    .endpoints
                    .is_none_or(|(s, d)| s.addr == sa.src() && d.addr == sa.dst());
                proto_ok && mode_ok && ends_ok && (r.reqid == 0 || r.reqid == e.reqid())
            });
            if matched {
                k += 1;
            } else if !r.optional() {
                return InDecision::Reject(policy);
            }
        }
        // Extra transport-mode SAs are tolerated, tunnels are not (as Linux).
        let extra_tunnel = applied
            .iter()
            .skip(k)
            .flatten()
            .any(|e| e.sa().mode() == Mode::Tunnel);
        if extra_tunnel {
            InDecision::Reject(policy)
        } else {
            InDecision::Accept(Some(policy))
        }
    }
}

/// The `fwd` companion of an `in` policy operation in RFC mode (setkey's
/// `setkeymsg_spdaddr`: same message with direction fwd, the first request's
/// `unique` level made `require` without reqid).
fn rfc_fwd(sh: &mut Shadow<'_>, op: &Op) -> Option<Op> {
    let fwd_action = |action: &PolicyAction| match action {
        PolicyAction::Ipsec(reqs) => {
            let mut reqs = reqs.clone();
            if let Some(first) = reqs.first_mut() {
                if matches!(first.level, Level::Unique(_)) {
                    first.level = Level::Require;
                    first.reqid = 0;
                }
            }
            PolicyAction::Ipsec(reqs)
        }
        other => other.clone(),
    };
    match op {
        Op::SpdAdd(sel, Direction::In, prio, action)
        | Op::SpdUpdate(sel, Direction::In, prio, action) => {
            sh.policies.insert((*sel, Direction::Fwd), true);
            // An existing fwd policy is replaced rather than refused.
            Some(Op::SpdUpdate(
                *sel,
                Direction::Fwd,
                *prio,
                fwd_action(action),
            ))
        }
        Op::SpdDelete(sel, Direction::In) if sh.policy_exists(sel, Direction::Fwd) => {
            sh.policies.insert((*sel, Direction::Fwd), false);
            Some(Op::SpdDelete(*sel, Direction::Fwd))
        }
        _ => None,
    }
}

fn sh_src(p: Pending) -> Option<IpAddr> {
    match p {
        Pending::Gone => None,
        Pending::Sa(src) | Pending::Larval(src) => Some(src),
    }
}

fn sa_id(dst: IpAddr, protocol: SaProtocol, spi: u32) -> SaId {
    SaId {
        dst,
        protocol: sa_protocol(protocol),
        spi: Spi(spi),
    }
}

fn policy_action(
    action: &Action,
    last_reqid: &mut u32,
    sh: &mut Shadow<'_>,
) -> Result<PolicyAction, Error> {
    Ok(match action {
        Action::Discard => PolicyAction::Discard,
        Action::None => PolicyAction::Bypass,
        Action::Ipsec(reqs) => {
            if reqs.len() > MAX_BUNDLE {
                return Err(inconsistent(format!(
                    "at most {MAX_BUNDLE} requests per policy"
                )));
            }
            let mut out = Vec::with_capacity(reqs.len());
            for r in reqs {
                let reqid = match r.level {
                    Level::Unique(Some(n)) => u32::from(n),
                    Level::Unique(None) => {
                        // Linux gen_reqid: above IPSEC_MANUAL_REQID_MAX,
                        // and none a policy uses (`unique:N` up to 32767
                        // reaches into this range). Ends: fewer reqids are
                        // in use than there are above the manual ones.
                        loop {
                            *last_reqid = last_reqid.wrapping_add(1);
                            if *last_reqid <= MANUAL_REQID_MAX {
                                *last_reqid = MANUAL_REQID_MAX + 1;
                            }
                            let r = *last_reqid;
                            if !sh.spd.reqid_in_use(r) && !sh.reqids.contains(&r) {
                                break r;
                            }
                        }
                    }
                    _ => 0,
                };
                if reqid != 0 {
                    sh.reqids.insert(reqid);
                }
                out.push(SaRequest {
                    protocol: r.protocol,
                    mode: r.mode,
                    endpoints: r.endpoints,
                    level: r.level,
                    reqid,
                });
            }
            PolicyAction::Ipsec(out)
        }
    })
}

fn plan(
    sh: &mut Shadow<'_>,
    st: &Statement,
    pos: Pos,
    now: Timestamp,
    last_reqid: &mut u32,
) -> Result<Op, Error> {
    match st {
        Statement::Add(spec) => {
            let id = sa_id(spec.dst.addr, spec.protocol, spec.spi);
            if sh.sa_src(&id).is_some() {
                return Err(Error::SaExists {
                    pos: None,
                    dst: id.dst,
                    protocol: protocol_keyword(id.protocol),
                    spi: id.spi.0,
                });
            }
            let (sa, meta) = build_sa(spec, 0, pos)?;
            sh.sas.insert(id, Pending::Sa(spec.src.addr));
            Ok(Op::AddSa(Box::new(SaEntry::new(sa, meta, now))))
        }
        Statement::GetSpi(g) => {
            let protocol = sa_protocol(g.protocol);
            let id = match g.spi {
                Some(spi) => {
                    let id = sa_id(g.dst.addr, g.protocol, spi);
                    if sh.sa_src(&id).is_some() {
                        return Err(Error::SaExists {
                            pos: None,
                            dst: id.dst,
                            protocol: protocol_keyword(id.protocol),
                            spi,
                        });
                    }
                    id
                }
                None => {
                    let mut random = [0u8; 4 * 65];
                    getrandom::fill(&mut random).map_err(|e| {
                        inconsistent(format!("no random numbers to pick an SPI with: {e}"))
                    })?;
                    let mut words = random
                        .chunks_exact(4)
                        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
                    let spi = pick_spi(
                        SPI_RANGE,
                        || words.next().unwrap_or(0),
                        |spi| {
                            sh.sa_src(&SaId {
                                dst: g.dst.addr,
                                protocol,
                                spi,
                            })
                            .is_some()
                        },
                    )
                    .ok_or_else(|| no_free_spi(g.dst.addr, protocol, &SPI_RANGE))?;
                    SaId {
                        dst: g.dst.addr,
                        protocol,
                        spi,
                    }
                }
            };
            if g.src.port.is_some() || g.dst.port.is_some() {
                return Err(inconsistent(
                    "getspi takes no ports (the update that completes it gives them)",
                ));
            }
            let mut larval = Larval::new(id, g.src.addr, now);
            larval.mode = match g.ext.mode {
                Some(SaModeSpec::Transport) => Some(Mode::Transport),
                Some(SaModeSpec::Tunnel) => Some(Mode::Tunnel),
                Some(SaModeSpec::Any) | None => None,
            };
            larval.reqid = g.ext.reqid.unwrap_or(0);
            if let Some(secs) = g.ext.lifetime_hard.filter(|&s| s != 0) {
                larval.lifetime_secs = secs;
            }
            sh.sas.insert(id, Pending::Larval(g.src.addr));
            Ok(Op::AddLarval(larval, pos))
        }
        Statement::Update(spec) => {
            let id = sa_id(spec.dst.addr, spec.protocol, spec.spi);
            let state = sh.sa_state(&id);
            let (Pending::Sa(src) | Pending::Larval(src)) = state else {
                return Err(Error::SaNotFound {
                    pos: None,
                    dst: id.dst,
                    protocol: protocol_keyword(id.protocol),
                    spi: id.spi.0,
                });
            };
            if src != spec.src.addr {
                return Err(inconsistent(format!(
                    "update cannot change the source of the SA (installed from {src})"
                )));
            }
            sh.check_sa_owner(&id)?;
            let (sa, meta) = build_sa(spec, 0, pos)?;
            if let Pending::Larval(_) = state {
                // getspi's SA completed: a new SA (sequence numbers from 1).
                sh.sas.insert(id, Pending::Sa(src));
                return Ok(Op::CompleteLarval(
                    id,
                    Box::new(SaEntry::new(sa, meta, now)),
                ));
            }
            // The updated SA continues the installed one's sequence numbers
            // (RFC 4303 §3.3.3: they must not repeat under the same SA) and
            // its replay window, so packets seen before the update cannot
            // be replayed: see `SaEntry::replaced_by`, at commit.
            if sh.sas.contains_key(&id) {
                // Added earlier in this batch: the update replaces the pending add.
                sh.sas.insert(id, Pending::Sa(src));
            }
            Ok(Op::UpdateSa(id, Box::new(sa), meta))
        }
        Statement::Get(r) | Statement::Delete(r) => {
            let id = sa_id(r.dst.addr, r.protocol, r.spi);
            if sh.sa_src(&id) != Some(r.src.addr) {
                return Err(Error::SaNotFound {
                    pos: None,
                    dst: id.dst,
                    protocol: protocol_keyword(id.protocol),
                    spi: id.spi.0,
                });
            }
            if matches!(st, Statement::Get(_)) {
                Ok(Op::Get(id, pos))
            } else {
                sh.check_sa_owner(&id)?;
                sh.sas.insert(id, Pending::Gone);
                Ok(Op::DeleteSa(id))
            }
        }
        Statement::DeleteAll {
            src, dst, protocol, ..
        } => {
            sh.check_bulk("deleteall")?;
            let p = sa_protocol(*protocol);
            let base: Vec<SaId> = sh
                .sad
                .between(*src, *dst, p)
                .map(SaEntry::id)
                .chain(
                    sh.sad
                        .larval()
                        .filter(|l| l.src == *src && l.id.dst == *dst && l.id.protocol == p)
                        .map(|l| l.id),
                )
                .collect();
            for id in base {
                if sh.sa_src(&id) == Some(*src) {
                    sh.sas.insert(id, Pending::Gone);
                }
            }
            for (id, v) in sh.sas.iter_mut() {
                if id.dst == *dst && id.protocol == p && sh_src(*v) == Some(*src) {
                    *v = Pending::Gone;
                }
            }
            Ok(Op::DeleteAll(*src, *dst, p))
        }
        Statement::Flush(p) => {
            sh.check_bulk("flush")?;
            let p = p.map(sa_protocol);
            match p {
                None => sh.flushed = [true; 2],
                Some(p) => sh.flushed[proto_index(p)] = true,
            }
            sh.sas.retain(|id, _| p.is_some_and(|p| id.protocol != p));
            Ok(Op::Flush(p))
        }
        Statement::Dump(p) => Ok(Op::Dump(p.map(sa_protocol), pos)),
        Statement::SpdAdd(spec) | Statement::SpdUpdate(spec) => {
            let sel = selector_of(spec);
            let dir = spec.policy.direction;
            let add = matches!(st, Statement::SpdAdd(_));
            if add && sh.policy_exists(&sel, dir) {
                return Err(Error::PolicyExists {
                    pos: None,
                    selector: format!("{} {}", sel.setkey_format(), dir.keyword()),
                });
            }
            if !add && sh.policy_exists(&sel, dir) {
                sh.check_policy_owner(&sel, dir)?;
            }
            let Some(action) = &spec.policy.action else {
                return Err(inconsistent("a policy needs an action"));
            };
            let prio = spec
                .policy
                .priority
                .map(PrioritySpec::kernel_value)
                .unwrap_or(PRIORITY_DEFAULT);
            let action = policy_action(action, last_reqid, sh)?;
            sh.policies.insert((sel, dir), true);
            Ok(if add {
                Op::SpdAdd(sel, dir, prio, action)
            } else {
                Op::SpdUpdate(sel, dir, prio, action)
            })
        }
        Statement::SpdDelete(spec) => {
            let sel = selector_of(spec);
            let dir = spec.policy.direction;
            if !sh.policy_exists(&sel, dir) {
                return Err(Error::PolicyNotFound {
                    pos: None,
                    selector: format!("{} {}", sel.setkey_format(), dir.keyword()),
                });
            }
            sh.check_policy_owner(&sel, dir)?;
            sh.policies.insert((sel, dir), false);
            Ok(Op::SpdDelete(sel, dir))
        }
        Statement::SpdFlush => {
            sh.check_bulk("spdflush")?;
            sh.spd_flushed = true;
            sh.policies.clear();
            Ok(Op::SpdFlush)
        }
        Statement::SpdDump => Ok(Op::SpdDump(pos)),
    }
}
