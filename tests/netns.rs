//! Hosts in network namespaces on one Linux bridge, dropping 10 % of incoming UDP at random
//! with nftables: every host delivers every other host's messages exactly once, in a chat and
//! in a burst of 20,000 messages written at once (with a receiver killed in the middle too).
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). Without them it prints "skipped: ..."
//! and passes, except under CI=true, where it fails instead. The namespaces have a prefix of
//! this process's id, use only 10.99.0.0/24 and link-local IPv6, and are always removed
//! (tests/common/lan.rs).

mod common;

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::lan::{Lan, skip_unless_possible};
use common::{DEADLINE, Proc, Tally, assert_exactly_once, check_message_fields, has_all};

/// Messages each host sends.
const PER_HOST: usize = 20;

/// `lobbycast --pipe` inside host `i`, nicknamed `h{i}`.
fn node(lan: &Lan, i: usize, lobby: &str, dir: &Path, extra: &[&str]) -> Proc {
    let name = format!("h{i}");
    Proc::spawn(&name, lan.lobbycast(i, lobby, &name, dir, extra))
}

fn text(host: usize, k: usize) -> String {
    // Every seventh message is long enough to be split into fragments.
    let pad = if k % 7 == 3 { 2500 } else { k * 10 };
    format!("host {host} message {k} {}", "y".repeat(pad))
}

/// Every host sends `PER_HOST` messages, paced so that losses fall on different datagrams,
/// and every host must deliver every other host's messages exactly once.
fn chat(lan: &Lan, lobby: &str, extra: impl Fn(usize) -> Vec<String>) {
    let deadline = Instant::now() + DEADLINE;
    let tmp = tempfile::tempdir().unwrap();
    let mut procs: Vec<Proc> = (0..lan.hosts)
        .map(|i| {
            let args = extra(i);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            node(lan, i, lobby, tmp.path(), &args)
        })
        .collect();
    for p in &mut procs {
        p.wait_joined(deadline);
    }
    for k in 0..PER_HOST {
        for (i, p) in procs.iter_mut().enumerate() {
            p.send_lines([text(i, k)]);
        }
        // Pacing, not synchronisation: spreads the messages over several datagrams.
        thread::sleep(Duration::from_millis(10));
    }
    let want = |me: usize| -> HashSet<String> {
        (0..lan.hosts)
            .filter(|&h| h != me)
            .flat_map(|h| (0..PER_HOST).map(move |k| text(h, k)))
            .collect()
    };
    for (i, p) in procs.iter_mut().enumerate() {
        let w = want(i);
        p.wait_for(deadline, "every other host's messages", |s| has_all(s, &w));
    }
    let mut lost_any = 0;
    for p in &mut procs {
        p.signal(libc::SIGTERM);
        let st = p.wait_exit(deadline);
        assert!(st.success(), "{}: {st}", p.name);
        let stats = p.events("stats");
        eprintln!("{}: {}", p.name, stats[0]);
        lost_any += stats[0]["gaps_detected"].as_u64().unwrap_or(0);
    }
    for (i, p) in procs.iter().enumerate() {
        assert_exactly_once(p, &want(i));
        for v in p.events("message") {
            check_message_fields(v, lobby);
        }
    }
    assert!(
        lost_any > 0,
        "10 % loss must have caused gaps that were repaired"
    );
}

#[test]
fn five_hosts_on_a_bridge_with_ten_percent_loss_ipv4() {
    if skip_unless_possible() {
        return;
    }
    let lan = Lan::new("a", &[10; 5]);
    // Hosts 0 and 1 find the interface by the default route; the rest are told.
    chat(&lan, "netns-v4", |i| {
        if i < 2 {
            vec![]
        } else {
            vec!["--iface".into(), "eth0".into()]
        }
    });
}

#[test]
fn three_hosts_on_a_bridge_with_ten_percent_loss_ipv6() {
    if skip_unless_possible() {
        return;
    }
    let lan = Lan::new("b", &[10; 3]);
    chat(&lan, "netns-v6", |_| {
        vec![
            "--iface".into(),
            "eth0".into(),
            "--family".into(),
            "ipv6".into(),
        ]
    });
}

