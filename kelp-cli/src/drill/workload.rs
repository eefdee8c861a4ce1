//! The drill's clients: producers publishing numbered persistent messages
//! with confirms, consumers with manual acks (`basic.consume` at prefetch 1
//! and higher, and `basic.get`), each on a connection of its own so that a
//! fault hits them one by one, and the final drain.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;
use tokio::task::JoinSet;

use kelp::{Connection, Event, Message, Queue};

use super::config::DrillConfig;
use super::history::{Delivery, History, MessageId, Outcome, ReadBy};

/// Running totals, for live progress.
#[derive(Debug, Default)]
pub struct Counters {
    pub(super) sent: AtomicU64,
    pub(super) confirmed: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) indeterminate: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) failovers: AtomicU64,
    pub(super) recreated: AtomicU64,
    pub(super) stale_acks: AtomicU64,
}

/// A moment's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Publishes handed to kelp.
    pub sent: u64,
    /// Confirmed by the broker.
    pub confirmed: u64,
    /// Nacked or returned.
    pub refused: u64,
    /// Never confirmed nor refused in time.
    pub indeterminate: u64,
    /// Deliveries (duplicates included).
    pub delivered: u64,
    /// Recoveries of the drill's connections (reconnects, failovers).
    pub failovers: u64,
    /// Queues recovery found gone and declared again, empty.
    pub recreated: u64,
    /// Acks refused as stale: the delivery came on a connection since
    /// replaced, so the broker delivers the message again.
    pub stale_acks: u64,
    /// The broker the first producer is on.
    pub producer_node: String,
    /// The broker the first consumer is on.
    pub consumer_node: String,
}

/// The running clients.
pub(super) struct Workload {
    pub(super) history: Arc<History>,
    pub(super) counters: Arc<Counters>,
    producers_stop: watch::Sender<bool>,
    consumers_stop: watch::Sender<bool>,
    producers: JoinSet<()>,
    consumers: JoinSet<()>,
    watchers: JoinSet<()>,
    connections: Vec<Connection>,
    /// Where the first consumer's connection is in `connections` (the
    /// producers' come first).
    first_consumer: Option<usize>,
}

impl Workload {
    /// Open the connections and start every client.
    pub(super) async fn start(config: &DrillConfig, run: &str, history: Arc<History>) -> kelp::Result<Workload> {
        let counters = Arc::new(Counters::default());
        let (producers_stop, _) = watch::channel(false);
        let (consumers_stop, _) = watch::channel(false);
        let mut workload = Workload {
            history,
            counters,
            producers_stop,
            consumers_stop,
            producers: JoinSet::new(),
            consumers: JoinSet::new(),
            watchers: JoinSet::new(),
            connections: Vec::new(),
            first_consumer: None,
        };
        let pace = config.rate.filter(|r| *r > 0).map(|rate| {
            Duration::from_secs_f64(f64::from(config.producers.max(1)) / f64::from(rate))
        });
        for p in 0..config.producers {
            let conn = workload.connection(config, &format!("drill-{run}-producer-{p}"))?;
            let client = Client::new(config, run, &workload, conn, workload.producers_stop.subscribe());
            workload.producers.spawn(produce(client, p, pace));
        }
        for c in 0..config.consumers + config.getters {
            let conn = workload.connection(config, &format!("drill-{run}-consumer-{c}"))?;
            workload.first_consumer.get_or_insert(workload.connections.len() - 1);
            let client = Client::new(config, run, &workload, conn, workload.consumers_stop.subscribe());
            if c < config.consumers {
                let prefetch = if c % 2 == 0 { 1 } else { config.prefetch.max(1) };
                workload.consumers.spawn(consume(client, prefetch));
            } else {
                workload.consumers.spawn(get(client));
            }
        }
        Ok(workload)
    }

