//! libpcap files for tests: write the input of a tool or of tshark, read
//! what a tool wrote. The format is a 24-byte header and a 16-byte header
//! per record; this is a second implementation beside `tools::pcap`, so
//! the lower crates' tests need not depend on `tools`, and the tools'
//! output is read by code other than the one that wrote it.
//!
//! ```
//! use testkit::pcap::{self, Capture};
//! let pkt = testkit::packet::udp("192.0.2.1", 1, "192.0.2.2", 2, b"x");
//! let cap = Capture::new(pcap::LINKTYPE_RAW, [pkt.clone()]);
//! assert_eq!(Capture::parse(&cap.to_bytes()).records[0].data, pkt);
//! ```

use std::path::Path;

/// Ethernet (DLT_EN10MB).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Raw IP, IPv4 or IPv6 by the version nibble (DLT_RAW as stored in files).
pub const LINKTYPE_RAW: u32 = 101;
/// Linux cooked capture v1.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// Raw IPv4.
pub const LINKTYPE_IPV4: u32 = 228;
/// Raw IPv6.
pub const LINKTYPE_IPV6: u32 = 229;

/// The timestamp of a capture's first record from [`Capture::new`]
/// (2026-11-21); each next record is one second later, so tools that take
/// the time from the capture (SA lifetimes) see one packet a second.
pub const FIRST_SECOND: u32 = 1_795_314_303;

/// One captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Timestamp, seconds.
    pub ts_sec: u32,
    /// Timestamp, micro- or nanoseconds as the file says.
    pub ts_frac: u32,
    /// The bytes, from the link-layer header on.
    pub data: Vec<u8>,
}

/// A capture file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    /// The link-layer type of every record.
    pub linktype: u32,
    /// Whether the timestamps' fractions are nanoseconds.
    pub nanos: bool,
    /// The records in file order.
    pub records: Vec<Record>,
}

impl Capture {
    /// A microsecond capture of `packets`, one a second from
    /// [`FIRST_SECOND`].
    pub fn new(linktype: u32, packets: impl IntoIterator<Item = Vec<u8>>) -> Capture {
        Capture {
            linktype,
            nanos: false,
            records: packets
                .into_iter()
                .enumerate()
                .map(|(i, data)| Record {
                    ts_sec: FIRST_SECOND + u32::try_from(i).unwrap(),
                    ts_frac: 0,
                    data,
                })
                .collect(),
        }
    }

    /// The little-endian file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let magic: u32 = if self.nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut out = Vec::new();
        // magic, version 2.4, zone, sigfigs, snaplen, link type
        for w in [magic, 0x0004_0002, 0, 0, 262_144, self.linktype] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        for r in &self.records {
            let len = u32::try_from(r.data.len()).unwrap();
            for w in [r.ts_sec, r.ts_frac, len, len] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&r.data);
        }
        out
    }

    /// Parses a file of either byte order, micro- or nanoseconds; panics on
    /// anything else (pcapng, truncation), naming the problem.
    pub fn parse(bytes: &[u8]) -> Capture {
        Capture::try_parse(bytes, false).unwrap_or_else(|e| panic!("pcap: {e}"))
    }

    /// As [`Capture::parse`], for a file another process may still be
    /// writing: its last record may be incomplete and is left out; `None`
    /// while even the file header is incomplete.
    pub fn parse_partial(bytes: &[u8]) -> Option<Capture> {
        Capture::try_parse(bytes, true).ok()
    }

    /// Reads and parses a file.
    pub fn read(path: &Path) -> Capture {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("pcap {}: {e}", path.display()));
        Capture::parse(&bytes)
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_bytes())
            .unwrap_or_else(|e| panic!("pcap {}: {e}", path.display()));
    }

    fn try_parse(bytes: &[u8], partial: bool) -> Result<Capture, String> {
        let hdr = bytes
            .get(..24)
            .ok_or("file shorter than its 24-byte header")?;
        let (le, nanos) = match hdr[..4] {
            [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
            [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
            [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
            _ => return Err(format!("unknown magic {:02x?} (not libpcap)", &hdr[..4])),
        };
        let u32_at = |b: &[u8], i: usize| {
            let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
            if le {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        };
        let mut cap = Capture {
            linktype: u32_at(hdr, 20) & 0x0fff_ffff,
            nanos,
            records: Vec::new(),
        };
        let mut rest = &bytes[24..];
        while !rest.is_empty() {
            let record = rest.get(..16).and_then(|h| {
                let incl = u32_at(h, 8) as usize;
                Some((h, rest.get(16..16 + incl)?))
            });
            let Some((h, data)) = record else {
                if partial {
                    break;
                }
                return Err("truncated record".into());
            };
            cap.records.push(Record {
                ts_sec: u32_at(h, 0),
                ts_frac: u32_at(h, 4),
                data: data.to_vec(),
            });
            rest = &rest[16 + data.len()..];
        }
        Ok(cap)
    }
}

/// Writes `packets` as a capture of `linktype` (see [`Capture::new`]).
pub fn write<P: AsRef<[u8]>>(path: &Path, linktype: u32, packets: &[P]) {
    Capture::new(linktype, packets.iter().map(|p| p.as_ref().to_vec())).write(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_both_byte_orders() {
        let cap = Capture::new(LINKTYPE_ETHERNET, [vec![1, 2, 3], vec![]]);
        let bytes = cap.to_bytes();
        assert_eq!(Capture::parse(&bytes), cap);
        assert_eq!(cap.records[1].ts_sec, FIRST_SECOND + 1);
        // The same file big-endian.
        let mut be = Vec::new();
        for w in [0xa1b2_c3d4u32, 0x0002_0004, 0, 0, 65535, 1] {
            be.extend_from_slice(&w.to_be_bytes());
        }
        for w in [7u32, 8, 1, 1] {
            be.extend_from_slice(&w.to_be_bytes());
        }
        be.push(9);
        let c = Capture::parse(&be);
        assert_eq!(
            (c.linktype, c.records[0].ts_sec, &c.records[0].data[..]),
            (1, 7, &[9][..])
        );
    }

    #[test]
    fn a_record_still_being_written_is_left_out() {
        let bytes = Capture::new(LINKTYPE_RAW, [vec![1; 10], vec![2; 10]]).to_bytes();
        let part = Capture::parse_partial(&bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(part.records.len(), 1);
        assert!(Capture::parse_partial(&bytes[..10]).is_none());
    }
}
