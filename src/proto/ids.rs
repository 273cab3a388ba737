//! Identifiers on the wire and the mapping from a lobby name to its groups.

use std::fmt;
use std::hash::Hasher;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher24;

/// Default UDP port of every lobby's multicast group.
pub const DEFAULT_PORT: u16 = 47110;

/// The IPv4 discovery group, where lobby lists are heard on a segment (PROTOCOL.md 7.12), on
/// the lobbies' port. It lies in the first 256 addresses of the scope, which no lobby uses.
pub const DISCOVERY_IPV4: Ipv4Addr = Ipv4Addr::new(239, 255, 0, 124);
/// The IPv6 discovery group (PROTOCOL.md 7.12): "lobc" in ASCII as its group id.
pub const DISCOVERY_IPV6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0x6c6f, 0x6263);

/// Fixed SipHash key for lobby names: the mapping must be the same on every node, so the key is
/// public and only spreads names over ids and groups; it hides nothing.
const LOBBY_KEY: [u8; 16] = *b"lobbycast-lobby1";

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:016x}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:016x})"), self.0)
            }
        }
    };
}

id_type!(
    /// A node's random 64-bit identity, kept across restarts by the runtime.
    PeerId
);
id_type!(
    /// A lobby's 64-bit id: SipHash-2-4 of its normalised name (see [`Lobby::new`]).
    LobbyId
);
id_type!(
    /// A message's random 64-bit id, the key of every node's dedup cache.
    MsgId
);

/// A lobby name together with everything derived from it: id, IPv4 and IPv6 groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lobby {
    /// The normalised name: trimmed and lower-cased, so `General` and ` general` meet.
    pub name: String,
    /// SipHash-2-4 of `name` under a fixed public key.
    pub id: LobbyId,
}

/// Why a lobby name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LobbyNameError {
    /// The name is empty after trimming.
    #[error("lobby name is empty")]
    Empty,
    /// The name is longer than [`Lobby::MAX_NAME`] bytes after normalising.
    #[error("lobby name is longer than {max} bytes", max = Lobby::MAX_NAME)]
    TooLong,
    /// The name holds a control character (a newline, a tab...).
    #[error("lobby name contains a control character")]
    ControlChar,
}

impl Lobby {
    /// Longest lobby name accepted, in bytes of UTF-8.
    pub const MAX_NAME: usize = 64;

    /// Normalises `name` and derives the lobby id.
    pub fn new(name: &str) -> Result<Self, LobbyNameError> {
        let name = name.trim().to_lowercase();
        if name.is_empty() {
            return Err(LobbyNameError::Empty);
        }
        if name.len() > Self::MAX_NAME {
            return Err(LobbyNameError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(LobbyNameError::ControlChar);
        }
        let mut h = SipHasher24::new_with_key(&LOBBY_KEY);
        h.write(name.as_bytes());
        let id = LobbyId(h.finish());
        Ok(Lobby { name, id })
    }

    /// The IPv4 group in 239.255.0.0/16 (RFC 2365 local scope): the low 16 bits of the id,
    /// moved off the first and last 256 addresses, which hold well-known groups (SSDP, SLP).
    pub fn ipv4_group(&self) -> Ipv4Addr {
        ipv4_group(self.id)
    }

    /// The IPv6 group in ff15::/16 (transient, site-local scope) with the low 32 bits of the id
    /// as group id, as RFC 3307 recommends so that it maps to a distinct Ethernet address.
    pub fn ipv6_group(&self) -> Ipv6Addr {
        ipv6_group(self.id)
    }
}

/// The IPv4 group of a lobby id; see [`Lobby::ipv4_group`].
pub fn ipv4_group(id: LobbyId) -> Ipv4Addr {
    // 65536 - 512 usable addresses: 239.255.1.0 ..= 239.255.254.255.
    let n = (id.0 % (65536 - 512)) as u16 + 256;
    let [hi, lo] = n.to_be_bytes();
    Ipv4Addr::new(239, 255, hi, lo)
}

/// The IPv6 group of a lobby id; see [`Lobby::ipv6_group`].
pub fn ipv6_group(id: LobbyId) -> Ipv6Addr {
    let g = id.0 as u32;
    Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, (g >> 16) as u16, g as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_discovery_groups_are_no_lobby_s_ipv4_group() {
        assert_eq!(DISCOVERY_IPV4.to_string(), "239.255.0.124");
        assert_eq!(DISCOVERY_IPV6.to_string(), "ff15::6c6f:6263");
        assert_eq!(&DISCOVERY_IPV6.octets()[12..], b"lobc");
        // Lobby groups start at 239.255.1.0 (PROTOCOL.md 2.2).
        assert!(ipv4_group(LobbyId(0)) > DISCOVERY_IPV4);
    }

    #[test]
    fn names_are_normalised_before_hashing() {
        let a = Lobby::new("General").unwrap();
        let b = Lobby::new("  general ").unwrap();
        assert_eq!(a, b);
        assert_ne!(a.id, Lobby::new("random").unwrap().id);
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(Lobby::new("  "), Err(LobbyNameError::Empty));
        assert_eq!(Lobby::new(&"x".repeat(65)), Err(LobbyNameError::TooLong));
        assert_eq!(Lobby::new("a\nb"), Err(LobbyNameError::ControlChar));
    }

    #[test]
    fn groups_stay_in_scope_and_off_reserved_addresses() {
        for i in 0..10_000u64 {
            let id = LobbyId(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let [a, b, c, _] = ipv4_group(id).octets();
            assert_eq!((a, b), (239, 255));
            assert!((1..=254).contains(&c));
            assert_eq!(ipv6_group(id).segments()[0], 0xff15);
        }
        assert_eq!(ipv4_group(LobbyId(0)), Ipv4Addr::new(239, 255, 1, 0));
    }
}
