//! The repair store: recent data packets of a lobby, kept to answer requests.

use std::collections::{HashMap, VecDeque};

use super::hash::SeededState;
use super::ids::PeerId;
use super::wire::Data;

/// Recent packets by (source, seq), oldest dropped first beyond a count and a byte bound.
#[derive(Debug)]
pub struct Store {
    max_packets: usize,
    max_bytes: usize,
    packets: HashMap<(PeerId, u64), Data, SeededState>,
    order: VecDeque<(PeerId, u64)>,
    bytes: usize,
}

impl Store {
    /// An empty store with the given bounds.
    pub fn new(max_packets: usize, max_bytes: usize, hasher: SeededState) -> Self {
        Store {
            max_packets: max_packets.max(1),
            max_bytes,
            packets: HashMap::with_hasher(hasher),
            order: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Keeps `data` (a copy of a packet already in it is ignored). Returns what was evicted
    /// to make room, oldest first, so the caller can track what it can still repair.
    pub fn insert(&mut self, data: Data, mut evicted: impl FnMut(PeerId, u64)) {
        let key = (data.source, data.seq);
        if self.packets.contains_key(&key) {
            return;
        }
        self.bytes += data.body.len();
        self.packets.insert(key, data);
        self.order.push_back(key);
        while self.order.len() > self.max_packets || self.bytes > self.max_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(d) = self.packets.remove(&old) {
                self.bytes -= d.body.len();
                evicted(old.0, old.1);
            }
        }
    }

    /// The packet `seq` of `source`, if still held.
    pub fn get(&self, source: PeerId, seq: u64) -> Option<&Data> {
        self.packets.get(&(source, seq))
    }

    /// True if packet `seq` of `source` is held.
    pub fn contains(&self, source: PeerId, seq: u64) -> bool {
        self.packets.contains_key(&(source, seq))
    }

    /// Number of packets held.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proto::ids::MsgId;

    /// A one-fragment packet of source 1 with `len` body bytes, for the stores' tests.
    pub(crate) fn d(seq: u64, len: usize) -> Data {
        Data {
            source: PeerId(1),
            seq,
            msg_id: MsgId(seq),
            sent_at: 0,
            nick: String::new(),
            frag_index: 0,
            frag_count: 1,
            body: vec![0; len],
        }
    }

    #[test]
    fn evicts_oldest_beyond_bounds() {
        let mut s = Store::new(3, 100, SeededState::new(0, 0));
        let mut gone = Vec::new();
        for i in 0..5 {
            s.insert(d(i, 10), |_, q| gone.push(q));
        }
        assert_eq!(gone, vec![0, 1]);
        s.insert(d(9, 95), |_, q| gone.push(q));
        assert_eq!(gone, vec![0, 1, 2, 3, 4], "evicted until the bytes fit");
        assert_eq!(s.len(), 1);
        assert!(s.contains(PeerId(1), 9));
    }
}
