//! Flooding between friends (PROTOCOL.md 7.2 to 7.5, 7.8), per lobby: which friends take part
//! in the lobby, whether this node's multicast reaches each of them, which of them want data
//! pushed as it arrives (lazy links), which member bridges the group, and how much of one
//! writer's traffic may be forwarded. The lobby asks it where a packet goes; it sends nothing
//! itself.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::friends::same;
use super::hash::SeededState;
use super::ids::PeerId;
use super::wire::{Heard, Session, flags};

/// How a packet reached this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// This node wrote it.
    Own,
    /// On the lobby's group.
    Group,
    /// By unicast from the friend at this address.
    Friend(SocketAddr),
}

/// Own group sessions remembered to check friends' `mheard` against.
const OWN_SESSIONS: usize = 16;
/// Per-source high-water marks remembered per friend.
const MAX_ADVERTISED: usize = 256;
/// Least time between two catch-ups of one friend.
const CATCH_UP_GAP: Duration = Duration::from_secs(30);
/// Writers whose forwarding budget is tracked at once.
const MAX_LIMITED: usize = 1024;
/// Packets remembered as first brought by a friend, to find the friends whose pushes the
/// group repeats.
const RECENT_UNICAST: usize = 4096;
/// Packets of one source in a row that only a lazy friend's repairs brought: the paths that
/// should bring them are broken, and that friend is grafted.
const GRAFT_STREAK: u32 = 8;

/// A friend as a participant of this lobby.
#[derive(Debug)]
pub(crate) struct Partner {
    pub addr: SocketAddr,
    pub peer: PeerId,
    /// The friend lists this lobby in its hellos.
    listed: bool,
    /// When its last session of this lobby came by unicast.
    session_at: Option<Instant>,
    /// It left the lobby (its session said so); cleared by its next session without the flag.
    left: bool,
    /// Its last session did not ask to be lazy: push data to it as it arrives.
    pub wants_push: bool,
    /// This node asked it to be lazy (it sent duplicates).
    pub pull_only: bool,
    /// This node's group datagrams reach it (PROTOCOL.md 7.3).
    pub reach: bool,
    /// Consecutive reports that disagree with `reach`.
    streak: u8,
    /// It was given the recent packets when it started taking part (see
    /// [`Flood::new_participants`]).
    caught_up: bool,
    /// Timestamp of its latest group session heard on the group, and when.
    group_session: Option<(u64, Instant)>,
    /// Highest seq it heard per source, from its sessions and the data it sent: it may still
    /// lack some below.
    advertised: HashMap<PeerId, u64, SeededState>,
    /// Per source, the seq below which it holds everything it wants (its sessions' `acked`,
    /// and its own `sent`): a friend that surely can repair.
    contiguous: HashMap<PeerId, u64, SeededState>,
}

/// A writer's forwarding budget: a token bucket in bytes.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The lobby's flooding state.
#[derive(Debug)]
pub(crate) struct Flood {
    partners: Vec<Partner>,
    /// This node's recent group sessions: (timestamp, sent at).
    own_sessions: VecDeque<(u64, Instant)>,
    /// Bridges heard on the group, and when.
    bridges: Vec<(PeerId, Instant)>,
    /// The friend each source's packets last came from.
    last_from: HashMap<PeerId, SocketAddr, SeededState>,
    /// Recent packets a friend brought first: (source, seq) → friend, oldest first out.
    recent_unicast: HashMap<(PeerId, u64), SocketAddr, SeededState>,
    recent_order: VecDeque<(PeerId, u64)>,
    /// Per source: the lazy friend whose repairs brought its latest packets first, and how
    /// many in a row.
    lazy_streak: HashMap<PeerId, (SocketAddr, u32), SeededState>,
    /// Whether this node was the active bridge at the last housekeeping.
    was_active: bool,
    /// Whether this node bridged the lobby when last asked (see [`Flood::became_bridge`]).
    was_bridge: bool,
    /// Whether this node stood by at the last [`Flood::update_role`].
    was_standby: bool,
    /// When each friend was last given the recent packets: at most once per
    /// [`CATCH_UP_GAP`], however often it stops and starts taking part.
    caught_up_at: Vec<(SocketAddr, Instant)>,
    limits: HashMap<PeerId, Bucket, SeededState>,
    hasher: SeededState,
    /// Forward limit: bytes per second and burst.
    rate: f64,
    burst: f64,
}

