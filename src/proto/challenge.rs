//! The lobby challenge h(L, N, F) (PROTOCOL.md 7.7): how two friends find a lobby they share
//! without naming it to a friend who is not in it.

use std::hash::Hasher;

use siphasher::sip::SipHasher24;

use super::ids::{LobbyId, MsgId, PeerId};

/// The second key word: the ASCII of `lbc-chlg` read as a little-endian integer, so that a
/// challenge value never equals a lobby id or any other SipHash the protocol computes.
pub const KEY1: u64 = u64::from_le_bytes(*b"lbc-chlg");

/// h(L, N, F): SipHash-2-4 keyed by (L, [`KEY1`]) of N then F, both little-endian. Only a
/// member of L that saw message N can compute it, and it matches only at friend F.
pub fn hash(lobby: LobbyId, msg: MsgId, friend: PeerId) -> u64 {
    let mut h = SipHasher24::new_with_keys(lobby.0, KEY1);
    let mut input = [0u8; 16];
    input[..8].copy_from_slice(&msg.0.to_le_bytes());
    input[8..].copy_from_slice(&friend.0.to_le_bytes());
    h.write(&input);
    h.finish()
}
