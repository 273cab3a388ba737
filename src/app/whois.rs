//! The runtime's own who-is queries (PROTOCOL.md 7.13) while their answers come in: the nick
//! each asked for, so that an answer can be labelled with it, and when each is over.
//!
//! The core answers at once from what it knows, then friends' answers trickle in from up to
//! three hops away, each on its own and none of them required. Nothing says that the last
//! has come, so the runtime closes a query after [`WHOIS_WAIT`] and tells how many answered:
//! that is how a user, or a script, learns that nobody goes by a nick.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::proto::wire::WhoIsPeer;
use crate::proto::{MsgId, PeerId};

/// How long after asking a query is reported over ([`crate::app::AppEvent::WhoIsDone`]).
/// Queries and answers go straight from friend to friend with no timer on the way, so three
/// hops there and back take milliseconds; this leaves room for slow links and loaded nodes.
pub const WHOIS_WAIT: Duration = Duration::from_secs(5);
/// How long a query is remembered, so that a late answer is still labelled: longer than the
/// core keeps its route back (30 s), after which no answer can come.
const KEEP: Duration = Duration::from_secs(40);
/// Queries remembered at most. The core takes one own query per 2 s, so within [`KEEP`] there
/// are at most 20; the bound only guards against a change of that rate.
const MAX_OPEN: usize = 32;

/// One query asked.
#[derive(Debug)]
struct Asked {
    id: MsgId,
    nick: String,
    at: Instant,
    /// Answers so far, this node's own knowledge included.
    answers: usize,
    /// Distinct peers named by them.
    peers: HashSet<PeerId>,
    /// [`WhoIsDone`] was given.
    done: bool,
}

/// A query that is over: what [`crate::app::AppEvent::WhoIsDone`] tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhoIsDone {
    /// The query.
    pub id: MsgId,
    /// The nick asked for.
    pub nick: String,
    /// Answers that came, this node's own knowledge included.
    pub answers: usize,
    /// Distinct peers they named.
    pub peers: usize,
}

/// The open queries, oldest first.
#[derive(Debug, Default)]
pub struct OpenQueries {
    asked: VecDeque<Asked>,
}

impl OpenQueries {
    /// Remembers query `id` for `nick`, asked at `now`.
    pub fn ask(&mut self, now: Instant, id: MsgId, nick: &str) {
        while self.asked.len() >= MAX_OPEN {
            self.asked.pop_front();
        }
        self.asked.push_back(Asked {
            id,
            nick: nick.to_owned(),
            at: now,
            answers: 0,
            peers: HashSet::new(),
            done: false,
        });
    }

    /// Counts an answer to `id`; returns the nick asked for, or `None` if the query is
    /// forgotten (the caller labels it with the nick the answer names).
    pub fn answer(&mut self, id: MsgId, peers: &[WhoIsPeer]) -> Option<&str> {
        let a = self.asked.iter_mut().find(|a| a.id == id)?;
        a.answers += 1;
        a.peers.extend(peers.iter().map(|p| p.peer));
        Some(&a.nick)
    }

    /// When the next query is over, if one is open.
    pub fn next_due(&self) -> Option<Instant> {
        self.asked
            .iter()
            .filter(|a| !a.done)
            .map(|a| a.at + WHOIS_WAIT)
            .min()
    }

    /// The queries over at `now`, oldest first, each once; forgets those past [`KEEP`].
    pub fn take_due(&mut self, now: Instant) -> Vec<WhoIsDone> {
        let mut out = Vec::new();
        for a in self.asked.iter_mut().filter(|a| !a.done) {
            if now.saturating_duration_since(a.at) >= WHOIS_WAIT {
                a.done = true;
                out.push(WhoIsDone {
                    id: a.id,
                    nick: a.nick.clone(),
                    answers: a.answers,
                    peers: a.peers.len(),
                });
            }
        }
        self.asked
            .retain(|a| !a.done || now.saturating_duration_since(a.at) < KEEP);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(p: u64) -> WhoIsPeer {
        WhoIsPeer {
            peer: PeerId(p),
            nick: "ann".into(),
            seen: 0,
            lobbies: Vec::new(),
            addr: None,
        }
    }

    #[test]
    fn answers_are_labelled_and_counted_until_the_query_is_over() {
        let t = Instant::now();
        let mut q = OpenQueries::default();
        q.ask(t, MsgId(1), "ann");
        q.ask(t + Duration::from_secs(2), MsgId(2), "nobody");
        assert_eq!(q.answer(MsgId(1), &[peer(7)]), Some("ann"));
        assert_eq!(q.answer(MsgId(1), &[peer(7), peer(8)]), Some("ann"));
        assert_eq!(q.answer(MsgId(3), &[peer(7)]), None, "never asked");
        assert_eq!(q.next_due(), Some(t + WHOIS_WAIT));
        assert!(q.take_due(t + Duration::from_secs(1)).is_empty());
        let done = q.take_due(t + WHOIS_WAIT);
        assert_eq!(
            done,
            [WhoIsDone {
                id: MsgId(1),
                nick: "ann".into(),
                answers: 2,
                peers: 2
            }]
        );
        assert_eq!(q.next_due(), Some(t + Duration::from_secs(2) + WHOIS_WAIT));
        let done = q.take_due(t + Duration::from_secs(10));
        assert_eq!((done[0].id, done[0].answers), (MsgId(2), 0));
        assert_eq!(q.next_due(), None);
        // A late answer is still labelled, until the query is forgotten.
        assert_eq!(q.answer(MsgId(1), &[peer(9)]), Some("ann"));
        assert!(q.take_due(t + KEEP).is_empty());
        assert_eq!(q.answer(MsgId(1), &[peer(9)]), None);
        assert_eq!(q.answer(MsgId(2), &[peer(9)]), Some("nobody"));
    }

    #[test]
    fn the_open_queries_are_bounded() {
        let t = Instant::now();
        let mut q = OpenQueries::default();
        for k in 0..(MAX_OPEN as u64 + 10) {
            q.ask(t, MsgId(k), "ann");
        }
        assert_eq!(q.asked.len(), MAX_OPEN);
        assert_eq!(q.answer(MsgId(0), &[]), None, "the oldest went first");
        assert_eq!(q.take_due(t + WHOIS_WAIT).len(), MAX_OPEN);
    }
}
