//! The runtime's book of invitations (PROTOCOL.md 7.11): those received and waiting for
//! `/accept` or `/decline`, and the ids of own direct packets still waiting for their
//! acknowledgement, so that each acknowledgement reaches what it answers (a text's history
//! file, an invitation's line) and those of re-invitations the core sends by itself go nowhere.
//!
//! The invitations waiting are kept in `DATA/invitations`, so that one shown and not answered
//! yet is shown again after a restart (the inviter was told it arrived). They hold lobby keys:
//! the file is written as `lobby-keys` is, mode 0600 and atomically, one JSON object per line.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::display::{fingerprint, fingerprint_digits};
use crate::identity::{hex_of, parse_hex32, write_secret};
use crate::proto::private::LobbyKey;
use crate::proto::{Invitation, Lobby, MsgId, PeerId};

/// The file's name in the data directory.
pub const FILE_NAME: &str = "invitations";

/// Largest file read: [`MAX_WAITING`] lines, with room to spare.
const MAX_FILE: u64 = 64 << 10;

/// Invitations received kept waiting: a peer sending more pushes out the oldest, so memory
/// stays bounded whatever arrives.
pub const MAX_WAITING: usize = 32;

/// Own direct packets remembered until acknowledged or given up. The core keeps at most
/// [`crate::proto::direct::MAX_PENDING`] pending; the margin covers ids it gave up on while
/// the runtime was not told (none are known, but nothing here must grow without bound).
const MAX_OUTSTANDING: usize = 4 * crate::proto::direct::MAX_PENDING;

/// Which invitation `/accept` or `/decline` names: `LOBBY`, or `LOBBY#HEX` for the one from
/// the inviter whose peer id starts with HEX. The runtime, the pipe's input thread and the
/// screen all read it this way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Which {
    /// The lobby's normalised name.
    pub name: String,
    /// The inviter's peer id prefix, lower-case hex, if one was given.
    digits: Option<String>,
}

impl Which {
    /// Reads `which`; a bad lobby name is an error naming it.
    pub fn parse(which: &str) -> Result<Which, String> {
        let (name, digits) = match which.rsplit_once('#') {
            Some((n, d)) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (n, Some(d.to_ascii_lowercase()))
            }
            _ => (which, None),
        };
        let name = Lobby::new(name)
            .map_err(|e| format!("bad lobby name {name:?}: {e}"))?
            .name;
        Ok(Which { name, digits })
    }

    /// Whether it names an invitation to the lobby `name` (normalised) from `from`.
    pub fn matches(&self, name: &str, from: PeerId) -> bool {
        self.name == name
            && self
                .digits
                .as_deref()
                .is_none_or(|d| from.to_string().starts_with(d))
    }
}

/// Invitations received, oldest first, at most one per lobby.
#[derive(Debug, Default)]
pub struct Waiting {
    list: VecDeque<Invitation>,
    /// Where they are kept; none in tests of the bookkeeping alone.
    path: Option<PathBuf>,
}

/// One line of the file.
#[derive(Serialize, Deserialize)]
struct Stored {
    id: u64,
    from: u64,
    nick: String,
    sent_at: u64,
    lobby: String,
    key: String,
    again: bool,
}

