//! [`Channel`]: a stable handle on a supervised channel.
//!
//! When the broker closes the channel (a 404 or 406, say) or the connection
//! is replaced, the next operation opens a fresh channel on the current
//! connection and re-applies its QoS and confirm mode, so producers keep
//! working. Consumers on the old channel are told their subscription ended.
//! [`Connection::channel`] and [`Connection::default_channel`] are here too.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use super::connection::Connection;
use super::message::{Acker, DecodeSettings, Message};
use crate::content::text::SharedStr;
use crate::error::{Error, Result};
use crate::recovery::channel::ChannelCore;
use crate::recovery::retry::{RetryPolicy, pause_or_give_up};
use crate::recovery::supervisor::Supervisor;
use crate::recovery::topology::RecordedBinding;
use crate::transport::{
    AnyChannel, BindArgs, Confirm, ConsumeArgs, DeliverySender, ExchangeDeclare, OutgoingMessage, QueueDeclare,
    QueueDeclareOk,
};

/// A channel on a [`Connection`]. Cheap to clone.
///
/// Entities are declared on a channel, and producers and consumers run on
/// one. The handle survives the broker channel: after a channel error or a
/// reconnect, the next operation opens a new one.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Exchange, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.channel().await?;
/// let queue = Queue::new("channel-doc")
///     .exchange(Exchange::direct("channel-doc"))
///     .routing_key("report");
/// queue.declare(&channel).await?;
///
/// let producer = channel.producer().exchange(Exchange::direct("channel-doc")).build().await?;
/// producer.publish("monthly").routing_key("report").send().await?;
/// let message = queue.get(&channel, false).await?.expect("a message");
/// assert_eq!(message.decode::<String>()?, "monthly");
/// message.ack().await?;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Channel {
    pub(crate) core: Arc<ChannelCore>,
    connection: Connection,
}

impl Channel {
    pub(crate) fn new(connection: Connection, core: Arc<ChannelCore>) -> Channel {
        Channel { core, connection }
    }

    fn supervisor(&self) -> &Arc<Supervisor> {
        self.connection.supervisor()
    }

