//! The screen mode's driver: the runtime on a thread of its own, the terminal set up and
//! always restored, and one loop that hands keys and the runtime's events to the [`Screen`]
//! and draws it.
//!
//! The runtime and the screen share nothing but two channels: [`Command`]s one way, batches
//! of [`OwnedEvent`]s the other. The runtime never waits for the screen (a terminal stopped
//! with Ctrl-S must not stall repairs for the whole lobby), and the screen never touches a
//! socket.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::thread;
use std::time::{Duration, Instant};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream, KeyEventKind,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::screen::{Effect, Screen, ScreenSettings};
use crate::app::{App, AppConfig, AppError, ChannelFrontend, Command, OwnedEvent, StopReason};
use crate::lobby_keys::JoinHow;
use crate::proto::Lobby;
use crate::proto::private::LobbyKey;

/// Shortest time between two frames: a busy lobby (1,000 messages a second) is drawn ~60
/// times a second, not once per message, and a frame is never later than this after the
/// message that made it.
const FRAME: Duration = Duration::from_millis(15);
/// Commands that wait in the screen while the runtime holds input back (flow control).
const MAX_PENDING_COMMANDS: usize = 1024;
/// How long a quit waits for the runtime to flush its history and leave its groups.
const QUIT_GRACE: Duration = Duration::from_secs(5);

/// Why the screen could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScreenError {
    /// The runtime could not start.
    #[error(transparent)]
    Start(AppError),
    /// The runtime stopped with an error.
    #[error("the runtime stopped: {0}")]
    Runtime(AppError),
    /// The terminal.
    #[error("terminal: {0}")]
    Terminal(#[from] io::Error),
    /// A thread could not be started or panicked.
    #[error("{0}")]
    Thread(String),
}

/// Runs the screen until /quit, Ctrl-c, SIGTERM, SIGINT or SIGHUP. The screen is drawn at
/// once while the runtime starts on its own thread (opening sockets, loading history can take
/// a while); if the runtime cannot start, the terminal is given back and the error returned.
/// `started` is when the program started: the time to the first frame is logged from it.
pub fn run(
    cfg: AppConfig,
    settings: ScreenSettings,
    started: Instant,
) -> Result<StopReason, ScreenError> {
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::channel::<Vec<Command>>(64);
    let names: Vec<String> = cfg.lobbies.iter().map(|l| l.lobby.name.clone()).collect();
    let runtime = thread::Builder::new()
        .name("runtime".into())
        .spawn(move || -> Result<StopReason, ScreenError> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ScreenError::Thread(format!("starting the runtime: {e}")))?;
            rt.block_on(async move {
                // On an error the events channel closes with `events_tx`, and the screen
                // stops.
                let app = App::start(cfg).map_err(ScreenError::Start)?;
                let mut frontend = ChannelFrontend::new(events_tx);
                app.run(&mut frontend, cmd_rx)
                    .await
                    .map_err(ScreenError::Runtime)
            })
        })
        .map_err(|e| ScreenError::Thread(format!("starting the runtime thread: {e}")))?;

    let ui = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut screen = Screen::new(settings);
    screen.note(&format!("joining {}", names.join(", ")));
    let guard = TerminalGuard::enter(screen.mouse_capture())?;
    let shown = ui.block_on(ui_loop(screen, events_rx, cmd_tx, started));
    drop(guard);
    let ran = runtime
        .join()
        .unwrap_or_else(|_| Err(ScreenError::Thread("the runtime thread panicked".into())));
    // A runtime that could not start explains why the screen closed better than the screen.
    let reason = ran?;
    shown?;
    Ok(reason)
}

