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

/// Binds the socket with mode 0600 (the path was checked free by
/// `instance::check_socket`); failing to bind is fatal.
pub fn bind(path: &Path) -> Result<UnixListener> {
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

fn handle(req: &str, sh: &Shared, net: &std::sync::Mutex<Net>) -> Result<String, String> {
    let (cmd, body) = req.split_once('\n').unwrap_or((req, ""));
    match cmd.trim() {
        "dump" => Ok(sh.engine.snapshot().dump_sad(now())),
        // Every policy with its counters (kept by the engine).
        "spddump" => Ok(sh.engine.snapshot().dump_spd()),
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
    // New SAs get their sequence numbers recorded before the snapshot
    // that holds them is published.
    let outputs = sh.engine.update(|db| -> Result<_> {
        let out = db
            .apply(&stmts, now())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        sh.seqs
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned lock"))?
            .adopt(db)?;
        Ok(out)
    })?;
    let plan = net::plan(sh.engine.snapshot().spd(), &net.params);
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
