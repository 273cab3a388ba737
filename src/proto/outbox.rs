//! Packs outgoing packets into datagrams of at most [`MAX_DATAGRAM`] bytes, and this node's
//! own packets into bundles it signs as each datagram is closed (PROTOCOL.md 4.12). A private
//! lobby's packets go in datagrams of their own, sealed in an envelope as they leave (4.14).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use ed25519_dalek::SigningKey;

use super::ids::{LobbyId, PeerId};
use super::private::{LobbyKey, Sealer};
use super::signing;
use super::wire::{
    BUNDLE_OVERHEAD, Body, Bundle, Direct, ENVELOPE_OVERHEAD, LINK_OVERHEAD, Link, LinkHash,
    ListPacket, MAX_CHAIN, MAX_DATAGRAM, Packet, WhoIs, chain_overhead,
};

/// Where a datagram goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    /// The lobby's multicast group; the runtime knows its address and port.
    Lobby(LobbyId),
    /// One peer by unicast, at the address of its unicast socket.
    Peer(SocketAddr),
    /// The discovery group, where lobby lists are heard on a segment (PROTOCOL.md 7.12).
    Discovery,
}

/// A datagram for the runtime to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub dest: Dest,
    /// The datagram: a CBOR sequence of packets.
    pub payload: Vec<u8>,
}

/// Which bundle an own packet goes in: one kind per bundle, and repairs apart, since they
/// carry a repairer (PROTOCOL.md 4.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Own {
    Data,
    Session,
    Heartbeat,
    /// Own data sent again as a repair.
    Repair,
}

/// How the bundle of an own part is sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seal {
    /// Signed alone (sessions, heartbeats, repairs).
    Signed,
    /// Signed, vouching for up to `room` links of chain `id` that follow it (PROTOCOL.md
    /// 4.12; with none, a plain bundle).
    Anchor { id: u64, room: usize },
    /// A link of chain `id`: vouched for by its anchor, not signed (4.13).
    Link { id: u64 },
}

/// A part of a datagram being filled, in the order pushed.
#[derive(Debug)]
enum Part {
    /// Encoded packets that go as they are (requests, friend-link packets, others' bundles).
    Plain(Vec<u8>),
    /// Own packets of one lobby and kind, sealed when the datagram leaves.
    Own {
        lobby: LobbyId,
        own: Own,
        seal: Seal,
        packets: Vec<u8>,
        /// The seqs of the data inside, in order.
        seqs: Vec<u64>,
        /// Link hashes a repair vouches for again (its packets were sent in anchors).
        chain: Vec<LinkHash>,
    },
}

/// A datagram: its parts, sealed and encoded when it leaves.
#[derive(Debug)]
struct Datagram {
    dest: Dest,
    /// The private lobby whose packets it holds, sealed in one envelope as it leaves.
    sealed: Option<LobbyId>,
    /// Bytes its parts may take: less than a datagram's by the envelope's, if sealed.
    budget: usize,
    parts: Vec<Part>,
    /// Bytes the datagram will have at most: bundles counted with their whole overhead.
    len: usize,
}

/// An anchor whose links are still being filled.
#[derive(Clone, Copy, Debug)]
struct OpenChain {
    id: u64,
    links: usize,
    room: usize,
}

/// Own anchors remembered per lobby, so that own repairs vouch again for their links.
const ANCHORS_KEPT: usize = 2048;

