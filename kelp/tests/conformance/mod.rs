//! The conformance suite: one set of behaviour scenarios, written once and
//! run against every transport (`memory.rs`, `amqp.rs`, `redis.rs`, each
//! with [`conformance_suite!`], which runs every scenario). Each scenario
//! takes the broker URL and uses fresh, uniquely named entities, so
//! scenarios run in parallel against one broker.
//!
//! It covers Kombu's own integration scenarios (connect/close/reconnect,
//! default channel, publish and consume, empty queue, direct/topic/fanout
//! routing, unroutable messages, TTL, priorities, ack/reject/requeue,
//! simple put/get) and the AMQP semantics kelp promises on top.
//!
//! What a transport may lack, a scenario asks of its
//! [`Capabilities`](kelp::Capabilities); where the transport lacks it, the
//! scenario asserts what the transport does instead: it refuses with
//! [`ErrorKind::Unsupported`], or (a publish to an exchange nobody declared,
//! where exchanges are not kept) takes the message and routes it nowhere.
//! Scenarios never ask which transport they run on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kelp::{
    Accept, Binding, Capabilities, Compression, Connection, DeliveryMode, ErrorKind, Exchange, FieldTable,
    Message, MessageState, Queue, Serializer, Value,
};
use kelp_test_support::eventually;
use serde_json::json;

/// Expands to one `#[tokio::test]` per scenario of the suite, every one of
/// them, run against the broker URL `$url` (an expression giving a
/// `String`, evaluated in each test).
#[macro_export]
macro_rules! conformance_suite {
    ($url:expr $(, $clock:ident)?) => {
        $crate::conformance_tests! {
            $url $(, $clock)?;
            connect_close_reconnect,
            default_channel_connects_lazily,
            as_uri_masks_password,
            publish_consume_json,
            every_serializer_round_trips,
            compression_round_trips,
            empty_queue_get_returns_none,
            simple_put_get,
            direct_routing,
            topic_routing,
            fanout_routing,
            headers_routing,
            exchange_to_exchange_binding,
            unroutable_mandatory_is_returned,
            publish_to_missing_exchange_is_a_channel_error,
            conflicting_redeclare_is_a_precondition_error,
            passive_declare_of_missing_queue_is_not_found,
            ack_reject_requeue,
            ack_multiple,
            reject_multiple_requeues_or_drops_earlier_messages,
            unacked_messages_return_when_the_channel_closes,
            dropped_consumer_gives_back_its_messages,
            prefetch_limits_unacked_deliveries,
            no_ack_consumer_needs_no_settling,
            accept_list_refuses_without_losing,
            decode_errors_go_to_the_hook,
            message_ttl_expires,
            priority_ordering,
            max_length_drops_head_or_rejects,
            purge_and_delete,
            server_named_queue,
            exclusive_queue_is_locked_to_its_connection,
            auto_delete_queue_goes_with_its_last_consumer,
            deleting_a_consumed_queue_cancels_the_consumer,
            transient_delivery_mode,
            many_messages_in_flight,
        }
    };
}

/// One `#[tokio::test]` per named scenario, run against `$url`; used by
/// [`conformance_suite!`], which names them all.
#[macro_export]
macro_rules! conformance_tests {
    ($url:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let url: String = $url;
                conformance::$name(&url).await;
            }
        )*
    };
    // An in-process broker on tokio's paused clock: waiting for a TTL or an
    // expiry takes no real time, and nothing depends on the machine's speed.
    ($url:expr, paused_clock; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(start_paused = true)]
            async fn $name() {
                let url: String = $url;
                conformance::$name(&url).await;
            }
        )*
    };
}

/// Generous bound for waiting on a message that must come; only there so a
/// broken test fails instead of hanging. Nothing asserts on elapsed time.
const PATIENCE: Duration = Duration::from_secs(20);
/// How long to watch for a message that must not come.
const QUIET: Duration = Duration::from_millis(300);

pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "kelp-test.{prefix}.{}.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

async fn connect(url: &str) -> Connection {
    let conn = Connection::new(url).expect("valid URL");
    conn.connect().await.unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    conn
}

/// A transient, auto-deleted queue (so failed runs leave nothing behind on a
/// real broker), bound to `exchange` with `routing_key`.
fn temp_queue(exchange: &Exchange, routing_key: &str) -> Queue {
    Queue::new(unique("q"))
        .exchange(exchange.clone())
        .routing_key(routing_key)
        .durable(false)
        .argument("x-expires", 60_000u32)
}

async fn next(consumer: &mut kelp::Consumer) -> Message {
    match tokio::time::timeout(PATIENCE, consumer.next()).await {
        Ok(Some(Ok(m))) => m,
        Ok(Some(Err(e))) => panic!("consumer failed: {e}"),
        Ok(None) => panic!("consumer ended"),
        Err(_) => panic!("no message within {PATIENCE:?}"),
    }
}

async fn assert_quiet(consumer: &mut kelp::Consumer) {
    if let Ok(Some(m)) = tokio::time::timeout(QUIET, consumer.next()).await {
        panic!("expected no message, got {m:?}");
    }
}

/// Poll `get` until a message arrives (brokers may route asynchronously).
async fn get_eventually(channel: &kelp::Channel, queue: &Queue) -> Message {
    eventually(&format!("a message in {}", queue.name), PATIENCE, async || {
        queue.get(channel, false).await.expect("get")
    })
    .await
}

