//! Identities and signatures (PROTOCOL.md 4.12, revision 1.3): the peer id of a public key,
//! and sealing and verifying a [`Bundle`] of a writer's packets. Pure computation, like the
//! rest of the core.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::ids::{LobbyId, PeerId};
use super::wire::{self, Auth, Body, Bundle, DecodeError, Decoded, LinkHash, MAX_CHAIN, Packet};

/// What the peer id of a key is hashed with.
const PEER_ID_CONTEXT: &[u8] = b"lobbycast peer id v1";
/// What a bundle's signature covers first.
const BUNDLE_CONTEXT: &[u8] = b"lobbycast bundle v1";
/// What an anchor's signature covers first.
const ANCHOR_CONTEXT: &[u8] = b"lobbycast anchor v1";
/// What a link's hash covers first.
const LINK_CONTEXT: &[u8] = b"lobbycast link v1";

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
    /// A link carries no signature: a verified chain must list its hash.
    #[error("a link is not signed")]
    Unsigned,
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
    /// A link whose hash no verified chain lists (yet): its anchor was lost or comes later,
    /// or it is forged (PROTOCOL.md 4.13).
    #[error("a link that no verified chain vouches for")]
    Unvouched,
    /// The packets inside are of more than one kind, or a repair, an anchor or a link holds
    /// something else than data.
    #[error("a bundle mixes kinds, or a repair, anchor or link holds something else than data")]
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
            Decoded::Link(_)
            | Decoded::Bundle(_)
            | Decoded::Envelope(_)
            | Decoded::Direct(_)
            | Decoded::List(_)
            | Decoded::WhoIs(_) => {
                return Err(OpenError::Foreign);
            }
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
        let data_only = b.repairer.is_some() || b.is_link() || !b.chain().is_empty();
        if !same_kind || (data_only && !matches!(p.body, Body::Data(_))) {
            return Err(OpenError::Mixed);
        }
        out.push(p);
    }
    Ok(out)
}

/// The bytes a bundle's signature covers: with a chain, an anchor's (PROTOCOL.md 4.12).
fn signed_bytes(lobby: LobbyId, chain: &[LinkHash], packets: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(ANCHOR_CONTEXT.len() + 9 + 16 * chain.len() + packets.len());
    if chain.is_empty() {
        m.extend_from_slice(BUNDLE_CONTEXT);
        m.extend_from_slice(&lobby.0.to_be_bytes());
    } else {
        m.extend_from_slice(ANCHOR_CONTEXT);
        m.extend_from_slice(&lobby.0.to_be_bytes());
        // Decoding refuses longer chains, so the count always fits its byte.
        m.push(u8::try_from(chain.len()).unwrap_or(u8::MAX));
        for h in chain {
            m.extend_from_slice(h);
        }
    }
    m.extend_from_slice(packets);
    m
}

/// Signs `packets` (a CBOR sequence of the key owner's packets of `lobby`) into a bundle.
pub fn seal(key: &SigningKey, lobby: LobbyId, packets: Vec<u8>) -> Bundle {
    seal_anchor(key, lobby, Vec::new(), packets)
}

/// Signs `packets` into a bundle that vouches for the links whose hashes are `chain` (an
/// anchor; with an empty chain, a plain bundle). At most [`MAX_CHAIN`] hashes.
pub fn seal_anchor(
    key: &SigningKey,
    lobby: LobbyId,
    mut chain: Vec<LinkHash>,
    packets: Vec<u8>,
) -> Bundle {
    chain.truncate(MAX_CHAIN);
    let public = key.verifying_key().to_bytes();
    let signature = key.sign(&signed_bytes(lobby, &chain, &packets)).to_bytes();
    Bundle {
        lobby,
        source: peer_id_of(&public),
        auth: Auth::Signed {
            key: public,
            signature,
            chain,
        },
        packets,
        repairer: None,
    }
}

/// The hash by which an anchor vouches for a link: the first 16 bytes of
/// SHA-256("lobbycast link v1" ‖ lobby ‖ source ‖ packets) (PROTOCOL.md 4.13).
pub fn link_hash(lobby: LobbyId, source: PeerId, packets: &[u8]) -> LinkHash {
    let digest = Sha256::new()
        .chain_update(LINK_CONTEXT)
        .chain_update(lobby.0.to_be_bytes())
        .chain_update(source.0.to_be_bytes())
        .chain_update(packets)
        .finalize();
    let mut h = [0u8; 16];
    h.copy_from_slice(&digest[..16]);
    h
}

