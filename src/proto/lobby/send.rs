//! Sending: this node's own messages, its own store, the flow window that holds them back,
//! and what history gives back after a restart.

use std::time::Instant;

use super::*;
use crate::proto::event::{Event, Message};
use crate::proto::flood::Via;
use crate::proto::fragment::{self};
use crate::proto::ids::{MsgId, PeerId};
use crate::proto::shared::Shared;
use crate::proto::source::Source;
use crate::proto::timers::Timer;
use crate::proto::wire::{Body, Data, MAX_MESSAGE, MAX_NICK, MAX_PIECE};

impl LobbyState {
    pub fn send_message(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        text: &str,
    ) -> Result<Message, SendError> {
        if text.is_empty() {
            return Err(SendError::Empty);
        }
        let piece = fragment::piece_size(self.private(sh));
        let max = MAX_MESSAGE / MAX_PIECE * piece;
        if text.len() > max {
            return Err(SendError::TooLong {
                len: text.len(),
                max,
            });
        }
        let count = fragment::piece_count(text.len(), piece) as u16;
        if self.next_seq.checked_add(u64::from(count) + 1).is_none() {
            return Err(SendError::SequenceExhausted);
        }
        if !self.window_has_room(sh, now, u64::from(count), text.len()) {
            sh.stats.window_full += 1;
            sh.pacer.note_window_full();
            self.flow.blocked = true;
            self.arm_flow_check(sh, now);
            return Err(SendError::WindowFull);
        }
        // Datagrams already wait for the pace: new messages wait too (at the input), rather
        // than pile up in the outbox.
        if sh.outbox.pending_bytes() > sh.cfg.pace_backlog {
            sh.stats.paced += 1;
            self.flow.blocked = true;
            return Err(SendError::WindowFull);
        }
        let msg_id = MsgId(rand::RngExt::random(&mut sh.rng));
        let sent_at = sh.wall_ms(now);
        let first = self.next_seq;
        for (i, piece) in fragment::split(text.as_bytes(), piece).enumerate() {
            let data = Data {
                source: sh.me,
                seq: self.next_seq,
                msg_id,
                sent_at,
                nick: sh.nick.clone(),
                frag_index: i as u16,
                frag_count: count,
                body: piece.to_vec(),
            };
            self.next_seq += 1;
            sh.send(self.id(), Body::Data(data.clone()));
            let plan = self.forward_plan(sh, now, Via::Own);
            self.forward_own(sh, plan, &data);
            self.own.insert(data);
        }
        sh.dedup.insert(now, msg_id);
        self.note_message(sh, now, msg_id, false);
        self.newest_shown = self.newest_shown.max(sent_at);
        self.arm_tail(sh, now);
        Ok(Message {
            lobby: self.id(),
            source: sh.me,
            seq: first,
            msg_id,
            sent_at,
            nick: sh.nick.clone(),
            text: text.to_owned(),
            late: false,
        })
    }

    /// Data left this node at `now`: tail sessions follow the burst (PROTOCOL.md 6.5), and
    /// after forwarded data too, since the members it reached hear none of its source's.
    pub(super) fn arm_tail(&mut self, sh: &mut Shared, now: Instant) {
        self.last_data_at = now;
        self.tails_sent = 0;
        if self.tail_at.is_none() {
            let at = now + sh.cfg.tail_session_delay;
            self.tail_at = Some(at);
            sh.timers.push(at, Timer::Tail(self.id()));
        }
    }

