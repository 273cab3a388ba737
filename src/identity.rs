//! The data directory: who this node is (its key pair and peer id) and where its lobbies'
//! files live.
//!
//! Layout:
//!
//! ```text
//! DIR/lock                        held (flock) while a node runs on DIR
//! DIR/identity.key                64 hex digits: the Ed25519 secret seed (mode 0600)
//! DIR/peer-id                     16 hex digits: the peer id derived from the key, for people
//! DIR/lobbies/<lobby id>/name     the normalised lobby name, for people
//! DIR/lobbies/<lobby id>/history  delivered and sent messages (see history.rs)
//! DIR/lobbies/<lobby id>/seq      the sequence lease (see lease.rs)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::proto::{Lobby, PeerId};

/// Why the data directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// No home directory to put the default data directory under.
    #[error("cannot find a home directory for the default data directory; pass --data-dir")]
    NoHome,
    /// Another node runs on the same directory: both would be one peer and reuse sequence
    /// numbers.
    #[error("data directory {0} is in use by another lobbycast; give each one its own --data-dir")]
    InUse(PathBuf),
    /// The key file holds something else than 64 hex digits.
    #[error("{0} is corrupt (expected 64 hex digits); delete it to become a new peer")]
    BadKey(PathBuf),
    /// Any other I/O failure, with the path it concerned.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The default data directory: `$XDG_DATA_HOME/lobbycast`, else `~/.local/share/lobbycast`.
pub fn default_data_dir() -> Result<PathBuf, DataDirError> {
    use etcetera::BaseStrategy;
    let base = etcetera::choose_base_strategy().map_err(|_| DataDirError::NoHome)?;
    Ok(base.data_dir().join("lobbycast"))
}

/// An open, locked data directory and the identity kept in it.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    key: SigningKey,
    peer_id: PeerId,
    // Held for the flock: released when the process ends, however it ends.
    _lock: File,
}

impl DataDir {
    /// Opens (creating) `path`, locks it against a second node, and reads the peer id, making
    /// a random one on first start.
    pub fn open(path: &Path) -> Result<DataDir, DataDirError> {
        create_private_dir(path).map_err(io_err(path))?;
        let lock_path = path.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::WouldBlock {
                DataDirError::InUse(path.to_owned())
            } else {
                DataDirError::Io {
                    path: lock_path,
                    source: e,
                }
            });
        }
        let key_path = path.join("identity.key");
        let key = match fs::read_to_string(&key_path) {
            Ok(s) => parse_key(s.trim()).ok_or(DataDirError::BadKey(key_path.clone()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed)
                    .map_err(io::Error::other)
                    .map_err(io_err(&key_path))?;
                let key = SigningKey::from_bytes(&seed);
                write_secret(&key_path, format!("{}\n", hex_of(&seed)).as_bytes())
                    .map_err(io_err(&key_path))?;
                tracing::info!(dir = %path.display(), "created a new identity key");
                key
            }
            Err(e) => return Err(io_err(&key_path)(e)),
        };
        let peer_id = peer_id_of(&key.verifying_key());
        // The id file is for people (and tools); the key is the truth. A node that had a
        // random id (revision 1.2) gets the derived one, once.
        let id_path = path.join("peer-id");
        let written = fs::read_to_string(&id_path).ok();
        if written.as_deref().map(str::trim) != Some(peer_id.to_string().as_str()) {
            if let Some(old) = written {
                tracing::info!(old = old.trim(), new = %peer_id,
                    "the peer id is now derived from the identity key");
            }
            write_atomic(&id_path, format!("{peer_id}\n").as_bytes()).map_err(io_err(&id_path))?;
        }
        Ok(DataDir {
            path: path.to_owned(),
            key,
            peer_id,
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This node's peer id: derived from its public key ([`peer_id_of`]).
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This node's signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The directory of `lobby`'s files, created if need be, with its name written for people.
    pub fn lobby_dir(&self, lobby: &Lobby) -> Result<PathBuf, DataDirError> {
        let dir = self.path.join("lobbies").join(lobby.id.to_string());
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let name = dir.join("name");
        if !name.exists() {
            fs::write(&name, format!("{}\n", lobby.name)).map_err(io_err(&name))?;
        }
        Ok(dir)
    }
}

/// The peer id of a public key ([`crate::proto::signing::peer_id_of`]).
pub fn peer_id_of(key: &VerifyingKey) -> PeerId {
    crate::proto::signing::peer_id_of(key.as_bytes())
}

fn parse_key(s: &str) -> Option<SigningKey> {
    Some(SigningKey::from_bytes(&parse_hex32(s)?))
}

/// 32 bytes from exactly 64 hex digits (a key in a file of the data directory).
pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(bytes)
}

