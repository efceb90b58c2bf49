//! The `sigcomp` binary: torture table, decompressing files and captures,
//! and clean errors on bad input. Also measures what the decompressor
//! allocates (this test binary counts allocations per thread).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The counting allocator below is the only unsafe code; it forwards to
// `System` unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the bytes allocated by the current thread and their peak.
struct Counting;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to `System` with the same arguments;
// the counters are plain thread-local cells without destructors.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let _ = CURRENT.try_with(|c| {
                c.set(c.get() + l.size());
                let _ = PEAK.try_with(|pk| pk.set(pk.get().max(c.get())));
            });
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let _ = CURRENT.try_with(|c| c.set(c.get().saturating_sub(l.size())));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes allocated by this thread while running `f`, above what was
/// allocated before.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    f();
    PEAK.with(Cell::get) - base
}

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sigcomp"))
}

fn independent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/independent")
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sigcomp-cli-{}-{name}", std::process::id()))
}

#[test]
fn torture_prints_a_passing_table() {
    let out = bin().arg("torture").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("passed 78/78"), "{text}");
    assert!(text.contains("A.3.5"));
    assert!(text.contains("MULTILOAD_OVERWRITTEN/MULTILOAD_OVERWRITTEN"));
}

#[test]
fn torture_fails_on_a_wrong_expectation() {
    let vectors =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/sigcomp/rfc4465-torture-tests.txt");
    let text = std::fs::read_to_string(vectors)
        .unwrap()
        .replacen("cycles 22", "cycles 23", 1);
    let f = tmp("bad-torture.txt");
    std::fs::write(&f, text).unwrap();
    let out = bin().arg("torture").arg(&f).output().unwrap();
    std::fs::remove_file(&f).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("passed 77/78")
    );
}

#[test]
fn decompresses_a_message_file() {
    let dir = independent();
    let input = dir.join("tinysigcomp-8192-8192-64/cold/001-s1-01-ue-register-initial.sigcomp");
    let out_file = tmp("001.sip");
    let out = bin()
        .args([
            "decompress",
            "--dms",
            "8192",
            "--cpb",
            "64",
            "--sms",
            "8192",
        ])
        .arg(&input)
        .arg(&out_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(&out_file).unwrap();
    std::fs::remove_file(&out_file).unwrap();
    assert_eq!(
        got,
        std::fs::read(dir.join("corpus/01-ue-register-initial.sip")).unwrap()
    );
}

#[test]
fn decompresses_a_capture_into_a_capture() {
    let dir = independent();
    let input = dir.join("opensigcomp-4096-4096-16/pcap/ue-to-pcscf.pcap");
    let out_file = tmp("out.pcap");
    let out = bin()
        .args([
            "decompress",
            "--dms",
            "4096",
            "--cpb",
            "16",
            "--sms",
            "4096",
        ])
        .arg(&input)
        .arg(&out_file)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("14 decompressed, 0 failed"), "{text}");
    // Read back by testkit (etherparse), not by the code that wrote it.
    let cap = testkit::pcap::Capture::read(&out_file);
    std::fs::remove_file(&out_file).unwrap();
    assert_eq!(cap.records.len(), 14);
    let first = testkit::packet::transport(cap.linktype, &cap.records[0].data).unwrap();
    assert_eq!(
        first.payload,
        std::fs::read(dir.join("corpus/01-ue-register-initial.sip")).unwrap()
    );
}

#[test]
fn failure_prints_the_reason_and_exits_non_zero() {
    let f = tmp("short.sigcomp");
    std::fs::write(&f, [0xf8, 0x00]).unwrap();
    let out_file = tmp("short.out");
    let out = bin()
        .arg("decompress")
        .arg(&f)
        .arg(&out_file)
        .output()
        .unwrap();
    std::fs::remove_file(&f).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("MESSAGE_TOO_SHORT")
    );
}

