//! One joined lobby: an SRM session. Sends and stores this node's data, finds and requests
//! what it misses, answers others' requests, and sends session messages.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::config::Config;
use super::event::{Event, Message};
use super::flow::Flow;
use super::fragment::{self, Refused};
use super::hash::SeededState;
use super::ids::{Lobby, LobbyId, MsgId, PeerId};
use super::own::OwnStore;
use super::shared::Shared;
use super::source::{Miss, Source};
use super::store::Store;
use super::timers::Timer;
use super::wire::{
    Acked, Body, Data, Echo, Heard, MAX_MESSAGE, MAX_NICK, MAX_REQUEST_RANGES, MAX_SESSION_ACKED,
    MAX_SESSION_ECHOES, MAX_SESSION_HEARD, Packet, Request, Sent, SeqRange, Session,
};

/// Most packets one request packet can make this node repair: what bounds the traffic a
/// peer can draw from it (the rest is asked for again in later rounds).
pub const MAX_REPAIRS_PER_REQUEST: usize = 16;

// A request never names more packets than it can draw, so its ranges always fit.
const _: () = assert!(MAX_REPAIRS_PER_REQUEST <= MAX_REQUEST_RANGES);

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// The lobby is not joined.
    #[error("not in lobby {0}")]
    NotJoined(LobbyId),
    /// The text is longer than the protocol carries.
    #[error("message is {0} bytes; the limit is {max} bytes", max = MAX_MESSAGE)]
    TooLong(usize),
    /// Nothing to send.
    #[error("message is empty")]
    Empty,
    /// This node's sequence numbers in the lobby are used up (a first number too close to
    /// the top was chosen); rejoining with a new peer id is the way out.
    #[error("sequence numbers exhausted")]
    SequenceExhausted,
    /// The flow-control window is full: members have not yet received enough of what this
    /// node sent. Nothing was sent; send again after [`crate::proto::Event::Writable`].
    #[error("flow-control window full; wait for members to catch up")]
    WindowFull,
}

#[derive(Debug)]
struct Peer {
    nick: String,
    last_heard: Instant,
    /// Smoothed one-way distance, from session echoes.
    distance: Option<Duration>,
    /// Timestamp of its last session message and when it arrived, to echo back.
    last_session: Option<(u64, Instant)>,
}

#[derive(Debug)]
pub(crate) struct LobbyState {
    pub lobby: Lobby,
    next_seq: u64,
    /// Own packets, kept for repair; the flow window relies on them.
    own: OwnStore,
    flow: Flow,
    /// Others' packets, kept for repair.
    store: Store,
    sources: HashMap<PeerId, Source, SeededState>,
    peers: HashMap<PeerId, Peer, SeededState>,
    /// Pending repair timers: deadline and the distance to the requester.
    repairs: HashMap<(PeerId, u64), (Instant, Duration), SeededState>,
    /// Requests for these are ignored until the instant given.
    hold_down: HashMap<(PeerId, u64), Instant, SeededState>,
    session_at: Instant,
    tail_at: Option<Instant>,
    /// Tail sessions sent since the last data.
    tails_sent: u32,
    last_data_at: Instant,
    heard_rotation: usize,
    echo_rotation: usize,
    /// Newest sent-at time shown, for the late mark.
    newest_shown: u64,
    /// When a progress report (a session) is due after new data arrived.
    report_at: Option<Instant>,
    missing_total: usize,
}

/// Session messages sent after a burst of data ends.
const TAIL_SESSIONS: u32 = 3;

/// Most missing packets tracked per lobby over all sources.
const MAX_MISSING: usize = 1 << 16;

impl LobbyState {
    pub fn new(lobby: Lobby, first_seq: u64, sh: &mut Shared, now: Instant) -> Self {
        let key = SeededState::new(
            rand::RngExt::random(&mut sh.rng),
            rand::RngExt::random(&mut sh.rng),
        );
        let h = || key;
        let session_at = now + sh.uniform(0.0, 1.0, Duration::from_millis(100));
        sh.timers.push(session_at, Timer::Session(lobby.id));
        LobbyState {
            next_seq: first_seq,
            own: OwnStore::new(sh.cfg.own_store_packets, sh.cfg.own_store_bytes),
            flow: Flow::new(now, sh.cfg.max_peers, h()),
            store: Store::new(sh.cfg.store_packets, sh.cfg.store_bytes, h()),
            sources: HashMap::with_hasher(h()),
            peers: HashMap::with_hasher(h()),
            repairs: HashMap::with_hasher(h()),
            hold_down: HashMap::with_hasher(h()),
            session_at,
            tail_at: None,
            tails_sent: 0,
            last_data_at: now,
            heard_rotation: 0,
            echo_rotation: 0,
            newest_shown: 0,
            report_at: None,
            missing_total: 0,
            lobby,
        }
    }

    fn id(&self) -> LobbyId {
        self.lobby.id
    }

    /// Distance used in timers for `peer`: measured or default, never below the floor.
    fn dist(&self, sh: &Shared, peer: PeerId) -> Duration {
        self.peers
            .get(&peer)
            .and_then(|p| p.distance)
            .unwrap_or(sh.cfg.default_distance)
            .max(sh.cfg.timer_floor)
    }

