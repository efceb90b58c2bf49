//! Child processes that print one line per event: spawned with their
//! stdout read line by line on a thread, waited on by line or by JSON
//! event (a parsed [`serde_json::Value`], so tests compare typed fields,
//! not substrings), stopped with SIGTERM, and killed when the guard drops
//! so a failing assertion leaves nothing running.
//!
//! ```
//! use std::process::Command;
//! let mut cmd = Command::new("sh");
//! cmd.args(["-c", r#"echo '{ "event": "up", "port": 5060 }'; echo done"#]);
//! let mut p = testkit::proc::Proc::spawn("sh", cmd);
//! let e = p.wait_event(|e| e["event"] == "up");
//! assert_eq!(e["port"], 5060);
//! p.wait_line(&["done"]);
//! ```

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

pub use serde_json::Value;

/// How long a wait lasts before the test fails (generous: two shared
/// cores, debug or release builds).
pub const LIMIT: Duration = Duration::from_secs(20);

/// A free UDP port on loopback (bound then released for a child to bind).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A child process with its stdout lines as they come; killed on drop.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    /// Every stdout line received so far, in order.
    pub seen: Vec<String>,
}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout/stderr piped.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Proc {
            name: name.to_owned(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most [`LIMIT`]) for a stdout line that satisfies `want`,
    /// looking first at the lines already seen.
    pub fn wait_for(&mut self, what: &str, mut want: impl FnMut(&str) -> bool) -> String {
        if let Some(l) = self.seen.iter().find(|l| want(l)) {
            return l.clone();
        }
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if want(&l) {
                        return l;
                    }
                }
                Err(_) => {
                    let err = self.stderr_if_exited();
                    panic!(
                        "{}: no line with {what} in {LIMIT:?}; stdout:\n{}\nstderr:\n{err}",
                        self.name,
                        self.seen.join("\n"),
                    )
                }
            }
        }
    }

    /// Waits for a stdout line containing every one of `parts`.
    pub fn wait_line(&mut self, parts: &[&str]) -> String {
        self.wait_for(&format!("{parts:?}"), |l| {
            parts.iter().all(|p| l.contains(p))
        })
    }

    /// Waits for a JSON event line (an object) that satisfies `want`.
    pub fn wait_event(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        let line = self.wait_for("the event wanted", |l| {
            parse_event(l).is_some_and(|v| want(&v))
        });
        parse_event(&line).unwrap()
    }

    /// The JSON event lines seen so far.
    pub fn events(&self) -> Vec<Value> {
        self.seen.iter().filter_map(|l| parse_event(l)).collect()
    }

    /// Reads what is left on stdout until it closes (at most [`LIMIT`]).
    fn drain(&mut self) {
        let deadline = Instant::now() + LIMIT;
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(l);
        }
    }

    /// Waits for the exit (at most [`LIMIT`], then kills and fails), and
    /// collects the rest of stdout and all of stderr.
    pub fn wait_exit(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not exit in {LIMIT:?}:\n{}",
                    self.name,
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(crate::wait::POLL);
        };
        self.drain();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status, err)
    }

    /// SIGTERM, then [`Proc::wait_exit`].
    pub fn terminate(&mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.wait_exit()
    }

    fn stderr_if_exited(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(_)) => {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                err
            }
            _ => "(still running)".to_owned(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A line that is a JSON object, parsed; `None` for any other line.
pub fn parse_event(line: &str) -> Option<Value> {
    let t = line.trim_start();
    if !t.starts_with('{') {
        return None;
    }
    serde_json::from_str::<Value>(t)
        .ok()
        .filter(Value::is_object)
}