async fn capabilities(conn: &Connection) -> Capabilities {
    conn.capabilities().await.expect("the transport's capabilities")
}

/// `result` is the transport refusing, as unsupported, what its
/// capabilities say it lacks.
fn assert_unsupported<T: std::fmt::Debug>(result: kelp::Result<T>, what: &str) {
    match result {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unsupported, "{what}: refused, but not as unsupported: {e}"),
        Ok(v) => panic!("{what}: accepted ({v:?}), though the transport's capabilities say it lacks it"),
    }
}

// ---------------------------------------------------------------------------
// Connection

pub async fn connect_close_reconnect(url: &str) {
    let conn = Connection::new(url).unwrap();
    assert!(!conn.is_connected(), "connections are lazy");
    conn.connect().await.unwrap();
    assert!(conn.is_connected());
    conn.close().await.unwrap();
    assert!(!conn.is_connected());
    conn.connect().await.unwrap();
    assert!(conn.is_connected());
    conn.close().await.unwrap();
    assert!(!conn.is_connected());
}

pub async fn default_channel_connects_lazily(url: &str) {
    let conn = Connection::new(url).unwrap();
    assert!(!conn.is_connected());
    let channel = conn.default_channel().await.unwrap();
    assert!(conn.is_connected());
    assert!(channel.is_open());
    // The same channel every time.
    let again = conn.default_channel().await.unwrap();
    let q = Queue::new(unique("default")).durable(false).auto_delete(true);
    let declared = q.declare(&channel).await.unwrap();
    let passive = q.inspect(&again).await.unwrap();
    assert_eq!(declared.name, passive.name);
}

pub async fn as_uri_masks_password(url: &str) {
    let conn = Connection::new(url).unwrap();
    let shown = format!("{conn} {conn:?} {}", conn.as_uri(false));
    if let Some(password) = conn.current_url().password()
        && !password.is_empty() {
            assert!(!shown.contains(&format!(":{password}@")), "password leaked: {shown}");
        }
}

// ---------------------------------------------------------------------------
// Publish and consume

pub async fn publish_consume_json(url: &str) {
    let conn = connect(url).await;
    let exchange = Exchange::direct(unique("ex")).durable(false).auto_delete(true);
    let queue = temp_queue(&exchange, "rk");
    let mut consumer = conn.consumer([queue.clone()]).build().await.unwrap();
    let producer = conn.producer().exchange(exchange.clone()).routing_key("rk").build().await.unwrap();
    producer
        .publish(&json!({"hello": "world", "n": [1, 2.5]}))
        .header("x-trace", "abc")
        .correlation_id("cid-1")
        .reply_to("replies")
        .send()
        .await
        .unwrap();
    let m = next(&mut consumer).await;
    assert_eq!(m.content_type(), Some("application/json"));
    assert_eq!(m.content_encoding(), Some("utf-8"));
    assert_eq!(m.properties().delivery_mode, Some(2), "persistent by default");
    assert_eq!(m.properties().priority, Some(0));
    assert_eq!(m.properties().correlation_id.as_deref(), Some("cid-1"));
    assert_eq!(m.properties().reply_to.as_deref(), Some("replies"));
    assert_eq!(m.headers().get("x-trace"), Some(&Value::from("abc")));
    assert_eq!(m.exchange(), exchange.name);
    assert_eq!(m.routing_key(), "rk");
    assert!(!m.redelivered());
    assert_eq!(
        m.delivery_info().consumer_tag.as_deref(),
        consumer.consumer_tags().first().copied()
    );
    let body: serde_json::Value = m.decode().unwrap();
    assert_eq!(body, json!({"hello": "world", "n": [1, 2.5]}));
    let payload = m.payload().unwrap();
    assert_eq!(payload.get("hello"), Some(&Value::from("world")));
    m.ack().await.unwrap();
    assert_eq!(m.state(), MessageState::Acked);
}

pub async fn every_serializer_round_trips(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new(unique("ser")).durable(false).argument("x-expires", 60_000u32);
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    let value = json!({"name": "kelp", "list": [1, "two", null, true], "nested": {"f": 1.5}});
    // The serializers this build has (json always).
    #[allow(unused_mut)]
    let mut serializers = vec![Serializer::json()];
    #[cfg(feature = "msgpack")]
    serializers.push(Serializer::msgpack());
    #[cfg(feature = "yaml")]
    serializers.push(Serializer::yaml());
    for serializer in serializers {
        let content_type = serializer.content_type().to_owned();
        producer.publish(&value).serializer(serializer).send().await.unwrap();
        let m = get_eventually(&channel, &queue).await;
        assert_eq!(m.content_type(), Some(content_type.as_str()));
        assert_eq!(m.decode::<serde_json::Value>().unwrap(), value, "{content_type}");
        m.ack().await.unwrap();
    }
    producer.publish("plain text").serializer(Serializer::text()).send().await.unwrap();
    let m = get_eventually(&channel, &queue).await;
    assert_eq!(m.content_type(), Some("text/plain"));
    assert_eq!(m.decode::<String>().unwrap(), "plain text");
    m.ack().await.unwrap();
    producer.publish_bytes(&b"\x00\x01\xfe"[..]).send().await.unwrap();
    let m = get_eventually(&channel, &queue).await;
    assert_eq!(m.content_type(), Some("application/data"));
    assert_eq!(m.content_encoding(), Some("binary"));
    assert_eq!(m.body().unwrap().as_ref(), b"\x00\x01\xfe");
    m.ack().await.unwrap();
}

