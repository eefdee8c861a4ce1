//! [`Connection`]: a lazily connected link to one broker among several.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use crate::channel::{Channel, ChannelCore, PreparedChannel, declare_exchange_on, declare_queue_on};
use crate::recovery::{ConsumerRecord, Topology, next_epoch};
use crate::retry::RetryPolicy;
use crate::transport::confirm::{self, SharedConfirms};
use crate::transport::{BindArgs, CancelReason, ConsumeArgs, ConsumerEvent};
use crate::consumer::ConsumerBuilder;
use crate::entity::{Entity, Queue};
use crate::event::{Event, Events};
use crate::failover::FailoverStrategy;
use crate::producer::ProducerBuilder;
use crate::transport::{AnyChannel, AnyTransport, Capabilities, ConnectOptions};
use crate::{BrokerUrl, Error, FieldTable, Result, Value};

/// Kombu's default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// RabbitMQ's default heartbeat; kelp keeps heartbeats on so that a frozen
/// broker is noticed.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);

/// Options of a [`Connection`]; build them with [`Connection::builder`].
///
/// Every option has a default, so only what differs needs saying. Nothing
/// connects until the connection is first used.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use kelp::{Connection, RetryPolicy};
///
/// let conn = Connection::builder("memory://")
///     .connect_timeout(Duration::from_secs(2))
///     .heartbeat(Some(Duration::from_secs(30)))
///     .connection_name("billing-worker")
///     .retry_policy(RetryPolicy::default().max_retries(3))
///     .build()?;
/// assert!(!conn.is_connected()); // building does not connect
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectionBuilder {
    urls: Vec<String>,
    strategy: FailoverStrategy,
    connect_timeout: Option<Duration>,
    heartbeat: Option<Option<Duration>>,
    connection_name: Option<String>,
    transport_options: FieldTable,
    retry: RetryPolicy,
    recovery: bool,
    max_unconfirmed: usize,
    standby: bool,
}

impl ConnectionBuilder {
    fn new(urls: Vec<String>) -> ConnectionBuilder {
        ConnectionBuilder {
            urls,
            strategy: FailoverStrategy::default(),
            connect_timeout: None,
            heartbeat: None,
            connection_name: None,
            transport_options: FieldTable::new(),
            retry: RetryPolicy::default(),
            recovery: true,
            max_unconfirmed: 100_000,
            standby: false,
        }
    }

