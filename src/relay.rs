//! The relay's frontend (`--relay`): no screen and no input. It joins its lobbies, bridges its
//! multicast segment and its friends, serves repairs from its history, and says what happens
//! through `tracing` on standard error: friends and members at `info`, each message at `debug`,
//! losses at `warn`, and its counters at exit, on SIGUSR1 and every report interval. Nicks
//! come from the network: they are logged quoted and escaped (`?`, or a plain `&str` field),
//! never with `%`, so no control character reaches the log.

use std::io;

use crate::app::{AppEvent, Frontend};

/// Logs the runtime's events; see the module documentation.
#[derive(Debug, Default)]
pub struct RelayFrontend;

impl Frontend for RelayFrontend {
    fn event(&mut self, ev: AppEvent<'_>) {
        match ev {
            AppEvent::Joined {
                lobby,
                peer,
                groups,
                local,
                private,
            } => {
                tracing::info!(lobby = %lobby.name, id = %lobby.id, private, %peer, ?groups,
                    ?local, "relaying");
            }
            AppEvent::History { .. }
            | AppEvent::Sent { .. }
            | AppEvent::Members { .. }
            | AppEvent::Trusted { .. }
            | AppEvent::Friends { .. }
            | AppEvent::Conversation { .. }
            | AppEvent::Direct { .. }
            | AppEvent::DirectSent { .. }
            | AppEvent::DirectAcked { .. }
            | AppEvent::DirectFailed { .. }
            | AppEvent::InvitationSent { .. }
            | AppEvent::InvitationAcked { .. }
            | AppEvent::InvitationFailed { .. }
            | AppEvent::Declined { .. }
            | AppEvent::Status(_)
            | AppEvent::LobbyList { .. } => {}
            // A relay takes no commands: it rejoins a lobby it was re-invited to, and a new
            // lobby is joined with --private or --key.
            AppEvent::Invitation {
                from,
                nick,
                lobby,
                joined,
                ..
            } => tracing::info!(%from, nick, lobby = %lobby.name, joined, "invitation received"),
            // The relay has no input, so it never asks who-is.
            AppEvent::WhoIsAsked { .. } | AppEvent::WhoIs { .. } | AppEvent::WhoIsDone { .. } => {}
            AppEvent::Parted { lobby } => tracing::info!(lobby = %lobby.name, "left"),
            AppEvent::CommandFailed { error } => tracing::warn!(error, "command failed"),
            AppEvent::OwnNick { nick } => tracing::info!(nick, "nick changed"),
            AppEvent::Message {
                lobby,
                msg,
                key_changed,
            } => {
                tracing::debug!(lobby = %lobby.name, nick = ?msg.nick, source = %msg.source,
                    seq = msg.seq, bytes = msg.text.len(), key_changed, "message");
            }
            AppEvent::SendFailed { lobby, error } => {
                tracing::warn!(lobby = %lobby.name, error, "send failed");
            }
            AppEvent::PeerJoined {
                lobby,
                peer,
                nick,
                key_changed,
            } => {
                tracing::info!(lobby = %lobby.name, %peer, nick, key_changed, "member joined");
            }
            AppEvent::NickChanged {
                lobby,
                peer,
                nick,
                key_changed,
            } => {
                tracing::info!(lobby = %lobby.name, %peer, nick, key_changed, "nick changed");
            }
            AppEvent::PeerLeft { lobby, peer } => {
                tracing::info!(lobby = %lobby.name, %peer, "member left");
            }
            // The runtime warns of losses and the core logs friend links already.
            AppEvent::Lost { .. }
            | AppEvent::FriendUp { .. }
            | AppEvent::FriendDown { .. }
            | AppEvent::FriendInLobby { .. } => {}
            AppEvent::Stats(s) => {
                tracing::info!(
                    delivered = s.delivered,
                    forwarded = s.forwarded,
                    recovered = s.recovered,
                    lost = s.lost,
                    requests_sent = s.requests_sent,
                    repairs_sent = s.repairs_sent,
                    datagrams_in = s.datagrams_in,
                    datagrams_out = s.datagrams_out,
                    bytes_in = s.bytes_in,
                    bytes_out = s.bytes_out,
                    forward_throttled = s.forward_throttled,
                    unicast_refused = s.unicast_refused,
                    "counters"
                );
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
