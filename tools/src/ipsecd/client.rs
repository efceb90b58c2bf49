//! A typed client of ipsecd's control socket (the protocol is in
//! [`super::control`]): what `setkey` and the IMS UA use to install SAs
//! and policies, hold SPIs and remove what they installed.
//!
//! ```no_run
//! use tools::ipsecd::client::{Client, GetSpi};
//! use sadb::Owner;
//!
//! let ipsecd = Client::new(tools::ipsecd::instance::default_socket());
//! let me = Owner::new("imsua-4242")?;
//! // Two SPIs for the SAs the P-CSCF will send to us (spi-c, spi-s).
//! let spi_c = ipsecd.getspi(&GetSpi::new("192.0.2.2".parse()?, "192.0.2.1".parse()?), Some(&me))?;
//! let spi_s = ipsecd.getspi(&GetSpi::new("192.0.2.2".parse()?, "192.0.2.1".parse()?), Some(&me))?;
//! println!("spi-c={} spi-s={}", spi_c.spi.0, spi_s.spi.0);
//! // ... `update` them once the keys are known, add the policies ...
//! // Gone in one call when the registration ends:
//! let removed = ipsecd.delete_owned(&me)?;
//! println!("removed {} SAs", removed.sas);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use ipsec_esp::{Mode, Protocol, Spi};
use sadb::ast::{AddrFlags, Endpoint, Extensions, GetSpiSpec, SaModeSpec, SaProtocol};
use sadb::{Owner, Removed, SaId, Statement};

/// What can go wrong talking to ipsecd.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket cannot be reached (ipsecd not running, wrong path).
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The connection failed mid-request.
    Io(std::io::Error),
    /// ipsecd refused the request (nothing changed): its one-line reason,
    /// naming the line and column of a bad statement.
    Refused(String),
    /// The answer is not what the protocol says.
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect { socket, source } => write!(
                f,
                "cannot connect to ipsecd at {} ({source}; is it running? see --socket)",
                socket.display()
            ),
            ClientError::Io(e) => write!(f, "talking to ipsecd: {e}"),
            ClientError::Refused(why) => f.write_str(why),
            ClientError::Protocol(why) => write!(f, "malformed answer from ipsecd: {why}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect { source, .. } => Some(source),
            ClientError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// A `getspi` request: hold an SPI for an SA from `src` to `dst` until an
/// `update` completes it (or its lifetime ends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetSpi {
    /// Sender of the SA to be.
    pub src: IpAddr,
    /// Receiver (the SPI is unique for it).
    pub dst: IpAddr,
    /// ESP or AH.
    pub protocol: Protocol,
    /// This SPI, or `None` for a random unused one.
    pub spi: Option<u32>,
    /// The mode asked for (`None`: any).
    pub mode: Option<Mode>,
    /// reqid (0: none).
    pub reqid: u32,
    /// Seconds it waits for its `update` (`None`: ipsecd's default,
    /// [`sadb::LARVAL_LIFETIME_SECS`]).
    pub lifetime_secs: Option<u64>,
}

impl GetSpi {
    /// A random ESP SPI, transport mode, no reqid, default lifetime.
    pub fn new(src: IpAddr, dst: IpAddr) -> GetSpi {
        GetSpi {
            src,
            dst,
            protocol: Protocol::Esp,
            spi: None,
            mode: Some(Mode::Transport),
            reqid: 0,
            lifetime_secs: None,
        }
    }

    /// The setkey statement.
    pub fn statement(&self) -> Statement {
        Statement::GetSpi(GetSpiSpec {
            flags: AddrFlags::default(),
            src: Endpoint {
                addr: self.src,
                port: None,
            },
            dst: Endpoint {
                addr: self.dst,
                port: None,
            },
            protocol: match self.protocol {
                Protocol::Esp => SaProtocol::Esp,
                Protocol::Ah => SaProtocol::Ah,
            },
            spi: self.spi,
            ext: Extensions {
                mode: self.mode.map(|m| match m {
                    Mode::Transport => SaModeSpec::Transport,
                    Mode::Tunnel => SaModeSpec::Tunnel,
                }),
                reqid: (self.reqid != 0).then_some(self.reqid),
                lifetime_hard: self.lifetime_secs,
                ..Extensions::default()
            },
        })
    }
}

/// ipsecd's data-path counters, by name (`setkey --stats`).
pub type Stats = BTreeMap<String, u64>;

