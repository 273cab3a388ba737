//! Receiving: per-source windows, gap detection from data and claims, requests with their
//! credit and backoff, hold-back and delivery in order.

use std::time::{Duration, Instant};

use super::*;
use crate::proto::config::Config;
use crate::proto::event::{Event, Message};
use crate::proto::flood::Via;
use crate::proto::fragment::Refused;
use crate::proto::ids::{LobbyId, PeerId};
use crate::proto::outbox::Dest;
use crate::proto::shared::Shared;
use crate::proto::source::{Miss, Source};
use crate::proto::timers::Timer;
use crate::proto::wire::{Body, Bundle, Data, Packet, Request, SeqRange};

impl LobbyState {
    /// A data packet, original or repaired by `repairer`, that came `via` in a bundle.
    /// Returns true if it was held for the first time (the caller keeps and passes on its
    /// bundle).
    pub(super) fn on_data(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        data: Data,
        repairer: Option<PeerId>,
        via: Via,
    ) -> bool {
        let (src_id, seq) = (data.source, data.seq);
        if seq == u64::MAX {
            // The last number is never used, so that one past any packet exists.
            sh.stats.duplicate_packets += 1;
            return false;
        }
        match repairer {
            None => self.touch(sh, now, src_id, Some(&data.nick)),
            Some(r) => self.heard_repair(sh, now, r, src_id, seq),
        }
        if !self.sources.contains_key(&src_id) {
            if !self.make_room_for_source(sh) {
                return false;
            }
            // Start at the first fragment of this message, and want the backlog before it
            // (packets reordered ahead of this one included).
            let first = seq - u64::from(data.frag_index).min(seq);
            self.sources.insert(src_id, Source::new(first, now));
            self.backfill(sh, now, src_id, first.saturating_sub(sh.cfg.backlog));
        }
        let src = self.sources.get(&src_id).expect("present");
        // Reordered behind the first packet heard of a new source (a paced burst leaves
        // datagrams back to back): the stream starts earlier than the backlog reached. While
        // nothing of it was shown, reach back to it, a backlog at a time.
        let first = seq - u64::from(data.frag_index).min(seq);
        if seq < src.base && !src.shown_any && src.base - first <= sh.cfg.backlog {
            self.backfill(sh, now, src_id, first);
        }
        let src = self.sources.get(&src_id).expect("present");
        if src.has(seq) {
            sh.stats.duplicate_packets += 1;
            return false;
        }
        if seq > 0 {
            self.learn(sh, now, src_id, seq - 1);
        }
        if data.frag_index == 0 {
            self.note_message(sh, now, data.msg_id, true);
        }
        if let Via::Friend(a) = via {
            self.flood
                .note_data_from(a, src_id, seq, repairer.is_none());
        }
        if let Some(a) = self.flood.on_first(via, repairer.is_some(), src_id) {
            self.grafted(sh, now, a);
        }
        self.want_report(sh, now);
        let id = self.id();
        let src = self.sources.get_mut(&src_id).expect("present");
        src.last_active = now;
        if src.top.is_none_or(|t| t < seq) {
            src.top = Some(seq);
        }
        if src.received_top.is_none_or(|t| t < seq) {
            src.received_top = Some(seq);
            if src.claimed > seq {
                let upto = src.claimed.min(seq.saturating_add(sh.cfg.claim_reach));
                self.learn(sh, now, src_id, upto);
            }
        }
        let src = self.sources.get_mut(&src_id).expect("present");
        if let Some(miss) = src.missing.remove(&seq) {
            self.missing_total -= 1;
            sh.record_recovery(now.saturating_duration_since(miss.detected));
        }
        // The lowest packet wanted of a source heard first through data was sent after this
        // node joined: the source spoke while this node was here, and its first packets may
        // lie further back than the backlog (they were lost with its first session). Reach
        // back another backlog, while within the flow window of where it was first heard.
        // (By the source's clock: where clocks disagree, a member that was there may get only
        // the backlog, as a late joiner does, or a late joiner a little more.)
        if seq == src.base
            && data.sent_at >= self.joined_wall
            && src.first_heard.saturating_sub(seq) < sh.cfg.flow_window
            && seq > 0
        {
            let want_from = seq.saturating_sub(sh.cfg.backlog);
            self.backfill(sh, now, src_id, want_from);
        }
        let src = self.sources.get_mut(&src_id).expect("present");
        if seq < src.next {
            // Skipped past by the hold-back: show it now, marked late.
            src.shown_any = true;
            deliver(sh, now, id, &mut self.newest_shown, data, true);
            return true;
        }
        src.pending.insert(seq, data);
        self.advance(sh, now, src_id);
        true
    }

