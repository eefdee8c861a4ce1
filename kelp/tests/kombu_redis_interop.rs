//! Wire compatibility with Python Kombu over the real Redis: both sides
//! share queues, exchanges, bindings, priority buckets, fanout channels and
//! the unacked records of Kombu's Redis transport.
//!
//! - Kombu publishes and kelp consumes, kelp publishes and Kombu consumes,
//!   for every serializer and compression, with headers and the properties,
//!   each side checking every field (also with `global_keyprefix` on both
//!   sides, checking where the messages are stored);
//! - kelp and Kombu consumers sharing one queue;
//! - topic exchanges declared and bound on one side, published to on the
//!   other; fanout in both directions;
//! - Kombu's Redis priority order (buckets 0, 3, 6, 9, the lowest first,
//!   FIFO within one) in both directions;
//! - a requeue on one side reaching the other marked redelivered, and a
//!   message a killed Kombu consumer held restored by kelp from Kombu's
//!   `unacked` records after the visibility timeout.
//!
//! The Python side is `tests/interop/kombu_peer.py` (shared with the AMQP
//! interop tests), run by `KELP_PYTHON` or `.venv-interop`. Redis is the
//! default test Redis (`kelp_test_support::require_redis`).

mod interop;

use interop::{kombu, parse_line, python, PEER};

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use kelp::{Accept, Compression, Connection, Consumer, Exchange, Message, Queue, Serializer, Value};
use kelp_test_support::eventually;
use serde_json::{Value as Json, json};

/// The prefix scenario 7 puts in front of every key on both sides.
const KEYPREFIX: &str = "kelp-interop:";
/// Kombu's separator in priority-bucket names.
const SEP: &str = "\x06\x16";

/// How long a wait may take before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(20);
/// Kombu's default `priority_steps`.
const STEPS: [u8; 4] = [0, 3, 6, 9];

// ---------------------------------------------------------------------------
// The Kombu peer
// ---------------------------------------------------------------------------

/// A Kombu consumer running in the background, whose output lines arrive
/// as they are printed (for the `{"ready": true}` handshake).
struct KombuConsumer {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
    args: Vec<String>,
}

impl KombuConsumer {
    /// Start `consume ... --ready` and wait until it says it consumes.
    async fn start(mut args: Vec<String>) -> KombuConsumer {
        args.push("--ready".into());
        let python = python();
        let mut child = Command::new(&python)
            .arg(PEER)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python:?} (KELP_PYTHON): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let mut consumer = KombuConsumer { child: Some(child), lines, stderr, args };
        let first = consumer.next_line(Duration::from_secs(30)).await;
        match first {
            Some(line) => assert_eq!(parse_line(&line), json!({"ready": true}), "{:?}", consumer.args),
            None => {
                let (status, stderr) = consumer.wait().await;
                panic!("the Kombu consumer {:?} never got ready ({status}):\n{stderr}", consumer.args);
            }
        }
        consumer
    }

    async fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let rx = std::mem::replace(&mut self.lines, mpsc::channel().1);
        let (rx, line) = tokio::task::spawn_blocking(move || {
            let line = rx.recv_timeout(timeout).ok();
            (rx, line)
        })
        .await
        .expect("the reader thread");
        self.lines = rx;
        line
    }

    async fn wait(&mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("waited once");
        let status = tokio::task::spawn_blocking(move || child.wait().expect("wait for the Kombu peer")).await.unwrap();
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        (status, stderr.join().unwrap_or_default())
    }

    /// Wait for the peer to exit successfully; the lines printed after
    /// `ready`.
    async fn finish(mut self) -> Vec<Json> {
        let (status, stderr) = self.wait().await;
        assert!(status.success(), "the Kombu peer failed ({status}) for {:?}:\n{stderr}", self.args);
        let mut out = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            out.push(parse_line(&line));
        }
        out
    }
}

impl Drop for KombuConsumer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Both sides on one Redis
// ---------------------------------------------------------------------------

/// A kelp connection and the matching Kombu options, with or without
/// `global_keyprefix`.
struct Env {
    url: String,
    prefix: String,
    conn: Connection,
    redis: redis::aio::MultiplexedConnection,
    queues: Vec<Queue>,
    exchanges: Vec<Exchange>,
}

impl Env {
    async fn new(prefix: Option<&str>) -> Env {
        Env::with_options(prefix, &[]).await
    }

