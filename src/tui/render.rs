//! Drawing the screen: lobby list, messages, participants, status bar and input line.
//!
//! Only what shows is wrapped and drawn (see [`Pane`](super::pane::Pane)), so a redraw costs
//! the same with ten lines of scrollback or ten thousand.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::screen::{Screen, transport};

/// The smallest terminal the layout fits in; below it a notice says so.
pub const MIN_WIDTH: u16 = 40;
/// See [`MIN_WIDTH`].
pub const MIN_HEIGHT: u16 = 10;
/// Below this width the lobby list shows only numbers and marks, and the participants
/// give their room to the messages.
pub const SIDE_PANES_WIDTH: u16 = 80;
/// Below this width the lobby list goes too (the status bar still lists activity).
pub const COMPACT_LIST_WIDTH: u16 = 60;
/// Columns of the compact lobby list: a two-digit number and a mark.
const COMPACT_LIST: u16 = 3;

/// Draws `screen` into the whole frame.
pub fn draw(screen: &mut Screen, frame: &mut Frame) {
    let area = frame.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let notice = Paragraph::new(vec![
            Line::from(format!(
                "terminal too small: {MIN_WIDTH}x{MIN_HEIGHT} needed"
            )),
            Line::from(format!("(now {}x{})", area.width, area.height)),
        ])
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true });
        frame.render_widget(notice, area);
        return;
    }
    let input_rows = if screen.paste.is_some() {
        1
    } else {
        let most = (area.height / 4).max(1);
        u16::try_from(screen.input.rows()).map_or(most, |r| r.clamp(1, most))
    };
    let main_rows = area.height - 1 - input_rows;
    let main = Rect::new(area.x, area.y, area.width, main_rows);
    let bar = Rect::new(area.x, area.y + main_rows, area.width, 1);
    let input = Rect::new(area.x, bar.y + 1, area.width, input_rows);

    let (list, messages, people) = columns(screen, main);
    let buf = frame.buffer_mut();
    if let Some(r) = list {
        lobby_list(screen, buf, r);
        separator(screen, buf, Rect::new(r.right(), r.y, 1, r.height));
    }
    if let Some(r) = people {
        separator(screen, buf, Rect::new(r.x - 1, r.y, 1, r.height));
        participants(screen, buf, r);
    }
    let below = message_area(screen, buf, messages);
    status_bar(screen, buf, bar, below);
    match &screen.paste {
        Some((_, lines)) => {
            let q = format!("paste {lines} lines? Enter to send, Esc to cancel");
            buf.set_stringn(
                input.x,
                input.y,
                q,
                input.width.into(),
                screen.theme.highlight(),
            );
        }
        None => {
            frame.render_widget(screen.input.widget(), input);
            let (col, row) = screen.input.cursor_position();
            if col < input.width && row < input.height {
                frame.set_cursor_position((input.x + col, input.y + row));
            }
        }
    }
}

/// The lobby list, the messages and the participants: side panes only on a wide terminal.
fn columns(screen: &Screen, main: Rect) -> (Option<Rect>, Rect, Option<Rect>) {
    if main.width < COMPACT_LIST_WIDTH {
        return (None, main, None);
    }
    if main.width < SIDE_PANES_WIDTH {
        // Numbers and marks only: "12!" is enough to pick a lobby with Alt-digit.
        let list = Rect::new(main.x, main.y, COMPACT_LIST, main.height);
        let msg_x = list.right() + 1;
        let messages = Rect::new(msg_x, main.y, main.right() - msg_x, main.height);
        return (Some(list), messages, None);
    }
    let longest_name = screen
        .lobbies
        .iter()
        .map(|l| l.name.width())
        .max()
        .unwrap_or(0);
    // Number, space, name, and room for an unread count like " 12!".
    let list_w = (longest_name + 8).clamp(12, 20) as u16;
    let longest_nick = screen
        .current
        .map(|i| screen.participants(i))
        .and_then(|ps| ps.iter().map(|p| p.shown.name.width()).max())
        .unwrap_or(0)
        .max(screen.nick.width());
    let people_w = (longest_nick + 1).clamp(10, 18) as u16;
    let list = Rect::new(main.x, main.y, list_w, main.height);
    let people = Rect::new(main.right() - people_w, main.y, people_w, main.height);
    // One column each for the two separators.
    let msg_x = list.right() + 1;
    let messages = Rect::new(msg_x, main.y, people.x - 1 - msg_x, main.height);
    (Some(list), messages, Some(people))
}

fn separator(screen: &Screen, buf: &mut Buffer, r: Rect) {
    for y in r.top()..r.bottom() {
        buf.set_string(r.x, y, "│", screen.theme.border());
    }
}

/// `text` cut to `width` columns.
fn truncate(text: &str, width: usize) -> &str {
    let mut w = 0;
    for (i, c) in text.char_indices() {
        w += c.width().unwrap_or(0);
        if w > width {
            return &text[..i];
        }
    }
    text
}

