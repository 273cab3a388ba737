//! Kinds 14 and 15, who-is (PROTOCOL.md 4.18, 4.19, revision 1.8): a query for a nick, passed
//! from friend to friend within a hop limit, and the answers that come back.

use std::net::SocketAddr;

use super::{DecodeError, MAX_NICK, VERSION, kind};
use crate::proto::ids::{Lobby, MsgId, PeerId};

/// Most hops a query may still look beyond its receiver.
pub const MAX_WHOIS_HOPS: u8 = 8;
/// Most peers in one answer.
pub const MAX_WHOIS_PEERS: usize = 8;
/// Most lobbies named for one peer in an answer.
pub const MAX_WHOIS_LOBBIES: usize = 8;

/// A who-is packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhoIs {
    /// Kind 14: who goes by `nick`?
    Query(WhoIsQuery),
    /// Kind 15: what the sender knows.
    Answer(WhoIsAnswer),
}

/// Who goes by a nick (kind 14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhoIsQuery {
    /// The node that asks.
    pub sender: PeerId,
    /// Random id: duplicates are dropped, answers follow it back.
    pub id: MsgId,
    /// Hops beyond its receiver the query may still look.
    pub hops: u8,
    /// The nick asked for.
    pub nick: String,
}

/// What a node knows of peers with the nick asked for (kind 15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhoIsAnswer {
    /// The node that answers.
    pub sender: PeerId,
    /// The query answered.
    pub id: MsgId,
    /// The peers known by that nick.
    pub peers: Vec<WhoIsPeer>,
}

/// One peer in an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhoIsPeer {
    /// Its peer id: the fingerprint of its key.
    pub peer: PeerId,
    /// Its nick.
    pub nick: String,
    /// Seconds since the answerer last heard it (0: the answerer itself).
    pub seen: u64,
    /// Listed public lobbies where the answerer heard it.
    pub lobbies: Vec<String>,
    /// Its unicast address, when it is the answerer's friend.
    pub addr: Option<SocketAddr>,
}

impl WhoIs {
    /// The node that sent it.
    pub fn sender(&self) -> PeerId {
        match self {
            WhoIs::Query(q) => q.sender,
            WhoIs::Answer(a) => a.sender,
        }
    }

    /// Checks the limits the schema sets beyond CBOR types.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self {
            WhoIs::Query(q) => {
                if q.hops > MAX_WHOIS_HOPS {
                    return Err(DecodeError::Invalid("who-is hops above 8"));
                }
                if q.nick.is_empty() || q.nick.len() > MAX_NICK {
                    return Err(DecodeError::Invalid("who-is nick length"));
                }
                Ok(())
            }
            WhoIs::Answer(a) => {
                if a.peers.is_empty() || a.peers.len() > MAX_WHOIS_PEERS {
                    return Err(DecodeError::Invalid("who-is answer peer count"));
                }
                for p in &a.peers {
                    if p.nick.len() > MAX_NICK {
                        return Err(DecodeError::Invalid("nick too long"));
                    }
                    if p.lobbies.len() > MAX_WHOIS_LOBBIES
                        || p.lobbies
                            .iter()
                            .any(|n| Lobby::new(n).map_or(true, |l| l.name != *n))
                    {
                        return Err(DecodeError::Invalid("who-is lobbies"));
                    }
                }
                Ok(())
            }
        }
    }

    /// This packet's CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let r = match self {
            WhoIs::Query(q) => ciborium::into_writer(
                &(VERSION, kind::WHOIS_QUERY, q.sender, q.id, q.hops, &q.nick),
                &mut out,
            ),
            WhoIs::Answer(a) => {
                let peers: Vec<_> = a
                    .peers
                    .iter()
                    .map(|p| {
                        (
                            p.peer,
                            &p.nick,
                            p.seen,
                            &p.lobbies,
                            p.addr.map(|a| a.to_string()),
                        )
                    })
                    .collect();
                ciborium::into_writer(
                    &(VERSION, kind::WHOIS_ANSWER, a.sender, a.id, peers),
                    &mut out,
                )
            }
        };
        r.expect("encoding to a Vec cannot fail");
        out
    }
}