    /// With more kelp transport options (Kombu gets only the prefix).
    async fn with_options(prefix: Option<&str>, options: &[(&str, Value)]) -> Env {
        let url = kelp_test_support::require_redis_async().await;
        let mut builder = Connection::builder(url.clone());
        if let Some(p) = prefix {
            builder = builder.transport_option("global_keyprefix", p);
        }
        for (key, value) in options {
            builder = builder.transport_option(*key, value.clone());
        }
        let conn = builder.build().expect("the test URL parses");
        let redis = redis::Client::open(url.as_str())
            .expect("a Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("a raw Redis connection");
        Env { url, prefix: prefix.unwrap_or_default().to_owned(), conn, redis, queues: Vec::new(), exchanges: Vec::new() }
    }

    /// `--options` for the Kombu peer (nothing without a prefix).
    fn kombu_options(&self) -> Vec<String> {
        if self.prefix.is_empty() {
            Vec::new()
        } else {
            vec!["--options".into(), json!({"global_keyprefix": self.prefix}).to_string()]
        }
    }

    /// A uniquely named queue, deleted by `cleanup`.
    fn queue(&mut self, prefix: &str) -> Queue {
        let queue = Queue::new(kelp_test_support::unique_name(prefix));
        self.queues.push(queue.clone());
        queue
    }

    /// Remember a queue declared elsewhere, to delete it at the end.
    fn track(&mut self, queue: &Queue) {
        self.queues.push(queue.clone());
    }

    async fn declare(&mut self, prefix: &str) -> Queue {
        let queue = self.queue(prefix);
        let channel = self.conn.default_channel().await.unwrap();
        queue.declare(&channel).await.expect("declare the interop queue");
        queue
    }

    async fn kombu_publish(&self, queue: &str, specs: &[Json], exchange: Option<(&str, &str)>) {
        let stdin: String = specs.iter().map(|s| format!("{s}\n")).collect();
        let mut args = vec!["publish".into(), self.url.clone(), queue.to_owned()];
        args.extend(self.kombu_options());
        if let Some((name, kind)) = exchange {
            args.extend(["--exchange".into(), name.to_owned(), "--exchange-type".into(), kind.to_owned()]);
        }
        let out = kombu(args, stdin).await;
        assert_eq!(out, vec![json!({"published": specs.len()})]);
    }

    fn consume_args(&self, queue: &str, count: usize, accept: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["consume".into(), self.url.clone(), queue.to_owned(), count.to_string(), accept.to_owned()];
        args.extend(self.kombu_options());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Exactly `count` messages through Kombu (it keeps consuming a second
    /// after the last one, so an extra message shows up too).
    async fn kombu_consume(&self, queue: &str, count: usize, accept: &str) -> Vec<Json> {
        let out = kombu(self.consume_args(queue, count, accept, &["--linger", "1.0"]), String::new()).await;
        assert_eq!(out.len(), count, "Kombu printed {out:?}");
        for m in &out {
            assert!(m.get("decode_error").is_none(), "Kombu could not decode: {m}");
        }
        out
    }

    /// A raw Redis command.
    async fn raw<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let mut conn = self.redis.clone();
        cmd.query_async::<T>(&mut conn).await.unwrap_or_else(|e| panic!("Redis {args:?}: {e}"))
    }

    /// The Redis list holding `queue`'s messages of bucket `step`, under
    /// `prefix`.
    fn bucket(prefix: &str, queue: &str, step: u8) -> String {
        if step == 0 { format!("{prefix}{queue}") } else { format!("{prefix}{queue}{SEP}{step}") }
    }

    /// Messages waiting in each bucket of `queue` (keys under `prefix`).
    async fn bucket_sizes(&self, prefix: &str, queue: &str) -> Vec<usize> {
        let mut sizes = Vec::new();
        for step in STEPS {
            sizes.push(self.raw::<usize>(&["LLEN", &Self::bucket(prefix, queue, step)]).await);
        }
        sizes
    }

    /// The records of Kombu's `unacked` hash (under this env's prefix) for
    /// messages routed to `queue`: tag → `[payload, exchange, routing_key]`.
    async fn unacked_records(&self, queue: &str) -> HashMap<String, Json> {
        let all: HashMap<String, String> = self.raw(&["HGETALL", &format!("{}unacked", self.prefix)]).await;
        all.into_iter()
            .filter_map(|(tag, record)| {
                let record: Json = serde_json::from_str(&record).unwrap_or_else(|e| panic!("unacked record {record:?}: {e}"));
                (record[2] == queue || record[0]["properties"]["delivery_info"]["routing_key"] == queue).then_some((tag, record))
            })
            .collect()
    }

    async fn in_unacked_index(&self, tag: &str) -> bool {
        let score: Option<f64> = self.raw(&["ZSCORE", &format!("{}unacked_index", self.prefix), tag]).await;
        score.is_some()
    }

    /// Wait until no unacked record of `queue` is left (acks are written
    /// before `ack()` returns; this only tolerates a slow Kombu exit).
    async fn assert_no_unacked(&self, queue: &str) {
        eventually(&format!("no unacked record left for {queue}"), PATIENCE, async || {
            match self.unacked_records(queue).await {
                records if records.is_empty() => Ok(()),
                records => Err(format!("unacked records {records:?}")),
            }
        })
        .await;
    }

    async fn cleanup(self) {
        let channel = self.conn.default_channel().await.unwrap();
        for queue in &self.queues {
            queue.delete(&channel, false, false).await.unwrap();
        }
        for exchange in &self.exchanges {
            exchange.delete(&channel, false).await.unwrap();
        }
        for queue in &self.queues {
            assert_eq!(self.bucket_sizes(&self.prefix, &queue.name).await, [0, 0, 0, 0], "{} deleted", queue.name);
        }
        self.conn.close().await.unwrap();
    }
}

/// `n` messages from a kelp consumer, unsettled.
async fn take(consumer: &mut Consumer, n: usize) -> Vec<Message> {
    let mut got = Vec::new();
    while got.len() < n {
        let message = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} messages after 20 s", got.len()))
            .expect("the consumer stream ended")
            .expect("a delivery");
        got.push(message);
    }
    got
}

/// Nothing more arrives within a second.
async fn assert_quiet(consumer: &mut Consumer, what: &str) {
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_secs(1), consumer.next()).await {
        let extra = extra.expect("a delivery");
        panic!(
            "{what}: an unexpected message (routing key {:?}, body {:?})",
            extra.routing_key(),
            extra.payload()
        );
    }
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// A body every structured serializer carries the same way.
fn body() -> Json {
    json!({
        "name": "kelp",
        "n": 42,
        "negative": -7,
        "ratio": 2.5,
        "ok": true,
        "none": null,
        "list": [1, "two", [3.5, {"four": 4}]],
        "unicode": "h\u{e9}llo \u{2603} \u{1f600}",
        "empty": {},
    })
}

fn headers() -> Json {
    json!({"x-trace": "abc-123", "attempt": 3, "flag": true, "ratio": 0.5, "tags": ["a", "b"], "nested": {"k": "v", "n": [1, 2]}})
}

fn header_table() -> kelp::FieldTable {
    match Value::from_serialize(&headers()).unwrap() {
        Value::Map(table) => table,
        other => panic!("headers are a table, not {other:?}"),
    }
}

fn json_of(value: Value) -> Json {
    value.deserialize_into().expect("a value converts to JSON")
}

fn headers_of(message: &Message) -> Json {
    json_of(Value::Map(message.headers().clone()))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

const RAW_BYTES: &[u8] = b"\x00\x01\xfe\xffhello";

/// The Kombu bucket of priority `p` with the default steps.
fn step_of(p: u8) -> u8 {
    STEPS.iter().copied().filter(|s| *s <= p).max().unwrap()
}

fn kombu_spec(serializer: &str, compression: Option<&str>, i: usize) -> Json {
    json!({
        "body": body(),
        "serializer": serializer,
        "compression": compression,
        "headers": headers(),
        "priority": 1 + (i % 9),
        "expiration": 60.5,
        "correlation_id": format!("corr-{i}"),
        "reply_to": "kelp.replies",
        "message_id": format!("mid-{i}"),
        "timestamp": 1_700_000_000 + i,
    })
}

/// Every serializer and every compression, raw bytes and text.
fn kombu_specs() -> Vec<Json> {
    let mut specs = Vec::new();
    for serializer in ["json", "msgpack", "yaml"] {
        specs.push(kombu_spec(serializer, None, specs.len()));
    }
    for compression in ["zlib", "bzip2", "lzma", "zstd", "brotli"] {
        specs.push(kombu_spec("json", Some(compression), specs.len()));
    }
    specs.push(kombu_spec("msgpack", Some("zstd"), specs.len()));
    specs.push(kombu_spec("yaml", Some("bzip2"), specs.len()));
    let mut raw = kombu_spec("raw", None, specs.len());
    raw["bytes_body"] = json!(b64(RAW_BYTES));
    specs.push(raw);
    let mut raw_compressed = kombu_spec("raw", Some("lzma"), specs.len());
    raw_compressed["bytes_body"] = json!(b64(RAW_BYTES));
    specs.push(raw_compressed);
    // A str body with an explicit content type: Kombu sends it unserialized.
    let mut text = kombu_spec("json", None, specs.len());
    text["body"] = json!("plain h\u{e9}llo text");
    text["content_type"] = json!("text/plain");
    text["content_encoding"] = json!("utf-8");
    specs.push(text);
    specs
}

/// The message Kombu published from `spec`, as kelp reads it.
fn check_kelp_reads(message: &Message, spec: &Json, exchange: &str, routing_key: &str) {
    let serializer = spec["serializer"].as_str();
    let (content_type, encoding) = match (serializer, spec["content_type"].as_str()) {
        (_, Some(ct)) => (ct, spec["content_encoding"].as_str().expect("spec has an encoding")),
        (Some("json"), _) => ("application/json", "utf-8"),
        (Some("msgpack"), _) => ("application/x-msgpack", "binary"),
        (Some("yaml"), _) => ("application/x-yaml", "utf-8"),
        (Some("raw"), _) => ("application/data", "binary"),
        other => panic!("no expectation for {other:?}"),
    };
    let what = format!("{:?}: {serializer:?}/{:?}", spec["message_id"], spec["compression"]);
    assert_eq!(message.content_type(), Some(content_type), "{what}");
    assert_eq!(message.content_encoding(), Some(encoding), "{what}");
    match spec.get("bytes_body") {
        Some(b) => {
            let expected = base64::engine::general_purpose::STANDARD.decode(b.as_str().unwrap()).unwrap();
            assert_eq!(message.body().unwrap().as_ref(), expected.as_slice(), "{what}");
            assert_eq!(message.payload().unwrap().as_bytes(), Some(expected.as_slice()), "{what}");
        }
        None => {
            let decoded: Json = message.decode().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(decoded, spec["body"], "{what}");
        }
    }
    let mut expected_headers = spec["headers"].clone();
    if let Some(c) = spec["compression"].as_str() {
        let mime = Compression::from_name(c).unwrap().mime_type();
        expected_headers["compression"] = json!(mime);
        assert_eq!(message.compression(), Some(mime), "{what}");
    } else {
        assert_eq!(message.compression(), None, "{what}");
    }
    assert_eq!(headers_of(message), expected_headers, "{what}");
    let p = message.properties();
    assert_eq!(p.delivery_mode, Some(2), "{what}");
    assert_eq!(p.priority, spec["priority"].as_u64().map(|p| p as u8), "{what}");
    assert_eq!(p.correlation_id.as_deref(), spec["correlation_id"].as_str(), "{what}");
    assert_eq!(p.reply_to.as_deref(), spec["reply_to"].as_str(), "{what}");
    assert_eq!(p.message_id.as_deref(), spec["message_id"].as_str(), "{what}");
    assert_eq!(p.timestamp, spec["timestamp"].as_u64(), "{what}");
    // Kombu takes seconds and sends milliseconds as text.
    let expiration = spec["expiration"].as_f64().map(|s| format!("{}", (s * 1000.0) as u64));
    assert_eq!(p.expiration.as_deref(), expiration.as_deref(), "{what}");
    assert_eq!(message.exchange(), exchange, "{what}");
    assert_eq!(message.routing_key(), routing_key, "{what}");
    assert!(!message.redelivered(), "{what}");
}

// ---------------------------------------------------------------------------
// Scenarios 1 and 7: Kombu publishes, kelp reads every field
// ---------------------------------------------------------------------------

async fn kombu_publishes_kelp_reads(prefix: Option<&str>) {
    let mut env = Env::new(prefix).await;
    let queue = env.declare("redis-interop-k2kelp").await;
    let name = queue.name.clone();
    let specs = kombu_specs();
    env.kombu_publish(&name, &specs, None).await;

    // Kombu filed them in its priority buckets under the prefix, LPUSHed.
    let mut expected_sizes = [0usize; 4];
    for spec in &specs {
        let p = spec["priority"].as_u64().unwrap() as u8;
        expected_sizes[STEPS.iter().position(|s| *s == step_of(p)).unwrap()] += 1;
    }
    assert_eq!(env.bucket_sizes(&env.prefix, &name).await, expected_sizes, "Kombu's buckets under {:?}", env.prefix);
    if !env.prefix.is_empty() {
        assert_eq!(env.bucket_sizes("", &name).await, [0, 0, 0, 0], "nothing outside the prefix");
    }

    let mut consumer =
        env.conn.consumer([queue.clone()]).accept(Accept::all()).prefetch_count(100).build().await.unwrap();
    let messages = take(&mut consumer, specs.len()).await;
    assert_quiet(&mut consumer, "after every Kombu message").await;

    // Delivered but not acked: recorded in Kombu's unacked hash and index,
    // under Kombu's delivery tags, so a Kombu worker can restore them.
    let records = env.unacked_records(&name).await;
    assert_eq!(records.len(), specs.len(), "one unacked record per delivery: {records:?}");
    for (tag, record) in &records {
        assert_eq!(record[0]["properties"]["delivery_tag"], tag.as_str(), "the hash key is Kombu's delivery tag");
        assert_eq!(record[1], "", "{record}");
        assert_eq!(record[2], name.as_str(), "{record}");
        assert!(env.in_unacked_index(tag).await, "{tag} is in unacked_index");
    }

    let mut ids = BTreeSet::new();
    for message in &messages {
        let id = message.properties().message_id.as_deref().expect("Kombu set a message id");
        let spec = specs.iter().find(|s| s["message_id"] == id).expect("a message kelp did not expect");
        check_kelp_reads(message, spec, "", &name);
        assert!(ids.insert(id.to_owned()), "{id} twice");
        message.ack().await.unwrap();
    }
    assert_eq!(ids.len(), specs.len(), "every message exactly once");
    env.assert_no_unacked(&name).await;
    for tag in records.keys() {
        assert!(!env.in_unacked_index(tag).await, "{tag} left in unacked_index after the ack");
    }
    assert_eq!(env.bucket_sizes(&env.prefix, &name).await, [0, 0, 0, 0]);
    consumer.cancel().await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn kombu_publishes_every_serializer_and_compression_and_kelp_reads_every_field() {
    kombu_publishes_kelp_reads(None).await;
}

#[tokio::test]
async fn with_global_keyprefix_kombu_publishes_and_kelp_reads_every_field() {
    kombu_publishes_kelp_reads(Some(KEYPREFIX)).await;
}

// ---------------------------------------------------------------------------
// Scenarios 2 and 7: kelp publishes, Kombu reads every field
// ---------------------------------------------------------------------------

async fn kelp_publishes_kombu_reads(prefix: Option<&str>) {
    let mut env = Env::new(prefix).await;
    let queue = env.declare("redis-interop-kelp2k").await;
    let name = queue.name.clone();
    let producer = env.conn.producer().routing_key(name.clone()).build().await.unwrap();
    // (serializer, compression, expected content type, encoding)
    let mut cases: Vec<(Serializer, Option<Compression>, &str, &str)> = vec![
        (Serializer::json(), None, "application/json", "utf-8"),
        (Serializer::msgpack(), None, "application/x-msgpack", "binary"),
        (Serializer::yaml(), None, "application/x-yaml", "utf-8"),
    ];
    for c in Compression::ALL {
        cases.push((Serializer::json(), Some(c), "application/json", "utf-8"));
    }
    cases.push((Serializer::msgpack(), Some(Compression::Brotli), "application/x-msgpack", "binary"));
    cases.push((Serializer::yaml(), Some(Compression::Zstd), "application/x-yaml", "utf-8"));
    let body = body();
    let priority = |i: usize| 1 + (i % 9) as u8;
    for (i, (serializer, compression, _, _)) in cases.iter().enumerate() {
        let mut publish = producer
            .publish(&body)
            .serializer(serializer.clone())
            .headers(header_table())
            .priority(priority(i))
            .expiration(Duration::from_millis(60_500))
            .correlation_id(format!("corr-{i}"))
            .reply_to("kombu.replies")
            .message_id(format!("mid-{i}"))
            .timestamp(1_700_000_000 + i as u64);
        if let Some(c) = compression {
            publish = publish.compression(*c);
        }
        publish.send().await.unwrap();
    }
    let raw_index = cases.len();
    producer
        .publish_bytes(RAW_BYTES)
        .headers(header_table())
        .priority(4)
        .correlation_id("corr-raw")
        .reply_to("kombu.replies")
        .message_id(format!("mid-{raw_index}"))
        .send()
        .await
        .unwrap();
    producer
        .publish_text("plain h\u{e9}llo text")
        .headers(header_table())
        .priority(7)
        .correlation_id("corr-text")
        .reply_to("kombu.replies")
        .message_id(format!("mid-{}", raw_index + 1))
        .send()
        .await
        .unwrap();
    let total = cases.len() + 2;

    // kelp filed them in Kombu's buckets under the prefix.
    let mut expected_sizes = [0usize; 4];
    for p in (0..cases.len()).map(priority).chain([4, 7]) {
        expected_sizes[STEPS.iter().position(|s| *s == step_of(p)).unwrap()] += 1;
    }
    assert_eq!(env.bucket_sizes(&env.prefix, &name).await, expected_sizes, "kelp's buckets under {:?}", env.prefix);
    if !env.prefix.is_empty() {
        assert_eq!(env.bucket_sizes("", &name).await, [0, 0, 0, 0], "nothing outside the prefix");
    }

    let seen = env.kombu_consume(&name, total, "json,msgpack,yaml,application/data,text/plain").await;
    let by_id = |id: String| -> &Json {
        let found: Vec<&Json> = seen.iter().filter(|m| m["properties"]["message_id"] == id.as_str()).collect();
        assert_eq!(found.len(), 1, "Kombu received {id} {} times: {seen:?}", found.len());
        found[0]
    };
    let check_common = |m: &Json, what: &str| {
        let p = &m["properties"];
        assert_eq!(p["delivery_mode"], 2, "{what}");
        assert_eq!(p["reply_to"], "kombu.replies", "{what}");
        assert_eq!(p["body_encoding"], "base64", "{what}");
        assert_eq!(p["delivery_tag"].as_str().map(str::len), Some(36), "a UUID delivery tag: {what}");
        assert_eq!(m["delivery_info"], json!({"exchange": "", "routing_key": name, "redelivered": null}), "{what}");
    };
    for (i, (_, compression, content_type, encoding)) in cases.iter().enumerate() {
        let m = by_id(format!("mid-{i}"));
        let what = format!("case {i}: {m}");
        assert_eq!(m["body"], body, "{what}");
        assert_eq!(m["content_type"], *content_type, "{what}");
        assert_eq!(m["content_encoding"], *encoding, "{what}");
        let mut expected_headers = headers();
        if let Some(c) = compression {
            expected_headers["compression"] = json!(c.mime_type());
        }
        assert_eq!(m["headers"], expected_headers, "{what}");
        let p = &m["properties"];
        assert_eq!(p["priority"], priority(i), "{what}");
        assert_eq!(p["correlation_id"], format!("corr-{i}"), "{what}");
        assert_eq!(p["expiration"], "60500", "{what}");
        assert_eq!(p["timestamp"], 1_700_000_000 + i, "{what}");
        check_common(m, &what);
    }
    let raw = by_id(format!("mid-{raw_index}"));
    assert_eq!(raw["content_type"], "application/data", "{raw}");
    assert_eq!(raw["content_encoding"], "binary", "{raw}");
    assert_eq!(raw["body"], json!({"__bytes__": b64(RAW_BYTES)}), "{raw}");
    assert_eq!(raw["headers"], headers(), "{raw}");
    assert_eq!(raw["properties"]["priority"], 4, "{raw}");
    assert_eq!(raw["properties"]["correlation_id"], "corr-raw", "{raw}");
    check_common(raw, &raw.to_string());
    let text = by_id(format!("mid-{}", raw_index + 1));
    assert_eq!(text["content_type"], "text/plain", "{text}");
    assert_eq!(text["content_encoding"], "utf-8", "{text}");
    assert_eq!(text["body"], "plain h\u{e9}llo text", "{text}");
    assert_eq!(text["headers"], headers(), "{text}");
    assert_eq!(text["properties"]["priority"], 7, "{text}");
    assert_eq!(text["properties"]["correlation_id"], "corr-text", "{text}");
    check_common(text, &text.to_string());

    // Kombu acked them all: nothing waiting, nothing unacked.
    assert_eq!(env.bucket_sizes(&env.prefix, &name).await, [0, 0, 0, 0]);
    env.assert_no_unacked(&name).await;
    for m in &seen {
        assert!(!env.in_unacked_index(m["properties"]["delivery_tag"].as_str().unwrap()).await);
    }
    env.cleanup().await;
}

#[tokio::test]
async fn kelp_publishes_every_serializer_and_compression_and_kombu_reads_every_field() {
    kelp_publishes_kombu_reads(None).await;
}

#[tokio::test]
async fn with_global_keyprefix_kelp_publishes_and_kombu_reads_every_field() {
    kelp_publishes_kombu_reads(Some(KEYPREFIX)).await;
}

// ---------------------------------------------------------------------------
// Scenario 3: kelp and Kombu consumers share a queue
// ---------------------------------------------------------------------------

#[tokio::test]
async fn kelp_and_kombu_consumers_share_a_queue_each_message_exactly_once() {
    const N: usize = 60;
    let mut env = Env::new(None).await;
    let queue = env.declare("redis-interop-shared").await;
    let name = queue.name.clone();

    // Kombu consumes until nothing came for 3 s, a message at a time,
    // spending 10 ms on each.
    let kombu_consumer = KombuConsumer::start(env.consume_args(
        &name,
        0,
        "json",
        &["--until-idle", "3", "--prefetch", "1", "--delay", "0.01"],
    ))
    .await;
    let mut consumer = env.conn.consumer([queue.clone()]).prefetch_count(1).build().await.unwrap();
    let kelp_side = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(3), consumer.next()).await {
            let message = message.expect("a delivery");
            let body: Json = message.decode().unwrap();
            got.push(body["n"].as_u64().expect("a numbered message"));
            tokio::time::sleep(Duration::from_millis(10)).await;
            message.ack().await.unwrap();
        }
        consumer.cancel().await.unwrap();
        got
    });

