//! Kombu's simple interface: [`SimpleQueue`] (a named queue on a direct
//! exchange of the same name, with put / get) and [`SimpleBuffer`] (the
//! same, transient: auto-delete, no acks).

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Mutex;
use crate::model::setters::builder_setters;
use crate::codec::compression::Compression;
use crate::codec::serialization::{Accept, Serializer};
use crate::error::{Error, ErrorKind, Result};
use crate::model::channel::Channel;
use crate::model::connection::Connection;
use crate::model::consumer::Consumer;
use crate::model::entity::{DeliveryMode, Exchange, Queue};
use crate::model::message::Message;
use crate::model::producer::Producer;

/// Options of a [`SimpleQueue`] or [`SimpleBuffer`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until built"]
pub struct SimpleBuilder {
    connection: Connection,
    queue: Queue,
    buffer: bool,
    serializer: Serializer,
    compression: Option<Compression>,
    accept: Option<Accept>,
}

/// Every option of a simple queue builder, once: expanded into its setters here and into
/// the blocking twin's forwarding setters in `blocking`, so the two faces
/// cannot drift apart. Each item is a setter body on `b: &mut Self`.
macro_rules! simple_builder_options {
    ($expand:ident $(, $($face:tt)*)?) => {
        $expand! {
            $($($face)*;)?
            /// How `put` encodes bodies (JSON by default).
            fn serializer(b, serializer: Serializer) {
                b.serializer = serializer;
            }
            /// Compress bodies that `put` sends.
            fn compression(b, compression: Compression) {
                b.compression = Some(compression);
            }
            /// The content types `get` accepts (others are refused with
            /// `ContentDisallowed` when decoded).
            fn accept(b, accept: Accept) {
                b.accept = Some(accept);
            }
        }
    };
}
#[cfg_attr(not(feature = "blocking"), allow(unused_imports))]
pub(crate) use simple_builder_options;

impl SimpleBuilder {
    simple_builder_options!(builder_setters);

    fn new(connection: &Connection, queue: Queue, buffer: bool) -> SimpleBuilder {
        SimpleBuilder {
            connection: connection.clone(),
            queue,
            buffer,
            serializer: Serializer::default(),
            compression: None,
            accept: None,
        }
    }

    /// Declare the queue and exchange, and make the producer.
    pub async fn build(self) -> Result<SimpleQueue> {
        let channel = self.connection.channel().await?;
        self.queue.declare(&channel).await?;
        let exchange = self.queue.exchange.clone().unwrap_or_else(Exchange::default_exchange);
        let mut producer = channel
            .producer()
            .exchange(exchange)
            .routing_key(publish_key(&self.queue))
            .serializer(self.serializer);
        if let Some(compression) = self.compression {
            producer = producer.compression(compression);
        }
        Ok(SimpleQueue {
            producer: producer.build().await?,
            channel,
            queue: self.queue,
            no_ack: self.buffer,
            delivery_mode: if self.buffer { DeliveryMode::Transient } else { DeliveryMode::Persistent },
            accept: self.accept,
            consumer: Mutex::new(None),
        })
    }
}

/// A named queue with `put` and `get` (Kombu's `SimpleQueue`): a direct
/// exchange and a queue of the same name, the name as routing key.
///
/// Messages from `get` must be acked (or rejected); a [`SimpleBuffer`]'s
/// need not.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use std::time::Duration;
/// use kelp::{Connection, SimpleQueue};
///
/// let conn = Connection::new("memory://")?;
/// let queue = SimpleQueue::new(&conn, "simple-doc").await?;
/// queue.put(&"hello").await?;
/// assert_eq!(queue.qsize().await?, 1);
/// let message = queue.get_timeout(Duration::from_secs(5)).await?;
/// assert_eq!(message.decode::<String>()?, "hello");
/// message.ack().await?;
/// assert!(queue.get_nowait().await.unwrap_err().is_empty());
/// queue.close().await?;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct SimpleQueue {
    channel: Channel,
    producer: Producer,
    queue: Queue,
    no_ack: bool,
    delivery_mode: DeliveryMode,
    accept: Option<Accept>,
    /// A buffer's consumer, made by its first blocking get.
    consumer: Mutex<Option<Consumer>>,
}

/// A transient [`SimpleQueue`] (Kombu's `SimpleBuffer`): its queue and
/// exchange are auto-delete and not durable, messages are transient and
/// need no ack.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// let conn = kelp::Connection::new("memory://")?;
/// let buffer = kelp::SimpleBuffer::new(&conn, "buffer-doc").await?;
/// buffer.put(&1).await?;
/// assert_eq!(buffer.get_nowait().await?.decode::<i32>()?, 1);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug)]
pub struct SimpleBuffer;

impl SimpleBuffer {
    /// A buffer named `name` (a simple queue with other defaults, as in Kombu).
    #[allow(clippy::new_ret_no_self)]
    pub async fn new(connection: &Connection, name: &str) -> Result<SimpleQueue> {
        SimpleBuffer::builder(connection, name).build().await
    }

    /// A buffer named `name`, with options.
    pub fn builder(connection: &Connection, name: &str) -> SimpleBuilder {
        let exchange = Exchange::direct(name).durable(false).auto_delete(true);
        let queue = Queue::new(name).exchange(exchange).routing_key(name).durable(false).auto_delete(true);
        SimpleBuilder::new(connection, queue, true)
    }
}

