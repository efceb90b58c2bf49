//! Replays the committed seeds of every fuzz target on stable Rust: each
//! file of `fuzz/seeds/<target>/` goes through the target's function, and
//! a panic fails the test with the seed's name. The seeds include every
//! minimised crash the fuzzer found (`crash-*`), so a fixed bug that comes
//! back fails `cargo test`, and a target that no longer compiles fails the
//! build. `tests/make_seeds.rs` writes the generated ones.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Crashes the fuzzer found that are not fixed yet: (target, seed file,
/// what is wrong). Each must still panic; once its bug is fixed the test
/// says so, and the line goes (the seed stays, as a regression test).
const KNOWN_OPEN: &[(&str, &str, &str)] = &[];

/// Runs `f` on every seed of `target`, which must have at least `min`.
fn replay(target: &str, min: usize, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut seeds: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= min,
        "{}: {} seeds, expected at least {min}",
        dir.display(),
        seeds.len()
    );
    let mut failed = Vec::new();
    for seed in &seeds {
        let data = fs::read(seed).unwrap();
        let name = seed.file_name().unwrap().to_string_lossy();
        let known = KNOWN_OPEN
            .iter()
            .find(|(t, n, _)| *t == target && *n == name);
        match (catch_unwind(AssertUnwindSafe(|| f(&data))), known) {
            (Ok(()), None) => {}
            (Err(_), Some((_, _, why))) => eprintln!("{target}/{name}: still open: {why}"),
            (Ok(()), Some(_)) => failed.push(format!(
                "{}: fixed? it no longer panics: remove it from KNOWN_OPEN in {}",
                seed.display(),
                file!()
            )),
            (Err(e), None) => {
                let msg = e
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| e.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                failed.push(format!("{}: {msg}", seed.display()));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} seeds panic:\n{}",
        failed.len(),
        seeds.len(),
        failed.join("\n")
    );
}

#[test]
fn esp_decap_seeds() {
    replay("esp_decap", 30, fuzzing::esp_decap);
}

#[test]
fn setkey_parse_seeds() {
    replay("setkey_parse", 30, fuzzing::setkey_parse);
}

#[test]
fn sigcomp_message_seeds() {
    replay("sigcomp_message", 30, fuzzing::sigcomp_message);
}

#[test]
fn sigcomp_bytecode_seeds() {
    replay("sigcomp_bytecode", 30, fuzzing::sigcomp_bytecode);
}

#[test]
fn sigcomp_native_seeds() {
    replay("sigcomp_native", 20, fuzzing::sigcomp_native);
}

#[test]
fn engine_seeds() {
    replay("engine", 60, fuzzing::engine);
}

#[test]
fn sip_parse_seeds() {
    replay("sip_parse", 60, fuzzing::sip_parse);
}

#[test]
fn sms_decode_seeds() {
    replay("sms_decode", 20, fuzzing::sms_decode);
}

#[test]
fn gm_roles_seeds() {
    replay("gm_roles", 60, fuzzing::gm_roles);
}
