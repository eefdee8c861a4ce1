//! The blocking forms of the pools, the simple interface and the common
//! patterns, with the async names.

use std::ops::Deref;
use std::time::Duration;

use serde::Serialize;

use super::connection::Connection;
use super::forward::forward_setters;
use super::message::Message;
use super::producer::{Producer, ProducerBuilder};
use super::wait::run;
use crate::patterns::simple::simple_builder_options;
use crate::codec::compression::Compression;
use crate::codec::serialization::{Accept, Serializer};
use crate::error::Result;
use crate::model::entity::Queue;

pub use crate::patterns::rpc::Broadcast;

/// A pool of connections; see [`crate::ConnectionPool`].
///
/// # Examples
///
/// ```
/// use kelp::blocking::ConnectionPool;
///
/// let pool = ConnectionPool::new(kelp::Connection::builder("memory://"), 1);
/// let conn = pool.acquire()?;
/// conn.producer().routing_key("blocking-pool-doc").build()?.publish("hi").send()?;
/// assert!(pool.acquire_nowait().unwrap_err().is_limit_exceeded());
/// drop(conn);
/// assert_eq!(pool.idle(), 1);
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ConnectionPool {
    pub(super) inner: crate::patterns::pools::ConnectionPool,
}

/// A connection taken from a [`ConnectionPool`]; dropping it gives it back.
#[derive(Debug)]
#[must_use = "dropping it releases it to the pool at once"]
pub struct PooledConnection {
    connection: Connection,
    guard: crate::patterns::pools::PooledConnection,
}

impl PooledConnection {
    fn new(guard: crate::patterns::pools::PooledConnection) -> PooledConnection {
        PooledConnection { connection: Connection::from_async((*guard).clone()), guard }
    }

    /// Mark it broken: closed on release, never handed out again.
    pub fn discard(self) {
        self.guard.discard();
    }
}

impl Deref for PooledConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.connection
    }
}

/// A pool of producers; see [`crate::ProducerPool`].
///
/// # Examples
///
/// ```
/// use kelp::blocking::{Connection, ProducerPool};
///
/// let conn = Connection::new("memory://")?;
/// let pool = ProducerPool::new(conn.producer().routing_key("blocking-producer-pool-doc"), 2);
/// pool.acquire()?.publish("one").send()?;
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ProducerPool {
    pub(super) inner: crate::patterns::pools::ProducerPool,
}

/// A producer taken from a [`ProducerPool`]; dropping it gives it back.
#[derive(Debug)]
#[must_use = "dropping it releases it to the pool at once"]
pub struct PooledProducer {
    producer: Producer,
    guard: crate::patterns::pools::PooledProducer,
}

impl PooledProducer {
    fn new(guard: crate::patterns::pools::PooledProducer) -> PooledProducer {
        PooledProducer { producer: Producer { inner: (*guard).clone() }, guard }
    }

    /// Mark it broken: closed on release, never handed out again.
    pub fn discard(self) {
        self.guard.discard();
    }
}

impl Deref for PooledProducer {
    type Target = Producer;
    fn deref(&self) -> &Producer {
        &self.producer
    }
}

macro_rules! blocking_pool_api {
    ($pool:ident, $guard:ident) => {
        impl $pool {
            /// Take one, waiting as long as it takes.
            pub fn acquire(&self) -> Result<$guard> {
                run(self.inner.acquire()).map($guard::new)
            }

            /// Take one, waiting at most `timeout` (then a `Timeout` error).
            pub fn acquire_timeout(&self, timeout: Duration) -> Result<$guard> {
                run(self.inner.acquire_timeout(timeout)).map($guard::new)
            }

            /// Take one if free, or fail at once with `LimitExceeded`.
            pub fn acquire_nowait(&self) -> Result<$guard> {
                run(self.inner.acquire_nowait()).map($guard::new)
            }

            /// The limit (0: unpooled).
            pub fn limit(&self) -> usize {
                self.inner.limit()
            }

            /// Change the limit at run time.
            pub fn set_limit(&self, limit: usize) {
                self.inner.set_limit(limit)
            }

            /// How many are handed out.
            pub fn in_use(&self) -> usize {
                self.inner.in_use()
            }

            /// How many wait for the next acquire.
            pub fn idle(&self) -> usize {
                self.inner.idle()
            }

            /// Close everything; the next acquires make fresh ones.
            pub fn reset(&self) {
                self.inner.reset()
            }

            /// The async pool behind this one.
            pub fn as_async(&self) -> &crate::$pool {
                &self.inner
            }
        }
    };
}

