//! Connection and producer pools (Kombu's `kombu.pools`), and the global
//! registry of pools keyed by broker URL.
//!
//! A pool hands out at most `limit` resources at a time (0: unpooled, every
//! acquire makes a fresh one and its release closes it). Resources are made
//! lazily, kept when released, and replaced when they broke while in use: a
//! guard marked [`broken`](PoolGuard::discard), or dropped while the thread
//! panics, or holding a connection the application closed, is closed
//! instead of going back to the pool. Pools are `Clone` handles, safe to
//! share across tasks and threads.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::runtime;

use crate::error::{Error, ErrorKind, Result};

use crate::model::connection::{Connection, ConnectionBuilder};

use crate::model::producer::{Producer, ProducerBuilder};

/// Kombu's default pool limit.
pub const DEFAULT_LIMIT: usize = 10;

type Make<T> = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T>> + Send>> + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a pool needs to know about what it holds.
trait Resource: Send + Sync + 'static {
    /// False when the resource can no longer be used and must be replaced.
    fn reusable(&self) -> bool;
    /// Close it (in the background).
    fn close(self);
}

impl Resource for Connection {
    fn reusable(&self) -> bool {
        !self.is_closed_by_app()
    }
    fn close(self) {
        runtime::in_background(async move {
            let _ = Connection::close(&self).await;
        });
    }
}

impl Resource for Producer {
    fn reusable(&self) -> bool {
        !self.channel().connection().is_closed_by_app()
    }
    fn close(self) {
        runtime::in_background(async move {
            let _ = self.channel().close().await;
        });
    }
}

struct State<T> {
    limit: usize,
    in_use: usize,
    idle: Vec<T>,
    /// Bumped by `reset`: resources of an older generation are closed on
    /// release instead of kept.
    generation: u64,
}

struct Inner<T> {
    what: &'static str,
    make: Make<T>,
    state: Mutex<State<T>>,
    released: Notify,
}

/// A pool of `T` (the shared machinery behind [`ConnectionPool`] and
/// [`ProducerPool`]).
struct Pool<T: Resource> {
    inner: Arc<Inner<T>>,
}

impl<T: Resource> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Pool { inner: self.inner.clone() }
    }
}

impl<T: Resource> Pool<T> {
    fn new(what: &'static str, limit: usize, make: Make<T>) -> Pool<T> {
        Pool {
            inner: Arc::new(Inner {
                what,
                make,
                state: Mutex::new(State { limit, in_use: 0, idle: Vec::new(), generation: 0 }),
                released: Notify::new(),
            }),
        }
    }

    /// Take a resource; `wait` is `None` to fail at once when the limit is
    /// reached, `Some(None)` to wait as long as it takes.
    async fn acquire(&self, wait: Option<Option<Duration>>) -> Result<PoolGuard<T>> {
        let deadline = wait.flatten().map(|d| tokio::time::Instant::now() + d);
        loop {
            let released = self.inner.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let taken = {
                let mut state = lock(&self.inner.state);
                if state.limit == 0 {
                    Some((None, state.generation, true))
                } else if state.in_use < state.limit {
                    state.in_use += 1;
                    Some((state.idle.pop(), state.generation, false))
                } else {
                    None
                }
            };
            if let Some((idle, generation, unpooled)) = taken {
                let resource = match idle {
                    Some(r) if r.reusable() => Ok(r),
                    Some(broken) => {
                        broken.close();
                        (self.inner.make)().await
                    }
                    None => (self.inner.make)().await,
                };
                return match resource {
                    Ok(resource) => Ok(PoolGuard {
                        resource: Some(resource),
                        pool: self.clone(),
                        generation,
                        unpooled,
                        broken: false,
                    }),
                    Err(e) => {
                        if !unpooled {
                            lock(&self.inner.state).in_use -= 1;
                            self.inner.released.notify_one();
                        }
                        Err(e)
                    }
                };
            }
            let limit = lock(&self.inner.state).limit;
            let exceeded = || {
                Error::new(
                    ErrorKind::LimitExceeded,
                    format!("all {limit} {}s of the pool are in use", self.inner.what),
                )
            };
            match (wait, deadline) {
                (None, _) => return Err(exceeded()),
                (Some(_), None) => released.await,
                (Some(_), Some(deadline)) => {
                    if tokio::time::timeout_at(deadline, released).await.is_err() {
                        return Err(Error::timeout(format!(
                            "no {} of the pool (limit {limit}) was released in time",
                            self.inner.what
                        )));
                    }
                }
            }
        }
    }

