//! The blocking [`Connection`] and its builder.

use std::time::{Duration, Instant};

use crate::content::value::Value;
use crate::error::Result;
use crate::model::entity::Entity;
use crate::recovery::failover::FailoverStrategy;
use crate::event::Event;
use crate::recovery::retry::{RetryPolicy, pause_or_give_up};
use crate::transport::api::Capabilities;
use crate::url::BrokerUrl;

use std::fmt;

use super::forward::forward_setters;
use super::wait::run;
use crate::model::connection::connection_builder_options;

/// Options of a blocking [`Connection`]; see [`crate::ConnectionBuilder`].
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use kelp::blocking::Connection;
///
/// let conn = Connection::builder("memory://")
///     .connect_timeout(Duration::from_secs(2))
///     .connection_name("nightly-report")
///     .build()?;
/// conn.connect()?;
/// assert!(conn.is_connected());
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until built"]
pub struct ConnectionBuilder {
    pub(super) inner: crate::model::connection::ConnectionBuilder,
}

impl ConnectionBuilder {
    connection_builder_options!(forward_setters, "ConnectionBuilder");

    /// Validate the URLs and options; does not connect. See
    /// [`ConnectionBuilder::build`](crate::ConnectionBuilder::build).
    pub fn build(self) -> Result<Connection> {
        Ok(Connection { inner: self.inner.build()? })
    }

    /// The async builder.
    pub fn into_async(self) -> crate::model::connection::ConnectionBuilder {
        self.inner
    }
}

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
    pub(super) inner: crate::model::connection::Connection,
}

impl Connection {
    /// Options for a connection to `url` (or a `;`-separated list); see
    /// [`Connection::builder`](crate::Connection::builder).
    pub fn builder(url: impl Into<String>) -> ConnectionBuilder {
        ConnectionBuilder { inner: crate::model::connection::Connection::builder(url) }
    }

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
    /// use std::time::{Duration, Instant};
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


    /// Options for a connection to any of `urls`; see
    /// [`Connection::builder_from_list`](crate::Connection::builder_from_list).
    pub fn builder_from_list<I, S>(urls: I) -> ConnectionBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ConnectionBuilder { inner: crate::model::connection::Connection::builder_from_list(urls) }
    }

    /// Connect, retrying by `policy`; see
    /// [`Connection::connect_with`](crate::Connection::connect_with).
    pub fn connect_with(&self, policy: &RetryPolicy) -> Result<()> {
        run(self.inner.connect_with(policy))
    }

    /// Run `op` until it succeeds, retrying recoverable errors by `policy`
    /// (Kombu's `ensure`); see [`Connection::ensure`](crate::Connection::ensure).
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Queue, RetryPolicy};
    /// use kelp::blocking::Connection;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let declared = conn.ensure(&RetryPolicy::default().max_retries(3), |conn| {
    ///     conn.default_channel()?.declare_queue(&Queue::new("blocking-ensure-doc"))
    /// })?;
    /// assert_eq!(declared.name, "blocking-ensure-doc");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn ensure<T>(&self, policy: &RetryPolicy, mut op: impl FnMut(&Connection) -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let mut retries = 0u32;
        loop {
            match op(self) {
                Ok(value) => return Ok(value),
                // The pause runs on kelp's runtime; the caller's thread waits.
                Err(error) => run(pause_or_give_up(policy, error, &mut retries, started))?,
            }
        }
    }

    /// Forget what [`maybe_declare`](Connection::maybe_declare) remembers.
    pub fn clear_declared(&self) {
        self.inner.clear_declared();
    }

    /// The broker URLs, in configuration order.
    pub fn urls(&self) -> &[BrokerUrl] {
        self.inner.urls()
    }

    /// The URL of the broker in use (or the first one when not connected).
    pub fn current_url(&self) -> &BrokerUrl {
        self.inner.current_url()
    }

    /// What the connected transport supports (connects if needed).
    pub fn capabilities(&self) -> Result<Capabilities> {
        run(self.inner.capabilities())
    }

    /// The connection's [`Event`]s; read them with `blocking_recv()`. See
    /// [`Connection::events`](crate::Connection::events).
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.inner.events()
    }

    /// The failover strategy.
    pub fn failover_strategy(&self) -> &FailoverStrategy {
        self.inner.failover_strategy()
    }

    /// The retry policy for reconnecting.
    pub fn retry_policy(&self) -> &RetryPolicy {
        self.inner.retry_policy()
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
