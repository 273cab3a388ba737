//! The flooding benchmark (issue 10): transmissions per delivered message on random friend
//! graphs, where no multicast reaches anyone, against the spanning-tree minimum, the "dumb
//! approach" (each writer sends a copy to every member) and multicast.
//!
//! `cargo bench --bench flood` prints, for 10/50/200 nodes on random connected friend graphs
//! of mean degree 6, at 0 % and 10 % loss: the delivery ratio; the data packets sent by
//! unicast per message by the flood as built (pushes, forwards, catch-up and repairs), and
//! its ratio to the spanning-tree minimum N − 1; all datagrams per message (sessions, hellos
//! and heartbeats included); the dumb approach with per-copy acknowledgements and retries
//! (simulated here only, as the baseline); and multicast on one segment (the same core,
//! friends none). `FLOOD_NODES=10,50` and `FLOOD_MESSAGES=N` narrow it.

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use sim::{Sim, lossy, node_config};

/// Mean friend count per node.
const DEGREE: usize = 6;

/// A random connected graph: a random tree, then random extra edges up to `n × degree / 2`.
fn friend_graph(n: usize, degree: usize, seed: u64) -> Vec<(usize, usize)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut edges = Vec::new();
    let mut has = std::collections::HashSet::new();
    for i in 1..n {
        let j = rng.random_range(0..i);
        edges.push((j, i));
        has.insert((j, i));
    }
    let want = n * degree / 2;
    while edges.len() < want.max(n - 1) {
        let a = rng.random_range(0..n);
        let b = rng.random_range(0..n);
        let e = (a.min(b), a.max(b));
        if a != b && has.insert(e) {
            edges.push(e);
        }
    }
    edges
}

/// `messages` messages from writers drawn at random by `seed`, 20 ms apart.
fn write_from_random_nodes(sim: &mut Sim, messages: usize, seed: u64) {
    let n = sim.len();
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    for k in 0..messages {
        let w = rng.random_range(0..n);
        sim.send(w, &format!("message {k} of the benchmark from {w}"));
        sim.run_for(Duration::from_millis(20));
    }
}

struct Cell {
    delivered: f64,
    data_per_msg: f64,
    all_per_msg: f64,
}

/// Every node in a friend graph with multicast off; `messages` from random writers.
fn flood(n: usize, loss: f64, messages: usize, seed: u64) -> Cell {
    let net = lossy(loss);
    let cfg = node_config(&net);
    let mut sim = Sim::new(n, seed, net, cfg);
    for i in 0..n {
        sim.set_segment(i, None);
        sim.node_mut(i).set_multicast(false);
    }
    for (a, b) in friend_graph(n, DEGREE, seed) {
        sim.befriend(a, b);
    }
    sim.keep_messages(false);
    // Links come up (a second per lost hello) and friends learn each other's lobbies.
    sim.run_for(Duration::from_secs(8));
    let before = sim.total_stats();
    let t0 = sim.traffic.clone();
    write_from_random_nodes(&mut sim, messages, seed);
    let done = sim.run_until_delivered(Duration::from_secs(120));
    let after = sim.total_stats();
    let wanted = (messages * (n - 1)) as f64;
    let delivered = (after.delivered - before.delivered) as f64;
    let data = (after.forwarded - before.forwarded) + (after.repairs_sent - before.repairs_sent);
    let all = sim.traffic.datagrams - t0.datagrams;
    if !done {
        eprintln!(
            "  (not complete after 120 s: {})",
            sim.missing_report().lines().count()
        );
        if std::env::var_os("FLOOD_DEBUG").is_some() {
            eprintln!("{:?}", after);
            eprintln!(
                "{}",
                sim.missing_report()
                    .lines()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
    Cell {
        delivered: delivered / wanted,
        data_per_msg: data as f64 / messages as f64,
        all_per_msg: all as f64 / messages as f64,
    }
}

/// The same nodes on one multicast segment, no friends: data packets (originals and
/// repairs) per message.
fn multicast(n: usize, loss: f64, messages: usize, seed: u64) -> Cell {
    let net = lossy(loss);
    let cfg = node_config(&net);
    let mut sim = Sim::new(n, seed, net, cfg);
    sim.keep_messages(false);
    sim.run_for(Duration::from_secs(1));
    let before = sim.total_stats();
    let t0 = sim.traffic.clone();
    write_from_random_nodes(&mut sim, messages, seed);
    sim.run_until_delivered(Duration::from_secs(120));
    let after = sim.total_stats();
    let wanted = (messages * (n - 1)) as f64;
    let data = (after.data_sent - before.data_sent) + (after.repairs_sent - before.repairs_sent);
    Cell {
        delivered: (after.delivered - before.delivered) as f64 / wanted,
        data_per_msg: data as f64 / messages as f64,
        all_per_msg: (sim.traffic.datagrams - t0.datagrams) as f64 / messages as f64,
    }
}

/// The dumb approach: the writer sends each of the N − 1 members its own copy and resends it
/// until that member's acknowledgement arrives (both cross a link with loss `loss`).
/// Transmissions per message, data and acknowledgements counted alike.
fn dumb(n: usize, loss: f64, messages: usize, seed: u64) -> f64 {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut tx = 0u64;
    for _ in 0..messages {
        for _ in 1..n {
            loop {
                tx += 1;
                if rng.random_bool(loss) {
                    continue; // the copy was lost: resent after a timeout
                }
                tx += 1; // the acknowledgement
                if !rng.random_bool(loss) {
                    break;
                }
            }
        }
    }
    tx as f64 / messages as f64
}

fn main() {
    let nodes: Vec<usize> = std::env::var("FLOOD_NODES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 50, 200]);
    let messages: usize = std::env::var("FLOOD_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    println!(
        "flooding between friends, random connected friend graphs of mean degree {DEGREE}, \
         no multicast; {messages} messages from random writers, 20 ms apart"
    );
    println!(
        "{:>5} {:>5} {:>9} {:>11} {:>9} {:>10} {:>9} {:>10} {:>11}",
        "nodes",
        "loss",
        "delivered",
        "flood data",
        "/ (N-1)",
        "flood all",
        "dumb",
        "multicast",
        "mcast all"
    );
    for &n in &nodes {
        for loss in [0.0, 0.10] {
            let seed = 7 + n as u64;
            let f = flood(n, loss, messages, seed);
            let m = multicast(n, loss, messages, seed);
            let d = dumb(n, loss, messages, seed);
            println!(
                "{:>5} {:>4.0}% {:>8.2}% {:>11.1} {:>9.2} {:>10.1} {:>9.1} {:>10.2} {:>11.1}",
                n,
                loss * 100.0,
                f.delivered * 100.0,
                f.data_per_msg,
                f.data_per_msg / (n - 1) as f64,
                f.all_per_msg,
                d,
                m.data_per_msg,
                m.all_per_msg
            );
            if m.delivered < 1.0 {
                println!("      (multicast delivered {:.2}%)", m.delivered * 100.0);
            }
        }
    }
    println!(
        "flood data: unicast data packets per message (pushes, forwards, catch-up, repairs); \
         / (N-1): against the spanning-tree minimum; flood all: every datagram per message, \
         sessions, hellos and heartbeats included; dumb: a copy per member, acknowledged and \
         resent until acknowledged; multicast: data and repair packets per message on one \
         segment, and every datagram"
    );
}
