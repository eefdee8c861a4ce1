//! The one internal interface every broker plugs into.
//!
//! A transport implements [`Transport`] (one broker connection) and
//! [`TransportChannel`] (one channel on it) with AMQP-shaped operations. The
//! model layer (`Connection`, `Channel`, `Producer`, `Consumer`) only talks
//! to [`AnyTransport`] / [`AnyChannel`], which dispatch statically to the
//! concrete transport: no boxing and no virtual call on the per-message path.
//!
//! Each transport lives in its own module. The exchange routing rules shared
//! by the transports that emulate a broker (memory, Redis) live in
//! [`routing`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::entity::ExchangeKind;
use crate::message::{Content, DeliveryInfo};
use crate::url::{BrokerUrl, TransportKind};
use crate::{Error, FieldTable, Result, SharedStr};

pub(crate) mod amqp;
pub(crate) mod confirm;
pub(crate) mod memory;
pub(crate) mod redis;
pub(crate) mod routing;

/// What a transport can do; the model checks these before asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Publishes are confirmed by the broker.
    pub publisher_confirms: bool,
    /// Exchange types beyond direct.
    pub topic: bool,
    /// Fanout exchanges.
    pub fanout: bool,
    /// Headers exchanges.
    pub headers: bool,
    /// Queue priorities (`x-max-priority`).
    pub priorities: bool,
    /// Per-message and per-queue TTL.
    pub message_ttl: bool,
    /// Exchange-to-exchange bindings.
    pub exchange_bindings: bool,
}

/// Options every transport honours when connecting.
#[derive(Clone, Debug)]
pub(crate) struct ConnectOptions {
    pub(crate) connect_timeout: Duration,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) connection_name: Option<String>,
    // Read by the Redis transport; the memory and AMQP transports define none.
    pub(crate) transport_options: FieldTable,
    pub(crate) events: crate::event::Events,
    /// Keep unconfirmed publishes (to publish again after a reconnect)
    /// instead of failing them when the connection dies.
    pub(crate) keep_unconfirmed: bool,
    /// At most this many unconfirmed publishes per channel; more wait.
    pub(crate) max_unconfirmed: usize,
    /// How long a publish may wait (for room, or while blocked).
    pub(crate) publish_wait: Duration,
}

/// Arguments of an exchange declaration.
#[derive(Clone, Debug)]
pub(crate) struct ExchangeDeclare<'a> {
    pub(crate) name: &'a str,
    pub(crate) kind: &'a ExchangeKind,
    pub(crate) passive: bool,
    pub(crate) durable: bool,
    pub(crate) auto_delete: bool,
    pub(crate) internal: bool,
    pub(crate) arguments: &'a FieldTable,
}

/// Arguments of a queue declaration; an empty name asks the broker to name it.
#[derive(Clone, Debug)]
pub(crate) struct QueueDeclare<'a> {
    pub(crate) name: &'a str,
    pub(crate) passive: bool,
    pub(crate) durable: bool,
    pub(crate) exclusive: bool,
    pub(crate) auto_delete: bool,
    pub(crate) arguments: &'a FieldTable,
}

/// The broker's answer to a queue declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueueDeclareOk {
    pub(crate) name: String,
    pub(crate) message_count: u32,
    pub(crate) consumer_count: u32,
}

/// A binding between an exchange and a queue or another exchange.
#[derive(Clone, Debug)]
pub(crate) struct BindArgs<'a> {
    pub(crate) destination: &'a str,
    pub(crate) source: &'a str,
    pub(crate) routing_key: &'a str,
    pub(crate) arguments: &'a FieldTable,
}

/// A message on its way to the broker.
#[derive(Clone, Debug)]
pub(crate) struct OutgoingMessage {
    pub(crate) exchange: SharedStr,
    pub(crate) routing_key: SharedStr,
    pub(crate) mandatory: bool,
    pub(crate) content: Arc<Content>,
}

/// Arguments of a consumer subscription.
#[derive(Clone, Debug)]
pub(crate) struct ConsumeArgs {
    pub(crate) queue: String,
    pub(crate) consumer_tag: SharedStr,
    pub(crate) no_ack: bool,
    pub(crate) exclusive: bool,
    pub(crate) arguments: FieldTable,
    /// Stamped on every delivery of this subscription, so the model can tell
    /// deliveries of a connection that was replaced from current ones.
    pub(crate) epoch: u64,
}

