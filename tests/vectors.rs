//! Checks the codec and the lobby mapping against the frozen vectors in `proto/vectors/`.
//!
//! The files there are the truth, not this code: every `*.vec` file is decoded and compared with
//! its expected outcome and fields, and every decoded packet is encoded again and compared byte
//! for byte. `lobby-names.txt` is checked against [`Lobby::new`], and so is the example table in
//! `proto/PROTOCOL.md`; `challenge-hashes.txt`, `bundle-signature.txt`, `anchor-signature.txt`
//! and `link-hashes.txt` against the challenge hash, the signatures and the link hash. PROTOCOL.md ("Test vectors") describes the file formats.
//!
//! With `LOBBYCAST_VECTOR_ITEMS=<dir>` set, the test also writes every CBOR item of every vector
//! to `<dir>` (`<vector>.<n>.ok.cbor` or `.bad.cbor`) so that a CDDL tool can check them against
//! `proto/lobbycast.cddl`; see `proto/validate-cddl.sh`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use lobbycast::proto::ids::{self, Lobby, LobbyId, LobbyNameError, MsgId, PeerId};
use lobbycast::proto::wire::{self, Auth, Body, Bundle, Data, DecodeError, Decoded, Link, Packet};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/vectors")
}

/// What one item of a datagram is expected to decode to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    /// A packet, rendered one `name = value` line per wire field.
    Packet(Vec<String>),
    UnknownVersion(u64),
    UnsupportedKind(u64),
    Malformed,
    /// Out of range, with the codec's reason.
    Invalid(String),
}

/// One `*.vec` file.
#[derive(Debug)]
struct Vector {
    name: String,
    bytes: Vec<u8>,
    /// What encoding the decoded packets again must give, when `bytes` is not canonical.
    canonical: Option<Vec<u8>>,
    expect: Vec<Expect>,
    /// The codec is known not to decode this vector as specified.
    known_bug: Option<String>,
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in {s:?}"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            u8::from_str_radix(text, 16).map_err(|e| format!("{text:?}: {e}"))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn parse_vector(file: &str, text: &str) -> Result<Vector, String> {
    let mut name = None;
    let mut bytes = Vec::new();
    let mut canonical: Option<Vec<u8>> = None;
    let mut expect = Vec::new();
    let mut known_bug = None;
    for (n, line) in text.lines().enumerate() {
        let at = |msg: String| format!("{file}:{}: {msg}", n + 1);
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| at("expected `key: value`".into()))?;
        let value = value.trim();
        match key {
            "name" => name = Some(value.to_string()),
            "hex" => bytes.extend(parse_hex(value).map_err(at)?),
            "canonical" => canonical
                .get_or_insert_with(Vec::new)
                .extend(parse_hex(value).map_err(at)?),
            "known-bug" => known_bug = Some(value.to_string()),
            "expect" => {
                let (what, arg) = value.split_once(' ').unwrap_or((value, ""));
                let number = || arg.parse::<u64>().map_err(|e| at(format!("{arg:?}: {e}")));
                expect.push(match what {
                    "packet" if arg.is_empty() => Expect::Packet(Vec::new()),
                    "unknown-version" => Expect::UnknownVersion(number()?),
                    "unsupported-kind" => Expect::UnsupportedKind(number()?),
                    "malformed" if arg.is_empty() => Expect::Malformed,
                    "invalid" if !arg.is_empty() => Expect::Invalid(arg.to_string()),
                    _ => return Err(at(format!("unknown expectation {value:?}"))),
                });
            }
            "field" => match expect.last_mut() {
                Some(Expect::Packet(fields)) => fields.push(value.to_string()),
                _ => return Err(at("`field` outside an `expect: packet`".into())),
            },
            _ => return Err(at(format!("unknown key {key:?}"))),
        }
    }
    let name = name.ok_or_else(|| format!("{file}: no `name`"))?;
    if file != format!("{name}.vec") {
        return Err(format!(
            "{file}: name {name:?} does not match the file name"
        ));
    }
    if bytes.is_empty() || expect.is_empty() {
        return Err(format!("{file}: needs `hex` and at least one `expect`"));
    }
    if expect
        .iter()
        .any(|e| matches!(e, Expect::Packet(fields) if fields.is_empty()))
    {
        return Err(format!("{file}: `expect: packet` without `field` lines"));
    }
    Ok(Vector {
        name,
        bytes,
        canonical,
        expect,
        known_bug,
    })
}

/// Renders a string as the vectors write it: in double quotes, with `\"`, `\\` and `\u{..}`
/// for control characters; everything else as itself.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The inverse of [`quote`]; returns the string and the rest of the input after it.
fn unquote(s: &str) -> Result<(String, &str), String> {
    let mut rest = s
        .strip_prefix('"')
        .ok_or_else(|| format!("expected a quoted string at {s:?}"))?;
    let mut out = String::new();
    loop {
        let mut chars = rest.chars();
        let c = chars.next().ok_or("unterminated string")?;
        rest = chars.as_str();
        match c {
            '"' => return Ok((out, rest)),
            '\\' => {
                let mut chars = rest.chars();
                let escape = chars.next().ok_or("unterminated escape")?;
                rest = chars.as_str();
                match escape {
                    '"' | '\\' => out.push(escape),
                    'u' => {
                        let inner = rest.strip_prefix('{').ok_or("expected \\u{")?;
                        let (code, after) = inner.split_once('}').ok_or("unterminated \\u{")?;
                        let code = u32::from_str_radix(code, 16).map_err(|e| e.to_string())?;
                        out.push(char::from_u32(code).ok_or("not a character")?);
                        rest = after;
                    }
                    other => return Err(format!("unknown escape \\{other}")),
                }
            }
            c => out.push(c),
        }
    }
}