    fn alive(&self, sh: &Shared, peer: PeerId, now: Instant) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|p| now.saturating_duration_since(p.last_heard) < sh.cfg.peer_timeout)
    }

    /// Notes that `peer` was heard; `nick` is known from data and session packets only.
    fn touch(&mut self, sh: &mut Shared, now: Instant, peer: PeerId, nick: Option<&str>) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.last_heard = now;
            if let Some(n) = nick
                && p.nick != n
            {
                p.nick = n.to_owned();
            }
            return;
        }
        let Some(nick) = nick else { return };
        if self.peers.len() >= sh.cfg.max_peers {
            sh.stats.peers_refused += 1;
            return;
        }
        self.peers.insert(
            peer,
            Peer {
                nick: nick.to_owned(),
                last_heard: now,
                distance: None,
                last_session: None,
            },
        );
        sh.emit(Event::PeerJoined {
            lobby: self.id(),
            peer,
            nick: nick.to_owned(),
        });
    }

    // ---- sending -------------------------------------------------------------------------

    pub fn send_message(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        text: &str,
    ) -> Result<Message, SendError> {
        if text.is_empty() {
            return Err(SendError::Empty);
        }
        if text.len() > MAX_MESSAGE {
            return Err(SendError::TooLong(text.len()));
        }
        let count = fragment::piece_count(text.len()) as u16;
        if self.next_seq.checked_add(u64::from(count) + 1).is_none() {
            return Err(SendError::SequenceExhausted);
        }
        if !self.window_has_room(sh, now, u64::from(count), text.len()) {
            sh.stats.window_full += 1;
            self.flow.blocked = true;
            self.arm_flow_check(sh, now);
            return Err(SendError::WindowFull);
        }
        let msg_id = MsgId(rand::RngExt::random(&mut sh.rng));
        let sent_at = sh.wall_ms(now);
        let first = self.next_seq;
        for (i, piece) in fragment::split(text.as_bytes()).enumerate() {
            let data = Data {
                source: sh.me,
                seq: self.next_seq,
                msg_id,
                sent_at,
                nick: sh.nick.clone(),
                frag_index: i as u16,
                frag_count: count,
                body: piece.to_vec(),
            };
            self.next_seq += 1;
            sh.send(self.id(), Body::Data(data.clone()));
            self.own.insert(data);
        }
        sh.dedup.insert(now, msg_id);
        self.newest_shown = self.newest_shown.max(sent_at);
        self.last_data_at = now;
        self.tails_sent = 0;
        if self.tail_at.is_none() {
            let at = now + sh.cfg.tail_session_delay;
            self.tail_at = Some(at);
            sh.timers.push(at, Timer::Tail(self.id()));
        }
        Ok(Message {
            lobby: self.id(),
            source: sh.me,
            seq: first,
            msg_id,
            sent_at,
            nick: sh.nick.clone(),
            text: text.to_owned(),
            late: false,
        })
    }

    /// Puts a packet in the repair store it belongs to.
    fn keep(&mut self, me: PeerId, data: Data) {
        if data.source == me {
            self.own.insert(data);
        } else {
            self.store.insert(data, |_, _| {});
        }
    }

    /// A packet held for repair, own or others'.
    fn held(&self, me: PeerId, src: PeerId, seq: u64) -> Option<&Data> {
        if src == me {
            self.own.get(seq)
        } else {
            self.store.get(src, seq)
        }
    }

    /// The lowest own sequence number still held.
    fn own_low(&self) -> u64 {
        self.own.low().unwrap_or(self.next_seq).min(self.next_seq)
    }

    // ---- flow control --------------------------------------------------------------------

    /// Whether `packets` more packets with `bytes` of bodies fit in the flow window.
    fn window_has_room(&self, sh: &Shared, now: Instant, packets: u64, bytes: usize) -> bool {
        let floor = self
            .flow
            .floor(now, sh.cfg.flow_timeout, self.own_low(), self.next_seq);
        let end = self.next_seq.saturating_add(packets);
        end <= floor.saturating_add(sh.cfg.flow_window)
            && self.own.bytes_from(floor).saturating_add(bytes as u64)
                <= sh.cfg.flow_window_bytes as u64
    }

    /// While the window is full, wakes up when the member holding it back would time out.
    fn arm_flow_check(&mut self, sh: &mut Shared, now: Instant) {
        let at = self
            .flow
            .next_expiry(now, sh.cfg.flow_timeout, self.next_seq);
        if at.is_some() && at != self.flow.check_at {
            self.flow.check_at = at;
            if let Some(at) = at {
                sh.timers.push(at, Timer::Flow(self.id()));
            }
        }
    }

    /// Tells the application once the window of a refused send has room for a whole message
    /// of any size again.
    fn check_window(&mut self, sh: &mut Shared, now: Instant) {
        if !self.flow.blocked {
            return;
        }
        let room = u64::from(super::wire::MAX_FRAGMENTS).min(sh.cfg.flow_window);
        let bytes = MAX_MESSAGE.min(sh.cfg.flow_window_bytes);
        if self.window_has_room(sh, now, room, bytes) {
            self.flow.blocked = false;
            self.flow.check_at = None;
            sh.emit(Event::Writable { lobby: self.id() });
        } else {
            self.arm_flow_check(sh, now);
        }
    }

    pub fn on_flow_timer(&mut self, sh: &mut Shared, now: Instant, at: Instant) {
        if self.flow.check_at == Some(at) {
            self.flow.check_at = None;
            self.check_window(sh, now);
        }
    }

    /// New data arrived: report progress within the report delay.
    fn want_report(&mut self, sh: &mut Shared, now: Instant) {
        if self.report_at.is_none() {
            let at = now + sh.cfg.report_delay;
            self.report_at = Some(at);
            sh.timers.push(at, Timer::Report(self.id()));
        }
    }

    pub fn on_report_timer(&mut self, sh: &mut Shared, now: Instant, at: Instant) {
        if self.report_at != Some(at) {
            return;
        }
        self.report_at = None;
        if self.sources.values().any(|s| s.reported != Some(s.acked())) {
            self.send_session(sh, now);
        }
    }

    /// Takes back a message from history: it can be repaired again, and is not asked for.
    pub fn restore(&mut self, sh: &mut Shared, now: Instant, msg: &Message) {
        let count = fragment::piece_count(msg.text.len());
        if count > usize::from(super::wire::MAX_FRAGMENTS)
            || msg.seq.checked_add(count as u64 + 1).is_none()
        {
            return;
        }
        // The packets are rebuilt from the text, so they are the ones sent only if the text
        // is the body's exact bytes: always for own messages (sent from valid UTF-8), and for
        // others' when no invalid byte was replaced. Lossy ones are not served as repairs
        // (their source or another holder can); pieces are cut as every sender cuts them,
        // 1024 bytes but the last, which reassembly enforces.
        let exact = msg.source == sh.me || !msg.text.contains(char::REPLACEMENT_CHARACTER);
        let nick = truncate_at_char(&msg.nick, MAX_NICK);
        for (i, piece) in fragment::split(msg.text.as_bytes()).enumerate() {
            if !exact {
                break;
            }
            let data = Data {
                source: msg.source,
                seq: msg.seq + i as u64,
                msg_id: msg.msg_id,
                sent_at: msg.sent_at,
                nick: nick.to_owned(),
                frag_index: i as u16,
                frag_count: count as u16,
                body: piece.to_vec(),
            };
            self.keep(sh.me, data);
        }
        let end = msg.seq + count as u64;
        sh.dedup.insert(now, msg.msg_id);
        self.newest_shown = self.newest_shown.max(msg.sent_at);
        if msg.source == sh.me {
            self.next_seq = self.next_seq.max(end);
        } else {
            let src = self
                .sources
                .entry(msg.source)
                .or_insert_with(|| Source::new(end, now));
            if src.next < end && src.pending.is_empty() {
                let dropped = src.missing.range(..end).count();
                src.missing = src.missing.split_off(&end);
                self.missing_total -= dropped;
                src.next = end;
                src.base = src.base.max(end.saturating_sub(sh.cfg.backlog));
            }
            if src.top.is_none_or(|t| t < end - 1) {
                src.top = Some(end - 1);
            }
        }
    }

    // ---- receiving data ------------------------------------------------------------------

    /// A data packet, original or repaired by `repairer`.
    pub fn on_data(&mut self, sh: &mut Shared, now: Instant, data: Data, repairer: Option<PeerId>) {
        let (src_id, seq) = (data.source, data.seq);
        if seq == u64::MAX {
            // The last number is never used, so that one past any packet exists.
            sh.stats.duplicate_packets += 1;
            return;
        }
        match repairer {
            None => self.touch(sh, now, src_id, Some(&data.nick)),
            Some(r) => {
                self.touch(sh, now, r, None);
                sh.stats.repairs_heard += 1;
                if self.repairs.remove(&(src_id, seq)).is_some() {
                    sh.stats.repairs_suppressed += 1;
                }
                let hold = now + self.dist(sh, r).mul_f64(sh.cfg.hold_down);
                self.hold_down.insert((src_id, seq), hold);
            }
        }
        if !self.sources.contains_key(&src_id) {
            if !self.make_room_for_source(sh) {
                return;
            }
            // Start at the first fragment of this message, and want the backlog before it
            // (packets reordered ahead of this one included).
            let first = seq - u64::from(data.frag_index).min(seq);
            self.sources.insert(src_id, Source::new(first, now));
            self.backfill(sh, now, src_id, first.saturating_sub(sh.cfg.backlog));
        }
        let src = self.sources.get(&src_id).expect("present");
        if src.has(seq) {
            sh.stats.duplicate_packets += 1;
            return;
        }
        if seq > 0 {
            self.learn(sh, now, src_id, seq - 1);
        }
        self.keep(sh.me, data.clone());
        self.want_report(sh, now);
        let id = self.id();
        let src = self.sources.get_mut(&src_id).expect("present");
        src.last_active = now;
        if src.top.is_none_or(|t| t < seq) {
            src.top = Some(seq);
        }
        if src.received_top.is_none_or(|t| t < seq) {
            src.received_top = Some(seq);
            if src.claimed > seq {
                let upto = src.claimed.min(seq.saturating_add(sh.cfg.claim_reach));
                self.learn(sh, now, src_id, upto);
            }
        }
        let src = self.sources.get_mut(&src_id).expect("present");
        if let Some(miss) = src.missing.remove(&seq) {
            self.missing_total -= 1;
            sh.record_recovery(now.saturating_duration_since(miss.detected));
        }
        if seq < src.next {
            // Skipped past by the hold-back: show it now, marked late.
            src.shown_any = true;
            deliver(sh, now, id, &mut self.newest_shown, data, true);
            return;
        }
        src.pending.insert(seq, data);
        self.advance(sh, now, src_id);
    }

    /// Shows the source's pending packets that are next in order, and arms the hold-back
    /// when a missing one blocks the rest.
    fn advance(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId) {
        let id = self.id();
        let src = self.sources.get_mut(&src_id).expect("present");
        let start = src.next;
        while let Some(data) = src.pending.remove(&src.next) {
            src.next += 1;
            src.shown_any = true;
            deliver(sh, now, id, &mut self.newest_shown, data, false);
        }
        if src.pending.is_empty() {
            src.hold = None;
        } else if src.hold.is_none() || src.next != start {
            let at = now + sh.cfg.hold_back;
            src.hold = Some(at);
            sh.timers.push(at, Timer::HoldBack(id, src_id));
        }
    }

    /// The hold-back expired: show what waits, leaving the gap to be filled late.
    pub fn on_hold_back(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId, at: Instant) {
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        if src.hold != Some(at) {
            return;
        }
        src.hold = None;
        if let Some((&first, _)) = src.pending.first_key_value() {
            src.next = first;
        }
        self.advance(sh, now, src_id);
    }

    /// Learns that `source` has sent up to `highest`: whatever is not held is missing.
    fn learn(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId, highest: u64) {
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        let from = match src.top {
            Some(t) if highest <= t => return,
            Some(t) => t + 1,
            None => src.next,
        };
        src.top = Some(highest);
        if highest < from {
            return;
        }
        // A jump of more than max_gap is the source restarting with numbering it could not
        // continue (a crash that lost its lease): the numbers in between were never sent, so
        // nothing is asked for or waited on. Gaps already known before it are given up.
        if highest - from >= sh.cfg.max_gap {
            let floor = highest.saturating_add(1);
            let skipped = (highest - from).saturating_add(1);
            sh.stats.gaps_untracked = sh.stats.gaps_untracked.saturating_add(skipped);
            let id = self.lobby.id;
            let given_up = src.missing.range(..floor).count() as u64;
            src.missing = src.missing.split_off(&floor);
            self.missing_total -= given_up as usize;
            let waiting = src.pending.split_off(&floor);
            let early = std::mem::replace(&mut src.pending, waiting);
            src.next = floor;
            src.base = src.base.max(floor);
            src.first_heard = src.first_heard.max(floor);
            for (_, d) in early {
                deliver(sh, now, id, &mut self.newest_shown, d, false);
            }
            report_lost(sh, id, src_id, given_up, "source restarted");
        }
        let from = from.max(src.next);
        if from > highest {
            return;
        }
        let d = self.dist(sh, src_id);
        let delay = sh.uniform(sh.cfg.c1, sh.cfg.c1 + sh.cfg.c2, d);
        let deadline = now + delay;
        let id = self.lobby.id;
        let src = self.sources.get_mut(&src_id).expect("present");
        let range = from..highest.saturating_add(1);
        mark_missing(
            sh,
            now,
            &mut self.missing_total,
            (id, src_id),
            src,
            range,
            deadline,
        );
    }

    /// Lowers the source's base to `want_from`: packets between it and the old base become
    /// missing, and are shown late when they arrive.
    fn backfill(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId, want_from: u64) {
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        // Never below what was given up in a jump ahead (learn), never more than the backlog.
        let upto = src.base.min(src.first_heard);
        if want_from >= upto {
            return;
        }
        let d = self
            .peers
            .get(&src_id)
            .and_then(|p| p.distance)
            .unwrap_or(sh.cfg.default_distance)
            .max(sh.cfg.timer_floor);
        // Backlog is not urgent, and the source's next session may show that some of it does
        // not exist: wait past its tail session before asking.
        let deadline =
            now + sh.cfg.tail_session_delay * 2 + sh.uniform(sh.cfg.c1, sh.cfg.c1 + sh.cfg.c2, d);
        let key = (self.lobby.id, src_id);
        mark_missing(
            sh,
            now,
            &mut self.missing_total,
            key,
            src,
            want_from..upto,
            deadline,
        );
        src.base = want_from;
        if !src.shown_any {
            // Nothing shown yet: the backlog can still come first, in order.
            src.next = want_from;
        }
    }

    /// The source no longer holds anything below `low`: stop asking for it. What was live
    /// traffic (at or after the first packet heard) is lost; older backlog simply is not there.
    fn prune_below(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId, low: u64) {
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        if src.missing.first_key_value().is_none_or(|(&s, _)| s >= low) {
            return;
        }
        let keep = src.missing.split_off(&low);
        let gone = std::mem::replace(&mut src.missing, keep);
        self.missing_total -= gone.len();
        let lost = gone.keys().filter(|&&s| s >= src.first_heard).count() as u64;
        src.base = src.base.max(low.min(src.next));
        report_lost(
            sh,
            self.lobby.id,
            src_id,
            lost,
            "no longer held by its source",
        );
        if src.next < low && src.pending.first_key_value().is_none_or(|(&s, _)| s >= low) {
            src.next = low;
            src.base = low;
        }
        self.advance(sh, now, src_id);
    }

    /// Forgets an idle source of a peer that is gone, if the table is full. False if there is
    /// no room.
    fn make_room_for_source(&mut self, sh: &mut Shared) -> bool {
        if self.sources.len() < sh.cfg.max_peers {
            return true;
        }
        let victim = self
            .sources
            .iter()
            .filter(|(id, s)| s.idle() && !self.peers.contains_key(id))
            .min_by_key(|(id, s)| (s.last_active, **id))
            .map(|(id, _)| *id);
        match victim {
            Some(v) => {
                self.sources.remove(&v);
                true
            }
            None => {
                sh.stats.peers_refused += 1;
                false
            }
        }
    }

    // ---- requests and repairs ------------------------------------------------------------

    pub fn on_request(&mut self, sh: &mut Shared, now: Instant, req: Request) {
        sh.stats.requests_heard += 1;
        self.touch(sh, now, req.sender, None);
        let me = sh.me;
        let d_req = self.dist(sh, req.sender);
        let mut budget = MAX_REPAIRS_PER_REQUEST;
        let asked_me = req.hint.is_none_or(|h| h == me);
        let (lo, hi) = if req.hint == Some(me) {
            (sh.cfg.d1_hinted, sh.cfg.d1_hinted + sh.cfg.d2_hinted)
        } else {
            (sh.cfg.d1, sh.cfg.d1 + sh.cfg.d2)
        };
        // One request may make this node look at this many sequence numbers, whatever its
        // ranges say: the work a peer can cause is bounded like the traffic.
        let mut scan = sh.cfg.max_gap;
        for &SeqRange(first, last) in &req.ranges {
            if first > last || scan == 0 {
                continue;
            }
            // Our own gaps in the range: another member asked first, so back off (SRM).
            let d_src = self.dist(sh, req.source);
            let u = sh.uniform(0.0, 1.0, Duration::from_secs(1)).as_secs_f64();
            if let Some(src) = self.sources.get_mut(&req.source) {
                for (&seq, miss) in src.missing.range_mut(first..=last) {
                    if scan == 0 {
                        break;
                    }
                    scan -= 1;
                    if now < miss.ignore_until {
                        continue;
                    }
                    miss.backoff += 1;
                    rearm(&sh.cfg, miss, now, d_src, req.hint.is_some(), false, u);
                    sh.stats.requests_suppressed += 1;
                    sh.timers.push(
                        miss.deadline,
                        Timer::Request(self.lobby.id, req.source, seq),
                    );
                }
            }
            if !asked_me || budget == 0 {
                continue;
            }
            // What we hold of it: schedule repairs.
            for seq in first..=last {
                if budget == 0 || scan == 0 {
                    break;
                }
                scan -= 1;
                if self.held(me, req.source, seq).is_none() {
                    continue;
                }
                let key = (req.source, seq);
                if self.hold_down.get(&key).is_some_and(|&t| now < t)
                    || self.repairs.contains_key(&key)
                {
                    continue;
                }
                budget -= 1;
                let at = now + sh.uniform(lo, hi, d_req);
                self.repairs.insert(key, (at, d_req));
                sh.timers
                    .push(at, Timer::Repair(self.lobby.id, req.source, seq));
            }
        }
    }

    pub fn on_repair_timer(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        src: PeerId,
        seq: u64,
        at: Instant,
    ) {
        let key = (src, seq);
        match self.repairs.get(&key) {
            Some(&(t, d)) if t == at => {
                self.repairs.remove(&key);
                if let Some(data) = self.held(sh.me, src, seq) {
                    let body = Body::Repair {
                        repairer: sh.me,
                        data: data.clone(),
                    };
                    sh.send(self.lobby.id, body);
                    self.hold_down
                        .insert(key, now + d.mul_f64(sh.cfg.hold_down));
                }
            }
            _ => {}
        }
    }

    /// Whether a timer entry of this lobby is still current (not moved or cancelled).
    pub fn timer_live(&self, timer: Timer, at: Instant) -> bool {
        match timer {
            Timer::Request(_, src, seq) => self.request_due(src, seq, at),
            Timer::Repair(_, src, seq) => self.repairs.get(&(src, seq)).is_some_and(|r| r.0 == at),
            Timer::Session(_) => self.session_at == at,
            Timer::Tail(_) => self.tail_at == Some(at),
            Timer::HoldBack(_, src) => self.sources.get(&src).is_some_and(|s| s.hold == Some(at)),
            Timer::Report(_) => self.report_at == Some(at),
            Timer::Flow(_) => self.flow.check_at == Some(at),
            Timer::Housekeeping => false,
        }
    }

    /// Whether a request timer entry is current; if so it is part of the batch now due.
    pub fn request_due(&self, src: PeerId, seq: u64, at: Instant) -> bool {
        self.sources
            .get(&src)
            .and_then(|s| s.missing.get(&seq))
            .is_some_and(|m| m.deadline == at)
    }

    /// Sends requests for `seqs` (ascending, all due) of `src_id` and re-arms their timers.
    pub fn send_requests(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId, seqs: &[u64]) {
        let alive = self.alive(sh, src_id, now);
        let d = self.dist(sh, src_id);
        let id = self.lobby.id;
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        let mut hinted_seqs = Vec::new();
        let mut later = Vec::new();
        let mut given_up = 0;
        let u = sh.uniform(0.0, 1.0, Duration::from_secs(1)).as_secs_f64();
        for &seq in seqs {
            let Some(miss) = src.missing.get_mut(&seq) else {
                continue;
            };
            // While its source is alive it still holds what is missing (flow control), so
            // only a departed source's packets run out of rounds; nothing waits forever.
            if !alive {
                miss.rounds_gone += 1;
            }
            if miss.rounds_gone > sh.cfg.max_request_rounds
                || now.saturating_duration_since(miss.detected) >= sh.cfg.give_up_after
            {
                src.missing.remove(&seq);
                given_up += 1;
                continue;
            }
            let hinted = miss.round < sh.cfg.hinted_rounds && alive;
            if hinted {
                hinted_seqs.push(seq);
            } else {
                later.push(seq);
            }
            miss.round += 1;
            rearm(&sh.cfg, miss, now, d, hinted, true, u);
            sh.timers
                .push(miss.deadline, Timer::Request(id, src_id, seq));
        }
        self.missing_total -= given_up as usize;
        report_lost(sh, id, src_id, given_up, "requests unanswered");
        for (seqs, hint) in [(hinted_seqs, Some(src_id)), (later, None)] {
            // No more per request than one request can draw (MAX_REPAIRS_PER_REQUEST), so that
            // a long gap is answered in one round by several requests.
            for chunk in seqs.chunks(MAX_REPAIRS_PER_REQUEST) {
                let packet = Packet {
                    lobby: id,
                    body: Body::Request(Request {
                        sender: sh.me,
                        source: src_id,
                        hint,
                        ranges: to_ranges(chunk),
                    }),
                };
                // The source's own packets pay for requests about it (PROTOCOL.md 6.3):
                // claims about a silent or invented source cannot start a storm.
                let cost = packet.encoded_len() as u64;
                if src.credit < cost {
                    // Re-armed as if sent: the backoff grows, so an unpaid claim costs little
                    // work too.
                    sh.stats.requests_deferred += 1;
                    continue;
                }
                src.credit -= cost;
                sh.send(id, packet.body);
            }
        }
    }

    /// Credits a member's share of a datagram to its request credit, if it is a source.
    pub fn credit(&mut self, sh: &Shared, sender: PeerId, bytes: u64) {
        if let Some(src) = self.sources.get_mut(&sender) {
            src.credit = src
                .credit
                .saturating_add(bytes.saturating_mul(sh.cfg.request_credit_factor))
                .min(sh.cfg.request_credit_cap);
        }
    }

    // ---- sessions ------------------------------------------------------------------------

    pub fn on_session_timer(&mut self, sh: &mut Shared, now: Instant, at: Instant) {
        if at != self.session_at {
            return;
        }
        self.send_session(sh, now);
        let members = self.peers.len() as u32 + 1;
        let base = sh
            .cfg
            .session_interval
            .max(sh.cfg.session_per_member * members);
        self.session_at = now + sh.uniform(0.5, 1.5, base);
        sh.timers
            .push(self.session_at, Timer::Session(self.lobby.id));
    }

    pub fn on_tail_timer(&mut self, sh: &mut Shared, now: Instant, at: Instant) {
        if self.tail_at != Some(at) {
            return;
        }
        // Tail sessions follow the last data at 1, 2 and 4 times the delay (as PGM's SPMs
        // do), so that a lost last packet is found even if one of them is lost too.
        let due = self.last_data_at + sh.cfg.tail_session_delay * (1 << self.tails_sent);
        if due > now {
            self.tail_at = Some(due);
            sh.timers.push(due, Timer::Tail(self.lobby.id));
            return;
        }
        self.send_session(sh, now);
        self.tails_sent += 1;
        if self.tails_sent < TAIL_SESSIONS {
            let next = self.last_data_at + sh.cfg.tail_session_delay * (1 << self.tails_sent);
            self.tail_at = Some(next);
            sh.timers.push(next, Timer::Tail(self.lobby.id));
        } else {
            self.tail_at = None;
        }
    }

    fn send_session(&mut self, sh: &mut Shared, now: Instant) {
        let sent = Sent {
            low: self.own_low(),
            next: self.next_seq,
        };
        // Progress for the sources' flow control: those heard from most recently first.
        let mut recent: Vec<(Instant, PeerId)> = self
            .sources
            .iter()
            .map(|(id, s)| (s.last_active, *id))
            .collect();
        if recent.len() > MAX_SESSION_ACKED {
            recent.select_nth_unstable_by(MAX_SESSION_ACKED - 1, |a, b| b.cmp(a));
            recent.truncate(MAX_SESSION_ACKED);
        }
        recent.sort_unstable_by_key(|&(_, id)| id);
        let acked: Vec<Acked> = recent
            .into_iter()
            .filter_map(|(_, id)| {
                let src = self.sources.get_mut(&id)?;
                let next = src.acked();
                src.reported = Some(next);
                Some(Acked(id, next))
            })
            .collect();
        // A report due now goes out with this session.
        self.report_at = None;
        let mut heard: Vec<Heard> = self
            .sources
            .iter()
            .filter_map(|(id, s)| s.top.map(|t| Heard(*id, t)))
            .collect();
        heard.sort_unstable_by_key(|h| h.0);
        let heard = rotate(&heard, &mut self.heard_rotation, MAX_SESSION_HEARD);
        let mut echoes: Vec<Echo> = self
            .peers
            .iter()
            .filter_map(|(id, p)| {
                let (ts, at) = p.last_session?;
                (now.saturating_duration_since(at) < sh.cfg.peer_timeout).then(|| Echo {
                    peer: *id,
                    timestamp: ts,
                    delay: now.saturating_duration_since(at).as_micros() as u64,
                })
            })
            .collect();
        echoes.sort_unstable_by_key(|e| e.peer);
        let echoes = rotate(&echoes, &mut self.echo_rotation, MAX_SESSION_ECHOES);
        let body = Body::Session(Session {
            sender: sh.me,
            nick: sh.nick.clone(),
            timestamp: sh.micros(now),
            sent,
            heard,
            echoes,
            acked,
        });
        sh.send(self.lobby.id, body);
    }

    pub fn on_session(&mut self, sh: &mut Shared, now: Instant, s: Session) {
        self.touch(sh, now, s.sender, Some(&s.nick));
        let me = sh.me;
        if let Some(p) = self.peers.get_mut(&s.sender) {
            p.last_session = Some((s.timestamp, now));
            if let Some(e) = s.echoes.iter().find(|e| e.peer == me) {
                let rtt = sh
                    .micros(now)
                    .saturating_sub(e.timestamp)
                    .saturating_sub(e.delay);
                let sample = Duration::from_micros(rtt / 2);
                p.distance = Some(match p.distance {
                    None => sample,
                    Some(d) => (d * 7 + sample) / 8,
                });
            }
        }
        // What the source still holds, within the backlog, is worth asking for: this is how
        // a late joiner gets recent history, and how a first packet lost before any later one
        // arrived is found.
        let Sent { low, next } = s.sent;
        if !self.sources.contains_key(&s.sender) {
            if !self.make_room_for_source(sh) {
                return;
            }
            self.sources.insert(s.sender, Source::new(next, now));
        }
        self.forget_above(s.sender, next);
        if next > 0 {
            self.claim(sh, now, s.sender, next - 1);
        }
        self.prune_below(sh, now, s.sender, low);
        let first_heard = self.sources[&s.sender].first_heard;
        let want_from = low.max(first_heard.saturating_sub(sh.cfg.backlog));
        self.backfill(sh, now, s.sender, want_from);
        for Heard(src_id, high) in s.heard {
            if src_id != me && self.sources.contains_key(&src_id) {
                self.claim(sh, now, src_id, high);
            }
        }
        if let Some(&Acked(_, next)) = s.acked.iter().find(|a| a.0 == me) {
            self.flow.on_report(now, s.sender, next, self.next_seq);
            self.check_window(sh, now);
        }
    }

    /// A session says `src_id` has sent up to `high`. Unbacked by data, a claim opens gaps
    /// only claim reach past the highest packet received from the source (or where this node
    /// started on it); the rest is opened as data arrives (PROTOCOL.md 6.2). So a forged claim
    /// costs little traffic and little work.
    fn claim(&mut self, sh: &mut Shared, now: Instant, src_id: PeerId, high: u64) {
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        src.claimed = src.claimed.max(high);
        let from = src
            .received_top
            .unwrap_or_else(|| src.first_heard.saturating_sub(1));
        self.learn(
            sh,
            now,
            src_id,
            high.min(from.saturating_add(sh.cfg.claim_reach)),
        );
    }

    /// The source's own session says it numbers its next packet `next`: nothing at or above
    /// it was sent, whatever others claimed. Those gaps are forgotten, not lost.
    fn forget_above(&mut self, src_id: PeerId, next: u64) {
        let Some(src) = self.sources.get_mut(&src_id) else {
            return;
        };
        src.claimed = src.claimed.min(next.saturating_sub(1));
        if src.top.is_none_or(|t| t < next) {
            return;
        }
        let gone = src.missing.split_off(&next);
        self.missing_total -= gone.len();
        let below = next.checked_sub(1);
        src.top = match (below, src.received_top) {
            (Some(b), Some(r)) => Some(b.max(r)),
            (b, r) => b.or(r),
        };
    }

    // ---- upkeep --------------------------------------------------------------------------

    pub fn housekeeping(&mut self, sh: &mut Shared, now: Instant) {
        self.hold_down.retain(|_, t| *t > now);
        self.flow.expire(now, sh.cfg.flow_timeout * 10);
        let timeout = sh.cfg.peer_timeout;
        let gone: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_heard) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        for peer in gone {
            self.peers.remove(&peer);
            sh.emit(Event::PeerLeft {
                lobby: self.lobby.id,
                peer,
            });
        }
    }

    /// (next, top, base, pending, missing) of a source, for tests and diagnostics.
    pub fn source_progress(&self, src: PeerId) -> Option<(u64, Option<u64>, u64, usize, usize)> {
        self.sources
            .get(&src)
            .map(|s| (s.next, s.top, s.base, s.pending.len(), s.missing.len()))
    }

    /// Nicks of the members heard within the peer timeout.
    pub fn members(&self) -> impl Iterator<Item = (PeerId, &str)> {
        self.peers.iter().map(|(id, p)| (*id, p.nick.as_str()))
    }
}

