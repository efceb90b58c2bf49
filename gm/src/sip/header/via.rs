//! Via (RFC 3261 §20.42, §25.1) with `rport` (RFC 3581 §4) and `comp`
//! (RFC 3486 §5).

use std::fmt;
use std::net::IpAddr;

use super::list;
use crate::sip::error::Syntax;
use crate::sip::lex::{self, Cursor};
use crate::sip::params::Params;
use crate::sip::uri::Host;

/// The RFC 3261 branch prefix (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One via-parm: `sent-protocol LWS sent-by *( SEMI via-params )`.
///
/// The parameters are all kept in [`Via::params`] in order; the ones with
/// a grammar of their own are checked when parsed and typed here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via<'s> {
    /// `protocol-name` (`SIP`).
    pub protocol: &'s str,
    /// `protocol-version` (`2.0`).
    pub version: &'s str,
    /// `transport` (`UDP`, `TCP`, `TLS`, `SCTP` or another token).
    pub transport: &'s str,
    /// The host of `sent-by`.
    pub host: Host<'s>,
    /// The port of `sent-by`.
    pub port: Option<u16>,
    /// Every parameter, as written.
    pub params: Params<'s>,
    /// `branch` (a token).
    pub branch: Option<&'s str>,
    /// `received` (an IPv4 or IPv6 address).
    pub received: Option<IpAddr>,
    /// `rport` (RFC 3581).
    pub rport: Rport,
    /// `ttl` (0 to 255).
    pub ttl: Option<u8>,
    /// `maddr`.
    pub maddr: Option<Host<'s>>,
}

/// The `rport` parameter of RFC 3581 §4: `"rport" [EQUAL 1*DIGIT]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rport {
    /// Not present.
    Absent,
    /// Present without a value: the client asks for it.
    Requested,
    /// Filled in by the server with the source port.
    Port(u16),
}

impl<'s> Via<'s> {
    /// Parses one Via row (`via-parm *(COMMA via-parm)`).
    pub fn parse_list(value: &'s str) -> Result<Vec<Via<'s>>, Syntax> {
        list(value, parse_one)
    }

    /// As [`Via::parse_list`], with the offset where the first via-parm
    /// ends (its parameters included): what follows is the rest of the
    /// list as written.
    pub(crate) fn parse_list_with_first_end(
        value: &'s str,
    ) -> Result<(Vec<Via<'s>>, usize), Syntax> {
        let mut first_end = None;
        let vias = list(value, |c| {
            let v = parse_one(c)?;
            first_end.get_or_insert(c.pos());
            Ok(v)
        })?;
        Ok((vias, first_end.unwrap_or(value.len())))
    }

    /// The first via-parm of a row, without checking the rest of the row.
    pub fn parse_first(value: &'s str) -> Result<Via<'s>, Syntax> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let v = parse_one(&mut c)?;
        c.skip_ws();
        if c.at_end() || c.peek() == Some(b',') {
            Ok(v)
        } else {
            Err(c.error("expected ',' or the end of the value"))
        }
    }

    /// The `comp` parameter (`sigcomp`, RFC 3486 §5).
    pub fn comp(&self) -> Option<&'s str> {
        self.params.value("comp")
    }

    /// Whether the branch starts with the RFC 3261 magic cookie.
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch.is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }
}

