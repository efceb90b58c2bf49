//! One ipsecd per network namespace: its default paths, the lock that
//! enforces it, and the checks made before a daemon touches anything.
//!
//! Every raw ESP socket of a namespace sees every ESP packet, and the
//! routing rules and nft guards of two daemons would fight, so a namespace
//! holds one ipsecd. The lock is an `flock` on `/run/ipsecd/ns-INODE.lock`
//! (INODE: the namespace's, see [`crate::sys::netns_id`]), held for the
//! daemon's life and released by the kernel however it ends. The default
//! control socket and state file are named after the namespace too, so
//! daemons in several namespaces run with the defaults, and `setkey` in a
//! namespace finds that namespace's daemon.

use std::io::{Read, Seek, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::sys::{self, FileLock};

/// Where the daemon's files live by default.
pub const RUN_DIR: &str = "/run/ipsecd";

/// The file-name stem of this namespace (`ns-INODE`; `ns-unknown` if
/// `/proc` is not mounted).
fn stem() -> String {
    match sys::netns_id() {
        Ok(id) => format!("ns-{id}"),
        Err(_) => "ns-unknown".to_string(),
    }
}

/// The default control socket of this namespace's daemon.
pub fn default_socket() -> PathBuf {
    Path::new(RUN_DIR).join(format!("{}.sock", stem()))
}

/// The default state file of this namespace's daemon.
pub fn default_state_file() -> PathBuf {
    Path::new(RUN_DIR).join(format!("{}.state", stem()))
}

/// The lock of this namespace.
pub fn lock_path() -> PathBuf {
    Path::new(RUN_DIR).join(format!("{}.lock", stem()))
}

/// Claims this network namespace for this process; refuses (with the
/// holder's pid) if another ipsecd holds it.
pub fn claim() -> Result<FileLock> {
    std::fs::create_dir_all(RUN_DIR).with_context(|| format!("cannot create {RUN_DIR}"))?;
    let path = lock_path();
    let Some(mut lock) =
        FileLock::try_lock(&path).with_context(|| format!("cannot open {}", path.display()))?
    else {
        let mut holder = String::new();
        let _ = std::fs::File::open(&path).and_then(|mut f| f.read_to_string(&mut holder));
        bail!(
            "another ipsecd (pid {}) runs in this network namespace: one per namespace (lock {})",
            holder.trim(),
            path.display()
        );
    };
    let f = lock.file();
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = writeln!(f, "{}", std::process::id());
    Ok(lock)
}

/// Checks that a control socket path is free: nothing answers there (a
/// stale socket file of a crashed run is removed) and its directory exists
/// (created only for the default directory).
pub fn check_socket(path: &Path) -> Result<()> {
    if UnixStream::connect(path).is_ok() {
        bail!(
            "{} belongs to a running process (another ipsecd?): choose another --socket",
            path.display()
        );
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    if dir == Path::new(RUN_DIR) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    } else if !dir.as_os_str().is_empty() && !dir.is_dir() {
        bail!(
            "the directory of --socket {} does not exist",
            path.display()
        );
    }
    if path.exists() {
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    Ok(())
}

/// Checks a state file's directory (as for the socket) and that the state
/// it holds, if any, is not a live daemon's (another namespace's daemon
/// given the same `--state-file`).
pub fn check_state_file(path: &Path, pid: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if dir == Path::new(RUN_DIR) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    } else if !dir.as_os_str().is_empty() && !dir.is_dir() {
        bail!(
            "the directory of --state-file {} does not exist",
            path.display()
        );
    }
    if pid != 0 && pid != std::process::id() && sys::process_named(pid, "ipsecd") {
        bail!(
            "the state file {} belongs to a running ipsecd (pid {pid}): choose another --state-file",
            path.display()
        );
    }
    Ok(())
}
