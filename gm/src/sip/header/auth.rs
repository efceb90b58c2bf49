//! Challenges and credentials: WWW-Authenticate, Proxy-Authenticate,
//! Authorization, Proxy-Authorization (RFC 3261 §20.7, §20.27, §20.28,
//! §20.44, §25.1) with the Digest AKA parameters (RFC 3310 §3, RFC 4169)
//! and TS 24.229's `integrity-protected`.

use std::borrow::Cow;
use std::fmt;

use crate::sip::error::Syntax;
use crate::sip::lex::{self, Cursor};
use crate::sip::params::{Param, Params};

/// A challenge or credentials: `auth-scheme LWS auth-param *(COMMA
/// auth-param)`, each `auth-param = name EQUAL ( token / quoted-string )`.
/// Unknown schemes parse the same way (RFC 4475 §3.3.7), and every
/// parameter is kept in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth<'s> {
    /// The scheme (`Digest`; compare case-insensitively).
    pub scheme: &'s str,
    /// The parameters, values as written (quoted ones with quotes).
    pub params: Params<'s>,
}

/// The `algorithm` directive (RFC 2617 §3.2.1, RFC 3310 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm<'s> {
    /// `MD5` (also the default when absent).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `AKAv1-MD5` (RFC 3310).
    AkaV1Md5,
    /// `AKAv2-MD5` (RFC 4169).
    AkaV2Md5,
    /// Any other token.
    Other(&'s str),
}

impl<'s> Algorithm<'s> {
    /// The algorithm a token names (case-insensitive).
    pub fn from_token(s: &'s str) -> Algorithm<'s> {
        for (a, n) in [
            (Algorithm::Md5, "MD5"),
            (Algorithm::Md5Sess, "MD5-sess"),
            (Algorithm::AkaV1Md5, "AKAv1-MD5"),
            (Algorithm::AkaV2Md5, "AKAv2-MD5"),
        ] {
            if s.eq_ignore_ascii_case(n) {
                return a;
            }
        }
        Algorithm::Other(s)
    }

    /// The name as RFC 2617 / RFC 3310 spell it.
    pub fn as_str(&self) -> &'s str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::AkaV1Md5 => "AKAv1-MD5",
            Algorithm::AkaV2Md5 => "AKAv2-MD5",
            Algorithm::Other(s) => s,
        }
    }
}

impl<'s> Auth<'s> {
    /// Parses one header row (challenges and credentials are never
    /// combined into one row, RFC 3261 §7.3.1).
    pub fn parse(value: &'s str) -> Result<Auth<'s>, Syntax> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let scheme = c.token("expected an auth-scheme")?;
        let mut params = Vec::new();
        if c.skip_ws() && !c.at_end() {
            loop {
                let name = c.token("expected an auth-param name")?;
                if !c.sep(b'=') {
                    return Err(c.error("expected '='"));
                }
                let value = if c.peek() == Some(b'"') {
                    c.quoted()?
                } else {
                    c.token("expected a token or a quoted string")?
                };
                params.push(Param {
                    name,
                    value: Some(value),
                });
                if !c.sep(b',') {
                    break;
                }
            }
        }
        c.end("expected ',' or the end of the value")?;
        Ok(Auth {
            scheme,
            params: Params(params),
        })
    }

    /// Whether the scheme is `Digest`.
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }

    /// A parameter's value without quotes.
    pub fn param(&self, name: &str) -> Option<Cow<'s, str>> {
        self.params.unquoted(name)
    }

    /// `realm`.
    pub fn realm(&self) -> Option<Cow<'s, str>> {
        self.param("realm")
    }

    /// `nonce` (for AKA, base64 of RAND || AUTN || server data, RFC 3310
    /// §3.2).
    pub fn nonce(&self) -> Option<Cow<'s, str>> {
        self.param("nonce")
    }

    /// `algorithm`, if present (absent means MD5, RFC 3310 §3.1).
    pub fn algorithm(&self) -> Option<Algorithm<'s>> {
        self.params
            .value("algorithm")
            .map(|v| Algorithm::from_token(v.trim_matches('"')))
    }

    /// `qop` (a challenge's `qop-options` list or a response's
    /// `message-qop`), split at commas.
    pub fn qop(&self) -> Vec<String> {
        self.param("qop")
            .map(|q| {
                q.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `opaque`.
    pub fn opaque(&self) -> Option<Cow<'s, str>> {
        self.param("opaque")
    }

    /// `stale` (`true` / `false`, case-insensitive).
    pub fn stale(&self) -> Option<bool> {
        self.param("stale").map(|s| s.eq_ignore_ascii_case("true"))
    }

    /// `username` (credentials: the IMPI for IMS).
    pub fn username(&self) -> Option<Cow<'s, str>> {
        self.param("username")
    }

    /// `uri` (credentials: the digest-uri).
    pub fn uri(&self) -> Option<Cow<'s, str>> {
        self.param("uri")
    }

    /// `response` (credentials: 32 LHEX, or empty in an initial IMS
    /// REGISTER).
    pub fn response(&self) -> Option<Cow<'s, str>> {
        self.param("response")
    }

    /// `cnonce`.
    pub fn cnonce(&self) -> Option<Cow<'s, str>> {
        self.param("cnonce")
    }

    /// `nc` (8 LHEX).
    pub fn nc(&self) -> Option<Cow<'s, str>> {
        self.param("nc")
    }

    /// `auts` (RFC 3310 §3.4: base64 of AUTS, for re-synchronisation).
    pub fn auts(&self) -> Option<Cow<'s, str>> {
        self.param("auts")
    }

    /// `integrity-protected` (TS 24.229 §7.2A.2: `yes`, `no`,
    /// `tls-pending`, `tls-yes`, `ip-assoc-pending`, `ip-assoc-yes`).
    pub fn integrity_protected(&self) -> Option<Cow<'s, str>> {
        self.param("integrity-protected")
    }
}

