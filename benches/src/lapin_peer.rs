//! The lapin 4 peer.
//!
//! How it is driven (the way lapin's documentation presents it):
//! - **publish**: `confirm_select`, then `basic_publish(..).await` for each
//!   message. That await only hands the frames to lapin's I/O thread and
//!   returns a [`PublisherConfirm`] future, which is kept in a FIFO; when
//!   `window` confirms are outstanding the oldest one is awaited. After each
//!   publish, confirms that already resolved at the front of the FIFO are
//!   collected without blocking (polled once with a no-op waker), so the
//!   recorded publish→confirm latency is accurate to about one publish.
//! - **consume**: `basic_qos(prefetch)`, `basic_consume` with manual acks,
//!   the [`Consumer`] stream read in a loop and `delivery.ack(..).await` for
//!   every message (lapin resolves that future once the ack is handed to the
//!   I/O thread).
//! - **round trip**: a publishing channel (no confirms) and a consuming
//!   channel (manual acks) on one connection; publish, wait for the next
//!   delivery on the stream, record, ack.
//!
//! lapin runs its socket I/O on a thread of its own (`lapin-io-loop`), also
//! under a current-thread tokio runtime; its CPU time is part of the
//! process's and so is counted.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Instant;

use futures_lite::StreamExt;
use kelp_cli::measure::BenchResult;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, PublisherConfirm};

use crate::common::{
    AmqpUrl, CONNECT_TIMEOUT, Context, Params, ROUND_TRIP_WARMUP, STEP_TIMEOUT, Timer, Workload, bounded, nanos_since,
    runtime_tag, unique_queue,
};

/// Base name of the rows (`lapin/ct`, `lapin/mt`).
pub const NAME: &str = "lapin";

fn row_name() -> String {
    format!("{NAME}/{}", runtime_tag())
}

/// Run one workload with `params`.
pub async fn run(workload: Workload, params: &Params) -> Result<BenchResult, String> {
    match workload {
        Workload::Publish => publish(&params.url, params.messages, params.size, params.window).await,
        Workload::Consume => {
            consume(
                &params.url,
                params.messages,
                params.size,
                params.prefetch,
                params.window,
            )
            .await
        }
        Workload::RoundTrip => round_trip(&params.url, params.round_trips, params.size, params.prefetch).await,
    }
}

async fn connect(url: &str) -> Result<Connection, String> {
    let parsed = AmqpUrl::parse(url)?;
    let what = format!("lapin: cannot connect to RabbitMQ at {}", parsed.display());
    bounded(
        &what,
        CONNECT_TIMEOUT,
        Connection::connect(&parsed.to_uri(), ConnectionProperties::default()),
    )
    .await?
    .ctx(&what)
}

/// A fresh durable queue, purged.
async fn fresh_queue(channel: &Channel, name: &str) -> Result<(), String> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), options, FieldTable::default())
        .await
        .ctx("lapin: queue.declare")?;
    channel
        .queue_purge(name.into(), QueuePurgeOptions::default())
        .await
        .ctx("lapin: queue.purge")?;
    Ok(())
}

async fn teardown(connection: Connection, channel: &Channel, queue: &str) -> Result<(), String> {
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .ctx("lapin: queue.delete")?;
    connection
        .close(200, "bench done".into())
        .await
        .ctx("lapin: connection.close")
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn check(confirmation: lapin::Result<Confirmation>) -> Result<(), String> {
    match confirmation.ctx("lapin: publisher confirm")? {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => Err("lapin: a message was returned as unroutable".to_owned()),
        Confirmation::Nack(_) => Err("lapin: the broker nacked a publish".to_owned()),
        Confirmation::NotRequested => Err("lapin: confirms were not enabled on the channel".to_owned()),
    }
}

/// Pop the confirms at the front of `in_flight` that already resolved,
/// without waiting (each is polled once with a no-op waker; lapin keeps the
/// waker of the later real await).
fn collect_ready(
    in_flight: &mut VecDeque<(Instant, PublisherConfirm)>,
    latencies: &mut Vec<u64>,
) -> Result<(), String> {
    let mut probe = TaskContext::from_waker(Waker::noop());
    while let Some((sent, confirm)) = in_flight.front_mut() {
        match Pin::new(confirm).poll(&mut probe) {
            Poll::Ready(result) => {
                latencies.push(nanos_since(*sent));
                in_flight.pop_front();
                check(result)?;
            }
            Poll::Pending => break,
        }
    }
    Ok(())
}

/// Publish `messages` persistent bodies of `size` bytes to `queue` on a
/// channel in confirm mode, at most `window` unconfirmed; returns the
/// publish→confirm latency of each message, in publish order.
async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    messages: u64,
    size: usize,
    window: usize,
) -> Result<Vec<u64>, String> {
    let body = vec![b'k'; size];
    let properties = persistent();
    let routing_key: lapin::types::ShortString = queue.into();
    let mut in_flight: VecDeque<(Instant, PublisherConfirm)> = VecDeque::with_capacity(window);
    let mut latencies = Vec::with_capacity(usize::try_from(messages).unwrap_or(0));
    for _ in 0..messages {
        if in_flight.len() >= window
            && let Some((sent, confirm)) = in_flight.pop_front()
        {
            check(bounded("lapin: waiting for a confirm", STEP_TIMEOUT, confirm).await?)?;
            latencies.push(nanos_since(sent));
        }
        let sent = Instant::now();
        let confirm = channel
            .basic_publish(
                "".into(),
                routing_key.clone(),
                BasicPublishOptions::default(),
                &body,
                properties.clone(),
            )
            .await
            .ctx("lapin: basic.publish")?;
        in_flight.push_back((sent, confirm));
        collect_ready(&mut in_flight, &mut latencies)?;
    }
    while let Some((sent, confirm)) = in_flight.pop_front() {
        check(bounded("lapin: waiting for a confirm", STEP_TIMEOUT, confirm).await?)?;
        latencies.push(nanos_since(sent));
    }
    Ok(latencies)
}