/// Bytes as lower-case hex digits.
pub(crate) fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `path` and its missing parents readable by their owner only (mode 0700): the data
/// directory holds private lobbies' names and histories and direct messages, which the
/// umask's usual modes would let other local users read. A directory that exists is left as
/// its owner set it.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Writes a secret durably and atomically, readable by its owner only.
pub(crate) fn write_secret(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o600)
}

/// A random 64-bit number from the operating system.
pub fn random_u64() -> io::Result<u64> {
    getrandom::u64().map_err(io::Error::other)
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a mix:
/// write a temporary file, fsync it, rename it over, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o666)
}

/// [`write_atomic`], creating the file with permission bits `mode` (less the umask).
fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    // A temporary file left by a crash keeps its old mode when reopened: start afresh.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_is_made_once_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let id = DataDir::open(tmp.path()).unwrap().peer_id();
        let again = DataDir::open(tmp.path()).unwrap().peer_id();
        assert_eq!(id, again);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(DataDir::open(other.path()).unwrap().peer_id(), id);
    }

    #[test]
    fn a_new_data_directory_is_its_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("share").join("lobbycast");
        let _d = DataDir::open(&dir).unwrap();
        for d in [&dir, &tmp.path().join("share")] {
            let mode = fs::metadata(d).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{}: mode {mode:o}", d.display());
        }
    }

    #[test]
    fn a_second_node_on_one_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = DataDir::open(tmp.path()).unwrap();
        let e = DataDir::open(tmp.path()).unwrap_err();
        assert!(matches!(e, DataDirError::InUse(_)), "{e}");
    }

    #[test]
    fn a_corrupt_key_is_reported_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("identity.key"), "zz\n").unwrap();
        let e = DataDir::open(tmp.path()).unwrap_err();
        assert!(matches!(e, DataDirError::BadKey(_)), "{e}");
        assert_eq!(
            fs::read_to_string(tmp.path().join("identity.key")).unwrap(),
            "zz\n"
        );
    }

    #[test]
    fn the_peer_id_is_derived_from_the_key_which_only_its_owner_reads() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let (id, public) = {
            let d = DataDir::open(tmp.path()).unwrap();
            (d.peer_id(), d.signing_key().verifying_key())
        };
        assert_eq!(id, peer_id_of(&public));
        let key_file = tmp.path().join("identity.key");
        let mode = fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret is the owner's alone");
        assert_eq!(
            fs::read_to_string(tmp.path().join("peer-id")).unwrap(),
            format!("{id}\n")
        );
        // Pinned: a fixed seed gives a fixed id, on every machine and Rust version.
        let fixed = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        assert_eq!(
            hex_of(fixed.as_bytes()),
            "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        );
        assert_eq!(format!("{}", peer_id_of(&fixed)), PINNED_ID);
    }

    /// The peer id of the key with seed [7; 32], computed once (by Python's hashlib and
    /// PyNaCl) and pinned so that the derivation never changes by accident.
    const PINNED_ID: &str = "e7aeb3a5895946dc";

    #[test]
    fn an_old_random_peer_id_gives_way_to_the_derived_one() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("peer-id"), "0123456789abcdef\n").unwrap();
        let id = DataDir::open(tmp.path()).unwrap().peer_id();
        assert_ne!(id, PeerId(0x0123_4567_89ab_cdef));
        assert_eq!(
            fs::read_to_string(tmp.path().join("peer-id")).unwrap(),
            format!("{id}\n")
        );
    }
}