/// `packets` of `source` as a link, to be vouched for by an anchor listing its hash.
pub fn link(lobby: LobbyId, source: PeerId, packets: Vec<u8>) -> Bundle {
    Bundle {
        lobby,
        source,
        auth: Auth::Linked,
        packets,
        repairer: None,
    }
}

/// The key and signature of a signed bundle, checked against its source.
fn signed_key(b: &Bundle) -> Result<(VerifyingKey, &[u8; 64]), SignatureError> {
    let Auth::Signed { key, signature, .. } = &b.auth else {
        return Err(SignatureError::Unsigned);
    };
    if peer_id_of(key) != b.source {
        return Err(SignatureError::WrongSource);
    }
    let k = VerifyingKey::from_bytes(key).map_err(|_| SignatureError::BadKey)?;
    if k.is_weak() {
        return Err(SignatureError::BadKey);
    }
    Ok((k, signature))
}

/// Checks that a bundle comes from the key its source claims and that the signature over its
/// lobby, chain and packets verifies (strictly: no weak keys, no malleable signatures). A
/// link never verifies: its hash must be vouched for instead.
pub fn verify(b: &Bundle) -> Result<(), SignatureError> {
    let (key, signature) = signed_key(b)?;
    key.verify_strict(
        &signed_bytes(b.lobby, b.chain(), &b.packets),
        &Signature::from_bytes(signature),
    )
    .map_err(|_| SignatureError::BadSignature)
}

/// Verifies several bundles at once: ed25519 batch verification costs about half as much per
/// signature; if the batch fails, each is verified alone to find the bad ones. The results are
/// in the order of `bundles`.
pub fn verify_many(bundles: &[&Bundle]) -> Vec<Result<(), SignatureError>> {
    let mut out: Vec<Result<(), SignatureError>> = Vec::with_capacity(bundles.len());
    let mut keys = Vec::new();
    let mut sigs = Vec::new();
    let mut msgs = Vec::new();
    let mut at = Vec::new();
    for (i, b) in bundles.iter().enumerate() {
        match signed_key(b) {
            Ok((k, signature)) => {
                keys.push(k);
                sigs.push(Signature::from_bytes(signature));
                msgs.push(signed_bytes(b.lobby, b.chain(), &b.packets));
                at.push(i);
                out.push(Ok(()));
            }
            Err(e) => out.push(Err(e)),
        }
    }
    if at.len() > 1 {
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        if ed25519_dalek::verify_batch(&refs, &sigs, &keys).is_ok() {
            return out;
        }
    }
    for (j, &i) in at.iter().enumerate() {
        out[i] = keys[j]
            .verify_strict(&msgs[j], &sigs[j])
            .map_err(|_| SignatureError::BadSignature);
    }
    out
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
    fn a_batch_finds_the_forged_bundles_among_good_ones() {
        let lobby = LobbyId(5);
        let good: Vec<Bundle> = (1..=4u8)
            .map(|n| {
                let key = SigningKey::from_bytes(&[n; 32]);
                let me = peer_id_of(&key.verifying_key().to_bytes());
                seal(&key, lobby, bytes_of(&[data(lobby, me, u64::from(n))]))
            })
            .collect();
        let all: Vec<&Bundle> = good.iter().collect();
        assert!(verify_many(&all).iter().all(Result::is_ok));
        let mut forged = good[1].clone();
        forged.packets[3] ^= 1;
        let mut impostor = good[2].clone();
        impostor.source = good[0].source;
        let mixed = [&good[0], &forged, &good[3], &impostor];
        assert_eq!(
            verify_many(&mixed),
            vec![
                Ok(()),
                Err(SignatureError::BadSignature),
                Ok(()),
                Err(SignatureError::WrongSource)
            ]
        );
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
        with_unknown.extend_from_slice(&[0x83, 0x01, 0x10, 0x00]);
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
        if let Auth::Signed { key, .. } = &mut other.auth {
            *key = SigningKey::from_bytes(&[10; 32]).verifying_key().to_bytes();
        }
        assert_eq!(verify(&other), Err(SignatureError::WrongSource));
    }
}