    fn connection(&mut self, config: &DrillConfig, name: &str) -> kelp::Result<Connection> {
        let conn = config.connect(name)?;
        let mut events = conn.events();
        let counters = self.counters.clone();
        self.watchers.spawn(async move {
            while let Ok(event) = events.recv().await {
                match event {
                    Event::Recovered { .. } => {
                        counters.failovers.fetch_add(1, Ordering::Relaxed);
                    }
                    Event::QueueRecreated { queue, broker } => {
                        counters.recreated.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%queue, %broker, "drill: a queue was gone and declared again, empty");
                    }
                    other => tracing::debug!(event = %other, "drill: connection event"),
                }
            }
        });
        self.connections.push(conn.clone());
        Ok(conn)
    }

    /// The totals now.
    pub(super) fn progress(&self) -> Progress {
        let c = &self.counters;
        let node = |i: Option<usize>| i.and_then(|i| self.connections.get(i)).map(|c| c.current_url().to_string()).unwrap_or_default();
        Progress {
            sent: c.sent.load(Ordering::Relaxed),
            confirmed: c.confirmed.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            indeterminate: c.indeterminate.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            failovers: c.failovers.load(Ordering::Relaxed),
            recreated: c.recreated.load(Ordering::Relaxed),
            stale_acks: c.stale_acks.load(Ordering::Relaxed),
            producer_node: node((self.first_consumer != Some(0)).then_some(0)),
            consumer_node: node(self.first_consumer),
        }
    }

    /// Stop publishing; wait until every publish has ended (each bounded by
    /// the settle timeout).
    pub(super) async fn stop_producers(&mut self) {
        let _ = self.producers_stop.send(true);
        while self.producers.join_next().await.is_some() {}
    }

    /// Let the consumers read until nothing arrives for `quiet` (or `limit`
    /// passes), then stop them.
    pub(super) async fn stop_consumers(&mut self, quiet: Duration, limit: Duration) {
        let started = Instant::now();
        let mut seen = self.counters.delivered.load(Ordering::Relaxed);
        let mut since = Instant::now();
        while started.elapsed() < limit && since.elapsed() < quiet {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.counters.delivered.load(Ordering::Relaxed);
            if now != seen {
                (seen, since) = (now, Instant::now());
            }
        }
        let _ = self.consumers_stop.send(true);
        while self.consumers.join_next().await.is_some() {}
    }

    /// Close every connection.
    pub(super) async fn close(mut self) {
        for conn in &self.connections {
            let _ = conn.close().await;
        }
        self.watchers.abort_all();
        while self.watchers.join_next().await.is_some() {}
    }
}

/// What every client task needs.
struct Client {
    conn: Connection,
    queue: Queue,
    run: String,
    history: Arc<History>,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
    window: usize,
    size: usize,
    settle_timeout: Duration,
}