    /// `repairer` repaired packet `seq` of `src_id`, whether this node held it or not: this
    /// node's repair of it is suppressed, and requests for it are ignored for the hold-down
    /// (PROTOCOL.md 6.3, 6.4).
    pub(super) fn heard_repair(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        repairer: PeerId,
        src_id: PeerId,
        seq: u64,
    ) {
        self.touch(sh, now, repairer, None);
        sh.stats.repairs_heard += 1;
        if self.repairs.remove(&(src_id, seq)).is_some() {
            sh.stats.repairs_suppressed += 1;
        }
        let hold = now + self.dist(sh, repairer).mul_f64(sh.cfg.hold_down);
        self.hold_down.insert((src_id, seq), hold);
    }

    /// Whether a data packet of `src_id` would be held for the first time.
    pub(super) fn is_new(&self, src_id: PeerId, seq: u64) -> bool {
        seq != u64::MAX && self.sources.get(&src_id).is_none_or(|s| !s.has(seq))
    }

    /// Shows the source's pending packets that are next in order, and arms the hold-back
    /// when a missing one blocks the rest.
    pub(super) fn advance(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId) {
        let id = self.id();
        let src = self.sources.get_mut(&src_id).expect("present");
        let start = src.next;
        while let Some(data) = src.pending.remove(&src.next) {
            src.next += 1;
            src.shown_any = true;
            deliver(sh, now, id, &mut self.newest_shown, data, false);
        }
        if src.pending.is_empty() {
            src.hold = None;
        } else if src.hold.is_none() || src.next != start {
            let at = now + sh.cfg.hold_back;
            src.hold = Some(at);
            sh.timers.push(at, Timer::HoldBack(id, src_id));
        }
    }

    /// The hold-back expired: show what waits, leaving the gap to be filled late.
    pub fn on_hold_back(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId, at: Instant) {
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        if src.hold != Some(at) {
            return;
        }
        src.hold = None;
        if let Some((&first, _)) = src.pending.first_key_value() {
            src.next = first;
        }
        self.advance(sh, now, src_id);
    }

    /// Learns that `source` has sent up to `highest`: whatever is not held is missing.
    pub(super) fn learn(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId, highest: u64) {
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        let from = match src.top {
            Some(t) if highest <= t => return,
            Some(t) => t + 1,
            None => src.next,
        };
        src.top = Some(highest);
        if highest < from {
            return;
        }
        // A jump of more than max_gap is the source restarting with numbering it could not
        // continue (a crash that lost its lease): the numbers in between were never sent, so
        // nothing is asked for or waited on. Gaps already known before it are given up.
        if highest - from >= sh.cfg.max_gap {
            let floor = highest.saturating_add(1);
            let skipped = (highest - from).saturating_add(1);
            sh.stats.gaps_untracked = sh.stats.gaps_untracked.saturating_add(skipped);
            let id = self.lobby.id;
            let given_up = src.missing.range(..floor).count() as u64;
            src.missing = src.missing.split_off(&floor);
            self.missing_total -= given_up as usize;
            let waiting = src.pending.split_off(&floor);
            let early = std::mem::replace(&mut src.pending, waiting);
            src.next = floor;
            src.base = src.base.max(floor);
            src.first_heard = src.first_heard.max(floor);
            for (_, d) in early {
                deliver(sh, now, id, &mut self.newest_shown, d, false);
            }
            report_lost(sh, id, src_id, given_up, "source restarted");
        }
        let from = from.max(src.next);
        if from > highest {
            return;
        }
        let d = self.dist(sh, src_id);
        let delay = sh.uniform(sh.cfg.c1, sh.cfg.c1 + sh.cfg.c2, d);
        let deadline = now + delay;
        let id = self.lobby.id;
        let src = self.sources.get_mut(&src_id).expect("present");
        let range = from..highest.saturating_add(1);
        mark_missing(
            sh,
            now,
            &mut self.missing_total,
            (id, src_id),
            src,
            range,
            deadline,
        );
    }