pub async fn compression_round_trips(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new(unique("zip")).durable(false).argument("x-expires", 60_000u32);
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    let text = "kelp ".repeat(1000);
    // The methods this build has.
    for method in Compression::ALL.into_iter().filter(|m| m.is_available()) {
        producer.publish(&text).compression(method).send().await.unwrap();
        let m = get_eventually(&channel, &queue).await;
        assert_eq!(m.compression(), Some(method.mime_type()));
        assert!(m.raw_body().len() < text.len(), "{method:?} compresses");
        assert_eq!(m.decode::<String>().unwrap(), text);
        m.ack().await.unwrap();
    }
}

pub async fn empty_queue_get_returns_none(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new(unique("empty")).durable(false).argument("x-expires", 60_000u32);
    queue.declare(&channel).await.unwrap();
    assert!(queue.get(&channel, false).await.unwrap().is_none());
}

pub async fn simple_put_get(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new(unique("simple")).durable(false).argument("x-expires", 60_000u32);
    let declared = queue.declare(&channel).await.unwrap();
    assert_eq!(declared.message_count, 0);
    let producer = conn.producer().build().await.unwrap();
    for i in 0..3 {
        producer.publish(&i).routing_key(queue.name.clone()).send().await.unwrap();
    }
    for i in 0..3 {
        let m = get_eventually(&channel, &queue).await;
        assert_eq!(m.decode::<i32>().unwrap(), i, "FIFO order");
        m.ack().await.unwrap();
    }
    assert!(queue.get(&channel, false).await.unwrap().is_none());
}

// ---------------------------------------------------------------------------
// Routing

pub async fn direct_routing(url: &str) {
    let conn = connect(url).await;
    let exchange = Exchange::direct(unique("direct")).durable(false).auto_delete(true);
    let a = temp_queue(&exchange, "a");
    let b = temp_queue(&exchange, "b");
    let mut ca = conn.consumer([a]).build().await.unwrap();
    let mut cb = conn.channel().await.unwrap().consumer([b]).build().await.unwrap();
    let producer = conn.producer().exchange(exchange).build().await.unwrap();
    producer.publish("to a").routing_key("a").send().await.unwrap();
    producer.publish("to b").routing_key("b").send().await.unwrap();
    producer.publish("to nobody").routing_key("c").send().await.unwrap();
    let m = next(&mut ca).await;
    assert_eq!(m.decode::<String>().unwrap(), "to a");
    m.ack().await.unwrap();
    let m = next(&mut cb).await;
    assert_eq!(m.decode::<String>().unwrap(), "to b");
    m.ack().await.unwrap();
    assert_quiet(&mut ca).await;
    assert_quiet(&mut cb).await;
}

pub async fn topic_routing(url: &str) {
    let conn = connect(url).await;
    let exchange = Exchange::topic(unique("topic")).durable(false).auto_delete(true);
    let star = temp_queue(&exchange, "t.*");
    let hash = temp_queue(&exchange, "t.#");
    let mut cstar = conn.consumer([star]).build().await.unwrap();
    let mut chash = conn.channel().await.unwrap().consumer([hash]).build().await.unwrap();
    let producer = conn.producer().exchange(exchange).build().await.unwrap();
    for key in ["t", "t.a", "t.a.b", "x.a"] {
        producer.publish(key).routing_key(key).send().await.unwrap();
    }
    // `t.*` matches exactly one more word: only "t.a".
    let m = next(&mut cstar).await;
    assert_eq!(m.routing_key(), "t.a");
    m.ack().await.unwrap();
    assert_quiet(&mut cstar).await;
    // `t.#` matches zero or more words: "t", "t.a", "t.a.b".
    let mut seen = Vec::new();
    for _ in 0..3 {
        let m = next(&mut chash).await;
        seen.push(m.routing_key().to_owned());
        m.ack().await.unwrap();
    }
    assert_eq!(seen, ["t", "t.a", "t.a.b"]);
    assert_quiet(&mut chash).await;
}

pub async fn fanout_routing(url: &str) {
    let conn = connect(url).await;
    let exchange = Exchange::fanout(unique("fanout")).durable(false).auto_delete(true);
    let mut consumers = Vec::new();
    for _ in 0..2 {
        let q = temp_queue(&exchange, "");
        consumers.push(conn.channel().await.unwrap().consumer([q]).build().await.unwrap());
    }
    let producer = conn.producer().exchange(exchange).build().await.unwrap();
    producer.publish("everyone").routing_key("ignored").send().await.unwrap();
    for c in &mut consumers {
        let m = next(c).await;
        assert_eq!(m.decode::<String>().unwrap(), "everyone");
        m.ack().await.unwrap();
    }
}

