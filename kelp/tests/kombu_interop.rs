//! Wire compatibility with Python Kombu over the real RabbitMQ: Kombu
//! publishes and kelp consumes, kelp publishes and Kombu consumes, for every
//! serializer and compression, with headers and the basic properties, and
//! each side checks every field.
//!
//! The Python side is `tests/interop/kombu_peer.py`, run by `KELP_PYTHON`
//! (an interpreter with `kombu`, `msgpack`, `pyyaml`, `brotli` and
//! `zstandard`; `scripts/python-env.sh` makes one, `scripts/test.sh` sets the
//! variable). Without it these tests fail and say so.

mod interop;

use interop::kombu;

use std::time::Duration;

use kelp::{Accept, Compression, Connection, Message, Queue, Serializer, Value};
use serde_json::{Value as Json, json};

struct Setup {
    url: String,
    conn: Connection,
    queue: Queue,
}

impl Setup {
    async fn new(prefix: &str) -> Setup {
        let url = kelp_test_support::require_rabbitmq_async().await;
        let conn = Connection::new(&url).expect("the test URL parses");
        // Plain durable queue on the default exchange, as both sides use it;
        // x-max-priority so the priority property is meaningful.
        let queue = Queue::new(kelp_test_support::unique_name(prefix)).max_priority(10);
        let channel = conn.default_channel().await.expect("a channel");
        queue.declare(&channel).await.expect("declare the interop queue");
        Setup { url, conn, queue }
    }

    fn name(&self) -> String {
        self.queue.name.clone()
    }

    async fn kombu_publish(&self, specs: &[Json]) {
        let stdin: String = specs.iter().map(|s| format!("{s}\n")).collect();
        let out = kombu(vec!["publish".into(), self.url.clone(), self.name()], stdin).await;
        assert_eq!(out, vec![json!({"published": specs.len()})]);
    }

    async fn kombu_consume(&self, count: usize, accept: &str) -> Vec<Json> {
        let args = vec!["consume".into(), self.url.clone(), self.name(), count.to_string(), accept.into()];
        let out = kombu(args, String::new()).await;
        assert_eq!(out.len(), count, "Kombu printed {out:?}");
        out
    }

    /// `n` messages through a kelp consumer accepting `accept`, unsettled.
    async fn kelp_consume(&self, n: usize, accept: Accept) -> Vec<Message> {
        let mut consumer = self.conn.consumer([self.queue.clone()]).accept(accept).prefetch_count(100).build().await.unwrap();
        let mut got = Vec::new();
        while got.len() < n {
            let message = tokio::time::timeout(Duration::from_secs(20), consumer.next())
                .await
                .unwrap_or_else(|_| panic!("{} of {n} messages from Kombu after 20 s", got.len()))
                .expect("the consumer stream ended")
                .expect("a delivery");
            got.push(message);
        }
        consumer.cancel().await.unwrap();
        got
    }

    async fn cleanup(self) {
        let channel = self.conn.default_channel().await.unwrap();
        self.queue.delete(&channel, false, false).await.unwrap();
        self.conn.close().await.unwrap();
    }
}

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
    json!({"x-trace": "abc-123", "attempt": 3, "flag": true, "ratio": 0.5, "tags": ["a", "b"], "nested": {"k": "v"}})
}

fn json_of(value: Value) -> Json {
    value.deserialize_into().expect("a value converts to JSON")
}

fn headers_of(message: &Message) -> Json {
    json_of(Value::Map(message.headers().clone()))
}

/// The message Kombu published from `spec`, as kelp reads it.
fn check_kelp_reads(message: &Message, spec: &Json, queue: &str) {
    let serializer = spec["serializer"].as_str();
    let (content_type, encoding) = match (serializer, spec["content_type"].as_str()) {
        (_, Some(ct)) => (ct, spec["content_encoding"].as_str().expect("spec has an encoding")),
        (Some("json"), _) => ("application/json", "utf-8"),
        (Some("msgpack"), _) => ("application/x-msgpack", "binary"),
        (Some("yaml"), _) => ("application/x-yaml", "utf-8"),
        (Some("raw"), _) => ("application/data", "binary"),
        other => panic!("no expectation for {other:?}"),
    };
    let what = format!("{serializer:?}/{:?}", spec["compression"]);
    assert_eq!(message.content_type(), Some(content_type), "{what}");
    assert_eq!(message.content_encoding(), Some(encoding), "{what}");
    match spec.get("bytes_body") {
        Some(b64) => {
            let expected = base64_decode(b64.as_str().unwrap());
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
    }
    assert_eq!(headers_of(message), expected_headers, "{what}");
    let p = message.properties();
    assert_eq!(p.delivery_mode, Some(2), "{what}");
    assert_eq!(p.priority, spec["priority"].as_u64().map(|p| p as u8), "{what}");
    assert_eq!(p.correlation_id.as_deref(), spec["correlation_id"].as_str(), "{what}");
    assert_eq!(p.reply_to.as_deref(), spec["reply_to"].as_str(), "{what}");
    assert_eq!(p.message_id.as_deref(), spec["message_id"].as_str(), "{what}");
    // Kombu takes seconds and sends milliseconds as text.
    let expiration = spec["expiration"].as_f64().map(|s| format!("{}", (s * 1000.0) as u64));
    assert_eq!(p.expiration.as_deref(), expiration.as_deref(), "{what}");
    assert_eq!(message.exchange(), "", "{what}");
    assert_eq!(message.routing_key(), queue, "{what}");
    assert!(!message.redelivered(), "{what}");
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {text:?}"),
        }
    };
    let mut out = Vec::new();
    for chunk in text.trim_end_matches('=').as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
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
    })
}

