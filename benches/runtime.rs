//! The runtime benchmark: raw UDP multicast (the limit) against lobbycast `--pipe`, with the
//! same message size, in one run: first on loopback, then on a bridge of network namespaces.
//!
//! `cargo bench --bench runtime` prints, for loopback, the messages/s delivered to every
//! receiver and their ratio, then the one-way latency p50/p99 at a modest rate. Messages are
//! stamped with the wall clock when written, and the receiving side reads the clock when the
//! line (or datagram) is in hand, so lobbycast's latency covers the pipe in, the core, the
//! sockets, the history write and the pipe out.
//!
//! Then, as root with `ip` and `nft` (else it says it skipped), one sender and three receivers
//! in network namespaces on a bridge (tests/common/lan.rs), 100,000 messages: raw multicast,
//! then lobbycast with 0 % and with 10 % random loss of incoming UDP at each receiver. Per
//! case: msg/s of the slowest receiver, time to complete (or what arrived by the bound),
//! deliveries, duplicates and `lost` events per receiver, each receiver's peak RSS, and
//! requests and repairs per receiver loss from the `stats` lines printed at exit.
//!
//! `cargo test` runs it too, in a quick mode that only checks that it works.
//!
//! Environment: LOBBYCAST_BENCH_MESSAGES (loopback throughput run, default 200000),
//! LOBBYCAST_BENCH_RECEIVERS (loopback, default 1), LOBBYCAST_BENCH_SIZE (bytes per message,
//! default 100), LOBBYCAST_BENCH_RATE (latency run, messages/s, default 1000),
//! LOBBYCAST_BENCH_NETNS_MESSAGES (namespace runs, default 100000),
//! LOBBYCAST_BENCH_NETNS_BOUND (seconds a namespace run may take, default 120); RUST_LOG
//! reaches the lobbycast processes (default warn), whose logs go to stderr.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::free_port;
use common::lan::{self, Lan};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A message of exactly `size` bytes that starts with its sequence number and send time.
fn payload(k: usize, size: usize) -> String {
    let mut s = format!("{k} {} ", now_ns());
    while s.len() < size {
        s.push('x');
    }
    s.truncate(size.max(1));
    s
}

/// The `i`th space-separated number at the start of `text`.
fn field(text: &[u8], i: usize) -> Option<u64> {
    let f = text.split(|&b| b == b' ').nth(i)?;
    std::str::from_utf8(f).ok()?.parse().ok()
}

/// The sequence number in a message made by [`payload`] (trailing bytes ignored).
fn number(text: &[u8]) -> Option<usize> {
    field(text, 0).and_then(|k| usize::try_from(k).ok())
}

/// The send time in a message made by [`payload`] (trailing bytes ignored).
fn stamp(text: &[u8]) -> Option<u64> {
    field(text, 1)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

// ---- raw UDP multicast -------------------------------------------------------------------

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 77, 77);

/// A socket on the group, joined on the interface with address `iface`.
fn raw_receiver(port: u16, iface: Ipv4Addr) -> UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    s.set_reuse_address(true).expect("reuse");
    s.set_reuse_port(true).expect("reuse");
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&SocketAddr::V4(SocketAddrV4::new(GROUP, port)).into())
        .expect("bind");
    s.set_multicast_all_v4(false).expect("mc all");
    s.join_multicast_v4_n(&GROUP, &InterfaceIndexOrAddress::Address(iface))
        .expect("join");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    s.into()
}

/// A socket that sends to the group out of the interface with address `iface`.
fn raw_sender(iface: Ipv4Addr) -> UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    s.set_multicast_if_v4(&iface).expect("mc if");
    s.set_multicast_loop_v4(true).expect("loop");
    s.set_multicast_ttl_v4(1).expect("ttl");
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&SocketAddr::V4(SocketAddrV4::new(iface, 0)).into())
        .expect("bind");
    s.into()
}

/// What each raw receiver got: datagrams, and seconds from the first send to the last one.
struct RawRun {
    got: Vec<usize>,
    secs: Vec<f64>,
}