/// A client of one ipsecd (each call is one connection).
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client of the ipsecd listening at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    /// The socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one request; the answer's text, or why it was refused.
    pub fn request(&self, command: &str, body: &str) -> Result<String, ClientError> {
        let mut s = UnixStream::connect(&self.socket).map_err(|source| ClientError::Connect {
            socket: self.socket.clone(),
            source,
        })?;
        s.write_all(command.as_bytes())?;
        s.write_all(b"\n")?;
        s.write_all(body.as_bytes())?;
        s.shutdown(std::net::Shutdown::Write)?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        match answer.split_once('\n') {
            Some(("OK", rest)) => Ok(rest.to_string()),
            Some(("ERR", rest)) => Err(ClientError::Refused(rest.trim_end().to_string())),
            _ => Err(ClientError::Protocol(format!(
                "{:?}",
                answer.chars().take(80).collect::<String>()
            ))),
        }
    }

    fn with_owner(command: &str, owner: Option<&Owner>) -> String {
        match owner {
            Some(o) => format!("{command} owner={o}"),
            None => command.to_string(),
        }
    }

    /// Applies a setkey script, all or nothing (under `owner`: tagged, and
    /// touching only the owner's entries). Returns what `get`, `dump` and
    /// `getspi` statements print.
    pub fn apply(&self, script: &str, owner: Option<&Owner>) -> Result<String, ClientError> {
        self.request(&Client::with_owner("apply", owner), script)
    }

    /// Applies statements built in code (see [`Client::apply`]).
    pub fn apply_statements(
        &self,
        stmts: &[Statement],
        owner: Option<&Owner>,
    ) -> Result<String, ClientError> {
        self.apply(&sadb::print_script(stmts), owner)
    }

    /// Holds an SPI (setkey `getspi`): the SA it is held for.
    pub fn getspi(&self, req: &GetSpi, owner: Option<&Owner>) -> Result<SaId, ClientError> {
        let text = self.request(
            &Client::with_owner("getspi", owner),
            &sadb::print_script([&req.statement()]),
        )?;
        let ids = parse_larval(&text)?;
        match ids.as_slice() {
            [id] => Ok(*id),
            _ => Err(ClientError::Protocol(format!(
                "expected one larval SA, got {text:?}"
            ))),
        }
    }

    /// Removes, at once, every SA, larval SA and policy `owner` installed.
    pub fn delete_owned(&self, owner: &Owner) -> Result<Removed, ClientError> {
        let text = self.request(&format!("delete-owned {owner}"), "")?;
        let mut r = Removed::default();
        let mut seen = 0;
        for w in text
            .trim()
            .strip_prefix("removed")
            .unwrap_or("")
            .split_whitespace()
        {
            let (k, v) = w.split_once('=').unwrap_or((w, ""));
            let n: usize = v
                .parse()
                .map_err(|_| ClientError::Protocol(format!("{text:?}")))?;
            match k {
                "sas" => r.sas = n,
                "larval" => r.larval = n,
                "policies" => r.policies = n,
                _ => continue,
            }
            seen += 1;
        }
        if seen != 3 {
            return Err(ClientError::Protocol(format!("{text:?}")));
        }
        Ok(r)
    }

    /// The first of `n` consecutive reqids no policy uses (for `unique:N`
    /// policies of one's own; another client may take them before they
    /// are applied, so an `apply` can still be refused).
    pub fn free_reqids(&self, n: u32) -> Result<u32, ClientError> {
        let text = self.request(&format!("free-reqids {n}"), "")?;
        text.trim()
            .strip_prefix("reqids ")
            .and_then(|b| b.parse().ok())
            .ok_or_else(|| ClientError::Protocol(format!("{text:?}")))
    }

    /// Checks a script's syntax (no change): its number of statements.
    pub fn check(&self, script: &str) -> Result<usize, ClientError> {
        let text = self.request("check", script)?;
        text.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| ClientError::Protocol(format!("{text:?}")))
    }

    /// `setkey -D`.
    pub fn dump(&self) -> Result<String, ClientError> {
        self.request("dump", "")
    }

    /// `setkey -DP` (with the policies' counters).
    pub fn spddump(&self) -> Result<String, ClientError> {
        self.request("spddump", "")
    }

    /// The data-path counters.
    pub fn stats(&self) -> Result<Stats, ClientError> {
        let text = self.request("stats", "")?;
        let mut out = Stats::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut w = line.split_whitespace();
            match (w.next(), w.next().and_then(|v| v.parse().ok())) {
                (Some(k), Some(v)) => {
                    out.insert(k.to_string(), v);
                }
                _ => return Err(ClientError::Protocol(format!("stats line {line:?}"))),
            }
        }
        Ok(out)
    }
}

/// The SAs of `larval DST PROTO 0xSPI` lines.
fn parse_larval(text: &str) -> Result<Vec<SaId>, ClientError> {
    text.lines()
        .map(|line| {
            let bad = || ClientError::Protocol(format!("getspi line {line:?}"));
            let mut w = line.split_whitespace();
            if w.next() != Some("larval") {
                return Err(bad());
            }
            let dst: IpAddr = w.next().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
            let protocol = match w.next() {
                Some("esp") => Protocol::Esp,
                Some("ah") => Protocol::Ah,
                _ => return Err(bad()),
            };
            let spi = w
                .next()
                .and_then(|v| v.strip_prefix("0x"))
                .and_then(|v| u32::from_str_radix(v, 16).ok())
                .ok_or_else(bad)?;
            Ok(SaId {
                dst,
                protocol,
                spi: Spi(spi),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn larval_lines_read_back() {
        let id = SaId {
            dst: "2001:db8::2".parse().unwrap(),
            protocol: Protocol::Ah,
            spi: Spi(0xdead_beef),
        };
        let line = super::super::control::larval_line(&id);
        assert_eq!(parse_larval(&line).unwrap(), vec![id]);
        assert!(parse_larval("larval 1.2.3.4 esp 12").is_err());
    }

    #[test]
    fn getspi_requests_print_as_setkey_reads_them() {
        let mut g = GetSpi::new("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        g.reqid = 9;
        g.lifetime_secs = Some(60);
        let text = sadb::print_script([&g.statement()]);
        assert_eq!(
            text,
            "getspi 192.0.2.1 192.0.2.2 esp 0 -m transport -u 9 -lh 60;\n"
        );
        let parsed = sadb::parse(&text).unwrap();
        assert_eq!(parsed[0].value, g.statement());
    }
}
