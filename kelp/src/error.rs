//! The one error type of the library.
//!
//! [`Error`] is opaque: ask it what happened with [`Error::kind`] and the
//! predicates (`is_connection()`, `is_timeout()`, ...), and how to react with
//! [`Error::recovery`]. The retry machinery of kelp takes its decisions from
//! this classification only, never from message text.
//!
//! Error messages never contain a password: everything that formats a broker
//! URL into an error goes through the masking of [`crate::BrokerUrl`].

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use crate::content::message::ReturnedMessage;

/// A `Result` whose error is [`kelp::Error`](Error).
///
/// # Examples
///
/// ```
/// use kelp::{Connection, Result};
///
/// fn connect_from_env() -> Result<Connection> {
///     let url = std::env::var("BROKER_URL").unwrap_or_else(|_| "memory://".into());
///     Connection::new(&url)
/// }
/// # connect_from_env()?;
/// # Ok::<(), kelp::Error>(())
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong, broadly. Returned by [`Error::kind`].
///
/// # Examples
///
/// ```
/// use kelp::{Accept, ErrorKind};
///
/// let error = Accept::new(["json"])?.check(Some("application/x-yaml")).unwrap_err();
/// match error.kind() {
///     ErrorKind::ContentDisallowed => eprintln!("refused: {error}"),
///     ErrorKind::Decode => eprintln!("malformed: {error}"),
///     other => eprintln!("unexpected {other:?}: {error}"),
/// }
/// assert_eq!(error.kind(), ErrorKind::ContentDisallowed);
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Invalid configuration: a malformed URL, an unknown scheme, serializer
    /// or compression name, an option out of range.
    Config,
    /// The connection to the broker failed or was lost (refused, reset, closed
    /// by the broker, missed heartbeats).
    Connection,
    /// The broker refused the credentials.
    Authentication,
    /// The broker closed the channel (see [`Error::reply_code`]); the
    /// connection itself is still usable.
    Channel,
    /// An operation did not complete in time.
    Timeout,
    /// The broker sent something the protocol does not allow.
    Protocol,
    /// A body could not be serialized or compressed.
    Encode,
    /// A body could not be decompressed or deserialized.
    Decode,
    /// The message's content type is not in the consumer's accept list.
    ContentDisallowed,
    /// A limit was exceeded: pool size, decompression limit, frame size.
    LimitExceeded,
    /// A message was acknowledged, rejected or requeued twice.
    MessageState,
    /// The broker negatively acknowledged a published message.
    Nacked,
    /// A mandatory message could not be routed and came back.
    Unroutable,
    /// The connection, channel or consumer was closed by the application.
    Closed,
    /// A queue was empty when a message was asked for.
    Empty,
    /// The transport does not support this operation.
    Unsupported,
    /// The broker ended a consumer's subscription (queue deleted, channel
    /// closed, connection lost).
    Cancelled,
    /// A message received on a connection that has since been replaced
    /// cannot be settled: the broker redelivers it.
    Stale,
    /// An application handler failed (see [`Error::from_handler`]).
    Handler,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Config => "configuration error",
            ErrorKind::Connection => "connection error",
            ErrorKind::Authentication => "authentication failed",
            ErrorKind::Channel => "channel error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Protocol => "protocol error",
            ErrorKind::Encode => "encode error",
            ErrorKind::Decode => "decode error",
            ErrorKind::ContentDisallowed => "content disallowed",
            ErrorKind::LimitExceeded => "limit exceeded",
            ErrorKind::MessageState => "message state error",
            ErrorKind::Nacked => "message nacked by the broker",
            ErrorKind::Unroutable => "message returned unroutable",
            ErrorKind::Closed => "closed",
            ErrorKind::Empty => "empty",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Cancelled => "consumer cancelled",
            ErrorKind::Stale => "stale delivery",
            ErrorKind::Handler => "handler failed",
        }
    }
}

