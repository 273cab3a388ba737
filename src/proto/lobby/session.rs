//! Sessions: periodic, tail and progress reports; distances from echoes; what others' sessions
//! say about sources and about this node's stream.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::proto::flood::Via;
use crate::proto::ids::PeerId;
use crate::proto::outbox::Dest;
use crate::proto::shared::Shared;
use crate::proto::source::Source;
use crate::proto::timers::Timer;
use crate::proto::wire::{
    Acked, BUNDLE_OVERHEAD, Body, Echo, Heard, MAX_SESSION_ACKED, MAX_SESSION_ECHOES,
    MAX_SESSION_HEARD, Packet, Sent, Session, flags,
};

/// Encoded bytes of a `[peer, seq]` entry of a session's `heard` or `acked`.
fn entry_len(peer: PeerId, seq: u64) -> usize {
    1 + uint_len(peer.0) + uint_len(seq)
}

/// Encoded bytes of a CBOR unsigned integer.
fn uint_len(v: u64) -> usize {
    match v {
        0..24 => 1,
        24..0x100 => 2,
        0x100..0x1_0000 => 3,
        0x1_0000..0x1_0000_0000 => 5,
        _ => 9,
    }
}

/// Packets of each source given to a friend that starts taking part: the backlog (6.2).
const CATCH_UP_PER_SOURCE: u64 = 64;
/// Most packets given to such a friend in all.
const CATCH_UP_MAX: usize = 256;

impl LobbyState {
    /// New data arrived: report progress within the report delay.
    /// The mean session interval: grows with the members, so that sessions stay a small
    /// share of the traffic.
    pub(super) fn session_base(&self, sh: &Shared) -> Duration {
        let members = self.peers.len() as u32 + 1;
        sh.cfg
            .session_interval
            .max(sh.cfg.session_per_member * members)
    }

    pub(super) fn want_report(&mut self, sh: &mut Shared, now: Instant) {
        if self.report_at.is_none() {
            let at = now + sh.cfg.report_delay;
            self.report_at = Some(at);
            sh.timers.push(at, Timer::Report(self.id()));
        }
    }

    pub fn on_report_timer(&mut self, sh: &mut Shared, now: Instant, at: Instant) {
        if self.report_at != Some(at) {
            return;
        }
        self.report_at = None;
        // Only progress worth a report: at chat rates the periodic session carries it, and
        // fifty members do not answer every message with a datagram each. A source never
        // reported to is told at once when this member misses some of it, so that the
        // source's window counts it before it runs ahead.
        // A member held back by a gap makes no progress, so its report is not repeated by
        // the stride; if that report was lost, the source would not count it while it runs
        // ahead. So a report still held back by a gap is repeated once the source has sent a
        // stride more since, at most every repeat interval (6.9).
        let stride = sh.cfg.report_stride;
        let repeat = sh.cfg.report_repeat;
        if self.sources.values().any(|s| match s.reported {
            Some(r) => {
                s.acked() >= r.saturating_add(stride)
                    || (!s.missing.is_empty()
                        && s.reported_at.is_some_and(|(at, top)| {
                            now.saturating_duration_since(at) >= repeat
                                && s.top.is_some_and(|t| t >= top.saturating_add(stride))
                        }))
            }
            None => !s.missing.is_empty() || s.acked() >= s.base.saturating_add(stride),
        }) {
            self.send_session(sh, now);
        }
    }

    pub fn on_session_timer(&mut self, sh: &mut Shared, now: Instant, at: Instant) {
        if at != self.session_at {
            return;
        }
        self.send_session(sh, now);
        let base = self.session_base(sh);
        self.session_at = now + sh.uniform(0.5, 1.5, base);
        sh.timers
            .push(self.session_at, Timer::Session(self.lobby.id));
    }

    pub fn on_tail_timer(&mut self, sh: &mut Shared, now: Instant, at: Instant) {
        if self.tail_at != Some(at) {
            return;
        }
        // Tail sessions follow the last data at 1, 2 and 4 times the delay (as PGM's SPMs
        // do), so that a lost last packet is found even if one of them is lost too.
        let due = self.last_data_at + sh.cfg.tail_session_delay * (1 << self.tails_sent);
        if due > now {
            self.tail_at = Some(due);
            sh.timers.push(due, Timer::Tail(self.lobby.id));
            return;
        }
        self.send_session(sh, now);
        self.tails_sent += 1;
        if self.tails_sent < TAIL_SESSIONS {
            let next = self.last_data_at + sh.cfg.tail_session_delay * (1 << self.tails_sent);
            self.tail_at = Some(next);
            sh.timers.push(next, Timer::Tail(self.lobby.id));
        } else {
            self.tail_at = None;
        }
    }

