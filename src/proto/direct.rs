//! Direct messages (PROTOCOL.md 4.15, 7.10): sealing a message to one peer's key, and what a
//! node keeps to place, deliver, acknowledge and retry them. Pure state like the rest of the
//! core: the node hands in `now`, the nonces come from its generator.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::dedup::Dedup;
use super::hash::SeededState;
use super::ids::{LobbyId, MsgId, PeerId};
use super::signing::peer_id_of;
use super::wire::{Content, DecodeError, Direct, MAX_DIRECT_TEXT};

/// What a direct key is hashed from, with the X25519 shared secret.
const KEY_CONTEXT: &[u8] = b"lobbycast direct v1";
/// Hops a writer gives its direct messages (PROTOCOL.md 7.10).
pub const DIRECT_HOPS: u8 = 4;
/// A message not acknowledged is sent again after 1, 2, 4 and then every 8 s: through three
/// proxies at 10 % loss a send and its acknowledgement both arrive about one time in two, so
/// the copies must keep coming for a while (PROTOCOL.md 7.10).
fn retry_gap(sent: usize) -> Duration {
    Duration::from_secs(1 << sent.saturating_sub(1).min(3))
}
/// How long a message is sent again before it is reported not delivered.
pub const GIVE_UP: Duration = Duration::from_secs(120);
/// Own messages waiting for their acknowledgement, at most.
pub const MAX_PENDING: usize = 256;
/// How long ids placed or delivered are remembered, and how many.
const SEEN_WINDOW: Duration = Duration::from_secs(600);
const SEEN_CAPACITY: usize = 1 << 16;
/// Writers' keys remembered, at most.
const MAX_KEYS: usize = 4096;
/// Bytes per second of others' direct messages placed per sender, and the burst.
const PLACE_RATE: f64 = 64.0 * 1024.0;
/// Least time between two acknowledgements of one id.
const ACK_GAP: Duration = Duration::from_secs(1);

/// Why a direct message could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Its key is not a valid Ed25519 public key, or not the sender's (PROTOCOL.md 4.15).
    #[error("the key is not the sender's")]
    Key,
    /// The tag does not verify: not sealed by the sender to this node, or changed.
    #[error("it does not open")]
    Forged,
    /// It opened, but the content breaks the schema.
    #[error("bad content: {0}")]
    Content(#[from] DecodeError),
}

/// Why a direct message could not be sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectError {
    /// This node never saw the peer's key (in any lobby they share).
    #[error("the key of peer {0} is not known")]
    UnknownKey(PeerId),
    /// The text is longer than a direct message carries.
    #[error("message is {0} bytes; the limit is {MAX_DIRECT_TEXT} bytes")]
    TooLong(usize),
    /// Nothing to send.
    #[error("message is empty")]
    Empty,
    /// A message to oneself goes nowhere.
    #[error("that is this node")]
    ToSelf,
    /// Too many messages wait for their acknowledgement.
    #[error("{MAX_PENDING} direct messages wait for an acknowledgement already")]
    TooManyPending,
}

/// The direct key of `mine` and the peer whose Ed25519 public key is `theirs` (PROTOCOL.md
/// 4.15): both ends derive the same. None if `theirs` is not a valid key.
pub fn direct_key(mine: &SigningKey, theirs: &[u8; 32]) -> Option<[u8; 32]> {
    let theirs = VerifyingKey::from_bytes(theirs).ok()?;
    let shared = theirs.to_montgomery().mul_clamped(mine.to_scalar_bytes());
    Some(
        Sha256::new()
            .chain_update(KEY_CONTEXT)
            .chain_update(shared.to_bytes())
            .finalize()
            .into(),
    )
}