impl RawRun {
    /// Messages/s delivered to the slowest receiver.
    fn slowest(&self) -> f64 {
        self.got
            .iter()
            .zip(&self.secs)
            .map(|(&g, &s)| g as f64 / s.max(1e-9))
            .fold(f64::INFINITY, f64::min)
    }
}

/// Raw multicast of `n` datagrams: on loopback to `receivers` sockets when `lan` is `None`;
/// else from host 0 of the LAN to one socket on each other host.
fn raw_throughput(n: usize, receivers: usize, size: usize, port: u16, lan: Option<&Lan>) -> RawRun {
    let iface = |i: usize| lan.map_or(Ipv4Addr::LOCALHOST, |_| Lan::addr(i));
    let enter = |i: usize| {
        if let Some(lan) = lan {
            lan.enter(i).expect("setns into a host");
        }
    };
    let msgs: Vec<String> = (0..n).map(|k| payload(k, size)).collect();
    thread::scope(|sc| {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (start_tx, start_rx) = mpsc::channel::<Instant>();
        let handles: Vec<_> = (1..=receivers)
            .map(|i| {
                let ready = ready_tx.clone();
                sc.spawn(move || {
                    enter(i);
                    let sock = raw_receiver(port, iface(i));
                    ready.send(()).expect("ready");
                    let mut buf = [0u8; 2048];
                    let mut got = 0usize;
                    let mut last = Instant::now();
                    // Ends at the end marker, or when nothing came for the read timeout.
                    while let Ok(len) = sock.recv(&mut buf) {
                        if &buf[..len] == b"end" {
                            break;
                        }
                        got += 1;
                        last = Instant::now();
                        if got == n {
                            break;
                        }
                    }
                    (got, last)
                })
            })
            .collect();
        for _ in 0..receivers {
            ready_rx.recv().expect("receiver ready");
        }
        let msgs = &msgs;
        sc.spawn(move || {
            enter(0);
            let sender = raw_sender(iface(0));
            let to = SocketAddr::V4(SocketAddrV4::new(GROUP, port));
            start_tx.send(Instant::now()).expect("start");
            for m in msgs {
                let _ = sender.send_to(m.as_bytes(), to);
            }
            for _ in 0..3 {
                let _ = sender.send_to(b"end", to);
            }
        });
        let start = start_rx.recv().expect("sender started");
        let (got, secs) = handles
            .into_iter()
            .map(|h| {
                let (got, last) = h.join().expect("receiver thread");
                (got, last.saturating_duration_since(start).as_secs_f64())
            })
            .unzip();
        RawRun { got, secs }
    })
}

/// Raw multicast latency at `rate` messages/s: sorted one-way delays in ns.
fn raw_latency(n: usize, rate: usize, size: usize, port: u16) -> Vec<u64> {
    let sock = raw_receiver(port, Ipv4Addr::LOCALHOST);
    let h = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut lat = Vec::with_capacity(n);
        while let Ok(len) = sock.recv(&mut buf) {
            let t = now_ns();
            if &buf[..len] == b"end" {
                break;
            }
            if let Some(s) = stamp(&buf[..len]) {
                lat.push(t.saturating_sub(s));
            }
            if lat.len() == n {
                break;
            }
        }
        lat
    });
    let sender = raw_sender(Ipv4Addr::LOCALHOST);
    let to = SocketAddr::V4(SocketAddrV4::new(GROUP, port));
    pace(n, rate, |k| {
        let _ = sender.send_to(payload(k, size).as_bytes(), to);
    });
    let _ = sender.send_to(b"end", to);
    let mut lat = h.join().expect("receiver");
    lat.sort_unstable();
    lat
}

/// Calls `f(k)` for k in 0..n at `rate` per second, on a fixed schedule.
fn pace(n: usize, rate: usize, mut f: impl FnMut(usize)) {
    let start = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    for k in 0..n {
        let at = start + gap * k as u32;
        let now = Instant::now();
        if at > now {
            thread::sleep(at - now);
        }
        f(k);
    }
}

