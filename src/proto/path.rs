//! The network paths a datagram takes, as the core sees them: the runtime says how each
//! datagram arrived, and the core says where each of its datagrams goes ([`super::Dest`]).

use std::net::SocketAddr;

/// How a datagram reached the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// On a lobby's multicast group. The address is the sender's unicast socket, which every
    /// node sends its multicast datagrams from.
    Multicast(SocketAddr),
    /// On the node's own unicast socket, from a friend (or anyone who knows the address).
    Unicast(SocketAddr),
}

impl Path {
    /// The address the datagram came from.
    pub fn from(self) -> SocketAddr {
        match self {
            Path::Multicast(a) | Path::Unicast(a) => a,
        }
    }

    /// Whether it came by unicast.
    pub fn is_unicast(self) -> bool {
        matches!(self, Path::Unicast(_))
    }
}
