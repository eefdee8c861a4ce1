//! Exchanges, queues and bindings (Kombu's `kombu.entity`).
//!
//! Entities are plain descriptions; operations take the [`Channel`] to run
//! on, e.g. `queue.declare(&channel).await?`.

use std::fmt;
use std::time::Duration;

use crate::channel::Channel;
use crate::message::Message;
use crate::{FieldTable, Result, Value};

/// The type of an exchange.
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

/// Whether the broker keeps a message on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DeliveryMode {
    /// Kept in memory only (AMQP delivery mode 1).
    Transient,
    /// Written to disk by durable queues (AMQP delivery mode 2): kelp's default.
    #[default]
    Persistent,
}

impl DeliveryMode {
    /// The AMQP value: 1 or 2.
    pub fn as_u8(self) -> u8 {
        match self {
            DeliveryMode::Transient => 1,
            DeliveryMode::Persistent => 2,
        }
    }
}

/// An exchange: where messages are published.
///
/// Durable by default, as in Kombu. The default exchange (`""`) and the
/// built-in `amq.*` exchanges are never declared.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Exchange {
    /// Name; `""` is the default exchange.
    pub name: String,
    /// Type.
    pub kind: ExchangeKind,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding is removed.
    pub auto_delete: bool,
    /// Only check that it exists when declaring.
    pub passive: bool,
    /// Cannot be published to directly, only via exchange bindings.
    pub internal: bool,
    /// The default delivery mode of messages published to it.
    pub delivery_mode: Option<DeliveryMode>,
    /// Extra arguments (e.g. `alternate-exchange`).
    pub arguments: FieldTable,
    /// Never declare it (it is managed elsewhere).
    pub no_declare: bool,
}

impl Default for Exchange {
    fn default() -> Exchange {
        Exchange::new("", ExchangeKind::Direct)
    }
}

impl Exchange {
    /// A durable exchange of the given type.
    pub fn new(name: impl Into<String>, kind: ExchangeKind) -> Exchange {
        Exchange {
            name: name.into(),
            kind,
            durable: true,
            auto_delete: false,
            passive: false,
            internal: false,
            delivery_mode: None,
            arguments: FieldTable::new(),
            no_declare: false,
        }
    }

    /// A direct exchange.
    pub fn direct(name: impl Into<String>) -> Exchange {
        Exchange::new(name, ExchangeKind::Direct)
    }

    /// A topic exchange.
    pub fn topic(name: impl Into<String>) -> Exchange {
        Exchange::new(name, ExchangeKind::Topic)
    }

    /// A fanout exchange.
    pub fn fanout(name: impl Into<String>) -> Exchange {
        Exchange::new(name, ExchangeKind::Fanout)
    }

    /// A headers exchange.
    pub fn headers(name: impl Into<String>) -> Exchange {
        Exchange::new(name, ExchangeKind::Headers)
    }

    /// The default exchange (`""`), which routes by queue name.
    pub fn default_exchange() -> Exchange {
        Exchange::default()
    }

    /// Set durability.
    pub fn durable(mut self, durable: bool) -> Exchange {
        self.durable = durable;
        self
    }

    /// Set auto-delete.
    pub fn auto_delete(mut self, auto_delete: bool) -> Exchange {
        self.auto_delete = auto_delete;
        self
    }

    /// Declare passively (only check it exists).
    pub fn passive(mut self, passive: bool) -> Exchange {
        self.passive = passive;
        self
    }

    /// Make it internal.
    pub fn internal(mut self, internal: bool) -> Exchange {
        self.internal = internal;
        self
    }

    /// The default delivery mode for messages published to it.
    pub fn delivery_mode(mut self, mode: DeliveryMode) -> Exchange {
        self.delivery_mode = Some(mode);
        self
    }

    /// Add a declaration argument.
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Exchange {
        self.arguments.insert(key.into(), value.into());
        self
    }

    /// Never declare this exchange.
    pub fn no_declare(mut self, no_declare: bool) -> Exchange {
        self.no_declare = no_declare;
        self
    }

    /// True for the default exchange and the built-in `amq.*` ones, which
    /// cannot be declared.
    pub fn is_builtin(&self) -> bool {
        self.name.is_empty() || self.name.starts_with("amq.")
    }