// ---- a burst ------------------------------------------------------------------------------

/// Messages in a burst.
const BURST: usize = 20_000;
/// Bytes per burst message.
const BURST_SIZE: usize = 100;
/// Failure guard of a burst, not an expectation: a debug build takes tens of seconds, and a
/// receiver killed mid-burst may hold the sender back until the peer timeout (30 s).
const BURST_DEADLINE: Duration = Duration::from_secs(300);
/// A receiver killed mid-burst goes after delivering this many.
const KILL_AFTER: usize = 5_000;

/// Bursts load both cores; two at once would measure each other. They take turns.
static BURST_TURN: Mutex<()> = Mutex::new(());

fn burst_text(k: usize) -> String {
    let mut s = format!("burst {k:06} ");
    s.extend(std::iter::repeat_n('z', BURST_SIZE - s.len()));
    s
}

/// The number in a burst text.
fn burst_number(text: &str) -> Option<usize> {
    text.strip_prefix("burst ")?.get(..6)?.parse().ok()
}

/// Host 0 sends `BURST` messages, all written to its stdin from a thread as fast as the pipe
/// takes them; hosts 1 to 3 receive, each dropping 10 % of its incoming UDP. With `kill`,
/// host 3 gets SIGKILL once it delivered `KILL_AFTER` messages. Every receiver left must
/// deliver every message exactly once with no `lost` event, and the sender must refuse no
/// line (no `error` event).
fn burst(tag: &str, kill: bool) {
    if skip_unless_possible() {
        return;
    }
    let _turn = BURST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let lan = Lan::new(tag, &[0, 10, 10, 10]);
    let lobby = format!("burst-{tag}");
    let tmp = tempfile::tempdir().unwrap();
    let deadline = Instant::now() + BURST_DEADLINE;
    let iface = ["--iface", "eth0"];
    let mut sender = node(&lan, 0, &lobby, tmp.path(), &iface);
    sender.wait_joined(deadline);
    let mut receivers: Vec<Proc> = (1..lan.hosts)
        .map(|i| node(&lan, i, &lobby, tmp.path(), &iface))
        .collect();
    // Every receiver is in the lobby and has heard the sender before the first line.
    for r in &mut receivers {
        r.wait_joined(deadline);
        r.wait_for(deadline, "the sender's peer_joined", |s| {
            s.iter()
                .any(|v| v["event"] == "peer_joined" && v["nick"] == "h0")
        });
    }

    let stdin = sender.take_stdin();
    let start = Instant::now();
    let writer = thread::spawn(move || -> std::io::Result<Duration> {
        let mut w = BufWriter::with_capacity(64 << 10, stdin);
        for k in 0..BURST {
            writeln!(w, "{}", burst_text(k))?;
        }
        w.flush()?;
        // Dropping the writer closes stdin.
        Ok(start.elapsed())
    });

    let mut killed = None;
    if kill {
        let mut victim = receivers.pop().expect("three receivers");
        let mut n = 0;
        victim.wait_lines(deadline, "messages before the kill", |v| {
            n += usize::from(v["event"] == "message");
            n >= KILL_AFTER
        });
        victim.signal(libc::SIGKILL);
        let st = victim.wait_exit(deadline);
        assert_eq!(st.signal(), Some(libc::SIGKILL), "{}: {st}", victim.name);
        eprintln!(
            "{tag}: {} killed after {:.1} s with {} messages delivered",
            victim.name,
            start.elapsed().as_secs_f64(),
            victim.events("message").len()
        );
        killed = Some(victim);
    }

    // Each receiver is waited on until every message is delivered or given up (`lost`), so a
    // failing run ends as soon as its outcome is known and still reports every number.
    let mut done_after = Vec::new();
    for r in &mut receivers {
        let mut got = vec![false; BURST];
        let (mut distinct, mut lost) = (0, 0);
        let at = r.wait_lines(deadline, "every message delivered or lost", |v| {
            if v["event"] == "message" {
                if let Some(k) = v["text"].as_str().and_then(burst_number)
                    && k < BURST
                    && !got[k]
                {
                    got[k] = true;
                    distinct += 1;
                }
            } else if v["event"] == "lost" {
                lost += v["count"].as_u64().unwrap_or(0) as usize;
            }
            distinct + lost >= BURST
        });
        done_after.push(at.duration_since(start));
    }

    sender.signal(libc::SIGTERM);
    let st = sender.wait_exit(deadline);
    assert!(st.success(), "{}: {st}", sender.name);
    // The sender has exited, so a writer still blocked on the pipe has failed by now.
    let written = writer.join().expect("writer thread");
    for r in &mut receivers {
        r.signal(libc::SIGTERM);
        let st = r.wait_exit(deadline);
        assert!(st.success(), "{}: {st}", r.name);
    }

    let want: HashSet<String> = (0..BURST).map(burst_text).collect();
    let mut report = format!(
        "{tag}: {BURST} messages of {BURST_SIZE} bytes; stdin written in {}; sender {}\n",
        match &written {
            Ok(d) => format!("{:.1} s", d.as_secs_f64()),
            Err(e) => format!("(not all: {e})"),
        },
        sender.events("stats")[0]
    );
    let mut ok = written.is_ok() && sender.events("error").is_empty();
    for (r, after) in receivers.iter().zip(&done_after) {
        let t = Tally::of(r, &want);
        ok &= t.exactly_once() && t.lost_events == 0;
        report += &format!(
            "{}: done (all delivered or lost) after {:.1} s: {t}\n  {}\n",
            r.name,
            after.as_secs_f64(),
            r.events("stats")[0]
        );
        for v in r.events("message") {
            check_message_fields(v, &lobby);
        }
    }
    if let Some(v) = &killed {
        report += &format!(
            "{} (killed): delivered {}\n",
            v.name,
            v.events("message").len()
        );
    }
    eprint!("{report}");
    assert!(
        sender.events("error").is_empty(),
        "the sender refused lines: {:?}\n{report}",
        sender.events("error").first()
    );
    assert!(
        ok,
        "every receiver left must deliver every message exactly once, no `lost`\n{report}"
    );
}

