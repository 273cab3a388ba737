//! Packs outgoing packets into datagrams of at most [`MAX_DATAGRAM`] bytes.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::ids::LobbyId;
use super::wire::{Link, MAX_DATAGRAM, Packet};

/// Where a datagram goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    /// The lobby's multicast group; the runtime knows its address and port.
    Lobby(LobbyId),
    /// One peer by unicast, at the address of its unicast socket.
    Peer(SocketAddr),
}

/// A datagram for the runtime to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub dest: Dest,
    /// The datagram: a CBOR sequence of packets.
    pub payload: Vec<u8>,
}

/// Outgoing datagrams: one being filled per destination, and a bounded queue of full ones.
#[derive(Debug)]
pub struct Outbox {
    filling: Vec<(Dest, Vec<u8>)>,
    ready: VecDeque<Transmit>,
    max_ready: usize,
    scratch: Vec<u8>,
    /// Datagrams dropped because the runtime did not drain the queue.
    pub dropped: u64,
    /// Bytes in `ready` and `filling`.
    pending: usize,
}

impl Outbox {
    /// An empty outbox holding at most `max_ready` finished datagrams.
    pub fn new(max_ready: usize) -> Self {
        Outbox {
            filling: Vec::new(),
            ready: VecDeque::new(),
            max_ready: max_ready.max(1),
            scratch: Vec::with_capacity(MAX_DATAGRAM),
            dropped: 0,
            pending: 0,
        }
    }

    /// Appends `packet` to the datagram being filled for `dest`, starting a new datagram when
    /// it would not fit. Returns the packet's encoded length.
    pub fn push(&mut self, dest: Dest, packet: &Packet) -> usize {
        self.scratch.clear();
        packet.encode_into(&mut self.scratch);
        self.push_scratch(dest)
    }

    /// Like [`Outbox::push`], for a friend-link packet.
    pub fn push_link(&mut self, dest: Dest, packet: &Link) -> usize {
        self.scratch.clear();
        packet.encode_into(&mut self.scratch);
        self.push_scratch(dest)
    }

    fn push_scratch(&mut self, dest: Dest) -> usize {
        let i = match self.filling.iter().position(|(d, _)| *d == dest) {
            Some(i) => i,
            None => {
                self.filling.push((dest, Vec::with_capacity(MAX_DATAGRAM)));
                self.filling.len() - 1
            }
        };
        let buf = &mut self.filling[i].1;
        if !buf.is_empty() && buf.len() + self.scratch.len() > MAX_DATAGRAM {
            let full = std::mem::replace(buf, Vec::with_capacity(MAX_DATAGRAM));
            self.enqueue(Transmit {
                dest,
                payload: full,
            });
        }
        self.filling[i].1.extend_from_slice(&self.scratch);
        self.pending += self.scratch.len();
        self.scratch.len()
    }

    /// The next datagram to send; partly filled datagrams go out once the full ones have.
    pub fn poll(&mut self) -> Option<Transmit> {
        if self.ready.is_empty() {
            for (dest, buf) in &mut self.filling {
                if !buf.is_empty() {
                    let payload = std::mem::take(buf);
                    self.ready.push_back(Transmit {
                        dest: *dest,
                        payload,
                    });
                }
            }
        }
        let t = self.ready.pop_front()?;
        self.pending -= t.payload.len();
        Some(t)
    }

    /// Bytes waiting to be sent, in full and partly filled datagrams.
    pub fn pending_bytes(&self) -> usize {
        self.pending
    }

    /// True when nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    fn enqueue(&mut self, t: Transmit) {
        if self.ready.len() >= self.max_ready
            && let Some(old) = self.ready.pop_front()
        {
            self.pending -= old.payload.len();
            self.dropped += 1;
        }
        self.ready.push_back(t);
    }
}
