//! `--pipe`: lines on stdin are sent as messages; what the node delivers comes out on stdout as
//! JSON, one object per line.
//!
//! Every message from another node is printed exactly once as `"event":"message"`. Messages
//! from the history are given again at start as `"event":"history"`, never as `"message"`, so
//! a script that counts deliveries is not misled by a restart. Own messages are not printed.
//! Other events: `joined` (the node is ready, also after `/join`; `"private": true` for a
//! private lobby, left out otherwise), `parted`, `peer_joined`,
//! `peer_left`, `nick`, `own_nick`, `lost`, `error` (a line that could not be sent),
//! `command_error` (a bad `/command`), `members`, `trusted` (the answer to `/trust`: `nick`
//! and the `peers` whose keys it accepted, none if there was no new key), `friends`,
//! `friend`, `friend_lobby`, `status` and `stats` (at exit and on SIGUSR1).
//!
//! `/list` asks for the lobby list of the LAN (PROTOCOL.md 7.12): a `lobbies` line at once,
//! `{"event":"lobbies","lobbies":[{"name":"general","members":2}],"cut":false}`, most members
//! first, and another each time the list changes in the two minutes after. `members` counts
//! each reporting node itself; `cut` says lobbies were left out (the list holds 256).
//!
//! Direct messages (`/msg NICK TEXT`, PROTOCOL.md 4.15): `direct` is a direct message from
//! another peer, printed exactly once; `direct_sent` an own one sealed and sent
//! (`"pending": true`), then `direct_acked` when the addressee acknowledged it or
//! `direct_failed` when it never did. `conversation` gives the recent direct messages with a
//! peer from its history file: on `/query NICK`, and before the first direct message of a run
//! to or from that peer.
//!
//! Invitations to private lobbies (`/invite NICK [LOBBY]`, PROTOCOL.md 7.11): `invitation`
//! is one received (`lobby`, `lobby_id`, the inviter's `from` and `nick`; `"again": true` for
//! a re-invitation, and `"joined": true` when the node rejoined at once, a `joined` line
//! first); `/accept [LOBBY]` joins it (a `joined` line, and the texts after it go there) and
//! `/decline [LOBBY]` forgets it (`declined`). `invitation_sent` is an own one sealed and sent,
//! then `invitation_acked` or `invitation_failed`.
//! Who-is (`/whois NICK`, PROTOCOL.md 7.13): `whois_asked` says the query went out (`id`,
//! `nick`); each answer is a `whois` line (`id`, `nick` asked, `from`: the answering node,
//! `peers`: each with `peer`, `nick`, `seen_ago_s`, `lobbies` and `addr`, null unless the
//! answerer is its friend), this node's own knowledge first; `whois_done` closes the query
//! [`crate::app::WHOIS_WAIT`] later with the count of `answers` and distinct `peers` (0 and 0:
//! nobody within reach goes by that nick) and `friends_up` (0: only this node was asked).
//!
//! `message`, `peer_joined` and `nick` lines, and the entries of `members`, carry
//! `"key_changed": true` when the nick is known with other keys and the peer's key is not
//! accepted for it ([`crate::known_peers`]), until `/trust NICK`; the field is left out
//! otherwise.
//!
//! A line starting with `/` is a command of [`crate::command_line`] (`/join`, `/part`,
//! `/nick`, `/me`, `/who`, `/trust`, `/msg`, `/query`, `/invite`, `/accept`, `/decline`,
//! `/whois`, `/list`, `/friend`, `/status`, `/quit`);
//! `//text` sends
//! `/text`. `/join NAME --private` and `/join NAME --key PASSPHRASE` join private lobbies: the
//! input thread works out their keys (a passphrase's Argon2id takes it a third of a second),
//! so that it knows the private lobby id the texts after it go to.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::app::{Addressee, AppEvent, Command, Frontend, Which};
use crate::command_line::{self, Input};
use crate::direct_history::{DirectRecord, DirectState};
use crate::lobby_keys::{JoinHow, LobbyKeys};
use crate::proto::wire::WhoIsPeer;
use crate::proto::{Listed, Lobby, LobbyId, Message, PeerId, Stats};

/// Longest input line kept; the rest of a longer line is dropped (the protocol's limit,
/// 60 KiB, refuses it anyway, with an `error` event).
const MAX_LINE: usize = 1 << 20;

/// Invitations the pipe printed and that wait, shared with its input thread: `/accept` there
/// must know which private lobby the texts after it go to, and only the runtime knows its id.
/// The frontend records an invitation before its line can be read, so a script that answers
/// the line finds it.
#[derive(Clone, Debug, Default)]
pub struct Invited(Arc<Mutex<VecDeque<(String, PeerId, LobbyId)>>>);

impl Invited {
    fn record(&self, lobby: &Lobby, from: PeerId) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|(_, _, id)| *id != lobby.id);
        if list.len() >= crate::app::MAX_WAITING_INVITATIONS {
            list.pop_front();
        }
        list.push_back((lobby.name.clone(), from, lobby.id));
    }

    /// The lobby `/accept` or `/decline` with `which` names, as the runtime picks it (see
    /// [`Command::Accept`]), forgotten here; `None` if none or several lobbies match (the
    /// runtime then says why).
    fn take(&self, which: Option<&str>) -> Option<(String, LobbyId)> {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (name, id) = match which {
            None => list.back().map(|(n, _, id)| (n.clone(), *id))?,
            Some(w) => {
                let picked = Which::parse(w).ok()?;
                let mut ids = list.iter().filter(|(n, from, _)| picked.matches(n, *from));
                let id = ids.next()?.2;
                if ids.any(|(_, _, other)| *other != id) {
                    return None;
                }
                (picked.name, id)
            }
        };
        list.retain(|(_, _, other)| *other != id);
        Some((name, id))
    }
}

/// Writes events as JSON lines to a writer (stdout), buffering until flushed.
#[derive(Debug)]
pub struct PipeFrontend<W: Write> {
    out: W,
    buf: Vec<u8>,
    invited: Invited,
}

impl<W: Write> PipeFrontend<W> {
    /// A frontend writing to `out`.
    pub fn new(out: W) -> Self {
        PipeFrontend {
            out,
            buf: Vec::with_capacity(64 << 10),
            invited: Invited::default(),
        }
    }

