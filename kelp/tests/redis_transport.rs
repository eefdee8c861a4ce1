//! What the Redis transport writes, read back with raw Redis commands: the
//! keys, envelope, binding members and unacked records must be exactly
//! Kombu's, so that Kombu and kelp share one Redis. Also kelp's additions:
//! its unacked deliveries stay fresh while a handler works, `x-expires`
//! reaches every priority bucket, and `global_keyprefix` prefixes every key.
//! Against the real Redis on 127.0.0.1:6379; fails loudly when it is down.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use kelp::{Connection, Exchange, Queue};
use kelp_test_support::eventually;
use kelp_test_support::redis::{RespValue, redis_command};
use serde_json::Value as Json;

const SEP: &str = "\x06\x16";

fn url() -> String {
    kelp_test_support::require_redis()
}

fn addr() -> SocketAddr {
    let url = kelp::BrokerUrl::parse(&url()).expect("redis URL");
    format!("{}:{}", url.host(), url.port().unwrap_or(6379)).parse().expect("address")
}

fn raw(args: &[&str]) -> RespValue {
    redis_command(addr(), args, Duration::from_secs(5)).expect("raw redis command")
}

fn text(value: &RespValue) -> String {
    value.as_text().unwrap_or_else(|| panic!("expected text, got {value:?}"))
}

