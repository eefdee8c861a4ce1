//! [`Consumer`]: receives messages from one or more queues, as an async
//! `Stream` or through a handler (Kombu's `Consumer`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::model::setters::builder_setters;
use crate::model::channel::Channel;
use crate::codec::compression::DEFAULT_DECOMPRESSION_LIMIT;
use crate::model::connection::Connection;
use crate::model::entity::Queue;
use crate::model::message::{DecodeSettings, Message};
use crate::codec::serialization::Accept;
use crate::model::message::Acker;
use crate::recovery::subscription::{ConsumerRecord, next_epoch};
use crate::transport::{CancelReason, ConsumeArgs, ConsumerEvent};
use crate::content::text::SharedStr;
use crate::content::value::FieldTable;
use crate::error::{Error, ErrorKind, Result};

type BoxFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// A hook for messages that cannot be decoded (or are not in the accept
/// list); it receives the message to settle it.
///
/// Set one with [`ConsumerBuilder::on_decode_error`], which takes a plain
/// async closure.
pub type DecodeErrorHandler = Arc<dyn Fn(Message, Error) -> BoxFuture + Send + Sync>;

enum Target {
    Connection(Connection),
    Channel(Channel),
}

/// Options of a [`Consumer`]; finish with [`build`](ConsumerBuilder::build).
///
/// Get one from [`Connection::consumer`], [`Channel::consumer`] or
/// [`Consumer::builder`].
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Accept, Connection, Exchange, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let images = Exchange::direct("consumer-builder-doc");
/// let consumer = conn
///     .consumer([Queue::new("consumer-builder-doc-thumbs").exchange(images.clone()).routing_key("thumb")])
///     .queue(Queue::new("consumer-builder-doc-full").exchange(images).routing_key("full"))
///     .prefetch_count(20)
///     .accept(Accept::new(["json", "msgpack"])?)
///     .tag_prefix("thumbnailer-")
///     .build()
///     .await?;
/// assert_eq!(consumer.queues().len(), 2);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[must_use = "a builder does nothing until built"]
pub struct ConsumerBuilder {
    target: Target,
    queues: Vec<Queue>,
    no_ack: bool,
    prefetch_count: Option<u16>,
    accept: Option<Accept>,
    tag_prefix: Option<String>,
    auto_declare: bool,
    exclusive: bool,
    decompression_limit: usize,
    on_decode_error: Option<DecodeErrorHandler>,
    arguments: FieldTable,
}

