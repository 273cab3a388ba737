//! Hosts in network namespaces on one Linux bridge, each dropping 10 % of incoming UDP at
//! random with nftables: every host delivers every other host's messages exactly once.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). Without them it prints "skipped: ..."
//! and passes, except under CI=true, where it fails instead. The namespaces have a prefix of
//! this process's id, use only 10.99.0.0/24 and link-local IPv6, and are always removed
//! (tests/common/lan.rs).

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::lan::{self, Lan};
use common::{DEADLINE, Proc, assert_exactly_once, check_message_fields, has_all};

/// Messages each host sends.
const PER_HOST: usize = 20;

/// Skips the test with a clear line, or fails it under CI.
fn skip_unless_possible() -> bool {
    match lan::can_run() {
        Ok(()) => false,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but the namespace test cannot run: {why}")
        }
        Err(why) => {
            println!("skipped: {why}");
            true
        }
    }
}

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
