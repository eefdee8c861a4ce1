//! The blocking [`Channel`], and the ways to open one on a connection.

use crate::content::value::FieldTable;
use crate::error::Result;
use crate::model::entity::{DeclaredQueue, Exchange, Queue};

use super::connection::Connection;
use super::message::Message;
use super::wait::run;

/// A channel; see [`crate::Channel`]. Entity operations are methods here.
///
/// # Examples
///
/// ```
/// use kelp::blocking::Connection;
/// use kelp::{Exchange, FieldTable, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel()?;
/// let logs = Exchange::topic("blocking-channel-struct-doc");
/// let errors = Queue::new("blocking-channel-struct-doc-errors");
/// channel.declare_exchange(&logs)?;
/// channel.declare_queue(&errors)?;
/// channel.bind_queue(&errors, &logs.name, "*.error", &FieldTable::new())?;
///
/// conn.producer().exchange(logs).build()?.publish("disk full").routing_key("db.error").send()?;
/// let message = channel.get(&errors, false)?.expect("a message");
/// message.ack()?;
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Channel {
    pub(super) inner: crate::model::channel::Channel,
}

impl Channel {
    /// True while the broker channel is open; see
    /// [`Channel::is_open`](crate::Channel::is_open).
    pub fn is_open(&self) -> bool {
        self.inner.is_open()
    }

    /// Put the channel in publisher-confirm mode; see
    /// [`Channel::confirm_select`](crate::Channel::confirm_select).
    pub fn confirm_select(&self) -> Result<()> {
        run(self.inner.confirm_select())
    }

    /// True once confirm mode is on.
    pub fn is_confirm_mode(&self) -> bool {
        self.inner.is_confirm_mode()
    }

    /// Look at a queue without changing it (a passive declaration); see
    /// [`Queue::inspect`](crate::Queue::inspect).
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Queue;
    /// use kelp::blocking::Connection;
    ///
    /// let channel = Connection::new("memory://")?.default_channel()?;
    /// let queue = Queue::new("blocking-inspect-doc");
    /// assert!(channel.inspect_queue(&queue).unwrap_err().is_not_found());
    /// channel.declare_queue(&queue)?;
    /// assert_eq!(channel.inspect_queue(&queue)?.message_count, 0);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn inspect_queue(&self, queue: &Queue) -> Result<DeclaredQueue> {
        run(queue.inspect(&self.inner))
    }

    /// The async channel underneath.
    pub fn as_async(&self) -> &crate::model::channel::Channel {
        &self.inner
    }

    /// Close the channel (it reopens on next use).
    pub fn close(&self) -> Result<()> {
        run(self.inner.close())
    }

    /// basic.qos.
    pub fn qos(&self, prefetch_count: u16, global: bool) -> Result<()> {
        run(self.inner.qos(prefetch_count, global))
    }

    /// Redeliver unacknowledged messages.
    pub fn recover(&self, requeue: bool) -> Result<()> {
        run(self.inner.recover(requeue))
    }

    /// Declare an exchange.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Exchange;
    ///
    /// let conn = Connection::new("memory://")?;
    /// conn.default_channel()?.declare_exchange(&Exchange::topic("blocking-exchange-doc"))?;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn declare_exchange(&self, exchange: &Exchange) -> Result<()> {
        run(exchange.declare(&self.inner))
    }

    /// Delete an exchange.
    pub fn delete_exchange(&self, exchange: &Exchange, if_unused: bool) -> Result<()> {
        run(exchange.delete(&self.inner, if_unused))
    }

    /// Declare a queue with its exchange and bindings.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::{Exchange, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let queue = Queue::new("blocking-declare-doc").exchange(Exchange::fanout("blocking-declare-doc"));
    /// let declared = conn.default_channel()?.declare_queue(&queue)?;
    /// assert_eq!(declared.name, "blocking-declare-doc");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn declare_queue(&self, queue: &Queue) -> Result<DeclaredQueue> {
        run(queue.declare(&self.inner))
    }

    /// Bind a queue to an exchange.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::{Exchange, FieldTable, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let prices = Exchange::topic("blocking-bind-doc");
    /// let watch = Queue::new("blocking-bind-doc-watch");
    /// channel.declare_exchange(&prices)?;
    /// channel.declare_queue(&watch)?;
    /// channel.bind_queue(&watch, "blocking-bind-doc", "stock.#", &FieldTable::new())?;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn bind_queue(
        &self,
        queue: &Queue,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        run(queue.bind_to(&self.inner, exchange, routing_key, arguments))
    }

    /// Remove a binding of a queue.
    pub fn unbind_queue(
        &self,
        queue: &Queue,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        run(queue.unbind_from(&self.inner, exchange, routing_key, arguments))
    }

    /// Purge a queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-purge-doc");
    /// channel.declare_queue(&queue)?;
    /// conn.producer().routing_key("blocking-purge-doc").build()?.publish("old").send()?;
    /// assert_eq!(channel.purge_queue(&queue)?, 1);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn purge_queue(&self, queue: &Queue) -> Result<u32> {
        run(queue.purge(&self.inner))
    }

    /// Delete a queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-delete-doc");
    /// channel.declare_queue(&queue)?;
    /// assert_eq!(channel.delete_queue(&queue, false, false)?, 0);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn delete_queue(&self, queue: &Queue, if_unused: bool, if_empty: bool) -> Result<u32> {
        run(queue.delete(&self.inner, if_unused, if_empty))
    }

    /// Take one message from a queue without a consumer.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// let queue = Queue::new("blocking-get-doc");
    /// channel.declare_queue(&queue)?;
    /// assert!(channel.get(&queue, false)?.is_none()); // empty: no waiting
    /// conn.producer().routing_key("blocking-get-doc").build()?.publish(&7).send()?;
    /// let message = channel.get(&queue, false)?.expect("a message");
    /// assert_eq!(message.decode::<i32>()?, 7);
    /// message.ack()?;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn get(&self, queue: &Queue, no_ack: bool) -> Result<Option<Message>> {
        Ok(run(queue.get(&self.inner, no_ack))?.map(|inner| Message { inner }))
    }

}

/// The ways to open a channel, beside what they open.
impl Connection {
    /// Open a new channel.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    /// use kelp::Queue;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.channel()?;
    /// let declared = channel.declare_queue(&Queue::new("blocking-channel-doc"))?;
    /// assert_eq!(declared.message_count, 0);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn channel(&self) -> Result<Channel> {
        Ok(Channel {
            inner: run(self.inner.channel())?,
        })
    }

    /// The default channel.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::blocking::Connection;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel()?;
    /// channel.qos(10, false)?;
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn default_channel(&self) -> Result<Channel> {
        Ok(Channel {
            inner: run(self.inner.default_channel())?,
        })
    }
}
