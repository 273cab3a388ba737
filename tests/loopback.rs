//! Several `lobbycast --pipe` processes on this host talk over multicast on the loopback
//! interface. Only loopback is used: `--iface lo` is passed to every process.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{DEADLINE, Proc, assert_exactly_once, bin, check_message_fields, free_port, has_all};
use serde_json::Value;

/// A lobby name of this test alone, so tests running at once do not meet.
fn lobby(test: &str) -> String {
    format!("lbtest-{test}-{}", std::process::id())
}

/// A port of this test alone: one the OS says is free, never given to another test of this
/// process (see [`free_port`]).
fn port() -> String {
    free_port().to_string()
}

/// The directory of the one lobby in a data directory.
fn lobby_dir(data_dir: &Path) -> PathBuf {
    fs::read_dir(data_dir.join("lobbies"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

/// The texts in the history file of the one lobby in a data directory.
fn history_texts(data_dir: &Path) -> Vec<String> {
    fs::read_to_string(lobby_dir(data_dir).join("history"))
        .unwrap()
        .lines()
        .map(|l| {
            // A record is a checksum, a space and a JSON object.
            let (_, json) = l.split_once(' ').expect("checksum and record");
            let v: serde_json::Value = serde_json::from_str(json).expect("JSON record");
            v["text"].as_str().expect("text").to_owned()
        })
        .collect()
}

fn node(name: &str, lobby: &str, port: &str, dir: &Path, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(bin());
    cmd.args([
        "--pipe", lobby, "--iface", "lo", "--port", port, "--nick", name,
    ])
    .arg("--data-dir")
    .arg(dir)
    .args(extra);
    Proc::spawn(name, cmd)
}

#[test]
fn three_nodes_exchange_messages_exactly_once() {
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let (lobby, port) = (lobby("three"), port());
    let names = ["ann", "bob", "cyd"];
    // One node sends from a given address and port; the others from ephemeral ports.
    let bind = format!("127.0.0.1:{}", free_port());
    let mut procs: Vec<Proc> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let extra: &[&str] = if i == 0 { &["--bind", &bind] } else { &[] };
            node(n, &lobby, &port, &tmp.path().join(n), extra)
        })
        .collect();
    let ids: Vec<String> = procs.iter_mut().map(|p| p.wait_joined(deadline)).collect();
    assert_eq!(procs[0].events("joined")[0]["local"][0], bind.as_str());
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3, "three peers");
    let text = |n: &str, k: usize| format!("{n} says {k}: {}", "x".repeat(k % 7 * 30));
    for (p, n) in procs.iter_mut().zip(names) {
        p.send_lines((0..30).map(|k| text(n, k)));
    }
    for (i, p) in procs.iter_mut().enumerate() {
        let want: HashSet<String> = names
            .iter()
            .filter(|n| **n != names[i])
            .flat_map(|n| (0..30).map(move |k| text(n, k)))
            .collect();
        p.wait_for(deadline, "every message of the others", |s| {
            has_all(s, &want)
        });
    }
    for p in &mut procs {
        p.close_stdin();
        p.signal(libc::SIGTERM);
        let st = p.wait_exit(deadline);
        assert!(st.success(), "{}: {st}", p.name);
    }
    for (i, p) in procs.iter().enumerate() {
        let want: HashSet<String> = names
            .iter()
            .filter(|n| **n != names[i])
            .flat_map(|n| (0..30).map(move |k| text(n, k)))
            .collect();
        assert_exactly_once(p, &want);
        for v in p.events("message") {
            check_message_fields(v, &lobby);
        }
        assert_eq!(p.events("stats").len(), 1, "{}: stats at exit", p.name);
    }
}

