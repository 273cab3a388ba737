//! Counters the core keeps: what it received, dropped, sent and recovered.

/// Counters since the node started. Everything dropped is counted somewhere here.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Datagrams handed to the node.
    pub datagrams_in: u64,
    /// Packets decoded from them.
    pub packets_in: u64,
    /// Datagrams cut short by a malformed or invalid packet.
    pub malformed: u64,
    /// Packets of another protocol version, skipped.
    pub unknown_version: u64,
    /// Packets of a reserved or unknown kind, skipped.
    pub unsupported_kind: u64,
    /// Packets for lobbies this node has not joined.
    pub foreign_lobby: u64,
    /// Packets this node sent that came back to it (multicast loopback).
    pub own_packets: u64,
    /// Data and repair packets already received.
    pub duplicate_packets: u64,
    /// Whole messages whose id was already seen.
    pub duplicate_messages: u64,
    /// Messages dropped because they were older than the dedup window.
    pub too_old: u64,
    /// Messages dropped because their sent-at time was too far in the future.
    pub too_new: u64,
    /// Requests not sent (deferred) because the source's request credit was spent.
    pub requests_deferred: u64,
    /// Sends refused because the flow window was full.
    pub window_full: u64,
    /// Sends refused because datagrams were waiting for the pace.
    pub paced: u64,
    /// Incomplete messages dropped by reassembly (a bound reached or timed out).
    pub reassembly_dropped: u64,
    /// Fragments that disagreed with others of their message.
    pub bad_fragments: u64,
    /// Messages delivered to the application.
    pub delivered: u64,
    /// Of those, marked late.
    pub late: u64,
    /// Missing packets detected.
    pub gaps_detected: u64,
    /// Missing packets that arrived after being detected.
    pub recovered: u64,
    /// Missing packets given up.
    pub lost: u64,
    /// Gaps not tracked because a bound was reached.
    pub gaps_untracked: u64,
    /// New peers or sources refused because a bound was reached.
    pub peers_refused: u64,
    /// Original data packets sent.
    pub data_sent: u64,
    /// Session packets sent.
    pub sessions_sent: u64,
    /// Request packets sent.
    pub requests_sent: u64,
    /// Seqs named by the requests sent: more than the gaps found means seqs asked for again.
    pub request_seqs: u64,
    /// Repair packets sent.
    pub repairs_sent: u64,
    /// Presence heartbeats sent.
    pub heartbeats_sent: u64,
    /// Presence heartbeats heard (once each).
    pub heartbeats_heard: u64,
    /// Challenge values sent to friends (PROTOCOL.md 7.7).
    pub challenges_sent: u64,
    /// Challenges from friends evaluated.
    pub challenges_heard: u64,
    /// Challenges from friends dropped unevaluated (too soon after the last).
    pub challenges_ignored: u64,
    /// Challenges that matched a lobby of this node.
    pub challenge_matches: u64,
    /// Unicast datagrams from addresses that are not friends, dropped.
    pub unicast_refused: u64,
    /// Hellos sent to friends.
    pub hellos_sent: u64,
    /// Hellos received from friends.
    pub hellos_heard: u64,
    /// Data packets sent to friends by unicast (own and forwarded).
    pub forwarded: u64,
    /// Packets from friends dropped unheld because their writer's forward budget was spent.
    pub forward_throttled: u64,
    /// Friends asked to stop pushing data (they sent duplicates).
    pub prunes: u64,
    /// Friends asked to push data again (a gap they could fill).
    pub grafts: u64,
    /// Requests heard from others.
    pub requests_heard: u64,
    /// Repairs heard from others.
    pub repairs_heard: u64,
    /// Request timers backed off on hearing another member's request.
    pub requests_suppressed: u64,
    /// Repairs not scheduled because the requester's repair credit was spent.
    pub repairs_refused: u64,
    /// Repair timers cancelled on hearing another member's repair.
    pub repairs_suppressed: u64,
    /// Bytes of the datagrams handed to the node.
    pub bytes_in: u64,
    /// Bytes of the request packets sent.
    pub request_bytes_out: u64,
    /// Bytes of the repair packets sent.
    pub repair_bytes_out: u64,
    /// Datagrams handed to the runtime.
    pub datagrams_out: u64,
    /// Bytes in them.
    pub bytes_out: u64,
    /// Data, session, heartbeat and repair packets dropped because they came outside a
    /// signed bundle (PROTOCOL.md 4.12).
    pub unsigned: u64,
    /// Bundles dropped because the key, the source or the signature did not hold.
    pub bad_signatures: u64,
    /// Bundles dropped because what they held was not their writer's own, of one kind.
    pub bad_bundles: u64,
    /// Bundles whose signature was checked.
    pub bundles_verified: u64,
    /// Bundles taken without a second check: verified recently.
    pub bundles_remembered: u64,
    /// Bundles this node signed.
    pub bundles_sealed: u64,
    /// Links this node sent, vouched for by its anchors instead of signed (PROTOCOL.md 4.13).
    pub links_sent: u64,
    /// Links taken because a verified chain listed their hash.
    pub links_vouched: u64,
    /// Links held for their anchor on arrival.
    pub links_held: u64,
    /// Held links dropped unvouched: they waited too long, made room, or their anchor came
    /// without them (forged, or the anchor was repaired without its chain).
    pub links_dropped: u64,
    /// Envelopes this node sealed: datagrams of its private lobbies (PROTOCOL.md 4.14).
    pub envelopes_sealed: u64,
    /// Envelopes opened under a key this node holds.
    pub envelopes_opened: u64,
    /// Envelopes of private lobbies this node holds no key for, skipped.
    pub envelopes_skipped: u64,
    /// Envelopes that did not open under their lobby's key (forged, or changed), dropped.
    pub envelopes_forged: u64,
    /// Packets of a private lobby that came outside an envelope, dropped (PROTOCOL.md 2.4).
    pub unsealed: u64,
    /// Items in an envelope that were not its lobby's packets, dropped.
    pub sealed_foreign: u64,
    /// Own direct messages sent (the first time; PROTOCOL.md 4.15).
    pub directs_sent: u64,
    /// Own direct messages sent again, not acknowledged yet.
    pub directs_retried: u64,
    /// Own direct messages given up, never acknowledged.
    pub directs_failed: u64,
    /// Direct messages to this node delivered (once each).
    pub directs_delivered: u64,
    /// Copies of direct messages to this node already delivered.
    pub directs_duplicate: u64,
    /// Others' direct messages placed on (PROTOCOL.md 7.10).
    pub directs_placed: u64,
    /// Direct messages dropped: placed before, forged, over budget, unknown content.
    pub directs_dropped: u64,
    /// Invitations to private lobbies sent, re-invitations included (PROTOCOL.md 7.11).
    pub invitations_sent: u64,
    /// Lobby lists heard (PROTOCOL.md 7.12).
    pub lists_heard: u64,
    /// Lobby lists sent to the discovery group.
    pub lists_sent: u64,
    /// Who-is queries from friends taken (PROTOCOL.md 7.13).
    pub whois_heard: u64,
    /// Who-is queries and answers dropped: seen before, over budget, or with no route back.
    pub whois_dropped: u64,
    /// Datagrams or events dropped because the runtime did not drain its queues.
    pub queue_overflow: u64,
}