    // Half published by kelp, half by Kombu.
    let producer = env.conn.producer().routing_key(name.clone()).build().await.unwrap();
    for n in 0..N / 2 {
        producer.publish(&json!({"n": n})).message_id(format!("n-{n}")).send().await.unwrap();
    }
    let specs: Vec<Json> = (N / 2..N).map(|n| json!({"body": {"n": n}, "message_id": format!("n-{n}")})).collect();
    env.kombu_publish(&name, &specs, None).await;

    let by_kelp = kelp_side.await.unwrap();
    let by_kombu: Vec<u64> = kombu_consumer
        .finish()
        .await
        .iter()
        .map(|m| {
            assert!(m.get("decode_error").is_none(), "{m}");
            m["body"]["n"].as_u64().unwrap_or_else(|| panic!("a numbered message: {m}"))
        })
        .collect();
    let mut all: Vec<u64> = by_kelp.iter().chain(&by_kombu).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..N as u64).collect::<Vec<_>>(), "each exactly once (kelp {by_kelp:?}, Kombu {by_kombu:?})");
    assert!(!by_kelp.is_empty() && !by_kombu.is_empty(), "both consumed (kelp {by_kelp:?}, Kombu {by_kombu:?})");
    // Both acked: nothing waiting, nothing unacked.
    assert_eq!(env.bucket_sizes("", &name).await, [0, 0, 0, 0]);
    env.assert_no_unacked(&name).await;
    env.cleanup().await;
}

