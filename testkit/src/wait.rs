//! Waiting on a condition, never on the clock: a test that needs a listener
//! up, N packets received or a counter at a value polls for exactly that,
//! with a timeout generous enough for a loaded machine, and fails naming
//! the condition when it does not come.
//!
//! ```
//! use std::time::Duration;
//! let mut n = 0;
//! testkit::wait_until("n reaches 3", Duration::from_secs(10), || {
//!     n += 1;
//!     n >= 3
//! });
//! ```

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(15);

/// Polls `cond` every [`POLL`] until it holds; false if it still does not
/// after `timeout` (for a fallback: kill a process that did not exit).
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if t0.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `cond` every [`POLL`] until it holds; panics with
/// "timed out after Ns waiting for `what`" when it does not within
/// `timeout`.
pub fn wait_until(what: impl Display, timeout: Duration, cond: impl FnMut() -> bool) {
    if !poll_until(timeout, cond) {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// Polls `f` until it returns `Some`, and returns the value; panics naming
/// `what` after `timeout`.
pub fn wait_for<T>(what: impl Display, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let mut out = None;
    wait_until(what, timeout, || {
        out = f();
        out.is_some()
    });
    out.expect("set when the wait ended")
}

/// The lines of a text file (empty when it does not exist yet); a last
/// line without its newline is still being written and is left out.
pub fn complete_lines(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_owned).collect();
    if lines.last().is_some_and(|l| !l.ends_with('\n')) {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|l| l.trim_end_matches('\n').to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_holds_returns_at_once() {
        let t0 = Instant::now();
        wait_until("true", Duration::from_secs(10), || true);
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert_eq!(wait_for("a value", Duration::from_secs(1), || Some(7)), 7);
    }

    #[test]
    #[should_panic(expected = "waiting for the impossible")]
    fn a_timeout_names_the_condition() {
        wait_until("the impossible", Duration::from_millis(50), || false);
    }

    #[test]
    fn a_partial_last_line_is_not_counted() {
        let d = crate::TempDir::new("testkit-lines");
        let f = d.path("out");
        assert!(complete_lines(&f).is_empty());
        std::fs::write(&f, "READY\nRX 01\nRX").unwrap();
        assert_eq!(complete_lines(&f), ["READY", "RX 01"]);
    }
}
