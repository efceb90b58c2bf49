//! UMTS AKA on top of MILENAGE (TS 33.102 §6.3): AUTN building and
//! verification with the SQN freshness check, AUTS for resynchronisation, and
//! the HTTP digest passwords of AKAv1 (RFC 3310) and AKAv2 (RFC 4169).

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::milenage::Milenage;
use crate::{Error, base64, hmac_md5};

/// Largest SQN (48 bits, TS 33.102 §6.3.2).
pub const SQN_MAX: u64 = (1 << 48) - 1;

/// Default limit Δ on how far ahead of SQN_MS a fresh SQN may be
/// (TS 33.102 Annex C.2.2 suggests 2^28).
pub const DEFAULT_DELTA: u64 = 1 << 28;

/// The AMF used in AUTS (TS 33.102 §6.3.3: "dummy value of all zeros").
pub const RESYNC_AMF: [u8; 2] = [0, 0];

/// The HTTP digest AKA version (the `algorithm=AKAvN-MD5` prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AkaVersion {
    /// RFC 3310: password = RES.
    V1,
    /// RFC 4169: password = base64(HMAC-MD5(RES || IK || CK, "http-digest-akav2-password")).
    V2,
}

/// What the UE obtains from an authentic, fresh challenge.
#[derive(Clone, PartialEq, Eq)]
pub struct AkaResponse {
    /// RES (f2), the digest password of AKAv1.
    pub res: [u8; 8],
    /// CK (f3).
    pub ck: [u8; 16],
    /// IK (f4).
    pub ik: [u8; 16],
    /// The SQN carried in AUTN; the caller stores it as the new SQN_MS.
    pub sqn: u64,
    /// The AMF carried in AUTN.
    pub amf: [u8; 2],
}

impl Drop for AkaResponse {
    fn drop(&mut self) {
        self.res.zeroize();
        self.ck.zeroize();
        self.ik.zeroize();
    }
}

impl ZeroizeOnDrop for AkaResponse {}

impl fmt::Debug for AkaResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AkaResponse")
            .field("sqn", &self.sqn)
            .field("amf", &self.amf)
            .field("keys", &"<redacted>")
            .finish()
    }
}

/// A network-side authentication vector (TS 33.102 §6.3.2).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthVector {
    /// RAND.
    pub rand: [u8; 16],
    /// XRES (f2).
    pub xres: [u8; 8],
    /// CK (f3).
    pub ck: [u8; 16],
    /// IK (f4).
    pub ik: [u8; 16],
    /// AUTN = (SQN xor AK) || AMF || MAC-A.
    pub autn: [u8; 16],
}

impl Drop for AuthVector {
    fn drop(&mut self) {
        self.xres.zeroize();
        self.ck.zeroize();
        self.ik.zeroize();
    }
}

impl ZeroizeOnDrop for AuthVector {}

impl fmt::Debug for AuthVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthVector")
            .field("rand", &self.rand)
            .field("autn", &self.autn)
            .field("keys", &"<redacted>")
            .finish()
    }
}

fn sqn_bytes(sqn: u64) -> Result<[u8; 6], Error> {
    if sqn > SQN_MAX {
        return Err(Error::InvalidInput {
            what: "SQN does not fit in 48 bits",
        });
    }
    let b = sqn.to_be_bytes();
    let mut out = [0u8; 6];
    out.copy_from_slice(&b[2..]);
    Ok(out)
}

fn sqn_value(b: &[u8; 6]) -> u64 {
    let mut x = [0u8; 8];
    x[2..].copy_from_slice(b);
    u64::from_be_bytes(x)
}

fn xor6(a: &[u8; 6], b: &[u8; 6]) -> [u8; 6] {
    let mut o = [0u8; 6];
    for (o, (x, y)) in o.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    o
}

/// Network side: AUTN = (SQN xor AK) || AMF || MAC-A (TS 33.102 §6.3.2).
pub fn build_autn(
    m: &Milenage,
    rand: &[u8; 16],
    sqn: u64,
    amf: &[u8; 2],
) -> Result<[u8; 16], Error> {
    let sqn = sqn_bytes(sqn)?;
    let ak = m.f2345(rand).ak;
    let mac_a = m.f1(rand, &sqn, amf);
    let mut autn = [0u8; 16];
    autn[..6].copy_from_slice(&xor6(&sqn, &ak));
    autn[6..8].copy_from_slice(amf);
    autn[8..].copy_from_slice(&mac_a);
    Ok(autn)
}

