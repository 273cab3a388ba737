//! Breaking text into rows by display width, so that CJK characters and emoji (two columns
//! each) never push a row past the edge of its pane.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Splits `text` (one line, no newline) into rows: the first at most `first` columns wide,
/// the others at most `rest`. Rows break after the last space that fits, or inside a word
/// that is wider than a row. A character wider than a whole row still gets a row of its own
/// rather than looping forever; the buffer clips it. Always at least one row.
pub fn wrap(text: &str, first: usize, rest: usize) -> Vec<&str> {
    let mut rows = Vec::new();
    let mut start = 0;
    let mut width = 0;
    let mut limit = first.max(1);
    let mut last_space: Option<usize> = None;
    for (pos, c) in text.char_indices() {
        let w = c.width().unwrap_or(0);
        if c == ' ' && width + w > limit && pos > start {
            // The space that does not fit is the break itself.
            rows.push(&text[start..pos]);
            start = pos + 1;
            width = 0;
            limit = rest.max(1);
            last_space = None;
            continue;
        }
        while width + w > limit && pos > start {
            match last_space.take() {
                Some(sp) if sp > start => {
                    rows.push(&text[start..sp]);
                    // The space itself is dropped: it was the break.
                    start = sp + 1;
                }
                _ => {
                    rows.push(&text[start..pos]);
                    start = pos;
                }
            }
            width = text[start..pos].width();
            limit = rest.max(1);
        }
        if c == ' ' {
            last_space = Some(pos);
        }
        width += w;
    }
    rows.push(&text[start..]);
    rows
}

/// How many rows [`wrap`] gives, without collecting them.
pub fn count_rows(text: &str, first: usize, rest: usize) -> usize {
    // Wrapping is cheap next to drawing, and one implementation cannot disagree with itself.
    wrap(text, first, rest).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_at_spaces_then_inside_long_words() {
        assert_eq!(wrap("hello world", 20, 20), ["hello world"]);
        assert_eq!(wrap("hello world", 7, 7), ["hello", "world"]);
        assert_eq!(wrap("abcdefghij", 4, 3), ["abcd", "efg", "hij"]);
        assert_eq!(wrap("", 4, 4), [""]);
        assert_eq!(wrap("aa bb cc dd", 5, 5), ["aa bb", "cc dd"]);
    }

    #[test]
    fn wide_characters_count_two_columns() {
        assert_eq!(wrap("日本語です", 4, 4), ["日本", "語で", "す"]);
        assert_eq!(wrap("a😀b", 2, 2), ["a", "😀", "b"]);
        // A row narrower than one character still makes progress.
        assert_eq!(wrap("日本", 1, 1), ["日", "本"]);
        assert_eq!(wrap("abc", 0, 0), ["a", "b", "c"]);
    }

    #[test]
    fn rows_never_exceed_the_width() {
        let text = "the quick 茶色の fox 🦊 jumps over the lazy dog again and again";
        for w in 2..30 {
            for row in wrap(text, w, w) {
                assert!(row.width() <= w, "{w}: {row:?}");
            }
        }
    }
}