/// Outgoing datagrams: one being filled per destination, and a bounded queue of full ones.
/// Own packets are sealed when their datagram leaves, so that an anchor can vouch for the
/// links queued behind it (PROTOCOL.md 4.12, 4.13).
#[derive(Debug)]
pub struct Outbox {
    key: SigningKey,
    me: PeerId,
    filling: Vec<Datagram>,
    ready: VecDeque<Datagram>,
    max_ready: usize,
    scratch: Vec<u8>,
    /// Links an anchor vouches for at most.
    chain_length: usize,
    next_chain: u64,
    open: HashMap<(Dest, LobbyId), OpenChain>,
    /// Own anchors by lobby and first seq: their last seq and their chain.
    anchors: HashMap<LobbyId, BTreeMap<u64, (u64, Vec<LinkHash>)>>,
    /// The sealers of private lobbies (PROTOCOL.md 2.4).
    sealers: HashMap<LobbyId, Sealer>,
    /// Private lobbies left: their sealers go once nothing of theirs waits.
    retired: HashSet<LobbyId>,
    /// Envelopes sealed.
    pub enveloped: u64,
    /// Datagrams dropped because the runtime did not drain the queue.
    pub dropped: u64,
    /// Bundles signed.
    pub sealed: u64,
    /// Links sent (vouched for by an anchor instead of signed).
    pub linked: u64,
    /// Bytes at most in `ready` and `filling`.
    pending: usize,
}

impl Outbox {
    /// An empty outbox holding at most `max_ready` finished datagrams, signing own packets
    /// with `key`, and vouching for up to `chain_length` links by one signature under a burst.
    pub fn new(max_ready: usize, key: SigningKey, chain_length: usize) -> Self {
        let me = signing::peer_id_of(&key.verifying_key().to_bytes());
        Outbox {
            key,
            me,
            filling: Vec::new(),
            ready: VecDeque::new(),
            max_ready: max_ready.max(1),
            scratch: Vec::with_capacity(MAX_DATAGRAM),
            chain_length: chain_length.min(MAX_CHAIN),
            next_chain: 0,
            open: HashMap::new(),
            anchors: HashMap::new(),
            sealers: HashMap::new(),
            retired: HashSet::new(),
            enveloped: 0,
            dropped: 0,
            sealed: 0,
            linked: 0,
            pending: 0,
        }
    }

    /// The key this node signs with (and seals direct messages with, PROTOCOL.md 4.15).
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// Appends a who-is query or answer (PROTOCOL.md 4.18, 4.19).
    pub fn push_whois(&mut self, dest: Dest, packet: &WhoIs) -> usize {
        self.push_encoded(dest, &packet.to_bytes(), None)
    }

    /// Appends a lobby list or a request for one (PROTOCOL.md 4.16, 4.17).
    pub fn push_list(&mut self, dest: Dest, packet: &ListPacket) -> usize {
        self.push_encoded(dest, &packet.to_bytes(), None)
    }

    /// Appends an encoded packet that goes as it is, sealed with the private lobby `sealed`'s
    /// packets or not.
    fn push_encoded(&mut self, dest: Dest, bytes: &[u8], sealed: Option<LobbyId>) -> usize {
        self.scratch.clear();
        self.scratch.extend_from_slice(bytes);
        let i = self.filling_for(dest, sealed);
        self.append_plain(i)
    }

    /// Appends a direct message (PROTOCOL.md 4.15); to a private lobby's group it goes inside
    /// the envelope.
    pub fn push_direct(&mut self, dest: Dest, d: &Direct) -> usize {
        let sealed = match dest {
            Dest::Lobby(l) if self.sealers.contains_key(&l) => Some(l),
            _ => None,
        };
        self.push_encoded(dest, &d.to_bytes(), sealed)
    }

    /// The peer id of the signing key.
    pub fn peer_id(&self) -> PeerId {
        self.me
    }

    /// Seals every packet of the private lobby `lobby` from now on with `sealer`.
    pub fn add_sealer(&mut self, lobby: LobbyId, sealer: Sealer) {
        self.retired.remove(&lobby);
        self.sealers.insert(lobby, sealer);
    }

    /// The private lobby `lobby` was left: its sealer seals what of it still waits (its
    /// leaving session, its heartbeat), then goes.
    pub fn retire_sealer(&mut self, lobby: LobbyId) {
        if self.sealers.contains_key(&lobby) {
            self.retired.insert(lobby);
            self.drop_retired();
        }
    }

