//! Which peer a nick typed in `/msg`, `/query` or `/invite` names, among the members of the
//! lobbies joined and the friends: nicks are matched exactly, as `/trust` matches them, and
//! `NICK#HEX` picks the member using NICK whose peer id starts with HEX (the suffix the screen
//! shows when two members share a nick).

use crate::display::{fingerprint, fingerprint_digits};
use crate::proto::PeerId;

/// Why a nick names no single member.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No member uses the nick (or none with that id prefix).
    #[error("no member of the lobbies joined, nor friend, is called {0:?}")]
    Unknown(String),
    /// The member was heard, but not its key (PROTOCOL.md 4.15): nothing can be sealed to it
    /// until it is seen in a lobby shared with this node.
    #[error(
        "the key of {0} is not known yet; it is learnt when the member is heard in a shared lobby"
    )]
    KeyUnknown(String),
    /// Several members use it.
    #[error("{nick:?} is used by {} members ({}); add the suffix, e.g. /msg {}", choices.len(), choices.join(", "), choices[0])]
    Ambiguous {
        /// The nick.
        nick: String,
        /// `NICK#HEX` for each member using it, which tells them apart.
        choices: Vec<String>,
    },
}

/// The member `what` names among `members`, as [`resolve_nick`], if `knows_key` says a direct
/// message can be sealed to it.
pub fn direct_addressee(
    what: &str,
    members: &[(PeerId, String)],
    knows_key: impl Fn(PeerId) -> bool,
) -> Result<(PeerId, String), ResolveError> {
    let (peer, nick) = resolve_nick(what, members)?;
    if knows_key(peer) {
        Ok((peer, nick))
    } else {
        Err(ResolveError::KeyUnknown(what.to_owned()))
    }
}

/// The member `what` names among `members` (of every lobby joined; a peer may be listed once
/// per lobby), with its nick.
pub fn resolve_nick(
    what: &str,
    members: &[(PeerId, String)],
) -> Result<(PeerId, String), ResolveError> {
    let mut exact: Vec<PeerId> = members
        .iter()
        .filter(|(_, n)| n == what)
        .map(|(p, _)| *p)
        .collect();
    exact.sort_unstable();
    exact.dedup();
    match exact.as_slice() {
        [one] => return Ok((*one, what.to_owned())),
        [] => {}
        many => {
            let digits = fingerprint_digits(many);
            return Err(ResolveError::Ambiguous {
                nick: what.to_owned(),
                choices: many
                    .iter()
                    .map(|p| format!("{what}#{}", fingerprint(*p, digits)))
                    .collect(),
            });
        }
    }
    let unknown = || ResolveError::Unknown(what.to_owned());
    let (nick, digits) = what.rsplit_once('#').ok_or_else(unknown)?;
    if !(4..=16).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown());
    }
    let digits = digits.to_ascii_lowercase();
    let mut found: Vec<PeerId> = members
        .iter()
        .filter(|(p, n)| n == nick && p.to_string().starts_with(&digits))
        .map(|(p, _)| *p)
        .collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [one] => Ok((*one, nick.to_owned())),
        [] => Err(unknown()),
        many => {
            let digits = fingerprint_digits(many);
            Err(ResolveError::Ambiguous {
                nick: what.to_owned(),
                choices: many
                    .iter()
                    .map(|p| format!("{nick}#{}", fingerprint(*p, digits)))
                    .collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANN1: PeerId = PeerId(0x3fa2_c1d0_9e8b_7a65);
    const ANN2: PeerId = PeerId(0x9b01_e4f2_a3c4_d5e6);
    const BOB: PeerId = PeerId(0x1234_5678_9abc_def0);

    fn members() -> Vec<(PeerId, String)> {
        vec![
            (ANN1, "ann".into()),
            (BOB, "bob".into()),
            // Bob again, from a second lobby: still one member.
            (BOB, "bob".into()),
            (ANN2, "ann".into()),
        ]
    }

    #[test]
    fn a_unique_nick_names_its_member() {
        assert_eq!(
            resolve_nick("bob", &members()).unwrap(),
            (BOB, "bob".into())
        );
        // Exact, as /trust: nicks are not case-folded.
        assert_eq!(
            resolve_nick("Bob", &members()).unwrap_err(),
            ResolveError::Unknown("Bob".into())
        );
    }

    #[test]
    fn a_shared_nick_needs_its_suffix() {
        let e = resolve_nick("ann", &members()).unwrap_err();
        assert_eq!(
            e,
            ResolveError::Ambiguous {
                nick: "ann".into(),
                choices: vec!["ann#3fa2".into(), "ann#9b01".into()]
            }
        );
        let said = e.to_string();
        assert!(said.contains("ann#3fa2") && !said.contains('\n'), "{said}");
        assert_eq!(
            resolve_nick("ann#3fa2", &members()).unwrap(),
            (ANN1, "ann".into())
        );
        assert_eq!(
            resolve_nick("ann#9B01E4", &members()).unwrap(),
            (ANN2, "ann".into())
        );
    }

    #[test]
    fn unknown_nicks_and_suffixes_are_errors() {
        for what in [
            "carol", "ann#ffff", "ann#3fa", "ann#zzzz", "bob#9b01", "#3fa2", "",
        ] {
            assert!(
                matches!(
                    resolve_nick(what, &members()),
                    Err(ResolveError::Unknown(_))
                ),
                "{what}"
            );
        }
    }

    #[test]
    fn a_member_whose_key_is_unknown_cannot_be_written_to() {
        assert_eq!(
            direct_addressee("bob", &members(), |_| false).unwrap_err(),
            ResolveError::KeyUnknown("bob".into())
        );
        assert_eq!(
            direct_addressee("bob", &members(), |p| p == BOB).unwrap(),
            (BOB, "bob".into())
        );
        assert!(matches!(
            direct_addressee("carol", &members(), |_| true),
            Err(ResolveError::Unknown(_))
        ));
    }

    #[test]
    fn a_nick_with_a_hash_of_its_own_is_found_as_it_is() {
        let m = vec![(BOB, "dev#beef".to_owned())];
        assert_eq!(
            resolve_nick("dev#beef", &m).unwrap(),
            (BOB, "dev#beef".into())
        );
    }
}
