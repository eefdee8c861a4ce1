//! The amqprs 2 peer.
//!
//! How it is driven:
//! - **publish**: a [`ChannelCallback`] is registered, then
//!   `confirm_select`; `basic_publish` queues each message for amqprs's
//!   writer task. amqprs reports confirms only through
//!   [`ChannelCallback::publish_ack`] / `publish_nack`, so the peer tracks
//!   them itself: every publish records its send time under its delivery tag
//!   (1, 2, 3... on a fresh confirm-mode channel); an ack with `multiple`
//!   settles every tag up to it, a single ack settles its own tag. The
//!   publisher waits (on a [`Notify`]) whenever `window` publishes are
//!   unsettled. Latencies: publish→confirm per message, taken when the
//!   callback runs.
//! - **consume**: `basic_qos(prefetch)`, `basic_consume_rx` with manual acks
//!   (deliveries through amqprs's unbounded channel), `basic_ack` of each
//!   delivery tag with `multiple = false` (it resolves once the ack is queued
//!   for the writer task).
//! - **round trip**: a publishing channel (no confirms) and a consuming
//!   channel (manual acks) on one connection; publish, receive, record, ack.
//!
//! amqprs runs its reader, writer and per-channel dispatcher as tokio tasks
//! on the caller's runtime.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, Channel,
    ConfirmSelectArguments, ConsumerMessage, QueueDeclareArguments, QueueDeleteArguments, QueuePurgeArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, DELIVERY_MODE_PERSISTENT, Nack, Return};
use async_trait::async_trait;
use kelp_cli::measure::BenchResult;
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::common::{
    AmqpUrl, CONNECT_TIMEOUT, Context, Params, ROUND_TRIP_WARMUP, STEP_TIMEOUT, Timer, Workload, bounded, nanos_since,
    runtime_tag, unique_queue,
};

/// Base name of the rows (`amqprs/ct`, `amqprs/mt`).
pub const NAME: &str = "amqprs";

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
    let args = OpenConnectionArguments::new(&parsed.host, parsed.port, &parsed.user, &parsed.password)
        .virtual_host(&parsed.vhost)
        .finish();
    let what = format!("amqprs: cannot connect to RabbitMQ at {}", parsed.display());
    bounded(&what, CONNECT_TIMEOUT, Connection::open(&args))
        .await?
        .ctx(&what)
}

async fn fresh_queue(channel: &Channel, name: &str) -> Result<(), String> {
    channel
        .queue_declare(QueueDeclareArguments::durable_client_named(name))
        .await
        .ctx("amqprs: queue.declare")?;
    channel
        .queue_purge(QueuePurgeArguments::new(name))
        .await
        .ctx("amqprs: queue.purge")?;
    Ok(())
}

async fn teardown(connection: Connection, channel: Channel, queue: &str) -> Result<(), String> {
    channel
        .queue_delete(QueueDeleteArguments::new(queue))
        .await
        .ctx("amqprs: queue.delete")?;
    channel.close().await.ctx("amqprs: channel.close")?;
    connection.close().await.ctx("amqprs: connection.close")
}

fn persistent() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(DELIVERY_MODE_PERSISTENT)
        .finish()
}

/// Publisher-confirm bookkeeping shared between the publishing task and the
/// channel callback.
#[derive(Default)]
struct Confirms {
    /// Delivery tag of `pending[0]`.
    base: u64,
    /// Send time of each publish from `base` on; `None` once settled.
    pending: VecDeque<Option<Instant>>,
    published: u64,
    settled: u64,
    nacked: u64,
    failure: Option<String>,
    latencies: Vec<u64>,
}

impl Confirms {
    fn settle(&mut self, tag: u64, multiple: bool, acked: bool) {
        let Some(index) = tag.checked_sub(self.base) else {
            return;
        };
        let Ok(index) = usize::try_from(index) else { return };
        let range = if multiple { 0..=index } else { index..=index };
        let now = Instant::now();
        for slot in range {
            if let Some(sent) = self.pending.get_mut(slot).and_then(Option::take) {
                self.latencies
                    .push(u64::try_from(now.duration_since(sent).as_nanos()).unwrap_or(u64::MAX));
                self.settled += 1;
                if !acked {
                    self.nacked += 1;
                }
            }
        }
        while let Some(None) = self.pending.front() {
            self.pending.pop_front();
            self.base += 1;
        }
    }
}

