//! The keys of the private lobbies this node created (`--private`, `/join NAME --private`),
//! kept in `DATA/lobby-keys` so that a member rejoins the same private lobby after a restart.
//!
//! One line per lobby: its normalised name, a TAB, and the 64 hex digits of its key. The file
//! is a secret (whoever reads it is in those lobbies): it is written with mode 0600, atomically
//! (a temporary file renamed over it), and at most [`MAX_LOBBIES`] lobbies are kept. A damaged
//! line is skipped with a warning, and dropped at the next write. Keys of lobbies joined by
//! passphrase are never stored: the passphrase is typed again.
//!
//! How to join a lobby ([`JoinHow`]) and a passphrase that never shows in a log
//! ([`Passphrase`]) live here too: the command line, the pipe, the screen and the runtime all
//! pass them along.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::identity::{hex_of, parse_hex32, write_secret};
use crate::proto::Lobby;
use crate::proto::private::{KeyError, LobbyKey};

/// The file's name in the data directory.
pub const FILE_NAME: &str = "lobby-keys";

/// Most private lobbies remembered: a bound on the file a restart reads.
pub const MAX_LOBBIES: usize = 1024;

/// Largest file read: [`MAX_LOBBIES`] lines of the longest name and a key, with room to spare.
const MAX_FILE: u64 = 1 << 20;

/// Read-modify-write of the file from two threads of one process (the pipe's input thread and
/// the runtime) must not lose a key. Another process cannot interfere: the data directory is
/// locked by the node using it.
static WRITING: Mutex<()> = Mutex::new(());

/// Why a lobby key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LobbyKeysError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The operating system's random generator failed.
    #[error("no random key: {0}")]
    Random(String),
    /// [`MAX_LOBBIES`] private lobbies are stored already.
    #[error("{MAX_LOBBIES} private lobbies are stored in {0} already; remove some lines")]
    Full(PathBuf),
    /// Another key is stored for the name of a lobby whose key was to be stored.
    #[error(
        "another private lobby named {name} is kept in {path}; /part it and remove its line \
         there to take this one"
    )]
    Taken {
        /// The lobby's normalised name.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// The passphrase gave no key.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A passphrase as typed. Its `Debug` never prints it, so that no log of a command shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(pub String);

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// How a lobby is joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinHow {
    /// By its name, in clear on the wire (a public lobby).
    Public,
    /// Private, by the stored key of its name, else by a new random key that is stored.
    Private,
    /// Private, by the key of a passphrase (Argon2id, PROTOCOL.md 2.4).
    Passphrase(Passphrase),
    /// Private, by a key already derived (the pipe's input thread derives it, so that it
    /// knows where the texts after a `/join` go).
    Key(LobbyKey),
}

impl JoinHow {
    /// Whether the lobby is private.
    pub fn is_private(&self) -> bool {
        !matches!(self, JoinHow::Public)
    }

    /// The key of `lobby` (a public lobby of the name) joined this way, or `None` for a public
    /// one. A passphrase costs Argon2id's third of a second and 64 MiB.
    pub fn key(&self, lobby: &Lobby, keys: &LobbyKeys) -> Result<Option<LobbyKey>, LobbyKeysError> {
        Ok(match self {
            JoinHow::Public => None,
            JoinHow::Private => Some(keys.key_for(lobby)?),
            JoinHow::Passphrase(p) => Some(LobbyKey::from_passphrase(&p.0, lobby)?),
            JoinHow::Key(k) => Some(k.clone()),
        })
    }
}

/// The store of `DATA/lobby-keys`; see the module documentation.
#[derive(Clone, Debug)]
pub struct LobbyKeys {
    path: PathBuf,
}

