//! `memory://`: an in-process broker with AMQP semantics, the embedded
//! default. Every connection in the process with the same virtual host
//! shares one broker, so producers and consumers in different tasks or
//! threads talk to each other as they would through RabbitMQ.
//!
//! A channel error (404, 406, 403, 405...) closes the channel, as on a real
//! broker, so code that works here keeps working on AMQP.
//!
//! The in-process broker behind `memory://`: virtual hosts, exchanges,
//! bindings and queues with AMQP 0-9-1 semantics (and RabbitMQ's queue
//! arguments: TTL, max-length with overflow, priorities, expiry).
//!
//! Locking: a virtual host's topology sits behind one `RwLock` (publishers
//! take it shared); each queue has its own `Mutex` for its messages and
//! consumers; each channel has a `Mutex` for its unacknowledged deliveries.
//! The only nesting is vhost → queue → channel-unacked, never the reverse.
//!
//! The files follow the same order, each using only those below it: this
//! file (the transport API) on `vhost` (exchanges, bindings, routing, the
//! queues by name), on `queue` (a queue's messages, consumers and dispatch),
//! on `unacked` (a channel's unacknowledged deliveries and credit), on
//! `message`, `errors` and `locks`.

mod errors;
mod locks;
mod message;
mod queue;
mod unacked;
mod vhost;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use locks::lock;
use message::StoredMessage;
use queue::QueueState;
use unacked::ChannelShared;
use vhost::{ExchangeSpec, PublishOutcome, QueueSpec, VirtualHost};

use crate::transport::api::{Capabilities, Confirm, Transport, TransportChannel};
use crate::transport::types::{BindArgs, CancelReason, ConnectOptions, ConsumeArgs, ConsumerEvent, Delivery, DeliverySender, ExchangeDeclare, OutgoingMessage, QueueDeclare, QueueDeclareOk};
use crate::error::reply_code::NOT_ALLOWED;
use crate::url::BrokerUrl;
use crate::content::text::SharedStr;
use crate::error::{Error, ErrorKind, Result};

/// A connection to the in-process broker.
pub(crate) struct MemoryTransport {
    connection: Arc<MemoryConnection>,
}

struct MemoryConnection {
    id: u64,
    vhost: Arc<VirtualHost>,
    open: AtomicBool,
    closed_notify: tokio::sync::Notify,
    channels: Mutex<Vec<Weak<ChannelInner>>>,
}

/// A channel on a `memory://` connection.
#[derive(Clone)]
pub(crate) struct MemoryChannel {
    inner: Arc<ChannelInner>,
}

struct ChannelInner {
    connection: Arc<MemoryConnection>,
    shared: Arc<ChannelShared<QueueState>>,
    confirm: AtomicBool,
    /// Why the broker closed this channel, when it did.
    closed_with: Mutex<Option<(u16, String)>>,
    /// consumer tag → the consumer's sink, to tell it when the channel dies.
    sinks: Mutex<HashMap<SharedStr, DeliverySender>>,
}

impl Transport for MemoryTransport {
    type Channel = MemoryChannel;

    async fn connect(url: &BrokerUrl, _options: &ConnectOptions) -> Result<MemoryTransport> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(MemoryTransport {
            connection: Arc::new(MemoryConnection {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                vhost: vhost::virtual_host(url.virtual_host()),
                open: AtomicBool::new(true),
                closed_notify: tokio::sync::Notify::new(),
                channels: Mutex::new(Vec::new()),
            }),
        })
    }

    async fn open_channel(&self, _confirms: crate::transport::confirm::SharedConfirms) -> Result<MemoryChannel> {
        if !self.is_open() {
            return Err(Error::connection("the memory:// connection is closed"));
        }
        let inner = Arc::new(ChannelInner {
            connection: self.connection.clone(),
            shared: Arc::new(ChannelShared::new()),
            confirm: AtomicBool::new(false),
            closed_with: Mutex::new(None),
            sinks: Mutex::new(HashMap::new()),
        });
        let mut channels = lock(&self.connection.channels);
        channels.retain(|c| c.strong_count() > 0);
        channels.push(Arc::downgrade(&inner));
        Ok(MemoryChannel { inner })
    }

    fn is_open(&self) -> bool {
        self.connection.open.load(Ordering::Acquire)
    }

    fn closed(&self) -> impl std::future::Future<Output = Error> + Send + 'static {
        // An in-process broker is never lost; only the application closes it.
        let connection = self.connection.clone();
        async move {
            connection.closed_notify.notified().await;
            Error::closed("the memory:// connection was closed")
        }
    }

    async fn close(&self) -> Result<()> {
        self.connection.close();
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            publisher_confirms: true,
            topic: true,
            fanout: true,
            headers: true,
            priorities: true,
            strict_priorities: true,
            message_ttl: true,
            exchange_bindings: true,
            max_length: true,
            checks_exchanges: true,
            direct_reply_to: false,
        }
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.connection.close();
    }
}

