//! One pane of scrollback: the lines of a lobby (or of the status pane), bounded, with the
//! scroll position and the markers that are drawn between lines.
//!
//! Drawing must stay cheap with ten thousand lines, so a pane never wraps all of them: each
//! line remembers how many rows it took at the last width, and drawing walks back from the
//! bottom, wrapping only the lines that show.

use std::cell::Cell;
use std::collections::VecDeque;

use jiff::civil::Date;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthStr;

use super::wrap::{count_rows, wrap};

/// Where a line came from, which decides how later events change it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A message from another peer (or from the history).
    Chat,
    /// Own text typed here, waiting for the runtime's `Sent`.
    Pending,
    /// Own text, confirmed sent (or from the history).
    Own,
    /// Own text the runtime could not send.
    Failed,
    /// Joins, leaves, errors, command output.
    System,
    /// A day change or the history marker.
    Marker,
}

/// One line of scrollback: a prefix (time, nick) and a body that may hold several lines of
/// its own (a multi-line paste), wrapped with a hanging indent under the prefix.
#[derive(Debug)]
pub struct Entry {
    /// What it is.
    pub kind: Kind,
    /// Time, nick and tags, drawn on the first row only. Already terminal-safe.
    pub prefix: Vec<Span<'static>>,
    /// The text, split at newlines, each part already terminal-safe.
    pub body: Vec<String>,
    /// The style of the body.
    pub style: Style,
    /// A last line in another style: why an own text was not sent.
    pub note: Option<(String, Style)>,
    /// Rows taken at a width, remembered: `(width, rows)`.
    rows: Cell<(u16, u16)>,
}

impl Entry {
    /// A line from its parts.
    pub fn new(kind: Kind, prefix: Vec<Span<'static>>, body: Vec<String>, style: Style) -> Entry {
        Entry {
            kind,
            prefix,
            body,
            style,
            note: None,
            rows: Cell::new((0, 0)),
        }
    }

    /// Forgets the remembered row count, after a change of text.
    pub fn changed(&mut self) {
        self.rows.set((0, 0));
    }

    fn prefix_width(&self) -> usize {
        self.prefix.iter().map(|s| s.content.width()).sum()
    }

    /// The widths rows are wrapped to: the first row's, and the others' with their indent.
    fn geometry(&self, width: usize) -> (usize, usize, usize) {
        let p = self.prefix_width();
        // A hanging indent only while it leaves room to read; a long nick on a narrow
        // screen gets its text back from the left edge.
        let indent = if p + 10 <= width { p } else { 0 };
        (
            width.saturating_sub(p).max(1),
            indent,
            (width - indent).max(1),
        )
    }

    /// Rows taken at `width` columns.
    pub fn rows(&self, width: u16) -> usize {
        let (w, r) = self.rows.get();
        if w == width && r > 0 {
            return r.into();
        }
        let (first, _, rest) = self.geometry(width.into());
        let mut n = 0;
        for (i, part) in self.body.iter().enumerate() {
            n += count_rows(part, if i == 0 { first } else { rest }, rest);
        }
        if let Some((note, _)) = &self.note {
            n += count_rows(note, rest, rest);
        }
        let n = n.max(1);
        self.rows.set((width, n.min(u16::MAX.into()) as u16));
        n
    }

    /// The rows at `width` columns, styled, ready for the buffer.
    pub fn lines(&self, width: u16) -> Vec<Line<'static>> {
        let (first, indent, rest) = self.geometry(width.into());
        let pad = " ".repeat(indent);
        let mut out: Vec<Line<'static>> = Vec::new();
        let push = |text: &str, style: Style, out: &mut Vec<Line<'static>>| {
            let mut spans = if out.is_empty() {
                self.prefix.clone()
            } else {
                vec![Span::raw(pad.clone())]
            };
            spans.push(Span::styled(text.to_owned(), style));
            out.push(Line::from(spans));
        };
        for (i, part) in self.body.iter().enumerate() {
            for row in wrap(part, if i == 0 { first } else { rest }, rest) {
                push(row, self.style, &mut out);
            }
        }
        if let Some((note, style)) = &self.note {
            for row in wrap(note, rest, rest) {
                push(row, *style, &mut out);
            }
        }
        if out.is_empty() {
            out.push(Line::from(self.prefix.clone()));
        }
        out
    }
}

/// A bounded scrollback with its scroll position and markers.
#[derive(Debug)]
pub struct Pane {
    entries: VecDeque<Entry>,
    /// The id of `entries[0]`: ids keep counting when old lines are dropped, so that a
    /// remembered line (a pending own text, the read marker) is never confused with another.
    first_id: u64,
    cap: usize,
    /// Rows scrolled up from the bottom; 0 follows new lines.
    scroll: usize,
    /// The width of the last draw, to keep the view still while scrolled up.
    width: Cell<u16>,
    last_date: Option<Date>,
    seen_history: bool,
    history_marked: bool,
    /// Own texts waiting for `Sent` or `SendFailed`, oldest first.
    pending: VecDeque<u64>,
    /// The first line added after the user last left this pane.
    read_mark: Option<u64>,
    /// Messages from others added while this pane was not shown.
    pub unread: usize,
    /// Whether one of them mentioned own nick or a highlight word.
    pub highlight: bool,
}

