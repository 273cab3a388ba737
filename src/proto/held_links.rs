//! Links held for their anchor (PROTOCOL.md 4.13): a link whose hash no verified chain lists
//! yet waits, bounded in number and time, and its seqs are not asked for meanwhile, since the
//! anchor's repair will most likely vouch for it. Pure bookkeeping; the lobby decides.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::ids::PeerId;
use super::path::Path;
use super::wire::{Bundle, LinkHash};

/// A link waiting for its anchor, with how it came.
#[derive(Debug)]
pub(crate) struct HeldLink {
    pub hash: LinkHash,
    pub bundle: Bundle,
    pub path: Path,
    /// Its share of the datagram that brought it (for the credits of 6.3).
    pub share: u64,
    /// The lowest and highest seq of the data inside.
    pub seqs: (u64, u64),
    pub since: Instant,
}

/// The links of one lobby that wait for their anchor, oldest first.
#[derive(Debug)]
pub(crate) struct HeldLinks {
    links: VecDeque<HeldLink>,
    max: usize,
    wait: Duration,
}

impl HeldLinks {
    /// At most `max` links, each for at most `wait`.
    pub fn new((max, wait): (usize, Duration)) -> Self {
        HeldLinks {
            links: VecDeque::new(),
            max: max.max(1),
            wait,
        }
    }

    /// Holds a link, unless one with its hash waits already. Returns how many were dropped
    /// to make room (the oldest first).
    pub fn hold(&mut self, link: HeldLink) -> u64 {
        if self.links.iter().any(|l| l.hash == link.hash) {
            return 0;
        }
        let mut dropped = 0;
        while self.links.len() >= self.max {
            self.links.pop_front();
            dropped += 1;
        }
        self.links.push_back(link);
        dropped
    }

    /// Takes the links whose hashes a verified chain lists, in the chain's order.
    pub fn take(&mut self, chain: &[LinkHash]) -> Vec<HeldLink> {
        if self.links.is_empty() {
            return Vec::new();
        }
        chain
            .iter()
            .filter_map(|h| {
                let i = self.links.iter().position(|l| &l.hash == h)?;
                self.links.remove(i)
            })
            .collect()
    }

    /// Drops the links that waited too long, and those of `source` whose anchor came without
    /// vouching for them: every seq below theirs is held (`next`, the lowest seq of `source`
    /// not held, is at or past their lowest). Returns how many.
    pub fn drop_stale(&mut self, now: Instant, source: PeerId, next: u64) -> u64 {
        let before = self.links.len();
        let wait = self.wait;
        self.links.retain(|l| {
            now.saturating_duration_since(l.since) < wait
                && !(l.bundle.source == source && next >= l.seqs.0)
        });
        (before - self.links.len()) as u64
    }

    /// Drops the links that waited too long. Returns how many.
    pub fn expire(&mut self, now: Instant) -> u64 {
        let before = self.links.len();
        let wait = self.wait;
        self.links
            .retain(|l| now.saturating_duration_since(l.since) < wait);
        (before - self.links.len()) as u64
    }

    /// Whether a held link of `source` holds `seq`.
    pub fn covers(&self, source: PeerId, seq: u64) -> bool {
        self.links
            .iter()
            .any(|l| l.bundle.source == source && (l.seqs.0..=l.seqs.1).contains(&seq))
    }

    /// Links held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.links.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ids::LobbyId;
    use crate::proto::signing;

    fn held(n: u8, seqs: (u64, u64), since: Instant) -> HeldLink {
        HeldLink {
            hash: [n; 16],
            bundle: signing::link(LobbyId(1), PeerId(7), vec![n]),
            path: Path::Multicast("127.0.0.1:1".parse().unwrap()),
            share: 100,
            seqs,
            since,
        }
    }

    #[test]
    fn links_wait_bounded_and_leave_in_chain_order() {
        let t0 = Instant::now();
        let mut h = HeldLinks::new((3, Duration::from_secs(1)));
        for n in 1..=3 {
            assert_eq!(
                h.hold(held(n, (u64::from(n) * 10, u64::from(n) * 10 + 5), t0)),
                0
            );
        }
        assert_eq!(h.hold(held(3, (30, 35), t0)), 0, "one hash is held once");
        assert_eq!(h.hold(held(4, (40, 45), t0)), 1, "the oldest makes room");
        assert!(!h.covers(PeerId(7), 12));
        assert!(h.covers(PeerId(7), 33));
        assert!(!h.covers(PeerId(8), 33), "another source's seqs");
        let taken = h.take(&[[4; 16], [9; 16], [2; 16]]);
        let order: Vec<u8> = taken.iter().map(|l| l.hash[0]).collect();
        assert_eq!(order, [4, 2]);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn stale_links_go_by_age_or_when_everything_below_them_is_held() {
        let t0 = Instant::now();
        let mut h = HeldLinks::new((8, Duration::from_secs(1)));
        h.hold(held(1, (10, 15), t0));
        h.hold(held(2, (16, 20), t0 + Duration::from_millis(500)));
        assert_eq!(h.drop_stale(t0, PeerId(7), 9), 0, "seq 9 still missing");
        assert_eq!(h.drop_stale(t0, PeerId(7), 10), 1, "all below 10 held");
        assert_eq!(h.expire(t0 + Duration::from_millis(1499)), 0);
        assert_eq!(h.expire(t0 + Duration::from_millis(1500)), 1);
        assert_eq!(h.len(), 0);
    }
}
