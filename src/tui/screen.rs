//! The screen's state and how runtime events and user input change it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crossterm::event::{KeyEvent, MouseEvent, MouseEventKind};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};
use ratatui::text::Span;

use super::input::InputLine;
use super::keys::{self, Action};
use super::pane::{Entry, Kind, Pane};
use super::theme::Theme;
use super::whois::{PaneRef, WhoIsLines, describe};
use crate::app::{Addressee, Command, OwnedEvent, Status, Which};
use crate::command_line::{self, ACTION_PREFIX, COMMANDS, Input};
use crate::direct_history::{DirectRecord, DirectState};
use crate::display::{fingerprint, fingerprint_digits, terminal_safe};
use crate::lobby_keys::JoinHow;
use crate::proto::listings::MAX_LISTED;
use crate::proto::wire::WhoIsPeer;
use crate::proto::{FriendInfo, Listed, Lobby, LobbyId, Message, MsgId, PeerId};

/// Rows a mouse wheel step scrolls.
const WHEEL_ROWS: isize = 3;
/// Peers with a new key remembered: beyond this, only those still in a lobby are kept (the
/// runtime tells every flagged event anew, so nothing shown is lost).
const MAX_NEW_KEY_PEERS: usize = 4096;
/// What a line of a peer with a new key says after its nick.
const NEW_KEY: &str = "(new key!)";
/// What an own direct message says until its addressee acknowledges it.
pub const DIRECT_PENDING: &str = "(pending)";
/// What an own direct message says when it was never acknowledged.
pub const DIRECT_FAILED: &str = "(not delivered)";
/// Own direct messages waiting for their acknowledgement that the screen remembers (the
/// runtime keeps at most 256 pending).
const MAX_PENDING_DIRECTS: usize = 1024;
/// Invitations, received or sent, the screen remembers for the lines that follow them.
const MAX_SHOWN_INVITATIONS: usize = 64;
/// Lines a change of the LAN's lobby list takes at most: a busy segment must not flood the
/// pane while the list is watched; `/list` shows the whole list.
pub const MAX_LIST_CHANGES: usize = 8;
/// Columns a lobby's name is padded to in the lobby list, at most: names are up to 64 bytes.
const LIST_NAME_WIDTH: usize = 24;

/// When the bell rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BellSettings {
    /// On a message that mentions own nick or a highlight word.
    pub highlight: bool,
    /// On a message addressed to own nick (`nick: ...` or `nick, ...`).
    pub direct: bool,
}

impl Default for BellSettings {
    fn default() -> Self {
        BellSettings {
            highlight: true,
            direct: true,
        }
    }
}

/// Settings from the config file and the command line.
#[derive(Clone, Debug)]
pub struct ScreenSettings {
    /// Own nick at start.
    pub nick: String,
    /// Extra highlight words (own nick always highlights), case-insensitive.
    pub highlights: Vec<String>,
    /// When the bell rings.
    pub bell: BellSettings,
    /// strftime-like format of timestamps, as jiff takes it.
    pub timestamp_format: String,
    /// The zone timestamps are shown in: the system's, or UTC in tests.
    pub time_zone: TimeZone,
    /// Lines kept per pane; older ones are dropped.
    pub scrollback: usize,
    /// A paste of more lines than this asks for confirmation.
    pub paste_confirm_lines: usize,
    /// False: no colours at all (NO_COLOR, the config); bold, dim and reverse remain.
    pub colours: bool,
    /// Mouse capture at start.
    pub mouse: bool,
}

impl Default for ScreenSettings {
    fn default() -> Self {
        ScreenSettings {
            nick: String::new(),
            highlights: Vec::new(),
            bell: BellSettings::default(),
            timestamp_format: "%H:%M".to_owned(),
            time_zone: TimeZone::system(),
            scrollback: 10_000,
            paste_confirm_lines: 5,
            colours: true,
            mouse: false,
        }
    }
}

/// What the screen asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Hand this command to the runtime.
    Command(Command),
    /// `/quit` or Ctrl-c: send [`Command::Quit`] and exit.
    Quit,
    /// Ring the terminal bell.
    Bell,
    /// Turn the terminal's mouse capture on or off.
    SetMouseCapture(bool),
}

/// How the screen names a peer in a lobby: its nick, with a fingerprint of its peer id
/// (`ann#3fa2`) when another participant uses the same nick, and whether its key is new for
/// the nick (flagged until `/trust`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Shown {
    /// The nick, with its fingerprint if it has a namesake; terminal-safe.
    pub name: String,
    /// Whether the key is new for the nick: its lines say `(new key!)`.
    pub new_key: bool,
}

impl Shown {
    /// The name with its flag, for system lines.
    fn label(&self) -> String {
        if self.new_key {
            format!("{} {NEW_KEY}", self.name)
        } else {
            self.name.clone()
        }
    }

    fn tone(&self) -> Tone {
        if self.new_key {
            Tone::Warning
        } else {
            Tone::Normal
        }
    }
}

/// One participant of a lobby as the participant list shows it.
#[derive(Clone, Debug)]
pub(super) struct Participant {
    /// Who (this node's own id, or 0 before it is known, for `own`).
    pub peer: PeerId,
    /// How it is named.
    pub shown: Shown,
    /// This node.
    pub own: bool,
}

/// How a system line looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tone {
    Normal,
    /// A new key: the theme's warning.
    Warning,
    Error,
}

impl Tone {
    fn of_error(error: bool) -> Tone {
        if error { Tone::Error } else { Tone::Normal }
    }
}

/// What follows a private lobby's name in the lobby list, the status bar and `/list`: plain
/// ASCII, which every terminal and font shows.
pub const PRIVATE_MARK: &str = " (private)";

/// A joined lobby: its scrollback and who is in it.
#[derive(Debug)]
pub(super) struct LobbyView {
    pub lobby: Lobby,
    /// The name as shown: terminal-safe, with [`PRIVATE_MARK`] for a private lobby.
    pub name: String,
    /// A private lobby (PROTOCOL.md 2.4).
    pub private: bool,
    pub pane: Pane,
    /// Other members and their nicks, terminal-safe.
    pub members: BTreeMap<PeerId, String>,
    /// Packets being repaired, from the last status.
    pub missing: usize,
    /// A conversation of direct messages with this peer (`@nick`), not a lobby: `lobby` is
    /// then a stand-in that no runtime event about a lobby names.
    pub direct: Option<PeerId>,
}

/// The chat screen: see the [module documentation](super).
#[derive(Debug)]
pub struct Screen {
    pub(super) nick: String,
    /// Highlight words, lower-cased.
    highlights: Vec<String>,
    bell: BellSettings,
    timestamp_format: String,
    time_zone: TimeZone,
    scrollback: usize,
    paste_confirm_lines: usize,
    pub(super) theme: Theme,
    pub(super) mouse: bool,
    pub(super) own_peer: Option<PeerId>,
    pub(super) lobbies: Vec<LobbyView>,
    /// Index into `lobbies`; `None` shows the status pane.
    pub(super) current: Option<usize>,
    /// Where output goes while no lobby is joined.
    pub(super) status_pane: Pane,
    pub(super) input: InputLine,
    /// A paste waiting for Enter or Esc, and its line count.
    pub(super) paste: Option<(String, usize)>,
    /// Lobby names (normalised) joined from here: the screen switches to them on `Joined`.
    pending_joins: Vec<String>,
    pub(super) status: Option<Status>,
    /// Peers whose key is new for a nick (terminal-safe), until `/trust` accepts it.
    new_keys: HashMap<PeerId, Vec<String>>,
    /// Own direct messages waiting for their acknowledgement: their addressee and line.
    pending_directs: HashMap<MsgId, (PeerId, u64)>,
    /// Invitations received and waiting, oldest first: the lobby `/accept` switches to.
    invitations: VecDeque<(String, LobbyId)>,
    /// Own invitations waiting for their acknowledgement: `NICK to LOBBY`, for the line that
    /// tells what became of them.
    sent_invitations: VecDeque<(MsgId, String)>,
    /// `/status` requests not yet answered: only those answers are printed.
    status_wanted: usize,
    /// The peers found by recent `/whois` queries, and their lines.
    whois: WhoIsLines,
    /// Friends' nicks by peer id (terminal-safe), from their links coming up: how a who-is
    /// line names a friend that answered.
    friend_nicks: HashMap<PeerId, String>,
    /// `/list` requests not yet answered: their answers are shown whole, later lists as
    /// changes.
    list_wanted: usize,
    /// The LAN's lobby list as last shown, by normalised name (at most [`MAX_LISTED`]), and
    /// whether it was cut; `None` before the first `/list`.
    lan_list: Option<(BTreeMap<String, u64>, bool)>,
    /// The wall clock of the last event or [`Screen::set_clock`], unix ms; 0 if unknown.
    now_ms: u64,
    /// Columns a timestamp takes, so that lines without one still line up.
    time_width: usize,
    pub(super) dirty: bool,
    /// Rows of the message area at the last draw: a page.
    pub(super) page: u16,
    effects: Vec<Effect>,
}