// ---------------------------------------------------------------------------
// Scenario 4: topic exchanges
// ---------------------------------------------------------------------------

async fn kombu_declares_topic_kelp_publishes(prefix: Option<&str>) {
    let mut env = Env::new(prefix).await;
    let exchange_name = kelp_test_support::unique_name("redis-interop-topic-k");
    let [star, hash, other] =
        ["star", "hash", "other"].map(|q| kelp_test_support::unique_name(&format!("redis-interop-topic-{q}")));
    let mut args = vec![
        "declare".into(),
        env.url.clone(),
        exchange_name.clone(),
        "topic".into(),
        format!("{star}=t.*"),
        format!("{hash}=t.#"),
        format!("{other}=x.y"),
    ];
    args.extend(env.kombu_options());
    let out = kombu(args, String::new()).await;
    assert_eq!(out, vec![json!({"declared": 3})]);
    let mut members: Vec<String> = env.raw(&["SMEMBERS", &format!("{}_kombu.binding.{exchange_name}", env.prefix)]).await;
    members.sort();
    let mut expected = vec![
        format!(r"t.*{SEP}^t\.[^\.]+${SEP}{star}"),
        format!(r"t.#{SEP}^t\..*?${SEP}{hash}"),
        format!(r"x.y{SEP}^x\.y${SEP}{other}"),
    ];
    expected.sort();
    assert_eq!(members, expected, "Kombu's binding set under {:?}", env.prefix);
    for q in [&star, &hash, &other] {
        env.track(&Queue::new(q.clone()));
    }
    let topic = Exchange::topic(exchange_name.clone());
    env.exchanges.push(topic.clone());

    // First without declaring the exchange (kelp reads Kombu's bindings as
    // they are), then declared as a kelp application would.
    let undeclared = env.conn.producer().exchange(topic.clone()).auto_declare(false).build().await.unwrap();
    for key in ["t.a", "x.y", "q.t.a"] {
        undeclared.publish(&json!({"key": key})).routing_key(key).send().await.unwrap();
    }
    let declared = env.conn.producer().exchange(topic.clone()).build().await.unwrap();
    for key in ["t.b.c", "x.y.z", "t.c"] {
        declared.publish(&json!({"key": key})).routing_key(key).send().await.unwrap();
    }

    for (queue, keys) in [(&star, vec!["t.a", "t.c"]), (&hash, vec!["t.a", "t.b.c", "t.c"]), (&other, vec!["x.y"])] {
        let seen = env.kombu_consume(queue, keys.len(), "json").await;
        let got: Vec<&Json> = seen.iter().map(|m| &m["body"]["key"]).collect();
        assert_eq!(got, keys, "{queue}: {seen:?}");
        for (m, key) in seen.iter().zip(&keys) {
            assert_eq!(
                m["delivery_info"],
                json!({"exchange": exchange_name, "routing_key": key, "redelivered": null}),
                "{queue}"
            );
        }
    }
    env.cleanup().await;
}

