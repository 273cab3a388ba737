//! The wire format: packets as compact CBOR arrays, datagrams as CBOR sequences of packets.
//!
//! proto/PROTOCOL.md and proto/lobbycast.cddl are the specification; this module implements
//! them and the vectors in proto/vectors/ check that it does, byte for byte.
//!
//! Every packet is an array `[version, kind, ...fields]`. A datagram is one or more packets
//! concatenated (RFC 8742 CBOR sequence), so small messages share a datagram. A packet with an
//! unknown version or kind is skipped whole, and the packets after it still decode.

use serde::ser::SerializeTuple;
use serde::{Serialize, Serializer};

use super::ids::{LobbyId, MsgId, PeerId};

mod decode;
mod direct;
mod lists;
mod whois;

pub use direct::{Content, Direct, MAX_DIRECT_HOPS, MAX_DIRECT_SEALED, MAX_DIRECT_TEXT};
pub use lists::{ListPacket, LobbyList, MAX_LIST_LOBBIES};
pub use whois::{
    MAX_WHOIS_HOPS, MAX_WHOIS_LOBBIES, MAX_WHOIS_PEERS, WhoIs, WhoIsAnswer, WhoIsPeer, WhoIsQuery,
};

/// The protocol version this implementation speaks.
pub const VERSION: u64 = 1;
/// Largest datagram a node sends: below every LAN's and VPN's MTU, so no IP fragmentation.
pub const MAX_DATAGRAM: usize = 1200;
/// Longest nick on the wire, in bytes of UTF-8.
pub const MAX_NICK: usize = 32;
/// Largest body of one data packet (one fragment): small enough that the largest data packet
/// fits a datagram inside a repair bundle (revision 1.3; 1024 before).
pub const MAX_PIECE: usize = 960;
/// Most bytes a bundle adds around its packets: its header, lobby, source, key, signature,
/// the packets' length and a repairer (PROTOCOL.md 4.12).
pub const BUNDLE_OVERHEAD: usize = 1 + 1 + 1 + 9 + 9 + (2 + 32) + (2 + 64) + 3 + 9;
/// Most bytes a link adds around its packets: its header, lobby, source, the packets' length
/// and a repairer (PROTOCOL.md 4.13).
pub const LINK_OVERHEAD: usize = 1 + 1 + 1 + 9 + 9 + 3 + 9;
/// Most link hashes in an anchor's chain (PROTOCOL.md 4.12).
pub const MAX_CHAIN: usize = 32;
/// Bytes a chain of `n` hashes adds to a bundle: the array's head and each hash with its own.
pub const fn chain_overhead(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (if n < 24 { 1 } else { 2 }) + n * 17
    }
}
/// Most fragments of one message.
pub const MAX_FRAGMENTS: u16 = 64;
/// Largest message body: [`MAX_FRAGMENTS`] full pieces.
pub const MAX_MESSAGE: usize = MAX_PIECE * MAX_FRAGMENTS as usize;
/// Most per-source entries in one session packet.
pub const MAX_SESSION_HEARD: usize = 40;
/// Most progress entries (`acked`) in one session packet.
pub const MAX_SESSION_ACKED: usize = 40;
/// Most timestamp echoes in one session packet.
pub const MAX_SESSION_ECHOES: usize = 8;
/// Most sequence ranges in one request packet.
pub const MAX_REQUEST_RANGES: usize = 48;
/// Most values in one challenge packet.
pub const MAX_CHALLENGE_HASHES: usize = 8;
/// Most listed lobbies in one hello packet.
pub const MAX_HELLO_LOBBIES: usize = 32;

