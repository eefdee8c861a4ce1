//! Faults on the Redis transport, against real `redis-server` processes
//! that the tests start and kill (-9): consumers killed mid-batch, the
//! visibility-timeout restore, failover between two servers and through
//! Sentinel, dead and refusing servers. Each scenario asserts exact
//! outcomes (which messages arrive, which server is used, what is left in
//! Redis). Timeouts only turn hangs into failures; nothing asserts how long
//! anything took. A missing `redis-server` fails every test with a message
//! saying so (the Sentinels are `redis-server --sentinel`).
//!
//! Killed consumers are real processes: this test binary runs itself again
//! as the child (see [`child_process_entry`]), so the child always runs the
//! kelp under test, with no extra binary to build or find.

mod interop;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use kelp::{Connection, Event, Exchange, Queue, RetryPolicy};
use kelp_test_support::{next_matching, RedisOptions, RedisSentinel, RedisServer, RespValue, SentinelOptions, Signal, eventually, kill_pid};

/// How long any one step may take before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(60);

/// Set in the child's environment: `url|queue|mode|prefetch`.
const CHILD_ENV: &str = "KELP_REDIS_FAULTS_CHILD";

fn start_server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server for this test: {e}"))
}

fn text(value: &RespValue) -> String {
    value.as_text().unwrap_or_else(|| format!("{value:?}"))
}

fn int(server: &RedisServer, args: &[&str]) -> i64 {
    match server.command(args).unwrap_or_else(|e| panic!("{args:?}: {e}")) {
        RespValue::Integer(n) => n,
        other => panic!("{args:?} answered {other:?}"),
    }
}

fn message_id(m: &kelp::Message) -> String {
    m.properties().message_id.as_deref().unwrap_or("<no id>").to_owned()
}
async fn next_message(consumer: &mut kelp::Consumer, what: &str) -> kelp::Message {
    match tokio::time::timeout(PATIENCE, consumer.next()).await {
        Ok(Some(Ok(m))) => m,
        Ok(Some(Err(e))) => panic!("{what}: the consumer failed: {e}"),
        Ok(None) => panic!("{what}: the consumer ended"),
        Err(_) => panic!("{what}: no message within {PATIENCE:?}"),
    }
}

/// Publish `ids` to `queue` (default exchange), each with its id.
async fn publish_ids(url: &str, queue: &Queue, ids: &[String]) {
    let conn = Connection::builder(url).automatic_recovery(false).build().unwrap();
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    for id in ids {
        producer.publish(id).message_id(id.clone()).send().await.unwrap_or_else(|e| panic!("publish {id}: {e}"));
    }
    conn.close().await.unwrap();
}

// ---------------------------------------------------------------------------
// The child process
// ---------------------------------------------------------------------------

/// Not a test of its own: the entry point of the consumer process that the
/// kill -9 scenarios start (this binary, run again with `--exact
/// child_process_entry` and [`CHILD_ENV`] set). Without that variable it
/// does nothing. It consumes `queue` at `url` and prints `got <id>` for each
/// message *before* acking it (mode `ack`; `work` also takes 2 ms per
/// message, so a kill finds it in the middle of its batch) or never acks
/// (mode `noack`), so every message it acked has been printed.
#[test]
fn child_process_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let [url, queue, mode, prefetch] = parts[..] else { panic!("bad {CHILD_ENV}: {spec}") };
    let prefetch: u16 = prefetch.parse().unwrap();
    let (ack, work) = match mode {
        "ack" => (true, Duration::ZERO),
        // A handler that takes a moment: killed, it is in the middle of
        // its fetched batch.
        "work" => (true, Duration::from_millis(2)),
        "noack" => (false, Duration::ZERO),
        other => panic!("bad mode {other}"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let conn = Connection::builder(url).automatic_recovery(false).build().unwrap();
        let mut consumer = conn.consumer([Queue::new(queue)]).prefetch_count(prefetch).build().await.unwrap();
        let mut out = std::io::stdout();
        writeln!(out, "ready").unwrap();
        out.flush().unwrap();
        loop {
            let m = next_message(&mut consumer, "child").await;
            writeln!(out, "got {}", message_id(&m)).unwrap();
            out.flush().unwrap();
            if !work.is_zero() {
                tokio::time::sleep(work).await;
            }
            if ack {
                m.ack().await.unwrap();
            }
        }
    });
}

/// A consumer process; SIGKILLed on drop if still running.
struct ChildConsumer {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Every id it printed so far.
    ids: Vec<String>,
}

