//! Who-is in the simulator (PROTOCOL.md 7.13): a query passed from friend to friend finds a
//! peer three hops away and not four, answers come back along the query's path, and a
//! query is passed on once per node.

mod sim;

use std::time::Duration;

use lobbycast::proto::wire::WhoIsPeer;
use lobbycast::proto::{Event, MsgId, PeerId, WhoIsError};
use sim::{Sim, lossy, node_config};

/// The answers node `i` got to query `id`: (answerer, peers).
fn answers(sim: &Sim, i: usize, id: MsgId) -> Vec<(PeerId, Vec<WhoIsPeer>)> {
    sim.events(i)
        .iter()
        .filter_map(|e| match e {
            Event::WhoIs { id: q, from, peers } if *q == id => Some((*from, peers.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn whois_finds_a_peer_three_hops_away_and_not_four() {
    let net = lossy(0.0);
    // A chain of six friends, no multicast, in no lobby: what a node knows is its friends.
    let mut sim = Sim::with_joined(6, 5, net.clone(), node_config(&net), 0);
    for i in 0..6 {
        sim.set_segment(i, None);
    }
    for i in 0..5 {
        sim.befriend(i, i + 1);
    }
    sim.run_for(Duration::from_secs(6));
    let peer = |sim: &Sim, i: usize| sim.node(i).peer_id();

    // Node 3 is three hops from node 0: it answers for itself, and node 2 for its friend.
    let id = sim.with_node(0, |n, now| n.whois(now, "N3")).unwrap();
    sim.run_for(Duration::from_secs(1));
    let got = answers(&sim, 0, id);
    let from: Vec<PeerId> = got.iter().map(|(f, _)| *f).collect();
    assert!(
        from.contains(&peer(&sim, 3)) && from.contains(&peer(&sim, 2)),
        "{got:?}"
    );
    for (answerer, peers) in &got {
        assert_eq!(peers.len(), 1);
        assert_eq!(
            (peers[0].peer, peers[0].nick.as_str()),
            (peer(&sim, 3), "n3")
        );
        if *answerer == peer(&sim, 3) {
            assert_eq!((peers[0].seen, peers[0].addr), (0, None), "itself");
        } else {
            assert!(peers[0].addr.is_some(), "its friend gives its address");
        }
    }
    // Node 1 is its own friend: what node 0 knows itself comes at once, from itself.
    sim.run_for(Duration::from_secs(2));
    let id = sim.with_node(0, |n, now| n.whois(now, "n1")).unwrap();
    let mine = answers(&sim, 0, id);
    assert!(mine.iter().any(|(f, _)| *f == peer(&sim, 0)), "{mine:?}");

    // Node 4 is four hops away: nobody the query reaches may answer for it.
    sim.run_for(Duration::from_secs(2));
    let id = sim.with_node(0, |n, now| n.whois(now, "n4")).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(answers(&sim, 0, id), [], "node 4 is beyond the hop limit");
    // The query went three hops and no further: nodes 1, 2 and 3 took it once each.
    let heard: Vec<u64> = (0..6).map(|i| sim.node(i).stats().whois_heard).collect();
    assert_eq!(heard, [0, 3, 3, 3, 0, 0]);

    // From the other end the same peer is in reach.
    let id = sim.with_node(1, |n, now| n.whois(now, "n4")).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert!(!answers(&sim, 1, id).is_empty());

    // A user asks at most every 2 s.
    assert_eq!(
        sim.with_node(1, |n, now| n.whois(now, "n5")),
        Err(WhoIsError::TooSoon)
    );
}

/// A ring of six friends: node 3 is three hops from node 0 both ways round, so the query
/// reaches it twice; it takes it once, and drops the second copy.
#[test]
fn a_query_around_a_ring_is_taken_once_per_node() {
    let net = lossy(0.0);
    let mut sim = Sim::with_joined(6, 7, net.clone(), node_config(&net), 0);
    for i in 0..6 {
        sim.set_segment(i, None);
        sim.befriend(i, (i + 1) % 6);
    }
    sim.run_for(Duration::from_secs(6));
    sim.with_node(0, |n, now| n.whois(now, "n3")).unwrap();
    sim.run_for(Duration::from_secs(2));
    let heard: Vec<u64> = (0..6).map(|i| sim.node(i).stats().whois_heard).collect();
    assert_eq!(heard, [0, 1, 1, 1, 1, 1]);
    assert!(sim.node(3).stats().whois_dropped >= 1, "the second copy");
}
