//! [`Channel`]: a stable handle on a broker channel.
//!
//! When the broker closes the channel (a 404 or 406, say) or the connection
//! is replaced, the next operation opens a fresh channel on the current
//! connection and re-applies its QoS and confirm mode, so producers keep
//! working. Consumers on the old channel are told their subscription ended.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use crate::connection::{Active, Connection, Shared};
use crate::event::Event;
use crate::recovery::RecordedBinding;
use crate::transport::confirm::{self, SharedConfirms};
use crate::consumer::ConsumerBuilder;
use crate::entity::{DeclaredQueue, Exchange, Queue};
use crate::message::{Acker, DecodeSettings, Message};
use crate::producer::ProducerBuilder;
use crate::transport::{
    AnyChannel, AnyTransport, BindArgs, Confirm, ConsumeArgs, DeliverySender, ExchangeDeclare, OutgoingMessage,
    QueueDeclare,
};
use crate::{Error, FieldTable, Result, SharedStr};

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

/// The part of a channel the connection may keep (the default channel)
/// without a reference cycle: it points back to the connection weakly.
pub(crate) struct ChannelCore {
    connection: Weak<Shared>,
    slot: RwLock<Option<Slot>>,
    reopen: tokio::sync::Mutex<()>,
    qos: Mutex<Option<(u16, bool)>>,
    confirm: AtomicBool,
    /// Publishes not yet confirmed; outlives each broker channel, so they
    /// are published again after a reconnect.
    pub(crate) confirms: SharedConfirms,
}

/// Give a freshly opened broker channel its core's QoS and confirm mode.
async fn configure(channel: &AnyChannel, qos: Option<(u16, bool)>, confirm: bool) -> Result<()> {
    if let Some((prefetch, global)) = qos {
        channel.qos(prefetch, global).await?;
    }
    if confirm {
        channel.confirm_select().await?;
    }
    Ok(())
}

/// A broker channel opened ahead on a warm standby for one channel core,
/// with the QoS and confirm mode the core had then: when the standby takes
/// over, the core adopts it instead of opening one (two round trips fewer
/// between noticing a dead broker and publishing again).
pub(crate) struct PreparedChannel {
    pub(crate) core: Weak<ChannelCore>,
    pub(crate) channel: AnyChannel,
    pub(crate) qos: Option<(u16, bool)>,
    pub(crate) confirm: bool,
}

impl PreparedChannel {
    /// Still usable for its core as the core is now.
    pub(crate) fn is_current(&self) -> bool {
        self.channel.is_open() && self.core.upgrade().is_some_and(|c| c.settings() == (self.qos, self.confirm))
    }

    pub(crate) fn is_for(&self, core: &ChannelCore) -> bool {
        std::ptr::eq(self.core.as_ptr(), core)
    }
}