fn id(v: u64) -> String {
    format!("0x{v:016x}")
}

fn data_fields(d: &Data, out: &mut Vec<String>) {
    out.push(format!("source = {}", id(d.source.0)));
    out.push(format!("seq = {}", d.seq));
    out.push(format!("msg_id = {}", id(d.msg_id.0)));
    out.push(format!("sent_at = {}", d.sent_at));
    out.push(format!("nick = {}", quote(&d.nick)));
    out.push(format!("frag_index = {}", d.frag_index));
    out.push(format!("frag_count = {}", d.frag_count));
    out.push(format!("body = h'{}'", hex(&d.body)));
}

fn list<T>(items: &[T], one: impl Fn(&T) -> String) -> String {
    let items: Vec<String> = items.iter().map(one).collect();
    format!("[{}]", items.join(", "))
}

/// One line per wire field, in wire order, values in CBOR diagnostic notation (ids in hex).
fn render(p: &Packet) -> Vec<String> {
    let kind = match &p.body {
        Body::Data(_) => wire::kind::DATA,
        Body::Session(_) => wire::kind::SESSION,
        Body::Request(_) => wire::kind::REQUEST,
        Body::Repair { .. } => wire::kind::REPAIR,
        Body::Heartbeat(_) => wire::kind::HEARTBEAT,
    };
    let mut out = vec![
        format!("version = {}", wire::VERSION),
        format!("kind = {kind}"),
        format!("lobby = {}", id(p.lobby.0)),
    ];
    match &p.body {
        Body::Data(d) => data_fields(d, &mut out),
        Body::Repair { repairer, data } => {
            out.push(format!("repairer = {}", id(repairer.0)));
            data_fields(data, &mut out);
        }
        Body::Session(s) => {
            out.push(format!("sender = {}", id(s.sender.0)));
            out.push(format!("nick = {}", quote(&s.nick)));
            out.push(format!("timestamp = {}", s.timestamp));
            out.push(format!("sent = [{}, {}]", s.sent.low, s.sent.next));
            out.push(format!(
                "heard = {}",
                list(&s.heard, |h| format!("[{}, {}]", id(h.0.0), h.1))
            ));
            out.push(format!(
                "echoes = {}",
                list(&s.echoes, |e| format!(
                    "[{}, {}, {}]",
                    id(e.peer.0),
                    e.timestamp,
                    e.delay
                ))
            ));
            // Revisions 1.1 and 1.2 append fields, absent from the wire when empty or zero
            // and nothing follows them.
            if !s.acked.is_empty() || s.flags != 0 || s.mheard != 0 {
                out.push(format!(
                    "acked = {}",
                    list(&s.acked, |a| format!("[{}, {}]", id(a.0.0), a.1))
                ));
            }
            if s.flags != 0 || s.mheard != 0 {
                out.push(format!("flags = {}", s.flags));
            }
            if s.mheard != 0 {
                out.push(format!("mheard = {}", s.mheard));
            }
        }
        Body::Heartbeat(h) => {
            out.push(format!("sender = {}", id(h.sender.0)));
            out.push(format!("nick = {}", quote(&h.nick)));
            out.push(format!("beat = {}", id(h.beat.0)));
            out.push(format!("sent_at = {}", h.sent_at));
            out.push(format!("leaving = {}", h.leaving));
        }
        Body::Request(r) => {
            out.push(format!("sender = {}", id(r.sender.0)));
            out.push(format!("source = {}", id(r.source.0)));
            out.push(match r.hint {
                Some(h) => format!("hint = {}", id(h.0)),
                None => "hint = null".into(),
            });
            out.push(format!(
                "ranges = {}",
                list(&r.ranges, |s| format!("[{}, {}]", s.0, s.1))
            ));
        }
    }
    out
}

/// Like [`render`], for the friend-link packets, which carry no lobby.
fn render_link(l: &Link) -> Vec<String> {
    let mut out = vec![format!("version = {}", wire::VERSION)];
    match l {
        Link::Hello(h) => {
            out.push(format!("kind = {}", wire::kind::HELLO));
            out.push(format!("sender = {}", id(h.sender.0)));
            out.push(format!("nick = {}", quote(&h.nick)));
            out.push(format!("timestamp = {}", h.timestamp));
            out.push(match h.echo {
                Some(e) => format!("echo = [{}, {}]", e.timestamp, e.delay),
                None => "echo = null".into(),
            });
            out.push(format!("lobbies = {}", list(&h.lobbies, |l| id(l.0))));
        }
        Link::Challenge(c) => {
            out.push(format!("kind = {}", wire::kind::CHALLENGE));
            out.push(format!("sender = {}", id(c.sender.0)));
            out.push(format!("hashes = {}", list(&c.hashes, |h| id(*h))));
        }
    }
    out
}