/// What a draw of a pane found out, for the status bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// Lines wholly or partly below the view.
    pub below: usize,
}

impl Pane {
    /// An empty pane keeping at most `cap` lines.
    pub fn new(cap: usize) -> Pane {
        Pane {
            entries: VecDeque::new(),
            first_id: 0,
            cap: cap.max(1),
            scroll: 0,
            width: Cell::new(0),
            last_date: None,
            seen_history: false,
            history_marked: false,
            pending: VecDeque::new(),
            read_mark: None,
            unread: 0,
            highlight: false,
        }
    }

    /// Lines held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the pane holds no line.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The id the next line will get.
    fn next_id(&self) -> u64 {
        self.first_id + self.entries.len() as u64
    }

    /// Adds a line dated `date` (local), with a day-change line first when the date
    /// differs from the previous dated line's. Returns the line's id.
    pub fn push(&mut self, entry: Entry, date: Option<Date>, marker_style: Style) -> u64 {
        if let Some(d) = date {
            if self.last_date.is_some_and(|last| last != d) {
                let label = jiff::fmt::strtime::format("-- %A %-d %B %Y --", d)
                    .unwrap_or_else(|_| format!("-- {d} --"));
                self.push_raw(Entry::new(
                    Kind::Marker,
                    Vec::new(),
                    vec![label],
                    marker_style,
                ));
            }
            self.last_date = Some(d);
        }
        self.push_raw(entry)
    }

    /// Adds a line from the history. The marker after the history comes with
    /// [`Pane::end_history`] or the first live line, whichever is first.
    pub fn push_history(&mut self, entry: Entry, date: Option<Date>, marker_style: Style) {
        self.seen_history = true;
        self.push(entry, date, marker_style);
    }

    /// Closes the history with its marker line, if history was shown and not closed yet.
    pub fn end_history(&mut self, marker_style: Style) {
        if self.seen_history && !self.history_marked {
            self.history_marked = true;
            self.push_raw(Entry::new(
                Kind::Marker,
                Vec::new(),
                vec!["-- history above --".to_owned()],
                marker_style,
            ));
        }
    }

    /// Adds a live line, after the history marker if history came before it.
    pub fn push_live(&mut self, entry: Entry, date: Option<Date>, marker_style: Style) -> u64 {
        self.end_history(marker_style);
        self.push(entry, date, marker_style)
    }

    fn push_raw(&mut self, entry: Entry) -> u64 {
        let id = self.next_id();
        if self.scroll > 0 {
            // Keep what the reader is looking at still: the new rows go below the view.
            let w = self.width.get();
            if w > 0 {
                self.scroll = self.scroll.saturating_add(entry.rows(w));
            }
        }
        self.entries.push_back(entry);
        while self.entries.len() > self.cap {
            self.entries.pop_front();
            self.first_id += 1;
        }
        id
    }

    /// Remembers `id` as an own text waiting for the runtime's answer.
    pub fn add_pending(&mut self, id: u64) {
        self.pending.push_back(id);
    }

    /// The oldest own text still waiting, taken off the queue; `None` if none waits (or it
    /// was dropped from the scrollback or cleared).
    pub fn take_pending(&mut self) -> Option<&mut Entry> {
        let id = self.pending.pop_front()?;
        self.get_mut(id)
    }