impl Waiting {
    /// The invitations kept in `path` (none if there is no file). A damaged line is skipped
    /// with a warning and dropped at the next write; a file that cannot be read is reported
    /// and left alone until then.
    pub fn open(path: &Path) -> Waiting {
        let mut w = Waiting {
            list: VecDeque::new(),
            path: Some(path.to_owned()),
        };
        let mut text = String::new();
        match std::fs::File::open(path) {
            Ok(f) => {
                if let Err(e) = f.take(MAX_FILE).read_to_string(&mut text) {
                    tracing::warn!(path = %path.display(), error = %e, "invitations not read");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "invitations not read"),
        }
        for (n, line) in text.lines().enumerate() {
            match serde_json::from_str::<Stored>(line)
                .ok()
                .and_then(|s| s.invitation())
            {
                Some(inv) => w.remember(inv),
                None => tracing::warn!(path = %path.display(), line = n + 1,
                    "invitations: damaged line skipped"),
            }
        }
        w
    }

    /// Every invitation waiting, oldest first: the runtime shows them again at start.
    pub fn iter(&self) -> impl Iterator<Item = &Invitation> {
        self.list.iter()
    }

    /// Keeps `inv` as the latest; an older invitation to the same lobby is replaced.
    pub fn insert(&mut self, inv: Invitation) {
        self.remember(inv);
        self.save();
    }

    fn remember(&mut self, inv: Invitation) {
        self.list.retain(|i| i.lobby.id != inv.lobby.id);
        if self.list.len() >= MAX_WAITING {
            self.list.pop_front();
        }
        self.list.push_back(inv);
    }

    /// Writes the file. A failure is logged: the invitations still wait in memory.
    fn save(&self) {
        let Some(path) = &self.path else { return };
        let mut text = String::new();
        for i in &self.list {
            let line = Stored {
                id: i.id.0,
                from: i.from.0,
                nick: i.nick.clone(),
                sent_at: i.sent_at,
                lobby: i.lobby.name.clone(),
                key: hex_of(i.key.as_bytes()),
                again: i.again,
            };
            // Plain strings and numbers: serialising cannot fail.
            text.push_str(&serde_json::to_string(&line).unwrap_or_default());
            text.push('\n');
        }
        if let Err(e) = write_secret(path, text.as_bytes()) {
            tracing::warn!(path = %path.display(), error = %e,
                "invitations not kept; they are lost at a restart");
        }
    }

    /// Puts back an invitation taken by [`Waiting::take`] (joining it failed), as the latest.
    pub fn put_back(&mut self, inv: Invitation) {
        self.insert(inv);
    }

    /// Takes the invitation `which` names: `None` for the latest, `LOBBY` for the one to that
    /// lobby, `LOBBY#HEX` for the one from the inviter whose peer id starts with HEX. Every
    /// invitation to the lobby taken goes. `verb` names the command in errors.
    pub fn take(&mut self, which: Option<&str>, verb: &str) -> Result<Invitation, String> {
        let Some(which) = which else {
            let taken = self
                .list
                .pop_back()
                .ok_or_else(|| format!("/{verb}: there is no invitation"))?;
            self.save();
            return Ok(taken);
        };
        let picked = Which::parse(which).map_err(|e| format!("/{verb}: {e}"))?;
        let name = &picked.name;
        let found: Vec<&Invitation> = self
            .list
            .iter()
            .filter(|i| picked.matches(&i.lobby.name, i.from))
            .collect();
        let Some(latest) = found.last() else {
            return Err(format!("/{verb}: there is no invitation to {which}"));
        };
        let id = latest.lobby.id;
        if found.iter().any(|i| i.lobby.id != id) {
            // Two lobbies of one name: which is meant cannot be guessed, and a wrong guess
            // could put the user's words in a stranger's lobby.
            let inviters: Vec<PeerId> = found.iter().map(|i| i.from).collect();
            let digits = fingerprint_digits(&inviters);
            let choices: Vec<String> = found
                .iter()
                .map(|i| format!("{name}#{} (from {})", fingerprint(i.from, digits), i.nick))
                .collect();
            return Err(format!(
                "/{verb}: invitations to different lobbies named {name}: {}; add the suffix",
                choices.join(", ")
            ));
        }
        let at = self
            .list
            .iter()
            .rposition(|i| i.lobby.id == id)
            .expect("found above");
        let taken = self.list.remove(at).expect("in range");
        self.list.retain(|i| i.lobby.id != id);
        self.save();
        Ok(taken)
    }

    /// How many wait.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether none waits.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl Stored {
    /// The invitation of a line, if it is whole: a normalised lobby name and a 32-byte key.
    fn invitation(self) -> Option<Invitation> {
        let named = Lobby::new(&self.lobby)
            .ok()
            .filter(|l| l.name == self.lobby)?;
        let key = LobbyKey::from_bytes(parse_hex32(&self.key)?);
        Some(Invitation {
            id: MsgId(self.id),
            from: PeerId(self.from),
            nick: self.nick,
            sent_at: self.sent_at,
            lobby: key.lobby(&named),
            key,
            again: self.again,
        })
    }
}

/// What an own direct packet waiting for its acknowledgement carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// A text (`/msg`): its state goes to the conversation's history file.
    Text,
    /// An invitation (`/invite`).
    Invitation,
}

/// Own direct packets waiting for their acknowledgement, oldest first.
#[derive(Debug, Default)]
pub struct Outstanding {
    list: VecDeque<(MsgId, Sent)>,
}

impl Outstanding {
    /// Remembers the own direct packet `id`.
    pub fn insert(&mut self, id: MsgId, what: Sent) {
        if self.list.len() >= MAX_OUTSTANDING {
            self.list.pop_front();
        }
        self.list.push_back((id, what));
    }