impl LobbyKeys {
    /// The store of the data directory `data_dir`; nothing is read until a key is asked for.
    pub fn new(data_dir: &Path) -> LobbyKeys {
        LobbyKeys {
            path: data_dir.join(FILE_NAME),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored key of `lobby` (by its normalised name), if there is one.
    pub fn get(&self, lobby: &Lobby) -> Result<Option<LobbyKey>, LobbyKeysError> {
        Ok(self
            .read()?
            .into_iter()
            .find(|(n, _)| *n == lobby.name)
            .map(|(_, k)| k))
    }

    /// The stored key of `lobby`, else a new random one, stored before it is returned (a
    /// lobby whose key is lost cannot be rejoined).
    pub fn key_for(&self, lobby: &Lobby) -> Result<LobbyKey, LobbyKeysError> {
        let _writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = self.read()?;
        if let Some((_, k)) = all.iter().find(|(n, _)| *n == lobby.name) {
            return Ok(k.clone());
        }
        if all.len() >= MAX_LOBBIES {
            return Err(LobbyKeysError::Full(self.path.clone()));
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| LobbyKeysError::Random(e.to_string()))?;
        let key = LobbyKey::from_bytes(bytes);
        all.push((lobby.name.clone(), key.clone()));
        self.write(&all)?;
        tracing::info!(lobby = %lobby.name, id = %key.id(), "new private lobby key stored");
        Ok(key)
    }

    /// Stores `key` as the key of `lobby`'s name (an invitation accepted), so that a restart
    /// or a re-invitation finds it. Nothing changes if it is stored already; another key of
    /// the name is [`LobbyKeysError::Taken`]: it is never replaced, since a private lobby
    /// whose key is lost cannot be rejoined.
    pub fn store(&self, lobby: &Lobby, key: &LobbyKey) -> Result<(), LobbyKeysError> {
        let _writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = self.read()?;
        match all.iter().find(|(n, _)| *n == lobby.name) {
            Some((_, k)) if k == key => return Ok(()),
            Some(_) => {
                return Err(LobbyKeysError::Taken {
                    name: lobby.name.clone(),
                    path: self.path.clone(),
                });
            }
            None => {}
        }
        if all.len() >= MAX_LOBBIES {
            return Err(LobbyKeysError::Full(self.path.clone()));
        }
        all.push((lobby.name.clone(), key.clone()));
        self.write(&all)?;
        tracing::info!(lobby = %lobby.name, id = %key.id(), "invited private lobby key stored");
        Ok(())
    }

    /// Replaces the file with `all`, one line per lobby.
    fn write(&self, all: &[(String, LobbyKey)]) -> Result<(), LobbyKeysError> {
        let mut text = String::new();
        for (name, k) in all {
            text.push_str(name);
            text.push('\t');
            text.push_str(&hex_of(k.as_bytes()));
            text.push('\n');
        }
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|source| self.io(source))?;
        }
        write_secret(&self.path, text.as_bytes()).map_err(|source| self.io(source))
    }

    /// Every valid line of the file (none if there is no file), at most [`MAX_LOBBIES`].
    fn read(&self) -> Result<Vec<(String, LobbyKey)>, LobbyKeysError> {
        use std::io::Read;
        let mut text = String::new();
        match fs::File::open(&self.path) {
            Ok(f) => {
                f.take(MAX_FILE)
                    .read_to_string(&mut text)
                    .map_err(|source| self.io(source))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(self.io(source)),
        }
        let mut all: Vec<(String, LobbyKey)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            match parse_line(line) {
                Some((name, key)) if !all.iter().any(|(n, _)| *n == name) => {
                    if all.len() < MAX_LOBBIES {
                        all.push((name, key));
                    }
                }
                // A later line of a name already read: the first one is the one in use.
                Some(_) => {}
                None => tracing::warn!(path = %self.path.display(), line = i + 1,
                    "lobby keys: damaged line skipped"),
            }
        }
        Ok(all)
    }

