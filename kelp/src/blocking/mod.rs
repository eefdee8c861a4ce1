//! A synchronous facade over kelp's async API, for code without an async
//! runtime (in the manner of reqwest's `blocking` module).
//!
//! Each call runs the async operation to completion on the calling thread,
//! while a private runtime thread (`kelp-blocking-runtime`) drives the I/O
//! and timers. Calling it from inside an async runtime is refused with an
//! error instead of deadlocking.
//!
//! ```
//! use kelp::blocking::Connection;
//! use kelp::Queue;
//!
//! let conn = Connection::new("memory://")?;
//! let channel = conn.default_channel()?;
//! let declared = channel.declare_queue(&Queue::new("blocking-doc"))?;
//! let producer = conn.producer().build()?;
//! producer.publish(&"hi").routing_key(declared.name.as_str()).send()?;
//! let message = channel.get(&Queue::new("blocking-doc"), false)?.expect("one message");
//! assert_eq!(message.decode::<String>()?, "hi");
//! message.ack()?;
//! # Ok::<(), kelp::Error>(())
//! ```

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::compression::Compression;

use crate::codec::serialization::{Accept, Serializer};

use crate::content::message::ReturnedMessage;

use crate::content::text::SharedStr;

use crate::content::value::{FieldTable, Value};

use crate::error::{Error, Result};

use crate::model::entity::{DeclaredQueue, DeliveryMode, Entity, Exchange};

/// Run `future` to completion on this thread, with kelp's runtime driving I/O.
fn wait<F: Future>(future: F) -> Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::config(
            "kelp::blocking was called from inside an async runtime; use the async API there",
        ));
    }
    Ok(crate::patterns::runtime::handle()?.block_on(future))
}

fn run<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    wait(future)?
}

mod patterns;

pub use patterns::{
    Broadcast, ConnectionPool, PooledConnection, PooledProducer, ProducerPool, RpcClient, SimpleBuffer,
    SimpleBuilder, SimpleQueue, collect_replies, pools, send_reply,
};

/// A connection; see [`crate::Connection`].
///
/// # Examples
///
/// ```
/// use kelp::blocking::Connection;
///
/// let conn = Connection::new("memory://")?;
/// conn.connect()?;
/// assert!(conn.is_connected());
/// conn.close()?;
/// assert!(!conn.is_connected());
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone)]
pub struct Connection {
    inner: crate::model::connection::Connection,
}

