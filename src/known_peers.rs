//! Nicks bound to keys, trust on first use (issue 12, step 4): for every nick seen, the peer
//! ids the user has accepted for it, kept in `DATA/known-peers`.
//!
//! A peer id is derived from its peer's public key ([`crate::identity`]), so it stands for the
//! key. The first peer id seen with a nick is accepted for it. A known nick that arrives from
//! a peer id not accepted for it is a *new key*: the frontends flag it until the user accepts
//! it with `/trust NICK` ([`KnownPeers::trust`]), which accepts every key flagged for the nick.
//! New keys waiting for `/trust` are kept in memory only: after a restart they are flagged
//! again, which is what an unanswered warning should do.
//!
//! # File format
//!
//! UTF-8 text, one accepted key per line, sorted; lines starting with `#` are comments. A
//! line is the nick, a tab, the peer id (16 hex digits), a tab, and when the key was last seen
//! with the nick (Unix seconds):
//!
//! ```text
//! # lobbycast known peers: nick<TAB>peer id<TAB>last seen (Unix seconds)
//! ann<TAB>3fa2c1d09e8b7a65<TAB>1767225600
//! ann<TAB>9b01e4f2a3c4d5e6<TAB>1767229200
//! ```
//!
//! In the nick, `\` is written `\\`, control characters (tab and newline among them) `\xHH`,
//! and a leading `#` `\x23`, so that no nick from the network can break a line or pass for a
//! comment. The file is replaced atomically ([`write_atomic`]), never edited in place.
//!
//! # Bounds
//!
//! At most [`MAX_NICKS`] nicks: a new nick beyond that evicts the least recently seen ones (a
//! hundredth of the bound at a time, so that eviction stays cheap). A nick keeps at most
//! [`MAX_KEYS_PER_NICK`] accepted keys (the least recently seen goes) and
//! [`MAX_NEW_KEYS_PER_NICK`] new ones. A nick that was evicted is new again: its next key is
//! accepted without a warning.
//!
//! # A damaged file
//!
//! Chatting never depends on this file. Lines that cannot be read are skipped with a
//! warning, and the file as it was is first copied to `known-peers.bad`, since the next save
//! writes only the lines that were understood. A file that cannot be read at all (or is
//! larger than any this module writes) is moved to `known-peers.bad`. If the copy or the move
//! fails, nothing is saved during this run, so the file is never replaced by less than it held.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::identity::write_atomic;
use crate::proto::PeerId;
use crate::proto::wire::MAX_NICK;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "known-peers";
/// Most nicks remembered.
pub const MAX_NICKS: usize = 10_000;
/// Most accepted keys per nick.
pub const MAX_KEYS_PER_NICK: usize = 8;
/// Most new (not yet accepted) keys remembered per nick; the least recently seen goes first.
pub const MAX_NEW_KEYS_PER_NICK: usize = 4;
/// Nicks evicted at once when the bound is reached.
const EVICT_BATCH: usize = MAX_NICKS / 100;
/// Larger than any file this module writes (a line is at most ~170 bytes): a larger file is
/// not ours, and reading it whole would only waste memory.
const MAX_FILE_BYTES: u64 = 16 << 20;
/// The first line of the file, for people who open it.
const HEADER: &str = "# lobbycast known peers: nick<TAB>peer id<TAB>last seen (Unix seconds)";

/// One key seen with a nick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    peer: PeerId,
    /// Unix seconds.
    last_seen: u64,
}

/// The keys of one nick.
#[derive(Clone, Debug, Default)]
struct Keys {
    /// Accepted: saved.
    accepted: Vec<Key>,
    /// Seen but not accepted (flagged): in memory only.
    new: Vec<Key>,
}

impl Keys {
    fn last_seen(&self) -> u64 {
        self.accepted
            .iter()
            .chain(&self.new)
            .map(|k| k.last_seen)
            .max()
            .unwrap_or(0)
    }
}

/// Whether the store holds something the file does not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dirty {
    /// The file holds everything.
    #[default]
    Clean,
    /// Only last-seen times moved on: worth saving now and then, and at exit.
    Seen,
    /// A nick or an accepted key was added or dropped: worth saving soon.
    Changed,
}

