//! The chat screen drawn into ratatui's TestBackend: snapshots of what a person sees, and
//! the behaviour of keys and pastes. Deterministic: UTC, fixed times, fixed peer ids.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use jiff::tz::TimeZone;
use lobbycast::app::{Addressee, Command, LobbyStatus, OwnedEvent, Status};
use lobbycast::command_line::ACTION_PREFIX;
use lobbycast::direct_history::{DirectRecord, DirectState};
use lobbycast::lobby_keys::{JoinHow, Passphrase};
use lobbycast::proto::private::LobbyKey;
use lobbycast::proto::{Listed, Lobby, Message, MsgId, PeerId};
use lobbycast::tui::{Effect, Screen, ScreenSettings};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

/// Monday 30 November 2026, 09:00 UTC.
const T0: u64 = 1_796_029_200_000;
const MINUTE: u64 = 60_000;

const ME: PeerId = PeerId(0x1111_2222_3333_4444);
const BOB: PeerId = PeerId(0x3b1f_0c9e_5a27_d481);
const CAROL: PeerId = PeerId(0x9d04_e6a2_17c3_5bf0);

fn settings() -> ScreenSettings {
    ScreenSettings {
        nick: "alice".into(),
        highlights: vec!["deploy".into()],
        time_zone: TimeZone::UTC,
        ..ScreenSettings::default()
    }
}

fn lobby(name: &str) -> Lobby {
    Lobby::new(name).expect("a good lobby name")
}

fn msg(lobby: &Lobby, source: PeerId, nick: &str, text: &str, at: u64) -> Message {
    Message {
        lobby: lobby.id,
        source,
        seq: at,
        msg_id: MsgId(at ^ source.0),
        sent_at: at,
        nick: nick.into(),
        text: text.into(),
        late: false,
    }
}

fn joined(s: &mut Screen, l: &Lobby) {
    s.on_event(
        OwnedEvent::Joined {
            lobby: l.clone(),
            peer: ME,
            groups: Vec::new(),
            local: Vec::new(),
            private: false,
        },
        T0,
    );
}

fn peer_joined(s: &mut Screen, l: &Lobby, peer: PeerId, nick: &str, at: u64) {
    s.on_event(
        OwnedEvent::PeerJoined {
            lobby: l.clone(),
            peer,
            nick: nick.into(),
        },
        at,
    );
}

fn message(s: &mut Screen, l: &Lobby, m: Message) {
    let at = m.sent_at;
    s.on_event(
        OwnedEvent::Message {
            lobby: l.clone(),
            msg: m,
        },
        at,
    );
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn alt(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT)
}

fn type_text(s: &mut Screen, text: &str) {
    for c in text.chars() {
        assert!(s.on_key(key(KeyCode::Char(c))).is_empty());
    }
}

fn enter(s: &mut Screen) -> Vec<Effect> {
    s.on_key(key(KeyCode::Enter))
}

fn draw(s: &mut Screen, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("a test terminal");
    t.draw(|f| s.render(f)).expect("drawn");
    t
}

fn text_of(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        // The cell after a wide character is its other half, not a space of its own.
        let mut skip = 0;
        for x in 0..buf.area.width {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let symbol = buf[(x, y)].symbol();
            out.push_str(symbol);
            skip = unicode_width::UnicodeWidthStr::width(symbol).saturating_sub(1);
        }
        out.push('\n');
    }
    out
}

fn screen_text(s: &mut Screen, w: u16, h: u16) -> String {
    let t = draw(s, w, h);
    text_of(t.backend().buffer())
}

/// The main scene: three lobbies, members, messages of every kind.
fn scene() -> (Screen, [Lobby; 3]) {
    let mut s = Screen::new(settings());
    let [general, ops, random] = [lobby("general"), lobby("ops"), lobby("random")];
    joined(&mut s, &general);
    s.on_event(
        OwnedEvent::History {
            lobby: general.clone(),
            msg: msg(&general, BOB, "bob", "yesterday's news", T0 - 20 * MINUTE),
            own: false,
        },
        T0,
    );
    s.on_event(
        OwnedEvent::History {
            lobby: general.clone(),
            msg: msg(&general, ME, "alice", "and mine", T0 - 19 * MINUTE),
            own: true,
        },
        T0,
    );
    joined(&mut s, &ops);
    joined(&mut s, &random);
    peer_joined(&mut s, &general, BOB, "bob", T0 + MINUTE);
    peer_joined(&mut s, &general, CAROL, "carol", T0 + MINUTE);
    peer_joined(&mut s, &ops, CAROL, "carol", T0 + MINUTE);
    message(
        &mut s,
        &general,
        msg(&general, BOB, "bob", "hello everyone", T0 + 2 * MINUTE),
    );
    message(
        &mut s,
        &general,
        msg(
            &general,
            CAROL,
            "carol",
            &format!("{ACTION_PREFIX}waves at the room"),
            T0 + 3 * MINUTE,
        ),
    );
    let mut late = msg(&general, BOB, "bob", "this one took a detour", T0 + MINUTE);
    late.late = true;
    message(&mut s, &general, late);
    message(
        &mut s,
        &ops,
        msg(
            &ops,
            CAROL,
            "carol",
            "alice: can you look at the deploy?",
            T0 + 4 * MINUTE,
        ),
    );
    message(
        &mut s,
        &random,
        msg(&random, BOB, "bob", "cat pictures", T0 + 5 * MINUTE),
    );
    s.on_event(
        OwnedEvent::Status(Status {
            nick: "alice".into(),
            multicast: true,
            friends: 1,
            friends_up: 0,
            lobbies: vec![LobbyStatus {
                lobby: general.clone(),
                members: 2,
                missing: 3,
            }],
        }),
        T0 + 5 * MINUTE,
    );
    s.set_clock(T0 + 6 * MINUTE);
    type_text(&mut s, "good morning");
    let sent = enter(&mut s);
    assert_eq!(sent.len(), 1);
    (s, [general, ops, random])
}

#[test]
fn main_screen() {
    let (mut s, _) = scene();
    insta::assert_snapshot!(screen_text(&mut s, 100, 20));
}

#[test]
fn own_text_is_confirmed_or_fails() {
    let (mut s, [general, ..]) = scene();
    let before = screen_text(&mut s, 100, 20);
    s.on_event(
        OwnedEvent::Sent {
            lobby: general.clone(),
            msg: msg(&general, ME, "alice", "good morning", T0 + 6 * MINUTE),
        },
        T0 + 6 * MINUTE,
    );
    // Same text, no longer dimmed: the line stays where it was.
    assert_eq!(screen_text(&mut s, 100, 20), before);
    type_text(&mut s, "this will fail");
    enter(&mut s);
    s.on_event(
        OwnedEvent::SendFailed {
            lobby: general.clone(),
            error: "window full".into(),
        },
        T0 + 7 * MINUTE,
    );
    let after = screen_text(&mut s, 100, 20);
    assert!(after.contains("this will fail"), "{after}");
    assert!(after.contains("not sent: window full"), "{after}");
}

