//! The `/command` language shared by the screen's input line and the pipe's standard input:
//! one parser, one table of commands with their usage and help, so that both agree and
//! `/help` and the man page can be checked against the code.

use std::net::SocketAddr;

use crate::lobby_keys::{JoinHow, Passphrase};

/// A line of input, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Text to send to the current lobby (`//text` sends `/text`).
    Text(String),
    /// `/me TEXT`: an action, sent as a message whose text starts with [`ACTION_PREFIX`].
    Me(String),
    /// `/join LOBBY [--private | --key PASSPHRASE]`: never [`JoinHow::Key`].
    Join {
        /// The lobby's name, as typed.
        name: String,
        /// Public, private by the stored or a new key, or private by a passphrase.
        how: JoinHow,
    },
    /// `/part [LOBBY]`: the named lobby, else the current one.
    Part(Option<String>),
    /// `/nick NAME`.
    Nick(String),
    /// `/who [LOBBY]`: the members of the named lobby, else of the current one.
    Who(Option<String>),
    /// `/trust NICK`: accept the new keys flagged for NICK (`NICK#HEX`: the one whose peer id
    /// starts with HEX).
    Trust(String),
    /// `/msg NICK TEXT`: a direct message to one peer, sealed to its key (PROTOCOL.md 4.15).
    /// NICK is one word, as `/trust` takes it (`NICK#HEX` for one of several peers using it).
    Msg {
        /// The addressee's nick, as typed.
        nick: String,
        /// The text: the rest of the line.
        text: String,
    },
    /// `/query NICK`: open the conversation with one peer (the screen's `@NICK` pane), with
    /// its recent direct messages.
    Query(String),
    /// `/invite NICK [LOBBY]`: invite one peer to the named private lobby, else the current
    /// one (PROTOCOL.md 7.11).
    Invite {
        /// The invitee's nick, as typed (`NICK#HEX` for one of several peers using it).
        nick: String,
        /// The lobby, as typed; the current one if none.
        lobby: Option<String>,
    },
    /// `/accept [LOBBY]`: join the private lobby of an invitation received: the one to the
    /// named lobby (`LOBBY#HEX`: the one from the inviter whose peer id starts with HEX), else
    /// the latest.
    Accept(Option<String>),
    /// `/decline [LOBBY]`: forget an invitation received, chosen as `/accept` chooses.
    Decline(Option<String>),
    /// `/whois NICK`: ask friends, and theirs up to three hops away, who goes by NICK
    /// (PROTOCOL.md 7.13). NICK is the rest of the line, as `/trust` takes it.
    WhoIs(String),
    /// `/list`: the listed public lobbies of the LAN and of friends, with their members
    /// (PROTOCOL.md 7.12); `/status` shows the lobbies joined.
    List,
    /// `/friend add ADDR:PORT`.
    FriendAdd(SocketAddr),
    /// `/friend del ADDR:PORT`.
    FriendDel(SocketAddr),
    /// `/friend list` (or `/friend`).
    FriendList,
    /// `/status`: transport, friends, and packets being repaired.
    Status,
    /// `/clear`: empty the current lobby's pane (the history file keeps everything).
    Clear,
    /// `/help [COMMAND]`.
    Help(Option<String>),
    /// `/quit`.
    Quit,
}

/// How an action (`/me`) travels: as ordinary text with this prefix, so that every node,
/// the pipe and the history see a plain message (PROTOCOL.md 4.4).
pub const ACTION_PREFIX: &str = "/me ";

/// One command of the language: its name, usage and what it does.
#[derive(Clone, Copy, Debug)]
pub struct CommandHelp {
    /// The name, without the slash.
    pub name: &'static str,
    /// Its arguments, as `/help` shows them.
    pub usage: &'static str,
    /// What it does, in one line.
    pub help: &'static str,
}

