//! What a message is made of, as it travels: properties, body, delivery
//! information, and a message the broker returned. Plain data shared by
//! every layer above (transports fill it in, the model hands it out).

use bytes::Bytes;

use super::text::SharedStr;
use super::value::FieldTable;

/// AMQP basic properties of a message (Kombu's `message.properties`, with
/// `content_type`, `content_encoding` and `headers` alongside).
///
/// Set them when publishing, with the setters of
/// [`Publish`](crate::Publish); read them from
/// [`Message::properties`](crate::Message::properties).
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// let queue = Queue::new("properties-doc");
/// queue.declare(&channel).await?;
/// let producer = conn.producer().routing_key("properties-doc").build().await?;
/// producer.publish(&[1, 2]).kind("order.created").app_id("shop").send().await?;
///
/// let message = queue.get(&channel, true).await?.expect("a message");
/// let properties = message.properties();
/// assert_eq!(properties.content_type.as_deref(), Some("application/json"));
/// assert_eq!(properties.kind.as_deref(), Some("order.created"));
/// assert_eq!(properties.app_id.as_deref(), Some("shop"));
/// assert_eq!(properties.delivery_mode, Some(2)); // persistent by default
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
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

/// The immutable part of a message: properties and body. Shared, never
/// copied, between a transport's bookkeeping (unacked, unconfirmed) and the
/// application's [`Message`](crate::Message).
#[derive(Clone, Debug, Default)]
pub(crate) struct Content {
    pub(crate) properties: Properties,
    pub(crate) body: Bytes,
}

/// Where and how a message was delivered (Kombu's `message.delivery_info`).
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Exchange, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let logs = Exchange::topic("delivery-info-doc");
/// let mut consumer = conn
///     .consumer([Queue::new("delivery-info-doc").exchange(logs.clone()).routing_key("app.#")])
///     .build()
///     .await?;
/// conn.producer().exchange(logs).build().await?.publish("up").routing_key("app.web").send().await?;
///
/// let message = consumer.next().await.expect("a message")?;
/// let info = message.delivery_info();
/// assert_eq!(info.exchange, "delivery-info-doc");
/// assert_eq!(info.routing_key, "app.web");
/// assert!(!info.redelivered);
/// assert!(info.consumer_tag.is_some());
/// message.ack().await?;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
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
///
/// It comes with the [`Unroutable`](crate::ErrorKind::Unroutable) error of
/// the publish and to [`ProducerBuilder::on_return`](crate::ProducerBuilder::on_return).
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// let conn = kelp::Connection::new("memory://")?;
/// let producer = conn.producer().build().await?;
/// let error = producer
///     .publish("order #1")
///     .routing_key("returned-doc-nowhere")
///     .mandatory(true)
///     .send()
///     .await
///     .unwrap_err();
///
/// let returned = error.into_returned_message().expect("the message came back");
/// assert_eq!(returned.reply_code, kelp::reply_code::NO_ROUTE);
/// assert_eq!(returned.routing_key, "returned-doc-nowhere");
/// assert_eq!(returned.body.as_ref(), br#""order #1""#);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
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
