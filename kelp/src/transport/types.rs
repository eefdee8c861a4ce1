//! The data that crosses the transport interface: connect options, the
//! arguments of declarations and bindings, messages on their way out,
//! deliveries and consumer events on their way in.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::content::exchange::ExchangeKind;
use crate::content::message::{Content, DeliveryInfo};
use crate::content::text::SharedStr;
use crate::content::value::FieldTable;
use crate::event::Events;

/// Options every transport honours when connecting.
#[derive(Clone, Debug)]
pub(crate) struct ConnectOptions {
    pub(crate) connect_timeout: Duration,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) connection_name: Option<String>,
    // Read by the Redis transport; the memory and AMQP transports define none.
    pub(crate) transport_options: FieldTable,
    pub(crate) events: Events,
    /// Keep unconfirmed publishes (to publish again after a reconnect)
    /// instead of failing them when the connection dies.
    pub(crate) keep_unconfirmed: bool,
    /// At most this many unconfirmed publishes per channel; more wait.
    pub(crate) max_unconfirmed: usize,
    /// How long a publish may wait (for room, or while blocked).
    pub(crate) publish_wait: Duration,
    /// The same for every broker connection of one kelp connection, across
    /// reconnects: a transport that leaves state on the broker per
    /// connection (Redis: messages taken but not yet recorded) finds what
    /// its predecessors left by it.
    pub(crate) client: String,
    /// Leave a broker that confirms nothing for this long while publishes
    /// wait for it (a node cut off from its cluster keeps its connections
    /// and heartbeats, and confirms nothing); `None` never.
    pub(crate) confirm_timeout: Option<Duration>,
}

/// Arguments of an exchange declaration.
#[derive(Clone, Debug)]
pub(crate) struct ExchangeDeclare {
    pub(crate) name: String,
    pub(crate) kind: ExchangeKind,
    pub(crate) passive: bool,
    pub(crate) durable: bool,
    pub(crate) auto_delete: bool,
    pub(crate) internal: bool,
    pub(crate) arguments: FieldTable,
}

/// Arguments of a queue declaration; an empty name asks the broker to name it.
#[derive(Clone, Debug)]
pub(crate) struct QueueDeclare {
    pub(crate) name: String,
    pub(crate) passive: bool,
    pub(crate) durable: bool,
    pub(crate) exclusive: bool,
    pub(crate) auto_delete: bool,
    pub(crate) arguments: FieldTable,
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
#[derive(PartialEq)]
pub(crate) struct BindArgs {
    pub(crate) destination: String,
    pub(crate) source: String,
    pub(crate) routing_key: String,
    pub(crate) arguments: FieldTable,
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
