//! Messages as they are received: properties, delivery information, body,
//! and the acknowledgement state machine.

use bytes::Bytes;

use crate::{FieldTable, SharedStr};

/// AMQP basic properties of a message (Kombu's `message.properties`, with
/// `content_type`, `content_encoding` and `headers` alongside).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Properties {
    /// MIME type of the body, e.g. `application/json`.
    pub content_type: Option<SharedStr>,
    /// Character encoding of the body, e.g. `utf-8`, or `binary`.
    pub content_encoding: Option<SharedStr>,
    /// Application headers (`compression` among them when compressed).
    pub headers: FieldTable,
    /// 1 = transient, 2 = persistent.
    pub delivery_mode: Option<u8>,
    /// Priority, 0 to 255 (brokers use 0 to the queue's max priority).
    pub priority: Option<u8>,
    /// Correlates a reply with its request.
    pub correlation_id: Option<SharedStr>,
    /// Where replies should go.
    pub reply_to: Option<SharedStr>,
    /// Per-message TTL in milliseconds, as text (AMQP's format).
    pub expiration: Option<SharedStr>,
    /// Application message identifier.
    pub message_id: Option<SharedStr>,
    /// Seconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// Application message type (AMQP `type`).
    pub kind: Option<SharedStr>,
    /// Authenticated user id (checked by RabbitMQ when set).
    pub user_id: Option<SharedStr>,
    /// Application id.
    pub app_id: Option<SharedStr>,
    /// Deprecated AMQP cluster id.
    pub cluster_id: Option<SharedStr>,
}

/// Where and how a message was delivered (Kombu's `message.delivery_info`).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct DeliveryInfo {
    /// The exchange the message was published to (`""` for the default exchange).
    pub exchange: SharedStr,
    /// The routing key it was published with.
    pub routing_key: SharedStr,
    /// True if the message was delivered before and not acknowledged.
    pub redelivered: bool,
    /// The consumer it was delivered to; `None` for a basic get.
    pub consumer_tag: Option<SharedStr>,
    /// The delivery tag, unique on its channel.
    pub delivery_tag: u64,
}

/// A mandatory message the broker could not route, returned to the publisher.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ReturnedMessage {
    /// AMQP reply code, 312 (NO_ROUTE) for unroutable messages.
    pub reply_code: u16,
    /// The broker's explanation.
    pub reply_text: SharedStr,
    /// The exchange it was published to.
    pub exchange: SharedStr,
    /// The routing key it was published with.
    pub routing_key: SharedStr,
    /// Its properties.
    pub properties: Properties,
    /// Its body, as published.
    pub body: Bytes,
}
