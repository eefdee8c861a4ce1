//! What a Redis consumer held when its connection was lost goes back at
//! once, as RabbitMQ requeues a lost channel's unacked deliveries, instead
//! of waiting out Kombu's visibility timeout (an hour by default): kelp
//! records which connection holds each unacked delivery, and a successor
//! connection of the same client, or any kelp process that sweeps once the
//! holder's liveness key expired, puts them back. Real `redis-server`
//! processes and kelp's TCP fault proxy; every message counted by id.
//! Timeouts only turn hangs into failures.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kelp::{Connection, Queue};
use kelp_test_support::{FaultMode, FaultProxy, RedisServer, RespValue, eventually};

const PATIENCE: Duration = Duration::from_secs(60);

fn start_server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server for this test: {e}"))
}

fn int(server: &RedisServer, args: &[&str]) -> i64 {
    match server.command(args).unwrap_or_else(|e| panic!("{args:?}: {e}")) {
        RespValue::Integer(n) => n,
        other => panic!("{args:?} answered {other:?}"),
    }
}

/// The number of unacked deliveries kelp records as held, over all holders.
fn held(server: &RedisServer) -> i64 {
    let keys = match server.command(&["KEYS", "_kelp.held*"]) {
        Ok(RespValue::Array(Some(keys))) => keys,
        other => panic!("KEYS answered {other:?}"),
    };
    keys.iter().map(|k| int(server, &["HLEN", &k.as_text().expect("a key name")])).sum()
}

async fn publish_ids(url: &str, queue: &Queue, ids: &[String]) {
    let conn = Connection::builder(url).automatic_recovery(false).build().unwrap();
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    for id in ids {
        producer.publish(id).message_id(id.clone()).send().await.unwrap_or_else(|e| panic!("publish {id}: {e}"));
    }
    conn.close().await.unwrap();
}

fn id_of(m: &kelp::Message) -> String {
    m.properties().message_id.as_deref().unwrap_or("<no id>").to_owned()
}

async fn next(consumer: &mut kelp::Consumer, what: &str) -> kelp::Message {
    match tokio::time::timeout(PATIENCE, consumer.next()).await {
        Ok(Some(Ok(m))) => m,
        Ok(Some(Err(e))) => panic!("{what}: the consumer failed: {e}"),
        Ok(None) => panic!("{what}: the consumer ended"),
        Err(_) => panic!("{what}: no message within {PATIENCE:?}"),
    }
}

/// A consumer holds 30 unacked deliveries when its connection is reset: the
/// same consumer gets all 30 again, marked redelivered, right after kelp
/// reconnects, not an hour later; once acked nothing is left in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i_a_lost_connections_unacked_deliveries_come_back_after_the_reconnect() {
    let server = start_server();
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let url = proxy.url_for(&server.url());
    let queue = Queue::new("held-reconnect");
    const N: usize = 30;
    let ids: Vec<String> = (0..N).map(|i| format!("i-{i}")).collect();
    publish_ids(&server.url(), &queue, &ids).await;

    let conn = Connection::builder(url.as_str()).heartbeat(Some(Duration::from_secs(1))).build().unwrap();
    let mut consumer = conn.consumer([queue.clone()]).prefetch_count(50).build().await.unwrap();
    let mut first = Vec::new();
    for _ in 0..N {
        first.push(next(&mut consumer, "the first deliveries").await);
    }
    assert!(first.iter().all(|m| !m.redelivered()));
    assert_eq!(int(&server, &["HLEN", "unacked"]), N as i64, "every delivery is recorded as unacked");
    assert_eq!(held(&server), N as i64, "and as held by this connection");

    proxy.set_mode(FaultMode::Reset).await;
    proxy.set_mode(FaultMode::Pass).await;

    let mut again: HashMap<String, usize> = HashMap::new();
    while again.len() < N {
        let m = next(&mut consumer, "the deliveries the lost connection held").await;
        assert!(m.redelivered(), "{} came back without the redelivered flag", id_of(&m));
        *again.entry(id_of(&m)).or_default() += 1;
        m.ack().await.unwrap();
    }
    assert_eq!(again.keys().cloned().collect::<HashSet<_>>(), ids.iter().cloned().collect::<HashSet<_>>());
    assert!(again.values().all(|n| *n == 1), "each given back once: {again:?}");
    // The old deliveries' acks belong to the lost connection: they change nothing.
    for m in first {
        let _ = m.ack().await;
    }
    eventually("Redis holds no unacked record and nothing held once all is acked", PATIENCE, async || {
        int(&server, &["HLEN", "unacked"]) == 0 && held(&server) == 0
    })
    .await;
    assert_eq!(int(&server, &["LLEN", "held-reconnect"]), 0);
    assert!(tokio::time::timeout(Duration::from_secs(2), consumer.next()).await.is_err(), "an extra delivery");
    conn.close().await.unwrap();
}

