//! The runtime: one event loop that owns the protocol core, the sockets, the clock, the
//! history and the sequence leases, and turns everything the core says into one stream of
//! [`AppEvent`]s for a [`Frontend`] (the pipe today; a relay and a terminal screen later).
//!
//! The loop wakes only for a datagram, a line of input, the core's next deadline, a history
//! fsync, a signal or the linger deadline, so an idle node uses no CPU.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::direct_history::{DirectLog, DirectRecord, DirectState};
use crate::history::{History, HistoryError, SYNC_INTERVAL};
use crate::identity::{DataDir, DataDirError, random_u64};
use crate::known_peers::{self, Dirty, KnownPeers};
use crate::lease::SeqLease;
use crate::lobby_keys::LobbyKeys;
use crate::net::unicast::SendOptions;
use crate::net::{Family, GroupSocket, Iface, IfaceError, UnicastSocket};
use crate::proto::fragment::piece_count;
use crate::proto::private::LobbyKey;
use crate::proto::{
    Config, DISCOVERY_IPV4, DISCOVERY_IPV6, Dest, Event, Invitation, Lobby, LobbyId, Message,
    MsgId, NickError, Node, Path, PeerId, SendError,
};

mod event;
mod invitations;
mod resolve;
mod whois;

pub use event::{
    Addressee, AppEvent, ChannelFrontend, Command, Frontend, LobbyStatus, OwnedEvent, Status,
};
pub use invitations::{MAX_WAITING as MAX_WAITING_INVITATIONS, Which};
use invitations::{Outstanding, Sent, Waiting};
pub use resolve::{ResolveError, direct_addressee, resolve_nick};
pub use whois::WHOIS_WAIT;

/// Direct messages of a conversation given to the frontend when it is shown.
pub const DIRECT_SHOWN: usize = 200;
/// Conversation history files kept open at once; the least needed is closed beyond that.
const MAX_OPEN_DIRECT_LOGS: usize = 32;

/// A lobby to join at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartLobby {
    /// The lobby: for a private one, [`LobbyKey::lobby`] of it (the name as typed, the id
    /// derived from the key).
    pub lobby: Lobby,
    /// The key of a private lobby; `None` for a public one.
    pub key: Option<LobbyKey>,
}

impl StartLobby {
    /// A public lobby.
    pub fn public(lobby: Lobby) -> StartLobby {
        StartLobby { lobby, key: None }
    }

    /// The private lobby of `named` under `key`.
    pub fn private(named: &Lobby, key: LobbyKey) -> StartLobby {
        StartLobby {
            lobby: key.lobby(named),
            key: Some(key),
        }
    }
}

/// Everything the runtime needs to start.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// Lobbies joined at start; their names are distinct.
    pub lobbies: Vec<StartLobby>,
    /// Nick shown to others.
    pub nick: String,
    /// UDP port of the lobbies' groups.
    pub port: u16,
    /// `--iface`: interface name or address; `None` for the default route's interface.
    pub iface: Option<String>,
    /// IP versions to use.
    pub family: Family,
    /// `--bind`: address and port of the unicast socket.
    pub bind: Option<SocketAddr>,
    /// Multicast TTL / hop limit.
    pub ttl: u32,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Messages per lobby loaded from history at start.
    pub history: usize,
    /// Of those, how many per lobby the frontend is given as [`AppEvent::History`] (the
    /// newest); `None` for all. A screen that keeps 10,000 lines needs no more, and the
    /// core still remembers every loaded message (dedup, repair).
    pub history_shown: Option<usize>,
    /// After input ends, run this long, then stop; `None`: until a signal.
    pub linger: Option<Duration>,
    /// Most datagrams sent per second (0: no limit). SRM has no flow control: a source that
    /// sends faster than its receivers drain their sockets loses packets faster than repairs
    /// can fill them. The pacing holds back input instead, so a fast writer is slowed down
    /// rather than its messages lost.
    pub max_rate: u32,
    /// `--friend`: unicast addresses of friends (PROTOCOL.md 7.1).
    pub friends: Vec<SocketAddr>,
    /// False with `--no-multicast`: no group is joined, everything goes to friends.
    pub multicast: bool,
    /// Report the counters this often (the relay), besides at exit and on SIGUSR1.
    pub report_every: Option<Duration>,
    /// Report the transport state this often (the screen's status bar), besides on
    /// [`Command::Status`].
    pub status_every: Option<Duration>,
    /// `--unlisted`: the lobbies are not named to friends; friends in them find this node
    /// through the challenge (PROTOCOL.md 7.7).
    pub unlisted: bool,
    /// The protocol core's parameters.
    pub core: Config,
}

