//! The in-process broker behind `memory://`: virtual hosts, exchanges,
//! bindings and queues with AMQP 0-9-1 semantics (and RabbitMQ's queue
//! arguments: TTL, max-length with overflow, priorities, expiry).
//!
//! Locking: a virtual host's topology sits behind one `RwLock` (publishers
//! take it shared); each queue has its own `Mutex` for its messages and
//! consumers; each channel has a `Mutex` for its unacknowledged deliveries.
//! The only nesting is vhost → queue → channel-unacked, never the reverse.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, Instant};


use crate::content::exchange::ExchangeKind;
use crate::error::reply_code::*;
use crate::content::message::{Content, DeliveryInfo, ReturnedMessage};
use crate::transport::routing::{headers_match, topic_matches};
use crate::transport::types::{CancelReason, ConsumerEvent, Delivery, DeliverySender};
use rustc_hash::FxBuildHasher as FastHash;
use crate::content::text::SharedStr;
use crate::content::value::{FieldTable, Value};
use crate::error::{Error, Result};

/// Lock a mutex, ignoring poisoning: broker state stays consistent because
/// no code path panics while holding a lock.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// One broker per virtual host name, shared by every `memory://` connection
/// in the process.
pub(super) fn virtual_host(name: &str) -> Arc<VirtualHost> {
    static HOSTS: OnceLock<Mutex<HashMap<String, Arc<VirtualHost>>>> = OnceLock::new();
    let hosts = HOSTS.get_or_init(|| Mutex::new(HashMap::new()));
    lock(hosts)
        .entry(name.to_owned())
        .or_insert_with(|| Arc::new(VirtualHost::new(name)))
        .clone()
}

/// A message as the broker stores it.
#[derive(Clone, Debug)]
pub(super) struct StoredMessage {
    pub(super) exchange: SharedStr,
    pub(super) routing_key: SharedStr,
    pub(super) content: Arc<Content>,
}

/// The result of routing one publish.
pub(super) enum PublishOutcome {
    /// Delivered to at least one queue, or dropped as unroutable without `mandatory`.
    Accepted,
    /// Nobody took it and it was `mandatory`.
    Returned(ReturnedMessage),
    /// A queue refused it (`x-overflow=reject-publish`).
    Rejected,
}

pub(super) struct VirtualHost {
    name: String,
    topology: RwLock<Topology>,
}

#[derive(Default)]
struct Topology {
    exchanges: HashMap<String, ExchangeState, FastHash>,
    queues: HashMap<String, Arc<QueueState>, FastHash>,
}

struct ExchangeState {
    kind: ExchangeKind,
    durable: bool,
    auto_delete: bool,
    internal: bool,
    arguments: FieldTable,
    bindings: Vec<BindingState>,
}

#[derive(Clone, PartialEq)]
struct BindingState {
    destination: Destination,
    routing_key: String,
    arguments: FieldTable,
}

#[derive(Clone, PartialEq)]
enum Destination {
    Queue(String),
    Exchange(String),
}

fn not_found(what: &str, name: &str, vhost: &str) -> Error {
    Error::channel_closed(NOT_FOUND, format!("NOT_FOUND - no {what} '{name}' in vhost '{vhost}'"))
}

fn precondition(text: String) -> Error {
    Error::channel_closed(PRECONDITION_FAILED, format!("PRECONDITION_FAILED - {text}"))
}

fn access_refused(text: String) -> Error {
    Error::channel_closed(ACCESS_REFUSED, format!("ACCESS_REFUSED - {text}"))
}

/// Everything a declaration can say about an exchange.
pub(super) struct ExchangeSpec<'a> {
    pub(super) name: &'a str,
    pub(super) kind: &'a ExchangeKind,
    pub(super) passive: bool,
    pub(super) durable: bool,
    pub(super) auto_delete: bool,
    pub(super) internal: bool,
    pub(super) arguments: &'a FieldTable,
}

/// Everything a declaration can say about a queue.
pub(super) struct QueueSpec<'a> {
    pub(super) name: &'a str,
    pub(super) passive: bool,
    pub(super) durable: bool,
    pub(super) exclusive: bool,
    pub(super) auto_delete: bool,
    pub(super) arguments: &'a FieldTable,
    pub(super) connection_id: u64,
}

impl VirtualHost {
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    fn new(name: &str) -> VirtualHost {
        let mut topology = Topology::default();
        for (exchange, kind) in [
            ("", ExchangeKind::Direct),
            ("amq.direct", ExchangeKind::Direct),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            topology.exchanges.insert(
                exchange.to_owned(),
                ExchangeState {
                    kind,
                    durable: true,
                    auto_delete: false,
                    internal: false,
                    arguments: FieldTable::new(),
                    bindings: Vec::new(),
                },
            );
        }
        VirtualHost {
            name: name.to_owned(),
            topology: RwLock::new(topology),
        }
    }