    /// True when [`declare`](Exchange::declare) would talk to the broker.
    pub fn needs_declaring(&self) -> bool {
        !self.no_declare && !self.is_builtin()
    }

    /// Declare the exchange (a no-op for built-in and `no_declare` exchanges).
    pub async fn declare(&self, channel: &Channel) -> Result<()> {
        if !self.needs_declaring() {
            return Ok(());
        }
        channel.exchange_declare(self).await
    }

    /// Delete the exchange; with `if_unused`, only when it has no bindings.
    pub async fn delete(&self, channel: &Channel, if_unused: bool) -> Result<()> {
        channel.exchange_delete(&self.name, if_unused).await
    }

    /// Bind this exchange to a source exchange (exchange-to-exchange binding).
    pub async fn bind_to(
        &self,
        channel: &Channel,
        source: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        channel.exchange_bind(&self.name, source, routing_key, arguments).await
    }

    /// Remove an exchange-to-exchange binding.
    pub async fn unbind_from(
        &self,
        channel: &Channel,
        source: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        channel.exchange_unbind(&self.name, source, routing_key, arguments).await
    }

    /// Key of the connection's "maybe declare" cache (Kombu caches by name);
    /// `None` when the declaration must not be cached.
    pub(crate) fn cache_key(&self) -> Option<String> {
        (!self.auto_delete && self.needs_declaring()).then(|| format!("E|{}", self.name))
    }
}

/// A binding of a queue to an exchange (Kombu's `binding`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Binding {
    /// The exchange to bind to.
    pub exchange: Exchange,
    /// The routing key or pattern.
    pub routing_key: String,
    /// Binding arguments (headers exchanges match on these).
    pub arguments: FieldTable,
    /// Arguments used when unbinding.
    pub unbind_arguments: FieldTable,
}

impl Binding {
    /// A binding to `exchange` with `routing_key`.
    pub fn new(exchange: Exchange, routing_key: impl Into<String>) -> Binding {
        Binding {
            exchange,
            routing_key: routing_key.into(),
            arguments: FieldTable::new(),
            unbind_arguments: FieldTable::new(),
        }
    }

    /// Add a binding argument.
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Binding {
        self.arguments.insert(key.into(), value.into());
        self
    }

    /// Add an argument used when unbinding.
    pub fn unbind_argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Binding {
        self.unbind_arguments.insert(key.into(), value.into());
        self
    }
}

/// The broker's answer to a queue declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeclaredQueue {
    /// The queue's name (generated by the broker for server-named queues).
    pub name: String,
    /// Messages ready in the queue.
    pub message_count: u32,
    /// Consumers on the queue.
    pub consumer_count: u32,
}

/// A queue, and how it is bound.
///
/// Durable by default, as in Kombu. An empty name asks the broker to name
/// the queue; the name is returned by [`declare`](Queue::declare).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Queue {
    /// Name; `""` for a server-named queue.
    pub name: String,
    /// The exchange to bind to with `routing_key` (ignored when `bindings` is non-empty).
    pub exchange: Option<Exchange>,
    /// The routing key of the binding to `exchange`.
    pub routing_key: String,
    /// Several bindings, replacing `exchange`/`routing_key`.
    pub bindings: Vec<Binding>,
    /// Survives a broker restart.
    pub durable: bool,
    /// Used by one connection only, deleted when it closes (implies auto_delete).
    pub exclusive: bool,
    /// Deleted when its last consumer is cancelled.
    pub auto_delete: bool,
    /// Only check that it exists when declaring.
    pub passive: bool,
    /// Never declare it.
    pub no_declare: bool,
    /// Declaration arguments (`x-message-ttl`, `x-max-length`, `x-queue-type`...).
    pub arguments: FieldTable,
    /// Arguments for the binding to `exchange`.
    pub binding_arguments: FieldTable,
    /// Arguments for consuming (e.g. `x-priority`).
    pub consumer_arguments: FieldTable,
}

impl Queue {
    /// A durable queue named `name`, bound to nothing yet.
    pub fn new(name: impl Into<String>) -> Queue {
        Queue {
            name: name.into(),
            exchange: None,
            routing_key: String::new(),
            bindings: Vec::new(),
            durable: true,
            exclusive: false,
            auto_delete: false,
            passive: false,
            no_declare: false,
            arguments: FieldTable::new(),
            binding_arguments: FieldTable::new(),
            consumer_arguments: FieldTable::new(),
        }
    }

