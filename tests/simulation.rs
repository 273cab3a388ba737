//! Many nodes over a simulated lossy network: every message is delivered exactly once.

mod sim;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lobbycast::proto::{Config, Event, Lobby, Node, Path, PeerId, SigningKey};
use sim::{NetConfig, Sim, chat, lossy, node_config};

#[test]
fn two_nodes_without_loss() {
    let net = NetConfig::default();
    let mut sim = Sim::new(2, 1, net.clone(), node_config(&net));
    sim.run_for(Duration::from_millis(200));
    sim.send(0, "hello");
    sim.send(1, "hi there");
    assert!(sim.run_until_delivered(Duration::from_secs(1)));
    sim.assert_exactly_once();
    let s = sim.total_stats();
    assert_eq!(s.requests_sent, 0, "no loss, so nothing to ask for");
    assert_eq!(s.repairs_sent, 0);
}

#[test]
fn twenty_nodes_ten_percent_loss() {
    let net = lossy(0.10);
    let mut sim = Sim::new(20, 2, net.clone(), node_config(&net));
    sim.run_for(Duration::from_millis(300));
    chat(&mut sim, 5, Duration::from_millis(2));
    assert!(
        sim.run_until_delivered(Duration::from_secs(10)),
        "{}\n{:?}",
        sim.missing_report(),
        sim.total_stats()
    );
    sim.assert_exactly_once();
    let s = sim.total_stats();
    assert!(s.gaps_detected > 0, "10 % loss must have caused gaps");
    assert_eq!(s.recovered, s.gaps_detected, "every gap found was filled");
    assert_eq!(s.lost, 0);
}

#[test]
fn fifty_nodes_twenty_percent_loss_with_reordering_and_duplicates() {
    let net = NetConfig {
        duplicate: 0.05,
        jitter: Duration::from_millis(2),
        ..lossy(0.20)
    };
    let mut sim = Sim::new(50, 3, net.clone(), node_config(&net));
    sim.run_for(Duration::from_millis(300));
    chat(&mut sim, 2, Duration::from_millis(1));
    assert!(sim.run_until_delivered(Duration::from_secs(20)));
    sim.assert_exactly_once();
    assert!(sim.total_stats().duplicate_packets > 0);
}

#[test]
fn a_lost_last_message_is_recovered_by_the_tail_sessions() {
    // Only node 0 talks, once: a node that misses it has no later data to reveal the gap, so
    // the sessions that follow the burst must, long before a periodic session would.
    let mut lost = 0;
    for seed in 0..20 {
        let net = lossy(0.10);
        let cfg = node_config(&net);
        let session = cfg.session_interval;
        let mut sim = Sim::new(10, seed, net, cfg);
        sim.run_for(Duration::from_millis(300));
        sim.send(0, "the only message");
        lost += sim.traffic.lost_packets;
        assert!(
            sim.run_until_delivered(session / 4),
            "seed {seed}: {}",
            sim.missing_report()
        );
        sim.assert_exactly_once();
    }
    assert!(lost > 0, "the message must have been lost somewhere");
}