#[test]
fn restart_keeps_identity_history_and_numbering_and_serves_late_joiners() {
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let (lobby, port) = (lobby("restart"), port());
    let dir_a = tmp.path().join("a");
    let mut b = node("bob", &lobby, &port, &tmp.path().join("b"), &[]);
    b.wait_joined(deadline);
    let mut a = node("ann", &lobby, &port, &dir_a, &[]);
    let id_a = a.wait_joined(deadline);
    let first: Vec<String> = (0..5).map(|k| format!("before restart {k}")).collect();
    a.send_lines(&first);
    let want_first: HashSet<String> = first.iter().cloned().collect();
    b.wait_for(deadline, "the first messages", |s| has_all(s, &want_first));
    // Own messages reach the history file before their datagrams leave, so once bob has
    // them they are in ann's file: nothing to wait for, only to check.
    assert_eq!(
        history_texts(&dir_a),
        first,
        "ann's messages in her history"
    );
    a.signal(libc::SIGINT);
    assert!(a.wait_exit(deadline).success());

    // The same data directory: the same peer, its history shown again, numbering continued.
    let mut a = node("ann", &lobby, &port, &dir_a, &[]);
    assert_eq!(a.wait_joined(deadline), id_a, "peer id kept");
    a.wait_for(deadline, "history", |s| {
        s.iter().filter(|v| v["event"] == "history").count() == 5
    });
    for v in a.events("history") {
        assert_eq!(v["own"], true);
    }
    let second: Vec<String> = (0..5).map(|k| format!("after restart {k}")).collect();
    a.send_lines(&second);
    let want_all: HashSet<String> = first.iter().chain(&second).cloned().collect();
    b.wait_for(deadline, "the messages after the restart", |s| {
        has_all(s, &want_all)
    });

    // A late joiner gets ann's recent messages, from before the restart too, by repair.
    let mut c = node("cyd", &lobby, &port, &tmp.path().join("c"), &[]);
    c.wait_joined(deadline);
    c.wait_for(deadline, "backlog from before and after the restart", |s| {
        has_all(s, &want_all)
    });

    for p in [&mut a, &mut b, &mut c] {
        p.signal(libc::SIGTERM);
        assert!(p.wait_exit(deadline).success(), "{}", p.name);
    }
    assert_exactly_once(&b, &want_all);
    assert_exactly_once(&c, &want_all);
    assert!(
        a.events("message").is_empty(),
        "own messages are not printed"
    );

    // History on disk: ann's own ten; the lease holds the exact next number after a clean exit.
    let texts: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_eq!(history_texts(&dir_a), texts);
    assert_eq!(
        fs::read_to_string(lobby_dir(&dir_a).join("seq"))
            .unwrap()
            .trim(),
        "next 10"
    );
}

