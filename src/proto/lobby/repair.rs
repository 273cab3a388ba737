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
use crate::proto::own::OwnStore;
use crate::proto::wire::{BUNDLE_OVERHEAD, Body, Request, SeqRange};

/// Encoded bytes of a repaired own data packet besides its nick and body: seven integers of at
/// most nine bytes and the headers around them, and a share of its bundle's.
pub(super) const REPAIR_OVERHEAD: u64 = 100;

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
                let Some(held) = self.holding(me, req.source, seq) else {
                    continue;
                };
                // The requester's own packets pay for what it draws, in bytes (6.3).
                let cost = held.cost();
                let key = (req.source, seq);
                if self.hold_down.get(&key).is_some_and(|&t| now < t)
                    || self.repairs.contains_key(&key)
                {
                    continue;
                }
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
    /// unicast, from what is held, within its repair credit (PROTOCOL.md 7.8). Each stored
    /// bundle goes once, however many of the seqs asked for it holds.
    fn answer_friend(&mut self, sh: &mut Shared, addr: SocketAddr, req: &Request) {
        let me = sh.me;
        let mut budget = MAX_REPAIRS_PER_REQUEST;
        let mut scan = sh.cfg.max_gap;
        let mut sent: Vec<u64> = Vec::new();
        'ranges: for &SeqRange(first, last) in &req.ranges {
            for seq in first..=last {
                if budget == 0 || scan == 0 {
                    break 'ranges;
                }
                scan -= 1;
                let Some(held) = self.holding(me, req.source, seq) else {
                    continue;
                };
                if let Holding::Stored(h) = held
                    && sent.contains(&h.serial)
                {
                    continue;
                }
                let cost = held.cost();
                let own = match held {
                    Holding::Own(data) => Some(data.clone()),
                    Holding::Stored(h) => {
                        sent.push(h.serial);
                        None
                    }
                };
                match self.peers.get_mut(&req.sender) {
                    Some(p) if p.credit >= cost => p.credit -= cost,
                    _ => {
                        sh.stats.repairs_refused += 1;
                        break 'ranges;
                    }
                }
                budget -= 1;
                match own {
                    Some(data) => {
                        let body = Body::Repair { repairer: me, data };
                        sh.send_to(Dest::Peer(addr), self.lobby.id, body);
                    }
                    None => {
                        let serial = *sent.last().expect("pushed above");
                        if let Some((b, _)) = self.store.bundle(serial) {
                            let mut b = b.clone();
                            b.repairer = Some(me);
                            sh.send_bundle(Dest::Peer(addr), &b);
                        }
                    }
                }
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
        let d = match self.repairs.get(&key) {
            Some(&(t, d)) if t == at => d,
            _ => return,
        };
        self.repairs.remove(&key);
        let hold = now + d.mul_f64(sh.cfg.hold_down);
        // Everything a stored bundle carries is repaired: its other timers are cancelled, and
        // the hold-down covers it all (PROTOCOL.md 4.12).
        let mut seqs = vec![seq];
        let me = sh.me;
        match self.holding(me, src, seq) {
            None => return,
            Some(Holding::Own(_)) => {
                // In a bundle signed anew, with the neighbouring own repairs that are pending (a
                // lost datagram is asked for whole), up to one datagram's worth: as much as a
                // stored bundle repairs. More at once made bursts that the pace held back past
                // the requesters' timers.
                let mut room = self.room(sh) - BUNDLE_OVERHEAD;
                let fits = |x: u64, room: &mut usize, own: &OwnStore| {
                    let len = own
                        .get(x)
                        .map_or(usize::MAX, |d| d.body.len() + d.nick.len() + 80);
                    let ok = len <= *room;
                    if ok {
                        *room -= len;
                    }
                    ok
                };
                fits(seq, &mut room, &self.own);
                for x in (seq + 1..).take_while(|&x| {
                    self.repairs.contains_key(&(me, x)) && fits(x, &mut room, &self.own)
                }) {
                    seqs.push(x);
                }
                for x in (0..seq).rev().take_while(|&x| {
                    self.repairs.contains_key(&(me, x)) && fits(x, &mut room, &self.own)
                }) {
                    seqs.push(x);
                }
                seqs.sort_unstable();
                for &x in &seqs {
                    self.repairs.remove(&(me, x));
                    if let Some(data) = self.own.get(x) {
                        let body = Body::Repair {
                            repairer: me,
                            data: data.clone(),
                        };
                        sh.send(self.lobby.id, body);
                    }
                }
            }
            Some(Holding::Stored(h)) => {
                let Some((b, inside)) = self.store.bundle(h.serial) else {
                    return;
                };
                let mut b = b.clone();
                seqs = inside.to_vec();
                b.repairer = Some(me);
                if sh.multicast {
                    sh.send_bundle(Dest::Lobby(self.lobby.id), &b);
                }
                for &s in &seqs {
                    self.repairs.remove(&(src, s));
                }
            }
        }
        for s in seqs {
            self.hold_down.insert((src, s), hold);
        }
    }
}