    /// At most this many publishes per channel wait for their confirm
    /// (default 100,000); more wait for room, up to the retry policy's
    /// deadline, then fail with [`LimitExceeded`](crate::ErrorKind::LimitExceeded).
    /// This bounds the memory that unconfirmed messages (kept to publish
    /// again after a failover) may take.
    ///
    /// # Examples
    ///
    /// ```
    /// // A publisher of large bodies keeps fewer of them in memory.
    /// let conn = kelp::Connection::builder("memory://").max_unconfirmed(1_000).build()?;
    /// # let _ = conn;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn max_unconfirmed(mut self, n: usize) -> ConnectionBuilder {
        self.max_unconfirmed = n.max(1);
        self
    }

    /// How reconnecting after a lost connection is retried (default:
    /// [`RetryPolicy::default`]). Operations that wait for a recovery wait at
    /// most its deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use kelp::{Connection, RetryPolicy};
    ///
    /// // Keep trying for five minutes instead of one.
    /// let policy = RetryPolicy::default().deadline(Duration::from_secs(300));
    /// let conn = Connection::builder("memory://").retry_policy(policy).build()?;
    /// assert_eq!(conn.retry_policy().deadline, Some(Duration::from_secs(300)));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn retry_policy(mut self, policy: RetryPolicy) -> ConnectionBuilder {
        self.retry = policy;
        self
    }

    /// Recover automatically when the connection is lost (default: on):
    /// reconnect by the failover strategy, re-declare the recorded topology,
    /// reopen channels, publish again what was not confirmed, re-consume.
    ///
    /// # Examples
    ///
    /// ```
    /// // A short-lived tool may prefer to fail at once and exit.
    /// let conn = kelp::Connection::builder("memory://").automatic_recovery(false).build()?;
    /// # let _ = conn;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn automatic_recovery(mut self, on: bool) -> ConnectionBuilder {
        self.recovery = on;
        self
    }

    /// Keep a warm standby (default: off): while connected, also hold a
    /// connection to the broker the failover strategy would pick next, with
    /// the recorded exchanges, queues and bindings declared there too. A
    /// failover to it then skips connecting and creating queues, so
    /// publishing resumes sooner.
    ///
    /// The price: one more idle connection, and the application's entities
    /// exist on the standby broker before it is used (server-named queues
    /// excepted). The standby's own events are silent until it takes over.
    /// Only meaningful with several URLs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let conn = kelp::Connection::builder("amqp://primary//;amqp://standby//")
    ///     .failover_strategy(kelp::FailoverStrategy::PriorityOrder)
    ///     .warm_standby(true)
    ///     .build()?;
    /// # let _ = conn;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn warm_standby(mut self, on: bool) -> ConnectionBuilder {
        self.standby = on;
        self
    }

    /// Add alternate broker URLs (each may itself be a `;` list).
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Connection;
    ///
    /// let conn = Connection::builder("amqp://rabbit-a//")
    ///     .alternates(["amqp://rabbit-b//", "amqp://rabbit-c//"])
    ///     .build()?;
    /// assert_eq!(conn.urls().len(), 3);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn alternates<I, S>(mut self, urls: I) -> ConnectionBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.urls.extend(urls.into_iter().map(Into::into));
        self
    }

    /// How to pick the next broker (default: round-robin).
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Connection, FailoverStrategy};
    ///
    /// // Go back to the primary as soon as it is up again.
    /// let conn = Connection::builder("amqp://primary//;amqp://standby//")
    ///     .failover_strategy(FailoverStrategy::PriorityOrder)
    ///     .build()?;
    /// assert!(matches!(conn.failover_strategy(), FailoverStrategy::PriorityOrder));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn failover_strategy(mut self, strategy: FailoverStrategy) -> ConnectionBuilder {
        self.strategy = strategy;
        self
    }

    /// Time allowed for one connection attempt (default 5 s, or `connect_timeout=` in the URL).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let conn = kelp::Connection::builder("amqp://rabbit-a//;amqp://rabbit-b//")
    ///     .connect_timeout(Duration::from_secs(2)) // a dead node costs at most 2 s
    ///     .build()?;
    /// # let _ = conn;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> ConnectionBuilder {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Heartbeat interval; `None` turns heartbeats off (default 60 s, or
    /// `heartbeat=` in the URL). The broker and kelp agree on the smaller
    /// non-zero value; kelp declares the broker dead after one interval of
    /// silence (two of RabbitMQ's half-interval heartbeats missed), so a
    /// frozen broker is noticed within 1.25 intervals.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // Notice a dead broker within about 12 seconds.
    /// let conn = kelp::Connection::builder("memory://")
    ///     .heartbeat(Some(Duration::from_secs(10)))
    ///     .build()?;
    /// # let _ = conn;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn heartbeat(mut self, interval: Option<Duration>) -> ConnectionBuilder {
        self.heartbeat = Some(interval.filter(|d| !d.is_zero()));
        self
    }

    /// A name shown by the broker's management tools.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = kelp::Connection::builder("memory://").connection_name("invoice-service").build()?;
    /// # let _ = conn;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn connection_name(mut self, name: impl Into<String>) -> ConnectionBuilder {
        self.connection_name = Some(name.into());
        self
    }

    /// A transport-specific option (Kombu's `transport_options`), passed to
    /// the transport as is. The memory and AMQP transports define none and
    /// ignore them; everything they can do has its own builder method.
    ///
    /// # Examples
    ///
    /// ```
    /// // Passed through untouched, for a transport that reads it.
    /// let conn = kelp::Connection::builder("memory://")
    ///     .transport_option("visibility_timeout", 3600)
    ///     .build()?;
    /// # let _ = conn;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn transport_option(mut self, key: impl Into<String>, value: impl Into<Value>) -> ConnectionBuilder {
        self.transport_options.insert(key.into(), value.into());
        self
    }

    /// Validate the URLs and options; does not connect.
    ///
    /// A malformed URL or option fails here, not at the first operation.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Connection;
    ///
    /// assert!(Connection::builder("memory://").build().is_ok());
    ///
    /// let typo = Connection::builder("amqp://rabbit//?heartbeat=soon").build();
    /// assert!(typo.unwrap_err().is_config());
    /// ```
    pub fn build(self) -> Result<Connection> {
        let mut urls = Vec::new();
        for text in &self.urls {
            urls.extend(BrokerUrl::parse_list(text)?);
        }
        if urls.is_empty() {
            return Err(Error::config("a connection needs at least one broker URL"));
        }
        // Options written in the URLs are checked now, so a typo fails here.
        for url in &urls {
            url.heartbeat()?;
            url.connect_timeout()?;
        }
        Ok(Connection {
            shared: Arc::new(Shared {
                urls,
                strategy: self.strategy,
                connect_timeout: self.connect_timeout,
                heartbeat: self.heartbeat,
                connection_name: self.connection_name,
                transport_options: self.transport_options,
                link: tokio::sync::Mutex::new(Link { last: None }),
                active: RwLock::new(None),
                generation: AtomicU64::new(0),
                default_channel: Mutex::new(None),
                declared: Mutex::new(HashSet::new()),
                events: Events::new(),
                retry: self.retry,
                recovery: self.recovery,
                max_unconfirmed: self.max_unconfirmed,
                standby_enabled: self.standby,
                standby: Mutex::new(None),
                standby_wake: Arc::new(tokio::sync::Notify::new()),
                topology_version: AtomicU64::new(0),
                closed_by_app: AtomicBool::new(false),
                topology: Mutex::new(Topology::default()),
                cores: Mutex::new(Vec::new()),
                consumers: Mutex::new(Vec::new()),
            }),
        })
    }
}

/// A connection to a broker, chosen among one or more URLs.
///
/// Connects lazily: nothing happens until [`connect`](Connection::connect),
/// [`channel`](Connection::channel) or
/// [`default_channel`](Connection::default_channel). Cheap to clone; the
/// connection closes when the last clone, channel, producer and consumer
/// using it are dropped, or at [`close`](Connection::close).
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// let conn = kelp::Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// assert!(conn.is_connected());
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Connection {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    urls: Vec<BrokerUrl>,
    strategy: FailoverStrategy,
    connect_timeout: Option<Duration>,
    heartbeat: Option<Option<Duration>>,
    connection_name: Option<String>,
    transport_options: FieldTable,
    /// Serializes connection attempts.
    link: tokio::sync::Mutex<Link>,
    active: RwLock<Option<Arc<Active>>>,
    /// Bumped on every new broker connection; channels compare it to know
    /// they must reopen.
    generation: AtomicU64,
    default_channel: Mutex<Option<Arc<ChannelCore>>>,
    /// The "maybe declare" cache, cleared on every (re)connect.
    declared: Mutex<HashSet<String>>,
    events: Events,
    retry: RetryPolicy,
    recovery: bool,
    max_unconfirmed: usize,
    standby_enabled: bool,
    /// The warm standby connection, when one is open.
    standby: Mutex<Option<Standby>>,
    /// Woken when the recorded topology changes, so the standby follows it.
    standby_wake: Arc<tokio::sync::Notify>,
    /// Bumped on every change to the recorded topology.
    topology_version: AtomicU64,
    /// Set by `close()`: a lost connection is then not recovered.
    closed_by_app: AtomicBool,
    /// What was declared, to declare it again after a reconnect.
    topology: Mutex<Topology>,
    /// Live channels, to reopen after a reconnect.
    cores: Mutex<Vec<Weak<ChannelCore>>>,
    /// Live subscriptions, to re-consume after a reconnect.
    consumers: Mutex<Vec<Weak<ConsumerRecord>>>,
}

