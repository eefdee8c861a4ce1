//! [`Producer`]: publishes messages with defaults for exchange, routing key,
//! serializer and compression (Kombu's `Producer`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;

use super::setters::builder_setters;
use crate::model::channel::Channel;
use crate::codec::compression::Compression;
use crate::model::connection::Connection;
use crate::model::entity::{DeliveryMode, Entity, Exchange};
use crate::content::message::{Content, Properties, ReturnedMessage};
use crate::codec::serialization::Serializer;
use crate::recovery::retry::{RetryPolicy, pause_or_give_up};
use crate::transport::{Confirm, OutgoingMessage};
use crate::content::text::SharedStr;
use crate::content::value::{FieldTable, Value};
use crate::error::{Error, ErrorKind, Result};

/// A callback for mandatory messages the broker returned as unroutable.
///
/// Set one with [`ProducerBuilder::on_return`], which takes a plain closure.
pub type ReturnCallback = Arc<dyn Fn(&ReturnedMessage) + Send + Sync>;

#[derive(Clone)]
enum Target {
    Connection(Connection),
    Channel(Channel),
}

/// Options of a [`Producer`]; finish with [`build`](ProducerBuilder::build).
///
/// Get one from [`Connection::producer`], [`Channel::producer`] or
/// [`Producer::builder`]. The options are defaults: each publish may
/// override the exchange, routing key, serializer and compression.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Compression, Connection, Exchange, Serializer};
///
/// let conn = Connection::new("memory://")?;
/// let producer = conn
///     .producer()
///     .exchange(Exchange::topic("producer-builder-doc"))
///     .routing_key("orders.created")
///     .serializer(Serializer::text())
///     .compression(Compression::Zlib)
///     .auto_message_id(true)
///     .build()
///     .await?;
/// assert_eq!(producer.routing_key(), "orders.created");
/// assert_eq!(producer.serializer().name(), "text");
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until built"]
pub struct ProducerBuilder {
    target: Target,
    exchange: Exchange,
    routing_key: String,
    serializer: Serializer,
    compression: Option<Compression>,
    confirms: bool,
    auto_declare: bool,
    auto_message_id: bool,
    on_return: Option<ReturnCallback>,
    retry: Option<RetryPolicy>,
    retry_unroutable: bool,
    retry_nacked: bool,
}