/// Network side: a whole authentication vector for `rand` and `sqn`.
pub fn auth_vector(
    m: &Milenage,
    rand: &[u8; 16],
    sqn: u64,
    amf: &[u8; 2],
) -> Result<AuthVector, Error> {
    let autn = build_autn(m, rand, sqn, amf)?;
    let v = m.f2345(rand);
    Ok(AuthVector {
        rand: *rand,
        xres: v.res,
        ck: v.ck,
        ik: v.ik,
        autn,
    })
}

/// UE side: verifies AUTN with the default freshness window
/// ([`DEFAULT_DELTA`]); see [`verify_autn_with_delta`].
pub fn verify_autn(
    m: &Milenage,
    rand: &[u8; 16],
    autn: &[u8; 16],
    sqn_ms: u64,
) -> Result<AkaResponse, Error> {
    verify_autn_with_delta(m, rand, autn, sqn_ms, DEFAULT_DELTA)
}

/// UE side: verifies AUTN (TS 33.102 §6.3.3).
///
/// Recovers SQN = (SQN xor AK) xor AK, checks MAC-A in constant time
/// ([`Error::MacFailure`] if wrong), then freshness: SQN must be greater than
/// `sqn_ms` (the highest SQN accepted so far) and at most `delta` ahead of it
/// (TS 33.102 Annex C.2.2). If not, the error is [`Error::SyncFailure`]
/// carrying the AUTS to send (RFC 3310 §3.4).
pub fn verify_autn_with_delta(
    m: &Milenage,
    rand: &[u8; 16],
    autn: &[u8; 16],
    sqn_ms: u64,
    delta: u64,
) -> Result<AkaResponse, Error> {
    let mut conc = [0u8; 6];
    conc.copy_from_slice(&autn[..6]);
    let amf = [autn[6], autn[7]];
    let v = m.f2345(rand);
    let sqn_b = xor6(&conc, &v.ak);
    let mac_a = m.f1(rand, &sqn_b, &amf);
    // TS 33.102 §6.3.3: XMAC = MAC, else "user authentication reject" (MAC failure).
    if !bool::from(mac_a.ct_eq(&autn[8..])) {
        return Err(Error::MacFailure);
    }
    let sqn = sqn_value(&sqn_b);
    let fresh = sqn > sqn_ms && sqn - sqn_ms <= delta;
    if !fresh {
        return Err(Error::SyncFailure {
            sqn,
            sqn_ms,
            auts: build_auts(m, rand, sqn_ms)?,
        });
    }
    Ok(AkaResponse {
        res: v.res,
        ck: v.ck,
        ik: v.ik,
        sqn,
        amf,
    })
}

/// UE side: AUTS = (SQN_MS xor AK*) || MAC-S with MAC-S = f1*(SQN_MS, RAND,
/// AMF = 0x0000) and AK* = f5*(RAND) (TS 33.102 §6.3.3).
pub fn build_auts(m: &Milenage, rand: &[u8; 16], sqn_ms: u64) -> Result<[u8; 14], Error> {
    let sqn = sqn_bytes(sqn_ms)?;
    let ak_star = m.f5_star(rand);
    let mac_s = m.f1_star(rand, &sqn, &RESYNC_AMF);
    let mut auts = [0u8; 14];
    auts[..6].copy_from_slice(&xor6(&sqn, &ak_star));
    auts[6..].copy_from_slice(&mac_s);
    Ok(auts)
}

/// Network side: checks AUTS (MAC-S in constant time) and returns SQN_MS
/// (TS 33.102 §6.3.5).
pub fn verify_auts(m: &Milenage, rand: &[u8; 16], auts: &[u8; 14]) -> Result<u64, Error> {
    let mut conc = [0u8; 6];
    conc.copy_from_slice(&auts[..6]);
    let sqn = xor6(&conc, &m.f5_star(rand));
    let mac_s = m.f1_star(rand, &sqn, &RESYNC_AMF);
    if !bool::from(mac_s.ct_eq(&auts[6..])) {
        return Err(Error::MacFailure);
    }
    Ok(sqn_value(&sqn))
}