impl Connection {
    /// A connection to `url` (or a `;`-separated list); does not connect yet.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = kelp::blocking::Connection::new("memory://")?;
    /// assert_eq!(conn.as_uri(false), "memory://:**@localhost//");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn new(url: &str) -> Result<Connection> {
        Ok(Connection {
            inner: crate::model::connection::Connection::new(url)?,
        })
    }

    /// Wrap an async connection (built with [`crate::Connection::builder`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let options = kelp::Connection::builder("memory://")
    ///     .connect_timeout(Duration::from_secs(2))
    ///     .build()?;
    /// let conn = kelp::blocking::Connection::from_async(options);
    /// conn.connect()?;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn from_async(inner: crate::model::connection::Connection) -> Connection {
        Connection { inner }
    }

    /// The async connection underneath.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = kelp::blocking::Connection::new("amqp://rabbit-a//;amqp://rabbit-b//")?;
    /// assert_eq!(conn.as_async().urls().len(), 2);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn as_async(&self) -> &crate::model::connection::Connection {
        &self.inner
    }

    /// Connect now if not connected.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = kelp::blocking::Connection::new("memory://")?;
    /// conn.connect()?; // fail at startup, not at the first publish
    /// assert!(conn.is_connected());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn connect(&self) -> Result<()> {
        run(self.inner.connect())
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Close the connection (it reconnects on next use).
    pub fn close(&self) -> Result<()> {
        run(self.inner.close())
    }

    /// Same as [`close`](Connection::close).
    pub fn release(&self) -> Result<()> {
        self.close()
    }

    /// Open a new channel.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.channel()?;
    /// let declared = channel.declare_queue(&Queue::new("blocking-channel-doc"))?;
    /// assert_eq!(declared.message_count, 0);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn channel(&self) -> Result<Channel> {
        Ok(Channel {
            inner: run(self.inner.channel())?,
        })
    }

    /// The default channel.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// channel.qos(10, false)?;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn default_channel(&self) -> Result<Channel> {
        Ok(Channel {
            inner: run(self.inner.default_channel())?,
        })
    }

    /// A producer on the default channel.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// conn.default_channel()?.declare_queue(&Queue::new("blocking-producer-doc"))?;
    /// let producer = conn.producer().routing_key("blocking-producer-doc").build()?;
    /// producer.publish(&[1, 2, 3]).send()?;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder {
            inner: self.inner.producer(),
        }
    }

    /// A consumer of `queues` on the default channel.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let mut consumer = conn.consumer([Queue::new("blocking-consumer-doc")]).build()?;
    /// conn.producer().routing_key("blocking-consumer-doc").build()?.publish("hello").send()?;
    /// let message = consumer.next().expect("a message")?;
    /// assert_eq!(message.decode::<String>()?, "hello");
    /// message.ack()?;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn consumer<I: IntoIterator<Item = crate::model::entity::Queue>>(&self, queues: I) -> ConsumerBuilder {
        ConsumerBuilder {
            inner: self.inner.consumer(queues),
        }
    }

    /// Declare unless already declared on this connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Exchange;
    ///
    /// let conn = Connection::new("memory://")?;
    /// assert!(conn.maybe_declare(&Exchange::topic("blocking-maybe-doc"))?);
    /// assert!(!conn.maybe_declare(&Exchange::topic("blocking-maybe-doc"))?);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn maybe_declare(&self, entity: impl Into<Entity>) -> Result<bool> {
        run(self.inner.maybe_declare(entity))
    }

    /// The URL in use, password masked unless asked for.
    pub fn as_uri(&self, include_password: bool) -> String {
        self.inner.as_uri(include_password)
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// A channel; see [`crate::Channel`]. Entity operations are methods here.
///
/// # Examples
///
/// ```
/// use kelp::blocking::Connection;
/// use kelp::{Exchange, FieldTable, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel()?;
/// let logs = Exchange::topic("blocking-channel-struct-doc");
/// let errors = Queue::new("blocking-channel-struct-doc-errors");
/// channel.declare_exchange(&logs)?;
/// channel.declare_queue(&errors)?;
/// channel.bind_queue(&errors, &logs.name, "*.error", &FieldTable::new())?;
///
/// conn.producer().exchange(logs).build()?.publish("disk full").routing_key("db.error").send()?;
/// let message = channel.get(&errors, false)?.expect("a message");
/// message.ack()?;
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Channel {
    inner: crate::model::channel::Channel,
}

impl Channel {
    /// The async channel underneath.
    pub fn as_async(&self) -> &crate::model::channel::Channel {
        &self.inner
    }

    /// Close the channel (it reopens on next use).
    pub fn close(&self) -> Result<()> {
        run(self.inner.close())
    }

    /// basic.qos.
    pub fn qos(&self, prefetch_count: u16, global: bool) -> Result<()> {
        run(self.inner.qos(prefetch_count, global))
    }

    /// Redeliver unacknowledged messages.
    pub fn recover(&self, requeue: bool) -> Result<()> {
        run(self.inner.recover(requeue))
    }

    /// Declare an exchange.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Exchange;
    ///
    /// let conn = Connection::new("memory://")?;
    /// conn.default_channel()?.declare_exchange(&Exchange::topic("blocking-exchange-doc"))?;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn declare_exchange(&self, exchange: &Exchange) -> Result<()> {
        run(exchange.declare(&self.inner))
    }

    /// Delete an exchange.
    pub fn delete_exchange(&self, exchange: &Exchange, if_unused: bool) -> Result<()> {
        run(exchange.delete(&self.inner, if_unused))
    }

    /// Declare a queue with its exchange and bindings.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::{Exchange, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let queue = Queue::new("blocking-declare-doc").exchange(Exchange::fanout("blocking-declare-doc"));
    /// let declared = conn.default_channel()?.declare_queue(&queue)?;
    /// assert_eq!(declared.name, "blocking-declare-doc");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn declare_queue(&self, queue: &crate::model::entity::Queue) -> Result<DeclaredQueue> {
        run(queue.declare(&self.inner))
    }

    /// Bind a queue to an exchange.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::{Exchange, FieldTable, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let prices = Exchange::topic("blocking-bind-doc");
    /// let watch = Queue::new("blocking-bind-doc-watch");
    /// channel.declare_exchange(&prices)?;
    /// channel.declare_queue(&watch)?;
    /// channel.bind_queue(&watch, "blocking-bind-doc", "stock.#", &FieldTable::new())?;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn bind_queue(
        &self,
        queue: &crate::model::entity::Queue,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        run(queue.bind_to(&self.inner, exchange, routing_key, arguments))
    }

    /// Remove a binding of a queue.
    pub fn unbind_queue(
        &self,
        queue: &crate::model::entity::Queue,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        run(queue.unbind_from(&self.inner, exchange, routing_key, arguments))
    }

    /// Purge a queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-purge-doc");
    /// channel.declare_queue(&queue)?;
    /// conn.producer().routing_key("blocking-purge-doc").build()?.publish("old").send()?;
    /// assert_eq!(channel.purge_queue(&queue)?, 1);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn purge_queue(&self, queue: &crate::model::entity::Queue) -> Result<u32> {
        run(queue.purge(&self.inner))
    }

    /// Delete a queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-delete-doc");
    /// channel.declare_queue(&queue)?;
    /// assert_eq!(channel.delete_queue(&queue, false, false)?, 0);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn delete_queue(&self, queue: &crate::model::entity::Queue, if_unused: bool, if_empty: bool) -> Result<u32> {
        run(queue.delete(&self.inner, if_unused, if_empty))
    }

    /// Take one message from a queue without a consumer.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-get-doc");
    /// channel.declare_queue(&queue)?;
    /// assert!(channel.get(&queue, false)?.is_none()); // empty: no waiting
    /// conn.producer().routing_key("blocking-get-doc").build()?.publish(&7).send()?;
    /// let message = channel.get(&queue, false)?.expect("a message");
    /// assert_eq!(message.decode::<i32>()?, 7);
    /// message.ack()?;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn get(&self, queue: &crate::model::entity::Queue, no_ack: bool) -> Result<Option<Message>> {
        Ok(run(queue.get(&self.inner, no_ack))?.map(|inner| Message { inner }))
    }

    /// A producer on this channel.
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder {
            inner: self.inner.producer(),
        }
    }

    /// A consumer on this channel.
    pub fn consumer<I: IntoIterator<Item = crate::model::entity::Queue>>(&self, queues: I) -> ConsumerBuilder {
        ConsumerBuilder {
            inner: self.inner.consumer(queues),
        }
    }
}