/// Every option of a producer builder, once: expanded into its setters here and into
/// the blocking twin's forwarding setters in `blocking`, so the two faces
/// cannot drift apart. Each item is a setter body on `b: &mut Self`.
macro_rules! producer_builder_options {
    ($expand:ident $(, $($face:tt)*)?) => {
        $expand! {
            $($($face)*;)?
            /// Let [`Publish::send`] publish again a message the broker nacked, by
            /// the retry policy (default: off, the caller gets the
            /// [`Nacked`](crate::ErrorKind::Nacked) error). A nack means the broker
            /// did not take the message (a quorum queue electing a new leader, a
            /// full queue), so publishing it again does not duplicate it.
            ///
            /// # Examples
            ///
            /// A queue that refuses messages when full; the publish waits for room
            /// instead of failing:
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let channel = conn.default_channel().await?;
            /// let queue = Queue::new("retry-nacked-doc").max_length(1).argument("x-overflow", "reject-publish");
            /// queue.declare(&channel).await?;
            /// let producer = conn.producer().routing_key("retry-nacked-doc").retry_nacked(true).build().await?;
            /// producer.publish("first").send().await?; // the queue is now full
            ///
            /// let (reader, q) = (conn.channel().await?, queue.clone());
            /// tokio::spawn(async move { q.get(&reader, true).await }); // makes room
            /// producer.publish("second").send().await?; // retried until it fits
            /// let left = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(left.decode::<String>()?, "second");
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn retry_nacked(b, on: bool) {
                b.retry_nacked = on;
            }
            /// Let [`Publish::send`] retry a mandatory message that came back
            /// unroutable, by the retry policy (default: off, the caller gets the
            /// [`Unroutable`](crate::ErrorKind::Unroutable) error). Useful right
            /// after a failover, while consumers re-declare their queues.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let producer = conn.producer().retry_unroutable(true).build().await?;
            ///
            /// // The consuming side declares its queue a little later.
            /// let channel = conn.channel().await?;
            /// tokio::spawn(async move {
            ///     tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            ///     Queue::new("retry-unroutable-doc").declare(&channel).await
            /// });
            /// producer
            ///     .publish("not lost")
            ///     .routing_key("retry-unroutable-doc")
            ///     .mandatory(true)
            ///     .send()
            ///     .await?;
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn retry_unroutable(b, on: bool) {
                b.retry_unroutable = on;
            }
            /// How [`Publish::send`] retries while the connection is down
            /// (default: the connection's retry policy).
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use std::time::Duration;
            /// use kelp::{Connection, RetryPolicy};
            ///
            /// let conn = Connection::new("memory://")?;
            /// // An interactive request should fail fast rather than wait a minute.
            /// let producer = conn
            ///     .producer()
            ///     .retry_policy(RetryPolicy::default().deadline(Duration::from_secs(5)))
            ///     .build()
            ///     .await?;
            /// # let _ = producer;
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn retry_policy(b, policy: RetryPolicy) {
                b.retry = Some(policy);
            }
            /// The default exchange to publish to (default: `""`, routing by queue name).
            ///
            /// The exchange is declared when the producer is built, unless
            /// [`auto_declare`](ProducerBuilder::auto_declare) is off.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Exchange};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let producer = conn.producer().exchange(Exchange::fanout("producer-exchange-doc")).build().await?;
            /// assert_eq!(producer.exchange().name, "producer-exchange-doc");
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn exchange(b, exchange: Exchange) {
                b.exchange = exchange;
            }
            /// The default routing key.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let channel = conn.default_channel().await?;
            /// Queue::new("producer-key-doc").declare(&channel).await?;
            /// // Every publish goes to this queue unless it names another key.
            /// let producer = conn.producer().routing_key("producer-key-doc").build().await?;
            /// producer.publish("hello").send().await?;
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn routing_key(b, routing_key: impl Into<String>) {
                b.routing_key = routing_key.into();
            }
            /// The default serializer (default: json).
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Serializer};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let producer = conn.producer().serializer(Serializer::text()).build().await?;
            /// assert_eq!(producer.serializer().content_type(), "text/plain");
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn serializer(b, serializer: Serializer) {
                b.serializer = serializer;
            }
            /// The default compression (default: none).
            ///
            /// Consumers decompress by the `compression` header, so they need no
            /// setting of their own.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Compression, Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let channel = conn.default_channel().await?;
            /// let queue = Queue::new("producer-compression-doc");
            /// queue.declare(&channel).await?;
            /// let producer = conn
            ///     .producer()
            ///     .routing_key("producer-compression-doc")
            ///     .compression(Compression::Zlib)
            ///     .build()
            ///     .await?;
            /// producer.publish(&"a long, repetitive report ".repeat(100)).send().await?;
            ///
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.compression(), Some("application/x-gzip"));
            /// assert!(message.decode::<String>()?.starts_with("a long"));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn compression(b, compression: Compression) {
                b.compression = Some(compression);
            }
            /// Wait for publisher confirms (default: on). With confirms off,
            /// `send()` returns once the message is handed to the transport.
            ///
            /// Without confirms a message lost with the connection is lost for
            /// good; the gain is throughput.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// let conn = kelp::Connection::new("memory://")?;
            /// let fire_and_forget = conn.producer().confirms(false).build().await?;
            /// assert!(!fire_and_forget.confirms());
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn confirms(b, confirms: bool) {
                b.confirms = confirms;
            }
            /// Declare the exchange when building (default: on).
            ///
            /// Turn it off when the application may not declare (RabbitMQ
            /// permissions) and the exchange is known to exist.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Exchange};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let producer = conn
            ///     .producer()
            ///     .exchange(Exchange::topic("managed-elsewhere-doc"))
            ///     .auto_declare(false)
            ///     .build()
            ///     .await?;
            /// // Nothing was declared: publishing to the missing exchange fails.
            /// assert!(producer.publish("x").send().await.unwrap_err().is_not_found());
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn auto_declare(b, auto_declare: bool) {
                b.auto_declare = auto_declare;
            }
            /// Give every message a fresh UUID `message_id` unless one is set
            /// (default: off, as Kombu). Useful to spot duplicates after a failover.
            ///
            /// See [`Deduplicator`](crate::Deduplicator) for the consuming side.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let channel = conn.default_channel().await?;
            /// let queue = Queue::new("auto-id-doc");
            /// queue.declare(&channel).await?;
            /// let producer = conn.producer().routing_key("auto-id-doc").auto_message_id(true).build().await?;
            /// producer.publish("tracked").send().await?;
            ///
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.properties().message_id.as_ref().map(|id| id.len()), Some(36));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn auto_message_id(b, on: bool) {
                b.auto_message_id = on;
            }
            /// Called for every mandatory message the broker returns as unroutable.
            ///
            /// With confirms on, the publish also fails with
            /// [`Unroutable`](crate::ErrorKind::Unroutable); the callback is the
            /// place to log or park the message.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use std::sync::Arc;
            /// use std::sync::atomic::{AtomicUsize, Ordering};
            /// use kelp::Connection;
            ///
            /// let conn = Connection::new("memory://")?;
            /// let returned = Arc::new(AtomicUsize::new(0));
            /// let counter = returned.clone();
            /// let producer = conn
            ///     .producer()
            ///     .on_return(move |message| {
            ///         eprintln!("nobody took the message for {}", message.routing_key);
            ///         counter.fetch_add(1, Ordering::Relaxed);
            ///     })
            ///     .build()
            ///     .await?;
            /// let sent = producer.publish("lost?").routing_key("on-return-doc-nowhere").mandatory(true).send().await;
            /// assert!(sent.unwrap_err().is_unroutable());
            /// assert_eq!(returned.load(Ordering::Relaxed), 1);
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn on_return<F>(b, callback: F) where [F: Fn(&ReturnedMessage) + Send + Sync + 'static] {
                b.on_return = Some(Arc::new(callback));
            }
        }
    };
}
#[cfg_attr(not(feature = "blocking"), allow(unused_imports))]
pub(crate) use producer_builder_options;