#[tokio::test]
async fn kombu_publishes_every_serializer_and_compression_and_kelp_reads_every_field() {
    let setup = Setup::new("interop-k2k").await;
    let mut specs = Vec::new();
    for serializer in ["json", "msgpack", "yaml"] {
        specs.push(kombu_spec(serializer, None, specs.len()));
    }
    for compression in ["zlib", "bzip2", "lzma", "zstd", "brotli"] {
        specs.push(kombu_spec("json", Some(compression), specs.len()));
    }
    specs.push(kombu_spec("msgpack", Some("zstd"), specs.len()));
    let mut raw = kombu_spec("raw", None, specs.len());
    raw["bytes_body"] = json!("AAH+/2hlbGxv"); // 00 01 fe ff "hello"
    specs.push(raw);
    // A str body with an explicit content type: Kombu sends it unserialized.
    let mut text = kombu_spec("json", None, specs.len());
    text["body"] = json!("plain h\u{e9}llo text");
    text["content_type"] = json!("text/plain");
    text["content_encoding"] = json!("utf-8");
    specs.push(text);

    setup.kombu_publish(&specs).await;
    let messages = setup.kelp_consume(specs.len(), Accept::all()).await;
    // One queue with priorities: match by message id, not order.
    for message in &messages {
        let id = message.properties().message_id.as_deref().expect("Kombu set a message id");
        let spec = specs.iter().find(|s| s["message_id"] == id).expect("a message kelp did not expect");
        check_kelp_reads(message, spec, &setup.name());
        message.ack().await.unwrap();
    }
    let mut ids: Vec<_> = messages.iter().map(|m| m.properties().message_id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), specs.len(), "every message exactly once");
    setup.cleanup().await;
}

#[tokio::test]
async fn a_kombu_message_kelp_does_not_accept_is_refused_and_not_lost() {
    let setup = Setup::new("interop-disallowed").await;
    let spec = kombu_spec("yaml", None, 0);
    setup.kombu_publish(std::slice::from_ref(&spec)).await;

    let refused = setup.kelp_consume(1, Accept::new(["json"]).unwrap()).await;
    let err = refused[0].decode::<Json>().expect_err("yaml is not accepted");
    assert!(err.is_content_disallowed(), "{err}");
    refused[0].requeue().await.unwrap();

    let again = setup.kelp_consume(1, Accept::new(["application/x-yaml"]).unwrap()).await;
    assert!(again[0].redelivered(), "the requeued message comes back");
    assert_eq!(again[0].decode::<Json>().unwrap(), spec["body"]);
    again[0].ack().await.unwrap();
    setup.cleanup().await;
}

#[tokio::test]
async fn kelp_publishes_every_serializer_and_compression_and_kombu_reads_every_field() {
    let setup = Setup::new("interop-kelp2k").await;
    let producer = setup.conn.producer().routing_key(setup.name()).build().await.unwrap();
    let header_table = match Value::from_serialize(&headers()).unwrap() {
        Value::Map(table) => table,
        other => panic!("headers are a table, not {other:?}"),
    };
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
    let total = cases.len() + 2;
    let body = body();
    for (i, (serializer, compression, _, _)) in cases.iter().enumerate() {
        let mut publish = producer
            .publish(&body)
            .serializer(serializer.clone())
            .headers(header_table.clone())
            .priority(1 + (i % 9) as u8)
            .expiration(Duration::from_millis(60_500))
            .correlation_id(format!("corr-{i}"))
            .reply_to("kombu.replies")
            .message_id(format!("mid-{i}"))
            .timestamp(1_700_000_000);
        if let Some(c) = compression {
            publish = publish.compression(*c);
        }
        publish.send().await.unwrap();
    }
    let raw_index = cases.len();
    producer
        .publish_bytes(&b"\x00\x01\xfe\xffhello"[..])
        .message_id(format!("mid-{raw_index}"))
        .send()
        .await
        .unwrap();
    producer.publish_text("plain h\u{e9}llo text").message_id(format!("mid-{}", raw_index + 1)).send().await.unwrap();

    let seen = setup.kombu_consume(total, "json,msgpack,yaml,application/data,text/plain").await;
    let by_id = |id: String| -> &Json {
        seen.iter()
            .find(|m| m["properties"]["message_id"] == id.as_str())
            .unwrap_or_else(|| panic!("Kombu did not receive {id}: {seen:?}"))
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
        assert_eq!(p["delivery_mode"], 2, "{what}");
        assert_eq!(p["priority"], 1 + (i % 9), "{what}");
        assert_eq!(p["correlation_id"], format!("corr-{i}"), "{what}");
        assert_eq!(p["reply_to"], "kombu.replies", "{what}");
        assert_eq!(p["expiration"], "60500", "{what}");
        assert_eq!(p["timestamp"], 1_700_000_000, "{what}"); // py-amqp gives seconds
        assert_eq!(m["delivery_info"], json!({"exchange": "", "routing_key": setup.name(), "redelivered": false}));
    }
    let raw = by_id(format!("mid-{raw_index}"));
    assert_eq!(raw["content_type"], "application/data");
    assert_eq!(raw["content_encoding"], "binary");
    assert_eq!(raw["body"], json!({"__bytes__": "AAH+/2hlbGxv"}));
    assert_eq!(raw["properties"]["delivery_mode"], 2);
    let text = by_id(format!("mid-{}", raw_index + 1));
    assert_eq!(text["content_type"], "text/plain");
    assert_eq!(text["content_encoding"], "utf-8");
    assert_eq!(text["body"], "plain h\u{e9}llo text");
    setup.cleanup().await;
}