/// Counts packets given up and tells the application, if there are any.
fn report_lost(sh: &mut Shared, lobby: LobbyId, source: PeerId, count: u64, why: &str) {
    if count > 0 {
        tracing::debug!(%lobby, %source, count, why, "giving up packets");
        sh.stats.lost += count;
        sh.emit(Event::Lost {
            lobby,
            source,
            count,
        });
    }
}

/// Marks the packets `range` of a source missing, all with one request deadline, except those
/// held or already missing, within the lobby's bound on missing packets.
fn mark_missing(
    sh: &mut Shared,
    now: Instant,
    missing_total: &mut usize,
    (lobby, src_id): (LobbyId, PeerId),
    src: &mut Source,
    range: std::ops::Range<u64>,
    deadline: Instant,
) {
    let end = range.end;
    for seq in range {
        if *missing_total >= MAX_MISSING {
            sh.stats.gaps_untracked = sh.stats.gaps_untracked.saturating_add(end - seq);
            break;
        }
        // Below the base only backfill asks, for packets not held by definition.
        if src.missing.contains_key(&seq) || (seq >= src.base && src.has(seq)) {
            continue;
        }
        src.missing.insert(
            seq,
            Miss {
                deadline,
                round: 0,
                backoff: 0,
                ignore_until: now,
                detected: now,
                rounds_gone: 0,
            },
        );
        *missing_total += 1;
        sh.stats.gaps_detected += 1;
        sh.timers.push(deadline, Timer::Request(lobby, src_id, seq));
    }
}