#[test]
fn a_burst_of_twenty_thousand_reaches_three_receivers_with_ten_percent_loss() {
    burst("c", false);
}

#[test]
fn a_burst_survives_a_receiver_killed_in_the_middle() {
    burst("d", true);
}

/// Forged session packets sent at idle nodes from a fourth host: 16 invented sources (keys the
/// attacker made), each announced once and then claiming 4,095 packets (the measured attack:
/// 1.3 KB in made three idle nodes send 5.1 MB). Each node's requests and repairs over the
/// next seconds must stay within 16 times the forged bytes (PROTOCOL.md 6.3); its own sessions
/// are not counted. The same sessions unsigned, or signed by a key that is not the claimed
/// member's, are dropped: those ghosts never join (4.12).
#[test]
fn forged_sessions_at_idle_nodes_draw_bounded_traffic() {
    use lobbycast::proto::wire::{Body, Packet, Sent, Session};
    use lobbycast::proto::{Lobby, PeerId, SigningKey, signing};
    use std::net::{SocketAddr, UdpSocket};

    if skip_unless_possible() {
        return;
    }
    let _turn = BURST_TURN.lock().unwrap_or_else(|e| e.into_inner());
    let lan = Lan::new("s", &[0, 0, 0, 0]);
    let name = "storm";
    let lobby = Lobby::new(name).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let deadline = Instant::now() + DEADLINE;
    let iface = ["--iface", "eth0"];
    let mut idle: Vec<Proc> = (0..3)
        .map(|i| node(&lan, i, name, tmp.path(), &iface))
        .collect();
    for (i, p) in idle.iter_mut().enumerate() {
        p.wait_joined(deadline);
        // The idle nodes know each other before the attack, as in a quiet lobby.
        p.wait_for(deadline, "the other idle nodes", |s| {
            (0..3).filter(|&j| j != i).all(|j| {
                s.iter()
                    .any(|v| v["event"] == "peer_joined" && v["nick"] == format!("h{j}"))
            })
        });
    }

    let group = SocketAddr::from((lobby.ipv4_group(), 47110));
    let key = |fake: u8| SigningKey::from_bytes(&[0x50 + fake; 32]);
    let session = |sender: PeerId, nick: String, next: u64| Packet {
        lobby: lobby.id,
        body: Body::Session(Session {
            sender,
            nick,
            timestamp: 1,
            sent: Sent { low: 0, next },
            heard: Vec::new(),
            echoes: Vec::new(),
            acked: Vec::new(),
            flags: 0,
            mheard: 0,
        }),
    };
    let forged: Vec<Vec<u8>> = (0..2u64)
        .flat_map(|round| {
            (0..16u8).map(move |fake| {
                let key = key(fake);
                let me = signing::peer_id_of(&key.verifying_key().to_bytes());
                let s = session(me, format!("ghost{fake}"), round * 4095);
                signing::seal(&key, lobby.id, s.to_bytes()).to_bytes()
            })
        })
        .collect();
    let forged_bytes: usize = forged.iter().map(Vec::len).sum();
    // Unsigned, and signed by ghost 0's key under ghost 1's peer id.
    let unsigned = session(PeerId(0x5eed), "unsigned-ghost".into(), 4095).to_bytes();
    let ghost1 = signing::peer_id_of(&key(1).verifying_key().to_bytes());
    let mut impostor = signing::seal(
        &key(0),
        lobby.id,
        session(ghost1, "impostor-ghost".into(), 0).to_bytes(),
    );
    impostor.source = ghost1;
    let impostor = impostor.to_bytes();
    thread::scope(|s| {
        s.spawn(|| {
            lan.enter(3).expect("entering the attacker's namespace");
            let sock = UdpSocket::bind((Lan::addr(3), 0)).expect("attacker socket");
            for d in [&unsigned, &impostor] {
                sock.send_to(d, group).expect("sending a forged session");
            }
            for d in &forged {
                sock.send_to(d, group).expect("sending a forged session");
            }
        });
    });
    // The forged sources show up at every idle node: the packets arrived.
    for p in &mut idle {
        p.wait_for(deadline, "the forged members", |s| {
            s.iter()
                .filter(|v| v["event"] == "peer_joined")
                .filter(|v| v["nick"].as_str().is_some_and(|n| n.starts_with("ghost")))
                .count()
                == 16
        });
    }
    // Not a synchronisation but the window observed: requests are backed off and re-armed
    // for seconds, and the measured storm lasted 8 s.
    thread::sleep(Duration::from_secs(8));
    let bound = 16 * forged_bytes as u64;
    let mut report = format!("{} forged datagrams, {forged_bytes} bytes\n", forged.len());
    let mut ok = true;
    for p in &mut idle {
        p.signal(libc::SIGTERM);
        let st = p.wait_exit(deadline);
        assert!(st.success(), "{}: {st}", p.name);
        let stats = p.events("stats")[0].clone();
        let answered = stats["request_bytes_out"].as_u64().unwrap()
            + stats["repair_bytes_out"].as_u64().unwrap();
        ok &= answered <= bound && stats["requests_sent"].as_u64().unwrap() > 0;
        // Sent before the signed ones, which all arrived: these arrived too, and were dropped.
        let joined_unsigned = p
            .events("peer_joined")
            .iter()
            .any(|v| v["nick"] == "unsigned-ghost" || v["nick"] == "impostor-ghost");
        ok &= !joined_unsigned
            && stats["unsigned"].as_u64().unwrap() >= 1
            && stats["bad_signatures"].as_u64().unwrap() >= 1;
        report += &format!(
            "{}: {answered} bytes of requests and repairs (bound {bound}); {stats}\n",
            p.name
        );
    }
    eprint!("{report}");
    assert!(
        ok,
        "each idle node asks for the claims, within 16 x the forged bytes\n{report}"
    );
}
