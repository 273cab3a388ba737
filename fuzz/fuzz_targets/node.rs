//! One node fed arbitrary datagrams, timeouts and own messages in virtual time, with the
//! promises of PROTOCOL.md 6.3 and 8 checked after every step:
//!
//! - the core never panics, and its timers always move forward;
//! - every datagram it sends is at most `MAX_DATAGRAM` bytes, decodes whole, and is its own;
//! - it repairs only data it holds (data it sent, received or was given back), at most
//!   `MAX_REPAIRS_PER_REQUEST` repairs per request heard;
//! - it asks only about sources it heard of, for seqs no higher than one it was told of, and
//!   its requests cost at most `credit_factor` times the bytes it received;
//! - it delivers every message id at most once, never its own.
//!
//! With `FUZZ_NODE_BYTE_BOUND=1` it also checks requests and repairs together against the
//! bytes received (16 × bytes in + `BYTE_ALLOWANCE`): see BENCHMARKS.md, "Fuzzing", for why
//! that bound does not hold and is not checked by default.
//!
//! From revision 1.3 every data, session and heartbeat packet travels in a bundle signed by
//! its writer (PROTOCOL.md 4.12) or in a link vouched for by an anchor (4.13): the peers here
//! have keys (all but two ids, whose packets go unsigned and must be dropped), their packets
//! are sealed as they would seal them, sometimes as an anchor and links delivered out of
//! order, and the node must send its own only signed or linked, pass on others' bundles only
//! as it was given them, and repair only with bundles it holds.
//!
//! The input is a list of operations (`arbitrary`): structured packets (data, repair,
//! session, request, heartbeat, with small seqs and a few peer ids) encoded into one datagram
//! that comes on the group or by unicast from the node's one friend, raw bytes, encoded
//! packets with one byte changed, the friend's hellos (echoing the node's, so that the link
//! comes up) and challenges, advancing virtual time, own messages, history restores, rejoins
//! and wall-clock steps. Besides its own packets the node may send what it forwards: data
//! and heartbeats of others that it was given.

#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use lobbycast::proto::challenge::hash;
use lobbycast::proto::ids::MsgId;
use lobbycast::proto::signing;
use lobbycast::proto::wire::{
    self, Acked, Body, Bundle, Challenge, Data, Decoded, Echo, Heard, Heartbeat, Hello,
    HelloEcho, Link, LinkHash,
    MAX_CHALLENGE_HASHES, MAX_DATAGRAM, MAX_MESSAGE, MAX_NICK, MAX_PIECE, MAX_REQUEST_RANGES,
    MAX_SESSION_ACKED, MAX_SESSION_ECHOES, MAX_SESSION_HEARD, Packet, Request, Sent, SeqRange,
    Session,
};
use lobbycast::proto::{
    Config, Event, Lobby, LobbyId, MAX_REPAIRS_PER_REQUEST, Message, Node, Path, PeerId,
    SigningKey,
};

/// Wall clock at the start, Unix milliseconds.
const NOW_MS: u64 = 1_800_000_000_000;
/// The key of peer `n`: 0 is the node under test, 1 to 5 the others that sign.
fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n.wrapping_add(1); 32])
}

/// The peer id of key `n`, computed once.
fn keyed(n: u8) -> PeerId {
    static IDS: OnceLock<Vec<PeerId>> = OnceLock::new();
    IDS.get_or_init(|| {
        (0..6)
            .map(|k| signing::peer_id_of(&key(k).verifying_key().to_bytes()))
            .collect()
    })[usize::from(n)]
}

/// The node under test.
fn me() -> PeerId {
    keyed(0)
}
/// The node's one friend (its peer id is one of the five others).
const FRIEND: ([u8; 4], u16) = ([10, 0, 0, 77], 47110);
/// Operations per input: keeps an execution cheap.
const MAX_OPS: usize = 64;
/// Packets per structured datagram.
const MAX_PACKETS: usize = 8;
/// Virtual time one input may cover: past the peer timeout and the give-up bound of
/// [`config`] (10 s and 40 s), so that those paths run too.
const MAX_VIRTUAL: Duration = Duration::from_secs(50);
/// Allowance of the opt-in byte bound.
const BYTE_ALLOWANCE: u64 = 2 * MAX_DATAGRAM as u64;

