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
    /// Requests sent for one missing packet, once its source is gone, before it is given up
    /// as lost. While the source is alive and holds the packet, requests go on.
    pub max_request_rounds: u32,
    /// A packet missing this long is given up, whoever is alive.
    pub give_up_after: Duration,
    /// What a peer's packets buy: each adds this many times its bytes to the peer's repair
    /// credit (repairs this node sends for its requests) and, if it is a source, to its
    /// request credit (requests this node sends for its packets).
    pub credit_factor: u64,
    /// Most request credit a source can hold, in bytes.
    pub request_credit_cap: u64,
    /// Most repair credit a peer can hold, in bytes.
    pub repair_credit_cap: u64,
    /// A `heard` claim of another member opens gaps at most this many sequence numbers past
    /// the highest actually received from the source.
    pub claim_reach: u64,
    /// Flow window: a source's next packet must be less than this many sequence numbers past
    /// the lowest one a live member still lacks.
    pub flow_window: u64,
    /// Flow window in bytes of bodies held from that lowest packet on.
    pub flow_window_bytes: usize,
    /// Pace at start, in bytes of datagrams per second; it then follows the members (AIMD,
    /// PROTOCOL.md 6.9) between the two bounds below.
    pub pace_initial: f64,
    /// Least pace, bytes per second.
    pub pace_min: f64,
    /// Greatest pace, bytes per second.
    pub pace_max: f64,
    /// Most bytes of datagrams waiting for the pace before new messages wait too.
    pub pace_backlog: usize,
    /// A member not heard this long stops holding back the flow window (it died or left).
    pub flow_timeout: Duration,
    /// A member heard but without progress this long stops holding back the flow window (it
    /// is stuck); it catches up through repair while the source still holds what it lacks.
    pub flow_stuck_timeout: Duration,
    /// Longest a member waits after receiving new data before it reports its progress.
    pub report_delay: Duration,
    /// Progress (packets of one source) worth a report of its own; less waits for the next
    /// periodic session.
    pub report_stride: u64,
    /// Most own packets kept to answer requests (at least twice the flow window).
    pub own_store_packets: usize,
    /// Most bytes of own bodies kept to answer requests (at least twice the window's bytes).
    pub own_store_bytes: usize,
    /// A message whose sent-at time is further ahead of the wall clock is dropped.
    pub future_limit: Duration,
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
    /// Furthest behind a source's highest sequence number that a gap is still repaired; a
    /// longer jump is a restart. At least twice the flow window: a live member is never more
    /// than one window behind.
    pub max_gap: u64,
    /// Most of others' packets kept per lobby to answer requests.
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
    /// A progress report held back by a gap is repeated after this, once the source has sent
    /// a report stride more (PROTOCOL.md 6.9).
    pub report_repeat: Duration,
    /// Interval of a member's heartbeats (PROTOCOL.md 7.6).
    pub heartbeat_interval: Duration,
    /// A member known by heartbeats is gone after this without one (or anything else).
    pub presence_timeout: Duration,
    /// Interval of hellos to each friend (PROTOCOL.md 7.1).
    pub hello_interval: Duration,
    /// A friend not heard (or not hearing us) this long is down.
    pub link_timeout: Duration,
    /// Least time between two hellos sent at once to one friend in answer to its hellos.
    pub hello_answer_gap: Duration,
    /// Bytes per second of one writer's packets in one lobby that a node forwards to friends
    /// (PROTOCOL.md 7.4).
    pub forward_rate: f64,
    /// Burst of the forward limit, bytes.
    pub forward_burst: f64,
    /// Most transmits queued before the oldest are dropped (the runtime drains them).
    pub max_queued_transmits: usize,
    /// Longest randomised interval between two requests for one packet, however far the
    /// source seems (PROTOCOL.md 6.3).
    pub max_retry: Duration,
    /// Links one signed anchor vouches for at most under a burst (PROTOCOL.md 4.12); 0 signs
    /// every datagram.
    pub chain_length: usize,
    /// Link hashes of verified chains remembered (PROTOCOL.md 4.12).
    pub link_memory: usize,
    /// Links held for their anchor at most, per lobby, and for how long (PROTOCOL.md 4.13).
    pub link_wait: (usize, Duration),
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
            hinted_rounds: 4,
            hold_down: 3.0,
            max_request_rounds: 12,
            give_up_after: Duration::from_secs(120),
            credit_factor: 16,
            request_credit_cap: 64 << 10,
            repair_credit_cap: 256 << 10,
            claim_reach: 64,
            flow_window: 4096,
            flow_window_bytes: 4 << 20,
            flow_timeout: Duration::from_secs(3),
            flow_stuck_timeout: Duration::from_secs(10),
            pace_initial: 8e6,
            pace_min: 128e3,
            pace_max: 128e6,
            pace_backlog: 64 << 10,
            report_delay: Duration::from_millis(10),
            report_stride: 64,
            own_store_packets: 8192,
            own_store_bytes: 8 << 20,
            future_limit: Duration::from_secs(600),
            session_interval: Duration::from_secs(1),
            session_per_member: Duration::from_millis(20),
            tail_session_delay: Duration::from_millis(20),
            hold_back: Duration::from_secs(1),
            backlog: 64,
            max_gap: 8192,
            store_packets: 4096,
            store_bytes: 4 << 20,
            dedup_window: Duration::from_secs(30 * 60),
            dedup_capacity: 1 << 18,
            clock_skew: Duration::from_secs(60),
            late_after: Duration::from_secs(2),
            reassembly_slots: 256,
            reassembly_bytes: 4 << 20,
            reassembly_timeout: Duration::from_secs(30),
            peer_timeout: Duration::from_secs(30),
            max_peers: 1024,
            report_repeat: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(30),
            presence_timeout: Duration::from_secs(90),
            hello_interval: Duration::from_secs(5),
            link_timeout: Duration::from_secs(15),
            hello_answer_gap: Duration::from_millis(250),
            forward_rate: (1 << 20) as f64,
            forward_burst: (1 << 20) as f64,
            max_queued_transmits: 4096,
            max_retry: Duration::from_secs(1),
            chain_length: 7,
            link_memory: 32768,
            link_wait: (256, Duration::from_secs(1)),
            max_queued_events: 65536,
        }
    }
}