    /// The invitations this frontend prints, for [`spawn_reader`].
    pub fn invited(&self) -> Invited {
        self.invited.clone()
    }

    fn line<T: Serialize>(&mut self, v: &T) {
        // Serialising plain strings and numbers into a Vec cannot fail.
        if serde_json::to_writer(&mut self.buf, v).is_ok() {
            self.buf.push(b'\n');
        }
    }
}

/// A 64-bit id as 16 hex digits.
struct Hex(u64);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; 16];
        s.serialize_str(crate::history::hex(self.0, &mut buf))
    }
}

#[derive(Serialize)]
struct MessageLine<'a> {
    event: &'static str,
    lobby: &'a str,
    nick: &'a str,
    text: &'a str,
    id: Hex,
    sent_at: u64,
    source: Hex,
    seq: u64,
    late: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    own: Option<bool>,
    #[serde(skip_serializing_if = "is_false")]
    key_changed: bool,
}

/// Flags are left out when false: a script tests for their presence.
fn is_false(b: &bool) -> bool {
    !*b
}

impl<'a> MessageLine<'a> {
    fn new(event: &'static str, lobby: &'a str, m: &'a Message, own: Option<bool>) -> Self {
        MessageLine {
            event,
            lobby,
            nick: &m.nick,
            text: &m.text,
            id: Hex(m.msg_id.0),
            sent_at: m.sent_at,
            source: Hex(m.source.0),
            seq: m.seq,
            late: m.late,
            own,
            key_changed: false,
        }
    }
}

#[derive(Serialize)]
struct PeerLine<'a> {
    event: &'static str,
    lobby: &'a str,
    peer: Hex,
    #[serde(skip_serializing_if = "Option::is_none")]
    nick: Option<&'a str>,
    #[serde(skip_serializing_if = "is_false")]
    key_changed: bool,
}

#[derive(Serialize)]
struct FriendLine<'a> {
    event: &'static str,
    addr: SocketAddr,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<Hex>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nick: Option<&'a str>,
}

#[derive(Serialize)]
struct FriendLobbyLine<'a> {
    event: &'static str,
    lobby: &'a str,
    addr: SocketAddr,
    peer: Hex,
}

#[derive(Serialize)]
struct JoinedLine<'a> {
    event: &'static str,
    lobby: &'a str,
    lobby_id: Hex,
    peer: Hex,
    groups: &'a [SocketAddr],
    local: &'a [SocketAddr],
    #[serde(skip_serializing_if = "is_false")]
    private: bool,
}

#[derive(Serialize)]
struct LostLine<'a> {
    event: &'static str,
    lobby: &'a str,
    source: Hex,
    count: u64,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    event: &'static str,
    lobby: &'a str,
    error: &'a str,
}

#[derive(Serialize)]
struct LobbyLine<'a> {
    event: &'static str,
    lobby: &'a str,
}

#[derive(Serialize)]
struct CommandErrorLine<'a> {
    event: &'static str,
    error: &'a str,
}

#[derive(Serialize)]
struct OwnNickLine<'a> {
    event: &'static str,
    nick: &'a str,
}

#[derive(Serialize)]
struct Member<'a> {
    peer: Hex,
    nick: &'a str,
    #[serde(skip_serializing_if = "is_false")]
    key_changed: bool,
}

#[derive(Serialize)]
struct TrustedLine<'a> {
    event: &'static str,
    nick: &'a str,
    peers: Vec<Hex>,
}

#[derive(Serialize)]
struct MembersLine<'a> {
    event: &'static str,
    lobby: &'a str,
    members: Vec<Member<'a>>,
}

#[derive(Serialize)]
struct Friend<'a> {
    addr: SocketAddr,
    up: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<Hex>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nick: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_ms: Option<f64>,
}

#[derive(Serialize)]
struct FriendsLine<'a> {
    event: &'static str,
    friends: Vec<Friend<'a>>,
}

#[derive(Serialize)]
struct StatusLobby<'a> {
    lobby: &'a str,
    members: usize,
    missing: usize,
}

#[derive(Serialize)]
struct StatusLine<'a> {
    event: &'static str,
    nick: &'a str,
    multicast: bool,
    friends: usize,
    friends_up: usize,
    lobbies: Vec<StatusLobby<'a>>,
}

#[derive(Serialize)]
struct ListedLobby<'a> {
    name: &'a str,
    members: u64,
}

#[derive(Serialize)]
struct LobbiesLine<'a> {
    event: &'static str,
    lobbies: Vec<ListedLobby<'a>>,
    cut: bool,
}

fn lobbies_line(lobbies: &[Listed], cut: bool) -> LobbiesLine<'_> {
    LobbiesLine {
        event: "lobbies",
        lobbies: lobbies
            .iter()
            .map(|l| ListedLobby {
                name: &l.name,
                members: l.members,
            })
            .collect(),
        cut,
    }
}

#[derive(Serialize)]
struct DirectLine<'a> {
    event: &'static str,
    peer: Hex,
    nick: &'a str,
    text: &'a str,
    id: Hex,
    sent_at: u64,
    #[serde(skip_serializing_if = "is_false")]
    key_changed: bool,
}

#[derive(Serialize)]
struct DirectSentLine<'a> {
    event: &'static str,
    id: Hex,
    to: Hex,
    nick: &'a str,
    text: &'a str,
    sent_at: u64,
    pending: bool,
}

#[derive(Serialize)]
struct DirectStateLine {
    event: &'static str,
    id: Hex,
    to: Hex,
}

#[derive(Serialize)]
struct InvitationLine<'a> {
    event: &'static str,
    id: Hex,
    from: Hex,
    nick: &'a str,
    lobby: &'a str,
    lobby_id: Hex,
    #[serde(skip_serializing_if = "is_false")]
    again: bool,
    #[serde(skip_serializing_if = "is_false")]
    joined: bool,
    #[serde(skip_serializing_if = "is_false")]
    key_changed: bool,
}

#[derive(Serialize)]
struct InvitationSentLine<'a> {
    event: &'static str,
    id: Hex,
    to: Hex,
    nick: &'a str,
    lobby: &'a str,
    pending: bool,
}