/// Every option of a consumer builder, once: expanded into its setters here and into
/// the blocking twin's forwarding setters in `blocking`, so the two faces
/// cannot drift apart. Each item is a setter body on `b: &mut Self`.
macro_rules! consumer_builder_options {
    ($expand:ident $(, $($face:tt)*)?) => {
        $expand! {
            $($($face)*;)?
            /// Consume from this queue too.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let consumer = conn
            ///     .consumer([Queue::new("consumer-queue-doc-high")])
            ///     .queue(Queue::new("consumer-queue-doc-low"))
            ///     .build()
            ///     .await?;
            /// assert_eq!(consumer.queues(), ["consumer-queue-doc-high", "consumer-queue-doc-low"]);
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn queue(b, queue: Queue) {
                b.queues.push(queue);
            }
            /// Consume from these queues too.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let regions = ["eu", "us", "ap"].map(|r| Queue::new(format!("consumer-queues-doc-{r}")));
            /// let consumer = conn.consumer([]).queues(regions).build().await?;
            /// assert_eq!(consumer.queues().len(), 3);
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn queues<I>(b, queues: I) where [I: IntoIterator<Item = Queue>] {
                b.queues.extend(queues);
            }
            /// The broker forgets messages as it sends them: no acks, no redelivery.
            ///
            /// Fast, but a message in flight when the consumer dies is lost. Fine
            /// for data that the next message makes obsolete.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let mut consumer = conn.consumer([Queue::new("no-ack-doc")]).no_ack(true).build().await?;
            /// conn.producer().routing_key("no-ack-doc").build().await?.publish(&21.5).send().await?;
            ///
            /// let reading = consumer.next().await.expect("a message")?;
            /// assert_eq!(reading.decode::<f64>()?, 21.5); // nothing to settle
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn no_ack(b, no_ack: bool) {
                b.no_ack = no_ack;
            }
            /// At most this many unacknowledged messages in flight (basic.qos);
            /// unset leaves the channel's setting, 0 means unlimited.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// // Slow jobs: take one at a time, so other workers get the rest.
            /// let consumer = conn.consumer([Queue::new("prefetch-doc")]).prefetch_count(1).build().await?;
            /// # drop(consumer);
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn prefetch_count(b, n: u16) {
                b.prefetch_count = Some(n);
            }
            /// The content types (or serializer names) this consumer decodes
            /// (default: every registered serializer).
            ///
            /// A message of another content type fails to decode with a
            /// [`ContentDisallowed`](crate::ErrorKind::ContentDisallowed) error.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Accept, Connection, Queue, Serializer};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let mut consumer = conn
            ///     .consumer([Queue::new("accept-doc")])
            ///     .accept(Accept::new(["json"])?)
            ///     .build()
            ///     .await?;
            /// let producer = conn.producer().routing_key("accept-doc").build().await?;
            /// producer.publish("plain text?").serializer(Serializer::text()).send().await?;
            ///
            /// let message = consumer.next().await.expect("a message")?;
            /// assert!(message.decode::<String>().unwrap_err().is_content_disallowed());
            /// message.reject().await?;
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn accept(b, accept: Accept) {
                b.accept = Some(accept);
            }
            /// Consumer tags are this prefix followed by a number.
            ///
            /// A recognisable prefix tells who consumes in the broker's management
            /// tools.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let consumer = conn.consumer([Queue::new("tag-prefix-doc")]).tag_prefix("mailer-").build().await?;
            /// assert!(consumer.consumer_tags()[0].starts_with("mailer-"));
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn tag_prefix(b, prefix: impl Into<String>) {
                b.tag_prefix = Some(prefix.into());
            }
            /// Declare the queues (and their exchanges and bindings) before
            /// consuming (default: on).
            ///
            /// Off, the queues must already exist.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let missing = conn.consumer([Queue::new("auto-declare-doc")]).auto_declare(false).build().await;
            /// assert!(missing.unwrap_err().is_not_found());
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn auto_declare(b, auto_declare: bool) {
                b.auto_declare = auto_declare;
            }
            /// Be the only consumer of the queues.
            ///
            /// Keeps strict message order when only one process may handle a queue.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let queue = Queue::new("exclusive-consumer-doc");
            /// let only = conn.channel().await?.consumer([queue.clone()]).exclusive(true).build().await?;
            /// let second = conn.channel().await?.consumer([queue]).build().await;
            /// assert!(second.unwrap_err().is_access_refused());
            /// # drop(only);
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn exclusive(b, exclusive: bool) {
                b.exclusive = exclusive;
            }
            /// The largest body decompression may produce (default 128 MiB).
            ///
            /// Protects the consumer from a small compressed body that expands to
            /// gigabytes.
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Compression, Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let mut consumer = conn
            ///     .consumer([Queue::new("decompression-limit-doc")])
            ///     .decompression_limit(1024)
            ///     .build()
            ///     .await?;
            /// let producer = conn.producer().routing_key("decompression-limit-doc").build().await?;
            /// producer.publish(&"0".repeat(100_000)).compression(Compression::Zlib).send().await?;
            ///
            /// let message = consumer.next().await.expect("a message")?;
            /// assert!(message.decode::<String>().unwrap_err().is_limit_exceeded());
            /// message.reject().await?;
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn decompression_limit(b, bytes: usize) {
                b.decompression_limit = bytes;
            }
            /// A consumer argument for every queue (e.g. `x-priority`).
            ///
            /// # Examples
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// // On RabbitMQ, this consumer is served before those of lower priority.
            /// let consumer = conn.consumer([Queue::new("consumer-argument-doc")]).argument("x-priority", 5).build().await?;
            /// # drop(consumer);
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn argument(b, key: impl Into<String>, value: impl Into<crate::content::value::Value>) {
                b.arguments.insert(key.into(), value.into());
            }
            /// Called by [`Consumer::run_decoded`] for a message that cannot be
            /// decoded or whose content type is not accepted; it gets the message to
            /// reject, requeue or ack it. Returning an error stops the run.
            ///
            /// # Examples
            ///
            /// Drop malformed messages and go on with the rest:
            ///
            /// ```
            /// # async fn demo() -> kelp::Result<()> {
            /// use kelp::{Connection, Error, Queue};
            ///
            /// let conn = Connection::new("memory://")?;
            /// let mut consumer = conn
            ///     .consumer([Queue::new("on-decode-error-doc")])
            ///     .on_decode_error(|message, error| async move {
            ///         eprintln!("dropping a bad message: {error}");
            ///         message.reject().await
            ///     })
            ///     .build()
            ///     .await?;
            /// let producer = conn.producer().routing_key("on-decode-error-doc").build().await?;
            /// producer.publish("twelve").send().await?; // not a number
            /// producer.publish(&12).send().await?;
            /// producer.publish(&0).send().await?; // 0 means: stop
            ///
            /// let mut total = 0;
            /// let stopped = consumer
            ///     .run_decoded(|n: u32, message| {
            ///         total += n;
            ///         async move {
            ///             message.ack().await?;
            ///             if n == 0 { Err(Error::from_handler("stop requested")) } else { Ok(()) }
            ///         }
            ///     })
            ///     .await;
            /// assert_eq!(total, 12);
            /// assert_eq!(stopped.unwrap_err().message(), "stop requested");
            /// # Ok(()) }
            /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
            /// ```
            fn on_decode_error<F, Fut>(b, handler: F) where [F: Fn(crate::model::message::Message, Error) -> Fut + Send + Sync + 'static, Fut: Future<Output = Result<()>> + Send + 'static] {
                b.on_decode_error = Some(Arc::new(move |m, e| Box::pin(handler(m, e))));
            }
        }
    };
}
#[cfg_attr(not(feature = "blocking"), allow(unused_imports))]
pub(crate) use consumer_builder_options;

