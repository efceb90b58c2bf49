//! tshark, Wireshark's dissectors (code nobody here wrote), on a capture:
//! fields per packet, ESP decrypted and authenticated with the SAs given in
//! its `esp_sa` table, SigComp messages decompressed by its UDVM.
//!
//! Call [`crate::require`] with [`crate::Peer::Tshark`] first.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use crate::packet::IntoIp;

/// One record of tshark's `esp_sa` table.
#[derive(Clone, Debug)]
pub struct EspSa {
    /// SA source address (the outer one in tunnel mode).
    pub src: IpAddr,
    /// SA destination address.
    pub dst: IpAddr,
    /// SPI.
    pub spi: u32,
    /// tshark's name of the cipher, e.g. `"AES-CBC [RFC3602]"` or `"NULL"`.
    pub encryption: String,
    /// The cipher key in hex, without `0x`; empty for NULL.
    pub encryption_key: String,
    /// tshark's name of the integrity algorithm, e.g.
    /// `"HMAC-SHA-1-96 [RFC2404]"`.
    pub authentication: String,
    /// The integrity key in hex, without `0x`; empty for none.
    pub authentication_key: String,
}

impl EspSa {
    /// An SA from `src` to `dst`; the keys in hex, with or without `0x`.
    pub fn new(
        src: impl IntoIp,
        dst: impl IntoIp,
        spi: u32,
        (encryption, encryption_key): (&str, &str),
        (authentication, authentication_key): (&str, &str),
    ) -> EspSa {
        let hex = |k: &str| k.trim_start_matches("0x").to_owned();
        EspSa {
            src: src.into_ip(),
            dst: dst.into_ip(),
            spi,
            encryption: encryption.to_owned(),
            encryption_key: hex(encryption_key),
            authentication: authentication.to_owned(),
            authentication_key: hex(authentication_key),
        }
    }

    /// The `-o uat:esp_sa:...` value.
    pub fn uat(&self) -> String {
        let key = |k: &str| {
            if k.is_empty() {
                String::new()
            } else {
                format!("0x{k}")
            }
        };
        format!(
            "uat:esp_sa:\"{}\",\"{}\",\"{}\",\"0x{:08x}\",\"{}\",\"{}\",\"{}\",\"{}\"",
            if self.src.is_ipv4() { "IPv4" } else { "IPv6" },
            self.src,
            self.dst,
            self.spi,
            self.encryption,
            key(&self.encryption_key),
            self.authentication,
            key(&self.authentication_key),
        )
    }
}

/// A tshark run printing fields, one line per packet (`-T fields`): built
/// with [`fields`], options added, then [`Fields::run`].
#[derive(Debug)]
pub struct Fields {
    cmd: Command,
    separator: String,
    decrypting: bool,
}

/// tshark's name, in its `esp_sa` table, of an algorithm as `imsua` and
/// `pcscf` print it in their `sa` event lines (setkey/sec-agree names).
pub fn algorithm(name: &str) -> &'static str {
    match name {
        "aes-cbc" => "AES-CBC [RFC3602]",
        "des-ede3-cbc" => "TripleDES-CBC [RFC2451]",
        "null" => "NULL",
        "hmac-sha-1-96" => "HMAC-SHA-1-96 [RFC2404]",
        "hmac-md5-96" => "HMAC-MD5-96 [RFC2403]",
        other => panic!("no tshark name for {other}"),
    }
}

/// One ESP-in-UDP SA as an `"event": "sa"` line gives it (with the keys
/// of `--show-keys`).
#[derive(Clone, Copy, Debug)]
pub struct UdpSa<'a> {
    /// Source address and UDP port.
    pub src: std::net::SocketAddr,
    /// Destination address and UDP port.
    pub dst: std::net::SocketAddr,
    /// SPI.
    pub spi: u32,
    /// Cipher and key (hex), as printed.
    pub ealg: (&'a str, &'a str),
    /// Integrity algorithm and key (hex), as printed.
    pub alg: (&'a str, &'a str),
}

