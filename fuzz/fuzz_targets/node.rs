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
//! that comes on the group or by unicast from one of the node's friends, raw bytes, encoded
//! packets with one byte changed, the friends' hellos (echoing the node's, so that the link
//! comes up) and challenges, advancing virtual time, own messages, history restores, rejoins
//! and wall-clock steps. Besides its own packets the node may send what it forwards: data
//! and heartbeats of others that it was given.
//!
//! Revisions 1.4 to 1.8: the node is also in a private lobby ("team room", under the key of
//! proto/vectors/private-lobbies.txt), has a second friend, and listens on the discovery
//! group. Operations add that lobby's packets sealed in envelopes (or not, or under another
//! key, or with a byte changed), direct messages sealed by the five keyed peers (texts,
//! acknowledgements of the node's own, invitations, unknown contents; to the node or to
//! others, some forged), lobby lists and their requests, who-is queries and answers, the
//! friends' hellos naming the private lobby by its tag, the packets of the test vectors of
//! those kinds, and the application's direct messages, invitations, who-is queries and lobby
//! list requests. Checked besides: the private lobby's packets leave only in envelopes that
//! open under its key, and its id or name never leaves in clear (hellos, lists, who-is
//! answers); the node's own direct messages open at their addressee, and it places on only
//! direct messages it was given, never with more hops, never one to itself; it passes on only
//! who-is queries it was given (with a hop less) and answers it was given; each direct
//! message id is delivered (as a text or an invitation) at most once.

#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use lobbycast::proto::challenge::hash;
use lobbycast::proto::direct;
use lobbycast::proto::ids::MsgId;
use lobbycast::proto::private::LobbyKey;
use lobbycast::proto::signing;
use lobbycast::proto::wire::{
    self, Acked, Body, Bundle, Challenge, Content, Data, Decoded, Direct, Echo, Heard, Heartbeat,
    Hello, HelloEcho, Link, LinkHash, ListPacket, LobbyList, MAX_CHALLENGE_HASHES, MAX_DATAGRAM,
    MAX_MESSAGE, MAX_NICK, MAX_PIECE, MAX_REQUEST_RANGES, MAX_SESSION_ACKED, MAX_SESSION_ECHOES,
    MAX_SESSION_HEARD, Packet, Request, Sent, SeqRange, Session, WhoIs, WhoIsAnswer, WhoIsPeer,
    WhoIsQuery,
};
use lobbycast::proto::{
    Config, Event, Lobby, LobbyId, MAX_REPAIRS_PER_REQUEST, Message, Node, Path, PeerId, SigningKey,
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
/// The node's friends (their peer ids are among the five others).
const FRIEND: ([u8; 4], u16) = ([10, 0, 0, 77], 47110);
const FRIEND2: ([u8; 4], u16) = ([10, 0, 0, 78], 47110);
/// The private lobby the node is in: "Team Room" under "correct horse battery staple"
/// (proto/vectors/private-lobbies.txt), so that the envelope and invitation vectors are its.
const PRIVATE_NAME: &str = "team room";
const PRIVATE_KEY: &str = "20dfaf7d51a4b5437fb196acb4335af068d9e3ebd4a724d2a791aa5d685e8232";

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// The packets of the test vectors of revisions 1.4 to 1.8 (valid and invalid), and the
/// direct messages and envelopes their sealing vectors describe, each as one datagram.
fn vectors() -> &'static [Vec<u8>] {
    static V: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    V.get_or_init(|| {
        let files = [
            include_str!("../../proto/vectors/envelope.vec"),
            include_str!("../../proto/vectors/direct.vec"),
            include_str!("../../proto/vectors/lobby-list.vec"),
            include_str!("../../proto/vectors/lobby-list-request.vec"),
            include_str!("../../proto/vectors/whois-query.vec"),
            include_str!("../../proto/vectors/whois-answer.vec"),
            include_str!("../../proto/vectors/hello-first.vec"),
            include_str!("../../proto/vectors/hello-echo.vec"),
            include_str!("../../proto/vectors/invalid-direct-hops-9.vec"),
            include_str!("../../proto/vectors/invalid-direct-key-31.vec"),
            include_str!("../../proto/vectors/invalid-envelope-nonce-23.vec"),
            include_str!("../../proto/vectors/invalid-envelope-short.vec"),
            include_str!("../../proto/vectors/invalid-lobby-list-17.vec"),
            include_str!("../../proto/vectors/invalid-lobby-list-name.vec"),
            include_str!("../../proto/vectors/invalid-whois-address.vec"),
            include_str!("../../proto/vectors/invalid-whois-answer-empty.vec"),
            include_str!("../../proto/vectors/invalid-whois-hops-9.vec"),
        ];
        let mut out: Vec<Vec<u8>> = files
            .iter()
            .map(|f| {
                let h: String = f
                    .lines()
                    .filter_map(|l| l.strip_prefix("hex:"))
                    .map(str::trim)
                    .collect();
                unhex(&h)
            })
            .collect();
        // Sender seed | addressee seed | id | nonce | content | direct key | sealed.
        for row in include_str!("../../proto/vectors/direct-seal.txt").lines() {
            let f: Vec<&str> = row.split('|').map(str::trim).collect();
            if row.starts_with('#') || f.len() != 7 {
                continue;
            }
            let from = SigningKey::from_bytes(&unhex(f[0]).try_into().expect("seed"));
            let to = SigningKey::from_bytes(&unhex(f[1]).try_into().expect("seed"));
            let key = from.verifying_key().to_bytes();
            let d = Direct {
                sender: signing::peer_id_of(&key),
                addressee: signing::peer_id_of(&to.verifying_key().to_bytes()),
                id: MsgId(u64::from_str_radix(f[2], 16).expect("id")),
                hops: 4,
                key,
                nonce: unhex(f[3]).try_into().expect("nonce"),
                sealed: unhex(f[6]),
            };
            out.push(d.to_bytes());
        }
        // K | nonce | lobby | plaintext | sealed.
        for row in include_str!("../../proto/vectors/envelope-seal.txt").lines() {
            let f: Vec<&str> = row.split('|').map(str::trim).collect();
            if row.starts_with('#') || f.len() != 5 {
                continue;
            }
            let e = wire::Envelope {
                lobby: LobbyId(u64::from_str_radix(f[2], 16).expect("lobby")),
                nonce: unhex(f[1]).try_into().expect("nonce"),
                sealed: unhex(f[4]),
            };
            out.push(e.to_bytes());
        }
        out
    })
}