fn lobby_list(screen: &Screen, buf: &mut Buffer, r: Rect) {
    let height = usize::from(r.height);
    let current = screen.current.unwrap_or(0);
    // Keep the current lobby in sight when there are more lobbies than rows.
    let first = (current + 1).saturating_sub(height);
    let compact = r.width <= COMPACT_LIST;
    for (row, (i, l)) in screen
        .lobbies
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .enumerate()
    {
        let y = r.y + row as u16;
        let base = if screen.current == Some(i) {
            screen.theme.current()
        } else {
            Style::new()
        };
        if compact {
            let (mark, style) = match (l.pane.unread, l.pane.highlight) {
                (_, true) => ("!", screen.theme.highlight()),
                (0, false) => (" ", Style::new()),
                (_, false) => ("+", screen.theme.unread()),
            };
            let line = Line::from(vec![
                Span::styled(format!("{:>2}", i + 1), base),
                Span::styled(mark, style.patch(base)),
            ]);
            buf.set_line(r.x, y, &line, r.width);
            continue;
        }
        let count = match (l.pane.unread, l.pane.highlight) {
            (0, false) => String::new(),
            (n, false) => format!(" {n}"),
            (n, true) => format!(" {n}!"),
        };
        let number = format!("{:>2} ", i + 1);
        let room = usize::from(r.width).saturating_sub(number.width() + count.width());
        let name = truncate(&l.name, room);
        let pad = room - name.width();
        let count_style = if l.pane.highlight {
            screen.theme.highlight()
        } else {
            screen.theme.unread()
        };
        let name_style = if l.pane.unread > 0 {
            base.add_modifier(Modifier::BOLD)
        } else {
            base
        };
        let line = Line::from(vec![
            Span::styled(number, base),
            Span::styled(name.to_owned(), name_style),
            Span::styled(" ".repeat(pad), base),
            Span::styled(count, count_style.patch(base)),
        ]);
        buf.set_line(r.x, y, &line, r.width);
    }
}

fn participants(screen: &Screen, buf: &mut Buffer, r: Rect) {
    let Some(idx) = screen.current.filter(|&i| i < screen.lobbies.len()) else {
        return;
    };
    // The pane is too narrow for "(new key!)": the warning style alone marks a new key.
    let nicks: Vec<(String, Style)> = screen
        .participants(idx)
        .into_iter()
        .map(|p| {
            let style = if p.shown.new_key {
                screen.theme.warning()
            } else if p.own {
                screen.theme.own_nick(screen.own_peer)
            } else {
                screen.theme.nick(p.peer)
            };
            (p.shown.name, style)
        })
        .collect();
    let header = format!("{} here", nicks.len());
    buf.set_stringn(r.x, r.y, header, r.width.into(), screen.theme.system());
    let rows = usize::from(r.height).saturating_sub(1);
    // When they do not all fit, the last row says how many are left out.
    let shown = if nicks.len() > rows {
        rows.saturating_sub(1)
    } else {
        rows
    };
    let hidden = nicks.len().saturating_sub(shown);
    for (row, (nick, style)) in nicks.into_iter().take(shown).enumerate() {
        buf.set_stringn(r.x, r.y + 1 + row as u16, nick, r.width.into(), style);
    }
    if hidden > 0 {
        let more = format!("+{hidden} more");
        let y = r.y + 1 + shown as u16;
        buf.set_stringn(r.x, y, more, r.width.into(), screen.theme.system());
    }
}

/// Draws the current pane's messages; returns the lines below the view.
fn message_area(screen: &mut Screen, buf: &mut Buffer, r: Rect) -> usize {
    screen.page = r.height;
    let marker = screen.theme.marker();
    let pane = screen.current_pane_mut();
    let (rows, view) = pane.visible(r.width, r.height, marker);
    for (i, line) in rows.iter().enumerate() {
        buf.set_line(r.x, r.y + i as u16, line, r.width);
    }
    view.below
}

fn status_bar(screen: &mut Screen, buf: &mut Buffer, r: Rect, below: usize) {
    let style = screen.theme.bar();
    buf.set_style(r, style);
    let mut parts = vec![format!(" {}", screen.nick)];
    let lobby = screen.current.zip(screen.current_lobby());
    match lobby {
        Some((i, l)) => parts.push(format!("{}:{}", i + 1, l.name)),
        None => parts.push("no lobby: /join LOBBY".to_owned()),
    }
    // Most useful first: a narrow bar cuts off the end.
    let active: Vec<String> = screen
        .lobbies
        .iter()
        .enumerate()
        .filter(|(_, l)| l.pane.unread > 0 || l.pane.highlight)
        .map(|(i, l)| format!("{}{}", i + 1, if l.pane.highlight { "!" } else { "" }))
        .collect();
    if !active.is_empty() {
        parts.push(format!("act: {}", active.join(",")));
    }
    if let Some((_, l)) = lobby
        && l.missing > 0
    {
        parts.push(format!("repairing {}", l.missing));
    }
    if let Some(s) = &screen.status {
        parts.push(transport(s).to_owned());
    }
    if let Some((_, l)) = lobby {
        let n = l.members.len();
        parts.push(format!("{n} peer{}", if n == 1 { "" } else { "s" }));
    }
    if screen.mouse {
        parts.push("mouse".to_owned());
    }
    let text = parts.join(" │ ");
    buf.set_stringn(r.x, r.y, &text, r.width.into(), style);
    if screen.current_pane_mut().scrolled() {
        let more = format!(" -MORE({below})- ");
        let w = more.width() as u16;
        if w <= r.width {
            buf.set_string(r.right() - w, r.y, more, style.add_modifier(Modifier::BOLD));
        }
    }
}
