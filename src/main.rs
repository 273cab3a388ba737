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
    let Some(lobby) = cli.pipe.clone() else {
        eprintln!(
            "lobbycast: the terminal interface is not built yet; run `lobbycast --pipe LOBBY` \
             (see `lobbycast --help`)"
        );
        return ExitCode::from(USAGE);
    };
    if cli.relay {
        eprintln!("lobbycast: --relay is not built yet");
        return ExitCode::from(USAGE);
    }
    let cfg = match config(&cli, &lobby) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lobbycast: {e:#}");
            return ExitCode::from(USAGE);
        }
    };
    match run_pipe(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lobbycast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Checks the arguments and fills in the defaults.
fn config(cli: &Cli, lobby: &str) -> Result<AppConfig> {
    let lobby = Lobby::new(lobby).with_context(|| format!("bad lobby name {lobby:?}"))?;
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
        lobbies: vec![lobby],
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