/// The kind numbers. 0..=4, 7, 10 and 11 are built; 5, 6, 8 and 9 are reserved for later
/// revisions and are skipped (counted) by this version; anything else is unknown.
pub mod kind {
    /// Original transmission of a message fragment.
    pub const DATA: u64 = 0;
    /// Session message: per-source state and timestamps.
    pub const SESSION: u64 = 1;
    /// Repair request (NACK).
    pub const REQUEST: u64 = 2;
    /// Retransmission of a data packet by any holder.
    pub const REPAIR: u64 = 3;
    /// A member's presence, flooded through friends (revision 1.2).
    pub const HEARTBEAT: u64 = 4;
    /// Which lobbies are you in (revision 1.7).
    pub const LOBBY_LIST_REQUEST: u64 = 5;
    /// A node's listed lobbies (revision 1.7).
    pub const LOBBY_LIST: u64 = 6;
    /// Lobby challenge h(L, N, F) between friends (revision 1.2).
    pub const CHALLENGE: u64 = 7;
    /// Reserved: invitation to a private lobby.
    pub const INVITATION: u64 = 8;
    /// A message to one peer, sealed to its key (revision 1.5).
    pub const DIRECT: u64 = 9;
    /// A friend link's handshake and keep-alive (revision 1.2).
    pub const HELLO: u64 = 10;
    /// A writer's own packets of one lobby, signed (revision 1.3).
    pub const BUNDLE: u64 = 11;
    /// A writer's data vouched for by a signed bundle (revision 1.3).
    pub const LINK: u64 = 12;
    /// A private lobby's packets, sealed under its key (revision 1.4).
    pub const ENVELOPE: u64 = 13;
    /// Who goes by a nick (revision 1.8).
    pub const WHOIS_QUERY: u64 = 14;
    /// What a node knows of peers with that nick (revision 1.8).
    pub const WHOIS_ANSWER: u64 = 15;
}

/// Bits of a session's `flags` (revision 1.2, PROTOCOL.md 4.5).
pub mod flags {
    /// The sender forwards the lobby between its group and its friends.
    pub const BRIDGE: u64 = 1;
    /// Addressed to a friend: send me sessions only, not data as you get it.
    pub const LAZY: u64 = 2;
    /// The sender leaves the lobby.
    pub const LEAVING: u64 = 4;
}

/// One fragment of a message as its source sent it; carried by data and repair packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data {
    /// The node that wrote the message.
    pub source: PeerId,
    /// The source's sequence number for this fragment in this lobby.
    pub seq: u64,
    /// Random id of the whole message, shared by its fragments.
    pub msg_id: MsgId,
    /// Source's wall clock when sent, Unix milliseconds.
    pub sent_at: u64,
    /// Source's nick when sent.
    pub nick: String,
    /// Which fragment this is, from 0.
    pub frag_index: u16,
    /// How many fragments the message has, at least 1.
    pub frag_count: u16,
    /// This fragment's bytes of the UTF-8 message text.
    pub body: Vec<u8>,
}

/// An inclusive range of sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SeqRange(pub u64, pub u64);

/// A source's own account in its session: it holds its packets `low..next` (half-open) for
/// repair and numbers its next packet `next`. `low == next` when it holds none, so a member
/// that has not spoken yet still tells where its numbering starts. On the wire: `[low, next]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Lowest own sequence number still held.
    pub low: u64,
    /// The sequence number of its next packet.
    pub next: u64,
}

/// What a session packet says about one source: the highest sequence number heard from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Heard(pub PeerId, pub u64);

/// What a session packet says of one source's stream for flow control: the sender holds every
/// packet of it that it wants below `.1` (the lowest one it still lacks). Revision 1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Acked(pub PeerId, pub u64);

/// A timestamp echo: "I heard `peer`'s session stamped `timestamp` and held it `delay` µs".
/// `peer` computes its round-trip time to the sender from it, as in SRM. On the wire it is the
/// array `[peer, timestamp, delay]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    /// Whose session is echoed.
    pub peer: PeerId,
    /// That session's timestamp, in the peer's own microsecond clock.
    pub timestamp: u64,
    /// Microseconds between hearing it and sending this echo.
    pub delay: u64,
}