/// Re-arms a missing packet's request timer after a request for it was sent or heard: first
/// the time the answer takes to come back (request and repair each cross one distance, plus
/// the repair timer), then a randomised interval, doubled for each round and backoff. A
/// member that heard another's request draws from SRM's full [C1, C1+C2] window: the
/// members that share a loss must spread out so that one asks. A member retrying its own
/// request draws from [C1, C1+1]: it retries because the repair or its request was lost,
/// which few members share, so a narrow window costs little suppression and saves delay.
///
/// `u` in [0, 1) is drawn once per batch (a request sent or heard), so that the packets of one
/// gap keep one deadline per round and go on being asked for together, in ranges.
fn rearm(
    cfg: &Config,
    miss: &mut Miss,
    now: Instant,
    d: Duration,
    hinted: bool,
    own: bool,
    u: f64,
) {
    let answer = if hinted {
        2.0 + cfg.d1_hinted + cfg.d2_hinted
    } else {
        2.0 + cfg.d1 + cfg.d2
    };
    let exp = f64::from(1u32 << (miss.round + miss.backoff).saturating_sub(1).min(6));
    let spread = if own { 1.0 } else { cfg.c2 };
    let wait = d.mul_f64(answer + (cfg.c1 + spread * u) * exp);
    miss.deadline = now + wait;
    miss.ignore_until = now + wait / 2;
}

