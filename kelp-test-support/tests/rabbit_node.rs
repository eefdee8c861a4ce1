//! RabbitNode / RabbitCluster self-tests. They start real RabbitMQ nodes
//! (5 boots in all, ~5-10 s each on a 2-core machine). Boots are serialised
//! by the library's process-wide boot lock, so these tests may run in
//! parallel threads; nothing here asserts wall-clock times.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kelp_test_support::tls::{self, generate_test_pki, probe_amqps};
use kelp_test_support::{
    RabbitCluster, RabbitNode, RabbitNodeOptions, TlsListener, amqp_probe, pid_alive, unique_name,
};

/// Lines of `pgrep -af <pattern>` (empty when nothing matches).
fn pgrep(pattern: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .arg("-af")
        .arg(pattern)
        .output()
        .expect("pgrep runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn assert_gone(name: &str, dir: &Path) {
    let left = pgrep(name);
    assert!(left.is_empty(), "processes left for {name}: {left:#?}");
    assert!(!dir.exists(), "{} not removed", dir.display());
}

fn assert_refused(node_port: u16) {
    let e = TcpStream::connect_timeout(&([127, 0, 0, 1], node_port).into(), Duration::from_secs(5))
        .expect_err("port still accepts connections");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
}

#[test]
fn node_lifecycle_freeze_kill_restart_stop_drop() {
    let node = RabbitNode::start().expect("node starts");
    let name = node.node_name().to_string();
    let port = node.amqp_port();
    let dir = node.dir().to_path_buf();
    assert_eq!(name, format!("kelp-test-{port}@localhost"));
    assert_eq!(node.url(), format!("amqp://guest:guest@127.0.0.1:{port}//"));
    assert!(node.amqps_port().is_none());
    assert_ne!(port, 5672);
    assert_ne!(node.dist_port(), 25672);

    // The PID is the Erlang VM of this node.
    let pid = node.pid().expect("running");
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .replace('\0', " ");
    assert!(cmdline.contains("beam.smp"), "{cmdline}");
    assert!(cmdline.contains(&name), "{cmdline}");
    assert!(
        pgrep(&name)
            .iter()
            .any(|l| l.starts_with(&format!("{pid} "))),
        "pgrep -f finds the VM"
    );
    amqp_probe(node.addr(), Duration::from_secs(10)).expect("AMQP handshake starts");

    // rabbitmqctl talks to this node (not the default one); state to find after restart.
    let status = node.rabbitmqctl(&["status"]).expect("rabbitmqctl status");
    assert!(status.contains(&format!("OS PID: {pid}")), "{status}");
    let vhost = unique_name("kelp-support-vhost");
    node.rabbitmqctl(&["add_vhost", &vhost]).expect("add_vhost");

    // Frozen: TCP still connects (kernel backlog), but no connection.start.
    node.freeze().unwrap();
    assert!(node.is_frozen());
    let e =
        amqp_probe(node.addr(), Duration::from_millis(1500)).expect_err("a frozen node answered");
    assert!(e.message().contains("sent no connection.start"), "{e}");
    node.thaw().unwrap();
    amqp_probe(node.addr(), Duration::from_secs(30)).expect("thawed node answers");

    // Kill: the VM is gone, the port refuses.
    node.kill();
    assert!(!pid_alive(pid));
    assert!(node.pid().is_none());
    assert_refused(port);
    assert!(pgrep(&name).is_empty(), "{:?}", pgrep(&name));

    // Restart: same port, node name and data.
    node.restart().expect("restart");
    let pid2 = node.pid().expect("running again");
    assert_ne!(pid, pid2);
    assert_eq!(node.amqp_port(), port);
    amqp_probe(node.addr(), Duration::from_secs(10)).expect("AMQP after restart");
    let vhosts = node.rabbitmqctl(&["list_vhosts", "--quiet"]).unwrap();
    assert!(
        vhosts.lines().any(|l| l.trim() == vhost),
        "vhost lost across kill+restart: {vhosts}"
    );

    // Graceful stop.
    node.stop().expect("stop");
    assert!(!pid_alive(pid2));
    assert!(node.pid().is_none());
    assert_refused(port);

    drop(node);
    assert_gone(&name, &dir);
}

/// Also exercises the async wrappers (boot on tokio's blocking pool) and
/// dropping a frozen node.
#[tokio::test]
async fn tls_listener_with_generated_pki_and_extra_config() {
    assert!(
        tls::openssl_available(),
        "the openssl command line tool is needed (apt-get install openssl)"
    );
    let pki_dir = std::env::temp_dir().join(unique_name("kelp-test-pki"));
    let pki = generate_test_pki(&pki_dir).expect("PKI");
    for f in [
        &pki.ca_cert,
        &pki.server_cert,
        &pki.server_key,
        &pki.client_cert,
        &pki.client_key,
        &pki.client_p12,
    ] {
        assert!(f.is_file(), "{} missing", f.display());
    }

    let opts = RabbitNodeOptions::default()
        .tls(
            TlsListener::from_pki(&pki)
                .verify_peer(true)
                .fail_if_no_peer_cert(true),
        )
        .config_line("heartbeat = 17");
    // Other tasks keep running while the node boots.
    let ticker = tokio::spawn(async {
        let mut n = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            n += 1;
            if n > 2 {
                return n;
            }
        }
    });
    let node = RabbitNode::start_with_async(opts)
        .await
        .expect("TLS node starts");
    assert!(ticker.await.unwrap() > 2);
    let tls_port = node.amqps_port().expect("TLS port");
    assert_eq!(
        node.amqps_url().unwrap(),
        format!("amqps://guest:guest@localhost:{tls_port}//")
    );
    let (name, dir) = (node.node_name().to_string(), node.dir().to_path_buf());

    // Plain AMQP still there; AMQP over TLS with a client certificate works.
    amqp_probe(node.addr(), Duration::from_secs(10)).unwrap();
    probe_amqps(
        tls_port,
        &pki.ca_cert,
        Some((&pki.client_cert, &pki.client_key)),
        Duration::from_secs(20),
    )
    .expect("AMQPS with client certificate");
    // fail_if_no_peer_cert: no certificate, no AMQP.
    let e = probe_amqps(tls_port, &pki.ca_cert, None, Duration::from_secs(10))
        .expect_err("AMQPS without a client certificate was accepted");
    assert!(e.message().contains("certificate required"), "{e}");

    // The extra config line is in effect.
    let hb = node
        .rabbitmqctl_async(&["eval", "application:get_env(rabbit, heartbeat)."])
        .await
        .unwrap();
    assert_eq!(hb.trim(), "{ok,17}");

    // Dropping a frozen node still cleans up.
    node.freeze().unwrap();
    drop(node);
    assert_gone(&name, &dir);
    std::fs::remove_dir_all(&pki_dir).unwrap();
}

#[test]
fn two_node_cluster() {
    let cluster = RabbitCluster::start(2).expect("cluster starts");
    let names = cluster.node_names();
    assert_eq!(names.len(), 2);
    assert_ne!(cluster.node(0).amqp_port(), cluster.node(1).amqp_port());
    let mut running = cluster.running_nodes().expect("cluster_status");
    running.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(running, expected, "both nodes run in one cluster");
    let status = cluster.cluster_status().unwrap();
    assert!(
        names.iter().all(|n| status.contains(n.as_str())),
        "{status}"
    );
    // Seen the same way from the other node.
    let status1 = cluster.node(1).rabbitmqctl(&["cluster_status"]).unwrap();
    assert!(status1.contains(&names[0]), "{status1}");
    for node in cluster.nodes() {
        amqp_probe(node.addr(), Duration::from_secs(10)).unwrap();
    }
    let dirs: Vec<_> = cluster
        .nodes()
        .iter()
        .map(|n| n.dir().to_path_buf())
        .collect();
    drop(cluster);
    for (n, d) in names.iter().zip(&dirs) {
        assert_gone(n, d);
    }
}