/// Options of a [`Producer`]; see [`crate::ProducerBuilder`].
///
/// # Examples
///
/// ```
/// use kelp::blocking::Connection;
/// use kelp::{Compression, Exchange};
///
/// let conn = Connection::new("memory://")?;
/// let producer = conn
///     .producer()
///     .exchange(Exchange::topic("blocking-builder-doc"))
///     .routing_key("reports.daily")
///     .compression(Compression::Zlib)
///     .build()?;
/// assert_eq!(producer.as_async().routing_key(), "reports.daily");
/// # Ok::<(), kelp::Error>(())
/// ```
#[must_use = "a builder does nothing until built"]
pub struct ProducerBuilder {
    inner: crate::model::producer::ProducerBuilder,
}

impl ProducerBuilder {
    /// The default exchange.
    pub fn exchange(self, exchange: Exchange) -> Self {
        ProducerBuilder { inner: self.inner.exchange(exchange) }
    }
    /// The default routing key.
    pub fn routing_key(self, routing_key: impl Into<String>) -> Self {
        ProducerBuilder { inner: self.inner.routing_key(routing_key) }
    }
    /// The default serializer.
    pub fn serializer(self, serializer: Serializer) -> Self {
        ProducerBuilder { inner: self.inner.serializer(serializer) }
    }
    /// The default compression.
    pub fn compression(self, compression: Compression) -> Self {
        ProducerBuilder { inner: self.inner.compression(compression) }
    }
    /// Wait for publisher confirms (default on).
    pub fn confirms(self, confirms: bool) -> Self {
        ProducerBuilder { inner: self.inner.confirms(confirms) }
    }
    /// Declare the exchange when building (default on).
    pub fn auto_declare(self, auto_declare: bool) -> Self {
        ProducerBuilder { inner: self.inner.auto_declare(auto_declare) }
    }
    /// A UUID message id on every message.
    pub fn auto_message_id(self, on: bool) -> Self {
        ProducerBuilder { inner: self.inner.auto_message_id(on) }
    }
    /// Called for returned mandatory messages.
    pub fn on_return<F>(self, callback: F) -> Self
    where
        F: Fn(&ReturnedMessage) + Send + Sync + 'static,
    {
        ProducerBuilder { inner: self.inner.on_return(callback) }
    }
    /// Create the producer.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = kelp::blocking::Connection::new("memory://")?;
    /// let producer = conn.producer().build()?;
    /// assert!(producer.as_async().confirms());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn build(self) -> Result<Producer> {
        Ok(Producer {
            inner: run(self.inner.build())?,
        })
    }
}