/// A message handed over by the broker, before the model wraps it.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) info: DeliveryInfo,
    pub(crate) content: Arc<Content>,
    /// The subscription's epoch (0 for basic.get).
    pub(crate) epoch: u64,
}

/// Why the broker ended a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CancelReason {
    /// The queue was deleted (or failed over) under the consumer.
    QueueDeleted,
    /// The channel was closed by the broker.
    ChannelClosed(u16, String),
    /// The connection was lost.
    ConnectionLost,
    /// The connection was lost and recovery gave up.
    RecoveryFailed(String),
}

/// What a transport sends to a consumer.
#[derive(Debug)]
pub(crate) enum ConsumerEvent {
    Delivery(Delivery),
    Cancelled(SharedStr, CancelReason),
}

pub(crate) type DeliverySender = mpsc::UnboundedSender<ConsumerEvent>;

/// The outcome of a publish, once the broker has taken responsibility.
///
/// A ready value for transports that confirm synchronously (memory); later
/// transports add variants that wait on the broker without a task or an
/// allocation per message.
#[must_use = "a confirmation does nothing unless awaited"]
pub(crate) enum Confirm {
    Ready(Option<Result<()>>),
    Amqp(confirm::PendingConfirm),
    /// A reply still on its way (Redis: the write's answer).
    Pending(Pin<Box<dyn Future<Output = Result<()>> + Send>>),
}

impl Confirm {
    pub(crate) fn ready(result: Result<()>) -> Confirm {
        Confirm::Ready(Some(result))
    }
}

impl Future for Confirm {
    type Output = Result<()>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match self.get_mut() {
            Confirm::Ready(result) => Poll::Ready(
                result
                    .take()
                    .unwrap_or_else(|| Err(Error::closed("confirmation polled after completion"))),
            ),
            Confirm::Amqp(pending) => Pin::new(pending).poll(cx),
            Confirm::Pending(reply) => reply.as_mut().poll(cx),
        }
    }
}

/// One connection to one broker.
pub(crate) trait Transport: Send + Sync + Sized + 'static {
    /// The transport's channel type.
    type Channel: TransportChannel;

    /// Connect to `url`.
    fn connect(url: &BrokerUrl, options: &ConnectOptions)
        -> impl Future<Output = Result<Self>> + Send;

    /// Open a new channel; its publishes are tracked in `confirms` (which
    /// outlives the channel, so confirmations survive a reconnect).
    fn open_channel(&self, confirms: confirm::SharedConfirms)
        -> impl Future<Output = Result<Self::Channel>> + Send;

    /// Resolves with the reason once the connection is lost or closed.
    fn closed(&self) -> impl Future<Output = Error> + Send + 'static;

    /// True while the connection is usable.
    fn is_open(&self) -> bool;

    /// Close the connection cleanly.
    fn close(&self) -> impl Future<Output = Result<()>> + Send;

    /// What this transport supports.
    fn capabilities(&self) -> Capabilities;
}