#[test]
fn bad_arguments_give_one_line_errors() {
    let out = bin()
        .args(["decompress", "/nonexistent/in", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = bin()
        .args(["decompress", "--cpb", "17", "/dev/null", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(bin().arg("--help").output().unwrap().status.success());
}

#[test]
fn asm_message_decompresses_and_disasm_round_trips() {
    // RFC 4896 §11: the "uncompressed" bytecode; RFC 4896 gives its bytes.
    let src = "at (64)\n:byte_copy_left pad (2)\nat (128)\n:start\nINPUT-BYTES (1, byte_copy_left, end)\nOUTPUT (byte_copy_left, 1)\nJUMP (start)\n:end\nEND-MESSAGE (0,0,0,0,0,0,0)\n";
    let asm_file = tmp("u.asm");
    let msg_file = tmp("u.sigcomp");
    std::fs::write(&asm_file, src).unwrap();
    let out = bin()
        .args(["asm", "--message"])
        .arg(&asm_file)
        .arg(&msg_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut msg = std::fs::read(&msg_file).unwrap();
    assert_eq!(
        msg,
        [
            0xf8, 0x00, 0xa1, 0x1c, 0x01, 0x86, 0x09, 0x22, 0x86, 0x01, 0x16, 0xf9, 0x23
        ]
    );
    msg.extend_from_slice(b"hello");
    std::fs::write(&msg_file, &msg).unwrap();
    let plain = tmp("u.out");
    let out = bin()
        .arg("decompress")
        .arg(&msg_file)
        .arg(&plain)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read(&plain).unwrap(), b"hello");
    let out = bin().arg("disasm").arg(&msg_file).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("INPUT-BYTES"), "{text}");
    // The disassembly assembles back to the same message.
    std::fs::write(&asm_file, &text).unwrap();
    let out = bin()
        .args(["asm", "--message"])
        .arg(&asm_file)
        .arg(&plain)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&plain).unwrap(), msg[..13]);
    for f in [asm_file, msg_file, plain] {
        std::fs::remove_file(f).unwrap();
    }
    // Bad assembly: exit 2, one line naming the position.
    let bad = tmp("bad.asm");
    std::fs::write(&bad, "FROB (1)\n").unwrap();
    let out = bin()
        .arg("asm")
        .arg(&bad)
        .arg("/dev/null")
        .output()
        .unwrap();
    std::fs::remove_file(&bad).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
}

/// RFC 3320 §7 and §9: a message may make the decompressor hold its UDVM
/// memory (< DMS), up to 65536 bytes of output (a growing Vec may briefly
/// hold old and new buffers) and four state values, each cut to SMS - 64.
fn allocation_bound(dms: usize, sms: usize) -> usize {
    dms + 3 * 65536 + 4 * sms + 16 * 1024
}

#[test]
fn decompression_allocates_within_its_parameters() {
    use sigcomp::{CompartmentId, Decompressor, Parameters, StateHandler, Transport};
    let (dms, sms) = (8192usize, 8192usize);
    let params = Parameters {
        decompression_memory_size: dms as u32,
        state_memory_size: sms as u32,
        cycles_per_bit: 128,
        version: 2,
    };
    let mut states = StateHandler::with_dictionaries();
    states.open_compartment(CompartmentId(0), sms as u32);
    // Worst case the cycle budget allows: byte_copy_right = 64, four
    // STATE-CREATE (65535, 0, 0, 6, 0), OUTPUT of 65536 bytes, END-MESSAGE;
    // zero padding makes the header (and so the cycle budget) large.
    let mut code = vec![0x0e, 0xa0, 0x42, 0x86];
    for _ in 0..4 {
        code.extend_from_slice(&[0x20, 0xff, 0x00, 0x00, 0x06, 0x00]);
    }
    code.extend_from_slice(&[
        0x22, 0x00, 0xff, 0x22, 0x00, 0x01, 0x23, 0, 0, 0, 0, 0, 0, 0,
    ]);
    code.resize(4000, 0);
    let mut msg = vec![
        0xf8,
        (code.len() >> 4) as u8,
        ((code.len() as u8 & 0x0f) << 4) | 1,
    ];
    msg.extend_from_slice(&code);
    let mut d = Decompressor::new(params).unwrap();
    let mut result = None;
    let peak = peak_during(|| result = Some(d.decompress(&msg, Transport::Message, &states)));
    let out = result.unwrap().unwrap();
    assert_eq!(out.output.len(), 65536);
    assert_eq!(out.state_requests.len(), 4);
    assert!(peak <= allocation_bound(dms, sms), "peak {peak} bytes");
    states.commit(CompartmentId(0), &out).unwrap();
    assert!(states.compartment(CompartmentId(0)).unwrap().used() <= sms as u32);

    // Random bytecode: never more than the bound either.
    let mut seed: u64 = 0x5eed;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    for _ in 0..3000 {
        let len = (rnd() % 300) as usize;
        let code: Vec<u8> = (0..len)
            .map(|_| {
                if rnd() % 3 == 0 {
                    (rnd() % 36) as u8
                } else {
                    rnd() as u8
                }
            })
            .collect();
        let mut msg = vec![0xf8, (len >> 4) as u8, ((len as u8 & 0x0f) << 4) | 1];
        msg.extend_from_slice(&code);
        msg.extend((0..rnd() % 64).map(|_| rnd() as u8));
        let peak = peak_during(|| {
            let _ = d.decompress(&msg, Transport::Message, &states);
        });
        assert!(
            peak <= allocation_bound(dms, sms),
            "peak {peak} for {}",
            hex::encode(&msg)
        );
    }
}

/// Runs `sigcomp ARGS FILE [OUT]` on `bytes` written to a file; the exit
/// status and the stderr line.
fn refused(args: &[&str], bytes: &[u8], out: bool) -> (Option<i32>, String, String) {
    let f = tmp(&format!("input-{}", args.join("-")));
    std::fs::write(&f, bytes).unwrap();
    let mut c = bin();
    c.args(args).arg(&f);
    if out {
        c.arg(tmp("refused.out"));
    }
    let o = c.output().unwrap();
    std::fs::remove_file(&f).unwrap();
    (
        o.status.code(),
        String::from_utf8(o.stderr).unwrap(),
        f.display().to_string(),
    )
}

/// Input that is not SigComp (RFC 3320 §7: the first five bits are 11111)
/// is named as such, exit 2 and one line naming the file, rather than
/// reported as a decompression failure of the UDVM.
#[test]
fn input_that_is_not_sigcomp_is_named() {
    let sip = std::fs::read(independent().join("corpus/01-ue-register-initial.sip")).unwrap();
    let mut seed: u64 = 7;
    let random: Vec<u8> = std::iter::once(0x3c)
        .chain((0..200).map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as u8
        }))
        .collect();
    let pcapng = [
        0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
    ];
    let pcap = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    for (args, bytes, out, want) in [
        (
            &["decompress"][..],
            &sip[..],
            true,
            "not a SigComp message (first byte 0x52, RFC 3320 §7 needs 11111xxx); it is SIP",
        ),
        (
            &["decompress", "--stream"],
            &sip,
            true,
            "not a SigComp message (first byte 0x52",
        ),
        (
            &["decompress"],
            &random,
            true,
            "not a SigComp message (first byte 0x3c, RFC 3320 §7 needs 11111xxx)",
        ),
        (&["decompress"], &[], true, "empty, not a SigComp message"),
        (
            &["disasm"],
            &pcapng,
            false,
            "is a pcapng capture: disasm reads",
        ),
        (&["disasm"], &pcap, false, "is a pcap capture: disasm reads"),
        (&["disasm"], &[0xf8], false, "starts like a SigComp message"),
        (
            &["compress"],
            &pcapng,
            true,
            "is a pcapng capture: compress",
        ),
        (
            &["flow"],
            &pcap,
            false,
            "is a pcap capture: compress and flow",
        ),
        (&["asm"], &pcapng, true, "is a pcapng capture: asm reads"),
        (
            &["torture"],
            &pcap,
            false,
            "is a pcap capture: torture reads",
        ),
    ] {
        let (code, err, file) = refused(args, bytes, out);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with(&format!("sigcomp: {file}")), "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("INTERNAL_ERROR"), "{err}");
    }
    // --raw still disassembles any bytes as bytecode.
    let (code, err, _) = refused(&["disasm", "--raw"], &[0xf8], false);
    assert_eq!(code, Some(0), "{err}");
}

