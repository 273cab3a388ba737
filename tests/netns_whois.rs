//! Who-is (PROTOCOL.md 7.13) on real processes in network namespaces: five hosts joined only
//! by friend links in a chain, multicast dropped on every host, each in a lobby of its own, so
//! that a query can only travel from friend to friend. Host 0 asks through the pipe.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). Without them it prints "skipped: ..."
//! and passes, except under CI=true, where it fails instead (tests/common/lan.rs).
//!
//! No UDP is dropped at random here, unlike the other chain tests: who-is is one query and
//! one answer per hop with no retry (a user asks again), so loss would make "nobody answered"
//! mean nothing. What this test checks is the routing, the hop limit and the runtime's events.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use common::lan::{Lan, skip_unless_possible};
use common::{DEADLINE, Proc};

/// Port of every host's unicast socket.
const PORT: u16 = 47400;

fn unicast(i: usize) -> String {
    format!("{}:{PORT}", Lan::addr(i))
}

/// `lobbycast --pipe` in host `i`, in a lobby of its own, bound to its unicast address, with
/// its neighbours in a chain of `n` as friends.
fn node(lan: &Lan, i: usize, n: usize, dir: &Path) -> Proc {
    let name = format!("h{i}");
    let lobby = format!("room{i}");
    let mut args = vec!["--bind".to_owned(), unicast(i)];
    for f in [i.checked_sub(1), (i + 1 < n).then_some(i + 1)]
        .into_iter()
        .flatten()
    {
        args.push("--friend".into());
        args.push(unicast(f));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::spawn(&name, lan.lobbycast(i, &lobby, &name, dir, &args))
}

/// Asks `/whois nick` at `p` (each nick once per test) and waits until the runtime closes the
/// query; returns its answers and its `whois_done` line.
fn whois(p: &mut Proc, nick: &str, deadline: Instant) -> (Vec<Value>, Value) {
    p.send_lines([format!("/whois {nick}")]);
    let asked = |s: &[Value]| {
        s.iter()
            .find(|v| v["event"] == "whois_asked" && v["nick"] == nick)
            .map(|v| v["id"].as_str().expect("an id").to_owned())
    };
    p.wait_for(deadline, &format!("/whois {nick} asked"), |s| {
        asked(s).is_some()
    });
    let id = asked(&p.seen).expect("seen");
    p.wait_for(deadline, &format!("/whois {nick} over"), |s| {
        s.iter()
            .any(|v| v["event"] == "whois_done" && v["id"] == id.as_str())
    });
    let of_it = |event: &str| -> Vec<Value> {
        p.seen
            .iter()
            .filter(|v| v["event"] == event && v["id"] == id.as_str())
            .cloned()
            .collect()
    };
    let answers = of_it("whois");
    for a in &answers {
        assert_eq!(a["nick"], nick, "{a}");
    }
    let done = of_it("whois_done").remove(0);
    assert_eq!(done["nick"], nick);
    // Host 0, at the end of the chain, has one friend.
    assert_eq!(done["friends_up"], 1, "{done}");
    assert_eq!(
        done["answers"].as_u64(),
        Some(answers.len() as u64),
        "{done}"
    );
    (answers, done)
}

/// Hosts 0-1-2-3-4 in a chain of friends, nothing else in common. Host 0 finds host 3, three
/// hops away, from host 3's own answer and from its friend host 2's (with its address); it
/// finds nobody by a nick no one uses, nor host 4, four hops away, which the query never
/// reaches. A second query within 2 s is refused with a `command_error`.
#[test]
fn whois_finds_a_peer_three_friend_hops_away_and_no_further() {
    if skip_unless_possible() {
        return;
    }
    const N: usize = 5;
    let lan = Lan::new("fw", &[0; N]);
    for i in 0..N {
        lan.block_multicast(i);
    }
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let mut procs: Vec<Proc> = (0..N).map(|i| node(&lan, i, N, tmp.path())).collect();
    let ids: Vec<String> = procs.iter_mut().map(|p| p.wait_joined(deadline)).collect();
    for (i, p) in procs.iter_mut().enumerate() {
        p.wait_links(if i == 0 || i == N - 1 { 1 } else { 2 }, deadline);
    }

    let started = Instant::now();
    // Asked twice at once: the node takes one query per 2 s and says so.
    procs[0].send_lines(["/whois h3"]);
    let (answers, done) = whois(&mut procs[0], "h3", deadline);
    eprintln!("/whois h3 over after {:?}: {answers:?}", started.elapsed());
    let refused = procs[0].events("command_error");
    assert_eq!(refused.len(), 1, "{refused:?}");
    let error = refused[0]["error"].as_str().unwrap();
    assert!(error.contains("/whois") && error.contains("2 s"), "{error}");

    // Host 3 answers about itself, host 2 about its friend: both name host 3's peer id, and
    // nobody else answers (hosts 0 and 1 know no h3).
    let from: HashSet<&str> = answers
        .iter()
        .map(|a| a["from"].as_str().unwrap())
        .collect();
    assert_eq!(
        from,
        HashSet::from([ids[3].as_str(), ids[2].as_str()]),
        "{answers:?}"
    );
    assert_eq!(done["peers"], 1, "{done}");
    for a in &answers {
        let peers = a["peers"].as_array().unwrap();
        assert_eq!(peers.len(), 1, "{a}");
        let p = &peers[0];
        assert_eq!(p["peer"], ids[3].as_str(), "{a}");
        assert_eq!(p["nick"], "h3", "{a}");
        if a["from"] == ids[3].as_str() {
            // About itself: its own listed lobby.
            assert_eq!(p["seen_ago_s"], 0, "{a}");
            assert_eq!(p["lobbies"], serde_json::json!(["room3"]), "{a}");
            assert!(p["addr"].is_null(), "{a}");
        } else {
            // Host 2 shares no lobby with it, but is its friend: it knows its address.
            assert_eq!(p["lobbies"], serde_json::json!([]), "{a}");
            assert_eq!(p["addr"], unicast(3).as_str(), "{a}");
        }
    }

    // A nick nobody uses: the query is over with no answer.
    let (answers, done) = whois(&mut procs[0], "nobody-here", deadline);
    assert!(answers.is_empty(), "{answers:?}");
    assert_eq!(
        (done["answers"].as_u64(), done["peers"].as_u64()),
        (Some(0), Some(0))
    );

    // Host 4 is four hops away: host 3, where the query's hops run out, neither passes it
    // on nor answers about its friends.
    let (answers, done) = whois(&mut procs[0], "h4", deadline);
    assert!(answers.is_empty(), "{answers:?}");
    assert_eq!(done["answers"], 0, "{done}");

    let stats: Vec<Value> = procs
        .iter_mut()
        .map(|p| {
            p.signal(libc::SIGTERM);
            let st = p.wait_exit(deadline);
            assert!(st.success(), "{}: {st}", p.name);
            p.events("stats")[0].clone()
        })
        .collect();
    // Three queries reached hosts 1 to 3 each; none reached host 4.
    let heard: Vec<u64> = stats
        .iter()
        .map(|s| s["whois_heard"].as_u64().unwrap())
        .collect();
    assert_eq!(heard, [0, 3, 3, 3, 0], "{stats:?}");
    assert_eq!(procs[0].events("command_error").len(), 1);
}