#[derive(Serialize)]
struct DeclinedLine<'a> {
    event: &'static str,
    lobby: &'a str,
    lobby_id: Hex,
    from: Hex,
}

#[derive(Serialize)]
struct HistoryEntry<'a> {
    id: Hex,
    own: bool,
    nick: &'a str,
    text: &'a str,
    sent_at: u64,
    state: &'static str,
}

#[derive(Serialize)]
struct ConversationLine<'a> {
    event: &'static str,
    peer: Hex,
    nick: &'a str,
    history: Vec<HistoryEntry<'a>>,
}

#[derive(Serialize)]
struct WhoIsAskedLine<'a> {
    event: &'static str,
    id: Hex,
    nick: &'a str,
}

/// One peer of a `whois` line. Its peer id is its key's fingerprint (PROTOCOL.md 4.19), so
/// there is no separate fingerprint field.
#[derive(Serialize)]
struct WhoIsEntry<'a> {
    peer: Hex,
    nick: &'a str,
    /// Seconds since the answerer last heard it; 0 when it answered about itself.
    seen_ago_s: u64,
    lobbies: &'a [String],
    /// Null unless the answerer is its friend: a script reads every field of every entry.
    addr: Option<SocketAddr>,
}

fn whois_entry(p: &WhoIsPeer) -> WhoIsEntry<'_> {
    WhoIsEntry {
        peer: Hex(p.peer.0),
        nick: &p.nick,
        seen_ago_s: p.seen,
        lobbies: &p.lobbies,
        addr: p.addr,
    }
}

#[derive(Serialize)]
struct WhoIsLine<'a> {
    event: &'static str,
    id: Hex,
    nick: &'a str,
    from: Hex,
    peers: Vec<WhoIsEntry<'a>>,
}

#[derive(Serialize)]
struct WhoIsDoneLine<'a> {
    event: &'static str,
    id: Hex,
    nick: &'a str,
    answers: usize,
    peers: usize,
    friends_up: usize,
}

/// How the pipe names a [`DirectState`].
fn state_name(s: DirectState) -> &'static str {
    match s {
        DirectState::Received => "received",
        DirectState::Pending => "pending",
        DirectState::Delivered => "delivered",
        DirectState::Failed => "failed",
    }
}

fn history_entry(r: &DirectRecord) -> HistoryEntry<'_> {
    HistoryEntry {
        id: Hex(r.id.0),
        own: r.own,
        nick: &r.nick,
        text: &r.text,
        sent_at: r.sent_at,
        state: state_name(r.state),
    }
}

#[derive(Serialize)]
struct StatsLine<'a> {
    event: &'static str,
    /// Every counter of the core, by its field name.
    #[serde(flatten)]
    stats: &'a Stats,
}

