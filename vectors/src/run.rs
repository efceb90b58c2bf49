//! The runner: checks every case of a vector file against `opensec`, with
//! negative cases (flipped bits must fail) beside the positive ones.

use std::path::{Path, PathBuf};

use opensec::aka::{self, AkaVersion};
use opensec::digest::{DigestAlgorithm, DigestParams};
use opensec::milenage::Milenage;
use opensec::{AuthAlgorithm, Cipher, EncAlgorithm, Integrity, ims};

use crate::{Case, Error, VectorFile, load_file};

/// The outcome of one vector file.
#[derive(Clone, Debug)]
pub struct FileReport {
    /// The file (`None` for in-memory vectors).
    pub path: Option<PathBuf>,
    /// A display name (the file name).
    pub name: String,
    /// The `algorithm` header (empty if the file did not load).
    pub algorithm: String,
    /// The `source` header (empty if the file did not load).
    pub source: String,
    /// One report per case, in file order.
    pub cases: Vec<CaseReport>,
    /// Why the file as a whole failed (did not load, unknown algorithm, no cases).
    pub error: Option<Error>,
}

impl FileReport {
    /// Number of cases that passed.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed()).count()
    }

    /// Number of cases that failed.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// True if the file loaded, has cases, and every case passed.
    pub fn ok(&self) -> bool {
        self.error.is_none() && !self.cases.is_empty() && self.failed() == 0
    }
}

/// The outcome of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseReport {
    /// The case name (text between the brackets).
    pub name: String,
    /// Line of the case header.
    pub line: usize,
    /// Number of checks that ran (positive and negative).
    pub checks: usize,
    /// One line per failed check, e.g. `digest: expected 0a.. got 0b..`.
    pub failures: Vec<String>,
}

impl CaseReport {
    /// True if at least one check ran and none failed.
    pub fn passed(&self) -> bool {
        self.checks > 0 && self.failures.is_empty()
    }
}

/// Loads and runs one vector file. A file that cannot be loaded gives a
/// report whose `error` says why.
pub fn run_file(path: &Path) -> FileReport {
    let name = display_name(path);
    let mut report = match load_file(path) {
        Ok(file) => run(&file, &name),
        Err(error) => FileReport {
            path: None,
            name,
            algorithm: String::new(),
            source: String::new(),
            cases: Vec::new(),
            error: Some(error),
        },
    };
    report.path = Some(path.to_path_buf());
    report
}

/// Runs every `*.txt` file of `dir`, in file-name order. Fails only if the
/// directory itself cannot be read; bad files are reported as failed.
pub fn run_dir(dir: &Path) -> Result<Vec<FileReport>, Error> {
    Ok(vector_files(dir)?.iter().map(|p| run_file(p)).collect())
}

/// One vector file as `opensec vectors --list` shows it: loaded, not run.
#[derive(Clone, Debug)]
pub struct FileListing {
    /// The file.
    pub path: PathBuf,
    /// A display name (the file name).
    pub name: String,
    /// The parsed file, or why running it would fail before its first case
    /// (it does not load, names an algorithm the runner does not know, or
    /// has no case).
    pub file: Result<VectorFile, Error>,
}

/// Loads, without running, every `*.txt` file of `dir`, in file-name order.
/// Fails only if the directory itself cannot be read.
pub fn list_dir(dir: &Path) -> Result<Vec<FileListing>, Error> {
    Ok(vector_files(dir)?
        .into_iter()
        .map(|path| {
            let file = load_file(&path).and_then(|f| {
                if Kind::from_name(&f.algorithm).is_none() {
                    Err(Error::UnknownAlgorithm {
                        name: f.algorithm.clone(),
                    })
                } else if f.cases.is_empty() {
                    Err(Error::NoCases)
                } else {
                    Ok(f)
                }
            });
            FileListing {
                name: display_name(&path),
                path,
                file,
            }
        })
        .collect())
}

/// The `*.txt` files of `dir`, sorted by name.
fn vector_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io = |e: std::io::Error| Error::Io {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "txt") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Runs a parsed vector file; `name` labels the report.
pub fn run(file: &VectorFile, name: &str) -> FileReport {
    let mut report = FileReport {
        path: None,
        name: name.to_string(),
        algorithm: file.algorithm.clone(),
        source: file.source.clone(),
        cases: Vec::new(),
        error: None,
    };
    let Some(kind) = Kind::from_name(&file.algorithm) else {
        report.error = Some(Error::UnknownAlgorithm {
            name: file.algorithm.clone(),
        });
        return report;
    };
    if file.cases.is_empty() {
        report.error = Some(Error::NoCases);
    }
    report.cases = file.cases.iter().map(|case| run_case(kind, case)).collect();
    report
}