impl Flood {
    pub fn new(hasher: SeededState, rate: f64, burst: f64) -> Self {
        Flood {
            partners: Vec::new(),
            own_sessions: VecDeque::new(),
            bridges: Vec::new(),
            last_from: HashMap::with_hasher(hasher),
            recent_unicast: HashMap::with_hasher(hasher),
            recent_order: VecDeque::new(),
            lazy_streak: HashMap::with_hasher(hasher),
            was_active: false,
            was_bridge: false,
            was_standby: false,
            caught_up_at: Vec::new(),
            limits: HashMap::with_hasher(hasher),
            hasher,
            rate,
            burst,
        }
    }

    fn partner_mut(&mut self, addr: SocketAddr) -> Option<&mut Partner> {
        self.partners.iter_mut().find(|p| same(p.addr, addr))
    }

    fn partner(&self, addr: SocketAddr) -> Option<&Partner> {
        self.partners.iter().find(|p| same(p.addr, addr))
    }

    /// The friend link at `addr` is up with `peer` (and lists this lobby or not), or down
    /// (`peer` is `None`). A friend whose link is down takes part in nothing. Returns the lazy
    /// friends to graft when a friend that pushed data to this node is gone.
    pub fn sync_link(
        &mut self,
        addr: SocketAddr,
        peer: Option<PeerId>,
        listed: bool,
    ) -> Vec<SocketAddr> {
        let Some(peer) = peer else {
            return self.drop_partner(addr);
        };
        if let Some(p) = self.partner_mut(addr) {
            if p.peer == peer {
                p.listed = listed;
                return Vec::new();
            }
            // Another node at that address now: start over.
            self.drop_partner(addr);
        }
        self.partners.push(Partner {
            addr,
            peer,
            listed,
            session_at: None,
            left: false,
            wants_push: true,
            pull_only: false,
            reach: false,
            streak: 0,
            caught_up: false,
            group_session: None,
            advertised: HashMap::with_hasher(self.hasher),
            contiguous: HashMap::with_hasher(self.hasher),
        });
        Vec::new()
    }

    fn drop_partner(&mut self, addr: SocketAddr) -> Vec<SocketAddr> {
        let pushed = self.partner(addr).is_some_and(|p| !p.pull_only);
        self.partners.retain(|p| !same(p.addr, addr));
        if pushed { self.graft_all() } else { Vec::new() }
    }

    /// Whether `p` takes part in the lobby now (PROTOCOL.md 7.2).
    fn takes_part(p: &Partner, now: Instant, peer_timeout: Duration) -> bool {
        !p.left
            && (p.listed
                || p.session_at
                    .is_some_and(|t| now.saturating_duration_since(t) < peer_timeout))
    }

    /// The friends that take part in the lobby.
    pub fn participants(
        &self,
        now: Instant,
        peer_timeout: Duration,
    ) -> impl Iterator<Item = &Partner> {
        self.partners
            .iter()
            .filter(move |p| Self::takes_part(p, now, peer_timeout))
    }

    /// True once when this node starts bridging the lobby (a first friend takes part): its
    /// group session should go out at once, so that the segment's bridges find each other
    /// before they both forward.
    pub fn became_bridge(&mut self, now: Instant, peer_timeout: Duration) -> bool {
        let bridge = self.has_participants(now, peer_timeout);
        let became = bridge && !self.was_bridge;
        self.was_bridge = bridge;
        became
    }