/// Seals `content` from `me` to the peer `to` of key `to_key`. None if `to_key` is not a
/// valid key.
pub fn seal(
    me: &SigningKey,
    to: PeerId,
    to_key: &[u8; 32],
    id: MsgId,
    nonce: [u8; 24],
    content: &Content,
) -> Option<Direct> {
    let d = direct_key(me, to_key)?;
    let key = me.verifying_key().to_bytes();
    let sender = peer_id_of(&key);
    let aad = Direct::header(sender, to, id);
    let sealed = XChaCha20Poly1305::new(&d.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &content.to_bytes(),
                aad: &aad,
            },
        )
        .expect("a direct message is far below the AEAD's limit");
    Some(Direct {
        sender,
        addressee: to,
        id,
        hops: DIRECT_HOPS,
        key,
        nonce,
        sealed,
    })
}

/// Opens a direct message addressed to `me`'s owner.
pub fn open(me: &SigningKey, d: &Direct) -> Result<Content, OpenError> {
    if peer_id_of(&d.key) != d.sender {
        return Err(OpenError::Key);
    }
    let key = direct_key(me, &d.key).ok_or(OpenError::Key)?;
    let aad = Direct::header(d.sender, d.addressee, d.id);
    let plain = XChaCha20Poly1305::new(&key.into())
        .decrypt(
            XNonce::from_slice(&d.nonce),
            Payload {
                msg: &d.sealed,
                aad: &aad,
            },
        )
        .map_err(|_| OpenError::Forged)?;
    Ok(Content::decode(&plain)?)
}

/// An own message waiting for its acknowledgement.
#[derive(Debug)]
struct Pending {
    to: PeerId,
    key: [u8; 32],
    content: Content,
    /// Sends so far.
    sent: usize,
    first_at: Instant,
    next_at: Instant,
}

/// What is known of a writer: its key, and the lobby whose group its own bundles came on.
#[derive(Debug, Clone, Copy)]
struct Known {
    key: [u8; 32],
    group: Option<(LobbyId, Instant)>,
}

/// A sender's placing budget: a token bucket in bytes.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What a received direct message asks of the node.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// For this node, first time: show it (a text or an invitation), and acknowledge it.
    Deliver { content: Content, ack: bool },
    /// For this node again: acknowledge it (unless one went out within the last second).
    Again { ack: bool },
    /// An acknowledgement of own message `id`, first time.
    Acked { id: MsgId, by: PeerId },
    /// For another peer: place it on.
    PlaceOn,
    /// Nothing to do (a duplicate, a forgery, an unknown content, over budget).
    Drop,
}

/// Direct messages at one node.
#[derive(Debug)]
pub(crate) struct Directs {
    pending: HashMap<MsgId, Pending>,
    /// Copies placed recently, by id and nonce: a copy sent again has a new nonce, and must
    /// pass the proxies that placed the first one.
    placed: Dedup,
    /// Ids delivered recently.
    delivered: Dedup,
    /// When each delivered id was last acknowledged.
    acked_at: HashMap<MsgId, Instant>,
    known: HashMap<PeerId, Known>,
    known_order: VecDeque<PeerId>,
    budgets: HashMap<PeerId, Bucket>,
}

impl Directs {
    pub fn new(hasher: SeededState) -> Self {
        Directs {
            pending: HashMap::new(),
            placed: Dedup::new(SEEN_WINDOW, SEEN_CAPACITY, hasher),
            delivered: Dedup::new(SEEN_WINDOW, SEEN_CAPACITY, hasher),
            acked_at: HashMap::new(),
            known: HashMap::new(),
            known_order: VecDeque::new(),
            budgets: HashMap::new(),
        }
    }

    /// A writer's verified bundle: its key, and the lobby whose group it came on if it came
    /// there from its writer (not as a repair).
    pub fn note_writer(
        &mut self,
        now: Instant,
        peer: PeerId,
        key: [u8; 32],
        group: Option<LobbyId>,
    ) {
        match self.known.get_mut(&peer) {
            Some(k) => {
                k.key = key;
                if let Some(l) = group {
                    k.group = Some((l, now));
                }
            }
            None => {
                if self.known_order.len() >= MAX_KEYS
                    && let Some(old) = self.known_order.pop_front()
                {
                    self.known.remove(&old);
                }
                self.known_order.push_back(peer);
                self.known.insert(
                    peer,
                    Known {
                        key,
                        group: group.map(|l| (l, now)),
                    },
                );
            }
        }
    }

