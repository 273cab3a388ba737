//! One receiving socket per joined multicast group.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::{Iface, SOCKET_BUFFER};

/// A socket that has joined one group on one interface and receives its datagrams.
///
/// It is bound to the group address itself, so Linux hands it only that group's traffic, and
/// IP_MULTICAST_ALL is off for the same reason: without either, a socket on the port would
/// also get every other group that any program on the host joined.
#[derive(Debug)]
pub struct GroupSocket {
    sock: UdpSocket,
    group: SocketAddr,
    ifindex: u32,
    joined: bool,
}

impl GroupSocket {
    /// Opens a socket on `group:port` and joins the group on `iface`. SO_REUSEADDR and
    /// SO_REUSEPORT let several programs on one host join the same lobby. Must be called
    /// within a Tokio runtime.
    pub fn join(group: IpAddr, port: u16, iface: &Iface) -> io::Result<GroupSocket> {
        let addr = SocketAddr::new(group, port);
        let domain = Domain::for_address(addr);
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        if let Err(e) = s.set_recv_buffer_size(SOCKET_BUFFER) {
            tracing::debug!(error = %e, "could not enlarge the receive buffer");
        }
        match group {
            IpAddr::V4(g) => {
                if !g.is_multicast() {
                    return Err(not_multicast(group));
                }
                s.bind(&addr.into())?;
                s.set_multicast_all_v4(false)?;
                s.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(iface.index))?;
            }
            IpAddr::V6(g) => {
                if !g.is_multicast() {
                    return Err(not_multicast(group));
                }
                s.set_only_v6(true)?;
                s.bind(&addr.into())?;
                s.set_multicast_all_v6(false)?;
                s.join_multicast_v6(&g, iface.index)?;
            }
        }
        s.set_nonblocking(true)?;
        let sock = UdpSocket::from_std(s.into())?;
        Ok(GroupSocket {
            sock,
            group: addr,
            ifindex: iface.index,
            joined: true,
        })
    }

    /// The group and port.
    pub fn group(&self) -> SocketAddr {
        self.group
    }

    /// The socket, to wait for and take datagrams.
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// Leaves the group (closing the socket would too; leaving first says so explicitly and
    /// lets an error be logged).
    pub fn leave(&mut self) -> io::Result<()> {
        if !self.joined {
            return Ok(());
        }
        self.joined = false;
        let s = socket2::SockRef::from(&self.sock);
        match self.group.ip() {
            IpAddr::V4(g) => {
                s.leave_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(self.ifindex))
            }
            IpAddr::V6(g) => s.leave_multicast_v6(&g, self.ifindex),
        }
    }
}

impl Drop for GroupSocket {
    fn drop(&mut self) {
        if let Err(e) = self.leave() {
            tracing::debug!(group = %self.group, error = %e, "leaving the group failed");
        }
    }
}

fn not_multicast(a: IpAddr) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{a} is not a multicast address"),
    )
}

/// Unspecified address of a family, for binds.
pub(crate) fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}
