//! The `lobbycast` program: argument parsing, logging and the exit status around the runtime.

mod cli;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser};
use lobbycast::app::{App, AppConfig, StartLobby};
use lobbycast::config_file::{
    self, DEFAULT_HISTORY, DEFAULT_LOBBY, DEFAULT_MAX_RATE, DEFAULT_TTL, FileConfig, ScreenConfig,
};
use lobbycast::lobby_keys::{JoinHow, LobbyKeys};
use lobbycast::pipe::{PipeFrontend, spawn_reader};
use lobbycast::proto::ids::DEFAULT_PORT;
use lobbycast::proto::{Config, Lobby, node::check_nick};
use lobbycast::relay::RelayFrontend;
use lobbycast::tui::{BellSettings, ScreenSettings};
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;

use cli::Cli;

/// Exit status for bad arguments, as clap uses; also for a bad config file.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = Cli::parse();
    if let Some(shell) = cli.completions {
        return completions(shell);
    }
    // The config file is read and checked in every mode, before anything starts, so that a
    // mistake in it is reported at once and never half-applied.
    let settings = match read_config(&cli).and_then(|file| settings(&cli, file)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lobbycast: {e:#}");
            return ExitCode::from(USAGE);
        }
    };
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Kept to the end of main: dropping it flushes the screen's log file.
    let mut log_guard = None;
    if settings.mode == Mode::Screen {
        if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
            eprintln!(
                "lobbycast: the chat screen needs a terminal; for scripts use `lobbycast --pipe \
                 LOBBY` (see `lobbycast --help`)"
            );
            return ExitCode::from(USAGE);
        }
        // The screen owns the terminal: logs go to a file in the data directory, never onto
        // the screen.
        let dir = &settings.app.data_dir;
        let log = lobbycast::identity::create_private_dir(dir).and_then(|()| {
            tracing_appender::rolling::RollingFileAppender::builder()
                .filename_prefix(LOG_FILE)
                .build(dir)
                .map_err(std::io::Error::other)
        });
        match log {
            Ok(file) => {
                // Writes happen on a thread of their own: a slow disk never holds up a frame.
                let (writer, guard) = tracing_appender::non_blocking(file);
                log_guard = Some(guard);
                tracing_subscriber::fmt()
                    .with_env_filter(filter())
                    .with_writer(writer)
                    .with_ansi(false)
                    .init()
            }
            Err(e) => {
                eprintln!(
                    "lobbycast: cannot open the log file {}: {e}",
                    dir.join(LOG_FILE).display()
                );
                return ExitCode::FAILURE;
            }
        }
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    }
    // After the logs are set up: storing a new key says so. The screen does it here too, not on
    // its runtime thread: a passphrase's Argon2id takes a third of a second before the screen
    // shows, once.
    let mut settings = settings;
    if let Err(e) = resolve_keys(&mut settings) {
        eprintln!("lobbycast: {e:#}");
        return ExitCode::FAILURE;
    }
    let ran = match settings.mode {
        Mode::Screen => run_screen(settings.app, settings.screen, started),
        Mode::Pipe => run_pipe(settings.app),
        Mode::Relay => run_relay(settings.app),
    };
    drop(log_guard);
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lobbycast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--completions SHELL`: the script goes to stdout. It is rendered into memory first because
/// clap_complete panics when its writer fails (e.g. `| head`), and a closed stdout is no
/// reason for a backtrace.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "lobbycast", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lobbycast: writing the completion script: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The screen's log file, in the data directory.
const LOG_FILE: &str = "lobbycast.log";

/// The full-screen terminal client, joined to `app.lobbies`, looking and behaving as
/// `screen` says.
fn run_screen(mut app: AppConfig, screen: ScreenConfig, started: Instant) -> Result<()> {
    // The screen keeps `scrollback` lines per lobby: older history would be dropped anyway.
    app.history_shown = Some(screen.scrollback);
    let settings = ScreenSettings {
        nick: app.nick.clone(),
        highlights: screen.highlights,
        bell: BellSettings {
            highlight: screen.bell_on_highlight,
            direct: screen.bell_on_direct,
        },
        timestamp_format: screen.timestamp_format,
        time_zone: jiff::tz::TimeZone::system(),
        scrollback: screen.scrollback,
        paste_confirm_lines: screen.paste_confirm_lines,
        colours: screen.colours,
        mouse: screen.mouse,
    };
    let reason = lobbycast::tui::run::run(app, settings, started)?;
    tracing::info!(?reason, "screen closed");
    Ok(())
}

/// How often a relay logs its counters.
const RELAY_REPORT: Duration = Duration::from_secs(60);

/// How often the runtime tells the screen the transport state (its status bar: peers, friends
/// up, packets being repaired).
const SCREEN_STATUS: Duration = Duration::from_secs(1);

/// Which frontend runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The full-screen terminal client (no --pipe, no --relay).
    Screen,
    /// `--pipe LOBBY`.
    Pipe,
    /// `--relay LOBBY...`.
    Relay,
}

/// Everything the program runs with: the command line merged over the config file, with the
/// defaults filled in. This is what the screen receives: `app` for the runtime
/// ([`App::start`]) and `screen`, the file's `[screen]` table, for the terminal client itself.
#[derive(Debug)]
struct Settings {
    /// Which frontend runs.
    mode: Mode,
    /// The runtime's configuration: lobbies to join at start, nick, transport, data dir.
    app: AppConfig,
    /// How the screen looks and behaves, from the config file's `[screen]` table, with
    /// `colours` turned off when `NO_COLOR` is set.
    screen: ScreenConfig,
    /// How the lobbies named on the command line are joined (`--private`, `--key`): the
    /// lobbies in `app` are public until [`resolve_keys`] makes them private.
    join: JoinHow,
}

/// Makes the lobbies to join at start private as `settings.join` says: the stored or a new
/// key (`--private`), or the passphrase's (`--key`).
fn resolve_keys(settings: &mut Settings) -> Result<()> {
    if !settings.join.is_private() {
        return Ok(());
    }
    let keys = LobbyKeys::new(&settings.app.data_dir);
    for start in &mut settings.app.lobbies {
        let named = start.lobby.clone();
        let key = settings
            .join
            .key(&named, &keys)
            .with_context(|| format!("private lobby {}", named.name))?
            .expect("a private way of joining gives a key");
        *start = StartLobby::private(&named, key);
    }
    Ok(())
}

/// The config file: `--config FILE` (which must exist), else the default path (which may
/// not).
fn read_config(cli: &Cli) -> Result<FileConfig> {
    let file = match &cli.config {
        Some(path) => config_file::load(path),
        None => config_file::load_default(),
    };
    file.context("config file")
}

/// Checks the arguments, merges them over the config file (a flag given wins) and fills in
/// the defaults.
fn settings(cli: &Cli, file: FileConfig) -> Result<Settings> {
    let (mode, names) = match (&cli.pipe, cli.relay.is_empty()) {
        (Some(lobby), _) => (Mode::Pipe, vec![lobby.clone()]),
        (None, false) => (Mode::Relay, cli.relay.clone()),
        (None, true) if !cli.lobbies.is_empty() => (Mode::Screen, cli.lobbies.clone()),
        (None, true) => (
            Mode::Screen,
            file.lobbies
                .clone()
                .unwrap_or_else(|| vec![DEFAULT_LOBBY.to_owned()]),
        ),
    };
    let join = match (cli.private, &cli.key) {
        (true, _) => JoinHow::Private,
        (false, Some(p)) => JoinHow::Passphrase(p.clone()),
        (false, None) => JoinHow::Public,
    };
    if join.is_private() && mode == Mode::Screen && cli.lobbies.is_empty() {
        bail!(
            "--private and --key (or LOBBYCAST_KEY) apply to the lobbies named on the command \
             line: name them (lobbycast --private LOBBY...)"
        );
    }
    let mut lobbies: Vec<StartLobby> = Vec::new();
    for name in &names {
        let lobby = Lobby::new(name).with_context(|| format!("bad lobby name {name:?}"))?;
        // By name, not id: a private lobby's id comes from its key, and one name is one lobby.
        if lobbies.iter().any(|l| l.lobby.name == lobby.name) {
            bail!("lobby {name:?} is named twice");
        }
        lobbies.push(StartLobby::public(lobby));
    }
    let nick = match cli.nick.as_ref().or(file.nick.as_ref()) {
        Some(n) => n.clone(),
        None => std::env::var("USER")
            .ok()
            .filter(|u| check_nick(u).is_ok())
            .unwrap_or_else(|| "anonymous".to_owned()),
    };
    let nick = check_nick(&nick).with_context(|| format!("bad nick {nick:?}"))?;
    let linger = match cli.linger {
        None => None,
        Some(s) if (0.0..1e9).contains(&s) => Some(Duration::from_secs_f64(s)),
        Some(s) => bail!("--linger {s}: expected a number of seconds"),
    };
    let data_dir: PathBuf = match cli.data_dir.as_ref().or(file.data_dir.as_ref()) {
        Some(d) => d.clone(),
        None => lobbycast::identity::default_data_dir()?,
    };
    // A list on the command line replaces the file's rather than adding to it, like every
    // other flag: `--friend` is how to try a different set without editing the file.
    let friends = if cli.friends.is_empty() {
        file.friends.clone().unwrap_or_default()
    } else {
        cli.friends.clone()
    };
    let mut screen = file.screen;
    // https://no-color.org: set and not empty means no colours, whatever the file says.
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        screen.colours = false;
    }
    let app = AppConfig {
        lobbies,
        nick,
        port: cli.port.or(file.port).unwrap_or(DEFAULT_PORT),
        iface: cli.iface.clone().or(file.interface),
        family: cli.family.or(file.family).unwrap_or_default(),
        bind: cli.bind.or(file.bind),
        ttl: cli.ttl.or(file.ttl).unwrap_or(DEFAULT_TTL),
        data_dir,
        history: cli.history.or(file.history).unwrap_or(DEFAULT_HISTORY),
        history_shown: None,
        linger,
        max_rate: cli.max_rate.or(file.max_rate).unwrap_or(DEFAULT_MAX_RATE),
        friends,
        // These flags can only turn the setting on: the file's `true` stays unless edited.
        multicast: !(cli.no_multicast || file.no_multicast == Some(true)),
        report_every: (mode == Mode::Relay).then_some(RELAY_REPORT),
        status_every: (mode == Mode::Screen).then_some(SCREEN_STATUS),
        unlisted: cli.unlisted || file.unlisted == Some(true),
        core: Config::default(),
    };
    Ok(Settings {
        mode,
        app,
        screen,
        join,
    })
}

fn run_pipe(cfg: AppConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let lobby = cfg.lobbies[0].lobby.clone();
        let keys = LobbyKeys::new(&cfg.data_dir);
        let app = App::start(cfg)?;
        let (tx, rx) = mpsc::channel(16);
        let mut out = PipeFrontend::new(std::io::stdout().lock());
        spawn_reader(std::io::stdin(), lobby, keys, out.invited(), tx)
            .context("starting the input thread")?;
        let reason = app.run(&mut out, rx).await?;
        tracing::debug!(?reason, "stopped");
        Ok(())
    })
}

fn run_relay(cfg: AppConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let app = App::start(cfg)?;
        // No input: the channel is closed at once, and the relay runs until a signal.
        let (_, rx) = mpsc::channel(1);
        let mut out = RelayFrontend;
        let reason = app.run(&mut out, rx).await?;
        tracing::info!(?reason, "relay stopped");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn merged(args: &[&str], file: &str) -> Settings {
        let cli = Cli::try_parse_from(
            [
                "lobbycast",
                "--data-dir",
                "/tmp/lobbycast-test",
                "--nick",
                "me",
            ]
            .iter()
            .chain(args),
        )
        .unwrap();
        let file = config_file::parse(file, Path::new("config.toml")).unwrap();
        settings(&cli, file).unwrap()
    }

    #[test]
    fn defaults_apply_when_neither_flag_nor_file_sets_a_value() {
        let s = merged(&["--pipe", "x"], "");
        assert_eq!(s.mode, Mode::Pipe);
        assert_eq!(s.app.port, DEFAULT_PORT);
        assert_eq!(s.app.ttl, DEFAULT_TTL);
        assert_eq!(s.app.history, DEFAULT_HISTORY);
        assert_eq!(s.app.max_rate, DEFAULT_MAX_RATE);
        assert!(s.app.multicast && !s.app.unlisted && s.app.friends.is_empty());
        assert_eq!(
            s.screen.paste_confirm_lines,
            ScreenConfig::default().paste_confirm_lines
        );
    }

    #[test]
    fn the_file_fills_in_and_flags_win() {
        let file = "port = 5000\nttl = 3\nhistory = 7\nmax_rate = 9\ninterface = \"eth9\"\n\
                    friends = [\"192.0.2.1:1\"]\nunlisted = true\nnick = \"filenick\"\n\
                    [screen]\nmouse = true\n";
        let s = merged(&["--pipe", "x"], file);
        assert_eq!(
            (s.app.port, s.app.ttl, s.app.history, s.app.max_rate),
            (5000, 3, 7, 9)
        );
        assert_eq!(s.app.iface.as_deref(), Some("eth9"));
        assert_eq!(s.app.friends, ["192.0.2.1:1".parse().unwrap()]);
        assert!(s.app.unlisted);
        assert_eq!(s.app.nick, "me", "--nick wins");
        assert!(s.screen.mouse);
        let s = merged(
            &[
                "--pipe",
                "x",
                "--port",
                "6000",
                "--ttl",
                "4",
                "--friend",
                "192.0.2.2:2",
            ],
            file,
        );
        assert_eq!((s.app.port, s.app.ttl), (6000, 4));
        assert_eq!(s.app.friends, ["192.0.2.2:2".parse().unwrap()]);
    }

    #[test]
    fn screen_lobbies_come_from_the_arguments_else_the_file_else_general() {
        let names = |s: &Settings| {
            s.app
                .lobbies
                .iter()
                .map(|l| l.lobby.name.clone())
                .collect::<Vec<_>>()
        };
        let s = merged(&[], "");
        assert_eq!(
            (s.mode, names(&s)),
            (Mode::Screen, vec![DEFAULT_LOBBY.to_owned()])
        );
        assert!(s.app.status_every.is_some());
        let s = merged(&[], "lobbies = [\"a\", \"b\"]");
        assert_eq!(names(&s), ["a", "b"]);
        let s = merged(&["c"], "lobbies = [\"a\", \"b\"]");
        assert_eq!(names(&s), ["c"]);
        let s = merged(&["--relay", "r1", "r2"], "lobbies = [\"a\"]");
        assert_eq!(
            (s.mode, names(&s)),
            (Mode::Relay, vec!["r1".to_owned(), "r2".to_owned()])
        );
    }

    #[test]
    fn private_lobbies_are_named_on_the_command_line() {
        let cli = |args: &[&str]| {
            Cli::try_parse_from(
                ["lobbycast", "--data-dir", "/nonexistent"]
                    .iter()
                    .chain(args),
            )
            .unwrap()
        };
        let file = || FileConfig::default();
        let e = settings(&cli(&["--private"]), file()).unwrap_err();
        assert!(e.to_string().contains("name them"), "{e}");
        let s = settings(&cli(&["--relay", "a", "b", "--private"]), file()).unwrap();
        assert_eq!(s.join, JoinHow::Private);
        let s = settings(&cli(&["x", "--key", "pass word"]), file()).unwrap();
        assert!(matches!(s.join, JoinHow::Passphrase(_)));
        assert!(settings(&cli(&["--relay", "a", "A", "--private"]), file()).is_err());
    }

    #[test]
    fn positional_lobbies_do_not_mix_with_pipe_or_relay() {
        assert!(Cli::try_parse_from(["lobbycast", "--pipe", "x", "y"]).is_err());
    }
}
