//! The core's timer queue: deadlines with lazy cancellation.
//!
//! Each entry names what it is for; the owner keeps the true deadline in its own state and
//! ignores an entry whose deadline no longer matches (it was moved or cancelled). That keeps
//! cancelling and re-arming O(1) at the cost of stale entries, which drain as time passes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::ids::{LobbyId, PeerId};

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Request timer of a missing packet.
    Request(LobbyId, PeerId, u64),
    /// Repair timer of a packet someone asked for.
    Repair(LobbyId, PeerId, u64),
    /// Next periodic session message of a lobby.
    Session(LobbyId),
    /// Session message after a burst of data ends.
    Tail(LobbyId),
    /// A source's hold-back on a missing packet expires.
    HoldBack(LobbyId, PeerId),
    /// A member reports its progress (a session) after receiving new data.
    Report(LobbyId),
    /// Re-check of a full flow window: a member that holds it back may time out.
    Flow(LobbyId),
    /// This node's next heartbeat in a lobby.
    Heartbeat(LobbyId),
    /// Expiry of peers, hold-downs, reassemblies.
    Housekeeping,
    /// Own direct messages due again, or to be given up (PROTOCOL.md 7.10).
    Direct,
    /// A lobby list due to the discovery group (PROTOCOL.md 7.12).
    Lists,
}

/// A min-heap of (deadline, timer).
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Timer)>>,
}

impl Timers {
    /// Schedules `timer` at `at`.
    pub fn push(&mut self, at: Instant, timer: Timer) {
        self.heap.push(Reverse((at, timer)));
    }

    /// The earliest deadline, stale or not.
    pub fn peek(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The earliest entry, stale or not.
    pub fn peek_entry(&self) -> Option<(Instant, Timer)> {
        self.heap.peek().map(|Reverse(e)| *e)
    }

    /// Removes and returns the earliest entry due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Timer)> {
        if self.peek()? <= now {
            self.heap.pop().map(|Reverse(e)| e)
        } else {
            None
        }
    }

    /// Removes the earliest entry (used to drop stale ones).
    pub fn pop(&mut self) -> Option<(Instant, Timer)> {
        self.heap.pop().map(|Reverse(e)| e)
    }

    /// Entries held, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
