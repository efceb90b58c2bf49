//! Independent peers: programs nobody here wrote that the interop tests
//! check our output with (tshark, scapy, openssl, strongSwan, pycrate), and
//! what the namespace tests need (root, `ip`, `nft`, `tcpdump`).
//!
//! One rule for every test: a test calls [`require`] with the peers it
//! needs before it does anything. Without one of them it prints
//! `SKIPPED <test>: needs X` and returns `false` (the test then returns and
//! passes), unless the `CI` environment variable is set: there a missing
//! peer is a failure (`scripts/test` installs them all and sets `CI`).
//!
//! ```
//! use testkit::{Peer, require};
//! if !require("my_test", &[Peer::Program("sh")]) {
//!     return;
//! }
//! ```

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Something a test needs from the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Wireshark's command line, `tshark --version` runs.
    Tshark,
    /// `python3` with scapy's IPsec layer (`import scapy.layers.ipsec`).
    Scapy,
    /// The `openssl` command (`openssl version` runs).
    Openssl,
    /// strongSwan's IKE daemon and its command line: Debian's
    /// `/usr/lib/ipsec/charon` and `swanctl` on `PATH`.
    Strongswan,
    /// `python3` with pycrate (`import pycrate_mobile`).
    Pycrate,
    /// Running as root (network namespaces, raw sockets).
    Root,
    /// `python3` able to import this module (e.g. `"cryptography"`).
    Python(&'static str),
    /// An executable of this name on `PATH` (e.g. `"nft"`, `"tcpdump"`).
    Program(&'static str),
}

impl Peer {
    /// Whether the machine has it now.
    pub fn available(self) -> bool {
        match self {
            Peer::Tshark => runs("tshark", &["--version"]),
            Peer::Scapy => python_imports("scapy.layers.ipsec"),
            Peer::Openssl => runs("openssl", &["version"]),
            // `swanctl --version` exits 2 when no charon is running.
            Peer::Strongswan => Path::new("/usr/lib/ipsec/charon").exists() && on_path("swanctl"),
            Peer::Pycrate => python_imports("pycrate_mobile"),
            Peer::Root => is_root(),
            Peer::Python(module) => python_imports(module),
            Peer::Program(name) => on_path(name),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tshark => f.write_str("tshark"),
            Peer::Scapy => f.write_str("python3 with scapy"),
            Peer::Openssl => f.write_str("openssl"),
            Peer::Strongswan => f.write_str("strongSwan (charon, swanctl)"),
            Peer::Pycrate => f.write_str("python3 with pycrate"),
            Peer::Root => f.write_str("root"),
            Peer::Python(m) => write!(f, "python3 with {m}"),
            Peer::Program(p) => f.write_str(p),
        }
    }
}

/// Whether `test` can run: true when every peer is available. Otherwise
/// prints `SKIPPED <test>: needs X, Y` to stderr and returns false, or
/// panics with the same words when the `CI` environment variable is set.
pub fn require(test: &str, peers: &[Peer]) -> bool {
    let missing: Vec<String> = peers
        .iter()
        .filter(|p| !p.available())
        .map(Peer::to_string)
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: needs {}", missing.join(", "));
    if std::env::var_os("CI").is_some() {
        panic!("{msg}; CI is set, so a missing peer is a failure");
    }
    eprintln!("SKIPPED {msg}");
    false
}

/// `program args` starts and exits 0.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn python_imports(module: &str) -> bool {
    runs("python3", &["-c", &format!("import {module}")])
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_missing_and_named() {
        assert!(!Peer::Program("no-such-program-here").available());
        assert!(Peer::Program("sh").available());
        assert_eq!(
            Peer::Python("cryptography").to_string(),
            "python3 with cryptography"
        );
    }
}