/// A producer; see [`crate::Producer`].
///
/// # Examples
///
/// ```
/// use kelp::blocking::Connection;
/// use kelp::Queue;
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel()?;
/// let queue = Queue::new("blocking-producer-struct-doc");
/// channel.declare_queue(&queue)?;
/// let producer = conn.producer().routing_key("blocking-producer-struct-doc").build()?;
/// producer.publish_text("plain").send()?;
/// producer.publish_bytes(vec![0xca, 0xfe]).send()?;
/// assert_eq!(channel.declare_queue(&queue)?.message_count, 2);
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Producer {
    inner: crate::model::producer::Producer,
}

impl Producer {
    /// Publish a serialized value.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let producer = conn.producer().build()?;
    /// producer
    ///     .publish(&serde_json::json!({"user": 42}))
    ///     .routing_key("blocking-publish-doc")
    ///     .declare(&Queue::new("blocking-publish-doc"))
    ///     .send()?;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn publish<'p, T: Serialize + ?Sized>(&'p self, body: &'p T) -> Publish<'p, T> {
        Publish {
            inner: self.inner.publish(body),
        }
    }

    /// Publish bytes as they are.
    pub fn publish_bytes(&self, body: impl Into<Bytes>) -> Publish<'_, ()> {
        Publish {
            inner: self.inner.publish_bytes(body),
        }
    }

    /// Publish text as it is.
    pub fn publish_text(&self, body: impl Into<String>) -> Publish<'_, ()> {
        Publish {
            inner: self.inner.publish_text(body),
        }
    }

    /// The async producer underneath.
    pub fn as_async(&self) -> &crate::model::producer::Producer {
        &self.inner
    }
}