    /// Whether this node knows `peer`'s key, so it can write to it.
    pub fn knows(&self, peer: PeerId) -> bool {
        self.known.contains_key(&peer)
    }

    /// The lobby whose group `peer` was heard on within `timeout`.
    pub fn group_of(&self, peer: PeerId, now: Instant, timeout: Duration) -> Option<LobbyId> {
        let (l, at) = self.known.get(&peer)?.group?;
        (now.saturating_duration_since(at) < timeout).then_some(l)
    }

    /// A new own message: sealed with `nonce`, remembered until acknowledged. The caller
    /// places it.
    pub fn write(
        &mut self,
        me: &SigningKey,
        now: Instant,
        to: PeerId,
        id: MsgId,
        nonce: [u8; 24],
        content: Content,
    ) -> Result<Direct, DirectError> {
        let key = self.known.get(&to).ok_or(DirectError::UnknownKey(to))?.key;
        let acked = matches!(content, Content::Ack(_));
        if !acked && self.pending.len() >= MAX_PENDING {
            return Err(DirectError::TooManyPending);
        }
        let d = seal(me, to, &key, id, nonce, &content).ok_or(DirectError::UnknownKey(to))?;
        // Acknowledgements are not acknowledged, so not retried.
        if !acked {
            self.pending.insert(
                id,
                Pending {
                    to,
                    key,
                    content,
                    sent: 1,
                    first_at: now,
                    next_at: now + retry_gap(1),
                },
            );
        }
        Ok(d)
    }

    /// Own messages due again at `now`, sealed anew with nonces from `nonce`; and those
    /// given up (not delivered), with their addressee.
    pub fn due(
        &mut self,
        me: &SigningKey,
        now: Instant,
        mut nonce: impl FnMut() -> [u8; 24],
    ) -> (Vec<Direct>, Vec<(MsgId, PeerId)>) {
        let mut again = Vec::new();
        let mut failed = Vec::new();
        for (&id, p) in &mut self.pending {
            if p.next_at > now {
                continue;
            }
            if now.saturating_duration_since(p.first_at) >= GIVE_UP {
                failed.push((id, p.to));
                continue;
            }
            if let Some(d) = seal(me, p.to, &p.key, id, nonce(), &p.content) {
                again.push(d);
            }
            p.sent += 1;
            p.next_at = (now + retry_gap(p.sent)).min(p.first_at + GIVE_UP);
        }
        for (id, _) in &failed {
            self.pending.remove(id);
        }
        failed.sort_unstable();
        again.sort_unstable_by_key(|d| d.id.0);
        (again, failed)
    }

