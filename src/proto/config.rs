//! Tunable parameters of the core, with defaults for a LAN.

use std::time::Duration;

/// Every knob of the protocol core. The defaults suit a switched LAN; the simulator and the
/// benchmark set their own.
#[derive(Clone, Debug)]
pub struct Config {
    /// Lower bound on the distance used in every SRM timer. On a LAN the one-way distance is
    /// tens of microseconds, less than scheduling noise; without a floor the randomised timers
    /// collapse and suppression stops working.
    pub timer_floor: Duration,
    /// Distance assumed for a peer before session messages have measured it.
    pub default_distance: Duration,
    /// SRM request timer: uniform in [c1·d, (c1+c2)·d], d = distance to the source.
    pub c1: f64,
    /// See [`Config::c1`].
    pub c2: f64,
    /// SRM repair timer of a member the request did not name: uniform in [d1·d, (d1+d2)·d],
    /// d = distance to the requester.
    pub d1: f64,
    /// See [`Config::d1`].
    pub d2: f64,
    /// Repair timer of the member a request names as its hint (see PROTOCOL.md): it answers
    /// first, so the others need not race.
    pub d1_hinted: f64,
    /// See [`Config::d1_hinted`].
    pub d2_hinted: f64,
    /// Rounds of requests that name the source as the member to answer, while it is alive;
    /// later rounds let any holder answer.
    pub hinted_rounds: u32,
    /// After a repair is sent or heard, requests for that data are ignored for this many
    /// distances to the repairer.
    pub hold_down: f64,
    /// Requests sent for one missing packet before it is given up as lost.
    pub max_request_rounds: u32,
    /// Least interval between two session messages of this node in one lobby while others are
    /// present; grows with the member count so that sessions stay a small share of traffic.
    pub session_interval: Duration,
    /// Session interval share per member: interval = max(session_interval, members × this).
    pub session_per_member: Duration,
    /// After sending data, a session message follows this long after the last packet, so
    /// that a lost last packet is detected at once (tail loss).
    pub tail_session_delay: Duration,
    /// Longest a message waits for an earlier missing one of the same source before it is
    /// shown anyway (the earlier one is then shown late, when it arrives).
    pub hold_back: Duration,
    /// How many of a source's packets before the first one heard a node asks for: the
    /// backlog a late joiner gets (at least one whole message of the largest size).
    pub backlog: u64,
    /// Furthest behind a source's highest sequence number that a gap is still repaired.
    pub max_gap: u64,
    /// Most packets kept per lobby to answer requests.
    pub store_packets: usize,
    /// Most body bytes kept per lobby to answer requests.
    pub store_bytes: usize,
    /// How long a message id is remembered, and how old (past its sent-at time plus
    /// [`Config::clock_skew`]) a message may be and still be shown.
    pub dedup_window: Duration,
    /// Most message ids remembered.
    pub dedup_capacity: usize,
    /// Allowance for clocks that disagree, added to the age limit.
    pub clock_skew: Duration,
    /// A message older than the newest one shown by more than this is marked late.
    pub late_after: Duration,
    /// Most incomplete messages being reassembled at once.
    pub reassembly_slots: usize,
    /// Most bytes held by incomplete messages.
    pub reassembly_bytes: usize,
    /// An incomplete message is dropped this long after its first fragment arrived.
    pub reassembly_timeout: Duration,
    /// A peer not heard for this long is reported gone.
    pub peer_timeout: Duration,
    /// Most peers tracked per lobby (each costs distance and source state).
    pub max_peers: usize,
    /// Most transmits queued before the oldest are dropped (the runtime drains them).
    pub max_queued_transmits: usize,
    /// Most events queued before the oldest are dropped (the runtime drains them).
    pub max_queued_events: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timer_floor: Duration::from_millis(2),
            default_distance: Duration::from_millis(5),
            c1: 0.5,
            c2: 9.0,
            d1: 1.0,
            d2: 8.0,
            d1_hinted: 0.0,
            d2_hinted: 0.5,
            hinted_rounds: 2,
            hold_down: 3.0,
            max_request_rounds: 12,
            session_interval: Duration::from_secs(1),
            session_per_member: Duration::from_millis(20),
            tail_session_delay: Duration::from_millis(20),
            hold_back: Duration::from_secs(1),
            backlog: 64,
            max_gap: 4096,
            store_packets: 8192,
            store_bytes: 8 << 20,
            dedup_window: Duration::from_secs(30 * 60),
            dedup_capacity: 1 << 18,
            clock_skew: Duration::from_secs(60),
            late_after: Duration::from_secs(2),
            reassembly_slots: 256,
            reassembly_bytes: 4 << 20,
            reassembly_timeout: Duration::from_secs(30),
            peer_timeout: Duration::from_secs(30),
            max_peers: 1024,
            max_queued_transmits: 4096,
            max_queued_events: 65536,
        }
    }
}
