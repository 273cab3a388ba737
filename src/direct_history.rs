//! The history of direct messages (PROTOCOL.md 4.15): one append-only file per peer,
//! `DATA/direct/<peer id>/history`, holding every direct message sent to or received from it
//! and what became of the sent ones, so that a conversation opened after a restart shows them
//! again.
//!
//! # Format
//!
//! As the lobby histories ([`crate::history`]): one record per line, the CRC-32 of the JSON
//! text as 8 hex digits, a space, a JSON object. A message record:
//!
//! ```text
//! 5e0c1f2a {"id":"0b…","own":true,"nick":"ann","sent_at":1767…,"text":"hi","at":1767…}
//! ```
//!
//! and a later record of what became of an own message, by its id:
//!
//! ```text
//! 9a1b2c3d {"id":"0b…","state":"delivered","at":1767…}
//! ```
//!
//! `state` is `delivered` (acknowledged) or `failed` (given up on). A direct message has no
//! sequence number, so the records are not those of a lobby; the state is a record of its own
//! because the file is never edited in place.
//!
//! # Durability and bounds
//!
//! A record is written (`write(2)`) as it is appended, before the frontend is told; fsync runs
//! in the runtime's batches ([`DirectLog::sync_handle`]). A torn last line is cut off and a bad
//! one skipped, as in the lobby histories. A file that grew past [`MAX_BYTES`] is cut to its
//! last [`KEEP_LINES`] lines when opened (replaced atomically), so a chatty peer cannot fill
//! the disk.
//!
//! An own message still pending when the node stopped is read back as failed: the core does
//! not retry it after a restart, so no acknowledgement will come.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::history::{
    HistoryError, checked_json, frame, hex, last_newline_end, start_of_last_lines,
};
use crate::proto::{MsgId, PeerId};

/// A file larger than this is cut when opened.
pub const MAX_BYTES: u64 = 4 << 20;
/// Lines kept when a file is cut.
pub const KEEP_LINES: usize = 2000;

/// What became of a direct message, as the frontends show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectState {
    /// Received from the peer.
    Received,
    /// Own, sent, not acknowledged yet: the core retries it.
    Pending,
    /// Own, acknowledged by the peer.
    Delivered,
    /// Own, given up on (or still pending when the node stopped): not known to have arrived.
    Failed,
}

/// One direct message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectRecord {
    /// Its id.
    pub id: MsgId,
    /// Whether this node wrote it.
    pub own: bool,
    /// The writer's nick when it was written.
    pub nick: String,
    /// The writer's wall clock, Unix ms.
    pub sent_at: u64,
    /// The text.
    pub text: String,
    /// What became of it.
    pub state: DirectState,
}

#[derive(Serialize, Deserialize)]
struct Line<'a> {
    id: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    own: Option<bool>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    nick: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sent_at: Option<u64>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    state: Option<Cow<'a, str>>,
    /// When this node wrote the record, Unix ms.
    at: u64,
}

/// The open history file of one conversation.
#[derive(Debug)]
pub struct DirectLog {
    path: PathBuf,
    file: File,
    unsynced: bool,
}

impl DirectLog {
    /// The file of the conversation with `peer` under the data directory `data`.
    pub fn path_of(data: &Path, peer: PeerId) -> PathBuf {
        data.join("direct").join(peer.to_string()).join("history")
    }

