//! The `lobbycast` program: argument parsing, logging and the exit status around the runtime.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use lobbycast::app::{App, AppConfig};
use lobbycast::pipe::{PipeFrontend, spawn_reader};
use lobbycast::proto::{Config, Lobby, node::check_nick};
use lobbycast::relay::RelayFrontend;
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;

use cli::Cli;

/// Exit status for bad arguments, as clap uses.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let relay = !cli.relay.is_empty();
    let lobbies = match (&cli.pipe, relay) {
        (Some(lobby), _) => vec![lobby.clone()],
        (None, true) => cli.relay.clone(),
        (None, false) => {
            eprintln!(
                "lobbycast: the terminal interface is not built yet; run `lobbycast --pipe \
                 LOBBY` or `lobbycast --relay LOBBY...` (see `lobbycast --help`)"
            );
            return ExitCode::from(USAGE);
        }
    };
    let cfg = match config(&cli, &lobbies, relay) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lobbycast: {e:#}");
            return ExitCode::from(USAGE);
        }
    };
    let ran = if relay { run_relay(cfg) } else { run_pipe(cfg) };
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lobbycast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How often a relay logs its counters.
const RELAY_REPORT: Duration = Duration::from_secs(60);

/// Checks the arguments and fills in the defaults.
fn config(cli: &Cli, names: &[String], relay: bool) -> Result<AppConfig> {
    let mut lobbies: Vec<Lobby> = Vec::new();
    for name in names {
        let lobby = Lobby::new(name).with_context(|| format!("bad lobby name {name:?}"))?;
        if lobbies.iter().any(|l| l.id == lobby.id) {
            bail!("lobby {name:?} is named twice");
        }
        lobbies.push(lobby);
    }
    let nick = match &cli.nick {
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
    let data_dir = match &cli.data_dir {
        Some(d) => d.clone(),
        None => lobbycast::identity::default_data_dir()?,
    };
    Ok(AppConfig {
        lobbies,
        nick,
        port: cli.port,
        iface: cli.iface.clone(),
        family: cli.family,
        bind: cli.bind,
        ttl: cli.ttl,
        data_dir,
        history: cli.history,
        linger,
        max_rate: cli.max_rate,
        friends: cli.friends.clone(),
        multicast: !cli.no_multicast,
        report_every: relay.then_some(RELAY_REPORT),
        status_every: None,
        unlisted: cli.unlisted,
        core: Config::default(),
    })
}

fn run_pipe(cfg: AppConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let lobby = cfg.lobbies[0].id;
        let app = App::start(cfg)?;
        let (tx, rx) = mpsc::channel(16);
        spawn_reader(std::io::stdin(), lobby, tx).context("starting the input thread")?;
        let mut out = PipeFrontend::new(std::io::stdout().lock());
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
