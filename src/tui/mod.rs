//! The chat screen's pure part: state, key handling and drawing, with no terminal in sight.
//!
//! [`Screen`] takes the runtime's [`OwnedEvent`](crate::app::OwnedEvent)s and the user's
//! keys, pastes and mouse events, and draws itself into a ratatui [`Frame`](ratatui::Frame).
//! What it wants done outside (send a command, quit, ring the bell, switch mouse capture) it
//! returns as [`Effect`]s. Setting up the terminal and running the event loop is the caller's
//! job ([`run`]), which keeps all of this testable against ratatui's `TestBackend`.
//!
//! # For the run loop
//!
//! - Create the screen with [`ScreenSettings`]; if [`Screen::mouse_capture`] is true, turn
//!   crossterm's mouse capture on at start.
//! - Hand every runtime event to [`Screen::on_event`] with the wall clock (unix ms), then
//!   take [`Screen::take_effects`]: events can ring the bell, and `on_event` returns nothing.
//!   After each batch of events, call [`Screen::end_of_batch`] (it closes newly shown
//!   history with its marker line).
//! - Call [`Screen::set_clock`] before [`Screen::on_key`] / [`Screen::on_paste`], so that
//!   lines made by keys (own texts before `Sent`, errors, command output) get the right time.
//! - Carry out the [`Effect`]s the input methods return: [`Effect::Quit`] means send
//!   [`Command::Quit`](crate::app::Command::Quit) and exit 0.
//! - Draw when [`Screen::dirty`] (and on resize); drawing never panics at any size.
//! - Bracketed paste must be on for [`Screen::on_paste`] to see pastes whole.
//! - `/join` only sends [`Command::Join`](crate::app::Command::Join); the screen switches to
//!   the lobby when its `Joined` event comes back. The first `Joined` (lobbies from the
//!   command line) also becomes the current lobby. Before any lobby is joined, output goes to
//!   a status pane that is shown while no lobby exists.
//!
//! Everything that came from the network passes through
//! [`terminal_safe`](crate::display::terminal_safe) before it is stored, so no escape sequence
//! can ever reach a cell of the screen.

pub mod input;
pub mod keys;
pub mod pane;
pub mod render;
pub mod run;
pub mod screen;
pub mod theme;
mod whois;
pub mod wrap;

pub use screen::{BellSettings, Effect, MAX_LIST_CHANGES, Screen, ScreenSettings};
