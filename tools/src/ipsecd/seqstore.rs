//! Sequence numbers that survive a crash: an SA's counter is never reset
//! while the SA lives (RFC 4303 §3.3.3, RFC 4302 §3.3.2), and an SA
//! installed again after a crash — the same destination, protocol, SPI and
//! keys — is the same SA.
//!
//! For each SA the file records a high-water mark: the highest sequence
//! number the SA may send, written (and synced) before the SA is allowed
//! to reach it, [`MARGIN`] ahead of what it has sent, and the highest
//! number it has received. The data path never touches the disk: a thread
//! moves the marks ahead every [`TICK`]; an SA that catches up with its
//! mark waits (its packets are dropped, never sent with a number that
//! might be sent again). When the same SA is installed again, it resumes
//! above its mark, and its replay window starts at the received mark.
//!
//! SAs are told apart by a fingerprint of their identity and keys (HMAC
//! under a random salt kept in the file, never the keys): a re-keyed SA
//! that reuses an SPI is a new SA and starts at 1.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use sadb::Databases;

/// How far ahead of the traffic the recorded mark is kept.
pub const MARGIN: u64 = 1 << 18;

/// How often the marks are moved ahead (the margin covers MARGIN / 2
/// packets per tick on one SA: 1.3 million packets a second).
pub const TICK: Duration = Duration::from_millis(100);

/// An SA as the store knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    dst: IpAddr,
    protocol: u8,
    spi: u32,
    fingerprint: [u8; 16],
}

/// What the store keeps of an SA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Mark {
    /// The highest sequence number the SA may send (recorded before use).
    reserved: u64,
    /// The highest sequence number it has received.
    received: u64,
}

/// The marks of every SA the daemon has run, and their file.
#[derive(Debug)]
pub struct SeqStore {
    path: PathBuf,
    salt: [u8; 16],
    marks: BTreeMap<Key, Mark>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if s.len() != 2 * N {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl SeqStore {
    /// Opens the store at `path` (a new one, with a fresh salt, if there is
    /// none). A file that exists but cannot be read is an error: starting
    /// afresh would send numbers already sent, so the operator decides.
    pub fn open(path: &Path) -> Result<SeqStore> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return SeqStore::parse(path, &text).with_context(|| {
                    format!(
                        "{}: not a sequence store (remove it to start over: SAs added again then restart at 1)",
                        path.display()
                    )
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        }
        let mut salt = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut salt))
            .context("cannot read /dev/urandom for the sequence store's salt")?;
        let s = SeqStore {
            path: path.to_path_buf(),
            salt,
            marks: BTreeMap::new(),
        };
        s.save()?;
        Ok(s)
    }

    fn parse(path: &Path, text: &str) -> Option<SeqStore> {
        let mut salt = None;
        let mut marks = BTreeMap::new();
        for line in text.lines() {
            let mut w = line.split_whitespace();
            match w.next() {
                Some("salt") => salt = unhex::<16>(w.next()?),
                Some("sa") => {
                    let dst: IpAddr = w.next()?.parse().ok()?;
                    let protocol: u8 = w.next()?.parse().ok()?;
                    let spi = u32::from_str_radix(w.next()?, 16).ok()?;
                    let fingerprint = unhex::<16>(w.next()?)?;
                    let reserved: u64 = w.next()?.parse().ok()?;
                    let received: u64 = w.next()?.parse().ok()?;
                    marks.insert(
                        Key {
                            dst,
                            protocol,
                            spi,
                            fingerprint,
                        },
                        Mark { reserved, received },
                    );
                }
                Some(w) if w.starts_with('#') => {}
                None => {}
                Some(_) => return None,
            }
        }
        Some(SeqStore {
            path: path.to_path_buf(),
            salt: salt?,
            marks,
        })
    }

