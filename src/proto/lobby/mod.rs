//! One joined lobby: an SRM session. Its roles live in submodules: [`send`] (own messages and
//! flow control), [`receive`] (gaps, requests, delivery), [`repair`] (answering requests) and
//! [`session`] (session messages and progress reports); this module holds the state they
//! share and the members.

mod bundle;
mod challenge;
mod presence;
mod receive;
mod repair;
mod send;
mod session;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::event::Event;
use super::flood::Flood;
use super::flow::Flow;
use super::hash::SeededState;
use super::held_links::HeldLinks;
use super::ids::{Lobby, LobbyId, PeerId};
use super::own::OwnStore;
use super::shared::Shared;
use super::source::Source;
use super::store::Store;
use super::timers::Timer;
use super::wire::{ENVELOPE_OVERHEAD, MAX_DATAGRAM, MAX_REQUEST_RANGES};

/// Most packets one request packet can make this node repair: what bounds the traffic a
/// peer can draw from it (the rest is asked for again in later rounds).
pub const MAX_REPAIRS_PER_REQUEST: usize = 16;

// A request never names more packets than it can draw, so its ranges always fit.
const _: () = assert!(MAX_REPAIRS_PER_REQUEST <= MAX_REQUEST_RANGES);

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// The lobby is not joined.
    #[error("not in lobby {0}")]
    NotJoined(LobbyId),
    /// The text is longer than the protocol carries in this lobby.
    #[error("message is {len} bytes; the limit is {max} bytes")]
    TooLong {
        /// The text's length.
        len: usize,
        /// The lobby's limit: [`super::wire::MAX_MESSAGE`], less in a private lobby.
        max: usize,
    },
    /// Nothing to send.
    #[error("message is empty")]
    Empty,
    /// This node's sequence numbers in the lobby are used up (a first number too close to
    /// the top was chosen); rejoining with a new peer id is the way out.
    #[error("sequence numbers exhausted")]
    SequenceExhausted,
    /// The flow-control window is full: members have not yet received enough of what this
    /// node sent. Nothing was sent; send again after [`crate::proto::Event::Writable`].
    #[error("flow-control window full; wait for members to catch up")]
    WindowFull,
}

#[derive(Debug)]
struct Peer {
    nick: String,
    last_heard: Instant,
    /// Smoothed one-way distance, from session echoes.
    distance: Option<Duration>,
    /// Timestamp of its last session message and when it arrived, to echo back.
    last_session: Option<(u64, Instant)>,
    /// Bytes of repairs its requests may still draw from this node (PROTOCOL.md 6.3).
    credit: u64,
    /// When its last heartbeat came (PROTOCOL.md 7.6).
    heartbeat_at: Option<Instant>,
}

#[derive(Debug)]
pub(crate) struct LobbyState {
    pub lobby: Lobby,
    next_seq: u64,
    /// Own packets, kept for repair; the flow window relies on them.
    own: OwnStore,
    flow: Flow,
    /// Friends taking part in this lobby, and where packets go by unicast.
    pub(crate) flood: Flood,
    /// Others' packets, kept for repair.
    store: Store,
    /// Links waiting for their anchor (PROTOCOL.md 4.13).
    held_links: HeldLinks,
    sources: HashMap<PeerId, Source, SeededState>,
    peers: HashMap<PeerId, Peer, SeededState>,
    /// Pending repair timers: deadline and the distance to the requester.
    repairs: HashMap<(PeerId, u64), (Instant, Duration), SeededState>,
    /// Requests for these are ignored until the instant given.
    hold_down: HashMap<(PeerId, u64), Instant, SeededState>,
    session_at: Instant,
    /// When this node's next heartbeat is due.
    heartbeat_at: Instant,
    tail_at: Option<Instant>,
    /// Tail sessions sent since the last data.
    tails_sent: u32,
    last_data_at: Instant,
    heard_rotation: usize,
    echo_rotation: usize,
    /// Newest sent-at time shown, for the late mark.
    newest_shown: u64,
    /// When a progress report (a session) is due after new data arrived.
    report_at: Option<Instant>,
    /// Wall clock when this node joined (Unix ms): a source's packets sent after it are
    /// wanted however far back they go (within the flow window).
    joined_wall: u64,
    missing_total: usize,
    /// Named to friends in hellos (PROTOCOL.md 7.2); unlisted lobbies are found only through
    /// the challenge.
    pub listed: bool,
    /// In a private lobby, the members heard and not parted: re-invited when they come back
    /// (PROTOCOL.md 7.11).
    pub former: std::collections::HashSet<PeerId>,
    /// Members whose leaving heartbeat came: not remembered again (a late packet of theirs
    /// may still come) until a heartbeat says they are back.
    pub parted: std::collections::HashSet<PeerId>,
    /// Recent message ids, for the challenge (7.7), oldest first.
    recent_ids: std::collections::VecDeque<(super::ids::MsgId, Instant)>,
    /// Messages received since this lobby last challenged friends.
    received_since_challenge: u32,
    /// When this lobby last challenged friends.
    challenged_at: Option<Instant>,
}