fn byte_bound_checked() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FUZZ_NODE_BYTE_BOUND").is_some_and(|v| v == "1"))
}

/// A peer id: the node itself, one of five others, or a rare one.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct P(u8);

impl P {
    fn id(self) -> PeerId {
        match self.0 % 8 {
            k @ 0..=5 => keyed(k),
            6 => PeerId(u64::MAX),
            _ => PeerId(1000 + u64::from(self.0)),
        }
    }
}

/// The key that signs for `id`, if it has one here.
fn key_of(id: PeerId) -> Option<SigningKey> {
    (0..6).find(|&k| keyed(k) == id).map(key)
}

/// A sequence number: mostly small, sometimes past the max gap (8192), sometimes near the top.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct S(u16);

impl S {
    fn seq(self) -> u64 {
        let low = u64::from(self.0 & 0x3fff);
        match self.0 >> 14 {
            0 | 1 => low % 128,
            2 => low,
            _ => u64::MAX - low % 256,
        }
    }
}

/// A nick of a few shapes, the longest exactly `MAX_NICK` bytes of two-byte characters.
fn nick(n: u8) -> String {
    match n % 4 {
        0 => "ghost".into(),
        1 => "a".into(),
        2 => "é".repeat(MAX_NICK / 2),
        _ => String::new(),
    }
}

/// A wall-clock time `off` ms from the node's clock at `elapsed`, or an extreme one.
fn sent_at(elapsed: Duration, off: i32) -> u64 {
    match off {
        i32::MIN => 0,
        i32::MAX => u64::MAX,
        _ => (NOW_MS + elapsed.as_millis() as u64).saturating_add_signed(i64::from(off)),
    }
}

#[derive(Arbitrary, Debug)]
struct D {
    source: P,
    seq: S,
    msg: u8,
    frag_index: u8,
    frag_count: u8,
    body_len: u16,
    body_byte: u8,
    sent_at: i32,
    nick: u8,
}

