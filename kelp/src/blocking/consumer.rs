//! The blocking [`Consumer`] and its builder.

use std::future::Future;
use std::time::Duration;

use crate::codec::serialization::Accept;
use crate::error::{Error, Result};
use crate::model::entity::Queue;

use super::channel::Channel;
use super::connection::Connection;
use super::forward::forward_setters;
use super::message::Message;
use super::wait::{run, wait};
use crate::model::consumer::consumer_builder_options;

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
#[derive(Debug)]
#[must_use = "a builder does nothing until built"]
pub struct ConsumerBuilder {
    pub(super) inner: crate::model::consumer::ConsumerBuilder,
}

impl ConsumerBuilder {
    consumer_builder_options!(forward_setters, "ConsumerBuilder");

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
    pub(super) inner: crate::model::consumer::Consumer,
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

/// The ways to start a consumer, beside its builder.
impl Connection {
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
}

impl Channel {
    /// A consumer on this channel.
    pub fn consumer<I: IntoIterator<Item = crate::model::entity::Queue>>(&self, queues: I) -> ConsumerBuilder {
        ConsumerBuilder {
            inner: self.inner.consumer(queues),
        }
    }
}
