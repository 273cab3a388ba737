//! The SRM benchmark: reliability metrics over the simulator, and codec speed.
//!
//! `cargo bench --bench srm` prints, for nodes × loss, the delivery ratio, requests and
//! repairs per loss, recovery delay in one-way distances, and datagrams per message; then
//! the codec's encode/decode rates against a plain memcpy of the same bytes.

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::hint::black_box;
use std::time::{Duration, Instant};

use lobbycast::proto::wire::{self, Body, Data, Packet};
use lobbycast::proto::{LobbyId, MsgId, Path, PeerId};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use sim::{NetConfig, Sim, node_config};

const MESSAGES: usize = 300;

/// Seeds each cell runs with; their counts are summed and their delays pooled.
const SEEDS: [u64; 3] = [42, 43, 44];

#[derive(Default)]
struct Row {
    wanted: u64,
    delivered: u64,
    lost_packets: u64,
    receiver_losses: u64,
    requests: u64,
    repairs: u64,
    /// Recovery delays, in one-way distances.
    delays: Vec<f64>,
    datagrams: u64,
    sim_ms: u128,
}

impl Row {
    fn add(&mut self, o: Row) {
        self.wanted += o.wanted;
        self.delivered += o.delivered;
        self.lost_packets += o.lost_packets;
        self.receiver_losses += o.receiver_losses;
        self.requests += o.requests;
        self.repairs += o.repairs;
        self.delays.extend(o.delays);
        self.datagrams += o.datagrams;
        self.sim_ms += o.sim_ms;
    }

    /// The columns both tables share: nodes, loss, delivery, losses, requests and repairs.
    fn columns(&self, nodes: usize, loss: f64) -> String {
        let per = |x: u64, y: u64| x as f64 / y.max(1) as f64;
        format!(
            "{:>5} {:>4.0}% {:>8.2}% {:>7} {:>9} {:>8.2} {:>8.2} {:>9.2} {:>9.2}",
            nodes,
            loss * 100.0,
            per(self.delivered, self.wanted) * 100.0,
            self.lost_packets,
            self.receiver_losses,
            per(self.requests, self.lost_packets),
            per(self.repairs, self.lost_packets),
            per(self.requests, self.receiver_losses),
            per(self.repairs, self.receiver_losses),
        )
    }

    fn quantile(&mut self, q: f64) -> f64 {
        self.delays.sort_by(f64::total_cmp);
        let i = ((self.delays.len() as f64 * q).ceil() as usize).saturating_sub(1);
        self.delays.get(i).copied().unwrap_or(0.0)
    }
}

/// The benchmark's network: one-way distance 1 ms plus up to 0.1 ms of jitter, `loss` per
/// (datagram, receiver), no bandwidth limit.
fn lan(loss: f64) -> NetConfig {
    NetConfig {
        loss,
        delay: Duration::from_millis(1),
        jitter: Duration::from_micros(100),
        duplicate: 0.0,
        ..NetConfig::default()
    }
}

fn run(nodes: usize, loss: f64, seed: u64) -> Row {
    let net = lan(loss);
    let cfg = node_config(&net);
    let wall = Instant::now();
    let mut sim = Sim::new(nodes, seed, net.clone(), cfg);
    sim.run_for(Duration::from_millis(300));
    let before = sim.total_stats();
    let datagrams_before = sim.traffic.datagrams;
    sim.record_recovery();
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    for k in 0..MESSAGES {
        let from = rng.random_range(0..nodes);
        sim.send(from, &format!("benchmark message {k:04} with some text to make it ~100 bytes long, as chat lines are."));
        sim.run_for(Duration::from_millis(2));
    }
    sim.run_until_delivered(Duration::from_secs(60));
    let after = sim.total_stats();
    let delays = sim
        .recovery_delays()
        .iter()
        .map(|d| d.as_secs_f64() / net.delay.as_secs_f64())
        .collect();
    Row {
        wanted: (MESSAGES * (nodes - 1)) as u64,
        delivered: after.delivered - before.delivered,
        lost_packets: sim.traffic.lost_packets,
        receiver_losses: sim.traffic.receiver_losses,
        requests: after.requests_sent - before.requests_sent,
        repairs: after.repairs_sent - before.repairs_sent,
        delays,
        datagrams: sim.traffic.datagrams - datagrams_before,
        sim_ms: wall.elapsed().as_millis(),
    }
}

