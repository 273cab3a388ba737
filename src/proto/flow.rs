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
    /// When it last reported at all.
    heard_at: Instant,
}

/// The sender's side of flow control for one lobby.
#[derive(Debug)]
pub(crate) struct Flow {
    acks: HashMap<PeerId, Ack, SeededState>,
    max_members: usize,
    /// A member not heard this long stops counting (dead, gone).
    silent: Duration,
    /// A member heard but without progress this long stops counting (stuck).
    stuck: Duration,
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
    pub fn new(
        now: Instant,
        max_members: usize,
        (silent, stuck): (Duration, Duration),
        hasher: SeededState,
    ) -> Self {
        Flow {
            acks: HashMap::with_hasher(hasher),
            max_members,
            silent,
            stuck,
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
            a.heard_at = now;
        } else if self.acks.len() < self.max_members {
            self.acks.insert(
                peer,
                Ack {
                    next,
                    progress_at: now,
                    heard_at: now,
                },
            );
        }
    }

    /// The window's trailing edge: the lowest packet a live member lacks, but never below the
    /// lowest one still held (waiting cannot help a member that lacks what is gone). With no
    /// live member: the lowest packet held during the flow timeout after joining (members
    /// that have not reported yet may lack anything), then `sent_next` (alone).
    pub fn floor(&self, now: Instant, own_low: u64, sent_next: u64) -> u64 {
        let alone = if now < self.joined_at + self.silent {
            own_low
        } else {
            sent_next
        };
        self.live(now)
            .map(|a| a.next.max(own_low))
            .min()
            .unwrap_or(alone)
            .min(sent_next)
    }

    /// When the earliest live member that holds the window back (lacks something below
    /// `sent_next`) stops counting, if it is not heard, or makes no progress, before then.
    pub fn next_expiry(&self, now: Instant, sent_next: u64) -> Option<Instant> {
        let grace = Some(self.joined_at + self.silent).filter(|&t| t > now);
        self.live(now)
            .filter(|a| a.next < sent_next)
            .map(|a| (a.heard_at + self.silent).min(a.progress_at + self.stuck))
            .chain(grace)
            .min()
    }

    fn live(&self, now: Instant) -> impl Iterator<Item = &Ack> {
        self.acks.values().filter(move |a| {
            now.saturating_duration_since(a.heard_at) < self.silent
                && now.saturating_duration_since(a.progress_at) < self.stuck
        })
    }

    /// Sets how long a member may go unheard before it stops counting.
    pub fn set_silent(&mut self, silent: Duration) {
        self.silent = silent;
    }

    /// Forgets members not heard for `forget_after`.
    pub fn expire(&mut self, now: Instant, forget_after: Duration) {
        self.acks
            .retain(|_, a| now.saturating_duration_since(a.heard_at) < forget_after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(3);
    const STUCK: Duration = Duration::from_secs(10);

    fn flow(now: Instant) -> Flow {
        Flow::new(now, 8, (T, STUCK), SeededState::new(1, 2))
    }

    #[test]
    fn the_slowest_live_member_sets_the_floor_until_it_is_silent() {
        let start = Instant::now();
        let mut f = flow(start);
        assert_eq!(
            f.floor(start, 7, 100),
            7,
            "members may not have heard of us yet"
        );
        assert_eq!(f.next_expiry(start, 100), Some(start + T));
        let t0 = start + T;
        assert_eq!(f.floor(t0, 7, 100), 100, "nobody to wait for");
        f.on_report(t0, PeerId(1), 40, 100);
        f.on_report(t0, PeerId(2), 90, 100);
        assert_eq!(f.floor(t0, 0, 100), 40);
        assert_eq!(f.floor(t0, 50, 100), 50, "what is gone is not waited for");
        assert_eq!(f.next_expiry(t0, 100), Some(t0 + T));
        // Member 1 goes silent (killed); member 2 keeps reporting.
        let t1 = t0 + Duration::from_secs(2);
        f.on_report(t1, PeerId(2), 95, 100);
        let t2 = t0 + T;
        assert_eq!(f.floor(t2, 0, 100), 95);
        // It comes back and counts again.
        f.on_report(t2, PeerId(1), 41, 100);
        assert_eq!(f.floor(t2, 0, 100), 41);
    }

    #[test]
    fn a_member_heard_but_stuck_counts_until_the_stuck_timeout() {
        let t0 = Instant::now() + T;
        let mut f = flow(t0 - T);
        f.on_report(t0, PeerId(1), 40, 100);
        // Heard every second, never progressing: it holds the window for STUCK.
        let mut t = t0;
        while t < t0 + STUCK - Duration::from_secs(1) {
            t += Duration::from_secs(1);
            f.on_report(t, PeerId(1), 40, 100);
            assert_eq!(f.floor(t, 0, 100), 40);
        }
        assert_eq!(f.next_expiry(t, 100), Some(t0 + STUCK));
        assert_eq!(
            f.floor(t0 + STUCK, 0, 100),
            100,
            "stuck members stop counting"
        );
    }

    #[test]
    fn a_caught_up_member_stays_live_and_reports_beyond_the_end_are_clamped() {
        let t0 = Instant::now();
        let mut f = flow(t0);
        f.on_report(t0, PeerId(1), 1_000_000, 10);
        let t1 = t0 + Duration::from_secs(10);
        f.on_report(t1, PeerId(1), 10, 10);
        assert_eq!(f.floor(t1, 0, 20), 10);
        assert_eq!(f.next_expiry(t1, 20), Some(t1 + T));
        f.expire(t1 + T * 10, T * 5);
        assert_eq!(f.floor(t1 + T * 10, 0, 20), 20);
    }
}