impl ProducerBuilder {
    producer_builder_options!(builder_setters);

    fn new(target: Target) -> ProducerBuilder {
        ProducerBuilder {
            target,
            exchange: Exchange::default_exchange(),
            routing_key: String::new(),
            serializer: Serializer::default(),
            compression: None,
            confirms: true,
            auto_declare: true,
            auto_message_id: false,
            on_return: None,
            retry: None,
            retry_unroutable: false,
            retry_nacked: false,
        }
    }

    pub(crate) fn for_connection(connection: Connection) -> ProducerBuilder {
        ProducerBuilder::new(Target::Connection(connection))
    }

    pub(crate) fn for_channel(channel: Channel) -> ProducerBuilder {
        ProducerBuilder::new(Target::Channel(channel))
    }

    /// Create the producer: puts the channel in confirm mode (unless
    /// confirms are off) and declares the exchange (unless auto_declare is off).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let producer = conn.producer().exchange(Exchange::direct("producer-build-doc")).build().await?;
    /// assert!(producer.confirms());
    /// // The exchange now exists.
    /// let check = Exchange::direct("producer-build-doc").passive(true);
    /// check.declare(producer.channel()).await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn build(self) -> Result<Producer> {
        let channel = match self.target {
            Target::Channel(channel) => channel,
            Target::Connection(connection) => connection.default_channel().await?,
        };
        if self.confirms {
            channel.confirm_select().await?;
        }
        if self.auto_declare && self.exchange.needs_declaring() {
            channel.connection().maybe_declare(&self.exchange).await?;
        }
        Ok(Producer {
            inner: Arc::new(ProducerInner {
                exchange_name: SharedStr::from(self.exchange.name.clone()),
                exchange: self.exchange,
                routing_key: SharedStr::from(self.routing_key),
                serializer: self.serializer,
                compression: self.compression,
                confirms: self.confirms,
                auto_message_id: self.auto_message_id,
                on_return: self.on_return,
                retry: self.retry.unwrap_or_else(|| channel.connection().retry_policy().clone()),
                retry_unroutable: self.retry_unroutable,
                retry_nacked: self.retry_nacked,
                channel,
            }),
        })
    }
}

/// Publishes messages. Cheap to clone; clones share the channel.
///
/// Each [`publish`](Producer::publish) starts a [`Publish`], which takes
/// per-message options and ends with [`send`](Publish::send) or
/// [`enqueue`](Publish::enqueue).
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Queue};
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// Queue::new("hello").declare(&channel).await?;
/// let producer = conn.producer().build().await?;
/// producer
///     .publish(&serde_json::json!({"hello": "world"}))
///     .routing_key("hello")
///     .send()
///     .await?;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Producer {
    inner: Arc<ProducerInner>,
}

struct ProducerInner {
    channel: Channel,
    exchange: Exchange,
    exchange_name: SharedStr,
    routing_key: SharedStr,
    serializer: Serializer,
    compression: Option<Compression>,
    confirms: bool,
    auto_message_id: bool,
    on_return: Option<ReturnCallback>,
    retry: RetryPolicy,
    retry_unroutable: bool,
    retry_nacked: bool,
}