    /// The connection this channel belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// assert!(channel.connection().is_connected());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// True while the underlying broker channel is open. A closed channel
    /// reopens by itself on the next operation.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// // A passive declaration of a missing queue: the broker closes the channel.
    /// let missing = Queue::new("no-such-queue-doc").passive(true);
    /// assert!(missing.declare(&channel).await.unwrap_err().is_not_found());
    /// assert!(!channel.is_open());
    ///
    /// Queue::new("is-open-doc").declare(&channel).await?; // reopens it
    /// assert!(channel.is_open());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_open(&self) -> bool {
        self.core.current(self.supervisor().generation()).is_some()
    }

    /// The broker channel to use now, (re)opening it if needed.
    pub(crate) async fn transport_channel(&self) -> Result<AnyChannel> {
        if let Some(channel) = self.core.current(self.supervisor().generation()) {
            return Ok(channel);
        }
        // Boxed: the slow path's state (connecting, reopening) would
        // otherwise bloat every publish's future, which is moved around.
        Box::pin(self.reopen()).await
    }

    async fn reopen(&self) -> Result<AnyChannel> {
        let active = self.supervisor().transport().await?;
        self.core.reopen_on(&active).await
    }

    /// Close the channel. The handle stays usable: the next operation opens
    /// a new one.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// channel.close().await?;
    /// assert!(!channel.is_open());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn close(&self) -> Result<()> {
        self.core.close().await
    }

    /// Set the prefetch limit (AMQP basic.qos): at most `prefetch_count`
    /// unacknowledged messages per consumer created afterwards, or for the
    /// whole channel with `global`. 0 means unlimited. Re-applied whenever
    /// the channel is reopened.
    ///
    /// A small prefetch spreads slow work evenly across consumers; a large
    /// one makes fast consumers faster.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// channel.qos(1, false).await?; // one message in hand at a time
    /// let consumer = channel.consumer([Queue::new("qos-doc")]).build().await?;
    /// # drop(consumer);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn qos(&self, prefetch_count: u16, global: bool) -> Result<()> {
        self.core.set_qos(prefetch_count, global);
        self.supervisor().channel_settings_changed();
        self.transport_channel().await?.qos(prefetch_count, global).await
    }

    /// Put the channel in publisher-confirm mode (kept across reopenings).
    ///
    /// [`ProducerBuilder::build`](crate::ProducerBuilder::build) does this itself unless confirms are
    /// turned off.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// assert!(!channel.is_confirm_mode());
    /// channel.confirm_select().await?;
    /// assert!(channel.is_confirm_mode());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn confirm_select(&self) -> Result<()> {
        let channel = self.transport_channel().await?;
        if self.core.enable_confirms() {
            self.supervisor().channel_settings_changed();
        }
        // Every caller, not only the first: a second producer on this
        // channel must not publish before the broker channel is in confirm
        // mode (once it is, this returns at once).
        channel.confirm_select().await
    }

    /// True once [`confirm_select`](Channel::confirm_select) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let producer = conn.producer().build().await?; // confirms on by default
    /// assert!(producer.channel().is_confirm_mode());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_confirm_mode(&self) -> bool {
        self.core.is_confirm_mode()
    }

    /// Redeliver every unacknowledged message of this channel (AMQP basic.recover).
    ///
    /// Only `requeue = true` is supported by RabbitMQ and the memory broker.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// let queue = Queue::new("recover-doc");
    /// queue.declare(&channel).await?;
    /// let producer = conn.producer().routing_key("recover-doc").build().await?;
    /// producer.publish("again").send().await?;
    ///
    /// let first = queue.get(&channel, false).await?.expect("a message");
    /// channel.recover(true).await?; // give back what was not acked
    /// let second = queue.get(&channel, false).await?.expect("the same message");
    /// assert!(!first.redelivered() && second.redelivered());
    /// second.ack().await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn recover(&self, requeue: bool) -> Result<()> {
        self.transport_channel().await?.recover(requeue).await
    }

    // --- operations used by the entities, producers and consumers ---

    /// Declare an exchange; `record` it for recovery (not for passive or
    /// built-in exchanges).
    pub(crate) async fn exchange_declare(&self, exchange: ExchangeDeclare, record: bool) -> Result<()> {
        validate_name("exchange", &exchange.name)?;
        self.transport_channel().await?.exchange_declare(&exchange).await?;
        if record {
            self.supervisor().record(|t| t.record_exchange(exchange));
        }
        Ok(())
    }

    pub(crate) async fn exchange_delete(&self, name: &str, if_unused: bool) -> Result<()> {
        validate_name("exchange", name)?;
        self.transport_channel().await?.exchange_delete(name, if_unused).await?;
        self.supervisor().record(|t| t.forget_exchange(name));
        Ok(())
    }

    /// Bind exchange to exchange (`to_queue` false) or a queue to an exchange.
    pub(crate) async fn bind(&self, to_queue: bool, args: BindArgs) -> Result<()> {
        let channel = self.transport_channel().await?;
        if to_queue {
            channel.queue_bind(&args).await?;
        } else {
            channel.exchange_bind(&args).await?;
        }
        self.supervisor().record(|t| t.record_binding(RecordedBinding { to_queue, args }));
        Ok(())
    }

    pub(crate) async fn unbind(&self, to_queue: bool, args: BindArgs) -> Result<()> {
        let channel = self.transport_channel().await?;
        if to_queue {
            channel.queue_unbind(&args).await?;
        } else {
            channel.exchange_unbind(&args).await?;
        }
        self.supervisor().record(|t| t.forget_binding(&RecordedBinding { to_queue, args }));
        Ok(())
    }

    /// Declare a queue (an empty name asks the broker for one); `record` it
    /// for recovery under the name it got.
    pub(crate) async fn queue_declare(&self, mut queue: QueueDeclare, record: bool) -> Result<QueueDeclareOk> {
        validate_name("queue", &queue.name)?;
        let declared = self.transport_channel().await?.queue_declare(&queue).await?;
        if record {
            let server_named = queue.name.is_empty();
            declared.name.clone_into(&mut queue.name);
            self.supervisor().record(|t| t.record_queue(queue, server_named));
        }
        Ok(declared)
    }

    pub(crate) async fn queue_purge(&self, name: &str) -> Result<u32> {
        self.transport_channel().await?.queue_purge(name).await
    }

    pub(crate) async fn queue_delete(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u32> {
        let count = self.transport_channel().await?.queue_delete(name, if_unused, if_empty).await?;
        self.supervisor().record(|t| t.forget_queue(name));
        Ok(count)
    }

    pub(crate) async fn basic_get(&self, queue: &str, no_ack: bool) -> Result<Option<Message>> {
        let channel = self.transport_channel().await?;
        let delivery = channel.get(queue, no_ack).await?;
        Ok(delivery.map(|d| {
            let acker = if no_ack { Acker::NoAck } else { Acker::Channel(channel) };
            let tag = d.info.delivery_tag;
            Message::new(d, acker, tag, DecodeSettings::shared_default())
        }))
    }

    pub(crate) async fn publish(&self, message: OutgoingMessage) -> Result<Confirm> {
        self.transport_channel().await?.publish(message).await
    }

    /// Subscribe; returns the consumer tag and the broker channel it lives on.
    pub(crate) async fn consume(&self, args: ConsumeArgs, sink: DeliverySender) -> Result<(SharedStr, AnyChannel)> {
        let channel = self.transport_channel().await?;
        let tag = channel.consume(args, sink).await?;
        Ok((tag, channel))
    }
}

/// The ways to open a channel live here, beside what they open.
impl Connection {
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
        let channel = Channel::new(self.clone(), self.supervisor().new_channel());
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
        let channel = Channel::new(self.clone(), self.supervisor().default_channel());
        channel.transport_channel().await?;
        Ok(channel)
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
}

/// AMQP names are short strings: at most 255 bytes.
fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.len() > 255 {
        return Err(Error::config(format!(
            "{what} name is {} bytes long; AMQP allows at most 255",
            name.len()
        )));
    }
    Ok(())
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("connection", &self.connection.as_uri(false))
            .field("open", &self.is_open())
            .field("confirm_mode", &self.is_confirm_mode())
            .finish()
    }
}