impl Screen {
    /// A screen with no lobby yet.
    pub fn new(settings: ScreenSettings) -> Screen {
        let mut s = Screen {
            nick: terminal_safe(&settings.nick).into_owned(),
            highlights: settings
                .highlights
                .iter()
                .map(|h| h.trim().to_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            bell: settings.bell,
            timestamp_format: settings.timestamp_format,
            time_zone: settings.time_zone,
            scrollback: settings.scrollback,
            paste_confirm_lines: settings.paste_confirm_lines,
            theme: Theme::new(settings.colours),
            mouse: settings.mouse,
            own_peer: None,
            lobbies: Vec::new(),
            current: None,
            status_pane: Pane::new(settings.scrollback),
            input: InputLine::new(),
            paste: None,
            pending_joins: Vec::new(),
            status: None,
            new_keys: HashMap::new(),
            pending_directs: HashMap::new(),
            invitations: VecDeque::new(),
            sent_invitations: VecDeque::new(),
            status_wanted: 0,
            whois: WhoIsLines::default(),
            friend_nicks: HashMap::new(),
            list_wanted: 0,
            lan_list: None,
            now_ms: 0,
            time_width: 0,
            dirty: true,
            page: 10,
            effects: Vec::new(),
        };
        // 2001-09-09 01:46:40 UTC: a sample with two-digit fields everywhere.
        s.time_width = unicode_width::UnicodeWidthStr::width(
            s.format_time(1_000_000_000_000)
                .unwrap_or_default()
                .as_str(),
        );
        s
    }

    /// Sets the wall clock (unix ms) used to timestamp lines made by keys (errors, command
    /// output, own texts before the runtime confirms them). Events set it too.
    pub fn set_clock(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Shows a line of the program's own (e.g. what it is doing while it starts) in the
    /// current pane.
    pub fn note(&mut self, text: &str) {
        self.say(text, false);
        self.dirty = true;
    }

    /// Whether something changed since the last [`Screen::render`].
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Effects that events caused (the bell), taken: call after [`Screen::on_event`].
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Ends a batch of runtime events. The runtime gives a lobby's history in the same batch
    /// as its `Joined`, so the history's marker line shows at once, not only when someone
    /// speaks.
    pub fn end_of_batch(&mut self) {
        let marker = self.theme.marker();
        for l in &mut self.lobbies {
            l.pane.end_history(marker);
        }
    }

    /// Whether mouse capture is meant to be on.
    pub fn mouse_capture(&self) -> bool {
        self.mouse
    }

    /// Draws the whole screen. Never panics, at any size.
    pub fn render(&mut self, frame: &mut ratatui::Frame) {
        super::render::draw(self, frame);
        self.dirty = false;
    }

    // ---- time ----

    fn local(&self, ms: u64) -> Option<ZonedDateTime> {
        let ts = Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
        Some(ts.to_zoned_datetime(self.time_zone.clone()))
    }

    fn format_time(&self, ms: u64) -> Option<String> {
        let z = self.local(ms)?;
        jiff::fmt::strtime::format(&self.timestamp_format, &z)
            .or_else(|_| jiff::fmt::strtime::format("%H:%M", &z))
            .ok()
            .map(|t| terminal_safe(&t).into_owned())
    }

    /// The timestamp span (with its trailing space) and the local date of `ms`; blank when
    /// the time is unknown (0), so the line still lines up.
    fn stamp(&self, ms: u64) -> (Span<'static>, Option<Date>) {
        let (text, date) = if ms == 0 {
            (String::new(), None)
        } else {
            (
                self.format_time(ms).unwrap_or_default(),
                self.local(ms).map(|z| z.date()),
            )
        };
        let pad = self
            .time_width
            .saturating_sub(unicode_width::UnicodeWidthStr::width(text.as_str()));
        let span = if self.time_width == 0 {
            Span::raw("")
        } else {
            Span::styled(format!("{text}{} ", " ".repeat(pad)), self.theme.time())
        };
        (span, date)
    }

    // ---- building lines ----

    /// A chat line from a message: own or another's, with its tags; `who` is how its writer
    /// is named.
    fn chat_entry(
        &self,
        msg: &Message,
        kind: Kind,
        highlight: bool,
        who: Shown,
    ) -> (Entry, Option<Date>) {
        let (time, date) = self.stamp(msg.sent_at);
        let own = matches!(kind, Kind::Own | Kind::Pending | Kind::Failed);
        let nick = who.name;
        // The space is not part of the warning: the badge stands apart from the nick.
        let flag: Vec<Span<'static>> = if who.new_key {
            vec![Span::raw(" "), Span::styled(NEW_KEY, self.theme.warning())]
        } else {
            Vec::new()
        };
        let nick_style = if own {
            self.theme.own_nick(Some(msg.source))
        } else {
            self.theme.nick(msg.source)
        };
        let mut prefix = vec![time];
        if msg.late {
            prefix.push(Span::styled("late ", self.theme.late()));
        }
        let text = match command_line::action(&msg.text) {
            Some(action) => {
                prefix.push(Span::styled("* ", nick_style));
                prefix.push(Span::styled(nick, nick_style));
                prefix.extend(flag);
                prefix.push(Span::raw(" "));
                action
            }
            None => {
                prefix.push(Span::raw("<"));
                prefix.push(Span::styled(nick, nick_style));
                prefix.extend(flag);
                prefix.push(Span::raw("> "));
                msg.text.as_str()
            }
        };
        let style = match kind {
            Kind::Pending => self.theme.pending(),
            Kind::Failed => self.theme.error(),
            _ if highlight => self.theme.highlight(),
            _ => self.theme.text(),
        };
        (Entry::new(kind, prefix, body_lines(text), style), date)
    }

    /// A system line (joins, errors, command output), timestamped now.
    fn system_entry(&self, text: &str, tone: Tone) -> (Entry, Option<Date>) {
        let (time, date) = self.stamp(self.now_ms);
        let style = match tone {
            Tone::Normal => self.theme.system(),
            Tone::Warning => self.theme.warning(),
            Tone::Error => self.theme.error(),
        };
        let mark = if tone == Tone::Error { "!! " } else { "-- " };
        let prefix = vec![time, Span::styled(mark, style)];
        (
            Entry::new(Kind::System, prefix, body_lines(text), style),
            date,
        )
    }

    /// Adds a system line to the pane shown now.
    fn say(&mut self, text: &str, error: bool) {
        self.say_tone(text, Tone::of_error(error));
    }

    /// Adds a system line in this tone to the pane shown now.
    fn say_tone(&mut self, text: &str, tone: Tone) {
        let (e, d) = self.system_entry(text, tone);
        let marker = self.theme.marker();
        self.current_pane_mut().push_live(e, d, marker);
        self.dirty = true;
    }

    /// Adds a system line to a lobby's pane.
    fn say_in(&mut self, idx: usize, text: &str, error: bool) {
        self.say_in_tone(idx, text, Tone::of_error(error));
    }

    /// Adds a system line in this tone to a lobby's pane.
    fn say_in_tone(&mut self, idx: usize, text: &str, tone: Tone) {
        let (e, d) = self.system_entry(text, tone);
        let marker = self.theme.marker();
        if let Some(l) = self.lobbies.get_mut(idx) {
            l.pane.push_live(e, d, marker);
        }
        self.dirty = true;
    }

    pub(super) fn current_pane_mut(&mut self) -> &mut Pane {
        match self.current.and_then(|i| self.lobbies.get_mut(i)) {
            Some(l) => &mut l.pane,
            None => &mut self.status_pane,
        }
    }

    pub(super) fn current_lobby(&self) -> Option<&LobbyView> {
        self.current.and_then(|i| self.lobbies.get(i))
    }

    fn find(&self, id: LobbyId) -> Option<usize> {
        self.lobbies
            .iter()
            .position(|l| l.direct.is_none() && l.lobby.id == id)
    }

    /// The index of the conversation pane with `peer`, added (titled `@nick`) if there is
    /// none; the screen stays where it is.
    fn ensure_conversation(&mut self, peer: PeerId, nick: &str) -> usize {
        if let Some(i) = self.lobbies.iter().position(|l| l.direct == Some(peer)) {
            return i;
        }
        let name = format!("@{}", terminal_safe(nick));
        // The participant list of a conversation: this node and the peer.
        let members = BTreeMap::from([(peer, terminal_safe(nick).into_owned())]);
        self.lobbies.push(LobbyView {
            lobby: Lobby {
                name: name.clone(),
                id: LobbyId(peer.0),
            },
            name,
            private: false,
            pane: Pane::new(self.scrollback),
            members,
            missing: 0,
            direct: Some(peer),
        });
        self.lobbies.len() - 1
    }

    /// A line of a conversation: own or the peer's, with what became of an own one.
    fn direct_entry(&self, peer: PeerId, r: &DirectRecord) -> (Entry, Option<Date>) {
        let source = if r.own {
            self.own_peer.unwrap_or_default()
        } else {
            peer
        };
        let msg = Message {
            lobby: LobbyId(peer.0),
            source,
            seq: 0,
            msg_id: r.id,
            sent_at: r.sent_at,
            nick: terminal_safe(&r.nick).into_owned(),
            text: r.text.clone(),
            late: false,
        };
        let who = Shown {
            name: msg.nick.clone(),
            new_key: !r.own && self.is_new_key(peer, &msg.nick),
        };
        let kind = if r.own { Kind::Own } else { Kind::Chat };
        let (mut e, d) = self.chat_entry(&msg, kind, false, who);
        mark_direct(&mut e, r.state, &self.theme);
        (e, d)
    }

    /// An acknowledgement or a failure of an own direct message.
    fn direct_state(&mut self, id: MsgId, peer: PeerId, state: DirectState) {
        let Some((_, line)) = self.pending_directs.remove(&id) else {
            return;
        };
        let Some(idx) = self.lobbies.iter().position(|l| l.direct == Some(peer)) else {
            return;
        };
        if let Some(e) = self.lobbies[idx].pane.get_mut(line) {
            mark_direct(e, state, &self.theme);
            self.dirty = true;
        }
    }

    /// The recent history of a conversation, or the answer to `/query`.
    fn conversation(&mut self, peer: PeerId, nick: &str, history: &[DirectRecord], query: bool) {
        let idx = self.ensure_conversation(peer, nick);
        let marker = self.theme.marker();
        let entries: Vec<_> = history.iter().map(|r| self.direct_entry(peer, r)).collect();
        let pane = &mut self.lobbies[idx].pane;
        for (e, d) in entries {
            pane.push_history(e, d, marker);
        }
        pane.end_history(marker);
        if query {
            self.switch_to(idx);
        }
    }

    /// A direct message from `peer`: its pane gets it, and counts it unread, as a line that
    /// names own nick.
    fn direct(&mut self, peer: PeerId, msg: &DirectRecord) {
        let idx = self.ensure_conversation(peer, &msg.nick);
        if self.bell.direct {
            self.effects.push(Effect::Bell);
        }
        let (e, d) = self.direct_entry(peer, msg);
        let marker = self.theme.marker();
        let shown = self.current == Some(idx);
        let l = &mut self.lobbies[idx];
        l.pane.push_live(e, d, marker);
        if !shown {
            l.pane.unread += 1;
            l.pane.highlight = true;
        }
    }

    /// An own direct message, sent: shown pending in its pane, which opens if needed
    /// without the screen moving there (as irssi opens a query).
    fn direct_sent(&mut self, peer: PeerId, nick: &str, msg: &DirectRecord) {
        let idx = self.ensure_conversation(peer, nick);
        let (e, d) = self.direct_entry(peer, msg);
        let marker = self.theme.marker();
        let pane = &mut self.lobbies[idx].pane;
        let line = pane.push_live(e, d, marker);
        if self.pending_directs.len() >= MAX_PENDING_DIRECTS {
            // The runtime answers every one; a screen that lost count forgets the oldest.
            if let Some(&old) = self.pending_directs.keys().next() {
                self.pending_directs.remove(&old);
            }
        }
        self.pending_directs.insert(msg.id, (peer, line));
    }

    /// The lobby's index, adding it if it is new (a message for a lobby the screen has not
    /// heard joined is still shown).
    fn ensure(&mut self, lobby: &Lobby) -> usize {
        if let Some(i) = self.find(lobby.id) {
            return i;
        }
        self.lobbies.push(LobbyView {
            lobby: lobby.clone(),
            name: terminal_safe(&lobby.name).into_owned(),
            private: false,
            pane: Pane::new(self.scrollback),
            members: BTreeMap::new(),
            missing: 0,
            direct: None,
        });
        self.lobbies.len() - 1
    }

    fn nick_of(&self, idx: usize, peer: PeerId) -> String {
        self.lobbies
            .get(idx)
            .and_then(|l| l.members.get(&peer))
            .cloned()
            .unwrap_or_else(|| peer.to_string())
    }

    // ---- telling namesakes apart ----

    /// Whether `peer`'s key is new for `nick` (terminal-safe).
    fn is_new_key(&self, peer: PeerId, nick: &str) -> bool {
        Some(peer) != self.own_peer
            && self
                .new_keys
                .get(&peer)
                .is_some_and(|nicks| nicks.iter().any(|n| n == nick))
    }

    /// How `peer`, writing as `nick` (terminal-safe), is named in lobby `idx`: with a
    /// fingerprint when another participant (this node included) uses the same nick.
    pub(super) fn shown(&self, idx: usize, peer: PeerId, nick: &str) -> Shown {
        let mut same: Vec<PeerId> = self
            .lobbies
            .get(idx)
            .into_iter()
            .flat_map(|l| l.members.iter())
            .filter(|(p, n)| **p != peer && n.as_str() == nick)
            .map(|(p, _)| *p)
            .collect();
        if let Some(own) = self.own_peer
            && own != peer
            && self.nick == nick
        {
            same.push(own);
        }
        let name = if same.is_empty() {
            nick.to_owned()
        } else {
            same.push(peer);
            format!("{nick}#{}", fingerprint(peer, fingerprint_digits(&same)))
        };
        Shown {
            name,
            new_key: self.is_new_key(peer, nick),
        }
    }

    /// Every participant of lobby `idx`, this node included, as shown, sorted by name
    /// (case-insensitively). Namesakes are found in one pass, so a large lobby stays cheap to
    /// draw.
    pub(super) fn participants(&self, idx: usize) -> Vec<Participant> {
        let own = self.own_peer.unwrap_or_default();
        let everyone: Vec<(PeerId, &str, bool)> = self
            .lobbies
            .get(idx)
            .into_iter()
            .flat_map(|l| l.members.iter())
            .filter(|(p, _)| **p != own)
            .map(|(p, n)| (*p, n.as_str(), false))
            .chain(std::iter::once((own, self.nick.as_str(), true)))
            .collect();
        let mut by_nick: HashMap<&str, Vec<PeerId>> = HashMap::new();
        for (p, n, _) in &everyone {
            by_nick.entry(n).or_default().push(*p);
        }
        let mut out: Vec<Participant> = everyone
            .iter()
            .map(|&(peer, nick, own)| {
                let same = &by_nick[nick];
                let name = if same.len() > 1 {
                    format!("{nick}#{}", fingerprint(peer, fingerprint_digits(same)))
                } else {
                    nick.to_owned()
                };
                Participant {
                    peer,
                    shown: Shown {
                        name,
                        new_key: !own && self.is_new_key(peer, nick),
                    },
                    own,
                }
            })
            .collect();
        out.sort_by_cached_key(|p| p.shown.name.to_lowercase());
        out
    }

    /// Flags `peer`'s key as new for `nick` until `/trust`.
    fn add_new_key(&mut self, peer: PeerId, nick: &str) {
        let nick = terminal_safe(nick).into_owned();
        if self.new_keys.len() >= MAX_NEW_KEY_PEERS && !self.new_keys.contains_key(&peer) {
            let lobbies = &self.lobbies;
            self.new_keys
                .retain(|p, _| lobbies.iter().any(|l| l.members.contains_key(p)));
        }
        let nicks = self.new_keys.entry(peer).or_default();
        if !nicks.contains(&nick) {
            nicks.push(nick);
        }
    }

    /// `/trust` answered: `peers` are accepted for `nick`.
    fn trusted(&mut self, nick: &str, peers: &[PeerId]) {
        let nick = terminal_safe(nick).into_owned();
        if peers.is_empty() {
            self.say(&format!("no new key for {nick}"), false);
            return;
        }
        for p in peers {
            if let Some(nicks) = self.new_keys.get_mut(p) {
                nicks.retain(|n| *n != nick);
                if nicks.is_empty() {
                    self.new_keys.remove(p);
                }
            }
        }
        let digits = fingerprint_digits(peers);
        let names: Vec<String> = peers
            .iter()
            .map(|p| format!("{nick}#{}", fingerprint(*p, digits)))
            .collect();
        let text = match names.as_slice() {
            [one] => format!("trusted the new key of {nick} ({one})"),
            many => format!(
                "trusted {} new keys of {nick} ({})",
                many.len(),
                many.join(", ")
            ),
        };
        self.say(&text, false);
    }

    /// Shows the lobby with this index.
    fn switch_to(&mut self, idx: usize) {
        if idx >= self.lobbies.len() || self.current == Some(idx) {
            return;
        }
        self.current_pane_mut().leave();
        self.current = Some(idx);
        self.current_pane_mut().enter();
        self.dirty = true;
    }

    // ---- highlights ----

    /// Whether `text` mentions own nick or a highlight word, as a whole word.
    fn mentions(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        let nick = self.nick.to_lowercase();
        std::iter::once(&nick)
            .chain(self.highlights.iter())
            .any(|w| has_word(&text, w))
    }

    /// Whether `text` is addressed to own nick: `nick: ...` or `nick, ...`.
    fn addressed(&self, text: &str) -> bool {
        let nick = self.nick.to_lowercase();
        if nick.is_empty() {
            return false;
        }
        let text = text.to_lowercase();
        text.strip_prefix(&nick)
            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with(','))
    }

