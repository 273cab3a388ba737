//! The sequence lease: a restarted node must number its packets above every one it sent before
//! in a lobby, or its peers drop the new ones as duplicates. Numbers skipped are no better:
//! peers that heard the node before take them for lost packets and ask for them again and
//! again. So the next number should be exact whenever it can be known.
//!
//! Two sources tell it:
//!
//! - **The history.** The runtime writes own messages to the history file before their
//!   datagrams leave, so after a process crash (the kernel's page cache survives) the last own
//!   record in the file ends exactly where the numbering stopped.
//! - **The file `seq`** in the lobby's directory, for when the page cache may be gone (the
//!   machine crashed or rebooted). While running it holds `reserved N boot B from F`: no packet
//!   reaches N, numbers below F were in use when N was written, and B is the kernel's boot id.
//!   Blocks of [`BLOCK`] numbers are reserved by writing it durably (fsync, rename) before any
//!   of them is used. A clean exit writes `next N`, the exact next number.
//!
//! At start: after `next N`, the node starts at N (or past its history, if further). After
//! `reserved N boot B from F` in the same boot, it starts right after its last own message
//! in the history, provided the history reaches F (it was not deleted); otherwise (another
//! boot, or no usable history) at N, skipping at most one block.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::identity::write_atomic;
use crate::proto::wire::MAX_FRAGMENTS;

/// Sequence numbers reserved at a time. One durable write per block, so a node sending
/// 100 000 messages/s writes the lease about twice a second.
pub const BLOCK: u64 = 1 << 16;

/// The kernel's boot id, which changes with every boot (Linux); `None` elsewhere.
pub fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
}

/// What the file says.
#[derive(Debug, PartialEq, Eq)]
enum Stored {
    None,
    Next(u64),
    Reserved { upto: u64, boot: String, from: u64 },
}

fn parse(s: &str) -> Option<Stored> {
    let w: Vec<&str> = s.split_whitespace().collect();
    match w.as_slice() {
        [] => Some(Stored::None),
        ["next", n] => Some(Stored::Next(n.parse().ok()?)),
        ["reserved", n, "boot", b, "from", f] => Some(Stored::Reserved {
            upto: n.parse().ok()?,
            boot: (*b).to_owned(),
            from: f.parse().ok()?,
        }),
        _ => None,
    }
}

/// The lease of one lobby.
#[derive(Debug)]
pub struct SeqLease {
    path: PathBuf,
    boot: String,
    /// Numbers below this may be used: it is on disk.
    reserved: u64,
    /// The next number the node uses.
    next: u64,
}

impl SeqLease {
    /// Reads the lease at `path` and decides where numbering starts (see the module doc);
    /// `history_end` is one past the last own sequence number in the history, `None` when
    /// the history's loaded tail cannot tell (no own message in it, and older records not
    /// read). Reserves a first block before returning.
    pub fn acquire(path: &Path, history_end: Option<u64>) -> io::Result<SeqLease> {
        let text = match fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let stored = parse(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is corrupt; delete it only if this node never sent in the lobby",
                    path.display()
                ),
            )
        })?;
        let boot = boot_id().unwrap_or_else(|| "unknown".to_owned());
        let h = history_end.unwrap_or(0);
        let next = match stored {
            Stored::None => h,
            Stored::Next(n) => n.max(h),
            Stored::Reserved {
                upto,
                boot: b,
                from,
            } => match history_end {
                Some(h) if b == boot && boot != "unknown" && h >= from => {
                    tracing::info!(
                        next = h,
                        "crashed before: numbering resumes after the history"
                    );
                    h
                }
                _ => {
                    tracing::warn!(
                        next = upto,
                        "crashed before and the history cannot tell where numbering stopped; \
                         skipping to the end of the reserved block"
                    );
                    upto.max(h)
                }
            },
        };
        let mut lease = SeqLease {
            path: path.to_owned(),
            boot,
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
        let text = format!("reserved {upto} boot {} from {}\n", self.boot, self.next);
        write_atomic(&self.path, text.as_bytes())?;
        self.reserved = upto;
        Ok(())
    }

    /// On a clean exit: records the exact next number, so a restart leaves no gap.
    pub fn release(&mut self) -> io::Result<()> {
        write_atomic(&self.path, format!("next {}\n", self.next).as_bytes())?;
        self.reserved = self.next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_restart_continues_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("seq");
        let mut l = SeqLease::acquire(&p, Some(0)).unwrap();
        assert_eq!(l.next(), 0);
        l.ensure().unwrap();
        l.used(5);
        l.release().unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "next 5\n");
        // The history's tail need not show own messages: the lease knows.
        let l = SeqLease::acquire(&p, None).unwrap();
        assert_eq!(l.next(), 5);
    }

    #[test]
    fn process_crash_resumes_after_the_history() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("seq");
        let mut l = SeqLease::acquire(&p, Some(0)).unwrap();
        l.ensure().unwrap();
        l.used(9);
        drop(l); // killed: no release
        if boot_id().is_some() {
            assert_eq!(SeqLease::acquire(&p, Some(9)).unwrap().next(), 9);
        }
    }

    #[test]
    fn without_usable_history_a_crash_skips_the_block() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("seq");
        let mut l = SeqLease::acquire(&p, Some(100)).unwrap();
        l.used(120);
        drop(l);
        // The history's tail shows no own message...
        assert_eq!(SeqLease::acquire(&p, None).unwrap().next(), 100 + BLOCK);
        // ...or another boot: the page cache, and maybe the last records, are gone.
        let text = fs::read_to_string(&p).unwrap().replace("boot ", "boot x");
        fs::write(&p, text).unwrap();
        let l = SeqLease::acquire(&p, Some(101)).unwrap();
        assert_eq!(l.next(), 100 + 2 * BLOCK);
    }

    #[test]
    fn deleted_history_does_not_rewind() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("seq");
        let mut l = SeqLease::acquire(&p, Some(50)).unwrap();
        l.used(60);
        l.ensure().unwrap();
        drop(l);
        // The history was deleted: it says 0, below the 50 in use at reservation.
        assert_eq!(SeqLease::acquire(&p, Some(0)).unwrap().next(), 50 + BLOCK);
    }

    #[test]
    fn blocks_are_extended_before_use() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("seq");
        let mut l = SeqLease::acquire(&p, Some(1000)).unwrap();
        l.used(1000 + BLOCK - 10);
        l.ensure().unwrap();
        let on_disk = parse(&fs::read_to_string(&p).unwrap()).unwrap();
        let Stored::Reserved { upto, from, .. } = on_disk else {
            panic!("{on_disk:?}")
        };
        assert!(upto >= l.next() + u64::from(MAX_FRAGMENTS));
        assert_eq!(from, l.next());
    }

    #[test]
    fn garbage_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("seq");
        fs::write(&p, "nope").unwrap();
        assert!(SeqLease::acquire(&p, Some(0)).is_err());
    }
}
