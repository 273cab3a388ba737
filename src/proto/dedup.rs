//! The message-id cache: remembers ids for a time window, bounded in size.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::hash::SeededState;
use super::ids::MsgId;

/// Remembers message ids for `window`, at most `capacity` of them (oldest forgotten first).
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    capacity: usize,
    seen: HashSet<MsgId, SeededState>,
    /// Ids in arrival order with their arrival in whole seconds since `origin`: 16 bytes an
    /// entry instead of 24 with an `Instant`, at up to 2^18 entries.
    order: VecDeque<(u32, MsgId)>,
    origin: Option<Instant>,
}

impl Dedup {
    /// An empty cache; `hasher` keys the set so that peers cannot aim ids at one bucket.
    pub fn new(window: Duration, capacity: usize, hasher: SeededState) -> Self {
        Dedup {
            window,
            capacity: capacity.max(1),
            seen: HashSet::with_hasher(hasher),
            order: VecDeque::new(),
            origin: None,
        }
    }

    fn secs(&mut self, now: Instant) -> u32 {
        let origin = *self.origin.get_or_insert(now);
        u32::try_from(now.saturating_duration_since(origin).as_secs()).unwrap_or(u32::MAX)
    }

    /// Records `id`; true if it was not already remembered.
    pub fn insert(&mut self, now: Instant, id: MsgId) -> bool {
        self.expire(now);
        if !self.seen.insert(id) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some((_, old)) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        let at = self.secs(now);
        self.order.push_back((at, id));
        true
    }

    /// True if `id` is remembered.
    pub fn contains(&self, id: MsgId) -> bool {
        self.seen.contains(&id)
    }

    /// Forgets ids older than the window.
    pub fn expire(&mut self, now: Instant) {
        let now = self.secs(now);
        let window = self.window.as_secs();
        while let Some(&(at, id)) = self.order.front() {
            if u64::from(now.saturating_sub(at)) <= window {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&id);
        }
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_window_and_forgets_after() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(10), 100, SeededState::new(1, 2));
        assert!(d.insert(t0, MsgId(1)));
        assert!(!d.insert(t0 + Duration::from_secs(5), MsgId(1)));
        assert!(d.insert(t0 + Duration::from_secs(11), MsgId(1)));
    }

    #[test]
    fn capacity_bounds_the_cache() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(10), 3, SeededState::new(1, 2));
        for i in 0..10 {
            d.insert(t0, MsgId(i));
        }
        assert_eq!(d.len(), 3);
        assert!(d.contains(MsgId(9)) && !d.contains(MsgId(6)));
    }
}