/// What a member holds to repair a packet.
#[derive(Clone, Copy, Debug)]
pub(super) enum Holding<'a> {
    /// One of its own packets, repaired in a bundle it signs anew.
    Own(&'a super::wire::Data),
    /// Another writer's bundle that holds it, repaired whole.
    Stored(super::store::Held),
}

impl Holding<'_> {
    /// What repairing it takes from the requester's repair credit (PROTOCOL.md 6.3): the
    /// packet's bytes, or its share of its bundle's.
    pub(super) fn cost(&self) -> u64 {
        match self {
            Holding::Own(d) => repair::REPAIR_OVERHEAD + (d.nick.len() + d.body.len()) as u64,
            Holding::Stored(h) => h.cost,
        }
    }
}

/// Session messages sent after a burst of data ends.
const TAIL_SESSIONS: u32 = 3;

/// Members of a private lobby remembered for re-invitation, at most (PROTOCOL.md 7.11).
const MAX_FORMER: usize = 1024;

/// Most missing packets tracked per lobby over all sources.
const MAX_MISSING: usize = 1 << 16;

impl LobbyState {
    pub fn new(lobby: Lobby, first_seq: u64, sh: &mut Shared, now: Instant) -> Self {
        let key = SeededState::new(
            rand::RngExt::random(&mut sh.rng),
            rand::RngExt::random(&mut sh.rng),
        );
        let h = || key;
        let session_at = now + sh.uniform(0.0, 1.0, Duration::from_millis(100));
        sh.timers.push(session_at, Timer::Session(lobby.id));
        let heartbeat_at = now + sh.uniform(0.0, 1.0, presence::FIRST_HEARTBEAT);
        sh.timers.push(heartbeat_at, Timer::Heartbeat(lobby.id));
        LobbyState {
            next_seq: first_seq,
            own: OwnStore::new(sh.cfg.own_store_packets, sh.cfg.own_store_bytes),
            flood: Flood::new(h(), sh.cfg.forward_rate, sh.cfg.forward_burst),
            flow: Flow::new(
                now,
                sh.cfg.max_peers,
                (sh.cfg.flow_timeout, sh.cfg.flow_stuck_timeout),
                h(),
            ),
            store: Store::new(sh.cfg.store_packets, sh.cfg.store_bytes, h()),
            held_links: HeldLinks::new(sh.cfg.link_wait),
            sources: HashMap::with_hasher(h()),
            peers: HashMap::with_hasher(h()),
            repairs: HashMap::with_hasher(h()),
            hold_down: HashMap::with_hasher(h()),
            session_at,
            heartbeat_at,
            tail_at: None,
            tails_sent: 0,
            last_data_at: now,
            heard_rotation: 0,
            echo_rotation: 0,
            newest_shown: 0,
            report_at: None,
            joined_wall: sh.wall_ms(now),
            missing_total: 0,
            listed: !sh.outbox.seals(lobby.id),
            former: std::collections::HashSet::new(),
            parted: std::collections::HashSet::new(),
            recent_ids: std::collections::VecDeque::new(),
            received_since_challenge: 0,
            challenged_at: None,
            lobby,
        }
    }

    pub(super) fn id(&self) -> LobbyId {
        self.lobby.id
    }

