//! Forged packets against one idle node, in virtual time: what they can make it send is
//! bounded by what they cost (PROTOCOL.md 6.3, 8), wire times cannot overflow (6.6), and
//! nothing counts under a peer id that its key did not sign (4.12).

mod signed;

use std::time::{Duration, Instant};

use lobbycast::proto::ids::MsgId;
use lobbycast::proto::wire::{Body, Data, Heard, Heartbeat, Packet, Sent, Session};
use lobbycast::proto::{Config, Event, Lobby, Node, Path, PeerId};
use signed::{bundle, id, key};

const NOW_MS: u64 = 1_800_000_000_000;

/// The victim is writer 1.
fn node(start: Instant) -> (Node, Lobby) {
    let lobby = Lobby::new("hostile").unwrap();
    let mut n = Node::new(Config::default(), key(1), "victim", start, NOW_MS, 7).unwrap();
    n.join(start, &lobby, 0);
    (n, lobby)
}

fn from() -> Path {
    Path::Multicast("10.0.0.66:47110".parse().unwrap())
}

/// Runs the node's timers until `until`, draining what it sends and says.
fn run(n: &mut Node, until: Instant) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        while n.poll_transmit().is_some() {}
        events.extend(std::iter::from_fn(|| n.poll_event()));
        match n.poll_timeout() {
            Some(t) if t <= until => n.handle_timeout(t),
            _ => return events,
        }
    }
}

/// A session of writer `sender`, signed.
fn session(lobby: &Lobby, sender: u8, next: u64, heard: Vec<Heard>) -> Vec<u8> {
    bundle(
        &key(sender),
        lobby.id,
        &[session_packet(lobby, sender, next, heard)],
    )
}

fn session_packet(lobby: &Lobby, sender: u8, next: u64, heard: Vec<Heard>) -> Packet {
    Packet {
        lobby: lobby.id,
        body: Body::Session(Session {
            sender: id(sender),
            nick: "ghost".into(),
            timestamp: 1,
            sent: Sent { low: 0, next },
            heard,
            echoes: Vec::new(),
            acked: Vec::new(),
            flags: 0,
            mheard: 0,
        }),
    }
}

/// The measured attack: 16 invented sources (keys made for the purpose), each announced by one
/// session and then claiming 4,095 packets in a second one. Before request credit, one such
/// source drew 89 KB of requests; now all of them together draw at most 16 times their bytes.
#[test]
fn forged_sessions_draw_at_most_sixteen_times_their_bytes() {
    let start = Instant::now();
    let (mut n, lobby) = node(start);
    run(&mut n, start + Duration::from_millis(500));
    let mut sent_in = 0u64;
    for round in 0..2u64 {
        for fake in 0..16u8 {
            let bytes = session(&lobby, 100 + fake, round * 4095, Vec::new());
            sent_in += bytes.len() as u64;
            let at = start + Duration::from_millis(500 + round * 10);
            n.handle_datagram(at, from(), &bytes);
        }
    }
    run(&mut n, start + Duration::from_secs(10));
    let s = n.stats();
    let answered = s.request_bytes_out + s.repair_bytes_out;
    assert!(s.requests_sent > 0, "the claims are asked for at all");
    assert!(
        answered <= 16 * sent_in,
        "{answered} bytes of requests and repairs for {sent_in} forged bytes"
    );
    assert!(
        s.requests_deferred > 0,
        "the credit ran out and held requests back"
    );
}