fn render_bundle(b: &Bundle) -> Vec<String> {
    let mut out = vec![format!("version = {}", wire::VERSION)];
    let Auth::Signed {
        key,
        signature,
        chain,
    } = &b.auth
    else {
        out.push(format!("kind = {}", wire::kind::LINK));
        out.push(format!("lobby = {}", id(b.lobby.0)));
        out.push(format!("source = {}", id(b.source.0)));
        out.push(format!("packets = h'{}'", hex(&b.packets)));
        out.extend(b.repairer.map(|r| format!("repairer = {}", id(r.0))));
        return out;
    };
    out.push(format!("kind = {}", wire::kind::BUNDLE));
    out.push(format!("lobby = {}", id(b.lobby.0)));
    out.push(format!("source = {}", id(b.source.0)));
    out.push(format!("key = h'{}'", hex(key)));
    out.push(format!("signature = h'{}'", hex(signature)));
    out.push(format!("packets = h'{}'", hex(&b.packets)));
    match (b.repairer, chain.is_empty()) {
        (Some(r), _) => out.push(format!("repairer = {}", id(r.0))),
        (None, false) => out.push("repairer = null".into()),
        (None, true) => {}
    }
    if !chain.is_empty() {
        out.push(format!(
            "chain = {}",
            list(chain, |h| format!("h'{}'", hex(h)))
        ));
    }
    out
}

fn render_envelope(e: &wire::Envelope) -> Vec<String> {
    vec![
        format!("version = {}", wire::VERSION),
        format!("kind = {}", wire::kind::ENVELOPE),
        format!("lobby = {}", id(e.lobby.0)),
        format!("nonce = h'{}'", hex(&e.nonce)),
        format!("sealed = h'{}'", hex(&e.sealed)),
    ]
}

fn render_direct(d: &wire::Direct) -> Vec<String> {
    vec![
        format!("version = {}", wire::VERSION),
        format!("kind = {}", wire::kind::DIRECT),
        format!("sender = {}", id(d.sender.0)),
        format!("addressee = {}", id(d.addressee.0)),
        format!("id = {}", id(d.id.0)),
        format!("hops = {}", d.hops),
        format!("key = h'{}'", hex(&d.key)),
        format!("nonce = h'{}'", hex(&d.nonce)),
        format!("sealed = h'{}'", hex(&d.sealed)),
    ]
}

fn render_list(l: &wire::ListPacket) -> Vec<String> {
    let mut out = vec![format!("version = {}", wire::VERSION)];
    match l {
        wire::ListPacket::Request { sender } => {
            out.push(format!("kind = {}", wire::kind::LOBBY_LIST_REQUEST));
            out.push(format!("sender = {}", id(sender.0)));
        }
        wire::ListPacket::List(l) => {
            out.push(format!("kind = {}", wire::kind::LOBBY_LIST));
            out.push(format!("sender = {}", id(l.sender.0)));
            out.push(format!(
                "lobbies = {}",
                list(&l.lobbies, |(n, m)| format!("[{}, {m}]", quote(n)))
            ));
            out.push(format!("more = {}", l.more));
        }
    }
    out
}

fn render_whois(w: &wire::WhoIs) -> Vec<String> {
    let mut out = vec![format!("version = {}", wire::VERSION)];
    match w {
        wire::WhoIs::Query(q) => {
            out.push(format!("kind = {}", wire::kind::WHOIS_QUERY));
            out.push(format!("sender = {}", id(q.sender.0)));
            out.push(format!("id = {}", id(q.id.0)));
            out.push(format!("hops = {}", q.hops));
            out.push(format!("nick = {}", quote(&q.nick)));
        }
        wire::WhoIs::Answer(a) => {
            out.push(format!("kind = {}", wire::kind::WHOIS_ANSWER));
            out.push(format!("sender = {}", id(a.sender.0)));
            out.push(format!("id = {}", id(a.id.0)));
            out.push(format!(
                "peers = {}",
                list(&a.peers, |p| format!(
                    "[{}, {}, {}, {}, {}]",
                    id(p.peer.0),
                    quote(&p.nick),
                    p.seen,
                    list(&p.lobbies, |l| quote(l)),
                    p.addr.map_or("null".into(), |a| quote(&a.to_string()))
                ))
            ));
        }
    }
    out
}

fn outcome(item: &Result<Decoded, DecodeError>) -> Expect {
    match item {
        Ok(Decoded::Packet(p)) => Expect::Packet(render(p)),
        Ok(Decoded::Link(l)) => Expect::Packet(render_link(l)),
        Ok(Decoded::Bundle(b)) => Expect::Packet(render_bundle(b)),
        Ok(Decoded::Envelope(e)) => Expect::Packet(render_envelope(e)),
        Ok(Decoded::Direct(d)) => Expect::Packet(render_direct(d)),
        Ok(Decoded::List(l)) => Expect::Packet(render_list(l)),
        Ok(Decoded::WhoIs(w)) => Expect::Packet(render_whois(w)),
        Ok(Decoded::UnknownVersion(v)) => Expect::UnknownVersion(*v),
        Ok(Decoded::UnsupportedKind(k)) => Expect::UnsupportedKind(*k),
        Err(DecodeError::Malformed(_)) => Expect::Malformed,
        Err(DecodeError::Invalid(why)) => Expect::Invalid((*why).to_string()),
    }
}

