//! The control socket: a Unix stream socket (mode 0600, root peers only)
//! that `setkey` and other clients ([`super::client`]) talk to.
//!
//! Protocol: the client writes one request and shuts down its write side;
//! the daemon answers and closes. A request is a command line, followed
//! for some commands by a setkey script:
//!
//! | request | body | answer text |
//! |---|---|---|
//! | `apply [owner=TAG]` | script (all or nothing) | what `get`/`dump`/`getspi` print |
//! | `getspi [owner=TAG]` | only `getspi` statements | `larval DST PROTO 0xSPI` per statement |
//! | `delete-owned TAG` | - | `removed sas=N larval=N policies=N` |
//! | `free-reqids N` | - | `reqids BASE`: BASE..BASE+N used by no policy |
//! | `check` | script | `N statements` |
//! | `dump`, `spddump` | - | `setkey -D`, `setkey -DP` |
//! | `stats` | - | `name value` per counter |
//!
//! Under `owner=TAG` the entries added are tagged (shown as `owner=TAG`
//! in dumps) and only the tag's own entries may be changed or removed
//! (`sadb::Databases::apply_as`). The answer starts with `OK` or `ERR` on
//! its own line, followed by the text (or the error naming the line and
//! column).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use sadb::Owner;

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
    let (line, body) = req.split_once('\n').unwrap_or((req, ""));
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    let owner = || -> Result<Option<Owner>, String> {
        match args.as_slice() {
            [] => Ok(None),
            [a] => match a.strip_prefix("owner=") {
                Some(tag) => Owner::new(tag).map(Some).map_err(|e| e.to_string()),
                None => Err(format!(
                    "{cmd}: unknown argument {a:?} (expected owner=TAG)"
                )),
            },
            _ => Err(format!("{cmd}: too many arguments")),
        }
    };
    let none = || -> Result<(), String> {
        match args.first() {
            None => Ok(()),
            Some(a) => Err(format!("{cmd} takes no argument, got {a:?}")),
        }
    };
    match cmd {
        "dump" => none().map(|_| sh.engine.snapshot().dump_sad(now())),
        // Every policy with its counters (kept by the engine).
        "spddump" => none().map(|_| sh.engine.snapshot().dump_spd()),
        "stats" => none().map(|_| sh.stats.report()),
        "check" => none().and_then(|_| {
            sadb::parse(body)
                .map(|s| format!("{} statements\n", s.len()))
                .map_err(|e| e.to_string())
        }),
        "apply" => {
            let owner = owner()?;
            apply(body, owner.as_ref(), false, sh, net)
                .map(|outs| outs.into_iter().map(|o| o.text).collect())
                .map_err(|e| format!("{e:#}"))
        }
        "getspi" => {
            let owner = owner()?;
            apply(body, owner.as_ref(), true, sh, net)
                .map(|outs| {
                    outs.iter()
                        .filter_map(|o| o.larval)
                        .map(|id| larval_line(&id))
                        .collect()
                })
                .map_err(|e| format!("{e:#}"))
        }
        "delete-owned" => {
            let [tag] = args.as_slice() else {
                return Err("delete-owned takes one owner tag".into());
            };
            let owner = Owner::new(tag).map_err(|e| e.to_string())?;
            delete_owned(&owner, sh, net).map_err(|e| format!("{e:#}"))
        }
        // Reqids for a client's `unique:N` policies that no policy uses
        // (a UE's two outbound SAs share their addresses; only the reqid
        // tells their policies apart).
        "free-reqids" => {
            let n = match args.as_slice() {
                [n] => n
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1024).contains(n))
                    .ok_or_else(|| format!("free-reqids: {n:?} is not a count from 1 to 1024"))?,
                _ => return Err("free-reqids takes one count".into()),
            };
            sh.engine
                .snapshot()
                .free_reqids(n)
                .map(|base| format!("reqids {base}\n"))
                .ok_or_else(|| format!("no {n} consecutive reqids are free"))
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

/// The answer line of `getspi` for one held SPI.
pub fn larval_line(id: &sadb::SaId) -> String {
    format!(
        "larval {} {} 0x{:08x}\n",
        id.dst,
        sadb::sad::protocol_keyword(id.protocol),
        id.spi.0
    )
}

/// Applies a script atomically (under `owner`, if given), then brings
/// routes and nft in line. With `only_getspi`, the script may hold nothing
/// but `getspi` statements.
fn apply(
    script: &str,
    owner: Option<&Owner>,
    only_getspi: bool,
    sh: &Shared,
    net: &std::sync::Mutex<Net>,
) -> Result<Vec<sadb::Output>> {
    let stmts = sadb::parse(script).map_err(|e| anyhow::anyhow!("{e}"))?;
    if only_getspi {
        if let Some(st) = stmts
            .iter()
            .find(|s| !matches!(s.value, sadb::Statement::GetSpi(_)))
        {
            bail!(
                "line {}, column {}: the getspi request takes only getspi statements",
                st.pos.line,
                st.pos.col
            );
        }
    }
    let mut net = net.lock().map_err(|_| anyhow::anyhow!("poisoned lock"))?;
    // New SAs get their sequence numbers recorded before the snapshot
    // that holds them is published.
    let outputs = sh.engine.update(|db| -> Result<_> {
        let out = db
            .apply_as(&stmts, now(), owner)
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
        owner = owner.map(Owner::as_str).unwrap_or("-"),
        "applied a setkey script"
    );
    net.sync(&plan).context("routing/netfilter update")?;
    Ok(outputs)
}

/// Removes everything `owner` installed, at once, then brings routes and
/// nft in line.
fn delete_owned(owner: &Owner, sh: &Shared, net: &std::sync::Mutex<Net>) -> Result<String> {
    let mut net = net.lock().map_err(|_| anyhow::anyhow!("poisoned lock"))?;
    let removed = sh
        .engine
        .update(|db| -> Result<_> { Ok(db.delete_owned(owner)) })?;
    let plan = net::plan(sh.engine.snapshot().spd(), &net.params);
    tracing::info!(
        owner = owner.as_str(),
        sas = removed.sas,
        larval = removed.larval,
        policies = removed.policies,
        "removed an owner's entries"
    );
    net.sync(&plan).context("routing/netfilter update")?;
    Ok(format!(
        "removed sas={} larval={} policies={}\n",
        removed.sas, removed.larval, removed.policies
    ))
}
