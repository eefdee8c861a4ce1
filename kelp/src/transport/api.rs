//! The interface every broker plugs into: [`Transport`] (one broker
//! connection) and [`TransportChannel`] (one channel on it), with
//! AMQP-shaped operations, the [`Capabilities`] a transport declares, and the
//! [`Confirm`] a publish returns.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(any(feature = "amqp", feature = "redis"))]
use super::confirm::PendingConfirm;
use super::confirm::SharedConfirms;
use super::types::{
    BindArgs, ConnectOptions, ConsumeArgs, Delivery, DeliverySender, ExchangeDeclare, OutgoingMessage, QueueDeclare,
    QueueDeclareOk,
};
use crate::content::text::SharedStr;
use crate::error::{Error, Result};
use crate::url::BrokerUrl;

/// What a transport can do. Ask with
/// [`Connection::capabilities`](crate::Connection::capabilities); what a
/// transport cannot do is refused with an
/// [`Unsupported`](crate::ErrorKind::Unsupported) error, never ignored.
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
    /// Priorities are served strictly highest first, as RabbitMQ does.
    /// False where they are coarse buckets served lowest first (Kombu's
    /// Redis format, kept for compatibility).
    pub strict_priorities: bool,
    /// Per-message and per-queue TTL (`expiration`, `x-message-ttl`).
    pub message_ttl: bool,
    /// Queue length limits (`x-max-length`, `x-max-length-bytes`).
    pub max_length: bool,
    /// Exchange-to-exchange bindings.
    pub exchange_bindings: bool,
    /// RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`): replies come
    /// back without a reply queue of the client's own.
    pub direct_reply_to: bool,
    /// A publish to an exchange that does not exist is an error (the broker
    /// keeps exchanges; Redis, like Kombu's transport, does not).
    pub checks_exchanges: bool,
}

/// The outcome of a publish, once the broker has taken responsibility.
///
/// A ready value for transports that confirm synchronously (memory); later
/// transports add variants that wait on the broker without a task or an
/// allocation per message.
#[must_use = "a confirmation does nothing unless awaited"]
pub(crate) enum Confirm {
    Ready(Option<Result<()>>),
    /// Tracked in the channel's confirms, resolved by the broker's ack or
    /// nack (AMQP) or by the answer to its write (Redis); it survives a
    /// reconnect.
    #[cfg(any(feature = "amqp", feature = "redis"))]
    Tracked(PendingConfirm),
}

impl Confirm {
    pub(crate) fn ready(result: Result<()>) -> Confirm {
        Confirm::Ready(Some(result))
    }
}

impl Future for Confirm {
    type Output = Result<()>;
    #[cfg_attr(not(any(feature = "amqp", feature = "redis")), allow(unused_variables))]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        match self.get_mut() {
            Confirm::Ready(result) => Poll::Ready(
                result
                    .take()
                    .unwrap_or_else(|| Err(Error::closed("confirmation polled after completion"))),
            ),
            #[cfg(any(feature = "amqp", feature = "redis"))]
            Confirm::Tracked(pending) => Pin::new(pending).poll(cx),
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
    fn open_channel(&self, confirms: SharedConfirms)
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

    fn exchange_declare(&self, args: &ExchangeDeclare) -> impl Future<Output = Result<()>> + Send;
    fn exchange_delete(&self, name: &str, if_unused: bool) -> impl Future<Output = Result<()>> + Send;
    fn exchange_bind(&self, args: &BindArgs) -> impl Future<Output = Result<()>> + Send;
    fn exchange_unbind(&self, args: &BindArgs) -> impl Future<Output = Result<()>> + Send;

    fn queue_declare(&self, args: &QueueDeclare)
        -> impl Future<Output = Result<QueueDeclareOk>> + Send;
    fn queue_bind(&self, args: &BindArgs) -> impl Future<Output = Result<()>> + Send;
    fn queue_unbind(&self, args: &BindArgs) -> impl Future<Output = Result<()>> + Send;
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
