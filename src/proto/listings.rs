//! Lobby lists (PROTOCOL.md 7.12): what a node knows of the listed lobbies around it, merged
//! from its friends' and its segment's lists, and when it asks, answers and announces.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::wire::{LobbyList, MAX_LIST_LOBBIES};

/// Lists sent to the discovery group, and how long a report keeps a lobby in the merged
/// list (three of them).
pub const LIST_INTERVAL: Duration = Duration::from_secs(121);
/// Least time between two requests of this node.
pub const REQUEST_GAP: Duration = Duration::from_secs(20);
/// Least time between two answers to one friend, and two answers to the group.
const ANSWER_GAP: Duration = Duration::from_secs(5);
/// Most lobbies in the merged list.
pub const MAX_LISTED: usize = 256;
/// Longest random wait before answering a request heard on the group.
const GROUP_ANSWER_WAIT: Duration = Duration::from_secs(1);
/// Friends remembered for the answer gap, at most (as many as friends may be, with room).
const MAX_ANSWERED: usize = 256;

/// A lobby in the merged list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Its normalised name.
    pub name: String,
    /// The most members any recent report gave.
    pub members: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    members: u64,
    heard_at: Instant,
}

/// What a node keeps of lobby lists.
#[derive(Debug, Default)]
pub(crate) struct Listings {
    merged: HashMap<String, Entry>,
    /// Lobbies were left out: a list said `more`, or the merged list was full.
    cut: bool,
    /// When this node last sent a request.
    asked_at: Option<Instant>,
    /// The user looks at the list until then: changes are told, and it is asked for again.
    watching_until: Option<Instant>,
    /// The merged list changed since it was last told.
    changed: bool,
    answered: HashMap<SocketAddr, Instant>,
    /// A request was heard on the group: the answer is due then, unless the names heard
    /// meanwhile cover this node's.
    group_answer_at: Option<Instant>,
    heard_names: HashSet<String>,
    group_answered_at: Option<Instant>,
    /// The next list to the discovery group.
    pub announce_at: Option<Instant>,
}

impl Listings {
    /// The merged list, most members first, and whether lobbies were left out of it.
    pub fn list(&self) -> (Vec<Listed>, bool) {
        let mut v: Vec<Listed> = self
            .merged
            .iter()
            .map(|(name, e)| Listed {
                name: name.clone(),
                members: e.members,
            })
            .collect();
        v.sort_by(|a, b| b.members.cmp(&a.members).then_with(|| a.name.cmp(&b.name)));
        (v, self.cut)
    }

    /// The user asks for the list at `now`: true if a request may go out (one per gap).
    pub fn ask(&mut self, now: Instant) -> bool {
        self.watching_until = Some(now + LIST_INTERVAL);
        let may = self
            .asked_at
            .is_none_or(|t| now.saturating_duration_since(t) >= REQUEST_GAP);
        if may {
            self.asked_at = Some(now);
        }
        may
    }

    /// Whether the user looks at the list (asked within a list interval).
    pub fn watching(&self, now: Instant) -> bool {
        self.watching_until.is_some_and(|t| now < t)
    }

    /// Whether a friend's request may be answered now (one per gap per friend).
    pub fn answer_friend(&mut self, now: Instant, friend: SocketAddr) -> bool {
        if let Some(&t) = self.answered.get(&friend)
            && now.saturating_duration_since(t) < ANSWER_GAP
        {
            return false;
        }
        if self.answered.len() >= MAX_ANSWERED {
            self.answered
                .retain(|_, t| now.saturating_duration_since(*t) < ANSWER_GAP);
        }
        if self.answered.len() < MAX_ANSWERED {
            self.answered.insert(friend, now);
        }
        true
    }

    /// A request heard on the group: the answer is scheduled `wait` from now (the caller draws
    /// it in 0..1 s), or that long after the gap since the last answer is over, unless one is
    /// pending. Returns when. A request inside the gap is answered late rather than not at
    /// all: a node that starts seconds after another asked still hears the segment's lists.
    pub fn group_request(&mut self, now: Instant, wait_fraction: f64) -> Option<Instant> {
        if self.group_answer_at.is_some() {
            return None;
        }
        let from = self
            .group_answered_at
            .map_or(now, |t| now.max(t + ANSWER_GAP));
        self.heard_names.clear();
        let at = from + GROUP_ANSWER_WAIT.mul_f64(wait_fraction.clamp(0.0, 1.0));
        self.group_answer_at = Some(at);
        Some(at)
    }

    /// The group answer due at `now`, if any: true if it is to go out, false if lists heard
    /// meanwhile named every lobby in `own` (or it is not due).
    pub fn group_answer_due(&mut self, now: Instant, own: &[String]) -> bool {
        match self.group_answer_at {
            Some(at) if at <= now => {
                self.group_answer_at = None;
                let covered = own.iter().all(|n| self.heard_names.contains(n));
                if !covered {
                    self.group_answered_at = Some(now);
                }
                !covered
            }
            _ => false,
        }
    }

    /// When the pending group answer is due.
    pub fn group_answer_at(&self) -> Option<Instant> {
        self.group_answer_at
    }

