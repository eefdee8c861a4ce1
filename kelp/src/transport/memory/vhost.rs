//! Virtual hosts: exchanges, bindings and queues by name, declarations, and
//! routing a publish.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use rustc_hash::FxBuildHasher as FastHash;

use crate::content::exchange::ExchangeKind;
use crate::content::message::ReturnedMessage;
use crate::content::text::SharedStr;
use crate::content::value::{FieldTable, Value};
use crate::error::reply_code::{COMMAND_INVALID, NO_ROUTE};
use crate::error::{Error, Result};
use crate::transport::routing::{headers_match, topic_matches};

use super::errors::{access_refused, not_found, precondition};
use super::locks::{lock, read, write};
use super::message::StoredMessage;
use super::queue::{QueueInner, QueueLimits, QueueOwner, QueueState, spawn_expiry_watch};

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

/// The result of routing one publish.
pub(super) enum PublishOutcome {
    /// Delivered to at least one queue, or dropped as unroutable without `mandatory`.
    Accepted,
    /// Nobody took it and it was `mandatory`.
    /// Boxed: rare, and it would make every outcome as large as a message.
    Returned(Box<ReturnedMessage>),
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
    PublishOutcome::Returned(Box::new(ReturnedMessage {
        reply_code: NO_ROUTE,
        reply_text: SharedStr::from_static("NO_ROUTE"),
        exchange: message.exchange,
        routing_key: message.routing_key,
        properties: message.content.properties.clone(),
        body: message.content.body.clone(),
    }))
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
