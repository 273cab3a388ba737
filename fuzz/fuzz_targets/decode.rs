//! The wire decoder against arbitrary bytes: it never panics, and every packet it accepts
//! survives encode → decode unchanged, alone and packed with the others into one datagram.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lobbycast::proto::wire::{self, Decoded, Packet};

fuzz_target!(|bytes: &[u8]| {
    let mut packets: Vec<Packet> = Vec::new();
    for item in wire::decode_datagram(bytes) {
        let Ok(Decoded::Packet(p)) = item else {
            continue;
        };
        // What the decoder accepts is valid by the schema's limits...
        assert_eq!(p.validate(), Ok(()), "decoded an invalid packet: {p:?}");
        // ...and its canonical encoding decodes to exactly it, once, and encodes the same.
        let encoded = p.to_bytes();
        assert_eq!(encoded.len(), p.encoded_len());
        let again: Vec<_> = wire::decode_datagram(&encoded).collect();
        assert_eq!(
            again,
            vec![Ok(Decoded::Packet(p.clone()))],
            "round trip of {p:?} via {encoded:02x?}"
        );
        packets.push(p);
    }
    // The canonical encodings are never longer than what was accepted: a packet can only lose
    // non-shortest integers, indefinite lengths, an empty `acked` and trailing fields.
    let datagram = wire::encode_datagram(&packets);
    assert!(
        datagram.len() <= bytes.len(),
        "re-encoded {} bytes from {}",
        datagram.len(),
        bytes.len()
    );
    // Packed together they still decode to the same packets, in order.
    let again: Vec<Packet> = wire::decode_datagram(&datagram)
        .map(|item| match item {
            Ok(Decoded::Packet(p)) => p,
            other => panic!("re-encoded datagram holds {other:?}"),
        })
        .collect();
    assert_eq!(again, packets);
});
