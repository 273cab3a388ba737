//! The runtime benchmark, on loopback only: raw UDP multicast (the limit) against lobbycast
//! `--pipe`, with the same message size, in one run.
//!
//! `cargo bench --bench runtime` prints, for each, the messages/s delivered to every receiver
//! and their ratio, then the one-way latency p50/p99 at a modest rate. Messages are stamped
//! with the wall clock when written, and the receiving side reads the clock when the line (or
//! datagram) is in hand, so lobbycast's latency covers the pipe in, the core, the sockets, the
//! history write and the pipe out. `cargo test` runs it too, in a quick mode that only checks
//! that it works.
//!
//! Environment: LOBBYCAST_BENCH_MESSAGES (throughput run, default 200000),
//! LOBBYCAST_BENCH_RECEIVERS (default 1), LOBBYCAST_BENCH_SIZE (bytes per message, default 100),
//! LOBBYCAST_BENCH_RATE (latency run, messages/s, default 1000).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// The send time in a message made by [`payload`].
fn stamp(text: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(text).ok()?;
    s.split(' ').nth(1)?.parse().ok()
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

fn raw_receiver(port: u16) -> UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    s.set_reuse_address(true).expect("reuse");
    s.set_reuse_port(true).expect("reuse");
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&SocketAddr::V4(SocketAddrV4::new(GROUP, port)).into())
        .expect("bind");
    s.set_multicast_all_v4(false).expect("mc all");
    s.join_multicast_v4_n(
        &GROUP,
        &InterfaceIndexOrAddress::Address(Ipv4Addr::LOCALHOST),
    )
    .expect("join on lo");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    s.into()
}

fn raw_sender() -> UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).expect("mc if");
    s.set_multicast_loop_v4(true).expect("loop");
    s.set_multicast_ttl_v4(1).expect("ttl");
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    s.into()
}

/// Raw multicast: returns (messages/s delivered to the slowest receiver, delivered fraction).
fn raw_throughput(n: usize, receivers: usize, size: usize, port: u16) -> (f64, f64) {
    let (tx, rx) = mpsc::channel();
    let handles: Vec<_> = (0..receivers)
        .map(|_| {
            let sock = raw_receiver(port);
            let tx = tx.clone();
            thread::spawn(move || {
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
                tx.send((got, last)).expect("report");
            })
        })
        .collect();
    let sender = raw_sender();
    let to = SocketAddr::V4(SocketAddrV4::new(GROUP, port));
    let msgs: Vec<String> = (0..n).map(|k| payload(k, size)).collect();
    let start = Instant::now();
    for m in &msgs {
        let _ = sender.send_to(m.as_bytes(), to);
    }
    for _ in 0..3 {
        let _ = sender.send_to(b"end", to);
    }
    let mut worst = f64::INFINITY;
    let mut frac = 1.0f64;
    for _ in 0..receivers {
        let (got, last) = rx.recv().expect("receiver");
        let secs = last.duration_since(start).as_secs_f64().max(1e-9);
        worst = worst.min(got as f64 / secs);
        frac = frac.min(got as f64 / n as f64);
    }
    for h in handles {
        h.join().expect("receiver thread");
    }
    (worst, frac)
}

