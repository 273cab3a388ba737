//! The sender's pace (PROTOCOL.md 6.9): a token bucket over the bytes of every datagram the
//! node sends, whose rate follows the members by AIMD. Without it a node hands a whole flow
//! window to the network at once, which overflows a switch's or a receiver's queue, and the
//! repairs that follow overflow it again.

use std::time::{Duration, Instant};

/// How often the rate is adjusted: a few round trips on a LAN.
const EPOCH: Duration = Duration::from_millis(25);

/// Epochs between two cuts of the rate.
const BACKOFF_EPOCHS: u32 = 8;

/// Bytes that may leave back to back: 2 ms worth, at least four full datagrams.
fn burst(rate: f64) -> f64 {
    (rate * 0.002).max(4.0 * super::wire::MAX_DATAGRAM as f64)
}

/// Paces outgoing datagrams and adjusts its rate: a flow window that filled (members did not
/// keep up) cuts the rate by a fifth, at most once per [`BACKOFF_EPOCHS`] epochs so that one
/// slow repair does not cut it again and again; an epoch in which the pace held a datagram
/// back, with no window full, raises it by a sixteenth, or doubles it until the first cut
/// (slow start, as TCP's: the rate finds the network's in a few epochs).
#[derive(Debug)]
pub(crate) struct Pacer {
    /// Bytes per second.
    rate: f64,
    min: f64,
    max: f64,
    tokens: f64,
    last: Instant,
    epoch_end: Instant,
    window_full: bool,
    limited: bool,
    /// Epochs left before the rate may be cut again.
    calm: u32,
    /// No cut yet: a limited epoch doubles the rate.
    slow_start: bool,
}

impl Pacer {
    /// A pacer at `initial` bytes per second, kept within `min..=max`.
    pub fn new(now: Instant, initial: f64, min: f64, max: f64) -> Self {
        let rate = initial.clamp(min, max.max(min));
        Pacer {
            rate,
            min,
            max: max.max(min),
            tokens: burst(rate),
            last: now,
            epoch_end: now + EPOCH,
            window_full: false,
            limited: false,
            calm: 0,
            slow_start: true,
        }
    }

    /// Adds the tokens earned since the last call, and ends an epoch that is over.
    pub fn refill(&mut self, now: Instant) {
        if now <= self.last {
            return;
        }
        if now >= self.epoch_end {
            self.calm = self.calm.saturating_sub(1);
            if self.window_full {
                if self.calm == 0 {
                    self.rate = (self.rate * 0.8).max(self.min);
                    self.calm = BACKOFF_EPOCHS;
                    self.slow_start = false;
                }
            } else if self.limited {
                let factor = if self.slow_start {
                    2.0
                } else {
                    1.0 + 1.0 / 16.0
                };
                self.rate = (self.rate * factor).min(self.max);
            }
            self.window_full = false;
            self.limited = false;
            self.epoch_end = now + EPOCH;
        }
        let dt = (now - self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(burst(self.rate));
        self.last = now;
    }

    /// Whether a datagram may leave now. A datagram may take the bucket below zero; the
    /// next waits until it is paid back.
    pub fn ready(&mut self) -> bool {
        if self.tokens > 0.0 {
            true
        } else {
            self.limited = true;
            false
        }
    }

    /// Whether the bucket lets a datagram leave now (without noting that it did not).
    pub fn has_tokens(&self) -> bool {
        self.tokens > 0.0
    }

    /// Pays for a datagram of `len` bytes.
    pub fn spend(&mut self, len: usize) {
        self.tokens -= len as f64;
    }

    /// When the next datagram may leave.
    pub fn ready_at(&self) -> Instant {
        if self.tokens > 0.0 {
            return self.last;
        }
        // One byte past zero, so that the bucket is positive at that instant.
        self.last + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
    }

    /// A flow window refused a send: members are behind.
    pub fn note_window_full(&mut self) {
        self.window_full = true;
    }

    /// The current rate, bytes per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_at_the_rate_and_follows_the_window() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 1_000_000.0, 10_000.0, 10_000_000.0);
        // Flat out for a second: about the rate's worth leaves, and the rate grows.
        let mut t = t0;
        let mut sent = 0usize;
        while t < t0 + Duration::from_secs(1) {
            p.refill(t);
            while p.ready() {
                p.spend(1200);
                sent += 1200;
            }
            t = p.ready_at().max(t + Duration::from_micros(100));
        }
        assert!(sent > 1_000_000, "sent {sent}");
        assert!(p.rate() > 2_000_000.0, "grew to {}", p.rate());
        // Windows that keep filling bring it down, to the floor at most.
        for _ in 0..200 * BACKOFF_EPOCHS {
            p.note_window_full();
            t += EPOCH;
            p.refill(t);
        }
        assert_eq!(p.rate(), 10_000.0);
        assert!(p.ready_at() >= t);
    }
}