    /// Friends that started taking part since the last call, and whether each is to be given
    /// the lobby's recent packets, which nothing announces to a friend that never heard of
    /// their sources (PROTOCOL.md 7.5): once per [`CATCH_UP_GAP`].
    pub fn new_participants(
        &mut self,
        now: Instant,
        peer_timeout: Duration,
    ) -> Vec<(SocketAddr, PeerId, bool)> {
        let mut out = Vec::new();
        for p in &mut self.partners {
            let part = Self::takes_part(p, now, peer_timeout);
            if part && !p.caught_up {
                out.push((p.addr, p.peer));
            }
            p.caught_up = part;
        }
        // A friend that leaves and comes back, or whose link flaps, draws the recent packets
        // once per gap, not each time: what it sends cannot buy more than that (PROTOCOL.md 9).
        self.caught_up_at
            .retain(|(_, at)| now.saturating_duration_since(*at) < CATCH_UP_GAP);
        out.into_iter()
            .map(|(addr, peer)| {
                let recent = self.caught_up_at.iter().any(|(a, _)| same(*a, addr));
                if !recent && self.caught_up_at.len() < 64 {
                    self.caught_up_at.push((addr, now));
                }
                (addr, peer, !recent)
            })
            .collect()
    }

    /// Friends whose link is up but that do not take part: whom to challenge (7.7).
    pub fn outsiders(&self, now: Instant, peer_timeout: Duration) -> Vec<(SocketAddr, PeerId)> {
        self.partners
            .iter()
            .filter(|p| !Self::takes_part(p, now, peer_timeout))
            .map(|p| (p.addr, p.peer))
            .collect()
    }

    /// The friend at `addr` answered or matched a challenge: it takes part from now on
    /// (until the peer timeout, renewed by its sessions).
    pub fn accept(&mut self, addr: SocketAddr, now: Instant) {
        if let Some(p) = self.partner_mut(addr) {
            p.session_at = Some(now);
            p.left = false;
        }
    }

    /// Whether any friend takes part: this node then bridges the lobby (7.5).
    pub fn has_participants(&self, now: Instant, peer_timeout: Duration) -> bool {
        self.participants(now, peer_timeout).next().is_some()
    }

    /// A session of this lobby came by unicast from the friend at `addr` (a friend whose link
    /// is up; others are not partners). `interval` is the lobby's session interval. Returns
    /// true when a friend that pushed data to this node says it leaves: lazy friends are then
    /// grafted (see [`Flood::graft_all`]).
    pub fn on_friend_session(
        &mut self,
        addr: SocketAddr,
        s: &Session,
        now: Instant,
        interval: Duration,
    ) -> bool {
        let fresh = s.mheard != 0
            && self.own_sessions.iter().any(|&(ts, at)| {
                ts == s.mheard && now.saturating_duration_since(at) < interval * 3
            });
        let Some(p) = self.partner_mut(addr) else {
            return false;
        };
        if p.peer != s.sender {
            return false;
        }
        p.session_at = Some(now);
        let left = s.flags & flags::LEAVING != 0;
        let pushed_and_left = left && !p.left && !p.pull_only;
        p.left = left;
        p.wants_push = s.flags & flags::LAZY == 0;
        // Reach changes after three reports in a row say otherwise (PROTOCOL.md 7.3).
        if fresh == p.reach {
            p.streak = 0;
        } else {
            p.streak += 1;
            if p.streak >= 3 {
                p.reach = fresh;
                p.streak = 0;
                tracing::debug!(friend = %p.addr, reach = fresh, "multicast reach changed");
            }
        }
        let sent_top = s.sent.next.checked_sub(1);
        let entries = s
            .heard
            .iter()
            .map(|&Heard(src, high)| (src, high))
            .chain(sent_top.map(|t| (s.sender, t)));
        for (src, high) in entries {
            advertise(&mut p.advertised, src, high);
        }
        let holds = s
            .acked
            .iter()
            .map(|a| (a.0, a.1))
            .chain(std::iter::once((s.sender, s.sent.next)));
        for (src, next) in holds {
            if let Some(c) = p.contiguous.get_mut(&src) {
                *c = next;
            } else if p.contiguous.len() < MAX_ADVERTISED {
                p.contiguous.insert(src, next);
            }
        }
        pushed_and_left
    }