/// A session message: reveals gaps (tail losses included) and measures distances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Who sends it.
    pub sender: PeerId,
    /// The sender's nick, so members are known before they speak.
    pub nick: String,
    /// Sender's monotonic clock in microseconds, echoed back by others.
    pub timestamp: u64,
    /// The sender's own packets: which it can still repair, and the number it uses next.
    pub sent: Sent,
    /// Highest sequence number heard per other source (a bounded, rotating subset).
    pub heard: Vec<Heard>,
    /// Echoes of other members' session timestamps (a bounded, rotating subset).
    pub echoes: Vec<Echo>,
    /// Contiguous progress per source, for the sources' flow control (revision 1.1; omitted
    /// on the wire when empty).
    pub acked: Vec<Acked>,
    /// Bits of [`flags`] (revision 1.2; omitted on the wire when 0 and nothing follows).
    pub flags: u64,
    /// In a session sent by unicast: the timestamp of the addressee's latest group session the
    /// sender heard, 0 for none (revision 1.2; omitted on the wire when 0).
    pub mheard: u64,
}

/// A member's presence in a lobby, flooded hop by hop through friends (revision 1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// Whose presence it tells.
    pub sender: PeerId,
    /// The sender's nick now.
    pub nick: String,
    /// Random id of this heartbeat, suppressed like a message id.
    pub beat: MsgId,
    /// Sender's wall clock when sent, Unix milliseconds.
    pub sent_at: u64,
    /// True when the sender leaves the lobby.
    pub leaving: bool,
}

/// A repair request (NACK) for some of one source's sequence numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Who asks.
    pub sender: PeerId,
    /// Whose data is missing.
    pub source: PeerId,
    /// The member asked to answer first, or `None` for whoever holds the data.
    pub hint: Option<PeerId>,
    /// The missing sequence numbers.
    pub ranges: Vec<SeqRange>,
}

/// What a packet carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// An original transmission.
    Data(Data),
    /// A session message.
    Session(Session),
    /// A repair request.
    Request(Request),
    /// A retransmission of `data` by `repairer`.
    Repair {
        /// Who retransmits.
        repairer: PeerId,
        /// The fragment as its source sent it.
        data: Data,
    },
    /// A presence heartbeat.
    Heartbeat(Heartbeat),
}

/// The echo in a hello: the addressee's hello timestamp heard last, and how long it was held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloEcho {
    /// That hello's timestamp, in the addressee's own microsecond clock.
    pub timestamp: u64,
    /// Microseconds between hearing it and sending this hello.
    pub delay: u64,
}

/// A friend link's handshake and keep-alive (revision 1.2, PROTOCOL.md 7.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The friend that sends it.
    pub sender: PeerId,
    /// Its nick.
    pub nick: String,
    /// Sender's monotonic clock in microseconds, echoed back by the addressee.
    pub timestamp: u64,
    /// The addressee's latest hello heard, if any.
    pub echo: Option<HelloEcho>,
    /// The listed lobbies the sender is a member of.
    pub lobbies: Vec<LobbyId>,
}

/// Values h(L, N, F) by which a friend asks whether the addressee shares lobbies with it
/// (revision 1.2, PROTOCOL.md 7.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The friend that challenges.
    pub sender: PeerId,
    /// One value per lobby asked about.
    pub hashes: Vec<u64>,
}

/// A packet between two friends, outside any lobby.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Handshake and keep-alive.
    Hello(Hello),
    /// Lobby challenge.
    Challenge(Challenge),
}

/// A decoded packet of one of the built kinds, addressed to a lobby.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The lobby it belongs to; packets of lobbies not joined are ignored.
    pub lobby: LobbyId,
    /// What it carries.
    pub body: Body,
}

/// The first 16 bytes of a link's SHA-256 (PROTOCOL.md 4.13).
pub type LinkHash = [u8; 16];

