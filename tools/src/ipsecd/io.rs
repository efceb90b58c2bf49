//! Small IO helpers of the daemon: the IV source and the pcap recorder.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ipsec_esp::IvSource;

/// IVs from `/dev/urandom` (the kernel CSPRNG), read 4 KiB at a time so a
/// packet costs no system call (RFC 3602 §2.2: CBC IVs must be
/// unpredictable). One per thread.
#[derive(Debug)]
pub struct UrandomIv {
    file: File,
    buf: Box<[u8; 4096]>,
    pos: usize,
}

impl UrandomIv {
    /// Opens `/dev/urandom`.
    pub fn new() -> io::Result<UrandomIv> {
        Ok(UrandomIv {
            file: File::open("/dev/urandom")?,
            buf: Box::new([0; 4096]),
            pos: 4096,
        })
    }

    fn refill(&mut self) {
        // A failing read of /dev/urandom is not recoverable: better to stop
        // than to send predictable IVs.
        if let Err(e) = self.file.read_exact(&mut self.buf[..]) {
            tracing::error!("cannot read /dev/urandom: {e}; exiting");
            std::process::exit(70);
        }
        self.pos = 0;
    }
}

impl IvSource for UrandomIv {
    fn fill_iv(&mut self, iv: &mut [u8]) {
        let mut done = 0;
        while done < iv.len() {
            if self.pos >= self.buf.len() {
                self.refill();
            }
            let n = (iv.len() - done).min(self.buf.len() - self.pos);
            iv[done..done + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            // Each IV byte is used once.
            self.buf[self.pos..self.pos + n].fill(0);
            self.pos += n;
            done += n;
        }
    }
}

/// A libpcap file of raw IP packets (LINKTYPE_RAW), written as packets
/// pass: the plaintext side (TUN) and the protected side (ESP/AH) in one
/// file, readable by Wireshark/tshark while the daemon runs.
#[derive(Debug)]
pub struct PcapWriter {
    file: Mutex<File>,
}

impl PcapWriter {
    /// Creates the file and writes the global header.
    pub fn create(path: &Path) -> io::Result<PcapWriter> {
        let mut file = File::create(path)?;
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&crate::pcap::LINKTYPE_RAW.to_le_bytes());
        file.write_all(&h)?;
        Ok(PcapWriter {
            file: Mutex::new(file),
        })
    }

    /// Appends one packet (one write per record).
    pub fn record(&self, pkt: &[u8]) {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let len = u32::try_from(pkt.len()).unwrap_or(u32::MAX);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&(t.as_secs() as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&t.subsec_micros().to_le_bytes());
        rec[8..12].copy_from_slice(&len.to_le_bytes());
        rec[12..16].copy_from_slice(&len.to_le_bytes());
        if let Ok(mut f) = self.file.lock() {
            let bufs = [io::IoSlice::new(&rec), io::IoSlice::new(pkt)];
            let _ = f.write_vectored(&bufs).and_then(|n| {
                if n < rec.len() + pkt.len() {
                    // Rare short write: finish it.
                    let all: Vec<u8> = rec.iter().chain(pkt).copied().collect();
                    f.write_all(&all[n..])
                } else {
                    Ok(())
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ivs_differ_and_pcap_parses() {
        let mut iv = UrandomIv::new().unwrap();
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        iv.fill_iv(&mut a);
        iv.fill_iv(&mut b);
        assert_ne!(a, b);
        for _ in 0..600 {
            iv.fill_iv(&mut a);
        }
        let path = std::env::temp_dir().join(format!("ipsecd-pcap-{}.pcap", std::process::id()));
        let w = PcapWriter::create(&path).unwrap();
        w.record(&[0x45, 0, 0, 20]);
        w.record(&[0x60; 40]);
        let cap = crate::pcap::parse(&std::fs::read(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(cap.linktype, crate::pcap::LINKTYPE_RAW);
        assert_eq!(cap.records.len(), 2);
        assert_eq!(cap.records[1].data, vec![0x60; 40]);
    }
}
