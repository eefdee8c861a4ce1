//! A real three-node RabbitMQ cluster on this machine (the second and third
//! nodes joined to the first with `rabbitmqctl join_cluster`), as in the
//! RabbitMQ cluster failover chapter: kelp re-declares a classic queue that
//! died with its node on a survivor, and a quorum queue keeps every
//! confirmed message through the loss of one node while a producer and a
//! consumer keep running.

use std::collections::BTreeSet;
use std::time::Duration;

use kelp::{Connection, Event, Exchange, FailoverStrategy, Queue};
use kelp_test_support::{next_matching, RabbitCluster, RabbitNodeOptions, eventually};


const PATIENCE: Duration = Duration::from_secs(90);
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_loses_a_node_and_kelp_carries_on() {
    let cluster = RabbitCluster::start_with_async(3, RabbitNodeOptions::default()).await.unwrap();
    assert_eq!(cluster.running_nodes().unwrap().len(), 3, "{}", cluster.cluster_status().unwrap());
    let urls = cluster.urls();
    let all = urls.join(";");

    // ── A classic queue whose home is node 1 ──────────────────────────────
    let consumer_conn = Connection::builder(all.clone())
        .failover_strategy(FailoverStrategy::PriorityOrder)
        .build()
        .unwrap();
    let mut events = consumer_conn.events();
    let exchange = Exchange::topic("orders");
    // Transient: RabbitMQ drops it when its node dies, so it can be
    // declared again on a survivor (a durable one would wait for its node).
    let classic = Queue::new("orders.audit").durable(false).exchange(exchange.clone()).routing_key("order.#");
    let mut audit = consumer_conn.consumer([classic.clone()]).build().await.unwrap();
    assert_eq!(consumer_conn.current_url().port(), Some(cluster.node(0).amqp_port()));

    // ── A quorum queue, replicated on the three nodes ─────────────────────
    let quorum = Queue::new("payments").argument("x-queue-type", "quorum");
    let quorum_conn = Connection::builder(all.clone())
        .failover_strategy(FailoverStrategy::PriorityOrder)
        .build()
        .unwrap();
    let mut payments = quorum_conn.consumer([quorum.clone()]).prefetch_count(50).build().await.unwrap();
    let consuming = tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        while seen.len() < 2_000 {
            let next = tokio::time::timeout(PATIENCE, payments.next()).await;
            let message = next.expect("payments keep coming").expect("the stream goes on").expect("a message");
            seen.insert(message.decode::<u32>().expect("a number"));
            let _ = message.ack().await; // a stale ack after the failover is fine: redelivered
        }
        seen
    });
    let producer_conn = Connection::builder(all.clone())
        .failover_strategy(FailoverStrategy::PriorityOrder)
        .build()
        .unwrap();
    let producing = tokio::spawn({
        let producer_conn = producer_conn.clone();
        async move {
            // While the quorum queue elects a new leader the broker nacks
            // publishes: not taken, so safe to publish again.
            let producer = producer_conn
                .producer()
                .routing_key("payments")
                .retry_nacked(true)
                .build()
                .await
                .unwrap();
            for n in 0..2_000u32 {
                producer.publish(&n).send().await.unwrap_or_else(|e| panic!("payment {n}: {e}"));
            }
        }
    });

    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.node(0).kill();

    // The classic queue comes back on a survivor, bound as before.
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;
    assert_ne!(consumer_conn.current_url().port(), Some(cluster.node(0).amqp_port()));
    let other = Connection::new(&urls[2]).unwrap();
    other
        .producer()
        .exchange(exchange)
        .build()
        .await
        .unwrap()
        .publish("order 42 shipped")
        .routing_key("order.shipped")
        .mandatory(true)
        .send()
        .await
        .unwrap();
    let m = tokio::time::timeout(PATIENCE, audit.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "order 42 shipped");
    m.ack().await.unwrap();

    // Every confirmed payment reaches the consumer.
    tokio::time::timeout(PATIENCE, producing).await.unwrap().unwrap();
    let seen = tokio::time::timeout(PATIENCE, consuming).await.unwrap().unwrap();
    assert_eq!(seen, (0..2_000).collect::<BTreeSet<u32>>());
}

/// Which node of the cluster holds the connection named `name`
/// (`list_connections` is cluster-wide; the pid says which node).
fn node_holding(cluster: &RabbitCluster, name: &str) -> Option<usize> {
    let needle = format!("{{\"connection_name\",\"{name}\"}}");
    let alive = (0..cluster.nodes().len()).find(|&i| cluster.node(i).is_running())?;
    let listed = cluster
        .node(alive)
        .rabbitmqctl(&["list_connections", "pid", "client_properties", "-q"])
        .ok()?;
    let line = listed.lines().find(|l| l.contains(&needle))?;
    // The pid names its node: <kelp-test-1234@localhost.1795468056.11855.0>
    let pid = line.split('\t').next()?.trim().trim_start_matches('<');
    let (user, rest) = pid.split_once('@')?;
    let host = rest.split('.').next()?;
    let node = format!("{user}@{host}");
    (0..cluster.nodes().len()).find(|&i| cluster.node(i).node_name() == node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_kelp_recovers_through_the_one_address() {
    let cluster = RabbitCluster::start_with_async(3, RabbitNodeOptions::default()).await.unwrap();
    let backends: Vec<_> = cluster.nodes().iter().map(|n| n.addr()).collect();
    let proxy = kelp_test_support::HaProxy::start(&backends).unwrap();
    let name = kelp_test_support::unique_name("behind-haproxy");
    let conn = Connection::builder(proxy.url())
        .connection_name(name.clone())
        .build()
        .unwrap();
    let mut events = conn.events();
    let exchange = Exchange::direct("jobs");
    let queue = Queue::new("jobs.haproxy").durable(false).exchange(exchange.clone()).routing_key("job");
    let mut consumer = conn.consumer([queue]).build().await.unwrap();
    let producer = conn.producer().exchange(exchange).routing_key("job").build().await.unwrap();
    producer.publish("first").send().await.unwrap();
    let m = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "first");
    m.ack().await.unwrap();

    let holder = eventually("a node lists the connection", PATIENCE, async || node_holding(&cluster, &name)).await;
    cluster.node(holder).kill();
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;
    let now = node_holding(&cluster, &name).expect("reconnected through the proxy");
    assert_ne!(now, holder, "the proxy sent kelp to a live node");
    producer.publish("second").send().await.unwrap();
    let m = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "second");
    m.ack().await.unwrap();
}
