//! The configuration file, `$XDG_CONFIG_HOME/lobbycast/config.toml` (else
//! `~/.config/lobbycast/config.toml`) or the file given with `--config`.
//!
//! Every key is optional. A key that is absent leaves the setting to the command line and then
//! to the built-in default; a flag given on the command line always wins over the file (the
//! merge is done by the program, `src/main.rs`). Unknown keys are errors, so that a misspelt
//! key is reported instead of silently doing nothing, and every error names the file, the
//! line, the column and the key.
//!
//! ```toml
//! nick = "ann"
//! lobbies = ["general", "lab"]
//! friends = ["10.2.0.7:47200"]
//!
//! [screen]
//! highlights = ["ann", "deploy"]
//! mouse = true
//! ```

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::net::Family;
use crate::proto::Lobby;
use crate::proto::node::check_nick;

/// Lobbies joined by the screen when neither the command line nor the file names any.
pub const DEFAULT_LOBBY: &str = "general";

/// Multicast TTL when neither the command line nor the file sets one: 1 keeps lobbies on the
/// local segment.
pub const DEFAULT_TTL: u32 = 1;

/// Messages per lobby loaded from the history at start, when not set.
pub const DEFAULT_HISTORY: usize = 1000;

/// Most datagrams sent per second, when not set.
pub const DEFAULT_MAX_RATE: u32 = 40_000;

/// The settings read from a configuration file. `None` (or an empty list) means "not in the
/// file": the command line or the built-in default decides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `nick` (string): nick shown to others, at most 32 bytes. Default: `$USER`, else
    /// `anonymous`. Overridden by `--nick`.
    #[serde(default, deserialize_with = "de_nick")]
    pub nick: Option<String>,
    /// `lobbies` (array of strings): the lobbies the screen joins at start when none is
    /// given on the command line. Default: `["general"]` ([`DEFAULT_LOBBY`]). Names are
    /// checked as lobby names; pipe and relay modes name their lobbies on the command line
    /// and ignore this key.
    #[serde(default, deserialize_with = "de_lobbies")]
    pub lobbies: Option<Vec<String>>,
    /// `friends` (array of `"ADDR:PORT"` strings): friends' unicast addresses. Default: none.
    /// Any `--friend` on the command line replaces the whole list.
    #[serde(default)]
    pub friends: Option<Vec<SocketAddr>>,
    /// `bind` (`"ADDR:PORT"` string): address and port of the unicast socket, which friends
    /// name in their own `friends`. Default: the interface's address, ephemeral port.
    /// Overridden by `--bind`.
    #[serde(default)]
    pub bind: Option<SocketAddr>,
    /// `interface` (string): network interface, by name or by one of its addresses.
    /// Default: the interface of the default route. Overridden by `--iface`.
    #[serde(default)]
    pub interface: Option<String>,
    /// `port` (integer, 1 to 65535): UDP port of the lobbies' groups. Default:
    /// [`DEFAULT_PORT`](crate::proto::ids::DEFAULT_PORT). Overridden by `--port`.
    #[serde(default, deserialize_with = "de_port")]
    pub port: Option<u16>,
    /// `ttl` (integer, 1 to 255): multicast TTL or hop limit. Default: 1 ([`DEFAULT_TTL`]).
    /// Overridden by `--ttl`.
    #[serde(default, deserialize_with = "de_ttl")]
    pub ttl: Option<u32>,
    /// `family` (string: `"auto"`, `"ipv4"`, `"ipv6"` or `"both"`): IP versions. Default:
    /// `"auto"`. Overridden by `--family`.
    #[serde(default, deserialize_with = "de_family", serialize_with = "ser_family")]
    pub family: Option<Family>,
    /// `history` (integer, 0 or more): messages per lobby loaded from the history at start.
    /// Default: 1000 ([`DEFAULT_HISTORY`]). Overridden by `--history`.
    #[serde(default)]
    pub history: Option<usize>,
    /// `no_multicast` (boolean): join no multicast group, reach lobbies through friends only.
    /// Default: false. `--no-multicast` turns it on; the command line cannot turn it off.
    #[serde(default)]
    pub no_multicast: Option<bool>,
    /// `unlisted` (boolean): do not name the lobbies to friends. Default: false.
    /// `--unlisted` turns it on; the command line cannot turn it off.
    #[serde(default)]
    pub unlisted: Option<bool>,
    /// `max_rate` (integer, 0 or more): most datagrams sent per second, 0 for no limit.
    /// Default: 40000 ([`DEFAULT_MAX_RATE`]). Overridden by `--max-rate`.
    #[serde(default)]
    pub max_rate: Option<u32>,
    /// `data_dir` (string, a path): the data directory. It must be absolute or start with
    /// `~/` (the home directory), since a path relative to wherever the program happens to
    /// be started would split one node into several peers. Default:
    /// `$XDG_DATA_HOME/lobbycast`, else `~/.local/share/lobbycast`. Overridden by
    /// `--data-dir`.
    #[serde(default, deserialize_with = "de_data_dir")]
    pub data_dir: Option<PathBuf>,
    /// The `[screen]` table: settings of the full-screen terminal client only.
    #[serde(default)]
    pub screen: ScreenConfig,
}