/// `opensec::aes_xcbc_mac` or `opensec::aes_cmac`.
type AesMac = fn(&[u8; 16], &[u8]) -> [u8; 16];

/// The algorithms the runner knows, by the `algorithm` header.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Hash(HashAlg),
    Hmac(HashAlg),
    AesXcbcMac,
    AesCmac,
    Cbc(EncAlgorithm),
    Ecb(EncAlgorithm),
    Null,
    Milenage,
    GsmMilenage,
    Aka,
    ImsEspKeys,
    HttpDigest,
}

#[derive(Clone, Copy, Debug)]
enum HashAlg {
    Md5,
    Sha1,
    Sha256,
}

impl Kind {
    fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "md5" => Kind::Hash(HashAlg::Md5),
            "sha1" => Kind::Hash(HashAlg::Sha1),
            "sha256" => Kind::Hash(HashAlg::Sha256),
            "hmac-md5" => Kind::Hmac(HashAlg::Md5),
            "hmac-sha1" => Kind::Hmac(HashAlg::Sha1),
            "hmac-sha256" => Kind::Hmac(HashAlg::Sha256),
            "aes-xcbc-mac" => Kind::AesXcbcMac,
            "aes-cmac" => Kind::AesCmac,
            "des-cbc" => Kind::Cbc(EncAlgorithm::DesCbc),
            "3des-cbc" => Kind::Cbc(EncAlgorithm::TripleDesCbc),
            "aes-cbc" => Kind::Cbc(EncAlgorithm::AesCbc),
            "des-ecb" => Kind::Ecb(EncAlgorithm::DesCbc),
            "3des-ecb" => Kind::Ecb(EncAlgorithm::TripleDesCbc),
            "aes-ecb" => Kind::Ecb(EncAlgorithm::AesCbc),
            "null" => Kind::Null,
            "milenage" => Kind::Milenage,
            "gsm-milenage" => Kind::GsmMilenage,
            "aka" => Kind::Aka,
            "ims-esp-keys" => Kind::ImsEspKeys,
            "http-digest" => Kind::HttpDigest,
            _ => return None,
        })
    }
}

impl HashAlg {
    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Md5 => opensec::md5(data).to_vec(),
            HashAlg::Sha1 => opensec::sha1(data).to_vec(),
            HashAlg::Sha256 => opensec::sha256(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Md5 => opensec::hmac_md5(key, data).to_vec(),
            HashAlg::Sha1 => opensec::hmac_sha1(key, data).to_vec(),
            HashAlg::Sha256 => opensec::hmac_sha256(key, data).to_vec(),
        }
    }

    /// The ESP/AH integrity transform built on this hash.
    fn auth(self) -> AuthAlgorithm {
        match self {
            HashAlg::Md5 => AuthAlgorithm::HmacMd5_96,
            HashAlg::Sha1 => AuthAlgorithm::HmacSha1_96,
            HashAlg::Sha256 => AuthAlgorithm::HmacSha256_128,
        }
    }
}

/// Collects the checks of one case.
struct Check<'a> {
    case: &'a Case,
    checks: usize,
    failures: Vec<String>,
}

impl<'a> Check<'a> {
    /// A required field; records a failure if missing.
    fn field(&mut self, name: &str) -> Option<&'a [u8]> {
        let v = self.case.get(name);
        if v.is_none() {
            self.failures.push(format!("missing field `{name}`"));
        }
        v
    }

    /// A required field of exactly `N` bytes.
    fn array<const N: usize>(&mut self, name: &str) -> Option<[u8; N]> {
        let v = self.field(name)?;
        match <[u8; N]>::try_from(v) {
            Ok(a) => Some(a),
            Err(_) => {
                self.failures.push(format!(
                    "field `{name}` has {} bytes, expected {N}",
                    v.len()
                ));
                None
            }
        }
    }

    /// An optional field of exactly `N` bytes: `None` if absent (a present
    /// field of another length is recorded as a failure).
    fn opt_array<const N: usize>(&mut self, name: &str) -> Option<[u8; N]> {
        self.case.get(name)?;
        self.array(name)
    }

    /// A required field that must be UTF-8 text.
    fn text(&mut self, name: &str) -> Option<&'a str> {
        let v = self.field(name)?;
        match std::str::from_utf8(v) {
            Ok(s) => Some(s),
            Err(_) => {
                self.failures.push(format!("field `{name}` is not UTF-8"));
                None
            }
        }
    }

    /// Compares an expected value (from the file) with what `opensec` computed.
    fn eq(&mut self, what: &str, expected: &[u8], got: &[u8]) {
        self.checks += 1;
        if expected != got {
            self.failures.push(format!(
                "{what}: expected {} got {}",
                hex::encode(expected),
                hex::encode(got)
            ));
        }
    }

    /// Compares an expected text (from the file) with a computed one, and
    /// reports both as text.
    fn eq_text(&mut self, what: &str, expected: &[u8], got: &str) {
        self.checks += 1;
        if expected != got.as_bytes() {
            self.failures.push(format!(
                "{what}: expected {} got {got}",
                String::from_utf8_lossy(expected)
            ));
        }
    }

    /// Compares an expected value with a computed one if the case has the field.
    fn eq_opt(&mut self, field: &str, got: &[u8]) -> bool {
        match self.case.get(field) {
            Some(expected) => {
                self.eq(field, expected, got);
                true
            }
            None => false,
        }
    }

    /// A property that must hold.
    fn holds(&mut self, what: &str, ok: bool) {
        self.checks += 1;
        if !ok {
            self.failures.push(format!("{what}: does not hold"));
        }
    }

    fn fail(&mut self, what: String) {
        self.checks += 1;
        self.failures.push(what);
    }
}

