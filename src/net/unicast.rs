//! The node's own socket: every datagram it sends leaves from here, so its source address
//! and port identify the node; unicast datagrams to the node arrive here too.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::multicast::unspecified;
use super::{Iface, SOCKET_BUFFER};

/// Options of the sending socket.
#[derive(Clone, Copy, Debug)]
pub struct SendOptions {
    /// IP_MULTICAST_TTL / IPV6_MULTICAST_HOPS: 1 keeps lobbies on the local segment.
    pub ttl: u32,
    /// IP_MULTICAST_LOOP: on, so that programs on one host hear each other.
    pub multicast_loop: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            ttl: 1,
            multicast_loop: true,
        }
    }
}

/// A node's unicast socket of one address family.
#[derive(Debug)]
pub struct UnicastSocket {
    sock: UdpSocket,
    local: SocketAddr,
}

impl UnicastSocket {
    /// Binds to `bind` (or the interface's address, or the unspecified address for IPv6, on an
    /// ephemeral port) and points multicast sends at `iface`. Must be called within a Tokio
    /// runtime.
    pub fn bind(
        v6: bool,
        iface: &Iface,
        bind: Option<SocketAddr>,
        opts: SendOptions,
    ) -> io::Result<UnicastSocket> {
        let addr = match bind {
            Some(a) => a,
            None => match (v6, iface.ipv4) {
                (false, Some(a)) => SocketAddr::new(IpAddr::V4(a), 0),
                _ => SocketAddr::new(unspecified(v6), 0),
            },
        };
        if addr.is_ipv6() != v6 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bind address {addr} is not of the lobby's address family"),
            ));
        }
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        for (what, r) in [
            ("receive", s.set_recv_buffer_size(SOCKET_BUFFER)),
            ("send", s.set_send_buffer_size(SOCKET_BUFFER)),
        ] {
            if let Err(e) = r {
                tracing::debug!(error = %e, "could not enlarge the {what} buffer");
            }
        }
        // A socket bound to the unspecified address on the lobbies' port (`--bind [::]:47110`)
        // would otherwise get every group's datagrams that a socket of the host joined, and
        // hand the core each of them a second time, as unicast. It joins no group itself.
        if v6 {
            s.set_only_v6(true)?;
            s.set_multicast_all_v6(false)?;
            s.set_multicast_if_v6(iface.index)?;
            s.set_multicast_hops_v6(opts.ttl)?;
            s.set_multicast_loop_v6(opts.multicast_loop)?;
        } else {
            let src = iface.ipv4.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("interface {} has no IPv4 address", iface.name),
                )
            })?;
            s.set_multicast_all_v4(false)?;
            s.set_multicast_if_v4(&src)?;
            s.set_multicast_ttl_v4(opts.ttl)?;
            s.set_multicast_loop_v4(opts.multicast_loop)?;
        }
        s.bind(&addr.into())?;
        s.set_nonblocking(true)?;
        let sock = UdpSocket::from_std(s.into())?;
        let local = sock.local_addr()?;
        Ok(UnicastSocket { sock, local })
    }

    /// The address and port bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The socket, to send from and receive on.
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }
}
