//! Identities and signatures (PROTOCOL.md 4.12, revision 1.3): the peer id of a public key,
//! and sealing and verifying a [`Bundle`] of a writer's packets. Pure computation, like the
//! rest of the core.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::ids::{LobbyId, PeerId};
use super::wire::Bundle;

/// What the peer id of a key is hashed with.
const PEER_ID_CONTEXT: &[u8] = b"lobbycast peer id v1";
/// What a bundle's signature covers first.
const BUNDLE_CONTEXT: &[u8] = b"lobbycast bundle v1";

/// The peer id of a public key: the first 8 bytes, big-endian, of
/// SHA-256("lobbycast peer id v1" ‖ key). Finding a key for a given id takes 2^64 tries.
pub fn peer_id_of(key: &[u8; 32]) -> PeerId {
    let digest = Sha256::new()
        .chain_update(PEER_ID_CONTEXT)
        .chain_update(key)
        .finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    PeerId(u64::from_be_bytes(id))
}

/// Why a bundle was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Its source is not the peer id of its key: someone else's id under one's own key.
    #[error("the source is not the key's peer id")]
    WrongSource,
    /// The key is not a valid Ed25519 point, or a weak (small-order) one.
    #[error("not a usable Ed25519 key")]
    BadKey,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
}

/// The bytes a bundle's signature covers.
fn signed_bytes(lobby: LobbyId, packets: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(BUNDLE_CONTEXT.len() + 8 + packets.len());
    m.extend_from_slice(BUNDLE_CONTEXT);
    m.extend_from_slice(&lobby.0.to_be_bytes());
    m.extend_from_slice(packets);
    m
}

/// Signs `packets` (a CBOR sequence of the key owner's packets of `lobby`) into a bundle.
pub fn seal(key: &SigningKey, lobby: LobbyId, packets: Vec<u8>) -> Bundle {
    let public = key.verifying_key().to_bytes();
    let signature = key.sign(&signed_bytes(lobby, &packets)).to_bytes();
    Bundle {
        lobby,
        source: peer_id_of(&public),
        key: public,
        signature,
        packets,
    }
}

/// Checks that a bundle comes from the key its source claims and that the signature over its
/// lobby and packets verifies (strictly: no weak keys, no malleable signatures).
pub fn verify(b: &Bundle) -> Result<(), SignatureError> {
    if peer_id_of(&b.key) != b.source {
        return Err(SignatureError::WrongSource);
    }
    let key = VerifyingKey::from_bytes(&b.key).map_err(|_| SignatureError::BadKey)?;
    if key.is_weak() {
        return Err(SignatureError::BadKey);
    }
    key.verify_strict(
        &signed_bytes(b.lobby, &b.packets),
        &Signature::from_bytes(&b.signature),
    )
    .map_err(|_| SignatureError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_bundle_verifies_and_any_change_breaks_it() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let b = seal(&key, LobbyId(5), vec![0x80, 0x81, 0x82]);
        assert_eq!(verify(&b), Ok(()));
        let mut other = b.clone();
        other.lobby = LobbyId(6);
        assert_eq!(verify(&other), Err(SignatureError::BadSignature));
        let mut other = b.clone();
        other.packets[1] ^= 1;
        assert_eq!(verify(&other), Err(SignatureError::BadSignature));
        let mut other = b.clone();
        other.source = PeerId(b.source.0 ^ 1);
        assert_eq!(verify(&other), Err(SignatureError::WrongSource));
        // Another key signing the same bytes is another peer: the source no longer matches.
        let mut other = b.clone();
        other.key = SigningKey::from_bytes(&[10; 32]).verifying_key().to_bytes();
        assert_eq!(verify(&other), Err(SignatureError::WrongSource));
    }
}