    // ---- runtime events ----

    /// Takes a runtime event; `now_ms` is the wall clock (unix ms), which timestamps system
    /// lines and decides day changes.
    pub fn on_event(&mut self, ev: OwnedEvent, now_ms: u64) {
        self.now_ms = now_ms;
        self.dirty = true;
        let marker = self.theme.marker();
        match ev {
            OwnedEvent::Joined {
                lobby,
                peer,
                private,
                ..
            } => {
                self.own_peer = Some(peer);
                let idx = self.ensure(&lobby);
                if private && !self.lobbies[idx].private {
                    let l = &mut self.lobbies[idx];
                    l.private = true;
                    l.name.push_str(PRIVATE_MARK);
                }
                let wanted = self.pending_joins.iter().position(|n| *n == lobby.name);
                if let Some(w) = wanted {
                    self.pending_joins.remove(w);
                }
                if wanted.is_some() || self.current.is_none() {
                    self.switch_to(idx);
                }
            }
            OwnedEvent::Parted { lobby } => {
                let Some(idx) = self.find(lobby.id) else {
                    return;
                };
                let name = self.lobbies[idx].name.clone();
                self.lobbies.remove(idx);
                self.current = match self.current {
                    _ if self.lobbies.is_empty() => None,
                    Some(c) if c > idx => Some(c - 1),
                    Some(c) if c == idx => Some(idx.min(self.lobbies.len() - 1)),
                    c => c,
                };
                self.current_pane_mut().enter();
                self.say(&format!("left {name}"), false);
            }
            OwnedEvent::History { lobby, msg, own } => {
                let idx = self.ensure(&lobby);
                let kind = if own { Kind::Own } else { Kind::Chat };
                // Who else used the nick back then is not known: the nick as it was.
                let who = Shown {
                    name: terminal_safe(&msg.nick).into_owned(),
                    new_key: false,
                };
                let (e, d) = self.chat_entry(&msg, kind, false, who);
                self.lobbies[idx].pane.push_history(e, d, marker);
            }
            OwnedEvent::Message { lobby, msg } => self.message(&lobby, &msg),
            OwnedEvent::Sent { lobby, msg } => {
                let idx = self.ensure(&lobby);
                let who = self.shown(idx, msg.source, &terminal_safe(&msg.nick));
                let (e, d) = self.chat_entry(&msg, Kind::Own, false, who);
                let pane = &mut self.lobbies[idx].pane;
                match pane.take_pending() {
                    Some(line) => *line = e,
                    None => {
                        pane.push_live(e, d, marker);
                    }
                }
            }
            OwnedEvent::SendFailed { lobby, error } => {
                let idx = self.ensure(&lobby);
                let why = format!("not sent: {}", terminal_safe(&error));
                let style = self.theme.error();
                match self.lobbies[idx].pane.take_pending() {
                    Some(line) => {
                        line.kind = Kind::Failed;
                        line.style = style;
                        line.note = Some((why, style));
                        line.changed();
                    }
                    None => self.say_in(idx, &why, true),
                }
            }
            OwnedEvent::CommandFailed { error } => self.say(&error, true),
            OwnedEvent::OwnNick { nick } => {
                self.nick = terminal_safe(&nick).into_owned();
                let text = format!("you are now known as {}", self.nick);
                self.say(&text, false);
            }
            OwnedEvent::PeerJoined { lobby, peer, nick } => {
                let Some(idx) = self.find(lobby.id) else {
                    return;
                };
                if Some(peer) == self.own_peer {
                    return;
                }
                let nick = terminal_safe(&nick).into_owned();
                // A member heard again while still listed is no news (unless renamed).
                let before = self.lobbies[idx].members.get(&peer).cloned();
                let old = before.map(|n| self.shown(idx, peer, &n));
                self.lobbies[idx].members.insert(peer, nick.clone());
                let now = self.shown(idx, peer, &nick);
                match old {
                    None => self.say_in_tone(idx, &format!("{} joined", now.label()), now.tone()),
                    Some(old) if old.name != now.name || old.new_key != now.new_key => {
                        let text = format!("{} is now known as {}", old.name, now.label());
                        self.say_in_tone(idx, &text, now.tone());
                    }
                    Some(_) => {}
                }
            }
            OwnedEvent::NickChanged { lobby, peer, nick } => {
                let Some(idx) = self.find(lobby.id) else {
                    return;
                };
                if Some(peer) == self.own_peer {
                    return;
                }
                let old = self.shown(idx, peer, &self.nick_of(idx, peer));
                let nick = terminal_safe(&nick).into_owned();
                self.lobbies[idx].members.insert(peer, nick.clone());
                let now = self.shown(idx, peer, &nick);
                let text = format!("{} is now known as {}", old.name, now.label());
                self.say_in_tone(idx, &text, now.tone());
            }
            OwnedEvent::PeerLeft { lobby, peer } => {
                let Some(idx) = self.find(lobby.id) else {
                    return;
                };
                let who = self.shown(idx, peer, &self.nick_of(idx, peer));
                if self.lobbies[idx].members.remove(&peer).is_some() {
                    self.say_in_tone(idx, &format!("{} left", who.label()), who.tone());
                }
            }
            OwnedEvent::Members { lobby, members } => {
                let Some(idx) = self.find(lobby.id) else {
                    return;
                };
                let own = self.own_peer;
                let l = &mut self.lobbies[idx];
                l.members = members
                    .iter()
                    .filter(|(p, _)| Some(*p) != own)
                    .map(|(p, n)| (*p, terminal_safe(n).into_owned()))
                    .collect();
                let nicks: Vec<String> = self
                    .participants(idx)
                    .iter()
                    .map(|p| p.shown.label())
                    .collect();
                let text = format!(
                    "members of {} ({}): {}",
                    self.lobbies[idx].name,
                    nicks.len(),
                    nicks.join(", ")
                );
                self.say(&text, false);
            }
            OwnedEvent::NewKey { peer, nick } => self.add_new_key(peer, &nick),
            OwnedEvent::Trusted { nick, peers } => self.trusted(&nick, &peers),
            OwnedEvent::Lost {
                lobby,
                source,
                count,
            } => {
                let Some(idx) = self.find(lobby.id) else {
                    return;
                };
                let nick = self.shown(idx, source, &self.nick_of(idx, source)).name;
                let text = format!("{count} message(s) from {nick} could not be recovered");
                self.say_in(idx, &text, true);
            }
            OwnedEvent::FriendUp { addr, peer, nick } => {
                self.friend_up(peer, &nick);
                let text = format!("friend {} ({addr}) is up", terminal_safe(&nick));
                self.say(&text, false);
            }
            OwnedEvent::FriendInLobby { lobby, addr, .. } => {
                if let Some(idx) = self.find(lobby.id) {
                    self.say_in(idx, &format!("friend {addr} takes part here"), false);
                }
            }
            OwnedEvent::FriendDown { addr, .. } => {
                self.say(&format!("friend {addr} is down"), false);
            }
            OwnedEvent::Friends { friends } => self.show_friends(&friends),
            OwnedEvent::Status(status) => {
                for l in &mut self.lobbies {
                    l.missing = status
                        .lobbies
                        .iter()
                        .find(|s| s.lobby.id == l.lobby.id)
                        .map_or(0, |s| s.missing);
                }
                if self.status_wanted > 0 {
                    self.status_wanted -= 1;
                    self.show_status(&status);
                }
                self.status = Some(status);
            }
            OwnedEvent::LobbyList { lobbies, cut } => self.lobby_list(&lobbies, cut),
            OwnedEvent::Stats(_) => {}
            OwnedEvent::Conversation {
                peer,
                nick,
                history,
                query,
            } => self.conversation(peer, &nick, &history, query),
            OwnedEvent::Direct { peer, msg } => self.direct(peer, &msg),
            OwnedEvent::DirectSent { peer, nick, msg } => self.direct_sent(peer, &nick, &msg),
            OwnedEvent::DirectAcked { id, peer } => {
                self.direct_state(id, peer, DirectState::Delivered);
            }
            OwnedEvent::DirectFailed { id, peer } => {
                self.direct_state(id, peer, DirectState::Failed);
            }
            OwnedEvent::Invitation {
                from,
                nick,
                lobby,
                joined,
                ..
            } => self.invitation(from, &nick, &lobby, joined),
            OwnedEvent::InvitationSent {
                id, nick, lobby, ..
            } => {
                let what = format!("{} to {}", terminal_safe(&nick), terminal_safe(&lobby.name));
                self.say(&format!("invitation of {what} sent (pending)"), false);
                if self.sent_invitations.len() >= MAX_SHOWN_INVITATIONS {
                    self.sent_invitations.pop_front();
                }
                self.sent_invitations.push_back((id, what));
            }
            OwnedEvent::InvitationAcked { id, .. } => {
                if let Some(what) = self.take_sent_invitation(id) {
                    self.say(&format!("invitation of {what} received"), false);
                }
            }
            OwnedEvent::InvitationFailed { id, .. } => {
                if let Some(what) = self.take_sent_invitation(id) {
                    let text = format!("invitation of {what} not delivered: never acknowledged");
                    self.say(&text, true);
                }
            }
            OwnedEvent::Declined { lobby, from } => {
                self.invitations.retain(|(_, id)| *id != lobby.id);
                let text = format!(
                    "declined the invitation to {} from {}",
                    terminal_safe(&lobby.name),
                    self.peer_label(from)
                );
                self.say(&text, false);
            }
            OwnedEvent::WhoIsAsked { nick, .. } => {
                let text = format!(
                    "whois {}: asking up to 3 friend hops away",
                    terminal_safe(&nick)
                );
                self.say(&text, false);
            }
            OwnedEvent::WhoIs {
                id,
                nick,
                from,
                peers,
            } => self.whois_answer(id, &nick, from, &peers),
            OwnedEvent::WhoIsDone {
                nick,
                answers,
                peers,
                friends_up,
                ..
            } => {
                let nick = terminal_safe(&nick);
                let text = match (answers, peers) {
                    (0, _) if friends_up == 0 => format!(
                        "whois {nick}: no answer; no friend link is up, so only this node knew"
                    ),
                    (0, _) => format!("whois {nick}: no answer within 3 friend hops"),
                    (a, p) => format!(
                        "whois {nick}: {p} peer{} found, {a} answer{}",
                        plural(p),
                        plural(a)
                    ),
                };
                self.say(&text, false);
            }
        }
    }