#[derive(Clone)]
struct Slot {
    channel: AnyChannel,
    generation: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ChannelCore {
    pub(crate) fn new(connection: &Connection) -> Arc<ChannelCore> {
        let core = Arc::new(ChannelCore {
            connection: Arc::downgrade(&connection.shared),
            slot: RwLock::new(None),
            reopen: tokio::sync::Mutex::new(()),
            qos: Mutex::new(None),
            confirm: AtomicBool::new(false),
            confirms: SharedConfirms::default(),
        });
        connection.register_core(&core);
        core
    }

    /// Open a broker channel for this core on `active`, with its QoS and
    /// confirm mode, and publish again what was never confirmed.
    pub(crate) async fn open_on(&self, active: &Active) -> Result<AnyChannel> {
        let (qos, confirm) = self.settings();
        let channel = match active.take_prepared(self, qos, confirm) {
            // Opened on the warm standby with these settings already.
            Some(channel) => {
                channel.adopt();
                channel
            }
            None => {
                let channel = active.transport.open_channel(self.confirms.clone()).await?;
                configure(&channel, qos, confirm).await?;
                channel
            }
        };
        // Whatever still waits for a confirm went out on a channel that is
        // gone: delivery tags restart at 1 on this one.
        // (Opening the channel attached it to `confirms`, which detached
        // them from the old one.)
        let unsent = confirm::lock(&self.confirms).unsent();
        if !unsent.is_empty() {
            let count = unsent.len();
            channel.resend(unsent)?;
            tracing::info!(count, "published again what the lost connection never confirmed");
            active.events.emit(Event::PublishesResent { count });
        }
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = Some(Slot {
            channel: channel.clone(),
            generation: active.generation,
        });
        Ok(channel)
    }

    /// The QoS and confirm mode every broker channel of this core gets.
    pub(crate) fn settings(&self) -> (Option<(u16, bool)>, bool) {
        (*lock(&self.qos), self.confirm.load(Ordering::Acquire))
    }

    /// Open a broker channel for this core on a warm standby's `transport`,
    /// with the core's QoS and confirm mode, without taking over its
    /// confirms (see [`PreparedChannel`]). `None`: the transport has
    /// nothing to gain from it.
    pub(crate) async fn prepare_on(self: &Arc<Self>, transport: &AnyTransport) -> Result<Option<PreparedChannel>> {
        let (qos, confirm) = self.settings();
        let Some(channel) = transport.prepare_channel(self.confirms.clone()).await? else {
            return Ok(None);
        };
        if let Err(e) = configure(&channel, qos, confirm).await {
            let _ = channel.close().await;
            return Err(e);
        }
        Ok(Some(PreparedChannel { core: Arc::downgrade(self), channel, qos, confirm }))
    }

    /// Reopen now if the broker channel belongs to an older connection.
    pub(crate) async fn reopen_on(&self, active: &Active) -> Result<AnyChannel> {
        let _reopening = self.reopen.lock().await;
        if let Some(channel) = self.current(active.generation) {
            return Ok(channel);
        }
        self.open_on(active).await
    }

    /// Replace the broker channel, keeping unconfirmed publishes to send
    /// again on the next one (after a nack, some brokers keep refusing on
    /// the same channel: RabbitMQ 3.10 does for a quorum queue that changed
    /// leader).
    pub(crate) async fn reset(&self) {
        let _reopening = self.reopen.lock().await;
        confirm::lock(&self.confirms).detach();
        let slot = self.slot.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(slot) = slot {
            let _ = slot.channel.close().await;
        }
    }

    pub(crate) fn current(&self, generation: u64) -> Option<AnyChannel> {
        let slot = self.slot.read().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(s) if s.generation == generation && s.channel.is_open() => Some(s.channel.clone()),
            _ => None,
        }
    }
}

impl Channel {
    pub(crate) fn new(connection: Connection, core: Arc<ChannelCore>) -> Channel {
        Channel { core, connection }
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
        self.core.current(self.connection.generation()).is_some()
    }

    /// The broker channel to use now, (re)opening it if needed.
    pub(crate) async fn transport_channel(&self) -> Result<AnyChannel> {
        if let Some(channel) = self.core.current(self.connection.generation()) {
            return Ok(channel);
        }
        // Boxed: the slow path's state (connecting, reopening) would
        // otherwise bloat every publish's future, which is moved around.
        Box::pin(self.reopen()).await
    }

    async fn reopen(&self) -> Result<AnyChannel> {
        debug_assert!(self.core.connection.upgrade().is_some());
        let active = self.connection.transport().await?;
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
        let slot = self
            .core
            .slot
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match slot {
            Some(slot) => slot.channel.close().await,
            None => Ok(()),
        }
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
        *lock(&self.core.qos) = Some((prefetch_count, global));
        self.connection.standby_follow();
        self.transport_channel().await?.qos(prefetch_count, global).await
    }

    /// Put the channel in publisher-confirm mode (kept across reopenings).
    ///
    /// [`ProducerBuilder::build`] does this itself unless confirms are
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
        if !self.core.confirm.swap(true, Ordering::AcqRel) {
            self.connection.standby_follow();
            channel.confirm_select().await?;
        }
        Ok(())
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
        self.core.confirm.load(Ordering::Acquire)
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