/// The `[screen]` table: how the terminal client looks and behaves. No flag overrides these,
/// so they hold their defaults directly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScreenConfig {
    /// `highlights` (array of strings): words that mark a message as a highlight (a mark in
    /// the lobby list, and the bell if `bell_on_highlight`), besides the own nick, which
    /// always does. Matched case-insensitively. Default: none.
    pub highlights: Vec<String>,
    /// `bell_on_highlight` (boolean): ring the terminal bell on a highlight. Default: true.
    pub bell_on_highlight: bool,
    /// `bell_on_direct` (boolean): ring the terminal bell on a message addressed to the own
    /// nick (`nick:` or `nick,` at its start). Default: true.
    pub bell_on_direct: bool,
    /// `timestamp_format` (string): how message times are shown, strftime-style (`%H`, `%M`,
    /// `%S`, ...). Default: `"%H:%M"`.
    pub timestamp_format: String,
    /// `colours` (boolean): colour nicks and marks. Default: true; the `NO_COLOR` environment
    /// variable turns colours off whatever this says.
    pub colours: bool,
    /// `mouse` (boolean): capture the mouse at start (the wheel scrolls); Alt-m toggles it.
    /// Default: false, so that the terminal's own selection works.
    pub mouse: bool,
    /// `scrollback` (integer, 1 or more): lines kept per lobby pane. Default: 10000.
    #[serde(deserialize_with = "de_scrollback")]
    pub scrollback: usize,
    /// `paste_confirm_lines` (integer, 0 or more): a bracketed paste of more lines than this
    /// asks for confirmation before it is sent (0: every paste asks). Default: 5.
    pub paste_confirm_lines: usize,
}

impl Default for ScreenConfig {
    fn default() -> Self {
        ScreenConfig {
            highlights: Vec::new(),
            bell_on_highlight: true,
            bell_on_direct: true,
            timestamp_format: "%H:%M".to_owned(),
            colours: true,
            mouse: false,
            scrollback: 10_000,
            paste_confirm_lines: 5,
        }
    }
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (for a `--config FILE`, also when it does not exist).
    #[error("{}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed. Part of the message rather than a `source`, so that a printed error
        /// chain does not say it twice.
        error: io::Error,
    },
    /// The file is not valid TOML, or a key is unknown or has a bad value.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Line of the problem, from 1.
        line: usize,
        /// Column of the problem, in characters, from 1.
        column: usize,
        /// The key concerned (dotted, e.g. `screen.mouse`), when the problem is in one.
        key: Option<String>,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// The default configuration file: `$XDG_CONFIG_HOME/lobbycast/config.toml`, else
/// `~/.config/lobbycast/config.toml`; `None` without a home directory.
pub fn default_path() -> Option<PathBuf> {
    use etcetera::BaseStrategy;
    let base = etcetera::choose_base_strategy().ok()?;
    Some(base.config_dir().join("lobbycast").join("config.toml"))
}

/// Reads and checks the configuration file at `path`. A missing file is an error here: the
/// caller decides whether a missing default file is fine (see [`load_default`]).
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(&text, path)
}

/// Reads the default configuration file ([`default_path`]); a missing file, or no home
/// directory to look in, is an empty configuration.
pub fn load_default() -> Result<FileConfig, ConfigError> {
    let Some(path) = default_path() else {
        return Ok(FileConfig::default());
    };
    match load(&path) {
        Err(ConfigError::Read { error, .. }) if error.kind() == io::ErrorKind::NotFound => {
            Ok(FileConfig::default())
        }
        r => r,
    }
}

/// Parses the text of a configuration file; `path` is only used in errors.
pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    let mut cfg: FileConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        invalid(text, path, span, e.message())
    })?;
    // `~/` is expanded here rather than in the deserializer so that a missing home directory
    // is reported like any other bad value, at the key.
    if let Some(dir) = &cfg.data_dir
        && let Ok(rest) = dir.strip_prefix("~")
    {
        match etcetera::home_dir() {
            Ok(home) => cfg.data_dir = Some(home.join(rest)),
            Err(_) => {
                let span = key_span(text, "data_dir").unwrap_or(0..0);
                return Err(invalid(
                    text,
                    path,
                    span,
                    "data_dir: no home directory to expand `~` in",
                ));
            }
        }
    }
    Ok(cfg)
}