/// A connection cut off for good (a black hole: it never reconnects) holds
/// 20 unacked deliveries: once its liveness key expires, a process that
/// only polls with `get` on another connection gets all 20, marked
/// redelivered, with the visibility timeout left at Kombu's hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn j_a_gone_connections_unacked_deliveries_are_given_back_to_a_poller() {
    let server = start_server();
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let queue = Queue::new("held-gone");
    const N: usize = 20;
    let ids: Vec<String> = (0..N).map(|i| format!("j-{i}")).collect();
    publish_ids(&server.url(), &queue, &ids).await;

    let gone = Connection::builder(proxy.url_for(&server.url()).as_str()).build().unwrap();
    let mut consumer = gone.consumer([queue.clone()]).prefetch_count(50).build().await.unwrap();
    for _ in 0..N {
        next(&mut consumer, "the deliveries before the cut").await;
    }
    assert_eq!(held(&server), N as i64);
    proxy.set_mode(FaultMode::BlackHole).await;

    let poller = Connection::builder(server.url().as_str()).build().unwrap();
    let channel = poller.default_channel().await.unwrap();
    let mut got: HashMap<String, usize> = HashMap::new();
    eventually("the gone connection's deliveries are given back to the poller", PATIENCE, async || {
        while let Some(m) = queue.get(&channel, false).await.unwrap() {
            assert!(m.redelivered(), "{} came back without the redelivered flag", id_of(&m));
            *got.entry(id_of(&m)).or_default() += 1;
            m.ack().await.unwrap();
        }
        got.len() == N
    })
    .await;
    assert!(got.values().all(|n| *n == 1), "each given back once: {got:?}");
    assert_eq!(got.keys().cloned().collect::<HashSet<_>>(), ids.iter().cloned().collect::<HashSet<_>>());
    eventually("nothing held or unacked is left", PATIENCE, async || int(&server, &["HLEN", "unacked"]) == 0 && held(&server) == 0).await;
    poller.close().await.unwrap();
    drop(consumer);
    drop(gone);
}

/// The holder's keepalive moves its deliveries' time in Kombu's unacked
/// index (so a long handler's message is not restored under it); kelp's
/// held record moves with it, or a successor would take the record for
/// someone else's and leave it to the visibility timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k_the_held_record_follows_the_keepalive() {
    let server = start_server();
    let queue = Queue::new("held-keepalive");
    const N: usize = 5;
    let ids: Vec<String> = (0..N).map(|i| format!("k-{i}")).collect();
    publish_ids(&server.url(), &queue, &ids).await;
    // A visibility timeout of 3 s refreshes held deliveries every second.
    let conn = Connection::builder(server.url().as_str()).transport_option("visibility_timeout", 3.0).build().unwrap();
    let mut consumer = conn.consumer([queue.clone()]).prefetch_count(10).build().await.unwrap();
    let mut held_messages = Vec::new();
    for _ in 0..N {
        held_messages.push(next(&mut consumer, "the deliveries").await);
    }
    let key = match server.command(&["KEYS", "_kelp.held*"]) {
        Ok(RespValue::Array(Some(keys))) if keys.len() == 1 => keys[0].as_text().expect("a key name"),
        other => panic!("one held hash expected: {other:?}"),
    };
    let score = |tag: &str| match server.command(&["ZSCORE", "unacked_index", tag]) {
        Ok(v) => v.as_text().and_then(|t| t.parse::<f64>().ok()),
        Err(e) => panic!("ZSCORE: {e}"),
    };
    let held_at = |tag: &str| match server.command(&["HGET", &key, tag]) {
        Ok(v) => v.as_text().and_then(|t| t.split('\u{6}').next().and_then(|at| at.parse::<f64>().ok())),
        Err(e) => panic!("HGET: {e}"),
    };
    let tags: Vec<String> = match server.command(&["HKEYS", &key]) {
        Ok(RespValue::Array(Some(tags))) => tags.iter().filter_map(|t| t.as_text()).collect(),
        other => panic!("HKEYS answered {other:?}"),
    };
    assert_eq!(tags.len(), N);
    let first = score(&tags[0]).expect("recorded in the unacked index");
    eventually("the keepalive refreshes the unacked index", PATIENCE, async || score(&tags[0]).is_some_and(|s| s > first + 0.5)).await;
    // One refresh writes both; read them until a refresh is not half-seen.
    eventually("every held record carries its index time", PATIENCE, async || {
        tags.iter().all(|tag| matches!((score(tag), held_at(tag)), (Some(s), Some(h)) if (s - h).abs() < 1e-3))
    })
    .await;
    for m in held_messages {
        m.ack().await.unwrap();
    }
    eventually("nothing held once acked", PATIENCE, async || held(&server) == 0).await;
    conn.close().await.unwrap();
}
