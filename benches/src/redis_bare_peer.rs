//! The upper limit of the Redis bench: a bare LPUSH / BRPOP loop written
//! directly on the `redis` crate (the version kelp's transport uses), with
//! nothing of a messaging model around it.
//!
//! - **publish**: one `LPUSH` per message on a `MultiplexedConnection`,
//!   `window` commands in flight (a `FuturesOrdered`: a new LPUSH is sent as
//!   soon as the oldest reply is in once `window` are outstanding). Every
//!   message is "confirmed" by its LPUSH reply, as kelp's are. Latencies:
//!   LPUSH → reply.
//! - **consume**: the list is pre-filled (not timed), then one `BRPOP` per
//!   message, `prefetch` in flight on one connection, until N are popped.
//!   There is no ack: nothing is recorded in Redis, so this is what moving
//!   the messages out of Redis costs and nothing more.
//!
//! The payload is not the bare body: it is a Kombu Redis envelope (JSON,
//! base64 body, the properties kelp and Kombu write) built **once**, so that
//! Redis and the socket carry the same bytes per message as for kelp and
//! Kombu, and the difference between the rows is client work.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use kelp_cli::measure::BenchResult;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

use crate::common::{
    CONNECT_TIMEOUT, Context, Params, STEP_TIMEOUT, Timer, Workload, bounded, nanos_since, runtime_tag,
    unique_queue,
};

/// Base name of the rows (`bare/ct`, `bare/mt`).
pub const NAME: &str = "bare";

fn row_name() -> String {
    format!("{NAME}/{}", runtime_tag())
}

/// Run one workload with `params` (publish and consume only).
pub async fn run(workload: Workload, params: &Params) -> Result<BenchResult, String> {
    match workload {
        Workload::Publish => publish(&params.url, params.messages, params.size, params.window).await,
        Workload::Consume => {
            consume(&params.url, params.messages, params.size, params.prefetch, params.window).await
        }
        Workload::RoundTrip => Err("bare: the Redis bench has no round_trip workload".to_owned()),
    }
}

/// A multiplexed connection whose replies may take up to [`STEP_TIMEOUT`]
/// (the crate's default of 500 ms would fail a BRPOP that waits).
pub async fn connect(url: &str) -> Result<MultiplexedConnection, String> {
    let client = redis::Client::open(url).ctx("bare: Redis URL")?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(STEP_TIMEOUT));
    bounded(
        "bare: cannot connect to Redis",
        CONNECT_TIMEOUT,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await?
    .ctx("bare: connect")
}

/// A Kombu Redis envelope around a `size`-byte body, as kelp's transport
/// writes it for a persistent raw-bytes message to `routing_key` through
/// the default exchange (same field set, same base64 body): the one the
/// CLI's bare row pushes, with a fixed delivery tag.
pub fn envelope(size: usize, routing_key: &str) -> Vec<u8> {
    kelp_cli::bare_redis::envelope(size, routing_key, "7f1c2a9e-4b3d-4c5e-9a8b-0123456789ab")
}

/// LPUSH `payload` `messages` times onto `key`, `window` in flight; the
/// latency of each LPUSH (send → reply).
async fn push_all(
    conn: &MultiplexedConnection,
    key: &str,
    payload: &[u8],
    messages: u64,
    window: usize,
) -> Result<Vec<u64>, String> {
    let mut latencies = Vec::with_capacity(usize::try_from(messages).unwrap_or(0));
    let mut in_flight = FuturesOrdered::new();
    for _ in 0..messages {
        if in_flight.len() >= window {
            let oldest = bounded("bare: waiting for an LPUSH reply", STEP_TIMEOUT, in_flight.next()).await?;
            let (sent, reply): (Instant, redis::RedisResult<i64>) = oldest.ok_or("bare: no LPUSH in flight")?;
            reply.ctx("bare: LPUSH")?;
            latencies.push(nanos_since(sent));
        }
        let mut conn = conn.clone();
        let mut cmd = redis::cmd("LPUSH");
        cmd.arg(key).arg(payload);
        in_flight.push_back(async move {
            let sent = Instant::now();
            (sent, cmd.query_async::<i64>(&mut conn).await)
        });
    }
    while let Some((sent, reply)) = bounded("bare: waiting for an LPUSH reply", STEP_TIMEOUT, in_flight.next()).await? {
        reply.ctx("bare: LPUSH")?;
        latencies.push(nanos_since(sent));
    }
    Ok(latencies)
}