#[tokio::test]
async fn kombu_declares_and_binds_a_topic_exchange_and_kelp_publishes_to_it() {
    kombu_declares_topic_kelp_publishes(None).await;
}

#[tokio::test]
async fn with_global_keyprefix_kombu_declares_a_topic_exchange_and_kelp_publishes_to_it() {
    kombu_declares_topic_kelp_publishes(Some(KEYPREFIX)).await;
}

async fn kelp_declares_topic_kombu_publishes(prefix: Option<&str>) {
    let mut env = Env::new(prefix).await;
    let topic = Exchange::topic(kelp_test_support::unique_name("redis-interop-topic-kelp"));
    env.exchanges.push(topic.clone());
    let qa = env.queue("redis-interop-topic-a").exchange(topic.clone()).routing_key("a.*");
    let qb = env.queue("redis-interop-topic-b").exchange(topic.clone()).routing_key("#.err");
    let qc = env.queue("redis-interop-topic-c").exchange(topic.clone()).routing_key("c.c");
    let mut ca = env.conn.consumer([qa.clone()]).build().await.unwrap();
    let mut cb = env.conn.channel().await.unwrap().consumer([qb.clone()]).build().await.unwrap();
    let mut cc = env.conn.channel().await.unwrap().consumer([qc.clone()]).build().await.unwrap();
    // kelp's bindings in Kombu's binding set, with Kombu's patterns.
    let mut members: Vec<String> = env.raw(&["SMEMBERS", &format!("{}_kombu.binding.{}", env.prefix, topic.name)]).await;
    members.sort();
    let mut expected = vec![
        format!(r"a.*{SEP}^a\.[^\.]+${SEP}{}", qa.name),
        format!(r"#.err{SEP}^.*?\.err${SEP}{}", qb.name),
        format!(r"c.c{SEP}^c\.c${SEP}{}", qc.name),
    ];
    expected.sort();
    assert_eq!(members, expected, "kelp's binding set under {:?}", env.prefix);

    let keys = ["a.x", "k.err", "a.err", "z.z", "a.x.y", "c.c.c"];
    let specs: Vec<Json> = keys.iter().map(|k| json!({"body": {"key": k}, "routing_key": k})).collect();
    env.kombu_publish(&qa.name, &specs, Some((&topic.name, "topic"))).await;

    for (consumer, queue, expected) in
        [(&mut ca, &qa, vec!["a.x", "a.err"]), (&mut cb, &qb, vec!["k.err", "a.err"]), (&mut cc, &qc, vec![])]
    {
        let messages = take(consumer, expected.len()).await;
        let got: Vec<String> = messages.iter().map(|m| m.decode::<Json>().unwrap()["key"].as_str().unwrap().to_owned()).collect();
        assert_eq!(got, expected, "{}", queue.name);
        for (m, key) in messages.iter().zip(&expected) {
            assert_eq!(m.exchange(), topic.name.as_str());
            assert_eq!(m.routing_key(), *key);
            assert_eq!(m.content_type(), Some("application/json"));
            m.ack().await.unwrap();
        }
        assert_quiet(consumer, &format!("{} (only {expected:?})", queue.name)).await;
    }
    for c in [&mut ca, &mut cb, &mut cc] {
        c.cancel().await.unwrap();
    }
    env.cleanup().await;
}

