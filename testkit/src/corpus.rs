//! The SIP corpora under `vectors/`, read the one way every test and
//! benchmark reads them: the `.sip` files of a directory, sorted by name.
//!
//! - [`independent`]: `vectors/sigcomp/independent/corpus`, session 1 of
//!   the IMS exchange written outside the project (14 messages);
//!   [`independent_session2`] its second session.
//! - [`ours`]: `vectors/sip-corpus`, the project's own messages.
//!
//! ```
//! let c = testkit::corpus::independent();
//! assert_eq!(c.len(), 14);
//! assert!(c[0].starts_with(b"REGISTER "));
//! ```

use std::path::{Path, PathBuf};

/// The workspace's `vectors/` directory.
pub fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors")
}

/// The independent corpus's directory (session 1; session 2 is its
/// `session2` subdirectory).
pub fn independent_dir() -> PathBuf {
    vectors().join("sigcomp/independent/corpus")
}

/// The paths of the `.sip` files of `dir`, sorted by name.
pub fn sip_paths(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .collect();
    files.sort();
    files
}

/// The `.sip` files of `dir`, sorted by name, with their file names.
pub fn sip_named(dir: &Path) -> Vec<(String, Vec<u8>)> {
    sip_paths(dir)
        .into_iter()
        .map(|p| {
            let m = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), m)
        })
        .collect()
}

/// The `.sip` files of `dir`, sorted by name.
pub fn sip_messages(dir: &Path) -> Vec<Vec<u8>> {
    sip_named(dir).into_iter().map(|(_, m)| m).collect()
}

/// Session 1 of the independent corpus, in file-name order.
pub fn independent() -> Vec<Vec<u8>> {
    sip_messages(&independent_dir())
}

/// Session 2 of the independent corpus, in file-name order.
pub fn independent_session2() -> Vec<Vec<u8>> {
    sip_messages(&independent_dir().join("session2"))
}

/// The project's own corpus (`vectors/sip-corpus`), in file-name order.
pub fn ours() -> Vec<Vec<u8>> {
    sip_messages(&vectors().join("sip-corpus"))
}
