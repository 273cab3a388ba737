//! Private lobbies in the core (PROTOCOL.md 2.4, 4.14): members talk through envelopes sealed
//! under the lobby key, under loss and with the largest message the lobby carries; someone
//! who knows the lobby's id (it is on the wire) can neither read nor write into it, and a
//! private lobby is never named to friends.

mod signed;
mod sim;

use std::time::{Duration, Instant};

use lobbycast::proto::private::LobbyKey;
use lobbycast::proto::wire::{self, Body, Data, Decoded, Link, Packet};
use lobbycast::proto::{Config, Dest, Event, Lobby, MsgId, Node, Path, SendError, Transmit};
use sim::{Sim, chat, lossy, node_config};

const NOW_MS: u64 = 1_800_000_000_000;

fn lobby_key() -> LobbyKey {
    LobbyKey::from_bytes([0x42; 32])
}

fn group() -> Path {
    Path::Multicast("10.0.0.9:47110".parse().unwrap())
}

/// Drains a node: what it sends and what it tells.
fn drain(n: &mut Node) -> (Vec<Transmit>, Vec<Event>) {
    let sent = std::iter::from_fn(|| n.poll_transmit()).collect();
    let events = std::iter::from_fn(|| n.poll_event()).collect();
    (sent, events)
}

fn messages(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.text.clone()),
            _ => None,
        })
        .collect()
}

