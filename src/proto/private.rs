//! Private lobbies (PROTOCOL.md 2.4 and 4.14, revision 1.4): the lobby key, the private lobby
//! id derived from it, and sealing a private lobby's packets in an envelope. Pure computation,
//! like the rest of the core: the caller brings the random bytes (a key, a nonce), so that
//! sealing stays deterministic and testable.
//! [`Sealer`] is what a node seals a private lobby's datagrams with.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use super::ids::{Lobby, LobbyId, PeerId};
use super::wire::Envelope;

/// What the salt of a passphrase's Argon2id is hashed from, with the lobby's name.
const SALT_CONTEXT: &[u8] = b"lobbycast lobby salt v1";
/// What a private lobby id is hashed from, with the key.
const ID_CONTEXT: &[u8] = b"lobbycast private lobby v1";
/// Argon2id's memory, KiB (64 MiB), passes and lanes: RFC 9106's second recommended choice.
const ARGON2_M_KIB: u32 = 64 * 1024;
const ARGON2_T: u32 = 3;
const ARGON2_P: u32 = 1;
/// What a private tag is hashed from, with the key and the two peer ids.
const TAG_CONTEXT: &[u8] = b"lobbycast private tag v1";
/// What envelope nonces are hashed from, with the seed and a counter.
const NONCE_CONTEXT: &[u8] = b"lobbycast nonce v1";
/// Largest fragment body in a private lobby: 64 bytes under the public 960, since the
/// envelope takes 57 bytes of the datagram (PROTOCOL.md 2.4).
pub const PRIVATE_PIECE: usize = 896;

/// Why a lobby key could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// An empty passphrase protects nothing.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// Argon2id refused its parameters or could not allocate its memory.
    #[error("deriving the lobby key failed: {0}")]
    Derive(String),
}

/// Why an envelope did not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// It names another lobby than this key's.
    #[error("the envelope is of another lobby")]
    OtherLobby,
    /// The tag does not verify: another key, or a changed byte.
    #[error("the envelope does not open under this key")]
    Forged,
}

/// The 32-byte key of a private lobby: whoever holds it is in the lobby.
#[derive(Clone, PartialEq, Eq)]
pub struct LobbyKey([u8; 32]);

impl std::fmt::Debug for LobbyKey {
    /// Never prints the key itself: logs must not leak it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LobbyKey({})", self.id())
    }
}

impl LobbyKey {
    /// A key of the given bytes: random ones for a lobby created private, or one received in
    /// an invitation.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        LobbyKey(bytes)
    }

    /// The key of `lobby` joined by `passphrase` (PROTOCOL.md 2.4): Argon2id of the passphrase
    /// as typed, salted with the lobby's normalised name. Costs 64 MiB and about a third of a
    /// second.
    pub fn from_passphrase(passphrase: &str, lobby: &Lobby) -> Result<Self, KeyError> {
        if passphrase.is_empty() {
            return Err(KeyError::EmptyPassphrase);
        }
        let digest = Sha256::new()
            .chain_update(SALT_CONTEXT)
            .chain_update(lobby.name.as_bytes())
            .finalize();
        let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, Some(32))
            .map_err(|e| KeyError::Derive(e.to_string()))?;
        let mut key = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), &digest[..16], &mut key)
            .map_err(|e| KeyError::Derive(e.to_string()))?;
        Ok(LobbyKey(key))
    }

    /// The private lobby that `named` becomes under this key: its name, kept for the
    /// member's screen and files only, with the private lobby id (PROTOCOL.md 2.4).
    pub fn lobby(&self, named: &Lobby) -> Lobby {
        Lobby {
            name: named.name.clone(),
            id: self.id(),
        }
    }

    /// The private tag by which `sender` lists this lobby in its hellos to `addressee`
    /// (PROTOCOL.md 7.2): only a friend holding the key recognises it, and the tags one node
    /// sends to different friends cannot be linked.
    pub fn tag(&self, sender: PeerId, addressee: PeerId) -> LobbyId {
        let digest = Sha256::new()
            .chain_update(TAG_CONTEXT)
            .chain_update(self.0)
            .chain_update(sender.0.to_be_bytes())
            .chain_update(addressee.0.to_be_bytes())
            .finalize();
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&digest[..8]);
        LobbyId(u64::from_be_bytes(tag))
    }

    /// The key's bytes, to put in an invitation.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The private lobby id: the first 8 bytes, big-endian, of
    /// SHA-256("lobbycast private lobby v1" ‖ key). Its groups follow as for any id.
    pub fn id(&self) -> LobbyId {
        let digest = Sha256::new()
            .chain_update(ID_CONTEXT)
            .chain_update(self.0)
            .finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        LobbyId(u64::from_be_bytes(id))
    }

    /// Seals `plaintext` (the lobby's packets, a CBOR sequence) with `nonce`, which the
    /// caller draws at random for every envelope (PROTOCOL.md 4.14).
    pub fn seal(&self, nonce: [u8; 24], plaintext: &[u8]) -> Envelope {
        let lobby = self.id();
        let aad = Envelope::header(lobby);
        let sealed = XChaCha20Poly1305::new(&self.0.into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            // Encryption fails only past 2^38 bytes; a datagram is at most 1200.
            .expect("a datagram is far below the AEAD's limit");
        Envelope {
            lobby,
            nonce,
            sealed,
        }
    }

    /// Opens an envelope of this key's lobby: its packets, as a CBOR sequence.
    pub fn open(&self, e: &Envelope) -> Result<Vec<u8>, SealError> {
        if e.lobby != self.id() {
            return Err(SealError::OtherLobby);
        }
        let aad = Envelope::header(e.lobby);
        XChaCha20Poly1305::new(&self.0.into())
            .decrypt(
                XNonce::from_slice(&e.nonce),
                Payload {
                    msg: &e.sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Forged)
    }
}

/// XChaCha20 nonces that never repeat (PROTOCOL.md 4.14): the n-th is SHA-256 of a 256-bit
/// seed and of n, so they are unpredictable and no counter needs to survive a restart or be
/// shared between the members that hold a key.
#[derive(Clone)]
pub struct Nonces {
    seed: [u8; 32],
    drawn: u64,
}

impl std::fmt::Debug for Nonces {
    /// Prints not the seed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Nonces({} drawn)", self.drawn)
    }
}