impl Producer {
    /// A producer on `channel`; finish with [`ProducerBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Producer};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// let producer = Producer::builder(&channel).routing_key("producer-of-channel-doc").build().await?;
    /// assert_eq!(producer.routing_key(), "producer-of-channel-doc");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn builder(channel: &Channel) -> ProducerBuilder {
        ProducerBuilder::for_channel(channel.clone())
    }

    /// Publish `body`, serialized with the producer's (or the message's) serializer.
    ///
    /// Anything that implements `serde::Serialize` can be a body.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// struct Invoice {
    ///     id: u32,
    ///     total_cents: u64,
    /// }
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("publish-doc");
    /// queue.declare(&channel).await?;
    /// let producer = conn.producer().build().await?;
    /// let invoice = Invoice { id: 7, total_cents: 12_50 };
    /// producer.publish(&invoice).routing_key("publish-doc").send().await?;
    ///
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// assert_eq!(message.content_type(), Some("application/json"));
    /// assert_eq!(message.decode::<Invoice>()?, invoice);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn publish<'p, T: Serialize + ?Sized>(&'p self, body: &'p T) -> Publish<'p, T> {
        Publish::new(self, Body::Value(body))
    }

    /// Publish bytes as they are: `application/data`, `binary` unless a
    /// content type and encoding are given (Kombu's behaviour for `bytes`).
    ///
    /// For bodies that are already encoded: an image, a protobuf, a file.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("publish-bytes-doc");
    /// queue.declare(&channel).await?;
    /// let producer = conn.producer().routing_key("publish-bytes-doc").build().await?;
    /// let png_header = vec![0x89, b'P', b'N', b'G'];
    /// producer.publish_bytes(png_header.clone()).content_type("image/png").send().await?;
    ///
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// assert_eq!(message.content_type(), Some("image/png"));
    /// assert_eq!(message.body()?.as_ref(), &png_header[..]);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn publish_bytes(&self, body: impl Into<Bytes>) -> Publish<'_, ()> {
        Publish::new(self, Body::Bytes(body.into(), "application/data", "binary"))
    }

    /// Publish text as it is: `text/plain`, `utf-8` (Kombu's behaviour for `str`).
    ///
    /// Unlike `publish("...")`, which writes a JSON string with its quotes.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("publish-text-doc");
    /// queue.declare(&channel).await?;
    /// let producer = conn.producer().routing_key("publish-text-doc").build().await?;
    /// producer.publish_text("plain words").send().await?;
    ///
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// assert_eq!(message.content_type(), Some("text/plain"));
    /// assert_eq!(message.body()?.as_ref(), b"plain words");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn publish_text(&self, body: impl Into<String>) -> Publish<'_, ()> {
        Publish::new(self, Body::Bytes(Bytes::from(body.into()), "text/plain", "utf-8"))
    }

    /// The channel it publishes on.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let producer = conn.producer().build().await?;
    /// // Declare on the producer's own channel.
    /// Queue::new("producer-channel-doc").declare(producer.channel()).await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn channel(&self) -> &Channel {
        &self.inner.channel
    }

    /// The default exchange.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let producer = conn.producer().build().await?;
    /// assert_eq!(producer.exchange(), &Exchange::default_exchange());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn exchange(&self) -> &Exchange {
        &self.inner.exchange
    }

    /// The default routing key.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let producer = conn.producer().routing_key("invoices").build().await?;
    /// assert_eq!(producer.routing_key(), "invoices");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn routing_key(&self) -> &str {
        &self.inner.routing_key
    }

    /// The default serializer.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let producer = conn.producer().build().await?;
    /// assert_eq!(producer.serializer().name(), "json");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn serializer(&self) -> &Serializer {
        &self.inner.serializer
    }

    /// True when publishes wait for broker confirms.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// assert!(conn.producer().build().await?.confirms());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn confirms(&self) -> bool {
        self.inner.confirms
    }
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("exchange", &self.inner.exchange.name)
            .field("routing_key", &self.inner.routing_key)
            .field("serializer", &self.inner.serializer)
            .field("compression", &self.inner.compression)
            .field("confirms", &self.inner.confirms)
            .finish()
    }
}

enum Body<'p, T: ?Sized> {
    Value(&'p T),
    Bytes(Bytes, &'static str, &'static str),
}

/// One publish being prepared; finish with [`send`](Publish::send) (waits
/// for the broker's confirm) or [`enqueue`](Publish::enqueue) (returns a
/// [`Confirmation`] to await later, to keep many publishes in flight).
///
/// The setters override the producer's defaults and fill in the message's
/// [`Properties`] for this one message.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use std::time::Duration;
/// use kelp::{Connection, DeliveryMode, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// let queue = Queue::new("publish-options-doc").max_priority(5);
/// queue.declare(&channel).await?;
/// let producer = conn.producer().build().await?;
/// producer
///     .publish(&serde_json::json!({"to": "ada@example.com"}))
///     .routing_key("publish-options-doc")
///     .priority(5)
///     .delivery_mode(DeliveryMode::Transient)
///     .expiration(Duration::from_secs(60))
///     .header("tenant", "acme")
///     .message_id("mail-1")
///     .app_id("mailer")
///     .send()
///     .await?;
///
/// let message = queue.get(&channel, true).await?.expect("a message");
/// let properties = message.properties();
/// assert_eq!(properties.priority, Some(5));
/// assert_eq!(properties.delivery_mode, Some(1));
/// assert_eq!(properties.expiration.as_deref(), Some("60000"));
/// assert_eq!(message.headers()["tenant"].as_str(), Some("acme"));
/// assert_eq!(properties.message_id.as_deref(), Some("mail-1"));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[must_use = "nothing is published until send() or enqueue() is awaited"]
pub struct Publish<'p, T: ?Sized> {
    producer: &'p Producer,
    body: Body<'p, T>,
    exchange: Option<SharedStr>,
    routing_key: Option<SharedStr>,
    serializer: Option<Serializer>,
    compression: Option<Option<Compression>>,
    mandatory: bool,
    /// Allocated once here and filled in place: the builder stays small to
    /// move, and the transport gets it without another copy.
    content: Arc<Content>,
    declare: Vec<Entity>,
}