impl ConnectionPool {
    /// A pool of at most `limit` connections built by `builder`.
    pub fn new(builder: crate::model::connection::ConnectionBuilder, limit: usize) -> ConnectionPool {
        ConnectionPool { inner: crate::patterns::pools::ConnectionPool::new(builder, limit) }
    }
}

impl ProducerPool {
    /// A pool of at most `limit` producers built by `builder`.
    pub fn new(builder: ProducerBuilder, limit: usize) -> ProducerPool {
        ProducerPool { inner: crate::patterns::pools::ProducerPool::new(builder.inner, limit) }
    }
}

blocking_pool_api!(ConnectionPool, PooledConnection);
blocking_pool_api!(ProducerPool, PooledProducer);

/// The process-wide pools; see [`crate::pools`].
pub mod pools {
    pub use crate::patterns::pools::{DEFAULT_LIMIT, limit, reset, set_limit};

    /// The process-wide connection pool for `url`.
    pub fn connections(url: &str) -> crate::error::Result<super::ConnectionPool> {
        crate::patterns::pools::connections(url).map(|inner| super::ConnectionPool { inner })
    }

    /// The process-wide producer pool for `url`.
    pub fn producers(url: &str) -> crate::error::Result<super::ProducerPool> {
        crate::patterns::pools::producers(url).map(|inner| super::ProducerPool { inner })
    }
}

/// Options of a blocking [`SimpleQueue`]; see [`crate::SimpleBuilder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until built"]
pub struct SimpleBuilder {
    pub(super) inner: crate::patterns::simple::SimpleBuilder,
}

impl SimpleBuilder {
    simple_builder_options!(forward_setters, "SimpleBuilder");




    /// Declare and build.
    pub fn build(self) -> Result<SimpleQueue> {
        run(self.inner.build()).map(|inner| SimpleQueue { inner })
    }
}

/// A named queue with `put` and `get`; see [`crate::SimpleQueue`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use kelp::blocking::{Connection, SimpleQueue};
///
/// let conn = Connection::new("memory://")?;
/// let queue = SimpleQueue::new(&conn, "blocking-simple-doc")?;
/// queue.put(&"hello")?;
/// let message = queue.get_timeout(Duration::from_secs(5))?;
/// assert_eq!(message.decode::<String>()?, "hello");
/// message.ack()?;
/// assert!(queue.get_nowait().unwrap_err().is_empty());
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Debug)]
pub struct SimpleQueue {
    pub(super) inner: crate::patterns::simple::SimpleQueue,
}

/// A transient simple queue; see [`crate::SimpleBuffer`].
#[derive(Debug)]
pub struct SimpleBuffer;

impl SimpleBuffer {
    /// A buffer named `name` (a simple queue with other defaults, as in Kombu).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(connection: &Connection, name: &str) -> Result<SimpleQueue> {
        SimpleBuffer::builder(connection, name).build()
    }

    /// A buffer named `name`, with options.
    pub fn builder(connection: &Connection, name: &str) -> SimpleBuilder {
        SimpleBuilder { inner: crate::patterns::simple::SimpleBuffer::builder(connection.as_async(), name) }
    }
}

impl SimpleQueue {
    /// The queue `name` on the direct exchange `name`.
    pub fn new(connection: &Connection, name: &str) -> Result<SimpleQueue> {
        SimpleQueue::builder(connection, name).build()
    }

