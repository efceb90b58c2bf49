//! `imsua --config FILE`: the UA's settings as a TOML file, and how they
//! meet the flags. Every key is optional and is read with the parser of
//! the flag of the same name ([`super::hex16`], [`super::sqn`],
//! [`super::parse_duration`], [`Ipsec::parse`], [`Offer::parse`]), so a
//! value means the same in both places; an error names the file, line and
//! column (docs/cli.md). A flag given on the command line wins over the
//! file ([`merge`]); what neither gives takes the flag's default.
//!
//! `amf` is informational: the UE's AKA does not need it (the USIM checks
//! MAC-A over the AMF that AUTN carries, TS 33.102 §6.3.3), and
//! `gm::reg::Ue` has no AMF to check against, so it is only checked to be
//! 4 hex digits, letting one file describe the subscriber as the pcscf's
//! table does.
//!
//! ```
//! use tools::ims::config::{UaConfig, merge, parse};
//! let file = parse("alice.toml", r#"
//! impi = "alice@ims.example.org"
//! impu = "sip:alice@ims.example.org"
//! k = "fec86ba6eb707ed08905757b1bb44b8f"
//! op = "dbc59adcb6f9a0ef735477b7fadf8374"
//! pcscf = "127.0.0.1:5060"
//! ipsec = "udp"
//! offers = ["hmac-sha-1-96/aes-cbc", "hmac-md5-96/null"]
//! t1 = "500ms"
//! "#).unwrap();
//! let flags = UaConfig { pcscf: Some("127.0.0.1:5999".parse().unwrap()), ..UaConfig::default() };
//! let c = merge(file, flags);
//! assert_eq!(c.pcscf.unwrap().port(), 5999);
//! assert_eq!(c.offers.unwrap()[1].to_string(), "hmac-md5-96/null");
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use gm::reg::OpKey;
use opensec::{AuthAlgorithm, EncAlgorithm};
use serde::{Deserialize, Deserializer};

use super::{Ipsec, hex_n, hex16, parse_duration, sqn};

/// One sec-agree offer (TS 33.203 §7.2): an integrity algorithm and an
/// encryption algorithm by their `ipsec-3gpp` names, written `ALG/EALG`,
/// e.g. `hmac-sha-1-96/aes-cbc` or `hmac-md5-96/null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    /// `alg`: hmac-sha-1-96 or hmac-md5-96.
    pub alg: AuthAlgorithm,
    /// `ealg`: aes-cbc, des-ede3-cbc or null.
    pub ealg: EncAlgorithm,
}

impl Offer {
    /// Reads `ALG/EALG` (the `--offer` value and an `offers` element).
    pub fn parse(s: &str) -> Result<Offer, String> {
        let (a, e) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not ALG/EALG (e.g. hmac-sha-1-96/aes-cbc)"))?;
        let alg = AuthAlgorithm::from_sec_agree_name(a)
            .map_err(|_| format!("{s:?}: unknown alg {a:?}: use hmac-sha-1-96 or hmac-md5-96"))?;
        let ealg = EncAlgorithm::from_sec_agree_name(e)
            .map_err(|_| format!("{s:?}: unknown ealg {e:?}: use aes-cbc, des-ede3-cbc or null"))?;
        Ok(Offer { alg, ealg })
    }
}

impl fmt::Display for Offer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Both have sec-agree names: `parse` is the only way in.
        let name = |n: Option<&'static str>| n.unwrap_or("?");
        write!(
            f,
            "{}/{}",
            name(self.alg.sec_agree_name()),
            name(self.ealg.sec_agree_name())
        )
    }
}