impl ConsumerBuilder {
    consumer_builder_options!(builder_setters);

    fn new(target: Target) -> ConsumerBuilder {
        ConsumerBuilder {
            target,
            queues: Vec::new(),
            no_ack: false,
            prefetch_count: None,
            accept: None,
            tag_prefix: None,
            auto_declare: true,
            exclusive: false,
            decompression_limit: DEFAULT_DECOMPRESSION_LIMIT,
            on_decode_error: None,
            arguments: FieldTable::new(),
        }
    }

    pub(crate) fn for_connection(connection: Connection) -> ConsumerBuilder {
        ConsumerBuilder::new(Target::Connection(connection))
    }

    pub(crate) fn for_channel(channel: Channel) -> ConsumerBuilder {
        ConsumerBuilder::new(Target::Channel(channel))
    }

    /// Declare (unless auto_declare is off), set the prefetch and start
    /// consuming every queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let consumer = conn.consumer([Queue::new("consumer-build-doc")]).build().await?;
    /// assert_eq!(consumer.queues(), ["consumer-build-doc"]);
    ///
    /// // Without a queue there is nothing to consume.
    /// assert!(conn.consumer([]).build().await.unwrap_err().is_config());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn build(self) -> Result<Consumer> {
        if self.queues.is_empty() {
            return Err(Error::config("a consumer needs at least one queue"));
        }
        let channel = match self.target {
            Target::Channel(channel) => channel,
            Target::Connection(connection) => connection.default_channel().await?,
        };
        let mut names = Vec::with_capacity(self.queues.len());
        for queue in &self.queues {
            let name = if self.auto_declare {
                queue.declare(&channel).await?.name
            } else {
                queue.name.clone()
            };
            names.push(name);
        }
        if let Some(n) = self.prefetch_count {
            channel.qos(n, false).await?;
        }
        let prefix = self.tag_prefix.unwrap_or_else(default_tag_prefix);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut records = Vec::with_capacity(names.len());
        for (queue, name) in self.queues.iter().zip(names) {
            static NEXT: AtomicU64 = AtomicU64::new(1);
            let tag = SharedStr::from(format!("{prefix}{}", NEXT.fetch_add(1, Ordering::Relaxed)));
            let mut arguments = queue.consumer_arguments.clone();
            arguments.extend(self.arguments.clone());
            let args = ConsumeArgs {
                queue: name,
                consumer_tag: tag,
                no_ack: self.no_ack,
                exclusive: self.exclusive,
                arguments,
                epoch: next_epoch(),
            };
            let (tag, on) = channel.consume(args.clone(), tx.clone()).await?;
            let record = Arc::new(ConsumerRecord::new(channel.core.clone(), &args, tag, tx.clone(), on));
            channel.connection().supervisor().register_consumer(&record);
            records.push(record);
        }
        drop(tx);
        Ok(Consumer {
            recovers: channel.connection().supervisor().recovers(),
            channel,
            rx,
            records,
            settings: Arc::new(DecodeSettings {
                accept: self.accept.unwrap_or_default(),
                decompression_limit: self.decompression_limit,
            }),
            no_ack: self.no_ack,
            on_decode_error: self.on_decode_error,
            runtime: tokio::runtime::Handle::try_current().ok(),
        })
    }
}

