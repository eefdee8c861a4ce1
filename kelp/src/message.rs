//! Messages as they are received: properties, delivery information, body,
//! and the acknowledgement state machine.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::compression::{Compression, DEFAULT_DECOMPRESSION_LIMIT};
use crate::serialization::{self, Accept};
use crate::transport::{AnyChannel, Delivery};
use crate::{Error, ErrorKind, FieldTable, Result, SharedStr, Value};

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

/// The immutable part of a message: properties and body. Shared, never
/// copied, between a transport's bookkeeping (unacked, unconfirmed) and the
/// application's [`Message`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Content {
    pub(crate) properties: Properties,
    pub(crate) body: Bytes,
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

/// Where a received message stands (Kombu's `message.acknowledged` states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageState {
    /// Received and not yet settled.
    Received,
    /// Acknowledged.
    Acked,
    /// Rejected without requeue (dropped or dead-lettered by the broker).
    Rejected,
    /// Rejected with requeue: the broker will deliver it again.
    Requeued,
}

impl MessageState {
    fn from_u8(v: u8) -> MessageState {
        match v {
            1 => MessageState::Acked,
            2 => MessageState::Rejected,
            3 => MessageState::Requeued,
            _ => MessageState::Received,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            MessageState::Received => 0,
            MessageState::Acked => 1,
            MessageState::Rejected => 2,
            MessageState::Requeued => 3,
        }
    }

    fn kombu_name(self) -> &'static str {
        match self {
            MessageState::Received => "RECEIVED",
            MessageState::Acked => "ACK",
            MessageState::Rejected => "REJECTED",
            MessageState::Requeued => "REQUEUED",
        }
    }
}

/// How a consumer decodes its messages: the accept list and the bound on
/// decompressed size. Shared by all messages of a consumer.
#[derive(Debug)]
pub(crate) struct DecodeSettings {
    pub(crate) accept: Accept,
    pub(crate) decompression_limit: usize,
}

impl DecodeSettings {
    pub(crate) fn shared_default() -> Arc<DecodeSettings> {
        static DEFAULT: OnceLock<Arc<DecodeSettings>> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                Arc::new(DecodeSettings {
                    accept: Accept::default(),
                    decompression_limit: DEFAULT_DECOMPRESSION_LIMIT,
                })
            })
            .clone()
    }
}

/// A message received from a queue, by a consumer or a get.
///
/// The body is decoded on demand with [`decode`](Message::decode) or
/// [`payload`](Message::payload), after the consumer's accept list allowed
/// its content type. A message must be settled once: [`ack`](Message::ack),
/// [`reject`](Message::reject) or [`requeue`](Message::requeue); a second
/// attempt is a [`MessageState`](crate::ErrorKind::MessageState) error and
/// sends nothing to the broker. Messages of `no_ack` consumers need no
/// settling (acking them does nothing).
pub struct Message {
    info: DeliveryInfo,
    content: Arc<Content>,
    /// Where an ack goes.
    acker: Acker,
    /// The broker's delivery tag on its channel (`info.delivery_tag` keeps
    /// growing across recoveries; this one restarts with each channel).
    wire_tag: u64,
    state: StateCell,
    settings: Arc<DecodeSettings>,
}

/// The settle state: inline normally, shared when the worker keeps a twin
/// of a message it handed to a handler.
enum StateCell {
    Inline(AtomicU8),
    Shared(Arc<AtomicU8>),
}

impl StateCell {
    fn get(&self) -> &AtomicU8 {
        match self {
            StateCell::Inline(s) => s,
            StateCell::Shared(s) => s,
        }
    }
}

/// Where a message's ack goes.
#[derive(Clone)]
pub(crate) enum Acker {
    /// Consumed without acknowledgements: settling does nothing.
    NoAck,
    /// The broker channel it arrived on.
    Channel(AnyChannel),
    /// Its connection was replaced: the broker redelivers it.
    Stale,
}

impl Message {
    pub(crate) fn new(
        mut delivery: Delivery,
        acker: Acker,
        shown_tag: u64,
        settings: Arc<DecodeSettings>,
    ) -> Message {
        let wire_tag = delivery.info.delivery_tag;
        delivery.info.delivery_tag = shown_tag;
        Message {
            info: delivery.info,
            content: delivery.content,
            acker,
            wire_tag,
            state: StateCell::Inline(AtomicU8::new(MessageState::Received.as_u8())),
            settings,
        }
    }

    /// The same message, sharing its settle state with this one (so that
    /// whoever settles it first wins and the other sees it).
    pub(crate) fn twin(&mut self) -> Message {
        if let StateCell::Inline(state) = &self.state {
            let shared = Arc::new(AtomicU8::new(state.load(Ordering::Acquire)));
            self.state = StateCell::Shared(shared);
        }
        let state = match &self.state {
            StateCell::Shared(s) => StateCell::Shared(s.clone()),
            StateCell::Inline(s) => StateCell::Inline(AtomicU8::new(s.load(Ordering::Acquire))),
        };
        Message {
            info: self.info.clone(),
            content: self.content.clone(),
            acker: self.acker.clone(),
            wire_tag: self.wire_tag,
            state,
            settings: self.settings.clone(),
        }
    }

    /// The body as it travelled: still compressed if it was.
    pub fn raw_body(&self) -> &Bytes {
        &self.content.body
    }

    /// The body, decompressed when the `compression` header says so
    /// (bounded by the consumer's decompression limit), not deserialized.
    pub fn body(&self) -> Result<Bytes> {
        match self.compression() {
            None => Ok(self.content.body.clone()),
            Some(name) => {
                Compression::from_name(name)?.decompress(&self.content.body, self.settings.decompression_limit)
            }
        }
    }