fn run_case(kind: Kind, case: &Case) -> CaseReport {
    let mut c = Check {
        case,
        checks: 0,
        failures: Vec::new(),
    };
    match kind {
        Kind::Hash(h) => hash_case(&mut c, h),
        Kind::Hmac(h) => {
            if let (Some(key), Some(data)) = (c.field("key"), c.field("data")) {
                let full = h.hmac(key, data);
                let recompute = |d: &[u8]| h.hmac(key, d);
                mac_case(&mut c, "digest", &full, h.auth(), key, data, &recompute);
            }
        }
        Kind::AesXcbcMac | Kind::AesCmac => {
            if let (Some(key), Some(data)) = (c.field("key"), c.field("data")) {
                match <&[u8; 16]>::try_from(key) {
                    Ok(k) => {
                        let (f, auth): (AesMac, _) = if matches!(kind, Kind::AesXcbcMac) {
                            (opensec::aes_xcbc_mac, AuthAlgorithm::AesXcbcMac96)
                        } else {
                            (opensec::aes_cmac, AuthAlgorithm::AesCmac96)
                        };
                        let full = f(k, data);
                        let recompute = |d: &[u8]| f(k, d).to_vec();
                        mac_case(&mut c, "mac", &full, auth, key, data, &recompute);
                    }
                    Err(_) => c.fail(format!("key has {} bytes, expected 16", key.len())),
                }
            }
        }
        Kind::Cbc(alg) => cipher_case(&mut c, alg, true),
        Kind::Ecb(alg) => cipher_case(&mut c, alg, false),
        Kind::Null => null_case(&mut c),
        Kind::Milenage => milenage_case(&mut c),
        Kind::GsmMilenage => gsm_case(&mut c),
        Kind::Aka => aka_case(&mut c),
        Kind::ImsEspKeys => ims_case(&mut c),
        Kind::HttpDigest => digest_case(&mut c),
    }
    if c.checks == 0 && c.failures.is_empty() {
        c.failures
            .push("no check ran (no expected value in case)".into());
    }
    CaseReport {
        name: case.name.clone(),
        line: case.line,
        checks: c.checks,
        failures: c.failures,
    }
}

fn hash_case(c: &mut Check<'_>, h: HashAlg) {
    let (Some(data), Some(expected)) = (c.field("data"), c.field("digest")) else {
        return;
    };
    let got = h.hash(data);
    c.eq("digest", expected, &got);
    // Negative: one flipped input bit must change the digest.
    if let Some(flipped) = flip_first_bit(data) {
        c.holds(
            "digest of data with a flipped bit differs",
            h.hash(&flipped) != got,
        );
    }
}

/// Flips the lowest bit of the first byte; `None` for empty input.
fn flip_first_bit(data: &[u8]) -> Option<Vec<u8>> {
    let mut v = data.to_vec();
    *v.first_mut()? ^= 1;
    Some(v)
}

/// Flips the highest bit of the last byte; `None` for empty input.
fn flip_last_bit(data: &[u8]) -> Option<Vec<u8>> {
    let mut v = data.to_vec();
    *v.last_mut()? ^= 0x80;
    Some(v)
}