/// Operations per input: keeps an execution cheap.
const MAX_OPS: usize = 64;
/// Packets per structured datagram.
const MAX_PACKETS: usize = 8;
/// Virtual time one input may cover: past the peer timeout and the give-up bound of
/// [`config`] (10 s and 40 s), so that those paths run too.
const MAX_VIRTUAL: Duration = Duration::from_secs(50);
/// Allowance of the opt-in byte bound.
const BYTE_ALLOWANCE: u64 = 2 * MAX_DATAGRAM as u64;

/// With `FUZZ_NODE_STATS=1` every execution prints the counters of the paths of revisions
/// 1.4 to 1.8 to stderr: run over the corpus (`-runs=0`), they tell whether those paths are
/// reached.
fn stats_printed() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FUZZ_NODE_STATS").is_some_and(|v| v == "1"))
}

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
    /// A data packet of a lobby whose messages are cut in pieces of `piece` bytes.
    fn build(&self, elapsed: Duration, piece: usize) -> Data {
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
            piece
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
    fn build(&self, lobby: LobbyId, elapsed: Duration, piece: usize) -> Packet {
        let body = match self {
            Pkt::Data(d) => Body::Data(d.build(elapsed, piece)),
            Pkt::Repair { repairer, data } => Body::Repair {
                repairer: repairer.id(),
                data: data.build(elapsed, piece),
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

/// A nick of any shape [`nick`] makes, or the node's, or its friends' in another case.
fn any_nick(n: u8) -> String {
    match n % 6 {
        4 => "victim".into(),
        5 => "FRIEND".into(),
        _ => nick(n),
    }
}

/// Lobby names a list or an invitation may carry: the node's public lobby, its private one
/// (which must never be listed), and others.
const NAMES: [&str; 4] = ["fuzz", PRIVATE_NAME, "general", "x"];

/// Which way a datagram comes: on a group, or by unicast from one of the two friends.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Via(u8);

impl Via {
    fn path(self) -> Path {
        match self.0 % 3 {
            0 => Path::Multicast(([10, 0, 0, 66], 47110).into()),
            1 => Path::Unicast(FRIEND.into()),
            _ => Path::Unicast(FRIEND2.into()),
        }
    }
}

/// What a direct message holds.
#[derive(Arbitrary, Debug)]
enum C {
    Text {
        len: u16,
        c: u8,
        nick: u8,
    },
    /// An acknowledgement of one of the node's own direct messages (or of any id).
    Ack {
        own: u8,
    },
    Invitation {
        right_key: bool,
        name: u8,
        nick: u8,
        again: bool,
    },
    Unknown(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Structured packets, sealed into one datagram, on the group or from a friend.
    Packets {
        foreign: bool,
        via: Via,
        chain: bool,
        reorder: bool,
        pkts: Vec<Pkt>,
    },
    /// Structured packets of the private lobby: `how` 0 or 1 sealed in an envelope under its
    /// key, 2 not sealed, 3 sealed under another key, else with the envelope's byte `at`
    /// changed.
    Private {
        via: Via,
        chain: bool,
        how: u8,
        at: u16,
        pkts: Vec<Pkt>,
    },
    /// A hello from a friend: its peer id (or another), echoing the node's last hello to it,
    /// naming the public lobby and (by its tag) the private one.
    Hello {
        second: bool,
        sender: P,
        echo: bool,
        delay: u16,
        listed: bool,
        tagged: bool,
    },
    /// A challenge from the friend: arbitrary values, or h(L, N, me) for a message N it holds.
    Challenge { values: Vec<u64>, real: bool },
    /// Raw bytes as a datagram.
    Raw(Vec<u8>),
    /// Structured packets with one byte replaced.
    Mutated { pkts: Vec<Pkt>, at: u16, byte: u8 },
    /// A direct message from `from`, sealed with its key (a keyless id, or the node's own,
    /// claims a key that is not its), to `to`, with a byte of the datagram flipped or not.
    Direct {
        via: Via,
        from: P,
        to: P,
        msg: u8,
        nonce: u8,
        hops: u8,
        content: C,
        flip: Option<u16>,
    },
    /// A lobby list (names of [`NAMES`] and member counts) or a request for one.
    List {
        via: Via,
        sender: P,
        request: bool,
        lobbies: Vec<(u8, u8)>,
        more: bool,
    },
    /// A who-is query or answer from a friend; with `own`, for a query the node asked or was
    /// given.
    WhoIs {
        second: bool,
        sender: P,
        answer: bool,
        own: bool,
        id: u8,
        hops: u8,
        nick: u8,
        peers: Vec<(P, u8, u16, bool, bool)>,
    },
    /// The datagram of a test vector of revisions 1.4 to 1.8.
    Vector { via: Via, index: u8 },
    /// Advances virtual time by that many milliseconds, running every timer on the way.
    Advance(u16),
    /// Jumps to the next timer.
    NextTimer,
    /// The application sends a message of up to 4 KiB, or if `big` near the largest size.
    Send {
        private: bool,
        len: u16,
        big: bool,
        c: u8,
    },
    /// The application gives back a message from history.
    Restore {
        private: bool,
        source: P,
        seq: S,
        msg: u8,
        len: u16,
        c: u8,
        sent_at: i32,
        nick: u8,
    },
    /// The application sends a direct message of up to 1,010 bytes.
    SendDirect { to: P, len: u16, c: u8 },
    /// The application invites a peer into the private lobby.
    Invite { to: P },
    /// The application asks who goes by a nick.
    AskWhoIs { nick: u8 },
    /// The application asks for the lobby list.
    AskList,
    /// The public lobby is named to friends and listed, or not.
    SetListed(bool),
    /// Multicast on or off.
    Multicast(bool),
    /// Leaves and joins again, numbering own packets from `first_seq`.
    Rejoin { first_seq: S },
    /// Leaves the private lobby and joins it again (with a new nonce seed).
    RejoinPrivate { first_seq: S },
    /// The wall clock is set by that many milliseconds.
    SetWall(i32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    first_seq: S,
    ops: Vec<Op>,
}

/// Most direct messages, who-is queries and answers remembered as given.
const MAX_GIVEN: usize = 4096;

/// What the node has been told, for checking what it sends.
#[derive(Default)]
struct Told {
    /// Every data packet it received from others or sent itself, by (lobby, source, seq).
    data: HashMap<(LobbyId, PeerId, u64), Vec<Data>>,
    /// Highest seq of each other source in each lobby that some packet mentioned.
    mentioned: HashMap<(LobbyId, PeerId), u64>,
    /// Message ids delivered.
    delivered: HashSet<MsgId>,
    /// Heartbeats of others it was given.
    beats: Vec<Heartbeat>,
    /// Others' bundles and links it was given, as sealed (without a repairer).
    bundles: HashSet<Vec<u8>>,
    /// Link hashes its own anchors listed.
    own_links: HashSet<LinkHash>,
    /// The seqs of its own messages in each lobby, as `send` numbered them.
    own: Vec<(LobbyId, std::ops::Range<u64>)>,
    /// The timestamp of the node's latest hello to each friend, for the friend to echo.
    my_hello: HashMap<SocketAddr, u64>,
    /// Direct messages given, by (sender, id, nonce).
    directs: HashMap<(PeerId, MsgId, [u8; 24]), Direct>,
    /// Who-is queries and answers given.
    queries: Vec<WhoIsQuery>,
    answers: Vec<WhoIsAnswer>,
    /// Ids of the node's own direct messages and who-is queries.
    own_directs: Vec<MsgId>,
    own_queries: Vec<MsgId>,
    /// Direct message ids delivered (texts and invitations).
    directs_delivered: HashSet<MsgId>,
    /// Nonces of the node's own envelopes and direct messages, with what each sealed: one
    /// sealed packet may go to several places (a direct message to the group and to each
    /// friend), but a nonce never seals two different ones.
    nonces: HashMap<[u8; 24], Vec<u8>>,
    /// Events of acknowledgements, invitations, who-is answers and lobby lists, counted.
    events: [u64; 4],
}

impl Told {
    /// A nonce of the node's: new, or the same sealed bytes sent again.
    fn nonce(&mut self, nonce: [u8; 24], sealed: &[u8]) {
        let was = self.nonces.entry(nonce).or_insert_with(|| sealed.to_vec());
        assert!(
            was.as_slice() == sealed,
            "nonce {nonce:02x?} sealed two things: {was:02x?} and {sealed:02x?}"
        );
    }

    fn data(&mut self, lobby: LobbyId, d: Data) {
        let v = self.data.entry((lobby, d.source, d.seq)).or_default();
        if !v.contains(&d) {
            v.push(d);
        }
    }

    fn mention(&mut self, lobby: LobbyId, source: PeerId, seq: u64) {
        if source != me() {
            let m = self.mentioned.entry((lobby, source)).or_insert(seq);
            *m = (*m).max(seq);
        }
    }

    /// Notes what a datagram fed to the node says, as the node decodes it: the packets in
    /// bundles and links, whether they verify or not, those of the private lobby's envelopes
    /// that open (the node may only know less); direct messages and who-is packets.
    fn datagram(&mut self, lobbies: [LobbyId; 2], bytes: &[u8]) {
        let mut packets = Vec::new();
        self.items(bytes, &mut packets, true);
        for p in packets {
            if !lobbies.contains(&p.lobby) || p.sender() == me() {
                continue;
            }
            let lobby = p.lobby;
            match p.body {
                Body::Data(d) | Body::Repair { data: d, .. } => {
                    self.mention(lobby, d.source, d.seq);
                    if d.source != me() {
                        self.data(lobby, d);
                    }
                }
                Body::Session(s) => {
                    self.mention(lobby, s.sender, s.sent.next.saturating_sub(1));
                    for Heard(src, high) in s.heard {
                        self.mention(lobby, src, high);
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

    fn items(&mut self, bytes: &[u8], packets: &mut Vec<Packet>, outer: bool) {
        for item in wire::decode_datagram(bytes) {
            match item {
                Ok(Decoded::Packet(p)) => packets.push(p),
                Ok(Decoded::Bundle(b)) => {
                    if self.bundles.len() < 4096 {
                        self.bundles.insert(as_sealed(&b));
                    }
                    packets.extend(signing::contents(&b).unwrap_or_default());
                }
                Ok(Decoded::Envelope(e)) if outer => {
                    if let Ok(plain) = private_key().open(&e) {
                        self.items(&plain, packets, false);
                    }
                }
                Ok(Decoded::Direct(d)) if self.directs.len() < MAX_GIVEN => {
                    let k = (d.sender, d.id, d.nonce);
                    match self.directs.get(&k) {
                        Some(g) if g.hops >= d.hops => {}
                        _ => {
                            self.directs.insert(k, d);
                        }
                    }
                }
                Ok(Decoded::WhoIs(WhoIs::Query(q))) if self.queries.len() < MAX_GIVEN => {
                    self.queries.push(q);
                }
                Ok(Decoded::WhoIs(WhoIs::Answer(a))) if self.answers.len() < MAX_GIVEN => {
                    self.answers.push(a);
                }
                _ => {}
            }
        }
    }
}

/// The private lobby's key, made once.
fn private_key() -> &'static LobbyKey {
    static K: OnceLock<LobbyKey> = OnceLock::new();
    K.get_or_init(|| LobbyKey::from_bytes(unhex(PRIVATE_KEY).try_into().expect("32 bytes")))
}

struct Run {
    node: Node,
    lobby: Lobby,
    private: Lobby,
    start: Instant,
    now: Instant,
    told: Told,
    /// Envelopes sealed by the harness, and private joins: each gets nonces of its own.
    nonces: u64,
}

impl Run {
    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn next_nonce(&mut self) -> [u8; 24] {
        self.nonces += 1;
        let mut n = [0x5a; 24];
        n[..8].copy_from_slice(&self.nonces.to_be_bytes());
        n
    }

    fn feed(&mut self, bytes: &[u8]) {
        let from: SocketAddr = ([10, 0, 0, 66], 47110).into();
        self.feed_via(Path::Multicast(from), bytes);
    }

    fn feed_via(&mut self, path: Path, bytes: &[u8]) {
        self.told.datagram([self.lobby.id, self.private.id], bytes);
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
            self.check_transmit(t.dest, &t.payload);
        }
        while let Some(e) = self.node.poll_event() {
            match e {
                Event::Message(m) => {
                    assert_ne!(m.source, me(), "own message delivered: {m:?}");
                    assert!(
                        self.told.delivered.insert(m.msg_id),
                        "message id delivered twice: {m:?}"
                    );
                }
                Event::Direct(m) => {
                    assert_ne!(m.from, me(), "own direct message delivered: {m:?}");
                    assert!(
                        self.told.directs_delivered.insert(m.id),
                        "direct message id delivered twice: {m:?}"
                    );
                }
                Event::Invitation(i) => {
                    assert_ne!(i.from, me(), "own invitation delivered: {i:?}");
                    assert_eq!(i.lobby.id, i.key.id(), "invitation to another lobby: {i:?}");
                    self.told.events[1] += 1;
                    assert!(
                        self.told.directs_delivered.insert(i.id),
                        "direct message id delivered twice: {i:?}"
                    );
                }
                Event::DirectAcked { .. } => self.told.events[0] += 1,
                Event::WhoIs { .. } => self.told.events[2] += 1,
                Event::LobbyList { .. } => self.told.events[3] += 1,
                _ => {}
            }
        }
        self.check_stats();
    }

    fn check_transmit(&mut self, dest: lobbycast::proto::Dest, payload: &[u8]) {
        assert!(!payload.is_empty(), "empty datagram");
        assert!(
            payload.len() <= MAX_DATAGRAM,
            "datagram of {} bytes",
            payload.len()
        );
        let mut packets = Vec::new();
        self.check_items(dest, payload, &mut packets, None);
        for (p, sealed) in packets {
            // A private lobby's packets leave only in its envelopes, and an envelope holds
            // only its lobby's (PROTOCOL.md 4.14).
            let lobby = sealed.unwrap_or(self.lobby.id);
            assert_eq!(
                p.lobby, lobby,
                "sent to another lobby, or sealed amiss: {p:?}"
            );
            if !matches!(p.body, Body::Data(_) | Body::Heartbeat(_)) {
                assert_eq!(p.sender(), me(), "sent under another id: {p:?}");
            }
            match p.body {
                Body::Data(d) => {
                    // Its own, or another's it was given and forwards as it was written.
                    if d.source == me() {
                        self.told.data(lobby, d);
                    } else {
                        let known = self
                            .told
                            .data
                            .get(&(lobby, d.source, d.seq))
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
                        && self
                            .told
                            .own
                            .iter()
                            .any(|(l, r)| *l == lobby && r.contains(&data.seq));
                    let known = own
                        || self
                            .told
                            .data
                            .get(&(lobby, data.source, data.seq))
                            .is_some_and(|v| v.contains(&data));
                    assert!(known, "repair of data never held: {data:?}");
                }
                Body::Request(r) => {
                    assert_ne!(r.source, me(), "request for own data: {r:?}");
                    let top = self.told.mentioned.get(&(lobby, r.source)).copied();
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

    /// Checks the items of a datagram the node sends (or of an envelope of the private lobby
    /// in it, `sealed`), gathering the lobby packets.
    fn check_items(
        &mut self,
        dest: lobbycast::proto::Dest,
        bytes: &[u8],
        packets: &mut Vec<(Packet, Option<LobbyId>)>,
        sealed: Option<LobbyId>,
    ) {
        for item in wire::decode_datagram(bytes) {
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
                        let p = match (p.body, repairer) {
                            (Body::Data(data), Some(repairer)) => Packet {
                                lobby: p.lobby,
                                body: Body::Repair { repairer, data },
                            },
                            (body, _) => Packet {
                                lobby: p.lobby,
                                body,
                            },
                        };
                        packets.push((p, sealed));
                    }
                    continue;
                }
                Ok(Decoded::Link(Link::Hello(h))) => {
                    assert!(sealed.is_none(), "a hello in an envelope");
                    assert_eq!(h.sender, me(), "hello under another id: {h:?}");
                    assert!(
                        !h.lobbies.contains(&self.private.id),
                        "the private lobby named in a hello: {h:?}"
                    );
                    if let lobbycast::proto::Dest::Peer(addr) = dest {
                        self.told.my_hello.insert(addr, h.timestamp);
                    }
                    continue;
                }
                Ok(Decoded::Link(Link::Challenge(c))) => {
                    assert!(sealed.is_none(), "a challenge in an envelope");
                    assert_eq!(c.sender, me(), "challenge under another id: {c:?}");
                    continue;
                }
                Ok(Decoded::Envelope(e)) => {
                    assert!(sealed.is_none(), "an envelope in an envelope");
                    assert_eq!(e.lobby, self.private.id, "an envelope of another lobby");
                    self.told.nonce(e.nonce, &e.sealed);
                    let plain = private_key()
                        .open(&e)
                        .expect("own envelopes open under the lobby's key");
                    self.check_items(dest, &plain, packets, Some(e.lobby));
                    continue;
                }
                Ok(Decoded::Direct(d)) => {
                    self.check_direct(&d);
                    continue;
                }
                Ok(Decoded::List(l)) => {
                    assert!(sealed.is_none(), "a lobby list in an envelope");
                    assert_eq!(l.sender(), me(), "lobby list under another id: {l:?}");
                    if let ListPacket::List(l) = l {
                        assert!(
                            l.lobbies.iter().all(|(n, _)| n == "fuzz"),
                            "a list names a lobby other than the public one: {l:?}"
                        );
                    }
                    continue;
                }
                Ok(Decoded::WhoIs(w)) => {
                    assert!(sealed.is_none(), "a who-is in an envelope");
                    self.check_whois(&w);
                    continue;
                }
                other => panic!("the node sent {other:?} in {bytes:02x?}"),
            };
            packets.push((p, sealed));
        }
    }

    /// A direct message the node sends: its own, opening at its addressee (an invitation
    /// only into the private lobby it holds), or one it was given, placed on unchanged but
    /// for fewer hops, and never one addressed to itself.
    fn check_direct(&mut self, d: &Direct) {
        if d.sender == me() {
            assert_ne!(d.addressee, me(), "a direct message to itself: {d:?}");
            self.told.nonce(d.nonce, &d.sealed);
            let k = key_of(d.addressee).expect("the node writes only to keys it was shown");
            match direct::open(&k, d).expect("own direct messages open at their addressee") {
                Content::Invitation { name, key, .. } => {
                    assert_eq!(name, PRIVATE_NAME, "invitation into another lobby");
                    assert_eq!(
                        &key,
                        private_key().as_bytes(),
                        "invitation with another key"
                    );
                }
                Content::Text { .. } | Content::Ack(_) => {}
                c @ Content::Unknown(_) => panic!("own direct message holds {c:?}"),
            }
        } else {
            assert_ne!(
                d.addressee,
                me(),
                "placed on a direct message to itself: {d:?}"
            );
            let given = self
                .told
                .directs
                .get(&(d.sender, d.id, d.nonce))
                .unwrap_or_else(|| panic!("placed on a direct message never given: {d:?}"));
            assert!(d.hops <= given.hops, "placed on with more hops: {d:?}");
            let as_given = Direct {
                hops: given.hops,
                ..d.clone()
            };
            assert_eq!(&as_given, given, "placed on changed");
        }
    }

    /// A who-is packet the node sends: its own query, a query it was given with a hop less,
    /// its answer to a query it was given (naming no private lobby), or an answer it was
    /// given, as it was.
    fn check_whois(&mut self, w: &WhoIs) {
        match w {
            WhoIs::Query(q) if q.sender == me() => {
                assert!(
                    self.told.own_queries.contains(&q.id),
                    "query never asked: {q:?}"
                );
            }
            WhoIs::Query(q) => {
                let given = self.told.queries.iter().any(|g| {
                    g.id == q.id && g.sender == q.sender && g.nick == q.nick && g.hops == q.hops + 1
                });
                assert!(
                    given,
                    "passed on a query never given, or not a hop less: {q:?}"
                );
            }
            WhoIs::Answer(a) if a.sender == me() => {
                assert!(
                    self.told.queries.iter().any(|g| g.id == a.id),
                    "answer to a query never given: {a:?}"
                );
                for p in &a.peers {
                    assert!(
                        p.lobbies.iter().all(|n| n == "fuzz"),
                        "an answer names a lobby other than the public one: {a:?}"
                    );
                }
            }
            WhoIs::Answer(a) => {
                assert!(
                    self.told.answers.contains(a),
                    "passed back an answer never given: {a:?}"
                );
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
                assert!(
                    self.told.own_links.contains(&h),
                    "own link no anchor listed: {b:?}"
                );
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
                via,
                chain,
                reorder,
                pkts,
            } => {
                let lobby = if *foreign { LobbyId(id.0 ^ 1) } else { id };
                let piece = self.node.piece_size(lobby);
                let packets: Vec<Packet> = pkts
                    .iter()
                    .take(MAX_PACKETS)
                    .map(|p| p.build(lobby, self.elapsed(), piece))
                    .collect();
                if !packets.is_empty() {
                    let bytes = seal(&packets, *chain, *reorder);
                    self.feed_via(via.path(), &bytes);
                }
            }
            Op::Private {
                via,
                chain,
                how,
                at,
                pkts,
            } => {
                let lobby = self.private.id;
                let piece = self.node.piece_size(lobby);
                let packets: Vec<Packet> = pkts
                    .iter()
                    .take(MAX_PACKETS)
                    .map(|p| p.build(lobby, self.elapsed(), piece))
                    .collect();
                if packets.is_empty() {
                    return;
                }
                let plain = seal(&packets, *chain, false);
                let nonce = self.next_nonce();
                let bytes = match how % 5 {
                    0 | 1 => private_key().seal(nonce, &plain).to_bytes(),
                    2 => plain,
                    3 => {
                        let other = LobbyKey::from_bytes([7; 32]).seal(nonce, &plain);
                        wire::Envelope { lobby, ..other }.to_bytes()
                    }
                    _ => {
                        let mut b = private_key().seal(nonce, &plain).to_bytes();
                        let i = usize::from(*at) % b.len();
                        b[i] ^= 1;
                        b
                    }
                };
                self.feed_via(via.path(), &bytes);
            }
            Op::Hello {
                second,
                sender,
                echo,
                delay,
                listed,
                tagged,
            } => {
                let addr: SocketAddr = if *second { FRIEND2 } else { FRIEND }.into();
                let echo = self
                    .told
                    .my_hello
                    .get(&addr)
                    .copied()
                    .filter(|_| *echo)
                    .map(|timestamp| HelloEcho {
                        timestamp,
                        delay: u64::from(*delay),
                    });
                let mut lobbies = Vec::new();
                if *listed {
                    lobbies.push(id);
                }
                if *tagged {
                    lobbies.push(private_key().tag(sender.id(), me()));
                }
                let hello = Hello {
                    sender: sender.id(),
                    nick: "friend".into(),
                    timestamp: self.elapsed().as_micros() as u64,
                    echo,
                    lobbies,
                };
                self.feed_via(Path::Unicast(addr), &Link::Hello(hello).to_bytes());
            }
            Op::Challenge { values, real } => {
                let mut hashes: Vec<u64> =
                    values.iter().take(MAX_CHALLENGE_HASHES).copied().collect();
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
                let piece = self.node.piece_size(id);
                let packets: Vec<Packet> = pkts
                    .iter()
                    .take(MAX_PACKETS)
                    .map(|p| p.build(id, self.elapsed(), piece))
                    .collect();
                let mut bytes = seal(&packets, false, false);
                if !bytes.is_empty() {
                    let i = usize::from(*at) % bytes.len();
                    bytes[i] = *byte;
                    self.feed(&bytes);
                }
            }
            Op::Direct {
                via,
                from,
                to,
                msg,
                nonce,
                hops,
                content,
                flip,
            } => {
                // A keyless id, or the node's own, is claimed with a key that is not its.
                let forger = SigningKey::from_bytes(&[0xee; 32]);
                let writer = key_of(from.id())
                    .filter(|_| from.id() != me())
                    .unwrap_or_else(|| forger.clone());
                let to_key = key_of(to.id()).unwrap_or(forger).verifying_key().to_bytes();
                let sent_at = sent_at(self.elapsed(), 0);
                let content = match content {
                    C::Text { len, c, nick: n } => Content::Text {
                        sent_at,
                        nick: nick(*n),
                        text: repeat(*c, usize::from(*len) % 1010),
                    },
                    C::Ack { own } => {
                        let ids = &self.told.own_directs;
                        Content::Ack(if ids.is_empty() {
                            MsgId(u64::from(*own))
                        } else {
                            ids[usize::from(*own) % ids.len()]
                        })
                    }
                    C::Invitation {
                        right_key,
                        name,
                        nick: n,
                        again,
                    } => Content::Invitation {
                        sent_at,
                        nick: nick(*n),
                        name: NAMES[usize::from(*name) % NAMES.len()].into(),
                        key: if *right_key {
                            *private_key().as_bytes()
                        } else {
                            [7; 32]
                        },
                        again: *again,
                    },
                    C::Unknown(t) => Content::Unknown(3 + u64::from(*t)),
                };
                let Some(mut d) = direct::seal(
                    &writer,
                    to.id(),
                    &to_key,
                    MsgId(u64::from(*msg)),
                    [*nonce; 24],
                    &content,
                ) else {
                    return;
                };
                d.sender = from.id();
                d.hops = hops % 10;
                let mut bytes = d.to_bytes();
                if let Some(at) = flip {
                    let i = usize::from(*at) % bytes.len();
                    bytes[i] ^= 1;
                }
                self.feed_via(via.path(), &bytes);
            }
            Op::List {
                via,
                sender,
                request,
                lobbies,
                more,
            } => {
                let sender = sender.id();
                let packet = if *request {
                    ListPacket::Request { sender }
                } else {
                    ListPacket::List(LobbyList {
                        sender,
                        lobbies: lobbies
                            .iter()
                            .take(wire::MAX_LIST_LOBBIES + 1)
                            .map(|&(n, c)| {
                                (NAMES[usize::from(n) % NAMES.len()].into(), u64::from(c))
                            })
                            .collect(),
                        more: *more,
                    })
                };
                self.feed_via(via.path(), &packet.to_bytes());
            }
            Op::WhoIs {
                second,
                sender,
                answer,
                own,
                id: qid,
                hops,
                nick: n,
                peers,
            } => {
                let addr: SocketAddr = if *second { FRIEND2 } else { FRIEND }.into();
                let ids: Vec<MsgId> = self
                    .told
                    .own_queries
                    .iter()
                    .copied()
                    .chain(self.told.queries.iter().map(|q| q.id))
                    .collect();
                let qid = if *own && !ids.is_empty() {
                    ids[usize::from(*qid) % ids.len()]
                } else {
                    MsgId(u64::from(*qid))
                };
                let w = if *answer {
                    let mut peers: Vec<WhoIsPeer> = peers
                        .iter()
                        .take(wire::MAX_WHOIS_PEERS)
                        .map(|&(p, n, seen, listed, addr)| WhoIsPeer {
                            peer: p.id(),
                            nick: any_nick(n),
                            seen: u64::from(seen),
                            lobbies: if listed {
                                vec!["fuzz".into()]
                            } else {
                                Vec::new()
                            },
                            addr: addr.then(|| FRIEND2.into()),
                        })
                        .collect();
                    if peers.is_empty() {
                        peers.push(WhoIsPeer {
                            peer: sender.id(),
                            nick: any_nick(*n),
                            seen: 0,
                            lobbies: Vec::new(),
                            addr: None,
                        });
                    }
                    WhoIs::Answer(WhoIsAnswer {
                        sender: sender.id(),
                        id: qid,
                        peers,
                    })
                } else {
                    WhoIs::Query(WhoIsQuery {
                        sender: sender.id(),
                        id: qid,
                        hops: hops % 10,
                        nick: any_nick(*n),
                    })
                };
                self.feed_via(Path::Unicast(addr), &w.to_bytes());
            }
            Op::Vector { via, index } => {
                let v = vectors();
                let bytes = v[usize::from(*index) % v.len()].clone();
                self.feed_via(via.path(), &bytes);
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
            Op::Send {
                private,
                len,
                big,
                c,
            } => {
                let lobby = if *private { self.private.id } else { id };
                let n = if *big {
                    MAX_MESSAGE - 4 + usize::from(*len % 8)
                } else {
                    usize::from(*len % 4096)
                };
                let text = repeat(*c, n);
                if let Ok(m) = self.node.send(self.now, lobby, &text) {
                    assert_eq!(m.source, me());
                    assert_eq!(m.text, text);
                    let piece = self.node.piece_size(lobby);
                    let pieces = text.len().div_ceil(piece).max(1) as u64;
                    self.told.own.push((lobby, m.seq..m.seq + pieces));
                }
                self.run_due();
            }
            Op::Restore {
                private,
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
                    lobby: if *private { self.private.id } else { id },
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
            Op::SendDirect { to, len, c } => {
                let text = repeat(*c, usize::from(*len) % 1010);
                if let Ok(id) = self.node.send_direct(self.now, to.id(), &text) {
                    self.told.own_directs.push(id);
                }
                self.run_due();
            }
            Op::Invite { to } => {
                if let Ok(id) = self.node.invite(self.now, to.id(), self.private.id) {
                    self.told.own_directs.push(id);
                }
                self.run_due();
            }
            Op::AskWhoIs { nick: n } => {
                if let Ok(id) = self.node.whois(self.now, &any_nick(*n)) {
                    self.told.own_queries.push(id);
                }
                self.run_due();
            }
            Op::AskList => {
                self.node.ask_lobby_list(self.now);
                self.run_due();
            }
            Op::SetListed(listed) => {
                self.node.set_listed(self.now, id, *listed);
                self.run_due();
            }
            Op::Multicast(on) => self.node.set_multicast(*on),
            Op::Rejoin { first_seq } => {
                self.node.leave(id);
                self.node.join(self.now, &self.lobby, first_seq.seq());
                self.run_due();
            }
            Op::RejoinPrivate { first_seq } => {
                self.node.leave(self.private.id);
                self.join_private(first_seq.seq());
                self.run_due();
            }
            Op::SetWall(ms) => {
                let wall = (NOW_MS + self.elapsed().as_millis() as u64)
                    .saturating_add_signed(i64::from(*ms));
                self.node.set_wall_clock(self.now, wall);
            }
        }
    }

    /// Joins the private lobby, its envelopes' nonces seeded anew.
    fn join_private(&mut self, first_seq: u64) {
        let mut seed = [0u8; 32];
        seed[..24].copy_from_slice(&self.next_nonce());
        let private = self.private.clone();
        self.node
            .join_private(self.now, &private, private_key().clone(), first_seq, seed);
    }

    /// The packets a restored message may be served as: those rebuilt exactly from its text
    /// (all of an own message; of others', only text without replaced bytes).
    fn restored(&mut self, m: &Message) {
        let piece = self.node.piece_size(m.lobby);
        if m.source != me() {
            let count = m.text.len().div_ceil(piece).max(1) as u64;
            self.told
                .mention(m.lobby, m.source, m.seq.saturating_add(count - 1));
        }
        if m.source != me() && m.text.contains('\u{FFFD}') {
            return;
        }
        let body = m.text.as_bytes();
        let pieces: Vec<&[u8]> = if body.is_empty() {
            vec![body]
        } else {
            body.chunks(piece).collect()
        };
        let count = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            let Some(seq) = m.seq.checked_add(i as u64) else {
                return;
            };
            self.told.data(
                m.lobby,
                Data {
                    source: m.source,
                    seq,
                    msg_id: m.msg_id,
                    sent_at: m.sent_at,
                    nick: m.nick.clone(),
                    frag_index: i as u16,
                    frag_count: count as u16,
                    body: piece.to_vec(),
                },
            );
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
    let named = Lobby::new(PRIVATE_NAME).expect("valid lobby name");
    let private = private_key().lobby(&named);
    let mut node = Node::new(config(), key(0), "victim", start, NOW_MS, 7).expect("valid nick");
    node.join(start, &lobby, input.first_seq.seq());
    node.set_discovery(start, true);
    for f in [FRIEND, FRIEND2] {
        node.add_friend(start, f.into()).expect("a unicast address");
    }
    let mut run = Run {
        node,
        lobby,
        private,
        start,
        now: start,
        told: Told::default(),
        nonces: 0,
    };
    run.join_private(input.first_seq.seq());
    run.run_due();
    for op in input.ops.iter().take(MAX_OPS) {
        run.step(op);
    }
    // Let what was started finish, within the bound on virtual time.
    let until = (run.now + Duration::from_secs(2)).min(start + MAX_VIRTUAL);
    run.advance_to(until);
    if stats_printed() {
        let s = run.node.stats();
        eprintln!(
            "stats envelopes_opened={} envelopes_forged={} unsealed={} sealed_foreign={} \
             envelopes_sealed={} directs_sent={} directs_retried={} directs_failed={} \
             directs_delivered={} directs_duplicate={} directs_placed={} directs_dropped={} \
             invitations_sent={} lists_heard={} lists_sent={} whois_heard={} whois_dropped={} \
             acked={} invitations={} whois_events={} list_events={}",
            s.envelopes_opened,
            s.envelopes_forged,
            s.unsealed,
            s.sealed_foreign,
            s.envelopes_sealed,
            s.directs_sent,
            s.directs_retried,
            s.directs_failed,
            s.directs_delivered,
            s.directs_duplicate,
            s.directs_placed,
            s.directs_dropped,
            s.invitations_sent,
            s.lists_heard,
            s.lists_sent,
            s.whois_heard,
            s.whois_dropped,
            run.told.events[0],
            run.told.events[1],
            run.told.events[2],
            run.told.events[3],
        );
    }
});
