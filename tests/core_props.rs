//! Property tests of the core: fragments, dedup, and a node fed hostile packets.

mod signed;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lobbycast::proto::dedup::Dedup;
use lobbycast::proto::fragment::{Limits, Reassembler, piece_count, piece_size, split};
use lobbycast::proto::hash::SeededState;
use lobbycast::proto::wire::{
    Acked, Body, Data, Echo, Heard, MAX_MESSAGE, MAX_PIECE, Packet, Request, Sent, SeqRange,
    Session,
};
use lobbycast::proto::{Config, Lobby, LobbyId, MsgId, Node, PeerId};
use lobbycast::proto::{MAX_REPAIRS_PER_REQUEST, Path};
use proptest::prelude::*;

fn fragments(body: &[u8], piece: usize) -> Vec<Data> {
    let n = piece_count(body.len(), piece) as u16;
    split(body, piece)
        .enumerate()
        .map(|(i, p)| Data {
            source: PeerId(9),
            seq: 1000 + i as u64,
            msg_id: MsgId(77),
            sent_at: 1,
            nick: "x".into(),
            frag_index: i as u16,
            frag_count: n,
            body: p.to_vec(),
        })
        .collect()
}

proptest! {
    #[test]
    fn fragments_reassemble_in_any_order(
        len in 0usize..=MAX_MESSAGE,
        seed in any::<u64>(),
        dup in any::<bool>(),
        private in any::<bool>(),
    ) {
        // A private lobby's pieces are smaller, and so is its largest message.
        let piece = piece_size(private);
        let len = len / MAX_PIECE * piece + len % MAX_PIECE % piece;
        let body: Vec<u8> = (0..len).map(|i| (i as u64).wrapping_mul(seed | 1) as u8).collect();
        let mut frags = fragments(&body, piece);
        prop_assert!(frags.len() <= 64);
        // A seeded shuffle: every order is reachable.
        let mut s = seed;
        for i in (1..frags.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            frags.swap(i, (s >> 33) as usize % (i + 1));
        }
        // A one-piece message bypasses reassembly (the sequence window drops its copies).
        if dup && frags.len() > 1 {
            let again = frags[0].clone();
            frags.insert(frags.len() / 2, again);
        }
        let limits = Limits { slots: 4, bytes: 1 << 20, timeout: Duration::from_secs(30) };
        let mut r = Reassembler::new(limits, SeededState::new(1, 2));
        let now = Instant::now();
        let mut done = Vec::new();
        for f in frags {
            if let Some(a) = r.insert(now, LobbyId(1), f, false, piece).unwrap() {
                done.push(a);
            }
        }
        prop_assert_eq!(done.len(), 1);
        prop_assert_eq!(&done[0].data.body, &body);
        prop_assert_eq!(done[0].data.seq, 1000);
        prop_assert_eq!(r.len(), 0);
        prop_assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn dedup_stays_bounded_and_remembers_the_newest(
        ids in proptest::collection::vec(any::<u64>(), 1..2000),
        cap in 1usize..300,
    ) {
        let mut d = Dedup::new(Duration::from_secs(60), cap, SeededState::new(3, 4));
        let now = Instant::now();
        for &id in &ids {
            d.insert(now, MsgId(id));
            prop_assert!(d.len() <= cap);
        }
        prop_assert!(d.contains(MsgId(*ids.last().unwrap())));
        prop_assert!(!d.insert(now, MsgId(*ids.last().unwrap())));
    }
}

// ---- a node under hostile input -------------------------------------------------------------

fn seq() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..8,
        Just(u64::MAX),
        Just(u64::MAX - 1),
        any::<u64>(),
        1u64 << 40..(1 << 40) + 8
    ]
}

fn peer() -> impl Strategy<Value = PeerId> {
    // A few peers, so that their packets interact; writer 1 is the node under test.
    (1u8..6).prop_map(signed::id)
}

/// How a hostile peer sends `packet`: what it writes in its own signed bundle (hostile
/// content, honest signature: a forged one is dropped before anything else), requests plain.
fn datagram(packet: &Packet) -> Vec<u8> {
    let key_of = |id: PeerId| signed::key((1u8..6).find(|&n| signed::id(n) == id).unwrap());
    let lobby = packet.lobby;
    match &packet.body {
        Body::Data(d) => signed::bundle(&key_of(d.source), lobby, std::slice::from_ref(packet)),
        Body::Session(s) => signed::bundle(&key_of(s.sender), lobby, std::slice::from_ref(packet)),
        Body::Repair { repairer, data } => {
            let p = Packet {
                lobby,
                body: Body::Data(data.clone()),
            };
            signed::repair(&key_of(data.source), lobby, &[p], *repairer)
        }
        _ => packet.to_bytes(),
    }
}