impl<W: Write> Frontend for PipeFrontend<W> {
    fn event(&mut self, ev: AppEvent<'_>) {
        match ev {
            AppEvent::Joined {
                lobby,
                peer,
                groups,
                local,
                private,
            } => self.line(&JoinedLine {
                event: "joined",
                lobby: &lobby.name,
                lobby_id: Hex(lobby.id.0),
                peer: Hex(peer.0),
                groups,
                local,
                private,
            }),
            AppEvent::History { lobby, msg, own } => {
                self.line(&MessageLine::new("history", &lobby.name, msg, Some(own)))
            }
            AppEvent::Message {
                lobby,
                msg,
                key_changed,
            } => self.line(&MessageLine {
                key_changed,
                ..MessageLine::new("message", &lobby.name, msg, None)
            }),
            AppEvent::Sent { .. } => {}
            AppEvent::SendFailed { lobby, error } => self.line(&ErrorLine {
                event: "error",
                lobby: &lobby.name,
                error: &error,
            }),
            AppEvent::PeerJoined {
                lobby,
                peer,
                nick,
                key_changed,
            } => self.line(&PeerLine {
                event: "peer_joined",
                lobby: &lobby.name,
                peer: Hex(peer.0),
                nick: Some(nick),
                key_changed,
            }),
            AppEvent::NickChanged {
                lobby,
                peer,
                nick,
                key_changed,
            } => self.line(&PeerLine {
                event: "nick",
                lobby: &lobby.name,
                peer: Hex(peer.0),
                nick: Some(nick),
                key_changed,
            }),
            AppEvent::PeerLeft { lobby, peer } => self.line(&PeerLine {
                event: "peer_left",
                lobby: &lobby.name,
                peer: Hex(peer.0),
                nick: None,
                key_changed: false,
            }),
            AppEvent::Lost {
                lobby,
                source,
                count,
            } => self.line(&LostLine {
                event: "lost",
                lobby: &lobby.name,
                source: Hex(source.0),
                count,
            }),
            AppEvent::FriendUp { addr, peer, nick } => self.line(&FriendLine {
                event: "friend",
                addr,
                state: "up",
                peer: Some(Hex(peer.0)),
                nick: Some(nick),
            }),
            AppEvent::FriendDown { addr, peer } => self.line(&FriendLine {
                event: "friend",
                addr,
                state: "down",
                peer: peer.map(|p| Hex(p.0)),
                nick: None,
            }),
            AppEvent::FriendInLobby { lobby, addr, peer } => self.line(&FriendLobbyLine {
                event: "friend_lobby",
                lobby: &lobby.name,
                addr,
                peer: Hex(peer.0),
            }),
            AppEvent::Stats(s) => self.line(&stats_line(s)),
            AppEvent::Parted { lobby } => self.line(&LobbyLine {
                event: "parted",
                lobby: &lobby.name,
            }),
            AppEvent::CommandFailed { error } => self.line(&CommandErrorLine {
                event: "command_error",
                error: &error,
            }),
            AppEvent::OwnNick { nick } => self.line(&OwnNickLine {
                event: "own_nick",
                nick,
            }),
            AppEvent::Members {
                lobby,
                members,
                key_changed,
            } => self.line(&MembersLine {
                event: "members",
                lobby: &lobby.name,
                members: members
                    .iter()
                    .map(|(p, n)| Member {
                        peer: Hex(p.0),
                        nick: n,
                        key_changed: key_changed.contains(p),
                    })
                    .collect(),
            }),
            AppEvent::Trusted { nick, peers } => self.line(&TrustedLine {
                event: "trusted",
                nick,
                peers: peers.iter().map(|p| Hex(p.0)).collect(),
            }),
            AppEvent::Friends { friends } => self.line(&FriendsLine {
                event: "friends",
                friends: friends
                    .iter()
                    .map(|f| Friend {
                        addr: f.addr,
                        up: f.up,
                        peer: f.peer.map(|p| Hex(p.0)),
                        nick: f.nick.as_deref(),
                        rtt_ms: f.rtt.map(|d| d.as_secs_f64() * 1e3),
                    })
                    .collect(),
            }),
            AppEvent::Conversation {
                peer,
                nick,
                history,
                ..
            } => self.line(&ConversationLine {
                event: "conversation",
                peer: Hex(peer.0),
                nick,
                history: history.iter().map(history_entry).collect(),
            }),
            AppEvent::Direct {
                peer,
                msg,
                key_changed,
            } => self.line(&DirectLine {
                event: "direct",
                peer: Hex(peer.0),
                nick: &msg.nick,
                text: &msg.text,
                id: Hex(msg.id.0),
                sent_at: msg.sent_at,
                key_changed,
            }),
            AppEvent::DirectSent { peer, nick, msg } => self.line(&DirectSentLine {
                event: "direct_sent",
                id: Hex(msg.id.0),
                to: Hex(peer.0),
                nick,
                text: &msg.text,
                sent_at: msg.sent_at,
                pending: true,
            }),
            AppEvent::DirectAcked { id, peer } => self.line(&DirectStateLine {
                event: "direct_acked",
                id: Hex(id.0),
                to: Hex(peer.0),
            }),
            AppEvent::DirectFailed { id, peer } => self.line(&DirectStateLine {
                event: "direct_failed",
                id: Hex(id.0),
                to: Hex(peer.0),
            }),
            AppEvent::Invitation {
                id,
                from,
                nick,
                lobby,
                again,
                joined,
                key_changed,
            } => {
                if !joined {
                    self.invited.record(lobby, from);
                }
                self.line(&InvitationLine {
                    event: "invitation",
                    id: Hex(id.0),
                    from: Hex(from.0),
                    nick,
                    lobby: &lobby.name,
                    lobby_id: Hex(lobby.id.0),
                    again,
                    joined,
                    key_changed,
                });
            }
            AppEvent::InvitationSent {
                id,
                peer,
                nick,
                lobby,
            } => self.line(&InvitationSentLine {
                event: "invitation_sent",
                id: Hex(id.0),
                to: Hex(peer.0),
                nick,
                lobby: &lobby.name,
                pending: true,
            }),
            AppEvent::InvitationAcked { id, peer } => self.line(&DirectStateLine {
                event: "invitation_acked",
                id: Hex(id.0),
                to: Hex(peer.0),
            }),
            AppEvent::InvitationFailed { id, peer } => self.line(&DirectStateLine {
                event: "invitation_failed",
                id: Hex(id.0),
                to: Hex(peer.0),
            }),
            AppEvent::Declined { lobby, from } => self.line(&DeclinedLine {
                event: "declined",
                lobby: &lobby.name,
                lobby_id: Hex(lobby.id.0),
                from: Hex(from.0),
            }),
            AppEvent::WhoIsAsked { id, nick } => self.line(&WhoIsAskedLine {
                event: "whois_asked",
                id: Hex(id.0),
                nick,
            }),
            AppEvent::WhoIs {
                id,
                nick,
                from,
                peers,
            } => self.line(&WhoIsLine {
                event: "whois",
                id: Hex(id.0),
                nick,
                from: Hex(from.0),
                peers: peers.iter().map(whois_entry).collect(),
            }),
            AppEvent::WhoIsDone {
                id,
                nick,
                answers,
                peers,
                friends_up,
            } => self.line(&WhoIsDoneLine {
                event: "whois_done",
                id: Hex(id.0),
                nick,
                answers,
                peers,
                friends_up,
            }),
            AppEvent::Status(s) => self.line(&StatusLine {
                event: "status",
                nick: &s.nick,
                multicast: s.multicast,
                friends: s.friends,
                friends_up: s.friends_up,
                lobbies: s
                    .lobbies
                    .iter()
                    .map(|l| StatusLobby {
                        lobby: &l.lobby.name,
                        members: l.members,
                        missing: l.missing,
                    })
                    .collect(),
            }),
            AppEvent::LobbyList { lobbies, cut } => self.line(&lobbies_line(lobbies, cut)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self
            .out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush());
        self.buf.clear();
        r
    }
}

fn stats_line(s: &Stats) -> StatsLine<'_> {
    StatsLine {
        event: "stats",
        stats: s,
    }
}

/// Reads `input` on a thread of its own: text lines are sent to the current lobby (`lobby`
/// at first; `keys` gives those of `/join NAME --private`), as many per command as one read
/// returned, so that a burst of lines reaches the
/// core in one wakeup; `/command` lines (see [`crate::command_line`]) become commands, in
/// order with the texts. The channel is closed when the input ends. Blocking reads keep the
/// event loop free of stdin polling.
pub fn spawn_reader<R: Read + Send + 'static>(
    mut input: R,
    lobby: Lobby,
    keys: LobbyKeys,
    invited: Invited,
    tx: mpsc::Sender<Vec<Command>>,
) -> io::Result<thread::JoinHandle<()>> {
    thread::Builder::new().name("input".into()).spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        let mut pending: Vec<u8> = Vec::new();
        let mut skipping = false;
        let mut lines = Lines::new(lobby, keys, invited);
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "reading input failed; treating it as ended");
                    break;
                }
            };
            let mut chunk = &buf[..n];
            while let Some(i) = chunk.iter().position(|&b| b == b'\n') {
                if skipping {
                    skipping = false;
                } else {
                    pending.extend_from_slice(&chunk[..i]);
                    lines.push(&pending);
                }
                pending.clear();
                chunk = &chunk[i + 1..];
            }
            if !skipping {
                pending.extend_from_slice(chunk);
                if pending.len() > MAX_LINE {
                    tracing::warn!(limit = MAX_LINE, "input line too long; dropped");
                    pending.clear();
                    skipping = true;
                }
            }
            if !lines.send(&tx) {
                return;
            }
        }
        if !skipping && !pending.is_empty() {
            lines.push(&pending);
            lines.send(&tx);
        }
    })
}