/// `text` written by `n`'s key holder in the lobby: the datagrams it sends to the group.
fn say(n: &mut Node, now: Instant, lobby: &Lobby, text: &str) -> Vec<Vec<u8>> {
    n.send(now, lobby.id, text).unwrap();
    drain(n)
        .0
        .into_iter()
        .filter(|t| t.dest == Dest::Lobby(lobby.id))
        .map(|t| t.payload)
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn members_talk_sealed_under_loss_up_to_the_largest_message() {
    let net = lossy(0.1);
    let mut sim = Sim::private(6, 3, net.clone(), node_config(&net), lobby_key());
    chat(&mut sim, 5, Duration::from_millis(20));
    // The largest message of a private lobby: 64 pieces of 896 bytes (PROTOCOL.md 2.4).
    sim.send(2, &"p".repeat(57_344));
    let lobby = sim.lobby.id;
    let now = Instant::now();
    assert_eq!(
        sim.node_mut(1).send(now, lobby, &"q".repeat(57_345)),
        Err(SendError::TooLong {
            len: 57_345,
            max: 57_344
        })
    );
    assert!(sim.run_until_delivered(Duration::from_secs(30)));
    sim.assert_exactly_once();
    assert_eq!(sim.sent.len(), 31);
    // Every datagram was checked on its way: at most 1200 bytes, nothing of the lobby in
    // clear (the simulator panics otherwise).
    let s = sim.total_stats();
    assert!(s.envelopes_sealed > 0 && s.envelopes_opened > 0, "{s:?}");
    assert_eq!((s.envelopes_forged, s.unsealed), (0, 0), "{s:?}");
}

#[test]
fn an_outsider_who_knows_the_id_neither_reads_nor_writes() {
    let start = Instant::now();
    let key = lobby_key();
    let private = key.lobby(&Lobby::new("plans").unwrap());
    let member = |k: u8| {
        let mut n = Node::new(
            Config::default(),
            signed::key(k),
            "ann",
            start,
            NOW_MS,
            k.into(),
        )
        .unwrap();
        n.join_private(start, &private, key.clone(), 0, [k; 32]);
        drain(&mut n);
        n
    };
    let (mut a, mut b) = (member(1), member(2));
    // The outsider joins the id it saw on the wire as if it were a public lobby's.
    let guessed = Lobby {
        name: "guessed".into(),
        id: private.id,
    };
    let mut o = Node::new(Config::default(), signed::key(3), "eve", start, NOW_MS, 3).unwrap();
    o.join(start, &guessed, 0);
    drain(&mut o);

    let t = start + Duration::from_millis(10);
    let sealed = say(&mut a, t, &private, "meet at the old mill");
    assert_eq!(sealed.len(), 1);
    for needle in ["meet at the old mill", "ann", "plans"] {
        assert!(!contains(&sealed[0], needle), "{needle:?} is in clear");
    }
    // The outsider skips it; the member reads it.
    o.handle_datagram(t, group(), &sealed[0]);
    assert!(messages(&drain(&mut o).1).is_empty());
    assert_eq!(o.stats().envelopes_skipped, 1);
    b.handle_datagram(t, group(), &sealed[0]);
    assert_eq!(messages(&drain(&mut b).1), ["meet at the old mill"]);
    assert_eq!(b.stats().envelopes_opened, 1);

    // What the outsider writes under the id, in clear, is dropped.
    let clear = say(&mut o, t, &guessed, "let me in");
    b.handle_datagram(t, group(), &clear[0]);
    assert!(messages(&drain(&mut b).1).is_empty());
    assert!(b.stats().unsealed >= 1, "{:?}", b.stats());

    // An envelope with one byte changed, or sealed under another key, does not open.
    let mut changed = sealed[0].clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    let other = LobbyKey::from_bytes([0x43; 32]).seal([7; 24], b"\x80");
    let moved = wire::Envelope {
        lobby: private.id,
        ..other
    };
    for bytes in [changed, moved.to_bytes()] {
        b.handle_datagram(t, group(), &bytes);
    }
    assert!(messages(&drain(&mut b).1).is_empty());
    assert_eq!(b.stats().envelopes_forged, 2);

    // Sealed packets of another lobby (a member's slip or a replay) count for nothing.
    let general = Lobby::new("general").unwrap();
    let data = Packet {
        lobby: general.id,
        body: Body::Data(Data {
            source: signed::id(1),
            seq: 0,
            msg_id: MsgId(5),
            sent_at: NOW_MS,
            nick: "ann".into(),
            frag_index: 0,
            frag_count: 1,
            body: b"elsewhere".to_vec(),
        }),
    };
    b.join(t, &general, 0);
    drain(&mut b);
    let inner = signed::bundle(&signed::key(1), general.id, &[data]);
    b.handle_datagram(t, group(), &key.seal([9; 24], &inner).to_bytes());
    assert!(messages(&drain(&mut b).1).is_empty());
    assert_eq!(b.stats().sealed_foreign, 1);
}

#[test]
fn a_private_lobby_is_never_named_to_friends() {
    let start = Instant::now();
    let key = lobby_key();
    let private = key.lobby(&Lobby::new("plans").unwrap());
    let public = Lobby::new("general").unwrap();
    let mut a = Node::new(Config::default(), signed::key(1), "ann", start, NOW_MS, 1).unwrap();
    a.join(start, &public, 0);
    a.join_private(start, &private, key, 0, [1; 32]);
    // Asking to list it changes nothing.
    a.set_listed(start, private.id, true);
    a.add_friend(start, "10.0.0.2:4000".parse().unwrap())
        .unwrap();
    let hellos: Vec<Vec<u64>> = drain(&mut a)
        .0
        .iter()
        .filter(|t| matches!(t.dest, Dest::Peer(_)))
        .flat_map(|t| wire::decode_datagram(&t.payload).collect::<Vec<_>>())
        .filter_map(|d| match d {
            Ok(Decoded::Link(Link::Hello(h))) => Some(h.lobbies.iter().map(|l| l.0).collect()),
            _ => None,
        })
        .collect();
    assert!(!hellos.is_empty());
    for lobbies in hellos {
        assert_eq!(lobbies, [public.id.0]);
    }
}

/// Two segments that multicast does not cross, bridged by one pair of friends, and a chain of
/// friends with no multicast at all: friends holding the key find each other by the private
/// tags in their hellos (PROTOCOL.md 7.2) and carry the lobby, sealed, with 5 % loss.
#[test]
fn friends_carry_a_private_lobby_found_by_its_tags() {
    for chain in [false, true] {
        let net = lossy(0.05);
        let mut sim = Sim::private(6, 5, net.clone(), node_config(&net), lobby_key());
        if chain {
            for i in 0..6 {
                sim.set_segment(i, None);
            }
            for i in 0..5 {
                sim.befriend(i, i + 1);
            }
        } else {
            for i in 3..6 {
                sim.set_segment(i, Some(1));
            }
            sim.befriend(1, 4);
        }
        sim.run_for(Duration::from_secs(6));
        chat(&mut sim, 10, Duration::from_millis(20));
        assert!(
            sim.run_until_delivered(Duration::from_secs(30)),
            "chain {chain}: {}\n{:?}",
            sim.missing_report(),
            sim.total_stats()
        );
        sim.assert_exactly_once();
        let s = sim.total_stats();
        assert!(s.forwarded > 0, "chain {chain}: {s:?}");
        assert_eq!((s.lost, s.unsealed, s.envelopes_forged), (0, 0, 0));
    }
}

#[test]
fn a_private_tag_is_the_key_holders_and_differs_per_friend() {
    let key = lobby_key();
    let (a, b, c) = (signed::id(1), signed::id(2), signed::id(3));
    assert_ne!(key.tag(a, b), key.tag(b, a));
    assert_ne!(key.tag(a, b), key.tag(a, c));
    assert_ne!(key.tag(a, b), LobbyKey::from_bytes([0x43; 32]).tag(a, b));
    assert_ne!(key.tag(a, b), key.id());
}

/// Direct messages (PROTOCOL.md 4.15, 7.10) between the ends of a chain of four friends with
/// no multicast and 10 % loss: through two proxies, each arrives exactly once, sealed (the
/// proxies cannot read it), and is acknowledged; none is given up.
#[test]
fn direct_messages_through_two_proxies_at_10_percent_loss_arrive_exactly_once() {
    let net = lossy(0.1);
    let mut sim = Sim::new(4, 9, net.clone(), node_config(&net));
    for i in 0..4 {
        sim.set_segment(i, None);
    }
    for i in 0..3 {
        sim.befriend(i, i + 1);
    }
    // Links come up; the ends learn each other's keys from the lobby's signed bundles.
    sim.run_for(Duration::from_secs(6));
    chat(&mut sim, 2, Duration::from_millis(20));
    assert!(sim.run_until_delivered(Duration::from_secs(10)));
    let mut sent = Vec::new();
    for k in 0..40 {
        let (from, to) = if k % 2 == 0 { (0, 3) } else { (3, 0) };
        let text = format!("direct {k} from node {from}");
        sent.push((sim.send_direct(from, to, &text), from, to, text));
        sim.run_for(Duration::from_millis(30));
    }
    sim.run_for(Duration::from_secs(70));
    for (id, from, to, text) in &sent {
        let got: Vec<&str> = sim
            .events(*to)
            .iter()
            .filter_map(|e| match e {
                Event::Direct(m) if m.id == *id => Some(m.text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(got, [text.as_str()], "message {id} to node {to}");
        let acked = sim.events(*from).iter().any(
            |e| matches!(e, Event::DirectAcked { id: a, peer } if a == id && *peer == sim.node(*to).peer_id()),
        );
        assert!(acked, "message {id} from node {from} was not acknowledged");
    }
    for i in 0..4 {
        assert!(
            !sim.events(i)
                .iter()
                .any(|e| matches!(e, Event::DirectFailed { .. })),
            "node {i} gave a message up"
        );
        // The proxies placed, and delivered nothing.
        let s = sim.node(i).stats();
        if i == 1 || i == 2 {
            assert!(s.directs_placed > 0 && s.directs_delivered == 0, "{s:?}");
        }
    }
    assert_eq!(sim.node(0).directs_pending(), 0);
    assert_eq!(sim.node(3).directs_pending(), 0);
}

/// The invitations received by node `i`.
fn invitations(sim: &Sim, i: usize) -> Vec<lobbycast::proto::Invitation> {
    sim.events(i)
        .iter()
        .filter_map(|e| match e {
            Event::Invitation(inv) => Some(inv.clone()),
            _ => None,
        })
        .collect()
}

/// A chain of four friends, no multicast, 10 % loss, all in one public lobby (where they
/// learn each other's keys). Node 0 makes a private lobby and invites the other three; the
/// invitations cross the chain sealed (node 3's through two proxies), each arrives once and is
/// acknowledged, and the invitees that accept (join with the key) meet node 0 in the lobby,
/// found through the friends' private tags.
#[test]
fn an_invitation_is_accepted_over_a_chain_of_friends() {
    let net = lossy(0.1);
    let mut sim = Sim::new(4, 11, net.clone(), node_config(&net));
    for i in 0..4 {
        sim.set_segment(i, None);
    }
    for i in 0..3 {
        sim.befriend(i, i + 1);
    }
    sim.run_for(Duration::from_secs(6));
    chat(&mut sim, 2, Duration::from_millis(20));
    assert!(sim.run_until_delivered(Duration::from_secs(10)));
    let key = lobby_key();
    let plans = key.lobby(&Lobby::new("Plans").unwrap());
    let k = key.clone();
    let p = plans.clone();
    sim.with_node(0, move |n, now| n.join_private(now, &p, k, 0, [7; 32]));
    let mut ids = Vec::new();
    for to in 1..4 {
        let peer = sim.node(to).peer_id();
        ids.push(sim.with_node(0, |n, now| n.invite(now, peer, plans.id).unwrap()));
    }
    sim.run_for(Duration::from_secs(10));
    for (to, id) in (1..4).zip(&ids) {
        let got = invitations(&sim, to);
        assert_eq!(got.len(), 1, "node {to}: {got:?}");
        let inv = &got[0];
        assert_eq!(
            (inv.id, inv.from, &inv.lobby, &inv.key, inv.again),
            (*id, sim.node(0).peer_id(), &plans, &key, false)
        );
        assert_eq!(inv.lobby.name, "plans");
        assert!(
            sim.events(0)
                .iter()
                .any(|e| matches!(e, Event::DirectAcked { id: a, .. } if a == id)),
            "the invitation to node {to} was not acknowledged"
        );
        // Accepting is joining with the key.
        let inv = inv.clone();
        sim.with_node(to, move |n, now| {
            n.join_private(now, &inv.lobby, inv.key, 0, [to as u8; 32])
        });
    }
    // Node 0's presence crosses the chain in its next heartbeat (every 30 s).
    sim.run_for(Duration::from_secs(40));
    let members: Vec<_> = sim.node(3).members(plans.id);
    assert!(
        members.iter().any(|(p, _)| *p == sim.node(0).peer_id()),
        "node 3 does not see node 0 in the private lobby: {members:?}"
    );
    // A public lobby is nobody's to invite into.
    let public = sim.lobby.id;
    let peer = sim.node(3).peer_id();
    assert_eq!(
        sim.with_node(0, |n, now| n.invite(now, peer, public)),
        Err(lobbycast::proto::InviteError::NotPrivate(public))
    );
}

/// Three members of a private lobby, friends of node 0, on one segment. Node 1 restarts and
/// does not rejoin: node 0 re-invites it (`again`). Node 2 parts (its leaving heartbeat says
/// so) and restarts: it is not re-invited.
#[test]
fn a_member_that_restarts_is_reinvited_and_one_that_parted_is_not() {
    let net = lossy(0.02);
    let key = lobby_key();
    let mut sim = Sim::private(3, 13, net.clone(), node_config(&net), key.clone());
    sim.befriend(0, 1);
    sim.befriend(0, 2);
    sim.run_for(Duration::from_secs(6));
    chat(&mut sim, 2, Duration::from_millis(20));
    assert!(sim.run_until_delivered(Duration::from_secs(10)));
    let private = sim.lobby.clone();
    sim.with_node(2, |n, _| n.leave(private.id));
    sim.run_for(Duration::from_secs(1));
    for i in [1, 2] {
        sim.restart(i, 1000);
        sim.befriend_one(i, 0);
    }
    sim.run_for(Duration::from_secs(20));
    let again = invitations(&sim, 1);
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].again && again[0].lobby == private && again[0].key == key);
    assert_eq!(again[0].from, sim.node(0).peer_id());
    assert!(
        invitations(&sim, 2).is_empty(),
        "node 2 parted: not re-invited"
    );
    // At most one re-invitation per peer and lobby in 10 minutes, however often it restarts.
    sim.restart(1, 2000);
    sim.befriend_one(1, 0);
    sim.run_for(Duration::from_secs(20));
    assert_eq!(
        invitations(&sim, 1).len(),
        1,
        "not re-invited again within 10 minutes"
    );
    assert_eq!(sim.node(0).stats().invitations_sent, 1);
}

/// A member that restarts before its friend's link times out, and whose new node's first
/// hello carries a later timestamp than the last one heard from the old node (the old one ran
/// for a shorter time than the new one took to start): the restart shows in that hello
/// echoing none of the friend's, and the member is re-invited.
#[test]
fn a_member_restarted_with_a_later_clock_is_reinvited() {
    let net = lossy(0.0);
    let key = lobby_key();
    let mut sim = Sim::private(2, 17, net.clone(), node_config(&net), key.clone());
    sim.befriend(0, 1);
    sim.run_for(Duration::from_secs(2));
    chat(&mut sim, 2, Duration::from_millis(20));
    assert!(sim.run_until_delivered(Duration::from_secs(10)));
    let at_restart = sim.node(0).friends()[0].clone();
    assert!(at_restart.up, "{at_restart:?}");
    // The old node ran for a few seconds; the new one's clock says a minute.
    sim.restart_aged(1, 1000, Duration::from_secs(60));
    sim.befriend_one(1, 0);
    sim.run_for(Duration::from_secs(10));
    let again = invitations(&sim, 1);
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].again && again[0].key == key);
    assert_eq!(again[0].from, sim.node(0).peer_id());
}