fn default_tag_prefix() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX
        .get_or_init(|| format!("kelp.ctag-{:08x}-", fastrand::u32(..)))
        .clone()
}

/// Receives messages. Use it as a [`Stream`] of `Result<Message>`, with
/// [`next`](Consumer::next), or with [`run`](Consumer::run) and a handler.
///
/// The stream yields an error when the broker cancels a subscription (its
/// queue was deleted, its channel closed) and ends once no subscription is
/// left. Dropping a consumer cancels it and gives back to the broker the
/// messages it had received but not handed out.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let mut consumer = conn.consumer([Queue::new("consumer-doc")]).prefetch_count(10).build().await?;
/// let producer = conn.producer().routing_key("consumer-doc").build().await?;
/// for city in ["Oslo", "Lima"] {
///     producer.publish(city).send().await?;
/// }
///
/// let mut cities = Vec::new();
/// while cities.len() < 2 {
///     let message = consumer.next().await.expect("the consumer is live")?;
///     cities.push(message.decode::<String>()?);
///     message.ack().await?;
/// }
/// assert_eq!(cities, ["Oslo", "Lima"]);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct Consumer {
    channel: Channel,
    rx: mpsc::UnboundedReceiver<ConsumerEvent>,
    /// One per queue; kept across recoveries.
    records: Vec<Arc<ConsumerRecord>>,
    /// The connection recovers: a lost connection is not the end.
    recovers: bool,
    settings: Arc<DecodeSettings>,
    no_ack: bool,
    on_decode_error: Option<DecodeErrorHandler>,
    runtime: Option<tokio::runtime::Handle>,
}