/// Why the runtime could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The data directory.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The interface.
    #[error(transparent)]
    Iface(#[from] IfaceError),
    /// The nick.
    #[error("bad nick: {0}")]
    Nick(#[from] NickError),
    /// A history file.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// A sequence lease.
    #[error("sequence lease {path}: {source}")]
    Lease {
        /// The lease file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// A socket.
    #[error("{what}: {source}")]
    Socket {
        /// Which socket and what was done with it.
        what: String,
        /// What failed.
        source: io::Error,
    },
    /// The frontend's output failed (e.g. stdout closed).
    #[error("output: {0}")]
    Output(io::Error),
    /// The operating system's random generator failed.
    #[error("random numbers: {0}")]
    Random(String),
    /// A friend could not be added.
    #[error("friend {addr}: {why}")]
    Friend {
        /// The friend's address.
        addr: SocketAddr,
        /// Why.
        why: String,
    },
}

/// Why the runtime stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT, SIGTERM or SIGHUP.
    Signal,
    /// The linger time after the end of input ran out.
    Linger,
    /// The frontend's output was closed.
    OutputClosed,
    /// The frontend asked to stop ([`Command::Quit`]).
    Quit,
}

struct Joined {
    lobby: Lobby,
    /// The lobby's groups and port: where its datagrams go.
    targets: Vec<SocketAddr>,
    /// The sockets that joined them.
    groups: Vec<GroupSocket>,
    history: History,
    lease: SeqLease,
    /// A private lobby: never listed, its packets sealed under its key.
    private: bool,
}

struct Unicast {
    v6: bool,
    sock: UnicastSocket,
}

/// A token bucket over outgoing datagrams.
#[derive(Debug)]
struct Pacer {
    /// Datagrams per second; 0 for no limit.
    rate: f64,
    tokens: f64,
    last: Instant,
}

/// Datagrams that may leave back to back: a few packed input batches.
const PACER_BURST: f64 = 64.0;

impl Pacer {
    fn new(rate: u32, now: Instant) -> Self {
        Pacer {
            rate: f64::from(rate),
            tokens: PACER_BURST,
            last: now,
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(PACER_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token is there.
    fn ready_at(&self) -> Instant {
        let missing = (1.0 - self.tokens).max(0.0);
        self.last + Duration::from_secs_f64(missing / self.rate.max(1.0))
    }
}

/// A datagram waiting for its turn (pacing) or for send buffer room.
struct Queued {
    unicast: usize,
    to: SocketAddr,
    payload: Vec<u8>,
}

/// Datagrams taken from one socket before the core's output is drained, so that one busy
/// socket cannot hold up timers and the others.
const RECV_BATCH: usize = 256;
/// Batches taken from one socket per wakeup: a flood must not keep the loop from the core's
/// timers (requests, repairs, sessions), which run between wakeups.
const RECV_BATCHES_PER_WAKEUP: usize = 4;
/// Lines of input taken per wakeup: enough for the core to pack full datagrams.
const INPUT_BATCH: usize = 2048;
/// Most datagrams queued for send buffer room before the oldest are dropped (SRM repairs
/// what is dropped).
const MAX_QUEUED: usize = 8192;
/// How often the core's wall clock is re-anchored, in case the system clock was set.
const WALL_CLOCK_EVERY: Duration = Duration::from_secs(10);
/// Largest datagram read (the core sends at most 1200 bytes; more is foreign).
const RECV_BUF: usize = 65536;

/// The runtime: started with [`App::start`], run with [`App::run`].
pub struct App {
    node: Node,
    data_dir: DataDir,
    unicast: Vec<Unicast>,
    lobbies: Vec<Joined>,
    /// The sockets that joined the discovery group of each family (PROTOCOL.md 7.12); empty
    /// when multicast is off or no group could be joined, and the core's discovery is off.
    discovery: Vec<GroupSocket>,
    /// What joining another lobby needs.
    iface: Iface,
    v4: bool,
    v6: bool,
    port: u16,
    history_len: usize,
    history_shown: Option<usize>,
    use_multicast: bool,
    unlisted: bool,
    status_every: Option<Duration>,
    /// [`Command::Quit`] was taken.
    quit: bool,
    queued: VecDeque<Queued>,
    /// The head of `queued` waits for send buffer room (not for the pacer).
    socket_full: bool,
    pacer: Pacer,
    /// The addresses this node's datagrams come from. Multicast loop hands every own datagram
    /// back; dropping them here spares the core decoding what it would ignore anyway.
    own: Vec<SocketAddr>,
    send_errors: u64,
    /// Multicast sends failed with an error that says the network refuses them (a firewall's
    /// EPERM, no route): the core runs on unicast until then, and tries multicast again.
    multicast_retry_at: Option<Instant>,
    linger: Option<Duration>,
    report_every: Option<Duration>,
    recv_buf: Vec<u8>,
    loaded: Vec<(usize, Message)>,
    /// Texts and commands taken from the input but not carried out yet: the flow window is
    /// full. Input is not read while any wait, so a fast writer is slowed down, never
    /// dropped; commands wait their turn, so `/nick` after a text does not rename it.
    waiting: VecDeque<Pending>,
    /// The keys accepted for each nick (`DATA/known-peers`): which members are flagged.
    known: KnownPeers,
    /// The keys of private lobbies created here (`DATA/lobby-keys`), for `/join --private`.
    lobby_keys: LobbyKeys,
    /// The open history files of conversations of direct messages, by peer.
    direct_logs: HashMap<PeerId, DirectLog>,
    /// Peers whose conversation the frontend was given ([`AppEvent::Conversation`]) in this
    /// run: their history is not given again.
    conversations: HashSet<PeerId>,
    /// A direct history file could not be written while draining the core: the runtime stops
    /// with it before anything more is shown.
    direct_error: Option<AppError>,
    /// Invitations received, waiting for `/accept` or `/decline`.
    invitations: Waiting,
    /// Own direct texts and invitations not acknowledged yet.
    outstanding: Outstanding,
    /// Own who-is queries whose answers may still come: the nick each asked for.
    whois: whois::OpenQueries,
}

/// An input taken but not carried out yet.
enum Pending {
    Text(LobbyId, String),
    Command(Command),
}

impl App {
    /// Opens the data directory, picks the interface, binds the sockets, joins the lobbies
    /// and restores their history into the core. Must be called within a Tokio runtime.
    pub fn start(cfg: AppConfig) -> Result<App, AppError> {
        let data_dir = DataDir::open(&cfg.data_dir)?;
        let me = data_dir.peer_id();
        let mut known = KnownPeers::open(&data_dir.path().join(known_peers::FILE_NAME));
        let iface = Iface::select(cfg.iface.as_deref())?;
        let family = match (cfg.family, cfg.bind) {
            (Family::Auto, Some(b)) if b.is_ipv6() => Family::V6,
            (Family::Auto, Some(_)) => Family::V4,
            (f, _) => f,
        };
        let (v4, v6) = family.resolve(&iface)?;
        tracing::info!(iface = %iface.name, index = iface.index, v4, v6, peer = %me, "starting");
        let opts = SendOptions {
            ttl: cfg.ttl,
            multicast_loop: true,
        };
        let mut unicast = Vec::new();
        for (on, is_v6) in [(v4, false), (v6, true)] {
            if !on {
                continue;
            }
            let bind = cfg.bind.filter(|b| b.is_ipv6() == is_v6);
            let sock = UnicastSocket::bind(is_v6, &iface, bind, opts).map_err(|source| {
                AppError::Socket {
                    what: format!(
                        "unicast socket on {}{}",
                        iface.name,
                        bind.map(|b| format!(" at {b}")).unwrap_or_default()
                    ),
                    source,
                }
            })?;
            tracing::info!(local = %sock.local_addr(), "unicast socket bound");
            unicast.push(Unicast { v6: is_v6, sock });
        }
        let now = Instant::now();
        let mut node = Node::new(
            cfg.core.clone(),
            data_dir.signing_key().clone(),
            &cfg.nick,
            now,
            unix_ms(),
            random_seed(),
        )?;
        node.set_multicast(cfg.multicast);
        // Own nick with own key: another key using it is flagged.
        known.accept(node.nick(), me, unix_ms() / 1000);
        if !cfg.multicast {
            tracing::info!("multicast off: lobbies reach friends only");
        }
        let own = unicast
            .iter()
            .flat_map(|u| {
                let local = u.sock.local_addr();
                if local.ip().is_unspecified() {
                    iface
                        .addrs
                        .iter()
                        .filter(|a| a.is_ipv6() == local.is_ipv6())
                        .map(|a| SocketAddr::new(*a, local.port()))
                        .collect()
                } else {
                    vec![local]
                }
            })
            .collect();
        let mut app = App {
            own,
            node,
            data_dir,
            unicast,
            lobbies: Vec::new(),
            discovery: Vec::new(),
            iface,
            v4,
            v6,
            port: cfg.port,
            history_len: cfg.history,
            history_shown: cfg.history_shown,
            use_multicast: cfg.multicast,
            unlisted: cfg.unlisted,
            status_every: cfg.status_every,
            quit: false,
            queued: VecDeque::new(),
            socket_full: false,
            pacer: Pacer::new(cfg.max_rate, Instant::now()),
            send_errors: 0,
            multicast_retry_at: None,
            linger: cfg.linger,
            report_every: cfg.report_every,
            recv_buf: vec![0; RECV_BUF],
            loaded: Vec::new(),
            waiting: VecDeque::new(),
            known,
            lobby_keys: LobbyKeys::new(&cfg.data_dir),
            direct_logs: HashMap::new(),
            conversations: HashSet::new(),
            direct_error: None,
            invitations: Waiting::open(&cfg.data_dir.join(invitations::FILE_NAME)),
            outstanding: Outstanding::default(),
            whois: whois::OpenQueries::default(),
        };
        for start in &cfg.lobbies {
            let (i, got) = app.open_lobby(&start.lobby, start.key.as_ref(), now)?;
            app.loaded.extend(got.into_iter().map(|m| (i, m)));
        }
        for &addr in &cfg.friends {
            app.add_friend(now, addr)?;
        }
        // After the lobbies: the first list the segment hears names them all.
        app.open_discovery(now);
        Ok(app)
    }

    /// Joins the discovery group of each family in use, on the lobbies' interface and port
    /// (PROTOCOL.md 7.12), and turns the core's discovery on if one was joined. A group that
    /// cannot be joined is only a warning: lobby lists are a convenience, and the lobbies
    /// work without them.
    fn open_discovery(&mut self, now: Instant) {
        for g in discovery_groups(self.v4, self.v6, self.use_multicast) {
            match GroupSocket::join(g, self.port, &self.iface) {
                Ok(sock) => {
                    tracing::info!(group = %sock.group(), "joined the discovery group");
                    self.discovery.push(sock);
                }
                Err(e) => tracing::warn!(group = %g, port = self.port, iface = %self.iface.name,
                    error = %e, "cannot join the discovery group; /list hears only friends"),
            }
        }
        if !self.discovery.is_empty() {
            self.node.set_discovery(now, true);
        }
    }

    /// Adds a friend, if the node has a socket of its address family.
    fn add_friend(&mut self, now: Instant, addr: SocketAddr) -> Result<(), AppError> {
        if !self.unicast.iter().any(|u| u.v6 == addr.is_ipv6()) {
            return Err(AppError::Friend {
                addr,
                why: format!(
                    "the node has no IPv{} socket (see --family and --bind)",
                    if addr.is_ipv6() { 6 } else { 4 }
                ),
            });
        }
        self.node
            .add_friend(now, addr)
            .map_err(|e| AppError::Friend {
                addr,
                why: e.to_string(),
            })
    }

    /// Joins `lobby`, private under `key` if there is one: its history file, its sequence
    /// lease, its groups, and the core. Returns its index in `lobbies` and the newest messages
    /// restored from its history, as many as the frontend is shown. The files are under the
    /// lobby's id, so a private lobby and a public one of the same name keep apart.
    fn open_lobby(
        &mut self,
        lobby: &Lobby,
        key: Option<&LobbyKey>,
        now: Instant,
    ) -> Result<(usize, Vec<Message>), AppError> {
        let me = self.node.peer_id();
        let dir = self.data_dir.lobby_dir(lobby)?;
        let (history, tail) = History::open_tail(
            &dir.join("history"),
            lobby.id,
            self.history_len,
            // A private lobby's messages are cut in smaller pieces (PROTOCOL.md 2.4).
            Some((me, crate::proto::fragment::piece_size(key.is_some()))),
        )?;
        // Own records are appended in sending order; the tail tells where numbering stopped
        // before anything is restored (the core numbers from the lease).
        let own_end = tail.own_end;
        let lease_path = dir.join("seq");
        let lease = SeqLease::acquire(&lease_path, own_end).map_err(|source| AppError::Lease {
            path: lease_path.clone(),
            source,
        })?;
        let mut targets = Vec::new();
        let mut groups = Vec::new();
        let addrs: Vec<IpAddr> = [
            self.v4.then(|| IpAddr::V4(lobby.ipv4_group())),
            self.v6.then(|| IpAddr::V6(lobby.ipv6_group())),
        ]
        .into_iter()
        .flatten()
        .filter(|_| self.use_multicast)
        .collect();
        for g in addrs {
            let sock = GroupSocket::join(g, self.port, &self.iface).map_err(|source| {
                AppError::Socket {
                    what: format!("joining {g} port {} on {}", self.port, self.iface.name),
                    source,
                }
            })?;
            tracing::info!(lobby = %lobby.name, group = %sock.group(), "joined");
            targets.push(sock.group());
            groups.push(sock);
        }
        match key {
            Some(key) => {
                // Each member draws its own nonces (PROTOCOL.md 4.14): from the OS generator,
                // never from anything a restart or another member could repeat.
                let mut nonce_seed = [0u8; 32];
                getrandom::fill(&mut nonce_seed).map_err(|e| AppError::Random(e.to_string()))?;
                // The core keeps a private lobby unlisted: no hello names it.
                self.node
                    .join_private(now, lobby, key.clone(), lease.next(), nonce_seed);
            }
            None => {
                self.node.join(now, lobby, lease.next());
                if self.unlisted {
                    self.node.set_listed(now, lobby.id, false);
                }
            }
        }
        // Streamed: every record is restored, only those the frontend is shown are kept.
        let mut restored = 0usize;
        let node = &mut self.node;
        let got = tail.read(self.history_shown.unwrap_or(usize::MAX), |m, _| {
            node.restore(now, m);
            restored += 1;
        })?;
        if got.torn_bytes > 0 {
            tracing::warn!(path = %history.path().display(), bytes = got.torn_bytes,
                "cut off a torn last history record (a crash during a write)");
        }
        if got.skipped > 0 {
            tracing::warn!(path = %history.path().display(), lines = got.skipped,
                "skipped corrupt history records");
        }
        tracing::info!(lobby = %lobby.name, id = %lobby.id, private = key.is_some(),
            first_seq = lease.next(), restored, "lobby ready");
        self.lobbies.push(Joined {
            lobby: lobby.clone(),
            targets,
            groups,
            history,
            lease,
            private: key.is_some(),
        });
        Ok((
            self.lobbies.len() - 1,
            got.messages.into_iter().map(|(m, _)| m).collect(),
        ))
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.node.peer_id()
    }

    /// Runs until a signal, the end of the linger time, or the frontend's output closing;
    /// then flushes the history, shrinks the leases and leaves the groups.
    pub async fn run(
        mut self,
        frontend: &mut dyn Frontend,
        mut input: mpsc::Receiver<Vec<Command>>,
    ) -> Result<StopReason, AppError> {
        let sig = |k: SignalKind| {
            signal(k).map_err(|source| AppError::Socket {
                what: "installing a signal handler".into(),
                source,
            })
        };
        let mut sigint = sig(SignalKind::interrupt())?;
        let mut sigterm = sig(SignalKind::terminate())?;
        // The terminal went away (a closed ssh session, a killed tmux): stop cleanly, with
        // the history synced and the groups left, rather than die of the default action.
        let mut sighup = sig(SignalKind::hangup())?;
        let mut sigusr1 = sig(SignalKind::user_defined1())?;
        let mut report_at = self.report_every.map(|d| Instant::now() + d);
        let mut status_at = self.status_every.map(|d| Instant::now() + d);
        self.announce(frontend);
        let mut input_open = true;
        let mut linger_at: Option<Instant> = None;
        let mut sync_at: Option<Instant> = None;
        let mut syncing: Option<JoinHandle<io::Result<()>>> = None;
        let mut save_at: Option<Instant> = None;
        let mut saving: Option<JoinHandle<io::Result<()>>> = None;
        // After a failed save, the next waits this long: a full disk is not retried in a loop.
        let mut save_retry_at: Option<Instant> = None;
        let mut wall_at = Instant::now() + WALL_CLOCK_EVERY;
        if self.status_every.is_some() {
            // A status bar has something to show from the first frame.
            self.status(frontend);
        }
        // Transmits the core queued while joining (first sessions) go out now.
        self.pump(frontend);
        self.write_history()?;
        if let Err(e) = frontend.flush() {
            return self.finish(frontend, Err(AppError::Output(e)));
        }
        let reason = loop {
            let timeout = self.node.poll_timeout();
            let paced =
                (!self.queued.is_empty() && !self.socket_full).then(|| self.pacer.ready_at());
            let wake = [
                timeout,
                linger_at,
                sync_at,
                Some(wall_at),
                paced,
                report_at,
                status_at,
                save_at,
                self.whois.next_due(),
            ]
            .into_iter()
            .flatten()
            .min();
            let woke = {
                let socks: Vec<&UdpSocket> = self.sockets().collect();
                let senders: Vec<&UdpSocket> =
                    self.unicast.iter().map(|u| u.sock.socket()).collect();
                let want_input = input_open && self.queued.is_empty() && self.waiting.is_empty();
                tokio::select! {
                    _ = sigint.recv() => Woke::Stop(StopReason::Signal),
                    _ = sigterm.recv() => Woke::Stop(StopReason::Signal),
                    _ = sighup.recv() => Woke::Stop(StopReason::Signal),
                    _ = sigusr1.recv() => Woke::Report,
                    _ = any_ready(&socks, false) => Woke::Readable,
                    _ = any_ready(&senders, true), if self.socket_full => Woke::Writable,
                    cmds = input.recv(), if want_input => Woke::Input(cmds),
                    r = async { syncing.as_mut().expect("guarded").await }, if syncing.is_some() => {
                        Woke::Synced(r)
                    }
                    r = async { saving.as_mut().expect("guarded").await }, if saving.is_some() => {
                        Woke::Saved(r)
                    }
                    _ = sleep_until(wake), if wake.is_some() => Woke::Timer,
                }
            };
            match woke {
                Woke::Stop(r) => break r,
                Woke::Readable => self.receive(frontend),
                Woke::Writable => self.send_queued(),
                Woke::Input(Some(cmds)) => {
                    let mut n = self.take_commands(cmds);
                    while n < INPUT_BATCH {
                        match input.try_recv() {
                            Ok(more) => n += self.take_commands(more),
                            Err(_) => break,
                        }
                    }
                }
                Woke::Input(None) => {
                    input_open = false;
                    tracing::debug!("input ended");
                }
                Woke::Synced(r) => {
                    syncing = None;
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(error = %e, "history fsync failed"),
                        Err(e) => tracing::warn!(error = %e, "history fsync task failed"),
                    }
                }
                Woke::Saved(r) => {
                    saving = None;
                    save_retry_at = None;
                    if !matches!(r, Ok(Ok(()))) {
                        // Said by the task (or its panic); what it held is saved again later.
                        self.known.save_failed();
                        save_retry_at = Some(Instant::now() + KNOWN_PEERS_RETRY);
                    }
                }
                Woke::Timer => self.send_queued(),
                Woke::Report => self.report(frontend),
            }
            let now = Instant::now();
            if let (Some(at), Some(every)) = (report_at, self.report_every)
                && now >= at
            {
                self.report(frontend);
                report_at = Some(now + every);
            }
            if let (Some(at), Some(every)) = (status_at, self.status_every)
                && now >= at
            {
                self.status(frontend);
                status_at = Some(now + every);
            }
            if timeout.is_some_and(|t| t <= now) {
                self.node.handle_timeout(now);
            }
            self.whois_done(frontend, now);
            // Whatever woke the loop may have opened the flow window (a report, a timeout).
            if !self.waiting.is_empty()
                && let Err(e) = self.send_waiting(frontend)
            {
                return self.finish(frontend, Err(e));
            }
            if !input_open
                && self.waiting.is_empty()
                && linger_at.is_none()
                && let Some(l) = self.linger
            {
                linger_at = Some(now + l);
            }
            if self.multicast_retry_at.is_some_and(|t| now >= t) {
                self.multicast_retry_at = None;
                tracing::info!("trying multicast again");
                self.node.set_multicast(true);
            }
            if now >= wall_at {
                self.node.set_wall_clock(now, unix_ms());
                wall_at = now + WALL_CLOCK_EVERY;
            }
            self.pump(frontend);
            // History first, then the frontend: what is shown is already in the file.
            if let Err(e) = self.write_history() {
                return self.finish(frontend, Err(e));
            }
            if let Err(e) = frontend.flush() {
                tracing::info!(error = %e, "output closed; stopping");
                break StopReason::OutputClosed;
            }
            if sync_at.is_none()
                && (self.lobbies.iter().any(|l| l.history.unsynced())
                    || self.direct_logs.values().any(DirectLog::unsynced))
            {
                sync_at = Some(now + SYNC_INTERVAL);
            }
            if sync_at.is_some_and(|t| t <= now) && syncing.is_none() {
                sync_at = None;
                syncing = self.start_sync();
            }
            // A new nick or key is saved within seconds, last-seen times now and then. One
            // save at a time (they share a temporary file): while one runs, the next is
            // planned when it ends.
            if saving.is_some() {
                save_at = None;
            } else {
                let save_in = match self.known.dirty() {
                    Dirty::Clean => None,
                    Dirty::Seen => Some(KNOWN_PEERS_SEEN_SAVE),
                    Dirty::Changed => Some(KNOWN_PEERS_SAVE),
                };
                if let Some(d) = save_in {
                    let at = (now + d).max(save_retry_at.unwrap_or(now));
                    save_at = Some(save_at.map_or(at, |t| t.min(at)));
                }
                if save_at.is_some_and(|t| t <= now) {
                    save_at = None;
                    saving = self.start_save();
                }
            }
            if linger_at.is_some_and(|t| t <= now) {
                break StopReason::Linger;
            }
            if self.quit {
                break StopReason::Quit;
            }
        };
        if let Some(t) = syncing {
            let _ = t.await;
        }
        if let Some(t) = saving
            && !matches!(t.await, Ok(Ok(())))
        {
            self.known.save_failed();
        }
        tracing::info!(?reason, "stopping");
        self.finish(frontend, Ok(reason))
    }

    fn announce(&mut self, frontend: &mut dyn Frontend) {
        let local: Vec<SocketAddr> = self.unicast.iter().map(|u| u.sock.local_addr()).collect();
        let peer = self.node.peer_id();
        for j in &self.lobbies {
            frontend.event(AppEvent::Joined {
                lobby: &j.lobby,
                peer,
                groups: &j.targets,
                local: &local,
                private: j.private,
            });
        }
        for (i, m) in std::mem::take(&mut self.loaded) {
            frontend.event(AppEvent::History {
                lobby: &self.lobbies[i].lobby,
                msg: &m,
                own: m.source == peer,
            });
        }
        // Shown before the restart and not answered: shown again.
        for inv in self.invitations.iter() {
            frontend.event(AppEvent::invitation(inv, false, false));
        }
    }

    fn sockets(&self) -> impl Iterator<Item = &UdpSocket> {
        self.unicast
            .iter()
            .map(|u| u.sock.socket())
            .chain(
                self.lobbies
                    .iter()
                    .flat_map(|j| j.groups.iter().map(|g| g.socket())),
            )
            .chain(self.discovery.iter().map(|g| g.socket()))
    }

    /// Every socket to read, in order, and whether it is a copy: a group socket bound to the
    /// same group and port as one before it. Linux hands a multicast datagram to every
    /// socket bound to its group, so two lobbies whose ids share a group (or an IPv6 lobby
    /// group equal to the discovery group) each get it; only the first socket's datagrams go
    /// to the core, so that none is handed to it twice.
    fn sources(&self) -> Vec<(Source, bool)> {
        let mut seen: Vec<SocketAddr> = Vec::new();
        let mut copy = |g: &GroupSocket| {
            let dup = seen.contains(&g.group());
            if !dup {
                seen.push(g.group());
            }
            dup
        };
        let mut out: Vec<(Source, bool)> = (0..self.unicast.len())
            .map(|i| (Source::Unicast(i), false))
            .collect();
        for (l, j) in self.lobbies.iter().enumerate() {
            for (g, sock) in j.groups.iter().enumerate() {
                out.push((Source::Lobby(l, g), copy(sock)));
            }
        }
        for (d, sock) in self.discovery.iter().enumerate() {
            out.push((Source::Discovery(d), copy(sock)));
        }
        out
    }

    /// Takes the datagrams waiting on every socket, in batches, at most
    /// [`RECV_BATCHES_PER_WAKEUP`] per socket; what is left is taken at the next wakeup, after
    /// the timers due.
    fn receive(&mut self, frontend: &mut dyn Frontend) {
        let mut arena: Vec<u8> = Vec::new();
        let mut batch: Vec<(Path, std::ops::Range<usize>)> = Vec::new();
        for (source, copy) in self.sources() {
            for _ in 0..RECV_BATCHES_PER_WAKEUP {
                let mut got = 0;
                let mut more = true;
                arena.clear();
                batch.clear();
                while got < RECV_BATCH {
                    let sock = match source {
                        Source::Unicast(i) => self.unicast[i].sock.socket(),
                        Source::Lobby(l, g) => self.lobbies[l].groups[g].socket(),
                        Source::Discovery(d) => self.discovery[d].socket(),
                    };
                    match sock.try_recv_from(&mut self.recv_buf) {
                        Ok((n, from)) => {
                            got += 1;
                            // A copy is drained, or it would wake the loop for ever.
                            if copy || self.own.iter().any(|o| same_addr(*o, from)) {
                                continue;
                            }
                            // The discovery group is a group like a lobby's: the core tells
                            // lists heard there from a friend's by the path.
                            let path = match source {
                                Source::Unicast(_) => Path::Unicast(from),
                                Source::Lobby(..) | Source::Discovery(_) => Path::Multicast(from),
                            };
                            // Handed to the core together, so that their signatures are
                            // verified as a batch.
                            let start = arena.len();
                            arena.extend_from_slice(&self.recv_buf[..n]);
                            batch.push((path, start..arena.len()));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            more = false;
                            break;
                        }
                        Err(e) => {
                            // E.g. ICMP port unreachable reported on the unicast socket.
                            tracing::debug!(error = %e, "receive error");
                            more = false;
                            break;
                        }
                    }
                }
                if !batch.is_empty() {
                    let items = batch.iter().map(|(p, r)| (*p, &arena[r.clone()]));
                    self.node.handle_datagrams(Instant::now(), items);
                }
                self.pump(frontend);
                if !more {
                    break;
                }
            }
        }
    }

    /// Queues the texts and commands of `cmds`; returns how many texts there were.
    fn take_commands(&mut self, cmds: Vec<Command>) -> usize {
        let mut n = 0;
        for cmd in cmds {
            match cmd {
                Command::Send { lobby, texts } => {
                    n += texts.len();
                    self.waiting
                        .extend(texts.into_iter().map(|t| Pending::Text(lobby, t)));
                }
                cmd => self.waiting.push_back(Pending::Command(cmd)),
            }
        }
        n
    }

    /// Carries out waiting texts and commands in order until none is left or the flow window
    /// is full. A history write failure stops the runtime before any datagram of an
    /// unrecorded message leaves.
    fn send_waiting(&mut self, frontend: &mut dyn Frontend) -> Result<(), AppError> {
        while let Some(p) = self.waiting.pop_front() {
            let (lobby, text) = match p {
                Pending::Text(lobby, text) => (lobby, text),
                Pending::Command(cmd) => {
                    self.command(frontend, cmd)?;
                    continue;
                }
            };
            let Some(j) = self.lobbies.iter_mut().find(|j| j.lobby.id == lobby) else {
                frontend.event(AppEvent::CommandFailed {
                    error: format!("cannot send to lobby {lobby}: not joined"),
                });
                continue;
            };
            if let Err(e) = j.lease.ensure() {
                tracing::error!(error = %e, "cannot extend the sequence lease");
                frontend.event(AppEvent::SendFailed {
                    lobby: &j.lobby,
                    error: format!("cannot extend the sequence lease: {e}"),
                });
                continue;
            }
            match self.node.send(Instant::now(), lobby, &text) {
                Ok(msg) => {
                    let piece = self.node.piece_size(lobby);
                    j.lease
                        .used(msg.seq + piece_count(msg.text.len(), piece) as u64);
                    j.history.append(&msg, msg.sent_at);
                    frontend.event(AppEvent::Sent {
                        lobby: &j.lobby,
                        msg: &msg,
                    });
                }
                Err(SendError::WindowFull) => {
                    // Members are behind: wait for their reports (the loop retries on every
                    // wakeup), keeping the order.
                    self.waiting.push_front(Pending::Text(lobby, text));
                    break;
                }
                Err(e) => {
                    let error = match e {
                        SendError::NotJoined(_) => "not joined".to_owned(),
                        e => e.to_string(),
                    };
                    frontend.event(AppEvent::SendFailed {
                        lobby: &j.lobby,
                        error,
                    });
                }
            }
        }
        // Own messages reach the history file before their datagrams leave: after a process
        // crash the file then tells exactly where the numbering stopped (see lease.rs).
        self.write_history()?;
        self.pump(frontend);
        Ok(())
    }

    /// Carries out a command other than a send. Only a history failure of a lobby being
    /// joined is an error of the runtime; bad arguments are told to the frontend.
    fn command(&mut self, frontend: &mut dyn Frontend, cmd: Command) -> Result<(), AppError> {
        if let Err(error) = self.try_command(frontend, cmd)? {
            frontend.event(AppEvent::CommandFailed { error });
        }
        Ok(())
    }

    /// [`App::command`], with bad arguments as the inner error.
    fn try_command(
        &mut self,
        frontend: &mut dyn Frontend,
        cmd: Command,
    ) -> Result<Result<(), String>, AppError> {
        let now = Instant::now();
        match cmd {
            Command::Send { lobby, texts } => {
                // Not reached: texts are queued one by one; keep them in order anyway.
                for t in texts.into_iter().rev() {
                    self.waiting.push_front(Pending::Text(lobby, t));
                }
            }
            Command::Join { name, how } => {
                let named = match Lobby::new(&name) {
                    Ok(l) => l,
                    Err(e) => return Ok(Err(format!("bad lobby name {name:?}: {e}"))),
                };
                if let Err(e) = self.may_join(&named, how.is_private()) {
                    return Ok(Err(e));
                }
                // A passphrase costs Argon2id's third of a second here, inline: the loop
                // would stall that long. The pipe's input thread and the screen's thread
                // derive their keys and send them ready; only another frontend lands here.
                let key = match how.key(&named, &self.lobby_keys) {
                    Ok(k) => k,
                    Err(e) => return Ok(Err(format!("cannot join {}: {e}", named.name))),
                };
                return self.join(frontend, &named, key, now);
            }
            Command::Invite { nick, lobby } => {
                let Some(j) = self.lobbies.iter().find(|j| j.lobby.id == lobby) else {
                    return Ok(Err(format!("/invite: not in lobby {lobby}")));
                };
                let shown = j.lobby.clone();
                let (peer, nick) = match self.addressee(&nick) {
                    Ok(found) => found,
                    Err(e) => return Ok(Err(format!("/invite: {e}"))),
                };
                let id = match self.node.invite(now, peer, lobby) {
                    Ok(id) => id,
                    Err(e) => return Ok(Err(format!("/invite {nick} to {}: {e}", shown.name))),
                };
                self.outstanding.insert(id, Sent::Invitation);
                tracing::info!(%peer, lobby = %shown.name, "invitation sent");
                frontend.event(AppEvent::InvitationSent {
                    id,
                    peer,
                    nick: &nick,
                    lobby: &shown,
                });
            }
            Command::Accept { which } => {
                let inv = match self.invitations.take(which.as_deref(), "accept") {
                    Ok(inv) => inv,
                    Err(e) => return Ok(Err(e)),
                };
                let named = match Lobby::new(&inv.lobby.name) {
                    Ok(l) => l,
                    Err(e) => return Ok(Err(format!("bad lobby name {:?}: {e}", inv.lobby.name))),
                };
                // Kept before joining, so that a restart or a re-invitation finds the key;
                // kept back if it cannot be joined now, to be accepted later.
                let refused = self.may_join(&named, true).err().or_else(|| {
                    self.lobby_keys
                        .store(&named, &inv.key)
                        .err()
                        .map(|e| e.to_string())
                });
                if let Some(e) = refused {
                    self.invitations.put_back(inv);
                    return Ok(Err(format!("/accept: {e}")));
                }
                tracing::info!(from = %inv.from, lobby = %named.name, "invitation accepted");
                return self.join(frontend, &named, Some(inv.key), now);
            }
            Command::Decline { which } => {
                match self.invitations.take(which.as_deref(), "decline") {
                    Ok(inv) => frontend.event(AppEvent::Declined {
                        lobby: &inv.lobby,
                        from: inv.from,
                    }),
                    Err(e) => return Ok(Err(e)),
                }
            }
            Command::Part { lobby } => {
                let Some(i) = self.lobbies.iter().position(|j| j.lobby.id == lobby) else {
                    return Ok(Err(format!("not in lobby {lobby}")));
                };
                self.node.leave(lobby);
                // The leaving session and heartbeat go out before the groups are left.
                self.pump(frontend);
                let mut j = self.lobbies.remove(i);
                self.waiting
                    .retain(|p| !matches!(p, Pending::Text(l, _) if *l == lobby));
                if let Err(e) = j.history.sync_now() {
                    tracing::error!(error = %e, "history not flushed");
                }
                if let Err(e) = j.lease.release() {
                    tracing::warn!(error = %e, "sequence lease not shrunk; a rejoin skips a block");
                }
                for g in &mut j.groups {
                    if let Err(e) = g.leave() {
                        tracing::debug!(group = %g.group(), error = %e, "leaving the group failed");
                    }
                }
                tracing::info!(lobby = %j.lobby.name, "left");
                frontend.event(AppEvent::Parted { lobby: &j.lobby });
            }
            Command::Nick { nick } => match self.node.set_nick(now, &nick) {
                Ok(()) => {
                    let me = self.node.peer_id();
                    self.known.accept(self.node.nick(), me, unix_ms() / 1000);
                    frontend.event(AppEvent::OwnNick {
                        nick: self.node.nick(),
                    })
                }
                Err(e) => return Ok(Err(format!("bad nick {nick:?}: {e}"))),
            },
            Command::Who { lobby } => {
                let Some(j) = self.lobbies.iter().find(|j| j.lobby.id == lobby) else {
                    return Ok(Err(format!("not in lobby {lobby}")));
                };
                let members = self.node.members(lobby);
                let key_changed: Vec<PeerId> = members
                    .iter()
                    .filter(|(p, n)| self.known.is_new_key(n, *p))
                    .map(|(p, _)| *p)
                    .collect();
                frontend.event(AppEvent::Members {
                    lobby: &j.lobby,
                    members: &members,
                    key_changed: &key_changed,
                });
            }
            Command::Trust { nick } => {
                let (nick, peers) = self.known.trust(&nick);
                if !peers.is_empty() {
                    tracing::info!(nick = ?nick, ?peers, "new keys trusted");
                }
                frontend.event(AppEvent::Trusted {
                    nick: &nick,
                    peers: &peers,
                });
            }
            Command::Direct { to, text } => {
                let found = match to {
                    Addressee::Nick(nick) => self.addressee(&nick),
                    Addressee::Peer(peer) => self.peer_addressee(peer),
                };
                let (peer, nick) = match found {
                    Ok(found) => found,
                    Err(e) => return Ok(Err(format!("/msg: {e}"))),
                };
                let id = match self.node.send_direct(now, peer, &text) {
                    Ok(id) => id,
                    Err(e) => return Ok(Err(format!("/msg {nick}: {e}"))),
                };
                self.outstanding.insert(id, Sent::Text);
                let rec = DirectRecord {
                    id,
                    own: true,
                    nick: self.node.nick().to_owned(),
                    sent_at: unix_ms(),
                    text,
                    state: DirectState::Pending,
                };
                // In the file before its datagrams leave (they go at the next pump) and
                // before it is shown.
                self.conversation(frontend, peer, &nick, false)?
                    .append(&rec, rec.sent_at)?;
                frontend.event(AppEvent::DirectSent {
                    peer,
                    nick: &nick,
                    msg: &rec,
                });
            }
            Command::Query { nick } => {
                let (peer, nick) = match self.addressee(&nick) {
                    Ok(found) => found,
                    Err(e) => return Ok(Err(format!("/query: {e}"))),
                };
                if self.conversations.contains(&peer) {
                    frontend.event(AppEvent::Conversation {
                        peer,
                        nick: &nick,
                        history: &[],
                        query: true,
                    });
                } else {
                    self.conversation(frontend, peer, &nick, true)?;
                }
            }
            Command::WhoIs { nick } => {
                let id = match self.node.whois(now, &nick) {
                    Ok(id) => id,
                    Err(e) => return Ok(Err(format!("/whois {:?}: {e}", nick.trim()))),
                };
                let nick = nick.trim();
                tracing::debug!(%id, nick, "who-is query sent");
                // Remembered before the core's own answer, which the next pump gives.
                self.whois.ask(now, id, nick);
                frontend.event(AppEvent::WhoIsAsked { id, nick });
            }
            Command::AddFriend { addr } => match self.add_friend(now, addr) {
                Ok(()) => self.friends(frontend),
                Err(e) => return Ok(Err(e.to_string())),
            },
            Command::RemoveFriend { addr } => {
                if self.node.remove_friend(addr) {
                    self.friends(frontend);
                } else {
                    return Ok(Err(format!("{addr} is not a friend")));
                }
            }
            Command::ListFriends => self.friends(frontend),
            Command::Status => self.status(frontend),
            Command::ListLobbies => {
                let (lobbies, cut) = self.node.ask_lobby_list(now);
                frontend.event(AppEvent::LobbyList {
                    lobbies: &lobbies,
                    cut,
                });
            }
            Command::Quit => self.quit = true,
            Command::Invalid { error } => return Ok(Err(error)),
        }
        Ok(Ok(()))
    }

    /// Why `named` cannot be joined (public, or private if `private`): one lobby per name, so
    /// that texts, `/part` and `/who` name their lobby, and a private lobby is not mistaken for
    /// the public one of its name.
    fn may_join(&self, named: &Lobby, private: bool) -> Result<(), String> {
        let Some(j) = self.lobbies.iter().find(|j| j.lobby.name == named.name) else {
            return Ok(());
        };
        Err(match (j.private, private) {
            (false, false) => format!("already in lobby {}", named.name),
            (true, true) => format!(
                "already in private lobby {}; /part it first to join another of that name",
                named.name
            ),
            (was, _) => format!(
                "lobby {} is joined already as a {} lobby; /part it first",
                named.name,
                if was { "private" } else { "public" }
            ),
        })
    }

    /// Joins `named`, private under `key` if there is one, and tells the frontend
    /// ([`AppEvent::Joined`] and the lobby's history). Bad arguments are the inner error.
    fn join(
        &mut self,
        frontend: &mut dyn Frontend,
        named: &Lobby,
        key: Option<LobbyKey>,
        now: Instant,
    ) -> Result<Result<(), String>, AppError> {
        let lobby = key
            .as_ref()
            .map_or_else(|| named.clone(), |k| k.lobby(named));
        if self.lobbies.iter().any(|j| j.lobby.id == lobby.id) {
            return Ok(Err(format!("already in lobby {}", lobby.name)));
        }
        let got = match self.open_lobby(&lobby, key.as_ref(), now) {
            Ok((_, got)) => got,
            // A socket that cannot join, a lease held by another process: the other lobbies
            // go on.
            Err(e @ (AppError::Socket { .. } | AppError::Lease { .. })) => {
                return Ok(Err(format!("cannot join {}: {e}", lobby.name)));
            }
            Err(e) => return Err(e),
        };
        let j = self.lobbies.last().expect("just pushed");
        let local: Vec<SocketAddr> = self.unicast.iter().map(|u| u.sock.local_addr()).collect();
        let peer = self.node.peer_id();
        frontend.event(AppEvent::Joined {
            lobby: &j.lobby,
            peer,
            groups: &j.targets,
            local: &local,
            private: j.private,
        });
        for m in &got {
            frontend.event(AppEvent::History {
                lobby: &j.lobby,
                msg: m,
                own: m.source == peer,
            });
        }
        Ok(Ok(()))
    }

    /// An invitation received: a re-invitation to a lobby whose key is kept here (this node
    /// was in it and did not `/part`; it restarted) is joined at once, as RetroShare's users
    /// asked; any other waits for `/accept` or `/decline`.
    fn invited(&mut self, frontend: &mut dyn Frontend, inv: Invitation, key_changed: bool) {
        if self.lobbies.iter().any(|j| j.lobby.id == inv.lobby.id) {
            tracing::debug!(lobby = %inv.lobby.name, "invited to a lobby joined already");
            return;
        }
        let kept = Lobby::new(&inv.lobby.name)
            .ok()
            .filter(|named| self.may_join(named, true).is_ok())
            .filter(|named| matches!(self.lobby_keys.get(named), Ok(Some(k)) if k == inv.key));
        let mut joined = false;
        if let Some(named) = kept.filter(|_| inv.again) {
            match self.join(frontend, &named, Some(inv.key.clone()), Instant::now()) {
                Ok(Ok(())) => joined = true,
                Ok(Err(e)) => tracing::warn!(error = %e, "re-invited lobby not rejoined"),
                Err(e) => {
                    self.direct_error.get_or_insert(e);
                    return;
                }
            }
        }
        tracing::info!(from = %inv.from, nick = ?inv.nick, lobby = %inv.lobby.name,
            again = inv.again, joined, "invitation received");
        frontend.event(AppEvent::invitation(&inv, joined, key_changed));
        if !joined {
            self.invitations.insert(inv);
        }
    }

    /// The member `nick` names in the lobbies joined, or the friend it names, if a direct
    /// message can be sealed to it.
    fn addressee(&self, nick: &str) -> Result<(PeerId, String), ResolveError> {
        let mut members: Vec<(PeerId, String)> = self
            .lobbies
            .iter()
            .flat_map(|j| self.node.members(j.lobby.id))
            .collect();
        // A friend in no lobby shared: its key is known if it was heard in one before.
        members.extend(
            self.node
                .friends()
                .into_iter()
                .filter_map(|f| Some((f.peer?, f.nick?))),
        );
        direct_addressee(nick, &members, |p| self.node.knows_key(p))
    }

    /// `peer` with its nick in the lobbies joined (its id if it is in none), if a direct
    /// message can be sealed to it.
    fn peer_addressee(&self, peer: PeerId) -> Result<(PeerId, String), ResolveError> {
        let nick = self
            .lobbies
            .iter()
            .flat_map(|j| self.node.members(j.lobby.id))
            .find(|(p, _)| *p == peer)
            .map_or_else(|| peer.to_string(), |(_, n)| n);
        if self.node.knows_key(peer) {
            Ok((peer, nick))
        } else {
            Err(ResolveError::KeyUnknown(nick))
        }
    }

    /// The history file of the conversation with `peer`, opened if it is not; the first time
    /// in a run, the frontend is given the conversation with its recent history
    /// ([`AppEvent::Conversation`]).
    fn conversation(
        &mut self,
        frontend: &mut dyn Frontend,
        peer: PeerId,
        nick: &str,
        query: bool,
    ) -> Result<&mut DirectLog, AppError> {
        if !self.direct_logs.contains_key(&peer) {
            if self.direct_logs.len() >= MAX_OPEN_DIRECT_LOGS
                && let Some(&old) = self.direct_logs.keys().next()
                && let Some(mut log) = self.direct_logs.remove(&old)
            {
                // Closed, not lost: it is opened again when needed.
                log.sync_now()?;
            }
            let path = DirectLog::path_of(self.data_dir.path(), peer);
            let (log, history) = DirectLog::open(&path, DIRECT_SHOWN)?;
            if self.conversations.insert(peer) {
                frontend.event(AppEvent::Conversation {
                    peer,
                    nick,
                    history: &history,
                    query,
                });
            }
            self.direct_logs.insert(peer, log);
        }
        Ok(self.direct_logs.get_mut(&peer).expect("opened above"))
    }

    /// Records and tells what became of the own direct message `id` to `peer`.
    fn direct_state(
        &mut self,
        frontend: &mut dyn Frontend,
        peer: PeerId,
        id: MsgId,
        state: DirectState,
    ) {
        // The conversation was shown when the message was sent in this run.
        let r = self
            .conversation(frontend, peer, "", false)
            .and_then(|log| Ok(log.set_state(id, state, unix_ms())?));
        if let Err(e) = r {
            self.direct_error.get_or_insert(e);
            return;
        }
        frontend.event(match state {
            DirectState::Delivered => AppEvent::DirectAcked { id, peer },
            _ => AppEvent::DirectFailed { id, peer },
        });
    }

    /// Tells the frontend which own who-is queries are over at `now`.
    fn whois_done(&mut self, frontend: &mut dyn Frontend, now: Instant) {
        let due = self.whois.take_due(now);
        if due.is_empty() {
            return;
        }
        let friends_up = self.node.friends().iter().filter(|f| f.up).count();
        for d in due {
            tracing::debug!(id = %d.id, nick = d.nick, answers = d.answers, "who-is query over");
            frontend.event(AppEvent::WhoIsDone {
                id: d.id,
                nick: &d.nick,
                answers: d.answers,
                peers: d.peers,
                friends_up,
            });
        }
    }

    fn friends(&mut self, frontend: &mut dyn Frontend) {
        let friends = self.node.friends();
        frontend.event(AppEvent::Friends { friends: &friends });
    }

    /// Tells the frontend the transport state.
    fn status(&mut self, frontend: &mut dyn Frontend) {
        let friends = self.node.friends();
        let status = Status {
            nick: self.node.nick().to_owned(),
            multicast: self.node.multicast(),
            friends: friends.len(),
            friends_up: friends.iter().filter(|f| f.up).count(),
            lobbies: self
                .lobbies
                .iter()
                .map(|j| LobbyStatus {
                    lobby: j.lobby.clone(),
                    members: self.node.members(j.lobby.id).len(),
                    missing: self.node.missing(j.lobby.id),
                })
                .collect(),
        };
        frontend.event(AppEvent::Status(&status));
    }

    /// Drains the core: events to the history and the frontend, then transmits to the
    /// sockets. Events first: a direct message is in its history file before the
    /// acknowledgement the core queued with it leaves, and if it cannot be written, the
    /// runtime stops without sending it, so the writer sends the message again rather than
    /// believe it delivered.
    fn pump(&mut self, frontend: &mut dyn Frontend) {
        self.take_events(frontend);
        if self.direct_error.is_none() {
            self.transmit();
        }
    }

    /// Hands the core's transmits to the sockets.
    fn transmit(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            let id = match t.dest {
                Dest::Lobby(id) => id,
                Dest::Peer(to) => {
                    self.send_to(to, t.payload);
                    continue;
                }
                // Only while the discovery group is joined is the core's discovery on; a
                // list left over from before a failed join goes nowhere.
                Dest::Discovery => {
                    let targets: Vec<SocketAddr> =
                        self.discovery.iter().map(GroupSocket::group).collect();
                    for to in targets {
                        self.send_to(to, t.payload.clone());
                    }
                    continue;
                }
            };
            let Some(j) = self.lobbies.iter().find(|j| j.lobby.id == id) else {
                continue;
            };
            let last = j.targets.len().saturating_sub(1);
            let targets = j.targets.clone();
            let mut payload = Some(t.payload);
            for (k, to) in targets.into_iter().enumerate() {
                let bytes = if k == last {
                    payload.take().unwrap_or_default()
                } else {
                    payload.clone().unwrap_or_default()
                };
                self.send_to(to, bytes);
            }
        }
    }

    /// Takes the core's events: into the history files, then to the frontend.
    fn take_events(&mut self, frontend: &mut dyn Frontend) {
        // Read once per drain: every event of a burst is seen in the same second anyway.
        let mut secs = None;
        let mut now_s = || *secs.get_or_insert_with(|| unix_ms() / 1000);
        while let Some(ev) = self.node.poll_event() {
            let lobby_of = |id: LobbyId| self.lobbies.iter().position(|j| j.lobby.id == id);
            match ev {
                Event::Message(msg) => {
                    let Some(i) = lobby_of(msg.lobby) else {
                        continue;
                    };
                    let j = &mut self.lobbies[i];
                    j.history.append(&msg, unix_ms());
                    let key_changed = self.known.seen(&msg.nick, msg.source, now_s());
                    frontend.event(AppEvent::Message {
                        lobby: &j.lobby,
                        msg: &msg,
                        key_changed,
                    });
                }
                Event::PeerJoined { lobby, peer, nick } => {
                    if let Some(i) = lobby_of(lobby) {
                        let key_changed = self.known.seen(&nick, peer, now_s());
                        frontend.event(AppEvent::PeerJoined {
                            lobby: &self.lobbies[i].lobby,
                            peer,
                            nick: &nick,
                            key_changed,
                        });
                    }
                }
                Event::NickChanged { lobby, peer, nick } => {
                    if let Some(i) = lobby_of(lobby) {
                        let key_changed = self.known.seen(&nick, peer, now_s());
                        frontend.event(AppEvent::NickChanged {
                            lobby: &self.lobbies[i].lobby,
                            peer,
                            nick: &nick,
                            key_changed,
                        });
                    }
                }
                Event::PeerLeft { lobby, peer } => {
                    if let Some(i) = lobby_of(lobby) {
                        frontend.event(AppEvent::PeerLeft {
                            lobby: &self.lobbies[i].lobby,
                            peer,
                        });
                    }
                }
                Event::Lost {
                    lobby,
                    source,
                    count,
                } => {
                    if let Some(i) = lobby_of(lobby) {
                        tracing::warn!(lobby = %self.lobbies[i].lobby.name, %source, count,
                            "messages lost for good");
                        frontend.event(AppEvent::Lost {
                            lobby: &self.lobbies[i].lobby,
                            source,
                            count,
                        });
                    }
                }
                Event::FriendUp { addr, peer, nick } => {
                    frontend.event(AppEvent::FriendUp {
                        addr,
                        peer,
                        nick: &nick,
                    });
                }
                Event::FriendDown { addr, peer } => {
                    frontend.event(AppEvent::FriendDown { addr, peer });
                }
                Event::FriendInLobby { lobby, addr, peer } => {
                    if let Some(i) = lobby_of(lobby) {
                        tracing::info!(lobby = %self.lobbies[i].lobby.name, friend = %addr,
                            "friend takes part");
                        frontend.event(AppEvent::FriendInLobby {
                            lobby: &self.lobbies[i].lobby,
                            addr,
                            peer,
                        });
                    }
                }
                // Input is retried on every wakeup; the event only says when it can succeed.
                Event::Writable { .. } => {}
                Event::Direct(m) => {
                    tracing::debug!(from = %m.from, nick = ?m.nick, "direct message received");
                    let rec = DirectRecord {
                        id: m.id,
                        own: false,
                        nick: m.nick,
                        sent_at: m.sent_at,
                        text: m.text,
                        state: DirectState::Received,
                    };
                    // In its file before it is shown; if it cannot be, it is not shown and
                    // the runtime stops, as with a lobby's history.
                    if let Err(e) = self
                        .conversation(frontend, m.from, &rec.nick, false)
                        .and_then(|log| Ok(log.append(&rec, unix_ms())?))
                    {
                        self.direct_error.get_or_insert(e);
                        continue;
                    }
                    let key_changed = self.known.seen(&rec.nick, m.from, now_s());
                    frontend.event(AppEvent::Direct {
                        peer: m.from,
                        msg: &rec,
                        key_changed,
                    });
                }
                Event::DirectAcked { id, peer } => match self.outstanding.remove(id) {
                    Some(Sent::Text) => {
                        self.direct_state(frontend, peer, id, DirectState::Delivered);
                    }
                    Some(Sent::Invitation) => {
                        frontend.event(AppEvent::InvitationAcked { id, peer });
                    }
                    // A re-invitation the core sent by itself.
                    None => tracing::debug!(%peer, %id, "re-invitation acknowledged"),
                },
                Event::DirectFailed { id, peer } => {
                    tracing::info!(%peer, %id, "direct packet not acknowledged; given up");
                    match self.outstanding.remove(id) {
                        Some(Sent::Text) => {
                            self.direct_state(frontend, peer, id, DirectState::Failed);
                        }
                        Some(Sent::Invitation) => {
                            frontend.event(AppEvent::InvitationFailed { id, peer });
                        }
                        None => {}
                    }
                }
                Event::Invitation(inv) => {
                    let key_changed = self.known.seen(&inv.nick, inv.from, now_s());
                    self.invited(frontend, inv, key_changed);
                }
                Event::LobbyList { lobbies, cut } => {
                    frontend.event(AppEvent::LobbyList {
                        lobbies: &lobbies,
                        cut,
                    });
                }
                Event::WhoIs { id, from, peers } => {
                    // A forgotten query (not expected: the core forgets its route sooner) is
                    // labelled with the nick its answer names.
                    let nick = match self.whois.answer(id, &peers) {
                        Some(n) => n.to_owned(),
                        None => peers.first().map(|p| p.nick.clone()).unwrap_or_default(),
                    };
                    tracing::debug!(%id, %from, peers = peers.len(), "who-is answer");
                    frontend.event(AppEvent::WhoIs {
                        id,
                        nick: &nick,
                        from,
                        peers: &peers,
                    });
                }
            }
        }
    }

    fn send_to(&mut self, to: SocketAddr, payload: Vec<u8>) {
        let Some(u) = self.unicast.iter().position(|u| u.v6 == to.is_ipv6()) else {
            return;
        };
        if self.queued.is_empty() && self.pacer.take(Instant::now()) {
            match self.unicast[u].sock.socket().try_send_to(&payload, to) {
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.socket_full = true,
                Err(e) => {
                    self.send_error(to, &e);
                    return;
                }
            }
        }
        if self.queued.len() >= MAX_QUEUED {
            self.queued.pop_front();
            self.send_errors += 1;
        }
        self.queued.push_back(Queued {
            unicast: u,
            to,
            payload,
        });
    }

    /// Sends queued datagrams while the pacer and the socket let it.
    fn send_queued(&mut self) {
        self.socket_full = false;
        while let Some(q) = self.queued.front() {
            if !self.pacer.take(Instant::now()) {
                return;
            }
            match self.unicast[q.unicast]
                .sock
                .socket()
                .try_send_to(&q.payload, q.to)
            {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The token taken is lost; the pacer only bounds the rate from above.
                    self.socket_full = true;
                    return;
                }
                Err(e) => {
                    let to = q.to;
                    self.send_error(to, &e);
                }
            }
            self.queued.pop_front();
        }
    }

    fn send_error(&mut self, to: SocketAddr, e: &io::Error) {
        let refused = matches!(
            e.kind(),
            io::ErrorKind::PermissionDenied
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::HostUnreachable
        );
        if to.ip().is_multicast() && refused && self.node.multicast() {
            // Keep running on unicast: friends carry the lobbies (PROTOCOL.md 7.9).
            tracing::warn!(group = %to, error = %e,
                "multicast refused; continuing through friends, retrying multicast in 30 s");
            self.node.set_multicast(false);
            self.multicast_retry_at = Some(Instant::now() + MULTICAST_RETRY);
        }
        self.send_errors += 1;
        // The first failure says what is wrong (e.g. no route for the group); the rest
        // would only repeat it.
        if self.send_errors == 1 {
            tracing::warn!(%to, error = %e, "sending failed");
        } else {
            tracing::debug!(%to, error = %e, "sending failed");
        }
    }

    fn write_history(&mut self) -> Result<(), AppError> {
        if let Some(e) = self.direct_error.take() {
            return Err(e);
        }
        for j in &mut self.lobbies {
            j.history.write_out()?;
        }
        Ok(())
    }

    fn start_sync(&mut self) -> Option<JoinHandle<io::Result<()>>> {
        let files: Vec<_> = self
            .lobbies
            .iter_mut()
            .filter(|j| j.history.unsynced())
            .map(|j| j.history.sync_handle())
            .chain(
                self.direct_logs
                    .values_mut()
                    .filter(|l| l.unsynced())
                    .map(|l| l.sync_handle()),
            )
            .filter_map(|f| match f {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fsync the history");
                    None
                }
            })
            .collect();
        if files.is_empty() {
            return None;
        }
        Some(tokio::task::spawn_blocking(move || {
            for f in files {
                f.sync_data()?;
            }
            Ok(())
        }))
    }

    /// Flushes and syncs the history, shrinks the leases, reports the counters and leaves
    /// the groups.
    /// Tells the frontend the counters now (SIGUSR1, or the report interval).
    fn report(&mut self, frontend: &mut dyn Frontend) {
        let stats = self.node.stats();
        frontend.event(AppEvent::Stats(&stats));
    }

    /// Writes the known peers off the event loop (the write ends with fsyncs), if there is
    /// anything to save.
    fn start_save(&mut self) -> Option<JoinHandle<io::Result<()>>> {
        let save = self.known.take_save()?;
        Some(tokio::task::spawn_blocking(move || {
            save.write().inspect_err(|e| {
                tracing::warn!(path = %save.path().display(), error = %e,
                    "cannot save the known peers; trying again later");
            })
        }))
    }

    fn finish(
        mut self,
        frontend: &mut dyn Frontend,
        result: Result<StopReason, AppError>,
    ) -> Result<StopReason, AppError> {
        // Datagrams still queued (e.g. the last repairs) get one more chance, unpaced.
        self.pacer.rate = 0.0;
        self.send_queued();
        let mut first_err = None;
        for j in &mut self.lobbies {
            if let Err(e) = j.history.sync_now() {
                tracing::error!(error = %e, "history not flushed");
                first_err.get_or_insert(AppError::from(e));
            }
            if let Err(e) = j.lease.release() {
                tracing::warn!(error = %e, "sequence lease not shrunk; a restart skips a block");
            }
        }
        for log in self.direct_logs.values_mut() {
            if let Err(e) = log.sync_now() {
                tracing::error!(error = %e, "direct history not flushed");
                first_err.get_or_insert(AppError::from(e));
            }
        }
        let groups = self.lobbies.iter_mut().flat_map(|j| j.groups.iter_mut());
        for g in groups.chain(self.discovery.iter_mut()) {
            if let Err(e) = g.leave() {
                tracing::debug!(group = %g.group(), error = %e, "leaving the group failed");
            }
        }
        // Not fatal: the nicks seen since the last save are only seen as new again.
        if let Some(save) = self.known.take_save()
            && let Err(e) = save.write()
        {
            tracing::warn!(path = %save.path().display(), error = %e,
                "cannot save the known peers");
        }
        let stats = self.node.stats();
        tracing::info!(
            ?stats,
            send_errors = self.send_errors,
            pace_bytes_per_s = self.node.pace_rate() as u64,
            "final counters"
        );
        frontend.event(AppEvent::Stats(&stats));
        let _ = frontend.flush();
        tracing::debug!(dir = %self.data_dir.path().display(), "data directory released");
        match (result, first_err) {
            (Err(e), _) => Err(e),
            (Ok(_), Some(e)) => Err(e),
            (Ok(r), None) => Ok(r),
        }
    }
}

