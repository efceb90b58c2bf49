//! The commands `imsua listen` reads from its standard input, one per
//! line: what a script (or `imsua demo`) asks a registered UA to do.
//!
//! ```text
//! message TO TEXT...     a pager-mode MESSAGE (text/plain)
//! sms NUMBER TEXT...     an SMS over IP (concatenated when long)
//! publish open|closed [NOTE...]
//! unpublish              remove our presence publication
//! subscribe URI          watch URI's presence
//! unsubscribe            end every presence subscription
//! quit                   de-register and exit
//! ```
//!
//! The text runs to the end of the line, spaces included; blank lines and
//! lines starting with `#` are skipped.

use std::io::{BufRead, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, channel};

/// The lines of standard input, read by a thread of their own: the
/// receiver is disconnected at the end of input (or a read error). The
/// thread writes a byte to the returned socket after each line (and at
/// the end), so a wait that watches it ([`super::Transport::set_wake`])
/// ends as soon as a command comes, not at its next timeout.
pub fn stdin_lines() -> std::io::Result<(Receiver<String>, UnixStream)> {
    let (tx, rx) = channel();
    let (wake, mut waker) = UnixStream::pair()?;
    wake.set_nonblocking(true)?;
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
            let _ = waker.write_all(&[1]);
        }
        drop(tx);
        let _ = waker.write_all(&[0]);
    });
    Ok((rx, wake))
}

/// Reads whatever a wake socket holds (it only says "look again");
/// `false` once its writer is gone (the socket would stay readable: stop
/// watching it).
pub fn drain_wake(wake: &UnixStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match std::io::Read::read(&mut &*wake, &mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return e.kind() == std::io::ErrorKind::WouldBlock,
        }
    }
}

/// One command line, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UaCommand {
    /// A MESSAGE to `to` (a SIP URI).
    Message {
        /// The target.
        to: String,
        /// The body.
        text: String,
    },
    /// An SMS over IP to `to` (E.164 or `tel:`).
    Sms {
        /// The recipient.
        to: String,
        /// The text.
        text: String,
    },
    /// Publish our presence.
    Publish {
        /// `open` (true) or `closed`.
        open: bool,
        /// A note, if any.
        note: Option<String>,
    },
    /// Remove our publication.
    Unpublish,
    /// Watch a presentity.
    Subscribe {
        /// Its URI.
        uri: String,
    },
    /// End our presence subscriptions.
    Unsubscribe,
    /// De-register and exit.
    Quit,
}

impl UaCommand {
    /// The command's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            UaCommand::Message { .. } => "message",
            UaCommand::Sms { .. } => "sms",
            UaCommand::Publish { .. } => "publish",
            UaCommand::Unpublish => "unpublish",
            UaCommand::Subscribe { .. } => "subscribe",
            UaCommand::Unsubscribe => "unsubscribe",
            UaCommand::Quit => "quit",
        }
    }
}

/// The first word of `s` and the rest, trimmed.
fn word(s: &str) -> (&str, &str) {
    let s = s.trim();
    match s.split_once(char::is_whitespace) {
        Some((w, rest)) => (w, rest.trim()),
        None => (s, ""),
    }
}

/// Parses one line: `Ok(None)` for a blank or comment line, `Err` with a
/// one-line reason for anything else that is not a command.
pub fn parse(line: &str) -> Result<Option<UaCommand>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (verb, rest) = word(line);
    let (arg, text) = word(rest);
    let need = |what: &str, v: &str| {
        if v.is_empty() {
            Err(format!("{verb}: {what} missing (try: {})", usage(verb)))
        } else {
            Ok(v.to_owned())
        }
    };
    let none = |v: &str| {
        if v.is_empty() {
            Ok(())
        } else {
            Err(format!("{verb} takes no argument, got {v:?}"))
        }
    };
    let cmd = match verb {
        "message" => UaCommand::Message {
            to: need("the target URI", arg)?,
            text: need("the text", text)?,
        },
        "sms" => UaCommand::Sms {
            to: need("the number", arg)?,
            text: need("the text", text)?,
        },
        "publish" => UaCommand::Publish {
            open: match arg {
                "open" => true,
                "closed" => false,
                "" => {
                    return Err(format!(
                        "publish: the status missing (try: {})",
                        usage(verb)
                    ));
                }
                other => {
                    return Err(format!(
                        "publish: the status is open or closed, not {other:?}"
                    ));
                }
            },
            note: (!text.is_empty()).then(|| text.to_owned()),
        },
        "unpublish" => none(rest).map(|()| UaCommand::Unpublish)?,
        "subscribe" => {
            if !text.is_empty() {
                return Err(format!("subscribe takes one URI, got {rest:?}"));
            }
            UaCommand::Subscribe {
                uri: need("the URI", arg)?,
            }
        }
        "unsubscribe" => none(rest).map(|()| UaCommand::Unsubscribe)?,
        "quit" | "exit" => none(rest).map(|()| UaCommand::Quit)?,
        other => {
            return Err(format!(
                "unknown command {other:?}: message, sms, publish, unpublish, subscribe, unsubscribe or quit"
            ));
        }
    };
    Ok(Some(cmd))
}

fn usage(verb: &str) -> &'static str {
    match verb {
        "message" => "message sip:bob@ims.example.org hello bob",
        "sms" => "sms +15555550102 hello bob",
        "publish" => "publish open [a note]",
        _ => "subscribe sip:alice@ims.example.org",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_their_text_to_the_end_of_the_line() {
        assert_eq!(
            parse("message sip:bob@x  hello   bob ").unwrap(),
            Some(UaCommand::Message {
                to: "sip:bob@x".into(),
                text: "hello   bob".into()
            })
        );
        assert_eq!(
            parse("sms +15555550102 héllo").unwrap(),
            Some(UaCommand::Sms {
                to: "+15555550102".into(),
                text: "héllo".into()
            })
        );
        assert_eq!(
            parse("publish open at the demo").unwrap(),
            Some(UaCommand::Publish {
                open: true,
                note: Some("at the demo".into())
            })
        );
        assert_eq!(
            parse("publish closed").unwrap(),
            Some(UaCommand::Publish {
                open: false,
                note: None
            })
        );
        assert_eq!(
            parse("subscribe sip:alice@x").unwrap(),
            Some(UaCommand::Subscribe {
                uri: "sip:alice@x".into()
            })
        );
        assert_eq!(parse("unpublish").unwrap(), Some(UaCommand::Unpublish));
        assert_eq!(parse("unsubscribe").unwrap(), Some(UaCommand::Unsubscribe));
        assert_eq!(parse(" quit ").unwrap(), Some(UaCommand::Quit));
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# a comment").unwrap(), None);
    }

    #[test]
    fn bad_lines_get_a_reason() {
        for (line, says) in [
            ("message", "the target URI missing"),
            ("message sip:bob@x", "the text missing"),
            ("sms +1555", "the text missing"),
            ("publish", "the status missing"),
            ("publish away", "open or closed"),
            ("subscribe", "the URI missing"),
            ("subscribe a b", "one URI"),
            ("quit now", "takes no argument"),
            ("dance", "unknown command"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(says), "{line}: {e}");
        }
    }
}
