//! The strict decoder: reads CBOR headers one by one (ciborium-ll) and accepts exactly the
//! shapes of proto/lobbycast.cddl.
//!
//! serde's derived visitors were too lenient for untrusted input: they stop reading an inner
//! array after the fields they expect (so its leftover elements surface as a hidden packet
//! after it), accept a byte string where an array belongs, ignore tags and read `undefined`
//! as `null`. Here every item is read against the schema, nothing is skipped silently except
//! the trailing fields the protocol allows at the end of a packet, and nesting is bounded.

use ciborium_ll::{Decoder, Header};

use super::{
    Acked, Auth, Body, Bundle, Challenge, Content, Data, DecodeError, Decoded, Direct, Echo,
    Envelope, Heard, Heartbeat, Hello, HelloEcho, Link, ListPacket, LobbyList, Packet, Request,
    Sent, SeqRange, Session, VERSION, WhoIs, WhoIsAnswer, WhoIsPeer, WhoIsQuery, kind,
};
use crate::proto::ids::{LobbyId, MsgId, PeerId};

/// Deepest nesting of a skipped item (a whole packet of an unknown version or kind).
const MAX_DEPTH: usize = 16;
/// CBOR simple value `null`.
const NULL: u8 = 22;
/// CBOR simple value `false`.
const FALSE: u8 = 20;
/// CBOR simple value `true`.
const TRUE: u8 = 21;

type Result<T> = std::result::Result<T, DecodeError>;

fn malformed(what: &str) -> DecodeError {
    DecodeError::Malformed(what.to_owned())
}

/// Reads the packets of one datagram.
pub(super) struct Reader<'a> {
    dec: Decoder<&'a [u8]>,
    len: usize,
}