/// The decoded `nonce` of a digest AKA challenge (RFC 3310 §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AkaNonce {
    /// RAND.
    pub rand: [u8; 16],
    /// AUTN.
    pub autn: [u8; 16],
    /// Optional server-specific data after AUTN.
    pub server_data: Vec<u8>,
}

/// Splits an AKA digest `nonce` (base64 of RAND || AUTN || optional server
/// data, RFC 3310 §3.2) into RAND, AUTN and the server data.
pub fn parse_nonce(nonce: &str) -> Result<AkaNonce, Error> {
    let raw = base64::decode(nonce)?;
    let short = Error::InvalidInput {
        what: "AKA nonce shorter than RAND || AUTN (32 bytes)",
    };
    let rand: [u8; 16] = raw
        .get(..16)
        .ok_or(short.clone())?
        .try_into()
        .map_err(|_| short.clone())?;
    let autn: [u8; 16] = raw
        .get(16..32)
        .ok_or(short.clone())?
        .try_into()
        .map_err(|_| short)?;
    Ok(AkaNonce {
        rand,
        autn,
        server_data: raw.get(32..).unwrap_or_default().to_vec(),
    })
}

/// Builds an AKA digest `nonce`: base64(RAND || AUTN || server data).
pub fn build_nonce(rand: &[u8; 16], autn: &[u8; 16], server_data: &[u8]) -> String {
    let mut raw = Vec::with_capacity(32 + server_data.len());
    raw.extend_from_slice(rand);
    raw.extend_from_slice(autn);
    raw.extend_from_slice(server_data);
    base64::encode(&raw)
}

/// A digest password derived from AKA results. The bytes are zeroized on
/// drop and `Debug` does not show them.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Vec<u8>);

