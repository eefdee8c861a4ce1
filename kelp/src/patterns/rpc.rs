//! Kombu's common patterns (`kombu.common`): broadcast queues and
//! request / reply.

use std::fmt;
use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Mutex;

use crate::codec::serialization::Serializer;

use crate::error::{Error, ErrorKind, Result};

use crate::model::channel::Channel;

use crate::model::connection::Connection;

use crate::model::consumer::Consumer;

use crate::model::entity::{Exchange, Queue};

use crate::model::message::Message;

use crate::model::producer::Producer;

/// RabbitMQ's direct reply-to pseudo-queue.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// A fanout exchange where every consumer gets its own queue (Kombu's
/// `Broadcast`): each consumer of [`queue`](Broadcast::queue) receives
/// every message published to [`exchange`](Broadcast::exchange).
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Broadcast, Connection};
///
/// let conn = Connection::new("memory://")?;
/// let news = Broadcast::new("broadcast-doc");
/// let mut a = conn.consumer([news.queue()]).build().await?;
/// let mut b = conn.consumer([news.queue()]).build().await?;
/// conn.producer().exchange(news.exchange()).build().await?.publish("hi all").send().await?;
/// for consumer in [&mut a, &mut b] {
///     let message = consumer.next().await.expect("a message")?;
///     assert_eq!(message.decode::<String>()?, "hi all");
///     message.ack().await?;
/// }
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Broadcast {
    exchange: Exchange,
}

impl Broadcast {
    /// A broadcast over the fanout exchange `name`.
    pub fn new(name: impl Into<String>) -> Broadcast {
        Broadcast { exchange: Exchange::fanout(name).durable(false) }
    }

    /// The exchange to publish to.
    pub fn exchange(&self) -> Exchange {
        self.exchange.clone()
    }

    /// A fresh queue for one consumer: `bcast.<uuid>`, auto-delete,
    /// bound to the exchange.
    pub fn queue(&self) -> Queue {
        Queue::new(format!("bcast.{}", crate::content::ids::uuid4()))
            .exchange(self.exchange.clone())
            .durable(false)
            .auto_delete(true)
    }
}

/// Answer `request` with `body` (Kombu's `send_reply`): published to the
/// default exchange with the request's `reply_to` as routing key, its
/// `correlation_id`, and encoded with the serializer the request came in.
///
/// # Examples
///
/// See [`RpcClient`].
pub async fn send_reply<T: Serialize + ?Sized>(producer: &Producer, request: &Message, body: &T) -> Result<()> {
    let properties = request.properties();
    let reply_to = properties
        .reply_to
        .clone()
        .ok_or_else(|| Error::config("the request has no reply_to: nowhere to send the reply"))?;
    let serializer = match request.content_type() {
        Some(content_type) => Serializer::from_name(content_type).unwrap_or_default(),
        None => Serializer::default(),
    };
    let mut publish = producer
        .publish(body)
        .exchange("")
        .routing_key(reply_to)
        .serializer(serializer);
    if let Some(id) = properties.correlation_id.clone() {
        publish = publish.correlation_id(id);
    }
    publish.send().await
}

/// Request / reply over any transport: requests carry `reply_to` and a
/// unique `correlation_id`; replies are matched to their request by it.
///
/// On RabbitMQ the replies come through direct reply-to
/// (`amq.rabbitmq.reply-to`, no reply queue at all); elsewhere through an
/// exclusive, auto-delete reply queue of the client's own.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use std::time::Duration;
/// use kelp::{Connection, Queue, RpcClient};
///
/// let conn = Connection::new("memory://")?;
/// let requests = Queue::new("rpc-doc");
/// let mut server = conn.consumer([requests.clone()]).build().await?;
/// let replies = conn.producer().build().await?;
/// tokio::spawn(async move {
///     while let Some(Ok(request)) = server.next().await {
///         let n: i64 = request.decode().unwrap();
///         kelp::send_reply(&replies, &request, &(n * 2)).await.unwrap();
///         request.ack().await.unwrap();
///     }
/// });
///
/// let client = RpcClient::new(&conn).await?;
/// let reply = client.call("", "rpc-doc", &21, Duration::from_secs(5)).await?;
/// assert_eq!(reply.decode::<i64>()?, 42);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct RpcClient {
    producer: Producer,
    reply_to: String,
    state: Mutex<Replies>,
}