fn parse_one<'s>(c: &mut Cursor<'s>) -> Result<Via<'s>, Syntax> {
    // sent-protocol = protocol-name SLASH protocol-version SLASH transport
    let protocol = c.token("expected a protocol name")?;
    if !c.sep(b'/') {
        return Err(c.error("expected '/'"));
    }
    let version = c.token("expected a protocol version")?;
    if !c.sep(b'/') {
        return Err(c.error("expected '/'"));
    }
    let transport = c.token("expected a transport")?;
    if !c.skip_ws() {
        return Err(c.error("expected whitespace before sent-by"));
    }
    // sent-by = host [ COLON port ]
    let host = Host::parse_at(c)?;
    let port = if c.sep(b':') {
        let at = c.pos();
        let d = c.take_while(|b| b.is_ascii_digit());
        Some(
            lex::digits_u64(d)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(Syntax {
                    what: "bad port",
                    at,
                })?,
        )
    } else {
        None
    };
    let params = Params::parse_generic(c, Some(received_value))?;
    let mut via = Via {
        protocol,
        version,
        transport,
        host,
        port,
        params: Params::default(),
        branch: None,
        received: None,
        rport: Rport::Absent,
        ttl: None,
        maddr: None,
    };
    let bad = |what| Syntax { what, at: c.pos() };
    for p in params.iter() {
        let v = p.value;
        if p.name.eq_ignore_ascii_case("branch") {
            via.branch = Some(v.filter(|v| lex::is_token(v)).ok_or(bad("bad branch"))?);
        } else if p.name.eq_ignore_ascii_case("received") {
            via.received = Some(v.and_then(|v| v.parse().ok()).ok_or(bad("bad received"))?);
        } else if p.name.eq_ignore_ascii_case("rport") {
            via.rport = match v {
                None => Rport::Requested,
                Some(v) => Rport::Port(
                    lex::digits_u64(v)
                        .and_then(|p| u16::try_from(p).ok())
                        .ok_or(bad("bad rport"))?,
                ),
            };
        } else if p.name.eq_ignore_ascii_case("ttl") {
            let ok = v.filter(|v| v.len() <= 3).and_then(lex::digits_u64);
            via.ttl = Some(
                ok.and_then(|t| u8::try_from(t).ok())
                    .ok_or(bad("bad ttl"))?,
            );
        } else if p.name.eq_ignore_ascii_case("maddr") {
            via.maddr = Some(
                v.and_then(|v| Host::parse(v).ok())
                    .ok_or(bad("bad maddr"))?,
            );
        }
    }
    via.params = params;
    Ok(via)
}

/// `via-received = "received" EQUAL (IPv4address / IPv6address)`: an
/// IPv6 address is written bare, with colons no token has.
fn received_value<'s>(name: &str, c: &mut Cursor<'s>) -> Option<Result<&'s str, Syntax>> {
    if !name.eq_ignore_ascii_case("received") {
        return None;
    }
    let at = c.pos();
    let v = c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    Some(if v.is_empty() {
        Err(Syntax {
            what: "expected an address",
            at,
        })
    } else {
        Ok(v)
    })
}

impl fmt::Display for Via<'_> {
    /// `SIP/2.0/UDP host:port;params`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{} {}",
            self.protocol, self.version, self.transport, self.host
        )?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_via() {
        let v = Via::parse_list("SIP/2.0/UDP [2001:db8:1:2::7]:5060;comp=sigcomp;branch=z9hG4bKa1b2c3d4e5;rport;received=2001:db8:1:2::7").unwrap();
        let v = &v[0];
        assert_eq!((v.protocol, v.version, v.transport), ("SIP", "2.0", "UDP"));
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.comp(), Some("sigcomp"));
        assert_eq!(v.branch, Some("z9hG4bKa1b2c3d4e5"));
        assert_eq!(v.rport, Rport::Requested);
        assert_eq!(v.received, Some("2001:db8:1:2::7".parse().unwrap()));
        assert!(v.is_rfc3261_branch());
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP [2001:db8:1:2::7]:5060;comp=sigcomp;branch=z9hG4bKa1b2c3d4e5;rport;received=2001:db8:1:2::7"
        );
    }

    #[test]
    fn torture_vias() {
        // RFC 4475 §3.1.1.1: whitespace and folds everywhere.
        let v = Via::parse_list("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v[0].branch, Some("390skdjuw"));
        let v = Via::parse_list("SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].branch, Some("z9hG4bK30239"));
        assert_eq!(v[1].transport, "UDP");
        let v = Via::parse_list(
            "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport",
        )
        .unwrap();
        assert_eq!(v[0].rport, Rport::Requested);
        assert_eq!(
            Via::parse_list("SIP/2.0/UDP h;rport=5066").unwrap()[0].rport,
            Rport::Port(5066)
        );
        // §3.1.2.1.
        assert!(Via::parse_list("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        for bad in [
            "SIP/2.0/UDP",
            "SIP/2.0 UDP h",
            "SIP/2.0/UDP h;ttl=300",
            "SIP/2.0/UDP h;received=x",
            "SIP/2.0/UDP h:70000",
        ] {
            assert!(Via::parse_list(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Via::parse_first("SIP/2.0/UDP a;branch=z9hG4bK1, garbage")
                .unwrap()
                .branch,
            Some("z9hG4bK1")
        );
    }
}