/// How long a node whose multicast sends were refused runs on unicast before it tries again.
const MULTICAST_RETRY: Duration = Duration::from_secs(30);
/// How soon a new nick or an accepted key reaches `DATA/known-peers`: a crash loses at most
/// this much of the user's `/trust`s and first sightings.
const KNOWN_PEERS_SAVE: Duration = Duration::from_secs(2);
/// How long after a failed save of the known peers the next is tried.
const KNOWN_PEERS_RETRY: Duration = Duration::from_secs(60);
/// How soon last-seen times alone are saved (they only order eviction): rarely, since every
/// message moves them.
const KNOWN_PEERS_SEEN_SAVE: Duration = Duration::from_secs(300);

/// A socket [`App::receive`] reads: a unicast socket, a lobby's group (lobby, group) or a
/// discovery group, by index.
#[derive(Clone, Copy, Debug)]
enum Source {
    Unicast(usize),
    Lobby(usize, usize),
    Discovery(usize),
}

/// The discovery groups to join (PROTOCOL.md 7.12): one per family in use, none without
/// multicast (`--no-multicast` sends nothing to any group).
fn discovery_groups(v4: bool, v6: bool, multicast: bool) -> Vec<IpAddr> {
    [
        v4.then_some(IpAddr::V4(DISCOVERY_IPV4)),
        v6.then_some(IpAddr::V6(DISCOVERY_IPV6)),
    ]
    .into_iter()
    .flatten()
    .filter(|_| multicast)
    .collect()
}