struct Link {
    last: Option<usize>,
}

/// A connection held ready to take over (see `warm_standby`).
struct Standby {
    url_index: usize,
    transport: Arc<AnyTransport>,
    /// Opened when it takes over; until then its events are not the
    /// application's business.
    events_gate: Arc<AtomicBool>,
    /// The topology version (see `Shared::topology_version`) it holds in
    /// full, `u64::MAX` before the first complete declaration.
    declared_version: Arc<AtomicU64>,
    /// A channel per channel core, opened ahead.
    prepared: Arc<Mutex<Vec<PreparedChannel>>>,
}

pub(crate) struct Active {
    pub(crate) transport: Arc<AnyTransport>,
    /// A warm standby that already holds the whole recorded topology.
    pub(crate) topology_declared: bool,
    pub(crate) url_index: usize,
    pub(crate) generation: u64,
    pub(crate) events: Events,
    pub(crate) broker: String,
    /// Channels the warm standby opened ahead, until their cores adopt them.
    prepared: Mutex<Vec<PreparedChannel>>,
}

impl Active {
    /// The channel prepared for `core`, if it has the core's settings.
    pub(crate) fn take_prepared(&self, core: &ChannelCore, qos: Option<(u16, bool)>, confirm: bool) -> Option<AnyChannel> {
        let mut prepared = lock(&self.prepared);
        let index = prepared.iter().position(|p| p.is_for(core))?;
        if prepared[index].qos != qos || prepared[index].confirm != confirm || !prepared[index].channel.is_open() {
            return None; // closed with the other leftovers after the restore
        }
        Some(prepared.swap_remove(index).channel)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connection {
    /// A connection to `url` (or a `;`-separated list of URLs), with default options.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Connection;
    ///
    /// let conn = Connection::new("memory://")?;
    /// assert!(!conn.is_connected()); // connects on first use
    ///
    /// // A `;` list gives failover alternates.
    /// let ha = Connection::new("amqp://rabbit-a//;amqp://rabbit-b//")?;
    /// assert_eq!(ha.urls().len(), 2);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn new(url: &str) -> Result<Connection> {
        Connection::builder(url).build()
    }

    /// Options for a connection to `url` (or a `;`-separated list).
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = kelp::Connection::builder("memory://")
    ///     .connection_name("reports")
    ///     .build()?;
    /// # let _ = conn;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn builder(url: impl Into<String>) -> ConnectionBuilder {
        ConnectionBuilder::new(vec![url.into()])
    }

