//! A deterministic network simulator for lobbycast nodes: virtual time, one multicast group,
//! seeded per-receiver loss, delay, jitter (hence reordering), duplication and partitions;
//! optionally links of finite bandwidth with drop-tail queues, nodes that die, and input
//! queued faster than the core takes it (see [`Sim::send_bulk`]).
//!
//! Used by tests/simulation.rs and tests/flow.rs (correctness) and benches/srm.rs (the
//! metrics table).
//!
//! # The path of a datagram
//!
//! A datagram a node sends enters that node's uplink once (multicast leaves the host once),
//! crosses the one-way delay and enters each receiver's downlink; random loss applies after
//! that, as it always did. A link of finite rate sends one datagram after another, each
//! taking its wire size (payload plus [`WIRE_OVERHEAD`]) over the rate; a datagram that finds
//! its queue too full to hold it is dropped (drop-tail) and counted in [`Traffic`].
//!
//! Jitter is added where the datagram meets no queue: before an unlimited downlink, after a
//! finite one (the receiving host's own delay). On a switched LAN the variable part of the
//! delay is queueing, which finite links model themselves; and a datagram then reaches every
//! finite downlink at one instant, which the simulator handles as one event, not one per
//! receiver (a congested lobby of 50 makes millions of such pairs).
//!
//! An unlimited link (the default) neither delays nor drops, and then the simulator behaves,
//! random draws included, exactly as it did before links existed.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use lobbycast::proto::fragment::piece_count;
use lobbycast::proto::private::LobbyKey;
use lobbycast::proto::wire::{self, Body, Decoded};
use lobbycast::proto::{
    Config, Dest, Event, Lobby, Message, MsgId, Node, Path, PeerId, SendError, SigningKey, Stats,
    signing,
};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// Bytes a datagram costs on a link beyond its UDP payload: UDP (8) and IPv4 (20) headers,
/// Ethernet header and FCS (18), preamble (8) and inter-frame gap (12). Counted only on links
/// of finite rate.
pub const WIRE_OVERHEAD: u64 = 66;

/// One direction of a node's attachment to the network: a rate and a drop-tail queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Bytes per second; `None` for unlimited (no queue, no delay, no drops).
    pub rate: Option<u64>,
    /// Most bytes the link holds, the datagram being sent included: a datagram that would
    /// take it past this is dropped.
    pub queue: u64,
}

impl Link {
    /// Infinite bandwidth: what every link is unless configured otherwise.
    pub const UNLIMITED: Link = Link {
        rate: None,
        queue: u64::MAX,
    };

    /// `mbit` megabits per second (10⁶ bits) with a queue of `queue` bytes.
    pub const fn mbit(mbit: u64, queue: u64) -> Link {
        Link {
            rate: Some(mbit * 125_000),
            queue,
        }
    }

    /// The same link at half the rate (the queue is unchanged).
    pub fn half_rate(self) -> Link {
        Link {
            rate: self.rate.map(|r| (r / 2).max(1)),
            ..self
        }
    }
}

impl Default for Link {
    fn default() -> Self {
        Link::UNLIMITED
    }
}

/// How the simulated network behaves.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Probability that a datagram is lost on its way to one receiver, independently.
    pub loss: f64,
    /// One-way delay between any two nodes.
    pub delay: Duration,
    /// Extra delay uniform in [0, jitter], per datagram and receiver: reorders packets. It
    /// comes before an unlimited downlink and after a finite one (see the module docs).
    pub jitter: Duration,
    /// Probability that a delivered datagram arrives a second time.
    pub duplicate: f64,
    /// Every node's uplink from the start, unless [`Sim::set_uplink`] overrides it.
    pub uplink: Link,
    /// Every node's downlink from the start, unless [`Sim::set_downlink`] overrides it.
    pub downlink: Link,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            loss: 0.0,
            delay: Duration::from_millis(1),
            jitter: Duration::ZERO,
            duplicate: 0.0,
            uplink: Link::UNLIMITED,
            downlink: Link::UNLIMITED,
        }
    }
}

/// The default network with `loss` of every datagram dropped at random and 0.3 ms of jitter.
pub fn lossy(loss: f64) -> NetConfig {
    NetConfig {
        loss,
        jitter: Duration::from_micros(300),
        ..NetConfig::default()
    }
}