impl MemoryConnection {
    fn close(&self) {
        if !self.open.swap(false, Ordering::AcqRel) {
            return;
        }
        let channels: Vec<Arc<ChannelInner>> = lock(&self.channels)
            .drain(..)
            .filter_map(|c| c.upgrade())
            .collect();
        for channel in channels {
            channel.shutdown(None);
        }
        self.vhost.drop_exclusive_queues(self.id);
        self.closed_notify.notify_waiters();
    }
}

impl ChannelInner {
    /// Close the channel: cancel its consumers (telling them why when the
    /// broker closed it) and requeue what it had not acknowledged.
    fn shutdown(&self, reason: Option<(u16, String)>) {
        if !self.shared.open.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Some(reason) = &reason {
            *lock(&self.closed_with) = Some(reason.clone());
        }
        let consumers: Vec<(SharedStr, Arc<QueueState>)> =
            lock(&self.shared.consumers).drain().collect();
        let mut sinks = std::mem::take(&mut *lock(&self.sinks));
        for (tag, queue) in consumers {
            queue.remove_consumer(&self.shared, &tag);
            if let (Some(sink), Some((code, text))) = (sinks.remove(&tag), &reason) {
                let _ = sink.send(ConsumerEvent::Cancelled(
                    tag,
                    CancelReason::ChannelClosed(*code, text.clone()),
                ));
            }
        }
        self.shared.requeue_all();
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.open.load(Ordering::Acquire) && self.connection.open.load(Ordering::Acquire) {
            return Ok(());
        }
        if !self.connection.open.load(Ordering::Acquire) {
            return Err(Error::connection("the memory:// connection is closed"));
        }
        match &*lock(&self.closed_with) {
            Some((code, text)) => Err(Error::channel_closed(*code, text.clone())),
            None => Err(Error::closed("the channel is closed")),
        }
    }

    /// A channel error closes the channel, as AMQP brokers do.
    fn fail<T>(&self, error: Error) -> Result<T> {
        if error.kind() == ErrorKind::Channel
            && let (Some(code), Some(text)) = (error.reply_code(), error.reply_text()) {
                self.shutdown(Some((code, text.to_owned())));
            }
        Err(error)
    }

    fn guard<T>(&self, op: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        self.check_open()?;
        match op(self) {
            Ok(v) => Ok(v),
            Err(e) => self.fail(e),
        }
    }

    fn vhost(&self) -> &VirtualHost {
        &self.connection.vhost
    }

    fn conn_id(&self) -> u64 {
        self.connection.id
    }
}

impl TransportChannel for MemoryChannel {
    fn is_open(&self) -> bool {
        self.inner.check_open().is_ok()
    }

    async fn close(&self) -> Result<()> {
        self.inner.shutdown(None);
        Ok(())
    }

    async fn exchange_declare(&self, args: &ExchangeDeclare) -> Result<()> {
        self.inner.guard(|c| {
            c.vhost().declare_exchange(ExchangeSpec {
                name: &args.name,
                kind: &args.kind,
                passive: args.passive,
                durable: args.durable,
                auto_delete: args.auto_delete,
                internal: args.internal,
                arguments: &args.arguments,
            })
        })
    }

    async fn exchange_delete(&self, name: &str, if_unused: bool) -> Result<()> {
        self.inner.guard(|c| c.vhost().delete_exchange(name, if_unused))
    }

    async fn exchange_bind(&self, args: &BindArgs) -> Result<()> {
        self.inner.guard(|c| {
            c.vhost().bind(false, &args.destination, &args.source, &args.routing_key, &args.arguments, c.conn_id())
        })
    }

    async fn exchange_unbind(&self, args: &BindArgs) -> Result<()> {
        self.inner.guard(|c| {
            c.vhost().unbind(false, &args.destination, &args.source, &args.routing_key, &args.arguments, c.conn_id())
        })
    }

    async fn queue_declare(&self, args: &QueueDeclare) -> Result<QueueDeclareOk> {
        self.inner.guard(|c| {
            let (queue, message_count, consumer_count) =
                c.connection.vhost.declare_queue(QueueSpec {
                    name: &args.name,
                    passive: args.passive,
                    durable: args.durable,
                    exclusive: args.exclusive,
                    auto_delete: args.auto_delete,
                    arguments: &args.arguments,
                    connection_id: c.conn_id(),
                })?;
            Ok(QueueDeclareOk {
                name: queue.name.to_string(),
                message_count,
                consumer_count,
            })
        })
    }

    async fn queue_bind(&self, args: &BindArgs) -> Result<()> {
        self.inner.guard(|c| {
            c.vhost().bind(true, &args.destination, &args.source, &args.routing_key, &args.arguments, c.conn_id())
        })
    }

    async fn queue_unbind(&self, args: &BindArgs) -> Result<()> {
        self.inner.guard(|c| {
            c.vhost().unbind(true, &args.destination, &args.source, &args.routing_key, &args.arguments, c.conn_id())
        })
    }

    async fn queue_purge(&self, name: &str) -> Result<u32> {
        self.inner
            .guard(|c| Ok(c.vhost().lookup_queue(name, c.conn_id())?.purge()))
    }