    /// A session heard on the group: remember a friend's timestamp for `mheard`, and bridges.
    /// True when it is the first bridge heard (members then start their heartbeats, 7.6).
    pub fn on_group_session(&mut self, s: &Session, now: Instant) -> bool {
        let none_before = self.bridges.is_empty();
        if let Some(p) = self.partners.iter_mut().find(|p| p.peer == s.sender) {
            p.group_session = Some((s.timestamp, now));
        }
        if s.flags & flags::BRIDGE != 0 {
            match self.bridges.iter_mut().find(|b| b.0 == s.sender) {
                Some(b) => b.1 = now,
                None => {
                    if self.bridges.len() < 64 {
                        self.bridges.push((s.sender, now));
                    }
                }
            }
        }
        none_before && !self.bridges.is_empty()
    }

    /// Whether presence must travel beyond sessions: a friend takes part, or a bridge on the
    /// group carries this segment's traffic to friends (7.6).
    pub fn beyond_one_hop(&self, now: Instant, peer_timeout: Duration) -> bool {
        !self.bridges.is_empty() || self.has_participants(now, peer_timeout)
    }

    /// This node sent a group session stamped `ts`.
    pub fn note_own_group_session(&mut self, ts: u64, now: Instant) {
        if self.own_sessions.len() >= OWN_SESSIONS {
            self.own_sessions.pop_front();
        }
        self.own_sessions.push_back((ts, now));
    }

    /// `flags` and `mheard` of a session sent by unicast to `addr`.
    pub fn session_fields(
        &self,
        addr: SocketAddr,
        now: Instant,
        peer_timeout: Duration,
    ) -> (u64, u64) {
        let Some(p) = self.partner(addr) else {
            return (0, 0);
        };
        let lazy = if p.pull_only { flags::LAZY } else { 0 };
        let mheard = p
            .group_session
            .filter(|&(_, at)| now.saturating_duration_since(at) < peer_timeout)
            .map_or(0, |(ts, _)| ts);
        (lazy, mheard)
    }

    /// Whether this node bridges the lobby but another member, with a lower peer id, is the
    /// active bridge: it stands by (PROTOCOL.md 7.5).
    pub fn standby(
        &self,
        me: PeerId,
        now: Instant,
        interval: Duration,
        peer_timeout: Duration,
    ) -> bool {
        self.has_participants(now, peer_timeout)
            && !self.active_bridge(me, now, interval, peer_timeout)
    }

    /// Whether this node asked the friend at `addr` to be lazy.
    pub fn pulls_only(&self, addr: SocketAddr) -> bool {
        self.partner(addr).is_some_and(|p| p.pull_only)
    }

    /// A standby bridge takes nothing pushed from its friends (the active bridge brings it to
    /// the group): it asks every friend to be lazy. Returns those newly asked.
    pub fn prune_all(&mut self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for p in &mut self.partners {
            if !std::mem::replace(&mut p.pull_only, true) {
                out.push(p.addr);
            }
        }
        out
    }

    /// Whether this node is the lobby's active bridge on its segment (PROTOCOL.md 7.5).
    pub fn active_bridge(
        &self,
        me: PeerId,
        now: Instant,
        interval: Duration,
        peer_timeout: Duration,
    ) -> bool {
        self.has_participants(now, peer_timeout)
            && !self
                .bridges
                .iter()
                .any(|&(b, at)| b < me && now.saturating_duration_since(at) < interval * 3)
    }

    /// Where a packet first held by this node goes by unicast (PROTOCOL.md 7.4 step 2):
    /// friends that take part and want data pushed, but not the one it came from, nor those
    /// that this node's multicast reaches when the packet is on its segment.
    pub fn targets(
        &self,
        via: Via,
        on_segment: bool,
        now: Instant,
        peer_timeout: Duration,
    ) -> Vec<SocketAddr> {
        self.participants(now, peer_timeout)
            .filter(|p| p.wants_push)
            .filter(|p| !matches!(via, Via::Friend(a) if same(a, p.addr)))
            .filter(|p| !(on_segment && p.reach))
            .map(|p| p.addr)
            .collect()
    }

