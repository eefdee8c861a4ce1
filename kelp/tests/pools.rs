//! Connection and producer pools on `memory://`, the real RabbitMQ and the
//! real Redis: limits, blocking and non-blocking acquire, timeouts,
//! replacement of broken resources, run-time limits, reset, and 64 tasks
//! sharing one pool without leaking a connection (counted on the broker).

mod every_transport;

use std::time::Duration;

use kelp::{Connection, ConnectionPool, ProducerPool, Queue};
use kelp_test_support::{eventually, unique_name};

const PATIENCE: Duration = Duration::from_secs(20);

on_every_transport!(
    limit_and_nonblocking_acquire,
    blocking_acquire_waits_for_a_release,
    acquire_timeout_is_a_timeout_error,
    broken_connections_are_replaced,
    limit_changes_at_run_time,
    reset_closes_everything,
    producer_pool_keeps_channel_and_confirms,
);

async fn limit_and_nonblocking_acquire(url: &str) {
    let pool = ConnectionPool::new(Connection::builder(url), 2);
    assert_eq!(pool.limit(), 2);
    let a = pool.acquire_nowait().await.unwrap();
    let b = pool.acquire_nowait().await.unwrap();
    assert_eq!(pool.in_use(), 2);
    let err = pool.acquire_nowait().await.expect_err("the limit is 2");
    assert!(err.is_limit_exceeded(), "{err}");
    a.connect().await.unwrap();
    drop(a);
    assert_eq!((pool.in_use(), pool.idle()), (1, 1));
    let again = pool.acquire_nowait().await.unwrap();
    assert!(again.is_connected(), "the released connection is handed out again, still connected");
    drop((again, b));
    assert_eq!((pool.in_use(), pool.idle()), (0, 2));
}

async fn blocking_acquire_waits_for_a_release(url: &str) {
    let pool = ConnectionPool::new(Connection::builder(url), 1);
    let held = pool.acquire().await.unwrap();
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.acquire().await.map(|c| c.urls().len()) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "acquire must wait while the only connection is held");
    drop(held);
    let got = tokio::time::timeout(PATIENCE, waiter).await.expect("woken by the release").unwrap();
    assert_eq!(got.unwrap(), 1);
}

async fn acquire_timeout_is_a_timeout_error(url: &str) {
    let pool = ConnectionPool::new(Connection::builder(url), 1);
    let _held = pool.acquire().await.unwrap();
    let err = pool.acquire_timeout(Duration::from_millis(50)).await.expect_err("nothing is released");
    assert!(err.is_timeout(), "{err}");
}

async fn broken_connections_are_replaced(url: &str) {
    let pool = ConnectionPool::new(Connection::builder(url), 1);
    // Closed by the application while in use: not handed out again.
    let conn = pool.acquire().await.unwrap();
    conn.connect().await.unwrap();
    conn.close().await.unwrap();
    drop(conn);
    assert_eq!(pool.idle(), 0, "a closed connection does not go back");
    // Discarded explicitly.
    let conn = pool.acquire().await.unwrap();
    conn.connect().await.unwrap();
    conn.discard();
    assert_eq!((pool.in_use(), pool.idle()), (0, 0));
    // Dropped while panicking.
    let pool2 = pool.clone();
    let panicked = tokio::spawn(async move {
        let conn = pool2.acquire().await.unwrap();
        conn.connect().await.unwrap();
        panic!("the handler failed");
    })
    .await;
    assert!(panicked.is_err());
    assert_eq!((pool.in_use(), pool.idle()), (0, 0), "a guard dropped in a panic is discarded");
    // The next one is fresh and works.
    let conn = pool.acquire().await.unwrap();
    let queue = Queue::new(unique_name("pool-broken")).durable(false);
    let channel = conn.default_channel().await.unwrap();
    queue.declare(&channel).await.unwrap();
    conn.producer().routing_key(queue.name.clone()).build().await.unwrap().publish("ok").send().await.unwrap();
    queue.delete(&channel, false, false).await.unwrap();
}

async fn limit_changes_at_run_time(url: &str) {
    let pool = ConnectionPool::new(Connection::builder(url), 1);
    let a = pool.acquire().await.unwrap();
    assert!(pool.acquire_nowait().await.unwrap_err().is_limit_exceeded());
    pool.set_limit(3);
    let b = pool.acquire_nowait().await.unwrap();
    let c = pool.acquire_nowait().await.unwrap();
    assert!(pool.acquire_nowait().await.unwrap_err().is_limit_exceeded());
    pool.set_limit(1);
    drop((a, b, c));
    assert_eq!((pool.in_use(), pool.idle()), (0, 1), "only one is kept under the new limit");
    // 0 means unpooled: no limit, nothing kept.
    pool.set_limit(0);
    let many: Vec<_> = futures_join(&pool, 5).await;
    assert_eq!(many.len(), 5);
    drop(many);
    assert_eq!(pool.idle(), 0);
}

async fn futures_join(pool: &ConnectionPool, n: usize) -> Vec<kelp::PooledConnection> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(pool.acquire_nowait().await.unwrap());
    }
    out
}