    /// The queue `name`, with options.
    pub fn builder(connection: &Connection, name: &str) -> SimpleBuilder {
        SimpleBuilder { inner: crate::patterns::simple::SimpleQueue::builder(connection.as_async(), name) }
    }

    /// A simple queue over a queue you describe.
    pub fn from_queue(connection: &Connection, queue: Queue) -> SimpleBuilder {
        SimpleBuilder { inner: crate::patterns::simple::SimpleQueue::from_queue(connection.as_async(), queue) }
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        self.inner.queue()
    }

    /// Publish `body`.
    pub fn put<T: Serialize + ?Sized>(&self, body: &T) -> Result<()> {
        run(self.inner.put(body))
    }

    /// Take the next message, waiting as long as it takes.
    pub fn get(&self) -> Result<Message> {
        run(self.inner.get()).map(|inner| Message { inner })
    }

    /// Take the next message, waiting at most `timeout` (then `Empty`).
    pub fn get_timeout(&self, timeout: Duration) -> Result<Message> {
        run(self.inner.get_timeout(timeout)).map(|inner| Message { inner })
    }

    /// Take a message if one is there, or fail at once with `Empty`.
    pub fn get_nowait(&self) -> Result<Message> {
        run(self.inner.get_nowait()).map(|inner| Message { inner })
    }

    /// How many messages wait.
    pub fn qsize(&self) -> Result<u32> {
        run(self.inner.qsize())
    }

    /// Remove every waiting message.
    pub fn clear(&self) -> Result<u32> {
        run(self.inner.clear())
    }

    /// Close the channel.
    pub fn close(&self) -> Result<()> {
        run(self.inner.close())
    }
}

/// Request / reply; see [`crate::RpcClient`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use kelp::Queue;
/// use kelp::blocking::{Connection, RpcClient};
///
/// let conn = Connection::new("memory://")?;
/// let requests = Queue::new("blocking-rpc-doc");
/// let mut server = conn.consumer([requests.clone()]).build()?;
/// let replier = conn.producer().build()?;
/// std::thread::spawn(move || {
///     for request in server.by_ref().flatten() {
///         let n: i64 = request.decode().unwrap();
///         kelp::blocking::send_reply(&replier, &request, &(n + 1)).unwrap();
///         request.ack().unwrap();
///     }
/// });
/// let client = RpcClient::new(&conn)?;
/// let reply = client.call("", "blocking-rpc-doc", &41, Duration::from_secs(5))?;
/// assert_eq!(reply.decode::<i64>()?, 42);
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Debug)]
pub struct RpcClient {
    pub(super) inner: crate::patterns::rpc::RpcClient,
}

impl RpcClient {
    /// A client on `connection`.
    pub fn new(connection: &Connection) -> Result<RpcClient> {
        run(crate::patterns::rpc::RpcClient::new(connection.as_async())).map(|inner| RpcClient { inner })
    }

    /// Where replies come back.
    pub fn reply_to(&self) -> &str {
        self.inner.reply_to()
    }

    /// Send `body` and wait at most `timeout` for its reply.
    pub fn call<T: Serialize + ?Sized>(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &T,
        timeout: Duration,
    ) -> Result<Message> {
        run(self.inner.call(exchange, routing_key, body, timeout)).map(|inner| Message { inner })
    }
}

/// Answer `request`; see [`crate::send_reply`].
pub fn send_reply<T: Serialize + ?Sized>(producer: &Producer, request: &Message, body: &T) -> Result<()> {
    run(crate::patterns::rpc::send_reply(&producer.inner, &request.inner, body))
}

/// Collect the replies to `correlation_id`; see [`crate::collect_replies`].
pub fn collect_replies(
    connection: &Connection,
    queue: Queue,
    correlation_id: &str,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<Message>> {
    let messages = run(crate::patterns::rpc::collect_replies(connection.as_async(), queue, correlation_id, limit, timeout))?;
    Ok(messages.into_iter().map(|inner| Message { inner }).collect())
}
