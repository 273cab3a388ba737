//! This node's own packets in one lobby, kept apart from others' so that the flow window can
//! rely on them: a packet a live member still lacks is never evicted by someone else's traffic.

use std::collections::VecDeque;

use super::wire::Data;

/// Own packets in ascending sequence order (gaps allowed: history of earlier runs), with the
/// running byte count that the window's byte bound needs.
#[derive(Debug)]
pub(crate) struct OwnStore {
    max_packets: usize,
    max_bytes: usize,
    /// Packets with the body bytes of every packet before them in the store.
    packets: VecDeque<(Data, u64)>,
    /// Body bytes of every packet ever pushed out of the front, plus those held: so
    /// `end - before` is the bytes held from a packet on.
    end: u64,
    held_bytes: usize,
}

impl OwnStore {
    /// An empty store holding at most `max_packets` packets and `max_bytes` of bodies.
    pub fn new(max_packets: usize, max_bytes: usize) -> Self {
        OwnStore {
            max_packets: max_packets.max(1),
            max_bytes,
            packets: VecDeque::new(),
            end: 0,
            held_bytes: 0,
        }
    }

    /// Keeps a packet, evicting the oldest beyond the bounds. A packet older than the newest
    /// held (restored from history out of order) is put in its place.
    pub fn insert(&mut self, data: Data) {
        let seq = data.seq;
        let len = data.body.len();
        let at = self.packets.partition_point(|(d, _)| d.seq < seq);
        if self.packets.get(at).is_some_and(|(d, _)| d.seq == seq) {
            return;
        }
        if at == self.packets.len() {
            self.packets.push_back((data, self.end));
        } else {
            // Rare (history read out of order): rebuild the running counts behind it.
            let before = self.packets[at].1;
            self.packets.insert(at, (data, before));
            for (_, b) in self.packets.iter_mut().skip(at + 1) {
                *b += len as u64;
            }
        }
        self.end += len as u64;
        self.held_bytes += len;
        while self.packets.len() > self.max_packets || self.held_bytes > self.max_bytes {
            let Some((d, _)) = self.packets.pop_front() else {
                break;
            };
            self.held_bytes -= d.body.len();
        }
    }

    /// The packet `seq`, if held.
    pub fn get(&self, seq: u64) -> Option<&Data> {
        let at = self.packets.partition_point(|(d, _)| d.seq < seq);
        self.packets
            .get(at)
            .filter(|(d, _)| d.seq == seq)
            .map(|(d, _)| d)
    }

    /// The lowest sequence number held, or `None` when empty.
    pub fn low(&self) -> Option<u64> {
        self.packets.front().map(|(d, _)| d.seq)
    }

    /// Body bytes held in packets numbered `from` or above.
    pub fn bytes_from(&self, from: u64) -> u64 {
        let at = self.packets.partition_point(|(d, _)| d.seq < from);
        match self.packets.get(at) {
            Some((_, before)) => self.end - before,
            None => 0,
        }
    }

    /// Packets held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.packets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ids::{MsgId, PeerId};

    /// A one-fragment packet of source 1 with `len` body bytes.
    fn d(seq: u64, len: usize) -> Data {
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
    fn bounds_evict_oldest_and_bytes_count_from_a_seq() {
        let mut s = OwnStore::new(3, 100);
        for i in 10..15 {
            s.insert(d(i, 10));
        }
        assert_eq!(s.low(), Some(12));
        assert_eq!(s.len(), 3);
        assert_eq!(s.bytes_from(13), 20);
        assert_eq!(s.bytes_from(0), 30);
        assert_eq!(s.bytes_from(99), 0);
        s.insert(d(20, 95));
        assert_eq!(s.low(), Some(20), "evicted until the bytes fit");
        assert!(s.get(20).is_some() && s.get(14).is_none());
    }

    #[test]
    fn out_of_order_inserts_keep_counts_right() {
        let mut s = OwnStore::new(10, 1000);
        s.insert(d(5, 10));
        s.insert(d(1, 3));
        s.insert(d(3, 7));
        s.insert(d(3, 7));
        assert_eq!(s.len(), 3);
        assert_eq!(s.low(), Some(1));
        assert_eq!(s.bytes_from(2), 17);
        assert_eq!(s.bytes_from(4), 10);
        assert_eq!(s.get(3).map(|p| p.body.len()), Some(7));
    }
}
