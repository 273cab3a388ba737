//! Splitting a message into fragments and reassembling them in any order, with bounds.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::hash::SeededState;
use super::ids::{LobbyId, MsgId, PeerId};
use super::private::PRIVATE_PIECE;
use super::wire::{Data, MAX_PIECE};

/// The largest fragment body of a lobby: [`MAX_PIECE`], or [`PRIVATE_PIECE`] in a private
/// one, whose envelope takes room (PROTOCOL.md 2.4).
pub fn piece_size(private: bool) -> usize {
    if private { PRIVATE_PIECE } else { MAX_PIECE }
}

/// The pieces a message body is sent in: full chunks of `piece` bytes and a shorter last one;
/// an empty body is one empty piece.
pub fn split(body: &[u8], piece: usize) -> impl Iterator<Item = &[u8]> {
    let empty = body.is_empty().then_some(&body[..0]);
    body.chunks(piece).chain(empty)
}

/// How many pieces [`split`] makes of a body of `len` bytes.
pub fn piece_count(len: usize, piece: usize) -> usize {
    len.div_ceil(piece).max(1)
}

/// Limits on what incomplete messages may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most messages in reassembly at once.
    pub slots: usize,
    /// Most bytes held by them.
    pub bytes: usize,
    /// Age at which an incomplete message is dropped.
    pub timeout: Duration,
}

/// A message whose fragments have all arrived.
#[derive(Debug)]
pub struct Assembled {
    /// The first fragment's header (its `body` is the whole message).
    pub data: Data,
    /// True if any fragment arrived late (out of its source's order).
    pub late: bool,
}

/// Why a fragment was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its count or size disagrees with fragments already held for the message.
    Inconsistent,
}

#[derive(Debug)]
struct Slot {
    first: Data,
    pieces: Vec<Vec<u8>>,
    have: u64,
    bytes: usize,
    started: Instant,
    late: bool,
}

/// Collects fragments per (source, message id) until complete.
#[derive(Debug)]
pub struct Reassembler {
    limits: Limits,
    slots: HashMap<(LobbyId, PeerId, MsgId), Slot, SeededState>,
    /// Arrival order of slots, for age expiry and eviction; may name slots already gone.
    order: VecDeque<(Instant, LobbyId, PeerId, MsgId)>,
    bytes: usize,
    /// Incomplete messages dropped for age or to make room, not yet taken by
    /// [`Reassembler::take_dropped`]: (lobby, source, fragments the message had).
    dropped: Vec<(LobbyId, PeerId, u16)>,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new(limits: Limits, hasher: SeededState) -> Self {
        Reassembler {
            limits,
            slots: HashMap::with_hasher(hasher),
            order: VecDeque::new(),
            bytes: 0,
            dropped: Vec::new(),
        }
    }

    /// Takes one fragment of a lobby whose pieces are `piece` bytes; returns the whole
    /// message when this completes it. Fragments of one-piece messages pass straight through.
    pub fn insert(
        &mut self,
        now: Instant,
        lobby: LobbyId,
        data: Data,
        late: bool,
        piece: usize,
    ) -> Result<Option<Assembled>, Refused> {
        if data.frag_count <= 1 {
            return Ok(Some(Assembled { data, late }));
        }
        let last = data.frag_index + 1 == data.frag_count;
        if (!last && data.body.len() != piece) || data.body.len() > piece {
            return Err(Refused::Inconsistent);
        }
        let key = (lobby, data.source, data.msg_id);
        if !self.slots.contains_key(&key) {
            self.make_room(now, data.body.len());
            self.order.push_back((now, key.0, key.1, key.2));
            self.slots.insert(
                key,
                Slot {
                    pieces: vec![Vec::new(); data.frag_count as usize],
                    first: Data {
                        body: Vec::new(),
                        ..data.clone()
                    },
                    have: 0,
                    bytes: 0,
                    started: now,
                    late: false,
                },
            );
        }
        let slot = self.slots.get_mut(&key).expect("inserted above");
        if slot.first.frag_count != data.frag_count {
            return Err(Refused::Inconsistent);
        }
        let bit = 1u64 << data.frag_index;
        if slot.have & bit != 0 {
            return Ok(None);
        }
        slot.have |= bit;
        slot.bytes += data.body.len();
        self.bytes += data.body.len();
        slot.late |= late;
        if data.frag_index == 0 {
            slot.first = Data {
                body: Vec::new(),
                ..data.clone()
            };
        }
        slot.pieces[data.frag_index as usize] = data.body;
        if slot.have.count_ones() < u32::from(slot.first.frag_count) {
            return Ok(None);
        }
        let slot = self.slots.remove(&key).expect("present");
        self.bytes -= slot.bytes;
        let mut first = slot.first;
        first.body = slot.pieces.concat();
        first.frag_index = 0;
        Ok(Some(Assembled {
            data: first,
            late: slot.late,
        }))
    }