/// Passes a packet to reassembly and shows the message it completes.
fn deliver(
    sh: &mut Shared,
    now: Instant,
    lobby: LobbyId,
    newest_shown: &mut u64,
    data: Data,
    late: bool,
) {
    let done = match sh.reassembly.insert(now, lobby, data, late) {
        Ok(Some(done)) => done,
        Ok(None) => return,
        Err(Refused::Inconsistent) => {
            sh.stats.bad_fragments += 1;
            return;
        }
    };
    let d = done.data;
    let age_limit = (sh.cfg.dedup_window + sh.cfg.clock_skew).as_millis() as u64;
    let wall = sh.wall_ms(now);
    if wall.saturating_sub(d.sent_at) > age_limit {
        sh.stats.too_old += 1;
        return;
    }
    // A far-future time would stay in the dedup window forever and mark every later message
    // late (PROTOCOL.md 6.6).
    if d.sent_at.saturating_sub(wall) > sh.cfg.future_limit.as_millis() as u64 {
        sh.stats.too_new += 1;
        return;
    }
    if !sh.dedup.insert(now, d.msg_id) {
        sh.stats.duplicate_messages += 1;
        return;
    }
    let late_ms = sh.cfg.late_after.as_millis() as u64;
    let late = done.late || d.sent_at.saturating_add(late_ms) < *newest_shown;
    *newest_shown = (*newest_shown).max(d.sent_at);
    sh.stats.delivered += 1;
    sh.stats.late += u64::from(late);
    sh.emit(Event::Message(Message {
        lobby,
        source: d.source,
        seq: d.seq,
        msg_id: d.msg_id,
        sent_at: d.sent_at,
        nick: d.nick,
        text: String::from_utf8_lossy(&d.body).into_owned(),
        late,
    }));
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_at_char(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Ascending sequence numbers as inclusive ranges.
fn to_ranges(seqs: &[u64]) -> Vec<SeqRange> {
    let mut out: Vec<SeqRange> = Vec::new();
    for &s in seqs {
        match out.last_mut() {
            Some(r) if r.1.checked_add(1) == Some(s) => r.1 = s,
            _ => out.push(SeqRange(s, s)),
        }
    }
    out
}

/// Up to `max` items starting at `*pos`, wrapping; advances `*pos`.
fn rotate<T: Copy>(items: &[T], pos: &mut usize, max: usize) -> Vec<T> {
    if items.len() <= max {
        return items.to_vec();
    }
    let start = *pos % items.len();
    *pos = (start + max) % items.len();
    items
        .iter()
        .cycle()
        .skip(start)
        .take(max)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicks_are_cut_by_bytes_on_a_char_boundary() {
        assert_eq!(truncate_at_char("ada", 32), "ada");
        let long = "é".repeat(20); // 40 bytes
        let cut = truncate_at_char(&long, 32);
        assert_eq!(cut.len(), 32);
        assert_eq!(truncate_at_char("aé", 2), "a");
    }

    #[test]
    fn ranges_merge_runs() {
        assert_eq!(
            to_ranges(&[1, 2, 3, 5, 7, 8]),
            vec![SeqRange(1, 3), SeqRange(5, 5), SeqRange(7, 8)]
        );
        assert!(to_ranges(&[]).is_empty());
    }

    #[test]
    fn rotation_covers_everything() {
        let items: Vec<u32> = (0..10).collect();
        let mut pos = 0;
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.extend(rotate(&items, &mut pos, 4));
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen, items);
    }
}