/// One channel: AMQP's unit of ordering, QoS and confirm mode.
pub(crate) trait TransportChannel: Clone + Send + Sync + 'static {
    fn is_open(&self) -> bool;
    fn close(&self) -> impl Future<Output = Result<()>> + Send;

    fn exchange_declare(&self, args: ExchangeDeclare<'_>) -> impl Future<Output = Result<()>> + Send;
    fn exchange_delete(&self, name: &str, if_unused: bool) -> impl Future<Output = Result<()>> + Send;
    fn exchange_bind(&self, args: BindArgs<'_>) -> impl Future<Output = Result<()>> + Send;
    fn exchange_unbind(&self, args: BindArgs<'_>) -> impl Future<Output = Result<()>> + Send;

    fn queue_declare(&self, args: QueueDeclare<'_>)
        -> impl Future<Output = Result<QueueDeclareOk>> + Send;
    fn queue_bind(&self, args: BindArgs<'_>) -> impl Future<Output = Result<()>> + Send;
    fn queue_unbind(&self, args: BindArgs<'_>) -> impl Future<Output = Result<()>> + Send;
    fn queue_purge(&self, name: &str) -> impl Future<Output = Result<u32>> + Send;
    fn queue_delete(&self, name: &str, if_unused: bool, if_empty: bool)
        -> impl Future<Output = Result<u32>> + Send;

    fn qos(&self, prefetch_count: u16, global: bool) -> impl Future<Output = Result<()>> + Send;
    fn confirm_select(&self) -> impl Future<Output = Result<()>> + Send;

    /// Publish; the returned [`Confirm`] resolves once the broker took
    /// responsibility (immediately when the channel is not in confirm mode).
    fn publish(&self, message: OutgoingMessage) -> impl Future<Output = Result<Confirm>> + Send;

    /// Publish again messages of a lost connection (`(ticket, message)`, in
    /// order), tracking their confirms under the same tickets.
    fn resend(&self, unsent: Vec<(u64, OutgoingMessage)>) -> Result<()>;

    fn consume(&self, args: ConsumeArgs, sink: DeliverySender)
        -> impl Future<Output = Result<SharedStr>> + Send;
    fn cancel(&self, consumer_tag: &str) -> impl Future<Output = Result<()>> + Send;
    fn get(&self, queue: &str, no_ack: bool) -> impl Future<Output = Result<Option<Delivery>>> + Send;

    fn ack(&self, delivery_tag: u64, multiple: bool) -> impl Future<Output = Result<()>> + Send;
    fn nack(&self, delivery_tag: u64, multiple: bool, requeue: bool)
        -> impl Future<Output = Result<()>> + Send;
    fn reject(&self, delivery_tag: u64, requeue: bool) -> impl Future<Output = Result<()>> + Send;
    fn recover(&self, requeue: bool) -> impl Future<Output = Result<()>> + Send;
}

/// A connection of any transport.
pub(crate) enum AnyTransport {
    Memory(memory::MemoryTransport),
    Amqp(amqp::AmqpTransport),
    Redis(redis::RedisTransport),
}

/// A channel of any transport.
#[derive(Clone)]
pub(crate) enum AnyChannel {
    Memory(memory::MemoryChannel),
    Amqp(amqp::AmqpChannel),
    Redis(redis::RedisChannel),
}

/// Dispatch a call to the concrete transport behind an `Any*` enum.
macro_rules! dispatch {
    ($value:expr, $inner:ident => $call:expr) => {
        match $value {
            AnyChannel::Memory($inner) => $call,
            AnyChannel::Amqp($inner) => $call,
            AnyChannel::Redis($inner) => $call,
        }
    };
}

impl AnyTransport {
    pub(crate) async fn connect(url: &BrokerUrl, options: &ConnectOptions) -> Result<AnyTransport> {
        match url.transport() {
            TransportKind::Memory => {
                Ok(AnyTransport::Memory(memory::MemoryTransport::connect(url, options).await?))
            }
            TransportKind::Amqp => Ok(AnyTransport::Amqp(amqp::AmqpTransport::connect(url, options).await?)),
            TransportKind::Redis | TransportKind::Sentinel => {
                Ok(AnyTransport::Redis(redis::RedisTransport::connect(url, options).await?))
            }
        }
    }

    pub(crate) async fn open_channel(&self, confirms: confirm::SharedConfirms) -> Result<AnyChannel> {
        match self {
            AnyTransport::Memory(t) => Ok(AnyChannel::Memory(t.open_channel(confirms).await?)),
            AnyTransport::Amqp(t) => Ok(AnyChannel::Amqp(t.open_channel(confirms).await?)),
            AnyTransport::Redis(t) => Ok(AnyChannel::Redis(t.open_channel(confirms).await?)),
        }
    }

    /// A channel opened ahead of need (on a warm standby): it takes over
    /// `confirms` only when [`AnyChannel::adopt`]ed. `None` where opening a
    /// channel costs no round trip (memory, Redis): nothing to gain.
    pub(crate) async fn prepare_channel(&self, confirms: confirm::SharedConfirms) -> Result<Option<AnyChannel>> {
        match self {
            AnyTransport::Amqp(t) => Ok(Some(AnyChannel::Amqp(t.open(confirms, false).await?))),
            AnyTransport::Memory(_) | AnyTransport::Redis(_) => Ok(None),
        }
    }

    /// Resolves when the connection is lost or closed.
    pub(crate) fn closed(&self) -> Pin<Box<dyn Future<Output = Error> + Send + 'static>> {
        match self {
            AnyTransport::Memory(t) => Box::pin(t.closed()),
            AnyTransport::Amqp(t) => Box::pin(t.closed()),
            AnyTransport::Redis(t) => Box::pin(t.closed()),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        match self {
            AnyTransport::Memory(t) => t.is_open(),
            AnyTransport::Amqp(t) => t.is_open(),
            AnyTransport::Redis(t) => t.is_open(),
        }
    }

    pub(crate) async fn close(&self) -> Result<()> {
        match self {
            AnyTransport::Memory(t) => t.close().await,
            AnyTransport::Amqp(t) => t.close().await,
            AnyTransport::Redis(t) => t.close().await,
        }
    }

    pub(crate) fn capabilities(&self) -> Capabilities {
        match self {
            AnyTransport::Memory(t) => t.capabilities(),
            AnyTransport::Amqp(t) => t.capabilities(),
            AnyTransport::Redis(t) => t.capabilities(),
        }
    }
}

impl AnyChannel {
    pub(crate) fn is_open(&self) -> bool {
        dispatch!(self, c => c.is_open())
    }
    /// Take over the confirms of a channel made by
    /// [`AnyTransport::prepare_channel`].
    pub(crate) fn adopt(&self) {
        if let AnyChannel::Amqp(c) = self {
            c.adopt();
        }
    }
    pub(crate) async fn close(&self) -> Result<()> {
        dispatch!(self, c => c.close().await)
    }
    pub(crate) async fn exchange_declare(&self, args: ExchangeDeclare<'_>) -> Result<()> {
        dispatch!(self, c => c.exchange_declare(args).await)
    }
    pub(crate) async fn exchange_delete(&self, name: &str, if_unused: bool) -> Result<()> {
        dispatch!(self, c => c.exchange_delete(name, if_unused).await)
    }
    pub(crate) async fn exchange_bind(&self, args: BindArgs<'_>) -> Result<()> {
        dispatch!(self, c => c.exchange_bind(args).await)
    }
    pub(crate) async fn exchange_unbind(&self, args: BindArgs<'_>) -> Result<()> {
        dispatch!(self, c => c.exchange_unbind(args).await)
    }
    pub(crate) async fn queue_declare(&self, args: QueueDeclare<'_>) -> Result<QueueDeclareOk> {
        dispatch!(self, c => c.queue_declare(args).await)
    }
    pub(crate) async fn queue_bind(&self, args: BindArgs<'_>) -> Result<()> {
        dispatch!(self, c => c.queue_bind(args).await)
    }
    pub(crate) async fn queue_unbind(&self, args: BindArgs<'_>) -> Result<()> {
        dispatch!(self, c => c.queue_unbind(args).await)
    }
    pub(crate) async fn queue_purge(&self, name: &str) -> Result<u32> {
        dispatch!(self, c => c.queue_purge(name).await)
    }
    pub(crate) async fn queue_delete(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u32> {
        dispatch!(self, c => c.queue_delete(name, if_unused, if_empty).await)
    }
    pub(crate) async fn qos(&self, prefetch_count: u16, global: bool) -> Result<()> {
        dispatch!(self, c => c.qos(prefetch_count, global).await)
    }
    pub(crate) async fn confirm_select(&self) -> Result<()> {
        dispatch!(self, c => c.confirm_select().await)
    }
    pub(crate) async fn publish(&self, message: OutgoingMessage) -> Result<Confirm> {
        dispatch!(self, c => c.publish(message).await)
    }
    pub(crate) fn resend(&self, unsent: Vec<(u64, OutgoingMessage)>) -> Result<()> {
        dispatch!(self, c => c.resend(unsent))
    }
    pub(crate) async fn consume(&self, args: ConsumeArgs, sink: DeliverySender) -> Result<SharedStr> {
        dispatch!(self, c => c.consume(args, sink).await)
    }
    pub(crate) async fn cancel(&self, consumer_tag: &str) -> Result<()> {
        dispatch!(self, c => c.cancel(consumer_tag).await)
    }
    pub(crate) async fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Delivery>> {
        dispatch!(self, c => c.get(queue, no_ack).await)
    }
    pub(crate) async fn ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        dispatch!(self, c => c.ack(delivery_tag, multiple).await)
    }
    pub(crate) async fn nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        dispatch!(self, c => c.nack(delivery_tag, multiple, requeue).await)
    }
    pub(crate) async fn reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        dispatch!(self, c => c.reject(delivery_tag, requeue).await)
    }
    pub(crate) async fn recover(&self, requeue: bool) -> Result<()> {
        dispatch!(self, c => c.recover(requeue).await)
    }
}