pub async fn headers_routing(url: &str) {
    let conn = connect(url).await;
    let exchange = Exchange::headers(unique("headers")).durable(false).auto_delete(true);
    let all = Queue::new(unique("all"))
        .durable(false)
        .argument("x-expires", 60_000u32)
        .binding(
            Binding::new(exchange.clone(), "")
                .argument("x-match", "all")
                .argument("format", "pdf")
                .argument("type", "report"),
        );
    let any = Queue::new(unique("any"))
        .durable(false)
        .argument("x-expires", 60_000u32)
        .binding(
            Binding::new(exchange.clone(), "")
                .argument("x-match", "any")
                .argument("format", "zip")
                .argument("type", "report"),
        );
    if !capabilities(&conn).await.headers {
        let channel = conn.default_channel().await.unwrap();
        assert_unsupported(exchange.declare(&channel).await, "declaring a headers exchange");
        assert_unsupported(
            conn.consumer([all]).build().await.map(|c| c.consumer_tags().len()),
            "consuming from a queue bound to a headers exchange",
        );
        return;
    }
    let mut call = conn.consumer([all]).build().await.unwrap();
    let mut cany = conn.channel().await.unwrap().consumer([any]).build().await.unwrap();
    let producer = conn.producer().exchange(exchange).build().await.unwrap();
    producer
        .publish("pdf report")
        .header("format", "pdf")
        .header("type", "report")
        .send()
        .await
        .unwrap();
    producer.publish("zip log").header("format", "zip").header("type", "log").send().await.unwrap();
    let m = next(&mut call).await;
    assert_eq!(m.decode::<String>().unwrap(), "pdf report");
    m.ack().await.unwrap();
    assert_quiet(&mut call).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = next(&mut cany).await;
        got.push(m.decode::<String>().unwrap());
        m.ack().await.unwrap();
    }
    got.sort();
    assert_eq!(got, ["pdf report", "zip log"]);
}

pub async fn exchange_to_exchange_binding(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let upstream = Exchange::topic(unique("up")).durable(false).auto_delete(true);
    let downstream = Exchange::fanout(unique("down")).durable(false).auto_delete(true);
    upstream.declare(&channel).await.unwrap();
    downstream.declare(&channel).await.unwrap();
    let bound = downstream.bind_to(&channel, &upstream.name, "orders.#", &FieldTable::new()).await;
    if !capabilities(&conn).await.exchange_bindings {
        assert_unsupported(bound, "binding an exchange to an exchange");
        return;
    }
    bound.unwrap();
    let queue = temp_queue(&downstream, "");
    let mut consumer = conn.consumer([queue]).build().await.unwrap();
    let producer = conn.producer().exchange(upstream).build().await.unwrap();
    producer.publish("o1").routing_key("orders.eu").send().await.unwrap();
    producer.publish("x").routing_key("stock.eu").send().await.unwrap();
    let m = next(&mut consumer).await;
    assert_eq!(m.decode::<String>().unwrap(), "o1");
    m.ack().await.unwrap();
    assert_quiet(&mut consumer).await;
}

pub async fn unroutable_mandatory_is_returned(url: &str) {
    let conn = connect(url).await;
    let exchange = Exchange::direct(unique("unroutable")).durable(false).auto_delete(true);
    let returned = Arc::new(Mutex::new(Vec::new()));
    let seen = returned.clone();
    let producer = conn
        .producer()
        .exchange(exchange.clone())
        .on_return(move |r| seen.lock().unwrap().push(r.routing_key.to_string()))
        .build()
        .await
        .unwrap();
    let err = producer
        .publish("lost?")
        .routing_key("nowhere")
        .mandatory(true)
        .send()
        .await
        .expect_err("an unroutable mandatory message comes back");
    assert_eq!(err.kind(), ErrorKind::Unroutable);
    assert_eq!(err.reply_code(), Some(312));
    let back = err.returned_message().expect("the returned message");
    assert_eq!(back.routing_key, "nowhere");
    assert_eq!(back.exchange, exchange.name.as_str());
    assert_eq!(returned.lock().unwrap().as_slice(), ["nowhere"]);
    // Without mandatory, an unroutable message is dropped silently.
    producer.publish("dropped").routing_key("nowhere").send().await.unwrap();
}

/// Where the transport keeps exchanges (`checks_exchanges`), a publish to
/// one that does not exist is a channel error (404) and the channel
/// reopens by itself. Where it keeps none (Redis, as Kombu's), there is no
/// telling: the publish is taken and goes nowhere.
pub async fn publish_to_missing_exchange_is_a_channel_error(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let producer = conn.producer().confirms(true).build().await.unwrap();
    let missing = unique("missing");
    if !capabilities(&conn).await.checks_exchanges {
        publish_to_missing_exchange_goes_nowhere(&conn, &producer, &missing).await;
        return;
    }
    let err = producer
        .publish("x")
        .exchange(missing.clone())
        .routing_key("k")
        .send()
        .await
        .expect_err("the exchange does not exist");
    assert_eq!(err.reply_code(), Some(404), "{err}");
    assert!(err.is_not_found() && err.is_fatal(), "{err}");
    // The connection is still usable and the channel reopens by itself.
    assert!(conn.is_connected());
    let queue = Queue::new(unique("after404")).durable(false).argument("x-expires", 60_000u32);
    queue.declare(&channel).await.unwrap();
    producer.publish("ok").routing_key(queue.name.clone()).send().await.unwrap();
    let m = get_eventually(&channel, &queue).await;
    assert_eq!(m.decode::<String>().unwrap(), "ok");
    m.ack().await.unwrap();
}

