//! The data directory: who this node is (its peer id) and where its lobbies' files live.
//!
//! Layout:
//!
//! ```text
//! DIR/lock                        held (flock) while a node runs on DIR
//! DIR/peer-id                     16 hex digits: this node's peer id
//! DIR/lobbies/<lobby id>/name     the normalised lobby name, for people
//! DIR/lobbies/<lobby id>/history  delivered and sent messages (see history.rs)
//! DIR/lobbies/<lobby id>/seq      the sequence lease (see lease.rs)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

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
    /// The peer id file holds something else than 16 hex digits.
    #[error("{0} is corrupt (expected 16 hex digits); delete it to become a new peer")]
    BadPeerId(PathBuf),
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

/// An open, locked data directory and the peer id kept in it.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    peer_id: PeerId,
    // Held for the flock: released when the process ends, however it ends.
    _lock: File,
}

impl DataDir {
    /// Opens (creating) `path`, locks it against a second node, and reads the peer id, making
    /// a random one on first start.
    pub fn open(path: &Path) -> Result<DataDir, DataDirError> {
        fs::create_dir_all(path).map_err(io_err(path))?;
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
        let id_path = path.join("peer-id");
        let peer_id = match fs::read_to_string(&id_path) {
            Ok(s) => parse_peer_id(s.trim()).ok_or(DataDirError::BadPeerId(id_path.clone()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let id = PeerId(random_u64().map_err(io_err(&id_path))?);
                write_atomic(&id_path, format!("{id}\n").as_bytes()).map_err(io_err(&id_path))?;
                tracing::info!(peer = %id, dir = %path.display(), "created a new peer id");
                id
            }
            Err(e) => return Err(io_err(&id_path)(e)),
        };
        Ok(DataDir {
            path: path.to_owned(),
            peer_id,
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
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

fn parse_peer_id(s: &str) -> Option<PeerId> {
    (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(s, 16).ok().map(PeerId))
        .flatten()
}

/// A random 64-bit number from the operating system.
pub fn random_u64() -> io::Result<u64> {
    getrandom::u64().map_err(io::Error::other)
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a mix:
/// write a temporary file, fsync it, rename it over, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
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
    fn a_second_node_on_one_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = DataDir::open(tmp.path()).unwrap();
        let e = DataDir::open(tmp.path()).unwrap_err();
        assert!(matches!(e, DataDirError::InUse(_)), "{e}");
    }

    #[test]
    fn a_corrupt_peer_id_is_reported_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("peer-id"), "zz\n").unwrap();
        let e = DataDir::open(tmp.path()).unwrap_err();
        assert!(matches!(e, DataDirError::BadPeerId(_)), "{e}");
    }
}
