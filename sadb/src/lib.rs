//! `sadb`: the Security Association Database and Security Policy Database
//! (RFC 4301 §4.4) and the setkey(8) language of ipsec-tools. No IO.
//!
//! - [`parse`] reads setkey scripts (`add`, `update`, `getspi`, `get`, `delete`,
//!   `deleteall`, `flush`, `dump`, `spdadd`, `spdupdate`, `spddelete`,
//!   `spdflush`, `spddump`; `-m -r -u -f -lh -ls -bh -bs -E -A`; keys as
//!   `"string"` or `0x` hex; `#` comments; IPv4/IPv6 with `/prefix`,
//!   `[port]`, `[any]`; upper-layer protocols by name, number, `any`, with
//!   ICMP type,code; priorities; request bundles) into a checked syntax tree
//!   ([`ast`]). Errors carry line:column and what was expected; valid but
//!   unsupported constructs (IPComp, TCP-MD5, `-ctx`, host names, tagged
//!   policies) are refused as "not supported". Printing a
//!   [`Statement`] gives text that parses back to the same statement.
//! - [`Sad`] holds SAs keyed by (destination, protocol, SPI) in a hash map
//!   (O(1) inbound lookup) with reqid, lifetimes (soft/hard, seconds and
//!   bytes, evaluated at a `now` the caller passes), state and counters;
//!   the transform itself is an [`ipsec_esp::Sa`]. `getspi` holds an SPI
//!   in a larval SA ([`Larval`], picked by [`Sad::unused_spi`]) until an
//!   `update` completes it; SAs and policies may carry an [`Owner`] tag
//!   ([`Databases::apply_as`], [`Databases::delete_owned`]).
//! - [`Spd`] holds ordered policies (priority, then insertion) with RFC 4301
//!   selectors, directions `in`/`out`/`fwd`, actions `discard`, `none`,
//!   `ipsec` with request lists; [`Databases::outbound`] picks the SAs the
//!   way Linux and KAME do (`unique:N` binds to `-u N`), fail closed.
//! - [`Databases::apply`] applies statements all or nothing; the SAD and
//!   SPD are read-only from outside ([`Databases::sad`], [`Databases::spd`]).
//! - The engine ([`engine`]): [`Databases::protect`] and
//!   [`Databases::unprotect`] do RFC 4301 §5 on whole packets in the
//!   caller's buffer (selector, SPD, bundle, transform, counters, inbound
//!   check, ICMP errors per §6.2), through `&self` on any number of
//!   threads; [`Engine`] swaps snapshots on each change. The SPD lookup
//!   goes through an index (not linear in the number of policies).
//! - [`dump`] prints `setkey -D` / `setkey -DP` output (times in UTC from
//!   `now`) and reads it back.
//!
//! setkey(8) gives `-r` in bytes; an SA gets a window of 8 packets per byte
//! ([`replay_window_packets`]), and `setkey -D` prints the byte value.
//!
//! setkey's RFC mode (`-r`: `fwd` copies of `in` policies) is
//! [`Databases::rfc_mode`], off by default.
//!
//! Not here: IPComp, TCP-MD5, security labels, host name resolution,
//! per-socket policies, the `-p`/`-a` dump flags, use-time lifetimes
//! (setkey cannot set them).
//!
//! ```
//! use sadb::{Databases, Outbound, PacketSelector, Timestamp};
//! let mut db = Databases::new();
//! let now = Timestamp(1_795_314_303);
//! db.apply_script(r#"
//!     spdadd 192.168.0.11/32[5062] 192.168.0.10/32[5068] udp
//!         -P out ipsec esp/transport//unique:1;
//!     add 192.168.0.11 192.168.0.10 esp 4444 -m transport -u 1
//!         -E des-ede3-cbc "123456789012123456789012" -A hmac-md5 "1234567890123456";
//! "#, now).unwrap();
//! let pkt = PacketSelector::udp("192.168.0.11".parse().unwrap(), 5062,
//!                               "192.168.0.10".parse().unwrap(), 5068);
//! match db.outbound(&pkt, now) {
//!     Outbound::Protect { bundle, .. } => assert_eq!(bundle.iter().next().unwrap().spi.0, 4444),
//!     other => panic!("{other:?}"),
//! }
//! // The engine protects a whole packet (here IPv4/UDP 5062 -> 5068).
//! let mut buf = vec![0u8; 256];
//! let pkt = [0x45, 0, 0, 28, 0, 1, 0x40, 0, 64, 17, 0, 0, 192, 168, 0, 11, 192, 168, 0, 10,
//!            0x13, 0xc6, 0x13, 0xcc, 0, 8, 0, 0];
//! buf[64..92].copy_from_slice(&pkt);
//! let mut iv = |iv: &mut [u8]| iv.fill(7); // tests only: use a CSPRNG
//! match db.protect(&mut buf, 64..92, now, &mut iv) {
//!     sadb::Outgoing::Protected(p) => assert_eq!(p.sas.iter().next().unwrap().id.spi.0, 4444),
//!     other => panic!("{other:?}"),
//! }
//! assert!(db.dump_sad(now).contains("spi=4444(0x0000115c) reqid=1(0x00000001)"));
//! ```

mod apply;
pub mod ast;
pub mod dump;
pub mod engine;
mod error;
mod owner;
mod parse;
mod print;
pub mod sad;
pub mod spd;
mod time;

pub use apply::{
    Bundle, Databases, Inbound, MAX_BUNDLE, MAX_UNIQUE_REQID, NATT_PORT, Outbound, Output, Removed,
    build_sa, replay_window_packets, selector_of,
};
pub use ast::{Located, Pos, Statement};
pub use dump::DumpOptions;
pub use engine::{
    Deliver, Discard, DiscardReason, DropReason, Dropped, Engine, Incoming, Outgoing, Protected,
    Reader, Received, SaTrace, SaUse, UNPROTECT_HEADROOM, Wire,
};
pub use error::Error;
pub use owner::{MAX_OWNER_LEN, Owner};
pub use parse::parse;
pub use print::print_script;
pub use sad::{
    ExpireEvent, ExpireKind, LARVAL_LIFETIME_SECS, Larval, SPI_RANGE, SaEntry, SaId, SaMeta,
    SaState, Sad,
};
pub use spd::{
    FlowCache, PacketSelector, Policy, PolicyAction, PolicyCounters, PolicyStats, SaRequest,
    Selector, Spd, UpperInfo,
};
pub use time::Timestamp;

/// The example of the crate's README.md, run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
