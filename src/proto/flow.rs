//! Flow control of this node's own stream in one lobby (PROTOCOL.md 6.9): what each member
//! reported it holds contiguously, which members are live, and so how far this node may run
//! ahead. There is no membership protocol: a member counts while its reports show progress.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::hash::SeededState;
use super::ids::PeerId;

/// One member's last report on this node's stream.
#[derive(Clone, Copy, Debug)]
struct Ack {
    /// The lowest own sequence number it still lacks.
    next: u64,
    /// When its report last showed progress (advanced, or had everything sent).
    progress_at: Instant,
}

/// The sender's side of flow control for one lobby.
#[derive(Debug)]
pub(crate) struct Flow {
    acks: HashMap<PeerId, Ack, SeededState>,
    max_members: usize,
    /// Until the flow timeout after joining, silence does not mean this node is alone: members
    /// may not have heard of it yet, so the window is anchored at the lowest packet held.
    joined_at: Instant,
    /// A send was refused: tell the application when the window opens.
    pub blocked: bool,
    /// When a re-check of a blocked window is due (a member times out).
    pub check_at: Option<Instant>,
}

impl Flow {
    /// No reports yet; at most `max_members` are tracked.
    pub fn new(now: Instant, max_members: usize, hasher: SeededState) -> Self {
        Flow {
            acks: HashMap::with_hasher(hasher),
            max_members,
            joined_at: now,
            blocked: false,
            check_at: None,
        }
    }

    /// `peer` reports that it lacks nothing of this node's stream below `next`; `sent_next` is
    /// the number this node uses next (a report beyond it is clamped: nothing there exists).
    pub fn on_report(&mut self, now: Instant, peer: PeerId, next: u64, sent_next: u64) {
        let next = next.min(sent_next);
        if let Some(a) = self.acks.get_mut(&peer) {
            if next > a.next || next == sent_next {
                a.progress_at = now;
            }
            a.next = next;
        } else if self.acks.len() < self.max_members {
            self.acks.insert(
                peer,
                Ack {
                    next,
                    progress_at: now,
                },
            );
        }
    }

    /// The window's trailing edge: the lowest packet a live member lacks, but never below the
    /// lowest one still held (waiting cannot help a member that lacks what is gone). With no
    /// live member: the lowest packet held during the flow timeout after joining (members
    /// that have not reported yet may lack anything), then `sent_next` (alone).
    pub fn floor(&self, now: Instant, timeout: Duration, own_low: u64, sent_next: u64) -> u64 {
        let alone = if now < self.joined_at + timeout {
            own_low
        } else {
            sent_next
        };
        self.live(now, timeout)
            .map(|a| a.next.max(own_low))
            .min()
            .unwrap_or(alone)
            .min(sent_next)
    }

    /// When the earliest live member that holds the window back (lacks something below
    /// `sent_next`) stops counting, if it makes no progress before then.
    pub fn next_expiry(&self, now: Instant, timeout: Duration, sent_next: u64) -> Option<Instant> {
        let grace = Some(self.joined_at + timeout).filter(|&t| t > now);
        self.live(now, timeout)
            .filter(|a| a.next < sent_next)
            .map(|a| a.progress_at + timeout)
            .chain(grace)
            .min()
    }

    fn live(&self, now: Instant, timeout: Duration) -> impl Iterator<Item = &Ack> {
        self.acks
            .values()
            .filter(move |a| now.saturating_duration_since(a.progress_at) < timeout)
    }

    /// Forgets members that have not progressed for `forget_after`.
    pub fn expire(&mut self, now: Instant, forget_after: Duration) {
        self.acks
            .retain(|_, a| now.saturating_duration_since(a.progress_at) < forget_after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(3);

    #[test]
    fn the_slowest_live_member_sets_the_floor_until_it_times_out() {
        let start = Instant::now();
        let mut f = Flow::new(start, 8, SeededState::new(1, 2));
        assert_eq!(
            f.floor(start, T, 7, 100),
            7,
            "members may not have heard of us yet"
        );
        assert_eq!(f.next_expiry(start, T, 100), Some(start + T));
        let t0 = start + T;
        assert_eq!(f.floor(t0, T, 7, 100), 100, "nobody to wait for");
        f.on_report(t0, PeerId(1), 40, 100);
        f.on_report(t0, PeerId(2), 90, 100);
        assert_eq!(f.floor(t0, T, 0, 100), 40);
        assert_eq!(
            f.floor(t0, T, 50, 100),
            50,
            "what is gone is not waited for"
        );
        assert_eq!(f.next_expiry(t0, T, 100), Some(t0 + T));
        // Member 2 keeps progressing; member 1 is stuck at 40 and stops counting.
        let t1 = t0 + Duration::from_secs(2);
        f.on_report(t1, PeerId(1), 40, 100);
        f.on_report(t1, PeerId(2), 95, 100);
        let t2 = t0 + T;
        assert_eq!(f.floor(t2, T, 0, 100), 95);
        // It comes back with progress and counts again.
        f.on_report(t2, PeerId(1), 41, 100);
        assert_eq!(f.floor(t2, T, 0, 100), 41);
    }

    #[test]
    fn a_caught_up_member_stays_live_and_reports_beyond_the_end_are_clamped() {
        let t0 = Instant::now();
        let mut f = Flow::new(t0, 8, SeededState::new(1, 2));
        f.on_report(t0, PeerId(1), 1_000_000, 10);
        let t1 = t0 + Duration::from_secs(10);
        f.on_report(t1, PeerId(1), 10, 10);
        assert_eq!(f.floor(t1, T, 0, 20), 10);
        assert_eq!(f.next_expiry(t1, T, 20), Some(t1 + T));
        f.expire(t1 + T * 10, T * 5);
        assert_eq!(f.floor(t1 + T * 10, T, 0, 20), 20);
    }
}
