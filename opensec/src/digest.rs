//! HTTP digest `response` (RFC 2617 §3.2.2), used by SIP (RFC 3261 §22.4)
//! and by digest AKA (RFC 3310, RFC 4169), where the password is derived from
//! RES (see [`crate::aka::password`]).

use md5::{Digest, Md5};

use crate::Error;
use crate::aka::AkaVersion;

/// The hash variant of the `algorithm` directive (RFC 2617 §3.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DigestAlgorithm {
    /// `MD5` (also the default when the directive is absent).
    #[default]
    Md5,
    /// `MD5-sess`.
    Md5Sess,
}

impl DigestAlgorithm {
    /// Parses an `algorithm` value: `MD5`, `MD5-sess`, or the AKA forms
    /// `AKAv1-MD5`, `AKAv2-MD5` (RFC 3310 §3.1, RFC 4169 §2) and their
    /// `-sess` variants. Returns the AKA version if there is one.
    /// Case-insensitive (RFC 2617 tokens).
    pub fn parse(name: &str) -> Result<(Option<AkaVersion>, Self), Error> {
        let unknown = || Error::UnknownAlgorithm {
            name: name.to_owned(),
            kind: "digest",
        };
        let lower = name.to_ascii_lowercase();
        let (aka, rest) = if let Some(r) = lower.strip_prefix("akav1-") {
            (Some(AkaVersion::V1), r)
        } else if let Some(r) = lower.strip_prefix("akav2-") {
            (Some(AkaVersion::V2), r)
        } else {
            (None, lower.as_str())
        };
        let alg = match rest {
            "md5" => DigestAlgorithm::Md5,
            "md5-sess" => DigestAlgorithm::Md5Sess,
            _ => return Err(unknown()),
        };
        Ok((aka, alg))
    }

    /// The name as written in the `algorithm` directive.
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Md5Sess => "MD5-sess",
        }
    }
}

/// The inputs of the digest `response` (RFC 2617 §3.2.2).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DigestParams<'a> {
    /// `username`.
    pub username: &'a str,
    /// `realm`.
    pub realm: &'a str,
    /// The password as raw bytes (for AKA: derived from RES, may contain 0).
    pub password: &'a [u8],
    /// The request method (`REGISTER`); empty for `rspauth` (RFC 2617 §3.2.3).
    pub method: &'a str,
    /// `uri` (digest-uri-value).
    pub uri: &'a str,
    /// `nonce`, as sent by the server.
    pub nonce: &'a str,
    /// `nc` (8 hex digits), required with `qop`.
    pub nc: Option<&'a str>,
    /// `cnonce`, required with `qop` and with `MD5-sess`.
    pub cnonce: Option<&'a str>,
    /// `qop`: `auth` or `auth-int`; `None` for the RFC 2069 form.
    pub qop: Option<&'a str>,
    /// `MD5` or `MD5-sess`.
    pub algorithm: DigestAlgorithm,
    /// The entity body, hashed for `qop=auth-int`.
    pub body: &'a [u8],
}

impl core::fmt::Debug for DigestParams<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DigestParams")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("password", &"<redacted>")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("nonce", &self.nonce)
            .field("nc", &self.nc)
            .field("cnonce", &self.cnonce)
            .field("qop", &self.qop)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The `response` value: 32 lowercase hex digits (RFC 2617 §3.2.2.1).
///
/// Lenient form of [`try_response`]: a missing `nc` or `cnonce` is hashed as
/// an empty string and an unknown `qop` is hashed like `auth`. Use
/// [`try_response`] to have those reported as errors.
pub fn response(p: &DigestParams<'_>) -> String {
    compute(p)
}

/// The `response` value, after checking that the directives the chosen
/// `qop` and `algorithm` need are present (RFC 2617 §3.2.2).
pub fn try_response(p: &DigestParams<'_>) -> Result<String, Error> {
    match p.qop {
        None | Some("auth") | Some("auth-int") => {}
        Some(_) => {
            return Err(Error::InvalidInput {
                what: "qop must be auth or auth-int",
            });
        }
    }
    if p.qop.is_some() && (p.nc.is_none() || p.cnonce.is_none()) {
        return Err(Error::InvalidInput {
            what: "qop requires nc and cnonce (RFC 2617 §3.2.2)",
        });
    }
    if p.algorithm == DigestAlgorithm::Md5Sess && p.cnonce.is_none() {
        return Err(Error::InvalidInput {
            what: "MD5-sess requires cnonce (RFC 2617 §3.2.2.2)",
        });
    }
    Ok(compute(p))
}