/// One publish; see [`crate::Publish`]. Finish with [`send`](Publish::send).
///
/// # Examples
///
/// ```
/// use kelp::blocking::Connection;
/// use kelp::Queue;
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel()?;
/// let queue = Queue::new("blocking-publish-struct-doc");
/// channel.declare_queue(&queue)?;
/// conn.producer()
///     .build()?
///     .publish("hi")
///     .routing_key("blocking-publish-struct-doc")
///     .header("lang", "en")
///     .priority(3)
///     .send()?;
/// let message = channel.get(&queue, true)?.expect("a message");
/// assert_eq!(message.headers()["lang"].as_str(), Some("en"));
/// # Ok::<(), kelp::Error>(())
/// ```
#[must_use = "nothing is published until send() is called"]
pub struct Publish<'p, T: ?Sized> {
    inner: crate::model::producer::Publish<'p, T>,
}

macro_rules! forward_publish {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        $(#[$doc])*
        pub fn $name(self, $($arg: $ty),*) -> Self {
            Publish { inner: self.inner.$name($($arg),*) }
        }
    )*};
}

impl<'p, T: Serialize + ?Sized> Publish<'p, T> {
    forward_publish! {
        /// Publish to this exchange.
        exchange(name: impl Into<SharedStr>);
        /// Use this routing key.
        routing_key(key: impl Into<SharedStr>);
        /// Use this serializer.
        serializer(serializer: Serializer);
        /// Use this compression.
        compression(compression: Compression);
        /// No compression.
        no_compression();
        /// Delivery mode.
        delivery_mode(mode: DeliveryMode);
        /// Return if unroutable.
        mandatory(mandatory: bool);
        /// Priority.
        priority(priority: u8);
        /// Content type label.
        content_type(content_type: impl Into<SharedStr>);
        /// Content encoding label.
        content_encoding(content_encoding: impl Into<SharedStr>);
        /// Expiration (TTL).
        expiration(ttl: Duration);
        /// Correlation id.
        correlation_id(id: impl Into<SharedStr>);
        /// Reply-to queue.
        reply_to(queue: impl Into<SharedStr>);
        /// Message id.
        message_id(id: impl Into<SharedStr>);
        /// Timestamp in seconds.
        timestamp(seconds: u64);
        /// Message type.
        kind(kind: impl Into<SharedStr>);
        /// Application id.
        app_id(app_id: impl Into<SharedStr>);
        /// User id.
        user_id(user_id: impl Into<SharedStr>);
        /// Headers.
        headers(headers: FieldTable);
    }

    /// Add a header.
    pub fn header(self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        Publish {
            inner: self.inner.header(key, value),
        }
    }

    /// Declare an entity first.
    pub fn declare(self, entity: impl Into<Entity>) -> Self {
        Publish {
            inner: self.inner.declare(entity),
        }
    }

    /// Publish and wait for the broker's confirm.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = kelp::blocking::Connection::new("memory://")?;
    /// let producer = conn.producer().build()?;
    /// let result = producer.publish("x").routing_key("blocking-send-doc-nowhere").mandatory(true).send();
    /// assert!(result.unwrap_err().is_unroutable());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn send(self) -> Result<()> {
        run(self.inner.send())
    }
}

/// Options of a [`Consumer`]; see [`crate::ConsumerBuilder`].
///
/// # Examples
///
/// ```
/// use kelp::blocking::Connection;
/// use kelp::{Accept, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let consumer = conn
///     .consumer([Queue::new("blocking-consumer-builder-doc")])
///     .prefetch_count(5)
///     .accept(Accept::new(["json"])?)
///     .tag_prefix("report-")
///     .build()?;
/// assert!(consumer.consumer_tags()[0].starts_with("report-"));
/// # Ok::<(), kelp::Error>(())
/// ```
#[must_use = "a builder does nothing until built"]
pub struct ConsumerBuilder {
    inner: crate::model::consumer::ConsumerBuilder,
}