fn data() -> impl Strategy<Value = Data> {
    (
        peer(),
        seq(),
        0u64..4,
        any::<u64>(),
        0u16..3,
        1u16..4,
        0usize..40,
    )
        .prop_map(|(source, seq, msg, sent_at, idx, count, len)| Data {
            source,
            seq,
            msg_id: MsgId(msg),
            sent_at,
            nick: "h".into(),
            frag_index: idx.min(count - 1),
            frag_count: count,
            body: vec![b'z'; len],
        })
}

fn body(lobby: LobbyId) -> impl Strategy<Value = Packet> {
    prop_oneof![
        data().prop_map(Body::Data),
        (peer(), data()).prop_map(|(repairer, data)| Body::Repair { repairer, data }),
        (
            peer(),
            seq(),
            seq(),
            any::<u64>(),
            proptest::collection::vec((peer(), seq()), 0..4)
        )
            .prop_map(|(sender, a, b, ts, heard)| Body::Session(Session {
                sender,
                nick: "s".into(),
                timestamp: ts,
                sent: Sent {
                    low: a.min(b),
                    next: a.max(b)
                },
                heard: heard.iter().map(|&(p, s)| Heard(p, s)).collect(),
                echoes: vec![Echo {
                    peer: signed::id(1),
                    timestamp: ts,
                    delay: ts / 3
                }],
                acked: heard.iter().map(|&(p, s)| Acked(p, s / 2)).collect(),
                flags: 0,
                mheard: 0,
            })),
        (
            peer(),
            peer(),
            proptest::option::of(peer()),
            proptest::collection::vec((seq(), seq()), 1..4)
        )
            .prop_map(|(sender, source, hint, r)| Body::Request(Request {
                sender,
                source,
                hint,
                ranges: r
                    .into_iter()
                    .map(|(a, b)| SeqRange(a.min(b), a.max(b)))
                    .collect(),
            })),
    ]
    .prop_map(move |body| Packet { lobby, body })
}

fn inputs() -> impl Strategy<Value = Vec<(Packet, u64)>> {
    let lobby = Lobby::new("props").unwrap().id;
    proptest::collection::vec((body(lobby), 0u64..5_000), 1..120)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Whatever peers send, the node neither panics nor sends much more than it receives.
    #[test]
    fn hostile_packets_never_panic_and_draw_bounded_traffic(input in inputs()) {
        let t0 = Instant::now();
        let lobby = Lobby::new("props").unwrap();
        let mut node = Node::new(Config::default(), signed::key(1), "me", t0, 1_800_000_000_000, 5).unwrap();
        node.join(t0, &lobby, 0);
        node.send(t0, lobby.id, "something to repair").unwrap();
        let from = SocketAddr::from(([10, 0, 0, 2], 47110));
        let mut now = t0;
        let mut sent = 0u64;
        let drain = |node: &mut Node, sent: &mut u64| {
            while node.poll_transmit().is_some() {
                *sent += 1;
            }
            while node.poll_event().is_some() {}
        };
        for (packet, step_us) in &input {
            node.handle_datagram(now, Path::Multicast(from), &datagram(packet));
            drain(&mut node, &mut sent);
            now += Duration::from_micros(*step_us);
            node.handle_timeout(now);
            drain(&mut node, &mut sent);
        }
        // Let every timer run out: requests back off and give up, repairs go out.
        for _ in 0..2000 {
            match node.poll_timeout() {
                Some(t) if t <= now + Duration::from_secs(600) => {
                    now = now.max(t);
                    node.handle_timeout(now);
                    drain(&mut node, &mut sent);
                }
                _ => break,
            }
        }
        let s = node.stats();
        prop_assert!(
            s.repairs_sent <= MAX_REPAIRS_PER_REQUEST as u64 * s.requests_heard,
            "{} repairs for {} requests", s.repairs_sent, s.requests_heard
        );
        let (slots, bytes) = node.reassembly_load();
        prop_assert!(slots <= 256 && bytes <= 4 << 20);
    }
}