/// Every option of a publish, once: expanded into its setters here and into
/// the blocking twin's forwarding setters in `blocking`, so the two faces
/// cannot drift apart. Each item is a setter body on `b: &mut Self`.
macro_rules! publish_options {
    ($expand:ident $(, $($face:tt)*)?) => {
        $expand! {
            $($($face)*;)?
            /// Publish to this exchange instead of the producer's.
            ///
            /// The exchange must exist; see [`declare`](Publish::declare).
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Exchange, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let channel = conn.default_channel().await?;
            /// let audit = Queue::new("publish-exchange-doc").exchange(Exchange::fanout("publish-exchange-doc"));
            /// audit.declare(&channel).await?;
            ///
            /// let producer = conn.producer().build().await?; // default exchange
            /// producer.publish("user deleted").exchange("publish-exchange-doc").send().await?;
            /// assert_eq!(audit.declare(&channel).await?.message_count, 1);
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn exchange(b, name: impl Into<SharedStr>) {
                b.exchange = Some(name.into());
            }
            /// Use this routing key instead of the producer's.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-routing-key-doc");
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// producer.publish("to one queue").routing_key("publish-routing-key-doc").send().await?;
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.routing_key(), "publish-routing-key-doc");
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn routing_key(b, routing_key: impl Into<SharedStr>) {
                b.routing_key = Some(routing_key.into());
            }
            /// Serialize with this serializer instead of the producer's.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue, Serializer};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let channel = conn.default_channel().await?;
            /// let queue = Queue::new("publish-serializer-doc");
            /// queue.declare(&channel).await?;
            /// let producer = conn.producer().routing_key("publish-serializer-doc").build().await?;
            /// producer.publish("plain").serializer(Serializer::text()).send().await?;
            ///
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.content_type(), Some("text/plain"));
            /// assert_eq!(message.decode::<String>()?, "plain");
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn serializer(b, serializer: Serializer) {
                b.serializer = Some(serializer);
            }
            /// Compress with this method (overrides the producer's).
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Compression, Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let channel = conn.default_channel().await?;
            /// let queue = Queue::new("publish-compression-doc");
            /// queue.declare(&channel).await?;
            /// let producer = conn.producer().routing_key("publish-compression-doc").build().await?;
            /// let big = "row,".repeat(10_000);
            /// producer.publish(&big).compression(Compression::Zlib).send().await?;
            ///
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert!(message.raw_body().len() < big.len() / 10);
            /// assert_eq!(message.decode::<String>()?, big);
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn compression(b, compression: Compression) {
                b.compression = Some(Some(compression));
            }
            /// Do not compress, whatever the producer's default.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Compression, Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let channel = conn.default_channel().await?;
            /// let queue = Queue::new("no-compression-doc");
            /// queue.declare(&channel).await?;
            /// let producer = conn
            ///     .producer()
            ///     .routing_key("no-compression-doc")
            ///     .compression(Compression::Brotli)
            ///     .build()
            ///     .await?;
            /// // Too small to be worth compressing.
            /// producer.publish("ok").no_compression().send().await?;
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.compression(), None);
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn no_compression(b) {
                b.compression = Some(None);
            }
            /// Transient or persistent (default: the exchange's, else persistent).
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::DeliveryMode;
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-delivery-mode-doc");
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// producer.publish("cache hint").routing_key("publish-delivery-mode-doc")
            ///     .delivery_mode(DeliveryMode::Transient).send().await?;
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.properties().delivery_mode, Some(1));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn delivery_mode(b, mode: DeliveryMode) {
                b.props().delivery_mode = Some(mode.as_u8());
            }
            /// Return the message if it cannot be routed to any queue.
            ///
            /// Without it, the broker drops such a message silently.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// let conn = kelp::Connection::new("memory://")?;
            /// let producer = conn.producer().build().await?;
            /// let result = producer.publish("hello?").routing_key("mandatory-doc-nowhere").mandatory(true).send().await;
            /// let error = result.unwrap_err();
            /// assert!(error.is_unroutable());
            /// assert_eq!(error.returned_message().map(|m| m.reply_code), Some(312));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn mandatory(b, mandatory: bool) {
                b.mandatory = mandatory;
            }
            /// Message priority (default 0).
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-priority-doc").max_priority(9);
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// producer.publish("batch job").routing_key("publish-priority-doc").send().await?;
            /// producer.publish("user waiting").routing_key("publish-priority-doc").priority(8).send().await?;
            /// let first = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(first.decode::<String>()?, "user waiting"); // overtook the batch job
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn priority(b, priority: u8) {
                b.props().priority = Some(priority);
            }
            /// Label the body with this content type.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-content-type-doc");
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// producer.publish_bytes(&b"<svg/>"[..]).content_type("image/svg+xml")
            ///     .routing_key("publish-content-type-doc").send().await?;
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.content_type(), Some("image/svg+xml"));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn content_type(b, content_type: impl Into<SharedStr>) {
                b.props().content_type = Some(content_type.into());
            }
            /// Label the body with this content encoding.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-content-encoding-doc");
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// // Text in a legacy encoding, labelled so that consumers can read it.
            /// producer.publish_bytes(vec![b'c', b'a', b'f', 0xe9]).content_type("text/plain")
            ///     .content_encoding("latin-1").routing_key("publish-content-encoding-doc").send().await?;
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.decode::<String>()?, "café");
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn content_encoding(b, content_encoding: impl Into<SharedStr>) {
                b.props().content_encoding = Some(content_encoding.into());
            }
            /// Add an application header.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-header-doc");
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// producer.publish("x").routing_key("publish-header-doc").header("trace-id", "4bf92f35").send().await?;
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.headers()["trace-id"].as_str(), Some("4bf92f35"));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn header(b, key: impl Into<String>, value: impl Into<Value>) {
                b.props().headers.insert(key.into(), value.into());
            }
            /// Add application headers.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{FieldTable, Value};
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-headers-doc");
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// let mut context = FieldTable::new();
            /// context.insert("tenant".into(), Value::from("acme"));
            /// context.insert("attempt".into(), Value::from(1));
            /// producer.publish("x").routing_key("publish-headers-doc").headers(context).send().await?;
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.headers().len(), 2);
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn headers(b, headers: FieldTable) {
                b.props().headers.extend(headers);
            }
            /// Per-message TTL; sent as milliseconds text, as Kombu does.
            ///
            /// A message still waiting in its queue after `ttl` is dropped (or
            /// dead-lettered).
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use std::time::Duration;
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let channel = conn.default_channel().await?;
            /// let queue = Queue::new("expiration-doc");
            /// queue.declare(&channel).await?;
            /// let producer = conn.producer().routing_key("expiration-doc").build().await?;
            /// producer.publish("flash sale").expiration(Duration::from_millis(20)).send().await?;
            ///
            /// tokio::time::sleep(Duration::from_millis(50)).await;
            /// assert!(queue.get(&channel, true).await?.is_none());
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn expiration(b, ttl: Duration) {
                b.props().expiration = Some(SharedStr::from(ttl.as_millis().to_string()));
            }
            /// Correlation id (replies carry the request's).
            ///
            /// # Examples
            ///
            /// A request that asks for its answer on a private queue:
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let channel = conn.default_channel().await?;
            /// Queue::new("rpc-doc-requests").declare(&channel).await?;
            /// let replies = Queue::server_named().declare(&channel).await?;
            ///
            /// let producer = conn.producer().build().await?;
            /// producer
            ///     .publish(&serde_json::json!({"op": "add", "args": [2, 3]}))
            ///     .routing_key("rpc-doc-requests")
            ///     .reply_to(replies.name.as_str())
            ///     .correlation_id("req-1")
            ///     .send()
            ///     .await?;
            ///
            /// // The server answers where it was told to, with the same id.
            /// let request = Queue::new("rpc-doc-requests").get(&channel, true).await?.expect("a request");
            /// let properties = request.properties();
            /// let reply_to = properties.reply_to.clone().expect("a reply queue");
            /// let id = properties.correlation_id.clone().expect("an id");
            /// producer.publish(&5).routing_key(reply_to).correlation_id(id).send().await?;
            ///
            /// let answer = Queue::new(replies.name.as_str()).get(&channel, true).await?.expect("an answer");
            /// assert_eq!(answer.properties().correlation_id.as_deref(), Some("req-1"));
            /// assert_eq!(answer.decode::<i32>()?, 5);
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn correlation_id(b, id: impl Into<SharedStr>) {
                b.props().correlation_id = Some(id.into());
            }
            /// Where replies should go.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-reply-to-doc");
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// producer.publish("status?").routing_key("publish-reply-to-doc").reply_to("status-replies").send().await?;
            /// let request = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(request.properties().reply_to.as_deref(), Some("status-replies"));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn reply_to(b, queue: impl Into<SharedStr>) {
                b.props().reply_to = Some(queue.into());
            }
            /// Application message id.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-message-id-doc");
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// // An id derived from the business key makes retries recognisable.
            /// producer.publish("charge").routing_key("publish-message-id-doc").message_id("order-1234-charge").send().await?;
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.properties().message_id.as_deref(), Some("order-1234-charge"));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn message_id(b, id: impl Into<SharedStr>) {
                b.props().message_id = Some(id.into());
            }
            /// Timestamp in seconds since the Unix epoch.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-timestamp-doc");
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// // When the event happened, not when it was published.
            /// producer.publish("meter reading").routing_key("publish-timestamp-doc").timestamp(1_700_000_000).send().await?;
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.properties().timestamp, Some(1_700_000_000));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn timestamp(b, seconds: u64) {
                b.props().timestamp = Some(seconds);
            }
            /// Timestamp of now.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let channel = conn.default_channel().await?;
            /// let queue = Queue::new("timestamp-doc");
            /// queue.declare(&channel).await?;
            /// let producer = conn.producer().routing_key("timestamp-doc").build().await?;
            /// producer.publish("tick").timestamp_now().send().await?;
            ///
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert!(message.properties().timestamp.is_some_and(|t| t > 1_700_000_000));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn timestamp_now(b) {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                b.props().timestamp = Some(now);
            }
            /// Application message type (AMQP `type`).
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-kind-doc");
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// producer.publish("x").routing_key("publish-kind-doc").kind("invoice.paid").send().await?;
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.properties().kind.as_deref(), Some("invoice.paid"));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn kind(b, kind: impl Into<SharedStr>) {
                b.props().kind = Some(kind.into());
            }
            /// Application id.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-app-id-doc");
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// producer.publish("x").routing_key("publish-app-id-doc").app_id("billing").send().await?;
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.properties().app_id.as_deref(), Some("billing"));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn app_id(b, app_id: impl Into<SharedStr>) {
                b.props().app_id = Some(app_id.into());
            }
            /// User id (RabbitMQ checks it against the connection's user).
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// # use kelp::{Connection, Queue};
            /// # let conn = Connection::new("memory://")?;
            /// # let channel = conn.default_channel().await?;
            /// # let queue = Queue::new("publish-user-id-doc");
            /// # queue.declare(&channel).await?;
            /// # let producer = conn.producer().build().await?;
            /// // On RabbitMQ this must be the connection's own user name.
            /// producer.publish("x").routing_key("publish-user-id-doc").user_id("guest").send().await?;
            /// let message = queue.get(&channel, true).await?.expect("a message");
            /// assert_eq!(message.properties().user_id.as_deref(), Some("guest"));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn user_id(b, user_id: impl Into<SharedStr>) {
                b.props().user_id = Some(user_id.into());
            }
            /// Declare this entity first (cached per connection, as Kombu's `declare=`).
            ///
            /// Makes sure the destination exists without a separate step; only the
            /// first publish on a connection pays for the declaration.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let producer = conn.producer().build().await?;
            /// let queue = Queue::new("publish-declare-doc");
            /// producer.publish("first").routing_key("publish-declare-doc").declare(&queue).send().await?;
            /// assert_eq!(queue.declare(producer.channel()).await?.message_count, 1);
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn declare(b, entity: impl Into<Entity>) {
                b.declare.push(entity.into());
            }
        }
    };
}
#[cfg_attr(not(feature = "blocking"), allow(unused_imports))]
pub(crate) use publish_options;