/// Turns lines into commands, keeping track of the lobby texts go to.
struct Lines {
    current: LobbyId,
    /// The lobbies joined, as the input asked, by normalised name: where `/part` of the current
    /// one leads, and which id a name stands for (a private lobby's is not the name's).
    joined: Vec<(String, LobbyId)>,
    keys: LobbyKeys,
    /// The invitations printed: which lobby `/accept` joins.
    invited: Invited,
    cmds: Vec<Command>,
}

impl Lines {
    fn new(lobby: Lobby, keys: LobbyKeys, invited: Invited) -> Self {
        Lines {
            current: lobby.id,
            joined: vec![(lobby.name, lobby.id)],
            keys,
            invited,
            cmds: Vec::new(),
        }
    }

    /// The `Command::Accept` of `/accept [LOBBY]`, with the current lobby moved to the lobby
    /// invited to, as `/join` moves it.
    fn accept(&mut self, which: Option<String>) -> Command {
        if let Some((name, id)) = self.invited.take(which.as_deref())
            // The runtime refuses a second lobby of a name joined already.
            && !self.joined.iter().any(|(n, j)| *n == name && *j != id)
        {
            self.joined.retain(|(_, j)| *j != id);
            self.joined.push((name, id));
            self.current = id;
        }
        Command::Accept { which }
    }

    /// The `Command::Join` of `/join NAME` joined `how`, with the key worked out here, and the
    /// current lobby moved to it.
    fn join(&mut self, name: String, how: JoinHow) -> Command {
        let Ok(named) = Lobby::new(&name) else {
            // The runtime says what is wrong with the name.
            return Command::Join { name, how };
        };
        let (lobby, how) = match how.key(&named, &self.keys) {
            Ok(None) => (named, how),
            Ok(Some(key)) => (key.lobby(&named), JoinHow::Key(key)),
            Err(e) => {
                return Command::Invalid {
                    error: format!("cannot join {}: {e}", named.name),
                };
            }
        };
        // The runtime refuses a second lobby of a name joined already; the texts keep going
        // where they went.
        if !self.joined.iter().any(|(n, _)| *n == lobby.name) {
            self.joined.push((lobby.name.clone(), lobby.id));
            self.current = lobby.id;
        } else if let Some(i) = self.joined.iter().position(|(_, id)| *id == lobby.id) {
            let j = self.joined.remove(i);
            self.joined.push(j);
            self.current = lobby.id;
        }
        Command::Join { name, how }
    }

    fn text(&mut self, text: String) {
        match self.cmds.last_mut() {
            Some(Command::Send { lobby, texts }) if *lobby == self.current => texts.push(text),
            _ => self.cmds.push(Command::Send {
                lobby: self.current,
                texts: vec![text],
            }),
        }
    }

    fn push(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let input = match command_line::parse(&line) {
            Ok(Some(i)) => i,
            Ok(None) => return,
            Err(error) => return self.cmds.push(Command::Invalid { error }),
        };
        let joined = &self.joined;
        let lobby_of = |name: Option<String>, current: LobbyId| match name {
            None => Ok(current),
            Some(n) => Lobby::new(&n)
                .map(|l| {
                    joined
                        .iter()
                        .find(|(j, _)| *j == l.name)
                        .map_or(l.id, |&(_, id)| id)
                })
                .map_err(|e| format!("bad lobby name {n:?}: {e}")),
        };
        let cmd = match input {
            Input::Text(t) => return self.text(t),
            Input::Me(t) => return self.text(format!("{}{t}", command_line::ACTION_PREFIX)),
            Input::Join { name, how } => self.join(name, how),
            Input::Part(name) => match lobby_of(name, self.current) {
                Ok(lobby) => {
                    self.joined.retain(|&(_, j)| j != lobby);
                    if lobby == self.current
                        && let Some(&(_, last)) = self.joined.last()
                    {
                        self.current = last;
                    }
                    Command::Part { lobby }
                }
                Err(error) => Command::Invalid { error },
            },
            Input::Nick(nick) => Command::Nick { nick },
            Input::Trust(nick) => Command::Trust { nick },
            Input::Msg { nick, text } => Command::Direct {
                to: Addressee::Nick(nick),
                text,
            },
            Input::Query(nick) => Command::Query { nick },
            Input::Invite { nick, lobby } => match lobby_of(lobby, self.current) {
                Ok(lobby) => Command::Invite { nick, lobby },
                Err(error) => Command::Invalid { error },
            },
            Input::Accept(which) => self.accept(which),
            Input::Decline(which) => {
                self.invited.take(which.as_deref());
                Command::Decline { which }
            }
            Input::WhoIs(nick) => Command::WhoIs { nick },
            Input::Who(name) => match lobby_of(name, self.current) {
                Ok(lobby) => Command::Who { lobby },
                Err(error) => Command::Invalid { error },
            },
            Input::List => Command::ListLobbies,
            Input::Status => Command::Status,
            Input::FriendAdd(addr) => Command::AddFriend { addr },
            Input::FriendDel(addr) => Command::RemoveFriend { addr },
            Input::FriendList => Command::ListFriends,
            Input::Clear | Input::Help(_) => Command::Invalid {
                error: "/clear and /help are for the screen; lobbycast(1) lists the pipe's \
                        commands"
                    .into(),
            },
            Input::Quit => Command::Quit,
        };
        self.cmds.push(cmd);
    }