    /// Shows an invitation received, and keeps it for `/accept` unless it was joined already.
    fn invitation(&mut self, from: PeerId, nick: &str, lobby: &Lobby, joined: bool) {
        // The name came from the network: valid (no control characters), and made harmless
        // anyway, as every name from a peer is.
        let who = format!("{}#{}", terminal_safe(nick), fingerprint(from, 4));
        let name = terminal_safe(&lobby.name);
        if joined {
            let text = format!("{who} invited you back to the private lobby {name}");
            self.say(&text, false);
            return;
        }
        if self.bell.direct {
            self.effects.push(Effect::Bell);
        }
        self.invitations.retain(|(_, id)| *id != lobby.id);
        if self.invitations.len() >= MAX_SHOWN_INVITATIONS {
            self.invitations.pop_front();
        }
        self.invitations.push_back((lobby.name.clone(), lobby.id));
        let text = format!(
            "{who} invites you to the private lobby {name}: /accept {name} or /decline {name}"
        );
        self.say_tone(&text, Tone::Warning);
    }

    fn take_sent_invitation(&mut self, id: MsgId) -> Option<String> {
        let at = self.sent_invitations.iter().position(|(i, _)| *i == id)?;
        self.sent_invitations.remove(at).map(|(_, what)| what)
    }