/// Another member's `heard` claim about a real source opens gaps only a little past what was
/// received from that source, and the source's own session closes them.
#[test]
fn a_heard_claim_opens_only_claim_reach_and_the_source_settles_it() {
    let start = Instant::now();
    let (mut n, lobby) = node(start);
    let data = Packet {
        lobby: lobby.id,
        body: Body::Data(Data {
            source: id(50),
            seq: 10,
            msg_id: MsgId(99),
            sent_at: NOW_MS,
            nick: "real".into(),
            frag_index: 0,
            frag_count: 1,
            body: b"hi".to_vec(),
        }),
    };
    n.handle_datagram(start, from(), &bundle(&key(50), lobby.id, &[data]));
    let forged = session(&lobby, 66, 0, vec![Heard(id(50), 1_000_000)]);
    n.handle_datagram(start, from(), &forged);
    let (_, top, _, _, missing) = n.source_progress(lobby.id, id(50)).unwrap();
    let reach = Config::default().claim_reach;
    assert_eq!(
        top,
        Some(10 + reach),
        "the claim opens claim reach past seq 10"
    );
    assert!(missing as u64 <= reach + Config::default().backlog);
    // The source itself says its next packet is 11: nothing above exists.
    n.handle_datagram(start, from(), &session(&lobby, 50, 11, Vec::new()));
    let (_, top, _, _, _) = n.source_progress(lobby.id, id(50)).unwrap();
    assert_eq!(top, Some(10));
    let events = run(&mut n, start + Duration::from_secs(5));
    assert!(
        !events.iter().any(|e| matches!(e, Event::Lost { .. })),
        "forgotten claims are not losses: {events:?}"
    );
}

fn data_packet(lobby: &Lobby, writer: u8, seq: u64, sent_at: u64, text: &str) -> Packet {
    Packet {
        lobby: lobby.id,
        body: Body::Data(Data {
            source: id(writer),
            seq,
            msg_id: MsgId(1000 + seq),
            sent_at,
            nick: "clock".into(),
            frag_index: 0,
            frag_count: 1,
            body: text.as_bytes().to_vec(),
        }),
    }
}

fn data_at(lobby: &Lobby, seq: u64, sent_at: u64, text: &str) -> Vec<u8> {
    bundle(
        &key(60),
        lobby.id,
        &[data_packet(lobby, 60, seq, sent_at, text)],
    )
}

/// A `sent_at` of 2^64 − 1 overflowed the late-mark arithmetic; any far-future time made every
/// later message of the lobby look late until restart.
#[test]
fn far_future_sent_at_is_dropped_and_marks_nothing_late() {
    let start = Instant::now();
    let (mut n, lobby) = node(start);
    n.handle_datagram(start, from(), &data_at(&lobby, 0, u64::MAX, "future"));
    n.handle_datagram(
        start,
        from(),
        &data_at(&lobby, 1, NOW_MS + 3_600_000, "in an hour"),
    );
    n.handle_datagram(start, from(), &data_at(&lobby, 2, NOW_MS, "now"));
    let events = run(&mut n, start + Duration::from_secs(2));
    let shown: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.text.as_str(), m.late)),
            _ => None,
        })
        .collect();
    assert_eq!(shown, vec![("now", false)]);
    assert_eq!(n.stats().too_new, 2);
}

/// Incomplete messages beyond reassembly's bound are dropped, and each drop is counted and
/// reported as lost (it used to vanish without a trace).
#[test]
fn reassembly_drops_are_reported_as_lost() {
    let start = Instant::now();
    let (mut n, lobby) = node(start);
    let slots = Config::default().reassembly_slots as u64;
    for k in 0..slots + 10 {
        // First fragments only, each of its own two-fragment message, at consecutive seqs (a
        // forger's pattern: nothing is missing, so each goes straight to reassembly).
        let p = Packet {
            lobby: lobby.id,
            body: Body::Data(Data {
                source: id(70),
                seq: k,
                msg_id: MsgId(5000 + k),
                sent_at: NOW_MS,
                nick: "half".into(),
                frag_index: 0,
                frag_count: 2,
                body: vec![b'x'; lobbycast::proto::wire::MAX_PIECE],
            }),
        };
        n.handle_datagram(start, from(), &bundle(&key(70), lobby.id, &[p]));
    }
    let events = run(&mut n, start + Duration::from_millis(10));
    let lost: u64 = events
        .into_iter()
        .filter_map(|e| match e {
            Event::Lost { source, count, .. } if source == id(70) => Some(count),
            _ => None,
        })
        .sum();
    assert_eq!(n.stats().reassembly_dropped, 10);
    assert_eq!(lost, 20, "ten messages of two fragments each");
}

