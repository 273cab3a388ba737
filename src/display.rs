//! Showing untrusted text on a terminal (issue 11): every text and nick from the network is
//! shown harmlessly, and each peer gets a nick colour that is the same on every machine.
//!
//! A line from another peer must never clear, move or retitle anyone's screen, nor reorder
//! what is around it: control characters (C0, DEL, C1, which start escape sequences) and the
//! bidirectional overrides and isolates (which can make a line read as something else) are
//! replaced by visible stand-ins.

use std::borrow::Cow;

use crate::proto::PeerId;

/// Whether `c` must not reach a terminal as it is.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// The visible stand-in for an unsafe character: the Unicode control pictures for C0 and DEL
/// (␛ for escape, ␊ for a line feed), and U+FFFD for the rest.
fn stand_in(c: char) -> char {
    match c {
        '\u{0}'..='\u{1F}' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{FFFD}'),
        '\u{7F}' => '\u{2421}',
        _ => '\u{FFFD}',
    }
}

/// `text` with every control character and bidirectional override replaced by a visible
/// stand-in; borrowed when there is nothing to replace. Newlines are replaced too: a caller
/// that shows a multi-line message splits it into lines first.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if is_unsafe(c) { stand_in(c) } else { c })
            .collect(),
    )
}

/// A colour index in `0..palette` for `peer`'s nick: FNV-1a of the peer id's bytes
/// (big-endian), so that a peer has the same colour on every machine and with every Rust
/// version (the standard library's hasher promises neither).
pub fn nick_colour(peer: PeerId, palette: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in peer.0.to_be_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % palette.max(1) as u64) as usize
}

/// Hex digits of a peer id shown after a nick that several members use (`ann#3fa2`): 4, or
/// as many more as it takes to tell `peers` apart when their first 4 digits collide (16 bits
/// collide often enough among many members).
pub fn fingerprint_digits(peers: &[PeerId]) -> usize {
    let mut distinct: Vec<u64> = peers.iter().map(|p| p.0).collect();
    distinct.sort_unstable();
    distinct.dedup();
    (4..16)
        .find(|&d| {
            let mut prefixes: Vec<u64> = distinct.iter().map(|v| v >> (64 - 4 * d)).collect();
            prefixes.dedup();
            prefixes.len() == distinct.len()
        })
        .unwrap_or(16)
}

/// The first `digits` hex digits of `peer`'s id (4 to 16): the suffix that tells members using
/// one nick apart.
pub fn fingerprint(peer: PeerId, digits: usize) -> String {
    let mut id = peer.to_string();
    id.truncate(digits.clamp(4, 16));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_overrides_are_made_visible() {
        assert_eq!(terminal_safe("plain text, é 😀"), "plain text, é 😀");
        assert!(matches!(terminal_safe("plain"), Cow::Borrowed(_)));
        // Clear screen, set the title, ring the bell, move the cursor.
        assert_eq!(terminal_safe("\u{1b}[2J"), "\u{241b}[2J");
        assert_eq!(
            terminal_safe("\u{1b}]0;pwned\u{7}"),
            "\u{241b}]0;pwned\u{2407}"
        );
        assert_eq!(
            terminal_safe("a\rb\nc\u{7f}"),
            "a\u{240d}b\u{240a}c\u{2421}"
        );
        // C1 CSI, and a right-to-left override.
        assert_eq!(terminal_safe("\u{9b}31m"), "\u{fffd}31m");
        assert_eq!(terminal_safe("abc\u{202e}fed"), "abc\u{fffd}fed");
    }

    #[test]
    fn nick_colours_are_fixed_values() {
        // FNV-1a is specified, so these never change (values computed independently): a
        // change would recolour everyone.
        assert_eq!(nick_colour(PeerId(0), 16), 5);
        assert_eq!(nick_colour(PeerId(0x3b1f_0c9e_5a27_d481), 16), 13);
        assert_eq!(nick_colour(PeerId(0x9d04_e6a2_17c3_5bf0), 16), 5);
        assert_eq!(nick_colour(PeerId(7), 1), 0);
        assert_eq!(nick_colour(PeerId(7), 0), 0);
    }

    #[test]
    fn fingerprints_grow_until_they_tell_peers_apart() {
        let a = PeerId(0x3fa2_c1d0_9e8b_7a65);
        let b = PeerId(0x9b01_e4f2_a3c4_d5e6);
        assert_eq!(fingerprint_digits(&[a, b]), 4);
        assert_eq!(fingerprint(a, 4), "3fa2");
        assert_eq!(fingerprint_digits(&[a]), 4);
        assert_eq!(fingerprint_digits(&[a, a]), 4, "one peer twice is one peer");
        let c = PeerId(0x3fa2_c1ff_0000_0000);
        assert_eq!(fingerprint_digits(&[a, b, c]), 7);
        assert_eq!(
            (fingerprint(a, 7), fingerprint(c, 7)),
            ("3fa2c1d".into(), "3fa2c1f".into())
        );
        let d = PeerId(0x3fa2_c1d0_9e8b_7a64);
        assert_eq!(fingerprint_digits(&[a, d]), 16);
        assert_eq!(fingerprint(d, 16), "3fa2c1d09e8b7a64");
        assert_eq!(
            fingerprint(PeerId(0xab), 2),
            "0000",
            "never fewer than 4 digits"
        );
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn nothing_unsafe_reaches_the_terminal(
            text in ".*",
            raw in proptest::collection::vec(any::<char>(), 0..64),
        ) {
            let raw: String = raw.into_iter().collect();
            for t in [text, raw] {
                let safe = terminal_safe(&t);
                prop_assert!(!safe.chars().any(is_unsafe), "{safe:?}");
                prop_assert_eq!(safe.chars().count(), t.chars().count());
            }
        }
    }
}