/// The screen's loop: keys, runtime events and frames, until the runtime has stopped.
async fn ui_loop(
    mut screen: Screen,
    mut events: mpsc::UnboundedReceiver<Vec<OwnedEvent>>,
    cmd_tx: mpsc::Sender<Vec<Command>>,
    started: Instant,
) -> io::Result<()> {
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    terminal.clear()?;
    // The runtime stops on these too, once it runs; listening here as well covers its start,
    // when the default action would kill the process with the terminal still in raw mode.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut keys = EventStream::new();
    let mut pending: VecDeque<Command> = VecDeque::new();
    let mut last_frame: Option<Instant> = None;
    let mut quit_at: Option<Instant> = None;
    let mut keys_open = true;
    let mut trimmed = false;
    // Whether the runtime's first events (lobbies joined, their history) are drawn yet.
    let mut ready_drawn = false;
    // The send time of the newest message not drawn yet: how late a frame shows a message
    // (logged at debug level for the benchmark, `cargo bench --bench screen`).
    let mut undrawn_sent_at: Option<u64> = None;
    loop {
        // Draw when something changed and the last frame is old enough; else wake for it.
        let now = Instant::now();
        let frame_due = last_frame.map_or(now, |t| t + FRAME);
        if screen.dirty() && now >= frame_due {
            terminal.draw(|f| screen.render(f))?;
            if last_frame.is_none() {
                tracing::info!(
                    since_start_us = started.elapsed().as_micros() as u64,
                    "first frame"
                );
            }
            if trimmed && !ready_drawn {
                ready_drawn = true;
                tracing::info!(
                    since_start_us = started.elapsed().as_micros() as u64,
                    "lobbies and history drawn"
                );
            }
            if let Some(sent_at) = undrawn_sent_at.take() {
                let lag_ms = crate::app::unix_ms().saturating_sub(sent_at);
                tracing::debug!(target: "lobbycast::frame", lag_ms, "message drawn");
            }
            last_frame = Some(now);
        }
        let draw_at = screen.dirty().then(|| frame_due.max(now));
        let retry_at = (!pending.is_empty()).then(|| now + Duration::from_millis(20));
        let wake = [draw_at, retry_at, quit_at].into_iter().flatten().min();
        tokio::select! {
            batch = events.recv() => match batch {
                Some(batch) => {
                    let now_ms = crate::app::unix_ms();
                    let mut take = |batch: Vec<OwnedEvent>| {
                        for ev in batch {
                            if let OwnedEvent::Message { msg, .. } = &ev {
                                undrawn_sent_at = Some(msg.sent_at);
                            }
                            screen.on_event(ev, now_ms);
                        }
                    };
                    take(batch);
                    // Everything that is there already goes into one frame.
                    while let Ok(batch) = events.try_recv() {
                        take(batch);
                    }
                    screen.end_of_batch();
                    if !trimmed {
                        // The first batch holds the loaded history: the runtime has freed what
                        // it read it with, and the screen keeps only its scrollback. Give the
                        // freed memory back rather than keep the peak resident all day.
                        trimmed = true;
                        give_back_freed_memory();
                    }
                    let effects = screen.take_effects();
                    act(effects, &mut pending, &mut quit_at, &mut terminal)?;
                }
                // The runtime stopped: its history is flushed, its groups left.
                None => break,
            },
            ev = keys.next(), if keys_open => {
                screen.set_clock(crate::app::unix_ms());
                let effects = match ev {
                    Some(Ok(Event::Key(k))) if k.kind != KeyEventKind::Release => screen.on_key(k),
                    Some(Ok(Event::Paste(text))) => screen.on_paste(&text),
                    Some(Ok(Event::Mouse(m))) => screen.on_mouse(m),
                    Some(Ok(Event::Resize(..))) => {
                        // Redrawn at once, whatever the frame pacing says.
                        terminal.autoresize()?;
                        terminal.draw(|f| screen.render(f))?;
                        last_frame = Some(Instant::now());
                        Vec::new()
                    }
                    Some(Ok(_)) => Vec::new(),
                    Some(Err(e)) => return Err(e),
                    None => {
                        // No terminal input any more (the terminal went away): stop.
                        keys_open = false;
                        vec![Effect::Quit]
                    }
                };
                act(effects, &mut pending, &mut quit_at, &mut terminal)?;
            },
            _ = sigterm.recv() => act(vec![Effect::Quit], &mut pending, &mut quit_at, &mut terminal)?,
            _ = sigint.recv() => act(vec![Effect::Quit], &mut pending, &mut quit_at, &mut terminal)?,
            _ = sighup.recv() => act(vec![Effect::Quit], &mut pending, &mut quit_at, &mut terminal)?,
            _ = sleep_until(wake), if wake.is_some() => {
                if quit_at.is_some_and(|t| Instant::now() >= t) {
                    tracing::warn!("the runtime did not stop in time; leaving anyway");
                    break;
                }
            }
        }
        // Commands go to the runtime in order; while it holds input back they wait here.
        while let Some(cmd) = pending.pop_front() {
            match cmd_tx.try_send(vec![cmd]) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(mut v)) => {
                    pending.push_front(v.remove(0));
                    break;
                }
                // The runtime is gone; the events channel tells the loop so.
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
    }
    Ok(())
}