    /// Merges a list heard at `now`.
    pub fn merge(&mut self, now: Instant, list: &LobbyList) {
        self.cut |= list.more;
        for (name, members) in list.lobbies.iter().take(MAX_LIST_LOBBIES) {
            if self.group_answer_at.is_some() && self.heard_names.len() < MAX_LISTED {
                self.heard_names.insert(name.clone());
            }
            let members = (*members).max(1);
            match self.merged.get_mut(name) {
                Some(e) => {
                    if members != e.members {
                        self.changed = true;
                    }
                    // The latest report within an interval, or the larger of two at once:
                    // members come and go, and several nodes report one lobby.
                    e.members = if now.saturating_duration_since(e.heard_at) < REQUEST_GAP {
                        e.members.max(members)
                    } else {
                        members
                    };
                    e.heard_at = now;
                }
                None => {
                    if self.merged.len() >= MAX_LISTED {
                        self.cut = true;
                        let Some(oldest) = self
                            .merged
                            .iter()
                            .min_by_key(|(_, e)| e.heard_at)
                            .map(|(n, _)| n.clone())
                        else {
                            continue;
                        };
                        self.merged.remove(&oldest);
                    }
                    self.merged.insert(
                        name.clone(),
                        Entry {
                            members,
                            heard_at: now,
                        },
                    );
                    self.changed = true;
                }
            }
        }
    }

    /// Forgets lobbies not reported for three list intervals.
    pub fn expire(&mut self, now: Instant) {
        let before = self.merged.len();
        self.merged
            .retain(|_, e| now.saturating_duration_since(e.heard_at) < LIST_INTERVAL * 3);
        if self.merged.len() != before {
            self.changed = true;
        }
        if self.merged.is_empty() {
            self.cut = false;
        }
    }

    /// Whether the merged list changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ids::PeerId;

    fn list(names: &[(&str, u64)], more: bool) -> LobbyList {
        LobbyList {
            sender: PeerId(1),
            lobbies: names.iter().map(|(n, m)| (n.to_string(), *m)).collect(),
            more,
        }
    }

    #[test]
    fn lists_merge_by_name_keeping_the_largest_recent_count() {
        let t = Instant::now();
        let mut l = Listings::default();
        l.merge(t, &list(&[("general", 3), ("lab", 1)], false));
        l.merge(t, &list(&[("general", 5)], false));
        let (v, cut) = l.list();
        assert_eq!(
            v,
            [
                Listed {
                    name: "general".into(),
                    members: 5
                },
                Listed {
                    name: "lab".into(),
                    members: 1
                }
            ]
        );
        assert!(!cut);
        // A later report stands, and three silent intervals forget a lobby.
        l.merge(t + LIST_INTERVAL, &list(&[("general", 2)], false));
        assert_eq!(l.list().0[0].members, 2);
        l.expire(t + LIST_INTERVAL * 3);
        assert_eq!(
            l.list().0.len(),
            1,
            "lab was not reported for three intervals"
        );
    }

    #[test]
    fn a_full_list_is_cut_and_says_so() {
        let t = Instant::now();
        let mut l = Listings::default();
        for k in 0..MAX_LISTED + 10 {
            l.merge(
                t + Duration::from_millis(k as u64),
                &list(&[(&format!("l{k}"), 1)], false),
            );
        }
        let (v, cut) = l.list();
        assert_eq!(v.len(), MAX_LISTED);
        assert!(cut);
        assert!(v.iter().any(|x| x.name == format!("l{}", MAX_LISTED + 9)));
        assert!(!v.iter().any(|x| x.name == "l0"), "the oldest went");
    }

    #[test]
    fn requests_and_answers_are_spaced() {
        let t = Instant::now();
        let mut l = Listings::default();
        assert!(l.ask(t));
        assert!(!l.ask(t + Duration::from_secs(19)));
        assert!(l.ask(t + REQUEST_GAP));
        let f: SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert!(l.answer_friend(t, f));
        assert!(!l.answer_friend(t + Duration::from_secs(4), f));
        assert!(l.answer_friend(t + ANSWER_GAP, f));
        // A group answer is suppressed by lists that named all of this node's lobbies.
        let own = vec!["general".to_string()];
        let at = l.group_request(t, 0.5).unwrap();
        l.merge(t, &list(&[("general", 2)], false));
        assert!(!l.group_answer_due(at, &own));
        let at = l.group_request(t + Duration::from_secs(1), 0.5).unwrap();
        assert!(l.group_answer_due(at, &own), "nobody named it this time");
        // One answer per gap: a request inside it is answered when the gap is over.
        let soon = at + Duration::from_secs(2);
        assert_eq!(
            l.group_request(soon, 0.5),
            Some(at + ANSWER_GAP + GROUP_ANSWER_WAIT / 2)
        );
        assert_eq!(l.group_request(soon, 0.0), None, "one pending at a time");
        assert!(!l.group_answer_due(soon + Duration::from_secs(1), &own));
        assert!(l.group_answer_due(at + ANSWER_GAP + GROUP_ANSWER_WAIT, &own));
    }
}