/// Checks a MAC case: the full value (`full_field`), the `truncated` value,
/// the ESP/AH `Integrity` transform when the key has an ESP size, and the
/// negative cases.
fn mac_case(
    c: &mut Check<'_>,
    full_field: &str,
    full: &[u8],
    auth: AuthAlgorithm,
    key: &[u8],
    data: &[u8],
    recompute: &dyn Fn(&[u8]) -> Vec<u8>,
) {
    let has_full = c.eq_opt(full_field, full);
    // The references for the ICV come from the file, never from our own output.
    let mut references: Vec<&[u8]> = c.case.get(full_field).into_iter().collect();
    if let Some(t) = c.case.get("truncated") {
        match full.get(..t.len()) {
            Some(prefix) => c.eq("truncated", t, prefix),
            None => c.fail(format!(
                "truncated: {} bytes, longer than the {}-byte MAC",
                t.len(),
                full.len()
            )),
        }
        references.push(t);
    } else if !has_full {
        c.fail(format!("missing field `{full_field}` or `truncated`"));
        return;
    }

    if auth.key_lengths().contains(&key.len()) {
        integrity_checks(c, auth, key, data, &references);
    } else if let Some(flipped) = flip_first_bit(data) {
        // No ESP-size key (e.g. RFC 2202 "Jefe"): check the raw MAC instead.
        c.holds(
            "MAC of data with a flipped bit differs",
            recompute(&flipped) != full,
        );
    }
}

/// `Integrity::compute` / `verify` against the file's value, plus the
/// negative cases: a flipped data bit, a flipped ICV bit and a short ICV
/// must all fail `verify`.
fn integrity_checks(
    c: &mut Check<'_>,
    auth: AuthAlgorithm,
    key: &[u8],
    data: &[u8],
    references: &[&[u8]],
) {
    let integrity = match Integrity::new(auth, key) {
        Ok(i) => i,
        Err(e) => return c.fail(format!("Integrity::new({auth:?}): {e}")),
    };
    let icv_len = integrity.icv_len();
    // Every value the file gives that is at least ICV-long is checked (a
    // file whose full and truncated values disagree must fail).
    let mut expected: Vec<&[u8]> = references.iter().filter_map(|r| r.get(..icv_len)).collect();
    expected.dedup();
    for expected_icv in expected {
        icv_checks(c, &integrity, auth, data, expected_icv);
    }
}

fn icv_checks(
    c: &mut Check<'_>,
    integrity: &Integrity,
    auth: AuthAlgorithm,
    data: &[u8],
    expected_icv: &[u8],
) {
    let icv_len = integrity.icv_len();
    // Two parts, so the gather interface (ESN high bits) is exercised too.
    let (head, tail) = data.split_at(data.len() / 2);
    let mut icv = [0u8; 64];
    match icv.get_mut(..icv_len) {
        Some(out) => match integrity.compute(&[head, tail], out) {
            Ok(()) => c.eq(&format!("{auth:?} ICV"), expected_icv, out),
            Err(e) => c.fail(format!("Integrity::compute: {e}")),
        },
        None => c.fail(format!("ICV length {icv_len} larger than 64")),
    }
    c.holds(
        "Integrity::verify accepts the RFC ICV",
        integrity.verify(&[head, tail], expected_icv),
    );
    if let Some(flipped) = flip_first_bit(data) {
        c.holds(
            "Integrity::verify rejects data with a flipped bit",
            !integrity.verify(&[&flipped], expected_icv),
        );
    }
    if let Some(bad_icv) = flip_last_bit(expected_icv) {
        c.holds(
            "Integrity::verify rejects an ICV with a flipped bit",
            !integrity.verify(&[data], &bad_icv),
        );
    }
    if let Some(short) = expected_icv.get(..icv_len.saturating_sub(1)) {
        c.holds(
            "Integrity::verify rejects a truncated ICV",
            !integrity.verify(&[data], short),
        );
    }
}

