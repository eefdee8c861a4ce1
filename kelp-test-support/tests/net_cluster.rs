//! NetCluster self-tests: real RabbitMQ clusters whose nodes live in network
//! namespaces, with real faults between them (nft rules, htb, signals).
//!
//! Three clusters of 3 nodes (9 boots, ~4-10 s of CPU each; boots are
//! serialised by the library's boot lock, so the tests may run in parallel
//! threads). `net_ticktime` is 10 s, so a partition is noticed in ~10-20 s.
//! Nothing here asserts wall-clock times: the bounds given to
//! `eventually_blocking` only turn a hang into a failure, and the times
//! printed (`--nocapture`) are there to read.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use kelp_test_support::{
    NetCluster, NetClusterOptions, PartitionHandling, amqp_probe, eventually_blocking, reap_orphans,
};

/// Generous bound for anything that waits on RabbitMQ noticing a fault.
const NOTICE: Duration = Duration::from_secs(90);
/// Bound for a cluster to become whole again.
const WHOLE: Duration = Duration::from_secs(120);

fn start(handling: PartitionHandling) -> NetCluster {
    NetClusterOptions::new(3)
        .partition_handling(handling)
        .net_ticktime(10)
        .start()
        .expect("the cluster starts")
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tc(args: &[&str]) -> String {
    let out = Command::new("tc").args(args).output().expect("tc runs");
    assert!(
        out.status.success(),
        "tc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn netns_list() -> Vec<String> {
    ip(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .expect("ip runs")
        .status
        .success()
}

/// A connection attempt from the root namespace.
fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&addr, Duration::from_secs(3))
}

fn probe(addr: SocketAddr) -> kelp_test_support::Result<()> {
    amqp_probe(addr, Duration::from_secs(5))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Every node sees the whole cluster running, with no partition.
fn assert_whole(c: &NetCluster) {
    let all = sorted(c.node_names());
    for i in 0..c.size() {
        let v = c.view(i).expect("node answers cluster_status");
        assert_eq!(v.running_nodes, all, "node {i}");
        assert!(v.partitions.is_empty(), "node {i}: {:?}", v.partitions);
    }
}

#[test]
fn a_cluster_in_namespaces_is_reached_through_its_client_links_and_leaves_nothing_behind() {
    let c = start(PartitionHandling::Ignore);
    let names = c.node_names();
    let subnet = c.bridge_ip().octets();
    assert_eq!(subnet[..2], [10, 77]);
    for (i, name) in names.iter().enumerate() {
        let host = format!("10.77.{}.{}", subnet[2], i + 2);
        assert_eq!(*name, format!("kelp@{host}"));
        assert_eq!(c.url(i), format!("amqp://guest:guest@{host}:5672//"));
        assert_eq!(c.dist_addr(i), format!("{host}:25672").parse().unwrap());
    }
    assert_eq!(c.urls().len(), 3);
    let namespaces: Vec<String> = (0..3).map(|i| c.netns(i).to_string()).collect();
    let links = c.links();
    assert_eq!(links.len(), 4, "a bridge and three veths: {links:?}");
    let listed = netns_list();
    for ns in &namespaces {
        assert!(listed.contains(ns), "{ns} not in {listed:?}");
    }

    // Whole, and AMQP answers on every node from the root namespace.
    assert_whole(&c);
    for (i, name) in names.iter().enumerate() {
        probe(c.addr(i)).unwrap_or_else(|e| panic!("node {i}: {e}"));
        let status = c.rabbitmqctl(i, &["status"]).expect("rabbitmqctl status");
        assert!(status.contains(name.as_str()), "{status}");
    }

    // A black hole, not a refusal: connects time out, and an open
    // connection's bytes are held back (no reset) until the link heals.
    let mut open = connect(c.addr(1)).expect("connects before the cut");
    c.cut_client(1).unwrap();
    c.cut_client(1).unwrap(); // twice is the same state
    let e = connect(c.addr(1)).expect_err("a cut link let a connection through");
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    probe(c.addr(0)).expect("node 0's client link is not touched");
    probe(c.addr(2)).expect("node 2's client link is not touched");
    open.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    open.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 11];
    let e = open
        .read(&mut buf)
        .expect_err("an answer came through a cut link");
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );
    assert_eq!(
        c.running_nodes(1).unwrap(),
        sorted(names.clone()),
        "the node-node links stay up"
    );
    c.heal_client(1).unwrap();
    c.heal_client(1).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    open.read_exact(&mut buf)
        .expect("TCP retransmits once healed");
    assert_eq!(buf[7..11], [0, 10, 0, 10], "connection.start");
    probe(c.addr(1)).expect("healed");

    // 100 % loss is a cut, 0 % is healthy; in between, a random drop rule.
    // (Through the _async forms, as a test on a runtime would call them.)
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        c.lossy_client_async(1, 100).await.unwrap();
        let e = connect(c.addr(1)).expect_err("100 % loss let a connection through");
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        c.lossy_client_async(1, 0).await.unwrap();
        probe(c.addr(1)).expect("0 % loss");
        let running = c.run_async(|c| c.running_nodes(1)).await.unwrap();
        assert_eq!(running, sorted(names.clone()));
        let status = c.rabbitmqctl_async(1, &["status"]).await.unwrap();
        assert!(status.contains(names[1].as_str()), "{status}");
    });
    assert!(
        c.rules(1).unwrap().is_empty(),
        "no rules left: {}",
        c.rules(1).unwrap()
    );
    c.lossy_client(1, 30).unwrap();
    let rules = c.rules(1).unwrap();
    assert!(rules.contains("numgen random mod 100 < 30"), "{rules}");
    assert!(c.lossy_client(1, 101).is_err());
    c.heal_client(1).unwrap();

    // Slow: traffic from the root namespace goes through the limited htb
    // class; it still flows.
    c.slow_client(2, 1_000_000).unwrap();
    c.slow_client(2, 1_000_000).unwrap();
    probe(c.addr(2)).expect("a slow link still answers");
    let classes = tc(&["-s", "class", "show", "dev", &links[3]]);
    let limited = classes
        .split("class htb ")
        .find(|s| s.starts_with("1:2 "))
        .unwrap_or_else(|| panic!("no limited class: {classes}"));
    assert!(limited.contains("rate 1Mbit"), "{limited}");
    assert!(
        !limited.contains("Sent 0 bytes"),
        "the probe did not go through it: {limited}"
    );
    let inside = tc(&["-n", c.netns(2), "class", "show", "dev", "eth0"]);
    assert!(
        inside.contains("rate 1Mbit"),
        "the node's side is limited too: {inside}"
    );
    c.heal_client(2).unwrap();
    assert!(!tc(&["qdisc", "show", "dev", &links[3]]).contains("htb"));

    // A memory alarm, and its end.
    let node0_memory = format!("{}:memory", names[0]);
    c.memory_alarm(0, true).unwrap();
    eventually_blocking("node 0 raises a memory alarm", NOTICE, || {
        let alarms = c.view(0).map_err(|e| e.to_string())?.alarms;
        if alarms.contains(&node0_memory) {
            Ok(())
        } else {
            Err(format!("alarms: {alarms:?}"))
        }
    });
    c.memory_alarm(0, false).unwrap();
    eventually_blocking("node 0's memory alarm clears", NOTICE, || {
        c.view(0).map(|v| v.alarms.is_empty())
    });

    // Bad arguments are errors, not panics.
    assert!(c.partition(&[&[0], &[1]]).is_err(), "node 2 in no group");
    assert!(c.partition(&[&[0, 1], &[1, 2]]).is_err(), "node 1 twice");
    assert!(c.partition(&[&[0, 1, 2, 3]]).is_err(), "no node 3");
    assert!(c.ring().is_err(), "a ring of 3 cuts nothing");
    assert!(c.kill(3).is_err());
    assert!(c.cut_link(1, 1).is_err());

    drop(c);
    let listed = netns_list();
    for ns in &namespaces {
        assert!(!listed.contains(ns), "{ns} left behind: {listed:?}");
    }
    for link in &links {
        assert!(!link_exists(link), "link {link} left behind");
    }
}