/// Length of the well-formed CBOR item at the start of `b`, if there is one. Independent of the
/// codec, so that each packet's re-encoding is compared with exactly its own bytes.
fn item_len(b: &[u8], depth: u32) -> Option<usize> {
    let first = *b.first()?;
    let (major, info) = (first >> 5, first & 0x1f);
    let (arg, head) = match info {
        0..=23 => (u64::from(info), 1),
        24..=27 => {
            let n = 1usize << (info - 24);
            let bytes = b.get(1..1 + n)?;
            (
                bytes.iter().fold(0u64, |a, &x| a << 8 | u64::from(x)),
                1 + n,
            )
        }
        31 if (2..=5).contains(&major) => {
            // Indefinite length: items (or chunks) until a break.
            let mut at = 1;
            let per = if major == 5 { 2 } else { 1 };
            loop {
                if *b.get(at)? == 0xff {
                    return Some(at + 1);
                }
                for _ in 0..per {
                    at += item_len(b.get(at..)?, depth.checked_sub(1)?)?;
                }
            }
        }
        _ => return None,
    };
    match major {
        0 | 1 | 7 => Some(head),
        2 | 3 => {
            let end = head.checked_add(usize::try_from(arg).ok()?)?;
            (end <= b.len()).then_some(end)
        }
        4 | 5 => {
            let mut at = head;
            let count = arg.checked_mul(if major == 5 { 2 } else { 1 })?;
            for _ in 0..count {
                at += item_len(b.get(at..)?, depth.checked_sub(1)?)?;
            }
            Some(at)
        }
        _ => Some(head + item_len(b.get(head..)?, depth.checked_sub(1)?)?), // a tag and its item
    }
}

/// Splits `bytes` into CBOR items; a tail that is not a whole item comes last, as it is.
fn split_items(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let n = item_len(bytes, 64).unwrap_or(bytes.len());
        items.push(&bytes[..n]);
        bytes = &bytes[n..];
    }
    items
}

/// Checks one vector; returns what is wrong with it, if anything.
fn check(v: &Vector, kinds: &mut BTreeMap<String, usize>) -> Result<(), String> {
    if v.bytes.len() > wire::MAX_DATAGRAM {
        return Err(format!("{} bytes, larger than a datagram", v.bytes.len()));
    }
    let decoded: Vec<_> = wire::decode_datagram(&v.bytes).collect();
    let got: Vec<Expect> = decoded.iter().map(outcome).collect();
    if let Some(bug) = &v.known_bug {
        return if got == v.expect {
            Err(format!(
                "now decodes as specified; delete its `known-bug` line ({bug})"
            ))
        } else {
            println!("{}: known bug, still present: {bug}", v.name);
            Ok(())
        };
    }
    if got != v.expect {
        let mut msg = String::from("decodes differently\n  expected:\n");
        for e in &v.expect {
            let _ = writeln!(msg, "    {e:?}");
        }
        msg.push_str("  got:\n");
        for g in &got {
            let _ = writeln!(msg, "    {g:?}");
        }
        return Err(msg);
    }
    // Every decoded packet encodes back to its own bytes: exactly the input's, or the canonical
    // form given for an input that uses a lenient encoding.
    let target = v.canonical.as_deref().unwrap_or(&v.bytes);
    let items = split_items(target);
    if v.canonical.is_some() && items.len() != decoded.len() {
        return Err("canonical form holds another number of items".into());
    }
    for (i, item) in decoded.iter().enumerate() {
        let (again, rendered) = match item {
            Ok(Decoded::Packet(p)) => (p.to_bytes(), render(p)),
            Ok(Decoded::Link(l)) => (l.to_bytes(), render_link(l)),
            Ok(Decoded::Bundle(b)) => (b.to_bytes(), render_bundle(b)),
            Ok(Decoded::Envelope(e)) => (e.to_bytes(), render_envelope(e)),
            Ok(Decoded::Direct(d)) => (d.to_bytes(), render_direct(d)),
            Ok(Decoded::List(l)) => (l.to_bytes(), render_list(l)),
            Ok(Decoded::WhoIs(w)) => (w.to_bytes(), render_whois(w)),
            _ => continue,
        };
        if items.get(i) != Some(&again.as_slice()) {
            return Err(format!(
                "item {i} encodes to {}\n  not {}",
                hex(&again),
                items.get(i).map_or("(nothing)".into(), |b| hex(b))
            ));
        }
        *kinds.entry(rendered[1].clone()).or_default() += 1;
    }
    for e in &v.expect {
        let class = match e {
            Expect::Packet(_) => continue,
            Expect::UnknownVersion(_) => "unknown-version",
            Expect::UnsupportedKind(_) => "unsupported-kind",
            Expect::Malformed => "malformed",
            Expect::Invalid(_) => "invalid",
        };
        *kinds.entry(class.into()).or_default() += 1;
    }
    Ok(())
}

/// Writes every item of `v` to `dir` for a CDDL tool: `.ok` items must match the schema.
fn write_items(v: &Vector, dir: &Path) {
    let decoded: Vec<_> = wire::decode_datagram(&v.bytes).collect();
    for (i, item) in split_items(&v.bytes).iter().enumerate() {
        let expected_ok = !matches!(
            v.expect.get(i),
            None | Some(Expect::Malformed | Expect::Invalid(_))
        );
        let good =
            v.known_bug.is_none() && expected_ok && decoded.get(i).is_some_and(Result::is_ok);
        let tag = if good { "ok" } else { "bad" };
        fs::write(dir.join(format!("{}.{i}.{tag}.cbor", v.name)), item).unwrap();
    }
}

