//! Repairing: answering others' requests from what this node holds, with hints, timers,
//! suppression and hold-down.

use std::time::{Duration, Instant};

use super::receive::rearm;
use super::*;
use crate::proto::ids::PeerId;
use crate::proto::shared::Shared;
use crate::proto::timers::Timer;
use std::net::SocketAddr;

use crate::proto::flood::Via;
use crate::proto::outbox::Dest;
use crate::proto::wire::{Body, Request, SeqRange};

/// Encoded bytes of a repair packet besides its nick and body: ten integers of at most nine
/// bytes and the headers around them.
const REPAIR_OVERHEAD: u64 = 100;

impl LobbyState {
    pub fn on_request(&mut self, sh: &mut Shared, now: Instant, req: Request, via: Via) {
        sh.stats.requests_heard += 1;
        self.touch(sh, now, req.sender, None);
        if let Via::Friend(addr) = via {
            self.answer_friend(sh, addr, &req);
            return;
        }
        let me = sh.me;
        let d_req = self.dist(sh, req.sender);
        let mut budget = MAX_REPAIRS_PER_REQUEST;
        let asked_me = req.hint.is_none_or(|h| h == me);
        let (lo, hi) = if req.hint == Some(me) {
            (sh.cfg.d1_hinted, sh.cfg.d1_hinted + sh.cfg.d2_hinted)
        } else {
            (sh.cfg.d1, sh.cfg.d1 + sh.cfg.d2)
        };
        // One request may make this node look at this many sequence numbers, whatever its
        // ranges say: the work a peer can cause is bounded like the traffic.
        let mut scan = sh.cfg.max_gap;
        for &SeqRange(first, last) in &req.ranges {
            if first > last || scan == 0 {
                continue;
            }
            // Our own gaps in the range: another member asked first, so back off (SRM). Not
            // when a friend holds them: the other member's request does not reach it, and
            // this node is how the group gets them (PROTOCOL.md 7.8).
            let d_src = self.dist(sh, req.source);
            let u = sh.uniform(0.0, 1.0, Duration::from_secs(1)).as_secs_f64();
            let timeout = sh.cfg.peer_timeout;
            let friend_holds = self
                .flood
                .repair_friend(req.source, first, 1, now, timeout)
                .is_some();
            if let Some(src) = self.sources.get_mut(&req.source).filter(|_| !friend_holds) {
                for (&seq, miss) in src.missing.range_mut(first..=last) {
                    if scan == 0 {
                        break;
                    }
                    scan -= 1;
                    if now < miss.ignore_until {
                        continue;
                    }
                    miss.backoff += 1;
                    rearm(&sh.cfg, miss, now, d_src, req.hint.is_some(), false, u);
                    sh.stats.requests_suppressed += 1;
                    sh.timers.push(
                        miss.deadline,
                        Timer::Request(self.lobby.id, req.source, seq),
                    );
                }
            }
            if !asked_me || budget == 0 {
                continue;
            }
            // What we hold of it: schedule repairs.
            for seq in first..=last {
                if budget == 0 || scan == 0 {
                    break;
                }
                scan -= 1;
                if self.held(me, req.source, seq).is_none() {
                    continue;
                }
                let key = (req.source, seq);
                if self.hold_down.get(&key).is_some_and(|&t| now < t)
                    || self.repairs.contains_key(&key)
                {
                    continue;
                }
                // The requester's own packets pay for what it draws, in bytes (6.3).
                let cost = self.held(me, req.source, seq).map_or(0, |d| {
                    REPAIR_OVERHEAD + (d.nick.len() + d.body.len()) as u64
                });
                match self.peers.get_mut(&req.sender) {
                    Some(p) if p.credit >= cost => p.credit -= cost,
                    _ => {
                        sh.stats.repairs_refused += 1;
                        budget = 0;
                        continue;
                    }
                }
                budget -= 1;
                let at = now + sh.uniform(lo, hi, d_req);
                self.repairs.insert(key, (at, d_req));
                sh.timers
                    .push(at, Timer::Repair(self.lobby.id, req.source, seq));
            }
        }
    }

    /// A friend asked by unicast: it asked this node alone, so it is answered at once, by
    /// unicast, from what is held, within its repair credit (PROTOCOL.md 7.8).
    fn answer_friend(&mut self, sh: &mut Shared, addr: SocketAddr, req: &Request) {
        let me = sh.me;
        let mut budget = MAX_REPAIRS_PER_REQUEST;
        let mut scan = sh.cfg.max_gap;
        'ranges: for &SeqRange(first, last) in &req.ranges {
            for seq in first..=last {
                if budget == 0 || scan == 0 {
                    break 'ranges;
                }
                scan -= 1;
                let Some(data) = self.held(me, req.source, seq).cloned() else {
                    continue;
                };
                let cost = REPAIR_OVERHEAD + (data.nick.len() + data.body.len()) as u64;
                match self.peers.get_mut(&req.sender) {
                    Some(p) if p.credit >= cost => p.credit -= cost,
                    _ => {
                        sh.stats.repairs_refused += 1;
                        break 'ranges;
                    }
                }
                budget -= 1;
                let body = Body::Repair { repairer: me, data };
                sh.send_to(Dest::Peer(addr), self.lobby.id, body);
            }
        }
    }

    pub fn on_repair_timer(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        src: PeerId,
        seq: u64,
        at: Instant,
    ) {
        let key = (src, seq);
        match self.repairs.get(&key) {
            Some(&(t, d)) if t == at => {
                self.repairs.remove(&key);
                if let Some(data) = self.held(sh.me, src, seq) {
                    let body = Body::Repair {
                        repairer: sh.me,
                        data: data.clone(),
                    };
                    sh.send(self.lobby.id, body);
                    self.hold_down
                        .insert(key, now + d.mul_f64(sh.cfg.hold_down));
                }
            }
            _ => {}
        }
    }
}