/// A writer's own packets of one lobby, signed once for all (kind 11, PROTOCOL.md 4.12), or
/// vouched for by a signed bundle's chain (a link, kind 12, 4.13). Decoding checks only the
/// shape; [`crate::proto::signing::verify`] checks the signature (or a link's hash is looked
/// up), and only then may `packets` be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The lobby of every packet inside.
    pub lobby: LobbyId,
    /// The writer: the peer id of its key.
    pub source: PeerId,
    /// What makes it the writer's: a signature, or a hash in a signed chain.
    pub auth: Auth,
    /// A CBOR sequence of the writer's packets, as signed.
    pub packets: Vec<u8>,
    /// The member sending it again as a repair, if it is one; not signed.
    pub repairer: Option<PeerId>,
}

/// How a [`Bundle`] is tied to its writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Signed (kind 11).
    Signed {
        /// The writer's Ed25519 public key.
        key: [u8; 32],
        /// Ed25519 signature over the lobby, the chain and `packets` (PROTOCOL.md 4.12).
        signature: [u8; 64],
        /// Hashes of the links this bundle vouches for (an anchor's), in order; signed.
        chain: Vec<LinkHash>,
    },
    /// A link (kind 12): its hash must be in a verified chain.
    Linked,
}

impl Bundle {
    /// True for a link (kind 12).
    pub fn is_link(&self) -> bool {
        matches!(self.auth, Auth::Linked)
    }

    /// The chain of an anchor; empty for other bundles and links.
    pub fn chain(&self) -> &[LinkHash] {
        match &self.auth {
            Auth::Signed { chain, .. } => chain,
            Auth::Linked => &[],
        }
    }
}

/// A private lobby's packets, sealed under its lobby key (kind 13, PROTOCOL.md 4.14).
/// Decoding checks only the shape; [`crate::proto::private::LobbyKey::open`] opens it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The private lobby id (PROTOCOL.md 2.4).
    pub lobby: LobbyId,
    /// XChaCha20-Poly1305's nonce, random.
    pub nonce: [u8; 24],
    /// The sealed packets, the 16-byte tag at the end.
    pub sealed: Vec<u8>,
}

/// Bytes an envelope adds around its sealed packets: header, lobby, nonce, the byte string's
/// head and the tag (PROTOCOL.md 4.14).
pub const ENVELOPE_OVERHEAD: usize = 1 + 1 + 1 + 9 + 26 + 3 + 16;

impl Envelope {
    /// Checks the limits the schema sets beyond CBOR types.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.sealed.len() < 17 {
            return Err(DecodeError::Invalid("envelope too short"));
        }
        if self.sealed.len() > MAX_DATAGRAM {
            return Err(DecodeError::Invalid("envelope too large"));
        }
        Ok(())
    }

    /// The associated data of the AEAD: the CBOR encoding of `[1, 13, lobby]`.
    pub fn header(lobby: LobbyId) -> Vec<u8> {
        let mut out = Vec::with_capacity(12);
        ciborium::into_writer(&(VERSION, kind::ENVELOPE, lobby), &mut out)
            .expect("encoding to a Vec cannot fail");
        out
    }

    /// This packet's CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.sealed.len() + ENVELOPE_OVERHEAD);
        ciborium::into_writer(
            &(
                VERSION,
                kind::ENVELOPE,
                self.lobby,
                serde_bytes::Bytes::new(&self.nonce),
                serde_bytes::Bytes::new(&self.sealed),
            ),
            &mut out,
        )
        .expect("encoding to a Vec cannot fail");
        out
    }
}

/// One item of a datagram, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A lobby packet this version understands.
    Packet(Packet),
    /// A friend-link packet this version understands.
    Link(Link),
    /// A signed bundle, not yet verified (revision 1.3).
    Bundle(Bundle),
    /// A private lobby's sealed packets, not yet opened (revision 1.4).
    Envelope(Envelope),
    /// A message to one peer, not yet opened (revision 1.5).
    Direct(Direct),
    /// A lobby list or a request for one (revision 1.7).
    List(ListPacket),
    /// A who-is query or answer (revision 1.8).
    WhoIs(WhoIs),
    /// A packet of another protocol version, skipped.
    UnknownVersion(u64),
    /// A packet of a reserved or unknown kind, skipped.
    UnsupportedKind(u64),
}