/// One `"event": "sa"` line of `imsua`/`pcscf`: an SA added or removed,
/// with its keys when they were printed (`--show-keys`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaEvent {
    /// `add` or `remove`.
    pub action: String,
    /// `in` or `out`.
    pub direction: String,
    /// Source address and port.
    pub src: std::net::SocketAddr,
    /// Destination address and port.
    pub dst: std::net::SocketAddr,
    /// SPI.
    pub spi: u32,
    /// The sec-agree `mod`.
    pub mode: String,
    /// Cipher, as printed.
    pub ealg: String,
    /// Integrity algorithm, as printed.
    pub alg: String,
    /// Cipher key (hex), if printed.
    pub ekey: Option<String>,
    /// Integrity key (hex), if printed.
    pub akey: Option<String>,
}

impl SaEvent {
    /// The event `v` is, if it is a whole `sa` event.
    pub fn from_json(v: &serde_json::Value) -> Option<SaEvent> {
        if v["event"] != "sa" {
            return None;
        }
        let text = |k: &str| v[k].as_str().map(str::to_owned);
        Some(SaEvent {
            action: text("action")?,
            direction: text("direction")?,
            src: text("src")?.parse().ok()?,
            dst: text("dst")?.parse().ok()?,
            spi: u32::try_from(v["spi"].as_u64()?).ok()?,
            mode: text("mode")?,
            ealg: text("ealg")?,
            alg: text("alg")?,
            ekey: text("ekey"),
            akey: text("akey"),
        })
    }

    /// The `sa` events among a process's output lines, in order; a line
    /// that says `"event": "sa"` but is not one fails the test.
    pub fn from_lines(lines: &[String]) -> Vec<SaEvent> {
        lines
            .iter()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "sa")
            .map(|v| SaEvent::from_json(&v).unwrap_or_else(|| panic!("not an sa event: {v}")))
            .collect()
    }

    /// The SA as tshark's ESP table takes it; its keys must have been
    /// printed.
    pub fn udp_sa(&self) -> UdpSa<'_> {
        let spi = self.spi;
        let (Some(ekey), Some(akey)) = (self.ekey.as_deref(), self.akey.as_deref()) else {
            panic!("no keys printed for SPI {spi:#x}")
        };
        UdpSa {
            src: self.src,
            dst: self.dst,
            spi,
            ealg: (&self.ealg, ekey),
            alg: (&self.alg, akey),
        }
    }
}

/// tshark reading `pcap` (fields separated by `|`, first occurrence of
/// each) with these SAs' keys, every UDP port of theirs decoded as ESP in
/// UDP (`-d udp.port==N,udpencap`); the sorted ports too.
pub fn esp_in_udp<'a>(pcap: &Path, sas: impl IntoIterator<Item = UdpSa<'a>>) -> (Fields, Vec<u16>) {
    let mut esp = Vec::new();
    let mut ports = Vec::new();
    for s in sas {
        esp.push(EspSa::new(
            s.src.ip(),
            s.dst.ip(),
            s.spi,
            (algorithm(s.ealg.0), s.ealg.1),
            (algorithm(s.alg.0), s.alg.1),
        ));
        ports.extend([s.src.port(), s.dst.port()]);
    }
    ports.sort_unstable();
    ports.dedup();
    let mut run = fields(pcap).esp_sas(&esp).arg("-E").arg("occurrence=f");
    for p in &ports {
        run = run.arg("-d").arg(&format!("udp.port=={p},udpencap"));
    }
    (run, ports)
}

/// tshark reading `pcap` without name resolution, fields separated by `|`.
pub fn fields(pcap: &Path) -> Fields {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n").arg("-r").arg(pcap);
    Fields {
        cmd,
        separator: "|".into(),
        decrypting: false,
    }
}

impl Fields {
    /// Decrypts and authenticates ESP with `sa` (with ESP decryption and
    /// the authentication check turned on).
    pub fn esp_sa(mut self, sa: &EspSa) -> Fields {
        if !self.decrypting {
            self.cmd
                .args(["-o", "esp.enable_encryption_decode:TRUE"])
                .args(["-o", "esp.enable_authentication_check:TRUE"]);
            self.decrypting = true;
        }
        self.cmd.arg("-o").arg(sa.uat());
        self
    }