    fn give_back(&self, resource: T, generation: u64, unpooled: bool, broken: bool) {
        if unpooled {
            resource.close();
            return;
        }
        let extra = {
            let mut state = lock(&self.inner.state);
            state.in_use = state.in_use.saturating_sub(1);
            let keep = !broken
                && generation == state.generation
                && resource.reusable()
                && state.idle.len() + state.in_use < state.limit;
            if keep {
                state.idle.push(resource);
                None
            } else {
                Some(resource)
            }
        };
        if let Some(resource) = extra {
            resource.close();
        }
        self.inner.released.notify_one();
    }

    fn set_limit(&self, limit: usize) {
        let surplus: Vec<T> = {
            let mut state = lock(&self.inner.state);
            state.limit = limit;
            let keep = limit.saturating_sub(state.in_use).min(state.idle.len());
            state.idle.split_off(keep)
        };
        for resource in surplus {
            resource.close();
        }
        self.inner.released.notify_waiters();
    }

    fn reset(&self) {
        let idle: Vec<T> = {
            let mut state = lock(&self.inner.state);
            state.generation += 1;
            std::mem::take(&mut state.idle)
        };
        for resource in idle {
            resource.close();
        }
        self.inner.released.notify_waiters();
    }

    fn stats(&self) -> (usize, usize, usize) {
        let state = lock(&self.inner.state);
        (state.limit, state.in_use, state.idle.len())
    }
}

/// A resource taken from a pool; dropping it gives it back.
struct PoolGuard<T: Resource> {
    resource: Option<T>,
    pool: Pool<T>,
    generation: u64,
    unpooled: bool,
    broken: bool,
}

impl<T: Resource> Deref for PoolGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Only `Drop` takes the resource out.
        self.resource.as_ref().unwrap_or_else(|| unreachable!("a pool guard holds its resource until dropped"))
    }
}

impl<T: Resource> Drop for PoolGuard<T> {
    fn drop(&mut self) {
        if let Some(resource) = self.resource.take() {
            let broken = self.broken || std::thread::panicking();
            self.pool.give_back(resource, self.generation, self.unpooled, broken);
        }
    }
}

macro_rules! pool_api {
    ($pool:ident, $guard:ident, $resource:ty, $what:literal) => {
        #[doc = concat!("A ", $what, " taken from a [`", stringify!($pool), "`]; dropping it gives it back.")]
        ///
        /// Call [`discard`](Self::discard) when it broke while you used it:
        /// it is then closed and the pool makes a fresh one next time. One
        /// dropped while its thread panics is discarded too.
        #[must_use = "dropping it releases it to the pool at once"]
        pub struct $guard {
            guard: PoolGuard<$resource>,
        }

        impl $guard {
            /// Mark it broken: closed on release, never handed out again.
            pub fn discard(mut self) {
                self.guard.broken = true;
            }
        }

        impl std::fmt::Debug for $guard {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($guard)).field("unpooled", &self.guard.unpooled).finish_non_exhaustive()
            }
        }

        impl std::fmt::Debug for $pool {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let (limit, in_use, idle) = self.pool.stats();
                f.debug_struct(stringify!($pool))
                    .field("limit", &limit)
                    .field("in_use", &in_use)
                    .field("idle", &idle)
                    .finish()
            }
        }

        impl Deref for $guard {
            type Target = $resource;
            fn deref(&self) -> &$resource {
                &self.guard
            }
        }

        impl $pool {
            #[doc = concat!("Take a ", $what, ", waiting as long as it takes for one to be released.")]
            pub async fn acquire(&self) -> Result<$guard> {
                self.pool.acquire(Some(None)).await.map(|guard| $guard { guard })
            }

            #[doc = concat!("Take a ", $what, ", waiting at most `timeout`; a [`Timeout`](ErrorKind::Timeout) error after it.")]
            pub async fn acquire_timeout(&self, timeout: Duration) -> Result<$guard> {
                self.pool.acquire(Some(Some(timeout))).await.map(|guard| $guard { guard })
            }

            #[doc = concat!("Take a ", $what, " if one is free, or fail at once with [`LimitExceeded`](ErrorKind::LimitExceeded).")]
            pub async fn acquire_nowait(&self) -> Result<$guard> {
                self.pool.acquire(None).await.map(|guard| $guard { guard })
            }

            /// The most resources handed out at once (0: unpooled).
            pub fn limit(&self) -> usize {
                self.pool.stats().0
            }

            /// Change the limit at run time; idle resources above it are closed.
            pub fn set_limit(&self, limit: usize) {
                self.pool.set_limit(limit)
            }

            /// How many are handed out now.
            pub fn in_use(&self) -> usize {
                self.pool.stats().1
            }

            /// How many wait, made, for the next acquire.
            pub fn idle(&self) -> usize {
                self.pool.stats().2
            }

            /// Close every idle resource, and every handed-out one when it
            /// comes back; the next acquires make fresh ones.
            pub fn reset(&self) {
                self.pool.reset()
            }
        }
    };
}