/// After a restart, a node serves from history only its own packets, in bundles it signs
/// anew: it does not keep others' signatures, and what it rebuilt of their messages could not
/// be verified (PROTOCOL.md 4.12).
#[test]
fn restored_messages_are_served_only_when_own() {
    use lobbycast::proto::Message;
    use lobbycast::proto::signing;
    use lobbycast::proto::wire::{Decoded, Request, SeqRange, decode_datagram};
    let start = Instant::now();
    let (mut n, lobby) = node(start);
    let msg = |source: PeerId, text: &str| Message {
        lobby: lobby.id,
        source,
        seq: 5,
        msg_id: MsgId(source.0),
        sent_at: NOW_MS,
        nick: "x".into(),
        text: text.into(),
        late: false,
    };
    n.restore(start, &msg(id(81), "another's text"));
    n.restore(start, &msg(id(1), "own text"));
    run(&mut n, start + Duration::from_millis(300));
    let ask = |source: PeerId| Packet {
        lobby: lobby.id,
        body: Body::Request(Request {
            sender: id(99),
            source,
            hint: None,
            ranges: vec![SeqRange(5, 5)],
        }),
    };
    let t = start + Duration::from_millis(300);
    // The asker is a member: its session pays for what it draws.
    n.handle_datagram(t, from(), &session(&lobby, 99, 0, Vec::new()));
    n.handle_datagram(t, from(), &ask(id(81)).to_bytes());
    n.handle_datagram(t, from(), &ask(id(1)).to_bytes());
    let mut repaired = Vec::new();
    let mut until = t;
    for _ in 0..100 {
        while let Some(tx) = n.poll_transmit() {
            for item in decode_datagram(&tx.payload).flatten() {
                let Decoded::Bundle(b) = item else { continue };
                if b.repairer.is_none() {
                    continue;
                }
                for p in signing::open(&b).expect("signed by the node") {
                    if let Body::Data(d) = p.body {
                        repaired.push((b.repairer, d.source, d.body));
                    }
                }
            }
        }
        until += Duration::from_millis(10);
        run_timers_only(&mut n, until);
    }
    assert_eq!(repaired, vec![(Some(id(1)), id(1), b"own text".to_vec())]);
}

/// Runs due timers without draining transmits.
fn run_timers_only(n: &mut Node, until: Instant) {
    while let Some(t) = n.poll_timeout().filter(|&t| t <= until) {
        n.handle_timeout(t);
    }
}

/// Requests draw repairs in proportion to their bytes, not their count: a request of ~40
/// bytes used to draw 16 repairs of a kilobyte each.
#[test]
fn requests_draw_repairs_worth_at_most_sixteen_times_the_askers_bytes() {
    use lobbycast::proto::wire::{Request, SeqRange};
    let start = Instant::now();
    let (mut n, lobby) = node(start);
    let big = "k".repeat(1000);
    for k in 0..64 {
        let t = start + Duration::from_millis(k);
        n.send(t, lobby.id, &big).unwrap();
        run(&mut n, t);
    }
    run(&mut n, start + Duration::from_millis(300));
    let before = n.stats().repair_bytes_out;
    let mut asked = 0u64;
    let mut t = start + Duration::from_millis(300);
    let hello = session(&lobby, 77, 0, Vec::new());
    asked += hello.len() as u64;
    n.handle_datagram(t, from(), &hello);
    for k in 0..4u64 {
        let req = Packet {
            lobby: lobby.id,
            body: Body::Request(Request {
                sender: id(77),
                source: id(1),
                hint: Some(id(1)),
                ranges: vec![SeqRange(k * 16, k * 16 + 15)],
            }),
        }
        .to_bytes();
        asked += req.len() as u64;
        n.handle_datagram(t, from(), &req);
        t += Duration::from_millis(50);
        run(&mut n, t);
    }
    let s = n.stats();
    let drawn = s.repair_bytes_out - before;
    assert!(drawn > 0, "a member's request is answered");
    assert!(
        drawn <= 16 * asked,
        "{drawn} bytes of repairs for {asked} bytes asked"
    );
    assert!(s.repairs_refused > 0);
}