impl Password {
    /// The password bytes, to be used as such in H(A1) (RFC 2617 §3.2.2.2):
    /// they may contain any byte, including 0.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for Password {}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// RFC 3310 §3.2 (AKAv1-MD5): the password is RES as raw bytes (never as a C
/// string: a RES byte of 0 does not end it).
pub fn akav1_password(res: &[u8]) -> Password {
    Password(res.to_vec())
}

/// RFC 4169 §2.1 (AKAv2-MD5): password = base64(PRF(RES || IK || CK,
/// "http-digest-akav2-password")) with PRF = HMAC-MD5 keyed with RES || IK || CK.
pub fn akav2_password(res: &[u8], ik: &[u8; 16], ck: &[u8; 16]) -> Password {
    let mut key = Vec::with_capacity(res.len() + 32);
    key.extend_from_slice(res);
    key.extend_from_slice(ik);
    key.extend_from_slice(ck);
    let mut prf = hmac_md5(&key, b"http-digest-akav2-password");
    key.zeroize();
    let password = base64::encode(&prf).into_bytes();
    prf.zeroize();
    Password(password)
}

/// The password for `version` (the server passes XRES as `res`).
pub fn password(version: AkaVersion, res: &[u8], ik: &[u8; 16], ck: &[u8; 16]) -> Password {
    match version {
        AkaVersion::V1 => akav1_password(res),
        AkaVersion::V2 => akav2_password(res, ik, ck),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// TS 35.208 Test Set 1 subscriber.
    fn set1() -> (Milenage, [u8; 16], u64, [u8; 2]) {
        (
            Milenage::with_opc(
                &h("465b5ce8b199b49faa5f0a2ee238a6bc"),
                &h("cd63cb71954a9f4e48a5994e37a02baf"),
            ),
            h("23553cbe9637a89d218ae64dae47bf35"),
            0xff9bb4d0b607,
            h("b9b9"),
        )
    }

    #[test]
    fn autn_from_test_set_1() {
        let (m, rand, sqn, amf) = set1();
        let autn = build_autn(&m, &rand, sqn, &amf).unwrap();
        // SQN xor f5 = ff9bb4d0b607 xor aa689c648370; MAC-A = f1 (TS 35.208 4.3.1).
        let want: [u8; 16] = h("55f328b43577b9b94a9ffac354dfafb3");
        assert_eq!(autn, want);
        let ok = verify_autn(&m, &rand, &autn, sqn - 1).unwrap();
        assert_eq!(ok.sqn, sqn);
        assert_eq!(ok.res, h::<8>("a54211d5e3ba50bf"));
        assert_eq!(ok.amf, amf);
        assert!(!format!("{ok:?}").contains("165"));
    }

    #[test]
    fn mac_failure_and_sync_failure() {
        let (m, rand, sqn, amf) = set1();
        let mut autn = build_autn(&m, &rand, sqn, &amf).unwrap();
        // Replay: SQN_MS already equals SQN.
        match verify_autn(&m, &rand, &autn, sqn) {
            Err(Error::SyncFailure {
                sqn: s,
                sqn_ms,
                auts,
            }) => {
                assert_eq!((s, sqn_ms), (sqn, sqn));
                assert_eq!(verify_auts(&m, &rand, &auts), Ok(sqn));
                // AUTS = (SQN_MS xor f5*) || f1*(AMF 0): recompute by hand.
                let ak_star = m.f5_star(&rand);
                let sqn_b = sqn_bytes(sqn).unwrap();
                assert_eq!(auts[..6], xor6(&sqn_b, &ak_star));
                assert_eq!(auts[6..], m.f1_star(&rand, &sqn_b, &[0, 0]));
            }
            other => panic!("{other:?}"),
        }
        // Too far ahead.
        assert!(matches!(
            verify_autn(&m, &rand, &autn, sqn - DEFAULT_DELTA - 1),
            Err(Error::SyncFailure { .. })
        ));
        assert!(verify_autn(&m, &rand, &autn, sqn - DEFAULT_DELTA).is_ok());
        // Any flipped bit of AUTN is a MAC failure (a SQN change alters MAC-A too).
        for i in 0..16 {
            autn[i] ^= 0x10;
            assert_eq!(
                verify_autn(&m, &rand, &autn, 0).unwrap_err(),
                Error::MacFailure,
                "byte {i}"
            );
            autn[i] ^= 0x10;
        }
        let mut auts = build_auts(&m, &rand, 42).unwrap();
        auts[13] ^= 1;
        assert_eq!(verify_auts(&m, &rand, &auts), Err(Error::MacFailure));
        assert!(build_autn(&m, &rand, SQN_MAX + 1, &amf).is_err());
    }

    #[test]
    fn nonce_round_trip() {
        let (m, rand, sqn, amf) = set1();
        let v = auth_vector(&m, &rand, sqn, &amf).unwrap();
        let n = build_nonce(&v.rand, &v.autn, b"srv");
        let p = parse_nonce(&n).unwrap();
        assert_eq!(
            (p.rand, p.autn, p.server_data.as_slice()),
            (rand, v.autn, &b"srv"[..])
        );
        assert!(parse_nonce("AAAA").is_err());
        assert!(parse_nonce("not base64!").is_err());
    }

    #[test]
    fn akav1_password_keeps_zero_bytes() {
        let p = akav1_password(&[0x61, 0x00, 0x62, 0x00]);
        assert_eq!(p.as_bytes(), &[0x61, 0x00, 0x62, 0x00]);
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
    }

    #[test]
    fn akav2_password_matches_python() {
        // Expected value from Python (independent of this crate):
        // base64.b64encode(hmac.new(RES+IK+CK, b"http-digest-akav2-password", "md5").digest())
        // with RES, IK, CK of TS 35.208 Test Set 1.
        let p = akav2_password(
            &h::<8>("a54211d5e3ba50bf"),
            &h("f769bcd751044604127672711c6d3441"),
            &h("b40ba9a3c58b2a05bbf0d987b21bf8cb"),
        );
        assert_eq!(p.as_bytes(), AKAV2_SET1.as_bytes());
    }

    const AKAV2_SET1: &str = "shzt3q8CWaZnCAWqs3WmEQ==";
}
