//! Lobby lists in the simulator (PROTOCOL.md 7.12): a node with no friend sees the public
//! lobbies of its segment through the discovery group, a node behind a router sees its
//! friends', private and unlisted lobbies are never in a list, and the answers to a request
//! on the group are few.

mod sim;

use std::time::Duration;

use lobbycast::proto::listings::Listed;
use lobbycast::proto::private::LobbyKey;
use lobbycast::proto::{Event, Lobby};
use sim::{Sim, lossy, node_config};

fn names(list: &[Listed]) -> Vec<(&str, u64)> {
    list.iter().map(|l| (l.name.as_str(), l.members)).collect()
}

#[test]
fn a_new_node_sees_the_segments_public_lobbies_and_no_private_or_unlisted_one() {
    // No loss: a lost list is not sent again before the next announcement (121 s), and this
    // test checks what one request brings.
    let net = lossy(0.0);
    // Nodes 0 to 5 are in the public lobby "sim"; node 6 in nothing; node 7 is behind a
    // router (no multicast), a friend of node 0.
    let mut sim = Sim::with_joined(8, 3, net.clone(), node_config(&net), 6);
    sim.set_segment(7, None);
    sim.befriend(0, 7);
    let lab = Lobby::new("Lab").unwrap();
    let hidden = Lobby::new("hidden").unwrap();
    let private = LobbyKey::from_bytes([5; 32]).lobby(&Lobby::new("plans").unwrap());
    sim.with_node(1, |n, now| n.join(now, &lab, 0));
    sim.with_node(2, |n, now| {
        n.join(now, &hidden, 0);
        n.set_listed(now, hidden.id, false);
        n.join_private(now, &private, LobbyKey::from_bytes([5; 32]), 0, [2; 32]);
    });
    for i in (0..8).filter(|&i| i != 6) {
        sim.with_node(i, |n, now| n.set_discovery(now, true));
    }
    // Members hear each other, links come up, the first announcements go out.
    sim.run_for(Duration::from_secs(6));
    // Node 6 starts listening on the discovery group later: it asks the segment, which
    // answers. Its user looks at the list.
    let sent_before = sim.total_stats().lists_sent;
    let (empty, _) = sim.with_node(6, |n, now| n.ask_lobby_list(now));
    assert!(empty.is_empty());
    sim.with_node(6, |n, now| n.set_discovery(now, true));
    sim.run_for(Duration::from_secs(3));
    let (list, cut) = sim.node(6).lobby_list();
    assert_eq!(
        names(&list),
        [("sim", 6), ("lab", 1)],
        "node 6 with no friend"
    );
    assert!(!cut);
    // The answers to one request on the group: fewer than the members that could answer.
    let answers = sim.total_stats().lists_sent - sent_before;
    assert!(
        (1..=3).contains(&answers),
        "{answers} lists answered one request of six members"
    );
    let told = sim.events(6).iter().rev().find_map(|e| match e {
        Event::LobbyList { lobbies, cut } => Some((lobbies.clone(), *cut)),
        _ => None,
    });
    assert_eq!(
        told,
        Some((list, false)),
        "the user who asked is told of the list"
    );
    // Node 7 has no multicast: it hears its friend's lobbies.
    sim.with_node(7, |n, now| n.ask_lobby_list(now));
    sim.run_for(Duration::from_secs(3));
    let (list, _) = sim.node(7).lobby_list();
    assert_eq!(
        names(&list),
        [("sim", 6)],
        "node 7 through its friend node 0"
    );
    // Nobody ever lists an unlisted or a private lobby.
    for i in 0..8 {
        let (list, _) = sim.node(i).lobby_list();
        assert!(
            list.iter().all(|l| l.name != "hidden" && l.name != "plans"),
            "node {i}: {list:?}"
        );
    }
}
