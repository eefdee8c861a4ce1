//! [`AnyTransport`] and [`AnyChannel`]: the transports compiled in, behind
//! one type each. Calls dispatch statically to the concrete transport: no
//! boxing and no virtual call on the per-message path.

use std::future::Future;
use std::pin::Pin;

use super::api::{Capabilities, Confirm, Transport, TransportChannel};
use super::confirm::SharedConfirms;
use super::types::{
    BindArgs, ConnectOptions, ConsumeArgs, Delivery, DeliverySender, ExchangeDeclare, OutgoingMessage, QueueDeclare,
    QueueDeclareOk,
};
use super::{amqp, memory, redis};
use crate::content::text::SharedStr;
use crate::error::{Error, Result};
use crate::url::{BrokerUrl, TransportKind};

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

    pub(crate) async fn open_channel(&self, confirms: SharedConfirms) -> Result<AnyChannel> {
        match self {
            AnyTransport::Memory(t) => Ok(AnyChannel::Memory(t.open_channel(confirms).await?)),
            AnyTransport::Amqp(t) => Ok(AnyChannel::Amqp(t.open_channel(confirms).await?)),
            AnyTransport::Redis(t) => Ok(AnyChannel::Redis(t.open_channel(confirms).await?)),
        }
    }

    /// A channel opened ahead of need (on a warm standby): it takes over
    /// `confirms` only when [`AnyChannel::adopt`]ed. `None` where opening a
    /// channel costs no round trip (memory, Redis): nothing to gain.
    pub(crate) async fn prepare_channel(&self, confirms: SharedConfirms) -> Result<Option<AnyChannel>> {
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
    pub(crate) async fn exchange_declare(&self, args: &ExchangeDeclare) -> Result<()> {
        dispatch!(self, c => c.exchange_declare(args).await)
    }
    pub(crate) async fn exchange_delete(&self, name: &str, if_unused: bool) -> Result<()> {
        dispatch!(self, c => c.exchange_delete(name, if_unused).await)
    }
    pub(crate) async fn exchange_bind(&self, args: &BindArgs) -> Result<()> {
        dispatch!(self, c => c.exchange_bind(args).await)
    }
    pub(crate) async fn exchange_unbind(&self, args: &BindArgs) -> Result<()> {
        dispatch!(self, c => c.exchange_unbind(args).await)
    }
    pub(crate) async fn queue_declare(&self, args: &QueueDeclare) -> Result<QueueDeclareOk> {
        dispatch!(self, c => c.queue_declare(args).await)
    }
    pub(crate) async fn queue_bind(&self, args: &BindArgs) -> Result<()> {
        dispatch!(self, c => c.queue_bind(args).await)
    }
    pub(crate) async fn queue_unbind(&self, args: &BindArgs) -> Result<()> {
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