    /// Opens (creating) the conversation's file at `path`, cutting a torn last line and a file
    /// grown too large; returns it with its last `keep` messages, oldest first.
    pub fn open(path: &Path, keep: usize) -> Result<(DirectLog, Vec<DirectRecord>), HistoryError> {
        let err = |source| HistoryError {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        let len = file.metadata().map_err(err)?.len();
        let mut end = last_newline_end(&mut file, len).map_err(err)?;
        if end < len {
            tracing::warn!(path = %path.display(), bytes = len - end,
                "cut off a torn last direct history record");
            file.set_len(end).map_err(err)?;
        }
        if end > MAX_BYTES {
            let start = start_of_last_lines(&mut file, end, KEEP_LINES).map_err(err)?;
            let kept = read_range(&mut file, start, end).map_err(err)?;
            crate::identity::write_atomic(path, &kept).map_err(err)?;
            file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(path)
                .map_err(err)?;
            end = kept.len() as u64;
            tracing::info!(path = %path.display(), "direct history cut to its last lines");
        }
        // States follow their messages: read a few more lines than messages wanted.
        let start = start_of_last_lines(&mut file, end, keep.saturating_mul(2)).map_err(err)?;
        let bytes = read_range(&mut file, start, end).map_err(err)?;
        let mut records = parse(&bytes);
        let drop = records.len().saturating_sub(keep);
        records.drain(..drop);
        Ok((
            DirectLog {
                path: path.to_owned(),
                file,
                unsynced: false,
            },
            records,
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a message record; `at` is now, Unix ms.
    pub fn append(&mut self, r: &DirectRecord, at: u64) -> Result<(), HistoryError> {
        let mut buf = [0; 16];
        self.write(&Line {
            id: hex(r.id.0, &mut buf).into(),
            own: Some(r.own),
            nick: Some(r.nick.as_str().into()),
            sent_at: Some(r.sent_at),
            text: Some(r.text.as_str().into()),
            state: None,
            at,
        })
    }

    /// Writes what became of the own message `id`: [`DirectState::Delivered`] or
    /// [`DirectState::Failed`].
    pub fn set_state(
        &mut self,
        id: MsgId,
        state: DirectState,
        at: u64,
    ) -> Result<(), HistoryError> {
        let name = match state {
            DirectState::Delivered => "delivered",
            DirectState::Failed => "failed",
            DirectState::Pending | DirectState::Received => return Ok(()),
        };
        let mut buf = [0; 16];
        self.write(&Line {
            id: hex(id.0, &mut buf).into(),
            own: None,
            nick: None,
            sent_at: None,
            text: None,
            state: Some(name.into()),
            at,
        })
    }

    fn write(&mut self, line: &Line<'_>) -> Result<(), HistoryError> {
        // Serialising plain strings and numbers cannot fail.
        let json = serde_json::to_vec(line).unwrap_or_default();
        let mut out = Vec::with_capacity(json.len() + 10);
        frame(&json, &mut out);
        self.unsynced = true;
        self.file.write_all(&out).map_err(|source| HistoryError {
            path: self.path.clone(),
            source,
        })
    }

    /// Whether written records await an fsync.
    pub fn unsynced(&self) -> bool {
        self.unsynced
    }

    /// A handle to fsync on another thread; the records written so far count as synced.
    pub fn sync_handle(&mut self) -> io::Result<File> {
        let f = self.file.try_clone()?;
        self.unsynced = false;
        Ok(f)
    }

    /// Fsyncs on the calling thread (at exit).
    pub fn sync_now(&mut self) -> Result<(), HistoryError> {
        self.unsynced = false;
        self.file.sync_data().map_err(|source| HistoryError {
            path: self.path.clone(),
            source,
        })
    }
}

fn read_range(file: &mut File, start: u64, end: u64) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = vec![0; (end - start) as usize];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The messages of `bytes`, with their states applied; a state of a message not among them is
/// ignored, an own message with no state is [`DirectState::Failed`] (see the module docs).
fn parse(bytes: &[u8]) -> Vec<DirectRecord> {
    let mut out: Vec<DirectRecord> = Vec::new();
    let mut skipped = 0usize;
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Some(l) = parse_line(line) else {
            skipped += 1;
            continue;
        };
        let Ok(id) = u64::from_str_radix(&l.id, 16).map(MsgId) else {
            skipped += 1;
            continue;
        };
        match (l.state.as_deref(), l.text, l.own) {
            (Some(state), _, _) => {
                let state = match state {
                    "delivered" => DirectState::Delivered,
                    _ => DirectState::Failed,
                };
                if let Some(r) = out.iter_mut().rev().find(|r| r.id == id && r.own) {
                    r.state = state;
                }
            }
            (None, Some(text), Some(own)) => out.push(DirectRecord {
                id,
                own,
                nick: l.nick.map(Cow::into_owned).unwrap_or_default(),
                sent_at: l.sent_at.unwrap_or(l.at),
                text: text.into_owned(),
                state: if own {
                    DirectState::Pending
                } else {
                    DirectState::Received
                },
            }),
            _ => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(lines = skipped, "skipped corrupt direct history records");
    }
    for r in &mut out {
        if r.state == DirectState::Pending {
            r.state = DirectState::Failed;
        }
    }
    out
}

fn parse_line(line: &[u8]) -> Option<Line<'_>> {
    serde_json::from_slice(checked_json(line)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, own: bool, text: &str) -> DirectRecord {
        DirectRecord {
            id: MsgId(id),
            own,
            nick: if own { "me" } else { "ann" }.into(),
            sent_at: 1_767_225_600_000 + id,
            text: text.into(),
            state: if own {
                DirectState::Pending
            } else {
                DirectState::Received
            },
        }
    }

    #[test]
    fn messages_and_states_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = DirectLog::path_of(dir.path(), PeerId(0x3fa2));
        {
            let (mut log, got) = DirectLog::open(&path, 10).unwrap();
            assert!(got.is_empty());
            log.append(&rec(1, true, "hello"), 1).unwrap();
            log.append(&rec(2, false, "hi \"you\"\nthere"), 2).unwrap();
            log.append(&rec(3, true, "delivered"), 3).unwrap();
            log.append(&rec(4, true, "given up"), 4).unwrap();
            log.set_state(MsgId(3), DirectState::Delivered, 5).unwrap();
            log.set_state(MsgId(4), DirectState::Failed, 6).unwrap();
            log.set_state(MsgId(99), DirectState::Delivered, 7).unwrap();
        }
        let (_, got) = DirectLog::open(&path, 10).unwrap();
        let states: Vec<_> = got.iter().map(|r| (r.text.as_str(), r.state)).collect();
        assert_eq!(
            states,
            [
                // Pending when the node stopped: no acknowledgement will come.
                ("hello", DirectState::Failed),
                ("hi \"you\"\nthere", DirectState::Received),
                ("delivered", DirectState::Delivered),
                ("given up", DirectState::Failed),
            ]
        );
        // Bounded by lines read (twice as many as messages wanted, for the states).
        let (_, last) = DirectLog::open(&path, 2).unwrap();
        assert!(!last.is_empty() && last.len() <= 2);
        assert_eq!(last.last().unwrap().text, "given up");
    }

    #[test]
    fn torn_and_corrupt_lines_are_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = DirectLog::path_of(dir.path(), PeerId(7));
        {
            let (mut log, _) = DirectLog::open(&path, 10).unwrap();
            log.append(&rec(1, false, "one"), 1).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"00000000 {\"id\":\"02\"}\n12345678 {torn")
            .unwrap();
        drop(f);
        let (mut log, got) = DirectLog::open(&path, 10).unwrap();
        assert_eq!(got.len(), 1);
        log.append(&rec(3, false, "three"), 3).unwrap();
        let (_, got) = DirectLog::open(&path, 10).unwrap();
        assert_eq!(got.len(), 2, "the torn line was cut, not glued to the next");
    }

    #[test]
    fn a_large_file_is_cut_to_its_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = DirectLog::path_of(dir.path(), PeerId(8));
        let text = "x".repeat(1000);
        {
            let (mut log, _) = DirectLog::open(&path, 0).unwrap();
            for i in 0..(MAX_BYTES / 1000 + 10) {
                log.append(&rec(i, false, &text), i).unwrap();
            }
        }
        let (_, got) = DirectLog::open(&path, 5).unwrap();
        assert_eq!(got.len(), 5);
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len < MAX_BYTES && len <= KEEP_LINES as u64 * 1200, "{len}");
    }
}
