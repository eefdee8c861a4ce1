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

use crate::message::ReturnedMessage;

/// A `Result` whose error is [`kelp::Error`](Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong, broadly. Returned by [`Error::kind`].
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
    pub fn from_handler(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Handler, message.into())
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The error's message, without the kind prefix and the source.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The AMQP reply code the broker gave, when it closed a channel or the
    /// connection (e.g. 404 not found, 406 precondition failed).
    pub fn reply_code(&self) -> Option<u16> {
        self.inner.reply.as_ref().map(|r| r.code)
    }

    /// The broker's reply text that came with [`reply_code`](Error::reply_code).
    pub fn reply_text(&self) -> Option<&str> {
        self.inner.reply.as_ref().map(|r| r.text.as_str())
    }

    /// The message that came back, for an [`ErrorKind::Unroutable`] error.
    pub fn returned_message(&self) -> Option<&ReturnedMessage> {
        self.inner.returned.as_ref()
    }

    /// Take the returned message out of an [`ErrorKind::Unroutable`] error.
    pub fn into_returned_message(self) -> Option<ReturnedMessage> {
        self.inner.returned
    }

    /// How to react to this error; see [`Recovery`].
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
    pub fn is_recoverable(&self) -> bool {
        self.recovery() != Recovery::Fatal
    }

    /// True when retrying cannot help.
    pub fn is_fatal(&self) -> bool {
        self.recovery() == Recovery::Fatal
    }

    /// True for invalid configuration (URL, option, serializer name...).
    pub fn is_config(&self) -> bool {
        self.kind() == ErrorKind::Config
    }

    /// True when the connection failed or was lost.
    pub fn is_connection(&self) -> bool {
        self.kind() == ErrorKind::Connection
    }

    /// True when the broker refused the credentials.
    pub fn is_authentication(&self) -> bool {
        self.kind() == ErrorKind::Authentication
    }

    /// True when the broker closed the channel.
    pub fn is_channel(&self) -> bool {
        self.kind() == ErrorKind::Channel
    }

    /// True when an operation timed out.
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// True for a protocol violation by the peer.
    pub fn is_protocol(&self) -> bool {
        self.kind() == ErrorKind::Protocol
    }

    /// True when a body could not be decoded.
    pub fn is_decode(&self) -> bool {
        self.kind() == ErrorKind::Decode
    }

    /// True when a body could not be encoded.
    pub fn is_encode(&self) -> bool {
        self.kind() == ErrorKind::Encode
    }

    /// True when the content type is not in the accept list.
    pub fn is_content_disallowed(&self) -> bool {
        self.kind() == ErrorKind::ContentDisallowed
    }

    /// True when a limit was exceeded.
    pub fn is_limit_exceeded(&self) -> bool {
        self.kind() == ErrorKind::LimitExceeded
    }

    /// True when a message was settled twice.
    pub fn is_message_state(&self) -> bool {
        self.kind() == ErrorKind::MessageState
    }

    /// True when a published message was nacked.
    pub fn is_nacked(&self) -> bool {
        self.kind() == ErrorKind::Nacked
    }

    /// True when a mandatory message came back unroutable.
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
    pub fn is_stale(&self) -> bool {
        self.kind() == ErrorKind::Stale
    }

    /// True when the broker ended a consumer's subscription.
    pub fn is_cancelled(&self) -> bool {
        self.kind() == ErrorKind::Cancelled
    }

    /// True when the broker reported that an entity does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.reply_code() == Some(reply_code::NOT_FOUND)
    }

    /// True when the broker reported a failed precondition (406), such as a
    /// redeclare with different arguments.
    pub fn is_precondition_failed(&self) -> bool {
        self.reply_code() == Some(reply_code::PRECONDITION_FAILED)
    }

    /// True when the broker refused access (403).
    pub fn is_access_refused(&self) -> bool {
        self.reply_code() == Some(reply_code::ACCESS_REFUSED)
    }

    /// True when the entity is locked by another connection (405).
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