    /// [`Fields::esp_sa`] for each SA.
    pub fn esp_sas<'a>(self, sas: impl IntoIterator<Item = &'a EspSa>) -> Fields {
        sas.into_iter().fold(self, Fields::esp_sa)
    }

    /// A display filter (`-Y`); an empty one is none.
    pub fn filter(mut self, filter: &str) -> Fields {
        if !filter.is_empty() {
            self.cmd.args(["-Y", filter]);
        }
        self
    }

    /// The field separator (default `|`).
    pub fn separator(mut self, s: &str) -> Fields {
        self.separator = s.to_owned();
        self
    }

    /// Every occurrence of a field, comma-separated (`-E occurrence=a`,
    /// tshark's default).
    pub fn all_occurrences(mut self) -> Fields {
        self.cmd.args(["-E", "occurrence=a"]);
        self
    }

    /// Any other tshark argument (`-d`, `-o`, ...).
    pub fn arg(mut self, arg: &str) -> Fields {
        self.cmd.arg(arg);
        self
    }

    /// Runs tshark, asserting it succeeded; its standard output.
    pub fn run(mut self, fields: &[&str]) -> String {
        self.cmd
            .args(["-T", "fields", "-E"])
            .arg(format!("separator={}", self.separator));
        for f in fields {
            self.cmd.args(["-e", f]);
        }
        let o = self.cmd.output().unwrap_or_else(|e| panic!("tshark: {e}"));
        assert!(
            o.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// `fields` of the packets of `pcap` that pass `filter`, ESP decrypted and
/// authenticated with `sas`, separated by `|`.
pub fn decrypt(pcap: &Path, sas: &[EspSa], filter: &str, fields: &[&str]) -> String {
    self::fields(pcap).esp_sas(sas).filter(filter).run(fields)
}

/// `fields` of the packets of `pcap` that pass `filter`, without keys:
/// what an observer of the link sees.
pub fn plain(pcap: &Path, filter: &str, fields: &[&str]) -> String {
    self::fields(pcap).filter(filter).run(fields)
}

/// Per frame of `pcap` (after the display filter in `extra`, if any): the
/// bytes of tshark's "Decompressed SigComp message" block, or `None` when
/// tshark decompressed nothing in that frame.
pub fn sigcomp_decompressed(pcap: &Path, extra: &[&str]) -> Vec<Option<Vec<u8>>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-o", "sigcomp.decomp.msg:TRUE"])
        .args(extra)
        .arg("-x")
        .output()
        .unwrap_or_else(|e| panic!("tshark: {e}"));
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("tshark prints UTF-8");
    let mut frames: Vec<Option<Vec<u8>>> = Vec::new();
    let mut collecting = false;
    for line in text.lines() {
        if line.starts_with("Frame (") {
            frames.push(None);
            collecting = false;
        } else if line.starts_with("Decompressed SigComp message (") {
            if let Some(f) = frames.last_mut() {
                *f = Some(Vec::new());
            }
            collecting = true;
        } else if line.is_empty() || line.ends_with("bytes):") {
            collecting = false;
        } else if collecting {
            // "0000  xx xx ... xx   ascii"
            let hexpart = line.split("  ").nth(1).unwrap_or("");
            let buf = frames
                .last_mut()
                .and_then(Option::as_mut)
                .expect("a decompressed block inside a frame");
            for tok in hexpart.split(' ').filter(|t| !t.is_empty()) {
                buf.push(u8::from_str_radix(tok, 16).expect("hex dump byte"));
            }
        }
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uat_record_as_tshark_reads_it() {
        let sa = EspSa::new(
            "192.0.2.1",
            "192.0.2.2",
            4444,
            ("AES-CBC [RFC3602]", "0x0011"),
            ("HMAC-SHA-1-96 [RFC2404]", "aabb"),
        );
        assert_eq!(
            sa.uat(),
            "uat:esp_sa:\"IPv4\",\"192.0.2.1\",\"192.0.2.2\",\"0x0000115c\",\"AES-CBC [RFC3602]\",\"0x0011\",\"HMAC-SHA-1-96 [RFC2404]\",\"0xaabb\""
        );
        let null = EspSa::new("2001:db8::1", "2001:db8::2", 1, ("NULL", ""), ("NULL", ""));
        assert!(null.uat().starts_with("uat:esp_sa:\"IPv6\""));
        assert!(null.uat().ends_with(",\"NULL\",\"\",\"NULL\",\"\""));
    }
}