/// Without exchange checks: a publish to `missing`, routed by the queue's
/// name, is taken but not delivered; with `mandatory` it comes back
/// unroutable.
async fn publish_to_missing_exchange_goes_nowhere(conn: &Connection, producer: &kelp::Producer, missing: &str) {
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new(unique("bynamed")).durable(false).argument("x-expires", 60_000u32);
    queue.declare(&channel).await.unwrap();
    producer
        .publish("lost")
        .exchange(missing.to_owned())
        .routing_key(queue.name.clone())
        .send()
        .await
        .expect("taken: the transport cannot tell the exchange is missing");
    let err = producer
        .publish("lost")
        .exchange(missing.to_owned())
        .routing_key(queue.name.clone())
        .mandatory(true)
        .send()
        .await
        .expect_err("no queue is bound to it");
    assert_eq!(err.kind(), ErrorKind::Unroutable, "{err}");
    // Neither reached the queue: the first message in it is the one
    // published to it directly, and the last.
    assert!(conn.is_connected());
    producer.publish("ok").routing_key(queue.name.clone()).send().await.unwrap();
    let m = get_eventually(&channel, &queue).await;
    assert_eq!(m.decode::<String>().unwrap(), "ok");
    m.ack().await.unwrap();
    assert!(queue.get(&channel, false).await.unwrap().is_none(), "nothing published to {missing} was delivered");
}

pub async fn conflicting_redeclare_is_a_precondition_error(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let name = unique("conflict");
    let queue = Queue::new(name.clone()).durable(false).argument("x-expires", 60_000u32);
    queue.declare(&channel).await.unwrap();
    let conflicting = Queue::new(name.clone()).durable(true).argument("x-expires", 60_000u32);
    let err = conflicting.declare(&channel).await.expect_err("406");
    assert_eq!(err.reply_code(), Some(406), "{err}");
    assert!(err.is_precondition_failed() && err.is_channel() && err.is_fatal());
    let exchange = Exchange::direct(unique("xconflict")).durable(false).auto_delete(true);
    exchange.declare(&channel).await.unwrap();
    let err = Exchange::fanout(exchange.name.clone())
        .durable(false)
        .auto_delete(true)
        .declare(&channel)
        .await
        .expect_err("406 for another type");
    assert_eq!(err.reply_code(), Some(406));
    // Still usable.
    assert!(conn.is_connected());
    let again = queue.declare(&channel).await.unwrap();
    assert_eq!(again.name, name);
}

pub async fn passive_declare_of_missing_queue_is_not_found(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let err = Queue::new(unique("nope"))
        .inspect(&channel)
        .await
        .expect_err("404");
    assert!(err.is_not_found(), "{err}");
    let err = Exchange::direct(unique("nope"))
        .passive(true)
        .declare(&channel)
        .await
        .expect_err("404");
    assert!(err.is_not_found(), "{err}");
}

// ---------------------------------------------------------------------------
// Message lifecycle

pub async fn ack_reject_requeue(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new(unique("life")).durable(false).argument("x-expires", 60_000u32);
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();

    // ack: gone for good; a second ack is refused locally.
    producer.publish("ack me").send().await.unwrap();
    let m = get_eventually(&channel, &queue).await;
    m.ack().await.unwrap();
    let err = m.ack().await.expect_err("double ack");
    assert_eq!(err.kind(), ErrorKind::MessageState);
    assert!(err.to_string().contains("ACK"), "{err}");
    assert!(m.reject().await.is_err(), "no reject after ack");

    // reject: dropped.
    producer.publish("reject me").send().await.unwrap();
    let m = get_eventually(&channel, &queue).await;
    m.reject().await.unwrap();
    assert_eq!(m.state(), MessageState::Rejected);

    // requeue: comes back, flagged redelivered.
    producer.publish("requeue me").send().await.unwrap();
    let m = get_eventually(&channel, &queue).await;
    assert!(!m.redelivered());
    m.requeue().await.unwrap();
    assert_eq!(m.state(), MessageState::Requeued);
    let again = get_eventually(&channel, &queue).await;
    assert_eq!(again.decode::<String>().unwrap(), "requeue me");
    assert!(again.redelivered());
    again.ack().await.unwrap();
    assert!(queue.get(&channel, false).await.unwrap().is_none());
}

/// A fresh queue with the integers `0..n` published to it and delivered
/// (unsettled) to a consumer with prefetch 10.
async fn delivered(url: &str, prefix: &str, n: i32) -> (Connection, Queue, kelp::Consumer, Vec<Message>) {
    let conn = connect(url).await;
    let queue = Queue::new(unique(prefix)).durable(false).argument("x-expires", 60_000u32);
    let mut consumer = conn.consumer([queue.clone()]).prefetch_count(10).build().await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    for i in 0..n {
        producer.publish(&i).send().await.unwrap();
    }
    let mut messages = Vec::new();
    for _ in 0..n {
        messages.push(next(&mut consumer).await);
    }
    (conn, queue, consumer, messages)
}

pub async fn ack_multiple(url: &str) {
    let (conn, queue, mut consumer, messages) = delivered(url, "multi", 5).await;
    messages[4].ack_multiple().await.unwrap();
    consumer.cancel().await.unwrap();
    drop(consumer);
    conn.default_channel().await.unwrap().close().await.unwrap();
    // Nothing comes back after the channel closed: all five were acked.
    let channel = conn.channel().await.unwrap();
    let declared = queue.inspect(&channel).await.unwrap();
    assert_eq!(declared.message_count, 0);
}