    fn io(&self, source: io::Error) -> LobbyKeysError {
        LobbyKeysError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// A line `NAME\tHEX`, if well formed: a name that is already normalised, and 64 hex digits.
fn parse_line(line: &str) -> Option<(String, LobbyKey)> {
    let (name, hex) = line.split_once('\t')?;
    let lobby = Lobby::new(name).ok()?;
    if lobby.name != name {
        return None;
    }
    Some((lobby.name, LobbyKey::from_bytes(parse_hex32(hex)?)))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn lobby(name: &str) -> Lobby {
        Lobby::new(name).unwrap()
    }

    #[test]
    fn a_new_key_is_stored_private_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = LobbyKeys::new(tmp.path());
        assert_eq!(keys.get(&lobby("team")).unwrap(), None);
        let k = keys.key_for(&lobby("Team")).unwrap();
        let mode = fs::metadata(keys.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        // Another store of the same directory (a restart) finds it by the normalised name.
        let again = LobbyKeys::new(tmp.path());
        assert_eq!(again.key_for(&lobby("team")).unwrap(), k);
        assert_eq!(again.get(&lobby("TEAM")).unwrap(), Some(k.clone()));
        let other = again.key_for(&lobby("ops")).unwrap();
        assert_ne!(other, k);
        let text = fs::read_to_string(keys.path()).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with(&format!("team\t{}\n", hex_of(k.as_bytes()))));
    }

    #[test]
    fn an_invited_key_is_stored_once_and_never_replaces_another() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = LobbyKeys::new(tmp.path());
        let invited = LobbyKey::from_bytes([7; 32]);
        keys.store(&lobby("Ops"), &invited).unwrap();
        keys.store(&lobby("ops"), &invited).unwrap();
        assert_eq!(keys.get(&lobby("ops")).unwrap(), Some(invited.clone()));
        let mode = fs::metadata(keys.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        // `--private` of that name now rejoins the invited lobby.
        assert_eq!(keys.key_for(&lobby("ops")).unwrap(), invited);
        let other = LobbyKey::from_bytes([8; 32]);
        let e = keys.store(&lobby("ops"), &other).unwrap_err();
        assert!(
            matches!(e, LobbyKeysError::Taken { ref name, .. } if name == "ops"),
            "{e}"
        );
        assert_eq!(keys.get(&lobby("ops")).unwrap(), Some(invited));
        assert_eq!(fs::read_to_string(keys.path()).unwrap().lines().count(), 1);
    }

    #[test]
    fn damaged_lines_are_skipped_and_dropped_at_the_next_write() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = LobbyKeys::new(tmp.path());
        let good = format!("ops\t{}", "ab".repeat(32));
        let text = format!(
            "garbage\n{good}\nTeam\t{}\nteam\tnothex\nx\t{}\n\n",
            "00".repeat(32),
            "ab".repeat(31)
        );
        fs::write(keys.path(), text).unwrap();
        assert_eq!(
            keys.get(&lobby("ops")).unwrap(),
            Some(LobbyKey::from_bytes([0xab; 32]))
        );
        // "Team" is not normalised: not a line this module writes.
        assert_eq!(keys.get(&lobby("team")).unwrap(), None);
        keys.key_for(&lobby("team")).unwrap();
        let text = fs::read_to_string(keys.path()).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with(&format!("{good}\n")));
    }

    #[test]
    fn the_store_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = LobbyKeys::new(tmp.path());
        let text: String = (0..MAX_LOBBIES + 5)
            .map(|i| format!("l{i}\t{}\n", "01".repeat(32)))
            .collect();
        fs::write(keys.path(), text).unwrap();
        assert!(keys.get(&lobby("l0")).unwrap().is_some());
        assert_eq!(keys.get(&lobby(&format!("l{MAX_LOBBIES}"))).unwrap(), None);
        assert!(matches!(
            keys.key_for(&lobby("new")),
            Err(LobbyKeysError::Full(_))
        ));
    }

    #[test]
    fn how_to_join_gives_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = LobbyKeys::new(tmp.path());
        let team = lobby("team");
        assert_eq!(JoinHow::Public.key(&team, &keys).unwrap(), None);
        let stored = JoinHow::Private.key(&team, &keys).unwrap().unwrap();
        assert_eq!(keys.get(&team).unwrap(), Some(stored));
        let p = JoinHow::Passphrase(Passphrase("correct horse".into()));
        let k = p.key(&team, &keys).unwrap().unwrap();
        assert_eq!(
            k,
            LobbyKey::from_passphrase("correct horse", &team).unwrap()
        );
        assert!(matches!(
            JoinHow::Passphrase(Passphrase(String::new())).key(&team, &keys),
            Err(LobbyKeysError::Key(KeyError::EmptyPassphrase))
        ));
        assert!(!format!("{p:?}").contains("horse"));
        // Passphrase keys are never stored.
        assert_eq!(fs::read_to_string(keys.path()).unwrap().lines().count(), 1);
    }
}
