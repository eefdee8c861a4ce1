//! [`Connection`]: a lazily connected link to one broker among several.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::channel::{Channel, ChannelCore};
use crate::consumer::ConsumerBuilder;
use crate::entity::{Entity, Queue};
use crate::event::{Event, Events};
use crate::failover::FailoverStrategy;
use crate::producer::ProducerBuilder;
use crate::transport::{AnyTransport, Capabilities, ConnectOptions};
use crate::{BrokerUrl, Error, FieldTable, Result, Value};

/// Kombu's default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// RabbitMQ's default heartbeat; kelp keeps heartbeats on so that a frozen
/// broker is noticed.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(60);

/// Options of a [`Connection`]; build them with [`Connection::builder`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectionBuilder {
    urls: Vec<String>,
    strategy: FailoverStrategy,
    connect_timeout: Option<Duration>,
    heartbeat: Option<Option<Duration>>,
    connection_name: Option<String>,
    transport_options: FieldTable,
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
        }
    }

    /// Add alternate broker URLs (each may itself be a `;` list).
    pub fn alternates<I, S>(mut self, urls: I) -> ConnectionBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.urls.extend(urls.into_iter().map(Into::into));
        self
    }

    /// How to pick the next broker (default: round-robin).
    pub fn failover_strategy(mut self, strategy: FailoverStrategy) -> ConnectionBuilder {
        self.strategy = strategy;
        self
    }

    /// Time allowed for one connection attempt (default 5 s, or `connect_timeout=` in the URL).
    pub fn connect_timeout(mut self, timeout: Duration) -> ConnectionBuilder {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Heartbeat interval; `None` turns heartbeats off (default 60 s, or
    /// `heartbeat=` in the URL).
    pub fn heartbeat(mut self, interval: Option<Duration>) -> ConnectionBuilder {
        self.heartbeat = Some(interval.filter(|d| !d.is_zero()));
        self
    }

    /// A name shown by the broker's management tools.
    pub fn connection_name(mut self, name: impl Into<String>) -> ConnectionBuilder {
        self.connection_name = Some(name.into());
        self
    }

    /// A transport-specific option (Kombu's `transport_options`).
    pub fn transport_option(mut self, key: impl Into<String>, value: impl Into<Value>) -> ConnectionBuilder {
        self.transport_options.insert(key.into(), value.into());
        self
    }

    /// Validate the URLs and options; does not connect.
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
}

struct Link {
    last: Option<usize>,
}

pub(crate) struct Active {
    pub(crate) transport: AnyTransport,
    pub(crate) url_index: usize,
    pub(crate) generation: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connection {
    /// A connection to `url` (or a `;`-separated list of URLs), with default options.
    pub fn new(url: &str) -> Result<Connection> {
        Connection::builder(url).build()
    }

    /// Options for a connection to `url` (or a `;`-separated list).
    pub fn builder(url: impl Into<String>) -> ConnectionBuilder {
        ConnectionBuilder::new(vec![url.into()])
    }

    /// Options for a connection to any of `urls`.
    pub fn builder_from_list<I, S>(urls: I) -> ConnectionBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ConnectionBuilder::new(urls.into_iter().map(Into::into).collect())
    }

    /// Connect now (trying each broker once, in failover order) if not connected.
    pub async fn connect(&self) -> Result<()> {
        self.transport().await.map(|_| ())
    }

    /// True while connected to a broker.
    pub fn is_connected(&self) -> bool {
        self.active().is_some_and(|a| a.transport.is_open())
    }

    /// Close the connection: its channels, consumers and the broker link.
    /// The handle stays usable: the next operation connects again.
    pub async fn close(&self) -> Result<()> {
        let _link = self.shared.link.lock().await;
        lock(&self.shared.default_channel).take();
        let active = self
            .shared
            .active
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        lock(&self.shared.declared).clear();
        if let Some(active) = active {
            active.transport.close().await?;
        }
        Ok(())
    }

    /// Same as [`close`](Connection::close) (Kombu's name).
    pub async fn release(&self) -> Result<()> {
        self.close().await
    }

    /// Open a new channel.
    pub async fn channel(&self) -> Result<Channel> {
        let channel = Channel::new(self.clone(), ChannelCore::new(self));
        channel.transport_channel().await?;
        Ok(channel)
    }

    /// The connection's default channel, created on first use.
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
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder::for_connection(self.clone())
    }

    /// A consumer of `queues` on the default channel; finish with
    /// [`ConsumerBuilder::build`].
    pub fn consumer<I: IntoIterator<Item = Queue>>(&self, queues: I) -> ConsumerBuilder {
        ConsumerBuilder::for_connection(self.clone()).queues(queues)
    }

    /// Declare an exchange or queue unless this connection already declared
    /// it (Kombu's `maybe_declare`). Returns true if it was declared now.
    pub async fn maybe_declare(&self, entity: impl Into<Entity>) -> Result<bool> {
        let entity = entity.into();
        let key = entity.cache_key();
        if let Some(key) = &key {
            if lock(&self.shared.declared).contains(key) {
                return Ok(false);
            }
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
    pub fn clear_declared(&self) {
        lock(&self.shared.declared).clear();
    }

    /// The broker URLs, in configuration order.
    pub fn urls(&self) -> &[BrokerUrl] {
        &self.shared.urls
    }

    /// The URL of the broker in use (or the first one when not connected).
    pub fn current_url(&self) -> &BrokerUrl {
        let index = self.active().map_or(0, |a| a.url_index);
        // `urls` is never empty (checked at build), so this always finds one.
        &self.shared.urls[index.min(self.shared.urls.len() - 1)]
    }

    /// The current URL with the password masked (`amqp://guest:**@host:5672//`),
    /// or with it when asked for.
    pub fn as_uri(&self, include_password: bool) -> String {
        self.current_url().as_uri(include_password)
    }

    /// What the connected transport supports (connects if needed).
    pub async fn capabilities(&self) -> Result<Capabilities> {
        Ok(self.transport().await?.transport.capabilities())
    }

    /// Subscribe to the connection's [`Event`]s (connected, lost, blocked,
    /// consumer cancelled by the broker...). Events sent before subscribing
    /// are not replayed.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// The failover strategy.
    pub fn failover_strategy(&self) -> &FailoverStrategy {
        &self.shared.strategy
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
        if let Some(active) = self.active() {
            if active.transport.is_open() {
                return Ok(active);
            }
        }
        let mut link = self.shared.link.lock().await;
        if let Some(active) = self.active() {
            if active.transport.is_open() {
                return Ok(active);
            }
        }
        let active = Arc::new(self.connect_cycle(&mut link).await?);
        *self
            .shared
            .active
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(active.clone());
        Ok(active)
    }

    /// Try every broker once, in the strategy's order.
    async fn connect_cycle(&self, link: &mut Link) -> Result<Active> {
        let shared = &self.shared;
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
                    lock(&shared.declared).clear();
                    let generation = shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
                    tracing::debug!(broker = %url, generation, "connected");
                    return Ok(Active {
                        transport,
                        url_index: index,
                        generation,
                    });
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
        })
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
            .field("urls", &self.shared.urls)
            .field("current", &self.current_url())
            .field("connected", &self.is_connected())
            .field("failover_strategy", &self.shared.strategy)
            .finish()
    }
}
