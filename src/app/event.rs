//! The runtime's two streams, shared by every frontend (pipe, relay, screen): [`Command`]s in,
//! [`AppEvent`]s out.

use std::io;
use std::net::SocketAddr;

use tokio::sync::mpsc;

use crate::direct_history::DirectRecord;
use crate::lobby_keys::JoinHow;
use crate::proto::wire::WhoIsPeer;
use crate::proto::{FriendInfo, Invitation, Listed, Lobby, LobbyId, Message, MsgId, PeerId, Stats};

/// What a frontend asks the runtime to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Send each text as one message. Each text is answered, in order, by
    /// [`AppEvent::Sent`] or [`AppEvent::SendFailed`].
    Send {
        /// Where.
        lobby: LobbyId,
        /// The messages.
        texts: Vec<String>,
    },
    /// Join a lobby by name (answered by [`AppEvent::Joined`] and its history, or
    /// [`AppEvent::CommandFailed`]). Joining a lobby already joined changes nothing; a name
    /// joined already as a public lobby cannot be joined as a private one, nor the reverse.
    Join {
        /// The lobby's name, as typed.
        name: String,
        /// Public, or private and by which key.
        how: JoinHow,
    },
    /// Leave a lobby (answered by [`AppEvent::Parted`]).
    Part {
        /// Which.
        lobby: LobbyId,
    },
    /// Change the nick in every lobby (answered by [`AppEvent::OwnNick`]).
    Nick {
        /// The new nick, as typed.
        nick: String,
    },
    /// Ask for a lobby's members (answered by [`AppEvent::Members`]).
    Who {
        /// Which.
        lobby: LobbyId,
    },
    /// Accept the new keys flagged for a nick (answered by [`AppEvent::Trusted`]); see
    /// [`crate::known_peers::KnownPeers::trust`].
    Trust {
        /// The nick, as typed: `NICK`, or `NICK#HEX` for one of its keys.
        nick: String,
    },
    /// Send a direct message (PROTOCOL.md 4.15) to the member a nick names
    /// ([`crate::app::resolve_nick`]): answered by [`AppEvent::DirectSent`], then
    /// [`AppEvent::DirectAcked`] or [`AppEvent::DirectFailed`]; or by
    /// [`AppEvent::CommandFailed`] if the nick names no single member whose key is known.
    Direct {
        /// The addressee.
        to: Addressee,
        /// The text.
        text: String,
    },
    /// Open the conversation with the member a nick names: answered by
    /// [`AppEvent::Conversation`] with `query` set, or [`AppEvent::CommandFailed`].
    Query {
        /// The member, as typed: `NICK` or `NICK#HEX`.
        nick: String,
    },
    /// Invite the member a nick names to a private lobby joined (PROTOCOL.md 7.11): answered
    /// by [`AppEvent::InvitationSent`], then [`AppEvent::InvitationAcked`] or
    /// [`AppEvent::InvitationFailed`]; or by [`AppEvent::CommandFailed`].
    Invite {
        /// The invitee, as typed: `NICK` or `NICK#HEX`.
        nick: String,
        /// The private lobby.
        lobby: LobbyId,
    },
    /// Join the private lobby of an invitation received, and keep its key: answered by
    /// [`AppEvent::Joined`], or [`AppEvent::CommandFailed`].
    Accept {
        /// Which invitation: `LOBBY` or `LOBBY#HEX` (the inviter's peer id starts with HEX);
        /// the latest if none.
        which: Option<String>,
    },
    /// Forget an invitation received, chosen as [`Command::Accept`] chooses: answered by
    /// [`AppEvent::Declined`], or [`AppEvent::CommandFailed`]. The inviter is not told.
    Decline {
        /// Which invitation.
        which: Option<String>,
    },
    /// Ask friends, and theirs up to three hops away, who goes by a nick (PROTOCOL.md 7.13):
    /// answered by [`AppEvent::WhoIsAsked`], then an [`AppEvent::WhoIs`] per answer as they
    /// come, then [`AppEvent::WhoIsDone`]; or by [`AppEvent::CommandFailed`] (a bad nick, or
    /// a query less than 2 s after the last).
    WhoIs {
        /// The nick, as typed.
        nick: String,
    },
    /// Add a friend (PROTOCOL.md 7.1); answered by [`AppEvent::Friends`].
    AddFriend {
        /// Its unicast address.
        addr: SocketAddr,
    },
    /// Remove a friend; answered by [`AppEvent::Friends`].
    RemoveFriend {
        /// Its unicast address.
        addr: SocketAddr,
    },
    /// Ask for the friends and their links (answered by [`AppEvent::Friends`]).
    ListFriends,
    /// Ask for the transport state (answered by [`AppEvent::Status`]).
    Status,
    /// Ask for the lobby list of the LAN (PROTOCOL.md 7.12): answered at once by
    /// [`AppEvent::LobbyList`] with what is known, then by another each time the list
    /// changes in the next two minutes, as friends and the segment answer.
    ListLobbies,
    /// Stop, as SIGTERM does: history flushed, groups left.
    Quit,
    /// Input the frontend could not understand: reported back as
    /// [`AppEvent::CommandFailed`], in order with the commands around it.
    Invalid {
        /// Why, in one line.
        error: String,
    },
}

