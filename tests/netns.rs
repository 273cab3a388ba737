//! Hosts in network namespaces on one Linux bridge, each dropping 10 % of incoming UDP at
//! random with nftables: every host delivers every other host's messages exactly once.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables). Without them it prints "skipped: ..."
//! and passes, except under CI=true, where it fails instead. The namespaces have a prefix of
//! this process's id, use only 10.99.0.0/24 and link-local IPv6, and are always removed.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{DEADLINE, Proc, assert_exactly_once, bin, check_message_fields, has_all};

/// Messages each host sends.
const PER_HOST: usize = 20;

/// Whether the test can run here; `Err` says why not.
fn can_run() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("needs root for network namespaces".into());
    }
    for tool in ["ip", "nft"] {
        let ok = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!(
                "`{tool}` not found (install iproute2 and nftables)"
            ));
        }
    }
    Ok(())
}

/// Skips the test with a clear line, or fails it under CI.
fn skip_unless_possible() -> bool {
    match can_run() {
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

fn ip(args: &[&str]) {
    run("ip", args, None);
}

fn run(cmd: &str, args: &[&str], stdin: Option<&str>) {
    let mut c = Command::new(cmd);
    c.args(args).stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = c.spawn().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    if let Some(s) = stdin {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(s.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        out.status
    );
}

/// Namespaces for a bridge and `hosts` hosts; removed on drop, even when the test panics.
struct Lan {
    prefix: String,
    hosts: usize,
}

impl Lan {
    fn new(tag: &str, hosts: usize, loss_percent: u32) -> Lan {
        let prefix = format!("lbc{}{tag}", std::process::id());
        let lan = Lan { prefix, hosts };
        let br = lan.bridge_ns();
        ip(&["netns", "add", &br]);
        ip(&["-n", &br, "link", "set", "lo", "up"]);
        // Snooping off: with no IGMP/MLD querier on this LAN, the bridge simply floods.
        ip(&[
            "-n",
            &br,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        for i in 0..hosts {
            let ns = lan.host_ns(i);
            ip(&["netns", "add", &ns]);
            // No duplicate address detection: link-local IPv6 is usable at once.
            for knob in ["default", "all"] {
                run(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        &ns,
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{knob}.accept_dad=0"),
                    ],
                    None,
                );
            }
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let port = format!("p{i}");
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &br,
            ]);
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.99.0.{}/24", i + 1),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            // A default route inside the LAN, so that the default interface can be chosen;
            // nothing is ever sent to the gateway.
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                "10.99.0.254",
                "dev",
                "eth0",
            ]);
            let rules = format!(
                "table inet lbloss {{\n chain input {{\n  \
                 type filter hook input priority 0; policy accept;\n  \
                 meta l4proto udp numgen random mod 100 < {loss_percent} drop\n }}\n}}\n"
            );
            run(
                "ip",
                &["netns", "exec", &ns, "nft", "-f", "-"],
                Some(&rules),
            );
        }
        lan
    }

    fn bridge_ns(&self) -> String {
        format!("{}-br", self.prefix)
    }

    fn host_ns(&self, i: usize) -> String {
        format!("{}-h{i}", self.prefix)
    }

    /// `lobbycast --pipe` inside host `i`.
    fn node(&self, i: usize, lobby: &str, dir: &Path, extra: &[&str]) -> Proc {
        let mut cmd = Command::new("ip");
        let name = format!("h{i}");
        cmd.args(["netns", "exec", &self.host_ns(i), bin()])
            .args(["--pipe", lobby, "--nick", &name, "--data-dir"])
            .arg(dir.join(&name))
            .args(extra);
        Proc::spawn(&name, cmd)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in (0..self.hosts)
            .map(|i| self.host_ns(i))
            .chain([self.bridge_ns()])
        {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stderr(Stdio::null())
                .status();
        }
    }
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
            lan.node(i, lobby, tmp.path(), &args)
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
    let lan = Lan::new("a", 5, 10);
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
    let lan = Lan::new("b", 3, 10);
    chat(&lan, "netns-v6", |_| {
        vec![
            "--iface".into(),
            "eth0".into(),
            "--family".into(),
            "ipv6".into(),
        ]
    });
}
