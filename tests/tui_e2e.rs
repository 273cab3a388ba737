//! The screen as a person uses it: the real binary in a real terminal (tmux, on a private
//! server socket, no config, fixed size), typing keys and reading the screen back. Every wait
//! polls the screen until the expected text is there, with a deadline; nothing sleeps to
//! synchronise. Multicast runs on loopback only (`--iface lo`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::tmux::{Pane, Tmux};
use common::{DEADLINE, Proc, bin, free_port};
use lobbycast::display::fingerprint_digits;
use lobbycast::proto::PeerId;

/// The shell line that runs the screen for `nick`, then prints its exit status and whether
/// the terminal is back in canonical mode (raw mode left).
fn client(nick: &str, port: u16, dir: &Path, lobbies: &[&str]) -> String {
    format!(
        "env XDG_CONFIG_HOME={cfg} NO_COLOR=1 {bin} --iface lo --port {port} --nick {nick} \
         --data-dir {data} {lobbies}; echo \"EXIT=$?\"; stty -a | tr ' ' '\\n' | grep -x -- \
         '-\\?icanon'",
        cfg = dir.join("config").display(),
        bin = bin(),
        data = dir.join("data").display(),
        lobbies = lobbies.join(" "),
    )
}

/// Waits until the screen's status bar shows `lobby` as the current lobby, number `n`: the
/// runtime has joined it. (The screen is drawn before the runtime is up and names the lobbies
/// it is joining, so the name alone shows too early: text typed then has no lobby to go to.)
fn joined(pane: &Pane<'_>, n: usize, lobby: &str, deadline: Instant) {
    pane.wait_text(&format!("{n}:{lobby}"), deadline);
}

/// A screen for `nick` in its own tmux session (100×30), its files under `dir/nick`.
fn screen<'a>(tmux: &'a Tmux, nick: &str, port: u16, dir: &Path, lobbies: &[&str]) -> Pane<'a> {
    tmux.start(
        nick,
        (100, 30),
        &client(nick, port, &dir.join(nick), lobbies),
    )
}

/// A `--pipe` node for `nick` in `lobby`, its data under `dir/nick`.
fn pipe_node(nick: &str, lobby: &str, port: u16, dir: &Path) -> Proc {
    let mut cmd = Command::new(bin());
    cmd.args(["--pipe", lobby, "--iface", "lo", "--nick", nick])
        .args(["--port", &port.to_string()])
        .arg("--data-dir")
        .arg(dir.join(nick));
    Proc::spawn(nick, cmd)
}

/// A test's tmux server (`None` when tmux is missing: the test is skipped), its deadline, a
/// data directory and a free port.
fn start(name: &str) -> Option<(Tmux, Instant, tempfile::TempDir, u16)> {
    let tmux = Tmux::new(name)?;
    let deadline = Instant::now() + DEADLINE;
    Some((tmux, deadline, tempfile::tempdir().unwrap(), free_port()))
}

fn lobby(test: &str) -> String {
    format!("tui-{test}-{}", std::process::id())
}

/// Two people in one lobby: what one types appears on the other's screen under the writer's
/// nick; a nick change shows on the other; a paste is one message; /quit exits 0 and gives
/// the terminal back.
#[test]
fn two_clients_chat_rename_and_quit() {
    let Some((tmux, deadline, tmp, port)) = start("chat") else {
        return;
    };
    let room = lobby("chat");
    let ann = screen(&tmux, "ann", port, tmp.path(), &[&room]);
    let bob = screen(&tmux, "bob", port, tmp.path(), &[&room]);
    joined(&ann, 1, &room, deadline);
    joined(&bob, 1, &room, deadline);
    assert_eq!(
        ann.format("#{alternate_on}"),
        "1",
        "the screen uses the alternate screen"
    );

    ann.line("hello bob, from a real terminal");
    let s = bob.wait_text("hello bob, from a real terminal", deadline);
    let line = s
        .lines()
        .find(|l| l.contains("hello bob, from a real terminal"))
        .unwrap();
    assert!(
        line.contains("ann"),
        "the writer's nick is on the line: {line:?}"
    );

    ann.line("/nick annie");
    bob.wait_text("annie", deadline);

    // A pasted block is one message of several lines, not one message per line.
    ann.paste("pasted one\npasted two\npasted three");
    ann.keys(&["Enter"]);
    let s = bob.wait_text("pasted three", deadline);
    // The message column only: the participants on the right list nicks too.
    let rows: Vec<&str> = s
        .lines()
        .filter_map(|l| l.split('│').nth(1))
        .filter(|l| l.contains("pasted "))
        .collect();
    assert_eq!(rows.len(), 3, "three lines:\n{s}");
    assert!(
        rows[0].contains("annie"),
        "one message under the nick: {rows:?}"
    );
    assert!(
        !rows[1].contains("annie") && !rows[2].contains("annie"),
        "the other lines continue it: {rows:?}"
    );

    bob.line("/quit");
    let s = bob.wait_text("EXIT=", deadline);
    assert!(s.contains("EXIT=0"), "/quit exits 0:\n{s}");
    let s = bob.wait("the terminal mode after exit", deadline, |s| {
        s.lines()
            .any(|l| l.trim() == "icanon" || l.trim() == "-icanon")
    });
    assert!(
        s.lines().any(|l| l.trim() == "icanon"),
        "raw mode is left (canonical mode back):\n{s}"
    );
    assert_eq!(
        bob.format("#{alternate_on}"),
        "0",
        "the alternate screen is left"
    );
    assert_eq!(
        bob.format("#{mouse_any_flag}"),
        "0",
        "mouse reporting is off"
    );

    ann.keys(&["C-c"]);
    let s = ann.wait_text("EXIT=", deadline);
    assert!(s.contains("EXIT=0"), "Ctrl-c exits 0:\n{s}");
}