    /// The key of a private lobby whose packets this outbox seals.
    pub fn key(&self, lobby: LobbyId) -> Option<&LobbyKey> {
        self.sealers.get(&lobby).map(Sealer::key)
    }

    /// Whether `lobby`'s packets are sealed (it is a private lobby being taken part in).
    pub fn seals(&self, lobby: LobbyId) -> bool {
        self.sealers.contains_key(&lobby)
    }

    fn drop_retired(&mut self) {
        let waiting: HashSet<LobbyId> = self
            .ready
            .iter()
            .chain(self.filling.iter())
            .filter(|d| !d.parts.is_empty())
            .filter_map(|d| d.sealed)
            .collect();
        let sealers = &mut self.sealers;
        self.retired.retain(|l| {
            let wait = waiting.contains(l);
            if !wait {
                sealers.remove(l);
            }
            wait
        });
    }

    /// Appends an unsigned packet (a request) to the datagram being filled for `dest`.
    /// Returns its encoded length.
    pub fn push(&mut self, dest: Dest, packet: &Packet) -> usize {
        self.scratch.clear();
        packet.encode_into(&mut self.scratch);
        self.push_plain(dest, packet.lobby)
    }

    /// Like [`Outbox::push`], for a friend-link packet (of no lobby, never sealed).
    pub fn push_link(&mut self, dest: Dest, packet: &Link) -> usize {
        self.scratch.clear();
        packet.encode_into(&mut self.scratch);
        let i = self.filling_for(dest, None);
        self.append_plain(i)
    }

    /// Like [`Outbox::push`], for another writer's bundle or link passed on whole.
    pub fn push_bundle(&mut self, dest: Dest, bundle: &Bundle) -> usize {
        self.scratch.clear();
        bundle.encode_into(&mut self.scratch);
        self.push_plain(dest, bundle.lobby)
    }

    /// Appends one of this node's own packets to the bundle of its lobby and kind in the
    /// datagram being filled for `dest`. Returns its encoded length (without the bundle's).
    pub(crate) fn push_own(&mut self, dest: Dest, own: Own, packet: &Packet) -> usize {
        self.scratch.clear();
        packet.encode_into(&mut self.scratch);
        let lobby = packet.lobby;
        let n = self.scratch.len();
        let seq = match &packet.body {
            Body::Data(d) => Some(d.seq),
            _ => None,
        };
        // A repair of a packet sent in an anchor vouches again for the anchor's links.
        let revouch = match (own, seq) {
            (Own::Repair, Some(seq)) => self.anchor_chain(lobby, seq),
            _ => None,
        };
        let i = self.filling_for(dest, self.sealers.contains_key(&lobby).then_some(lobby));
        let budget = self.filling[i].budget;
        for attempt in 0..2 {
            let at = self.filling[i].parts.iter().position(
                |p| matches!(p, Part::Own { lobby: l, own: o, .. } if *l == lobby && *o == own),
            );
            // The part's chain so far: how long, and whether it vouches for this anchor's.
            let (overhead, seal, had, carried) = match at.map(|k| &self.filling[i].parts[k]) {
                Some(Part::Own { seal, chain, .. }) => {
                    let carried = revouch
                        .as_ref()
                        .and_then(|c| c.first())
                        .is_some_and(|h| chain.contains(h));
                    (0, *seal, chain.len(), carried)
                }
                _ => {
                    let (overhead, seal) = self.new_part(dest, lobby, own, n, i);
                    (overhead, seal, 0, false)
                }
            };
            let add = revouch
                .as_ref()
                .filter(|c| !carried && had + c.len() <= MAX_CHAIN);
            let chain_grow = add.map_or(0, |c| chain_overhead(had + c.len()) - chain_overhead(had));
            let len = self.filling[i].len;
            if attempt == 0 && len > 0 && len + n + overhead + chain_grow > budget {
                self.close(i, true);
                continue;
            }
            // A repair whose chain would not fit goes without it (its links then wait and
            // are asked for again, PROTOCOL.md 4.13).
            let (add, chain_grow) = if len + n + overhead + chain_grow > budget {
                (None, 0)
            } else {
                (add.cloned(), chain_grow)
            };
            match seal {
                Seal::Anchor { id, room } if at.is_none() => {
                    self.next_chain += 1;
                    self.open
                        .insert((dest, lobby), OpenChain { id, links: 0, room });
                }
                Seal::Link { .. } if at.is_none() => {
                    if let Some(c) = self.open.get_mut(&(dest, lobby)) {
                        c.links += 1;
                    }
                }
                _ => {}
            }
            let f = &mut self.filling[i];
            match at.map(|k| &mut f.parts[k]) {
                Some(Part::Own {
                    packets,
                    seqs,
                    chain,
                    ..
                }) => {
                    packets.extend_from_slice(&self.scratch);
                    seqs.extend(seq);
                    chain.extend(add.unwrap_or_default());
                }
                _ => f.parts.push(Part::Own {
                    lobby,
                    own,
                    seal,
                    packets: self.scratch.clone(),
                    seqs: seq.into_iter().collect(),
                    chain: add.unwrap_or_default(),
                }),
            }
            let grow = n + overhead + chain_grow;
            f.len += grow;
            self.pending += grow;
            break;
        }
        n
    }

