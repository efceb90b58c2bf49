//! Test support for the workspace's tests; a `[dev-dependencies]` entry
//! only, never a dependency of library or binary code.
//!
//! - [`peer`]: whether an independent peer (tshark, scapy, openssl,
//!   strongSwan, pycrate, root, any program) is here; without it a test
//!   prints `SKIPPED <test>: needs X` and returns, or fails when `CI` is set.
//! - [`packet`]: IPv4/IPv6 UDP, TCP and ICMP packets and Ethernet frames
//!   built by `etherparse`, with correct lengths and checksums, so that no
//!   test builds its input with the code it tests; and the inverse, the
//!   UDP/TCP payload of a captured packet, parsed by `etherparse` too.
//! - [`pcap`]: libpcap files (raw IP, Ethernet, ...) to write test input
//!   and read the output of the tools.
//! - [`tshark`]: tshark runs (fields with ESP SAs in its `esp_sa` table,
//!   SigComp decompression).
//! - [`wait`]: wait on a condition with a timeout instead of sleeping.
//! - [`proc`]: child processes waited on by printed line or typed JSON
//!   event, killed when their guard drops.
//! - [`corpus`]: the SIP corpora under `vectors/`, sorted by file name.
//! - [`TempDir`]: a temporary directory removed on drop.
//!
//! It does not depend on any crate of the workspace: the dependencies point
//! `tools -> sadb -> ipsec-esp -> opensec`, and every one of them may use
//! it in its tests.
//!
//! ```
//! let pkt = testkit::packet::udp("192.0.2.1", 5060, "192.0.2.2", 5060, b"hi");
//! let seg = testkit::packet::transport(testkit::pcap::LINKTYPE_RAW, &pkt).unwrap();
//! assert_eq!((seg.sport, seg.payload), (5060, &b"hi"[..]));
//! ```

// Test support: a failed expectation is a panic, as in the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod corpus;
pub mod packet;
pub mod pcap;
pub mod peer;
pub mod proc;
pub mod tshark;
pub mod wait;

use std::path::{Path, PathBuf};

pub use peer::{Peer, require};
pub use wait::{poll_until, wait_until};

/// A fresh directory under the system temporary directory, named after the
/// test and the process, removed (with its contents) when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/<name>-<pid>`, emptied first if it exists.
    pub fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        TempDir(d)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
