//! Who-is (PROTOCOL.md 7.13): the queries a node has seen, where each came from (so that
//! answers find their way back), and the bounds on passing them on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dedup::Dedup;
use super::hash::SeededState;
use super::ids::{MsgId, PeerId};

/// Hops an own query may still look beyond the friends it is sent to: the hop limit, 3,
/// counted from the asking node to the peer found.
pub const QUERY_HOPS: u8 = 2;
/// Least time between two own queries.
pub const OWN_GAP: Duration = Duration::from_secs(2);
/// How long a query's route back is kept, and how many.
const ROUTE_AGE: Duration = Duration::from_secs(30);
const MAX_ROUTES: usize = 1024;
/// How long query ids are remembered, and how many.
const SEEN_WINDOW: Duration = Duration::from_secs(600);
const SEEN_CAPACITY: usize = 1 << 16;
/// Answers passed back per query, at most.
const MAX_ANSWERS: u8 = 16;
/// Bytes per second of queries passed on per asker.
const PASS_RATE: f64 = 8.0 * 1024.0;
/// Askers with a budget, at most.
const MAX_ASKERS: usize = 4096;

/// Where a query came from: this node's user, or a friend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum From {
    Own,
    Friend(SocketAddr),
}

#[derive(Debug, Clone, Copy)]
struct Route {
    from: From,
    at: Instant,
    answers: u8,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Who-is state of a node.
#[derive(Debug)]
pub(crate) struct WhoIsState {
    seen: Dedup,
    routes: HashMap<MsgId, Route>,
    budgets: HashMap<PeerId, Bucket>,
    own_at: Option<Instant>,
}

impl WhoIsState {
    pub fn new(hasher: SeededState) -> Self {
        WhoIsState {
            seen: Dedup::new(SEEN_WINDOW, SEEN_CAPACITY, hasher),
            routes: HashMap::new(),
            budgets: HashMap::new(),
            own_at: None,
        }
    }

    /// An own query `id` at `now`: false if the last one was too recent.
    pub fn ask(&mut self, now: Instant, id: MsgId) -> bool {
        if self
            .own_at
            .is_some_and(|t| now.saturating_duration_since(t) < OWN_GAP)
        {
            return false;
        }
        self.own_at = Some(now);
        self.seen.insert(now, id);
        self.route(now, id, From::Own);
        true
    }

    /// A friend's query: true if it is new and within its asker's budget (its `bytes`); its
    /// route back is kept.
    pub fn take(
        &mut self,
        now: Instant,
        id: MsgId,
        asker: PeerId,
        bytes: usize,
        from: SocketAddr,
    ) -> bool {
        if !self.seen.insert(now, id) || !self.spend(now, asker, bytes) {
            return false;
        }
        self.route(now, id, From::Friend(from));
        true
    }

    fn route(&mut self, now: Instant, id: MsgId, from: From) {
        if self.routes.len() >= MAX_ROUTES {
            self.routes
                .retain(|_, r| now.saturating_duration_since(r.at) < ROUTE_AGE);
        }
        if self.routes.len() < MAX_ROUTES {
            self.routes.insert(
                id,
                Route {
                    from,
                    at: now,
                    answers: 0,
                },
            );
        }
    }

    /// Where an answer to query `id` goes: to this node's user, or back to a friend; None
    /// if the route is unknown, old, or has carried its share of answers.
    pub fn answer_to(&mut self, now: Instant, id: MsgId) -> Option<From> {
        let r = self.routes.get_mut(&id)?;
        if now.saturating_duration_since(r.at) >= ROUTE_AGE || r.answers >= MAX_ANSWERS {
            return None;
        }
        r.answers += 1;
        Some(r.from)
    }

    fn spend(&mut self, now: Instant, asker: PeerId, bytes: usize) -> bool {
        if self.budgets.len() >= MAX_ASKERS && !self.budgets.contains_key(&asker) {
            self.expire(now);
            if self.budgets.len() >= MAX_ASKERS {
                return false;
            }
        }
        let b = self.budgets.entry(asker).or_insert(Bucket {
            tokens: PASS_RATE,
            at: now,
        });
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + dt * PASS_RATE).min(PASS_RATE);
        b.at = now;
        let cost = bytes as f64 + 100.0;
        if b.tokens < cost {
            return false;
        }
        b.tokens -= cost;
        true
    }

    /// Forgets old routes, ids and budgets.
    pub fn expire(&mut self, now: Instant) {
        self.seen.expire(now);
        self.routes
            .retain(|_, r| now.saturating_duration_since(r.at) < ROUTE_AGE);
        self.budgets
            .retain(|_, b| now.saturating_duration_since(b.at) < Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_taken_once_and_its_answers_go_back_a_bounded_number_of_times() {
        let t = Instant::now();
        let mut w = WhoIsState::new(SeededState::new(1, 2));
        let f: SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert!(w.take(t, MsgId(1), PeerId(9), 40, f));
        assert!(!w.take(t, MsgId(1), PeerId(9), 40, f), "a duplicate");
        for _ in 0..MAX_ANSWERS {
            assert_eq!(w.answer_to(t, MsgId(1)), Some(From::Friend(f)));
        }
        assert_eq!(w.answer_to(t, MsgId(1)), None);
        assert_eq!(w.answer_to(t, MsgId(2)), None, "an answer to no query");
        assert!(w.ask(t, MsgId(3)));
        assert!(!w.ask(t + Duration::from_secs(1), MsgId(4)));
        assert_eq!(w.answer_to(t + ROUTE_AGE, MsgId(3)), None, "too old");
    }

    #[test]
    fn an_asker_cannot_make_a_node_pass_on_more_than_its_budget() {
        let t = Instant::now();
        let mut w = WhoIsState::new(SeededState::new(1, 2));
        let f: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let passed = (0..1000u64)
            .filter(|&k| w.take(t, MsgId(k), PeerId(9), 40, f))
            .count();
        assert_eq!(passed, (PASS_RATE / 140.0) as usize);
        assert!(w.take(t, MsgId(5000), PeerId(10), 40, f), "another asker");
    }
}