    /// Sends what was gathered; false if the runtime is gone.
    fn send(&mut self, tx: &mpsc::Sender<Vec<Command>>) -> bool {
        self.cmds.is_empty() || tx.blocking_send(std::mem::take(&mut self.cmds)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lobby the reader starts in: id 1.
    fn first() -> Lobby {
        Lobby {
            name: "first".into(),
            id: LobbyId(1),
        }
    }

    fn lines_of(input: &'static [u8]) -> Vec<String> {
        let (tx, mut rx) = mpsc::channel(16);
        let keys = LobbyKeys::new(std::path::Path::new("/nonexistent"));
        spawn_reader(input, first(), keys, Invited::default(), tx)
            .unwrap()
            .join()
            .unwrap();
        let mut out = Vec::new();
        while let Ok(cmds) = rx.try_recv() {
            for c in cmds {
                if let Command::Send { texts, .. } = c {
                    out.extend(texts);
                }
            }
        }
        out
    }

    #[test]
    fn lines_are_split_trimmed_of_cr_and_empty_ones_skipped() {
        assert_eq!(
            lines_of(b"one\r\n\ntwo\nthree without newline"),
            ["one", "two", "three without newline"]
        );
    }

    fn commands_of(input: &'static [u8]) -> Vec<Command> {
        let tmp = tempfile::tempdir().unwrap();
        commands_in(input, tmp.path())
    }

    fn commands_in(input: &'static [u8], data_dir: &std::path::Path) -> Vec<Command> {
        let (tx, mut rx) = mpsc::channel(16);
        spawn_reader(
            input,
            first(),
            LobbyKeys::new(data_dir),
            Invited::default(),
            tx,
        )
        .unwrap()
        .join()
        .unwrap();
        let mut out = Vec::new();
        while let Ok(cmds) = rx.try_recv() {
            out.extend(cmds);
        }
        out
    }

    #[test]
    fn command_lines_keep_their_order_with_texts_and_move_the_current_lobby() {
        let ops = Lobby::new("ops").unwrap().id;
        let cmds =
            commands_of(b"hi\n/nick ann\n/join Ops\nthere\n/me waves\n//x\n/part\nback\n/bogus\n");
        assert_eq!(
            cmds,
            vec![
                Command::Send {
                    lobby: LobbyId(1),
                    texts: vec!["hi".into()]
                },
                Command::Nick { nick: "ann".into() },
                Command::Join {
                    name: "Ops".into(),
                    how: JoinHow::Public
                },
                Command::Send {
                    lobby: ops,
                    texts: vec!["there".into(), "/me waves".into(), "/x".into()]
                },
                Command::Part { lobby: ops },
                Command::Send {
                    lobby: LobbyId(1),
                    texts: vec!["back".into()]
                },
                Command::Invalid {
                    error: "unknown command /bogus; /help lists the commands (//text sends /text)"
                        .into()
                },
            ]
        );
    }

    #[test]
    fn private_joins_carry_their_key_and_texts_follow_them() {
        let tmp = tempfile::tempdir().unwrap();
        let cmds = commands_in(
            b"/join team --key correct horse\nhi\n/join Ops --private\nthere\n/part team\n\
              /join ops\n/join ops --private\n/part\nback\n",
            tmp.path(),
        );
        let team = Lobby::new("team").unwrap();
        let team_key =
            crate::proto::private::LobbyKey::from_passphrase("correct horse", &team).unwrap();
        let ops = Lobby::new("ops").unwrap();
        let ops_key = LobbyKeys::new(tmp.path())
            .get(&ops)
            .unwrap()
            .expect("stored");
        let send = |lobby, text: &str| Command::Send {
            lobby,
            texts: vec![text.into()],
        };
        assert_eq!(
            cmds,
            vec![
                Command::Join {
                    name: "team".into(),
                    how: JoinHow::Key(team_key.clone())
                },
                send(team_key.id(), "hi"),
                Command::Join {
                    name: "Ops".into(),
                    how: JoinHow::Key(ops_key.clone())
                },
                send(ops_key.id(), "there"),
                Command::Part {
                    lobby: team_key.id()
                },
                // Refused by the runtime (the private ops is joined): texts stay put.
                Command::Join {
                    name: "ops".into(),
                    how: JoinHow::Public
                },
                Command::Join {
                    name: "ops".into(),
                    how: JoinHow::Key(ops_key.clone())
                },
                Command::Part {
                    lobby: ops_key.id()
                },
                send(LobbyId(1), "back"),
            ]
        );
    }

    #[test]
    fn joined_lines_say_private_only_when_private() {
        let lobby = Lobby::new("team").unwrap();
        let mut f = PipeFrontend::new(Vec::new());
        for private in [true, false] {
            f.event(AppEvent::Joined {
                lobby: &lobby,
                peer: crate::proto::PeerId(1),
                groups: &[],
                local: &[],
                private,
            });
        }
        f.flush().unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(f.out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["private"], true);
        assert!(lines[1].get("private").is_none(), "{}", lines[1]);
    }

    #[test]
    fn list_asks_for_the_lan_s_lobbies_and_status_for_the_transport() {
        assert_eq!(
            commands_of(b"/list\n/status\n/list everything\n"),
            vec![
                Command::ListLobbies,
                Command::Status,
                Command::Invalid {
                    error: "/list takes no argument".into()
                },
            ]
        );
    }

    #[test]
    fn lobbies_lines_list_names_and_members_in_order_and_say_when_cut() {
        let listed = |name: &str, members| Listed {
            name: name.into(),
            members,
        };
        let mut f = PipeFrontend::new(Vec::new());
        f.event(AppEvent::LobbyList {
            lobbies: &[listed("general", 3), listed("café \"paris\"", 1)],
            cut: false,
        });
        f.event(AppEvent::LobbyList {
            lobbies: &[],
            cut: true,
        });
        assert!(f.out.is_empty(), "nothing is written before flush");
        f.flush().unwrap();
        let text = String::from_utf8(f.out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(
            lines[0],
            serde_json::json!({
                "event": "lobbies",
                "lobbies": [
                    {"name": "general", "members": 3},
                    {"name": "café \"paris\"", "members": 1}
                ],
                "cut": false
            })
        );
        assert_eq!(
            lines[1],
            serde_json::json!({"event": "lobbies", "lobbies": [], "cut": true})
        );
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(lines_of(b"a\xffb\n"), ["a\u{fffd}b"]);
    }

    #[test]
    fn msg_and_query_lines_become_direct_commands() {
        assert_eq!(
            commands_of(b"/msg ann#3fa2 hi there\n/query bob\n/msg carol\n"),
            vec![
                Command::Direct {
                    to: Addressee::Nick("ann#3fa2".into()),
                    text: "hi there".into()
                },
                Command::Query { nick: "bob".into() },
                Command::Invalid {
                    error: "/msg: text missing; usage: /msg NICK TEXT".into()
                },
            ]
        );
    }

    #[test]
    fn invitation_lines_carry_their_fields_and_accept_follows_them() {
        use crate::proto::{MsgId, PeerId};
        let ops = Lobby {
            name: "ops".into(),
            id: LobbyId(0x0a),
        };
        let mut f = PipeFrontend::new(Vec::new());
        f.event(AppEvent::Invitation {
            id: MsgId(0xab),
            from: PeerId(0x3fa2_0000_0000_0001),
            nick: "ann",
            lobby: &ops,
            again: false,
            joined: false,
            key_changed: false,
        });
        f.event(AppEvent::Invitation {
            id: MsgId(0xac),
            from: PeerId(0xfeed),
            nick: "bob",
            lobby: &Lobby {
                name: "dev".into(),
                id: LobbyId(0x0d),
            },
            again: true,
            joined: true,
            key_changed: true,
        });
        f.event(AppEvent::InvitationSent {
            id: MsgId(0xad),
            peer: PeerId(0xfeed),
            nick: "bob",
            lobby: &ops,
        });
        f.event(AppEvent::InvitationAcked {
            id: MsgId(0xad),
            peer: PeerId(0xfeed),
        });
        f.event(AppEvent::InvitationFailed {
            id: MsgId(0xad),
            peer: PeerId(0xfeed),
        });
        f.event(AppEvent::Declined {
            lobby: &ops,
            from: PeerId(0xfeed),
        });
        f.flush().unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(f.out.clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"event": "invitation", "id": "00000000000000ab",
                "from": "3fa2000000000001", "nick": "ann", "lobby": "ops",
                "lobby_id": "000000000000000a"})
        );
        assert_eq!(
            (
                &lines[1]["again"],
                &lines[1]["joined"],
                &lines[1]["key_changed"]
            ),
            (&true.into(), &true.into(), &true.into())
        );
        assert_eq!(
            lines[2],
            serde_json::json!({"event": "invitation_sent", "id": "00000000000000ad",
                "to": "000000000000feed", "nick": "bob", "lobby": "ops", "pending": true})
        );
        assert_eq!(lines[3]["event"], "invitation_acked");
        assert_eq!(lines[4]["event"], "invitation_failed");
        assert_eq!(
            lines[5],
            serde_json::json!({"event": "declined", "lobby": "ops",
                "lobby_id": "000000000000000a", "from": "000000000000feed"})
        );
        assert_eq!(lines.len(), 6);

        // Only the invitation waiting is there for the input thread: texts after /accept go
        // to its lobby; a lobby rejoined at once was not recorded.
        let (tx, mut rx) = mpsc::channel(16);
        let tmp = tempfile::tempdir().unwrap();
        let input: &[u8] = b"/accept dev\nstill first\n/accept OPS#3FA2\nhi ops\n/decline\n";
        spawn_reader(input, first(), LobbyKeys::new(tmp.path()), f.invited(), tx)
            .unwrap()
            .join()
            .unwrap();
        let mut cmds = Vec::new();
        while let Ok(c) = rx.try_recv() {
            cmds.extend(c);
        }
        assert_eq!(
            cmds,
            vec![
                Command::Accept {
                    which: Some("dev".into())
                },
                Command::Send {
                    lobby: LobbyId(1),
                    texts: vec!["still first".into()]
                },
                Command::Accept {
                    which: Some("OPS#3FA2".into())
                },
                Command::Send {
                    lobby: LobbyId(0x0a),
                    texts: vec!["hi ops".into()]
                },
                Command::Decline { which: None },
            ]
        );
    }

    #[test]
    fn invite_lines_name_the_current_lobby_or_theirs() {
        assert_eq!(
            commands_of(b"/invite ann\n/invite bob Ops\n/invite\n"),
            vec![
                Command::Invite {
                    nick: "ann".into(),
                    lobby: LobbyId(1)
                },
                Command::Invite {
                    nick: "bob".into(),
                    lobby: Lobby::new("ops").unwrap().id
                },
                Command::Invalid {
                    error: "/invite: nick missing; usage: /invite NICK [LOBBY]".into()
                },
            ]
        );
    }

    #[test]
    fn direct_lines_carry_their_fields() {
        use crate::direct_history::{DirectRecord, DirectState};
        use crate::proto::{MsgId, PeerId};
        let rec = |own: bool, state| DirectRecord {
            id: MsgId(0xab),
            own,
            nick: "ann".into(),
            sent_at: 1_767_000_000_123,
            text: "hi \"there\"".into(),
            state,
        };
        let got = rec(false, DirectState::Received);
        let sent = rec(true, DirectState::Pending);
        let mut f = PipeFrontend::new(Vec::new());
        f.event(AppEvent::Conversation {
            peer: PeerId(0xfeed),
            nick: "ann",
            history: &[rec(true, DirectState::Delivered)],
            query: true,
        });
        f.event(AppEvent::Direct {
            peer: PeerId(0xfeed),
            msg: &got,
            key_changed: false,
        });
        f.event(AppEvent::DirectSent {
            peer: PeerId(0xfeed),
            nick: "ann",
            msg: &sent,
        });
        f.event(AppEvent::DirectAcked {
            id: MsgId(0xab),
            peer: PeerId(0xfeed),
        });
        f.event(AppEvent::DirectFailed {
            id: MsgId(0xab),
            peer: PeerId(0xfeed),
        });
        f.flush().unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(f.out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let peer = "000000000000feed";
        let id = "00000000000000ab";
        assert_eq!(lines[0]["event"], "conversation");
        assert_eq!(lines[0]["peer"], peer);
        assert_eq!(lines[0]["history"][0]["state"], "delivered");
        assert_eq!(lines[0]["history"][0]["own"], true);
        assert_eq!(lines[1]["event"], "direct");
        assert_eq!(lines[1]["peer"], peer);
        assert_eq!(lines[1]["nick"], "ann");
        assert_eq!(lines[1]["text"], "hi \"there\"");
        assert_eq!(lines[1]["id"], id);
        assert_eq!(lines[1]["sent_at"], 1_767_000_000_123u64);
        assert!(lines[1].get("key_changed").is_none());
        assert_eq!(lines[2]["event"], "direct_sent");
        assert_eq!(lines[2]["to"], peer);
        assert_eq!(lines[2]["pending"], true);
        assert_eq!(lines[3]["event"], "direct_acked");
        assert_eq!(
            (&lines[3]["id"], &lines[3]["to"]),
            (&id.into(), &peer.into())
        );
        assert_eq!(lines[4]["event"], "direct_failed");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn whois_lines_become_commands() {
        assert_eq!(
            commands_of(b"/whois ann\n/whois  ann smith \n/whois\n"),
            vec![
                Command::WhoIs { nick: "ann".into() },
                Command::WhoIs {
                    nick: "ann smith".into()
                },
                Command::Invalid {
                    error: "/whois: nick missing; usage: /whois NICK".into()
                },
            ]
        );
    }

    #[test]
    fn whois_lines_carry_the_query_the_answerer_and_every_peer() {
        use crate::proto::{MsgId, PeerId};
        let peers = [
            WhoIsPeer {
                peer: PeerId(0x3fa2_0000_0000_0001),
                nick: "Ann".into(),
                seen: 12,
                lobbies: vec!["general".into(), "team".into()],
                addr: Some("10.0.0.2:47110".parse().unwrap()),
            },
            WhoIsPeer {
                peer: PeerId(0x9b01_0000_0000_0002),
                nick: "ann".into(),
                seen: 0,
                lobbies: Vec::new(),
                addr: None,
            },
        ];
        let mut f = PipeFrontend::new(Vec::new());
        f.event(AppEvent::WhoIsAsked {
            id: MsgId(0xab),
            nick: "ann",
        });
        f.event(AppEvent::WhoIs {
            id: MsgId(0xab),
            nick: "ann",
            from: PeerId(0xfeed),
            peers: &peers,
        });
        f.event(AppEvent::WhoIsDone {
            id: MsgId(0xab),
            nick: "ann",
            answers: 1,
            peers: 2,
            friends_up: 3,
        });
        f.flush().unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(f.out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let id = "00000000000000ab";
        assert_eq!(
            lines[0],
            serde_json::json!({"event": "whois_asked", "id": id, "nick": "ann"})
        );
        assert_eq!(
            lines[1],
            serde_json::json!({
                "event": "whois",
                "id": id,
                "nick": "ann",
                "from": "000000000000feed",
                "peers": [
                    {
                        "peer": "3fa2000000000001",
                        "nick": "Ann",
                        "seen_ago_s": 12,
                        "lobbies": ["general", "team"],
                        "addr": "10.0.0.2:47110"
                    },
                    {
                        "peer": "9b01000000000002",
                        "nick": "ann",
                        "seen_ago_s": 0,
                        "lobbies": [],
                        "addr": null
                    }
                ]
            })
        );
        assert_eq!(
            lines[2],
            serde_json::json!({"event": "whois_done", "id": id, "nick": "ann", "answers": 1, "peers": 2, "friends_up": 3})
        );
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn message_lines_carry_the_required_fields() {
        let lobby = crate::proto::Lobby::new("General").unwrap();
        let msg = Message {
            lobby: lobby.id,
            source: crate::proto::PeerId(0xfeed),
            seq: 3,
            msg_id: crate::proto::MsgId(0xab),
            sent_at: 1_767_000_000_123,
            nick: "ann".into(),
            text: "hi \"there\"\n".into(),
            late: false,
        };
        let mut f = PipeFrontend::new(Vec::new());
        f.event(AppEvent::Message {
            lobby: &lobby,
            msg: &msg,
            key_changed: false,
        });
        assert!(f.out.is_empty(), "nothing is written before flush");
        f.flush().unwrap();
        let text = String::from_utf8(f.out).unwrap();
        assert!(text.ends_with('\n') && text.lines().count() == 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"], "message");
        assert_eq!(v["lobby"], "general");
        assert_eq!(v["nick"], "ann");
        assert_eq!(v["text"], "hi \"there\"\n");
        assert_eq!(v["id"], "00000000000000ab");
        assert_eq!(v["sent_at"], 1_767_000_000_123u64);
        assert!(v.get("key_changed").is_none(), "left out when false: {v}");
    }

    #[test]
    fn new_keys_are_flagged_and_trust_answers_with_the_keys() {
        let lobby = crate::proto::Lobby::new("general").unwrap();
        let peer = crate::proto::PeerId(0x9b01_e4f2_a3c4_d5e6);
        let msg = Message {
            lobby: lobby.id,
            source: peer,
            seq: 0,
            msg_id: crate::proto::MsgId(1),
            sent_at: 1,
            nick: "ann".into(),
            text: "hi".into(),
            late: false,
        };
        let mut f = PipeFrontend::new(Vec::new());
        f.event(AppEvent::Message {
            lobby: &lobby,
            msg: &msg,
            key_changed: true,
        });
        for (key_changed, nick) in [(true, "ann"), (false, "bob")] {
            f.event(AppEvent::PeerJoined {
                lobby: &lobby,
                peer,
                nick,
                key_changed,
            });
            f.event(AppEvent::NickChanged {
                lobby: &lobby,
                peer,
                nick,
                key_changed,
            });
        }
        let members = [
            (peer, "ann".to_owned()),
            (crate::proto::PeerId(1), "ann".into()),
        ];
        f.event(AppEvent::Members {
            lobby: &lobby,
            members: &members,
            key_changed: &[peer],
        });
        f.event(AppEvent::Trusted {
            nick: "ann",
            peers: &[peer],
        });
        f.event(AppEvent::Trusted {
            nick: "bob",
            peers: &[],
        });
        f.flush().unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(f.out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let flags: Vec<(&str, Option<bool>)> = lines[..5]
            .iter()
            .map(|v| (v["event"].as_str().unwrap(), v["key_changed"].as_bool()))
            .collect();
        assert_eq!(
            flags,
            [
                ("message", Some(true)),
                ("peer_joined", Some(true)),
                ("nick", Some(true)),
                ("peer_joined", None),
                ("nick", None),
            ]
        );
        assert_eq!(lines[5]["members"][0]["key_changed"], true);
        assert!(lines[5]["members"][1].get("key_changed").is_none());
        assert_eq!(
            lines[6],
            serde_json::json!({"event": "trusted", "nick": "ann", "peers": ["9b01e4f2a3c4d5e6"]})
        );
        assert_eq!(lines[7]["peers"], serde_json::json!([]));
    }
}
