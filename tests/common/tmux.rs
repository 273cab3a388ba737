//! A terminal for tests and benchmarks: a tmux server on a private socket with no config,
//! sessions of a fixed size, keys typed and the screen read back. Waits poll the screen with
//! a deadline; nothing sleeps to synchronise.

use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

/// One tmux server of this test alone; killed when dropped.
pub struct Tmux {
    socket: String,
}

/// One client's window in the tmux server.
pub struct Pane<'a> {
    tmux: &'a Tmux,
    name: String,
}

impl Tmux {
    /// A server of its own, or `None` (with a note) if tmux is missing outside CI.
    pub fn new(test: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "tmux is missing in CI: .ci/run should install it"
            );
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        Some(Tmux {
            socket: format!("lbc-{test}-{}", std::process::id()),
        })
    }

    pub fn tmux(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts `command` (a shell line) in a new session `name` of the given size. The pane
    /// stays after the command ends, so that what it left on the terminal can be read.
    pub fn start(&self, name: &str, size: (u16, u16), command: &str) -> Pane<'_> {
        let (w, h) = (size.0.to_string(), size.1.to_string());
        self.tmux(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            &w,
            "-y",
            &h,
            "sh",
            "-c",
            command,
        ]);
        self.tmux(&["set-option", "-t", name, "remain-on-exit", "on"]);
        Pane {
            tmux: self,
            name: name.to_owned(),
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

impl Pane<'_> {
    /// The screen's text now.
    pub fn screen(&self) -> String {
        // With the lines scrolled off above: what a command printed after the screen closed
        // may have been pushed up by tmux's "Pane is dead" line.
        let out = self
            .tmux
            .tmux(&["capture-pane", "-p", "-S", "-100", "-t", &self.name]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A tmux format of the pane (e.g. `#{alternate_on}`).
    pub fn format(&self, f: &str) -> String {
        let out = self
            .tmux
            .tmux(&["display-message", "-p", "-t", &self.name, f]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Polls the screen until `done` holds, or panics at the deadline showing the screen.
    pub fn wait(&self, what: &str, deadline: Instant, done: impl Fn(&str) -> bool) -> String {
        loop {
            let s = self.screen();
            if done(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{}: timed out waiting for {what}; the screen:\n{s}",
                self.name
            );
            // Polling interval of the screen, not a synchronisation.
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_text(&self, text: &str, deadline: Instant) -> String {
        self.wait(&format!("{text:?}"), deadline, |s| s.contains(text))
    }

    /// Waits until the pane's command has exited.
    pub fn wait_dead(&self, deadline: Instant) {
        while self.format("#{pane_dead}") != "1" {
            assert!(Instant::now() < deadline, "{}: did not exit", self.name);
            // Polling interval, not a synchronisation.
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `text` literally.
    pub fn type_text(&self, text: &str) {
        self.tmux.tmux(&["send-keys", "-t", &self.name, "-l", text]);
    }

    /// Presses keys by tmux name (`Enter`, `M-2`, `PPage`, `C-c`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend_from_slice(keys);
        self.tmux.tmux(&args);
    }

    /// Pastes `text` as a terminal does when the application asked for bracketed paste.
    pub fn paste(&self, text: &str) {
        self.tmux.tmux(&["set-buffer", "-b", "test-paste", text]);
        self.tmux.tmux(&[
            "paste-buffer",
            "-p",
            "-d",
            "-b",
            "test-paste",
            "-t",
            &self.name,
        ]);
    }

    /// Types a line and presses Enter.
    pub fn line(&self, text: &str) {
        self.type_text(text);
        self.keys(&["Enter"]);
    }
}
