//! Printing statements back as setkey text: `parse(&stmt.to_string())`
//! gives the same statement.

use core::fmt;
use std::net::IpAddr;

use opensec::AuthAlgorithm;

use crate::ast::*;

fn write_flags(f: &mut fmt::Formatter<'_>, flags: &AddrFlags) -> fmt::Result {
    match flags.family {
        Some(Family::V4) => f.write_str(" -4")?,
        Some(Family::V6) => f.write_str(" -6")?,
        None => {}
    }
    if flags.numeric {
        f.write_str(" -n")?;
    }
    Ok(())
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        match self.port {
            Some(0) => f.write_str("[any]"),
            Some(p) => write!(f, "[{p}]"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for RangeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        if let Some(p) = self.prefix {
            write!(f, "/{p}")?;
        }
        match self.port {
            PortSpec::Omitted => Ok(()),
            PortSpec::Any => f.write_str("[any]"),
            PortSpec::Port(p) => write!(f, "[{p}]"),
        }
    }
}

impl fmt::Display for UpperSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.protocol {
            None => f.write_str("any")?,
            Some(p) => match protocol_name(p) {
                Some(n) => f.write_str(n)?,
                None => write!(f, "{p}")?,
            },
        }
        if let Some(icmp) = self.icmp {
            write!(f, " {}", icmp.icmp_type)?;
            if let Some(c) = icmp.code {
                write!(f, ",{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.form() == KeyForm::Quoted && quotable(self.bytes()) {
            f.write_str("\"")?;
            for &b in self.bytes() {
                write!(f, "{}", char::from(b))?;
            }
            f.write_str("\"")
        } else if self.bytes().is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("0x")?;
            for b in self.bytes() {
                write!(f, "{b:02x}")?;
            }
            Ok(())
        }
    }
}

fn write_auth(f: &mut fmt::Formatter<'_>, auth: AuthAlgorithm, key: &Key) -> fmt::Result {
    write!(f, " -A {}", auth.setkey_name())?;
    if auth != AuthAlgorithm::Null {
        write!(f, " {key}")?;
    }
    Ok(())
}

fn write_ext(f: &mut fmt::Formatter<'_>, e: &Extensions) -> fmt::Result {
    if let Some(m) = e.mode {
        f.write_str(match m {
            SaModeSpec::Transport => " -m transport",
            SaModeSpec::Tunnel => " -m tunnel",
            SaModeSpec::Any => " -m any",
        })?;
    }
    if let Some(r) = e.replay {
        write!(f, " -r {r}")?;
    }
    if let Some(u) = e.reqid {
        write!(f, " -u {u}")?;
    }
    if let Some(p) = e.pad {
        f.write_str(match p {
            PadOption::ZeroPad => " -f zero-pad",
            PadOption::RandomPad => " -f random-pad",
            PadOption::SeqPad => " -f seq-pad",
        })?;
    }
    if e.nocyclic_seq {
        f.write_str(" -f nocyclic-seq")?;
    }
    for (flag, v) in [
        ("-lh", e.lifetime_hard),
        ("-ls", e.lifetime_soft),
        ("-bh", e.bytes_hard),
        ("-bs", e.bytes_soft),
    ] {
        if let Some(v) = v {
            write!(f, " {flag} {v}")?;
        }
    }
    Ok(())
}