    /// A peer as a line names it: its nick in a lobby joined, with the fingerprint suffix.
    fn peer_label(&self, peer: PeerId) -> String {
        let nick = self
            .lobbies
            .iter()
            .find_map(|l| l.members.get(&peer).cloned())
            .unwrap_or_default();
        format!("{nick}#{}", fingerprint(peer, 4))
    }

    /// Remembers a friend's nick, for who-is lines (at most one per friend, and a node has
    /// at most 64).
    fn friend_up(&mut self, peer: PeerId, nick: &str) {
        if self.friend_nicks.len() >= 256 && !self.friend_nicks.contains_key(&peer) {
            self.friend_nicks.clear();
        }
        self.friend_nicks
            .insert(peer, terminal_safe(nick).into_owned());
    }

    /// How a who-is line names the node that answered: "you", a member's or a friend's nick,
    /// else the first digits of its peer id.
    fn answerer(&self, from: PeerId) -> String {
        if Some(from) == self.own_peer {
            return "you".to_owned();
        }
        self.lobbies
            .iter()
            .find_map(|l| l.members.get(&from))
            .or_else(|| self.friend_nicks.get(&from))
            .cloned()
            .unwrap_or_else(|| format!("#{}", fingerprint(from, 4)))
    }

    /// Which pane is shown now.
    fn current_ref(&self) -> PaneRef {
        match self.current_lobby() {
            None => PaneRef::Status,
            Some(l) => match l.direct {
                Some(p) => PaneRef::Direct(p),
                None => PaneRef::Lobby(l.lobby.id),
            },
        }
    }