    /// The overhead and seal of a new own part of `n` bytes in the datagram filling at `i`:
    /// data goes as a link while an anchor waits that has room for one, else as an anchor
    /// with room for as many links as fit (PROTOCOL.md 4.12).
    fn new_part(&self, dest: Dest, lobby: LobbyId, own: Own, n: usize, i: usize) -> (usize, Seal) {
        if own != Own::Data {
            return (BUNDLE_OVERHEAD, Seal::Signed);
        }
        if let Some(c) = self.open.get(&(dest, lobby))
            && c.links < c.room
        {
            return (LINK_OVERHEAD, Seal::Link { id: c.id });
        }
        // A fresh datagram (the part may close the one filling) decides the room.
        let budget = self.filling[i].budget;
        let used = if self.filling[i].len + n + BUNDLE_OVERHEAD > budget {
            0
        } else {
            self.filling[i].len
        };
        let free = budget.saturating_sub(used + n + BUNDLE_OVERHEAD);
        let room = (0..=self.chain_length)
            .rev()
            .find(|&k| chain_overhead(k) <= free)
            .unwrap_or(0);
        (
            BUNDLE_OVERHEAD + chain_overhead(room),
            Seal::Anchor {
                id: self.next_chain,
                room,
            },
        )
    }

    /// The chain of the own anchor that held `seq` of `lobby`, if it had links.
    fn anchor_chain(&self, lobby: LobbyId, seq: u64) -> Option<Vec<LinkHash>> {
        let (_, (last, chain)) = self.anchors.get(&lobby)?.range(..=seq).next_back()?;
        (seq <= *last).then(|| chain.clone())
    }

    /// The datagram filling for `dest`: a private lobby's packets (`sealed`) have their own.
    fn filling_for(&mut self, dest: Dest, sealed: Option<LobbyId>) -> usize {
        match self
            .filling
            .iter()
            .position(|f| f.dest == dest && f.sealed == sealed)
        {
            Some(i) => i,
            None => {
                self.filling.push(Datagram {
                    dest,
                    sealed,
                    budget: MAX_DATAGRAM
                        - if sealed.is_some() {
                            ENVELOPE_OVERHEAD
                        } else {
                            0
                        },
                    parts: Vec::new(),
                    len: 0,
                });
                self.filling.len() - 1
            }
        }
    }

    /// Appends the packet in `scratch`, of `lobby`, as it is.
    fn push_plain(&mut self, dest: Dest, lobby: LobbyId) -> usize {
        let i = self.filling_for(dest, self.sealers.contains_key(&lobby).then_some(lobby));
        self.append_plain(i)
    }

