//! Failover and recovery against real RabbitMQ nodes that the tests start,
//! kill (-9), freeze (SIGSTOP) and restart. Each scenario asserts exact
//! outcomes: which broker is used, that every confirmed message exists,
//! that consumers go on by themselves. Timeouts only turn hangs into
//! failures; nothing asserts how long anything took.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kelp::{Connection, ErrorKind, Event, Exchange, Queue, RetryPolicy};
use kelp_test_support::{next_matching, RabbitNode, eventually, require_rabbitmq, unique_name};

const PATIENCE: Duration = Duration::from_secs(60);
/// The scenarios run one at a time: under the load of two scenarios at
/// once (four RabbitMQ nodes on two cores), kill-and-restart scenarios
/// have now and then found every message the killed node had confirmed
/// missing after its restart (see the issue notes). Until that is
/// understood, they do not share the machine with each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Two fresh RabbitMQ nodes.
async fn two_nodes() -> (RabbitNode, RabbitNode) {
    (RabbitNode::start_async().await.unwrap(), RabbitNode::start_async().await.unwrap())
}

/// A connection to `a;b` that prefers `a` (priority order).
fn prefer_first(a: &RabbitNode, b: &RabbitNode) -> kelp::ConnectionBuilder {
    Connection::builder(format!("{};{}", a.url(), b.url())).failover_strategy(kelp::FailoverStrategy::PriorityOrder)
}

/// Publish `count` messages with ids `<prefix>-<i>`, each confirmed; the ids.
async fn publish_numbered(producer: &kelp::Producer, prefix: &str, count: u32) -> Vec<String> {
    let mut sent = Vec::new();
    for i in 0..count {
        let id = format!("{prefix}-{i}");
        producer.publish(&i).message_id(id.clone()).send().await.unwrap();
        sent.push(id);
    }
    sent
}

