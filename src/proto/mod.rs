//! The sans-IO protocol core: datagrams and `now` in; transmits, timer deadlines and events out.
//! Nothing here opens a socket, reads a clock or spawns a task.

pub mod challenge;
pub mod config;
pub mod dedup;
pub mod direct;
pub mod event;
mod flood;
mod flow;
pub mod fragment;
pub mod friends;
pub mod hash;
mod held_links;
pub mod ids;
pub mod listings;
mod lobby;
pub mod node;
pub mod outbox;
mod own;
mod pace;
pub mod path;
pub mod private;
mod shared;
pub mod signing;
mod source;
pub mod stats;
pub mod store;
pub mod timers;
mod verified;
pub mod whois;
pub mod wire;

pub use config::Config;
pub use ed25519_dalek::SigningKey;
pub use event::{DirectMessage, Event, Invitation, Message};
pub use friends::{FriendError, FriendInfo};
pub use ids::{DISCOVERY_IPV4, DISCOVERY_IPV6, Lobby, LobbyId, MsgId, PeerId};
pub use listings::Listed;
pub use lobby::{MAX_REPAIRS_PER_REQUEST, SendError};
pub use node::{InviteError, NickError, Node, WhoIsError};
pub use outbox::{Dest, Transmit};
pub use path::Path;
pub use stats::Stats;
