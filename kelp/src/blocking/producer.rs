//! The blocking [`Producer`], its builder and one [`Publish`].

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::codec::compression::Compression;
use crate::codec::serialization::Serializer;
use crate::content::message::ReturnedMessage;
use crate::content::text::SharedStr;
use crate::content::value::{FieldTable, Value};
use crate::error::Result;
use crate::model::entity::{DeliveryMode, Entity, Exchange};
use crate::recovery::retry::RetryPolicy;

use super::channel::Channel;
use super::connection::Connection;
use super::forward::forward_setters;
use super::wait::run;
use crate::model::producer::{producer_builder_options, publish_options};

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
#[derive(Debug)]
#[must_use = "a builder does nothing until built"]
pub struct ProducerBuilder {
    pub(super) inner: crate::model::producer::ProducerBuilder,
}

impl ProducerBuilder {
    producer_builder_options!(forward_setters, "ProducerBuilder");

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
    pub(super) inner: crate::model::producer::Producer,
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
#[derive(Debug)]
#[must_use = "nothing is published until send() is called"]
pub struct Publish<'p, T: ?Sized> {
    pub(super) inner: crate::model::producer::Publish<'p, T>,
}


impl<'p, T: Serialize + ?Sized> Publish<'p, T> {
    publish_options!(forward_setters, "Publish");



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

/// The ways to start a producer, beside its builder.
impl Connection {
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
}

impl Channel {
    /// A producer on this channel.
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder {
            inner: self.inner.producer(),
        }
    }
}