impl D {
    fn build(&self, elapsed: Duration) -> Data {
        let frag_count = match self.frag_count {
            0..=127 => 1,
            128..=250 => 1 + u16::from(self.frag_count % 4),
            _ => u16::from(self.frag_count % 66),
        };
        let frag_index = match self.frag_index {
            0..=250 => u16::from(self.frag_index) % frag_count.max(1),
            _ => u16::from(self.frag_index % 66),
        };
        // Every fragment but the last is a full piece when the message is consistent.
        let len = if frag_index + 1 < frag_count && self.body_len & 0x8000 == 0 {
            MAX_PIECE
        } else {
            usize::from(self.body_len) % (MAX_PIECE + 2)
        };
        Data {
            source: self.source.id(),
            seq: self.seq.seq(),
            msg_id: MsgId(u64::from(self.msg)),
            sent_at: sent_at(elapsed, self.sent_at),
            nick: nick(self.nick),
            frag_index,
            frag_count,
            body: vec![self.body_byte; len],
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Pkt {
    Data(D),
    Repair {
        repairer: P,
        data: D,
    },
    Session {
        sender: P,
        low: S,
        ahead: u8,
        timestamp: u32,
        heard: Vec<(P, S)>,
        echo: Option<(u32, u32)>,
        acked: Vec<(P, S)>,
        nick: u8,
    },
    Request {
        sender: P,
        source: P,
        hint: Option<P>,
        ranges: Vec<(S, u8)>,
    },
    Heartbeat {
        sender: P,
        nick: u8,
        beat: u8,
        off: i32,
        leaving: bool,
    },
}

impl Pkt {
    fn build(&self, lobby: LobbyId, elapsed: Duration) -> Packet {
        let body = match self {
            Pkt::Data(d) => Body::Data(d.build(elapsed)),
            Pkt::Repair { repairer, data } => Body::Repair {
                repairer: repairer.id(),
                data: data.build(elapsed),
            },
            Pkt::Session {
                sender,
                low,
                ahead,
                timestamp,
                heard,
                echo,
                acked,
                nick: n,
            } => {
                let low = low.seq();
                Body::Session(Session {
                    sender: sender.id(),
                    nick: nick(*n),
                    timestamp: u64::from(*timestamp),
                    sent: Sent {
                        low,
                        next: low.saturating_add(u64::from(*ahead)),
                    },
                    heard: heard
                        .iter()
                        .take(MAX_SESSION_HEARD)
                        .map(|(p, s)| Heard(p.id(), s.seq()))
                        .collect(),
                    echoes: echo
                        .iter()
                        .take(MAX_SESSION_ECHOES)
                        .map(|&(timestamp, delay)| Echo {
                            peer: me(),
                            timestamp: u64::from(timestamp),
                            delay: u64::from(delay),
                        })
                        .collect(),
                    acked: acked
                        .iter()
                        .take(MAX_SESSION_ACKED)
                        .map(|(p, s)| Acked(p.id(), s.seq()))
                        .collect(),
                    flags: u64::from(*timestamp % 8),
                    mheard: u64::from(*ahead % 3),
                })
            }
            Pkt::Heartbeat {
                sender,
                nick: n,
                beat,
                off,
                leaving,
            } => Body::Heartbeat(Heartbeat {
                sender: sender.id(),
                nick: nick(*n),
                beat: MsgId(0xbea7_0000 + u64::from(*beat)),
                sent_at: sent_at(elapsed, *off),
                leaving: *leaving,
            }),
            Pkt::Request {
                sender,
                source,
                hint,
                ranges,
            } => {
                let mut ranges: Vec<SeqRange> = ranges
                    .iter()
                    .take(MAX_REQUEST_RANGES)
                    .map(|(s, len)| SeqRange(s.seq(), s.seq().saturating_add(u64::from(*len))))
                    .collect();
                if ranges.is_empty() {
                    ranges.push(SeqRange(0, 0));
                }
                Body::Request(Request {
                    sender: sender.id(),
                    source: source.id(),
                    hint: hint.map(P::id),
                    ranges,
                })
            }
        };
        Packet { lobby, body }
    }
}

/// One writer's packets of one lobby and kind, to be sealed in one bundle.
struct Group {
    writer: PeerId,
    lobby: LobbyId,
    kind: u8,
    repairer: Option<PeerId>,
    packets: Vec<u8>,
}

/// Encodes packets as their writers send them from revision 1.3: each run of one writer's
/// data, sessions or heartbeats (or repairs by one repairer) in a bundle signed by the
/// writer's key; packets of writers without a key go unsigned (the node must drop them),
/// requests as they are. With `chain`, each data packet is a bundle of its own and a writer's
/// data bundles after its first become links vouched for by it (an anchor); with `reorder`,
/// the links go before their anchor.
fn seal(packets: &[Packet], chain: bool, reorder: bool) -> Vec<u8> {
    let mut items: Vec<Result<Group, Vec<u8>>> = Vec::new();
    for p in packets {
        let (writer, kind, repairer, inner) = match &p.body {
            Body::Data(d) => (d.source, 0, None, p.clone()),
            Body::Repair { repairer, data } => (
                data.source,
                0,
                Some(*repairer),
                Packet {
                    lobby: p.lobby,
                    body: Body::Data(data.clone()),
                },
            ),
            Body::Session(x) => (x.sender, 1, None, p.clone()),
            Body::Heartbeat(h) => (h.sender, 4, None, p.clone()),
            Body::Request(_) => {
                items.push(Err(p.to_bytes()));
                continue;
            }
        };
        if key_of(writer).is_none() {
            items.push(Err(inner.to_bytes()));
            continue;
        }
        let merge = !(chain && kind == 0);
        if merge
            && let Some(Ok(g)) = items.last_mut()
            && g.writer == writer
            && g.lobby == p.lobby
            && g.kind == kind
            && g.repairer == repairer
        {
            g.packets.extend(inner.to_bytes());
            continue;
        }
        items.push(Ok(Group {
            writer,
            lobby: p.lobby,
            kind,
            repairer,
            packets: inner.to_bytes(),
        }));
    }
    // Which data groups are links, and which anchor lists them.
    let mut anchor_of: Vec<Option<usize>> = vec![None; items.len()];
    if chain {
        for i in 0..items.len() {
            let Ok(a) = &items[i] else { continue };
            if a.kind != 0 || a.repairer.is_some() || anchor_of[i].is_some() {
                continue;
            }
            let mut n = 0;
            for j in i + 1..items.len() {
                if let Ok(l) = &items[j]
                    && l.kind == 0
                    && l.repairer.is_none()
                    && l.writer == a.writer
                    && l.lobby == a.lobby
                    && n < wire::MAX_CHAIN
                {
                    anchor_of[j] = Some(i);
                    n += 1;
                }
            }
        }
    }
    let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let g = match item {
            Ok(g) => g,
            Err(bytes) => {
                encoded.push(bytes.clone());
                continue;
            }
        };
        let mut b = if anchor_of[i].is_some() {
            signing::link(g.lobby, g.writer, g.packets.clone())
        } else {
            let links: Vec<LinkHash> = (0..items.len())
                .filter(|&j| anchor_of[j] == Some(i))
                .filter_map(|j| items[j].as_ref().ok())
                .map(|l| signing::link_hash(l.lobby, l.writer, &l.packets))
                .collect();
            let key = key_of(g.writer).expect("keyed");
            signing::seal_anchor(&key, g.lobby, links, g.packets.clone())
        };
        b.repairer = g.repairer;
        encoded.push(b.to_bytes());
    }
    if reorder {
        // Each anchor after its last link.
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| {
            let last_link = (0..items.len()).filter(|&j| anchor_of[j] == Some(i)).max();
            (last_link.unwrap_or(i), i)
        });
        return order.into_iter().flat_map(|i| encoded[i].clone()).collect();
    }
    encoded.concat()
}

/// A bundle as its writer sealed it: without a repairer.
fn as_sealed(b: &Bundle) -> Vec<u8> {
    let mut b = b.clone();
    b.repairer = None;
    b.to_bytes()
}

/// A text of at most `bytes` bytes of one character: ASCII, two or four bytes, or U+FFFD,
/// which marks text that was not valid UTF-8.
fn repeat(c: u8, bytes: usize) -> String {
    let c = ["a", "é", "\u{FFFD}", "😀"][usize::from(c % 4)];
    c.repeat(bytes / c.len())
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Structured packets, sealed into one datagram, on the group or from the friend.
    Packets {
        foreign: bool,
        unicast: bool,
        chain: bool,
        reorder: bool,
        pkts: Vec<Pkt>,
    },
    /// A hello from the friend: its peer id (or another), echoing the node's last hello.
    Hello {
        sender: P,
        echo: bool,
        delay: u16,
        listed: bool,
    },
    /// A challenge from the friend: arbitrary values, or h(L, N, me) for a message N it holds.
    Challenge { values: Vec<u64>, real: bool },
    /// Raw bytes as a datagram.
    Raw(Vec<u8>),
    /// Structured packets with one byte replaced.
    Mutated { pkts: Vec<Pkt>, at: u16, byte: u8 },
    /// Advances virtual time by that many milliseconds, running every timer on the way.
    Advance(u16),
    /// Jumps to the next timer.
    NextTimer,
    /// The application sends a message of up to 4 KiB, or if `big` near the largest size.
    Send { len: u16, big: bool, c: u8 },
    /// The application gives back a message from history.
    Restore {
        source: P,
        seq: S,
        msg: u8,
        len: u16,
        c: u8,
        sent_at: i32,
        nick: u8,
    },
    /// Leaves and joins again, numbering own packets from `first_seq`.
    Rejoin { first_seq: S },
    /// The wall clock is set by that many milliseconds.
    SetWall(i32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    first_seq: S,
    ops: Vec<Op>,
}

/// What the node has been told, for checking what it sends.
#[derive(Default)]
struct Told {
    /// Every data packet it received from others or sent itself, by (source, seq).
    data: HashMap<(PeerId, u64), Vec<Data>>,
    /// Highest seq of each other source that some packet mentioned.
    mentioned: HashMap<PeerId, u64>,
    /// Message ids delivered.
    delivered: HashSet<MsgId>,
    /// Heartbeats of others it was given.
    beats: Vec<Heartbeat>,
    /// Others' bundles and links it was given, as sealed (without a repairer).
    bundles: HashSet<Vec<u8>>,
    /// Link hashes its own anchors listed.
    own_links: HashSet<LinkHash>,
    /// The seqs of its own messages, as `send` numbered them.
    own: Vec<std::ops::Range<u64>>,
    /// The timestamp of the node's latest hello, for the friend to echo.
    my_hello: Option<u64>,
}

impl Told {
    fn data(&mut self, d: Data) {
        let v = self.data.entry((d.source, d.seq)).or_default();
        if !v.contains(&d) {
            v.push(d);
        }
    }

    fn mention(&mut self, source: PeerId, seq: u64) {
        if source != me() {
            let m = self.mentioned.entry(source).or_insert(seq);
            *m = (*m).max(seq);
        }
    }

    /// Notes what a datagram fed to the node says, as the node decodes it: the packets in
    /// bundles and links, whether they verify or not (the node may only know less).
    fn datagram(&mut self, lobby: LobbyId, bytes: &[u8]) {
        let mut packets = Vec::new();
        for item in wire::decode_datagram(bytes) {
            match item {
                Ok(Decoded::Packet(p)) => packets.push(p),
                Ok(Decoded::Bundle(b)) => {
                    if self.bundles.len() < 4096 {
                        self.bundles.insert(as_sealed(&b));
                    }
                    packets.extend(signing::contents(&b).unwrap_or_default());
                }
                _ => {}
            }
        }
        for p in packets {
            if p.lobby != lobby || p.sender() == me() {
                continue;
            }
            match p.body {
                Body::Data(d) | Body::Repair { data: d, .. } => {
                    self.mention(d.source, d.seq);
                    if d.source != me() {
                        self.data(d);
                    }
                }
                Body::Session(s) => {
                    self.mention(s.sender, s.sent.next.saturating_sub(1));
                    for Heard(src, high) in s.heard {
                        self.mention(src, high);
                    }
                }
                Body::Heartbeat(h) => {
                    if self.beats.len() < 256 && !self.beats.contains(&h) {
                        self.beats.push(h);
                    }
                }
                Body::Request(_) => {}
            }
        }
    }
}

struct Run {
    node: Node,
    lobby: Lobby,
    start: Instant,
    now: Instant,
    told: Told,
}

impl Run {
    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn feed(&mut self, bytes: &[u8]) {
        let from: SocketAddr = ([10, 0, 0, 66], 47110).into();
        self.feed_via(Path::Multicast(from), bytes);
    }

    fn feed_via(&mut self, path: Path, bytes: &[u8]) {
        self.told.datagram(self.lobby.id, bytes);
        self.node.handle_datagram(self.now, path, bytes);
        self.run_due();
    }

    /// Runs the timers due by `now`, checking after each.
    fn run_due(&mut self) {
        self.drain();
        while let Some(at) = self.node.poll_timeout() {
            if at > self.now {
                break;
            }
            self.fire(at.max(self.now));
        }
    }

    fn fire(&mut self, at: Instant) {
        self.now = at;
        self.node.handle_timeout(at);
        self.drain();
        if let Some(next) = self.node.poll_timeout() {
            assert!(
                next > at,
                "a timer due at {next:?} survived handle_timeout({at:?})"
            );
        }
    }

    /// Runs every timer up to `until`, then moves the clock there.
    fn advance_to(&mut self, until: Instant) {
        while let Some(at) = self.node.poll_timeout() {
            if at > until {
                break;
            }
            self.fire(at.max(self.now));
        }
        self.now = self.now.max(until);
    }

    /// Drains and checks everything the node sends and says.
    fn drain(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            self.check_transmit(&t.payload);
        }
        while let Some(e) = self.node.poll_event() {
            if let Event::Message(m) = e {
                assert_ne!(m.source, me(), "own message delivered: {m:?}");
                assert!(
                    self.told.delivered.insert(m.msg_id),
                    "message id delivered twice: {m:?}"
                );
            }
        }
        self.check_stats();
    }

    fn check_transmit(&mut self, payload: &[u8]) {
        assert!(!payload.is_empty(), "empty datagram");
        assert!(
            payload.len() <= MAX_DATAGRAM,
            "datagram of {} bytes",
            payload.len()
        );
        let mut packets = Vec::new();
        for item in wire::decode_datagram(payload) {
            let p = match item {
                Ok(Decoded::Packet(p)) => {
                    assert!(
                        matches!(p.body, Body::Request(_)),
                        "unsigned {p:?} sent: only requests go outside bundles"
                    );
                    p
                }
                Ok(Decoded::Bundle(b)) => {
                    self.check_bundle(&b);
                    let repairer = b.repairer;
                    for p in signing::contents(&b).expect("the node sends sound bundles") {
                        packets.push(match (p.body, repairer) {
                            (Body::Data(data), Some(repairer)) => Packet {
                                lobby: p.lobby,
                                body: Body::Repair { repairer, data },
                            },
                            (body, _) => Packet { lobby: p.lobby, body },
                        });
                    }
                    continue;
                }
                Ok(Decoded::Link(Link::Hello(h))) => {
                    assert_eq!(h.sender, me(), "hello under another id: {h:?}");
                    self.told.my_hello = Some(h.timestamp);
                    continue;
                }
                Ok(Decoded::Link(Link::Challenge(c))) => {
                    assert_eq!(c.sender, me(), "challenge under another id: {c:?}");
                    continue;
                }
                other => panic!("the node sent {other:?} in {payload:02x?}"),
            };
            packets.push(p);
        }
        for p in packets {
            assert_eq!(p.lobby, self.lobby.id, "sent to another lobby: {p:?}");
            if !matches!(p.body, Body::Data(_) | Body::Heartbeat(_)) {
                assert_eq!(p.sender(), me(), "sent under another id: {p:?}");
            }
            match p.body {
                Body::Data(d) => {
                    // Its own, or another's it was given and forwards as it was written.
                    if d.source == me() {
                        self.told.data(d);
                    } else {
                        let known = self
                            .told
                            .data
                            .get(&(d.source, d.seq))
                            .is_some_and(|v| v.contains(&d));
                        assert!(known, "forwarded data never held: {d:?}");
                    }
                }
                Body::Heartbeat(h) => {
                    assert!(
                        h.sender == me() || self.told.beats.contains(&h),
                        "heartbeat neither its own nor one it was given: {h:?}"
                    );
                }
                Body::Repair { data, .. } => {
                    // Its own packets may be repaired (to a friend) before their first copy,
                    // still in the outbox for the group, has left.
                    let own = data.source == me()
                        && self.told.own.iter().any(|r| r.contains(&data.seq));
                    let known = own
                        || self
                            .told
                            .data
                            .get(&(data.source, data.seq))
                            .is_some_and(|v| v.contains(&data));
                    assert!(known, "repair of data never held: {data:?}");
                }
                Body::Request(r) => {
                    assert_ne!(r.source, me(), "request for own data: {r:?}");
                    let top = self.told.mentioned.get(&r.source).copied();
                    let mut count = 0u64;
                    for &SeqRange(first, last) in &r.ranges {
                        assert!(first <= last);
                        assert!(
                            top.is_some_and(|t| last <= t),
                            "request above anything mentioned ({top:?}): {r:?}"
                        );
                        count += last - first + 1;
                    }
                    assert!(
                        count <= MAX_REPAIRS_PER_REQUEST as u64,
                        "request for {count} seqs: {r:?}"
                    );
                }
                Body::Session(_) => {}
            }
        }
    }

    /// A bundle the node sends: its own, signed by its key or a link one of its anchors
    /// listed; or another writer's exactly as it was given; a repairer only itself.
    fn check_bundle(&mut self, b: &Bundle) {
        assert!(
            b.repairer.is_none_or(|r| r == me()),
            "repair under another id: {b:?}"
        );
        if b.source == me() {
            if b.is_link() {
                let h = signing::link_hash(b.lobby, b.source, &b.packets);
                assert!(self.told.own_links.contains(&h), "own link no anchor listed: {b:?}");
            } else {
                signing::verify(b).expect("own bundles verify");
                self.told.own_links.extend(b.chain().iter().copied());
            }
        } else {
            assert!(
                self.told.bundles.contains(&as_sealed(b)),
                "passed on a bundle never given: {b:?}"
            );
        }
    }

    fn check_stats(&self) {
        let s = self.node.stats();
        let factor = self.node.config().credit_factor;
        assert!(
            s.request_bytes_out <= factor * s.bytes_in,
            "requests of {} bytes for {} bytes in",
            s.request_bytes_out,
            s.bytes_in
        );
        assert!(
            s.repairs_sent <= MAX_REPAIRS_PER_REQUEST as u64 * s.requests_heard,
            "{} repairs for {} requests heard",
            s.repairs_sent,
            s.requests_heard
        );
        if byte_bound_checked() {
            let out = s.request_bytes_out + s.repair_bytes_out;
            assert!(
                out <= factor * s.bytes_in + BYTE_ALLOWANCE,
                "requests and repairs of {out} bytes for {} bytes in",
                s.bytes_in
            );
        }
    }

    fn step(&mut self, op: &Op) {
        let id = self.lobby.id;
        match op {
            Op::Packets {
                foreign,
                unicast,
                chain,
                reorder,
                pkts,
            } => {
                let lobby = if *foreign { LobbyId(id.0 ^ 1) } else { id };
                let packets: Vec<Packet> = pkts
                    .iter()
                    .take(MAX_PACKETS)
                    .map(|p| p.build(lobby, self.elapsed()))
                    .collect();
                if !packets.is_empty() {
                    let bytes = seal(&packets, *chain, *reorder);
                    if *unicast {
                        self.feed_via(Path::Unicast(FRIEND.into()), &bytes);
                    } else {
                        self.feed(&bytes);
                    }
                }
            }
            Op::Hello {
                sender,
                echo,
                delay,
                listed,
            } => {
                let echo = self
                    .told
                    .my_hello
                    .filter(|_| *echo)
                    .map(|timestamp| HelloEcho {
                        timestamp,
                        delay: u64::from(*delay),
                    });
                let hello = Hello {
                    sender: sender.id(),
                    nick: "friend".into(),
                    timestamp: self.elapsed().as_micros() as u64,
                    echo,
                    lobbies: if *listed { vec![id] } else { Vec::new() },
                };
                self.feed_via(Path::Unicast(FRIEND.into()), &Link::Hello(hello).to_bytes());
            }
            Op::Challenge { values, real } => {
                let mut hashes: Vec<u64> = values.iter().take(MAX_CHALLENGE_HASHES).copied().collect();
                if *real && let Some(n) = self.told.delivered.iter().next() {
                    hashes.truncate(MAX_CHALLENGE_HASHES - 1);
                    hashes.push(hash(id, *n, me()));
                }
                if hashes.is_empty() {
                    hashes.push(0);
                }
                let c = Challenge {
                    sender: P(1).id(),
                    hashes,
                };
                self.feed_via(Path::Unicast(FRIEND.into()), &Link::Challenge(c).to_bytes());
            }
            Op::Raw(bytes) => self.feed(bytes),
            Op::Mutated { pkts, at, byte } => {
                let packets: Vec<Packet> = pkts
                    .iter()
                    .take(MAX_PACKETS)
                    .map(|p| p.build(id, self.elapsed()))
                    .collect();
                let mut bytes = seal(&packets, false, false);
                if !bytes.is_empty() {
                    let i = usize::from(*at) % bytes.len();
                    bytes[i] = *byte;
                    self.feed(&bytes);
                }
            }
            Op::Advance(ms) => {
                let until = (self.now + Duration::from_millis(u64::from(*ms)))
                    .min(self.start + MAX_VIRTUAL);
                self.advance_to(until);
            }
            Op::NextTimer => {
                if let Some(at) = self.node.poll_timeout()
                    && at <= self.start + MAX_VIRTUAL
                {
                    self.advance_to(at);
                }
            }
            Op::Send { len, big, c } => {
                let n = if *big {
                    MAX_MESSAGE - 4 + usize::from(*len % 8)
                } else {
                    usize::from(*len % 4096)
                };
                let text = repeat(*c, n);
                if let Ok(m) = self.node.send(self.now, id, &text) {
                    assert_eq!(m.source, me());
                    assert_eq!(m.text, text);
                    let pieces = text.len().div_ceil(MAX_PIECE).max(1) as u64;
                    self.told.own.push(m.seq..m.seq + pieces);
                }
                self.run_due();
            }
            Op::Restore {
                source,
                seq,
                msg,
                len,
                c,
                sent_at: off,
                nick: n,
            } => {
                let text = repeat(*c, usize::from(*len) % (MAX_MESSAGE + 8));
                let m = Message {
                    lobby: id,
                    source: source.id(),
                    seq: seq.seq(),
                    msg_id: MsgId(u64::from(*msg)),
                    sent_at: sent_at(self.elapsed(), *off),
                    nick: nick(*n),
                    text,
                    late: false,
                };
                self.restored(&m);
                self.node.restore(self.now, &m);
                self.run_due();
            }
            Op::Rejoin { first_seq } => {
                self.node.leave(id);
                self.node.join(self.now, &self.lobby, first_seq.seq());
                self.run_due();
            }
            Op::SetWall(ms) => {
                let wall = (NOW_MS + self.elapsed().as_millis() as u64)
                    .saturating_add_signed(i64::from(*ms));
                self.node.set_wall_clock(self.now, wall);
            }
        }
    }

    /// The packets a restored message may be served as: those rebuilt exactly from its text
    /// (all of an own message; of others', only text without replaced bytes).
    fn restored(&mut self, m: &Message) {
        if m.source != me() {
            let count = m.text.len().div_ceil(MAX_PIECE).max(1) as u64;
            self.told.mention(m.source, m.seq.saturating_add(count - 1));
        }
        if m.source != me() && m.text.contains('\u{FFFD}') {
            return;
        }
        let body = m.text.as_bytes();
        let pieces: Vec<&[u8]> = if body.is_empty() {
            vec![body]
        } else {
            body.chunks(MAX_PIECE).collect()
        };
        let count = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            let Some(seq) = m.seq.checked_add(i as u64) else {
                return;
            };
            self.told.data(Data {
                source: m.source,
                seq,
                msg_id: m.msg_id,
                sent_at: m.sent_at,
                nick: m.nick.clone(),
                frag_index: i as u16,
                frag_count: count as u16,
                body: piece.to_vec(),
            });
        }
    }
}

