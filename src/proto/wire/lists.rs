//! Kinds 5 and 6, lobby lists (PROTOCOL.md 4.16, 4.17, revision 1.7): a request, and a node's
//! listed lobbies with the members it hears in each.

use super::{DecodeError, VERSION, kind};
use crate::proto::ids::{Lobby, PeerId};

/// Most lobbies one list names.
pub const MAX_LIST_LOBBIES: usize = 16;

/// A lobby list packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListPacket {
    /// Kind 5: which lobbies are you in?
    Request {
        /// The node that asks.
        sender: PeerId,
    },
    /// Kind 6: the sender's listed lobbies.
    List(LobbyList),
}

/// A node's listed lobbies (kind 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LobbyList {
    /// The node that answers.
    pub sender: PeerId,
    /// Normalised names and the members the sender hears in each, itself included.
    pub lobbies: Vec<(String, u64)>,
    /// The sender is in more listed lobbies than it lists.
    pub more: bool,
}

impl ListPacket {
    /// The node that sent it.
    pub fn sender(&self) -> PeerId {
        match self {
            ListPacket::Request { sender } => *sender,
            ListPacket::List(l) => l.sender,
        }
    }

    /// Checks the limits the schema sets beyond CBOR types.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let ListPacket::List(l) = self else {
            return Ok(());
        };
        if l.lobbies.len() > MAX_LIST_LOBBIES {
            return Err(DecodeError::Invalid("lobby list too long"));
        }
        for (name, _) in &l.lobbies {
            match Lobby::new(name) {
                Ok(lobby) if lobby.name == *name => {}
                _ => return Err(DecodeError::Invalid("lobby list name not normalised")),
            }
        }
        Ok(())
    }

    /// This packet's CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let r = match self {
            ListPacket::Request { sender } => {
                ciborium::into_writer(&(VERSION, kind::LOBBY_LIST_REQUEST, sender), &mut out)
            }
            ListPacket::List(l) => ciborium::into_writer(
                &(VERSION, kind::LOBBY_LIST, l.sender, &l.lobbies, l.more),
                &mut out,
            ),
        };
        r.expect("encoding to a Vec cannot fail");
        out
    }
}