/// A pool of connections made from one [`ConnectionBuilder`] (Kombu's
/// `Connection.Pool`).
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, ConnectionPool};
///
/// let pool = ConnectionPool::new(Connection::builder("memory://"), 2);
/// let conn = pool.acquire().await?;
/// conn.producer().routing_key("pool-doc").build().await?.publish("hi").send().await?;
/// let second = pool.acquire_nowait().await?;
/// assert!(pool.acquire_nowait().await.unwrap_err().is_limit_exceeded());
/// drop((conn, second)); // back to the pool
/// assert_eq!(pool.idle(), 2);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct ConnectionPool {
    pool: Pool<Connection>,
}

impl ConnectionPool {
    /// A pool of at most `limit` connections built by `builder`.
    pub fn new(builder: ConnectionBuilder, limit: usize) -> ConnectionPool {
        let make: Make<Connection> = Arc::new(move || {
            let builder = builder.clone();
            Box::pin(async move { builder.build() })
        });
        ConnectionPool { pool: Pool::new("connection", limit, make) }
    }
}

pool_api!(ConnectionPool, PooledConnection, Connection, "connection");

/// A pool of producers (Kombu's `ProducerPool`): each keeps its channel and
/// confirm mode between uses. They share one connection, whose channels
/// carry them side by side.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, ProducerPool};
///
/// let conn = Connection::new("memory://")?;
/// let producers = ProducerPool::new(conn.producer().routing_key("producer-pool-doc"), 4);
/// producers.acquire().await?.publish("one").send().await?;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct ProducerPool {
    pool: Pool<Producer>,
}

impl ProducerPool {
    /// A pool of at most `limit` producers built by `builder`.
    pub fn new(builder: ProducerBuilder, limit: usize) -> ProducerPool {
        let make: Make<Producer> = Arc::new(move || {
            let builder = builder.clone();
            Box::pin(async move { builder.build().await })
        });
        ProducerPool { pool: Pool::new("producer", limit, make) }
    }
}

pool_api!(ProducerPool, PooledProducer, Producer, "producer");

struct Registry {
    limit: usize,
    connections: HashMap<String, ConnectionPool>,
    producers: HashMap<String, ProducerPool>,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    lock(REGISTRY.get_or_init(|| {
        Mutex::new(Registry { limit: DEFAULT_LIMIT, connections: HashMap::new(), producers: HashMap::new() })
    }))
}

/// The process-wide connection pool for `url` (Kombu's
/// `kombu.pools.connections[conn]`), made on first use with the global limit.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// let conn = kelp::pools::connections("memory://")?.acquire().await?;
/// assert!(conn.urls()[0].scheme() == "memory");
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub fn connections(url: &str) -> Result<ConnectionPool> {
    let mut registry = registry();
    if let Some(pool) = registry.connections.get(url) {
        return Ok(pool.clone());
    }
    crate::url::BrokerUrl::parse_list(url)?;
    let pool = ConnectionPool::new(Connection::builder(url), registry.limit);
    registry.connections.insert(url.to_owned(), pool.clone());
    Ok(pool)
}

/// The process-wide producer pool for `url` (Kombu's
/// `kombu.pools.producers[conn]`): producers with default settings on one
/// connection to `url`.
pub fn producers(url: &str) -> Result<ProducerPool> {
    let mut registry = registry();
    if let Some(pool) = registry.producers.get(url) {
        return Ok(pool.clone());
    }
    let connection = Connection::new(url)?;
    let pool = ProducerPool::new(connection.producer(), registry.limit);
    registry.producers.insert(url.to_owned(), pool.clone());
    Ok(pool)
}

/// Set the limit of every pool in the registry, and of those made later
/// (Kombu's `kombu.pools.set_limit`).
pub fn set_limit(limit: usize) {
    let mut registry = registry();
    registry.limit = limit;
    for pool in registry.connections.values() {
        pool.set_limit(limit);
    }
    for pool in registry.producers.values() {
        pool.set_limit(limit);
    }
}

/// The registry's limit.
pub fn limit() -> usize {
    registry().limit
}

/// Close everything the registry's pools hold and forget the pools (Kombu's
/// `kombu.pools.reset`).
pub fn reset() {
    let mut registry = registry();
    for pool in registry.connections.values() {
        pool.reset();
    }
    for pool in registry.producers.values() {
        pool.reset();
    }
    registry.connections.clear();
    registry.producers.clear();
}
