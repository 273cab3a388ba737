//! Helpers for tests that run the `lobbycast` binary: spawn it, read its JSON lines, wait for
//! what is expected (never sleeping to synchronise), stop it with a signal.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Overall guard for anything a test waits for: generous, it only bounds a failure.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lobbycast")
}

/// A running `lobbycast --pipe`, its stdout read on a thread into a channel.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    /// Every JSON line seen so far.
    pub seen: Vec<Value>,
}

impl Proc {
    /// Spawns `cmd` with piped stdin and stdout (stderr goes to the test's stderr).
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let who = name.to_owned();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(e) => panic!("{who}: stdout line is not JSON ({e}): {line}"),
                }
            }
        });
        Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Writes lines to stdin.
    pub fn send_lines<I: IntoIterator<Item = S>, S: AsRef<str>>(&mut self, lines: I) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        let mut buf = String::new();
        for l in lines {
            buf.push_str(l.as_ref());
            buf.push('\n');
        }
        stdin.write_all(buf.as_bytes()).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits until `done` holds for the lines seen so far, or panics at `deadline`.
    pub fn wait_for(&mut self, deadline: Instant, what: &str, done: impl Fn(&[Value]) -> bool) {
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: timed out waiting for {what}; saw {:#?}",
                        self.name,
                        self.summary()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "{}: stdout closed while waiting for {what}; saw {:#?}",
                    self.name,
                    self.summary()
                ),
            }
        }
    }

    /// Takes whatever lines are already there, without waiting.
    pub fn drain(&mut self) {
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push(v);
        }
    }

    /// Waits for the `joined` line; returns this node's peer id.
    pub fn wait_joined(&mut self, deadline: Instant) -> String {
        self.wait_for(deadline, "joined", |s| {
            s.iter().any(|v| v["event"] == "joined")
        });
        let j = self
            .seen
            .iter()
            .find(|v| v["event"] == "joined")
            .expect("seen");
        j["peer"].as_str().expect("peer id").to_owned()
    }

    /// Lines of one event kind.
    pub fn events(&self, kind: &str) -> Vec<&Value> {
        self.seen.iter().filter(|v| v["event"] == kind).collect()
    }

    /// Texts of the delivered messages.
    pub fn message_texts(&self) -> Vec<String> {
        self.events("message")
            .iter()
            .map(|v| v["text"].as_str().expect("text").to_owned())
            .collect()
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill {}", self.name);
    }

    /// Waits for the process to exit (killing it at the deadline): its stdout closing says
    /// so; collects the remaining lines.
    pub fn wait_exit(&mut self, deadline: Instant) -> ExitStatus {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("{}: did not exit in time", self.name);
                }
            }
        }
        self.child.wait().expect("wait")
    }

    fn summary(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|v| {
                let mut s = v.to_string();
                s.truncate(160);
                s
            })
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Checks the fields every delivered message must have.
pub fn check_message_fields(v: &Value, lobby: &str) {
    assert_eq!(v["event"], "message");
    assert_eq!(v["lobby"], lobby, "{v}");
    assert!(v["nick"].is_string(), "{v}");
    assert!(v["text"].is_string(), "{v}");
    let id = v["id"].as_str().expect("id");
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "id must be 16 hex digits: {v}"
    );
    let sent_at = v["sent_at"].as_u64().expect("sent_at");
    assert!(sent_at > 1_600_000_000_000, "sent_at in Unix ms: {v}");
}

/// Asserts that `p` delivered each of `want` exactly once and no other message, and that no
/// message id was delivered twice.
pub fn assert_exactly_once(p: &Proc, want: &HashSet<String>) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for v in p.events("message") {
        *count.entry(v["text"].as_str().expect("text")).or_default() += 1;
    }
    let dup: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "{}: delivered twice: {dup:?}", p.name);
    let missing: Vec<_> = want
        .iter()
        .filter(|t| !count.contains_key(t.as_str()))
        .collect();
    assert!(missing.is_empty(), "{}: missing {missing:?}", p.name);
    let extra: Vec<_> = count.keys().filter(|t| !want.contains(**t)).collect();
    assert!(extra.is_empty(), "{}: unexpected {extra:?}", p.name);
    let ids: HashSet<&str> = p
        .events("message")
        .iter()
        .map(|v| v["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids.len(),
        p.events("message").len(),
        "{}: an id twice",
        p.name
    );
}

/// Whether every text of `want` was delivered.
pub fn has_all(seen: &[Value], want: &HashSet<String>) -> bool {
    let got: HashSet<&str> = seen
        .iter()
        .filter(|v| v["event"] == "message")
        .filter_map(|v| v["text"].as_str())
        .collect();
    want.iter().all(|t| got.contains(t.as_str()))
}