impl fmt::Display for Auth<'_> {
    /// `Scheme name=value,name=value` (values as written).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme)?;
        for (i, p) in self.params.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { "," })?;
            write!(f, "{}={}", p.name, p.value.unwrap_or("\"\""))?;
        }
        Ok(())
    }
}

/// `value` as an auth-param value: quoted unless it is a token.
pub fn auth_value(value: &str, quote: bool) -> String {
    if !quote && lex::is_token(value) {
        value.to_owned()
    } else {
        lex::quote(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aka_challenge_and_credentials() {
        let a = Auth::parse("Digest realm=\"ims.mnc001.mcc262.3gppnetwork.org\",nonce=\"q8Zr3m1kT0yJp2cV9wXh4nB7dE6fA5gH0iJ2kL4mN6o=\",algorithm=AKAv1-MD5,qop=\"auth,auth-int\"").unwrap();
        assert!(a.is_digest());
        assert_eq!(a.algorithm(), Some(Algorithm::AkaV1Md5));
        assert_eq!(a.qop(), ["auth", "auth-int"]);
        assert_eq!(
            a.nonce().unwrap(),
            "q8Zr3m1kT0yJp2cV9wXh4nB7dE6fA5gH0iJ2kL4mN6o="
        );
        let a = Auth::parse("Digest\r\n      username=\"jon.dough@mobile.biz\",\r\n      realm=\"RoamingUsers@mobile.biz\",\r\n      nonce=\"CjPk9mRqNuT25eRkajM09uTl9nM09uTl9nMz5OX25PZz==\",\r\n      uri=\"sip:home.mobile.biz\",\r\n      qop=auth,\r\n      nc=00000001,\r\n      cnonce=\"0a4f113b\",\r\n      response=\"4429ffe49393c02397450934607c4ef1\",\r\n      opaque=\"5ccc069c403ebaf9f0171e9517f40e41\",\r\n      auts=\"5PYxMuX2NOT2NeQ=\"").unwrap();
        assert_eq!(a.auts().unwrap(), "5PYxMuX2NOT2NeQ=");
        assert_eq!(a.nc().unwrap(), "00000001");
        assert_eq!(a.qop(), ["auth"]);
        assert_eq!(a.username().unwrap(), "jon.dough@mobile.biz");
        let a = Auth::parse(
            "Digest username=\"u\",response=\"\",integrity-protected=\"yes\",algorithm=AKAv2-MD5",
        )
        .unwrap();
        assert_eq!(a.response().unwrap(), "");
        assert_eq!(a.integrity_protected().unwrap(), "yes");
        assert_eq!(a.algorithm(), Some(Algorithm::AkaV2Md5));
        assert_eq!(
            a.to_string(),
            "Digest username=\"u\",response=\"\",integrity-protected=\"yes\",algorithm=AKAv2-MD5"
        );
        // RFC 4475 §3.3.7.
        let a = Auth::parse("NoOneKnowsThisScheme opaque-data=here").unwrap();
        assert_eq!(a.scheme, "NoOneKnowsThisScheme");
        assert_eq!(a.param("opaque-data").unwrap(), "here");
        for bad in [
            "Digest realm",
            "Digest realm=",
            "Digest ,",
            "Digest a=b,",
            "\"x\"",
        ] {
            assert!(Auth::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(auth_value("AKAv1-MD5", false), "AKAv1-MD5");
        assert_eq!(auth_value("a b", false), "\"a b\"");
    }
}