#[derive(Default)]
struct Shared {
    confirms: Mutex<Confirms>,
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Confirms> {
        self.confirms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The channel callback: confirms, returns and a server-side channel close
/// all land in [`Shared`].
struct ConfirmCallback(Arc<Shared>);

#[async_trait]
impl ChannelCallback for ConfirmCallback {
    async fn close(&mut self, _channel: &Channel, close: CloseChannel) -> Result<(), amqprs::error::Error> {
        self.0.lock().failure = Some(format!("amqprs: the broker closed the channel: {close}"));
        self.0.changed.notify_one();
        Ok(())
    }

    async fn cancel(&mut self, _channel: &Channel, _cancel: Cancel) -> Result<(), amqprs::error::Error> {
        Ok(())
    }

    async fn flow(&mut self, _channel: &Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }

    async fn publish_ack(&mut self, _channel: &Channel, ack: Ack) {
        // (`mutiple` is amqprs's spelling.)
        self.0.lock().settle(ack.delivery_tag(), ack.mutiple(), true);
        self.0.changed.notify_one();
    }

    async fn publish_nack(&mut self, _channel: &Channel, nack: Nack) {
        self.0.lock().settle(nack.delivery_tag(), nack.multiple(), false);
        self.0.changed.notify_one();
    }

    async fn publish_return(
        &mut self,
        _channel: &Channel,
        ret: Return,
        _properties: BasicProperties,
        _content: Vec<u8>,
    ) {
        self.0.lock().failure = Some(format!("amqprs: a message was returned: {ret}"));
        self.0.changed.notify_one();
    }
}

/// A channel in confirm mode with its confirm tracking.
async fn confirm_channel(connection: &Connection) -> Result<(Channel, Arc<Shared>), String> {
    let channel = connection.open_channel(None).await.ctx("amqprs: channel.open")?;
    let shared = Arc::new(Shared::default());
    shared.lock().base = 1;
    channel
        .register_callback(ConfirmCallback(shared.clone()))
        .await
        .ctx("amqprs: register_callback")?;
    channel
        .confirm_select(ConfirmSelectArguments::default())
        .await
        .ctx("amqprs: confirm.select")?;
    Ok((channel, shared))
}

/// Wait until at most `limit` publishes are unsettled.
async fn wait_unsettled_at_most(shared: &Shared, limit: u64) -> Result<(), String> {
    loop {
        {
            let confirms = shared.lock();
            if let Some(failure) = &confirms.failure {
                return Err(failure.clone());
            }
            if confirms.nacked > 0 {
                return Err(format!("amqprs: the broker nacked {} publishes", confirms.nacked));
            }
            if confirms.published - confirms.settled <= limit {
                return Ok(());
            }
        }
        bounded("amqprs: waiting for a confirm", STEP_TIMEOUT, shared.changed.notified()).await?;
    }
}

/// Publish `messages` persistent bodies of `size` bytes on a confirm-mode
/// channel, at most `window` unsettled; returns the confirm latencies.
async fn publish_confirmed(
    channel: &Channel,
    shared: &Shared,
    queue: &str,
    messages: u64,
    size: usize,
    window: usize,
) -> Result<Vec<u64>, String> {
    let body = vec![b'k'; size];
    let properties = persistent();
    let args = BasicPublishArguments::new("", queue);
    let window = u64::try_from(window).unwrap_or(u64::MAX);
    shared.lock().latencies.reserve(usize::try_from(messages).unwrap_or(0));
    for _ in 0..messages {
        wait_unsettled_at_most(shared, window - 1).await?;
        {
            let mut confirms = shared.lock();
            confirms.pending.push_back(Some(Instant::now()));
            confirms.published += 1;
        }
        channel
            .basic_publish(properties.clone(), body.clone(), args.clone())
            .await
            .ctx("amqprs: basic.publish")?;
    }
    wait_unsettled_at_most(shared, 0).await?;
    Ok(std::mem::take(&mut shared.lock().latencies))
}

/// Publish `messages` persistent messages of `size` bytes with publisher
/// confirms, `window` in flight. Latencies: publish→confirm per message.
pub async fn publish(url: &str, messages: u64, size: usize, window: usize) -> Result<BenchResult, String> {
    let connection = connect(url).await?;
    let (channel, shared) = confirm_channel(&connection).await?;
    let queue = unique_queue(NAME, Workload::Publish);
    fresh_queue(&channel, &queue).await?;

    let timer = Timer::start();
    let latencies = publish_confirmed(&channel, &shared, &queue, messages, size, window).await?;
    let result = timer.finish(row_name(), messages, size, latencies);

    teardown(connection, channel, &queue).await?;
    Ok(result)
}

async fn next_delivery(deliveries: &mut UnboundedReceiver<ConsumerMessage>) -> Result<(u64, usize), String> {
    let message = bounded("amqprs: waiting for a delivery", STEP_TIMEOUT, deliveries.recv())
        .await?
        .ok_or("amqprs: the consumer ended before the last message")?;
    let tag = message
        .deliver
        .as_ref()
        .map(|d| d.delivery_tag())
        .ok_or("amqprs: a delivery without its basic.deliver")?;
    Ok((tag, message.content.as_ref().map_or(0, Vec::len)))
}

async fn consumer_channel(connection: &Connection, prefetch: u16) -> Result<Channel, String> {
    let channel = connection.open_channel(None).await.ctx("amqprs: channel.open")?;
    channel
        .basic_qos(BasicQosArguments::new(0, prefetch, false))
        .await
        .ctx("amqprs: basic.qos")?;
    Ok(channel)
}

async fn start_consumer(channel: &Channel, queue: &str) -> Result<UnboundedReceiver<ConsumerMessage>, String> {
    let (_tag, deliveries) = channel
        .basic_consume_rx(
            BasicConsumeArguments::new(queue, "kelp-bench-amqprs")
                .manual_ack(true)
                .finish(),
        )
        .await
        .ctx("amqprs: basic.consume")?;
    Ok(deliveries)
}

/// Consume `messages` pre-published messages of `size` bytes with manual
/// acks, one ack per message, `prefetch` unacked at most. The queue is
/// filled first (with confirms, `fill_window` in flight, not timed). Timed
/// from `basic.consume` to the last ack handed to amqprs. No latencies.
pub async fn consume(
    url: &str,
    messages: u64,
    size: usize,
    prefetch: u16,
    fill_window: usize,
) -> Result<BenchResult, String> {
    let connection = connect(url).await?;
    let (setup, shared) = confirm_channel(&connection).await?;
    let queue = unique_queue(NAME, Workload::Consume);
    fresh_queue(&setup, &queue).await?;
    publish_confirmed(&setup, &shared, &queue, messages, size, fill_window.max(1)).await?;

    let channel = consumer_channel(&connection, prefetch).await?;

    let timer = Timer::start();
    let mut deliveries = start_consumer(&channel, &queue).await?;
    for _ in 0..messages {
        let (tag, len) = next_delivery(&mut deliveries).await?;
        if len != size {
            return Err(format!("amqprs: got a {len} byte body, expected {size}"));
        }
        channel
            .basic_ack(BasicAckArguments::new(tag, false))
            .await
            .ctx("amqprs: basic.ack")?;
    }
    let result = timer.finish(row_name(), messages, size, Vec::new());

    channel.close().await.ctx("amqprs: channel.close")?;
    teardown(connection, setup, &queue).await?;
    Ok(result)
}

/// `round_trips` sequential round trips (after a warm-up of
/// [`ROUND_TRIP_WARMUP`]): publish one persistent message of `size` bytes
/// on one channel, wait for its delivery on another channel of the same
/// connection, ack it. Latencies: the round trips.
pub async fn round_trip(url: &str, round_trips: u64, size: usize, prefetch: u16) -> Result<BenchResult, String> {
    let connection = connect(url).await?;
    let publisher = connection.open_channel(None).await.ctx("amqprs: channel.open")?;
    let queue = unique_queue(NAME, Workload::RoundTrip);
    fresh_queue(&publisher, &queue).await?;
    let channel = consumer_channel(&connection, prefetch).await?;
    let mut deliveries = start_consumer(&channel, &queue).await?;

    let body = vec![b'k'; size];
    let properties = persistent();
    let args = BasicPublishArguments::new("", &queue);
    let mut latencies = Vec::with_capacity(usize::try_from(round_trips).unwrap_or(0));
    let mut timer = Timer::start();
    for i in 0..ROUND_TRIP_WARMUP + round_trips {
        if i == ROUND_TRIP_WARMUP {
            timer = Timer::start();
        }
        let sent = Instant::now();
        publisher
            .basic_publish(properties.clone(), body.clone(), args.clone())
            .await
            .ctx("amqprs: basic.publish")?;
        let (tag, _) = next_delivery(&mut deliveries).await?;
        let rtt = nanos_since(sent);
        if i >= ROUND_TRIP_WARMUP {
            latencies.push(rtt);
        }
        channel
            .basic_ack(BasicAckArguments::new(tag, false))
            .await
            .ctx("amqprs: basic.ack")?;
    }
    let result = timer.finish(row_name(), round_trips, size, latencies);

    channel.close().await.ctx("amqprs: channel.close")?;
    teardown(connection, publisher, &queue).await?;
    Ok(result)
}