    fn pane_of(&mut self, r: PaneRef) -> Option<&mut Pane> {
        match r {
            PaneRef::Status => Some(&mut self.status_pane),
            PaneRef::Lobby(id) => self
                .lobbies
                .iter_mut()
                .find(|l| l.direct.is_none() && l.lobby.id == id)
                .map(|l| &mut l.pane),
            PaneRef::Direct(p) => self
                .lobbies
                .iter_mut()
                .find(|l| l.direct == Some(p))
                .map(|l| &mut l.pane),
        }
    }

    /// An answer to `/whois nick`: each peer it names gets a line in the pane shown, or, if
    /// an earlier answer named it already, its line is brought up to date where it is.
    fn whois_answer(&mut self, id: MsgId, nick: &str, from: PeerId, peers: &[WhoIsPeer]) {
        let asked = terminal_safe(nick).into_owned();
        for p in peers {
            let found = self.whois.merge(id, from, p);
            let text = describe(&asked, &found, |v| self.answerer(v));
            let style = self.theme.system();
            // Only its own line: a pane parted and joined again numbers its lines anew.
            let head = format!("whois {asked}: {}#", found.nick);
            if let Some((r, line)) = found.line
                && let Some(e) = self.pane_of(r).and_then(|pane| pane.get_mut(line))
                && e.kind == Kind::System
                && e.body.first().is_some_and(|b| b.starts_with(&head))
            {
                e.body = body_lines(&text);
                e.style = style;
                e.changed();
                continue;
            }
            let (e, d) = self.system_entry(&text, Tone::Normal);
            let marker = self.theme.marker();
            let r = self.current_ref();
            let line = self.current_pane_mut().push_live(e, d, marker);
            self.whois.shown(id, found.peer, (r, line));
        }
        self.dirty = true;
    }

    fn message(&mut self, lobby: &Lobby, msg: &Message) {
        let idx = self.ensure(lobby);
        let from_other = Some(msg.source) != self.own_peer;
        let text = command_line::action(&msg.text).unwrap_or(&msg.text);
        let highlight = from_other && self.mentions(text);
        let direct = from_other && self.addressed(text);
        if (highlight && self.bell.highlight) || (direct && self.bell.direct) {
            self.effects.push(Effect::Bell);
        }
        let who = self.shown(idx, msg.source, &terminal_safe(&msg.nick));
        let (e, d) = self.chat_entry(msg, Kind::Chat, highlight || direct, who);
        let marker = self.theme.marker();
        let shown = self.current == Some(idx);
        let l = &mut self.lobbies[idx];
        l.pane.push_live(e, d, marker);
        if !shown && from_other {
            l.pane.unread += 1;
            l.pane.highlight |= highlight || direct;
        }
    }

    fn show_friends(&mut self, friends: &[FriendInfo]) {
        if friends.is_empty() {
            self.say("no friends (/friend add ADDR:PORT adds one)", false);
            return;
        }
        self.say(&format!("friends ({}):", friends.len()), false);
        for f in friends {
            let nick = f
                .nick
                .as_deref()
                .map_or_else(|| "?".to_owned(), |n| terminal_safe(n).into_owned());
            let rtt = f
                .rtt
                .map_or(String::new(), |r| format!(", rtt {} ms", r.as_millis()));
            let state = if f.up { "up" } else { "down" };
            self.say(&format!("  {} {nick}: {state}{rtt}", f.addr), false);
        }
    }

    fn show_status(&mut self, s: &Status) {
        let text = format!(
            "transport: {}; friends {} of {} up",
            transport(s),
            s.friends_up,
            s.friends
        );
        self.say(&text, false);
        for l in &s.lobbies {
            let text = format!(
                "  {}: {} member(s) heard, {} packet(s) being repaired",
                terminal_safe(&l.lobby.name),
                l.members,
                l.missing
            );
            self.say(&text, false);
        }
    }

    // ---- user input ----