fn list(value: RespValue) -> Vec<String> {
    match value {
        RespValue::Array(Some(items)) => items.iter().map(text).collect(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// How long a wait may take before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(10);

fn unique(prefix: &str) -> String {
    kelp_test_support::unique_name(prefix)
}

async fn connect(url: &str, prefix: Option<&str>) -> Connection {
    let mut builder = Connection::builder(url);
    if let Some(prefix) = prefix {
        builder = builder.transport_option("global_keyprefix", prefix);
    }
    let conn = builder.build().expect("valid URL");
    conn.connect().await.unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    conn
}

#[tokio::test]
async fn stored_exactly_as_kombu_stores_it() {
    let conn = connect(&url(), None).await;
    let channel = conn.default_channel().await.unwrap();
    let exchange = Exchange::direct(unique("fmt-x")).durable(false);
    let name = unique("fmt-q");
    let queue = Queue::new(name.clone()).exchange(exchange.clone()).routing_key("k.1");
    queue.declare(&channel).await.unwrap();

    // The binding set, with an empty pattern for a direct exchange.
    let members = list(raw(&["SMEMBERS", &format!("_kombu.binding.{}", exchange.name)]));
    assert_eq!(members, [format!("k.1{SEP}{SEP}{name}")]);

    let producer = conn.producer().exchange(exchange.clone()).build().await.unwrap();
    producer
        .publish(&serde_json::json!({"hello": "world"}))
        .routing_key("k.1")
        .priority(4)
        .correlation_id("c-7")
        .header("n", 3)
        .send()
        .await
        .unwrap();
    // Priority 4 lands in Kombu's bucket 3.
    assert_eq!(text(&raw(&["LLEN", &name])), "0");
    let bucket = format!("{name}{SEP}3");
    let stored = list(raw(&["LRANGE", &bucket, "0", "-1"]));
    assert_eq!(stored.len(), 1, "one message in bucket 3");
    let envelope: Json = serde_json::from_str(&stored[0]).expect("the envelope is JSON");
    assert_eq!(envelope["content-type"], "application/json");
    assert_eq!(envelope["content-encoding"], "utf-8");
    assert_eq!(envelope["headers"]["n"], 3);
    let props = &envelope["properties"];
    assert_eq!(props["delivery_mode"], 2);
    assert_eq!(props["priority"], 4);
    assert_eq!(props["body_encoding"], "base64");
    assert_eq!(props["correlation_id"], "c-7");
    assert_eq!(props["delivery_info"]["exchange"], exchange.name.as_str());
    assert_eq!(props["delivery_info"]["routing_key"], "k.1");
    let tag = props["delivery_tag"].as_str().expect("a delivery tag").to_owned();
    assert_eq!(tag.len(), 36, "a UUID4 delivery tag like Kombu's: {tag}");
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD
        .decode(envelope["body"].as_str().expect("body text"))
        .expect("base64 body");
    assert_eq!(serde_json::from_slice::<Json>(&body).unwrap(), serde_json::json!({"hello": "world"}));

    // Delivered and not acked: Kombu's unacked record and index entry.
    let mut consumer = channel.consumer([queue.clone()]).build().await.unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.expect("a delivery").unwrap().unwrap();
    let record: Json = serde_json::from_str(&text(&raw(&["HGET", "unacked", &tag]))).expect("the unacked record is JSON");
    assert_eq!(record[0], envelope, "[payload, exchange, routing_key]");
    assert_eq!(record[1], exchange.name.as_str());
    assert_eq!(record[2], "k.1");
    assert!(matches!(raw(&["ZSCORE", "unacked_index", &tag]), RespValue::Bulk(Some(_))), "indexed by time");
    message.ack().await.unwrap();
    // Like basic.ack, an ack is not answered: the records go with the next fetch.
    eventually("an ack removes the record", PATIENCE, async || raw(&["HGET", "unacked", &tag]) == RespValue::Bulk(None)).await;
    assert_eq!(raw(&["ZSCORE", "unacked_index", &tag]), RespValue::Bulk(None));
    queue.delete(&channel, false, false).await.unwrap();
    assert!(list(raw(&["SMEMBERS", &format!("_kombu.binding.{}", exchange.name)])).is_empty(), "the binding goes with the queue");
}

#[tokio::test]
async fn topic_bindings_carry_kombus_pattern() {
    let conn = connect(&url(), None).await;
    let channel = conn.default_channel().await.unwrap();
    let exchange = Exchange::topic(unique("fmt-topic")).durable(false);
    let name = unique("fmt-topic-q");
    Queue::new(name.clone()).exchange(exchange.clone()).routing_key("logs.*.error").declare(&channel).await.unwrap();
    let members = list(raw(&["SMEMBERS", &format!("_kombu.binding.{}", exchange.name)]));
    assert_eq!(members, [format!("logs.*.error{SEP}^logs\\.[^\\.]+\\.error${SEP}{name}")]);
    Queue::new(name).delete(&channel, false, false).await.unwrap();
}

#[tokio::test]
async fn global_keyprefix_prefixes_every_key() {
    let prefix = format!("{}:", unique("kp"));
    let conn = connect(&url(), Some(&prefix)).await;
    let channel = conn.default_channel().await.unwrap();
    let exchange = Exchange::direct(unique("kp-x")).durable(false);
    let name = unique("kp-q");
    let queue = Queue::new(name.clone()).exchange(exchange.clone()).routing_key("rk");
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().exchange(exchange.clone()).build().await.unwrap();
    producer.publish("a").routing_key("rk").send().await.unwrap();
    producer.publish("b").routing_key("rk").priority(9).send().await.unwrap();
    let keys = list(raw(&["KEYS", &format!("*{name}*")]));
    assert_eq!(keys.len(), 2, "buckets 0 and 9: {keys:?}");
    assert!(keys.iter().all(|k| k.starts_with(&prefix)), "every queue key prefixed: {keys:?}");
    let mut consumer = channel.consumer([queue.clone()]).prefetch_count(10).build().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.expect("a delivery").unwrap().unwrap();
    assert_eq!(first.decode::<String>().unwrap(), "a", "bucket 0 before bucket 9");

    assert_eq!(text(&raw(&["HLEN", &format!("{prefix}unacked")])), "2", "both deliveries recorded under the prefix");
    assert_eq!(text(&raw(&["EXISTS", &format!("{prefix}_kombu.binding.{}", exchange.name)])), "1");
    assert_eq!(text(&raw(&["EXISTS", &format!("_kombu.binding.{}", exchange.name)])), "0", "nothing unprefixed");
    first.ack().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.expect("a delivery").unwrap().unwrap();
    second.ack().await.unwrap();
    eventually("both acks written", PATIENCE, async || text(&raw(&["HLEN", &format!("{prefix}unacked")])) == "0").await;
    queue.delete(&channel, false, false).await.unwrap();
}

#[tokio::test]
async fn x_expires_sets_a_ttl_on_every_bucket() {
    let conn = connect(&url(), None).await;
    let channel = conn.default_channel().await.unwrap();
    let name = unique("ttl-q");
    let queue = Queue::new(name.clone()).durable(false).argument("x-expires", 60_000u32);
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(name.clone()).build().await.unwrap();
    producer.publish("low").send().await.unwrap();
    producer.publish("high").priority(6).send().await.unwrap();
    for key in [name.clone(), format!("{name}{SEP}6")] {
        let ttl: i64 = text(&raw(&["PTTL", &key])).parse().unwrap();
        assert!(ttl > 0 && ttl <= 60_000, "{key:?} has PTTL {ttl}");
    }
    queue.delete(&channel, false, false).await.unwrap();
}

/// A handler that takes longer than the visibility timeout keeps its
/// message: kelp refreshes the unacked index while the delivery is held, so
/// the sweep of another consumer does not hand it out again (Kombu does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_handler_keeps_its_message_past_the_visibility_timeout() {
    let build = || {
        Connection::builder(url())
            .transport_option("visibility_timeout", 1.0)
            .transport_option("unacked_restore_interval", 0.1)
            .build()
            .expect("valid URL")
    };
    let (slow, watcher) = (build(), build());
    let name = unique("vt-keep");
    let queue = Queue::new(name.clone()).durable(false);
    let slow_channel = slow.default_channel().await.unwrap();
    queue.declare(&slow_channel).await.unwrap();
    slow.producer().routing_key(name.clone()).build().await.unwrap().publish("work").send().await.unwrap();
    let mut worker = slow_channel.consumer([queue.clone()]).build().await.unwrap();
    let held = tokio::time::timeout(Duration::from_secs(10), worker.next()).await.expect("a delivery").unwrap().unwrap();

    let watcher_channel = watcher.default_channel().await.unwrap();
    let mut other = watcher_channel.consumer([queue.clone()]).build().await.unwrap();
    // Three visibility timeouts pass with the message held and sweeps running.
    let stolen = tokio::time::timeout(Duration::from_secs(3), other.next()).await;
    assert!(stolen.is_err(), "the held message was handed to another consumer: {:?}", stolen.map(|m| m.map(|m| m.map(|m| m.decode::<String>()))));
    held.ack().await.unwrap();
    drop(worker);
    queue.delete(&slow_channel, false, false).await.unwrap();
}

#[cfg(feature = "tls")]
/// A Redis server with a TLS port as well as its plain one (the harness
/// checks readiness on the plain port), certificates made at test time.
fn tls_server(dir: &std::path::Path, verify_clients: bool) -> (kelp_test_support::redis::RedisServer, u16, kelp_test_support::tls::TestPki) {
    assert!(kelp_test_support::tls::openssl_available(), "the TLS tests need the openssl command line tool");
    let pki = kelp_test_support::tls::generate_test_pki(dir).expect("a test PKI");
    let tls_port = kelp_test_support::free_port();
    let path = |p: &std::path::Path| p.display().to_string();
    let server = kelp_test_support::redis::RedisOptions::default()
        .args([
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            path(&pki.server_cert),
            "--tls-key-file".into(),
            path(&pki.server_key),
            "--tls-ca-cert-file".into(),
            path(&pki.ca_cert),
            "--tls-auth-clients".into(),
            (if verify_clients { "yes" } else { "no" }).into(),
        ])
        .start()
        .expect("a redis-server with TLS");
    (server, tls_port, pki)
}

#[cfg(feature = "tls")]
async fn round_trip(url: &str) -> kelp::Result<String> {
    let conn = Connection::new(url)?;
    conn.connect().await?;
    let channel = conn.default_channel().await?;
    let queue = Queue::new(unique("tls-q")).durable(false);
    queue.declare(&channel).await?;
    conn.producer().routing_key(queue.name.clone()).build().await?.publish("over tls").send().await?;
    let message = queue.get(&channel, false).await?.expect("the message");
    message.ack().await?;
    message.decode::<String>()
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn rediss_verifies_the_server_and_presents_a_client_certificate() {
    let dir = std::env::temp_dir().join(unique("redis-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    let (_server, port, pki) = tls_server(&dir, true);
    let ca = pki.ca_cert.display().to_string();
    let with_client = format!(
        "rediss://localhost:{port}/0?ssl_ca_certs={ca}&ssl_certfile={}&ssl_keyfile={}",
        pki.client_cert.display(),
        pki.client_key.display()
    );
    assert_eq!(round_trip(&with_client).await.expect("mutual TLS works"), "over tls");

    // No client certificate: the server refuses.
    let without_client = format!("rediss://localhost:{port}/0?ssl_ca_certs={ca}");
    assert!(round_trip(&without_client).await.is_err(), "the server requires a client certificate");
    // Not trusting the test CA: the server's certificate does not verify.
    let untrusted = format!(
        "rediss://localhost:{port}/0?ssl_certfile={}&ssl_keyfile={}",
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let err = round_trip(&untrusted).await.expect_err("an unknown CA must not verify");
    assert!(err.is_connection() || err.is_timeout(), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without the `tls` feature, a rediss:// URL is refused by name, before
/// anything is sent in the clear.
#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn rediss_without_the_tls_feature_names_it() {
    let err = Connection::new("rediss://localhost:6380/0").unwrap().connect().await.unwrap_err();
    assert_eq!(err.kind(), kelp::ErrorKind::Unsupported, "{err}");
    assert!(err.message().contains("`tls` feature"), "{err}");
}

/// Topic routing inside Redis (the publish script) follows AMQP word by
/// word, including the corners where Kombu's regular expressions differ
/// (`a.#` matches `a`, `*` never spans a dot, `#` alone matches nothing
/// but the empty key and everything else).
#[tokio::test]
async fn topic_routing_in_the_publish_script_is_amqp_exact() {
    let conn = connect(&url(), None).await;
    let channel = conn.default_channel().await.unwrap();
    let exchange = Exchange::topic(unique("lua-topic")).durable(false);
    let patterns = ["a.*", "a.#", "#", "*", "#.c", "a.#.c", "*.#.*", "a..b", "#.b.#.d.#"];
    let mut queues = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let queue = Queue::new(format!("{}-{i}", unique("lua-topic-q"))).exchange(exchange.clone()).routing_key(*pattern).durable(false);
        queue.declare(&channel).await.unwrap();
        queues.push(queue);
    }
    let producer = conn.producer().exchange(exchange.clone()).build().await.unwrap();
    // (routing key, the patterns that must match it)
    let cases: &[(&str, &[&str])] = &[
        ("a", &["a.#", "#", "*"]),
        ("a.b", &["a.*", "a.#", "#", "*.#.*"]),
        ("a.b.c", &["a.#", "#", "#.c", "a.#.c", "*.#.*"]),
        ("c", &["#", "*", "#.c"]),
        ("", &["#"]),
        ("a..b", &["a.#", "#", "*.#.*", "a..b"]),
        ("x.b.y.d", &["#", "*.#.*", "#.b.#.d.#"]),
    ];
    for (key, expected) in cases {
        producer.publish(key).routing_key(*key).send().await.unwrap();
        for (queue, pattern) in queues.iter().zip(patterns) {
            let got = queue.get(&channel, true).await.unwrap();
            let matched = got.is_some();
            assert_eq!(matched, expected.contains(&pattern), "key {key:?} pattern {pattern:?}");
            if let Some(m) = got {
                assert_eq!(m.decode::<String>().unwrap(), *key);
            }
        }
    }
    for queue in queues {
        queue.delete(&channel, false, false).await.unwrap();
    }
}

/// Redis forgot the publish script (SCRIPT FLUSH, a restart without
/// persistence): the publishes that used it are sent again after loading
/// it, each exactly once, and the ones in the same pipeline that did not
/// need it are not sent twice.
#[tokio::test]
async fn publishes_survive_redis_forgetting_the_publish_script() {
    let conn = connect(&url(), None).await;
    let channel = conn.default_channel().await.unwrap();
    let exchange = Exchange::topic(unique("noscript-topic")).durable(false);
    let routed = Queue::new(unique("noscript-routed")).exchange(exchange.clone()).routing_key("a.#").durable(false);
    let direct_name = unique("noscript-direct");
    let direct = Queue::new(direct_name.clone()).durable(false);
    routed.declare(&channel).await.unwrap();
    direct.declare(&channel).await.unwrap();
    let topic = conn.producer().exchange(exchange.clone()).build().await.unwrap();
    let plain = conn.producer().routing_key(direct_name.as_str()).build().await.unwrap();
    // One round of both before the flush: the script is known to work.
    topic.publish("before").routing_key("a.b").send().await.unwrap();
    assert_eq!(text(&raw(&["SCRIPT", "FLUSH"])), "OK");
    let (t1, d1, t2, d2) = tokio::join!(
        topic.publish("t1").routing_key("a.b").send(),
        plain.publish("d1").send(),
        topic.publish("t2").routing_key("a.c").send(),
        plain.publish("d2").send(),
    );
    for sent in [t1, d1, t2, d2] {
        sent.expect("published despite NOSCRIPT");
    }
    async fn drained(queue: &Queue, channel: &kelp::Channel) -> Vec<String> {
        let mut got = Vec::new();
        while let Some(m) = queue.get(channel, true).await.unwrap() {
            got.push(m.decode::<String>().unwrap());
        }
        got.sort();
        got
    }
    assert_eq!(drained(&routed, &channel).await, ["before", "t1", "t2"], "the routed queue");
    assert_eq!(drained(&direct, &channel).await, ["d1", "d2"], "the direct queue");
    routed.delete(&channel, false, false).await.unwrap();
    direct.delete(&channel, false, false).await.unwrap();
}

/// `reliable_fetch=false` is Kombu's own way (BRPOP, then record): it
/// still delivers every message once and records it as unacked until the ack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kombus_brpop_fetch_still_works_when_asked_for() {
    // A prefix of its own, so the unacked hash counts only this test's.
    let prefix = format!("{}:", unique("brpop"));
    let conn = Connection::builder(url())
        .transport_option("reliable_fetch", false)
        .transport_option("global_keyprefix", prefix.as_str())
        .build()
        .unwrap();
    let channel = conn.default_channel().await.unwrap();
    let name = unique("brpop-q");
    let queue = Queue::new(name.clone()).durable(false);
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(name.clone()).build().await.unwrap();
    for i in 0..10 {
        producer.publish(&i).priority(if i % 2 == 0 { 0 } else { 9 }).send().await.unwrap();
    }
    let mut consumer = channel.consumer([queue.clone()]).prefetch_count(20).build().await.unwrap();
    let mut held = Vec::new();
    while held.len() < 10 {
        let m = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.expect("a delivery").unwrap().unwrap();
        held.push(m);
    }
    let order: Vec<i32> = held.iter().map(|m| m.decode::<i32>().unwrap()).collect();
    assert_eq!(order, [0, 2, 4, 6, 8, 1, 3, 5, 7, 9], "Kombu's order: bucket 0, then bucket 9");
    assert_eq!(text(&raw(&["HLEN", &format!("{prefix}unacked")])), "10", "each delivery recorded as unacked");
    for m in held {
        m.ack().await.unwrap();
    }
    eventually("every ack written", PATIENCE, async || text(&raw(&["HLEN", &format!("{prefix}unacked")])) == "0").await;
    assert_eq!(text(&raw(&["ZCARD", &format!("{prefix}unacked_index")])), "0");
    queue.delete(&channel, false, false).await.unwrap();
}

/// `redis+socket:///path` reaches a server through its Unix socket, with
/// custom `priority_steps` honoured on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_and_custom_priority_steps() {
    let dir = std::env::temp_dir().join(unique("redis-sock"));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("redis.sock");
    let server = kelp_test_support::redis::RedisOptions::default()
        .args(["--unixsocket".to_owned(), socket.display().to_string(), "--unixsocketperm".into(), "700".into()])
        .start()
        .expect("a redis-server with a Unix socket");
    let conn = Connection::builder(format!("redis+socket://{}", socket.display()))
        .transport_option("priority_steps", kelp::Value::Array(vec![0i64.into(), 5i64.into()]))
        .build()
        .unwrap();
    let channel = conn.default_channel().await.unwrap();
    let name = unique("sock-q");
    let queue = Queue::new(name.clone()).durable(false);
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(name.clone()).build().await.unwrap();
    producer.publish("low").priority(4).send().await.unwrap();
    producer.publish("high").priority(7).send().await.unwrap();
    // Steps [0, 5]: priority 4 files under bucket 0, 7 under bucket 5.
    assert_eq!(text(&server.command(&["LLEN", &name]).unwrap()), "1");
    assert_eq!(text(&server.command(&["LLEN", &format!("{name}{SEP}5")]).unwrap()), "1");
    let first = queue.get(&channel, false).await.unwrap().expect("a message");
    assert_eq!(first.decode::<String>().unwrap(), "low", "bucket 0 first");
    first.ack().await.unwrap();
    conn.close().await.unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fetch reads the delivery tag, exchange and routing key of the
/// envelope's properties, not of headers that happen to share their
/// names, and records them as Kombu would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unacked_record_takes_the_properties_not_look_alike_headers() {
    let conn = connect(&url(), None).await;
    let channel = conn.default_channel().await.unwrap();
    let name = unique("lookalike");
    let queue = Queue::new(name.clone()).durable(false);
    queue.declare(&channel).await.unwrap();
    let tag = format!("tag-{name}");
    let envelope = format!(
        r#"{{"body": "ImhpIg==", "content-encoding": "utf-8", "content-type": "application/json", "headers": {{"exchange": "wrong-x", "routing_key": "wrong-rk", "delivery_tag": "wrong-tag"}}, "properties": {{"delivery_mode": 2, "delivery_info": {{"exchange": "right-x", "routing_key": "right-rk"}}, "priority": 0, "body_encoding": "base64", "delivery_tag": "{tag}"}}}}"#
    );
    raw(&["LPUSH", &name, &envelope]);
    let mut consumer = channel.consumer([queue.clone()]).build().await.unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.expect("a delivery").unwrap().unwrap();
    assert_eq!(message.decode::<String>().unwrap(), "hi");
    assert_eq!(message.delivery_info().exchange, "right-x");
    let record: Json = serde_json::from_str(&text(&raw(&["HGET", "unacked", &tag]))).expect("recorded under the property's tag");
    assert_eq!(record[1], "right-x");
    assert_eq!(record[2], "right-rk");
    assert_eq!(record[0], serde_json::from_str::<Json>(&envelope).unwrap());
    message.ack().await.unwrap();
    eventually("the ack removes it", PATIENCE, async || raw(&["HGET", "unacked", &tag]) == RespValue::Bulk(None)).await;
    queue.delete(&channel, false, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_consumer_mid_fetch_puts_everything_back_at_once() {
    // A channel closed while a fetch is on its way: the messages that fetch
    // records as unacked must go back to the queue now, not after the
    // visibility timeout (an hour by default).
    let prefix = format!("{}:", unique("mid"));
    let conn = connect(&url(), Some(&prefix)).await;
    let name = unique("mid-q");
    let queue = Queue::new(name.clone()).durable(false);
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    let producer = conn.producer().routing_key(name.as_str()).build().await.unwrap();
    const N: usize = 300;
    for i in 0..N {
        producer.publish(&i).send().await.unwrap();
    }
    let key = format!("{prefix}{name}");
    let unacked = format!("{prefix}unacked");
    let mut left = N;
    for round in 0..20 {
        let channel = conn.channel().await.unwrap();
        let mut consumer = channel.consumer([queue.clone()]).prefetch_count(4).build().await.unwrap();
        // Acks make room, and room makes the channel fetch again: after a
        // few, a fetch is on its way most of the time.
        for _ in 0..(3 + round % 5) {
            let m = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.expect("a delivery").unwrap().unwrap();
            m.ack().await.unwrap();
            left -= 1;
        }
        channel.close().await.unwrap();
        drop(consumer);
        eventually(&format!("round {round}: all {left} messages back in the queue, none recorded"), PATIENCE, async || {
            text(&raw(&["LLEN", &key])) == left.to_string() && text(&raw(&["HLEN", &unacked])) == "0"
        })
        .await;
    }
    queue.delete(&conn.default_channel().await.unwrap(), false, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_processing_list_is_given_back_and_a_live_ones_is_not() {
    // A kelp consumer moves messages into a processing list of its own
    // (LMOVE) before recording them as unacked. Two consumers caught in
    // that window, as Redis would hold them: one whose liveness key is gone
    // (killed), one whose key is still there (alive, about to record).
    let prefix = format!("{}:", unique("sweep"));
    let conn = Connection::builder(url())
        .transport_option("global_keyprefix", prefix.as_str())
        .transport_option("unacked_restore_interval", 0.1)
        .build()
        .unwrap();
    conn.connect().await.unwrap();
    let channel = conn.default_channel().await.unwrap();
    let name = unique("sweep-q");
    let queue = Queue::new(name.clone()).durable(false);
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(name.as_str()).build().await.unwrap();
    for i in 0..3 {
        producer.publish(&format!("m{i}")).send().await.unwrap();
    }
    let source = format!("{prefix}{name}");
    let registry = format!("{prefix}_kelp.processing");
    let dead_list = format!("{registry}{SEP}dead-owner.7{SEP}{source}");
    let live_list = format!("{registry}{SEP}live-owner.7{SEP}{source}");
    let live_key = format!("{prefix}_kelp.alive{SEP}live-owner");
    raw(&["HSET", &registry, &dead_list, &format!("dead-owner{SEP}{source}")]);
    raw(&["HSET", &registry, &live_list, &format!("live-owner{SEP}{source}")]);
    raw(&["SET", &live_key, "1", "PX", "60000"]);
    for list in [&dead_list, &dead_list, &live_list] {
        raw(&["LMOVE", &source, list, "RIGHT", "LEFT"]);
    }
    assert_eq!(text(&raw(&["LLEN", &source])), "0");

    let mut consumer = channel.consumer([queue.clone()]).build().await.unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.expect("given back").unwrap().unwrap();
        // Never handed to an application before: not a redelivery.
        assert!(!m.redelivered(), "a message given back from a processing list is not redelivered");
        got.push(m.decode::<String>().unwrap());
        m.ack().await.unwrap();
    }
    assert_eq!(got, ["m0", "m1"], "given back at the front of the line, oldest first");
    assert_eq!(text(&raw(&["EXISTS", &dead_list])), "0");
    assert_eq!(raw(&["HGET", &registry, &dead_list]), RespValue::Bulk(None), "the dead list is forgotten");

    // The live consumer's message stays where it is through many sweeps.
    let early = consumer.next_timeout(Duration::from_millis(700)).await.unwrap();
    assert!(early.is_none(), "a live consumer's processing list was given back");
    assert_eq!(text(&raw(&["LLEN", &live_list])), "1");

    // Once its liveness key goes, it is given back too.
    raw(&["DEL", &live_key]);
    let m = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.expect("given back once dead").unwrap().unwrap();
    assert_eq!(m.decode::<String>().unwrap(), "m2");
    m.ack().await.unwrap();
    assert_eq!(raw(&["HGET", &registry, &live_list]), RespValue::Bulk(None));
    queue.delete(&channel, false, false).await.unwrap();
}

#[tokio::test]
async fn consuming_leaves_no_processing_list_behind() {
    // Every fetch records what it took and empties its processing lists in
    // one transaction: after a run, nothing is left but the queue.
    let prefix = format!("{}:", unique("proc"));
    let conn = connect(&url(), Some(&prefix)).await;
    let channel = conn.default_channel().await.unwrap();
    let name = unique("proc-q");
    let queue = Queue::new(name.clone()).durable(false);
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(name.as_str()).build().await.unwrap();
    const N: usize = 500;
    for i in 0..N {
        producer.publish(&i).send().await.unwrap();
    }
    let mut consumer = channel.consumer([queue.clone()]).prefetch_count(64).build().await.unwrap();
    for i in 0..N {
        let m = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.expect("a delivery").unwrap().unwrap();
        assert_eq!(m.decode::<usize>().unwrap(), i, "in order");
        m.ack().await.unwrap();
    }
    let registry = format!("{prefix}_kelp.processing");
    eventually("the registry empties", PATIENCE, async || text(&raw(&["HLEN", &registry])) == "0").await;
    let lists = list(raw(&["KEYS", &format!("{prefix}_kelp.processing?*")]));
    assert!(lists.is_empty(), "processing lists left: {lists:?}");
    eventually("every record acked", PATIENCE, async || text(&raw(&["HLEN", &format!("{prefix}unacked")])) == "0").await;
    queue.delete(&channel, false, false).await.unwrap();
}

/// Publish `n` numbered messages to a fresh queue under a fresh prefix.
async fn numbered_queue(conn: &Connection, prefix: &str, what: &str, n: usize) -> (Queue, String) {
    let name = unique(what);
    let queue = Queue::new(name.clone()).durable(false);
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    let producer = conn.producer().routing_key(name.as_str()).build().await.unwrap();
    for i in 0..n {
        producer.publish(&i).send().await.unwrap();
    }
    (queue, format!("{prefix}{name}"))
}

/// Receive until `n` distinct numbers were seen, acking each; fails on a
/// duplicate.
async fn receive_each_once(consumer: &mut kelp::Consumer, n: usize, seen: &mut HashSet<usize>) {
    while seen.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await.expect("consuming resumes").unwrap().unwrap();
        let i = m.decode::<usize>().unwrap();
        assert!(seen.insert(i), "message {i} came twice");
        m.ack().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_redis_refuses_gives_back_what_it_took_and_consuming_resumes() {
    // A priority bucket that is not a list makes Redis refuse the fetch
    // (WRONGTYPE on its LLEN) after the same pipeline moved messages out of
    // the queue: they must go back at once (the connection is alive, so no
    // sweep would), and the consumer must keep trying, not stop.
    let prefix = format!("{}:", unique("refused"));
    let conn = connect(&url(), Some(&prefix)).await;
    const N: usize = 10;
    let (queue, key) = numbered_queue(&conn, &prefix, "refused-q", N).await;
    let channel = conn.channel().await.unwrap();
    let mut consumer = channel.consumer([queue.clone()]).prefetch_count(2).build().await.unwrap();
    // Two held: the queue is busy, so the next fetch takes before it looks.
    let held = [consumer.next().await.unwrap().unwrap(), consumer.next().await.unwrap().unwrap()];
    let mut seen: HashSet<usize> = held.iter().map(|m| m.decode::<usize>().unwrap()).collect();
    let bad_bucket = format!("{key}{SEP}3");
    raw(&["SET", &bad_bucket, "not a list"]);
    for m in held {
        m.ack().await.unwrap();
    }
    let early = consumer.next_timeout(Duration::from_millis(1500)).await.unwrap();
    assert!(early.is_none(), "a fetch Redis refused handed out a message");
    let registry = format!("{prefix}_kelp.processing");
    eventually("every message back in the queue between attempts", PATIENCE, async || {
        text(&raw(&["LLEN", &key])) == (N - 2).to_string() && text(&raw(&["HLEN", &registry])) == "0"
    })
    .await;
    raw(&["DEL", &bad_bucket]);
    receive_each_once(&mut consumer, N, &mut seen).await;
    assert!(consumer.next_timeout(Duration::from_millis(300)).await.unwrap().is_none(), "a message came twice");
    queue.delete(&channel, false, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_redis_refuses_put_the_messages_back_and_consuming_resumes() {
    // An `unacked` key that is not a hash: the transaction that records a
    // batch fails on its HSET, but Redis runs the rest of it (no rollback)
    // and empties the processing lists; kelp, which still holds the
    // messages, must put them back itself.
    let prefix = format!("{}:", unique("unrecorded"));
    let conn = connect(&url(), Some(&prefix)).await;
    const N: usize = 6;
    let (queue, key) = numbered_queue(&conn, &prefix, "unrecorded-q", N).await;
    let unacked = format!("{prefix}unacked");
    raw(&["SET", &unacked, "not a hash"]);
    let channel = conn.channel().await.unwrap();
    let mut consumer = channel.consumer([queue.clone()]).auto_declare(false).build().await.unwrap();
    let early = consumer.next_timeout(Duration::from_millis(1500)).await.unwrap();
    assert!(early.is_none(), "a message was handed out without its record");
    eventually("every message back in the queue between attempts", PATIENCE, async || text(&raw(&["LLEN", &key])) == N.to_string()).await;
    raw(&["DEL", &unacked]);
    let mut seen = HashSet::new();
    receive_each_once(&mut consumer, N, &mut seen).await;
    assert!(consumer.next_timeout(Duration::from_millis(300)).await.unwrap().is_none(), "a message came twice");
    eventually("no stray index entry", PATIENCE, async || text(&raw(&["ZCARD", &format!("{prefix}unacked_index")])) == "0").await;
    queue.delete(&channel, false, false).await.unwrap();
}