impl Client {
    /// Ack; a stale one (its connection was replaced) is counted.
    async fn ack(&self, message: kelp::Message) {
        if let Err(e) = message.ack().await
            && e.is_stale()
        {
            self.counters.stale_acks.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn new(config: &DrillConfig, run: &str, workload: &Workload, conn: Connection, stop: watch::Receiver<bool>) -> Client {
        Client {
            conn,
            queue: config.queue(),
            run: run.to_owned(),
            history: workload.history.clone(),
            counters: workload.counters.clone(),
            stop,
            window: config.window.max(1),
            size: config.size,
            settle_timeout: config.settle_timeout,
        }
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Wait `pause`, or less when told to stop.
    async fn pause(&mut self, pause: Duration) {
        let _ = tokio::time::timeout(pause, self.stop.wait_for(|stop| *stop)).await;
    }

    fn record(&self, message: &Message, by: ReadBy) {
        let text = message.properties().message_id.as_deref().unwrap_or("<no message id>").to_owned();
        let id = MessageId::parse(&text, &self.run).ok_or(text);
        self.history.delivered(Delivery {
            id,
            redelivered: message.redelivered(),
            node: self.conn.current_url().to_string(),
            by,
            at: Instant::now(),
        });
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

/// A body carrying its id, padded to the configured size.
fn body(id: &str, size: usize) -> Bytes {
    let mut body = id.as_bytes().to_vec();
    body.resize(size.max(body.len()), b'.');
    Bytes::from(body)
}

fn outcome_of(result: Result<kelp::Result<()>, tokio::time::error::Elapsed>) -> Outcome {
    match result {
        Ok(Ok(())) => Outcome::Confirmed,
        Ok(Err(e)) if e.is_nacked() => Outcome::Nacked,
        Ok(Err(e)) if e.is_unroutable() => Outcome::Returned,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "drill: a publish ended without a confirm");
            Outcome::Indeterminate
        }
        Err(_) => Outcome::Indeterminate,
    }
}

/// Publish numbered messages until stopped, `window` in flight, paced.
async fn produce(mut client: Client, p: u32, pace: Option<Duration>) {
    let producer = loop {
        match client.conn.producer().routing_key(client.queue.name.clone()).build().await {
            Ok(producer) => break producer,
            Err(e) if client.stopped() => return tracing::warn!(error = %e, "drill: producer never started"),
            Err(_) => client.pause(Duration::from_millis(200)).await,
        }
    };
    let mut pending = FuturesUnordered::new();
    let settle = |client: &Client, (id, result)| {
        let outcome = outcome_of(result);
        client.history.settled(id, outcome);
        let counter = match outcome {
            Outcome::Confirmed => &client.counters.confirmed,
            Outcome::Nacked | Outcome::Returned => &client.counters.refused,
            Outcome::Indeterminate => &client.counters.indeterminate,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    };
    let mut stop = client.stop.clone();
    let mut next_at = tokio::time::Instant::now();
    'publishing: for seq in 0u64.. {
        if let Some(pace) = pace {
            next_at += pace;
            tokio::select! {
                () = tokio::time::sleep_until(next_at) => {}
                _ = stop.wait_for(|stop| *stop) => break 'publishing,
            }
        }
        while pending.len() >= client.window {
            tokio::select! {
                Some(done) = pending.next() => settle(&client, done),
                _ = stop.wait_for(|stop| *stop) => break 'publishing,
            }
        }
        let id = MessageId { producer: p, seq };
        let text = id.render(&client.run);
        let payload = body(&text, client.size);
        // While the connection is down the publish is refused at once,
        // before anything is sent: try again until it is taken.
        let confirmation = loop {
            if client.stopped() {
                break 'publishing;
            }
            match producer.publish_bytes(payload.clone()).message_id(text.clone()).enqueue().await {
                Ok(confirmation) => break confirmation,
                Err(e) => {
                    tracing::debug!(error = %e, "drill: publish not taken, retrying");
                    client.pause(Duration::from_millis(100)).await;
                }
            }
        };
        client.history.sent(id);
        client.counters.sent.fetch_add(1, Ordering::Relaxed);
        let timeout = client.settle_timeout;
        pending.push(async move { (id, tokio::time::timeout(timeout, confirmation).await) });
        while let Some(Some(done)) = pending.next().now_or_never() {
            settle(&client, done);
        }
    }
    while let Some(done) = pending.next().await {
        settle(&client, done);
    }
}

/// Consume with manual acks until stopped; a subscription that ends is
/// made again.
async fn consume(mut client: Client, prefetch: u16) {
    while !client.stopped() {
        let built = client.conn.consumer([client.queue.clone()]).prefetch_count(prefetch).build().await;
        let mut consumer = match built {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::debug!(error = %e, "drill: cannot subscribe yet");
                client.pause(Duration::from_millis(200)).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                next = consumer.next() => next,
                _ = client.stop.wait_for(|stop| *stop) => return,
            };
            match next {
                Some(Ok(message)) => {
                    client.record(&message, ReadBy::Consume);
                    // A stale ack (the delivery's connection was replaced)
                    // is the broker's to redeliver: counted, nothing to do.
                    client.ack(message).await;
                }
                Some(Err(e)) => {
                    tracing::info!(error = %e, "drill: subscription ended, subscribing again");
                    break;
                }
                None => break,
            }
        }
        client.pause(Duration::from_millis(200)).await;
    }
}

/// Read with `basic.get` until stopped.
async fn get(mut client: Client) {
    while !client.stopped() {
        let channel = match client.conn.default_channel().await {
            Ok(channel) => channel,
            Err(_) => {
                client.pause(Duration::from_millis(200)).await;
                continue;
            }
        };
        match client.queue.get(&channel, false).await {
            Ok(Some(message)) => {
                client.record(&message, ReadBy::Get);
                client.ack(message).await;
            }
            Ok(None) => client.pause(Duration::from_millis(50)).await,
            Err(e) => {
                tracing::debug!(error = %e, "drill: basic.get failed");
                client.pause(Duration::from_millis(200)).await;
            }
        }
    }
}

/// After the clients stopped: read what is left in the queue, until it is
/// empty twice in a row (or `limit` passes). Returns how many were left.
pub(super) async fn drain(config: &DrillConfig, run: &str, history: &History, limit: Duration) -> kelp::Result<usize> {
    let conn = config.connect(&format!("drill-{run}-drain"))?;
    let started = Instant::now();
    let queue = config.queue();
    let mut left = 0;
    let mut empty_in_a_row = 0;
    while empty_in_a_row < 2 && started.elapsed() < limit {
        let channel = match conn.default_channel().await {
            Ok(channel) => channel,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        match queue.get(&channel, false).await {
            Ok(Some(message)) => {
                empty_in_a_row = 0;
                left += 1;
                let text = message.properties().message_id.as_deref().unwrap_or("<no message id>").to_owned();
                history.delivered(Delivery {
                    id: MessageId::parse(&text, run).ok_or(text),
                    redelivered: message.redelivered(),
                    node: conn.current_url().to_string(),
                    by: ReadBy::Drain,
                    at: Instant::now(),
                });
                let _ = message.ack().await;
            }
            Ok(None) => {
                empty_in_a_row += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "drill: drain get failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let _ = conn.close().await;
    Ok(left)
}