    /// A session says `src_id` has sent up to `high`. Unbacked by data, a claim opens gaps
    /// only claim reach past the highest packet received from the source (or where this node
    /// started on it); the rest is opened as data arrives (PROTOCOL.md 6.2). So a forged claim
    /// costs little traffic and little work.
    pub(super) fn claim(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId, high: u64) {
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        src.claimed = src.claimed.max(high);
        let from = src
            .received_top
            .unwrap_or_else(|| src.first_heard.saturating_sub(1));
        self.learn(
            sh,
            now,
            src_id,
            high.min(from.saturating_add(sh.cfg.claim_reach)),
        );
    }

    /// The source's own session says it numbers its next packet `next`: nothing at or above
    /// it was sent, whatever others claimed. Those gaps are forgotten, not lost.
    pub(super) fn forget_above(&mut self, src_id: PeerId, next: u64) {
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        // A packet received proves every seq below it was sent: a session that is older than
        // it (delayed on the way) must not make those gaps vanish unasked.
        let next = src
            .received_top
            .map_or(next, |r| next.max(r.saturating_add(1)));
        src.claimed = src.claimed.min(next.saturating_sub(1));
        if src.top.is_none_or(|t| t < next) {
            return;
        }
        let gone = src.missing.split_off(&next);
        self.missing_total -= gone.len();
        let below = next.checked_sub(1);
        src.top = match (below, src.received_top) {
            (Some(b), Some(r)) => Some(b.max(r)),
            (b, r) => b.or(r),
        };
    }

    /// Lowers the source's base to `want_from`: packets between it and the old base become
    /// missing, and are shown late when they arrive.
    pub(super) fn backfill(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        src_id: PeerId,
        want_from: u64,
    ) {
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        // Never below what was given up in a jump ahead (learn), never more than the backlog.
        let upto = src.base.min(src.first_heard);
        if want_from >= upto {
            return;
        }
        let d = self
            .peers
            .get(&src_id)
            .and_then(|p| p.distance)
            .unwrap_or(sh.cfg.default_distance)
            .max(sh.cfg.timer_floor);
        // Backlog is not urgent, and the source's next session may show that some of it does
        // not exist: wait past its tail session before asking.
        let deadline =
            now + sh.cfg.tail_session_delay * 2 + sh.uniform(sh.cfg.c1, sh.cfg.c1 + sh.cfg.c2, d);
        let key = (self.lobby.id, src_id);
        mark_missing(
            sh,
            now,
            &mut self.missing_total,
            key,
            src,
            want_from..upto,
            deadline,
        );
        src.base = want_from;
        if !src.shown_any {
            // Nothing shown yet: the backlog can still come first, in order.
            src.next = want_from;
        }
    }

    /// The source no longer holds anything below `low`: stop asking for it. What was live
    /// traffic (at or after the first packet heard) is lost; older backlog simply is not there.
    pub(super) fn prune_below(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId, low: u64) {
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        if src.missing.first_key_value().is_none_or(|(&s, _)| s >= low) {
            return;
        }
        let keep = src.missing.split_off(&low);
        let below = std::mem::replace(&mut src.missing, keep);
        // Live traffic below `low` stays wanted: other members may still hold it, and are
        // asked for a limited number of rounds (6.2). Backlog below where this node started on
        // the source is no loss and is forgotten.
        let mut dropped = 0;
        for (seq, mut miss) in below {
            if seq >= src.first_heard {
                miss.orphan = true;
                src.missing.insert(seq, miss);
            } else {
                dropped += 1;
            }
        }
        self.missing_total -= dropped;
        src.base = src.base.max(low.min(src.next));
        if src.next < low && src.pending.first_key_value().is_none_or(|(&s, _)| s >= low) {
            src.next = low;
            src.base = low;
        }
        self.advance(sh, now, src_id);
    }