#[test]
fn node_processes_fail_and_come_back() {
    let c = start(PartitionHandling::Ignore);
    let names = c.node_names();

    // SIGKILL: the port refuses (the namespace's stack answers with a
    // reset), the others see the node go; a restart brings it back.
    let pid = c.node(2).pid().expect("running");
    c.kill(2).unwrap();
    c.kill(2).unwrap();
    assert!(!kelp_test_support::pid_alive(pid));
    let e = connect(c.addr(2)).expect_err("a killed node accepted");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    eventually_blocking("node 0 sees node 2 gone", NOTICE, || {
        c.running_nodes(0).map(|r| !r.contains(&names[2]))
    });
    c.restart(2).unwrap();
    assert_ne!(c.node(2).pid(), Some(pid));
    c.wait_whole(WHOLE).unwrap();

    // SIGSTOP for less than net_ticktime: nothing answered meanwhile, and
    // no partition afterwards.
    c.pause(1).unwrap();
    c.pause(1).unwrap();
    let e = amqp_probe(c.addr(1), Duration::from_millis(1500)).expect_err("a paused node answered");
    assert!(e.message().contains("sent no connection.start"), "{e}");
    c.resume(1).unwrap();
    c.resume(1).unwrap();
    probe(c.addr(1)).expect("resumed");
    c.wait_whole(WHOLE).unwrap();

    // Graceful stop and start, each twice; then a rolling restart.
    c.stop_node(0).unwrap();
    c.stop_node(0).unwrap();
    assert!(c.node(0).pid().is_none());
    let e = connect(c.addr(0)).expect_err("a stopped node accepted");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    c.start_node(0).unwrap();
    c.start_node(0).unwrap();
    c.wait_whole(WHOLE).unwrap();
    let before: Vec<Option<u32>> = c.nodes().iter().map(|n| n.pid()).collect();
    c.rolling_restart(WHOLE).unwrap();
    for (i, old) in before.iter().enumerate() {
        assert_ne!(c.node(i).pid(), *old, "node {i} was restarted");
    }
    assert_whole(&c);
}

