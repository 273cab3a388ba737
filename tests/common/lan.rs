//! Hosts in network namespaces on one Linux bridge, each dropping a chosen share of its
//! incoming UDP at random with nftables. Used by tests/netns.rs (through `common`) and by
//! benches/runtime.rs (which includes `common` by path).
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). The namespaces have a prefix of this
//! process's id, use only 10.99.0.0/24 and link-local IPv6, and are always removed.

#![allow(dead_code)]

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

/// Whether namespaces can be made here; `Err` says why not.
pub fn can_run() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root for network namespaces".into());
    }
    for tool in ["ip", "nft"] {
        let ok = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!(
                "`{tool}` not found (install iproute2 and nftables)"
            ));
        }
    }
    Ok(())
}

/// Skips the calling test with a clear line when namespaces cannot be made here (true), or
/// fails it under CI=true, where they must be.
pub fn skip_unless_possible() -> bool {
    match can_run() {
        Ok(()) => false,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but the namespace test cannot run: {why}")
        }
        Err(why) => {
            println!("skipped: {why}");
            true
        }
    }
}

fn ip(args: &[&str]) {
    run("ip", args, None);
}

fn run(cmd: &str, args: &[&str], stdin: Option<&str>) {
    let mut c = Command::new(cmd);
    c.args(args).stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    if let Some(s) = stdin {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(s.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        out.status
    );
}

/// Namespaces for a bridge and its hosts; removed on drop, even when the caller panics.
pub struct Lan {
    prefix: String,
    /// How many hosts.
    pub hosts: usize,
}

impl Lan {
    /// A bridge and one host per entry of `loss_percent`: host `i` drops that share of its
    /// incoming UDP at random. Host `i` has the address 10.99.0.`i+1` on `eth0`.
    pub fn new(tag: &str, loss_percent: &[u32]) -> Lan {
        let prefix = format!("lbc{}{tag}", std::process::id());
        let lan = Lan {
            prefix,
            hosts: loss_percent.len(),
        };
        let br = lan.bridge_ns();
        ip(&["netns", "add", &br]);
        ip(&["-n", &br, "link", "set", "lo", "up"]);
        add_bridge(&br, "br0");
        for (i, &loss) in loss_percent.iter().enumerate() {
            add_host(
                &lan.host_ns(i),
                &br,
                "br0",
                &format!("p{i}"),
                &format!("{}/24", Lan::addr(i)),
                "10.99.0.254",
                loss,
            );
        }
        lan
    }

    /// Drops every multicast UDP datagram that host `i` sends or receives (IPv4 224.0.0.0/4
    /// and IPv6 ff00::/8), as a network that does not carry multicast does. Only UDP: IPv6
    /// neighbour discovery, itself multicast, keeps working.
    pub fn block_multicast(&self, i: usize) {
        let rules = "table inet lbmcast {\n \
                     chain input {\n  type filter hook input priority -10; policy accept;\n  \
                     meta l4proto udp ip daddr 224.0.0.0/4 drop\n  \
                     meta l4proto udp ip6 daddr ff00::/8 drop\n }\n \
                     chain output {\n  type filter hook output priority -10; policy accept;\n  \
                     meta l4proto udp ip daddr 224.0.0.0/4 drop\n  \
                     meta l4proto udp ip6 daddr ff00::/8 drop\n }\n}\n";
        run(
            "ip",
            &["netns", "exec", &self.host_ns(i), "nft", "-f", "-"],
            Some(rules),
        );
    }

    /// Undoes [`Lan::block_multicast`].
    pub fn unblock_multicast(&self, i: usize) {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &self.host_ns(i),
                "nft",
                "delete",
                "table",
                "inet",
                "lbmcast",
            ],
            None,
        );
    }

    fn bridge_ns(&self) -> String {
        format!("{}-br", self.prefix)
    }

    /// The namespace of host `i`.
    pub fn host_ns(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    /// The IPv4 address of host `i` on its `eth0`.
    pub fn addr(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 99, 0, u8::try_from(i + 1).expect("at most 253 hosts"))
    }

    /// `program` to be run inside host `i` (`ip netns exec` execs it: the child's pid is
    /// the program's, so signals reach it directly).
    pub fn exec(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host_ns(i), program]);
        cmd
    }

    /// `lobbycast --pipe LOBBY --nick NICK --data-dir DIR/NICK EXTRA...` inside host `i`.
    pub fn lobbycast(
        &self,
        i: usize,
        lobby: &str,
        nick: &str,
        dir: &Path,
        extra: &[&str],
    ) -> Command {
        let mut cmd = self.exec(i, env!("CARGO_BIN_EXE_lobbycast"));
        cmd.args(["--pipe", lobby, "--nick", nick, "--data-dir"])
            .arg(dir.join(nick))
            .args(extra);
        cmd
    }

    /// Moves the calling thread into host `i`'s network namespace: sockets it opens from then
    /// on live there. Meant for a thread of its own.
    pub fn enter(&self, i: usize) -> io::Result<()> {
        let f = std::fs::File::open(Path::new("/run/netns").join(self.host_ns(i)))?;
        // SAFETY: setns(2) on a namespace file we opened; it affects only this thread.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in (0..self.hosts)
            .map(|i| self.host_ns(i))
            .chain([self.bridge_ns()])
        {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Makes namespace `ns` a host on bridge `bridge` (in namespace `br`): a veth whose bridge end
/// is `port`, address `cidr`, default route via `gateway`, and `loss` % of incoming UDP dropped
/// at random (nftables).
fn add_host(ns: &str, br: &str, bridge: &str, port: &str, cidr: &str, gateway: &str, loss: u32) {
    ip(&["netns", "add", ns]);
    // No duplicate address detection: link-local IPv6 is usable at once.
    for knob in ["default", "all"] {
        run(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{knob}.accept_dad=0"),
            ],
            None,
        );
    }
    ip(&["-n", ns, "link", "set", "lo", "up"]);
    ip(&[
        "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", br,
    ]);
    ip(&["-n", br, "link", "set", port, "master", bridge, "up"]);
    ip(&["-n", ns, "addr", "add", cidr, "dev", "eth0"]);
    ip(&["-n", ns, "link", "set", "eth0", "up"]);
    // A default route, so that the default interface can be chosen (and, behind a router,
    // so that unicast crosses it).
    ip(&[
        "-n", ns, "route", "add", "default", "via", gateway, "dev", "eth0",
    ]);
    if loss > 0 {
        let rules = format!(
            "table inet lbloss {{\n chain input {{\n  \
             type filter hook input priority 0; policy accept;\n  \
             meta l4proto udp numgen random mod 100 < {loss} drop\n }}\n}}\n"
        );
        run("ip", &["netns", "exec", ns, "nft", "-f", "-"], Some(&rules));
    }
}

/// Makes a bridge `name` with snooping off in namespace `br`: with no IGMP/MLD querier on the
/// LAN, the bridge simply floods multicast.
fn add_bridge(br: &str, name: &str) {
    ip(&[
        "-n",
        br,
        "link",
        "add",
        name,
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ]);
    ip(&["-n", br, "link", "set", name, "up"]);
}

/// Two LANs, 10.99.0.0/24 and 10.99.1.0/24, each a bridge with its hosts, joined by a router
/// namespace (10.99.0.254 and 10.99.1.254) that forwards unicast and, like any router without
/// a multicast routing daemon, no multicast. Removed on drop.
pub struct RoutedLan {
    prefix: String,
    /// How many hosts on each side.
    pub sides: [usize; 2],
}

impl RoutedLan {
    /// `sides[s]` hosts on side `s`, each dropping `loss` % of its incoming UDP.
    pub fn new(tag: &str, sides: [usize; 2], loss: u32) -> RoutedLan {
        let lan = RoutedLan {
            prefix: format!("lbc{}{tag}", std::process::id()),
            sides,
        };
        let br = lan.bridge_ns();
        ip(&["netns", "add", &br]);
        ip(&["-n", &br, "link", "set", "lo", "up"]);
        let rt = lan.router_ns();
        ip(&["netns", "add", &rt]);
        ip(&["-n", &rt, "link", "set", "lo", "up"]);
        run(
            "ip",
            &[
                "netns",
                "exec",
                &rt,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
            None,
        );
        for (side, &hosts) in sides.iter().enumerate() {
            let bridge = format!("br{side}");
            add_bridge(&br, &bridge);
            let leg = format!("r{side}");
            let port = format!("rp{side}");
            ip(&[
                "-n", &rt, "link", "add", &leg, "type", "veth", "peer", "name", &port, "netns", &br,
            ]);
            ip(&["-n", &br, "link", "set", &port, "master", &bridge, "up"]);
            ip(&[
                "-n",
                &rt,
                "addr",
                "add",
                &format!("10.99.{side}.254/24"),
                "dev",
                &leg,
            ]);
            ip(&["-n", &rt, "link", "set", &leg, "up"]);
            for i in 0..hosts {
                add_host(
                    &lan.host_ns(side, i),
                    &br,
                    &bridge,
                    &format!("p{side}x{i}"),
                    &format!("{}/24", RoutedLan::addr(side, i)),
                    &format!("10.99.{side}.254"),
                    loss,
                );
            }
        }
        lan
    }

    fn bridge_ns(&self) -> String {
        format!("{}-br", self.prefix)
    }

    fn router_ns(&self) -> String {
        format!("{}-rt", self.prefix)
    }

    /// The namespace of host `i` on side `side`.
    pub fn host_ns(&self, side: usize, i: usize) -> String {
        format!("{}-s{side}h{i}", self.prefix)
    }

    /// The IPv4 address of host `i` on side `side`.
    pub fn addr(side: usize, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(
            10,
            99,
            u8::try_from(side).expect("two sides"),
            u8::try_from(i + 1).expect("at most 253 hosts"),
        )
    }

    /// `lobbycast ARGS...` inside host `i` of side `side`.
    pub fn lobbycast(&self, side: usize, i: usize, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host_ns(side, i)])
            .arg(env!("CARGO_BIN_EXE_lobbycast"))
            .args(args);
        cmd
    }
}

impl Drop for RoutedLan {
    fn drop(&mut self) {
        let hosts = (0..2).flat_map(|s| (0..self.sides[s]).map(move |i| (s, i)));
        for ns in hosts
            .map(|(s, i)| self.host_ns(s, i))
            .chain([self.router_ns(), self.bridge_ns()])
        {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}