#[test]
fn narrow_terminal() {
    let (mut s, _) = scene();
    insta::assert_snapshot!(screen_text(&mut s, 50, 20));
}

#[test]
fn tiny_terminal_shows_a_notice() {
    let (mut s, _) = scene();
    let text = screen_text(&mut s, 30, 8);
    assert!(text.contains("terminal too small"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn every_size_draws_without_panicking() {
    let (mut s, _) = scene();
    for w in (0..=120).step_by(3) {
        for h in (0..=40).step_by(2) {
            draw(&mut s, w, h);
        }
    }
    for (w, h) in [
        (0, 0),
        (1, 1),
        (39, 9),
        (40, 10),
        (79, 24),
        (80, 24),
        (1, 40),
        (120, 1),
    ] {
        draw(&mut s, w, h);
    }
}

#[test]
fn scrollback_shows_more_after_page_up() {
    let mut s = Screen::new(settings());
    let l = lobby("general");
    joined(&mut s, &l);
    for i in 0..40 {
        message(
            &mut s,
            &l,
            msg(&l, BOB, "bob", &format!("line number {i}"), T0 + i * MINUTE),
        );
    }
    draw(&mut s, 80, 16);
    s.on_key(key(KeyCode::PageUp));
    let text = screen_text(&mut s, 80, 16);
    assert!(text.contains("-MORE("), "{text}");
    insta::assert_snapshot!(text);
    s.on_key(KeyEvent::new(KeyCode::End, KeyModifiers::ALT));
    let text = screen_text(&mut s, 80, 16);
    assert!(!text.contains("-MORE("), "{text}");
    assert!(text.contains("line number 39"), "{text}");
    s.on_key(KeyEvent::new(KeyCode::Home, KeyModifiers::ALT));
    let text = screen_text(&mut s, 80, 16);
    assert!(text.contains("line number 0 "), "{text}");
}

#[test]
fn unread_and_highlight_marks() {
    let (mut s, [general, ops, random]) = scene();
    message(
        &mut s,
        &random,
        msg(&random, CAROL, "carol", "more cats", T0 + 7 * MINUTE),
    );
    let text = screen_text(&mut s, 100, 12);
    insta::assert_snapshot!(text);
    // ops has the highlight, so Alt-a goes there first, and its counts are then read.
    s.on_key(alt('a'));
    let text = screen_text(&mut s, 100, 12);
    assert!(text.contains("2:ops"), "{text}");
    s.on_key(alt('a'));
    assert!(screen_text(&mut s, 100, 12).contains("3:random"));
    let _ = (general, ops);
}

#[test]
fn wide_characters_wrap_by_display_width() {
    let mut s = Screen::new(settings());
    let l = lobby("general");
    joined(&mut s, &l);
    message(
        &mut s,
        &l,
        msg(
            &l,
            BOB,
            "bob",
            "日本語のテキストはとても長いので折り返す必要があります 🎉🎉🎉 emoji 😀 too",
            T0,
        ),
    );
    message(
        &mut s,
        &l,
        msg(
            &l,
            CAROL,
            "キャロル",
            "first line\nsecond line\n  indented",
            T0 + MINUTE,
        ),
    );
    let t = draw(&mut s, 44, 12);
    let text = text_of(t.backend().buffer());
    insta::assert_snapshot!(text);
}

#[test]
fn escape_sequences_never_reach_the_buffer() {
    let mut s = Screen::new(settings());
    let evil = lobby("general");
    joined(&mut s, &evil);
    peer_joined(&mut s, &evil, BOB, "b\u{1b}[31mob", T0);
    message(
        &mut s,
        &evil,
        msg(
            &evil,
            BOB,
            "b\u{1b}[31mob\u{7}",
            "\u{1b}[2J\u{1b}]0;pwned\u{7} over\rwrite \u{202e}desrever\u{9b}1m",
            T0,
        ),
    );
    s.on_event(
        OwnedEvent::CommandFailed {
            error: "bad \u{1b}[H thing".into(),
        },
        T0,
    );
    s.on_paste("pasted \u{1b}[1;1H\u{8}");
    let t = draw(&mut s, 100, 12);
    let buf = t.backend().buffer();
    for cell in buf.content() {
        for c in cell.symbol().chars() {
            assert!(
                !c.is_control() && !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'),
                "{c:?} reached the buffer"
            );
        }
    }
    insta::assert_snapshot!(text_of(buf));
}

#[test]
fn enter_sends_text_to_the_current_lobby() {
    let (mut s, [general, ..]) = scene();
    type_text(&mut s, "hi bob");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Send {
            lobby: general.id,
            texts: vec!["hi bob".into()],
        })]
    );
    assert!(screen_text(&mut s, 100, 20).contains("<alice> hi bob"));
    type_text(&mut s, "/me dances");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Send {
            lobby: general.id,
            texts: vec![format!("{ACTION_PREFIX}dances")],
        })]
    );
    assert!(screen_text(&mut s, 100, 20).contains("* alice dances"));
}

/// Text typed while the runtime is still starting (no lobby joined yet) is not lost: it stays
/// in the input line, and Enter sends it once the lobby is there.
#[test]
fn text_typed_before_the_first_lobby_waits_in_the_input() {
    let mut s = Screen::new(settings());
    let general = lobby("general");
    type_text(&mut s, "early bird");
    assert_eq!(enter(&mut s), []);
    assert!(screen_text(&mut s, 100, 20).contains("still joining"));
    joined(&mut s, &general);
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Send {
            lobby: general.id,
            texts: vec!["early bird".into()],
        })]
    );
}

