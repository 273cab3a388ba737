//! Per-lobby history: an append-only file of every message delivered or sent, so that a
//! restarted node shows recent history, can repair it to late joiners, and does not deliver
//! it again.
//!
//! # Format
//!
//! One record per line: the CRC-32 (IEEE) of the JSON text as 8 lower-case hex digits, a
//! space, a JSON object, a newline:
//!
//! ```text
//! 1c291ca3 {"source":"9f…","seq":7,"id":"0b…","sent_at":1767…,"nick":"ann","text":"hi","recv_at":1767…}
//! ```
//!
//! A last line without its newline (a write torn by a crash) is cut off when the file is
//! opened; any other line whose checksum or JSON is wrong is skipped with a warning. Neither
//! is fatal.
//!
//! # Durability
//!
//! Records are buffered and written to the file (`write(2)`) before the frontend is flushed,
//! so a message that was shown is in the file even if the process is killed the next instant.
//! `fsync` runs in batches, at most [`SYNC_INTERVAL`] after the first unsynced write, off the
//! event loop: a power cut or kernel crash loses at most the messages written in that interval
//! plus the duration of one fsync.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proto::{LobbyId, Message, MsgId, PeerId};

/// Longest time a written record waits for its fsync.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// Why a history file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("history file {path}: {source}")]
pub struct HistoryError {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    pub source: io::Error,
}

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    source: Hex,
    seq: u64,
    id: Hex,
    sent_at: u64,
    #[serde(borrow)]
    nick: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
    #[serde(default)]
    late: bool,
    /// When this node delivered (or sent) it, Unix milliseconds.
    recv_at: u64,
}

/// A u64 written as 16 hex digits, as ids are everywhere else.
#[derive(Clone, Copy)]
struct Hex(u64);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0; 16];
        s.serialize_str(hex(self.0, &mut buf))
    }
}

/// `v` as lower-case hex digits, as many as `buf` is long (16 for a u64, 8 for a u32).
/// Faster than `format!("{v:016x}")`, which shows in profiles at 100 000 messages/s.
pub(crate) fn hex(mut v: u64, buf: &mut [u8]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in buf.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
    std::str::from_utf8(buf).unwrap_or_default()
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        u64::from_str_radix(&s, 16)
            .map(Hex)
            .map_err(serde::de::Error::custom)
    }
}

/// What [`History::open`] found in the file.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The most recent messages, oldest first.
    pub messages: Vec<(Message, u64)>,
    /// Lines skipped for a bad checksum or bad JSON.
    pub skipped: usize,
    /// Bytes of a torn last record that were cut off.
    pub torn_bytes: u64,
    /// Whether `messages` holds every good record of the file (it was short enough).
    pub complete: bool,
}

/// The open history of one lobby.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    json: Vec<u8>,
    /// Written since the last fsync was started.
    unsynced: bool,
}

