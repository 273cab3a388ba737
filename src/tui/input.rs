//! The input line: Emacs editing from `ratatui-textarea`, plus what a chat needs on top of
//! it: input history, Tab completion and multi-line text.

use ratatui::style::Style;
use ratatui_textarea::{CursorMove, TextArea};

/// Input lines remembered for Up and Down.
const HISTORY: usize = 500;

/// A Tab completion in progress: repeated Tabs cycle through the candidates.
#[derive(Debug)]
struct Completion {
    /// The input row and the column (chars) where the completed word starts.
    row: usize,
    start: usize,
    /// The row's text after the cursor, kept while cycling.
    tail: String,
    candidates: Vec<String>,
    next: usize,
}

/// The input line and its memory.
#[derive(Debug)]
pub struct InputLine {
    area: TextArea<'static>,
    history: Vec<String>,
    /// Where Up has walked to in the history; `None` while editing a new line.
    walk: Option<usize>,
    /// The line being typed before Up walked away from it.
    draft: String,
    completion: Option<Completion>,
}

impl Default for InputLine {
    fn default() -> Self {
        Self::new()
    }
}

impl InputLine {
    /// An empty input line.
    pub fn new() -> InputLine {
        InputLine {
            area: styled(TextArea::default()),
            history: Vec::new(),
            walk: None,
            draft: String::new(),
            completion: None,
        }
    }

    /// The text, rows joined by newlines.
    pub fn text(&self) -> String {
        self.area.lines().join("\n")
    }

    /// Rows of text (1 for an ordinary line).
    pub fn rows(&self) -> usize {
        self.area.lines().len()
    }

    /// Takes the text out to send it, remembering it for Up, unless it holds a passphrase
    /// (`/join LOBBY --key ...`): that is typed again, never walked back to on the screen.
    pub fn take(&mut self) -> String {
        let text = self.text();
        if !text.trim().is_empty()
            && self.history.last() != Some(&text)
            && !crate::command_line::holds_passphrase(&text)
        {
            self.history.push(text.clone());
            if self.history.len() > HISTORY {
                self.history.remove(0);
            }
        }
        self.set_text("");
        self.walk = None;
        text
    }

    /// Replaces the text, with the cursor at its end.
    pub fn set_text(&mut self, text: &str) {
        let lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
        self.replace_area(lines);
        self.area.move_cursor(CursorMove::Bottom);
        self.area.move_cursor(CursorMove::End);
        self.completion = None;
    }

    /// Inserts text at the cursor (newlines make rows).
    pub fn insert(&mut self, text: &str) {
        self.area.insert_str(text);
        self.completion = None;
    }

    /// Inserts a newline at the cursor.
    pub fn newline(&mut self) {
        self.area.insert_newline();
        self.completion = None;
    }

    /// Deletes from the cursor back to the start of its row (Ctrl-u in a shell).
    pub fn kill_to_head(&mut self) {
        self.area.delete_line_by_head();
        self.completion = None;
    }

    /// Hands a key to the editor; true if the text changed.
    pub fn edit(&mut self, key: crossterm::event::KeyEvent) -> bool {
        self.completion = None;
        self.area.input(key)
    }

    /// Whether the cursor is on the first row (Up walks the history from there).
    pub fn on_first_row(&self) -> bool {
        self.area.cursor().0 == 0
    }

    /// Whether the cursor is on the last row.
    pub fn on_last_row(&self) -> bool {
        self.area.cursor().0 + 1 >= self.area.lines().len()
    }

    /// Moves the cursor a row up or down inside a multi-line text.
    pub fn move_row(&mut self, up: bool) {
        self.area
            .move_cursor(if up { CursorMove::Up } else { CursorMove::Down });
    }