enum Woke {
    Stop(StopReason),
    Report,
    Readable,
    Writable,
    Input(Option<Vec<Command>>),
    Synced(Result<io::Result<()>, tokio::task::JoinError>),
    Saved(Result<io::Result<()>, tokio::task::JoinError>),
    Timer,
}

/// Resolves when any of `socks` is readable (or writable).
async fn any_ready(socks: &[&UdpSocket], write: bool) {
    poll_fn(|cx| {
        for s in socks {
            let r = if write {
                s.poll_send_ready(cx)
            } else {
                s.poll_recv_ready(cx)
            };
            if r.is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}

/// Equal address and port, ignoring IPv6 flow info and the scope id of non-link-local ones.
fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip() == b.ip()
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

/// The wall clock in Unix milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn random_seed() -> u64 {
    random_u64().unwrap_or_else(|_| {
        // Only timers and message ids depend on it; the clock is a fallback good enough.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_groups_follow_the_families_and_need_multicast() {
        let v4 = IpAddr::V4(DISCOVERY_IPV4);
        let v6 = IpAddr::V6(DISCOVERY_IPV6);
        assert_eq!(discovery_groups(true, false, true), [v4]);
        assert_eq!(discovery_groups(false, true, true), [v6]);
        assert_eq!(discovery_groups(true, true, true), [v4, v6]);
        // --no-multicast: nothing is joined, so nothing is sent to the group either (the
        // core's discovery stays off, and a Dest::Discovery transmit has no target).
        assert!(discovery_groups(true, true, false).is_empty());
    }
}