// ---- lobbycast --pipe --------------------------------------------------------------------

/// A running lobbycast, killed on drop unless it was reaped.
struct Pipe {
    child: Child,
    reaped: bool,
}

impl Pipe {
    /// Sends `sig`.
    fn signal(&self, sig: i32) {
        if !self.reaped {
            // SAFETY: kill(2) on our own child, not yet reaped, so its pid is still ours.
            unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        }
    }

    /// Waits for the exit; returns the peak resident set in KiB (ru_maxrss). Under
    /// `ip netns exec`, which execs the program, that is the program's own.
    fn reap(&mut self) -> Option<u64> {
        if self.reaped {
            return None;
        }
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: wait4(2) on our own child with valid pointers.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        self.reaped = true;
        (r == pid).then_some(ru.ru_maxrss as u64)
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a reader of a lobbycast's stdout tells the benchmark.
enum Note {
    /// Receiver `who` delivered a message: how many distinct ones so far, and its one-way
    /// delay in ns when measured.
    Delivered {
        who: usize,
        distinct: usize,
        at: Instant,
        delay: Option<u64>,
    },
    /// Receiver `who` gave up sequence numbers (a `lost` event): how many in all so far.
    Lost { who: usize, total: u64 },
    /// Its stdout closed: the counts and the `stats` line.
    End(Box<Tally>),
}

/// One lobbycast's deliveries over a run.
#[derive(Debug, Default)]
struct Tally {
    who: usize,
    distinct: usize,
    duplicates: usize,
    lost_events: usize,
    lost_seqs: u64,
    stats: Option<serde_json::Value>,
}

impl Tally {
    fn stat(&self, field: &str) -> u64 {
        self.stats
            .as_ref()
            .and_then(|s| s[field].as_u64())
            .unwrap_or(0)
    }
}

/// The start of the `text` value in a `message` line, found without parsing the line (the
/// reader must keep up with 100 k lines/s on a core it shares). A benchmark text has no
/// character JSON escapes, and a `"text":"` inside another string would have its quotes
/// escaped.
fn text_of(line: &[u8]) -> &[u8] {
    const KEY: &[u8] = br#""text":""#;
    line.windows(KEY.len())
        .position(|w| w == KEY)
        .map_or(&[], |i| &line[i + KEY.len()..])
}

/// Starts `cmd` (a `lobbycast --pipe`), returns once its `joined` line is read. A thread
/// reads its stdout and sends [`Note`]s about messages numbered below `n`, tagged `who`, with
/// their delay if `latency`.
fn spawn_pipe(
    mut cmd: Command,
    who: usize,
    n: usize,
    notes: mpsc::Sender<Note>,
    latency: bool,
) -> Pipe {
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn lobbycast");
    let stdout = child.stdout.take().expect("piped");
    let (ready_tx, ready_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut r = BufReader::with_capacity(1 << 20, stdout);
        let mut line = Vec::new();
        let mut seen = vec![false; n];
        let mut t = Tally {
            who,
            ..Tally::default()
        };
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let at = Instant::now();
            let ns = now_ns();
            if line.starts_with(br#"{"event":"joined""#) {
                let _ = ready_tx.send(());
            } else if line.starts_with(br#"{"event":"message""#) {
                let text = text_of(&line);
                match number(text) {
                    Some(k) if k < n && !seen[k] => {
                        seen[k] = true;
                        t.distinct += 1;
                    }
                    _ => t.duplicates += 1,
                }
                let delay = latency.then(|| stamp(text).map(|s| ns.saturating_sub(s)));
                let _ = notes.send(Note::Delivered {
                    who,
                    distinct: t.distinct,
                    at,
                    delay: delay.flatten(),
                });
            } else if line.starts_with(br#"{"event":"lost""#) {
                let v: serde_json::Value = serde_json::from_slice(&line).expect("JSON line");
                t.lost_events += 1;
                t.lost_seqs += v["count"].as_u64().unwrap_or(0);
                let _ = notes.send(Note::Lost {
                    who,
                    total: t.lost_seqs,
                });
            } else if line.starts_with(br#"{"event":"stats""#) {
                t.stats = serde_json::from_slice(&line).ok();
            }
        }
        let _ = notes.send(Note::End(Box::new(t)));
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("lobbycast did not start");
    Pipe {
        child,
        reaped: false,
    }
}

/// Writes `n` messages of `size` bytes to `pipe`'s stdin from a thread, as fast as the pipe
/// takes them; closes stdin at the end.
fn write_burst(pipe: &mut Pipe, n: usize, size: usize) -> thread::JoinHandle<()> {
    let stdin = pipe.child.stdin.take().expect("stdin");
    let msgs: Vec<String> = (0..n).map(|k| payload(k, size)).collect();
    thread::spawn(move || {
        let mut w = BufWriter::with_capacity(64 << 10, stdin);
        for m in &msgs {
            // A sender stopped early (a bound reached) closes the pipe: stop writing.
            if w.write_all(m.as_bytes())
                .and_then(|()| w.write_all(b"\n"))
                .is_err()
            {
                return;
            }
        }
        let _ = w.flush();
    })
}

/// A throughput run's outcome: per receiver, distinct messages and when the last came, and
/// when it had all of them, if it did within the bound.
struct Progress {
    distinct: Vec<usize>,
    last: Vec<Option<Instant>>,
    done: Vec<Option<Instant>>,
    lost: Vec<u64>,
}

/// Waits until every receiver (notes tagged 1..=receivers) delivered all `n` messages, or
/// accounted for them with `lost` events, or `bound` passed since `start`.
fn follow(
    notes: &mpsc::Receiver<Note>,
    receivers: usize,
    n: usize,
    start: Instant,
    bound: Duration,
) -> Progress {
    let mut p = Progress {
        distinct: vec![0; receivers],
        last: vec![None; receivers],
        done: vec![None; receivers],
        lost: vec![0; receivers],
    };
    let settled =
        |p: &Progress| (0..receivers).all(|r| p.distinct[r] as u64 + p.lost[r] >= n as u64);
    while !settled(&p) {
        let left = (start + bound).saturating_duration_since(Instant::now());
        match notes.recv_timeout(left) {
            Ok(Note::Delivered {
                who, distinct, at, ..
            }) if (1..=receivers).contains(&who) => {
                let r = who - 1;
                p.distinct[r] = distinct;
                p.last[r] = Some(at);
                if distinct == n {
                    p.done[r] = Some(at);
                }
            }
            Ok(Note::Lost { who, total }) if (1..=receivers).contains(&who) => {
                p.lost[who - 1] = total
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    p
}

/// Stops every pipe with SIGTERM; returns their tallies (with the `stats` line printed at
/// exit) and peak RSS in KiB, in `who` order.
fn stop_all(pipes: &mut [Pipe], notes: &mpsc::Receiver<Note>) -> (Vec<Tally>, Vec<Option<u64>>) {
    for p in pipes.iter() {
        p.signal(libc::SIGTERM);
    }
    let mut tallies: Vec<Option<Tally>> = (0..pipes.len()).map(|_| None).collect();
    let mut deadline = Instant::now() + Duration::from_secs(30);
    let mut killed = false;
    while tallies.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match notes.recv_timeout(left) {
            Ok(Note::End(t)) => {
                let who = t.who;
                tallies[who] = Some(*t);
            }
            Ok(_) => {}
            Err(_) if !killed => {
                // Stuck: SIGKILL leaves no stats line, but the run still reports.
                eprintln!("a lobbycast ignored SIGTERM for 30 s; killing");
                for p in pipes.iter() {
                    p.signal(libc::SIGKILL);
                }
                killed = true;
                deadline = Instant::now() + Duration::from_secs(30);
            }
            Err(_) => panic!("a lobbycast's stdout stayed open after SIGKILL"),
        }
    }
    let rss = pipes.iter_mut().map(Pipe::reap).collect();
    (tallies.into_iter().map(Option::unwrap).collect(), rss)
}

/// A lobbycast throughput run on loopback.
struct PipeRun {
    /// Messages/s delivered to the slowest receiver (first write to its last delivery).
    rate: f64,
    /// Whether every receiver had every message within the bound.
    complete: bool,
    distinct: Vec<usize>,
    lost: Vec<u64>,
    duplicates: usize,
}

impl PipeRun {
    /// What was delivered, in words.
    fn outcome(&self, n: usize) -> String {
        let delivered = if self.complete {
            "every message to every receiver".to_owned()
        } else {
            format!(
                "INCOMPLETE: delivered {:?} of {n}, lost {:?} seqs",
                self.distinct, self.lost
            )
        };
        if self.duplicates == 0 {
            format!("{delivered}, no duplicates")
        } else {
            format!("{delivered}, {} DUPLICATES", self.duplicates)
        }
    }
}

/// lobbycast on loopback: `n` messages written at once to a sender, `receivers` receivers,
/// every node run with `extra` arguments too (`--key` for a private lobby).
fn pipe_throughput(n: usize, receivers: usize, size: usize, port: u16, extra: &[&str]) -> PipeRun {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lobby = format!("bench-{}", std::process::id());
    let (tx, rx) = mpsc::channel();
    let cmd = |name: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lobbycast"));
        c.args(["--pipe", &lobby, "--iface", "lo", "--nick", name])
            .args(["--port", &port.to_string(), "--data-dir"])
            .arg(tmp.path().join(name))
            .args(extra);
        c
    };
    let mut pipes = vec![spawn_pipe(cmd("s"), 0, n, tx.clone(), false)];
    for i in 1..=receivers {
        pipes.push(spawn_pipe(cmd(&format!("r{i}")), i, n, tx.clone(), false));
    }
    let start = Instant::now();
    let writer = write_burst(&mut pipes[0], n, size);
    let p = follow(&rx, receivers, n, start, Duration::from_secs(120));
    let (tallies, _) = stop_all(&mut pipes, &rx);
    drop(writer.join());
    let rate = (0..receivers)
        .map(|r| {
            let secs = p.last[r].map_or(f64::INFINITY, |t| t.duration_since(start).as_secs_f64());
            p.distinct[r] as f64 / secs
        })
        .fold(f64::INFINITY, f64::min);
    PipeRun {
        rate,
        complete: p.done.iter().all(Option::is_some),
        distinct: p.distinct,
        lost: p.lost,
        duplicates: tallies.iter().map(|t| t.duplicates).sum(),
    }
}

/// lobbycast latency at `rate` messages/s on loopback: sorted one-way delays in ns.
fn pipe_latency(n: usize, rate: usize, size: usize, port: u16) -> Vec<u64> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lobby = format!("bench-lat-{}", std::process::id());
    let (tx, rx) = mpsc::channel();
    let cmd = |name: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lobbycast"));
        c.args(["--pipe", &lobby, "--iface", "lo", "--nick", name])
            .args(["--port", &port.to_string(), "--data-dir"])
            .arg(tmp.path().join(name));
        c
    };
    let _rcv = spawn_pipe(cmd("r"), 1, n, tx.clone(), true);
    let mut sender = spawn_pipe(cmd("s"), 0, n, tx, false);
    let mut stdin = sender.child.stdin.take().expect("stdin");
    let writer = thread::spawn(move || {
        pace(n, rate, |k| {
            let mut line = payload(k, size);
            line.push('\n');
            stdin.write_all(line.as_bytes()).expect("write");
        });
        stdin
    });
    let mut lat = Vec::with_capacity(n);
    while lat.len() < n {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Note::Delivered {
                who: 1,
                delay: Some(d),
                ..
            }) => lat.push(d),
            Ok(_) => {}
            Err(_) => panic!("lobbycast latency run stalled"),
        }
    }
    drop(writer.join());
    lat.sort_unstable();
    lat
}