/// Data, sessions, heartbeats and repairs outside a signed bundle are dropped and counted,
/// whatever they claim: nothing is delivered, nobody joins, nothing is sent because of them.
/// Requests stay unsigned and are still heard.
#[test]
fn unsigned_packets_are_dropped_and_counted() {
    use lobbycast::proto::wire::{Request, SeqRange};
    let start = Instant::now();
    let (mut n, lobby) = node(start);
    run(&mut n, start + Duration::from_millis(500));
    let before = n.stats();
    let data = data_packet(&lobby, 5, 0, NOW_MS, "unsigned");
    let Body::Data(d) = data.body.clone() else {
        unreachable!()
    };
    let beat = Packet {
        lobby: lobby.id,
        body: Body::Heartbeat(Heartbeat {
            sender: id(5),
            nick: "ghost".into(),
            beat: MsgId(1),
            sent_at: NOW_MS,
            leaving: false,
        }),
    };
    let repair = Packet {
        lobby: lobby.id,
        body: Body::Repair {
            repairer: id(6),
            data: d,
        },
    };
    let mut datagram = Vec::new();
    for p in [data, session_packet(&lobby, 5, 1, Vec::new()), beat, repair] {
        datagram.extend(p.to_bytes());
    }
    let request = Packet {
        lobby: lobby.id,
        body: Body::Request(Request {
            sender: id(7),
            source: id(1),
            hint: None,
            ranges: vec![SeqRange(0, 0)],
        }),
    };
    datagram.extend(request.to_bytes());
    n.handle_datagram(start + Duration::from_millis(501), from(), &datagram);
    let mut sent = 0;
    while n.poll_transmit().is_some() {
        sent += 1;
    }
    let events: Vec<Event> = std::iter::from_fn(|| n.poll_event()).collect();
    let after = n.stats();
    assert_eq!(after.unsigned, before.unsigned + 4);
    assert_eq!(after.requests_heard, before.requests_heard + 1);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(sent, 0, "nothing answers an unsigned packet");
    assert!(n.members(lobby.id).is_empty());
}

/// A bundle counts only under the key that signed it: a changed byte, another member's id
/// under one's own key, or another member's packets inside one's own bundle are dropped whole
/// and counted, and the message never appears; the writer's own bundle is delivered.
#[test]
fn a_forged_bundle_is_dropped_whole_and_the_real_one_delivered() {
    use lobbycast::proto::signing;
    use lobbycast::proto::wire::Auth;
    let start = Instant::now();
    let (mut n, lobby) = node(start);
    let t = start + Duration::from_millis(1);
    let real = data_packet(&lobby, 5, 0, NOW_MS, "really ada");
    let forged_text = data_packet(&lobby, 5, 0, NOW_MS, "forged ada");
    let mut changed = signing::seal(&key(5), lobby.id, real.to_bytes());
    changed.packets = forged_text.to_bytes();
    let mut impostor = signing::seal(&key(6), lobby.id, forged_text.to_bytes());
    impostor.source = id(5);
    let foreign = signing::seal(&key(6), lobby.id, forged_text.to_bytes());
    let mut weak = signing::seal(&key(5), lobby.id, forged_text.to_bytes());
    if let Auth::Signed { key, .. } = &mut weak.auth {
        *key = [0; 32];
    }
    for b in [&changed, &impostor, &weak] {
        n.handle_datagram(t, from(), &b.to_bytes());
    }
    n.handle_datagram(t, from(), &foreign.to_bytes());
    let s = n.stats();
    assert_eq!(s.bad_signatures, 3, "{s:?}");
    assert_eq!(s.bad_bundles, 1, "writer 6's bundle of writer 5's packet");
    let events = run(&mut n, t + Duration::from_millis(10));
    assert!(
        !events.iter().any(|e| matches!(e, Event::Message(_))),
        "{events:?}"
    );
    n.handle_datagram(t, from(), &bundle(&key(5), lobby.id, &[real]));
    let events = run(&mut n, t + Duration::from_millis(20));
    let shown: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.source, m.text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(shown, vec![(id(5), "really ada")]);
    assert_eq!(n.stats().bundles_verified, 5);
}

/// The same bundle arriving again (on the group, from a friend, as a repair) is verified once.
#[test]
fn a_bundle_heard_twice_is_verified_once() {
    let start = Instant::now();
    let (mut n, lobby) = node(start);
    let b = bundle(
        &key(5),
        lobby.id,
        &[data_packet(&lobby, 5, 0, NOW_MS, "once")],
    );
    n.handle_datagram(start, from(), &b);
    n.handle_datagram(start, from(), &b);
    let s = n.stats();
    assert_eq!((s.bundles_verified, s.bundles_remembered), (1, 1));
    assert_eq!(s.delivered, 1);
}