impl fmt::Display for SaSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(f, &self.flags)?;
        write!(
            f,
            " {} {} {} {}",
            self.src,
            self.dst,
            self.protocol.keyword(),
            self.spi
        )?;
        write_ext(f, &self.ext)?;
        match &self.alg {
            AlgorithmSpec::Esp { enc, enc_key, auth } => {
                write!(f, " -E {}", enc.setkey_name())?;
                if *enc != opensec::EncAlgorithm::Null {
                    write!(f, " {enc_key}")?;
                }
                if let Some((a, k)) = auth {
                    write_auth(f, *a, k)?;
                }
            }
            AlgorithmSpec::Auth { auth, key } => write_auth(f, *auth, key)?,
        }
        Ok(())
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/", self.protocol.keyword(), self.mode.keyword())?;
        if let Some((s, d)) = self.endpoints {
            write!(f, "{s}-{d}")?;
        }
        match self.level {
            Level::Default => f.write_str("/default"),
            Level::Use => f.write_str("/use"),
            Level::Require => f.write_str("/require"),
            Level::Unique(None) => f.write_str("/unique"),
            Level::Unique(Some(n)) => write!(f, "/unique:{n}"),
        }
    }
}

impl fmt::Display for PrioritySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PrioritySpec::Offset(n) => write!(f, "prio {n}"),
            PrioritySpec::Base { base, offset } => {
                write!(f, "prio {}", base.keyword())?;
                if offset > 0 {
                    write!(f, " + {offset}")?;
                } else if offset < 0 {
                    write!(f, " - {}", offset.unsigned_abs())?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for PolicyClause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-P {}", self.direction.keyword())?;
        if let Some(p) = self.priority {
            write!(f, " {p}")?;
        }
        match &self.action {
            None => Ok(()),
            Some(Action::Discard) => f.write_str(" discard"),
            Some(Action::None) => f.write_str(" none"),
            Some(Action::Ipsec(reqs)) => {
                f.write_str(" ipsec")?;
                for r in reqs {
                    write!(f, " {r}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_flags(f, &self.flags)?;
        write!(
            f,
            " {} {} {} {}",
            self.src, self.dst, self.upper, self.policy
        )
    }
}

fn addr(f: &mut fmt::Formatter<'_>, a: &IpAddr) -> fmt::Result {
    write!(f, " {a}")
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statement::Add(s) => write!(f, "add{s};"),
            Statement::Update(s) => write!(f, "update{s};"),
            Statement::GetSpi(g) => {
                f.write_str("getspi")?;
                write_flags(f, &g.flags)?;
                write!(
                    f,
                    " {} {} {} {}",
                    g.src,
                    g.dst,
                    g.protocol.keyword(),
                    g.spi.unwrap_or(0)
                )?;
                write_ext(f, &g.ext)?;
                f.write_str(";")
            }
            Statement::Get(r) | Statement::Delete(r) => {
                f.write_str(if matches!(self, Statement::Get(_)) {
                    "get"
                } else {
                    "delete"
                })?;
                write_flags(f, &r.flags)?;
                write!(
                    f,
                    " {} {} {} {};",
                    r.src,
                    r.dst,
                    r.protocol.keyword(),
                    r.spi
                )
            }
            Statement::DeleteAll {
                flags,
                src,
                dst,
                protocol,
            } => {
                f.write_str("deleteall")?;
                write_flags(f, flags)?;
                addr(f, src)?;
                addr(f, dst)?;
                write!(f, " {};", protocol.keyword())
            }
            Statement::Flush(p) | Statement::Dump(p) => {
                f.write_str(if matches!(self, Statement::Flush(_)) {
                    "flush"
                } else {
                    "dump"
                })?;
                if let Some(p) = p {
                    write!(f, " {}", p.keyword())?;
                }
                f.write_str(";")
            }
            Statement::SpdAdd(p) => write!(f, "spdadd{p};"),
            Statement::SpdUpdate(p) => write!(f, "spdupdate{p};"),
            Statement::SpdDelete(p) => write!(f, "spddelete{p};"),
            Statement::SpdFlush => f.write_str("spdflush;"),
            Statement::SpdDump => f.write_str("spddump;"),
        }
    }
}

/// Prints statements as a setkey script, one per line.
pub fn print_script<'a>(stmts: impl IntoIterator<Item = &'a Statement>) -> String {
    let mut out = String::new();
    for s in stmts {
        out.push_str(&s.to_string());
        out.push('\n');
    }
    out
}