/// Publish `messages` persistent messages of `size` bytes with publisher
/// confirms, `window` in flight. Latencies: publish→confirm per message.
pub async fn publish(url: &str, messages: u64, size: usize, window: usize) -> Result<BenchResult, String> {
    let connection = connect(url).await?;
    let channel = connection.create_channel().await.ctx("lapin: channel.open")?;
    let queue = unique_queue(NAME, Workload::Publish);
    fresh_queue(&channel, &queue).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .ctx("lapin: confirm.select")?;

    let timer = Timer::start();
    let latencies = publish_confirmed(&channel, &queue, messages, size, window).await?;
    let result = timer.finish(row_name(), messages, size, latencies);

    teardown(connection, &channel, &queue).await?;
    Ok(result)
}

async fn next_delivery(consumer: &mut Consumer) -> Result<lapin::message::Delivery, String> {
    match bounded("lapin: waiting for a delivery", STEP_TIMEOUT, consumer.next()).await? {
        Some(delivery) => delivery.ctx("lapin: delivery"),
        None => Err("lapin: the consumer was cancelled before the last message".to_owned()),
    }
}

/// Consume `messages` pre-published messages of `size` bytes with manual
/// acks, one ack per message, `prefetch` unacked at most. The queue is
/// filled first (with confirms, `fill_window` in flight, not timed). Timed
/// from `basic.consume` to the last ack handed to lapin. No latencies.
pub async fn consume(
    url: &str,
    messages: u64,
    size: usize,
    prefetch: u16,
    fill_window: usize,
) -> Result<BenchResult, String> {
    let connection = connect(url).await?;
    let setup = connection.create_channel().await.ctx("lapin: channel.open")?;
    let queue = unique_queue(NAME, Workload::Consume);
    fresh_queue(&setup, &queue).await?;
    setup
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .ctx("lapin: confirm.select")?;
    publish_confirmed(&setup, &queue, messages, size, fill_window.max(1)).await?;

    let channel = connection.create_channel().await.ctx("lapin: channel.open")?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .ctx("lapin: basic.qos")?;

    let timer = Timer::start();
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "kelp-bench-lapin".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .ctx("lapin: basic.consume")?;
    for _ in 0..messages {
        let delivery = next_delivery(&mut consumer).await?;
        if delivery.data.len() != size {
            return Err(format!(
                "lapin: got a {} byte body, expected {size}",
                delivery.data.len()
            ));
        }
        delivery.ack(BasicAckOptions::default()).await.ctx("lapin: basic.ack")?;
    }
    let result = timer.finish(row_name(), messages, size, Vec::new());

    channel
        .close(200, "bench done".into())
        .await
        .ctx("lapin: channel.close")?;
    teardown(connection, &setup, &queue).await?;
    Ok(result)
}

/// `round_trips` sequential round trips (after a warm-up of
/// [`ROUND_TRIP_WARMUP`]): publish one persistent message of `size` bytes
/// on one channel, wait for its delivery on another channel of the same
/// connection, ack it. Latencies: the round trips.
pub async fn round_trip(url: &str, round_trips: u64, size: usize, prefetch: u16) -> Result<BenchResult, String> {
    let connection = connect(url).await?;
    let publisher = connection.create_channel().await.ctx("lapin: channel.open")?;
    let queue = unique_queue(NAME, Workload::RoundTrip);
    fresh_queue(&publisher, &queue).await?;
    let channel = connection.create_channel().await.ctx("lapin: channel.open")?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .ctx("lapin: basic.qos")?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "kelp-bench-lapin".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .ctx("lapin: basic.consume")?;

    let body = vec![b'k'; size];
    let properties = persistent();
    let routing_key: lapin::types::ShortString = queue.as_str().into();
    let mut latencies = Vec::with_capacity(usize::try_from(round_trips).unwrap_or(0));
    let mut timer = Timer::start();
    for i in 0..ROUND_TRIP_WARMUP + round_trips {
        if i == ROUND_TRIP_WARMUP {
            timer = Timer::start();
        }
        let sent = Instant::now();
        publisher
            .basic_publish(
                "".into(),
                routing_key.clone(),
                BasicPublishOptions::default(),
                &body,
                properties.clone(),
            )
            .await
            .ctx("lapin: basic.publish")?
            .await
            .ctx("lapin: publish")?;
        let delivery = next_delivery(&mut consumer).await?;
        let rtt = nanos_since(sent);
        if i >= ROUND_TRIP_WARMUP {
            latencies.push(rtt);
        }
        delivery.ack(BasicAckOptions::default()).await.ctx("lapin: basic.ack")?;
    }
    let result = timer.finish(row_name(), round_trips, size, latencies);

    channel
        .close(200, "bench done".into())
        .await
        .ctx("lapin: channel.close")?;
    teardown(connection, &publisher, &queue).await?;
    Ok(result)
}