#[tokio::test]
async fn kelp_declares_and_binds_a_topic_exchange_and_kombu_publishes_to_it() {
    kelp_declares_topic_kombu_publishes(None).await;
}

#[tokio::test]
async fn with_global_keyprefix_kelp_declares_a_topic_exchange_and_kombu_publishes_to_it() {
    kelp_declares_topic_kombu_publishes(Some(KEYPREFIX)).await;
}

// ---------------------------------------------------------------------------
// Scenario 5: fanout
// ---------------------------------------------------------------------------

async fn kombu_fanout_to_kelp(prefix: Option<&str>) {
    let mut env = Env::new(prefix).await;
    let fanout = Exchange::fanout(kelp_test_support::unique_name("redis-interop-fanout-kelp"));
    env.exchanges.push(fanout.clone());
    let q1 = env.queue("redis-interop-fanout-1").exchange(fanout.clone());
    let q2 = env.queue("redis-interop-fanout-2").exchange(fanout.clone());
    // Subscribed when build() returns.
    let mut c1 = env.conn.consumer([q1.clone()]).build().await.unwrap();
    let mut c2 = env.conn.channel().await.unwrap().consumer([q2.clone()]).build().await.unwrap();

    let specs = vec![
        json!({"body": {"to": "everyone"}, "routing_key": "", "headers": {"h": 1}, "message_id": "f-0"}),
        json!({"body": {"to": "everyone", "again": true}, "routing_key": "some.key", "message_id": "f-1"}),
    ];
    env.kombu_publish("", &specs, Some((&fanout.name, "fanout"))).await;

    for (consumer, queue) in [(&mut c1, &q1), (&mut c2, &q2)] {
        let messages = take(consumer, 2).await;
        let mut ids = Vec::new();
        for m in &messages {
            let id = m.properties().message_id.as_deref().unwrap().to_owned();
            let spec = specs.iter().find(|s| s["message_id"] == id.as_str()).unwrap();
            assert_eq!(m.decode::<Json>().unwrap(), spec["body"], "{}", queue.name);
            assert_eq!(m.exchange(), fanout.name.as_str(), "{}", queue.name);
            assert_eq!(m.routing_key(), spec["routing_key"].as_str().unwrap(), "{}", queue.name);
            assert_eq!(m.content_type(), Some("application/json"));
            assert_eq!(headers_of(m), spec.get("headers").cloned().unwrap_or(json!({})), "{}", queue.name);
            m.ack().await.unwrap();
            ids.push(id);
        }
        ids.sort();
        assert_eq!(ids, ["f-0", "f-1"], "{}", queue.name);
        assert_quiet(consumer, &queue.name).await;
    }
    for c in [&mut c1, &mut c2] {
        c.cancel().await.unwrap();
    }
    env.cleanup().await;
}