    /// The line with this id, if still held.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Entry> {
        let i = id.checked_sub(self.first_id)?;
        self.entries.get_mut(usize::try_from(i).ok()?)
    }

    /// Empties the pane (`/clear`); the markers and the date start again.
    pub fn clear(&mut self) {
        self.first_id = self.next_id();
        self.entries.clear();
        self.scroll = 0;
        self.read_mark = None;
        self.last_date = None;
    }

    /// The user leaves this pane: lines from now on are unread.
    pub fn leave(&mut self) {
        self.read_mark = Some(self.next_id());
    }

    /// The user comes to this pane: its counts are read.
    pub fn enter(&mut self) {
        self.unread = 0;
        self.highlight = false;
    }

    /// Scrolls up (positive) or down (negative) by rows; drawing clamps at the top.
    pub fn scroll_by(&mut self, rows: isize) {
        self.scroll = self.scroll.saturating_add_signed(rows);
    }

    /// Scrolls to the first line.
    pub fn scroll_top(&mut self) {
        self.scroll = usize::MAX;
    }

    /// Follows new lines again.
    pub fn scroll_bottom(&mut self) {
        self.scroll = 0;
    }

    /// Whether the view is scrolled up.
    pub fn scrolled(&self) -> bool {
        self.scroll > 0
    }

    /// The rows of the line with this index, counting the read marker drawn above it.
    fn rows_at(&self, i: usize, width: u16) -> usize {
        let marker = self.read_mark == Some(self.first_id + i as u64) && i > 0;
        self.entries[i].rows(width) + usize::from(marker)
    }

    /// The rows to show in `height` rows of `width` columns, top first, and what lies below.
    /// Clamps the scroll position to the top of the scrollback.
    pub fn visible(
        &mut self,
        width: u16,
        height: u16,
        marker_style: Style,
    ) -> (Vec<Line<'static>>, View) {
        self.width.set(width);
        if width == 0 || height == 0 {
            return (Vec::new(), View::default());
        }
        let height = usize::from(height);
        let mut found = self.walk(width, height);
        if found.1 > 0 {
            // Scrolled past the top: show the first page instead.
            self.scroll = self.scroll.saturating_sub(found.1);
            found = self.walk(width, height);
        }
        let (top, _, below) = found;
        let mut rows = Vec::with_capacity(height);
        let mut skip_bottom = self.scroll;
        // Rows hidden below the view belong to the last lines; count from the bottom.
        let mut hidden_below = Vec::new();
        for i in (top..self.entries.len()).rev() {
            let r = self.rows_at(i, width);
            let hide = skip_bottom.min(r);
            hidden_below.push(hide);
            skip_bottom -= hide;
        }
        hidden_below.reverse();
        for (k, i) in (top..self.entries.len()).enumerate() {
            let hide = hidden_below[k];
            if hide >= self.rows_at(i, width) {
                // Wholly below the view: the rest are too.
                break;
            }
            let mut lines = Vec::new();
            if self.read_mark == Some(self.first_id + i as u64) && i > 0 {
                let bar = "-".repeat(usize::from(width));
                lines.push(Line::styled(bar, marker_style));
            }
            lines.extend(self.entries[i].lines(width));
            let keep = lines.len().saturating_sub(hide);
            rows.extend(lines.into_iter().take(keep));
        }
        let extra = rows.len().saturating_sub(height);
        rows.drain(..extra);
        (rows, View { below })
    }

    /// Walks back from the bottom: the index of the top line shown, the rows the scroll
    /// position overshoots the top by, and the lines below the view.
    fn walk(&self, width: u16, height: usize) -> (usize, usize, usize) {
        let mut skip = self.scroll;
        let mut need = height;
        let mut below = 0;
        let mut top = self.entries.len();
        for i in (0..self.entries.len()).rev() {
            let r = self.rows_at(i, width);
            if skip >= r && skip > 0 {
                skip -= r;
                below += 1;
                continue;
            }
            if skip > 0 {
                below += 1;
            }
            let shown = r - skip;
            skip = 0;
            top = i;
            if shown >= need {
                return (top, 0, below);
            }
            need -= shown;
        }
        // Ran out of lines: overshot by what is still to skip plus the empty rows, but only
        // if scrolled at all (a short pane at the bottom is fine).
        let over = if self.scroll > 0 { skip + need } else { 0 };
        (top, over.min(self.scroll), below)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Entry {
        Entry::new(
            Kind::Chat,
            vec![Span::raw("> ")],
            vec![text.into()],
            Style::new(),
        )
    }

    fn texts(lines: &[Line<'_>]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn shows_the_bottom_and_scrolls_up_to_the_top() {
        let mut p = Pane::new(100);
        for i in 0..10 {
            p.push_live(line(&format!("m{i}")), None, Style::new());
        }
        let (rows, v) = p.visible(20, 3, Style::new());
        assert_eq!(texts(&rows), ["> m7", "> m8", "> m9"]);
        assert_eq!(v.below, 0);
        p.scroll_by(2);
        let (rows, v) = p.visible(20, 3, Style::new());
        assert_eq!(texts(&rows), ["> m5", "> m6", "> m7"]);
        assert_eq!(v.below, 2);
        p.scroll_top();
        let (rows, _) = p.visible(20, 3, Style::new());
        assert_eq!(texts(&rows), ["> m0", "> m1", "> m2"]);
        // New lines keep the view still while scrolled up.
        p.push_live(line("new"), None, Style::new());
        let (rows, _) = p.visible(20, 3, Style::new());
        assert_eq!(texts(&rows), ["> m0", "> m1", "> m2"]);
    }

    #[test]
    fn wrapped_lines_are_cut_at_the_top() {
        let mut p = Pane::new(100);
        p.push_live(line("aaaa bbbb cccc"), None, Style::new());
        p.push_live(line("z"), None, Style::new());
        let (rows, _) = p.visible(12, 2, Style::new());
        assert_eq!(texts(&rows), ["  cccc", "> z"]);
    }

    #[test]
    fn scrollback_is_bounded_and_ids_stay_true() {
        let mut p = Pane::new(3);
        let first = p.push_live(line("a"), None, Style::new());
        p.add_pending(first);
        for t in ["b", "c", "d"] {
            p.push_live(line(t), None, Style::new());
        }
        assert_eq!(p.len(), 3);
        assert!(p.take_pending().is_none());
    }
}