    fn append_plain(&mut self, i: usize) -> usize {
        let n = self.scratch.len();
        if self.filling[i].len > 0 && self.filling[i].len + n > self.filling[i].budget {
            self.close(i, true);
        }
        let f = &mut self.filling[i];
        match f.parts.last_mut() {
            Some(Part::Plain(bytes)) => bytes.extend_from_slice(&self.scratch),
            _ => f.parts.push(Part::Plain(self.scratch.clone())),
        }
        f.len += n;
        self.pending += n;
        n
    }

    /// Queues the datagram being filled at `i`. With `bounded`, a full queue loses its
    /// oldest datagram (sealed all the same, so that its links stay vouched for by repairs).
    fn close(&mut self, i: usize, bounded: bool) {
        let f = &mut self.filling[i];
        if f.len == 0 {
            return;
        }
        let d = Datagram {
            dest: f.dest,
            sealed: f.sealed,
            budget: f.budget,
            parts: std::mem::take(&mut f.parts),
            len: std::mem::take(&mut f.len),
        };
        if bounded
            && self.ready.len() >= self.max_ready
            && let Some(old) = self.ready.pop_front()
        {
            self.pending -= old.len;
            self.dropped += 1;
            let _ = self.finish(old);
        }
        self.ready.push_back(d);
    }

    /// Seals the own parts of a datagram that leaves and encodes it, in an envelope if it is
    /// a private lobby's. An anchor vouches for the links of its chain queued behind it; those
    /// still filling are closed, as they are final. None if the datagram cannot be sealed
    /// (its lobby's sealer is gone): a private lobby's packets never leave in clear.
    fn finish(&mut self, d: Datagram) -> Option<Vec<u8>> {
        let sealed = d.sealed;
        let payload = self.encode(d);
        let Some(lobby) = sealed else {
            return Some(payload);
        };
        let sealer = self.sealers.get_mut(&lobby)?;
        let envelope = sealer.seal(&payload);
        self.enveloped += 1;
        Some(envelope.to_bytes())
    }

    /// The packets of a datagram, own ones sealed in bundles and links.
    fn encode(&mut self, d: Datagram) -> Vec<u8> {
        let mut payload = Vec::with_capacity(d.len);
        for part in d.parts {
            let (lobby, own, seal, packets, seqs, chain) = match part {
                Part::Plain(bytes) => {
                    payload.extend_from_slice(&bytes);
                    continue;
                }
                Part::Own {
                    lobby,
                    own,
                    seal,
                    packets,
                    seqs,
                    chain,
                } => (lobby, own, seal, packets, seqs, chain),
            };
            let bundle = match seal {
                Seal::Link { .. } => {
                    self.linked += 1;
                    signing::link(lobby, self.me, packets)
                }
                Seal::Anchor { id, .. } => {
                    let links = self.links_of(id, lobby);
                    if self.open.get(&(d.dest, lobby)).is_some_and(|c| c.id == id) {
                        self.open.remove(&(d.dest, lobby));
                    }
                    if let (Some(&first), Some(&last)) = (seqs.first(), seqs.last())
                        && !links.is_empty()
                    {
                        let kept = self.anchors.entry(lobby).or_default();
                        kept.insert(first, (last, links.clone()));
                        if kept.len() > ANCHORS_KEPT {
                            kept.pop_first();
                        }
                    }
                    self.sealed += 1;
                    signing::seal_anchor(&self.key, lobby, links, packets)
                }
                Seal::Signed => {
                    self.sealed += 1;
                    let mut b = signing::seal_anchor(&self.key, lobby, chain, packets);
                    if own == Own::Repair {
                        b.repairer = Some(self.me);
                    }
                    b
                }
            };
            bundle.encode_into(&mut payload);
        }
        payload
    }