/// How a caller (or kelp's own retry loop) should react to an error,
/// in the manner of redis-rs's `RetryMethod`.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Queue, Recovery};
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// let error = Queue::new("recovery-doc").passive(true).declare(&channel).await.unwrap_err();
/// match error.recovery() {
///     Recovery::Fatal => eprintln!("giving up: {error}"), // a missing queue stays missing
///     Recovery::Retry | Recovery::ReopenChannel | Recovery::Reconnect => { /* try again */ }
///     _ => {}
/// }
/// assert_eq!(error.recovery(), Recovery::Fatal);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Recovery {
    /// Give up: retrying cannot help (bad credentials, missing entity,
    /// precondition failed, bad input).
    Fatal,
    /// Retry the operation as it is, possibly after a pause.
    Retry,
    /// Open a new channel on the same connection, then retry.
    ReopenChannel,
    /// Reconnect (possibly to another broker), then retry.
    Reconnect,
}

/// AMQP reply codes that kelp gives meaning to.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Queue, reply_code};
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// let error = Queue::new("reply-code-doc").passive(true).declare(&channel).await.unwrap_err();
/// assert_eq!(error.reply_code(), Some(reply_code::NOT_FOUND));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub mod reply_code {
    /// The broker is closing the connection for an operator reason.
    pub const CONNECTION_FORCED: u16 = 320;
    /// The content is too large for the broker.
    pub const CONTENT_TOO_LARGE: u16 = 311;
    /// An immediate message had no consumer (also used for unroutable returns: 312).
    pub const NO_ROUTE: u16 = 312;
    /// An immediate publish found no consumers.
    pub const NO_CONSUMERS: u16 = 313;
    /// The virtual host path or credentials are invalid.
    pub const INVALID_PATH: u16 = 402;
    /// Access to the resource is refused.
    pub const ACCESS_REFUSED: u16 = 403;
    /// The entity does not exist.
    pub const NOT_FOUND: u16 = 404;
    /// The entity is locked by another connection (exclusive queue).
    pub const RESOURCE_LOCKED: u16 = 405;
    /// The entity exists with different arguments, or a precondition failed.
    pub const PRECONDITION_FAILED: u16 = 406;
    /// A malformed frame.
    pub const FRAME_ERROR: u16 = 501;
    /// A malformed method or field.
    pub const SYNTAX_ERROR: u16 = 502;
    /// A method that is not valid in the current state.
    pub const COMMAND_INVALID: u16 = 503;
    /// Use of a channel that is not open.
    pub const CHANNEL_ERROR: u16 = 504;
    /// A frame arrived that was not expected.
    pub const UNEXPECTED_FRAME: u16 = 505;
    /// The broker ran out of a resource.
    pub const RESOURCE_ERROR: u16 = 506;
    /// The operation is not allowed.
    pub const NOT_ALLOWED: u16 = 530;
    /// The method is not implemented by the broker.
    pub const NOT_IMPLEMENTED: u16 = 540;
    /// The broker failed internally.
    pub const INTERNAL_ERROR: u16 = 541;
}

/// The broker's own words when it closed a channel or connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    pub(crate) text: String,
}

/// The error type of kelp.
///
/// Opaque on purpose: match on [`kind`](Error::kind) or use the predicates, and
/// ask [`recovery`](Error::recovery) whether a retry can help.
///
/// # Examples
///
/// ```
/// use kelp::{BrokerUrl, ErrorKind};
///
/// let error = BrokerUrl::parse("amqp://rabbit:http//").unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::Config);
/// assert!(error.is_fatal()); // retrying cannot fix a typo
/// assert!(error.to_string().starts_with("configuration error: "));
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    reply: Option<Reply>,
    source: Option<BoxError>,
    returned: Option<ReturnedMessage>,
}