// ---- network namespaces ------------------------------------------------------------------

/// Receivers on the bridge: hosts 1..=3; host 0 sends.
const NS_RECEIVERS: usize = 3;

/// lobbycast on a bridge: host 0 sends `n` messages written at once, hosts 1 to 3 (each
/// dropping `loss` % of incoming UDP) receive; prints one case's figures.
fn netns_pipe(label: &str, tag: &str, loss: u32, n: usize, size: usize, bound: Duration) {
    let mut losses = vec![loss; NS_RECEIVERS + 1];
    losses[0] = 0;
    let lan = Lan::new(tag, &losses);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (tx, rx) = mpsc::channel();
    let mut pipes: Vec<Pipe> = (0..=NS_RECEIVERS)
        .map(|i| {
            let cmd = lan.lobbycast(
                i,
                "bench",
                &format!("h{i}"),
                tmp.path(),
                &["--iface", "eth0"],
            );
            spawn_pipe(cmd, i, n, tx.clone(), false)
        })
        .collect();
    let start = Instant::now();
    let writer = write_burst(&mut pipes[0], n, size);
    let p = follow(&rx, NS_RECEIVERS, n, start, bound);
    let elapsed = start.elapsed();
    let (tallies, rss) = stop_all(&mut pipes, &rx);
    drop(writer.join());

    let complete = p.done.iter().all(Option::is_some);
    let (rate, time) = if complete {
        let last = p.done.iter().flatten().max().expect("receivers");
        let secs = last.duration_since(start).as_secs_f64();
        (n as f64 / secs, format!("complete in {secs:.1} s"))
    } else {
        let slowest = (0..NS_RECEIVERS)
            .map(|r| {
                let secs =
                    p.last[r].map_or(f64::INFINITY, |t| t.duration_since(start).as_secs_f64());
                p.distinct[r] as f64 / secs
            })
            .fold(f64::INFINITY, f64::min);
        let why = if elapsed >= bound {
            format!("incomplete after {} s", bound.as_secs())
        } else {
            format!(
                "incomplete, all given up or delivered after {:.1} s",
                elapsed.as_secs_f64()
            )
        };
        (slowest, why)
    };
    let rcv = &tallies[1..];
    let gaps: u64 = rcv.iter().map(|t| t.stat("gaps_detected")).sum();
    let requests: u64 = tallies.iter().map(|t| t.stat("requests_sent")).sum();
    let repairs: u64 = tallies.iter().map(|t| t.stat("repairs_sent")).sum();
    let per = |x: u64| {
        if gaps == 0 {
            "-".to_owned()
        } else {
            format!("{:.2}", x as f64 / gaps as f64)
        }
    };
    println!("{label:<20}: {rate:>8.0} msg/s slowest receiver, {time}");
    println!(
        "{:<20}  delivered {:?}, duplicates {:?}, lost events {:?} ({:?} seqs)",
        "",
        p.distinct,
        rcv.iter().map(|t| t.duplicates).collect::<Vec<_>>(),
        rcv.iter().map(|t| t.lost_events).collect::<Vec<_>>(),
        rcv.iter().map(|t| t.lost_seqs).collect::<Vec<_>>(),
    );
    println!(
        "{:<20}  peak RSS MiB [{}]; receiver losses (gaps) {gaps}, requests {requests} ({}/loss), \
         repairs {repairs} ({}/loss), recovered {:?}",
        "",
        rss[1..]
            .iter()
            .map(|r| r.map_or("?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)))
            .collect::<Vec<_>>()
            .join(", "),
        per(requests),
        per(repairs),
        rcv.iter().map(|t| t.stat("recovered")).collect::<Vec<_>>(),
    );
}

/// The namespace section: raw multicast, then lobbycast at 0 % and 10 % loss.
fn netns_section(n: usize, size: usize, bound: Duration) {
    if let Err(why) = lan::can_run() {
        println!("network namespaces: skipped ({why})");
        return;
    }
    println!(
        "network namespaces, a bridge: 1 sender, {NS_RECEIVERS} receivers, {n} messages of \
         {size} bytes written at once, bound {} s",
        bound.as_secs()
    );
    {
        let lan = Lan::new("raw", &[0; NS_RECEIVERS + 1]);
        let raw = raw_throughput(n, NS_RECEIVERS, size, 47999, Some(&lan));
        let secs = raw.secs.iter().copied().fold(0.0, f64::max);
        println!(
            "{:<20}: {:>8.0} msg/s slowest receiver, last datagram after {secs:.2} s",
            "raw UDP multicast",
            raw.slowest()
        );
        println!(
            "{:<20}  arrived {:?} (no repair: what is lost stays lost)",
            "", raw.got
        );
    }
    netns_pipe("lobbycast, 0 % loss", "lc0", 0, n, size, bound);
    netns_pipe("lobbycast, 10 % loss", "lc10", 10, n, size, bound);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too: quick mode.
    let quick = std::env::args().all(|a| a != "--bench");
    let n = if quick {
        2000
    } else {
        env_or("LOBBYCAST_BENCH_MESSAGES", 200_000)
    };
    let receivers = env_or("LOBBYCAST_BENCH_RECEIVERS", 1);
    let size = env_or("LOBBYCAST_BENCH_SIZE", 100);
    let rate = env_or("LOBBYCAST_BENCH_RATE", 1000);
    let lat_n = if quick { 200 } else { rate * 5 };
    let (ns_n, bound) = if quick {
        (2000, 30)
    } else {
        (
            env_or("LOBBYCAST_BENCH_NETNS_MESSAGES", 100_000),
            env_or("LOBBYCAST_BENCH_NETNS_BOUND", 120),
        )
    };

    println!(
        "loopback, {size}-byte messages, {receivers} receiver(s), {n} messages{}",
        if quick { " (quick mode)" } else { "" }
    );
    let raw_run = raw_throughput(n, receivers, size, free_port(), None);
    let raw = raw_run.slowest();
    let least = raw_run.got.iter().copied().min().unwrap_or(0);
    println!(
        "raw UDP multicast : {:>10.0} msg/s delivered ({:.1} % of those sent arrived)",
        raw,
        least as f64 / n as f64 * 100.0
    );
    let lc = pipe_throughput(n, receivers, size, free_port(), &[]);
    println!(
        "lobbycast --pipe  : {:>10.0} msg/s delivered ({})",
        lc.rate,
        lc.outcome(n)
    );
    println!("ratio lobbycast/raw: {:.2}", lc.rate / raw);
    // A private lobby: every datagram sealed and opened (PROTOCOL.md 4.14).
    let sealed = pipe_throughput(
        n,
        receivers,
        size,
        free_port(),
        &["--key", "bench passphrase"],
    );
    println!(
        "lobbycast --key   : {:>10.0} msg/s delivered ({})",
        sealed.rate,
        sealed.outcome(n)
    );
    println!(
        "ratio private/public: {:.2}, private/raw: {:.2}",
        sealed.rate / lc.rate,
        sealed.rate / raw
    );
    // Under `cargo test` this is a check: lobbycast delivers everything, once.
    for run in [&lc, &sealed] {
        assert!(
            !quick || (run.complete && run.duplicates == 0),
            "lobbycast on loopback must deliver every message exactly once: {}",
            run.outcome(n)
        );
    }

    let raw_lat = raw_latency(lat_n, rate, size, free_port());
    let lc_lat = pipe_latency(lat_n, rate, size, free_port());
    println!("one-way latency at {rate} msg/s, {lat_n} messages:");
    println!(
        "raw UDP multicast : p50 {:>7.1} us  p99 {:>7.1} us  max {:>8.1} us",
        percentile(&raw_lat, 0.5),
        percentile(&raw_lat, 0.99),
        percentile(&raw_lat, 1.0)
    );
    println!(
        "lobbycast --pipe  : p50 {:>7.1} us  p99 {:>7.1} us  max {:>8.1} us",
        percentile(&lc_lat, 0.5),
        percentile(&lc_lat, 0.99),
        percentile(&lc_lat, 1.0)
    );

    println!();
    netns_section(ns_n, size, Duration::from_secs(bound as u64));
}