/// Whom a direct message is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addressee {
    /// The member a nick names, as typed (`/msg NICK`): `NICK` or `NICK#HEX`.
    Nick(String),
    /// A peer by its id: a conversation pane, which keeps its peer whatever its nick.
    Peer(PeerId),
}

/// The transport state: what a status bar shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// This node's nick.
    pub nick: String,
    /// Whether lobbies use their multicast groups (false with `--no-multicast`, or while the
    /// network refuses multicast).
    pub multicast: bool,
    /// Friends configured.
    pub friends: usize,
    /// Friend links up.
    pub friends_up: usize,
    /// Per joined lobby: members heard, and packets missing now (being repaired).
    pub lobbies: Vec<LobbyStatus>,
}

/// One lobby's line of [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LobbyStatus {
    /// Which.
    pub lobby: Lobby,
    /// Members heard recently (not counting this node).
    pub members: usize,
    /// Packets known missing and being repaired.
    pub missing: usize,
}

/// What the runtime tells its frontend. One stream for every frontend; borrowed so that the
/// pipe's hot path allocates nothing ([`OwnedEvent`] is the owned copy).
#[derive(Debug)]
pub enum AppEvent<'a> {
    /// A lobby was joined: its groups, and the address this node sends from.
    Joined {
        /// The lobby.
        lobby: &'a Lobby,
        /// This node.
        peer: PeerId,
        /// The groups joined.
        groups: &'a [SocketAddr],
        /// The unicast addresses sent from.
        local: &'a [SocketAddr],
        /// A private lobby (PROTOCOL.md 2.4): its id is derived from its key, not its name.
        private: bool,
    },
    /// A lobby was left.
    Parted {
        /// The lobby.
        lobby: &'a Lobby,
    },
    /// A message from the history, given again at start or on joining (own or others').
    History {
        /// Where.
        lobby: &'a Lobby,
        /// The message.
        msg: &'a Message,
        /// Whether this node wrote it.
        own: bool,
    },
    /// A message from another member, delivered once (and already in the history).
    Message {
        /// Where.
        lobby: &'a Lobby,
        /// The message.
        msg: &'a Message,
        /// Its nick is known with other keys and its writer's is not accepted for it
        /// ([`crate::known_peers`]).
        key_changed: bool,
    },
    /// A message this node sent (already in the history, its datagrams handed to the
    /// network).
    Sent {
        /// Where.
        lobby: &'a Lobby,
        /// The message.
        msg: &'a Message,
    },
    /// A text could not be sent.
    SendFailed {
        /// Where.
        lobby: &'a Lobby,
        /// Why.
        error: String,
    },
    /// A command could not be carried out (a bad lobby name, nick or friend address).
    CommandFailed {
        /// Why, in one line.
        error: String,
    },
    /// This node's nick changed.
    OwnNick {
        /// The new nick.
        nick: &'a str,
    },
    /// A member was heard for the first time, or again after it was gone.
    PeerJoined {
        /// Where.
        lobby: &'a Lobby,
        /// Who.
        peer: PeerId,
        /// Its nick.
        nick: &'a str,
        /// The nick is known with other keys, and this one is not accepted for it.
        key_changed: bool,
    },
    /// A member changed its nick.
    NickChanged {
        /// Where.
        lobby: &'a Lobby,
        /// Who.
        peer: PeerId,
        /// Its new nick.
        nick: &'a str,
        /// The new nick is known with other keys, and this one is not accepted for it.
        key_changed: bool,
    },
    /// A member left, or was not heard for the peer timeout.
    PeerLeft {
        /// Where.
        lobby: &'a Lobby,
        /// Who.
        peer: PeerId,
    },
    /// The members of a lobby, sorted by peer id (the answer to [`Command::Who`]).
    Members {
        /// Where.
        lobby: &'a Lobby,
        /// Who, with their nicks.
        members: &'a [(PeerId, String)],
        /// Those of them whose key is not accepted for their nick.
        key_changed: &'a [PeerId],
    },
    /// The answer to [`Command::Trust`]: the keys now accepted for a nick; none if it had no
    /// new key.
    Trusted {
        /// The nick.
        nick: &'a str,
        /// The keys accepted.
        peers: &'a [PeerId],
    },
    /// Packets of a member that could not be recovered.
    Lost {
        /// Where.
        lobby: &'a Lobby,
        /// Whose.
        source: PeerId,
        /// How many sequence numbers.
        count: u64,
    },
    /// A friend link came up.
    FriendUp {
        /// The friend's address.
        addr: SocketAddr,
        /// Its peer id.
        peer: PeerId,
        /// Its nick.
        nick: &'a str,
    },
    /// A friend started taking part in a lobby with this node.
    FriendInLobby {
        /// Where.
        lobby: &'a Lobby,
        /// The friend's address.
        addr: SocketAddr,
        /// Its peer id.
        peer: PeerId,
    },
    /// A friend link went down.
    FriendDown {
        /// The friend's address.
        addr: SocketAddr,
        /// Its peer id, if one was heard.
        peer: Option<PeerId>,
    },
    /// The friends and their links (the answer to the friend commands).
    Friends {
        /// Every friend configured.
        friends: &'a [FriendInfo],
    },
    /// A conversation of direct messages is shown: on [`Command::Query`], and before the first
    /// direct message of a run sent to or received from a peer, with its recent history
    /// (oldest first; empty if it was shown already in this run).
    Conversation {
        /// The peer.
        peer: PeerId,
        /// Its nick now.
        nick: &'a str,
        /// The recent direct messages, from its history file.
        history: &'a [DirectRecord],
        /// The answer to [`Command::Query`]: a screen shows the conversation.
        query: bool,
    },
    /// A direct message from another peer, delivered once (and already in its history file).
    Direct {
        /// Who wrote it.
        peer: PeerId,
        /// The message.
        msg: &'a DirectRecord,
        /// The writer's nick is known with other keys and this one is not accepted for it.
        key_changed: bool,
    },
    /// An own direct message was sealed and sent (and is in its history file); it is pending
    /// until [`AppEvent::DirectAcked`] or [`AppEvent::DirectFailed`].
    DirectSent {
        /// The addressee.
        peer: PeerId,
        /// The addressee's nick.
        nick: &'a str,
        /// The message.
        msg: &'a DirectRecord,
    },
    /// The addressee acknowledged an own direct message: delivered.
    DirectAcked {
        /// The message.
        id: MsgId,
        /// The addressee.
        peer: PeerId,
    },
    /// An own direct message was never acknowledged, after a minute of retries: not known to
    /// have arrived.
    DirectFailed {
        /// The message.
        id: MsgId,
        /// The addressee.
        peer: PeerId,
    },
    /// An invitation to a private lobby was received (PROTOCOL.md 7.11). It waits for
    /// [`Command::Accept`] or [`Command::Decline`], unless `joined`.
    Invitation {
        /// Its id.
        id: MsgId,
        /// The inviter.
        from: PeerId,
        /// The inviter's nick, as it said.
        nick: &'a str,
        /// The private lobby (name and private id).
        lobby: &'a Lobby,
        /// A re-invitation: the inviter heard this node in the lobby before.
        again: bool,
        /// The lobby was rejoined at once ([`AppEvent::Joined`] came first): a re-invitation
        /// to a lobby whose key this node keeps, and that it did not leave with `/part`.
        joined: bool,
        /// The inviter's nick is known with other keys and this one is not accepted for it.
        key_changed: bool,
    },
    /// An invitation was sealed and sent; it is pending until [`AppEvent::InvitationAcked`]
    /// or [`AppEvent::InvitationFailed`].
    InvitationSent {
        /// Its id.
        id: MsgId,
        /// The invitee.
        peer: PeerId,
        /// The invitee's nick.
        nick: &'a str,
        /// The private lobby.
        lobby: &'a Lobby,
    },
    /// The invitee acknowledged an invitation.
    InvitationAcked {
        /// Its id.
        id: MsgId,
        /// The invitee.
        peer: PeerId,
    },
    /// An invitation was never acknowledged: not known to have arrived.
    InvitationFailed {
        /// Its id.
        id: MsgId,
        /// The invitee.
        peer: PeerId,
    },
    /// An invitation received was declined (forgotten).
    Declined {
        /// The private lobby.
        lobby: &'a Lobby,
        /// The inviter.
        from: PeerId,
    },
    /// An own who-is query went out ([`Command::WhoIs`]); its answers follow.
    WhoIsAsked {
        /// The query.
        id: MsgId,
        /// The nick asked for, as the core took it (trimmed).
        nick: &'a str,
    },
    /// An answer to an own who-is query: what one node knows of peers that go by the nick
    /// (this node's own knowledge comes first, from itself). Several nodes may name the same
    /// peer.
    WhoIs {
        /// The query.
        id: MsgId,
        /// The nick asked for.
        nick: &'a str,
        /// The node that answered.
        from: PeerId,
        /// The peers it knows by that nick (matched case-insensitively): each with its peer
        /// id, the fingerprint of its key.
        peers: &'a [WhoIsPeer],
    },
    /// An own who-is query is over, [`crate::app::WHOIS_WAIT`] after it was asked: how many
    /// answered (none: nobody within reach goes by the nick). A later answer is still given.
    WhoIsDone {
        /// The query.
        id: MsgId,
        /// The nick asked for.
        nick: &'a str,
        /// Answers that came.
        answers: usize,
        /// Distinct peers they named.
        peers: usize,
        /// Friend links up when it ended: with none, only this node was asked.
        friends_up: usize,
    },
    /// The transport state: on [`Command::Status`], and every status interval if one is set.
    Status(&'a Status),
    /// The listed public lobbies heard of on the LAN and from friends (PROTOCOL.md 7.12), most
    /// members first: the answer to [`Command::ListLobbies`], and again whenever the list
    /// changes for two minutes after it. At most 256 lobbies (the core's cap).
    LobbyList {
        /// The lobbies, with the most members any recent report gave (each reporting node
        /// counts itself). This node's own lobbies are there only if others report them.
        lobbies: &'a [Listed],
        /// Lobbies were left out: the list is full, or a node listed only part of its own.
        cut: bool,
    },
    /// The core's counters: at exit, on SIGUSR1, and every report interval if one is set.
    Stats(&'a Stats),
}

impl<'a> AppEvent<'a> {
    /// [`AppEvent::Invitation`] of an invitation received.
    pub fn invitation(inv: &'a Invitation, joined: bool, key_changed: bool) -> Self {
        AppEvent::Invitation {
            id: inv.id,
            from: inv.from,
            nick: &inv.nick,
            lobby: &inv.lobby,
            again: inv.again,
            joined,
            key_changed,
        }
    }
}

/// Something that shows the runtime's events: the pipe, the relay, the screen.
pub trait Frontend {
    /// Takes one event. Output may be buffered until [`Frontend::flush`]; it must not reach
    /// the user before flush, because the runtime writes the history just before flushing.
    fn event(&mut self, ev: AppEvent<'_>);
    /// Shows what was buffered. An error stops the runtime.
    fn flush(&mut self) -> io::Result<()>;
}

/// An owned [`AppEvent`], for a frontend on another thread (the screen); made by
/// [`OwnedEvent::push_from`].
///
/// A new key travels as its own event, [`OwnedEvent::NewKey`], before the events it flags,
/// rather than as a field of each: the screen keeps the flag until [`OwnedEvent::Trusted`]
/// (a key stays new until then), and the message variant keeps the shape that other code
/// (the screen benchmark) builds.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // The variants and fields are those of `AppEvent`, but for `NewKey`.
pub enum OwnedEvent {
    Joined {
        lobby: Lobby,
        peer: PeerId,
        groups: Vec<SocketAddr>,
        local: Vec<SocketAddr>,
        private: bool,
    },
    Parted {
        lobby: Lobby,
    },
    History {
        lobby: Lobby,
        msg: Message,
        own: bool,
    },
    Message {
        lobby: Lobby,
        msg: Message,
    },
    Sent {
        lobby: Lobby,
        msg: Message,
    },
    SendFailed {
        lobby: Lobby,
        error: String,
    },
    CommandFailed {
        error: String,
    },
    OwnNick {
        nick: String,
    },
    PeerJoined {
        lobby: Lobby,
        peer: PeerId,
        nick: String,
    },
    NickChanged {
        lobby: Lobby,
        peer: PeerId,
        nick: String,
    },
    PeerLeft {
        lobby: Lobby,
        peer: PeerId,
    },
    Members {
        lobby: Lobby,
        members: Vec<(PeerId, String)>,
    },
    /// `peer` uses `nick`, which is known with other keys, and its key is not accepted for
    /// it: the events that follow about `peer` under `nick` are flagged, until `Trusted`.
    NewKey {
        peer: PeerId,
        nick: String,
    },
    Trusted {
        nick: String,
        peers: Vec<PeerId>,
    },
    Lost {
        lobby: Lobby,
        source: PeerId,
        count: u64,
    },
    FriendUp {
        addr: SocketAddr,
        peer: PeerId,
        nick: String,
    },
    FriendInLobby {
        lobby: Lobby,
        addr: SocketAddr,
        peer: PeerId,
    },
    FriendDown {
        addr: SocketAddr,
        peer: Option<PeerId>,
    },
    Friends {
        friends: Vec<FriendInfo>,
    },
    Conversation {
        peer: PeerId,
        nick: String,
        history: Vec<DirectRecord>,
        query: bool,
    },
    Direct {
        peer: PeerId,
        msg: DirectRecord,
    },
    DirectSent {
        peer: PeerId,
        nick: String,
        msg: DirectRecord,
    },
    DirectAcked {
        id: MsgId,
        peer: PeerId,
    },
    DirectFailed {
        id: MsgId,
        peer: PeerId,
    },
    Invitation {
        id: MsgId,
        from: PeerId,
        nick: String,
        lobby: Lobby,
        again: bool,
        joined: bool,
    },
    InvitationSent {
        id: MsgId,
        peer: PeerId,
        nick: String,
        lobby: Lobby,
    },
    InvitationAcked {
        id: MsgId,
        peer: PeerId,
    },
    InvitationFailed {
        id: MsgId,
        peer: PeerId,
    },
    Declined {
        lobby: Lobby,
        from: PeerId,
    },
    WhoIsAsked {
        id: MsgId,
        nick: String,
    },
    WhoIs {
        id: MsgId,
        nick: String,
        from: PeerId,
        peers: Vec<WhoIsPeer>,
    },
    WhoIsDone {
        id: MsgId,
        nick: String,
        answers: usize,
        peers: usize,
        friends_up: usize,
    },
    Status(Status),
    LobbyList {
        lobbies: Vec<Listed>,
        cut: bool,
    },
    Stats(Box<Stats>),
}

impl OwnedEvent {
    /// Appends the owned copy of `ev` to `out`, preceded by a [`OwnedEvent::NewKey`] for each
    /// key it flags.
    pub fn push_from(ev: AppEvent<'_>, out: &mut Vec<OwnedEvent>) {
        let new_key = |peer: PeerId, nick: &str| OwnedEvent::NewKey {
            peer,
            nick: nick.to_owned(),
        };
        let owned = match ev {
            AppEvent::Joined {
                lobby,
                peer,
                groups,
                local,
                private,
            } => OwnedEvent::Joined {
                lobby: lobby.clone(),
                peer,
                groups: groups.to_vec(),
                local: local.to_vec(),
                private,
            },
            AppEvent::Parted { lobby } => OwnedEvent::Parted {
                lobby: lobby.clone(),
            },
            AppEvent::History { lobby, msg, own } => OwnedEvent::History {
                lobby: lobby.clone(),
                msg: msg.clone(),
                own,
            },
            AppEvent::Message {
                lobby,
                msg,
                key_changed,
            } => {
                if key_changed {
                    out.push(new_key(msg.source, &msg.nick));
                }
                OwnedEvent::Message {
                    lobby: lobby.clone(),
                    msg: msg.clone(),
                }
            }
            AppEvent::Sent { lobby, msg } => OwnedEvent::Sent {
                lobby: lobby.clone(),
                msg: msg.clone(),
            },
            AppEvent::SendFailed { lobby, error } => OwnedEvent::SendFailed {
                lobby: lobby.clone(),
                error,
            },
            AppEvent::CommandFailed { error } => OwnedEvent::CommandFailed { error },
            AppEvent::OwnNick { nick } => OwnedEvent::OwnNick {
                nick: nick.to_owned(),
            },
            AppEvent::PeerJoined {
                lobby,
                peer,
                nick,
                key_changed,
            } => {
                if key_changed {
                    out.push(new_key(peer, nick));
                }
                OwnedEvent::PeerJoined {
                    lobby: lobby.clone(),
                    peer,
                    nick: nick.to_owned(),
                }
            }
            AppEvent::NickChanged {
                lobby,
                peer,
                nick,
                key_changed,
            } => {
                if key_changed {
                    out.push(new_key(peer, nick));
                }
                OwnedEvent::NickChanged {
                    lobby: lobby.clone(),
                    peer,
                    nick: nick.to_owned(),
                }
            }
            AppEvent::PeerLeft { lobby, peer } => OwnedEvent::PeerLeft {
                lobby: lobby.clone(),
                peer,
            },
            AppEvent::Members {
                lobby,
                members,
                key_changed,
            } => {
                for (peer, nick) in members {
                    if key_changed.contains(peer) {
                        out.push(new_key(*peer, nick));
                    }
                }
                OwnedEvent::Members {
                    lobby: lobby.clone(),
                    members: members.to_vec(),
                }
            }
            AppEvent::Trusted { nick, peers } => OwnedEvent::Trusted {
                nick: nick.to_owned(),
                peers: peers.to_vec(),
            },
            AppEvent::Lost {
                lobby,
                source,
                count,
            } => OwnedEvent::Lost {
                lobby: lobby.clone(),
                source,
                count,
            },
            AppEvent::FriendUp { addr, peer, nick } => OwnedEvent::FriendUp {
                addr,
                peer,
                nick: nick.to_owned(),
            },
            AppEvent::FriendInLobby { lobby, addr, peer } => OwnedEvent::FriendInLobby {
                lobby: lobby.clone(),
                addr,
                peer,
            },
            AppEvent::FriendDown { addr, peer } => OwnedEvent::FriendDown { addr, peer },
            AppEvent::Friends { friends } => OwnedEvent::Friends {
                friends: friends.to_vec(),
            },
            AppEvent::Conversation {
                peer,
                nick,
                history,
                query,
            } => OwnedEvent::Conversation {
                peer,
                nick: nick.to_owned(),
                history: history.to_vec(),
                query,
            },
            AppEvent::Direct {
                peer,
                msg,
                key_changed,
            } => {
                if key_changed {
                    out.push(new_key(peer, &msg.nick));
                }
                OwnedEvent::Direct {
                    peer,
                    msg: msg.clone(),
                }
            }
            AppEvent::DirectSent { peer, nick, msg } => OwnedEvent::DirectSent {
                peer,
                nick: nick.to_owned(),
                msg: msg.clone(),
            },
            AppEvent::DirectAcked { id, peer } => OwnedEvent::DirectAcked { id, peer },
            AppEvent::DirectFailed { id, peer } => OwnedEvent::DirectFailed { id, peer },
            AppEvent::Invitation {
                id,
                from,
                nick,
                lobby,
                again,
                joined,
                key_changed,
            } => {
                if key_changed {
                    out.push(new_key(from, nick));
                }
                OwnedEvent::Invitation {
                    id,
                    from,
                    nick: nick.to_owned(),
                    lobby: lobby.clone(),
                    again,
                    joined,
                }
            }
            AppEvent::InvitationSent {
                id,
                peer,
                nick,
                lobby,
            } => OwnedEvent::InvitationSent {
                id,
                peer,
                nick: nick.to_owned(),
                lobby: lobby.clone(),
            },
            AppEvent::InvitationAcked { id, peer } => OwnedEvent::InvitationAcked { id, peer },
            AppEvent::InvitationFailed { id, peer } => OwnedEvent::InvitationFailed { id, peer },
            AppEvent::Declined { lobby, from } => OwnedEvent::Declined {
                lobby: lobby.clone(),
                from,
            },
            AppEvent::WhoIsAsked { id, nick } => OwnedEvent::WhoIsAsked {
                id,
                nick: nick.to_owned(),
            },
            AppEvent::WhoIs {
                id,
                nick,
                from,
                peers,
            } => OwnedEvent::WhoIs {
                id,
                nick: nick.to_owned(),
                from,
                peers: peers.to_vec(),
            },
            AppEvent::WhoIsDone {
                id,
                nick,
                answers,
                peers,
                friends_up,
            } => OwnedEvent::WhoIsDone {
                id,
                nick: nick.to_owned(),
                answers,
                peers,
                friends_up,
            },
            AppEvent::Status(s) => OwnedEvent::Status(s.clone()),
            AppEvent::LobbyList { lobbies, cut } => OwnedEvent::LobbyList {
                lobbies: lobbies.to_vec(),
                cut,
            },
            AppEvent::Stats(s) => OwnedEvent::Stats(Box::new(s.clone())),
        };
        out.push(owned);
    }
}

/// A frontend that hands owned events, one batch per flush, to another thread (the screen).
/// Batches only leave on flush, so the receiver never sees a message before it is in the
/// history. The channel is unbounded because the runtime must never wait for a screen (a
/// terminal stopped with Ctrl-S would stall repairs for everyone); the screen drains it
/// without blocking and keeps a bounded scrollback.
#[derive(Debug)]
pub struct ChannelFrontend {
    batch: Vec<OwnedEvent>,
    tx: mpsc::UnboundedSender<Vec<OwnedEvent>>,
}

impl ChannelFrontend {
    /// A frontend sending its batches to `tx`.
    pub fn new(tx: mpsc::UnboundedSender<Vec<OwnedEvent>>) -> Self {
        ChannelFrontend {
            batch: Vec::new(),
            tx,
        }
    }
}

impl Frontend for ChannelFrontend {
    fn event(&mut self, ev: AppEvent<'_>) {
        OwnedEvent::push_from(ev, &mut self.batch);
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.tx
            .send(std::mem::take(&mut self.batch))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the screen has closed"))
    }
}