    /// Sends a session to the group (with the bridge flag if this node bridges) and to every
    /// friend taking part, with that friend's `flags` and `mheard` (PROTOCOL.md 7.2, 7.3).
    pub(super) fn send_session(&mut self, sh: &mut Shared, now: Instant) {
        let s = self.build_session(sh, now);
        let timeout = sh.cfg.peer_timeout;
        let partners: Vec<SocketAddr> = self
            .flood
            .participants(now, timeout)
            .map(|p| p.addr)
            .collect();
        if sh.multicast {
            let mut group = s.clone();
            if !partners.is_empty() {
                group.flags |= flags::BRIDGE;
            }
            self.flood.note_own_group_session(group.timestamp, now);
            sh.send(self.lobby.id, Body::Session(group));
        }
        for addr in partners {
            self.session_to(sh, now, addr, s.clone());
        }
    }

    /// Sends a session to the friend at `addr` alone: it asks that friend to be lazy or eager
    /// at once (PROTOCOL.md 7.4).
    pub(super) fn send_session_to(&mut self, sh: &mut Shared, now: Instant, addr: SocketAddr) {
        let s = self.build_session(sh, now);
        self.session_to(sh, now, addr, s);
    }

    fn session_to(&mut self, sh: &mut Shared, now: Instant, addr: SocketAddr, mut s: Session) {
        let (flags, mheard) = self.flood.session_fields(addr, now, sh.cfg.peer_timeout);
        s.flags |= flags;
        s.mheard = mheard;
        sh.send_to(Dest::Peer(addr), self.lobby.id, Body::Session(s));
    }

    /// After friends changed: a session at once when this node starts bridging the lobby, so
    /// that the bridges of one segment elect one before they all forward (PROTOCOL.md 7.5),
    /// and the recent packets to each friend that starts taking part.
    pub fn check_bridge(&mut self, sh: &mut Shared, now: Instant) {
        let timeout = sh.cfg.peer_timeout;
        if self.flood.became_bridge(now, timeout) {
            if sh.multicast {
                self.send_session(sh, now);
            }
            // Presence now travels beyond one hop (7.6).
            self.send_heartbeat(sh, now, false);
        }
        for (addr, peer, catch_up) in self.flood.new_participants(now, timeout) {
            sh.emit(crate::proto::event::Event::FriendInLobby {
                lobby: self.lobby.id,
                addr,
                peer,
            });
            if catch_up {
                self.catch_up(sh, addr);
            }
        }
    }

    /// Gives the friend at `addr`, which just started taking part, the packets held of the
    /// latest [`CATCH_UP_PER_SOURCE`] seqs of each source, the most recently active sources
    /// first, at most [`CATCH_UP_MAX`] in all: what was said before the link came up reaches
    /// it and the members behind it, as a late joiner's backlog would (6.2).
    fn catch_up(&mut self, sh: &mut Shared, addr: SocketAddr) {
        let me = sh.me;
        let mut sources: Vec<(Instant, PeerId, u64)> = self
            .sources
            .iter()
            .filter_map(|(id, s)| Some((s.last_active, *id, s.top?)))
            .collect();
        sources.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let own = self.next_seq.checked_sub(1).map(|t| (me, t));
        let mut budget = CATCH_UP_MAX;
        for (src, top) in own
            .into_iter()
            .chain(sources.into_iter().map(|(_, id, top)| (id, top)))
        {
            let from = top.saturating_sub(CATCH_UP_PER_SOURCE - 1);
            // Others' packets go in their writers' bundles, each bundle once.
            let mut last_bundle = None;
            for seq in from..=top {
                if budget == 0 {
                    return;
                }
                match self.holding(me, src, seq) {
                    Some(Holding::Own(d)) => {
                        let body = Body::Data(d.clone());
                        sh.send_to(Dest::Peer(addr), self.lobby.id, body);
                    }
                    Some(Holding::Stored(h)) if last_bundle != Some(h.serial) => {
                        last_bundle = Some(h.serial);
                        if let Some((b, _)) = self.store.bundle(h.serial) {
                            sh.send_bundle(Dest::Peer(addr), &b.clone());
                        }
                    }
                    _ => continue,
                }
                budget -= 1;
                sh.stats.forwarded += 1;
            }
        }
    }