impl<'p, T: Serialize + ?Sized> Publish<'p, T> {
    publish_options!(builder_setters);

    fn new(producer: &'p Producer, body: Body<'p, T>) -> Publish<'p, T> {
        Publish {
            producer,
            body,
            exchange: None,
            routing_key: None,
            serializer: None,
            compression: None,
            mandatory: false,
            content: Arc::new(Content::default()),
            declare: Vec::new(),
        }
    }

    fn props(&mut self) -> &mut Properties {
        // Unique until prepare() hands it over, so this never clones.
        &mut Arc::make_mut(&mut self.content).properties
    }

    /// Publish and wait until the broker took responsibility for the
    /// message (its confirm, when the producer uses confirms).
    ///
    /// While the connection is down (or being recovered), the publish is
    /// retried by the producer's [`RetryPolicy`] — on another broker if need
    /// be — and fails with a clear error once the policy's retries or
    /// deadline run out: it never hangs. A publish that reached a broker
    /// that then died unconfirmed is published again after recovery (at
    /// least once, possibly twice; never lost).
    ///
    /// Fails with [`ErrorKind::Unroutable`] for a mandatory message nobody
    /// could take (when confirms are on) and [`ErrorKind::Nacked`] when the
    /// broker refused it; neither is retried.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// Queue::new("send-doc").declare(&channel).await?;
    /// let producer = conn.producer().routing_key("send-doc").build().await?;
    /// // Once this returns Ok, the broker has the message.
    /// producer.publish(&serde_json::json!({"event": "signup"})).send().await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn send(self) -> Result<()> {
        let producer: &'p ProducerInner = &self.producer.inner;
        self.declare_all().await?;
        let message = self.prepare()?;
        let on_return = if message.mandatory { producer.on_return.clone() } else { None };
        let started = std::time::Instant::now();
        let mut retries = 0u32;
        loop {
            let attempt = async {
                let confirm = producer.channel.publish(message.clone()).await?;
                Confirmation {
                    confirm,
                    confirms: producer.confirms,
                    on_return: on_return.clone(),
                }
                .await
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(e)
                    if (e.kind() == ErrorKind::Unroutable && producer.retry_unroutable)
                        || (e.kind() == ErrorKind::Nacked && producer.retry_nacked) =>
                {
                    if e.kind() == ErrorKind::Nacked {
                        producer.channel.core.reset().await;
                    }
                    // Fatal for the generic loop; retried here on request.
                    let retryable = Error::new(ErrorKind::Timeout, e.message().to_owned());
                    if pause_or_give_up(&producer.retry, retryable, &mut retries, started).await.is_err() {
                        return Err(e);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::Nacked | ErrorKind::Unroutable) => return Err(e),
                Err(e) => pause_or_give_up(&producer.retry, e, &mut retries, started).await?,
            }
        }
    }

    async fn declare_all(&self) -> Result<()> {
        if self.declare.is_empty() {
            return Ok(());
        }
        let producer = &self.producer.inner;
        // Boxed so that publishes without declarations keep a small future.
        Box::pin(async {
            for entity in &self.declare {
                producer.channel.connection().maybe_declare(entity.clone()).await?;
            }
            Ok::<_, crate::error::Error>(())
        })
        .await
    }

    /// Publish, and return the pending confirmation without waiting for it
    /// (one attempt: while the connection is down this fails at once; the
    /// confirmation itself survives a recovery).
    ///
    /// Waiting for each confirm in turn costs a round trip per message;
    /// enqueueing a batch and awaiting the confirmations afterwards does not.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("enqueue-doc");
    /// queue.declare(&channel).await?;
    /// let producer = conn.producer().routing_key("enqueue-doc").build().await?;
    ///
    /// let mut pending = Vec::new();
    /// for n in 0..100 {
    ///     pending.push(producer.publish(&n).enqueue().await?);
    /// }
    /// for confirmation in pending {
    ///     confirmation.await?;
    /// }
    /// assert_eq!(queue.declare(&channel).await?.message_count, 100);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn enqueue(self) -> Result<Confirmation> {
        let producer: &'p ProducerInner = &self.producer.inner;
        self.declare_all().await?;
        let message = self.prepare()?;
        let mandatory = message.mandatory;
        let confirm = producer.channel.publish(message).await?;
        Ok(Confirmation {
            confirm,
            confirms: producer.confirms,
            on_return: if mandatory { producer.on_return.clone() } else { None },
        })
    }

    /// Serialize, compress and fill in the properties as Kombu does.
    fn prepare(self) -> Result<OutgoingMessage> {
        let producer = &self.producer.inner;
        let mut content = self.content;
        let Content { properties, body: slot } = Arc::make_mut(&mut content);
        let body = match self.body {
            Body::Value(value) => {
                let serializer = self.serializer.as_ref().unwrap_or(&producer.serializer);
                if properties.content_type.is_none() {
                    properties.content_type = Some(SharedStr::from(serializer.content_type()));
                }
                if properties.content_encoding.is_none() {
                    properties.content_encoding = Some(SharedStr::from(serializer.content_encoding()));
                }
                serializer.encode(value)?
            }
            Body::Bytes(bytes, content_type, content_encoding) => {
                if properties.content_type.is_none() {
                    properties.content_type = Some(SharedStr::from_static(content_type));
                }
                if properties.content_encoding.is_none() {
                    properties.content_encoding = Some(SharedStr::from_static(content_encoding));
                }
                bytes
            }
        };
        let compression = self.compression.unwrap_or(producer.compression);
        let body = match compression {
            Some(method) => {
                properties
                    .headers
                    .insert("compression".to_owned(), Value::from(method.mime_type()));
                method.compress(&body)?
            }
            None => body,
        };
        if properties.delivery_mode.is_none() {
            let mode = producer.exchange.delivery_mode.unwrap_or_default();
            properties.delivery_mode = Some(mode.as_u8());
        }
        if properties.priority.is_none() {
            properties.priority = Some(0); // Kombu always sends priority 0
        }
        if producer.auto_message_id && properties.message_id.is_none() {
            properties.message_id = Some(SharedStr::from(crate::content::ids::uuid4()));
        }
        *slot = body;
        Ok(OutgoingMessage {
            exchange: self.exchange.unwrap_or_else(|| producer.exchange_name.clone()),
            routing_key: self.routing_key.unwrap_or_else(|| producer.routing_key.clone()),
            mandatory: self.mandatory,
            content,
        })
    }
}