#[test]
fn commands_become_runtime_commands() {
    let (mut s, [general, ops, _]) = scene();
    type_text(&mut s, "/join Dev");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Join {
            name: "Dev".into(),
            how: JoinHow::Public
        })]
    );
    // The screen switches when the runtime says the lobby was joined.
    let dev = lobby("dev");
    joined(&mut s, &dev);
    assert!(screen_text(&mut s, 100, 20).contains("4:dev"));
    type_text(&mut s, "/part ops");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Part { lobby: ops.id })]
    );
    type_text(&mut s, "/nick al");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Nick { nick: "al".into() })]
    );
    s.on_key(alt('1'));
    type_text(&mut s, "/who");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Who { lobby: general.id })]
    );
    type_text(&mut s, "/friend add 192.0.2.7:4747");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::AddFriend {
            addr: "192.0.2.7:4747".parse().expect("an address"),
        })]
    );
    type_text(&mut s, "/status");
    assert_eq!(enter(&mut s), [Effect::Command(Command::Status)]);
    type_text(&mut s, "/list");
    assert_eq!(enter(&mut s), [Effect::Command(Command::ListLobbies)]);
    type_text(&mut s, "/help nick");
    assert!(enter(&mut s).is_empty());
    assert!(screen_text(&mut s, 100, 20).contains("/nick NAME: change your nick"));
    type_text(&mut s, "/clear");
    assert!(enter(&mut s).is_empty());
    assert!(!screen_text(&mut s, 100, 20).contains("/nick NAME"));
    type_text(&mut s, "/quit");
    assert_eq!(enter(&mut s), [Effect::Quit]);
}

#[test]
fn private_lobbies_are_marked_and_their_passphrase_is_not_echoed() {
    let (mut s, [_, _, _]) = scene();
    type_text(&mut s, "/join Team --key correct horse");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Join {
            name: "Team".into(),
            how: JoinHow::Passphrase(Passphrase("correct horse".into()))
        })]
    );
    let team = LobbyKey::from_bytes([7; 32]).lobby(&lobby("team"));
    s.on_event(
        OwnedEvent::Joined {
            lobby: team.clone(),
            peer: ME,
            groups: Vec::new(),
            local: Vec::new(),
            private: true,
        },
        T0,
    );
    let shown = screen_text(&mut s, 100, 20);
    assert!(shown.contains("4:team (private)"), "{shown}");
    assert!(!shown.contains("horse"), "{shown}");
    // By name: /who team names the private lobby, and /join team --private only switches.
    type_text(&mut s, "/who team");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Who { lobby: team.id })]
    );
    s.on_key(alt('1'));
    type_text(&mut s, "/join team --private");
    assert_eq!(enter(&mut s), []);
    assert!(screen_text(&mut s, 100, 20).contains("4:team (private)"));
    // Up walks back past the passphrase line.
    s.on_key(key(KeyCode::Up));
    s.on_key(key(KeyCode::Up));
    s.on_key(key(KeyCode::Up));
    assert!(!screen_text(&mut s, 100, 20).contains("horse"));
}

#[test]
fn a_bad_command_is_an_error_line_and_nothing_else() {
    let (mut s, _) = scene();
    type_text(&mut s, "/frobnicate now");
    assert!(enter(&mut s).is_empty());
    let text = screen_text(&mut s, 100, 20);
    assert!(text.contains("!! unknown command /frobnicate"), "{text}");
}

#[test]
fn tab_completes_nicks_and_commands() {
    let (mut s, [general, ..]) = scene();
    peer_joined(&mut s, &general, PeerId(99), "bea", T0);
    type_text(&mut s, "b");
    s.on_key(key(KeyCode::Tab));
    s.on_key(key(KeyCode::Tab));
    // Shift-Tab goes back one, Tab forward again: bea, bob, bea, bob.
    s.on_key(key(KeyCode::BackTab));
    s.on_key(key(KeyCode::Tab));
    type_text(&mut s, "hi");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Send {
            lobby: general.id,
            texts: vec!["bob: hi".into()],
        })]
    );
    type_text(&mut s, "thanks car");
    s.on_key(key(KeyCode::Tab));
    let sent = enter(&mut s);
    assert_eq!(
        sent,
        [Effect::Command(Command::Send {
            lobby: general.id,
            texts: vec!["thanks carol ".into()],
        })]
    );
    type_text(&mut s, "/jo");
    s.on_key(key(KeyCode::Tab));
    type_text(&mut s, "x");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Join {
            name: "x".into(),
            how: JoinHow::Public
        })]
    );
}

#[test]
fn lobbies_switch_with_alt_digits_and_ctrl_n_p() {
    let (mut s, _) = scene();
    assert!(screen_text(&mut s, 100, 20).contains("1:general"));
    s.on_key(alt('2'));
    assert!(screen_text(&mut s, 100, 20).contains("2:ops"));
    s.on_key(ctrl('n'));
    assert!(screen_text(&mut s, 100, 20).contains("3:random"));
    s.on_key(ctrl('n'));
    assert!(screen_text(&mut s, 100, 20).contains("1:general"));
    s.on_key(ctrl('p'));
    assert!(screen_text(&mut s, 100, 20).contains("3:random"));
    s.on_key(alt('9'));
    assert!(screen_text(&mut s, 100, 20).contains("3:random"));
}

#[test]
fn a_long_paste_asks_then_sends_one_text() {
    let (mut s, [general, ..]) = scene();
    let paste: String = (1..=12).map(|i| format!("line {i}\r\n")).collect();
    assert!(s.on_paste(&paste).is_empty());
    let text = screen_text(&mut s, 100, 20);
    assert!(
        text.contains("paste 12 lines? Enter to send, Esc to cancel"),
        "{text}"
    );
    let want: Vec<String> = (1..=12).map(|i| format!("line {i}")).collect();
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Send {
            lobby: general.id,
            texts: vec![want.join("\n")],
        })]
    );
    // Esc drops a paste.
    s.on_paste(&paste);
    assert!(s.on_key(key(KeyCode::Esc)).is_empty());
    assert!(enter(&mut s).is_empty());
    // A short paste goes into the input; Alt-Enter adds a line.
    s.on_paste("one\ntwo");
    s.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT));
    type_text(&mut s, "three");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Send {
            lobby: general.id,
            texts: vec!["one\ntwo\nthree".into()],
        })]
    );
}

#[test]
fn ctrl_c_quits_and_alt_m_toggles_the_mouse() {
    let (mut s, _) = scene();
    assert_eq!(s.on_key(ctrl('c')), [Effect::Quit]);
    assert_eq!(s.on_key(alt('m')), [Effect::SetMouseCapture(true)]);
    assert_eq!(s.on_key(alt('m')), [Effect::SetMouseCapture(false)]);
}

#[test]
fn highlights_ring_the_bell() {
    let (mut s, [general, ..]) = scene();
    // The scene's highlight in ops rang once.
    assert_eq!(s.take_effects(), [Effect::Bell]);
    message(
        &mut s,
        &general,
        msg(&general, BOB, "bob", "nothing to see", T0 + 10 * MINUTE),
    );
    assert!(s.take_effects().is_empty());
    message(
        &mut s,
        &general,
        msg(&general, BOB, "bob", "ALICE look", T0 + 11 * MINUTE),
    );
    assert_eq!(s.take_effects(), [Effect::Bell]);
    // Own messages never ring.
    message(
        &mut s,
        &general,
        msg(
            &general,
            ME,
            "alice",
            "alice talks to herself",
            T0 + 12 * MINUTE,
        ),
    );
    assert!(s.take_effects().is_empty());
}