    /// The next retry or give-up.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.next_at).min()
    }

    /// Own messages not acknowledged yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A direct message received, from `me`'s point of view.
    pub fn receive(&mut self, me: &SigningKey, now: Instant, d: &Direct) -> Received {
        let my_id = peer_id_of(&me.verifying_key().to_bytes());
        if d.addressee != my_id {
            let copy = MsgId(d.id.0 ^ u64::from_be_bytes(d.nonce[..8].try_into().expect("8")));
            if d.sender == my_id || !self.placed.insert(now, copy) || !self.spend(now, d) {
                return Received::Drop;
            }
            return Received::PlaceOn;
        }
        let content = match open(me, d) {
            Ok(c) => c,
            Err(_) => return Received::Drop,
        };
        // The writer's key is known from now on: the answer can be sealed.
        self.note_writer(now, d.sender, d.key, None);
        match content {
            Content::Ack(id) => match self.pending.get(&id) {
                Some(p) if p.to == d.sender => {
                    self.pending.remove(&id);
                    Received::Acked { id, by: d.sender }
                }
                _ => Received::Drop,
            },
            content @ (Content::Text { .. } | Content::Invitation { .. }) => {
                let ack = self.ack_due(now, d.id);
                if self.delivered.insert(now, d.id) {
                    Received::Deliver { content, ack }
                } else {
                    Received::Again { ack }
                }
            }
            Content::Unknown(_) => Received::Drop,
        }
    }

    fn ack_due(&mut self, now: Instant, id: MsgId) -> bool {
        let due = self
            .acked_at
            .get(&id)
            .is_none_or(|&at| now.saturating_duration_since(at) >= ACK_GAP);
        if due {
            if self.acked_at.len() >= SEEN_CAPACITY {
                self.acked_at.clear();
            }
            self.acked_at.insert(id, now);
        }
        due
    }

    /// Takes a message's bytes from its sender's placing budget (PROTOCOL.md 7.10).
    fn spend(&mut self, now: Instant, d: &Direct) -> bool {
        if self.budgets.len() >= MAX_KEYS && !self.budgets.contains_key(&d.sender) {
            self.budgets
                .retain(|_, b| now.saturating_duration_since(b.at) < Duration::from_secs(1));
            if self.budgets.len() >= MAX_KEYS {
                return false;
            }
        }
        let b = self.budgets.entry(d.sender).or_insert(Bucket {
            tokens: PLACE_RATE,
            at: now,
        });
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + dt * PLACE_RATE).min(PLACE_RATE);
        b.at = now;
        let cost = d.sealed.len() as f64 + 100.0;
        if b.tokens < cost {
            return false;
        }
        b.tokens -= cost;
        true
    }

    /// Forgets what has aged: ids, acknowledgement times, budgets.
    pub fn expire(&mut self, now: Instant) {
        self.placed.expire(now);
        self.delivered.expire(now);
        self.acked_at
            .retain(|_, at| now.saturating_duration_since(*at) < SEEN_WINDOW);
        self.budgets
            .retain(|_, b| now.saturating_duration_since(b.at) < Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn id(k: &SigningKey) -> PeerId {
        peer_id_of(&k.verifying_key().to_bytes())
    }

    fn text(t: &str) -> Content {
        Content::Text {
            sent_at: 5,
            nick: "ann".into(),
            text: t.into(),
        }
    }

    #[test]
    fn both_ends_derive_one_key_and_only_the_addressee_opens() {
        let (a, b, c) = (key(1), key(2), key(3));
        let ka = a.verifying_key().to_bytes();
        let kb = b.verifying_key().to_bytes();
        assert_eq!(direct_key(&a, &kb), direct_key(&b, &ka));
        let d = seal(&a, id(&b), &kb, MsgId(9), [4; 24], &text("hi")).unwrap();
        assert_eq!(open(&b, &d), Ok(text("hi")));
        assert_eq!(open(&c, &d), Err(OpenError::Forged));
        // Another sender id with the same key, or a moved id, does not open.
        let mut forged = d.clone();
        forged.sender = id(&c);
        assert_eq!(open(&b, &forged), Err(OpenError::Key));
        let mut moved = d.clone();
        moved.id = MsgId(10);
        assert_eq!(open(&b, &moved), Err(OpenError::Forged));
        // Hops are not bound: proxies count them down.
        let mut hop = d.clone();
        hop.hops = 1;
        assert_eq!(open(&b, &hop), Ok(text("hi")));
    }

    #[test]
    fn a_message_is_retried_until_acknowledged_then_given_up() {
        let (a, b) = (key(1), key(2));
        let t0 = Instant::now();
        let mut da = Directs::new(SeededState::new(1, 2));
        let mut db = Directs::new(SeededState::new(3, 4));
        da.note_writer(t0, id(&b), b.verifying_key().to_bytes(), None);
        let first = da
            .write(&a, t0, id(&b), MsgId(7), [0; 24], text("x"))
            .unwrap();
        // Retries 1, 2, 4 and then every 8 s after the one before, until two minutes are up.
        let mut at = t0;
        let mut gaps = vec![1, 2, 4];
        gaps.extend([8; 14]);
        for gap in gaps {
            at += Duration::from_secs(gap);
            assert_eq!(da.next_deadline(), Some(at));
            let (again, failed) = da.due(&a, at, || [1; 24]);
            assert_eq!((again.len(), failed.len()), (1, 0), "at {:?}", at - t0);
            assert_eq!(again[0].id, MsgId(7));
        }
        assert_eq!(at - t0, Duration::from_secs(119));
        at = t0 + GIVE_UP;
        assert_eq!(da.next_deadline(), Some(at));
        let (again, failed) = da.due(&a, at, || [1; 24]);
        assert!(again.is_empty());
        assert_eq!(failed, [(MsgId(7), id(&b))]);
        assert_eq!(da.pending(), 0);
        // Delivered once, acknowledged each time (at most once a second).
        assert_eq!(
            db.receive(&b, t0, &first),
            Received::Deliver {
                content: text("x"),
                ack: true
            }
        );
        assert_eq!(db.receive(&b, t0, &first), Received::Again { ack: false });
        assert_eq!(
            db.receive(&b, t0 + ACK_GAP, &first),
            Received::Again { ack: true }
        );
    }

    #[test]
    fn an_acknowledgement_ends_the_retries() {
        let (a, b) = (key(1), key(2));
        let t0 = Instant::now();
        let mut da = Directs::new(SeededState::new(1, 2));
        let mut db = Directs::new(SeededState::new(3, 4));
        da.note_writer(t0, id(&b), b.verifying_key().to_bytes(), None);
        let m = da
            .write(&a, t0, id(&b), MsgId(7), [0; 24], text("x"))
            .unwrap();
        assert!(matches!(db.receive(&b, t0, &m), Received::Deliver { .. }));
        let ack = db
            .write(&b, t0, id(&a), MsgId(8), [2; 24], Content::Ack(MsgId(7)))
            .unwrap();
        assert_eq!(db.pending(), 0, "acknowledgements are not retried");
        assert_eq!(
            da.receive(&a, t0, &ack),
            Received::Acked {
                id: MsgId(7),
                by: id(&b)
            }
        );
        assert_eq!(da.next_deadline(), None);
        assert_eq!(da.receive(&a, t0, &ack), Received::Drop);
    }

    #[test]
    fn an_invitation_names_a_normalised_lobby_or_is_refused() {
        let invitation = |name: &str| Content::Invitation {
            sent_at: 1,
            nick: "ann".into(),
            name: name.into(),
            key: [9; 32],
            again: false,
        };
        let good = invitation("team room");
        assert_eq!(Content::decode(&good.to_bytes()), Ok(good));
        for bad in ["Team", " team", "", "a\nb"] {
            assert!(
                matches!(
                    Content::decode(&invitation(bad).to_bytes()),
                    Err(DecodeError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn others_messages_are_placed_once_and_within_the_budget() {
        let (a, b, c) = (key(1), key(2), key(3));
        let t0 = Instant::now();
        let mut dc = Directs::new(SeededState::new(5, 6));
        let kb = b.verifying_key().to_bytes();
        let m = seal(&a, id(&b), &kb, MsgId(1), [0; 24], &text("x")).unwrap();
        assert_eq!(dc.receive(&c, t0, &m), Received::PlaceOn);
        assert_eq!(dc.receive(&c, t0, &m), Received::Drop, "placed once");
        let mut placed = 0;
        for n in 2..2000u64 {
            let m = seal(&a, id(&b), &kb, MsgId(n), [0; 24], &text(&"y".repeat(900))).unwrap();
            if dc.receive(&c, t0, &m) == Received::PlaceOn {
                placed += 1;
            }
        }
        assert!(
            (60..=70).contains(&placed),
            "{placed} placed in one instant"
        );
    }
}
