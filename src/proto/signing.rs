//! Identities and signatures (PROTOCOL.md 4.12, revision 1.3): the peer id of a public key,
//! and sealing and verifying a [`Bundle`] of a writer's packets. Pure computation, like the
//! rest of the core.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::ids::{LobbyId, PeerId};
use super::wire::{self, Body, Bundle, DecodeError, Decoded, Packet};

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

/// Why a bundle's contents were refused (after its signature verified, or not).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The signature or the key.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The packets inside do not decode.
    #[error("inside a bundle: {0}")]
    Decode(#[from] DecodeError),
    /// A packet inside is of another lobby or writer, or of a kind a bundle may not hold
    /// (requests, repairs, friend-link packets, bundles).
    #[error("a bundle holds a packet that is not its writer's own in its lobby")]
    Foreign,
    /// The packets inside are of more than one kind, or a repair holds something else than
    /// data.
    #[error("a bundle mixes kinds, or a repair holds something else than data")]
    Mixed,
}

/// Verifies a bundle, then decodes the packets inside (see [`contents`]).
pub fn open(b: &Bundle) -> Result<Vec<Packet>, OpenError> {
    verify(b)?;
    contents(b)
}

/// Decodes the packets inside a bundle whose signature is known good: each must be a data,
/// session or heartbeat packet of the bundle's lobby written by its source, all of one kind,
/// and data if the bundle is a repair (PROTOCOL.md 4.12). Packets of kinds or versions this
/// revision does not know are skipped, as in a datagram. Any other fault refuses the whole
/// bundle.
pub fn contents(b: &Bundle) -> Result<Vec<Packet>, OpenError> {
    let mut out: Vec<Packet> = Vec::new();
    for item in wire::decode_datagram(&b.packets) {
        let p = match item? {
            Decoded::Packet(p) => p,
            Decoded::UnknownVersion(_) | Decoded::UnsupportedKind(_) => continue,
            Decoded::Link(_) | Decoded::Bundle(_) => return Err(OpenError::Foreign),
        };
        let writer = match &p.body {
            Body::Data(d) => d.source,
            Body::Session(s) => s.sender,
            Body::Heartbeat(h) => h.sender,
            Body::Request(_) | Body::Repair { .. } => return Err(OpenError::Foreign),
        };
        if p.lobby != b.lobby || writer != b.source {
            return Err(OpenError::Foreign);
        }
        let same_kind = out
            .first()
            .is_none_or(|f| std::mem::discriminant(&f.body) == std::mem::discriminant(&p.body));
        if !same_kind || (b.repairer.is_some() && !matches!(p.body, Body::Data(_))) {
            return Err(OpenError::Mixed);
        }
        out.push(p);
    }
    Ok(out)
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
        repairer: None,
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
    use crate::proto::ids::MsgId;
    use crate::proto::wire::{Data, Heartbeat, Request, SeqRange};

    fn data(lobby: LobbyId, source: PeerId, seq: u64) -> Packet {
        Packet {
            lobby,
            body: Body::Data(Data {
                source,
                seq,
                msg_id: MsgId(seq + 100),
                sent_at: 1_767_225_601_234,
                nick: "ada".into(),
                frag_index: 0,
                frag_count: 1,
                body: b"hi".to_vec(),
            }),
        }
    }

    fn bytes_of(packets: &[Packet]) -> Vec<u8> {
        packets.iter().flat_map(Packet::to_bytes).collect()
    }

    #[test]
    fn an_opened_bundle_gives_its_writers_packets_and_refuses_anyone_elses() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let me = peer_id_of(&key.verifying_key().to_bytes());
        let lobby = LobbyId(5);
        let beat = Packet {
            lobby,
            body: Body::Heartbeat(Heartbeat {
                sender: me,
                nick: "ada".into(),
                beat: MsgId(7),
                sent_at: 1,
                leaving: false,
            }),
        };
        let own = vec![data(lobby, me, 1), data(lobby, me, 2)];
        let mut with_unknown = bytes_of(&own);
        // A kind of a later revision inside is skipped, as in a datagram.
        with_unknown.extend_from_slice(&[0x83, 0x01, 0x0c, 0x00]);
        assert_eq!(open(&seal(&key, lobby, with_unknown)), Ok(own.clone()));
        let mut repair = seal(&key, lobby, bytes_of(&own));
        repair.repairer = Some(PeerId(3));
        assert_eq!(open(&repair), Ok(own.clone()), "the repairer is not signed");
        let beats = vec![beat.clone()];
        assert_eq!(
            open(&seal(&key, lobby, bytes_of(&beats))),
            Ok(beats.clone())
        );
        // One kind per bundle, and a repair holds data.
        let mixed = vec![data(lobby, me, 1), beat];
        assert_eq!(
            open(&seal(&key, lobby, bytes_of(&mixed))),
            Err(OpenError::Mixed)
        );
        let mut repaired_beat = seal(&key, lobby, bytes_of(&beats));
        repaired_beat.repairer = Some(me);
        assert_eq!(open(&repaired_beat), Err(OpenError::Mixed));

        let other = PeerId(me.0 ^ 1);
        let request = Packet {
            lobby,
            body: Body::Request(Request {
                sender: me,
                source: other,
                hint: None,
                ranges: vec![SeqRange(1, 2)],
            }),
        };
        for bad in [
            vec![data(lobby, other, 1)],
            vec![data(LobbyId(6), me, 1)],
            vec![request],
        ] {
            let b = seal(&key, lobby, bytes_of(&bad));
            assert_eq!(open(&b), Err(OpenError::Foreign), "{bad:?}");
        }
        let nested = seal(&key, lobby, seal(&key, lobby, bytes_of(&own)).to_bytes());
        assert_eq!(open(&nested), Err(OpenError::Foreign));
        let mut forged = seal(&key, lobby, bytes_of(&own));
        forged.packets.push(0x80);
        assert_eq!(
            open(&forged),
            Err(OpenError::Signature(SignatureError::BadSignature))
        );
    }

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