/// Why a datagram (from the failing packet on) could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not well-formed CBOR, or not the shape the schema says.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// Well-formed, but a value is out of its allowed range.
    #[error("invalid packet: {0}")]
    Invalid(&'static str),
}

impl Packet {
    /// The peer that put this packet on the wire.
    pub fn sender(&self) -> PeerId {
        match &self.body {
            Body::Data(d) => d.source,
            Body::Session(s) => s.sender,
            Body::Request(r) => r.sender,
            Body::Repair { repairer, .. } => *repairer,
            Body::Heartbeat(h) => h.sender,
        }
    }

    /// Checks the limits the schema sets beyond CBOR types.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match &self.body {
            Body::Data(d) | Body::Repair { data: d, .. } => d.validate(),
            Body::Session(s) => {
                check_nick(&s.nick)?;
                if s.heard.len() > MAX_SESSION_HEARD
                    || s.echoes.len() > MAX_SESSION_ECHOES
                    || s.acked.len() > MAX_SESSION_ACKED
                {
                    return Err(DecodeError::Invalid("session lists too long"));
                }
                if s.sent.low > s.sent.next {
                    return Err(DecodeError::Invalid("sent range reversed"));
                }
                Ok(())
            }
            Body::Heartbeat(h) => check_nick(&h.nick),
            Body::Request(r) => {
                if r.ranges.is_empty() || r.ranges.len() > MAX_REQUEST_RANGES {
                    return Err(DecodeError::Invalid("request range count"));
                }
                if r.ranges.iter().any(|SeqRange(a, b)| a > b) {
                    return Err(DecodeError::Invalid("empty request range"));
                }
                Ok(())
            }
        }
    }

    /// Appends this packet's CBOR encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail, and every value here has a CBOR form.
        ciborium::into_writer(self, out).expect("encoding to a Vec cannot fail");
    }

    /// The length of this packet's CBOR encoding.
    pub fn encoded_len(&self) -> usize {
        self.to_bytes().len()
    }

    /// This packet's CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(&mut out);
        out
    }
}

impl Link {
    /// The peer that sent this packet.
    pub fn sender(&self) -> PeerId {
        match self {
            Link::Hello(h) => h.sender,
            Link::Challenge(c) => c.sender,
        }
    }

    /// Checks the limits the schema sets beyond CBOR types.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Link::Hello(h) => {
                check_nick(&h.nick)?;
                if h.lobbies.len() > MAX_HELLO_LOBBIES {
                    return Err(DecodeError::Invalid("hello lists too many lobbies"));
                }
                Ok(())
            }
            Link::Challenge(c) => {
                if c.hashes.is_empty() || c.hashes.len() > MAX_CHALLENGE_HASHES {
                    return Err(DecodeError::Invalid("challenge value count"));
                }
                Ok(())
            }
        }
    }

    /// Appends this packet's CBOR encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail, and every value here has a CBOR form.
        ciborium::into_writer(self, out).expect("encoding to a Vec cannot fail");
    }

    /// This packet's CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }
}

impl Data {
    fn validate(&self) -> Result<(), DecodeError> {
        check_nick(&self.nick)?;
        if self.frag_count == 0 || self.frag_count > MAX_FRAGMENTS {
            return Err(DecodeError::Invalid("fragment count"));
        }
        if self.frag_index >= self.frag_count {
            return Err(DecodeError::Invalid("fragment index"));
        }
        if self.body.len() > MAX_PIECE {
            return Err(DecodeError::Invalid("fragment too large"));
        }
        Ok(())
    }
}

fn check_nick(nick: &str) -> Result<(), DecodeError> {
    if nick.len() > MAX_NICK {
        Err(DecodeError::Invalid("nick too long"))
    } else {
        Ok(())
    }
}