/// Every key the file may hold, dotted (`screen.mouse`), tables included (`screen`), taken
/// from the code: a configuration with every key set is serialised and its keys collected.
/// The man page test checks each against `lobbycast.conf(5)`.
pub fn keys() -> Vec<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in table {
            let key = format!("{prefix}{k}");
            out.push(key.clone());
            if let toml::Value::Table(t) = v {
                walk(&format!("{key}."), t, out);
            }
        }
    }
    // Serialising plain strings, numbers and booleans into a table cannot fail.
    let table = toml::Table::try_from(populated()).unwrap_or_default();
    let mut out = Vec::new();
    walk("", &table, &mut out);
    out
}

/// A configuration with every key set (unlike [`FileConfig::default`], where the top-level
/// keys are absent), so that [`keys`] sees all of them. The struct literal has no `..`, so a
/// new field cannot be forgotten here without the compiler noticing.
fn populated() -> FileConfig {
    FileConfig {
        nick: Some("ann".into()),
        lobbies: Some(vec![DEFAULT_LOBBY.into()]),
        friends: Some(vec![SocketAddr::from(([192, 0, 2, 7], 47200))]),
        bind: Some(SocketAddr::from(([192, 0, 2, 5], 47200))),
        interface: Some("eth0".into()),
        port: Some(crate::proto::ids::DEFAULT_PORT),
        ttl: Some(DEFAULT_TTL),
        family: Some(Family::Auto),
        history: Some(DEFAULT_HISTORY),
        no_multicast: Some(false),
        unlisted: Some(false),
        max_rate: Some(DEFAULT_MAX_RATE),
        data_dir: Some(PathBuf::from("/var/lib/lobbycast")),
        screen: ScreenConfig::default(),
    }
}

/// An [`ConfigError::Invalid`] at byte `span` of `text`, naming the key found there.
fn invalid(text: &str, path: &Path, span: Range<usize>, message: &str) -> ConfigError {
    let (line, column) = line_column(text, span.start);
    let key = key_at(text, span.start);
    // Serde's own messages name an unknown key ("unknown field `nik`") but not the key of a
    // bad value ("invalid type: string \"x\", expected u16"): prefix the key when missing.
    let message = match &key {
        Some(k) => {
            let leaf = k.rsplit('.').next().unwrap_or(k);
            if message.contains(&format!("`{leaf}`")) || message.starts_with(&format!("{k}:")) {
                message.to_owned()
            } else {
                format!("{k}: {message}")
            }
        }
        None => message.to_owned(),
    };
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        column,
        key,
        message,
    }
}

/// Line and column (both from 1, the column in characters) of byte `pos` of `text`.
fn line_column(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    // A span from the parser falls on a character boundary; step back to one if it does not.
    let pos = (0..=pos)
        .rev()
        .find(|&p| text.is_char_boundary(p))
        .unwrap_or(0);
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The dotted key whose name or value covers byte `pos` of `text`, the innermost one. The
/// text is parsed again, keeping spans, only when there is an error to report.
fn key_at(text: &str, pos: usize) -> Option<String> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut best: Option<(String, usize)> = None;
    find_key(doc.get_ref(), "", pos, &mut best);
    best.map(|(k, _)| k)
}

fn find_key(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    pos: usize,
    best: &mut Option<(String, usize)>,
) {
    for (k, v) in table {
        let key = format!("{prefix}{}", k.get_ref());
        let (ks, vs) = (k.span(), v.span());
        // The key's own name, or its value (an inline value; a `[table]`'s span may be its
        // header only, so tables are searched below whatever their span).
        let hit = if ks.contains(&pos) || (ks.start == pos && ks.is_empty()) {
            Some(0)
        } else if vs.contains(&pos) || vs.end == pos {
            Some(vs.len())
        } else {
            None
        };
        if let Some(size) = hit
            && best.as_ref().is_none_or(|(_, s)| size <= *s)
        {
            *best = Some((key.clone(), size));
        }
        if let toml::de::DeValue::Table(t) = v.get_ref() {
            find_key(t, &format!("{key}."), pos, best);
        }
    }
}

/// The span of the value of the top-level `key`.
fn key_span(text: &str, key: &str) -> Option<Range<usize>> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    doc.get_ref()
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(_, v)| v.span())
}

