//! Writers' keys and signed bundles for tests that hand-craft what a node receives
//! (PROTOCOL.md 4.12): a data, session or heartbeat packet counts only inside its writer's
//! signed bundle.

#![allow(dead_code)]

use lobbycast::proto::wire::Packet;
use lobbycast::proto::{LobbyId, PeerId, SigningKey, signing};

/// The key of test writer `n`.
pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// The peer id of test writer `n`.
pub fn id(n: u8) -> PeerId {
    id_of(&key(n))
}

/// The peer id of a key.
pub fn id_of(key: &SigningKey) -> PeerId {
    signing::peer_id_of(&key.verifying_key().to_bytes())
}

/// `packets` (all of one kind, written by `key`'s owner in `lobby`) as one signed bundle,
/// encoded.
pub fn bundle(key: &SigningKey, lobby: LobbyId, packets: &[Packet]) -> Vec<u8> {
    let bytes = packets.iter().flat_map(Packet::to_bytes).collect();
    signing::seal(key, lobby, bytes).to_bytes()
}

/// Like [`bundle`], sent again as a repair by `repairer`.
pub fn repair(key: &SigningKey, lobby: LobbyId, packets: &[Packet], repairer: PeerId) -> Vec<u8> {
    let bytes = packets.iter().flat_map(Packet::to_bytes).collect();
    let mut b = signing::seal(key, lobby, bytes);
    b.repairer = Some(repairer);
    b.to_bytes()
}
