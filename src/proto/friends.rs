//! Friend links (PROTOCOL.md 7.1): the unicast addresses the user configured, the hello
//! handshake that confirms each link in both directions, its keep-alive, and its round-trip
//! time. Lobbies ask this table which friends are up; it knows nothing of lobbies itself
//! beyond the ids a friend lists in its hellos.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::ids::{LobbyId, PeerId};
use super::wire::{Hello, HelloEcho, MAX_HELLO_LOBBIES};

/// Most friends of a node (PROTOCOL.md 5).
pub const MAX_FRIENDS: usize = 64;

/// How far a friend's hello clock may fall behind the time elapsed since its previous hello
/// before the friend is taken for restarted (PROTOCOL.md 7.11): room for the hellos' delays to
/// differ. A wrong guess costs at most one re-invitation.
const RESTART_SLACK_US: u64 = 500_000;

/// Hello interval while a link is not up (PROTOCOL.md 7.1).
const HANDSHAKE_RETRY: Duration = Duration::from_secs(1);

/// Why a friend could not be added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FriendError {
    /// Already a friend.
    #[error("{0} is already a friend")]
    Duplicate(SocketAddr),
    /// The table is full.
    #[error("at most {MAX_FRIENDS} friends")]
    Full,
    /// An address no datagram can be sent to.
    #[error("{0} is not a unicast address with a port")]
    BadAddress(SocketAddr),
}

/// What the application may show of one friend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FriendInfo {
    /// Its unicast address.
    pub addr: SocketAddr,
    /// Its peer id, once a hello told it.
    pub peer: Option<PeerId>,
    /// Its nick, once a hello told it.
    pub nick: Option<String>,
    /// Whether the link is confirmed in both directions.
    pub up: bool,
    /// Round-trip time, once measured.
    pub rtt: Option<Duration>,
}

/// A link's change of state, for the node to turn into events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkChange {
    /// The link came up (or its peer id changed while up).
    Up {
        /// The friend's address.
        addr: SocketAddr,
        /// Its peer id.
        peer: PeerId,
        /// Its nick.
        nick: String,
    },
    /// The link went down.
    Down {
        /// The friend's address.
        addr: SocketAddr,
        /// The peer id it had, if known.
        peer: Option<PeerId>,
    },
}

#[derive(Debug)]
pub(crate) struct FriendLink {
    pub addr: SocketAddr,
    pub peer: Option<PeerId>,
    pub nick: Option<String>,
    /// Its latest hello: the timestamp in it and when it arrived (to echo back).
    pub heard: Option<(u64, Instant)>,
    /// When a hello of its last echoed one of ours: it hears us.
    echoed_at: Option<Instant>,
    pub up: bool,
    pub rtt: Option<Duration>,
    next_hello: Instant,
    /// When we last answered a hello at once (bounded, 7.1).
    answered_at: Option<Instant>,
    /// The listed lobbies its latest hello named.
    pub lobbies: Vec<LobbyId>,
    /// When a challenge of its was last evaluated (7.7).
    pub challenged_at: Option<Instant>,
}

impl FriendLink {
    /// Whether `hello`, arriving at `now` on this link while it is up, comes from a new start
    /// of the same peer (PROTOCOL.md 7.11): it echoes none of our hellos (a new node has heard
    /// none yet), or its clock went back, or advanced less than the time since its previous
    /// hello (a new clock started after the old one did, even when the old node ran for less
    /// time than the new one took to send a hello).
    pub fn restarted(&self, hello: &Hello, now: Instant) -> bool {
        if !self.up || self.peer != Some(hello.sender) {
            return false;
        }
        let Some((ts, at)) = self.heard else {
            return false;
        };
        let elapsed = now.saturating_duration_since(at).as_micros() as u64;
        hello.echo.is_none()
            || hello.timestamp < ts
            || hello.timestamp.saturating_add(RESTART_SLACK_US) < ts.saturating_add(elapsed)
    }
}

/// The friend table.
#[derive(Debug, Default)]
pub(crate) struct Friends {
    links: Vec<FriendLink>,
}