fn de_nick<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let nick = String::deserialize(d)?;
    check_nick(&nick)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("nick: {e}")))
}

fn de_lobbies<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let mut ids = Vec::new();
    for name in &names {
        let lobby = Lobby::new(name)
            .map_err(|e| serde::de::Error::custom(format!("lobbies: {name:?}: {e}")))?;
        if ids.contains(&lobby.id) {
            return Err(serde::de::Error::custom(format!(
                "lobbies: {name:?} is named twice"
            )));
        }
        ids.push(lobby.id);
    }
    Ok(Some(names))
}

/// An integer in `lo..=hi`; the message names the range rather than serde's "expected u16".
fn in_range<'de, D: Deserializer<'de>>(d: D, lo: i64, hi: i64) -> Result<i64, D::Error> {
    struct Range(i64, i64);
    impl serde::de::Visitor<'_> for Range {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "an integer from {} to {}", self.0, self.1)
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<i64, E> {
            if (self.0..=self.1).contains(&n) {
                Ok(n)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Signed(n), &self))
            }
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<i64, E> {
            match i64::try_from(n) {
                Ok(n) => self.visit_i64(n),
                Err(_) => Err(E::invalid_value(serde::de::Unexpected::Unsigned(n), &self)),
            }
        }
    }
    d.deserialize_i64(Range(lo, hi))
}

fn de_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    let n = in_range(d, 1, 65535)?;
    Ok(u16::try_from(n).ok())
}

fn de_ttl<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let n = in_range(d, 1, 255)?;
    Ok(u32::try_from(n).ok())
}

fn de_scrollback<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = in_range(d, 1, i64::MAX)?;
    usize::try_from(n).map_err(|_| serde::de::Error::custom("scrollback: too large"))
}

fn de_family<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Family>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse()
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("family: {e}")))
}

fn ser_family<S: Serializer>(f: &Option<Family>, s: S) -> Result<S::Ok, S::Error> {
    match f {
        Some(f) => s.serialize_str(&f.to_string()),
        None => s.serialize_none(),
    }
}