fn compute(p: &DigestParams<'_>) -> String {
    let cnonce = p.cnonce.unwrap_or("");
    // RFC 2617 §3.2.2.2: A1 = username ":" realm ":" passwd.
    let mut ha1 = hash_hex(&[
        p.username.as_bytes(),
        b":",
        p.realm.as_bytes(),
        b":",
        p.password,
    ]);
    if p.algorithm == DigestAlgorithm::Md5Sess {
        // A1 = H(username ":" realm ":" passwd) ":" nonce ":" cnonce, with
        // H() here the 32 hex digits.
        ha1 = hash_hex(&[&ha1, b":", p.nonce.as_bytes(), b":", cnonce.as_bytes()]);
    }
    // RFC 2617 §3.2.2.3.
    let ha2 = if p.qop == Some("auth-int") {
        let hbody = hash_hex(&[p.body]);
        hash_hex(&[p.method.as_bytes(), b":", p.uri.as_bytes(), b":", &hbody])
    } else {
        hash_hex(&[p.method.as_bytes(), b":", p.uri.as_bytes()])
    };
    // RFC 2617 §3.2.2.1.
    let out = match p.qop {
        Some(qop) => hash_hex(&[
            &ha1,
            b":",
            p.nonce.as_bytes(),
            b":",
            p.nc.unwrap_or("").as_bytes(),
            b":",
            cnonce.as_bytes(),
            b":",
            qop.as_bytes(),
            b":",
            &ha2,
        ]),
        None => hash_hex(&[&ha1, b":", p.nonce.as_bytes(), b":", &ha2]),
    };
    out.iter().map(|&b| char::from(b)).collect()
}

/// MD5 over the concatenation of `parts`, as 32 lowercase hex digits.
fn hash_hex(parts: &[&[u8]]) -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    let d = h.finalize();
    let mut out = [0u8; 32];
    for (o, b) in out.chunks_exact_mut(2).zip(d.iter()) {
        o[0] = HEX[usize::from(b >> 4)];
        o[1] = HEX[usize::from(b & 0xf)];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc2617_example(qop: Option<&'static str>) -> DigestParams<'static> {
        DigestParams {
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: b"Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            nc: Some("00000001"),
            cnonce: Some("0a4f113b"),
            qop,
            algorithm: DigestAlgorithm::Md5,
            body: b"",
        }
    }

    // RFC 2617 §3.5.
    #[test]
    fn rfc2617_section_3_5() {
        let p = rfc2617_example(Some("auth"));
        assert_eq!(response(&p), "6629fae49393a05397450978507c4ef1");
        assert_eq!(
            try_response(&p).unwrap(),
            "6629fae49393a05397450978507c4ef1"
        );
        assert!(!format!("{p:?}").contains("Circle"));
    }

    // Other qop/algorithm forms; expected values from Python hashlib
    // (independent of this crate), H = md5(..).hexdigest():
    //   none:     H(ha1:nonce:H(GET:uri))
    //   auth-int: H(ha1:nonce:nc:cnonce:auth-int:H(GET:uri:H(b"hello body")))
    //   MD5-sess: ha1' = H(ha1:nonce:cnonce), then as qop=auth.
    #[test]
    fn other_forms_match_python() {
        let mut p = rfc2617_example(None);
        assert_eq!(response(&p), "670fd8c2df070c60b045671b8b24ff02");
        p.qop = Some("auth-int");
        p.body = b"hello body";
        assert_eq!(response(&p), "059afcd293fbb56240a8ba703617f703");
        p.qop = Some("auth");
        p.algorithm = DigestAlgorithm::Md5Sess;
        assert_eq!(response(&p), "8e3825c57e897f5a0dec6c2d4e5059d0");
    }

    #[test]
    fn strict_checks() {
        let mut p = rfc2617_example(Some("auth"));
        p.nc = None;
        assert!(try_response(&p).is_err());
        let mut p = rfc2617_example(Some("auth,auth-int"));
        assert!(try_response(&p).is_err());
        p.qop = None;
        p.cnonce = None;
        p.algorithm = DigestAlgorithm::Md5Sess;
        assert!(try_response(&p).is_err());
    }

    #[test]
    fn parse_algorithm() {
        assert_eq!(
            DigestAlgorithm::parse("AKAv1-MD5"),
            Ok((Some(AkaVersion::V1), DigestAlgorithm::Md5))
        );
        assert_eq!(
            DigestAlgorithm::parse("akav2-md5"),
            Ok((Some(AkaVersion::V2), DigestAlgorithm::Md5))
        );
        assert_eq!(
            DigestAlgorithm::parse("MD5-sess"),
            Ok((None, DigestAlgorithm::Md5Sess))
        );
        assert!(DigestAlgorithm::parse("SHA-256").is_err());
    }
}