    /// A queue the broker names (exclusive and auto-deleted, as such queues usually are).
    pub fn server_named() -> Queue {
        Queue::new("").exclusive(true)
    }

    /// Bind to `exchange` with the queue's routing key.
    pub fn exchange(mut self, exchange: Exchange) -> Queue {
        self.exchange = Some(exchange);
        self
    }

    /// The routing key for the binding to `exchange`.
    pub fn routing_key(mut self, routing_key: impl Into<String>) -> Queue {
        self.routing_key = routing_key.into();
        self
    }

    /// Add a binding (when any binding is given, `exchange` is not bound).
    pub fn binding(mut self, binding: Binding) -> Queue {
        self.bindings.push(binding);
        self
    }

    /// Set durability.
    pub fn durable(mut self, durable: bool) -> Queue {
        self.durable = durable;
        self
    }

    /// Make the queue exclusive to this connection; implies auto-delete, as in Kombu.
    pub fn exclusive(mut self, exclusive: bool) -> Queue {
        self.exclusive = exclusive;
        if exclusive {
            self.auto_delete = true;
        }
        self
    }

    /// Set auto-delete.
    pub fn auto_delete(mut self, auto_delete: bool) -> Queue {
        self.auto_delete = auto_delete;
        self
    }

    /// Declare passively (only check that it exists).
    pub fn passive(mut self, passive: bool) -> Queue {
        self.passive = passive;
        self
    }

    /// Never declare this queue.
    pub fn no_declare(mut self, no_declare: bool) -> Queue {
        self.no_declare = no_declare;
        self
    }

    /// Add a declaration argument.
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Queue {
        self.arguments.insert(key.into(), value.into());
        self
    }

    /// Add an argument to the binding with `exchange`.
    pub fn binding_argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Queue {
        self.binding_arguments.insert(key.into(), value.into());
        self
    }

    /// Add a consumer argument.
    pub fn consumer_argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Queue {
        self.consumer_arguments.insert(key.into(), value.into());
        self
    }

    /// Messages expire after `ttl` in the queue (`x-message-ttl`, milliseconds).
    pub fn message_ttl(self, ttl: Duration) -> Queue {
        self.argument("x-message-ttl", duration_ms(ttl))
    }

    /// The queue is deleted after being unused for `after` (`x-expires`, milliseconds).
    pub fn expires(self, after: Duration) -> Queue {
        self.argument("x-expires", duration_ms(after))
    }

    /// At most `n` ready messages (`x-max-length`).
    pub fn max_length(self, n: u32) -> Queue {
        self.argument("x-max-length", n)
    }

    /// At most `n` bytes of ready message bodies (`x-max-length-bytes`).
    pub fn max_length_bytes(self, n: u64) -> Queue {
        self.argument("x-max-length-bytes", n)
    }

    /// Support priorities 0 to `max` (`x-max-priority`).
    pub fn max_priority(self, max: u8) -> Queue {
        self.argument("x-max-priority", max)
    }

    /// Declare the queue, its exchange and its bindings; returns the queue's
    /// name (generated for server-named queues) and counts.
    pub async fn declare(&self, channel: &Channel) -> Result<DeclaredQueue> {
        if let Some(exchange) = &self.exchange {
            if self.bindings.is_empty() {
                exchange.declare(channel).await?;
            }
        }
        for binding in &self.bindings {
            binding.exchange.declare(channel).await?;
        }
        let declared = if self.no_declare {
            DeclaredQueue {
                name: self.name.clone(),
                message_count: 0,
                consumer_count: 0,
            }
        } else {
            channel.queue_declare(self, self.passive).await?
        };
        self.bind_all(channel, &declared.name).await?;
        Ok(declared)
    }

    /// Declare only the queue itself, no exchange, no binding.
    pub async fn queue_declare(&self, channel: &Channel, passive: bool) -> Result<DeclaredQueue> {
        channel.queue_declare(self, passive).await
    }

    async fn bind_all(&self, channel: &Channel, name: &str) -> Result<()> {
        if self.bindings.is_empty() {
            if let Some(exchange) = &self.exchange {
                if !exchange.name.is_empty() {
                    channel
                        .queue_bind(name, &exchange.name, &self.routing_key, &self.binding_arguments)
                        .await?;
                }
            }
        }
        for binding in &self.bindings {
            channel
                .queue_bind(name, &binding.exchange.name, &binding.routing_key, &binding.arguments)
                .await?;
        }
        Ok(())
    }