#[test]
fn packet_vectors_decode_and_encode_as_written() {
    let dir = vectors_dir();
    let items_dir = std::env::var_os("LOBBYCAST_VECTOR_ITEMS").map(PathBuf::from);
    if let Some(d) = &items_dir {
        fs::create_dir_all(d).unwrap();
    }
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut kinds = BTreeMap::new();
    let mut count = 0;
    for file in &files {
        if [
            "lobby-names.txt",
            "challenge-hashes.txt",
            "bundle-signature.txt",
            "anchor-signature.txt",
            "link-hashes.txt",
            "private-lobbies.txt",
            "private-tags.txt",
            "envelope-seal.txt",
            "direct-seal.txt",
        ]
        .contains(&file.as_str())
        {
            continue;
        }
        if !file.ends_with(".vec") {
            failures.push(format!(
                "{file}: not a vector file (*.vec, lobby-names.txt, challenge-hashes.txt, \
                 bundle-signature.txt, anchor-signature.txt, link-hashes.txt, \
                 private-lobbies.txt, private-tags.txt, envelope-seal.txt or direct-seal.txt)"
            ));
            continue;
        }
        let text = fs::read_to_string(dir.join(file)).unwrap();
        let v = match parse_vector(file, &text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        count += 1;
        if let Some(d) = &items_dir {
            write_items(&v, d);
        }
        if let Err(e) = check(&v, &mut kinds) {
            failures.push(format!("{file}: {e}"));
        }
    }
    println!("{count} packet vectors: {kinds:?}");
    // An empty or thinned-out directory must not pass: every kind and every outcome is covered.
    for class in [
        "kind = 0",
        "kind = 1",
        "kind = 2",
        "kind = 3",
        "kind = 4",
        "kind = 5",
        "kind = 6",
        "kind = 7",
        "kind = 9",
        "kind = 10",
        "kind = 11",
        "kind = 12",
        "kind = 13",
        "kind = 14",
        "kind = 15",
        "unknown-version",
        "unsupported-kind",
        "malformed",
        "invalid",
    ] {
        if !kinds.contains_key(class) {
            failures.push(format!("no vector covers `{class}`"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// SipHash-2-4 written out from the paper, so that the spec's claim "the lobby id is plain
/// SipHash-2-4 of the name's bytes, key words read little-endian" is checked, not assumed.
fn siphash24(key: &[u8; 16], msg: &[u8]) -> u64 {
    let k0 = u64::from_le_bytes(key[..8].try_into().unwrap());
    let k1 = u64::from_le_bytes(key[8..].try_into().unwrap());
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let round = |v: &mut [u64; 4]| {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    };
    let mut last = [0u8; 8];
    let tail = msg.len() / 8 * 8;
    last[..msg.len() - tail].copy_from_slice(&msg[tail..]);
    last[7] = msg.len() as u8;
    let words = msg[..tail].chunks(8).chain(std::iter::once(&last[..]));
    for w in words {
        let m = u64::from_le_bytes(w.try_into().unwrap());
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[test]
fn reference_siphash_matches_the_paper() {
    // The paper's test vector: key 00..0f, message 00..0e.
    let key: [u8; 16] = std::array::from_fn(|i| i as u8);
    let msg: Vec<u8> = (0..15).collect();
    assert_eq!(siphash24(&key, &msg), 0xa129_ca61_49be_45e5);
}

/// Checks one accepted name against the codec and against the spec's own formulas.
fn check_name(name: &str, normal: &str, id: u64, v4: &str, v6: &str) -> Result<(), String> {
    let lobby = Lobby::new(name).map_err(|e| format!("{}: refused: {e}", quote(name)))?;
    let got = (
        lobby.name.as_str(),
        lobby.id,
        lobby.ipv4_group().to_string(),
        lobby.ipv6_group().to_string(),
    );
    let want = (normal, LobbyId(id), v4.to_string(), v6.to_string());
    if got != want {
        return Err(format!("{}: got {got:?}, expected {want:?}", quote(name)));
    }
    let by_spec = siphash24(b"lobbycast-lobby1", normal.as_bytes());
    let n = by_spec % 65024 + 256;
    let spec_v4 = format!("239.255.{}.{}", n >> 8, n & 0xff);
    let spec_v6 = std::net::Ipv6Addr::new(
        0xff15,
        0,
        0,
        0,
        0,
        0,
        (by_spec >> 16) as u16,
        by_spec as u16,
    )
    .to_string();
    if (by_spec, spec_v4.as_str(), spec_v6.as_str()) != (id, v4, v6) {
        return Err(format!("{}: the spec's formulas disagree", quote(name)));
    }
    if ids::ipv4_group(LobbyId(id)).to_string() != v4 {
        return Err(format!("{}: ipv4_group(id) disagrees", quote(name)));
    }
    Ok(())
}

fn parse_id(s: &str) -> Result<u64, String> {
    let digits = s.strip_prefix("0x").ok_or(format!("{s:?}: expected 0x"))?;
    u64::from_str_radix(digits, 16).map_err(|e| format!("{s:?}: {e}"))
}

/// Checks one `accept:` or `refuse:` line of lobby-names.txt; true for an `accept`.
fn check_name_line(line: &str) -> Result<bool, String> {
    let (key, rest) = line.split_once(": ").ok_or("expected `key: value`")?;
    let (name, rest) = unquote(rest)?;
    let parts: Vec<&str> = rest.split('|').map(str::trim).skip(1).collect();
    match (key, parts.as_slice()) {
        ("accept", [normal, id, v4, v6]) => {
            let (normal, tail) = unquote(normal)?;
            if !tail.is_empty() {
                return Err(format!("junk after the name: {tail:?}"));
            }
            check_name(&name, &normal, parse_id(id)?, v4, v6).map(|()| true)
        }
        ("refuse", [why]) => {
            let want = match *why {
                "empty" => LobbyNameError::Empty,
                "too-long" => LobbyNameError::TooLong,
                "control-char" => LobbyNameError::ControlChar,
                other => return Err(format!("unknown reason {other:?}")),
            };
            match Lobby::new(&name) {
                Err(e) if e == want => Ok(false),
                other => Err(format!(
                    "{}: got {other:?}, expected {want:?}",
                    quote(&name)
                )),
            }
        }
        _ => Err(
            "expected `accept: \"name\" | \"normalised\" | id | ipv4 | ipv6` \
                  or `refuse: \"name\" | reason`"
                .into(),
        ),
    }
}

#[test]
fn lobby_name_vectors_hold() {
    let path = vectors_dir().join("lobby-names.txt");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut failures = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match check_name_line(line) {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(e) => failures.push(format!("lobby-names.txt:{}: {e}", n + 1)),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(accepted >= 5 && refused >= 3, "too few name vectors");
}

#[test]
fn protocol_md_lobby_table_is_right() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/PROTOCOL.md");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Rows of the example table: | `name` | `normalised` | `0x...` | `239.255...` | `ff15::...` |
    let mut rows = 0;
    let mut in_table = false;
    for line in text.lines() {
        if line.contains("<!-- lobby-examples -->") {
            in_table = !in_table;
            continue;
        }
        if !in_table || !line.starts_with("| \"") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [name, normal, id, v4, v6] = cells.as_slice() else {
            panic!("table row with {} cells: {line}", cells.len());
        };
        let strip = |s: &str| s.trim_matches('`').to_string();
        let (name, _) = unquote(name).unwrap();
        let (normal, _) = unquote(normal).unwrap();
        check_name(
            &name,
            &normal,
            parse_id(&strip(id)).unwrap(),
            &strip(v4),
            &strip(v6),
        )
        .unwrap();
        rows += 1;
    }
    assert!(
        rows >= 3,
        "the example table in PROTOCOL.md has {rows} rows"
    );
}

/// The cases of a `|`-separated vector table: each non-blank, non-comment line of `file` as its
/// line number and trimmed fields.
fn table(file: &str) -> Vec<(usize, Vec<String>)> {
    let text = fs::read_to_string(vectors_dir().join(file)).unwrap();
    text.lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| (n, line.split('|').map(|f| f.trim().to_owned()).collect()))
        .collect()
}

/// challenge-hashes.txt: h(L, N, F) of PROTOCOL.md 7.7, by the implementation and by the
/// SipHash written out above, with the key words and byte order the spec states.
#[test]
fn challenge_hash_vectors_hold() {
    let mut cases = 0;
    for (n, fields) in table("challenge-hashes.txt") {
        let v: Vec<u64> = fields
            .iter()
            .map(|f| parse_id(f).unwrap_or_else(|e| panic!("line {n}: {e}")))
            .collect();
        let [l, msg, friend, want] = v[..] else {
            panic!("line {n}: expected L | N | F | h");
        };
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&l.to_le_bytes());
        key[8..].copy_from_slice(b"lbc-chlg");
        let mut input = [0u8; 16];
        input[..8].copy_from_slice(&msg.to_le_bytes());
        input[8..].copy_from_slice(&friend.to_le_bytes());
        assert_eq!(siphash24(&key, &input), want, "line {n}: reference");
        let got = lobbycast::proto::challenge::hash(LobbyId(l), MsgId(msg), PeerId(friend));
        assert_eq!(got, want, "line {n}: implementation");
        cases += 1;
    }
    assert!(cases >= 4, "challenge-hashes.txt holds only {cases} cases");
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("{s:?}: {e}")))
        .collect()
}

/// bundle-signature.txt: keys, peer ids and signatures of PROTOCOL.md 4.12, computed by
/// Python's hashlib and PyNaCl; the implementation derives the same, signs to the same bytes
/// (Ed25519 is deterministic), accepts them, and refuses any changed byte.
#[test]
fn bundle_signature_vectors_hold() {
    use ed25519_dalek::SigningKey;
    use lobbycast::proto::signing::{self, SignatureError};

    let mut cases = 0;
    for (n, fields) in table("bundle-signature.txt") {
        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
        let [seed, key, peer, lobby, packets, signature] = f[..] else {
            panic!("line {n}: expected six fields");
        };
        let at = format!("line {n}");
        let seed: [u8; 32] = unhex(seed).try_into().expect("32-byte seed");
        let id_of = |h: &str| u64::from_str_radix(h, 16).unwrap_or_else(|e| panic!("{h}: {e}"));
        let lobby = LobbyId(id_of(lobby));
        let b = signing::seal(&SigningKey::from_bytes(&seed), lobby, unhex(packets));
        let Auth::Signed {
            key: public,
            signature: sig,
            ..
        } = &b.auth
        else {
            panic!("{at}: sealed unsigned")
        };
        assert_eq!(hex(public), key, "{at}: public key");
        assert_eq!(b.source, PeerId(id_of(peer)), "{at}: peer id");
        assert_eq!(hex(sig), signature, "{at}: signature");
        assert_eq!(signing::verify(&b), Ok(()), "{at}: verifies");
        for i in 0..b.packets.len() {
            let mut bad = b.clone();
            bad.packets[i] ^= 0x01;
            assert_eq!(
                signing::verify(&bad),
                Err(SignatureError::BadSignature),
                "{at}"
            );
        }
        for i in [0, 31, 32, 63] {
            let mut bad = b.clone();
            if let Auth::Signed { signature, .. } = &mut bad.auth {
                signature[i] ^= 0x80;
            }
            assert!(signing::verify(&bad).is_err(), "{at}: signature byte {i}");
        }
        let mut bad = b.clone();
        bad.lobby = LobbyId(lobby.0 ^ 1);
        assert_eq!(
            signing::verify(&bad),
            Err(SignatureError::BadSignature),
            "{at}"
        );
        cases += 1;
    }
    assert!(cases >= 3, "bundle-signature.txt holds only {cases} cases");
}

/// anchor-signature.txt: anchors' signatures over their chains (PROTOCOL.md 4.12), computed by
/// Python's hashlib and PyNaCl; the implementation signs to the same bytes, accepts them, and
/// refuses a changed hash, a hash left out, or the chain's bytes moved into the packets.
#[test]
fn anchor_signature_vectors_hold() {
    use ed25519_dalek::SigningKey;
    use lobbycast::proto::signing::{self, SignatureError};

    let mut cases = 0;
    for (n, fields) in table("anchor-signature.txt") {
        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
        let [seed, lobby, chain, packets, signature] = f[..] else {
            panic!("line {n}: expected five fields");
        };
        let at = format!("line {n}");
        let seed: [u8; 32] = unhex(seed).try_into().expect("32-byte seed");
        let lobby = LobbyId(u64::from_str_radix(lobby, 16).expect("lobby"));
        let chain: Vec<[u8; 16]> = unhex(chain)
            .chunks(16)
            .map(|c| c.try_into().expect("16-byte hashes"))
            .collect();
        let b = signing::seal_anchor(
            &SigningKey::from_bytes(&seed),
            lobby,
            chain.clone(),
            unhex(packets),
        );
        let Auth::Signed { signature: sig, .. } = &b.auth else {
            panic!("{at}: sealed unsigned")
        };
        assert_eq!(hex(sig), signature, "{at}: signature");
        assert_eq!(signing::verify(&b), Ok(()), "{at}: verifies");
        let with_chain = |c: Vec<[u8; 16]>, packets: Vec<u8>| {
            let mut bad = b.clone();
            if let Auth::Signed { chain, .. } = &mut bad.auth {
                *chain = c;
            }
            bad.packets = packets;
            signing::verify(&bad)
        };
        for i in 0..chain.len() {
            let mut c = chain.clone();
            c[i][15] ^= 1;
            assert_eq!(
                with_chain(c, b.packets.clone()),
                Err(SignatureError::BadSignature),
                "{at}: hash {i} changed"
            );
        }
        let mut shorter = chain.clone();
        let last = shorter.pop().expect("a chain");
        assert_eq!(
            with_chain(shorter, b.packets.clone()),
            Err(SignatureError::BadSignature),
            "{at}: a hash left out"
        );
        let mut moved = last.to_vec();
        moved.extend_from_slice(&b.packets);
        assert_eq!(
            with_chain(chain[..chain.len() - 1].to_vec(), moved),
            Err(SignatureError::BadSignature),
            "{at}: a hash moved into the packets"
        );
        assert_eq!(
            with_chain(Vec::new(), b.packets.clone()),
            Err(SignatureError::BadSignature),
            "{at}: an anchor is not a plain bundle"
        );
        cases += 1;
    }
    assert!(cases >= 3, "anchor-signature.txt holds only {cases} cases");
}

/// link-hashes.txt: link hashes (PROTOCOL.md 4.13), computed by Python's hashlib.
#[test]
fn link_hash_vectors_hold() {
    use lobbycast::proto::signing;

    let mut cases = 0;
    for (n, fields) in table("link-hashes.txt") {
        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
        let [lobby, source, packets, hash] = f[..] else {
            panic!("line {n}: expected four fields");
        };
        let id_of = |h: &str| u64::from_str_radix(h, 16).unwrap_or_else(|e| panic!("{h}: {e}"));
        let got = signing::link_hash(
            LobbyId(id_of(lobby)),
            PeerId(id_of(source)),
            &unhex(packets),
        );
        assert_eq!(hex(&got), hash, "line {n}");
        cases += 1;
    }
    assert!(cases >= 4, "link-hashes.txt holds only {cases} cases");
}

/// private-lobbies.txt: lobby keys derived from passphrases and their private lobby ids
/// (PROTOCOL.md 2.4), computed by Python's hashlib and PyNaCl (libsodium's Argon2id).
#[test]
fn private_lobby_vectors_hold() {
    use lobbycast::proto::private::LobbyKey;

    let unquote = |f: &str| -> String {
        f.strip_prefix('"')
            .and_then(|f| f.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{f}: expected a quoted text"))
            .to_string()
    };
    let mut cases = 0;
    for (n, fields) in table("private-lobbies.txt") {
        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
        let [passphrase, name, key, lobby_id] = f[..] else {
            panic!("line {n}: expected four fields");
        };
        let lobby = Lobby::new(&unquote(name)).expect("a valid name");
        let k = LobbyKey::from_passphrase(&unquote(passphrase), &lobby).expect("derived");
        assert_eq!(hex(k.as_bytes()), key, "line {n}: key");
        assert_eq!(format!("{:016x}", k.id().0), lobby_id, "line {n}: id");
        cases += 1;
    }
    assert!(cases >= 4, "private-lobbies.txt holds only {cases} cases");
}

/// direct-seal.txt: direct messages (PROTOCOL.md 4.15) sealed by PyNaCl (libsodium's key
/// conversion, X25519 and XChaCha20-Poly1305): both ends derive the direct key, the
/// implementation seals to the same bytes, opens them, and refuses a changed byte.
#[test]
fn direct_seal_vectors_hold() {
    use lobbycast::proto::SigningKey;
    use lobbycast::proto::direct::{OpenError, direct_key, open, seal};
    use lobbycast::proto::wire::Content;

    let mut cases = 0;
    for (n, fields) in table("direct-seal.txt") {
        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
        let [sender, addressee, msg, nonce, content, key, sealed] = f[..] else {
            panic!("line {n}: expected seven fields");
        };
        let at = format!("line {n}");
        let a = SigningKey::from_bytes(&unhex(sender).try_into().expect("seed"));
        let b = SigningKey::from_bytes(&unhex(addressee).try_into().expect("seed"));
        let (ka, kb) = (a.verifying_key().to_bytes(), b.verifying_key().to_bytes());
        assert_eq!(
            direct_key(&a, &kb).map(|k| hex(&k)),
            Some(key.to_owned()),
            "{at}"
        );
        assert_eq!(
            direct_key(&b, &ka).map(|k| hex(&k)),
            Some(key.to_owned()),
            "{at}"
        );
        let c = Content::decode(&unhex(content)).expect("content decodes");
        assert_eq!(
            hex(&c.to_bytes()),
            content,
            "{at}: content encodes as written"
        );
        let to = lobbycast::proto::signing::peer_id_of(&kb);
        let id = MsgId(u64::from_str_radix(msg, 16).expect("id"));
        let nonce: [u8; 24] = unhex(nonce).try_into().expect("24-byte nonce");
        let d = seal(&a, to, &kb, id, nonce, &c).expect("a valid key");
        assert_eq!(hex(&d.sealed), sealed, "{at}: sealed");
        assert_eq!(open(&b, &d), Ok(c.clone()), "{at}: opens");
        for i in [0, d.sealed.len() / 2, d.sealed.len() - 1] {
            let mut bad = d.clone();
            bad.sealed[i] ^= 1;
            assert_eq!(open(&b, &bad), Err(OpenError::Forged), "{at}: byte {i}");
        }
        let mut bad = d.clone();
        bad.addressee = PeerId(bad.addressee.0 ^ 1);
        assert_eq!(
            open(&b, &bad),
            Err(OpenError::Forged),
            "{at}: addressee bound"
        );
        cases += 1;
    }
    assert!(cases >= 4, "direct-seal.txt holds only {cases} cases");
}

/// private-tags.txt: the tags by which friends list a private lobby in hellos (PROTOCOL.md
/// 7.2), computed by Python's hashlib.
#[test]
fn private_tag_vectors_hold() {
    use lobbycast::proto::private::LobbyKey;

    let id = |f: &str| u64::from_str_radix(f, 16).expect("a hex id");
    let mut cases = 0;
    for (n, fields) in table("private-tags.txt") {
        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
        let [key, sender, addressee, tag] = f[..] else {
            panic!("line {n}: expected four fields");
        };
        let k = LobbyKey::from_bytes(unhex(key).try_into().expect("32-byte key"));
        let t = k.tag(PeerId(id(sender)), PeerId(id(addressee)));
        assert_eq!(format!("{:016x}", t.0), tag, "line {n}");
        cases += 1;
    }
    assert!(cases >= 4, "private-tags.txt holds only {cases} cases");
}

/// envelope-seal.txt: private lobbies' envelopes (PROTOCOL.md 4.14), sealed by PyNaCl
/// (libsodium's XChaCha20-Poly1305); the implementation seals to the same bytes, opens them,
/// and refuses any changed byte of the sealed text or the nonce.
#[test]
fn envelope_seal_vectors_hold() {
    use lobbycast::proto::private::{LobbyKey, SealError};

    let mut cases = 0;
    for (n, fields) in table("envelope-seal.txt") {
        let f: Vec<&str> = fields.iter().map(String::as_str).collect();
        let [key, nonce, lobby, plaintext, sealed] = f[..] else {
            panic!("line {n}: expected five fields");
        };
        let at = format!("line {n}");
        let k = LobbyKey::from_bytes(unhex(key).try_into().expect("32-byte key"));
        let nonce: [u8; 24] = unhex(nonce).try_into().expect("24-byte nonce");
        let e = k.seal(nonce, &unhex(plaintext));
        let lobby = LobbyId(u64::from_str_radix(lobby, 16).expect("lobby"));
        assert_eq!(e.lobby, lobby, "{at}: the key's private lobby id");
        assert_eq!(hex(&e.sealed), sealed, "{at}: sealed");
        assert_eq!(k.open(&e), Ok(unhex(plaintext)), "{at}: opens");
        for i in [0, e.sealed.len() / 2, e.sealed.len() - 1] {
            let mut bad = e.clone();
            bad.sealed[i] ^= 1;
            assert_eq!(k.open(&bad), Err(SealError::Forged), "{at}: byte {i}");
        }
        let mut bad = e.clone();
        bad.nonce[3] ^= 1;
        assert_eq!(k.open(&bad), Err(SealError::Forged), "{at}: nonce");
        cases += 1;
    }
    assert!(cases >= 3, "envelope-seal.txt holds only {cases} cases");
}