#[test]
fn end_of_input_with_linger_exits_zero() {
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let mut a = node(
        "ann",
        &lobby("linger"),
        &port(),
        tmp.path(),
        &["--linger", "0.2"],
    );
    a.wait_joined(deadline);
    a.send_lines(["one message before the end"]);
    a.close_stdin();
    let st = a.wait_exit(deadline);
    assert!(st.success(), "{st}");
    assert_eq!(a.events("stats").len(), 1);
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(bin())
            .args(args)
            .arg("--data-dir")
            .arg(tmp.path())
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        (out.status.code(), err, out.stdout)
    };
    let (code, err, out) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--pipe"), "{err}");
    assert!(out.is_empty());

    let (code, err, _) = run(&["--pipe", "  "]);
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("lobby name is empty"), "{err}");

    let (code, err, _) = run(&["--pipe", "x", "--iface", "no-such-if0"]);
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no-such-if0"), "{err}");

    let (code, err, _) = run(&["--pipe", "x", "--iface", "lo", "--nick", ""]);
    assert_eq!(code, Some(2));
    assert!(err.contains("nick"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let (code, err, _) = run(&["--pipe", "x", "--relay", "y"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--relay") && err.contains("--pipe"), "{err}");

    let (code, err, _) = run(&["--relay", "lab", "Lab ", "--iface", "lo"]);
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("named twice"), "{err}");

    let (code, err, _) = run(&["--pipe", "x", "--iface", "lo", "--friend", "10.0.0.1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--friend"), "{err}");

    let (code, err, _) = run(&["--pipe", "x", "--iface", "lo", "--friend", "0.0.0.0:4000"]);
    assert_eq!(code, Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("0.0.0.0:4000"), "{err}");
}

/// SIGUSR1 makes a pipe node print its counters at once, and it keeps running.
#[test]
fn sigusr1_prints_the_counters() {
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let mut a = node("ann", &lobby("usr1"), &port(), tmp.path(), &[]);
    a.wait_joined(deadline);
    a.signal(libc::SIGUSR1);
    a.wait_for(deadline, "a stats line", |seen| {
        seen.iter().any(|v| v["event"] == "stats")
    });
    a.signal(libc::SIGTERM);
    let st = a.wait_exit(deadline);
    assert!(st.success(), "{st}");
    assert_eq!(a.events("stats").len(), 2, "one on SIGUSR1, one at exit");
}

#[test]
fn a_data_directory_serves_one_node_at_a_time() {
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let (lobby, port) = (lobby("lock"), port());
    let mut a = node("ann", &lobby, &port, tmp.path(), &[]);
    a.wait_joined(deadline);
    let out = Command::new(bin())
        .args([
            "--pipe",
            &lobby,
            "--iface",
            "lo",
            "--port",
            &port,
            "--data-dir",
        ])
        .arg(tmp.path())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    a.signal(libc::SIGTERM);
    assert!(a.wait_exit(deadline).success());
}

#[test]
fn after_a_crash_the_restarted_node_is_still_heard() {
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let (lobby, port) = (lobby("crash"), port());
    let dir_a = tmp.path().join("a");
    let mut b = node("bob", &lobby, &port, &tmp.path().join("b"), &[]);
    b.wait_joined(deadline);
    let mut a = node("ann", &lobby, &port, &dir_a, &[]);
    a.wait_joined(deadline);
    let first: Vec<String> = (0..3).map(|k| format!("before the crash {k}")).collect();
    a.send_lines(&first);
    let want: HashSet<String> = first.iter().cloned().collect();
    b.wait_for(deadline, "the first messages", |s| has_all(s, &want));
    a.signal(libc::SIGKILL);
    a.wait_exit(deadline);
    // A torn record, as a crash in the middle of a write leaves.
    let mut h = fs::OpenOptions::new()
        .append(true)
        .open(lobby_dir(&dir_a).join("history"))
        .unwrap();
    std::io::Write::write_all(&mut h, b"0badc0de {\"source\":\"00").unwrap();
    drop(h);

    let mut a = node("ann", &lobby, &port, &dir_a, &[]);
    a.wait_joined(deadline);
    a.wait_for(deadline, "history", |s| {
        s.iter().filter(|v| v["event"] == "history").count() == 3
    });
    let second: Vec<String> = (0..3).map(|k| format!("after the crash {k}")).collect();
    a.send_lines(&second);
    let want: HashSet<String> = first.iter().chain(&second).cloned().collect();
    b.wait_for(deadline, "the messages after the crash", |s| {
        has_all(s, &want)
    });
    for p in [&mut a, &mut b] {
        p.signal(libc::SIGTERM);
        assert!(p.wait_exit(deadline).success(), "{}", p.name);
    }
    assert_exactly_once(&b, &want);
    // Numbering resumed right after the history: no phantom gap for bob to chase.
    let stats = b.events("stats")[0];
    assert_eq!(stats["gaps_detected"], 0, "{stats}");
    assert_eq!(stats["requests_sent"], 0, "{stats}");
}

/// The pipe takes the screen's `/command` lines while it runs: join a second lobby and talk
/// there, change the nick (the other side hears it), ask who is there, leave the first
/// lobby, get a one-line error for a bad command, and quit with status 0.
#[test]
fn pipe_commands_join_nick_who_part_and_quit() {
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let (first, second, port) = (lobby("cmd-a"), lobby("cmd-b"), port());
    let mut ann = node("ann", &first, &port, &tmp.path().join("ann"), &[]);
    let mut bob = node("bob", &second, &port, &tmp.path().join("bob"), &[]);
    ann.wait_joined(deadline);
    let bob_id = bob.wait_joined(deadline);

    ann.send_lines([format!("/join {second}"), "hello in b".into()]);
    bob.wait_for(deadline, "ann's message in the joined lobby", |s| {
        s.iter()
            .any(|v| v["event"] == "message" && v["text"] == "hello in b" && v["lobby"] == second)
    });
    bob.send_lines(["hi ann"]);
    ann.wait_for(deadline, "bob's answer", |s| {
        s.iter()
            .any(|v| v["event"] == "message" && v["text"] == "hi ann")
    });

    ann.send_lines(["/nick anne", "/who", "/bogus", &format!("/part {first}")]);
    ann.wait_for(deadline, "own_nick, members, command_error, parted", |s| {
        let has = |k: &str| s.iter().any(|v| v["event"] == k);
        has("own_nick") && has("members") && has("command_error") && has("parted")
    });
    assert_eq!(ann.events("own_nick")[0]["nick"], "anne");
    let members = &ann.events("members")[0];
    assert_eq!(
        members["lobby"],
        second.as_str(),
        "/who asks the current lobby"
    );
    assert!(
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["peer"] == bob_id.as_str() && m["nick"] == "bob"),
        "{members}"
    );
    assert!(
        ann.events("command_error")[0]["error"]
            .as_str()
            .unwrap()
            .contains("/bogus")
    );
    assert_eq!(ann.events("parted")[0]["lobby"], first.as_str());
    bob.wait_for(deadline, "ann's new nick", |s| {
        s.iter()
            .any(|v| v["event"] == "nick" && v["nick"] == "anne")
    });

    ann.send_lines(["/quit"]);
    assert!(ann.wait_exit(deadline).success(), "/quit exits 0");
    bob.close_stdin();
    bob.signal(libc::SIGTERM);
    bob.wait_exit(deadline);
}

/// Trust on first use, with three processes: two use the nick `ann`. The third accepts the
/// key it saw first with the nick and flags the other (`key_changed`) on its join and its
/// messages, until `/trust ann`; the accepted keys are in its `known-peers` file, so after a
/// restart neither is flagged.
#[test]
fn a_second_key_for_a_known_nick_is_flagged_until_trusted() {
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let (lobby, port) = (lobby("tofu"), port());
    let ann = |who: &str| {
        let mut cmd = Command::new(bin());
        cmd.args([
            "--pipe", &lobby, "--iface", "lo", "--port", &port, "--nick", "ann",
        ])
        .arg("--data-dir")
        .arg(tmp.path().join(who));
        Proc::spawn(who, cmd)
    };
    let cyd_dir = tmp.path().join("cyd");
    let mut cyd = node("cyd", &lobby, &port, &cyd_dir, &[]);
    let cyd_id = cyd.wait_joined(deadline);
    let joined = |p: &mut Proc, id: &str, what: &str| {
        p.wait_for(deadline, what, |s| {
            s.iter()
                .any(|v| v["event"] == "peer_joined" && v["peer"] == id)
        });
        p.events("peer_joined")
            .into_iter()
            .find(|v| v["peer"] == id)
            .cloned()
            .unwrap()
    };
    let said = |p: &mut Proc, text: &str| {
        p.wait_for(deadline, text, |s| {
            s.iter()
                .any(|v| v["event"] == "message" && v["text"] == text)
        });
        p.events("message")
            .into_iter()
            .find(|v| v["text"] == text)
            .cloned()
            .unwrap()
    };

    let mut first = ann("ann-first");
    let first_id = first.wait_joined(deadline);
    let join = joined(&mut cyd, &first_id, "the first ann");
    assert!(join.get("key_changed").is_none(), "first seen: {join}");
    let mut second = ann("ann-second");
    let second_id = second.wait_joined(deadline);
    let join = joined(&mut cyd, &second_id, "the second ann");
    assert_eq!(join["nick"], "ann");
    assert_eq!(join["key_changed"], true, "{join}");

    second.send_lines(["it is me, ann"]);
    first.send_lines(["the first ann"]);
    let m = said(&mut cyd, "it is me, ann");
    assert_eq!(m["source"], second_id.as_str());
    assert_eq!(m["key_changed"], true, "{m}");
    let m = said(&mut cyd, "the first ann");
    assert!(m.get("key_changed").is_none(), "{m}");

    cyd.send_lines(["/who", "/trust ann", "/trust ann"]);
    cyd.wait_for(deadline, "two answers to /trust", |s| {
        s.iter().filter(|v| v["event"] == "trusted").count() == 2
    });
    let members = cyd.events("members")[0].clone();
    let flagged: Vec<&Value> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["key_changed"] == true)
        .collect();
    assert_eq!(flagged.len(), 1, "{members}");
    assert_eq!(flagged[0]["peer"], second_id.as_str());
    let answers = cyd.events("trusted");
    assert_eq!(answers[0]["nick"], "ann");
    assert_eq!(answers[0]["peers"], serde_json::json!([second_id]));
    assert_eq!(
        answers[1]["peers"],
        serde_json::json!([]),
        "no new key left"
    );

    second.send_lines(["trusted now"]);
    let m = said(&mut cyd, "trusted now");
    assert!(m.get("key_changed").is_none(), "{m}");

    cyd.signal(libc::SIGTERM);
    assert!(cyd.wait_exit(deadline).success());
    let file = fs::read_to_string(cyd_dir.join("known-peers")).unwrap();
    for (nick, id) in [("ann", &first_id), ("ann", &second_id), ("cyd", &cyd_id)] {
        assert!(
            file.lines()
                .any(|l| l.starts_with(&format!("{nick}\t{id}\t"))),
            "{nick} {id} accepted:\n{file}"
        );
    }

    // Restarted, it knows both keys of ann.
    let mut cyd = node("cyd", &lobby, &port, &cyd_dir, &[]);
    cyd.wait_joined(deadline);
    let join = joined(&mut cyd, &second_id, "the second ann after the restart");
    assert!(join.get("key_changed").is_none(), "{join}");
    second.send_lines(["still me"]);
    let m = said(&mut cyd, "still me");
    assert!(m.get("key_changed").is_none(), "{m}");

    for p in [&mut cyd, &mut first, &mut second] {
        p.close_stdin();
        p.signal(libc::SIGTERM);
        assert!(p.wait_exit(deadline).success(), "{}", p.name);
    }
}

