//! The wire decoder against arbitrary bytes: it never panics, and every packet it accepts
//! (lobby and friend-link packets alike) survives encode → decode unchanged, alone and packed
//! with the others into one datagram; a direct message's content decoder is fed its sealed
//! bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lobbycast::proto::wire::{self, Content, Decoded};

/// The canonical encoding of an accepted item.
fn encode(d: &Decoded) -> Option<Vec<u8>> {
    match d {
        Decoded::Packet(p) => {
            // What the decoder accepts is valid by the schema's limits.
            assert_eq!(p.validate(), Ok(()), "decoded an invalid packet: {p:?}");
            let encoded = p.to_bytes();
            assert_eq!(encoded.len(), p.encoded_len());
            Some(encoded)
        }
        Decoded::Link(l) => {
            assert_eq!(l.validate(), Ok(()), "decoded an invalid packet: {l:?}");
            Some(l.to_bytes())
        }
        Decoded::Bundle(b) => {
            assert_eq!(b.validate(), Ok(()), "decoded an invalid bundle: {b:?}");
            Some(b.to_bytes())
        }
        Decoded::Envelope(e) => {
            assert_eq!(e.validate(), Ok(()), "decoded an invalid envelope: {e:?}");
            Some(e.to_bytes())
        }
        Decoded::Direct(d) => {
            assert_eq!(d.validate(), Ok(()), "decoded an invalid direct message: {d:?}");
            // The sealed bytes stand in for opened content: its decoder never panics either,
            // and what it accepts survives encode → decode.
            if let Ok(c) = Content::decode(&d.sealed)
                && !matches!(c, Content::Unknown(_))
            {
                assert_eq!(Content::decode(&c.to_bytes()), Ok(c.clone()), "{c:?}");
            }
            Some(d.to_bytes())
        }
        Decoded::List(l) => {
            assert_eq!(l.validate(), Ok(()), "decoded an invalid lobby list: {l:?}");
            Some(l.to_bytes())
        }
        Decoded::WhoIs(w) => {
            assert_eq!(w.validate(), Ok(()), "decoded an invalid who-is: {w:?}");
            Some(w.to_bytes())
        }
        Decoded::UnknownVersion(_) | Decoded::UnsupportedKind(_) => None,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let mut accepted: Vec<Decoded> = Vec::new();
    let mut datagram = Vec::new();
    for item in wire::decode_datagram(bytes) {
        let Ok(d) = item else {
            continue;
        };
        let Some(encoded) = encode(&d) else {
            continue;
        };
        // Its canonical encoding decodes to exactly it, once.
        let again: Vec<_> = wire::decode_datagram(&encoded).collect();
        assert_eq!(
            again,
            vec![Ok(d.clone())],
            "round trip of {d:?} via {encoded:02x?}"
        );
        datagram.extend_from_slice(&encoded);
        accepted.push(d);
    }
    // The canonical encodings are never longer than what was accepted: a packet can only lose
    // non-shortest integers, indefinite lengths, empty or zero trailing session fields and
    // trailing fields of later revisions.
    assert!(
        datagram.len() <= bytes.len(),
        "re-encoded {} bytes from {}",
        datagram.len(),
        bytes.len()
    );
    // Packed together they still decode to the same packets, in order.
    let again: Vec<Decoded> = wire::decode_datagram(&datagram)
        .map(|item| item.unwrap_or_else(|e| panic!("re-encoded datagram fails: {e}")))
        .collect();
    assert_eq!(again, accepted);
});