impl Consumer {
    /// A consumer on `channel`; finish with [`ConsumerBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Consumer, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// let consumer = Consumer::builder(&channel).queue(Queue::new("consumer-builder-fn-doc")).build().await?;
    /// assert_eq!(consumer.queues(), ["consumer-builder-fn-doc"]);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn builder(channel: &Channel) -> ConsumerBuilder {
        ConsumerBuilder::for_channel(channel.clone())
    }

    /// The next message; `None` once the consumer was cancelled and drained.
    ///
    /// Waits as long as it takes; wrap it in `tokio::time::timeout` to
    /// bound the wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use std::time::Duration;
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let mut consumer = conn.consumer([Queue::new("next-doc")]).build().await?;
    /// conn.producer().routing_key("next-doc").build().await?.publish("ping").send().await?;
    ///
    /// let message = consumer.next().await.expect("a message")?;
    /// assert_eq!(message.decode::<String>()?, "ping");
    /// message.ack().await?;
    ///
    /// // Nothing more arrives.
    /// let idle = tokio::time::timeout(Duration::from_millis(20), consumer.next()).await;
    /// assert!(idle.is_err());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn next(&mut self) -> Option<Result<Message>> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    /// The next message, or `None` when none came within `timeout`. An
    /// error when the consumer ended (cancelled, connection closed).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use std::time::Duration;
    /// let conn = kelp::Connection::new("memory://")?;
    /// let mut consumer = conn.consumer([kelp::Queue::new("next-timeout-doc")]).build().await?;
    /// assert!(consumer.next_timeout(Duration::from_millis(20)).await?.is_none());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn next_timeout(&mut self, timeout: std::time::Duration) -> Result<Option<Message>> {
        match tokio::time::timeout(timeout, self.next()).await {
            Err(_) => Ok(None),
            Ok(Some(message)) => message.map(Some),
            Ok(None) => Err(Error::new(ErrorKind::Cancelled, "the consumer has ended")),
        }
    }

    /// Take the messages that arrive until `timeout` passes without one,
    /// at most `limit` (Kombu's `drain_consumer` / `itermessages`). They
    /// are not settled: ack each.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use std::time::Duration;
    /// let conn = kelp::Connection::new("memory://")?;
    /// let mut consumer = conn.consumer([kelp::Queue::new("drain-doc")]).build().await?;
    /// let producer = conn.producer().routing_key("drain-doc").build().await?;
    /// for i in 0..3 {
    ///     producer.publish(&i).send().await?;
    /// }
    /// let drained = consumer.drain(Duration::from_millis(100), 10).await?;
    /// assert_eq!(drained.len(), 3);
    /// for message in drained {
    ///     message.ack().await?;
    /// }
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn drain(&mut self, timeout: std::time::Duration, limit: usize) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        while out.len() < limit {
            match self.next_timeout(timeout).await? {
                Some(message) => out.push(message),
                None => break,
            }
        }
        Ok(out)
    }

    /// The consumer tags, one per queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let consumer = conn
    ///     .consumer([Queue::new("tags-doc-a"), Queue::new("tags-doc-b")])
    ///     .build()
    ///     .await?;
    /// assert_eq!(consumer.consumer_tags().len(), 2);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn consumer_tags(&self) -> Vec<&str> {
        self.records.iter().map(|r| r.tag.as_str()).collect()
    }

    /// The queues consumed (with server-generated names resolved, and
    /// followed to their new names after a recovery).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let consumer = conn.consumer([Queue::new("queues-doc"), Queue::server_named()]).build().await?;
    /// let queues = consumer.queues();
    /// assert_eq!(queues[0], "queues-doc");
    /// assert!(queues[1].starts_with("amq.gen-")); // the name the broker chose
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn queues(&self) -> Vec<String> {
        self.records.iter().map(|r| r.queue()).collect()
    }

    /// The channel it consumes on.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let consumer = conn.consumer([Queue::new("consumer-channel-doc")]).build().await?;
    /// consumer.channel().qos(50, false).await?; // for consumers created later
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Stop consuming every queue. Messages already received can still be
    /// read from the stream and settled.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let mut consumer = conn.consumer([Queue::new("cancel-doc")]).build().await?;
    /// consumer.cancel().await?;
    /// assert!(consumer.queues().is_empty());
    /// assert!(consumer.next().await.is_none()); // the stream has ended
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn cancel(&mut self) -> Result<()> {
        let records = std::mem::take(&mut self.records);
        let mut first_error = None;
        for record in records {
            if let Err(e) = self.end(&record).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Stop consuming one queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let mut consumer = conn
    ///     .consumer([Queue::new("cancel-one-doc-a"), Queue::new("cancel-one-doc-b")])
    ///     .build()
    ///     .await?;
    /// consumer.cancel_by_queue("cancel-one-doc-a").await?;
    /// assert_eq!(consumer.queues(), ["cancel-one-doc-b"]);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn cancel_by_queue(&mut self, queue: &str) -> Result<()> {
        let mut result = Ok(());
        let mut kept = Vec::with_capacity(self.records.len());
        for record in std::mem::take(&mut self.records) {
            if record.queue() == queue {
                if let Err(e) = self.end(&record).await {
                    result = Err(e);
                }
            } else {
                kept.push(record);
            }
        }
        self.records = kept;
        result
    }

    async fn end(&self, record: &Arc<ConsumerRecord>) -> Result<()> {
        self.channel.connection().supervisor().forget_consumer(record);
        let current = record.subscription();
        match current.channel.cancel(&record.tag).await {
            // The connection is gone: so is the subscription.
            Err(e) if e.is_connection() || e.is_closed() => Ok(()),
            other => other,
        }
    }

    /// Call `handler` for every message until the consumer ends or the
    /// handler fails. The handler settles each message (ack, reject, requeue)
    /// and may use its own error type, as long as kelp's errors convert into it.
    ///
    /// # Examples
    ///
    /// A worker that stops at a "shutdown" message, with an application
    /// error type:
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// #[derive(Debug)]
    /// enum AppError {
    ///     Broker(kelp::Error),
    ///     Shutdown,
    /// }
    /// impl From<kelp::Error> for AppError {
    ///     fn from(e: kelp::Error) -> AppError {
    ///         AppError::Broker(e)
    ///     }
    /// }
    ///
    /// let conn = Connection::new("memory://")?;
    /// let mut consumer = conn.consumer([Queue::new("run-doc")]).build().await?;
    /// let producer = conn.producer().routing_key("run-doc").build().await?;
    /// for command in ["resize", "crop", "shutdown"] {
    ///     producer.publish(command).send().await?;
    /// }
    ///
    /// let mut done = Vec::new();
    /// let result = consumer
    ///     .run(|message| {
    ///         let command: Result<String, _> = message.decode();
    ///         let stop = matches!(&command, Ok(c) if c == "shutdown");
    ///         done.extend(command.ok().filter(|_| !stop));
    ///         async move {
    ///             message.ack().await?;
    ///             if stop { Err(AppError::Shutdown) } else { Ok(()) }
    ///         }
    ///     })
    ///     .await;
    /// assert!(matches!(result, Err(AppError::Shutdown)));
    /// assert_eq!(done, ["resize", "crop"]);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn run<F, Fut, E>(&mut self, mut handler: F) -> Result<(), E>
    where
        F: FnMut(Message) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: From<Error>,
    {
        while let Some(message) = self.next().await {
            handler(message?).await?;
        }
        Ok(())
    }

    /// Like [`run`](Consumer::run), with each body decoded into `T` first
    /// (Kombu's `callbacks(body, message)`). A message that cannot be decoded
    /// goes to the `on_decode_error` hook; without one, it is requeued and
    /// the run stops with the decode error, so nothing is lost.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize)]
    /// struct Payment {
    ///     cents: u64,
    /// }
    ///
    /// let conn = Connection::new("memory://")?;
    /// let mut consumer = conn.consumer([Queue::new("run-decoded-doc")]).build().await?;
    /// let producer = conn.producer().routing_key("run-decoded-doc").build().await?;
    /// producer.publish(&serde_json::json!({"cents": 250})).send().await?;
    /// producer.publish(&serde_json::json!({"cents": 100})).send().await?;
    /// producer.publish("garbage").send().await?;
    ///
    /// let mut total = 0;
    /// let result = consumer
    ///     .run_decoded(|payment: Payment, message| {
    ///         total += payment.cents;
    ///         async move { message.ack().await }
    ///     })
    ///     .await;
    /// assert_eq!(total, 350);
    /// // The bad message stopped the run and went back to the queue.
    /// assert!(result.unwrap_err().is_decode());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn run_decoded<T, F, Fut, E>(&mut self, mut handler: F) -> Result<(), E>
    where
        T: DeserializeOwned,
        F: FnMut(T, Message) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: From<Error>,
    {
        while let Some(message) = self.next().await {
            let message = message?;
            match message.decode::<T>() {
                Ok(body) => handler(body, message).await?,
                Err(error) => match &self.on_decode_error {
                    Some(hook) => hook(message, error).await?,
                    None => {
                        if !self.no_ack {
                            message.requeue().await?;
                        }
                        return Err(error.into());
                    }
                },
            }
        }
        Ok(())
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        loop {
            return match self.rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Ready(Some(ConsumerEvent::Delivery(delivery))) => {
                    let record = delivery
                        .info
                        .consumer_tag
                        .as_ref()
                        .and_then(|tag| self.records.iter().find(|r| &r.tag == tag));
                    let wire_tag = delivery.info.delivery_tag;
                    let (acker, shown_tag) = match record {
                        Some(record) => {
                            let current = record.subscription();
                            let shown = wire_tag.saturating_add(current.tag_offset);
                            record.saw_tag(shown);
                            if self.no_ack {
                                (Acker::NoAck, shown)
                            } else if current.epoch == delivery.epoch {
                                (Acker::Channel(current.channel), shown)
                            } else {
                                // Received on a connection since replaced.
                                (Acker::Stale, wire_tag)
                            }
                        }
                        None if self.no_ack => (Acker::NoAck, wire_tag),
                        None => (Acker::Stale, wire_tag),
                    };
                    Poll::Ready(Some(Ok(Message::new(delivery, acker, shown_tag, self.settings.clone()))))
                }
                Poll::Ready(Some(ConsumerEvent::Cancelled(_, CancelReason::ConnectionLost))) if self.recovers => {
                    // Recovery re-consumes: the stream just goes on.
                    continue;
                }
                Poll::Ready(Some(ConsumerEvent::Cancelled(tag, reason))) => {
                    let recovery_failed = matches!(reason, CancelReason::RecoveryFailed(_));
                    let queue = match self.records.iter().position(|r| r.tag == tag) {
                        Some(i) if !recovery_failed => {
                            let record = self.records.remove(i);
                            self.channel.connection().supervisor().forget_consumer(&record);
                            record.queue()
                        }
                        Some(i) => self.records[i].queue(),
                        None => String::new(),
                    };
                    Poll::Ready(Some(Err(cancelled_error(&tag, &queue, reason))))
                }
            };
        }
    }
}