    /// Whether `peer` was heard in the lobby at `since` or later.
    pub fn heard_since(&self, peer: PeerId, since: Instant) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.last_heard >= since)
    }

    /// Whether this is a private lobby, whose packets leave sealed (PROTOCOL.md 2.4).
    pub(super) fn private(&self, sh: &Shared) -> bool {
        sh.outbox.seals(self.lobby.id)
    }

    /// Bytes a datagram of this lobby has for its packets: less the envelope's in a private
    /// lobby.
    pub(super) fn room(&self, sh: &Shared) -> usize {
        MAX_DATAGRAM
            - if self.private(sh) {
                ENVELOPE_OVERHEAD
            } else {
                0
            }
    }

    /// Distance used in timers for `peer`: measured or default, never below the floor.
    pub(super) fn dist(&self, sh: &Shared, peer: PeerId) -> Duration {
        self.peers
            .get(&peer)
            .and_then(|p| p.distance)
            .unwrap_or(sh.cfg.default_distance)
            .max(sh.cfg.timer_floor)
    }

    pub(super) fn alive(&self, sh: &Shared, peer: PeerId, now: Instant) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|p| now.saturating_duration_since(p.last_heard) < sh.cfg.peer_timeout)
    }

    /// Whether `peer`'s own sessions reach this node (on the group or from a friend): it can
    /// hear this node's requests. A member known only by data that friends forwarded cannot.
    pub(super) fn in_reach(&self, sh: &Shared, peer: PeerId, now: Instant) -> bool {
        self.peers
            .get(&peer)
            .and_then(|p| p.last_session)
            .is_some_and(|(_, at)| now.saturating_duration_since(at) < sh.cfg.peer_timeout)
    }

    /// Notes that `peer` was heard; `nick` is known from data and session packets only.
    pub(super) fn touch(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        peer: PeerId,
        nick: Option<&str>,
    ) {
        if self.former.len() < MAX_FORMER && self.private(sh) && !self.parted.contains(&peer) {
            self.former.insert(peer);
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.last_heard = now;
            if let Some(n) = nick
                && p.nick != n
            {
                p.nick = n.to_owned();
                sh.emit(Event::NickChanged {
                    lobby: self.lobby.id,
                    peer,
                    nick: n.to_owned(),
                });
            }
            return;
        }
        let Some(nick) = nick else { return };
        if self.peers.len() >= sh.cfg.max_peers {
            sh.stats.peers_refused += 1;
            return;
        }
        self.peers.insert(
            peer,
            Peer {
                nick: nick.to_owned(),
                last_heard: now,
                distance: None,
                credit: 0,
                last_session: None,
                heartbeat_at: None,
            },
        );
        sh.emit(Event::PeerJoined {
            lobby: self.id(),
            peer,
            nick: nick.to_owned(),
        });
    }

    /// Credits a member's share of a datagram to its repair credit, if it is a known member
    /// (PROTOCOL.md 6.3).
    pub fn credit_peer(&mut self, sh: &Shared, peer: PeerId, bytes: u64) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.credit = p
                .credit
                .saturating_add(bytes.saturating_mul(sh.cfg.credit_factor))
                .min(sh.cfg.repair_credit_cap);
        }
    }

    /// Whether a timer entry of this lobby is still current (not moved or cancelled).
    pub fn timer_live(&self, timer: Timer, at: Instant) -> bool {
        match timer {
            Timer::Request(_, src, seq) => self.request_due(src, seq, at),
            Timer::Repair(_, src, seq) => self.repairs.get(&(src, seq)).is_some_and(|r| r.0 == at),
            Timer::Session(_) => self.session_at == at,
            Timer::Tail(_) => self.tail_at == Some(at),
            Timer::HoldBack(_, src) => self.sources.get(&src).is_some_and(|s| s.hold == Some(at)),
            Timer::Report(_) => self.report_at == Some(at),
            Timer::Flow(_) => self.flow.check_at == Some(at),
            Timer::Heartbeat(_) => self.heartbeat_at == at,
            Timer::Housekeeping | Timer::Direct | Timer::Lists => false,
        }
    }

    pub fn housekeeping(&mut self, sh: &mut Shared, now: Instant) {
        self.hold_down.retain(|_, t| *t > now);
        sh.stats.links_dropped += self.held_links.expire(now);
        let interval = self.session_base(sh);
        for addr in self
            .flood
            .housekeeping(sh.me, now, interval, sh.cfg.peer_timeout)
        {
            self.link_changed(sh, now, addr);
        }
        // A member is silent only when it missed its sessions a few times: the interval grows
        // with the lobby (PROTOCOL.md 6.5).
        let silent = sh.cfg.flow_timeout.max(self.session_base(sh) * 3);
        self.flow.set_silent(silent);
        self.flow.expire(now, silent * 10);
        let gone: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| Self::is_gone(sh, now, p))
            .map(|(id, _)| *id)
            .collect();
        for peer in gone {
            self.peers.remove(&peer);
            sh.emit(Event::PeerLeft {
                lobby: self.lobby.id,
                peer,
            });
        }
    }

    /// (next, top, base, pending, missing) of a source, for tests and diagnostics.
    pub fn source_progress(&self, src: PeerId) -> Option<(u64, Option<u64>, u64, usize, usize)> {
        self.sources
            .get(&src)
            .map(|s| (s.next, s.top, s.base, s.pending.len(), s.missing.len()))
    }

    /// Nicks of the members heard within the peer timeout.
    pub fn members(&self) -> impl Iterator<Item = (PeerId, &str)> {
        self.peers.iter().map(|(id, p)| (*id, p.nick.as_str()))
    }

    /// Members with their nicks and when each was last heard.
    pub fn members_heard(&self) -> impl Iterator<Item = (PeerId, &str, Instant)> {
        self.peers
            .iter()
            .map(|(id, p)| (*id, p.nick.as_str(), p.last_heard))
    }

    /// Sequence numbers known missing now, being asked for.
    pub fn missing(&self) -> usize {
        self.missing_total
    }
}

/// Counts packets given up and tells the application, if there are any.
pub(super) fn report_lost(sh: &mut Shared, lobby: LobbyId, source: PeerId, count: u64, why: &str) {
    if count > 0 {
        tracing::debug!(%lobby, %source, count, why, "giving up packets");
        sh.stats.lost += count;
        sh.emit(Event::Lost {
            lobby,
            source,
            count,
        });
    }
}
