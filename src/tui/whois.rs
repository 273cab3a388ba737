//! The screen's who-is answers (PROTOCOL.md 7.13): one line per peer a query found, merged as
//! further answers name it again.
//!
//! Answers trickle in from several nodes, and those near a peer all name it: its friend with
//! its address, a member of its lobbies with those, the peer itself with "seen just now".
//! A user wants to know who goes by the nick, not who said so first, so each peer gets one
//! line that grows with what the later answers add (the freshest sighting, every lobby, the
//! address) and lists who told.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::display::{fingerprint, terminal_safe};
use crate::proto::wire::WhoIsPeer;
use crate::proto::{LobbyId, MsgId, PeerId};

/// Queries whose lines are remembered for merging; an answer to an older one gets new lines.
const MAX_QUERIES: usize = 16;
/// Peers remembered per query. The core passes at most 16 answers of 8 peers per query; this
/// only bounds what a changed core could send.
const MAX_FOUND: usize = 64;
/// Lobbies named on one line, at most.
const MAX_LOBBIES: usize = 16;
/// Answerers named on one line, at most.
const MAX_VIA: usize = 8;

/// Which pane a line is in: panes come and go, so a line is found again by what the pane
/// shows, not by its place in the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PaneRef {
    /// The status pane, shown while no lobby is joined.
    Status,
    /// A lobby's pane.
    Lobby(LobbyId),
    /// The conversation with a peer.
    Direct(PeerId),
}

/// What the answers to one query say of one peer, merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Found {
    /// The peer.
    pub peer: PeerId,
    /// Its nick as the first answer gave it, terminal-safe.
    pub nick: String,
    /// The freshest sighting, in seconds ago.
    pub seen: u64,
    /// Every listed public lobby an answerer heard it in, terminal-safe.
    pub lobbies: Vec<String>,
    /// Its address, from an answerer that is its friend.
    pub addr: Option<SocketAddr>,
    /// The nodes that named it, in the order they answered.
    pub via: Vec<PeerId>,
    /// Its line, once shown.
    pub line: Option<(PaneRef, u64)>,
}

impl Found {
    fn new(p: &WhoIsPeer) -> Found {
        Found {
            peer: p.peer,
            nick: terminal_safe(&p.nick).into_owned(),
            seen: p.seen,
            lobbies: Vec::new(),
            addr: None,
            via: Vec::new(),
            line: None,
        }
    }

    fn merge(&mut self, from: PeerId, p: &WhoIsPeer) {
        self.seen = self.seen.min(p.seen);
        for l in &p.lobbies {
            let l = terminal_safe(l);
            if self.lobbies.len() < MAX_LOBBIES && !self.lobbies.iter().any(|h| *h == l) {
                self.lobbies.push(l.into_owned());
            }
        }
        self.addr = self.addr.or(p.addr);
        if self.via.len() < MAX_VIA && !self.via.contains(&from) {
            self.via.push(from);
        }
    }
}

#[derive(Debug)]
struct Query {
    id: MsgId,
    found: Vec<Found>,
}

/// The peers found by the recent own queries.
#[derive(Debug, Default)]
pub(super) struct WhoIsLines {
    queries: VecDeque<Query>,
}

impl WhoIsLines {
    /// Merges what `from` says of `p` into query `id`; returns the peer's merged state (its
    /// line is `None` if it has none yet).
    pub fn merge(&mut self, id: MsgId, from: PeerId, p: &WhoIsPeer) -> Found {
        let qi = match self.queries.iter().position(|q| q.id == id) {
            Some(i) => i,
            None => {
                if self.queries.len() >= MAX_QUERIES {
                    self.queries.pop_front();
                }
                self.queries.push_back(Query {
                    id,
                    found: Vec::new(),
                });
                self.queries.len() - 1
            }
        };
        let q = &mut self.queries[qi];
        let fi = match q.found.iter().position(|f| f.peer == p.peer) {
            Some(i) => i,
            None if q.found.len() < MAX_FOUND => {
                q.found.push(Found::new(p));
                q.found.len() - 1
            }
            None => {
                // Not remembered: shown on a line of its own.
                let mut f = Found::new(p);
                f.merge(from, p);
                return f;
            }
        };
        q.found[fi].merge(from, p);
        q.found[fi].clone()
    }

