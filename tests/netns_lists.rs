//! Lobby lists on a real segment (PROTOCOL.md 7.12): three hosts in network namespaces on one
//! bridge, no friends configured. Host 2 asks for the list with `/list` and hears, on the
//! discovery group, the public lobbies of hosts 0 and 1 with their members; a private lobby,
//! an `--unlisted` node's lobby and a `--no-multicast` node's lobby are never named, and
//! those two nodes send no list to the group.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). Without them it prints "skipped: ..."
//! and passes, except under CI=true, where it fails instead (tests/common/lan.rs).

mod common;

use std::path::Path;
use std::time::Instant;

use common::lan::{Lan, skip_unless_possible};
use common::{DEADLINE, Proc};
use serde_json::Value;

/// `lobbycast --pipe LOBBY` inside host `host`, nicknamed `nick` (one data directory each, so
/// two nodes may share a host).
fn node(lan: &Lan, host: usize, lobby: &str, nick: &str, dir: &Path, extra: &[&str]) -> Proc {
    Proc::spawn(nick, lan.lobbycast(host, lobby, nick, dir, extra))
}

/// The members a `lobbies` line gives `name`, if it names it.
fn members(v: &Value, name: &str) -> Option<u64> {
    v["lobbies"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == name)
        .and_then(|l| l["members"].as_u64())
}

/// Waits until `p` heard a member with peer id `peer` in `lobby`.
fn wait_member(p: &mut Proc, deadline: Instant, lobby: &str, peer: &str) {
    p.wait_for(deadline, &format!("{peer} in {lobby}"), |s| {
        s.iter()
            .any(|v| v["event"] == "peer_joined" && v["lobby"] == lobby && v["peer"] == peer)
    });
}

#[test]
fn a_host_with_no_friend_lists_the_segment_s_public_lobbies() {
    if skip_unless_possible() {
        return;
    }
    let deadline = Instant::now() + DEADLINE;
    let lan = Lan::new("lists", &[0, 0, 0]);
    let tmp = tempfile::tempdir().unwrap();
    // Host 2 asks first, so that it watches the list while the others come: every list they
    // send it is told. (A host that asks later is answered only by nodes that did not answer
    // another request in the last 5 s: hosts starting together answer each other first.)
    let mut cat = node(&lan, 2, "solo", "cat", tmp.path(), &[]);
    cat.wait_joined(deadline);
    cat.send_lines(["/list"]);
    cat.wait_for(deadline, "the answer to /list", |s| {
        s.iter().any(|v| v["event"] == "lobbies")
    });
    let first = cat.events("lobbies")[0].clone();
    assert_eq!(first["cut"], false, "{first}");
    assert!(first["lobbies"].is_array(), "{first}");

    let mut ann = node(&lan, 0, "general", "ann", tmp.path(), &[]);
    let mut bob = node(&lan, 1, "general", "bob", tmp.path(), &[]);
    // Never listed: the lobbies of a node that names none, and of one without multicast.
    let mut quinn = node(&lan, 1, "quiet", "quinn", tmp.path(), &["--unlisted"]);
    let mut nina = node(&lan, 0, "hidden", "nina", tmp.path(), &["--no-multicast"]);
    let ann_id = ann.wait_joined(deadline);
    let bob_id = bob.wait_joined(deadline);
    quinn.wait_joined(deadline);
    nina.wait_joined(deadline);
    // Each counts the other before ann names team: its list then says 2 for general.
    wait_member(&mut ann, deadline, "general", &bob_id);
    wait_member(&mut bob, deadline, "general", &ann_id);
    // The private lobby first, so that every list naming team could name it too.
    ann.send_lines(["/join secret --key two words", "/join team"]);
    ann.wait_for(deadline, "secret and team joined", |s| {
        s.iter().filter(|v| v["event"] == "joined").count() == 3
    });
    let private: Vec<&Value> = ann
        .events("joined")
        .into_iter()
        .filter(|v| v["lobby"] == "secret")
        .collect();
    assert_eq!(private.len(), 1);
    assert_eq!(private[0]["private"], true, "{}", private[0]);

    cat.wait_for(deadline, "general with 2 members and team with 1", |s| {
        s.iter().any(|v| {
            v["event"] == "lobbies"
                && members(v, "general") == Some(2)
                && members(v, "team") == Some(1)
        })
    });
    eprintln!("cat: {}", cat.events("lobbies").last().expect("seen"));
    for v in cat.events("lobbies") {
        for never in ["secret", "quiet", "hidden"] {
            assert_eq!(members(v, never), None, "{never} was listed: {v}");
        }
        assert_eq!(v["cut"], false, "{v}");
    }

    let mut stats = Vec::new();
    for p in [&mut cat, &mut ann, &mut bob, &mut quinn, &mut nina] {
        p.close_stdin();
        p.signal(libc::SIGTERM);
        let st = p.wait_exit(deadline);
        assert!(st.success(), "{}: {st}", p.name);
        let s = p.events("stats")[0]["lists_sent"]
            .as_u64()
            .expect("lists_sent");
        stats.push((p.name.clone(), s));
    }
    let sent = |name: &str| stats.iter().find(|(n, _)| n == name).expect("a node").1;
    assert!(sent("ann") > 0, "ann sent no list to the group: {stats:?}");
    assert_eq!(sent("quinn"), 0, "an unlisted node sent lists: {stats:?}");
    assert_eq!(
        sent("nina"),
        0,
        "a node without multicast sent lists: {stats:?}"
    );
}
