//! kelp itself, driven exactly like the peers:
//! - **publish**: a producer with confirms (kelp's default) publishes with
//!   `enqueue()`, which hands the frames to the connection's writer and
//!   returns the pending [`kelp::Confirmation`]; confirmations wait in a
//!   FIFO and the oldest is awaited once `window` are outstanding; resolved
//!   ones at the front are collected after each publish (polled once), so
//!   the publish→confirm latency is accurate to about one publish.
//! - **consume**: a consumer with `prefetch_count(prefetch)`, manual acks,
//!   `message.ack().await` for each message (kelp writes the ack frame into
//!   the connection's buffer; no round trip).
//! - **round trip**: a publisher on one channel without confirms, a consumer
//!   on another channel of the same connection; publish, wait, ack.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use kelp::{Connection, Queue};
use kelp_cli::measure::BenchResult;

use crate::common::{
    CONNECT_TIMEOUT, Context, Params, ROUND_TRIP_WARMUP, STEP_TIMEOUT, Timer, Workload, bounded, nanos_since,
    runtime_tag, unique_queue,
};

/// Base name of the rows (`kelp/ct`, `kelp/mt`).
pub const NAME: &str = "kelp";

fn row_name() -> String {
    format!("{NAME}/{}", runtime_tag())
}

/// Run one workload with `params`.
pub async fn run(workload: Workload, params: &Params) -> Result<BenchResult, String> {
    match workload {
        Workload::Publish => publish(&params.url, params.messages, params.size, params.window).await,
        Workload::Consume => {
            consume(&params.url, params.messages, params.size, params.prefetch, params.window).await
        }
        Workload::RoundTrip => round_trip(&params.url, params.round_trips, params.size, params.prefetch).await,
    }
}

async fn connect(url: &str) -> Result<Connection, String> {
    let conn = Connection::new(url).ctx("kelp: URL")?;
    bounded("kelp: cannot connect to RabbitMQ", CONNECT_TIMEOUT, conn.connect())
        .await?
        .ctx("kelp: connect")?;
    Ok(conn)
}

/// A fresh durable queue, purged.
async fn fresh_queue(conn: &Connection, name: &str) -> Result<Queue, String> {
    let channel = conn.default_channel().await.ctx("kelp: channel")?;
    let queue = Queue::new(name);
    queue.declare(&channel).await.ctx("kelp: queue.declare")?;
    queue.purge(&channel).await.ctx("kelp: queue.purge")?;
    Ok(queue)
}

async fn teardown(conn: &Connection, queue: &Queue) -> Result<(), String> {
    let channel = conn.default_channel().await.ctx("kelp: channel")?;
    queue.delete(&channel, false, false).await.ctx("kelp: queue.delete")?;
    conn.close().await.ctx("kelp: close")
}

fn poll_once(confirmation: &mut kelp::Confirmation) -> Poll<kelp::Result<()>> {
    Pin::new(confirmation).poll(&mut TaskContext::from_waker(Waker::noop()))
}

async fn publish_confirmed(
    conn: &Connection,
    queue: &str,
    messages: u64,
    size: usize,
    window: usize,
) -> Result<Vec<u64>, String> {
    let producer = conn
        .channel()
        .await
        .ctx("kelp: channel")?
        .producer()
        .routing_key(queue)
        .build()
        .await
        .ctx("kelp: producer")?;
    let body = Bytes::from(vec![b'k'; size]);
    let mut in_flight: VecDeque<(Instant, kelp::Confirmation)> = VecDeque::with_capacity(window);
    let mut latencies = Vec::with_capacity(usize::try_from(messages).unwrap_or(0));
    for _ in 0..messages {
        let sent = Instant::now();
        let confirmation = producer.publish_bytes(body.clone()).enqueue().await.ctx("kelp: publish")?;
        in_flight.push_back((sent, confirmation));
        while let Some((sent, front)) = in_flight.front_mut() {
            match poll_once(front) {
                Poll::Ready(result) => {
                    result.ctx("kelp: confirm")?;
                    latencies.push(nanos_since(*sent));
                    in_flight.pop_front();
                }
                Poll::Pending => break,
            }
        }
        if in_flight.len() >= window.max(1)
            && let Some((sent, oldest)) = in_flight.pop_front() {
                bounded("kelp: waiting for a confirm", STEP_TIMEOUT, oldest)
                    .await?
                    .ctx("kelp: confirm")?;
                latencies.push(nanos_since(sent));
            }
    }
    for (sent, confirmation) in in_flight {
        bounded("kelp: waiting for a confirm", STEP_TIMEOUT, confirmation)
            .await?
            .ctx("kelp: confirm")?;
        latencies.push(nanos_since(sent));
    }
    Ok(latencies)
}

