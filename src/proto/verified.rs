//! Bundles verified recently (PROTOCOL.md 4.12): the same bundle arrives on the group, from
//! friends and as repairs, and its signature is checked only the first time. And the link
//! memory: the hashes of the links that verified anchors vouch for (4.13).

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use siphasher::sip128::{Hasher128, SipHasher13};

use super::signing::{self, OpenError};
use super::wire::{Auth, Bundle, LinkHash, Packet};

/// How a bundle was found to be its writer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// Its signature was checked now.
    Verified,
    /// Its signature verified before.
    Remembered,
    /// A link, looked up in the link memory (whether it was found or not).
    Vouched,
}

/// A bounded set, forgetting its oldest entries first.
#[derive(Debug)]
struct Bounded<T> {
    set: HashSet<T>,
    order: VecDeque<T>,
    capacity: usize,
}

impl<T: Copy + Eq + Hash> Bounded<T> {
    fn new(capacity: usize) -> Self {
        Bounded {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn insert(&mut self, v: T) {
        if !self.set.insert(v) {
            return;
        }
        self.order.push_back(v);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
    }

    fn contains(&self, v: &T) -> bool {
        self.set.contains(v)
    }
}

/// Keyed 128-bit hashes of bundles whose signature verified, and the link hashes their chains
/// list, both bounded. The key is secret and random, so nobody can make another bundle hash
/// like a verified one.
#[derive(Debug)]
pub struct Verified {
    keys: (u64, u64),
    bundles: Bounded<u128>,
    links: Bounded<LinkHash>,
}

impl Verified {
    /// An empty set of at most `capacity` bundles, hashed with the secret `keys`, and of at
    /// most `link_memory` link hashes.
    pub fn new(capacity: usize, link_memory: usize, keys: (u64, u64)) -> Self {
        Verified {
            keys,
            bundles: Bounded::new(capacity),
            links: Bounded::new(link_memory),
        }
    }

    /// The keyed digest of a signed bundle; None for a link.
    fn digest(&self, b: &Bundle) -> Option<u128> {
        let Auth::Signed {
            key,
            signature,
            chain,
        } = &b.auth
        else {
            return None;
        };
        let mut h = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        h.write_u64(b.lobby.0);
        h.write_u64(b.source.0);
        h.write(key);
        h.write(signature);
        h.write_usize(chain.len());
        for c in chain {
            h.write(c);
        }
        h.write(&b.packets);
        Some(h.finish128().as_u128())
    }

    fn remember(&mut self, d: u128, b: &Bundle) {
        self.bundles.insert(d);
        for h in b.chain() {
            self.links.insert(*h);
        }
    }

    /// Verifies at once the signed bundles of `batch` not verified recently, and remembers
    /// those that verify; [`Verified::open`] then finds them. Returns how many were checked.
    pub fn verify_batch(&mut self, batch: &[&Bundle]) -> usize {
        let fresh: Vec<(&Bundle, u128)> = batch
            .iter()
            .filter_map(|b| Some((*b, self.digest(b)?)))
            .filter(|(_, d)| !self.bundles.contains(d))
            .collect();
        let bundles: Vec<&Bundle> = fresh.iter().map(|(b, _)| *b).collect();
        for ((b, d), ok) in fresh.iter().zip(signing::verify_many(&bundles)) {
            if ok.is_ok() {
                self.remember(*d, b);
            }
        }
        fresh.len()
    }

    /// Opens a bundle ([`signing::open`]), skipping the signature check if it verified
    /// recently; a link opens if a verified chain listed its hash, else it is
    /// [`OpenError::Unvouched`].
    pub fn open(&mut self, b: &Bundle) -> (Result<Vec<Packet>, OpenError>, Checked) {
        let Some(d) = self.digest(b) else {
            let h = signing::link_hash(b.lobby, b.source, &b.packets);
            if self.links.contains(&h) {
                return (signing::contents(b), Checked::Vouched);
            }
            return (Err(OpenError::Unvouched), Checked::Vouched);
        };
        if self.bundles.contains(&d) {
            return (signing::contents(b), Checked::Remembered);
        }
        if let Err(e) = signing::verify(b) {
            return (Err(e.into()), Checked::Verified);
        }
        self.remember(d, b);
        (signing::contents(b), Checked::Verified)
    }

    /// Bundles remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.bundles.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ids::{LobbyId, MsgId};
    use crate::proto::wire::{Body, Data};
    use ed25519_dalek::SigningKey;

    fn bundle(key: &SigningKey, seq: u64) -> Bundle {
        let me = signing::peer_id_of(&key.verifying_key().to_bytes());
        let p = Packet {
            lobby: LobbyId(1),
            body: Body::Data(Data {
                source: me,
                seq,
                msg_id: MsgId(seq),
                sent_at: 1,
                nick: "ada".into(),
                frag_index: 0,
                frag_count: 1,
                body: b"hi".to_vec(),
            }),
        };
        signing::seal(key, LobbyId(1), p.to_bytes())
    }

    #[test]
    fn a_bundle_is_verified_once_and_a_changed_one_again() {
        let key = SigningKey::from_bytes(&[4; 32]);
        let mut v = Verified::new(2, 8, (1, 2));
        let b = bundle(&key, 1);
        assert!(matches!(v.open(&b), (Ok(_), Checked::Verified)));
        assert!(
            matches!(v.open(&b), (Ok(_), Checked::Remembered)),
            "remembered"
        );
        let mut forged = b.clone();
        forged.packets[5] ^= 1;
        assert!(
            matches!(v.open(&forged), (Err(_), Checked::Verified)),
            "a changed bundle is checked, and fails"
        );
        let mut repaired = b.clone();
        repaired.repairer = Some(b.source);
        assert!(
            matches!(v.open(&repaired), (Ok(_), Checked::Remembered)),
            "the repairer is not part of what was verified"
        );
        let _ = v.open(&bundle(&key, 2));
        let _ = v.open(&bundle(&key, 3));
        assert_eq!(v.len(), 2, "bounded");
        assert!(
            matches!(v.open(&b), (Ok(_), Checked::Verified)),
            "the oldest was forgotten"
        );
    }
}
