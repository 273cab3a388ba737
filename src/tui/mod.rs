//! The chat screen's pure part: state, key handling and drawing, with no terminal in sight.
//!
//! [`Screen`] takes the runtime's [`OwnedEvent`](crate::app::OwnedEvent)s and the user's
//! keys, pastes and mouse events, and draws itself into a ratatui [`Frame`](ratatui::Frame).
//! What it wants done outside (send a command, quit, ring the bell, switch mouse capture) it
//! returns as [`Effect`]s. Setting up the terminal and running the event loop is the caller's
//! job, which keeps all of this testable against ratatui's `TestBackend`.
//!
//! Everything that came from the network passes through
//! [`terminal_safe`](crate::display::terminal_safe) before it is stored, so no escape sequence
//! can ever reach a cell of the screen.

pub mod input;
pub mod keys;
pub mod pane;
pub mod render;
pub mod screen;
pub mod theme;
pub mod wrap;

pub use screen::{BellSettings, Effect, Screen, ScreenSettings};