/// The accepted keys of every nick seen, and the new keys waiting for `/trust`.
#[derive(Debug, Default)]
pub struct KnownPeers {
    nicks: HashMap<String, Keys>,
    /// Where the store is saved; `None` for a store of no file, or when the file could not
    /// be read nor set aside (saving would replace it with less).
    path: Option<PathBuf>,
    dirty: Dirty,
}

/// What [`KnownPeers::parse`] made of a file.
#[derive(Debug)]
pub struct Parsed {
    /// The keys read.
    pub store: KnownPeers,
    /// Lines that could not be read.
    pub bad_lines: usize,
    /// Keys read but dropped to keep within the bounds (a file edited by hand).
    pub dropped: usize,
}

/// A snapshot of the store to write, taken by [`KnownPeers::take_save`], so that the writing
/// (an fsync) can happen off the event loop.
#[derive(Debug)]
pub struct Save {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Save {
    /// Replaces the file with the snapshot, atomically and durably.
    pub fn write(&self) -> io::Result<()> {
        write_atomic(&self.path, &self.bytes)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl KnownPeers {
    /// An empty store of no file: nothing is saved.
    pub fn new() -> KnownPeers {
        KnownPeers::default()
    }

    /// The store of the file `path`, which need not exist. Never fails: a damaged file is
    /// reported through `tracing` and set aside (see the module documentation).
    pub fn open(path: &Path) -> KnownPeers {
        let bad = path.with_extension("bad");
        let mut store = match read_bounded(path) {
            Ok(None) => KnownPeers::new(),
            Ok(Some(bytes)) => {
                let parsed = KnownPeers::parse(&bytes);
                if parsed.dropped > 0 {
                    tracing::warn!(path = %path.display(), dropped = parsed.dropped,
                        "known peers beyond the bounds dropped (least recently seen first)");
                }
                if parsed.bad_lines > 0 {
                    if let Err(e) = write_atomic(&bad, &bytes) {
                        tracing::warn!(path = %path.display(), lines = parsed.bad_lines,
                            copy = %bad.display(), error = %e,
                            "known peers: unreadable lines skipped, and the file could not be \
                             copied aside; it is left as it is and not saved during this run");
                        return KnownPeers {
                            path: None,
                            ..parsed.store
                        };
                    }
                    tracing::warn!(path = %path.display(), lines = parsed.bad_lines,
                        copy = %bad.display(),
                        "known peers: unreadable lines skipped; the file as it was is kept in \
                         the copy");
                }
                parsed.store
            }
            Err(e) => {
                if let Err(e2) = fs::rename(path, &bad) {
                    tracing::warn!(path = %path.display(), error = %e, move_error = %e2,
                        "known peers cannot be read, nor moved aside: starting with none, and \
                         not saving them during this run");
                    return KnownPeers::new();
                }
                tracing::warn!(path = %path.display(), error = %e, moved_to = %bad.display(),
                    "known peers cannot be read: moved aside, starting with none");
                KnownPeers::new()
            }
        };
        store.path = Some(path.to_owned());
        store
    }

    /// Reads the file format (see the module documentation); lines that cannot be read are
    /// counted and skipped.
    pub fn parse(bytes: &[u8]) -> Parsed {
        let mut store = KnownPeers::new();
        let mut bad_lines = 0;
        for line in bytes.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            match parse_line(line) {
                Some((nick, key)) => {
                    let keys = store.nicks.entry(nick).or_default();
                    match keys.accepted.iter_mut().find(|k| k.peer == key.peer) {
                        Some(k) => k.last_seen = k.last_seen.max(key.last_seen),
                        None => keys.accepted.push(key),
                    }
                }
                None => bad_lines += 1,
            }
        }
        let mut dropped = 0;
        for keys in store.nicks.values_mut() {
            if keys.accepted.len() > MAX_KEYS_PER_NICK {
                keys.accepted
                    .sort_by_key(|k| std::cmp::Reverse(k.last_seen));
                dropped += keys.accepted.len() - MAX_KEYS_PER_NICK;
                keys.accepted.truncate(MAX_KEYS_PER_NICK);
            }
        }
        if store.nicks.len() > MAX_NICKS {
            let over = store.nicks.len() - MAX_NICKS;
            dropped += store
                .evict(over)
                .iter()
                .map(|k| k.accepted.len())
                .sum::<usize>();
        }
        store.dirty = Dirty::Clean;
        Parsed {
            store,
            bad_lines,
            dropped,
        }
    }

    /// Notes that `peer` used `nick` at `now` (Unix seconds): a message, a join or a nick
    /// change. The first key of a nick is accepted. Returns whether the key is new for a
    /// known nick (flagged until [`KnownPeers::trust`]).
    pub fn seen(&mut self, nick: &str, peer: PeerId, now: u64) -> bool {
        // What the file could not hold back is not remembered (the wire allows an empty nick).
        if nick.is_empty() || nick.len() > MAX_NICK {
            return false;
        }
        let Some(keys) = self.nicks.get_mut(nick) else {
            self.insert_nick(
                nick,
                Key {
                    peer,
                    last_seen: now,
                },
            );
            return false;
        };
        if let Some(k) = keys.accepted.iter_mut().find(|k| k.peer == peer) {
            if now > k.last_seen {
                k.last_seen = now;
                self.dirty = self.dirty.max(Dirty::Seen);
            }
            return false;
        }
        match keys.new.iter_mut().find(|k| k.peer == peer) {
            Some(k) => k.last_seen = k.last_seen.max(now),
            None => {
                if keys.new.len() >= MAX_NEW_KEYS_PER_NICK {
                    drop_least_recent(&mut keys.new);
                }
                keys.new.push(Key {
                    peer,
                    last_seen: now,
                });
            }
        }
        true
    }

    /// Accepts `peer` for `nick` without asking: this node's own key with its own nick, so
    /// that another key using it is flagged.
    pub fn accept(&mut self, nick: &str, peer: PeerId, now: u64) {
        if self.seen(nick, peer, now) {
            self.accept_new(nick, |k| k.peer == peer);
        }
    }

    /// Whether `peer` is a new key for `nick`: the nick is known and `peer` is not accepted
    /// for it.
    pub fn is_new_key(&self, nick: &str, peer: PeerId) -> bool {
        self.nicks
            .get(nick)
            .is_some_and(|k| !k.accepted.iter().any(|k| k.peer == peer))
    }

    /// The keys accepted for `nick`, most recently seen first.
    pub fn accepted(&self, nick: &str) -> Vec<PeerId> {
        let mut keys = self
            .nicks
            .get(nick)
            .map(|k| k.accepted.clone())
            .unwrap_or_default();
        keys.sort_by_key(|k| std::cmp::Reverse(k.last_seen));
        keys.into_iter().map(|k| k.peer).collect()
    }

    /// `/trust NICK`: accepts every new key of `nick`. `NICK#HEX` (a nick as the screen shows
    /// it to tell two keys apart) accepts only the new keys of NICK whose peer id starts with
    /// HEX, unless `NICK#HEX` is itself a nick with new keys. Returns the nick and the keys
    /// accepted; none when there was no new key.
    pub fn trust(&mut self, what: &str) -> (String, Vec<PeerId>) {
        let has_new = |s: &KnownPeers, n: &str| s.nicks.get(n).is_some_and(|k| !k.new.is_empty());
        if !has_new(self, what)
            && let Some((nick, digits)) = what.rsplit_once('#')
            && (4..=16).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_hexdigit())
            && has_new(self, nick)
        {
            let digits = digits.to_ascii_lowercase();
            let peers = self.accept_new(nick, |k| k.peer.to_string().starts_with(&digits));
            return (nick.to_owned(), peers);
        }
        let peers = self.accept_new(what, |_| true);
        (what.to_owned(), peers)
    }