fn cancelled_error(tag: &str, queue: &str, reason: CancelReason) -> Error {
    match reason {
        CancelReason::QueueDeleted => Error::new(
            ErrorKind::Cancelled,
            format!("consumer {tag} cancelled by the broker: queue '{queue}' was deleted"),
        ),
        CancelReason::ChannelClosed(code, text) => Error::new(
            ErrorKind::Cancelled,
            format!("consumer {tag} of queue '{queue}' ended: the broker closed its channel"),
        )
        .with_reply(code, text),
        CancelReason::ConnectionLost => Error::new(
            ErrorKind::Cancelled,
            format!("consumer {tag} of queue '{queue}' ended: the connection was lost"),
        ),
        CancelReason::RecoveryFailed(reason) => Error::new(
            ErrorKind::Cancelled,
            format!(
                "consumer {tag} of queue '{queue}' is interrupted: the connection was lost and \
                 recovery gave up ({reason}); it resumes if a later reconnect succeeds"
            ),
        ),
    }
}

impl Stream for Consumer {
    type Item = Result<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Message>>> {
        self.get_mut().poll_message(cx)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Received but never handed out: give them back now rather than when
        // the channel closes.
        self.rx.close();
        let records = std::mem::take(&mut self.records);
        // Deliveries still queued here, by the subscription (and so the
        // broker channel) that must take them back.
        let mut pending: Vec<(crate::transport::AnyChannel, u64)> = Vec::new();
        while let Ok(event) = self.rx.try_recv() {
            if let ConsumerEvent::Delivery(d) = event {
                let current = d
                    .info
                    .consumer_tag
                    .as_ref()
                    .and_then(|tag| records.iter().find(|r| &r.tag == tag))
                    .map(|r| r.subscription())
                    .filter(|s| s.epoch == d.epoch);
                if let Some(current) = current {
                    pending.push((current.channel, d.info.delivery_tag));
                }
            }
        }
        for record in &records {
            self.channel.connection().supervisor().forget_consumer(record);
        }
        if (pending.is_empty() || self.no_ack) && records.is_empty() {
            return;
        }
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let no_ack = self.no_ack;
        runtime.spawn(async move {
            for record in records {
                let _ = record.subscription().channel.cancel(&record.tag).await;
            }
            if !no_ack {
                for (channel, tag) in pending {
                    let _ = channel.reject(tag, true).await;
                }
            }
        });
    }
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("queues", &self.queues())
            .field("consumer_tags", &self.consumer_tags())
            .field("no_ack", &self.no_ack)
            .finish()
    }
}

