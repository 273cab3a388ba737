//! Choosing the network interface: by name or address, or the default route's interface.

use std::net::{IpAddr, Ipv4Addr};

/// The interface a node sends and joins its groups on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    /// Its name, e.g. `eth0`.
    pub name: String,
    /// Its index, used to join IPv4 groups (`ip_mreqn`) and for IPv6 membership and sends.
    pub index: u32,
    /// Its first IPv4 address, the source of IPv4 multicast.
    pub ipv4: Option<Ipv4Addr>,
    /// Whether it has any IPv6 address (a link-local one is enough for multicast).
    pub has_ipv6: bool,
    /// All its addresses.
    pub addrs: Vec<IpAddr>,
    /// Whether it has the MULTICAST flag.
    pub multicast: bool,
    /// Whether it is the loopback interface.
    pub loopback: bool,
}

/// Why no interface could be used.
#[derive(Debug, thiserror::Error)]
pub enum IfaceError {
    /// `--iface` named nothing that exists.
    #[error("no network interface is named or has the address {0:?} (see `ip address`)")]
    NotFound(String),
    /// No default route, so no default interface.
    #[error("no default route, so no interface to choose: pass --iface NAME ({0})")]
    NoDefault(String),
    /// The default route's interface cannot do multicast.
    #[error(
        "the default route's interface {0} has no MULTICAST flag; pick another with --iface NAME"
    )]
    NotMulticast(String),
    /// IPv4 asked for on an interface without an IPv4 address.
    #[error("interface {0} has no IPv4 address; use --family ipv6 or another --iface")]
    NoIpv4(String),
    /// IPv6 asked for on an interface without an IPv6 address.
    #[error("interface {0} has no IPv6 address; use --family ipv4 or another --iface")]
    NoIpv6(String),
    /// The interface is down.
    #[error("interface {0} is down")]
    Down(String),
}

impl Iface {
    fn from_netdev(i: &netdev::Interface) -> Self {
        Iface {
            name: i.name.clone(),
            index: i.index,
            ipv4: i.ipv4.first().map(|n| n.addr()),
            has_ipv6: !i.ipv6.is_empty(),
            addrs: i.ip_addrs(),
            multicast: i.is_multicast(),
            loopback: i.is_loopback(),
        }
    }

    /// The interface `spec` names (a name, or one of its addresses), or with `None` the
    /// interface of the default route, which must have the MULTICAST flag.
    ///
    /// An interface named explicitly is taken even without the MULTICAST flag: Linux's `lo`
    /// lacks it yet carries IPv4 multicast between programs on one host.
    pub fn select(spec: Option<&str>) -> Result<Iface, IfaceError> {
        let found = match spec {
            Some(spec) => {
                let all = netdev::get_interfaces();
                let by_name = all.iter().find(|i| i.name == spec);
                let by_addr = || {
                    let addr: IpAddr = spec.parse().ok()?;
                    all.iter().find(|i| i.ip_addrs().contains(&addr))
                };
                let i = by_name
                    .or_else(by_addr)
                    .ok_or_else(|| IfaceError::NotFound(spec.to_owned()))?;
                let iface = Iface::from_netdev(i);
                if iface.loopback {
                    tracing::info!(iface = %iface.name, "loopback: lobbies stay on this host");
                } else if !iface.multicast {
                    tracing::warn!(
                        iface = %iface.name,
                        "interface has no MULTICAST flag; multicast may only reach this host"
                    );
                }
                iface
            }
            None => {
                let i = netdev::get_default_interface().map_err(IfaceError::NoDefault)?;
                let iface = Iface::from_netdev(&i);
                if !iface.multicast {
                    return Err(IfaceError::NotMulticast(iface.name));
                }
                iface
            }
        };
        if !netdev::get_interfaces()
            .iter()
            .any(|i| i.index == found.index && i.is_up())
        {
            return Err(IfaceError::Down(found.name));
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_by_name_and_address() {
        let by_name = Iface::select(Some("lo")).expect("lo exists on Linux");
        assert!(by_name.loopback);
        assert_eq!(by_name.ipv4, Some(Ipv4Addr::LOCALHOST));
        let by_addr = Iface::select(Some("127.0.0.1")).expect("127.0.0.1 is on lo");
        assert_eq!(by_addr, by_name);
    }

    #[test]
    fn unknown_interface_is_a_clear_error() {
        let e = Iface::select(Some("no-such-if0")).unwrap_err();
        assert!(matches!(e, IfaceError::NotFound(_)), "{e}");
        assert!(e.to_string().contains("no-such-if0"));
    }
}