impl History {
    /// Opens (creating) the history at `path`, cuts off a torn last record, and returns the
    /// last `keep` messages of `lobby` in it.
    pub fn open(
        path: &Path,
        lobby: LobbyId,
        keep: usize,
    ) -> Result<(History, Loaded), HistoryError> {
        let err = |source| HistoryError {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        let loaded = load(&mut file, lobby, keep).map_err(err)?;
        Ok((
            History {
                path: path.to_owned(),
                file,
                buf: Vec::with_capacity(64 << 10),
                json: Vec::with_capacity(1024),
                unsynced: false,
            },
            loaded,
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Buffers a record of `msg`, delivered or sent at `recv_at` (Unix ms).
    pub fn append(&mut self, msg: &Message, recv_at: u64) {
        let rec = Record {
            source: Hex(msg.source.0),
            seq: msg.seq,
            id: Hex(msg.msg_id.0),
            sent_at: msg.sent_at,
            nick: msg.nick.as_str().into(),
            text: msg.text.as_str().into(),
            late: msg.late,
            recv_at,
        };
        self.json.clear();
        // Serialising plain strings and numbers into a Vec cannot fail.
        if serde_json::to_writer(&mut self.json, &rec).is_err() {
            return;
        }
        let crc = crc32fast::hash(&self.json);
        let mut hexbuf = [0; 8];
        self.buf
            .extend_from_slice(hex(u64::from(crc), &mut hexbuf).as_bytes());
        self.buf.push(b' ');
        self.buf.extend_from_slice(&self.json);
        self.buf.push(b'\n');
    }

    /// Whether records wait in the buffer.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes the buffered records to the file (not yet synced).
    pub fn write_out(&mut self) -> Result<(), HistoryError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.buf);
        self.buf.clear();
        self.unsynced = true;
        r.map_err(|source| HistoryError {
            path: self.path.clone(),
            source,
        })
    }

    /// Whether written records await an fsync.
    pub fn unsynced(&self) -> bool {
        self.unsynced
    }

    /// A handle to fsync on another thread; the records written so far are then counted as
    /// synced.
    pub fn sync_handle(&mut self) -> io::Result<File> {
        let f = self.file.try_clone()?;
        self.unsynced = false;
        Ok(f)
    }

    /// Writes and fsyncs everything, on the calling thread (at exit).
    pub fn sync_now(&mut self) -> Result<(), HistoryError> {
        self.write_out()?;
        self.unsynced = false;
        self.file.sync_data().map_err(|source| HistoryError {
            path: self.path.clone(),
            source,
        })
    }
}

/// Reads the tail of the file for the last `keep` good records; cuts off a torn last line.
fn load(file: &mut File, lobby: LobbyId, keep: usize) -> io::Result<Loaded> {
    let mut loaded = Loaded::default();
    let len = file.metadata()?.len();
    let end = last_newline_end(file, len)?;
    if end < len {
        file.set_len(end)?;
        loaded.torn_bytes = len - end;
    }
    if end == 0 {
        loaded.complete = true;
        return Ok(loaded);
    }
    if keep == 0 {
        return Ok(loaded);
    }
    // Read backwards in growing chunks until `keep` lines are in hand (or the start is).
    let mut chunk: u64 = 256 << 10;
    let (start, bytes) = loop {
        let start = end.saturating_sub(chunk);
        let mut bytes = vec![0; (end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut bytes)?;
        let lines = bytes.iter().filter(|&&b| b == b'\n').count();
        if start == 0 || lines > keep {
            break (start, bytes);
        }
        chunk *= 4;
    };
    let mut text = &bytes[..];
    if start > 0 {
        // The first line is cut at the chunk's start.
        let cut = text
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |i| i + 1);
        text = &text[cut..];
    }
    let mut msgs = std::collections::VecDeque::with_capacity(keep.min(1 << 16));
    loaded.complete = start == 0;
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match parse_line(line, lobby) {
            Some(m) => {
                if msgs.len() == keep {
                    msgs.pop_front();
                    loaded.complete = false;
                }
                msgs.push_back(m);
            }
            None => loaded.skipped += 1,
        }
    }
    loaded.messages = msgs.into();
    Ok(loaded)
}

/// Where the last complete line ends: one past its newline, or 0.
fn last_newline_end(file: &mut File, len: u64) -> io::Result<u64> {
    let mut pos = len;
    let mut buf = vec![0u8; 64 << 10];
    while pos > 0 {
        let n = (buf.len() as u64).min(pos);
        let start = pos - n;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n as usize])?;
        if let Some(i) = buf[..n as usize].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        pos = start;
    }
    Ok(0)
}