    /// The hashes of the links of chain `id`, in the order they leave; the datagrams filling
    /// that hold one are closed.
    fn links_of(&mut self, id: u64, lobby: LobbyId) -> Vec<LinkHash> {
        let is_link =
            |p: &Part| matches!(p, Part::Own { seal: Seal::Link { id: l }, .. } if *l == id);
        let mut hashes = Vec::new();
        for d in self.ready.iter().chain(self.filling.iter()) {
            for p in &d.parts {
                if let Part::Own { packets, .. } = p
                    && is_link(p)
                {
                    hashes.push(signing::link_hash(lobby, self.me, packets));
                }
            }
        }
        for i in 0..self.filling.len() {
            if self.filling[i].parts.iter().any(is_link) {
                self.close(i, false);
            }
        }
        hashes
    }

    /// The next datagram to send; partly filled datagrams go out once the full ones have.
    pub fn poll(&mut self) -> Option<Transmit> {
        loop {
            if self.ready.is_empty() {
                for i in 0..self.filling.len() {
                    self.close(i, true);
                }
            }
            let d = self.ready.pop_front()?;
            self.pending -= d.len;
            let dest = d.dest;
            let payload = self.finish(d);
            if !self.retired.is_empty() {
                self.drop_retired();
            }
            if let Some(payload) = payload {
                return Some(Transmit { dest, payload });
            }
        }
    }

    /// Bytes waiting to be sent, at most, in full and partly filled datagrams.
    pub fn pending_bytes(&self) -> usize {
        self.pending
    }

    /// True when nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ids::MsgId;
    use crate::proto::wire::{self, Body, Data, Decoded, Request, SeqRange};

    fn outbox() -> Outbox {
        Outbox::new(1024, SigningKey::from_bytes(&[3; 32]), 7)
    }

    fn data(me: PeerId, seq: u64, len: usize) -> Packet {
        Packet {
            lobby: LobbyId(9),
            body: Body::Data(Data {
                source: me,
                seq,
                msg_id: MsgId(seq),
                sent_at: 1,
                nick: "me".into(),
                frag_index: 0,
                frag_count: 1,
                body: vec![b'x'; len],
            }),
        }
    }

