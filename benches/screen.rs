//! The screen benchmark (issue 11): what a person waits for and what the screen costs.
//!
//! 1. Redraw cost, in process: a [`Screen`] with 100 lobbies joined and 10,000 lines in the
//!    current one, drawn into ratatui's `TestBackend`, against the floor of any ratatui
//!    screen measured in the same run: one `Paragraph` of the visible lines on the same
//!    backend. Median and p99 per frame, at the bottom and scrolled far up.
//! 2. Start to first frame: the real binary in tmux; the screen logs `first frame` (drawn
//!    while the runtime starts) and `lobbies and history drawn` with the microseconds since
//!    `main` started.
//! 3. Memory with 100,000 lines of history: the real binary started on a history file of
//!    100,000 messages, with the default `--history 1000` and with `--history 100000`, its
//!    resident set (now and peak) once the last line shows, against `--pipe` on the same
//!    history in the same run.
//! 4. Arrival to screen at 1,000 msg/s: a `--pipe` writer on loopback sends 1,000 messages a
//!    second; the screen logs, per frame, how long after its send time the newest message
//!    was drawn; against a `--pipe` receiver's output time of the same messages (ms).
//!
//! `cargo bench --bench screen` runs it all; `cargo test --all-targets` runs a quick mode
//! (fewer lines, shorter runs) that only checks that it works. Parts 2–4 need tmux; without
//! it they say they skipped.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::{DEADLINE, Proc, bin, free_port};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use lobbycast::app::OwnedEvent;
use lobbycast::app::unix_ms;
use lobbycast::history::History;
use lobbycast::identity::DataDir;
use lobbycast::proto::{Lobby, Message, MsgId, PeerId};
use lobbycast::tui::{Screen, ScreenSettings};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn message(lobby: &Lobby, k: u64, sent_at: u64) -> Message {
    Message {
        lobby: lobby.id,
        source: PeerId(0x1000 + k % 7),
        seq: k,
        msg_id: MsgId(k + 1),
        sent_at,
        nick: format!("writer{}", k % 7),
        text: format!(
            "line {k}: {}",
            "the quick brown fox jumps over the lazy dog ".repeat(1 + (k % 3) as usize)
        ),
        late: false,
    }
}

/// Times `frames` draws; returns the sorted times in microseconds.
fn time_frames(frames: usize, mut draw: impl FnMut()) -> Vec<f64> {
    let mut t: Vec<f64> = (0..frames)
        .map(|_| {
            let start = Instant::now();
            draw();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t
}

fn redraw(lines: u64, lobbies: usize, frames: usize) {
    let (w, h) = (200, 60);
    let names: Vec<Lobby> = (0..lobbies)
        .map(|i| Lobby::new(&format!("lobby{i}")).expect("name"))
        .collect();
    let mut screen = Screen::new(ScreenSettings {
        nick: "me".into(),
        ..ScreenSettings::default()
    });
    let t0 = 1_790_000_000_000;
    for l in names.iter().rev() {
        screen.on_event(
            OwnedEvent::Joined {
                lobby: l.clone(),
                peer: PeerId(1),
                groups: Vec::new(),
                local: Vec::new(),
                private: false,
            },
            t0,
        );
    }
    let current = names.last().expect("lobbies");
    for k in 0..lines {
        screen.on_event(
            OwnedEvent::Message {
                lobby: current.clone(),
                msg: message(current, k, t0 + k * 1000),
            },
            t0 + k * 1000,
        );
    }
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("backend");
    term.draw(|f| screen.render(f)).expect("draw");
    let bottom = time_frames(frames, || {
        term.draw(|f| screen.render(f)).expect("draw");
    });
    for _ in 0..40 {
        screen.on_key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE));
    }
    term.draw(|f| screen.render(f)).expect("draw");
    let scrolled = time_frames(frames, || {
        term.draw(|f| screen.render(f)).expect("draw");
    });
    // The floor: the visible lines as one paragraph, on the same backend.
    let visible: Vec<Line> = (lines.saturating_sub(h as u64)..lines)
        .map(|k| Line::from(message(current, k, 0).text))
        .collect();
    let mut floor_term = Terminal::new(TestBackend::new(w, h)).expect("backend");
    let floor = time_frames(frames, || {
        floor_term
            .draw(|f| f.render_widget(Paragraph::new(visible.clone()), f.area()))
            .expect("draw");
    });
    let f50 = percentile(&floor, 0.5);
    println!(
        "redraw, {w}x{h}, {lines} lines in the current lobby, {lobbies} lobbies, {frames} frames:"
    );
    for (what, t) in [("at the bottom", &bottom), ("scrolled up", &scrolled)] {
        println!(
            "  screen {what:<14}: p50 {:>7.0} us  p99 {:>7.0} us  ({:.1}x the floor)",
            percentile(t, 0.5),
            percentile(t, 0.99),
            percentile(t, 0.5) / f50
        );
    }
    println!(
        "  floor (Paragraph)    : p50 {:>7.0} us  p99 {:>7.0} us",
        f50,
        percentile(&floor, 0.99)
    );
}