impl ConsumerBuilder {
    /// Consume from this queue too.
    pub fn queue(self, queue: crate::model::entity::Queue) -> Self {
        ConsumerBuilder { inner: self.inner.queue(queue) }
    }
    /// No acknowledgements.
    pub fn no_ack(self, no_ack: bool) -> Self {
        ConsumerBuilder { inner: self.inner.no_ack(no_ack) }
    }
    /// Prefetch count.
    pub fn prefetch_count(self, n: u16) -> Self {
        ConsumerBuilder { inner: self.inner.prefetch_count(n) }
    }
    /// Accept list.
    pub fn accept(self, accept: Accept) -> Self {
        ConsumerBuilder { inner: self.inner.accept(accept) }
    }
    /// Consumer tag prefix.
    pub fn tag_prefix(self, prefix: impl Into<String>) -> Self {
        ConsumerBuilder { inner: self.inner.tag_prefix(prefix) }
    }
    /// Declare queues first (default on).
    pub fn auto_declare(self, auto_declare: bool) -> Self {
        ConsumerBuilder { inner: self.inner.auto_declare(auto_declare) }
    }
    /// Exclusive consumer.
    pub fn exclusive(self, exclusive: bool) -> Self {
        ConsumerBuilder { inner: self.inner.exclusive(exclusive) }
    }
    /// Decompression limit.
    pub fn decompression_limit(self, bytes: usize) -> Self {
        ConsumerBuilder { inner: self.inner.decompression_limit(bytes) }
    }
    /// Start consuming.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let consumer = conn.consumer([Queue::new("blocking-consumer-build-doc")]).build()?;
    /// assert_eq!(consumer.queues(), ["blocking-consumer-build-doc"]);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn build(self) -> Result<Consumer> {
        Ok(Consumer {
            inner: run(self.inner.build())?,
        })
    }
}

/// A consumer; an [`Iterator`] of messages that blocks for each.
///
/// # Examples
///
/// ```
/// use kelp::blocking::Connection;
/// use kelp::Queue;
///
/// let conn = Connection::new("memory://")?;
/// let mut consumer = conn.consumer([Queue::new("blocking-iter-doc")]).build()?;
/// let producer = conn.producer().routing_key("blocking-iter-doc").build()?;
/// for n in 1..=3 {
///     producer.publish(&n).send()?;
/// }
/// let mut sum = 0;
/// for message in consumer.by_ref().take(3) {
///     let message = message?;
///     sum += message.decode::<i32>()?;
///     message.ack()?;
/// }
/// assert_eq!(sum, 6);
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Debug)]
pub struct Consumer {
    inner: crate::model::consumer::Consumer,
}

impl Consumer {
    /// The next message, waiting at most `timeout`; `Ok(None)` when the
    /// consumer ended, an [`Empty`](crate::ErrorKind::Empty) error on timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use kelp::Queue;
    /// use kelp::blocking::Connection;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let mut consumer = conn.consumer([Queue::new("blocking-timeout-doc")]).build()?;
    /// let err = consumer.next_timeout(Duration::from_millis(20)).unwrap_err();
    /// assert!(err.is_empty());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        // The timer is created inside kelp's runtime: outside one, tokio has
        // no timer to register it with.
        match wait(async { tokio::time::timeout(timeout, self.inner.next()).await })? {
            Ok(Some(message)) => Ok(Some(Message { inner: message? })),
            Ok(None) => Ok(None),
            Err(_) => Err(Error::new(
                crate::error::ErrorKind::Empty,
                format!("no message within {timeout:?}"),
            )),
        }
    }

    /// Take the messages that arrive until `timeout` passes without one,
    /// at most `limit`; see [`crate::Consumer::drain`].
    pub fn drain(&mut self, timeout: Duration, limit: usize) -> Result<Vec<Message>> {
        let messages = run(self.inner.drain(timeout, limit))?;
        Ok(messages.into_iter().map(|inner| Message { inner }).collect())
    }

    /// Stop consuming.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let mut consumer = conn.consumer([Queue::new("blocking-cancel-doc")]).build()?;
    /// consumer.cancel()?;
    /// assert!(consumer.next().is_none());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn cancel(&mut self) -> Result<()> {
        run(self.inner.cancel())
    }

    /// The consumer tags.
    pub fn consumer_tags(&self) -> Vec<&str> {
        self.inner.consumer_tags()
    }

    /// The queues consumed.
    pub fn queues(&self) -> Vec<String> {
        self.inner.queues()
    }
}