pub async fn reject_multiple_requeues_or_drops_earlier_messages(url: &str) {
    let (conn, queue, mut consumer, first) = delivered(url, "nackmulti", 6).await;
    // 0..=2 back to the queue, then 3..=5 dropped.
    first[2].reject_multiple(true).await.unwrap();
    assert_eq!(first[2].state(), MessageState::Requeued);
    assert!(first[2].reject_multiple(true).await.unwrap_err().is_message_state());
    let mut again = Vec::new();
    for _ in 0..3 {
        let m = next(&mut consumer).await;
        assert!(m.redelivered());
        again.push(m.decode::<i32>().unwrap());
    }
    again.sort();
    assert_eq!(again, vec![0, 1, 2]);
    first[5].reject_multiple(false).await.unwrap();
    assert_eq!(first[5].state(), MessageState::Rejected);
    consumer.cancel().await.unwrap();
    drop(consumer);
    conn.default_channel().await.unwrap().close().await.unwrap();
    // The redelivered three were unsettled and return; 3..=5 are gone.
    let channel = conn.channel().await.unwrap();
    let mut left = Vec::new();
    for _ in 0..3 {
        let m = get_eventually(&channel, &queue).await;
        left.push(m.decode::<i32>().unwrap());
        m.ack().await.unwrap();
    }
    left.sort();
    assert_eq!(left, vec![0, 1, 2]);
    assert!(queue.get(&channel, false).await.unwrap().is_none(), "3..=5 were dropped");
}

pub async fn unacked_messages_return_when_the_channel_closes(url: &str) {
    let conn = connect(url).await;
    let queue = Queue::new(unique("unacked")).durable(false).argument("x-expires", 60_000u32);
    let channel = conn.channel().await.unwrap();
    let mut consumer = channel.consumer([queue.clone()]).build().await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    producer.publish("precious").send().await.unwrap();
    let m = next(&mut consumer).await;
    assert_eq!(m.decode::<String>().unwrap(), "precious");
    channel.close().await.unwrap(); // without acking
    let other = conn.channel().await.unwrap();
    let again = get_eventually(&other, &queue).await;
    assert_eq!(again.decode::<String>().unwrap(), "precious");
    assert!(again.redelivered());
    again.ack().await.unwrap();
}

pub async fn dropped_consumer_gives_back_its_messages(url: &str) {
    let conn = connect(url).await;
    let queue = Queue::new(unique("drop")).durable(false).argument("x-expires", 60_000u32);
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    let consumer_channel = conn.channel().await.unwrap();
    let mut consumer = consumer_channel.consumer([queue.clone()]).prefetch_count(10).build().await.unwrap();
    for i in 0..3 {
        producer.publish(&i).send().await.unwrap();
    }
    let first = next(&mut consumer).await;
    first.ack().await.unwrap();
    drop(consumer); // two delivered, never handed out
    let other = conn.channel().await.unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = get_eventually(&other, &queue).await;
        got.push(m.decode::<i32>().unwrap());
        m.ack().await.unwrap();
    }
    got.sort_unstable();
    assert_eq!(got, [1, 2]);
}

pub async fn prefetch_limits_unacked_deliveries(url: &str) {
    let conn = connect(url).await;
    let queue = Queue::new(unique("prefetch")).durable(false).argument("x-expires", 60_000u32);
    let mut consumer = conn.consumer([queue.clone()]).prefetch_count(2).build().await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    for i in 0..5 {
        producer.publish(&i).send().await.unwrap();
    }
    let a = next(&mut consumer).await;
    let b = next(&mut consumer).await;
    assert_quiet(&mut consumer).await; // a third needs an ack first
    a.ack().await.unwrap();
    let c = next(&mut consumer).await;
    assert_eq!(c.decode::<i32>().unwrap(), 2);
    assert_quiet(&mut consumer).await;
    b.ack().await.unwrap();
    c.ack().await.unwrap();
    for expected in 3..5 {
        let m = next(&mut consumer).await;
        assert_eq!(m.decode::<i32>().unwrap(), expected);
        m.ack().await.unwrap();
    }
}

pub async fn no_ack_consumer_needs_no_settling(url: &str) {
    let conn = connect(url).await;
    let queue = Queue::new(unique("noack")).durable(false).argument("x-expires", 60_000u32);
    let mut consumer = conn.consumer([queue.clone()]).no_ack(true).build().await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    producer.publish("fire").send().await.unwrap();
    let m = next(&mut consumer).await;
    m.ack().await.expect("a no-op on no_ack consumers");
    consumer.cancel().await.unwrap();
    conn.close().await.unwrap();
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    assert!(queue.get(&channel, false).await.unwrap().is_none(), "nothing redelivered");
}

pub async fn accept_list_refuses_without_losing(url: &str) {
    let conn = connect(url).await;
    let queue = Queue::new(unique("accept")).durable(false).argument("x-expires", 60_000u32);
    let mut consumer = conn
        .consumer([queue.clone()])
        .accept(Accept::new(["json"]).unwrap())
        .build()
        .await
        .unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    producer.publish("plain").serializer(Serializer::text()).send().await.unwrap();
    let m = next(&mut consumer).await;
    let err = m.decode::<serde_json::Value>().expect_err("text/plain is not accepted");
    assert_eq!(err.kind(), ErrorKind::ContentDisallowed);
    assert!(m.payload().unwrap_err().is_content_disallowed());
    // The raw body is still there, and the message can go back to the queue.
    assert!(!m.raw_body().is_empty());
    m.requeue().await.unwrap();
    let again = next(&mut consumer).await;
    assert!(again.redelivered());
    assert!(again.decode::<serde_json::Value>().is_err());
    again.reject().await.unwrap();
}

