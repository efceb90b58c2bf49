//! `sadb`: the Security Association Database and Security Policy Database
//! (RFC 4301 §4.4) and the setkey(8) language of ipsec-tools.
//!
//! What it does:
//! - [`parse`] reads setkey scripts (`add`, `update`, `get`, `delete`,
//!   `deleteall`, `flush`, `dump`, `spdadd`, `spdupdate`, `spddelete`,
//!   `spdflush`, `spddump`) into a checked syntax tree ([`Statement`]);
//!   errors carry line:column and what was expected. Printing a statement
//!   gives text that parses back to the same tree.
//!
//! What it does not do: no IO of any kind (no files, sockets, clock or name
//! resolution; time is passed in), no IPComp, TCP-MD5 or security labels
//! (these are reported as "not supported").
//!
//! ```
//! let stmts = sadb::parse(
//!     "spdadd 192.168.0.11/32[5062] 192.168.0.10/32[5068] udp -P out ipsec esp/transport//unique:1;",
//! ).unwrap();
//! assert_eq!(stmts[0].value.to_string(),
//!     "spdadd 192.168.0.11/32[5062] 192.168.0.10/32[5068] udp -P out ipsec esp/transport//unique:1;");
//! ```

mod apply;
pub mod ast;
pub mod dump;
mod error;
mod parse;
mod print;
pub mod sad;
pub mod spd;
mod time;

pub use apply::{
    Bundle, Databases, Inbound, MAX_BUNDLE, NATT_PORT, Outbound, Output, build_sa,
    replay_window_packets, selector_of,
};
pub use ast::{Located, Pos, Statement};
pub use dump::DumpOptions;
pub use error::Error;
pub use parse::parse;
pub use print::print_script;
pub use sad::{ExpireEvent, ExpireKind, SaEntry, SaId, SaMeta, SaState, Sad};
pub use spd::{PacketSelector, Policy, PolicyAction, SaRequest, Selector, Spd, UpperInfo};
pub use time::Timestamp;