/// Writes `n` messages into the history of `lobby` in `data_dir`, as a node would have.
fn fill_history(data_dir: &Path, lobby: &Lobby, n: u64) {
    let dir = DataDir::open(data_dir).expect("data dir");
    let path = dir.lobby_dir(lobby).expect("lobby dir").join("history");
    let (mut h, _) = History::open(&path, lobby.id, 1).expect("history");
    let t0 = unix_ms() - n * 10;
    for k in 0..n {
        h.append(&message(lobby, k, t0 + k * 10), t0 + k * 10);
        if k % 4096 == 0 {
            h.write_out().expect("write");
        }
    }
    h.write_out().expect("write");
    h.sync_now().expect("sync");
}

/// The value of `field=` in the last log line holding `what`, once the log has one.
fn log_field(log: &Path, what: &str, field: &str, deadline: Instant) -> u64 {
    loop {
        if let Ok(text) = std::fs::read_to_string(log)
            && let Some(line) = text.lines().rev().find(|l| l.contains(what))
            && let Some(v) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{field}=")))
        {
            return v.parse().expect("a number");
        }
        assert!(
            Instant::now() < deadline,
            "{what} never logged in {}",
            log.display()
        );
        // Polling a file another process writes; not a synchronisation.
        thread::sleep(Duration::from_millis(5));
    }
}

/// Resident set of `pid` now and at its peak, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("a /proc status field")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn screen_command(dir: &Path, port: u16, lobby: &str, extra: &str) -> String {
    format!(
        "exec env XDG_CONFIG_HOME={cfg} RUST_LOG=info,lobbycast::frame=debug {bin} --iface lo \
         --port {port} --nick viewer --data-dir {data} {extra} {lobby}",
        cfg = dir.join("config").display(),
        bin = bin(),
        data = dir.join("data").display(),
    )
}