#[test]
fn day_changes_and_read_marker() {
    let mut s = Screen::new(settings());
    let [a, b] = [lobby("a"), lobby("b")];
    joined(&mut s, &a);
    joined(&mut s, &b);
    message(
        &mut s,
        &a,
        msg(&a, BOB, "bob", "late on monday", T0 + 14 * 60 * MINUTE),
    );
    s.on_key(alt('2'));
    message(
        &mut s,
        &a,
        msg(&a, BOB, "bob", "early on tuesday", T0 + 16 * 60 * MINUTE),
    );
    s.on_key(alt('1'));
    let text = screen_text(&mut s, 60, 10);
    insta::assert_snapshot!(text);
    assert!(text.contains("-- Tuesday 1 December 2026 --"), "{text}");
}

#[test]
fn dirty_until_drawn() {
    let (mut s, [general, ..]) = scene();
    assert!(s.dirty());
    draw(&mut s, 80, 24);
    assert!(!s.dirty());
    message(&mut s, &general, msg(&general, BOB, "bob", "x", T0));
    assert!(s.dirty());
}

#[test]
fn redraw_is_cheap_with_a_full_scrollback() {
    let mut s = Screen::new(settings());
    let lobbies: Vec<Lobby> = (0..100).map(|i| lobby(&format!("lobby{i}"))).collect();
    for l in &lobbies {
        joined(&mut s, l);
    }
    for i in 0..10_000u64 {
        let text = format!("message {i} with some words to wrap around the pane now and then");
        message(
            &mut s,
            &lobbies[0],
            msg(&lobbies[0], BOB, "bob", &text, T0 + i),
        );
    }
    let mut t = Terminal::new(TestBackend::new(200, 60)).expect("a test terminal");
    t.draw(|f| s.render(f)).expect("drawn");
    let start = std::time::Instant::now();
    let rounds = 50;
    for _ in 0..rounds {
        t.draw(|f| s.render(f)).expect("drawn");
    }
    let each = start.elapsed() / rounds;
    println!("{each:?} a frame at the bottom");
    // Generous for an unoptimised build on a shared machine; release is far below.
    assert!(
        each < std::time::Duration::from_millis(50),
        "{each:?} a frame"
    );
    s.on_key(KeyEvent::new(KeyCode::Home, KeyModifiers::ALT));
    t.draw(|f| s.render(f)).expect("drawn");
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        t.draw(|f| s.render(f)).expect("drawn");
    }
    let each = start.elapsed() / rounds;
    println!("{each:?} a frame at the top");
    assert!(
        each < std::time::Duration::from_millis(50),
        "{each:?} a frame at the top"
    );
}

#[test]
fn the_screen_can_move_to_the_terminal_thread() {
    fn send<T: Send>() {}
    send::<Screen>();
}

#[test]
fn without_colours_no_cell_has_a_colour() {
    let mut s = Screen::new(ScreenSettings {
        colours: false,
        ..settings()
    });
    let l = lobby("general");
    joined(&mut s, &l);
    peer_joined(&mut s, &l, BOB, "bob", T0);
    message(&mut s, &l, msg(&l, BOB, "bob", "alice: colourless", T0));
    let t = draw(&mut s, 100, 12);
    for cell in t.backend().buffer().content() {
        assert_eq!(cell.fg, ratatui::style::Color::Reset);
        assert_eq!(cell.bg, ratatui::style::Color::Reset);
    }
}

#[test]
fn participants_follow_joins_nick_changes_and_leaves() {
    let (mut s, [general, ..]) = scene();
    s.on_event(
        OwnedEvent::NickChanged {
            lobby: general.clone(),
            peer: BOB,
            nick: "robert".into(),
        },
        T0 + 8 * MINUTE,
    );
    s.on_event(
        OwnedEvent::PeerLeft {
            lobby: general.clone(),
            peer: CAROL,
        },
        T0 + 9 * MINUTE,
    );
    let text = screen_text(&mut s, 100, 20);
    assert!(text.contains("bob is now known as robert"), "{text}");
    assert!(text.contains("carol left"), "{text}");
    assert!(text.contains("2 here"), "{text}");
    assert!(text.contains("│robert"), "{text}");
    s.on_event(
        OwnedEvent::Members {
            lobby: general.clone(),
            members: vec![
                (BOB, "bob".into()),
                (CAROL, "carol".into()),
                (ME, "alice".into()),
            ],
        },
        T0 + 10 * MINUTE,
    );
    let text = screen_text(&mut s, 100, 20);
    assert!(
        text.contains("members of general (3): alice, bob, carol"),
        "{text}"
    );
    assert!(text.contains("3 here"), "{text}");
}

#[test]
fn the_status_reply_and_friends_are_system_lines() {
    let (mut s, [general, ..]) = scene();
    type_text(&mut s, "/status");
    enter(&mut s);
    s.on_event(
        OwnedEvent::Status(Status {
            nick: "alice".into(),
            multicast: true,
            friends: 1,
            friends_up: 1,
            lobbies: vec![LobbyStatus {
                lobby: general.clone(),
                members: 2,
                missing: 0,
            }],
        }),
        T0 + 8 * MINUTE,
    );
    s.on_event(
        OwnedEvent::FriendUp {
            addr: "192.0.2.7:4747".parse().expect("an address"),
            peer: CAROL,
            nick: "carol".into(),
        },
        T0 + 8 * MINUTE,
    );
    let text = screen_text(&mut s, 100, 20);
    assert!(
        text.contains("transport: mixed; friends 1 of 1 up"),
        "{text}"
    );
    assert!(
        text.contains("friend carol (192.0.2.7:4747) is up"),
        "{text}"
    );
    assert!(!text.contains("repairing"), "{text}");
}

