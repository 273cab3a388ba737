//! The screen's styles in one place, so that turning colours off (NO_COLOR, the config) is
//! one switch: without colours, only bold, dim and reverse set things apart.

use ratatui::style::{Color, Modifier, Style};

use crate::display::nick_colour;
use crate::proto::PeerId;

/// Nick colours: the bright and normal ANSI colours that read on both dark and light
/// backgrounds (no black, white or greys, which vanish on one of them).
const PALETTE: [Color; 12] = [
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::LightRed,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
];

/// The styles of every part of the screen.
#[derive(Clone, Copy, Debug)]
pub struct Theme {
    colours: bool,
}

impl Theme {
    /// A theme with or without colours.
    pub fn new(colours: bool) -> Theme {
        Theme { colours }
    }

    fn fg(&self, c: Color) -> Style {
        if self.colours {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    /// A peer's nick: the same colour on every machine.
    pub fn nick(&self, peer: PeerId) -> Style {
        let i = nick_colour(peer, PALETTE.len());
        self.fg(PALETTE[i % PALETTE.len()])
    }

    /// Own nick in front of own messages.
    pub fn own_nick(&self, peer: Option<PeerId>) -> Style {
        peer.map_or(Style::new(), |p| self.nick(p))
            .add_modifier(Modifier::BOLD)
    }

    /// Timestamps.
    pub fn time(&self) -> Style {
        self.fg(Color::DarkGray)
    }

    /// Joins, leaves, nick changes, command output.
    pub fn system(&self) -> Style {
        self.fg(Color::Cyan)
    }

    /// A nick whose key is new (`(new key!)`, and its joins and renames): a warning that reads
    /// on dark and light backgrounds alike.
    pub fn warning(&self) -> Style {
        if self.colours {
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    /// Errors: bad commands, texts not sent, lost messages.
    pub fn error(&self) -> Style {
        self.fg(Color::LightRed).add_modifier(Modifier::BOLD)
    }

    /// Day changes, the history marker, the read marker.
    pub fn marker(&self) -> Style {
        self.fg(Color::DarkGray).add_modifier(Modifier::DIM)
    }

    /// The tag of a late message.
    pub fn late(&self) -> Style {
        self.fg(Color::DarkGray).add_modifier(Modifier::DIM)
    }

    /// Own text not yet confirmed sent.
    pub fn pending(&self) -> Style {
        Style::new().add_modifier(Modifier::DIM)
    }

    /// A message that mentions own nick or a highlight word.
    pub fn highlight(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    /// Plain message text.
    pub fn text(&self) -> Style {
        Style::new()
    }

    /// The status bar.
    pub fn bar(&self) -> Style {
        if self.colours {
            Style::new().fg(Color::White).bg(Color::Blue)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    /// The current lobby in the lobby list.
    pub fn current(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// A lobby with unread messages.
    pub fn unread(&self) -> Style {
        self.fg(Color::LightGreen).add_modifier(Modifier::BOLD)
    }

    /// The lines between the side panes and the messages.
    pub fn border(&self) -> Style {
        self.fg(Color::DarkGray)
    }
}