    /// Writes the file and syncs it to disk before returning (a mark is
    /// only used once it is recorded).
    fn save(&self) -> Result<()> {
        let mut text = format!(
            "# ipsecd sequence numbers: sa DST PROTOCOL SPI FINGERPRINT RESERVED RECEIVED\nsalt {}\n",
            hex(&self.salt)
        );
        for (k, m) in &self.marks {
            text.push_str(&format!(
                "sa {} {} {:08x} {} {} {}\n",
                k.dst,
                k.protocol,
                k.spi,
                hex(&k.fingerprint),
                m.reserved,
                m.received
            ));
        }
        let tmp = self.path.with_extension("seq.new");
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    fn key(&self, e: &sadb::SaEntry) -> Key {
        let id = e.id();
        Key {
            dst: id.dst,
            protocol: id.protocol.number(),
            spi: id.spi.0,
            fingerprint: e.sa().fingerprint(&self.salt),
        }
    }

    /// Takes the SAs of `db` under the store's care: one seen before
    /// resumes above its marks; every one gets a reservation, recorded
    /// before the SA may use it. Call on a snapshot before it is published
    /// (its SAs send nothing until then).
    pub fn adopt(&mut self, db: &Databases) -> Result<()> {
        let mut grants = Vec::new();
        for e in db.sad().iter() {
            let sa = e.sa();
            // SAs already in the store's care (reserved) carry on as they
            // are: only new ones are resumed and reserved for.
            if sa.reserved() != u64::MAX {
                continue;
            }
            let k = self.key(e);
            let m = self.marks.entry(k).or_default();
            if m.reserved > 0 || m.received > 0 {
                sa.resume(m.reserved, m.received);
            }
            let reserve = sa.seq().saturating_add(MARGIN);
            m.reserved = m.reserved.max(reserve);
            m.received = m.received.max(sa.replay_state().0);
            grants.push((e, m.reserved));
        }
        self.prune(db);
        self.save()?;
        for (e, r) in grants {
            e.sa().reserve_up_to(r);
        }
        Ok(())
    }

    /// Moves the marks ahead of the traffic of `db`'s SAs (and records what
    /// they received); writes the file only when a mark moved.
    pub fn tick(&mut self, db: &Databases) -> Result<()> {
        let mut grants = Vec::new();
        let mut changed = false;
        for e in db.sad().iter() {
            let k = self.key(e);
            let sa = e.sa();
            let m = self.marks.entry(k).or_default();
            let seq = sa.seq();
            if seq.saturating_add(MARGIN / 2) > m.reserved {
                m.reserved = seq.saturating_add(MARGIN);
                grants.push((e, m.reserved));
                changed = true;
            }
            let top = sa.replay_state().0;
            if top > m.received {
                m.received = top;
                changed = true;
            }
        }
        if changed {
            self.save()?;
        }
        for (e, r) in grants {
            e.sa().reserve_up_to(r);
        }
        Ok(())
    }

    /// Forgets the SAs long gone when the file holds many more than the
    /// SAD (those of the SAD, and a good number of others, stay: an SA
    /// deleted and added again with the same keys still resumes).
    fn prune(&mut self, db: &Databases) {
        let keep = 2 * db.sad().len() + 1024;
        if self.marks.len() <= keep {
            return;
        }
        let live: std::collections::BTreeSet<Key> = db.sad().iter().map(|e| self.key(e)).collect();
        let extra = self.marks.len() - keep;
        let gone: Vec<Key> = self
            .marks
            .keys()
            .filter(|k| !live.contains(k))
            .take(extra)
            .copied()
            .collect();
        for k in gone {
            self.marks.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sadb::Timestamp;

    const KEYS: &str = "-E aes-cbc 0x00112233445566778899aabbccddeeff -A hmac-sha1 0x0102030405060708090a0b0c0d0e0f1011121314";

    fn db(keys: &str) -> Databases {
        let mut d = Databases::new();
        d.apply_script(
            &format!("add 192.0.2.1 192.0.2.2 esp 0x1001 -m transport -r 8 {keys};\n"),
            Timestamp(1),
        )
        .unwrap();
        d
    }

    fn path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("seqstore-{name}-{}.seq", std::process::id()))
    }

    #[test]
    fn the_same_sa_resumes_above_its_mark_and_a_rekeyed_one_starts_at_one() {
        let p = path("resume");
        let _ = std::fs::remove_file(&p);
        let mut s = SeqStore::open(&p).unwrap();
        let first = db(KEYS);
        s.adopt(&first).unwrap();
        let sa = first.sad().iter().next().unwrap().sa();
        assert_eq!(sa.reserved(), MARGIN, "reserved before use");
        // Traffic moves the mark ahead at the next tick.
        sa.resume(MARGIN / 2 + 10, 77);
        s.tick(&first).unwrap();
        let mark = sa.reserved();
        assert_eq!(mark, MARGIN / 2 + 10 + MARGIN);
        drop(s);
        // "Crash": a new daemon opens the file and adds the same SA.
        let mut s = SeqStore::open(&p).unwrap();
        let again = db(KEYS);
        s.adopt(&again).unwrap();
        let sa2 = again.sad().iter().next().unwrap().sa();
        assert_eq!(sa2.seq(), mark, "the next number sent is above the mark");
        assert_eq!(
            sa2.replay_state().0,
            77,
            "the window starts at what was received"
        );
        // The same SPI with other keys is another SA.
        let rekeyed = db(
            "-E aes-cbc 0xffeeddccbbaa99887766554433221100 -A hmac-sha1 0x0102030405060708090a0b0c0d0e0f1011121314",
        );
        s.adopt(&rekeyed).unwrap();
        assert_eq!(rekeyed.sad().iter().next().unwrap().sa().seq(), 0);
        // The file holds no key.
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("00112233445566778899aabbccddeeff"), "{text}");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_damaged_store_is_refused_not_replaced() {
        let p = path("damaged");
        std::fs::write(&p, "salt zz\nsa nonsense\n").unwrap();
        let e = SeqStore::open(&p).unwrap_err();
        assert!(format!("{e:#}").contains("not a sequence store"), "{e:#}");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "salt zz\nsa nonsense\n",
            "left as it was"
        );
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn an_sa_that_catches_up_with_its_mark_waits() {
        let p = path("wait");
        let _ = std::fs::remove_file(&p);
        let mut s = SeqStore::open(&p).unwrap();
        let d = db(KEYS);
        s.adopt(&d).unwrap();
        let sa = d.sad().iter().next().unwrap().sa();
        sa.resume(MARGIN, 0);
        let mut buf = vec![0u8; 200];
        let pkt = [
            0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2, 0, 1, 0, 2, 0, 8,
            0, 0,
        ];
        buf[64..92].copy_from_slice(&pkt);
        let mut iv = |iv: &mut [u8]| iv.fill(1);
        assert!(matches!(
            sa.encap_range(&mut buf, 64..92, &mut iv),
            Err(ipsec_esp::Error::SequenceNotReserved { .. })
        ));
        s.tick(&d).unwrap();
        buf[64..92].copy_from_slice(&pkt);
        assert!(sa.encap_range(&mut buf, 64..92, &mut iv).is_ok());
        std::fs::remove_file(&p).unwrap();
    }
}
