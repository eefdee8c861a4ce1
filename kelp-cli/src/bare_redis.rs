//! The reference row of `kelp bench` on `redis://`: the same workload as
//! kelp's row (one producer, one consumer, at most [`WINDOW`] messages
//! published but not yet consumed) as a bare LPUSH / BRPOP loop on the
//! `redis` crate, with no messaging model around it: the upper limit of
//! any Redis transport on this machine.
//!
//! Redis carries the same bytes as for kelp: a Kombu Redis envelope (JSON,
//! base64 body) of the same body size, built once; the send time of sampled
//! messages travels in its `delivery_tag` field, written in place.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{FutureExt, StreamExt};
use futures_util::stream::FuturesOrdered;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde_json::json;

use crate::CliError;
use crate::measure::{BenchResult, SAMPLE_EVERY, WINDOW, process_cpu_time, progress, spawn_ticker, unique_suffix};

/// Name of the row.
pub const NAME: &str = "bare-redis";

/// How long one reply may take before the bare loop gives up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Digits of the send time in the envelope's `delivery_tag`.
const STAMP_DIGITS: usize = 20;

/// A Kombu Redis envelope around a `size`-byte body, as kelp's transport
/// writes it for a persistent raw-bytes message to `routing_key` through
/// the default exchange (same fields, base64 body), with delivery tag `tag`.
pub fn envelope(size: usize, routing_key: &str, tag: &str) -> Vec<u8> {
    let body = base64::engine::general_purpose::STANDARD.encode(vec![b'k'; size]);
    let value = json!({
        "body": body,
        "content-encoding": "binary",
        "content-type": "application/octet-stream",
        "headers": {},
        "properties": {
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": routing_key},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": tag,
        },
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

/// A multiplexed connection to `url` whose replies may take [`REPLY_TIMEOUT`].
pub async fn connect(url: &str) -> Result<MultiplexedConnection, CliError> {
    let client = redis::Client::open(url).map_err(|e| CliError::failure(format!("bare-redis: bad URL {url}: {e}")))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(REPLY_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| CliError::failure(format!("bare-redis: cannot connect to Redis: {e}")))
}

fn failed(doing: &str, e: redis::RedisError) -> CliError {
    CliError::failure(format!("bare-redis: {doing}: {e}"))
}

/// Run the bare loop against the Redis server of `url` (a plain
/// `redis://` or `rediss://` URL, as the redis crate reads it).
pub async fn run(url: &str, messages: u64, size: usize, visible: bool) -> Result<BenchResult, CliError> {
    let producer = connect(url).await?;
    // Its own connection: a waiting BRPOP holds up whatever follows it on
    // the same connection.
    let consumer = connect(url).await?;
    let key = format!("kelp-bench-bare-{}-{}", std::process::id(), unique_suffix());
    let zeros = "0".repeat(STAMP_DIGITS);
    let template = envelope(size, &key, &zeros);
    let needle = format!("\"delivery_tag\":\"{zeros}\"");
    let stamp_at = template
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .map(|i| i + "\"delivery_tag\":\"".len())
        .ok_or_else(|| CliError::failure("bare-redis: no delivery_tag in the envelope"))?;
    let expected_len = template.len();

    let counter = Arc::new(AtomicU64::new(0));
    let consumed_notify = Arc::new(tokio::sync::Notify::new());
    let ticker = spawn_ticker(progress(messages, NAME, visible), counter.clone());
    let epoch = Instant::now();
    let cpu_before = process_cpu_time();

    let consuming = {
        let counter = counter.clone();
        let consumed_notify = consumed_notify.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(usize::try_from(messages / SAMPLE_EVERY + 1).unwrap_or(0));
            let mut conn = consumer.clone();
            let mut received = 0u64;
            while received < messages {
                // One BRPOP at a time, as a consumer does: Redis serves a
                // connection's pipelined blocking commands one by one and,
                // pipelined 1,000 deep, sometimes left them blocked with
                // messages waiting (the bench hung).
                let mut cmd = redis::cmd("BRPOP");
                cmd.arg(&key).arg(REPLY_TIMEOUT.as_secs() - 5);
                let popped = cmd.query_async::<Option<(String, Vec<u8>)>>(&mut conn).await.map_err(|e| failed("BRPOP", e))?;
                let Some((_, raw)) = popped else {
                    return Err(CliError::failure("bare-redis: BRPOP timed out before the last message"));
                };
                if raw.len() != expected_len {
                    return Err(CliError::failure(format!("bare-redis: popped {} bytes, expected {expected_len}", raw.len())));
                }
                let stamp = std::str::from_utf8(&raw[stamp_at..stamp_at + STAMP_DIGITS])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                if stamp != 0 {
                    latencies.push((epoch.elapsed().as_nanos() as u64 + 1).saturating_sub(stamp));
                }
                received += 1;
                if received.is_multiple_of(64) {
                    counter.store(received, Ordering::Release);
                    consumed_notify.notify_one();
                }
            }
            counter.store(received, Ordering::Relaxed);
            Ok::<_, CliError>((latencies, epoch.elapsed()))
        })
    };

    let mut in_flight: FuturesOrdered<std::pin::Pin<Box<dyn std::future::Future<Output = redis::RedisResult<()>> + Send>>> =
        FuturesOrdered::new();
    let mut payload = template.clone();
    for sent in 0..messages {
        // At most WINDOW published but not yet consumed, as kelp's row.
        if sent.saturating_sub(counter.load(Ordering::Acquire)) >= WINDOW as u64 {
            while sent.saturating_sub(counter.load(Ordering::Acquire)) > (WINDOW / 2) as u64 {
                let notified = consumed_notify.notified();
                if sent.saturating_sub(counter.load(Ordering::Acquire)) <= (WINDOW / 2) as u64 {
                    break;
                }
                // Keep the LPUSHes already queued moving while waiting.
                tokio::select! {
                    _ = notified => {}
                    Some(reply) = in_flight.next(), if !in_flight.is_empty() => {
                        let reply: redis::RedisResult<()> = reply;
                        reply.map_err(|e| failed("LPUSH", e))?;
                    }
                }
            }
        }
        let stamp = if sent.is_multiple_of(SAMPLE_EVERY) { epoch.elapsed().as_nanos() as u64 + 1 } else { 0 };
        payload[stamp_at..stamp_at + STAMP_DIGITS].copy_from_slice(format!("{stamp:020}").as_bytes());
        let mut cmd = redis::cmd("LPUSH");
        cmd.arg(&key).arg(&payload);
        let mut conn = producer.clone();
        in_flight.push_back(Box::pin(async move { cmd.query_async::<i64>(&mut conn).await.map(|_| ()) }));
        // Send it now (a FuturesOrdered polls only when asked), and collect
        // the replies already in.
        while let Some(Some(reply)) = in_flight.next().now_or_never() {
            reply.map_err(|e| failed("LPUSH", e))?;
        }
        if in_flight.len() >= WINDOW
            && let Some(reply) = in_flight.next().await
        {
            reply.map_err(|e| failed("LPUSH", e))?;
        }
    }
    while let Some(reply) = in_flight.next().await {
        reply.map_err(|e| failed("LPUSH", e))?;
    }
    let (mut latencies, elapsed) = consuming
        .await
        .map_err(|e| CliError::failure(format!("bare-redis consumer task failed: {e}")))??;
    let cpu = cpu_before.zip(process_cpu_time()).map(|(a, b)| b.saturating_sub(a));
    ticker.abort();
    latencies.sort_unstable();
    let mut conn = producer.clone();
    redis::cmd("DEL").arg(&key).query_async::<i64>(&mut conn).await.map_err(|e| failed("DEL", e))?;
    Ok(BenchResult {
        name: NAME.to_owned(),
        messages,
        size,
        elapsed,
        latencies_ns: latencies,
        cpu,
    })
}