impl SimpleQueue {
    /// The queue `name` on the direct exchange `name`.
    pub async fn new(connection: &Connection, name: &str) -> Result<SimpleQueue> {
        SimpleQueue::builder(connection, name).build().await
    }

    /// The queue `name`, with options.
    pub fn builder(connection: &Connection, name: &str) -> SimpleBuilder {
        let queue = Queue::new(name).exchange(Exchange::direct(name)).routing_key(name);
        SimpleBuilder::new(connection, queue, false)
    }

    /// A simple queue over a queue you describe (its exchange and routing
    /// key are used to publish).
    pub fn from_queue(connection: &Connection, queue: Queue) -> SimpleBuilder {
        SimpleBuilder::new(connection, queue, false)
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Publish `body`.
    pub async fn put<T: Serialize + ?Sized>(&self, body: &T) -> Result<()> {
        self.producer
            .publish(body)
            .routing_key(publish_key(&self.queue))
            .delivery_mode(self.delivery_mode)
            .send()
            .await
            .map(|_| ())
    }

    /// Take the next message, waiting as long as it takes.
    pub async fn get(&self) -> Result<Message> {
        self.wait(None).await
    }

    /// Take the next message, waiting at most `timeout`; an
    /// [`Empty`](ErrorKind::Empty) error if none came.
    pub async fn get_timeout(&self, timeout: Duration) -> Result<Message> {
        self.wait(Some(timeout)).await
    }

    /// Take a message if one is there (basic.get), or fail at once with an
    /// [`Empty`](ErrorKind::Empty) error.
    pub async fn get_nowait(&self) -> Result<Message> {
        match self.queue.get(&self.channel, self.no_ack).await? {
            Some(message) => self.check(message),
            None => Err(empty(&self.queue.name)),
        }
    }

    async fn wait(&self, timeout: Option<Duration>) -> Result<Message> {
        if self.no_ack {
            return self.wait_no_ack(timeout).await;
        }
        // A consumer per wait, with room for one message and cancelled once
        // it came: nothing sits prefetched between gets, so qsize counts
        // every waiting message and other consumers can take them.
        let mut builder = self.channel.consumer([self.queue.clone()]).prefetch_count(1);
        if let Some(accept) = &self.accept {
            builder = builder.accept(accept.clone());
        }
        let mut consumer = builder.build().await?;
        let next = match timeout {
            None => consumer.next().await,
            Some(timeout) => match tokio::time::timeout(timeout, consumer.next()).await {
                Ok(next) => next,
                Err(_) => {
                    consumer.cancel().await?;
                    // One may have arrived as the wait ended: keep it.
                    match consumer.next_timeout(Duration::ZERO).await {
                        Ok(Some(late)) => return self.check(late),
                        _ => return Err(empty(&self.queue.name)),
                    }
                }
            },
        };
        consumer.cancel().await?;
        match next {
            Some(message) => self.check(message?),
            None => Err(Error::closed("the simple queue's consumer was cancelled")),
        }
    }

    /// No-ack deliveries are not limited by prefetch and gone once sent, so
    /// a buffer keeps one consumer for its lifetime and reads from it.
    async fn wait_no_ack(&self, timeout: Option<Duration>) -> Result<Message> {
        let mut consumer = self.consumer.lock().await;
        if consumer.is_none() {
            let mut builder = self.channel.consumer([self.queue.clone()]).no_ack(true);
            if let Some(accept) = &self.accept {
                builder = builder.accept(accept.clone());
            }
            *consumer = Some(builder.build().await?);
        }
        let Some(consumer) = consumer.as_mut() else {
            return Err(Error::closed("the simple buffer's consumer is gone"));
        };
        let next = match timeout {
            None => consumer.next().await,
            Some(timeout) => tokio::time::timeout(timeout, consumer.next()).await.map_err(|_| empty(&self.queue.name))?,
        };
        match next {
            Some(message) => self.check(message?),
            None => Err(Error::closed("the simple buffer's consumer was cancelled")),
        }
    }

    fn check(&self, message: Message) -> Result<Message> {
        if let Some(accept) = &self.accept {
            accept.check(message.content_type())?;
        }
        Ok(message)
    }

    /// How many messages wait in the queue (not counting those delivered
    /// and not yet acked).
    pub async fn qsize(&self) -> Result<u32> {
        Ok(self.queue.inspect(&self.channel).await?.message_count)
    }

    /// Remove every waiting message; how many were removed.
    pub async fn clear(&self) -> Result<u32> {
        self.queue.purge(&self.channel).await
    }

    /// Close the channel (messages not acked go back to the queue).
    pub async fn close(&self) -> Result<()> {
        if let Some(mut consumer) = self.consumer.lock().await.take() {
            let _ = consumer.cancel().await;
        }
        self.channel.close().await
    }
}

/// The routing key `put` uses: the queue's binding key, or its name on the
/// default exchange.
fn publish_key(queue: &Queue) -> String {
    if queue.exchange.is_some() && !queue.routing_key.is_empty() {
        queue.routing_key.clone()
    } else {
        queue.name.clone()
    }
}

fn empty(queue: &str) -> Error {
    Error::new(ErrorKind::Empty, format!("no message in queue '{queue}'"))
}

impl fmt::Debug for SimpleQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("queue", &self.queue.name)
            .field("no_ack", &self.no_ack)
            .finish_non_exhaustive()
    }
}
