//! State every lobby of a node shares: configuration, identity, clocks, randomness, and the
//! queues the runtime drains.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::SmallRng;

use super::config::Config;
use super::dedup::Dedup;
use super::event::Event;
use super::fragment::Reassembler;
use super::friends::{Friends, LinkTiming};
use super::ids::{LobbyId, PeerId};
use super::outbox::{Dest, Outbox, Own};
use super::pace::Pacer;
use super::stats::Stats;
use super::timers::Timers;
use super::verified::Verified;
use super::wire::{Body, Bundle, Link, Packet};

/// Node-wide state handed to each lobby's logic.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: Config,
    pub me: PeerId,
    pub nick: String,
    /// Origin of the microsecond timestamps in session messages.
    pub epoch: Instant,
    /// A moment and the Unix milliseconds of the wall clock at that moment.
    pub wall: (Instant, u64),
    pub rng: SmallRng,
    pub timers: Timers,
    pub outbox: Outbox,
    /// Paces what leaves the outbox.
    pub pacer: Pacer,
    /// The latest `now` the node was given: the pace's clock between inputs.
    pub now: Instant,
    pub events: VecDeque<Event>,
    pub stats: Stats,
    pub dedup: Dedup,
    pub reassembly: Reassembler,
    /// Recovery delays (detection to arrival), kept only when asked for.
    pub recovery: Option<Vec<Duration>>,
    /// Friend links.
    pub friends: Friends,
    /// Whether the node uses its lobbies' multicast groups (PROTOCOL.md 7.9).
    pub multicast: bool,
    /// Bundles whose signature verified recently.
    pub verified: Verified,
}

impl Shared {
    pub fn emit(&mut self, e: Event) {
        if self.events.len() >= self.cfg.max_queued_events {
            self.events.pop_front();
            self.stats.queue_overflow += 1;
        }
        self.events.push_back(e);
    }

    /// Timing of friend links, from the configuration.
    pub fn link_timing(&self) -> LinkTiming {
        LinkTiming {
            hello_interval: self.cfg.hello_interval,
            link_timeout: self.cfg.link_timeout,
            answer_gap: self.cfg.hello_answer_gap,
        }
    }

    /// Queues a friend-link packet for `to`.
    pub fn send_link(&mut self, to: SocketAddr, packet: &Link) {
        if matches!(packet, Link::Hello(_)) {
            self.stats.hellos_sent += 1;
        }
        self.outbox.push_link(Dest::Peer(to), packet);
    }

    /// Queues a packet of `lobby` for its group, unless multicast is off.
    pub fn send(&mut self, lobby: LobbyId, body: Body) {
        if self.multicast {
            self.send_to(Dest::Lobby(lobby), lobby, body);
        }
    }

    /// Queues a packet of `lobby` for `dest`. This node's own data, sessions and heartbeats go
    /// into bundles it signs; a repair is of its own data, sent again in a repair bundle
    /// (others' data is repaired with their bundles, [`Shared::send_bundle`]).
    pub fn send_to(&mut self, dest: Dest, lobby: LobbyId, body: Body) {
        let (own, body) = match body {
            Body::Data(d) => (Some(Own::Data), Body::Data(d)),
            Body::Session(s) => (Some(Own::Session), Body::Session(s)),
            Body::Heartbeat(h) => (Some(Own::Heartbeat), Body::Heartbeat(h)),
            Body::Repair { data, .. } => {
                debug_assert_eq!(data.source, self.me, "only own data is repaired unbundled");
                (Some(Own::Repair), Body::Data(data))
            }
            Body::Request(r) => (None, Body::Request(r)),
        };
        let seqs = match &body {
            Body::Request(r) => r
                .ranges
                .iter()
                .map(|r| r.1.saturating_sub(r.0).saturating_add(1))
                .sum(),
            _ => 0,
        };
        let packet = Packet { lobby, body };
        let len = match own {
            Some(own) => self.outbox.push_own(dest, own, &packet),
            None => self.outbox.push(dest, &packet),
        } as u64;
        let s = &mut self.stats;
        match own {
            Some(Own::Data) => s.data_sent += 1,
            Some(Own::Session) => s.sessions_sent += 1,
            Some(Own::Heartbeat) => s.heartbeats_sent += 1,
            Some(Own::Repair) => {
                s.repairs_sent += 1;
                s.repair_bytes_out += len;
            }
            None => {
                s.requests_sent += 1;
                s.request_seqs += seqs;
                s.request_bytes_out += len;
            }
        }
    }

    /// Queues another writer's bundle for `dest`, whole: forwarded, or as a repair if it
    /// names a repairer.
    pub fn send_bundle(&mut self, dest: Dest, bundle: &Bundle) {
        let len = self.outbox.push_bundle(dest, bundle) as u64;
        if bundle.repairer.is_some() {
            self.stats.repairs_sent += 1;
            self.stats.repair_bytes_out += len;
        }
    }

    /// A duration uniform in [lo·d, hi·d].
    pub fn uniform(&mut self, lo: f64, hi: f64, d: Duration) -> Duration {
        let f = if hi > lo {
            self.rng.random_range(lo..hi)
        } else {
            lo
        };
        d.mul_f64(f.max(0.0))
    }

    /// The session timestamp clock: microseconds since the node started.
    pub fn micros(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Wall clock at `now`, Unix milliseconds.
    pub fn wall_ms(&self, now: Instant) -> u64 {
        let (at, ms) = self.wall;
        if now >= at {
            ms.saturating_add((now - at).as_millis() as u64)
        } else {
            ms.saturating_sub((at - now).as_millis() as u64)
        }
    }

    pub fn record_recovery(&mut self, delay: Duration) {
        self.stats.recovered += 1;
        if let Some(v) = &mut self.recovery
            && v.len() < 10_000_000
        {
            v.push(delay);
        }
    }
}