/// Timing of the links (PROTOCOL.md 5).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkTiming {
    pub hello_interval: Duration,
    pub link_timeout: Duration,
    pub answer_gap: Duration,
}

impl Friends {
    /// Adds `addr`; its first hello is due at once.
    pub fn add(&mut self, addr: SocketAddr, now: Instant) -> Result<(), FriendError> {
        if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
            return Err(FriendError::BadAddress(addr));
        }
        if self.get(addr).is_some() {
            return Err(FriendError::Duplicate(addr));
        }
        if self.links.len() >= MAX_FRIENDS {
            return Err(FriendError::Full);
        }
        self.links.push(FriendLink {
            addr,
            peer: None,
            nick: None,
            heard: None,
            echoed_at: None,
            up: false,
            rtt: None,
            next_hello: now,
            answered_at: None,
            lobbies: Vec::new(),
            challenged_at: None,
        });
        Ok(())
    }

    /// Removes `addr`; true if it was a friend.
    pub fn remove(&mut self, addr: SocketAddr) -> bool {
        let before = self.links.len();
        self.links.retain(|l| !same(l.addr, addr));
        self.links.len() != before
    }

    /// The link of `addr`, if it is a friend.
    pub fn get(&self, addr: SocketAddr) -> Option<&FriendLink> {
        self.links.iter().find(|l| same(l.addr, addr))
    }

    pub fn get_mut(&mut self, addr: SocketAddr) -> Option<&mut FriendLink> {
        self.links.iter_mut().find(|l| same(l.addr, addr))
    }

    /// Every link, up or not.
    pub fn links(&self) -> impl Iterator<Item = &FriendLink> {
        self.links.iter()
    }

    /// What the application may show.
    pub fn info(&self) -> Vec<FriendInfo> {
        self.links
            .iter()
            .map(|l| FriendInfo {
                addr: l.addr,
                peer: l.peer,
                nick: l.nick.clone(),
                up: l.up,
                rtt: l.rtt,
            })
            .collect()
    }

    /// Takes a hello from `addr` (a friend). `micros_now` is this node's session clock at
    /// `now`. Returns the link's change, and whether to answer with a hello at once.
    pub fn on_hello(
        &mut self,
        t: LinkTiming,
        now: Instant,
        micros_now: u64,
        addr: SocketAddr,
        hello: Hello,
    ) -> (Option<LinkChange>, bool) {
        let Some(l) = self.get_mut(addr) else {
            return (None, false);
        };
        let mut change = None;
        if l.peer.is_some_and(|p| p != hello.sender) && l.up {
            // A restarted friend with a new identity: what was known of the old one goes.
            change = Some(LinkChange::Down {
                addr: l.addr,
                peer: l.peer,
            });
            l.up = false;
            l.echoed_at = None;
            l.rtt = None;
        }
        l.peer = Some(hello.sender);
        l.nick = Some(hello.nick.clone());
        l.heard = Some((hello.timestamp, now));
        let mut lobbies = hello.lobbies;
        lobbies.truncate(MAX_HELLO_LOBBIES);
        l.lobbies = lobbies;
        let link_us = t.link_timeout.as_micros() as u64;
        let echoes_us = hello
            .echo
            .filter(|e| e.timestamp <= micros_now && micros_now - e.timestamp <= link_us);
        if let Some(e) = echoes_us {
            l.echoed_at = Some(now);
            let rtt = (micros_now - e.timestamp).saturating_sub(e.delay);
            l.rtt = Some(Duration::from_micros(rtt));
        }
        let came_up = !l.up && echoes_us.is_some();
        if came_up {
            l.up = true;
            if change.is_none() {
                change = Some(LinkChange::Up {
                    addr: l.addr,
                    peer: hello.sender,
                    nick: hello.nick,
                });
            }
        }
        // Answer now rather than in up to an interval when the friend may not know yet that
        // we hear it: it does not hear us, or our last hello to it may have had no echo. At
        // most once per answer gap.
        // Coming up happens once per link: that answer is not held back by the gap.
        let answer = came_up
            || (echoes_us.is_none()
                && l.answered_at
                    .is_none_or(|a| now.saturating_duration_since(a) >= t.answer_gap));
        if answer {
            l.answered_at = Some(now);
        }
        (change, answer)
    }

    /// Links whose hello is due at `now`; their next one is scheduled an interval on, or a
    /// second on while the link is not up, so that a handshake that lost a hello completes
    /// in about a second rather than an interval.
    pub fn due(&mut self, t: LinkTiming, now: Instant) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for l in &mut self.links {
            if l.next_hello <= now {
                let wait = if l.up {
                    t.hello_interval
                } else {
                    t.hello_interval.min(HANDSHAKE_RETRY)
                };
                l.next_hello = now + wait;
                out.push(l.addr);
            }
        }
        out
    }

    /// Takes down the links not heard (or not echoing us) for the link timeout.
    pub fn expire(&mut self, t: LinkTiming, now: Instant) -> Vec<LinkChange> {
        let mut out = Vec::new();
        for l in &mut self.links {
            let fresh = |at: Option<Instant>| {
                at.is_some_and(|a| now.saturating_duration_since(a) < t.link_timeout)
            };
            if l.up && !(fresh(l.heard.map(|h| h.1)) && fresh(l.echoed_at)) {
                l.up = false;
                out.push(LinkChange::Down {
                    addr: l.addr,
                    peer: l.peer,
                });
            }
        }
        out
    }

    /// The hello to send to `addr` now.
    pub fn hello(
        &self,
        addr: SocketAddr,
        now: Instant,
        me: PeerId,
        nick: &str,
        micros_now: u64,
        lobbies: Vec<LobbyId>,
    ) -> Hello {
        let echo = self
            .get(addr)
            .and_then(|l| l.heard)
            .map(|(ts, at)| HelloEcho {
                timestamp: ts,
                delay: now.saturating_duration_since(at).as_micros() as u64,
            });
        Hello {
            sender: me,
            nick: nick.to_owned(),
            timestamp: micros_now,
            echo,
            lobbies,
        }
    }
}

