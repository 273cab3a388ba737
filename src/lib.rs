//! lobbycast: serverless chat for a LAN, over IP multicast with SRM-style reliability.
//!
//! [`proto`] is the sans-IO core; the runtime around it drives it with real sockets and time.

pub mod proto;

pub mod app;
pub mod command_line;
pub mod config_file;
pub mod direct_history;
pub mod display;
pub mod history;
pub mod identity;
pub mod known_peers;
pub mod lease;
pub mod lobby_keys;
pub mod net;
pub mod pipe;
pub mod relay;
pub mod tui;