/// One sender writes `messages` at once (as fast as flow control lets it) to `nodes - 1`
/// receivers; the same network as the table's cells. Returns the row and the virtual seconds
/// from the first message to the last delivery.
fn run_bulk(nodes: usize, loss: f64, seed: u64, messages: usize) -> (Row, f64) {
    let net = lan(loss);
    let wall = Instant::now();
    let mut sim = Sim::new(nodes, seed, net.clone(), node_config(&net));
    sim.keep_messages(false);
    sim.run_for(Duration::from_millis(300));
    let before = sim.total_stats();
    let datagrams_before = sim.traffic.datagrams;
    let start = sim.elapsed();
    sim.send_bulk(
        0,
        (0..messages).map(|k| format!("{:<100}", format!("bulk message {k:05}"))),
    );
    sim.run_until_sent_and_delivered(Duration::from_secs(120));
    let took = (sim.elapsed() - start).as_secs_f64();
    let after = sim.total_stats();
    let row = Row {
        wanted: (messages * (nodes - 1)) as u64,
        delivered: after.delivered - before.delivered,
        lost_packets: sim.traffic.lost_packets,
        receiver_losses: sim.traffic.receiver_losses,
        requests: after.requests_sent - before.requests_sent,
        repairs: after.repairs_sent - before.repairs_sent,
        delays: Vec::new(),
        datagrams: sim.traffic.datagrams - datagrams_before,
        sim_ms: wall.elapsed().as_millis(),
    };
    (row, took)
}

/// The table's cells again, with one sender writing a bulk of messages at once.
fn bulk_table(nodes: &[usize], losses: &[f64], messages: usize) {
    println!();
    println!(
        "bulk: node 0 writes {messages} messages of 100 bytes at once to the others (seed {}); \
         virtual s is from the first message to the last delivery",
        SEEDS[0]
    );
    println!(
        "{:>5} {:>5} {:>9} {:>7} {:>9} {:>8} {:>8} {:>9} {:>9} {:>10} {:>9} {:>7}",
        "nodes",
        "loss",
        "delivery",
        "losses",
        "rcv-loss",
        "req/loss",
        "rep/loss",
        "req/rloss",
        "rep/rloss",
        "virtual s",
        "msg/s",
        "wall ms"
    );
    for &n in nodes {
        for &l in losses {
            let (r, took) = run_bulk(n, l, SEEDS[0], messages);
            println!(
                "{} {:>10.2} {:>9.0} {:>7}",
                r.columns(n, l),
                took,
                messages as f64 / took,
                r.sim_ms
            );
        }
    }
}

fn codec() {
    let packet = Packet {
        lobby: LobbyId(0x1234_5678_9abc_def0),
        body: Body::Data(Data {
            source: PeerId(0x0fed_cba9_8765_4321),
            seq: 123_456,
            msg_id: MsgId(0xdead_beef_cafe_f00d),
            sent_at: 1_800_000_000_000,
            nick: "ada".into(),
            frag_index: 0,
            frag_count: 1,
            body: vec![b'x'; 100],
        }),
    };
    let bytes = packet.to_bytes();
    let n = 500_000;
    let mut out = Vec::with_capacity(2048);

    let t = Instant::now();
    for _ in 0..n {
        out.clear();
        out.extend_from_slice(black_box(&bytes));
        black_box(&out);
    }
    let copy = n as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    for _ in 0..n {
        out.clear();
        black_box(&packet).encode_into(&mut out);
        black_box(&out);
    }
    let enc = n as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    for _ in 0..n {
        for p in wire::decode_datagram(black_box(&bytes)) {
            black_box(p.unwrap());
        }
    }
    let dec = n as f64 / t.elapsed().as_secs_f64();

    println!();
    println!(
        "codec, one data packet with a 100-byte body ({} bytes encoded):",
        bytes.len()
    );
    println!("  baseline copy  {:>12.0} packets/s", copy);
    println!(
        "  encode         {:>12.0} packets/s  ({:.3} of copy)",
        enc,
        enc / copy
    );
    println!(
        "  decode         {:>12.0} packets/s  ({:.3} of copy)",
        dec,
        dec / copy
    );
}