/// Decodes the packets of one datagram, in order. Stops at the first malformed or invalid
/// packet: a CBOR sequence cannot be resynchronised past an item that does not parse.
pub fn decode_datagram(bytes: &[u8]) -> impl Iterator<Item = Result<Decoded, DecodeError>> + '_ {
    let mut reader = decode::Reader::new(bytes);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || reader.at_end() {
            return None;
        }
        let item = reader.packet().and_then(|d| {
            match &d {
                Decoded::Packet(p) => p.validate()?,
                Decoded::Link(l) => l.validate()?,
                Decoded::Bundle(b) => b.validate()?,
                Decoded::Envelope(e) => e.validate()?,
                Decoded::Direct(d) => d.validate()?,
                Decoded::List(l) => l.validate()?,
                Decoded::WhoIs(w) => w.validate()?,
                Decoded::UnknownVersion(_) | Decoded::UnsupportedKind(_) => {}
            }
            Ok(d)
        });
        failed = item.is_err();
        Some(item)
    })
}

/// Encodes `packets` as one datagram (no size check: callers pack within [`MAX_DATAGRAM`]).
pub fn encode_datagram<'a>(packets: impl IntoIterator<Item = &'a Packet>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    for p in packets {
        p.encode_into(&mut out);
    }
    out
}

impl Serialize for Packet {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let (kind, len) = match &self.body {
            Body::Data(_) => (kind::DATA, 3 + DATA_FIELDS),
            Body::Session(s) => (kind::SESSION, 3 + 6 + s.optional_fields()),
            Body::Request(_) => (kind::REQUEST, 3 + 4),
            Body::Repair { .. } => (kind::REPAIR, 3 + 1 + DATA_FIELDS),
            Body::Heartbeat(_) => (kind::HEARTBEAT, 3 + 5),
        };
        let mut t = ser.serialize_tuple(len)?;
        t.serialize_element(&VERSION)?;
        t.serialize_element(&kind)?;
        t.serialize_element(&self.lobby)?;
        match &self.body {
            Body::Data(d) => d.serialize_fields(&mut t)?,
            Body::Repair { repairer, data } => {
                t.serialize_element(repairer)?;
                data.serialize_fields(&mut t)?;
            }
            Body::Session(s) => {
                t.serialize_element(&s.sender)?;
                t.serialize_element(&s.nick)?;
                t.serialize_element(&s.timestamp)?;
                t.serialize_element(&s.sent)?;
                t.serialize_element(&s.heard)?;
                t.serialize_element(&s.echoes)?;
                let optional = s.optional_fields();
                if optional >= 1 {
                    t.serialize_element(&s.acked)?;
                }
                if optional >= 2 {
                    t.serialize_element(&s.flags)?;
                }
                if optional >= 3 {
                    t.serialize_element(&s.mheard)?;
                }
            }
            Body::Heartbeat(h) => {
                t.serialize_element(&h.sender)?;
                t.serialize_element(&h.nick)?;
                t.serialize_element(&h.beat)?;
                t.serialize_element(&h.sent_at)?;
                t.serialize_element(&h.leaving)?;
            }
            Body::Request(r) => {
                t.serialize_element(&r.sender)?;
                t.serialize_element(&r.source)?;
                t.serialize_element(&r.hint)?;
                t.serialize_element(&r.ranges)?;
            }
        }
        t.end()
    }
}

impl Session {
    /// How many of the optional trailing fields (`acked`, `flags`, `mheard`) go on the wire:
    /// empty or zero ones at the end are left out, those before a written one are not.
    fn optional_fields(&self) -> usize {
        if self.mheard != 0 {
            3
        } else if self.flags != 0 {
            2
        } else {
            usize::from(!self.acked.is_empty())
        }
    }
}