/// Every message id in `queue` on the broker at `url`, drained with acks.
async fn drain_ids(url: &str, queue: &Queue) -> Vec<String> {
    let conn = Connection::builder(url).automatic_recovery(false).build().unwrap();
    let channel = conn.default_channel().await.unwrap();
    queue.declare(&channel).await.unwrap();
    let mut ids = Vec::new();
    while let Some(m) = queue.get(&channel, false).await.unwrap() {
        ids.push(m.properties().message_id.as_deref().unwrap_or("").to_owned());
        m.ack().await.unwrap();
    }
    conn.close().await.unwrap();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_url_connects_to_the_second() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let good = require_rabbitmq();
    let conn = Connection::new(&format!("amqp://guest:guest@127.0.0.1:1//;{good}")).unwrap();
    conn.connect().await.unwrap();
    assert!(conn.is_connected());
    assert_eq!(conn.current_url().port(), Some(5672));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_not_retried_and_limits_are_honoured() {
    let _serial = ONE_AT_A_TIME.lock().await;
    require_rabbitmq();
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = attempts.clone();
    let policy = RetryPolicy::default()
        .interval_start(Duration::from_millis(10))
        .on_error(move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
        });
    let bad = Connection::new("amqp://guest:wrong@127.0.0.1:5672//").unwrap();
    let err = bad.connect_with(&policy).await.unwrap_err();
    assert!(err.is_authentication(), "{err}");
    assert_eq!(attempts.load(Ordering::SeqCst), 0, "a refused login is never retried");

    // Nobody listens: max_retries bounds the attempts...
    let down = Connection::new("amqp://guest:guest@127.0.0.1:1//").unwrap();
    let err = down.connect_with(&policy.clone().max_retries(3).no_deadline()).await.unwrap_err();
    assert!(err.is_connection(), "{err}");
    assert!(err.to_string().contains("gave up after 3 retries"), "{err}");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    // ...and so does the deadline.
    let err = down
        .connect_with(&policy.clone().unlimited_retries().deadline(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(err.is_connection(), "{err}");
    assert!(err.to_string().contains("gave up"), "{err}");

    // A publish with everything down fails with a clear error, never hangs.
    let producer_conn = Connection::builder("amqp://guest:guest@127.0.0.1:1//")
        .retry_policy(RetryPolicy::default().deadline(Duration::from_millis(500)))
        .build()
        .unwrap();
    let err = producer_conn.producer().build().await.unwrap_err();
    assert!(err.is_connection(), "{err}");
}

/// Publish `n` messages with ids, all confirmed, while `during` runs.
async fn publish_confirmed(conn: &Connection, queue: &Queue, n: usize) -> Vec<String> {
    let producer = conn
        .producer()
        .routing_key(queue.name.clone())
        .auto_message_id(true)
        .build()
        .await
        .unwrap();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("m-{i}");
        producer
            .publish(&i)
            .message_id(id.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("publish {i} failed: {e}"));
        ids.push(id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_publishing_loses_no_confirmed_message() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (a, b) = two_nodes().await;
    let conn = prefer_first(&a, &b)
        .build()
        .unwrap();
    let mut events = conn.events();
    let queue = Queue::new("orders");
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    // The queue must outlive the kill on a itself (the broker's metadata
    // log is not synced at once); what is tested is kelp's confirms.
    a.sync_metadata_async().await.unwrap();
    assert_eq!(conn.current_url().port(), Some(a.amqp_port()));

    const N: usize = 3_000;
    let publisher = tokio::spawn({
        let conn = conn.clone();
        let queue = queue.clone();
        async move { publish_confirmed(&conn, &queue, N).await }
    });
    // Let some go to A, then kill it hard.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.kill();
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;
    assert_eq!(conn.current_url().port(), Some(b.amqp_port()));
    let sent = tokio::time::timeout(PATIENCE, publisher).await.unwrap().unwrap();
    assert_eq!(sent.len(), N, "every publish was confirmed");

    a.restart_async().await.unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for url in [a.url(), b.url()] {
        for id in drain_ids(&url, &queue).await {
            *seen.entry(id).or_default() += 1;
        }
    }
    let lost: Vec<&String> = sent.iter().filter(|id| !seen.contains_key(*id)).collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("kill -9 failover: {N} confirmed, {} distinct found, {duplicates} duplicates", seen.len());
    assert!(lost.is_empty(), "confirmed messages lost: {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_goes_on_by_itself_on_the_other_node() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (a, b) = two_nodes().await;
    let conn = prefer_first(&a, &b)
        .build()
        .unwrap();
    let mut events = conn.events();
    let exchange = Exchange::topic("events");
    let queue = Queue::new("audit").exchange(exchange.clone()).routing_key("user.*");
    let mut consumer = conn.consumer([queue.clone()]).prefetch_count(10).build().await.unwrap();

    a.kill();
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;

    // Someone else publishes on B, after the failover, through the exchange:
    // routed only because kelp declared exchange, queue and binding there.
    let other = Connection::new(&b.url()).unwrap();
    let producer = other.producer().exchange(exchange.clone()).build().await.unwrap();
    producer.publish("signed up").routing_key("user.signup").mandatory(true).send().await.unwrap();
    let m = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "signed up");
    assert_eq!(m.routing_key(), "user.signup");
    m.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_is_detected_by_heartbeats_and_left() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (a, b) = two_nodes().await;
    let conn = prefer_first(&a, &b)
        .heartbeat(Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    let mut events = conn.events();
    let queue = Queue::new("frozen");
    let mut consumer = conn.consumer([queue.clone()]).build().await.unwrap();
    let producer = conn.producer().routing_key("frozen").build().await.unwrap();
    producer.publish("one").send().await.unwrap();
    let m = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
    m.ack().await.unwrap();

    a.freeze().unwrap();
    let lost = next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::ConnectionLost { .. })).await;
    assert!(lost.to_string().contains("missed heartbeats"), "{lost}");
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;
    assert_eq!(conn.current_url().port(), Some(b.amqp_port()));
    producer.publish("two").send().await.unwrap();
    let m = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "two");
    m.ack().await.unwrap();

    // Thawing A must not bring back a second consumer: A forgets the dead
    // connection, and kelp consumes only on B.
    a.thaw().unwrap();
    eventually("A lists no consumers", PATIENCE, async || {
        let listed = a.rabbitmqctl_async(&["list_consumers", "-q"]).await.unwrap_or_default();
        if listed.lines().all(|l| l.trim().is_empty()) { Ok(()) } else { Err(format!("A still lists consumers: {listed}")) }
    })
    .await;
    producer.publish("three").send().await.unwrap();
    let m = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "three");
    m.ack().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), consumer.next()).await.is_err(),
        "no duplicate delivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_node_restarting_is_recovered_when_it_returns() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let a = RabbitNode::start_async().await.unwrap();
    let conn = Connection::builder(a.url())
        .retry_policy(RetryPolicy::default().deadline(Duration::from_secs(120)))
        .build()
        .unwrap();
    let mut events = conn.events();
    let queue = Queue::new("restart");
    let mut consumer = conn.consumer([queue.clone()]).build().await.unwrap();
    let producer = conn.producer().routing_key("restart").build().await.unwrap();

    a.kill();
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::RecoveryStarted { .. })).await;
    a.restart_async().await.unwrap();
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;
    producer.publish("back").send().await.unwrap();
    let m = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "back");
    m.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_named_queues_are_followed_to_their_new_name() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (a, b) = two_nodes().await;
    let conn = prefer_first(&a, &b)
        .build()
        .unwrap();
    let mut events = conn.events();
    let exchange = Exchange::fanout("broadcast");
    let queue = Queue::server_named().exchange(exchange.clone());
    let mut consumer = conn.consumer([queue]).build().await.unwrap();
    let old = consumer.queues()[0].clone();
    assert!(old.starts_with("amq.gen-"), "{old}");

    a.kill();
    let renamed = next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::QueueRenamed { .. })).await;
    let Event::QueueRenamed { old: was, new } = renamed else { unreachable!() };
    assert_eq!(was, old);
    assert_ne!(new, old);
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;
    assert_eq!(consumer.queues(), [new]);
    let other = Connection::new(&b.url()).unwrap();
    other
        .producer()
        .exchange(exchange)
        .build()
        .await
        .unwrap()
        .publish("hello again")
        .send()
        .await
        .unwrap();
    let m = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "hello again");
    m.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_for_deliveries_of_a_dead_connection_are_stale() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (a, b) = two_nodes().await;
    let conn = prefer_first(&a, &b)
        .build()
        .unwrap();
    let mut events = conn.events();
    let queue = Queue::new(unique_name("stale"));
    let mut consumer = conn.consumer([queue.clone()]).build().await.unwrap();
    conn.producer().routing_key(queue.name.clone()).build().await.unwrap().publish("x").send().await.unwrap();
    let m = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
    a.kill();
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;
    let err = m.ack().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stale, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_keeps_processing_across_two_failovers() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let a = RabbitNode::start_async().await.unwrap();
    let b = RabbitNode::start_async().await.unwrap();
    let c = RabbitNode::start_async().await.unwrap();
    let urls = format!("{};{};{}", a.url(), b.url(), c.url());
    let worker_conn = Connection::builder(urls.clone())
        .failover_strategy(kelp::FailoverStrategy::PriorityOrder)
        .build()
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::<u32>::new()));
    let revived = Arc::new(AtomicU32::new(0));
    let worker = {
        let seen = seen.clone();
        let revived = revived.clone();
        kelp::Worker::builder(&worker_conn)
            .consumer([Queue::new("work")], 20, move |message| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().insert(message.decode::<u32>()?);
                    message.ack().await
                }
            })
            .on_connection_revived(move || {
                revived.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap()
    };
    let stop = worker.stop_handle();
    let running = tokio::spawn(worker.run());

    let producer_conn = Connection::builder(urls)
        .failover_strategy(kelp::FailoverStrategy::PriorityOrder)
        .build()
        .unwrap();
    let producer = producer_conn
        .producer()
        .routing_key("work")
        .build()
        .await
        .unwrap();
    let wait_seen = |upto: u32| {
        let seen = seen.clone();
        async move {
            eventually(&format!("the worker processes 0..{upto}"), PATIENCE, async || {
                (0..upto).all(|n| seen.lock().unwrap().contains(&n))
            })
            .await
        }
    };
    let mut next = 0u32;
    for (phase, node) in [Some(&a), Some(&b), None].into_iter().enumerate() {
        for _ in 0..50 {
            producer.publish(&next).declare(Queue::new("work")).send().await.unwrap();
            next += 1;
        }
        wait_seen(next).await;
        if let Some(node) = node {
            node.kill();
            eprintln!("phase {phase}: killed a node after {next} messages");
        }
    }
    assert!(revived.load(Ordering::SeqCst) >= 2, "on_connection_revived after each failover");
    stop.stop();
    tokio::time::timeout(PATIENCE, running).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_publishes_in_flight_through_kill_9_arrive_at_least_once() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_test_writer().try_init();
    let _serial = ONE_AT_A_TIME.lock().await;
    let (a, b) = two_nodes().await;
    let conn = prefer_first(&a, &b)
        .build()
        .unwrap();
    let queue = Queue::new("inflight");
    let mut events = conn.events();
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    a.sync_metadata_async().await.unwrap();
    // 20 publishers share one channel: up to 20 unconfirmed at any time.
    const PER_TASK: u32 = 150;
    let mut tasks = Vec::new();
    let confirmed_at = Arc::new(std::sync::Mutex::new(HashMap::<String, std::time::Instant>::new()));
    for t in 0..20 {
        let conn = conn.clone();
        let confirmed_at = confirmed_at.clone();
        tasks.push(tokio::spawn(async move {
            let producer = conn.producer().routing_key("inflight").build().await.unwrap();
            let mut sent = Vec::new();
            for i in 0..PER_TASK {
                let id = format!("t{t}-{i}");
                producer.publish(&i).message_id(id.clone()).send().await.unwrap();
                confirmed_at.lock().unwrap().insert(id.clone(), std::time::Instant::now());
                sent.push(id);
            }
            sent
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed_at = std::time::Instant::now();
    a.kill();
    let mut sent = Vec::new();
    for t in tasks {
        sent.extend(tokio::time::timeout(PATIENCE, t).await.unwrap().unwrap());
    }
    a.restart_async().await.unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut on_node: HashMap<String, Vec<&str>> = HashMap::new();
    for (name, url) in [("a", a.url()), ("b", b.url())] {
        for id in drain_ids(&url, &queue).await {
            *seen.entry(id.clone()).or_default() += 1;
            on_node.entry(id).or_default().push(name);
        }
    }
    let lost: Vec<&String> = sent.iter().filter(|id| !seen.contains_key(*id)).collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("in-flight failover: {} confirmed, {} distinct found, {duplicates} duplicates", sent.len(), seen.len());
    if !lost.is_empty() {
        eprintln!("node a's log after its restart:\n{}", a.log_tail(60));
        // What the client saw, and where the neighbours of a lost id ended up.
        while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(10), events.recv()).await {
            eprintln!("event: {event}");
        }
        for id in &lost {
            let at = confirmed_at.lock().unwrap()[*id];
            let rel = if at > killed_at { format!("+{:?}", at - killed_at) } else { format!("-{:?}", killed_at - at) };
            eprintln!("{id} confirmed {rel} from the kill");
            let (task, n) = id.rsplit_once('-').unwrap();
            let n: u32 = n.parse().unwrap();
            let around: Vec<String> =
                (n.saturating_sub(3)..n + 4).map(|i| format!("{task}-{i}: {:?}", on_node.get(&format!("{task}-{i}")))).collect();
            eprintln!("around {id}: {around:?}");
        }
    }
    assert!(lost.is_empty(), "{} confirmed messages lost: {lost:?}", lost.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_waits_for_the_topology_to_be_declared_again() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (a, b) = two_nodes().await;
    let conn = prefer_first(&a, &b)
        .build()
        .unwrap();
    // Many queues recorded before the one published to, so that declaring
    // them again on b takes a while after the connection to b is up.
    let channel = conn.default_channel().await.unwrap();
    for i in 0..1500 {
        Queue::new(format!("pad-{i}")).durable(false).declare(&channel).await.unwrap();
    }
    let queue = Queue::new("late");
    queue.declare(&channel).await.unwrap();
    let mut events = conn.events();
    a.kill();
    // Publish the moment b accepts the connection: these must wait until
    // "late" exists on b, or b confirms and drops them as unroutable.
    let b_port = format!(":{}/", b.addr().port());
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Connected { broker } if broker.contains(&b_port))).await;
    let producer = conn.producer().routing_key("late").build().await.unwrap();
    let sent = publish_numbered(&producer, "late", 50).await;
    let found = drain_ids(&b.url(), &queue).await;
    let lost: Vec<&String> = sent.iter().filter(|id| !found.contains(id)).collect();
    assert!(lost.is_empty(), "{} of {} confirmed messages lost: {lost:?}", lost.len(), sent.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_standby_follows_the_topology_and_takes_over() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (a, b) = two_nodes().await;
    let conn = prefer_first(&a, &b)
        .warm_standby(true)
        .build()
        .unwrap();
    let mut events = conn.events();
    let queue = Queue::new("warm");
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    // The standby declares on b what the application declares on a.
    let b_url = b.url();
    eventually("the standby declared the queue on b", PATIENCE, async || {
        let probe = Connection::builder(b_url.as_str()).automatic_recovery(false).build().unwrap();
        let found = match probe.default_channel().await {
            Ok(channel) => Queue::new("warm").passive(true).declare(&channel).await.is_ok(),
            Err(_) => false,
        };
        let _ = probe.close().await;
        found
    })
    .await;
    let producer = conn.producer().routing_key("warm").build().await.unwrap();
    producer.publish("before").message_id("before").send().await.unwrap();
    // Declared just before the fault: the standby may not have caught up,
    // and the failover must declare it then.
    let late = Queue::new("warm-late");
    late.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    a.kill();
    let sent = publish_numbered(&producer, "after", 20).await;
    assert_eq!(conn.current_url().port(), Some(b.addr().port()));
    // The standby's own connect was silent: connected to a, then to b.
    let mut connected = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::Connected { broker } = event {
            connected.push(broker);
        }
    }
    let a_port = format!(":{}/", a.addr().port());
    let b_port = format!(":{}/", b.addr().port());
    assert_eq!(connected.len(), 2, "{connected:?}");
    assert!(connected[0].contains(&a_port) && connected[1].contains(&b_port), "{connected:?}");
    conn.producer().routing_key("warm-late").build().await.unwrap().publish("late").message_id("late").send().await.unwrap();
    let found = drain_ids(&b.url(), &queue).await;
    let lost: Vec<&String> = sent.iter().filter(|id| !found.contains(id)).collect();
    assert!(lost.is_empty(), "confirmed but lost: {lost:?}");
    assert_eq!(drain_ids(&b.url(), &late).await, vec!["late".to_owned()]);
}

/// `confirm prefetch_count` of every channel on `node`, one line each.
async fn channels_on(node: &RabbitNode) -> Vec<String> {
    let out = node
        .rabbitmqctl_async(&["list_channels", "--no-table-headers", "-q", "confirm", "prefetch_count"])
        .await
        .unwrap();
    let mut lines: Vec<String> = out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|l| !l.is_empty()).collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_standby_holds_the_channels_ready_and_the_failover_adopts_them() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (a, b) = two_nodes().await;
    let conn = prefer_first(&a, &b).warm_standby(true).build().unwrap();
    let queue = Queue::new("ready");
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    // Each on a channel of its own.
    let producer = conn.channel().await.unwrap().producer().routing_key("ready").build().await.unwrap();
    let mut consumer = conn.channel().await.unwrap().consumer([queue.clone()]).prefetch_count(7).build().await.unwrap();
    producer.publish("before").message_id("before").send().await.unwrap();
    let first = consumer.next_timeout(PATIENCE).await.unwrap().expect("a delivery");
    first.ack().await.unwrap();
    // On b, before any fault: the default channel, the producer's (confirm
    // mode) and the consumer's (prefetch 7), opened ahead.
    let expected = vec!["false 0".to_owned(), "false 7".to_owned(), "true 0".to_owned()];
    eventually(&format!("channels on b: {expected:?}"), PATIENCE, async || match channels_on(&b).await {
        channels if channels == expected => Ok(()),
        channels => Err(format!("channels on b: {channels:?}")),
    })
    .await;
    let prepared = channels_on(&b).await;
    a.kill();
    let sent = publish_numbered(&producer, "after", 20).await;
    let mut received = Vec::new();
    while received.len() < sent.len() {
        let m = consumer.next_timeout(PATIENCE).await.unwrap().expect("a delivery after the failover");
        received.push(m.properties().message_id.as_deref().unwrap_or("").to_owned());
        m.ack().await.unwrap();
    }
    assert_eq!(received, sent);
    assert_eq!(conn.current_url().port(), Some(b.addr().port()));
    // The failover opened no channel: it adopted the prepared ones.
    assert_eq!(channels_on(&b).await, prepared);
}
