//! Friend links (PROTOCOL.md 7.1) between nodes joined by an in-memory unicast network:
//! the hello handshake confirms a link in one round trip, keep-alives hold it, silence takes it
//! down, and strangers' datagrams draw nothing.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lobbycast::proto::{Config, Dest, Event, FriendError, Node, Path, SigningKey};

const NOW_MS: u64 = 1_800_000_000_000;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 47000))
}

/// Nodes at `addr(i)`, unicast only, with a switch to cut a node off.
struct Net {
    nodes: Vec<Node>,
    cut: Vec<bool>,
    now: Instant,
    events: Vec<Vec<Event>>,
    /// Datagrams in flight: (to, from, payload).
    wire: VecDeque<(usize, SocketAddr, Vec<u8>)>,
}

impl Net {
    fn new(n: usize) -> Self {
        let now = Instant::now();
        let nodes = (0..n)
            .map(|i| {
                let name = format!("n{i}");
                Node::new(
                    Config::default(),
                    SigningKey::from_bytes(&[100 + i as u8; 32]),
                    &name,
                    now,
                    NOW_MS,
                    i as u64,
                )
                .unwrap()
            })
            .collect();
        Net {
            nodes,
            cut: vec![false; n],
            now,
            events: vec![Vec::new(); n],
            wire: VecDeque::new(),
        }
    }

    fn befriend(&mut self, a: usize, b: usize) {
        let now = self.now;
        self.nodes[a].add_friend(now, addr(b)).unwrap();
        self.nodes[b].add_friend(now, addr(a)).unwrap();
        self.drain();
    }

    /// Moves every datagram (instantly) and event until nothing moves.
    fn drain(&mut self) {
        loop {
            for i in 0..self.nodes.len() {
                while let Some(t) = self.nodes[i].poll_transmit() {
                    let Dest::Peer(to) = t.dest else {
                        continue;
                    };
                    if let Some(j) = (0..self.nodes.len()).find(|&j| addr(j) == to) {
                        self.wire.push_back((j, addr(i), t.payload));
                    }
                }
                while let Some(e) = self.nodes[i].poll_event() {
                    self.events[i].push(e);
                }
            }
            let Some((to, from, payload)) = self.wire.pop_front() else {
                return;
            };
            let from_i = (0..self.nodes.len()).find(|&j| addr(j) == from).unwrap();
            if !self.cut[to] && !self.cut[from_i] {
                self.nodes[to].handle_datagram(self.now, Path::Unicast(from), &payload);
            }
        }
    }

    /// Advances virtual time to `until`, running every timer on the way.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next = self
                .nodes
                .iter_mut()
                .filter_map(|n| n.poll_timeout())
                .min()
                .filter(|&t| t <= until);
            let Some(t) = next else {
                self.now = until;
                return;
            };
            self.now = t.max(self.now);
            for n in &mut self.nodes {
                if n.poll_timeout().is_some_and(|d| d <= self.now) {
                    n.handle_timeout(self.now);
                }
            }
            self.drain();
        }
    }

    fn ups(&self, i: usize) -> usize {
        self.events[i]
            .iter()
            .filter(|e| matches!(e, Event::FriendUp { .. }))
            .count()
    }

    fn downs(&self, i: usize) -> usize {
        self.events[i]
            .iter()
            .filter(|e| matches!(e, Event::FriendDown { .. }))
            .count()
    }
}