    /// A producer on this channel; finish with [`ProducerBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// let producer = channel.producer().routing_key("channel-producer-doc").build().await?;
    /// assert_eq!(producer.routing_key(), "channel-producer-doc");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder::for_channel(self.clone())
    }

    /// A consumer on this channel; finish with [`ConsumerBuilder::build`].
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// let consumer = channel.consumer([Queue::new("channel-consumer-doc")]).build().await?;
    /// assert_eq!(consumer.queues(), ["channel-consumer-doc"]);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn consumer<I: IntoIterator<Item = Queue>>(&self, queues: I) -> ConsumerBuilder {
        ConsumerBuilder::for_channel(self.clone()).queues(queues)
    }

    // --- operations used by the entities, producers and consumers ---

    pub(crate) async fn exchange_declare(&self, exchange: &Exchange) -> Result<()> {
        validate_name("exchange", &exchange.name)?;
        declare_exchange_on(&self.transport_channel().await?, exchange).await?;
        self.connection.record(|t| t.record_exchange(exchange));
        Ok(())
    }

    pub(crate) async fn exchange_delete(&self, name: &str, if_unused: bool) -> Result<()> {
        validate_name("exchange", name)?;
        self.transport_channel().await?.exchange_delete(name, if_unused).await?;
        self.connection.record(|t| t.forget_exchange(name));
        Ok(())
    }

    pub(crate) async fn exchange_bind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        self.transport_channel()
            .await?
            .exchange_bind(BindArgs {
                destination,
                source,
                routing_key,
                arguments,
            })
            .await?;
        self.connection
            .record(|t| t.record_binding(binding(false, destination, source, routing_key, arguments)));
        Ok(())
    }

    pub(crate) async fn exchange_unbind(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        self.transport_channel()
            .await?
            .exchange_unbind(BindArgs {
                destination,
                source,
                routing_key,
                arguments,
            })
            .await?;
        self.connection
            .record(|t| t.forget_binding(&binding(false, destination, source, routing_key, arguments)));
        Ok(())
    }

    pub(crate) async fn queue_declare(&self, queue: &Queue, passive: bool) -> Result<DeclaredQueue> {
        validate_name("queue", &queue.name)?;
        let declared = declare_queue_on(&self.transport_channel().await?, queue, &queue.name, passive).await?;
        self.connection
            .record(|t| t.record_queue(queue, &declared.name, passive));
        Ok(declared)
    }

    pub(crate) async fn queue_bind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        self.transport_channel()
            .await?
            .queue_bind(BindArgs {
                destination: queue,
                source: exchange,
                routing_key,
                arguments,
            })
            .await?;
        self.connection
            .record(|t| t.record_binding(binding(true, queue, exchange, routing_key, arguments)));
        Ok(())
    }

    pub(crate) async fn queue_unbind(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        self.transport_channel()
            .await?
            .queue_unbind(BindArgs {
                destination: queue,
                source: exchange,
                routing_key,
                arguments,
            })
            .await?;
        self.connection
            .record(|t| t.forget_binding(&binding(true, queue, exchange, routing_key, arguments)));
        Ok(())
    }

    pub(crate) async fn queue_purge(&self, name: &str) -> Result<u32> {
        self.transport_channel().await?.queue_purge(name).await
    }

    pub(crate) async fn queue_delete(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u32> {
        let count = self
            .transport_channel()
            .await?
            .queue_delete(name, if_unused, if_empty)
            .await?;
        self.connection.record(|t| t.forget_queue(name));
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

    pub(crate) async fn consume(
        &self,
        args: ConsumeArgs,
        sink: DeliverySender,
    ) -> Result<(SharedStr, AnyChannel)> {
        let channel = self.transport_channel().await?;
        let tag = channel.consume(args, sink).await?;
        Ok((tag, channel))
    }
}

fn binding(
    to_queue: bool,
    destination: &str,
    source: &str,
    routing_key: &str,
    arguments: &FieldTable,
) -> RecordedBinding {
    RecordedBinding {
        to_queue,
        destination: destination.to_owned(),
        source: source.to_owned(),
        routing_key: routing_key.to_owned(),
        arguments: arguments.clone(),
    }
}

/// exchange.declare on a broker channel (shared with topology recovery).
pub(crate) async fn declare_exchange_on(channel: &AnyChannel, exchange: &Exchange) -> Result<()> {
    channel
        .exchange_declare(ExchangeDeclare {
            name: &exchange.name,
            kind: &exchange.kind,
            passive: exchange.passive,
            durable: exchange.durable,
            auto_delete: exchange.auto_delete,
            internal: exchange.internal,
            arguments: &exchange.arguments,
        })
        .await
}

/// queue.declare of `queue`'s options under `name` (shared with recovery).
pub(crate) async fn declare_queue_on(
    channel: &AnyChannel,
    queue: &Queue,
    name: &str,
    passive: bool,
) -> Result<DeclaredQueue> {
    let ok = channel
        .queue_declare(QueueDeclare {
            name,
            passive,
            durable: queue.durable,
            exclusive: queue.exclusive,
            auto_delete: queue.auto_delete,
            arguments: &queue.arguments,
        })
        .await?;
    Ok(DeclaredQueue {
        name: ok.name,
        message_count: ok.message_count,
        consumer_count: ok.consumer_count,
    })
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
