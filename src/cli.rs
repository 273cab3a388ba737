//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use lobbycast::net::Family;
use lobbycast::proto::ids::DEFAULT_PORT;

/// Serverless chat for a LAN: each lobby is an IP multicast group, made reliable with
/// SRM-style repair.
///
/// Pipe mode (--pipe LOBBY): each line of standard input is sent to the lobby, and every
/// message from another node is printed to standard output as one JSON object per line.
/// Relay mode (--relay LOBBY...): headless, it bridges its multicast segment and its friends
/// and serves repairs, logging to standard error. Logs go to standard error (RUST_LOG sets the
/// level).
#[derive(Debug, Parser)]
#[command(name = "lobbycast", version, about, long_about)]
pub struct Cli {
    /// Pipe mode: send stdin lines to LOBBY, print deliveries as JSON lines on stdout.
    #[arg(long, value_name = "LOBBY", conflicts_with = "relay")]
    pub pipe: Option<String>,

    /// Relay mode: join every LOBBY and bridge the multicast segment and the friends in both
    /// directions, headless, until SIGTERM; counters are logged every minute and on SIGUSR1.
    #[arg(long, value_name = "LOBBY", num_args = 1..)]
    pub relay: Vec<String>,

    /// Nick shown to others [default: $USER, else "anonymous"].
    #[arg(long, value_name = "NAME")]
    pub nick: Option<String>,

    /// UDP port of the lobby's multicast group.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Network interface, by name or by one of its addresses [default: the interface of the
    /// default route, which must have the MULTICAST flag].
    #[arg(long, value_name = "NAME|ADDR")]
    pub iface: Option<String>,

    /// IP version: auto (IPv4 if the interface has an IPv4 address, else IPv6), ipv4, ipv6,
    /// or both.
    #[arg(long, value_name = "FAMILY", default_value_t = Family::Auto)]
    pub family: Family,

    /// Data directory: peer id, per-lobby history and sequence leases
    /// [default: $XDG_DATA_HOME/lobbycast, else ~/.local/share/lobbycast].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address and port of the node's unicast socket, which it sends from
    /// [default: the interface's address, ephemeral port].
    #[arg(long, value_name = "ADDR:PORT")]
    pub bind: Option<SocketAddr>,

    /// After standard input ends, keep running this many seconds (answering repair
    /// requests), then exit 0 [default: until SIGINT or SIGTERM].
    #[arg(long, value_name = "SECS")]
    pub linger: Option<f64>,

    /// Multicast TTL (IPv4) or hop limit (IPv6); 1 keeps lobbies on the local segment.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=255))]
    pub ttl: u32,

    /// Messages per lobby loaded from history at start: shown again and served to late
    /// joiners.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub history: usize,

    /// Most datagrams sent per second (0: no limit). Input waits rather than flooding
    /// receivers faster than they can take it.
    #[arg(long, value_name = "N", default_value_t = 40_000)]
    pub max_rate: u32,

    /// A friend's unicast address (its --bind): lobby traffic also flows to and from it by
    /// unicast where multicast does not reach. Repeatable; friendship must be configured on
    /// both sides.
    #[arg(long = "friend", value_name = "ADDR:PORT")]
    pub friends: Vec<SocketAddr>,

    /// Use no multicast at all: join no group and reach the lobby through friends only.
    #[arg(long)]
    pub no_multicast: bool,

    /// Do not name the lobbies to friends. A friend in the same lobby finds this node through
    /// the challenge, once each has seen the other's messages (on the segment, or through
    /// other friends); a friend outside it learns nothing.
    #[arg(long)]
    pub unlisted: bool,
}