    async fn queue_delete(&self, name: &str, if_unused: bool, if_empty: bool) -> Result<u32> {
        self.inner
            .guard(|c| c.vhost().delete_queue(name, if_unused, if_empty, Some(c.conn_id())))
    }

    async fn qos(&self, prefetch_count: u16, global: bool) -> Result<()> {
        self.inner.guard(|c| {
            if global {
                c.shared.set_global_prefetch(u32::from(prefetch_count));
            } else {
                c.shared.prefetch.store(u32::from(prefetch_count), Ordering::Relaxed);
            }
            Ok(())
        })
    }

    async fn confirm_select(&self) -> Result<()> {
        self.inner.guard(|c| {
            c.confirm.store(true, Ordering::Relaxed);
            Ok(())
        })
    }

    async fn publish(&self, message: OutgoingMessage) -> Result<Confirm> {
        self.inner.guard(|c| {
            let stored = StoredMessage {
                exchange: message.exchange,
                routing_key: message.routing_key,
                content: message.content,
            };
            let outcome = c.vhost().publish(stored, message.mandatory)?;
            let confirming = c.confirm.load(Ordering::Relaxed);
            Ok(Confirm::ready(match outcome {
                PublishOutcome::Accepted => Ok(()),
                PublishOutcome::Returned(returned) => Err(Error::new(
                    ErrorKind::Unroutable,
                    format!(
                        "no queue is bound to exchange '{}' with routing key '{}'",
                        returned.exchange, returned.routing_key
                    ),
                )
                .with_reply(returned.reply_code, returned.reply_text.to_string())
                .with_returned(*returned)),
                PublishOutcome::Rejected if confirming => Err(Error::new(
                    ErrorKind::Nacked,
                    "a queue refused the message (x-overflow=reject-publish, queue full)",
                )),
                PublishOutcome::Rejected => Ok(()),
            }))
        })
    }

    fn resend(&self, unsent: Vec<(u64, OutgoingMessage)>) -> Result<()> {
        // An in-process broker never loses a connection, so nothing is ever
        // left unconfirmed; publish anyway if asked.
        self.inner.guard(|c| {
            for (_, message) in unsent {
                c.vhost().publish(
                    StoredMessage {
                        exchange: message.exchange,
                        routing_key: message.routing_key,
                        content: message.content,
                    },
                    message.mandatory,
                )?;
            }
            Ok(())
        })
    }

    async fn consume(&self, args: ConsumeArgs, sink: DeliverySender) -> Result<SharedStr> {
        self.inner.guard(|c| {
            let queue = c.vhost().lookup_queue(&args.queue, c.conn_id())?;
            let tag = args.consumer_tag;
            {
                let mut consumers = lock(&c.shared.consumers);
                if consumers.contains_key(&tag) {
                    return Err(Error::channel_closed(
                        NOT_ALLOWED,
                        format!("NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"),
                    ));
                }
                consumers.insert(tag.clone(), queue.clone());
            }
            lock(&c.sinks).insert(tag.clone(), sink.clone());
            let added = queue.add_consumer(
                c.shared.clone(),
                tag.clone(),
                args.no_ack,
                args.exclusive,
                sink,
                args.epoch,
                c.vhost().name(),
            );
            if let Err(e) = added {
                lock(&c.shared.consumers).remove(&tag);
                lock(&c.sinks).remove(&tag);
                return Err(e);
            }
            Ok(tag)
        })
    }

    async fn cancel(&self, consumer_tag: &str) -> Result<()> {
        self.inner.guard(|c| {
            let queue = lock(&c.shared.consumers).remove(consumer_tag);
            lock(&c.sinks).remove(consumer_tag);
            if let Some(queue) = queue {
                queue.remove_consumer(&c.shared, consumer_tag);
            }
            Ok(())
        })
    }

    async fn get(&self, queue: &str, no_ack: bool) -> Result<Option<Delivery>> {
        self.inner.guard(|c| {
            let queue = c.vhost().lookup_queue(queue, c.conn_id())?;
            Ok(queue.get(&c.shared, no_ack))
        })
    }

    async fn ack(&self, delivery_tag: u64, multiple: bool) -> Result<()> {
        self.inner
            .guard(|c| c.shared.settle(delivery_tag, multiple, None))
    }

    async fn nack(&self, delivery_tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        self.inner
            .guard(|c| c.shared.settle(delivery_tag, multiple, Some(requeue)))
    }

    async fn reject(&self, delivery_tag: u64, requeue: bool) -> Result<()> {
        self.inner
            .guard(|c| c.shared.settle(delivery_tag, false, Some(requeue)))
    }

    async fn recover(&self, requeue: bool) -> Result<()> {
        self.inner.guard(|c| {
            if !requeue {
                return Err(Error::unsupported(
                    "basic.recover without requeue is not supported (nor by RabbitMQ)",
                ));
            }
            c.shared.requeue_all();
            Ok(())
        })
    }
}
