//! A deterministic network simulator for lobbycast nodes: virtual time, one multicast group,
//! seeded per-receiver loss, delay, jitter (hence reordering), duplication and partitions.
//!
//! Used by tests/simulation.rs (correctness) and benches/srm.rs (the metrics table).
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use lobbycast::proto::wire::{self, Body, Decoded};
use lobbycast::proto::{Config, Event, Lobby, Message, MsgId, Node, PeerId, Stats};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// How the simulated network behaves.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Probability that a datagram is lost on its way to one receiver, independently.
    pub loss: f64,
    /// One-way delay between any two nodes.
    pub delay: Duration,
    /// Extra delay uniform in [0, jitter], per datagram and receiver: reorders packets.
    pub jitter: Duration,
    /// Probability that a delivered datagram arrives a second time.
    pub duplicate: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            loss: 0.0,
            delay: Duration::from_millis(1),
            jitter: Duration::ZERO,
            duplicate: 0.0,
        }
    }
}

/// The core configuration the simulator uses: the LAN defaults with the timer floor and
/// default distance at the simulated one-way delay, so distances are measured in its units.
pub fn node_config(net: &NetConfig) -> Config {
    Config {
        timer_floor: net.delay,
        default_distance: net.delay,
        ..Config::default()
    }
}

/// Counts of what crossed the simulated network.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    /// Datagrams sent by all nodes.
    pub datagrams: u64,
    /// Of which carried at least one original data packet.
    pub data_datagrams: u64,
    /// (datagram, receiver) pairs dropped by random loss.
    pub dropped: u64,
    /// (data packet, receiver) pairs dropped by random loss: each is one receiver's loss.
    pub receiver_losses: u64,
    /// Distinct original data packets that at least one receiver lost.
    pub lost_packets: u64,
    /// Datagrams dropped by a partition.
    pub partitioned: u64,
}

struct SimNode {
    node: Node,
    addr: SocketAddr,
    delivered: HashMap<MsgId, u32>,
    messages: Vec<Message>,
    joined: bool,
    deadline: Option<Instant>,
}

struct InFlight {
    at: Instant,
    order: u64,
    to: usize,
    from: SocketAddr,
    payload: Rc<Vec<u8>>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(o.at, o.order))
    }
}

/// N nodes in one lobby over a simulated lossy multicast network.
pub struct Sim {
    pub net: NetConfig,
    pub lobby: Lobby,
    start: Instant,
    now: Instant,
    nodes: Vec<SimNode>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    rng: SmallRng,
    order: u64,
    /// Partition group of each node; datagrams cross only within a group.
    groups: Vec<u32>,
    /// Original data packets (source, seq) that some receiver lost.
    lost_set: HashSet<(PeerId, u64)>,
    pub traffic: Traffic,
    /// Every message sent, by id: (sender index, text).
    pub sent: HashMap<MsgId, (usize, String)>,
}

impl Sim {
    /// `n` nodes, all joined to one lobby at time zero, with `cfg` as their core config.
    pub fn new(n: usize, seed: u64, net: NetConfig, cfg: Config) -> Self {
        Self::with_joined(n, seed, net, cfg, n)
    }

