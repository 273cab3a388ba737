//! Properties of the lobby challenge h(L, N, F) (PROTOCOL.md 7.7).
//!
//! A friend that is not in lobby L sees only the value and its own id F. To learn anything it
//! would have to test candidates: a guessed lobby L' (names are guessable) with a message id
//! N' it knows. These properties show that no such test succeeds unless both L' = L and N' = N,
//! that is, unless it is a member that saw the message; and that a value addressed to F is
//! worthless at any other friend G (the asymmetry: it cannot be passed on).

use lobbycast::proto::challenge::hash;
use lobbycast::proto::ids::{Lobby, LobbyId, MsgId, PeerId};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// A non-member that guesses the lobby right but lacks the message id, or knows a message
    /// id but guesses the lobby wrong, never reproduces the value.
    #[test]
    fn a_value_can_be_recomputed_only_with_both_the_lobby_and_the_message(
        l in any::<u64>(), n in any::<u64>(), f in any::<u64>(),
        l2 in any::<u64>(), n2 in any::<u64>(),
    ) {
        let v = hash(LobbyId(l), MsgId(n), PeerId(f));
        if n2 != n {
            prop_assert_ne!(hash(LobbyId(l), MsgId(n2), PeerId(f)), v);
        }
        if l2 != l {
            prop_assert_ne!(hash(LobbyId(l2), MsgId(n), PeerId(f)), v);
        }
    }

    /// The value for friend F matches at no other friend G, even a member of the lobby that
    /// saw the same message: a challenge cannot be answered for another.
    #[test]
    fn a_value_for_one_friend_is_worthless_at_another(
        l in any::<u64>(), n in any::<u64>(), f in any::<u64>(), g in any::<u64>(),
    ) {
        prop_assume!(f != g);
        prop_assert_ne!(hash(LobbyId(l), MsgId(n), PeerId(f)), hash(LobbyId(l), MsgId(n), PeerId(g)));
    }
}

/// With the message id unknown, values for two guessable lobby names look alike: over many
/// message ids each output bit is set about half the time for either lobby, so the value
/// says nothing about which of them it is for.
#[test]
fn values_for_two_named_lobbies_are_alike_without_the_message_id() {
    let f = PeerId(0x3b1f_0c9e_5a27_d481);
    for name in ["general", "lab"] {
        let l = Lobby::new(name).unwrap().id;
        let runs = 4096u32;
        let mut ones = [0u32; 64];
        for i in 0..runs {
            // Message ids are random 64-bit values; a fixed odd multiplier spreads the index.
            let n = MsgId(u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let v = hash(l, n, f);
            for (b, c) in ones.iter_mut().enumerate() {
                *c += u32::from(v >> b & 1 == 1);
            }
        }
        // 4096 fair coins: mean 2048, standard deviation 32; 6 deviations never happen by
        // chance over 128 bits.
        for (b, &c) in ones.iter().enumerate() {
            assert!(
                (2048 - 192..=2048 + 192).contains(&c),
                "{name}: bit {b} set {c} times in {runs}"
            );
        }
    }
}