async fn delete(conn: &MultiplexedConnection, key: &str) -> Result<(), String> {
    let mut conn = conn.clone();
    redis::cmd("DEL").arg(key).query_async::<i64>(&mut conn).await.ctx("bare: DEL").map(|_| ())
}

/// Publish `messages` envelopes of a `size`-byte body, `window` LPUSHes in flight.
pub async fn publish(url: &str, messages: u64, size: usize, window: usize) -> Result<BenchResult, String> {
    let conn = connect(url).await?;
    let key = unique_queue(NAME, Workload::Publish);
    let payload = envelope(size, &key);
    let timer = Timer::start();
    let latencies = push_all(&conn, &key, &payload, messages, window.max(1)).await;
    let result = latencies.map(|l| timer.finish(row_name(), messages, size, l));
    delete(&conn, &key).await?;
    result
}

/// Pop `messages` pre-filled envelopes with BRPOP, `prefetch` in flight.
pub async fn consume(
    url: &str,
    messages: u64,
    size: usize,
    prefetch: u16,
    fill_window: usize,
) -> Result<BenchResult, String> {
    let conn = connect(url).await?;
    let key = unique_queue(NAME, Workload::Consume);
    let payload = envelope(size, &key);
    let result = async {
        push_all(&conn, &key, &payload, messages, fill_window.max(1)).await?;
        let timer = Timer::start();
        let mut popper = Popper::new(&conn, &key, messages, prefetch, NAME);
        for _ in 0..messages {
            let raw = popper.next().await?;
            if raw.len() != payload.len() {
                return Err(format!("bare: popped {} bytes, expected {}", raw.len(), payload.len()));
            }
        }
        Ok(timer.finish(row_name(), messages, size, Vec::new()))
    }
    .await;
    delete(&conn, &key).await?;
    result
}

/// One BRPOP on its way: the popped (list, payload), if any.
type Pop = std::pin::Pin<Box<dyn std::future::Future<Output = redis::RedisResult<Option<(String, Vec<u8>)>>> + Send>>;

/// Pops a list with BRPOP, `prefetch` commands in flight on one connection,
/// `total` in all.
struct Popper<'a> {
    conn: &'a MultiplexedConnection,
    key: &'a str,
    what: &'static str,
    left_to_send: u64,
    window: usize,
    in_flight: FuturesOrdered<Pop>,
}