fn cipher_case(c: &mut Check<'_>, alg: EncAlgorithm, cbc: bool) {
    let (Some(key), Some(pt), Some(ct)) =
        (c.field("key"), c.field("plaintext"), c.field("ciphertext"))
    else {
        return;
    };
    let iv = if cbc {
        match c.field("iv") {
            Some(iv) => iv,
            None => return,
        }
    } else {
        &[]
    };
    let cipher = match Cipher::new(alg, key) {
        Ok(ci) => ci,
        Err(e) => return c.fail(format!("Cipher::new({alg:?}, {}-byte key): {e}", key.len())),
    };
    let encrypt = |data: &mut [u8]| {
        if cbc {
            cipher.encrypt_cbc(iv, data)
        } else {
            cipher.encrypt_ecb(data)
        }
    };
    let decrypt = |data: &mut [u8]| {
        if cbc {
            cipher.decrypt_cbc(iv, data)
        } else {
            cipher.decrypt_ecb(data)
        }
    };

    let mut buf = pt.to_vec();
    match encrypt(&mut buf) {
        Ok(()) => {
            c.eq("ciphertext", ct, &buf);
            if !pt.is_empty() {
                c.holds("ciphertext differs from plaintext", buf != pt);
            }
        }
        Err(e) => c.fail(format!("encrypt: {e}")),
    }
    let mut buf = ct.to_vec();
    match decrypt(&mut buf) {
        Ok(()) => c.eq("plaintext (decrypt)", pt, &buf),
        Err(e) => c.fail(format!("decrypt: {e}")),
    }
    // Negative: a flipped ciphertext bit must not decrypt to the plaintext.
    if let Some(mut bad) = flip_first_bit(ct) {
        match decrypt(&mut bad) {
            Ok(()) => c.holds("a flipped ciphertext bit changes the plaintext", bad != pt),
            Err(e) => c.fail(format!("decrypt: {e}")),
        }
    }
    // Negative: misaligned data and (CBC) a wrong IV length are typed errors.
    if let Some(short) = ct
        .get(..ct.len().saturating_sub(1))
        .filter(|s| !s.is_empty())
    {
        let mut short = short.to_vec();
        c.holds(
            "misaligned data is rejected",
            matches!(
                decrypt(&mut short),
                Err(opensec::Error::NotBlockAligned { .. })
            ),
        );
    }
    if cbc {
        let mut buf = pt.to_vec();
        let short_iv = iv.get(..iv.len().saturating_sub(1)).unwrap_or_default();
        c.holds(
            "a short IV is rejected",
            matches!(
                cipher.encrypt_cbc(short_iv, &mut buf),
                Err(opensec::Error::IvLength { .. })
            ),
        );
    }
    if c.case.get("payload").is_some() {
        esp_packet_checks(c, pt, ct, iv);
    }
}

/// The whole-ESP-packet cases of RFC 3602 §4 (cases 5-8): the plaintext is
/// payload || padding || pad length || next header (RFC 4303 §2.4-2.6), and
/// the outer IPv4 header matches the packet it heads.
fn esp_packet_checks(c: &mut Check<'_>, pt: &[u8], ct: &[u8], iv: &[u8]) {
    let (Some(payload), Some(padding), Some(pad_length), Some(next_header)) = (
        c.field("payload"),
        c.field("padding"),
        c.field("pad_length"),
        c.field("next_header"),
    ) else {
        return;
    };
    let trailer: Vec<u8> = [payload, padding, pad_length, next_header].concat();
    c.eq(
        "plaintext = payload||padding||pad_length||next_header",
        pt,
        &trailer,
    );
    // RFC 4303 §2.4: default padding bytes are 1, 2, 3, ...
    let monotonic: Vec<u8> = (1..=padding.len()).map(|i| (i & 0xff) as u8).collect();
    c.eq("padding (RFC 4303 §2.4: 1, 2, 3, ...)", &monotonic, padding);
    c.holds(
        "pad_length equals the padding length",
        pad_length == [padding.len() as u8],
    );
    let (Some(ip), Some(esp)) = (c.field("ip_header"), c.field("esp_header")) else {
        return;
    };
    c.holds(
        "esp_header is SPI (4) + Sequence Number (4)",
        esp.len() == 8,
    );
    let total = ip.len() + esp.len() + iv.len() + ct.len();
    match ip {
        [vihl, _, len_hi, len_lo, _, _, _, _, _, proto, ..] if ip.len() == 20 => {
            c.holds("outer IPv4 header: version 4, IHL 5", *vihl == 0x45);
            c.eq(
                "outer IPv4 total length",
                &(total as u16).to_be_bytes(),
                &[*len_hi, *len_lo],
            );
            c.holds("outer IPv4 protocol is ESP (50)", *proto == 50);
            c.holds("outer IPv4 header checksum is valid", ipv4_checksum_ok(ip));
        }
        _ => c.fail(format!("ip_header has {} bytes, expected 20", ip.len())),
    }
}

/// RFC 791 §3.1: the header checksum field is the one etherparse
/// computes over the header.
fn ipv4_checksum_ok(header: &[u8]) -> bool {
    etherparse::Ipv4HeaderSlice::from_slice(header)
        .is_ok_and(|h| h.to_header().calc_header_checksum() == h.header_checksum())
}

