//! Flooding between friends in the simulator (PROTOCOL.md 7): where multicast is blocked,
//! routed or fails midway, lobby traffic flows hop by hop between friends, and every node
//! delivers every message exactly once.

mod sim;

use std::time::Duration;

use sim::{NetConfig, Sim, chat, lossy, node_config};

fn sim(n: usize, seed: u64, net: NetConfig) -> Sim {
    let cfg = node_config(&net);
    Sim::new(n, seed, net, cfg)
}

/// Five hosts in a chain of friends, 10 % loss on every datagram, multicast blocked on every
/// host (the network drops it, or the nodes run with multicast off): each delivers every other
/// host's messages exactly once.
#[test]
fn a_chain_of_five_friends_without_multicast_delivers_everything_once() {
    for multicast_off in [false, true] {
        let mut sim = sim(5, 21, lossy(0.10));
        for i in 0..5 {
            sim.set_segment(i, None);
            sim.node_mut(i).set_multicast(!multicast_off);
        }
        for i in 0..4 {
            sim.befriend(i, i + 1);
        }
        // Links come up and friends learn each other's lobbies from their hellos.
        sim.run_for(Duration::from_secs(6));
        chat(&mut sim, 20, Duration::from_millis(20));
        assert!(
            sim.run_until_delivered(Duration::from_secs(30)),
            "multicast off {multicast_off}: {}\n{:?}",
            sim.missing_report(),
            sim.total_stats()
        );
        sim.assert_exactly_once();
        let s = sim.total_stats();
        println!(
            "multicast off {multicast_off}: forwarded {}, requests {}, repairs {}, prunes {}, \
             grafts {}, gaps {}, unicast datagrams {} ({} with data)",
            s.forwarded,
            s.requests_sent,
            s.repairs_sent,
            s.prunes,
            s.grafts,
            s.gaps_detected,
            sim.traffic.unicast_datagrams,
            sim.traffic.unicast_data_datagrams
        );
        assert_eq!(s.lost, 0);
        assert!(s.forwarded > 0, "messages were forwarded");
        if multicast_off {
            assert_eq!(
                sim.traffic.datagrams, sim.traffic.unicast_datagrams,
                "a node with multicast off sends nothing to a group"
            );
        }
    }
}

/// Hosts that are friends chat by multicast; multicast then stops reaching one of them (both
/// ways) in the middle of the conversation, and later comes back. Nothing is lost across
/// either switch, and once multicast is back the data goes by multicast again.
#[test]
fn multicast_that_fails_midway_and_returns_loses_nothing() {
    let mut sim = sim(4, 22, lossy(0.02));
    for i in 0..4 {
        sim.befriend(i, (i + 1) % 4);
    }
    sim.run_for(Duration::from_secs(6));
    chat(&mut sim, 10, Duration::from_millis(50));
    assert!(sim.run_until_delivered(Duration::from_secs(10)));
    let before = sim.traffic.clone();
    // Multicast still works: friends learned that it reaches them, so data stays on it.
    chat(&mut sim, 10, Duration::from_millis(50));
    assert!(sim.run_until_delivered(Duration::from_secs(10)));
    let unicast_data = sim.traffic.unicast_data_datagrams - before.unicast_data_datagrams;
    let data = sim.traffic.data_datagrams - before.data_datagrams;
    assert!(
        unicast_data * 10 < data,
        "multicast works, yet {unicast_data} of {data} data datagrams went by unicast"
    );
    // Node 2 loses multicast both ways: the conversation goes on through its friends.
    sim.set_segment(2, None);
    chat(&mut sim, 20, Duration::from_millis(50));
    assert!(
        sim.run_until_delivered(Duration::from_secs(30)),
        "{}\n{:?}",
        sim.missing_report(),
        sim.total_stats()
    );
    // Multicast comes back: after a few session intervals data leaves unicast again.
    sim.set_segment(2, Some(0));
    sim.run_for(Duration::from_secs(8));
    chat(&mut sim, 10, Duration::from_millis(50));
    assert!(sim.run_until_delivered(Duration::from_secs(10)));
    let before = sim.traffic.clone();
    chat(&mut sim, 10, Duration::from_millis(50));
    assert!(sim.run_until_delivered(Duration::from_secs(10)));
    let unicast_data = sim.traffic.unicast_data_datagrams - before.unicast_data_datagrams;
    let data = sim.traffic.data_datagrams - before.data_datagrams;
    assert!(
        unicast_data * 10 < data,
        "multicast is back, yet {unicast_data} of {data} data datagrams went by unicast"
    );
    sim.assert_exactly_once();
    assert_eq!(sim.total_stats().lost, 0);
}