impl Nonces {
    /// Nonces from `seed`: random bytes from the operating system, or a hash of secrets.
    pub fn new(seed: [u8; 32]) -> Self {
        Nonces { seed, drawn: 0 }
    }

    /// The next nonce.
    pub fn next_nonce(&mut self) -> [u8; 24] {
        let digest = Sha256::new()
            .chain_update(NONCE_CONTEXT)
            .chain_update(self.seed)
            .chain_update(self.drawn.to_be_bytes())
            .finalize();
        self.drawn += 1;
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(&digest[..24]);
        nonce
    }
}

/// Seals one private lobby's datagrams: its key and its nonces.
#[derive(Clone)]
pub struct Sealer {
    key: LobbyKey,
    nonces: Nonces,
}

impl std::fmt::Debug for Sealer {
    /// Prints neither the key nor the seed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({:?}, {} sealed)", self.key, self.nonces.drawn)
    }
}

impl Sealer {
    /// A sealer under `key` whose nonces come from `seed` (random bytes from the operating
    /// system's generator).
    pub fn new(key: LobbyKey, seed: [u8; 32]) -> Self {
        Sealer {
            key,
            nonces: Nonces::new(seed),
        }
    }

    /// The lobby key.
    pub fn key(&self) -> &LobbyKey {
        &self.key
    }

    /// Envelopes sealed so far.
    pub fn sealed(&self) -> u64 {
        self.nonces.drawn
    }

    /// Seals a datagram's packets of the lobby, under the next nonce.
    pub fn seal(&mut self, plaintext: &[u8]) -> Envelope {
        let nonce = self.nonces.next_nonce();
        self.key.seal(nonce, plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_opens_under_its_key_only() {
        let key = LobbyKey::from_bytes([7; 32]);
        let e = key.seal([1; 24], b"packets");
        assert_eq!(e.lobby, key.id());
        assert_eq!(key.open(&e), Ok(b"packets".to_vec()));
        let other = LobbyKey::from_bytes([8; 32]);
        assert_eq!(other.open(&e), Err(SealError::OtherLobby));
        let mut moved = e.clone();
        moved.lobby = other.id();
        assert_eq!(
            other.open(&moved),
            Err(SealError::Forged),
            "the lobby is bound"
        );
        let mut changed = e.clone();
        changed.sealed[0] ^= 1;
        assert_eq!(key.open(&changed), Err(SealError::Forged));
        assert!(
            !format!("{key:?}").contains("0707"),
            "the key stays out of logs"
        );
    }

    #[test]
    fn a_sealer_never_repeats_a_nonce_and_two_seeds_never_meet() {
        let key = LobbyKey::from_bytes([7; 32]);
        let mut a = Sealer::new(key.clone(), [1; 32]);
        let mut b = Sealer::new(key.clone(), [2; 32]);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            for s in [&mut a, &mut b] {
                let e = s.seal(b"x");
                assert!(seen.insert(e.nonce), "a nonce came twice");
                assert_eq!(key.open(&e), Ok(b"x".to_vec()));
            }
        }
        assert_eq!(a.sealed(), 1000);
        assert!(
            !format!("{a:?}").contains("0101"),
            "the seed stays out of logs"
        );
    }

    #[test]
    fn an_empty_passphrase_is_refused() {
        let lobby = Lobby::new("team").unwrap();
        assert_eq!(
            LobbyKey::from_passphrase("", &lobby),
            Err(KeyError::EmptyPassphrase)
        );
    }
}