/// Addresses are the same friend when IP and port match (an IPv4-mapped IPv6 source address
/// is the IPv4 friend).
pub(crate) fn same(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(now: Instant) -> FriendLink {
        FriendLink {
            addr: "192.0.2.1:47110".parse().unwrap(),
            peer: Some(PeerId(7)),
            nick: None,
            heard: Some((10_000_000, now)),
            echoed_at: Some(now),
            up: true,
            rtt: None,
            next_hello: now,
            answered_at: None,
            lobbies: Vec::new(),
            challenged_at: None,
        }
    }

    fn hello(timestamp: u64, echo: bool) -> Hello {
        Hello {
            sender: PeerId(7),
            nick: "f".into(),
            timestamp,
            echo: echo.then_some(HelloEcho {
                timestamp: 1,
                delay: 0,
            }),
            lobbies: Vec::new(),
        }
    }

    #[test]
    fn a_restart_shows_in_the_echo_or_the_clock() {
        let t0 = Instant::now();
        let l = link(t0);
        let later = t0 + Duration::from_secs(5);
        // The same node, 5 s on, its clock 5 s on (or a little less: a quicker delivery).
        assert!(!l.restarted(&hello(15_000_000, true), later));
        assert!(!l.restarted(&hello(14_700_000, true), later));
        // A new node: no echo yet, or a clock that went back or fell behind.
        assert!(l.restarted(&hello(15_000_000, false), later));
        assert!(l.restarted(&hello(9_000_000, true), later));
        assert!(l.restarted(&hello(12_000_000, true), later));
        // Another peer at the address, or a link that is not up, is not a restart.
        let mut other = hello(1, false);
        other.sender = PeerId(8);
        assert!(!l.restarted(&other, later));
        let down = FriendLink {
            up: false,
            ..link(t0)
        };
        assert!(!down.restarted(&hello(1, false), later));
    }
}
