//! What a node knows of one source in one lobby: which packets it has, which it misses, and
//! which wait for an earlier one before they are shown.

use std::collections::BTreeMap;
use std::time::Instant;

use super::wire::Data;

/// A missing packet being requested.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Miss {
    /// When its request timer fires.
    pub deadline: Instant,
    /// Requests sent for it so far.
    pub round: u32,
    /// Times its timer was backed off on hearing someone else's request.
    pub backoff: u32,
    /// Further requests heard before this do not back it off again (SRM: one backoff per
    /// round of requests).
    pub ignore_until: Instant,
    /// When the gap was found, for the recovery-delay measure and the give-up bound.
    pub detected: Instant,
    /// Rounds due while the source was gone (or no longer held it): these, not all rounds,
    /// are limited.
    pub rounds_gone: u32,
    /// Below the `sent.low` of the source's latest session: the source no longer holds it,
    /// but other members may, so it is asked of them for a limited number of rounds.
    pub orphan: bool,
    /// Request rounds skipped because a link that holds it waited for its anchor.
    pub waited: u8,
}

/// Receive state of one source.
#[derive(Debug)]
pub(crate) struct Source {
    /// Lowest sequence number not yet shown or skipped. Below it, a packet is new only if it is
    /// in `missing` (then it is shown late).
    pub next: u64,
    /// Highest sequence number known to exist.
    pub top: Option<u64>,
    /// Lowest sequence number this node wants from the source (backlog limit).
    pub base: u64,
    /// The sequence number at which this node first heard of the source: everything from it on
    /// is live traffic and wanted; before it, only the backlog.
    pub first_heard: u64,
    /// Packets received at or above `next` that wait for an earlier one.
    pub pending: BTreeMap<u64, Data>,
    /// Packets known to exist but not received.
    pub missing: BTreeMap<u64, Miss>,
    /// When the wait for the packet at `next` ends and later ones are shown anyway.
    pub hold: Option<Instant>,
    /// True once a packet of this source was shown: after that, backfilled packets are late.
    pub shown_any: bool,
    /// Last time anything of this source was received.
    pub last_active: Instant,
    /// Highest sequence number received in a data or repair packet: claims by others open
    /// gaps only a little past it.
    pub received_top: Option<u64>,
    /// Highest sequence number others claimed to have heard, not yet opened as gaps.
    pub claimed: u64,
    /// Bytes of requests for this source's packets that its own packets have paid for.
    pub credit: u64,
    /// The progress (`acked`) last reported for it.
    pub reported: Option<u64>,
    /// When that report was sent, and the highest seq known then.
    pub reported_at: Option<(Instant, u64)>,
}

impl Source {
    /// State for a source first heard of now, wanting packets from `base` on.
    pub fn new(base: u64, now: Instant) -> Self {
        Source {
            next: base,
            top: None,
            base,
            first_heard: base,
            pending: BTreeMap::new(),
            missing: BTreeMap::new(),
            hold: None,
            shown_any: false,
            last_active: now,
            received_top: None,
            claimed: 0,
            credit: 0,
            reported: None,
            reported_at: None,
        }
    }

    /// The lowest wanted packet not held: what flow control's reports say.
    pub fn acked(&self) -> u64 {
        self.missing
            .first_key_value()
            .map_or(self.next, |(&s, _)| s.min(self.next))
    }

    /// True if packet `seq` was received already (shown, skipped past, or pending).
    pub fn has(&self, seq: u64) -> bool {
        if self.missing.contains_key(&seq) {
            // Missing, even below the base (an orphan, which other members may hold).
            return false;
        }
        seq < self.next || self.pending.contains_key(&seq)
    }

    /// True when it holds nothing that needs attention, so it may be forgotten.
    pub fn idle(&self) -> bool {
        self.pending.is_empty() && self.missing.is_empty()
    }
}