impl ChildConsumer {
    fn start(url: &str, queue: &str, mode: &str, prefetch: u16) -> ChildConsumer {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args(["--exact", "child_process_entry", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{url}|{queue}|{mode}|{prefetch}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot run the test binary as the child consumer");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildConsumer { child, lines, ids: Vec::new() }
    }

    /// The next `got <id>` line (the child's libtest chatter is skipped).
    async fn next_id(&mut self) -> String {
        loop {
            match tokio::time::timeout(PATIENCE, self.lines.recv()).await {
                Ok(Some(line)) => {
                    if let Some(id) = line.strip_prefix("got ") {
                        self.ids.push(id.to_owned());
                        return id.to_owned();
                    }
                }
                Ok(None) => panic!("the child consumer exited early (see its stderr above)"),
                Err(_) => panic!("the child consumer printed nothing within {PATIENCE:?}"),
            }
        }
    }

    /// SIGKILL it, wait for it, and return every id it printed (the pipe is
    /// read to its end, so nothing it wrote is missed).
    async fn kill_9(&mut self) -> Vec<String> {
        kill_pid(self.child.id(), Signal::Kill).expect("kill -9 the child consumer");
        let status = self.child.wait().expect("wait for the child consumer");
        assert!(!status.success(), "the child was killed, it cannot have succeeded: {status}");
        while let Some(line) = self.lines.recv().await {
            if let Some(id) = line.strip_prefix("got ") {
                self.ids.push(id.to_owned());
            }
        }
        std::mem::take(&mut self.ids)
    }
}

impl Drop for ChildConsumer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill_pid(self.child.id(), Signal::Kill);
            let _ = self.child.wait();
        }
    }
}

/// A connection whose consumers put back what a dead consumer left
/// unacked after one second, looking every 200 ms.
fn restoring(url: &str) -> Connection {
    Connection::builder(url)
        .transport_option("visibility_timeout", 1.0)
        .transport_option("unacked_restore_interval", 0.2)
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------
// a. visibility-timeout restore
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_unacked_messages_come_back_after_the_visibility_timeout() {
    let server = start_server();
    let url = server.url();
    let queue = Queue::new("vt-restore");
    const N: usize = 20;
    let ids: Vec<String> = (0..N).map(|i| format!("vt-{i}")).collect();
    publish_ids(&url, &queue, &ids).await;

    let mut child = ChildConsumer::start(&url, &queue.name, "noack", 100);
    let mut got = HashSet::new();
    while got.len() < N {
        got.insert(child.next_id().await);
    }
    let printed = child.kill_9().await;
    assert_eq!(printed.len(), N, "the child received each message once: {printed:?}");

    // The dead consumer's messages are all recorded as unacked, none is in
    // the queue, none is lost in between.
    assert_eq!(int(&server, &["LLEN", "vt-restore"]), 0);
    assert_eq!(int(&server, &["HLEN", "unacked"]), N as i64, "every message the dead consumer held is recorded");
    assert_eq!(int(&server, &["ZCARD", "unacked_index"]), N as i64);

    let conn = restoring(&url);
    let mut consumer = conn.consumer([queue.clone()]).prefetch_count(100).build().await.unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    while seen.len() < N {
        let m = next_message(&mut consumer, "restored messages").await;
        assert!(m.redelivered(), "{} came back without the redelivered flag", message_id(&m));
        assert_eq!(m.decode::<String>().unwrap(), message_id(&m));
        *seen.entry(message_id(&m)).or_default() += 1;
        m.ack().await.unwrap();
    }
    let expected: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), expected);
    assert!(seen.values().all(|n| *n == 1), "each restored once: {seen:?}");
    // Nothing more arrives: a restored message is restored once.
    let extra = tokio::time::timeout(Duration::from_secs(3), consumer.next()).await;
    assert!(extra.is_err(), "an unexpected extra delivery: {:?}", extra.map(|m| m.map(|m| m.map(|m| message_id(&m)))));
    // Acks are written in the background (with the next fetch), as basic.ack is not answered.
    eventually("every unacked record is gone once acked", PATIENCE, async || int(&server, &["HLEN", "unacked"]) == 0).await;
    assert_eq!(int(&server, &["LLEN", "vt-restore"]), 0);
    conn.close().await.unwrap();
}