    /// Forgets an idle source of a peer that is gone, if the table is full. False if there is
    /// no room.
    pub(super) fn make_room_for_source(&mut self, sh: &mut Shared) -> bool {
        if self.sources.len() < sh.cfg.max_peers {
            return true;
        }
        let victim = self
            .sources
            .iter()
            .filter(|(id, s)| s.idle() && !self.peers.contains_key(id))
            .min_by_key(|(id, s)| (s.last_active, **id))
            .map(|(id, _)| *id);
        match victim {
            Some(v) => {
                self.sources.remove(&v);
                true
            }
            None => {
                sh.stats.peers_refused += 1;
                false
            }
        }
    }

    /// Whether a request timer entry is current; if so it is part of the batch now due.
    pub fn request_due(&self, src: PeerId, seq: u64, at: Instant) -> bool {
        self.sources
            .get(&src)
            .and_then(|s| s.missing.get(&seq))
            .is_some_and(|m| m.deadline == at)
    }

    /// Sends requests for `seqs` (ascending, all due) of `src_id` and re-arms their timers.
    pub fn send_requests(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId, seqs: &[u64]) {
        // A source on another segment may be known only from claims so far: it counts as
        // alive for as long as a member's packets were recently received or claimed.
        let alive = self.alive(sh, src_id, now)
            || self.sources.get(&src_id).is_some_and(|s| {
                now.saturating_duration_since(s.last_active) < sh.cfg.peer_timeout
            });
        // The source is asked to answer first only if it can hear the request.
        let hint_source = alive && self.in_reach(sh, src_id, now);
        let d = self.dist(sh, src_id);
        let id = self.lobby.id;
        let Some(mut src) = self.sources.get_mut(&src_id) else {
            return;
        };
        sh.stats.links_dropped += self.held_links.drop_stale(now, src_id, src.next);
        let mut hinted_seqs = Vec::new();
        let mut later = Vec::new();
        // The lowest round of the seqs asked for now (friends are asked differently by round).
        let mut round = u32::MAX;
        let mut given_up = 0;
        let u = sh.uniform(0.0, 1.0, Duration::from_secs(1)).as_secs_f64();
        for &seq in seqs {
            let Some(miss) = src.missing.get_mut(&seq) else {
                continue;
            };
            // A link that holds it waits for its anchor, whose repair will most likely vouch
            // for it: not asked for, a few times at most (PROTOCOL.md 4.13).
            if miss.waited < MAX_LINK_WAITS && self.held_links.covers(src_id, seq) {
                miss.waited += 1;
                rearm(&sh.cfg, miss, now, d, true, true, u);
                sh.timers
                    .push(miss.deadline, Timer::Request(id, src_id, seq));
                continue;
            }
            // While its source is alive it still holds what is missing (flow control), so
            // only a departed source's packets, and those it no longer holds, run out of
            // rounds; nothing waits forever.
            if !alive || miss.orphan {
                miss.rounds_gone += 1;
            }
            if miss.rounds_gone > sh.cfg.max_request_rounds
                || now.saturating_duration_since(miss.detected) >= sh.cfg.give_up_after
            {
                src.missing.remove(&seq);
                given_up += 1;
                continue;
            }
            round = round.min(miss.round);
            let hinted = miss.round < sh.cfg.hinted_rounds && hint_source && !miss.orphan;
            if hinted {
                hinted_seqs.push(seq);
            } else {
                later.push(seq);
            }
            miss.round += 1;
            rearm(&sh.cfg, miss, now, d, hinted, true, u);
            sh.timers
                .push(miss.deadline, Timer::Request(id, src_id, seq));
        }
        self.missing_total -= given_up as usize;
        report_lost(sh, id, src_id, given_up, "requests unanswered");
        for (seqs, hint) in [(hinted_seqs, Some(src_id)), (later, None)] {
            // No more per request than one request can draw (MAX_REPAIRS_PER_REQUEST), so that
            // a long gap is answered in one round by several requests.
            for chunk in seqs.chunks(MAX_REPAIRS_PER_REQUEST) {
                let packet = Packet {
                    lobby: id,
                    body: Body::Request(Request {
                        sender: sh.me,
                        source: src_id,
                        hint,
                        ranges: to_ranges(chunk),
                    }),
                };
                // The source's own packets pay for requests about it (PROTOCOL.md 6.3):
                // claims about a silent or invented source cannot start a storm. Each copy
                // pays: the group's, and a friend's that holds the seqs (7.8).
                let cost = packet.encoded_len() as u64;
                let top = chunk.last().copied().unwrap_or(0);
                let timeout = sh.cfg.peer_timeout;
                let friend = self.flood.repair_friend(src_id, top, round, now, timeout);
                let to_group = sh.multicast && src.credit >= cost;
                if to_group {
                    src.credit -= cost;
                }
                let to_friend = friend.filter(|_| src.credit >= cost);
                if let Some((addr, peer)) = to_friend {
                    src.credit -= cost;
                    let Body::Request(mut r) = packet.body.clone() else {
                        unreachable!("built as a request")
                    };
                    r.hint = Some(peer);
                    sh.send_to(Dest::Peer(addr), id, Body::Request(r));
                }
                if to_group {
                    sh.send(id, packet.body);
                } else if to_friend.is_none() {
                    // Re-armed as if sent: the backoff grows, so an unpaid claim costs little
                    // work too.
                    sh.stats.requests_deferred += 1;
                }
                src = self.sources.get_mut(&src_id).expect("present");
            }
        }
    }