    /// The `compression` header (a MIME type such as `application/x-gzip`).
    pub fn compression(&self) -> Option<&str> {
        self.content.properties.headers.get("compression").and_then(Value::as_str)
    }

    /// The content type, e.g. `application/json`.
    pub fn content_type(&self) -> Option<&str> {
        self.content.properties.content_type.as_deref()
    }

    /// The content encoding, e.g. `utf-8` or `binary`.
    pub fn content_encoding(&self) -> Option<&str> {
        self.content.properties.content_encoding.as_deref()
    }

    /// Application headers.
    pub fn headers(&self) -> &FieldTable {
        &self.content.properties.headers
    }

    /// All properties.
    pub fn properties(&self) -> &Properties {
        &self.content.properties
    }

    /// Delivery information: exchange, routing key, redelivered, tags.
    pub fn delivery_info(&self) -> &DeliveryInfo {
        &self.info
    }

    /// The delivery tag on its channel.
    pub fn delivery_tag(&self) -> u64 {
        self.info.delivery_tag
    }

    /// True when the broker delivered this message before.
    pub fn redelivered(&self) -> bool {
        self.info.redelivered
    }

    /// The routing key it was published with.
    pub fn routing_key(&self) -> &str {
        &self.info.routing_key
    }

    /// The exchange it was published to.
    pub fn exchange(&self) -> &str {
        &self.info.exchange
    }

    /// Check the content type against the consumer's accept list.
    pub fn check_accepted(&self) -> Result<()> {
        self.settings.accept.check(self.content_type())
    }

    /// Deserialize the body into `T`, after the accept list allowed its content type.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        self.check_accepted()?;
        let body = self.body()?;
        serialization::decode(self.content_type(), self.content_encoding(), &body)
    }

    /// Deserialize the body into a dynamic [`Value`] (Kombu's `message.payload`).
    pub fn payload(&self) -> Result<Value> {
        self.check_accepted()?;
        let body = self.body()?;
        serialization::decode_value(self.content_type(), self.content_encoding(), &body)
    }

    /// Where the message stands.
    pub fn state(&self) -> MessageState {
        MessageState::from_u8(self.state.get().load(Ordering::Acquire))
    }

    /// True once acked, rejected or requeued.
    pub fn is_settled(&self) -> bool {
        self.state() != MessageState::Received
    }

    /// Acknowledge the message.
    pub async fn ack(&self) -> Result<()> {
        self.settle(MessageState::Acked, |ch, tag| async move { ch.ack(tag, false).await })
            .await
    }

    /// Acknowledge this message and every earlier unacknowledged one on its channel.
    pub async fn ack_multiple(&self) -> Result<()> {
        self.settle(MessageState::Acked, |ch, tag| async move { ch.ack(tag, true).await })
            .await
    }

    /// Reject this message and every earlier unsettled one on its channel
    /// (AMQP `basic.nack` with `multiple`); with `requeue` they are delivered
    /// again, otherwise dropped or dead-lettered. Only this message's state
    /// changes: the earlier ones are settled on the broker, not in their
    /// handles, as with [`ack_multiple`](Message::ack_multiple).
    pub async fn reject_multiple(&self, requeue: bool) -> Result<()> {
        let to = if requeue { MessageState::Requeued } else { MessageState::Rejected };
        self.settle(to, |ch, tag| async move { ch.nack(tag, true, requeue).await })
            .await
    }

    /// Reject the message: the broker drops it (or dead-letters it).
    pub async fn reject(&self) -> Result<()> {
        self.settle(MessageState::Rejected, |ch, tag| async move { ch.reject(tag, false).await })
            .await
    }

    /// Reject the message and have it delivered again (it comes back redelivered).
    pub async fn requeue(&self) -> Result<()> {
        self.settle(MessageState::Requeued, |ch, tag| async move { ch.reject(tag, true).await })
            .await
    }

    async fn settle<'a, F, Fut>(&'a self, to: MessageState, send: F) -> Result<()>
    where
        F: FnOnce(&'a AnyChannel, u64) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let channel = match &self.acker {
            Acker::NoAck => return Ok(()), // the broker already forgot it
            Acker::Channel(channel) => channel,
            Acker::Stale => return Err(stale_error()),
        };
        let received = MessageState::Received.as_u8();
        if let Err(current) =
            self.state.get()
                .compare_exchange(received, to.as_u8(), Ordering::AcqRel, Ordering::Acquire)
        {
            return Err(Error::new(
                ErrorKind::MessageState,
                format!(
                    "Message already acknowledged with state: {}",
                    MessageState::from_u8(current).kombu_name()
                ),
            ));
        }
        let result = send(channel, self.wire_tag).await;
        match result {
            Ok(()) => Ok(()),
            // Its channel died with its connection: the broker will deliver
            // it again, so there is nothing to settle any more.
            Err(e) if !channel.is_open() && (e.is_connection() || e.is_closed() || e.is_channel()) => {
                Err(stale_error())
            }
            Err(e) => {
                // Nothing reached the broker: let the caller try another way.
                self.state.get().store(received, Ordering::Release);
                Err(e)
            }
        }
    }
}

fn stale_error() -> Error {
    Error::new(
        ErrorKind::Stale,
        "the message came on a connection or channel that is gone; the broker delivers it again",
    )
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("delivery_tag", &self.info.delivery_tag)
            .field("exchange", &self.info.exchange)
            .field("routing_key", &self.info.routing_key)
            .field("content_type", &self.content.properties.content_type)
            .field("body_len", &self.content.body.len())
            .field("state", &self.state())
            .finish()
    }
}