/// The `joined` event of a process in its first lobby.
fn joined_event(p: &Proc) -> Value {
    p.events("joined")[0].clone()
}

/// Private lobbies by passphrase: two members with the same name and passphrase talk both
/// ways; a node in the public lobby of the name and one with another passphrase see nothing of
/// it. Afterwards the sender joins a public lobby that the outsiders are in and says one more
/// thing there: by the time they have that, they would have had the private messages (on
/// loopback a multicast datagram is queued to every receiving socket as it is sent).
#[test]
fn a_passphrase_lobby_is_shared_by_its_members_only() {
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let (team, barrier, port) = (lobby("priv-team"), lobby("priv-barrier"), port());
    let dir = |n: &str| tmp.path().join(n);
    let key = ["--key", "correct horse"];
    let mut ann = node("ann", &team, &port, &dir("ann"), &key);
    let mut bob = node("bob", &team, &port, &dir("bob"), &key);
    let mut cyd = node("cyd", &team, &port, &dir("cyd"), &[]);
    let mut eve = node(
        "eve",
        &team,
        &port,
        &dir("eve"),
        &["--key", "correct horse "],
    );
    for p in [&mut ann, &mut bob, &mut cyd, &mut eve] {
        p.wait_joined(deadline);
    }
    let (a, b, c, e) = (
        joined_event(&ann),
        joined_event(&bob),
        joined_event(&cyd),
        joined_event(&eve),
    );
    assert_eq!(
        (&a["private"], &b["private"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    assert!(c.get("private").is_none(), "{c}");
    assert_eq!(
        a["lobby"],
        team.as_str(),
        "the name as typed, for the member"
    );
    assert_eq!(a["lobby_id"], b["lobby_id"], "one passphrase, one lobby");
    assert_ne!(
        a["lobby_id"], c["lobby_id"],
        "not the public lobby of the name"
    );
    assert_ne!(
        a["lobby_id"], e["lobby_id"],
        "a trailing space is another passphrase"
    );
    assert_ne!(a["groups"], c["groups"]);

    for p in [&mut cyd, &mut eve] {
        p.send_lines([format!("/join {barrier}")]);
    }
    for p in [&mut cyd, &mut eve] {
        p.wait_for(deadline, "the barrier lobby joined", |s| {
            s.iter()
                .any(|v| v["event"] == "joined" && v["lobby"] == barrier.as_str())
        });
    }
    ann.send_lines(["private from ann"]);
    bob.wait_for(deadline, "ann's private message", |s| {
        s.iter()
            .any(|v| v["event"] == "message" && v["text"] == "private from ann")
    });
    bob.send_lines(["private from bob"]);
    ann.wait_for(deadline, "bob's private message", |s| {
        s.iter()
            .any(|v| v["event"] == "message" && v["text"] == "private from bob")
    });
    // One name, one lobby: the public lobby of the name is refused while the private one is
    // joined.
    ann.send_lines([format!("/join {team}")]);
    ann.wait_for(deadline, "the refusal", |s| {
        s.iter().any(|v| v["event"] == "command_error")
    });
    let refusal = ann.events("command_error")[0]["error"].to_string();
    assert!(refusal.contains("private"), "{refusal}");
    ann.send_lines([format!("/join {barrier}"), "after the private ones".into()]);
    for p in [&mut cyd, &mut eve] {
        p.wait_for(deadline, "ann's message in the barrier lobby", |s| {
            s.iter()
                .any(|v| v["event"] == "message" && v["text"] == "after the private ones")
        });
    }
    let mut procs = [ann, bob, cyd, eve];
    for p in &mut procs {
        p.close_stdin();
        p.signal(libc::SIGTERM);
        let st = p.wait_exit(deadline);
        assert!(st.success(), "{}: {st}", p.name);
    }
    for p in &procs[2..] {
        let texts = p.message_texts();
        assert!(
            !texts.iter().any(|t| t.starts_with("private from")),
            "{} saw the private lobby: {texts:?}",
            p.name
        );
        let heard_in_team = p
            .seen
            .iter()
            .filter(|v| v["event"] == "peer_joined" && v["lobby"] == team.as_str())
            .count();
        assert_eq!(
            heard_in_team, 0,
            "{} heard members of the private lobby",
            p.name
        );
    }
    // Passphrase keys are never stored.
    assert!(!dir("ann").join("lobby-keys").exists());
}

/// `--private` draws a key once and keeps it: the same data directory rejoins the same
/// private lobby, whose id is not the public one's; the key file is its owner's only.
#[test]
fn a_private_lobby_is_rejoined_after_a_restart() {
    use std::os::unix::fs::PermissionsExt;
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let (team, port) = (lobby("priv-restart"), port());
    let dir = tmp.path().join("ann");
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut ann = node("ann", &team, &port, &dir, &["--private"]);
        ann.wait_joined(deadline);
        runs.push(joined_event(&ann));
        ann.close_stdin();
        ann.signal(libc::SIGTERM);
        assert!(ann.wait_exit(deadline).success());
    }
    assert_eq!(runs[0]["private"], true);
    assert_eq!(
        runs[0]["lobby_id"], runs[1]["lobby_id"],
        "the same private lobby"
    );
    assert_eq!(runs[0]["groups"], runs[1]["groups"]);
    let public = lobbycast::proto::Lobby::new(&team).unwrap().id;
    assert_ne!(runs[0]["lobby_id"], format!("{:016x}", public.0).as_str());
    let keys = dir.join("lobby-keys");
    let mode = fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", keys.display());
    let text = fs::read_to_string(&keys).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.starts_with(&format!("{team}\t")), "{text}");
}

/// The records of the one conversation's history file in a data directory, as JSON.
fn direct_history(data_dir: &Path) -> Vec<Value> {
    let dir = fs::read_dir(data_dir.join("direct"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::read_to_string(dir.join("history"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l.split_once(' ').expect("checksum").1).unwrap())
        .collect()
}

#[test]
fn a_direct_message_arrives_once_is_acknowledged_and_kept_across_a_restart() {
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let (lobby, port) = (lobby("direct"), port());
    let dir_a = tmp.path().join("a");
    let mut b = node("bob", &lobby, &port, &tmp.path().join("b"), &[]);
    let id_b = b.wait_joined(deadline);
    let mut a = node("ann", &lobby, &port, &dir_a, &[]);
    let id_a = a.wait_joined(deadline);
    // Bob's key is learnt with his first datagram, which also makes him a member.
    a.wait_for(deadline, "bob among ann's members", |s| {
        s.iter()
            .any(|v| v["event"] == "peer_joined" && v["peer"] == id_b.as_str())
    });

    a.send_lines(["/msg carol hello?", "/msg bob hello bob"]);
    a.wait_for(deadline, "the acknowledgement", |s| {
        s.iter().any(|v| v["event"] == "direct_acked")
    });
    let errors = a.events("command_error");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]["error"].as_str().unwrap().contains("carol"),
        "{errors:?}"
    );
    let sent: Vec<Value> = a.events("direct_sent").into_iter().cloned().collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["to"], id_b.as_str());
    assert_eq!(sent[0]["nick"], "bob");
    assert_eq!(sent[0]["text"], "hello bob");
    assert_eq!(sent[0]["pending"], true);
    let acked = a.events("direct_acked");
    assert_eq!(acked[0]["id"], sent[0]["id"]);
    assert_eq!(acked[0]["to"], id_b.as_str());
    // Sent before acknowledged, on the one stream.
    let order: Vec<&str> = a
        .seen_with_times()
        .filter_map(|(v, _)| v["event"].as_str())
        .filter(|e| e.starts_with("direct"))
        .collect();
    assert_eq!(order, ["direct_sent", "direct_acked"]);
    // Bob's conversation (empty: the first of this run) comes before the message.
    b.wait_for(deadline, "the direct message", |s| {
        s.iter().any(|v| v["event"] == "direct")
    });

    a.signal(libc::SIGTERM);
    assert!(a.wait_exit(deadline).success());
    b.signal(libc::SIGTERM);
    assert!(b.wait_exit(deadline).success());
    let got = b.events("direct");
    assert_eq!(got.len(), 1, "exactly once: {got:?}");
    assert_eq!(got[0]["text"], "hello bob");
    assert_eq!(got[0]["nick"], "ann");
    assert_eq!(got[0]["peer"], id_a.as_str());
    assert_eq!(got[0]["id"], sent[0]["id"]);
    assert!(got[0]["sent_at"].as_u64().unwrap() > 0);
    assert!(
        b.events("message").is_empty(),
        "a direct message is no lobby message"
    );

    // Ann's file holds the message and its acknowledgement; after a restart, /query shows
    // it again as delivered.
    let recs = direct_history(&dir_a);
    assert_eq!(recs[0]["text"], "hello bob");
    assert_eq!(recs[1]["state"], "delivered");
    let mut b = node("bob", &lobby, &port, &tmp.path().join("b"), &[]);
    b.wait_joined(deadline);
    let mut a = node("ann", &lobby, &port, &dir_a, &[]);
    a.wait_joined(deadline);
    a.wait_for(deadline, "bob again", |s| {
        s.iter()
            .any(|v| v["event"] == "peer_joined" && v["peer"] == id_b.as_str())
    });
    a.send_lines(["/query bob"]);
    a.wait_for(deadline, "the conversation", |s| {
        s.iter().any(|v| v["event"] == "conversation")
    });
    let conv = a.events("conversation");
    assert_eq!(conv[0]["peer"], id_b.as_str());
    let history = conv[0]["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["text"], "hello bob");
    assert_eq!(history[0]["own"], true);
    assert_eq!(history[0]["state"], "delivered");
    for p in [&mut a, &mut b] {
        p.signal(libc::SIGTERM);
        assert!(p.wait_exit(deadline).success(), "{}", p.name);
    }
}

/// A direct message its addressee cannot write to its history file is not acknowledged: the
/// addressee stops with the error before anything leaves, and the writer sends the message
/// again until the addressee, restarted, keeps it, shows it once, and acknowledges it.
#[test]
fn a_direct_message_that_cannot_be_kept_is_not_acknowledged() {
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let (lobby, port) = (lobby("unkept"), port());
    let dir_b = tmp.path().join("b");
    let mut b = node("bob", &lobby, &port, &dir_b, &[]);
    let id_b = b.wait_joined(deadline);
    let mut a = node("ann", &lobby, &port, &tmp.path().join("a"), &[]);
    let id_a = a.wait_joined(deadline);
    a.wait_for(deadline, "bob among ann's members", |s| {
        s.iter()
            .any(|v| v["event"] == "peer_joined" && v["peer"] == id_b.as_str())
    });
    // And Ann among Bob's, so that an acknowledgement from him would find her: only its
    // being held back can make Ann send the message again.
    b.wait_for(deadline, "ann among bob's members", |s| {
        s.iter()
            .any(|v| v["event"] == "peer_joined" && v["peer"] == id_a.as_str())
    });
    // A directory where Bob's conversation file with Ann goes: it cannot be opened.
    let blocked = dir_b.join("direct").join(&id_a).join("history");
    fs::create_dir_all(&blocked).unwrap();
    a.send_lines(["/msg bob kept?"]);
    let st = b.wait_exit(deadline);
    assert!(!st.success(), "bob stops with the error: {st}");
    assert!(
        b.events("direct").is_empty(),
        "not shown: {:?}",
        b.events("direct")
    );
    fs::remove_dir(&blocked).unwrap();
    let mut b = node("bob", &lobby, &port, &dir_b, &[]);
    b.wait_joined(deadline);
    b.wait_for(deadline, "the message sent again", |s| {
        s.iter().any(|v| v["event"] == "direct")
    });
    a.wait_for(deadline, "the acknowledgement", |s| {
        s.iter().any(|v| v["event"] == "direct_acked")
    });
    for p in [&mut a, &mut b] {
        p.signal(libc::SIGTERM);
        assert!(p.wait_exit(deadline).success(), "{}", p.name);
    }
    let got = b.events("direct");
    assert_eq!(got.len(), 1, "exactly once: {got:?}");
    assert_eq!(got[0]["text"], "kept?");
    assert_eq!(a.events("direct_acked").len(), 1);
    assert!(a.events("direct_failed").is_empty());
}