    pub(super) fn declare_exchange(&self, spec: ExchangeSpec<'_>) -> Result<()> {
        let mut topo = write(&self.topology);
        if let Some(existing) = topo.exchanges.get(spec.name) {
            if spec.passive {
                return Ok(());
            }
            if existing.kind != *spec.kind
                || existing.durable != spec.durable
                || existing.auto_delete != spec.auto_delete
                || existing.internal != spec.internal
                || existing.arguments != *spec.arguments
            {
                return Err(precondition(format!(
                    "inequivalent arg for exchange '{}' in vhost '{}': declared as {} \
                     durable={} auto_delete={}, redeclared as {} durable={} auto_delete={}",
                    spec.name,
                    self.name,
                    existing.kind,
                    existing.durable,
                    existing.auto_delete,
                    spec.kind,
                    spec.durable,
                    spec.auto_delete
                )));
            }
            return Ok(());
        }
        if spec.passive {
            return Err(not_found("exchange", spec.name, &self.name));
        }
        if spec.name.is_empty() || spec.name.starts_with("amq.") {
            return Err(access_refused(format!(
                "exchange name '{}' contains reserved prefix 'amq.'",
                spec.name
            )));
        }
        if let ExchangeKind::Custom(kind) = spec.kind {
            return Err(Error::channel_closed(
                COMMAND_INVALID,
                format!("COMMAND_INVALID - unknown exchange type '{kind}'"),
            ));
        }
        topo.exchanges.insert(
            spec.name.to_owned(),
            ExchangeState {
                kind: spec.kind.clone(),
                durable: spec.durable,
                auto_delete: spec.auto_delete,
                internal: spec.internal,
                arguments: spec.arguments.clone(),
                bindings: Vec::new(),
            },
        );
        Ok(())
    }

    pub(super) fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<()> {
        let mut topo = write(&self.topology);
        if name.is_empty() || name.starts_with("amq.") {
            return Err(access_refused(format!("cannot delete the built-in exchange '{name}'")));
        }
        let Some(exchange) = topo.exchanges.get(name) else {
            return Ok(()); // idempotent, as in RabbitMQ
        };
        let used_as_destination = topo.exchanges.values().any(|e| {
            e.bindings
                .iter()
                .any(|b| b.destination == Destination::Exchange(name.to_owned()))
        });
        if if_unused && (!exchange.bindings.is_empty() || used_as_destination) {
            return Err(precondition(format!("exchange '{name}' in vhost '{}' in use", self.name)));
        }
        topo.exchanges.remove(name);
        let target = Destination::Exchange(name.to_owned());
        topo.remove_bindings_to(&target);
        Ok(())
    }

    pub(super) fn bind(
        &self,
        destination_is_queue: bool,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: &FieldTable,
        connection_id: u64,
    ) -> Result<()> {
        let mut topo = write(&self.topology);
        let dest = self.check_destination(&topo, destination_is_queue, destination, connection_id)?;
        if source.is_empty() {
            return Err(access_refused("operation not permitted on the default exchange".into()));
        }
        let binding = BindingState {
            destination: dest,
            routing_key: routing_key.to_owned(),
            arguments: arguments.clone(),
        };
        let exchange = topo
            .exchanges
            .get_mut(source)
            .ok_or_else(|| not_found("exchange", source, &self.name))?;
        if !exchange.bindings.contains(&binding) {
            exchange.bindings.push(binding);
        }
        Ok(())
    }

    pub(super) fn unbind(
        &self,
        destination_is_queue: bool,
        destination: &str,
        source: &str,
        routing_key: &str,
        arguments: &FieldTable,
        connection_id: u64,
    ) -> Result<()> {
        let mut topo = write(&self.topology);
        let dest = self.check_destination(&topo, destination_is_queue, destination, connection_id)?;
        if source.is_empty() {
            return Err(access_refused("operation not permitted on the default exchange".into()));
        }
        let Some(exchange) = topo.exchanges.get_mut(source) else {
            return Err(not_found("exchange", source, &self.name));
        };
        exchange.bindings.retain(|b| {
            !(b.destination == dest && b.routing_key == routing_key && b.arguments == *arguments)
        });
        if exchange.auto_delete && exchange.bindings.is_empty() {
            topo.exchanges.remove(source);
        }
        Ok(())
    }

    fn check_destination(
        &self,
        topo: &Topology,
        is_queue: bool,
        name: &str,
        connection_id: u64,
    ) -> Result<Destination> {
        if is_queue {
            let queue = topo
                .queues
                .get(name)
                .ok_or_else(|| not_found("queue", name, &self.name))?;
            queue.check_owner(connection_id, &self.name)?;
            Ok(Destination::Queue(name.to_owned()))
        } else if topo.exchanges.contains_key(name) {
            Ok(Destination::Exchange(name.to_owned()))
        } else {
            Err(not_found("exchange", name, &self.name))
        }
    }

    /// Declare a queue; returns it with its ready count and consumer count.
    pub(super) fn declare_queue(self: &Arc<Self>, spec: QueueSpec<'_>) -> Result<(Arc<QueueState>, u32, u32)> {
        let mut topo = write(&self.topology);
        let name = if spec.name.is_empty() && !spec.passive {
            format!("amq.gen-{}", crate::content::ids::uuid4().replace('-', ""))
        } else {
            spec.name.to_owned()
        };
        if let Some(queue) = topo.queues.get(&name) {
            queue.check_owner(spec.connection_id, &self.name)?;
            if !spec.passive
                && (queue.durable != spec.durable
                    || queue.exclusive_owner.is_some() != spec.exclusive
                    || queue.auto_delete != spec.auto_delete
                    || queue.arguments != *spec.arguments)
            {
                return Err(precondition(format!(
                    "inequivalent arg for queue '{name}' in vhost '{}': declared durable={} \
                     exclusive={} auto_delete={} arguments={}, redeclared durable={} \
                     exclusive={} auto_delete={} arguments={}",
                    self.name,
                    queue.durable,
                    queue.exclusive_owner.is_some(),
                    queue.auto_delete,
                    Value::Map(queue.arguments.clone()),
                    spec.durable,
                    spec.exclusive,
                    spec.auto_delete,
                    Value::Map(spec.arguments.clone()),
                )));
            }
            let (ready, consumers) = queue.counts();
            queue.touch();
            return Ok((queue.clone(), ready, consumers));
        }
        if spec.passive {
            return Err(not_found("queue", &name, &self.name));
        }
        if name.starts_with("amq.") && !spec.name.is_empty() {
            return Err(access_refused(format!(
                "queue name '{name}' contains reserved prefix 'amq.*'"
            )));
        }
        let limits = QueueLimits::from_arguments(spec.arguments)?;
        let queue = Arc::new(QueueState {
            name: SharedStr::from(name.clone()),
            vhost: Arc::<VirtualHost>::downgrade(self),
            durable: spec.durable,
            exclusive_owner: spec.exclusive.then_some(spec.connection_id),
            auto_delete: spec.auto_delete,
            arguments: spec.arguments.clone(),
            limits,
            starved: AtomicBool::new(false),
            inner: Mutex::new(QueueInner::new(limits.max_priority)),
        });
        topo.queues.insert(name, queue.clone());
        drop(topo);
        if let Some(expires) = queue.limits.expires {
            spawn_expiry_watch(Arc::downgrade(&queue), expires);
        }
        Ok((queue, 0, 0))
    }