    fn bundles(payload: &[u8]) -> Vec<Bundle> {
        wire::decode_datagram(payload)
            .filter_map(|d| match d.unwrap() {
                Decoded::Bundle(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    /// Drains the outbox as a receiver would check it: each signed bundle verified, each link
    /// by a hash that an earlier anchor listed. Returns the seqs in the order they left and
    /// the number of datagrams; every datagram fits.
    fn drain_checked(o: &mut Outbox) -> (Vec<u64>, usize) {
        let mut vouched: Vec<LinkHash> = Vec::new();
        let mut seqs = Vec::new();
        let mut datagrams = 0;
        while let Some(t) = o.poll() {
            datagrams += 1;
            assert!(t.payload.len() <= MAX_DATAGRAM, "{}", t.payload.len());
            let bs = bundles(&t.payload);
            assert_eq!(bs.len(), 1, "one bundle per datagram");
            let b = &bs[0];
            if b.is_link() {
                let h = signing::link_hash(b.lobby, b.source, &b.packets);
                assert_eq!(
                    vouched.first(),
                    Some(&h),
                    "links come in their chain's order"
                );
                vouched.remove(0);
            } else {
                signing::verify(b).unwrap();
                assert!(vouched.is_empty(), "a chain is over before the next anchor");
                vouched = b.chain().to_vec();
            }
            for p in signing::contents(b).unwrap() {
                let Body::Data(d) = p.body else { panic!() };
                seqs.push(d.seq);
            }
        }
        assert!(vouched.is_empty(), "every link of a chain left");
        (seqs, datagrams)
    }

    #[test]
    fn a_burst_goes_as_chains_of_one_anchor_and_seven_links() {
        let mut o = outbox();
        let me = o.peer_id();
        let dest = Dest::Lobby(LobbyId(9));
        for seq in 0..400 {
            o.push_own(dest, Own::Data, &data(me, seq, 100));
        }
        let (seqs, datagrams) = drain_checked(&mut o);
        assert_eq!(seqs, (0..400).collect::<Vec<_>>());
        assert_eq!(
            o.sealed as usize,
            datagrams.div_ceil(8),
            "{datagrams} datagrams"
        );
        assert_eq!(o.linked as usize, datagrams - datagrams.div_ceil(8));
        assert!(o.is_empty());
        assert_eq!(o.pending_bytes(), 0);
    }

    #[test]
    fn a_message_alone_goes_in_a_plain_signed_bundle() {
        let mut o = outbox();
        let me = o.peer_id();
        let dest = Dest::Lobby(LobbyId(9));
        for seq in 0..3 {
            o.push_own(dest, Own::Data, &data(me, seq, 100));
            let t = o.poll().unwrap();
            let b = &bundles(&t.payload)[0];
            assert!(!b.is_link() && b.chain().is_empty(), "{b:?}");
            signing::verify(b).unwrap();
            assert!(o.poll().is_none());
        }
    }

    #[test]
    fn the_largest_fragments_still_fit_an_anchor_with_fewer_links() {
        let mut o = outbox();
        let me = o.peer_id();
        let dest = Dest::Lobby(LobbyId(9));
        for seq in 0..64 {
            o.push_own(dest, Own::Data, &data(me, seq, wire::MAX_PIECE));
        }
        let (seqs, datagrams) = drain_checked(&mut o);
        assert_eq!(seqs, (0..64).collect::<Vec<_>>());
        assert_eq!(datagrams, 64, "one fragment a datagram");
        assert!(o.sealed < 64, "{} signed", o.sealed);
    }

    #[test]
    fn a_repair_of_an_anchors_packet_vouches_again_for_its_links() {
        let mut o = outbox();
        let me = o.peer_id();
        let dest = Dest::Lobby(LobbyId(9));
        for seq in 0..40 {
            o.push_own(dest, Own::Data, &data(me, seq, 100));
        }
        let first = o.poll().unwrap();
        let anchor = bundles(&first.payload).remove(0);
        assert!(!anchor.chain().is_empty());
        while o.poll().is_some() {}
        // The anchor was lost: its first packet is repaired, sealed anew with its chain.
        o.push_own(dest, Own::Repair, &data(me, 0, 100));
        let t = o.poll().unwrap();
        let repair = bundles(&t.payload).remove(0);
        assert_eq!(repair.repairer, Some(me));
        assert_eq!(repair.chain(), anchor.chain());
        signing::verify(&repair).unwrap();
        // A packet of a link is repaired without a chain.
        o.push_own(dest, Own::Repair, &data(me, 39, 100));
        let t = o.poll().unwrap();
        assert!(bundles(&t.payload)[0].chain().is_empty());
    }

    #[test]
    fn kinds_go_in_bundles_of_their_own_and_repairs_name_the_repairer() {
        let mut o = outbox();
        let me = o.peer_id();
        let dest = Dest::Lobby(LobbyId(9));
        o.push_own(dest, Own::Data, &data(me, 0, 10));
        o.push(
            dest,
            &Packet {
                lobby: LobbyId(9),
                body: Body::Request(Request {
                    sender: me,
                    source: PeerId(5),
                    hint: None,
                    ranges: vec![SeqRange(1, 1)],
                }),
            },
        );
        o.push_own(dest, Own::Repair, &data(me, 1, 10));
        o.push_own(dest, Own::Data, &data(me, 2, 10));
        let t = o.poll().unwrap();
        let items: Vec<Decoded> = wire::decode_datagram(&t.payload)
            .map(Result::unwrap)
            .collect();
        assert_eq!(items.len(), 3, "data bundle, request, repair bundle");
        let bs = bundles(&t.payload);
        assert_eq!(bs[0].repairer, None);
        assert_eq!(signing::open(&bs[0]).unwrap().len(), 2);
        assert_eq!(bs[1].repairer, Some(me));
        assert_eq!(o.sealed, 2);
        assert!(o.poll().is_none());
    }
}
