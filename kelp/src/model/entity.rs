//! Exchanges, queues and bindings (Kombu's `kombu.entity`).
//!
//! Entities are plain descriptions; operations take the [`Channel`] to run
//! on, e.g. `queue.declare(&channel).await?`.

use std::time::Duration;

use super::channel::Channel;
use super::connection::Connection;
use super::message::Message;
use crate::content::exchange::ExchangeKind;
use crate::content::value::{FieldTable, Value};
use crate::error::Result;
use crate::transport::{BindArgs, ExchangeDeclare, QueueDeclare, QueueDeclareOk};

/// Whether the broker keeps a message on disk.
///
/// Persistent messages in durable queues survive a broker restart; transient
/// ones are cheaper and suit data that is soon stale anyway.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, DeliveryMode, Exchange, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// // Metrics are worthless after a restart: publish them transient by default.
/// let metrics = Exchange::fanout("delivery-mode-doc").delivery_mode(DeliveryMode::Transient);
/// let queue = Queue::new("delivery-mode-doc").exchange(metrics.clone());
/// queue.declare(&channel).await?;
///
/// let producer = conn.producer().exchange(metrics).build().await?;
/// producer.publish(&42).send().await?;
/// let message = queue.get(&channel, true).await?.expect("a message");
/// assert_eq!(message.properties().delivery_mode, Some(DeliveryMode::Transient.as_u8()));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::DeliveryMode;
    ///
    /// assert_eq!(DeliveryMode::Transient.as_u8(), 1);
    /// assert_eq!(DeliveryMode::default().as_u8(), 2);
    /// ```
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
///
/// An exchange is a description: build it with the constructors and
/// setters, then declare it on a [`Channel`] (producers declare theirs).
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Exchange};
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// let events = Exchange::topic("exchange-doc")
///     .durable(false)
///     .argument("alternate-exchange", "unrouted");
/// events.declare(&channel).await?;
/// assert!(!events.durable);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Exchange, ExchangeKind};
    ///
    /// let exchange = Exchange::new("orders", ExchangeKind::Direct);
    /// assert_eq!(exchange, Exchange::direct("orders"));
    /// assert!(exchange.durable);
    /// ```
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
    ///
    /// It routes a message to the queues bound with exactly its routing key.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let tasks = Exchange::direct("direct-doc");
    /// let high = Queue::new("direct-doc-high").exchange(tasks.clone()).routing_key("high");
    /// high.declare(&channel).await?;
    ///
    /// let producer = conn.producer().exchange(tasks).build().await?;
    /// producer.publish("urgent").routing_key("high").send().await?;
    /// producer.publish("later").routing_key("low").send().await?; // no queue: dropped
    /// assert_eq!(high.declare(&channel).await?.message_count, 1);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn direct(name: impl Into<String>) -> Exchange {
        Exchange::new(name, ExchangeKind::Direct)
    }

    /// A topic exchange.
    ///
    /// Queues bind with patterns over dot-separated words: `*` matches one
    /// word, `#` any number.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let logs = Exchange::topic("topic-doc");
    /// let errors = Queue::new("topic-doc-errors").exchange(logs.clone()).routing_key("*.error");
    /// errors.declare(&channel).await?;
    ///
    /// let producer = conn.producer().exchange(logs).build().await?;
    /// producer.publish("disk full").routing_key("storage.error").send().await?;
    /// producer.publish("all good").routing_key("storage.info").send().await?;
    /// assert_eq!(errors.declare(&channel).await?.message_count, 1);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn topic(name: impl Into<String>) -> Exchange {
        Exchange::new(name, ExchangeKind::Topic)
    }

    /// A fanout exchange.
    ///
    /// Every bound queue gets a copy; routing keys are ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let news = Exchange::fanout("fanout-doc");
    /// let a = Queue::new("fanout-doc-a").exchange(news.clone());
    /// let b = Queue::new("fanout-doc-b").exchange(news.clone());
    /// a.declare(&channel).await?;
    /// b.declare(&channel).await?;
    ///
    /// conn.producer().exchange(news).build().await?.publish("hello all").send().await?;
    /// assert_eq!(a.declare(&channel).await?.message_count, 1);
    /// assert_eq!(b.declare(&channel).await?.message_count, 1);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn fanout(name: impl Into<String>) -> Exchange {
        Exchange::new(name, ExchangeKind::Fanout)
    }

    /// A headers exchange.
    ///
    /// Queues bind with header values to match (and `x-match`: `all` or
    /// `any`); the routing key is ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Binding, Connection, Exchange, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let docs = Exchange::headers("headers-doc");
    /// let pdfs = Queue::new("headers-doc-pdf").binding(
    ///     Binding::new(docs.clone(), "").argument("x-match", "all").argument("format", "pdf"),
    /// );
    /// pdfs.declare(&channel).await?;
    ///
    /// let producer = conn.producer().exchange(docs).build().await?;
    /// producer.publish("report").header("format", "pdf").send().await?;
    /// producer.publish("notes").header("format", "txt").send().await?;
    /// assert_eq!(pdfs.declare(&channel).await?.message_count, 1);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn headers(name: impl Into<String>) -> Exchange {
        Exchange::new(name, ExchangeKind::Headers)
    }

    /// The default exchange (`""`), which routes by queue name.
    ///
    /// It is what a producer uses unless told otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Exchange;
    ///
    /// let default = Exchange::default_exchange();
    /// assert_eq!(default.name, "");
    /// assert!(default.is_builtin() && !default.needs_declaring());
    /// ```
    pub fn default_exchange() -> Exchange {
        Exchange::default()
    }

    /// Set durability.
    ///
    /// # Examples
    ///
    /// ```
    /// // Scratch exchanges for tests need not survive a restart.
    /// let scratch = kelp::Exchange::fanout("test-events").durable(false);
    /// assert!(!scratch.durable);
    /// ```
    pub fn durable(mut self, durable: bool) -> Exchange {
        self.durable = durable;
        self
    }

    /// Set auto-delete.
    ///
    /// # Examples
    ///
    /// ```
    /// // Gone once the last queue unbinds from it.
    /// let per_session = kelp::Exchange::fanout("session-42").auto_delete(true);
    /// assert!(per_session.auto_delete);
    /// ```
    pub fn auto_delete(mut self, auto_delete: bool) -> Exchange {
        self.auto_delete = auto_delete;
        self
    }

    /// Declare passively (only check it exists).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let check = Exchange::topic("exchange-passive-doc").passive(true);
    /// assert!(check.declare(&channel).await.unwrap_err().is_not_found());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn passive(mut self, passive: bool) -> Exchange {
        self.passive = passive;
        self
    }

    /// Make it internal.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// // Fed only by other exchanges: publishing to it directly is refused.
    /// let internal = Exchange::fanout("exchange-internal-doc").internal(true);
    /// internal.declare(&channel).await?;
    /// let producer = conn.producer().build().await?;
    /// let refused = producer.publish("x").exchange("exchange-internal-doc").send().await;
    /// assert!(refused.unwrap_err().is_access_refused());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn internal(mut self, internal: bool) -> Exchange {
        self.internal = internal;
        self
    }

    /// The default delivery mode for messages published to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{DeliveryMode, Exchange};
    ///
    /// let ticks = Exchange::fanout("ticks").delivery_mode(DeliveryMode::Transient);
    /// assert_eq!(ticks.delivery_mode, Some(DeliveryMode::Transient));
    /// ```
    pub fn delivery_mode(mut self, mode: DeliveryMode) -> Exchange {
        self.delivery_mode = Some(mode);
        self
    }

    /// Add a declaration argument.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Exchange, Value};
    ///
    /// // Send what no queue takes to another exchange instead of dropping it.
    /// let orders = Exchange::direct("orders").argument("alternate-exchange", "orders.unrouted");
    /// assert_eq!(orders.arguments["alternate-exchange"], Value::from("orders.unrouted"));
    /// ```
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Exchange {
        self.arguments.insert(key.into(), value.into());
        self
    }

    /// Never declare this exchange.
    ///
    /// For exchanges that another team or a deployment tool owns, with
    /// arguments this code should not have to repeat.
    ///
    /// # Examples
    ///
    /// ```
    /// let shared = kelp::Exchange::topic("billing.events").no_declare(true);
    /// assert!(!shared.needs_declaring());
    /// ```
    pub fn no_declare(mut self, no_declare: bool) -> Exchange {
        self.no_declare = no_declare;
        self
    }

    /// True for the default exchange and the built-in `amq.*` ones, which
    /// cannot be declared.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Exchange;
    ///
    /// assert!(Exchange::topic("amq.topic").is_builtin());
    /// assert!(!Exchange::topic("logs").is_builtin());
    /// ```
    pub fn is_builtin(&self) -> bool {
        self.name.is_empty() || self.name.starts_with("amq.")
    }

    /// True when [`declare`](Exchange::declare) would talk to the broker.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::Exchange;
    ///
    /// assert!(Exchange::direct("jobs").needs_declaring());
    /// assert!(!Exchange::direct("amq.direct").needs_declaring());
    /// assert!(!Exchange::direct("jobs").no_declare(true).needs_declaring());
    /// ```
    pub fn needs_declaring(&self) -> bool {
        !self.no_declare && !self.is_builtin()
    }

    /// Declare the exchange (a no-op for built-in and `no_declare` exchanges).
    ///
    /// Declaring is idempotent: declaring an existing exchange with the same
    /// options succeeds; with different options the broker refuses (406).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// Exchange::topic("exchange-declare-doc").declare(&channel).await?;
    /// Exchange::topic("exchange-declare-doc").declare(&channel).await?; // again: fine
    ///
    /// let clash = Exchange::fanout("exchange-declare-doc").declare(&channel).await;
    /// assert!(clash.unwrap_err().is_precondition_failed());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn declare(&self, channel: &Channel) -> Result<()> {
        if !self.needs_declaring() {
            return Ok(());
        }
        channel.exchange_declare(self.declaration(), !self.passive).await
    }

    /// Delete the exchange; with `if_unused`, only when it has no bindings.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let scratch = Exchange::fanout("exchange-delete-doc");
    /// scratch.declare(&channel).await?;
    /// scratch.delete(&channel, false).await?;
    ///
    /// let gone = scratch.clone().passive(true).declare(&channel).await;
    /// assert!(gone.unwrap_err().is_not_found());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn delete(&self, channel: &Channel, if_unused: bool) -> Result<()> {
        channel.exchange_delete(&self.name, if_unused).await
    }

    /// Bind this exchange to a source exchange (exchange-to-exchange binding).
    ///
    /// Messages the source routes with a matching key flow on to this
    /// exchange, and from there to its own queues.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange, FieldTable, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let all = Exchange::topic("e2e-doc-all");
    /// let audit = Exchange::fanout("e2e-doc-audit");
    /// all.declare(&channel).await?;
    /// audit.declare(&channel).await?;
    /// audit.bind_to(&channel, "e2e-doc-all", "user.#", &FieldTable::new()).await?;
    ///
    /// let log = Queue::new("e2e-doc-log").exchange(audit);
    /// log.declare(&channel).await?;
    /// conn.producer().exchange(all).build().await?
    ///     .publish("login").routing_key("user.login").send().await?;
    /// assert_eq!(log.declare(&channel).await?.message_count, 1);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn bind_to(
        &self,
        channel: &Channel,
        source: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        channel.bind(false, bind_args(&self.name, source, routing_key, arguments)).await
    }

    /// Remove an exchange-to-exchange binding.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange, FieldTable};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let (source, copy) = (Exchange::topic("e2e-unbind-doc-src"), Exchange::fanout("e2e-unbind-doc-dst"));
    /// source.declare(&channel).await?;
    /// copy.declare(&channel).await?;
    /// copy.bind_to(&channel, &source.name, "#", &FieldTable::new()).await?;
    /// copy.unbind_from(&channel, &source.name, "#", &FieldTable::new()).await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn unbind_from(
        &self,
        channel: &Channel,
        source: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        channel.unbind(false, bind_args(&self.name, source, routing_key, arguments)).await
    }

    /// Key of the connection's "maybe declare" cache (Kombu caches by name);
    /// `None` when the declaration must not be cached.
    pub(crate) fn cache_key(&self) -> Option<String> {
        (!self.auto_delete && self.needs_declaring()).then(|| format!("E|{}", self.name))
    }

    /// The transport's arguments for declaring this exchange.
    fn declaration(&self) -> ExchangeDeclare {
        ExchangeDeclare {
            name: self.name.clone(),
            kind: self.kind.clone(),
            passive: self.passive,
            durable: self.durable,
            auto_delete: self.auto_delete,
            internal: self.internal,
            arguments: self.arguments.clone(),
        }
    }
}