#[test]
fn a_storm_of_keys_pastes_and_events_never_panics() {
    use crossterm::event::{MouseEvent, MouseEventKind};
    let (mut s, lobbies) = scene();
    // A fixed linear congruential generator: the same storm every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let codes = [
        KeyCode::Enter,
        KeyCode::Tab,
        KeyCode::Up,
        KeyCode::Down,
        KeyCode::Left,
        KeyCode::Right,
        KeyCode::Home,
        KeyCode::End,
        KeyCode::PageUp,
        KeyCode::PageDown,
        KeyCode::Backspace,
        KeyCode::Delete,
        KeyCode::Esc,
    ];
    let mods = [
        KeyModifiers::NONE,
        KeyModifiers::CONTROL,
        KeyModifiers::ALT,
        KeyModifiers::SHIFT,
    ];
    let texts = [
        "/",
        "/j",
        "/part",
        "/who nowhere",
        "b",
        "日本",
        "😀",
        " ",
        "\u{1b}[2J",
        "/clear",
        "/help",
        "/list",
        "/me x",
        "line\nline",
    ];
    for i in 0..5_000u64 {
        match next(6) {
            0 => {
                let code = codes[next(codes.len() as u64) as usize];
                let m = mods[next(mods.len() as u64) as usize];
                let _ = s.on_key(KeyEvent::new(code, m));
            }
            1 => {
                let c = char::from_u32(next(0x3000) as u32).unwrap_or('x');
                let m = mods[next(mods.len() as u64) as usize];
                let _ = s.on_key(KeyEvent::new(KeyCode::Char(c), m));
            }
            2 => {
                let t = texts[next(texts.len() as u64) as usize];
                let _ = s.on_paste(&t.repeat(1 + next(8) as usize));
            }
            3 => {
                let kind = if next(2) == 0 {
                    MouseEventKind::ScrollUp
                } else {
                    MouseEventKind::ScrollDown
                };
                let _ = s.on_mouse(MouseEvent {
                    kind,
                    column: 0,
                    row: 0,
                    modifiers: KeyModifiers::NONE,
                });
            }
            4 => {
                let l = &lobbies[next(3) as usize];
                let t = texts[next(texts.len() as u64) as usize];
                message(&mut s, l, msg(l, BOB, "bob", t, T0 + i * 1000));
                if next(4) == 0 {
                    s.on_event(
                        OwnedEvent::Sent {
                            lobby: l.clone(),
                            msg: msg(l, ME, "alice", t, T0 + i * 1000),
                        },
                        T0,
                    );
                }
            }
            _ => {
                let (w, h) = (next(130) as u16, next(45) as u16);
                draw(&mut s, w, h);
            }
        }
    }
    draw(&mut s, 100, 30);
}

#[test]
fn too_many_participants_end_in_a_count() {
    let mut s = Screen::new(settings());
    let l = lobby("crowd");
    joined(&mut s, &l);
    for i in 0..30 {
        peer_joined(&mut s, &l, PeerId(1000 + i), &format!("peer{i:02}"), T0);
    }
    let text = screen_text(&mut s, 100, 12);
    assert!(text.contains("31 here"), "{text}");
    // 10 message rows: the header, 8 nicks, and the count of the 23 others.
    assert!(text.contains("+23 more"), "{text}");
}

#[test]
fn the_terminal_cursor_follows_the_input() {
    let (mut s, _) = scene();
    type_text(&mut s, "日本 ab");
    let mut t = draw(&mut s, 100, 20);
    // Two wide characters, a space and two letters: column 7 of the last row.
    t.backend_mut().assert_cursor_position((7, 19));
    s.on_key(ctrl('a'));
    let mut t = draw(&mut s, 100, 20);
    t.backend_mut().assert_cursor_position((0, 19));
}

#[test]
fn emacs_editing_and_input_history() {
    let (mut s, [general, ..]) = scene();
    let sent = |texts: &str| {
        [Effect::Command(Command::Send {
            lobby: general.id,
            texts: vec![texts.into()],
        })]
    };
    type_text(&mut s, "two three");
    s.on_key(ctrl('a'));
    type_text(&mut s, "one ");
    // The editor's Alt-f stops at the start of the next word, as its docs say.
    s.on_key(alt('f'));
    s.on_key(ctrl('k'));
    assert_eq!(enter(&mut s), sent("one two "));
    s.on_key(ctrl('y'));
    assert_eq!(enter(&mut s), sent("three"));
    type_text(&mut s, "scrap this");
    s.on_key(ctrl('u'));
    type_text(&mut s, "keep");
    s.on_key(ctrl('w'));
    type_text(&mut s, "kept");
    assert_eq!(enter(&mut s), sent("kept"));
    s.on_key(key(KeyCode::Up));
    s.on_key(key(KeyCode::Up));
    assert_eq!(enter(&mut s), sent("three"));
}

#[test]
fn a_member_heard_again_is_not_announced_twice() {
    let (mut s, [general, ..]) = scene();
    peer_joined(&mut s, &general, BOB, "bob", T0 + 8 * MINUTE);
    let text = screen_text(&mut s, 100, 20);
    assert_eq!(text.matches("bob joined").count(), 1, "{text}");
}

#[test]
fn medium_terminal_keeps_a_compact_lobby_list() {
    let (mut s, _) = scene();
    insta::assert_snapshot!(screen_text(&mut s, 70, 14));
}

/// The row of `text` that holds `needle` (panics showing the screen if none does).
fn row_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle:?}:\n{text}"))
}

/// The participant list of a drawn screen: the column right of the last separator, above the
/// status bar and the input line.
fn participant_rows(text: &str) -> Vec<String> {
    let rows: Vec<&str> = text.lines().collect();
    rows[..rows.len().saturating_sub(2)]
        .iter()
        .filter_map(|l| l.rsplit_once('│').map(|(_, p)| p.trim().to_owned()))
        .filter(|p| !p.is_empty())
        .collect()
}