/// Every command, in the order `/help` lists them.
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "join",
        usage: "/join LOBBY [--private | --key PASSPHRASE]",
        help: "join a lobby and make it the current one; --private: a private lobby of a random \
               key (kept in DATA/lobby-keys), --key: a private lobby of a passphrase (the rest of \
               the line)",
    },
    CommandHelp {
        name: "part",
        usage: "/part [LOBBY]",
        help: "leave the named lobby, or the current one",
    },
    CommandHelp {
        name: "nick",
        usage: "/nick NAME",
        help: "change your nick in every lobby",
    },
    CommandHelp {
        name: "me",
        usage: "/me TEXT",
        help: "send an action (\"* nick TEXT\")",
    },
    CommandHelp {
        name: "who",
        usage: "/who [LOBBY]",
        help: "list the members of a lobby",
    },
    CommandHelp {
        name: "trust",
        usage: "/trust NICK",
        help: "accept the new key of a nick shown with (new key!)",
    },
    CommandHelp {
        name: "msg",
        usage: "/msg NICK TEXT",
        help: "send a direct message to one member, sealed to its key and acknowledged \
               (NICK#HEX picks one of several members using NICK)",
    },
    CommandHelp {
        name: "query",
        usage: "/query NICK",
        help: "open the conversation with a member: text typed there goes to it as /msg",
    },
    CommandHelp {
        name: "invite",
        usage: "/invite NICK [LOBBY]",
        help: "invite a member to a private lobby you are in (the current one if none is \
               named); the invitation is sealed to its key and acknowledged",
    },
    CommandHelp {
        name: "accept",
        usage: "/accept [LOBBY]",
        help: "join the private lobby of an invitation received (the latest if none is named; \
               LOBBY#HEX picks the inviter); its key is kept in DATA/lobby-keys",
    },
    CommandHelp {
        name: "decline",
        usage: "/decline [LOBBY]",
        help: "forget an invitation received (the latest if none is named)",
    },
    CommandHelp {
        name: "whois",
        usage: "/whois NICK",
        help: "ask friends, and theirs up to three hops away, who goes by NICK: its peer id, \
               when it was last heard, its public lobbies and, from a friend of it, its address",
    },
    CommandHelp {
        name: "list",
        usage: "/list",
        help: "list the public lobbies on the LAN and at friends, with their members \
               (/status shows the lobbies joined)",
    },
    CommandHelp {
        name: "friend",
        usage: "/friend add|del|list [ADDR:PORT]",
        help: "add, remove or list friends (unicast links where multicast does not reach)",
    },
    CommandHelp {
        name: "status",
        usage: "/status",
        help: "show the transport (multicast, friends up) and the lobbies joined, with their \
               members and packets being repaired",
    },
    CommandHelp {
        name: "clear",
        usage: "/clear",
        help: "clear the current lobby's pane (its history file keeps everything)",
    },
    CommandHelp {
        name: "help",
        usage: "/help [COMMAND]",
        help: "list the commands, or explain one",
    },
    CommandHelp {
        name: "quit",
        usage: "/quit",
        help: "leave every lobby and exit",
    },
];

/// Understands one line of input. An empty line is `Ok(None)`; an unknown command or a bad
/// argument is an error in one line, naming the problem.
pub fn parse(line: &str) -> Result<Option<Input>, String> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    if line.trim().is_empty() {
        return Ok(None);
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Some(Input::Text(line.to_owned())));
    };
    if rest.starts_with('/') {
        return Ok(Some(Input::Text(rest.to_owned())));
    }
    let (name, args) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (rest, ""),
    };
    let name = name.to_ascii_lowercase();
    let usage = |name: &str| {
        COMMANDS
            .iter()
            .find(|c| c.name == name)
            .map_or("", |c| c.usage)
    };
    let one_word = |what: &str| -> Result<String, String> {
        match args.split_whitespace().collect::<Vec<_>>().as_slice() {
            [w] => Ok((*w).to_owned()),
            [] => Err(format!("/{name}: {what} missing; usage: {}", usage(&name))),
            _ => Err(format!(
                "/{name}: one {what} expected; usage: {}",
                usage(&name)
            )),
        }
    };
    let optional_word = |what: &str| -> Result<Option<String>, String> {
        match args.split_whitespace().collect::<Vec<_>>().as_slice() {
            [] => Ok(None),
            [w] => Ok(Some((*w).to_owned())),
            _ => Err(format!(
                "/{name}: one {what} at most; usage: {}",
                usage(&name)
            )),
        }
    };
    let no_args = |input: Input| {
        if args.is_empty() {
            Ok(input)
        } else {
            Err(format!("/{name} takes no argument"))
        }
    };
    let input = match name.as_str() {
        // Not `args`: a passphrase is kept as typed, spaces at its end included.
        "join" | "j" => join(rest[name.len()..].trim_start(), usage(&name))?,
        "part" | "leave" => Input::Part(optional_word("lobby")?),
        "nick" => Input::Nick(one_word("nick")?),
        "me" => {
            if args.is_empty() {
                return Err(format!("/me: text missing; usage: {}", usage("me")));
            }
            Input::Me(args.to_owned())
        }
        "who" | "names" => Input::Who(optional_word("lobby")?),
        // The rest of the line: a nick may hold spaces.
        "trust" => {
            if args.is_empty() {
                return Err(format!("/trust: nick missing; usage: {}", usage("trust")));
            }
            Input::Trust(args.to_owned())
        }
        "msg" | "m" => {
            let Some((nick, text)) = args.split_once(char::is_whitespace) else {
                let what = if args.is_empty() {
                    "nick and text"
                } else {
                    "text"
                };
                return Err(format!("/msg: {what} missing; usage: {}", usage("msg")));
            };
            // The text as typed after the nick's separator: leading spaces may matter.
            let text = text.trim_start_matches(' ');
            Input::Msg {
                nick: nick.to_owned(),
                text: text.to_owned(),
            }
        }
        "query" | "q" => Input::Query(one_word("nick")?),
        "invite" => match args.split_whitespace().collect::<Vec<_>>().as_slice() {
            [nick] => Input::Invite {
                nick: (*nick).to_owned(),
                lobby: None,
            },
            [nick, lobby] => Input::Invite {
                nick: (*nick).to_owned(),
                lobby: Some((*lobby).to_owned()),
            },
            [] => return Err(format!("/invite: nick missing; usage: {}", usage("invite"))),
            _ => {
                return Err(format!(
                    "/invite: a nick and one lobby at most; usage: {}",
                    usage("invite")
                ));
            }
        },
        "accept" => Input::Accept(optional_word("lobby")?),
        "decline" => Input::Decline(optional_word("lobby")?),
        // The rest of the line, as for /trust: the nick asked for may hold spaces.
        "whois" => {
            if args.is_empty() {
                return Err(format!("/whois: nick missing; usage: {}", usage("whois")));
            }
            Input::WhoIs(args.to_owned())
        }
        "list" => no_args(Input::List)?,
        "friend" | "friends" => {
            let words: Vec<&str> = args.split_whitespace().collect();
            let addr = |w: &str| {
                w.parse::<SocketAddr>().map_err(|_| {
                    format!("/friend: {w:?} is not an address and port, e.g. 192.0.2.7:4747")
                })
            };
            match words.as_slice() {
                [] | ["list"] => Input::FriendList,
                ["add", a] => Input::FriendAdd(addr(a)?),
                ["del" | "delete" | "remove", a] => Input::FriendDel(addr(a)?),
                _ => return Err(format!("/friend: usage: {}", usage("friend"))),
            }
        }
        "status" => no_args(Input::Status)?,
        "clear" => no_args(Input::Clear)?,
        "help" => Input::Help(
            optional_word("command")?
                .map(|c| c.strip_prefix('/').unwrap_or(&c).to_ascii_lowercase()),
        ),
        "quit" | "exit" => Input::Quit,
        _ => {
            return Err(format!(
                "unknown command /{name}; /help lists the commands (//text sends /text)"
            ));
        }
    };
    Ok(Some(input))
}