    /// Drops incomplete messages older than the timeout.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, lobby, src, id)) = self.order.front() {
            if now.saturating_duration_since(at) < self.limits.timeout {
                break;
            }
            self.order.pop_front();
            self.drop_slot((lobby, src, id), at);
        }
    }

    /// The incomplete messages dropped since the last call: (lobby, source, fragments).
    pub fn take_dropped(&mut self) -> Vec<(LobbyId, PeerId, u16)> {
        std::mem::take(&mut self.dropped)
    }

    /// Number of incomplete messages held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing is being reassembled.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes held by incomplete messages.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn make_room(&mut self, now: Instant, incoming: usize) {
        self.expire(now);
        if self.order.len() > 2 * self.limits.slots.max(16) {
            // Completed messages leave their order entries behind; keep the deque bounded.
            let slots = &self.slots;
            self.order.retain(|(at, l, src, id)| {
                slots
                    .get(&(*l, *src, *id))
                    .is_some_and(|s| s.started == *at)
            });
        }
        while (self.slots.len() >= self.limits.slots || self.bytes + incoming > self.limits.bytes)
            && let Some((at, lobby, src, id)) = self.order.pop_front()
        {
            self.drop_slot((lobby, src, id), at);
        }
    }

    fn drop_slot(&mut self, key: (LobbyId, PeerId, MsgId), at: Instant) {
        // A slot is only dropped by the order entry made when it was created.
        if self.slots.get(&key).is_some_and(|s| s.started == at) {
            let slot = self.slots.remove(&key).expect("present");
            self.bytes -= slot.bytes;
            // Drained after every input, so this holds at most a few slots' worth.
            self.dropped.push((key.0, key.1, slot.first.frag_count));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            slots: 4,
            bytes: 1 << 20,
            timeout: Duration::from_secs(30),
        }
    }

    fn fragments(id: u64, body: &[u8]) -> Vec<Data> {
        let n = piece_count(body.len(), MAX_PIECE) as u16;
        split(body, MAX_PIECE)
            .enumerate()
            .map(|(i, p)| Data {
                source: PeerId(1),
                seq: 100 + i as u64,
                msg_id: MsgId(id),
                sent_at: 5,
                nick: "n".into(),
                frag_index: i as u16,
                frag_count: n,
                body: p.to_vec(),
            })
            .collect()
    }

    #[test]
    fn split_covers_the_body() {
        assert_eq!(split(b"", MAX_PIECE).count(), 1);
        assert_eq!(split(&[0; MAX_PIECE], MAX_PIECE).count(), 1);
        assert_eq!(split(&[0; MAX_PIECE + 1], MAX_PIECE).count(), 2);
        assert_eq!(piece_count(MAX_PIECE + 1, MAX_PIECE), 2);
        assert_eq!(piece_count(0, MAX_PIECE), 1);
    }

    #[test]
    fn reassembles_in_reverse_order() {
        let body: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut r = Reassembler::new(limits(), SeededState::new(0, 0));
        let t = Instant::now();
        let mut frags = fragments(7, &body);
        frags.reverse();
        let mut out = None;
        for f in frags {
            assert!(out.is_none());
            out = r.insert(t, LobbyId(1), f, false, MAX_PIECE).unwrap();
        }
        let a = out.unwrap();
        assert_eq!(a.data.body, body);
        assert_eq!(a.data.seq, 100);
        assert!(r.is_empty() && r.bytes() == 0);
    }

    #[test]
    fn slots_are_bounded_and_expire() {
        let mut r = Reassembler::new(limits(), SeededState::new(0, 0));
        let t = Instant::now();
        for id in 0..10 {
            let f = fragments(id, &[1; 2000]).remove(0);
            assert!(
                r.insert(t, LobbyId(1), f, false, MAX_PIECE)
                    .unwrap()
                    .is_none()
            );
        }
        assert_eq!(r.len(), 4);
        r.expire(t + Duration::from_secs(31));
        assert_eq!(r.len(), 0);
        assert_eq!(r.bytes(), 0);
        assert_eq!(r.take_dropped().len(), 10);
    }

    #[test]
    fn short_middle_piece_is_refused() {
        let mut r = Reassembler::new(limits(), SeededState::new(0, 0));
        let mut f = fragments(1, &[1; 3000]).remove(0);
        f.body.pop();
        assert_eq!(
            r.insert(Instant::now(), LobbyId(1), f, false, MAX_PIECE)
                .unwrap_err(),
            Refused::Inconsistent
        );
    }
}