    pub(super) fn lookup_queue(&self, name: &str, connection_id: u64) -> Result<Arc<QueueState>> {
        let topo = read(&self.topology);
        let queue = topo
            .queues
            .get(name)
            .ok_or_else(|| not_found("queue", name, &self.name))?;
        queue.check_owner(connection_id, &self.name)?;
        Ok(queue.clone())
    }

    /// Delete a queue: its consumers are told, its messages dropped.
    pub(super) fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        connection_id: Option<u64>,
    ) -> Result<u32> {
        let mut topo = write(&self.topology);
        let Some(queue) = topo.queues.get(name).cloned() else {
            return Ok(0); // idempotent, as in RabbitMQ
        };
        if let Some(id) = connection_id {
            queue.check_owner(id, &self.name)?;
        }
        let (ready, consumers) = queue.counts();
        if if_unused && consumers > 0 {
            return Err(precondition(format!("queue '{name}' in vhost '{}' in use", self.name)));
        }
        if if_empty && ready > 0 {
            return Err(precondition(format!("queue '{name}' in vhost '{}' not empty", self.name)));
        }
        topo.queues.remove(name);
        topo.remove_bindings_to(&Destination::Queue(name.to_owned()));
        drop(topo);
        queue.mark_deleted();
        Ok(ready)
    }

    /// Delete the exclusive queues of a closed connection.
    pub(super) fn drop_exclusive_queues(&self, connection_id: u64) {
        let owned: Vec<Arc<QueueState>> = read(&self.topology)
            .queues
            .values()
            .filter(|q| q.exclusive_owner == Some(connection_id))
            .cloned()
            .collect();
        for queue in owned {
            self.remove_queue_instance(&queue);
        }
    }

    /// Route and enqueue one message.
    pub(super) fn publish(&self, message: StoredMessage, mandatory: bool) -> Result<PublishOutcome> {
        let expires_in = match &message.content.properties.expiration {
            Some(text) => Some(Duration::from_millis(text.parse::<u64>().map_err(|_| {
                precondition(format!("invalid expiration '{text}': not a number of milliseconds"))
            })?)),
            None => None,
        };
        let topo = read(&self.topology);
        let exchange_name = message.exchange.as_str();
        if exchange_name.is_empty() {
            // The default exchange: the routing key names the queue.
            return Ok(match topo.queues.get(message.routing_key.as_str()) {
                Some(queue) => match queue.enqueue(message, false, expires_in) {
                    Ok(()) => PublishOutcome::Accepted,
                    Err(_) => PublishOutcome::Rejected,
                },
                None => unroutable(message, mandatory),
            });
        }
        let exchange = topo
            .exchanges
            .get(exchange_name)
            .ok_or_else(|| not_found("exchange", exchange_name, &self.name))?;
        if exchange.internal {
            return Err(access_refused(format!(
                "cannot publish to internal exchange '{exchange_name}' in vhost '{}'",
                self.name
            )));
        }
        let mut targets: Vec<&Arc<QueueState>> = Vec::new();
        let mut visited: Vec<&str> = Vec::new();
        topo.route(
            exchange_name,
            &message.routing_key,
            &message.content.properties.headers,
            &mut targets,
            &mut visited,
        );
        if targets.is_empty() {
            return Ok(unroutable(message, mandatory));
        }
        let mut rejected = false;
        let message = message;
        for queue in targets {
            rejected |= queue.enqueue(message.clone(), false, expires_in).is_err();
        }
        Ok(if rejected {
            PublishOutcome::Rejected
        } else {
            PublishOutcome::Accepted
        })
    }
}

impl QueueOwner for VirtualHost {
    /// Delete a queue that removed itself (auto-delete, expiry), if it is
    /// still the registered instance.
    fn remove_queue_instance(&self, queue: &Arc<QueueState>) {
        let mut topo = write(&self.topology);
        if topo
            .queues
            .get(queue.name.as_str())
            .is_some_and(|q| Arc::ptr_eq(q, queue))
        {
            topo.queues.remove(queue.name.as_str());
            topo.remove_bindings_to(&Destination::Queue(queue.name.to_string()));
            drop(topo);
            queue.mark_deleted();
        }
    }
}

fn unroutable(message: StoredMessage, mandatory: bool) -> PublishOutcome {
    if !mandatory {
        return PublishOutcome::Accepted;
    }
    PublishOutcome::Returned(ReturnedMessage {
        reply_code: NO_ROUTE,
        reply_text: SharedStr::from_static("NO_ROUTE"),
        exchange: message.exchange,
        routing_key: message.routing_key,
        properties: message.content.properties.clone(),
        body: message.content.body.clone(),
    })
}