    /// Credits a member's share of a datagram to its request credit, if it is a source
    /// (PROTOCOL.md 6.3).
    pub fn credit_source(&mut self, sh: &Shared, sender: PeerId, bytes: u64) {
        if let Some(src) = self.sources.get_mut(&sender) {
            src.credit = src
                .credit
                .saturating_add(bytes.saturating_mul(sh.cfg.credit_factor))
                .min(sh.cfg.request_credit_cap);
        }
    }
}

/// Request rounds a missing packet skips while a held link holds it (PROTOCOL.md 4.13).
const MAX_LINK_WAITS: u8 = 3;

/// Marks the packets `range` of a source missing, all with one request deadline, except those
/// held or already missing, within the lobby's bound on missing packets.
pub(super) fn mark_missing(
    sh: &mut Shared,
    now: Instant,
    missing_total: &mut usize,
    (lobby, src_id): (LobbyId, PeerId),
    src: &mut Source,
    range: std::ops::Range<u64>,
    deadline: Instant,
) {
    let end = range.end;
    for seq in range {
        if *missing_total >= MAX_MISSING {
            sh.stats.gaps_untracked = sh.stats.gaps_untracked.saturating_add(end - seq);
            break;
        }
        // Below the base only backfill asks, for packets not held by definition.
        if src.missing.contains_key(&seq) || (seq >= src.base && src.has(seq)) {
            continue;
        }
        src.missing.insert(
            seq,
            Miss {
                deadline,
                round: 0,
                backoff: 0,
                ignore_until: now,
                detected: now,
                rounds_gone: 0,
                orphan: false,
                waited: 0,
            },
        );
        *missing_total += 1;
        sh.stats.gaps_detected += 1;
        sh.timers.push(deadline, Timer::Request(lobby, src_id, seq));
    }
}

/// Re-arms a missing packet's request timer after a request for it was sent or heard: first
/// the time the answer takes to come back (request and repair each cross one distance, plus
/// the repair timer), then a randomised interval, doubled for each round and backoff. A
/// member that heard another's request draws from SRM's full [C1, C1+C2] window: the
/// members that share a loss must spread out so that one asks. A member retrying its own
/// request draws from [C1, C1+1]: it retries because the repair or its request was lost,
/// which few members share, so a narrow window costs little suppression and saves delay.
///
/// `u` in [0, 1) is drawn once per batch (a request sent or heard), so that the packets of one
/// gap keep one deadline per round and go on being asked for together, in ranges.
pub(super) fn rearm(
    cfg: &Config,
    miss: &mut Miss,
    now: Instant,
    d: Duration,
    hinted: bool,
    own: bool,
    u: f64,
) {
    let answer = if hinted {
        2.0 + cfg.d1_hinted + cfg.d2_hinted
    } else {
        2.0 + cfg.d1 + cfg.d2
    };
    let spread = if own { 1.0 } else { cfg.c2 };
    // Doubled per round, six times at most, and never past the longest retry interval: a
    // distance measured through full queues must not make a member wait many seconds
    // between requests once the queues are gone (PROTOCOL.md 6.3).
    let cap = cfg.max_retry.as_secs_f64() / (d.as_secs_f64() * (cfg.c1 + spread)).max(1e-9);
    let exp = f64::from(1u32 << (miss.round + miss.backoff).saturating_sub(1).min(6))
        .min(cap)
        .max(1.0);
    let wait = d.mul_f64(answer + (cfg.c1 + spread * u) * exp);
    miss.deadline = now + wait;
    miss.ignore_until = now + wait / 2;
}