    /// Forgets `id`: what it was, if it was remembered (not a re-invitation the core sent).
    pub fn remove(&mut self, id: MsgId) -> Option<Sent> {
        let at = self.list.iter().position(|(i, _)| *i == id)?;
        self.list.remove(at).map(|(_, what)| what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::private::LobbyKey;

    const ANN: PeerId = PeerId(0x3fa2_c1d0_9e8b_7a65);
    const BOB: PeerId = PeerId(0x9b01_e4f2_a3c4_d5e6);

    fn inv(from: PeerId, name: &str, key: u8) -> Invitation {
        let key = LobbyKey::from_bytes([key; 32]);
        Invitation {
            id: MsgId(u64::from(key.as_bytes()[0])),
            from,
            nick: if from == ANN { "ann" } else { "bob" }.into(),
            sent_at: 0,
            lobby: key.lobby(&Lobby::new(name).unwrap()),
            key,
            again: false,
        }
    }

    #[test]
    fn the_latest_is_taken_when_none_is_named() {
        let mut w = Waiting::default();
        assert_eq!(
            w.take(None, "accept").unwrap_err(),
            "/accept: there is no invitation"
        );
        w.insert(inv(ANN, "ops", 1));
        w.insert(inv(BOB, "dev", 2));
        assert_eq!(w.take(None, "accept").unwrap().lobby.name, "dev");
        assert_eq!(w.take(None, "accept").unwrap().lobby.name, "ops");
        assert!(w.is_empty());
    }

    #[test]
    fn a_lobby_is_named_by_its_normalised_name() {
        let mut w = Waiting::default();
        w.insert(inv(ANN, "ops", 1));
        w.insert(inv(BOB, "dev", 2));
        assert_eq!(w.take(Some("OPS"), "accept").unwrap().from, ANN);
        assert_eq!(
            w.take(Some("ops"), "decline").unwrap_err(),
            "/decline: there is no invitation to ops"
        );
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn two_inviters_to_one_lobby_are_one_invitation() {
        let mut w = Waiting::default();
        let mut from_bob = inv(BOB, "ops", 1);
        from_bob.id = MsgId(99);
        w.insert(inv(ANN, "ops", 1));
        w.insert(from_bob);
        assert_eq!(w.len(), 1);
        assert_eq!(w.take(Some("ops"), "accept").unwrap().id, MsgId(99));
    }

    #[test]
    fn two_lobbies_of_one_name_need_the_inviters_suffix() {
        let mut w = Waiting::default();
        w.insert(inv(ANN, "ops", 1));
        w.insert(inv(BOB, "ops", 2));
        let e = w.take(Some("ops"), "accept").unwrap_err();
        assert!(
            e.contains("ops#3fa2 (from ann)") && e.contains("ops#9b01 (from bob)"),
            "{e}"
        );
        assert_eq!(w.len(), 2, "nothing taken on an error");
        let taken = w.take(Some("ops#9B01"), "accept").unwrap();
        assert_eq!((taken.from, taken.key.as_bytes()[0]), (BOB, 2));
        assert_eq!(w.take(Some("ops"), "accept").unwrap().from, ANN);
    }

    #[test]
    fn waiting_invitations_are_bounded() {
        let mut w = Waiting::default();
        for k in 0..=MAX_WAITING {
            w.insert(inv(ANN, &format!("l{k}"), k as u8));
        }
        assert_eq!(w.len(), MAX_WAITING);
        assert!(w.take(Some("l0"), "accept").is_err(), "the oldest went");
    }

    #[test]
    fn waiting_invitations_are_kept_across_a_restart_and_the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE_NAME);
        let mut w = Waiting::open(&path);
        w.insert(inv(ANN, "ops", 1));
        w.insert(inv(BOB, "dev", 2));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        let again = Waiting::open(&path);
        let got: Vec<&Invitation> = again.iter().collect();
        assert_eq!(got, [&inv(ANN, "ops", 1), &inv(BOB, "dev", 2)]);
        // Answered, it is gone from the file too; a damaged line is skipped.
        w.take(Some("ops"), "accept").unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.insert_str(0, "{not json\n");
        std::fs::write(&path, text).unwrap();
        let again = Waiting::open(&path);
        let got: Vec<&Invitation> = again.iter().collect();
        assert_eq!(got, [&inv(BOB, "dev", 2)]);
    }

    #[test]
    fn outstanding_ids_say_what_they_were_once() {
        let mut o = Outstanding::default();
        o.insert(MsgId(1), Sent::Text);
        o.insert(MsgId(2), Sent::Invitation);
        assert_eq!(o.remove(MsgId(2)), Some(Sent::Invitation));
        assert_eq!(o.remove(MsgId(2)), None);
        assert_eq!(o.remove(MsgId(3)), None);
        for k in 0..MAX_OUTSTANDING as u64 {
            o.insert(MsgId(100 + k), Sent::Text);
        }
        assert_eq!(o.remove(MsgId(1)), None, "the oldest went");
        assert_eq!(o.remove(MsgId(100)), Some(Sent::Text));
    }
}