/// UDVM memory is 64 KiB (RFC 3320 §7): asm, disasm and torture refuse
/// programs that pass its end with one line naming the file, and disasm
/// does so before disassembling (a 20 MB file took 15 s and 2.9 GB).
#[test]
fn programs_over_64_kib_are_refused() {
    let one_line = |o: &std::process::Output, file: &Path, want: &str| {
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8(o.stderr.clone()).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("sigcomp: {}", file.display())),
            "{err}"
        );
        assert!(err.contains(want), "{err}");
    };
    // disasm: 20 MB of raw bytecode.
    let big = tmp("big.bin");
    std::fs::write(&big, vec![0u8; 20_000_000]).unwrap();
    let start = std::time::Instant::now();
    let o = bin().arg("disasm").arg(&big).output().unwrap();
    let took = start.elapsed();
    one_line(
        &o,
        &big,
        "20000000 bytes of bytecode at origin 128 pass the end",
    );
    assert!(o.stdout.is_empty());
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    // The last byte may be at 0xFFFF, not past it.
    std::fs::write(&big, [0u8; 2]).unwrap();
    let o = bin()
        .args(["disasm", "--origin", "65535"])
        .arg(&big)
        .output()
        .unwrap();
    one_line(&o, &big, "at most 1 bytes fit");
    let o = bin()
        .args(["disasm", "--origin", "65534"])
        .arg(&big)
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::remove_file(&big).unwrap();

    // asm: 72 KB of code, and an origin past 0xFFFF; the line of the
    // statement that passes the end.
    let src = tmp("big.asm");
    std::fs::write(
        &src,
        format!("at (128)\n{}", "byte (1, 2, 3, 4)\n".repeat(18_000)),
    )
    .unwrap();
    let o = bin()
        .arg("asm")
        .arg(&src)
        .arg("/dev/null")
        .output()
        .unwrap();
    one_line(&o, &src, ":16354:7: bytes 0x10000..=0x10003 pass the end");
    std::fs::write(&src, "at (70000)\nEND-MESSAGE (0, 0, 0, 0, 0, 0, 0)\n").unwrap();
    let o = bin()
        .arg("asm")
        .arg(&src)
        .arg("/dev/null")
        .output()
        .unwrap();
    one_line(&o, &src, ":2:1: bytes 0x11170..");
    std::fs::remove_file(&src).unwrap();

    // torture: a message record over 64 KiB.
    let t = tmp("big-torture.txt");
    std::fs::write(
        &t,
        format!("== A.1.1 big\nmessage f8{}\n", "00".repeat(70_000)),
    )
    .unwrap();
    let o = bin().arg("torture").arg(&t).output().unwrap();
    one_line(&o, &t, ":2: message of 70001 bytes is over 64 KiB");
    std::fs::remove_file(&t).unwrap();
}