/// What the UA is configured with, from a file or from flags; `None`
/// where not given (the flag's default applies).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UaConfig {
    /// The private identity (digest username).
    pub impi: Option<String>,
    /// The public identity registered, a SIP URI.
    pub impu: Option<String>,
    /// The home domain (default: the IMPU's host).
    pub domain: Option<String>,
    /// K (AKA).
    pub k: Option<[u8; 16]>,
    /// OP or OPc.
    pub op: Option<OpKey>,
    /// The AMF, informational (see the module's documentation).
    pub amf: Option<[u8; 2]>,
    /// A digest MD5 password instead of AKA.
    pub password: Option<String>,
    /// SQN_MS, 48 bits.
    pub sqn: Option<u64>,
    /// The P-CSCF's UDP address and port.
    pub pcscf: Option<SocketAddr>,
    /// Our UDP address and port.
    pub local: Option<SocketAddr>,
    /// How SIP is protected.
    pub ipsec: Option<Ipsec>,
    /// What SIP goes over: UDP or TCP.
    pub transport: Option<gm::txn::Protocol>,
    /// ipsecd's control socket with `ipsec = "tun"`.
    pub ipsecd_socket: Option<std::path::PathBuf>,
    /// Our protected client port with `ipsec = "udp"` or `"tun"`.
    pub port_c: Option<u16>,
    /// Our protected server port with `ipsec = "udp"` or `"tun"`.
    pub port_s: Option<u16>,
    /// SigComp over the SAs.
    pub sigcomp: Option<bool>,
    /// With SigComp: locally available bytecode and shared compression.
    pub sigcomp_full: Option<bool>,
    /// The SMS service centre's PSI.
    pub sms_centre: Option<String>,
    /// The registration expiry asked for, in seconds.
    pub expires: Option<u32>,
    /// SIP timer T1 (RFC 3261 §17).
    pub t1: Option<Duration>,
    /// SIP timer T2.
    pub t2: Option<Duration>,
    /// SIP timer T4.
    pub t4: Option<Duration>,
    /// The sec-agree offers, in our order of preference (never empty).
    pub offers: Option<Vec<Offer>>,
}

impl fmt::Debug for UaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |given: bool| given.then_some("<redacted>");
        f.debug_struct("UaConfig")
            .field("impi", &self.impi)
            .field("impu", &self.impu)
            .field("domain", &self.domain)
            .field("k", &secret(self.k.is_some()))
            .field("op", &secret(self.op.is_some()))
            .field("amf", &self.amf.map(hex::encode))
            .field("password", &secret(self.password.is_some()))
            .field("sqn", &self.sqn)
            .field("pcscf", &self.pcscf)
            .field("local", &self.local)
            .field("ipsec", &self.ipsec)
            .field("transport", &self.transport)
            .field("ipsecd_socket", &self.ipsecd_socket)
            .field("port_c", &self.port_c)
            .field("port_s", &self.port_s)
            .field("sigcomp", &self.sigcomp)
            .field("sigcomp_full", &self.sigcomp_full)
            .field("sms_centre", &self.sms_centre)
            .field("expires", &self.expires)
            .field("t1", &self.t1)
            .field("t2", &self.t2)
            .field("t4", &self.t4)
            .field("offers", &self.offers)
            .finish()
    }
}

/// The file as written; each value already read by its flag's parser.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    impi: Option<String>,
    impu: Option<String>,
    domain: Option<String>,
    #[serde(default, deserialize_with = "de_k")]
    k: Option<[u8; 16]>,
    #[serde(default, deserialize_with = "de_op")]
    op: Option<[u8; 16]>,
    #[serde(default, deserialize_with = "de_opc")]
    opc: Option<[u8; 16]>,
    #[serde(default, deserialize_with = "de_amf")]
    amf: Option<[u8; 2]>,
    password: Option<String>,
    #[serde(default, deserialize_with = "de_sqn")]
    sqn: Option<u64>,
    #[serde(default, deserialize_with = "de_pcscf")]
    pcscf: Option<SocketAddr>,
    #[serde(default, deserialize_with = "de_local")]
    local: Option<SocketAddr>,
    #[serde(default, deserialize_with = "de_ipsec")]
    ipsec: Option<Ipsec>,
    #[serde(default, deserialize_with = "de_transport")]
    transport: Option<gm::txn::Protocol>,
    ipsecd_socket: Option<std::path::PathBuf>,
    port_c: Option<u16>,
    port_s: Option<u16>,
    sigcomp: Option<bool>,
    sigcomp_full: Option<bool>,
    sms_centre: Option<String>,
    expires: Option<u32>,
    #[serde(default, deserialize_with = "de_t1")]
    t1: Option<Duration>,
    #[serde(default, deserialize_with = "de_t2")]
    t2: Option<Duration>,
    #[serde(default, deserialize_with = "de_t4")]
    t4: Option<Duration>,
    #[serde(default, deserialize_with = "de_offers")]
    offers: Option<Vec<Offer>>,
}