// ---------------------------------------------------------------------------
// b. kill -9 in the middle of a batch
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_a_consumer_killed_mid_batch_loses_nothing() {
    let server = start_server();
    let url = server.url();
    let queue = Queue::new("kill-9-batch");
    const N: usize = 2000;
    let ids: Vec<String> = (0..N).map(|i| format!("b-{i}")).collect();
    publish_ids(&url, &queue, &ids).await;

    let mut child = ChildConsumer::start(&url, &queue.name, "ack", 50);
    for _ in 0..700 {
        child.next_id().await;
    }
    let by_child = child.kill_9().await;
    assert!(by_child.len() >= 700 && by_child.len() < N, "killed mid-way: the child saw {}", by_child.len());

    let conn = restoring(&url);
    let mut consumer = conn.consumer([queue.clone()]).prefetch_count(50).build().await.unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for id in &by_child {
        *seen.entry(id.clone()).or_default() += 1;
    }
    let mut by_parent = 0usize;
    // Until every id was seen and Redis holds nothing more: no message in
    // the queue and no unacked record (every one was restored and acked).
    while seen.len() < N {
        let missing = N - seen.len();
        let m = next_message(&mut consumer, &format!("{missing} ids still missing")).await;
        *seen.entry(message_id(&m)).or_default() += 1;
        by_parent += 1;
        m.ack().await.unwrap();
    }
    // Acks are not answered: the last one's record may still be on its way
    // out, so once every id was seen, wait for a redelivery or for Redis
    // to empty, whichever comes.
    let drained = || int(&server, &["LLEN", "kill-9-batch"]) == 0 && int(&server, &["HLEN", "unacked"]) == 0;
    eventually("Redis holds no message and no unacked record", PATIENCE, async || {
        if drained() {
            return true;
        }
        if let Some(m) = consumer.next_timeout(Duration::from_millis(200)).await.unwrap() {
            *seen.entry(message_id(&m)).or_default() += 1;
            by_parent += 1;
            m.ack().await.unwrap();
        }
        false
    })
    .await;
    let lost: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    let unknown: Vec<&String> = seen.keys().filter(|id| !ids.contains(id)).collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "kill -9 mid-batch: child saw {}, new consumer {by_parent}, {} distinct, {duplicates} duplicates",
        by_child.len(),
        seen.len()
    );
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(unknown.is_empty(), "ids never published: {unknown:?}");
    // Only what the child held unacked can come twice: at most its prefetch.
    assert!(duplicates <= 50, "{duplicates} duplicates, more than the child's prefetch of 50");
    assert_eq!(by_child.len() + by_parent, N + duplicates);
    conn.close().await.unwrap();
}

/// The batch a killed kelp consumer held is Kombu's to restore too: every
/// message handed out is recorded in Kombu's `unacked` hash first, so
/// Kombu's own restore (what a Celery worker's event loop runs every few
/// seconds) puts it back once the visibility timeout passed, with no kelp
/// consumer alive. Only messages a fetch had taken and not yet recorded
/// (one round trip's worth, never handed out) wait in the dead consumer's
/// processing list for a kelp consumer's sweep. Every id is counted; the
/// times from the kill are printed, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b2_a_killed_kelp_consumers_batch_is_restored_by_kombu() {
    let server = start_server();
    let url = server.url();
    let queue = Queue::new("kill-9-kombu");
    const N: usize = 600;
    let ids: Vec<String> = (0..N).map(|i| format!("k-{i}")).collect();
    publish_ids(&url, &queue, &ids).await;

    let mut child = ChildConsumer::start(&url, &queue.name, "work", 50);
    for _ in 0..200 {
        child.next_id().await;
    }
    let by_child = child.kill_9().await;
    let killed = std::time::Instant::now();
    let held = int(&server, &["HLEN", "unacked"]);
    let unrecorded: i64 = match server.command(&["KEYS", "_kelp.processing\x06\x16*"]) {
        Ok(RespValue::Array(Some(keys))) => keys.iter().map(|k| int(&server, &["LLEN", &text(k)])).sum(),
        other => panic!("KEYS answered {other:?}"),
    };
    assert!(held + unrecorded > 0, "the child was killed holding nothing: the test would prove nothing");

    // Kombu alone, once the records are overdue: its restore, then its consumer.
    let options = serde_json::json!({"visibility_timeout": 2.0}).to_string();
    let kombu_args = |args: &[&str]| -> Vec<String> {
        args.iter().map(|a| a.to_string()).chain(["--options".to_string(), options.clone()]).collect()
    };
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let restored = interop::kombu(kombu_args(&["restore", &url]), String::new()).await;
    let restored_after = killed.elapsed();
    assert_eq!(restored, [serde_json::json!({"restored": held})], "Kombu restores every record the dead consumer left");
    let got = interop::kombu(kombu_args(&["consume", &url, &queue.name, "0", "json", "--until-idle", "2"]), String::new()).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for id in by_child.iter().cloned().chain(got.iter().map(|m| m["properties"]["message_id"].as_str().unwrap_or("?").to_owned())) {
        *seen.entry(id).or_default() += 1;
    }
    let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert_eq!(missing.len() as i64, unrecorded, "all but the taken and unrecorded reached Kombu: {missing:?}");

    // What was taken and not recorded: a kelp consumer's sweep gives it back.
    let mut swept_after = None;
    if unrecorded > 0 {
        let conn = restoring(&url);
        let mut consumer = conn.consumer([queue.clone()]).prefetch_count(50).build().await.unwrap();
        while ids.iter().any(|id| !seen.contains_key(id)) {
            let m = next_message(&mut consumer, "the unrecorded messages, after the sweep").await;
            *seen.entry(message_id(&m)).or_default() += 1;
            m.ack().await.unwrap();
        }
        swept_after = Some(killed.elapsed());
        conn.close().await.unwrap();
    }
    let unknown: Vec<&String> = seen.keys().filter(|id| !ids.contains(id)).collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "kelp consumer killed holding {held} recorded and {unrecorded} taken, unrecorded: Kombu restored the {held} \
         {restored_after:.1?} after the kill (visibility timeout 2 s); the {unrecorded} came back through a kelp \
         sweep {swept_after:.1?} after; {duplicates} duplicates (acked, ack not yet written)"
    );
    assert!(unknown.is_empty(), "ids never published: {unknown:?}");
    assert!(duplicates as i64 <= held, "{duplicates} duplicates, more than the {held} records restored");
    assert_eq!(int(&server, &["HLEN", "unacked"]), 0, "every restored record was acked");
}