/// Carries out what the screen asked for.
fn act<W: Write>(
    effects: Vec<Effect>,
    pending: &mut VecDeque<Command>,
    quit_at: &mut Option<Instant>,
    terminal: &mut Terminal<CrosstermBackend<W>>,
) -> io::Result<()> {
    for e in effects {
        match e {
            Effect::Command(c) => {
                if pending.len() < MAX_PENDING_COMMANDS {
                    pending.push_back(with_key(c));
                }
            }
            Effect::Quit => {
                pending.push_back(Command::Quit);
                quit_at.get_or_insert(Instant::now() + QUIT_GRACE);
            }
            Effect::Bell => {
                let out = terminal.backend_mut();
                out.write_all(b"\x07")?;
                out.flush()?;
            }
            Effect::SetMouseCapture(on) => {
                let out = terminal.backend_mut();
                if on {
                    execute!(out, EnableMouseCapture)?;
                } else {
                    execute!(out, DisableMouseCapture)?;
                }
            }
        }
    }
    Ok(())
}

/// A `/join NAME --key PASSPHRASE` with its key worked out here, on the screen's thread, as
/// the pipe's input thread does: Argon2id's third of a second would otherwise stall the
/// runtime, and with it every lobby's repairs. Other commands are as they were.
fn with_key(cmd: Command) -> Command {
    let Command::Join {
        name,
        how: JoinHow::Passphrase(p),
    } = cmd
    else {
        return cmd;
    };
    let Ok(named) = Lobby::new(&name) else {
        // The runtime says what is wrong with the name.
        return Command::Join {
            name,
            how: JoinHow::Passphrase(p),
        };
    };
    match LobbyKey::from_passphrase(&p.0, &named) {
        Ok(key) => Command::Join {
            name,
            how: JoinHow::Key(key),
        },
        Err(e) => Command::Invalid {
            error: format!("cannot join {}: {e}", named.name),
        },
    }
}

/// Returns freed heap memory to the system (glibc keeps it otherwise).
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Puts the terminal into the screen's modes and takes them back when dropped, also when
/// the program panics (the hook runs before the unwinding drops the guard, so a panic
/// message lands on a normal terminal).
struct TerminalGuard;

impl TerminalGuard {
    fn enter(mouse: bool) -> io::Result<TerminalGuard> {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            hook(info);
        }));
        enable_raw_mode()?;
        let guard = TerminalGuard;
        let mut out = io::stdout();
        execute!(out, EnterAlternateScreen, EnableBracketedPaste)?;
        if mouse {
            execute!(out, EnableMouseCapture)?;
        }
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Leaves every mode the screen may have entered; each step is harmless if it was not.
fn restore_terminal() {
    let mut out = io::stdout();
    let _ = execute!(
        out,
        DisableMouseCapture,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby_keys::Passphrase;

    #[test]
    fn a_passphrase_join_leaves_the_screen_with_its_key() {
        let join = |how| Command::Join {
            name: "Team".into(),
            how,
        };
        let key = LobbyKey::from_passphrase("correct horse", &Lobby::new("team").unwrap()).unwrap();
        assert_eq!(
            with_key(join(JoinHow::Passphrase(Passphrase(
                "correct horse".into()
            )))),
            join(JoinHow::Key(key))
        );
        // Nothing else changes; a bad name is the runtime's to report.
        assert_eq!(with_key(join(JoinHow::Private)), join(JoinHow::Private));
        let bad = Command::Join {
            name: "".into(),
            how: JoinHow::Passphrase(Passphrase("x".into())),
        };
        assert_eq!(with_key(bad.clone()), bad);
        assert_eq!(with_key(Command::Status), Command::Status);
    }
}