/// Signing costs of revision 1.3 (PROTOCOL.md 4.12): a full bundle (seven 100-byte data
/// packets: what fits a 1,200-byte datagram with the key and signature) sealed, verified, and
/// opened (verified and decoded), against decoding the same packets unsigned.
fn signing(quick: bool) {
    use ed25519_dalek::SigningKey;
    use lobbycast::proto::signing;
    let key = SigningKey::from_bytes(&[7; 32]);
    let me = signing::peer_id_of(&key.verifying_key().to_bytes());
    let lobby = LobbyId(0x1234_5678_9abc_def0);
    const PER_BUNDLE: u64 = 7;
    let packets: Vec<u8> = (0..PER_BUNDLE)
        .flat_map(|seq| {
            Packet {
                lobby,
                body: Body::Data(Data {
                    source: me,
                    seq,
                    msg_id: MsgId(seq + 1),
                    sent_at: 1_800_000_000_000,
                    nick: "ada".into(),
                    frag_index: 0,
                    frag_count: 1,
                    body: vec![b'x'; 100],
                }),
            }
            .to_bytes()
        })
        .collect();
    let n = if quick { 200 } else { 5_000 };
    let per_s = |t: Instant| n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..n {
        for p in wire::decode_datagram(black_box(&packets)) {
            black_box(p.unwrap());
        }
    }
    let plain = per_s(t);
    let t = Instant::now();
    let mut sealed = None;
    for _ in 0..n {
        sealed = Some(signing::seal(&key, lobby, black_box(packets.clone())));
    }
    let seal = per_s(t);
    let b = sealed.expect("sealed");
    let t = Instant::now();
    for _ in 0..n {
        assert!(signing::verify(black_box(&b)).is_ok());
    }
    let verify = per_s(t);
    let t = Instant::now();
    for _ in 0..n {
        black_box(signing::open(black_box(&b)).unwrap());
    }
    let open = per_s(t);
    println!();
    println!(
        "signing (revision 1.3), one bundle of {PER_BUNDLE} 100-byte data packets ({} bytes):",
        b.to_bytes().len()
    );
    println!("  decode unsigned {plain:>10.0} bundles/s");
    for (what, rate) in [("seal", seal), ("verify", verify), ("open", open)] {
        println!(
            "  {what:<15} {rate:>10.0} bundles/s  ({:.3} of unsigned decode; {:.0} messages/s)",
            rate / plain,
            rate * PER_BUNDLE as f64
        );
    }
}