/// `/join`'s arguments: `LOBBY`, `LOBBY --private` or `LOBBY --key PASSPHRASE`. Errors never
/// quote what follows the lobby: it may be a mistyped passphrase.
fn join(args: &str, usage: &str) -> Result<Input, String> {
    let (name, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    if name.is_empty() {
        return Err(format!("/join: lobby missing; usage: {usage}"));
    }
    let name = name.to_owned();
    let how = if rest.trim().is_empty() {
        JoinHow::Public
    } else if rest.trim() == "--private" {
        JoinHow::Private
    } else if let Some(p) = rest.trim_start().strip_prefix("--key") {
        match p.strip_prefix(' ') {
            Some("") | None if p.trim().is_empty() => {
                return Err(format!("/join: the passphrase is missing; usage: {usage}"));
            }
            Some(p) => JoinHow::Passphrase(Passphrase(p.to_owned())),
            None => return Err(format!("/join: --key PASSPHRASE expected; usage: {usage}")),
        }
    } else {
        return Err(format!(
            "/join: one lobby, then --private or --key PASSPHRASE; usage: {usage}"
        ));
    };
    Ok(Input::Join { name, how })
}

/// Whether `line` is a `/join ... --key` line, which holds a passphrase: the screen keeps it
/// out of its input history.
pub fn holds_passphrase(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('/') else {
        return false;
    };
    let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    matches!(name.to_ascii_lowercase().as_str(), "join" | "j") && args.contains("--key")
}

/// The help of one command, or `None` if there is no such command.
pub fn help(name: &str) -> Option<&'static CommandHelp> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// If `text` is an action (`/me`), what the writer does.
pub fn action(text: &str) -> Option<&str> {
    text.strip_prefix(ACTION_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitations() {
        assert_eq!(
            parse("/invite ann#3fa2").unwrap(),
            Some(Input::Invite {
                nick: "ann#3fa2".into(),
                lobby: None
            })
        );
        assert_eq!(
            parse("/invite bob Ops").unwrap(),
            Some(Input::Invite {
                nick: "bob".into(),
                lobby: Some("Ops".into())
            })
        );
        assert!(
            parse("/invite")
                .unwrap_err()
                .contains("usage: /invite NICK [LOBBY]")
        );
        assert!(
            parse("/invite a b c")
                .unwrap_err()
                .contains("one lobby at most")
        );
        assert_eq!(parse("/accept").unwrap(), Some(Input::Accept(None)));
        assert_eq!(
            parse("/ACCEPT ops#3fa2").unwrap(),
            Some(Input::Accept(Some("ops#3fa2".into())))
        );
        assert_eq!(
            parse("/decline ops").unwrap(),
            Some(Input::Decline(Some("ops".into())))
        );
        assert!(parse("/decline a b").is_err());
    }

    #[test]
    fn texts_and_escaped_slashes() {
        assert_eq!(parse("hello").unwrap(), Some(Input::Text("hello".into())));
        assert_eq!(parse("//etc").unwrap(), Some(Input::Text("/etc".into())));
        assert_eq!(parse("   ").unwrap(), None);
    }

    #[test]
    fn commands_and_their_arguments() {
        assert_eq!(
            parse("/join Ops").unwrap(),
            Some(Input::Join {
                name: "Ops".into(),
                how: JoinHow::Public
            })
        );
        assert_eq!(parse("/part").unwrap(), Some(Input::Part(None)));
        assert_eq!(parse("/me waves").unwrap(), Some(Input::Me("waves".into())));
        assert_eq!(
            parse("/friend add 192.0.2.7:4747").unwrap(),
            Some(Input::FriendAdd("192.0.2.7:4747".parse().unwrap()))
        );
        assert_eq!(parse("/FRIEND").unwrap(), Some(Input::FriendList));
        assert_eq!(
            parse("/help /nick").unwrap(),
            Some(Input::Help(Some("nick".into())))
        );
        assert_eq!(parse("/quit").unwrap(), Some(Input::Quit));
        assert_eq!(
            parse("/trust  ann smith ").unwrap(),
            Some(Input::Trust("ann smith".into()))
        );
        assert_eq!(
            parse("/msg ann#3fa2 hello  there ").unwrap(),
            Some(Input::Msg {
                nick: "ann#3fa2".into(),
                text: "hello  there".into()
            })
        );
        assert_eq!(
            parse("/MSG  bob  /not a command").unwrap(),
            Some(Input::Msg {
                nick: "bob".into(),
                text: "/not a command".into()
            })
        );
        assert_eq!(
            parse("/query ann").unwrap(),
            Some(Input::Query("ann".into()))
        );
    }

    #[test]
    fn bad_input_is_a_one_line_error() {
        for bad in [
            "/frobnicate",
            "/join",
            "/join a b",
            "/join a --key",
            "/join a --key ",
            "/join a --keys x",
            "/join a --private x",
            "/nick",
            "/friend add nowhere",
            "/friend wave",
            "/me",
            "/clear now",
            "/trust",
            "/trust   ",
            "/msg",
            "/msg ann",
            "/msg ann   ",
            "/query",
            "/query ann bob",
            "/whois",
            "/whois   ",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains('\n') && !e.is_empty(), "{bad}: {e}");
        }
    }

    #[test]
    fn whois_takes_the_rest_of_the_line_as_the_nick() {
        assert_eq!(
            parse("/whois ann").unwrap(),
            Some(Input::WhoIs("ann".into()))
        );
        assert_eq!(
            parse("/WHOIS  ann smith ").unwrap(),
            Some(Input::WhoIs("ann smith".into()))
        );
        assert_eq!(
            parse("/whois").unwrap_err(),
            "/whois: nick missing; usage: /whois NICK"
        );
    }

    #[test]
    fn private_joins_keep_the_passphrase_as_typed_and_out_of_errors() {
        let join = |name: &str, how| {
            Some(Input::Join {
                name: name.into(),
                how,
            })
        };
        assert_eq!(
            parse("/join team --private").unwrap(),
            join("team", JoinHow::Private)
        );
        assert_eq!(
            parse("/j  team   --private  ").unwrap(),
            join("team", JoinHow::Private)
        );
        assert_eq!(
            parse("/join team --key correct horse  \n").unwrap(),
            join(
                "team",
                JoinHow::Passphrase(Passphrase("correct horse  ".into()))
            )
        );
        assert_eq!(
            parse("/JOIN Team --key  --private").unwrap(),
            join("Team", JoinHow::Passphrase(Passphrase(" --private".into())))
        );
        let e = parse("/join team --kye hunter2").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(holds_passphrase("/join team --key x"));
        assert!(holds_passphrase("/J team --key"));
        assert!(!holds_passphrase("/join team --private"));
        assert!(!holds_passphrase("--key"));
    }

    #[test]
    fn every_command_parses_from_its_usage_name_and_has_help() {
        for c in COMMANDS {
            assert!(c.usage.starts_with(&format!("/{}", c.name)));
            assert!(help(c.name).is_some());
        }
    }
}