/// Passes a packet to reassembly and shows the message it completes.
pub(super) fn deliver(
    sh: &mut Shared,
    now: Instant,
    lobby: LobbyId,
    newest_shown: &mut u64,
    data: Data,
    late: bool,
) {
    let piece = crate::proto::fragment::piece_size(sh.outbox.seals(lobby));
    let done = match sh.reassembly.insert(now, lobby, data, late, piece) {
        Ok(Some(done)) => done,
        Ok(None) => return,
        Err(Refused::Inconsistent) => {
            sh.stats.bad_fragments += 1;
            return;
        }
    };
    let d = done.data;
    let age_limit = (sh.cfg.dedup_window + sh.cfg.clock_skew).as_millis() as u64;
    let wall = sh.wall_ms(now);
    if wall.saturating_sub(d.sent_at) > age_limit {
        sh.stats.too_old += 1;
        return;
    }
    // A far-future time would stay in the dedup window forever and mark every later message
    // late (PROTOCOL.md 6.6).
    if d.sent_at.saturating_sub(wall) > sh.cfg.future_limit.as_millis() as u64 {
        sh.stats.too_new += 1;
        return;
    }
    if !sh.dedup.insert(now, d.msg_id) {
        sh.stats.duplicate_messages += 1;
        return;
    }
    let late_ms = sh.cfg.late_after.as_millis() as u64;
    let late = done.late || d.sent_at.saturating_add(late_ms) < *newest_shown;
    *newest_shown = (*newest_shown).max(d.sent_at);
    sh.stats.delivered += 1;
    sh.stats.late += u64::from(late);
    sh.emit(Event::Message(Message {
        lobby,
        source: d.source,
        seq: d.seq,
        msg_id: d.msg_id,
        sent_at: d.sent_at,
        nick: d.nick,
        text: String::from_utf8_lossy(&d.body).into_owned(),
        late,
    }));
}

