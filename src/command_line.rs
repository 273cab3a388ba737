//! The `/command` language shared by the screen's input line and the pipe's standard input:
//! one parser, one table of commands with their usage and help, so that both agree and
//! `/help` and the man page can be checked against the code.

use std::net::SocketAddr;

/// A line of input, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Text to send to the current lobby (`//text` sends `/text`).
    Text(String),
    /// `/me TEXT`: an action, sent as a message whose text starts with [`ACTION_PREFIX`].
    Me(String),
    /// `/join LOBBY`.
    Join(String),
    /// `/part [LOBBY]`: the named lobby, else the current one.
    Part(Option<String>),
    /// `/nick NAME`.
    Nick(String),
    /// `/who [LOBBY]`: the members of the named lobby, else of the current one.
    Who(Option<String>),
    /// `/trust NICK`: accept the new keys flagged for NICK (`NICK#HEX`: the one whose peer id
    /// starts with HEX).
    Trust(String),
    /// `/list`: the lobbies joined, with their members and unread counts.
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
        usage: "/join LOBBY",
        help: "join a lobby and make it the current one",
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
        name: "list",
        usage: "/list",
        help: "list the lobbies joined",
    },
    CommandHelp {
        name: "friend",
        usage: "/friend add|del|list [ADDR:PORT]",
        help: "add, remove or list friends (unicast links where multicast does not reach)",
    },
    CommandHelp {
        name: "status",
        usage: "/status",
        help: "show the transport: multicast, friends up, packets being repaired",
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
        "join" | "j" => Input::Join(one_word("lobby")?),
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
    fn texts_and_escaped_slashes() {
        assert_eq!(parse("hello").unwrap(), Some(Input::Text("hello".into())));
        assert_eq!(parse("//etc").unwrap(), Some(Input::Text("/etc".into())));
        assert_eq!(parse("   ").unwrap(), None);
    }

    #[test]
    fn commands_and_their_arguments() {
        assert_eq!(parse("/join Ops").unwrap(), Some(Input::Join("Ops".into())));
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
    }

    #[test]
    fn bad_input_is_a_one_line_error() {
        for bad in [
            "/frobnicate",
            "/join",
            "/join a b",
            "/nick",
            "/friend add nowhere",
            "/friend wave",
            "/me",
            "/clear now",
            "/trust",
            "/trust   ",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains('\n') && !e.is_empty(), "{bad}: {e}");
        }
    }

    #[test]
    fn every_command_parses_from_its_usage_name_and_has_help() {
        for c in COMMANDS {
            assert!(c.usage.starts_with(&format!("/{}", c.name)));
            assert!(help(c.name).is_some());
        }
    }
}