/// Every node sends `per_node` messages, spaced `gap` apart, round robin.
pub fn chat(sim: &mut Sim, per_node: usize, gap: Duration) {
    for k in 0..per_node {
        for i in 0..sim.len() {
            sim.send(i, &format!("message {k} from node {i}"));
            sim.run_for(gap);
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
    /// Wire bytes (payload and [`WIRE_OVERHEAD`]) of the data datagrams that left an uplink.
    pub data_bytes: u64,
    /// (datagram, receiver) pairs dropped by random loss.
    pub dropped: u64,
    /// (data packet, receiver) pairs dropped by random loss: each is one receiver's loss.
    pub receiver_losses: u64,
    /// Distinct original data packets that at least one receiver lost to random loss.
    pub lost_packets: u64,
    /// Datagrams dropped by a partition.
    pub partitioned: u64,
    /// Of all datagrams, those sent by unicast to one friend.
    pub unicast_datagrams: u64,
    /// Of the data datagrams, those sent by unicast.
    pub unicast_data_datagrams: u64,
    /// Datagrams dropped because the sender's uplink queue was full.
    pub uplink_drops: u64,
    /// (datagram, receiver) pairs dropped because the receiver's downlink queue was full.
    pub downlink_drops: u64,
}

/// What one node did, for reports and assertions: see [`Sim::report`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// Killed with [`Sim::kill`].
    pub dead: bool,
    /// Messages this node sent (by [`Sim::send`] or from its bulk input).
    pub sent: u64,
    /// Bulk input not yet taken by the core.
    pub queued: usize,
    /// Times the core refused bulk input with `SendError::WindowFull`.
    pub window_full: u64,
    /// `Event::Writable` events.
    pub writable: u64,
    /// Distinct messages of others delivered.
    pub delivered: u64,
    /// Of which marked late.
    pub late: u64,
    /// `Event::Lost` events, and the packets they gave up.
    pub lost_events: u64,
    /// See `lost_events`.
    pub lost_packets: u64,
    /// Datagrams dropped by this node's uplink, and the most bytes it held.
    pub uplink_drops: u64,
    /// See `uplink_drops`.
    pub uplink_peak: u64,
    /// Datagrams dropped by this node's downlink, and the most bytes it held.
    pub downlink_drops: u64,
    /// See `downlink_drops`.
    pub downlink_peak: u64,
}

/// A link's state: when it is done sending what it holds.
struct Port {
    link: Link,
    busy_until: Instant,
    drops: u64,
    peak: u64,
}

impl Port {
    fn new(link: Link, now: Instant) -> Self {
        Port {
            link,
            busy_until: now,
            drops: 0,
            peak: 0,
        }
    }

    /// Offers a datagram of `bytes` wire bytes at `now` (never earlier than a previous
    /// offer): when its last byte has left, or `None` if it was dropped.
    fn offer(&mut self, now: Instant, bytes: u64) -> Option<Instant> {
        let Some(rate) = self.link.rate else {
            return Some(now);
        };
        // The bytes still to send are the time the link stays busy, times its rate.
        let backlog = match self.busy_until.checked_duration_since(now) {
            Some(d) => (d.as_nanos() * u128::from(rate)).div_ceil(1_000_000_000) as u64,
            None => 0,
        };
        if backlog + bytes > self.link.queue {
            self.drops += 1;
            return None;
        }
        self.peak = self.peak.max(backlog + bytes);
        let send = Duration::from_nanos((bytes * 1_000_000_000).div_ceil(rate));
        self.busy_until = self.busy_until.max(now) + send;
        Some(self.busy_until)
    }
}

struct SimNode {
    node: Node,
    /// The node's identity, kept across restarts.
    key: SigningKey,
    addr: SocketAddr,
    /// The multicast segment the node is on; `None`: multicast is blocked for it, both ways.
    segment: Option<u32>,
    joined: bool,
    dead: bool,
    deadline: Option<Instant>,
    uplink: Port,
    downlink: Port,
    /// Deliveries of each message of [`Sim::log`], by its index (saturating).
    got: Vec<u8>,
    /// Distinct messages delivered, per sender.
    got_from: Vec<u64>,
    /// Deliveries of an unknown message or of a text other than the one sent.
    corrupt: Vec<String>,
    /// Every message delivered, in order, unless [`Sim::keep_messages`] turned it off.
    messages: Vec<Message>,
    /// Indices in [`Sim::log`] of the messages this node sent.
    own: Vec<u32>,
    /// Input not yet taken by the core.
    bulk: VecDeque<String>,
    /// Events other than messages, lost packets and writability (members, friends), in order.
    events: Vec<Event>,
    report: NodeReport,
}

/// A message sent by some node.
struct Sent {
    id: MsgId,
    from: usize,
    seq: u64,
    frags: u64,
    text: String,
}

/// Hashes a message id, which is random already, with one multiplication: the simulator
/// looks one up for every delivery.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A datagram on its way: shared by all receivers.
struct Datagram {
    from: usize,
    /// Sent by unicast to one node (else to the lobby's group).
    unicast: bool,
    payload: Vec<u8>,
    /// Size on a link of finite rate.
    wire: u64,
    /// Original data packets in it, (source, seq), for the loss counters.
    data: Vec<(PeerId, u64)>,
    /// The receivers it reaches through finite downlinks.
    queued_to: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Reaches the downlinks of `queued_to` (one event for them all).
    Downlinks,
    /// Reaches the receiving node.
    Deliver,
}

struct InFlight {
    /// Nanoseconds since the start, then the order of sending: unique, so the heap pops in
    /// one order whatever its layout.
    key: u128,
    to: u32,
    stage: Stage,
    datagram: Rc<Datagram>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
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
        self.key.cmp(&o.key)
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
    /// Datagrams of each node still in the network (an uplink or on their way).
    in_flight_from: Vec<u64>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    rng: SmallRng,
    order: u64,
    /// Partition group of each node; datagrams cross only within a group.
    groups: Vec<u32>,
    /// Original data packets (source, seq) that some receiver lost.
    lost_set: HashSet<(PeerId, u64)>,
    /// Own data packets (source, seq) that entered their source's uplink: they left the node.
    left: HashSet<(PeerId, u64)>,
    /// Every message sent, in sending order.
    log: Vec<Sent>,
    /// Index in `log` by id.
    index: HashMap<MsgId, u32, BuildHasherDefault<IdHasher>>,
    /// Per message of `log`: live joined nodes that delivered it.
    holders: Vec<u32>,
    keep_messages: bool,
    pub traffic: Traffic,
    /// Every message sent, by id: (sender index, text).
    pub sent: HashMap<MsgId, (usize, String)>,
    /// The lobby key, when the lobby is private (PROTOCOL.md 2.4).
    key: Option<LobbyKey>,
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
                let key = SigningKey::from_bytes(&rng.random());
                let node = Node::new(
                    cfg.clone(),
                    key.clone(),
                    &format!("n{i}"),
                    start,
                    1_800_000_000_000,
                    rng.random(),
                )
                .unwrap();
                SimNode {
                    node,
                    key,
                    addr: SocketAddr::from((Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8), 47110)),
                    segment: Some(0),
                    joined: false,
                    dead: false,
                    deadline: None,
                    uplink: Port::new(net.uplink, start),
                    downlink: Port::new(net.downlink, start),
                    got: Vec::new(),
                    got_from: vec![0; n],
                    corrupt: Vec::new(),
                    messages: Vec::new(),
                    own: Vec::new(),
                    bulk: VecDeque::new(),
                    events: Vec::new(),
                    report: NodeReport::default(),
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
            in_flight_from: vec![0; n],
            timers: BinaryHeap::new(),
            rng,
            order: 0,
            groups: vec![0; n],
            lost_set: HashSet::new(),
            left: HashSet::new(),
            log: Vec::new(),
            index: HashMap::default(),
            holders: Vec::new(),
            keep_messages: true,
            traffic: Traffic::default(),
            sent: HashMap::new(),
            key: None,
        };
        for i in 0..joined {
            sim.join(i);
        }
        sim
    }

    /// `n` nodes, all joined at time zero to a private lobby of key `key` (PROTOCOL.md 2.4).
    pub fn private(n: usize, seed: u64, net: NetConfig, cfg: Config, key: LobbyKey) -> Self {
        let mut sim = Self::with_joined(n, seed, net, cfg, 0);
        sim.lobby = key.lobby(&sim.lobby);
        sim.key = Some(key);
        for i in 0..n {
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

    /// Whether delivered messages are kept for [`Sim::messages`] (the default). Large runs
    /// turn it off to save memory; delivery counts and text checks go on either way.
    pub fn keep_messages(&mut self, keep: bool) {
        self.keep_messages = keep;
    }

    /// Gives node `i` its own uplink (what its datagrams cross once, before any receiver).
    pub fn set_uplink(&mut self, i: usize, link: Link) {
        self.nodes[i].uplink.link = link;
    }

    /// Gives node `i` its own downlink (what every datagram to it crosses last).
    pub fn set_downlink(&mut self, i: usize, link: Link) {
        self.nodes[i].downlink.link = link;
    }

    /// Node `i` joins the lobby now.
    pub fn join(&mut self, i: usize) {
        assert!(!self.nodes[i].dead, "node {i} was killed");
        let lobby = self.lobby.clone();
        match &self.key {
            Some(key) => {
                let seed = self.rng.random();
                self.nodes[i]
                    .node
                    .join_private(self.now, &lobby, key.clone(), 0, seed);
            }
            None => self.nodes[i].node.join(self.now, &lobby, 0),
        }
        self.nodes[i].joined = true;
        self.after_input(i);
    }

    /// Node `i` sends `text` to node `to` as a direct message (PROTOCOL.md 4.15) now.
    pub fn send_direct(&mut self, i: usize, to: usize, text: &str) -> MsgId {
        let (now, peer) = (self.now, self.nodes[to].node.peer_id());
        let id = self.nodes[i]
            .node
            .send_direct(now, peer, text)
            .unwrap_or_else(|e| panic!("node {i} cannot write to node {to}: {e}"));
        self.after_input(i);
        id
    }

    /// Node `i` sends `text` now (ahead of any bulk input it has queued). Panics if the core
    /// refuses it, `SendError::WindowFull` included: input that may meet a full window goes
    /// through [`Sim::send_bulk`].
    pub fn send(&mut self, i: usize, text: &str) -> MsgId {
        assert!(!self.nodes[i].dead, "node {i} was killed");
        let id = self.lobby.id;
        let msg = match self.nodes[i].node.send(self.now, id, text) {
            Ok(msg) => msg,
            Err(e) => panic!("node {i} could not send: {e}"),
        };
        let msg_id = msg.msg_id;
        self.record_sent(i, &msg, text.to_owned());
        self.after_input(i);
        msg_id
    }

    /// Queues `texts` as node `i`'s input, to be sent as fast as the core takes them: now,
    /// and after every datagram or timer the node handles, each text is passed to
    /// `Node::send` in order until the core answers `SendError::WindowFull`; the refused
    /// text stays first in the queue and is offered again at the node's next step (an
    /// `Event::Writable` is such a step). Nothing is dropped; any other error panics.
    pub fn send_bulk<I>(&mut self, i: usize, texts: I)
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        assert!(!self.nodes[i].dead, "node {i} was killed");
        self.nodes[i].bulk.extend(texts.into_iter().map(Into::into));
        self.after_input(i);
    }

    /// Bulk input of node `i` not yet taken by its core.
    pub fn queued(&self, i: usize) -> usize {
        self.nodes[i].bulk.len()
    }

    /// Bulk input of all nodes not yet taken.
    pub fn queued_total(&self) -> usize {
        self.nodes.iter().map(|n| n.bulk.len()).sum()
    }

    /// Node `i` stops dead, as on SIGKILL: from now on it handles no datagram or timer and
    /// sends nothing; its queued input is dropped. Datagrams already in its uplink still
    /// leave (the kernel sends what it was given). It no longer counts as a receiver in
    /// [`Sim::assert_exactly_once`] and [`Sim::run_until_delivered`]; for the messages it
    /// sent, see [`Sim::assert_exactly_once`].
    pub fn kill(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if n.dead {
            return;
        }
        n.dead = true;
        n.report.dead = true;
        n.deadline = None;
        n.bulk.clear();
        if n.joined {
            for (k, &c) in n.got.iter().enumerate() {
                if c > 0 {
                    self.holders[k] -= 1;
                }
            }
        }
    }

    /// Whether node `i` was killed.
    pub fn is_dead(&self, i: usize) -> bool {
        self.nodes[i].dead
    }

    /// Messages node `i` sent so far.
    pub fn sent_count(&self, i: usize) -> u64 {
        self.nodes[i].report.sent
    }

    /// Distinct messages of others node `i` delivered so far.
    pub fn delivered_count(&self, i: usize) -> u64 {
        self.nodes[i].report.delivered
    }

    /// What node `i` did so far.
    pub fn report(&self, i: usize) -> NodeReport {
        let n = &self.nodes[i];
        NodeReport {
            queued: n.bulk.len(),
            uplink_drops: n.uplink.drops,
            uplink_peak: n.uplink.peak,
            downlink_drops: n.downlink.drops,
            downlink_peak: n.downlink.peak,
            ..n.report.clone()
        }
    }

    /// Splits the nodes into partition groups (`groups[i]` for node i).
    /// Puts node `i` on multicast segment `segment`, or (`None`) blocks multicast for it in
    /// both directions: group datagrams reach only nodes of the sender's segment.
    pub fn set_segment(&mut self, i: usize, segment: Option<u32>) {
        self.nodes[i].segment = segment;
    }

    /// Events of node `i` other than messages, losses and writability, in order.
    pub fn events(&self, i: usize) -> &[Event] {
        &self.nodes[i].events
    }

    /// Node `i` leaves the lobby (it stays in the network, and is no longer a receiver).
    pub fn leave(&mut self, i: usize) {
        let id = self.lobby.id;
        self.nodes[i].node.leave(id);
        self.nodes[i].joined = false;
        self.after_input(i);
    }

    /// Names the lobby to node `i`'s friends, or not (PROTOCOL.md 7.2).
    pub fn set_listed(&mut self, i: usize, listed: bool) {
        let (now, id) = (self.now, self.lobby.id);
        self.nodes[i].node.set_listed(now, id, listed);
        self.after_input(i);
    }

    /// Node `i` changes its nick.
    pub fn set_nick(&mut self, i: usize, nick: &str) {
        let now = self.now;
        self.nodes[i].node.set_nick(now, nick).unwrap();
        self.after_input(i);
    }

    /// Makes nodes `a` and `b` friends of each other (PROTOCOL.md 7.1).
    pub fn befriend(&mut self, a: usize, b: usize) {
        let now = self.now;
        for (x, y) in [(a, b), (b, a)] {
            let addr = self.nodes[y].addr;
            self.nodes[x].node.add_friend(now, addr).unwrap();
            self.after_input(x);
        }
    }

    pub fn partition(&mut self, groups: Vec<u32>) {
        assert_eq!(groups.len(), self.nodes.len());
        self.groups = groups;
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        self.groups = vec![0; self.nodes.len()];
    }

    fn record_sent(&mut self, i: usize, msg: &Message, text: String) {
        let k = self.log.len() as u32;
        let piece = self.nodes[i].node.piece_size(self.lobby.id);
        self.log.push(Sent {
            id: msg.msg_id,
            from: i,
            seq: msg.seq,
            frags: piece_count(text.len(), piece) as u64,
            text: text.clone(),
        });
        self.index.insert(msg.msg_id, k);
        self.holders.push(0);
        self.nodes[i].own.push(k);
        self.nodes[i].report.sent += 1;
        self.sent.insert(msg.msg_id, (i, text));
    }

    /// Gives node `i`'s core as much bulk input as it takes now.
    fn feed(&mut self, i: usize) -> bool {
        let mut took = false;
        let id = self.lobby.id;
        while let Some(text) = self.nodes[i].bulk.pop_front() {
            match self.nodes[i].node.send(self.now, id, &text) {
                Ok(msg) => {
                    took = true;
                    self.record_sent(i, &msg, text);
                }
                Err(SendError::WindowFull) => {
                    self.nodes[i].bulk.push_front(text);
                    self.nodes[i].report.window_full += 1;
                    break;
                }
                Err(e) => panic!("node {i} refused bulk input: {e}"),
            }
        }
        took
    }

    /// After an input: feeds queued input, drains the node's outputs, and notes its next
    /// deadline.
    fn after_input(&mut self, i: usize) {
        loop {
            let took = self.feed(i);
            while let Some(t) = self.nodes[i].node.poll_transmit() {
                self.transmit(i, t.dest, t.payload);
            }
            let mut writable = false;
            while let Some(e) = self.nodes[i].node.poll_event() {
                match e {
                    Event::Message(m) => self.delivered(i, m),
                    Event::Lost { count, .. } => {
                        self.nodes[i].report.lost_events += 1;
                        self.nodes[i].report.lost_packets += count;
                    }
                    Event::Writable { .. } => {
                        self.nodes[i].report.writable += 1;
                        writable = true;
                    }
                    other => self.nodes[i].events.push(other),
                }
            }
            // A Writable after input that made no progress waits for the next step, so that
            // a core announcing room it does not have cannot spin the simulator.
            if !(writable && took && !self.nodes[i].bulk.is_empty()) {
                break;
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

    /// Counts a delivery at node `i`, checking it against what was sent.
    fn delivered(&mut self, i: usize, m: Message) {
        let n = &mut self.nodes[i];
        match self.index.get(&m.msg_id) {
            None => n.corrupt.push(format!("unknown message {}", m.msg_id)),
            Some(&k) => {
                let k = k as usize;
                let Sent { from, text, .. } = &self.log[k];
                if *text != m.text {
                    n.corrupt.push(format!("corrupted message {}", m.msg_id));
                }
                if n.got.len() <= k {
                    n.got.resize(self.log.len(), 0);
                }
                n.got[k] = n.got[k].saturating_add(1);
                if n.got[k] == 1 {
                    n.got_from[*from] += 1;
                    n.report.delivered += 1;
                    self.holders[k] += 1;
                }
            }
        }
        n.report.late += u64::from(m.late);
        if self.keep_messages {
            n.messages.push(m);
        }
    }

    fn transmit(&mut self, from: usize, dest: Dest, payload: Vec<u8>) {
        assert!(
            payload.len() <= wire::MAX_DATAGRAM,
            "node {from} sent a datagram of {} bytes",
            payload.len()
        );
        self.traffic.datagrams += 1;
        let unicast = matches!(dest, Dest::Peer(_));
        if unicast {
            self.traffic.unicast_datagrams += 1;
        }
        let me = self.nodes[from].node.peer_id();
        let mut data = Vec::new();
        let mut own = Vec::new();
        // Data travels in its writers' signed bundles, sent as written or again as repairs;
        // in a private lobby, sealed in envelopes, and never in clear.
        let mut items: Vec<Decoded> = Vec::new();
        for item in wire::decode_datagram(&payload).flatten() {
            match (&item, &self.key) {
                (Decoded::Envelope(e), Some(k)) => {
                    let plain = k.open(e).expect("an envelope opens under the lobby's key");
                    items.extend(wire::decode_datagram(&plain).flatten());
                }
                (Decoded::Bundle(b), Some(_)) if b.lobby == self.lobby.id => {
                    panic!("node {from} sent a bundle of the private lobby in clear")
                }
                (Decoded::Packet(p), Some(_)) if p.lobby == self.lobby.id => {
                    panic!("node {from} sent a packet of the private lobby in clear")
                }
                _ => items.push(item),
            }
        }
        for item in items {
            let Decoded::Bundle(b) = item else {
                continue;
            };
            for p in signing::contents(&b).unwrap_or_default() {
                if let Body::Data(d) = p.body {
                    // Original data only: repairs are counted apart.
                    if b.repairer.is_none() {
                        data.push((d.source, d.seq));
                    }
                    if d.source == me {
                        own.push(d.seq);
                    }
                }
            }
        }
        if !data.is_empty() {
            self.traffic.data_datagrams += 1;
            if unicast {
                self.traffic.unicast_data_datagrams += 1;
            }
        }
        let wire = payload.len() as u64 + WIRE_OVERHEAD;
        let Some(departed) = self.nodes[from].uplink.offer(self.now, wire) else {
            self.traffic.uplink_drops += 1;
            return;
        };
        if !data.is_empty() {
            self.traffic.data_bytes += wire;
        }
        for seq in own {
            self.left.insert((me, seq));
        }
        let mut direct = Vec::new();
        let mut queued_to = Vec::new();
        for to in 0..self.nodes.len() {
            if to == from || self.nodes[to].dead {
                continue;
            }
            let reaches = match dest {
                Dest::Peer(addr) => self.nodes[to].addr == addr,
                Dest::Lobby(_) => {
                    self.nodes[to].joined
                        && self.nodes[from].segment.is_some()
                        && self.nodes[to].segment == self.nodes[from].segment
                }
                // Every node listens on the discovery group, joined to a lobby or not.
                Dest::Discovery => {
                    self.nodes[from].segment.is_some()
                        && self.nodes[to].segment == self.nodes[from].segment
                }
            };
            if !reaches {
                continue;
            }
            if self.groups[to] != self.groups[from] {
                self.traffic.partitioned += 1;
            } else if self.nodes[to].downlink.link.rate.is_some() {
                queued_to.push(to);
            } else {
                direct.push(to);
            }
        }
        let datagram = Rc::new(Datagram {
            from,
            unicast,
            payload,
            wire,
            data,
            queued_to,
        });
        let arrival = departed + self.net.delay;
        if !datagram.queued_to.is_empty() {
            self.push(arrival, u32::MAX as usize, Stage::Downlinks, &datagram);
        }
        // Unlimited downlinks: the draws happen in the order they always did.
        for to in direct {
            if self.rng.random_bool(self.net.loss) {
                self.count_loss(&datagram.data);
                continue;
            }
            let copies = if self.rng.random_bool(self.net.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let jitter = self.jitter();
                self.push(arrival + jitter, to, Stage::Deliver, &datagram);
            }
        }
    }

    /// A datagram reaches the finite downlinks of its receivers: each takes it (or a second
    /// copy, if duplicated) unless its queue is full; random loss applies to what got through.
    fn reach_downlinks(&mut self, datagram: &Rc<Datagram>) {
        for &to in &datagram.queued_to {
            if self.nodes[to].dead {
                continue;
            }
            let lost = self.rng.random_bool(self.net.loss);
            let copies = if !lost && self.rng.random_bool(self.net.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                match self.nodes[to].downlink.offer(self.now, datagram.wire) {
                    None => self.traffic.downlink_drops += 1,
                    Some(_) if lost => self.count_loss(&datagram.data),
                    Some(exit) => {
                        let jitter = self.jitter();
                        self.push(exit + jitter, to, Stage::Deliver, datagram);
                    }
                }
            }
        }
    }

    fn jitter(&mut self) -> Duration {
        if self.net.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.net.jitter.mul_f64(self.rng.random_range(0.0..1.0))
        }
    }

    fn push(&mut self, at: Instant, to: usize, stage: Stage, datagram: &Rc<Datagram>) {
        self.order += 1;
        self.in_flight_from[datagram.from] += 1;
        let nanos = (at - self.start).as_nanos();
        self.in_flight.push(Reverse(InFlight {
            key: nanos << 64 | u128::from(self.order),
            to: to as u32,
            stage,
            datagram: Rc::clone(datagram),
        }));
    }

    fn count_loss(&mut self, data: &[(PeerId, u64)]) {
        self.traffic.dropped += 1;
        self.traffic.receiver_losses += data.len() as u64;
        for key in data {
            if self.lost_set.insert(*key) {
                self.traffic.lost_packets += 1;
            }
        }
    }

    /// Runs the network and the nodes' timers until virtual time `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_packet = self
                .in_flight
                .peek()
                .map(|Reverse(f)| self.start + Duration::from_nanos((f.key >> 64) as u64));
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
                self.in_flight_from[f.datagram.from] -= 1;
                let to = f.to as usize;
                match f.stage {
                    Stage::Downlinks => self.reach_downlinks(&f.datagram),
                    Stage::Deliver if self.nodes[to].dead => {}
                    Stage::Deliver => {
                        let from = self.nodes[f.datagram.from].addr;
                        let path = if f.datagram.unicast {
                            Path::Unicast(from)
                        } else {
                            Path::Multicast(from)
                        };
                        self.nodes[to]
                            .node
                            .handle_datagram(self.now, path, &f.datagram.payload);
                        self.after_input(to);
                    }
                }
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
    /// or until `limit` of virtual time has passed. True if everything was delivered. Killed
    /// nodes and their messages count as [`Sim::assert_exactly_once`] says.
    pub fn run_until_delivered(&mut self, limit: Duration) -> bool {
        self.run_while(limit, |s| s.all_delivered())
    }

    /// Runs until all bulk input was sent and delivered (as [`Sim::run_until_delivered`]),
    /// or until `limit` of virtual time has passed. True if it was.
    pub fn run_until_sent_and_delivered(&mut self, limit: Duration) -> bool {
        self.run_while(limit, |s| s.queued_total() == 0 && s.all_delivered())
    }

    fn run_while(&mut self, limit: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let end = self.now + limit;
        let step = Duration::from_millis(5);
        while self.now < end {
            if done(self) {
                return true;
            }
            let until = (self.now + step).min(end);
            self.run_until(until);
        }
        done(self)
    }

    /// Nodes that receive: joined and alive.
    fn receivers(&self) -> impl Iterator<Item = (usize, &SimNode)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.joined && !n.dead)
    }

    /// Whether every live receiver has delivered every message of every live sender, and
    /// every message of a killed sender is delivered by all survivors or by none, with none
    /// of its datagrams still on the way.
    pub fn all_delivered(&self) -> bool {
        for (r, n) in self.receivers() {
            for (s, sender) in self.nodes.iter().enumerate() {
                if s != r && !sender.dead && n.got_from[s] != sender.report.sent {
                    return false;
                }
            }
        }
        let survivors = self.receivers().count() as u32;
        self.nodes.iter().enumerate().all(|(s, sender)| {
            !sender.dead
                || (self.in_flight_from[s] == 0
                    && sender.own.iter().all(|&k| {
                        let h = self.holders[k as usize];
                        h == 0 || h == survivors
                    }))
        })
    }

    /// Whether every fragment of message `k` of the log left its sender (entered its uplink).
    fn fully_sent(&self, k: usize) -> bool {
        let m = &self.log[k];
        let source = self.nodes[m.from].node.peer_id();
        (m.seq..m.seq + m.frags).all(|s| self.left.contains(&(source, s)))
    }

    /// Panics unless every joined node delivered every other node's message exactly once,
    /// with the text that was sent.
    ///
    /// Killed nodes are not receivers: what they delivered is not checked. The messages of a
    /// killed sender are held to what can be asked of the survivors, who cannot get a packet
    /// from anyone if none of them received it: each such message is delivered exactly once
    /// by every surviving node or by none (never by some only, never twice), and by none if
    /// some fragment of it never left the sender (its uplink dropped it, or it died first).
    pub fn assert_exactly_once(&self) {
        let survivors = self.receivers().count() as u32;
        for (i, n) in self.receivers() {
            if let Some(c) = n.corrupt.first() {
                panic!("node {i} got a {c} ({} in all)", n.corrupt.len());
            }
            for (k, m) in self.log.iter().enumerate() {
                if m.from == i {
                    continue;
                }
                let (id, from) = (m.id, m.from);
                let count = n.got.get(k).copied().unwrap_or(0);
                if !self.nodes[from].dead {
                    assert_eq!(
                        count, 1,
                        "node {i} delivered {id} from node {from} {count} times"
                    );
                    continue;
                }
                let holders = self.holders[k];
                let want = u8::from(holders > 0);
                assert_eq!(
                    count, want,
                    "node {i} delivered {id} of killed node {from} {count} times, while \
                     {holders} of {survivors} survivors delivered it"
                );
                assert!(
                    count == 0 || self.fully_sent(k),
                    "node {i} delivered {id} of killed node {from}, which never fully left it"
                );
            }
            if self.keep_messages {
                let total: usize = n.got.iter().map(|&c| usize::from(c)).sum();
                assert_eq!(n.messages.len(), total);
            }
        }
    }

    /// Messages delivered by node `i`, in delivery order (none if not kept, see
    /// [`Sim::keep_messages`]).
    pub fn messages(&self, i: usize) -> &[Message] {
        &self.nodes[i].messages
    }

    /// Sum of every node's counters.
    pub fn total_stats(&self) -> Stats {
        let mut t = Stats::default();
        for n in &self.nodes {
            t += &n.node.stats();
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

/// Lines of [`Sim::missing_report`] shown before the rest is summed up.
const REPORT_LINES: usize = 200;

impl Sim {
    /// Which (receiver, message) deliveries of live senders are missing, for failure
    /// messages: the first few, then a count per receiver.
    pub fn missing_report(&self) -> String {
        let mut out = String::new();
        let mut lines = 0;
        for (i, n) in self.receivers() {
            let mut lacking = 0;
            for (k, m) in self.log.iter().enumerate() {
                if m.from == i || self.nodes[m.from].dead || n.got.get(k).is_some_and(|&c| c > 0) {
                    continue;
                }
                lacking += 1;
                if lines < REPORT_LINES {
                    lines += 1;
                    let t: String = m.text.chars().take(30).collect();
                    let _ = writeln!(out, "node {i} lacks {} from {}: {t:?}", m.id, m.from);
                }
            }
            if lacking > 0 && lines >= REPORT_LINES {
                let _ = writeln!(out, "node {i} lacks {lacking} messages in all");
            }
        }
        out
    }
}

impl Sim {
    /// The simulator's clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Gives node `i` an input through `f` (with the clock), then runs what it sends.
    pub fn with_node<T>(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant) -> T) -> T {
        let now = self.now;
        let out = f(&mut self.nodes[i].node, now);
        self.after_input(i);
        out
    }

    /// Makes node `b` a friend of node `a`, on `a`'s side only (after `a` restarted).
    pub fn befriend_one(&mut self, a: usize, b: usize) {
        let (now, addr) = (self.now, self.nodes[b].addr);
        self.nodes[a].node.add_friend(now, addr).unwrap();
        self.after_input(a);
    }

    /// Node `i` restarts: same peer id, fresh state, numbering from `first_seq`; in the lobby
    /// again unless it is private.
    pub fn restart(&mut self, i: usize, first_seq: u64) {
        self.restart_aged(i, first_seq, Duration::ZERO);
    }

    /// [`Sim::restart`], with the new node's clock started `age` before now: as a process
    /// that took that long from starting to sending its first hello, whose timestamps
    /// (PROTOCOL.md 7.1) may then be ahead of the last ones heard from its predecessor.
    pub fn restart_aged(&mut self, i: usize, first_seq: u64, age: Duration) {
        assert!(!self.nodes[i].dead, "node {i} was killed");
        let key = self.nodes[i].key.clone();
        let seed = self.rng.random();
        let cfg = self.nodes[i].node.config().clone();
        let mut node = Node::new(
            cfg,
            key,
            &format!("n{i}"),
            self.now - age,
            1_800_000_000_000,
            seed,
        )
        .unwrap();
        // A private lobby's key is gone with the node's state: it takes an invitation (or a
        // join with the key) to come back.
        if self.key.is_none() {
            let lobby = self.lobby.clone();
            node.join(self.now, &lobby, first_seq);
        } else {
            self.nodes[i].joined = false;
        }
        self.nodes[i].node = node;
        self.nodes[i].deadline = None;
        self.after_input(i);
    }
}