/// Ascending sequence numbers as inclusive ranges.
pub(super) fn to_ranges(seqs: &[u64]) -> Vec<SeqRange> {
    let mut out: Vec<SeqRange> = Vec::new();
    for &s in seqs {
        match out.last_mut() {
            Some(r) if r.1.checked_add(1) == Some(s) => r.1 = s,
            _ => out.push(SeqRange(s, s)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_runs() {
        assert_eq!(
            to_ranges(&[1, 2, 3, 5, 7, 8]),
            vec![SeqRange(1, 3), SeqRange(5, 5), SeqRange(7, 8)]
        );
        assert!(to_ranges(&[]).is_empty());
    }

    /// The timer of a packet asked for `round` times, at distance `d`, with the random draw
    /// at its top (`u` just below 1): how long until the next request.
    fn retry_after(d: Duration, round: u32, own: bool) -> Duration {
        let cfg = Config::default();
        let now = Instant::now();
        let mut miss = Miss {
            deadline: now,
            round,
            backoff: 0,
            ignore_until: now,
            detected: now,
            rounds_gone: 0,
            orphan: false,
            waited: 0,
        };
        rearm(&cfg, &mut miss, now, d, false, own, 0.999_999);
        miss.deadline - now
    }

    #[test]
    fn retries_double_six_times_but_never_past_the_longest_retry() {
        let cfg = Config::default();
        let answer = 2.0 + cfg.d1 + cfg.d2;
        // On a quiet LAN the interval doubles six times, as SRM's does.
        let d = Duration::from_millis(1);
        let top = |exp: f64| d.mul_f64(answer + (cfg.c1 + cfg.c2) * exp);
        assert!(retry_after(d, 1, false) <= top(1.0));
        assert!(retry_after(d, 7, false) > top(32.0));
        assert_eq!(retry_after(d, 7, false), retry_after(d, 20, false));
        // A distance measured through full queues: the random part stops at a second.
        let d = Duration::from_millis(50);
        let longest = d.mul_f64(answer) + cfg.max_retry;
        for round in 1..20 {
            for own in [false, true] {
                let wait = retry_after(d, round, own);
                assert!(wait <= longest, "round {round}: {wait:?}");
            }
        }
        assert!(retry_after(d, 20, true) > longest / 2, "still backed off");
    }
}

/// Where a packet first held goes besides this node (PROTOCOL.md 7.4).
#[derive(Debug, Default)]
pub(super) struct ForwardPlan {
    /// Onto the group: it came by unicast and this node is the active bridge.
    pub(super) to_group: bool,
    /// By unicast to these friends.
    pub(super) friends: Vec<std::net::SocketAddr>,
}

impl ForwardPlan {
    pub(super) fn is_empty(&self) -> bool {
        !self.to_group && self.friends.is_empty()
    }
}

impl LobbyState {
    /// Where a packet that came `via` goes, if this node holds it for the first time.
    pub(super) fn forward_plan(&self, sh: &Shared, now: Instant, via: Via) -> ForwardPlan {
        let timeout = sh.cfg.peer_timeout;
        if !self.flood.has_participants(now, timeout) {
            return ForwardPlan::default();
        }
        let interval = self.session_base(sh);
        let to_group = matches!(via, Via::Friend(_))
            && sh.multicast
            && self.flood.active_bridge(sh.me, now, interval, timeout);
        let on_segment = match via {
            Via::Group => true,
            Via::Own => sh.multicast,
            Via::Friend(_) => to_group,
        };
        // A standby bridge leaves what is on its segment to the active one (7.5).
        if on_segment && sh.multicast && self.flood.standby(sh.me, now, interval, timeout) {
            return ForwardPlan::default();
        }
        ForwardPlan {
            to_group,
            friends: self.flood.targets(via, on_segment, now, timeout),
        }
    }

    /// A lazy friend was grafted: tell it at once, with a session that no longer asks it to
    /// be lazy.
    pub(crate) fn grafted(&mut self, sh: &mut Shared, now: Instant, addr: std::net::SocketAddr) {
        sh.stats.grafts += 1;
        self.send_session_to(sh, now, addr);
    }

    /// The bridge's role changed the link to the friend at `addr` (grafted or pruned): tell
    /// it at once.
    pub(crate) fn link_changed(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        addr: std::net::SocketAddr,
    ) {
        if self.flood.pulls_only(addr) {
            sh.stats.prunes += 1;
        } else {
            sh.stats.grafts += 1;
        }
        self.send_session_to(sh, now, addr);
    }

    /// Sends this node's own new data packet to the friends `plan` names (in its own bundles,
    /// signed per datagram).
    pub(super) fn forward_own(&mut self, sh: &mut Shared, plan: ForwardPlan, data: &Data) {
        let id = self.id();
        if !plan.is_empty() {
            let now = sh.now;
            self.arm_tail(sh, now);
        }
        for addr in plan.friends {
            sh.stats.forwarded += 1;
            sh.send_to(Dest::Peer(addr), id, Body::Data(data.clone()));
        }
    }

    /// Passes on another writer's bundle that brought something new where `plan` says, whole
    /// and as its writer signed it (PROTOCOL.md 7.4). Forwarded data (`data`) is followed by
    /// tail sessions: the members it reached hear none of its source's.
    pub(super) fn pass_on(
        &mut self,
        sh: &mut Shared,
        plan: ForwardPlan,
        bundle: &Bundle,
        data: bool,
    ) {
        if plan.is_empty() {
            return;
        }
        debug_assert!(
            bundle.repairer.is_none(),
            "passed on as written, not as a repair"
        );
        if data {
            let now = sh.now;
            self.arm_tail(sh, now);
        }
        if plan.to_group && sh.multicast {
            sh.send_bundle(Dest::Lobby(self.id()), bundle);
        }
        for addr in plan.friends {
            if data {
                sh.stats.forwarded += 1;
            }
            sh.send_bundle(Dest::Peer(addr), bundle);
        }
    }
}
