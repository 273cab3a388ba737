//! Properties of the wire codec over generated input: arbitrary bytes never make it panic, and
//! every valid packet, alone or packed with others into a datagram, survives encode → decode.

use lobbycast::proto::ids::{LobbyId, MsgId, PeerId};
use lobbycast::proto::wire::{
    self, Acked, Body, Challenge, Data, Decoded, Echo, Heard, Heartbeat, Hello, HelloEcho, Link,
    MAX_CHALLENGE_HASHES, MAX_DATAGRAM, MAX_FRAGMENTS, MAX_HELLO_LOBBIES, MAX_NICK, MAX_PIECE,
    MAX_REQUEST_RANGES, MAX_SESSION_ACKED, MAX_SESSION_ECHOES, MAX_SESSION_HEARD, Packet, Request,
    Sent, SeqRange, Session,
};
use proptest::prelude::*;

/// Ids and sequence numbers: small values (short encodings) as well as full 64-bit ones.
fn uint() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..30, 0u64..70_000, any::<u64>()]
}

fn peer() -> impl Strategy<Value = PeerId> {
    uint().prop_map(PeerId)
}

/// Nicks of at most [`MAX_NICK`] bytes, with multi-byte characters among them.
fn nick() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..=MAX_NICK).prop_map(|chars| {
        let mut nick = String::new();
        for c in chars {
            if nick.len() + c.len_utf8() > MAX_NICK {
                break;
            }
            nick.push(c);
        }
        nick
    })
}

fn range() -> impl Strategy<Value = SeqRange> {
    (uint(), uint()).prop_map(|(a, b)| SeqRange(a.min(b), a.max(b)))
}

fn data() -> impl Strategy<Value = Data> {
    (
        (peer(), uint(), uint(), uint(), nick()),
        (1..=MAX_FRAGMENTS).prop_flat_map(|count| (0..count, Just(count))),
        proptest::collection::vec(any::<u8>(), 0..=MAX_PIECE),
    )
        .prop_map(
            |((source, seq, msg_id, sent_at, nick), (frag_index, frag_count), body)| Data {
                source,
                seq,
                msg_id: MsgId(msg_id),
                sent_at,
                nick,
                frag_index,
                frag_count,
                body,
            },
        )
}

fn session() -> impl Strategy<Value = Session> {
    (
        (peer(), nick(), uint(), range()),
        proptest::collection::vec(
            (peer(), uint()).prop_map(|(p, s)| Heard(p, s)),
            0..=MAX_SESSION_HEARD,
        ),
        proptest::collection::vec(
            (peer(), uint(), uint()).prop_map(|(peer, timestamp, delay)| Echo {
                peer,
                timestamp,
                delay,
            }),
            0..=MAX_SESSION_ECHOES,
        ),
        proptest::collection::vec(
            (peer(), uint()).prop_map(|(p, s)| Acked(p, s)),
            0..=MAX_SESSION_ACKED,
        ),
        // Revision 1.2's trailing fields: often zero, so that every omission is exercised.
        prop_oneof![Just(0u64), 0u64..8, any::<u64>()],
        prop_oneof![Just(0u64), uint()],
    )
        .prop_map(
            |((sender, nick, timestamp, sent), heard, echoes, acked, flags, mheard)| Session {
                sender,
                nick,
                timestamp,
                sent: Sent {
                    low: sent.0,
                    next: sent.1,
                },
                heard,
                echoes,
                acked,
                flags,
                mheard,
            },
        )
}

fn heartbeat() -> impl Strategy<Value = Heartbeat> {
    (peer(), nick(), uint(), uint(), any::<bool>()).prop_map(
        |(sender, nick, beat, sent_at, leaving)| Heartbeat {
            sender,
            nick,
            beat: MsgId(beat),
            sent_at,
            leaving,
        },
    )
}

/// Any valid friend-link packet.
fn link() -> impl Strategy<Value = Link> {
    let hello = (
        (peer(), nick(), uint()),
        proptest::option::of((uint(), uint())),
        proptest::collection::vec(uint().prop_map(LobbyId), 0..=MAX_HELLO_LOBBIES),
    )
        .prop_map(|((sender, nick, timestamp), echo, lobbies)| {
            Link::Hello(Hello {
                sender,
                nick,
                timestamp,
                echo: echo.map(|(timestamp, delay)| HelloEcho { timestamp, delay }),
                lobbies,
            })
        });
    let challenge = (
        peer(),
        proptest::collection::vec(uint(), 1..=MAX_CHALLENGE_HASHES),
    )
        .prop_map(|(sender, hashes)| Link::Challenge(Challenge { sender, hashes }));
    prop_oneof![hello, challenge]
}

fn request() -> impl Strategy<Value = Request> {
    (
        peer(),
        peer(),
        proptest::option::of(peer()),
        proptest::collection::vec(range(), 1..=MAX_REQUEST_RANGES),
    )
        .prop_map(|(sender, source, hint, ranges)| Request {
            sender,
            source,
            hint,
            ranges,
        })
}