/// Two members using one nick are told apart by the first hex digits of their peer ids (more
/// when those collide), in message, join and rename lines and in the participant list; a
/// nick used once stays plain, and so does a line from before the namesake came.
#[test]
fn namesakes_are_told_apart_by_fingerprints() {
    const ANN1: PeerId = PeerId(0x3fa2_0000_0000_0001);
    const ANN2: PeerId = PeerId(0x9b01_0000_0000_0002);
    const ANN3: PeerId = PeerId(0x3fa2_5000_0000_0003);
    let mut s = Screen::new(settings());
    let l = lobby("general");
    joined(&mut s, &l);
    peer_joined(&mut s, &l, ANN1, "ann", T0);
    message(&mut s, &l, msg(&l, ANN1, "ann", "alone so far", T0 + 1));
    peer_joined(&mut s, &l, BOB, "bob", T0 + 2);
    peer_joined(&mut s, &l, ANN2, "ann", T0 + 3);
    message(&mut s, &l, msg(&l, ANN2, "ann", "from the second", T0 + 4));
    message(&mut s, &l, msg(&l, ANN1, "ann", "from the first", T0 + 5));
    message(&mut s, &l, msg(&l, BOB, "bob", "plain bob", T0 + 6));
    let text = screen_text(&mut s, 100, 20);
    assert!(
        row_with(&text, "alone so far").contains("<ann> alone"),
        "{text}"
    );
    assert!(
        text.contains("-- ann joined") && text.contains("-- bob joined"),
        "{text}"
    );
    assert!(text.contains("-- ann#9b01 joined"), "{text}");
    assert!(
        row_with(&text, "from the second").contains("<ann#9b01> from"),
        "{text}"
    );
    assert!(
        row_with(&text, "from the first").contains("<ann#3fa2> from"),
        "{text}"
    );
    assert!(
        row_with(&text, "plain bob").contains("<bob> plain"),
        "{text}"
    );
    assert_eq!(
        participant_rows(&text),
        ["4 here", "alice", "ann#3fa2", "ann#9b01", "bob"]
    );

    // A third whose first four digits are those of the first: five digits for all.
    peer_joined(&mut s, &l, ANN3, "ann", T0 + 7);
    message(&mut s, &l, msg(&l, ANN1, "ann", "five digits now", T0 + 8));
    let text = screen_text(&mut s, 100, 20);
    assert!(text.contains("-- ann#3fa25 joined"), "{text}");
    assert!(
        row_with(&text, "five digits now").contains("<ann#3fa20> five"),
        "{text}"
    );
    assert_eq!(
        participant_rows(&text),
        [
            "5 here",
            "alice",
            "ann#3fa20",
            "ann#3fa25",
            "ann#9b010",
            "bob"
        ]
    );

    // Renames and leaves name the namesake they concern; one left alone is plain again.
    s.on_event(
        OwnedEvent::NickChanged {
            lobby: l.clone(),
            peer: ANN3,
            nick: "anna".into(),
        },
        T0 + 9,
    );
    s.on_event(
        OwnedEvent::PeerLeft {
            lobby: l.clone(),
            peer: ANN2,
        },
        T0 + 10,
    );
    message(&mut s, &l, msg(&l, ANN1, "ann", "alone again", T0 + 11));
    let text = screen_text(&mut s, 100, 20);
    assert!(text.contains("-- ann#3fa25 is now known as anna"), "{text}");
    assert!(text.contains("-- ann#9b01 left"), "{text}");
    assert!(
        row_with(&text, "alone again").contains("<ann> alone"),
        "{text}"
    );
    assert_eq!(
        participant_rows(&text),
        ["4 here", "alice", "ann", "anna", "bob"]
    );

    // Own nick counts too: own lines and the other's get their fingerprints.
    peer_joined(&mut s, &l, CAROL, "alice", T0 + 12);
    type_text(&mut s, "which alice?");
    enter(&mut s);
    let text = screen_text(&mut s, 100, 20);
    assert!(text.contains("-- alice#9d04 joined"), "{text}");
    assert!(
        row_with(&text, "which alice?").contains("<alice#1111> which"),
        "{text}"
    );
    assert!(
        participant_rows(&text).contains(&"alice#1111".to_owned()),
        "{text}"
    );
}

/// A key the runtime flags as new shows `(new key!)` in the warning style on the peer's
/// lines until `/trust` accepts it; /who marks it too, and `/trust` answers in one line.
#[test]
fn new_keys_are_flagged_until_trusted() {
    const ANN1: PeerId = PeerId(0x3fa2_0000_0000_0001);
    const ANN2: PeerId = PeerId(0x9b01_0000_0000_0002);
    let mut s = Screen::new(settings());
    let l = lobby("general");
    joined(&mut s, &l);
    peer_joined(&mut s, &l, ANN1, "ann", T0);
    let new_key = |s: &mut Screen| {
        s.on_event(
            OwnedEvent::NewKey {
                peer: ANN2,
                nick: "ann".into(),
            },
            T0,
        )
    };
    new_key(&mut s);
    peer_joined(&mut s, &l, ANN2, "ann", T0 + 1);
    new_key(&mut s);
    message(&mut s, &l, msg(&l, ANN2, "ann", "it is me, really", T0 + 2));
    message(&mut s, &l, msg(&l, ANN1, "ann", "the first ann", T0 + 3));
    let t = draw(&mut s, 100, 20);
    let text = text_of(t.backend().buffer());
    assert!(text.contains("-- ann#9b01 (new key!) joined"), "{text}");
    let row = row_with(&text, "it is me");
    assert!(row.contains("<ann#9b01 (new key!)> it is me"), "{text}");
    assert!(
        row_with(&text, "the first ann").contains("<ann#3fa2> the"),
        "{text}"
    );
    // The flag is drawn in the theme's warning style.
    let buf = t.backend().buffer();
    let y = text.lines().position(|r| r.contains("it is me")).unwrap() as u16;
    let x = row.find("(new key!)").unwrap();
    let x = row[..x].chars().count() as u16;
    assert_eq!(buf[(x, y)].bg, ratatui::style::Color::Yellow, "{text}");

    s.on_event(
        OwnedEvent::Members {
            lobby: l.clone(),
            members: vec![(ANN1, "ann".into()), (ANN2, "ann".into())],
        },
        T0 + 4,
    );
    let text = screen_text(&mut s, 100, 20);
    assert!(
        text.contains("members of general (3): alice, ann#3fa2, ann#9b01 (new key!)"),
        "{text}"
    );

    type_text(&mut s, "/trust ann");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Trust { nick: "ann".into() })]
    );
    s.on_event(
        OwnedEvent::Trusted {
            nick: "ann".into(),
            peers: vec![ANN2],
        },
        T0 + 5,
    );
    message(&mut s, &l, msg(&l, ANN2, "ann", "trusted now", T0 + 6));
    s.on_event(
        OwnedEvent::Trusted {
            nick: "ann".into(),
            peers: vec![],
        },
        T0 + 7,
    );
    let text = screen_text(&mut s, 100, 20);
    assert!(
        text.contains("-- trusted the new key of ann (ann#9b01)"),
        "{text}"
    );
    assert!(
        row_with(&text, "trusted now").contains("<ann#9b01> trusted"),
        "{text}"
    );
    assert!(
        !row_with(&text, "trusted now").contains("new key"),
        "{text}"
    );
    assert!(text.contains("-- no new key for ann"), "{text}");
    // The earlier lines keep their warning: they came before the key was accepted.
    assert!(row_with(&text, "it is me").contains("(new key!)"), "{text}");
}

