//! `--pipe`: lines on stdin are sent as messages; what the node delivers comes out on stdout as
//! JSON, one object per line.
//!
//! Every message from another node is printed exactly once as `"event":"message"`. Messages
//! from the history are given again at start as `"event":"history"`, never as `"message"`, so
//! a script that counts deliveries is not misled by a restart. Own messages are not printed.
//! Other events: `joined` (the node is ready), `peer_joined`, `peer_left`, `lost`, `error` (a
//! line that could not be sent) and `stats` (at exit).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::thread;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::app::{AppEvent, Command, Frontend};
use crate::proto::{LobbyId, Message, Stats};

/// Longest input line kept; the rest of a longer line is dropped (the protocol's limit,
/// 64 KiB, refuses it anyway, with an `error` event).
const MAX_LINE: usize = 1 << 20;

/// Writes events as JSON lines to a writer (stdout), buffering until flushed.
#[derive(Debug)]
pub struct PipeFrontend<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> PipeFrontend<W> {
    /// A frontend writing to `out`.
    pub fn new(out: W) -> Self {
        PipeFrontend {
            out,
            buf: Vec::with_capacity(64 << 10),
        }
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
            } => self.line(&JoinedLine {
                event: "joined",
                lobby: &lobby.name,
                lobby_id: Hex(lobby.id.0),
                peer: Hex(peer.0),
                groups,
                local,
            }),
            AppEvent::History { lobby, msg, own } => {
                self.line(&MessageLine::new("history", &lobby.name, msg, Some(own)))
            }
            AppEvent::Message { lobby, msg } => {
                self.line(&MessageLine::new("message", &lobby.name, msg, None))
            }
            AppEvent::Sent { .. } => {}
            AppEvent::SendFailed { lobby, error } => self.line(&ErrorLine {
                event: "error",
                lobby: &lobby.name,
                error: &error,
            }),
            AppEvent::PeerJoined { lobby, peer, nick } => self.line(&PeerLine {
                event: "peer_joined",
                lobby: &lobby.name,
                peer: Hex(peer.0),
                nick: Some(nick),
            }),
            AppEvent::NickChanged { lobby, peer, nick } => self.line(&PeerLine {
                event: "nick",
                lobby: &lobby.name,
                peer: Hex(peer.0),
                nick: Some(nick),
            }),
            AppEvent::PeerLeft { lobby, peer } => self.line(&PeerLine {
                event: "peer_left",
                lobby: &lobby.name,
                peer: Hex(peer.0),
                nick: None,
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

/// Reads `input` on a thread of its own and sends its lines to `lobby`, as many per command as
/// one read returned, so that a burst of lines reaches the core in one wakeup. The channel is
/// closed when the input ends. Blocking reads keep the event loop free of stdin polling.
pub fn spawn_reader<R: Read + Send + 'static>(
    mut input: R,
    lobby: LobbyId,
    tx: mpsc::Sender<Vec<Command>>,
) -> io::Result<thread::JoinHandle<()>> {
    thread::Builder::new().name("input".into()).spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        let mut pending: Vec<u8> = Vec::new();
        let mut skipping = false;
        let send = |texts: Vec<String>| {
            texts.is_empty()
                || tx
                    .blocking_send(vec![Command::Send { lobby, texts }])
                    .is_ok()
        };
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
            let mut texts = Vec::new();
            let mut chunk = &buf[..n];
            while let Some(i) = chunk.iter().position(|&b| b == b'\n') {
                if skipping {
                    skipping = false;
                } else {
                    pending.extend_from_slice(&chunk[..i]);
                    push_line(&mut texts, &pending);
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
            if !send(texts) {
                return;
            }
        }
        if !skipping && !pending.is_empty() {
            let mut texts = Vec::new();
            push_line(&mut texts, &pending);
            send(texts);
        }
    })
}

fn push_line(texts: &mut Vec<String>, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.is_empty() {
        texts.push(String::from_utf8_lossy(line).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &'static [u8]) -> Vec<String> {
        let (tx, mut rx) = mpsc::channel(16);
        spawn_reader(input, LobbyId(1), tx).unwrap().join().unwrap();
        let mut out = Vec::new();
        while let Ok(cmds) = rx.try_recv() {
            for Command::Send { texts, .. } in cmds {
                out.extend(texts);
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

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(lines_of(b"a\xffb\n"), ["a\u{fffd}b"]);
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
    }
}