#[tokio::test]
async fn kombu_publishes_to_a_fanout_exchange_and_every_kelp_consumer_receives_it() {
    kombu_fanout_to_kelp(None).await;
}

#[tokio::test]
async fn with_global_keyprefix_kombu_publishes_to_a_fanout_exchange_and_kelp_receives_it() {
    kombu_fanout_to_kelp(Some(KEYPREFIX)).await;
}

async fn kelp_fanout_to_kombu(prefix: Option<&str>) {
    let mut env = Env::new(prefix).await;
    let fanout = Exchange::fanout(kelp_test_support::unique_name("redis-interop-fanout-k"));
    env.exchanges.push(fanout.clone());
    let kombu_queue = kelp_test_support::unique_name("redis-interop-fanout-kombu");
    env.track(&Queue::new(kombu_queue.clone()));
    let bind = format!("{}:fanout:", fanout.name);
    let kombu_consumer =
        KombuConsumer::start(env.consume_args(&kombu_queue, 1, "json", &["--bind", &bind, "--linger", "1.0"])).await;

    let producer = env.conn.producer().exchange(fanout.clone()).build().await.unwrap();
    producer
        .publish(&json!({"to": "kombu"}))
        .headers(header_table())
        .correlation_id("fan-corr")
        .message_id("fan-0")
        .send()
        .await
        .unwrap();

    let seen = kombu_consumer.finish().await;
    assert_eq!(seen.len(), 1, "exactly one fanout message: {seen:?}");
    let m = &seen[0];
    assert_eq!(m["body"], json!({"to": "kombu"}), "{m}");
    assert_eq!(m["content_type"], "application/json", "{m}");
    assert_eq!(m["headers"], headers(), "{m}");
    assert_eq!(m["properties"]["correlation_id"], "fan-corr", "{m}");
    assert_eq!(m["properties"]["message_id"], "fan-0", "{m}");
    assert_eq!(m["delivery_info"]["exchange"], fanout.name.as_str(), "{m}");
    assert_eq!(m["delivery_info"]["routing_key"], "", "{m}");
    env.cleanup().await;
}

#[tokio::test]
async fn kelp_publishes_to_a_fanout_exchange_and_a_kombu_consumer_receives_it() {
    kelp_fanout_to_kombu(None).await;
}

#[tokio::test]
async fn with_global_keyprefix_kelp_publishes_to_a_fanout_exchange_and_kombu_receives_it() {
    kelp_fanout_to_kombu(Some(KEYPREFIX)).await;
}

// ---------------------------------------------------------------------------
// Scenario 6: Kombu's Redis priority order
// ---------------------------------------------------------------------------

/// Priorities in publish order.
const PRIORITIES: [u8; 14] = [9, 0, 5, 3, 7, 1, 6, 2, 8, 4, 0, 9, 10, 3];

/// The message ids in Kombu's Redis order: buckets 0, 3, 6, 9, the lowest
/// first, FIFO within a bucket (priority 10 is clamped to 9).
fn kombu_order() -> Vec<String> {
    let mut order: Vec<(u8, usize)> = PRIORITIES.iter().enumerate().map(|(i, p)| (step_of((*p).min(9)), i)).collect();
    order.sort();
    order.into_iter().map(|(_, i)| format!("p-{i}")).collect()
}

async fn kombu_publishes_priorities_kelp_consumes(prefix: Option<&str>) {
    let mut env = Env::new(prefix).await;
    let queue = env.declare("redis-interop-prio-k2kelp").await;
    let specs: Vec<Json> = PRIORITIES
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"body": {"i": i}, "priority": p, "message_id": format!("p-{i}")}))
        .collect();
    env.kombu_publish(&queue.name, &specs, None).await;
    let mut consumer = env.conn.consumer([queue.clone()]).prefetch_count(100).build().await.unwrap();
    let messages = take(&mut consumer, specs.len()).await;
    let got: Vec<String> = messages.iter().map(|m| m.properties().message_id.as_deref().unwrap().to_owned()).collect();
    assert_eq!(got, kombu_order(), "Kombu's Redis priority order");
    for (m, id) in messages.iter().zip(&got) {
        let i: usize = id[2..].parse().unwrap();
        assert_eq!(m.properties().priority, Some(PRIORITIES[i]), "{id}");
    }
    for m in &messages {
        m.ack().await.unwrap();
    }
    consumer.cancel().await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn kombu_publishes_priorities_and_kelp_consumes_them_in_kombus_redis_order() {
    kombu_publishes_priorities_kelp_consumes(None).await;
}

#[tokio::test]
async fn with_global_keyprefix_kombu_publishes_priorities_and_kelp_consumes_them_in_order() {
    kombu_publishes_priorities_kelp_consumes(Some(KEYPREFIX)).await;
}