fn milenage_case(c: &mut Check<'_>) {
    let (Some(k), Some(opc), Some(rand), Some(sqn), Some(amf)) = (
        c.array::<16>("k"),
        c.array::<16>("opc"),
        c.array::<16>("rand"),
        c.array::<6>("sqn"),
        c.array::<2>("amf"),
    ) else {
        return;
    };
    if c.case.get("op").is_some() {
        if let Some(op) = c.array::<16>("op") {
            c.eq("opc (from op)", &opc, &Milenage::with_op(&k, &op).opc());
        }
    }
    let m = Milenage::with_opc(&k, &opc);
    let f1 = m.f1(&rand, &sqn, &amf);
    c.eq_opt("f1", &f1);
    c.eq_opt("f1_star", &m.f1_star(&rand, &sqn, &amf));
    let out = m.f2345(&rand);
    c.eq_opt("f2", &out.res);
    c.eq_opt("f3", &out.ck);
    c.eq_opt("f4", &out.ik);
    c.eq_opt("f5", &out.ak);
    c.eq_opt("f5_star", &m.f5_star(&rand));
    // Negative: MAC-A over a different SQN or RAND must differ.
    let mut sqn2 = sqn;
    sqn2[5] ^= 1;
    c.holds(
        "f1 changes with a flipped SQN bit",
        m.f1(&rand, &sqn2, &amf) != f1,
    );
    let mut rand2 = rand;
    rand2[0] ^= 1;
    c.holds(
        "f1 changes with a flipped RAND bit",
        m.f1(&rand2, &sqn, &amf) != f1,
    );
}

fn gsm_case(c: &mut Check<'_>) {
    let (Some(ki), Some(opc), Some(rand)) = (
        c.array::<16>("ki"),
        c.array::<16>("opc"),
        c.array::<16>("rand"),
    ) else {
        return;
    };
    let m = Milenage::with_opc(&ki, &opc);
    let t = m.gsm(&rand);
    c.eq_opt("sres1", &t.sres1);
    c.eq_opt("sres2", &t.sres2);
    c.eq_opt("kc", &t.kc);
    let mut rand2 = rand;
    rand2[15] ^= 0x80;
    c.holds(
        "SRES changes with a flipped RAND bit",
        m.gsm(&rand2).sres1 != t.sres1,
    );
}

/// RFC 2410: NULL(b) = I(b) = b (§2), with a key and an IV of zero bits (§3).
fn null_case(c: &mut Check<'_>) {
    let (Some(data), Some(expected)) = (c.field("data"), c.field("null_data")) else {
        return;
    };
    let cipher = match Cipher::new(EncAlgorithm::Null, &[]) {
        Ok(ci) => ci,
        Err(e) => return c.fail(format!("Cipher::new(Null, no key): {e}")),
    };
    let mut buf = data.to_vec();
    match cipher.encrypt_cbc(&[], &mut buf) {
        Ok(()) => c.eq("null_data (encrypt)", expected, &buf),
        Err(e) => c.fail(format!("encrypt: {e}")),
    }
    let mut buf = expected.to_vec();
    match cipher.decrypt_cbc(&[], &mut buf) {
        Ok(()) => c.eq("data (decrypt)", data, &buf),
        Err(e) => c.fail(format!("decrypt: {e}")),
    }
    c.holds("the IV is 0 bits (RFC 2410 §3)", cipher.iv_len() == 0);
    c.holds(
        "a key longer than 0 bits is refused (RFC 2410 §3)",
        Cipher::new(EncAlgorithm::Null, &[0]).is_err(),
    );
}