/// The `offers` array, each element read by [`Offer::parse`] (toml
/// names where the array is).
fn de_offers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Offer>>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| Offer::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("offers: {e}")))
}

/// A string value read by `parse`; an error says which key (toml adds
/// where the value is).
fn with<'de, D: Deserializer<'de>, T>(
    d: D,
    key: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{key}: {e}")))
}

macro_rules! de {
    ($($name:ident, $key:literal, $t:ty, $parse:expr;)*) => {$(
        fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$t>, D::Error> {
            with(d, $key, $parse)
        }
    )*};
}

de! {
    de_k, "k", [u8; 16], hex16;
    de_op, "op", [u8; 16], hex16;
    de_opc, "opc", [u8; 16], hex16;
    de_amf, "amf", [u8; 2], hex_n::<2>;
    de_sqn, "sqn", u64, sqn;
    de_pcscf, "pcscf", SocketAddr, address;
    de_local, "local", SocketAddr, address;
    de_ipsec, "ipsec", Ipsec, Ipsec::parse;
    de_transport, "transport", gm::txn::Protocol, super::transport;
    de_t1, "t1", Duration, parse_duration;
    de_t2, "t2", Duration, parse_duration;
    de_t4, "t4", Duration, parse_duration;
}

/// An `address:port` (what clap reads `--pcscf` and `--local` with).
fn address(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an address and port (e.g. 127.0.0.1:5060)"))
}

/// Reads the configuration file at `path` (`-`: stdin); errors name it.
pub fn load(path: &Path) -> Result<UaConfig> {
    let text = crate::cli::read_to_string(path)?;
    parse(&crate::cli::name(path), &text)
}

/// Parses a configuration (TOML) that errors call `name`.
pub fn parse(name: &str, text: &str) -> Result<UaConfig> {
    let f: File = toml::from_str(text).map_err(|e| super::toml_error(name, text, &e))?;
    let op = match (f.op, f.opc) {
        (Some(_), Some(_)) => bail!("{name}: give one of op and opc"),
        (op, opc) => op.map(OpKey::Op).or(opc.map(OpKey::Opc)),
    };
    if f.password.is_some() && (f.k.is_some() || op.is_some()) {
        bail!("{name}: give password (digest) or k with op or opc (AKA), not both");
    }
    if f.offers.as_ref().is_some_and(Vec::is_empty) {
        bail!("{name}: offers is empty: give one ALG/EALG at least, or leave it out");
    }
    Ok(UaConfig {
        impi: f.impi,
        impu: f.impu,
        domain: f.domain,
        k: f.k,
        op,
        amf: f.amf,
        password: f.password,
        sqn: f.sqn,
        pcscf: f.pcscf,
        local: f.local,
        ipsec: f.ipsec,
        transport: f.transport,
        ipsecd_socket: f.ipsecd_socket,
        port_c: f.port_c,
        port_s: f.port_s,
        sigcomp: f.sigcomp,
        sigcomp_full: f.sigcomp_full,
        sms_centre: f.sms_centre,
        expires: f.expires,
        t1: f.t1,
        t2: f.t2,
        t4: f.t4,
        offers: f.offers,
    })
}

