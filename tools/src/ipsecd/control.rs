//! The control socket: a Unix stream socket (mode 0600, root peers only)
//! that `setkey` talks to.
//!
//! Protocol: the client writes one request and shuts down its write side;
//! the daemon answers and closes. A request is a command line
//! (`apply`, `check`, `dump`, `spddump`, `stats`) followed, for `apply`
//! and `check`, by a setkey script. The answer starts with `OK` or `ERR`
//! on its own line, followed by the text to print (dump output, or the
//! error naming the line and column).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::dataplane::{Shared, now};
use super::net::{self, Net};

/// The largest request accepted (a setkey script).
const MAX_REQUEST: u64 = 16 << 20;

/// Binds the socket (replacing a stale one) with mode 0600.
pub fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path)
        .with_context(|| format!("cannot bind the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves requests one at a time (setkey runs are short); never returns.
pub fn serve(listener: UnixListener, sh: Arc<Shared>, net: Arc<std::sync::Mutex<Net>>) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let reply = match crate::sys::peer_uid(&conn) {
            Ok(0) => {
                let mut req = String::new();
                match (&mut conn).take(MAX_REQUEST).read_to_string(&mut req) {
                    Ok(_) => handle(&req, &sh, &net),
                    Err(e) => Err(format!("bad request: {e}")),
                }
            }
            Ok(uid) => Err(format!("permission denied (uid {uid}): root only")),
            Err(e) => Err(format!("cannot check the peer: {e}")),
        };
        let text = match reply {
            Ok(t) => format!("OK\n{t}"),
            Err(t) => format!("ERR\n{t}\n"),
        };
        let _ = conn.write_all(text.as_bytes());
    }
}

/// Adds a `stats:` line to every policy of a `setkey -DP` dump.
fn with_policy_counters(
    dump: &str,
    counters: &std::collections::HashMap<u32, super::dataplane::PolicyCounters>,
) -> String {
    let mut out = String::with_capacity(dump.len() * 2);
    let mut spid = None;
    for line in dump.lines() {
        out.push_str(line);
        out.push('\n');
        if let Some(rest) = line.strip_prefix("\tspid=") {
            spid = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse::<u32>().ok());
        }
        if line == "\trefcnt=1" {
            if let Some(id) = spid.take() {
                let c = counters.get(&id).copied().unwrap_or_default();
                out.push_str(&format!(
                    "\tstats: packets={} bytes={} drops={}\n",
                    c.packets, c.bytes, c.drops
                ));
            }
        }
    }
    out
}

fn handle(req: &str, sh: &Shared, net: &std::sync::Mutex<Net>) -> Result<String, String> {
    let (cmd, body) = req.split_once('\n').unwrap_or((req, ""));
    match cmd.trim() {
        "dump" => {
            let st = sh.state.lock().map_err(|_| "poisoned lock")?;
            Ok(st.db.dump_sad(now()))
        }
        "spddump" => {
            let st = sh.state.lock().map_err(|_| "poisoned lock")?;
            Ok(with_policy_counters(&st.db.dump_spd(), &st.policies))
        }
        "stats" => Ok(sh.stats.report()),
        "check" => sadb::parse(body)
            .map(|s| format!("{} statements\n", s.len()))
            .map_err(|e| e.to_string()),
        "apply" => apply(body, sh, net).map_err(|e| format!("{e:#}")),
        other => Err(format!("unknown command {other:?}")),
    }
}

/// Applies a script atomically, then brings routes and nft in line.
fn apply(script: &str, sh: &Shared, net: &std::sync::Mutex<Net>) -> Result<String> {
    let stmts = sadb::parse(script).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut net = net.lock().map_err(|_| anyhow::anyhow!("poisoned lock"))?;
    let (outputs, plan) = {
        let mut st = sh
            .state
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned lock"))?;
        let out = st
            .db
            .apply(&stmts, now())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let plan = net::plan(&st.db.spd, &net.params);
        (out, plan)
    };
    tracing::info!(
        statements = stmts.len(),
        rules = plan.rules.len(),
        "applied a setkey script"
    );
    net.sync(&plan).context("routing/netfilter update")?;
    Ok(outputs.into_iter().map(|o| o.text).collect())
}

/// Sends one request to the daemon and returns its answer text; an `ERR`
/// answer becomes an error with the daemon's message.
pub fn request(socket: &Path, cmd: &str, body: &str) -> Result<String> {
    let mut s = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot connect to ipsecd at {} (is it running? see --socket)",
            socket.display()
        )
    })?;
    s.write_all(cmd.as_bytes())?;
    s.write_all(b"\n")?;
    s.write_all(body.as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    match answer.split_once('\n') {
        Some(("OK", rest)) => Ok(rest.to_string()),
        Some(("ERR", rest)) => bail!("{}", rest.trim_end()),
        _ => bail!("malformed answer from ipsecd"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_counters_follow_refcnt() {
        let dump = "a\n\tspid=3 seq=0 pid=1\n\trefcnt=1\nb\n\tspid=9 seq=1 pid=1\n\trefcnt=1\n";
        let mut c = std::collections::HashMap::new();
        c.insert(
            3,
            super::super::dataplane::PolicyCounters {
                packets: 2,
                bytes: 100,
                drops: 1,
            },
        );
        let out = with_policy_counters(dump, &c);
        assert!(out.contains("\trefcnt=1\n\tstats: packets=2 bytes=100 drops=1\nb\n"));
        assert!(out.ends_with("\trefcnt=1\n\tstats: packets=0 bytes=0 drops=0\n"));
    }
}