async fn reset_closes_everything(url: &str) {
    let pool = ConnectionPool::new(Connection::builder(url), 3);
    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap();
    b.connect().await.unwrap();
    drop(b);
    assert_eq!(pool.idle(), 1);
    pool.reset();
    assert_eq!(pool.idle(), 0);
    drop(a);
    assert_eq!(pool.idle(), 0, "a connection handed out before the reset is closed when it comes back");
}

async fn producer_pool_keeps_channel_and_confirms(url: &str) {
    let conn = Connection::new(url).unwrap();
    let channel = conn.default_channel().await.unwrap();
    let queue = Queue::new(unique_name("producer-pool")).durable(false);
    queue.declare(&channel).await.unwrap();
    let pool = ProducerPool::new(conn.producer().routing_key(queue.name.clone()).confirms(true), 2);
    let first = pool.acquire().await.unwrap();
    first.publish("1").send().await.unwrap();
    assert!(first.confirms());
    drop(first);
    let again = pool.acquire().await.unwrap();
    assert_eq!(pool.idle(), 0);
    again.publish("2").send().await.unwrap();
    drop(again);
    assert_eq!(pool.idle(), 1, "one producer made, reused");
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = eventually("a message in the queue", PATIENCE, async || queue.get(&channel, false).await.unwrap()).await;
        got.push(m.decode::<String>().unwrap());
        m.ack().await.unwrap();
    }
    assert_eq!(got, ["1", "2"]);
    queue.delete(&channel, false, false).await.unwrap();
}

#[cfg(any(feature = "amqp", feature = "redis"))]
/// 64 tasks share a pool of 10 connections; the broker never sees more
/// than 10 of them, and none after the pool is reset.
async fn sixty_four_tasks_share_a_pool(url: &str, count: impl Fn(&str) -> usize) {
    let name = unique_name("pool64");
    let pool = ConnectionPool::new(Connection::builder(url).connection_name(name.clone()), 10);
    let queue = Queue::new(unique_name("pool64-q")).durable(false);
    {
        let conn = Connection::new(url).unwrap();
        queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    }
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (pool, queue, peak) = (pool.clone(), queue.name.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let conn = pool.acquire().await.unwrap();
            peak.fetch_max(pool.in_use(), std::sync::atomic::Ordering::Relaxed);
            let producer = conn.producer().routing_key(queue).build().await.unwrap();
            producer.publish(&i).send().await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(peak.load(std::sync::atomic::Ordering::Relaxed) <= 10);
    let open = count(&name);
    assert!((1..=10).contains(&open), "the broker sees {open} pooled connections");
    let conn = Connection::new(url).unwrap();
    let channel = conn.default_channel().await.unwrap();
    let declared = queue.declare(&channel).await.unwrap();
    assert_eq!(declared.message_count, 64, "every task published");
    queue.delete(&channel, false, false).await.unwrap();
    pool.reset();
    eventually("the pooled connections close after reset", PATIENCE, async || match count(&name) {
        0 => Ok(()),
        open => Err(format!("{open} pooled connections left open")),
    })
    .await;
}

#[cfg(feature = "amqp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_share_a_pool_on_amqp() {
    sixty_four_tasks_share_a_pool(&every_transport::amqp(), |name| {
        let out = std::process::Command::new("rabbitmqctl")
            .args(["list_connections", "client_properties", "-q"])
            .output()
            .expect("rabbitmqctl runs");
        assert!(out.status.success(), "rabbitmqctl: {}", String::from_utf8_lossy(&out.stderr));
        let needle = format!("{{\"connection_name\",\"{name}\"}}");
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(&needle)).count()
    })
    .await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_share_a_pool_on_redis() {
    let url = every_transport::redis();
    let parsed = kelp::BrokerUrl::parse(&url).unwrap();
    let addr: std::net::SocketAddr = format!("{}:{}", parsed.host(), parsed.port().unwrap_or(6379)).parse().unwrap();
    sixty_four_tasks_share_a_pool(&url, move |name| {
        let listed = kelp_test_support::redis::redis_command(addr, &["CLIENT", "LIST"], Duration::from_secs(5))
            .expect("CLIENT LIST")
            .as_text()
            .unwrap_or_default();
        let needle = format!(" name={name} ");
        listed.lines().filter(|l| l.contains(&needle)).count()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_registry_shares_pools_and_limits() {
    let url = every_transport::memory();
    let a = kelp::pools::connections(&url).unwrap();
    let b = kelp::pools::connections(&url).unwrap();
    let held = a.acquire().await.unwrap();
    assert_eq!(b.in_use(), 1, "one pool per URL");
    kelp::pools::set_limit(1);
    assert_eq!(a.limit(), 1);
    assert!(b.acquire_nowait().await.unwrap_err().is_limit_exceeded());
    drop(held);
    kelp::pools::reset();
    assert_eq!(a.idle(), 0);
    let fresh = kelp::pools::connections(&url).unwrap();
    assert_eq!(fresh.in_use(), 0);
    kelp::pools::set_limit(kelp::pools::DEFAULT_LIMIT);
    let producer = kelp::pools::producers(&url).unwrap().acquire().await.unwrap();
    producer.publish("registry").routing_key(unique_name("registry-q")).send().await.unwrap();
}