/// SIGTERM (a shutdown, `kill`) stops the screen as /quit does: exit 0, the terminal given
/// back.
#[test]
fn sigterm_exits_zero_and_restores_the_terminal() {
    let Some((tmux, deadline, tmp, port)) = start("sigterm") else {
        return;
    };
    let room = lobby("sigterm");
    let cyd = screen(&tmux, "cyd", port, tmp.path(), &[&room]);
    joined(&cyd, 1, &room, deadline);
    // The pane runs `sh -c`: lobbycast is its child.
    let sh = cyd.format("#{pane_pid}");
    let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children")).unwrap();
    let pid: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: kill(2) on a process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let s = cyd.wait("the exit status and the terminal mode", deadline, |s| {
        s.contains("EXIT=") && s.lines().any(|l| l.trim().ends_with("icanon"))
    });
    assert!(s.contains("EXIT=0"), "SIGTERM exits 0:\n{s}");
    assert!(
        s.lines().any(|l| l.trim() == "icanon"),
        "raw mode is left:\n{s}"
    );
    assert_eq!(
        cyd.format("#{alternate_on}"),
        "0",
        "the alternate screen is left"
    );
}

/// A line from another peer holding escape sequences (clear the screen, set the title, move
/// the cursor, a bell, bidi override) is shown harmlessly: the screen keeps what it showed,
/// the title stays, and the text is there with visible replacements.
#[test]
fn escape_sequences_from_the_network_leave_the_screen_intact() {
    let Some((tmux, deadline, tmp, port)) = start("escape") else {
        return;
    };
    let room = lobby("escape");
    let ann = screen(&tmux, "ann", port, tmp.path(), &[&room]);
    joined(&ann, 1, &room, deadline);
    let title = ann.format("#{pane_title}");

    let mut mallory = pipe_node("mallory", &room, port, tmp.path());
    mallory.wait_joined(deadline);
    mallory.send_lines([
        "first line stays",
        "evil\u{1b}[2J\u{1b}[H\u{1b}]0;pwned\u{7}\u{1b}[31mred\u{8}\u{8}\u{202e}txet end-of-evil",
    ]);
    let s = ann.wait_text("end-of-evil", deadline);
    assert!(
        s.contains("first line stays"),
        "the screen was not cleared:\n{s}"
    );
    assert!(!s.contains('\u{1b}'), "no escape reaches the screen:\n{s}");
    assert_eq!(ann.format("#{pane_title}"), title, "the title is unchanged");
    let line = s.lines().find(|l| l.contains("end-of-evil")).unwrap();
    assert!(line.contains("mallory"), "{line:?}");
    assert!(
        line.contains("pwned"),
        "the text is shown, made harmless: {line:?}"
    );
    mallory.close_stdin();
    mallory.signal(libc::SIGTERM);
    mallory.wait_exit(deadline);
    ann.line("/quit");
    ann.wait_text("EXIT=0", deadline);
}