impl Serialize for Link {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self {
            Link::Hello(h) => {
                let mut t = ser.serialize_tuple(7)?;
                t.serialize_element(&VERSION)?;
                t.serialize_element(&kind::HELLO)?;
                t.serialize_element(&h.sender)?;
                t.serialize_element(&h.nick)?;
                t.serialize_element(&h.timestamp)?;
                t.serialize_element(&h.echo.map(|e| (e.timestamp, e.delay)))?;
                t.serialize_element(&h.lobbies)?;
                t.end()
            }
            Link::Challenge(c) => {
                let mut t = ser.serialize_tuple(4)?;
                t.serialize_element(&VERSION)?;
                t.serialize_element(&kind::CHALLENGE)?;
                t.serialize_element(&c.sender)?;
                t.serialize_element(&c.hashes)?;
                t.end()
            }
        }
    }
}

impl Bundle {
    /// Checks the limits the schema sets beyond CBOR types (the key and signature lengths
    /// are checked while decoding, into fixed arrays).
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.packets.is_empty() {
            return Err(DecodeError::Invalid("empty bundle"));
        }
        if self.packets.len() > MAX_DATAGRAM {
            return Err(DecodeError::Invalid("bundle too large"));
        }
        if self.chain().len() > MAX_CHAIN {
            return Err(DecodeError::Invalid("chain length"));
        }
        Ok(())
    }

    /// Appends this packet's CBOR encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail, and every value here has a CBOR form.
        ciborium::into_writer(self, out).expect("encoding to a Vec cannot fail");
    }

    /// This packet's CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.packets.len() + 128);
        self.encode_into(&mut out);
        out
    }
}

impl Serialize for Bundle {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let Auth::Signed {
            key,
            signature,
            chain,
        } = &self.auth
        else {
            let mut t = ser.serialize_tuple(5 + usize::from(self.repairer.is_some()))?;
            t.serialize_element(&VERSION)?;
            t.serialize_element(&kind::LINK)?;
            t.serialize_element(&self.lobby)?;
            t.serialize_element(&self.source)?;
            t.serialize_element(serde_bytes::Bytes::new(&self.packets))?;
            if let Some(r) = &self.repairer {
                t.serialize_element(r)?;
            }
            return t.end();
        };
        let len = if !chain.is_empty() {
            9
        } else {
            7 + usize::from(self.repairer.is_some())
        };
        let mut t = ser.serialize_tuple(len)?;
        t.serialize_element(&VERSION)?;
        t.serialize_element(&kind::BUNDLE)?;
        t.serialize_element(&self.lobby)?;
        t.serialize_element(&self.source)?;
        t.serialize_element(serde_bytes::Bytes::new(key))?;
        t.serialize_element(serde_bytes::Bytes::new(signature))?;
        t.serialize_element(serde_bytes::Bytes::new(&self.packets))?;
        if len > 7 {
            t.serialize_element(&self.repairer)?;
        }
        if !chain.is_empty() {
            let hashes: Vec<&serde_bytes::Bytes> =
                chain.iter().map(|h| serde_bytes::Bytes::new(h)).collect();
            t.serialize_element(&hashes)?;
        }
        t.end()
    }
}

/// Number of array elements a [`Data`] contributes after the packet header.
const DATA_FIELDS: usize = 8;

impl Data {
    fn serialize_fields<T: SerializeTuple>(&self, t: &mut T) -> Result<(), T::Error> {
        t.serialize_element(&self.source)?;
        t.serialize_element(&self.seq)?;
        t.serialize_element(&self.msg_id)?;
        t.serialize_element(&self.sent_at)?;
        t.serialize_element(&self.nick)?;
        t.serialize_element(&self.frag_index)?;
        t.serialize_element(&self.frag_count)?;
        t.serialize_element(serde_bytes::Bytes::new(&self.body))?;
        Ok(())
    }
}

impl Serialize for Echo {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        (self.peer, self.timestamp, self.delay).serialize(ser)
    }
}