    /// Moves the new keys of `nick` that `pick` chooses to the accepted ones; returns them.
    fn accept_new(&mut self, nick: &str, pick: impl Fn(&Key) -> bool) -> Vec<PeerId> {
        let Some(keys) = self.nicks.get_mut(nick) else {
            return Vec::new();
        };
        let (take, keep): (Vec<Key>, Vec<Key>) = keys.new.iter().partition(|k| pick(k));
        keys.new = keep;
        for k in &take {
            if keys.accepted.len() >= MAX_KEYS_PER_NICK {
                drop_least_recent(&mut keys.accepted);
            }
            keys.accepted.push(*k);
        }
        if !take.is_empty() {
            self.dirty = Dirty::Changed;
        }
        take.into_iter().map(|k| k.peer).collect()
    }

    /// Nicks remembered.
    pub fn len(&self) -> usize {
        self.nicks.len()
    }

    /// Whether no nick is remembered.
    pub fn is_empty(&self) -> bool {
        self.nicks.is_empty()
    }

    /// What the file lacks: tells the caller how soon to save.
    pub fn dirty(&self) -> Dirty {
        if self.path.is_none() {
            Dirty::Clean
        } else {
            self.dirty
        }
    }

    /// A snapshot to write if the store has a file and something to save; the store counts as
    /// saved from now on (call [`KnownPeers::save_failed`] if the write fails).
    pub fn take_save(&mut self) -> Option<Save> {
        let path = self.path.clone()?;
        if self.dirty == Dirty::Clean {
            return None;
        }
        self.dirty = Dirty::Clean;
        Some(Save {
            path,
            bytes: self.to_text().into_bytes(),
        })
    }