impl Iterator for Consumer {
    type Item = Result<Message>;

    fn next(&mut self) -> Option<Result<Message>> {
        match wait(self.inner.next()) {
            Ok(Some(Ok(inner))) => Some(Ok(Message { inner })),
            Ok(Some(Err(e))) | Err(e) => Some(Err(e)),
            Ok(None) => None,
        }
    }
}

/// A received message; see [`crate::Message`]. Its accessors are reached
/// through `Deref`; settling blocks.
///
/// # Examples
///
/// ```
/// use kelp::blocking::Connection;
/// use kelp::Queue;
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel()?;
/// let queue = Queue::new("blocking-message-doc");
/// channel.declare_queue(&queue)?;
/// conn.producer().routing_key("blocking-message-doc").build()?.publish("job").send()?;
///
/// let message = channel.get(&queue, false)?.expect("a message");
/// assert_eq!(message.routing_key(), "blocking-message-doc"); // async Message accessors
/// message.requeue()?;
/// let again = channel.get(&queue, false)?.expect("requeued");
/// assert!(again.redelivered());
/// again.ack()?;
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Debug)]
pub struct Message {
    inner: crate::model::message::Message,
}

impl Message {
    /// Acknowledge.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-ack-doc");
    /// channel.declare_queue(&queue)?;
    /// conn.producer().routing_key("blocking-ack-doc").build()?.publish("done").send()?;
    /// let message = channel.get(&queue, false)?.expect("a message");
    /// message.ack()?;
    /// assert!(message.is_settled());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn ack(&self) -> Result<()> {
        run(self.inner.ack())
    }

    /// Acknowledge this and all earlier messages of the channel.
    pub fn ack_multiple(&self) -> Result<()> {
        run(self.inner.ack_multiple())
    }

    /// Reject (drop or dead-letter).
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-reject-doc");
    /// channel.declare_queue(&queue)?;
    /// conn.producer().routing_key("blocking-reject-doc").build()?.publish("bad").send()?;
    /// channel.get(&queue, false)?.expect("a message").reject()?;
    /// assert!(channel.get(&queue, false)?.is_none());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn reject(&self) -> Result<()> {
        run(self.inner.reject())
    }

    /// Reject and requeue.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-requeue-doc");
    /// channel.declare_queue(&queue)?;
    /// conn.producer().routing_key("blocking-requeue-doc").build()?.publish("later").send()?;
    /// channel.get(&queue, false)?.expect("a message").requeue()?;
    /// assert!(channel.get(&queue, false)?.expect("back again").redelivered());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn requeue(&self) -> Result<()> {
        run(self.inner.requeue())
    }

    /// Decode the body into `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-decode-doc");
    /// channel.declare_queue(&queue)?;
    /// conn.producer().routing_key("blocking-decode-doc").build()?.publish(&(1, "one")).send()?;
    /// let message = channel.get(&queue, true)?.expect("a message");
    /// assert_eq!(message.decode::<(u8, String)>()?, (1, "one".to_string()));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        self.inner.decode()
    }

    /// The async message underneath.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::{MessageState, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-into-async-doc");
    /// channel.declare_queue(&queue)?;
    /// conn.producer().routing_key("blocking-into-async-doc").build()?.publish("x").send()?;
    /// let message = channel.get(&queue, true)?.expect("a message").into_async();
    /// assert_eq!(message.state(), MessageState::Received);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn into_async(self) -> crate::model::message::Message {
        self.inner
    }
}

impl Deref for Message {
    type Target = crate::model::message::Message;
    fn deref(&self) -> &crate::model::message::Message {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_to_block_inside_a_runtime() {
        let err = Connection::new("memory://").unwrap().connect().unwrap_err();
        assert!(err.is_config(), "{err}");
    }
}
