//! The node: the whole protocol core behind one value. The runtime (or the simulator) feeds
//! it datagrams, user intent and the time, and drains transmits, events and the next deadline.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::config::Config;
use super::dedup::Dedup;
use super::direct::{DirectError, Directs, Received};
use super::event::{DirectMessage, Event, Invitation, Message};
use super::flood::Via;
use super::fragment::{Limits, Reassembler};
use super::friends::{FriendError, FriendInfo, Friends, LinkChange};
use super::hash::SeededState;
use super::ids::{Lobby, LobbyId, MsgId, PeerId};
use super::listings::{LIST_INTERVAL, Listed, Listings};
use super::lobby::{LobbyState, SendError};
use super::outbox::{Dest, Outbox, Transmit};
use super::pace::Pacer;
use super::path::Path;
use super::private::{LobbyKey, Nonces, Sealer};
use super::shared::Shared;
use super::signing::OpenError;
use super::stats::Stats;
use super::timers::{Timer, Timers};
use super::verified::{Checked, Verified};
use super::whois::{From as Asked, QUERY_HOPS, WhoIsState};
use super::wire::{self, Body, Bundle, Content, Decoded, Link, MAX_HELLO_LOBBIES, MAX_NICK};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

/// Least time between two evaluated challenges of one friend (PROTOCOL.md 7.7).
const CHALLENGE_GAP: Duration = Duration::from_secs(5);

/// Bundles remembered as verified (PROTOCOL.md 4.12).
const VERIFIED_BUNDLES: usize = 4096;

/// How often peers, hold-downs and reassemblies are expired.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// Why a nick was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NickError {
    /// Empty after trimming.
    #[error("nick is empty")]
    Empty,
    /// Longer than the wire allows.
    #[error("nick is longer than {max} bytes", max = MAX_NICK)]
    TooLong,
    /// Holds a control character.
    #[error("nick contains a control character")]
    ControlChar,
}

/// Checks and trims a nick.
pub fn check_nick(nick: &str) -> Result<String, NickError> {
    let nick = nick.trim();
    if nick.is_empty() {
        Err(NickError::Empty)
    } else if nick.len() > MAX_NICK {
        Err(NickError::TooLong)
    } else if nick.chars().any(char::is_control) {
        Err(NickError::ControlChar)
    } else {
        Ok(nick.to_owned())
    }
}

/// A lobbycast node: the sans-IO protocol state machine.
///
/// Inputs: [`Node::handle_datagram`], [`Node::handle_timeout`], [`Node::send`],
/// [`Node::join`], [`Node::leave`]. Outputs, drained after every input:
/// [`Node::poll_transmit`], [`Node::poll_event`], [`Node::poll_timeout`].
#[derive(Debug)]
pub struct Node {
    sh: Shared,
    lobbies: HashMap<LobbyId, LobbyState, SeededState>,
    housekeeping_at: Instant,
    /// Direct messages: own ones waiting for acknowledgement, ids placed, writers' keys.
    directs: Directs,
    /// Nonces of own direct messages.
    nonces: Nonces,
    /// The earliest direct-message timer armed.
    direct_at: Option<Instant>,
    /// Friends that came back, to re-invite into a private lobby: (lobby, peer, link up at).
    reinvites: Vec<(LobbyId, PeerId, Instant)>,
    /// When each (lobby, peer) was last re-invited.
    reinvited_at: HashMap<(LobbyId, PeerId), Instant>,
    /// Lobby lists: the merged list, requests, answers, announcements (PROTOCOL.md 7.12).
    listings: Listings,
    /// Whether the runtime listens on the discovery group (off until it says so).
    discovery: bool,
    /// The lists timer armed.
    lists_at: Option<Instant>,
    /// Who-is queries seen, their routes back, the askers' budgets (PROTOCOL.md 7.13).
    whois: WhoIsState,
}

/// Why a who-is query could not be sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WhoIsError {
    /// Not a nick: empty, too long, or with control characters.
    #[error("bad nick: {0}")]
    Nick(#[from] NickError),
    /// The last query went out less than 2 s ago.
    #[error("one who-is query every 2 s")]
    TooSoon,
}

/// Why an invitation could not be sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InviteError {
    /// This node is not in that lobby.
    #[error("not in lobby {0}")]
    NotJoined(LobbyId),
    /// The lobby is public: anyone can join it by name.
    #[error("lobby {0} is not private")]
    NotPrivate(LobbyId),
    /// The invitation, a direct message, could not be sent.
    #[error(transparent)]
    Direct(#[from] DirectError),
}

/// How long a friend that came back has to rejoin a private lobby by itself before it is
/// re-invited (PROTOCOL.md 7.11).
const REINVITE_WAIT: Duration = Duration::from_secs(5);
/// Least time between two re-invitations of one peer into one lobby.
const REINVITE_GAP: Duration = Duration::from_secs(600);
/// Re-invitations waiting for [`REINVITE_WAIT`], at most.
const MAX_REINVITES: usize = 1024;

impl Node {
    /// A node whose identity is `key` (its peer id is derived from it, and it signs what it
    /// writes with it), with `nick`; `unix_ms` is the wall clock at `now`; `seed` drives
    /// every random choice (message ids, timers), so equal seeds replay equally.
    pub fn new(
        cfg: Config,
        key: SigningKey,
        nick: &str,
        now: Instant,
        unix_ms: u64,
        seed: u64,
    ) -> Result<Self, NickError> {
        let nick = check_nick(nick)?;
        let mut rng = SmallRng::seed_from_u64(seed);
        let hasher = SeededState::new(rng.random(), rng.random());
        let limits = Limits {
            slots: cfg.reassembly_slots,
            bytes: cfg.reassembly_bytes,
            timeout: cfg.reassembly_timeout,
        };
        let mut timers = Timers::default();
        let housekeeping_at = now + HOUSEKEEPING;
        timers.push(housekeeping_at, Timer::Housekeeping);
        let outbox = Outbox::new(cfg.max_queued_transmits, key, cfg.chain_length);
        let verified = Verified::new(
            VERIFIED_BUNDLES,
            cfg.link_memory,
            (rng.random(), rng.random()),
        );
        // Direct nonces from the node's secret key, its seed and the time it started: two
        // nodes never share the first, and one node restarted never repeats the others.
        let nonce_seed = Sha256::new()
            .chain_update(b"lobbycast direct nonces v1")
            .chain_update(outbox.signing_key().to_bytes())
            .chain_update(seed.to_be_bytes())
            .chain_update(unix_ms.to_be_bytes())
            .finalize()
            .into();
        Ok(Node {
            directs: Directs::new(hasher),
            nonces: Nonces::new(nonce_seed),
            direct_at: None,
            reinvites: Vec::new(),
            reinvited_at: HashMap::new(),
            listings: Listings::default(),
            discovery: false,
            lists_at: None,
            whois: WhoIsState::new(hasher),
            sh: Shared {
                me: outbox.peer_id(),
                nick,
                epoch: now,
                wall: (now, unix_ms),
                rng,
                timers,
                outbox,
                pacer: Pacer::new(now, cfg.pace_initial, cfg.pace_min, cfg.pace_max),
                now,
                events: VecDeque::new(),
                stats: Stats::default(),
                dedup: Dedup::new(cfg.dedup_window, cfg.dedup_capacity, hasher),
                reassembly: Reassembler::new(limits, hasher),
                recovery: None,
                friends: Friends::default(),
                multicast: true,
                verified,
                cfg,
            },
            lobbies: HashMap::with_hasher(hasher),
            housekeeping_at,
        })
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.sh.cfg
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.sh.me
    }

