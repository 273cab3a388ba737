//! The repair store: others' recent data bundles in a lobby, whole and as their writers signed
//! them, kept to answer requests (PROTOCOL.md 4.12).

use std::collections::{HashMap, VecDeque};

use super::hash::SeededState;
use super::ids::PeerId;
use super::wire::{BUNDLE_OVERHEAD, Bundle};

/// A stored bundle and the seqs it is the repair of.
#[derive(Debug)]
struct Stored {
    bundle: Bundle,
    seqs: Vec<u64>,
}

/// Recent bundles, found by the (source, seq) of the data inside, oldest dropped first beyond
/// a count of packets and a bound in bytes.
#[derive(Debug)]
pub struct Store {
    max_packets: usize,
    max_bytes: usize,
    /// The bundle (by its serial number) holding each packet.
    index: HashMap<(PeerId, u64), u64, SeededState>,
    /// Bundles in arrival order; the first has serial `first`.
    bundles: VecDeque<Stored>,
    first: u64,
    bytes: usize,
}

/// A stored bundle holding a packet asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// The bundle's serial number in the store: equal for the packets of one bundle.
    pub serial: u64,
    /// Its share of the bundle's bytes: what repairing it costs.
    pub cost: u64,
}

impl Store {
    /// An empty store with the given bounds.
    pub fn new(max_packets: usize, max_bytes: usize, hasher: SeededState) -> Self {
        Store {
            max_packets: max_packets.max(1),
            max_bytes,
            index: HashMap::with_hasher(hasher),
            bundles: VecDeque::new(),
            first: 0,
            bytes: 0,
        }
    }

    /// Keeps `bundle` (without its repairer) as the repair of the packets `seqs` of its
    /// source; packets already held in another bundle stay with that one. Returns the packets
    /// whose bundles were evicted to make room, so the caller can track what it can still
    /// repair.
    pub fn insert(
        &mut self,
        mut bundle: Bundle,
        seqs: &[u64],
        mut evicted: impl FnMut(PeerId, u64),
    ) {
        let source = bundle.source;
        let seqs: Vec<u64> = seqs
            .iter()
            .copied()
            .filter(|&s| !self.index.contains_key(&(source, s)))
            .collect();
        if seqs.is_empty() {
            return;
        }
        bundle.repairer = None;
        let serial = self.first + self.bundles.len() as u64;
        for &s in &seqs {
            self.index.insert((source, s), serial);
        }
        self.bytes += bundle.packets.len();
        self.bundles.push_back(Stored { bundle, seqs });
        while self.index.len() > self.max_packets || self.bytes > self.max_bytes {
            let Some(old) = self.bundles.pop_front() else {
                break;
            };
            self.first += 1;
            self.bytes -= old.bundle.packets.len();
            for s in old.seqs {
                self.index.remove(&(old.bundle.source, s));
                evicted(old.bundle.source, s);
            }
        }
    }

    /// The bundle holding packet `seq` of `source`, if still held.
    pub fn find(&self, source: PeerId, seq: u64) -> Option<Held> {
        let serial = *self.index.get(&(source, seq))?;
        let s = self.stored(serial)?;
        let bytes = (s.bundle.packets.len() + BUNDLE_OVERHEAD) as u64;
        Some(Held {
            serial,
            cost: bytes.div_ceil(s.seqs.len() as u64),
        })
    }

    fn stored(&self, serial: u64) -> Option<&Stored> {
        self.bundles
            .get(usize::try_from(serial.checked_sub(self.first)?).ok()?)
    }

    /// The bundle of a serial number [`Store::find`] gave, and the seqs it repairs.
    pub fn bundle(&self, serial: u64) -> Option<(&Bundle, &[u64])> {
        self.stored(serial).map(|s| (&s.bundle, s.seqs.as_slice()))
    }

    /// True if packet `seq` of `source` is held.
    pub fn contains(&self, source: PeerId, seq: u64) -> bool {
        self.index.contains_key(&(source, seq))
    }

    /// Number of packets held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ids::LobbyId;

    /// A bundle of source 1 with `len` bytes of packets (never opened here).
    fn b(len: usize) -> Bundle {
        Bundle {
            lobby: LobbyId(1),
            source: PeerId(1),
            auth: crate::proto::wire::Auth::Linked,
            packets: vec![0; len],
            repairer: Some(PeerId(2)),
        }
    }

    #[test]
    fn evicts_oldest_bundles_beyond_bounds() {
        let mut s = Store::new(5, 100, SeededState::new(0, 0));
        let mut gone = Vec::new();
        s.insert(b(10), &[0, 1], |_, q| gone.push(q));
        s.insert(b(10), &[2, 3], |_, q| gone.push(q));
        s.insert(b(10), &[4, 5], |_, q| gone.push(q));
        assert_eq!(gone, vec![0, 1], "a whole bundle goes");
        let h = s.find(PeerId(1), 5).unwrap();
        assert_eq!(h, s.find(PeerId(1), 4).unwrap(), "one bundle for both");
        assert_eq!(h.cost, (10 + BUNDLE_OVERHEAD as u64).div_ceil(2));
        let (bundle, seqs) = s.bundle(h.serial).unwrap();
        assert_eq!(seqs, [4, 5]);
        assert_eq!(bundle.repairer, None, "kept as its writer signed it");
        s.insert(b(95), &[9], |_, q| gone.push(q));
        assert_eq!(gone, vec![0, 1, 2, 3, 4, 5], "evicted until the bytes fit");
        assert_eq!(s.len(), 1);
        assert!(s.contains(PeerId(1), 9));
        assert!(s.find(PeerId(1), 4).is_none());
    }

    #[test]
    fn a_packet_already_held_stays_with_its_first_bundle() {
        let mut s = Store::new(10, 1000, SeededState::new(0, 0));
        s.insert(b(10), &[0, 1], |_, _| {});
        let first = s.find(PeerId(1), 1).unwrap().serial;
        s.insert(b(10), &[1, 2], |_, _| {});
        assert_eq!(s.find(PeerId(1), 1).unwrap().serial, first);
        assert_ne!(s.find(PeerId(1), 2).unwrap().serial, first);
        s.insert(b(10), &[2], |_, _| {});
        assert_eq!(s.len(), 3, "a bundle of nothing new is not kept");
    }
}