impl Serialize for Sent {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        (self.low, self.next).serialize(ser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(body: &[u8]) -> Data {
        Data {
            source: PeerId(0x0102_0304_0506_0708),
            seq: 7,
            msg_id: MsgId(u64::MAX),
            sent_at: 1_700_000_000_000,
            nick: "ada".into(),
            frag_index: 0,
            frag_count: 1,
            body: body.to_vec(),
        }
    }

    #[test]
    fn sequence_of_packets_round_trips() {
        let a = Packet {
            lobby: LobbyId(1),
            body: Body::Data(data(b"hello")),
        };
        let b = Packet {
            lobby: LobbyId(1),
            body: Body::Request(Request {
                sender: PeerId(2),
                source: PeerId(3),
                hint: None,
                ranges: vec![SeqRange(4, 9)],
            }),
        };
        let bytes = encode_datagram([&a, &b]);
        let got: Vec<_> = decode_datagram(&bytes).collect();
        assert_eq!(got, vec![Ok(Decoded::Packet(a)), Ok(Decoded::Packet(b))]);
    }

    #[test]
    fn unknown_version_and_kind_are_skipped_and_the_rest_decodes() {
        let keep = Packet {
            lobby: LobbyId(5),
            body: Body::Data(data(b"x")),
        };
        let mut bytes = Vec::new();
        ciborium::into_writer(&(2u8, 0u8, "future", [1, 2]), &mut bytes).unwrap();
        ciborium::into_writer(&(1u8, kind::INVITATION, 9u8, b"abc"), &mut bytes).unwrap();
        keep.encode_into(&mut bytes);
        let got: Vec<_> = decode_datagram(&bytes).collect();
        assert_eq!(
            got,
            vec![
                Ok(Decoded::UnknownVersion(2)),
                Ok(Decoded::UnsupportedKind(kind::INVITATION)),
                Ok(Decoded::Packet(keep))
            ]
        );
    }

    #[test]
    fn out_of_range_values_are_invalid() {
        let mut d = data(b"x");
        d.frag_index = 1;
        let p = Packet {
            lobby: LobbyId(5),
            body: Body::Data(d),
        };
        let got: Vec<_> = decode_datagram(&p.to_bytes()).collect();
        assert_eq!(got, vec![Err(DecodeError::Invalid("fragment index"))]);
    }

    #[test]
    fn the_largest_data_packet_fits_a_datagram_inside_a_repair_bundle() {
        let mut d = data(&[0xaa; MAX_PIECE]);
        d.nick = "n".repeat(MAX_NICK);
        d.frag_count = MAX_FRAGMENTS;
        d.frag_index = MAX_FRAGMENTS - 1;
        d.seq = u64::MAX;
        d.msg_id = MsgId(u64::MAX);
        d.sent_at = u64::MAX;
        let p = Packet {
            lobby: LobbyId(u64::MAX),
            body: Body::Data(d),
        };
        let mut bundle = Bundle {
            lobby: LobbyId(u64::MAX),
            source: PeerId(u64::MAX),
            auth: Auth::Signed {
                key: [0xff; 32],
                signature: [0xff; 64],
                chain: Vec::new(),
            },
            packets: p.to_bytes(),
            repairer: Some(PeerId(u64::MAX)),
        };
        let len = bundle.to_bytes().len();
        assert_eq!(
            len,
            p.to_bytes().len() + BUNDLE_OVERHEAD,
            "the overhead is exact"
        );
        assert!(len <= MAX_DATAGRAM, "{len}");
        // A chain adds exactly its own bytes, at every length.
        for n in [1, 23, 24, MAX_CHAIN] {
            bundle.auth = Auth::Signed {
                key: [0xff; 32],
                signature: [0xff; 64],
                chain: vec![[0xff; 16]; n],
            };
            assert_eq!(
                bundle.to_bytes().len(),
                p.to_bytes().len() + BUNDLE_OVERHEAD + chain_overhead(n),
                "a chain of {n}"
            );
        }
        // A link's overhead, with its repairer, is exact too.
        bundle.auth = Auth::Linked;
        assert_eq!(bundle.to_bytes().len(), p.to_bytes().len() + LINK_OVERHEAD);
    }
}
