//! Shared by the test crates that check SigComp against tshark (the
//! `sigcomp` and `tools` tests include this file with `#[path]`).

use std::path::Path;
use std::process::Command;

/// Per frame of `pcap` (after the display filter in `extra`, if any): the
/// bytes of tshark's "Decompressed SigComp message" block, or `None` when
/// tshark decompressed nothing in that frame.
pub fn tshark_decompressed(pcap: &Path, extra: &[&str]) -> Vec<Option<Vec<u8>>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-o", "sigcomp.decomp.msg:TRUE"])
        .args(extra)
        .arg("-x")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
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
            let buf = frames.last_mut().unwrap().as_mut().unwrap();
            for tok in hexpart.split(' ').filter(|t| !t.is_empty()) {
                buf.push(u8::from_str_radix(tok, 16).unwrap());
            }
        }
    }
    frames
}