/// Two segments that multicast does not cross (a router between them): `relays` nodes of
/// segment 0 are friends of node 4 on segment 1. Every host delivers every message once, with
/// 5 % loss. Returns the datagrams sent in all, and those that carried data.
fn two_segments(relays: &[usize], seed: u64) -> (u64, u64) {
    let mut sim = sim(8, seed, lossy(0.05));
    for i in 4..8 {
        sim.set_segment(i, Some(1));
    }
    for &r in relays {
        sim.befriend(r, 4);
    }
    sim.run_for(Duration::from_secs(6));
    let start = sim.traffic.clone();
    chat(&mut sim, 50, Duration::from_millis(10));
    assert!(
        sim.run_until_delivered(Duration::from_secs(30)),
        "relays {relays:?}: {}\n{:?}",
        sim.missing_report(),
        sim.total_stats()
    );
    sim.assert_exactly_once();
    let st = sim.total_stats();
    println!(
        "relays {relays:?}: sessions {} requests {} repairs {} prunes {} grafts {} forwarded {} \
         datagrams_out {} elapsed {:?}",
        st.sessions_sent,
        st.requests_sent,
        st.repairs_sent,
        st.prunes,
        st.grafts,
        st.forwarded,
        st.datagrams_out,
        sim.elapsed()
    );
    assert_eq!(st.lost, 0);
    (
        sim.traffic.datagrams - start.datagrams,
        sim.traffic.data_datagrams - start.data_datagrams,
    )
}

#[test]
fn a_relay_on_each_side_joins_two_segments() {
    two_segments(&[0], 23);
}

/// Two relays on one side must not multiply the traffic: one bridges, the other stands by.
#[test]
fn two_relays_on_one_side_cost_little_more_than_one() {
    let (one, one_data) = two_segments(&[0], 24);
    let (two, two_data) = two_segments(&[0, 1], 24);
    println!("datagrams: one relay {one} ({one_data} with data), two relays {two} ({two_data})");
    assert!(
        (two as f64) < 1.3 * one as f64,
        "two relays sent {two} datagrams, one relay {one}"
    );
    assert!(
        (two_data as f64) < 1.3 * one_data as f64,
        "two relays sent {two_data} data datagrams, one relay {one_data}"
    );
}

/// Two segments of three, the third host of each a relay, friends across; 5 % loss; 20 seeds.
/// Every chat is delivered within 10 s of virtual time. Regression test for two ways a relay
/// held a loss for many seconds: members' requests on the group made it back off its own,
/// which only its friend could answer; and messages sent before the friend link came up were
/// never announced to the other side.
#[test]
fn relayed_chats_recover_every_loss_across_seeds() {
    for seed in 0..20 {
        let mut sim = sim(6, 100 + seed, lossy(0.05));
        for i in 3..6 {
            sim.set_segment(i, Some(1));
        }
        sim.befriend(2, 5);
        // The chat starts at once, before the link is up (a hello may be lost).
        for k in 0..15 {
            for i in [0, 1, 3, 4] {
                sim.send(i, &format!("m{k} from {i}"));
            }
            sim.run_for(Duration::from_millis(20));
        }
        assert!(
            sim.run_until_delivered(Duration::from_secs(10)),
            "seed {seed}: {}\n{:?}",
            sim.missing_report(),
            sim.total_stats()
        );
        sim.assert_exactly_once();
    }
}

/// Members that reach each other only through friends know of each other from heartbeats
/// (PROTOCOL.md 7.6): who is there before anyone speaks, nick changes, and leaving, at once.
#[test]
fn heartbeats_tell_who_is_there_beyond_one_hop() {
    use lobbycast::proto::Event;
    let mut sim = sim(4, 25, lossy(0.0));
    for i in 0..4 {
        sim.set_segment(i, None);
    }
    for i in 0..3 {
        sim.befriend(i, i + 1);
    }
    let lobby = sim.lobby.id;
    // Links come up within a hello interval; the next heartbeats cross the chain.
    let cfg = sim.node(0).config().clone();
    sim.run_for(cfg.hello_interval + cfg.heartbeat_interval + Duration::from_secs(5));
    let far = sim.node(3).peer_id();
    let members: Vec<_> = sim.node(0).members(lobby);
    assert!(
        members.iter().any(|(p, n)| *p == far && n == "n3"),
        "node 0 knows node 3, three hops away, before it spoke: {members:?}"
    );
    // A presence that only heartbeats keep up outlives the peer timeout.
    sim.run_for(cfg.peer_timeout * 2);
    assert!(sim.node(0).members(lobby).iter().any(|(p, _)| *p == far));
    sim.set_nick(3, "dora");
    sim.run_for(Duration::from_millis(100));
    assert!(
        sim.events(0)
            .iter()
            .any(|e| matches!(e, Event::NickChanged { peer, nick, .. }
            if *peer == far && nick == "dora")),
        "node 0 heard the nick change"
    );
    sim.leave(3);
    sim.run_for(Duration::from_millis(100));
    assert!(
        sim.events(0)
            .iter()
            .any(|e| matches!(e, Event::PeerLeft { peer, .. } if *peer == far)),
        "node 0 heard node 3 leave at once"
    );
    assert!(!sim.node(0).members(lobby).iter().any(|(p, _)| *p == far));
}