/// Raw multicast latency at `rate` messages/s: sorted one-way delays in ns.
fn raw_latency(n: usize, rate: usize, size: usize, port: u16) -> Vec<u64> {
    let sock = raw_receiver(port);
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
    let sender = raw_sender();
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

struct Pipe {
    child: Child,
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lobbycast --pipe` on lo; returns it once its `joined` line is read, with a channel
/// of its later stdout lines, or of their delays if `latency`.
fn spawn_pipe(
    name: &str,
    lobby: &str,
    port: u16,
    dir: &std::path::Path,
    report: mpsc::Sender<Report>,
    latency: bool,
) -> Pipe {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lobbycast"))
        .args(["--pipe", lobby, "--iface", "lo", "--nick", name])
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(dir.join(name))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn lobbycast");
    let stdout = child.stdout.take().expect("piped");
    let (ready_tx, ready_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut r = BufReader::with_capacity(1 << 20, stdout);
        let mut line = Vec::new();
        let mut count = 0u64;
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let t = now_ns();
            if line.starts_with(br#"{"event":"joined""#) {
                let _ = ready_tx.send(());
            } else if line.starts_with(br#"{"event":"message""#) {
                count += 1;
                let delay = if latency {
                    serde_json::from_slice::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|v| stamp(v["text"].as_str()?.as_bytes()))
                        .map(|s| t.saturating_sub(s))
                } else {
                    None
                };
                if report.send(Report { count, delay }).is_err() {
                    break;
                }
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("lobbycast did not start");
    Pipe { child }
}

struct Report {
    count: u64,
    delay: Option<u64>,
}

/// lobbycast: messages/s delivered to every receiver (first write to last delivery).
fn pipe_throughput(n: usize, receivers: usize, size: usize, port: u16) -> f64 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lobby = format!("bench-{}", std::process::id());
    let (tx, rx) = mpsc::channel();
    let _rcv: Vec<Pipe> = (0..receivers)
        .map(|i| {
            spawn_pipe(
                &format!("r{i}"),
                &lobby,
                port,
                tmp.path(),
                tx.clone(),
                false,
            )
        })
        .collect();
    let (dummy, _) = mpsc::channel();
    let mut sender = spawn_pipe("s", &lobby, port, tmp.path(), dummy, false);
    let msgs: Vec<String> = (0..n).map(|k| payload(k, size)).collect();
    let stdin = sender.child.stdin.take().expect("stdin");
    let start = Instant::now();
    let writer = thread::spawn(move || {
        let mut w = BufWriter::with_capacity(64 << 10, stdin);
        for m in &msgs {
            w.write_all(m.as_bytes()).expect("write");
            w.write_all(b"\n").expect("write");
        }
        w.flush().expect("flush");
        w
    });
    let mut done = 0;
    let deadline = start + Duration::from_secs(120);
    while done < receivers {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(r) if r.count == n as u64 => done += 1,
            Ok(_) => {}
            Err(_) => panic!("lobbycast throughput run did not finish"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(writer.join());
    n as f64 / secs
}

/// lobbycast latency at `rate` messages/s: sorted one-way delays in ns.
fn pipe_latency(n: usize, rate: usize, size: usize, port: u16) -> Vec<u64> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lobby = format!("bench-lat-{}", std::process::id());
    let (tx, rx) = mpsc::channel();
    let _rcv = spawn_pipe("r", &lobby, port, tmp.path(), tx, true);
    let (dummy, _) = mpsc::channel();
    let mut sender = spawn_pipe("s", &lobby, port, tmp.path(), dummy, false);
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
            Ok(r) => lat.extend(r.delay),
            Err(_) => panic!("lobbycast latency run stalled"),
        }
    }
    drop(writer.join());
    lat.sort_unstable();
    lat
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
    let port = 47300 + (std::process::id() % 1000) as u16;

    println!(
        "loopback, {size}-byte messages, {receivers} receiver(s), {n} messages{}",
        if quick { " (quick mode)" } else { "" }
    );
    let (raw, frac) = raw_throughput(n, receivers, size, port);
    println!(
        "raw UDP multicast : {:>10.0} msg/s delivered ({:.1} % of those sent arrived)",
        raw,
        frac * 100.0
    );
    let lc = pipe_throughput(n, receivers, size, port + 1);
    println!(
        "lobbycast --pipe  : {:>10.0} msg/s delivered (all of them, exactly once)",
        lc
    );
    println!("ratio lobbycast/raw: {:.2}", lc / raw);

    let raw_lat = raw_latency(lat_n, rate, size, port + 2);
    let lc_lat = pipe_latency(lat_n, rate, size, port + 3);
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
}