    /// This node's nick.
    pub fn nick(&self) -> &str {
        &self.sh.nick
    }

    /// Changes the nick used from now on; members hear of it at once through heartbeats
    /// (PROTOCOL.md 7.6).
    pub fn set_nick(&mut self, now: Instant, nick: &str) -> Result<(), NickError> {
        self.tick(now);
        self.sh.nick = check_nick(nick)?;
        for state in self.lobbies.values_mut() {
            state.send_heartbeat(&mut self.sh, now, false);
        }
        Ok(())
    }

    /// Re-anchors the wall clock (after the system clock was set).
    pub fn set_wall_clock(&mut self, now: Instant, unix_ms: u64) {
        self.sh.wall = (now, unix_ms);
    }

    /// Joins `lobby`; this node's packets in it are numbered from `first_seq` (a restarted
    /// node passes a number above any it used before). Joining twice changes nothing.
    pub fn join(&mut self, now: Instant, lobby: &Lobby, first_seq: u64) {
        self.tick(now);
        if self.lobbies.contains_key(&lobby.id) {
            return;
        }
        let mut state = LobbyState::new(lobby.clone(), first_seq, &mut self.sh, now);
        for l in self.sh.friends.links() {
            // A new lobby has nothing to graft yet.
            let _ = state.flood.sync_link(
                l.addr,
                l.up.then_some(l.peer).flatten(),
                l.lobbies.contains(&lobby.id),
            );
        }
        self.lobbies.insert(lobby.id, state);
        // The segment hears of a listed lobby at once (PROTOCOL.md 7.12).
        if self.discovery {
            self.listings.announce_at = Some(now);
            self.arm_lists();
        }
        // Friends learn of the lobby from the next hellos: send them now.
        let addrs: Vec<SocketAddr> = self.sh.friends.links().map(|l| l.addr).collect();
        for addr in addrs {
            self.send_hello(now, addr);
        }
    }

    /// Joins the private lobby `lobby` (made by [`LobbyKey::lobby`]) under `key`: every
    /// packet of it leaves sealed in an envelope and only sealed ones are taken (PROTOCOL.md
    /// 2.4, 4.14); it is never named to friends. `nonce_seed` (32 bytes from the operating
    /// system's generator) seeds the envelopes' nonces. A `lobby` whose id is not the key's
    /// is not joined.
    pub fn join_private(
        &mut self,
        now: Instant,
        lobby: &Lobby,
        key: LobbyKey,
        first_seq: u64,
        nonce_seed: [u8; 32],
    ) {
        if lobby.id != key.id() {
            debug_assert!(false, "{lobby:?} is not the lobby of {key:?}");
            return;
        }
        if self.lobbies.contains_key(&lobby.id) {
            return;
        }
        self.sh
            .outbox
            .add_sealer(lobby.id, Sealer::new(key, nonce_seed));
        self.join(now, lobby, first_seq);
    }

    /// Leaves a lobby, forgetting its state; friends taking part are told.
    pub fn leave(&mut self, lobby: LobbyId) {
        if let Some(mut state) = self.lobbies.remove(&lobby) {
            let now = self.sh.now;
            state.say_leaving(&mut self.sh, now);
            state.send_heartbeat(&mut self.sh, now, true);
            self.sh.outbox.retire_sealer(lobby);
        }
    }

    /// Tells every lobby what is known of the friend link at `addr` now.
    fn sync_friend(&mut self, addr: SocketAddr) {
        let link = self
            .sh
            .friends
            .get(addr)
            .map(|l| (l.up.then_some(l.peer).flatten(), l.lobbies.clone()));
        let (now, me) = (self.sh.now, self.sh.me);
        for state in self.lobbies.values_mut() {
            let graft = match &link {
                Some((peer, lobbies)) => {
                    // Listed by both (7.2): an unlisted lobby is never taken part in by name,
                    // a private one by its tag for this node.
                    let listed = match (self.sh.outbox.key(state.lobby.id), peer) {
                        (Some(key), Some(peer)) => lobbies.contains(&key.tag(*peer, me)),
                        (Some(_), None) => false,
                        (None, _) => state.listed && lobbies.contains(&state.lobby.id),
                    };
                    state.flood.sync_link(addr, *peer, listed)
                }
                None => state.flood.sync_link(addr, None, false),
            };
            for a in graft {
                state.grafted(&mut self.sh, now, a);
            }
            state.check_bridge(&mut self.sh, now);
        }
    }

    /// The lobbies joined.
    pub fn lobbies(&self) -> impl Iterator<Item = &Lobby> {
        self.lobbies.values().map(|l| &l.lobby)
    }

