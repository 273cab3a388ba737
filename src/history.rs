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

use crate::proto::fragment::piece_count;
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
    /// Whether the records read were the whole file (it was short enough).
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
        let (history, tail) = History::open_tail(path, lobby, keep, None)?;
        let loaded = tail.read(keep, |_, _| {})?;
        Ok((history, loaded))
    }

    /// Opens (creating) the history at `path`, cuts off a torn last record, and finds where
    /// its last `keep` records start, without holding them: [`Tail::read`] streams them. With
    /// `own` (a peer, and the piece size its messages in the lobby are cut in: private lobbies
    /// have smaller ones), it also finds where that peer's numbering stopped
    /// ([`Tail::own_end`]), which must be known before the records are restored into the core.
    pub fn open_tail(
        path: &Path,
        lobby: LobbyId,
        keep: usize,
        own: Option<(PeerId, usize)>,
    ) -> Result<(History, Tail), HistoryError> {
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
        let tail = find_tail(&mut file, path, lobby, keep, own).map_err(err)?;
        Ok((
            History {
                path: path.to_owned(),
                file,
                buf: Vec::with_capacity(64 << 10),
                json: Vec::with_capacity(1024),
                unsynced: false,
            },
            tail,
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
        frame(&self.json, &mut self.buf);
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

/// The last records of a history file, found but not read yet: [`History::open_tail`].
#[derive(Debug)]
pub struct Tail {
    file: File,
    path: PathBuf,
    lobby: LobbyId,
    /// The byte range of the records.
    start: u64,
    end: u64,
    /// One past the last sequence number of the given own peer in the tail; `Some(0)` when
    /// the tail is the whole file and holds none; `None` when only older records could tell.
    pub own_end: Option<u64>,
    torn_bytes: u64,
}

/// Chunk size for reading a history file: its tail is streamed, never held whole.
const READ_CHUNK: usize = 256 << 10;

/// Finds the tail of the last `keep` lines; cuts off a torn last line; with `own`, finds where
/// its numbering stopped (a first pass that parses only own records).
fn find_tail(
    file: &mut File,
    path: &Path,
    lobby: LobbyId,
    keep: usize,
    own: Option<(PeerId, usize)>,
) -> io::Result<Tail> {
    let len = file.metadata()?.len();
    let end = last_newline_end(file, len)?;
    let mut torn_bytes = 0;
    if end < len {
        file.set_len(end)?;
        torn_bytes = len - end;
    }
    let start = if keep == 0 {
        end
    } else {
        start_of_last_lines(file, end, keep)?
    };
    let mut tail = Tail {
        file: file.try_clone()?,
        path: path.to_owned(),
        lobby,
        start,
        end,
        own_end: None,
        torn_bytes,
    };
    if let Some((me, piece)) = own {
        // Records start with their source: only own lines are parsed in this pass.
        let mut prefix = b"{\"source\":\"".to_vec();
        let mut hexbuf = [0; 16];
        prefix.extend_from_slice(hex(me.0, &mut hexbuf).as_bytes());
        let mut own_end = None;
        for_each_line(&mut tail.file, start, end, |line| {
            if line.get(9..).is_some_and(|j| j.starts_with(&prefix))
                && let Some((m, _)) = parse_line(line, lobby)
                && m.source == me
            {
                let e = m.seq + piece_count(m.text.len(), piece) as u64;
                own_end = Some(own_end.map_or(e, |o: u64| o.max(e)));
            }
        })?;
        tail.own_end = own_end.or((start == 0).then_some(0));
    }
    Ok(tail)
}

impl Tail {
    /// Reads the records in file order, giving each good one of `lobby` to `each` with its
    /// delivery time, and returns the last `shown` of them: memory stays bounded by `shown`
    /// however long the tail is.
    pub fn read(
        mut self,
        shown: usize,
        mut each: impl FnMut(&Message, u64),
    ) -> Result<Loaded, HistoryError> {
        let mut loaded = Loaded {
            complete: self.start == 0,
            torn_bytes: self.torn_bytes,
            ..Loaded::default()
        };
        let mut msgs = std::collections::VecDeque::with_capacity(shown.min(1 << 16));
        let lobby = self.lobby;
        let r = for_each_line(
            &mut self.file,
            self.start,
            self.end,
            |line| match parse_line(line, lobby) {
                Some((m, recv_at)) => {
                    each(&m, recv_at);
                    if shown > 0 {
                        if msgs.len() == shown {
                            msgs.pop_front();
                        }
                        msgs.push_back((m, recv_at));
                    }
                }
                None => loaded.skipped += 1,
            },
        );
        r.map_err(|source| HistoryError {
            path: self.path.clone(),
            source,
        })?;
        loaded.messages = msgs.into();
        Ok(loaded)
    }
}

/// Where the last `keep` lines before `end` start (0 if the file has no more).
pub(crate) fn start_of_last_lines(file: &mut File, end: u64, keep: usize) -> io::Result<u64> {
    // The newline that ends the last line is at end - 1; the one before the last `keep`
    // lines is the (keep + 1)-th from the end.
    let mut seen = 0usize;
    let mut pos = end;
    let mut buf = vec![0u8; READ_CHUNK];
    while pos > 0 {
        let n = (buf.len() as u64).min(pos);
        let from = pos - n;
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut buf[..n as usize])?;
        for (i, &b) in buf[..n as usize].iter().enumerate().rev() {
            if b == b'\n' {
                seen += 1;
                if seen == keep + 1 {
                    return Ok(from + i as u64 + 1);
                }
            }
        }
        pos = from;
    }
    Ok(0)
}

/// Calls `f` with each non-empty line in `start..end`, reading in chunks.
fn for_each_line(
    file: &mut File,
    start: u64,
    end: u64,
    mut f: impl FnMut(&[u8]),
) -> io::Result<()> {
    file.seek(SeekFrom::Start(start))?;
    let mut left = end - start;
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    while left > 0 {
        let n = (chunk.len() as u64).min(left) as usize;
        file.read_exact(&mut chunk[..n])?;
        left -= n as u64;
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        while let Some(i) = buf[used..].iter().position(|&b| b == b'\n') {
            let line = &buf[used..used + i];
            if !line.is_empty() {
                f(line);
            }
            used += i + 1;
        }
        buf.drain(..used);
    }
    if !buf.is_empty() {
        f(&buf);
    }
    Ok(())
}

/// Where the last complete line ends: one past its newline, or 0.
pub(crate) fn last_newline_end(file: &mut File, len: u64) -> io::Result<u64> {
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

/// Appends `json` as one record line: its CRC-32 in 8 hex digits, a space, the JSON, a
/// newline. Lobby and direct-message histories share the format.
pub(crate) fn frame(json: &[u8], out: &mut Vec<u8>) {
    let mut hexbuf = [0; 8];
    out.extend_from_slice(hex(u64::from(crc32fast::hash(json)), &mut hexbuf).as_bytes());
    out.push(b' ');
    out.extend_from_slice(json);
    out.push(b'\n');
}

/// The JSON of a record line (without its newline) whose CRC holds; None for a damaged one.
pub(crate) fn checked_json(line: &[u8]) -> Option<&[u8]> {
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    if line.get(8) != Some(&b' ') {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    (crc32fast::hash(json) == crc).then_some(json)
}

fn parse_line(line: &[u8], lobby: LobbyId) -> Option<(Message, u64)> {
    let r: Record<'_> = serde_json::from_slice(checked_json(line)?).ok()?;
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
    use crate::proto::wire::MAX_PIECE;

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

    /// The tail is streamed: every one of the last `keep` records reaches the callback in
    /// order, only the last `shown` are held, and the own numbering's end is found first.
    #[test]
    fn a_streamed_tail_gives_every_record_holds_few_and_finds_the_own_end() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("history");
        let (mut h, _) = History::open(&p, LobbyId(1), 0).unwrap();
        let me = PeerId(0x77);
        let text = "y".repeat(300);
        for i in 0..3000u64 {
            let mut m = msg(i, &text);
            if i % 10 == 3 {
                // Own messages: one piece each, numbered 100 + i.
                m.source = me;
                m.seq = 100 + i;
            }
            h.append(&m, i);
        }
        h.sync_now().unwrap();
        drop(h);

        let (_, tail) = History::open_tail(&p, LobbyId(1), 2000, Some((me, MAX_PIECE))).unwrap();
        assert_eq!(
            tail.own_end,
            Some(100 + 2993 + 1),
            "the last own record ends there"
        );
        let mut seen = Vec::new();
        let l = tail
            .read(5, |m, recv_at| seen.push((m.seq, recv_at)))
            .unwrap();
        assert_eq!(seen.len(), 2000, "every record of the tail, none more");
        assert_eq!(seen[0].1, 1000, "the tail starts 2000 records from the end");
        assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "in file order");
        let held: Vec<u64> = l.messages.iter().map(|(_, t)| *t).collect();
        assert_eq!(held, [2995, 2996, 2997, 2998, 2999]);
        assert!(!l.complete);

        // No own record in a tail that is not the whole file: only older ones could tell.
        let (_, tail) =
            History::open_tail(&p, LobbyId(1), 5, Some((PeerId(0x99), MAX_PIECE))).unwrap();
        assert_eq!(tail.own_end, None);
        // The whole file without one: numbering starts at 0.
        let (_, tail) =
            History::open_tail(&p, LobbyId(1), 10_000, Some((PeerId(0x99), MAX_PIECE))).unwrap();
        assert_eq!(tail.own_end, Some(0));
        assert!(tail.read(0, |_, _| {}).unwrap().complete);
    }
}
