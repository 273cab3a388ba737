//! A member gives a packet up only when nobody can repair it any more (PROTOCOL.md 6.3):
//! while its source is alive it keeps asking, however long the network is bad.

mod signed;
mod sim;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lobbycast::proto::ids::MsgId;
use lobbycast::proto::wire::{Body, Data, Packet};
use lobbycast::proto::{Config, Event, Lobby, Node, Path};
use sim::{NetConfig, Sim, node_config};

const NOW_MS: u64 = 1_800_000_000_000;

/// 20 s of 80 % loss: a request and its repair both get through one round in 25, so the
/// old limit of 12 rounds gave most packets up. The source stays alive (its
/// sessions get through now and then), so nothing is given up, and once the network is good
/// again every message arrives.
#[test]
fn a_long_bad_spell_loses_nothing_while_the_source_is_alive() {
    let net = NetConfig {
        loss: 0.8,
        ..NetConfig::default()
    };
    let mut sim = Sim::new(3, 11, net.clone(), node_config(&net));
    sim.run_for(Duration::from_millis(300));
    for k in 0..40 {
        sim.send(0, &format!("through the storm {k}"));
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(20));
    let during = sim.total_stats();
    assert!(during.requests_sent > 100, "the bad spell made members ask");
    sim.net.loss = 0.0;
    assert!(
        sim.run_until_delivered(Duration::from_secs(10)),
        "{}",
        sim.missing_report()
    );
    sim.assert_exactly_once();
    assert_eq!(sim.total_stats().lost, 0, "nothing was given up");
}

/// A source that is gone (not heard for the peer timeout) can no longer repair: after 12 more
/// rounds its missing packet is given up and reported, rather than asked for forever; before
/// that, nothing is given up however many rounds went unanswered.
#[test]
fn a_gap_of_a_source_that_is_gone_is_given_up_after_the_peer_timeout() {
    let start = Instant::now();
    let lobby = Lobby::new("gone").unwrap();
    let cfg = Config::default();
    let mut n = Node::new(cfg.clone(), signed::key(1), "me", start, NOW_MS, 3).unwrap();
    n.join(start, &lobby, 0);
    let from: SocketAddr = "10.0.0.9:47110".parse().unwrap();
    for seq in [0, 2] {
        let p = Packet {
            lobby: lobby.id,
            body: Body::Data(Data {
                source: signed::id(9),
                seq,
                msg_id: MsgId(100 + seq),
                sent_at: NOW_MS,
                nick: "gone".into(),
                frag_index: 0,
                frag_count: 1,
                body: b"x".to_vec(),
            }),
        };
        let datagram = signed::bundle(&signed::key(9), lobby.id, &[p]);
        n.handle_datagram(start, Path::Multicast(from), &datagram);
    }
    let lost_by = |n: &mut Node, until: Instant| -> u64 {
        let mut lost = 0;
        loop {
            while n.poll_transmit().is_some() {}
            while let Some(e) = n.poll_event() {
                if let Event::Lost { count, .. } = e {
                    lost += count;
                }
            }
            match n.poll_timeout() {
                Some(t) if t <= until => n.handle_timeout(t),
                _ => return lost,
            }
        }
    };
    let alive_until = start + cfg.peer_timeout - Duration::from_secs(1);
    assert_eq!(
        lost_by(&mut n, alive_until),
        0,
        "asked for while the source may be alive"
    );
    assert!(
        n.stats().requests_sent > 12,
        "more rounds than the old limit"
    );
    let lost = lost_by(&mut n, start + cfg.peer_timeout + Duration::from_secs(60));
    assert_eq!(lost, 1, "seq 1 is given up once its source is gone");
}