    /// Members heard recently in `lobby`, with their nicks.
    pub fn members(&self, lobby: LobbyId) -> Vec<(PeerId, String)> {
        let mut v: Vec<_> = self
            .lobbies
            .get(&lobby)
            .map(|l| l.members().map(|(p, n)| (p, n.to_owned())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The size messages in `lobby` are cut in: smaller in a private lobby (PROTOCOL.md 2.4).
    pub fn piece_size(&self, lobby: LobbyId) -> usize {
        super::fragment::piece_size(self.sh.outbox.seals(lobby))
    }

    /// Packets known missing in `lobby` now and being repaired (0 if not joined): what a
    /// screen shows while losses are being repaired.
    pub fn missing(&self, lobby: LobbyId) -> usize {
        self.lobbies.get(&lobby).map_or(0, |l| l.missing())
    }

    /// Sends `text` to `lobby`. Returns the message as others will see it, for the caller
    /// to show and keep in its history.
    pub fn send(&mut self, now: Instant, lobby: LobbyId, text: &str) -> Result<Message, SendError> {
        self.tick(now);
        let state = self
            .lobbies
            .get_mut(&lobby)
            .ok_or(SendError::NotJoined(lobby))?;
        state.send_message(&mut self.sh, now, text)
    }

    /// Gives back a message from history (own or others'): it is remembered as seen, it can
    /// be repaired to late joiners, and its sequence numbers are not asked for again.
    pub fn restore(&mut self, now: Instant, msg: &Message) {
        if let Some(state) = self.lobbies.get_mut(&msg.lobby) {
            state.restore(&mut self.sh, now, msg);
        }
    }

    /// Adds a friend (PROTOCOL.md 7.1): its first hello leaves at once.
    pub fn add_friend(&mut self, now: Instant, addr: SocketAddr) -> Result<(), FriendError> {
        self.tick(now);
        self.sh.friends.add(addr, now)?;
        self.send_hellos(now);
        Ok(())
    }

    /// Removes a friend; true if it was one. An up link is reported down.
    pub fn remove_friend(&mut self, addr: SocketAddr) -> bool {
        let peer = self.sh.friends.get(addr).filter(|l| l.up).map(|l| l.peer);
        let removed = self.sh.friends.remove(addr);
        self.sync_friend(addr);
        if let Some(peer) = peer {
            self.link_changed(LinkChange::Down { addr, peer });
        }
        removed
    }

    /// The friends and the state of their links.
    pub fn friends(&self) -> Vec<FriendInfo> {
        self.sh.friends.info()
    }

    /// Turns the use of multicast groups on or off (PROTOCOL.md 7.9): off, every packet goes
    /// to friends by unicast only.
    pub fn set_multicast(&mut self, on: bool) {
        self.sh.multicast = on;
    }

    /// Whether the node uses its lobbies' multicast groups.
    pub fn multicast(&self) -> bool {
        self.sh.multicast
    }

    /// Sends the hellos due at `now`.
    fn send_hellos(&mut self, now: Instant) {
        let t = self.sh.link_timing();
        let due = self.sh.friends.due(t, now);
        for addr in due {
            self.send_hello(now, addr);
        }
    }

    fn send_hello(&mut self, now: Instant, addr: SocketAddr) {
        let friend = self.sh.friends.get(addr).and_then(|l| l.peer);
        let (me, outbox) = (self.sh.me, &self.sh.outbox);
        // Private lobbies by their tags for this friend, once its peer id is known (7.2).
        let mut lobbies: Vec<LobbyId> = self
            .lobbies
            .values()
            .filter_map(|s| match outbox.key(s.lobby.id) {
                Some(key) => friend.map(|f| key.tag(me, f)),
                None => s.listed.then_some(s.lobby.id),
            })
            .collect();
        lobbies.sort_unstable();
        lobbies.truncate(MAX_HELLO_LOBBIES);
        let micros = self.sh.micros(now);
        let hello = self
            .sh
            .friends
            .hello(addr, now, self.sh.me, &self.sh.nick, micros, lobbies);
        self.sh.send_link(addr, &Link::Hello(hello));
    }

    /// A friend came back (its link came up, or it restarted): a member of a private lobby is
    /// re-invited if it does not rejoin by itself (PROTOCOL.md 7.11).
    fn came_back(&mut self, peer: PeerId) {
        let now = self.sh.now;
        for state in self.lobbies.values() {
            if state.former.contains(&peer) && self.reinvites.len() < MAX_REINVITES {
                tracing::debug!(%peer, lobby = %state.lobby.id, "a member came back");
                self.reinvites.push((state.lobby.id, peer, now));
            }
        }
    }

    fn link_changed(&mut self, change: LinkChange) {
        match change {
            LinkChange::Up { addr, peer, nick } => {
                tracing::info!(%addr, %peer, nick, "friend link up");
                self.came_back(peer);
                self.sh.emit(Event::FriendUp { addr, peer, nick });
            }
            LinkChange::Down { addr, peer } => {
                tracing::info!(%addr, "friend link down");
                self.sh.emit(Event::FriendDown { addr, peer });
            }
        }
    }

    fn on_link_packet(&mut self, now: Instant, from: SocketAddr, packet: Link) {
        match packet {
            Link::Hello(hello) => {
                self.sh.stats.hellos_heard += 1;
                // The friend restarted with its identity within the link timeout (so the link
                // does not go down and up).
                let restarted = self
                    .sh
                    .friends
                    .get(from)
                    .is_some_and(|l| l.restarted(&hello, now));
                if restarted {
                    self.came_back(hello.sender);
                }
                let t = self.sh.link_timing();
                let micros = self.sh.micros(now);
                let (change, answer) = self.sh.friends.on_hello(t, now, micros, from, hello);
                self.sync_friend(from);
                if let Some(c) = change {
                    self.link_changed(c);
                }
                if answer {
                    self.send_hello(now, from);
                }
            }
            Link::Challenge(c) => self.on_challenge(now, from, c.sender, &c.hashes),
        }
    }

    /// A friend's challenge (PROTOCOL.md 7.7): evaluated at most once per friend per
    /// [`CHALLENGE_GAP`], only from a friend whose link is up, against every lobby that
    /// friend does not take part in yet.
    fn on_challenge(&mut self, now: Instant, from: SocketAddr, sender: PeerId, hashes: &[u64]) {
        let Some(link) = self.sh.friends.get_mut(from) else {
            return;
        };
        let fresh = link
            .challenged_at
            .is_none_or(|t| now.saturating_duration_since(t) >= CHALLENGE_GAP);
        if !link.up || link.peer != Some(sender) || !fresh {
            self.sh.stats.challenges_ignored += 1;
            return;
        }
        link.challenged_at = Some(now);
        self.sh.stats.challenges_heard += 1;
        for state in self.lobbies.values_mut() {
            if state.answer_challenge(&mut self.sh, now, from, hashes) {
                tracing::info!(friend = %from, lobby = %state.lobby.name,
                    "a friend's challenge matched: it takes part");
            }
        }
    }

    /// Names the lobby to friends in hellos, or not (PROTOCOL.md 7.2): friends in an unlisted
    /// lobby find this node only through the challenge. A private lobby is never named.
    pub fn set_listed(&mut self, now: Instant, lobby: LobbyId, listed: bool) {
        self.tick(now);
        if self.sh.outbox.seals(lobby) {
            return;
        }
        let Some(state) = self.lobbies.get_mut(&lobby) else {
            return;
        };
        state.listed = listed;
        let addrs: Vec<SocketAddr> = self.sh.friends.links().map(|l| l.addr).collect();
        for addr in addrs {
            self.sync_friend(addr);
            self.send_hello(now, addr);
        }
    }

    /// Takes several received datagrams, in order: the signatures of the bundles in them are
    /// verified together first, at about half the cost of one by one.
    pub fn handle_datagrams<'a>(
        &mut self,
        now: Instant,
        batch: impl IntoIterator<Item = (Path, &'a [u8])> + Clone,
    ) {
        // A private lobby's bundles are in envelopes: opened here too (an AEAD costs a small
        // part of a signature check), and again when their datagram is taken.
        let mut bundles: Vec<Bundle> = Vec::new();
        let mut take = |item: Result<Decoded, wire::DecodeError>, sealed: Option<LobbyId>| {
            if let Ok(Decoded::Bundle(b)) = item
                && b.source != self.sh.me
                && self.lobbies.contains_key(&b.lobby)
                && sealed.is_none_or(|l| l == b.lobby)
            {
                bundles.push(b);
            }
        };
        for (_, bytes) in batch.clone() {
            for item in wire::decode_datagram(bytes) {
                if let Ok(Decoded::Envelope(e)) = &item {
                    if let Some(Ok(plain)) = self.sh.outbox.key(e.lobby).map(|k| k.open(e)) {
                        for inner in wire::decode_datagram(&plain) {
                            take(inner, Some(e.lobby));
                        }
                    }
                } else {
                    take(item, None);
                }
            }
        }
        if bundles.len() > 1 {
            let refs: Vec<&Bundle> = bundles.iter().collect();
            let checked = self.sh.verified.verify_batch(&refs);
            self.sh.stats.bundles_verified += checked as u64;
        }
        for (path, bytes) in batch {
            self.handle_datagram(now, path, bytes);
        }
    }

    /// Takes one received datagram and how it arrived.
    pub fn handle_datagram(&mut self, now: Instant, path: Path, bytes: &[u8]) {
        self.tick(now);
        self.sh.stats.datagrams_in += 1;
        self.sh.stats.bytes_in += bytes.len() as u64;
        // By unicast only friends are heard (PROTOCOL.md 7.1); on a group, link packets mean
        // nothing.
        if let Path::Unicast(from) = path
            && self.sh.friends.get(from).is_none()
        {
            self.sh.stats.unicast_refused += 1;
            return;
        }
        // Each packet's share of the datagram pays for requests about its sender (6.3).
        let items: Vec<_> = wire::decode_datagram(bytes).collect();
        let share = (bytes.len() / items.len().max(1)) as u64;
        self.take_items(now, path, items, share, None);
        self.report_reassembly_drops();
    }

    /// Takes the decoded items of a datagram, or of an envelope of the private lobby `sealed`
    /// (PROTOCOL.md 4.14): inside one only that lobby's bundles and requests count.
    fn take_items(
        &mut self,
        now: Instant,
        path: Path,
        items: Vec<Result<Decoded, wire::DecodeError>>,
        share: u64,
        sealed: Option<LobbyId>,
    ) {
        for item in items {
            let packet = match item {
                Ok(Decoded::Packet(p)) => p,
                Ok(Decoded::Bundle(b)) => {
                    self.sh.stats.packets_in += 1;
                    if self.sealing_holds(sealed, b.lobby) {
                        self.on_bundle(now, path, b, share);
                    }
                    continue;
                }
                Ok(Decoded::Envelope(e)) => {
                    self.sh.stats.packets_in += 1;
                    if sealed.is_some() {
                        self.sh.stats.sealed_foreign += 1;
                    } else {
                        self.on_envelope(now, path, e, share);
                    }
                    continue;
                }
                Ok(Decoded::Direct(d)) => {
                    self.sh.stats.packets_in += 1;
                    self.on_direct(now, path, d);
                    continue;
                }
                Ok(Decoded::List(l)) => {
                    self.sh.stats.packets_in += 1;
                    if sealed.is_some() {
                        self.sh.stats.sealed_foreign += 1;
                    } else {
                        self.on_list(now, path, l);
                    }
                    continue;
                }
                Ok(Decoded::WhoIs(w)) => {
                    self.sh.stats.packets_in += 1;
                    match path {
                        Path::Unicast(from) if sealed.is_none() => self.on_whois(now, from, w),
                        // Who-is goes between friends only (PROTOCOL.md 7.13).
                        _ => self.sh.stats.unsupported_kind += 1,
                    }
                    continue;
                }
                Ok(Decoded::UnknownVersion(_)) => {
                    self.sh.stats.unknown_version += 1;
                    continue;
                }
                Ok(Decoded::UnsupportedKind(_)) => {
                    self.sh.stats.unsupported_kind += 1;
                    continue;
                }
                Ok(Decoded::Link(link)) => {
                    self.sh.stats.packets_in += 1;
                    match path {
                        _ if sealed.is_some() => self.sh.stats.sealed_foreign += 1,
                        Path::Unicast(from) => self.on_link_packet(now, from, link),
                        Path::Multicast(_) => self.sh.stats.unsupported_kind += 1,
                    }
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "dropping malformed datagram tail");
                    self.sh.stats.malformed += 1;
                    break;
                }
            };
            self.sh.stats.packets_in += 1;
            if !self.sealing_holds(sealed, packet.lobby) {
                continue;
            }
            // Only requests travel unsigned (PROTOCOL.md 4.12): anything else outside a
            // bundle was written by nobody's key.
            let Body::Request(request) = packet.body else {
                self.sh.stats.unsigned += 1;
                continue;
            };
            let Some(state) = self.lobbies.get_mut(&packet.lobby) else {
                self.sh.stats.foreign_lobby += 1;
                continue;
            };
            if request.sender == self.sh.me {
                self.sh.stats.own_packets += 1;
                continue;
            }
            let sh = &mut self.sh;
            // A request is paid for by its own bytes too.
            state.credit_peer(sh, request.sender, share);
            let via = Self::via(sh, path, request.sender, share, state);
            let sender = request.sender;
            state.on_request(sh, now, request, via);
            state.credit_source(sh, sender, share);
        }
    }

    /// Whether a packet of `lobby`, inside the envelope of `sealed` or outside any, is taken:
    /// a private lobby's packets only come sealed, and an envelope holds its lobby's only
    /// (PROTOCOL.md 2.4, 4.14). Else it is counted and dropped.
    fn sealing_holds(&mut self, sealed: Option<LobbyId>, lobby: LobbyId) -> bool {
        match sealed {
            Some(s) if s != lobby => {
                self.sh.stats.sealed_foreign += 1;
                false
            }
            None if self.sh.outbox.seals(lobby) => {
                self.sh.stats.unsealed += 1;
                false
            }
            _ => true,
        }
    }

    /// An envelope (PROTOCOL.md 4.14): opened under its lobby's key if this node holds it,
    /// its packets then taken as a datagram's; skipped without the key, dropped if forged.
    fn on_envelope(&mut self, now: Instant, path: Path, e: wire::Envelope, share: u64) {
        let opened = self.sh.outbox.key(e.lobby).map(|k| k.open(&e));
        match opened {
            None => self.sh.stats.envelopes_skipped += 1,
            Some(Err(_)) => self.sh.stats.envelopes_forged += 1,
            Some(Ok(plain)) => {
                self.sh.stats.envelopes_opened += 1;
                let items: Vec<_> = wire::decode_datagram(&plain).collect();
                let share = share / items.len().max(1) as u64;
                self.take_items(now, path, items, share, Some(e.lobby));
            }
        }
    }

    /// How a packet of `sender` arrived. By unicast, everything a friend sends, forwarded
    /// bundles included, pays for the repairs it asks of this node (PROTOCOL.md 7.8).
    fn via(sh: &Shared, path: Path, sender: PeerId, share: u64, state: &mut LobbyState) -> Via {
        match path {
            Path::Multicast(_) => Via::Group,
            Path::Unicast(from) => {
                if let Some(friend) = sh.friends.get(from).and_then(|l| l.peer)
                    && friend != sender
                {
                    state.credit_peer(sh, friend, share);
                }
                Via::Friend(from)
            }
        }
    }

    /// A signed bundle (PROTOCOL.md 4.12): verified (once), then its writer's packets are
    /// taken as they would be one by one, and it is kept and passed on whole.
    fn on_bundle(&mut self, now: Instant, path: Path, bundle: Bundle, share: u64) {
        let Some(state) = self.lobbies.get_mut(&bundle.lobby) else {
            self.sh.stats.foreign_lobby += 1;
            return;
        };
        if bundle.source == self.sh.me {
            self.sh.stats.own_packets += 1;
            return;
        }
        let sh = &mut self.sh;
        let (opened, checked) = sh.verified.open(&bundle);
        match checked {
            Checked::Verified => sh.stats.bundles_verified += 1,
            Checked::Remembered => sh.stats.bundles_remembered += 1,
            Checked::Vouched => {}
        }
        let packets = match opened {
            Ok(p) => p,
            Err(OpenError::Unvouched) => {
                // Its anchor was lost or is late: it waits for it (PROTOCOL.md 4.13).
                state.hold_link(sh, now, path, bundle, share);
                return;
            }
            Err(e) => {
                tracing::debug!(source = %bundle.source, error = %e, "dropping a bundle");
                match e {
                    OpenError::Signature(_) => sh.stats.bad_signatures += 1,
                    _ => sh.stats.bad_bundles += 1,
                }
                return;
            }
        };
        if bundle.is_link() {
            sh.stats.links_vouched += 1;
        }
        // The writer can be written to from now on, and where it was heard tells where
        // (PROTOCOL.md 7.10).
        if let wire::Auth::Signed { key, .. } = &bundle.auth {
            let own = matches!(path, Path::Multicast(_)) && bundle.repairer.is_none();
            self.directs
                .note_writer(now, bundle.source, *key, own.then_some(bundle.lobby));
        }
        // An anchor (or a repair vouching again) releases the links that wait for it.
        let chain = bundle.chain().to_vec();
        if !packets.is_empty() {
            // The member that put it on the wire: its writer, or the member repairing it.
            let sender = bundle.repairer.unwrap_or(bundle.source);
            state.credit_peer(sh, sender, share);
            let via = Self::via(sh, path, sender, share, state);
            let spent = state.on_bundle(sh, now, bundle, packets, via, share);
            state.credit_source(sh, sender, share - spent);
        }
        if chain.is_empty() {
            return;
        }
        for link in state.release_links(&chain) {
            self.on_bundle(now, link.path, link.bundle, link.share);
        }
    }

    /// Sends `text` to the peer `to`, sealed to its key (PROTOCOL.md 4.15), and sends it again
    /// until it is acknowledged ([`Event::DirectAcked`]) or given up ([`Event::DirectFailed`],
    /// after two minutes). Returns its id.
    pub fn send_direct(
        &mut self,
        now: Instant,
        to: PeerId,
        text: &str,
    ) -> Result<MsgId, DirectError> {
        self.tick(now);
        if to == self.sh.me {
            return Err(DirectError::ToSelf);
        }
        if text.is_empty() {
            return Err(DirectError::Empty);
        }
        if text.len() > wire::MAX_DIRECT_TEXT {
            return Err(DirectError::TooLong(text.len()));
        }
        let content = Content::Text {
            sent_at: self.sh.wall_ms(now),
            nick: self.sh.nick.clone(),
            text: text.to_owned(),
        };
        self.write_direct(now, to, content)
    }

    /// Invites the peer `to` into the private lobby `lobby` (PROTOCOL.md 7.11): its name and
    /// key go in a direct message, acknowledged and retried as [`Node::send_direct`]'s.
    pub fn invite(
        &mut self,
        now: Instant,
        to: PeerId,
        lobby: LobbyId,
    ) -> Result<MsgId, InviteError> {
        self.tick(now);
        self.invitation(now, to, lobby, false)
    }

    fn invitation(
        &mut self,
        now: Instant,
        to: PeerId,
        lobby: LobbyId,
        again: bool,
    ) -> Result<MsgId, InviteError> {
        let state = self
            .lobbies
            .get(&lobby)
            .ok_or(InviteError::NotJoined(lobby))?;
        let key = self
            .sh
            .outbox
            .key(lobby)
            .ok_or(InviteError::NotPrivate(lobby))?;
        if to == self.sh.me {
            return Err(InviteError::Direct(DirectError::ToSelf));
        }
        let content = Content::Invitation {
            sent_at: self.sh.wall_ms(now),
            nick: self.sh.nick.clone(),
            name: state.lobby.name.clone(),
            key: *key.as_bytes(),
            again,
        };
        let id = self.write_direct(now, to, content)?;
        self.sh.stats.invitations_sent += 1;
        Ok(id)
    }

    /// Seals own `content` to `to`, places it and arms its retries.
    fn write_direct(
        &mut self,
        now: Instant,
        to: PeerId,
        content: Content,
    ) -> Result<MsgId, DirectError> {
        let id = MsgId(self.sh.rng.random());
        let nonce = self.nonces.next_nonce();
        let d = self
            .directs
            .write(self.sh.outbox.signing_key(), now, to, id, nonce, content)?;
        self.sh.stats.directs_sent += 1;
        self.place_direct(now, &d, None);
        self.arm_directs();
        Ok(id)
    }

    /// Re-invites the friends that came back into the private lobbies they were in and have
    /// not rejoined by themselves (PROTOCOL.md 7.11).
    fn reinvite(&mut self, now: Instant) {
        let due: Vec<(LobbyId, PeerId, Instant)> = self
            .reinvites
            .iter()
            .copied()
            .filter(|&(_, _, up)| now.saturating_duration_since(up) >= REINVITE_WAIT)
            .collect();
        self.reinvites
            .retain(|&(_, _, up)| now.saturating_duration_since(up) < REINVITE_WAIT);
        self.reinvited_at
            .retain(|_, at| now.saturating_duration_since(*at) < REINVITE_GAP);
        for (lobby, peer, up) in due {
            let back = self
                .lobbies
                .get(&lobby)
                .is_none_or(|s| s.heard_since(peer, up) || !s.former.contains(&peer));
            if back || self.reinvited_at.contains_key(&(lobby, peer)) {
                tracing::debug!(%peer, %lobby, back, "no re-invitation");
                continue;
            }
            match self.invitation(now, peer, lobby, true) {
                Ok(_) => {
                    tracing::info!(%peer, %lobby, "re-invited a member that came back");
                    self.reinvited_at.insert((lobby, peer), now);
                }
                Err(e) => tracing::debug!(%peer, error = %e, "cannot re-invite"),
            }
        }
    }

    /// Whether this node knows `peer`'s key (from its signed bundles), so that it can send it
    /// a direct message.
    pub fn knows_key(&self, peer: PeerId) -> bool {
        self.directs.knows(peer)
    }

    /// Own direct messages not acknowledged yet.
    pub fn directs_pending(&self) -> usize {
        self.directs.pending()
    }

    /// A direct message received (PROTOCOL.md 7.10): delivered and acknowledged if it is for
    /// this node, placed on if not.
    fn on_direct(&mut self, now: Instant, path: Path, d: wire::Direct) {
        let got = self.directs.receive(self.sh.outbox.signing_key(), now, &d);
        match got {
            Received::Deliver { content, ack } => {
                self.sh.stats.directs_delivered += 1;
                let event = match content {
                    Content::Invitation {
                        sent_at,
                        nick,
                        name,
                        key,
                        again,
                    } => {
                        // The decoder checked that the name is a normalised lobby name.
                        let Ok(named) = Lobby::new(&name) else {
                            return;
                        };
                        let key = LobbyKey::from_bytes(key);
                        Event::Invitation(Invitation {
                            id: d.id,
                            from: d.sender,
                            nick,
                            sent_at,
                            lobby: key.lobby(&named),
                            key,
                            again,
                        })
                    }
                    Content::Text {
                        sent_at,
                        nick,
                        text,
                    } => Event::Direct(DirectMessage {
                        id: d.id,
                        from: d.sender,
                        nick,
                        sent_at,
                        text,
                    }),
                    Content::Ack(_) | Content::Unknown(_) => return,
                };
                self.sh.emit(event);
                if ack {
                    self.acknowledge(now, &d);
                }
            }
            Received::Again { ack } => {
                self.sh.stats.directs_duplicate += 1;
                if ack {
                    self.acknowledge(now, &d);
                }
            }
            Received::Acked { id, by } => {
                self.sh.emit(Event::DirectAcked { id, peer: by });
                self.arm_directs();
            }
            Received::PlaceOn => {
                // From a group only a bridge places it on: the segment heard it already.
                let from = match path {
                    Path::Unicast(from) => Some(from),
                    Path::Multicast(_) => {
                        let t = self.sh.cfg.peer_timeout;
                        if !self
                            .lobbies
                            .values()
                            .any(|s| s.flood.has_participants(now, t))
                        {
                            return;
                        }
                        None
                    }
                };
                self.sh.stats.directs_placed += 1;
                self.place_direct(now, &d, from);
            }
            Received::Drop => self.sh.stats.directs_dropped += 1,
        }
    }

    /// Acknowledges direct message `d` to its writer.
    fn acknowledge(&mut self, now: Instant, d: &wire::Direct) {
        let id = MsgId(self.sh.rng.random());
        let nonce = self.nonces.next_nonce();
        let me = self.sh.outbox.signing_key();
        if let Ok(ack) = self
            .directs
            .write(me, now, d.sender, id, nonce, Content::Ack(d.id))
        {
            self.place_direct(now, &ack, None);
        }
    }

    /// Places a direct message (PROTOCOL.md 7.10): to the addressee if it is a friend; else to
    /// the group it was heard on, and on to friends while hops last.
    fn place_direct(&mut self, now: Instant, d: &wire::Direct, from: Option<SocketAddr>) {
        let friend = self
            .sh
            .friends
            .links()
            .find(|l| l.up && l.peer == Some(d.addressee))
            .map(|l| l.addr);
        if let Some(addr) = friend {
            self.sh.outbox.push_direct(Dest::Peer(addr), d);
            return;
        }
        let t = self.sh.cfg.peer_timeout;
        if self.sh.multicast
            && let Some(lobby) = self.directs.group_of(d.addressee, now, t)
            && self.lobbies.contains_key(&lobby)
        {
            self.sh.outbox.push_direct(Dest::Lobby(lobby), d);
        }
        if d.hops == 0 {
            return;
        }
        let on = wire::Direct {
            hops: d.hops - 1,
            ..d.clone()
        };
        let to: Vec<SocketAddr> = self
            .sh
            .friends
            .links()
            .filter(|l| l.up && from.is_none_or(|f| !super::friends::same(f, l.addr)))
            .map(|l| l.addr)
            .collect();
        for addr in to {
            self.sh.outbox.push_direct(Dest::Peer(addr), &on);
        }
    }

    /// Sends again the own direct messages due, and reports those given up.
    fn retry_directs(&mut self, now: Instant) {
        let nonces = &mut self.nonces;
        let (again, failed) = self
            .directs
            .due(self.sh.outbox.signing_key(), now, || nonces.next_nonce());
        for d in again {
            self.sh.stats.directs_retried += 1;
            self.place_direct(now, &d, None);
        }
        for (id, peer) in failed {
            self.sh.stats.directs_failed += 1;
            tracing::info!(%peer, %id, "direct message not acknowledged: given up");
            self.sh.emit(Event::DirectFailed { id, peer });
        }
        self.arm_directs();
    }

    /// Arms the direct-message timer at the next retry, if it is not armed earlier.
    fn arm_directs(&mut self) {
        if let Some(at) = self.directs.next_deadline()
            && self.direct_at.is_none_or(|a| at < a)
        {
            self.direct_at = Some(at);
            self.sh.timers.push(at, Timer::Direct);
        }
    }

    /// Says whether the runtime listens on the discovery group (PROTOCOL.md 7.12): on, the
    /// node asks the segment for its lobbies at once and announces its listed lobbies there.
    pub fn set_discovery(&mut self, now: Instant, on: bool) {
        self.tick(now);
        let was = std::mem::replace(&mut self.discovery, on);
        if on && !was {
            self.send_list_requests(false);
            self.listings.announce_at = Some(now);
            self.arm_lists();
        }
    }

    /// The merged list of the listed lobbies heard of, most members first, and whether
    /// lobbies were left out of it (PROTOCOL.md 7.12).
    pub fn lobby_list(&self) -> (Vec<Listed>, bool) {
        self.listings.list()
    }

    /// The user asks for the lobby list: friends (and the segment) are asked, at most once per
    /// 20 s, and [`Event::LobbyList`] tells of changes for the next 121 s. Returns the list
    /// as it is now.
    pub fn ask_lobby_list(&mut self, now: Instant) -> (Vec<Listed>, bool) {
        self.tick(now);
        if self.listings.ask(now) {
            self.send_list_requests(true);
        }
        self.listings.list()
    }

    fn send_list_requests(&mut self, friends: bool) {
        let request = wire::ListPacket::Request { sender: self.sh.me };
        if friends {
            let to: Vec<SocketAddr> = self
                .sh
                .friends
                .links()
                .filter(|l| l.up)
                .map(|l| l.addr)
                .collect();
            for addr in to {
                self.sh.outbox.push_list(Dest::Peer(addr), &request);
            }
        }
        if self.discovery && self.sh.multicast {
            self.sh.outbox.push_list(Dest::Discovery, &request);
        }
    }

    /// This node's lobby list: its listed public lobbies and the members it hears in each,
    /// itself included.
    fn own_list(&self) -> wire::LobbyList {
        let mut lobbies: Vec<(String, u64)> = self
            .lobbies
            .values()
            .filter(|s| s.listed && !self.sh.outbox.seals(s.lobby.id))
            .map(|s| (s.lobby.name.clone(), s.members().count() as u64 + 1))
            .collect();
        lobbies.sort_unstable();
        let more = lobbies.len() > wire::MAX_LIST_LOBBIES;
        lobbies.truncate(wire::MAX_LIST_LOBBIES);
        wire::LobbyList {
            sender: self.sh.me,
            lobbies,
            more,
        }
    }

    /// A lobby list or a request (PROTOCOL.md 7.12).
    fn on_list(&mut self, now: Instant, path: Path, packet: wire::ListPacket) {
        if packet.sender() == self.sh.me {
            self.sh.stats.own_packets += 1;
            return;
        }
        match (packet, path) {
            (wire::ListPacket::Request { .. }, Path::Unicast(from)) => {
                if self.listings.answer_friend(now, from) {
                    let list = wire::ListPacket::List(self.own_list());
                    self.sh.outbox.push_list(Dest::Peer(from), &list);
                }
            }
            (wire::ListPacket::Request { .. }, Path::Multicast(_)) => {
                let own = self.own_list();
                if self.discovery && self.sh.multicast && !own.lobbies.is_empty() {
                    let f = self.sh.rng.random_range(0.0..1.0);
                    if self.listings.group_request(now, f).is_some() {
                        self.arm_lists();
                    }
                }
            }
            // Not listening on the discovery group: a list from a group is a stray.
            (wire::ListPacket::List(_), Path::Multicast(_)) if !self.discovery => {
                self.sh.stats.unsupported_kind += 1;
            }
            (wire::ListPacket::List(l), _) => {
                self.sh.stats.lists_heard += 1;
                self.listings.merge(now, &l);
                self.tell_lobby_list(now);
            }
        }
    }

    /// Tells the user of a changed list while it looks at it.
    fn tell_lobby_list(&mut self, now: Instant) {
        if self.listings.take_changed() && self.listings.watching(now) {
            let (lobbies, cut) = self.listings.list();
            self.sh.emit(Event::LobbyList { lobbies, cut });
        }
    }

    /// The group answer or the announcement due.
    fn on_lists_timer(&mut self, now: Instant) {
        let own = self.own_list();
        let names: Vec<String> = own.lobbies.iter().map(|(n, _)| n.clone()).collect();
        let announce = self.listings.announce_at.is_some_and(|t| t <= now);
        let answer = self.listings.group_answer_due(now, &names);
        if announce {
            let f = self.sh.rng.random_range(0.9..1.1);
            self.listings.announce_at = Some(now + LIST_INTERVAL.mul_f64(f));
        }
        if (announce || answer) && self.discovery && self.sh.multicast && !names.is_empty() {
            self.sh.stats.lists_sent += 1;
            self.sh
                .outbox
                .push_list(Dest::Discovery, &wire::ListPacket::List(own));
        }
        self.arm_lists();
    }

    /// Arms the lists timer at the next announcement or group answer.
    fn arm_lists(&mut self) {
        let next = [self.listings.announce_at, self.listings.group_answer_at()]
            .into_iter()
            .flatten()
            .min();
        if let Some(at) = next
            && self.lists_at.is_none_or(|a| at < a)
        {
            self.lists_at = Some(at);
            self.sh.timers.push(at, Timer::Lists);
        }
    }

    /// Asks who goes by `nick` (PROTOCOL.md 7.13): what this node knows comes at once as an
    /// [`Event::WhoIs`] from itself (if it knows anyone), friends' answers as they arrive,
    /// from peers up to three hops away. Returns the query's id.
    pub fn whois(&mut self, now: Instant, nick: &str) -> Result<MsgId, WhoIsError> {
        self.tick(now);
        let nick = check_nick(nick)?;
        if nick.is_empty() {
            return Err(WhoIsError::Nick(NickError::Empty));
        }
        let id = MsgId(self.sh.rng.random());
        if !self.whois.ask(now, id) {
            return Err(WhoIsError::TooSoon);
        }
        let peers = self.known_as(now, &nick, true);
        if !peers.is_empty() {
            let from = self.sh.me;
            self.sh.emit(Event::WhoIs { id, from, peers });
        }
        let query = wire::WhoIs::Query(wire::WhoIsQuery {
            sender: self.sh.me,
            id,
            hops: QUERY_HOPS,
            nick,
        });
        self.pass_whois(&query, None);
        Ok(id)
    }

    /// Sends `w` to every friend whose link is up but `but`.
    fn pass_whois(&mut self, w: &wire::WhoIs, but: Option<SocketAddr>) {
        let to: Vec<SocketAddr> = self
            .sh
            .friends
            .links()
            .filter(|l| l.up && but.is_none_or(|b| !super::friends::same(b, l.addr)))
            .map(|l| l.addr)
            .collect();
        for addr in to {
            self.sh.outbox.push_whois(Dest::Peer(addr), w);
        }
    }

    /// A friend's who-is query or answer (PROTOCOL.md 7.13).
    fn on_whois(&mut self, now: Instant, from: SocketAddr, w: wire::WhoIs) {
        if w.sender() == self.sh.me && matches!(w, wire::WhoIs::Query(_)) {
            self.sh.stats.own_packets += 1;
            return;
        }
        match w {
            wire::WhoIs::Query(q) => {
                let bytes = q.nick.len() + 30;
                if !self.whois.take(now, q.id, q.sender, bytes, from) {
                    self.sh.stats.whois_dropped += 1;
                    return;
                }
                self.sh.stats.whois_heard += 1;
                let peers = self.known_as(now, &q.nick, q.hops >= 1);
                if !peers.is_empty() {
                    let answer = wire::WhoIs::Answer(wire::WhoIsAnswer {
                        sender: self.sh.me,
                        id: q.id,
                        peers,
                    });
                    self.sh.outbox.push_whois(Dest::Peer(from), &answer);
                }
                if q.hops >= 1 {
                    let on = wire::WhoIs::Query(wire::WhoIsQuery {
                        hops: q.hops - 1,
                        ..q
                    });
                    self.pass_whois(&on, Some(from));
                }
            }
            wire::WhoIs::Answer(a) => match self.whois.answer_to(now, a.id) {
                Some(Asked::Own) => self.sh.emit(Event::WhoIs {
                    id: a.id,
                    from: a.sender,
                    peers: a.peers,
                }),
                Some(Asked::Friend(back)) => {
                    self.sh
                        .outbox
                        .push_whois(Dest::Peer(back), &wire::WhoIs::Answer(a));
                }
                None => self.sh.stats.whois_dropped += 1,
            },
        }
    }

    /// What this node knows of peers that go by `nick` (case aside): itself, and with
    /// `others` its friends and the members it hears in its listed public lobbies.
    fn known_as(&self, now: Instant, nick: &str, others: bool) -> Vec<wire::WhoIsPeer> {
        let want = nick.to_lowercase();
        let matches = |n: &str| n.to_lowercase() == want;
        let listed: Vec<&LobbyState> = self
            .lobbies
            .values()
            .filter(|s| s.listed && !self.sh.outbox.seals(s.lobby.id))
            .collect();
        let mut out: Vec<wire::WhoIsPeer> = Vec::new();
        let mut add = |p: wire::WhoIsPeer| {
            if let Some(e) = out.iter_mut().find(|e| e.peer == p.peer) {
                e.seen = e.seen.min(p.seen);
                e.addr = e.addr.or(p.addr);
                for l in p.lobbies {
                    if !e.lobbies.contains(&l) && e.lobbies.len() < wire::MAX_WHOIS_LOBBIES {
                        e.lobbies.push(l);
                    }
                }
            } else if out.len() < wire::MAX_WHOIS_PEERS {
                out.push(p);
            }
        };
        if matches(&self.sh.nick) {
            add(wire::WhoIsPeer {
                peer: self.sh.me,
                nick: self.sh.nick.clone(),
                seen: 0,
                lobbies: listed
                    .iter()
                    .take(wire::MAX_WHOIS_LOBBIES)
                    .map(|s| s.lobby.name.clone())
                    .collect(),
                addr: None,
            });
        }
        if !others {
            return out;
        }
        for l in self.sh.friends.links() {
            if let (Some(peer), Some(n), true) = (l.peer, &l.nick, l.up)
                && matches(n)
            {
                let seen = l
                    .heard
                    .map_or(0, |(_, at)| now.saturating_duration_since(at).as_secs());
                add(wire::WhoIsPeer {
                    peer,
                    nick: n.clone(),
                    seen,
                    lobbies: Vec::new(),
                    addr: Some(l.addr),
                });
            }
        }
        for s in &listed {
            for (peer, n, heard) in s.members_heard() {
                if matches(n) {
                    add(wire::WhoIsPeer {
                        peer,
                        nick: n.to_owned(),
                        seen: now.saturating_duration_since(heard).as_secs(),
                        lobbies: vec![s.lobby.name.clone()],
                        addr: None,
                    });
                }
            }
        }
        out
    }

    /// Reports incomplete messages that reassembly had to drop (a bound or the timeout): their
    /// fragments are lost like any packet given up.
    fn report_reassembly_drops(&mut self) {
        for (lobby, source, count) in self.sh.reassembly.take_dropped() {
            self.sh.stats.reassembly_dropped += 1;
            self.sh.stats.lost += u64::from(count);
            tracing::debug!(%lobby, %source, count, "incomplete message dropped by reassembly");
            self.sh.emit(Event::Lost {
                lobby,
                source,
                count: u64::from(count),
            });
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        // Request timers due together are answered with one request per source.
        let mut due: Vec<(LobbyId, PeerId, u64)> = Vec::new();
        while let Some((at, timer)) = self.sh.timers.pop_due(now) {
            let sh = &mut self.sh;
            match timer {
                Timer::Housekeeping => {
                    if at == self.housekeeping_at {
                        self.housekeeping(now);
                    }
                }
                Timer::Request(l, src, seq) => {
                    if self
                        .lobbies
                        .get(&l)
                        .is_some_and(|s| s.request_due(src, seq, at))
                    {
                        due.push((l, src, seq));
                    }
                }
                Timer::Repair(l, src, seq) => {
                    if let Some(s) = self.lobbies.get_mut(&l) {
                        s.on_repair_timer(sh, now, src, seq, at);
                    }
                }
                Timer::Session(l) => {
                    if let Some(s) = self.lobbies.get_mut(&l) {
                        s.on_session_timer(sh, now, at);
                    }
                }
                Timer::Tail(l) => {
                    if let Some(s) = self.lobbies.get_mut(&l) {
                        s.on_tail_timer(sh, now, at);
                    }
                }
                Timer::HoldBack(l, src) => {
                    if let Some(s) = self.lobbies.get_mut(&l) {
                        s.on_hold_back(sh, now, src, at);
                    }
                }
                Timer::Report(l) => {
                    if let Some(s) = self.lobbies.get_mut(&l) {
                        s.on_report_timer(sh, now, at);
                    }
                }
                Timer::Flow(l) => {
                    if let Some(s) = self.lobbies.get_mut(&l) {
                        s.on_flow_timer(sh, now, at);
                    }
                }
                Timer::Heartbeat(l) => {
                    if let Some(s) = self.lobbies.get_mut(&l) {
                        s.on_heartbeat_timer(sh, now, at);
                    }
                }
                Timer::Direct => {
                    if self.direct_at == Some(at) {
                        self.direct_at = None;
                        self.retry_directs(now);
                    }
                }
                Timer::Lists => {
                    if self.lists_at == Some(at) {
                        self.lists_at = None;
                        self.on_lists_timer(now);
                    }
                }
            }
        }
        due.sort_unstable();
        due.dedup();
        for chunk in due.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let (l, src, _) = chunk[0];
            let seqs: Vec<u64> = chunk.iter().map(|&(_, _, s)| s).collect();
            if let Some(s) = self.lobbies.get_mut(&l) {
                s.send_requests(&mut self.sh, now, src, &seqs);
            }
        }
        // The pace may have let the outbox drain: held-back sends can go on.
        for state in self.lobbies.values_mut() {
            state.check_window(&mut self.sh, now);
        }
        self.report_reassembly_drops();
    }

    fn housekeeping(&mut self, now: Instant) {
        let t = self.sh.link_timing();
        for change in self.sh.friends.expire(t, now) {
            if let LinkChange::Down { addr, .. } = change {
                self.sync_friend(addr);
            }
            self.link_changed(change);
        }
        self.send_hellos(now);
        for state in self.lobbies.values_mut() {
            state.housekeeping(&mut self.sh, now);
        }
        self.sh.reassembly.expire(now);
        self.directs.expire(now);
        self.reinvite(now);
        self.listings.expire(now);
        self.tell_lobby_list(now);
        self.whois.expire(now);
        self.sh.dedup.expire(now);
        self.housekeeping_at = now + HOUSEKEEPING;
        self.sh
            .timers
            .push(self.housekeeping_at, Timer::Housekeeping);
    }

    /// The next datagram to send, if the pace lets it leave now (the instant of the latest
    /// input); otherwise [`Node::poll_timeout`] says when to come back.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.sh.outbox.is_empty() || !self.sh.pacer.ready() {
            return None;
        }
        let t = self.sh.outbox.poll()?;
        self.sh.pacer.spend(t.payload.len());
        self.sh.stats.datagrams_out += 1;
        self.sh.stats.bytes_out += t.payload.len() as u64;
        Some(t)
    }