fn parse_line(line: &[u8], lobby: LobbyId) -> Option<(Message, u64)> {
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    if line.get(8) != Some(&b' ') {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    if crc32fast::hash(json) != crc {
        return None;
    }
    let r: Record<'_> = serde_json::from_slice(json).ok()?;
    Some((
        Message {
            lobby,
            source: PeerId(r.source.0),
            seq: r.seq,
            msg_id: MsgId(r.id.0),
            sent_at: r.sent_at,
            nick: r.nick.into_owned(),
            text: r.text.into_owned(),
            late: r.late,
        },
        r.recv_at,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: u64, text: &str) -> Message {
        Message {
            lobby: LobbyId(1),
            source: PeerId(0xabc),
            seq: i,
            msg_id: MsgId(i * 31 + 7),
            sent_at: 1_700_000_000_000 + i,
            nick: "ann \"the\" tester".into(),
            text: text.into(),
            late: i.is_multiple_of(2),
        }
    }

    #[test]
    fn hex_matches_format() {
        for v in [0u64, 1, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(hex(v, &mut [0; 16]), format!("{v:016x}"));
            assert_eq!(
                hex(v & 0xffff_ffff, &mut [0; 8]),
                format!("{:08x}", v & 0xffff_ffff)
            );
        }
    }

    #[test]
    fn records_round_trip_and_only_the_last_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("history");
        let (mut h, l) = History::open(&p, LobbyId(1), 10).unwrap();
        assert!(l.messages.is_empty());
        for i in 0..25 {
            h.append(&msg(i, &format!("line {i}\nwith newline and ünïcode")), 5);
        }
        h.sync_now().unwrap();
        drop(h);
        let (_, l) = History::open(&p, LobbyId(1), 10).unwrap();
        assert_eq!(l.skipped, 0);
        assert!(!l.complete);
        assert!(History::open(&p, LobbyId(1), 25).unwrap().1.complete);
        let got: Vec<_> = l.messages.iter().map(|(m, _)| m.clone()).collect();
        let want: Vec<_> = (15..25)
            .map(|i| msg(i, &format!("line {i}\nwith newline and ünïcode")))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn torn_last_record_is_cut_and_appending_goes_on() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("history");
        let (mut h, _) = History::open(&p, LobbyId(1), 100).unwrap();
        h.append(&msg(1, "one"), 0);
        h.append(&msg(2, "two"), 0);
        h.sync_now().unwrap();
        drop(h);
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() - 10]).unwrap();
        let (mut h, l) = History::open(&p, LobbyId(1), 100).unwrap();
        assert_eq!(l.messages.len(), 1);
        assert!(l.torn_bytes > 0);
        h.append(&msg(3, "three"), 0);
        h.sync_now().unwrap();
        drop(h);
        let (_, l) = History::open(&p, LobbyId(1), 100).unwrap();
        let seqs: Vec<u64> = l.messages.iter().map(|(m, _)| m.seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(l.skipped, 0);
    }

    #[test]
    fn corrupt_lines_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("history");
        let (mut h, _) = History::open(&p, LobbyId(1), 100).unwrap();
        h.append(&msg(1, "one"), 0);
        h.sync_now().unwrap();
        drop(h);
        let mut bytes = std::fs::read(&p).unwrap();
        let good = bytes.clone();
        let i = bytes.len() - 5;
        bytes[i] ^= 0x20; // flip a bit inside the JSON
        bytes.extend_from_slice(b"garbage\n\0\0\0\n");
        bytes.extend_from_slice(&good);
        std::fs::write(&p, &bytes).unwrap();
        let (_, l) = History::open(&p, LobbyId(1), 100).unwrap();
        assert_eq!(l.messages.len(), 1);
        assert_eq!(l.skipped, 3);
    }

    #[test]
    fn tail_reading_crosses_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("history");
        let (mut h, _) = History::open(&p, LobbyId(1), 0).unwrap();
        let big = "x".repeat(2000);
        for i in 0..1000 {
            h.append(&msg(i, &big), 0);
        }
        h.sync_now().unwrap();
        drop(h);
        let (_, l) = History::open(&p, LobbyId(1), 500).unwrap();
        assert_eq!(l.messages.len(), 500);
        assert_eq!(l.messages[0].0.seq, 500);
        assert_eq!(l.skipped, 0);
    }
}