async fn kelp_publishes_priorities_kombu_consumes(prefix: Option<&str>) {
    let mut env = Env::new(prefix).await;
    let queue = env.declare("redis-interop-prio-kelp2k").await;
    let producer = env.conn.producer().routing_key(queue.name.clone()).build().await.unwrap();
    for (i, p) in PRIORITIES.iter().enumerate() {
        producer.publish(&json!({"i": i})).priority(*p).message_id(format!("p-{i}")).send().await.unwrap();
    }
    let seen = env.kombu_consume(&queue.name, PRIORITIES.len(), "json").await;
    let got: Vec<&str> = seen.iter().map(|m| m["properties"]["message_id"].as_str().unwrap()).collect();
    assert_eq!(got, kombu_order(), "Kombu's Redis priority order");
    for m in &seen {
        let i = m["body"]["i"].as_u64().unwrap() as usize;
        assert_eq!(m["properties"]["priority"], PRIORITIES[i], "{m}");
    }
    env.cleanup().await;
}

#[tokio::test]
async fn kelp_publishes_priorities_and_kombu_consumes_them_in_kombus_redis_order() {
    kelp_publishes_priorities_kombu_consumes(None).await;
}

#[tokio::test]
async fn with_global_keyprefix_kelp_publishes_priorities_and_kombu_consumes_them_in_order() {
    kelp_publishes_priorities_kombu_consumes(Some(KEYPREFIX)).await;
}

// ---------------------------------------------------------------------------
// Requeue across the two: the message comes back marked redelivered
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_message_kelp_requeues_reaches_kombu_marked_redelivered() {
    let mut env = Env::new(None).await;
    let queue = env.declare("redis-interop-requeue-kelp").await;
    let name = queue.name.clone();
    let spec = kombu_spec("json", None, 0);
    env.kombu_publish(&name, std::slice::from_ref(&spec), None).await;
    let mut consumer = env.conn.consumer([queue.clone()]).build().await.unwrap();
    let first = take(&mut consumer, 1).await.remove(0);
    assert!(!first.redelivered());
    consumer.cancel().await.unwrap();
    first.requeue().await.unwrap();
    drop(consumer);
    env.assert_no_unacked(&name).await;

    let seen = env.kombu_consume(&name, 1, "json").await;
    let m = &seen[0];
    assert_eq!(m["body"], spec["body"], "{m}");
    assert_eq!(m["properties"]["message_id"], "mid-0", "{m}");
    assert_eq!(m["delivery_info"]["redelivered"], true, "{m}");
    let mut expected_headers = headers();
    expected_headers["redelivered"] = json!(true); // as Kombu's own restore marks it
    assert_eq!(m["headers"], expected_headers, "{m}");
    env.assert_no_unacked(&name).await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_message_kombu_requeues_reaches_kelp_marked_redelivered() {
    let mut env = Env::new(None).await;
    let queue = env.declare("redis-interop-requeue-kombu").await;
    let name = queue.name.clone();
    let producer = env.conn.producer().routing_key(name.clone()).build().await.unwrap();
    producer.publish(&body()).headers(header_table()).message_id("rq-0").send().await.unwrap();
    let seen = kombu(env.consume_args(&name, 1, "json", &["--requeue"]), String::new()).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["delivery_info"]["redelivered"], json!(null), "first delivery: {}", seen[0]);

    let mut consumer = env.conn.consumer([queue.clone()]).build().await.unwrap();
    let again = take(&mut consumer, 1).await.remove(0);
    assert!(again.redelivered(), "Kombu's requeue marks it redelivered");
    assert_eq!(again.decode::<Json>().unwrap(), body());
    assert_eq!(again.properties().message_id.as_deref(), Some("rq-0"));
    again.ack().await.unwrap();
    assert_quiet(&mut consumer, "exactly one copy after Kombu's requeue").await;
    consumer.cancel().await.unwrap();
    env.assert_no_unacked(&name).await;
    env.cleanup().await;
}

// ---------------------------------------------------------------------------
// A Kombu consumer dies holding a message: kelp restores it from Kombu's
// unacked records after the visibility timeout
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_message_a_killed_kombu_consumer_held_is_restored_by_kelp_after_the_visibility_timeout() {
    // A prefix of its own: the sweep restores every overdue record under
    // it, and other tests hold unacked messages for a moment too.
    let prefix = format!("{}:", kelp_test_support::unique_name("kelp-interop-restore"));
    let mut env = Env::with_options(
        Some(&prefix),
        &[("visibility_timeout", Value::from(1.0f64)), ("unacked_restore_interval", Value::from(0.2f64))],
    )
    .await;
    let queue = env.declare("redis-interop-restore").await;
    let name = queue.name.clone();
    // Kombu takes the message and sits on it (never acks).
    let kombu_consumer = KombuConsumer::start(env.consume_args(&name, 1, "json", &["--delay", "600"])).await;
    let producer = env.conn.producer().routing_key(name.clone()).build().await.unwrap();
    producer.publish(&json!({"held": true})).priority(5).message_id("held-0").send().await.unwrap();
    let records = eventually("Kombu records the delivery as unacked", PATIENCE, async || {
        Some(env.unacked_records(&name).await).filter(|records| !records.is_empty())
    })
    .await;
    assert_eq!(records.len(), 1, "Kombu recorded the delivery: {records:?}");
    let (tag, record) = records.into_iter().next().unwrap();
    assert_eq!(record[0]["properties"]["delivery_tag"], tag.as_str());
    assert_eq!(record[0]["properties"]["message_id"], "held-0");
    assert_eq!(env.bucket_sizes(&env.prefix, &name).await, [0, 0, 0, 0], "Kombu popped it");
    drop(kombu_consumer); // SIGKILL: no restore at shutdown

    let mut consumer = env.conn.consumer([queue.clone()]).build().await.unwrap();
    let back = take(&mut consumer, 1).await.remove(0);
    assert!(back.redelivered(), "restored messages are marked redelivered");
    assert_eq!(back.properties().message_id.as_deref(), Some("held-0"));
    assert_eq!(back.properties().priority, Some(5));
    assert_eq!(back.decode::<Json>().unwrap(), json!({"held": true}));
    back.ack().await.unwrap();
    assert_quiet(&mut consumer, "restored exactly once").await;
    consumer.cancel().await.unwrap();
    env.assert_no_unacked(&name).await;
    assert!(!env.in_unacked_index(&tag).await, "{tag} left in unacked_index");
    env.cleanup().await;
}