/// /join opens a second lobby, Alt-1 and Alt-2 switch between them, and PgUp shows older
/// lines with the MORE hint.
#[test]
fn join_switch_and_scroll_back() {
    let Some((tmux, deadline, tmp, port)) = start("scroll") else {
        return;
    };
    let (first, second) = (lobby("one"), lobby("two"));
    let ann = screen(&tmux, "ann", port, tmp.path(), &[&first]);
    joined(&ann, 1, &first, deadline);

    let mut writer = pipe_node("writer", &second, port, tmp.path());
    writer.wait_joined(deadline);

    ann.line(&format!("/join {second}"));
    joined(&ann, 2, &second, deadline);
    writer.send_lines((1..=120).map(|i| format!("numbered line {i:03}")));
    ann.wait_text("numbered line 120", deadline);
    let s = ann.screen();
    assert!(
        !s.contains("numbered line 001"),
        "line 1 is far above:\n{s}"
    );

    for _ in 0..8 {
        ann.keys(&["PPage"]);
    }
    let s = ann.wait_text("numbered line 001", deadline);
    assert!(s.contains("MORE"), "scrolled up, the MORE hint shows:\n{s}");
    ann.keys(&["M-End"]);
    ann.wait("back at the bottom", deadline, |s| {
        s.contains("numbered line 120") && !s.contains("MORE")
    });

    ann.keys(&["M-1"]);
    ann.wait("the first lobby", deadline, |s| {
        !s.contains("numbered line 120")
    });
    ann.keys(&["M-2"]);
    ann.wait_text("numbered line 120", deadline);

    writer.close_stdin();
    writer.signal(libc::SIGTERM);
    writer.wait_exit(deadline);
    ann.line("/quit");
    ann.wait_text("EXIT=0", deadline);
}

/// Two pipe nodes use the nick `ann`: the screen names each with the first hex digits of its
/// peer id, flags the key it saw second with `(new key!)`, and `/trust ann` accepts it.
#[test]
fn namesakes_get_fingerprints_and_trust_accepts_a_new_key() {
    let Some((tmux, deadline, tmp, port)) = start("tofu") else {
        return;
    };
    let room = lobby("tofu");
    let cyd = screen(&tmux, "cyd", port, tmp.path(), &[&room]);
    joined(&cyd, 1, &room, deadline);
    let ann = |dir: &str| {
        let mut cmd = Command::new(bin());
        cmd.args(["--pipe", &room, "--iface", "lo", "--nick", "ann"])
            .args(["--port", &port.to_string()])
            .arg("--data-dir")
            .arg(tmp.path().join(dir));
        Proc::spawn(dir, cmd)
    };
    let mut first = ann("ann1");
    let first_id = first.wait_joined(deadline);
    cyd.wait_text("-- ann joined", deadline);
    let mut second = ann("ann2");
    let second_id = second.wait_joined(deadline);
    let id = |hex: &str| PeerId(u64::from_str_radix(hex, 16).unwrap());
    let digits = fingerprint_digits(&[id(&first_id), id(&second_id)]);
    let (one, two) = (
        format!("ann#{}", &first_id[..digits]),
        format!("ann#{}", &second_id[..digits]),
    );
    cyd.wait_text(&format!("-- {two} (new key!) joined"), deadline);

    second.send_lines(["said by the second ann"]);
    first.send_lines(["said by the first ann"]);
    let s = cyd.wait("both messages", deadline, |s| {
        s.contains("said by the second ann") && s.contains("said by the first ann")
    });
    let row = |s: &str, text: &str| s.lines().find(|l| l.contains(text)).unwrap().to_owned();
    let second_row = row(&s, "said by the second ann");
    assert!(
        second_row.contains(&format!("<{two} (new key!)> said")),
        "{s}"
    );
    let first_row = row(&s, "said by the first ann");
    assert!(first_row.contains(&format!("<{one}> said")), "{s}");
    let people: Vec<&str> = s
        .lines()
        .filter_map(|l| l.rsplit_once('│'))
        .map(|(_, p)| p.trim())
        .collect();
    assert!(
        people.contains(&one.as_str()) && people.contains(&two.as_str()),
        "both in the participant list:\n{s}"
    );

    cyd.line("/trust ann");
    cyd.wait_text(&format!("-- trusted the new key of ann ({two})"), deadline);
    second.send_lines(["said once trusted"]);
    let s = cyd.wait_text("said once trusted", deadline);
    let trusted_row = row(&s, "said once trusted");
    assert!(trusted_row.contains(&format!("<{two}> said")), "{s}");

    for p in [&mut first, &mut second] {
        p.close_stdin();
        p.signal(libc::SIGTERM);
        p.wait_exit(deadline);
    }
    cyd.line("/quit");
    cyd.wait_text("EXIT=0", deadline);
}