    /// Options for a connection to any of `urls`.
    ///
    /// Handy when the broker list comes from configuration as a list.
    ///
    /// # Examples
    ///
    /// ```
    /// let brokers = vec!["amqp://rabbit-a//".to_string(), "amqp://rabbit-b//".to_string()];
    /// let conn = kelp::Connection::builder_from_list(brokers).build()?;
    /// assert_eq!(conn.urls()[1].host(), "rabbit-b");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn builder_from_list<I, S>(urls: I) -> ConnectionBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ConnectionBuilder::new(urls.into_iter().map(Into::into).collect())
    }

    /// Connect now (trying each broker once, in failover order) if not connected.
    ///
    /// Other operations connect by themselves; calling this first makes a
    /// wrong address fail at startup rather than at the first publish.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// conn.connect().await?;
    /// assert!(conn.is_connected());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn connect(&self) -> Result<()> {
        self.transport().await.map(|_| ())
    }

    /// True while connected to a broker.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// assert!(!conn.is_connected());
    /// conn.connect().await?;
    /// assert!(conn.is_connected());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_connected(&self) -> bool {
        self.active().is_some_and(|a| a.transport.is_open())
    }

    /// True once the application closed this connection (pools replace it).
    pub(crate) fn is_closed_by_app(&self) -> bool {
        self.shared.closed_by_app.load(Ordering::Acquire)
    }

    /// Close the connection: its channels, consumers and the broker link,
    /// and forget the recorded topology. The handle stays usable: the next
    /// operation connects again.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// conn.connect().await?;
    /// conn.close().await?;
    /// assert!(!conn.is_connected());
    ///
    /// conn.default_channel().await?; // reconnects
    /// assert!(conn.is_connected());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn close(&self) -> Result<()> {
        self.shared.closed_by_app.store(true, Ordering::Release);
        let _link = self.shared.link.lock().await;
        lock(&self.shared.default_channel).take();
        let active = self
            .shared
            .active
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        lock(&self.shared.declared).clear();
        *lock(&self.shared.topology) = Topology::default();
        lock(&self.shared.consumers).clear();
        // Nothing will publish them again: end their waits.
        let closed = Error::closed("the connection was closed by the application");
        let cores: Vec<Arc<ChannelCore>> = lock(&self.shared.cores).iter().filter_map(Weak::upgrade).collect();
        for core in cores {
            confirm::lock(&core.confirms).fail_all(&closed);
        }
        let standby = lock(&self.shared.standby).take();
        if let Some(standby) = standby {
            let _ = standby.transport.close().await;
        }
        if let Some(active) = active {
            active.transport.close().await?;
        }
        Ok(())
    }

    /// Same as [`close`](Connection::close) (Kombu's name).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// conn.connect().await?;
    /// conn.release().await?;
    /// assert!(!conn.is_connected());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn release(&self) -> Result<()> {
        self.close().await
    }

    /// Open a new channel.
    ///
    /// Most code can use the [default channel](Connection::default_channel);
    /// a separate channel keeps, say, a consumer's prefetch setting away from
    /// a producer's confirms.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// let declared = Queue::new("conn-channel-doc").declare(&channel).await?;
    /// assert_eq!(declared.message_count, 0);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn channel(&self) -> Result<Channel> {
        let channel = Channel::new(self.clone(), ChannelCore::new(self));
        channel.transport_channel().await?;
        Ok(channel)
    }

    /// The connection's default channel, created on first use.
    ///
    /// Every call returns a handle on the same channel, which
    /// [`producer`](Connection::producer) and
    /// [`consumer`](Connection::consumer) use too.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// channel.qos(10, false).await?;
    /// assert!(channel.is_open());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn default_channel(&self) -> Result<Channel> {
        let core = {
            let mut slot = lock(&self.shared.default_channel);
            slot.get_or_insert_with(|| ChannelCore::new(self)).clone()
        };
        let channel = Channel::new(self.clone(), core);
        channel.transport_channel().await?;
        Ok(channel)
    }

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

    /// Declare an exchange or queue unless this connection already declared
    /// it (Kombu's `maybe_declare`). Returns true if it was declared now.
    ///
    /// Code that publishes often can call it before every publish: only
    /// the first call costs a round trip.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let exchange = Exchange::fanout("maybe-declare-doc");
    /// assert!(conn.maybe_declare(&exchange).await?); // declared now
    /// assert!(!conn.maybe_declare(&exchange).await?); // remembered
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn maybe_declare(&self, entity: impl Into<Entity>) -> Result<bool> {
        let entity = entity.into();
        let key = entity.cache_key();
        if let Some(key) = &key
            && lock(&self.shared.declared).contains(key) {
                return Ok(false);
            }
        let generation = self.shared.generation.load(Ordering::Acquire);
        let channel = self.default_channel().await?;
        entity.declare(&channel).await?;
        if let Some(key) = key {
            // Only cache it if no reconnect cleared the cache meanwhile.
            if self.shared.generation.load(Ordering::Acquire) == generation
                || generation == 0
            {
                lock(&self.shared.declared).insert(key);
            }
        }
        Ok(true)
    }

    /// Forget what [`maybe_declare`](Connection::maybe_declare) remembers.
    ///
    /// Useful when something else may have deleted the entities.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let queue = Queue::new("clear-declared-doc");
    /// conn.maybe_declare(&queue).await?;
    /// conn.clear_declared();
    /// assert!(conn.maybe_declare(&queue).await?); // declared again
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn clear_declared(&self) {
        lock(&self.shared.declared).clear();
    }

    /// The broker URLs, in configuration order.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = kelp::Connection::new("amqp://rabbit-a//;amqp://rabbit-b//")?;
    /// let hosts: Vec<&str> = conn.urls().iter().map(|u| u.host()).collect();
    /// assert_eq!(hosts, ["rabbit-a", "rabbit-b"]);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn urls(&self) -> &[BrokerUrl] {
        &self.shared.urls
    }

    /// The URL of the broker in use (or the first one when not connected).
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = kelp::Connection::new("amqp://rabbit-a//;amqp://rabbit-b//")?;
    /// assert_eq!(conn.current_url().host(), "rabbit-a");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn current_url(&self) -> &BrokerUrl {
        let index = self.active().map_or(0, |a| a.url_index);
        // `urls` is never empty (checked at build), so this always finds one.
        &self.shared.urls[index.min(self.shared.urls.len() - 1)]
    }

    /// The current URL with the password masked (`amqp://guest:**@host:5672//`),
    /// or with it when asked for.
    ///
    /// The masked form is safe to log.
    ///
    /// # Examples
    ///
    /// ```
    /// let conn = kelp::Connection::new("amqp://app:s3cret@rabbit.internal/orders")?;
    /// assert_eq!(conn.as_uri(false), "amqp://app:**@rabbit.internal:5672/orders");
    /// assert_eq!(conn.as_uri(true), "amqp://app:s3cret@rabbit.internal:5672/orders");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn as_uri(&self, include_password: bool) -> String {
        self.current_url().as_uri(include_password)
    }

    /// What the connected transport supports (connects if needed).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let capabilities = conn.capabilities().await?;
    /// assert!(capabilities.publisher_confirms && capabilities.priorities);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn capabilities(&self) -> Result<Capabilities> {
        Ok(self.transport().await?.transport.capabilities())
    }

    /// Subscribe to the connection's [`Event`]s (connected, lost, blocked,
    /// consumer cancelled by the broker...). Events sent before subscribing
    /// are not replayed.
    ///
    /// # Examples
    ///
    /// Log failovers from a background task (this needs a real broker to
    /// have anything to report, so it is not run here):
    ///
    /// ```no_run
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Event};
    ///
    /// let conn = Connection::new("amqp://rabbit-a//;amqp://rabbit-b//")?;
    /// let mut events = conn.events();
    /// tokio::spawn(async move {
    ///     while let Ok(event) = events.recv().await {
    ///         match event {
    ///             Event::Recovered { broker, took } => println!("back on {broker} after {took:?}"),
    ///             other => println!("{other}"),
    ///         }
    ///     }
    /// });
    /// conn.connect().await?;
    /// # Ok(()) }
    /// ```
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// The failover strategy.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Connection, FailoverStrategy};
    ///
    /// let conn = Connection::new("memory://")?;
    /// assert!(matches!(conn.failover_strategy(), FailoverStrategy::RoundRobin));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn failover_strategy(&self) -> &FailoverStrategy {
        &self.shared.strategy
    }

    /// The retry policy for reconnecting.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let conn = kelp::Connection::new("memory://")?;
    /// assert_eq!(conn.retry_policy().deadline, Some(Duration::from_secs(60)));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.shared.retry
    }

    /// Run `op` until it succeeds, retrying recoverable errors by `policy`
    /// (Kombu's `ensure`). Connection errors wait for the connection to be
    /// re-established (on another broker if need be) before the next try;
    /// channel errors retry on a reopened channel; fatal errors (bad
    /// credentials, access refused, not found, precondition failed, content
    /// not allowed...) return at once. When the policy's retries or deadline
    /// run out, the last error is returned: nothing waits forever.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue, RetryPolicy};
    /// let conn = Connection::new("memory://")?;
    /// let declared = conn
    ///     .ensure(&RetryPolicy::default(), |conn| async move {
    ///         let channel = conn.default_channel().await?;
    ///         Queue::new("ensured").declare(&channel).await
    ///     })
    ///     .await?;
    /// assert_eq!(declared.name, "ensured");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn ensure<T, F, Fut>(&self, policy: &RetryPolicy, mut op: F) -> Result<T>
    where
        F: FnMut(Connection) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        retry_loop(policy, || op(self.clone())).await
    }

    /// Like [`ensure`](Connection::ensure), handing `op` a fresh channel on
    /// every attempt (Kombu's `autoretry`).
    ///
    /// A channel the broker closed (after a 405, say) is not reused by the
    /// next attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue, RetryPolicy};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let queue = Queue::new("autoretry-doc");
    /// let purged = conn
    ///     .autoretry(&RetryPolicy::default().max_retries(3), |channel| {
    ///         let queue = queue.clone();
    ///         async move {
    ///             queue.declare(&channel).await?;
    ///             queue.purge(&channel).await
    ///         }
    ///     })
    ///     .await?;
    /// assert_eq!(purged, 0);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn autoretry<T, F, Fut>(&self, policy: &RetryPolicy, mut op: F) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let mut retries = 0u32;
        loop {
            let result = match self.channel().await {
                Ok(channel) => op(channel).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(error) => pause_or_give_up(policy, error, &mut retries, started).await?,
            }
        }
    }

    /// Connect, retrying by `policy` (each retry is a full cycle through
    /// the broker list, in failover order).
    ///
    /// # Examples
    ///
    /// Wait up to two minutes for a broker at startup (not run here: it
    /// needs RabbitMQ):
    ///
    /// ```no_run
    /// # async fn demo() -> kelp::Result<()> {
    /// use std::time::Duration;
    /// use kelp::{Connection, RetryPolicy};
    ///
    /// let conn = Connection::new("amqp://rabbit-a//;amqp://rabbit-b//")?;
    /// let patient = RetryPolicy::default().deadline(Duration::from_secs(120));
    /// conn.connect_with(&patient).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(&self, policy: &RetryPolicy) -> Result<()> {
        retry_loop(policy, || self.connect()).await
    }

    pub(crate) fn record(&self, f: impl FnOnce(&mut Topology)) {
        f(&mut lock(&self.shared.topology));
        self.shared.topology_version.fetch_add(1, Ordering::AcqRel);
        self.standby_follow();
    }

    /// The warm standby (if any) catches up with the recorded topology and
    /// the channels' settings.
    pub(crate) fn standby_follow(&self) {
        if self.shared.standby_enabled {
            self.shared.standby_wake.notify_one();
        }
    }

    pub(crate) fn register_core(&self, core: &Arc<ChannelCore>) {
        {
            let mut cores = lock(&self.shared.cores);
            cores.retain(|c| c.strong_count() > 0);
            cores.push(Arc::downgrade(core));
        }
        self.standby_follow();
    }

    pub(crate) fn register_consumer(&self, record: &Arc<ConsumerRecord>) {
        let mut consumers = lock(&self.shared.consumers);
        consumers.retain(|c| c.strong_count() > 0);
        consumers.push(Arc::downgrade(record));
    }

    /// A subscription ended for good (cancelled by the application or the
    /// broker): stop re-consuming it, and forget its queue when the broker
    /// deletes auto-delete queues with their last consumer.
    pub(crate) fn forget_consumer(&self, record: &Arc<ConsumerRecord>) {
        let queue = record.queue();
        let still_consumed = {
            let mut consumers = lock(&self.shared.consumers);
            consumers.retain(|c| c.upgrade().is_some_and(|c| !Arc::ptr_eq(&c, record)));
            consumers
                .iter()
                .filter_map(Weak::upgrade)
                .any(|c| c.queue() == queue)
        };
        if !still_consumed {
            self.record(|t| {
                if t.is_auto_delete_queue(&queue) {
                    t.forget_queue(&queue);
                }
            });
        }
    }

    /// True when a lost connection is recovered automatically.
    pub(crate) fn recovers(&self) -> bool {
        self.shared.recovery
    }

    pub(crate) fn active(&self) -> Option<Arc<Active>> {
        self.shared
            .active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// The live broker connection, connecting first if needed.
    pub(crate) async fn transport(&self) -> Result<Arc<Active>> {
        if let Some(active) = self.active()
            && active.transport.is_open() {
                return Ok(active);
            }
        let mut link = self.shared.link.lock().await;
        if let Some(active) = self.active()
            && active.transport.is_open() {
                return Ok(active);
            }
        let active = Arc::new(self.connect_cycle(&mut link).await?);
        // Restore before anyone else sees the new connection: a publisher
        // that got it early would publish before its queue is declared
        // again, and the broker confirms (and drops) an unroutable message.
        // Until then other operations wait on the link lock.
        if active.generation > 1 {
            self.restore(&active).await;
        }
        *self
            .shared
            .active
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(active.clone());
        self.shared.closed_by_app.store(false, Ordering::Release);
        self.supervise(&active);
        self.prepare_standby(&active);
        Ok(active)
    }

    /// Watch the connection; when it is lost (not closed by the
    /// application), recover it in the background.
    fn supervise(&self, active: &Arc<Active>) {
        if !self.shared.recovery {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let closed = active.transport.closed();
        let generation = active.generation;
        let shared: Weak<Shared> = Arc::downgrade(&self.shared);
        runtime.spawn(async move {
            let reason = closed.await;
            // The connection may be dropped meanwhile: then there is nobody
            // to recover for.
            let Some(shared) = shared.upgrade() else { return };
            let conn = Connection { shared };
            if conn.shared.closed_by_app.load(Ordering::Acquire) || conn.generation() != generation {
                return;
            }
            conn.recover(reason).await;
        });
    }

    /// Reconnect by the retry policy, restoring everything on the way.
    async fn recover(&self, reason: Error) {
        let started = Instant::now();
        let from = self.current_url().to_string();
        self.shared.events.emit(Event::RecoveryStarted {
            broker: from,
            reason: reason.to_string(),
        });
        let policy = self.shared.retry.clone();
        match retry_loop(&policy, || self.transport()).await {
            Ok(active) => self.shared.events.emit(Event::Recovered {
                broker: active.broker.clone(),
                took: started.elapsed(),
            }),
            Err(error) => {
                if self.shared.closed_by_app.load(Ordering::Acquire) {
                    return;
                }
                self.shared.events.emit(Event::RecoveryFailed {
                    reason: error.to_string(),
                });
                self.give_up(&error);
            }
        }
    }

    /// Recovery failed: end the waits that depended on it, so that nothing
    /// hangs. (The record stays: a later reconnect still restores it.)
    fn give_up(&self, error: &Error) {
        let consumers: Vec<Arc<ConsumerRecord>> =
            lock(&self.shared.consumers).iter().filter_map(Weak::upgrade).collect();
        for record in consumers {
            let _ = record.sink.send(ConsumerEvent::Cancelled(
                record.tag.clone(),
                CancelReason::RecoveryFailed(error.to_string()),
            ));
        }
        let cores: Vec<Arc<ChannelCore>> = lock(&self.shared.cores).iter().filter_map(Weak::upgrade).collect();
        for core in cores {
            confirm::lock(&core.confirms).fail_all(error);
        }
    }

    /// After a reconnect: declare the recorded topology again, reopen the
    /// channels (publishing again what was not confirmed) and re-consume.
    /// Called with the link lock held and before `active` is published, so
    /// operations wait until it is done.
    async fn restore(&self, active: &Arc<Active>) {
        if !active.topology_declared {
            // The channels open while the topology is declared: nothing is
            // published on them before it is there, but opening them need
            // not wait for it.
            let (_, prepared) = tokio::join!(
                self.declare_topology(&active.transport, false),
                self.prepare_missing(&active.transport, &active.prepared)
            );
            lock(&active.prepared).extend(prepared);
        }
        self.reopen_and_reconsume(active).await;
        let leftovers = std::mem::take(&mut *lock(&active.prepared));
        for prepared in leftovers {
            let _ = prepared.channel.close().await;
        }
    }

    /// Declare the recorded exchanges, queues and bindings on `transport`.
    /// On a standby, server-named queues (and bindings to them) are left
    /// out: they get new names when they are declared for real.
    /// True when everything was declared (nothing failed or was left out).
    async fn declare_topology(&self, transport: &AnyTransport, standby: bool) -> bool {
        let mut complete = true;
        let topology = {
            let t = lock(&self.shared.topology);
            (t.exchanges.clone(), t.queues.clone(), t.bindings.clone())
        };
        let (exchanges, queues, bindings) = topology;
        let scratch = SharedConfirms::default();
        let mut channel = None;
        macro_rules! on_channel {
            ($what:expr, $entity:expr, |$ch:ident| $op:expr) => {{
                if channel.as_ref().is_none_or(|c: &crate::transport::AnyChannel| !c.is_open()) {
                    channel = transport.open_channel(scratch.clone()).await.ok();
                }
                let result = match &channel {
                    Some($ch) => $op.await,
                    None => Err(Error::connection("cannot open a channel to restore the topology")),
                };
                if result.is_err() {
                    complete = false;
                }
                match &result {
                    // The failover declares it again and reports then.
                    Err(e) if standby => {
                        tracing::debug!(entity = %$entity, error = %e, "not declared on the standby");
                    }
                    Err(e) => self.shared.events.emit(Event::TopologyRecoveryFailed {
                        entity: format!("{} {}", $what, $entity),
                        reason: e.to_string(),
                    }),
                    Ok(_) => {}
                }
                result
            }};
        }
        for exchange in &exchanges {
            let _ = on_channel!("exchange", exchange.name, |ch| declare_exchange_on(ch, exchange));
        }
        let server_named: Vec<String> = queues.iter().filter(|q| q.server_named).map(|q| q.name.clone()).collect();
        for queue in &queues {
            if standby && queue.server_named {
                complete = false;
                continue;
            }
            let name = if queue.server_named { "" } else { queue.name.as_str() };
            let declared = on_channel!("queue", queue.name, |ch| declare_queue_on(ch, &queue.spec, name, false));
            if let Ok(declared) = declared
                && declared.name != queue.name {
                    self.rename_queue(&queue.name, &declared.name);
                }
        }
        let bindings = if queues.iter().any(|q| q.server_named) {
            lock(&self.shared.topology).bindings.clone()
        } else {
            bindings
        };
        for b in &bindings {
            if standby && b.to_queue && server_named.contains(&b.destination) {
                continue;
            }
            let args = BindArgs {
                destination: &b.destination,
                source: &b.source,
                routing_key: &b.routing_key,
                arguments: &b.arguments,
            };
            let what = format!("{} -> {} ({})", b.source, b.destination, b.routing_key);
            let _ = on_channel!("binding", what, |ch| async {
                if b.to_queue {
                    ch.queue_bind(args).await
                } else {
                    ch.exchange_bind(args).await
                }
            });
        }
        if let Some(channel) = channel {
            // Its close-ok need not hold up what follows.
            tokio::spawn(async move {
                let _ = channel.close().await;
            });
        }
        complete
    }

    /// Reopen the channels on the new connection (publishing again what was
    /// not confirmed), then the consumers on them.
    async fn reopen_and_reconsume(&self, active: &Arc<Active>) {
        let cores: Vec<Arc<ChannelCore>> = lock(&self.shared.cores).iter().filter_map(Weak::upgrade).collect();
        for core in &cores {
            if let Err(e) = core.reopen_on(active).await {
                tracing::warn!(error = %e, "a channel could not be reopened after the reconnect");
            }
        }
        let consumers: Vec<Arc<ConsumerRecord>> =
            lock(&self.shared.consumers).iter().filter_map(Weak::upgrade).collect();
        for record in consumers {
            let channel = match record.core.reopen_on(active).await {
                Ok(channel) => channel,
                Err(e) => {
                    self.consume_failed(&record, &e);
                    continue;
                }
            };
            let epoch = next_epoch();
            let args = ConsumeArgs {
                queue: record.queue(),
                consumer_tag: record.tag.clone(),
                no_ack: record.no_ack,
                exclusive: record.exclusive,
                arguments: record.arguments.clone(),
                epoch,
            };
            match channel.consume(args, record.sink.clone()).await {
                Ok(_) => record.moved_to(channel, epoch),
                Err(e) => self.consume_failed(&record, &e),
            }
        }
    }

    fn consume_failed(&self, record: &Arc<ConsumerRecord>, error: &Error) {
        self.shared.events.emit(Event::TopologyRecoveryFailed {
            entity: format!("consumer {} of queue {}", record.tag, record.queue()),
            reason: error.to_string(),
        });
    }

    fn rename_queue(&self, old: &str, new: &str) {
        self.record(|t| t.rename_queue(old, new));
        let consumers: Vec<Arc<ConsumerRecord>> =
            lock(&self.shared.consumers).iter().filter_map(Weak::upgrade).collect();
        for record in consumers {
            if record.queue() == old {
                record.set_queue(new);
            }
        }
        self.shared.events.emit(Event::QueueRenamed {
            old: old.to_owned(),
            new: new.to_owned(),
        });
    }

    /// The warm standby as the new connection, if it is still alive.
    fn take_standby(&self, link: &mut Link) -> Option<Active> {
        let shared = &self.shared;
        let standby = lock(&shared.standby).take()?;
        if !standby.transport.is_open() {
            return None;
        }
        standby.events_gate.store(true, Ordering::Release);
        link.last = Some(standby.url_index);
        let topology_declared =
            standby.declared_version.load(Ordering::Acquire) == shared.topology_version.load(Ordering::Acquire);
        let prepared = std::mem::take(&mut *lock(&standby.prepared));
        let active = self.new_active(standby.url_index, standby.transport, topology_declared, prepared);
        tracing::debug!(broker = %active.broker, "the warm standby takes over");
        shared.events.emit(Event::Connected { broker: active.broker.clone() });
        Some(active)
    }

    /// A new broker connection becomes the next generation: channels of
    /// older ones reopen, the "maybe declare" cache starts empty.
    fn new_active(
        &self,
        url_index: usize,
        transport: Arc<AnyTransport>,
        topology_declared: bool,
        prepared: Vec<PreparedChannel>,
    ) -> Active {
        let shared = &self.shared;
        lock(&shared.declared).clear();
        let generation = shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        Active {
            transport,
            topology_declared,
            url_index,
            generation,
            events: shared.events.clone(),
            broker: shared.urls[url_index].to_string(),
            prepared: Mutex::new(prepared),
        }
    }

    /// Open the warm standby in the background: a connection to the broker
    /// the strategy would try next, with the recorded topology declared on
    /// it and kept declared as the application declares more.
    fn prepare_standby(&self, active: &Arc<Active>) {
        let shared = &self.shared;
        if !shared.standby_enabled || shared.urls.len() < 2 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let order = shared.strategy.cycle(&shared.urls, Some(active.url_index));
        let Some(index) = order.into_iter().find(|&i| i != active.url_index) else {
            return;
        };
        if lock(&shared.standby).as_ref().is_some_and(|s| s.url_index == index && s.transport.is_open()) {
            return;
        }
        let generation = active.generation;
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let wake = shared.standby_wake.clone();
        runtime.spawn(async move {
            let Some(shared) = weak.upgrade() else { return };
            let conn = Connection { shared };
            let url = conn.shared.urls[index].clone();
            let Ok(mut options) = conn.connect_options(&url) else { return };
            let (events, events_gate) = conn.shared.events.gated();
            options.events = events;
            let attempt = tokio::time::timeout(options.connect_timeout, AnyTransport::connect(&url, &options)).await;
            let transport = match attempt {
                Ok(Ok(transport)) => Arc::new(transport),
                Ok(Err(e)) => {
                    tracing::debug!(broker = %url, error = %e, "no warm standby");
                    return;
                }
                Err(_) => {
                    tracing::debug!(broker = %url, "no warm standby: the connect timed out");
                    return;
                }
            };
            let mut closed = transport.closed();
            let declared_version = Arc::new(AtomicU64::new(u64::MAX));
            let version = conn.shared.topology_version.load(Ordering::Acquire);
            if conn.declare_topology(&transport, true).await {
                declared_version.store(version, Ordering::Release);
            }
            let prepared: Arc<Mutex<Vec<PreparedChannel>>> = Arc::default();
            conn.prepare_channels(&transport, &prepared, &events_gate).await;
            if conn.generation() != generation || conn.shared.closed_by_app.load(Ordering::Acquire) {
                let _ = transport.close().await;
                return;
            }
            tracing::debug!(broker = %url, "warm standby ready");
            let previous = lock(&conn.shared.standby).replace(Standby {
                url_index: index,
                transport: transport.clone(),
                events_gate: events_gate.clone(),
                declared_version: declared_version.clone(),
                prepared: prepared.clone(),
            });
            if let Some(previous) = previous {
                let _ = previous.transport.close().await;
            }
            // Follow the topology without keeping the connection or the
            // standby alive: when either goes, so does this task.
            let weak_transport = Arc::downgrade(&transport);
            drop(transport);
            drop(conn);
            loop {
                tokio::select! {
                    _ = &mut closed => return,
                    _ = wake.notified() => {}
                }
                if events_gate.load(Ordering::Acquire) {
                    return; // it took over; recovery declares everything
                }
                let (Some(shared), Some(transport)) = (weak.upgrade(), weak_transport.upgrade()) else {
                    return;
                };
                let conn = Connection { shared };
                let version = conn.shared.topology_version.load(Ordering::Acquire);
                if declared_version.load(Ordering::Acquire) != version && conn.declare_topology(&transport, true).await {
                    declared_version.store(version, Ordering::Release);
                }
                conn.prepare_channels(&transport, &prepared, &events_gate).await;
            }
        });
    }

    /// Open a channel (not yet adopted) on `transport` for every live
    /// channel core that has none in `have`.
    async fn prepare_missing(&self, transport: &AnyTransport, have: &Mutex<Vec<PreparedChannel>>) -> Vec<PreparedChannel> {
        let cores: Vec<Arc<ChannelCore>> = lock(&self.shared.cores).iter().filter_map(Weak::upgrade).collect();
        let mut prepared = Vec::new();
        for core in cores {
            if lock(have).iter().any(|p| p.is_for(&core)) {
                continue;
            }
            match core.prepare_on(transport).await {
                Ok(Some(p)) => prepared.push(p),
                // Nothing to gain on this transport, or the connection is
                // failing: the cores open their channels themselves.
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "a channel could not be opened ahead");
                    break;
                }
            }
        }
        prepared
    }

    /// Keep one channel per live channel core open ahead on the standby
    /// `transport`, with the core's current QoS and confirm mode.
    async fn prepare_channels(&self, transport: &AnyTransport, prepared: &Mutex<Vec<PreparedChannel>>, taken_over: &AtomicBool) {
        let stale: Vec<PreparedChannel> = {
            let mut list = lock(prepared);
            let (keep, stale) = std::mem::take(&mut *list).into_iter().partition(PreparedChannel::is_current);
            *list = keep;
            stale
        };
        for p in stale {
            let _ = p.channel.close().await;
        }
        let fresh = self.prepare_missing(transport, prepared).await;
        // Under the lock `take_standby` takes the list with, after it raised
        // the flag: once the standby took over, what it holds was handed on,
        // and a channel opened meanwhile would be nobody's.
        let orphans = {
            let mut list = lock(prepared);
            if taken_over.load(Ordering::Acquire) {
                fresh
            } else {
                list.extend(fresh);
                Vec::new()
            }
        };
        for p in orphans {
            let _ = p.channel.close().await;
        }
    }

    /// Try every broker once, in the strategy's order.
    async fn connect_cycle(&self, link: &mut Link) -> Result<Active> {
        let shared = &self.shared;
        if let Some(active) = self.take_standby(link) {
            return Ok(active);
        }
        let order = shared.strategy.cycle(&shared.urls, link.last);
        let mut failures = Vec::new();
        let mut last_error = None;
        for index in order {
            let url = &shared.urls[index];
            link.last = Some(index);
            let options = self.connect_options(url)?;
            let attempt = tokio::time::timeout(options.connect_timeout, AnyTransport::connect(url, &options));
            let error = match attempt.await {
                Ok(Ok(transport)) => {
                    tracing::debug!(broker = %url, "connected");
                    return Ok(self.new_active(index, Arc::new(transport), false, Vec::new()));
                }
                Ok(Err(e)) => e,
                Err(_) => Error::timeout(format!(
                    "connecting to {url} took longer than {:?}",
                    options.connect_timeout
                )),
            };
            tracing::warn!(broker = %url, error = %error, "connection attempt failed");
            if error.is_fatal() {
                return Err(error);
            }
            failures.push(format!("{url}: {error}"));
            last_error = Some(error);
        }
        match last_error {
            Some(error) if failures.len() == 1 => Err(error),
            Some(error) => Err(Error::new(
                error.kind(),
                format!("could not connect to any broker: {}", failures.join("; ")),
            )),
            None => Err(Error::config("a connection needs at least one broker URL")),
        }
    }

    fn connect_options(&self, url: &BrokerUrl) -> Result<ConnectOptions> {
        let shared = &self.shared;
        let heartbeat = match shared.heartbeat {
            Some(explicit) => explicit,
            None => match url.query_param("heartbeat") {
                Some(_) => url.heartbeat()?,
                None => Some(DEFAULT_HEARTBEAT),
            },
        };
        Ok(ConnectOptions {
            connect_timeout: shared
                .connect_timeout
                .or(url.connect_timeout()?)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            heartbeat,
            connection_name: shared.connection_name.clone(),
            transport_options: shared.transport_options.clone(),
            events: shared.events.clone(),
            keep_unconfirmed: shared.recovery,
            max_unconfirmed: shared.max_unconfirmed,
            publish_wait: shared.retry.deadline.unwrap_or(Duration::from_secs(60)),
        })
    }
}