fn de_data_dir<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let dir = PathBuf::deserialize(d)?;
    if dir.is_absolute() || dir.starts_with("~") {
        Ok(Some(dir))
    } else {
        Err(serde::de::Error::custom(format!(
            "data_dir: {} is relative; give an absolute path or one starting with ~/",
            dir.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<FileConfig, ConfigError> {
        parse(text, Path::new("config.toml"))
    }

    /// The error's text, line, column and key.
    fn err(text: &str) -> (String, usize, usize, Option<String>) {
        match p(text).unwrap_err() {
            ref e @ ConfigError::Invalid {
                line,
                column,
                ref key,
                ..
            } => (e.to_string(), line, column, key.clone()),
            e => panic!("not an Invalid: {e}"),
        }
    }

    #[test]
    fn a_good_file_sets_every_key() {
        let cfg = p(r#"
nick = "ann"
lobbies = ["general", "Lab"]
friends = ["10.2.0.7:47200", "[fd00::7]:47200"]
bind = "10.1.0.5:47200"
interface = "eth0"
port = 47111
ttl = 2
family = "both"
history = 50
no_multicast = true
unlisted = true
max_rate = 0
data_dir = "/var/lib/lobbycast"

[screen]
highlights = ["deploy", "outage"]
bell_on_highlight = false
bell_on_direct = false
timestamp_format = "%H:%M:%S"
colours = false
mouse = true
scrollback = 500
paste_confirm_lines = 0
"#)
        .unwrap();
        assert_eq!(cfg.nick.as_deref(), Some("ann"));
        assert_eq!(cfg.lobbies.unwrap(), ["general", "Lab"]);
        assert_eq!(cfg.friends.unwrap()[1], "[fd00::7]:47200".parse().unwrap());
        assert_eq!(cfg.port, Some(47111));
        assert_eq!(cfg.ttl, Some(2));
        assert_eq!(cfg.family, Some(Family::Both));
        assert_eq!(cfg.history, Some(50));
        assert_eq!(cfg.no_multicast, Some(true));
        assert_eq!(cfg.max_rate, Some(0));
        assert_eq!(cfg.data_dir, Some(PathBuf::from("/var/lib/lobbycast")));
        assert_eq!(
            cfg.screen,
            ScreenConfig {
                highlights: vec!["deploy".into(), "outage".into()],
                bell_on_highlight: false,
                bell_on_direct: false,
                timestamp_format: "%H:%M:%S".into(),
                colours: false,
                mouse: true,
                scrollback: 500,
                paste_confirm_lines: 0,
            }
        );
    }

    #[test]
    fn an_empty_file_is_all_defaults() {
        assert_eq!(p("").unwrap(), FileConfig::default());
        assert_eq!(p("[screen]\n").unwrap().screen, ScreenConfig::default());
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line_and_column() {
        let (msg, line, column, key) = err("# mine\nport = 47111\n  nik = \"ann\"\n");
        assert_eq!((line, column), (3, 3), "{msg}");
        assert_eq!(key.as_deref(), Some("nik"));
        assert!(msg.starts_with("config.toml:3:3: "), "{msg}");
        assert!(msg.contains("unknown field `nik`"), "{msg}");
        assert!(msg.contains("`nick`"), "the known keys are listed: {msg}");
        let (msg, line, _, key) = err("[screen]\nmouse = true\ncolors = false\n");
        assert_eq!(line, 3, "{msg}");
        assert_eq!(key.as_deref(), Some("screen.colors"), "{msg}");
        assert!(msg.contains("unknown field `colors`"), "{msg}");
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let (msg, line, column, key) = err("nick = \"ann\"\nttl = \"two\"\n");
        assert_eq!((line, column), (2, 7), "{msg}");
        assert_eq!(key.as_deref(), Some("ttl"));
        assert!(msg.starts_with("config.toml:2:7: ttl: "), "{msg}");
        let (msg, line, _, key) = err("[screen]\nmouse = \"yes\"\n");
        assert_eq!(line, 2, "{msg}");
        assert_eq!(key.as_deref(), Some("screen.mouse"), "{msg}");
        assert!(msg.contains("screen.mouse"), "{msg}");
    }

    #[test]
    fn a_bad_friend_address_is_refused() {
        let (msg, line, column, key) = err("friends = [\n  \"10.0.0.1:1\",\n  \"nowhere\",\n]\n");
        assert_eq!((line, column), (3, 3), "{msg}");
        assert_eq!(key.as_deref(), Some("friends"));
        assert!(msg.contains("friends"), "{msg}");
    }

    #[test]
    fn bad_numbers_and_names_are_refused() {
        for (text, key) in [
            ("port = 0", "port"),
            ("port = 65536", "port"),
            ("port = -1", "port"),
            ("ttl = 256", "ttl"),
            ("history = -5", "history"),
            ("family = \"ipv5\"", "family"),
            ("nick = \"  \"", "nick"),
            ("lobbies = [\"a\", \"A\"]", "lobbies"),
            ("data_dir = \"relative/dir\"", "data_dir"),
            ("[screen]\nscrollback = 0", "screen.scrollback"),
        ] {
            let (msg, _, _, k) = err(text);
            assert_eq!(k.as_deref(), Some(key), "{text}: {msg}");
            assert!(
                msg.contains(key.rsplit('.').next().unwrap()),
                "{text}: {msg}"
            );
        }
        let (msg, ..) = err("port = 0");
        assert!(msg.contains("1 to 65535"), "{msg}");
    }

    #[test]
    fn broken_toml_has_a_position() {
        let (msg, line, ..) = err("nick = \"ann\"\nport = \n");
        assert_eq!(line, 2, "{msg}");
    }

    #[test]
    fn home_is_expanded_in_data_dir() {
        let cfg = p("data_dir = \"~/chat\"").unwrap();
        let dir = cfg.data_dir.unwrap();
        assert!(
            dir.is_absolute() && dir.ends_with("chat"),
            "{}",
            dir.display()
        );
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let e = load(Path::new("/nonexistent/lobbycast.toml")).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/lobbycast.toml"), "{e}");
    }

    #[test]
    fn keys_lists_every_field() {
        let keys = keys();
        for k in [
            "nick",
            "friends",
            "data_dir",
            "screen",
            "screen.paste_confirm_lines",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} in {keys:?}");
        }
        // Serde lists the fields it knows in its unknown-field message: every one of them
        // must be in `keys`, or `populated` left one unset.
        for (text, prefix) in [("zzz = 1", ""), ("[screen]\nzzz = 1", "screen.")] {
            let (msg, ..) = err(text);
            let known = msg.split("expected one of ").nth(1).expect(&msg);
            for field in known.split(", ") {
                let field = field.trim_matches('`');
                let key = format!("{prefix}{field}");
                assert!(keys.contains(&key), "{key} missing from keys(): {keys:?}");
            }
        }
        // And what `populated` writes reads back the same.
        let text = toml::to_string(&populated()).unwrap();
        assert_eq!(p(&text).unwrap(), populated());
    }
}