/// SQN as the 48-bit big-endian field of AUTN and AUTS.
fn sqn_bytes(sqn: u64) -> [u8; 6] {
    let b = sqn.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn sqn_value(b: &[u8; 6]) -> u64 {
    u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// UMTS AKA end to end (TS 33.102 §6.3) on a MILENAGE test set: the network
/// builds the vector, the UE checks AUTN with `aka::verify_autn`, and a UE
/// whose SQN_MS is ahead of the network's answers with an AUTS that the
/// network's `aka::verify_auts` reads back. Every expected value but `auts`
/// and `akav2_password` is a published test-set value (f1..f5*).
fn aka_case(c: &mut Check<'_>) {
    let (Some(k), Some(rand), Some(sqn_b), Some(amf)) = (
        c.array::<16>("k"),
        c.array::<16>("rand"),
        c.array::<6>("sqn"),
        c.array::<2>("amf"),
    ) else {
        return;
    };
    let (Some(mac_a), Some(res), Some(ck), Some(ik), Some(ak), Some(ak_star), Some(stale_b)) = (
        c.array::<8>("f1"),
        c.array::<8>("f2"),
        c.array::<16>("f3"),
        c.array::<16>("f4"),
        c.array::<6>("f5"),
        c.array::<6>("f5_star"),
        c.array::<6>("sqn_ms_stale"),
    ) else {
        return;
    };
    // The network may derive OPc from OP; the UE holds OPc (as a USIM does).
    let (network, ue) = match (c.opt_array::<16>("op"), c.opt_array::<16>("opc")) {
        (Some(op), Some(opc)) => {
            let network = Milenage::with_op(&k, &op);
            c.eq("opc (from op)", &opc, &network.opc());
            (network, Milenage::with_opc(&k, &opc))
        }
        (Some(op), None) => (Milenage::with_op(&k, &op), Milenage::with_op(&k, &op)),
        (None, Some(opc)) => (Milenage::with_opc(&k, &opc), Milenage::with_opc(&k, &opc)),
        (None, None) => return c.fail("missing field `op` or `opc`".into()),
    };
    let sqn = sqn_value(&sqn_b);

    // Network: AV = RAND, XRES, CK, IK, AUTN (TS 33.102 §6.3.2).
    let av = match aka::auth_vector(&network, &rand, sqn, &amf) {
        Ok(v) => v,
        Err(e) => return c.fail(format!("aka::auth_vector: {e}")),
    };
    let autn: Vec<u8> = [xor(&sqn_b, &ak).as_slice(), &amf, &mac_a].concat();
    c.eq("AUTN = (SQN xor f5) || AMF || f1", &autn, &av.autn);
    c.eq("XRES (f2)", &res, &av.xres);
    c.eq("CK of the vector (f3)", &ck, &av.ck);
    c.eq("IK of the vector (f4)", &ik, &av.ik);

    // UE: AUTN authentic and fresh (TS 33.102 §6.3.3).
    let fresh_ms = sqn.saturating_sub(1);
    match aka::verify_autn(&ue, &rand, &av.autn, fresh_ms) {
        Ok(r) => {
            c.eq("RES from verify_autn (f2)", &res, &r.res);
            c.eq("CK from verify_autn (f3)", &ck, &r.ck);
            c.eq("IK from verify_autn (f4)", &ik, &r.ik);
            c.eq("SQN from verify_autn", &sqn_b, &sqn_bytes(r.sqn));
            c.eq("AMF from verify_autn", &amf, &r.amf);
            // RFC 3310 §3.2: the AKAv1-MD5 password is RES itself.
            let v1 = aka::password(AkaVersion::V1, &r.res, &r.ik, &r.ck);
            c.eq("AKAv1-MD5 password (RES)", &res, v1.as_bytes());
            if let Some(expected) = c.case.get("akav2_password") {
                let v2 = aka::password(AkaVersion::V2, &r.res, &r.ik, &r.ck);
                let got = String::from_utf8_lossy(v2.as_bytes());
                c.eq_text("AKAv2-MD5 password", expected, &got);
            }
        }
        Err(e) => c.fail(format!("verify_autn with SQN_MS = SQN - 1: {e}")),
    }
    // Negative: a wrong MAC-A, or an AMF that MAC-A does not cover, is a MAC
    // failure; the same AUTN again (SQN not above SQN_MS) a sync failure.
    for (what, byte) in [("MAC-A", 15), ("AMF", 6)] {
        let mut bad = av.autn;
        bad[byte] ^= 1;
        c.holds(
            &format!("AUTN with a flipped {what} bit fails with a MAC failure"),
            aka::verify_autn(&ue, &rand, &bad, fresh_ms) == Err(opensec::Error::MacFailure),
        );
    }
    c.holds(
        "a replayed AUTN (SQN_MS = SQN) fails with a sync failure",
        matches!(
            aka::verify_autn(&ue, &rand, &av.autn, sqn),
            Err(opensec::Error::SyncFailure { .. })
        ),
    );

    // Resynchronisation: the UE is ahead of the network (TS 33.102 §6.3.5).
    let stale = sqn_value(&stale_b);
    match aka::verify_autn(&ue, &rand, &av.autn, stale) {
        Err(opensec::Error::SyncFailure {
            sqn: got_sqn,
            sqn_ms,
            auts,
        }) => {
            c.holds(
                "the sync failure carries AUTN's SQN and the UE's SQN_MS",
                got_sqn == sqn && sqn_ms == stale,
            );
            c.eq_opt("auts", &auts);
            c.eq(
                "AUTS[0..6] = SQN_MS xor f5*",
                &xor(&stale_b, &ak_star),
                auts.get(..6).unwrap_or_default(),
            );
            match aka::verify_auts(&network, &rand, &auts) {
                Ok(got) => c.eq("SQN_MS from verify_auts", &stale_b, &sqn_bytes(got)),
                Err(e) => c.fail(format!("verify_auts: {e}")),
            }
            let mut bad = auts;
            bad[13] ^= 1;
            c.holds(
                "AUTS with a flipped MAC-S bit fails with a MAC failure",
                aka::verify_auts(&network, &rand, &bad) == Err(opensec::Error::MacFailure),
            );
        }
        Ok(_) => c.fail("verify_autn with SQN_MS = sqn_ms_stale accepted a stale AUTN".into()),
        Err(e) => c.fail(format!(
            "verify_autn with SQN_MS = sqn_ms_stale: expected a sync failure, got {e}"
        )),
    }
}

/// IMS key expansion (TS 33.203 Annex I) by `opensec::ims::esp_keys` for the
/// sec-agree names `ealg` and `alg`, or the refusal named by `error`.
fn ims_case(c: &mut Check<'_>) {
    let (Some(ealg), Some(alg), Some(ck), Some(ik)) = (
        c.text("ealg"),
        c.text("alg"),
        c.array::<16>("ck"),
        c.array::<16>("ik"),
    ) else {
        return;
    };
    let result = EncAlgorithm::from_sec_agree_name(ealg)
        .and_then(|e| AuthAlgorithm::from_sec_agree_name(alg).map(|a| (e, a)))
        .and_then(|(e, a)| ims::esp_keys(e, a, &ck, &ik));
    if let Some(expected) = c.case.get("error") {
        let got = match &result {
            Ok(_) => "none (keys derived)",
            Err(opensec::Error::UnknownAlgorithm { .. }) => "unknown-algorithm",
            Err(opensec::Error::NoKeyExpansion { .. }) => "no-key-expansion",
            Err(_) => "another error",
        };
        return c.eq_text("error", expected, got);
    }
    let keys = match result {
        Ok(k) => k,
        Err(e) => return c.fail(format!("ims::esp_keys({ealg}, {alg}): {e}")),
    };
    let (Some(enc_key), Some(auth_key)) = (c.field("enc_key"), c.field("auth_key")) else {
        return;
    };
    c.eq("enc_key", enc_key, keys.enc_key.as_bytes());
    c.eq("auth_key", auth_key, keys.auth_key.as_bytes());
    c.holds(
        "the encryption key keys the cipher",
        Cipher::new(keys.ealg, keys.enc_key.as_bytes()).is_ok(),
    );
    c.holds(
        "the integrity key keys the MAC",
        Integrity::new(keys.alg, keys.auth_key.as_bytes()).is_ok(),
    );
    // Negative: CK feeds only the encryption key, IK only the integrity key.
    let (mut ck2, mut ik2) = (ck, ik);
    ck2[0] ^= 1;
    ik2[0] ^= 1;
    match (
        ims::esp_keys(keys.ealg, keys.alg, &ck2, &ik),
        ims::esp_keys(keys.ealg, keys.alg, &ck, &ik2),
    ) {
        (Ok(from_ck2), Ok(from_ik2)) => {
            c.holds(
                "a flipped CK bit changes the encryption key (none for null), not the integrity key",
                (from_ck2.enc_key != keys.enc_key || keys.enc_key.is_empty())
                    && from_ck2.auth_key == keys.auth_key,
            );
            c.holds(
                "a flipped IK bit changes the integrity key, not the encryption key",
                from_ik2.auth_key != keys.auth_key && from_ik2.enc_key == keys.enc_key,
            );
        }
        _ => c.fail("ims::esp_keys failed with a flipped CK or IK bit".into()),
    }
}

/// RFC 2617 §3.2.2: the digest `response`, computed by
/// `opensec::digest::try_response`; text fields must be UTF-8.
fn digest_case(c: &mut Check<'_>) {
    let (Some(username), Some(realm), Some(method), Some(uri), Some(nonce), Some(expected)) = (
        c.text("username"),
        c.text("realm"),
        c.text("method"),
        c.text("uri"),
        c.text("nonce"),
        c.text("response"),
    ) else {
        return;
    };
    let Some(password) = c.field("password") else {
        return;
    };
    let opt = |name: &str| c.case.get(name).and_then(|v| std::str::from_utf8(v).ok());
    let algorithm = match opt("digest_algorithm").map(DigestAlgorithm::parse) {
        None => DigestAlgorithm::Md5,
        Some(Ok((None, alg))) => alg,
        Some(Ok((Some(_), _))) => return c.fail("digest_algorithm: AKA names need RES".into()),
        Some(Err(e)) => return c.fail(format!("digest_algorithm: {e}")),
    };
    let params = DigestParams {
        username,
        realm,
        password,
        method,
        uri,
        nonce,
        nc: opt("nc"),
        cnonce: opt("cnonce"),
        qop: opt("qop"),
        algorithm,
        body: c.case.get("body").unwrap_or_default(),
    };
    match opensec::digest::try_response(&params) {
        Ok(got) => c.eq("response", expected.as_bytes(), got.as_bytes()),
        Err(e) => return c.fail(format!("digest::try_response: {e}")),
    }
    // Negative: a wrong password must give a different response.
    if let Some(wrong) = flip_first_bit(password) {
        let wrong = DigestParams {
            password: &wrong,
            ..params
        };
        c.holds(
            "a wrong password gives a different response",
            opensec::digest::try_response(&wrong).is_ok_and(|r| r != expected),
        );
    }
}
