//! Helpers for tests that run the `lobbycast` binary: spawn it, read its JSON lines, wait for
//! what is expected (never sleeping to synchronise), stop it with a signal.

#![allow(dead_code)]

pub mod lan;
pub mod tmux;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Mutex, mpsc};
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
    lines: mpsc::Receiver<(Instant, Value)>,
    /// Every JSON line seen so far.
    pub seen: Vec<Value>,
    /// When each line of `seen` was read from the process's stdout.
    seen_at: Vec<Instant>,
}

impl Proc {
    /// Spawns `cmd` with piped stdin and stdout (stderr goes to the test's stderr).
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        // A developer's own config file must not change what a test runs; a missing one is
        // an empty config.
        if !cmd.get_envs().any(|(k, _)| k == "XDG_CONFIG_HOME") {
            cmd.env("XDG_CONFIG_HOME", "/nonexistent/lobbycast-test-config");
        }
        // Nor a passphrase in the developer's environment: it would make every lobby private.
        if !cmd.get_envs().any(|(k, _)| k == "LOBBYCAST_KEY") {
            cmd.env_remove("LOBBYCAST_KEY");
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let who = name.to_owned();
        thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let Some(complete) = line.strip_suffix('\n') else {
                    // A process killed in the middle of a write leaves a torn last line.
                    eprintln!("{who}: torn last line at end of output: {line}");
                    break;
                };
                match serde_json::from_str::<Value>(complete) {
                    Ok(v) => {
                        if tx.send((Instant::now(), v)).is_err() {
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
            seen_at: Vec::new(),
        }
    }

    /// The process id (that of the program itself under `ip netns exec`, which execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
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

    /// Takes stdin, e.g. for a thread that writes a burst; dropping it closes stdin.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin open")
    }

    /// Waits until `done` holds for the lines seen so far, or panics at `deadline`.
    /// `done` runs on every line; for thousands of lines see [`Proc::wait_lines`].
    pub fn wait_for(&mut self, deadline: Instant, what: &str, done: impl Fn(&[Value]) -> bool) {
        while !done(&self.seen) {
            self.next_line(deadline, what);
        }
    }

    /// Feeds the lines seen so far, then each new one as it comes, to `step` until it returns
    /// true; returns when that line was read. Panics at `deadline`. Each line is fed once
    /// per call, so a counting `step` costs no more than the lines themselves.
    pub fn wait_lines(
        &mut self,
        deadline: Instant,
        what: &str,
        mut step: impl FnMut(&Value) -> bool,
    ) -> Instant {
        let mut i = 0;
        loop {
            while i < self.seen.len() {
                i += 1;
                if step(&self.seen[i - 1]) {
                    return self.seen_at[i - 1];
                }
            }
            self.next_line(deadline, what);
        }
    }

    /// Waits for one more line into `seen`, or panics at `deadline` or when stdout closed.
    fn next_line(&mut self, deadline: Instant, what: &str) {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok((at, v)) => {
                self.seen.push(v);
                self.seen_at.push(at);
            }
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

    /// Takes whatever lines are already there, without waiting.
    pub fn drain(&mut self) {
        while let Ok((at, v)) = self.lines.try_recv() {
            self.seen.push(v);
            self.seen_at.push(at);
        }
    }

    /// Waits until `links` friend links are up (`friend` lines with `"state":"up"`, counted
    /// by address).
    pub fn wait_links(&mut self, links: usize, deadline: Instant) {
        self.wait_for(deadline, "friend links up", |seen| {
            seen.iter()
                .filter(|v| v["event"] == "friend" && v["state"] == "up")
                .filter_map(|v| v["addr"].as_str())
                .collect::<HashSet<_>>()
                .len()
                >= links
        });
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

    /// Every line seen with when it was read.
    pub fn seen_with_times(&self) -> impl Iterator<Item = (&Value, Instant)> {
        self.seen.iter().zip(self.seen_at.iter().copied())
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
                Ok((at, v)) => {
                    self.seen.push(v);
                    self.seen_at.push(at);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("{}: did not exit in time", self.name);
                }
            }
        }
        self.child.wait().expect("wait")
    }

    /// The last lines seen, shortened, for failure messages (a burst prints thousands).
    fn summary(&self) -> Vec<String> {
        const LAST: usize = 40;
        let skip = self.seen.len().saturating_sub(LAST);
        let mut out: Vec<String> = (skip > 0)
            .then(|| {
                format!(
                    "... {skip} earlier lines, {} messages in all",
                    self.events("message").len()
                )
            })
            .into_iter()
            .collect();
        out.extend(self.seen[skip..].iter().map(|v| {
            let mut s = v.to_string();
            s.truncate(160);
            s
        }));
        out
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

/// What a process delivered against what it should have: counts, and a few examples of
/// what is wrong, so that a failure over thousands of messages stays readable.
#[derive(Debug, Default)]
pub struct Tally {
    /// `message` lines.
    pub delivered: usize,
    /// Distinct texts among them that were wanted.
    pub distinct: usize,
    /// Deliveries beyond the first of a text.
    pub duplicates: usize,
    /// Wanted texts not delivered.
    pub missing: usize,
    /// Delivered texts that were not wanted.
    pub unexpected: usize,
    /// Message ids delivered more than once.
    pub duplicate_ids: usize,
    /// `lost` lines, and the sequence numbers they give up in all.
    pub lost_events: usize,
    pub lost_count: u64,
    /// Up to a few examples of each fault.
    pub examples: Vec<String>,
}

impl Tally {
    /// Counts `p`'s deliveries against `want`.
    pub fn of(p: &Proc, want: &HashSet<String>) -> Tally {
        const EXAMPLES: usize = 3;
        let mut t = Tally::default();
        let mut count: HashMap<&str, usize> = HashMap::new();
        let mut ids: HashSet<&str> = HashSet::new();
        for v in p.events("message") {
            t.delivered += 1;
            *count.entry(v["text"].as_str().expect("text")).or_default() += 1;
            if !ids.insert(v["id"].as_str().expect("id")) {
                t.duplicate_ids += 1;
            }
        }
        let note = |t: &mut Tally, what: &str, text: &str| {
            if t.examples.len() < 3 * EXAMPLES {
                let mut s: String = text.chars().take(40).collect();
                s.insert_str(0, what);
                t.examples.push(s);
            }
        };
        for (text, n) in &count {
            if !want.contains(*text) {
                t.unexpected += n;
                note(&mut t, "unexpected: ", text);
            } else {
                t.distinct += 1;
                if *n > 1 {
                    t.duplicates += n - 1;
                    note(&mut t, "twice: ", text);
                }
            }
        }
        for text in want {
            if !count.contains_key(text.as_str()) {
                t.missing += 1;
                if t.missing <= EXAMPLES {
                    note(&mut t, "missing: ", text);
                }
            }
        }
        for v in p.events("lost") {
            t.lost_events += 1;
            t.lost_count += v["count"].as_u64().expect("count");
        }
        t
    }

    /// Each wanted text once, nothing else, no id twice.
    pub fn exactly_once(&self) -> bool {
        self.duplicates == 0 && self.missing == 0 && self.unexpected == 0 && self.duplicate_ids == 0
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delivered {} ({} distinct wanted, {} duplicates, {} missing, {} unexpected, {} ids \
             twice), {} lost events ({} seqs given up)",
            self.delivered,
            self.distinct,
            self.duplicates,
            self.missing,
            self.unexpected,
            self.duplicate_ids,
            self.lost_events,
            self.lost_count
        )?;
        if !self.examples.is_empty() {
            write!(f, "; e.g. {:?}", self.examples)?;
        }
        Ok(())
    }
}

/// Asserts that `p` delivered each of `want` exactly once and no other message, and that no
/// message id was delivered twice.
pub fn assert_exactly_once(p: &Proc, want: &HashSet<String>) {
    let t = Tally::of(p, want);
    assert!(t.exactly_once(), "{}: {t}", p.name);
}

/// A UDP port that no socket on this host uses right now, and that this process has not
/// handed out before.
///
/// The OS knows every port in use by every process, so asking it (binding the wildcard address
/// to port 0, which conflicts with a socket on any address) cannot collide with another test
/// binary or program that holds a port; a number made from the process id cannot know that,
/// and its modulo makes two processes meet. The port is released before the caller uses it,
/// and the OS may hand a released port out again: the set of ports already given out keeps
/// tests of this process apart. What remains is another program taking the port in the
/// moment before lobbycast binds it.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .and_then(|s| s.local_addr())
            .expect("binding an ephemeral UDP port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no fresh free UDP port after 1000 tries");
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