/// A binding of a queue to an exchange (Kombu's `binding`).
///
/// A queue with several bindings receives what any of them routes to it.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Binding, Connection, Exchange, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// let logs = Exchange::topic("binding-doc");
/// let alerts = Queue::new("binding-doc-alerts")
///     .binding(Binding::new(logs.clone(), "*.error"))
///     .binding(Binding::new(logs.clone(), "*.critical"));
/// alerts.declare(&channel).await?;
///
/// let producer = conn.producer().exchange(logs).build().await?;
/// for key in ["db.error", "db.critical", "db.info"] {
///     producer.publish(key).routing_key(key).send().await?;
/// }
/// assert_eq!(alerts.declare(&channel).await?.message_count, 2);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Binding, Exchange};
    ///
    /// let binding = Binding::new(Exchange::topic("logs"), "app.*");
    /// assert_eq!(binding.routing_key, "app.*");
    /// ```
    pub fn new(exchange: Exchange, routing_key: impl Into<String>) -> Binding {
        Binding {
            exchange,
            routing_key: routing_key.into(),
            arguments: FieldTable::new(),
            unbind_arguments: FieldTable::new(),
        }
    }

    /// Add a binding argument.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Binding, Exchange};
    ///
    /// // On a headers exchange: match messages with both headers.
    /// let binding = Binding::new(Exchange::headers("docs"), "")
    ///     .argument("x-match", "all")
    ///     .argument("format", "pdf")
    ///     .argument("lang", "en");
    /// assert_eq!(binding.arguments.len(), 3);
    /// ```
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Binding {
        self.arguments.insert(key.into(), value.into());
        self
    }

    /// Add an argument used when unbinding.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Binding, Exchange};
    ///
    /// let binding = Binding::new(Exchange::headers("docs"), "")
    ///     .argument("format", "pdf")
    ///     .unbind_argument("format", "pdf");
    /// assert_eq!(binding.unbind_arguments.len(), 1);
    /// ```
    pub fn unbind_argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Binding {
        self.unbind_arguments.insert(key.into(), value.into());
        self
    }
}