/// Any valid lobby packet.
fn packet() -> impl Strategy<Value = Packet> {
    let body = prop_oneof![
        data().prop_map(Body::Data),
        session().prop_map(Body::Session),
        request().prop_map(Body::Request),
        (peer(), data()).prop_map(|(repairer, data)| Body::Repair { repairer, data }),
        heartbeat().prop_map(Body::Heartbeat),
    ];
    (uint(), body).prop_map(|(lobby, body)| Packet {
        lobby: LobbyId(lobby),
        body,
    })
}

/// Packets that fit a datagram together, packed as a sender does: each is appended while the
/// datagram stays within [`MAX_DATAGRAM`] bytes.
fn packed(packets: Vec<Packet>) -> (Vec<Packet>, Vec<u8>) {
    let mut kept = Vec::new();
    let mut bytes = Vec::new();
    for p in packets {
        let encoded = p.to_bytes();
        if bytes.len() + encoded.len() <= MAX_DATAGRAM {
            bytes.extend(encoded);
            kept.push(p);
        }
    }
    (kept, bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let items: Vec<_> = wire::decode_datagram(&bytes).collect();
        // Decoding stops at the first error.
        if let Some(at) = items.iter().position(Result::is_err) {
            prop_assert_eq!(at, items.len() - 1);
        }
    }

    #[test]
    fn corrupted_packets_never_panic_and_what_decodes_is_valid(
        p in packet(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        // Random bytes rarely look like a packet; a valid packet with a few bytes changed
        // reaches every field's checks.
        let mut bytes = p.to_bytes();
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        for item in wire::decode_datagram(&bytes) {
            if let Ok(Decoded::Packet(q)) = item {
                prop_assert_eq!(q.validate(), Ok(()));
                let again: Vec<_> = wire::decode_datagram(&q.to_bytes()).collect();
                prop_assert_eq!(again, vec![Ok(Decoded::Packet(q))]);
            }
        }
    }

    #[test]
    fn every_valid_packet_round_trips(p in packet()) {
        prop_assert_eq!(p.validate(), Ok(()));
        let bytes = p.to_bytes();
        prop_assert!(bytes.len() <= MAX_DATAGRAM, "{} bytes", bytes.len());
        let got: Vec<_> = wire::decode_datagram(&bytes).collect();
        prop_assert_eq!(got, vec![Ok(Decoded::Packet(p))]);
    }

    #[test]
    fn every_valid_link_packet_round_trips(l in link()) {
        prop_assert_eq!(l.validate(), Ok(()));
        let bytes = l.to_bytes();
        prop_assert!(bytes.len() <= MAX_DATAGRAM, "{} bytes", bytes.len());
        let got: Vec<_> = wire::decode_datagram(&bytes).collect();
        prop_assert_eq!(got, vec![Ok(Decoded::Link(l))]);
    }

    #[test]
    fn corrupted_link_packets_never_panic_and_what_decodes_is_valid(
        l in link(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = l.to_bytes();
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        for item in wire::decode_datagram(&bytes) {
            match item {
                Ok(Decoded::Link(q)) => {
                    prop_assert_eq!(q.validate(), Ok(()));
                    let again: Vec<_> = wire::decode_datagram(&q.to_bytes()).collect();
                    prop_assert_eq!(again, vec![Ok(Decoded::Link(q))]);
                }
                Ok(Decoded::Packet(q)) => prop_assert_eq!(q.validate(), Ok(())),
                _ => {}
            }
        }
    }

    #[test]
    fn a_datagram_of_packets_round_trips(packets in proptest::collection::vec(packet(), 1..8)) {
        let (kept, bytes) = packed(packets);
        prop_assert!(!kept.is_empty());
        prop_assert_eq!(wire::encode_datagram(&kept), bytes.clone());
        let got: Vec<_> = wire::decode_datagram(&bytes).collect();
        let want: Vec<_> = kept.into_iter().map(|p| Ok(Decoded::Packet(p))).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn a_truncated_datagram_yields_a_prefix_then_at_most_an_error(
        packets in proptest::collection::vec(packet(), 1..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let (kept, bytes) = packed(packets);
        let cut = cut.index(bytes.len());
        let got: Vec<_> = wire::decode_datagram(&bytes[..cut]).collect();
        // Whatever decodes is one of the packets that were written, in order; then at most
        // one error, for the packet that was cut.
        let ok = got.iter().take_while(|r| r.is_ok()).count();
        prop_assert!(got.len() <= ok + 1);
        prop_assert!(ok <= kept.len());
        for (i, item) in got.iter().take(ok).enumerate() {
            prop_assert_eq!(item, &Ok(Decoded::Packet(kept[i].clone())));
        }
        prop_assert!(got.len() <= kept.len(), "a cut datagram gave more items than it held");
    }
}