/// The file's settings with the flags' over them: each value given as a
/// flag wins. The credentials go as one: a `--password` flag drops the
/// file's K and OP, a `--k` or `--op`/`--opc` flag the file's password.
pub fn merge(file: UaConfig, flags: UaConfig) -> UaConfig {
    let (file_k, file_op, file_password) = if flags.password.is_some() {
        (None, None, None)
    } else if flags.k.is_some() || flags.op.is_some() {
        (file.k, file.op, None)
    } else {
        (file.k, file.op, file.password)
    };
    UaConfig {
        impi: flags.impi.or(file.impi),
        impu: flags.impu.or(file.impu),
        domain: flags.domain.or(file.domain),
        k: flags.k.or(file_k),
        op: flags.op.or(file_op),
        amf: flags.amf.or(file.amf),
        password: flags.password.or(file_password),
        sqn: flags.sqn.or(file.sqn),
        pcscf: flags.pcscf.or(file.pcscf),
        local: flags.local.or(file.local),
        ipsec: flags.ipsec.or(file.ipsec),
        transport: flags.transport.or(file.transport),
        ipsecd_socket: flags.ipsecd_socket.or(file.ipsecd_socket),
        port_c: flags.port_c.or(file.port_c),
        port_s: flags.port_s.or(file.port_s),
        sigcomp: flags.sigcomp.or(file.sigcomp),
        sigcomp_full: flags.sigcomp_full.or(file.sigcomp_full),
        sms_centre: flags.sms_centre.or(file.sms_centre),
        expires: flags.expires.or(file.expires),
        t1: flags.t1.or(file.t1),
        t2: flags.t2.or(file.t2),
        t4: flags.t4.or(file.t4),
        offers: flags.offers.or(file.offers),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const GOOD: &str = r#"# alice
impi = "alice@ims.example.org"
impu = "sip:alice@ims.example.org"
domain = "ims.example.org"
k = "fec86ba6eb707ed08905757b1bb44b8f"
opc = "0x00112233445566778899aabbccddeeff"
amf = "725c"
sqn = "000000000020"
pcscf = "127.0.0.1:5060"
local = "127.0.0.1:0"
ipsec = "udp"
transport = "udp"
port_c = 5062
port_s = 5064
sigcomp = true
sigcomp_full = false
sms_centre = "sip:+15555550000@ims.example.org"
expires = 3600
t1 = "50ms"
t2 = "4s"
t4 = "5000"
offers = ["hmac-sha-1-96/aes-cbc", "HMAC-MD5-96/null"]
"#;

    fn err(text: &str) -> String {
        parse("ua.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn a_good_file() {
        let c = parse("ua.toml", GOOD).unwrap();
        assert_eq!(c.impi.as_deref(), Some("alice@ims.example.org"));
        assert_eq!(
            c.k,
            Some(hex16("fec86ba6eb707ed08905757b1bb44b8f").unwrap())
        );
        assert!(
            c.op == Some(OpKey::Opc(
                hex16("00112233445566778899aabbccddeeff").unwrap()
            ))
        );
        assert_eq!(c.amf, Some([0x72, 0x5c]));
        assert_eq!(c.sqn, Some(0x20));
        assert_eq!(c.pcscf, Some("127.0.0.1:5060".parse().unwrap()));
        assert_eq!(c.ipsec, Some(Ipsec::Udp));
        assert_eq!(c.transport, Some(gm::txn::Protocol::Udp));
        assert_eq!((c.port_c, c.port_s), (Some(5062), Some(5064)));
        assert_eq!((c.sigcomp, c.sigcomp_full), (Some(true), Some(false)));
        assert_eq!(c.expires, Some(3600));
        assert_eq!(c.t1, Some(Duration::from_millis(50)));
        assert_eq!(c.t2, Some(Duration::from_secs(4)));
        assert_eq!(c.t4, Some(Duration::from_secs(5)));
        let offers = c.offers.unwrap();
        assert_eq!(
            offers,
            [
                Offer {
                    alg: AuthAlgorithm::HmacSha1_96,
                    ealg: EncAlgorithm::AesCbc
                },
                Offer {
                    alg: AuthAlgorithm::HmacMd5_96,
                    ealg: EncAlgorithm::Null
                }
            ]
        );
        assert_eq!(offers[1].to_string(), "hmac-md5-96/null");
        // An empty file is a configuration too: every flag's default.
        assert_eq!(parse("ua.toml", "").unwrap(), UaConfig::default());
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let d = format!("{:?}", parse("ua.toml", GOOD).unwrap());
        assert!(!d.contains("fec86b") && !d.contains("[254"), "{d}");
        assert!(d.contains("k: Some(\"<redacted>\")"), "{d}");
    }

    #[test]
    fn an_unknown_key_names_its_line_and_column() {
        let e = err("impi = \"a\"\n  pcscf_port = 5060\n");
        assert!(
            e.starts_with("ua.toml:2:3: unknown field `pcscf_port`"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_value_names_its_key_and_line() {
        let e = err("impi = \"a\"\nk = \"fec86ba6\"\n");
        assert!(e.starts_with("ua.toml:2:5: k: 4 bytes, expected 16"), "{e}");
        let e = err("\n\nk = \"zz\"\n");
        assert!(e.starts_with("ua.toml:3:5: k: not hex"), "{e}");
        assert!(err("amf = \"72\"").starts_with("ua.toml:1:7: amf: 1 bytes"));
        assert!(err("sqn = \"1\"").starts_with("ua.toml:1:7: sqn: not hex"));
        assert!(err("t1 = \"0ms\"").starts_with("ua.toml:1:6: t1: a timer must be longer"));
        assert!(err("ipsec = \"esp\"").contains("ipsec: unknown --ipsec mode \"esp\""));
        assert!(err("transport = \"sctp\"").contains("transport: unknown transport \"sctp\""));
        assert!(err("pcscf = \"localhost\"").starts_with("ua.toml:1:9: pcscf: \"localhost\""));
        assert!(err("port_c = 70000").starts_with("ua.toml:1:10:"));
        assert!(err("k = 3").starts_with("ua.toml:1:5:"));
    }

    #[test]
    fn a_bad_offer_names_the_array_and_itself() {
        let e = err("offers = [\"hmac-md5-96/null\", \"hmac-sha-256/aes-cbc\"]\n");
        assert!(
            e.starts_with(
                "ua.toml:1:10: offers: \"hmac-sha-256/aes-cbc\": unknown alg \"hmac-sha-256\""
            ),
            "{e}"
        );
        assert!(err("offers = [\"hmac-md5-96/des-cbc\"]").contains("unknown ealg \"des-cbc\""));
        assert!(err("offers = [\"hmac-md5-96\"]").contains("is not ALG/EALG"));
        assert_eq!(
            err("offers = []"),
            "ua.toml: offers is empty: give one ALG/EALG at least, or leave it out"
        );
    }

    #[test]
    fn conflicting_credentials() {
        let k = "00".repeat(16);
        assert_eq!(
            err(&format!("op = \"{k}\"\nopc = \"{k}\"\n")),
            "ua.toml: give one of op and opc"
        );
        assert!(err(&format!("k = \"{k}\"\npassword = \"x\"\n")).contains("not both"));
    }

    #[test]
    fn a_flag_wins_over_the_file() {
        let file = parse("ua.toml", GOOD).unwrap();
        let flags = UaConfig {
            pcscf: Some("127.0.0.1:5999".parse().unwrap()),
            t1: Some(Duration::from_millis(7)),
            sigcomp_full: Some(true),
            offers: Some(vec![Offer::parse("hmac-md5-96/aes-cbc").unwrap()]),
            ..UaConfig::default()
        };
        let c = merge(file.clone(), flags);
        assert_eq!(c.pcscf, Some("127.0.0.1:5999".parse().unwrap()));
        assert_eq!(c.t1, Some(Duration::from_millis(7)));
        assert_eq!(c.sigcomp_full, Some(true));
        assert_eq!(c.offers.as_ref().unwrap().len(), 1);
        // What the flags leave out comes from the file.
        assert_eq!(c.impi, file.impi);
        assert_eq!(c.t2, file.t2);
        assert_eq!(c.ipsec, Some(Ipsec::Udp));
        // No flags: the file as it is; no file: the flags as they are.
        assert_eq!(merge(file.clone(), UaConfig::default()), file);
        assert_eq!(merge(UaConfig::default(), file.clone()), file);
    }

    #[test]
    fn credentials_go_as_one() {
        let file = parse("ua.toml", GOOD).unwrap();
        let flags = UaConfig {
            password: Some("secret".to_owned()),
            ..UaConfig::default()
        };
        let c = merge(file.clone(), flags);
        assert_eq!((c.k, c.op.is_some()), (None, false));
        assert_eq!(c.password.as_deref(), Some("secret"));

        let file = parse("ua.toml", "password = \"old\"\n").unwrap();
        let flags = UaConfig {
            k: Some([1; 16]),
            op: Some(OpKey::Op([2; 16])),
            ..UaConfig::default()
        };
        let c = merge(file, flags);
        assert_eq!((c.k, c.password), (Some([1; 16]), None));
    }
}
