//! `lobbycast --relay` between two LANs that a router joins for unicast only (PROTOCOL.md 7.5):
//! hosts on each side use multicast alone, a relay on each side is a friend of the other side's
//! relay, and every host delivers every message exactly once, with 5 % loss. Two relays on one
//! side do not multiply the traffic.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). Without them it prints "skipped: ..."
//! and passes, except under CI=true, where it fails instead (tests/common/lan.rs).

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::lan::{RoutedLan, skip_unless_possible};
use common::{DEADLINE, Proc, assert_exactly_once, has_all};

const PORT: u16 = 47300;
const LOBBY: &str = "routed";
/// Messages each chatting host sends.
const PER_HOST: usize = 25;

fn unicast(side: usize, i: usize) -> String {
    format!("{}:{PORT}", RoutedLan::addr(side, i))
}

/// A running `lobbycast --relay`, its log (stderr, RUST_LOG=info) in a file.
struct Relay {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Relay {
    fn start(
        lan: &RoutedLan,
        side: usize,
        i: usize,
        friends: &[(usize, usize)],
        dir: &Path,
    ) -> Relay {
        let name = format!("relay{side}.{i}");
        let bind = unicast(side, i);
        let data = dir.join(&name);
        let mut args = vec![
            "--relay".to_owned(),
            LOBBY.into(),
            "--nick".into(),
            name.clone(),
            "--bind".into(),
            bind,
            "--data-dir".into(),
            data.to_string_lossy().into_owned(),
        ];
        for &(s, f) in friends {
            args.push("--friend".into());
            args.push(unicast(s, f));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = dir.join(format!("{name}.log"));
        let child = lan
            .lobbycast(side, i, &args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Relay { name, child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls the log (a file the relay appends to) until `links` friend links are up.
    fn wait_links(&mut self, links: usize, deadline: Instant) {
        loop {
            if self.log().matches("friend link up").count() >= links {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("{} exited ({st}):\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{}: friend links not up:\n{}",
                self.name,
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it with SIGTERM; it must exit 0. Returns its final `datagrams_out`.
    fn stop(mut self, deadline: Instant) -> u64 {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "{} exited {st}:\n{}", self.name, self.log());
                break;
            }
            assert!(Instant::now() < deadline, "{} did not stop", self.name);
            thread::sleep(Duration::from_millis(20));
        }
        let log = self.log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("counters"))
            .unwrap_or_else(|| panic!("{}: no counters logged:\n{log}", self.name));
        eprintln!("{}: {line}", self.name);
        field(line, "datagrams_out")
    }
}

/// The value of `name=N` in a log line.
fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

fn text(who: usize, k: usize) -> String {
    let pad = if k % 5 == 2 { 2500 } else { k * 10 };
    format!("chatter {who} message {k} {}", "r".repeat(pad))
}

/// Two chatting hosts on each side (hosts 0 and 1); relays at hosts `relays0` of side 0 and at
/// host 2 of side 1, friends across. Every chatter delivers every other chatter's messages
/// exactly once. Returns the datagrams every process sent.
fn routed(tag: &str, relays0: &[usize]) -> u64 {
    let side0_hosts = 2 + relays0.len();
    let lan = RoutedLan::new(tag, [side0_hosts, 3], 5);
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let mut relays: Vec<Relay> = relays0
        .iter()
        .map(|&i| Relay::start(&lan, 0, i, &[(1, 2)], tmp.path()))
        .collect();
    let far: Vec<(usize, usize)> = relays0.iter().map(|&i| (0, i)).collect();
    relays.push(Relay::start(&lan, 1, 2, &far, tmp.path()));
    let t0 = Instant::now();
    for r in &mut relays {
        let links = if r.name.starts_with("relay1") {
            relays0.len()
        } else {
            1
        };
        r.wait_links(links, deadline);
    }
    eprintln!("{tag}: links up after {:?}", t0.elapsed());
    let mut chatters: Vec<Proc> = Vec::new();
    for side in 0..2 {
        for i in 0..2 {
            let name = format!("c{}", side * 2 + i);
            let data = tmp.path().join(&name);
            let data = data.to_string_lossy().into_owned();
            let cmd = lan.lobbycast(
                side,
                i,
                &["--pipe", LOBBY, "--nick", &name, "--data-dir", &data],
            );
            chatters.push(Proc::spawn(&name, cmd));
        }
    }
    for c in &mut chatters {
        c.wait_joined(deadline);
    }
    for k in 0..PER_HOST {
        for (w, c) in chatters.iter_mut().enumerate() {
            c.send_lines([text(w, k)]);
        }
        // Pacing, not synchronisation: spreads the messages over several datagrams.
        thread::sleep(Duration::from_millis(20));
    }
    let want = |me: usize| -> HashSet<String> {
        (0..4)
            .filter(|&w| w != me)
            .flat_map(|w| (0..PER_HOST).map(move |k| text(w, k)))
            .collect()
    };
    let t1 = Instant::now();
    for (me, c) in chatters.iter_mut().enumerate() {
        let w = want(me);
        c.wait_for(deadline, "every other chatter's messages", |s| {
            has_all(s, &w)
        });
    }
    eprintln!(
        "{tag}: all delivered {:?} after the last message was written",
        t1.elapsed()
    );
    for c in &chatters {
        for (v, at) in c.seen_with_times() {
            if v["event"] == "message" && at > t1 + Duration::from_millis(500) {
                let t: String = v["text"].as_str().unwrap().chars().take(30).collect();
                eprintln!(
                    "  {} late by {:?}: {t} seq {} late {}",
                    c.name,
                    at - t1,
                    v["seq"],
                    v["late"]
                );
            }
        }
    }
    let mut sent = 0;
    for c in &mut chatters {
        c.signal(libc::SIGTERM);
        let st = c.wait_exit(deadline);
        assert!(st.success(), "{}: {st}", c.name);
        let stats = c.events("stats")[0].clone();
        eprintln!(
            "{}: gaps {} recovered {} requests {} deferred {} repairs {} datagrams_out {}",
            c.name,
            stats["gaps_detected"],
            stats["recovered"],
            stats["requests_sent"],
            stats["requests_deferred"],
            stats["repairs_sent"],
            stats["datagrams_out"]
        );
        sent += stats["datagrams_out"].as_u64().unwrap();
    }
    for r in relays {
        sent += r.stop(deadline);
    }
    for (me, c) in chatters.iter().enumerate() {
        assert_exactly_once(c, &want(me));
        assert!(c.events("lost").is_empty(), "{}: lost events", c.name);
    }
    sent
}

#[test]
fn one_relay_on_each_side_joins_two_lans() {
    if skip_unless_possible() {
        return;
    }
    routed("r1", &[2]);
}

#[test]
fn two_relays_on_one_side_do_not_multiply_the_traffic() {
    if skip_unless_possible() {
        return;
    }
    let one = routed("r2a", &[2]);
    let two = routed("r2b", &[2, 3]);
    eprintln!("datagrams sent: one relay on side 0 {one}, two relays {two}");
    assert!(
        (two as f64) < 1.3 * one as f64,
        "two relays: {two} datagrams, one relay: {one}"
    );
}