    /// Takes a key; returns what the caller must do.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(action) = keys::action(&key) else {
            return Vec::new();
        };
        self.dirty = true;
        if let Some((text, _)) = self.paste.take() {
            return match action {
                Action::Submit => {
                    self.input.insert(&text);
                    self.submit()
                }
                Action::Quit => vec![Effect::Quit],
                Action::Cancel => Vec::new(),
                _ => {
                    // Anything else leaves the question open.
                    let lines = text.split('\n').count();
                    self.paste = Some((text, lines));
                    Vec::new()
                }
            };
        }
        match action {
            Action::Quit => return vec![Effect::Quit],
            Action::Submit => return self.submit(),
            Action::Newline => self.input.newline(),
            Action::Complete => self.complete(false),
            Action::CompleteBack => self.complete(true),
            Action::Up => {
                if self.input.on_first_row() {
                    self.input.history_prev();
                } else {
                    self.input.move_row(true);
                }
            }
            Action::Down => {
                if self.input.on_last_row() {
                    self.input.history_next();
                } else {
                    self.input.move_row(false);
                }
            }
            Action::Select(n) => self.switch_to(n - 1),
            Action::NextLobby => self.cycle(1),
            Action::PrevLobby => self.cycle(-1),
            Action::NextActive => self.next_active(),
            Action::PageUp => {
                let page = self.page_rows();
                self.current_pane_mut().scroll_by(page);
            }
            Action::PageDown => {
                let page = self.page_rows();
                self.current_pane_mut().scroll_by(-page);
            }
            Action::Top => self.current_pane_mut().scroll_top(),
            Action::Bottom => self.current_pane_mut().scroll_bottom(),
            Action::ToggleMouse => {
                self.mouse = !self.mouse;
                return vec![Effect::SetMouseCapture(self.mouse)];
            }
            Action::Cancel | Action::Redraw => {}
            Action::KillToHead => self.input.kill_to_head(),
            Action::Edit => {
                self.input.edit(key);
            }
        }
        Vec::new()
    }

    /// Takes a bracketed paste: into the input line, as one multi-line text; a long one
    /// waits for Enter (send) or Esc (drop).
    pub fn on_paste(&mut self, text: &str) -> Vec<Effect> {
        let text = clean_paste(text);
        if text.is_empty() {
            return Vec::new();
        }
        self.dirty = true;
        let lines = text.split('\n').count();
        if lines > self.paste_confirm_lines {
            self.paste = Some((text, lines));
        } else {
            self.input.insert(&text);
        }
        Vec::new()
    }

    /// Takes a mouse event (only delivered while capture is on): the wheel scrolls.
    pub fn on_mouse(&mut self, m: MouseEvent) -> Vec<Effect> {
        match m.kind {
            MouseEventKind::ScrollUp => self.current_pane_mut().scroll_by(WHEEL_ROWS),
            MouseEventKind::ScrollDown => self.current_pane_mut().scroll_by(-WHEEL_ROWS),
            _ => return Vec::new(),
        }
        self.dirty = true;
        Vec::new()
    }

    fn page_rows(&self) -> isize {
        isize::try_from(self.page.saturating_sub(1).max(1)).unwrap_or(1)
    }

    fn cycle(&mut self, step: isize) {
        let n = self.lobbies.len();
        if n == 0 {
            return;
        }
        let at = self.current.unwrap_or(0) as isize;
        let next = (at + step).rem_euclid(n as isize) as usize;
        self.switch_to(next);
    }

    fn next_active(&mut self) {
        let n = self.lobbies.len();
        let start = self.current.map_or(0, |c| c + 1);
        let order = (0..n).map(|k| (start + k) % n);
        let pick = order
            .clone()
            .find(|&i| self.lobbies[i].pane.highlight)
            .or_else(|| order.clone().find(|&i| self.lobbies[i].pane.unread > 0));
        if let Some(i) = pick {
            self.switch_to(i);
        }
    }

    fn complete(&mut self, backward: bool) {
        let nicks: Vec<String> = self
            .current_lobby()
            .map(|l| l.members.values().cloned().collect())
            .unwrap_or_default();
        self.input.complete(backward, |word, at_start| {
            candidates(word, at_start, &nicks)
        });
    }

    /// Enter: the input line, understood and carried out.
    fn submit(&mut self) -> Vec<Effect> {
        let line = self.input.take();
        match command_line::parse(&line) {
            Err(e) => {
                self.say(&e, true);
                Vec::new()
            }
            Ok(None) => Vec::new(),
            Ok(Some(input)) => self.run(input),
        }
    }

    fn run(&mut self, input: Input) -> Vec<Effect> {
        let cmd = match input {
            Input::Text(t) => return self.send(t),
            Input::Me(t) => return self.send(format!("{ACTION_PREFIX}{t}")),
            Input::Join { name, how } => {
                if let Ok(lobby) = Lobby::new(&name) {
                    // By name: a private lobby's id is not its name's.
                    match self.lobbies.iter().position(|l| l.lobby.name == lobby.name) {
                        // Joined already: /join only switches, as in irssi. A passphrase, or
                        // public for private and the reverse, goes to the runtime, which says
                        // why not.
                        Some(i)
                            if self.lobbies[i].private == how.is_private()
                                && !matches!(how, JoinHow::Passphrase(_)) =>
                        {
                            self.switch_to(i);
                            return Vec::new();
                        }
                        Some(_) => {}
                        None => self.pending_joins.push(lobby.name),
                    }
                }
                Command::Join { name, how }
            }
            Input::Part(None) if self.current_lobby().is_some_and(|l| l.direct.is_some()) => {
                self.close_current();
                return Vec::new();
            }
            Input::Part(name) => match self.lobby_named(name.as_deref()) {
                Some(lobby) => Command::Part { lobby },
                None => return Vec::new(),
            },
            Input::Nick(nick) => Command::Nick { nick },
            Input::Trust(nick) => Command::Trust { nick },
            Input::Msg { nick, text } => Command::Direct {
                to: Addressee::Nick(nick),
                text,
            },
            Input::Query(nick) => Command::Query { nick },
            Input::WhoIs(nick) => Command::WhoIs { nick },
            Input::Who(name) => match self.lobby_named(name.as_deref()) {
                Some(lobby) => Command::Who { lobby },
                None => return Vec::new(),
            },
            Input::Invite { nick, lobby } => match self.lobby_named(lobby.as_deref()) {
                Some(lobby) => Command::Invite { nick, lobby },
                None => return Vec::new(),
            },
            Input::Accept(which) => {
                // Switch to the lobby when it is joined, as after /join.
                let name = match which.as_deref() {
                    None => self.invitations.back().map(|(n, _)| n.clone()),
                    Some(w) => Which::parse(w).ok().map(|w| w.name),
                };
                if let Some(name) = name {
                    self.invitations.retain(|(n, _)| *n != name);
                    self.pending_joins.push(name);
                }
                Command::Accept { which }
            }
            Input::Decline(which) => Command::Decline { which },
            Input::List => {
                self.list_wanted += 1;
                Command::ListLobbies
            }
            Input::FriendAdd(addr) => Command::AddFriend { addr },
            Input::FriendDel(addr) => Command::RemoveFriend { addr },
            Input::FriendList => Command::ListFriends,
            Input::Status => {
                self.status_wanted += 1;
                Command::Status
            }
            Input::Clear => {
                self.current_pane_mut().clear();
                return Vec::new();
            }
            Input::Help(name) => {
                self.help(name.as_deref());
                return Vec::new();
            }
            Input::Quit => return vec![Effect::Quit],
        };
        vec![Effect::Command(cmd)]
    }

    /// The named lobby, or the current one; says why not if there is none.
    fn lobby_named(&mut self, name: Option<&str>) -> Option<LobbyId> {
        let found = match name {
            None => self.current_lobby().map(|l| l.lobby.id),
            // By name: a private lobby's id is not its name's, and names are unique.
            Some(n) => Lobby::new(n).ok().and_then(|l| {
                self.lobbies
                    .iter()
                    .find(|j| j.direct.is_none() && j.lobby.name == l.name)
                    .map(|j| j.lobby.id)
            }),
        };
        if found.is_none() {
            let why = match name {
                None => "not in a lobby: /join LOBBY first".to_owned(),
                Some(n) => format!("not in lobby {}", terminal_safe(n)),
            };
            self.say(&why, true);
        }
        found
    }

    /// Closes the conversation pane shown (`/part` there): its history file keeps it.
    fn close_current(&mut self) {
        let Some(idx) = self.current else {
            return;
        };
        self.lobbies.remove(idx);
        self.current = if self.lobbies.is_empty() {
            None
        } else {
            Some(idx.min(self.lobbies.len() - 1))
        };
        self.current_pane_mut().enter();
        self.dirty = true;
    }

    /// Sends a text to the current lobby, showing it at once, dimmed until `Sent`; in a
    /// conversation pane, to its peer as a direct message, shown when the runtime sent it.
    fn send(&mut self, text: String) -> Vec<Effect> {
        if let Some(peer) = self.current_lobby().and_then(|l| l.direct) {
            return vec![Effect::Command(Command::Direct {
                to: Addressee::Peer(peer),
                text,
            })];
        }
        let Some(idx) = self.current else {
            if self.own_peer.is_none() {
                // The runtime is still starting (loading history, joining): nothing is lost,
                // the text waits in the input line for Enter again.
                self.input.insert(&text);
                self.say("still joining; the text stays in the input line", false);
            } else {
                self.say("not in a lobby: /join LOBBY first", true);
            }
            return Vec::new();
        };
        let msg = Message {
            lobby: self.lobbies[idx].lobby.id,
            source: self.own_peer.unwrap_or_default(),
            seq: 0,
            msg_id: Default::default(),
            sent_at: self.now_ms,
            nick: self.nick.clone(),
            text: text.clone(),
            late: false,
        };
        let who = self.shown(idx, msg.source, &self.nick);
        let (e, d) = self.chat_entry(&msg, Kind::Pending, false, who);
        let marker = self.theme.marker();
        let pane = &mut self.lobbies[idx].pane;
        pane.scroll_bottom();
        let id = pane.push_live(e, d, marker);
        pane.add_pending(id);
        self.dirty = true;
        vec![Effect::Command(Command::Send {
            lobby: msg.lobby,
            texts: vec![text],
        })]
    }

    /// Whether a public lobby of this normalised name is joined here: the one the list names.
    fn joined_public(&self, name: &str) -> bool {
        self.lobbies
            .iter()
            .any(|l| l.direct.is_none() && !l.private && l.lobby.name == name)
    }

    /// A lobby of the LAN's list as a line: its name padded so that counts line up, its
    /// members, and whether it is joined here.
    fn listed_line(&self, name: &str, members: u64) -> String {
        let shown = terminal_safe(name);
        let pad = LIST_NAME_WIDTH.saturating_sub(unicode_width::UnicodeWidthStr::width(&*shown));
        format!(
            "  {shown}{:pad$}  {}{}",
            "",
            count_members(members),
            self.joined_mark(name)
        )
    }

    /// `  (joined)` after a listed lobby that is joined here.
    fn joined_mark(&self, name: &str) -> &'static str {
        if self.joined_public(name) {
            "  (joined)"
        } else {
            ""
        }
    }

    /// Shows the LAN's lobby list: whole as the answer to `/list`, else only what changed
    /// since it was last shown (new lobbies, new counts, lobbies gone), in at most
    /// [`MAX_LIST_CHANGES`] lines.
    fn lobby_list(&mut self, lobbies: &[Listed], cut: bool) {
        let now: BTreeMap<String, u64> = lobbies
            .iter()
            .take(MAX_LISTED)
            .map(|l| (l.name.clone(), l.members))
            .collect();
        let asked = self.list_wanted > 0;
        self.list_wanted = self.list_wanted.saturating_sub(1);
        let before = self.lan_list.replace((now, cut));
        let cut_line = "list cut: more lobbies than it holds (256), or a node listed only part \
                        of its own";
        match before {
            Some((before, was_cut)) if !asked => {
                let mut changes: Vec<String> = Vec::new();
                // In the core's order: most members first.
                for l in lobbies.iter().take(MAX_LISTED) {
                    match before.get(&l.name) {
                        None => changes.push(format!(
                            "new on the LAN: {}, {}{}",
                            terminal_safe(&l.name),
                            count_members(l.members),
                            self.joined_mark(&l.name)
                        )),
                        Some(&m) if m != l.members => changes.push(format!(
                            "{} on the LAN: {}, was {m}{}",
                            terminal_safe(&l.name),
                            count_members(l.members),
                            self.joined_mark(&l.name)
                        )),
                        Some(_) => {}
                    }
                }
                let now = &self.lan_list.as_ref().expect("just set").0;
                for name in before.keys().filter(|n| !now.contains_key(*n)) {
                    changes.push(format!("gone from the LAN: {}", terminal_safe(name)));
                }
                if cut && !was_cut {
                    changes.push(cut_line.to_owned());
                }
                let more = changes.len().saturating_sub(MAX_LIST_CHANGES);
                if more > 0 {
                    changes.truncate(MAX_LIST_CHANGES - 1);
                    changes.push(format!(
                        "... and {} more change(s) to the lobby list: /list shows it",
                        more + 1
                    ));
                }
                for c in changes {
                    self.say(&c, false);
                }
            }
            _ => {
                if lobbies.is_empty() {
                    self.say(
                        "lobbies on the LAN (0): none heard of yet; those that answer are shown \
                         as they come",
                        false,
                    );
                } else {
                    self.say(&format!("lobbies on the LAN ({}):", lobbies.len()), false);
                    for l in lobbies.iter().take(MAX_LISTED) {
                        let line = self.listed_line(&l.name, l.members);
                        self.say(&line, false);
                    }
                }
                if cut {
                    self.say(cut_line, false);
                }
            }
        }
    }

    fn help(&mut self, name: Option<&str>) {
        match name {
            None => {
                self.say("commands:", false);
                let width = COMMANDS.iter().map(|c| c.usage.len()).max().unwrap_or(0);
                for c in COMMANDS {
                    self.say(&format!("  {:<width$} {}", c.usage, c.help), false);
                }
                self.say("keys: Alt-1..9 lobby, Ctrl-n/p next/previous, Alt-a activity, PgUp/PgDn scroll, Tab complete, Alt-Enter newline, Alt-m mouse, Ctrl-c quit", false);
            }
            Some(n) => match command_line::help(n) {
                Some(c) => self.say(&format!("{}: {}", c.usage, c.help), false),
                None => self.say(
                    &format!("no command /{}; /help lists them", terminal_safe(n)),
                    true,
                ),
            },
        }
    }
}

