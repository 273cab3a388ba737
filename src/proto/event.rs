//! What the core tells the application: one stream of events that a pipe, a relay and a
//! terminal screen all consume.

use std::net::SocketAddr;

use super::ids::{Lobby, LobbyId, MsgId, PeerId};
use super::listings::Listed;
use super::private::LobbyKey;
use super::wire::WhoIsPeer;

/// Something the application should show, log or act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole message from another member, delivered exactly once.
    Message(Message),
    /// A member was heard for the first time (or again after it was gone).
    PeerJoined {
        /// Where.
        lobby: LobbyId,
        /// Who.
        peer: PeerId,
        /// Its nick as last heard.
        nick: String,
    },
    /// A member changed its nick.
    NickChanged {
        /// Where.
        lobby: LobbyId,
        /// Who.
        peer: PeerId,
        /// Its new nick.
        nick: String,
    },
    /// A member left (its heartbeat said so), or was not heard for the peer timeout (and, if
    /// it sent heartbeats, the presence timeout).
    PeerLeft {
        /// Where.
        lobby: LobbyId,
        /// Who.
        peer: PeerId,
    },
    /// Packets of a source that could not be recovered and were given up.
    Lost {
        /// Where.
        lobby: LobbyId,
        /// Whose.
        source: PeerId,
        /// How many sequence numbers were given up.
        count: u64,
    },
    /// A friend link came up: both sides hear each other's hellos (PROTOCOL.md 7.1).
    FriendUp {
        /// The friend's unicast address.
        addr: SocketAddr,
        /// Its peer id.
        peer: PeerId,
        /// Its nick.
        nick: String,
    },
    /// A friend link went down: no hello for the link timeout.
    FriendDown {
        /// The friend's unicast address.
        addr: SocketAddr,
        /// Its peer id, if one was heard.
        peer: Option<PeerId>,
    },
    /// A friend started taking part in a lobby with this node (PROTOCOL.md 7.2): lobby traffic
    /// flows between them from now on.
    FriendInLobby {
        /// Where.
        lobby: LobbyId,
        /// The friend's unicast address.
        addr: SocketAddr,
        /// Its peer id.
        peer: PeerId,
    },
    /// A direct message to this node, delivered once (PROTOCOL.md 4.15).
    Direct(DirectMessage),
    /// An invitation to a private lobby (PROTOCOL.md 7.11), delivered once.
    Invitation(Invitation),
    /// The merged lobby list changed while the user looks at it (PROTOCOL.md 7.12; see
    /// [`crate::proto::Node::ask_lobby_list`]).
    LobbyList {
        /// The listed lobbies heard of, most members first.
        lobbies: Vec<Listed>,
        /// Lobbies were left out: the list is full, or a node listed only part of its own.
        cut: bool,
    },
    /// An answer to an own who-is query (PROTOCOL.md 7.13), or what this node knows itself.
    WhoIs {
        /// The query, as [`crate::proto::Node::whois`] returned it.
        id: MsgId,
        /// The node that answered (this node for its own knowledge).
        from: PeerId,
        /// The peers it knows by that nick.
        peers: Vec<WhoIsPeer>,
    },
    /// The addressee of an own direct message acknowledged it.
    DirectAcked {
        /// The message's id, as [`crate::proto::Node::send_direct`] returned it.
        id: MsgId,
        /// Who.
        peer: PeerId,
    },
    /// An own direct message was sent again for two minutes and never acknowledged.
    DirectFailed {
        /// The message's id.
        id: MsgId,
        /// Its addressee.
        peer: PeerId,
    },
    /// A lobby whose flow-control window was full (a send failed with
    /// [`crate::proto::SendError::WindowFull`]) can take messages again.
    Writable {
        /// Where.
        lobby: LobbyId,
    },
}

/// An invitation received: what joining the lobby takes ([`crate::proto::Node::join_private`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// Its id (as a direct message's).
    pub id: MsgId,
    /// The inviter (its key sealed it).
    pub from: PeerId,
    /// The inviter's nick, as it said.
    pub nick: String,
    /// The inviter's wall clock when it wrote it, Unix milliseconds.
    pub sent_at: u64,
    /// The private lobby: its name and private id.
    pub lobby: Lobby,
    /// Its key.
    pub key: LobbyKey,
    /// A re-invitation: the invitee was in the lobby and came back.
    pub again: bool,
}

/// A direct message received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectMessage {
    /// Its random id.
    pub id: MsgId,
    /// Who wrote it (its key sealed it).
    pub from: PeerId,
    /// The writer's nick, as it said.
    pub nick: String,
    /// The writer's wall clock when it wrote it, Unix milliseconds.
    pub sent_at: u64,
    /// The text.
    pub text: String,
}

/// A delivered chat message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The lobby it was sent to.
    pub lobby: LobbyId,
    /// Who wrote it.
    pub source: PeerId,
    /// Sequence number of its first fragment; with the body it fixes every fragment's number,
    /// which lets a restarted node serve it again from history.
    pub seq: u64,
    /// Its random id.
    pub msg_id: MsgId,
    /// The writer's wall clock when sent, Unix milliseconds.
    pub sent_at: u64,
    /// The writer's nick when sent.
    pub nick: String,
    /// The text (invalid UTF-8 replaced).
    pub text: String,
    /// True when it arrives after newer messages were shown: out of its source's order, or
    /// older than the newest shown by more than `late_after`. A screen marks it.
    pub late: bool,
}