impl Error {
    /// A new error of `kind` with a human-readable message.
    ///
    /// The message must never contain a password; format URLs with
    /// [`crate::BrokerUrl`]'s `Display`, which masks it.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                reply: None,
                source: None,
                returned: None,
            }),
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Error {
        self.inner.source = Some(source.into());
        self
    }

    pub(crate) fn with_reply(mut self, code: u16, text: impl Into<String>) -> Error {
        self.inner.reply = Some(Reply {
            code,
            text: text.into(),
        });
        self
    }

    /// Carry over `other`'s reply code and text.
    pub(crate) fn with_reply_from(mut self, other: &Error) -> Error {
        self.inner.reply = other.inner.reply.clone();
        self
    }

    pub(crate) fn with_returned(mut self, returned: ReturnedMessage) -> Error {
        self.inner.returned = Some(returned);
        self
    }

    pub(crate) fn config(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorKind::Config, message)
    }

    pub(crate) fn connection(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorKind::Connection, message)
    }

    pub(crate) fn closed(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorKind::Closed, message)
    }

    pub(crate) fn decode(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorKind::Decode, message)
    }

    pub(crate) fn encode(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorKind::Encode, message)
    }

    pub(crate) fn timeout(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorKind::Timeout, message)
    }

    pub(crate) fn unsupported(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// `what` needs a cargo feature this build of kelp leaves out.
    #[allow(dead_code)] // unused when every feature is compiled in
    pub(crate) fn feature_missing(what: impl std::fmt::Display, feature: &str) -> Error {
        Error::unsupported(format!(
            "{what} needs kelp's `{feature}` feature, which this build leaves out \
             (add \"{feature}\" to kelp's features in Cargo.toml)"
        ))
    }

    /// A channel closed by the broker with an AMQP reply code.
    pub(crate) fn channel_closed(code: u16, text: impl Into<String>) -> Error {
        let text = text.into();
        Error::new(ErrorKind::Channel, format!("channel closed by the broker: {code} {text}"))
            .with_reply(code, text)
    }

    /// A copy for each of several waiters failed by the same cause (the
    /// source error becomes part of the message).
    pub(crate) fn clone_for_waiters(&self) -> Error {
        let message = match &self.inner.source {
            Some(source) => format!("{}: {source}", self.inner.message),
            None => self.inner.message.to_string(),
        };
        Error {
            inner: Box::new(Inner {
                kind: self.inner.kind,
                message: message.into(),
                reply: self.inner.reply.clone(),
                source: None,
                returned: None,
            }),
        }
    }

    /// An error of the application's own, to return from a handler (the
    /// worker then requeues the message).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Error, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let mut consumer = conn.consumer([Queue::new("from-handler-doc")]).build().await?;
    /// conn.producer().routing_key("from-handler-doc").build().await?.publish(&-5).send().await?;
    ///
    /// let result = consumer
    ///     .run(|message| async move {
    ///         let amount: i64 = message.decode()?;
    ///         if amount < 0 {
    ///             message.reject().await?;
    ///             return Err(Error::from_handler(format!("negative amount {amount}")));
    ///         }
    ///         message.ack().await
    ///     })
    ///     .await;
    /// let error = result.unwrap_err();
    /// assert_eq!(error.message(), "negative amount -5");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn from_handler(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Handler, message.into())
    }

    /// What went wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Compression, ErrorKind};
    ///
    /// let error = Compression::from_name("rar").unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Config);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The error's message, without the kind prefix and the source.
    ///
    /// # Examples
    ///
    /// ```
    /// let error = kelp::Error::from_handler("invoice 7 has no customer");
    /// assert_eq!(error.message(), "invoice 7 has no customer");
    /// assert_eq!(error.to_string(), "handler failed: invoice 7 has no customer");
    /// ```
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The AMQP reply code the broker gave, when it closed a channel or the
    /// connection (e.g. 404 not found, 406 precondition failed).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// Exchange::direct("reply-code-fn-doc").declare(&channel).await?;
    /// // Same name, another type: the broker refuses.
    /// let error = Exchange::topic("reply-code-fn-doc").declare(&channel).await.unwrap_err();
    /// assert_eq!(error.reply_code(), Some(406));
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn reply_code(&self) -> Option<u16> {
        self.inner.reply.as_ref().map(|r| r.code)
    }

    /// The broker's reply text that came with [`reply_code`](Error::reply_code).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let error = Queue::new("reply-text-doc").passive(true).declare(&channel).await.unwrap_err();
    /// assert!(error.reply_text().is_some_and(|text| text.starts_with("NOT_FOUND")));
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn reply_text(&self) -> Option<&str> {
        self.inner.reply.as_ref().map(|r| r.text.as_str())
    }

    /// The message that came back, for an [`ErrorKind::Unroutable`] error.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let producer = conn.producer().build().await?;
    /// let error = producer.publish("hi").routing_key("returned-fn-doc-nowhere").mandatory(true).send().await.unwrap_err();
    /// let returned = error.returned_message().expect("unroutable errors carry the message");
    /// assert_eq!(returned.routing_key, "returned-fn-doc-nowhere");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn returned_message(&self) -> Option<&ReturnedMessage> {
        self.inner.returned.as_ref()
    }

    /// Take the returned message out of an [`ErrorKind::Unroutable`] error.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let producer = conn.producer().build().await?;
    /// let error = producer.publish("keep me").routing_key("into-returned-doc-nowhere").mandatory(true).send().await.unwrap_err();
    /// // Park the body somewhere safe instead of losing it.
    /// let parked = error.into_returned_message().map(|m| m.body);
    /// assert_eq!(parked.as_deref(), Some(&br#""keep me""#[..]));
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn into_returned_message(self) -> Option<ReturnedMessage> {
        self.inner.returned
    }

    /// How to react to this error; see [`Recovery`].
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{BrokerUrl, Recovery};
    ///
    /// let error = BrokerUrl::parse("amqp://rabbit:port//").unwrap_err();
    /// assert_eq!(error.recovery(), Recovery::Fatal);
    /// ```
    pub fn recovery(&self) -> Recovery {
        use reply_code::*;
        match self.inner.kind {
            ErrorKind::Connection => match self.reply_code() {
                Some(ACCESS_REFUSED | INVALID_PATH | NOT_ALLOWED) => Recovery::Fatal,
                _ => Recovery::Reconnect,
            },
            ErrorKind::Protocol => Recovery::Reconnect,
            ErrorKind::Channel => match self.reply_code() {
                Some(ACCESS_REFUSED | NOT_FOUND | PRECONDITION_FAILED | NOT_IMPLEMENTED) => {
                    Recovery::Fatal
                }
                _ => Recovery::ReopenChannel,
            },
            ErrorKind::Timeout | ErrorKind::Nacked => Recovery::Retry,
            ErrorKind::Cancelled => Recovery::ReopenChannel,
            ErrorKind::Config
            | ErrorKind::Authentication
            | ErrorKind::Encode
            | ErrorKind::Decode
            | ErrorKind::ContentDisallowed
            | ErrorKind::LimitExceeded
            | ErrorKind::MessageState
            | ErrorKind::Unroutable
            | ErrorKind::Closed
            | ErrorKind::Empty
            | ErrorKind::Stale
            | ErrorKind::Handler
            | ErrorKind::Unsupported => Recovery::Fatal,
        }
    }

    /// True when a retry can help (possibly after reconnecting).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// // An exclusive queue locked by another connection may be free later.
    /// let owner = Connection::new("memory://")?;
    /// Queue::new("recoverable-doc").exclusive(true).declare(&owner.default_channel().await?).await?;
    /// let other = Connection::new("memory://")?;
    /// let error = Queue::new("recoverable-doc").exclusive(true)
    ///     .declare(&other.default_channel().await?).await.unwrap_err();
    /// assert!(error.is_resource_locked() && error.is_recoverable());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_recoverable(&self) -> bool {
        self.recovery() != Recovery::Fatal
    }

    /// True when retrying cannot help.
    ///
    /// # Examples
    ///
    /// ```
    /// let error = kelp::Serializer::from_name("protobuf").unwrap_err();
    /// assert!(error.is_fatal());
    /// ```
    pub fn is_fatal(&self) -> bool {
        self.recovery() == Recovery::Fatal
    }

    /// True for invalid configuration (URL, option, serializer name...).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(kelp::Connection::new("amqp//rabbit").unwrap_err().is_config());
    /// ```
    pub fn is_config(&self) -> bool {
        self.kind() == ErrorKind::Config
    }

    /// True when the connection failed or was lost.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> kelp::Result<()> {
    /// // Not run: the outcome depends on the network.
    /// let conn = kelp::Connection::new("amqp://127.0.0.1:1//")?;
    /// let error = conn.connect().await.unwrap_err();
    /// assert!(error.is_connection() && error.is_recoverable());
    /// # Ok(()) }
    /// ```
    pub fn is_connection(&self) -> bool {
        self.kind() == ErrorKind::Connection
    }

    /// True when the broker refused the credentials.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> kelp::Result<()> {
    /// // Not run: needs RabbitMQ on localhost.
    /// let conn = kelp::Connection::new("amqp://guest:wrong@localhost//")?;
    /// let error = conn.connect().await.unwrap_err();
    /// assert!(error.is_authentication() && error.is_fatal());
    /// # Ok(()) }
    /// ```
    pub fn is_authentication(&self) -> bool {
        self.kind() == ErrorKind::Authentication
    }

    /// True when the broker closed the channel.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let error = Queue::new("is-channel-doc").passive(true).declare(&channel).await.unwrap_err();
    /// assert!(error.is_channel());
    /// assert!(conn.is_connected()); // only the channel was closed
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_channel(&self) -> bool {
        self.kind() == ErrorKind::Channel
    }

    /// True when an operation timed out.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> kelp::Result<()> {
    /// // Not run: needs an address that never answers.
    /// use std::time::Duration;
    /// let conn = kelp::Connection::builder("amqp://10.255.255.1//")
    ///     .connect_timeout(Duration::from_secs(1))
    ///     .build()?;
    /// assert!(conn.connect().await.unwrap_err().is_timeout());
    /// # Ok(()) }
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// True for a protocol violation by the peer.
    pub fn is_protocol(&self) -> bool {
        self.kind() == ErrorKind::Protocol
    }

    /// True when a body could not be decoded.
    ///
    /// # Examples
    ///
    /// ```
    /// let error = kelp::serialization::decode::<u32>(Some("application/json"), None, b"{oops").unwrap_err();
    /// assert!(error.is_decode());
    /// ```
    pub fn is_decode(&self) -> bool {
        self.kind() == ErrorKind::Decode
    }

    /// True when a body could not be encoded.
    ///
    /// # Examples
    ///
    /// ```
    /// // The text serializer only writes strings.
    /// assert!(kelp::Serializer::text().encode(&[1, 2]).unwrap_err().is_encode());
    /// ```
    pub fn is_encode(&self) -> bool {
        self.kind() == ErrorKind::Encode
    }

    /// True when the content type is not in the accept list.
    ///
    /// # Examples
    ///
    /// ```
    /// let accept = kelp::Accept::new(["json"])?;
    /// assert!(accept.check(Some("application/x-msgpack")).unwrap_err().is_content_disallowed());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn is_content_disallowed(&self) -> bool {
        self.kind() == ErrorKind::ContentDisallowed
    }

    /// True when a limit was exceeded.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Compression;
    ///
    /// let packed = Compression::Zlib.compress(&[0; 10_000])?;
    /// assert!(Compression::Zlib.decompress(&packed, 1_000).unwrap_err().is_limit_exceeded());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn is_limit_exceeded(&self) -> bool {
        self.kind() == ErrorKind::LimitExceeded
    }

    /// True when a message was settled twice.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("message-state-error-doc");
    /// queue.declare(&channel).await?;
    /// conn.producer().routing_key("message-state-error-doc").build().await?.publish("x").send().await?;
    /// let message = queue.get(&channel, false).await?.expect("a message");
    /// message.ack().await?;
    /// assert!(message.reject().await.unwrap_err().is_message_state());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_message_state(&self) -> bool {
        self.kind() == ErrorKind::MessageState
    }

    /// True when a published message was nacked.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let full = Queue::new("nacked-doc").max_length(1).argument("x-overflow", "reject-publish");
    /// full.declare(&channel).await?;
    /// let producer = conn.producer().routing_key("nacked-doc").build().await?;
    /// producer.publish("fits").send().await?;
    /// assert!(producer.publish("does not").send().await.unwrap_err().is_nacked());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_nacked(&self) -> bool {
        self.kind() == ErrorKind::Nacked
    }

    /// True when a mandatory message came back unroutable.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// let conn = kelp::Connection::new("memory://")?;
    /// let producer = conn.producer().build().await?;
    /// let sent = producer.publish("x").routing_key("unroutable-doc-nowhere").mandatory(true).send().await;
    /// assert!(sent.unwrap_err().is_unroutable());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_unroutable(&self) -> bool {
        self.kind() == ErrorKind::Unroutable
    }

    /// True when the object was closed by the application.
    pub fn is_closed(&self) -> bool {
        self.kind() == ErrorKind::Closed
    }

    /// True when a queue had no message.
    pub fn is_empty(&self) -> bool {
        self.kind() == ErrorKind::Empty
    }

    /// True for a message of a lost connection, which the broker redelivers.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.channel().await?;
    /// let queue = Queue::new("stale-doc");
    /// queue.declare(&channel).await?;
    /// conn.producer().routing_key("stale-doc").build().await?.publish("x").send().await?;
    /// let message = queue.get(&channel, false).await?.expect("a message");
    /// channel.close().await?; // the broker takes the message back
    /// assert!(message.ack().await.unwrap_err().is_stale());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_stale(&self) -> bool {
        self.kind() == ErrorKind::Stale
    }

    /// True when the broker ended a consumer's subscription.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let queue = Queue::new("cancelled-doc");
    /// let mut consumer = conn.consumer([queue.clone()]).build().await?;
    /// queue.delete(&conn.channel().await?, false, false).await?;
    /// let ended = consumer.next().await.expect("news of the cancellation");
    /// assert!(ended.unwrap_err().is_cancelled());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.kind() == ErrorKind::Cancelled
    }

    /// True when the broker reported that an entity does not exist (404).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let missing = Queue::new("not-found-doc").get(&channel, false).await;
    /// assert!(missing.unwrap_err().is_not_found());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_not_found(&self) -> bool {
        self.reply_code() == Some(reply_code::NOT_FOUND)
    }

    /// True when the broker reported a failed precondition (406), such as a
    /// redeclare with different arguments.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// Queue::new("precondition-doc").declare(&channel).await?;
    /// let redeclared = Queue::new("precondition-doc").max_length(10).declare(&channel).await;
    /// assert!(redeclared.unwrap_err().is_precondition_failed());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_precondition_failed(&self) -> bool {
        self.reply_code() == Some(reply_code::PRECONDITION_FAILED)
    }

    /// True when the broker refused access (403).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// // Names starting with "amq." are reserved for the broker.
    /// let reserved = Queue::new("amq.mine").declare(&channel).await;
    /// assert!(reserved.unwrap_err().is_access_refused());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_access_refused(&self) -> bool {
        self.reply_code() == Some(reply_code::ACCESS_REFUSED)
    }

    /// True when the entity is locked by another connection (405).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let owner = Connection::new("memory://")?;
    /// Queue::new("locked-doc").exclusive(true).declare(&owner.default_channel().await?).await?;
    /// let other = Connection::new("memory://")?;
    /// let used = Queue::new("locked-doc").get(&other.default_channel().await?, false).await;
    /// assert!(used.unwrap_err().is_resource_locked());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn is_resource_locked(&self) -> bool {
        self.reply_code() == Some(reply_code::RESOURCE_LOCKED)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("kelp::Error");
        d.field("kind", &self.inner.kind);
        d.field("message", &self.inner.message);
        if let Some(reply) = &self.inner.reply {
            d.field("reply_code", &reply.code);
            d.field("reply_text", &reply.text);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.kind.describe())?;
        if !self.inner.message.is_empty() {
            write!(f, ": {}", self.inner.message)?;
        }
        if let Some(source) = &self.inner.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source.as_ref().map(|s| &**s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_errors_are_classified_by_reply_code() {
        assert_eq!(Error::channel_closed(404, "NOT_FOUND").recovery(), Recovery::Fatal);
        assert_eq!(Error::channel_closed(406, "PRECONDITION").recovery(), Recovery::Fatal);
        assert_eq!(Error::channel_closed(403, "ACCESS_REFUSED").recovery(), Recovery::Fatal);
        assert_eq!(
            Error::channel_closed(405, "RESOURCE_LOCKED").recovery(),
            Recovery::ReopenChannel
        );
        assert_eq!(
            Error::channel_closed(311, "CONTENT_TOO_LARGE").recovery(),
            Recovery::ReopenChannel
        );
        assert!(Error::channel_closed(404, "x").is_not_found());
        assert!(Error::channel_closed(406, "x").is_precondition_failed());
    }

    #[test]
    fn connection_errors_reconnect_unless_refused() {
        assert_eq!(Error::connection("reset").recovery(), Recovery::Reconnect);
        assert!(Error::connection("reset").is_recoverable());
        let refused = Error::connection("vhost").with_reply(403, "ACCESS_REFUSED");
        assert!(refused.is_fatal());
        assert!(Error::new(ErrorKind::Authentication, "bad").is_fatal());
        assert!(Error::new(ErrorKind::ContentDisallowed, "yaml").is_fatal());
        assert!(Error::timeout("x").is_recoverable());
    }

    #[test]
    fn display_includes_kind_message_and_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::connection("cannot connect to amqp://guest:**@localhost:5672//")
            .with_source(io);
        assert_eq!(
            e.to_string(),
            "connection error: cannot connect to amqp://guest:**@localhost:5672//: refused"
        );
        assert!(e.source().is_some());
    }
}