    /// What this node holds to repair packet `seq` of `src`: its own packet, or the stored
    /// bundle of another writer that holds it.
    pub(super) fn holding(&self, me: PeerId, src: PeerId, seq: u64) -> Option<Holding<'_>> {
        if src == me {
            self.own.get(seq).map(Holding::Own)
        } else {
            self.store.find(src, seq).map(Holding::Stored)
        }
    }

    /// The lowest own sequence number still held.
    pub(super) fn own_low(&self) -> u64 {
        self.own.low().unwrap_or(self.next_seq).min(self.next_seq)
    }

    /// Whether `packets` more packets with `bytes` of bodies fit in the flow window.
    pub(super) fn window_has_room(
        &self,
        sh: &Shared,
        now: Instant,
        packets: u64,
        bytes: usize,
    ) -> bool {
        let floor = self.flow.floor(now, self.own_low(), self.next_seq);
        let end = self.next_seq.saturating_add(packets);
        end <= floor.saturating_add(sh.cfg.flow_window)
            && self.own.bytes_from(floor).saturating_add(bytes as u64)
                <= sh.cfg.flow_window_bytes as u64
    }

    /// While the window is full, wakes up when the member holding it back would time out.
    pub(super) fn arm_flow_check(&mut self, sh: &mut Shared, now: Instant) {
        let at = self.flow.next_expiry(now, self.next_seq);
        if at.is_some() && at != self.flow.check_at {
            self.flow.check_at = at;
            if let Some(at) = at {
                sh.timers.push(at, Timer::Flow(self.id()));
            }
        }
    }

    /// Tells the application once a refused send can go: the window has room for a whole
    /// message of any size again, and the datagrams waiting for the pace are few.
    pub fn check_window(&mut self, sh: &mut Shared, now: Instant) {
        if !self.flow.blocked {
            return;
        }
        let room = u64::from(crate::proto::wire::MAX_FRAGMENTS).min(sh.cfg.flow_window);
        let bytes = MAX_MESSAGE.min(sh.cfg.flow_window_bytes);
        if sh.outbox.pending_bytes() > sh.cfg.pace_backlog / 2 {
            // The pace's deadline (Node::poll_timeout) brings the next check.
            return;
        }
        if self.window_has_room(sh, now, room, bytes) {
            self.flow.blocked = false;
            self.flow.check_at = None;
            sh.emit(Event::Writable { lobby: self.id() });
        } else {
            self.arm_flow_check(sh, now);
        }
    }

    pub fn on_flow_timer(&mut self, sh: &mut Shared, now: Instant, at: Instant) {
        if self.flow.check_at == Some(at) {
            self.flow.check_at = None;
            self.check_window(sh, now);
        }
    }

    /// Takes back a message from history: it is not asked for again, and an own one can be
    /// repaired again (in bundles signed anew; others' signatures are not kept, PROTOCOL.md
    /// 4.12).
    pub fn restore(&mut self, sh: &mut Shared, now: Instant, msg: &Message) {
        let piece = fragment::piece_size(self.private(sh));
        let count = fragment::piece_count(msg.text.len(), piece);
        if count > usize::from(crate::proto::wire::MAX_FRAGMENTS)
            || msg.seq.checked_add(count as u64 + 1).is_none()
        {
            return;
        }
        // Own packets are rebuilt from the text, cut as every sender cuts them (`piece`
        // bytes but the last, which reassembly enforces); the text is the body's exact bytes,
        // sent from valid UTF-8.
        let own = msg.source == sh.me;
        let nick = truncate_at_char(&msg.nick, MAX_NICK);
        for (i, piece) in fragment::split(msg.text.as_bytes(), piece).enumerate() {
            if !own {
                break;
            }
            let data = Data {
                source: msg.source,
                seq: msg.seq + i as u64,
                msg_id: msg.msg_id,
                sent_at: msg.sent_at,
                nick: nick.to_owned(),
                frag_index: i as u16,
                frag_count: count as u16,
                body: piece.to_vec(),
            };
            self.own.insert(data);
        }
        let end = msg.seq + count as u64;
        sh.dedup.insert(now, msg.msg_id);
        self.newest_shown = self.newest_shown.max(msg.sent_at);
        if msg.source == sh.me {
            self.next_seq = self.next_seq.max(end);
        } else {
            let src = self
                .sources
                .entry(msg.source)
                .or_insert_with(|| Source::new(end, now));
            if src.next < end && src.pending.is_empty() {
                let dropped = src.missing.range(..end).count();
                src.missing = src.missing.split_off(&end);
                self.missing_total -= dropped;
                src.next = end;
                src.base = src.base.max(end.saturating_sub(sh.cfg.backlog));
            }
            if src.top.is_none_or(|t| t < end - 1) {
                src.top = Some(end - 1);
            }
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(super) fn truncate_at_char(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks_are_cut_by_bytes_on_a_char_boundary() {
        assert_eq!(truncate_at_char("ada", 32), "ada");
        let long = "é".repeat(20); // 40 bytes
        let cut = truncate_at_char(&long, 32);
        assert_eq!(cut.len(), 32);
        assert_eq!(truncate_at_char("aé", 2), "a");
    }
}
