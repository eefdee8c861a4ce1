//! The kinds of exchange: how a message's routing key or headers pick the
//! queues it goes to. Shared by the model's entities and the transports
//! that route (memory, Redis).

use std::fmt;

/// The type of an exchange.
///
/// The type decides how the routing key (or the headers) of a message
/// picks the queues it goes to.
///
/// # Examples
///
/// ```
/// use kelp::{Exchange, ExchangeKind};
///
/// assert_eq!(Exchange::topic("logs").kind, ExchangeKind::Topic);
/// // A plugin's type is carried by name.
/// let delayed = Exchange::new("later", ExchangeKind::Custom("x-delayed-message".into()));
/// assert_eq!(delayed.kind.as_str(), "x-delayed-message");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ExchangeKind {
    /// Routes on an exact routing key match.
    #[default]
    Direct,
    /// Routes on a routing key pattern (`*` one word, `#` zero or more).
    Topic,
    /// Routes to every bound queue.
    Fanout,
    /// Routes on message headers (`x-match` all / any).
    Headers,
    /// A broker-specific type, e.g. `x-delayed-message` on RabbitMQ.
    Custom(String),
}

impl ExchangeKind {
    /// The AMQP name of the type.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(kelp::ExchangeKind::Fanout.as_str(), "fanout");
    /// ```
    pub fn as_str(&self) -> &str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Headers => "headers",
            ExchangeKind::Custom(name) => name,
        }
    }

    /// The type for an AMQP type name; unknown names become [`ExchangeKind::Custom`].
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::ExchangeKind;
    ///
    /// assert_eq!(ExchangeKind::from_name("topic"), ExchangeKind::Topic);
    /// assert_eq!(
    ///     ExchangeKind::from_name("x-consistent-hash"),
    ///     ExchangeKind::Custom("x-consistent-hash".into())
    /// );
    /// ```
    pub fn from_name(name: &str) -> ExchangeKind {
        match name {
            "direct" => ExchangeKind::Direct,
            "topic" => ExchangeKind::Topic,
            "fanout" => ExchangeKind::Fanout,
            "headers" => ExchangeKind::Headers,
            other => ExchangeKind::Custom(other.to_owned()),
        }
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
