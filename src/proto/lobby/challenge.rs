//! The challenge (PROTOCOL.md 7.7) on a lobby's side: the message ids it remembers, when it
//! challenges its friends, and how it answers a friend's challenge.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::proto::challenge::hash;
use crate::proto::ids::MsgId;
use crate::proto::shared::Shared;
use crate::proto::wire::{Challenge, Link};

/// Message ids remembered per lobby for the challenge.
const RECENT_IDS: usize = 256;
/// A challenge uses, and matches, only ids of messages seen this recently.
pub(crate) const ID_AGE: Duration = Duration::from_secs(30);
/// Messages received between two challenges of a lobby.
const EVERY_MESSAGES: u32 = 20;
/// Least time between two challenges of a lobby.
const EVERY: Duration = Duration::from_secs(15);

impl LobbyState {
    /// A message (its first fragment) was first held: remember its id; a received one may
    /// make this node challenge its friends (`received`).
    pub(super) fn note_message(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: MsgId,
        received: bool,
    ) {
        if self.recent_ids.len() >= RECENT_IDS {
            self.recent_ids.pop_front();
        }
        self.recent_ids.push_back((id, now));
        if !received {
            return;
        }
        self.received_since_challenge = self.received_since_challenge.saturating_add(1);
        let due = self.received_since_challenge >= EVERY_MESSAGES
            && self
                .challenged_at
                .is_none_or(|t| now.saturating_duration_since(t) >= EVERY);
        if due {
            self.challenge_friends(sh, now, id);
        }
    }

    /// Challenges every friend whose link is up and that does not take part in this lobby,
    /// with h(L, N, F) for the message `n` just received.
    fn challenge_friends(&mut self, sh: &mut Shared, now: Instant, n: MsgId) {
        self.received_since_challenge = 0;
        self.challenged_at = Some(now);
        for (addr, peer) in self.flood.outsiders(now, sh.cfg.peer_timeout) {
            let c = Challenge {
                sender: sh.me,
                hashes: vec![hash(self.lobby.id, n, peer)],
            };
            sh.stats.challenges_sent += 1;
            sh.send_link(addr, &Link::Challenge(c));
        }
    }

    /// A challenge from the friend at `addr` (link up, not taking part here): true if one of
    /// `hashes` is h(L, N, me) for a message N of this lobby seen in the last [`ID_AGE`]. On a
    /// match the friend takes part from now on, and is sent this node's session at once.
    pub fn answer_challenge(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        addr: SocketAddr,
        hashes: &[u64],
    ) -> bool {
        if !self.listed_or_known(sh, now, addr) {
            return false;
        }
        let me = sh.me;
        let lobby = self.lobby.id;
        let hit = self
            .recent_ids
            .iter()
            .rev()
            .take_while(|(_, at)| now.saturating_duration_since(*at) < ID_AGE)
            .any(|&(n, _)| hashes.contains(&hash(lobby, n, me)));
        if hit {
            sh.stats.challenge_matches += 1;
            self.flood.accept(addr, now);
            self.send_session_to(sh, now, addr);
            self.check_bridge(sh, now);
        }
        hit
    }

    /// Whether a challenge from `addr` is worth evaluating here: the friend is a partner that
    /// does not take part yet.
    fn listed_or_known(&self, sh: &Shared, now: Instant, addr: SocketAddr) -> bool {
        self.flood
            .outsiders(now, sh.cfg.peer_timeout)
            .iter()
            .any(|(a, _)| crate::proto::friends::same(*a, addr))
    }
}