/// Tab completes /trust like every command, and the nick after it.
#[test]
fn trust_is_completed_and_listed_in_help() {
    let (mut s, _) = scene();
    type_text(&mut s, "/tr");
    s.on_key(key(KeyCode::Tab));
    type_text(&mut s, "bo");
    s.on_key(key(KeyCode::Tab));
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Trust { nick: "bob".into() })]
    );
    type_text(&mut s, "/help");
    enter(&mut s);
    let text = screen_text(&mut s, 120, 40);
    assert!(text.contains("/trust NICK"), "{text}");
}

fn direct_record(
    id: u64,
    own: bool,
    nick: &str,
    text: &str,
    at: u64,
    state: DirectState,
) -> DirectRecord {
    DirectRecord {
        id: MsgId(id),
        own,
        nick: nick.into(),
        sent_at: at,
        text: text.into(),
        state,
    }
}

#[test]
fn a_conversation_pane_shows_pending_delivered_and_undelivered_messages() {
    let (mut s, _) = scene();
    // Bob writes first: his pane opens without the screen moving there, counted unread.
    s.on_event(
        OwnedEvent::Conversation {
            peer: BOB,
            nick: "bob".into(),
            history: vec![
                direct_record(
                    1,
                    false,
                    "bob",
                    "lunch tomorrow?",
                    T0 - 30 * MINUTE,
                    DirectState::Received,
                ),
                direct_record(
                    2,
                    true,
                    "alice",
                    "sure",
                    T0 - 29 * MINUTE,
                    DirectState::Delivered,
                ),
            ],
            query: false,
        },
        T0 + 6 * MINUTE,
    );
    s.on_event(
        OwnedEvent::Direct {
            peer: BOB,
            msg: direct_record(
                3,
                false,
                "bob",
                "psst, a word?",
                T0 + 6 * MINUTE,
                DirectState::Received,
            ),
        },
        T0 + 6 * MINUTE,
    );
    let lobby_view = screen_text(&mut s, 100, 20);
    assert!(lobby_view.contains("@bob"), "{lobby_view}");
    assert!(!lobby_view.contains("psst"), "not switched: {lobby_view}");
    // /query goes to the runtime, which resolves the nick; its answer switches.
    type_text(&mut s, "/query bob");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Query { nick: "bob".into() })]
    );
    s.on_event(
        OwnedEvent::Conversation {
            peer: BOB,
            nick: "bob".into(),
            history: Vec::new(),
            query: true,
        },
        T0 + 7 * MINUTE,
    );
    // Text typed in the pane goes to bob by his id, whatever his nick is by then.
    s.set_clock(T0 + 7 * MINUTE);
    type_text(&mut s, "yes?");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Direct {
            to: Addressee::Peer(BOB),
            text: "yes?".into()
        })]
    );
    for (id, text) in [(10, "yes?"), (11, "hello?"), (12, "still there?")] {
        s.on_event(
            OwnedEvent::DirectSent {
                peer: BOB,
                nick: "bob".into(),
                msg: direct_record(
                    id,
                    true,
                    "alice",
                    text,
                    T0 + 7 * MINUTE,
                    DirectState::Pending,
                ),
            },
            T0 + 7 * MINUTE,
        );
    }
    s.on_event(
        OwnedEvent::DirectAcked {
            id: MsgId(10),
            peer: BOB,
        },
        T0 + 8 * MINUTE,
    );
    s.on_event(
        OwnedEvent::DirectFailed {
            id: MsgId(11),
            peer: BOB,
        },
        T0 + 9 * MINUTE,
    );
    insta::assert_snapshot!(screen_text(&mut s, 100, 20));
}

#[test]
fn msg_from_a_lobby_is_a_runtime_command_and_help_lists_it() {
    let (mut s, _) = scene();
    type_text(&mut s, "/msg bob#3b1f hi there");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Direct {
            to: Addressee::Nick("bob#3b1f".into()),
            text: "hi there".into()
        })]
    );
    type_text(&mut s, "/help");
    enter(&mut s);
    let help = screen_text(&mut s, 120, 40);
    assert!(
        help.contains("/msg NICK TEXT") && help.contains("/query NICK"),
        "{help}"
    );
}

#[test]
fn invitations_are_shown_accepted_and_followed() {
    let (mut s, _) = scene();
    let ops = LobbyKey::from_bytes([9; 32]).lobby(&lobby("ops"));
    let invitation = |lobby: &Lobby, again, joined| OwnedEvent::Invitation {
        id: MsgId(1),
        from: BOB,
        nick: "bob".into(),
        lobby: lobby.clone(),
        again,
        joined,
    };
    s.on_event(invitation(&ops, false, false), T0 + MINUTE);
    let shown = screen_text(&mut s, 110, 20);
    assert!(
        shown
            .contains("bob#3b1f invites you to the private lobby ops: /accept ops or /decline ops"),
        "{shown}"
    );
    // Accepted, the lobby's pane is shown once joined, and texts go there.
    type_text(&mut s, "/accept");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Accept { which: None })]
    );
    s.on_event(
        OwnedEvent::Joined {
            lobby: ops.clone(),
            peer: ME,
            groups: Vec::new(),
            local: Vec::new(),
            private: true,
        },
        T0 + MINUTE,
    );
    type_text(&mut s, "hi all");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Send {
            lobby: ops.id,
            texts: vec!["hi all".into()],
        })]
    );
    // An own invitation, from the lobby's pane, and what became of it.
    type_text(&mut s, "/invite carol");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Invite {
            nick: "carol".into(),
            lobby: ops.id
        })]
    );
    s.on_event(
        OwnedEvent::InvitationSent {
            id: MsgId(7),
            peer: CAROL,
            nick: "carol".into(),
            lobby: ops.clone(),
        },
        T0 + MINUTE,
    );
    s.on_event(
        OwnedEvent::InvitationAcked {
            id: MsgId(7),
            peer: CAROL,
        },
        T0 + MINUTE,
    );
    let shown = screen_text(&mut s, 110, 20);
    assert!(
        shown.contains("invitation of carol to ops sent (pending)"),
        "{shown}"
    );
    assert!(
        shown.contains("invitation of carol to ops received"),
        "{shown}"
    );
    // A re-invitation the runtime answered by rejoining is news, not a question.
    let dev = LobbyKey::from_bytes([10; 32]).lobby(&lobby("dev"));
    s.on_event(invitation(&dev, true, true), T0 + MINUTE);
    let shown = screen_text(&mut s, 110, 20);
    assert!(
        shown.contains("bob#3b1f invited you back to the private lobby dev"),
        "{shown}"
    );
    // /decline goes to the runtime, which answers what was declined.
    type_text(&mut s, "/decline Dev");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::Decline {
            which: Some("Dev".into())
        })]
    );
    s.on_event(
        OwnedEvent::Declined {
            lobby: dev,
            from: BOB,
        },
        T0 + MINUTE,
    );
    assert!(screen_text(&mut s, 110, 20).contains("declined the invitation to dev from bob#3b1f"));
}