impl Topology {
    /// Collect the queues an exchange routes to, following exchange-to-exchange
    /// bindings once each (cycles are allowed in AMQP and must not loop).
    fn route<'t>(
        &'t self,
        exchange_name: &str,
        routing_key: &str,
        headers: &FieldTable,
        targets: &mut Vec<&'t Arc<QueueState>>,
        visited: &mut Vec<&'t str>,
    ) {
        let Some((name, exchange)) = self.exchanges.get_key_value(exchange_name) else {
            return;
        };
        if visited.contains(&name.as_str()) {
            return;
        }
        visited.push(name);
        for binding in &exchange.bindings {
            let matched = match exchange.kind {
                ExchangeKind::Direct => binding.routing_key == routing_key,
                ExchangeKind::Topic => topic_matches(&binding.routing_key, routing_key),
                ExchangeKind::Fanout => true,
                ExchangeKind::Headers => headers_match(&binding.arguments, headers),
                ExchangeKind::Custom(_) => false,
            };
            if !matched {
                continue;
            }
            match &binding.destination {
                Destination::Queue(q) => {
                    if let Some(queue) = self.queues.get(q)
                        && !targets.iter().any(|t| Arc::ptr_eq(t, queue)) {
                            targets.push(queue);
                        }
                }
                Destination::Exchange(e) => self.route(e, routing_key, headers, targets, visited),
            }
        }
    }

    /// Remove every binding to `target`; auto-delete exchanges left without
    /// bindings go too.
    fn remove_bindings_to(&mut self, target: &Destination) {
        let mut emptied = Vec::new();
        for (name, exchange) in &mut self.exchanges {
            let before = exchange.bindings.len();
            exchange.bindings.retain(|b| b.destination != *target);
            if exchange.auto_delete && before > 0 && exchange.bindings.is_empty() {
                emptied.push(name.clone());
            }
        }
        for name in emptied {
            self.exchanges.remove(&name);
        }
    }
}

/// Queue arguments the broker acts on.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct QueueLimits {
    message_ttl: Option<Duration>,
    expires: Option<Duration>,
    max_length: Option<usize>,
    max_length_bytes: Option<usize>,
    reject_publish: bool,
    max_priority: Option<u8>,
}

impl QueueLimits {
    fn from_arguments(arguments: &FieldTable) -> Result<QueueLimits> {
        fn non_negative(arguments: &FieldTable, key: &str) -> Result<Option<u64>> {
            match arguments.get(key) {
                None => Ok(None),
                Some(v) => match v.as_i64() {
                    Some(n) if n >= 0 => Ok(Some(n as u64)),
                    _ => Err(precondition(format!(
                        "invalid arg '{key}': {v} is not a non-negative integer"
                    ))),
                },
            }
        }
        let overflow = match arguments.get("x-overflow") {
            None => false,
            Some(Value::String(s)) if s == "drop-head" => false,
            Some(Value::String(s)) if s == "reject-publish" || s == "reject-publish-dlx" => true,
            Some(other) => {
                return Err(precondition(format!("invalid arg 'x-overflow': {other}")));
            }
        };
        let expires = non_negative(arguments, "x-expires")?;
        if expires == Some(0) {
            return Err(precondition("invalid arg 'x-expires': must be positive".into()));
        }
        let max_priority = match non_negative(arguments, "x-max-priority")? {
            None => None,
            Some(p) if p <= 255 => Some(p as u8),
            Some(p) => {
                return Err(precondition(format!("invalid arg 'x-max-priority': {p} > 255")));
            }
        };
        Ok(QueueLimits {
            message_ttl: non_negative(arguments, "x-message-ttl")?.map(Duration::from_millis),
            expires: expires.map(Duration::from_millis),
            max_length: non_negative(arguments, "x-max-length")?.map(|n| n as usize),
            max_length_bytes: non_negative(arguments, "x-max-length-bytes")?.map(|n| n as usize),
            reject_publish: overflow,
            max_priority,
        })
    }
}

/// What a queue needs of the virtual host that owns it: to be taken out when
/// it deletes itself. A trait object, so that queues need not know the
/// virtual host; only auto-delete and `x-expires` call it, never a publish
/// or a delivery.
pub(super) trait QueueOwner: Send + Sync {
    /// Take `queue` out, if it is still the one registered under its name.
    fn remove_queue_instance(&self, queue: &Arc<QueueState>);
}

/// A queue: ready messages (by priority), consumers, and its settings.
pub(super) struct QueueState {
    pub(super) name: SharedStr,
    /// Weak: the virtual host owns its queues.
    vhost: Weak<dyn QueueOwner>,
    durable: bool,
    exclusive_owner: Option<u64>,
    auto_delete: bool,
    arguments: FieldTable,
    limits: QueueLimits,
    /// Ready messages are waiting for some consumer's credit.
    starved: AtomicBool,
    inner: Mutex<QueueInner>,
}

struct Queued {
    /// Shared: fanout copies, the unacked record and requeues cost a refcount.
    message: StoredMessage,
    redelivered: bool,
    expires_at: Option<Instant>,
}

struct QueueInner {
    /// One FIFO per priority level; a single one without `x-max-priority`.
    buckets: Vec<VecDeque<Queued>>,
    len: usize,
    bytes: usize,
    consumers: Vec<QueueConsumer>,
    next_consumer: usize,
    had_consumer: bool,
    deleted: bool,
    last_used: Instant,
}

struct QueueConsumer {
    tag: SharedStr,
    channel: Arc<ChannelShared<QueueState>>,
    no_ack: bool,
    prefetch: u32,
    credit: Arc<Credit>,
    exclusive: bool,
    sink: DeliverySender,
    epoch: u64,
}

/// Unacknowledged deliveries of one consumer. Atomic so that an ack frees
/// credit without taking the queue's lock (the publisher holds it often).
#[derive(Default)]
struct Credit {
    outstanding: AtomicU32,
}