    /// Bind the queue to an exchange.
    pub async fn bind_to(
        &self,
        channel: &Channel,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        channel.queue_bind(&self.name, exchange, routing_key, arguments).await
    }

    /// Remove a binding of the queue.
    pub async fn unbind_from(
        &self,
        channel: &Channel,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        channel.queue_unbind(&self.name, exchange, routing_key, arguments).await
    }

    /// Remove every ready message; returns how many were removed.
    pub async fn purge(&self, channel: &Channel) -> Result<u32> {
        channel.queue_purge(&self.name).await
    }

    /// Delete the queue; returns how many messages it held.
    pub async fn delete(&self, channel: &Channel, if_unused: bool, if_empty: bool) -> Result<u32> {
        channel.queue_delete(&self.name, if_unused, if_empty).await
    }

    /// Take one message without a consumer (AMQP basic.get); `None` when empty.
    pub async fn get(&self, channel: &Channel, no_ack: bool) -> Result<Option<Message>> {
        channel.basic_get(&self.name, no_ack).await
    }

    /// Key of the connection's "maybe declare" cache; `None` when the
    /// declaration must not be cached (auto-delete, expiring, server-named).
    pub(crate) fn cache_key(&self) -> Option<String> {
        let cacheable = !self.name.is_empty()
            && !self.auto_delete
            && !self.no_declare
            && !self.arguments.contains_key("x-expires");
        cacheable.then(|| format!("Q|{}", self.name))
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Something [`Connection::maybe_declare`](crate::Connection::maybe_declare)
/// can declare.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Entity {
    /// An exchange.
    Exchange(Exchange),
    /// A queue with its bindings.
    Queue(Queue),
}

impl Entity {
    pub(crate) fn cache_key(&self) -> Option<String> {
        match self {
            Entity::Exchange(e) => e.cache_key(),
            Entity::Queue(q) => q.cache_key(),
        }
    }

    pub(crate) async fn declare(&self, channel: &Channel) -> Result<()> {
        match self {
            Entity::Exchange(e) => e.declare(channel).await,
            Entity::Queue(q) => q.declare(channel).await.map(|_| ()),
        }
    }
}

impl From<Exchange> for Entity {
    fn from(e: Exchange) -> Entity {
        Entity::Exchange(e)
    }
}

impl From<Queue> for Entity {
    fn from(q: Queue) -> Entity {
        Entity::Queue(q)
    }
}

impl From<&Exchange> for Entity {
    fn from(e: &Exchange) -> Entity {
        Entity::Exchange(e.clone())
    }
}

impl From<&Queue> for Entity {
    fn from(q: &Queue) -> Entity {
        Entity::Queue(q.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_limits_map_to_x_arguments_in_milliseconds() {
        let q = Queue::new("q")
            .message_ttl(Duration::from_secs_f64(1.5))
            .expires(Duration::from_secs(60))
            .max_length(10)
            .max_length_bytes(1 << 20)
            .max_priority(9);
        assert_eq!(q.arguments.get("x-message-ttl"), Some(&Value::Int(1500)));
        assert_eq!(q.arguments.get("x-expires"), Some(&Value::Int(60_000)));
        assert_eq!(q.arguments.get("x-max-length"), Some(&Value::Int(10)));
        assert_eq!(q.arguments.get("x-max-length-bytes"), Some(&Value::Int(1 << 20)));
        assert_eq!(q.arguments.get("x-max-priority"), Some(&Value::Int(9)));
        assert_eq!(q.cache_key(), None, "expiring queues are not cached");
    }

    #[test]
    fn exclusive_implies_auto_delete_and_defaults_are_durable() {
        let q = Queue::new("q");
        assert!(q.durable && !q.exclusive && !q.auto_delete);
        let q = q.exclusive(true);
        assert!(q.auto_delete);
        assert!(Exchange::topic("t").durable);
        assert_eq!(Exchange::topic("t").cache_key().as_deref(), Some("E|t"));
        assert_eq!(Exchange::direct("amq.direct").cache_key(), None);
        assert!(!Exchange::default_exchange().needs_declaring());
    }
}