/// `/whois` goes to the runtime; its answers are system lines in the pane shown, one per peer
/// however many answers name it, brought up to date as they come (the freshest sighting,
/// every lobby, the address, who told), then how many were found, or that nobody answered.
#[test]
fn whois_answers_are_one_merged_line_per_peer() {
    use lobbycast::proto::wire::WhoIsPeer;
    const ANN1: PeerId = PeerId(0x3fa2_0000_0000_0001);
    const ANN2: PeerId = PeerId(0x9b01_0000_0000_0002);
    const FAR: PeerId = PeerId(0x77aa_0000_0000_0003);
    let found = |peer, seen, lobbies: &[&str], addr: Option<&str>| WhoIsPeer {
        peer,
        nick: "ann".into(),
        seen,
        lobbies: lobbies.iter().map(|l| (*l).to_owned()).collect(),
        addr: addr.map(|a| a.parse().expect("an address")),
    };
    let mut s = Screen::new(settings());
    let l = lobby("general");
    joined(&mut s, &l);
    peer_joined(&mut s, &l, BOB, "bob", T0);
    let at = T0 + MINUTE;
    s.set_clock(at);
    type_text(&mut s, "/whois ann");
    assert_eq!(
        enter(&mut s),
        [Effect::Command(Command::WhoIs { nick: "ann".into() })]
    );
    let answer = |s: &mut Screen, from, peers| {
        s.on_event(
            OwnedEvent::WhoIs {
                id: MsgId(1),
                nick: "ann".into(),
                from,
                peers,
            },
            at,
        )
    };
    s.on_event(
        OwnedEvent::WhoIsAsked {
            id: MsgId(1),
            nick: "ann".into(),
        },
        at,
    );
    answer(&mut s, ME, vec![found(ANN1, 40, &["general"], None)]);
    answer(
        &mut s,
        BOB,
        vec![found(ANN1, 3, &["general", "team"], Some("10.0.0.2:47110"))],
    );
    answer(&mut s, ANN2, vec![found(ANN2, 0, &["lab"], None)]);
    answer(
        &mut s,
        FAR,
        vec![
            found(ANN2, 75, &["lab"], None),
            found(ANN1, 200, &["ops"], None),
        ],
    );
    s.on_event(
        OwnedEvent::WhoIsDone {
            id: MsgId(1),
            nick: "ann".into(),
            answers: 4,
            peers: 2,
            friends_up: 2,
        },
        at,
    );
    type_text(&mut s, "/whois zed");
    enter(&mut s);
    s.on_event(
        OwnedEvent::WhoIsAsked {
            id: MsgId(2),
            nick: "zed".into(),
        },
        at,
    );
    s.on_event(
        OwnedEvent::WhoIsDone {
            id: MsgId(2),
            nick: "zed".into(),
            answers: 0,
            peers: 0,
            friends_up: 2,
        },
        at,
    );
    // With no friend link up, only this node was asked: the line says so.
    s.on_event(
        OwnedEvent::WhoIsDone {
            id: MsgId(3),
            nick: "yves".into(),
            answers: 0,
            peers: 0,
            friends_up: 0,
        },
        at,
    );
    let text = screen_text(&mut s, 120, 20);
    assert_eq!(text.matches("ann#3fa2").count(), 1, "{text}");
    assert_eq!(text.matches("ann#9b01").count(), 1, "{text}");
    insta::assert_snapshot!(text);
}

fn listed(name: &str, members: u64) -> Listed {
    Listed {
        name: name.into(),
        members,
    }
}

/// `/list` asks the runtime for the LAN's lobbies; its answer is shown whole, joined lobbies
/// marked, and the lists that follow while it is watched only as what changed.
#[test]
fn the_lan_s_lobby_list_is_shown_whole_then_only_what_changed() {
    let (mut s, _) = scene();
    type_text(&mut s, "/list");
    assert_eq!(enter(&mut s), [Effect::Command(Command::ListLobbies)]);
    s.on_event(
        OwnedEvent::LobbyList {
            lobbies: vec![
                listed("general", 4),
                listed("lab", 3),
                listed("team", 1),
                listed("东京", 1),
            ],
            cut: false,
        },
        T0 + 7 * MINUTE,
    );
    s.on_event(
        OwnedEvent::LobbyList {
            lobbies: vec![
                listed("general", 5),
                listed("ops", 2),
                listed("team", 1),
                listed("东京", 1),
            ],
            cut: true,
        },
        T0 + 8 * MINUTE,
    );
    insta::assert_snapshot!(screen_text(&mut s, 100, 24));
}

/// A segment full of new lobbies while the list is watched takes a few lines, not hundreds.
#[test]
fn a_flood_of_lobbies_takes_a_few_lines_of_the_pane() {
    let (mut s, _) = scene();
    type_text(&mut s, "/list");
    enter(&mut s);
    s.on_event(
        OwnedEvent::LobbyList {
            lobbies: Vec::new(),
            cut: false,
        },
        T0 + 7 * MINUTE,
    );
    let many: Vec<Listed> = (0..300).map(|k| listed(&format!("l{k:03}"), 1)).collect();
    s.on_event(
        OwnedEvent::LobbyList {
            lobbies: many,
            cut: true,
        },
        T0 + 8 * MINUTE,
    );
    let text = screen_text(&mut s, 100, 40);
    assert!(text.contains("none heard of yet"), "{text}");
    let new_lines = text.matches("new on the LAN:").count();
    assert_eq!(new_lines, lobbycast::tui::MAX_LIST_CHANGES - 1, "{text}");
    // 256 new lobbies (the cap) and the cut: all but the lines shown are summed up.
    let more = 256 + 1 - new_lines;
    assert!(
        text.contains(&format!("... and {more} more change(s)")),
        "{text}"
    );
    // Asked again, the whole list is shown, at most 256 lobbies.
    type_text(&mut s, "/list");
    enter(&mut s);
    let many: Vec<Listed> = (0..256).map(|k| listed(&format!("l{k:03}"), 1)).collect();
    s.on_event(
        OwnedEvent::LobbyList {
            lobbies: many,
            cut: true,
        },
        T0 + 9 * MINUTE,
    );
    let text = screen_text(&mut s, 100, 40);
    assert!(text.contains("l255"), "{text}");
    assert!(text.contains("list cut: more lobbies"), "{text}");
}
