//! Queues: ready messages by priority, TTL and length limits, consumers and
//! dispatch to them, auto-delete and `x-expires`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

// tokio's clock, so that tests can pause and advance it (the same as
// std's outside them).
use tokio::time::Instant;

use crate::content::text::SharedStr;
use crate::content::value::{FieldTable, Value};
use crate::error::reply_code::{ACCESS_REFUSED, RESOURCE_LOCKED};
use crate::error::{Error, Result};
use crate::transport::types::{CancelReason, ConsumerEvent, Delivery, DeliverySender};

use super::errors::{not_found, precondition};
use super::locks::lock;
use super::message::{StoredMessage, to_delivery};
use super::unacked::{ChannelShared, Credit, Redeliver};

/// Queue arguments the broker acts on.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct QueueLimits {
    message_ttl: Option<Duration>,
    pub(super) expires: Option<Duration>,
    max_length: Option<usize>,
    max_length_bytes: Option<usize>,
    reject_publish: bool,
    pub(super) max_priority: Option<u8>,
}

impl QueueLimits {
    pub(super) fn from_arguments(arguments: &FieldTable) -> Result<QueueLimits> {
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
    pub(super) vhost: Weak<dyn QueueOwner>,
    pub(super) durable: bool,
    pub(super) exclusive_owner: Option<u64>,
    pub(super) auto_delete: bool,
    pub(super) arguments: FieldTable,
    pub(super) limits: QueueLimits,
    /// Ready messages are waiting for some consumer's credit.
    pub(super) starved: AtomicBool,
    pub(super) inner: Mutex<QueueInner>,
}

struct Queued {
    /// Shared: fanout copies, the unacked record and requeues cost a refcount.
    message: StoredMessage,
    redelivered: bool,
    expires_at: Option<Instant>,
}

pub(super) struct QueueInner {
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

/// Which message, on which channel, a consumer got.
struct Assignment {
    consumer: usize,
    queued: Queued,
}

impl QueueInner {
    pub(super) fn new(max_priority: Option<u8>) -> QueueInner {
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
    pub(super) fn check_owner(&self, connection_id: u64, vhost: &str) -> Result<()> {
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

    pub(super) fn touch(&self) {
        if self.limits.expires.is_some() {
            self.inner().last_used = Instant::now();
        }
    }

    pub(super) fn mark_deleted(&self) {
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
    pub(super) fn enqueue(
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
    #[allow(clippy::too_many_arguments)] // basic.consume's own fields
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

/// Watch an `x-expires` queue and delete it once unused for that long.
pub(super) fn spawn_expiry_watch(queue: Weak<QueueState>, expires: Duration) {
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