fn in_terminal(quick: bool) {
    let Some(tmux) = Tmux::new("bench") else {
        return;
    };
    // Each step gets the whole guard: loading 100,000 lines of history takes its time.
    let deadline = || Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().expect("tempdir");

    // 2. First frame, and 3. memory with a long history: a screen with the default
    // --history (1000) and one that loads all of it, each on a file of `history_lines`.
    let history_lines: u64 = if quick { 5_000 } else { 100_000 };
    let lobby = Lobby::new(&format!("bench-{}", std::process::id())).expect("name");
    let port = free_port();
    let start = |name: &str, extra: &str, last: u64| {
        let dir = tmp.path().join(name);
        fill_history(&dir.join("data"), &lobby, history_lines);
        let pane = tmux.start(
            name,
            (120, 40),
            &screen_command(&dir, port, &lobby.name, extra),
        );
        let log = dir.join("data").join("lobbycast.log");
        let first_us = log_field(&log, "first frame", "since_start_us", deadline());
        let ready_us = log_field(&log, "history drawn", "since_start_us", deadline());
        pane.wait_text(&format!("line {last}"), deadline());
        let pid: u32 = pane.format("#{pane_pid}").parse().expect("pid");
        (pane, log, (first_us, ready_us), memory_kib(pid))
    };
    let (small, _, small_first, small_mem) = start("default", "", history_lines - 1);
    small.line("/quit");
    small.wait_dead(deadline());
    let (pane, log, first_us, screen_mem) = start(
        "viewer",
        &format!("--history {history_lines}"),
        history_lines - 1,
    );
    let pip = tmp.path().join("pipe");
    fill_history(&pip.join("data"), &lobby, history_lines);
    let mut cmd = Command::new(bin());
    cmd.args(["--pipe", &lobby.name, "--iface", "lo", "--nick", "piper"])
        .args(["--port", &free_port().to_string()])
        .args(["--history", &history_lines.to_string()])
        .arg("--data-dir")
        .arg(pip.join("data"));
    let mut piper = Proc::spawn("piper", cmd);
    piper.wait_joined(deadline());
    let mut history_seen = 0;
    piper.wait_lines(deadline(), "its history", |v| {
        history_seen += u64::from(v["event"] == "history");
        history_seen >= history_lines
    });
    let pipe_mem = memory_kib(piper.pid());
    piper.close_stdin();
    piper.signal(libc::SIGTERM);
    piper.wait_exit(deadline());
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "start to first frame / to lobbies and history drawn, {history_lines} lines in the \
         history file: {:.1} / {:.1} ms with --history 1000 (the default), {:.1} / {:.1} ms with \
         --history {history_lines}",
        small_first.0 as f64 / 1e3,
        small_first.1 as f64 / 1e3,
        first_us.0 as f64 / 1e3,
        first_us.1 as f64 / 1e3
    );
    println!(
        "memory (resident now / peak), {history_lines} lines in the history file: screen with \
         --history 1000 {:.1} / {:.1} MiB; with --history {history_lines}: screen {:.1} / {:.1} \
         MiB, --pipe {:.1} / {:.1} MiB",
        mib(small_mem.0),
        mib(small_mem.1),
        mib(screen_mem.0),
        mib(screen_mem.1),
        mib(pipe_mem.0),
        mib(pipe_mem.1)
    );

    // 4. Arrival to screen at 1,000 msg/s.
    let (rate, secs) = (1000u64, if quick { 1 } else { 5 });
    let mut cmd = Command::new(bin());
    cmd.args(["--pipe", &lobby.name, "--iface", "lo", "--nick", "writer"])
        .args(["--port", &port.to_string()])
        .arg("--data-dir")
        .arg(tmp.path().join("writer"));
    let mut writer = Proc::spawn("writer", cmd);
    writer.wait_joined(deadline());
    // A pipe receiver of the same messages: its output time is the baseline.
    let mut recv = Command::new(bin());
    recv.args(["--pipe", &lobby.name, "--iface", "lo", "--nick", "receiver"])
        .args(["--port", &port.to_string()])
        .arg("--data-dir")
        .arg(tmp.path().join("receiver"))
        .env("XDG_CONFIG_HOME", "/nonexistent/lobbycast-bench-config")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut recv = recv.spawn().expect("receiver");
    let out = recv.stdout.take().expect("piped");
    let reader = thread::spawn(move || {
        let mut lags = Vec::new();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["event"] == "message" {
                let sent = v["sent_at"].as_u64().unwrap_or(0);
                lags.push(unix_ms().saturating_sub(sent) as f64);
            }
        }
        lags
    });
    let n = rate * secs;
    let start = Instant::now();
    for k in 0..n {
        let due = start + Duration::from_micros(k * 1_000_000 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            // Pacing the writer at the rate under test.
            thread::sleep(wait);
        }
        writer.send_lines([format!("paced {k}")]);
    }
    pane.wait_text(&format!("paced {}", n - 1), deadline());
    writer.close_stdin();
    writer.signal(libc::SIGTERM);
    writer.wait_exit(deadline());
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(recv.id() as libc::pid_t, libc::SIGTERM) };
    let _ = recv.wait();
    let mut pipe_lags = reader.join().expect("reader");
    pipe_lags.sort_by(f64::total_cmp);
    let text = std::fs::read_to_string(&log).expect("log");
    let mut lags: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("message drawn"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("lag_ms="))
                .and_then(|v| v.parse().ok())
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    println!(
        "arrival to screen at {rate} msg/s for {secs} s ({} frames with new messages): p50 {:.0} ms \
         p99 {:.0} ms max {:.0} ms; --pipe output: p50 {:.0} ms p99 {:.0} ms max {:.0} ms",
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        percentile(&lags, 1.0),
        percentile(&pipe_lags, 0.5),
        percentile(&pipe_lags, 0.99),
        percentile(&pipe_lags, 1.0)
    );
    assert!(!lags.is_empty(), "the screen drew the messages");
    pane.line("/quit");
    pane.wait_dead(deadline());
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too: quick mode.
    let quick = std::env::args().all(|a| a != "--bench");
    if quick {
        println!("(quick mode)");
        redraw(2_000, 10, 20);
    } else {
        redraw(10_000, 100, 500);
    }
    in_terminal(quick);
}