    /// Remembers where the line of `peer` found by query `id` is.
    pub fn shown(&mut self, id: MsgId, peer: PeerId, line: (PaneRef, u64)) {
        if let Some(f) = self
            .queries
            .iter_mut()
            .find(|q| q.id == id)
            .and_then(|q| q.found.iter_mut().find(|f| f.peer == peer))
        {
            f.line = Some(line);
        }
    }
}

/// How long ago, in words.
fn ago(secs: u64) -> String {
    match secs {
        0 => "just now".to_owned(),
        s if s < 120 => format!("{s} s ago"),
        s if s < 2 * 3600 => format!("{} min ago", s / 60),
        s => format!("{} h ago", s / 3600),
    }
}

/// The line of a peer found by `/whois asked` (terminal-safe): `name_of` names an answerer
/// as the screen knows it.
pub(super) fn describe(asked: &str, f: &Found, name_of: impl Fn(PeerId) -> String) -> String {
    let via: Vec<String> = f
        .via
        .iter()
        .map(|&v| {
            if v == f.peer {
                "itself".to_owned()
            } else {
                name_of(v)
            }
        })
        .collect();
    let mut text = format!(
        "whois {asked}: {}#{} seen {} via {}",
        f.nick,
        fingerprint(f.peer, 4),
        ago(f.seen),
        via.join(", ")
    );
    if !f.lobbies.is_empty() {
        text.push_str(&format!(", lobbies {}", f.lobbies.join(", ")));
    }
    if let Some(a) = f.addr {
        text.push_str(&format!(", at {a}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(p: u64, seen: u64, lobbies: &[&str], addr: Option<&str>) -> WhoIsPeer {
        WhoIsPeer {
            peer: PeerId(p),
            nick: "ann".into(),
            seen,
            lobbies: lobbies.iter().map(|l| (*l).to_owned()).collect(),
            addr: addr.map(|a| a.parse().unwrap()),
        }
    }

    #[test]
    fn answers_about_one_peer_merge_into_one_line() {
        const ANN: u64 = 0x3fa2_0000_0000_0001;
        let mut w = WhoIsLines::default();
        let f = w.merge(MsgId(1), PeerId(5), &peer(ANN, 40, &["general"], None));
        assert_eq!(f.line, None);
        w.shown(MsgId(1), PeerId(ANN), (PaneRef::Status, 7));
        w.merge(
            MsgId(1),
            PeerId(6),
            &peer(ANN, 12, &["team", "general"], Some("10.0.0.2:47110")),
        );
        let f = w.merge(MsgId(1), PeerId(ANN), &peer(ANN, 90, &[], None));
        assert_eq!(f.line, Some((PaneRef::Status, 7)));
        let name = |p: PeerId| {
            if p == PeerId(5) {
                "bob".into()
            } else {
                format!("#{p}")
            }
        };
        assert_eq!(
            describe("ann", &f, name),
            "whois ann: ann#3fa2 seen 12 s ago via bob, #0000000000000006, itself, lobbies \
             general, team, at 10.0.0.2:47110"
        );
        // Another query starts afresh.
        let g = w.merge(MsgId(2), PeerId(5), &peer(ANN, 4000, &[], None));
        assert_eq!((g.line, g.via.len()), (None, 1));
        assert_eq!(
            describe("ANN", &g, |_| "bob".into()),
            "whois ANN: ann#3fa2 seen 66 min ago via bob"
        );
    }

    #[test]
    fn what_is_remembered_is_bounded() {
        let mut w = WhoIsLines::default();
        for q in 0..(MAX_QUERIES as u64 + 4) {
            for p in 0..(MAX_FOUND as u64 + 4) {
                w.merge(MsgId(q), PeerId(1), &peer(p, 0, &[], None));
            }
        }
        assert_eq!(w.queries.len(), MAX_QUERIES);
        assert!(w.queries.iter().all(|q| q.found.len() == MAX_FOUND));
    }
}