    /// Tells the friends taking part that this node leaves the lobby.
    pub fn say_leaving(&mut self, sh: &mut Shared, now: Instant) {
        let mut s = self.build_session(sh, now);
        s.flags |= flags::LEAVING;
        let partners: Vec<SocketAddr> = self
            .flood
            .participants(now, sh.cfg.peer_timeout)
            .map(|p| p.addr)
            .collect();
        for addr in partners {
            sh.send_to(Dest::Peer(addr), self.lobby.id, Body::Session(s.clone()));
        }
    }

    fn build_session(&mut self, sh: &mut Shared, now: Instant) -> Session {
        let sent = Sent {
            low: self.own_low(),
            next: self.next_seq,
        };
        let mut echoes: Vec<Echo> = self
            .peers
            .iter()
            .filter_map(|(id, p)| {
                let (ts, at) = p.last_session?;
                (now.saturating_duration_since(at) < sh.cfg.peer_timeout).then(|| Echo {
                    peer: *id,
                    timestamp: ts,
                    delay: now.saturating_duration_since(at).as_micros() as u64,
                })
            })
            .collect();
        echoes.sort_unstable_by_key(|e| e.peer);
        let echoes = rotate(&echoes, &mut self.echo_rotation, MAX_SESSION_ECHOES);
        let mut session = Session {
            sender: sh.me,
            nick: sh.nick.clone(),
            timestamp: sh.micros(now),
            sent,
            heard: Vec::new(),
            echoes,
            acked: Vec::new(),
            flags: 0,
            mheard: 0,
        };
        // The session goes in a bundle that must fit a datagram (PROTOCOL.md 4.12): with many
        // sources, fewer entries go in each. Two list heads may grow by a byte each, and
        // the flags and mheard of a friend's copy by ten.
        let fixed = Packet {
            lobby: self.id(),
            body: Body::Session(session.clone()),
        }
        .encoded_len();
        let mut room = (self.room(sh) - BUNDLE_OVERHEAD).saturating_sub(fixed + 12);
        let mut heard: Vec<Heard> = self
            .sources
            .iter()
            .filter_map(|(id, s)| s.top.map(|t| Heard(*id, t)))
            .collect();
        heard.sort_unstable_by_key(|h| h.0);
        let heard_size: usize = heard
            .iter()
            .take(MAX_SESSION_HEARD)
            .map(|h| entry_len(h.0, h.1))
            .sum();
        // Progress for the sources' flow control first, those heard from most recently
        // first, leaving heard entries what they need, up to two fifths of the room.
        let mut recent: Vec<(Instant, PeerId)> = self
            .sources
            .iter()
            .map(|(id, s)| (s.last_active, *id))
            .collect();
        recent.sort_unstable_by(|a, b| b.cmp(a));
        let mut acked_room = room.saturating_sub(heard_size.min(room * 2 / 5));
        let mut acked: Vec<Acked> = Vec::new();
        for (_, id) in recent.into_iter().take(MAX_SESSION_ACKED) {
            let Some(src) = self.sources.get_mut(&id) else {
                continue;
            };
            let next = src.acked();
            let len = entry_len(id, next);
            if len > acked_room {
                break;
            }
            acked_room -= len;
            room -= len;
            src.reported = Some(next);
            src.reported_at = Some((now, src.top.unwrap_or(0)));
            acked.push(Acked(id, next));
        }
        acked.sort_unstable_by_key(|a| a.0);
        // A report due now goes out with this session.
        self.report_at = None;
        // Heard entries in rotation, as many as fit: the ones left out come first next time.
        let total = heard.len();
        let start = if total == 0 {
            0
        } else {
            self.heard_rotation % total
        };
        let mut used = 0;
        for h in heard
            .iter()
            .cycle()
            .skip(start)
            .take(total.min(MAX_SESSION_HEARD))
        {
            let len = entry_len(h.0, h.1);
            if used + len > room {
                break;
            }
            used += len;
            session.heard.push(*h);
        }
        if total > 0 {
            self.heard_rotation = (start + session.heard.len()) % total;
        }
        session.acked = acked;
        session
    }

    /// A session that came `via`; `share` is its share of the datagram's bytes. Returns the
    /// bytes of it spent on the request credit of sources it introduced (half of it, if it
    /// introduced any): the rest pays for requests about its sender (6.3).
    pub fn on_session(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        s: Session,
        via: Via,
        share: u64,
    ) -> u64 {
        let mut spent = 0;
        self.take_session(sh, now, s, via, share, &mut spent);
        spent
    }