/// The ways to start a consumer, beside its builder.
impl Connection {
    /// A consumer of `queues` on the default channel; finish with
    /// [`ConsumerBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let consumer = conn
    ///     .consumer([Queue::new("conn-consumer-doc")])
    ///     .prefetch_count(5)
    ///     .build()
    ///     .await?;
    /// assert_eq!(consumer.queues(), ["conn-consumer-doc"]);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn consumer<I: IntoIterator<Item = Queue>>(&self, queues: I) -> ConsumerBuilder {
        ConsumerBuilder::for_connection(self.clone()).queues(queues)
    }
}

impl Channel {
    /// A consumer on this channel; finish with [`ConsumerBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// let consumer = channel.consumer([Queue::new("channel-consumer-doc")]).build().await?;
    /// assert_eq!(consumer.queues(), ["channel-consumer-doc"]);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn consumer<I: IntoIterator<Item = Queue>>(&self, queues: I) -> ConsumerBuilder {
        ConsumerBuilder::for_channel(self.clone()).queues(queues)
    }
}

impl fmt::Debug for ConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerBuilder")
            .field("queues", &self.queues.iter().map(|q| q.name.as_str()).collect::<Vec<_>>())
            .field("no_ack", &self.no_ack)
            .field("prefetch_count", &self.prefetch_count)
            .field("exclusive", &self.exclusive)
            .field("on_decode_error", &self.on_decode_error.is_some())
            .finish_non_exhaustive()
    }
}