    /// `n` nodes of which the first `joined` are in the lobby from the start.
    pub fn with_joined(n: usize, seed: u64, net: NetConfig, cfg: Config, joined: usize) -> Self {
        let start = Instant::now();
        let lobby = Lobby::new("sim").unwrap();
        let mut rng = SmallRng::seed_from_u64(seed);
        let nodes = (0..n)
            .map(|i| {
                let me = PeerId(rng.random());
                let node = Node::new(
                    cfg.clone(),
                    me,
                    &format!("n{i}"),
                    start,
                    1_800_000_000_000,
                    rng.random(),
                )
                .unwrap();
                SimNode {
                    node,
                    addr: SocketAddr::from((Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8), 47110)),
                    delivered: HashMap::new(),
                    messages: Vec::new(),
                    joined: false,
                    deadline: None,
                }
            })
            .collect();
        let mut sim = Sim {
            net,
            lobby,
            start,
            now: start,
            nodes,
            in_flight: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            rng,
            order: 0,
            groups: vec![0; n],
            lost_set: HashSet::new(),
            traffic: Traffic::default(),
            sent: HashMap::new(),
        };
        for i in 0..joined {
            sim.join(i);
        }
        sim
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i].node
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i].node
    }

    /// Node `i` joins the lobby now.
    pub fn join(&mut self, i: usize) {
        let lobby = self.lobby.clone();
        self.nodes[i].node.join(self.now, &lobby, 0);
        self.nodes[i].joined = true;
        self.after_input(i);
    }

    /// Node `i` sends `text` now.
    pub fn send(&mut self, i: usize, text: &str) -> MsgId {
        let id = self.lobby.id;
        let msg = self.nodes[i].node.send(self.now, id, text).unwrap();
        self.sent.insert(msg.msg_id, (i, text.to_owned()));
        self.after_input(i);
        msg.msg_id
    }

    /// Splits the nodes into partition groups (`groups[i]` for node i).
    pub fn partition(&mut self, groups: Vec<u32>) {
        assert_eq!(groups.len(), self.nodes.len());
        self.groups = groups;
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        self.groups = vec![0; self.nodes.len()];
    }

    /// Drains a node's outputs after an input, and notes its next deadline.
    fn after_input(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].node.poll_transmit() {
            self.transmit(i, t.payload);
        }
        while let Some(e) = self.nodes[i].node.poll_event() {
            if let Event::Message(m) = e {
                *self.nodes[i].delivered.entry(m.msg_id).or_default() += 1;
                self.nodes[i].messages.push(m);
            }
        }
        let d = self.nodes[i].node.poll_timeout();
        if d != self.nodes[i].deadline {
            self.nodes[i].deadline = d;
            if let Some(d) = d {
                self.timers.push(Reverse((d, i)));
            }
        }
    }

    fn transmit(&mut self, from: usize, payload: Vec<u8>) {
        self.traffic.datagrams += 1;
        let data: Vec<(PeerId, u64)> = wire::decode_datagram(&payload)
            .filter_map(|p| match p {
                Ok(Decoded::Packet(p)) => match p.body {
                    Body::Data(d) => Some((d.source, d.seq)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        if !data.is_empty() {
            self.traffic.data_datagrams += 1;
        }
        let payload = Rc::new(payload);
        let from_addr = self.nodes[from].addr;
        for to in 0..self.nodes.len() {
            if to == from || !self.nodes[to].joined {
                continue;
            }
            if self.groups[to] != self.groups[from] {
                self.traffic.partitioned += 1;
                continue;
            }
            if self.rng.random_bool(self.net.loss) {
                self.traffic.dropped += 1;
                self.traffic.receiver_losses += data.len() as u64;
                for key in &data {
                    if self.lost_set.insert(*key) {
                        self.traffic.lost_packets += 1;
                    }
                }
                continue;
            }
            let copies = if self.rng.random_bool(self.net.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let jitter = if self.net.jitter.is_zero() {
                    Duration::ZERO
                } else {
                    self.net.jitter.mul_f64(self.rng.random_range(0.0..1.0))
                };
                self.order += 1;
                self.in_flight.push(Reverse(InFlight {
                    at: self.now + self.net.delay + jitter,
                    order: self.order,
                    to,
                    from: from_addr,
                    payload: Rc::clone(&payload),
                }));
            }
        }
    }

    /// Runs the network and the nodes' timers until virtual time `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_packet = self.in_flight.peek().map(|Reverse(f)| f.at);
            let next_timer = loop {
                match self.timers.peek() {
                    Some(&Reverse((at, i))) if self.nodes[i].deadline != Some(at) => {
                        self.timers.pop();
                    }
                    Some(&Reverse((at, _))) => break Some(at),
                    None => break None,
                }
            };
            let next = match (next_packet, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(until),
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            if next_packet == Some(next) {
                let Reverse(f) = self.in_flight.pop().unwrap();
                self.nodes[f.to]
                    .node
                    .handle_datagram(self.now, f.from, &f.payload);
                self.after_input(f.to);
            } else {
                let Reverse((_, i)) = self.timers.pop().unwrap();
                self.nodes[i].deadline = None;
                self.nodes[i].node.handle_timeout(self.now);
                self.after_input(i);
            }
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until every joined node has delivered every message sent by another joined node,
    /// or until `limit` of virtual time has passed. True if everything was delivered.
    pub fn run_until_delivered(&mut self, limit: Duration) -> bool {
        let end = self.now + limit;
        let step = Duration::from_millis(5);
        while self.now < end {
            if self.all_delivered() {
                return true;
            }
            let until = (self.now + step).min(end);
            self.run_until(until);
        }
        self.all_delivered()
    }

    fn all_delivered(&self) -> bool {
        self.sent.iter().all(|(id, (from, _))| {
            self.nodes
                .iter()
                .enumerate()
                .all(|(i, n)| i == *from || !n.joined || n.delivered.contains_key(id))
        })
    }

    /// Panics unless every joined node delivered every other node's message exactly once,
    /// with the text that was sent.
    pub fn assert_exactly_once(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.joined {
                continue;
            }
            for (id, (from, _)) in &self.sent {
                if *from == i {
                    continue;
                }
                let count = n.delivered.get(id).copied().unwrap_or(0);
                assert_eq!(
                    count, 1,
                    "node {i} delivered {id} from node {from} {count} times"
                );
            }
            for m in &n.messages {
                let (_, text) = &self.sent[&m.msg_id];
                assert_eq!(
                    &m.text, text,
                    "node {i} got a corrupted message {}",
                    m.msg_id
                );
            }
            assert_eq!(n.messages.len(), n.delivered.values().sum::<u32>() as usize);
        }
    }

    /// Messages delivered by node `i`, in delivery order.
    pub fn messages(&self, i: usize) -> &[Message] {
        &self.nodes[i].messages
    }

    /// Sum of every node's counters.
    pub fn total_stats(&self) -> Stats {
        let mut t = Stats::default();
        for n in &self.nodes {
            let s = n.node.stats();
            macro_rules! add {
                ($($f:ident),*) => { $( t.$f += s.$f; )* };
            }
            add!(
                datagrams_in,
                packets_in,
                malformed,
                unknown_version,
                unsupported_kind,
                foreign_lobby,
                own_packets,
                duplicate_packets,
                duplicate_messages,
                too_old,
                bad_fragments,
                delivered,
                late,
                gaps_detected,
                recovered,
                lost,
                gaps_untracked,
                peers_refused,
                data_sent,
                sessions_sent,
                requests_sent,
                repairs_sent,
                requests_heard,
                repairs_heard,
                requests_suppressed,
                repairs_suppressed,
                datagrams_out,
                bytes_out,
                queue_overflow
            );
        }
        t
    }

    /// Turns on recovery-delay recording at every node.
    pub fn record_recovery(&mut self) {
        for n in &mut self.nodes {
            n.node.record_recovery_delays();
        }
    }

    /// Every node's recovery delays so far.
    pub fn recovery_delays(&mut self) -> Vec<Duration> {
        self.nodes
            .iter_mut()
            .flat_map(|n| n.node.take_recovery_delays())
            .collect()
    }
}

impl Sim {
    /// Which (receiver, message) deliveries are missing, for failure messages.
    pub fn missing_report(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.joined {
                continue;
            }
            for (id, (from, text)) in &self.sent {
                if *from != i && !n.delivered.contains_key(id) {
                    let t: String = text.chars().take(30).collect();
                    out += &format!("node {i} lacks {id} from {from}: {t:?}\n");
                }
            }
        }
        out
    }
}

impl Sim {
    /// Node `i` restarts: same peer id, fresh state, numbering from `first_seq`.
    pub fn restart(&mut self, i: usize, first_seq: u64) {
        let me = self.nodes[i].node.peer_id();
        let seed = self.rng.random();
        let cfg = self.nodes[i].node.config().clone();
        let mut node =
            Node::new(cfg, me, &format!("n{i}"), self.now, 1_800_000_000_000, seed).unwrap();
        let lobby = self.lobby.clone();
        node.join(self.now, &lobby, first_seq);
        self.nodes[i].node = node;
        self.nodes[i].deadline = None;
        self.after_input(i);
    }
}