#[test]
fn partitions_under_ignore_last_until_the_minority_is_restarted() {
    let c = start(PartitionHandling::Ignore);
    let names = c.node_names();
    let dist = |i| c.dist_addr(i);
    let short = Duration::from_secs(2);

    let t = Instant::now();
    c.partition(&[&[0], &[1, 2]]).unwrap();
    c.partition(&[&[0], &[1, 2]]).unwrap();
    assert_eq!(c.cut_links(), [(0, 1), (0, 2)]);
    // Node 0 is cut off from the others, both ways, on every port.
    let e = c.connect_from(1, dist(0), short).expect_err("1 reached 0");
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    let e = c.connect_from(0, dist(2), short).expect_err("0 reached 2");
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    c.connect_from(1, dist(2), short)
        .expect("1 and 2 stay linked");
    // The test still reaches every node.
    for i in 0..3 {
        probe(c.addr(i)).unwrap_or_else(|e| panic!("node {i}: {e}"));
    }
    // After ~net_ticktime, each side sees only itself running.
    eventually_blocking("the majority sees node 0 gone", NOTICE, || {
        c.running_nodes(1)
            .map(|r| r == sorted(vec![names[1].clone(), names[2].clone()]))
    });
    eprintln!("ignore: the majority saw node 0 go after {:?}", t.elapsed());
    eventually_blocking("node 0 sees only itself", NOTICE, || {
        c.running_nodes(0).map(|r| r == [names[0].clone()])
    });
    eprintln!("ignore: node 0 saw itself alone after {:?}", t.elapsed());
    probe(c.addr(0)).expect("under ignore, the minority keeps serving");

    c.heal().unwrap();
    c.heal().unwrap();
    c.connect_from(1, dist(0), short).expect("healed");
    // RabbitMQ records the partition once the nodes meet again, and keeps
    // it until the minority is restarted.
    let t = Instant::now();
    let restarted = c.recover(WHOLE).unwrap();
    eprintln!(
        "ignore: recover() restarted {restarted:?}, whole after {:?}",
        t.elapsed()
    );
    assert_eq!(restarted, [0], "the minority (node 0) was restarted");
    assert_whole(&c);

    // Non-transitive: 0 and 2 cut apart, 1 sees both.
    let t = Instant::now();
    c.bridge(1).unwrap();
    assert_eq!(c.cut_links(), [(0, 2)]);
    c.connect_from(1, dist(0), short).expect("1 reaches 0");
    c.connect_from(1, dist(2), short).expect("1 reaches 2");
    c.connect_from(0, dist(2), short).expect_err("0 reached 2");
    eventually_blocking("a node drops out of another's view", NOTICE, || {
        (0..3).any(|i| c.running_nodes(i).is_ok_and(|r| r.len() < 3))
    });
    eprintln!("ignore, bridge: a node dropped out after {:?}", t.elapsed());
    for i in 0..3 {
        eprintln!("ignore, bridge: node {i} sees {:?}", c.view(i));
    }
    c.heal().unwrap();
    // Whether RabbitMQ still records this partition once healed varies
    // from run to run; if it does, one node goes.
    let t = Instant::now();
    let restarted = c.recover(WHOLE).unwrap();
    eprintln!(
        "ignore, bridge: recover() restarted {restarted:?}, whole after {:?}",
        t.elapsed()
    );
    assert!(restarted.len() <= 1, "{restarted:?}");
    assert_whole(&c);
}

