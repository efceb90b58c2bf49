//! RFC 4465 Appendix A: every torture test, with output, cycles, NACK
//! reason and the failed message's SHA-1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sigcomp_asm::torture;

fn vectors() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../vectors/sigcomp/rfc4465-torture-tests.txt"
    );
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn rfc4465_all_pass() {
    let cases = torture::run(&vectors()).unwrap();
    let mut failed = 0;
    for c in &cases {
        let ok = c.passed();
        if !ok {
            failed += 1;
        }
        println!(
            "{} {:8} {:40} cycles {:>6} exp {:?} fail {:?} {}",
            if ok { "PASS" } else { "FAIL" },
            c.section,
            c.label,
            c.cycles,
            c.expected.cycles,
            c.failure.as_ref().map(|f| f.reason),
            c.problem.clone().unwrap_or_default()
        );
        if !ok {
            println!(
                "   expected {:?}\n   got output {:?}",
                c.expected,
                c.output.as_ref().map(hex::encode)
            );
        }
    }
    // 41 messages in the file; every input and every stream record is a case.
    assert!(cases.len() >= 41, "only {} cases", cases.len());
    assert_eq!(
        failed,
        0,
        "{failed} of {} torture cases failed",
        cases.len()
    );
}