/// Run `attempt` until it succeeds, a fatal error, or the policy's end.
pub(crate) async fn retry_loop<T, F, Fut>(policy: &RetryPolicy, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut retries = 0u32;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => pause_or_give_up(policy, error, &mut retries, started).await?,
        }
    }
}

/// After a failed attempt: give up (returning the error) when it is fatal or
/// the policy ran out, else wait the policy's pause.
pub(crate) async fn pause_or_give_up(
    policy: &RetryPolicy,
    error: Error,
    retries: &mut u32,
    started: Instant,
) -> Result<()> {
    if error.is_fatal() {
        return Err(error);
    }
    if !policy.allows(*retries, started.elapsed()) {
        return Err(if *retries == 0 {
            error
        } else {
            Error::new(
                error.kind(),
                format!("gave up after {retries} retries in {:?}: {}", started.elapsed(), error.message()),
            )
            .with_reply_from(&error)
        });
    }
    let mut pause = policy.pause(*retries);
    if let Some(deadline) = policy.deadline {
        pause = pause.min(deadline.saturating_sub(started.elapsed()));
    }
    if let Some(on_error) = &policy.on_error {
        on_error(&error, pause);
    }
    tracing::debug!(error = %error, retry = *retries + 1, ?pause, "retrying");
    tokio::time::sleep(pause).await;
    *retries += 1;
    Ok(())
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_uri(false))
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("urls", &self.shared.urls)
            .field("current", &self.current_url())
            .field("connected", &self.is_connected())
            .field("failover_strategy", &self.shared.strategy)
            .field("automatic_recovery", &self.shared.recovery)
            .finish()
    }
}
