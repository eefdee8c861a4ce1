//! The AMQP 0-9-1 engine against the real RabbitMQ: big bodies across
//! frames, many channels, confirms, typed refusals, broker-initiated closes,
//! heartbeats (through a fault proxy), connection.blocked (on a test node
//! whose memory alarm is forced) and TLS with certificates made at test time.
//! Nothing here asserts a wall-clock time; timeouts only turn hangs into
//! failures.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use kelp::{Connection, ErrorKind, Event, Queue};
use kelp_test_support::{next_matching, FaultMode, FaultProxy, RabbitNode, eventually, require_rabbitmq, unique_name};
#[cfg(feature = "tls")]
use kelp_test_support::{RabbitNodeOptions, TlsListener};

const PATIENCE: Duration = Duration::from_secs(30);

fn temp_queue(prefix: &str) -> Queue {
    Queue::new(unique_name(prefix)).durable(false).argument("x-expires", 120_000u32)
}

async fn get_eventually(channel: &kelp::Channel, queue: &Queue) -> kelp::Message {
    eventually(&format!("a message in {}", queue.name), PATIENCE, async || {
        queue.get(channel, false).await.expect("basic.get")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_mib_message_round_trips_across_many_frames() {
    let conn = Connection::new(&require_rabbitmq()).unwrap();
    let channel = conn.default_channel().await.unwrap();
    let queue = temp_queue("big");
    queue.declare(&channel).await.unwrap();
    let body: Bytes = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    producer.publish_bytes(body.clone()).send().await.unwrap();
    let mut consumer = conn.consumer([queue.clone()]).build().await.unwrap();
    let message = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(message.raw_body().len(), body.len());
    assert!(message.raw_body() == &body, "the body arrives intact");
    message.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_channels_share_one_connection() {
    let conn = Connection::new(&require_rabbitmq()).unwrap();
    let setup = conn.default_channel().await.unwrap();
    let queue = temp_queue("channels");
    queue.declare(&setup).await.unwrap();
    let mut channels = Vec::new();
    for _ in 0..300 {
        channels.push(conn.channel().await.unwrap());
    }
    for (i, channel) in channels.iter().enumerate() {
        let producer = channel.producer().routing_key(queue.name.clone()).build().await.unwrap();
        producer.publish(&i).send().await.unwrap();
    }
    let declared = queue.inspect(&setup).await.unwrap();
    assert_eq!(declared.message_count, 300);
    let mut seen: Vec<usize> = Vec::new();
    for channel in &channels {
        let m = get_eventually(channel, &queue).await;
        seen.push(m.decode().unwrap());
        m.ack().await.unwrap();
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
    for channel in &channels {
        channel.close().await.unwrap();
    }
    assert!(conn.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_confirms_in_flight_all_resolve() {
    let conn = Connection::new(&require_rabbitmq()).unwrap();
    let channel = conn.default_channel().await.unwrap();
    let queue = temp_queue("confirms");
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    let mut pending = VecDeque::new();
    for i in 0..5_000u32 {
        pending.push_back(producer.publish(&i).enqueue().await.unwrap());
    }
    for confirmation in pending {
        tokio::time::timeout(PATIENCE, confirmation).await.unwrap().unwrap();
    }
    assert_eq!(queue.inspect(&channel).await.unwrap().message_count, 5_000);
    queue.delete(&channel, false, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_an_authentication_error_at_once() {
    require_rabbitmq();
    let conn = Connection::new("amqp://guest:not-the-password@127.0.0.1:5672//").unwrap();
    let err = conn.connect().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert!(err.is_fatal());
    assert!(!err.to_string().contains("not-the-password"), "password leaked: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_virtual_host_is_refused_with_its_reply_code() {
    require_rabbitmq();
    let conn = Connection::new("amqp://guest:guest@127.0.0.1:5672/kelp-no-such-vhost").unwrap();
    let err = conn.connect().await.unwrap_err();
    assert!(err.is_connection(), "{err}");
    assert_eq!(err.reply_code(), Some(530), "{err}");
    assert!(err.is_fatal(), "retrying cannot help: {err}");
}

fn rabbitmqctl(args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(out.status.success(), "rabbitmqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Find our connection on the broker by its connection_name: its pid and
/// its client properties as rabbitmqctl prints them.
async fn broker_connection(name: &str) -> (String, String) {
    let needle = format!("{{\"connection_name\",\"{name}\"}}");
    eventually(&format!("the broker lists connection {name}"), PATIENCE, async || {
        let listed = rabbitmqctl(&["list_connections", "pid", "client_properties", "-q"]);
        let line = listed.lines().find(|l| l.contains(&needle))?;
        let (pid, props) = line.split_once('\t').expect("pid<TAB>properties");
        Some((pid.to_owned(), props.to_owned()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_sees_kelps_client_properties() {
    let name = unique_name("props");
    let conn = Connection::builder(require_rabbitmq())
        .connection_name(name.clone())
        .build()
        .unwrap();
    conn.connect().await.unwrap();
    let (_, props) = broker_connection(&name).await;
    assert!(props.contains(r#"{"product","kelp"}"#), "{props}");
    assert!(props.contains(r#"{"platform","Rust"}"#), "{props}");
    for capability in [
        "publisher_confirms",
        "consumer_cancel_notify",
        "connection.blocked",
        "basic.nack",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        assert!(props.contains(&format!("{{\"{capability}\",true}}")), "{capability}: {props}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_by_the_broker_is_reported_with_its_reason() {
    let name = unique_name("forced");
    let conn = Connection::builder(require_rabbitmq())
        .connection_name(name.clone())
        .automatic_recovery(false)
        .build()
        .unwrap();
    let mut events = conn.events();
    let queue = temp_queue("forced");
    let mut consumer = conn.consumer([queue.clone()]).build().await.unwrap();
    let (pid, _) = broker_connection(&name).await;
    rabbitmqctl(&["close_connection", &pid, "kelp test says goodbye"]);
    let lost = next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::ConnectionLost { .. })).await;
    let Event::ConnectionLost { reason, .. } = lost else { unreachable!() };
    assert!(reason.contains("320") && reason.contains("kelp test says goodbye"), "{reason}");
    // Without automatic recovery the subscription ends with the connection.
    let ended = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap();
    let err = ended.expect("a last item").expect_err("the subscription ended");
    assert!(err.is_cancelled(), "{err}");
    assert!(!conn.is_connected());
    // The handle reconnects on next use.
    let channel = conn.default_channel().await.unwrap();
    queue.declare(&channel).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_by_the_broker_is_recovered_and_consumers_go_on() {
    let name = unique_name("recovered");
    let conn = Connection::builder(require_rabbitmq())
        .connection_name(name.clone())
        .build()
        .unwrap();
    let mut events = conn.events();
    let exchange = kelp::Exchange::direct(unique_name("recovered-ex")).durable(false).auto_delete(true);
    let queue = temp_queue("recovered").exchange(exchange.clone()).routing_key("k");
    let mut consumer = conn.consumer([queue.clone()]).build().await.unwrap();
    let producer = conn.producer().exchange(exchange.clone()).routing_key("k").build().await.unwrap();
    producer.publish("before").send().await.unwrap();
    let m = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "before");
    let before_tag = m.delivery_tag();
    m.ack().await.unwrap();

    let (pid, _) = broker_connection(&name).await;
    rabbitmqctl(&["close_connection", &pid, "forced for a recovery test"]);
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;
    // The exchange, queue and binding were declared again on the new
    // connection, and the consumer re-subscribed.
    producer.publish("after").send().await.unwrap();
    let m = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "after");
    assert!(m.delivery_tag() > before_tag, "delivery tags keep growing across recovery");
    m.ack().await.unwrap();
    assert!(conn.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_queue_cancels_its_consumer_with_an_event() {
    let conn = Connection::new(&require_rabbitmq()).unwrap();
    let mut events = conn.events();
    let queue = temp_queue("cancelled");
    let mut consumer = conn.channel().await.unwrap().consumer([queue.clone()]).build().await.unwrap();
    let tag = consumer.consumer_tags()[0].to_owned();
    queue.delete(&conn.default_channel().await.unwrap(), false, false).await.unwrap();
    let event = next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::ConsumerCancelled { .. })).await;
    assert_eq!(event, Event::ConsumerCancelled { consumer_tag: tag });
    let err = tokio::time::timeout(PATIENCE, consumer.next()).await.unwrap().unwrap().unwrap_err();
    assert!(err.is_cancelled(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_heartbeats_through_a_black_hole_close_the_connection() {
    let url = require_rabbitmq();
    let proxy = FaultProxy::start("127.0.0.1:5672".parse().unwrap()).await.unwrap();
    let through = format!("{}?heartbeat=1", proxy.url_for(&url));
    let conn = Connection::new(&through).unwrap();
    let mut events = conn.events();
    let channel = conn.default_channel().await.unwrap();
    let queue = temp_queue("heartbeat");
    queue.declare(&channel).await.unwrap();
    proxy.set_mode(FaultMode::BlackHole).await;
    // A call in flight must fail, not hang, once the heartbeats stop.
    let stuck = tokio::spawn({
        let channel = channel.clone();
        let queue = queue.clone();
        async move { queue.inspect(&channel).await }
    });
    let lost = next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::ConnectionLost { .. })).await;
    assert!(lost.to_string().contains("missed heartbeats"), "{lost}");
    let err = tokio::time::timeout(PATIENCE, stuck).await.unwrap().unwrap().unwrap_err();
    assert!(err.is_connection(), "{err}");
    assert!(!conn.is_connected());
}

/// A broker that keeps the connection open and confirms nothing (what a node
/// cut off from its cluster does) is left after the confirm timeout, and
/// the publish is confirmed by the next broker. Heartbeats are off here, so
/// nothing else could notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_confirms_nothing_is_left_for_the_next() {
    let url = require_rabbitmq();
    let proxy = FaultProxy::start("127.0.0.1:5672".parse().unwrap()).await.unwrap();
    let conn = Connection::builder(format!("{};{url}", proxy.url_for(&url)))
        .failover_strategy(kelp::FailoverStrategy::PriorityOrder)
        .heartbeat(None)
        .confirm_timeout(Some(Duration::from_secs(2)))
        .build()
        .unwrap();
    let mut events = conn.events();
    let channel = conn.default_channel().await.unwrap();
    let queue = temp_queue("stall");
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    producer.publish("before").send().await.unwrap();
    assert_eq!(conn.current_url().port(), Some(proxy.addr().port()));

    proxy.set_mode(FaultMode::BlackHole).await;
    let during = tokio::spawn({
        let producer = producer.clone();
        async move { producer.publish("during").send().await }
    });
    let lost = next_matching(&mut events, "the connection lost", PATIENCE, |e| matches!(e, Event::ConnectionLost { .. })).await;
    assert!(lost.to_string().contains("left a publish unconfirmed"), "{lost}");
    tokio::time::timeout(PATIENCE, during).await.unwrap().unwrap().expect("confirmed by the next broker");
    assert_eq!(conn.current_url().port(), Some(5672), "moved to the direct URL");
    let direct = Connection::new(&url).unwrap();
    let reader = direct.default_channel().await.unwrap();
    let mut bodies = Vec::new();
    while let Some(message) = queue.get(&reader, true).await.unwrap() {
        bodies.push(message.decode::<String>().unwrap());
    }
    assert_eq!(bodies, ["before", "during"]);
}

/// Recovery tells when a queue it declares again was gone from the broker
/// (declared anew, empty), and is silent about the ones that were there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_reports_a_queue_that_was_gone() {
    let url = require_rabbitmq();
    let proxy = FaultProxy::start("127.0.0.1:5672".parse().unwrap()).await.unwrap();
    let conn = Connection::new(&proxy.url_for(&url)).unwrap();
    let mut events = conn.events();
    let channel = conn.default_channel().await.unwrap();
    let (kept, gone) = (temp_queue("kept"), temp_queue("gone"));
    kept.declare(&channel).await.unwrap();
    gone.declare(&channel).await.unwrap();
    // Someone else deletes one of them; then the connection drops.
    let other = Connection::new(&url).unwrap();
    gone.delete(&other.default_channel().await.unwrap(), false, false).await.unwrap();
    proxy.set_mode(FaultMode::Reset).await;
    proxy.set_mode(FaultMode::Pass).await;
    // Every event up to the end of the recovery.
    let mut recreated = Vec::new();
    loop {
        let event = next_matching(&mut events, "the recovery", PATIENCE, |_| true).await;
        match event {
            Event::Recovered { .. } => break,
            Event::QueueRecreated { queue, broker } => {
                assert!(broker.contains(":**@"), "password masked: {broker}");
                recreated.push(queue);
            }
            _ => {}
        }
    }
    assert_eq!(recreated, std::slice::from_ref(&gone.name), "only the queue that was gone");
    assert_eq!(gone.inspect(&other.default_channel().await.unwrap()).await.unwrap().message_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_an_idle_connection_alive() {
    let url = format!("{}?heartbeat=1", require_rabbitmq());
    let conn = Connection::new(&url).unwrap();
    let mut events = conn.events();
    let channel = conn.default_channel().await.unwrap();
    // Idle for several heartbeat intervals: the engine's own heartbeats keep
    // the broker (and kelp) from declaring the peer dead.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert!(conn.is_connected());
    temp_queue("idle").declare(&channel).await.unwrap();
    while let Ok(event) = events.try_recv() {
        assert!(!matches!(event, Event::ConnectionLost { .. }), "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_waits_while_the_broker_blocks_it() {
    let node = RabbitNode::start_async().await.unwrap();
    // A confirm timeout shorter than the block: time spent blocked must not
    // count as a broker that stopped confirming.
    let conn = Connection::builder(node.url()).confirm_timeout(Some(Duration::from_secs(1))).build().unwrap();
    let mut events = conn.events();
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new("blocked");
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key("blocked").build().await.unwrap();
    producer.publish("before").send().await.unwrap();

    node.rabbitmqctl_async(&["set_vm_memory_high_watermark", "0.0000001"]).await.unwrap();
    // The broker blocks a connection when it next publishes.
    let first = tokio::spawn({
        let producer = producer.clone();
        async move { producer.publish("during").send().await }
    });
    let blocked = next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Blocked { .. })).await;
    assert!(blocked.to_string().contains("blocked"), "{blocked}");
    // While blocked, a publish waits instead of piling up.
    let second = tokio::spawn({
        let producer = producer.clone();
        async move { producer.publish("held").send().await }
    });
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert!(!second.is_finished(), "a publish went out while the broker blocked it");
    assert!(conn.is_connected(), "a blocked broker is not one that stopped confirming");

    node.rabbitmqctl_async(&["set_vm_memory_high_watermark", "0.4"]).await.unwrap();
    next_matching(&mut events, "an event", PATIENCE, |e| *e == Event::Unblocked).await;
    tokio::time::timeout(PATIENCE, first).await.unwrap().unwrap().unwrap();
    tokio::time::timeout(PATIENCE, second).await.unwrap().unwrap().unwrap();
    assert_eq!(queue.inspect(&channel).await.unwrap().message_count, 3);
}

#[cfg(feature = "tls")]
/// A node with a TLS listener trusting the test CA and EXTERNAL login by
/// client certificate (the certificate's CN becomes the user name).
async fn tls_node(pki: &kelp_test_support::tls::TestPki) -> RabbitNode {
    let options = RabbitNodeOptions::default()
        .tls(TlsListener::from_pki(pki).verify_peer(true).fail_if_no_peer_cert(false))
        .plugin("rabbitmq_auth_mechanism_ssl")
        .config_line("auth_mechanisms.1 = PLAIN")
        .config_line("auth_mechanisms.2 = EXTERNAL")
        .config_line("ssl_cert_login_from = common_name");
    let node = RabbitNode::start_with_async(options).await.unwrap();
    node.rabbitmqctl_async(&["add_user", "kelp-test-client", "unused-password"]).await.unwrap();
    node.rabbitmqctl_async(&["set_permissions", "-p", "/", "kelp-test-client", ".*", ".*", ".*"])
        .await
        .unwrap();
    node
}

/// Without the `tls` feature, an amqps:// URL is refused by name, before
/// anything is sent in the clear.
#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn amqps_without_the_tls_feature_names_it() {
    let err = Connection::new("amqps://localhost:5671//").unwrap().connect().await.unwrap_err();
    assert_eq!(err.kind(), kelp::ErrorKind::Unsupported, "{err}");
    assert!(err.message().contains("`tls` feature"), "{err}");
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verifies_the_broker_and_logs_in_with_a_client_certificate() {
    let dir = std::env::temp_dir().join(unique_name("pki"));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = kelp_test_support::tls::generate_test_pki(&dir).unwrap();
    let node = tls_node(&pki).await;
    let port = node.amqps_port().expect("a TLS port");
    let ca = pki.ca_cert.display().to_string();

    // Trusting the test CA: works end to end.
    let url = format!("amqps://guest:guest@localhost:{port}//?ssl_ca_certs={ca}");
    let conn = Connection::new(&url).unwrap();
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new("tls").durable(false);
    queue.declare(&channel).await.unwrap();
    conn.producer().routing_key("tls").build().await.unwrap().publish("secret").send().await.unwrap();
    let m = get_eventually(&channel, &queue).await;
    assert_eq!(m.decode::<String>().unwrap(), "secret");
    m.ack().await.unwrap();
    conn.close().await.unwrap();

    // Not trusting it (system roots only): a clear certificate error.
    let err = Connection::new(&format!("amqps://guest:guest@localhost:{port}//"))
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(err.is_connection(), "{err}");
    let text = err.to_string();
    assert!(text.contains("TLS handshake") && text.to_lowercase().contains("certificate"), "{text}");

    // A name the certificate does not carry is refused, unless asked not to check it.
    let wrong_name = format!("amqps://guest:guest@127.0.0.1:{port}//?ssl_ca_certs={ca}&ssl_server_hostname=broker.example");
    let err = Connection::new(&wrong_name).unwrap().connect().await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("not valid for name"), "{err}");
    let unchecked = format!("{wrong_name}&ssl_check_hostname=false");
    Connection::new(&unchecked).unwrap().connect().await.unwrap();

    // EXTERNAL: the client certificate is the credential.
    let external = format!(
        "amqps://localhost:{port}//?login_method=EXTERNAL&ssl_ca_certs={ca}&ssl_certfile={}&ssl_keyfile={}",
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let conn = Connection::new(&external).unwrap();
    let channel = conn.default_channel().await.unwrap();
    queue.inspect(&channel).await.unwrap();
    conn.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unconfirmed_buffer_is_bounded() {
    let url = require_rabbitmq();
    let proxy = FaultProxy::start("127.0.0.1:5672".parse().unwrap()).await.unwrap();
    let conn = Connection::builder(proxy.url_for(&url))
        .heartbeat(None)
        .max_unconfirmed(5)
        .retry_policy(kelp::RetryPolicy::default().deadline(Duration::from_millis(500)))
        .build()
        .unwrap();
    let channel = conn.default_channel().await.unwrap();
    let queue = temp_queue("bounded");
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    proxy.set_mode(FaultMode::BlackHole).await;
    let mut pending = Vec::new();
    for i in 0..5 {
        pending.push(producer.publish(&i).enqueue().await.unwrap());
    }
    let err = producer.publish(&5).enqueue().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
    // Once confirms flow again, room comes back.
    proxy.set_mode(FaultMode::Pass).await;
    for p in pending {
        tokio::time::timeout(PATIENCE, p).await.unwrap().unwrap();
    }
    producer.publish(&6).send().await.unwrap();
}

/// Twenty producers start at once on one channel, each publishing a
/// mandatory message nobody can route: every send must end with the
/// broker's return, none with a success. A producer that published while
/// another's confirm.select was still on its way used to be taken as not
/// confirming: its send returned at once, unconfirmed, and shifted every
/// later delivery tag by one, so that a broker ack confirmed a message it
/// had not acked (found by the kill -9 failover test: confirmed messages
/// the killed node never had).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_starting_together_on_one_channel_all_wait_for_their_confirms() {
    let conn = Connection::new(&require_rabbitmq()).unwrap();
    let nowhere = unique_name("no-such-queue");
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (conn, start, nowhere) = (conn.clone(), start.clone(), nowhere.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let producer = conn.producer().routing_key(nowhere).build().await.unwrap();
            producer.publish(&i).mandatory(true).send().await
        }));
    }
    let mut kinds = Vec::new();
    for task in tasks {
        let outcome = tokio::time::timeout(PATIENCE, task).await.expect("a send hangs").unwrap();
        kinds.push(outcome.err().map(|e| e.kind()));
    }
    assert!(kinds.iter().all(|k| *k == Some(ErrorKind::Unroutable)), "every send returned unroutable: {kinds:?}");
}