    /// A write of [`KnownPeers::take_save`] failed: what it held is to be saved again.
    pub fn save_failed(&mut self) {
        self.dirty = Dirty::Changed;
    }

    /// The file's text: the header, then the accepted keys sorted by nick and peer id.
    pub fn to_text(&self) -> String {
        let mut lines: Vec<(&str, Key)> = self
            .nicks
            .iter()
            .flat_map(|(n, k)| k.accepted.iter().map(move |k| (n.as_str(), *k)))
            .collect();
        lines.sort_by_key(|(n, k)| (*n, k.peer));
        let mut out = String::with_capacity(HEADER.len() + 1 + lines.len() * 48);
        out.push_str(HEADER);
        out.push('\n');
        for (nick, key) in lines {
            escape(nick, &mut out);
            let _ = writeln!(out, "\t{}\t{}", key.peer, key.last_seen);
        }
        out
    }

    /// Adds a nick with its first key, evicting the least recently seen nicks at the bound.
    fn insert_nick(&mut self, nick: &str, key: Key) {
        if self.nicks.len() >= MAX_NICKS {
            let evicted = self.evict(EVICT_BATCH);
            tracing::debug!(
                evicted = evicted.len(),
                "known peers full: least recently seen nicks forgotten"
            );
        }
        self.nicks.insert(
            nick.to_owned(),
            Keys {
                accepted: vec![key],
                new: Vec::new(),
            },
        );
        self.dirty = Dirty::Changed;
    }

    /// Removes the `n` least recently seen nicks; returns their keys.
    fn evict(&mut self, n: usize) -> Vec<Keys> {
        if n == 0 || self.nicks.is_empty() {
            return Vec::new();
        }
        let n = n.min(self.nicks.len());
        // The n-th oldest time, found without sorting or cloning every nick: older ones go,
        // and of those seen at that very second, as many as are still needed.
        let mut times: Vec<u64> = self.nicks.values().map(Keys::last_seen).collect();
        let (_, &mut cut, _) = times.select_nth_unstable(n - 1);
        let older = times.iter().filter(|&&t| t < cut).count();
        let mut ties = n - older;
        let mut gone = Vec::with_capacity(n);
        self.nicks.retain(|_, k| {
            let t = k.last_seen();
            let evict = t < cut || (t == cut && ties > 0);
            if t == cut && evict {
                ties -= 1;
            }
            if evict {
                gone.push(std::mem::take(k));
            }
            !evict
        });
        self.dirty = Dirty::Changed;
        gone
    }
}

/// Removes the least recently seen key of a non-empty list.
fn drop_least_recent(keys: &mut Vec<Key>) {
    if let Some(i) = (0..keys.len()).min_by_key(|&i| keys[i].last_seen) {
        keys.remove(i);
    }
}

/// The file at `path`: `None` if there is none, an error if it cannot be read or is larger
/// than any this module writes.
fn read_bounded(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len > MAX_FILE_BYTES {
        return Err(io::Error::other(format!(
            "{len} bytes, more than the {MAX_FILE_BYTES} this program ever writes"
        )));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::other("the file grew while it was read"));
    }
    Ok(Some(bytes))
}

/// One line: nick, peer id and last seen, separated by tabs.
fn parse_line(line: &[u8]) -> Option<(String, Key)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut fields = line.split('\t');
    let (nick, peer, seen) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() {
        return None;
    }
    let nick = unescape(nick)?;
    if nick.is_empty() || nick.len() > MAX_NICK {
        return None;
    }
    if peer.len() != 16 || !peer.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let peer = PeerId(u64::from_str_radix(peer, 16).ok()?);
    if seen.is_empty() || !seen.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let last_seen = seen.parse().ok()?;
    Some((nick, Key { peer, last_seen }))
}

