//! Security-Client, Security-Server, Security-Verify (RFC 3329 §2.2) with
//! the `ipsec-3gpp` parameters of TS 33.203 (`alg`, `ealg`, `spi-c`,
//! `spi-s`, `port-c`, `port-s`, `prot`, `mod`, `q`).

use std::fmt;

use super::{Qvalue, list};
use crate::sip::error::Syntax;
use crate::sip::lex::{self, Cursor};
use crate::sip::params::Params;

/// One `sec-mechanism = mechanism-name *(SEMI mech-parameters)`. Every
/// parameter is kept as written, known or not, so a Security-Verify can
/// copy a Security-Server exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecMechanism<'s> {
    /// `mechanism-name` (`ipsec-3gpp`, `digest`, `tls`, ...).
    pub mechanism: &'s str,
    /// The parameters in order.
    pub params: Params<'s>,
    /// `q` (preference).
    pub q: Option<Qvalue>,
    /// The typed `ipsec-3gpp` parameters, for that mechanism.
    pub ipsec: Option<Ipsec3gpp<'s>>,
}

/// The parameters TS 33.203 defines for `ipsec-3gpp`; absent ones are
/// `None` (TS 33.203: `prot` defaults to `esp`, `mod` to `trans`, and an
/// absent `ealg` means `null` for early releases; the defaults are the
/// negotiating code's to apply).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ipsec3gpp<'s> {
    /// `alg` (`hmac-md5-96`, `hmac-sha-1-96`).
    pub alg: Option<&'s str>,
    /// `ealg` (`des-ede3-cbc`, `aes-cbc`, `null`).
    pub ealg: Option<&'s str>,
    /// `prot` (`esp`, `ah`).
    pub prot: Option<&'s str>,
    /// `mod` (`trans`, `tun`, `UDP-enc-tun`).
    pub mode: Option<&'s str>,
    /// `spi-c`.
    pub spi_c: Option<u32>,
    /// `spi-s`.
    pub spi_s: Option<u32>,
    /// `port-c`.
    pub port_c: Option<u16>,
    /// `port-s`.
    pub port_s: Option<u16>,
}

impl<'s> SecMechanism<'s> {
    /// Parses one Security-* row (`sec-mechanism *(COMMA
    /// sec-mechanism)`).
    pub fn parse_list(value: &'s str) -> Result<Vec<SecMechanism<'s>>, Syntax> {
        list(value, parse_one)
    }

    /// Whether this is `ipsec-3gpp`.
    pub fn is_ipsec_3gpp(&self) -> bool {
        self.mechanism.eq_ignore_ascii_case("ipsec-3gpp")
    }
}

fn parse_one<'s>(c: &mut Cursor<'s>) -> Result<SecMechanism<'s>, Syntax> {
    let mechanism = c.token("expected a mechanism name")?;
    let at = c.pos();
    let params = Params::parse_generic(c, None)?;
    let bad = |what| Syntax { what, at };
    let q = match params.get("q") {
        Some(p) => Some(p.value.and_then(Qvalue::parse).ok_or(bad("bad q value"))?),
        None => None,
    };
    let ipsec = if mechanism.eq_ignore_ascii_case("ipsec-3gpp") {
        let mut x = Ipsec3gpp::default();
        for p in params.iter() {
            let num = |max: u64| {
                p.value
                    .and_then(lex::digits_u64)
                    .filter(|v| *v <= max)
                    .ok_or(bad("bad ipsec-3gpp number"))
            };
            let spi = || num(u64::from(u32::MAX)).map(|v| u32::try_from(v).unwrap_or(0));
            let port = || num(u64::from(u16::MAX)).map(|v| u16::try_from(v).unwrap_or(0));
            let tok = || {
                p.value
                    .filter(|v| lex::is_token(v))
                    .ok_or(bad("bad ipsec-3gpp value"))
            };
            let twice = bad("ipsec-3gpp parameter given twice");
            let is = |n: &str| p.name.eq_ignore_ascii_case(n);
            if is("alg") {
                set(&mut x.alg, tok()?, twice)?;
            } else if is("ealg") {
                set(&mut x.ealg, tok()?, twice)?;
            } else if is("prot") {
                set(&mut x.prot, tok()?, twice)?;
            } else if is("mod") {
                set(&mut x.mode, tok()?, twice)?;
            } else if is("spi-c") {
                set(&mut x.spi_c, spi()?, twice)?;
            } else if is("spi-s") {
                set(&mut x.spi_s, spi()?, twice)?;
            } else if is("port-c") {
                set(&mut x.port_c, port()?, twice)?;
            } else if is("port-s") {
                set(&mut x.port_s, port()?, twice)?;
            }
        }
        Some(x)
    } else {
        None
    };
    Ok(SecMechanism {
        mechanism,
        params,
        q,
        ipsec,
    })
}

/// Fills `slot` once (RFC 3261 §7.3.1: a parameter name appears at most
/// once; for the SA parameters a second value would be ambiguous).
fn set<T>(slot: &mut Option<T>, v: T, twice: Syntax) -> Result<(), Syntax> {
    if slot.is_some() {
        return Err(twice);
    }
    *slot = Some(v);
    Ok(())
}

impl fmt::Display for SecMechanism<'_> {
    /// `mechanism;param=value...` as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.mechanism, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_client_offers() {
        let l = SecMechanism::parse_list("ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c=2138243585;spi-s=2138243586;port-c=49152;port-s=5062, ipsec-3gpp;alg=hmac-md5-96;ealg=des-ede3-cbc;spi-c=2138243585;spi-s=2138243586;port-c=49152;port-s=5062").unwrap();
        assert_eq!(l.len(), 2);
        let x = l[0].ipsec.unwrap();
        assert_eq!(x.alg, Some("hmac-sha-1-96"));
        assert_eq!(x.ealg, Some("aes-cbc"));
        assert_eq!(
            (x.spi_c, x.spi_s),
            (Some(2_138_243_585), Some(2_138_243_586))
        );
        assert_eq!((x.port_c, x.port_s), (Some(49152), Some(5062)));
        assert_eq!(l[1].ipsec.unwrap().ealg, Some("des-ede3-cbc"));
        let l = SecMechanism::parse_list("ipsec-3gpp; q=0.1; alg=hmac-md5-96; spi-c=3333; spi-s=4444; port-c=5066; port-s=5068; prot=esp; mod=trans; x-vendor=\"1\"").unwrap();
        assert_eq!(l[0].q, Some(Qvalue(100)));
        assert_eq!(l[0].ipsec.unwrap().mode, Some("trans"));
        assert_eq!(l[0].params.value("x-vendor"), Some("\"1\""));
        assert_eq!(l[0].ipsec.unwrap().ealg, None);
        let d = SecMechanism::parse_list("digest;d-alg=md5;d-qop=auth-int;q=0.2").unwrap();
        assert!(d[0].ipsec.is_none());
        for bad in [
            "ipsec-3gpp;spi-c=4294967296",
            "ipsec-3gpp;port-s=65536",
            "ipsec-3gpp;spi-c=1;spi-c=2",
            "ipsec-3gpp;q=2",
            "ipsec-3gpp;;alg=x",
            "",
        ] {
            assert!(SecMechanism::parse_list(bad).is_err(), "{bad}");
        }
    }
}
