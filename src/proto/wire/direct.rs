//! Kind 9, the direct message (PROTOCOL.md 4.15, revision 1.5): its packet and the content
//! sealed inside it. Sealing and opening are [`crate::proto::direct`]'s.

use super::{DecodeError, MAX_NICK, VERSION, kind};
use crate::proto::ids::{MsgId, PeerId};

/// Most times a direct message may be passed on (PROTOCOL.md 7.10).
pub const MAX_DIRECT_HOPS: u8 = 8;
/// Largest sealed content of a direct message, tag included.
pub const MAX_DIRECT_SEALED: usize = 1100;
/// Longest text of a direct message, in bytes of UTF-8.
pub const MAX_DIRECT_TEXT: usize = 1000;

/// A message to one peer, sealed end to end (kind 9). Decoding checks only the shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Direct {
    /// The peer that wrote it.
    pub sender: PeerId,
    /// The peer it is for.
    pub addressee: PeerId,
    /// Random id, for duplicate suppression and acknowledgement.
    pub id: MsgId,
    /// How many more times it may be passed on.
    pub hops: u8,
    /// The sender's Ed25519 public key.
    pub key: [u8; 32],
    /// XChaCha20-Poly1305's nonce, random.
    pub nonce: [u8; 24],
    /// The sealed content, the 16-byte tag at the end.
    pub sealed: Vec<u8>,
}

impl Direct {
    /// Checks the limits the schema sets beyond CBOR types.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.hops > MAX_DIRECT_HOPS {
            return Err(DecodeError::Invalid("direct hops above 8"));
        }
        if self.sealed.len() < 17 {
            return Err(DecodeError::Invalid("direct too short"));
        }
        if self.sealed.len() > MAX_DIRECT_SEALED {
            return Err(DecodeError::Invalid("direct too large"));
        }
        Ok(())
    }

    /// The associated data of its AEAD: the encoding of `[1, 9, sender, addressee, id]`
    /// (`hops` changes on the way and is not bound).
    pub fn header(sender: PeerId, addressee: PeerId, id: MsgId) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        ciborium::into_writer(&(VERSION, kind::DIRECT, sender, addressee, id), &mut out)
            .expect("encoding to a Vec cannot fail");
        out
    }

    /// This packet's CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.sealed.len() + 100);
        ciborium::into_writer(
            &(
                VERSION,
                kind::DIRECT,
                self.sender,
                self.addressee,
                self.id,
                self.hops,
                serde_bytes::Bytes::new(&self.key),
                serde_bytes::Bytes::new(&self.nonce),
                serde_bytes::Bytes::new(&self.sealed),
            ),
            &mut out,
        )
        .expect("encoding to a Vec cannot fail");
        out
    }
}

/// What a direct message holds, once opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// A message: the sender's wall clock (Unix ms), its nick and the text.
    Text {
        /// The sender's wall clock when it wrote it, Unix milliseconds.
        sent_at: u64,
        /// The sender's nick then.
        nick: String,
        /// The text, at most [`MAX_DIRECT_TEXT`] bytes.
        text: String,
    },
    /// The addressee of direct message `0` holds it.
    Ack(MsgId),
    /// An invitation to a private lobby (revision 1.6, PROTOCOL.md 7.11).
    Invitation {
        /// The inviter's wall clock when it wrote it, Unix milliseconds.
        sent_at: u64,
        /// The inviter's nick then.
        nick: String,
        /// The lobby's normalised name.
        name: String,
        /// The lobby key.
        key: [u8; 32],
        /// A re-invitation, sent because the invitee came back.
        again: bool,
    },
    /// A kind of content this revision does not know: dropped, not acknowledged.
    Unknown(u64),
}

impl Content {
    /// Checks the limits the schema sets beyond CBOR types.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Content::Text { nick, text, .. } => {
                if nick.len() > MAX_NICK {
                    return Err(DecodeError::Invalid("nick too long"));
                }
                if text.len() > MAX_DIRECT_TEXT {
                    return Err(DecodeError::Invalid("direct text too long"));
                }
                Ok(())
            }
            Content::Invitation { nick, name, .. } => {
                if nick.len() > MAX_NICK {
                    return Err(DecodeError::Invalid("nick too long"));
                }
                match crate::proto::ids::Lobby::new(name) {
                    Ok(l) if l.name == *name => Ok(()),
                    _ => Err(DecodeError::Invalid(
                        "invitation name not a normalised lobby name",
                    )),
                }
            }
            Content::Ack(_) | Content::Unknown(_) => Ok(()),
        }
    }

    /// Its CBOR encoding (an unknown content has none and encodes as `[type]`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let r = match self {
            Content::Text {
                sent_at,
                nick,
                text,
            } => ciborium::into_writer(&(0u8, sent_at, nick, text), &mut out),
            Content::Ack(id) => ciborium::into_writer(&(1u8, id), &mut out),
            Content::Invitation {
                sent_at,
                nick,
                name,
                key,
                again,
            } => ciborium::into_writer(
                &(
                    2u8,
                    sent_at,
                    nick,
                    name,
                    serde_bytes::Bytes::new(key),
                    again,
                ),
                &mut out,
            ),
            Content::Unknown(t) => ciborium::into_writer(&(t,), &mut out),
        };
        r.expect("encoding to a Vec cannot fail");
        out
    }

    /// Decodes opened content, strictly: one array, nothing after it.
    pub fn decode(bytes: &[u8]) -> Result<Content, DecodeError> {
        let mut r = super::decode::Reader::new(bytes);
        let c = r.content()?;
        if !r.at_end() {
            return Err(DecodeError::Malformed("bytes after the content".into()));
        }
        c.validate()?;
        Ok(c)
    }
}