    /// Takes `bytes` from `writer`'s forwarding budget; false if it is spent (7.4).
    pub fn allow_forward(&mut self, writer: PeerId, bytes: usize, now: Instant) -> bool {
        if !self.limits.contains_key(&writer) && self.limits.len() >= MAX_LIMITED {
            // Forget full buckets first: they hold no information.
            let (rate, burst) = (self.rate, self.burst);
            self.limits.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            if self.limits.len() >= MAX_LIMITED {
                return false;
            }
        }
        let b = self.limits.entry(writer).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens < bytes as f64 {
            return false;
        }
        b.tokens -= bytes as f64;
        true
    }

    /// A packet came by unicast from `addr`, pushed or as a repair: it holds it, and is the
    /// source's latest path.
    pub fn note_data_from(&mut self, addr: SocketAddr, source: PeerId, seq: u64, pushed: bool) {
        if let Some(p) = self.partner_mut(addr) {
            advertise(&mut p.advertised, source, seq);
        }
        if self.last_from.len() < MAX_LIMITED || self.last_from.contains_key(&source) {
            self.last_from.insert(source, addr);
        }
        // A repair this node asked for races the push that was on its way: only a push that
        // repeats another push is redundant (see on_duplicate).
        if !pushed {
            return;
        }
        if self.recent_order.len() >= RECENT_UNICAST
            && let Some(old) = self.recent_order.pop_front()
        {
            self.recent_unicast.remove(&old);
        }
        self.recent_unicast.insert((source, seq), addr);
        self.recent_order.push_back((source, seq));
    }

    /// A duplicate of pushed data (not a repair), (`source`, `seq`), came `via`. Returns the
    /// friend to ask to be lazy now (PlumTree's prune):
    /// - a friend that pushed what another friend brought first (one whose push repeats the
    ///   group is not: it does not know yet that multicast reaches this node, and learns it
    ///   through `mheard`, 7.3);
    /// - when the group repeats what a friend brought first, that friend (the group carries
    ///   its traffic already, as at a standby bridge), unless this node is the active bridge
    ///   (`active`): then another member bridges too, before they heard each other.
    pub fn on_duplicate(
        &mut self,
        via: Via,
        source: PeerId,
        seq: u64,
        active: bool,
    ) -> Option<SocketAddr> {
        let first = self.recent_unicast.get(&(source, seq)).copied()?;
        let addr = match via {
            Via::Friend(a) if !same(a, first) => a,
            Via::Group if !active => first,
            _ => return None,
        };
        match self.partner_mut(addr) {
            Some(p) if !p.pull_only => {
                p.pull_only = true;
                Some(p.addr)
            }
            _ => None,
        }
    }

    /// The friend to ask for `source`'s seqs up to `top` in request round `round` (7.8). A
    /// friend whose report says it holds everything up to `top` is asked first (friends that
    /// push data before lazy ones, then the one the source's packets last came from); else
    /// one that has heard up to `top` (it may lack the seqs itself), a different one each
    /// round. A lazy friend is asked only from the second round on: the paths that bring the
    /// data should repair a single loss, and asking it at once would draw a second repair.
    pub fn repair_friend(
        &self,
        source: PeerId,
        top: u64,
        round: u32,
        now: Instant,
        peer_timeout: Duration,
    ) -> Option<(SocketAddr, PeerId)> {
        let eligible = |p: &&Partner| round > 0 || !p.pull_only;
        let preferred = self.last_from.get(&source).copied();
        let sure = self
            .participants(now, peer_timeout)
            .filter(eligible)
            .filter(|p| p.contiguous.get(&source).is_some_and(|&c| c > top))
            .max_by_key(|p| (!p.pull_only, preferred.is_some_and(|a| same(a, p.addr))));
        if let Some(p) = sure {
            return Some((p.addr, p.peer));
        }
        let maybe: Vec<&Partner> = self
            .participants(now, peer_timeout)
            .filter(eligible)
            .filter(|p| p.advertised.get(&source).is_some_and(|&h| h >= top))
            .collect();
        let p = maybe.get(round as usize % maybe.len().max(1))?;
        Some((p.addr, p.peer))
    }