/// The challenge (PROTOCOL.md 7.7): nodes 0 and 1 share an unlisted lobby, which they never
/// name to each other, and hear each other on their segment; node 2, a friend of node 0
/// elsewhere, is not in it. Node 0's challenge makes node 1 take part with it, not node 2;
/// then multicast fails for node 1 and the two go on through their friend link.
#[test]
fn the_challenge_finds_a_shared_unlisted_lobby_and_only_that() {
    let cfg = node_config(&lossy(0.0));
    let mut sim = Sim::with_joined(3, 26, lossy(0.0), cfg, 2);
    sim.set_segment(2, Some(1));
    for i in 0..2 {
        sim.set_listed(i, false);
    }
    sim.befriend(0, 1);
    sim.befriend(0, 2);
    sim.run_for(Duration::from_secs(6));
    assert_eq!(sim.node(0).stats().forwarded, 0, "nobody takes part yet");
    for k in 0..25 {
        sim.send(1, &format!("before {k}"));
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(2));
    let (a, c, b) = (
        sim.node(0).stats(),
        sim.node(1).stats(),
        sim.node(2).stats(),
    );
    assert!(a.challenges_sent >= 2, "node 0 challenged both friends");
    assert_eq!(c.challenge_matches, 1, "node 1 recognised the lobby");
    assert_eq!(b.challenges_heard, 1, "node 2 evaluated the challenge");
    assert_eq!(b.challenge_matches, 0, "node 2 is not in the lobby");
    // Node 1 loses multicast: the lobby goes on between the two friends.
    sim.set_segment(1, None);
    for k in 0..10 {
        sim.send(0, &format!("after {k} from 0"));
        sim.send(1, &format!("after {k} from 1"));
        sim.run_for(Duration::from_millis(50));
    }
    assert!(
        sim.run_until_delivered(Duration::from_secs(20)),
        "{}",
        sim.missing_report()
    );
    sim.assert_exactly_once();
    assert!(
        sim.node(1).stats().forwarded > 0,
        "node 1 pushed to its friend"
    );
}

/// The forward limit (PROTOCOL.md 7.4) keys on the writer, not on the friend that forwards:
/// writers 0 and 3 both reach node 1 through friend 4. Writer 0 floods, and is held to the
/// limit (at node 4, and at node 1), which drops what is over it without holding it, so a
/// later copy is taken and the flood still arrives whole; writer 3's few messages through
/// the very same friend cross at once.
#[test]
fn the_forward_limit_holds_a_flooding_writer_and_no_one_else() {
    let net = lossy(0.0);
    let mut cfg = node_config(&net);
    cfg.forward_rate = 32.0 * 1024.0;
    cfg.forward_burst = 32.0 * 1024.0;
    let mut sim = Sim::new(5, 27, net, cfg);
    for i in 0..5 {
        sim.set_segment(i, None);
        sim.node_mut(i).set_multicast(false);
    }
    for (a, b) in [(0, 4), (3, 4), (4, 1), (1, 2)] {
        sim.befriend(a, b);
    }
    sim.run_for(Duration::from_secs(3));
    // Writer 0 floods: 1,000 messages of 200 bytes, 200 KB, as fast as input allows.
    let flood: Vec<String> = (0..1000)
        .map(|k| format!("{k:04} {}", "f".repeat(195)))
        .collect();
    sim.send_bulk(0, flood);
    sim.run_for(Duration::from_millis(200));
    // Meanwhile writer 3 says a few things; they cross nodes 4 and 1 at once.
    for k in 0..5 {
        sim.send(3, &format!("calm {k}"));
    }
    sim.run_for(Duration::from_millis(200));
    let calm = sim
        .messages(2)
        .iter()
        .filter(|m| m.text.starts_with("calm"))
        .count();
    assert_eq!(calm, 5, "writer 3 is not held back by writer 0's flood");
    let throttled = sim.node(4).stats().forward_throttled + sim.node(1).stats().forward_throttled;
    assert!(throttled > 0, "writer 0 was held to the limit");
    // The flood arrives whole: what was dropped over the limit was taken again later.
    assert!(
        sim.run_until_sent_and_delivered(Duration::from_secs(60)),
        "{}",
        sim.missing_report()
    );
    sim.assert_exactly_once();
    assert_eq!(sim.total_stats().lost, 0);
}

/// A friend that leaves and rejoins again and again draws the lobby's recent packets (the
/// catch-up of a friend that starts taking part) once per 30 s, not each time (PROTOCOL.md
/// 7.5): what it sends cannot buy more.
#[test]
fn a_friend_that_keeps_rejoining_is_caught_up_once() {
    let mut sim = sim(2, 28, lossy(0.0));
    for i in 0..2 {
        sim.set_segment(i, None);
    }
    sim.befriend(0, 1);
    sim.run_for(Duration::from_secs(2));
    for k in 0..100 {
        sim.send(0, &format!("history {k}"));
    }
    sim.run_for(Duration::from_secs(1));
    let before = sim.node(0).stats().forwarded;
    for _ in 0..10 {
        sim.leave(1);
        sim.run_for(Duration::from_millis(200));
        sim.join(1);
        sim.run_for(Duration::from_millis(800));
    }
    let drawn = sim.node(0).stats().forwarded - before;
    // One catch-up is at most 256 packets (here the 64 latest of node 0's 100).
    assert!(drawn <= 64, "ten rejoins drew {drawn} packets");
}
