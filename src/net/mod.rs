//! Sockets for the runtime: the interface to use, one multicast socket per joined group and
//! one unicast socket per address family that the node sends from.

pub mod iface;
pub mod multicast;
pub mod unicast;

pub use iface::{Iface, IfaceError};
pub use multicast::GroupSocket;
pub use unicast::UnicastSocket;

use std::fmt;
use std::str::FromStr;

/// Which IP versions a node uses for its lobbies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Family {
    /// IPv4 when the interface has an IPv4 address, else IPv6.
    #[default]
    Auto,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
    /// Both: every datagram goes to both groups, and the core drops the second copy.
    Both,
}

impl Family {
    /// The families actually used on `iface`: (IPv4, IPv6).
    pub fn resolve(self, iface: &Iface) -> Result<(bool, bool), IfaceError> {
        let (v4, v6) = match self {
            Family::Auto => {
                if iface.ipv4.is_some() {
                    (true, false)
                } else {
                    (false, true)
                }
            }
            Family::V4 => (true, false),
            Family::V6 => (false, true),
            Family::Both => (true, true),
        };
        if v4 && iface.ipv4.is_none() {
            return Err(IfaceError::NoIpv4(iface.name.clone()));
        }
        if v6 && !iface.has_ipv6 {
            return Err(IfaceError::NoIpv6(iface.name.clone()));
        }
        Ok((v4, v6))
    }
}

/// Why a `--family` value was refused.
#[derive(Debug, thiserror::Error)]
#[error("unknown address family {0:?}: use auto, ipv4, ipv6 or both")]
pub struct FamilyParseError(String);

impl FromStr for Family {
    type Err = FamilyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Family::Auto),
            "4" | "ipv4" | "v4" => Ok(Family::V4),
            "6" | "ipv6" | "v6" => Ok(Family::V6),
            "both" | "dual" => Ok(Family::Both),
            _ => Err(FamilyParseError(s.to_owned())),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Auto => "auto",
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
            Family::Both => "both",
        })
    }
}

/// Socket buffer size asked for: bursts of a busy lobby arrive faster than one wakeup drains
/// them, and every datagram lost in a full buffer costs a request and a repair. The kernel
/// caps it at net.core.rmem_max / wmem_max.
pub const SOCKET_BUFFER: usize = 4 << 20;
