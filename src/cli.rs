//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use clap_complete::Shell;
use lobbycast::lobby_keys::Passphrase;
use lobbycast::net::Family;

/// Serverless chat for a LAN: each lobby is an IP multicast group, made reliable with
/// SRM-style repair.
///
/// Screen mode (the default, `lobbycast [LOBBY...]`): a full-screen terminal client in the
/// LOBBYs given, else in the config file's `lobbies`, else in "general".
/// Pipe mode (--pipe LOBBY): each line of standard input is sent to the lobby, and every
/// message from another node is printed to standard output as one JSON object per line.
/// Relay mode (--relay LOBBY...): headless, it bridges its multicast segment and its friends
/// and serves repairs, logging to standard error. Logs go to standard error (RUST_LOG sets the
/// level). Settings not given as flags come from the config file (see lobbycast.conf(5)).
//
// Flags that the config file may also set are `Option`s without a clap default: a clap
// default would be indistinguishable from a flag given on the command line, and would hide
// the file's value. The defaults are applied after the merge (src/main.rs) and shown in the
// help text by hand; a test checks that the text matches the constants.
#[derive(Debug, Parser)]
#[command(name = "lobbycast", version, about, long_about)]
pub struct Cli {
    /// Screen mode: lobbies to join [default: the config file's `lobbies`, else general].
    #[arg(value_name = "LOBBY", conflicts_with_all = ["pipe", "relay"])]
    pub lobbies: Vec<String>,

    /// Pipe mode: send stdin lines to LOBBY, print deliveries as JSON lines on stdout.
    #[arg(long, value_name = "LOBBY", conflicts_with = "relay")]
    pub pipe: Option<String>,

    /// Relay mode: join every LOBBY and bridge the multicast segment and the friends in both
    /// directions, headless, until SIGTERM; counters are logged every minute and on SIGUSR1.
    #[arg(long, value_name = "LOBBY", num_args = 1..)]
    pub relay: Vec<String>,

    /// The lobbies named here (LOBBY..., --pipe, --relay) are private: each has a random
    /// 256-bit key, kept in DATA/lobby-keys and used again on the next start; the multicast
    /// group and the lobby id are derived from it, so the name is never on the wire, and the
    /// lobby is not advertised.
    #[arg(long, conflicts_with = "key")]
    pub private: bool,

    /// The lobbies named here are private, keyed by PASSPHRASE (Argon2id salted with the
    /// lobby's name): whoever types the same name and passphrase is in the same lobby. Also
    /// read from LOBBYCAST_KEY, which other local users cannot see, unlike the command line.
    #[arg(
        long,
        value_name = "PASSPHRASE",
        env = "LOBBYCAST_KEY",
        hide_env_values = true,
        value_parser = passphrase
    )]
    pub key: Option<Passphrase>,

    /// Nick shown to others [default: $USER, else "anonymous"].
    #[arg(long, value_name = "NAME")]
    pub nick: Option<String>,

    /// UDP port of the lobby's multicast group [default: 47110].
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Network interface, by name or by one of its addresses [default: the interface of the
    /// default route, which must have the MULTICAST flag].
    #[arg(long, value_name = "NAME|ADDR")]
    pub iface: Option<String>,

    /// IP version: auto (IPv4 if the interface has an IPv4 address, else IPv6), ipv4, ipv6,
    /// or both [default: auto].
    #[arg(long, value_name = "FAMILY")]
    pub family: Option<Family>,

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

    /// Multicast TTL (IPv4) or hop limit (IPv6); 1 keeps lobbies on the local segment
    /// [default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=255))]
    pub ttl: Option<u32>,

    /// Messages per lobby loaded from history at start: shown again and served to late
    /// joiners [default: 1000].
    #[arg(long, value_name = "N")]
    pub history: Option<usize>,

    /// Most datagrams sent per second (0: no limit). Input waits rather than flooding
    /// receivers faster than they can take it [default: 40000].
    #[arg(long, value_name = "N")]
    pub max_rate: Option<u32>,

    /// A friend's unicast address (its --bind): lobby traffic also flows to and from it by
    /// unicast where multicast does not reach. Repeatable; friendship must be configured on
    /// both sides. Any --friend replaces the config file's `friends`.
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

    /// Read settings from FILE instead of the default config file
    /// [default: $XDG_CONFIG_HOME/lobbycast/config.toml, else ~/.config/lobbycast/config.toml;
    /// a missing default file is no error, a missing FILE is].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell) to standard
    /// output and exit.
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<Shell>,
}

/// `--key`: any passphrase but an empty one, kept as typed (spaces count). Its `Debug` hides
/// it, so printing the arguments never shows it.
fn passphrase(s: &str) -> Result<Passphrase, String> {
    if s.is_empty() {
        return Err("the passphrase is empty".into());
    }
    Ok(Passphrase(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use lobbycast::config_file::{DEFAULT_HISTORY, DEFAULT_MAX_RATE, DEFAULT_TTL};
    use lobbycast::proto::ids::DEFAULT_PORT;

    use super::*;

    /// The defaults written in the help text are the ones the program applies.
    #[test]
    fn help_shows_the_real_defaults() {
        let help = Cli::command().render_long_help().to_string();
        for (flag, default) in [
            ("--port", DEFAULT_PORT.to_string()),
            ("--ttl", DEFAULT_TTL.to_string()),
            ("--history", DEFAULT_HISTORY.to_string()),
            ("--max-rate", DEFAULT_MAX_RATE.to_string()),
            ("--family", Family::default().to_string()),
        ] {
            let at = help.find(&format!("{flag} <")).expect(flag);
            let next = help[at + 2..]
                .find("\n  --")
                .map_or(help.len(), |i| at + 2 + i);
            assert!(
                help[at..next].contains(&format!("[default: {default}]")),
                "{flag}: {}",
                &help[at..next]
            );
        }
    }

    #[test]
    fn private_and_key_conflict_and_an_empty_passphrase_is_refused() {
        let parse = |args: &[&str]| Cli::try_parse_from(["lobbycast"].iter().chain(args));
        let cli = parse(&["--pipe", "team", "--key", " two  words "]).unwrap();
        assert_eq!(cli.key, Some(Passphrase(" two  words ".into())));
        assert!(parse(&["--pipe", "team", "--private"]).unwrap().private);
        let e = parse(&["--pipe", "team", "--private", "--key", "x"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        let e = parse(&["--pipe", "team", "--key", ""]).unwrap_err();
        assert!(e.to_string().contains("the passphrase is empty"), "{e}");
        assert!(!format!("{cli:?}").contains("two"));
    }

    #[test]
    fn the_arguments_are_consistent() {
        Cli::command().debug_assert();
    }
}
