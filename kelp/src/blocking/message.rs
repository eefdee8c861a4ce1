//! The blocking [`Message`].

use std::ops::Deref;

use serde::de::DeserializeOwned;

use crate::error::Result;

use super::wait::run;

/// A received message; see [`crate::Message`]. Its accessors are reached
/// through `Deref`; settling blocks.
///
/// # Examples
///
/// ```
/// use kelp::blocking::Connection;
/// use kelp::Queue;
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel()?;
/// let queue = Queue::new("blocking-message-doc");
/// channel.declare_queue(&queue)?;
/// conn.producer().routing_key("blocking-message-doc").build()?.publish("job").send()?;
///
/// let message = channel.get(&queue, false)?.expect("a message");
/// assert_eq!(message.routing_key(), "blocking-message-doc"); // async Message accessors
/// message.requeue()?;
/// let again = channel.get(&queue, false)?.expect("requeued");
/// assert!(again.redelivered());
/// again.ack()?;
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Debug)]
pub struct Message {
    pub(super) inner: crate::model::message::Message,
}

impl Message {
    /// Acknowledge.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-ack-doc");
    /// channel.declare_queue(&queue)?;
    /// conn.producer().routing_key("blocking-ack-doc").build()?.publish("done").send()?;
    /// let message = channel.get(&queue, false)?.expect("a message");
    /// message.ack()?;
    /// assert!(message.is_settled());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn ack(&self) -> Result<()> {
        run(self.inner.ack())
    }

    /// Acknowledge this and all earlier messages of the channel.
    pub fn ack_multiple(&self) -> Result<()> {
        run(self.inner.ack_multiple())
    }

    /// Reject (drop or dead-letter).
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-reject-doc");
    /// channel.declare_queue(&queue)?;
    /// conn.producer().routing_key("blocking-reject-doc").build()?.publish("bad").send()?;
    /// channel.get(&queue, false)?.expect("a message").reject()?;
    /// assert!(channel.get(&queue, false)?.is_none());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn reject(&self) -> Result<()> {
        run(self.inner.reject())
    }

    /// Reject and requeue.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-requeue-doc");
    /// channel.declare_queue(&queue)?;
    /// conn.producer().routing_key("blocking-requeue-doc").build()?.publish("later").send()?;
    /// channel.get(&queue, false)?.expect("a message").requeue()?;
    /// assert!(channel.get(&queue, false)?.expect("back again").redelivered());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn requeue(&self) -> Result<()> {
        run(self.inner.requeue())
    }

    /// Decode the body into `T`.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-decode-doc");
    /// channel.declare_queue(&queue)?;
    /// conn.producer().routing_key("blocking-decode-doc").build()?.publish(&(1, "one")).send()?;
    /// let message = channel.get(&queue, true)?.expect("a message");
    /// assert_eq!(message.decode::<(u8, String)>()?, (1, "one".to_string()));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        self.inner.decode()
    }

    /// The async message underneath.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::{MessageState, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-into-async-doc");
    /// channel.declare_queue(&queue)?;
    /// conn.producer().routing_key("blocking-into-async-doc").build()?.publish("x").send()?;
    /// let message = channel.get(&queue, true)?.expect("a message").into_async();
    /// assert_eq!(message.state(), MessageState::Received);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn into_async(self) -> crate::model::message::Message {
        self.inner
    }
}

impl Deref for Message {
    type Target = crate::model::message::Message;
    fn deref(&self) -> &crate::model::message::Message {
        &self.inner
    }
}