pub async fn decode_errors_go_to_the_hook(url: &str) {
    let conn = connect(url).await;
    let queue = Queue::new(unique("hook")).durable(false).argument("x-expires", 60_000u32);
    let failures = Arc::new(AtomicUsize::new(0));
    let counted = failures.clone();
    let mut consumer = conn
        .consumer([queue.clone()])
        .on_decode_error(move |message, error| {
            let counted = counted.clone();
            async move {
                assert!(error.is_decode(), "{error}");
                counted.fetch_add(1, Ordering::SeqCst);
                message.reject().await
            }
        })
        .build()
        .await
        .unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    producer
        .publish_bytes(&b"{not json"[..])
        .content_type("application/json")
        .content_encoding("utf-8")
        .send()
        .await
        .unwrap();
    producer.publish(&7u32).send().await.unwrap();
    #[derive(Debug)]
    enum Stop {
        Done,
        Kelp(kelp::Error),
    }
    impl From<kelp::Error> for Stop {
        fn from(e: kelp::Error) -> Stop {
            Stop::Kelp(e)
        }
    }
    let mut got = None;
    let run = consumer.run_decoded(|n: u32, m| {
        got = Some(n);
        async move {
            m.ack().await?;
            Err::<(), Stop>(Stop::Done)
        }
    });
    let stop = tokio::time::timeout(PATIENCE, run).await.expect("run ends").unwrap_err();
    if let Stop::Kelp(e) = stop {
        panic!("the run failed instead of being stopped by the handler: {e}");
    }
    assert_eq!(got, Some(7));
    assert_eq!(failures.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------
// Queue features

pub async fn message_ttl_expires(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    if !capabilities(&conn).await.message_ttl {
        // Only the queue argument is refused: a per-message `expiration`
        // is taken and carried along (Kombu's envelope has it), not
        // honoured, so there is nothing true to assert of it here.
        let short_lived = Queue::new(unique("qttl"))
            .durable(false)
            .message_ttl(Duration::from_millis(100))
            .argument("x-expires", 60_000u32);
        assert_unsupported(short_lived.declare(&channel).await, "a queue with x-message-ttl");
        return;
    }
    let queue = Queue::new(unique("ttl")).durable(false).argument("x-expires", 60_000u32);
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    producer.publish("short").expiration(Duration::from_millis(100)).send().await.unwrap();
    producer.publish("long").expiration(Duration::from_secs(60)).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let m = get_eventually(&channel, &queue).await;
    assert_eq!(m.decode::<String>().unwrap(), "long");
    assert_eq!(m.properties().expiration.as_deref(), Some("60000"));
    m.ack().await.unwrap();
    assert!(queue.get(&channel, false).await.unwrap().is_none());

    // Per-queue TTL (x-message-ttl).
    let short_lived = Queue::new(unique("qttl"))
        .durable(false)
        .message_ttl(Duration::from_millis(100))
        .argument("x-expires", 60_000u32);
    short_lived.declare(&channel).await.unwrap();
    producer.publish("gone").routing_key(short_lived.name.clone()).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(short_lived.get(&channel, false).await.unwrap().is_none());
}

pub async fn priority_ordering(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new(unique("prio"))
        .durable(false)
        .max_priority(10)
        .argument("x-expires", 60_000u32);
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    for p in [1u8, 5, 10, 3, 5] {
        producer.publish(&p).priority(p).send().await.unwrap();
    }
    let mut order = Vec::new();
    for _ in 0..5 {
        let m = get_eventually(&channel, &queue).await;
        order.push(m.decode::<u8>().unwrap());
        m.ack().await.unwrap();
    }
    if capabilities(&conn).await.strict_priorities {
        assert_eq!(order, [10, 5, 5, 3, 1], "highest priority first, FIFO within a priority");
    } else {
        // Kombu's Redis order, kept for wire compatibility: buckets of
        // priority_steps (0, 3, 6, 9), the lowest bucket first, FIFO within one.
        assert_eq!(order, [1, 5, 3, 5, 10], "Kombu's Redis priority buckets");
    }
}

pub async fn max_length_drops_head_or_rejects(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    if !capabilities(&conn).await.max_length {
        let limited = |name: &str| Queue::new(unique(name)).durable(false).argument("x-expires", 60_000u32);
        assert_unsupported(limited("maxlen").max_length(2).declare(&channel).await, "a queue with x-max-length");
        assert_unsupported(
            limited("maxbytes").max_length_bytes(1024).declare(&channel).await,
            "a queue with x-max-length-bytes",
        );
        return;
    }
    let drop_head = Queue::new(unique("maxlen"))
        .durable(false)
        .max_length(2)
        .argument("x-expires", 60_000u32);
    drop_head.declare(&channel).await.unwrap();
    let producer = conn.producer().build().await.unwrap();
    for i in 0..4 {
        producer.publish(&i).routing_key(drop_head.name.clone()).send().await.unwrap();
    }
    let declared = drop_head.inspect(&channel).await.unwrap();
    assert_eq!(declared.message_count, 2);
    let m = get_eventually(&channel, &drop_head).await;
    assert_eq!(m.decode::<i32>().unwrap(), 2, "the oldest were dropped");
    m.ack().await.unwrap();

    let reject = Queue::new(unique("reject"))
        .durable(false)
        .max_length(1)
        .argument("x-overflow", "reject-publish")
        .argument("x-expires", 60_000u32);
    reject.declare(&channel).await.unwrap();
    producer.publish(&1).routing_key(reject.name.clone()).send().await.unwrap();
    let err = producer
        .publish(&2)
        .routing_key(reject.name.clone())
        .send()
        .await
        .expect_err("the full queue refuses it");
    assert_eq!(err.kind(), ErrorKind::Nacked, "{err}");
    assert!(err.is_recoverable());
}

pub async fn purge_and_delete(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new(unique("purge")).durable(false).argument("x-expires", 60_000u32);
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    for i in 0..3 {
        producer.publish(&i).send().await.unwrap();
    }
    // Publishing is confirmed; the broker may still be counting.
    eventually("the queue counts 3 messages", PATIENCE, async || {
        queue.inspect(&channel).await.unwrap().message_count >= 3
    })
    .await;
    let err = queue.delete(&channel, false, true).await.expect_err("not empty");
    assert!(err.is_precondition_failed(), "{err}");
    assert_eq!(queue.purge(&channel).await.unwrap(), 3);
    assert_eq!(queue.delete(&channel, false, true).await.unwrap(), 0);
    let err = queue.inspect(&channel).await.expect_err("deleted");
    assert!(err.is_not_found());

    let busy = Queue::new(unique("busy")).durable(false).argument("x-expires", 60_000u32);
    let _consumer = conn.channel().await.unwrap().consumer([busy.clone()]).build().await.unwrap();
    let err = busy.delete(&channel, true, false).await.expect_err("in use");
    assert!(err.is_precondition_failed(), "{err}");
}

pub async fn server_named_queue(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let declared = Queue::server_named().declare(&channel).await.unwrap();
    assert!(declared.name.starts_with("amq.gen-"), "{}", declared.name);
    let producer = conn.producer().build().await.unwrap();
    producer.publish("hi").routing_key(declared.name.clone()).send().await.unwrap();
    let m = get_eventually(&channel, &Queue::new(declared.name.clone())).await;
    assert_eq!(m.decode::<String>().unwrap(), "hi");
    m.ack().await.unwrap();
}

pub async fn exclusive_queue_is_locked_to_its_connection(url: &str) {
    let owner = connect(url).await;
    let other = connect(url).await;
    let queue = Queue::new(unique("excl")).durable(false).exclusive(true);
    queue.declare(&owner.default_channel().await.unwrap()).await.unwrap();
    let err = queue
        .declare(&other.default_channel().await.unwrap())
        .await
        .expect_err("locked");
    assert!(err.is_resource_locked(), "{err}");
    owner.close().await.unwrap();
    // Gone with its connection.
    eventually("the exclusive queue goes with its connection", PATIENCE, async || {
        matches!(queue.inspect(&other.default_channel().await.unwrap()).await, Err(e) if e.is_not_found())
    })
    .await;
}

pub async fn auto_delete_queue_goes_with_its_last_consumer(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new(unique("autodel")).durable(false).auto_delete(true);
    let mut consumer = conn.channel().await.unwrap().consumer([queue.clone()]).build().await.unwrap();
    queue.inspect(&channel).await.expect("exists while consumed");
    consumer.cancel().await.unwrap();
    eventually("the auto-delete queue goes with its last consumer", PATIENCE, async || {
        matches!(queue.inspect(&channel).await, Err(e) if e.is_not_found())
    })
    .await;
}

pub async fn deleting_a_consumed_queue_cancels_the_consumer(url: &str) {
    let conn = connect(url).await;
    let queue = Queue::new(unique("cancelme")).durable(false).argument("x-expires", 60_000u32);
    let mut consumer = conn.channel().await.unwrap().consumer([queue.clone()]).build().await.unwrap();
    queue.delete(&conn.default_channel().await.unwrap(), false, false).await.unwrap();
    let event = tokio::time::timeout(PATIENCE, consumer.next())
        .await
        .expect("a cancel notification")
        .expect("an item");
    let err = event.expect_err("the subscription ended");
    assert!(err.is_cancelled(), "{err}");
    assert!(err.to_string().contains(&queue.name), "{err}");
    assert!(consumer.consumer_tags().is_empty());
}

pub async fn transient_delivery_mode(url: &str) {
    let conn = connect(url).await;
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new(unique("transient")).durable(false).argument("x-expires", 60_000u32);
    queue.declare(&channel).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    producer.publish("t").delivery_mode(DeliveryMode::Transient).send().await.unwrap();
    let m = get_eventually(&channel, &queue).await;
    assert_eq!(m.properties().delivery_mode, Some(1));
    m.ack().await.unwrap();
}

pub async fn many_messages_in_flight(url: &str) {
    let conn = connect(url).await;
    let queue = Queue::new(unique("flight")).durable(false).argument("x-expires", 60_000u32);
    let mut consumer = conn.consumer([queue.clone()]).prefetch_count(100).build().await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    const N: u32 = 2_000;
    let publisher = tokio::spawn(async move {
        let mut pending = std::collections::VecDeque::new();
        for i in 0..N {
            pending.push_back(producer.publish(&i).enqueue().await.unwrap());
            if pending.len() >= 256 {
                pending.pop_front().unwrap().await.unwrap();
            }
        }
        for c in pending {
            c.await.unwrap();
        }
    });
    for expected in 0..N {
        let m = next(&mut consumer).await;
        assert_eq!(m.decode::<u32>().unwrap(), expected);
        m.ack().await.unwrap();
    }
    publisher.await.unwrap();
}