/// Shows on an own direct message's line what became of it: a dim `(pending)` until it is
/// acknowledged, nothing once delivered, `(not delivered)` when it never was.
fn mark_direct(e: &mut Entry, state: DirectState, theme: &Theme) {
    e.note = match state {
        DirectState::Pending => Some((DIRECT_PENDING.to_owned(), theme.pending())),
        DirectState::Failed => Some((DIRECT_FAILED.to_owned(), theme.error())),
        DirectState::Delivered | DirectState::Received => None,
    };
    if state == DirectState::Failed {
        e.kind = Kind::Failed;
        e.style = theme.error();
    }
    e.changed();
}

/// "s" unless there is one.
fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// "1 member", "5 members".
fn count_members(n: u64) -> String {
    format!("{n} member{}", if n == 1 { "" } else { "s" })
}

/// The transport as the status bar names it.
pub(super) fn transport(s: &Status) -> &'static str {
    match (s.multicast, s.friends_up > 0) {
        (true, true) => "mixed",
        (true, false) => "multicast",
        (false, _) => "friends only",
    }
}

/// A text's lines, each terminal-safe. Carriage returns before a newline go with it; a tab
/// becomes a space rather than a control picture, since pasted code is full of them.
fn body_lines(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|l| {
            let l = l.strip_suffix('\r').unwrap_or(l).replace('\t', "    ");
            terminal_safe(&l).into_owned()
        })
        .collect()
}

/// A paste as the input line takes it: newlines normalised, a final newline dropped, no
/// control characters (a terminal may deliver escape sequences inside a paste).
fn clean_paste(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.strip_suffix('\n').unwrap_or(&text);
    body_lines(text).join("\n")
}

/// Whether `word` occurs in `text` (both lower-cased) not inside a longer word.
fn has_word(text: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// Completions of `word`: commands after a `/` at the line's start, else nicks (`nick: `
/// at the start, `nick ` elsewhere), in alphabetical order.
fn candidates(word: &str, at_start: bool, nicks: &[String]) -> Vec<String> {
    if at_start && let Some(cmd) = word.strip_prefix('/') {
        let cmd = cmd.to_lowercase();
        return COMMANDS
            .iter()
            .filter(|c| c.name.starts_with(&cmd))
            .map(|c| format!("/{} ", c.name))
            .collect();
    }
    let lower = word.to_lowercase();
    let mut found: Vec<&String> = nicks
        .iter()
        .filter(|n| n.to_lowercase().starts_with(&lower))
        .collect();
    found.sort_by_key(|n| n.to_lowercase());
    found.dedup();
    let suffix = if at_start { ": " } else { " " };
    found.into_iter().map(|n| format!("{n}{suffix}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_whole() {
        assert!(has_word("hi alice!", "alice"));
        assert!(!has_word("malice", "alice"));
        assert!(has_word("alice", "alice"));
        assert!(!has_word("alice_2", "alice"));
    }

    #[test]
    fn completion_candidates() {
        let nicks = vec!["Bob".to_owned(), "bea".to_owned(), "carol".to_owned()];
        assert_eq!(candidates("b", true, &nicks), ["bea: ", "Bob: "]);
        assert_eq!(candidates("ca", false, &nicks), ["carol "]);
        assert_eq!(candidates("/jo", true, &nicks), ["/join "]);
    }

    #[test]
    fn pastes_are_cleaned() {
        assert_eq!(clean_paste("a\r\nb\rc\n"), "a\nb\nc");
        assert_eq!(clean_paste("\u{1b}[2J"), "\u{241b}[2J");
    }
}