    fn take_session(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        s: Session,
        via: Via,
        share: u64,
        spent: &mut u64,
    ) {
        match via {
            Via::Group => {
                if self.flood.on_group_session(&s, now) {
                    // Members behind the bridge learn of this one without waiting an interval.
                    self.send_heartbeat(sh, now, false);
                }
            }
            Via::Friend(addr) => {
                let interval = self.session_base(sh);
                if self.flood.on_friend_session(addr, &s, now, interval) {
                    for a in self.flood.graft_all() {
                        self.grafted(sh, now, a);
                    }
                }
                self.check_bridge(sh, now);
            }
            Via::Own => {}
        }
        self.touch(sh, now, s.sender, Some(&s.nick));
        let me = sh.me;
        if let Some(p) = self.peers.get_mut(&s.sender) {
            p.last_session = Some((s.timestamp, now));
            if let Some(e) = s.echoes.iter().find(|e| e.peer == me) {
                let rtt = sh
                    .micros(now)
                    .saturating_sub(e.timestamp)
                    .saturating_sub(e.delay);
                let sample = Duration::from_micros(rtt / 2);
                p.distance = Some(match p.distance {
                    None => sample,
                    Some(d) => (d * 7 + sample) / 8,
                });
            }
        }
        // What the source still holds, within the backlog, is worth asking for: this is how
        // a late joiner gets recent history, and how a first packet lost before any later one
        // arrived is found.
        let Sent { low, next } = s.sent;
        if !self.sources.contains_key(&s.sender) {
            if !self.make_room_for_source(sh) {
                return;
            }
            self.sources.insert(s.sender, Source::new(next, now));
        }
        self.forget_above(s.sender, next);
        if next > 0 {
            self.claim(sh, now, s.sender, next - 1);
        }
        self.prune_below(sh, now, s.sender, low);
        let first_heard = self.sources[&s.sender].first_heard;
        let want_from = low.max(first_heard.saturating_sub(sh.cfg.backlog));
        self.backfill(sh, now, s.sender, want_from);
        // Sources this node never heard of, that the sender has: a bridge's or a friend's
        // session (not a plain member's: on one segment every source is heard directly) is how
        // a source on another segment whose every packet was lost here becomes known (7.4). They start after the claim, with the backlog before it wanted; the
        // session's own bytes pay for the requests (6.3), shared among them, so a forged claim
        // of invented sources draws no more than any other.
        let across = matches!(via, Via::Friend(_)) || s.flags & flags::BRIDGE != 0;
        let unknown: Vec<(PeerId, u64)> = s
            .heard
            .iter()
            .filter(|h| across && h.0 != me && h.0 != s.sender)
            .filter(|h| !self.sources.contains_key(&h.0))
            .map(|h| (h.0, h.1))
            .collect();
        *spent = if unknown.is_empty() { 0 } else { share / 2 };
        let credit_each = spent.saturating_mul(sh.cfg.credit_factor) / unknown.len().max(1) as u64;
        for (src_id, high) in unknown {
            if high == u64::MAX || !self.make_room_for_source(sh) {
                continue;
            }
            let mut src = Source::new(high + 1, now);
            src.credit = credit_each.min(sh.cfg.request_credit_cap);
            self.sources.insert(src_id, src);
            let backlog = sh.cfg.backlog.min(sh.cfg.claim_reach);
            self.backfill(sh, now, src_id, (high + 1).saturating_sub(backlog));
        }
        for Heard(src_id, high) in s.heard {
            if src_id != me && self.sources.contains_key(&src_id) {
                self.claim(sh, now, src_id, high);
            }
        }
        if let Some(&Acked(_, next)) = s.acked.iter().find(|a| a.0 == me) {
            self.flow.on_report(now, s.sender, next, self.next_seq);
            self.check_window(sh, now);
        }
    }
}

/// Up to `max` items starting at `*pos`, wrapping; advances `*pos`.
pub(super) fn rotate<T: Copy>(items: &[T], pos: &mut usize, max: usize) -> Vec<T> {
    if items.len() <= max {
        return items.to_vec();
    }
    let start = *pos % items.len();
    *pos = (start + max) % items.len();
    items
        .iter()
        .cycle()
        .skip(start)
        .take(max)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_covers_everything() {
        let items: Vec<u32> = (0..10).collect();
        let mut pos = 0;
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.extend(rotate(&items, &mut pos, 4));
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen, items);
    }
}