    /// A packet of `source` was held for the first time, brought `via` (as a repair if
    /// `repair`). Returns a lazy friend to graft: its repairs alone brought the source's last
    /// [`GRAFT_STREAK`] packets, so the paths that should push them are broken.
    pub fn on_first(&mut self, via: Via, repair: bool, source: PeerId) -> Option<SocketAddr> {
        let lazy = match via {
            Via::Friend(a) if repair => self.partner(a).filter(|p| p.pull_only).map(|p| p.addr),
            _ => None,
        };
        let Some(a) = lazy else {
            self.lazy_streak.remove(&source);
            return None;
        };
        if self.lazy_streak.len() >= MAX_LIMITED && !self.lazy_streak.contains_key(&source) {
            return None;
        }
        let e = self.lazy_streak.entry(source).or_insert((a, 0));
        if !same(e.0, a) {
            *e = (a, 0);
        }
        e.1 += 1;
        if e.1 < GRAFT_STREAK {
            return None;
        }
        self.lazy_streak.remove(&source);
        self.graft(a)
    }

    /// Asks the lazy friend at `addr` to push data again; returns it if it was lazy.
    fn graft(&mut self, addr: SocketAddr) -> Option<SocketAddr> {
        let p = self.partner_mut(addr)?;
        std::mem::replace(&mut p.pull_only, false).then_some(p.addr)
    }

    /// Lazy friends to graft because the tree lost a branch: this node just became the active
    /// bridge (it must now push to the group what friends bring), or a friend that pushed data
    /// left or went down (PROTOCOL.md 7.4, 7.5).
    pub fn graft_all(&mut self) -> Vec<SocketAddr> {
        let lazy: Vec<SocketAddr> = self
            .partners
            .iter()
            .filter(|p| p.pull_only)
            .map(|p| p.addr)
            .collect();
        lazy.into_iter().filter_map(|a| self.graft(a)).collect()
    }

    /// Housekeeping: a friend silent for three session intervals is not reached any more;
    /// old bridges are forgotten. Returns the friends to tell at once of a change of role.
    pub fn housekeeping(
        &mut self,
        me: PeerId,
        now: Instant,
        interval: Duration,
        peer_timeout: Duration,
    ) -> Vec<SocketAddr> {
        for p in &mut self.partners {
            if p.reach
                && p.session_at
                    .is_none_or(|t| now.saturating_duration_since(t) >= interval * 3)
            {
                p.reach = false;
                p.streak = 0;
            }
        }
        self.bridges
            .retain(|&(_, at)| now.saturating_duration_since(at) < interval * 3);
        self.update_role(me, now, interval, peer_timeout)
    }

    /// Follows the election (7.5): a bridge that becomes active grafts its lazy friends, one
    /// that becomes standby prunes them all. Returns the friends whose link state changed,
    /// to be told at once with a session.
    pub fn update_role(
        &mut self,
        me: PeerId,
        now: Instant,
        interval: Duration,
        peer_timeout: Duration,
    ) -> Vec<SocketAddr> {
        let active = self.active_bridge(me, now, interval, peer_timeout);
        let standby = self.standby(me, now, interval, peer_timeout);
        let changed = if active && !self.was_active {
            self.graft_all()
        } else if standby && !self.was_standby {
            self.prune_all()
        } else {
            Vec::new()
        };
        self.was_active = active;
        self.was_standby = standby;
        changed
    }
}

fn advertise(map: &mut HashMap<PeerId, u64, SeededState>, src: PeerId, high: u64) {
    if let Some(h) = map.get_mut(&src) {
        *h = (*h).max(high);
    } else if map.len() < MAX_ADVERTISED {
        map.insert(src, high);
    }
}