/// Which message, on which channel, a consumer got.
struct Assignment {
    consumer: usize,
    queued: Queued,
}

impl QueueInner {
    fn new(max_priority: Option<u8>) -> QueueInner {
        let levels = max_priority.map_or(1, |p| usize::from(p) + 1);
        QueueInner {
            buckets: (0..levels).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: 0,
            consumers: Vec::new(),
            next_consumer: 0,
            had_consumer: false,
            deleted: false,
            last_used: Instant::now(),
        }
    }

    fn push(&mut self, priority: usize, queued: Queued, front: bool) {
        let level = priority.min(self.buckets.len() - 1);
        self.len += 1;
        self.bytes += queued.message.content.body.len();
        if let Some(bucket) = self.buckets.get_mut(level) {
            if front {
                bucket.push_front(queued);
            } else {
                bucket.push_back(queued);
            }
        }
    }

    /// The highest-priority non-expired message; expired heads are dropped,
    /// as RabbitMQ drops them when they reach the head of the queue.
    fn pop(&mut self) -> Option<Queued> {
        let mut now = None;
        for bucket in self.buckets.iter_mut().rev() {
            while let Some(head) = bucket.pop_front() {
                self.len -= 1;
                self.bytes -= head.message.content.body.len();
                if let Some(deadline) = head.expires_at
                    && *now.get_or_insert_with(Instant::now) >= deadline {
                        continue;
                    }
                return Some(head);
            }
        }
        None
    }

    /// Drop expired messages from the heads, so counts are right.
    fn expire_heads(&mut self) {
        let mut now = None;
        for bucket in self.buckets.iter_mut() {
            while let Some(head) = bucket.front() {
                match head.expires_at {
                    Some(deadline) if *now.get_or_insert_with(Instant::now) >= deadline => {
                        self.len -= 1;
                        self.bytes -= head.message.content.body.len();
                        bucket.pop_front();
                    }
                    _ => break,
                }
            }
        }
    }