/// Publish `messages` persistent messages of `size` bytes with confirms,
/// `window` in flight.
pub async fn publish(url: &str, messages: u64, size: usize, window: usize) -> Result<BenchResult, String> {
    let conn = connect(url).await?;
    let name = unique_queue(NAME, Workload::Publish);
    let queue = fresh_queue(&conn, &name).await?;
    let timer = Timer::start();
    let latencies = publish_confirmed(&conn, &name, messages, size, window).await?;
    let result = timer.finish(row_name(), messages, size, latencies);
    teardown(&conn, &queue).await?;
    Ok(result)
}

/// Consume `messages` pre-published messages with one ack each.
pub async fn consume(
    url: &str,
    messages: u64,
    size: usize,
    prefetch: u16,
    fill_window: usize,
) -> Result<BenchResult, String> {
    let conn = connect(url).await?;
    let name = unique_queue(NAME, Workload::Consume);
    let queue = fresh_queue(&conn, &name).await?;
    publish_confirmed(&conn, &name, messages, size, fill_window.max(1)).await?;

    let channel = conn.channel().await.ctx("kelp: channel")?;
    let timer = Timer::start();
    let mut consumer = channel
        .consumer([queue.clone()])
        .auto_declare(false)
        .prefetch_count(prefetch)
        .build()
        .await
        .ctx("kelp: basic.consume")?;
    for _ in 0..messages {
        let message = match bounded("kelp: waiting for a delivery", STEP_TIMEOUT, consumer.next()).await? {
            Some(m) => m.ctx("kelp: delivery")?,
            None => return Err("kelp: the consumer ended before the last message".to_owned()),
        };
        if message.raw_body().len() != size {
            return Err(format!("kelp: got a {} byte body, expected {size}", message.raw_body().len()));
        }
        message.ack().await.ctx("kelp: basic.ack")?;
    }
    let result = timer.finish(row_name(), messages, size, Vec::new());
    consumer.cancel().await.ctx("kelp: basic.cancel")?;
    drop(consumer);
    channel.close().await.ctx("kelp: channel.close")?;
    teardown(&conn, &queue).await?;
    Ok(result)
}

/// Sequential round trips: publish one message, wait for its delivery on
/// another channel of the same connection, ack it.
pub async fn round_trip(url: &str, round_trips: u64, size: usize, prefetch: u16) -> Result<BenchResult, String> {
    let conn = connect(url).await?;
    let name = unique_queue(NAME, Workload::RoundTrip);
    let queue = fresh_queue(&conn, &name).await?;
    let producer = conn
        .channel()
        .await
        .ctx("kelp: channel")?
        .producer()
        .routing_key(name.as_str())
        .confirms(false)
        .build()
        .await
        .ctx("kelp: producer")?;
    let mut consumer = conn
        .channel()
        .await
        .ctx("kelp: channel")?
        .consumer([queue.clone()])
        .auto_declare(false)
        .prefetch_count(prefetch)
        .build()
        .await
        .ctx("kelp: basic.consume")?;
    let body = Bytes::from(vec![b'k'; size]);
    let mut latencies = Vec::with_capacity(usize::try_from(round_trips).unwrap_or(0));
    let mut timer = Timer::start();
    for i in 0..ROUND_TRIP_WARMUP + round_trips {
        if i == ROUND_TRIP_WARMUP {
            timer = Timer::start();
        }
        let sent = Instant::now();
        producer.publish_bytes(body.clone()).send().await.ctx("kelp: publish")?;
        let message = match bounded("kelp: waiting for a delivery", STEP_TIMEOUT, consumer.next()).await? {
            Some(m) => m.ctx("kelp: delivery")?,
            None => return Err("kelp: the consumer ended".to_owned()),
        };
        let rtt = nanos_since(sent);
        if i >= ROUND_TRIP_WARMUP {
            latencies.push(rtt);
        }
        message.ack().await.ctx("kelp: basic.ack")?;
    }
    let result = timer.finish(row_name(), round_trips, size, latencies);
    consumer.cancel().await.ctx("kelp: basic.cancel")?;
    drop(consumer);
    teardown(&conn, &queue).await?;
    Ok(result)
}