// ---------------------------------------------------------------------------
// c. failover to a second server
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_producer_and_consumer_fail_over_to_the_second_server() {
    let a = start_server();
    let b = start_server();
    let urls = format!("{};{}", a.url(), b.url());
    let exchange = Exchange::direct("orders-x");
    let queue = Queue::new("orders").exchange(exchange.clone()).routing_key("order");

    let consumer_conn = Connection::builder(urls.as_str())
        .failover_strategy(kelp::FailoverStrategy::PriorityOrder)
        .build()
        .unwrap();
    let mut consumer_events = consumer_conn.events();
    let mut consumer = consumer_conn.consumer([queue.clone()]).prefetch_count(20).build().await.unwrap();
    assert_eq!(consumer_conn.current_url().port(), Some(a.port()));

    // The producer declares only the exchange: after the failover its
    // messages are routable on B only once the *consumer* has declared the
    // queue and binding there again. Mandatory publishes retried while
    // unroutable bridge that window.
    let producer_conn = Connection::builder(urls.as_str())
        .failover_strategy(kelp::FailoverStrategy::PriorityOrder)
        .build()
        .unwrap();
    let mut producer_events = producer_conn.events();
    let producer = producer_conn
        .producer()
        .exchange(exchange.clone())
        .routing_key("order")
        .retry_unroutable(true)
        .build()
        .await
        .unwrap();
    assert_eq!(producer_conn.current_url().port(), Some(a.port()));
    for i in 0..10 {
        producer.publish(&i).message_id(format!("before-{i}")).mandatory(true).send().await.unwrap();
    }
    for i in 0..10 {
        let m = next_message(&mut consumer, "before the kill").await;
        assert_eq!(message_id(&m), format!("before-{i}"));
        m.ack().await.unwrap();
    }

    // A publisher keeps going through the failover; every publish must
    // return Ok (retried by the producer, never surfaced).
    let started = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = tokio::spawn({
        let (producer, started, stop) = (producer.clone(), started.clone(), stop.clone());
        async move {
            let mut sent = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let i = started.fetch_add(1, Ordering::SeqCst);
                let id = format!("live-{i}");
                producer
                    .publish(&i)
                    .message_id(id.clone())
                    .mandatory(true)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("publish {id} failed through the failover: {e}"));
                sent.push(i);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sent
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.kill();
    next_matching(&mut producer_events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;
    // Every publish that starts from here on goes to B.
    let first_on_b = started.load(Ordering::SeqCst);
    next_matching(&mut consumer_events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;
    assert_eq!(producer_conn.current_url().port(), Some(b.port()));
    assert_eq!(consumer_conn.current_url().port(), Some(b.port()));
    eventually("30 publishes started on B", PATIENCE, async || started.load(Ordering::SeqCst) >= first_on_b + 30).await;
    stop.store(true, Ordering::SeqCst);
    let sent = tokio::time::timeout(PATIENCE, publisher).await.expect("the publisher hangs").expect("the publisher panicked");
    for i in 0..20 {
        producer.publish(&i).message_id(format!("after-{i}")).mandatory(true).send().await.unwrap();
    }

    // The consumer receives, on B, every message published after the
    // failover (and perhaps some live ones that A held when killed: those
    // are lost with A, which has no persistence).
    let mut must: HashSet<String> = sent.iter().filter(|i| **i >= first_on_b).map(|i| format!("live-{i}")).collect();
    must.extend((0..20).map(|i| format!("after-{i}")));
    let mut seen: HashMap<String, usize> = HashMap::new();
    while !must.iter().all(|id| seen.contains_key(id)) {
        let missing = must.iter().filter(|id| !seen.contains_key(*id)).count();
        let m = next_message(&mut consumer, &format!("{missing} post-failover messages missing")).await;
        let id = message_id(&m);
        *seen.entry(id.clone()).or_default() += 1;
        match m.ack().await {
            Ok(()) => {}
            // Delivered by A just before it died: that connection is gone
            // (and so is the message, with A).
            Err(e) if e.kind() == kelp::ErrorKind::Stale => {
                assert!(!must.contains(&id), "{id}, published on B, came on a stale connection");
            }
            Err(e) => panic!("ack {id}: {e}"),
        }
    }
    let doubled: Vec<_> = seen.iter().filter(|(id, n)| **n > 1 && must.contains(*id)).collect();
    assert!(doubled.is_empty(), "post-failover messages delivered twice: {doubled:?}");
    // Everything is on B: its queue is drained, nothing unacked.
    assert_eq!(int(&b, &["LLEN", "orders"]), 0);
    eventually("nothing unacked on B", PATIENCE, async || int(&b, &["HLEN", "unacked"]) == 0).await;
    producer_conn.close().await.unwrap();
    consumer_conn.close().await.unwrap();
}

// ---------------------------------------------------------------------------
// d. Sentinel failover
// ---------------------------------------------------------------------------

const MASTER_NAME: &str = "kelpmaster";

fn array_len(value: kelp_test_support::Result<RespValue>) -> usize {
    match value {
        Ok(RespValue::Array(Some(items))) => items.len(),
        _ => 0,
    }
}

/// A master, its replica and three Sentinels (quorum 2) that know them
/// both and each other; the `sentinel://` list of the three.
async fn sentinel_setup() -> (RedisServer, RedisServer, Vec<RedisSentinel>, String) {
    let master = start_server();
    let replica = RedisOptions::default()
        .replica_of(master.port())
        .start()
        .unwrap_or_else(|e| panic!("cannot start the replica: {e}"));
    eventually("the replica syncs with the master", PATIENCE, async || {
        replica.command(&["INFO", "replication"]).map(|v| text(&v).contains("master_link_status:up")).unwrap_or(false)
    })
    .await;
    let sentinels = RedisSentinel::start_many(3, SentinelOptions::new(MASTER_NAME, master.port(), 2))
        .unwrap_or_else(|e| panic!("cannot start the Sentinels (redis-server --sentinel): {e}"));
    // A failover needs Sentinels that know the replica and each other.
    for s in &sentinels {
        eventually("each Sentinel knows the replica and the other two", PATIENCE, async || {
            array_len(s.command(&["SENTINEL", "replicas", MASTER_NAME])) == 1
                && array_len(s.command(&["SENTINEL", "sentinels", MASTER_NAME])) == 2
        })
        .await;
    }
    let url = sentinels.iter().map(|s| format!("sentinel://127.0.0.1:{}", s.port())).collect::<Vec<_>>().join(";");
    (master, replica, sentinels, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_sentinel_failover_moves_kelp_to_the_promoted_replica() {
    let (master, replica, sentinels, url) = sentinel_setup().await;
    let conn = Connection::builder(url.as_str()).transport_option("master_name", MASTER_NAME).build().unwrap();
    let mut events = conn.events();
    let queue = Queue::new("sentinel-q");
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    let producer = conn.producer().routing_key("sentinel-q").build().await.unwrap();
    producer.publish("before").message_id("before").send().await.unwrap();
    assert_eq!(int(&master, &["LLEN", "sentinel-q"]), 1, "the Sentinels led kelp to the master");
    let mut consumer = conn.consumer([queue.clone()]).prefetch_count(10).build().await.unwrap();
    let m = next_message(&mut consumer, "before the failover").await;
    assert_eq!(message_id(&m), "before");
    m.ack().await.unwrap();

    master.kill();
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;
    eventually("the Sentinels name the replica as the master", PATIENCE, async || {
        sentinels.iter().all(|s| s.master_addr().ok().flatten().map(|(_, p)| p) == Some(replica.port()))
    })
    .await;
    for i in 0..20 {
        producer.publish(&i).message_id(format!("after-{i}")).send().await.unwrap_or_else(|e| panic!("publish after-{i}: {e}"));
    }
    let mut seen = HashSet::new();
    let mut before_again = 0;
    while seen.len() < 20 {
        let m = next_message(&mut consumer, "after the failover").await;
        let id = message_id(&m);
        // The ack of "before" may have died with the master: its record,
        // replicated, is then given back by the new connection (at least
        // once), marked redelivered, and only once.
        if id == "before" && m.redelivered() && before_again == 0 {
            before_again += 1;
            m.ack().await.unwrap();
            continue;
        }
        assert!(id.starts_with("after-"), "unexpected {id}");
        assert!(seen.insert(id.clone()), "{id} delivered twice");
        m.ack().await.unwrap();
    }
    // They went through the promoted replica, now the master.
    let role = replica.command(&["ROLE"]).unwrap();
    assert!(matches!(&role, RespValue::Array(Some(items)) if text(&items[0]) == "master"), "{role:?}");
    assert_eq!(int(&replica, &["LLEN", "sentinel-q"]), 0);
    // Every ack after the failover reaches the new master. The ack of
    // "before" left kelp just as the master was killed (acks are not
    // answered, as basic.ack is not): its record may have survived on the
    // replica, to be given back (at least once, never lost).
    eventually("no message of after the failover unacked on the new master", PATIENCE, async || {
        match replica.command(&["HVALS", "unacked"]) {
            Ok(RespValue::Array(Some(records))) => records.iter().all(|r| !text(r).contains("after-")),
            _ => false,
        }
    })
    .await;
    assert!(int(&replica, &["HLEN", "unacked"]) <= 1, "at most the record of \"before\"");
    conn.close().await.unwrap();
}

// ---------------------------------------------------------------------------
// e. dead and refusing servers
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_a_dead_first_url_connects_to_the_second() {
    let server = start_server();
    let conn = Connection::new(&format!("redis://127.0.0.1:1/0;{}", server.url())).unwrap();
    conn.connect().await.unwrap();
    assert!(conn.is_connected());
    assert_eq!(conn.current_url().port(), Some(server.port()));
    let queue = Queue::new("second-url");
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    conn.producer().routing_key("second-url").build().await.unwrap().publish("hi").send().await.unwrap();
    assert_eq!(int(&server, &["LLEN", "second-url"]), 1);
    conn.close().await.unwrap();
}

fn counting_policy() -> (RetryPolicy, Arc<AtomicU32>) {
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = attempts.clone();
    let policy = RetryPolicy::default().interval_start(Duration::from_millis(10)).on_error(move |_, _| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    (policy, attempts)
}

fn server_with_password() -> RedisServer {
    RedisOptions::default()
        .args(["--requirepass", "s3cret"])
        .start()
        .unwrap_or_else(|e| panic!("cannot start redis-server with requirepass: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_a_wrong_password_fails_at_once_with_an_authentication_error() {
    let server = server_with_password();
    let (policy, attempts) = counting_policy();
    let bad = Connection::new(&format!("redis://:wrong@127.0.0.1:{}/0", server.port())).unwrap();
    let err = bad.connect_with(&policy).await.unwrap_err();
    assert!(err.is_authentication(), "not an authentication error: {err} ({:?})", err.kind());
    assert!(!err.to_string().contains("wrong"), "the password leaks into the error: {err}");
    assert_eq!(attempts.load(Ordering::SeqCst), 0, "a refused password is never retried");
    // The right one works.
    let good = Connection::new(&format!("redis://:s3cret@127.0.0.1:{}/0", server.port())).unwrap();
    good.connect().await.unwrap();
    let queue = Queue::new("auth-ok");
    queue.declare(&good.default_channel().await.unwrap()).await.unwrap();
    good.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_a_missing_password_fails_at_once_with_an_authentication_error() {
    let server = server_with_password();
    let (policy, attempts) = counting_policy();
    let bad = Connection::new(&server.url()).unwrap();
    let err = match bad.connect_with(&policy).await {
        // Redis lets anyone connect and refuses the first command instead.
        Ok(()) => {
            let channel = bad.default_channel().await;
            match channel {
                Ok(channel) => Queue::new("noauth").declare(&channel).await.map(|_| ()).unwrap_err(),
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    assert!(err.is_authentication(), "not an authentication error: {err} ({:?})", err.kind());
    assert_eq!(attempts.load(Ordering::SeqCst), 0, "a refused login is never retried");
}

// ---------------------------------------------------------------------------
// f. a frozen server (SIGSTOP) is noticed by the health PING
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_a_frozen_server_is_noticed_and_the_consumer_moves_on() {
    let a = start_server();
    let b = start_server();
    // A consumer blocked in BLMOVE waits without a reply timeout: only the
    // PING (every heartbeat) can tell a frozen server from a quiet one.
    let conn = Connection::builder(format!("{};{}", a.url(), b.url()))
        .failover_strategy(kelp::FailoverStrategy::PriorityOrder)
        .heartbeat(Some(Duration::from_secs(1)))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut events = conn.events();
    let queue = Queue::new("frozen-q");
    let mut consumer = conn.consumer([queue.clone()]).build().await.unwrap();
    assert_eq!(conn.current_url().port(), Some(a.port()));

    a.freeze().unwrap();
    let lost = next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::ConnectionLost { .. })).await;
    assert!(matches!(&lost, Event::ConnectionLost { broker, .. } if broker.contains(&a.port().to_string())), "{lost:?}");
    next_matching(&mut events, "an event", PATIENCE, |e| matches!(e, Event::Recovered { .. })).await;
    assert_eq!(conn.current_url().port(), Some(b.port()));

    // Published on B by someone else: the consumer re-declared the queue
    // there and goes on.
    publish_ids(&b.url(), &queue, &["on-b".to_owned()]).await;
    let m = next_message(&mut consumer, "after the freeze").await;
    assert_eq!(message_id(&m), "on-b");
    m.ack().await.unwrap();
    a.thaw().unwrap();
    conn.close().await.unwrap();
}

/// A switchover (`SENTINEL FAILOVER`): the old master stays up, demoted to
/// a replica that refuses writes. kelp must follow the Sentinels to the new
/// master, for publishing and for its blocked consumer alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d_sentinel_switchover_moves_kelp_off_the_demoted_master() {
    let (master, replica, sentinels, url) = sentinel_setup().await;
    let conn = Connection::builder(url.as_str()).transport_option("master_name", MASTER_NAME).build().unwrap();
    let queue = Queue::new("switchover-q");
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    let producer = conn.producer().routing_key("switchover-q").build().await.unwrap();
    producer.publish("before").message_id("before").send().await.unwrap();
    assert_eq!(int(&master, &["LLEN", "switchover-q"]), 1, "the Sentinels led kelp to the master");
    let mut consumer = conn.consumer([queue.clone()]).prefetch_count(10).build().await.unwrap();
    let m = next_message(&mut consumer, "before the switchover").await;
    assert_eq!(message_id(&m), "before");
    m.ack().await.unwrap();

    match sentinels[0].command(&["SENTINEL", "FAILOVER", MASTER_NAME]).unwrap() {
        RespValue::Simple(ok) if ok == "OK" => {}
        other => panic!("SENTINEL FAILOVER answered {other:?}"),
    }
    eventually("the Sentinels name the replica as the master", PATIENCE, async || {
        sentinels.iter().all(|s| s.master_addr().ok().flatten().map(|(_, p)| p) == Some(replica.port()))
    })
    .await;
    eventually("the old master is demoted", PATIENCE, async || {
        master.command(&["ROLE"]).map(|r| matches!(&r, RespValue::Array(Some(items)) if text(&items[0]) == "slave")).unwrap_or(false)
    })
    .await;
    for i in 0..20 {
        producer.publish(&i).message_id(format!("after-{i}")).send().await.unwrap_or_else(|e| panic!("publish after-{i}: {e}"));
    }
    let mut seen = HashSet::new();
    while seen.len() < 20 {
        let m = next_message(&mut consumer, "after the switchover").await;
        let id = message_id(&m);
        assert!(id.starts_with("after-"), "unexpected {id}");
        assert!(seen.insert(id.clone()), "{id} delivered twice");
        m.ack().await.unwrap();
    }
    assert_eq!(int(&replica, &["LLEN", "switchover-q"]), 0);
    eventually("nothing unacked on the new master", PATIENCE, async || int(&replica, &["HLEN", "unacked"]) == 0).await;
    conn.close().await.unwrap();
}

/// `confirm_replicas`: a publish is confirmed once the replica has it; with
/// the replica frozen it is not confirmed (an error naming the replicas),
/// and confirmed again once the replica is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g_confirmed_means_replicated_with_confirm_replicas() {
    let master = start_server();
    let replica = RedisOptions::default()
        .replica_of(master.port())
        .start()
        .unwrap_or_else(|e| panic!("cannot start the replica: {e}"));
    eventually("the replica syncs with the master", PATIENCE, async || {
        replica.command(&["INFO", "replication"]).map(|v| text(&v).contains("master_link_status:up")).unwrap_or(false)
    })
    .await;
    let conn = Connection::builder(master.url())
        .transport_option("confirm_replicas", 1)
        .transport_option("confirm_replicas_timeout", 0.5)
        .build()
        .unwrap();
    let queue = Queue::new("confirm-replicas").durable(false);
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    producer.publish("replicated").send().await.expect("the replica acknowledges");

    replica.freeze().unwrap();
    let err = producer.publish("master only").send().await.expect_err("the frozen replica cannot acknowledge");
    assert!(err.is_nacked(), "{err}");
    assert!(err.message().contains("0 of 1 replicas"), "{err}");
    replica.thaw().unwrap();
    eventually("publishes are confirmed again", PATIENCE, async || producer.publish("again").send().await.is_ok()).await;
    // What the replica has is what the master has: nothing confirmed is missing there.
    let on_replica = int(&replica, &["LLEN", &queue.name]);
    assert!(on_replica >= 2, "the replica holds the confirmed messages ({on_replica})");
}

// ---------------------------------------------------------------------------
// h. publishes in flight when the connection dies
// ---------------------------------------------------------------------------

/// The connection is reset under a stream of publishes: each publish Redis
/// never answered is published again on the next connection, and every
/// `send()` ends confirmed, as on AMQP (without this they failed with the
/// connection, and the application had to guess). Every id is counted in
/// the queue; a write that was applied and whose answer was lost may come
/// twice (at least once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_publishes_redis_never_answered_are_sent_again_after_a_reconnect() {
    let server = start_server();
    let proxy = kelp_test_support::FaultProxy::start(server.addr()).await.unwrap();
    let url = proxy.url_for(&server.url());
    let queue = Queue::new("resent");
    let conn = Connection::builder(url.as_str()).heartbeat(Some(Duration::from_secs(1))).build().unwrap();
    let mut events = conn.events();
    queue.declare(&conn.default_channel().await.unwrap()).await.unwrap();
    let producer = conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    const N: usize = 3000;
    let ids: Vec<String> = (0..N).map(|i| format!("h-{i}")).collect();
    let mut sends = tokio::task::JoinSet::new();
    let mut publish = |id: &String| {
        let producer = producer.clone();
        let id = id.clone();
        sends.spawn(async move { producer.publish(&id).message_id(id.clone()).send().await });
    };
    for id in &ids[..N / 3] {
        publish(id);
    }
    // A third is sent into a black hole (no answer comes), then every
    // connection is reset: those writes' fate is unknown to the client.
    proxy.set_mode(kelp_test_support::FaultMode::BlackHole).await;
    for id in &ids[N / 3..2 * N / 3] {
        publish(id);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set_mode(kelp_test_support::FaultMode::Reset).await;
    proxy.set_mode(kelp_test_support::FaultMode::Pass).await;
    for id in &ids[2 * N / 3..] {
        publish(id);
    }
    let mut failed = Vec::new();
    while let Some(result) = tokio::time::timeout(PATIENCE, sends.join_next()).await.expect("the publishes hang") {
        if let Err(e) = result.expect("a publish task") {
            failed.push(e.to_string());
        }
    }
    assert!(failed.is_empty(), "{} publishes failed, e.g. {:?}", failed.len(), failed.first());
    let resent = match next_matching(&mut events, "the publishes sent again", PATIENCE, |e| matches!(e, Event::PublishesResent { .. })).await {
        Event::PublishesResent { count } => count,
        _ => unreachable!(),
    };
    // Every id in the queue, counted one by one.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for raw in match server.command(&["LRANGE", "resent", "0", "-1"]) {
        Ok(RespValue::Array(Some(items))) => items,
        other => panic!("LRANGE answered {other:?}"),
    } {
        let envelope: serde_json::Value = serde_json::from_str(&text(&raw)).unwrap();
        let id = envelope["properties"]["message_id"].as_str().unwrap_or("?").to_owned();
        *counts.entry(id).or_default() += 1;
    }
    let missing: Vec<&String> = ids.iter().filter(|id| !counts.contains_key(*id)).collect();
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!("reset under {N} publishes: {resent} published again, {duplicates} in the queue twice");
    assert!(missing.is_empty(), "confirmed and not in the queue: {} ids, e.g. {:?}", missing.len(), missing.first());
    assert!(counts.keys().all(|id| ids.contains(id)), "ids never published");
    assert!(duplicates <= resent, "{duplicates} duplicates, more than the {resent} published again");
    conn.close().await.unwrap();
}