    /// Pick the next consumer with credit, round-robin.
    fn next_ready_consumer(&mut self) -> Option<usize> {
        let n = self.consumers.len();
        for offset in 0..n {
            let i = (self.next_consumer + offset) % n;
            let c = &self.consumers[i];
            if (c.no_ack || c.prefetch == 0 || c.credit.outstanding.load(Ordering::SeqCst) < c.prefetch)
                && c.channel.reserve_global_credit(c.no_ack)
            {
                self.next_consumer = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }
}

impl QueueState {
    fn check_owner(&self, connection_id: u64, vhost: &str) -> Result<()> {
        match self.exclusive_owner {
            Some(owner) if owner != connection_id => Err(Error::channel_closed(
                RESOURCE_LOCKED,
                format!(
                    "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{}' in vhost '{vhost}'",
                    self.name
                ),
            )),
            _ => Ok(()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, QueueInner> {
        lock(&self.inner)
    }

    /// (ready messages, consumers)
    pub(super) fn counts(&self) -> (u32, u32) {
        let mut inner = self.inner();
        inner.expire_heads();
        (
            u32::try_from(inner.len).unwrap_or(u32::MAX),
            u32::try_from(inner.consumers.len()).unwrap_or(u32::MAX),
        )
    }

    fn touch(&self) {
        if self.limits.expires.is_some() {
            self.inner().last_used = Instant::now();
        }
    }

    fn mark_deleted(&self) {
        let consumers = {
            let mut inner = self.inner();
            inner.deleted = true;
            for bucket in &mut inner.buckets {
                bucket.clear();
            }
            inner.len = 0;
            inner.bytes = 0;
            std::mem::take(&mut inner.consumers)
        };
        for consumer in consumers {
            consumer.channel.forget_consumer(&consumer.tag);
            // The consumer may be gone already; then nobody needs telling.
            let _ = consumer
                .sink
                .send(ConsumerEvent::Cancelled(consumer.tag, CancelReason::QueueDeleted));
        }
    }

    /// Add a message; `Err(())` when refused by `x-overflow=reject-publish`.
    fn enqueue(
        self: &Arc<Self>,
        message: StoredMessage,
        redelivered: bool,
        expires_in: Option<Duration>,
    ) -> std::result::Result<(), ()> {
        let ttl = match (self.limits.message_ttl, expires_in) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let expires_at = ttl.map(|ttl| Instant::now() + ttl);
        let priority = usize::from(message.content.properties.priority.unwrap_or(0));
        let size = message.content.body.len();
        let mut inner = self.inner();
        if inner.deleted {
            return Ok(());
        }
        let limits = &self.limits;
        let over = |inner: &QueueInner, extra_len: usize, extra_bytes: usize| {
            limits.max_length.is_some_and(|max| inner.len + extra_len > max)
                || limits
                    .max_length_bytes
                    .is_some_and(|max| inner.bytes + extra_bytes > max)
        };
        if over(&inner, 1, size) {
            if limits.reject_publish {
                return Err(());
            }
            // drop-head: make room by discarding the oldest messages.
            while inner.len > 0 && over(&inner, 1, size) {
                inner.pop();
            }
            if over(&inner, 1, size) {
                return Ok(()); // a single message larger than the byte limit
            }
        }
        if limits.expires.is_some() {
            inner.last_used = Instant::now();
        }
        inner.push(
            priority,
            Queued {
                message,
                redelivered,
                expires_at,
            },
            false,
        );
        if !inner.consumers.is_empty() {
            self.dispatch(inner);
        }
        Ok(())
    }

    /// Hand ready messages to consumers with credit. Consumes the guard: the
    /// lock is released before any auto-delete touches the virtual host.
    fn dispatch(self: &Arc<Self>, mut inner: MutexGuard<'_, QueueInner>) {
        let mut vanished = false;
        while inner.len > 0 {
            let index = match inner.next_ready_consumer() {
                Some(index) => index,
                None => {
                    // Messages wait for credit: acks must come and kick us.
                    // Announce it, then look again, so an ack that freed
                    // credit just before the announcement is not missed.
                    self.starved.store(true, Ordering::SeqCst);
                    match inner.next_ready_consumer() {
                        Some(index) => index,
                        None => break,
                    }
                }
            };
            self.starved.store(false, Ordering::Relaxed);
            let Some(queued) = inner.pop() else {
                // Only expired messages were left: give the credit back.
                if let Some(c) = inner.consumers.get(index) {
                    c.channel.release_global_credit(c.no_ack, 1);
                }
                break;
            };
            if let Err(returned) = self.deliver(&mut inner, Assignment { consumer: index, queued }) {
                // The consumer's receiver is gone: cancel it, keep the message.
                let consumer = inner.consumers.remove(index);
                consumer.channel.forget_consumer(&consumer.tag);
                inner.next_consumer = 0;
                inner.push(
                    usize::from(returned.message.content.properties.priority.unwrap_or(0)),
                    returned,
                    true,
                );
                vanished = true;
            }
        }
        let delete_now = vanished && self.auto_delete && inner.consumers.is_empty();
        drop(inner);
        if delete_now {
            self.auto_delete_now();
        }
    }

    fn deliver(
        self: &Arc<Self>,
        inner: &mut QueueInner,
        assignment: Assignment,
    ) -> std::result::Result<(), Queued> {
        let Assignment { consumer, queued } = assignment;
        let Some(c) = inner.consumers.get_mut(consumer) else {
            return Err(queued);
        };
        let Queued {
            message,
            redelivered,
            ..
        } = queued;
        let (delivery_tag, delivery) = if c.no_ack {
            let tag = c.channel.next_tag.fetch_add(1, Ordering::Relaxed);
            (tag, to_delivery(message, redelivered, Some(c.tag.clone()), tag, c.epoch))
        } else {
            c.credit.outstanding.fetch_add(1, Ordering::SeqCst);
            let tag = c.channel.track(self, Some(&c.credit), message.clone());
            (tag, to_delivery(message, redelivered, Some(c.tag.clone()), tag, c.epoch))
        };
        match c.sink.send(ConsumerEvent::Delivery(delivery)) {
            Ok(()) => Ok(()),
            Err(failed) => {
                c.channel.release_global_credit(c.no_ack, 1);
                let message = if c.no_ack {
                    match failed.0 {
                        ConsumerEvent::Delivery(d) => StoredMessage {
                            exchange: d.info.exchange,
                            routing_key: d.info.routing_key,
                            content: d.content,
                        },
                        ConsumerEvent::Cancelled(..) => return Ok(()),
                    }
                } else {
                    c.credit.outstanding.fetch_sub(1, Ordering::SeqCst);
                    match c.channel.untrack(delivery_tag) {
                        Some(entry) => entry.message,
                        None => return Ok(()),
                    }
                };
                Err(Queued {
                    message,
                    redelivered,
                    expires_at: None,
                })
            }
        }
    }

    fn auto_delete_now(self: &Arc<Self>) {
        if let Some(vhost) = self.vhost.upgrade() {
            vhost.remove_queue_instance(self);
        }
    }

    /// Register a consumer.
    pub(super) fn add_consumer(
        self: &Arc<Self>,
        channel: Arc<ChannelShared<QueueState>>,
        tag: SharedStr,
        no_ack: bool,
        exclusive: bool,
        sink: DeliverySender,
        epoch: u64,
        vhost: &str,
    ) -> Result<()> {
        let mut inner = self.inner();
        if inner.deleted {
            return Err(not_found("queue", &self.name, vhost));
        }
        if inner.consumers.iter().any(|c| c.exclusive) || (exclusive && !inner.consumers.is_empty()) {
            return Err(Error::channel_closed(
                ACCESS_REFUSED,
                format!(
                    "ACCESS_REFUSED - queue '{}' in vhost '{vhost}' in exclusive use",
                    self.name
                ),
            ));
        }
        let prefetch = channel.prefetch.load(Ordering::Relaxed);
        inner.consumers.push(QueueConsumer {
            tag,
            channel,
            no_ack,
            prefetch,
            credit: Arc::new(Credit::default()),
            exclusive,
            sink,
            epoch,
        });
        inner.had_consumer = true;
        self.dispatch(inner);
        Ok(())
    }

    /// Remove a consumer by tag on a channel; auto-deletes the queue when it
    /// was the last one.
    pub(super) fn remove_consumer(self: &Arc<Self>, channel: &Arc<ChannelShared<QueueState>>, tag: &str) {
        let mut inner = self.inner();
        let before = inner.consumers.len();
        inner
            .consumers
            .retain(|c| !(Arc::ptr_eq(&c.channel, channel) && c.tag.as_str() == tag));
        let removed = inner.consumers.len() != before;
        inner.next_consumer = 0;
        let delete_now = removed && self.auto_delete && inner.had_consumer && inner.consumers.is_empty();
        if self.limits.expires.is_some() {
            inner.last_used = Instant::now();
        }
        drop(inner);
        if delete_now {
            self.auto_delete_now();
        }
    }

    /// Take one message for basic.get.
    pub(super) fn get(self: &Arc<Self>, channel: &Arc<ChannelShared<QueueState>>, no_ack: bool) -> Option<Delivery> {
        let mut inner = self.inner();
        if self.limits.expires.is_some() {
            inner.last_used = Instant::now();
        }
        let queued = inner.pop()?;
        drop(inner);
        let Queued {
            message,
            redelivered,
            ..
        } = queued;
        if no_ack {
            let tag = channel.next_tag.fetch_add(1, Ordering::Relaxed);
            return Some(to_delivery(message, redelivered, None, tag, 0));
        }
        let tag = channel.track(self, None, message.clone());
        Some(to_delivery(message, redelivered, None, tag, 0))
    }

    pub(super) fn purge(&self) -> u32 {
        let mut inner = self.inner();
        inner.expire_heads();
        let n = inner.len;
        for bucket in &mut inner.buckets {
            bucket.clear();
        }
        inner.len = 0;
        inner.bytes = 0;
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

impl Redeliver for QueueState {
    fn is_starved(&self) -> bool {
        self.starved.load(Ordering::SeqCst)
    }

    /// Put a message back at the head of its priority level, redelivered.
    fn requeue(self: &Arc<Self>, message: StoredMessage) {
        let priority = usize::from(message.content.properties.priority.unwrap_or(0));
        let mut inner = self.inner();
        if inner.deleted {
            return;
        }
        inner.push(
            priority,
            Queued {
                message,
                redelivered: true,
                expires_at: None,
            },
            true,
        );
        if !inner.consumers.is_empty() {
            self.dispatch(inner);
        }
    }

    /// Dispatch whatever can be dispatched now.
    fn kick(self: &Arc<Self>) {
        let inner = self.inner();
        if inner.len > 0 && !inner.consumers.is_empty() {
            self.dispatch(inner);
        }
    }
}

/// A delivery of `message` (its content is shared with the broker's unacked
/// record, not copied).
fn to_delivery(
    message: StoredMessage,
    redelivered: bool,
    consumer_tag: Option<SharedStr>,
    delivery_tag: u64,
    epoch: u64,
) -> Delivery {
    Delivery {
        epoch,
        info: DeliveryInfo {
            exchange: message.exchange,
            routing_key: message.routing_key,
            redelivered,
            consumer_tag,
            delivery_tag,
        },
        content: message.content,
    }
}

/// Watch an `x-expires` queue and delete it once unused for that long.
fn spawn_expiry_watch(queue: Weak<QueueState>, expires: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::debug!("x-expires needs a tokio runtime to be enforced on memory://");
        return;
    };
    runtime.spawn(async move {
        let mut wait = expires;
        loop {
            tokio::time::sleep(wait).await;
            let Some(queue) = queue.upgrade() else { return };
            let idle_for = {
                let inner = queue.inner();
                if inner.deleted {
                    return;
                }
                if !inner.consumers.is_empty() {
                    Duration::ZERO
                } else {
                    inner.last_used.elapsed()
                }
            };
            if idle_for >= expires {
                if let Some(vhost) = queue.vhost.upgrade() {
                    vhost.remove_queue_instance(&queue);
                }
                return;
            }
            wait = if idle_for.is_zero() { expires } else { expires - idle_for };
        }
    });
}

// ---------------------------------------------------------------------------
// Channel state that the broker touches while delivering.

/// What a channel needs of the queues its deliveries came from, once it has
/// settled them and let go of its lock. A type parameter, not a trait object,
/// so an ack compiles to the same direct calls; the queue implements it.
pub(super) trait Redeliver {
    /// Ready messages are waiting for some consumer's credit.
    fn is_starved(&self) -> bool;
    /// Take a message back for redelivery.
    fn requeue(self: &Arc<Self>, message: StoredMessage);
    /// Deliver again, now that credit was freed.
    fn kick(self: &Arc<Self>);
}

/// Where unacknowledged deliveries came from. Entries refer to an origin by
/// index so that tracking a delivery touches no shared reference count.
struct Origin<Q> {
    queue: Arc<Q>,
    credit: Option<Arc<Credit>>,
}

struct UnackedEntry {
    origin: u32,
    message: StoredMessage,
}

struct Unacked<Q> {
    /// Delivery tag of `slots[0]`.
    base: u64,
    slots: VecDeque<Option<UnackedEntry>>,
    origins: Vec<Origin<Q>>,
}

impl<Q> Default for Unacked<Q> {
    fn default() -> Self {
        Unacked {
            base: 0,
            slots: VecDeque::new(),
            origins: Vec::new(),
        }
    }
}

/// What must happen after an entry was taken out, outside the channel's lock.
struct Settled<Q> {
    queue: Arc<Q>,
    message: Option<StoredMessage>,
}

impl<Q: Redeliver> Unacked<Q> {
    fn origin_index(&mut self, queue: &Arc<Q>, credit: Option<&Arc<Credit>>) -> u32 {
        let found = self.origins.iter().position(|o| {
            Arc::ptr_eq(&o.queue, queue)
                && match (&o.credit, credit) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                }
        });
        let index = found.unwrap_or_else(|| {
            if self.slots.is_empty() && self.origins.len() >= 64 {
                self.origins.clear(); // forget origins of long-gone consumers
            }
            self.origins.push(Origin {
                queue: queue.clone(),
                credit: credit.cloned(),
            });
            self.origins.len() - 1
        });
        u32::try_from(index).unwrap_or(u32::MAX)
    }

    fn take(&mut self, tag: u64) -> Option<UnackedEntry> {
        let index = usize::try_from(tag.checked_sub(self.base)?).ok()?;
        let entry = self.slots.get_mut(index)?.take();
        self.compact();
        entry
    }

    fn take_up_to(&mut self, tag: u64) -> Vec<UnackedEntry> {
        let mut taken = Vec::new();
        while self.base <= tag {
            match self.slots.pop_front() {
                Some(slot) => {
                    self.base += 1;
                    taken.extend(slot);
                }
                None => break,
            }
        }
        self.compact();
        taken
    }

    fn compact(&mut self) {
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        if self.slots.is_empty() {
            // Keep the invariant base == next tag to be tracked.
            self.base = 0;
        }
    }

    /// Free the entry's credit; return what still needs the queue's lock
    /// (a requeue, or a starved queue to kick), if anything.
    fn release(&self, entry: UnackedEntry, requeue: bool) -> Option<Settled<Q>> {
        let origin = self.origins.get(entry.origin as usize)?;
        if let Some(credit) = &origin.credit {
            credit.outstanding.fetch_sub(1, Ordering::SeqCst);
        }
        if requeue {
            return Some(Settled {
                queue: origin.queue.clone(),
                message: Some(entry.message),
            });
        }
        // Only messages held back for lack of credit need the queue now.
        origin.queue.is_starved().then(|| Settled {
            queue: origin.queue.clone(),
            message: None,
        })
    }
}

impl<Q: Redeliver> Settled<Q> {
    fn finish(self) {
        match self.message {
            Some(message) => self.queue.requeue(message),
            None => self.queue.kick(),
        }
    }
}

/// What the broker knows of a channel.
pub(super) struct ChannelShared<Q> {
    pub(super) open: AtomicBool,
    pub(super) next_tag: AtomicU64,
    /// basic.qos prefetch for consumers created from now on (0 = unlimited).
    pub(super) prefetch: AtomicU32,
    /// basic.qos global prefetch shared by the channel's consumers.
    global_prefetch: AtomicU32,
    global_outstanding: AtomicU32,
    unacked: Mutex<Unacked<Q>>,
    /// consumer tag → queue
    pub(super) consumers: Mutex<HashMap<SharedStr, Arc<Q>>>,
}

impl<Q: Redeliver> ChannelShared<Q> {
    pub(super) fn new() -> ChannelShared<Q> {
        ChannelShared {
            open: AtomicBool::new(true),
            next_tag: AtomicU64::new(1),
            prefetch: AtomicU32::new(0),
            global_prefetch: AtomicU32::new(0),
            global_outstanding: AtomicU32::new(0),
            unacked: Mutex::new(Unacked::default()),
            consumers: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn set_global_prefetch(&self, n: u32) {
        self.global_prefetch.store(n, Ordering::Relaxed);
    }

    /// Take one unit of channel-wide credit (basic.qos global).
    fn reserve_global_credit(&self, no_ack: bool) -> bool {
        let limit = self.global_prefetch.load(Ordering::Relaxed);
        if no_ack || limit == 0 {
            return true;
        }
        self.global_outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| (n < limit).then_some(n + 1))
            .is_ok()
    }

    fn release_global_credit(&self, no_ack: bool, n: u32) {
        if !no_ack && self.global_prefetch.load(Ordering::Relaxed) != 0 {
            let _ = self
                .global_outstanding
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
        }
    }

    /// Record an unacknowledged delivery; returns its delivery tag.
    fn track(&self, queue: &Arc<Q>, credit: Option<&Arc<Credit>>, message: StoredMessage) -> u64 {
        let mut unacked = lock(&self.unacked);
        let origin = unacked.origin_index(queue, credit);
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        if unacked.slots.is_empty() {
            unacked.base = tag;
        }
        let index = usize::try_from(tag - unacked.base).unwrap_or(usize::MAX);
        while unacked.slots.len() < index {
            unacked.slots.push_back(None);
        }
        unacked.slots.push_back(Some(UnackedEntry { origin, message }));
        tag
    }

    fn untrack(&self, tag: u64) -> Option<UnackedEntry> {
        lock(&self.unacked).take(tag)
    }

    fn forget_consumer(&self, tag: &str) {
        lock(&self.consumers).remove(tag);
    }

    /// Settle deliveries: ack (`requeue == None`), or reject/nack with or
    /// without requeue. An unknown tag is a channel error, as in AMQP.
    pub(super) fn settle(&self, tag: u64, multiple: bool, requeue: Option<bool>) -> Result<()> {
        let requeue = requeue == Some(true);
        if multiple {
            let after: Vec<Settled<Q>> = {
                let mut unacked = lock(&self.unacked);
                let entries = unacked.take_up_to(if tag == 0 { u64::MAX } else { tag });
                self.release_global_credit(false, u32::try_from(entries.len()).unwrap_or(u32::MAX));
                entries
                    .into_iter()
                    .filter_map(|e| unacked.release(e, requeue))
                    .collect()
            };
            after.into_iter().for_each(Settled::finish);
        } else {
            // The common case, one ack: no allocation, no reference count.
            let after = {
                let mut unacked = lock(&self.unacked);
                let Some(entry) = unacked.take(tag) else {
                    return Err(precondition(format!("unknown delivery tag {tag}")));
                };
                unacked.release(entry, requeue)
            };
            self.release_global_credit(false, 1);
            if let Some(after) = after {
                after.finish();
            }
        }
        if self.global_prefetch.load(Ordering::Relaxed) != 0 {
            self.kick_consumers();
        }
        Ok(())
    }

    /// Let every queue this channel consumes from deliver again (after
    /// channel-wide credit was freed).
    fn kick_consumers(&self) {
        let queues: Vec<Arc<Q>> = lock(&self.consumers).values().cloned().collect();
        for queue in queues {
            queue.kick();
        }
    }

    /// Requeue every unacknowledged delivery (channel close, basic.recover).
    pub(super) fn requeue_all(&self) {
        let after: Vec<Settled<Q>> = {
            let mut unacked = lock(&self.unacked);
            let entries = unacked.take_up_to(u64::MAX);
            self.release_global_credit(false, u32::try_from(entries.len()).unwrap_or(u32::MAX));
            entries
                .into_iter()
                .filter_map(|e| unacked.release(e, true))
                .collect()
        };
        after.into_iter().for_each(Settled::finish);
    }
}