/// A publish handed to the transport, awaiting the broker's confirm.
///
/// Resolves to `Ok(())` once the broker took responsibility, or to the
/// error that tells why not.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Queue};
///
/// let conn = Connection::new("memory://")?;
/// Queue::new("confirmation-doc").declare(&conn.default_channel().await?).await?;
/// let producer = conn.producer().routing_key("confirmation-doc").build().await?;
///
/// let confirmation = producer.publish("in flight").enqueue().await?;
/// // ... prepare the next message meanwhile ...
/// confirmation.await?; // the broker has it
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[must_use = "a confirmation tells whether the broker took the message"]
pub struct Confirmation {
    confirm: Confirm,
    /// With confirms off, a nack or a return is not an error of the publish.
    confirms: bool,
    on_return: Option<ReturnCallback>,
}

impl Future for Confirmation {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let result = match Pin::new(&mut this.confirm).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        Poll::Ready(match result {
            Err(e) if e.kind() == ErrorKind::Unroutable => {
                if let (Some(callback), Some(returned)) = (&this.on_return, e.returned_message()) {
                    callback(returned);
                }
                if this.confirms { Err(e) } else { Ok(()) }
            }
            Err(e) if e.kind() == ErrorKind::Nacked && !this.confirms => Ok(()),
            result => result,
        })
    }
}

impl fmt::Debug for Confirmation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Confirmation")
    }
}

/// The ways to start a producer, beside its builder.
impl Connection {
    /// A producer on the default channel; finish with
    /// [`ProducerBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let producer = conn
    ///     .producer()
    ///     .exchange(Exchange::topic("conn-producer-doc"))
    ///     .build()
    ///     .await?;
    /// assert_eq!(producer.exchange().name, "conn-producer-doc");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder::for_connection(self.clone())
    }
}

impl Channel {
    /// A producer on this channel; finish with [`ProducerBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// let producer = channel.producer().routing_key("channel-producer-doc").build().await?;
    /// assert_eq!(producer.routing_key(), "channel-producer-doc");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder::for_channel(self.clone())
    }
}

impl fmt::Debug for ProducerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProducerBuilder")
            .field("exchange", &self.exchange.name)
            .field("routing_key", &self.routing_key)
            .field("serializer", &self.serializer.name())
            .field("compression", &self.compression)
            .field("confirms", &self.confirms)
            .finish_non_exhaustive()
    }
}

impl<T: ?Sized> fmt::Debug for Publish<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .field("mandatory", &self.mandatory)
            .field("properties", &self.content.properties)
            .finish_non_exhaustive()
    }
}
