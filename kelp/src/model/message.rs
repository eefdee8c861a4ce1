//! Messages as they are received: properties, delivery information, body,
//! and the acknowledgement state machine.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::codec::compression::{Compression, DEFAULT_DECOMPRESSION_LIMIT};
use crate::codec::serialization::{self, Accept};
use crate::content::message::{Content, DeliveryInfo, Properties};
use crate::transport::{AnyChannel, Delivery};
use crate::content::value::{FieldTable, Value};
use crate::error::{Error, ErrorKind, Result};


/// Where a received message stands (Kombu's `message.acknowledged` states).
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::MessageState;
/// # use kelp::{Connection, Queue};
/// # let conn = Connection::new("memory://")?;
/// # let channel = conn.default_channel().await?;
/// # let queue = Queue::new("message-state-doc");
/// # queue.declare(&channel).await?;
/// # let producer = conn.producer().routing_key("message-state-doc").build().await?;
/// producer.publish("job").send().await?;
/// let message = queue.get(&channel, false).await?.expect("a message");
/// assert_eq!(message.state(), MessageState::Received);
/// message.requeue().await?;
/// assert_eq!(message.state(), MessageState::Requeued);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
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
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Queue};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Signup {
///     email: String,
/// }
///
/// let conn = Connection::new("memory://")?;
/// let mut consumer = conn.consumer([Queue::new("message-doc")]).build().await?;
/// let producer = conn.producer().routing_key("message-doc").build().await?;
/// producer.publish(&serde_json::json!({"email": "ada@example.com"})).send().await?;
///
/// let message = consumer.next().await.expect("a message")?;
/// match message.decode::<Signup>() {
///     Ok(signup) => {
///         assert_eq!(signup.email, "ada@example.com");
///         message.ack().await?;
///     }
///     // Not worth retrying: drop it (or dead-letter it, on RabbitMQ).
///     Err(_) => message.reject().await?,
/// }
/// assert!(message.is_settled());
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::Compression;
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("raw-body-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("raw-body-doc").build().await?;
    /// producer.publish_text("x".repeat(1000)).compression(Compression::Zlib).send().await?;
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// assert!(message.raw_body().len() < 100); // compressed
    /// assert_eq!(message.body()?.len(), 1000); // decompressed
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn raw_body(&self) -> &Bytes {
        &self.content.body
    }

    /// The body, decompressed when the `compression` header says so
    /// (bounded by the consumer's decompression limit), not deserialized.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("body-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("body-doc").build().await?;
    /// producer.publish(&[1, 2]).send().await?;
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// assert_eq!(message.body()?.as_ref(), b"[1, 2]"); // the JSON text
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn body(&self) -> Result<Bytes> {
        match self.compression() {
            None => Ok(self.content.body.clone()),
            Some(name) => {
                Compression::from_name(name)?.decompress(&self.content.body, self.settings.decompression_limit)
            }
        }
    }

    /// The `compression` header (a MIME type such as `application/x-gzip`).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::Compression;
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("message-compression-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("message-compression-doc").build().await?;
    /// producer.publish("x").compression(Compression::Zlib).send().await?;
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// assert_eq!(message.compression(), Some("application/x-gzip"));
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn compression(&self) -> Option<&str> {
        self.content.properties.headers.get("compression").and_then(Value::as_str)
    }

    /// The content type, e.g. `application/json`.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::Serializer;
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("content-type-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("content-type-doc").build().await?;
    /// producer.publish("x").serializer(Serializer::text()).send().await?;
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// assert_eq!(message.content_type(), Some("text/plain"));
    /// assert_eq!(message.content_encoding(), Some("utf-8"));
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn content_type(&self) -> Option<&str> {
        self.content.properties.content_type.as_deref()
    }

    /// The content encoding, e.g. `utf-8` or `binary`.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("content-encoding-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("content-encoding-doc").build().await?;
    /// producer.publish_text("héllo").send().await?;
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// assert_eq!(message.content_encoding(), Some("utf-8"));
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn content_encoding(&self) -> Option<&str> {
        self.content.properties.content_encoding.as_deref()
    }

    /// Application headers.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("headers-doc-msg");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("headers-doc-msg").build().await?;
    /// producer.publish("x").header("attempt", 3).send().await?;
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// let attempt = message.headers().get("attempt").and_then(|v| v.as_i64());
    /// assert_eq!(attempt, Some(3));
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn headers(&self) -> &FieldTable {
        &self.content.properties.headers
    }

    /// All properties.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("message-properties-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("message-properties-doc").build().await?;
    /// producer.publish("x").reply_to("answers").send().await?;
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// assert_eq!(message.properties().reply_to.as_deref(), Some("answers"));
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn properties(&self) -> &Properties {
        &self.content.properties
    }

    /// Delivery information: exchange, routing key, redelivered, tags.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("message-delivery-info-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("message-delivery-info-doc").build().await?;
    /// producer.publish("job").send().await?;
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// // A get has no consumer.
    /// assert_eq!(message.delivery_info().consumer_tag, None);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn delivery_info(&self) -> &DeliveryInfo {
        &self.info
    }

    /// The delivery tag on its channel.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("delivery-tag-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("delivery-tag-doc").build().await?;
    /// producer.publish("job").send().await?;
    /// let message = queue.get(&channel, false).await?.expect("a message");
    /// assert!(message.delivery_tag() > 0);
    /// message.ack().await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn delivery_tag(&self) -> u64 {
        self.info.delivery_tag
    }

    /// True when the broker delivered this message before.
    ///
    /// A redelivered message may have been partly handled already; an
    /// idempotent handler does not care, others may check first.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("redelivered-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("redelivered-doc").build().await?;
    /// producer.publish("job").send().await?;
    /// let first = queue.get(&channel, false).await?.expect("a message");
    /// assert!(!first.redelivered());
    /// first.requeue().await?;
    /// let again = queue.get(&channel, false).await?.expect("the same message");
    /// assert!(again.redelivered());
    /// again.ack().await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn redelivered(&self) -> bool {
        self.info.redelivered
    }

    /// The routing key it was published with.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("message-routing-key-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("message-routing-key-doc").build().await?;
    /// producer.publish("job").send().await?;
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// // Through the default exchange, the routing key is the queue's name.
    /// assert_eq!(message.routing_key(), "message-routing-key-doc");
    /// assert_eq!(message.exchange(), "");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn routing_key(&self) -> &str {
        &self.info.routing_key
    }

    /// The exchange it was published to.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::Exchange;
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("message-exchange-doc").exchange(Exchange::fanout("message-exchange-doc"));
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().build().await?;
    /// producer.publish("x").exchange("message-exchange-doc").send().await?;
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// assert_eq!(message.exchange(), "message-exchange-doc");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn exchange(&self) -> &str {
        &self.info.exchange
    }

    /// Check the content type against the consumer's accept list.
    ///
    /// [`decode`](Message::decode) does this itself; checking first lets a
    /// handler refuse a message without trying to read it.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Accept, Connection, Queue, Serializer};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let mut consumer = conn
    ///     .consumer([Queue::new("check-accepted-doc")])
    ///     .accept(Accept::new(["msgpack"])?)
    ///     .build()
    ///     .await?;
    /// let producer = conn.producer().routing_key("check-accepted-doc").build().await?;
    /// producer.publish("x").serializer(Serializer::json()).send().await?;
    ///
    /// let message = consumer.next().await.expect("a message")?;
    /// if let Err(refused) = message.check_accepted() {
    ///     assert!(refused.is_content_disallowed());
    ///     message.reject().await?;
    /// }
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn check_accepted(&self) -> Result<()> {
        self.settings.accept.check(self.content_type())
    }

    /// Deserialize the body into `T`, after the accept list allowed its content type.
    ///
    /// The content type says how (JSON, msgpack, YAML...), so producers
    /// may use any serializer.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use std::collections::HashMap;
    /// use kelp::Serializer;
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("decode-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("decode-doc").build().await?;
    /// producer.publish(&[("apples", 3)]).serializer(Serializer::json()).send().await?;
    /// let message = queue.get(&channel, false).await?.expect("a message");
    /// let stock: Vec<(String, u32)> = message.decode()?;
    /// assert_eq!(stock, [("apples".to_string(), 3)]);
    /// // A type that does not fit is a decode error.
    /// assert!(message.decode::<HashMap<String, String>>().unwrap_err().is_decode());
    /// message.ack().await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        self.check_accepted()?;
        let body = self.body()?;
        serialization::decode(self.content_type(), self.content_encoding(), &body)
    }

    /// Deserialize the body into a dynamic [`Value`] (Kombu's `message.payload`).
    ///
    /// For tools that handle any message, such as a logger or a shovel.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("payload-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("payload-doc").build().await?;
    /// producer.publish(&serde_json::json!({"user": "ada", "age": 36})).send().await?;
    /// let message = queue.get(&channel, true).await?.expect("a message");
    /// let payload = message.payload()?;
    /// assert_eq!(payload.get("user").and_then(|v| v.as_str()), Some("ada"));
    /// assert_eq!(payload.get("age").and_then(|v| v.as_i64()), Some(36));
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn payload(&self) -> Result<Value> {
        self.check_accepted()?;
        let body = self.body()?;
        serialization::decode_value(self.content_type(), self.content_encoding(), &body)
    }

    /// Where the message stands.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::MessageState;
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("state-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("state-doc").build().await?;
    /// producer.publish("job").send().await?;
    /// let message = queue.get(&channel, false).await?.expect("a message");
    /// message.ack().await?;
    /// assert_eq!(message.state(), MessageState::Acked);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn state(&self) -> MessageState {
        MessageState::from_u8(self.state.get().load(Ordering::Acquire))
    }

    /// True once acked, rejected or requeued.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// # use kelp::{Connection, Queue};
    /// # let conn = Connection::new("memory://")?;
    /// # let channel = conn.default_channel().await?;
    /// # let queue = Queue::new("is-settled-doc");
    /// # queue.declare(&channel).await?;
    /// # let producer = conn.producer().routing_key("is-settled-doc").build().await?;
    /// producer.publish("job").send().await?;
    /// let message = queue.get(&channel, false).await?.expect("a message");
    /// assert!(!message.is_settled());
    /// message.reject().await?;
    /// assert!(message.is_settled());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_settled(&self) -> bool {
        self.state() != MessageState::Received
    }

    /// Acknowledge the message.
    ///
    /// Ack once the work is done: a message that is never acked goes back
    /// to the queue when its channel closes.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("ack-doc");
    /// queue.declare(&channel).await?;
    /// conn.producer().routing_key("ack-doc").build().await?.publish("job").send().await?;
    ///
    /// let message = queue.get(&channel, false).await?.expect("a message");
    /// message.ack().await?;
    /// // Settling twice is an error, and nothing reaches the broker.
    /// assert!(message.ack().await.unwrap_err().is_message_state());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn ack(&self) -> Result<()> {
        self.settle(MessageState::Acked, |ch, tag| async move { ch.ack(tag, false).await })
            .await
    }

    /// Acknowledge this message and every earlier unacknowledged one on its channel.
    ///
    /// One ack for a batch saves round trips. Only this handle's state
    /// changes; the earlier messages are acked on the broker.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// let queue = Queue::new("ack-multiple-doc");
    /// queue.declare(&channel).await?;
    /// let producer = conn.producer().routing_key("ack-multiple-doc").build().await?;
    /// for n in 0..3 {
    ///     producer.publish(&n).send().await?;
    /// }
    ///
    /// let mut batch = Vec::new();
    /// while let Some(message) = queue.get(&channel, false).await? {
    ///     batch.push(message);
    /// }
    /// batch.last().expect("three messages").ack_multiple().await?;
    ///
    /// // Closing the channel would give back unacked messages: there are none.
    /// channel.close().await?;
    /// assert_eq!(queue.declare(&channel).await?.message_count, 0);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn ack_multiple(&self) -> Result<()> {
        self.settle(MessageState::Acked, |ch, tag| async move { ch.ack(tag, true).await })
            .await
    }

    /// Reject this message and every earlier unsettled one on its channel
    /// (AMQP `basic.nack` with `multiple`); with `requeue` they are delivered
    /// again, otherwise dropped or dead-lettered. Only this message's state
    /// changes: the earlier ones are settled on the broker, not in their
    /// handles, as with [`ack_multiple`](Message::ack_multiple).
    ///
    /// # Examples
    ///
    /// A batch that failed as a whole goes back to the queue in one call:
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("reject-multiple-doc");
    /// queue.declare(&channel).await?;
    /// let producer = conn.producer().routing_key("reject-multiple-doc").build().await?;
    /// for n in 0..3 {
    ///     producer.publish(&n).send().await?;
    /// }
    ///
    /// let mut batch = Vec::new();
    /// while let Some(message) = queue.get(&channel, false).await? {
    ///     batch.push(message);
    /// }
    /// batch[2].reject_multiple(true).await?;
    /// assert_eq!(queue.declare(&channel).await?.message_count, 3);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn reject_multiple(&self, requeue: bool) -> Result<()> {
        let to = if requeue { MessageState::Requeued } else { MessageState::Rejected };
        self.settle(to, |ch, tag| async move { ch.nack(tag, true, requeue).await })
            .await
    }

    /// Reject the message: the broker drops it (or dead-letters it).
    ///
    /// For messages that will never succeed (malformed, refused by
    /// validation); a temporary failure calls for
    /// [`requeue`](Message::requeue) instead.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("reject-doc");
    /// queue.declare(&channel).await?;
    /// conn.producer().routing_key("reject-doc").build().await?.publish("not an order").send().await?;
    ///
    /// let message = queue.get(&channel, false).await?.expect("a message");
    /// message.reject().await?;
    /// assert!(queue.get(&channel, false).await?.is_none()); // gone
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn reject(&self) -> Result<()> {
        self.settle(MessageState::Rejected, |ch, tag| async move { ch.reject(tag, false).await })
            .await
    }

    /// Reject the message and have it delivered again (it comes back redelivered).
    ///
    /// For temporary failures, such as a database that is briefly down.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("requeue-doc");
    /// queue.declare(&channel).await?;
    /// conn.producer().routing_key("requeue-doc").build().await?.publish("retry me").send().await?;
    ///
    /// let message = queue.get(&channel, false).await?.expect("a message");
    /// message.requeue().await?;
    /// let again = queue.get(&channel, false).await?.expect("back in the queue");
    /// assert!(again.redelivered());
    /// again.ack().await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
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