#[test]
fn partitions_under_pause_minority_pause_the_minority_until_healed() {
    let c = start(PartitionHandling::PauseMinority);
    let names = c.node_names();

    let t = Instant::now();
    c.isolate(0).unwrap();
    assert_eq!(c.cut_links(), [(0, 1), (0, 2)]);
    // The minority stops serving: its AMQP listener closes.
    eventually_blocking("node 0 pauses", NOTICE, || {
        connect(c.addr(0)).err().map(|e| e.kind()) == Some(ErrorKind::ConnectionRefused)
    });
    eprintln!("pause_minority: node 0 paused after {:?}", t.elapsed());
    eventually_blocking("the majority sees node 0 gone", NOTICE, || {
        c.running_nodes(1)
            .map(|r| r == sorted(vec![names[1].clone(), names[2].clone()]))
    });
    probe(c.addr(1)).expect("the majority serves");
    c.heal().unwrap();
    let t = Instant::now();
    // It resumes by itself: nothing restarted.
    assert_eq!(c.recover(WHOLE).unwrap(), Vec::<usize>::new());
    eprintln!("pause_minority: whole {:?} after heal", t.elapsed());
    probe(c.addr(0)).expect("node 0 serves again");
    assert_whole(&c);

    // A non-transitive partition: a node that loses one peer while still
    // seeing another that sees it pauses too ("partial partition").
    let t = Instant::now();
    c.bridge(1).unwrap();
    eventually_blocking("node 0 or node 2 pauses", NOTICE, || {
        [0, 2].iter().any(|&i| connect(c.addr(i)).is_err())
    });
    eprintln!(
        "pause_minority, bridge: paused after {:?}: node 0 {}, node 2 {}",
        t.elapsed(),
        if probe(c.addr(0)).is_ok() {
            "serves"
        } else {
            "paused"
        },
        if probe(c.addr(2)).is_ok() {
            "serves"
        } else {
            "paused"
        },
    );
    probe(c.addr(1)).expect("the bridge node serves");
    c.heal().unwrap();
    let t = Instant::now();
    assert_eq!(c.recover(WHOLE).unwrap(), Vec::<usize>::new());
    eprintln!("pause_minority, bridge: whole {:?} after heal", t.elapsed());
    assert_whole(&c);
}

/// This process's start time, as the library marks owners.
fn my_start_time() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[test]
fn the_reaper_deletes_namespaces_and_links_of_dead_owners_only() {
    let mut t = Command::new("true").spawn().unwrap();
    let dead = t.id();
    t.wait().unwrap();
    let me = std::process::id();
    let start = my_start_time();
    let dead_ns = format!("kelp-{dead}-1-zz-0");
    let live_ns = format!("kelp-{me}-{start}-zz-9");
    let dead_link = format!("kb{dead}xzz");
    let live_link = format!("kb{me}xzy");
    ip(&["netns", "add", &dead_ns]);
    ip(&["netns", "add", &live_ns]);
    ip(&["link", "add", &dead_link, "type", "bridge"]);
    ip(&[
        "link",
        "set",
        "dev",
        &dead_link,
        "alias",
        &format!("kelp-test owner={dead}:1"),
    ]);
    ip(&["link", "add", &live_link, "type", "bridge"]);
    ip(&[
        "link",
        "set",
        "dev",
        &live_link,
        "alias",
        &format!("kelp-test owner={me}:{start}"),
    ]);
    // Something left running in the dead owner's namespace (an epmd, say).
    let mut straggler = Command::new("ip")
        .args(["netns", "exec", &dead_ns, "sleep", "300"])
        .spawn()
        .unwrap();
    eventually_blocking(
        "the straggler runs in the namespace",
        Duration::from_secs(10),
        || !ip(&["netns", "pids", &dead_ns]).trim().is_empty(),
    );

    assert!(reap_orphans() >= 2);
    let listed = netns_list();
    assert!(!listed.contains(&dead_ns), "{listed:?}");
    assert!(!link_exists(&dead_link));
    assert!(
        !straggler.wait().unwrap().success(),
        "the straggler was killed"
    );
    assert!(
        listed.contains(&live_ns),
        "a live owner's namespace was deleted"
    );
    assert!(link_exists(&live_link), "a live owner's link was deleted");
    ip(&["netns", "del", &live_ns]);
    ip(&["link", "del", "dev", &live_link]);
}