#[test]
fn a_link_comes_up_in_one_round_trip_and_names_the_friend() {
    let mut net = Net::new(2);
    let now = net.now;
    net.nodes[0].add_friend(now, addr(1)).unwrap();
    net.drain();
    // Node 1 does not know node 0 yet: its hello is refused and draws nothing.
    assert_eq!(net.nodes[1].stats().unicast_refused, 1);
    assert!(net.events[0].is_empty() && net.events[1].is_empty());
    net.nodes[1].add_friend(now, addr(0)).unwrap();
    net.drain();
    for (i, other) in [(0, 1), (1, 0)] {
        assert_eq!(
            net.events[i],
            vec![Event::FriendUp {
                addr: addr(other),
                peer: net.nodes[other].peer_id(),
                nick: format!("n{other}"),
            }],
            "node {i}"
        );
        let info = net.nodes[i].friends();
        assert_eq!(info.len(), 1);
        assert!(info[0].up);
        assert!(info[0].rtt.is_some(), "the echo measured the round trip");
    }
    // Handshake: 0 says hello (refused), 1 says hello, 0 answers with an echo, 1 is up and
    // answers with an echo, 0 is up (and answers once more, not knowing 1 is up).
    let sent: u64 = net.nodes.iter().map(|n| n.stats().hellos_sent).sum();
    assert!(sent <= 5, "{sent} hellos for one handshake");
}

#[test]
fn keep_alives_hold_a_link_and_silence_takes_it_down_then_up_again() {
    let mut net = Net::new(2);
    net.befriend(0, 1);
    assert_eq!((net.ups(0), net.ups(1)), (1, 1));
    let cfg = Config::default();
    // A minute of keep-alives: the link stays up, at about one hello per interval each.
    let start = net.now;
    let handshake = net.nodes[0].stats().hellos_sent;
    net.run_until(start + Duration::from_secs(60));
    assert_eq!((net.downs(0), net.downs(1)), (0, 0));
    let hellos = net.nodes[0].stats().hellos_sent - handshake;
    let per_interval = 60 / cfg.hello_interval.as_secs();
    assert!(
        (per_interval - 1..=per_interval + 2).contains(&hellos),
        "{hellos} hellos in 60 s"
    );
    // Node 1 falls silent: node 0 takes the link down within the link timeout plus the
    // housekeeping granularity (1 s), and not before the timeout.
    net.cut[1] = true;
    let silent = net.now;
    net.run_until(silent + cfg.link_timeout - Duration::from_secs(6));
    assert_eq!(net.downs(0), 0, "down before the link timeout");
    net.run_until(silent + cfg.link_timeout + Duration::from_secs(2));
    assert_eq!(net.downs(0), 1);
    assert!(!net.nodes[0].friends()[0].up);
    // It comes back: up again within a hello interval.
    net.cut[1] = false;
    let back = net.now;
    net.run_until(back + cfg.hello_interval + Duration::from_secs(1));
    assert_eq!(net.ups(0), 2);
    assert!(net.nodes[0].friends()[0].up);
}

#[test]
fn strangers_datagrams_are_refused_and_draw_nothing() {
    let mut net = Net::new(3);
    net.befriend(0, 1);
    let before = net.nodes[0].stats();
    // Node 2 is nobody's friend; a copy of node 1's hello from its address draws nothing.
    let now = net.now;
    net.nodes[2].add_friend(now, addr(0)).unwrap();
    net.drain();
    let after = net.nodes[0].stats();
    assert_eq!(after.unicast_refused, before.unicast_refused + 1);
    assert_eq!(after.datagrams_out, before.datagrams_out);
    assert_eq!(net.ups(0), 1);
}

#[test]
fn bad_friend_addresses_are_refused_with_a_reason() {
    let mut net = Net::new(1);
    let now = net.now;
    let n = &mut net.nodes[0];
    for bad in ["0.0.0.0:4000", "10.0.0.1:0", "239.1.2.3:4000"] {
        let a: SocketAddr = bad.parse().unwrap();
        assert_eq!(n.add_friend(now, a), Err(FriendError::BadAddress(a)));
    }
    n.add_friend(now, addr(1)).unwrap();
    assert_eq!(
        n.add_friend(now, addr(1)),
        Err(FriendError::Duplicate(addr(1)))
    );
    for i in 2..=64 {
        n.add_friend(now, addr(i)).unwrap();
    }
    assert_eq!(n.add_friend(now, addr(65)), Err(FriendError::Full));
}