struct Replies {
    consumer: Consumer,
    /// Replies that arrived for other calls than the one reading.
    early: HashMap<String, Message>,
}

impl RpcClient {
    /// A client on `connection`, with its own channel.
    pub async fn new(connection: &Connection) -> Result<RpcClient> {
        let channel = connection.channel().await?;
        let direct = connection.capabilities().await?.direct_reply_to;
        let (consumer, reply_to) = if direct {
            // Direct reply-to: consume (no-ack) before publishing, on the
            // channel that publishes.
            let queue = Queue::new(DIRECT_REPLY_TO).no_declare(true);
            (channel.consumer([queue]).no_ack(true).auto_declare(false).build().await?, DIRECT_REPLY_TO.to_owned())
        } else {
            let queue = Queue::new(format!("kelp.reply.{}", crate::content::ids::uuid4())).durable(false).exclusive(true).auto_delete(true);
            let consumer = channel.consumer([queue.clone()]).no_ack(true).build().await?;
            (consumer, queue.name)
        };
        let producer = channel.producer().build().await?;
        Ok(RpcClient { producer, reply_to, state: Mutex::new(Replies { consumer, early: HashMap::new() }) })
    }

    /// The channel requests go out on.
    pub fn channel(&self) -> &Channel {
        self.producer.channel()
    }

    /// Where replies come back (`reply_to` of every request).
    pub fn reply_to(&self) -> &str {
        &self.reply_to
    }

    /// Send `body` to `exchange` with `routing_key` and wait at most
    /// `timeout` for its reply; a [`Timeout`](ErrorKind::Timeout) error
    /// when none came.
    pub async fn call<T: Serialize + ?Sized>(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &T,
        timeout: Duration,
    ) -> Result<Message> {
        let correlation_id = crate::content::ids::uuid4();
        // Hold the reply stream from before the request goes out, so the
        // reply cannot be read by another call and dropped.
        let mut replies = self.state.lock().await;
        self.producer
            .publish(body)
            .exchange(exchange.to_owned())
            .routing_key(routing_key.to_owned())
            .reply_to(self.reply_to.clone())
            .correlation_id(correlation_id.clone())
            .send()
            .await?;
        if let Some(reply) = replies.early.remove(&correlation_id) {
            return Ok(reply);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, replies.consumer.next()).await.map_err(|_| {
                Error::new(ErrorKind::Timeout, format!("no reply to request {correlation_id} within {timeout:?}"))
            })?;
            let reply = match next {
                Some(reply) => reply?,
                None => return Err(Error::closed("the reply consumer ended")),
            };
            match reply.properties().correlation_id.as_deref() {
                Some(id) if id == correlation_id => return Ok(reply),
                Some(other) => {
                    // A reply to a call that gave up: keep a few, drop the rest.
                    if replies.early.len() < 1024 {
                        replies.early.insert(other.to_owned(), reply);
                    }
                }
                None => tracing::warn!("a reply without correlation_id was dropped"),
            }
        }
    }
}

/// Collect the replies to `correlation_id` arriving on `queue` until
/// `timeout` passes without one or `limit` came (Kombu's
/// `collect_replies`); replies to other requests are left for others
/// (requeued).
pub async fn collect_replies(
    connection: &Connection,
    queue: Queue,
    correlation_id: &str,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<Message>> {
    let mut consumer = connection.consumer([queue]).build().await?;
    let (mut out, mut others) = (Vec::new(), Vec::new());
    while out.len() < limit {
        let Some(message) = consumer.next_timeout(timeout).await? else { break };
        if message.properties().correlation_id.as_deref() == Some(correlation_id) {
            message.ack().await?;
            out.push(message);
        } else {
            // Held until the end, so it is not read again meanwhile.
            others.push(message);
        }
    }
    // Stop deliveries first, so what goes back is not read again here.
    consumer.cancel().await?;
    while let Ok(Some(late)) = consumer.next_timeout(Duration::ZERO).await {
        others.push(late);
    }
    for message in others {
        message.requeue().await?;
    }
    Ok(out)
}

impl fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcClient")
            .field("reply_to", &self.reply_to)
            .finish_non_exhaustive()
    }
}