impl std::ops::AddAssign<&Stats> for Stats {
    /// Sums counters, e.g. of several nodes. The destructuring names every field, so a new
    /// counter cannot be left out.
    fn add_assign(&mut self, o: &Stats) {
        let Stats {
            datagrams_in,
            packets_in,
            malformed,
            unknown_version,
            unsupported_kind,
            foreign_lobby,
            own_packets,
            duplicate_packets,
            duplicate_messages,
            too_old,
            too_new,
            requests_deferred,
            window_full,
            paced,
            reassembly_dropped,
            bad_fragments,
            delivered,
            late,
            gaps_detected,
            recovered,
            lost,
            gaps_untracked,
            peers_refused,
            data_sent,
            sessions_sent,
            requests_sent,
            request_seqs,
            repairs_sent,
            heartbeats_sent,
            heartbeats_heard,
            challenges_sent,
            challenges_heard,
            challenges_ignored,
            challenge_matches,
            unicast_refused,
            hellos_sent,
            hellos_heard,
            forwarded,
            forward_throttled,
            prunes,
            grafts,
            requests_heard,
            repairs_heard,
            requests_suppressed,
            repairs_refused,
            repairs_suppressed,
            bytes_in,
            request_bytes_out,
            repair_bytes_out,
            datagrams_out,
            bytes_out,
            unsigned,
            bad_signatures,
            bad_bundles,
            bundles_verified,
            bundles_remembered,
            bundles_sealed,
            links_sent,
            links_vouched,
            links_held,
            links_dropped,
            envelopes_sealed,
            envelopes_opened,
            envelopes_skipped,
            envelopes_forged,
            unsealed,
            sealed_foreign,
            directs_sent,
            directs_retried,
            directs_failed,
            directs_delivered,
            directs_duplicate,
            directs_placed,
            directs_dropped,
            invitations_sent,
            lists_heard,
            lists_sent,
            whois_heard,
            whois_dropped,
            queue_overflow,
        } = o;
        self.datagrams_in += datagrams_in;
        self.packets_in += packets_in;
        self.malformed += malformed;
        self.unknown_version += unknown_version;
        self.unsupported_kind += unsupported_kind;
        self.foreign_lobby += foreign_lobby;
        self.own_packets += own_packets;
        self.duplicate_packets += duplicate_packets;
        self.duplicate_messages += duplicate_messages;
        self.too_old += too_old;
        self.too_new += too_new;
        self.requests_deferred += requests_deferred;
        self.window_full += window_full;
        self.paced += paced;
        self.reassembly_dropped += reassembly_dropped;
        self.bad_fragments += bad_fragments;
        self.delivered += delivered;
        self.late += late;
        self.gaps_detected += gaps_detected;
        self.recovered += recovered;
        self.lost += lost;
        self.gaps_untracked += gaps_untracked;
        self.peers_refused += peers_refused;
        self.data_sent += data_sent;
        self.sessions_sent += sessions_sent;
        self.requests_sent += requests_sent;
        self.request_seqs += request_seqs;
        self.repairs_sent += repairs_sent;
        self.heartbeats_sent += heartbeats_sent;
        self.heartbeats_heard += heartbeats_heard;
        self.challenges_sent += challenges_sent;
        self.challenges_heard += challenges_heard;
        self.challenges_ignored += challenges_ignored;
        self.challenge_matches += challenge_matches;
        self.unicast_refused += unicast_refused;
        self.hellos_sent += hellos_sent;
        self.hellos_heard += hellos_heard;
        self.forwarded += forwarded;
        self.forward_throttled += forward_throttled;
        self.prunes += prunes;
        self.grafts += grafts;
        self.requests_heard += requests_heard;
        self.repairs_heard += repairs_heard;
        self.requests_suppressed += requests_suppressed;
        self.repairs_refused += repairs_refused;
        self.repairs_suppressed += repairs_suppressed;
        self.bytes_in += bytes_in;
        self.request_bytes_out += request_bytes_out;
        self.repair_bytes_out += repair_bytes_out;
        self.datagrams_out += datagrams_out;
        self.bytes_out += bytes_out;
        self.unsigned += unsigned;
        self.bad_signatures += bad_signatures;
        self.bad_bundles += bad_bundles;
        self.bundles_verified += bundles_verified;
        self.bundles_remembered += bundles_remembered;
        self.bundles_sealed += bundles_sealed;
        self.links_sent += links_sent;
        self.envelopes_sealed += envelopes_sealed;
        self.envelopes_opened += envelopes_opened;
        self.envelopes_skipped += envelopes_skipped;
        self.envelopes_forged += envelopes_forged;
        self.unsealed += unsealed;
        self.sealed_foreign += sealed_foreign;
        self.directs_sent += directs_sent;
        self.directs_retried += directs_retried;
        self.directs_failed += directs_failed;
        self.directs_delivered += directs_delivered;
        self.directs_duplicate += directs_duplicate;
        self.directs_placed += directs_placed;
        self.directs_dropped += directs_dropped;
        self.invitations_sent += invitations_sent;
        self.lists_heard += lists_heard;
        self.lists_sent += lists_sent;
        self.whois_heard += whois_heard;
        self.whois_dropped += whois_dropped;
        self.links_vouched += links_vouched;
        self.links_held += links_held;
        self.links_dropped += links_dropped;
        self.queue_overflow += queue_overflow;
    }
}
