//! The sequence lease: a restarted node must number its packets above every one it sent before
//! in a lobby, or its peers drop the new ones as duplicates.
//!
//! The file `seq` in the lobby's directory holds one number, a bound that no packet sent so
//! far reaches:
//!
//! - at start the node begins at that bound, or above the end of its own messages in the
//!   history if that is higher, and at once reserves a block: it durably writes
//!   start + [`BLOCK`] before sending anything;
//! - while running it extends the reservation by another block, durably, before a message
//!   could need a number at or above it;
//! - on a clean exit it writes the exact next number, so that a restart continues without a gap.
//!
//! After a crash the node restarts at the end of the last block reserved: the numbers skipped
//! (at most one block) look to peers that heard it before like a gap; they track at most the
//! core's `max_gap` of them and give them up as lost. The history alone could not replace the
//! lease, because its last records may not have been written when the node died.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::identity::write_atomic;
use crate::proto::wire::MAX_FRAGMENTS;

/// Sequence numbers reserved at a time. One durable write per block, so a node sending
/// 100 000 messages/s writes the lease about twice a second.
pub const BLOCK: u64 = 1 << 16;

/// The lease of one lobby.
#[derive(Debug)]
pub struct SeqLease {
    path: PathBuf,
    /// Numbers below this may be used: it is on disk.
    reserved: u64,
    /// The next number the node uses.
    next: u64,
}

impl SeqLease {
    /// Reads the lease at `path`, starts at the higher of it and `history_end` (one past the
    /// last own sequence number in the history), and reserves a first block.
    pub fn acquire(path: &Path, history_end: u64) -> io::Result<SeqLease> {
        let stored = match fs::read_to_string(path) {
            Ok(s) => s.trim().parse::<u64>().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not hold a number", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let next = stored.max(history_end);
        let mut lease = SeqLease {
            path: path.to_owned(),
            reserved: next,
            next,
        };
        lease.reserve()?;
        Ok(lease)
    }

    /// The first sequence number to use, for [`crate::proto::Node::join`].
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Makes sure the next message, however many fragments it has, is covered; call before
    /// sending it.
    pub fn ensure(&mut self) -> io::Result<()> {
        if self.next + u64::from(MAX_FRAGMENTS) > self.reserved {
            self.reserve()?;
        }
        Ok(())
    }

    /// Records that own numbers up to `end` (exclusive) were used.
    pub fn used(&mut self, end: u64) {
        debug_assert!(end <= self.reserved, "sent beyond the lease");
        self.next = self.next.max(end);
    }

    fn reserve(&mut self) -> io::Result<()> {
        let upto = self.next + BLOCK;
        write_atomic(&self.path, format!("{upto}\n").as_bytes())?;
        self.reserved = upto;
        Ok(())
    }

    /// On a clean exit: shrinks the lease to what was used, so a restart leaves no gap.
    pub fn release(&mut self) -> io::Result<()> {
        write_atomic(&self.path, format!("{}\n", self.next).as_bytes())?;
        self.reserved = self.next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_restart_continues_and_crash_skips_at_most_a_block() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("seq");
        let mut l = SeqLease::acquire(&p, 0).unwrap();
        assert_eq!(l.next(), 0);
        l.ensure().unwrap();
        l.used(5);
        l.release().unwrap();
        let mut l = SeqLease::acquire(&p, 3).unwrap();
        assert_eq!(l.next(), 5, "clean exit: no gap");
        l.ensure().unwrap();
        l.used(9);
        drop(l); // a crash: no release
        let l = SeqLease::acquire(&p, 9).unwrap();
        assert_eq!(
            l.next(),
            5 + BLOCK,
            "above everything the lost run could have used"
        );
    }

    #[test]
    fn history_beyond_the_lease_wins_and_blocks_are_extended_before_use() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("seq");
        let mut l = SeqLease::acquire(&p, 1000).unwrap();
        assert_eq!(l.next(), 1000);
        l.used(1000 + BLOCK - 10);
        l.ensure().unwrap();
        let on_disk: u64 = fs::read_to_string(&p).unwrap().trim().parse().unwrap();
        assert!(on_disk >= l.next() + u64::from(MAX_FRAGMENTS));
    }

    #[test]
    fn garbage_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("seq");
        fs::write(&p, "nope").unwrap();
        assert!(SeqLease::acquire(&p, 0).is_err());
    }
}