    /// Up: the previous line of the history.
    pub fn history_prev(&mut self) {
        let at = match self.walk {
            None if self.history.is_empty() => return,
            None => {
                self.draft = self.text();
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.walk = Some(at);
        let line = self.history[at].clone();
        self.set_text(&line);
    }

    /// Down: the next line of the history, then the draft again.
    pub fn history_next(&mut self) {
        let Some(i) = self.walk else { return };
        if i + 1 < self.history.len() {
            self.walk = Some(i + 1);
            let line = self.history[i + 1].clone();
            self.set_text(&line);
        } else {
            self.walk = None;
            let draft = std::mem::take(&mut self.draft);
            self.set_text(&draft);
        }
    }

    /// Tab: completes the word before the cursor. `candidates` gets the word (with its
    /// leading `/` for a command) and whether it starts the line, and returns the full
    /// replacements, suffix included ("nick: ", "nick ", "/join "). Repeated Tabs cycle,
    /// `backward` (Shift-Tab) the other way.
    pub fn complete(&mut self, backward: bool, candidates: impl FnOnce(&str, bool) -> Vec<String>) {
        if let Some(c) = &mut self.completion {
            if c.candidates.len() > 1 {
                let n = c.candidates.len();
                c.next = if backward {
                    (c.next + n - 1) % n
                } else {
                    (c.next + 1) % n
                };
                let (row, start, tail) = (c.row, c.start, c.tail.clone());
                let choice = c.candidates[c.next].clone();
                self.replace_word(row, start, &choice, &tail);
            }
            return;
        }
        let ratatui_textarea::DataCursor(row, col) = self.area.cursor();
        let Some(line) = self.area.lines().get(row) else {
            return;
        };
        let chars: Vec<char> = line.chars().collect();
        let col = col.min(chars.len());
        let start = chars[..col]
            .iter()
            .rposition(|c| c.is_whitespace())
            .map_or(0, |p| p + 1);
        let word: String = chars[start..col].iter().collect();
        let tail: String = chars[col..].iter().collect();
        if word.is_empty() {
            return;
        }
        let found = candidates(&word, row == 0 && start == 0);
        let Some(first) = found.first().cloned() else {
            return;
        };
        self.replace_word(row, start, &first, &tail);
        self.completion = Some(Completion {
            row,
            start,
            tail,
            candidates: found,
            next: 0,
        });
    }

    /// Rewrites `row` as its text up to `start`, then `word`, then `tail`, with the cursor
    /// after `word`.
    fn replace_word(&mut self, row: usize, start: usize, word: &str, tail: &str) {
        let mut lines: Vec<String> = self.area.lines().to_vec();
        let Some(line) = lines.get_mut(row) else {
            return;
        };
        let head: String = line.chars().take(start).collect();
        *line = format!("{head}{word}{tail}");
        let col = start + word.chars().count();
        let keep = self.completion.take();
        self.replace_area(lines);
        self.area.move_cursor(CursorMove::Jump(
            u16::try_from(row).unwrap_or(u16::MAX),
            u16::try_from(col).unwrap_or(u16::MAX),
        ));
        self.completion = keep;
    }

    /// Where the cursor is inside the drawn input area, `(column, row)`, after a draw: the
    /// terminal's own cursor goes there, so that input methods put their window at it.
    pub fn cursor_position(&self) -> (u16, u16) {
        let at = self.area.screen_cursor();
        let (top, left) = self.area.scroll_offset();
        let col = at.col.saturating_sub(left.into());
        let row = at.row.saturating_sub(top.into());
        (
            u16::try_from(col).unwrap_or(u16::MAX),
            u16::try_from(row).unwrap_or(u16::MAX),
        )
    }

    /// A new text in the editor, keeping what Ctrl-y yanks across lines sent.
    fn replace_area(&mut self, lines: Vec<String>) {
        let yank = self.area.yank_text();
        self.area = styled(TextArea::new(lines));
        self.area.set_yank_text(yank);
    }

    /// The editor, to draw.
    pub fn widget(&self) -> &TextArea<'static> {
        &self.area
    }
}

/// A text area as the input line wants it: no underlined cursor row.
fn styled(mut area: TextArea<'static>) -> TextArea<'static> {
    area.set_cursor_line_style(Style::new());
    area
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_walks_back_and_returns_to_the_draft() {
        let mut i = InputLine::new();
        i.set_text("one");
        i.take();
        i.set_text("two");
        i.take();
        i.set_text("dra");
        i.history_prev();
        assert_eq!(i.text(), "two");
        i.history_prev();
        assert_eq!(i.text(), "one");
        i.history_prev();
        assert_eq!(i.text(), "one");
        i.history_next();
        i.history_next();
        assert_eq!(i.text(), "dra");
    }

    #[test]
    fn a_passphrase_is_not_kept_for_up() {
        let mut i = InputLine::new();
        i.set_text("/join team --private");
        i.take();
        i.set_text("/join team --key hunter2");
        assert_eq!(i.take(), "/join team --key hunter2");
        i.history_prev();
        assert_eq!(i.text(), "/join team --private");
        i.history_prev();
        assert_eq!(i.text(), "/join team --private");
    }

    #[test]
    fn tab_cycles_through_candidates() {
        let mut i = InputLine::new();
        i.set_text("al");
        let cands = |_: &str, start: bool| {
            assert!(start);
            vec!["alice: ".to_owned(), "alan: ".to_owned()]
        };
        i.complete(false, cands);
        assert_eq!(i.text(), "alice: ");
        i.complete(false, |_, _| Vec::new());
        assert_eq!(i.text(), "alan: ");
        i.complete(false, |_, _| Vec::new());
        assert_eq!(i.text(), "alice: ");
    }
}