/// The broker's answer to a queue declaration.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// let declared = Queue::server_named().declare(&channel).await?;
/// assert!(declared.name.starts_with("amq.gen-"));
/// assert_eq!((declared.message_count, declared.consumer_count), (0, 0));
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
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
///
/// Like [`Exchange`], a queue is a description; its operations take the
/// [`Channel`] to run on.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use std::time::Duration;
/// use kelp::{Connection, Exchange, Queue};
///
/// let conn = Connection::new("memory://")?;
/// let channel = conn.default_channel().await?;
/// let emails = Queue::new("queue-doc")
///     .exchange(Exchange::direct("queue-doc"))
///     .routing_key("email")
///     .message_ttl(Duration::from_secs(3600))
///     .max_length(10_000);
/// let declared = emails.declare(&channel).await?;
/// assert_eq!(declared.name, "queue-doc");
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
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
    ///
    /// Unbound, it still receives what is published to the default exchange
    /// with its name as the routing key.
    ///
    /// # Examples
    ///
    /// ```
    /// let queue = kelp::Queue::new("invoices");
    /// assert!(queue.durable && !queue.exclusive);
    /// ```
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
    ///
    /// Suits a private reply queue or a subscriber that only wants messages
    /// published while it runs.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let replies = conn.consumer([Queue::server_named()]).build().await?;
    /// let names = replies.queues();
    /// assert!(names[0].starts_with("amq.gen-"));
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn server_named() -> Queue {
        Queue::new("").exclusive(true)
    }

    /// Bind to `exchange` with the queue's routing key.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Exchange, Queue};
    ///
    /// let queue = Queue::new("thumbnails").exchange(Exchange::direct("media")).routing_key("image");
    /// assert_eq!(queue.exchange.as_ref().map(|e| e.name.as_str()), Some("media"));
    /// ```
    pub fn exchange(mut self, exchange: Exchange) -> Queue {
        self.exchange = Some(exchange);
        self
    }

    /// The routing key for the binding to `exchange`.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Exchange, Queue};
    ///
    /// let eu = Queue::new("orders-eu").exchange(Exchange::topic("orders")).routing_key("order.eu.*");
    /// assert_eq!(eu.routing_key, "order.eu.*");
    /// ```
    pub fn routing_key(mut self, routing_key: impl Into<String>) -> Queue {
        self.routing_key = routing_key.into();
        self
    }

    /// Add a binding (when any binding is given, `exchange` is not bound).
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Binding, Exchange, Queue};
    ///
    /// let media = Exchange::direct("media");
    /// let queue = Queue::new("all-media")
    ///     .binding(Binding::new(media.clone(), "image"))
    ///     .binding(Binding::new(media, "video"));
    /// assert_eq!(queue.bindings.len(), 2);
    /// ```
    pub fn binding(mut self, binding: Binding) -> Queue {
        self.bindings.push(binding);
        self
    }

    /// Set durability.
    ///
    /// # Examples
    ///
    /// ```
    /// // A cache-invalidation queue does not need to survive a restart.
    /// let queue = kelp::Queue::new("cache-invalidation").durable(false);
    /// assert!(!queue.durable);
    /// ```
    pub fn durable(mut self, durable: bool) -> Queue {
        self.durable = durable;
        self
    }

    /// Make the queue exclusive to this connection; implies auto-delete, as in Kombu.
    ///
    /// # Examples
    ///
    /// ```
    /// let private = kelp::Queue::new("session-42").exclusive(true);
    /// assert!(private.auto_delete);
    /// ```
    pub fn exclusive(mut self, exclusive: bool) -> Queue {
        self.exclusive = exclusive;
        if exclusive {
            self.auto_delete = true;
        }
        self
    }

    /// Set auto-delete.
    ///
    /// # Examples
    ///
    /// ```
    /// // Deleted when its last consumer goes away.
    /// let queue = kelp::Queue::new("dashboard-feed").auto_delete(true);
    /// assert!(queue.auto_delete && !queue.exclusive);
    /// ```
    pub fn auto_delete(mut self, auto_delete: bool) -> Queue {
        self.auto_delete = auto_delete;
        self
    }

    /// Declare passively (only check that it exists).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// Queue::new("queue-passive-doc").declare(&channel).await?;
    /// // Read the counts without risking a declaration with other options.
    /// let counts = Queue::new("queue-passive-doc").passive(true).declare(&channel).await?;
    /// assert_eq!(counts.message_count, 0);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn passive(mut self, passive: bool) -> Queue {
        self.passive = passive;
        self
    }

    /// Never declare this queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// // Managed elsewhere: declare() neither creates nor checks it.
    /// let declared = Queue::new("queue-no-declare-doc").no_declare(true).declare(&channel).await?;
    /// assert_eq!(declared.name, "queue-no-declare-doc");
    /// assert!(Queue::new("queue-no-declare-doc").passive(true).declare(&channel).await.is_err());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn no_declare(mut self, no_declare: bool) -> Queue {
        self.no_declare = no_declare;
        self
    }

    /// Add a declaration argument.
    ///
    /// The helpers below ([`message_ttl`](Queue::message_ttl),
    /// [`max_length`](Queue::max_length)...) cover the common ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Queue, Value};
    ///
    /// let quorum = Queue::new("payments").argument("x-queue-type", "quorum");
    /// assert_eq!(quorum.arguments["x-queue-type"], Value::from("quorum"));
    /// ```
    pub fn argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Queue {
        self.arguments.insert(key.into(), value.into());
        self
    }

    /// Add an argument to the binding with `exchange`.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Exchange, Queue};
    ///
    /// let pdfs = Queue::new("pdfs")
    ///     .exchange(Exchange::headers("documents"))
    ///     .binding_argument("x-match", "all")
    ///     .binding_argument("format", "pdf");
    /// assert_eq!(pdfs.binding_arguments.len(), 2);
    /// ```
    pub fn binding_argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Queue {
        self.binding_arguments.insert(key.into(), value.into());
        self
    }

    /// Add a consumer argument.
    ///
    /// # Examples
    ///
    /// ```
    /// // RabbitMQ feeds consumers with a higher priority first.
    /// let queue = kelp::Queue::new("jobs").consumer_argument("x-priority", 10);
    /// assert_eq!(queue.consumer_arguments.len(), 1);
    /// ```
    pub fn consumer_argument(mut self, key: impl Into<String>, value: impl Into<Value>) -> Queue {
        self.consumer_arguments.insert(key.into(), value.into());
        self
    }

    /// Messages expire after `ttl` in the queue (`x-message-ttl`, milliseconds).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use kelp::{Queue, Value};
    ///
    /// let queue = Queue::new("quotes").message_ttl(Duration::from_secs(30));
    /// assert_eq!(queue.arguments["x-message-ttl"], Value::Int(30_000));
    /// ```
    pub fn message_ttl(self, ttl: Duration) -> Queue {
        self.argument("x-message-ttl", duration_ms(ttl))
    }

    /// The queue is deleted after being unused for `after` (`x-expires`, milliseconds).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use kelp::{Queue, Value};
    ///
    /// let queue = Queue::new("upload-progress").expires(Duration::from_secs(600));
    /// assert_eq!(queue.arguments["x-expires"], Value::Int(600_000));
    /// ```
    pub fn expires(self, after: Duration) -> Queue {
        self.argument("x-expires", duration_ms(after))
    }

    /// At most `n` ready messages (`x-max-length`).
    ///
    /// By default the broker then drops the oldest messages.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let latest = Queue::new("max-length-doc").max_length(2);
    /// latest.declare(&channel).await?;
    /// let producer = conn.producer().routing_key("max-length-doc").build().await?;
    /// for n in 1..=3 {
    ///     producer.publish(&n).send().await?;
    /// }
    /// let oldest = latest.get(&channel, true).await?.expect("a message");
    /// assert_eq!(oldest.decode::<i32>()?, 2); // 1 was dropped
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn max_length(self, n: u32) -> Queue {
        self.argument("x-max-length", n)
    }

    /// At most `n` bytes of ready message bodies (`x-max-length-bytes`).
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Queue, Value};
    ///
    /// let queue = Queue::new("frames").max_length_bytes(64 << 20);
    /// assert_eq!(queue.arguments["x-max-length-bytes"], Value::Int(64 << 20));
    /// ```
    pub fn max_length_bytes(self, n: u64) -> Queue {
        self.argument("x-max-length-bytes", n)
    }

    /// Support priorities 0 to `max` (`x-max-priority`).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let jobs = Queue::new("max-priority-doc").max_priority(9);
    /// jobs.declare(&channel).await?;
    /// let producer = conn.producer().routing_key("max-priority-doc").build().await?;
    /// producer.publish("routine").send().await?;
    /// producer.publish("urgent").priority(9).send().await?;
    ///
    /// let first = jobs.get(&channel, true).await?.expect("a message");
    /// assert_eq!(first.decode::<String>()?, "urgent");
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn max_priority(self, max: u8) -> Queue {
        self.argument("x-max-priority", max)
    }

    /// Declare the queue, its exchange and its bindings; returns the queue's
    /// name (generated for server-named queues) and counts.
    ///
    /// Declaring an existing queue with the same options only reads its
    /// counts, so it is also a cheap way to ask how many messages wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("queue-declare-doc");
    /// assert_eq!(queue.declare(&channel).await?.message_count, 0);
    ///
    /// conn.producer().build().await?.publish("hi").routing_key("queue-declare-doc").send().await?;
    /// assert_eq!(queue.declare(&channel).await?.message_count, 1);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn declare(&self, channel: &Channel) -> Result<DeclaredQueue> {
        if let Some(exchange) = &self.exchange
            && self.bindings.is_empty() {
                exchange.declare(channel).await?;
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
            let passive = self.passive;
            channel.queue_declare(self.declaration(passive), !passive).await?.into()
        };
        self.bind_all(channel, &declared.name).await?;
        Ok(declared)
    }

    /// Look at the queue without changing anything: a passive declaration,
    /// which fails with a not-found error ([`Error::is_not_found`](crate::Error::is_not_found)) when the
    /// queue does not exist, and otherwise tells how many messages are
    /// ready and how many consumers it has.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("inspect-doc");
    /// assert!(queue.inspect(&channel).await.unwrap_err().is_not_found());
    /// queue.declare(&channel).await?;
    /// let status = queue.inspect(&channel).await?;
    /// assert_eq!((status.name.as_str(), status.message_count), ("inspect-doc", 0));
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn inspect(&self, channel: &Channel) -> Result<DeclaredQueue> {
        Ok(channel.queue_declare(self.declaration(true), false).await?.into())
    }

    async fn bind_all(&self, channel: &Channel, name: &str) -> Result<()> {
        if self.bindings.is_empty()
            && let Some(exchange) = &self.exchange
                && !exchange.name.is_empty() {
                    channel
                        .bind(true, bind_args(name, &exchange.name, &self.routing_key, &self.binding_arguments))
                        .await?;
                }
        for binding in &self.bindings {
            channel
                .bind(true, bind_args(name, &binding.exchange.name, &binding.routing_key, &binding.arguments))
                .await?;
        }
        Ok(())
    }

    /// Bind the queue to an exchange.
    ///
    /// For bindings added at run time; bindings known up front are better
    /// given to the queue itself ([`Queue::exchange`], [`Queue::binding`]),
    /// which [`declare`](Queue::declare) then creates.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange, FieldTable, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let prices = Exchange::topic("bind-doc");
    /// prices.declare(&channel).await?;
    /// let watch = Queue::new("bind-doc-watch");
    /// watch.declare(&channel).await?;
    /// watch.bind_to(&channel, "bind-doc", "stock.acme", &FieldTable::new()).await?;
    ///
    /// conn.producer().exchange(prices).build().await?
    ///     .publish(&12.5).routing_key("stock.acme").send().await?;
    /// assert_eq!(watch.declare(&channel).await?.message_count, 1);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn bind_to(
        &self,
        channel: &Channel,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        channel.bind(true, bind_args(&self.name, exchange, routing_key, arguments)).await
    }

    /// Remove a binding of the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange, FieldTable, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let prices = Exchange::topic("unbind-doc");
    /// let watch = Queue::new("unbind-doc-watch").exchange(prices.clone()).routing_key("stock.*");
    /// watch.declare(&channel).await?;
    /// watch.unbind_from(&channel, "unbind-doc", "stock.*", &FieldTable::new()).await?;
    ///
    /// conn.producer().exchange(prices).build().await?
    ///     .publish(&12.5).routing_key("stock.acme").send().await?;
    /// assert_eq!(watch.declare(&channel).await?.message_count, 0);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn unbind_from(
        &self,
        channel: &Channel,
        exchange: &str,
        routing_key: &str,
        arguments: &FieldTable,
    ) -> Result<()> {
        channel.unbind(true, bind_args(&self.name, exchange, routing_key, arguments)).await
    }

    /// Remove every ready message; returns how many were removed.
    ///
    /// Messages delivered but not yet acknowledged are not ready, so they
    /// stay.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("purge-doc");
    /// queue.declare(&channel).await?;
    /// let producer = conn.producer().routing_key("purge-doc").build().await?;
    /// producer.publish("stale").send().await?;
    /// producer.publish("stale too").send().await?;
    /// assert_eq!(queue.purge(&channel).await?, 2);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn purge(&self, channel: &Channel) -> Result<u32> {
        channel.queue_purge(&self.name).await
    }

    /// Delete the queue; returns how many messages it held.
    ///
    /// With `if_unused` the broker refuses while the queue has consumers,
    /// with `if_empty` while it holds messages (a 406 error either way).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("queue-delete-doc");
    /// queue.declare(&channel).await?;
    /// conn.producer().routing_key("queue-delete-doc").build().await?.publish("left").send().await?;
    ///
    /// let refused = queue.delete(&channel, false, true).await;
    /// assert!(refused.unwrap_err().is_precondition_failed());
    /// assert_eq!(queue.delete(&channel, false, false).await?, 1);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn delete(&self, channel: &Channel, if_unused: bool, if_empty: bool) -> Result<u32> {
        channel.queue_delete(&self.name, if_unused, if_empty).await
    }

    /// Take one message without a consumer (AMQP basic.get); `None` when empty.
    ///
    /// Polling like this costs a round trip per message; a [`Consumer`]
    /// is better for a steady flow. With `no_ack` the broker forgets the
    /// message as it hands it out.
    ///
    /// [`Consumer`]: crate::Consumer
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let channel = conn.default_channel().await?;
    /// let queue = Queue::new("queue-get-doc");
    /// queue.declare(&channel).await?;
    /// conn.producer().routing_key("queue-get-doc").build().await?.publish("only one").send().await?;
    ///
    /// let message = queue.get(&channel, false).await?.expect("a message");
    /// assert_eq!(message.decode::<String>()?, "only one");
    /// message.ack().await?;
    /// assert!(queue.get(&channel, false).await?.is_none());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
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

    /// The transport's arguments for declaring this queue.
    fn declaration(&self, passive: bool) -> QueueDeclare {
        QueueDeclare {
            name: self.name.clone(),
            passive,
            durable: self.durable,
            exclusive: self.exclusive,
            auto_delete: self.auto_delete,
            arguments: self.arguments.clone(),
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Something [`Connection::maybe_declare`](crate::Connection::maybe_declare)
/// can declare.
///
/// Rarely named: exchanges and queues (and references to them) convert
/// into it.
///
/// # Examples
///
/// ```
/// use kelp::{Entity, Exchange, Queue};
///
/// let things: Vec<Entity> = vec![Exchange::topic("logs").into(), Queue::new("errors").into()];
/// assert!(matches!(things[1], Entity::Queue(_)));
/// ```
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

impl From<QueueDeclareOk> for DeclaredQueue {
    fn from(ok: QueueDeclareOk) -> DeclaredQueue {
        DeclaredQueue { name: ok.name, message_count: ok.message_count, consumer_count: ok.consumer_count }
    }
}

fn bind_args(destination: &str, source: &str, routing_key: &str, arguments: &FieldTable) -> BindArgs {
    BindArgs {
        destination: destination.to_owned(),
        source: source.to_owned(),
        routing_key: routing_key.to_owned(),
        arguments: arguments.clone(),
    }
}

/// Kombu's `maybe_declare` lives beside the entities it declares.
impl Connection {
    /// Declare an exchange or queue unless this connection already declared
    /// it (Kombu's `maybe_declare`). Returns true if it was declared now.
    ///
    /// Code that publishes often can call it before every publish: only
    /// the first call costs a round trip.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Exchange};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let exchange = Exchange::fanout("maybe-declare-doc");
    /// assert!(conn.maybe_declare(&exchange).await?); // declared now
    /// assert!(!conn.maybe_declare(&exchange).await?); // remembered
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn maybe_declare(&self, entity: impl Into<Entity>) -> Result<bool> {
        let entity = entity.into();
        let key = entity.cache_key();
        if let Some(key) = &key
            && self.supervisor().is_declared(key)
        {
            return Ok(false);
        }
        let generation = self.supervisor().generation();
        let channel = self.default_channel().await?;
        entity.declare(&channel).await?;
        if let Some(key) = key {
            // Only cached if no reconnect cleared the cache meanwhile.
            self.supervisor().mark_declared(key, generation);
        }
        Ok(true)
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
