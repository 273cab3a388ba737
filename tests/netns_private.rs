//! What a sniffer sees of a private lobby (PROTOCOL.md 2.4, 4.14): two hosts in network
//! namespaces on one bridge join a lobby by passphrase and exchange a message both ways while
//! tcpdump captures host 0's link. The capture must hold their datagrams to the lobby's group
//! port (so the test cannot pass on an empty capture), and none of the lobby's name, the nick
//! or the text.
//!
//! Needs root, `ip`, `nft` and `tcpdump`. Without them it prints "skipped: ..." and passes,
//! except under CI=true, where it fails instead (.ci/run installs tcpdump).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Instant;

use common::lan::{Lan, skip_unless_possible};
use common::{DEADLINE, Proc};

const LOBBY: &str = "secretname";
const NICK: &str = "sekritnick";
const TEXT: &str = "the-eagle-lands-at-dawn";

/// Whether tcpdump is here; `Err` says why not.
fn tcpdump_present() -> Result<(), String> {
    match std::process::Command::new("tcpdump")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => Err("`tcpdump` not found (install tcpdump)".into()),
    }
}

/// tcpdump on host `i`'s `eth0`, writing every UDP datagram to `file` as it comes
/// (`--immediate-mode`: no batching in the kernel; `-U`: none in tcpdump); returns once it says
/// it is listening, so nothing sent afterwards is missed.
fn capture(lan: &Lan, i: usize, file: &std::path::Path) -> Child {
    let mut cmd = lan.exec(i, "tcpdump");
    cmd.args([
        "-i",
        "eth0",
        "-n",
        "--immediate-mode",
        "-U",
        "-s",
        "0",
        "-w",
    ])
    .arg(file)
    .arg("udp")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning tcpdump");
    let mut err = BufReader::new(child.stderr.take().expect("piped"));
    let mut line = String::new();
    loop {
        line.clear();
        let n = err.read_line(&mut line).expect("tcpdump's stderr");
        assert!(n > 0, "tcpdump stopped before listening");
        if line.contains("listening on") {
            break;
        }
    }
    // Drain the rest, so that tcpdump never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    child
}

/// A UDP datagram in a capture: source address, destination address and port.
type Datagram = ([u8; 4], [u8; 4], u16);

/// The UDP datagrams of a pcap file (Ethernet link type, IPv4) written so far.
fn udp_datagrams(pcap: &[u8]) -> Vec<Datagram> {
    if pcap.len() < 24 {
        return Vec::new();
    }
    let le = pcap[..4] == [0xd4, 0xc3, 0xb2, 0xa1] || pcap[..4] == [0x4d, 0x3c, 0xb2, 0xa1];
    let u32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    assert_eq!(u32_at(&pcap[20..24]), 1, "link type Ethernet");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32_at(&pcap[at + 8..at + 12]) as usize;
        let frame = &pcap[at + 16..(at + 16 + len).min(pcap.len())];
        at += 16 + len;
        // Ethernet, IPv4, UDP.
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] || frame[14 + 9] != 17 {
            continue;
        }
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let src = [frame[26], frame[27], frame[28], frame[29]];
        let dst = [frame[30], frame[31], frame[32], frame[33]];
        let udp = 14 + ihl;
        if frame.len() >= udp + 4 {
            out.push((
                src,
                dst,
                u16::from_be_bytes([frame[udp + 2], frame[udp + 3]]),
            ));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_sniffer_sees_no_name_nick_or_text_of_a_private_lobby() {
    if skip_unless_possible() {
        return;
    }
    if let Err(why) = tcpdump_present() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but the capture test cannot run: {why}");
        }
        println!("skipped: {why}");
        return;
    }
    let deadline = Instant::now() + DEADLINE;
    let lan = Lan::new("priv", &[0, 0]);
    let tmp = tempfile::tempdir().unwrap();
    let pcap_path = tmp.path().join("capture.pcap");
    let mut tcpdump = capture(&lan, 0, &pcap_path);
    let mut procs: Vec<Proc> = (0..2)
        .map(|i| {
            let mut cmd = lan.lobbycast(i, LOBBY, NICK, &tmp.path().join(format!("h{i}")), &[]);
            // Through the environment, as the man page advises.
            cmd.env("LOBBYCAST_KEY", "some passphrase");
            Proc::spawn(&format!("h{i}"), cmd)
        })
        .collect();
    for p in &mut procs {
        p.wait_joined(deadline);
    }
    let joined = procs[0].events("joined")[0].clone();
    assert_eq!(joined["private"], true, "{joined}");
    for (i, p) in procs.iter_mut().enumerate() {
        p.send_lines([format!("{TEXT} from h{i}")]);
    }
    for (i, p) in procs.iter_mut().enumerate() {
        let want = format!("{TEXT} from h{}", 1 - i);
        p.wait_for(deadline, "the other host's message", |s| {
            s.iter()
                .any(|v| v["event"] == "message" && v["text"] == want.as_str())
        });
    }
    let mut sent = 0;
    for p in &mut procs {
        p.close_stdin();
        p.signal(libc::SIGTERM);
        let st = p.wait_exit(deadline);
        assert!(st.success(), "{}: {st}", p.name);
        sent += p.events("stats")[0]["datagrams_out"]
            .as_u64()
            .expect("datagrams_out");
    }
    // The control: every datagram the two hosts sent crosses host 0's link (the bridge floods
    // multicast), so the capture must come to hold them all. tcpdump says nothing when it has
    // written a packet: its file is read again until they are there.
    let hosts = [Lan::addr(0).octets(), Lan::addr(1).octets()];
    let pcap = loop {
        let pcap = std::fs::read(&pcap_path).expect("the capture file");
        let captured = udp_datagrams(&pcap)
            .iter()
            .filter(|(src, _, _)| hosts.contains(src))
            .count() as u64;
        if captured >= sent {
            break pcap;
        }
        assert!(
            Instant::now() < deadline,
            "the capture holds {captured} of the {sent} datagrams the hosts sent"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // SAFETY: kill(2) of a child we spawned and have not reaped.
    unsafe { libc::kill(tcpdump.id() as i32, libc::SIGINT) };
    assert!(tcpdump.wait().expect("tcpdump").success());
    let group = joined["groups"][0].as_str().expect("a group").to_owned();
    let (addr, port) = group.rsplit_once(':').expect("ADDR:PORT");
    let addr: std::net::Ipv4Addr = addr.parse().expect("an IPv4 group");
    let port: u16 = port.parse().expect("a port");
    let to_group = udp_datagrams(&pcap)
        .into_iter()
        .filter(|&(_, a, p)| a == addr.octets() && p == port)
        .count();
    assert!(
        to_group >= 2,
        "the capture holds {to_group} datagrams to {group}: it saw nothing of the lobby"
    );
    // Plain UTF-8 substrings: CBOR carries text strings as their UTF-8 bytes.
    let leaked: Vec<String> = [("text", TEXT), ("nick", NICK), ("lobby name", LOBBY)]
        .into_iter()
        .flat_map(|(what, secret)| {
            [secret.to_owned(), secret.to_uppercase()]
                .into_iter()
                .filter(|form| contains(&pcap, form))
                .map(move |form| format!("the {what} {form:?}"))
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "on the wire in clear: {} ({} bytes captured, {to_group} datagrams to {group})",
        leaked.join(", "),
        pcap.len()
    );
}
