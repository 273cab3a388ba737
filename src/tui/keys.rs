//! The key bindings, WeeChat's and irssi's where they agree. Keys not bound here go to the
//! input line's editor, which brings the Emacs bindings (Ctrl-a/e/b/f/k/w/y, Alt-b/f).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What a key asks the screen to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Ctrl-c: leave.
    Quit,
    /// Enter: send the input line (or confirm a paste).
    Submit,
    /// Alt-Enter: a newline inside the input.
    Newline,
    /// Tab: complete a nick or a command.
    Complete,
    /// Shift-Tab: the previous completion.
    CompleteBack,
    /// Up: the previous input line (or the row above in a multi-line input).
    Up,
    /// Down: the next input line.
    Down,
    /// Alt-1..9, Alt-0: the lobby with this number (from 1).
    Select(usize),
    /// Ctrl-n: the next lobby.
    NextLobby,
    /// Ctrl-p: the previous lobby.
    PrevLobby,
    /// Alt-a: the next lobby with activity, highlights first.
    NextActive,
    /// PgUp.
    PageUp,
    /// PgDn.
    PageDown,
    /// Alt-Home: the first line.
    Top,
    /// Alt-End: follow new lines again.
    Bottom,
    /// Alt-m: mouse capture on or off.
    ToggleMouse,
    /// Esc: cancel a paste waiting for confirmation.
    Cancel,
    /// Ctrl-u: delete to the start of the line (the editor's own Ctrl-u is undo).
    KillToHead,
    /// Ctrl-l: draw everything again.
    Redraw,
    /// Anything else: for the editor.
    Edit,
}

/// What `key` means; `None` for key releases, which some terminals report and which must
/// not act twice.
pub fn action(key: &KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let a = match key.code {
        KeyCode::Char('c') if ctrl => Action::Quit,
        KeyCode::Char('n') if ctrl && !alt => Action::NextLobby,
        KeyCode::Char('p') if ctrl && !alt => Action::PrevLobby,
        KeyCode::Char('u') if ctrl && !alt => Action::KillToHead,
        KeyCode::Char('l') if ctrl && !alt => Action::Redraw,
        KeyCode::Char(d @ '0'..='9') if alt && !ctrl => {
            let n = d.to_digit(10).unwrap_or(0) as usize;
            Action::Select(if n == 0 { 10 } else { n })
        }
        KeyCode::Char('a') if alt && !ctrl => Action::NextActive,
        KeyCode::Char('m') if alt && !ctrl => Action::ToggleMouse,
        KeyCode::Enter if alt => Action::Newline,
        KeyCode::Enter => Action::Submit,
        KeyCode::Tab => Action::Complete,
        KeyCode::BackTab => Action::CompleteBack,
        KeyCode::Up if !ctrl && !alt => Action::Up,
        KeyCode::Down if !ctrl && !alt => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home if alt => Action::Top,
        KeyCode::End if alt => Action::Bottom,
        KeyCode::Esc => Action::Cancel,
        _ => Action::Edit,
    };
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn bindings() {
        assert_eq!(
            action(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(
            action(&key(KeyCode::Char('2'), KeyModifiers::ALT)),
            Some(Action::Select(2))
        );
        assert_eq!(
            action(&key(KeyCode::Char('0'), KeyModifiers::ALT)),
            Some(Action::Select(10))
        );
        assert_eq!(
            action(&key(KeyCode::Enter, KeyModifiers::ALT)),
            Some(Action::Newline)
        );
        assert_eq!(
            action(&key(KeyCode::Char('a'), KeyModifiers::CONTROL)),
            Some(Action::Edit)
        );
        let mut release = key(KeyCode::Enter, KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(action(&release), None);
    }
}