impl<'a> Popper<'a> {
    fn new(conn: &'a MultiplexedConnection, key: &'a str, total: u64, prefetch: u16, what: &'static str) -> Popper<'a> {
        Popper { conn, key, what, left_to_send: total, window: usize::from(prefetch.max(1)), in_flight: FuturesOrdered::new() }
    }

    /// The next message popped.
    async fn next(&mut self) -> Result<Vec<u8>, String> {
        while self.left_to_send > 0 && self.in_flight.len() < self.window {
            let mut conn = self.conn.clone();
            let mut cmd = redis::cmd("BRPOP");
            // A whole-second timeout well below the reply timeout.
            cmd.arg(self.key).arg(STEP_TIMEOUT.as_secs().saturating_sub(5).max(1));
            self.in_flight.push_back(Box::pin(async move { cmd.query_async::<Option<(String, Vec<u8>)>>(&mut conn).await }));
            self.left_to_send -= 1;
        }
        let what = self.what;
        let popped = bounded("waiting for a BRPOP reply", STEP_TIMEOUT + Duration::from_secs(5), self.in_flight.next())
            .await?
            .ok_or(format!("{what}: no BRPOP in flight"))?
            .ctx("BRPOP")
            .map_err(|e| format!("{what}: {e}"))?;
        popped.map(|(_, raw)| raw).ok_or(format!("{what}: BRPOP timed out before the last message"))
    }
}

/// Base name of the bare loop with Kombu's ack emulation (`bare-ack/ct`...).
pub const ACK_NAME: &str = "bare-ack";

/// The consume limit of any consumer that keeps Kombu's ack emulation:
/// the bare loop's BRPOPs plus, per message, Kombu's four writes done by
/// hand (ZADD `unacked_index` and HSET `unacked` with the envelope when
/// popped, ZREM and HDEL when acked), `prefetch` BRPOPs in flight, the
/// writes of every popped message pipelined and not waited for one by one.
pub async fn consume_acked(
    url: &str,
    messages: u64,
    size: usize,
    prefetch: u16,
    fill_window: usize,
) -> Result<BenchResult, String> {
    let conn = connect(url).await?;
    // The writes on a connection of their own: behind BRPOPs they would wait
    // for them (Redis serves a connection's commands in order).
    let writer = connect(url).await?;
    let key = unique_queue(ACK_NAME, Workload::Consume);
    let (hash, index) = (format!("{key}.unacked"), format!("{key}.unacked_index"));
    let payload = envelope(size, &key);
    let result = async {
        push_all(&conn, &key, &payload, messages, fill_window.max(1)).await?;
        let timer = Timer::start();
        let mut popper = Popper::new(&conn, &key, messages, prefetch, ACK_NAME);
        let mut writes = FuturesOrdered::new();
        for received in 0..messages {
            let raw = popper.next().await?;
            // Record as Kombu does, then ack: four writes in one pipeline.
            let tag = format!("{key}-{received}");
            let mut record = Vec::with_capacity(raw.len() + 2 * key.len() + 8);
            record.push(b'[');
            record.extend_from_slice(&raw);
            record.extend_from_slice(format!(",\"\",\"{key}\"]").as_bytes());
            let mut pipe = redis::pipe();
            pipe.cmd("ZADD").arg(&index).arg(received).arg(&tag).ignore();
            pipe.cmd("HSET").arg(&hash).arg(&tag).arg(record).ignore();
            pipe.cmd("ZREM").arg(&index).arg(&tag).ignore();
            pipe.cmd("HDEL").arg(&hash).arg(&tag).ignore();
            let mut conn = writer.clone();
            writes.push_back(async move { pipe.query_async::<()>(&mut conn).await });
            while writes.len() > usize::from(prefetch.max(1)) {
                bounded("bare-ack: waiting for the writes", STEP_TIMEOUT, writes.next())
                    .await?
                    .ok_or("bare-ack: no writes in flight")?
                    .ctx("bare-ack: writes")?;
            }
        }
        while let Some(done) = bounded("bare-ack: waiting for the writes", STEP_TIMEOUT, writes.next()).await? {
            done.ctx("bare-ack: writes")?;
        }
        Ok(timer.finish(format!("{ACK_NAME}/{}", runtime_tag()), messages, size, Vec::new()))
    }
    .await;
    delete(&conn, &key).await?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_body_is_base64() {
        for size in [0, 1, 2, 3, 100, 4096] {
            let raw = envelope(size, "q");
            let value: serde_json::Value = serde_json::from_slice(&raw).unwrap();
            let body = value["body"].as_str().unwrap();
            assert_eq!(body.len(), size.div_ceil(3) * 4);
        }
        let value: serde_json::Value = serde_json::from_slice(&envelope(3, "q")).unwrap();
        assert_eq!(value["body"], "a2tr");
        let value: serde_json::Value = serde_json::from_slice(&envelope(1, "q")).unwrap();
        assert_eq!(value["body"], "aw==");
    }
}