/// The default configuration with its bounds on counts and bytes cut by 16 (the flow window,
/// the repair stores, the max gap, dedup, reassembly, members), keeping their ratios, and the
/// timeouts that end things cut by 3: an input reaches every bound in a few packets and every
/// timeout within `MAX_VIRTUAL`, and a forged gap costs a few hundred timers per round rather
/// than thousands. SRM's timer constants and the request credit are the defaults.
fn config() -> Config {
    let d = Config::default();
    Config {
        flow_window: d.flow_window / 16,
        flow_window_bytes: d.flow_window_bytes / 16,
        own_store_packets: d.own_store_packets / 16,
        own_store_bytes: d.own_store_bytes / 16,
        max_gap: d.max_gap / 16,
        store_packets: d.store_packets / 16,
        store_bytes: d.store_bytes / 16,
        dedup_capacity: d.dedup_capacity / 16,
        reassembly_slots: d.reassembly_slots / 16,
        reassembly_bytes: d.reassembly_bytes / 16,
        max_peers: 8,
        peer_timeout: d.peer_timeout / 3,
        give_up_after: d.give_up_after / 3,
        reassembly_timeout: d.reassembly_timeout / 3,
        ..d
    }
}

fuzz_target!(|input: Input| {
    let start = Instant::now();
    let lobby = Lobby::new("fuzz").expect("valid lobby name");
    let mut node = Node::new(config(), key(0), "victim", start, NOW_MS, 7).expect("valid nick");
    node.join(start, &lobby, input.first_seq.seq());
    node.add_friend(start, FRIEND.into())
        .expect("a unicast address");
    let mut run = Run {
        node,
        lobby,
        start,
        now: start,
        told: Told::default(),
    };
    run.run_due();
    for op in input.ops.iter().take(MAX_OPS) {
        run.step(op);
    }
    // Let what was started finish, within the bound on virtual time.
    let until = (run.now + Duration::from_secs(2)).min(start + MAX_VIRTUAL);
    run.advance_to(until);
});