    /// Takes the time of an input: the pace's clock.
    fn tick(&mut self, now: Instant) {
        self.sh.now = self.sh.now.max(now);
        self.sh.pacer.refill(self.sh.now);
    }

    /// The sending pace now, bytes per second (it follows the members, PROTOCOL.md 6.9).
    pub fn pace_rate(&self) -> f64 {
        self.sh.pacer.rate()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.sh.events.pop_front()
    }

    /// When [`Node::handle_timeout`] should next be called. Cancelled timers are dropped
    /// here so that the runtime does not wake for nothing.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Datagrams the pace holds back are due when it lets them go; those it lets go now
        // are for poll_transmit, not a timeout.
        let paced = (!self.sh.outbox.is_empty() && !self.sh.pacer.has_tokens())
            .then(|| self.sh.pacer.ready_at());
        let timer = self.next_timer();
        timer.into_iter().chain(paced).min()
    }

    fn next_timer(&mut self) -> Option<Instant> {
        while let Some((at, timer)) = self.sh.timers.peek_entry() {
            let live = match timer {
                Timer::Housekeeping => at == self.housekeeping_at,
                Timer::Direct => self.direct_at == Some(at),
                Timer::Lists => self.lists_at == Some(at),
                Timer::Request(l, ..)
                | Timer::Repair(l, ..)
                | Timer::Session(l)
                | Timer::Tail(l)
                | Timer::Report(l)
                | Timer::Flow(l)
                | Timer::Heartbeat(l)
                | Timer::HoldBack(l, _) => self
                    .lobbies
                    .get(&l)
                    .is_some_and(|s| s.timer_live(timer, at)),
            };
            if live {
                return Some(at);
            }
            self.sh.timers.pop();
        }
        None
    }

    /// Receive progress of `source` in `lobby`: (next to show, highest known, lowest wanted,
    /// packets waiting, packets missing). For tests and diagnostics.
    pub fn source_progress(
        &self,
        lobby: LobbyId,
        source: PeerId,
    ) -> Option<(u64, Option<u64>, u64, usize, usize)> {
        self.lobbies.get(&lobby)?.source_progress(source)
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        let mut s = self.sh.stats.clone();
        s.queue_overflow += self.sh.outbox.dropped;
        s.bundles_sealed = self.sh.outbox.sealed;
        s.links_sent = self.sh.outbox.linked;
        s.envelopes_sealed = self.sh.outbox.enveloped;
        s
    }

    /// Starts keeping every recovery delay (from finding a gap to filling it), for the
    /// simulator and benchmarks.
    pub fn record_recovery_delays(&mut self) {
        self.sh.recovery.get_or_insert_with(Vec::new);
    }

    /// The recovery delays kept since the last call.
    pub fn take_recovery_delays(&mut self) -> Vec<Duration> {
        self.sh
            .recovery
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Incomplete messages held by reassembly, and the bytes they hold.
    pub fn reassembly_load(&self) -> (usize, usize) {
        (self.sh.reassembly.len(), self.sh.reassembly.bytes())
    }

    /// Message ids remembered by the dedup cache.
    pub fn dedup_len(&self) -> usize {
        self.sh.dedup.len()
    }
}
