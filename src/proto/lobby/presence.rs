//! Presence beyond one hop (PROTOCOL.md 7.6): heartbeats, sent to the group and flooded
//! through friends like messages, tell who is in the lobby, their nick changes and their
//! leaving, to members that no session of theirs reaches.

use std::time::{Duration, Instant};

use super::*;
use crate::proto::event::Event;
use crate::proto::flood::Via;
use crate::proto::ids::MsgId;
use crate::proto::outbox::Dest;
use crate::proto::shared::Shared;
use crate::proto::timers::Timer;
use crate::proto::wire::{Body, Heartbeat};

impl LobbyState {
    /// Sends a heartbeat now (leaving it if `leaving`) and, unless leaving, schedules the next
    /// one a heartbeat interval later.
    pub fn send_heartbeat(&mut self, sh: &mut Shared, now: Instant, leaving: bool) {
        let beat = MsgId(rand::RngExt::random(&mut sh.rng));
        sh.dedup.insert(now, beat);
        let hb = Heartbeat {
            sender: sh.me,
            nick: sh.nick.clone(),
            beat,
            sent_at: sh.wall_ms(now),
            leaving,
        };
        let plan = self.forward_plan(sh, now, Via::Own);
        sh.send(self.id(), Body::Heartbeat(hb.clone()));
        for addr in plan.friends {
            sh.send_to(Dest::Peer(addr), self.id(), Body::Heartbeat(hb.clone()));
        }
        if !leaving {
            let at = now + sh.uniform(0.9, 1.1, sh.cfg.heartbeat_interval);
            self.heartbeat_at = at;
            sh.timers.push(at, Timer::Heartbeat(self.id()));
        }
    }

    /// The heartbeat interval passed: a heartbeat goes out if anyone needs it, that is if a
    /// friend takes part or a bridge is on the group; on a plain segment sessions tell all.
    pub fn on_heartbeat_timer(&mut self, sh: &mut Shared, now: Instant, at: Instant) {
        if at != self.heartbeat_at {
            return;
        }
        if self.flood.beyond_one_hop(now, sh.cfg.peer_timeout) {
            self.send_heartbeat(sh, now, false);
        } else {
            self.heartbeat_at = now + sh.uniform(0.9, 1.1, sh.cfg.heartbeat_interval);
            sh.timers
                .push(self.heartbeat_at, Timer::Heartbeat(self.id()));
        }
    }

    /// A heartbeat: shown as presence once. Returns true the first time, when its bundle is to
    /// be passed on like data.
    pub(super) fn on_heartbeat(&mut self, sh: &mut Shared, now: Instant, hb: Heartbeat) -> bool {
        if hb.sender == sh.me {
            sh.stats.own_packets += 1;
            return false;
        }
        // Older than the presence timeout it says nothing; far ahead, the clock is wrong.
        let wall = sh.wall_ms(now);
        let max_age = sh.cfg.presence_timeout.as_millis() as u64;
        let ahead = sh.cfg.future_limit.as_millis() as u64;
        if hb.sent_at.saturating_add(max_age) < wall || hb.sent_at > wall.saturating_add(ahead) {
            sh.stats.too_old += 1;
            return false;
        }
        if !sh.dedup.insert(now, hb.beat) {
            sh.stats.duplicate_packets += 1;
            return false;
        }
        sh.stats.heartbeats_heard += 1;
        if hb.leaving {
            // It parted: not re-invited (PROTOCOL.md 7.11).
            self.former.remove(&hb.sender);
            if self.parted.len() < MAX_PARTED {
                self.parted.insert(hb.sender);
            }
            if self.peers.remove(&hb.sender).is_some() {
                sh.emit(Event::PeerLeft {
                    lobby: self.id(),
                    peer: hb.sender,
                });
            }
        } else {
            self.parted.remove(&hb.sender);
            self.touch(sh, now, hb.sender, Some(&hb.nick));
            if let Some(p) = self.peers.get_mut(&hb.sender) {
                p.heartbeat_at = Some(now);
            }
        }
        true
    }

    /// Whether a member is gone at `now`: nothing of it came for the peer timeout, and its
    /// heartbeats do not keep it present. They do for the presence timeout, but only for a
    /// member whose sessions do not reach this node (none came since its last heartbeat): one
    /// whose sessions stop is gone after the peer timeout, as on a LAN without friends.
    pub(super) fn is_gone(sh: &Shared, now: Instant, p: &Peer) -> bool {
        let since = |t: Instant| now.saturating_duration_since(t);
        if since(p.last_heard) < sh.cfg.peer_timeout {
            return false;
        }
        let beyond_sessions = match (p.heartbeat_at, p.last_session) {
            (Some(hb), Some((_, s))) => hb > s,
            (Some(_), None) => true,
            (None, _) => false,
        };
        !(beyond_sessions
            && p.heartbeat_at
                .is_some_and(|t| since(t) < sh.cfg.presence_timeout))
    }
}

/// The first heartbeat of a lobby goes out within this of joining.
pub(super) const FIRST_HEARTBEAT: Duration = Duration::from_millis(100);
/// Members remembered as parted, per lobby, at most.
const MAX_PARTED: usize = 1024;
