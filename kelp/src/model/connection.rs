//! [`Connection`]: a lazily connected link to one broker among several.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::model::setters::builder_setters;
use crate::content::value::{FieldTable, Value};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::recovery::failover::FailoverStrategy;
use crate::recovery::retry::{RetryPolicy, retry_loop};
use crate::recovery::settings::Settings;
use crate::recovery::supervisor::Supervisor;
use crate::transport::Capabilities;
use crate::url::BrokerUrl;

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
    confirm_timeout: Option<Duration>,
    standby: bool,
}

/// Every option of a connection builder, once: expanded into its setters here and into
/// the blocking twin's forwarding setters in `blocking`, so the two faces
/// cannot drift apart. Each item is a setter body on `b: &mut Self`.
macro_rules! connection_builder_options {
    ($expand:ident $(, $($face:tt)*)?) => {
        $expand! {
            $($($face)*;)?
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
            fn max_unconfirmed(b, n: usize) {
                b.max_unconfirmed = n.max(1);
            }
            /// Leave a broker that leaves a publish unconfirmed for this long, and
            /// fail over (default 15 s; `None` never).
            ///
            /// Heartbeats catch a broker that went silent. A cluster node cut off
            /// from the other nodes by a network partition is not silent: it keeps
            /// its connections and heartbeats, and it confirms nothing that needs
            /// the rest of the cluster (a quorum queue's majority), or a confirm
            /// now and then. This catches that. Time spent blocked by the broker (a memory or disk alarm)
            /// does not count. What was not confirmed is published again on the
            /// next broker.
            ///
            /// # Examples
            ///
            /// ```
            /// use std::time::Duration;
            ///
            /// // Large bodies to a slow disk: allow a minute without a confirm.
            /// let conn = kelp::Connection::builder("memory://")
            ///     .confirm_timeout(Some(Duration::from_secs(60)))
            ///     .build()?;
            /// # let _ = conn;
            /// # Ok::<(), kelp::Error>(())
            /// ```
            fn confirm_timeout(b, timeout: Option<Duration>) {
                b.confirm_timeout = timeout.filter(|t| !t.is_zero());
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
            fn retry_policy(b, policy: RetryPolicy) {
                b.retry = policy;
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
            fn automatic_recovery(b, on: bool) {
                b.recovery = on;
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
            fn warm_standby(b, on: bool) {
                b.standby = on;
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
            fn alternates<I, S>(b, urls: I) where [I: IntoIterator<Item = S>, S: Into<String>] {
                b.urls.extend(urls.into_iter().map(Into::into));
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
            fn failover_strategy(b, strategy: FailoverStrategy) {
                b.strategy = strategy;
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
            fn connect_timeout(b, timeout: Duration) {
                b.connect_timeout = Some(timeout);
            }
            /// Heartbeat interval; `None` turns heartbeats off (default 10 s, or
            /// `heartbeat=` in the URL; RabbitMQ recommends 5 to 20 s). The broker
            /// and kelp agree on the smaller non-zero value; kelp declares the
            /// broker dead after one interval of silence (two of RabbitMQ's
            /// half-interval heartbeats missed), so a frozen broker is left within
            /// 1.25 intervals.
            ///
            /// # Examples
            ///
            /// ```
            /// use std::time::Duration;
            ///
            /// // Notice a dead broker within about 6 seconds.
            /// let conn = kelp::Connection::builder("memory://")
            ///     .heartbeat(Some(Duration::from_secs(5)))
            ///     .build()?;
            /// # let _ = conn;
            /// # Ok::<(), kelp::Error>(())
            /// ```
            fn heartbeat(b, interval: Option<Duration>) {
                b.heartbeat = Some(interval.filter(|d| !d.is_zero()));
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
            fn connection_name(b, name: impl Into<String>) {
                b.connection_name = Some(name.into());
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
            fn transport_option(b, key: impl Into<String>, value: impl Into<Value>) {
                b.transport_options.insert(key.into(), value.into());
            }
        }
    };
}
#[cfg_attr(not(feature = "blocking"), allow(unused_imports))]
pub(crate) use connection_builder_options;

impl ConnectionBuilder {
    connection_builder_options!(builder_setters);

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
            confirm_timeout: Some(Duration::from_secs(15)),
            standby: false,
        }
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
            supervisor: Arc::new(Supervisor::new(Settings {
                urls,
                strategy: self.strategy,
                connect_timeout: self.connect_timeout,
                heartbeat: self.heartbeat,
                connection_name: self.connection_name,
                transport_options: self.transport_options,
                retry: self.retry,
                recovery: self.recovery,
                max_unconfirmed: self.max_unconfirmed,
                confirm_timeout: self.confirm_timeout,
                standby: self.standby,
            })),
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
    supervisor: Arc<Supervisor>,
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
        self.supervisor.transport().await.map(|_| ())
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
        self.supervisor.is_connected()
    }

    /// True once the application closed this connection (pools replace it).
    pub(crate) fn is_closed_by_app(&self) -> bool {
        self.supervisor.is_closed_by_app()
    }

    /// The supervisor behind this connection (and its channels).
    pub(crate) fn supervisor(&self) -> &Arc<Supervisor> {
        &self.supervisor
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
        self.supervisor.close().await
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
        self.supervisor.clear_declared();
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
        self.supervisor.urls()
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
        self.supervisor.current_url()
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
        Ok(self.supervisor.transport().await?.transport.capabilities())
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
        self.supervisor.events().subscribe()
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
        &self.supervisor.settings.strategy
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
        &self.supervisor.settings.retry
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
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_uri(false))
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("urls", &self.urls())
            .field("current", &self.current_url())
            .field("connected", &self.is_connected())
            .field("failover_strategy", self.failover_strategy())
            .field("automatic_recovery", &self.supervisor.recovers())
            .finish()
    }
}
