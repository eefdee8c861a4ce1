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
use super::memory;
#[cfg(feature = "amqp")]
use super::amqp;
#[cfg(feature = "redis")]
use super::redis;
use crate::content::text::SharedStr;
use crate::error::{Error, Result};
use crate::url::{BrokerUrl, TransportKind};

/// A connection of any transport.
pub(crate) enum AnyTransport {
    Memory(memory::MemoryTransport),
    #[cfg(feature = "amqp")]
    Amqp(amqp::AmqpTransport),
    #[cfg(feature = "redis")]
    Redis(redis::RedisTransport),
}

/// A channel of any transport.
#[derive(Clone)]
pub(crate) enum AnyChannel {
    Memory(memory::MemoryChannel),
    #[cfg(feature = "amqp")]
    Amqp(amqp::AmqpChannel),
    #[cfg(feature = "redis")]
    Redis(redis::RedisChannel),
}

/// Dispatch a call to the concrete transport behind an `Any*` enum.
macro_rules! dispatch {
    ($any:ident, $value:expr, $inner:ident => $call:expr) => {
        match $value {
            $any::Memory($inner) => $call,
            #[cfg(feature = "amqp")]
            $any::Amqp($inner) => $call,
            #[cfg(feature = "redis")]
            $any::Redis($inner) => $call,
        }
    };
}

impl AnyTransport {
    pub(crate) async fn connect(url: &BrokerUrl, options: &ConnectOptions) -> Result<AnyTransport> {
        match url.transport() {
            TransportKind::Memory => {
                Ok(AnyTransport::Memory(memory::MemoryTransport::connect(url, options).await?))
            }
            #[cfg(feature = "amqp")]
            TransportKind::Amqp => Ok(AnyTransport::Amqp(amqp::AmqpTransport::connect(url, options).await?)),
            #[cfg(not(feature = "amqp"))]
            TransportKind::Amqp => Err(Error::feature_missing(url, "amqp")),
            #[cfg(feature = "redis")]
            TransportKind::Redis | TransportKind::Sentinel => {
                Ok(AnyTransport::Redis(redis::RedisTransport::connect(url, options).await?))
            }
            #[cfg(not(feature = "redis"))]
            TransportKind::Redis | TransportKind::Sentinel => Err(Error::feature_missing(url, "redis")),
        }
    }

    pub(crate) async fn open_channel(&self, confirms: SharedConfirms) -> Result<AnyChannel> {
        match self {
            AnyTransport::Memory(t) => Ok(AnyChannel::Memory(t.open_channel(confirms).await?)),
            #[cfg(feature = "amqp")]
            AnyTransport::Amqp(t) => Ok(AnyChannel::Amqp(t.open_channel(confirms).await?)),
            #[cfg(feature = "redis")]
            AnyTransport::Redis(t) => Ok(AnyChannel::Redis(t.open_channel(confirms).await?)),
        }
    }

    /// A channel opened ahead of need (on a warm standby): it takes over
    /// `confirms` only when [`AnyChannel::adopt`]ed. `None` where opening a
    /// channel costs no round trip (memory, Redis): nothing to gain.
    #[cfg_attr(not(feature = "amqp"), allow(unused_variables))]
    pub(crate) async fn prepare_channel(&self, confirms: SharedConfirms) -> Result<Option<AnyChannel>> {
        match self {
            #[cfg(feature = "amqp")]
            AnyTransport::Amqp(t) => Ok(Some(AnyChannel::Amqp(t.open(confirms, false).await?))),
            _ => Ok(None),
        }
    }

    /// Resolves when the connection is lost or closed.
    pub(crate) fn closed(&self) -> Pin<Box<dyn Future<Output = Error> + Send + 'static>> {
        dispatch!(AnyTransport, self, t => Box::pin(t.closed()))
    }

    pub(crate) fn is_open(&self) -> bool {
        dispatch!(AnyTransport, self, t => t.is_open())
    }

    pub(crate) async fn close(&self) -> Result<()> {
        dispatch!(AnyTransport, self, t => t.close().await)
    }

    pub(crate) fn capabilities(&self) -> Capabilities {
        dispatch!(AnyTransport, self, t => t.capabilities())
    }
}

impl AnyChannel {
    pub(crate) fn is_open(&self) -> bool {
        dispatch!(AnyChannel, self, c => c.is_open())
    }
    /// Take over the confirms of a channel made by
    /// [`AnyTransport::prepare_channel`].
    pub(crate) fn adopt(&self) {
        #[cfg(feature = "amqp")]
        if let AnyChannel::Amqp(c) = self {
            c.adopt();
        }
    }
    pub(crate) async fn close(&self) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.close().await)
    }
    pub(crate) async fn exchange_declare(&self, args: &ExchangeDeclare) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.exchange_declare(args).await)
    }
    pub(crate) async fn exchange_delete(&self, name: &str, if_unused: bool) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.exchange_delete(name, if_unused).await)
    }
    pub(crate) async fn exchange_bind(&self, args: &BindArgs) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.exchange_bind(args).await)
    }
    pub(crate) async fn exchange_unbind(&self, args: &BindArgs) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.exchange_unbind(args).await)
    }
    pub(crate) async fn queue_declare(&self, args: &QueueDeclare) -> Result<QueueDeclareOk> {
        dispatch!(AnyChannel, self, c => c.queue_declare(args).await)
    }
    pub(crate) async fn queue_bind(&self, args: &BindArgs) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.queue_bind(args).await)
    }
    pub(crate) async fn queue_unbind(&self, args: &BindArgs) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.queue_unbind(args).await)
    }
    pub(crate) async fn queue_purge(&self, name: &str) -> Result<u32> {
        dispatch!(AnyChannel, self, c => c.queue_purge(name).await)
    }
    pub(crate) async fn queue_delete(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u32> {
        dispatch!(AnyChannel, self, c => c.queue_delete(name, if_unused, if_empty).await)
    }
    pub(crate) async fn qos(&self, prefetch_count: u16, global: bool) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.qos(prefetch_count, global).await)
    }
    pub(crate) async fn confirm_select(&self) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.confirm_select().await)
    }
    pub(crate) async fn publish(&self, message: OutgoingMessage) -> Result<Confirm> {
        dispatch!(AnyChannel, self, c => c.publish(message).await)
    }
    pub(crate) fn resend(&self, unsent: Vec<(u64, OutgoingMessage)>) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.resend(unsent))
    }
    pub(crate) async fn consume(&self, args: ConsumeArgs, sink: DeliverySender) -> Result<SharedStr> {
        dispatch!(AnyChannel, self, c => c.consume(args, sink).await)
    }
    pub(crate) async fn cancel(&self, consumer_tag: &str) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.cancel(consumer_tag).await)
    }
    pub(crate) async fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Delivery>> {
        dispatch!(AnyChannel, self, c => c.get(queue, no_ack).await)
    }
    pub(crate) async fn ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.ack(delivery_tag, multiple).await)
    }
    pub(crate) async fn nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.nack(delivery_tag, multiple, requeue).await)
    }
    pub(crate) async fn reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.reject(delivery_tag, requeue).await)
    }
    pub(crate) async fn recover(&self, requeue: bool) -> Result<()> {
        dispatch!(AnyChannel, self, c => c.recover(requeue).await)
    }
}