#[test]
fn large_messages_reassemble_under_loss() {
    let net = lossy(0.10);
    let mut sim = Sim::new(8, 5, net.clone(), node_config(&net));
    sim.run_for(Duration::from_millis(300));
    let big: String = (0..60_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    sim.send(0, &big);
    sim.send(3, &format!("{big}é"));
    assert!(
        sim.run_until_delivered(Duration::from_secs(10)),
        "{}\n{:?}",
        sim.missing_report(),
        sim.total_stats()
    );
    sim.assert_exactly_once();
    assert_eq!(sim.node(1).reassembly_load(), (0, 0));
}

#[test]
fn partitions_heal_and_both_sides_catch_up() {
    let net = lossy(0.05);
    let mut sim = Sim::new(10, 6, net.clone(), node_config(&net));
    sim.run_for(Duration::from_millis(300));
    sim.partition((0..10).map(|i| (i % 2) as u32).collect());
    chat(&mut sim, 3, Duration::from_millis(5));
    sim.run_for(Duration::from_millis(500));
    assert!(sim.traffic.partitioned > 0);
    sim.heal();
    assert!(sim.run_until_delivered(Duration::from_secs(15)));
    sim.assert_exactly_once();
}

#[test]
fn a_late_joiner_gets_the_recent_backlog() {
    let net = lossy(0.05);
    let cfg = node_config(&net);
    let backlog = cfg.backlog as usize;
    let mut sim = Sim::with_joined(4, 7, net, cfg, 3);
    sim.run_for(Duration::from_millis(300));
    let n = backlog + 10;
    for k in 0..n {
        sim.send(0, &format!("early {k}"));
        sim.run_for(Duration::from_millis(1));
    }
    sim.run_for(Duration::from_millis(200));
    sim.join(3);
    sim.run_for(Duration::from_secs(5));
    let got: Vec<&str> = sim.messages(3).iter().map(|m| m.text.as_str()).collect();
    let want: Vec<String> = (n - backlog..n).map(|k| format!("early {k}")).collect();
    assert_eq!(got, want, "exactly the last {backlog} messages, in order");
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let net = lossy(0.15);
        let mut sim = Sim::new(12, seed, net.clone(), node_config(&net));
        sim.run_for(Duration::from_millis(300));
        chat(&mut sim, 3, Duration::from_millis(1));
        sim.run_until_delivered(Duration::from_secs(10));
        (sim.total_stats(), sim.traffic.datagrams)
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}

#[test]
fn per_source_order_is_kept_and_gaps_are_held_back() {
    let net = lossy(0.20);
    let mut sim = Sim::new(6, 11, net.clone(), node_config(&net));
    sim.run_for(Duration::from_millis(300));
    for k in 0..40 {
        sim.send(0, &format!("{k}"));
        sim.run_for(Duration::from_micros(200));
    }
    assert!(
        sim.run_until_delivered(Duration::from_secs(10)),
        "{}\n{:?}",
        sim.missing_report(),
        sim.total_stats()
    );
    sim.assert_exactly_once();
    for i in 1..6 {
        let seqs: Vec<u64> = sim.messages(i).iter().map(|m| m.seq).collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(
            seqs, sorted,
            "node {i} showed node 0's messages out of order"
        );
        assert!(sim.messages(i).iter().all(|m| !m.late));
    }
}

/// Three cores wired to each other by hand, with no delay and no loss, that keep every event:
/// the simulator keeps only delivered messages, and membership is told by events.
struct Wired {
    nodes: Vec<Node>,
    running: Vec<bool>,
    /// Every event of each node, with the virtual time it came at.
    events: Vec<Vec<(Instant, Event)>>,
    now: Instant,
}

impl Wired {
    fn new(n: usize, lobby: &Lobby, cfg: &Config) -> Wired {
        let now = Instant::now();
        let nodes = (0..n)
            .map(|i| {
                let mut node = Node::new(
                    cfg.clone(),
                    SigningKey::from_bytes(&[i as u8 + 1; 32]),
                    &format!("n{i}"),
                    now,
                    1_800_000_000_000,
                    i as u64,
                )
                .unwrap();
                node.join(now, lobby, 0);
                node
            })
            .collect();
        Wired {
            nodes,
            running: vec![true; n],
            events: vec![Vec::new(); n],
            now,
        }
    }

    /// Hands every datagram to every other running node at once, until none is left.
    fn exchange(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                if !self.running[i] {
                    continue;
                }
                while let Some(t) = self.nodes[i].poll_transmit() {
                    moved = true;
                    let from = SocketAddr::from(([10, 0, 0, i as u8 + 1], 47110));
                    for j in 0..self.nodes.len() {
                        if j != i && self.running[j] {
                            self.nodes[j].handle_datagram(
                                self.now,
                                Path::Multicast(from),
                                &t.payload,
                            );
                        }
                    }
                }
                while let Some(e) = self.nodes[i].poll_event() {
                    self.events[i].push((self.now, e));
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs the running nodes' timers until `d` from now.
    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            self.exchange();
            let next = (0..self.nodes.len())
                .filter(|&i| self.running[i])
                .filter_map(|i| self.nodes[i].poll_timeout())
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for i in 0..self.nodes.len() {
                        if self.running[i]
                            && self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now)
                        {
                            self.nodes[i].handle_timeout(self.now);
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = until;
    }

    /// The times node `i` reported `ev`.
    fn times_of(&self, i: usize, ev: &Event) -> Vec<Instant> {
        self.events[i]
            .iter()
            .filter(|(_, e)| e == ev)
            .map(|(at, _)| *at)
            .collect()
    }
}

#[test]
fn members_are_announced() {
    let net = NetConfig::default();
    let cfg = node_config(&net);
    let lobby = Lobby::new("sim").unwrap();
    let mut w = Wired::new(3, &lobby, &cfg);
    w.run_for(Duration::from_secs(3));
    let ids: Vec<PeerId> = w.nodes.iter().map(Node::peer_id).collect();
    let id = |i: usize| ids[i];
    // Each node announced each other node once, by its nick, and lists it as a member.
    for i in 0..3 {
        let others: Vec<usize> = (0..3).filter(|&j| j != i).collect();
        for &j in &others {
            let joined = Event::PeerJoined {
                lobby: lobby.id,
                peer: id(j),
                nick: format!("n{j}"),
            };
            assert_eq!(
                w.times_of(i, &joined).len(),
                1,
                "node {i} announces n{j} once"
            );
        }
        let members = w.nodes[i].members(lobby.id);
        let mut want: Vec<(PeerId, String)> =
            others.iter().map(|&j| (id(j), format!("n{j}"))).collect();
        want.sort();
        assert_eq!(members, want, "node {i}'s members");
    }

    // Node 1 stops without a word: the others report it gone once the peer timeout has
    // passed since they last heard it (one session interval before the stop, at most 1.5),
    // and at the next housekeeping (every second).
    let stopped = w.now;
    w.running[1] = false;
    w.run_for(cfg.peer_timeout + cfg.session_interval * 3);
    let left = |j: usize| Event::PeerLeft {
        lobby: lobby.id,
        peer: id(j),
    };
    for i in [0, 2] {
        let at = w.times_of(i, &left(1));
        assert_eq!(
            at.len(),
            1,
            "node {i} reports n1 gone once: {:?}",
            w.events[i]
        );
        let after = at[0] - stopped;
        assert!(
            after >= cfg.peer_timeout - cfg.session_interval * 2
                && after <= cfg.peer_timeout + cfg.session_interval * 2,
            "node {i} reported n1 gone {after:?} after it stopped"
        );
        let still = if i == 0 { 2 } else { 0 };
        assert!(
            w.times_of(i, &left(still)).is_empty(),
            "n{still} is still there"
        );
        assert_eq!(
            w.nodes[i].members(lobby.id),
            vec![(id(still), format!("n{still}"))],
            "node {i}'s members after n1 stopped"
        );
    }
}

#[test]
fn a_source_that_restarts_far_ahead_is_heard_at_once_without_a_request_storm() {
    // A node that crashed and lost track of its numbering restarts well above it: the
    // numbers in between were never sent, so nobody may ask for them or wait on them.
    let net = NetConfig::default();
    let cfg = node_config(&net);
    let hold_back = cfg.hold_back;
    let mut sim = Sim::new(4, 13, net, cfg);
    sim.run_for(Duration::from_millis(300));
    sim.send(0, "before the crash");
    assert!(sim.run_until_delivered(Duration::from_secs(1)));
    sim.restart(0, 1 << 16);
    let before = sim.total_stats();
    sim.send(0, "after the restart");
    assert!(
        sim.run_until_delivered(hold_back / 4),
        "delivered without waiting on the jump: {}",
        sim.missing_report()
    );
    sim.run_for(Duration::from_secs(5));
    let after = sim.total_stats();
    assert_eq!(after.requests_sent - before.requests_sent, 0, "{after:?}");
    sim.assert_exactly_once();
}

#[test]
fn a_long_gap_is_asked_for_in_few_requests() {
    // One node misses a long burst (a partition); its requests stay batched into ranges,
    // round after round, instead of one request per packet.
    let net = lossy(0.0);
    let mut sim = Sim::new(3, 14, net.clone(), node_config(&net));
    sim.run_for(Duration::from_millis(300));
    sim.partition(vec![0, 0, 1]);
    for k in 0..500 {
        sim.send(0, &format!("burst {k}"));
    }
    sim.run_for(Duration::from_millis(50));
    sim.heal();
    let before = sim.total_stats();
    assert!(
        sim.run_until_delivered(Duration::from_secs(20)),
        "{}",
        sim.missing_report()
    );
    sim.assert_exactly_once();
    // Batched: a request names several seqs (up to 16), not one each; and each lost seq is
    // asked for about once, not round after round. (Unsigned members asked for this gap in
    // 67 requests; members of revision 1.3 ask in more, smaller requests, each seq still
    // about once: 132 requests naming 567 seqs at this seed, 70 to 136 over seeds 1 to 12.)
    let s = sim.total_stats();
    let requests = s.requests_sent - before.requests_sent;
    let named = s.request_seqs - before.request_seqs;
    assert!(
        requests * 3 <= 500 && named <= 2 * 500,
        "{requests} requests naming {named} seqs for one 500-packet gap: {s:?}"
    );
}

/// Fifty writers with long-running numbering (five-byte seqs): a session that listed every
/// one of them in `heard` and `acked` took more than a datagram. Sessions are cut to what fits
/// a datagram inside a bundle (PROTOCOL.md 4.12), the simulator refuses any larger datagram,
/// and every member still hears every message.
#[test]
fn sessions_of_a_lobby_of_fifty_writers_fit_a_datagram() {
    let net = lossy(0.05);
    let mut sim = Sim::new(50, 15, net.clone(), node_config(&net));
    sim.run_for(Duration::from_millis(100));
    for i in 0..50 {
        sim.restart(i, 1 << 30);
    }
    sim.run_for(Duration::from_millis(300));
    chat(&mut sim, 2, Duration::from_millis(1));
    assert!(
        sim.run_until_delivered(Duration::from_secs(20)),
        "{}",
        sim.missing_report()
    );
    // Long enough for every member's periodic sessions, listing all fifty, to go out.
    sim.run_for(Duration::from_secs(3));
    sim.assert_exactly_once();
}