/// Messages per second through two cores in memory: one node sends, one receives every
/// datagram, both drained as the runtime would. The baseline moves the same datagrams
/// through a copy only.
fn core_throughput() {
    use lobbycast::proto::{Config, Event, Lobby, Node, SendError, SigningKey};
    use std::net::SocketAddr;
    let n = 200_000;
    let text = "x".repeat(100);
    let t0 = Instant::now();
    let lobby = Lobby::new("bench").unwrap();
    let mut a = Node::new(
        Config::default(),
        SigningKey::from_bytes(&[1; 32]),
        "a",
        t0,
        1_800_000_000_000,
        1,
    )
    .unwrap();
    let mut b = Node::new(
        Config::default(),
        SigningKey::from_bytes(&[2; 32]),
        "b",
        t0,
        1_800_000_000_000,
        2,
    )
    .unwrap();
    a.join(t0, &lobby, 0);
    b.join(t0, &lobby, 0);
    let from = SocketAddr::from(([127, 0, 0, 1], 47110));
    let mut datagrams = Vec::new();
    let mut delivered = 0usize;
    let mut now = t0;
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        now += Duration::from_micros(10);
        for _ in 0..100.min(n - sent) {
            match a.send(now, lobby.id, &text) {
                Ok(_) => sent += 1,
                // Flow control: b has not reported yet. Its report is due after the report
                // delay: move virtual time there and let b answer, as the runtime would.
                Err(SendError::WindowFull) => {
                    if let Some(t) = b.poll_timeout() {
                        now = now.max(t);
                    }
                    b.handle_timeout(now);
                    a.handle_timeout(now);
                    break;
                }
                Err(e) => panic!("send failed: {e}"),
            }
        }
        while let Some(t) = a.poll_transmit() {
            datagrams.push(t.payload);
        }
        for d in datagrams.drain(..) {
            b.handle_datagram(now, Path::Multicast(from), &d);
        }
        while let Some(e) = b.poll_event() {
            delivered += usize::from(matches!(e, Event::Message(_)));
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_datagram(now, Path::Multicast(from), &t.payload);
        }
        while a.poll_event().is_some() {}
    }
    let rate = delivered as f64 / start.elapsed().as_secs_f64();
    assert_eq!(delivered, n, "every message delivered");
    println!();
    println!("core in memory, {n} messages of 100 bytes, sender and receiver on one thread:");
    println!("  send + receive {rate:>12.0} messages/s");
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too: keep that quick.
    let quick = std::env::args().all(|a| a != "--bench");
    // SRM_NODES=50 SRM_LOSS=0.05 picks one cell, for tuning.
    fn env<T: std::str::FromStr>(k: &str) -> Option<T> {
        std::env::var(k).ok()?.parse().ok()
    }
    let nodes: Vec<usize> = match env("SRM_NODES") {
        Some(n) => vec![n],
        None if quick => vec![10],
        None => vec![10, 50, 200],
    };
    let losses: Vec<f64> = match env("SRM_LOSS") {
        Some(l) => vec![l],
        None if quick => vec![0.05],
        None => vec![0.01, 0.05, 0.20],
    };
    println!(
        "SRM over the simulator: {MESSAGES} messages from random senders, one-way distance \
         d = 1 ms (+0..0.1 ms jitter), timer floor = d; each cell sums seeds {SEEDS:?}."
    );
    println!(
        "A loss = an original data packet that at least one receiver missed; a receiver loss \
         = one (packet, receiver) drop."
    );
    println!(
        "{:>5} {:>5} {:>9} {:>7} {:>9} {:>8} {:>8} {:>9} {:>9} {:>7} {:>6} {:>6} {:>9} {:>7}",
        "nodes",
        "loss",
        "delivery",
        "losses",
        "rcv-loss",
        "req/loss",
        "rep/loss",
        "req/rloss",
        "rep/rloss",
        "mean(d)",
        "p50(d)",
        "p99(d)",
        "dgram/msg",
        "wall ms"
    );
    for &n in &nodes {
        for &l in &losses {
            let mut r = Row::default();
            for seed in SEEDS {
                r.add(run(n, l, seed));
            }
            let per = |x: u64, y: u64| x as f64 / y.max(1) as f64;
            let mean = r.delays.iter().sum::<f64>() / r.delays.len().max(1) as f64;
            let (p50, p99) = (r.quantile(0.5), r.quantile(0.99));
            println!(
                "{} {:>7.2} {:>6.2} {:>6.2} {:>9.1} {:>7}",
                r.columns(n, l),
                mean,
                p50,
                p99,
                per(r.datagrams, (MESSAGES * SEEDS.len()) as u64),
                r.sim_ms
            );
        }
    }
    // 200 nodes at 20,000 messages takes minutes of wall time: only when asked for.
    let bulk_nodes: Vec<usize> = nodes
        .iter()
        .copied()
        .filter(|&n| n <= 50 || env::<u8>("SRM_BULK_200") == Some(1))
        .collect();
    bulk_table(
        &bulk_nodes,
        &losses,
        if quick {
            2_000
        } else {
            env("SRM_BULK").unwrap_or(20_000)
        },
    );
    codec();
    signing(quick);
    core_throughput();
}