/// An array being read: how many elements are left, or `None` until a break if indefinite.
struct Array {
    left: Option<usize>,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader {
            dec: Decoder::from(bytes),
            len: bytes.len(),
        }
    }

    /// True when every byte has been read.
    pub fn at_end(&mut self) -> bool {
        self.dec.offset() >= self.len
    }

    fn pull(&mut self) -> Result<Header> {
        match self.dec.pull() {
            Ok(Header::Tag(_)) => Err(malformed("tags are not allowed")),
            Ok(h) => Ok(h),
            Err(_) => Err(malformed("truncated or invalid CBOR")),
        }
    }

    fn uint(&mut self, what: &str) -> Result<u64> {
        match self.pull()? {
            Header::Positive(n) => Ok(n),
            _ => Err(DecodeError::Malformed(format!(
                "{what}: expected an unsigned integer"
            ))),
        }
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        u16::try_from(self.uint(what)?)
            .map_err(|_| DecodeError::Malformed(format!("{what}: larger than 65535")))
    }

    fn peer(&mut self, what: &str) -> Result<PeerId> {
        self.uint(what).map(PeerId)
    }

    fn opt_peer(&mut self, what: &str) -> Result<Option<PeerId>> {
        match self.pull()? {
            Header::Simple(NULL) => Ok(None),
            Header::Positive(n) => Ok(Some(PeerId(n))),
            _ => Err(DecodeError::Malformed(format!(
                "{what}: expected a peer id or null"
            ))),
        }
    }

    fn bool(&mut self, what: &str) -> Result<bool> {
        match self.pull()? {
            Header::Simple(FALSE) => Ok(false),
            Header::Simple(TRUE) => Ok(true),
            _ => Err(DecodeError::Malformed(format!(
                "{what}: expected a boolean"
            ))),
        }
    }

    fn array(&mut self, what: &str) -> Result<Array> {
        match self.pull()? {
            Header::Array(left) => Ok(Array { left }),
            _ => Err(DecodeError::Malformed(format!("{what}: expected an array"))),
        }
    }

    /// True if `a` has another element (consumes the break of an indefinite array).
    fn more(&mut self, a: &mut Array) -> Result<bool> {
        match &mut a.left {
            Some(0) => Ok(false),
            Some(n) => {
                *n -= 1;
                Ok(true)
            }
            None => match self.pull()? {
                Header::Break => {
                    a.left = Some(0);
                    Ok(false)
                }
                h => {
                    self.dec.push(h);
                    Ok(true)
                }
            },
        }
    }

    /// Requires another element of `a`.
    fn expect(&mut self, a: &mut Array, what: &str) -> Result<()> {
        if self.more(a)? {
            Ok(())
        } else {
            Err(DecodeError::Malformed(format!(
                "array too short: no {what}"
            )))
        }
    }

    /// Requires `a` to be finished.
    fn end(&mut self, a: &mut Array, what: &str) -> Result<()> {
        if self.more(a)? {
            Err(DecodeError::Malformed(format!("{what}: too many elements")))
        } else {
            Ok(())
        }
    }

    /// Skips whatever elements of `a` are left.
    fn skip_rest(&mut self, a: &mut Array) -> Result<()> {
        while self.more(a)? {
            self.skip(0)?;
        }
        Ok(())
    }

    /// Skips one well-formed item of any type, nested at most [`MAX_DEPTH`] deep.
    fn skip(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(malformed("nested too deeply"));
        }
        match self.pull()? {
            Header::Array(left) => {
                let mut a = Array { left };
                while self.more(&mut a)? {
                    self.skip(depth + 1)?;
                }
            }
            Header::Map(left) => {
                let mut a = Array {
                    left: left.map(|n| n.saturating_mul(2)),
                };
                while self.more(&mut a)? {
                    self.skip(depth + 1)?;
                }
            }
            Header::Bytes(len) => {
                self.read_bytes(len, usize::MAX)?;
            }
            Header::Text(len) => {
                self.read_text(len, usize::MAX)?;
            }
            Header::Break => return Err(malformed("unexpected break")),
            Header::Positive(_) | Header::Negative(_) | Header::Float(_) | Header::Simple(_) => {}
            Header::Tag(_) => unreachable!("pull refuses tags"),
        }
        Ok(())
    }

    fn read_bytes(&mut self, len: Option<usize>, max: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        let mut segs = self.dec.bytes(len);
        while let Some(mut seg) = segs.pull().map_err(|_| malformed("bad byte string"))? {
            while let Some(chunk) = seg
                .pull(&mut buf)
                .map_err(|_| malformed("bad byte string"))?
            {
                if out.len() + chunk.len() > max {
                    return Err(malformed("byte string too long"));
                }
                out.extend_from_slice(chunk);
            }
        }
        Ok(out)
    }

    fn read_text(&mut self, len: Option<usize>, max: usize) -> Result<String> {
        let mut out = String::new();
        let mut buf = [0u8; 1024];
        let mut segs = self.dec.text(len);
        while let Some(mut seg) = segs.pull().map_err(|_| malformed("bad text string"))? {
            while let Some(chunk) = seg
                .pull(&mut buf)
                .map_err(|_| malformed("text is not UTF-8"))?
            {
                if out.len() + chunk.len() > max {
                    return Err(malformed("text string too long"));
                }
                out.push_str(chunk);
            }
        }
        Ok(out)
    }

    fn text(&mut self, what: &str) -> Result<String> {
        match self.pull()? {
            // No text in a valid packet comes near a datagram's size; the limit is checked
            // precisely by `validate` once the packet is read.
            Header::Text(len) => self.read_text(len, super::MAX_DATAGRAM),
            _ => Err(DecodeError::Malformed(format!("{what}: expected text"))),
        }
    }

    fn bytes(&mut self, what: &str) -> Result<Vec<u8>> {
        match self.pull()? {
            Header::Bytes(len) => self.read_bytes(len, super::MAX_DATAGRAM),
            _ => Err(DecodeError::Malformed(format!(
                "{what}: expected a byte string"
            ))),
        }
    }

    /// A byte string of exactly `N` bytes (a key, a signature, a hash, a nonce); another
    /// length is invalid for the reason `why`.
    fn fixed<const N: usize>(&mut self, what: &str, why: &'static str) -> Result<[u8; N]> {
        self.bytes(what)?
            .try_into()
            .map_err(|_| DecodeError::Invalid(why))
    }

    /// A fixed-size inner array of unsigned integers, like `[first, last]`.
    fn uints<const N: usize>(&mut self, what: &str) -> Result<[u64; N]> {
        let mut a = self.array(what)?;
        let mut out = [0u64; N];
        for v in &mut out {
            self.expect(&mut a, what)?;
            *v = self.uint(what)?;
        }
        self.end(&mut a, what)?;
        Ok(out)
    }

    /// A list whose items are read by `item`; never allocates ahead of what arrives.
    fn list<T>(
        &mut self,
        what: &str,
        mut item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut a = self.array(what)?;
        let mut out = Vec::new();
        while self.more(&mut a)? {
            if out.len() > super::MAX_DATAGRAM {
                return Err(DecodeError::Malformed(format!("{what}: too many elements")));
            }
            out.push(item(self)?);
        }
        Ok(out)
    }

    /// Reads one packet.
    pub fn packet(&mut self) -> Result<Decoded> {
        let mut a = self.array("packet")?;
        self.expect(&mut a, "version")?;
        let version = self.uint("version")?;
        if version != VERSION {
            self.skip_rest(&mut a)?;
            return Ok(Decoded::UnknownVersion(version));
        }
        self.expect(&mut a, "kind")?;
        let kind = self.uint("kind")?;
        let link = match kind {
            kind::DATA | kind::SESSION | kind::REQUEST | kind::REPAIR | kind::HEARTBEAT => None,
            kind::HELLO => Some(Link::Hello(self.hello(&mut a)?)),
            kind::CHALLENGE => Some(Link::Challenge(self.challenge(&mut a)?)),
            kind::ENVELOPE => {
                let e = self.envelope(&mut a)?;
                self.skip_rest(&mut a)?;
                return Ok(Decoded::Envelope(e));
            }
            kind::DIRECT => {
                let d = self.direct(&mut a)?;
                self.skip_rest(&mut a)?;
                return Ok(Decoded::Direct(d));
            }
            kind::WHOIS_QUERY | kind::WHOIS_ANSWER => {
                let w = self.whois(&mut a, kind == kind::WHOIS_ANSWER)?;
                self.skip_rest(&mut a)?;
                return Ok(Decoded::WhoIs(w));
            }
            kind::LOBBY_LIST_REQUEST | kind::LOBBY_LIST => {
                let l = self.list_packet(&mut a, kind == kind::LOBBY_LIST)?;
                self.skip_rest(&mut a)?;
                return Ok(Decoded::List(l));
            }
            kind::BUNDLE | kind::LINK => {
                let b = self.bundle(&mut a, kind == kind::LINK)?;
                self.skip_rest(&mut a)?;
                return Ok(Decoded::Bundle(b));
            }
            _ => {
                self.skip_rest(&mut a)?;
                return Ok(Decoded::UnsupportedKind(kind));
            }
        };
        if let Some(link) = link {
            self.skip_rest(&mut a)?;
            return Ok(Decoded::Link(link));
        }
        self.expect(&mut a, "lobby")?;
        let lobby = LobbyId(self.uint("lobby")?);
        let body = match kind {
            kind::DATA => Body::Data(self.data(&mut a)?),
            kind::REPAIR => {
                self.expect(&mut a, "repairer")?;
                let repairer = self.peer("repairer")?;
                Body::Repair {
                    repairer,
                    data: self.data(&mut a)?,
                }
            }
            kind::SESSION => Body::Session(self.session(&mut a)?),
            kind::HEARTBEAT => Body::Heartbeat(self.heartbeat(&mut a)?),
            _ => Body::Request(self.request(&mut a)?),
        };
        // Fields a later revision of version 1 may append are skipped.
        self.skip_rest(&mut a)?;
        Ok(Decoded::Packet(Packet { lobby, body }))
    }

    fn data(&mut self, a: &mut Array) -> Result<Data> {
        self.expect(a, "source")?;
        let source = self.peer("source")?;
        self.expect(a, "seq")?;
        let seq = self.uint("seq")?;
        self.expect(a, "msg_id")?;
        let msg_id = MsgId(self.uint("msg_id")?);
        self.expect(a, "sent_at")?;
        let sent_at = self.uint("sent_at")?;
        self.expect(a, "nick")?;
        let nick = self.text("nick")?;
        self.expect(a, "frag_index")?;
        let frag_index = self.u16("frag_index")?;
        self.expect(a, "frag_count")?;
        let frag_count = self.u16("frag_count")?;
        self.expect(a, "body")?;
        let body = self.bytes("body")?;
        Ok(Data {
            source,
            seq,
            msg_id,
            sent_at,
            nick,
            frag_index,
            frag_count,
            body,
        })
    }

    fn session(&mut self, a: &mut Array) -> Result<Session> {
        self.expect(a, "sender")?;
        let sender = self.peer("sender")?;
        self.expect(a, "nick")?;
        let nick = self.text("nick")?;
        self.expect(a, "timestamp")?;
        let timestamp = self.uint("timestamp")?;
        self.expect(a, "sent")?;
        let [low, next] = self.uints::<2>("sent")?;
        self.expect(a, "heard")?;
        let heard = self.list("heard", |r| {
            let [p, h] = r.uints::<2>("heard entry")?;
            Ok(Heard(PeerId(p), h))
        })?;
        self.expect(a, "echoes")?;
        let echoes = self.list("echoes", |r| {
            let [peer, timestamp, delay] = r.uints::<3>("echo")?;
            Ok(Echo {
                peer: PeerId(peer),
                timestamp,
                delay,
            })
        })?;
        // Revision 1.1 appends `acked`, 1.2 `flags` and `mheard`; older sessions end earlier.
        let acked = if self.more(a)? {
            self.list("acked", |r| {
                let [p, n] = r.uints::<2>("acked entry")?;
                Ok(Acked(PeerId(p), n))
            })?
        } else {
            Vec::new()
        };
        let flags = if self.more(a)? {
            self.uint("flags")?
        } else {
            0
        };
        let mheard = if self.more(a)? {
            self.uint("mheard")?
        } else {
            0
        };
        Ok(Session {
            acked,
            flags,
            mheard,
            sender,
            nick,
            timestamp,
            sent: Sent { low, next },
            heard,
            echoes,
        })
    }

    fn heartbeat(&mut self, a: &mut Array) -> Result<Heartbeat> {
        self.expect(a, "sender")?;
        let sender = self.peer("sender")?;
        self.expect(a, "nick")?;
        let nick = self.text("nick")?;
        self.expect(a, "beat")?;
        let beat = MsgId(self.uint("beat")?);
        self.expect(a, "sent_at")?;
        let sent_at = self.uint("sent_at")?;
        self.expect(a, "leaving")?;
        let leaving = self.bool("leaving")?;
        Ok(Heartbeat {
            sender,
            nick,
            beat,
            sent_at,
            leaving,
        })
    }

    fn hello(&mut self, a: &mut Array) -> Result<Hello> {
        self.expect(a, "sender")?;
        let sender = self.peer("sender")?;
        self.expect(a, "nick")?;
        let nick = self.text("nick")?;
        self.expect(a, "timestamp")?;
        let timestamp = self.uint("timestamp")?;
        self.expect(a, "echo")?;
        let echo = match self.pull()? {
            Header::Simple(NULL) => None,
            h @ Header::Array(_) => {
                self.dec.push(h);
                let [timestamp, delay] = self.uints::<2>("echo")?;
                Some(HelloEcho { timestamp, delay })
            }
            _ => return Err(malformed("echo: expected an array or null")),
        };
        self.expect(a, "lobbies")?;
        let lobbies = self.list("lobbies", |r| r.uint("lobby").map(LobbyId))?;
        Ok(Hello {
            sender,
            nick,
            timestamp,
            echo,
            lobbies,
        })
    }

    fn bundle(&mut self, a: &mut Array, link: bool) -> Result<Bundle> {
        self.expect(a, "lobby")?;
        let lobby = LobbyId(self.uint("lobby")?);
        self.expect(a, "source")?;
        let source = self.peer("source")?;
        if link {
            self.expect(a, "packets")?;
            let packets = self.bytes("packets")?;
            let repairer = if self.more(a)? {
                Some(self.peer("repairer")?)
            } else {
                None
            };
            return Ok(Bundle {
                lobby,
                source,
                auth: Auth::Linked,
                packets,
                repairer,
            });
        }
        self.expect(a, "key")?;
        let key = self.fixed("key", "bundle key length")?;
        self.expect(a, "signature")?;
        let signature = self.fixed("signature", "bundle signature length")?;
        self.expect(a, "packets")?;
        let packets = self.bytes("packets")?;
        let repairer = if self.more(a)? {
            self.opt_peer("repairer")?
        } else {
            None
        };
        let chain = if self.more(a)? {
            let chain = self.list("chain", |r| r.fixed("link hash", "link hash length"))?;
            if chain.is_empty() {
                return Err(DecodeError::Invalid("chain length"));
            }
            chain
        } else {
            Vec::new()
        };
        Ok(Bundle {
            lobby,
            source,
            auth: Auth::Signed {
                key,
                signature,
                chain,
            },
            packets,
            repairer,
        })
    }

    fn envelope(&mut self, a: &mut Array) -> Result<Envelope> {
        self.expect(a, "lobby")?;
        let lobby = LobbyId(self.uint("lobby")?);
        self.expect(a, "nonce")?;
        let nonce = self.fixed("nonce", "envelope nonce length")?;
        self.expect(a, "sealed")?;
        let sealed = self.bytes("sealed")?;
        Ok(Envelope {
            lobby,
            nonce,
            sealed,
        })
    }

    fn direct(&mut self, a: &mut Array) -> Result<Direct> {
        self.expect(a, "sender")?;
        let sender = self.peer("sender")?;
        self.expect(a, "addressee")?;
        let addressee = self.peer("addressee")?;
        self.expect(a, "id")?;
        let id = MsgId(self.uint("id")?);
        self.expect(a, "hops")?;
        // Above 255 is out of the field's range; above 8, `validate` refuses it.
        let hops = u8::try_from(self.uint("hops")?)
            .map_err(|_| DecodeError::Invalid("direct hops above 8"))?;
        self.expect(a, "key")?;
        let key = self.fixed("key", "direct key length")?;
        self.expect(a, "nonce")?;
        let nonce = self.fixed("nonce", "direct nonce length")?;
        self.expect(a, "sealed")?;
        let sealed = self.bytes("sealed")?;
        Ok(Direct {
            sender,
            addressee,
            id,
            hops,
            key,
            nonce,
            sealed,
        })
    }

    fn whois(&mut self, a: &mut Array, answer: bool) -> Result<WhoIs> {
        self.expect(a, "sender")?;
        let sender = self.peer("sender")?;
        self.expect(a, "id")?;
        let id = MsgId(self.uint("id")?);
        if !answer {
            self.expect(a, "hops")?;
            let hops = u8::try_from(self.uint("hops")?)
                .map_err(|_| DecodeError::Invalid("who-is hops above 8"))?;
            self.expect(a, "nick")?;
            let nick = self.text("nick")?;
            return Ok(WhoIs::Query(WhoIsQuery {
                sender,
                id,
                hops,
                nick,
            }));
        }
        self.expect(a, "peers")?;
        let peers = self.list("peers", |r| {
            let mut e = r.array("who-is peer")?;
            r.expect(&mut e, "peer")?;
            let peer = r.peer("peer")?;
            r.expect(&mut e, "nick")?;
            let nick = r.text("nick")?;
            r.expect(&mut e, "seen")?;
            let seen = r.uint("seen")?;
            r.expect(&mut e, "lobbies")?;
            let lobbies = r.list("lobbies", |r| r.text("lobby"))?;
            r.expect(&mut e, "addr")?;
            let addr = match r.opt_text("addr")? {
                None => None,
                Some(t) => Some(
                    t.parse()
                        .map_err(|_| DecodeError::Invalid("who-is address"))?,
                ),
            };
            r.end(&mut e, "who-is peer")?;
            Ok(WhoIsPeer {
                peer,
                nick,
                seen,
                lobbies,
                addr,
            })
        })?;
        Ok(WhoIs::Answer(WhoIsAnswer { sender, id, peers }))
    }

    /// Text, or null.
    fn opt_text(&mut self, what: &str) -> Result<Option<String>> {
        match self.pull()? {
            Header::Simple(NULL) => Ok(None),
            Header::Text(len) => self.read_text(len, super::MAX_DATAGRAM).map(Some),
            _ => Err(DecodeError::Malformed(format!(
                "{what}: expected text or null"
            ))),
        }
    }

    fn list_packet(&mut self, a: &mut Array, list: bool) -> Result<ListPacket> {
        self.expect(a, "sender")?;
        let sender = self.peer("sender")?;
        if !list {
            return Ok(ListPacket::Request { sender });
        }
        self.expect(a, "lobbies")?;
        let lobbies = self.list("lobbies", |r| {
            let mut e = r.array("lobby entry")?;
            r.expect(&mut e, "name")?;
            let name = r.text("name")?;
            r.expect(&mut e, "members")?;
            let members = r.uint("members")?;
            r.end(&mut e, "lobby entry")?;
            Ok((name, members))
        })?;
        self.expect(a, "more")?;
        let more = self.bool("more")?;
        Ok(ListPacket::List(LobbyList {
            sender,
            lobbies,
            more,
        }))
    }

    /// The opened content of a direct message (PROTOCOL.md 4.15).
    pub fn content(&mut self) -> Result<Content> {
        let mut a = self.array("content")?;
        self.expect(&mut a, "content type")?;
        let c = match self.uint("content type")? {
            0 => {
                self.expect(&mut a, "sent_at")?;
                let sent_at = self.uint("sent_at")?;
                self.expect(&mut a, "nick")?;
                let nick = self.text("nick")?;
                self.expect(&mut a, "text")?;
                let text = self.text("text")?;
                Content::Text {
                    sent_at,
                    nick,
                    text,
                }
            }
            1 => {
                self.expect(&mut a, "acked")?;
                Content::Ack(MsgId(self.uint("acked")?))
            }
            2 => {
                self.expect(&mut a, "sent_at")?;
                let sent_at = self.uint("sent_at")?;
                self.expect(&mut a, "nick")?;
                let nick = self.text("nick")?;
                self.expect(&mut a, "name")?;
                let name = self.text("name")?;
                self.expect(&mut a, "key")?;
                let key = self.fixed("key", "invitation key length")?;
                self.expect(&mut a, "again")?;
                let again = self.bool("again")?;
                Content::Invitation {
                    sent_at,
                    nick,
                    name,
                    key,
                    again,
                }
            }
            t => Content::Unknown(t),
        };
        self.skip_rest(&mut a)?;
        Ok(c)
    }

    fn challenge(&mut self, a: &mut Array) -> Result<Challenge> {
        self.expect(a, "sender")?;
        let sender = self.peer("sender")?;
        self.expect(a, "hashes")?;
        let hashes = self.list("hashes", |r| r.uint("hash"))?;
        Ok(Challenge { sender, hashes })
    }

    fn request(&mut self, a: &mut Array) -> Result<Request> {
        self.expect(a, "sender")?;
        let sender = self.peer("sender")?;
        self.expect(a, "source")?;
        let source = self.peer("source")?;
        self.expect(a, "hint")?;
        let hint = self.opt_peer("hint")?;
        self.expect(a, "ranges")?;
        let ranges = self.list("ranges", |r| {
            let [first, last] = r.uints::<2>("range")?;
            Ok(SeqRange(first, last))
        })?;
        Ok(Request {
            sender,
            source,
            hint,
            ranges,
        })
    }
}