/// Writes `nick` so that it holds no tab, no newline and does not start a comment.
fn escape(nick: &str, out: &mut String) {
    for (i, c) in nick.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '#' if i == 0 => out.push_str("\\x23"),
            // Every control character is below U+00A0: two hex digits are enough.
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// Undoes [`escape`]; `None` for a stray backslash.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                if hex.len() != 2 {
                    return None;
                }
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANN: PeerId = PeerId(0x3fa2_c1d0_9e8b_7a65);
    const ANN2: PeerId = PeerId(0x9b01_e4f2_a3c4_d5e6);
    const ANN3: PeerId = PeerId(0x9b01_0000_0000_0003);

    #[test]
    fn the_first_key_of_a_nick_is_accepted_and_another_is_new_until_trusted() {
        let mut k = KnownPeers::new();
        assert!(!k.seen("ann", ANN, 100), "first seen: accepted");
        assert!(!k.seen("ann", ANN, 101));
        assert!(k.seen("ann", ANN2, 102), "another key for a known nick");
        assert!(k.seen("ann", ANN2, 103), "flagged until trusted");
        assert!(k.is_new_key("ann", ANN2));
        assert!(!k.is_new_key("ann", ANN));
        assert!(!k.is_new_key("bob", ANN2), "an unknown nick has no new key");
        // The same key with another nick is a first sighting of that nick.
        assert!(!k.seen("annie", ANN2, 104));
        assert_eq!(k.trust("ann"), ("ann".to_owned(), vec![ANN2]));
        assert!(!k.seen("ann", ANN2, 105), "trusted");
        assert_eq!(k.accepted("ann"), [ANN2, ANN], "most recently seen first");
        assert_eq!(
            k.trust("ann"),
            ("ann".to_owned(), vec![]),
            "no new key left"
        );
        assert_eq!(k.trust("nobody"), ("nobody".to_owned(), vec![]));
    }

    #[test]
    fn trust_takes_the_nick_as_shown_with_its_fingerprint() {
        let mut k = KnownPeers::new();
        k.seen("ann", ANN, 1);
        assert!(k.seen("ann", ANN2, 2));
        assert!(k.seen("ann", ANN3, 3));
        // Both new keys start with 9b01: more digits pick one.
        assert_eq!(k.trust("ann#9b01e"), ("ann".to_owned(), vec![ANN2]));
        assert!(k.is_new_key("ann", ANN3));
        assert_eq!(k.trust("ann#9B01"), ("ann".to_owned(), vec![ANN3]));
        // A nick that really has a `#` is taken as it is.
        k.seen("x#beef", ANN, 4);
        assert!(k.seen("x#beef", ANN2, 5));
        assert_eq!(k.trust("x#beef"), ("x#beef".to_owned(), vec![ANN2]));
    }

    #[test]
    fn own_key_is_accepted_even_for_a_nick_seen_before() {
        let mut k = KnownPeers::new();
        k.seen("ann", ANN2, 1);
        k.accept("ann", ANN, 2);
        assert!(!k.is_new_key("ann", ANN));
        assert!(!k.is_new_key("ann", ANN2));
        assert!(k.seen("ann", ANN3, 3));
    }

    #[test]
    fn keys_per_nick_are_bounded() {
        let mut k = KnownPeers::new();
        k.seen("ann", PeerId(0), 0);
        for i in 1..=20u64 {
            assert!(k.seen("ann", PeerId(i), i));
        }
        assert_eq!(k.nicks["ann"].new.len(), MAX_NEW_KEYS_PER_NICK);
        let (_, trusted) = k.trust("ann");
        assert_eq!(trusted, [PeerId(17), PeerId(18), PeerId(19), PeerId(20)]);
        for i in 21..=30u64 {
            k.seen("ann", PeerId(i), i);
            k.trust("ann");
        }
        let accepted = k.accepted("ann");
        assert_eq!(accepted.len(), MAX_KEYS_PER_NICK);
        assert_eq!(accepted[0], PeerId(30));
        assert!(
            !accepted.contains(&PeerId(0)),
            "the least recently seen went"
        );
    }

    #[test]
    fn the_least_recently_seen_nicks_are_evicted_at_the_bound() {
        let mut k = KnownPeers::new();
        for i in 0..MAX_NICKS as u64 {
            k.seen(&format!("n{i}"), PeerId(i), 1_000 + i);
        }
        // The oldest nick was seen again: it is not among the least recent any more.
        k.seen("n0", PeerId(0), 1_000_000);
        assert_eq!(k.len(), MAX_NICKS);
        k.seen("newcomer", PeerId(u64::MAX), 2_000_000);
        assert_eq!(k.len(), MAX_NICKS - EVICT_BATCH + 1);
        assert!(!k.accepted("n0").is_empty(), "seen recently: kept");
        assert!(k.accepted("n1").is_empty(), "least recently seen: gone");
        assert!(k.accepted(&format!("n{EVICT_BATCH}")).is_empty());
        assert!(!k.accepted(&format!("n{}", EVICT_BATCH + 1)).is_empty());
        assert!(!k.accepted("newcomer").is_empty());
        // A forgotten nick is new again: its next key is accepted quietly.
        assert!(!k.seen("n1", PeerId(77), 2_000_001));
    }

    #[test]
    fn eviction_takes_exactly_the_batch_when_times_tie() {
        let mut k = KnownPeers::new();
        for i in 0..MAX_NICKS as u64 {
            k.seen(&format!("n{i}"), PeerId(i), 5);
        }
        k.seen("one more", PeerId(1), 6);
        assert_eq!(k.len(), MAX_NICKS - EVICT_BATCH + 1);
    }

    #[test]
    fn the_file_round_trips_hostile_nicks_and_leaves_new_keys_out() {
        let mut k = KnownPeers::new();
        let nicks = [
            "ann",
            "tab\there",
            "new\nline",
            "#hash",
            "back\\slash\\x41",
            "cr\r\u{7f}\u{85}",
            "é 😀 \u{202e}",
        ];
        for (i, n) in nicks.iter().enumerate() {
            k.seen(n, PeerId(i as u64 + 1), 1_767_225_600 + i as u64);
        }
        k.seen("ann", ANN2, 1_767_229_200);
        k.trust("ann");
        assert!(k.seen("ann", ANN3, 1_767_229_300), "new, not saved");
        let text = k.to_text();
        assert_eq!(text.lines().count(), 1 + nicks.len() + 1, "{text}");
        for line in text.lines().skip(1) {
            assert_eq!(line.split('\t').count(), 3, "{line:?}");
            assert!(!line.starts_with('#'), "{line:?}");
            assert!(!line.contains('\r'), "{line:?}");
        }
        let parsed = KnownPeers::parse(text.as_bytes());
        assert_eq!((parsed.bad_lines, parsed.dropped), (0, 0));
        let mut back = parsed.store;
        assert_eq!(back.len(), nicks.len());
        for (i, n) in nicks.iter().enumerate() {
            assert!(back.accepted(n).contains(&PeerId(i as u64 + 1)), "{n:?}");
        }
        assert_eq!(back.accepted("ann"), [ANN2, PeerId(1)]);
        assert_eq!(back.to_text(), text, "written again the same");
        assert!(
            back.seen("ann", ANN3, 1_767_229_400),
            "still new after a restart"
        );
        assert!(!text.contains("\n#hash") && text.contains("\\x23hash"));
        assert!(text.contains("tab\\x09here\t"));
    }

    #[test]
    fn bad_lines_are_counted_and_skipped() {
        let text = b"# comment\n\
            ann\t3fa2c1d09e8b7a65\t100\n\
            ann\t3fa2c1d09e8b7a6\t100\n\
            bob\t9b01e4f2a3c4d5e6\n\
            bob\t9b01e4f2a3c4d5e6\t-1\n\
            bob\t9b01e4f2a3c4d5e6\t1\t2\n\
            \t9b01e4f2a3c4d5e6\t1\n\
            b\\q\t9b01e4f2a3c4d5e6\t1\n\
            b\\x4\t9b01e4f2a3c4d5e6\t1\n\
            \xff\xfe\t9b01e4f2a3c4d5e6\t1\n\
            xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\t9b01e4f2a3c4d5e6\t1\n\
            cyd\t9B01E4F2A3C4D5E6\t7\r\n\
            \n";
        let p = KnownPeers::parse(text);
        assert_eq!(p.bad_lines, 9);
        assert_eq!(p.store.len(), 2);
        assert_eq!(p.store.accepted("ann"), [ANN]);
        assert_eq!(p.store.accepted("cyd"), [ANN2]);
        assert_eq!(p.store.dirty(), Dirty::Clean);
    }

    #[test]
    fn saving_happens_only_when_something_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE_NAME);
        let mut k = KnownPeers::open(&path);
        assert!(k.is_empty() && k.take_save().is_none());
        k.seen("ann", ANN, 10);
        assert_eq!(k.dirty(), Dirty::Changed);
        k.take_save().unwrap().write().unwrap();
        assert_eq!(k.dirty(), Dirty::Clean);
        k.seen("ann", ANN, 10);
        assert_eq!(k.dirty(), Dirty::Clean, "nothing moved");
        assert!(k.seen("ann", ANN2, 20));
        assert_eq!(k.dirty(), Dirty::Clean, "a new key is not saved");
        k.seen("ann", ANN, 30);
        assert_eq!(k.dirty(), Dirty::Seen);
        let save = k.take_save().unwrap();
        k.save_failed();
        assert_eq!(k.dirty(), Dirty::Changed);
        save.write().unwrap();
        let again = KnownPeers::open(&path);
        assert_eq!(again.accepted("ann"), [ANN]);
        assert_eq!(again.nicks["ann"].accepted[0].last_seen, 30);
        assert!(!path.with_extension("bad").exists());
        // A store of no file never saves.
        let mut none = KnownPeers::new();
        none.seen("ann", ANN, 1);
        assert!(none.take_save().is_none() && none.dirty() == Dirty::Clean);
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_before_it_is_replaced_with_less() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE_NAME);
        let corrupt = b"ann\t3fa2c1d09e8b7a65\t100\nthis is not a line\n\x00\x01garbage";
        fs::write(&path, corrupt).unwrap();
        let mut k = KnownPeers::open(&path);
        assert_eq!(k.accepted("ann"), [ANN], "what could be read is used");
        assert_eq!(fs::read(path.with_extension("bad")).unwrap(), corrupt);
        k.seen("bob", ANN2, 200);
        k.take_save().unwrap().write().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(KnownPeers::parse(text.as_bytes()).bad_lines, 0, "{text}");
        assert_eq!(fs::read(path.with_extension("bad")).unwrap(), corrupt);
    }

    #[test]
    fn an_unreadable_file_is_moved_aside() {
        let tmp = tempfile::tempdir().unwrap();
        // A directory in the file's place cannot be read as a file.
        let path = tmp.path().join(FILE_NAME);
        fs::create_dir(&path).unwrap();
        let mut k = KnownPeers::open(&path);
        assert!(k.is_empty());
        assert!(path.with_extension("bad").is_dir(), "moved aside");
        k.seen("ann", ANN, 1);
        k.take_save().unwrap().write().unwrap();
        assert_eq!(KnownPeers::open(&path).accepted("ann"), [ANN]);
    }

    #[test]
    fn a_file_that_cannot_be_set_aside_is_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE_NAME);
        // A non-empty directory where the copy would go refuses both the move and the copy,
        // also to root.
        let bad = path.with_extension("bad");
        fs::create_dir(&bad).unwrap();
        fs::write(bad.join("x"), "x").unwrap();

        // Too large to be ours: cannot be read.
        File::create(&path)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        let mut k = KnownPeers::open(&path);
        assert!(k.is_empty());
        k.seen("ann", ANN, 1);
        assert_eq!(k.dirty(), Dirty::Clean);
        assert!(k.take_save().is_none(), "never replaced");
        assert_eq!(fs::metadata(&path).unwrap().len(), MAX_FILE_BYTES + 1);

        // Corrupt lines: what can be read is used, and nothing is saved.
        let corrupt = b"ann\t3fa2c1d09e8b7a65\t100\nnot a line\n";
        fs::write(&path, corrupt).unwrap();
        let mut k = KnownPeers::open(&path);
        assert_eq!(k.accepted("ann"), [ANN]);
        k.seen("bob", ANN2, 2);
        assert!(k.take_save().is_none(), "never replaced with less");
        assert_eq!(fs::read(&path).unwrap(), corrupt);
    }
}
